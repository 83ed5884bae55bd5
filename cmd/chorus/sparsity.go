package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/chorus-asr/chorus/training/moefy"
	"github.com/spf13/cobra"
)

func sparsityCmd() *cobra.Command {
	var (
		model, manifest string
		limit           int
		asJSON          bool
	)
	cmd := &cobra.Command{
		Use:   "sparsity --model M (--manifest F | files…)",
		Short: "Report the activation sparsity of each feed-forward layer on speech (before and after ReLU-fication, before MoE-fication)",
		RunE: func(cmd *cobra.Command, files []string) error {
			if (manifest == "") == (len(files) == 0) {
				return fmt.Errorf("give --manifest or audio files (not both)")
			}
			v, err := openModelOrDefault(model, false)
			if err != nil {
				return err
			}
			clips, err := loadClips(manifest, limit, files)
			if err != nil {
				return err
			}
			rec, err := moefy.Record(cmd.Context(), v, clips, 20000, newBar("record"))
			if err != nil {
				return err
			}
			rep, err := moefy.Sparsity(v, rec)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(map[string]any{"model": v.Path, "activation": v.Model.Dims.Activation, "layers": rep})
			}
			fmt.Printf("%s (%s)\n%-26s %7s %7s %9s %7s %10s\n", v.Path, v.Model.Dims.Activation, "layer", "tokens", "zero", "≤ 0", "small", "90% mass")
			for _, l := range rep {
				fmt.Printf("%-26s %7d %7.3f %9.3f %7.3f %10.3f\n", l.Name, l.Tokens, l.Zero, l.NonPositive, l.Small, l.Mass90)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model (default: the embedded default model)")
	f.StringVar(&manifest, "manifest", "", "JSON-lines manifest whose audio and transcripts are recorded")
	f.IntVar(&limit, "limit", 100, "first N utterances of the manifest (0: all)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
