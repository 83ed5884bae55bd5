package server

import (
	"errors"
	"sync"
)

// Admission errors of gate.enter.
var (
	errBusy     = errors.New("server busy")
	errDraining = errors.New("server shutting down")
)

// gate admits units of work (an HTTP transcription today, a gRPC stream later). It bounds
// them with a semaphore taken with select … default, so a full server answers at once and
// never builds a queue whose wait no client asked for, and it can be closed for shutdown:
// closed, it admits nothing and reports when the last admitted unit has left.
type gate struct {
	slots chan struct{} // one token per admitted unit; cap is the limit

	mu     sync.Mutex    // guards the fields below
	n      int           // admitted units that have not left
	closed bool          // set once by close; enter fails from then on
	idle   chan struct{} // closed when closed && n == 0
}

func newGate(limit int) *gate {
	return &gate{slots: make(chan struct{}, limit), idle: make(chan struct{})}
}

// enter admits one unit, or fails with errDraining once the gate is closed or errBusy when
// every slot is taken. A nil error must be paired with exactly one leave.
func (g *gate) enter() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return errDraining
	}
	select {
	case g.slots <- struct{}{}:
	default:
		return errBusy
	}
	g.n++
	return nil
}

// leave releases the slot enter took.
func (g *gate) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	<-g.slots
	g.n--
	if g.closed && g.n == 0 {
		close(g.idle)
	}
}

// close stops admitting and returns a channel closed once every admitted unit has left.
// Calling it again returns the same channel.
func (g *gate) close() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.closed = true
		if g.n == 0 {
			close(g.idle)
		}
	}
	return g.idle
}

// draining reports whether close was called.
func (g *gate) draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed
}

// inflight is the number of admitted units.
func (g *gate) inflight() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.n
}
