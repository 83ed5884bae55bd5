package asr

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/models/whisper"
)

// TestDumpMatchesReference is the acceptance check: the seeded checkpoints written as a
// Hugging Face folder and as ggml give, through `chorus models dump`'s code path (WAV → mel →
// encoder → logits), the numbers OpenAI's code computed (tools/ref/whisper_ref.py).
func TestDumpMatchesReference(t *testing.T) {
	ref := filepath.Join("..", "testdata", "whisper-ref")
	samples, err := audio.Load16kMono(filepath.Join("..", "testdata", "audio", "ref.wav"))
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []string{"small", "tiny"} {
		if cfg == "tiny" && testing.Short() {
			continue
		}
		var meta struct {
			Dims        whisper.Dims `json:"dims"`
			Seed        uint64       `json:"seed"`
			Tokens      []int        `json:"tokens"`
			EncoderRows []int        `json:"encoder_rows"`
			LogitsRows  []int        `json:"logits_rows"`
		}
		b, err := os.ReadFile(filepath.Join(ref, cfg, "meta.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			t.Fatal(err)
		}
		m, err := whisper.NewRandom(meta.Dims, meta.Seed, whisper.LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		hf := t.TempDir()
		if err := Save(hf, m, nil, nil, SaveOptions{}); err != nil {
			t.Fatal(err)
		}
		ggml := filepath.Join(t.TempDir(), "ggml-model.bin")
		if err := ExportGGML(ggml, m, nil, false); err != nil {
			t.Fatal(err)
		}
		for _, path := range []string{hf, ggml} {
			t.Run(cfg+"/"+filepath.Base(path), func(t *testing.T) {
				v, err := Open(path, OpenOptions{})
				if err != nil {
					t.Fatal(err)
				}
				out := t.TempDir()
				if err := Dump(v.Model, samples, meta.Tokens, out); err != nil {
					t.Fatal(err)
				}
				compare(t, filepath.Join(out, "mel.npy"), filepath.Join(ref, "mel80.npy"), nil, 1e-4)
				compare(t, filepath.Join(out, "encoder.npy"), filepath.Join(ref, cfg, "encoder.npy"), meta.EncoderRows, 2e-4)
				compare(t, filepath.Join(out, "logits.npy"), filepath.Join(ref, cfg, "logits.npy"), meta.LogitsRows, 2e-4)
			})
		}
	}
}

// compare checks rows of got (all rows when rows is nil) against want.
func compare(t *testing.T, gotPath, wantPath string, rows []int, tol float64) {
	t.Helper()
	got, gs, err := formats.ReadNPYFile(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := formats.ReadNPYFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	if rows != nil {
		cols := gs[len(gs)-1]
		var sel []float32
		for _, r := range rows {
			sel = append(sel, got[r*cols:(r+1)*cols]...)
		}
		got = sel
	}
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, reference %d", filepath.Base(gotPath), len(got), len(want))
	}
	var maxd float64
	for i := range got {
		d := math.Abs(float64(got[i] - want[i]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		maxd = math.Max(maxd, d)
	}
	t.Logf("%s: max abs diff %.3g (tol %g)", filepath.Base(gotPath), maxd, tol)
	if maxd > tol {
		t.Errorf("%s: max abs diff %.3g exceeds %g", filepath.Base(gotPath), maxd, tol)
	}
}
