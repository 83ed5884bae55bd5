package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/training/speech"
)

// TestTrainingPublishGoesLive: the training side's publish step (speech.Publish, what
// `chorus train --publish DIR` runs at the end of a job) writes into a watched models
// directory so that the registry promotes the variant — the hot-swap — and republishing
// under the same name swaps again, with no half-written folder ever loaded.
func TestTrainingPublishGoesLive(t *testing.T) {
	checkLeaks(t)
	fixtures(t)
	models := t.TempDir()
	publish(t, models, "micro-a", variantOpts{serves: defaultmodel.Name})
	h := newHarness(t, Config{Dir: models})
	h.run(t)
	first, err := h.r.Acquire(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	first.Release()
	h.waitState(t, defaultmodel.Name, "micro-a", Live)

	// A finished training job's variant folder, outside the models directory.
	src := filepath.Join(t.TempDir(), "variant")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range defaultFiles {
		if name != cardFile {
			writeFile(t, filepath.Join(src, name), b)
		}
	}
	if err := asr.WriteCard(src, map[string]any{"name": "micro-pruned", "serves": defaultmodel.Name}); err != nil {
		t.Fatal(err)
	}
	dst, err := speech.Publish(src, models, "micro-pruned")
	if err != nil {
		t.Fatal(err)
	}
	h.waitState(t, defaultmodel.Name, "micro-pruned", Live)
	l, err := h.r.Acquire(t.Context(), "")
	if err != nil || l.Model.Variant != "micro-pruned" {
		t.Fatalf("after publishing: %+v, %v", l.Model, err)
	}
	l.Release()

	// Republishing replaces the folder in place (a changed card: a new version).
	if err := asr.WriteCard(src, map[string]any{"name": "micro-pruned", "serves": defaultmodel.Name, "steps": 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := speech.Publish(src, models, "micro-pruned"); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(models)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "micro-a" && e.Name() != "micro-pruned" {
			t.Errorf("publish left %q behind", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "card.json")); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, defaultmodel.Name, "micro-pruned", Live)
	if _, err := speech.Publish(filepath.Join(t.TempDir(), "empty"), models, "x"); err == nil {
		t.Error("a folder without card.json was published")
	}
}
