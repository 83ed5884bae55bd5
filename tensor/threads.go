package tensor

import (
	"math/bits"
	"runtime"
	"sync"
	"sync/atomic"
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
// runs fn on each, the last chunk on the calling goroutine. Work below two grains runs inline,
// so small (decode-size) calls pay no goroutine start-up (~1 µs).
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
	var wg sync.WaitGroup
	wg.Add(t - 1)
	for i := 0; i < t-1; i++ {
		lo, hi := i*n/t, (i+1)*n/t
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	fn((t-1)*n/t, n)
	wg.Wait()
}

// parallelItems runs fn(worker, i) for every i in [0,n) on up to workers goroutines that take
// items from a shared counter, which balances uneven items (causal attention rows). worker is
// in [0, workers) and identifies per-goroutine scratch.
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
	var next atomic.Int64
	run := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	var wg sync.WaitGroup
	wg.Add(workers - 1)
	for w := 1; w < workers; w++ {
		go func() {
			defer wg.Done()
			run(w)
		}()
	}
	run(0)
	wg.Wait()
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
