package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/chorus-asr/chorus/training/data"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
)

func dataCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "data", Short: "Build and check training corpora"}
	cmd.AddCommand(synthCmd(), importCmd(), checkCmd())
	return cmd
}

func synthCmd() *cobra.Command {
	var (
		o      data.SynthOptions
		voices []string
	)
	cmd := &cobra.Command{
		Use:   "synth --out DIR --n N",
		Short: "Synthesise a corpus from the allowed TTS voices and texts (resumable)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, s := range voices {
				v, err := data.ParseVoice(s)
				if err != nil {
					return err
				}
				o.Voices = append(o.Voices, v)
			}
			bar := progressbar.NewOptions(o.N, progressbar.OptionSetDescription("synth"),
				progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetWriter(os.Stderr),
				progressbar.OptionThrottle(500_000_000), progressbar.OptionSetPredictTime(true))
			o.Progress = func(done, total int, audioSec float64) {
				bar.ChangeMax(total)
				bar.Describe(fmt.Sprintf("synth %.1f h audio", audioSec/3600))
				bar.Set(done)
			}
			rep, err := data.Synth(cmd.Context(), o)
			bar.Finish()
			fmt.Fprintln(os.Stderr)
			if rep != nil {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				enc.Encode(rep)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Out, "out", "", "corpus folder (manifests and audio)")
	f.IntVar(&o.N, "n", 0, "number of synthetic utterances")
	f.Int64Var(&o.Seed, "seed", 1, "seed of every draw")
	f.IntVar(&o.Workers, "workers", 2, "parallel synthesis workers")
	f.StringSliceVar(&voices, "voices", nil, "voices, e.g. espeak-ng:en-us+m3,flite:slt (default: all allowed)")
	f.Float64Var(&o.CleanFraction, "clean-fraction", 0, "share of utterances without augmentation (default 0.25)")
	f.BoolVar(&o.SpeedPerturb, "speed-perturb", false, "add speed perturbation")
	f.Float64Var(&o.DevFraction, "dev-fraction", 0, "held-out share (default 0.03)")
	f.BoolVar(&o.NoReal, "no-real", false, "leave out the asterisk real-speech prompts")
	return cmd
}

func importCmd() *cobra.Command {
	var o data.ImportOptions
	cmd := &cobra.Command{
		Use:   "import --src DIR|TSV --manifest FILE",
		Short: "Import a LibriSpeech-style folder or Common Voice-style TSV into a manifest",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep, err := data.Import(cmd.Context(), o)
			if rep != nil {
				json.NewEncoder(os.Stdout).Encode(rep)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Src, "src", "", "LibriSpeech-style folder, Common Voice folder or TSV")
	f.StringVar(&o.Manifest, "manifest", "", "manifest to write (JSON lines)")
	f.StringVar(&o.Format, "format", "", "librispeech or commonvoice (default: detect)")
	f.StringVar(&o.TSV, "tsv", "", "Common Voice table under --src (default train.tsv)")
	f.StringVar(&o.Source, "source", "", "source label of every entry")
	f.StringVar(&o.Split, "split", "", "split label of every entry")
	f.IntVar(&o.Workers, "workers", 2, "parallel workers")
	return cmd
}

func checkCmd() *cobra.Command {
	var stop bool
	cmd := &cobra.Command{
		Use:   "check MANIFEST",
		Short: "Read a manifest and report every bad line with its number",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o := data.ReadOptions{Report: func(e *data.LineError) { fmt.Fprintln(os.Stderr, e) }}
			if stop {
				o.OnError = data.Stop
			}
			m, err := data.ReadManifest(args[0], o)
			if err != nil {
				return err
			}
			var dur float64
			for _, e := range m.Entries {
				dur += e.Duration
			}
			fmt.Printf("%s: %d entries, %.2f h\n", args[0], len(m.Entries), dur/3600)
			return nil
		},
	}
	cmd.Flags().BoolVar(&stop, "stop", false, "stop at the first bad line instead of skipping it")
	return cmd
}
