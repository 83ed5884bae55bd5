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

// ctcState is the CTC side of one hypothesis: its text prefix g's forward variables
// rn[t-lo], rb[t-lo] — the log-probabilities that frames 0…t collapse to g with frame t a
// non-blank (rn) or blank (rb) — for frames lo ≤ t < hi (log 0 elsewhere), ψ = log ψ(g), and
// g's last token (-1 for the empty prefix). States are immutable once built: beams that share
// a prefix share its state.
type ctcState struct {
	rn, rb []float64
	lo, hi int
	psi    float64
	last   int
	sum    []float64 // log(e^rn + e^rb) per frame, made by the first score call
}

// y is log p(class k at frame t).
func (s *ctcScorer) y(t, k int) float64 { return float64(s.lp[t*(s.blank+1)+k]) }

// initial is the state of the empty prefix: blanks only, ψ = 1.
func (s *ctcScorer) initial() *ctcState {
	st := &ctcState{last: -1}
	var rb float64
	for t := range s.frames {
		rb += s.y(t, s.blank)
		if rb < -ctcPrune {
			break
		}
		st.rb = append(st.rb, rb)
		st.rn = append(st.rn, logZero)
	}
	st.hi = len(st.rb)
	return st
}

// phi is the probability mass from which g·c starts at frame t+1: frames 0…t collapsed to g,
// and — when c repeats g's last token — ending in a blank between the two.
func (g *ctcState) phi(t, c int) float64 {
	if t < g.lo || t >= g.hi {
		return logZero
	}
	i := t - g.lo
	if c == g.last {
		return g.rb[i]
	}
	return logAdd(g.rb[i], g.rn[i])
}

// score returns log ψ(g·c) − log ψ(g) for a text token c: the log of Σ_t φ_{t−1}·y_t(c) over
// the frames where g has mass, summed as exponentials scaled by their largest term (one exp
// per frame; beam search scores every candidate of every beam this way).
func (s *ctcScorer) score(g *ctcState, c int) float64 {
	phi := g.rb // c repeats g's last token: a blank must come between
	if c != g.last {
		if g.sum == nil {
			g.sum = make([]float64, len(g.rn))
			for i := range g.rn {
				g.sum[i] = logAdd(g.rn[i], g.rb[i])
			}
		}
		phi = g.sum
	}
	first := logZero // the empty prefix: c may start at frame 0
	if g.last < 0 {
		first = s.y(0, c)
	}
	stride := s.blank + 1
	t0, t1 := g.lo+1, min(g.hi, s.frames-1)
	best := first
	for t := t0; t <= t1; t++ {
		best = max(best, phi[t-1-g.lo]+float64(s.lp[t*stride+c]))
	}
	if best <= logZero {
		return logZero - g.psi
	}
	var sum float64
	if first > logZero {
		sum = math.Exp(first - best)
	}
	for t := t0; t <= t1; t++ {
		sum += math.Exp(phi[t-1-g.lo] + float64(s.lp[t*stride+c]) - best)
	}
	return best + math.Log(sum) - g.psi
}

// final returns log P(output = g) − log ψ(g): EOT's CTC score.
func (s *ctcScorer) final(g *ctcState) float64 {
	if g.hi < s.frames || g.hi == g.lo {
		return logZero
	}
	i := g.hi - 1 - g.lo
	return logAdd(g.rn[i], g.rb[i]) - g.psi
}

// extend builds the state of g·c (Watanabe et al. Algorithm 2), dropping frames below the
// prune threshold at both ends.
func (s *ctcScorer) extend(g *ctcState, c int) *ctcState {
	h := &ctcState{last: c, psi: logZero}
	rnPrev, rbPrev := float64(logZero), float64(logZero)
	t0 := g.lo + 1
	if g.last < 0 {
		rnPrev = s.y(0, c)
		h.psi = rnPrev
		h.rn, h.rb = append(h.rn, rnPrev), append(h.rb, logZero)
		t0 = 1
	} else {
		h.lo = t0 // frames up to g.lo cannot have emitted c yet
	}
	for t := t0; t < s.frames; t++ {
		phi := g.phi(t-1, c)
		rn := logAdd(rnPrev, phi) + s.y(t, c)
		rb := logAdd(rbPrev, rnPrev) + s.y(t, s.blank)
		h.psi = logAdd(h.psi, phi+s.y(t, c))
		h.rn, h.rb = append(h.rn, rn), append(h.rb, rb)
		rnPrev, rbPrev = rn, rb
		// Past g's frames nothing flows in any more and the forward mass only falls: stop
		// once it is negligible against ψ(h).
		if t >= g.hi && logAdd(rn, rb) < h.psi-ctcPrune {
			break
		}
	}
	h.hi = h.lo + len(h.rn)
	// Trim leading frames whose mass is negligible, so that extensions of h skip them.
	k := 0
	for k < len(h.rn)-1 && logAdd(h.rn[k], h.rb[k]) < h.psi-ctcPrune {
		k++
	}
	h.rn, h.rb, h.lo = h.rn[k:], h.rb[k:], h.lo+k
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
	i := t - g.lo
	return logAdd(g.rn[i], g.rb[i]) - g.psi
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
