package server

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// Sentinel errors of Models, matched with errors.Is.
var (
	// ErrModelNotFound is returned by Acquire for a name no live model answers to.
	ErrModelNotFound = errors.New("model not found")
	// ErrModelClosing is returned by Acquire when the model is being retired and takes no
	// new work; the caller should retry (a replacement is, or soon will be, live).
	ErrModelClosing = errors.New("model closing")
)

// Models owns which models are live. The server never holds a *asr.Variant beyond one unit
// of work: it pins the variant with Acquire, uses it, and releases the lease exactly once,
// so that an implementation can swap in a new variant while requests run on the old one and
// free the old one only when its last user has released it.
type Models interface {
	// Acquire pins the live variant served as name ("" means the default model). It fails
	// with ErrModelNotFound for an unknown name and ErrModelClosing when the model takes no
	// new work; it may block while a model loads, and then returns ctx's error when ctx
	// ends first.
	Acquire(ctx context.Context, name string) (Lease, error)
	// List describes the live models, the default first.
	List() []ModelInfo
}

// Lease is one unit of work's pin on a variant.
type Lease struct {
	// Model is the served name (the default's, when Acquire was given "") and the variant
	// behind it at the time of Acquire.
	Model   ModelInfo
	Variant *asr.Variant
	// Release unpins the variant; call it exactly once, when the work is done.
	Release func()
}

// Warmer is implemented by Models that need a warm-up before they serve at full speed
// (first-touch page faults of the weights, kernel thread start-up). Serve calls Warm once,
// in the background, and reports ready on /readyz only after it succeeds.
type Warmer interface {
	Warm(ctx context.Context) error
}

// ModelInfo describes one served model.
type ModelInfo struct {
	// Name is what clients ask for in the API's model field.
	Name string
	// Variant identifies the weights behind Name (a variant folder's name); it changes when a
	// registry swaps in a new variant under the same Name.
	Variant string
	// Loaded is when the variant was loaded (the "created" time of /v1/models).
	Loaded time.Time
	// Version is a short content hash of the variant's weights (the first 12 hex digits of
	// the weights file's SHA-256), so two variants with the same folder name but different
	// weights can be told apart; empty when unknown.
	Version string
	// Source is where the variant was loaded from: a folder or file path, or
	// "embedded:<name>" for the model built into the binary.
	Source string
}

// Single serves one variant under one name for the life of the process. It never swaps, so
// it needs no reference counts: Release is a no-op and the variant stays valid until the
// server is done with it.
type Single struct {
	info ModelInfo
	v    *asr.Variant
}

// NewSingle serves v as name; an empty name is the base name of v's path. It fails for a
// variant that cannot transcribe (no tokenizer).
func NewSingle(name string, v *asr.Variant) (*Single, error) {
	if v == nil || v.Model == nil {
		return nil, errors.New("server: no model")
	}
	if _, err := v.DecodeModel(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	variant := variantName(v)
	if name == "" {
		name = variant
	}
	// Version stays empty: Single gets a loaded variant, not its files, and hashing the
	// weights back out of memory would not match the hash of the file a registry reports.
	return &Single{info: ModelInfo{Name: name, Variant: variant, Loaded: time.Now(), Source: v.Path}, v: v}, nil
}

// variantName is the last element of where v came from: the variant folder or ggml file.
func variantName(v *asr.Variant) string {
	for _, p := range []string{v.Path, v.Name} {
		if p != "" {
			if b := filepath.Base(filepath.Clean(p)); b != "." && b != string(filepath.Separator) {
				return b
			}
		}
	}
	return "chorus"
}

// Acquire leases the variant when name is "" or the served name.
func (m *Single) Acquire(_ context.Context, name string) (Lease, error) {
	if name != "" && name != m.info.Name {
		return Lease{}, fmt.Errorf("%w: %q", ErrModelNotFound, name)
	}
	return Lease{Model: m.info, Variant: m.v, Release: func() {}}, nil
}

// List returns the one model.
func (m *Single) List() []ModelInfo { return []ModelInfo{m.info} }

// Warm transcribes one second of silence, which touches every weight once and starts the
// compute threads, so the first real request does not pay for it.
func (m *Single) Warm(ctx context.Context) error {
	if _, err := m.v.Transcribe(ctx, make([]float32, audio.WhisperRate), transcribe.DefaultOptions()); err != nil {
		return fmt.Errorf("warm up %s: %w", m.info.Name, err)
	}
	return nil
}

// VariantAcquirer is implemented by model sources that keep several variants of a model
// loaded (a registry during a hot swap): AcquireVariant pins the named variant of model
// ("" is the default model) whether or not it is the live one, failing with
// ErrModelNotFound when it is not loaded.
type VariantAcquirer interface {
	AcquireVariant(ctx context.Context, model, variant string) (Lease, error)
}
