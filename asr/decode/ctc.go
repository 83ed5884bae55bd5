package decode

import (
	"fmt"
	"math"
)

// Joint CTC/attention decoding (Watanabe et al., "Hybrid CTC/Attention Architecture for
// End-to-End Speech Recognition", IEEE JSTSP 11(8), 2017, §III-C and Algorithm 2): a model
// trained with a CTC head on its encoder (chorus's own models are) scores each candidate next
// token by
//
//	(1−λ)·log p_att(c | g) + λ·(log ψ(g·c) − log ψ(g))
//
// where ψ(h) is the CTC prefix probability — the probability that the collapsed CTC output of
// the whole window starts with the text h — and EOT by log P_ctc(g) − log ψ(g), the
// probability that the output is exactly g. The CTC term knows where the audio is: it vetoes
// hypotheses that end before the speech does, repeat a phrase, or drift into text the frames do
// not support — the failures of a small attention decoder. Over a hypothesis the CTC terms
// telescope, so its joint score is (1−λ)·Σ log p_att + λ·log P_ctc(text).
//
// Timestamp tokens are transparent to the CTC side (its classes are the ordinary text tokens
// and blank). Sampling at a temperature T above 0 (the temperature fallback) draws from the
// pre-beam candidates with probability ∝ exp(joint score / T), so a fallback keeps the CTC's
// guidance; the reported log-probabilities (Result.SumLogprob, AvgLogprob) stay the
// attention decoder's, which the fallback thresholds were made for.

// CTCRunner is implemented by a Runner whose model has a CTC head on its encoder.
type CTCRunner interface {
	// CTCLogProbs returns the CTC head's log-probabilities over the encoded window: frames
	// rows of EOT+1 classes, the ordinary text tokens 0…EOT−1 and blank (class EOT). It
	// returns nil when the model has no CTC head. The slice stays valid until the next window
	// is encoded.
	CTCLogProbs() (lp []float32, frames int)
}

// logZero stands for log 0 in the CTC recursions. It is finite (ESPnet's choice) so that joint
// scores of hypotheses the CTC side rules out still order by their attention scores.
const logZero = -1e10

// ctcPrune bounds the forward variables kept: frames where a prefix's forward probability is
// below e^-ctcPrune of its prefix probability ψ are dropped (taken as 0). The forward
// probability of g at any frame is at most ψ(g), so what is dropped changes log ψ of an
// extension by at most T·e^-40 relative — except for extensions whose CTC score is below
// about −40 anyway, which no search keeps.
const ctcPrune = 40

// ctcPreBeam is how many of a hypothesis's most probable next tokens under the attention
// decoder are scored by the CTC side when n proposals are wanted (ESPnet's pre-beam is 1.5×
// the beam; a greedy search needs room to overturn the decoder's first choice).
func ctcPreBeam(n int) int { return max(6, 2*n) }

// ctcScorer holds one window's CTC log-probabilities.
type ctcScorer struct {
	lp     []float32 // [frames, blank+1]
	frames int
	blank  int // EOT: the classes are the text tokens 0…blank−1 and blank
	lambda float64
	// tsBegin is <|0.00|>: timestamp i is tsBegin+i, i encoder frames into the window.
	tsBegin int
	cols    []expCol // per class, e^{y} over the window's frames (expCol)
	// scratchN and scratchB are extend's working rows, reused across extensions.
	scratchN, scratchB []float64
}

// newCTCScorer checks the runner's CTC output against the vocabulary and returns a scorer, or
// nil when the runner has no CTC head.
func newCTCScorer(r Runner, eot, tsBegin int, lambda float64) (*ctcScorer, error) {
	cr, ok := r.(CTCRunner)
	if !ok || lambda == 0 {
		return nil, nil
	}
	lp, frames := cr.CTCLogProbs()
	if lp == nil {
		return nil, nil
	}
	if frames <= 0 || len(lp) != frames*(eot+1) {
		return nil, fmt.Errorf("decode: CTC head gave %d values for %d frames; want %d classes per frame (text tokens below eot %d, and blank)", len(lp), frames, eot+1, eot)
	}
	return &ctcScorer{lp: lp, frames: frames, blank: eot, lambda: lambda, tsBegin: tsBegin}, nil
}

// ctcState is the CTC side of one hypothesis: its text prefix g's forward variables — the
// probabilities that frames 0…t collapse to g with frame t a non-blank (n) or a blank (b) —
// for frames lo ≤ t < hi (0 elsewhere), held in the linear domain as n[t−lo]·e^scale and
// b[t−lo]·e^scale (scale their largest sum's log, so the values lie in [0, 1] and keep float64's
// relative precision), ψ = log ψ(g), and g's last token (-1 for the empty prefix). Beam search
// scores ~20 candidates per state and extends ~1, so the state is kept in the form both want:
// multiply-adds against e^{y}, no exp or log per frame. States are immutable once built:
// beams that share a prefix share its state.
type ctcState struct {
	n, b   []float64
	lo, hi int
	scale  float64
	psi    float64
	last   int
	nb     []float64 // n + b per frame: φ for a token other than last (made on first use)
}

// y is log p(class k at frame t).
func (s *ctcScorer) y(t, k int) float64 { return float64(s.lp[t*(s.blank+1)+k]) }

// initial is the state of the empty prefix: blanks only, ψ = 1, scale 0.
func (s *ctcScorer) initial() *ctcState {
	st := &ctcState{last: -1}
	var rb float64
	for t := range s.frames {
		rb += s.y(t, s.blank)
		if rb < -ctcPrune {
			break
		}
		st.b = append(st.b, math.Exp(rb))
		st.n = append(st.n, 0)
	}
	st.hi = len(st.b)
	return st
}

// phiLin returns φ per frame of g (frame lo+i at index i), scaled by e^−scale: the mass from
// which g·c starts at the next frame — frames collapsed to g, and, when c repeats g's last
// token, ending in a blank between the two.
func (g *ctcState) phiLin(c int) []float64 {
	if c == g.last {
		return g.b
	}
	if g.nb == nil {
		g.nb = make([]float64, len(g.n))
		for i := range g.n {
			g.nb[i] = g.n[i] + g.b[i]
		}
	}
	return g.nb
}

// logAt is the log of g's forward probability at frame t, non-blank and blank ending
// together (log 0 outside lo…hi).
func (g *ctcState) logAt(t int) float64 {
	if t < g.lo || t >= g.hi {
		return logZero
	}
	return logOf(g.n[t-g.lo]+g.b[t-g.lo]) + g.scale
}

// logOf is log v, logZero for 0.
func logOf(v float64) float64 {
	if v > 0 {
		return math.Log(v)
	}
	return logZero
}

// score returns log ψ(g·c) − log ψ(g) for a text token c: the log of Σ_t φ_{t−1}·y_t(c) over
// the frames where g has mass — g's linear φ dotted with the window's e^{y(c)} (made once per
// class and window), a multiply-add per frame. scoreLog (ctc_test.go) is the log-domain
// definition it is tested against.
func (s *ctcScorer) score(g *ctcState, c int) float64 {
	phi := g.phiLin(c)
	t0, t1 := g.lo+1, min(g.hi, s.frames-1)
	var sum float64
	if t1 >= t0 {
		y := s.expCol(c, t0, t1+1)[t0 : t1+1]
		sum = dot64(phi, y)
	}
	if g.last < 0 { // the empty prefix: c may start at frame 0, φ_{−1} = 1
		sum += math.Exp(-g.scale) * s.expCol(c, 0, 1)[0]
	}
	if !(sum > 0) {
		return logZero - g.psi
	}
	return g.scale + math.Log(sum) - g.psi
}

// dot64 is Σ a[i]·b[i] (len(a) ≥ len(b)), four sums at a time so that the adds pipeline.
func dot64(a, b []float64) float64 {
	a = a[:len(b)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(b); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(b); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// expCol returns e^{y(t, c)} for the window's frames, valid on [a, b) at least: each class's
// column (the blank's too) is filled on demand and kept for the window, so a frame's
// exponential is taken once however many hypotheses propose c.
func (s *ctcScorer) expCol(c, a, b int) []float64 {
	if s.cols == nil {
		s.cols = make([]expCol, s.blank+1)
	}
	col := &s.cols[c]
	if col.v == nil {
		col.v = make([]float64, s.frames)
		col.lo, col.hi = a, a
	}
	stride := s.blank + 1
	for t := a; t < col.lo; t++ {
		col.v[t] = math.Exp(float64(s.lp[t*stride+c]))
	}
	col.lo = min(col.lo, a)
	for t := col.hi; t < b; t++ {
		col.v[t] = math.Exp(float64(s.lp[t*stride+c]))
	}
	col.hi = max(col.hi, b)
	return col.v
}

// expCol is one class's e^{y} over a window, filled on [lo, hi).
type expCol struct {
	v      []float64
	lo, hi int
}

// final returns log P(output = g) − log ψ(g): EOT's CTC score.
func (s *ctcScorer) final(g *ctcState) float64 {
	if g.hi < s.frames || g.hi == g.lo {
		return logZero
	}
	return g.logAt(g.hi-1) - g.psi
}

// extend builds the state of g·c (Watanabe et al. Algorithm 2) in the linear domain at g's
// scale, dropping frames below the prune threshold at both ends, then rescales to its own.
// Where g·c's mass is too small for g's scale (below e^−600 of it: a token the window rules
// out, forced by a prompt) the log-domain recursion, extendLog, builds it instead.
func (s *ctcScorer) extend(g *ctcState, c int) *ctcState {
	h := &ctcState{last: c}
	phi := g.phiLin(c)
	var rnPrev, rbPrev, psi float64
	n, b := s.scratchN[:0], s.scratchB[:0]
	t0 := g.lo + 1
	if g.last < 0 {
		rnPrev = math.Exp(-g.scale) * s.expCol(c, 0, 1)[0]
		psi = rnPrev
		n, b = append(n, rnPrev), append(b, 0)
		t0 = 1
	} else {
		h.lo = t0 // frames up to g.lo cannot have emitted c yet
	}
	cut := math.Exp(-ctcPrune)
	var yc, yb []float64
	filled := t0
	for t := t0; t < s.frames; t++ {
		if t >= filled { // the columns in chunks: the loop usually stops soon after g.hi
			filled = min(s.frames, max(t, g.hi)+16)
			yc, yb = s.expCol(c, t, filled), s.expCol(s.blank, t, filled)
		}
		var ph float64
		if i := t - 1 - g.lo; i >= 0 && i < len(phi) {
			ph = phi[i]
		}
		rn := (rnPrev + ph) * yc[t]
		rb := (rbPrev + rnPrev) * yb[t]
		psi += ph * yc[t]
		n, b = append(n, rn), append(b, rb)
		rnPrev, rbPrev = rn, rb
		// Past g's frames nothing flows in any more and the forward mass only falls: stop
		// once it is negligible against ψ(h).
		if t >= g.hi && rn+rb < psi*cut {
			break
		}
	}
	s.scratchN, s.scratchB = n, b
	if !(psi > 1e-260) {
		return s.extendLog(g, c)
	}
	// Trim leading frames whose mass is negligible, so that extensions of h skip them.
	k := 0
	for k < len(n)-1 && n[k]+b[k] < psi*cut {
		k++
	}
	n, b = n[k:], b[k:]
	h.lo += k
	h.hi = h.lo + len(n)
	var m float64
	for i := range n {
		m = max(m, n[i]+b[i])
	}
	if !(m > 0) {
		return s.extendLog(g, c)
	}
	h.n, h.b = make([]float64, len(n)), make([]float64, len(n))
	inv := 1 / m
	for i := range n {
		h.n[i], h.b[i] = n[i]*inv, b[i]*inv
	}
	h.scale = g.scale + math.Log(m)
	h.psi = g.scale + math.Log(psi)
	return h
}

// extendLog is extend in the log domain: the recursion as Watanabe et al. write it, one exp
// and log per term, for an extension whose mass underflows at its parent's scale.
func (s *ctcScorer) extendLog(g *ctcState, c int) *ctcState {
	phi := func(t int) float64 { // log φ at frame t
		if t < g.lo || t >= g.hi {
			return logZero
		}
		i := t - g.lo
		if c == g.last {
			return logOf(g.b[i]) + g.scale
		}
		return logOf(g.n[i]+g.b[i]) + g.scale
	}
	lo, psi := 0, float64(logZero)
	var rn, rb []float64
	rnPrev, rbPrev := float64(logZero), float64(logZero)
	t0 := g.lo + 1
	if g.last < 0 {
		rnPrev = s.y(0, c)
		psi = rnPrev
		rn, rb = append(rn, rnPrev), append(rb, logZero)
		t0 = 1
	} else {
		lo = t0
	}
	for t := t0; t < s.frames; t++ {
		ph := phi(t - 1)
		n := logAdd(rnPrev, ph) + s.y(t, c)
		b := logAdd(rbPrev, rnPrev) + s.y(t, s.blank)
		psi = logAdd(psi, ph+s.y(t, c))
		rn, rb = append(rn, n), append(rb, b)
		rnPrev, rbPrev = n, b
		if t >= g.hi && logAdd(n, b) < psi-ctcPrune {
			break
		}
	}
	k := 0
	for k < len(rn)-1 && logAdd(rn[k], rb[k]) < psi-ctcPrune {
		k++
	}
	rn, rb = rn[k:], rb[k:]
	h := &ctcState{last: c, lo: lo + k, psi: psi, scale: logZero}
	h.hi = h.lo + len(rn)
	for i := range rn {
		h.scale = max(h.scale, logAdd(rn[i], rb[i]))
	}
	h.n, h.b = make([]float64, len(rn)), make([]float64, len(rn))
	for i := range rn {
		if rn[i] > logZero {
			h.n[i] = math.Exp(rn[i] - h.scale)
		}
		if rb[i] > logZero {
			h.b[i] = math.Exp(rb[i] - h.scale)
		}
	}
	return h
}

// advance returns the state after token tok: text tokens extend the prefix; EOT and every
// other token (timestamps) leave it as it is.
func (s *ctcScorer) advance(g *ctcState, tok int) *ctcState {
	if tok < s.blank {
		return s.extend(g, tok)
	}
	return g
}

// tokenScore is tok's CTC score from g: the prefix score of a text token, the final score of
// EOT, endScore for a timestamp that closes a segment (after lastText, the hypothesis's last
// token being text), 0 for other timestamps.
func (s *ctcScorer) tokenScore(g *ctcState, tok int, lastText bool) float64 {
	switch {
	case tok == s.blank:
		return s.final(g)
	case tok < s.blank:
		return s.score(g, tok)
	case lastText && tok >= s.tsBegin:
		return s.endScore(g, tok-s.tsBegin)
	}
	return 0
}

// endScore is the CTC score of closing a segment at timestamp f — f encoder frames into the
// window, as a timestamp step is one frame (30 s / AudioCtx): log(P(frames 0…f−1 collapse to
// g) / ψ(g)), near 0 when g's text has been spoken by then (the pause after it included) and
// far below when it has not, or when the next words have already begun. It keeps a small
// decoder from closing a segment long before its words end.
func (s *ctcScorer) endScore(g *ctcState, f int) float64 {
	t := min(f, s.frames) - 1
	if t < g.lo || t >= g.hi {
		return logZero
	}
	return g.logAt(t) - g.psi
}

// logAdd is log(e^a + e^b).
func logAdd(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if b <= logZero {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}
