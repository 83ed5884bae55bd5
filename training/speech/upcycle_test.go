package speech

import (
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	_ "github.com/chorus-asr/chorus/experts/moe" // serves the upcycled variant
)

// TestUpcycleRecipeErrors: an upcycle block without a dense variant to start from, or with
// impossible expert counts, is refused when the recipe is read; the repository's upcycle
// recipe reads.
func TestUpcycleRecipeErrors(t *testing.T) {
	base := `{"name":"u","data":{"train":["x.jsonl"]},"optim":{"steps":10,"peak_lr":1e-4},`
	cases := map[string]string{
		"dense variant to start from": base + `"upcycle":{"experts":4,"top_k":1}}`,
		"at least 2 experts":          base + `"from":"v","upcycle":{"experts":1,"top_k":1}}`,
		"top-k in 1…experts":          base + `"from":"v","upcycle":{"experts":4,"top_k":5}}`,
		"negative gate scale":         base + `"from":"v","upcycle":{"experts":4,"top_k":1,"gate_scale":-1}}`,
	}
	checkRecipeErrors(t, cases)
	r, err := ReadRecipe("../../recipes/chorus-micro-upcycle.json")
	if err != nil {
		t.Fatal(err)
	}
	if r.Upcycle == nil || r.Upcycle.Experts < 2 || r.From == "" {
		t.Fatalf("upcycle recipe read as %+v", r)
	}
}

// TestRunUpcycle runs an upcycle recipe end to end on a tiny ReLU variant: the result is a
// gated variant (E copies behind a gate) that opens with its expert side, its gates moved
// in training, and the load-balancing term is logged beside the loss.
func TestRunUpcycle(t *testing.T) {
	dir := t.TempDir()
	from, _ := tinyVariant(t, dir, "dense", func(d *whisper.Dims) { d.EncoderFFN, d.DecoderFFN = 64, 64 })
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("upcycled", from, man)
	r.Upcycle = &UpcycleRecipe{Experts: 4, TopK: 2}
	r.Optim.PeakLR, r.Optim.Steps = 1e-2, 3
	work, v := runTiny(t, r, dir)
	got := v.Model.Dims
	if got.GatedExperts != 4 || got.GateTopK != 2 || got.EncoderUnits(0) != 4*64 || v.Experts == nil {
		t.Fatalf("variant dims %+v, experts %v: want 4 gated experts of 64 units, top-2, served through experts", got, v.Experts)
	}
	// The gate started from the seeded draw: training moved it.
	u, err := whisper.NewRandom(got, 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g0, g1 := u.Encoder.Layers[0].MLP.Gate.W.Data, v.Model.Encoder.Layers[0].MLP.Gate.Weight()
	moved := false
	for i := range g1 {
		moved = moved || g1[i] != 0.1*g0[i]
	}
	if !moved {
		t.Error("training did not change the gate")
	}
	f, err := os.Open(filepath.Join(work, "train.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) < 4 {
		t.Fatalf("train.csv: %d rows, %v", len(rows), err)
	}
	if !slices.Contains(rows[0], "balance") {
		t.Errorf("train.csv columns %v: no balance", rows[0])
	}
	res, err := v.Transcribe(t.Context(), make([]float32, 16000), transcribe.DefaultOptions())
	if err != nil || res == nil {
		t.Fatalf("transcribe with the upcycled variant: %v", err)
	}
}
