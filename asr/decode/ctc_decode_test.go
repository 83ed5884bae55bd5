package decode_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
)

// ctcRunner is a scripted runner with a CTC head whose output is fixed.
type ctcRunner struct {
	*decodetest.Runner
	lp     []float32
	frames int
}

func (r *ctcRunner) CTCLogProbs() ([]float32, int) { return r.lp, r.frames }

// spell returns CTC log-probabilities over classes (text tokens and blank = classes−1) whose
// frames are the given classes with probability 0.9, the rest sharing 0.1.
func spell(classes int, frames ...int) []float32 {
	lp := make([]float32, len(frames)*classes)
	other := float32(math.Log(0.1 / float64(classes-1)))
	for t, k := range frames {
		for c := range classes {
			lp[t*classes+c] = other
		}
		lp[t*classes+k] = float32(math.Log(0.9))
	}
	return lp
}

// stopsEarly is a runner of seqs hypotheses whose decoder says " hello" (3:1 over " the"), then
// prefers EOT 3:1 over " world", and after anything else EOT 3:1 over ".".
func stopsEarly(seqs, v int, sp decode.Specials) *decodetest.Runner {
	return decodetest.NewRunner(seqs, v, stepScript(v, 4, 1, nil, func(s []int) []float32 {
		switch {
		case len(s) == 0:
			return choice(v, tokHello, tokThe)
		case s[len(s)-1] == tokHello:
			return choice(v, sp.EOT, tokWorld)
		}
		return choice(v, sp.EOT, tokDot)
	}))
}

// TestJointCTCDecoding: the decoder alone prefers to stop after " hello" (EOT 3:1 over
// " world"); the audio's CTC output spells " hello world". Joint decoding continues to
// " world", greedy and beam alike, while the reported log-probabilities stay the decoder's.
// λ = 0 and a runner without a head leave the decoder alone.
func TestJointCTCDecoding(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	blank := sp.EOT
	lp := spell(blank+1, blank, tokHello, tokHello, blank, tokWorld, tokWorld, blank)
	script := func(seqs int) *decodetest.Runner { return stopsEarly(seqs, v, sp) }
	l34, l14 := math.Log(0.75), math.Log(0.25)
	for _, tc := range []struct {
		name    string
		lambda  float64
		beam    int
		temp    float64
		noHead  bool
		want    []int
		wantSum float64
	}{
		{"greedy-decoder-only", 0, 0, 0, false, []int{tokHello}, 2 * l34},
		{"greedy-joint", 0.5, 0, 0, false, []int{tokHello, tokWorld}, l34 + l14 + l34},
		{"beam-decoder-only", 0, 2, 0, false, []int{tokHello}, 2 * l34},
		{"beam-joint", 0.5, 2, 0, false, []int{tokHello, tokWorld}, l34 + l14 + l34},
		{"greedy-no-head", 0.5, 0, 0, true, []int{tokHello}, 2 * l34},
		{"ctc-only", 1, 0, 0, false, []int{tokHello, tokWorld}, l34 + l14 + l34},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := decode.DefaultOptions()
			o.Language, o.WithoutTimestamps, o.CTCWeight, o.BeamSize = "en", true, tc.lambda, tc.beam
			var r decode.Runner = &ctcRunner{Runner: script(max(1, tc.beam)), lp: lp, frames: len(lp) / (blank + 1)}
			if tc.noHead {
				r = script(1)
			}
			res, err := decode.Decode(r, m, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res[0].Tokens, tc.want) {
				t.Fatalf("tokens %v, want %v", res[0].Tokens, tc.want)
			}
			if !near(res[0].SumLogprob, tc.wantSum, 1e-6) {
				t.Errorf("sum log-prob %g, want the decoder's %g", res[0].SumLogprob, tc.wantSum)
			}
			if tc.lambda > 0 && !tc.noHead && near(res[0].Score, res[0].SumLogprob/float64(len(tc.want)), 1e-6) {
				t.Errorf("score %g is the decoder's alone; want the joint score", res[0].Score)
			}
		})
	}

	// Sampling draws from the joint scores: at a low temperature every draw is the joint
	// choice; at λ = 0 it is the decoder's.
	for _, lambda := range []float64{0, 0.5} {
		o := decode.DefaultOptions()
		o.Language, o.WithoutTimestamps, o.CTCWeight, o.Temperature, o.BestOf = "en", true, lambda, 0.05, 3
		o.Rand = rand.New(rand.NewPCG(1, 2))
		r := &ctcRunner{Runner: script(3), lp: lp, frames: len(lp) / (blank + 1)}
		res, err := decode.Decode(r, m, o)
		if err != nil {
			t.Fatal(err)
		}
		want := []int{tokHello}
		if lambda > 0 {
			want = []int{tokHello, tokWorld}
		}
		for i, x := range res {
			if !slices.Equal(x.Tokens, want) {
				t.Errorf("λ %g: sample %d is %v, want %v", lambda, i, x.Tokens, want)
			}
		}
	}

	t.Run("bad-head", func(t *testing.T) {
		o := decode.DefaultOptions()
		o.Language, o.WithoutTimestamps = "en", true
		r := &ctcRunner{Runner: script(1), lp: lp[:len(lp)-1], frames: len(lp) / (blank + 1)}
		if _, err := decode.Decode(r, m, o); err == nil || !strings.Contains(err.Error(), "CTC head") {
			t.Fatalf("err %v, want a CTC head size error", err)
		}
	})

	t.Run("bad-weight", func(t *testing.T) {
		for _, w := range []float64{-0.1, 1.5, math.NaN()} {
			o := decode.DefaultOptions()
			o.CTCWeight = w
			if _, err := decode.Decode(script(1), m, o); err == nil || !strings.Contains(err.Error(), "CTC weight") {
				t.Errorf("weight %g: err %v, want a CTC weight error", w, err)
			}
		}
	})
}

// bigramLM is a scripted language model: ln p(tok | last) from a table, a floor elsewhere.
type bigramLM map[[2]int]float64

func (b bigramLM) Order() int { return 2 }
func (b bigramLM) LogProb(ctx []int, tok int) float64 {
	if lp, ok := b[[2]int{ctx[len(ctx)-1], tok}]; ok {
		return lp
	}
	return math.Log(1e-3)
}

// TestShallowFusion: the decoder alone stops after " hello"; a language model that knows
// " hello world" makes beam search continue, with its weight; greedy decoding and weight 0
// ignore it, and the reported log-probabilities stay the decoder's. The LM sees SOT before
// the first token and the text tokens so far (never timestamps).
func TestShallowFusion(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	var contexts [][]int
	lm := bigramLM{{sp.SOT, tokHello}: math.Log(0.9), {tokHello, tokWorld}: math.Log(0.99), {tokWorld, sp.EOT}: math.Log(0.99)}
	m.LM = recordingLM{lm, &contexts}
	script := func(seqs int) *decodetest.Runner { return stopsEarly(seqs, v, sp) }
	l34, l14 := math.Log(0.75), math.Log(0.25)
	for _, tc := range []struct {
		name    string
		weight  float64
		beam    int
		want    []int
		wantSum float64
	}{
		{"beam", 1, 2, []int{tokHello, tokWorld}, l34 + l14 + l34},
		{"beam-weight-0", 0, 2, []int{tokHello}, 2 * l34},
		{"greedy-ignores-lm", 1, 0, []int{tokHello}, 2 * l34},
	} {
		t.Run(tc.name, func(t *testing.T) {
			contexts = nil
			o := decode.DefaultOptions()
			o.Language, o.WithoutTimestamps, o.LMWeight, o.LMBonus, o.BeamSize = "en", true, tc.weight, 0, tc.beam
			if tc.beam > 0 {
				o.Patience = 3 // collect enough finished hypotheses for the longer one to finish
			}
			res, err := decode.Decode(script(max(1, tc.beam)), m, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res[0].Tokens, tc.want) {
				t.Fatalf("tokens %v, want %v", res[0].Tokens, tc.want)
			}
			if !near(res[0].SumLogprob, tc.wantSum, 1e-6) {
				t.Errorf("sum log-prob %g, want the decoder's %g", res[0].SumLogprob, tc.wantSum)
			}
			if (tc.weight > 0 && tc.beam > 0) != (len(contexts) > 0) {
				t.Errorf("the LM was asked %d times", len(contexts))
			}
			for _, c := range contexts {
				if c[0] != sp.SOT && len(c) != 1 {
					t.Errorf("context %v: want SOT, then the text tokens", c)
				}
			}
		})
	}
	o := decode.DefaultOptions()
	o.LMWeight = -1
	if _, err := decode.Decode(script(1), m, o); err == nil || !strings.Contains(err.Error(), "LM weight") {
		t.Errorf("negative LM weight: err %v", err)
	}
}

// recordingLM records the contexts it is asked about.
type recordingLM struct {
	decode.LanguageModel
	contexts *[][]int
}

func (r recordingLM) LogProb(ctx []int, tok int) float64 {
	*r.contexts = append(*r.contexts, slices.Clone(ctx))
	return r.LanguageModel.LogProb(ctx, tok)
}

// TestCTCClosingTimestamp: in timestamp mode the decoder wants to close the segment at
// <|0.04|>–<|0.14|>, before the CTC output has emitted " world" (frame 9 of the window).
// Beam search with joint decoding scores every closing timestamp against the CTC forward
// variables and closes the segment after it (frame 10 or later); greedy decoding, whose
// pre-beam holds only the decoder's favourites, cannot reach it.
func TestCTCClosingTimestamp(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	ts := func(i int) int { return sp.TimestampBegin + i }
	blank := sp.EOT
	lp := spell(blank+1, blank, tokHello, blank, blank, blank, blank, blank, blank, blank, tokWorld, blank, blank, blank, blank)
	script := func(seqs int) *decodetest.Runner {
		return decodetest.NewRunner(seqs, v, stepScript(v, 3, 1, nil, func(s []int) []float32 {
			l := decodetest.Fill(v, negInf)
			last := -1
			if len(s) > 0 {
				last = s[len(s)-1]
			}
			switch last {
			case -1:
				l[ts(0)] = 0
			case ts(0):
				l[tokHello] = 0
			case tokHello:
				l[tokWorld] = 0
			case tokWorld:
				for i := 2; i <= 20; i++ {
					l[ts(i)] = -4
					if i <= 7 {
						l[ts(i)] = -1
					}
				}
				l[ts(2)] = 0
			default:
				l[sp.EOT] = 0
			}
			return l
		}))
	}
	closing := func(toks []int) int {
		for i := 1; i < len(toks); i++ {
			if toks[i] >= sp.TimestampBegin && toks[i-1] < sp.EOT {
				return toks[i] - sp.TimestampBegin
			}
		}
		return -1
	}
	for _, tc := range []struct {
		name string
		beam int
		late bool
	}{{"beam", 2, true}, {"greedy", 0, false}} {
		o := decode.DefaultOptions()
		o.Language, o.CTCWeight, o.BeamSize, o.MaxInitialTimestamp = "en", 0.5, tc.beam, 0
		r := &ctcRunner{Runner: script(max(1, tc.beam)), lp: lp, frames: len(lp) / (blank + 1)}
		res, err := decode.Decode(r, m, o)
		if err != nil {
			t.Fatal(err)
		}
		c := closing(res[0].Tokens)
		if got := c >= 10; got != tc.late || c < 0 {
			t.Errorf("%s: tokens %v close the segment at frame %d; want late (≥ 10): %v", tc.name, res[0].Tokens, c, tc.late)
		}
	}
}
