package speech

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/training/data"
)

// TestEvaluate: Evaluate scores what the variant transcribes in the mode asked for (text only,
// or with timestamps as chorus transcribe decodes), overall and per voice and source, and
// reports an utterance whose audio is missing through Bad, counted in Errors, without failing;
// its Utterances are the transcribed ones in manifest order with their own alignment counts.
func TestEvaluate(t *testing.T) {
	dir := t.TempDir()
	path, _ := tinyVariant(t, dir, "v", nil)
	v, err := asr.Open(path, asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := data.ReadManifest(writeToneCorpus(t, dir), data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Entries {
		m.Entries[i].Voice, m.Entries[i].Source = []string{"a", "b"}[i%2], "tones"
	}
	m.Entries = append(m.Entries, data.Entry{AudioFilepath: "clips/missing.wav", Duration: 1, Text: "five", Voice: "a", Source: "tones"})
	for _, ts := range []bool{false, true} {
		var bad []string
		rep, err := Evaluate(t.Context(), v, m, EvalOptions{Timestamps: ts, Bad: func(p string, err error) { bad = append(bad, p) }})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Errors != 1 || len(bad) != 1 || !strings.HasSuffix(bad[0], "missing.wav") {
			t.Errorf("timestamps %v: errors %d, reported %v; want the missing clip", ts, rep.Errors, bad)
		}
		opts := transcribe.DefaultOptions()
		opts.Decode.WithoutTimestamps = !ts
		var refs, hyps []string
		for _, e := range m.Entries[:4] {
			x, err := audio.Load16kMono(filepath.Join(m.Dir, e.AudioFilepath))
			if err != nil {
				t.Fatal(err)
			}
			res, err := v.Transcribe(t.Context(), x, opts)
			if err != nil {
				t.Fatal(err)
			}
			refs, hyps = append(refs, e.Text), append(hyps, strings.TrimSpace(res.Text))
		}
		we, ww := metrics.WER(refs, hyps)
		if want := float64(we) / float64(ww); rep.Overall.WER != want || rep.Overall.Utterances != 4 || rep.Overall.Words != 4 {
			t.Errorf("timestamps %v: overall %+v, want 4 utterances, 4 words, WER %v (hypotheses %q)", ts, rep.Overall, want, hyps)
		}
		if rep.ByVoice["a"].Utterances != 2 || rep.ByVoice["b"].Utterances != 2 || rep.BySource["tones"].Utterances != 4 {
			t.Errorf("timestamps %v: by voice %+v, by source %+v", ts, rep.ByVoice, rep.BySource)
		}
		if len(rep.Utterances) != 4 {
			t.Fatalf("timestamps %v: %d utterances listed, want the 4 transcribed", ts, len(rep.Utterances))
		}
		for i, u := range rep.Utterances {
			e := m.Entries[i]
			c := metrics.WordCounts(e.Text, hyps[i])
			if u.Entry != e || u.Hyp != hyps[i] || u.Words != c.Ref || u.Sub != c.Sub || u.Del != c.Del || u.Ins != c.Ins {
				t.Errorf("timestamps %v: utterance %d %+v, want entry %+v with hypothesis %q and counts %+v", ts, i, u, e, hyps[i], c)
			}
		}
		if rep.AudioSec != 4 {
			t.Errorf("timestamps %v: %v s of audio, want 4", ts, rep.AudioSec)
		}
	}
}
