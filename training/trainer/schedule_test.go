package trainer

import (
	"math"
	"strings"
	"testing"
)

func TestScheduleLR(t *testing.T) {
	cos := WarmupDecay{Peak: 1e-3, Floor: 1e-4, Warmup: 4, Total: 14, Shape: DecayCosine}
	lin := WarmupDecay{Peak: 1e-3, Floor: 1e-4, Warmup: 4, Total: 14, Shape: DecayLinear}
	flat := WarmupDecay{Peak: 1e-3, Warmup: 4, Shape: DecayNone}
	noWarm := WarmupDecay{Peak: 2, Floor: 0, Total: 3, Shape: DecayLinear}
	tests := []struct {
		name string
		s    Schedule
		step int
		want float64
	}{
		{"constant", Constant(3e-4), 0, 3e-4},
		{"constant late", Constant(3e-4), 1 << 30, 3e-4},
		{"warm-up first step is not zero", cos, 0, 0.25e-3},
		{"warm-up middle", cos, 1, 0.5e-3},
		{"warm-up ends at peak", cos, 3, 1e-3},
		{"cosine first decay step", cos, 4, 1e-4 + 0.9e-3*0.5*(1+math.Cos(math.Pi/10))},
		{"cosine halfway", cos, 8, 1e-4 + 0.9e-3*0.5},
		{"cosine last step is the floor", cos, 13, 1e-4},
		{"cosine past the end stays at the floor", cos, 100, 1e-4},
		{"linear first decay step", lin, 4, 1e-3 - 0.9e-3*0.1},
		{"linear halfway", lin, 8, 1e-3 - 0.9e-3*0.5},
		{"linear last step", lin, 13, 1e-4},
		{"none after warm-up", flat, 4, 1e-3},
		{"none far out", flat, 1e6, 1e-3},
		{"no warm-up starts below peak", noWarm, 0, 2 - 2.0/3},
		{"no warm-up ends at floor", noWarm, 2, 0},
		{"negative step clamps", cos, -5, 0.25e-3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.LR(tc.step); math.Abs(got-tc.want) > 1e-15 {
				t.Errorf("LR(%d) = %.12g, want %.12g", tc.step, got, tc.want)
			}
		})
	}
}

// TestScheduleShape checks the whole curve: warm-up rises, decay never rises, all values lie
// in [Floor, Peak].
func TestScheduleShape(t *testing.T) {
	for _, shape := range []Decay{DecayCosine, DecayLinear, DecayNone} {
		s := WarmupDecay{Peak: 5e-4, Floor: 5e-5, Warmup: 50, Total: 1000, Shape: shape}
		prev := 0.0
		for step := range 1200 {
			lr := s.LR(step)
			if step < s.Warmup && lr <= prev {
				t.Fatalf("%v: warm-up not rising at step %d", shape, step)
			}
			if step >= s.Warmup && lr > prev {
				t.Fatalf("%v: rises after warm-up at step %d (%g > %g)", shape, step, lr, prev)
			}
			if lr > s.Peak*(1+1e-12) || (step >= s.Warmup && lr < s.Floor*(1-1e-12)) {
				t.Fatalf("%v: LR(%d) = %g outside [%g, %g]", shape, step, lr, s.Floor, s.Peak)
			}
			prev = lr
		}
	}
}

func TestScheduleValidate(t *testing.T) {
	tests := []struct {
		s    WarmupDecay
		want string // "" for valid
	}{
		{WarmupDecay{Peak: 1e-3, Total: 10}, ""},
		{WarmupDecay{Peak: 1e-3, Warmup: 100, Shape: DecayNone}, ""},
		{WarmupDecay{Peak: 1e-3, Floor: 1e-2, Total: 10}, "floor"},
		{WarmupDecay{Peak: -1, Total: 10}, "peak"},
		{WarmupDecay{Peak: math.Inf(1), Total: 10}, "peak"},
		{WarmupDecay{Peak: 1, Floor: math.NaN(), Total: 10}, "floor"},
		{WarmupDecay{Peak: 1, Warmup: -1, Total: 10}, "negative warm-up"},
		{WarmupDecay{Peak: 1, Warmup: 10, Total: 10}, "leaves nothing"},
		{WarmupDecay{Peak: 1, Total: 10, Shape: Decay(7)}, "unknown decay"},
	}
	for _, tc := range tests {
		err := tc.s.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.s, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: got %v, want an error containing %q", tc.s, err, tc.want)
		}
	}
}
