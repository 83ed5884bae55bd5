package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/speech"
	"github.com/spf13/cobra"
)

func evalCmd() *cobra.Command {
	var (
		model, manifest, key     string
		hyps                     string
		workers, limit, beam     int
		skip                     int
		ctcWeight, lmW, lmBonus  float64
		patience                 float64
		asJSON, card, timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "eval --model M --manifest F",
		Short: "Transcribe a manifest and print WER/CER overall and per voice and source",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := openModelOrDefault(model, true)
			if err != nil {
				return err
			}
			m, err := data.ReadManifest(manifest, data.ReadOptions{Report: func(e *data.LineError) { fmt.Fprintln(os.Stderr, e) }})
			if err != nil {
				return err
			}
			rep, err := speech.Evaluate(cmd.Context(), v, m, speech.EvalOptions{Workers: workers, Limit: limit, Skip: skip, Timestamps: timestamps,
				CTCWeight: &ctcWeight, Beam: beam, LMWeight: &lmW, LMBonus: &lmBonus, Patience: patience,
				Bad: func(p string, err error) { fmt.Fprintf(os.Stderr, "chorus: %s: %v\n", p, err) }})
			if err != nil {
				return err
			}
			rep.Manifest = manifest
			if hyps != "" {
				if err := writeHyps(hyps, rep.Utterances); err != nil {
					return err
				}
			}
			if asJSON {
				json.NewEncoder(os.Stdout).Encode(rep)
			} else {
				rep.Print(os.Stdout)
			}
			if card {
				if key == "" {
					key = strings.TrimSuffix(filepath.Base(manifest), ".jsonl")
				}
				return speech.AddToCard(model, key, rep)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model folder or ggml file (default: the embedded default model)")
	f.StringVar(&manifest, "manifest", "", "JSON-lines manifest (audio_filepath, text, voice, source)")
	f.IntVar(&workers, "workers", 1, "utterances decoded in parallel")
	f.IntVar(&limit, "limit", 0, "first N utterances only (after --skip)")
	f.IntVar(&skip, "skip", 0, "skip the first N utterances (e.g. --skip 150 --limit 150: a tuning slice beside the report slice)")
	f.BoolVar(&timestamps, "timestamps", false, "decode in timestamp mode, as chorus transcribe and the server do (default: text only, <|notimestamps|>)")
	f.Float64Var(&ctcWeight, "ctc-weight", decode.DefaultCTCWeight, "weight of the CTC head in joint CTC/attention decoding (0: attention only; models without a CTC head ignore it)")
	f.Float64Var(&lmW, "lm-weight", decode.DefaultLMWeight, "weight of the model's language model ("+asr.LMFile+") in shallow fusion (0: none)")
	f.Float64Var(&lmBonus, "lm-bonus", decode.DefaultLMBonus, "score added per text token under shallow fusion")
	f.Float64Var(&patience, "patience", 0, "beam search patience (arXiv:2204.05424): finished hypotheses collected before stopping, in beams (0: 1)")
	f.IntVar(&beam, "beam", transcribe.DefaultBeamSize, "beam size (1: greedy), as chorus transcribe's")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	f.BoolVar(&card, "card", false, "write the scores into the model folder's card.json (metrics.<key>)")
	f.StringVar(&key, "key", "", "card metrics key (default: the manifest's base name)")
	f.StringVar(&hyps, "hyps", "", "write each utterance's reference, hypothesis and word errors to this JSON-lines file (manifest order), for error analysis")
	return cmd
}

// writeHyps writes utterances as JSON lines: the manifest's fields plus "hyp" and the word
// alignment counts, so that a sort on "sub"+"del"+"ins" or a diff of two runs' files shows
// where two models or decoding settings part.
func writeHyps(path string, us []speech.Utterance) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(f)
	enc.SetEscapeHTML(false)
	for _, u := range us {
		if err := enc.Encode(u); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
