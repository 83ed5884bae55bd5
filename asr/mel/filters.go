package mel

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Filterbank is a triangular mel filterbank on the Slaney mel scale with Slaney area
// normalisation, the matrix Whisper projects power spectra with.
//
// It is computed from the published formula rather than loaded from OpenAI's
// whisper/assets/mel_filters.npz, which was saved from
// librosa.filters.mel(sr=16000, n_fft=400, n_mels=M) (htk=False, norm="slaney");
// ref: openai/whisper audio.py mel_filters, librosa filters.py mel / convert.py hz_to_mel.
// The arithmetic follows librosa's order of operations (float64 ramps, stored to float32,
// then scaled by the float64 Slaney factor and stored to float32 again) so the weights
// match the npz to the last bit or so.
type Filterbank struct {
	// NMels is the number of mel bands (rows).
	NMels int
	// Weights is the dense matrix, [NMels][NBins] row-major.
	Weights []float32
	// lo and hi bound each row's non-zero weights: Weights[m*NBins+k] != 0 only for
	// lo[m] <= k < hi[m]. Triangles span a few bins, so the projection walks only those.
	lo, hi []int
}

// Slaney mel scale constants (Slaney 1998, Auditory Toolbox; librosa hz_to_mel htk=False).
const (
	slaneyFSp       = 200.0 / 3 // Hz per mel below the break
	slaneyMinLogHz  = 1000.0    // break frequency between the linear and the log part
	slaneyMinLogMel = slaneyMinLogHz / slaneyFSp
)

// slaneyLogStep is ln(6.4)/27: 27 mels per factor 6.4 in frequency above the break.
var slaneyLogStep = math.Log(6.4) / 27

// hzToMel maps a frequency in Hz to the Slaney mel scale: linear below 1 kHz, logarithmic above.
func hzToMel(hz float64) float64 {
	if hz >= slaneyMinLogHz {
		return slaneyMinLogMel + math.Log(hz/slaneyMinLogHz)/slaneyLogStep
	}
	return hz / slaneyFSp
}

// melToHz is the inverse of hzToMel.
func melToHz(m float64) float64 {
	if m >= slaneyMinLogMel {
		return slaneyMinLogHz * math.Exp(slaneyLogStep*(m-slaneyMinLogMel))
	}
	return slaneyFSp * m
}

// linspace reproduces numpy.linspace(start, stop, num) with endpoint=True bit for bit:
// y[i] = i*step + start with step = (stop-start)/(num-1), and the last element set to stop.
func linspace(start, stop float64, num int) []float64 {
	y := make([]float64, num)
	if num == 1 {
		y[0] = start
		return y
	}
	step := (stop - start) / float64(num-1)
	for i := range y {
		y[i] = float64(i)*step + start
	}
	y[num-1] = stop
	return y
}

// newFilterbank computes the filterbank for nMels bands over NBins FFT bins at SampleRate.
// ref: librosa/filters.py mel (htk=False, norm="slaney", dtype=float32).
func newFilterbank(nMels int) *Filterbank {
	fftFreqs := linspace(0, SampleRate/2, NBins)
	melF := linspace(hzToMel(0), hzToMel(SampleRate/2), nMels+2)
	for i, m := range melF {
		melF[i] = melToHz(m)
	}
	fb := &Filterbank{
		NMels:   nMels,
		Weights: make([]float32, nMels*NBins),
		lo:      make([]int, nMels),
		hi:      make([]int, nMels),
	}
	for m := range nMels {
		lowerDiff := melF[m+1] - melF[m]
		upperDiff := melF[m+2] - melF[m+1]
		enorm := 2 / (melF[m+2] - melF[m])
		row := fb.Weights[m*NBins : (m+1)*NBins]
		fb.lo[m], fb.hi[m] = NBins, 0
		for k, f := range fftFreqs {
			lower := -(melF[m] - f) / lowerDiff
			upper := (melF[m+2] - f) / upperDiff
			// Clip negatives without max(0, ·): NumPy's maximum keeps the −0 that lower is
			// at f = mel_f[m] (band 0, bin 0), and the sign of that zero is part of matching
			// the npz bit for bit.
			w := min(lower, upper)
			if w < 0 {
				w = 0
			}
			// librosa stores the triangle into a float32 matrix first, then scales in place.
			row[k] = float32(float64(float32(w)) * enorm)
			if row[k] != 0 {
				fb.lo[m] = min(fb.lo[m], k)
				fb.hi[m] = k + 1
			}
		}
		if fb.hi[m] == 0 {
			fb.lo[m] = 0 // empty band (cannot happen for 80/128 bands at n_fft=400)
		}
	}
	return fb
}

var filterbanks = map[int]func() *Filterbank{
	80:  sync.OnceValue(func() *Filterbank { return newFilterbank(80) }),
	128: sync.OnceValue(func() *Filterbank { return newFilterbank(128) }),
}

// NewFilterbank returns the shared filterbank for nMels bands (80 or 128, the sizes Whisper
// models use). The result is computed once per size and must not be modified.
func NewFilterbank(nMels int) (*Filterbank, error) {
	get, ok := filterbanks[nMels]
	if !ok {
		return nil, fmt.Errorf("mel filterbank: unsupported n_mels %d (want 80 or 128)", nMels)
	}
	return get(), nil
}

// Filters returns a copy of the filterbank matrix for nMels bands, [nMels][201] row-major,
// the same matrix as whisper's mel_filters(device, n_mels).
func Filters(nMels int) ([]float32, error) {
	fb, err := NewFilterbank(nMels)
	if err != nil {
		return nil, err
	}
	return slices.Clone(fb.Weights), nil
}

// apply projects one power spectrum (NBins values) onto the mel bands, writing dst[m] for
// each band m.
func (fb *Filterbank) apply(dst []float32, power []float64) {
	for m := range fb.NMels {
		row := fb.Weights[m*NBins : (m+1)*NBins]
		var s float64
		for k := fb.lo[m]; k < fb.hi[m]; k++ {
			s += float64(row[k]) * power[k]
		}
		dst[m] = float32(s)
	}
}
