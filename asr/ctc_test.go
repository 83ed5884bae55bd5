package asr

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
)

// writeHead stores a seeded CTC head of rows × width in dir, as training writes one.
func writeHead(t *testing.T, dir string, rows, width int) {
	t.Helper()
	w, b := tensor.New(rows, width), tensor.New(rows)
	tensor.SeededUniform(w.Data, 4, "ctc-w", -0.5, 0.5)
	tensor.SeededUniform(b.Data, 4, "ctc-b", -0.5, 0.5)
	ck := formats.NewCheckpoint()
	if err := ck.Add(formats.NewF32("weight", w.Shape, w.Data).Convert(formats.F16)); err != nil {
		t.Fatal(err)
	}
	if err := ck.Add(formats.NewF32("bias", b.Shape, b.Data)); err != nil {
		t.Fatal(err)
	}
	if err := formats.WriteSafetensorsFile(filepath.Join(dir, CTCHeadFile), ck, true); err != nil {
		t.Fatal(err)
	}
}

// TestCTCHead: a variant folder's CTC head is opened with it and checked against the
// tokenizer and the encoder width; the decode window gives the head's log-probabilities over
// the window it encoded (rows normalised, equal to the head applied to the encoder's output),
// and transcription runs with joint decoding on and off. A head of the wrong shape, or a
// corrupt file, fails Open with an error naming it.
func TestCTCHead(t *testing.T) {
	dir, tok, d := tokenizedVariant(t)
	if v, err := Open(dir, OpenOptions{}); err != nil || v.CTC != nil {
		t.Fatalf("no head file: head %v, err %v", v.CTC, err)
	}
	blank := tok.Specials().EOT
	writeHead(t, dir, blank+1, d.NAudioState)
	v, err := Open(dir, OpenOptions{F16: true})
	if err != nil {
		t.Fatal(err)
	}
	if v.CTC == nil {
		t.Fatal("the head was not opened")
	}

	mel := tensor.New(d.NMels, 3000)
	tensor.SeededUniform(mel.Data, 3, "mel", 0, 1)
	w := v.newWindow(1)
	if lp, n := w.CTCLogProbs(); lp != nil || n != 0 {
		t.Fatalf("before any window: %d frames", n)
	}
	if err := w.EncodeWindow(mel.Data, d.NMels, 3000, 3000); err != nil {
		t.Fatal(err)
	}
	lp, frames := w.CTCLogProbs()
	if frames != d.NAudioCtx || len(lp) != frames*(blank+1) {
		t.Fatalf("%d frames, %d values; want %d frames of %d", frames, len(lp), d.NAudioCtx, blank+1)
	}
	xa := v.Model.NewState(1).Encode(mel)
	want := v.CTC.LogProbs(nil, xa)
	for i := range want {
		if math.Abs(float64(lp[i]-want[i])) > 1e-5 {
			t.Fatalf("value %d: %g, head on the encoder output %g", i, lp[i], want[i])
		}
	}
	for f := 0; f < frames; f += 499 {
		var s float64
		for _, x := range lp[f*(blank+1) : (f+1)*(blank+1)] {
			s += math.Exp(float64(x))
		}
		if math.Abs(s-1) > 1e-4 {
			t.Errorf("frame %d: probabilities sum to %g", f, s)
		}
	}

	samples, err := audio.Load16kMono(filepath.Join("..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, lambda := range []float64{0, 0.3, 1} {
		o := transcribe.DefaultOptions()
		o.Decode.CTCWeight = lambda
		o.SetBeam(3)
		if _, err := v.Transcribe(context.Background(), samples, o); err != nil {
			t.Fatalf("CTC weight %g: %v", lambda, err)
		}
	}

	writeHead(t, dir, blank, d.NAudioState)
	if _, err := Open(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "ctc head") {
		t.Errorf("a head one row short: err %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CTCHeadFile), []byte("not zstd"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "ctc head") {
		t.Errorf("a corrupt head: err %v", err)
	}
}

// TestLanguageModelFile: a variant folder's lm.arpa.zst opens with the variant and reaches
// the decoder; a corrupt one fails Open with an error naming it.
func TestLanguageModelFile(t *testing.T) {
	dir, tok, _ := tokenizedVariant(t)
	sp := tok.Specials()
	n, err := lm.Estimate([][]int{tok.Encode(" hello world"), tok.Encode(" hello there")},
		lm.EstimateOptions{Order: 3, BOS: sp.SOT, EOS: sp.EOT, Vocab: tok.Size()})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, LMFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.SaveZstd(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	v, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dm, err := v.DecodeModel()
	if err != nil || v.LM == nil || dm.LM == nil || v.LM.Order() != 3 {
		t.Fatalf("language model not opened: %v, %v", v.LM, err)
	}
	ctx := append([]int{sp.SOT}, tok.Encode(" hello")...)
	if p := math.Exp(v.LM.LogProb(ctx, tok.Encode(" world")[0])); p < 0.2 {
		t.Errorf("p(world | hello) = %.3f", p)
	}
	if err := os.WriteFile(filepath.Join(dir, LMFile), []byte("\\data\\\nngram 1=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, OpenOptions{}); err == nil || !strings.Contains(err.Error(), "language model") {
		t.Errorf("corrupt language model: err %v", err)
	}
}
