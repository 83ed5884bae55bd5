package speech

import (
	"encoding/json"
	"path/filepath"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/training/prune"
)

// MagnitudeResult describes a variant PruneMagnitude wrote.
type MagnitudeResult struct {
	Achieved      float64 // share of the encoder and decoder layers' parameters removed
	Before, After int64   // parameters of the parent and of the pruned variant
	Dir           string
}

// PruneMagnitude is the magnitude-pruning baseline as a variant folder: v's heads and FFN
// units scored by their weights' magnitude (prune.MagnitudeMasks), the lowest removed until
// target of the layers' parameters is gone, the smaller dense model materialised and written
// to out with a card recording the method, target and sizes. No data, no training.
func PruneMagnitude(v *asr.Variant, target float64, unitBlock int, out string) (*MagnitudeResult, error) {
	start := time.Now()
	z, achieved, err := prune.MagnitudeMasks(v.Model, target, unitBlock)
	if err != nil {
		return nil, err
	}
	mat, err := prune.MaterialiseModel(v.Model, z)
	if err != nil {
		return nil, err
	}
	cfg := asr.ConfigFromDims(mat.Model.Dims)
	ch := asr.DimsChorus(mat.Model.Dims)
	ch.EncoderWindow = v.Chorus.EncoderWindow
	cfg.Chorus, _ = json.Marshal(ch) // plain values: cannot fail
	if err := asr.Save(out, mat.Model, cfg, v.Tokenizer, asr.SaveOptions{Compress: true, F16: true}); err != nil {
		return nil, err
	}
	// The parent's CTC head (if it has one) goes along: the pruned encoder's outputs moved, but
	// it is still the best start for fine-tuning the pruned variant.
	head := v.CTC
	if head != nil {
		head = &asr.CTCHead{W: prune.CutColumns(head.W, mat.Hidden[prune.Encoder]), B: head.B}
	}
	if err := asr.WriteCTCHead(out, head); err != nil {
		return nil, err
	}
	if err := asr.WriteLM(out, v.LM); err != nil {
		return nil, err
	}
	before, after := v.Model.NumParams(), mat.Model.NumParams()
	card := map[string]any{
		"name": filepath.Base(filepath.Clean(out)), "parent": v.Path, "kind": "prune",
		"prune": map[string]any{"method": "magnitude", "target": target, "achieved_sparsity": achieved, "unit_block": unitBlock,
			"parent_params": before, "params": after, "layers": mat.Layers},
		"wall_s": time.Since(start).Seconds(),
	}
	if err := asr.WriteCard(out, card); err != nil {
		return nil, err
	}
	return &MagnitudeResult{Achieved: achieved, Before: before, After: after, Dir: out}, nil
}
