package stream

import (
	"context"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// The embedded default model decodes deterministically but mostly wrongly, so these tests
// check behaviour and equalities (a final against `chorus transcribe` of the same audio),
// never what was said.

var model = sync.OnceValues(func() (*asr.Variant, error) {
	return defaultmodel.Open(asr.OpenOptions{F16: true}) // as the CLI opens it
})

func testModel(tb testing.TB) *asr.Variant {
	tb.Helper()
	v, err := model()
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func newSession(tb testing.TB, cfg Config) *Session {
	tb.Helper()
	s, err := New(testModel(tb), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// speech is testdata/audio/ref.wav (one spoken sentence, 4 s) cut 50 ms after its last
// voiced frame, and that frame's end in samples from the start of the cut clip.
var speech = sync.OnceValues(func() ([]float32, error) {
	x, err := audio.Load16kMono(filepath.Join("..", "..", "testdata", "audio", "ref.wav"))
	if err != nil {
		return nil, err
	}
	end := speechEnd(x)
	return x[:end+800], nil
})

// speechEnd is the end of the last 10-ms frame above −50 dBFS: where speech really ends.
func speechEnd(x []float32) int {
	end := 0
	for i := 0; i+frameSamples <= len(x); i += frameSamples {
		if level(x[i:i+frameSamples]) > -50 {
			end = i + frameSamples
		}
	}
	return end
}

func testSpeech(tb testing.TB) []float32 {
	tb.Helper()
	x, err := speech()
	if err != nil {
		tb.Fatal(err)
	}
	return x
}

func zeros(sec float64) []float32 { return make([]float32, int(sec*16000)) }

func concat(parts ...[]float32) []float32 {
	var out []float32
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func scaled(x []float32, g float32) []float32 {
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = v * g
	}
	return out
}

// run streams x into s in chunks of chunk samples, calling Process after each write, then
// Close, and returns every event. It checks on the way that the buffer stays bounded.
func run(tb testing.TB, s *Session, x []float32, chunk int) []Event {
	tb.Helper()
	var ev []Event
	bound := int(s.maxUtt) + chunk + int(s.lead)
	for i := 0; i < len(x); i += chunk {
		if err := s.Write(x[i:min(i+chunk, len(x))]); err != nil {
			tb.Fatal(err)
		}
		e, err := s.Process(context.Background())
		if err != nil {
			tb.Fatal(err)
		}
		ev = append(ev, e...)
		if len(s.buf) > bound {
			tb.Fatalf("at %v the buffer holds %d samples, more than %d", at(int64(i+chunk)), len(s.buf), bound)
		}
	}
	e, err := s.Close(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	return append(ev, e...)
}

func kind(ev []Event, k EventKind) []Event {
	var out []Event
	for _, e := range ev {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

// wantFinals transcribes each final's audio span as `chorus transcribe` would
// (transcribe.DefaultOptions), with the prompt ConditionOnPreviousText would give it: the
// previous finals' text, reset after one decoded above temperature 0.5. It checks the finals
// are contiguous, start at first, and have those texts.
//
// An utterance whose final the guards dropped (empty text) leaves a gap in the finals'
// utterance indices; the test cannot know how that utterance left the prompt, so checking
// stops at the first gap (the embedded model changes as it trains, and with it which spans
// decode to nothing).
func checkFinals(t *testing.T, x []float32, finals []Event, first time.Duration, prompt string) {
	t.Helper()
	v := testModel(t)
	next := first
	for i, f := range finals {
		if (i == 0 && f.Utterance != 0) || (i > 0 && f.Utterance != finals[i-1].Utterance+1) {
			t.Logf("no final before utterance %d (guarded away): checked %d finals", f.Utterance, i)
			return
		}
		if f.Start != next {
			t.Errorf("final %d starts at %v, want %v (contiguous)", i, f.Start, next)
		}
		next = f.End
		o := transcribe.DefaultOptions()
		o.InitialPrompt = prompt
		span := x[samples(f.Start):min(samples(f.End), int64(len(x)))]
		want, err := v.Transcribe(context.Background(), span, o)
		if err != nil {
			t.Fatal(err)
		}
		if f.Text != strings.TrimSpace(want.Text) || f.Text == "" {
			t.Errorf("final %d [%v, %v) prompted %q: %q, transcribe gives %q", i, f.Start, f.End, prompt, f.Text, want.Text)
		}
		if n := len(want.Segments); n > 0 && want.Segments[n-1].Temperature > 0.5 {
			prompt = ""
		} else {
			prompt = strings.TrimSpace(prompt + " " + f.Text)
		}
	}
}

// TestFinalEqualsTranscribe: a file holding one utterance, whose trailing silence is
// shorter than the endpoint silence, streams into a single final whose text is exactly
// `chorus transcribe`'s of the whole file, and whose span is the whole file.
func TestFinalEqualsTranscribe(t *testing.T) {
	x := concat(zeros(0.5), testSpeech(t))
	if tail := len(x) - speechEnd(x); at(int64(tail)) >= DefaultEndpointSilence {
		t.Fatalf("trailing silence %v is not below the endpoint silence", at(int64(tail)))
	}
	cases := []struct {
		name string
		cfg  Config
	}{
		{"finals only", Config{}},
		{"with interims", Config{Interim: true}},
		{"with an initial prompt", Config{Interim: true, InitialPrompt: "a spring day"}},
		{"fast steps, n=3", Config{Interim: true, Step: 200 * time.Millisecond, Agreement: 3}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := run(t, newSession(t, c.cfg), x, 1600)
			finals := kind(ev, Final)
			if c.cfg.InitialPrompt != "" {
				// Prompted, the default model writes nothing for this clip (unprompted it
				// does): then neither may the session.
				o := transcribe.DefaultOptions()
				o.InitialPrompt = c.cfg.InitialPrompt
				want, err := testModel(t).Transcribe(context.Background(), x, o)
				if err != nil {
					t.Fatal(err)
				}
				if strings.TrimSpace(want.Text) == "" {
					if len(finals) != 0 {
						t.Errorf("finals %+v, transcribe gives none", finals)
					}
					return
				}
			}
			if len(finals) != 1 {
				t.Fatalf("%d finals, want 1: %+v", len(finals), ev)
			}
			if f := finals[0]; f.End != at(int64(len(x))) || f.Utterance != 0 || f.Stability != 1 || !(f.Confidence > 0 && f.Confidence <= 1) || f.Language != "en" {
				t.Errorf("final %+v", f)
			}
			checkFinals(t, x, finals, 0, c.cfg.InitialPrompt)
			if got := len(kind(ev, SpeechBegin)); got != 1 {
				t.Errorf("%d speech begins", got)
			}
			if c.cfg.Interim == (len(kind(ev, Interim)) == 0) {
				t.Errorf("interim %v, but %d interims", c.cfg.Interim, len(kind(ev, Interim)))
			}
			checkInterims(t, ev)
		})
	}
}

// checkInterims: within an utterance Stable only grows and prefixes Text, and stability is
// in (0, 1] and 1 exactly when all is stable.
func checkInterims(t *testing.T, ev []Event) {
	t.Helper()
	stable, utt := "", -1
	for _, e := range ev {
		switch e.Kind {
		case Interim:
			if e.Utterance != utt {
				stable, utt = "", e.Utterance
			}
			if !strings.HasPrefix(e.Stable, stable) || !strings.HasPrefix(e.Text, e.Stable) {
				t.Errorf("interim %+v after stable %q", e, stable)
			}
			stable = e.Stable
			if !(e.Stability > 0 && e.Stability <= 1) || (e.Stability == 1) != (e.Text == e.Stable) {
				t.Errorf("interim %q / %q has stability %v", e.Text, e.Stable, e.Stability)
			}
		}
	}
}

// TestMultiUtterance: two phrases 1.5 s apart give two finals, each `chorus transcribe` of its
// own span with the previous final as prompt; the spans partition the stream, and the first
// ends FinalPad after the speech does.
func TestMultiUtterance(t *testing.T) {
	sp := testSpeech(t)
	x := concat(zeros(0.5), sp, zeros(1.5), scaled(sp[:len(sp)*2/3], 0.6), zeros(0.1))
	ev := run(t, newSession(t, Config{Interim: true}), x, 1600)
	finals := kind(ev, Final)
	if len(finals) != 2 {
		t.Fatalf("%d finals, want 2: %+v", len(finals), ev)
	}
	checkFinals(t, x, finals, 0, "")
	if finals[1].End != at(int64(len(x))) || finals[0].Utterance != 0 || finals[1].Utterance != 1 {
		t.Errorf("finals %+v", finals)
	}
	ends := kind(ev, SpeechEnd)
	if len(ends) != 2 || len(kind(ev, SpeechBegin)) != 2 {
		t.Fatalf("speech events %+v", ev)
	}
	// Where speech really ended: the VAD within a frame, the final FinalPad later.
	truth := at(int64(8000 + speechEnd(sp)))
	if d := ends[0].End - truth; d < -10*time.Millisecond || d > 10*time.Millisecond {
		t.Errorf("speech end at %v, really at %v", ends[0].End, truth)
	}
	if finals[0].End != ends[0].End+DefaultFinalPad {
		t.Errorf("first final ends at %v, speech at %v", finals[0].End, ends[0].End)
	}
	second := at(int64(len(sp) + 2*16000))
	if b := kind(ev, SpeechBegin)[1].Start; b < second || b > second+20*time.Millisecond {
		t.Errorf("second speech begins at %v", b)
	}
	checkInterims(t, ev)
}

// TestStepSchedule: an interim decode runs exactly when Step of new audio has arrived
// since the last one, the first at most 1 s after speech begins; a caller that falls behind gets one decode for all of it; Process
// with nothing due decodes nothing. The decode state is the same throughout.
func TestStepSchedule(t *testing.T) {
	x := concat(zeros(0.5), testSpeech(t))
	s := newSession(t, Config{Interim: true})
	tr := s.tr
	ctx := context.Background()
	const chunk = 800 // 50 ms
	firstDecode := time.Duration(-1)
	for i := 0; i < len(x); i += chunk {
		if err := s.Write(x[i:min(i+chunk, len(x))]); err != nil {
			t.Fatal(err)
		}
		open, paused := s.open, s.vad.paused(int(s.pad/frameSamples))
		due := open && !paused && s.end()-s.lastDecode >= s.step
		before := s.decodes
		if _, err := s.Process(ctx); err != nil {
			t.Fatal(err)
		}
		if open && !paused && (s.decodes-before == 1) != due {
			t.Errorf("at %v: %d decodes, due %v", at(s.end()), s.decodes-before, due)
		}
		if s.decodes-before > 1 {
			t.Errorf("at %v: %d decodes in one Process", at(s.end()), s.decodes-before)
		}
		if s.decodes > 0 && firstDecode < 0 {
			firstDecode = at(s.end())
			if firstDecode-at(s.speechStart) > time.Second {
				t.Errorf("first interim decode at %v, speech began at %v", firstDecode, at(s.speechStart))
			}
		}
	}
	if s.decodes < 5 {
		t.Errorf("%d decodes over %v of speech", s.decodes, at(int64(len(x))))
	}

	// Behind: 3 s of speech in one write, one decode covering it all.
	s = newSession(t, Config{Interim: true})
	if err := s.Write(x[:16000]); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Process(ctx); err != nil { // onset at 0.5 s; 0.5 s not yet past it
		t.Fatal(err)
	}
	if err := s.Write(x[16000:64000]); err != nil {
		t.Fatal(err)
	}
	before := s.decodes
	ev, err := s.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in := kind(ev, Interim)
	if s.decodes-before != 1 || len(in) != 1 || in[0].End != 4*time.Second || in[0].Start != 0 {
		t.Errorf("behind by 3 s: %d decodes, events %+v", s.decodes-before, ev)
	}
	before = s.decodes
	if ev, err := s.Process(ctx); err != nil || len(ev) != 0 || s.decodes != before {
		t.Errorf("nothing due: %d decodes, events %+v, %v", s.decodes-before, ev, err)
	}
	if s.tr != tr && s.tr == nil {
		t.Error("decode state not kept")
	}
}

// utterances is how many utterances the events speak of (finals, and interims of utterances
// whose final was guarded away).
func utterances(ev []Event) int {
	n := 0
	for _, e := range ev {
		if e.Kind == Final || e.Kind == Interim {
			n = max(n, e.Utterance+1)
		}
	}
	return n
}

// TestForcedCut: speech with no pause as long as the endpoint silence is cut into finals
// no longer than MaxUtterance (plus a chunk), each `chorus transcribe` of its span with the
// previous text as prompt, while the buffer stays bounded (run checks it).
func TestForcedCut(t *testing.T) {
	sp := testSpeech(t)
	x := zeros(0.3)
	for range 4 {
		x = concat(x, sp, zeros(0.05)) // with sp's own 50 ms, a pause shorter than the endpoint silence
	}
	cfg := Config{Interim: true, MaxUtterance: 6 * time.Second}
	ev := run(t, newSession(t, cfg), x, 1600)
	finals := kind(ev, Final)
	if n := utterances(ev); n < 3 || len(finals) == 0 {
		t.Fatalf("%d utterances (%d finals) over %v with MaxUtterance %v", n, len(finals), at(int64(len(x))), cfg.MaxUtterance)
	}
	for i, f := range finals {
		if f.End-f.Start > cfg.MaxUtterance+100*time.Millisecond || f.End <= f.Start {
			t.Errorf("final %d spans [%v, %v)", i, f.Start, f.End)
		}
	}
	if n := len(kind(ev, SpeechBegin)); n != 1 {
		t.Errorf("%d speech begins, want 1 (the cuts are not pauses)", n)
	}
	checkFinals(t, x, finals, 0, "")
	checkInterims(t, ev)
}

// TestCutPoint checks the choice of where an over-long utterance is cut.
func TestCutPoint(t *testing.T) {
	hyp := []segment{
		{end: 16000, words: 2},
		{end: 40000, words: 3},
		{end: 64000, words: 1},
		{end: 900000, words: 2}, // a timestamp past the audio
	}
	cases := []struct {
		name      string
		committed int
		want      int64
	}{
		{"nothing committed: last boundary inside", 0, 64000},
		{"first segment committed", 2, 16000},
		{"two segments committed", 5, 40000},
		{"mid-segment commitment", 4, 16000},
		{"everything committed", 8, 64000},
	}
	for _, c := range cases {
		if got := cutPoint(hyp, c.committed, 0, 80000); got != c.want {
			t.Errorf("%s: cut at %d, want %d", c.name, got, c.want)
		}
	}
	if got := cutPoint(nil, 0, 100, 80000); got != 80000 {
		t.Errorf("no segments: cut at %d, want the end", got)
	}
}

// TestFinalize: a client-forced endpoint in mid-speech finalizes what was written; the
// speech goes on into the next utterance without a new SpeechBegin, and Close finalizes it.
func TestFinalize(t *testing.T) {
	x := concat(zeros(0.5), testSpeech(t))
	s := newSession(t, Config{Interim: true})
	ctx := context.Background()
	var ev []Event
	cut := 40000 // 2.5 s, in speech
	for i := 0; i < cut; i += 1600 {
		if err := s.Write(x[i:min(i+1600, cut)]); err != nil {
			t.Fatal(err)
		}
		e, err := s.Process(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev = append(ev, e...)
	}
	e, err := s.Finalize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f := kind(e, Final); len(f) != 1 || f[0].End != at(int64(cut)) {
		t.Fatalf("Finalize gave %+v", e)
	}
	ev = append(ev, e...)
	if e, err := s.Finalize(ctx); err != nil || len(e) != 0 {
		t.Errorf("second Finalize: %+v, %v", e, err)
	}
	ev = append(ev, run(t, s, x[cut:], 1600)...)
	finals := kind(ev, Final)
	if utterances(ev) != 2 || len(finals) == 0 || len(kind(ev, SpeechBegin)) != 1 || len(kind(ev, SpeechEnd)) != 1 {
		t.Fatalf("events %+v", ev)
	}
	checkFinals(t, x, finals, 0, "")
	checkInterims(t, ev)
}

// TestNoHallucination: 10 s of digital silence or of seeded white noise give no final with
// text. With the default settings the VAD hears no speech, so nothing is decoded. With the
// VAD forced open, the model does write text on such input (the "no gate" rows, which keep
// the test honest), and the log-probability gate removes it.
func TestNoHallucination(t *testing.T) {
	open := Config{SpeechMargin: -1000, MinSpeechLevel: -1000}
	gated := open
	gated.MinAvgLogprob = -2
	inputs := []struct {
		name string
		x    []float32
	}{
		{"zeros", zeros(10)},
		{"noise", synth(42, piece{10, "noise", -30})},
	}
	cases := []struct {
		name     string
		cfg      Config
		wantText bool
	}{
		{"default", Config{Interim: true}, false},
		{"VAD open, no gate", open, true},
		{"VAD open, log-prob gate", gated, false},
	}
	for _, in := range inputs {
		for _, c := range cases {
			t.Run(in.name+"/"+c.name, func(t *testing.T) {
				s := newSession(t, c.cfg)
				ev := run(t, s, in.x, 1600)
				text := ""
				for _, f := range kind(ev, Final) {
					text += f.Text
				}
				if (text != "") != c.wantText {
					t.Errorf("finals %q", text)
				}
				if reflect.DeepEqual(c.cfg, Config{Interim: true}) && (len(ev) != 0 || s.decodes != 0) {
					t.Errorf("%d decodes, events %+v", s.decodes, ev)
				}
			})
		}
	}
}

// TestNoiseThenSpeech: speech in steady noise is found, and the noise before it is not.
func TestNoiseThenSpeech(t *testing.T) {
	sp := testSpeech(t)
	noise := synth(9, piece{float64(len(sp))/16000 + 3, "noise", -45})
	x := make([]float32, len(noise))
	copy(x, noise)
	for i, v := range sp {
		x[2*16000+i] += v
	}
	ev := run(t, newSession(t, Config{}), x, 1600)
	begins := kind(ev, SpeechBegin)
	if len(begins) == 0 || begins[0].Start < 2*time.Second || begins[0].Start > 2*time.Second+50*time.Millisecond {
		t.Fatalf("speech events %+v", ev)
	}
	if len(kind(ev, Final)) == 0 {
		t.Errorf("no final")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(nil, Config{}); err == nil {
		t.Error("nil model accepted")
	}
	if _, err := New(testModel(t), Config{Agreement: 99}); err == nil {
		t.Error("bad config accepted")
	}
	v := *testModel(t)
	v.Tokenizer = nil
	if _, err := New(&v, Config{}); err == nil {
		t.Error("model without tokenizer accepted")
	}
}

// TestContextCancel: a cancelled decode returns the context's error and leaves the session
// refusing further work rather than half-processed.
func TestContextCancel(t *testing.T) {
	s := newSession(t, Config{})
	if err := s.Write(concat(zeros(0.5), testSpeech(t))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Close(ctx); err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Fatalf("Close with a cancelled context: %v", err)
	}
	if err := s.Write([]float32{0}); err == nil {
		t.Error("write after a failed decode accepted")
	}
	_ = math.NaN
}
