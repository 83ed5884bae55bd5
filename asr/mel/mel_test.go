package mel

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// naivePower is the reference one-sided power spectrum: the DFT as a direct O(n²) sum in
// float64, |Σ x[j]·e^{−2πi·jk/n}|² for k = 0…n/2.
func naivePower(x []float64) []float64 {
	n := len(x)
	// cos and sin of −2πm/n for m < n; the angle of term (j, k) is index jk mod n, exactly.
	cos, sin := make([]float64, n), make([]float64, n)
	for m := range n {
		sin[m], cos[m] = math.Sincos(-2 * math.Pi * float64(m) / float64(n))
	}
	out := make([]float64, n/2+1)
	for k := range out {
		var re, im float64
		for j, v := range x {
			re += v * cos[j*k%n]
			im += v * sin[j*k%n]
		}
		out[k] = re*re + im*im
	}
	return out
}

// logMelNaive is the whole pipeline written the obvious way, for comparison with LogMel:
// explicit zero padding, explicit reflect padding, every frame through naivePower, the dense
// filterbank product, log10, floor, scale.
func logMelNaive(samples []float32, nMels, padding int) []float32 {
	x := make([]float64, len(samples)+padding)
	for i, v := range samples {
		x[i] = float64(v)
	}
	n := len(x)
	p := NFFT / 2
	padded := make([]float64, 0, n+2*p)
	for i := p; i >= 1; i-- { // x[p], …, x[1]
		padded = append(padded, x[i])
	}
	padded = append(padded, x...)
	for i := n - 2; i >= n-1-p; i-- { // x[n-2], …, x[n-1-p]
		padded = append(padded, x[i])
	}
	frames := 1 + (len(padded)-NFFT)/HopLength - 1 // torch.stft frames, minus the dropped last
	filters, err := Filters(nMels)
	if err != nil {
		panic(err)
	}
	out := make([]float64, nMels*frames)
	frame := make([]float64, NFFT)
	for t := range frames {
		for i := range NFFT {
			w := 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/NFFT)
			frame[i] = padded[t*HopLength+i] * w
		}
		pow := naivePower(frame)
		for m := range nMels {
			var s float64
			for k := range NBins {
				s += float64(filters[m*NBins+k]) * pow[k]
			}
			out[m*frames+t] = math.Log10(math.Max(s, 1e-10))
		}
	}
	mx := math.Inf(-1)
	for _, v := range out {
		mx = math.Max(mx, v)
	}
	res := make([]float32, len(out))
	for i, v := range out {
		res[i] = float32((math.Max(v, mx-8) + 4) / 4)
	}
	return res
}

// maxAbsDiff reports the largest |got−want| and its index; lengths must match.
func maxAbsDiff(got, want []float32) (float64, int) {
	var d float64
	at := -1
	for i := range got {
		if e := math.Abs(float64(got[i]) - float64(want[i])); e > d || math.IsNaN(e) {
			d, at = e, i
		}
	}
	return d, at
}

func TestPowerMatchesNaiveDFT(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func(i int) float64{
		"impulse":  func(i int) float64 { return b2f(i == 0) },
		"constant": func(int) float64 { return 1 },
		"bin 7":    func(i int) float64 { return math.Cos(2 * math.Pi * 7 * float64(i) / NFFT) },
		"nyquist":  func(i int) float64 { return float64(1 - 2*(i%2)) },
		"random":   func(int) float64 { return rng.Float64()*2 - 1 },
		"off-grid": func(i int) float64 { return math.Sin(2*math.Pi*1234.5*float64(i)/SampleRate + 0.3) },
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			st := newSTFT()
			for i := range st.buf {
				st.buf[i] = f(i)
			}
			want := naivePower(st.buf)
			got := st.power()
			var peak float64
			for _, v := range want {
				peak = math.Max(peak, v)
			}
			for k := range want {
				if math.Abs(got[k]-want[k]) > 1e-9*math.Max(peak, 1) {
					t.Fatalf("bin %d: got %g, want %g (peak %g)", k, got[k], want[k], peak)
				}
			}
		})
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func TestSlaneyScale(t *testing.T) {
	tests := []struct{ hz, mel float64 }{
		{0, 0},
		{200.0 / 3, 1},
		{500, 7.5},
		{1000, 15},
		{6400, 15 + 27}, // 27 mels per factor 6.4 above 1 kHz
		{8000, 15 + 27*math.Log(8)/math.Log(6.4)},
	}
	for _, tc := range tests {
		if got := hzToMel(tc.hz); math.Abs(got-tc.mel) > 1e-12 {
			t.Errorf("hzToMel(%g) = %.15g, want %.15g", tc.hz, got, tc.mel)
		}
		if got := melToHz(tc.mel); math.Abs(got-tc.hz) > 1e-9 {
			t.Errorf("melToHz(%g) = %.15g, want %.15g", tc.mel, got, tc.hz)
		}
	}
}

func TestLinspace(t *testing.T) {
	// numpy.linspace(0, 8000, 201)[[0, 1, 100, 200]] and linspace(0, 1, 3), linspace(2, 2, 1).
	if got := linspace(0, 8000, 201); got[0] != 0 || got[1] != 40 || got[100] != 4000 || got[200] != 8000 {
		t.Errorf("linspace(0, 8000, 201) = %v…", got[:3])
	}
	if got := linspace(0, 1, 3); got[0] != 0 || got[1] != 0.5 || got[2] != 1 {
		t.Errorf("linspace(0, 1, 3) = %v", got)
	}
	if got := linspace(2, 3, 1); len(got) != 1 || got[0] != 2 {
		t.Errorf("linspace(2, 3, 1) = %v", got)
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		nMels int
		nnz   int // non-zero weights, counted with numpy on librosa's matrix
		// sha256 of the little-endian float32 matrix; the same hash as whisper's
		// mel_filters.npz["mel_<n>"] (printed by tools/ref/mel_ref.py), i.e. bit-identical
		sha string
		// spot values from librosa.filters.mel(sr=16000, n_fft=400, n_mels=nMels), as float32 bits
		spots map[[2]int]uint32
	}{
		{80, 391, "4f2701b1d287d74a0dc9871026e9519d98cb76426615f2539b0d151a0ae4ec2e", map[[2]int]uint32{{0, 1}: 1019980964, {79, 199}: 971720554, {40, 43}: 1014066546, {0, 2}: 0, {79, 200}: 0}},
		{128, 394, "2a5f9822897750e047c85dea37cc268d3be0ecfd23c28a5f10da129d99d05afe", map[[2]int]uint32{{0, 1}: 1011530819, {127, 199}: 982650122, {64, 43}: 1016345770, {0, 2}: 0, {127, 200}: 0}},
	}
	dump := os.Getenv("MEL_FILTERS_OUT") // see tools/ref/mel_ref.py --go-filters
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.nMels), func(t *testing.T) {
			w, err := Filters(tc.nMels)
			if err != nil {
				t.Fatal(err)
			}
			if len(w) != tc.nMels*NBins {
				t.Fatalf("len %d, want %d", len(w), tc.nMels*NBins)
			}
			nnz := 0
			for _, v := range w {
				if v < 0 || math.IsNaN(float64(v)) {
					t.Fatalf("weight %g", v)
				}
				if v != 0 {
					nnz++
				}
			}
			if nnz != tc.nnz {
				t.Errorf("%d non-zero weights, want %d", nnz, tc.nnz)
			}
			for at, bits := range tc.spots {
				if got := math.Float32bits(w[at[0]*NBins+at[1]]); got != bits {
					t.Errorf("w%v = %g, want %g", at, w[at[0]*NBins+at[1]], math.Float32frombits(bits))
				}
			}
			h := sha256.New()
			for _, v := range w {
				h.Write(binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)))
			}
			if got := hex.EncodeToString(h.Sum(nil)); got != tc.sha {
				t.Errorf("sha256 %s, want %s", got, tc.sha)
			}
			fb, _ := NewFilterbank(tc.nMels)
			for m := range tc.nMels {
				if fb.lo[m] >= fb.hi[m] {
					t.Errorf("band %d is empty", m)
				}
				for k := range NBins {
					if in := k >= fb.lo[m] && k < fb.hi[m]; !in && w[m*NBins+k] != 0 {
						t.Errorf("band %d bin %d outside [%d,%d) is %g", m, k, fb.lo[m], fb.hi[m], w[m*NBins+k])
					}
				}
			}
			w[0] = 42 // Filters returns a copy: the shared matrix must not change.
			if fb.Weights[0] == 42 {
				t.Error("Filters returned the shared matrix")
			}
			if dump != "" {
				path := filepath.Join(dump, fmt.Sprintf("filters%d.npy", tc.nMels))
				if err := writeNpyF32(path, []int{tc.nMels, NBins}, fb.Weights); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	for _, n := range []int{0, -1, 40, 81, 127, 129} {
		if _, err := Filters(n); err == nil {
			t.Errorf("Filters(%d): no error", n)
		}
	}
}

func loadClip(t testing.TB) []float32 {
	t.Helper()
	x, err := readWavPCM16(filepath.Join("testdata", "clip.wav"))
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func loadRef(t testing.TB, name string, nMels int) ([]int, []float32) {
	t.Helper()
	shape, data, err := readNpyF32(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 2 || shape[0] != nMels {
		t.Fatalf("%s: shape %v", name, shape)
	}
	return shape, data
}

// checkPrefix compares the first frames of got against want ([nMels][frames]).
func checkPrefix(t *testing.T, got *Spectrogram, want []float32, frames int, tol float64) {
	t.Helper()
	sub := make([]float32, got.NMels*frames)
	for m := range got.NMels {
		copy(sub[m*frames:(m+1)*frames], got.Data[m*got.NFrames:m*got.NFrames+frames])
	}
	d, at := maxAbsDiff(sub, want)
	t.Logf("max abs diff %.3g over %d×%d", d, got.NMels, frames)
	if d > tol {
		t.Errorf("max abs diff %.3g > %g at band %d frame %d: got %g, want %g",
			d, tol, at/frames, at%frames, sub[at], want[at])
	}
}

// TestLogMelReference compares against OpenAI's log_mel_spectrogram (tools/ref/mel_ref.py).
func TestLogMelReference(t *testing.T) {
	clip := loadClip(t)
	const tol = 1e-4
	for _, nMels := range []int{80, 128} {
		t.Run(fmt.Sprintf("%d/unpadded", nMels), func(t *testing.T) {
			shape, want := loadRef(t, fmt.Sprintf("mel%d.npy", nMels), nMels)
			got, err := LogMel(clip, nMels, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got.NMels != nMels || got.NFrames != shape[1] || got.NFrames != len(clip)/HopLength {
				t.Fatalf("shape %d×%d, want %v", got.NMels, got.NFrames, shape)
			}
			checkPrefix(t, got, want, got.NFrames, tol)
		})
		t.Run(fmt.Sprintf("%d/padded", nMels), func(t *testing.T) {
			shape, want := loadRef(t, fmt.Sprintf("mel%d_pad.npy", nMels), nMels)
			got, err := LogMel(clip, nMels, NSamples)
			if err != nil {
				t.Fatal(err)
			}
			if wantFrames := (len(clip) + NSamples) / HopLength; got.NFrames != wantFrames {
				t.Fatalf("%d frames, want %d", got.NFrames, wantFrames)
			}
			checkPrefix(t, got, want, shape[1], tol)
		})
	}
	t.Run("whisper30s/80", func(t *testing.T) {
		shape, want := loadRef(t, "seg80.npy", 80)
		got, err := Whisper30s(clip, 80)
		if err != nil {
			t.Fatal(err)
		}
		if got.NFrames != NFrames {
			t.Fatalf("%d frames, want %d", got.NFrames, NFrames)
		}
		checkPrefix(t, got, want, shape[1], tol)
		for m := range got.NMels {
			for f := shape[1]; f < NFrames; f++ {
				if v := got.At(m, f); v != 0 {
					t.Fatalf("band %d frame %d = %g, want 0 past the audio", m, f, v)
				}
			}
		}
	})
	t.Run("whisper30s/128", func(t *testing.T) {
		_, pad := loadRef(t, "mel128_pad.npy", 128)
		got, err := Whisper30s(clip, 128)
		if err != nil {
			t.Fatal(err)
		}
		content := len(clip) / HopLength
		for m := range 128 {
			for f := range NFrames {
				want := float32(0)
				if f < content {
					want = pad[m*500+f]
				}
				if d := math.Abs(float64(got.At(m, f) - want)); d > tol {
					t.Fatalf("band %d frame %d: got %g, want %g", m, f, got.At(m, f), want)
				}
			}
		}
	})
}

func TestLogMelMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	tests := []struct {
		n, padding, nMels int
		gen               string
	}{
		{201, 0, 80, "noise"},  // shortest input torch accepts: one frame
		{359, 0, 128, "noise"}, // reflection reaches both ends of one frame
		{160 * 7, 0, 80, "tone"},
		{1000, 17, 80, "tone"},
		{250, 2000, 128, "noise"}, // mostly zero padding, reflected zeros at the end
		{0, 1000, 80, "noise"},    // padding only: all silent
		{5000, 0, 80, "silence"},
		{64*160 + 33, 160, 128, "noise"}, // enough frames for two workers
		{3000, 0, 80, "spiky"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s/n=%d/pad=%d/mels=%d", tc.gen, tc.n, tc.padding, tc.nMels), func(t *testing.T) {
			x := make([]float32, tc.n)
			for i := range x {
				switch tc.gen {
				case "noise":
					x[i] = float32(rng.NormFloat64() * 0.1)
				case "tone":
					x[i] = float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/SampleRate))
				case "spiky":
					if i%997 == 0 {
						x[i] = 1
					}
				}
			}
			got, err := LogMel(x, tc.nMels, tc.padding)
			if err != nil {
				t.Fatal(err)
			}
			want := logMelNaive(x, tc.nMels, tc.padding)
			if len(got.Data) != len(want) || got.NFrames != (tc.n+tc.padding)/HopLength {
				t.Fatalf("got %d values in %d frames, want %d", len(got.Data), got.NFrames, len(want))
			}
			if d, at := maxAbsDiff(got.Data, want); d > 1e-5 {
				t.Errorf("max abs diff %g at %d: got %g, want %g", d, at, got.Data[at], want[at])
			}
		})
	}
}

func TestLogMelSilence(t *testing.T) {
	// log10(1e-10) = −10 everywhere, which is also the max, so (−10+4)/4 = −1.5.
	s, err := LogMel(make([]float32, 4000), 80, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range s.Data {
		if v != -1.5 {
			t.Fatalf("value %d = %g, want -1.5", i, v)
		}
	}
}

func TestLogMelErrors(t *testing.T) {
	tests := []struct {
		name    string
		samples []float32
		nMels   int
		padding int
		is      error
	}{
		{"n_mels 64", make([]float32, 1000), 64, 0, nil},
		{"negative padding", make([]float32, 1000), 80, -1, nil},
		{"NaN", []float32{0: 0, 500: float32(math.NaN()), 999: 0}, 80, 0, nil},
		{"+Inf", []float32{0: float32(math.Inf(1)), 999: 0}, 80, 0, nil},
		{"empty", nil, 80, 0, ErrTooShort},
		{"200 samples", make([]float32, 200), 80, 0, ErrTooShort},
		{"100+100", make([]float32, 100), 128, 100, ErrTooShort},
		{"padding past 24 h", make([]float32, 10), 80, maxSamples, ErrTooLong},
		{"padding overflow", make([]float32, 10), 80, math.MaxInt, ErrTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := LogMel(tc.samples, tc.nMels, tc.padding)
			if err == nil {
				t.Fatalf("no error, got %d frames", s.NFrames)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v, want %v", err, tc.is)
			}
		})
	}
	if _, err := Whisper30s([]float32{float32(math.NaN())}, 80); err == nil {
		t.Error("Whisper30s(NaN): no error")
	}
}

func TestPadOrTrim(t *testing.T) {
	// 2 bands × 3 frames: band 0 = 1 2 3, band 1 = 4 5 6.
	in := &Spectrogram{NMels: 2, NFrames: 3, Data: []float32{1, 2, 3, 4, 5, 6}}
	tests := []struct {
		frames int
		want   []float32
	}{
		{3, []float32{1, 2, 3, 4, 5, 6}},
		{2, []float32{1, 2, 4, 5}},
		{5, []float32{1, 2, 3, 0, 0, 4, 5, 6, 0, 0}},
		{0, []float32{}},
		{-4, []float32{}},
	}
	for _, tc := range tests {
		got := PadOrTrim(in, tc.frames)
		if got.NMels != 2 || got.NFrames != max(tc.frames, 0) || fmt.Sprint(got.Data) != fmt.Sprint(tc.want) {
			t.Errorf("PadOrTrim(%d) = %d×%d %v, want %v", tc.frames, got.NMels, got.NFrames, got.Data, tc.want)
		}
	}
	if got := PadOrTrim(in, 3); &got.Data[0] == &in.Data[0] {
		t.Error("PadOrTrim shares its input's data")
	}
}

func TestWhisper30sLengths(t *testing.T) {
	// Content frames are len/160; the rest of the 3000 is zero, and audio past 30 s is cut.
	for _, n := range []int{0, 159, 160, 16000, NSamples - 1, NSamples, NSamples + 16000} {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(math.Sin(float64(i) * 0.05))
		}
		s, err := Whisper30s(x, 80)
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if s.NMels != 80 || s.NFrames != NFrames || len(s.Data) != 80*NFrames {
			t.Fatalf("n=%d: shape %d×%d", n, s.NMels, s.NFrames)
		}
		content := min(n/HopLength, NFrames)
		for f := range NFrames {
			if z := s.At(10, f) == 0; z != (f >= content) {
				t.Fatalf("n=%d: frame %d is %g, content %d", n, f, s.At(10, f), content)
			}
		}
	}
}

// FuzzLogMel checks LogMel against the naive pipeline on arbitrary PCM16 input and paddings,
// and that it never fails on input of a valid length.
func FuzzLogMel(f *testing.F) {
	f.Add([]byte{1, 2, 3}, uint16(300), false)
	f.Add(make([]byte, 800), uint16(0), true)
	f.Add([]byte("\xff\x7f\x00\x80"), uint16(1000), false)
	f.Fuzz(func(t *testing.T, pcm []byte, padding uint16, big bool) {
		if len(pcm) > 3200 {
			pcm = pcm[:3200] // up to 1600 samples: the naive DFT is slow
		}
		x := make([]float32, len(pcm)/2)
		for i := range x {
			x[i] = float32(int16(uint16(pcm[2*i])|uint16(pcm[2*i+1])<<8)) / 32768
		}
		pad := int(padding % 1600)
		nMels := 80
		if big {
			nMels = 128
		}
		got, err := LogMel(x, nMels, pad)
		if len(x)+pad <= NFFT/2 {
			if !errors.Is(err, ErrTooShort) {
				t.Fatalf("n=%d: error %v, want ErrTooShort", len(x)+pad, err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		want := logMelNaive(x, nMels, pad)
		if d, at := maxAbsDiff(got.Data, want); d > 1e-5 {
			t.Fatalf("max abs diff %g at %d", d, at)
		}
	})
}

func benchAudio(n int) []float32 {
	rng := rand.New(rand.NewPCG(5, 6))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(0.3*math.Sin(float64(i)*0.07) + 0.05*rng.NormFloat64())
	}
	return x
}

func BenchmarkWhisper30s(b *testing.B) {
	x := benchAudio(NSamples)
	for _, nMels := range []int{80, 128} {
		b.Run(fmt.Sprint(nMels), func(b *testing.B) {
			for b.Loop() {
				if _, err := Whisper30s(x, nMels); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLogMel30s(b *testing.B) {
	x := benchAudio(NSamples)
	for b.Loop() {
		if _, err := LogMel(x, 80, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFrame(b *testing.B) {
	x := benchAudio(NFFT)
	st := newSTFT()
	fb, _ := NewFilterbank(80)
	mels := make([]float32, 80)
	for b.Loop() {
		st.frame(x, len(x), 1)
		fb.apply(mels, st.power())
	}
}
