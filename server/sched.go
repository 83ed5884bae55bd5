package server

import (
	"context"
	"sync"
)

// scheduler shares the compute slots among streams fairly: a stream with work ready takes a
// ticket and waits in arrival order, so it waits behind at most one job of each other stream
// (each stream has at most one job queued: its handler blocks in do). A stream that fell
// behind does not get a burst of turns to catch up; it decodes all its new audio in one job
// instead (the session skips steps that are already stale).
type scheduler struct {
	mu    sync.Mutex      // guards the fields below
	free  int             // slots not running a job
	queue []chan struct{} // waiting tickets, oldest first; closing one hands it a slot
}

func newScheduler(slots int) *scheduler { return &scheduler{free: max(slots, 1)} }

// do runs f in a compute slot, after the jobs queued before it. It returns ctx's error,
// without running f, when ctx ends while it waits.
func (s *scheduler) do(ctx context.Context, f func()) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	f()
	return nil
}

// acquire takes a slot in arrival order, or returns ctx's error.
func (s *scheduler) acquire(ctx context.Context) error {
	s.mu.Lock()
	if s.free > 0 && len(s.queue) == 0 {
		s.free--
		s.mu.Unlock()
		return nil
	}
	t := make(chan struct{})
	s.queue = append(s.queue, t)
	s.mu.Unlock()
	select {
	case <-t:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for i, q := range s.queue {
			if q == t { // still waiting: leave the queue
				s.queue = append(s.queue[:i], s.queue[i+1:]...)
				s.mu.Unlock()
				return ctx.Err()
			}
		}
		s.mu.Unlock()
		s.release() // granted just as ctx ended: pass the slot on
		return ctx.Err()
	}
}

// yield gives up the calling job's slot while wait blocks, and takes a slot again (in
// arrival order) before returning: a job that waits for other work — a batch of encoders it
// joined — must not hold a core idle meanwhile. It always gets its slot back, whatever
// happens to the job's context (do releases it when the job returns), so wait must end.
func (s *scheduler) yield(wait func()) {
	s.release()
	wait()
	_ = s.acquire(context.Background()) // cannot fail without a deadline
}

// release hands the slot to the oldest waiter, or frees it.
func (s *scheduler) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) > 0 {
		t := s.queue[0]
		s.queue = s.queue[1:]
		close(t)
		return
	}
	s.free++
}

// waiting is the number of jobs queued for a slot.
func (s *scheduler) waiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
