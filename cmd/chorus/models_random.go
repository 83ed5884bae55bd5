package main

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/spf13/cobra"
)

func randomCmd() *cobra.Command {
	var dims, out string
	var seed uint64
	var f16 bool
	cmd := &cobra.Command{
		Use:   "random --dims tiny|base|small --out DIR",
		Short: "Write a Hugging Face folder with seeded random weights (for tests and benchmarks)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, ok := whisper.NamedDims(dims)
			if !ok {
				return fmt.Errorf("unknown --dims %q", dims)
			}
			m, err := whisper.NewRandom(d, seed, whisper.LoadOptions{})
			if err != nil {
				return err
			}
			return asr.Save(out, m, nil, nil, asr.SaveOptions{F16: f16})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dims, "dims", "tiny", "tiny, base or small")
	f.StringVar(&out, "out", "", "output folder")
	f.Uint64Var(&seed, "seed", 1, "weight seed (tensor.SeededUniform)")
	f.BoolVar(&f16, "f16", false, "store weights in half precision")
	return cmd
}
