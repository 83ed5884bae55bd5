package data

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		name string
		line string
		want error
	}{
		{"ok", `{"audio_filepath":"a.wav","duration":1.5,"text":"hi there"}`, nil},
		{"ok with extras", `{"audio_filepath":"a.wav","duration":1,"text":"x","offset":0,"lang":"en"}`, nil},
		{"ok chorus fields", `{"audio_filepath":"a.wav","duration":1,"text":"x","voice":"flite:slt","source":"sotu","split":"train","augment":"clean"}`, nil},
		{"surrounding space", "  \t" + `{"audio_filepath":"a.wav","duration":1,"text":"x"}` + " \r", nil},
		{"not json", `audio_filepath=a.wav`, ErrBadJSON},
		{"truncated json", `{"audio_filepath":"a.wav","duration":1`, ErrBadJSON},
		{"array", `["a.wav",1,"x"]`, ErrBadJSON},
		{"duration as string", `{"audio_filepath":"a.wav","duration":"1.5","text":"x"}`, ErrBadJSON},
		{"no path", `{"duration":1,"text":"x"}`, ErrNoAudio},
		{"blank path", `{"audio_filepath":"  ","duration":1,"text":"x"}`, ErrNoAudio},
		{"empty text", `{"audio_filepath":"a.wav","duration":1,"text":""}`, ErrEmptyText},
		{"blank text", `{"audio_filepath":"a.wav","duration":1,"text":"  "}`, ErrEmptyText},
		{"missing text", `{"audio_filepath":"a.wav","duration":1}`, ErrEmptyText},
		{"zero duration", `{"audio_filepath":"a.wav","duration":0,"text":"x"}`, ErrBadDuration},
		{"negative duration", `{"audio_filepath":"a.wav","duration":-2,"text":"x"}`, ErrBadDuration},
		{"missing duration", `{"audio_filepath":"a.wav","text":"x"}`, ErrBadDuration},
		{"huge duration", `{"audio_filepath":"a.wav","duration":1e400,"text":"x"}`, ErrBadJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseLine([]byte(tt.line))
			if tt.want == nil && err != nil {
				t.Fatalf("ParseLine: %v", err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("ParseLine err = %v, want %v", err, tt.want)
			}
		})
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		`{"audio_filepath":"a.wav","duration":1.5,"text":"hi"}`,
		`{"audio_filepath":"a.wav","duration":-1,"text":"hi"}`,
		`{"audio_filepath":"","duration":1,"text":""}`,
		`{"duration":1e308,"text":"\u0000","audio_filepath":"\u0000"}`,
		`{`, `null`, `{"text":{"nested":1}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			return
		}
		if !(e.Duration > 0) || math.IsInf(e.Duration, 0) || strings.TrimSpace(e.Text) == "" || strings.TrimSpace(e.AudioFilepath) == "" {
			t.Fatalf("accepted invalid entry %+v", e)
		}
		// What was accepted survives a write/read round trip unchanged.
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("marshal accepted entry: %v", err)
		}
		e2, err := ParseLine(b)
		if err != nil {
			t.Fatalf("re-parse %s: %v", b, err)
		}
		if e2 != e {
			t.Fatalf("round trip changed %+v to %+v", e, e2)
		}
	})
}

func TestReadManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.wav"), encodeWAV16(make([]float32, 16), 16000), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := []string{
		`{"audio_filepath":"a.wav","duration":1,"text":"good one"}`, // 1
		``, // 2: blank, ignored
		`{"audio_filepath":"missing.wav","duration":1,"text":"x"}`, // 3
		`{"audio_filepath":"a.wav","duration":1,"text":""}`,        // 4
		`not json`, // 5
		`{"audio_filepath":"a.wav","duration":0,"text":"x"}`,        // 6
		`{"audio_filepath":"a.wav","duration":2,"text":"good two"}`, // 7, no final newline
	}
	path := filepath.Join(dir, "m.jsonl")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	wantBad := map[int]error{3: ErrMissingAudio, 4: ErrEmptyText, 5: ErrBadJSON, 6: ErrBadDuration}

	t.Run("skip", func(t *testing.T) {
		var reported []int
		m, err := ReadManifest(path, ReadOptions{Report: func(le *LineError) { reported = append(reported, le.Line) }})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Entries) != 2 || m.Entries[0].Text != "good one" || m.Entries[1].Text != "good two" {
			t.Fatalf("entries = %+v", m.Entries)
		}
		if len(m.Bad) != len(wantBad) || len(reported) != len(wantBad) {
			t.Fatalf("bad = %v, reported %v", m.Bad, reported)
		}
		for _, le := range m.Bad {
			if !errors.Is(le, wantBad[le.Line]) {
				t.Errorf("line %d: %v, want %v", le.Line, le.Err, wantBad[le.Line])
			}
			if !strings.Contains(le.Error(), "m.jsonl:") {
				t.Errorf("error %q lacks file:line", le)
			}
		}
		if got := m.Entries[0].Path(m.Dir); got != filepath.Join(dir, "a.wav") {
			t.Errorf("Path = %q", got)
		}
	})
	t.Run("stop", func(t *testing.T) {
		m, err := ReadManifest(path, ReadOptions{OnError: Stop})
		var le *LineError
		if !errors.As(err, &le) || le.Line != 3 || !errors.Is(err, ErrMissingAudio) {
			t.Fatalf("err = %v, want line 3 missing audio", err)
		}
		if len(m.Entries) != 1 {
			t.Errorf("entries before the stop = %d, want 1", len(m.Entries))
		}
	})
	t.Run("no file check", func(t *testing.T) {
		m, err := ReadManifest(path, ReadOptions{NoFileCheck: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(m.Entries) != 3 {
			t.Errorf("entries = %d, want 3", len(m.Entries))
		}
	})
	t.Run("missing manifest", func(t *testing.T) {
		if _, err := ReadManifest(filepath.Join(dir, "nope.jsonl"), ReadOptions{}); err == nil {
			t.Fatal("no error for a missing manifest")
		}
	})
}

func TestReadManifestLongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.jsonl")
	long := `{"audio_filepath":"a.wav","duration":1,"text":"` + strings.Repeat("x", maxLine) + `"}`
	ok := `{"audio_filepath":"a.wav","duration":1,"text":"fine"}`
	if err := os.WriteFile(path, []byte(long+"\n"+ok+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(path, ReadOptions{NoFileCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Bad) != 1 || m.Bad[0].Line != 1 || len(m.Entries) != 1 || m.Entries[0].Text != "fine" {
		t.Fatalf("bad %v entries %+v", m.Bad, m.Entries)
	}
}

func TestWriteManifestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "m.jsonl")
	in := []Entry{
		{AudioFilepath: "audio/x.wav", Duration: 1.25, Text: `He said "hi" & <left>`, Voice: "flite:slt", Source: "sotu", Split: "train", Prosody: "stretch=1.10", Augment: "clean"},
		{AudioFilepath: "/abs/y.wav", Duration: 0.5, Text: "two"},
	}
	if err := WriteManifest(path, in); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.Contains(string(b), `\u0026`) {
		t.Errorf("manifest escapes HTML: %s", b)
	}
	m, err := ReadManifest(path, ReadOptions{NoFileCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 2 || m.Entries[0] != in[0] || m.Entries[1] != in[1] {
		t.Fatalf("round trip: %+v", m.Entries)
	}
	if got := m.Entries[1].Path(m.Dir); got != "/abs/y.wav" {
		t.Errorf("absolute path resolved to %q", got)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "sub", ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestRelPath(t *testing.T) {
	tests := []struct{ dir, target, want string }{
		{"/a/b", "/a/b/c/d.wav", "c/d.wav"},
		{"/a/b", "/a/x.wav", "../x.wav"},
		{"/a/b", "/a/b/d.wav", "d.wav"},
	}
	for _, tt := range tests {
		if got := relPath(tt.dir, tt.target); got != tt.want {
			t.Errorf("relPath(%q, %q) = %q, want %q", tt.dir, tt.target, got, tt.want)
		}
	}
}
