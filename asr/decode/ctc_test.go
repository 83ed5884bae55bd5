package decode

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// randomCTC returns log-softmax rows [frames, classes] drawn from seed; sharp makes them
// peaky, as a trained head's are.
func randomCTC(seed uint64, frames, classes int, sharp float64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	lp := make([]float32, frames*classes)
	for t := range frames {
		row := lp[t*classes : (t+1)*classes]
		var sum float64
		for k := range row {
			row[k] = float32(rng.NormFloat64() * sharp)
			sum += math.Exp(float64(row[k]))
		}
		for k := range row {
			row[k] -= float32(math.Log(sum))
		}
	}
	return lp
}

// collapse is CTC's many-to-one map: merge repeats, drop blanks.
func collapse(path []int, blank int) []int {
	var out []int
	for i, k := range path {
		if k != blank && (i == 0 || path[i-1] != k) {
			out = append(out, k)
		}
	}
	return out
}

// bruteCTC enumerates every path of the window and returns P(output = g) and ψ(g) = P(output
// starts with g) for every output g that has probability, keyed by fmt of g.
func bruteCTC(lp []float32, frames, classes int) (exact, prefix map[string]float64) {
	exact, prefix = map[string]float64{}, map[string]float64{}
	path := make([]int, frames)
	var walk func(t int, logp float64)
	walk = func(t int, logp float64) {
		if t == frames {
			out := collapse(path, classes-1)
			p := math.Exp(logp)
			exact[key(out)] += p
			for n := 0; n <= len(out); n++ {
				prefix[key(out[:n])] += p
			}
			return
		}
		for k := range classes {
			path[t] = k
			walk(t+1, logp+float64(lp[t*classes+k]))
		}
	}
	walk(0, 0)
	return exact, prefix
}

func key(g []int) string {
	b := make([]byte, len(g))
	for i, v := range g {
		b[i] = byte('a' + v)
	}
	return string(b)
}

// TestCTCPrefixScoreMatchesEnumeration checks the prefix recursions against the sum over
// every alignment: for every prefix g reachable in a few frames, the chain of scores from the
// empty prefix gives log ψ(g), and EOT's score gives log P(output = g) − log ψ(g). Repeated
// tokens ("aa" needs a blank between) are among them.
func TestCTCPrefixScoreMatchesEnumeration(t *testing.T) {
	for _, tc := range []struct {
		name           string
		frames, labels int
		sharp          float64
		seed           uint64
	}{
		{"flat-4x2", 4, 2, 0.5, 1},
		{"peaky-5x2", 5, 2, 3, 2},
		{"flat-5x3", 5, 3, 1, 3},
		{"peaky-6x2", 6, 2, 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			classes := tc.labels + 1
			lp := randomCTC(tc.seed, tc.frames, classes, tc.sharp)
			s := &ctcScorer{lp: lp, frames: tc.frames, blank: tc.labels, lambda: 0.5}
			exact, prefix := bruteCTC(lp, tc.frames, classes)
			checked := 0
			var visit func(g []int, st *ctcState, logPsi float64)
			visit = func(g []int, st *ctcState, logPsi float64) {
				if want := math.Log(prefix[key(g)]); math.Abs(st.psi-want) > 2e-6*max(1, math.Abs(want)) {
					t.Errorf("ψ(%q) = %.12g, enumeration %.12g", key(g), st.psi, want)
				}
				if math.Abs(logPsi-st.psi) > 1e-9*max(1, math.Abs(st.psi)) {
					t.Errorf("ψ(%q): chained scores give %.12g, state %.12g", key(g), logPsi, st.psi)
				}
				if p := exact[key(g)]; p > 0 {
					got := s.final(st) + st.psi
					if want := math.Log(p); math.Abs(got-want) > 2e-6*max(1, math.Abs(want)) {
						t.Errorf("P(output = %q) = %.12g, enumeration %.12g", key(g), got, want)
					}
				}
				checked++
				if len(g) == tc.frames {
					return
				}
				for c := range tc.labels {
					h := append(slices.Clone(g), c)
					if prefix[key(h)] == 0 {
						continue // more labels than frames can carry
					}
					sc := s.score(st, c)
					next := s.extend(st, c)
					if math.Abs(next.psi-(st.psi+sc)) > 1e-9*max(1, math.Abs(next.psi)) {
						t.Errorf("%q: score %.12g, extend's ψ − ψ(g) %.12g", key(h), sc, next.psi-st.psi)
					}
					visit(h, next, logPsi+sc)
				}
			}
			visit(nil, s.initial(), 0)
			if checked < 10 {
				t.Fatalf("only %d prefixes checked", checked)
			}
		})
	}
}

// TestCTCPruneKeepsScores checks that dropping negligible frames leaves the scores of a long,
// peaky window as the unpruned recursion computes them: a reference recursion over every frame
// against the scorer along a path of tokens the window supports.
func TestCTCPruneKeepsScores(t *testing.T) {
	const frames, labels = 300, 20
	classes := labels + 1
	// A peaky window spelling a sequence: each token for a few frames, blanks between.
	lp, want := peakyWindow(5, frames, labels, false)
	s := &ctcScorer{lp: lp, frames: frames, blank: labels, lambda: 0.5}
	st := s.initial()
	full := fullForward(lp, frames, classes, nil)
	var g []int
	for i, tok := range want {
		// Every candidate's score, the right token's and wrong ones', against the reference.
		for c := range labels {
			h := append(slices.Clone(g), c)
			ref := fullForward(lp, frames, classes, h).psi - full.psi
			got := s.score(st, c)
			if ref > -30 && math.Abs(got-ref) > 1e-6*max(1, math.Abs(ref)) {
				t.Fatalf("step %d token %d: score %.9g, full recursion %.9g", i, c, got, ref)
			}
			if ref <= -30 && got > -25 {
				t.Fatalf("step %d token %d: score %.9g for a token the window rules out (%.9g)", i, c, got, ref)
			}
		}
		g = append(g, tok)
		st = s.extend(st, tok)
		full = fullForward(lp, frames, classes, g)
		if math.Abs(st.psi-full.psi) > 1e-6*max(1, math.Abs(full.psi)) {
			t.Fatalf("step %d: ψ %.9g, full recursion %.9g", i, st.psi, full.psi)
		}
		if st.hi-st.lo > 40 && i > 2 && i < len(want)-2 {
			t.Errorf("step %d: %d frames kept; pruning should keep a few around the token", i, st.hi-st.lo)
		}
	}
	ref := fullForward(lp, frames, classes, g)
	if got := s.final(st) + st.psi; math.Abs(got-ref.final) > 1e-6*max(1, math.Abs(ref.final)) {
		t.Fatalf("P(output = g) = %.9g, full recursion %.9g", got, ref.final)
	}
	if s.final(st) < -1 {
		t.Fatalf("EOT after the whole sequence scores %.3g; the window spells exactly it", s.final(st))
	}
}

type forward struct{ psi, final float64 }

// fullForward is the textbook CTC forward over the extended label sequence (Graves et al.,
// 2006) for prefix g over every frame: ψ(g) sums, over frames t, the paths that reach g's last
// label first at t; final is P(output = g).
func fullForward(lp []float32, frames, classes int, g []int) forward {
	blank := classes - 1
	if len(g) == 0 {
		var rb float64
		for t := range frames {
			rb += float64(lp[t*classes+blank])
		}
		return forward{psi: 0, final: rb}
	}
	ext := []int{blank}
	for _, c := range g {
		ext = append(ext, c, blank)
	}
	n := len(ext)
	y := func(t, k int) float64 { return float64(lp[t*classes+k]) }
	alpha := make([]float64, n)
	for i := range alpha {
		alpha[i] = logZero
	}
	alpha[0], alpha[1] = y(0, blank), y(0, g[0])
	psi := alpha[n-2] // g's last label first reached at frame 0 (only when len(g) == 1)
	if len(g) > 1 {
		psi = logZero
	}
	for t := 1; t < frames; t++ {
		next := make([]float64, n)
		for s := range n {
			a := alpha[s]
			if s > 0 {
				a = logAdd(a, alpha[s-1])
			}
			if s > 1 && ext[s] != blank && ext[s] != ext[s-2] {
				a = logAdd(a, alpha[s-2])
			}
			next[s] = a + y(t, ext[s])
		}
		// Paths entering g's last label at t (not staying on it).
		in := alpha[n-3]
		if n >= 5 && ext[n-2] != ext[n-4] {
			in = logAdd(in, alpha[n-4])
		}
		psi = logAdd(psi, in+y(t, ext[n-2]))
		alpha = next
	}
	return forward{psi: psi, final: logAdd(alpha[n-1], alpha[n-2])}
}

// TestCTCEndScore: closing a segment after "a b" scores near 0 in the pause after b, and far
// below before b is spoken or once c has begun; a timestamp past the window's frames closes at
// its end.
func TestCTCEndScore(t *testing.T) {
	const labels = 3 // a, b, c; blank 3
	classes := labels + 1
	frames := []int{3, 0, 0, 3, 1, 1, 3, 3, 3, 2, 2, 3}
	lp := make([]float32, len(frames)*classes)
	for f, k := range frames {
		for c := range classes {
			lp[f*classes+c] = float32(math.Log(0.02))
		}
		lp[f*classes+k] = float32(math.Log(0.94))
	}
	s := &ctcScorer{lp: lp, frames: len(frames), blank: labels, lambda: 0.5, tsBegin: 100}
	g := s.extend(s.extend(s.initial(), 0), 1)
	for _, tc := range []struct {
		f        int
		min, max float64
	}{
		{3, logZero, -3},  // only "a" spoken
		{6, -0.5, 0},      // right after b
		{8, -0.5, 0},      // in the pause
		{11, logZero, -5}, // c is under way
	} {
		got := s.endScore(g, tc.f)
		if got < tc.min || got > tc.max {
			t.Errorf("closing at frame %d: %.3f, want in [%g, %g]", tc.f, got, tc.min, tc.max)
		}
		if tok := s.tsBegin + tc.f; s.tokenScore(g, tok, true) != got || s.tokenScore(g, tok, false) != 0 {
			t.Errorf("frame %d: a closing timestamp scores %g, an opening one %g", tc.f, s.tokenScore(g, tok, true), s.tokenScore(g, tok, false))
		}
	}
	if a, b := s.endScore(g, 40), s.endScore(g, len(frames)); a != b {
		t.Errorf("closing past the window %g, at its end %g", a, b)
	}
}

// phiLog is log φ at frame t for a token c (log 0 outside g's frames).
func (g *ctcState) phiLog(t, c int) float64 {
	if t < g.lo || t >= g.hi {
		return logZero
	}
	return logOf(g.phiLin(c)[t-g.lo]) + g.scale
}

// scoreLog is score by its definition in the log domain: log Σ_t φ_{t−1}·y_t(c) over g's
// frames, each term an exponential scaled by the largest (the reference score is tested
// against).
func (s *ctcScorer) scoreLog(g *ctcState, c int) float64 {
	first := logZero // the empty prefix: c may start at frame 0
	if g.last < 0 {
		first = s.y(0, c)
	}
	t0, t1 := g.lo+1, min(g.hi, s.frames-1)
	best := first
	for t := t0; t <= t1; t++ {
		best = max(best, g.phiLog(t-1, c)+s.y(t, c))
	}
	if best <= logZero {
		return logZero - g.psi
	}
	var sum float64
	if first > logZero {
		sum = math.Exp(first - best)
	}
	for t := t0; t <= t1; t++ {
		sum += math.Exp(g.phiLog(t-1, c) + s.y(t, c) - best)
	}
	return best + math.Log(sum) - g.psi
}

// peakyWindow is a window spelling a random token sequence as a trained head does: each
// token for two frames, then two blanks; every other class at −8…−9 (with ruledOut, −200
// mixed in: a class the head rules out).
func peakyWindow(seed uint64, frames, labels int, ruledOut bool) (lp []float32, spelled []int) {
	classes := labels + 1
	rng := rand.New(rand.NewPCG(seed, 5))
	lp = make([]float32, frames*classes)
	for t := 0; t < frames; {
		tok := rng.IntN(labels)
		if len(spelled) > 0 && tok == spelled[len(spelled)-1] {
			continue
		}
		spelled = append(spelled, tok)
		for d := 0; d < 4 && t < frames; d, t = d+1, t+1 {
			k := tok
			if d >= 2 {
				k = labels
			}
			for c := range classes {
				lp[t*classes+c] = -8 - float32(rng.Float64())
				if ruledOut && rng.IntN(10) == 0 {
					lp[t*classes+c] = -200
				}
			}
			lp[t*classes+k] = -0.01
		}
	}
	return lp, spelled
}

// TestCTCScoreLinear checks the linear-domain score against the log-domain definition for
// every token from every state along spelled and random windows: the empty prefix, repeats
// (blank-only φ), tokens the window rules out, a window whose first frames carry no blank.
func TestCTCScoreLinear(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lp     []float32
		frames int
		labels int
		path   []int
	}{
		{name: "flat", lp: randomCTC(9, 40, 6, 0.7), frames: 40, labels: 5, path: []int{1, 1, 3, 0, 2, 2}},
		{name: "sharp", lp: randomCTC(10, 60, 8, 4), frames: 60, labels: 7, path: []int{6, 0, 0, 5, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLinear(t, tc.lp, tc.frames, tc.labels, tc.path)
		})
	}
	lp, spelled := peakyWindow(3, 200, 30, true)
	t.Run("peaky", func(t *testing.T) { checkLinear(t, lp, 200, 30, spelled) })
	// No blank mass early: the empty prefix's state is empty (its first blank is below the
	// prune bound) and only φ_{−1} = 1 lets a token start.
	lp, spelled = peakyWindow(4, 30, 5, true)
	for c := range 6 {
		lp[c] = -0.01
		if c == 5 {
			lp[c] = -60
		}
	}
	t.Run("no-blank-start", func(t *testing.T) { checkLinear(t, lp, 30, 5, spelled) })
}

func checkLinear(t *testing.T, lp []float32, frames, labels int, path []int) {
	t.Helper()
	s := &ctcScorer{lp: lp, frames: frames, blank: labels, lambda: 0.3}
	st := s.initial()
	checked := 0
	for i := 0; ; i++ {
		for c := range labels {
			want := s.scoreLog(st, c)
			got := s.score(st, c)
			if want <= logZero/2 {
				if got > logZero/2 {
					t.Fatalf("step %d token %d: score %.12g, want log 0 (%.12g)", i, c, got, want)
				}
				continue
			}
			if math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
				t.Fatalf("step %d token %d (last %d): score %.15g, log-domain %.15g", i, c, st.last, got, want)
			}
			checked++
		}
		if i == len(path) {
			break
		}
		st = s.extend(st, path[i])
	}
	if checked < labels*len(path)/2 {
		t.Fatalf("only %d scores checked", checked)
	}
}

// BenchmarkCTCScore is beam search's CTC work on one window: at each of a spelled sequence's
// tokens, 10 beams' worth of states each score 22 candidates (the pre-beam of beam 10: the
// text's tokens around the position, as a decoder proposes plausible words) and one
// extension is kept per beam. The log-domain sub-benchmark is the definition.
func BenchmarkCTCScore(b *testing.B) {
	const frames, labels = 250, 2021
	lp, spelled := peakyWindow(7, frames, labels, true)
	for _, mode := range []string{"linear", "log"} {
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				s := &ctcScorer{lp: lp, frames: frames, blank: labels, lambda: 0.3}
				st := s.initial()
				extend := s.extend
				if mode == "log" {
					extend = s.extendLog
				}
				var sink float64
				for i, tok := range spelled {
					for beam := range 10 {
						g := st
						if beam > 0 { // a sibling state: same prefix, its own caches
							g = &ctcState{n: st.n, b: st.b, lo: st.lo, hi: st.hi, scale: st.scale, psi: st.psi, last: st.last}
						}
						for k := range 22 {
							c := spelled[(i+k*7)%len(spelled)]
							if mode == "linear" {
								sink += s.score(g, c)
							} else {
								sink += s.scoreLog(g, c)
							}
						}
						if beam == 0 {
							_ = extend(g, spelled[(i+1)%len(spelled)])
						}
					}
					st = extend(st, tok)
				}
				if math.IsNaN(sink) {
					b.Fatal("NaN score")
				}
			}
		})
	}
}

// TestCTCExtendLinear checks extend (linear domain at the parent's scale) against extendLog
// (the log-domain recursion) along spelled and random windows and for every token at each
// step: the same ψ, frames kept and forward variables; and that a token the window rules out
// (mass below e^−600 of its parent, as a prompt can force) is built by the log-domain
// recursion and still scores.
func TestCTCExtendLinear(t *testing.T) {
	lp, spelled := peakyWindow(11, 160, 12, true)
	for _, tc := range []struct {
		name           string
		lp             []float32
		frames, labels int
		path           []int
	}{
		{"flat", randomCTC(12, 30, 5, 0.7), 30, 4, []int{1, 1, 3, 0, 2}},
		{"sharp", randomCTC(13, 50, 7, 4), 50, 6, []int{5, 0, 0, 4, 1, 3}},
		{"peaky", lp, 160, 12, spelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &ctcScorer{lp: tc.lp, frames: tc.frames, blank: tc.labels, lambda: 0.3}
			st := s.initial()
			for i := 0; i <= len(tc.path); i++ {
				for c := range tc.labels {
					got, want := s.extend(st, c), s.extendLog(st, c)
					if want.psi < st.psi-30 {
						continue // ruled out: pruning bounds differ below e^-30
					}
					if math.Abs(got.psi-want.psi) > 1e-9*max(1, math.Abs(want.psi)) {
						t.Fatalf("step %d token %d: ψ %.15g, log domain %.15g", i, c, got.psi, want.psi)
					}
					if got.lo != want.lo || got.hi != want.hi {
						t.Fatalf("step %d token %d: frames [%d, %d), log domain [%d, %d)", i, c, got.lo, got.hi, want.lo, want.hi)
					}
					for f := got.lo; f < got.hi; f++ {
						a, b := got.logAt(f), want.logAt(f)
						if b > want.psi-30 && math.Abs(a-b) > 1e-9*max(1, math.Abs(b)) {
							t.Fatalf("step %d token %d frame %d: log α %.15g, log domain %.15g", i, c, f, a, b)
						}
					}
				}
				if i < len(tc.path) {
					st = s.extend(st, tc.path[i])
				}
			}
		})
	}
	// Class 0 at e^-740 in every frame: its extension of the empty prefix underflows at scale
	// 0, so the log-domain recursion builds it; a following token still scores against it.
	lp = randomCTC(14, 20, 4, 1)
	for f := range 20 {
		lp[f*4] = -740
	}
	s := &ctcScorer{lp: lp, frames: 20, blank: 3, lambda: 0.3}
	h := s.extend(s.initial(), 0)
	ref := s.extendLog(s.initial(), 0)
	if h.psi > -730 || math.Abs(h.psi-ref.psi) > 1e-9*math.Abs(ref.psi) {
		t.Fatalf("ruled-out token: ψ %g, log domain %g", h.psi, ref.psi)
	}
	if got, want := s.score(h, 1), s.scoreLog(h, 1); math.Abs(got-want) > 1e-9*max(1, math.Abs(want)) {
		t.Fatalf("after a ruled-out token: score %g, log domain %g", got, want)
	}
}

// TestBestClosingWindow: bestClosing, which scans the timestamps inside the hypothesis's CTC
// frames first, picks what a scan of every timestamp picks (the definition), for states
// along a spelled window — early ones whose frames end mid-window and late ones that reach
// its end — with random decoder logits, some timestamps masked, one favouring the frames'
// last, and with every timestamp in the frames masked (the fallback scan).
func TestBestClosingWindow(t *testing.T) {
	const labels, frames, stamps = 8, 60, 80
	lp, spelled := peakyWindow(21, frames, labels, true)
	s := &ctcScorer{lp: lp, frames: frames, blank: labels, lambda: 0.3}
	begin := labels + 1 // EOT is the blank; timestamps follow it
	tk := &task{ctc: s}
	tk.m.Specials.TimestampBegin = begin
	rng := rand.New(rand.NewPCG(3, 3))
	full := func(l []float32, lse, joint float64, g *ctcState) (int, float64) {
		best, bestScore := -1, math.Inf(-1)
		for tok := begin; tok < len(l); tok++ {
			a := float64(l[tok]) - lse
			if math.IsInf(a, -1) {
				continue
			}
			if sc := joint + 0.7*a + 0.3*s.endScore(g, tok-begin); sc > bestScore {
				best, bestScore = tok, sc
			}
		}
		return best, bestScore
	}
	st := s.initial()
	checked := 0
	for i, tok := range spelled {
		st = s.extend(st, tok)
		for trial := range 6 {
			l := make([]float32, begin+stamps)
			for j := range l {
				l[j] = float32(rng.NormFloat64() * 3)
				if j >= begin && rng.IntN(4) == 0 {
					l[j] = float32(math.Inf(-1))
				}
			}
			if trial == 4 && st.hi < stamps { // the decoder wants the frames' last one
				l[begin+st.hi] = 30
			}
			if trial == 5 { // nothing allowed within the frames: the fallback scan
				for f := st.lo + 1; f < stamps; f++ {
					if f <= st.hi || st.hi >= frames {
						l[begin+f] = float32(math.Inf(-1))
					}
				}
			}
			lse := logSumExp(l)
			want, wantScore := full(l, lse, -2, st)
			got := tk.bestClosing(nil, 0, l, lse, -5, -2, st, 0.3)
			if want < 0 {
				if len(got) != 0 {
					t.Fatalf("token %d trial %d: proposed %v, the full scan nothing", i, trial, got)
				}
				continue
			}
			if len(got) != 1 || got[0].tok != want || got[0].joint != wantScore {
				t.Fatalf("token %d trial %d (frames %d–%d): proposed %v, the full scan %d (%g)", i, trial, st.lo, st.hi, got, want, wantScore)
			}
			checked++
		}
	}
	if checked < len(spelled)*4 {
		t.Fatalf("only %d closings checked", checked)
	}
}
