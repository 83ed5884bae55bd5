package moefy

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/formats"
)

// SaveOverlay writes the MoE-fied variant as an overlay over its base variant folder base
// (the files of the variant that was MoE-fied, unchanged): config.json (base's, with the
// expert layout marked Unpermuted, so the experts are permuted when built), experts.safetensors
// (the routers only) and card.json, whose files_sha256 covers the variant as it is read —
// base's weights and tokenizer with the overlay's config and routers — and records the base
// weights' SHA-256, so a loader can refuse an overlay over other weights. An overlay over
// the embedded default model is a few hundred kilobytes where a whole variant is the model's
// size again. Written to dir+".tmp" and renamed.
func SaveOverlay(dir string, base fs.FS, res *Result, card map[string]any) error {
	cfgBytes, err := fs.ReadFile(base, "config.json")
	if err != nil {
		return fmt.Errorf("save overlay: base: %w", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(cfgBytes, &cfg); err != nil {
		return fmt.Errorf("save overlay: base config.json: %w", err)
	}
	chorus, _ := cfg["chorus"].(map[string]any)
	if chorus == nil {
		chorus = map[string]any{}
	}
	layout := *res.Layout
	layout.Unpermuted = true
	chorus["experts"] = &layout
	cfg["chorus"] = chorus
	newCfg, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	rts, err := res.routerTensors()
	if err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	var names []string
	for n := range rts {
		names = append(names, n)
	}
	slices.Sort(names)
	ck, err := formats.CheckpointFromTensors(rts, names)
	if err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}

	tmp := filepath.Clean(dir) + ".tmp"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "config.json"), append(newCfg, '\n'), 0o644); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	if err := formats.WriteSafetensorsFile(filepath.Join(tmp, asr.ExpertsFile), ck, false); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	// Checksums of the variant as read: the overlay's own files, then base's others.
	sums := map[string]string{}
	for _, f := range []string{"config.json", asr.ExpertsFile} {
		if sums[f], err = asr.FSFileSHA256(os.DirFS(tmp), f); err != nil {
			return fmt.Errorf("save overlay: %w", err)
		}
	}
	entries, err := fs.ReadDir(base, ".")
	if err != nil {
		return fmt.Errorf("save overlay: base: %w", err)
	}
	weights := ""
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || n == "card.json" || sums[n] != "" {
			continue
		}
		if sums[n], err = asr.FSFileSHA256(base, n); err != nil {
			return fmt.Errorf("save overlay: base: %w", err)
		}
		if n == "model.safetensors" || n == "model.safetensors.zst" {
			weights = n
		}
	}
	if weights == "" {
		return fmt.Errorf("save overlay: base has no model.safetensors[.zst]")
	}
	card["files_sha256"] = sums
	card["base_weights"] = weights
	card["base_weights_sha256"] = sums[weights]
	b, err := json.MarshalIndent(card, "", "  ")
	if err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "card.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("save overlay: %w", err)
	}
	return os.Rename(tmp, dir)
}
