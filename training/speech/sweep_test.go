package speech

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/training/data"
)

// TestSweep runs the WER-against-sparsity sweep end to end on a tiny teacher: every method
// gives a variant at each target with about that sparsity, the teacher row comes first, the
// CSV and the plot are written, and a second sweep over the same folder reuses the finished
// variants instead of training again.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	r, man := tinyPruneRecipe(t, dir, "sweep", 0.5, 0.1)
	dev, err := data.ReadManifest(man, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(dir, "sweep")
	o := SweepOptions{Recipe: r, Targets: []float64{0.3, 0.6}, Work: work, Dev: dev, BenchRuns: 1,
		Methods: []string{SweepMagnitude, SweepMagnitudeFT, SweepCoFi, SweepCoFiNoDistill, SweepCoFiEntropy, SweepCoFiKL}}
	rows, err := Sweep(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+6*2 || rows[0].Method != "teacher" || rows[0].Sparsity != 0 {
		t.Fatalf("rows %+v: want the teacher then 6 methods × 2 targets", rows)
	}
	magnitude := map[float64]SweepRow{}
	for _, row := range rows[1:] {
		if row.Params >= rows[0].Params || row.EncoderMS <= 0 || row.Variant == "" {
			t.Errorf("%s at %g: %d params (teacher %d), encoder %g ms", row.Method, row.Target, row.Params, rows[0].Params, row.EncoderMS)
		}
		switch row.Method {
		case SweepMagnitude:
			if row.Sparsity < row.Target-0.05 || row.Sparsity > row.Target+0.15 {
				t.Errorf("magnitude at %g: achieved %g", row.Target, row.Sparsity)
			}
			magnitude[row.Target] = row
		case SweepMagnitudeFT:
			// The same structures as the magnitude row, then trained: same size, other weights.
			m := magnitude[row.Target]
			if row.Sparsity != m.Sparsity || row.Params != m.Params {
				t.Errorf("magnitude-ft at %g: sparsity %g, %d params; magnitude %g, %d", row.Target, row.Sparsity, row.Params, m.Sparsity, m.Params)
			}
			weights := func(dir string) ([]byte, error) {
				names, _ := filepath.Glob(filepath.Join(dir, "model.safetensors*"))
				if len(names) != 1 {
					return nil, fmt.Errorf("%s: weights %v", dir, names)
				}
				return os.ReadFile(names[0])
			}
			pruned, err := weights(filepath.Join(work, fmt.Sprintf("magnitude-ft-%02.0f", 100*row.Target), "pruned"))
			tuned, err2 := weights(row.Variant)
			if err != nil || err2 != nil || bytes.Equal(pruned, tuned) {
				t.Errorf("magnitude-ft at %g: fine-tuned weights equal the pruned ones or unreadable (%v, %v)", row.Target, err, err2)
			}
		}
		if row.Method != SweepMagnitude && row.Method != SweepMagnitudeFT && len(row.Layers) != 3 {
			t.Errorf("%s at %g: per-layer sparsity %v, want 3 layers", row.Method, row.Target, row.Layers)
		}
	}
	csvPath, png := filepath.Join(work, "sweep.csv"), filepath.Join(work, "sweep.png")
	if err := WriteSweep(rows, csvPath, png); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(recs) != len(rows)+1 {
		t.Fatalf("sweep.csv: %d records (%v), want a header and %d rows", len(recs), err, len(rows))
	}
	for _, p := range []string{png, filepath.Join(work, "sweep-layers-30.png"), filepath.Join(work, "sweep-layers-60.png")} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Fatalf("%s: %v", p, err)
		}
	}
	// Again over the same folder: finished runs are reused, not retrained.
	before, _ := os.Stat(filepath.Join(work, "cofi-30", "variant", "card.json"))
	again, err := Sweep(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(filepath.Join(work, "cofi-30", "variant", "card.json"))
	if len(again) != len(rows) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("second sweep: %d rows; cofi-30 variant rewritten (%v → %v)", len(again), before.ModTime(), after.ModTime())
	}
	for _, bad := range []SweepOptions{{Recipe: r, Targets: []float64{1}, Work: work, Dev: dev}, {Recipe: r, Targets: []float64{0.5}, Methods: []string{"random"}, Work: work, Dev: dev}, {Recipe: tinyRecipe("x", "", man), Targets: []float64{0.5}, Work: work, Dev: dev}} {
		if _, err := Sweep(t.Context(), bad); err == nil {
			t.Errorf("sweep %+v: no error", bad)
		}
	}
}

// tinyPruneRecipe writes a tiny teacher (two encoder layers, FFNs 128 wide) and the tone
// corpus into dir, and returns a prune recipe towards target with gate and λ learning rates
// lr, distilling logits from the teacher, and the corpus manifest.
func tinyPruneRecipe(t *testing.T, dir, name string, target, lr float64) (*Recipe, string) {
	t.Helper()
	teacher, _ := tinyVariant(t, dir, "teacher", func(d *whisper.Dims) { d.NAudioLayer, d.EncoderFFN, d.DecoderFFN = 2, 128, 128 })
	man := writeToneCorpus(t, dir)
	r := tinyRecipe(name, "", man)
	r.Kind, r.Teacher = "prune", teacher
	r.Prune = &PruneRecipe{Target: target, GateLR: lr, LambdaLR: lr, TaskWeight: 0.5}
	r.Prune.Distill.Temperature, r.Prune.Distill.Logit = 2, 0.5
	return r, man
}

// TestSweepRunName: runs of a regulariser at a weight other than the default live in their
// own folders, so a sweep at another weight never reuses the default one's variant.
func TestSweepRunName(t *testing.T) {
	for _, c := range []struct {
		m    string
		o    SweepOptions
		want string
	}{
		{SweepCoFi, SweepOptions{Entropy: 5}, "cofi-50"},
		{SweepCoFiEntropy, SweepOptions{}, "cofi-entropy-50"},
		{SweepCoFiEntropy, SweepOptions{Entropy: 0.5}, "cofi-entropy-50"},
		{SweepCoFiEntropy, SweepOptions{Entropy: 5}, "cofi-entropy-w5-50"},
		{SweepCoFiKL, SweepOptions{Entropy: 5, KL: 2.5}, "cofi-kl-w2.5-50"},
		{SweepMagnitudeFT, SweepOptions{KL: 2}, "magnitude-ft-50"},
	} {
		if got := sweepRunName(c.m, 0.5, c.o); got != c.want {
			t.Errorf("%s %+v: %q, want %q", c.m, c.o, got, c.want)
		}
	}
}

// TestWERSeries: each method's line starts at the teacher and runs through its rows by
// increasing sparsity whatever order the targets ran in, methods in their first-seen order.
func TestWERSeries(t *testing.T) {
	rows := []SweepRow{
		{Method: "teacher", WER: 0.1},
		{Method: "cofi", Sparsity: 0.51, WER: 0.14},
		{Method: "magnitude", Sparsity: 0.5, WER: 0.8},
		{Method: "cofi", Sparsity: 0.29, WER: 0.12},
		{Method: "magnitude", Sparsity: 0.31, WER: 0.3},
		{Method: "cofi", Sparsity: 0.74, WER: 0.38},
	}
	got := werSeries(rows)
	want := []struct {
		name string
		x, y []float64
	}{
		{"cofi", []float64{0, 29, 51, 74}, []float64{10, 12, 14, 38}},
		{"magnitude", []float64{0, 31, 50}, []float64{10, 30, 80}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d series, want %d", len(got), len(want))
	}
	near := func(a, b []float64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-9 {
				return false
			}
		}
		return true
	}
	for i, w := range want {
		if got[i].Name != w.name || !near(got[i].X, w.x) || !near(got[i].Y, w.y) {
			t.Errorf("series %d: %s %v %v, want %s %v %v", i, got[i].Name, got[i].X, got[i].Y, w.name, w.x, w.y)
		}
	}
}
