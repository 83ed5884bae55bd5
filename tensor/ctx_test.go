package tensor

import "testing"

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
