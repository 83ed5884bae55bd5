package whisper

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// TestHalfKV covers a model loaded with F16, whose caches store half precision: incremental
// decoding (the decoding kernel, keys and values widened in registers) must agree with the
// whole-sequence pass (the fused kernel on widened copies), and the logits must stay close to
// the float32 model's.
//
// Tolerance of the first check: the two passes project keys and values with different row
// counts, so their float32 values differ in the last bits (as in TestKVCacheEqualsRecompute,
// 1e-5), and now and then such a difference moves a value across a half-precision rounding
// boundary, a change of 2^-11 relative in one key or value. Measured: 5e-6 for most steps,
// 1.7e-5 for one. 1e-4 leaves room for that and is still far below what a wrong position or
// head does to the logits.
func TestHalfKV(t *testing.T) {
	m32, _ := refModel(t, "small", LoadOptions{})
	m16, _ := refModel(t, "small", LoadOptions{F16: true})
	if m32.halfKV() || !m16.halfKV() {
		t.Fatalf("halfKV: f32 model %v, f16 model %v", m32.halfKV(), m16.halfKV())
	}
	melData, melShape := readNPY(t, filepath.Join(refDir, "mel80.npy"))
	mel := tensor.FromData(melData, melShape...)
	tokens := []int{1, 5, 17, 42, 99, 3, 250, 7, 8, 399}

	st := m16.NewState(2)
	st.Encode(mel)
	full := st.AllLogits(0, tokens)
	st.Logits(1, tokens[:3])
	for i := 3; i < len(tokens); i++ {
		step := st.Logits(1, tokens[i:i+1])
		checkTensor(t, step, full.Row(i), 1e-4, fmt.Sprintf("step %d", i))
	}

	// Half-precision weights and caches against float32: the weights alone move these
	// logits by ~1e-3 (asr's variant tests allow 2e-2 for f16 variants); the caches add
	// rounding of the same size.
	s32 := m32.NewState(1)
	s32.Encode(mel)
	checkTensor(t, full.Data, s32.AllLogits(0, tokens).Data, 2e-2, "f16 vs f32 model")
}
