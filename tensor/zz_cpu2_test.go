package tensor

import (
	"fmt"
	"math"
	"testing"
)

func TestZZAttn(t *testing.T) {
	r := newRNG(1)
	SetThreads(1)
	SetBLASThreads(1)
	for _, causal := range []bool{false, true} {
		tq, tk, h, d := 1500, 1500, 6, 64
		q, k, v := randSlice(r, tq*h*d, 1), randSlice(r, tk*h*d, 1), randSlice(r, tk*h*d, 1)
		out := make([]float32, tq*h*d)
		for _, rows := range []int{12, 42, 96, 384} {
			attnScoreFloats = rows * tk
			dd := threadCPU(func() { Attention(out, q, k, v, tq, tk, h, d, causal) }, 3)
			a := attnArgs{out: out, q: q, k: k, v: v, tq: tq, tk: tk, heads: h, d: d, w: h * d, causal: causal, scale: float32(1 / math.Sqrt(64))}
			d2 := threadCPU(a.gemm, 3)
			fmt.Printf("causal %v rows %d: fused %v %.1f GFLOPS, gemm %v %.1f\n", causal, rows, dd, 4*float64(tq*tk*h*d)/dd.Seconds()/1e9, d2, 4*float64(tq*tk*h*d)/d2.Seconds()/1e9)
		}
	}
	attnScoreFloats = 1 << 16
}
