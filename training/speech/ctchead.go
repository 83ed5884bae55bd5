package speech

import (
	"cmp"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/formats"
)

// writeCTCHead stores h in the variant folder dir (before its card is written, so the card's
// checksums cover it).
func writeCTCHead(dir string, h *asr.CTCHead) error {
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
	if err := formats.WriteSafetensorsFile(filepath.Join(dir, asr.CTCHeadFile), ck, true); err != nil {
		return fmt.Errorf("ctc head: %w", err)
	}
	return nil
}

// logCTCHead says where a run that starts from a variant gets its CTC head, and warns when a
// fresh head will pull on the pretrained encoder.
func logCTCHead(log *slog.Logger, from string, h *asr.CTCHead, weight float64) {
	switch {
	case h != nil:
		log.Info("CTC head from the starting variant", "from", cmp.Or(from, "embedded default"))
	case weight > 0:
		log.Warn("the starting variant keeps no CTC head: training a fresh one, whose first gradients pull on the pretrained encoder (set objective.ctc_weight 0 to avoid it)",
			"from", cmp.Or(from, "embedded default"), "ctc_weight", weight)
	}
}
