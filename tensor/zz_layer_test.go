package tensor

import (
	"fmt"
	"testing"
)

// encoder layer of whisper tiny: d 384, 6 heads, FFN 1536, T 1500.
func BenchmarkZZLayer(b *testing.B) {
	r := newRNG(1)
	T, D, H, F := 1500, 384, 6, 1536
	x := randSlice(r, T*D, 1)
	g, be := randSlice(r, D, 1), randSlice(r, D, 1)
	wqkv := randSlice(r, 3*D*D, 0.05)
	bqkv := randSlice(r, 3*D, 0.05)
	wo := randSlice(r, D*D, 0.05)
	w1, b1 := randSlice(r, F*D, 0.05), randSlice(r, F, 0.05)
	w2, b2 := randSlice(r, D*F, 0.05), randSlice(r, D, 0.05)
	h := make([]float32, T*D)
	qkv := make([]float32, T*3*D)
	q, k, v := make([]float32, T*D), make([]float32, T*D), make([]float32, T*D)
	att := make([]float32, T*D)
	o := make([]float32, T*D)
	f := make([]float32, T*F)
	f2 := make([]float32, T*F)
	for _, tc := range []struct{ c, bl int }{{2, 2}, {2, 1}, {1, 2}, {1, 1}} {
		b.Run(fmt.Sprintf("t%d-b%d", tc.c, tc.bl), func(b *testing.B) {
			withThreads(b, tc.c, tc.bl, func() {
				for b.Loop() {
					LayerNorm(h, x, g, be, T, D, 1e-5)
					Linear(qkv, h, wqkv, bqkv, T, D, 3*D)
					for t := 0; t < T; t++ {
						copy(q[t*D:], qkv[t*3*D:t*3*D+D])
						copy(k[t*D:], qkv[t*3*D+D:t*3*D+2*D])
						copy(v[t*D:], qkv[t*3*D+2*D:t*3*D+3*D])
					}
					Attention(att, q, k, v, T, T, H, D/H, false)
					Linear(o, att, wo, nil, T, D, D)
					AddInPlace(o, x)
					LayerNorm(h, o, g, be, T, D, 1e-5)
					Linear(f, h, w1, b1, T, D, F)
					GELU(f2, f)
					Linear(h, f2, w2, b2, T, F, D)
					AddInPlace(h, o)
				}
			})
		})
	}
}
