package tensor

import (
	"fmt"
	"testing"
)

func TestZZSmallM(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	for _, m := range []int{1, 2, 4, 8, 12, 16, 24, 32} {
		for _, kn := range [][2]int{{384, 1536}, {1536, 384}, {384, 51865}} {
			k, n := kn[0], kn[1]
			x, w := randSlice(r, m*k, 1), randSlice(r, n*k, 1)
			wh := make([]uint16, len(w))
			F32ToF16Slice(wh, w)
			o := make([]float32, m*n)
			d1 := threadCPU(func() { gemmNTKernel(m, n, k, 1, x, k, w, k, nil, o, n) }, 5)
			d2 := threadCPU(func() { Sgemm(false, true, m, n, k, 1, x, k, w, k, 0, o, n) }, 5)
			d3 := threadCPU(func() { gemmNTF16Kernel(m, n, k, 1, x, k, wh, k, nil, o, n) }, 5)
			old := SmallM
			_ = old
			d4 := threadCPU(func() {
				buf := make([]float32, 256*k)
				for j := 0; j < n; j += 256 {
					j1 := min(j+256, n)
					f16ToF32Kernel(buf[:(j1-j)*k], wh[j*k:j1*k])
					Sgemm(false, true, m, j1-j, k, 1, x, k, buf, k, 0, o[j:], n)
				}
			}, 5)
			fmt.Printf("m=%2d %dx%d: kernel %v sgemm %v | f16 kernel %v tiled %v\n", m, k, n, d1, d2, d3, d4)
		}
	}
}
