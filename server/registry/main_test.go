package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
)

// leakOptions ignore the tensor kernels' helper goroutines, which start on first use and
// live for the process by design.
var leakOptions = []goleak.Option{
	goleak.IgnoreAnyFunction("github.com/chorus-asr/chorus/tensor.(*teamT).helper"),
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, leakOptions...) }

// checkLeaks fails t if a goroutine started during the test outlives it. Call it first, so
// that its cleanup runs after every other.
func checkLeaks(t *testing.T) {
	t.Helper()
	opts := append([]goleak.Option{goleak.IgnoreCurrent()}, leakOptions...)
	t.Cleanup(func() { goleak.VerifyNone(t, opts...) })
}

// embeddedVersion is the first 12 hex digits of the embedded default's weights' SHA-256 (it
// changes whenever the default model is re-embedded).
var embeddedVersion = func() string {
	sum, err := asr.FSFileSHA256(defaultmodel.FS(), "model.safetensors.zst")
	if err != nil {
		panic(err)
	}
	return sum[:12]
}()

// Fixtures read once: the embedded default's files, and its weights decompressed (a variant
// with different weight bytes, hence a different version, and the uncompressed format).
var (
	fixtureOnce  sync.Once
	defaultFiles map[string][]byte
	rawWeights   []byte
	fixtureErr   error
)

func fixtures(t *testing.T) {
	t.Helper()
	fixtureOnce.Do(func() {
		defaultFiles = map[string][]byte{}
		fixtureErr = fs.WalkDir(defaultmodel.FS(), ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(defaultmodel.FS(), p)
			defaultFiles[p] = b
			return err
		})
		if fixtureErr != nil {
			return
		}
		dec, err := zstd.NewReader(nil)
		if err != nil {
			fixtureErr = err
			return
		}
		defer dec.Close()
		rawWeights, fixtureErr = dec.DecodeAll(defaultFiles["model.safetensors.zst"], nil)
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
}

// variantOpts shape a test variant folder.
type variantOpts struct {
	serves string                         // card's "serves"; "" leaves it out
	plain  bool                           // uncompressed model.safetensors (a different version)
	golden *string                        // card's "golden_transcript"
	before func(t *testing.T, dir string) // runs before card.json is written (the card matches)
	after  func(t *testing.T, dir string) // runs after (the card no longer matches)
}

// publish writes a variant folder built from the embedded default into root/name, the way
// a publisher should: into a hidden temporary folder, renamed into place when complete.
func publish(t *testing.T, root, name string, o variantOpts) string {
	t.Helper()
	fixtures(t)
	tmp := filepath.Join(root, ".tmp-"+name)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, b := range defaultFiles {
		if n == cardFile || (o.plain && n == "model.safetensors.zst") {
			continue
		}
		writeFile(t, filepath.Join(tmp, n), b)
	}
	if o.plain {
		writeFile(t, filepath.Join(tmp, "model.safetensors"), rawWeights)
	}
	if o.before != nil {
		o.before(t, tmp)
	}
	c := map[string]any{"name": name, "parent": defaultmodel.Name}
	if o.serves != "" {
		c["serves"] = o.serves
	}
	if o.golden != nil {
		c["golden_transcript"] = *o.golden
	}
	if err := asr.WriteCard(tmp, c); err != nil {
		t.Fatal(err)
	}
	if o.after != nil {
		o.after(t, tmp)
	}
	dir := filepath.Join(root, name)
	if err := os.Rename(tmp, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// syncBuffer collects log output from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a registry under test with its logs and metrics.
type harness struct {
	r    *Registry
	logs *syncBuffer
	reg  *prometheus.Registry
}

// newHarness builds a registry from cfg (logs and metrics captured) and closes it when the
// test ends; the logs are printed if the test failed.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	cfg.Logger = slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registerer = h.reg
	cfg.Open = asr.OpenOptions{F16: true}
	if cfg.Debounce == 0 {
		cfg.Debounce = 20 * time.Millisecond
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.r = r
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
		if t.Failed() {
			t.Logf("registry log:\n%s", h.logs.String())
		}
	})
	return h
}

// warm runs the first scan, failing t if it fails.
func (h *harness) warm(t *testing.T) {
	t.Helper()
	if err := h.r.Warm(t.Context()); err != nil {
		t.Fatalf("warm: %v", err)
	}
}

// find returns the variant's newest info, or ok false when the registry no longer holds it.
func (h *harness) find(model, variant string) (VariantInfo, bool) {
	vs := h.r.Variants()
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].Model == model && vs[i].Variant == variant {
			return vs[i], true
		}
	}
	return VariantInfo{}, false
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits until model/variant is in state s; Unloaded means the registry no longer
// holds it.
func (h *harness) waitState(t *testing.T, model, variant string, s State) {
	t.Helper()
	waitFor(t, model+"/"+variant+" "+s.String(), func() bool {
		v, ok := h.find(model, variant)
		if s == Unloaded {
			return !ok
		}
		return ok && v.State == s
	})
}

// metric sums the samples of name whose labels include want.
func (h *harness) metric(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range want {
				if got[k] != v {
					match = false
				}
			}
			if !match {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Histogram != nil:
				sum += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return sum
}

// rewriteConfig edits a variant folder's config.json.
func rewriteConfig(t *testing.T, dir string, edit func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	c = maps.Clone(c)
	edit(c)
	b, err = json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, b)
}

// states lists the states in a sequence of events for one variant.
func states(evs []Event, model, variant string) []string {
	var out []string
	for _, ev := range evs {
		if ev.Info.Model == model && ev.Info.Variant == variant {
			out = append(out, ev.Info.State.String())
		}
	}
	return out
}
