package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/speech"
)

func pruneCmd() *cobra.Command {
	var (
		model, out, method string
		target             float64
		unitBlock          int
	)
	cmd := &cobra.Command{
		Use:   "prune --model M --target 0.5 --out DIR",
		Short: "Prune a model without training (magnitude baseline): remove the heads and FFN units with the smallest weights until the target sparsity, and write the smaller variant",
		Long: `Structured magnitude pruning, the baseline CoFi is measured against: every attention head and
FFN unit is scored by the mean absolute value of its weights, the lowest-scoring are removed
until the target share of the layers' parameters is gone, and the smaller dense model is
written as a variant folder (per-layer sizes in its config). CoFi pruning with distillation is
a training recipe instead: chorus train --recipe recipes/chorus-micro-prune-50.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return fmt.Errorf("--out is required")
			}
			if method != "magnitude" {
				return fmt.Errorf("--method %q: only magnitude prunes without training (CoFi is a recipe: chorus train)", method)
			}
			v, err := openModelOrDefault(model, false)
			if err != nil {
				return err
			}
			res, err := speech.PruneMagnitude(v, target, unitBlock, out)
			if err != nil {
				return err
			}
			before, after, achieved := res.Before, res.After, res.Achieved
			fmt.Printf("magnitude pruning to %.0f%%: achieved %.1f%% of the layers' parameters, %d → %d parameters; wrote %s\n",
				100*target, 100*achieved, before, after, out)
			return nil
		},
	}
	cmd.AddCommand(pruneSweepCmd())
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model to prune (default: the embedded default model)")
	f.StringVar(&out, "out", "", "variant folder to write")
	f.StringVar(&method, "method", "magnitude", "pruning method (magnitude)")
	f.Float64Var(&target, "target", 0.5, "share of the encoder and decoder layers' parameters to remove, in [0, 1)")
	f.IntVar(&unitBlock, "unit-block", 0, "keep each layer's FFN units a multiple of this (16: the result can be MoE-fied into 16 experts)")
	return cmd
}

func pruneSweepCmd() *cobra.Command {
	var (
		recipe, manifest, work, targets, methods string
		limit, benchRuns                         int
		entropyW, klW                            float64
	)
	cmd := &cobra.Command{
		Use:   "sweep --recipe R --manifest F [--targets 0.3,0.5,0.7] [flags]",
		Short: "WER against sparsity: prune the recipe's teacher to each target by magnitude (with and without a fine-tune) and by CoFi (with and without distillation), then score and time every variant",
		Long: `Prunes the teacher of a prune recipe (CoFi settings in its prune block) to each target
four ways — magnitude (no training); magnitude, then fine-tuned for the recipe's steps with its
logit distillation (magnitude-ft: the same training budget as CoFi); CoFi with the recipe's
distillation; and CoFi trained on the speech loss alone — scores the teacher and every variant
on the dev manifest in float32 (decoded as chorus eval decodes: beam, CTC, LM) and times their
encoder and decoder (chorus bench), and writes
sweep.csv and sweep.png (WER against the achieved sparsity) and, for the CoFi runs
(cofi-entropy and cofi-kl add the non-uniformity regularisers), per-layer sparsity maps
sweep-layers-<target>.png into the work folder. Each run has its own folder there; training runs resume
from their checkpoints and finished variants are reused, so a stopped sweep continues.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if recipe == "" || manifest == "" {
				return fmt.Errorf("--recipe and --manifest are required")
			}
			r, err := speech.ReadRecipe(recipe)
			if err != nil {
				return err
			}
			var ts []float64
			for _, f := range strings.Split(targets, ",") {
				t, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
				if err != nil {
					return fmt.Errorf("--targets: %q: %v", f, err)
				}
				ts = append(ts, t)
			}
			var ms []string
			if methods != "" {
				ms = strings.Split(methods, ",")
			}
			dev, err := data.ReadManifest(manifest, data.ReadOptions{})
			if err != nil {
				return err
			}
			if err := os.MkdirAll(work, 0o755); err != nil {
				return err
			}
			rows, err := speech.Sweep(cmd.Context(), speech.SweepOptions{Recipe: r, Targets: ts, Methods: ms, Work: work,
				Dev: dev, Limit: limit, BenchRuns: benchRuns, Entropy: entropyW, KL: klW, Run: speech.RunOptions{Progress: os.Stderr}})
			if len(rows) > 0 {
				if werr := speech.WriteSweep(rows, filepath.Join(work, "sweep.csv"), filepath.Join(work, "sweep.png")); werr != nil {
					return errors.Join(err, werr)
				}
				fmt.Printf("%-16s %7s %9s %10s %7s %7s %11s %12s\n", "method", "target", "sparsity", "params", "WER", "CER", "encoder ms", "ms/token")
				for _, row := range rows {
					fmt.Printf("%-16s %6.0f%% %8.1f%% %10d %6.1f%% %6.1f%% %11.1f %12.3f\n", row.Method, 100*row.Target, 100*row.Sparsity,
						row.Params, 100*row.WER, 100*row.CER, row.EncoderMS, row.DecodeMSPerToken)
				}
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&recipe, "recipe", "", "prune recipe (its teacher and CoFi settings; e.g. recipes/chorus-micro-prune-50.json)")
	f.StringVar(&manifest, "manifest", "", "dev manifest the variants are scored on")
	f.IntVar(&limit, "limit", 150, "first N utterances of the manifest (0: all)")
	f.StringVar(&work, "work", "runs/prune-sweep", "folder of the runs, sweep.csv and sweep.png")
	f.StringVar(&targets, "targets", "0.3,0.5,0.7", "sparsity targets, comma-separated")
	f.StringVar(&methods, "methods", "", "methods, comma-separated: magnitude, magnitude-ft, cofi, cofi-nodistill, cofi-entropy, cofi-kl (default: the first four)")
	f.IntVar(&benchRuns, "bench-runs", 3, "timing runs per variant (median)")
	f.Float64Var(&entropyW, "entropy", 0, "weight of the entropy regulariser in the cofi-entropy runs (0: 0.5; another weight runs in its own folder, cofi-entropy-wW-PP)")
	f.Float64Var(&klW, "kl", 0, "weight of the KL-from-uniform regulariser in the cofi-kl runs (0: 0.5; another weight runs in its own folder)")
	return cmd
}
