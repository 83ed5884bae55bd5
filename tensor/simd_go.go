package tensor

import (
	"math"
	"sync"
)

// Pure-Go twins of the C kernels in simd.c. The !cgo || noblas build uses them for
// everything; the cgo build uses them on CPUs without AVX2+FMA+F16C. They follow the same
// numerics (double accumulation, the same erf tables) and are tested against the naive
// references in both builds.

// geluGo writes GELU(x) to out.
func geluGo(out, x []float32) {
	out = out[:len(x)]
	for i, v := range x {
		out[i] = gelu32(v)
	}
}

// softmaxRowsGo: see chorus_softmax_rows in simd.h.
func softmaxRowsGo(x []float32, rows, cols, ld, causal int) {
	for i := 0; i < rows; i++ {
		p := x[i*ld : i*ld+cols]
		lim := cols
		if causal >= 0 && causal+i+1 < cols {
			lim = causal + i + 1
		}
		q := p[:lim]
		mx, bad := rowMax(q)
		if bad {
			for j := range q {
				q[j] = float32(math.NaN())
			}
		} else {
			var s float64
			for j, v := range q {
				e := math.Exp(float64(v - mx))
				q[j] = float32(e)
				s += e
			}
			inv := float32(1 / s)
			for j := range q {
				q[j] *= inv
			}
		}
		clear(p[lim:])
	}
}

// rowMax returns the largest value and whether the row is poisoned (a NaN, or a max of ±Inf,
// which makes the float64 reference compute inf-inf).
func rowMax(q []float32) (float32, bool) {
	mx := float32(math.Inf(-1))
	nan := false
	for _, v := range q {
		if v != v {
			nan = true
		}
		if v > mx {
			mx = v
		}
	}
	return mx, nan || math.IsInf(float64(mx), 0)
}

// logSoftmaxGo writes x - logsumexp(x) to out.
func logSoftmaxGo(out, x []float32) {
	out = out[:len(x)]
	mx, bad := rowMax(x)
	if bad {
		for j := range out {
			out[j] = float32(math.NaN())
		}
		return
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v - mx))
	}
	ls := float32(math.Log(s))
	for j, v := range x {
		out[j] = (v - mx) - ls
	}
}

// layerNormGo: see chorus_layernorm_rows in simd.h.
func layerNormGo(out, x, gamma, beta []float32, rows, cols int, eps float32) {
	for r := 0; r < rows; r++ {
		p := x[r*cols : (r+1)*cols]
		o := out[r*cols : (r+1)*cols]
		var s float64
		for _, v := range p {
			s += float64(v)
		}
		mean := s / float64(cols)
		mhi := float32(mean)
		mlo := float32(mean - float64(mhi))
		var ss float64
		for _, v := range p {
			d := float64((v - mhi) - mlo)
			ss += d * d
		}
		inv := float32(1 / math.Sqrt(ss/float64(cols)+float64(eps)))
		for c, v := range p {
			y := ((v - mhi) - mlo) * inv
			if gamma != nil {
				y *= gamma[c]
			}
			if beta != nil {
				y += beta[c]
			}
			o[c] = y
		}
	}
}

// f16Table maps every half to its float32 value (256 KiB, built on first use): the Go
// fallback converts f16 weight tiles on every LinearF16 call, and a lookup is ~4× faster than
// decoding the bits.
var f16Table = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = F16ToF32(uint16(i))
	}
	return &t
})

func f16ToF32Go(dst []float32, src []uint16) {
	t := f16Table()
	dst = dst[:len(src)]
	for i, h := range src {
		dst[i] = t[h]
	}
}

func f32ToF16Go(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, f := range src {
		dst[i] = F32ToF16(f)
	}
}
