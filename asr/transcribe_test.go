package asr

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// TestTranscribePlumbing runs the whole path — audio, mel, encoder, decoder with timestamps
// and fallback, tokenizer — on a random model with a trained vocabulary. The text is
// meaningless; the test checks the pieces fit and the output is well formed.
func TestTranscribePlumbing(t *testing.T) {
	dir, _, _ := tokenizedVariant(t)
	v, err := Open(dir, OpenOptions{F16: true})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := audio.Load16kMono(filepath.Join("..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, beam := range []int{1, 3} {
		o := transcribe.DefaultOptions()
		o.Decode.BeamSize, o.Decode.BestOf = beam, beam
		res, err := v.Transcribe(context.Background(), samples, o)
		if err != nil {
			t.Fatalf("beam %d: %v", beam, err)
		}
		for _, s := range res.Segments {
			if s.End < s.Start || s.Start < 0 {
				t.Errorf("beam %d: segment %+v", beam, s)
			}
		}
		t.Logf("beam %d: %d segments, language %q", beam, len(res.Segments), res.Language)
	}
}
