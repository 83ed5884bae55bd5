package data

import (
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Noise colours for additive noise.
const (
	NoiseWhite = "white"
	NoisePink  = "pink"
	NoiseBrown = "brown"
)

// Reverb is a sox reverb setting (percentages as sox takes them).
type Reverb struct {
	Reverberance int // 0–100
	HFDamping    int // 0–100
	RoomScale    int // 0–100
	PreDelayMs   int // 0–500
}

// Augment is the augmentation drawn for one utterance. The zero value is a
// clean utterance.
type Augment struct {
	Speed     float64 // sox speed factor (pitch and tempo), 0 for none
	Reverb    *Reverb
	Noise     string  // Noise* colour, "" for none
	SNR       float64 // dB, signal power over noise power
	GainDB    float64
	Telephone bool // 300–3400 Hz band and an 8 kHz round trip
}

// Clean reports whether a has no effect at all.
func (a Augment) Clean() bool {
	return a.Speed == 0 && a.Reverb == nil && a.Noise == "" && a.GainDB == 0 && !a.Telephone
}

// String is the manifest form, e.g. "speed=1.05,reverb=40/55/70/12,
// noise=pink@12.5dB,gain=-2.0,telephone", or "clean".
func (a Augment) String() string {
	if a.Clean() {
		return "clean"
	}
	var parts []string
	if a.Speed != 0 {
		parts = append(parts, "speed="+strconv.FormatFloat(a.Speed, 'f', 2, 64))
	}
	if r := a.Reverb; r != nil {
		parts = append(parts, fmt.Sprintf("reverb=%d/%d/%d/%d", r.Reverberance, r.HFDamping, r.RoomScale, r.PreDelayMs))
	}
	if a.Noise != "" {
		parts = append(parts, fmt.Sprintf("noise=%s@%.1fdB", a.Noise, a.SNR))
	}
	if a.GainDB != 0 {
		parts = append(parts, fmt.Sprintf("gain=%.1f", a.GainDB))
	}
	if a.Telephone {
		parts = append(parts, "telephone")
	}
	return strings.Join(parts, ",")
}

// AugmentOptions tunes how augmentation is drawn. Probabilities apply to
// the utterances that are not clean, independently per effect.
type AugmentOptions struct {
	// CleanFraction of utterances get no augmentation at all.
	CleanFraction float64
	// SpeedPerturb enables sox speed perturbation (0.9–1.1).
	SpeedPerturb bool
	// MinSNR and MaxSNR bound the additive-noise SNR in dB.
	MinSNR, MaxSNR float64
}

// DefaultAugmentOptions: a quarter of utterances clean, SNR 5–30 dB, no
// speed perturbation (the voices' own rate already varies).
func DefaultAugmentOptions() AugmentOptions {
	return AugmentOptions{CleanFraction: 0.25, MinSNR: 5, MaxSNR: 30}
}

// Effect probabilities for an augmented utterance. Gain is always drawn.
const (
	pNoise     = 0.7
	pReverb    = 0.4
	pTelephone = 0.2
	pSpeed     = 0.5
)

// drawAugment draws an utterance's augmentation. The draws happen in a fixed
// order, whatever is chosen, so one utterance's plan never depends on a
// setting that only another effect uses.
func drawAugment(o AugmentOptions, rng *rand.Rand) Augment {
	clean := rng.Float64() < o.CleanFraction
	uNoise, uReverb, uTel, uSpeed := rng.Float64(), rng.Float64(), rng.Float64(), rng.Float64()
	colour := []string{NoiseWhite, NoisePink, NoiseBrown}[rng.IntN(3)]
	snr := o.MinSNR + (o.MaxSNR-o.MinSNR)*rng.Float64()
	rv := Reverb{Reverberance: 10 + rng.IntN(81), HFDamping: 10 + rng.IntN(81), RoomScale: 10 + rng.IntN(91), PreDelayMs: rng.IntN(31)}
	gain := -6 + 12*rng.Float64()
	speed := 0.9 + 0.2*rng.Float64()
	if clean {
		return Augment{}
	}
	a := Augment{GainDB: math.Round(gain*10) / 10}
	if a.GainDB == 0 {
		a.GainDB = 0.1 // keep "augmented" distinguishable from clean
	}
	if uNoise < pNoise {
		a.Noise = colour
		a.SNR = math.Round(snr*10) / 10
	}
	if uReverb < pReverb {
		a.Reverb = &rv
	}
	a.Telephone = uTel < pTelephone
	if o.SpeedPerturb && uSpeed < pSpeed {
		a.Speed = round2(speed)
	}
	return a
}

// soxEffects returns the first sox pass's effects: voice tempo and pitch
// shift, speed perturbation, padding (head and tail silence, which also
// gives reverberation a tail to ring into) and reverberation. Noise, gain
// and level are applied in Go afterwards; the telephone band in a second
// sox pass after the noise, as a real line would band-limit it too.
func soxEffects(p VoiceParams, a Augment, padHead, padTail float64) []string {
	var e []string
	if p.Tempo != 0 && p.Tempo != 1 {
		e = append(e, "tempo", "-s", strconv.FormatFloat(p.Tempo, 'f', 2, 64))
	}
	if p.Cents != 0 {
		e = append(e, "pitch", strconv.Itoa(p.Cents))
	}
	if a.Speed != 0 && a.Speed != 1 {
		e = append(e, "speed", strconv.FormatFloat(a.Speed, 'f', 2, 64))
	}
	e = append(e, "pad", strconv.FormatFloat(padHead, 'f', 3, 64), strconv.FormatFloat(padTail, 'f', 3, 64))
	if r := a.Reverb; r != nil {
		e = append(e, "reverb", strconv.Itoa(r.Reverberance), strconv.Itoa(r.HFDamping),
			strconv.Itoa(r.RoomScale), "100", strconv.Itoa(r.PreDelayMs), "0")
	}
	return e
}

// telephoneEffects band-limit to the 300–3400 Hz telephone channel and
// round-trip through 8 kHz, back to the output rate.
func telephoneEffects(rate int) []string {
	return []string{"sinc", "300-3400", "rate", "8000", "rate", strconv.Itoa(rate)}
}

// peakTarget is the level every utterance is normalised to before gain, so
// that ±6 dB of gain never clips (-9 dBFS + 6 dB = -3 dBFS).
const peakTarget = -9.0

// finishSamples normalises the peak to peakTarget, mixes noise at the
// drawn SNR, applies gain, and scales the result down if it would clip.
// Noise is generated here rather than by sox's synth effect because sox
// cannot seed its noise generator: its noise is either identical for every
// utterance (-R) or not reproducible at all.
func finishSamples(x []float32, a Augment, noiseRNG *rand.Rand) {
	scaleToPeak(x, dbToAmp(peakTarget))
	if a.Noise != "" && len(x) > 0 {
		n := makeNoise(a.Noise, len(x), noiseRNG)
		ps, pn := power(x), power(n)
		if ps > 0 && pn > 0 {
			k := float32(math.Sqrt(ps / pn / math.Pow(10, a.SNR/10)))
			for i := range x {
				x[i] += k * n[i]
			}
		}
	}
	if a.GainDB != 0 {
		g := float32(dbToAmp(a.GainDB))
		for i := range x {
			x[i] *= g
		}
	}
	if peak(x) > 0.99 {
		scaleToPeak(x, 0.99)
	}
}

func dbToAmp(db float64) float64 { return math.Pow(10, db/20) }

func peak(x []float32) float64 {
	var m float64
	for _, v := range x {
		m = max(m, math.Abs(float64(v)))
	}
	return m
}

func scaleToPeak(x []float32, target float64) {
	if p := peak(x); p > 0 {
		k := float32(target / p)
		for i := range x {
			x[i] *= k
		}
	}
}

func power(x []float32) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s / float64(len(x))
}

// makeNoise returns n samples of unit-variance-ish noise of the colour:
// white is Gaussian; pink sums 16 white sources updated at halving rates
// (Voss–McCartney), giving a -3 dB/octave slope; brown is leaky-integrated
// white noise (-6 dB/octave), the leak keeping it from drifting. The
// caller scales by measured power, so only the spectral shape matters.
func makeNoise(colour string, n int, rng *rand.Rand) []float32 {
	out := make([]float32, n)
	switch colour {
	case NoisePink:
		const rows = 16
		var r [rows]float64
		var sum float64
		for i := range r {
			r[i] = rng.NormFloat64()
			sum += r[i]
		}
		for i := range out {
			// Row k is redrawn every 2^k samples: the row indexed by the
			// trailing zeros of the counter.
			k := bits.TrailingZeros(uint(i+1)) % rows
			sum -= r[k]
			r[k] = rng.NormFloat64()
			sum += r[k]
			out[i] = float32((sum + rng.NormFloat64()) / rows)
		}
	case NoiseBrown:
		var b float64
		for i := range out {
			b = 0.998*b + 0.05*rng.NormFloat64()
			out[i] = float32(b)
		}
	default:
		for i := range out {
			out[i] = float32(rng.NormFloat64())
		}
	}
	return out
}
