package decode_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
)

// testWords is the text vocabulary of the unit tests: a blank, some words, and the symbols the
// non-speech list looks for.
var negInf = float32(math.Inf(-1))

var testWords = []string{
	" ", " the", " hello", " world", ".", ",", " -", " '", "(", " (", "[", "<<", "♪", " ♪", "♪♪", "-",
}

const (
	tokBlank = 0
	tokThe   = 1
	tokHello = 2
	tokWorld = 3
	tokDot   = 4
)

// testModel is a multilingual model over testWords with Whisper's special-token layout.
func testModel() (decode.Model, int) {
	sp, v := decodetest.Layout(len(testWords), []string{"en", "de", "fr"})
	return decode.Model{
		Vocab:    decodetest.Vocab{Words: testWords},
		Specials: sp,
		TextCtx:  448,
		AudioCtx: 1500,
	}, v
}

// allowed returns the indices whose logit is not -inf.
func allowed(l []float32) []int {
	var out []int
	for i, v := range l {
		if !math.IsInf(float64(v), -1) {
			out = append(out, i)
		}
	}
	return out
}

// span returns the integers [lo, hi).
func span(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

func without(xs []int, drop ...int) []int {
	return slices.DeleteFunc(slices.Clone(xs), func(x int) bool { return slices.Contains(drop, x) })
}

func TestSuppressBlank(t *testing.T) {
	m, v := testModel()
	apply := decode.SuppressBlankFilter(append(m.Vocab.Encode(" "), m.Specials.EOT))
	for _, tc := range []struct {
		name    string
		sampled []int
		want    []int
	}{
		{"first step masks blank and eot", nil, without(span(0, v), tokBlank, m.Specials.EOT)},
		{"later steps untouched", []int{tokHello}, span(0, v)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := decodetest.Fill(v, 0)
			apply(l, tc.sampled)
			if got := allowed(l); !slices.Equal(got, tc.want) {
				t.Errorf("allowed %v, want %v", got, tc.want)
			}
		})
	}
}

func TestSuppressTokenList(t *testing.T) {
	m, _ := testModel()
	sp := m.Specials
	specials := []int{sp.Transcribe, sp.Translate, sp.SOT, sp.SOTPrev, sp.SOTLM, sp.NoSpeech}
	// The symbols of testWords that tokenizer.py's rule picks: every single-token symbol
	// ("(", " (", "[", "<<", "♪", " ♪", "♪♪") and the first tokens of " -" and " '".
	nonSpeech := []int{6, 7, 8, 9, 10, 11, 12, 13, 14}
	sorted := func(xs ...[]int) []int {
		var all []int
		for _, x := range xs {
			all = append(all, x...)
		}
		slices.Sort(all)
		return slices.Compact(all)
	}
	noNS := m
	noNS.Specials.NoSpeech = -1
	for _, tc := range []struct {
		name     string
		m        decode.Model
		suppress []int
		want     []int
	}{
		{"empty turns the filter off", m, nil, nil},
		{"-1 is the non-speech set plus specials", m, []int{-1}, sorted(nonSpeech, specials)},
		{"explicit ids plus specials", m, []int{tokWorld, tokThe}, sorted([]int{tokThe, tokWorld}, specials)},
		{"both", m, []int{tokDot, -1}, sorted([]int{tokDot}, nonSpeech, specials)},
		{"no nospeech token", noNS, []int{tokDot}, sorted([]int{tokDot}, specials[:5])},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.m.SuppressList(decode.Options{SuppressTokens: tc.suppress})
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNonSpeechTokens(t *testing.T) {
	m, _ := testModel()
	got := decode.NonSpeechTokens(m.Vocab)
	// "-" alone is a single token but not a listed symbol: hyphens stay allowed inside words.
	want := []int{6, 7, 8, 9, 10, 11, 12, 13, 14}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Without " -", " '" and " ♪" words their first token is the bare space, never taken.
	small := decodetest.Vocab{Words: []string{" ", "-", "'", "♪", "(", " ("}}
	if got, want := decode.NonSpeechTokens(small), []int{3, 4, 5}; !slices.Equal(got, want) {
		t.Errorf("small vocabulary: got %v, want %v", got, want)
	}
	if got := decode.NonSpeechTokens(listVocab{m.Vocab, []int{9, 3}}); !slices.Equal(got, []int{3, 9}) {
		t.Errorf("vocab's own list: got %v, want [3 9]", got)
	}
}

// listVocab is a Vocab that knows its non-speech tokens.
type listVocab struct {
	decode.Vocab
	ns []int
}

func (l listVocab) NonSpeechTokens() []int { return l.ns }

func TestTimestampRules(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	tb, eot, noTS := sp.TimestampBegin, sp.EOT, sp.NoTimestamps
	ts := func(i int) int { return tb + i }
	text := without(span(0, tb), noTS) // every non-timestamp token but <|notimestamps|>

	// Logits: 0 for text, -100 for timestamps, so that the probability rule stays quiet
	// unless a case sets its own.
	quiet := func() []float32 {
		l := decodetest.Fill(v, 0)
		for i := tb; i < v; i++ {
			l[i] = -100
		}
		return l
	}
	for _, tc := range []struct {
		name       string
		maxInitial int
		sampled    []int
		logits     func() []float32
		want       []int
	}{
		{"first token is a timestamp", -1, nil, quiet, span(tb, v)},
		{"first timestamp at most max initial", 50, nil, quiet, span(tb, tb+51)},
		{"after a lone first timestamp text follows", 50, []int{ts(0)}, quiet, text},
		{"after text the end timestamp is later than the start", 50,
			[]int{ts(10), tokHello}, quiet, append(slices.Clone(text), span(ts(11), v)...)},
		{"after text and a timestamp: another timestamp (not earlier) or eot", 50,
			[]int{ts(0), tokHello, ts(30)}, quiet, append(without(span(eot, tb), noTS), span(ts(30), v)...)},
		{"after a timestamp pair text follows", 50,
			[]int{ts(0), tokHello, ts(30), ts(30)}, quiet, text},
		{"monotonic after several segments", 50,
			[]int{ts(0), tokHello, ts(30), ts(40), tokWorld}, quiet, append(slices.Clone(text), span(ts(41), v)...)},
		{"timestamps together beat the best text token: timestamp forced", -1,
			[]int{ts(0), tokHello}, func() []float32 {
				// 10 text tokens at 0 (others -inf), 3 timestamps at 0: sum of timestamp mass
				// (3) is below the text mass (10) but above the best text token (1).
				l := decodetest.Fill(v, negInf)
				for i := range 10 {
					l[i] = 0
				}
				for _, i := range []int{ts(5), ts(6), ts(7)} {
					l[i] = 0
				}
				return l
			}, []int{ts(5), ts(6), ts(7)}},
		{"timestamp mass below the best text token: text stays", -1,
			[]int{ts(0), tokHello}, func() []float32 {
				// One text token at 0; 3 timestamps at -1.2: log(3)-1.2 = -0.1 < 0.
				l := decodetest.Fill(v, negInf)
				l[tokWorld] = 0
				for _, i := range []int{ts(5), ts(6), ts(7)} {
					l[i] = -1.2
				}
				return l
			}, []int{tokWorld, ts(5), ts(6), ts(7)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			apply := decode.TimestampFilter(tb, eot, noTS, tc.maxInitial)
			l := tc.logits()
			apply(l, tc.sampled)
			if got := allowed(l); !slices.Equal(got, tc.want) {
				t.Errorf("allowed %s, want %s", ranges(got), ranges(tc.want))
			}
		})
	}
}

// ranges prints sorted ints as lo-hi runs, so that a failing vocabulary-sized set stays short.
func ranges(xs []int) string {
	s := "["
	for i := 0; i < len(xs); {
		j := i
		for j+1 < len(xs) && xs[j+1] == xs[j]+1 {
			j++
		}
		if i > 0 {
			s += " "
		}
		if j == i {
			s += fmt.Sprint(xs[i])
		} else {
			s += fmt.Sprintf("%d-%d", xs[i], xs[j])
		}
		i = j + 1
	}
	return s + "]"
}
