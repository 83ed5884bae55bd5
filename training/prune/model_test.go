package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// modelDims is a small Whisper with every block, two layers a side so that a whole layer
// can be dropped while another stays.
var modelDims = whisper.Dims{NMels: 8, NAudioCtx: 6, NAudioState: 8, NAudioHead: 4, NAudioLayer: 2, NVocab: 11,
	NTextCtx: 8, NTextState: 8, NTextHead: 4, NTextLayer: 2, EncoderFFN: 12, DecoderFFN: 12}

type modelSetup struct {
	m      *whisper.Model
	mel    *tensor.T
	tokens []int
}

func newModelSetup(t testing.TB, relu bool) *modelSetup {
	d := modelDims
	if relu {
		d.Activation = "relu"
	}
	m, err := whisper.NewRandom(d, 11, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	mel := tensor.New(d.NMels, 12)
	for i := range mel.Data {
		mel.Data[i] = float32(2*r.Float64() - 1)
	}
	return &modelSetup{m: m, mel: mel, tokens: []int{1, 4, 7, 2, 9}}
}

// logits runs the training forward under masks (nil: none).
func (s *modelSetup) logits(ctx *tensor.Ctx, z whisper.Masks) *tensor.T {
	h := &whisper.Hooks{Masks: z}
	xa := s.m.Encoder.ForwardHooked(ctx, s.mel, h)
	return s.m.Decoder.ForwardTrainHooked(ctx, s.tokens, 1, xa, h)
}

// TestKindsMatchGates pins the shared numbering that lets a Set answer whisper.Masks.
func TestKindsMatchGates(t *testing.T) {
	pairs := map[Kind]whisper.Gate{Heads: whisper.GateHeads, Attn: whisper.GateAttn, CrossHeads: whisper.GateCrossHeads,
		Cross: whisper.GateCross, Units: whisper.GateUnits, FFN: whisper.GateFFN, Hidden: whisper.GateHidden}
	for k, g := range pairs {
		if int(k) != int(g) {
			t.Errorf("kind %s = %d, gate %d", k, k, g)
		}
	}
	if int(Encoder) != int(whisper.EncoderStack) || int(Decoder) != int(whisper.DecoderStack) {
		t.Error("sides and stacks differ")
	}
}

// TestAllOnesMasksAreExact: gates of exactly 1 at every point leave the model's logits
// bit-identical to the unmasked pass (×1 is exact and a full keep set uses the plain
// LayerNorm), for GELU and ReLU models.
func TestAllOnesMasksAreExact(t *testing.T) {
	for _, relu := range []bool{false, true} {
		s := newModelSetup(t, relu)
		st, err := NewStructure(s.m.Dims)
		if err != nil {
			t.Fatal(err)
		}
		ones := NewSet(st, 1)
		want := s.logits(tensor.NewCtx(), nil)
		got := s.logits(tensor.NewCtx(), &ones)
		for i := range want.Data {
			if got.Data[i] != want.Data[i] {
				t.Fatalf("relu=%v: logit %d masked %v, unmasked %v", relu, i, got.Data[i], want.Data[i])
			}
		}
		// And a zero gate does change them: the hooks are live.
		ones[Decoder][FFN].Data[1] = 0
		got = s.logits(tensor.NewCtx(), &ones)
		if got.Data[0] == want.Data[0] {
			t.Fatalf("relu=%v: a removed FFN left the logits unchanged", relu)
		}
	}
}

// TestLogAlphaGradients differentiates a loss of the whole model's logits with respect to
// every gate's log α through sampled hard-concrete masks (Gates.Sample on the tape, the
// model's GroupScale and masked layer norms) and compares with central finite differences
// re-sampling with the same noise. log α is spread over [−1, 3] so that most gates sit
// inside the stretch (a gradient) and some hidden gates are clamped to 0 (the masked
// layer-norm path). Tolerance as whisper's TestWhisperGradients: Richardson-extrapolated
// differences at h = 1e-2, |got − fd| ≤ 2e-3·|fd| + 1e-4.
func TestLogAlphaGradients(t *testing.T) {
	s := newModelSetup(t, false)
	st, _ := NewStructure(s.m.Dims)
	g, err := NewGates(st, DefaultHardConcrete(), DefaultInit, 1)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(9, 9))
	for side := range numSides {
		for k := range NumKinds {
			if la := g.LogAlpha[side][k]; la != nil {
				for i := range la.Data {
					la.Data[i] = float32(-1 + 4*r.Float64())
				}
			}
		}
	}
	proj := make([]float32, len(s.tokens)*modelDims.NVocab)
	for i := range proj {
		proj[i] = float32(2*r.Float64() - 1)
	}
	loss := func(ctx *tensor.Ctx) (float64, *tensor.T, Set) {
		z := g.Sample(ctx, rand.New(rand.NewPCG(5, 5))) // the same noise every call
		lg := s.logits(ctx, &z)
		var l float64
		for i, v := range lg.Data {
			l += float64(v) * float64(proj[i])
		}
		return l, lg, z
	}
	ctx := tensor.NewTrainCtx()
	tp := ctx.Tape()
	g.Params(tp)
	_, lg, z := loss(ctx)
	zeros := 0
	for _, v := range z[Encoder][Hidden].Data {
		if v == 0 {
			zeros++
		}
	}
	for _, v := range z[Decoder][Hidden].Data {
		if v == 0 {
			zeros++
		}
	}
	if zeros == 0 {
		t.Fatal("no hidden gate sampled at 0: the masked layer norm is not exercised")
	}
	tp.Seed(lg, proj)
	tp.Backward()
	grads := map[string][]float32{}
	for side := range numSides {
		for k := range NumKinds {
			if la := g.LogAlpha[side][k]; la != nil {
				grads[fmt.Sprint(side, k)] = append([]float32(nil), tp.Grad(la).Data...)
			}
		}
	}
	ctx.Reset()
	eval := func() float64 { l, _, _ := loss(tensor.NewCtx()); return l }
	diff := func(w []float32, i int, h float32) float64 {
		old := w[i]
		w[i] = old + h
		lp := eval()
		w[i] = old - h
		lm := eval()
		w[i] = old
		return (lp - lm) / float64(2*h)
	}
	const h, rtol, atol = 1e-2, 2e-3, 1e-4
	checked, nonzero := 0, 0
	for side := range numSides {
		for k := range NumKinds {
			la := g.LogAlpha[side][k]
			if la == nil {
				continue
			}
			for i := range la.Data {
				fd := (4*diff(la.Data, i, h/2) - diff(la.Data, i, h)) / 3
				got := float64(grads[fmt.Sprint(side, k)][i])
				if math.Abs(got-fd) > rtol*math.Abs(fd)+atol {
					t.Errorf("%s %s[%d]: tape %.6g, finite difference %.6g", side, k, i, got, fd)
				}
				checked++
				if math.Abs(fd) > 10*atol {
					nonzero++
				}
			}
		}
	}
	if nonzero < checked/3 {
		t.Fatalf("only %d of %d gates have a gradient: the check is too weak", nonzero, checked)
	}
	t.Logf("%d gates checked, %d with |gradient| > %g", checked, nonzero, 10*atol)
}

// TestMaterialiseMatchesMasked prunes a random model with gates that remove some heads,
// units, a cross-attention sublayer and one whole encoder layer, and checks the materialised
// dense model's logits against the masked model's (EvalMasks, soft gates folded) within
// 1e-5, and that it stores exactly the unpadded parameters: CoFi's exact count of what the
// masks keep (Structure.Expected on 0/1 probabilities) plus the output bias and layer norm
// that a removed sublayer of a kept layer still has — no zero head or unit anywhere.
func TestMaterialiseMatchesMasked(t *testing.T) {
	for _, c := range []struct{ relu, hidden bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		relu := c.relu
		s := newModelSetup(t, relu)
		st, _ := NewStructure(s.m.Dims)
		g, err := NewGates(st, DefaultHardConcrete(), DefaultInit, 3)
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(4, 4))
		for _, side := range []Side{Encoder, Decoder} {
			for _, k := range []Kind{Heads, CrossHeads, Units} {
				if la := g.LogAlpha[side][k]; la != nil {
					for i := range la.Data {
						la.Data[i] = float32(-3 + 6*r.Float64())
					}
				}
			}
		}
		// Encoder layer 0 goes whole; the decoder's layer 1 loses its cross-attention.
		g.LogAlpha[Encoder][Attn].Data[0], g.LogAlpha[Encoder][FFN].Data[0] = -5, -5
		g.LogAlpha[Decoder][Cross].Data[1] = -5
		if c.hidden { // the stacks end with widths of their own: 6 and 5 of 8
			for side, idx := range [numSides][]int{{1, 6}, {0, 3, 5}} {
				for _, i := range idx {
					g.LogAlpha[side][Hidden].Data[i] = -5
				}
			}
		}
		z := g.EvalMasks()
		mat, err := MaterialiseModel(s.m, z)
		if err != nil {
			t.Fatal(err)
		}
		want := s.logits(tensor.NewCtx(), &z)
		got := s.logits2(mat.Model)
		var worst float64
		for i := range want.Data {
			worst = math.Max(worst, math.Abs(float64(got.Data[i]-want.Data[i])))
		}
		if worst > 1e-5 {
			t.Fatalf("relu=%v: materialised vs masked logits differ by %g", relu, worst)
		}
		d := mat.Model.Dims
		if c.hidden != (d.NAudioState == 6 && d.NTextState == 5) {
			t.Fatalf("relu=%v hidden=%v: widths %d / %d", relu, c.hidden, d.NAudioState, d.NTextState)
		}
		if d.NAudioLayer != 1 || !mat.Layers[Encoder][0].Removed || mat.Layers[Decoder][1].CrossHeads != 0 {
			t.Fatalf("relu=%v: layers %+v, dims %+v", relu, mat.Layers, d)
		}
		full, _ := s.m.Tensors()
		small, _ := mat.Model.Tensors()
		if count(small) >= count(full) {
			t.Fatalf("relu=%v: materialised model has %d parameters, original %d", relu, count(small), count(full))
		}
		if d.Uniform() {
			t.Fatalf("relu=%v: the decoder's layers keep different sizes, yet the dims are uniform: %+v", relu, d)
		}
		if want := unpaddedCount(t, st, z, mat); count(small) != want {
			t.Fatalf("relu=%v: materialised model stores %d parameters, the kept structures %d", relu, count(small), want)
		}
		t.Logf("relu=%v: max |Δlogit| %.2g; %d → %d parameters; encoder %d×%d heads, FFN %d; decoder sizes %+v",
			relu, worst, count(full), count(small), d.NAudioLayer, d.NAudioHead, d.EncoderFFN, d.DecoderSizes)
	}
}

func (s *modelSetup) logits2(m *whisper.Model) *tensor.T {
	ctx := tensor.NewCtx()
	xa := m.Encoder.Forward(ctx, s.mel)
	return m.Decoder.ForwardTrain(ctx, s.tokens, 1, xa)
}

// unpaddedCount is the parameter count of exactly what the masks z keep: CoFi's exact count
// (every kept gate's probability 1, every removed one's 0; the layer norm and output bias of
// a removed sublayer are not counted there) plus, per removed sublayer of a kept layer, the
// 3C parameters the materialised layer still declares for it (layer norm 2C, zero bias C).
// It also pins that the count of the unpruned structure is the model's own parameter count.
func unpaddedCount(t *testing.T, st Structure, z Set, mat *Materialised) int {
	t.Helper()
	if full := st.Full().Total(); int(full) != paramCount(t, modelDims) {
		t.Fatalf("structure counts %v parameters for the full model, which has %d", full, paramCount(t, modelDims))
	}
	p := NewProbs(st)
	for side := range numSides {
		for k := range NumKinds {
			if z[side][k] != nil {
				for i, v := range z[side][k].Data {
					if v != 0 {
						p[side][k][i] = 1
					}
				}
			}
		}
	}
	n := int(math.Round(st.Expected(p).Total()))
	for side := range numSides {
		c := len(Keep(z[side][Hidden].Data, st.Side[side].Width))
		for l, sh := range mat.Layers[side] {
			if sh.Removed {
				continue
			}
			for _, k := range []Kind{Attn, Cross, FFN} {
				if z[side][k] != nil && z[side][k].Data[l] == 0 {
					n += 3 * c
				}
			}
		}
	}
	return n
}

func paramCount(t *testing.T, d whisper.Dims) int {
	n := 0
	for _, s := range whisper.TensorSpecs(d) {
		n += tensor.Numel(s.Shape)
	}
	return n
}

func count(ts map[string]*tensor.T) int {
	n := 0
	for _, t := range ts {
		n += len(t.Data)
	}
	return n
}

// TestMaterialiseRejectsBadMasks: masks shaped for another model, a soft hidden gate, or a
// stack left without any hidden dimension are clear errors.
func TestMaterialiseRejectsBadMasks(t *testing.T) {
	s := newModelSetup(t, false)
	other := modelDims
	other.NAudioHead = 2
	st, _ := NewStructure(other)
	if _, err := MaterialiseModel(s.m, NewSet(st, 1)); err == nil {
		t.Fatal("masks of a 2-head encoder accepted for a 4-head one")
	}
	st, _ = NewStructure(s.m.Dims)
	z := NewSet(st, 1)
	z[Decoder][Hidden].Data[3] = 0.5
	if _, err := MaterialiseModel(s.m, z); err == nil || !strings.Contains(err.Error(), "hidden gate 0.5") {
		t.Errorf("soft hidden gate: err %v", err)
	}
	z = NewSet(st, 1)
	clear(z[Encoder][Hidden].Data)
	if _, err := MaterialiseModel(s.m, z); err == nil || !strings.Contains(err.Error(), "every encoder hidden dimension removed") {
		t.Errorf("no encoder hidden dimension left: err %v", err)
	}
}
