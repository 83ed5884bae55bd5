package data

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSentenceSplit(t *testing.T) {
	const frac = 0.03
	dev := 0
	const n = 20000
	for i := 0; i < n; i++ {
		s := fmt.Sprintf("sentence number %d here", i)
		if SentenceSplit(s, frac) == SplitDev {
			dev++
		}
		if SentenceSplit(s, frac) != SentenceSplit(s, frac) {
			t.Fatal("not deterministic")
		}
	}
	if f := float64(dev) / n; math.Abs(f-frac) > 0.005 {
		t.Errorf("dev fraction %.4f, want about %.2f", f, frac)
	}
	// Spellings that normalise alike share a side, and the extremes hold.
	for _, pair := range [][2]string{{"Don't stop!", "don't stop"}, {"A well-known fact.", "a well known fact"}} {
		for _, f := range []float64{0.03, 0.5} {
			if SentenceSplit(pair[0], f) != SentenceSplit(pair[1], f) {
				t.Errorf("%q and %q split apart at %v", pair[0], pair[1], f)
			}
		}
	}
	if SentenceSplit("anything at all", 0) != SplitTrain || SentenceSplit("anything at all", 1) != SplitDev {
		t.Error("fractions 0 and 1 not honoured")
	}
}

// planTexts is a synthetic corpus big enough to have dev sentences.
func planTexts() *TextCorpus {
	c := &TextCorpus{Sentences: map[string][]string{}, Stats: map[string]*SourceStats{}}
	for i, src := range TextSources {
		for j := 0; j < 500; j++ {
			c.Sentences[src] = append(c.Sentences[src], fmt.Sprintf("the %s sentence %s of source %s", src, spell(j), spell(i)))
		}
	}
	return c
}

func planOpts(n int, seed int64) SynthOptions {
	o := SynthOptions{Out: "/unused", N: n, Seed: seed, Voices: DefaultVoices(), DevFraction: 0.05}
	if err := o.defaults(); err != nil {
		panic(err)
	}
	return o
}

func TestBuildPlan(t *testing.T) {
	texts := planTexts()
	plan, nTrain, nDev, err := buildPlan(planOpts(3000, 1), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != 3000 || nTrain+nDev != 2000 || nDev == 0 {
		t.Fatalf("plan %d items, %d train + %d dev sentences", len(plan), nTrain, nDev)
	}
	splits := map[string]int{}
	engines := map[string]int{}
	trainTexts := map[string]bool{}
	names := map[string]bool{}
	for _, it := range plan {
		splits[it.split]++
		if names[it.rel] {
			t.Fatalf("duplicate output %s", it.rel)
		}
		names[it.rel] = true
		wantSplit := SplitTrain
		if it.split != SplitTrain {
			wantSplit = SplitDev
		}
		if got := SentenceSplit(it.text, 0.05); got != wantSplit {
			t.Errorf("item %d in %s speaks a %s sentence", it.index, it.split, got)
		}
		if IsDevVoice(it.voice) != (it.split == SplitDevVoices) {
			t.Errorf("item %d in %s spoken by %s", it.index, it.split, it.voice)
		}
		if it.split == SplitTrain {
			engines[it.voice.Engine]++
			trainTexts[it.text] = true
		}
		if !strings.HasPrefix(it.rel, "audio/"+it.split+"/") {
			t.Errorf("item %d path %s outside its split folder", it.index, it.rel)
		}
	}
	// About 5% each for dev and dev-voices.
	for _, s := range []string{SplitDev, SplitDevVoices} {
		if f := float64(splits[s]) / 3000; math.Abs(f-0.05) > 0.015 {
			t.Errorf("%s share %.3f", s, f)
		}
	}
	// Engines are drawn uniformly, not by voice count.
	for e, n := range engines {
		if f := float64(n) / float64(splits[SplitTrain]); math.Abs(f-1.0/3) > 0.05 {
			t.Errorf("engine %s share %.3f", e, f)
		}
	}
	// Sentences are used before any repeats: 2000*0.95 train sentences
	// cover far more than the ~2700 train items would by chance.
	if len(trainTexts) != min(splits[SplitTrain], nTrain) {
		t.Errorf("%d distinct train sentences for %d items (%d available)", len(trainTexts), splits[SplitTrain], nTrain)
	}
}

func TestBuildPlanStable(t *testing.T) {
	texts := planTexts()
	small, _, _, err := buildPlan(planOpts(100, 5), texts)
	if err != nil {
		t.Fatal(err)
	}
	big, _, _, _ := buildPlan(planOpts(300, 5), texts)
	again, _, _, _ := buildPlan(planOpts(100, 5), texts)
	other, _, _, _ := buildPlan(planOpts(100, 6), texts)
	same := 0
	for i := range small {
		if small[i].rel != big[i].rel || small[i].text != big[i].text {
			t.Fatalf("item %d changed when N grew: %s vs %s", i, small[i].rel, big[i].rel)
		}
		if small[i].rel != again[i].rel {
			t.Fatalf("item %d not reproducible", i)
		}
		if small[i].rel == other[i].rel {
			same++
		}
	}
	if same > 2 {
		t.Errorf("%d of 100 items identical under another seed", same)
	}
}

func TestBuildPlanErrors(t *testing.T) {
	texts := planTexts()
	o := planOpts(10, 1)
	o.Voices = []Voice{{EngineFlite, "rms", ""}}
	if _, _, _, err := buildPlan(o, texts); err == nil || !strings.Contains(err.Error(), "held out") {
		t.Errorf("only held-out voices: err = %v", err)
	}
	if _, _, _, err := buildPlan(planOpts(10, 1), &TextCorpus{Sentences: map[string][]string{}}); err == nil {
		t.Error("empty corpus accepted")
	}
	// Without held-out voices dev-voices stays empty but dev still fills.
	o = planOpts(400, 1)
	o.Voices = []Voice{{EngineEspeak, "en-us", "m1"}}
	plan, _, _, err := buildPlan(o, texts)
	if err != nil {
		t.Fatal(err)
	}
	var dev int
	for _, it := range plan {
		if it.split == SplitDevVoices {
			t.Fatal("dev-voices item without a held-out voice")
		}
		if it.split == SplitDev {
			dev++
		}
	}
	if dev == 0 {
		t.Error("no dev items")
	}
}

func TestSynthOptionsDefaults(t *testing.T) {
	tests := []struct {
		name    string
		o       SynthOptions
		wantErr string
		check   func(SynthOptions) bool
	}{
		{"defaults", SynthOptions{Out: "x", N: 1}, "", func(o SynthOptions) bool {
			return o.Workers == 2 && o.CleanFraction == 0.25 && o.DevFraction == 0.03 && o.MinSNR == 5 && o.MaxSNR == 30 &&
				o.RealDevFraction == 0.1 && len(o.Voices) == len(DefaultVoices()) && o.AsteriskSounds == DefaultAsteriskSounds
		}},
		{"negative means none", SynthOptions{Out: "x", N: 1, CleanFraction: -1, DevFraction: -1}, "", func(o SynthOptions) bool {
			return o.CleanFraction == 0 && o.DevFraction == 0
		}},
		{"no out", SynthOptions{N: 1}, "no output folder", nil},
		{"no N", SynthOptions{Out: "x"}, "N must be positive", nil},
		{"reserved voice", SynthOptions{Out: "x", N: 1, Voices: []Voice{{EngineFlite, "awb", ""}}}, "reserved", nil},
		{"dev too big", SynthOptions{Out: "x", N: 1, DevFraction: 0.6}, "dev fraction", nil},
		{"bad snr", SynthOptions{Out: "x", N: 1, MinSNR: 20, MaxSNR: 10}, "SNR", nil},
		{"transcript without sounds", SynthOptions{Out: "x", N: 1, AsteriskTranscript: "t.gz"}, "AsteriskSounds", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.o
			err := o.defaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(o) {
				t.Errorf("defaults gave %+v", o)
			}
		})
	}
}

func TestParseAsteriskTranscript(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		names   []string
		wantErr bool
	}{
		{"basic", "; Core Asterisk Sounds\n\nactivated: Activated.\ndigits/1: one\n", []string{"activated", "digits/1"}, false},
		{"colon in text", "at-tone: At the tone: the time.\n", []string{"at-tone"}, false},
		{"crlf", "a: A.\r\nb: B.\r\n", []string{"a", "b"}, false},
		{"no colon", "activated Activated.\n", nil, true},
		{"space in name", "some name: text\n", nil, true},
		{"escape", "../../etc/passwd: x\n", nil, true},
		{"absolute", "/etc/passwd: x\n", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := parseAsteriskTranscript(strings.NewReader(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			var names []string
			for i, p := range ps {
				names = append(names, p.Name)
				if p.Index != i {
					t.Errorf("index %d at %d", p.Index, i)
				}
			}
			if fmt.Sprint(names) != fmt.Sprint(tt.names) {
				t.Errorf("names %q, want %q", names, tt.names)
			}
		})
	}
}

func FuzzParseAsteriskTranscript(f *testing.F) {
	f.Add("; c\n\na: A.\nb/c: B C\n")
	f.Add("x:y\n")
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := parseAsteriskTranscript(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" || strings.Contains(p.Name, "..") || strings.HasPrefix(p.Name, "/") || strings.ContainsAny(p.Name, " \t") {
				t.Fatalf("accepted name %q", p.Name)
			}
		}
	})
}

// asteriskFixture writes a transcript of n prompts (gzip'd like Debian's)
// and a wav for each prompt i unless missing(i). Prompt i reads
// "prompt <i spelled>"; a few carry digits or brackets to be dropped.
func asteriskFixture(t *testing.T, n int, missing func(int) bool) (transcript, sounds string) {
	t.Helper()
	dir := t.TempDir()
	sounds = filepath.Join(dir, "sounds")
	os.MkdirAll(filepath.Join(sounds, "digits"), 0o755)
	var b strings.Builder
	b.WriteString("; Core Asterisk Sounds in English\n\n")
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("p%03d", i)
		text := "Prompt " + spell(i) + "."
		switch i {
		case 3:
			name, text = "digits/1", "one"
		case 5:
			text = "Press 1 now."
		case 7:
			text = "[ascending tones]"
		}
		fmt.Fprintf(&b, "%s: %s\n", name, text)
		if missing == nil || !missing(i) {
			wav := encodeWAV16(make([]float32, 800), 8000)
			wav[44] = 1 // not all silence
			if err := os.WriteFile(filepath.Join(sounds, name+".wav"), wav, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(b.String()))
	zw.Close()
	transcript = filepath.Join(dir, "core-sounds-en.txt.gz")
	os.WriteFile(transcript, gz.Bytes(), 0o644)
	return transcript, sounds
}

func TestLoadAsterisk(t *testing.T) {
	tr, sounds := asteriskFixture(t, 300, func(i int) bool { return i == 10 || i == 290 })
	items, st, err := loadAsterisk(tr, sounds, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Prompts != 300 || st.Allowed != RealAllowedPrompts {
		t.Errorf("prompts %d allowed %d", st.Prompts, st.Allowed)
	}
	if st.Dropped[DropDigits] != 1 || st.Dropped[DropSymbols] != 1 {
		t.Errorf("dropped %v", st.Dropped)
	}
	if fmt.Sprint(st.MissingAudio) != "[p010 p290]" {
		t.Errorf("missing %v", st.MissingAudio)
	}
	// 284 allowed - 2 dropped - 1 missing; 16 evaluation prompts - 1 missing.
	if st.Train+st.Dev != 281 || st.Eval != 15 || st.Dev == 0 {
		t.Errorf("train %d dev %d eval %d", st.Train, st.Dev, st.Eval)
	}
	for _, it := range items {
		allowed := it.prompt.Index < RealAllowedPrompts
		if allowed == (it.manifest == ManifestEvalReal) {
			t.Errorf("prompt %d (%s) in %s", it.prompt.Index, it.prompt.Name, it.manifest)
		}
		if !allowed && !strings.HasPrefix(it.rel, "eval-real/") {
			t.Errorf("evaluation audio %s outside eval-real/", it.rel)
		}
		if allowed && !strings.HasPrefix(it.rel, "real/") {
			t.Errorf("training audio %s outside real/", it.rel)
		}
	}
	if _, _, err := loadAsterisk(filepath.Join(t.TempDir(), "nope.gz"), sounds, 0.1); err == nil {
		t.Error("missing transcript accepted")
	}
	short, _ := asteriskFixture(t, 100, nil)
	if _, _, err := loadAsterisk(short, sounds, 0.1); err == nil || !strings.Contains(err.Error(), "fewer than") {
		t.Errorf("short transcript: err = %v", err)
	}
}
