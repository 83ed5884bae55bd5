package decode_test

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
)

// tinyModel is an English-only model over v tokens: text 0..v-2 and EOT v-1. The other
// specials lie outside the vocabulary (they are only fed, never scored) and decoding runs
// without timestamps or suppression, so the search sees the scripted distribution as is.
func tinyModel(v int) decode.Model {
	words := make([]string, v-1)
	for i := range words {
		words[i] = fmt.Sprintf(" w%d", i)
	}
	return decode.Model{
		Vocab: decodetest.Vocab{Words: words},
		Specials: decode.Specials{
			EOT: v - 1, SOT: v, Transcribe: v + 1, Translate: v + 2, SOTLM: v + 3, SOTPrev: v + 4,
			NoSpeech: -1, NoTimestamps: v + 5, TimestampBegin: v + 6,
		},
		TextCtx:  448,
		AudioCtx: 1500,
	}
}

// tinyInitial is the number of initial tokens of tinyModel: SOT, <|notimestamps|>.
const tinyInitial = 2

// table is a designed model: the next-token distribution after each sampled prefix (keyed by
// fmt.Sprint(prefix)); prefixes it does not list get the uniform distribution.
type table map[string][]float64

func (tb table) logprobs(v int, prefix []int) []float64 {
	p, ok := tb[fmt.Sprint(prefix)]
	out := make([]float64, v)
	for i := range out {
		if ok {
			out[i] = math.Log(p[i])
		} else {
			out[i] = -math.Log(float64(v))
		}
	}
	return out
}

func (tb table) script(v int) func([]int) []float32 {
	return func(h []int) []float32 {
		l := make([]float32, v)
		if len(h) < tinyInitial {
			return l
		}
		for i, x := range tb.logprobs(v, h[tinyInitial:]) {
			l[i] = float32(x)
		}
		return l
	}
}

// bruteForce enumerates every finished sequence (text tokens then EOT, at most depth tokens
// in all) and returns the one the ranker scores best, with its sum log-prob and score.
func bruteForce(v, depth int, lp func(prefix []int) []float64, alpha *float64) (best []int, bestSum, bestScore float64) {
	eot := v - 1
	bestScore = math.Inf(-1)
	var walk func(prefix []int, sum float64)
	walk = func(prefix []int, sum float64) {
		l := lp(prefix)
		end := sum + l[eot]
		penalty := float64(max(len(prefix), 1))
		if alpha != nil {
			penalty = math.Pow((5+float64(len(prefix)))/6, *alpha)
		}
		if s := end / penalty; s > bestScore {
			best, bestSum, bestScore = slices.Clone(prefix), end, s
		}
		if len(prefix)+1 == depth {
			return
		}
		for tok := range eot {
			walk(append(prefix, tok), sum+l[tok])
		}
	}
	walk(nil, 0)
	return best, bestSum, bestScore
}

func TestBeamSearchFindsBruteForceBest(t *testing.T) {
	const v, depth = 6, 3 // text tokens 0-4, EOT 5
	p := func(kv ...float64) []float64 {
		// kv lists token, probability; the rest of the mass is shared by the others.
		out := make([]float64, v)
		rest, n := 1.0, v
		for i := 0; i < len(kv); i += 2 {
			out[int(kv[i])] = kv[i+1]
			rest -= kv[i+1]
			n--
		}
		for i := range out {
			if out[i] == 0 {
				out[i] = rest / float64(n)
			}
		}
		return out
	}
	zero, one := 0.0, 1.0
	trap := table{ // greedy takes 0, but 1 2 EOT is far more probable overall
		"[]":    p(0, 0.40, 1, 0.35),
		"[0]":   p(0, 0.18, 1, 0.18, 2, 0.18, 3, 0.18, 4, 0.18),
		"[1]":   p(2, 0.9),
		"[1 2]": p(5, 0.95),
	}
	lengths := table{ // 0 EOT is likelier in total, 1 2 EOT likelier per token
		"[]":    p(0, 0.5, 1, 0.4),
		"[0]":   p(5, 0.5),
		"[1]":   p(2, 0.7),
		"[1 2]": p(5, 0.7),
	}
	for _, tc := range []struct {
		name         string
		tb           table
		alpha        *float64
		want         []int
		greedyMisses bool // greedy decoding must not find want, or the case proves nothing
	}{
		{"beam escapes the greedy trap", trap, nil, []int{1, 2}, true},
		{"length normalisation prefers the longer", lengths, nil, []int{1, 2}, true},
		{"alpha 0 ranks by sum: the shorter", lengths, &zero, []int{0}, false},
		{"alpha 1: the shorter", lengths, &one, []int{0}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(v)
			lp := func(prefix []int) []float64 { return tc.tb.logprobs(v, prefix) }
			best, bestSum, bestScore := bruteForce(v, depth, lp, tc.alpha)
			if !slices.Equal(best, tc.want) {
				t.Fatalf("test design: brute force found %v, want %v", best, tc.want)
			}
			r := decodetest.NewRunner(5, v, tc.tb.script(v))
			o := decode.Options{WithoutTimestamps: true, BeamSize: 5, SampleLen: depth, LengthPenalty: tc.alpha}
			res, err := decode.Decode(r, m, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res) < 5 {
				t.Errorf("%d results, want at least the beam size", len(res))
			}
			got := res[0]
			if !slices.Equal(got.Tokens, best) || !near(got.SumLogprob, bestSum, 1e-6) || !near(got.Score, bestScore, 1e-6) {
				t.Errorf("beam: %v sum %g score %g; brute force: %v sum %g score %g",
					got.Tokens, got.SumLogprob, got.Score, best, bestSum, bestScore)
			}
			if tc.greedyMisses {
				g, err := decode.Decode(decodetest.NewRunner(1, v, tc.tb.script(v)), m,
					decode.Options{WithoutTimestamps: true, SampleLen: depth})
				if err != nil {
					t.Fatal(err)
				}
				if slices.Equal(g[0].Tokens, best) {
					t.Errorf("greedy also found %v", best)
				}
			}
		})
	}
}

// hashed returns a random-looking but fixed model: the logits after a prefix are drawn from a
// generator seeded by the prefix. eotBias shifts EOT's logit; coarse rounds the logits to
// integers, so that candidates tie and the order among equals is tested too.
func hashed(v int, seed uint64, eotBias float32, coarse bool) func(prefix []int) []float32 {
	return func(prefix []int) []float32 {
		h := fnv.New64a()
		fmt.Fprint(h, prefix)
		rng := rand.New(rand.NewPCG(seed, h.Sum64()))
		l := make([]float32, v)
		for i := range l {
			l[i] = float32(2 * rng.NormFloat64())
			if coarse {
				l[i] = float32(math.Round(float64(l[i])))
			}
		}
		l[v-1] += eotBias
		return l
	}
}

// refBeamSearch is OpenAI's BeamSearchDecoder and MaximumLikelihoodRanker transcribed as
// literally as Go allows (ref: openai/whisper decoding.py#L190-L213, #L301-L404): beam_size
// identical starting beams, candidates keyed by the whole sequence in an insertion-ordered
// map, no caches. It returns the finished sequences (without EOT) and their sums, ranked.
func refBeamSearch(v, beamSize int, patience float64, sampleLen int, alpha *float64, logits func([]int) []float32) ([][]int, []float64) {
	eot := v - 1
	maxCandidates := int(math.RoundToEven(float64(beamSize) * patience))
	key := func(s []int) string { return fmt.Sprint(s) }
	logSoftmax := func(l []float32) []float64 {
		m := math.Inf(-1)
		for _, x := range l {
			m = max(m, float64(x))
		}
		var s float64
		for _, x := range l {
			s += math.Exp(float64(x) - m)
		}
		out := make([]float64, len(l))
		for i, x := range l {
			out[i] = float64(x) - m - math.Log(s)
		}
		return out
	}
	tokens := make([][]int, beamSize)
	sums := make([]float64, beamSize)
	var finishedKeys []string
	finished := map[string]float64{}
	finishedSeq := map[string][]int{}
	for range sampleLen {
		scores := map[string]float64{}
		seqs := map[string][]int{}
		var order []string
		for j := range beamSize {
			lp := logSoftmax(logits(tokens[j]))
			idx := make([]int, v)
			for i := range idx {
				idx[i] = i
			}
			slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(lp[b], lp[a]) })
			for _, tok := range idx[:beamSize+1] {
				seq := append(slices.Clone(tokens[j]), tok)
				k := key(seq)
				if _, ok := scores[k]; !ok {
					order = append(order, k)
				}
				scores[k] = sums[j] + lp[tok]
				seqs[k] = seq
			}
		}
		slices.SortStableFunc(order, func(a, b string) int { return cmp.Compare(scores[b], scores[a]) })
		var next [][]int
		var nextSums []float64
		var newly []string
		for _, k := range order {
			if s := seqs[k]; s[len(s)-1] == eot {
				newly = append(newly, k)
			} else {
				next = append(next, seqs[k])
				nextSums = append(nextSums, scores[k])
				if len(next) == beamSize {
					break
				}
			}
		}
		tokens, sums = next, nextSums
		for _, k := range newly {
			if len(finished) >= maxCandidates {
				break
			}
			finished[k] = scores[k]
			finishedSeq[k] = seqs[k]
			finishedKeys = append(finishedKeys, k)
		}
		if len(finished) >= maxCandidates {
			break
		}
	}
	if len(finished) < beamSize {
		idx := make([]int, len(tokens))
		for i := range idx {
			idx[i] = i
		}
		slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(sums[b], sums[a]) })
		for _, j := range idx {
			seq := append(slices.Clone(tokens[j]), eot)
			k := key(seq)
			finished[k] = sums[j]
			finishedSeq[k] = seq
			finishedKeys = append(finishedKeys, k)
			if len(finished) >= beamSize {
				break
			}
		}
	}
	type ranked struct {
		seq   []int
		sum   float64
		score float64
	}
	var rs []ranked
	for _, k := range finishedKeys {
		seq := finishedSeq[k][:len(finishedSeq[k])-1]
		penalty := float64(max(len(seq), 1))
		if alpha != nil {
			penalty = math.Pow((5+float64(len(seq)))/6, *alpha)
		}
		rs = append(rs, ranked{seq, finished[k], finished[k] / penalty})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return cmp.Compare(b.score, a.score) })
	var outSeqs [][]int
	var outSums []float64
	for _, r := range rs {
		outSeqs = append(outSeqs, r.seq)
		outSums = append(outSums, r.sum)
	}
	return outSeqs, outSums
}

// TestBeamSearchMatchesReference runs beam search on random models through the scripted
// runner, whose logits depend on each hypothesis's whole history, so that a cache forked from
// the wrong beam changes the result; the reference recomputes every prefix from scratch.
func TestBeamSearchMatchesReference(t *testing.T) {
	half := 0.5
	for _, tc := range []struct {
		v, beam, sampleLen int
		patience           float64
		alpha              *float64
		eotBias            float32
		coarse             bool
	}{
		{6, 5, 3, 0, nil, -1.5, false},
		{6, 5, 8, 0, nil, -1.5, false},
		{6, 2, 8, 0, nil, -1.5, false},
		{6, 1, 8, 0, nil, -1.5, false},
		{9, 4, 10, 2, nil, -1.5, false},
		{9, 4, 10, 1.5, &half, -1.5, false},
		{12, 3, 12, 0, &half, -1.5, false},
		{9, 5, 6, 2, nil, 1.5, false}, // EOT likely: many finish in the same step
		{6, 5, 8, 0, nil, 0, true},
		{9, 5, 8, 1.5, nil, -1, true},
	} {
		for seed := range uint64(8) {
			name := fmt.Sprintf("V%d/beam%d/len%d/patience%g/eot%+g/coarse%v/seed%d", tc.v, tc.beam, tc.sampleLen, tc.patience, tc.eotBias, tc.coarse, seed)
			t.Run(name, func(t *testing.T) {
				model := hashed(tc.v, seed, tc.eotBias, tc.coarse)
				script := func(h []int) []float32 {
					if len(h) < tinyInitial {
						return make([]float32, tc.v)
					}
					return model(h[tinyInitial:])
				}
				// Spare hypotheses beyond the beam must not change anything; half the
				// seeds step the beams in batches (decode.BatchRunner).
				var r decode.Runner = decodetest.NewRunner(tc.beam+int(seed%2), tc.v, script)
				var batched *decodetest.BatchRunner
				if seed%4 >= 2 {
					batched = &decodetest.BatchRunner{Runner: r.(*decodetest.Runner)}
					r = batched
				}
				o := decode.Options{WithoutTimestamps: true, BeamSize: tc.beam, Patience: tc.patience, SampleLen: tc.sampleLen, LengthPenalty: tc.alpha}
				res, err := decode.Decode(r, tinyModel(tc.v), o)
				if err != nil {
					t.Fatal(err)
				}
				if batched != nil && tc.beam > 1 && tc.sampleLen > 2 && batched.Batches == 0 {
					t.Error("the beams were never stepped in a batch")
				}
				p := tc.patience
				if p == 0 {
					p = 1
				}
				wantSeqs, wantSums := refBeamSearch(tc.v, tc.beam, p, tc.sampleLen, tc.alpha, model)
				// Sequences and their order exactly; sums to 1e-6, the float32 log-softmax's
				// precision (the reference sums float64 log-probabilities).
				same := len(res) == len(wantSeqs)
				var got, want []string
				for i, r := range res {
					got = append(got, fmt.Sprintf("%v:%.9f", r.Tokens, r.SumLogprob))
					same = same && slices.Equal(r.Tokens, wantSeqs[i]) && math.Abs(r.SumLogprob-wantSums[i]) < 1e-6
				}
				for i := range wantSeqs {
					want = append(want, fmt.Sprintf("%v:%.9f", wantSeqs[i], wantSums[i]))
				}
				if !same {
					t.Errorf("beam search:\n%s\nreference:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			})
		}
	}
}
