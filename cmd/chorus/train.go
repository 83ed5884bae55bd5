package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/speech"
	"github.com/spf13/cobra"
)

func trainCmd() *cobra.Command {
	var (
		recipe, work string
		publish      string
		resume       bool
		steps        int
		memLimit     int64
		keep, avg    int
	)
	cmd := &cobra.Command{
		Use:   "train --recipe FILE --work DIR [--resume]",
		Short: "Run a training recipe (checkpoints every few minutes and on SIGINT/SIGTERM; --resume continues exactly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if memLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
				// A soft limit makes the collector work harder before the heap doubles past
				// what the machine has; training's working set is stable, its garbage is not.
				debug.SetMemoryLimit(memLimit << 20)
			}
			r, err := speech.ReadRecipe(recipe)
			if err != nil {
				return err
			}
			if work == "" {
				work = "runs/" + r.Name
			}
			err = speech.Run(cmd.Context(), r, speech.RunOptions{Work: work, Resume: resume, Steps: steps, Progress: os.Stderr, Publish: publish, KeepCheckpoints: keep, Average: avg})
			if errors.Is(err, context.Canceled) && cmd.Context().Err() != nil {
				// SIGINT/SIGTERM: the trainer wrote a checkpoint first. Still a failure for
				// scripts (the run did not finish), but say what happened and what next.
				return fmt.Errorf("interrupted; the checkpoint is written, and the same command with --resume continues from it")
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&recipe, "recipe", "", "recipe file (see recipes/)")
	f.StringVar(&work, "work", "", "work folder for tokenizer, checkpoints, logs, plots and the variant (default runs/NAME)")
	f.BoolVar(&resume, "resume", false, "continue from the newest valid checkpoint")
	f.StringVar(&publish, "publish", "", "models directory to publish the final variant into (temp name + rename: a watching server hot-swaps it)")
	f.IntVar(&steps, "steps", 0, "override the recipe's step count (extend a finished run)")
	f.IntVar(&keep, "keep-checkpoints", 0, "how many of the newest checkpoints to keep (0: 2); more lets `chorus train --average N` average the run's end")
	f.IntVar(&avg, "average", 0, "train nothing: write the mean of the run's newest N checkpoints as WORK/variant-avg (checkpoint averaging)")
	f.Int64Var(&memLimit, "memory-limit-mb", 8192, "soft memory limit for the Go heap in MiB (0: none; GOMEMLIMIT wins)")
	return cmd
}

// setMatmul applies --matmul: f32, bf16 or auto.
func setMatmul(v string) error {
	switch v {
	case "f32", "":
		return tensor.SetMatmulBF16(false)
	case "bf16":
		return tensor.SetMatmulBF16(true)
	case "auto":
		// bfloat16 only where it is the faster path (AMX, or AVX512-BF16 on AMD): Intel's
		// AVX512-BF16 alone is slower than OpenBLAS's float32.
		return tensor.SetMatmulBF16(tensor.BF16Preferred())
	}
	return fmt.Errorf("--matmul %q: want f32, bf16 or auto", v)
}
