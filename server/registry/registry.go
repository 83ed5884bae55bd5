package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/server"
)

// Sentinel errors, matched with errors.Is. Acquire's own failures are server.ErrModelNotFound
// and server.ErrModelClosing; ErrVariantNotFound wraps the former too.
var (
	// ErrVariantNotFound: no variant of that name in the store, at that path or loaded.
	ErrVariantNotFound = fmt.Errorf("variant not found (%w)", server.ErrModelNotFound)
	// ErrInvalidVariant: the variant is corrupt or unusable (bad checksum, unreadable weights,
	// insane config, golden clip failed); whatever was live keeps serving.
	ErrInvalidVariant = errors.New("invalid variant")
	// ErrVariantLive: Unload of the variant that serves its model; promote another first.
	ErrVariantLive = errors.New("variant is live")
	// ErrVariantNotReady: Promote or pin of a variant that is loading, failed or draining.
	ErrVariantNotReady = errors.New("variant not ready")
)

// State is where a variant is in its life. The values are those of the API's
// chorus.v1.ModelInfo.State.
type State int32

const (
	// Loading: being read, verified, validated and warmed.
	Loading State = iota + 1
	// Standby: loaded beside the live variant; serves only explicit pins.
	Standby
	// Live: serves new Acquires for its model.
	Live
	// Draining: retired; takes no new leases, unloads when the last one is released.
	Draining
	// Unloaded: gone; the last event a variant gets.
	Unloaded
	// Failed: the load failed; Err says why. Holds no memory.
	Failed
)

func (s State) String() string {
	switch s {
	case Loading:
		return "LOADING"
	case Standby:
		return "STANDBY"
	case Live:
		return "LIVE"
	case Draining:
		return "DRAINING"
	case Unloaded:
		return "UNLOADED"
	case Failed:
		return "FAILED"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// Loader turns a variant's files into a loaded variant. The default reads src.FS with
// asr.OpenFS (or the ggml file at src.Path with asr.Open); tests inject one that hands out
// preloaded variants.
type Loader func(ctx context.Context, src Source, opts asr.OpenOptions) (*asr.Variant, error)

// Config configures New.
type Config struct {
	// Dir is the models directory (see DirStore). Empty with a nil Store means no directory:
	// only the embedded default serves.
	Dir string
	// Store, when set, replaces Dir's DirStore as the source of variants (object storage,
	// say). Run then watches nothing and rescans on Hangup only.
	Store Store
	// DefaultModel answers requests that name no model; empty means "chorus-micro", which
	// the embedded default serves whenever the store has no variant of it that loads.
	DefaultModel string
	// NoEmbedded turns the embedded fallback off (a deployment that must never serve it).
	NoEmbedded bool
	// EmbeddedVariants also serves the binary's other embedded variants (chorus-micro-moe,
	// chorus-micro-flagship: defaultmodel.Names) each as the model of its name when the store
	// has none and the default model is chorus-micro (chorus serve turns it on). With it
	// off, they still load by name through the admin Load.
	EmbeddedVariants bool
	// Open is passed to the loader; the CLI serves with F16: true.
	Open asr.OpenOptions
	// Logger receives one line per load step, reload, promotion and unload; nil means
	// slog.Default().
	Logger *slog.Logger
	// Registerer receives the chorus_model_* metrics; nil registers them nowhere.
	Registerer prometheus.Registerer
	// Hangup makes Run rescan the store once per value received: pass the channel given
	// to signal.Notify(ch, syscall.SIGHUP).
	Hangup <-chan os.Signal
	// Debounce is how long Run waits after the last change in Dir before it rescans, so
	// that a burst of events (a folder renamed into place, files written) is one rescan;
	// zero means 500ms.
	Debounce time.Duration
	// Now stamps load times and events; nil means time.Now.
	Now func() time.Time
	// Loader opens variants; nil means the asr loaders.
	Loader Loader
}

// Registry is chorus's model registry: server.Models with variants loaded beside the live
// one, verified, validated on the golden clip, warmed, promoted atomically and drained.
// See the package doc for the rules. Its zero value is not usable: call New, and Close it.
type Registry struct {
	store        Store
	dir          string // watched by Run; "" when the store is not a local folder
	defaultModel string
	embedded     bool
	embeddedMore bool // serve the other embedded variants from the binary too
	open         asr.OpenOptions
	loader       Loader
	hangup       <-chan os.Signal
	debounce     time.Duration
	now          func() time.Time
	log          *slog.Logger
	m            *metrics

	// sem admits one reload at a time, so that loads never race each other for memory or
	// CPU and "which variant is live" changes in one place at a time.
	sem chan struct{}
	// ready is closed once the first scan has finished; Acquire waits for it.
	ready     chan struct{}
	readyOnce sync.Once
	// free asks the reaper to return unloaded weights to the OS (capacity 1: requests
	// coalesce). done stops the reaper; reaped is closed when it has stopped.
	free   chan struct{}
	done   chan struct{}
	reaped chan struct{}

	mu sync.Mutex // guards everything below; never held across I/O, loads or Sends
	// closed is set by Close: no new leases, loads or subscribers.
	closed bool
	nextID uint64
	// entries are every variant not yet unloaded, in load order.
	entries []*entry
	// live maps a served model name to its live entry: the single owner of "which variant
	// serves". An entry is in live exactly when its state is Live.
	live map[string]*entry
	// seen maps each store variant to its card.json fingerprint at the last scan, so a
	// rescan loads only new or republished folders.
	seen map[string]string
	subs map[*subscriber]struct{}
	// changed is closed and replaced on every state change (Close waits on it).
	changed chan struct{}
}

// entry is one loaded (or loading, or failed) variant. All fields after id are guarded by
// Registry.mu.
type entry struct {
	id          uint64
	model       string // served name
	variant     string
	source      string // Source.Location
	storeName   string // the Store's name for it; "" for the embedded default and paths
	fingerprint string // hex SHA-256 of card.json; "" without one
	version     string
	params      int64
	state       State
	err         string
	loaded      time.Time
	v           *asr.Variant // set from Standby to Draining; nil once unloaded
	refs        int          // leases held
}

// New builds a registry from cfg and starts its reaper goroutine; nothing is loaded until
// Warm, Run, Rescan or Load. Close it when done.
func New(cfg Config) (*Registry, error) {
	r := &Registry{
		store:        cfg.Store,
		defaultModel: cfg.DefaultModel,
		embedded:     !cfg.NoEmbedded,
		embeddedMore: !cfg.NoEmbedded && cfg.EmbeddedVariants,
		open:         cfg.Open,
		loader:       cfg.Loader,
		hangup:       cfg.Hangup,
		debounce:     cfg.Debounce,
		now:          cfg.Now,
		log:          cfg.Logger,
		sem:          make(chan struct{}, 1),
		ready:        make(chan struct{}),
		free:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		reaped:       make(chan struct{}),
		live:         map[string]*entry{},
		seen:         map[string]string{},
		subs:         map[*subscriber]struct{}{},
		changed:      make(chan struct{}),
	}
	if r.store == nil && cfg.Dir != "" {
		r.store, r.dir = DirStore{Dir: cfg.Dir}, cfg.Dir
	}
	if r.store == nil {
		r.store = emptyStore{}
	}
	if r.defaultModel == "" {
		r.defaultModel = defaultmodel.Name
	}
	if r.loader == nil {
		r.loader = openVariant
	}
	if r.debounce <= 0 {
		r.debounce = 500 * time.Millisecond
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	r.log = r.log.With("component", "registry")
	m, err := newMetrics(r, cfg.Registerer)
	if err != nil {
		return nil, err
	}
	r.m = m
	go r.reap()
	return r, nil
}

// openVariant is the default Loader.
func openVariant(_ context.Context, src Source, opts asr.OpenOptions) (*asr.Variant, error) {
	if src.FS == nil {
		return asr.Open(src.Path, opts)
	}
	v, err := asr.OpenFS(src.FS, ".", src.Variant, opts)
	if err != nil {
		return nil, err
	}
	v.Path = src.Location
	return v, nil
}

// emptyStore is the store of a registry with no models directory.
type emptyStore struct{}

func (emptyStore) List(context.Context) ([]Listing, error) { return nil, nil }
func (emptyStore) Open(_ context.Context, v string) (Source, error) {
	return Source{}, fmt.Errorf("%w: %q (no models directory)", ErrVariantNotFound, v)
}

// reap returns the memory of unloaded variants to the OS, off the path of whichever request
// released the last lease.
func (r *Registry) reap() {
	defer close(r.reaped)
	for {
		select {
		case <-r.done:
			return
		case <-r.free:
			debug.FreeOSMemory()
		}
	}
}

// Acquire pins the live variant of name ("" is the default model). It waits for the first
// scan (Warm or Run) to finish, then never blocks: the lookup and the pin happen under one
// short lock that promotion also takes, so a lease is always on a variant that was live at
// that moment and a retired variant can never be pinned. It fails with
// server.ErrModelNotFound when name has no live variant and server.ErrModelClosing once
// Close has begun.
func (r *Registry) Acquire(ctx context.Context, name string) (server.Lease, error) {
	if err := r.waitReady(ctx); err != nil {
		return server.Lease{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return server.Lease{}, server.ErrModelClosing
	}
	if name == "" {
		name = r.defaultModel
	}
	e := r.live[name]
	if e == nil {
		return server.Lease{}, fmt.Errorf("%w: %q", server.ErrModelNotFound, name)
	}
	return r.leaseLocked(e), nil
}

// AcquireVariant pins a named variant of model ("" is the default model) that is live or
// on standby, for experiments and shadow decoding that must run on a particular variant. A
// draining variant answers server.ErrModelClosing; one that is loading or failed,
// ErrVariantNotReady.
func (r *Registry) AcquireVariant(ctx context.Context, model, variant string) (server.Lease, error) {
	if err := r.waitReady(ctx); err != nil {
		return server.Lease{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return server.Lease{}, server.ErrModelClosing
	}
	if model == "" {
		model = r.defaultModel
	}
	e, err := r.findLocked(model, variant, Live, Standby)
	if err != nil {
		if errors.Is(err, ErrVariantNotReady) && r.hasLocked(model, variant, Draining) {
			return server.Lease{}, fmt.Errorf("%w: %s/%s is draining", server.ErrModelClosing, model, variant)
		}
		return server.Lease{}, err
	}
	return r.leaseLocked(e), nil
}

func (r *Registry) waitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return nil
	default:
	}
	select {
	case <-r.ready:
		return nil
	case <-r.done:
		return server.ErrModelClosing
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leaseLocked pins e. The release function is safe to call more than once: later calls are
// logged and counted, and change nothing, so a double release can never free a variant
// under another stream.
func (r *Registry) leaseLocked(e *entry) server.Lease {
	e.refs++
	var released atomic.Bool
	return server.Lease{
		Model:   r.modelInfoLocked(e),
		Variant: e.v,
		Release: func() {
			if !released.CompareAndSwap(false, true) {
				r.m.doubleReleases.Inc()
				r.log.Warn("lease released twice", "model", e.model, "variant", e.variant)
				return
			}
			r.release(e)
		},
	}
}

// release drops one lease; the last lease of a draining entry unloads it.
func (r *Registry) release(e *entry) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e.refs--
	if e.refs == 0 && e.state == Draining {
		r.unloadLocked(e, "last lease released")
	}
}

// List describes the live models, the default first, then by name.
func (r *Registry) List() []server.ModelInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]server.ModelInfo, 0, len(r.live))
	for _, e := range r.live {
		out = append(out, r.modelInfoLocked(e))
	}
	slices.SortFunc(out, func(a, b server.ModelInfo) int {
		if (a.Name == r.defaultModel) != (b.Name == r.defaultModel) {
			if a.Name == r.defaultModel {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out
}

// VariantInfo describes one variant the registry holds, in any state.
type VariantInfo struct {
	Model, Variant, Version, Source string
	State                           State
	// Active is the number of leases held on it.
	Active     int
	Loaded     time.Time
	Parameters int64
	// Err is why it failed, for Failed.
	Err string
	// Default: Model answers requests that name no model.
	Default bool
}

// Variants describes every variant not yet unloaded, in load order.
func (r *Registry) Variants() []VariantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]VariantInfo, 0, len(r.entries))
	for _, e := range r.entries {
		out = append(out, r.infoLocked(e))
	}
	return out
}

func (r *Registry) infoLocked(e *entry) VariantInfo {
	return VariantInfo{
		Model: e.model, Variant: e.variant, Version: e.version, Source: e.source, State: e.state,
		Active: e.refs, Loaded: e.loaded, Parameters: e.params, Err: e.err,
		Default: e.model == r.defaultModel,
	}
}

func (r *Registry) modelInfoLocked(e *entry) server.ModelInfo {
	return server.ModelInfo{Name: e.model, Variant: e.variant, Loaded: e.loaded, Version: e.version, Source: e.source}
}

// findLocked returns the newest entry of model/variant in one of states (in order of
// preference); ErrVariantNotReady when it exists only in other states.
func (r *Registry) findLocked(model, variant string, states ...State) (*entry, error) {
	for _, s := range states {
		for _, e := range slices.Backward(r.entries) {
			if e.model == model && e.variant == variant && e.state == s {
				return e, nil
			}
		}
	}
	for _, e := range r.entries {
		if e.model == model && e.variant == variant {
			return nil, fmt.Errorf("%w: %s/%s is %s", ErrVariantNotReady, model, variant, e.state)
		}
	}
	return nil, fmt.Errorf("%w: %s/%s", ErrVariantNotFound, model, variant)
}

func (r *Registry) hasLocked(model, variant string, s State) bool {
	for _, e := range r.entries {
		if e.model == model && e.variant == variant && e.state == s {
			return true
		}
	}
	return false
}

// setLocked moves e to state s and tells subscribers why.
func (r *Registry) setLocked(e *entry, s State, msg string) {
	e.state = s
	r.publishLocked(e, msg)
}

// promoteLocked makes e (Standby) the live variant of its model and retires the one it
// replaces; it returns that one (nil if none). The swap is one map write under r.mu, the
// lock Acquire holds while it pins, so every Acquire sees either the old or the new variant.
func (r *Registry) promoteLocked(e *entry, why string) *entry {
	prev := r.live[e.model]
	if prev == e {
		return nil
	}
	r.live[e.model] = e
	r.setLocked(e, Live, why)
	r.log.Info("promoted", "model", e.model, "variant", e.variant, "version", e.version, "reason", why)
	if prev != nil {
		r.retireLocked(prev, "replaced by "+e.variant)
	}
	return prev
}

// retireLocked takes e out of service: it refuses new leases at once and unloads when its
// last lease is released (now, if it has none). A failed entry, which holds nothing, just
// goes.
func (r *Registry) retireLocked(e *entry, why string) {
	switch e.state {
	case Failed:
		r.unloadLocked(e, why)
	case Standby, Live:
		if r.live[e.model] == e {
			delete(r.live, e.model)
		}
		r.setLocked(e, Draining, fmt.Sprintf("%s; %d leases to drain", why, e.refs))
		r.log.Info("draining", "model", e.model, "variant", e.variant, "leases", e.refs, "reason", why)
		if e.refs == 0 {
			r.unloadLocked(e, "no leases")
		}
	}
}

// unloadLocked drops e's weights and forgets it. The variant's memory is the GC's once the
// last lease holder drops its Lease; the reaper then hands it back to the OS.
func (r *Registry) unloadLocked(e *entry, why string) {
	hadWeights := e.v != nil
	e.v = nil
	r.entries = slices.DeleteFunc(r.entries, func(x *entry) bool { return x == e })
	r.setLocked(e, Unloaded, why)
	r.log.Info("unloaded", "model", e.model, "variant", e.variant, "reason", why)
	if hadWeights {
		select {
		case r.free <- struct{}{}:
		default:
		}
	}
}

// Close retires every variant, refuses new leases (server.ErrModelClosing), loads and
// watchers, and waits until every lease is released and every variant unloaded, or ctx
// ends; then it stops the reaper and ends Watch streams. It is the last step of shutdown,
// after the servers have stopped handing out work. Run is stopped by cancelling its ctx,
// not by Close.
func (r *Registry) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.mu.Unlock()

	// Wait for an in-flight load, which sees closed and discards its variant; if ctx ends
	// first, retire what there is anyway.
	select {
	case r.sem <- struct{}{}:
		defer func() { <-r.sem }()
	case <-ctx.Done():
	}

	r.mu.Lock()
	for _, e := range slices.Clone(r.entries) {
		r.retireLocked(e, "registry closing")
	}
	r.mu.Unlock()

	var err error
	for {
		r.mu.Lock()
		n, held, changed := len(r.entries), 0, r.changed
		for _, e := range r.entries {
			held += e.refs
		}
		r.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-changed:
			continue
		case <-ctx.Done():
			err = fmt.Errorf("close registry: %d variants still hold %d leases: %w", n, held, ctx.Err())
		}
		break
	}
	r.readyOnce.Do(func() { close(r.ready) })
	close(r.done)
	<-r.reaped
	r.mu.Lock()
	for s := range r.subs {
		r.dropLocked(s)
	}
	r.mu.Unlock()
	return err
}

// fingerprint identifies a card.json's content, so a republished folder is told from the
// one already seen.
func fingerprint(raw []byte) string {
	if raw == nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}
