package prune

import (
	"fmt"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// Side is the encoder or the decoder stack.
type Side int

const (
	Encoder Side = iota
	Decoder
	numSides
)

func (s Side) String() string {
	if s == Encoder {
		return "encoder"
	}
	return "decoder"
}

// Kind is one granularity of gates. Every kind is a per-layer row of gates except Hidden,
// which is one vector per stack: the residual stream's dimensions are shared by all its
// layers, so a hidden dimension is kept or removed everywhere at once (CoFi §3.1).
type Kind int

const (
	Heads      Kind = iota // [L, H] self-attention heads
	Attn                   // [L, 1] whole self-attention sublayers
	CrossHeads             // [L, H] cross-attention heads (decoder only)
	Cross                  // [L, 1] whole cross-attention sublayers (decoder only)
	Units                  // [L, F] FFN intermediate units
	FFN                    // [L, 1] whole FFN sublayers
	Hidden                 // [1, C] hidden dimensions of the stack's residual stream
	NumKinds
)

var kindNames = [NumKinds]string{"heads", "attn", "cross_heads", "cross", "units", "ffn", "hidden"}

func (k Kind) String() string {
	if k >= 0 && k < NumKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Stack is the prunable shape of one encoder or decoder stack.
type Stack struct {
	Layers, Width, Heads, FFN int
	Cross                     bool // decoder layers have a cross-attention sublayer
}

// HeadDim is D = C/H.
func (s Stack) HeadDim() int { return s.Width / s.Heads }

// Shape returns the [rows, size] of a kind's gates in this stack, ok false when the stack has
// none (cross-attention in the encoder, or a stack without layers).
func (s Stack) Shape(k Kind) (rows, size int, ok bool) {
	switch k {
	case Heads:
		return s.Layers, s.Heads, s.Layers > 0
	case Attn, FFN:
		return s.Layers, 1, s.Layers > 0
	case CrossHeads:
		return s.Layers, s.Heads, s.Cross && s.Layers > 0
	case Cross:
		return s.Layers, 1, s.Cross && s.Layers > 0
	case Units:
		return s.Layers, s.FFN, s.Layers > 0
	case Hidden:
		return 1, s.Width, true
	}
	return 0, 0, false
}

// Structure is what pruning needs to know of a Whisper model: the two stacks, plus the sizes
// of the tensors that are not in any layer but lose columns with the hidden dimensions (the
// conv stem, positional and token embeddings, final layer norms).
type Structure struct {
	Side           [numSides]Stack
	Mels, AudioCtx int
	Vocab, TextCtx int
}

// NewStructure reads a Whisper model's structure from its dimensions. The encoder and decoder
// widths must agree: cross-attention projects encoder features with [C, C] matrices.
func NewStructure(d whisper.Dims) (Structure, error) {
	if err := d.Validate(); err != nil {
		return Structure{}, fmt.Errorf("prune: %w", err)
	}
	if !d.Uniform() {
		// Gates are [layers, heads] and [layers, units] rows: one size per stack.
		return Structure{}, fmt.Errorf("prune: the model's layers have their own sizes (an already pruned variant); pruning needs one head count and FFN width per stack")
	}
	if d.GatedExperts > 0 {
		// The unit gates would cut across experts whose outputs the router weights; prune
		// the dense parent, then upcycle.
		return Structure{}, fmt.Errorf("prune: the model's feed-forward blocks are gated experts (an upcycled variant); prune its dense parent instead")
	}
	if d.NAudioState != d.NTextState {
		return Structure{}, fmt.Errorf("prune: encoder width %d differs from decoder width %d", d.NAudioState, d.NTextState)
	}
	ffn := func(f, c int) int {
		if f > 0 {
			return f
		}
		return 4 * c // whisper.Dims: 0 means Whisper's 4·width
	}
	return Structure{
		Side: [numSides]Stack{
			{Layers: d.NAudioLayer, Width: d.NAudioState, Heads: d.NAudioHead, FFN: ffn(d.EncoderFFN, d.NAudioState)},
			{Layers: d.NTextLayer, Width: d.NTextState, Heads: d.NTextHead, FFN: ffn(d.DecoderFFN, d.NTextState), Cross: true},
		},
		Mels: d.NMels, AudioCtx: d.NAudioCtx, Vocab: d.NVocab, TextCtx: d.NTextCtx,
	}, nil
}

// Set holds one tensor per side and kind, shaped [rows, size] as Stack.Shape says (nil where
// the stack has no such gates): the gates' log α, or a sample of masks, or test-time masks.
type Set [numSides][NumKinds]*tensor.T

// NewSet returns a Set of tensors for s, every value v.
func NewSet(s Structure, v float32) Set {
	var out Set
	for side := range numSides {
		for k := range NumKinds {
			if r, n, ok := s.Side[side].Shape(k); ok {
				t := tensor.New(r, n)
				for i := range t.Data {
					t.Data[i] = v
				}
				out[side][k] = t
			}
		}
	}
	return out
}

// Layer returns row l of side's kind as a [1, size] tensor recorded on ctx's tape (Hidden has
// one row: l is ignored), ready for ctx.GroupScale: the hook by which the model applies a
// mask to a layer's activations. It returns nil where the Set has no such gates.
func (s *Set) Layer(ctx *tensor.Ctx, side Side, k Kind, l int) *tensor.T {
	t := s[side][k]
	if t == nil {
		return nil
	}
	if k == Hidden {
		l = 0
	}
	return ctx.Rows(t, l, l+1)
}

// Probs holds a float64 value per gate, laid out as Set: keep probabilities P(z ≠ 0), or
// gradients with respect to them.
type Probs [numSides][NumKinds][]float64

// NewProbs returns zeroed Probs shaped for s.
func NewProbs(s Structure) Probs {
	var p Probs
	for side := range numSides {
		for k := range NumKinds {
			if r, n, ok := s.Side[side].Shape(k); ok {
				p[side][k] = make([]float64, r*n)
			}
		}
	}
	return p
}

// KeepProbs returns P(z ≠ 0) for every gate of logAlpha.
func (h HardConcrete) KeepProbs(logAlpha *Set) Probs {
	var p Probs
	for side := range numSides {
		for k := range NumKinds {
			if t := logAlpha[side][k]; t != nil {
				p[side][k] = make([]float64, len(t.Data))
				for i, la := range t.Data {
					p[side][k][i] = h.KeepProb(float64(la))
				}
			}
		}
	}
	return p
}

// KeepProbsBackward accumulates dLogAlpha += dp · p(1 − p), the derivative of σ at the
// probabilities p that KeepProbs returned.
func KeepProbsBackward(dLogAlpha *Set, dp, p Probs) {
	for side := range numSides {
		for k := range NumKinds {
			if g := dLogAlpha[side][k]; g != nil {
				for i, pi := range p[side][k] {
					g.Data[i] += float32(dp[side][k][i] * pi * (1 - pi))
				}
			}
		}
	}
}

// Gate implements whisper.Masks: the model's mask point g of layer l of stack st is this
// Set's kind of the same number (the numbering is shared; TestKindsMatchGates pins it), as a
// [1, size] row recorded on ctx's tape (see Layer).
func (s *Set) Gate(ctx *tensor.Ctx, st whisper.Stack, g whisper.Gate, l int) *tensor.T {
	return s.Layer(ctx, Side(st), Kind(g), l)
}
