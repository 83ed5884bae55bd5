package tensor

import (
	"fmt"
	"math"
)

// This file holds the losses whose gradients start the backward pass: label-smoothed cross
// entropy (the decoder's objective) and CTC (the encoder's auxiliary objective in joint
// CTC/attention training). Each returns the loss and writes its gradient directly — a loss
// is the root of the graph, so it has no dout.

// CrossEntropy is the mean over rows of the label-smoothed cross entropy of logits [R, V]
// against targets [R], as torch.nn.functional.cross_entropy(logits, targets,
// ignore_index=ignore, label_smoothing=ε) computes it:
//
//	loss_r = (1−ε)·(−log p_r[y_r]) + ε·mean_j(−log p_r[j]),   p_r = softmax(logits_r)
//	loss   = Σ_{r: y_r ≠ ignore} loss_r / count
//
// count is the number of rows whose target is not ignore; those rows contribute nothing and
// get a zero gradient. When count is 0 the loss is 0 (torch returns NaN). If dlogits is not
// nil, the gradient of the mean loss is WRITTEN to it (not accumulated):
//
//	dlogits_r = (p_r − (1−ε)·onehot(y_r) − ε/V) / count
//
// Numerics: p comes from the float32 softmax kernel (~3e-7 relative; one exp per logit, the
// dominant cost at V = 51865), and the log-sum-exp is recovered from it at the row's arg-max,
// lse = z_max + log1p(Σ_{j≠max} p_j / p_max), in float64: relative error ~3e-7 in the
// log1p term, so a confident, correct row keeps its tiny loss instead of cancelling to 0.
// Rows run in parallel; the per-chunk partial losses are added in a fixed order.
//
// A target outside [0, V) other than ignore panics: it is a data-pipeline bug.
func CrossEntropy(logits []float32, targets []int, rows, vocab int, smoothing float32, ignore int, dlogits []float32) (loss float64, count int) {
	need("cross-entropy logits", logits, rows*vocab)
	if len(targets) < rows {
		panic(fmt.Sprintf("tensor: cross-entropy has %d targets for %d rows", len(targets), rows))
	}
	if dlogits != nil {
		need("cross-entropy dlogits", dlogits, rows*vocab)
	}
	for _, y := range targets[:rows] {
		if y == ignore {
			continue
		}
		if y < 0 || y >= vocab {
			panic(fmt.Sprintf("tensor: cross-entropy target %d outside a vocabulary of %d", y, vocab))
		}
		count++
	}
	if count == 0 || vocab == 0 {
		if dlogits != nil {
			clear(dlogits[:rows*vocab])
		}
		return 0, count
	}
	eps := float64(smoothing)
	inv := 1 / float64(count)
	chunks := numChunks(rows, max(1, grainElems/vocab))
	partial := getF64(chunks)
	defer putF64(partial)
	clear(*partial)
	forChunks(rows, chunks, func(c, lo, hi int) {
		var buf *[]float32
		if dlogits == nil {
			buf = getScratch(vocab)
			defer putScratch(buf)
		}
		var sum float64
		for r := lo; r < hi; r++ {
			y := targets[r]
			z := logits[r*vocab : (r+1)*vocab]
			var p []float32
			if dlogits != nil {
				p = dlogits[r*vocab : (r+1)*vocab]
			} else {
				p = *buf
			}
			if y == ignore {
				if dlogits != nil {
					clear(p)
				}
				continue
			}
			copy(p, z)
			softmaxKernel(p, 1, vocab, vocab, -1)
			imax, zsum := 0, 0.0
			for j, v := range z {
				if v > z[imax] {
					imax = j
				}
				zsum += float64(v)
			}
			// lse = z_max − log p_max = z_max + log1p(Σ_{j≠max} p_j / p_max): each p_j/p_max is
			// exp(z_j − z_max) to float32 accuracy, so a near-certain row (p_max rounding to 1)
			// keeps its tiny loss. Read before the gradient overwrites p.
			pmax := float64(p[imax])
			var rest float64
			if dlogits == nil {
				for j, v := range p {
					if j != imax {
						rest += float64(v)
					}
				}
			} else {
				floor := float32(eps / float64(vocab) * inv)
				scale := float32(inv)
				for j, v := range p {
					if j != imax {
						rest += float64(v)
					}
					p[j] = v*scale - floor
				}
				p[y] -= float32((1 - eps) * inv)
			}
			// lse − z_y split as (z_max − z_y) + log1p(…): exact when y is the arg-max.
			tail := math.Log1p(rest / pmax)
			nll := float64(z[imax]) - float64(z[y]) + tail
			smooth := float64(z[imax]) - zsum/float64(vocab) + tail
			sum += (1-eps)*nll + eps*smooth
		}
		(*partial)[c] = sum
	})
	for _, s := range *partial {
		loss += s
	}
	return loss * inv, count
}

// CTCLoss is the connectionist temporal classification loss (Graves et al. 2006) of one
// sequence: −log p(labels | x), summed over all alignments of labels (with blanks and repeats)
// to the T frames of logProbs [T, V], which must be log-softmax outputs. It runs the
// forward-backward recursions in log space in float64. If dLogits is not nil, the gradient
// with respect to the PRE-softmax logits is written to it (not accumulated):
//
//	dLogits[t,k] = exp(logProbs[t,k]) − γ[t,k],   γ[t,k] = Σ_{s: l'_s = k} α_t(s)·β_t(s) / (y_t(k)·p)
//
// (γ is the posterior occupancy of class k at frame t; l' is labels with blanks between and
// around). The loss is not normalised by length; callers apply torch's 'mean' reduction by
// scaling. When no alignment fits (T shorter than the labels plus their repeats) the loss is
// +Inf and the gradient zero, as torch's zero_infinity=True. Labels equal to blank or outside
// [0, V) panic.
func CTCLoss(logProbs []float32, T, V int, labels []int, blank int, dLogits []float32) (loss float64) {
	return ctc(logProbs, T, V, labels, blank, dLogits, true)
}

// ctc computes the CTC loss and, if grad is not nil, writes base − γ to grad [T, V], with base
// exp(logProbs) (the gradient w.r.t. the logits) when wrtLogits, else 0 (the gradient w.r.t.
// the log-probabilities, for a log-softmax recorded separately on the tape).
func ctc(lp []float32, T, V int, labels []int, blank int, grad []float32, wrtLogits bool) float64 {
	need("ctc log-probs", lp, T*V)
	if grad != nil {
		need("ctc gradient", grad, T*V)
	}
	if blank < 0 || blank >= V {
		panic(fmt.Sprintf("tensor: ctc blank %d outside a vocabulary of %d", blank, V))
	}
	for _, l := range labels {
		if l < 0 || l >= V || l == blank {
			panic(fmt.Sprintf("tensor: ctc label %d invalid (vocabulary %d, blank %d)", l, V, blank))
		}
	}
	S := 2*len(labels) + 1
	ext := func(s int) int { // l'_s
		if s%2 == 0 {
			return blank
		}
		return labels[s/2]
	}
	// skip(s): the transition s−2 → s is allowed (a label after a blank, unless it repeats
	// the previous label, which needs the blank between them).
	skip := func(s int) bool { return s >= 2 && s%2 == 1 && ext(s) != ext(s-2) }
	inf := math.Inf(-1)
	if T == 0 {
		if S == 1 {
			return 0
		}
		return math.Inf(1)
	}
	ab := getF64(2 * T * S)
	defer putF64(ab)
	alpha, beta := (*ab)[:T*S], (*ab)[T*S:]
	for i := range alpha {
		alpha[i], beta[i] = inf, inf
	}
	alpha[0] = float64(lp[blank])
	if S > 1 {
		alpha[1] = float64(lp[ext(1)])
	}
	for t := 1; t < T; t++ {
		prev, cur := alpha[(t-1)*S:t*S], alpha[t*S:(t+1)*S]
		// Only states s >= S − 2·(T−t) can still reach the end, and s <= 2t+1 reachable from
		// the start; the rest stay at −Inf.
		for s := max(0, S-2*(T-t)); s < min(S, 2*t+2); s++ {
			a := prev[s]
			if s >= 1 {
				a = logAdd(a, prev[s-1])
			}
			if skip(s) {
				a = logAdd(a, prev[s-2])
			}
			if a != inf {
				cur[s] = a + float64(lp[t*V+ext(s)])
			}
		}
	}
	last := alpha[(T-1)*S : T*S]
	logp := last[S-1]
	if S > 1 {
		logp = logAdd(logp, last[S-2])
	}
	if math.IsInf(logp, -1) || math.IsNaN(logp) {
		if grad != nil {
			clear(grad[:T*V])
		}
		if math.IsNaN(logp) {
			return math.NaN()
		}
		return math.Inf(1)
	}
	if grad == nil {
		return -logp
	}
	beta[(T-1)*S+S-1] = float64(lp[(T-1)*V+blank])
	if S > 1 {
		beta[(T-1)*S+S-2] = float64(lp[(T-1)*V+ext(S-2)])
	}
	for t := T - 2; t >= 0; t-- {
		next, cur := beta[(t+1)*S:(t+2)*S], beta[t*S:(t+1)*S]
		for s := max(0, S-2*(T-t)); s < min(S, 2*t+2); s++ {
			b := next[s]
			if s+1 < S {
				b = logAdd(b, next[s+1])
			}
			if s+2 < S && skip(s+2) {
				b = logAdd(b, next[s+2])
			}
			if b != inf {
				cur[s] = b + float64(lp[t*V+ext(s)])
			}
		}
	}
	for t := 0; t < T; t++ {
		g, lt := grad[t*V:(t+1)*V], lp[t*V:(t+1)*V]
		if wrtLogits {
			for k, v := range lt {
				g[k] = float32(math.Exp(float64(v)))
			}
		} else {
			clear(g)
		}
		// γ sums over the states of each class (blank sits at every even state, a repeated
		// label at several odd ones); each term is at most 1, so plain addition is safe.
		a, b := alpha[t*S:(t+1)*S], beta[t*S:(t+1)*S]
		for s := 0; s < S; s++ {
			if a[s] == inf || b[s] == inf {
				continue
			}
			k := ext(s)
			g[k] -= float32(math.Exp(a[s] + b[s] - float64(lt[k]) - logp))
		}
	}
	return -logp
}

// logAdd returns log(exp(a) + exp(b)) without overflow; −Inf is the identity.
func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// numChunks is how many pieces forChunks splits n items into: at most Threads(), each at
// least grain items (the rule parallelFor uses).
func numChunks(n, grain int) int {
	if n <= 0 {
		return 1
	}
	return max(1, min(Threads(), n/max(1, grain)))
}

// forChunks runs fn(c, lo, hi) for chunks c in [0, chunks) covering [0, n) contiguously, in
// parallel. Unlike parallelFor it passes the chunk index, so reductions can keep one partial
// per chunk and add them in a fixed order (results independent of scheduling).
func forChunks(n, chunks int, fn func(c, lo, hi int)) {
	if chunks <= 1 || n <= 1 {
		fn(0, 0, n)
		return
	}
	done := make(chan struct{}, chunks-1)
	for c := 0; c < chunks-1; c++ {
		go func() {
			fn(c, c*n/chunks, (c+1)*n/chunks)
			done <- struct{}{}
		}()
	}
	fn(chunks-1, (chunks-1)*n/chunks, n)
	for range chunks - 1 {
		<-done
	}
}

// CrossEntropy returns the label-smoothed cross entropy of logits [.., V] against targets (one
// per row), averaged over the rows whose target is not ignore; see the CrossEntropy kernel.
// With a tape attached (and logits needing a gradient) it records the gradient of that mean,
// which Tape.Backward adds to the logits' gradient: the loss seeds itself. Weight it against
// other objectives with ScaleGrad on the logits.
func (c *Ctx) CrossEntropy(logits *T, targets []int, smoothing float32, ignore int) float64 {
	r, vocab := rows(logits)
	if len(targets) != r {
		panic(fmt.Sprintf("tensor: cross-entropy has %d targets for logits %v", len(targets), logits.Shape))
	}
	t := c.tape
	if t == nil || !t.needs(logits) {
		loss, _ := CrossEntropy(logits.Data, targets, r, vocab, smoothing, ignore, nil)
		return loss
	}
	dl := t.alloc(len(logits.Data))
	loss, _ := CrossEntropy(logits.Data, targets, r, vocab, smoothing, ignore, dl)
	t.recordLoss(dl, func() { AddInPlace(t.Grad(logits).Data, dl) })
	return loss
}

// CTCLoss returns the CTC loss of one sequence whose log-probabilities logProbs [T, V] come
// from LogSoftmax, against labels (no blanks); see the CTCLoss kernel. With a tape attached it
// records the gradient with respect to logProbs (−γ, the alignment posteriors), which the
// LogSoftmax step turns into the usual softmax − γ for the logits. Infeasible labels give
// +Inf and no gradient. Weight or normalise it with ScaleGrad on logProbs.
func (c *Ctx) CTCLoss(logProbs *T, labels []int, blank int) float64 {
	frames, vocab := rows(logProbs)
	t := c.tape
	if t == nil || !t.needs(logProbs) {
		return ctc(logProbs.Data, frames, vocab, labels, blank, nil, false)
	}
	g := t.alloc(len(logProbs.Data))
	loss := ctc(logProbs.Data, frames, vocab, labels, blank, g, false)
	t.recordLoss(g, func() { AddInPlace(t.Grad(logProbs).Data, g) })
	return loss
}
