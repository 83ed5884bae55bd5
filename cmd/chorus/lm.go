package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/spf13/cobra"
)

func lmCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lm",
		Short: "Token n-gram language models for shallow fusion",
	}
	cmd.AddCommand(lmBuildCmd())
	return cmd
}

func lmBuildCmd() *cobra.Command {
	var (
		model, out string
		manifests  []string
		order, min int
	)
	cmd := &cobra.Command{
		Use:   "build --model M --manifest F [--manifest F2] --out FILE",
		Short: "Estimate a token n-gram model (interpolated Kneser-Ney) from manifests' text",
		Long: `Estimate a token n-gram language model from the text of training manifests, tokenized
with the model's tokenizer exactly as training tokenizes it (" " + text), and write it in the
ARPA format, zstd-compressed. Placed in a variant folder as ` + asr.LMFile + `, it is opened
with the variant and decoding adds --lm-weight times its log-probabilities (shallow fusion).

Train it on training text only: a development split's sentences in the model would make the
development WER meaningless.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(manifests) == 0 || out == "" {
				return fmt.Errorf("lm build needs --manifest and --out")
			}
			v, err := openModelOrDefault(model, true)
			if err != nil {
				return err
			}
			if v.Tokenizer == nil {
				return fmt.Errorf("model %s has no tokenizer", v.Name)
			}
			start := time.Now()
			var sents [][]int
			seen := map[string]bool{}
			for _, f := range manifests {
				m, err := data.ReadManifest(f, data.ReadOptions{Report: func(e *data.LineError) { fmt.Fprintln(os.Stderr, e) }})
				if err != nil {
					return err
				}
				for _, e := range m.Entries {
					text := strings.TrimSpace(e.Text)
					if text == "" || seen[text] {
						continue // each sentence once: the corpus speaks some twice
					}
					seen[text] = true
					sents = append(sents, v.Tokenizer.Encode(" "+text))
				}
			}
			sp := v.Tokenizer.Specials()
			n, err := lm.Estimate(sents, lm.EstimateOptions{Order: order, BOS: sp.SOT, EOS: sp.EOT, Vocab: v.Tokenizer.Size(), MinCount: min})
			if err != nil {
				return err
			}
			var size countingWriter
			if err := formats.WriteFileAtomic(out, func(w io.Writer) error {
				return n.SaveZstd(io.MultiWriter(w, &size))
			}); err != nil {
				return err
			}
			words := 0
			for t := range seen {
				words += len(metrics.Words(t))
			}
			fmt.Fprintf(os.Stderr, "%s: order %d, %d sentences (%d words), n-grams per order %v, %.1f MB, %s\n",
				out, order, len(sents), words, n.Grams(), float64(size)/1e6, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model whose tokenizer the n-grams count (default: the embedded default model)")
	f.StringArrayVar(&manifests, "manifest", nil, "training manifest whose text to count (repeatable)")
	f.StringVar(&out, "out", "", "output file (a variant folder's "+asr.LMFile+")")
	f.IntVar(&order, "order", 8, "n-gram order (2–12)")
	f.IntVar(&min, "min-count", 2, "drop n-grams of order 3 and above seen fewer times")
	return cmd
}

// countingWriter counts the bytes written through it.
type countingWriter int64

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}
