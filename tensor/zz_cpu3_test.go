package tensor

import (
	"fmt"
	"testing"
)

func TestZZElem(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	x := randSlice(r, 1500*1536, 4)
	o := make([]float32, len(x))
	s := randSlice(r, 1500*1500, 8)
	for _, l := range simdLevels() {
		setSIMDLevel(l)
		d1 := threadCPU(func() { GELU(o, x) }, 5)
		d2 := threadCPU(func() { Softmax(s, 1500, 1500) }, 5)
		tq, tk, h, d := 1500, 1500, 6, 64
		q, k, v := randSlice(r, tq*h*d, 1), randSlice(r, tk*h*d, 1), randSlice(r, tk*h*d, 1)
		out := make([]float32, tq*h*d)
		d3 := threadCPU(func() { Attention(out, q, k, v, tq, tk, h, d, false) }, 3)
		fmt.Printf("level %d: GELU %v (%.2f ns/elem) softmax %v (%.2f ns/elem) attention %v (%.1f GFLOPS)\n", l, d1, float64(d1.Nanoseconds())/float64(len(x)), d2, float64(d2.Nanoseconds())/float64(len(s)), d3, 4*float64(tq*tk*h*d)/d3.Seconds()/1e9)
	}
	setSIMDLevel(simdLevel)
}
