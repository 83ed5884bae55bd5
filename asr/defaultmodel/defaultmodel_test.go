package defaultmodel

import (
	"context"
	"encoding/json"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
	_ "github.com/chorus-asr/chorus/experts/moe" // opens the MoE variants
)

func TestOpen(t *testing.T) {
	v, err := Open(asr.OpenOptions{F16: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.Tokenizer == nil || v.Model.Dims.Activation != "relu" {
		t.Fatalf("default model: tokenizer %v, activation %q", v.Tokenizer != nil, v.Model.Dims.Activation)
	}
	if ffn := v.Config.EncoderFFNDim; ffn < 4*v.Model.Dims.NAudioState {
		t.Errorf("feed-forward width %d below 4× the width %d", ffn, v.Model.Dims.NAudioState)
	}
	samples, err := audio.Load16kMono(filepath.Join("..", "..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := v.Transcribe(context.Background(), samples, transcribe.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ref.wav → %q", res.Text)
}

// TestEmbeddedNames: every embedded variant opens by name and reports its embedded path; an
// unknown name's error lists the embedded ones.
func TestEmbeddedNames(t *testing.T) {
	names := Names()
	if len(names) < 2 || names[0] != Name || names[1] != MoEName {
		t.Fatalf("Names() = %v, want %s and %s first", names, Name, MoEName)
	}
	for _, n := range names {
		v, err := OpenNamed(n, asr.OpenOptions{F16: true})
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if v.Name != n || v.Path != "embedded:"+n || v.Tokenizer == nil {
			t.Errorf("%s opened as %q at %q (tokenizer %v)", n, v.Name, v.Path, v.Tokenizer != nil)
		}
		if n != Name && v.Experts == nil {
			t.Errorf("%s has no experts", n)
		}
	}
	_, err := OpenNamed("chorus-nano", asr.OpenOptions{})
	if err == nil || !strings.Contains(err.Error(), Name) {
		t.Errorf("unknown name: error %v, want one listing the embedded variants", err)
	}
}

// TestCardChecksums: card.json lists the SHA-256 of every file, and they match.
func TestCardChecksums(t *testing.T) {
	b, err := fs.ReadFile(FS(), "card.json")
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Files map[string]string `json:"files_sha256"`
		Steps int64             `json:"steps"`
	}
	if err := json.Unmarshal(b, &card); err != nil {
		t.Fatal(err)
	}
	if len(card.Files) == 0 || card.Steps <= 0 {
		t.Fatalf("card lists %d files, %d steps", len(card.Files), card.Steps)
	}
	for name, want := range card.Files {
		got, err := asr.FSFileSHA256(FS(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s: sha256 %s, card says %s", name, got, want)
		}
	}
	entries, err := fs.ReadDir(FS(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, ok := card.Files[e.Name()]; !ok && e.Name() != "card.json" {
			t.Errorf("%s is embedded but not in the card's checksums", e.Name())
		}
	}
}

// TestMoEVariant: the embedded MoE variant reads as one variant folder whose files all match
// its card's checksums (a full folder's own, or an overlay's with the default's weights and
// tokenizer), with experts, weights and tokenizer; and an overlay recorded over other weights
// than the default's is refused.
func TestMoEVariant(t *testing.T) {
	fsys, err := MoEFS()
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, "card.json")
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Files map[string]string `json:"files_sha256"`
	}
	if err := json.Unmarshal(b, &card); err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() == "card.json" {
			continue
		}
		got, err := asr.FSFileSHA256(fsys, e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if card.Files[e.Name()] != got {
			t.Errorf("%s: sha256 %s, card says %q", e.Name(), got, card.Files[e.Name()])
		}
		delete(card.Files, e.Name())
	}
	if len(card.Files) != 0 {
		t.Errorf("card lists files the folder lacks: %v", card.Files)
	}
	for _, want := range []string{"config.json", "model.safetensors.zst", "vocab.json"} {
		if _, err := fs.Stat(fsys, want); err != nil {
			t.Errorf("folder lacks %s: %v", want, err)
		}
	}
	top := fstest.MapFS{"card.json": {Data: []byte(`{"base_weights": "model.safetensors.zst", "base_weights_sha256": "0123"}`)}}
	if _, err := Overlay(top, FS()); err == nil || !strings.Contains(err.Error(), "regenerate") {
		t.Errorf("overlay over other weights: %v", err)
	}
	ov, err := Overlay(fstest.MapFS{"card.json": {Data: mustBaseCard(t)}, "extra.txt": {Data: []byte("x")}}, FS())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"extra.txt", "model.safetensors.zst", "vocab.json"} {
		if _, err := fs.Stat(ov, want); err != nil {
			t.Errorf("overlay folder lacks %s: %v", want, err)
		}
	}
}

// mustBaseCard is an overlay card recording the embedded default's weights.
func mustBaseCard(t *testing.T) []byte {
	t.Helper()
	sum, err := asr.FSFileSHA256(FS(), "model.safetensors.zst")
	if err != nil {
		t.Fatal(err)
	}
	return []byte(`{"base_weights": "model.safetensors.zst", "base_weights_sha256": "` + sum + `"}`)
}
