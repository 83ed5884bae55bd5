package tensor

import (
	"math"
	"slices"
	"strings"
	"testing"
)

// TestAddRowsIndexed checks the kernel against the Go loop on row widths around the 8- and
// 32-lane blocks, with and without weights, with repeated rows (which accumulate in order):
// equal bit for bit without weights, within a rounding with them (the C compiler may fuse
// the multiply and add). Out-of-range rows and short inputs panic.
func TestAddRowsIndexed(t *testing.T) {
	r := newRNG(41)
	for _, c := range []int{1, 7, 8, 9, 31, 32, 33, 64, 255, 256, 257} {
		for _, weighted := range []bool{false, true} {
			const rows, n = 6, 20
			dst := randSlice(r, rows*c, 1)
			src := randSlice(r, n*c, 1)
			idx := make([]int32, n)
			for j := range idx {
				idx[j] = int32(r.IntN(rows))
			}
			var w []float32
			if weighted {
				w = randSlice(r, n, 1)
			}
			want := slices.Clone(dst)
			addRowsIndexedGo(want, src, idx, w, c)
			AddRowsIndexed(dst, src, idx, w, c)
			for i := range dst {
				d := math.Abs(float64(dst[i] - want[i]))
				if (!weighted && d != 0) || d > 1e-5*(1+math.Abs(float64(want[i]))) {
					t.Fatalf("c=%d weighted=%v: element %d = %g, want %g", c, weighted, i, dst[i], want[i])
				}
			}
		}
	}
	for name, f := range map[string]func(){
		"outside dst":   func() { AddRowsIndexed(make([]float32, 8), make([]float32, 4), []int32{2}, nil, 4) },
		"negative":      func() { AddRowsIndexed(make([]float32, 8), make([]float32, 4), []int32{-1}, nil, 4) },
		"short src":     func() { AddRowsIndexed(make([]float32, 8), make([]float32, 3), []int32{0}, nil, 4) },
		"short weights": func() { AddRowsIndexed(make([]float32, 8), make([]float32, 8), []int32{0, 1}, []float32{1}, 4) },
	} {
		func() {
			defer func() {
				if e := recover(); e == nil || !strings.Contains(e.(string), "add rows") {
					t.Errorf("%s: panic %v", name, e)
				}
			}()
			f()
		}()
	}
}

// TestExpertFFN checks the fused expert kernel against its naive reference over widths that
// exercise the 16- and 8-unit blocks and the 32- and 8-wide output chunks, with and without
// biases and token weights; widths that are not multiples of 8 are refused (false).
func TestExpertFFN(t *testing.T) {
	r := newRNG(43)
	ran := false
	for _, c := range []int{8, 40, 256} {
		for _, s := range []int{8, 16, 24, 64} {
			for _, weighted := range []bool{false, true} {
				for _, bias := range []bool{false, true} {
					const rows, n = 9, 11 // two blocks of four and a tail of three
					x := randSlice(r, rows*c, 1)
					dst := randSlice(r, rows*c, 1)
					want := append([]float32(nil), dst...)
					idx := make([]int32, n)
					for j := range idx {
						idx[j] = int32(r.IntN(rows))
					}
					var w, b1 []float32
					if weighted {
						w = randSlice(r, n, 1)
					}
					if bias {
						b1 = randSlice(r, s, 0.5)
					}
					w1t, w2r := randSlice(r, c*s, 0.2), randSlice(r, s*c, 0.2)
					if !ExpertFFN(dst, x, idx, w, c, s, w1t, b1, w2r, make([]float32, 4*s)) {
						continue // no kernel on this CPU or build
					}
					ran = true
					ExpertFFNNaive(want, x, idx, w, c, s, w1t, b1, w2r)
					for i := range want {
						if d := math.Abs(float64(dst[i] - want[i])); d > 1e-4*(1+math.Abs(float64(want[i]))) {
							t.Fatalf("c %d s %d weighted %v bias %v: value %d is %g, naive %g", c, s, weighted, bias, i, dst[i], want[i])
						}
					}
				}
			}
		}
	}
	if !ran && simdLevel > 0 {
		t.Fatal("the kernel never ran on a CPU with SIMD")
	}
	if ExpertFFN(make([]float32, 16), make([]float32, 16), []int32{0}, nil, 16, 12, make([]float32, 192), nil, make([]float32, 192), make([]float32, 48)) {
		t.Error("12 units (not a multiple of 8) ran")
	}
}
