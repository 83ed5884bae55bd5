package formats

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestF16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := F16ToF32(h)
		if got := F32ToF16(f); got != h {
			t.Fatalf("F32ToF16(F16ToF32(%#04x)) = %#04x (via %v)", h, got, f)
		}
	}
}

func TestBF16RoundTripExhaustive(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		if got := F32ToBF16(BF16ToF32(h)); got != h {
			t.Fatalf("F32ToBF16(BF16ToF32(%#04x)) = %#04x", h, got)
		}
	}
}

// f16Value is the exact value of a finite half, computed independently of F16ToF32.
func f16Value(h uint16) float64 {
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	var v float64
	if exp == 0 {
		v = math.Ldexp(mant, -24)
	} else {
		v = math.Ldexp(1024+mant, exp-25)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

func TestF16ToF32Values(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		got := F16ToF32(h)
		if h&0x7c00 == 0x7c00 {
			isNaN := h&0x3ff != 0
			if isNaN != math.IsNaN(float64(got)) || (!isNaN && !math.IsInf(float64(got), 0)) {
				t.Fatalf("F16ToF32(%#04x) = %v", h, got)
			}
			continue
		}
		want := f16Value(h)
		if float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("F16ToF32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

// Every rounding boundary: for each pair of adjacent positive halves, the exact midpoint must
// go to the even one, and the float32 neighbours of the midpoint to the nearer one.
func TestF32ToF16Boundaries(t *testing.T) {
	for h := uint16(0); h < 0x7c00; h++ {
		lo, hi := f16Value(h), 0.0
		if h+1 == 0x7c00 {
			hi = 65536 // the next "half" above the largest finite is infinity, at 2^16 by extension
		} else {
			hi = f16Value(h + 1)
		}
		mid := float32((lo + hi) / 2) // exact: needs at most 12 significant bits
		if float64(mid) != (lo+hi)/2 {
			t.Fatalf("midpoint of %#04x not exact in float32", h)
		}
		even := h
		if h&1 == 1 {
			even = h + 1
		}
		below := math.Nextafter32(mid, 0)
		above := math.Nextafter32(mid, float32(math.Inf(1)))
		for _, c := range []struct {
			in   float32
			want uint16
		}{{mid, even}, {below, h}, {above, h + 1}} {
			if got := F32ToF16(c.in); got != c.want {
				t.Fatalf("F32ToF16(%v) = %#04x, want %#04x (between %#04x and next)", c.in, got, c.want, h)
			}
			if got := F32ToF16(-c.in); got != c.want|0x8000 {
				t.Fatalf("F32ToF16(%v) = %#04x, want %#04x", -c.in, got, c.want|0x8000)
			}
		}
	}
}

func TestF32ToF16Special(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	for _, c := range []struct {
		name string
		in   float32
		want uint16
	}{
		{"zero", 0, 0},
		{"negative zero", float32(math.Copysign(0, -1)), 0x8000},
		{"one", 1, 0x3c00},
		{"minus two", -2, 0xc000},
		{"largest finite", 65504, 0x7bff},
		{"just below overflow", 65519.996, 0x7bff},
		{"overflow tie", 65520, 0x7c00},
		{"float32 max", math.MaxFloat32, 0x7c00},
		{"infinity", inf, 0x7c00},
		{"minus infinity", -inf, 0xfc00},
		{"smallest subnormal", 0x1p-24, 0x0001},
		{"half smallest subnormal ties to zero", 0x1p-25, 0x0000},
		{"above half smallest subnormal", 0x1.000002p-25, 0x0001},
		{"float32 smallest subnormal", math.SmallestNonzeroFloat32, 0x0000},
		{"largest subnormal", 0x3ffp-24, 0x03ff},
		{"subnormal carries to normal", 0x3ff.8p-24, 0x0400},
		{"smallest normal", 0x1p-14, 0x0400},
		{"quiet NaN", nan, 0x7e00},
		{"NaN with low payload only", math.Float32frombits(0x7f800001), 0x7e00},
		{"negative NaN payload", math.Float32frombits(0xffc02000), 0xfe01},
	} {
		if got := F32ToF16(c.in); got != c.want {
			t.Errorf("%s: F32ToF16(%v) = %#04x, want %#04x", c.name, c.in, got, c.want)
		}
	}
}

func TestF32ToBF16(t *testing.T) {
	for _, c := range []struct {
		name string
		bits uint32
		want uint16
	}{
		{"one", 0x3f800000, 0x3f80},
		{"round down", 0x3f807fff, 0x3f80},
		{"tie to even (down)", 0x3f808000, 0x3f80},
		{"tie to even (up)", 0x3f818000, 0x3f82},
		{"round up", 0x3f808001, 0x3f81},
		{"overflow to infinity", 0x7f7fffff, 0x7f80},
		{"infinity", 0x7f800000, 0x7f80},
		{"NaN keeps top payload", 0x7fc00000, 0x7fc0},
		{"NaN with low payload only", 0x7f800001, 0x7fc0},
		{"negative", 0xc0490fdb, 0xc049},
	} {
		if got := F32ToBF16(math.Float32frombits(c.bits)); got != c.want {
			t.Errorf("%s: F32ToBF16(%#08x) = %#04x, want %#04x", c.name, c.bits, got, c.want)
		}
	}
}

// Random float32s: the result must be one of the two halves bracketing the value and the
// nearer one (ties checked above), compared in float64 where everything is exact.
func TestF32ToF16Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(f)) || math.Abs(float64(f)) >= 65520 {
			continue
		}
		h := F32ToF16(f)
		got := f16Value(h)
		// Error must not exceed half the spacing around the result.
		var step float64
		e := int(h>>10) & 0x1f
		if e == 0 {
			step = 0x1p-24
		} else {
			step = math.Ldexp(1, e-25)
		}
		if d := math.Abs(got - float64(f)); d > step/2 {
			t.Fatalf("F32ToF16(%v) = %#04x (%v): error %v > half step %v", f, h, got, d, step/2)
		}
	}
}
