package data

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// festivalTestVoices are the festival voices installed here.
func festivalTestVoices(t *testing.T) []Voice {
	t.Helper()
	needTools(t, "festival", "text2wave")
	var vs []Voice
	for _, n := range sortedKeys(festivalVoices) {
		if _, err := os.Stat(festivalVoices[n].Probe); err == nil {
			vs = append(vs, Voice{Engine: EngineFestival, Name: n})
		}
	}
	if len(vs) == 0 {
		t.Skip("no festival voice installed (make deps-data installs them)")
	}
	return vs
}

// TestFestivalMatchesText2wave: one long-lived festival, switching voices
// and duration stretches from utterance to utterance, writes exactly the
// bytes text2wave writes for each (several sentences in one text, digits,
// punctuation and quotes included); a failed utterance is reported and the
// next one succeeds.
func TestFestivalMatchesText2wave(t *testing.T) {
	voices := festivalTestVoices(t)
	dir := t.TempDir()
	texts := []string{
		"The quick brown fox jumps over the lazy dog.",
		`She said "no" twice; then, at 4:30, left with 12 apples. Why?`,
		"Hello.",
	}
	stretches := []float64{0, 0.9, 1.17}
	fest := &festivalProc{}
	defer fest.close()
	n := 0
	for i, text := range texts {
		in := filepath.Join(dir, "in.txt")
		if err := os.WriteFile(in, []byte(text+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for j := range voices {
			v := voices[(i+j)%len(voices)] // a different voice follows each time
			p := VoiceParams{Stretch: stretches[(i+2*j)%len(stretches)]}
			want := filepath.Join(dir, "want.wav")
			if err := run(ttsCommand(t.Context(), v, p, in, want)); err != nil {
				t.Fatalf("text2wave: %v", err)
			}
			got := filepath.Join(dir, "got.wav")
			if err := fest.speak(t.Context(), v, p, in, got); err != nil {
				t.Fatalf("%s %v: %v", v, p, err)
			}
			a, _ := os.ReadFile(want)
			b, _ := os.ReadFile(got)
			if len(a) < 1000 || !bytes.Equal(a, b) {
				t.Errorf("%s %v %q: festivalProc wrote %d bytes, text2wave %d, not the same", v, p, text, len(b), len(a))
			}
			n++
		}
	}
	if fest.jobs != n {
		t.Errorf("the process spoke %d of %d utterances; want all (no restart)", fest.jobs, n)
	}

	err := fest.speak(t.Context(), voices[0], VoiceParams{}, filepath.Join(dir, "missing.txt"), filepath.Join(dir, "x.wav"))
	if err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing text file: err %v, want festival's message naming it", err)
	}
	if fest.cmd != nil {
		t.Error("the process was kept after a failure")
	}
	if err := fest.speak(t.Context(), voices[0], VoiceParams{}, filepath.Join(dir, "in.txt"), filepath.Join(dir, "y.wav")); err != nil {
		t.Errorf("after a failure: %v", err)
	}

	// A process that dies (festival crashes on a few texts) fails its utterance, and the
	// next one gets a new process.
	fest.cmd.Process.Kill()
	if err := fest.speak(t.Context(), voices[0], VoiceParams{}, filepath.Join(dir, "in.txt"), filepath.Join(dir, "y.wav")); err == nil {
		t.Error("dead process: no error")
	} else {
		t.Logf("dead process: %v", err)
	}
	if err := fest.speak(t.Context(), voices[0], VoiceParams{}, filepath.Join(dir, "in.txt"), filepath.Join(dir, "y.wav")); err != nil {
		t.Errorf("after the process died: %v", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := fest.speak(ctx, voices[0], VoiceParams{}, filepath.Join(dir, "in.txt"), filepath.Join(dir, "z.wav")); err == nil {
		t.Error("cancelled context: no error")
	}
}
