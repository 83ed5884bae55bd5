package experts

// Shapes (legend in doc.go): x [T, C], fc1 W1 [N, C] + B1 [N], fc2 W2 [C, N] + B2 [C],
// hidden h [T, N], expert e owns neurons e·S … (e+1)·S−1.

import (
	"fmt"

	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// FFN is one ReLU feed-forward block, fc2(relu(fc1(x))), whose N hidden neurons are split into
// E experts of S = N/E contiguous neurons: expert e is rows e·S…(e+1)·S−1 of W1 and B1 and the
// same columns of W2. Weights are immutable after NewFFN and shared by every stream.
type FFN struct {
	C, N, E int
	W1      []float32 // [N, C] fc1 weight, PyTorch's [out, in] layout
	B1      []float32 // [N] fc1 bias, or nil
	W2      []float32 // [C, N] fc2 weight
	B2      []float32 // [C] fc2 bias, or nil

	// Layer is this block's index in a Pathway (set by the model that owns the block).
	Layer int

	// w2e holds W2's column blocks packed per expert, [E][C, S], so that each expert's fc2 is
	// one Linear on a contiguous weight, which lets tensor.Linear use its small-m kernel for
	// decoding. It doubles fc2's memory (1 MiB per layer for chorus-micro); a strided GEMM
	// entry point in tensor/ would remove the copy.
	w2e []float32
	// w1t and w2r are each expert's weights laid out for tensor.ExpertFFN, the fused kernel
	// that runs an expert on its tokens with its weights in L1: fc1 transposed per expert
	// ([E][C, S]) and fc2 transposed (W2ᵀ [N, C], expert e's rows e·S…). Two more copies of
	// the block's weights (2 MiB per layer for chorus-micro).
	w1t, w2r []float32
}

// NewFFN wraps fc1 (w1 [N, C], b1 [N] or nil) and fc2 (w2 [C, N], b2 [C] or nil) as a block of
// e experts. The slices are kept, not copied, and must not be modified afterwards.
func NewFFN(w1, b1, w2, b2 []float32, c, n, e int) (*FFN, error) {
	switch {
	case c <= 0 || n <= 0 || e <= 0:
		return nil, fmt.Errorf("experts: ffn C %d N %d E %d", c, n, e)
	case n%e != 0:
		return nil, fmt.Errorf("experts: %d neurons do not split into %d equal experts", n, e)
	case len(w1) != n*c || len(w2) != c*n:
		return nil, fmt.Errorf("experts: ffn weights %d and %d values for C %d N %d", len(w1), len(w2), c, n)
	case b1 != nil && len(b1) != n, b2 != nil && len(b2) != c:
		return nil, fmt.Errorf("experts: ffn biases %d and %d values for C %d N %d", len(b1), len(b2), c, n)
	}
	f := &FFN{C: c, N: n, E: e, W1: w1, B1: b1, W2: w2, B2: b2}
	s := n / e
	f.w2e = make([]float32, c*n)
	for ex := range e {
		blk := f.w2e[ex*c*s : (ex+1)*c*s]
		for r := range c {
			copy(blk[r*s:(r+1)*s], w2[r*n+ex*s:r*n+(ex+1)*s])
		}
	}
	f.w1t = make([]float32, n*c)
	f.w2r = make([]float32, n*c)
	for ex := range e {
		blk := f.w1t[ex*c*s : (ex+1)*c*s]
		for u := range s {
			row := w1[(ex*s+u)*c : (ex*s+u+1)*c]
			for k, v := range row {
				blk[k*s+u] = v
			}
		}
	}
	for r := range c {
		for j := range n {
			f.w2r[j*c+r] = w2[r*n+j]
		}
	}
	return f, nil
}

// FromLinear builds a block of e experts from a model's fc1 and fc2 layers (half-precision
// weights are converted to float32 copies).
func FromLinear(fc1, fc2 *nn.Linear, e int) (*FFN, error) {
	if fc1.Out != fc2.In || fc1.In != fc2.Out {
		return nil, fmt.Errorf("experts: fc1 %d→%d does not feed fc2 %d→%d", fc1.In, fc1.Out, fc2.In, fc2.Out)
	}
	var b1, b2 []float32
	if fc1.B != nil {
		b1 = fc1.B.Data
	}
	if fc2.B != nil {
		b2 = fc2.B.Data
	}
	return NewFFN(fc1.Weight(), b1, fc2.Weight(), b2, fc1.In, fc1.Out, e)
}

// S is the number of neurons per expert.
func (f *FFN) S() int { return f.N / f.E }

// Permute returns the block with its neurons reordered so that new neuron i is old neuron
// perm[i]: rows of W1 and B1 and columns of W2 move together, so the block computes the same
// function (a sum over neurons does not depend on their order). The new block has e experts.
func (f *FFN) Permute(perm []int, e int) (*FFN, error) {
	if err := checkPerm(perm, f.N); err != nil {
		return nil, err
	}
	c, n := f.C, f.N
	w1 := make([]float32, n*c)
	w2 := make([]float32, c*n)
	var b1 []float32
	if f.B1 != nil {
		b1 = make([]float32, n)
	}
	for i, p := range perm {
		copy(w1[i*c:(i+1)*c], f.W1[p*c:(p+1)*c])
		if b1 != nil {
			b1[i] = f.B1[p]
		}
	}
	for r := range c {
		src, dst := f.W2[r*n:(r+1)*n], w2[r*n:(r+1)*n]
		for i, p := range perm {
			dst[i] = src[p]
		}
	}
	g, err := NewFFN(w1, b1, w2, f.B2, c, n, e)
	if err != nil {
		return nil, err
	}
	g.Layer = f.Layer
	return g, nil
}

// checkPerm reports whether perm is a permutation of 0…n−1.
func checkPerm(perm []int, n int) error {
	if len(perm) != n {
		return fmt.Errorf("experts: permutation of %d entries for %d neurons", len(perm), n)
	}
	seen := make([]bool, n)
	for i, p := range perm {
		if p < 0 || p >= n || seen[p] {
			return fmt.Errorf("experts: permutation entry %d is %d: not a permutation of 0…%d", i, p, n-1)
		}
		seen[p] = true
	}
	return nil
}

// tokens returns T for x [T, C] (or [.., C]) and panics when x's width is not C: a wrong
// width is a programming error in the model wiring, not bad input.
func (f *FFN) tokens(x *tensor.T) int {
	if c := x.Shape[len(x.Shape)-1]; c != f.C {
		panic(fmt.Sprintf("experts: ffn input %v, want width %d", x.Shape, f.C))
	}
	return len(x.Data) / f.C
}

// Hidden returns relu(fc1(x)) [T, N] for x [T, C]: what the oracle router ranks experts by and
// what co-activation clustering records.
func (f *FFN) Hidden(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	t := f.tokens(x)
	h := ctx.New(t, f.N)
	tensor.Linear(h.Data, x.Data, f.W1, f.B1, t, f.C, f.N)
	tensor.ReLU(h.Data, h.Data)
	return h
}

// Dense is the block with every expert: fc2(relu(fc1(x))) for x [T, C] → [T, C] (x's shape).
func (f *FFN) Dense(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	t := f.tokens(x)
	h := f.Hidden(ctx, x)
	out := ctx.New(x.Shape...)
	tensor.Linear(out.Data, h.Data, f.W2, f.B2, t, f.N, f.C)
	return out
}

// ExpertMass returns, for x [T, C], each expert's sum of positive activations [T, E]: the
// quantity MoEfication's router predicts and the oracle ranks by. It costs a dense fc1.
func (f *FFN) ExpertMass(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	h := f.Hidden(ctx, x)
	return massOf(ctx, h, f.E)
}

// massOf sums hidden activations h [T, N] (already non-negative) over each expert's S
// neurons, giving [T, E].
func massOf(ctx *tensor.Ctx, h *tensor.T, e int) *tensor.T {
	t, n := h.Shape[0], h.Shape[1]
	s := n / e
	m := ctx.New(t, e)
	for i := range t {
		row := h.Data[i*n : (i+1)*n]
		for ex := range e {
			var sum float32
			for _, v := range row[ex*s : (ex+1)*s] {
				sum += v
			}
			m.Data[i*e+ex] = sum
		}
	}
	return m
}
