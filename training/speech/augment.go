package speech

import "math/rand/v2"

// apply masks x [nMels][stride] in place; only the first frames columns hold audio.
func (a SpecAugment) apply(x []float32, nMels, stride, frames int, rng *rand.Rand) {
	for range a.FreqMasks {
		if a.F <= 0 {
			break
		}
		w := rng.IntN(a.F + 1)
		f0 := rng.IntN(max(1, nMels-w))
		for m := f0; m < f0+w && m < nMels; m++ {
			clear(x[m*stride : m*stride+frames])
		}
	}
	maxT := a.T
	if a.TimeRatio > 0 {
		maxT = min(maxT, int(a.TimeRatio*float64(frames)))
	}
	for range a.TimeMasks {
		if maxT <= 0 {
			break
		}
		w := rng.IntN(maxT + 1)
		t0 := rng.IntN(max(1, frames-w))
		for m := range nMels {
			clear(x[m*stride+t0 : m*stride+min(frames, t0+w)])
		}
	}
}
