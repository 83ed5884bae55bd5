package experts

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// newRNG is the deterministic generator every randomized test uses.
func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x657870657274)) }

func randSlice(r *rand.Rand, n int, scale float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = scale * (2*r.Float32() - 1)
	}
	return s
}

// randFFN returns a block with weights uniform in ±1/√fan_in (torch's init), biases optional.
func randFFN(t testing.TB, r *rand.Rand, c, n, e int, bias bool) *FFN {
	t.Helper()
	var b1, b2 []float32
	if bias {
		b1, b2 = randSlice(r, n, 0.2), randSlice(r, c, 0.2)
	}
	f, err := NewFFN(randSlice(r, n*c, float32(1/math.Sqrt(float64(c)))), b1, randSlice(r, c*n, float32(1/math.Sqrt(float64(n)))), b2, c, n, e)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// checkClose fails when |got−want| > atol + rtol·|want| anywhere, reporting the worst pair.
func checkClose(t testing.TB, label string, got, want []float32, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", label, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > atol+rtol*math.Abs(float64(want[i])) || math.IsNaN(d) {
			if at < 0 || d > worst {
				worst, at = d, i
			}
		}
	}
	if at >= 0 {
		t.Fatalf("%s: [%d] got %.9g want %.9g (diff %.3g > atol %.3g + rtol %.3g)", label, at, got[at], want[at], worst, atol, rtol)
	}
}

// realModel is the embedded default model (float32 weights) with its blocks as FFNs of one
// expert each (unpermuted), loaded once for all tests.
type realModel struct {
	v    *asr.Variant
	ffns []*FFN // encoder layers, then decoder layers
	enc  int    // encoder layers
	ref  []float32
}

var (
	realOnce sync.Once
	real     *realModel
	realErr  error
)

func loadReal(t testing.TB) *realModel {
	t.Helper()
	realOnce.Do(func() {
		v, err := defaultmodel.Open(asr.OpenOptions{F16: false})
		if err != nil {
			realErr = err
			return
		}
		rm := &realModel{v: v, enc: len(v.Model.Encoder.Layers)}
		add := func(m *whisper.MLP) {
			f, err := FromLinear(&m.FC1, &m.FC2, 1)
			if err != nil {
				realErr = err
				return
			}
			f.Layer = len(rm.ffns)
			rm.ffns = append(rm.ffns, f)
		}
		for i := range v.Model.Encoder.Layers {
			add(&v.Model.Encoder.Layers[i].MLP)
		}
		for i := range v.Model.Decoder.Layers {
			add(&v.Model.Decoder.Layers[i].MLP)
		}
		rm.ref, err = audio.Load16kMono(filepath.Join("..", "testdata", "audio", "ref.wav"))
		if err != nil {
			realErr = err
			return
		}
		real = rm
	})
	if realErr != nil {
		t.Fatal(realErr)
	}
	return real
}

// encoderInputs runs the encoder on 16-kHz samples exactly as the model's content window does
// (asr.window.EncodeWindow, whisper.Encoder.Forward) and returns each encoder layer's FFN
// input (the output of its final_layer_norm) [T, C], as copies, the frame count T and the
// encoder's output features [T, C].
func (rm *realModel) encoderInputs(samples []float32) ([][]float32, int, []float32, error) {
	m := rm.v.Model
	spec, err := mel.LogMel(samples, m.Dims.NMels, mel.NSamples)
	if err != nil {
		return nil, 0, nil, err
	}
	content := spec.NFrames - mel.NFrames
	n := max(2, content+content%2)
	buf := make([]float32, 0, m.Dims.NMels*n)
	for b := range m.Dims.NMels {
		buf = append(buf, spec.Data[b*spec.NFrames:b*spec.NFrames+n]...)
	}
	ctx := tensor.NewCtx()
	e := &m.Encoder
	x := ctx.Transpose(tensor.FromData(buf, m.Dims.NMels, n))
	x = ctx.GELU(e.Conv1.Forward(ctx, x))
	x = ctx.GELU(e.Conv2.Forward(ctx, x))
	x = ctx.AddRows(x, e.Pos, 0)
	var out [][]float32
	for i := range e.Layers {
		l := &e.Layers[i]
		h := l.AttnLN.Forward(ctx, x)
		x = ctx.Add(x, l.Attn.Self(ctx, h, m.Dims.NAudioHead, false, nil))
		u := l.MLPLN.Forward(ctx, x)
		out = append(out, append([]float32(nil), u.Data...))
		x = ctx.Add(x, l.MLP.Forward(ctx, u))
	}
	return out, x.Shape[0], append([]float32(nil), e.LN.Forward(ctx, x).Data...), nil
}

// TestEncoderReplay checks that encoderInputs replays the model: the features it computes
// equal the model's own Encode of the same content window, so the recorded FFN inputs are the
// ones the model sees.
func TestEncoderReplay(t *testing.T) {
	rm := loadReal(t)
	m := rm.v.Model
	samples := rm.ref[:3*16000]
	ins, frames, feats, err := rm.encoderInputs(samples)
	if err != nil {
		t.Fatal(err)
	}
	if frames != 150 || len(ins) != rm.enc || len(ins[0]) != frames*m.Dims.NAudioState {
		t.Fatalf("3 s replayed as %d frames, %d layers, %d values", frames, len(ins), len(ins[0]))
	}
	spec, _ := mel.LogMel(samples, m.Dims.NMels, mel.NSamples)
	content := spec.NFrames - mel.NFrames
	buf := make([]float32, 0, m.Dims.NMels*content)
	for b := range m.Dims.NMels {
		buf = append(buf, spec.Data[b*spec.NFrames:b*spec.NFrames+content]...)
	}
	want := m.NewState(1).Encode(tensor.FromData(buf, m.Dims.NMels, content))
	checkClose(t, "replayed encoder", feats, want.Data, 0, 0)
}

func (rm *realModel) String() string { return fmt.Sprintf("chorus-micro (%d FFNs)", len(rm.ffns)) }
