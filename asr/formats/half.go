package formats

import "math"

// Half-precision conversions. Go has no float16 type, and checkpoints ship in binary16
// (openai/whisper's .pt files, whisper.cpp's ggml f16 files) and bfloat16 (recent Hugging Face
// uploads), so chorus converts bit patterns itself. Narrowing rounds to nearest, ties to even,
// as numpy's astype(float16) and torch's .half() do, so a file chorus writes matches what the
// reference tools would write from the same float32 weights.

// F16ToF32 widens an IEEE 754 binary16 bit pattern to float32. Every half value, subnormals,
// infinities and NaN payloads included, is represented exactly.
func F16ToF32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0:
		// Zero or subnormal: mant·2⁻²⁴, exact in float32 (24-bit significand).
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	case 0x1f:
		// Infinity (mant == 0) or NaN; the payload moves to the top of the float32 mantissa.
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	// Normal: rebias the exponent from 15 to 127.
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 narrows a float32 to an IEEE 754 binary16 bit pattern, rounding to nearest with
// ties to even. Values at or above 65520 in magnitude become infinity, values below half the
// smallest subnormal (2⁻²⁵) become signed zero, and NaNs stay NaN with the top 10 payload bits
// kept (so F32ToF16(F16ToF32(h)) == h for every h, signalling NaNs included).
func F32ToF16(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int(bits>>23) & 0xff
	mant := bits & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		p := uint16(mant >> 13)
		if p == 0 {
			p = 0x200 // payload only in the dropped bits: keep it a NaN
		}
		return sign | 0x7c00 | p
	}
	e := exp - 127 + 15 // half exponent field if the value is normal in half
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal (or zero) in half. Value = m24·2^(exp-150) with the implicit bit, and a
		// half subnormal is h·2⁻²⁴, so h = m24 >> (14-e) before rounding.
		if e < -10 {
			return sign // below 2⁻²⁵: rounds to zero (2⁻²⁵ itself is e == -10)
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++ // may carry into 0x400, the smallest normal: still the right encoding
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry out of the mantissa bumps the exponent; 0x7c00 is infinity
	}
	return sign | uint16(h)
}

// BF16ToF32 widens a bfloat16 bit pattern to float32 (exact: bfloat16 is the top half).
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F32ToBF16 narrows a float32 to bfloat16, rounding to nearest with ties to even. NaNs stay
// NaN (a payload that lives only in the dropped bits is replaced by the quiet bit).
func F32ToBF16(f float32) uint16 {
	bits := math.Float32bits(f)
	if bits&0x7f800000 == 0x7f800000 && bits&0x7fffff != 0 {
		h := uint16(bits >> 16)
		if h&0x7f == 0 {
			h |= 0x40
		}
		return h
	}
	// Adding 0x7fff plus the lowest kept bit rounds half to even; overflow reaches infinity.
	return uint16((bits + 0x7fff + (bits>>16)&1) >> 16)
}
