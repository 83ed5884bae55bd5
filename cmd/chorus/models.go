package main

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/spf13/cobra"
)

// openModel opens a model by path (variant or Hugging Face folder, ggml file) or by the name
// of an embedded one (defaultmodel.Names: chorus-micro, chorus-micro-moe,
// chorus-micro-flagship), which wins over a folder of that
// name in the working directory (write ./chorus-micro for the folder).
func openModel(path string, f16 bool) (*asr.Variant, error) {
	switch path {
	case "":
		return nil, fmt.Errorf("no model given (--model DIR|FILE)")
	}
	if slices.Contains(defaultmodel.Names(), path) {
		return defaultmodel.OpenNamed(path, asr.OpenOptions{F16: f16})
	}
	return asr.Open(path, asr.OpenOptions{F16: f16})
}

func modelsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "models", Short: "Inspect, dump and convert models"}
	cmd.AddCommand(inspectCmd(), dumpCmd(), exportCmd(), randomCmd(), sparsityCmd())
	return cmd
}

func inspectCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect M",
		Short: "Print a model's architecture, parameter counts and checksums",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := openModel(args[0], false)
			if err != nil {
				return err
			}
			info, err := asr.Inspect(v)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			d := info.Dims
			fmt.Printf("model      %s (%s)\n", info.Path, info.Format)
			fmt.Printf("encoder    %d layers, width %d, %d heads, ffn %d, %d positions, %d mels\n",
				d.NAudioLayer, d.NAudioState, d.NAudioHead, v.Config.EncoderFFNDim, d.NAudioCtx, d.NMels)
			fmt.Printf("decoder    %d layers, width %d, %d heads, ffn %d, %d positions, vocab %d\n",
				d.NTextLayer, d.NTextState, d.NTextHead, v.Config.DecoderFFNDim, d.NTextCtx, d.NVocab)
			fmt.Printf("activation %s\n", v.Config.Activation())
			fmt.Printf("tokenizer  %v\n", info.Tokenizer)
			for _, p := range info.SortedParts() {
				fmt.Printf("params     %-8s %12d\n", p, info.Params[p])
			}
			fmt.Printf("weights    sha256 %s\n", info.TensorHash)
			for f, s := range info.Files {
				fmt.Printf("file       %-28s sha256 %s\n", f, s)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dumpCmd() *cobra.Command {
	var model, wav, tokens, out string
	cmd := &cobra.Command{
		Use:   "dump --model M --audio WAV --tokens ID,ID,… --out DIR",
		Short: "Write mel.npy, encoder.npy and logits.npy to compare numerics with another implementation",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if wav == "" || out == "" {
				return fmt.Errorf("--audio and --out are required")
			}
			ids, err := parseIDs(tokens)
			if err != nil {
				return err
			}
			v, err := openModel(model, false)
			if err != nil {
				return err
			}
			samples, err := audio.Load16kMono(wav)
			if err != nil {
				return err
			}
			return asr.Dump(v.Model, samples, ids, out)
		},
	}
	f := cmd.Flags()
	f.StringVar(&model, "model", "", "model folder or ggml file")
	f.StringVar(&wav, "audio", "", "audio file (WAV or FLAC, any rate)")
	f.StringVar(&tokens, "tokens", "", "comma-separated decoder token ids")
	f.StringVar(&out, "out", "", "output folder")
	return cmd
}

func parseIDs(s string) ([]int, error) {
	var ids []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("bad token id %q", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func exportCmd() *cobra.Command {
	var model, out, format string
	var f16, compress bool
	cmd := &cobra.Command{
		Use:   "export --model M --out PATH [--format ggml|hf]",
		Short: "Write a model as a whisper.cpp ggml file or a Hugging Face folder",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			v, err := openModel(model, false)
			if err != nil {
				return err
			}
			switch format {
			case "ggml":
				return asr.ExportGGML(out, v.Model, v.Tokenizer, f16)
			case "hf":
				return asr.Save(out, v.Model, v.Config, v.Tokenizer, asr.SaveOptions{F16: f16, Compress: compress})
			}
			return fmt.Errorf("unknown --format %q (want ggml or hf)", format)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&model, "model", "", "model folder or ggml file")
	fl.StringVar(&out, "out", "", "output file (ggml) or folder (hf)")
	fl.StringVar(&format, "format", "ggml", "ggml or hf")
	fl.BoolVar(&f16, "f16", true, "store weights in half precision")
	fl.BoolVar(&compress, "compress", false, "hf: write model.safetensors.zst")
	return cmd
}

// openModelOrDefault is openModel with the embedded default model for an empty path.
func openModelOrDefault(path string, f16 bool) (*asr.Variant, error) {
	if path == "" {
		return defaultmodel.Open(asr.OpenOptions{F16: f16})
	}
	return openModel(path, f16)
}

func setThreads(n int) {
	if n > 0 {
		tensor.SetThreads(n)
	}
}
