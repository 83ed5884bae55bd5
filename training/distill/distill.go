// Package distill holds the knowledge-distillation objectives of chorus's pruning runs: a
// teacher variant's outputs supervise the student's logits (Hinton, Vinyals & Dean 2015),
// its hidden states layer by layer (CoFi §3.2, Xia et al. 2022, after TinyBERT, Jiao et al.
// 2020), through a fixed layer map or, each step, a random one (RAIL-KD, Haidar et al. 2022),
// with attention-output and FFN-output terms weighted separately.
//
// Each loss is a float64 function of float32 activations with a backward twin that
// accumulates its gradient (the tensor package's convention); the Apply functions compute a
// loss on student tensors produced by a taped forward and seed its weighted gradient into the
// tape (tensor.Tape.Seed), so distillation joins the backward pass of the model that produced
// the student's activations. The teacher runs without a tape and receives no gradient.
package distill

import (
	"fmt"
	"math"

	"github.com/chorus-asr/chorus/tensor"
)

// softmaxT writes softmax(x/temp) of one row into p (float64).
func softmaxT(p []float64, x []float32, temp float64) {
	m := math.Inf(-1)
	for _, v := range x {
		m = math.Max(m, float64(v)/temp)
	}
	var z float64
	for i, v := range x {
		p[i] = math.Exp(float64(v)/temp - m)
		z += p[i]
	}
	for i := range p {
		p[i] /= z
	}
}

func rowCount(rows int, keep []bool) int {
	if keep == nil {
		return rows
	}
	n := 0
	for _, k := range keep[:rows] {
		if k {
			n++
		}
	}
	return n
}

// LogitKD is the logit-distillation loss over student and teacher logits [R, V] at
// temperature T (Hinton et al. 2015 §2; CoFi trainer/trainer.py#L647-L652):
//
//	L = T² · (1/n) Σ_r KL(p_t,r ‖ p_s,r),   p = softmax(logits / T)
//
// over the n rows with keep[r] set (nil keep: every row; padding positions are left out).
// The T² keeps the gradient's scale independent of T (Hinton et al.: the soft targets'
// gradients scale as 1/T²). Computed in float64; 0 when no row is kept.
func LogitKD(student, teacher []float32, rows, vocab int, temp float64, keep []bool) float64 {
	n := rowCount(rows, keep)
	if n == 0 {
		return 0
	}
	ps, pt := make([]float64, vocab), make([]float64, vocab)
	var kl float64
	for r := range rows {
		if keep != nil && !keep[r] {
			continue
		}
		softmaxT(ps, student[r*vocab:(r+1)*vocab], temp)
		softmaxT(pt, teacher[r*vocab:(r+1)*vocab], temp)
		for i, q := range pt {
			if q > 0 {
				kl += q * (math.Log(q) - math.Log(ps[i]))
			}
		}
	}
	return temp * temp * kl / float64(n)
}

// LogitKDBackward is the twin of LogitKD with respect to the student logits: it accumulates
//
//	dstudent_r += dloss · T · (p_s,r − p_t,r) / n
//
// (∂KL/∂z_s = (p_s − p_t)/T, times T²) on kept rows.
func LogitKDBackward(dstudent []float32, dloss float64, student, teacher []float32, rows, vocab int, temp float64, keep []bool) {
	n := rowCount(rows, keep)
	if n == 0 {
		return
	}
	ps, pt := make([]float64, vocab), make([]float64, vocab)
	s := dloss * temp / float64(n)
	for r := range rows {
		if keep != nil && !keep[r] {
			continue
		}
		softmaxT(ps, student[r*vocab:(r+1)*vocab], temp)
		softmaxT(pt, teacher[r*vocab:(r+1)*vocab], temp)
		d := dstudent[r*vocab : (r+1)*vocab]
		for i := range d {
			d[i] += float32(s * (ps[i] - pt[i]))
		}
	}
}

// MSE is the mean squared error (1/N) Σ (s − t)² over all N elements (torch's MSELoss with
// reduction "mean", as CoFi's layer distillation uses it, trainer/trainer.py#L552).
func MSE(s, t []float32) float64 {
	if len(s) != len(t) {
		panic(fmt.Sprintf("distill: mse of %d and %d values", len(s), len(t)))
	}
	if len(s) == 0 {
		return 0
	}
	var sum float64
	for i, v := range s {
		d := float64(v) - float64(t[i])
		sum += d * d
	}
	return sum / float64(len(s))
}

// MSEBackward is the twin of MSE: ds += dloss·2(s − t)/N and dt −= the same (nil: skip).
func MSEBackward(ds, dt []float32, dloss float64, s, t []float32) {
	k := 2 * dloss / float64(len(s))
	for i, v := range s {
		g := k * (float64(v) - float64(t[i]))
		if ds != nil {
			ds[i] += float32(g)
		}
		if dt != nil {
			dt[i] -= float32(g)
		}
	}
}

// seed adds weight · (gradient of a loss with respect to x) to x's gradient on the tape.
func seed(ctx *tensor.Ctx, x *tensor.T, backward func(dx []float32)) {
	tape := ctx.Tape()
	if tape == nil {
		return
	}
	g := make([]float32, len(x.Data))
	backward(g)
	tape.Seed(x, g)
}

// ApplyLogitKD computes LogitKD of student [.., V] (an output of a taped forward on ctx)
// against teacher (same shape, no gradient) and seeds weight·∂L/∂student into the tape. It
// returns the unweighted loss.
func ApplyLogitKD(ctx *tensor.Ctx, student, teacher *tensor.T, temp float64, keep []bool, weight float64) float64 {
	if !tensor.SameShape(student.Shape, teacher.Shape) {
		panic(fmt.Sprintf("distill: student logits %v, teacher %v", student.Shape, teacher.Shape))
	}
	vocab := student.Shape[len(student.Shape)-1]
	rows := len(student.Data) / vocab
	l := LogitKD(student.Data, teacher.Data, rows, vocab, temp, keep)
	seed(ctx, student, func(d []float32) {
		LogitKDBackward(d, weight, student.Data, teacher.Data, rows, vocab, temp, keep)
	})
	return l
}
