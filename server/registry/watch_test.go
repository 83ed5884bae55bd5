package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/server"
)

// run starts r.Run and stops it when the test ends (before the registry closes and the
// leak check runs).
func (h *harness) run(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := h.r.Run(ctx); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// TestFolderAppearance: with Run watching the directory, a variant folder renamed into place
// is loaded and promoted (publishing hot-swaps) and the variant it replaced unloads; a folder
// written in place is ignored until its card.json lands, then loaded; hidden temporary
// folders are never loaded.
func TestFolderAppearance(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	h := newHarness(t, Config{Dir: dir})
	h.run(t)
	first, err := h.r.Acquire(t.Context(), "") // waits for Run's first scan
	if err != nil {
		t.Fatal(err)
	}
	first.Release()
	h.waitState(t, defaultmodel.Name, "micro-a", Live)

	publish(t, dir, "micro-b", variantOpts{serves: defaultmodel.Name, plain: true})
	h.waitState(t, defaultmodel.Name, "micro-b", Live)
	h.waitState(t, defaultmodel.Name, "micro-a", Unloaded)
	l, err := h.r.Acquire(t.Context(), "")
	if err != nil || l.Model.Variant != "micro-b" {
		t.Fatalf("after publishing micro-b: %+v, %v", l.Model, err)
	}
	l.Release()

	// Written in place: a folder without card.json is incomplete.
	c := filepath.Join(dir, "micro-c")
	if err := os.Mkdir(c, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range defaultFiles {
		if name != cardFile {
			writeFile(t, filepath.Join(c, name), b)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, ".micro-d.tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // many debounce periods
	for _, v := range h.r.Variants() {
		if v.Variant != "micro-b" {
			t.Fatalf("incomplete or hidden folder loaded: %+v", v)
		}
	}
	if err := asr.WriteCard(c, map[string]any{"name": "micro-c", "serves": defaultmodel.Name}); err != nil {
		t.Fatal(err)
	}
	h.waitState(t, defaultmodel.Name, "micro-c", Live)
	h.waitState(t, defaultmodel.Name, "micro-b", Unloaded)
	if n := h.metric(t, "chorus_model_reloads_total", map[string]string{"trigger": "fsnotify", "result": "success"}); n < 2 {
		t.Errorf("fsnotify reloads counted %v, want at least 2", n)
	}
}

// TestRescanOnHangup: SIGHUP rescans a store that is not watched: new folders load and go
// live under the model their card serves (else their folder name), removed folders are
// retired unless their variant is live, and a folder that failed is not retried until it
// is republished.
func TestRescanOnHangup(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	hup := make(chan os.Signal)
	h := newHarness(t, Config{Store: DirStore{Dir: dir}, Hangup: hup})
	h.warm(t)
	h.run(t)
	b := publish(t, dir, "micro-b", variantOpts{serves: defaultmodel.Name})
	if _, err := h.r.Load(t.Context(), "micro-b", "", false); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{b, filepath.Join(dir, "micro-a")} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	publish(t, dir, "micro-c", variantOpts{serves: "other"})
	publish(t, dir, "micro-d", variantOpts{})
	publish(t, dir, "micro-e", variantOpts{serves: "broken", after: func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, "merges.txt")); err != nil {
			t.Fatal(err)
		}
	}})
	hup <- os.Interrupt // any value: the channel is what signal.Notify fills

	h.waitState(t, "other", "micro-c", Live)
	h.waitState(t, "micro-d", "micro-d", Live)
	h.waitState(t, defaultmodel.Name, "micro-b", Unloaded)
	if v, _ := h.find("broken", "micro-e"); v.State != Failed {
		t.Errorf("micro-e: %+v, want FAILED", v)
	}
	if v, _ := h.find(defaultmodel.Name, "micro-a"); v.State != Live {
		t.Errorf("micro-a, live but removed from the store: %+v, want still LIVE", v)
	}
	for model, variant := range map[string]string{"": "micro-a", "other": "micro-c", "micro-d": "micro-d"} {
		l, err := h.r.Acquire(t.Context(), model)
		if err != nil || l.Model.Variant != variant {
			t.Errorf("Acquire(%q): %+v, %v; want %s", model, l.Model, err, variant)
			continue
		}
		l.Release()
	}
	if _, err := h.r.Acquire(t.Context(), "broken"); err == nil {
		t.Error("a model whose only variant failed serves")
	}

	// A second SIGHUP with nothing republished loads nothing: micro-e is not retried.
	loads := h.metric(t, "chorus_model_loads_total", nil)
	hup <- os.Interrupt
	waitFor(t, "second rescan", func() bool {
		return h.metric(t, "chorus_model_reloads_total", map[string]string{"trigger": "sighup"}) == 2
	})
	if n := h.metric(t, "chorus_model_loads_total", nil); n != loads {
		t.Errorf("rescan with no changes loaded %v variants", n-loads)
	}
	if _, err := h.r.Acquire(t.Context(), "micro-x"); !errors.Is(err, server.ErrModelNotFound) {
		t.Errorf("unknown model: %v", err)
	}
}
