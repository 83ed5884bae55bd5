package speech

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/tensor"
)

// CTCHeadFile is the training-only CTC head that a trained variant keeps beside its weights
// (zstd-compressed safetensors: "weight" [vocab ordinary tokens + blank, d_model] in f16,
// "bias" in f32). A fine-tune, prune or upcycling run that starts from the variant continues
// with the head its encoder was trained with: a fresh head's gradients (|g| ≈ 13 at the
// start, clipped) would first pull the pretrained encoder towards an untrained classifier.
// Inference never reads it. A pruned variant's head keeps the columns of the encoder's kept
// hidden dimensions (prune.Materialised.Hidden), so it fits every variant derived from its
// model.
const CTCHeadFile = "ctc_head.safetensors.zst"

// CTCHead is a CTC head's weights: W [blank+1, d_model], B [blank+1].
type CTCHead struct{ W, B *tensor.T }

// ReadCTCHead reads the CTC head stored with v (a folder, or an embedded variant), or returns
// nil when v has none (a variant made before heads were kept, or not trained by chorus).
func ReadCTCHead(v *asr.Variant) (*CTCHead, error) {
	var fsys fs.FS
	if name, ok := strings.CutPrefix(v.Path, "embedded:"); ok {
		var err error
		if fsys, err = defaultmodel.VariantFS(name); err != nil {
			return nil, err
		}
	} else {
		if v.Path == "" {
			return nil, nil
		}
		dir := v.Path
		if st, err := os.Stat(dir); err == nil && !st.IsDir() {
			dir = filepath.Dir(dir) // a ggml file or a single checkpoint: its folder
		}
		fsys = os.DirFS(dir)
	}
	b, err := fs.ReadFile(fsys, CTCHeadFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ctc head: %w", err)
	}
	ck, err := formats.ReadSafetensorsFrom(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("ctc head of %s: %w", v.Path, err)
	}
	w, bias := ck.Get("weight"), ck.Get("bias")
	if w == nil || bias == nil || len(w.Shape) != 2 || len(bias.Shape) != 1 || w.Shape[0] != bias.Shape[0] {
		return nil, fmt.Errorf("ctc head of %s: want tensors weight [n, d] and bias [n]", v.Path)
	}
	return &CTCHead{W: w.ToTensor(), B: bias.ToTensor()}, nil
}

// writeCTCHead stores h in the variant folder dir (before its card is written, so the card's
// checksums cover it).
func writeCTCHead(dir string, h *CTCHead) error {
	if h == nil {
		return nil
	}
	ck := formats.NewCheckpoint()
	if err := ck.Add(formats.NewF32("weight", h.W.Shape, h.W.Data).Convert(formats.F16)); err != nil {
		return err
	}
	if err := ck.Add(formats.NewF32("bias", h.B.Shape, h.B.Data)); err != nil {
		return err
	}
	if err := formats.WriteSafetensorsFile(filepath.Join(dir, CTCHeadFile), ck, true); err != nil {
		return fmt.Errorf("ctc head: %w", err)
	}
	return nil
}

// logCTCHead says where a run that starts from a variant gets its CTC head, and warns when a
// fresh head will pull on the pretrained encoder.
func logCTCHead(log *slog.Logger, from string, h *CTCHead, weight float64) {
	switch {
	case h != nil:
		log.Info("CTC head from the starting variant", "from", cmp.Or(from, "embedded default"))
	case weight > 0:
		log.Warn("the starting variant keeps no CTC head: training a fresh one, whose first gradients pull on the pretrained encoder (set objective.ctc_weight 0 to avoid it)",
			"from", cmp.Or(from, "embedded default"), "ctc_weight", weight)
	}
}

// fits reports whether h is a head for blank+1 outputs over d_model c.
func (h *CTCHead) fits(blank, c int) error {
	if h.W.Shape[0] != blank+1 || h.W.Shape[1] != c || h.B.Shape[0] != blank+1 {
		return fmt.Errorf("ctc head [%d, %d] does not fit the model (tokenizer blank %d, d_model %d)", h.W.Shape[0], h.W.Shape[1], blank, c)
	}
	return nil
}
