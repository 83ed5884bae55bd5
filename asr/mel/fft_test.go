package mel

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/dsp/fourier"
)

// naiveDFT is the complex DFT as a direct O(n²) sum in float64.
func naiveDFT(x []complex128) []complex128 {
	n := len(x)
	out := make([]complex128, n)
	for k := range out {
		var s complex128
		for j, v := range x {
			s += v * expNegI(j*k, n)
		}
		out[k] = s
	}
	return out
}

func TestCFFTMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, 20, 25, 27, 30, 40, 60, 100, 125, 200, 243, 256, 600} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, err := newCFFT(n)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]complex128, n)
			for i := range x {
				x[i] = complex(rng.NormFloat64(), rng.NormFloat64())
			}
			want := naiveDFT(x)
			got := p.transform(append([]complex128(nil), x...), make([]complex128, n))
			for k := range want {
				if d := cmplxAbs(got[k] - want[k]); d > 1e-10*float64(n) {
					t.Fatalf("bin %d: got %v, want %v", k, got[k], want[k])
				}
			}
		})
	}
	for _, n := range []int{0, -3, 7, 14, 22, 49} {
		if _, err := newCFFT(n); err == nil {
			t.Errorf("newCFFT(%d): no error", n)
		}
	}
}

func cmplxAbs(z complex128) float64 { return math.Hypot(real(z), imag(z)) }

func TestRealFFTMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, n := range []int{2, 4, 6, 10, 16, 50, 400, 512, 1000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			f, err := newRealFFT(n)
			if err != nil {
				t.Fatal(err)
			}
			x := make([]float64, n)
			for i := range x {
				x[i] = rng.NormFloat64()
			}
			want := naivePower(x)
			got := make([]float64, n/2+1)
			f.power(got, x, make([]complex128, n/2), make([]complex128, n/2))
			for k := range want {
				if d := math.Abs(got[k] - want[k]); d > 1e-9*float64(n) {
					t.Fatalf("bin %d: got %g, want %g", k, got[k], want[k])
				}
			}
		})
	}
	for _, n := range []int{0, 1, 3, 14} {
		if _, err := newRealFFT(n); err == nil {
			t.Errorf("newRealFFT(%d): no error", n)
		}
	}
}

// BenchmarkRealFFT compares the package's 400-point power spectrum with gonum's FFTPACK port,
// the justification for carrying an FFT of our own.
func BenchmarkRealFFT(b *testing.B) {
	x := make([]float64, NFFT)
	for i := range x {
		x[i] = math.Sin(float64(i) * 0.3)
	}
	pow := make([]float64, NBins)
	b.Run("own", func(b *testing.B) {
		a, c := make([]complex128, NFFT/2), make([]complex128, NFFT/2)
		for b.Loop() {
			fft400.power(pow, x, a, c)
		}
	})
	b.Run("gonum", func(b *testing.B) {
		f := fourier.NewFFT(NFFT)
		coeff := make([]complex128, NBins)
		for b.Loop() {
			f.Coefficients(coeff, x)
			for k, c := range coeff {
				pow[k] = real(c)*real(c) + imag(c)*imag(c)
			}
		}
	})
}
