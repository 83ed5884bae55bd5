package stream

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr/transcribe"
)

// TestAgreement feeds hypothesis sequences to LocalAgreement-n and checks what is committed
// after each, the tail shown and the stability; committed text must only ever grow.
func TestAgreement(t *testing.T) {
	type step struct {
		hyp       string
		committed string
		tail      string
		stability float32
	}
	cases := []struct {
		name  string
		n     int
		steps []step
	}{
		{"two agree on a prefix", 2, []step{
			{"the cat", "", "the cat", 0.5},
			{"the cat sat on", "the cat", "sat on", 0.75},        // (2 + 2·½) / 4
			{"the cat sat on the", "the cat sat on", "the", 0.9}, // (4 + ½) / 5
			{"the cat sat on the mat", "the cat sat on the", "mat", 5.5 / 6},
		}},
		{"disagreement commits nothing", 2, []step{
			{"a b", "", "a b", 0.5},
			{"c d", "", "c d", 0.5},
			{"c e", "c", "e", 0.75},
		}},
		{"a revised committed word keeps its place", 2, []step{
			{"one two three", "", "one two three", 0.5},
			{"one two three four", "one two three", "four", 3.5 / 4},
			// The model now hears "tree"; the committed "three" stays, the tail lines up.
			{"one two tree four five", "one two three four", "five", 4.5 / 5},
		}},
		{"three must agree", 3, []step{
			{"x y", "", "x y", 1.0 / 3},
			{"x y z", "", "x y z", (2.0/3 + 2.0/3 + 1.0/3) / 3},
			// Only "x y" is in all three; "z" has two votes of three.
			{"x y z w", "x y", "z w", (2 + 2.0/3 + 1.0/3) / 4},
		}},
		{"n=1 commits every hypothesis", 1, []step{
			{"hello", "hello", "", 1},
			{"hello world", "hello world", "", 1},
		}},
		{"empty hypotheses", 2, []step{
			{"", "", "", 1},
			{"", "", "", 1},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := agreement{n: c.n}
			var prev []string
			for i, s := range c.steps {
				tail, votes := a.add(strings.Fields(s.hyp))
				if got := strings.Join(a.committed, " "); got != s.committed {
					t.Errorf("step %d: committed %q, want %q", i, got, s.committed)
				}
				if got := strings.Join(tail, " "); got != s.tail {
					t.Errorf("step %d: tail %q, want %q", i, got, s.tail)
				}
				if got := a.stability(votes); math.Abs(float64(got-s.stability)) > 1e-6 || got <= 0 || got > 1 {
					t.Errorf("step %d: stability %v, want %v", i, got, s.stability)
				}
				if !slices.Equal(prev, a.committed[:min(len(prev), len(a.committed))]) || len(a.committed) < len(prev) {
					t.Errorf("step %d: committed %q does not extend %q", i, a.committed, prev)
				}
				prev = slices.Clone(a.committed)
			}
		})
	}
}

// TestAgreementRandom: whatever the hypotheses, committed text only grows, and the stability
// stays in (0, 1].
func TestAgreementRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	vocab := []string{"a", "b", "c", "d"}
	for range 200 {
		a := agreement{n: 1 + rng.IntN(3)}
		var prev []string
		for range 20 {
			h := make([]string, rng.IntN(8))
			for i := range h {
				h[i] = vocab[rng.IntN(len(vocab))]
			}
			_, votes := a.add(h)
			if len(a.committed) < len(prev) || !slices.Equal(prev, a.committed[:len(prev)]) {
				t.Fatalf("committed %q does not extend %q", a.committed, prev)
			}
			if st := a.stability(votes); !(st > 0 && st <= 1) {
				t.Fatalf("stability %v", st)
			}
			prev = slices.Clone(a.committed)
		}
	}
}

// signal builds test audio from pieces: seconds of silence, noise or a tone at a level.
type piece struct {
	dur   float64 // seconds
	kind  string  // "zero", "noise", "tone"
	level float64 // RMS in dBFS
}

func synth(seed uint64, ps ...piece) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []float32
	for _, p := range ps {
		n := int(p.dur * 16000)
		rms := math.Pow(10, p.level/20)
		for i := range n {
			var x float64
			switch p.kind {
			case "noise":
				x = rng.NormFloat64() * rms
			case "tone":
				x = math.Sqrt2 * rms * math.Sin(2*math.Pi*220*float64(i)/16000)
			}
			out = append(out, float32(x))
		}
	}
	return out
}

// TestVAD runs the detector over synthetic signals with known speech (tone) spans and checks
// the onsets and ends it reports, in frames.
func TestVAD(t *testing.T) {
	type span struct{ begin, end int64 } // frames; end is the frame after the last voiced
	cases := []struct {
		name string
		in   []float32
		want []span
	}{
		{"digital silence", synth(1, piece{10, "zero", 0}), nil},
		{"steady noise", synth(1, piece{10, "noise", -30}), nil},
		{"loud noise from the start", synth(1, piece{5, "noise", -10}), nil},
		{"tone in silence", synth(1, piece{1, "zero", 0}, piece{1, "tone", -20}, piece{1, "zero", 0}),
			[]span{{100, 200}}},
		{"tone in noise", synth(2, piece{1, "noise", -45}, piece{1.5, "tone", -20}, piece{1, "noise", -45}),
			[]span{{100, 250}}},
		{"tone below the noise margin", synth(3, piece{1, "noise", -30}, piece{1, "tone", -25}, piece{1, "noise", -30}), nil},
		{"quiet tone under the absolute level", synth(1, piece{1, "zero", 0}, piece{1, "tone", -70}, piece{1, "zero", 0}), nil},
		{"click shorter than min speech", synth(1, piece{1, "zero", 0}, piece{0.03, "tone", -20}, piece{1, "zero", 0}), nil},
		{"pause shorter than the hangover", synth(1, piece{1, "zero", 0}, piece{0.5, "tone", -20}, piece{0.15, "zero", 0}, piece{0.5, "tone", -20}, piece{1, "zero", 0}),
			[]span{{100, 215}}},
		{"pause longer than the hangover", synth(1, piece{1, "zero", 0}, piece{0.5, "tone", -20}, piece{0.4, "zero", 0}, piece{0.5, "tone", -20}, piece{1, "zero", 0}),
			[]span{{100, 150}, {190, 240}}},
		{"noise floor rises, then speech", synth(4, piece{1, "noise", -60}, piece{5, "noise", -35}, piece{1, "tone", -15}, piece{1, "noise", -35}),
			// The louder noise is taken for speech until the 3-s window forgets the quiet.
			[]span{{100, 400}, {600, 700}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := vad{startMargin: 12, keepMargin: 6, minLevel: -55, onsetFrames: 6, hangFrames: 20, floorFrames: 300}
			var got []span
			for i := 0; i+frameSamples <= len(c.in); i += frameSamples {
				switch v.push(level(c.in[i : i+frameSamples])) {
				case vadBegin:
					got = append(got, span{begin: v.onset(), end: -1})
				case vadEnd:
					got[len(got)-1].end = v.voicedEnd()
				}
				if len(v.mins) > v.floorFrames {
					t.Fatalf("noise-floor window holds %d frames", len(v.mins))
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("speech %v, want %v", got, c.want)
			}
			for i := range got {
				// The onset and end may be off by a frame where a 10-ms frame straddles them.
				if abs64(got[i].begin-c.want[i].begin) > 1 || abs64(got[i].end-c.want[i].end) > 1 {
					t.Errorf("speech %v, want %v", got, c.want)
				}
			}
		})
	}
}

func abs64(x int64) int64 { return max(x, -x) }

// TestConfig checks the defaults and that impossible settings are refused.
func TestConfig(t *testing.T) {
	c, err := Config{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Step != DefaultStep || c.Agreement != 2 || c.EndpointSilence != DefaultEndpointSilence || c.MaxUtterance != DefaultMaxUtterance {
		t.Errorf("defaults %+v", c)
	}
	// With the default gates, decoding uses exactly transcribe.DefaultOptions' thresholds.
	d := transcribe.DefaultOptions()
	if c.NoSpeechThreshold != *d.NoSpeechThreshold || c.LogprobThreshold != *d.LogprobThreshold || c.CompressionRatioThreshold != *d.CompressionRatioThreshold {
		t.Errorf("gates %v %v %v differ from transcribe's defaults", c.NoSpeechThreshold, c.LogprobThreshold, c.CompressionRatioThreshold)
	}
	bad := []struct {
		name string
		c    Config
	}{
		{"negative step", Config{Step: -time.Second}},
		{"huge step", Config{Step: time.Minute}},
		{"agreement", Config{Agreement: -1}},
		{"endpoint too short", Config{EndpointSilence: time.Millisecond}},
		{"pad not below endpoint", Config{EndpointSilence: 200 * time.Millisecond, FinalPad: 200 * time.Millisecond}},
		{"utterance over a window", Config{MaxUtterance: 30 * time.Second}},
		{"negative lead", Config{MaxLeadingSilence: -time.Second}},
		{"NaN margin", Config{SpeechMargin: math.NaN()}},
		{"infinite level", Config{MinSpeechLevel: math.Inf(-1)}},
		{"NaN gate", Config{MinAvgLogprob: math.NaN()}},
	}
	for _, b := range bad {
		if _, err := b.c.withDefaults(); err == nil {
			t.Errorf("%s: accepted", b.name)
		}
	}
}

// TestGuards checks each decoding gate on synthetic segments.
func TestGuards(t *testing.T) {
	good := transcribe.Segment{Text: " hello", AvgLogprob: -0.3, NoSpeechProb: 0.01, CompressionRatio: 1.2}
	with := func(f func(*transcribe.Segment)) transcribe.Segment { s := good; f(&s); return s }
	cases := []struct {
		name string
		cfg  Config
		seg  transcribe.Segment
		keep bool
	}{
		{"speech", Config{}, good, true},
		{"silence: no-speech and improbable", Config{}, with(func(s *transcribe.Segment) { s.NoSpeechProb, s.AvgLogprob = 0.9, -1.5 }), false},
		{"no-speech but confident", Config{}, with(func(s *transcribe.Segment) { s.NoSpeechProb = 0.9 }), true},
		{"no-speech without a log-prob threshold", Config{LogprobThreshold: math.Inf(-1)}, with(func(s *transcribe.Segment) { s.NoSpeechProb = 0.9 }), false},
		{"no-speech gate off", Config{NoSpeechThreshold: math.Inf(1)}, with(func(s *transcribe.Segment) { s.NoSpeechProb, s.AvgLogprob = 0.99, -1.5 }), true},
		{"NaN no-speech (no token)", Config{}, with(func(s *transcribe.Segment) { s.NoSpeechProb = math.NaN() }), true},
		{"repetition loop", Config{}, with(func(s *transcribe.Segment) { s.CompressionRatio = 3.1 }), false},
		{"repetition gate off", Config{CompressionRatioThreshold: math.Inf(1)}, with(func(s *transcribe.Segment) { s.CompressionRatio = 9 }), true},
		{"below the log-prob floor", Config{}, with(func(s *transcribe.Segment) { s.AvgLogprob = -7 }), false},
		{"log-prob floor raised", Config{MinAvgLogprob: -0.2}, good, false},
		{"log-prob floor off", Config{MinAvgLogprob: math.Inf(-1)}, with(func(s *transcribe.Segment) { s.AvgLogprob = -50 }), true},
	}
	for _, c := range cases {
		cfg, err := c.cfg.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		s := &Session{cfg: cfg}
		if got := s.keep(c.seg); got != c.keep {
			t.Errorf("%s: keep %v, want %v", c.name, got, c.keep)
		}
	}
}

// TestWriteRefuses: bad samples and overflow are refused without appending anything.
func TestWriteRefuses(t *testing.T) {
	s := newSession(t, Config{})
	for _, bad := range [][]float32{
		{0, float32(math.NaN())},
		{float32(math.Inf(1))},
		{0.1, float32(math.Inf(-1)), 0},
	} {
		if err := s.Write(bad); !errors.Is(err, ErrBadSample) {
			t.Errorf("Write(%v): %v", bad, err)
		}
	}
	if len(s.buf) != 0 {
		t.Fatalf("bad writes appended %d samples", len(s.buf))
	}
	if err := s.Write(make([]float32, maxBuffer)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]float32, 1)); !errors.Is(err, ErrBufferFull) {
		t.Errorf("overflow: %v", err)
	}
	// Processing digital silence frees the buffer: idle audio is kept only as a lead-in.
	if _, err := s.Process(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, lim := len(s.buf), samples(DefaultMaxLeadingSilence+DefaultMinSpeech); n > int(lim) {
		t.Errorf("idle buffer %d samples, want at most %d", n, lim)
	}
	if err := s.Write(make([]float32, 16000)); err != nil {
		t.Errorf("write after processing: %v", err)
	}
	if _, err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Write([]float32{0}); !errors.Is(err, ErrClosed) {
		t.Errorf("write after close: %v", err)
	}
	if _, err := s.Process(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("process after close: %v", err)
	}
}

func TestLimitPrompt(t *testing.T) {
	long := strings.Repeat("word ", 1000)
	got := limitPrompt(strings.TrimSpace(long))
	if len(got) > maxPromptBytes || !strings.HasPrefix(got, "word") || !strings.HasSuffix(got, "word") {
		t.Errorf("limitPrompt kept %d bytes: %q…", len(got), got[:20])
	}
	if got := limitPrompt("short text"); got != "short text" {
		t.Errorf("limitPrompt(short) = %q", got)
	}
}
