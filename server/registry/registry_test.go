package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/server"
)

// The registry is the server's Models and Warmer.
var (
	_ server.Models = (*Registry)(nil)
	_ server.Warmer = (*Registry)(nil)
)

func TestStateValuesMatchAPI(t *testing.T) {
	// toPB converts by value: the registry's states must keep the API's numbers.
	for s, want := range map[State]string{Loading: "LOADING", Standby: "STANDBY", Live: "LIVE",
		Draining: "DRAINING", Unloaded: "UNLOADED", Failed: "FAILED"} {
		if got := toPB(VariantInfo{State: s}).GetState().String(); got != want {
			t.Errorf("State %d is %s in the API, want %s", s, got, want)
		}
	}
}

// TestEmbeddedDefault: with no usable models directory the embedded chorus-micro serves the
// default model, with its source and version; unknown names are ErrModelNotFound.
func TestEmbeddedDefault(t *testing.T) {
	tests := []struct {
		name       string
		dir        func(t *testing.T) string
		noEmbedded bool
		wantErr    error
	}{
		{name: "no directory", dir: func(*testing.T) string { return "" }},
		{name: "absent directory", dir: func(t *testing.T) string { return filepath.Join(t.TempDir(), "models") }},
		{name: "empty directory", dir: func(t *testing.T) string { return t.TempDir() }},
		{name: "embedded turned off", dir: func(t *testing.T) string { return t.TempDir() }, noEmbedded: true,
			wantErr: server.ErrModelNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			h := newHarness(t, Config{Dir: tt.dir(t), NoEmbedded: tt.noEmbedded})
			err := h.r.Warm(t.Context())
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("Warm: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if _, err := h.r.Acquire(t.Context(), ""); !errors.Is(err, server.ErrModelNotFound) {
					t.Errorf("Acquire with nothing live: %v, want ErrModelNotFound", err)
				}
				return
			}
			want := server.ModelInfo{Name: defaultmodel.Name, Variant: defaultmodel.Name,
				Version: embeddedVersion, Source: "embedded:chorus-micro"}
			list := h.r.List()
			if len(list) != 1 {
				t.Fatalf("List: %+v, want one model", list)
			}
			got := list[0]
			got.Loaded = time.Time{}
			if got != want {
				t.Errorf("List: %+v, want %+v", got, want)
			}
			for _, name := range []string{"", defaultmodel.Name} {
				l, err := h.r.Acquire(t.Context(), name)
				if err != nil {
					t.Fatalf("Acquire(%q): %v", name, err)
				}
				if l.Variant == nil || l.Model.Name != defaultmodel.Name || l.Model.Version != embeddedVersion {
					t.Errorf("Acquire(%q): %+v", name, l.Model)
				}
				l.Release()
			}
			if _, err := h.r.Acquire(t.Context(), "nope"); !errors.Is(err, server.ErrModelNotFound) {
				t.Errorf("Acquire(nope): %v, want ErrModelNotFound", err)
			}
			if v, _ := h.find(defaultmodel.Name, defaultmodel.Name); v.Parameters <= 0 || !v.Default {
				t.Errorf("variant info %+v: want parameters counted and default set", v)
			}
		})
	}
}

// TestLoadBesidePromoteDrain: a variant loaded beside the live one does not serve until
// promoted; after Promote new Acquires get it while a lease taken before stays on the old
// variant, which drains, keeps its weights while leased and is unloaded after the last
// release, and not before. A second release changes nothing.
func TestLoadBesidePromoteDrain(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	h := newHarness(t, Config{Dir: dir})
	h.warm(t)
	ctx := t.Context()

	old, err := h.r.Acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if old.Model.Variant != "micro-a" || old.Model.Version != embeddedVersion {
		t.Fatalf("first lease on %+v, want micro-a", old.Model)
	}
	oldEntry := h.entryOf(t, old)

	// Published after the first scan and loaded by hand (no watcher runs): stays on standby.
	publish(t, dir, "micro-b", variantOpts{serves: defaultmodel.Name, plain: true})
	b, err := h.r.Load(ctx, "micro-b", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if b.State != Standby || b.Model != defaultmodel.Name || b.Version == embeddedVersion || b.Version == "" {
		t.Fatalf("loaded %+v: want standby chorus-micro with the uncompressed weights' version", b)
	}
	l, err := h.r.Acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Model.Variant != "micro-a" {
		t.Errorf("standby variant served before promotion: %+v", l.Model)
	}
	l.Release()
	pin, err := h.r.AcquireVariant(ctx, "", "micro-b")
	if err != nil || pin.Model.Variant != "micro-b" {
		t.Fatalf("pin standby micro-b: %+v, %v", pin.Model, err)
	}
	pin.Release()

	cur, prev, err := h.r.Promote(ctx, "", "micro-b")
	if err != nil {
		t.Fatal(err)
	}
	if cur.State != Live || prev.Variant != "micro-a" || prev.State != Draining || prev.Active != 1 {
		t.Fatalf("promote: cur %+v prev %+v", cur, prev)
	}
	l, err = h.r.Acquire(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if l.Model.Variant != "micro-b" || l.Model.Version != b.Version {
		t.Errorf("after promotion Acquire got %+v, want micro-b", l.Model)
	}
	defer l.Release()

	// The old lease still works on the old weights, and the old entry waits for it.
	samples, err := goldenSamples()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := golden(ctx, old.Variant, samples, nil); err != nil {
		t.Fatalf("transcribe on the drained variant's lease: %v", err)
	}
	time.Sleep(50 * time.Millisecond) // room for a wrong background unload to happen
	if v, ok := h.find(defaultmodel.Name, "micro-a"); !ok || v.State != Draining || v.Active != 1 {
		t.Fatalf("micro-a with a lease held: %+v (held: %v), want DRAINING with 1 lease", v, ok)
	}
	h.r.mu.Lock()
	weights := oldEntry.v != nil
	h.r.mu.Unlock()
	if !weights {
		t.Fatal("micro-a's weights dropped while a lease holds them")
	}
	if n := h.metric(t, "chorus_model_active_leases", map[string]string{"variant": "micro-a", "state": "DRAINING"}); n != 1 {
		t.Errorf("chorus_model_active_leases{micro-a} = %v, want 1", n)
	}
	if _, err := h.r.AcquireVariant(ctx, "", "micro-a"); !errors.Is(err, server.ErrModelClosing) {
		t.Errorf("pin draining micro-a: %v, want ErrModelClosing", err)
	}

	old.Release()
	h.waitState(t, defaultmodel.Name, "micro-a", Unloaded)
	h.r.mu.Lock()
	state, weights := oldEntry.state, oldEntry.v != nil
	h.r.mu.Unlock()
	if state != Unloaded || weights {
		t.Errorf("micro-a after its last release: %s, weights held %v", state, weights)
	}

	old.Release() // harmless: must not touch micro-b's count
	if v, _ := h.find(defaultmodel.Name, "micro-b"); v.Active != 1 {
		t.Errorf("micro-b holds %d leases after a double release elsewhere, want 1", v.Active)
	}
	if n := h.metric(t, "chorus_model_lease_double_releases_total", nil); n != 1 {
		t.Errorf("double releases counted %v, want 1", n)
	}
	if n := h.metric(t, "chorus_model_live_info", map[string]string{"model": defaultmodel.Name, "variant": "micro-b", "version": b.Version}); n != 1 {
		t.Errorf("chorus_model_live_info for micro-b = %v, want 1", n)
	}
	if n := h.metric(t, "chorus_model_loads_total", map[string]string{"result": "success"}); n != 2 {
		t.Errorf("successful loads %v, want 2", n)
	}
	if n := h.metric(t, "chorus_model_load_duration_seconds", map[string]string{"step": "validate"}); n != 2 {
		t.Errorf("validate steps timed %v, want 2", n)
	}
}

// entryOf finds the registry entry behind a lease (by its variant pointer).
func (h *harness) entryOf(t *testing.T, l server.Lease) *entry {
	t.Helper()
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	for _, e := range h.r.entries {
		if e.v == l.Variant {
			return e
		}
	}
	t.Fatalf("no entry holds the lease's variant %+v", l.Model)
	return nil
}

// TestCorruptVariantRefused: corrupt and unusable variants fail the step that catches them,
// end FAILED with the error (log line, failure metric), and the live variant keeps
// serving; a card's golden transcript is enforced both ways.
func TestCorruptVariantRefused(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	h := newHarness(t, Config{Dir: dir})
	h.warm(t)

	// The transcript chorus-micro gives the golden clip, for a card that pins it.
	v, err := defaultmodel.Open(asr.OpenOptions{F16: true})
	if err != nil {
		t.Fatal(err)
	}
	samples, err := goldenSamples()
	if err != nil {
		t.Fatal(err)
	}
	text, err := golden(t.Context(), v, samples, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrong := text + " and something else"

	tests := []struct {
		name    string
		opts    variantOpts
		wantErr string // in the error and the FAILED entry; "" means the load succeeds
	}{
		{name: "flipped byte in the weights", wantErr: "verify: invalid variant: model.safetensors.zst: sha256",
			opts: variantOpts{after: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors.zst")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				b[len(b)/2] ^= 0x40
				writeFile(t, p, b)
			}}},
		{name: "listed file missing", wantErr: "verify: invalid variant: vocab.json",
			opts: variantOpts{after: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "vocab.json")); err != nil {
					t.Fatal(err)
				}
			}}},
		{name: "truncated weights, matching card", wantErr: "open: invalid variant",
			opts: variantOpts{before: func(t *testing.T, dir string) {
				p := filepath.Join(dir, "model.safetensors.zst")
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				writeFile(t, p, b[:len(b)/2])
			}}},
		{name: "no weights", wantErr: "verify: invalid variant: no model.safetensors",
			opts: variantOpts{before: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "model.safetensors.zst")); err != nil {
					t.Fatal(err)
				}
			}}},
		{name: "insane config", wantErr: "open: invalid variant",
			opts: variantOpts{before: func(t *testing.T, dir string) {
				rewriteConfig(t, dir, func(c map[string]any) { c["d_model"] = 0 })
			}}},
		{name: "no tokenizer", wantErr: "validate: invalid variant",
			opts: variantOpts{before: func(t *testing.T, dir string) {
				for _, f := range []string{"vocab.json", "merges.txt"} {
					if err := os.Remove(filepath.Join(dir, f)); err != nil {
						t.Fatal(err)
					}
				}
			}}},
		{name: "golden transcript differs", wantErr: "validate: invalid variant: golden clip: transcript",
			opts: variantOpts{golden: &wrong}},
		{name: "golden transcript matches", opts: variantOpts{golden: &text}},
	}
	failures := 0.0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "micro-x" + string(rune('a'+i))
			tt.opts.serves = defaultmodel.Name
			publish(t, dir, name, tt.opts)
			info, err := h.r.Load(t.Context(), name, "", false)
			if tt.wantErr == "" {
				if err != nil || info.State != Standby {
					t.Fatalf("Load: %+v, %v; want standby", info, err)
				}
				return
			}
			failures++
			if !errors.Is(err, ErrInvalidVariant) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: %v; want ErrInvalidVariant with %q", err, tt.wantErr)
			}
			got, ok := h.find(defaultmodel.Name, name)
			if !ok || got.State != Failed || !strings.Contains(got.Err, tt.wantErr) {
				t.Errorf("after the failed load: %+v", got)
			}
			l, err := h.r.Acquire(t.Context(), "")
			if err != nil || l.Model.Variant != "micro-a" || l.Variant == nil {
				t.Fatalf("live model after a failed load: %+v, %v", l.Model, err)
			}
			l.Release()
			if n := h.metric(t, "chorus_model_loads_total", map[string]string{"result": "failure"}); n != failures {
				t.Errorf("failed loads counted %v, want %v", n, failures)
			}
			if logs := h.logs.String(); !strings.Contains(logs, `msg="load failed"`) || !strings.Contains(logs, "variant="+name) {
				t.Errorf("no load failed log line for %s", name)
			}
		})
	}
}

// preloaded is a Loader that opens each variant folder once and then hands out a fresh
// Variant sharing those weights for every load, so that a test can promote back and forth
// without paying for full loads while still telling entries apart by their Variant pointer.
type preloaded struct {
	mu   sync.Mutex
	base map[string]*asr.Variant
}

func (p *preloaded) load(ctx context.Context, src Source, opts asr.OpenOptions) (*asr.Variant, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	v, ok := p.base[src.Location]
	if !ok {
		var err error
		if v, err = openVariant(ctx, src, opts); err != nil {
			return nil, err
		}
		p.base[src.Location] = v
	}
	cp := *v
	return &cp, nil
}

// TestConcurrentAcquirePromote: many goroutines acquire and release while the live variant
// is replaced ten times. No Acquire fails, and no variant is unloaded while a lease holds it.
func TestConcurrentAcquirePromote(t *testing.T) {
	checkLeaks(t)
	dir := t.TempDir()
	publish(t, dir, "micro-a", variantOpts{serves: defaultmodel.Name})
	publish(t, dir, "micro-b", variantOpts{serves: defaultmodel.Name, plain: true})
	h := newHarness(t, Config{Dir: dir, Loader: (&preloaded{base: map[string]*asr.Variant{}}).load})
	h.warm(t)
	first := h.r.List()[0].Variant

	ctx, stop := context.WithCancel(t.Context())
	var (
		wg                     sync.WaitGroup
		acquired, failed, used atomic.Int64
		violations             atomic.Int64
		firstViolation         atomic.Value
	)
	for range 16 {
		wg.Go(func() {
			for ctx.Err() == nil {
				l, err := h.r.Acquire(context.Background(), "")
				if err != nil {
					failed.Add(1)
					firstViolation.CompareAndSwap(nil, err.Error())
					continue
				}
				acquired.Add(1)
				// Hold the lease across promotions, then check that the entry behind it
				// still holds its weights: a retired entry must wait for this release.
				time.Sleep(time.Duration(acquired.Load()%3) * time.Millisecond)
				h.r.mu.Lock()
				ok := false
				for _, e := range h.r.entries {
					if e.v == l.Variant && e.v != nil && e.state != Unloaded {
						ok = true
					}
				}
				h.r.mu.Unlock()
				if !ok || l.Variant.Model == nil {
					violations.Add(1)
					firstViolation.CompareAndSwap(nil, "lease on an unloaded variant "+l.Model.Variant)
				} else {
					used.Add(1)
				}
				l.Release()
			}
		})
	}
	names := map[string]string{"micro-a": "micro-b", "micro-b": "micro-a"}
	next := names[first]
	for range 10 {
		before := acquired.Load()
		if _, err := h.r.Load(t.Context(), next, "", true); err != nil {
			t.Fatalf("load and promote %s: %v", next, err)
		}
		waitFor(t, "acquires on "+next, func() bool { return acquired.Load() > before+20 })
		next = names[next]
	}
	stop()
	wg.Wait()
	if failed.Load() != 0 || violations.Load() != 0 {
		t.Fatalf("%d failed acquires, %d leases on unloaded variants of %d; first: %v",
			failed.Load(), violations.Load(), acquired.Load(), firstViolation.Load())
	}
	// Everything but the last promoted variant drains away.
	waitFor(t, "one variant left", func() bool { return len(h.r.Variants()) == 1 })
	vs := h.r.Variants()
	if vs[0].State != Live || vs[0].Active != 0 || vs[0].Variant != names[next] {
		t.Errorf("after the churn: %+v, want %s live with no leases", vs[0], names[next])
	}
	if n := h.metric(t, "chorus_model_loads_total", map[string]string{"result": "success"}); n != 11 {
		t.Errorf("%v successful loads, want 11", n)
	}
	t.Logf("%d leases taken and used across 10 promotions", used.Load())
}

// TestCloseDrains: Acquire waits for the first scan; Close refuses new leases at once,
// waits for held ones (reporting them when its ctx ends first), and the last release
// unloads what is left.
func TestCloseDrains(t *testing.T) {
	checkLeaks(t)
	h := newHarness(t, Config{})
	short, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := h.r.Acquire(short, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire before the first scan: %v, want it to wait until its ctx ends", err)
	}
	h.warm(t)
	l, err := h.r.Acquire(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if err := h.r.Close(ctx); err == nil || !strings.Contains(err.Error(), "1 leases") {
		t.Fatalf("Close with a lease held: %v, want it to report the lease", err)
	}
	if _, err := h.r.Acquire(t.Context(), ""); !errors.Is(err, server.ErrModelClosing) {
		t.Errorf("Acquire after Close: %v, want ErrModelClosing", err)
	}
	if _, err := h.r.Load(t.Context(), defaultmodel.Name, "", false); !errors.Is(err, server.ErrModelClosing) {
		t.Errorf("Load after Close: %v, want ErrModelClosing", err)
	}
	if v, ok := h.find(defaultmodel.Name, defaultmodel.Name); !ok || v.State != Draining {
		t.Fatalf("leased variant after Close: %+v, want DRAINING", v)
	}
	l.Release()
	if vs := h.r.Variants(); len(vs) != 0 {
		t.Errorf("variants after the last release: %+v", vs)
	}
}

// TestEmbeddedVariants: with EmbeddedVariants the binary's chorus-micro-moe (and the flagship,
// when embedded) serve beside the default under their own names, with their experts;
// without it, they load by name through Load.
func TestEmbeddedVariants(t *testing.T) {
	checkLeaks(t)
	h := newHarness(t, Config{EmbeddedVariants: true})
	if err := h.r.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	names := defaultmodel.Names()
	if n := len(h.r.List()); n != len(names) {
		t.Fatalf("List: %d models, want %v", n, names)
	}
	for _, name := range names[1:] {
		l, err := h.r.Acquire(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if l.Variant.Experts == nil || l.Model.Source != "embedded:"+name {
			t.Errorf("%s: experts %v, source %q", name, l.Variant.Experts != nil, l.Model.Source)
		}
		l.Release()
	}

	h2 := newHarness(t, Config{})
	if err := h2.r.Warm(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.r.Acquire(t.Context(), defaultmodel.MoEName); !errors.Is(err, server.ErrModelNotFound) {
		t.Fatalf("without EmbeddedVariants, chorus-micro-moe acquired: %v", err)
	}
	info, err := h2.r.Load(t.Context(), defaultmodel.MoEName, defaultmodel.MoEName, true)
	if err != nil || info.State != Live {
		t.Fatalf("Load(chorus-micro-moe): %+v %v", info, err)
	}
}
