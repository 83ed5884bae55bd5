package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/speech"
)

// TestWriteHyps: --hyps writes one JSON line per utterance that the manifest reader takes back
// (the manifest's fields survive; "hyp" and the counts ride along), with text that HTML
// escaping would mangle kept as it is; a folder that does not exist is an error.
func TestWriteHyps(t *testing.T) {
	dir := t.TempDir()
	us := []speech.Utterance{
		{Entry: data.Entry{AudioFilepath: "a.wav", Duration: 1.5, Text: "Tom & Jerry <3", Voice: "v1", Source: "s"}, Hyp: "tom and jerry", Words: 4, Sub: 1, Del: 1},
		{Entry: data.Entry{AudioFilepath: "b.wav", Duration: 0.5, Text: "it's fine", Voice: "v2", Source: "s"}, Hyp: "it's fine", Words: 2},
	}
	path := filepath.Join(dir, "hyps.jsonl")
	if err := writeHyps(path, us); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n"); len(lines) != 2 ||
		lines[0] != `{"audio_filepath":"a.wav","duration":1.5,"text":"Tom & Jerry <3","voice":"v1","source":"s","hyp":"tom and jerry","words":4,"sub":1,"del":1,"ins":0}` {
		t.Errorf("hyps file:\n%s", b)
	}
	for _, u := range us { // the manifest reader skips lines whose audio is missing
		if err := os.WriteFile(filepath.Join(dir, u.AudioFilepath), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := data.ReadManifest(path, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Entries) != 2 || m.Entries[0] != us[0].Entry || m.Entries[1] != us[1].Entry {
		t.Errorf("read back as a manifest: %+v", m.Entries)
	}
	if err := writeHyps(filepath.Join(dir, "missing", "h.jsonl"), us); err == nil {
		t.Error("a missing folder: no error")
	}
}
