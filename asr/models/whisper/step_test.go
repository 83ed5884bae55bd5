package whisper

import (
	"fmt"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// TestStepBatchEqualsLogits: feeding one token to each of three hypotheses of different
// lengths at once gives each the logits Logits gives it alone, and leaves the caches as
// Logits would (the next batched step agrees too) — for uniform layers in float32 and half
// precision, and for layers without self- or cross-attention heads.
func TestStepBatchEqualsLogits(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    Dims
		f16  bool
	}{
		{"uniform", gradDims, false},
		{"uniform-f16", gradDims, true},
		{"sized", sizedDims(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewRandom(tc.d, 4, LoadOptions{F16: tc.f16})
			if err != nil {
				t.Fatal(err)
			}
			mel := tensor.New(tc.d.NMels, 12)
			tensor.SeededUniform(mel.Data, 6, "step-mel", 0, 1)
			prompts := [][]int{{1}, {1, 4, 7}, {1, 2}}
			states := [2]*State{m.NewState(3), m.NewState(3)}
			for _, s := range states {
				s.Encode(mel)
				for q, p := range prompts {
					s.Logits(q, p)
				}
			}
			seqs := []int{2, 0, 1}
			for step, toks := range [][]int{{3, 5, 9}, {0, 2, 4}} {
				got := append([]float32(nil), states[0].LogitsBatch(seqs, toks)...)
				v := len(got) / len(seqs)
				for i, q := range seqs {
					want := states[1].Logits(q, toks[i:i+1])
					checkTensor(t, got[i*v:(i+1)*v], want, 1e-6, fmt.Sprintf("step %d hypothesis %d", step, q))
				}
			}
			for q := range prompts {
				if a, b := states[0].Len(q), states[1].Len(q); a != b {
					t.Errorf("hypothesis %d: %d tokens cached, want %d", q, a, b)
				}
			}
		})
	}
}
