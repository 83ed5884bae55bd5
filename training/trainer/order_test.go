package trainer

import (
	"slices"
	"testing"
)

func TestOrder(t *testing.T) {
	const n = 37
	o, err := NewOrder(5, n)
	if err != nil {
		t.Fatal(err)
	}
	epochs := make([][]int, 3)
	for pos := int64(0); pos < 3*n; pos++ {
		e, idx := o.At(pos)
		if e != pos/n {
			t.Fatalf("At(%d) epoch %d, want %d", pos, e, pos/n)
		}
		epochs[e] = append(epochs[e], idx)
	}
	for e, perm := range epochs {
		sorted := slices.Sorted(slices.Values(perm))
		for i, v := range sorted {
			if v != i {
				t.Fatalf("epoch %d is not a permutation of 0…%d: %v", e, n-1, perm)
			}
		}
	}
	if slices.Equal(epochs[0], epochs[1]) {
		t.Error("epochs 0 and 1 have the same order")
	}
	// Random access (a resumed run starts mid-epoch) equals sequential access.
	fresh, _ := NewOrder(5, n)
	for _, pos := range []int64{2*n + 3, 5, n, 0, 3*n - 1} {
		_, idx := fresh.At(pos)
		if want := epochs[pos/n][pos%n]; idx != want {
			t.Errorf("random access At(%d) = %d, sequential gave %d", pos, idx, want)
		}
	}
	other, _ := NewOrder(6, n)
	var diff bool
	for pos := range int64(n) {
		_, a := other.At(pos)
		diff = diff || a != epochs[0][pos]
	}
	if !diff {
		t.Error("seeds 5 and 6 give the same order")
	}
	if e, idx := o.At(-4); e != 0 || idx != epochs[0][0] {
		t.Errorf("At(-4) = %d, %d", e, idx)
	}
}

func TestOrderRejectsEmpty(t *testing.T) {
	for _, n := range []int{0, -1} {
		if _, err := NewOrder(1, n); err == nil {
			t.Errorf("NewOrder(1, %d) succeeded", n)
		}
	}
	o, _ := NewOrder(1, 1)
	if _, idx := o.At(99); idx != 0 {
		t.Errorf("one-example order gave index %d", idx)
	}
}
