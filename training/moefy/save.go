package moefy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/tensor"
)

// SaveOptions tune Save.
type SaveOptions struct {
	F16      bool // store the model's matrices in half precision (routers stay float32)
	Compress bool // model.safetensors.zst
	// Routing, when set, is the routing the variant runs for requests that name no router
	// (config.json's chorus.routing; e.g. mlp at k/E = 1/4 for the flagship).
	Routing *asr.RoutingDefault
}

// Save writes the MoE-fied variant of v as a folder: config.json (v's config with the
// expert layout in its chorus block), model.safetensors[.zst] (v's weights with every
// block's neurons permuted, plus the router tensors under the layout's prefixes), the
// tokenizer, and card (any JSON object) as card.json with the files' SHA-256. It writes
// into dir+".tmp" and renames, so an interrupted run never leaves a half-written variant.
func Save(dir string, v *asr.Variant, res *Result, card any, o SaveOptions) error {
	ts, order := v.Model.Tensors()
	for i, ly := range res.Layout.Layers {
		f := res.FFNs[i]
		if f == nil { // an empty block: the model's (empty) weights as they are
			continue
		}
		for _, p := range []struct {
			name  string
			data  []float32
			shape []int
		}{{".fc1.weight", f.W1, []int{f.N, f.C}}, {".fc1.bias", f.B1, []int{f.N}}, {".fc2.weight", f.W2, []int{f.C, f.N}}} {
			if _, ok := ts[ly.Name+p.name]; !ok || p.data == nil {
				return fmt.Errorf("save moe: model has no %s%s", ly.Name, p.name)
			}
			ts[ly.Name+p.name] = tensor.FromData(p.data, p.shape...)
		}
	}
	rts, err := res.routerTensors()
	if err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	var rnames []string
	for n, t := range rts {
		ts[n] = t
		rnames = append(rnames, n)
	}
	slices.Sort(rnames)
	ck, err := formats.CheckpointFromTensors(ts, append(order, rnames...))
	if err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	cfg := *v.Config
	if o.F16 {
		for _, n := range order {
			if t := ck.Get(n); len(t.Shape) >= 2 {
				ck.Tensors[n] = t.Convert(formats.F16)
			}
		}
		cfg.TorchDType = "float16"
	}
	chorus := map[string]any{}
	if len(cfg.Chorus) > 0 {
		if err := json.Unmarshal(cfg.Chorus, &chorus); err != nil {
			return fmt.Errorf("save moe: config chorus block: %w", err)
		}
	}
	chorus["experts"] = res.Layout
	if o.Routing != nil {
		chorus["routing"] = o.Routing
	}
	if cfg.Chorus, err = json.Marshal(chorus); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	tmp := filepath.Clean(dir) + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := formats.WriteHFConfigFile(filepath.Join(tmp, "config.json"), &cfg); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	name := "model.safetensors"
	if o.Compress {
		name += ".zst"
	}
	if err := formats.WriteSafetensorsFile(filepath.Join(tmp, name), ck, o.Compress); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if v.Tokenizer != nil {
		if err := v.Tokenizer.Save(tmp); err != nil {
			return fmt.Errorf("save moe: tokenizer: %w", err)
		}
	}
	// Permuting FFN neurons leaves the encoder's output as it was: the CTC head and the
	// language model carry over unchanged.
	if err := asr.WriteCTCHead(tmp, v.CTC); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := asr.WriteLM(tmp, v.LM); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := asr.WriteCard(tmp, card); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return fmt.Errorf("save moe: %w", err)
	}
	return nil
}
