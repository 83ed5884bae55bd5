package prune

import (
	"fmt"
	"math"
)

// Lagrangian drives the expected sparsity ŝ to a target t with the constraint term of CoFi
// eq. (6) (after Wang, Wohlwend & Lei, "Structured Pruning of Large Language Models", 2020):
//
//	L_c = λ₁·(ŝ − t) + λ₂·(ŝ − t)²
//
// The model's weights and the gates' log α MINIMISE L + L_c, while λ₁ and λ₂ MAXIMISE it: a
// min-max game in which the multipliers grow as long as ŝ misses t, until the gates meet the
// target. Sign convention: Apply stores −∂L_c/∂λ in the λs' gradient buffers, so that the
// project's ordinary minimising optimizer (AdamW with a positive learning rate, no weight
// decay on the λs) performs gradient ASCENT on them. CoFi does the same with a negated
// learning rate instead (trainer/trainer.py#L157-L163: "lr": -reg_learning_rate).
//
// The target warms up linearly from 0 to t over Warmup steps (CoFi's lagrangian_warmup,
// get_target_sparsity, l0_module.py#L256-L258), so the gates are not pushed to the full
// target before the distillation has settled.
type Lagrangian struct {
	Target float64 // t in [0, 1)
	Warmup int     // steps over which the target rises from 0 to t; 0: t from the start
}

// Validate reports an impossible target.
func (l Lagrangian) Validate() error {
	if !(l.Target >= 0 && l.Target < 1) {
		return fmt.Errorf("prune: target sparsity %v outside [0, 1)", l.Target)
	}
	if l.Warmup < 0 {
		return fmt.Errorf("prune: negative target warm-up %d", l.Warmup)
	}
	return nil
}

// TargetAt is the target at optimizer step (0-based): t·min(1, step/Warmup).
func (l Lagrangian) TargetAt(step int) float64 {
	if l.Warmup <= 0 {
		return l.Target
	}
	return l.Target * math.Min(1, float64(max(step, 0))/float64(l.Warmup))
}

// LagrangianTerm returns L_c = λ₁(ŝ − t) + λ₂(ŝ − t)² and its partial derivatives ∂L_c/∂ŝ,
// ∂L_c/∂λ₁ = ŝ − t and ∂L_c/∂λ₂ = (ŝ − t)² (the true derivatives; the ascent sign is applied
// by whoever stores them, see Lagrangian).
func LagrangianTerm(s, t, lambda1, lambda2 float64) (loss, ds, dl1, dl2 float64) {
	e := s - t
	return lambda1*e + lambda2*e*e, lambda1 + 2*lambda2*e, e, e * e
}
