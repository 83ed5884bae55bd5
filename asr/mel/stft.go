package mel

import "math"

// hann is the periodic Hann window of length NFFT, torch.hann_window(400)'s default
// (periodic=True): w[i] = 0.5 − 0.5·cos(2πi/N) with N = NFFT, not N−1.
var hann = func() [NFFT]float64 {
	var w [NFFT]float64
	for i := range w {
		w[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/NFFT)
	}
	return w
}()

// stft holds one goroutine's scratch buffers for computing frames; it is not safe for
// concurrent use.
type stft struct {
	buf  []float64    // windowed frame, NFFT
	a, b []complex128 // FFT scratch, NFFT/2 each
	pow  []float64    // |X|², NBins
}

func newSTFT() *stft {
	return &stft{
		buf: make([]float64, NFFT),
		a:   make([]complex128, NFFT/2),
		b:   make([]complex128, NFFT/2),
		pow: make([]float64, NBins),
	}
}

// reflect maps index j of the centred STFT's padded signal (j may run NFFT/2 past either end)
// onto [0, n): torch's pad_mode="reflect" mirrors about the edge samples without repeating them.
// It needs n > NFFT/2.
func reflect(j, n int) int {
	if j < 0 {
		return -j
	}
	if j >= n {
		return 2*(n-1) - j
	}
	return j
}

// frame loads windowed frame t of the zero-padded signal (samples followed by zeros up to
// length n) into the buffer, and reports whether any sample in it is non-zero.
// Frame t covers padded positions [t·hop, t·hop+NFFT), i.e. signal indices shifted by −NFFT/2.
func (s *stft) frame(samples []float32, n, t int) bool {
	start := t*HopLength - NFFT/2
	if start >= len(samples) && start+NFFT <= n {
		return false // wholly in the zero padding (no reflection reaches back): nothing to read
	}
	nonzero := false
	if start >= 0 && start+NFFT <= len(samples) {
		// Interior fast path: no reflection, no zero padding.
		for i, x := range samples[start : start+NFFT] {
			s.buf[i] = float64(x) * hann[i]
			nonzero = nonzero || x != 0
		}
		return nonzero
	}
	for i := range NFFT {
		j := reflect(start+i, n)
		var x float32
		if j < len(samples) {
			x = samples[j]
		}
		s.buf[i] = float64(x) * hann[i]
		nonzero = nonzero || x != 0
	}
	return nonzero
}

// power returns |X[k]|² of the loaded frame for the NBins one-sided bins.
func (s *stft) power() []float64 {
	fft400.power(s.pow, s.buf, s.a, s.b)
	return s.pow
}
