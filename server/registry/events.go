package registry

import (
	"errors"
	"time"
)

// Event is one change of a variant's state.
type Event struct {
	Info VariantInfo
	Time time.Time
	// Message says what happened, for people ("loaded in 1.2s", "load failed: …").
	Message string
}

// subscriberBuffer is how many events a watcher may fall behind before it is dropped; a
// registry never blocks on a slow watcher.
const subscriberBuffer = 256

// errWatchBehind ends a watch whose reader fell more than subscriberBuffer events behind.
var errWatchBehind = errors.New("watcher fell behind")

type subscriber struct {
	ch chan Event
	// err is why ch was closed (nil: the registry closed or the watcher cancelled); written
	// under Registry.mu before ch is closed, so a reader that saw the close may read it.
	err error
}

// subscribe returns the state of every variant and a channel of every change after it,
// taken under one lock so that no change is missed or seen twice. The channel is closed
// when cancel is called, the registry closes, or the reader falls behind (then err
// returns errWatchBehind).
func (r *Registry) subscribe() (snapshot []Event, events <-chan Event, err func() error, cancel func()) {
	s := &subscriber{ch: make(chan Event, subscriberBuffer)}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	for _, e := range r.entries {
		snapshot = append(snapshot, Event{Info: r.infoLocked(e), Time: now, Message: "current state"})
	}
	if r.closed {
		close(s.ch)
		return snapshot, s.ch, func() error { return nil }, func() {}
	}
	r.subs[s] = struct{}{}
	err = func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		return s.err
	}
	cancel = func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if _, ok := r.subs[s]; ok {
			r.dropLocked(s)
		}
	}
	return snapshot, s.ch, err, cancel
}

func (r *Registry) dropLocked(s *subscriber) {
	delete(r.subs, s)
	close(s.ch)
}

// publishLocked tells every subscriber about e's new state, without blocking, and wakes
// whoever waits on r.changed.
func (r *Registry) publishLocked(e *entry, msg string) {
	ev := Event{Info: r.infoLocked(e), Time: r.now(), Message: msg}
	for s := range r.subs {
		select {
		case s.ch <- ev:
		default:
			s.err = errWatchBehind
			r.dropLocked(s)
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}
