package decode

import (
	"cmp"
	"math/rand/v2"
	"slices"
	"testing"
)

// hashLM gives every (last context token, token) pair a fixed log-probability in [−12, 0)
// and counts its queries; batch says whether it offers LogProbs.
type hashLM struct {
	seed    uint64
	queries *int
}

func (h hashLM) Order() int { return 2 }
func (h hashLM) LogProb(ctx []int, tok int) float64 {
	*h.queries++
	r := rand.New(rand.NewPCG(h.seed, uint64(ctx[len(ctx)-1])<<20|uint64(tok)))
	return -12 * r.Float64()
}

type batchHashLM struct{ hashLM }

func (h batchHashLM) LogProbs(ctx, toks []int, out []float64) {
	for i, tok := range toks {
		out[i] = h.LogProb(ctx, tok)
	}
}

// TestFuseLMExact: fuseLM, which skips the LM for proposals whose bound cannot reach the n
// best, keeps exactly the n best of scoring every proposal, in the same order with the same
// scores (ties included: scores are drawn from a few values), with a batching LM and without,
// and asks the LM less when the scores spread.
func TestFuseLMExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	saved := 0
	for trial := range 400 {
		queries := 0
		var lm LanguageModel = hashLM{seed: uint64(trial), queries: &queries}
		if trial%2 == 1 {
			lm = batchHashLM{hashLM{seed: uint64(trial), queries: &queries}}
		}
		tk := &task{lm: lm}
		tk.o.LMWeight = []float64{0.3, 0.5, 1, 0}[trial%4]
		n := 1 + rng.IntN(11)
		start := rng.IntN(3)
		dst := make([]scored, start, 32)
		var pending []int
		for i := range 2 * n {
			sc := float64(rng.IntN(8)) * -0.5 // ties
			if trial%3 == 0 {
				sc = -10 * rng.Float64()
			}
			if rng.IntN(4) > 0 {
				pending = append(pending, start+i)
			}
			dst = append(dst, scored{tok: 100 + i, joint: sc})
		}
		ctx := []int{rng.IntN(50)}
		// The definition: every pending proposal scored, a stable sort, the n best.
		want := slices.Clone(dst[start:])
		for _, i := range pending {
			want[i-start].joint += tk.o.LMWeight * lm.LogProb(ctx, dst[i].tok)
		}
		slices.SortStableFunc(want, func(a, b scored) int { return cmp.Compare(b.joint, a.joint) })
		want = want[:min(n, len(want))]
		before := queries
		tk.fuseLM(dst, start, slices.Clone(pending), ctx, n)
		got := dst[start:]
		asked := queries - before
		slices.SortStableFunc(got, func(a, b scored) int { return cmp.Compare(b.joint, a.joint) })
		got = got[:min(n, len(got))]
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d (n %d, weight %g): kept %v, scoring every one keeps %v", trial, n, tk.o.LMWeight, got, want)
		}
		if asked > len(pending) {
			t.Fatalf("trial %d: %d LM queries for %d pending", trial, asked, len(pending))
		}
		saved += len(pending) - asked
	}
	if saved == 0 {
		t.Fatal("the bound never skipped a query")
	}
}
