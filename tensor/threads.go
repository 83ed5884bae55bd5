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
//   - Threads (SetThreads) is how many goroutines one chorus kernel call may use for its own
//     loops: LayerNorm and softmax rows, GELU, the small-m GEMV kernels (split over output
//     columns), f16 conversion, and the heads of Attention. It defaults to GOMAXPROCS.
//   - BLASThreads (SetBLASThreads) is how many threads one OpenBLAS call may use. OpenBLAS
//     keeps this process-wide; chorus never changes it behind the caller's back.
//
// How they interact:
//
//   - Decode-size products (m <= SmallM rows) never reach OpenBLAS: Linear and LinearF16 run
//     chorus's own kernel, which streams the weight once for all rows and splits the output
//     columns over Threads goroutines. So one- to eight-row products do not pay for OpenBLAS
//     threads (a second OpenBLAS thread made 8×384×1536 slower, see docs/STACK.md).
//   - A kernel that would issue several GEMMs at once (Attention heads, LinearF16 tiles) does so
//     only when BLASThreads() == 1. With more OpenBLAS threads, concurrent calls would contend
//     for the same OpenBLAS thread pool (its level-3 driver serialises them behind a lock), so
//     the kernel issues its GEMMs one after another and lets OpenBLAS split each one, while its
//     own non-BLAS work (softmax, conversion) still uses Threads goroutines.
//   - Large single GEMMs (the encoder's 1500×384×1536) are one Sgemm call, split by OpenBLAS.
//
// Recommended settings on a 2-core machine: one stream at a time (CLI, benchmarks):
// SetBLASThreads(2), SetThreads(2). A server decoding many streams concurrently:
// SetBLASThreads(1), SetThreads(1) or 2, and parallelism across streams. Both setters are safe
// to call at any time; a call in flight keeps the values it started with.

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
