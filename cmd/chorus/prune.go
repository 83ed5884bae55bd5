package main

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/training/prune"
	"github.com/spf13/cobra"
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
			start := time.Now()
			v, err := openModelOrDefault(model, false)
			if err != nil {
				return err
			}
			z, achieved, err := prune.MagnitudeMasks(v.Model, target, unitBlock)
			if err != nil {
				return err
			}
			mat, err := prune.MaterialiseModel(v.Model, z)
			if err != nil {
				return err
			}
			cfg := asr.ConfigFromDims(mat.Model.Dims)
			ch := asr.DimsChorus(mat.Model.Dims)
			ch.EncoderWindow = v.Chorus.EncoderWindow
			cfg.Chorus, _ = json.Marshal(ch)
			if err := asr.Save(out, mat.Model, cfg, v.Tokenizer, asr.SaveOptions{Compress: true, F16: true}); err != nil {
				return err
			}
			before, after := v.Model.NumParams(), mat.Model.NumParams()
			card := map[string]any{
				"name": filepath.Base(filepath.Clean(out)), "parent": v.Path, "kind": "prune",
				"prune": map[string]any{"method": "magnitude", "target": target, "achieved": achieved, "unit_block": unitBlock,
					"parent_params": before, "params": after, "layers": mat.Layers},
				"wall_s": time.Since(start).Seconds(),
			}
			if err := asr.WriteCard(out, card); err != nil {
				return err
			}
			fmt.Printf("magnitude pruning to %.0f%%: achieved %.1f%% of the layers' parameters, %d → %d parameters; wrote %s\n",
				100*target, 100*achieved, before, after, out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model to prune (default: the embedded default model)")
	f.StringVar(&out, "out", "", "variant folder to write")
	f.StringVar(&method, "method", "magnitude", "pruning method (magnitude)")
	f.Float64Var(&target, "target", 0.5, "share of the encoder and decoder layers' parameters to remove, in [0, 1)")
	f.IntVar(&unitBlock, "unit-block", 0, "keep each layer's FFN units a multiple of this (16: the result can be MoE-fied into 16 experts)")
	return cmd
}
