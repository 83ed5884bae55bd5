package tensor

import (
	"runtime"
	"testing"
)

// TestArenaBoundedUnderVaryingShapes: passes with different shapes (training batches of
// varying length) must reuse buffers, not accumulate one set per distinct length.
func TestArenaBoundedUnderVaryingShapes(t *testing.T) {
	c := NewCtx()
	retained := func() (n int) {
		for _, l := range c.free {
			for _, b := range l {
				n += cap(b)
			}
		}
		return n
	}
	var after10 int
	for pass := range 200 {
		rows := 300 + (pass*37)%200 // 300…499 rows, a new length nearly every pass
		for range 4 {
			c.New(rows, 64)
		}
		c.Reset()
		if pass == 10 {
			after10 = retained()
		}
	}
	// Every length maps to one of a few size classes; the pool may grow a little after the
	// first passes but not with the number of distinct lengths.
	if got := retained(); got > 3*after10 {
		t.Errorf("arena holds %d floats after 200 passes, %d after 10: it grows with the shapes seen", got, after10)
	}
}

func TestSizeClass(t *testing.T) {
	prev := 0
	for n := 1; n < 1<<22; n += 1 + n/7 {
		c := sizeClass(n)
		if c < n || float64(c) > 1.3*float64(n)+64 {
			t.Fatalf("sizeClass(%d) = %d", n, c)
		}
		if c < prev {
			t.Fatalf("sizeClass not monotonic at %d", n)
		}
		prev = c
	}
}

// TestArenaReusesLargerBuffers: after a pass of long tensors, passes of shorter ones (within
// a few size classes) take the long pass's buffers — no new tensor storage — and a much
// shorter tensor still gets a buffer of its own class.
func TestArenaReusesLargerBuffers(t *testing.T) {
	c := NewCtx()
	pass := func(rows int) {
		for range 3 {
			c.New(rows, 64)
		}
		c.Reset()
	}
	allocated := func(f func()) uint64 { // bytes the runtime handed out during f
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		f()
		runtime.ReadMemStats(&b)
		return b.TotalAlloc - a.TotalAlloc
	}
	pass(1000)
	for _, rows := range []int{900, 700, 500} {
		pass(1000) // the long pass again: its buffers are what the shorter one may borrow
		if got := allocated(func() { pass(rows) }); got > 4096 {
			t.Errorf("a pass of %d rows after one of 1000 allocated %d bytes: it did not reuse the long pass's buffers", rows, got)
		}
	}
	pass(1000)
	c.New(10, 64)
	if b := c.used[len(c.used)-1]; cap(b) != sizeClass(640) {
		t.Errorf("a 640-float tensor took a buffer of capacity %d, want its own class %d", cap(b), sizeClass(640))
	}
	c.Reset()
}
