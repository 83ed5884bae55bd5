package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/bench"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/spf13/cobra"
)

func benchCmd() *cobra.Command {
	var (
		dims, model string
		threads     int
		runs        int
		tokens      int
		asJSON, f16 bool
		seed        uint64
	)
	cmd := &cobra.Command{
		Use:   "bench (--dims tiny|base|small | --model M)",
		Short: "Measure mel, encoder and per-token decoder time and peak memory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var o bench.Options
			var (
				m    *whisper.Model
				name string
				err  error
			)
			switch {
			case dims != "" && model != "":
				return fmt.Errorf("give --dims or --model, not both")
			case dims != "":
				d, ok := whisper.NamedDims(dims)
				if !ok {
					return fmt.Errorf("unknown --dims %q (want tiny, base or small)", dims)
				}
				m, err = whisper.NewRandom(d, seed, whisper.LoadOptions{F16: f16})
				name = "random-" + dims
			case model != "":
				var v *asr.Variant
				v, err = openModel(model, f16)
				if v != nil {
					m = v.Model
					// A variant that declares a default routing (the flagship) or is gated
					// runs it, as it serves; others run dense.
					if rt, rerr := v.Routing(asr.RoutingChoice{}); rerr == nil && rt != nil {
						o.Routing = rt
						if n, ok := rt.(interface{ Name() string }); ok {
							o.RoutingName = n.Name()
						}
					}
				}
				name = model
			default:
				return fmt.Errorf("give --dims tiny|base|small or --model M")
			}
			if err != nil {
				return err
			}
			o.Runs, o.Tokens, o.Threads = runs, tokens, threads
			res, err := bench.Run(m, name, o)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(os.Stdout).Encode(res)
			}
			fmt.Printf("model %s  threads %d  blas %s  runs %d (medians)\n", res.Model, res.Threads, res.BLAS, res.Runs)
			fmt.Printf("  mel (30 s)            %8.1f ms\n", res.MelMS)
			fmt.Printf("  encoder (30 s window) %8.1f ms\n", res.EncoderMS)
			fmt.Printf("  decode per token      %8.2f ms\n", res.DecodeMSPerToken)
			fmt.Printf("  peak RSS              %8.0f MiB\n", res.PeakRSSMB)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dims, "dims", "", "build a model of these dimensions with seeded random weights: tiny, base or small")
	f.StringVar(&model, "model", "", "load this model (variant folder, Hugging Face folder or ggml file)")
	f.IntVar(&threads, "threads", 0, "compute threads (default: all cores)")
	f.IntVar(&runs, "runs", 5, "repetitions of each measurement (medians are reported)")
	f.IntVar(&tokens, "tokens", 0, "decoder steps per run (default: 256 as whisper-bench, or as many as the model's text context holds)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object (mel_ms, encoder_ms, decode_ms_per_token, peak_rss_mb)")
	f.BoolVar(&f16, "f16", true, "store large weights in half precision (f32 compute)")
	f.Uint64Var(&seed, "seed", 1, "seed of the random weights for --dims")
	return cmd
}
