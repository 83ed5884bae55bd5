package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/moefy"
	"github.com/chorus-asr/chorus/training/plot"
	"github.com/spf13/cobra"
)

// arm is one routing choice of `chorus ab`, named as given.
type arm struct {
	Name   string
	Choice asr.RoutingChoice
}

// parseArms reads a comma-separated list of arms, each a routing choice as
// asr.ParseRoutingChoice reads it (ROUTER[:AMOUNT][/minN][/enc][/request]), named as given.
func parseArms(s string) ([]arm, error) {
	var out []arm
	seen := map[string]bool{}
	for _, a := range strings.Split(s, ",") {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, fmt.Errorf("arms %q: empty arm", s)
		}
		if seen[a] {
			return nil, fmt.Errorf("arm %q listed twice", a)
		}
		seen[a] = true
		c, err := asr.ParseRoutingChoice(a)
		if err != nil {
			return nil, fmt.Errorf("arm: %w", err)
		}
		out = append(out, arm{Name: a, Choice: c})
	}
	return out, nil
}

// armResult is one arm's line of `chorus ab`.
type armResult struct {
	Arm       string  `json:"arm"`
	Router    string  `json:"router"`
	WER       float64 `json:"wer"`
	CER       float64 `json:"cer"`
	FFNms     float64 `json:"ffn_ms"`         // inside the FFN blocks while transcribing, all clips
	EncFFNms  float64 `json:"encoder_ffn_ms"` // of which in the encoder's blocks
	EncoderMs float64 `json:"encoder_ms"`     // the encoder, once per clip, all clips
	RTF       float64 `json:"rtf"`            // transcription compute / audio
	Experts   float64 `json:"experts"`        // share of the expert work that ran
	Clips     int     `json:"clips"`
	AudioS    float64 `json:"audio_s"`
}

func abCmd() *cobra.Command {
	var (
		model, manifest, arms, plotPath string
		limit, beam                     int
		asJSON                          bool
	)
	cmd := &cobra.Command{
		Use:   "ab --model M --manifest F --arms dense,random:0.25,mlp:0.25,oracle:0.25",
		Short: "Compare routers on a MoE variant over a manifest: WER, CER, FFN and encoder time per arm",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			as, err := parseArms(arms)
			if err != nil {
				return err
			}
			v, err := openModelOrDefault(model, false)
			if err != nil {
				return err
			}
			for _, a := range as { // refuse bad arms before decoding anything
				if _, err := v.Routing(a.Choice); err != nil {
					return fmt.Errorf("arm %s: %w", a.Name, err)
				}
			}
			man, err := data.ReadManifest(manifest, data.ReadOptions{Report: func(e *data.LineError) { fmt.Fprintln(os.Stderr, e) }})
			if err != nil {
				return err
			}
			entries := man.Entries
			if limit > 0 && limit < len(entries) {
				entries = entries[:limit]
			}
			clips := make([][]float32, len(entries))
			for i, e := range entries {
				if clips[i], err = audio.Load16kMono(e.Path(man.Dir)); err != nil {
					return err
				}
				clips[i] = clips[i][:min(len(clips[i]), mel.NSamples)]
			}
			o := transcribe.DefaultOptions()
			o.Decode.WithoutTimestamps = true
			o.Temperatures = []float64{0}
			o.ConditionOnPreviousText = false
			o.SetBeam(beam)
			content := v.Chorus.EncoderWindow == asr.WindowContent
			var results []armResult
			for _, a := range as {
				r := armResult{Arm: a.Name, Clips: len(clips)}
				var refs, hyps []string
				var ffn, encFFN, enc, compute time.Duration
				var used, possible int64
				tr, err := v.NewTranscriber()
				if err != nil {
					return err
				}
				st := v.Model.NewState(1)
				bar := newBar(a.Name)
				for i, x := range clips {
					// a fresh routing per clip: each clip is one request (per-request arms
					// pin their subsets per clip)
					rt, err := v.Routing(a.Choice)
					if err != nil {
						return err
					}
					tr.SetRouting(rt)
					t0 := time.Now()
					res, err := tr.Transcribe(cmd.Context(), x, o)
					if err != nil {
						return err
					}
					compute += time.Since(t0)
					if mr, ok := rt.(*moe.Routing); ok {
						ffn += mr.FFNTime()
						encFFN += mr.EncoderFFNTime()
						u, p := mr.Work()
						used, possible = used+u, possible+p
						r.Router = mr.Name()
					}
					// the encoder alone, timed under the same arm on a second state
					ert, _ := v.Routing(a.Choice)
					st.SetRouting(ert)
					w := moefy.Window(x, v.Model.Dims.NMels, content)
					t1 := time.Now()
					st.EncodeInPlace(w)
					enc += time.Since(t1)
					refs = append(refs, entries[i].Text)
					hyps = append(hyps, strings.TrimSpace(res.Text))
					r.AudioS += float64(len(x)) / audio.WhisperRate
					bar(i+1, len(clips))
				}
				if r.Router == "" {
					r.Router = "dense"
				}
				we, ww := metrics.WER(refs, hyps)
				ce, cc := metrics.CER(refs, hyps)
				r.WER, r.CER = float64(we)/float64(max(1, ww)), float64(ce)/float64(max(1, cc))
				r.FFNms, r.EncFFNms, r.EncoderMs = ms(ffn), ms(encFFN), ms(enc)
				r.RTF = compute.Seconds() / max(r.AudioS, 1e-9)
				if possible > 0 {
					r.Experts = float64(used) / float64(possible)
				}
				results = append(results, r)
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range results {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
			} else {
				printAB(results)
			}
			if plotPath != "" {
				var ss []plot.Series
				for _, r := range results {
					ss = append(ss, plot.Series{Name: r.Arm, X: []float64{r.FFNms}, Y: []float64{100 * r.WER}})
				}
				if err := plot.Lines(plotPath, "chorus ab: WER against FFN time", "FFN time (ms, all clips)", "WER (%)", ss...); err != nil {
					return err
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "MoE variant folder (default: the embedded default model, dense only)")
	f.StringVar(&manifest, "manifest", "", "JSON-lines manifest (audio_filepath, text)")
	f.StringVar(&arms, "arms", "dense,random:0.25,mlp:0.25,oracle:0.25", "comma-separated arms ROUTER[:FRACTION|COUNT][/minN][/enc][/request] (/minN: calls of fewer than N tokens run every expert; /enc: the decoder runs every expert)")
	f.IntVar(&limit, "limit", 0, "first N utterances only")
	f.IntVar(&beam, "beam", 1, "beam size of every arm's decoding (1: greedy; the model's language model, if any, joins beam search)")
	f.BoolVar(&asJSON, "json", false, "print one JSON object per arm")
	f.StringVar(&plotPath, "plot", "", "write a PNG of WER against FFN time per arm")
	cmd.MarkFlagRequired("manifest")
	return cmd
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// printAB prints the arms as a table, with FFN (all blocks, and the encoder's alone) and
// encoder speed-ups against the first dense arm when there is one.
func printAB(rs []armResult) {
	var base *armResult
	for i := range rs {
		if rs[i].Router == "dense" {
			base = &rs[i]
			break
		}
	}
	fmt.Printf("%-22s %-22s %7s %7s %9s %6s %9s %6s %10s %6s %7s %7s\n", "arm", "router", "WER", "CER", "FFN ms", "×", "enc FFN", "×", "encoder ms", "×", "RTF", "experts")
	for _, r := range rs {
		fx, efx, ex := "", "", ""
		if base != nil && r.FFNms > 0 && r.EncFFNms > 0 && r.EncoderMs > 0 {
			fx, efx, ex = fmt.Sprintf("%.2f", base.FFNms/r.FFNms), fmt.Sprintf("%.2f", base.EncFFNms/r.EncFFNms), fmt.Sprintf("%.2f", base.EncoderMs/r.EncoderMs)
		}
		fmt.Printf("%-22s %-22s %6.1f%% %6.1f%% %9.1f %6s %9.1f %6s %10.1f %6s %7.3f %7.3f\n", r.Arm, r.Router, 100*r.WER, 100*r.CER, r.FFNms, fx, r.EncFFNms, efx, r.EncoderMs, ex, r.RTF, r.Experts)
	}
}
