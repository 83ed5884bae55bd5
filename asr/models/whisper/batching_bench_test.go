package whisper

import (
	"fmt"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// microDims are the embedded default model's dimensions (recipes/chorus-micro.json).
var microDims = Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 256, NAudioHead: 4, NAudioLayer: 4,
	NVocab: 2022, NTextCtx: 224, NTextState: 256, NTextHead: 4, NTextLayer: 2,
	EncoderFFN: 1024, DecoderFFN: 1024, Activation: "relu"}

// BenchmarkEncoderBatching answers whether the server should batch the encoder work of
// concurrent streams: B streams' windows of 3 s (300 mel frames, what a streaming session
// encodes mid-utterance) encoded as one [B, 80, 300] batch against B separate calls, on the
// default model's dimensions. ns/op is per window in both cases.
func BenchmarkEncoderBatching(b *testing.B) {
	m, err := NewRandom(microDims, 1, LoadOptions{F16: true})
	if err != nil {
		b.Fatal(err)
	}
	const frames = 300
	for _, batch := range []int{1, 2, 4, 8} {
		mel := tensor.New(batch, microDims.NMels, frames)
		tensor.SeededUniform(mel.Data, 1, "mel", -1, 1)
		b.Run(fmt.Sprintf("separate/B=%d", batch), func(b *testing.B) {
			ctx := tensor.NewCtx()
			n := microDims.NMels * frames
			for b.Loop() {
				for i := range batch {
					m.Encoder.Forward(ctx, tensor.FromData(mel.Data[i*n:(i+1)*n], microDims.NMels, frames))
					ctx.Reset()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/window")
		})
		b.Run(fmt.Sprintf("batched/B=%d", batch), func(b *testing.B) {
			ctx := tensor.NewCtx()
			for b.Loop() {
				m.Encoder.Forward(ctx, mel)
				ctx.Reset()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/window")
		})
	}
}

// TestForwardBatchExact: windows of different lengths encoded together give each exactly
// what Forward gives it alone (the stem and attention stay per window).
func TestForwardBatchExact(t *testing.T) {
	for _, d := range []Dims{microDims, func() Dims { x := gradDims; x.NAudioCtx = 100; x.EncoderAttention = "relu"; return x }()} {
		m, err := NewRandom(d, 2, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var mels []*tensor.T
		for i, frames := range []int{120, 64, 90} {
			mel := tensor.New(d.NMels, frames)
			tensor.SeededUniform(mel.Data, uint64(i), "ragged", -1, 1)
			mels = append(mels, mel)
		}
		got := m.Encoder.ForwardBatch(tensor.NewCtx(), mels)
		for i, mel := range mels {
			want := m.Encoder.Forward(tensor.NewCtx(), mel)
			checkTensor(t, got[i].Data, want.Data, 1e-5, fmt.Sprintf("window %d", i))
		}
	}
}

// BenchmarkEncoderRagged: B windows of different lengths (3 s down to 1.8 s, as concurrent
// streams have them) encoded in one ForwardBatch call against B Forward calls; ns/window.
func BenchmarkEncoderRagged(b *testing.B) {
	m, err := NewRandom(microDims, 1, LoadOptions{F16: true})
	if err != nil {
		b.Fatal(err)
	}
	for _, batch := range []int{2, 4, 8} {
		var mels []*tensor.T
		for i := range batch {
			frames := 300 - 120*i/batch
			frames -= frames % 2
			mel := tensor.New(microDims.NMels, frames)
			tensor.SeededUniform(mel.Data, uint64(i), "mel", -1, 1)
			mels = append(mels, mel)
		}
		b.Run(fmt.Sprintf("separate/B=%d", batch), func(b *testing.B) {
			ctx := tensor.NewCtx()
			for b.Loop() {
				for _, mel := range mels {
					m.Encoder.Forward(ctx, mel)
					ctx.Reset()
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/window")
		})
		b.Run(fmt.Sprintf("ragged/B=%d", batch), func(b *testing.B) {
			ctx := tensor.NewCtx()
			for b.Loop() {
				m.Encoder.ForwardBatch(ctx, mels)
				ctx.Reset()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/window")
		})
	}
}
