package audio

import (
	"fmt"
	"math"
	"sync"
)

// Sample rates a Resampler accepts. The bounds keep the filter (whose length
// grows with the rate ratio) and the output (which grows with to/from) sane;
// telephone audio (8 kHz) through 768 kHz studio rates fit with room to spare.
const (
	MinRate = 1000
	MaxRate = 768000
)

// Filter design. The low-pass filter's -6 dB cutoff sits at rolloff times the
// lower of the two Nyquist frequencies, and its transition band is centred
// there and ends exactly at that Nyquist, so nothing above the new Nyquist
// survives to alias. For →16 kHz that is a passband to 7.2 kHz, cutoff 7.6 kHz,
// stopband from 8 kHz. Measured by TestResampleResponse (44.1k, 48k, 22.05k,
// 11.025k, 8k → 16k; 16k → 8k and 44.1k): passband amplitude within 0.001 dB
// up to 0.45 × the lower rate, with images, aliases and other error at least
// 90 dB below the tone; every tone above the new Nyquist at least 80 dB down
// (worst measured -80.8 dB).
const (
	rolloff    = 0.95
	stopbandDB = 80.0
	// maxTable bounds the polyphase table (float32 coefficients, 4 MiB). Common
	// ratios need far less (44.1k→16k: 160 phases × 278 taps); an odd ratio such
	// as 44101→16000 has 16000 phases and is served by linear interpolation
	// between maxTable/taps evenly spaced phases instead, which stays below
	// -100 dB of error because the kernel is smooth at that spacing.
	maxTable = 1 << 20
)

// kernel is the continuous-time low-pass impulse response of a conversion,
// in units of input samples: g(τ) = 2c·sinc(2cτ)·kaiser(τ/half), zero for
// |τ| ≥ half. Its DC gain is 1, so levels are kept both up and down.
type kernel struct {
	cutoff float64 // c, cycles per input sample
	half   float64 // half-width of the window, input samples
	beta   float64 // Kaiser β
	i0beta float64 // I0(β)
}

// design returns the kernel for from→to using Kaiser's formulas for a
// windowed-sinc FIR: β = 0.1102(A−8.7) for A > 50 dB and length
// N−1 = (A−7.95)/(2.285·Δω), Δω the transition width in radians per sample
// (ref: Oppenheim & Schafer, Discrete-Time Signal Processing, 3rd ed.,
// eqs. 7.62–7.63).
func design(from, to int) kernel {
	ratio := float64(min(from, to)) / float64(from) // lower Nyquist / input Nyquist
	c := rolloff * 0.5 * ratio
	width := (1 - rolloff) * ratio // full transition width, cycles/sample
	n1 := (stopbandDB - 7.95) / (2.285 * 2 * math.Pi * width)
	beta := 0.1102 * (stopbandDB - 8.7)
	return kernel{cutoff: c, half: n1 / 2, beta: beta, i0beta: besselI0(beta)}
}

// at evaluates g(τ).
func (k kernel) at(tau float64) float64 {
	x := tau / k.half
	if x <= -1 || x >= 1 {
		return 0
	}
	w := besselI0(k.beta*math.Sqrt(1-x*x)) / k.i0beta
	return 2 * k.cutoff * sinc(2*k.cutoff*tau) * w
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series Σ ((x/2)^k / k!)², which converges quickly for the
// β ≤ 10 used here.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 500; k++ {
		term *= (x / 2) / float64(k)
		t := term * term
		sum += t
		if t < 1e-17*sum {
			break
		}
	}
	return sum
}

// Resampler converts a stream from one sample rate to another, chunk by
// chunk, with a Kaiser-windowed sinc low-pass in polyphase form. The filter
// is symmetric and centred on each output instant, so output sample n is the
// signal at time n/to seconds: there is no delay to compensate, and timestamps
// computed on the output match the input.
//
// Feeding the input in any chunking and then calling Flush produces exactly
// (bit for bit) what Resample produces for the whole input; output sample n is
// emitted as soon as the input it depends on has arrived: input up to half a
// filter length past n/to, 3.2 ms for 44.1k→16k and 6.4 ms for 8k→16k.
//
// Make one with NewResampler (the zero value is not usable). A Resampler is
// not safe for concurrent use; use one per stream. The filter tables behind
// it are shared and read-only.
type Resampler struct {
	from, to int
	l, m     int64     // to/gcd, from/gcd: output n sits at input time n·m/l
	k        int       // filter reach: output at input time t uses x[⌊t⌋-k+1 … ⌊t⌋+k]
	phases   int64     // table rows - 1: l when exact, fewer (interpolated) when l is huge
	table    []float32 // shared, read-only

	buf      []float32 // pending input; buf[0] is input sample number base
	base     int64
	i, p     int64 // next output's input time: i + p/l
	consumed int64 // input samples received since the last Flush
}

// NewResampler returns a Resampler from one rate (Hz) to another. Both must be
// in [MinRate, MaxRate].
func NewResampler(from, to int) (*Resampler, error) {
	for _, r := range []int{from, to} {
		if r < MinRate || r > MaxRate {
			return nil, fmt.Errorf("resample %d→%d Hz: rate %d outside [%d, %d]", from, to, r, MinRate, MaxRate)
		}
	}
	g := gcd(from, to)
	r := &Resampler{from: from, to: to, l: int64(to / g), m: int64(from / g)}
	if from != to {
		f := filterFor(from, to, r.l)
		r.k, r.phases, r.table = f.k, f.phases, f.table
	}
	r.Reset()
	return r, nil
}

// filter is the tabulated kernel of one conversion, immutable once built.
type filter struct {
	k      int   // taps = 2k
	phases int64 // table rows - 1
	table  []float32
}

// filters caches the tables of the first conversions used: a server opens a
// Resampler per stream, nearly always for the same few rate pairs, and a
// table costs tens of thousands of Bessel evaluations to build. The cache
// holds at most maxCachedFilters entries so that clients declaring many
// distinct rates cannot grow it without bound; past that, tables are built
// per Resampler.
var filters struct {
	sync.Mutex
	m map[[2]int]*filter
}

const maxCachedFilters = 16

func filterFor(from, to int, l int64) *filter {
	key := [2]int{from, to}
	filters.Lock()
	f := filters.m[key]
	filters.Unlock()
	if f != nil {
		return f
	}
	f = buildFilter(from, to, l)
	filters.Lock()
	if filters.m == nil {
		filters.m = make(map[[2]int]*filter)
	}
	if len(filters.m) < maxCachedFilters {
		filters.m[key] = f
	}
	filters.Unlock()
	return f
}

// buildFilter tabulates the kernel at phases+1 evenly spaced fractional
// offsets: row q, tap j holds g(q/phases + k-1-j).
func buildFilter(from, to int, l int64) *filter {
	kern := design(from, to)
	k := int(math.Ceil(kern.half))
	taps := 2 * k
	phases := l
	if l*int64(taps) > maxTable {
		phases = int64(max(maxTable/taps-1, 16))
	}
	table := make([]float32, (phases+1)*int64(taps))
	for q := range phases + 1 {
		frac := float64(q) / float64(phases)
		row := table[q*int64(taps):]
		for j := range taps {
			row[j] = float32(kern.at(frac + float64(k-1-j)))
		}
	}
	return &filter{k: k, phases: phases, table: table}
}

// Reset discards all state, as if the Resampler were new.
func (r *Resampler) Reset() {
	r.buf = append(r.buf[:0], make([]float32, max(r.k-1, 0))...)
	r.base = -int64(max(r.k-1, 0))
	r.i, r.p, r.consumed = 0, 0, 0
}

// Process consumes in and returns the output samples that are now fully
// determined. The returned slice is newly allocated.
func (r *Resampler) Process(in []float32) []float32 {
	return r.appendProcess(make([]float32, 0, int64(len(in))*r.l/r.m+2), in)
}

// Flush returns the remaining output, treating the signal as zero after the
// last input sample, and resets the Resampler for a new stream. The total
// output since the last Flush or Reset is exactly OutputLen(n, from, to)
// samples for n input samples.
func (r *Resampler) Flush() []float32 {
	out := r.appendFlush(nil)
	r.Reset()
	return out
}

// OutputLen is the number of samples Resample returns for n input samples:
// ⌈n·to/from⌉, the output instants k/to that fall before the input's end n/from.
func OutputLen(n, from, to int) int {
	num := int64(n) * int64(to)
	return int((num + int64(from) - 1) / int64(from))
}

// Resample converts x from one sample rate to another (see Resampler). It
// returns a copy of x when from == to.
func Resample(x []float32, from, to int) ([]float32, error) {
	r, err := NewResampler(from, to)
	if err != nil {
		return nil, err
	}
	out := make([]float32, 0, OutputLen(len(x), from, to))
	// Feeding bounded chunks keeps the pending-input buffer small; the result
	// is the same as one call.
	const chunk = 1 << 16
	for len(x) > 0 {
		n := min(len(x), chunk)
		out = r.appendProcess(out, x[:n])
		x = x[n:]
	}
	return r.appendFlush(out), nil
}

func (r *Resampler) appendProcess(out, in []float32) []float32 {
	r.consumed += int64(len(in))
	if r.from == r.to {
		return append(out, in...)
	}
	r.buf = append(r.buf, in...)
	last := r.base + int64(len(r.buf)) - 1 // newest input sample held
	out = r.emit(out, last)
	// Drop input no later output needs, moving the tail down only when the
	// dead prefix is large so that the copying stays amortised O(1).
	if drop := r.i - int64(r.k) + 1 - r.base; drop > 0 && drop >= int64(len(r.buf))/2 {
		drop = min(drop, int64(len(r.buf)))
		n := copy(r.buf, r.buf[drop:])
		r.buf = r.buf[:n]
		r.base += drop
	}
	return out
}

func (r *Resampler) appendFlush(out []float32) []float32 {
	if r.from == r.to {
		return out
	}
	// k zeros after the end cover the window of the last output instant,
	// which lies before input sample number consumed.
	r.buf = append(r.buf, make([]float32, r.k)...)
	for r.i < r.consumed {
		out = r.emitOne(out)
	}
	return out
}

// emit produces outputs while their whole window lies at or before input
// sample number last.
func (r *Resampler) emit(out []float32, last int64) []float32 {
	for r.i+int64(r.k) <= last {
		out = r.emitOne(out)
	}
	return out
}

// emitOne computes the output at input time i + p/l and advances to the next.
func (r *Resampler) emitOne(out []float32) []float32 {
	taps := 2 * r.k
	start := r.i - int64(r.k) + 1 - r.base
	x := r.buf[start : start+int64(taps)]
	pos := r.p * r.phases
	q, rem := pos/r.l, pos%r.l
	h0 := r.table[q*int64(taps) : (q+1)*int64(taps)]
	y := dot(h0, x)
	if rem != 0 {
		// Between two tabulated phases: interpolate the two filter outputs,
		// which equals filtering with the interpolated coefficients.
		h1 := r.table[(q+1)*int64(taps) : (q+2)*int64(taps)]
		w := float32(float64(rem) / float64(r.l))
		y += w * (dot(h1, x) - y)
	}
	r.p += r.m
	r.i += r.p / r.l
	r.p %= r.l
	return append(out, y)
}

// dot is Σ h[j]·x[j] with four independent accumulators, so that the CPU can
// overlap the additions instead of waiting on one dependency chain.
func dot(h, x []float32) float32 {
	x = x[:len(h)]
	var s0, s1, s2, s3 float32
	j := 0
	for ; j+4 <= len(h); j += 4 {
		s0 += h[j] * x[j]
		s1 += h[j+1] * x[j+1]
		s2 += h[j+2] * x[j+2]
		s3 += h[j+3] * x[j+3]
	}
	for ; j < len(h); j++ {
		s0 += h[j] * x[j]
	}
	return (s0 + s1) + (s2 + s3)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}
