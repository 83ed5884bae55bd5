package audio

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// resampleNaive is the readable reference for Resampler: every output sample
// is a direct sum over the input of x[k]·g(t−k), t = n·from/to, with the
// kernel evaluated from its formula in float64, no tables, no phases, no
// state. It shares only the design parameters (cutoff, width, β).
func resampleNaive(x []float32, from, to int) []float32 {
	if from == to {
		return append([]float32(nil), x...)
	}
	k := design(from, to)
	g := func(tau float64) float64 {
		u := tau / k.half
		if math.Abs(u) >= 1 {
			return 0
		}
		arg := 2 * k.cutoff * tau
		s := 1.0
		if arg != 0 {
			s = math.Sin(math.Pi*arg) / (math.Pi * arg)
		}
		return 2 * k.cutoff * s * besselI0(k.beta*math.Sqrt(1-u*u)) / besselI0(k.beta)
	}
	n := OutputLen(len(x), from, to)
	out := make([]float32, n)
	for i := range out {
		t := float64(int64(i)*int64(from)) / float64(to)
		lo := max(0, int(math.Ceil(t-k.half)))
		hi := min(len(x)-1, int(math.Floor(t+k.half)))
		var y float64
		for j := lo; j <= hi; j++ {
			y += float64(x[j]) * g(t-float64(j))
		}
		out[i] = float32(y)
	}
	return out
}

func noise(n int, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	return x
}

func mustResample(t testing.TB, x []float32, from, to int) []float32 {
	t.Helper()
	y, err := Resample(x, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func TestResampleMatchesNaive(t *testing.T) {
	tests := []struct {
		from, to int
		n        int
		tol      float64
	}{
		{44100, 16000, 4000, 2e-6},
		{48000, 16000, 4000, 2e-6},
		{22050, 16000, 3000, 2e-6},
		{11025, 16000, 2000, 2e-6},
		{8000, 16000, 2000, 2e-6},
		{16000, 8000, 2000, 2e-6},
		{16000, 44100, 1000, 2e-6},
		{44101, 16000, 4000, 5e-6},  // 16000 phases: interpolated table
		{16000, 44101, 1000, 5e-6},  // interpolated, upsampling
		{768000, 1000, 20000, 2e-6}, // widest filter (~77k taps)
		{1000, 768000, 40, 2e-6},
	}
	for _, tt := range tests {
		x := noise(tt.n, uint64(tt.from+tt.to))
		got := mustResample(t, x, tt.from, tt.to)
		want := resampleNaive(x, tt.from, tt.to)
		if len(got) != len(want) {
			t.Fatalf("%d→%d: %d samples, naive %d", tt.from, tt.to, len(got), len(want))
		}
		if d := maxAbsDiff(got, want); d > tt.tol {
			t.Errorf("%d→%d: max |fast−naive| = %g, want ≤ %g", tt.from, tt.to, d, tt.tol)
		} else {
			t.Logf("%d→%d: max |fast−naive| = %.2g", tt.from, tt.to, d)
		}
	}
}

// fitTone least-squares fits a·cos + b·sin at frequency f to y (sampled at
// rate) over the middle of the signal, away from the zero-padded edges, and
// returns the amplitude and the RMS of what the fit leaves.
func fitTone(y []float32, f float64, rate int) (amp, residual float64) {
	lo, hi := len(y)/5, len(y)-len(y)/5
	var cc, ss, cs, yc, ys float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		c, s := math.Cos(w), math.Sin(w)
		cc += c * c
		ss += s * s
		cs += c * s
		yc += float64(y[i]) * c
		ys += float64(y[i]) * s
	}
	det := cc*ss - cs*cs
	a := (yc*ss - ys*cs) / det
	b := (ys*cc - yc*cs) / det
	var r2 float64
	for i := lo; i < hi; i++ {
		w := 2 * math.Pi * f * float64(i) / float64(rate)
		e := float64(y[i]) - a*math.Cos(w) - b*math.Sin(w)
		r2 += e * e
	}
	return math.Hypot(a, b), math.Sqrt(r2 / float64(hi-lo))
}

func rms(y []float32) float64 {
	lo, hi := len(y)/5, len(y)-len(y)/5
	var s float64
	for _, v := range y[lo:hi] {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(hi-lo))
}

func sine(f float64, rate, n int, amp float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(amp * math.Sin(2*math.Pi*f*float64(i)/float64(rate)+0.3))
	}
	return x
}

func dB(x float64) float64 { return 20 * math.Log10(x) }

// TestResampleResponse sweeps tones through each conversion: in the passband
// (to 0.45 of the lower rate) a tone keeps its amplitude within 0.1 dB and
// its frequency, with everything else (images, aliases, distortion) at least
// 60 dB down; a tone above the new Nyquist comes out at least 60 dB down.
// The worst values measured are logged; the design comment in resample.go
// quotes them.
func TestResampleResponse(t *testing.T) {
	const amp = 0.5
	for _, rates := range [][2]int{{44100, 16000}, {48000, 16000}, {22050, 16000}, {11025, 16000}, {8000, 16000}, {16000, 8000}, {16000, 44100}} {
		from, to := rates[0], rates[1]
		nyq := float64(min(from, to)) / 2
		n := from / 4 // 250 ms
		worstPass, worstResidual, worstStop := 0.0, math.Inf(-1), math.Inf(-1)
		for f := 50.0; f <= 0.9*nyq; f += 0.9 * nyq / 20 {
			y := mustResample(t, sine(f, from, n, amp), from, to)
			a, r := fitTone(y, f, to)
			worstPass = max(worstPass, math.Abs(dB(a/amp)))
			worstResidual = max(worstResidual, dB(r/(amp/math.Sqrt2)))
		}
		if to < from {
			for f := nyq + 20; f < float64(from)/2; f += (float64(from)/2 - nyq) / 20 {
				y := mustResample(t, sine(f, from, n, amp), from, to)
				worstStop = max(worstStop, dB(rms(y)/(amp/math.Sqrt2)))
			}
		}
		t.Logf("%d→%d: passband (≤ %.0f Hz) deviation %.4f dB, residual %.1f dB; tones above %.0f Hz: worst %.1f dB (-Inf: none, upsampling)",
			from, to, 0.9*nyq, worstPass, worstResidual, nyq, worstStop)
		if worstPass > 0.1 {
			t.Errorf("%d→%d: passband amplitude off by %.3f dB, want ≤ 0.1", from, to, worstPass)
		}
		if worstResidual > -60 {
			t.Errorf("%d→%d: passband residual %.1f dB, want ≤ -60 (wrong frequency, images or aliases)", from, to, worstResidual)
		}
		if worstStop > -60 {
			t.Errorf("%d→%d: tone above the new Nyquist at %.1f dB, want ≤ -60", from, to, worstStop)
		}
	}
}

func TestResampleDC(t *testing.T) {
	x := make([]float32, 8000)
	for i := range x {
		x[i] = 0.25
	}
	y := mustResample(t, x, 44100, 16000)
	for i := len(y) / 5; i < len(y)*4/5; i++ {
		if math.Abs(float64(y[i])-0.25) > 1e-4 {
			t.Fatalf("y[%d] = %v, want 0.25", i, y[i])
		}
	}
}

func TestOutputLen(t *testing.T) {
	tests := []struct{ n, from, to, want int }{
		{0, 44100, 16000, 0},
		{1, 44100, 16000, 1},
		{44100, 44100, 16000, 16000},
		{44101, 44100, 16000, 16001}, // ⌈44101·160/441⌉ = ⌈16000.36⌉
		{441, 44100, 16000, 160},
		{442, 44100, 16000, 161},
		{3, 48000, 16000, 1},
		{4, 48000, 16000, 2},
		{5, 8000, 16000, 10},
		{7, 16000, 16000, 7},
		{1 << 40, 8000, 768000, 96 << 40}, // no overflow for long streams
	}
	for _, tt := range tests {
		if got := OutputLen(tt.n, tt.from, tt.to); got != tt.want {
			t.Errorf("OutputLen(%d, %d, %d) = %d, want %d", tt.n, tt.from, tt.to, got, tt.want)
		}
	}
	for _, tt := range tests[:10] {
		if got := len(mustResample(t, make([]float32, tt.n), tt.from, tt.to)); got != tt.want {
			t.Errorf("len(Resample(%d samples, %d, %d)) = %d, want %d", tt.n, tt.from, tt.to, got, tt.want)
		}
	}
}

func TestResampleIdentity(t *testing.T) {
	x := noise(1000, 7)
	y := mustResample(t, x, 16000, 16000)
	if maxAbsDiff(x, y) != 0 {
		t.Error("from == to changed the samples")
	}
	y[0] = 42
	if x[0] == 42 {
		t.Error("from == to returned the input slice, want a copy")
	}
}

// Any chunking, including empty and one-sample chunks, must give exactly the
// one-shot result; Flush must leave the Resampler ready for a new stream.
func TestResamplerChunkedEqualsOneShot(t *testing.T) {
	for _, rates := range [][2]int{{44100, 16000}, {48000, 16000}, {8000, 16000}, {22050, 16000}, {44101, 16000}, {16000, 16000}} {
		from, to := rates[0], rates[1]
		x := noise(20000, 3)
		want := mustResample(t, x, from, to)
		r, err := NewResampler(from, to)
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(uint64(from), 9))
		for round := range 2 { // the second round checks that Flush reset everything
			var got []float32
			for rest := x; len(rest) > 0; {
				n := min(len(rest), []int{0, 1, 2, 7, 160, 441, 4096}[rng.IntN(7)])
				got = append(got, r.Process(rest[:n])...)
				rest = rest[n:]
			}
			got = append(got, r.Flush()...)
			if len(got) != len(want) {
				t.Fatalf("%d→%d round %d: %d samples, one-shot %d", from, to, round, len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("%d→%d round %d: sample %d = %v, one-shot %v", from, to, round, i, got[i], want[i])
				}
			}
		}
	}
}

// A Resampler holds no more input than its filter needs, however long the
// stream: the server keeps one per live stream.
func TestResamplerBoundedState(t *testing.T) {
	r, err := NewResampler(48000, 16000)
	if err != nil {
		t.Fatal(err)
	}
	chunk := noise(960, 1) // 20 ms
	for range 5000 {       // 100 s
		r.Process(chunk)
	}
	if limit := 2*(2*r.k+len(chunk)) + 1; cap(r.buf) > limit {
		t.Errorf("pending buffer capacity %d after 100 s, want ≤ %d", cap(r.buf), limit)
	}
}

func TestNewResamplerRejectsBadRates(t *testing.T) {
	for _, rates := range [][2]int{{0, 16000}, {-8000, 16000}, {16000, 0}, {999, 16000}, {16000, 768001}, {1 << 40, 16000}} {
		if _, err := NewResampler(rates[0], rates[1]); err == nil {
			t.Errorf("NewResampler(%d, %d): no error", rates[0], rates[1])
		}
		if _, err := Resample([]float32{1}, rates[0], rates[1]); err == nil {
			t.Errorf("Resample(%d, %d): no error", rates[0], rates[1])
		}
	}
}

func TestDownmix(t *testing.T) {
	tests := []struct {
		name string
		in   [][]float32
		want []float32
	}{
		{"none", nil, nil},
		{"mono", [][]float32{{1, 2}}, []float32{1, 2}},
		{"stereo", [][]float32{{1, 0.5}, {0, -0.5}}, []float32{0.5, 0}},
		{"three", [][]float32{{3, 0}, {0, 3}, {0, 0}}, []float32{1, 1}},
		{"unequal", [][]float32{{1, 1, 1}, {1}}, []float32{1}},
	}
	for _, tt := range tests {
		if got := Downmix(tt.in); len(got) != len(tt.want) || (len(got) > 0 && maxAbsDiff(got, tt.want) != 0) {
			t.Errorf("%s: Downmix = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestLoad16kMono(t *testing.T) {
	got, err := Load16kMono("testdata/s16.wav") // 8 kHz stereo, 440 Hz + 1 kHz
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2*fixtureFrames {
		t.Fatalf("%d samples, want %d", len(got), 2*fixtureFrames)
	}
	// It is decode, then downmix, then resample: compare with doing those
	// steps by hand, the last with the naive reference.
	src := decodeFixture(t, "s16.wav")
	mono := make([]float32, src.Frames())
	for i := range mono {
		mono[i] = (src.Samples[0][i] + src.Samples[1][i]) / 2
	}
	if d := maxAbsDiff(got, resampleNaive(mono, fixtureRate, WhisperRate)); d > 2e-6 {
		t.Errorf("differs from decode+downmix+naive resample by %g", d)
	}
}

// BenchmarkResample44kTo16k resamples 60 s of 44.1 kHz audio to 16 kHz and
// reports how many times faster than real time that is.
func BenchmarkResample44kTo16k(b *testing.B) {
	x := noise(60*44100, 1)
	b.SetBytes(int64(4 * len(x)))
	for b.Loop() {
		if _, err := Resample(x, 44100, 16000); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(60/(b.Elapsed().Seconds()/float64(b.N)), "x-realtime")
}

// Streams on separate goroutines share cached filter tables; each must still
// get the one-shot result (run with -race to check the sharing).
func TestResamplerConcurrentStreams(t *testing.T) {
	x := noise(5000, 11)
	rates := []int{44100, 48000, 8000, 22050}
	want := make(map[int][]float32)
	for _, from := range rates {
		want[from] = mustResample(t, x, from, WhisperRate)
	}
	errs := make(chan error, 16)
	for g := range 16 {
		go func() {
			from := rates[g%len(rates)]
			r, err := NewResampler(from, WhisperRate)
			if err != nil {
				errs <- err
				return
			}
			got := append(r.Process(x[:1234]), r.Process(x[1234:])...)
			got = append(got, r.Flush()...)
			if maxAbsDiff(got, want[from]) != 0 {
				errs <- fmt.Errorf("goroutine %d (%d Hz): output differs from one-shot", g, from)
				return
			}
			errs <- nil
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
