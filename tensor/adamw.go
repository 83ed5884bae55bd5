package tensor

import (
	"fmt"
	"math"
)

// AdamWConsts are one AdamW step's per-tensor constants (training/trainer computes them from
// the step count, learning rate and hyperparameters).
type AdamWConsts struct {
	Scale          float32 // gradient multiplier (1/accumulation times the clipping factor)
	B1, OneMinusB1 float32 // β1, 1−β1
	B2, OneMinusB2 float32 // β2, 1−β2
	StepSize       float32 // lr / (1 − β1^t)
	InvSqrtBC2     float32 // 1 / sqrt(1 − β2^t)
	Eps            float32
	Decay          float32 // 1 − lr·λ (decoupled weight decay), or 1
}

// AdamWUpdate applies one AdamW step to the parameters w with gradients g and moments m and v
// (all of one length), as torch.optim.AdamW's single-tensor path does, and zeroes g — fused
// into one pass over memory, vectorised where the CPU allows. Per element:
//
//	g ← Scale·g;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g·g
//	w ← w·Decay − StepSize·m / (sqrt(v)·InvSqrtBC2 + Eps);  g ← 0
func AdamWUpdate(w, g, m, v []float32, c AdamWConsts) {
	if len(g) != len(w) || len(m) != len(w) || len(v) != len(w) {
		panic(fmt.Sprintf("tensor: AdamWUpdate lengths %d, %d, %d, %d differ", len(w), len(g), len(m), len(v)))
	}
	if len(w) == 0 {
		return
	}
	adamwKernel(w, g, m, v, &c)
}

// adamwGo is AdamWUpdate's pure-Go kernel (the !cgo build, CPUs without AVX2) and the order of
// operations the SIMD kernels keep (separate multiplies and adds, correctly rounded square root
// and division). Reslicing to len(w) lets the compiler drop the bounds checks.
func adamwGo(w, g, m, v []float32, k *AdamWConsts) {
	n := len(w)
	g, m, v = g[:n], m[:n], v[:n]
	for i := range w {
		gi := g[i] * k.Scale
		mi := k.B1*m[i] + k.OneMinusB1*gi
		vi := k.B2*v[i] + k.OneMinusB2*gi*gi
		m[i], v[i] = mi, vi
		w[i] = w[i]*k.Decay - k.StepSize*mi/(float32(math.Sqrt(float64(vi)))*k.InvSqrtBC2+k.Eps)
		g[i] = 0
	}
}
