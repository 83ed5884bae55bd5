package asr

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

var smallDims = whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 64, NAudioHead: 2, NAudioLayer: 2,
	NVocab: 400, NTextCtx: 64, NTextState: 64, NTextHead: 2, NTextLayer: 2}

// logitsOf runs a fixed window and prompt through m.
func logitsOf(t *testing.T, m *whisper.Model) []float32 {
	t.Helper()
	mel := tensor.New(m.Dims.NMels, 3000)
	tensor.SeededUniform(mel.Data, 3, "mel", 0, 1)
	st := m.NewState(1)
	st.Encode(mel)
	return st.AllLogits(0, []int{1, 5, 17, 42}).Data
}

func maxDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestVariantRoundTrip(t *testing.T) {
	ref, err := whisper.NewRandom(smallDims, 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := logitsOf(t, ref)
	for _, c := range []struct {
		name string
		save SaveOptions
		open OpenOptions
		tol  float64
	}{
		{"f32", SaveOptions{}, OpenOptions{}, 0},
		{"zst", SaveOptions{Compress: true}, OpenOptions{}, 0},
		{"f32-open-f16", SaveOptions{}, OpenOptions{F16: true}, 2e-2},
		{"f16-zst", SaveOptions{Compress: true, F16: true}, OpenOptions{F16: true}, 2e-2},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := Save(dir, ref, nil, nil, c.save); err != nil {
				t.Fatal(err)
			}
			v, err := Open(dir, c.open)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxDiff(logitsOf(t, v.Model), want); d > c.tol {
				t.Errorf("logits differ by %g (tol %g)", d, c.tol)
			}
		})
	}
}

func TestGGMLRoundTrip(t *testing.T) {
	ref, err := whisper.NewRandom(smallDims, 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := logitsOf(t, ref)
	for _, f16 := range []bool{false, true} {
		path := filepath.Join(t.TempDir(), "ggml-small.bin")
		if err := ExportGGML(path, ref, nil, f16); err != nil {
			t.Fatal(err)
		}
		v, err := Open(path, OpenOptions{F16: f16})
		if err != nil {
			t.Fatal(err)
		}
		tol := 0.0
		if f16 {
			tol = 2e-2
		}
		if d := maxDiff(logitsOf(t, v.Model), want); d > tol {
			t.Errorf("f16=%v: logits differ by %g (tol %g)", f16, d, tol)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	ref, _ := whisper.NewRandom(smallDims, 1, whisper.LoadOptions{})
	if err := Save(dir, ref, nil, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	// Drop a tensor: the error names it.
	ck, _ := Checkpoint(ref)
	delete(ck.Tensors, "model.decoder.layers.1.fc2.bias")
	var order []string
	for _, n := range ck.Order {
		if n != "model.decoder.layers.1.fc2.bias" {
			order = append(order, n)
		}
	}
	ck.Order = order
	bad := t.TempDir()
	cfg, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	os.WriteFile(filepath.Join(bad, "config.json"), cfg, 0o644)
	if err := writeCk(filepath.Join(bad, "model.safetensors"), ck); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{bad, "model.decoder.layers.1.fc2.bias"},
		{t.TempDir(), "no config.json"},
		{filepath.Join(dir, "config.json"), "ggml"},
		{filepath.Join(dir, "nope"), "no such file"},
	} {
		_, err := Open(c.path, OpenOptions{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%s) = %v, want error containing %q", c.path, err, c.want)
		}
	}
}

// TestSaveOpenReLUAttention: a ReLU-attention model saved with its chorus block reopens as
// one (config round trip) with the same logits.
func TestSaveOpenReLUAttention(t *testing.T) {
	d := smallDims
	d.EncoderAttention = "relu"
	m, err := whisper.NewRandom(d, 4, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := ConfigFromDims(d)
	cfg.Chorus = []byte(`{"encoder_attention":"relu"}`)
	dir := filepath.Join(t.TempDir(), "v")
	if err := Save(dir, m, cfg, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v.Model.Dims.EncoderAttention != "relu" {
		t.Fatalf("reopened encoder attention %q", v.Model.Dims.EncoderAttention)
	}
	if d := maxDiff(logitsOf(t, v.Model), logitsOf(t, m)); d > 1e-5 {
		t.Errorf("reopened logits differ by %.3g", d)
	}
}

// TestLayerSizesConfig pins the chorus block's "layers" key: uniform dimensions write no
// chorus block at all (config.json as before per-layer sizes existed), per-layer sizes
// write the layers block, reopen to the same dimensions and logits, and refuse to export to
// ggml, whose header cannot state them.
func TestLayerSizesConfig(t *testing.T) {
	if c := ConfigFromDims(smallDims); c.Chorus != nil {
		t.Fatalf("uniform dims wrote a chorus block %s", c.Chorus)
	}
	d := smallDims
	d.EncoderSizes = []whisper.EncoderLayerSize{{Heads: 1, FFN: 100}, {Heads: 2, FFN: 0}}
	d.DecoderSizes = []whisper.DecoderLayerSize{{SelfHeads: 0, CrossHeads: 2, FFN: 256}, {SelfHeads: 1, CrossHeads: 1, FFN: 7}}
	const want = `{"layers":{"encoder":[{"heads":1,"ffn":100},{"heads":2,"ffn":0}],"decoder":[{"self_heads":0,"cross_heads":2,"ffn":256},{"self_heads":1,"cross_heads":1,"ffn":7}]}}`
	if got := string(ConfigFromDims(d).Chorus); got != want {
		t.Fatalf("chorus block\n got %s\nwant %s", got, want)
	}
	m, err := whisper.NewRandom(d, 2, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "v")
	if err := Save(dir, m, nil, nil, SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Model.Dims; fmt.Sprint(got.EncoderSizes, got.DecoderSizes) != fmt.Sprint(d.EncoderSizes, d.DecoderSizes) {
		t.Fatalf("reopened sizes %+v %+v, want %+v %+v", got.EncoderSizes, got.DecoderSizes, d.EncoderSizes, d.DecoderSizes)
	}
	if diff := maxDiff(logitsOf(t, v.Model), logitsOf(t, m)); diff != 0 {
		t.Errorf("reopened logits differ by %.3g", diff)
	}
	err = ExportGGML(filepath.Join(t.TempDir(), "m.bin"), m, nil, false)
	if err == nil || !strings.Contains(err.Error(), "one head count and one feed-forward width per stack") {
		t.Fatalf("ggml export of per-layer sizes: %v", err)
	}
	bad := smallDims
	bad.AudioHeadDim = 16 // 2 heads of 16 in a width of 64: a uniformly pruned variant
	m, err = whisper.NewRandom(bad, 2, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := ExportGGML(filepath.Join(t.TempDir(), "m.bin"), m, nil, false); err == nil || !strings.Contains(err.Error(), "head width") {
		t.Fatalf("ggml export of narrowed heads: %v", err)
	}
}
