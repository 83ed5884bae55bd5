package data

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTools skips when a TTS tool is absent: the Makefile's deps target
// installs them, and these tests are what checks that they still work.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
}

// synthVoices are the test's voices: cheap espeak-ng ones, plus flite and
// festival when installed, plus held-out voices so dev-voices fills.
func synthVoices() []Voice {
	vs := []Voice{{EngineEspeak, "en-us", "m1"}, {EngineEspeak, "en-gb", "f2"}, {EngineEspeak, "en-us", "m7"}}
	if _, err := exec.LookPath("flite"); err == nil {
		vs = append(vs, Voice{EngineFlite, "slt", ""}, Voice{EngineFlite, "rms", ""})
	}
	if _, err := os.Stat(festivalVoices["kal_diphone"].Probe); err == nil {
		if _, err := exec.LookPath("text2wave"); err == nil {
			vs = append(vs, Voice{EngineFestival, "kal_diphone", ""})
		}
	}
	return vs
}

func TestSynthEndToEnd(t *testing.T) {
	needTools(t, "sox", "espeak-ng")
	out := filepath.Join(t.TempDir(), "corpus")
	// Audio for a few prompts each side of the cut keeps sox's work small;
	// the rest are reported missing.
	tr, sounds := asteriskFixture(t, 290, func(i int) bool { return i > 8 && i < RealAllowedPrompts-3 })
	var calls, lastDone, lastTotal int
	var lastAudio float64
	opts := SynthOptions{
		Out: out, N: 24, Seed: 3, Voices: synthVoices(), Texts: planTexts(),
		DevFraction: 0.2, CleanFraction: 0.3, SpeedPerturb: true,
		AsteriskTranscript: tr, AsteriskSounds: sounds, NoInstall: true, CheckpointEvery: 5,
		Progress: func(done, total int, audio float64) {
			calls++
			if done != lastDone+1 || audio < lastAudio {
				t.Errorf("progress went from %d/%.2f to %d/%.2f", lastDone, lastAudio, done, audio)
			}
			lastDone, lastTotal, lastAudio = done, total, audio
		},
	}
	rep, err := Synth(t.Context(), opts)
	if err != nil {
		t.Fatalf("Synth: %v (report %+v)", err, rep)
	}
	realKept := rep.Real.Train + rep.Real.Dev + rep.Real.Eval
	if rep.Real.Eval != 6 || rep.Real.Train+rep.Real.Dev != 10 || len(rep.Real.MissingAudio) != 272 {
		t.Errorf("real: %d train+dev, %d eval, %d missing; want 10, 6, 272", rep.Real.Train+rep.Real.Dev, rep.Real.Eval, len(rep.Real.MissingAudio))
	}
	total := opts.N + realKept
	if rep.Synthesised != total || rep.Resumed != 0 || rep.Failed != 0 {
		t.Fatalf("synthesised %d resumed %d failed %d (%v), want %d new", rep.Synthesised, rep.Resumed, rep.Failed, rep.Errors, total)
	}
	if calls != total || lastDone != total || lastTotal != total {
		t.Errorf("progress calls %d, last %d/%d, want %d", calls, lastDone, lastTotal, total)
	}
	var synthCount int
	for _, name := range []string{SplitTrain, SplitDev, SplitDevVoices, ManifestRealTrain, ManifestRealDev, ManifestEvalReal} {
		m, err := ReadManifest(filepath.Join(out, name+".jsonl"), ReadOptions{OnError: Stop})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(m.Entries) != rep.Manifests[name].Utterances {
			t.Errorf("%s: %d entries, report says %d", name, len(m.Entries), rep.Manifests[name].Utterances)
		}
		for _, e := range m.Entries {
			h, err := readWAVHeaderFile(e.Path(m.Dir))
			if err != nil {
				t.Fatalf("%s: %v", e.AudioFilepath, err)
			}
			if h.Rate != SampleRate || h.Channels != 1 || h.Bits != 16 || h.Format != wavPCM {
				t.Errorf("%s: %d Hz %d ch %d bit format %d", e.AudioFilepath, h.Rate, h.Channels, h.Bits, h.Format)
			}
			if h.Duration() != e.Duration || (e.Source != SourceAsterisk && e.Duration < 0.3) {
				t.Errorf("%s: duration %v, header %v", e.AudioFilepath, e.Duration, h.Duration())
			}
			if name == SplitDevVoices && !strings.Contains(e.Voice, "m7") && e.Voice != "flite:rms" {
				t.Errorf("dev-voices entry spoken by %s", e.Voice)
			}
			if (name == SplitTrain || name == SplitDev) && (strings.Contains(e.Voice, "+m7") || e.Voice == "flite:rms") {
				t.Errorf("%s entry spoken by held-out %s", name, e.Voice)
			}
			if e.Augment == "" || e.Source == "" || e.Split == "" {
				t.Errorf("%s: missing provenance %+v", e.AudioFilepath, e)
			}
		}
		if name == SplitTrain || name == SplitDev || name == SplitDevVoices {
			synthCount += len(m.Entries)
		}
	}
	if synthCount != opts.N {
		t.Errorf("%d synthetic entries, want %d", synthCount, opts.N)
	}
	if rep.Manifests[SplitDevVoices].Utterances == 0 || rep.Manifests[SplitDev].Utterances == 0 {
		t.Errorf("empty dev split: %+v", rep.Manifests)
	}
	leftovers, _ := filepath.Glob(filepath.Join(out, "*.partial.jsonl"))
	tmps, _ := filepath.Glob(filepath.Join(out, ".tmp-*"))
	if len(leftovers)+len(tmps) != 0 {
		t.Errorf("left behind: %v %v", leftovers, tmps)
	}
	if _, err := os.Stat(filepath.Join(out, "synth-report.json")); err != nil {
		t.Error(err)
	}

	// A second run finds everything done and writes the same manifests.
	before, _ := os.ReadFile(filepath.Join(out, "train.jsonl"))
	opts.Progress = nil
	rep2, err := Synth(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Resumed != total || rep2.Synthesised != 0 {
		t.Errorf("rerun: resumed %d synthesised %d, want %d resumed", rep2.Resumed, rep2.Synthesised, total)
	}
	after, _ := os.ReadFile(filepath.Join(out, "train.jsonl"))
	if string(before) != string(after) {
		t.Error("rerun changed train.jsonl")
	}
}

func TestSynthCancelAndResume(t *testing.T) {
	needTools(t, "sox", "espeak-ng")
	out := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := SynthOptions{
		Out: out, N: 12, Seed: 9, Voices: []Voice{{EngineEspeak, "en-us", "m2"}}, Texts: planTexts(),
		NoReal: true, NoInstall: true, CheckpointEvery: 2, Workers: 1,
		Progress: func(done, total int, _ float64) {
			if done == 4 {
				cancel()
			}
		},
	}
	rep, err := Synth(ctx, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if rep == nil || rep.Synthesised < 4 || rep.Synthesised >= 12 {
		t.Fatalf("cancelled run report %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(out, "train.partial.jsonl")); err != nil {
		t.Errorf("no partial manifest after cancel: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "train.jsonl")); err == nil {
		t.Error("final manifest written by a cancelled run")
	}
	done := rep.Synthesised
	opts.Progress = nil
	rep, err = Synth(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != done || rep.Synthesised != 12-done {
		t.Errorf("resume: resumed %d synthesised %d, want %d and %d", rep.Resumed, rep.Synthesised, done, 12-done)
	}
	if _, err := os.Stat(filepath.Join(out, "train.partial.jsonl")); err == nil {
		t.Error("partial manifest left after a complete run")
	}
}

func TestSynthRefusesReservedVoice(t *testing.T) {
	out := t.TempDir()
	_, err := Synth(t.Context(), SynthOptions{Out: out, N: 1, Voices: []Voice{{EngineFlite, "awb", ""}}, Texts: planTexts(), NoInstall: true})
	if !errors.Is(err, ErrReservedVoice) {
		t.Fatalf("err = %v, want ErrReservedVoice", err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("refused run wrote %d files", len(ents))
	}
}

func TestSynthUnknownEspeakVariant(t *testing.T) {
	needTools(t, "sox", "espeak-ng")
	_, err := Synth(t.Context(), SynthOptions{Out: t.TempDir(), N: 1, Voices: []Voice{{EngineEspeak, "en-us", "nosuchvariant"}},
		Texts: planTexts(), NoReal: true, NoInstall: true})
	if err == nil || !strings.Contains(err.Error(), "nosuchvariant") {
		t.Fatalf("err = %v, want the unknown variant named", err)
	}
}
