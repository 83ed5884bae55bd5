package speech

import (
	"cmp"
	"log/slog"

	"github.com/chorus-asr/chorus/asr"
)

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
