package speech

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/trainer"
)

// microDims is the default model's architecture (recipes/chorus-micro.json) with the vocabulary
// of the test tokenizer.
func microDims(vocab int) whisper.Dims {
	return whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 256, NAudioHead: 4, NAudioLayer: 4,
		NVocab: vocab, NTextCtx: 224, NTextState: 256, NTextHead: 4, NTextLayer: 2,
		EncoderFFN: 1024, DecoderFFN: 1024, Activation: "relu"}
}

// syntheticTask builds a task over n random utterances of the given frames (no corpus needed).
func syntheticTask(t testing.TB, d func(int) whisper.Dims, n, frames, tokens int, o Options) *Task {
	t.Helper()
	tok, err := tokenizer.Load("../../asr/tokenizer/testdata/trained-en")
	if err != nil {
		t.Fatal(err)
	}
	o.Tokenizer, o.Dims = tok, d(tok.Size())
	task, err := newTask(o)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range n {
		u := &utterance{frames: frames, mel: make([]uint16, o.Dims.NMels*frames), duration: float64(frames) / 100, text: "x"}
		f := make([]float32, len(u.mel))
		tensor.SeededUniform(f, uint64(i), "mel", 0, 1)
		tensor.F32ToF16Slice(u.mel, f)
		for range tokens {
			u.tokens = append(u.tokens, 3+rng.IntN(200))
		}
		task.utts = append(task.utts, u)
	}
	if err := task.build(); err != nil {
		t.Fatal(err)
	}
	return task
}

// TestStepLearns checks that a few optimizer steps on one repeated batch lower the loss: the
// objective, the tape and the parameter wiring fit together — with float32 matrix products and,
// where the CPU has AVX512-BF16, with bfloat16 ones (chorus train --matmul bf16).
func TestStepLearns(t *testing.T) {
	for _, bf := range []bool{false, true} {
		t.Run(map[bool]string{false: "f32", true: "bf16"}[bf], func(t *testing.T) {
			if err := tensor.SetMatmulBF16(bf); err != nil {
				t.Skip(err)
			}
			defer tensor.SetMatmulBF16(false)
			stepLearns(t)
		})
	}
}

// TestStepDeterministic: the same weights and batch give bit-identical gradients, with float32
// and with bfloat16 products — what an exact --resume relies on (the kernels split work in
// fixed chunks and sum partials in a fixed order, whatever the scheduling).
func TestStepDeterministic(t *testing.T) {
	small := func(v int) whisper.Dims {
		return whisper.Dims{NMels: 80, NAudioCtx: 100, NAudioState: 64, NAudioHead: 2, NAudioLayer: 2,
			NVocab: v, NTextCtx: 32, NTextState: 64, NTextHead: 2, NTextLayer: 1, Activation: "relu"}
	}
	for _, bf := range []bool{false, true} {
		t.Run(map[bool]string{false: "f32", true: "bf16"}[bf], func(t *testing.T) {
			if err := tensor.SetMatmulBF16(bf); err != nil {
				t.Skip(err)
			}
			defer tensor.SetMatmulBF16(false)
			var grads [2][][]float32
			for run := range 2 {
				task := syntheticTask(t, small, 8, 200, 8, Options{BatchFrames: 4000, MaxItems: 8, CTCWeight: 0.3, Smoothing: 0.1, Seed: 1})
				if _, err := task.Step(context.Background(), trainer.Batch{Seed: 1}, nil); err != nil {
					t.Fatal(err)
				}
				for _, p := range task.Params() {
					grads[run] = append(grads[run], append([]float32(nil), p.Grad.Data...))
				}
			}
			for i := range grads[0] {
				for j, v := range grads[0][i] {
					if math.Float32bits(v) != math.Float32bits(grads[1][i][j]) {
						t.Fatalf("param %d grad %d: %v then %v", i, j, v, grads[1][i][j])
					}
				}
			}
		})
	}
}

func stepLearns(t *testing.T) {
	small := func(v int) whisper.Dims {
		return whisper.Dims{NMels: 80, NAudioCtx: 100, NAudioState: 32, NAudioHead: 2, NAudioLayer: 1,
			NVocab: v, NTextCtx: 32, NTextState: 32, NTextHead: 2, NTextLayer: 1, Activation: "relu"}
	}
	task := syntheticTask(t, small, 2, 60, 6, Options{BatchFrames: 1000, MaxItems: 2, CTCWeight: 0.3, Smoothing: 0.1, Seed: 1})
	opt, err := trainer.NewAdamW(task.Params(), trainer.AdamWConfig{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	var first, last float64
	for step := range 30 {
		r, err := task.Step(context.Background(), trainer.Batch{Seed: 1, Index: 0}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if math.IsNaN(r.Loss) {
			t.Fatal("NaN loss")
		}
		if step == 0 {
			first = r.Loss
		}
		last = r.Loss
		opt.Step(3e-3, 1)
	}
	t.Logf("loss %.3f → %.3f", first, last)
	if last > 0.5*first {
		t.Errorf("loss went from %.3f to %.3f in 30 steps on one batch", first, last)
	}
}

// BenchmarkTrainStep times one forward+backward step on a batch of 20 utterances of 4 s (the
// shape tools/ref/train_step_bench.py times in PyTorch: --enc-layers, --dec-layers) for the
// 4+2-layer architecture chorus-micro was trained from scratch with ("4+2") and the grown
// default's 6+4 layers ("6+4"), with float32 matrix products and, where the CPU has
// AVX512-BF16, bfloat16 ones (chorus train --matmul bf16).
func BenchmarkTrainStep(b *testing.B) {
	for _, layers := range [][2]int{{4, 2}, {6, 4}} {
		dims := func(vocab int) whisper.Dims {
			d := microDims(vocab)
			d.NAudioLayer, d.NTextLayer = layers[0], layers[1]
			return d
		}
		b.Run(fmt.Sprintf("%d+%d", layers[0], layers[1]), func(b *testing.B) { benchTrainStep(b, dims) })
	}
}

func benchTrainStep(b *testing.B, dims func(int) whisper.Dims) {
	task := syntheticTask(b, dims, 20, 400, 16, Options{BatchFrames: 8000, MaxItems: 20, CTCWeight: 0.3, Smoothing: 0.1, Seed: 1})
	opt, err := trainer.NewAdamW(task.Params(), trainer.AdamWConfig{}, 2)
	if err != nil {
		b.Fatal(err)
	}
	for _, bf := range []bool{false, true} {
		name := "f32"
		if bf {
			name = "bf16"
		}
		b.Run(name, func(b *testing.B) {
			if err := tensor.SetMatmulBF16(bf); err != nil {
				b.Skip(err)
			}
			defer tensor.SetMatmulBF16(false)
			for range b.N {
				if _, err := task.Step(context.Background(), trainer.Batch{Seed: 1}, nil); err != nil {
					b.Fatal(err)
				}
				opt.Step(1e-4, 1)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
		})
	}
}

// TestDimsFingerprintStable pins the fingerprint text of the dimensions: it is part of the
// config hash every checkpoint records, so a change here stops running trainings from
// resuming (chorus-micro's run started before whisper.Dims gained head widths).
func TestDimsFingerprintStable(t *testing.T) {
	d := whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 256, NAudioHead: 4, NAudioLayer: 4, NVocab: 2022,
		NTextCtx: 224, NTextState: 256, NTextHead: 4, NTextLayer: 2, EncoderFFN: 1024, DecoderFFN: 1024, Activation: "relu"}
	const want = "{NMels:80 NAudioCtx:1500 NAudioState:256 NAudioHead:4 NAudioLayer:4 NVocab:2022 NTextCtx:224 NTextState:256 NTextHead:4 NTextLayer:2 EncoderFFN:1024 DecoderFFN:1024 Activation:relu}"
	if got := dimsFingerprint(d); got != want {
		t.Errorf("dims fingerprint changed:\n got %s\nwant %s", got, want)
	}
	d.AudioHeadDim = 32
	if got := dimsFingerprint(d); got == want {
		t.Error("a head width does not change the fingerprint")
	}
}

// TestDimsFingerprintLayerSizes: per-layer sizes change the fingerprint (a run must not resume
// onto a model of other shapes), and only when they are set (TestDimsFingerprintStable).
func TestDimsFingerprintLayerSizes(t *testing.T) {
	d := whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 256, NAudioHead: 4, NAudioLayer: 1, NVocab: 2022,
		NTextCtx: 224, NTextState: 256, NTextHead: 4, NTextLayer: 1}
	u := dimsFingerprint(d)
	d.EncoderSizes = []whisper.EncoderLayerSize{{Heads: 2, FFN: 300}}
	a := dimsFingerprint(d)
	d.EncoderSizes[0].FFN = 301
	if b := dimsFingerprint(d); a == u || b == a || !strings.HasPrefix(a, u+" ") {
		t.Fatalf("fingerprints: uniform %q, sized %q, resized %q", u, a, b)
	}
}

// TestSilencePadding: a batch drawn with silence padding grows by its lead and tail frames, the
// lead repeats each utterance's first two frames and the tail its last two, the utterance sits
// between them unchanged, timestamp targets start at the lead, and the padded batch trains
// (finite loss, CTC over the padding). Without padding the batch is the utterances alone.
func TestSilencePadding(t *testing.T) {
	small := func(v int) whisper.Dims {
		return whisper.Dims{NMels: 80, NAudioCtx: 100, NAudioState: 32, NAudioHead: 2, NAudioLayer: 1,
			NVocab: v, NTextCtx: 32, NTextState: 32, NTextHead: 2, NTextLayer: 1, Activation: "relu"}
	}
	const frames = 60
	o := Options{BatchFrames: 1000, MaxItems: 2, CTCWeight: 0.3, Smoothing: 0.1, Seed: 1, TimestampFraction: 1,
		Silence: Silence{Prob: 1, MaxLead: 0.5, MaxTail: 0.5}}
	task := syntheticTask(t, small, 2, frames, 6, o)
	sp := task.o.Tokenizer.Specials()
	padded := 0
	for b := range int64(8) {
		sb, err := task.batch(trainer.Batch{Seed: 1, Index: b})
		if err != nil {
			t.Fatal(err)
		}
		if sb.lead%2 != 0 || sb.tail%2 != 0 || sb.lead > 50 || sb.tail > 50 || sb.frames != frames+sb.lead+sb.tail {
			t.Fatalf("batch %d: lead %d tail %d frames %d", b, sb.lead, sb.tail, sb.frames)
		}
		if sb.lead > 0 && sb.tail > 0 {
			padded++
		}
		for j, i := range sb.items {
			u := task.utts[i]
			want := make([]float32, frames)
			for m := range task.o.Dims.NMels {
				tensor.F16ToF32Slice(want, u.mel[m*frames:(m+1)*frames])
				row := sb.mel.Data[(j*task.o.Dims.NMels+m)*sb.frames:][:sb.frames]
				for f := range sb.frames {
					var w float32
					switch {
					case f < sb.lead:
						w = want[f%2]
					case f < sb.lead+frames:
						w = want[f-sb.lead]
					default:
						w = want[frames-2+(f-sb.lead-frames)%2]
					}
					if row[f] != w && row[f] != 0 { // 0: SpecAugment's masks
						t.Fatalf("batch %d item %d mel %d frame %d = %v, want %v", b, j, m, f, row[f], w)
					}
				}
			}
		}
		// Every sequence has timestamps (TimestampFraction 1): its first timestamp is the lead.
		n := len(sb.inputs) / sb.size
		found := false
		for p := range n {
			if tok := sb.inputs[p]; tok >= sp.TimestampBegin {
				if tok != sp.TimestampBegin+sb.lead/2 {
					t.Fatalf("batch %d: first timestamp %d, want %d", b, tok-sp.TimestampBegin, sb.lead/2)
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("batch %d: no timestamp in %v", b, sb.inputs[:n])
		}
		task.ctx.Reset()
		r, err := task.Step(context.Background(), trainer.Batch{Seed: 1, Index: b}, nil)
		if err != nil || math.IsNaN(r.Loss) || math.IsInf(r.Loss, 0) {
			t.Fatalf("batch %d: step loss %v, %v", b, r.Loss, err)
		}
	}
	if padded == 0 {
		t.Error("no batch got both a lead and a tail")
	}
	o.Silence = Silence{}
	plain := syntheticTask(t, small, 2, frames, 6, o)
	sb, err := plain.batch(trainer.Batch{Seed: 1, Index: 0})
	if err != nil {
		t.Fatal(err)
	}
	if sb.lead != 0 || sb.tail != 0 || sb.frames != frames {
		t.Errorf("without padding: lead %d tail %d frames %d", sb.lead, sb.tail, sb.frames)
	}
}

// TestSilenceRecipeErrors: a recipe's objective.silence outside its ranges is refused before
// any training starts.
func TestSilenceRecipeErrors(t *testing.T) {
	base := `{"name":"s","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},"objective":{"silence":`
	checkRecipeErrors(t, map[string]string{
		"objective.silence {Prob:1.5":                      base + `{"prob":1.5,"max_lead_s":1}}}`,
		"objective.silence {Prob:0.5 MaxLead:2":            base + `{"prob":0.5,"max_lead_s":2}}}`,
		"objective.silence {Prob:0.5 MaxLead:1 MaxTail:-1": base + `{"prob":0.5,"max_lead_s":1,"max_tail_s":-1}}}`,
	})
}
