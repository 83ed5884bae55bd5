// Package nn holds the small layer structs models are composed of (Linear, LayerNorm,
// Conv1d, Embedding) and the reflective loader that fills them from a checkpoint by the
// names in their `ckpt` struct tags. Layers hold weights only; per-stream state lives with
// the caller.
package nn

import (
	"github.com/chorus-asr/chorus/tensor"
)

// Linear is y = x·Wᵀ + b, with W in PyTorch's [Out, In] layout.
type Linear struct {
	W   *tensor.T `ckpt:"weight"` // [Out, In]; nil when the weight is kept in W16
	W16 []uint16  // [Out, In] IEEE half; used instead of W when set
	B   *tensor.T `ckpt:"bias"` // [Out], or nil when the layer has none (Whisper's k_proj)

	In, Out int
}

// NewLinear declares a Linear of the given size (weights are filled by Load).
func NewLinear(in, out int, bias bool) Linear {
	l := Linear{In: in, Out: out, W: &tensor.T{Shape: []int{out, in}}}
	if bias {
		l.B = &tensor.T{Shape: []int{out}}
	}
	return l
}

// Forward applies the layer to x [.., In].
func (l *Linear) Forward(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	if l.W16 != nil {
		return ctx.LinearF16(x, l.W16, l.Out, l.B)
	}
	return ctx.Linear(x, l.W, l.B)
}

// ToF16 moves the weight to half-precision storage (f32 compute). Decoding a token is bound
// by memory traffic, so halving the bytes read halves that part of the time.
func (l *Linear) ToF16() {
	if l.W == nil || l.W16 != nil {
		return
	}
	l.W16 = make([]uint16, len(l.W.Data))
	tensor.F32ToF16Slice(l.W16, l.W.Data)
	l.W = nil
}

// Weight returns the weight as float32, converting from half precision if needed.
func (l *Linear) Weight() []float32 {
	if l.W16 != nil {
		w := make([]float32, len(l.W16))
		tensor.F16ToF32Slice(w, l.W16)
		return w
	}
	return l.W.Data
}

// LayerNorm is torch.nn.LayerNorm over the last dimension.
type LayerNorm struct {
	G   *tensor.T `ckpt:"weight"` // [C]
	B   *tensor.T `ckpt:"bias"`   // [C]
	Eps float32
}

// NewLayerNorm declares a LayerNorm of width c with Whisper's eps 1e-5.
func NewLayerNorm(c int) LayerNorm {
	return LayerNorm{G: &tensor.T{Shape: []int{c}}, B: &tensor.T{Shape: []int{c}}, Eps: 1e-5}
}

// Forward normalises x [.., C].
func (n *LayerNorm) Forward(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	return ctx.LayerNorm(x, n.G, n.B, n.Eps)
}

// Conv1d is torch.nn.Conv1d on time-major data.
type Conv1d struct {
	W           *tensor.T `ckpt:"weight"` // [Cout, Cin, KW]
	B           *tensor.T `ckpt:"bias"`   // [Cout]
	Stride, Pad int
}

// NewConv1d declares a Conv1d.
func NewConv1d(cin, cout, kw, stride, pad int) Conv1d {
	return Conv1d{W: &tensor.T{Shape: []int{cout, cin, kw}}, B: &tensor.T{Shape: []int{cout}}, Stride: stride, Pad: pad}
}

// Forward convolves x [Tin, Cin] into [Tout, Cout].
func (c *Conv1d) Forward(ctx *tensor.Ctx, x *tensor.T) *tensor.T {
	return ctx.Conv1d(x, c.W, c.B, c.Stride, c.Pad)
}
