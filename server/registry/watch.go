package registry

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Run owns the registry's event loop until ctx ends: it performs the first scan if Warm has
// not, then rescans on every value from Config.Hangup (SIGHUP) and, debounced, whenever the
// models directory changes. It watches the directory and each of its visible sub-folders
// that has no card.json yet, so a folder written in place is picked up when its card.json
// lands. A directory that does not exist (yet) is watched from the first rescan that finds
// it. Run returns nil when ctx ends; it never touches what is loaded on its way out (Close
// does that).
func (r *Registry) Run(ctx context.Context) error {
	select {
	case <-r.ready:
	default:
		if err := r.Warm(ctx); err != nil {
			r.log.Error("first scan", "err", err)
		}
	}
	var w *fsnotify.Watcher
	if r.dir != "" {
		var err error
		if w, err = fsnotify.NewWatcher(); err != nil {
			r.log.Warn("models directory not watched; rescans on SIGHUP only", "dir", r.dir, "err", err)
			w = nil
		} else {
			defer w.Close()
			r.rewatch(w)
		}
	}
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	rescan := func(trigger string) {
		if err := r.reload(ctx, trigger, reloader{"scan", r.scan}); err != nil && ctx.Err() == nil {
			r.log.Warn("rescan", "trigger", trigger, "err", err)
		}
		if w != nil {
			r.rewatch(w)
		}
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.done:
			return nil
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if r.relevant(ev) {
				debounce.Reset(r.debounce)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			r.log.Warn("watch models directory", "dir", r.dir, "err", err)
		case <-debounce.C:
			rescan(triggerWatch)
		case <-r.hangup:
			debounce.Stop()
			rescan(triggerSIGHUP)
		}
	}
}

// relevant drops events that cannot change what a scan finds: attribute changes, and
// anything under a name the store ignores (a publisher's temporary folder).
func (r *Registry) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	rel, err := filepath.Rel(r.dir, ev.Name)
	if err != nil || rel == "." {
		return err == nil
	}
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	return !ignoredName(first)
}

// rewatch watches the directory and exactly its incomplete visible sub-folders.
func (r *Registry) rewatch(w *fsnotify.Watcher) {
	want := map[string]bool{}
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("watch models directory", "dir", r.dir, "err", err)
		}
	} else {
		want[r.dir] = true
		for _, e := range entries {
			if ignoredName(e.Name()) || !isDir(r.dir, e) {
				continue
			}
			sub := filepath.Join(r.dir, e.Name())
			if _, err := os.Stat(filepath.Join(sub, cardFile)); err != nil {
				want[sub] = true
			}
		}
	}
	have := w.WatchList()
	for _, p := range have {
		if !want[p] {
			_ = w.Remove(p) // a removed folder's watch is already gone
		}
	}
	for p := range want {
		if !slices.Contains(have, p) {
			if err := w.Add(p); err != nil {
				r.log.Warn("watch", "path", p, "err", err)
			}
		}
	}
}
