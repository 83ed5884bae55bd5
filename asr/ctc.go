package asr

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/tensor"
)

// CTCHeadFile is the CTC head a chorus-trained variant keeps beside its weights
// (zstd-compressed safetensors: "weight" [vocab ordinary tokens + blank, d_model] in f16,
// "bias" in f32). Training keeps it so that a fine-tune, prune or upcycling run starting from
// the variant continues with the head its encoder was trained with; decoding reads it for
// joint CTC/attention decoding (decode.Options.CTCWeight). A pruned variant's head keeps the
// columns of the encoder's kept hidden dimensions, so it fits every variant derived from its
// model. Whisper's own checkpoints have none.
const CTCHeadFile = "ctc_head.safetensors.zst"

// CTCHead is a CTC head's weights: W [blank+1, d_model], B [blank+1], where blank is the
// tokenizer's EOT id and the rows below it are the ordinary text tokens.
type CTCHead struct{ W, B *tensor.T }

// readCTCHead reads the CTC head of the variant folder dir in fsys, or returns nil when it has
// none.
func readCTCHead(fsys fs.FS, dir, name string) (*CTCHead, error) {
	r, err := fsys.Open(filepath.Join(dir, CTCHeadFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open model %s: ctc head: %w", name, err)
	}
	defer r.Close()
	ck, err := formats.ReadSafetensorsFrom(r)
	if err != nil {
		return nil, fmt.Errorf("open model %s: ctc head: %w", name, err)
	}
	w, bias := ck.Get("weight"), ck.Get("bias")
	if w == nil || bias == nil || len(w.Shape) != 2 || len(bias.Shape) != 1 || w.Shape[0] != bias.Shape[0] {
		return nil, fmt.Errorf("open model %s: ctc head: want tensors weight [n, d] and bias [n]", name)
	}
	return &CTCHead{W: w.ToTensor(), B: bias.ToTensor()}, nil
}

// Fits reports whether h is a head for blank+1 outputs over width c.
func (h *CTCHead) Fits(blank, c int) error {
	if h.W.Shape[0] != blank+1 || h.W.Shape[1] != c || h.B.Shape[0] != blank+1 {
		return fmt.Errorf("ctc head [%d, %d] does not fit the model (tokenizer blank %d, encoder width %d)", h.W.Shape[0], h.W.Shape[1], blank, c)
	}
	return nil
}

// LogProbs returns the head's log-probabilities for the audio features xa [T, C]: [T, blank+1]
// flat, in dst's storage when it is large enough.
func (h *CTCHead) LogProbs(dst []float32, xa *tensor.T) []float32 {
	n, c := h.W.Shape[0], h.W.Shape[1]
	t := xa.Shape[0]
	if cap(dst) < t*n {
		dst = make([]float32, t*n)
	}
	dst = dst[:t*n]
	tensor.Linear(dst, xa.Data, h.W.Data, h.B.Data, t, c, n)
	for i := range t {
		row := dst[i*n : (i+1)*n]
		tensor.LogSoftmax(row, row)
	}
	return dst
}

// WriteCTCHead stores h in the variant folder dir as CTCHeadFile (weights in half precision);
// nil writes nothing. Write it before the card, so that the card's checksums cover it.
func WriteCTCHead(dir string, h *CTCHead) error {
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
