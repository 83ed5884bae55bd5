package server

import (
	"context"
	"sync"
	"testing"
	"time"
)

// TestSchedulerFIFO checks that waiting jobs run in arrival order, one slot at a time.
func TestSchedulerFIFO(t *testing.T) {
	s := newScheduler(1)
	hold := make(chan struct{})
	started := make(chan struct{})
	go s.do(t.Context(), func() { close(started); <-hold })
	<-started
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.do(t.Context(), func() { mu.Lock(); order = append(order, i); mu.Unlock() })
		}()
		for s.waiting() != i+1 { // queue them one by one, so arrival order is known
			time.Sleep(time.Millisecond)
		}
	}
	close(hold)
	wg.Wait()
	for i, v := range order {
		if v != i {
			t.Fatalf("order %v, want 0..4", order)
		}
	}
}

// TestSchedulerCancel checks that a waiter whose context ends leaves the queue without
// running and without losing the slot.
func TestSchedulerCancel(t *testing.T) {
	s := newScheduler(1)
	hold := make(chan struct{})
	started := make(chan struct{})
	done := make(chan struct{})
	go func() { s.do(t.Context(), func() { close(started); <-hold }); close(done) }()
	<-started
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error)
	go func() { errc <- s.do(ctx, func() { t.Error("cancelled job ran") }) }()
	for s.waiting() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("no error from a cancelled wait")
	}
	close(hold)
	<-done
	ran := false
	if err := s.do(t.Context(), func() { ran = true }); err != nil || !ran {
		t.Fatalf("slot lost after a cancelled wait: %v", err)
	}
	if s.free != 1 {
		t.Fatalf("free = %d, want 1", s.free)
	}
}
