package whisper

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// This file checks that training through the model code works: the tape's gradient of a
// joint CTC/attention loss with respect to every weight tensor of a small Whisper matches
// central finite differences of the same loss.

// gradDims is the smallest model with every block: a conv stem that halves 12 mel frames to
// 6, one encoder and one decoder layer, two heads.
var gradDims = Dims{NMels: 8, NAudioCtx: 6, NAudioState: 8, NAudioHead: 2, NAudioLayer: 1, NVocab: 11, NTextCtx: 8, NTextState: 8, NTextHead: 2, NTextLayer: 1}

// gradSetup is one training example for the small model plus a CTC head on the encoder.
type gradSetup struct {
	m       *Model
	ctcHead *tensor.T // [V, C] encoder features → CTC logits (test-only parameter)
	mel     *tensor.T // [M, 12]
	tokens  []int     // decoder input
	targets []int     // next tokens, one ignored
	labels  []int     // CTC labels
	// inert names the tensors the loss does not read (a pruned layer's empty projections and
	// the layer norm before them), whose gradient must be exactly zero.
	inert map[string]bool
}

const (
	gradIgnore    = -100
	gradSmoothing = 0.1
	ctcWeight     = 0.3
)

func newGradSetup(t testing.TB) *gradSetup { return newGradSetupDims(t, gradDims) }

// newGradSetupDims is newGradSetup for other dimensions of the same sizes (the activation,
// the encoder's attention weighting).
func newGradSetupDims(t testing.TB, dims Dims) *gradSetup {
	m, err := NewRandom(dims, 7, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	rnd := func(n int, scale float64) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(scale * (2*r.Float64() - 1))
		}
		return s
	}
	d := gradDims
	return &gradSetup{
		m:       m,
		ctcHead: tensor.FromData(rnd(d.NVocab*d.NAudioState, 0.5), d.NVocab, d.NAudioState),
		mel:     tensor.FromData(rnd(d.NMels*12, 1), d.NMels, 12),
		tokens:  []int{1, 4, 7, 2, 9, 3},
		targets: []int{4, 7, 2, gradIgnore, 3, 10},
		labels:  []int{3, 5, 5},
	}
}

// loss runs the model on ctx and returns (1−λ)·CE(decoder) + λ·CTC(encoder); with a tape on
// ctx the two losses record their gradients weighted the same way (ScaleGrad).
func (s *gradSetup) loss(ctx *tensor.Ctx) float64 {
	xa := s.m.Encoder.Forward(ctx, s.mel)
	logits := s.m.Decoder.ForwardTrain(ctx, s.tokens, 1, xa)
	ce := ctx.CrossEntropy(ctx.ScaleGrad(logits, 1-ctcWeight), s.targets, gradSmoothing, gradIgnore)
	lp := ctx.LogSoftmax(ctx.Linear(xa, s.ctcHead, nil))
	ctc := ctx.CTCLoss(ctx.ScaleGrad(lp, ctcWeight), s.labels, 0)
	return (1-ctcWeight)*ce + ctcWeight*ctc
}

// TestTrainForwardMatchesInference pins ForwardTrain to the inference path: same logits as
// Encoder.Forward + CrossCaches + Decoder.Forward with KV caches.
func TestTrainForwardMatchesInference(t *testing.T) {
	s := newGradSetup(t)
	ctx := tensor.NewCtx()
	xa := s.m.Encoder.Forward(ctx, s.mel)
	got := s.m.Decoder.ForwardTrain(ctx, s.tokens, 1, xa).Clone()
	c := s.m.NewCaches()
	s.m.Decoder.CrossCaches(ctx, xa, c)
	want := s.m.Decoder.Forward(ctx, s.tokens, c, 0)
	checkTensor(t, got.Data, want.Data, 1e-6, "train vs inference logits")
}

// TestWhisperGradients differentiates the whole model. For a sample of entries of every
// weight tensor it compares the tape's gradient with a finite difference of the same loss,
// evaluated by the float32 model with the losses summed in float64.
//
// The difference is central and Richardson-extrapolated, fd = (4·D(h/2) − D(h))/3 with
// D(h) = (L(w+h) − L(w−h))/2h and h = 1e-2 (each step re-measured after float32 rounding).
// Plain D(h) is off by h²·L⁽³⁾/6, measured up to 2.5e-3 here (conv2.bias, shrinking 4× per
// halving of h: truncation, not a backward error); the extrapolation cancels that term and
// leaves O(h⁴) ≈ 1e-5. Rounding: L (~2.5) carries float32 error ≲ 1e-7 absolute through
// the ~40 ops, divided by 2·(h/2) and weighted 4/3 that is ≲ 3e-5. Hence the tolerance
// |got − fd| ≤ 2e-3·|fd| + 1e-4; a wrong backward step is off by the size of the gradient
// itself (1e-3 to 0.3 here), and every tensor's sample must hold one such gradient.
func TestWhisperGradients(t *testing.T) {
	relu := gradDims
	relu.EncoderAttention = "relu" // GELU feed-forward: a finite difference must not cross ReLU kinks everywhere
	for _, tc := range []struct {
		name string
		d    Dims
	}{{"whisper", gradDims}, {"relu-attention", relu}} {
		t.Run(tc.name, func(t *testing.T) { checkWhisperGradients(t, newGradSetupDims(t, tc.d)) })
	}
}

func checkWhisperGradients(t *testing.T, s *gradSetup) {
	tensors, names := s.m.Tensors()
	tensors["ctc_head"] = s.ctcHead
	names = append(names, "ctc_head")

	ctx := tensor.NewTrainCtx()
	tp := ctx.Tape()
	for _, n := range names {
		tp.Watch(tensors[n])
	}
	s.loss(ctx)
	tp.Backward()

	// Freeze the tape's results before the finite differences perturb the weights.
	grads := map[string][]float32{}
	for _, n := range names {
		grads[n] = append([]float32(nil), tp.Grad(tensors[n]).Data...)
	}
	ctx.Reset()

	eval := func() float64 { return s.loss(tensor.NewCtx()) }
	diff := func(w []float32, i int, h float32) float64 {
		old := w[i]
		w[i] = old + h
		hp := float64(w[i]) - float64(old)
		lp := eval()
		w[i] = old - h
		hm := float64(old) - float64(w[i])
		lm := eval()
		w[i] = old
		return (lp - lm) / (hp + hm)
	}
	const h, rtol, atol = 1e-2, 2e-3, 1e-4
	r := rand.New(rand.NewPCG(5, 6))
	var worst float64
	var report []string
	for _, n := range names {
		w := tensors[n]
		if s.inert[n] { // takes no part in the loss: its gradient must be exactly zero
			for i, g := range grads[n] {
				if g != 0 {
					report = append(report, fmt.Sprintf("%s[%d]: tape %.6g for a tensor the loss does not read", n, i, g))
					break
				}
			}
			continue
		}
		idx := sampleIndices(r, len(w.Data), 4)
		var nonzero bool
		for _, i := range idx {
			fd := (4*diff(w.Data, i, h/2) - diff(w.Data, i, h)) / 3
			got := float64(grads[n][i])
			d := math.Abs(got - fd)
			worst = math.Max(worst, d/(rtol*math.Abs(fd)+atol))
			if d > rtol*math.Abs(fd)+atol {
				report = append(report, fmt.Sprintf("%s[%d]: tape %.6g, finite difference %.6g", n, i, got, fd))
			}
			nonzero = nonzero || math.Abs(fd) > 10*atol
		}
		if !nonzero {
			// Every tensor must be exercised; a zero gradient everywhere would pass trivially.
			report = append(report, fmt.Sprintf("%s: gradient sample all below %g (%v)", n, 10*atol, idx))
		}
	}
	if len(report) > 0 {
		sort.Strings(report)
		t.Fatalf("%d gradient mismatches:\n  %s", len(report), strings.Join(report, "\n  "))
	}
	t.Logf("%d tensors checked; worst |diff| / tolerance %.2f", len(names), worst)
}

// sampleIndices returns up to k distinct indices of [0, n), always including the largest.
func sampleIndices(r *rand.Rand, n, k int) []int {
	if n <= k {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	seen := map[int]bool{n - 1: true}
	out := []int{n - 1}
	for len(out) < k {
		i := r.IntN(n)
		if !seen[i] {
			seen[i] = true
			out = append(out, i)
		}
	}
	return out
}

// BenchmarkEncoderLayerTrainStep times one training step (forward with the tape on, then
// Backward) of a whisper-tiny-sized encoder layer: 1500 frames, width 384, 6 heads, FFN 1536,
// next to the same layer's inference forward, under both thread policies of threads.go
// (blas=1: chorus splits GEMMs and heads over goroutines; blas=N: OpenBLAS threads each GEMM).
func BenchmarkEncoderLayerTrainStep(b *testing.B) {
	d := Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 384, NAudioHead: 6, NAudioLayer: 1, NVocab: 8, NTextCtx: 4, NTextState: 8, NTextHead: 1, NTextLayer: 0}
	m, err := NewRandom(d, 1, LoadOptions{})
	if err != nil {
		b.Fatal(err)
	}
	l := &m.Encoder.Layers[0]
	r := rand.New(rand.NewPCG(1, 2))
	x := tensor.New(1500, 384)
	seed := make([]float32, 1500*384)
	for i := range x.Data {
		x.Data[i] = float32(2*r.Float64() - 1)
		seed[i] = float32(2*r.Float64() - 1)
	}
	oldT, oldB := tensor.Threads(), tensor.BLASThreads()
	defer func() {
		tensor.SetThreads(oldT)
		tensor.SetBLASThreads(oldB)
	}()
	for _, blas := range []int{1, runtime.GOMAXPROCS(0)} {
		tensor.SetThreads(0)
		tensor.SetBLASThreads(blas)
		b.Run(fmt.Sprintf("forward/blas=%d", blas), func(b *testing.B) {
			ctx := tensor.NewCtx()
			for b.Loop() {
				l.Forward(ctx, x, d.NAudioHead, nil)
				ctx.Reset()
			}
		})
		b.Run(fmt.Sprintf("train/blas=%d", blas), func(b *testing.B) {
			ctx := tensor.NewTrainCtx()
			tp := ctx.Tape()
			ts, _ := m.Tensors()
			for _, w := range ts {
				tp.Watch(w)
			}
			tp.Watch(x) // the layer input's gradient, as inside a deeper stack
			for b.Loop() {
				out := l.Forward(ctx, x, d.NAudioHead, nil)
				tp.Seed(out, seed)
				tp.Backward()
				ctx.Reset()
				tp.Reset()
			}
		})
	}
}
