package lm

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
)

const (
	testVocab = 12
	testBOS   = 10
	testEOS   = 11
)

// randomSentences draws n sentences over ids 0–9 from a skewed bigram process, so that some
// n-grams repeat and others are seen once.
func randomSentences(seed uint64, n int) [][]int {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out [][]int
	for range n {
		l := 1 + rng.IntN(8)
		s := []int{rng.IntN(4)}
		for len(s) < l {
			prev := s[len(s)-1]
			if rng.Float64() < 0.6 {
				s = append(s, (prev+1)%10)
			} else {
				s = append(s, rng.IntN(10))
			}
		}
		out = append(out, s)
	}
	return out
}

// TestNormalised: every context's distribution over the whole vocabulary sums to 1 — seen
// contexts, contexts seen only in part, and unseen ones — for several orders.
func TestNormalised(t *testing.T) {
	for _, order := range []int{2, 3, 5} {
		m, err := Estimate(randomSentences(1, 300), EstimateOptions{Order: order, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
		if err != nil {
			t.Fatal(err)
		}
		for _, ctx := range [][]int{{testBOS}, {testBOS, 1}, {1, 2, 3, 4}, {9, 9, 9}, {7, 0}, {testBOS, 5, 5}, {}} {
			var sum float64
			for w := range testVocab {
				sum += math.Exp(m.LogProb(ctx, w))
			}
			if math.Abs(sum-1) > 1e-5 {
				t.Errorf("order %d, context %v: probabilities sum to %.7f", order, ctx, sum)
			}
		}
	}
}

// TestKneserNeyContinuation: Kneser-Ney's unigram counts contexts, not occurrences (Chen &
// Goodman's "San Francisco"): a token seen ten times, always after the same token, is less
// likely after an unseen context than one seen three times after three different tokens; with
// its usual context it is very likely.
func TestKneserNeyContinuation(t *testing.T) {
	var s [][]int
	for range 10 {
		s = append(s, []int{4, 5})
	}
	s = append(s, []int{1, 6}, []int{2, 6}, []int{3, 6})
	m, err := Estimate(s, EstimateOptions{Order: 2, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
	if err != nil {
		t.Fatal(err)
	}
	if p5, p6 := m.LogProb([]int{9}, 5), m.LogProb([]int{9}, 6); !(p5 < p6) {
		t.Errorf("after an unseen token: log p(5) %.3f, log p(6) %.3f; want 5 below 6", p5, p6)
	}
	if p := math.Exp(m.LogProb([]int{4}, 5)); p < 0.8 {
		t.Errorf("p(5 | 4) = %.3f, want close to 1", p)
	}
	if p := math.Exp(m.LogProb([]int{testBOS}, 4)); p < 0.5 {
		t.Errorf("p(4 | <s>) = %.3f: ten of thirteen sentences start with it", p)
	}
}

// TestARPARoundTrip: a written model reads back with the same probabilities, pruned or not;
// pruning keeps fewer n-grams and still answers every query.
func TestARPARoundTrip(t *testing.T) {
	sents := randomSentences(2, 400)
	full, err := Estimate(sents, EstimateOptions{Order: 4, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
	if err != nil {
		t.Fatal(err)
	}
	pruned, err := Estimate(sents, EstimateOptions{Order: 4, BOS: testBOS, EOS: testEOS, Vocab: testVocab, MinCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	if f, p := full.Grams(), pruned.Grams(); !(p[3] < f[3] && p[2] < f[2] && p[1] == f[1] && p[0] == f[0]) {
		t.Errorf("n-grams full %v, pruned %v: want fewer of orders 3 and 4 only", f, p)
	}
	rng := rand.New(rand.NewPCG(3, 3))
	for _, m := range []*NGram{full, pruned} {
		var buf bytes.Buffer
		if err := m.WriteARPA(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadARPA(bytes.NewReader(buf.Bytes()), testBOS, testEOS, testVocab)
		if err != nil {
			t.Fatal(err)
		}
		if back.Order() != 4 || back.BOS() != testBOS || back.EOS() != testEOS {
			t.Fatalf("read back order %d BOS %d EOS %d", back.Order(), back.BOS(), back.EOS())
		}
		for range 500 {
			ctx := []int{testBOS}
			for range rng.IntN(5) {
				ctx = append(ctx, rng.IntN(10))
			}
			w := rng.IntN(testVocab)
			a, b := m.LogProb(ctx, w), back.LogProb(ctx, w)
			if math.IsInf(a, 0) || math.IsNaN(a) || math.Abs(a-b) > 1e-5 {
				t.Fatalf("log p(%d | %v): %g, read back %g", w, ctx, a, b)
			}
		}
	}
}

func TestEstimateErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    [][]int
		o    EstimateOptions
	}{
		{"order 1", [][]int{{1}}, EstimateOptions{Order: 1, BOS: testBOS, EOS: testEOS, Vocab: testVocab}},
		{"order 13", [][]int{{1}}, EstimateOptions{Order: 13, BOS: testBOS, EOS: testEOS, Vocab: testVocab}},
		{"BOS is EOS", [][]int{{1}}, EstimateOptions{Order: 2, BOS: 3, EOS: 3, Vocab: testVocab}},
		{"token out of range", [][]int{{1, 12}}, EstimateOptions{Order: 2, BOS: testBOS, EOS: testEOS, Vocab: testVocab}},
		{"EOS inside", [][]int{{1, testEOS}}, EstimateOptions{Order: 2, BOS: testBOS, EOS: testEOS, Vocab: testVocab}},
		{"nothing", nil, EstimateOptions{Order: 2, BOS: testBOS, EOS: testEOS, Vocab: testVocab}},
	} {
		if _, err := Estimate(tc.s, tc.o); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

func TestReadARPAErrors(t *testing.T) {
	good := "\\data\\\nngram 1=3\nngram 2=1\n\n\\1-grams:\n-1.0\t<unk>\n-0.5\t</s>\n-0.3\t<s>\t-0.2\n\n\\2-grams:\n-0.1\t<s> </s>\n\n\\end\\\n"
	if _, err := ReadARPA(strings.NewReader(good), testBOS, testEOS, testVocab); err != nil {
		t.Fatalf("good file: %v", err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"empty", "", "no \\data\\"},
		{"count mismatch", strings.Replace(good, "ngram 1=3", "ngram 1=4", 1), "header says"},
		{"order gap", strings.Replace(good, "ngram 2=1", "ngram 3=1", 1), "bad count line"},
		{"bad token", strings.Replace(good, "-0.5\t</s>", "-0.5\tfoo", 1), "bad token"},
		{"token out of range", strings.Replace(good, "-0.5\t</s>", "-0.5\t12", 1), "bad token"},
		{"positive log-prob", strings.Replace(good, "-0.5\t</s>", "0.5\t</s>", 1), "bad log-probability"},
		{"no unk", strings.Replace(strings.Replace(good, "-1.0\t<unk>\n", "-1.0\t3\n", 1), "", "", 1), "no <unk>"},
		{"missing context", strings.Replace(good, "<s> </s>", "3 </s>", 1), "no stored context"},
		{"duplicate", strings.Replace(strings.Replace(good, "ngram 1=3", "ngram 1=4", 1), "-0.5\t</s>\n", "-0.5\t</s>\n-0.5\t</s>\n", 1), "twice"},
		{"no end", strings.TrimSuffix(good, "\\end\\\n"), "unexpected end"},
		{"fields", strings.Replace(good, "-0.1\t<s> </s>", "-0.1\t<s>", 1), "fields"},
	} {
		_, err := ReadARPA(strings.NewReader(tc.text), testBOS, testEOS, testVocab)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// FuzzReadARPA: no input panics, and a model that reads answers queries with finite or −Inf
// log-probabilities, never NaN.
func FuzzReadARPA(f *testing.F) {
	m, err := Estimate(randomSentences(4, 50), EstimateOptions{Order: 3, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
	if err != nil {
		f.Fatal(err)
	}
	var buf bytes.Buffer
	if err := m.WriteARPA(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.String())
	f.Add("\\data\\\nngram 1=1\n\\1-grams:\n-1\t<unk>\n\\end\\\n")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ReadARPA(strings.NewReader(s), testBOS, testEOS, testVocab)
		if err != nil {
			return
		}
		for w := range testVocab {
			if p := m.LogProb([]int{testBOS, 1, 2}, w); math.IsNaN(p) || p > 1e-9 {
				t.Fatalf("log p(%d) = %g", w, p)
			}
		}
	})
}

// TestLoadCompressed: Load reads SaveZstd's output and plain ARPA alike.
func TestLoadCompressed(t *testing.T) {
	m, err := Estimate(randomSentences(5, 100), EstimateOptions{Order: 3, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
	if err != nil {
		t.Fatal(err)
	}
	var z, plain bytes.Buffer
	if err := m.SaveZstd(&z); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteARPA(&plain); err != nil {
		t.Fatal(err)
	}
	if z.Len() >= plain.Len() {
		t.Errorf("compressed %d bytes, plain %d", z.Len(), plain.Len())
	}
	for _, b := range []*bytes.Buffer{&z, &plain} {
		back, err := Load(bytes.NewReader(b.Bytes()), testBOS, testEOS, testVocab)
		if err != nil {
			t.Fatal(err)
		}
		if a, c := m.LogProb([]int{testBOS, 2}, 3), back.LogProb([]int{testBOS, 2}, 3); math.Abs(a-c) > 1e-5 {
			t.Errorf("log p %g, loaded %g", a, c)
		}
	}
	if _, err := Load(bytes.NewReader(append([]byte{0x28, 0xb5, 0x2f, 0xfd}, "junk"...)), testBOS, testEOS, testVocab); err == nil {
		t.Error("a corrupt zstd stream loaded")
	}
}

// TestLogProbIndex: the continuation search gives exactly the definition's value
// (logProbNaive) for every context of every length up to the order, pruned or not, and for a
// model read back from ARPA.
func TestLogProbIndex(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, min := range []int{1, 2, 3} {
		m, err := Estimate(randomSentences(3, 400), EstimateOptions{Order: 5, BOS: testBOS, EOS: testEOS, Vocab: testVocab, MinCount: min})
		if err != nil {
			t.Fatal(err)
		}
		var arpa bytes.Buffer
		if err := m.WriteARPA(&arpa); err != nil {
			t.Fatal(err)
		}
		back, err := ReadARPA(&arpa, testBOS, testEOS, testVocab)
		if err != nil {
			t.Fatal(err)
		}
		for _, mm := range []*NGram{m, back} {
			for range 3000 {
				ctx := make([]int, rng.IntN(7))
				for i := range ctx {
					ctx[i] = rng.IntN(10)
				}
				if len(ctx) > 0 && rng.IntN(3) == 0 {
					ctx[0] = testBOS
				}
				tok := rng.IntN(testVocab)
				got := mm.LogProb(ctx, tok)
				cut := ctx
				if len(cut) > mm.order-1 {
					cut = cut[len(cut)-(mm.order-1):]
				}
				if want := mm.logProbNaive(cut, tok); got != want {
					t.Fatalf("min count %d: LogProb(%v, %d) = %v, the definition %v", min, ctx, tok, got, want)
				}
			}
		}
	}
}

// BenchmarkLogProb: the embedded default model's language model (an 8-gram over its 2022
// tokens) asked as beam search asks it: contexts of up to 7 tokens from sentences sampled
// from the model itself, each with its sampled next token and 15 other candidates; "naive" is
// the definition's longest-first search, n-gram by n-gram in the maps.
func BenchmarkLogProb(b *testing.B) {
	const bos, eos, vocab = 513, 512, 2022 // chorus-micro's <|startoftranscript|>, <|endoftext|> (text tokens are below it), size
	f, err := os.Open("../defaultmodel/chorus-micro/lm.arpa.zst")
	if err != nil {
		b.Skip(err)
	}
	defer f.Close()
	m, err := Load(f, bos, eos, vocab)
	if err != nil {
		b.Fatal(err)
	}
	type query struct {
		ctx []int
		tok int
	}
	var qs []query
	rng := rand.New(rand.NewPCG(1, 1))
	p := make([]float64, eos+1)
	for range 40 {
		seq := []int{bos}
		for len(seq) < 40 {
			ctx := seq[max(0, len(seq)-7):]
			var sum float64
			for tok := range p { // the text tokens and eos
				p[tok] = math.Exp(m.LogProb(ctx, tok))
				sum += p[tok]
			}
			next, u := eos, rng.Float64()*sum
			for tok, q := range p {
				if u -= q; u < 0 {
					next = tok
					break
				}
			}
			qs = append(qs, query{ctx, next})
			for range 15 {
				qs = append(qs, query{ctx, rng.IntN(eos)})
			}
			if next == eos {
				break
			}
			seq = append(seq, next)
		}
	}
	// Beam search asks for a context's candidates together: one op is a context's 16
	// queries, as one LogProbs call (batch), 16 LogProb calls (single) or 16 by the
	// definition (naive).
	for _, mode := range []string{"batch", "single", "naive"} {
		b.Run(mode, func(b *testing.B) {
			var sum float64
			toks := make([]int, 16)
			out := make([]float64, 16)
			for i := 0; b.Loop(); i++ {
				g := qs[(i*16)%len(qs) : (i*16)%len(qs)+16]
				switch mode {
				case "batch":
					for j, q := range g {
						toks[j] = q.tok
					}
					m.LogProbs(g[0].ctx, toks, out)
					sum += out[0]
				case "single":
					for _, q := range g {
						sum += m.LogProb(q.ctx, q.tok)
					}
				default:
					for _, q := range g {
						sum += m.logProbNaive(q.ctx, q.tok)
					}
				}
			}
			_ = sum
		})
	}
}

// TestLogProbsBatch: LogProbs gives, token by token, exactly the definition's values
// (logProbNaive) — the context lookups it shares between tokens leak nothing from one token to
// the next — for an estimated model and for one whose stored n-grams are not suffix-closed
// (a leaf bigram removed while a trigram ending in it stays), which the search, longest
// context first, does not need.
func TestLogProbsBatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	closed, err := Estimate(randomSentences(4, 400), EstimateOptions{Order: 5, BOS: testBOS, EOS: testEOS, Vocab: testVocab, MinCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	open, err := Estimate(randomSentences(4, 400), EstimateOptions{Order: 4, BOS: testBOS, EOS: testEOS, Vocab: testVocab})
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for g := range open.grams[2] {
		suffix := g[2:] // the bigram ending the trigram
		if open.grams[1][suffix].nnext == 0 && removed < 20 {
			delete(open.grams[1], suffix)
			removed++
		}
	}
	if removed == 0 {
		t.Fatal("no leaf bigram to remove")
	}
	open.index()
	for _, m := range []*NGram{closed, open} {
		for range 500 {
			ctx := make([]int, rng.IntN(8))
			for i := range ctx {
				ctx[i] = rng.IntN(10)
			}
			toks := make([]int, 1+rng.IntN(20))
			for i := range toks {
				toks[i] = rng.IntN(testVocab)
			}
			out := make([]float64, len(toks))
			m.LogProbs(ctx, toks, out)
			cut := ctx
			if len(cut) > m.order-1 {
				cut = cut[len(cut)-(m.order-1):]
			}
			for i, tok := range toks {
				if want := m.logProbNaive(cut, tok); out[i] != want {
					t.Fatalf("order %d: LogProbs(%v)[%d] = %v, the definition for %d %v", m.order, ctx, i, out[i], tok, want)
				}
			}
		}
	}
}
