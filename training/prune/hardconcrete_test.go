package prune

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x70727565)) }

// TestKeepProbSampler checks the closed forms P(z ≠ 0) and P(z = 1) against the sampler's
// empirical frequencies (N draws: the binomial standard error is ≤ 0.5/√N, the bound 5σ), for
// the default and a non-default stretch and temperature, and that every draw is in [0, 1].
func TestKeepProbSampler(t *testing.T) {
	const n = 20000
	for _, hc := range []HardConcrete{DefaultHardConcrete(), {Beta: 0.5, L: -0.2, R: 1.05, Eps: 1e-6, SoftScale: 0.8}} {
		for _, la := range []float32{-3, -1, 0, 0.7, 2.5} {
			t.Run(fmt.Sprintf("beta %.2f l %.2f logalpha %g", hc.Beta, hc.L, la), func(t *testing.T) {
				r := newRNG(uint64(la*10) + 100)
				logA, u, z := make([]float32, n), make([]float32, n), make([]float32, n)
				for i := range u {
					logA[i] = la
					u[i] = float32(hc.Eps + (1-2*hc.Eps)*r.Float64())
				}
				hc.Sample(z, logA, u)
				var nz, ones int
				for _, v := range z {
					if v < 0 || v > 1 {
						t.Fatalf("gate %v outside [0, 1]", v)
					}
					if v != 0 {
						nz++
					}
					if v == 1 {
						ones++
					}
				}
				tol := 5 * 0.5 / math.Sqrt(n)
				if got, want := float64(nz)/n, hc.KeepProb(float64(la)); math.Abs(got-want) > tol {
					t.Errorf("P(z≠0): sampled %.4f, closed form %.4f", got, want)
				}
				if got, want := float64(ones)/n, hc.OneProb(float64(la)); math.Abs(got-want) > tol {
					t.Errorf("P(z=1): sampled %.4f, closed form %.4f", got, want)
				}
			})
		}
	}
	// The closed form against its definition, σ(log α − β·log(−l/r)), at a hand value:
	// default β, l, r and log α = 0 give σ(2/3·log 11) = σ(1.598597) = 0.831822
	if got := DefaultHardConcrete().KeepProb(0); math.Abs(got-0.831822) > 1e-6 {
		t.Errorf("KeepProb(0) = %.6f, want 0.831822", got)
	}
}

// TestSampleNaive checks the sampler against the textbook float64 formula.
func TestSampleNaive(t *testing.T) {
	hc := DefaultHardConcrete()
	r := newRNG(2)
	const n = 1000
	la, u := make([]float32, n), make([]float32, n)
	for i := range la {
		la[i] = float32(8*r.Float64() - 4)
		u[i] = float32(0.001 + 0.998*r.Float64())
	}
	got, want := make([]float32, n), make([]float32, n)
	hc.Sample(got, la, u)
	hc.SampleNaive(want, la, u)
	var worst float64
	for i := range got {
		worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
	}
	if worst > 1e-6 {
		t.Fatalf("Sample vs SampleNaive: max |diff| %.3g", worst)
	}
}

// TestSampleBackward checks ∂z/∂log α against central differences of the sampler in float64
// with the noise held fixed (h = 1e-6: truncation ~1e-12, rounding ~1e-10). Draws whose s̄
// lies within 1e-3 of a clamp edge are skipped (the derivative jumps there); clamped draws
// must get exactly zero gradient. The twin must accumulate into a prefilled buffer.
func TestSampleBackward(t *testing.T) {
	for _, hc := range []HardConcrete{DefaultHardConcrete(), {Beta: 0.3, L: -0.5, R: 1.5, Eps: 1e-6, SoftScale: 0.8}} {
		r := newRNG(3)
		const n = 400
		la, u, dz := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range la {
			la[i] = float32(6*r.Float64() - 3)
			u[i] = float32(0.01 + 0.98*r.Float64())
			dz[i] = float32(2*r.Float64() - 1)
		}
		dla := make([]float32, n)
		base := make([]float32, n)
		for i := range dla {
			base[i] = float32(r.Float64())
			dla[i] = base[i]
		}
		hc.SampleBackward(dla, dz, la, u)
		const h = 1e-6
		var worst, scale float64
		var clamped, inside int
		for i := range la {
			sb := hc.stretched(float64(la[i]), float64(u[i]))
			if math.Abs(sb) < 1e-3 || math.Abs(sb-1) < 1e-3 {
				continue
			}
			f := func(a float64) float64 { return math.Min(1, math.Max(0, hc.stretched(a, float64(u[i])))) }
			want := float64(dz[i]) * (f(float64(la[i])+h) - f(float64(la[i])-h)) / (2 * h)
			got := float64(dla[i] - base[i])
			if sb <= 0 || sb >= 1 {
				clamped++
				if got != 0 {
					t.Fatalf("clamped gate %d (s̄ = %.3f) got gradient %g", i, sb, got)
				}
				continue
			}
			inside++
			worst = math.Max(worst, math.Abs(got-want))
			scale = math.Max(scale, math.Abs(want))
		}
		if clamped == 0 || inside == 0 {
			t.Fatalf("draws cover %d clamped and %d interior gates: want both", clamped, inside)
		}
		t.Logf("beta %.2f: %d interior, %d clamped; max |grad − fd| %.3g (max |grad| %.3g)", hc.Beta, inside, clamped, worst, scale)
		if worst > 1e-5*scale+1e-6 {
			t.Fatalf("max |grad − fd| %.3g exceeds %.3g", worst, 1e-5*scale+1e-6)
		}
	}
}

// TestDeterministic pins CoFi's test-time rule on hand cases: n₀ = round(n − Σ P(z≠0))
// smallest gates zeroed, the others σ(0.8·log α/β) (or 1 when Binary).
func TestDeterministic(t *testing.T) {
	soft := func(la float64) float32 { return float32(sigmoid(0.8 * la * 1.5)) }
	hc := DefaultHardConcrete()
	bin := hc
	bin.Binary = true
	for _, tc := range []struct {
		name string
		hc   HardConcrete
		la   []float32
		want []float32
	}{
		// P(z≠0) = σ(la + 1.5986): 0.032, 0.990, 0.832, 0.996; Σ = 2.85 → round(1.15) = 1 zero.
		{"one zero of four", hc, []float32{-5, 3, 0, 4}, []float32{0, soft(3), soft(0), soft(4)}},
		// P = σ(−0.40) = 0.40 → round(0.60) = 1: a single gate below ½ is removed.
		{"single gate removed", hc, []float32{-2}, []float32{0}},
		// P = σ(0.60) = 0.646 → round(0.354) = 0: kept with its soft value.
		{"single gate kept", hc, []float32{-1}, []float32{soft(-1)}},
		// P = 0.931, 0.931, 0.198, 0.198; Σ = 2.26 → round(1.74) = 2 zeros: the two smallest.
		{"binary, two zeros", bin, []float32{1, -3, 1, -3}, []float32{1, 0, 1, 0}},
		// Equal log α: ties broken by index. P = σ(−1.4) = 0.198 each, Σ = 0.59 → 2 of 3 zeros.
		{"ties by index", bin, []float32{-3, -3, -3}, []float32{0, 0, 1}},
		{"all kept", bin, []float32{5, 6, 7}, []float32{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, len(tc.la))
			tc.hc.Deterministic(got, tc.la)
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > 1e-7 {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestHardConcreteValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		hc   HardConcrete
		ok   bool
	}{
		{"default", DefaultHardConcrete(), true},
		{"zero temperature", HardConcrete{Beta: 0, L: -0.1, R: 1.1, Eps: 1e-6, SoftScale: 0.8}, false},
		{"l not negative", HardConcrete{Beta: 1, L: 0, R: 1.1, Eps: 1e-6, SoftScale: 0.8}, false},
		{"r not above 1", HardConcrete{Beta: 1, L: -0.1, R: 1, Eps: 1e-6, SoftScale: 0.8}, false},
		{"no eps", HardConcrete{Beta: 1, L: -0.1, R: 1.1, SoftScale: 0.8}, false},
		{"binary needs no soft scale", HardConcrete{Beta: 1, L: -0.1, R: 1.1, Eps: 1e-6, Binary: true}, true},
	} {
		if err := tc.hc.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
