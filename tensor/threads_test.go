package tensor

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestTeamConcurrent runs parallelItems from several goroutines at once (one gets the team,
// the others fall back to fresh goroutines), with nested calls and pauses longer than
// teamSpin (helpers park and must be woken), and checks that every item runs exactly once and
// that no two items running at the same time share a worker id (per-worker scratch).
func TestTeamConcurrent(t *testing.T) {
	withThreads(t, 3, 1, func() {
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for round := range 30 {
					n := 1 + (g*7+round*3)%50
					seen := make([]atomic.Int32, n)
					var busy [3]atomic.Int32
					parallelItems(n, 3, func(w, i int) {
						if w < 0 || w >= 3 {
							t.Errorf("worker %d", w)
							return
						}
						if busy[w].Add(1) != 1 {
							t.Errorf("worker id %d used by two items at once", w)
						}
						seen[i].Add(1)
						if i%7 == 0 { // nested: the team is busy, so this one starts goroutines
							var inner atomic.Int32
							parallelFor(10, 1, func(lo, hi int) { inner.Add(int32(hi - lo)) })
							if inner.Load() != 10 {
								t.Errorf("nested parallelFor covered %d of 10", inner.Load())
							}
						}
						busy[w].Add(-1)
					})
					for i := range seen {
						if c := seen[i].Load(); c != 1 {
							t.Errorf("goroutine %d round %d: item %d of %d ran %d times", g, round, i, n, c)
						}
					}
					if round%10 == 9 {
						time.Sleep(2 * teamSpin) // let the helpers park
					}
				}
			}()
		}
		wg.Wait()
	})
}

// BenchmarkHandoff measures what a two-way parallelItems call costs over its work: each side
// spins 10 µs, with a gap of serial work before each call (as between a decoding step's
// kernels). overhead-µs is the call's time beyond the 10 µs; ~0 means the helper ran in
// parallel from the start.
func BenchmarkHandoff(b *testing.B) {
	spin := func(d time.Duration) {
		for t := time.Now(); time.Since(t) < d; {
		}
	}
	for _, gap := range []time.Duration{0, 20 * time.Microsecond, 100 * time.Microsecond, time.Millisecond} {
		b.Run(gap.String(), func(b *testing.B) {
			withThreads(b, 2, 1, func() {
				var in time.Duration
				for b.Loop() {
					spin(gap)
					t := time.Now()
					parallelItems(2, 2, func(_, _ int) { spin(10 * time.Microsecond) })
					in += time.Since(t)
				}
				b.ReportMetric(float64(in.Microseconds())/float64(b.N)-10, "overhead-µs")
			})
		})
	}
}
