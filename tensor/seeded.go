package tensor

// Seeded weights: chorus builds test and benchmark checkpoints from a counter-based generator
// that is easy to reproduce bit for bit in NumPy (tools/ref/whisper_ref.py has the twin), so
// reference fixtures need not carry the weights themselves.
//
//	h     = FNV-1a-64(fmt.Sprintf("%d/%s", seed, name))
//	z_i   = splitmix64 finaliser of h + (i+1)·0x9E3779B97F4A7C15   (mod 2⁶⁴)
//	u_i   = (z_i >> 40) / 2²⁴                                       (exact in float64)
//	v_i   = float32(center + scale·(2·u_i − 1))                     (computed in float64)

import "strconv"

const golden = 0x9E3779B97F4A7C15

func fnv1a64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func splitmix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// SeededUniform fills dst with values uniform in [center-scale, center+scale), determined by
// seed, name and index only.
func SeededUniform(dst []float32, seed uint64, name string, center, scale float64) {
	h := fnv1a64(strconv.FormatUint(seed, 10) + "/" + name)
	for i := range dst {
		z := splitmix(h + uint64(i+1)*golden)
		u := float64(z>>40) / (1 << 24)
		dst[i] = float32(center + float64(scale*(2*u-1))) // explicit rounding: no FMA fusion on any arch
	}
}
