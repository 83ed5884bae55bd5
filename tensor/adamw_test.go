package tensor

import (
	"fmt"
	"math"
	"testing"
)

// TestAdamWUpdate checks AdamWUpdate (the SIMD kernels at each level this CPU has, or the Go
// one) against the update computed in float64 from the same float32 inputs, on lengths with and
// without a vector tail, with and without decay, and that it zeroes the gradients. The kernels
// round each operation in float32, so they differ from float64 by a few ulp of w.
func TestAdamWUpdate(t *testing.T) {
	eachLevel(t, func(t *testing.T) {
		r := newRNG(301)
		for _, n := range []int{1, 7, 8, 15, 16, 17, 33, 1000} {
			for _, c := range []AdamWConsts{
				{Scale: 1, B1: 0.9, OneMinusB1: 0.1, B2: 0.999, OneMinusB2: 0.001, StepSize: 1e-3, InvSqrtBC2: 1, Eps: 1e-8, Decay: 1},
				{Scale: 0.25, B1: 0.9, OneMinusB1: 0.1, B2: 0.98, OneMinusB2: 0.02, StepSize: 0.0153, InvSqrtBC2: 3.7, Eps: 1e-6, Decay: 0.99999},
			} {
				t.Run(fmt.Sprintf("n%d/scale%g", n, c.Scale), func(t *testing.T) {
					w, g, m := randSlice(r, n, 1), randSlice(r, n, 1), randSlice(r, n, 0.1)
					v := randSlice(r, n, 0.01)
					for i := range v {
						v[i] *= v[i] // second moments are non-negative
					}
					// Each value with the size of the terms it sums: float32 rounding is relative to
					// those, not to a result that cancels.
					type ref struct{ w, m, v, sw, sm, sv float64 }
					want := make([]ref, n)
					for i := range n {
						gi := float64(g[i]) * float64(c.Scale)
						mi := float64(c.B1)*float64(m[i]) + float64(c.OneMinusB1)*gi
						vi := float64(c.B2)*float64(v[i]) + float64(c.OneMinusB2)*gi*gi
						wi := float64(w[i])*float64(c.Decay) - float64(c.StepSize)*mi/(math.Sqrt(vi)*float64(c.InvSqrtBC2)+float64(c.Eps))
						step := float64(c.StepSize) * mi / (math.Sqrt(vi)*float64(c.InvSqrtBC2) + float64(c.Eps))
						sm := math.Abs(float64(c.B1)*float64(m[i])) + math.Abs(float64(c.OneMinusB1)*gi)
						want[i] = ref{wi, mi, vi, math.Abs(float64(w[i])) + math.Abs(step)*(1+sm/math.Abs(mi)), sm, vi}
					}
					AdamWUpdate(w, g, m, v, c)
					for i := range n {
						if g[i] != 0 {
							t.Fatalf("g[%d] = %v, want 0", i, g[i])
						}
						for _, q := range []struct {
							name             string
							got, want, scale float64
						}{{"w", float64(w[i]), want[i].w, want[i].sw}, {"m", float64(m[i]), want[i].m, want[i].sm}, {"v", float64(v[i]), want[i].v, want[i].sv}} {
							if math.Abs(q.got-q.want) > 4e-7*q.scale+1e-12 {
								t.Fatalf("%s[%d] = %v, want %v", q.name, i, q.got, q.want)
							}
						}
					}
				})
			}
		}
	})
}

// TestAdamWUpdateMatchesGo: the SIMD kernels keep the Go kernel's order of operations, so
// their results agree with it to the last bit (1 ulp allowed, for builds that fuse the Go
// kernel's multiply-adds, GOAMD64=v3).
func TestAdamWUpdateMatchesGo(t *testing.T) {
	eachLevel(t, func(t *testing.T) {
		r := newRNG(302)
		n := 1037
		w, g, m, v := randSlice(r, n, 1), randSlice(r, n, 1), randSlice(r, n, 0.1), randSlice(r, n, 0.01)
		for i := range v {
			v[i] *= v[i]
		}
		c := AdamWConsts{Scale: 0.5, B1: 0.9, OneMinusB1: 0.1, B2: 0.98, OneMinusB2: 0.02, StepSize: 0.003, InvSqrtBC2: 2.1, Eps: 1e-8, Decay: 0.9999}
		w2, g2, m2, v2 := append([]float32(nil), w...), append([]float32(nil), g...), append([]float32(nil), m...), append([]float32(nil), v...)
		AdamWUpdate(w, g, m, v, c)
		adamwGo(w2, g2, m2, v2, &c)
		for i := range n {
			for _, q := range [][2]float32{{w[i], w2[i]}, {m[i], m2[i]}, {v[i], v2[i]}} {
				if d := int64(math.Float32bits(q[0])) - int64(math.Float32bits(q[1])); d > 1 || d < -1 {
					t.Fatalf("element %d: %v, Go kernel %v", i, q[0], q[1])
				}
			}
		}
	})
}

// BenchmarkAdamWUpdate: one step over the default model's 6.2 M parameters.
func BenchmarkAdamWUpdate(b *testing.B) {
	r := newRNG(303)
	n := 6_230_273
	w, g, m, v := randSlice(r, n, 1), randSlice(r, n, 1), randSlice(r, n, 0.1), randSlice(r, n, 0.01)
	c := AdamWConsts{Scale: 1, B1: 0.9, OneMinusB1: 0.1, B2: 0.98, OneMinusB2: 0.02, StepSize: 1e-3, InvSqrtBC2: 1, Eps: 1e-8, Decay: 1}
	for _, impl := range []string{"go", "simd"} {
		b.Run(impl, func(b *testing.B) {
			for b.Loop() {
				if impl == "go" {
					adamwGo(w, g, m, v, &c)
				} else {
					AdamWUpdate(w, g, m, v, c)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/step")
		})
	}
}
