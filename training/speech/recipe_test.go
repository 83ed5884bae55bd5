package speech

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
	"github.com/chorus-asr/chorus/training/data"
)

// TestRunReLUFication runs a whole recipe end to end on a tiny corpus written here: it
// fine-tunes a GELU variant From with "activation": "relu" for two steps and checks the
// variant Run writes: config activation relu, the card's parent and steps, and weights moved
// from the start.
func TestRunReLUFication(t *testing.T) {
	dir := t.TempDir()
	from, m := tinyVariant(t, dir, "gelu", func(d *whisper.Dims) { d.Activation = "gelu" })
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("relufied", from, man)
	r.Model.Activation = "relu"
	work, v := runTiny(t, r, dir)
	if v.Model.Dims.Activation != "relu" {
		t.Errorf("variant activation %q, want relu", v.Model.Dims.Activation)
	}
	b, err := os.ReadFile(filepath.Join(work, "variant", "card.json"))
	if err != nil {
		t.Fatal(err)
	}
	var card struct {
		Parent string `json:"parent"`
		Steps  int    `json:"steps"`
	}
	if err := json.Unmarshal(b, &card); err != nil || card.Parent != from || card.Steps != 2 {
		t.Errorf("card parent %q steps %d (%v), want %q and 2", card.Parent, card.Steps, err, from)
	}
	moved := false
	w0, w1 := m.Encoder.Layers[0].MLP.FC1.W.Data, v.Model.Encoder.Layers[0].MLP.FC1.W.Data
	for i := range w0 {
		moved = moved || w0[i] != w1[i]
	}
	if !moved {
		t.Error("fine-tuning did not change the weights")
	}
}

// tinyRecipe is a two-step fine-tune of the variant folder from on the manifest man.
func tinyRecipe(name, from, man string) *Recipe {
	var r Recipe
	r.Name, r.From = name, from
	r.Data.Train, r.Data.Dev = []string{man}, man
	r.Batch.Frames, r.Batch.MaxItems = 400, 2
	r.Optim.PeakLR, r.Optim.Steps, r.Optim.Schedule = 1e-3, 2, "none"
	r.Seed, r.CheckpointEvery = 1, "1h"
	return &r
}

// runTiny runs r in dir/work and opens the variant it wrote.
func runTiny(t *testing.T, r *Recipe, dir string) (string, *asr.Variant) {
	t.Helper()
	work := filepath.Join(dir, "work")
	if err := Run(t.Context(), r, RunOptions{Work: work}); err != nil {
		t.Fatal(err)
	}
	v, err := asr.Open(filepath.Join(work, "variant"), asr.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return work, v
}

// checkRecipeErrors writes each case's recipe body and wants ReadRecipe to refuse it with
// an error naming the case.
func checkRecipeErrors(t *testing.T, cases map[string]string) {
	t.Helper()
	for name, body := range cases {
		p := filepath.Join(t.TempDir(), "r.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadRecipe(p)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v, want one naming %q", err, name)
		}
	}
}

// tinyVariant saves a seeded random model of width 32 over the test tokenizer's vocabulary
// (one encoder and one decoder layer, ReLU, before edit changes any of it) as the variant
// folder dir/name, and returns the folder and the model.
func tinyVariant(t *testing.T, dir, name string, edit func(*whisper.Dims)) (string, *whisper.Model) {
	t.Helper()
	tok, err := tokenizer.Load("../../asr/tokenizer/testdata/trained-en")
	if err != nil {
		t.Fatal(err)
	}
	d := whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 32, NAudioHead: 2, NAudioLayer: 1,
		NVocab: tok.Size(), NTextCtx: 32, NTextState: 32, NTextHead: 2, NTextLayer: 1, Activation: "relu"}
	if edit != nil {
		edit(&d)
	}
	m, err := whisper.NewRandom(d, 5, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := asr.Save(path, m, asr.ConfigFromDims(d), tok, asr.SaveOptions{}); err != nil {
		t.Fatal(err)
	}
	return path, m
}

// writeToneCorpus writes four one-second clips of tones with made-up transcripts and their
// manifest under dir, and returns the manifest's path.
func writeToneCorpus(t *testing.T, dir string) string {
	t.Helper()
	// Four one-second clips of tones with made-up transcripts.
	var entries []data.Entry
	for i := range 4 {
		x := make([]float32, 16000)
		for j := range x {
			x[j] = float32(0.3 * math.Sin(2*math.Pi*float64(200+100*i)*float64(j)/16000))
		}
		name := filepath.Join("clips", string(rune('a'+i))+".wav")
		if err := os.MkdirAll(filepath.Join(dir, "clips"), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := audio.WriteWAV(f, x, 16000, 1, audio.PCM16); err != nil {
			t.Fatal(err)
		}
		f.Close()
		entries = append(entries, data.Entry{AudioFilepath: name, Duration: 1, Text: []string{"one", "two", "three", "four"}[i]})
	}
	man := filepath.Join(dir, "train.jsonl")
	if err := data.WriteManifest(man, entries); err != nil {
		t.Fatal(err)
	}
	return man
}

// TestRunFineTunePruned: fine-tuning a variant with per-layer sizes (a materialised pruned
// model) writes a variant that keeps them — its config's chorus block — and reopens with
// the same layer shapes.
func TestRunFineTunePruned(t *testing.T) {
	dir := t.TempDir()
	from, _ := tinyVariant(t, dir, "pruned", func(d *whisper.Dims) {
		d.NAudioLayer = 2
		d.EncoderSizes = []whisper.EncoderLayerSize{{Heads: 1, FFN: 48}, {Heads: 2, FFN: 16}}
	})
	man := writeToneCorpus(t, dir)
	_, v := runTiny(t, tinyRecipe("pruned-ft", from, man), dir)
	got := v.Model.Dims
	if got.EncoderHeads(0) != 1 || got.EncoderUnits(0) != 48 || got.EncoderHeads(1) != 2 || got.EncoderUnits(1) != 16 {
		t.Errorf("fine-tuned variant lost its per-layer sizes: %+v", got.EncoderSizes)
	}
}

// TestCTCHeadCarried: a trained variant keeps its CTC head (covered by the card's
// checksums), and a fine-tune from it starts from that head rather than a fresh one — with a
// negligible learning rate the head it writes is the one it read, where a fresh head would
// differ everywhere. A head that does not fit the model is refused.
func TestCTCHeadCarried(t *testing.T) {
	dir := t.TempDir()
	base, _ := tinyVariant(t, dir, "base", nil)
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("first", base, man)
	r.Objective.CTCWeight = 0.3
	r.Seed = 7 // a fresh head of the second run (seed 1) differs from this run's everywhere
	work, v1 := runTiny(t, r, dir)
	h1 := v1.CTC
	if h1 == nil {
		t.Fatal("the variant has no CTC head")
	}
	card, err := os.ReadFile(filepath.Join(work, "variant", "card.json"))
	if err != nil || !strings.Contains(string(card), asr.CTCHeadFile) {
		t.Errorf("card.json does not list %s (%v)", asr.CTCHeadFile, err)
	}
	if none, err := asr.Open(base, asr.OpenOptions{}); err != nil || none.CTC != nil {
		t.Errorf("variant without a head: %v, %v", none.CTC, err)
	}
	// Without a CTC loss and without a head to start from, no head is written: a fresh
	// random one would mislead joint decoding.
	r0 := tinyRecipe("no-ctc", base, man)
	r0.Objective.CTCWeight = 0
	if _, v0 := runTiny(t, r0, t.TempDir()); v0.CTC != nil {
		t.Error("a run without CTC loss or starting head wrote a CTC head")
	}

	first := filepath.Join(dir, "first")
	if err := os.Rename(filepath.Join(work, "variant"), first); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(work)
	r2 := tinyRecipe("second", first, man)
	r2.Objective.CTCWeight = 0.3
	r2.Optim.PeakLR = 1e-12
	_, v2 := runTiny(t, r2, dir)
	h2 := v2.CTC
	if h2 == nil {
		t.Fatal("the second variant has no CTC head")
	}
	var worst float32
	for i, w := range h1.W.Data {
		worst = max(worst, float32(math.Abs(float64(w-h2.W.Data[i]))))
	}
	if worst > 1e-4 {
		t.Errorf("fine-tune did not start from the stored head: max |Δw| %g", worst)
	}

	bad := &asr.CTCHead{W: h1.W, B: h1.B}
	bad.W = bad.W.Clone()
	bad.W.Shape = []int{h1.W.Shape[0] * 2, h1.W.Shape[1] / 2}
	if err := bad.Fits(h1.W.Shape[0]-1, h1.W.Shape[1]); err == nil {
		t.Error("a head of the wrong shape fits")
	}
}

// TestRunAverage: `chorus train --average 2` writes variant-avg whose weights are the mean of
// the run's two checkpoints (here the variants of steps 2 and 4, stored in float16) and whose
// card names them; pruning runs refuse it.
func TestRunAverage(t *testing.T) {
	dir := t.TempDir()
	from, _ := tinyVariant(t, dir, "relu", nil)
	man := writeToneCorpus(t, dir)
	r := tinyRecipe("averaged", from, man)
	work := filepath.Join(dir, "work")
	open := func(name string) *asr.Variant {
		t.Helper()
		v, err := asr.Open(filepath.Join(work, name), asr.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if err := Run(t.Context(), r, RunOptions{Work: work, KeepCheckpoints: 3}); err != nil {
		t.Fatal(err)
	}
	w2 := open("variant").Model.Encoder.Layers[0].MLP.FC1.W.Data
	if err := Run(t.Context(), r, RunOptions{Work: work, Resume: true, Steps: 4, KeepCheckpoints: 3}); err != nil {
		t.Fatal(err)
	}
	w4 := open("variant").Model.Encoder.Layers[0].MLP.FC1.W.Data
	if err := Run(t.Context(), r, RunOptions{Work: work, Average: 2}); err != nil {
		t.Fatal(err)
	}
	avg := open(averagedVariant)
	var worst, moved float64
	for i, w := range avg.Model.Encoder.Layers[0].MLP.FC1.W.Data {
		mean := (float64(w2[i]) + float64(w4[i])) / 2
		worst = max(worst, math.Abs(float64(w)-mean)/(math.Abs(mean)+1e-3))
		moved = max(moved, math.Abs(float64(w2[i]-w4[i])))
	}
	if moved == 0 {
		t.Fatal("steps 3 and 4 did not change the weights: nothing to average")
	}
	if worst > 2e-3 { // float16 storage of all three
		t.Errorf("averaged weight off the mean of steps 2 and 4 by %g (relative)", worst)
	}
	b, err := os.ReadFile(filepath.Join(work, averagedVariant, "card.json"))
	if err != nil {
		t.Fatal(err)
	}
	var card Card
	if err := json.Unmarshal(b, &card); err != nil || len(card.AveragedSteps) != 2 || card.AveragedSteps[0] != 4 || card.AveragedSteps[1] != 2 {
		t.Errorf("card averaged_steps %v (%v), want [4 2]", card.AveragedSteps, err)
	}
	var pr Recipe
	pr.Kind = "prune"
	if err := Run(t.Context(), &pr, RunOptions{Work: t.TempDir(), Average: 2}); err == nil || !strings.Contains(err.Error(), "--average") {
		t.Errorf("prune with --average: %v", err)
	}
}
