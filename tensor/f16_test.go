package tensor

import (
	"fmt"
	"math"
	"os"
	"testing"
)

// f32ToF16Ref rounds through float64 arithmetic rather than bit manipulation: it scales the
// value to an integer count of half-precision units and rounds half to even.
func f32ToF16Ref(f float32) uint16 {
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	a := math.Abs(float64(f))
	switch {
	case math.IsNaN(a):
		return sign | 0x7e00 | uint16(math.Float32bits(f)>>13)&0x3ff
	case a >= 65520: // halfway between 65504 (max half, odd mantissa) and 2^16: ties go up
		return sign | 0x7c00
	case a < 0x1p-14: // subnormal or zero: units of 2^-24
		return sign | uint16(math.RoundToEven(a/0x1p-24))
	}
	_, e := math.Frexp(a) // a = frac·2^e, frac in [0.5, 1)
	e--                   // a = 1.xxx·2^e
	m := math.RoundToEven(a / math.Ldexp(1, e-10))
	if m == 2048 {
		m, e = 1024, e+1
	}
	return sign | uint16(e+15)<<10 | uint16(m-1024)
}

// TestF16Exhaustive converts every half to float32 and back, checking the value against the
// definition and the round trip, and that the bulk kernels agree bit for bit.
func TestF16Exhaustive(t *testing.T) {
	src := make([]uint16, 1<<16)
	for i := range src {
		src[i] = uint16(i)
	}
	bulk := make([]float32, len(src))
	F16ToF32Slice(bulk, src)
	goBulk := make([]float32, len(src))
	f16ToF32Go(goBulk, src)
	for i := range src {
		h := uint16(i)
		f := F16ToF32(h)
		exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch exp {
		case 0:
			want = mant * 0x1p-24
		case 0x1f:
			want = math.Inf(1)
			if mant != 0 {
				want = math.NaN()
			}
		default:
			want = (1 + mant/1024) * math.Ldexp(1, exp-15)
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if math.IsNaN(want) {
			if f == f || math.Float32bits(f)&0x400000 == 0 {
				t.Fatalf("F16ToF32(%#04x) = %#08x, want a quiet NaN", h, math.Float32bits(f))
			}
		} else if float64(f) != want || math.Signbit(float64(f)) != (h&0x8000 != 0) {
			t.Fatalf("F16ToF32(%#04x) = %v, want %v", h, f, want)
		}
		if math.Float32bits(bulk[i]) != math.Float32bits(f) || math.Float32bits(goBulk[i]) != math.Float32bits(f) {
			t.Fatalf("bulk F16ToF32(%#04x) = %#08x / go %#08x, scalar %#08x", h,
				math.Float32bits(bulk[i]), math.Float32bits(goBulk[i]), math.Float32bits(f))
		}
		back := F32ToF16(f)
		wantBack := h
		if f != f {
			wantBack |= 0x0200 // conversions quiet NaNs
		}
		if back != wantBack {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x", h, back)
		}
	}
}

// f16Probe lists float32 inputs where rounding to half is delicate: every half, the float32
// midpoints between consecutive halves and their float32 neighbours, the overflow and
// underflow thresholds, and the specials.
func f16Probe() []float32 {
	var xs []float32
	for i := 0; i < 0x7c00; i++ {
		lo := F16ToF32(uint16(i))
		hi := F16ToF32(uint16(i + 1)) // 0x7c00 is +Inf: the midpoint is then 65520
		mid := float32((float64(lo) + float64(hi)) / 2)
		if i == 0x7bff {
			mid = 65520
		}
		for _, v := range []float32{lo, mid, math.Nextafter32(mid, 0), math.Nextafter32(mid, 1e9)} {
			xs = append(xs, v, -v)
		}
	}
	for _, v := range []float32{0x1p-25, 0x1p-26, 0x1.8p-25, 1e-40, 1e-45, 65519.99, 65536, 1e10, 3.4e38} {
		xs = append(xs, v, -v)
	}
	inf := float32(math.Inf(1))
	xs = append(xs, inf, -inf, float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0xffbfffff))
	return xs
}

func TestF32ToF16Rounding(t *testing.T) {
	xs := f16Probe()
	r := newRNG(30)
	for i := 0; i < 1<<20; i++ {
		xs = append(xs, math.Float32frombits(r.Uint32()))
	}
	bulk := make([]uint16, len(xs))
	F32ToF16Slice(bulk, xs)
	goBulk := make([]uint16, len(xs))
	f32ToF16Go(goBulk, xs)
	for i, x := range xs {
		want := f32ToF16Ref(x)
		if got := F32ToF16(x); got != want {
			t.Fatalf("F32ToF16(%v = %#08x) = %#04x, want %#04x", x, math.Float32bits(x), got, want)
		}
		if bulk[i] != want || goBulk[i] != want {
			t.Fatalf("bulk F32ToF16(%v = %#08x) = %#04x / go %#04x, want %#04x", x, math.Float32bits(x), bulk[i], goBulk[i], want)
		}
	}
}

// TestF32ToF16All compares every one of the 2³² float32 patterns with the reference, through
// both the bulk (F16C) and the scalar conversion. It takes about two minutes, so it runs only
// with CHORUS_EXHAUSTIVE=1 (last run: passed, 112 s).
func TestF32ToF16All(t *testing.T) {
	if os.Getenv("CHORUS_EXHAUSTIVE") == "" {
		t.Skip("set CHORUS_EXHAUSTIVE=1 to check all 2³² float32 values")
	}
	const chunk = 1 << 20
	src := make([]float32, chunk)
	dst := make([]uint16, chunk)
	for base := uint64(0); base < 1<<32; base += chunk {
		for i := range src {
			src[i] = math.Float32frombits(uint32(base) + uint32(i))
		}
		F32ToF16Slice(dst, src)
		for i, x := range src {
			if want := f32ToF16Ref(x); dst[i] != want || F32ToF16(x) != want {
				t.Fatalf("%#08x: bulk %#04x scalar %#04x want %#04x", math.Float32bits(x), dst[i], F32ToF16(x), want)
			}
		}
	}
}

func TestLinearF16(t *testing.T) { eachLevel(t, testLinearF16) }

func testLinearF16(t *testing.T) {
	r := newRNG(31)
	shapes := append(linearShapes[:len(linearShapes):len(linearShapes)],
		struct{ m, k, n int }{40, 64, 1000}, struct{ m, k, n int }{20, 3000, 100})
	for _, s := range shapes {
		for _, bias := range []bool{false, true} {
			t.Run(fmt.Sprintf("%dx%dx%d/bias=%v", s.m, s.k, s.n, bias), func(t *testing.T) {
				x := randSlice(r, s.m*s.k, 1)
				wf := randSlice(r, s.n*s.k, 1)
				w := make([]uint16, len(wf))
				F32ToF16Slice(w, wf)
				var b, ab []float32
				if bias {
					b = randSlice(r, s.n, 1)
					ab = absSlice(b)
				}
				want := make([]float32, s.m*s.n)
				LinearF16Naive(want, x, w, b, s.m, s.k, s.n)
				abs := make([]float32, s.m*s.n)
				LinearNaive(abs, absSlice(x), absSlice(wf), ab, s.m, s.k, s.n)
				for _, th := range [][2]int{{1, 1}, {2, 1}, {2, 2}} {
					got := randSlice(r, s.m*s.n, 9)
					withThreads(t, th[0], th[1], func() { LinearF16(got, x, w, b, s.m, s.k, s.n) })
					checkClose(t, fmt.Sprint("threads ", th), got, want, dotTol(abs, s.k), 0)
				}
			})
		}
	}
}
