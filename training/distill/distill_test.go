package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6b64)) }

func randSlice(r *rand.Rand, n int, scale float64) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(scale * (2*r.Float64() - 1))
	}
	return s
}

// fdCheck compares got (after subtracting base) with central differences of loss over x,
// perturbing float32 x by h and dividing by the step actually taken; it returns the max
// error and the max |want|.
func fdCheck(x, got, base []float32, h float32, loss func() float64) (worst, scale float64) {
	for i := range x {
		old := x[i]
		x[i] = old + h
		hp := float64(x[i] - old)
		lp := loss()
		x[i] = old - h
		hm := float64(old - x[i])
		lm := loss()
		x[i] = old
		want := (lp - lm) / (hp + hm)
		g := float64(got[i])
		if base != nil {
			g -= float64(base[i])
		}
		worst = math.Max(worst, math.Abs(g-want))
		scale = math.Max(scale, math.Abs(want))
	}
	return worst, scale
}

// TestLogitKDValues pins the loss on hand cases.
func TestLogitKDValues(t *testing.T) {
	for _, tc := range []struct {
		name  string
		s, tt []float32
		temp  float64
		keep  []bool
		want  float64
	}{
		{"equal logits", []float32{1, 2, 3}, []float32{1, 2, 3}, 2, nil, 0},
		// T = 1, two classes: p_t = (½, ½), p_s = σ(±log 3) = (¼, ¾):
		// KL = ½ log 2 + ½ log(2/3).
		{"two classes", []float32{0, float32(math.Log(3))}, []float32{5, 5}, 1, nil, 0.5*math.Log(2) + 0.5*math.Log(2.0/3)},
		// The same at T = 2 with logits doubled: the same distributions, times T² = 4.
		{"temperature", []float32{0, float32(2 * math.Log(3))}, []float32{5, 5}, 2, nil, 4 * (0.5*math.Log(2) + 0.5*math.Log(2.0/3))},
		// Second row masked out: only the first (zero loss) counts.
		{"masked row", []float32{1, 2, 0, 9}, []float32{1, 2, 9, 0}, 1, []bool{true, false}, 0},
		{"no row kept", []float32{1, 2}, []float32{2, 1}, 1, []bool{false}, 0},
	} {
		rows := len(tc.s) / 2
		vocab := 2
		if tc.name == "equal logits" {
			rows, vocab = 1, 3
		}
		if got := LogitKD(tc.s, tc.tt, rows, vocab, tc.temp, tc.keep); math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestLogitKDBackward: the twin against central differences (float64 loss of float32
// logits, h = 1e-3: truncation ~1e-7 relative), into a prefilled buffer, with a masked row
// (its gradient must stay untouched) at several temperatures.
func TestLogitKDBackward(t *testing.T) {
	r := newRNG(1)
	const rows, vocab = 4, 6
	keep := []bool{true, false, true, true}
	for _, temp := range []float64{1, 2, 4} {
		s, tt := randSlice(r, rows*vocab, 3), randSlice(r, rows*vocab, 3)
		d := randSlice(r, rows*vocab, 1)
		base := append([]float32(nil), d...)
		LogitKDBackward(d, 0.7, s, tt, rows, vocab, temp, keep)
		worst, scale := fdCheck(s, d, base, 1e-3, func() float64 { return 0.7 * LogitKD(s, tt, rows, vocab, temp, keep) })
		t.Logf("T %g: max |grad − fd| %.3g (max |grad| %.3g)", temp, worst, scale)
		if worst > 1e-4*scale+1e-7 {
			t.Errorf("T %g: max |grad − fd| %.3g", temp, worst)
		}
		for i := vocab; i < 2*vocab; i++ {
			if d[i] != base[i] {
				t.Fatalf("masked row got gradient")
			}
		}
	}
}

// TestMSEBackward: both sides' gradients against central differences.
func TestMSEBackward(t *testing.T) {
	r := newRNG(2)
	s, tt := randSlice(r, 12, 1), randSlice(r, 12, 1)
	if got, want := MSE([]float32{1, 2}, []float32{0, 4}), 2.5; got != want {
		t.Fatalf("MSE = %v, want %v", got, want)
	}
	ds, dt := randSlice(r, 12, 1), randSlice(r, 12, 1)
	bs, bt := append([]float32(nil), ds...), append([]float32(nil), dt...)
	MSEBackward(ds, dt, 1.3, s, tt)
	loss := func() float64 { return 1.3 * MSE(s, tt) }
	for _, c := range []struct {
		name    string
		x, g, b []float32
	}{{"student", s, ds, bs}, {"teacher", tt, dt, bt}} {
		worst, scale := fdCheck(c.x, c.g, c.b, 1e-3, loss)
		t.Logf("%s: max |grad − fd| %.3g (max |grad| %.3g)", c.name, worst, scale)
		if worst > 1e-4*scale+1e-7 {
			t.Errorf("%s: max |grad − fd| %.3g", c.name, worst)
		}
	}
}

// TestObjectiveOnTape: the full objective (logit KD + hidden + attention + FFN terms, with a
// learned projection between widths 4 and 6) seeded into a taped student forward; the tape's
// gradients of the student's weights and of the projection against central differences of
// the weighted total. The student forward is float32 (Linear, GELU), so h = 1e-2 and the
// bound is 2e-3·max|grad|, as the tensor package's tape tests.
func TestObjectiveOnTape(t *testing.T) {
	r := newRNG(3)
	const rows, cs, ct, vocab = 3, 4, 6, 5
	x := tensor.FromData(randSlice(r, rows*cs, 1), rows, cs)
	w1 := tensor.FromData(randSlice(r, cs*cs, 0.8), cs, cs)
	w2 := tensor.FromData(randSlice(r, cs*cs, 0.8), cs, cs)
	wo := tensor.FromData(randSlice(r, vocab*cs, 0.8), vocab, cs)
	proj := NewProjection(cs, ct)
	copy(proj.W.Data, randSlice(r, ct*cs, 0.5))
	copy(proj.B.Data, randSlice(r, ct, 0.5))
	teacher := Outputs{Logits: tensor.FromData(randSlice(r, rows*vocab, 2), rows, vocab)}
	for range 3 {
		teacher.Hidden = append(teacher.Hidden, tensor.FromData(randSlice(r, rows*ct, 1), rows, ct))
		teacher.Attn = append(teacher.Attn, tensor.FromData(randSlice(r, rows*ct, 1), rows, ct))
		teacher.FFN = append(teacher.FFN, tensor.FromData(randSlice(r, rows*ct, 1), rows, ct))
	}
	pairs := []Pair{{0, 1}, {1, 2}}
	w := Weights{Logit: 0.5, Hidden: 1, Attn: 0.3, FFN: 0.7}
	keep := []bool{true, true, false}
	forward := func(ctx *tensor.Ctx) Outputs {
		a0 := ctx.Linear(x, w1, nil)
		h0 := ctx.Add(x, a0)
		f1 := ctx.GELU(ctx.Linear(h0, w2, nil))
		h1 := ctx.Add(h0, f1)
		return Outputs{Logits: ctx.Linear(h1, wo, nil), Hidden: []*tensor.T{h0, h1}, Attn: []*tensor.T{a0, a0}, FFN: []*tensor.T{f1, f1}}
	}
	loss := func() float64 {
		ctx := tensor.NewCtx()
		return Objective(ctx, forward(ctx), teacher, pairs, proj, 2, keep, w).Total(w)
	}
	ctx := tensor.NewTrainCtx()
	tape := ctx.Tape()
	params := []*tensor.T{x, w1, w2, wo, proj.W, proj.B}
	tape.Watch(params...)
	terms := Objective(ctx, forward(ctx), teacher, pairs, proj, 2, keep, w)
	tape.Backward()
	if len(terms.HiddenPer) != 2 || terms.Logit <= 0 || terms.FFN <= 0 {
		t.Fatalf("terms %+v", terms)
	}
	for i, p := range params {
		worst, scale := fdCheck(p.Data, tape.Grad(p).Data, nil, 1e-2, loss)
		t.Logf("param %d %v: max |grad − fd| %.3g (max |grad| %.3g)", i, p.Shape, worst, scale)
		if worst > 2e-3*scale+1e-6 {
			t.Errorf("param %d: max |grad − fd| %.3g exceeds %.3g", i, worst, 2e-3*scale+1e-6)
		}
	}
}

func TestLayerMaps(t *testing.T) {
	for _, tc := range []struct {
		s, tt int
		want  []int
	}{{4, 4, []int{0, 1, 2, 3}}, {2, 4, []int{1, 3}}, {3, 4, []int{1, 2, 3}}, {4, 6, []int{1, 2, 4, 5}}, {1, 5, []int{4}}} {
		p, err := FixedMap(tc.s, tc.tt)
		if err != nil {
			t.Fatal(err)
		}
		for j, q := range p {
			if q.Student != j || q.Teacher != tc.want[j] {
				t.Fatalf("FixedMap(%d, %d) = %v, want teachers %v", tc.s, tc.tt, p, tc.want)
			}
		}
	}
	if _, err := FixedMap(5, 4); err == nil {
		t.Error("FixedMap with more student than teacher layers: want an error")
	}
	seen := map[string]bool{}
	for step := range 20 {
		p, err := RAILMap(3, 8, 7, step)
		if err != nil {
			t.Fatal(err)
		}
		again, _ := RAILMap(3, 8, 7, step)
		if fmt.Sprint(p) != fmt.Sprint(again) {
			t.Fatalf("step %d: %v then %v", step, p, again)
		}
		for j, q := range p {
			if q.Student != j || q.Teacher < 0 || q.Teacher >= 8 || (j > 0 && q.Teacher <= p[j-1].Teacher) {
				t.Fatalf("step %d: %v is not a sorted subset of distinct teacher layers", step, p)
			}
		}
		seen[fmt.Sprint(p)] = true
	}
	if len(seen) < 10 {
		t.Errorf("20 steps drew only %d different maps", len(seen))
	}
	if _, err := RAILMap(0, 8, 1, 0); err == nil {
		t.Error("RAILMap of no student layers: want an error")
	}
}

func TestMaskedLoss(t *testing.T) {
	m := MaskedLoss([]float32{1, 0, 0.4, 0}, []float64{1, 2, 3, 4})
	if m.Kept != 4 || m.Removed != 6 || m.NKept != 2 || m.NRemoved != 2 || m.MeanRemoved() != 3 {
		t.Fatalf("%+v", m)
	}
	if !math.IsNaN(MaskedLoss([]float32{1}, []float64{1}).MeanRemoved()) {
		t.Fatal("mean over no removed structure should be NaN")
	}
}
