package asr

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// BenchmarkTranscriberLengths: the default model transcribing utterances of changing length
// (crops of ref.wav from 1.5 to 6 s, in an order that lengthens and shortens) through one
// Transcriber, as chorus eval's workers and the server's streams do, greedy with CTC. B/op is
// what the decode state allocates per utterance once warm: with its arenas' buffers reused
// across lengths it stays near the per-token bookkeeping.
func BenchmarkTranscriberLengths(b *testing.B) {
	v, err := Open(filepath.Join("defaultmodel", "chorus-micro"), OpenOptions{})
	if err != nil {
		b.Skip(err)
	}
	samples, err := audio.Load16kMono(filepath.Join("..", "testdata", "audio", "ref.wav"))
	if err != nil {
		b.Fatal(err)
	}
	tr, err := v.NewTranscriber()
	if err != nil {
		b.Fatal(err)
	}
	o := transcribe.DefaultOptions()
	o.SetBeam(1)
	o.Decode.WithoutTimestamps = true
	lengths := []float64{6, 1.5, 3, 4.5, 2, 5}
	for i := 0; b.Loop(); i++ {
		n := min(len(samples), int(lengths[i%len(lengths)]*audio.WhisperRate))
		if _, err := tr.Transcribe(context.Background(), samples[:n], o); err != nil {
			b.Fatal(err)
		}
	}
}
