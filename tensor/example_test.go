package tensor_test

import (
	"fmt"

	"github.com/chorus-asr/chorus/tensor"
)

// A linear layer with PyTorch's [out, in] weight layout: out = x·wᵀ + b.
func ExampleLinear() {
	x := []float32{1, 2, 3} // one row, K = 3
	w := []float32{
		1, 0, 0, // output 0 picks x[0]
		0, 1, 1, // output 1 sums x[1] and x[2]
	}
	b := []float32{0.5, -1}
	out := make([]float32, 2)
	tensor.Linear(out, x, w, b, 1, 3, 2)
	fmt.Println(out)
	// Output: [1.5 4]
}

// Decoding with half-precision weights: convert once at load time, then LinearF16 streams the
// halves and converts them in registers.
func ExampleLinearF16() {
	w32 := []float32{0.5, 0.25, -2, 1}
	w16 := make([]uint16, len(w32))
	tensor.F32ToF16Slice(w16, w32)
	out := make([]float32, 2)
	tensor.LinearF16(out, []float32{2, 4}, w16, nil, 1, 2, 2)
	fmt.Println(out, tensor.F16ToF32(tensor.F32ToF16(0.1)))
	// Output: [2 0] 0.099975586
}

// Causal self-attention over three positions with one head of width 2: the first query sees
// only the first key, so its output is the first value row.
func ExampleAttention() {
	q := []float32{1, 0, 0, 1, 1, 1}
	k := []float32{1, 0, 0, 1, 1, 1}
	v := []float32{10, 20, 30, 40, 50, 60}
	out := make([]float32, 6)
	tensor.Attention(out, q, k, v, 3, 3, 1, 2, true)
	fmt.Printf("%.1f\n", out[:2])
	// Output: [10.0 20.0]
}
