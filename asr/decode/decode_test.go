package decode_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
)

const tol = 1e-9

func near(a, b, eps float64) bool { return math.Abs(a-b) <= eps }

// stepScript returns a script that gives, once the n0 initial tokens are fed, next(sampled)
// for the sampled tokens so far, and atSOT for the position of SOT (history of length
// sotLen); other initial positions get zeros.
func stepScript(v, n0, sotLen int, atSOT []float32, next func(sampled []int) []float32) func([]int) []float32 {
	return func(h []int) []float32 {
		switch {
		case len(h) == sotLen && atSOT != nil:
			return atSOT
		case len(h) < n0:
			return make([]float32, v)
		}
		return next(h[n0:])
	}
}

// choice returns logits where tok has logit 0, rival has logit -ln 3 and the rest -inf: if
// both survive the filters, tok is chosen with probability 3/4.
func choice(v, tok, rival int) []float32 {
	l := decodetest.Fill(v, negInf)
	l[tok] = 0
	l[rival] = float32(-math.Log(3))
	return l
}

func TestDecodeGreedyTimestamps(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	ts := func(i int) int { return sp.TimestampBegin + i }
	// p(nospeech) = 1/2 at SOT: its logit is ln(v-1), the other v-1 are 0.
	atSOT := make([]float32, v)
	atSOT[sp.NoSpeech] = float32(math.Log(float64(v - 1)))
	steps := [][2]int{ // token, rival, each allowed by the timestamp rules at its step
		{ts(0), ts(1)},
		{tokHello, tokWorld},
		{tokWorld, tokThe},
		{ts(50), ts(51)},
		{sp.EOT, ts(60)},
	}
	r := decodetest.NewRunner(1, v, stepScript(v, 3, 1, atSOT, func(s []int) []float32 {
		return choice(v, steps[len(s)][0], steps[len(s)][1])
	}))
	o := decode.DefaultOptions()
	o.Language = "en"
	res, err := decode.Decode(r, m, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d results, want 1", len(res))
	}
	got := res[0]
	if want := []int{ts(0), tokHello, tokWorld, ts(50)}; !slices.Equal(got.Tokens, want) {
		t.Errorf("tokens %v, want %v", got.Tokens, want)
	}
	if got.Text != "hello world" {
		t.Errorf("text %q, want %q", got.Text, "hello world")
	}
	wantSum := 5 * math.Log(0.75)
	if !near(got.SumLogprob, wantSum, 1e-6) || !near(got.AvgLogprob, wantSum/5, 1e-6) {
		t.Errorf("sum %g avg %g, want %g %g", got.SumLogprob, got.AvgLogprob, wantSum, wantSum/5)
	}
	if !near(got.NoSpeechProb, 0.5, 1e-6) {
		t.Errorf("no-speech prob %g, want 0.5", got.NoSpeechProb)
	}
	if got.Language != "en" || got.LanguageProbs != nil || got.Temperature != 0 {
		t.Errorf("language %q probs %v temperature %g", got.Language, got.LanguageProbs, got.Temperature)
	}
	if want := decode.CompressionRatio("hello world"); got.CompressionRatio != want {
		t.Errorf("compression ratio %g, want %g", got.CompressionRatio, want)
	}
	if h, want := r.History(0)[:3], []int{sp.SOT, sp.SOT + 1, sp.Transcribe}; !slices.Equal(h, want) {
		t.Errorf("initial tokens %v, want %v", h, want)
	}
}

// scriptedSteps returns a script over the sampled tokens that gives logits[k] at step k (the
// last one repeated).
func scriptedSteps(v, n0 int, logits ...func() []float32) func([]int) []float32 {
	return stepScript(v, n0, 0, nil, func(s []int) []float32 { return logits[min(len(s), len(logits)-1)]() })
}

func set(v int, base float32, kv ...float32) func() []float32 {
	return func() []float32 {
		l := decodetest.Fill(v, base)
		for i := 0; i < len(kv); i += 2 {
			l[int(kv[i])] = kv[i+1]
		}
		return l
	}
}

func TestDecodeFirstStepRules(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	ts := func(i int) float32 { return float32(sp.TimestampBegin + i) }
	eot := float32(sp.EOT)
	for _, tc := range []struct {
		name   string
		opts   func(*decode.Options)
		script func([]int) []float32
		want   []int
	}{
		{
			"blank and eot suppressed at the first step only",
			func(o *decode.Options) { o.WithoutTimestamps = true },
			scriptedSteps(v, 4,
				set(v, -10, tokBlank, 5, eot, 4, tokHello, 3),
				set(v, -10, tokBlank, 5, eot, 4),
				set(v, -10, eot, 5)),
			[]int{tokHello, tokBlank},
		},
		{
			"without blank suppression",
			func(o *decode.Options) { o.WithoutTimestamps = true; o.SuppressBlank = false },
			scriptedSteps(v, 4,
				set(v, -10, tokBlank, 5, eot, 4, tokHello, 3),
				set(v, -10, eot, 5)),
			[]int{tokBlank},
		},
		{
			"first timestamp at most 1 s",
			nil,
			scriptedSteps(v, 3, set(v, -10, ts(150), 5, ts(60), 4.5, ts(20), 4), set(v, -10, eot, 5)),
			[]int{sp.TimestampBegin + 20},
		},
		{
			"first timestamp at most 1.2 s",
			func(o *decode.Options) { o.MaxInitialTimestamp = 1.2 },
			scriptedSteps(v, 3, set(v, -10, ts(150), 5, ts(60), 4.5, ts(20), 4), set(v, -10, eot, 5)),
			[]int{sp.TimestampBegin + 60},
		},
		{
			"no initial timestamp bound",
			func(o *decode.Options) { o.MaxInitialTimestamp = 0 },
			scriptedSteps(v, 3, set(v, -10, ts(150), 5, ts(60), 4.5, ts(20), 4), set(v, -10, eot, 5)),
			[]int{sp.TimestampBegin + 150},
		},
		{
			"suppressed tokens are never sampled",
			func(o *decode.Options) { o.WithoutTimestamps = true; o.SuppressTokens = []int{tokThe, -1} },
			scriptedSteps(v, 4,
				set(v, -10, tokThe, 9, 8 /* "(" */, 8, float32(sp.SOTPrev), 7, tokWorld, 6),
				set(v, -10, eot, 5)),
			[]int{tokWorld},
		},
		{
			"timestamps outweigh the best text token",
			nil,
			// After <|0.00|> hello, each of 20 timestamps is below "world" but together above.
			scriptedSteps(v, 3,
				set(v, -10, ts(0), 5),
				set(v, -10, tokHello, 5),
				func() []float32 {
					l := set(v, -10, tokWorld, 0)()
					for i := 10; i < 30; i++ {
						l[sp.TimestampBegin+i] = -1
					}
					return l
				},
				set(v, -10, eot, 5)),
			[]int{sp.TimestampBegin, tokHello, sp.TimestampBegin + 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := decode.DefaultOptions()
			o.Language = "en"
			if tc.opts != nil {
				tc.opts(&o)
			}
			res, err := decode.Decode(decodetest.NewRunner(1, v, tc.script), m, o)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(res[0].Tokens, tc.want) {
				t.Errorf("tokens %v, want %v", res[0].Tokens, tc.want)
			}
		})
	}
}

func TestDecodeInitialTokens(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	prompt := make([]int, 300)
	for i := range prompt {
		prompt[i] = i % 4
	}
	english := m
	english.Specials.Multilingual = false
	cat := func(xs ...[]int) []int { return slices.Concat(xs...) }
	for _, tc := range []struct {
		name string
		m    decode.Model
		opts decode.Options
		want []int
	}{
		{"multilingual transcribe", m, decode.Options{Language: "fr"},
			[]int{sp.SOT, sp.SOT + 3, sp.Transcribe}},
		{"translate without timestamps", m, decode.Options{Language: "DE", Task: decode.TaskTranslate, WithoutTimestamps: true},
			[]int{sp.SOT, sp.SOT + 2, sp.Translate, sp.NoTimestamps}},
		{"english-only", english, decode.Options{}, []int{sp.SOT}},
		{"prompt keeps its last 223 tokens", m, decode.Options{Language: "en", Prompt: prompt},
			cat([]int{sp.SOTPrev}, prompt[77:], []int{sp.SOT, sp.SOT + 1, sp.Transcribe})},
		{"prefix follows the sot sequence", english, decode.Options{Prompt: []int{tokDot}, Prefix: []int{tokHello, tokWorld}, WithoutTimestamps: true},
			[]int{sp.SOTPrev, tokDot, sp.SOT, sp.NoTimestamps, tokHello, tokWorld}},
		{"prefix keeps its last TextCtx/2-SampleLen tokens", english, decode.Options{Prefix: []int{tokThe, tokHello, tokWorld}, SampleLen: 222},
			[]int{sp.SOT, tokHello, tokWorld}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n0 := len(tc.want)
			r := decodetest.NewRunner(1, v, scriptedSteps(v, n0, set(v, 0, float32(sp.EOT), 20, float32(sp.TimestampBegin), 30)))
			if _, err := decode.Decode(r, tc.m, tc.opts); err != nil {
				t.Fatal(err)
			}
			if h := r.History(0); len(h) < n0 || !slices.Equal(h[:n0], tc.want) {
				t.Errorf("fed %v…, want %v", h[:min(len(h), n0+1)], tc.want)
			}
		})
	}
}

func TestDetectLanguage(t *testing.T) {
	m, v := testModel()
	sp := m.Specials
	atSOT := make([]float32, v)
	atSOT[sp.EOT] = 50 // not a language: ignored
	atSOT[sp.SOT+1], atSOT[sp.SOT+2], atSOT[sp.SOT+3] = 1, 3, 2
	script := stepScript(v, 3, 1, atSOT, func([]int) []float32 { return set(v, 0, float32(sp.EOT), 20, float32(sp.TimestampBegin), 30)() })
	r := decodetest.NewRunner(1, v, script)
	lang, probs, err := decode.DetectLanguage(r, sp)
	if err != nil {
		t.Fatal(err)
	}
	z := math.Exp(1) + math.Exp(3) + math.Exp(2)
	want := map[string]float64{"en": math.Exp(1) / z, "de": math.Exp(3) / z, "fr": math.Exp(2) / z}
	if lang != "de" {
		t.Errorf("language %q, want de", lang)
	}
	for c, p := range want {
		if !near(float64(probs[c]), p, 1e-6) {
			t.Errorf("p(%s) = %g, want %g", c, probs[c], p)
		}
	}
	if r.Len(0) != 0 {
		t.Errorf("hypothesis 0 left with %d tokens", r.Len(0))
	}

	// Decode detects when no language is given, and decodes in it.
	res, err := decode.Decode(r, m, decode.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Language != "de" || len(res[0].LanguageProbs) != 3 {
		t.Errorf("language %q probs %v", res[0].Language, res[0].LanguageProbs)
	}
	if h := r.History(0); h[1] != sp.SOT+2 {
		t.Errorf("language token %d, want %d", h[1], sp.SOT+2)
	}
}

func TestDecodeLengthLimits(t *testing.T) {
	m, v := testModel()
	forever := set(v, 0, tokHello, 5) // never ends
	for _, tc := range []struct {
		name             string
		textCtx, maxLen  int
		prompt           []int
		wantLen, maxFeed int
	}{
		{"sample length", 448, 5, nil, 5, 448},
		{"default sample length is half the text context", 20, 0, nil, 10, 20},
		{"text context", 10, 20, nil, 7, 10},
		{"text context with a prompt", 12, 20, []int{tokThe, tokThe, tokThe}, 5, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm := m
			mm.TextCtx = tc.textCtx
			n0 := 4
			if tc.prompt != nil {
				n0 += 1 + len(tc.prompt)
			}
			r := decodetest.NewRunner(1, v, scriptedSteps(v, n0, forever))
			o := decode.Options{Language: "en", WithoutTimestamps: true, SampleLen: tc.maxLen, Prompt: tc.prompt}
			res, err := decode.Decode(r, mm, o)
			if err != nil {
				t.Fatal(err)
			}
			if len(res[0].Tokens) != tc.wantLen {
				t.Errorf("%d tokens, want %d", len(res[0].Tokens), tc.wantLen)
			}
			if r.Len(0) > tc.maxFeed {
				t.Errorf("fed %d positions, text context is %d", r.Len(0), tc.maxFeed)
			}
			// An unfinished hypothesis is scored as if EOT followed at no cost.
			if want := float64(tc.wantLen) * math.Log(1/(1+float64(v-1)*math.Exp(-5))); !near(res[0].SumLogprob, want, 1e-4) {
				t.Errorf("sum log-prob %g, want %g", res[0].SumLogprob, want)
			}
		})
	}
}

func TestDecodeBestOf(t *testing.T) {
	m, v := testModel()
	// Each step: hello, world, the or EOT with logits 1, 0.5, 0, 0.2.
	step := set(v, negInf, tokHello, 1, tokWorld, 0.5, tokThe, 0, float32(m.Specials.EOT), 0.2)
	run := func(seed uint64) []decode.Result {
		r := decodetest.NewRunner(4, v, scriptedSteps(v, 4, step))
		o := decode.Options{Language: "en", WithoutTimestamps: true, Temperature: 1, BestOf: 4, Rand: rand.New(rand.NewPCG(seed, 1))}
		res, err := decode.Decode(r, m, o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Forks != 3 {
			t.Errorf("%d forks, want 3", r.Forks)
		}
		return res
	}
	res := run(7)
	if len(res) != 4 {
		t.Fatalf("%d results, want 4", len(res))
	}
	distinct := false
	for i, r := range res {
		if want := r.SumLogprob / float64(max(len(r.Tokens), 1)); !near(r.Score, want, tol) {
			t.Errorf("result %d: score %g, want %g", i, r.Score, want)
		}
		if i > 0 && res[i-1].Score < r.Score {
			t.Errorf("results not ranked: %g before %g", res[i-1].Score, r.Score)
		}
		if i > 0 && !slices.Equal(r.Tokens, res[0].Tokens) {
			distinct = true
		}
		if r.Temperature != 1 {
			t.Errorf("temperature %g", r.Temperature)
		}
	}
	if !distinct {
		t.Errorf("four samples all equal %v: not independent", res[0].Tokens)
	}
	again := run(7)
	for i := range res {
		if !slices.Equal(res[i].Tokens, again[i].Tokens) {
			t.Errorf("same seed, different sample %d: %v vs %v", i, res[i].Tokens, again[i].Tokens)
		}
	}
}

func TestSampleSoftmax(t *testing.T) {
	l := []float32{0, float32(math.Log(2)), float32(math.Log(3)), negInf}
	for _, tc := range []struct {
		temp float64
		want []float64
	}{
		{1, []float64{1.0 / 6, 2.0 / 6, 3.0 / 6, 0}},
		{0.5, []float64{1.0 / 14, 4.0 / 14, 9.0 / 14, 0}},
		{2, []float64{1 / (1 + math.Sqrt(2) + math.Sqrt(3)), math.Sqrt(2) / (1 + math.Sqrt(2) + math.Sqrt(3)), math.Sqrt(3) / (1 + math.Sqrt(2) + math.Sqrt(3)), 0}},
	} {
		rng := rand.New(rand.NewPCG(1, 2))
		const n = 100000
		counts := make([]float64, len(l))
		for range n {
			counts[decode.SampleSoftmax(l, tc.temp, rng)]++
		}
		for i, c := range counts {
			// 5 standard deviations of a binomial proportion at n = 1e5 is below 0.008.
			if !near(c/n, tc.want[i], 0.008) {
				t.Errorf("T=%g: p(%d) = %.4f, want %.4f", tc.temp, i, c/n, tc.want[i])
			}
		}
	}
}

func TestTopK(t *testing.T) {
	l := []float32{1, 3, negInf, 3, 2, 0}
	for k, want := range map[int][]int{1: {1}, 3: {1, 3, 4}, 6: {1, 3, 4, 0, 5, 2}, 9: {1, 3, 4, 0, 5, 2}} {
		if got := decode.TopK(l, k); !slices.Equal(got, want) {
			t.Errorf("top %d = %v, want %v", k, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	m, v := testModel()
	ok := scriptedSteps(v, 3, set(v, 0, float32(m.Specials.EOT), 20, float32(m.Specials.TimestampBegin), 30))
	alpha := 1.5
	noVocab := m
	noVocab.Vocab = nil
	badTS := m
	badTS.Specials.TimestampBegin = m.Specials.EOT
	english := m
	english.Specials.Multilingual = false
	tsOutside := m
	tsOutside.Specials.TimestampBegin = v
	for _, tc := range []struct {
		name   string
		m      decode.Model
		o      decode.Options
		seqs   int
		script func([]int) []float32
	}{
		{"unknown task", m, decode.Options{Language: "en", Task: "summarise"}, 1, ok},
		{"best-of at temperature 0", m, decode.Options{Language: "en", BestOf: 2}, 2, ok},
		{"beam and best-of", m, decode.Options{Language: "en", BeamSize: 2, BestOf: 2, Temperature: 1}, 2, ok},
		{"beam at temperature > 0", m, decode.Options{Language: "en", BeamSize: 2, Temperature: 0.5}, 2, ok},
		{"patience without beam", m, decode.Options{Language: "en", Patience: 2}, 1, ok},
		{"patience keeps nothing", m, decode.Options{Language: "en", BeamSize: 1, Patience: 0.4}, 1, ok},
		{"length penalty out of range", m, decode.Options{Language: "en", LengthPenalty: &alpha}, 1, ok},
		{"negative temperature", m, decode.Options{Language: "en", Temperature: -1}, 1, ok},
		{"NaN temperature", m, decode.Options{Language: "en", Temperature: math.NaN()}, 1, ok},
		{"NaN max initial timestamp", m, decode.Options{Language: "en", MaxInitialTimestamp: math.NaN()}, 1, ok},
		{"negative suppress token", m, decode.Options{Language: "en", SuppressTokens: []int{-2}}, 1, ok},
		{"suppress token outside vocabulary", m, decode.Options{Language: "en", SuppressTokens: []int{v}}, 1, ok},
		{"too few hypotheses", m, decode.Options{Language: "en", BeamSize: 3}, 2, ok},
		{"unknown language", m, decode.Options{Language: "xx"}, 1, ok},
		{"english-only model, other language", english, decode.Options{Language: "de"}, 1, ok},
		{"no vocabulary", noVocab, decode.Options{Language: "en"}, 1, ok},
		{"timestamps overlap text", badTS, decode.Options{Language: "en"}, 1, ok},
		{"no timestamp tokens in the vocabulary", tsOutside, decode.Options{Language: "en"}, 1, ok},
		{"NaN logit", m, decode.Options{Language: "en"}, 1, scriptedSteps(v, 3, set(v, 0, 5, float32(math.NaN())))},
		{"everything suppressed", m, decode.Options{Language: "en", WithoutTimestamps: true}, 1, scriptedSteps(v, 4, set(v, negInf))},
		{"initial tokens exceed the context", m, decode.Options{Language: "en", Prefix: make([]int, 446)}, 1, ok},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decode.Decode(decodetest.NewRunner(tc.seqs, v, tc.script), tc.m, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			t.Log(err)
		})
	}
	_, err := decode.Decode(decodetest.NewRunner(1, v, ok), m, decode.Options{Language: "xx"})
	if !errors.Is(err, decode.ErrUnknownLanguage) {
		t.Errorf("unknown language: %v, want ErrUnknownLanguage", err)
	}
}

func TestDecodeContext(t *testing.T) {
	m, v := testModel()
	for _, beam := range []int{0, 2} {
		ctx, cancel := context.WithCancel(context.Background())
		steps := 0
		r := decodetest.NewRunner(2, v, scriptedSteps(v, 4, func() []float32 {
			if steps++; steps == 3 {
				cancel()
			}
			return set(v, 0, tokHello, 5)()
		}))
		_, err := decode.DecodeContext(ctx, r, m, decode.Options{Language: "en", WithoutTimestamps: true, BeamSize: beam})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("beam %d: error %v, want context.Canceled", beam, err)
		}
	}
}

func TestCompressionRatio(t *testing.T) {
	for _, tc := range []struct {
		text string
		// python is len(b)/len(zlib.compress(b)) from CPython 3's zlib; Go's deflate is a
		// few bytes longer, so the ratio here is at most as large and within 20%
		// (within 1% for the window-sized text).
		python float64
	}{
		{"", 0},
		{"And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country.", 107.0 / 79},
		{" the the the the the the the the the the the the the the the the the the the the", 80.0 / 15},
		{"We choose to go to the moon in this decade and do the other things, not because they are easy, but because they are hard, because that goal will serve to organize and measure the best of our energies and skills, because that challenge is one that we are willing to accept, one we are unwilling to postpone, and one which we intend to win, and the others, too. It is for these reasons that I regard the decision last year to shift our efforts in space from low to high gear as among the most important decisions that will be made during my incumbency in the office of the Presidency.", 582.0 / 310},
	} {
		got := decode.CompressionRatio(tc.text)
		lo := 0.8
		if len(tc.text) > 500 {
			lo = 0.99
		}
		if got > tc.python || got < lo*tc.python {
			t.Errorf("%.20q: ratio %g, python %g", tc.text, got, tc.python)
		}
		if (got > 2.4) != (tc.python > 2.4) {
			t.Errorf("%.20q: ratio %g and python's %g disagree about the 2.4 threshold", tc.text, got, tc.python)
		}
	}
}
