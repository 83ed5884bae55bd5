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
	rng := rand.New(rand.NewPCG(5, 5))
	// A peaky window spelling a sequence: each token for a few frames, blanks between.
	var want []int
	lp := make([]float32, frames*classes)
	for t := 0; t < frames; {
		tok := rng.IntN(labels)
		if len(want) > 0 && tok == want[len(want)-1] {
			continue
		}
		want = append(want, tok)
		for d := 0; d < 4 && t < frames; d, t = d+1, t+1 {
			k := tok
			if d >= 2 {
				k = labels
			}
			for c := range classes {
				lp[t*classes+c] = -8 - float32(rng.Float64())
			}
			lp[t*classes+k] = -0.01
		}
	}
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
