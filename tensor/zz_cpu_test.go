package tensor

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

func tcpu() int64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func threadCPU(f func(), reps int) time.Duration {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
	best := time.Hour
	for i := 0; i < reps; i++ {
		a := tcpu()
		f()
		d := time.Duration(tcpu() - a)
		if d < best {
			best = d
		}
	}
	return best
}

func TestZZCPU(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	tq, tk, h, d := 1500, 1500, 6, 64
	q, k, v := randSlice(r, tq*h*d, 1), randSlice(r, tk*h*d, 1), randSlice(r, tk*h*d, 1)
	out := make([]float32, tq*h*d)
	for _, rows := range []int{8, 16, 43, 128, 384, 1500} {
		attnScoreFloats = rows * tk
		dd := threadCPU(func() { Attention(out, q, k, v, tq, tk, h, d, false) }, 3)
		fmt.Printf("attention rows %d: %v  %.1f GFLOPS\n", rows, dd, 4*float64(tq*tk*h*d)/dd.Seconds()/1e9)
	}
	s := make([]float32, tq*tk)
	dd := threadCPU(func() { Sgemm(false, true, tq, tk, d, 1, q, h*d, k, h*d, 0, s, tk) }, 3)
	fmt.Printf("QK one head: %v %.1f GFLOPS\n", dd, 2*float64(tq*tk*d)/dd.Seconds()/1e9)
	dd = threadCPU(func() { Softmax(s, tq, tk) }, 3)
	fmt.Printf("softmax one head: %v\n", dd)
	dd = threadCPU(func() { Sgemm(false, false, tq, d, tk, 1, s, tk, v, h*d, 0, out, h*d) }, 3)
	fmt.Printf("PV one head: %v %.1f GFLOPS\n", dd, 2*float64(tq*tk*d)/dd.Seconds()/1e9)
	for _, sh := range [][3]int{{1500, 384, 1536}, {1500, 1536, 384}, {1, 384, 1536}, {8, 384, 1536}, {1, 384, 51865}} {
		m, kk, n := sh[0], sh[1], sh[2]
		x, w := randSlice(r, m*kk, 1), randSlice(r, n*kk, 1)
		o := make([]float32, m*n)
		dd = threadCPU(func() { Linear(o, x, w, nil, m, kk, n) }, 5)
		d2 := threadCPU(func() { Sgemm(false, true, m, n, kk, 1, x, kk, w, kk, 0, o, n) }, 5)
		fmt.Printf("linear %v: %v %.1f GFLOPS (sgemm %v)\n", sh, dd, 2*float64(m*n*kk)/dd.Seconds()/1e9, d2)
	}
}

func TestZZGemv(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	for _, sh := range [][3]int{{1, 384, 1536}, {1, 1536, 384}, {3, 384, 1536}, {8, 384, 1536}, {1, 384, 51865}, {3, 384, 51865}, {8, 384, 51865}} {
		m, kk, n := sh[0], sh[1], sh[2]
		x, w := randSlice(r, m*kk, 1), randSlice(r, n*kk, 1)
		wh := make([]uint16, len(w))
		F32ToF16Slice(wh, w)
		o := make([]float32, m*n)
		d1 := threadCPU(func() { Linear(o, x, w, nil, m, kk, n) }, 7)
		d2 := threadCPU(func() { LinearF16(o, x, wh, nil, m, kk, n) }, 7)
		fmt.Printf("%v: f32 %v (%.1f GB/s)  f16 %v (%.1f GB/s)\n", sh, d1, 4*float64(n*kk)/d1.Seconds()/1e9, d2, 2*float64(n*kk)/d2.Seconds()/1e9)
	}
}
