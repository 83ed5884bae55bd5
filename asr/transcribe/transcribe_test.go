package transcribe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/decode/decodetest"
	"github.com/chorus-asr/chorus/asr/mel"
)

var negInf = float32(math.Inf(-1))

// Text tokens of the fake vocabulary: three words and 100 fillers that only serve as
// probability mass ("noise") when a test wants an improbable decoding.
const (
	hello = 0
	world = 1
	the   = 2
)

func fakeModel() (decode.Model, int) {
	words := []string{" hello", " world", " the"}
	for i := range 100 {
		words = append(words, fmt.Sprintf(" x%d", i))
	}
	sp, v := decodetest.Layout(len(words), []string{"en", "de"})
	return decode.Model{
		Vocab:    decodetest.Vocab{Words: words},
		Specials: sp,
		TextCtx:  448,
		AudioCtx: 1500,
	}, v
}

// plan is what the fake model does for one decoding attempt.
type plan struct {
	tokens   []int   // sampled tokens it forces (logit 1), EOT after them
	noise    float32 // logit of every other text token; -inf for none
	noSpeech float32 // logit of <|nospeech|> at SOT (the others are 0)
}

// fakeWindow is a Window whose model follows plans[window][attempt]. It records the mel
// windows it encoded and the initial tokens (prompt and SOT sequence) of each attempt.
type fakeWindow struct {
	*decodetest.Runner
	t      *testing.T
	sp     decode.Specials
	v      int
	plan   func(window, attempt int) plan
	window int // index of the last EncodeWindow call
	// attempt counts decodings of the current window: Decode empties hypothesis 0 first.
	attempt  int
	encoded  [][]float32
	contexts map[[2]int][]int
	encErr   error
}

func newFakeWindow(t *testing.T, seqs int, plans func(window, attempt int) plan) *fakeWindow {
	m, v := fakeModel()
	f := &fakeWindow{t: t, sp: m.Specials, v: v, plan: plans, window: -1, contexts: map[[2]int][]int{}}
	f.Runner = decodetest.NewRunner(seqs, v, f.script)
	return f
}

func (f *fakeWindow) EncodeWindow(m []float32, nMels, frames, content int) error {
	if f.encErr != nil {
		return f.encErr
	}
	if len(m) != nMels*frames || frames != mel.NFrames {
		f.t.Errorf("EncodeWindow: %d values for %d×%d", len(m), nMels, frames)
	}
	f.encoded = append(f.encoded, slices.Clone(m))
	f.window++
	f.attempt = -1
	for s := range f.Seqs() {
		f.Runner.Rewind(s, 0)
	}
	return nil
}

func (f *fakeWindow) Rewind(seq, n int) {
	if seq == 0 && n == 0 {
		f.attempt++
	}
	f.Runner.Rewind(seq, n)
}

func (f *fakeWindow) script(h []int) []float32 {
	sot := slices.Index(h, f.sp.SOT)
	l := make([]float32, f.v)
	if sot < 0 {
		return l // inside the prompt
	}
	p := f.plan(f.window, f.attempt)
	n0 := sot + 3 // SOT, language, task
	switch {
	case len(h) == sot+1:
		l[f.sp.NoSpeech] = p.noSpeech
		l[f.sp.SOT+2] = 3 // "de", for language detection
		return l
	case len(h) < n0:
		return l
	case len(h) == n0:
		f.contexts[[2]int{f.window, f.attempt}] = slices.Clone(h)
	}
	step := len(h) - n0
	target := f.sp.EOT
	if step < len(p.tokens) {
		target = p.tokens[step]
	}
	for i := range l {
		l[i] = negInf
		if i < f.sp.EOT {
			l[i] = p.noise
		}
	}
	l[target] = 1
	return l
}

// spectrogram returns a padded spectrogram of content frames and 2 bands whose value at
// (band, frame) is frame+1+band/2, so that a window shows where it was cut.
func spectrogram(content int) *mel.Spectrogram {
	n := content + mel.NFrames
	s := &mel.Spectrogram{NMels: 2, NFrames: n, Data: make([]float32, 2*n)}
	for b := range 2 {
		for t := range n {
			s.Data[b*n+t] = float32(t+1) + float32(b)/2
		}
	}
	return s
}

// checkWindow checks that w is frames [seek, seek+size) of spec, zero-padded.
func checkWindow(t *testing.T, w []float32, spec *mel.Spectrogram, seek, size int) {
	t.Helper()
	for b := range spec.NMels {
		for i := range mel.NFrames {
			want := float32(0)
			if i < size {
				want = spec.Data[b*spec.NFrames+seek+i]
			}
			if got := w[b*mel.NFrames+i]; got != want {
				t.Errorf("window at %d+%d: band %d frame %d = %g, want %g", seek, size, b, i, got, want)
				return
			}
		}
	}
}

func (f *fakeWindow) ts(i int) int { return f.sp.TimestampBegin + i }

func english() Options {
	o := DefaultOptions()
	o.Decode.Language = "en"
	return o
}

func TestTranscribeSegmentsSeekAndPrompt(t *testing.T) {
	var f *fakeWindow
	f = newFakeWindow(t, 1, func(w, a int) plan {
		switch w {
		case 0:
			return plan{tokens: []int{f.ts(0), hello, world, f.ts(100), f.ts(100), the, f.ts(250), f.ts(260), hello}, noise: negInf}
		case 1:
			return plan{tokens: []int{f.ts(0), world, f.ts(150)}, noise: negInf}
		}
		// Silence: nospeech almost certain and improbable text.
		return plan{tokens: []int{f.ts(0), the, hello, f.ts(50)}, noise: 0, noSpeech: 20}
	})
	m, _ := fakeModel()
	spec := spectrogram(4500)
	var progress []int
	var streamed []int
	o := english()
	o.Progress = func(done, total int) {
		if total != 4500 {
			t.Errorf("progress total %d", total)
		}
		progress = append(progress, done)
	}
	o.OnSegment = func(s Segment) { streamed = append(streamed, s.ID) }
	res, err := Transcribe(context.Background(), f, m, spec, o)
	if err != nil {
		t.Fatal(err)
	}
	sp := m.Specials
	want := []Segment{
		{ID: 0, Seek: 0, Start: 0, End: 2, Text: " hello world", Tokens: []int{f.ts(0), hello, world, f.ts(100)}},
		{ID: 1, Seek: 0, Start: 2, End: 5, Text: " the", Tokens: []int{f.ts(100), the, f.ts(250)}},
		{ID: 2, Seek: 500, Start: 5, End: 8, Text: " world", Tokens: []int{f.ts(0), world, f.ts(150)}},
	}
	if len(res.Segments) != len(want) {
		t.Fatalf("%d segments %+v, want %d", len(res.Segments), res.Segments, len(want))
	}
	for i, s := range res.Segments {
		w := want[i]
		if s.ID != w.ID || s.Seek != w.Seek || !near(s.Start, w.Start) || !near(s.End, w.End) || s.Text != w.Text || !slices.Equal(s.Tokens, w.Tokens) {
			t.Errorf("segment %d: %+v, want %+v", i, s, w)
		}
		if s.Temperature != 0 || s.AvgLogprob != 0 || s.CompressionRatio <= 0 || !(s.NoSpeechProb < 0.01) {
			t.Errorf("segment %d: temperature %g avg %g ratio %g no-speech %g", i, s.Temperature, s.AvgLogprob, s.CompressionRatio, s.NoSpeechProb)
		}
	}
	if res.Text != " hello world the world" || res.Language != "en" {
		t.Errorf("text %q language %q", res.Text, res.Language)
	}

	// Windows at 0, 500 (the last pair of window 0 was at 5 s) and 3500 (window 1 ended with
	// a single timestamp); the last window holds the remaining 1000 frames.
	if len(f.encoded) != 3 {
		t.Fatalf("%d windows encoded, want 3", len(f.encoded))
	}
	checkWindow(t, f.encoded[0], spec, 0, 3000)
	checkWindow(t, f.encoded[1], spec, 500, 3000)
	checkWindow(t, f.encoded[2], spec, 3500, 1000)

	prefix := []int{sp.SOT, sp.SOT + 1, sp.Transcribe}
	wantCtx := map[[2]int][]int{
		{0, 0}: prefix,
		{1, 0}: slices.Concat([]int{sp.SOTPrev, f.ts(0), hello, world, f.ts(100), f.ts(100), the, f.ts(250)}, prefix),
		{2, 0}: slices.Concat([]int{sp.SOTPrev, f.ts(0), hello, world, f.ts(100), f.ts(100), the, f.ts(250), f.ts(0), world, f.ts(150)}, prefix),
	}
	checkContexts(t, f, wantCtx)
	if !slices.Equal(progress, []int{500, 3500, 4500}) {
		t.Errorf("progress %v", progress)
	}
	if !slices.Equal(streamed, []int{0, 1, 2}) {
		t.Errorf("OnSegment saw %v", streamed)
	}
}

// checkContexts compares the initial tokens of every attempt the fake saw with want.
func checkContexts(t *testing.T, f *fakeWindow, want map[[2]int][]int) {
	t.Helper()
	for k, w := range want {
		if got, ok := f.contexts[k]; !ok || !slices.Equal(got, w) {
			t.Errorf("window %d attempt %d: initial tokens %v, want %v", k[0], k[1], got, w)
		}
	}
	for k := range f.contexts {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected decoding: window %d attempt %d", k[0], k[1])
		}
	}
}

func TestTranscribeFallback(t *testing.T) {
	var f *fakeWindow
	repetitive := func() plan {
		toks := []int{f.ts(0)}
		for range 40 {
			toks = append(toks, the)
		}
		return plan{tokens: append(toks, f.ts(400)), noise: negInf}
	}
	good := func() plan { return plan{tokens: []int{f.ts(0), hello, world, f.ts(100)}, noise: negInf} }
	improbable := func() plan { return plan{tokens: []int{f.ts(0), hello, world, f.ts(100)}, noise: 0} }
	for _, tc := range []struct {
		name     string
		plans    []func() plan // per attempt; the last repeats
		opts     func(*Options)
		attempts int
		temp     float64
		text     string
	}{
		{"repetitive text falls back", []func() plan{repetitive, good}, nil, 2, 0.2, " hello world"},
		{"improbable text falls back", []func() plan{improbable, good}, nil, 2, 0.2, " hello world"},
		{"improbable but silent: no fallback, skipped", []func() plan{func() plan {
			p := improbable()
			p.noSpeech = 20
			return p
		}}, nil, 1, 0, ""},
		{"silence flagged but probable text: kept", []func() plan{func() plan {
			p := good()
			p.noSpeech = 20
			return p
		}}, nil, 1, 0, " hello world"},
		{"no compression check", []func() plan{repetitive, good}, func(o *Options) { o.CompressionRatioThreshold = nil }, 1, 0, strings.Repeat(" the", 40)},
		{"every temperature fails: the last result stands", []func() plan{repetitive}, func(o *Options) { o.Temperatures = []float64{0, 0.3} }, 2, 0.3, strings.Repeat(" the", 40)},
		{"beam search at 0, sampling above", []func() plan{repetitive, good}, func(o *Options) { o.Decode.BeamSize = 2; o.Decode.Patience = 1 }, 2, 0.2, " hello world"},
		{"best-of above 0 only", []func() plan{repetitive, good}, func(o *Options) { o.Decode.BestOf = 2 }, 2, 0.2, " hello world"},
		{"beam search and best-of, as OpenAI's command line", []func() plan{repetitive, good}, func(o *Options) { o.Decode.BeamSize, o.Decode.BestOf = 2, 2 }, 2, 0.2, " hello world"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f = newFakeWindow(t, 2, func(w, a int) plan { return tc.plans[min(a, len(tc.plans)-1)]() })
			m, _ := fakeModel()
			o := english()
			if tc.opts != nil {
				tc.opts(&o)
			}
			res, err := Transcribe(context.Background(), f, m, spectrogram(1000), o)
			if err != nil {
				t.Fatal(err)
			}
			if attempts := len(f.contexts); attempts != tc.attempts {
				t.Errorf("%d attempts, want %d", attempts, tc.attempts)
			}
			if tc.text == "" {
				if len(res.Segments) != 0 {
					t.Errorf("silent window gave segments %+v", res.Segments)
				}
				return
			}
			if len(res.Segments) != 1 {
				t.Fatalf("segments %+v, want one", res.Segments)
			}
			s := res.Segments[0]
			if s.Temperature != tc.temp || s.Text != tc.text {
				t.Errorf("temperature %g text %q, want %g %q", s.Temperature, s.Text, tc.temp, tc.text)
			}
		})
	}
}

func TestTranscribePromptConditioning(t *testing.T) {
	var f *fakeWindow
	m, _ := fakeModel()
	sp := m.Specials
	prefix := []int{sp.SOT, sp.SOT + 1, sp.Transcribe}
	repetitive := func() plan {
		toks := []int{f.ts(0)}
		for range 40 {
			toks = append(toks, the)
		}
		return plan{tokens: append(toks, f.ts(400)), noise: negInf}
	}
	good := func(w int) plan { return plan{tokens: []int{f.ts(0), hello + w, f.ts(100)}, noise: negInf} }
	win0 := []int{0, hello, 100} // window 0's tokens, timestamps as offsets below
	toks := func(xs []int) []int {
		return []int{f.ts(xs[0]), xs[1], f.ts(xs[2])}
	}
	for _, tc := range []struct {
		name    string
		plans   func(w, a int) plan
		opts    func(*Options)
		textCtx int // 0: the model's
		want    func() map[[2]int][]int
		text    string
	}{
		{
			"previous text is the prompt",
			func(w, a int) plan { return good(w) },
			nil, 0,
			func() map[[2]int][]int {
				return map[[2]int][]int{{0, 0}: prefix, {1, 0}: slices.Concat([]int{sp.SOTPrev}, toks(win0), prefix)}
			},
			" hello world",
		},
		{
			"a window decoded above 0.5 resets the prompt",
			func(w, a int) plan {
				if w == 0 && a < 3 {
					return repetitive()
				}
				return good(w)
			},
			nil, 0,
			func() map[[2]int][]int {
				return map[[2]int][]int{{0, 0}: prefix, {0, 1}: prefix, {0, 2}: prefix, {0, 3}: prefix, {1, 0}: prefix}
			},
			" hello world",
		},
		{
			"not conditioning on previous text",
			func(w, a int) plan { return good(w) },
			func(o *Options) { o.ConditionOnPreviousText = false }, 0,
			func() map[[2]int][]int { return map[[2]int][]int{{0, 0}: prefix, {1, 0}: prefix} },
			" hello world",
		},
		{
			"initial prompt",
			func(w, a int) plan { return good(w) },
			func(o *Options) { o.InitialPrompt = "  the world " }, 0,
			func() map[[2]int][]int {
				return map[[2]int][]int{
					{0, 0}: slices.Concat([]int{sp.SOTPrev, the, world}, prefix),
					{1, 0}: slices.Concat([]int{sp.SOTPrev, the, world}, toks(win0), prefix),
				}
			},
			" hello world",
		},
		{
			"initial prompt carried after a reset",
			func(w, a int) plan { return good(w) },
			func(o *Options) {
				o.InitialPrompt = "the world"
				o.CarryInitialPrompt = true
				o.ConditionOnPreviousText = false
			}, 0,
			func() map[[2]int][]int {
				return map[[2]int][]int{
					{0, 0}: slices.Concat([]int{sp.SOTPrev, the, world}, prefix),
					{1, 0}: slices.Concat([]int{sp.SOTPrev, the, world}, prefix),
				}
			},
			" hello world",
		},
		{
			// TextCtx 12 leaves 12/2-1 = 5 prompt tokens, 3 after the initial prompt: the
			// most recent 3 of window 0's 4 tokens.
			"carried initial prompt plus the most recent tokens that fit",
			func(w, a int) plan {
				if w == 0 {
					return plan{tokens: []int{f.ts(0), hello, world, f.ts(100)}, noise: negInf}
				}
				return good(w)
			},
			func(o *Options) {
				o.InitialPrompt = "the world"
				o.CarryInitialPrompt = true
			}, 12,
			func() map[[2]int][]int {
				return map[[2]int][]int{
					{0, 0}: slices.Concat([]int{sp.SOTPrev, the, world}, prefix),
					{1, 0}: slices.Concat([]int{sp.SOTPrev, the, world, hello, world, f.ts(100)}, prefix),
				}
			},
			" hello world world",
		},
		{
			"a window without text gives an empty segment and no prompt",
			func(w, a int) plan {
				if w == 0 {
					return plan{tokens: []int{f.ts(0)}, noise: negInf}
				}
				return good(w)
			},
			nil, 0,
			func() map[[2]int][]int { return map[[2]int][]int{{0, 0}: prefix, {1, 0}: prefix} },
			" world",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f = newFakeWindow(t, 1, tc.plans)
			o := english()
			if tc.opts != nil {
				tc.opts(&o)
			}
			mm := m
			if tc.textCtx > 0 {
				mm.TextCtx = tc.textCtx
			}
			res, err := Transcribe(context.Background(), f, mm, spectrogram(4000), o)
			if err != nil {
				t.Fatal(err)
			}
			checkContexts(t, f, tc.want())
			if res.Text != tc.text {
				t.Errorf("text %q, want %q", res.Text, tc.text)
			}
			for _, seg := range res.Segments {
				if seg.Text == "" && (seg.Tokens == nil || len(seg.Tokens) > 0) {
					t.Errorf("empty segment keeps tokens %v", seg.Tokens)
				}
			}
		})
	}
}

func TestTranscribeClipsAndLanguage(t *testing.T) {
	var f *fakeWindow
	f = newFakeWindow(t, 1, func(w, a int) plan {
		return plan{tokens: []int{f.ts(0), hello, f.ts(10)}, noise: negInf}
	})
	m, _ := fakeModel()
	spec := spectrogram(1000)
	o := DefaultOptions() // no language: detected
	o.ClipTimestamps = []float64{2, 5, 7}
	res, err := Transcribe(context.Background(), f, m, spec, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Language != "de" {
		t.Errorf("language %q, want de", res.Language)
	}
	// Language detection sees the first 3000 frames of the padded spectrogram as they are;
	// then the clips 2–5 s and 7 s–end are decoded.
	if len(f.encoded) != 3 {
		t.Fatalf("%d windows encoded, want 3", len(f.encoded))
	}
	checkWindow(t, f.encoded[0], spec, 0, 3000)
	checkWindow(t, f.encoded[1], spec, 200, 300)
	checkWindow(t, f.encoded[2], spec, 700, 300)
	var starts []float64
	for _, s := range res.Segments {
		starts = append(starts, s.Start)
	}
	if !slices.Equal(starts, []float64{2, 7}) {
		t.Errorf("segment starts %v, want [2 7]", starts)
	}
	if ctx := f.contexts[[2]int{1, 0}]; len(ctx) < 2 || ctx[len(ctx)-2] != m.Specials.SOT+2 {
		t.Errorf("decoded with initial tokens %v, want language de", ctx)
	}
}

func TestTranscribeErrors(t *testing.T) {
	m, _ := fakeModel()
	ok := func() *fakeWindow {
		var f *fakeWindow
		f = newFakeWindow(t, 1, func(w, a int) plan { return plan{tokens: []int{f.ts(0), hello, f.ts(10)}, noise: negInf} })
		return f
	}
	badCtx := m
	badCtx.AudioCtx = 7
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	encFail := ok()
	encFail.encErr = errors.New("out of memory")
	badDecode := english()
	badDecode.Decode.Task = "summarise"
	for _, tc := range []struct {
		name string
		ctx  context.Context
		w    Window
		m    decode.Model
		spec *mel.Spectrogram
		o    Options
		is   error
	}{
		{"no spectrogram", context.Background(), ok(), m, nil, english(), nil},
		{"spectrogram without padding", context.Background(), ok(), m, &mel.Spectrogram{NMels: 2, NFrames: 100, Data: make([]float32, 200)}, english(), nil},
		{"spectrogram data short", context.Background(), ok(), m, &mel.Spectrogram{NMels: 2, NFrames: 4000, Data: make([]float32, 10)}, english(), nil},
		{"audio context does not divide the window", context.Background(), ok(), badCtx, spectrogram(100), english(), nil},
		{"negative clip", context.Background(), ok(), m, spectrogram(100), func() Options { o := english(); o.ClipTimestamps = []float64{-1}; return o }(), nil},
		{"cancelled", cancelled, ok(), m, spectrogram(100), english(), context.Canceled},
		{"encoder fails", context.Background(), encFail, m, spectrogram(100), english(), encFail.encErr},
		{"decoder rejects options", context.Background(), ok(), m, spectrogram(100), badDecode, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Transcribe(tc.ctx, tc.w, tc.m, tc.spec, tc.o)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
		})
	}
}

func TestAudio(t *testing.T) {
	var f *fakeWindow
	f = newFakeWindow(t, 1, func(w, a int) plan { return plan{tokens: []int{f.ts(0), hello, f.ts(10)}, noise: negInf} })
	m, _ := fakeModel()
	samples := make([]float32, 2*mel.SampleRate) // 2 s: one window of 200 frames
	for i := range samples {
		samples[i] = float32(math.Sin(float64(i) / 10))
	}
	res, err := Audio(context.Background(), f, m, samples, 80, english())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.encoded) != 1 || len(res.Segments) != 1 || res.Segments[0].Text != " hello" {
		t.Fatalf("%d windows, segments %+v", len(f.encoded), res.Segments)
	}
	// Past the 200 content frames the window is zero, as pad_or_trim leaves it.
	if w := f.encoded[0]; w[199] == 0 || w[200] != 0 || w[2999] != 0 {
		t.Errorf("window frames 199, 200, 2999: %g %g %g", w[199], w[200], w[2999])
	}
}

// TestSetBeam: beam widths, the best-of bound at the fallback temperatures, and greedy.
func TestSetBeam(t *testing.T) {
	for _, tc := range []struct{ n, beam, bestOf int }{{0, 0, 0}, {1, 0, 0}, {3, 3, 3}, {5, 5, 5}, {DefaultBeamSize, DefaultBeamSize, 5}} {
		o := DefaultOptions()
		o.Decode.BeamSize, o.Decode.BestOf = 7, 7
		o.SetBeam(tc.n)
		if o.Decode.BeamSize != tc.beam || o.Decode.BestOf != tc.bestOf {
			t.Errorf("SetBeam(%d): beam %d best-of %d, want %d %d", tc.n, o.Decode.BeamSize, o.Decode.BestOf, tc.beam, tc.bestOf)
		}
	}
}
