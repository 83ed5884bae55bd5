package asr

import (
	"testing"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
)

func writeCk(path string, ck *formats.Checkpoint) error {
	return formats.WriteSafetensorsFile(path, ck, false)
}

// tokenizedVariant saves a random smallDims model with the trained test vocabulary (and a
// full text context) into a temporary folder and returns the folder, the tokenizer and the
// model's dimensions.
func tokenizedVariant(t *testing.T) (string, *tokenizer.Tokenizer, whisper.Dims) {
	t.Helper()
	tok, err := tokenizer.Load("tokenizer/testdata/trained-en")
	if err != nil {
		t.Fatal(err)
	}
	d := smallDims
	d.NVocab = tok.Size()
	d.NTextCtx = 448
	m, err := whisper.NewRandom(d, 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := Save(dir, m, nil, tok, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir, tok, d
}
