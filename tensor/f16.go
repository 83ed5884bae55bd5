package tensor

import (
	"fmt"
	"math"
)

// IEEE 754 binary16 ("half") support. Weights can be stored as halves to halve the memory
// traffic of decoding, which is memory-bound (the tiny model's 51865×384 output projection
// is 80 MB in float32, 40 MB in half). Values travel as uint16 bit patterns.

// F32ToF16 rounds f to the nearest half (ties to even), as F16C's vcvtps2ph does: values at or
// beyond 65520 become ±Inf, tiny values become subnormal halves or ±0, and NaNs stay NaN with
// the quiet bit set and the top 10 payload bits kept.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half: the value in units of 2^-24 is (mant|1<<23) >> (14-e), rounded.
		if e < -10 {
			return sign // below 2^-25, half the smallest subnormal: rounds to zero
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		q := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && q&1 == 1) {
			q++ // may carry into the smallest normal, whose encoding is exactly 0x0400
		}
		return sign | uint16(q)
	}
	q := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && q&1 == 1) {
		q++ // a mantissa carry bumps the exponent, and 0x7bff+1 is +Inf: both correct
	}
	return sign | uint16(q)
}

// F16ToF32 converts a half to float32 exactly; NaNs keep their payload and get the quiet bit
// (as F16C's vcvtph2ps).
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		if mant == 0 {
			return math.Float32frombits(sign | 0x7f800000)
		}
		return math.Float32frombits(sign | 0x7fc00000 | mant<<13)
	case exp == 0:
		if mant == 0 {
			return math.Float32frombits(sign)
		}
		// Subnormal mant·2^-24: shift the leading one up to bit 10 and adjust the exponent.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		return math.Float32frombits(sign | e<<23 | (mant&0x3ff)<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F16ToF32Slice converts src to dst (len(dst) >= len(src)) with F16C when available.
func F16ToF32Slice(dst []float32, src []uint16) {
	need("f16 dst", dst, len(src))
	parallelFor(len(src), 1<<16, func(lo, hi int) { f16ToF32Kernel(dst[lo:hi], src[lo:hi]) })
}

// F32ToF16Slice converts src to dst (len(dst) >= len(src)) with F16C when available.
func F32ToF16Slice(dst []uint16, src []float32) {
	if len(dst) < len(src) {
		panic("tensor: f16 dst too short")
	}
	parallelFor(len(src), 1<<16, func(lo, hi int) { f32ToF16Kernel(dst[lo:hi], src[lo:hi]) })
}

// f16TileFloats is the size of the float32 tile LinearF16 converts the weight into for large m:
// 1 MiB, so a tile stays in L2 while the GEMM packs it.
var f16TileFloats = 1 << 18

// LinearF16 is Linear with the weight w [N, K] stored as IEEE halves: out[M,N] = x·wᵀ + b.
// For m <= SmallM (decoding) chorus's kernel converts the weight in registers (F16C) as it
// streams it once for all rows, split over output columns on Threads() goroutines. For larger
// m the weight is converted tile by tile (~1 MiB of float32) into pooled scratch and each tile
// is one Sgemm: tiles run concurrently when there are enough of them and BLASThreads() == 1,
// otherwise in order with each product split by rows as in Linear (threads.go).
func LinearF16(out, x []float32, w []uint16, b []float32, m, k, n int) {
	dims("linear-f16", m, k, n)
	need("linear-f16 x", x, m*k)
	need("linear-f16 out", out, m*n)
	if len(w) < n*k {
		panic(fmt.Sprintf("tensor: linear-f16 w has %d values, need %d", len(w), n*k))
	}
	if b != nil {
		need("linear-f16 bias", b, n)
	}
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		fillBias(out, b, m, n)
		return
	}
	if m <= SmallM && simdLevel > 0 {
		gemmNTParallel(m, n, k, x, nil, w, b, out)
		return
	}
	beta := float32(0)
	if b != nil {
		fillBias(out, b, m, n)
		beta = 1
	}
	tile := max(16, f16TileFloats/k/16*16)
	tiles := (n + tile - 1) / tile
	if BLASThreads() > 1 || tiles < Threads() {
		// Few tiles (or OpenBLAS threads): tiles in order, each product split by rows.
		p := getScratch(min(tile, n) * k)
		defer putScratch(p)
		for j0 := 0; j0 < n; j0 += tile {
			j1 := min(j0+tile, n)
			buf := (*p)[:(j1-j0)*k]
			f16ToF32Kernel(buf, w[j0*k:j1*k])
			sgemmRowsLd(m, j1-j0, k, x, buf, beta, out[j0:], n)
		}
		return
	}
	workers := Threads()
	bufs := make([]*[]float32, workers)
	for i := range bufs {
		bufs[i] = getScratch(tile * k)
	}
	parallelItems(tiles, workers, func(wk, t int) {
		j0 := t * tile
		j1 := min(j0+tile, n)
		buf := (*bufs[wk])[:(j1-j0)*k]
		f16ToF32Kernel(buf, w[j0*k:j1*k])
		Sgemm(false, true, m, j1-j0, k, 1, x, k, buf, k, beta, out[j0:], n)
	})
	for _, p := range bufs {
		putScratch(p)
	}
}
