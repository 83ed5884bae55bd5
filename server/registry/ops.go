package registry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
)

// Load loads variant beside whatever is live, as Standby, and promotes it when promote is
// set. variant is a folder name in the store, "embedded:chorus-micro" (or "chorus-micro"
// when the store has no such folder) for the built-in default, or a path to a folder or a
// ggml file. It serves as model; empty means the card's "serves" field, else the default
// model. Loading a store folder marks it seen, so the directory watcher does not promote a
// variant an operator loaded on standby. Errors: ErrVariantNotFound, ErrInvalidVariant
// (the variant is Failed; whatever was live keeps serving), server.ErrModelClosing.
func (r *Registry) Load(ctx context.Context, variant, model string, promote bool) (VariantInfo, error) {
	if variant == "" {
		return VariantInfo{}, fmt.Errorf("%w: empty variant name", ErrVariantNotFound)
	}
	var info VariantInfo
	err := r.reload(ctx, triggerLoad, reloader{"load " + variant, func(ctx context.Context) error {
		c, err := r.resolve(ctx, variant)
		if err != nil {
			return err
		}
		c.model = cmp.Or(model, c.card.Serves, r.defaultModel)
		e, err := r.load(ctx, c)
		r.mu.Lock()
		if c.storeName != "" && ctx.Err() == nil {
			r.seen[c.storeName] = c.fp
		}
		r.mu.Unlock()
		if err != nil {
			return err
		}
		if promote {
			r.promote(e, "promoted on load by the admin API")
		}
		r.mu.Lock()
		info = r.infoLocked(e)
		r.mu.Unlock()
		return nil
	}})
	return info, err
}

// resolve finds variant in the store, the embedded default or the file system.
func (r *Registry) resolve(ctx context.Context, variant string) (candidate, error) {
	if strings.HasPrefix(variant, "embedded:") {
		if !r.embedded {
			return candidate{}, fmt.Errorf("%w: the embedded models are turned off", ErrVariantNotFound)
		}
		src, _, err := embeddedFor(variant)
		if err != nil {
			return candidate{}, err
		}
		return prepare(src, ""), nil
	}
	if isPath(variant) {
		src, err := pathSource(variant)
		if err != nil {
			return candidate{}, err
		}
		return prepare(src, ""), nil
	}
	src, err := r.store.Open(ctx, variant)
	if errors.Is(err, ErrVariantNotFound) && r.embedded {
		if emb, ok, eerr := embeddedFor(variant); ok {
			if eerr != nil {
				return candidate{}, eerr
			}
			return prepare(emb, ""), nil
		}
	}
	if err != nil {
		return candidate{}, err
	}
	return prepare(src, variant), nil
}

// Promote makes a Standby variant of model ("" is the default model) live and retires the
// variant it replaces, which drains. It returns the promoted variant and the previous one
// (zero if none). Promoting the live variant changes nothing. Errors: ErrVariantNotFound,
// ErrVariantNotReady (loading, failed or draining).
func (r *Registry) Promote(ctx context.Context, model, variant string) (cur, prev VariantInfo, err error) {
	model = cmp.Or(model, r.defaultModel)
	err = r.reload(ctx, triggerPromote, reloader{"promote " + model + "/" + variant, func(context.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		e, err := r.findLocked(model, variant, Live, Standby)
		if err != nil {
			return err
		}
		if p := r.promoteLocked(e, "promoted by the admin API"); p != nil {
			prev = r.infoLocked(p)
		}
		cur = r.infoLocked(e)
		return nil
	}})
	return cur, prev, err
}

// Unload retires a variant of model ("" is the default model) that is not live: a Standby
// one drains and unloads after its last lease, a Failed one is forgotten, a Draining one is
// left to finish. Errors: ErrVariantNotFound, ErrVariantLive (promote another variant
// first), ErrVariantNotReady (still loading).
func (r *Registry) Unload(ctx context.Context, model, variant string) (VariantInfo, error) {
	model = cmp.Or(model, r.defaultModel)
	var info VariantInfo
	err := r.reload(ctx, triggerUnload, reloader{"unload " + model + "/" + variant, func(context.Context) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		e, err := r.findLocked(model, variant, Standby, Failed, Draining)
		if err != nil {
			if r.hasLocked(model, variant, Live) {
				return fmt.Errorf("%w: %s/%s serves new requests; promote another variant first", ErrVariantLive, model, variant)
			}
			return err
		}
		r.retireLocked(e, "unloaded by the admin API")
		info = r.infoLocked(e)
		return nil
	}})
	return info, err
}
