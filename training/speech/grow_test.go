package speech

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/training/grow"
)

// TestGrowRecipeErrors: a grow block without a dense variant to start from, or beside a
// route, is refused when the recipe is read; the repository's grow recipe reads.
func TestGrowRecipeErrors(t *testing.T) {
	base := `{"name":"g","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	checkRecipeErrors(t, map[string]string{
		"dense variant to start from": base + `"grow":{"decoder_layers":4}}`,
		"and no route":                base + `"from":"v","route":"mlp:0.25","grow":{"decoder_layers":4}}`,
	})
	r, err := ReadRecipe("../../recipes/chorus-micro-grow.json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Grow == nil || r.Grow.EncoderLayers < 4 || r.Grow.DecoderLayers < 2 || r.From == "" {
		t.Fatalf("grow recipe read as %+v", r)
	}
}

// TestRunGrow runs a grow recipe on a tiny variant (1 encoder and 1 decoder layer grown to
// 2 and 3): the variant has the grown depths, and the first step's loss equals that of the
// same fine-tune of the parent (the grown model starts out computing the parent's function;
// same seed, so the same batch and augmentation) while later steps differ (the new layers
// learn). A grow that would remove layers stops the run before training.
func TestRunGrow(t *testing.T) {
	dir := t.TempDir()
	from, _ := tinyVariant(t, dir, "parent", nil)
	man := writeToneCorpus(t, dir)
	loss := func(work string) []float64 {
		f, err := os.Open(filepath.Join(work, "train.csv"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil || len(rows) < 3 {
			t.Fatalf("train.csv: %d rows, %v", len(rows), err)
		}
		col := slices.Index(rows[0], "loss")
		var out []float64
		for _, row := range rows[1:] {
			v, _ := strconv.ParseFloat(row[col], 64)
			out = append(out, v)
		}
		return out
	}
	r := tinyRecipe("grown", from, man)
	r.Optim.Steps = 3
	r.Grow = &grow.Options{EncoderLayers: 2, DecoderLayers: 3}
	work, v := runTiny(t, r, filepath.Join(dir, "grown"))
	if d := v.Model.Dims; d.NAudioLayer != 2 || d.NTextLayer != 3 {
		t.Fatalf("grown variant has %d encoder and %d decoder layers, want 2 and 3", d.NAudioLayer, d.NTextLayer)
	}
	plain := tinyRecipe("plain", from, man)
	plain.Optim.Steps = 3
	pwork, _ := runTiny(t, plain, filepath.Join(dir, "plain"))
	g, p := loss(work), loss(pwork)
	t.Logf("loss per step: grown %v, parent %v", g, p)
	if math.Abs(g[0]-p[0]) > 1e-4*math.Abs(p[0]) {
		t.Errorf("first-step loss %g grown, %g parent: the grown model does not start from the parent's function", g[0], p[0])
	}
	if g[len(g)-1] == p[len(p)-1] {
		t.Errorf("last-step loss %g equal with and without the new layers", g[len(g)-1])
	}

	r.Grow = &grow.Options{EncoderLayers: 1, DecoderLayers: 0}
	tinyVariant(t, dir, "two", func(d *whisper.Dims) { d.NAudioLayer = 2 })
	r.From = filepath.Join(dir, "two")
	if err := Run(t.Context(), r, RunOptions{Work: filepath.Join(dir, "shrink")}); err == nil {
		t.Error("growing 2 encoder layers to 1: no error")
	}
}
