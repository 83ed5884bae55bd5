package main

import (
	"os"

	"github.com/chorus-asr/chorus/training/speech"
	"github.com/spf13/cobra"
)

func trainCmd() *cobra.Command {
	var (
		recipe, work string
		resume       bool
		steps        int
	)
	cmd := &cobra.Command{
		Use:   "train --recipe FILE --work DIR [--resume]",
		Short: "Run a training recipe (checkpoints every few minutes and on SIGINT/SIGTERM; --resume continues exactly)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := speech.ReadRecipe(recipe)
			if err != nil {
				return err
			}
			if work == "" {
				work = "runs/" + r.Name
			}
			return speech.Run(cmd.Context(), r, speech.RunOptions{Work: work, Resume: resume, Steps: steps, Progress: os.Stderr})
		},
	}
	f := cmd.Flags()
	f.StringVar(&recipe, "recipe", "", "recipe file (see recipes/)")
	f.StringVar(&work, "work", "", "work folder for tokenizer, checkpoints, logs, plots and the variant (default runs/NAME)")
	f.BoolVar(&resume, "resume", false, "continue from the newest valid checkpoint")
	f.IntVar(&steps, "steps", 0, "override the recipe's step count (extend a finished run)")
	return cmd
}
