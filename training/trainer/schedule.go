package trainer

import (
	"fmt"
	"math"
)

// Schedule gives the learning rate for each optimizer step. step is 0-based: LR(0) is used by
// the first update. Implementations must be pure functions of step, because an exact resume
// depends on it.
type Schedule interface {
	LR(step int) float64
}

// Constant is a fixed learning rate.
type Constant float64

// LR returns the constant.
func (c Constant) LR(int) float64 { return float64(c) }

// Validate reports a learning rate that is negative or not finite.
func (c Constant) Validate() error { return checkLR("constant", float64(c)) }

// Decay is the shape of a WarmupDecay schedule after its warm-up.
type Decay int

const (
	// DecayCosine follows half a cosine from Peak down to Floor.
	DecayCosine Decay = iota
	// DecayLinear falls in a straight line from Peak to Floor.
	DecayLinear
	// DecayNone stays at Peak (warm-up then constant).
	DecayNone
)

// String names the shape as configuration files spell it.
func (d Decay) String() string {
	switch d {
	case DecayCosine:
		return "cosine"
	case DecayLinear:
		return "linear"
	case DecayNone:
		return "none"
	}
	return fmt.Sprintf("Decay(%d)", int(d))
}

// WarmupDecay ramps the learning rate linearly over Warmup steps, then decays it to Floor at
// step Total−1. The ramp starts at Peak/Warmup rather than zero, so no step is wasted at
// LR 0, and ends at exactly Peak on step Warmup−1; the decay then reaches exactly Floor on the
// last step, Total−1. Steps past Total stay at Floor, so a run extended beyond its plan keeps
// training gently instead of failing.
type WarmupDecay struct {
	Peak   float64 // learning rate at the end of warm-up
	Floor  float64 // learning rate at the end of decay, 0 ≤ Floor ≤ Peak
	Warmup int     // warm-up steps, ≥ 0
	Total  int     // total steps the schedule is planned for, > Warmup unless Shape is DecayNone
	Shape  Decay
}

// LR implements Schedule.
func (s WarmupDecay) LR(step int) float64 {
	if step < 0 {
		step = 0
	}
	if step < s.Warmup {
		return s.Peak * float64(step+1) / float64(s.Warmup)
	}
	if s.Shape == DecayNone {
		return s.Peak
	}
	span := s.Total - s.Warmup // steps Warmup … Total−1, of which the first is below Peak
	p := 1.0
	if span > 0 && step < s.Total {
		p = float64(step-s.Warmup+1) / float64(span)
	}
	switch s.Shape {
	case DecayLinear:
		return s.Peak - (s.Peak-s.Floor)*p
	default:
		return s.Floor + (s.Peak-s.Floor)*0.5*(1+math.Cos(math.Pi*p))
	}
}

// Validate reports inconsistent settings.
func (s WarmupDecay) Validate() error {
	if err := checkLR("peak", s.Peak); err != nil {
		return err
	}
	if err := checkLR("floor", s.Floor); err != nil {
		return err
	}
	switch {
	case s.Floor > s.Peak:
		return fmt.Errorf("schedule: floor %v above peak %v", s.Floor, s.Peak)
	case s.Warmup < 0:
		return fmt.Errorf("schedule: negative warm-up %d", s.Warmup)
	case s.Shape < DecayCosine || s.Shape > DecayNone:
		return fmt.Errorf("schedule: unknown decay %v", s.Shape)
	case s.Shape != DecayNone && s.Total <= s.Warmup:
		return fmt.Errorf("schedule: total %d steps leaves nothing after %d warm-up steps", s.Total, s.Warmup)
	}
	return nil
}

func checkLR(what string, lr float64) error {
	if !(lr >= 0) || math.IsInf(lr, 0) {
		return fmt.Errorf("schedule: %s learning rate %v must be finite and non-negative", what, lr)
	}
	return nil
}
