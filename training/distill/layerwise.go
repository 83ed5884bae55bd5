package distill

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/chorus-asr/chorus/tensor"
)

// Pair maps a student layer to the teacher layer whose output it is trained to match.
type Pair struct{ Student, Teacher int }

// FixedMap spreads student layers evenly over teacher layers, keeping the order: student j
// (0-based) ↔ teacher ⌈(j+1)·T/S⌉ − 1, so the last student layer matches the last teacher
// layer (TinyBERT's uniform mapping, Jiao et al. 2020 §3.3). With S = T it is the identity.
func FixedMap(student, teacher int) ([]Pair, error) {
	if student <= 0 || teacher < student {
		return nil, fmt.Errorf("distill: cannot map %d student layers onto %d teacher layers", student, teacher)
	}
	p := make([]Pair, student)
	for j := range p {
		p[j] = Pair{j, ((j+1)*teacher+student-1)/student - 1}
	}
	return p, nil
}

// RAILMap is RAIL-KD's mapping for one step (Haidar et al. 2022, §3): a random subset of
// `student` teacher layers, drawn without replacement, sorted, and matched in order to the
// student layers, so each step distils from different intermediate teacher layers while
// preserving depth order. The draw is a pure function of (seed, step), so a resumed run
// repeats it.
func RAILMap(student, teacher int, seed uint64, step int) ([]Pair, error) {
	if student <= 0 || teacher < student {
		return nil, fmt.Errorf("distill: cannot map %d student layers onto %d teacher layers", student, teacher)
	}
	r := rand.New(rand.NewPCG(seed, uint64(step)))
	picked := r.Perm(teacher)[:student]
	slices.Sort(picked)
	p := make([]Pair, student)
	for j := range p {
		p[j] = Pair{j, picked[j]}
	}
	return p, nil
}

// Projection is the learned linear map W [Ct, Cs] (+ B [Ct]) that carries student hidden
// states into the teacher's width before the MSE (CoFi's layer_transformation; TinyBERT's
// W_h). A nil W is the identity, for equal widths.
type Projection struct {
	W, B *tensor.T
}

// NewProjection returns a projection from width cs to ct initialised to the identity on the
// first min(cs, ct) dimensions (so distillation starts by matching those directly) with zero
// bias; the caller watches W and B on the tape and trains them with the student.
func NewProjection(cs, ct int) Projection {
	w := tensor.New(ct, cs)
	for i := range min(cs, ct) {
		w.Data[i*cs+i] = 1
	}
	return Projection{W: w, B: tensor.New(ct)}
}

// ApplyHidden is the layerwise distillation term: the mean over pairs of
// MSE(proj(student[p.Student]), teacher[p.Teacher]). The student tensors come from a taped
// forward on ctx (the projection is run on ctx, so its weights get gradients when watched),
// the teacher's from an untaped one. It seeds weight·∂/∂(projected student) into the tape and
// returns the mean loss and each pair's loss (for reports such as MaskedLoss).
func ApplyHidden(ctx *tensor.Ctx, pairs []Pair, student, teacher []*tensor.T, proj Projection, weight float64) (float64, []float64) {
	if len(pairs) == 0 {
		return 0, nil
	}
	per := make([]float64, len(pairs))
	var mean float64
	w := weight / float64(len(pairs))
	for i, p := range pairs {
		s, t := student[p.Student], teacher[p.Teacher]
		if proj.W != nil {
			s = ctx.Linear(s, proj.W, proj.B)
		}
		if !tensor.SameShape(s.Shape, t.Shape) {
			panic(fmt.Sprintf("distill: student layer %d %v vs teacher layer %d %v", p.Student, s.Shape, p.Teacher, t.Shape))
		}
		per[i] = MSE(s.Data, t.Data)
		mean += per[i] / float64(len(pairs))
		seed(ctx, s, func(d []float32) { MSEBackward(d, nil, w, s.Data, t.Data) })
	}
	return mean, per
}

// Outputs are what one forward pass exposes to distillation: the logits [.., V] and, per
// layer, the residual stream after the layer (Hidden) and the outputs of its attention and
// FFN sublayers (Attn, FFN) before they are added to the stream.
type Outputs struct {
	Logits            *tensor.T
	Hidden, Attn, FFN []*tensor.T
}

// Weights weight the terms of the distillation objective; a zero weight skips its term.
type Weights struct {
	Logit, Hidden, Attn, FFN float64
}

// Terms are the unweighted values of each term, and per pair the hidden, attention and FFN
// losses.
type Terms struct {
	Logit, Hidden, Attn, FFN   float64
	HiddenPer, AttnPer, FFNPer []float64
}

// Total is Σ weight·term.
func (t Terms) Total(w Weights) float64 {
	return w.Logit*t.Logit + w.Hidden*t.Hidden + w.Attn*t.Attn + w.FFN*t.FFN
}

// Objective is the full distillation loss of a pruning step:
//
//	w_logit·LogitKD + w_hidden·L_hidden + w_attn·L_attn + w_ffn·L_ffn
//
// each layerwise term through the same layer map and projection. It seeds every term's
// weighted gradient into ctx's tape and returns the terms.
func Objective(ctx *tensor.Ctx, student, teacher Outputs, pairs []Pair, proj Projection, temp float64, keep []bool, w Weights) Terms {
	var t Terms
	if w.Logit != 0 {
		t.Logit = ApplyLogitKD(ctx, student.Logits, teacher.Logits, temp, keep, w.Logit)
	}
	if w.Hidden != 0 {
		t.Hidden, t.HiddenPer = ApplyHidden(ctx, pairs, student.Hidden, teacher.Hidden, proj, w.Hidden)
	}
	if w.Attn != 0 {
		t.Attn, t.AttnPer = ApplyHidden(ctx, pairs, student.Attn, teacher.Attn, proj, w.Attn)
	}
	if w.FFN != 0 {
		t.FFN, t.FFNPer = ApplyHidden(ctx, pairs, student.FFN, teacher.FFN, proj, w.FFN)
	}
	return t
}

// Masked splits per-structure losses by whether the structure is masked out.
type Masked struct {
	Kept, Removed   float64 // sums of the losses
	NKept, NRemoved int
}

// MeanRemoved is the mean loss over removed structures (NaN when none is removed).
func (m Masked) MeanRemoved() float64 {
	if m.NRemoved == 0 {
		return math.NaN()
	}
	return m.Removed / float64(m.NRemoved)
}

// MaskedLoss reports the loss on masked-out structures: given a mask value per structure
// (a layer's deterministic FFN or attention gate, say) and that structure's loss (its
// distillation term), it sums the losses where the mask is 0 and where it is not. A large
// loss on removed structures says the teacher still relies on what the student dropped.
func MaskedLoss(masks []float32, losses []float64) Masked {
	if len(masks) != len(losses) {
		panic(fmt.Sprintf("distill: %d masks for %d losses", len(masks), len(losses)))
	}
	var m Masked
	for i, z := range masks {
		if z == 0 {
			m.Removed += losses[i]
			m.NRemoved++
		} else {
			m.Kept += losses[i]
			m.NKept++
		}
	}
	return m
}
