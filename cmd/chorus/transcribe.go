package main

import (
	"fmt"
	"os"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/spf13/cobra"
)

func transcribeCmd() *cobra.Command {
	var (
		model, format, language, task, prompt string
		beam                                  int
		ctcWeight, lmW, lmBonus, patience     float64
		f16, words                            bool
		threads                               int
	)
	cmd := &cobra.Command{
		Use:   "transcribe FILE...",
		Short: "Transcribe audio files (WAV or FLAC, any rate)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, files []string) error {
			switch format {
			case "text", "json", "srt", "vtt":
			default:
				return fmt.Errorf("unknown --format %q (want text, json, srt or vtt)", format)
			}
			setThreads(threads)
			v, err := openModelOrDefault(model, f16)
			if err != nil {
				return err
			}
			o := transcribe.DefaultOptions()
			o.Decode.Language = language
			o.Decode.Task = task
			o.InitialPrompt = prompt
			o.WordTimestamps = words
			o.Decode.CTCWeight = ctcWeight
			o.Decode.LMWeight, o.Decode.LMBonus = lmW, lmBonus
			o.SetBeam(beam)
			if beam > 1 {
				o.Decode.Patience = patience
			}
			failed := 0
			for _, f := range files {
				samples, err := audio.Load16kMono(f)
				if err == nil {
					var res *transcribe.Result
					res, err = v.Transcribe(cmd.Context(), samples, o)
					if err == nil {
						err = write(format, f, res)
					}
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "chorus: %s: %v\n", f, err)
					failed++
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d files failed", failed, len(files))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "model folder or ggml file (default: the embedded default model)")
	fl.StringVar(&format, "format", "text", "output format: text, json (one object per line per file), srt or vtt")
	fl.StringVar(&language, "language", "", "language code (default: detect for multilingual models, else en)")
	fl.StringVar(&task, "task", "transcribe", "transcribe or translate")
	fl.StringVar(&prompt, "prompt", "", "initial prompt text")
	fl.IntVar(&beam, "beam", transcribe.DefaultBeamSize, "beam size (1: greedy)")
	fl.Float64Var(&patience, "patience", 0, "beam search patience (arXiv:2204.05424): finished hypotheses collected before stopping, in beams (0: 1)")
	fl.Float64Var(&lmW, "lm-weight", decode.DefaultLMWeight, "weight of the model's language model ("+asr.LMFile+") in shallow fusion (0: none)")
	fl.Float64Var(&lmBonus, "lm-bonus", decode.DefaultLMBonus, "score added per text token under shallow fusion")
	fl.Float64Var(&ctcWeight, "ctc-weight", decode.DefaultCTCWeight, "weight of the CTC head in joint CTC/attention decoding (0: attention only; models without a CTC head ignore it)")
	fl.BoolVar(&words, "word-timestamps", false, "align each word with the audio (json output gets each segment's words; one more decoder pass per window)")
	fl.BoolVar(&f16, "f16", true, "store large weights in half precision (f32 compute)")
	fl.IntVar(&threads, "threads", 0, "compute threads (default: all cores)")
	return cmd
}

func write(format, file string, res *transcribe.Result) error {
	switch format {
	case "json":
		return transcribe.WriteJSON(os.Stdout, file, res)
	case "srt":
		return transcribe.WriteSRT(os.Stdout, res)
	case "vtt":
		return transcribe.WriteVTT(os.Stdout, res)
	}
	return transcribe.WriteText(os.Stdout, res)
}
