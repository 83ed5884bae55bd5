package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/server"
)

// Triggers of a reload, the trigger label of chorus_model_reloads_total.
const (
	triggerStartup = "startup"
	triggerSIGHUP  = "sighup"
	triggerWatch   = "fsnotify"
	triggerLoad    = "rpc_load"
	triggerPromote = "rpc_promote"
	triggerUnload  = "rpc_unload"
)

// reloader is one named step of a reload.
type reloader struct {
	name string
	fn   func(ctx context.Context) error
}

// reload is the one way the set of loaded and live variants changes (STYLE 14): the admin
// RPCs, SIGHUP, the directory watcher and startup all come through here. Reloads run one at
// a time; each reloader runs even when an earlier one failed (they are independent: one
// broken folder must not keep another from loading), and each is logged with its duration.
// The outcome is counted in chorus_model_reloads_total{trigger,result}.
func (r *Registry) reload(ctx context.Context, trigger string, rs ...reloader) error {
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-r.sem }()
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return server.ErrModelClosing
	}
	start := time.Now()
	var errs []error
	for _, rl := range rs {
		t := time.Now()
		err := rl.fn(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", rl.name, err))
			r.log.Warn("reloader failed", "trigger", trigger, "step", rl.name, "took", time.Since(t), "err", err)
			continue
		}
		r.log.Info("reloader done", "trigger", trigger, "step", rl.name, "took", time.Since(t))
	}
	err := errors.Join(errs...)
	result := "success"
	if err != nil {
		result = "failure"
	}
	r.m.reloads.WithLabelValues(trigger, result).Inc()
	r.log.Info("reload finished", "trigger", trigger, "result", result, "took", time.Since(start))
	return err
}

// Warm performs the first scan: per served model, the newest variant in the store that loads
// is promoted, and the embedded default serves the default model when the store has none
// that loads. It makes Registry a server.Warmer, so /readyz turns ready once models serve.
// It fails only when the default model ends up with no live variant; broken folders of
// other models are reported (FAILED, logs, metrics) but do not keep the server unready.
// Later calls rescan.
func (r *Registry) Warm(ctx context.Context) error {
	err := r.reload(ctx, triggerStartup, reloader{"scan", r.scan})
	r.readyOnce.Do(func() { close(r.ready) })
	r.mu.Lock()
	_, ok := r.live[r.defaultModel]
	r.mu.Unlock()
	if !ok {
		return errors.Join(fmt.Errorf("%w: default model %q has no live variant", server.ErrModelNotFound, r.defaultModel), err)
	}
	return nil
}

// Rescan is what SIGHUP does: new and republished folders are loaded (and promoted, see the
// package doc), folders that disappeared are retired unless their variant is live.
func (r *Registry) Rescan(ctx context.Context) error {
	return r.reload(ctx, triggerSIGHUP, reloader{"scan", r.scan})
}

// candidate is a variant about to be loaded: its files, card and the name it will serve as.
type candidate struct {
	src       Source
	storeName string
	card      card
	hasCard   bool
	cardErr   error
	fp        string
	model     string
	published time.Time
}

func prepare(src Source, storeName string) candidate {
	c := candidate{src: src, storeName: storeName}
	var raw []byte
	c.card, raw, c.hasCard, c.cardErr = readCard(src)
	c.fp = fingerprint(raw)
	return c
}

// scan diffs the store against what the last scan saw. Every new or republished folder is a
// candidate for the model its card serves; per model the newest candidate that loads is
// promoted and the older ones are only remembered (a folder that failed is retried when it
// is republished, not on every rescan). Folders that disappeared are retired unless live.
// Then, if the default model has no live variant, the embedded default is loaded.
func (r *Registry) scan(ctx context.Context) error {
	var errs []error
	listing, listErr := r.store.List(ctx)
	if listErr != nil {
		errs = append(errs, fmt.Errorf("list store: %w", listErr))
	}
	current := map[string]string{}
	byModel := map[string][]candidate{}
	r.mu.Lock()
	seen := maps.Clone(r.seen)
	r.mu.Unlock()
	for _, l := range listing {
		src, err := r.store.Open(ctx, l.Variant)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c := prepare(src, l.Variant)
		c.published = l.Published
		current[l.Variant] = c.fp
		if fp, ok := seen[l.Variant]; ok && fp == c.fp {
			continue
		}
		c.model = cmp.Or(c.card.Serves, l.Variant)
		byModel[c.model] = append(byModel[c.model], c)
	}

	r.mu.Lock()
	if listErr == nil { // a store that failed to list has not lost its folders
		for name := range r.seen {
			if _, ok := current[name]; !ok {
				r.retireRemovedLocked(name)
			}
		}
		r.seen = current
	} else {
		for name, fp := range current {
			r.seen[name] = fp
		}
	}
	r.mu.Unlock()

	for _, model := range slices.Sorted(maps.Keys(byModel)) {
		cands := byModel[model]
		slices.SortFunc(cands, func(a, b candidate) int { // newest first
			return cmp.Or(b.published.Compare(a.published), cmp.Compare(b.src.Variant, a.src.Variant))
		})
		for _, c := range cands {
			e, err := r.load(ctx, c)
			if err != nil {
				errs = append(errs, err)
				if ctx.Err() != nil { // interrupted, not broken: try it again next scan
					r.mu.Lock()
					delete(r.seen, c.storeName)
					r.mu.Unlock()
					return errors.Join(errs...)
				}
				continue
			}
			r.promote(e, "published")
			break
		}
	}

	r.mu.Lock()
	_, haveDefault := r.live[r.defaultModel]
	r.mu.Unlock()
	if !haveDefault && r.embedded && r.defaultModel == defaultmodel.Name {
		c := prepare(embeddedSource(), "")
		c.model = r.defaultModel
		e, err := r.load(ctx, c)
		if err != nil {
			errs = append(errs, err)
		} else {
			r.promote(e, "embedded default: no variant of "+r.defaultModel+" in the store")
		}
	}
	// The other embedded variants (chorus-micro-moe, chorus-micro-flagship) serve beside the
	// default under their own names, unless the store has its own. They are optional: a
	// failure is logged, and the default serves on.
	if r.embeddedMore && r.defaultModel == defaultmodel.Name {
		for _, name := range defaultmodel.Names()[1:] {
			r.mu.Lock()
			_, have := r.live[name]
			r.mu.Unlock()
			if have {
				continue
			}
			src, _, err := embeddedFor(name)
			if err == nil {
				c := prepare(src, "")
				c.model = name
				var e *entry
				if e, err = r.load(ctx, c); err == nil {
					r.promote(e, "embedded variant: no variant of "+name+" in the store")
				}
			}
			if err != nil {
				r.log.Warn("embedded variant not served", "variant", name, "err", err)
			}
		}
	}
	return errors.Join(errs...)
}

// retireRemovedLocked retires the entries loaded from a store folder that is gone, except
// the live one: it keeps serving from memory until something replaces it.
func (r *Registry) retireRemovedLocked(name string) {
	for _, e := range slices.Clone(r.entries) {
		if e.storeName == name && e.state != Live {
			r.retireLocked(e, "folder removed from the store")
		}
	}
}

func (r *Registry) promote(e *entry, why string) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.state != Standby && e.state != Live {
		return nil
	}
	return r.promoteLocked(e, why)
}

// load reads, verifies, validates and warms c beside whatever is live and adds it as
// Standby. A variant already loaded from the same card (same model, name, source and card
// fingerprint) is returned as it is instead of loaded twice. On failure the entry is Failed
// with the error, which is logged and counted; nothing live is touched.
func (r *Registry) load(ctx context.Context, c candidate) (*entry, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, server.ErrModelClosing
	}
	if c.fp != "" {
		for _, e := range slices.Backward(r.entries) {
			if e.model == c.model && e.variant == c.src.Variant && e.source == c.src.Location &&
				e.fingerprint == c.fp && (e.state == Standby || e.state == Live) {
				r.mu.Unlock()
				return e, nil
			}
		}
	}
	// A new attempt supersedes earlier failures of the same variant.
	for _, e := range slices.Clone(r.entries) {
		if e.model == c.model && e.variant == c.src.Variant && e.state == Failed {
			r.unloadLocked(e, "superseded by a new load")
		}
	}
	r.nextID++
	e := &entry{
		id: r.nextID, model: c.model, variant: c.src.Variant, source: c.src.Location,
		storeName: c.storeName, fingerprint: c.fp,
	}
	r.entries = append(r.entries, e)
	r.setLocked(e, Loading, "loading from "+c.src.Location)
	r.mu.Unlock()

	start := time.Now()
	res, err := r.loadSteps(ctx, e, c)
	took := time.Since(start)
	r.m.loadSeconds.WithLabelValues("total").Observe(took.Seconds())

	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && r.closed {
		err = server.ErrModelClosing
	}
	if err != nil {
		e.err = err.Error()
		r.setLocked(e, Failed, "load failed: "+e.err)
		r.m.loads.WithLabelValues(e.model, "failure").Inc()
		r.log.Error("load failed", "model", e.model, "variant", e.variant, "source", e.source, "took", took, "err", err)
		return nil, fmt.Errorf("load %s/%s: %w", e.model, e.variant, err)
	}
	e.v, e.version, e.params, e.loaded = res.v, res.version, res.params, r.now()
	r.setLocked(e, Standby, fmt.Sprintf("loaded in %s; golden clip: %q", took.Round(time.Millisecond), res.golden))
	r.m.loads.WithLabelValues(e.model, "success").Inc()
	r.log.Info("loaded", "model", e.model, "variant", e.variant, "version", e.version, "source", e.source,
		"parameters", e.params, "took", took, "golden", res.golden)
	return e, nil
}

// loaded is what loadSteps produced.
type loaded struct {
	v       *asr.Variant
	version string
	params  int64
	golden  string // the golden clip's transcript
}

// loadSteps runs the load pipeline, timing each step into chorus_model_load_duration_seconds
// and the log: verify (checksums, version), open (weights, tokenizer), validate (config
// sanity, golden clip), warm.
func (r *Registry) loadSteps(ctx context.Context, e *entry, c candidate) (loaded, error) {
	var res loaded
	step := func(name string, fn func() error) error {
		t := time.Now()
		err := fn()
		d := time.Since(t)
		r.m.loadSeconds.WithLabelValues(name).Observe(d.Seconds())
		r.log.Debug("load step", "model", e.model, "variant", e.variant, "step", name, "took", d, "ok", err == nil)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	}
	if c.cardErr != nil {
		return res, fmt.Errorf("card: %w", c.cardErr)
	}
	if err := step("verify", func() (err error) {
		res.version, err = verify(ctx, c.src, c.card, c.hasCard)
		return err
	}); err != nil {
		return res, err
	}
	if err := step("open", func() (err error) {
		res.v, err = r.loader(ctx, c.src, r.open)
		if err != nil && ctx.Err() == nil && !errors.Is(err, ErrInvalidVariant) {
			err = fmt.Errorf("%w: %v", ErrInvalidVariant, err)
		}
		return err
	}); err != nil {
		return res, err
	}
	if err := step("validate", func() error {
		if err := sanity(res.v); err != nil {
			return err
		}
		samples, err := goldenSamples()
		if err != nil {
			return err
		}
		res.golden, err = golden(ctx, res.v, samples, c.card.GoldenTranscript)
		return err
	}); err != nil {
		return res, err
	}
	if err := step("warm", func() error { return warm(ctx, res.v) }); err != nil {
		return res, err
	}
	res.params = res.v.Model.NumParams()
	return res, nil
}
