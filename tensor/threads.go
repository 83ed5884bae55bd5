package tensor

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Threading policy
//
// Two thread counts are in play, and they are set separately:
//
//   - Threads (SetThreads) is how many goroutines one chorus kernel call may use: LayerNorm,
//     softmax and GELU rows, the small-m GEMM kernels (split over output columns), the fused
//     attention (split over heads × query blocks), f16 conversion, and large GEMMs split by
//     rows. It defaults to GOMAXPROCS.
//   - BLASThreads (SetBLASThreads) is how many threads one OpenBLAS call may use. OpenBLAS keeps
//     it process-wide. This package sets it to 1 at start-up unless OPENBLAS_NUM_THREADS (or
//     GOTO_NUM_THREADS, OMP_NUM_THREADS) is set, so that chorus does the splitting itself.
//
// Why chorus splits rather than OpenBLAS: after a multi-threaded call, OpenBLAS's worker
// threads spin (sched_yield) for a while before sleeping, and on a 2-core machine they then
// compete with the goroutines of the next chorus kernel; concurrent multi-threaded calls
// also serialise inside OpenBLAS. BenchmarkEncoderLayer (one Whisper-tiny encoder layer,
// 1500 frames) measured 84–105 ms with Threads 2/BLAS 1 against 98–116 ms with Threads 2/
// BLAS 2 in the same runs, on a shared 2-core EPYC. For a lone GEMM the two are close: a
// 1500×384×1536 product split into two single-threaded row halves took 10.3–15.8 ms, with
// OpenBLAS's own two threads 9.0–18.4 ms, depending on the load.
//
// What each kernel does:
//
//   - m <= SmallM rows (decoding) never reach OpenBLAS: Linear and LinearF16 use chorus's
//     streaming kernel with the output columns split over Threads goroutines.
//   - Larger Linear: with BLASThreads() == 1, rows are split over Threads goroutines, one
//     single-threaded Sgemm each (each packs the weight again, ~1% of the product); with more
//     BLAS threads, one Sgemm call that OpenBLAS splits.
//   - Attention with the C kernels involves no BLAS at all. Kernels that would issue several
//     Sgemm calls at once (LinearF16 tiles, the pure-Go attention path) do so only when
//     BLASThreads() == 1, and otherwise issue them in order.
//
// The goroutines: a kernel call runs its share on the calling goroutine and hands the rest to
// the team, helper goroutines that stay on between calls (see teamT), so that the dozens of
// short kernels of a decoding step do not each pay for starting a goroutine and waking a
// thread.
//
// Settings: the defaults (Threads = GOMAXPROCS, BLASThreads = 1) suit a single stream. A
// server decoding many streams concurrently on few cores may prefer SetThreads(1) and
// parallelism across streams. Both setters are safe to call at any time; a kernel call in
// flight keeps the values it started with.

var threads atomic.Int32

func init() { threads.Store(int32(runtime.GOMAXPROCS(0))) }

// SetThreads sets how many goroutines one kernel call may use; n < 1 means GOMAXPROCS.
func SetThreads(n int) {
	if n < 1 {
		n = runtime.GOMAXPROCS(0)
	}
	threads.Store(int32(n))
}

// Threads reports how many goroutines one kernel call may use.
func Threads() int { return int(threads.Load()) }

// parallelFor splits [0,n) into at most Threads() contiguous chunks of at least grain items and
// runs fn on each, the calling goroutine taking part. Work below two grains runs inline, so
// small (decode-size) calls pay no hand-off.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	t := Threads()
	if grain < 1 {
		grain = 1
	}
	if c := n / grain; c < t {
		t = c
	}
	if t <= 1 {
		fn(0, n)
		return
	}
	parallelItems(t, t, func(_, i int) { fn(i*n/t, (i+1)*n/t) })
}

// parallelItems runs fn(worker, i) for every i in [0,n) on up to workers goroutines, the
// calling one included, that take items from a shared counter, which balances uneven items
// (causal attention rows). worker is in [0, workers) and identifies per-goroutine scratch.
// The helpers come from the team (below); when another call holds the team, from fresh
// goroutines.
func parallelItems(n, workers int, fn func(worker, i int)) {
	if workers > n {
		workers = n
	}
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	j := &job{n: n, workers: workers, fn: fn}
	if team.run(j) {
		return
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			j.work()
		}()
	}
	j.do(0)
	wg.Wait()
}

// A job is one parallelItems call: items are claimed from next, so a helper that starts late
// finds the items already done by the others and returns, and the caller never waits for a
// helper that has not started. Helpers get worker ids 1, 2, … in the order they arrive.
type job struct {
	n, workers int
	fn         func(worker, i int)
	next       atomic.Int64  // next unclaimed item
	ids        atomic.Int32  // worker ids handed out to helpers
	done       atomic.Int64  // items finished
	fin        chan struct{} // closed when the last item finishes (team jobs)
}

// work runs items as the next helper, if the job still wants one.
func (j *job) work() {
	if id := int(j.ids.Add(1)); id < j.workers {
		j.do(id)
	}
}

func (j *job) do(worker int) {
	for {
		i := int(j.next.Add(1) - 1)
		if i >= j.n {
			return
		}
		j.fn(worker, i)
		if j.done.Add(1) == int64(j.n) && j.fin != nil {
			close(j.fin)
		}
	}
}

// The team is a set of helper goroutines that stay on after a job and poll for the next one
// for teamSpin before they park. A decoding step is a chain of kernels, each a few to a few
// hundred microseconds long; starting a goroutine for each and waking a parked thread for it
// cost 14–23 µs per call on the 2-core EPYC VM (10 µs of work per side: the helper started
// after the caller had finished its half), as long as the kernels themselves. With a polling
// helper the same call costs 1–1.5 µs over its work (BenchmarkHandoff; ~20 µs again once the
// helper has parked), and Whisper tiny decoded ~20% faster. While polling, helpers yield
// (runtime.Gosched), so other goroutines still get their processor.
//
// One job runs on the team at a time; a concurrent call (another stream's kernel, or a kernel
// nested in a job's items) starts goroutines as before. Helpers are started on first use, up
// to Threads()-1, and then live as long as the process (parked when idle).
var team teamT

// teamSpin is how long idle helpers poll for the next job before they park: long enough to
// bridge the serial stretches between a decoding step's kernels (and between steps, the
// argmax over the vocabulary), short enough that an idle process soon stops spinning.
const teamSpin = 200 * time.Microsecond

// teamWait is how long a caller polls for the items its helpers are still running before
// it blocks.
const teamWait = 50 * time.Microsecond

type teamT struct {
	mu      sync.Mutex // held by the caller whose job is on the team
	helpers int        // helpers started (guarded by mu)
	cur     atomic.Pointer[job]

	park     sync.Mutex
	wake     *sync.Cond // on park
	sleeping int        // helpers parked (guarded by park)
}

// run runs j on the team with the calling goroutine as worker 0 and reports false, doing
// nothing, when the team is busy.
func (t *teamT) run(j *job) bool {
	if !t.mu.TryLock() {
		return false
	}
	defer t.mu.Unlock()
	if t.wake == nil {
		t.wake = sync.NewCond(&t.park)
	}
	for ; t.helpers < j.workers-1; t.helpers++ {
		go t.helper()
	}
	j.fin = make(chan struct{})
	t.cur.Store(j)
	t.park.Lock()
	if t.sleeping > 0 {
		t.wake.Broadcast()
	}
	t.park.Unlock()
	j.do(0)
	// Items still running were claimed by helpers that are running them: poll for them
	// briefly, then block, so that a helper whose thread the OS has preempted (another
	// process, even a niced one, runs on its core) does not also idle the caller's core.
	if j.done.Load() < int64(j.n) {
		start := time.Now()
		for i := 1; j.done.Load() < int64(j.n); i++ {
			if i%256 == 0 && time.Since(start) > teamWait {
				<-j.fin
				break
			}
			if i%32 == 0 {
				runtime.Gosched()
			}
		}
	}
	return true
}

// helper runs each new job posted to the team.
func (t *teamT) helper() {
	var last *job
	for {
		j := t.next(last)
		j.work()
		last = j
	}
}

// next returns the first job posted after last: it polls for teamSpin, then parks.
func (t *teamT) next(last *job) *job {
	start := time.Now()
	for i := 1; ; i++ {
		if j := t.cur.Load(); j != last {
			return j
		}
		if i%256 == 0 && time.Since(start) > teamSpin {
			break
		}
		if i%32 == 0 {
			runtime.Gosched()
		}
	}
	t.park.Lock()
	defer t.park.Unlock()
	for t.cur.Load() == last {
		t.sleeping++
		t.wake.Wait()
		t.sleeping--
	}
	return t.cur.Load()
}

// scratch pools float32 buffers so hot kernels (attention scores, im2col, f16 tiles) do not
// allocate per call. Buffers come in power-of-two size classes so kernels of very different
// sizes do not evict each other's buffers, and travel by pointer to keep sync.Pool free of
// allocations.
var scratch [64]sync.Pool

// getScratch returns a buffer of length n (contents undefined); release it with putScratch.
func getScratch(n int) *[]float32 {
	c := bits.Len(uint(n - 1))
	if n <= 1 {
		c = 0
	}
	if p, ok := scratch[c].Get().(*[]float32); ok {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n, 1<<c)
	return &b
}

// putScratch returns a buffer obtained from getScratch.
func putScratch(p *[]float32) {
	c := bits.Len(uint(cap(*p) - 1))
	if cap(*p) <= 1 {
		c = 0
	}
	scratch[c].Put(p)
}
