package tensor

import (
	"fmt"
	"testing"
)

func TestZZRB(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	tq, tk, h, d := 1500, 1500, 6, 64
	q, k, v := randSlice(r, tq*h*d, 1), randSlice(r, tk*h*d, 1), randSlice(r, tk*h*d, 1)
	out := make([]float32, tq*h*d)
	for _, rows := range []int{24, 48, 72, 96, 192} {
		attnScoreFloats = rows * 1504
		d3 := threadCPU(func() { Attention(out, q, k, v, tq, tk, h, d, false) }, 3)
		fmt.Printf("rows %d: attention %v (%.1f GFLOPS)\n", rows, d3, 4*float64(tq*tk*h*d)/d3.Seconds()/1e9)
	}
	attnScoreFloats = 1 << 16
}
