package trainer

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/chorus-asr/chorus/tensor"
)

// AdamWConfig holds AdamW's hyperparameters (Loshchilov & Hutter, "Decoupled Weight Decay
// Regularization"), with PyTorch's torch.optim.AdamW semantics. The learning rate is not here:
// it comes from the Schedule at every step.
type AdamWConfig struct {
	// Beta1 and Beta2 are the decay rates of the first and second moment estimates; zero means
	// the defaults 0.9 and 0.999.
	Beta1, Beta2 float64
	// Eps is added to the root of the second moment; zero means 1e-8.
	Eps float64
	// WeightDecay is the decoupled decay rate λ: each step multiplies a decayed weight by
	// (1 − lr·λ). It applies only to params with Decay set. Zero disables decay.
	WeightDecay float64
}

func (c AdamWConfig) withDefaults() AdamWConfig {
	if c.Beta1 == 0 {
		c.Beta1 = 0.9
	}
	if c.Beta2 == 0 {
		c.Beta2 = 0.999
	}
	if c.Eps == 0 {
		c.Eps = 1e-8
	}
	return c
}

func (c AdamWConfig) validate() error {
	switch {
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return fmt.Errorf("adamw: beta1 %v outside [0, 1)", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return fmt.Errorf("adamw: beta2 %v outside [0, 1)", c.Beta2)
	case !(c.Eps > 0) || math.IsInf(c.Eps, 0):
		return fmt.Errorf("adamw: eps %v must be positive", c.Eps)
	case !(c.WeightDecay >= 0) || math.IsInf(c.WeightDecay, 0):
		return fmt.Errorf("adamw: weight decay %v must be non-negative", c.WeightDecay)
	}
	return nil
}

// chunkSize is the number of elements one worker updates at a time: 32 Ki float32s, i.e. 128
// KiB per array, so the four arrays a chunk touches (w, g, m, v) stay within L2.
const chunkSize = 1 << 15

// parallelMin is the element count below which AdamW runs on the calling goroutine: for
// small models the goroutine hand-off costs more than the loop.
const parallelMin = 1 << 16

// chunk is a contiguous element range of one parameter.
type chunk struct{ param, lo, hi int }

// AdamW is the AdamW optimizer over a fixed list of params. Its state (the moment estimates m
// and v, and the step count t used for bias correction) survives a restart through
// MarshalBinary or a trainer checkpoint.
//
// Work is split into chunks of at most 32 Ki elements that the worker goroutines take in turn.
// Every per-element operation is independent, and the gradient norm is summed per chunk and
// then in chunk order, so results are bit-identical for any number of workers.
type AdamW struct {
	cfg     AdamWConfig
	params  []Param
	m, v    [][]float32 // first and second moments, one slice per param, len(W.Data) each
	t       int64       // updates applied so far
	workers int
	chunks  []chunk
	partial []float64 // per-chunk sums of squares, reused by GradNorm
	total   int       // elements over all params
}

// NewAdamW returns an optimizer for params with zero moments. workers ≤ 0 means 2 (chorus's
// training machines have two cores, and the task is idle while the optimizer runs).
func NewAdamW(params []Param, cfg AdamWConfig, workers int) (*AdamW, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if err := checkParams(params); err != nil {
		return nil, fmt.Errorf("adamw: %w", err)
	}
	if workers <= 0 {
		workers = 2
	}
	o := &AdamW{cfg: cfg, params: params, workers: workers,
		m: make([][]float32, len(params)), v: make([][]float32, len(params))}
	for i, p := range params {
		n := len(p.W.Data)
		o.m[i] = make([]float32, n)
		o.v[i] = make([]float32, n)
		o.total += n
		for lo := 0; lo < n; lo += chunkSize {
			o.chunks = append(o.chunks, chunk{i, lo, min(lo+chunkSize, n)})
		}
	}
	o.partial = make([]float64, len(o.chunks))
	return o, nil
}

// Steps returns the number of updates applied (AdamW's t).
func (o *AdamW) Steps() int64 { return o.t }

// Config returns the hyperparameters in use, defaults filled in.
func (o *AdamW) Config() AdamWConfig { return o.cfg }

// GradNorm returns the L2 norm of all gradients together, accumulated in float64. It is NaN or
// +Inf if any gradient element is non-finite (a float32 square cannot overflow float64), which
// is how the trainer's non-finite guard costs no extra pass.
func (o *AdamW) GradNorm() float64 {
	o.run(func(i int, c chunk) {
		o.partial[i] = sumSquares(o.params[c.param].Grad.Data[c.lo:c.hi])
	})
	var s float64
	for _, p := range o.partial {
		s += p
	}
	return math.Sqrt(s)
}

// Step applies one AdamW update with learning rate lr (params with their own Param.LR use
// that instead) to gradients multiplied by gradScale
// (the trainer folds the 1/accumulation average and the clipping factor into it, so the
// gradients are never rescaled in a pass of their own), and then zeroes every gradient, ready
// for the next accumulation — fused into the same pass to save a sweep over memory.
func (o *AdamW) Step(lr float64, gradScale float32) {
	o.t++
	b1, b2 := o.cfg.Beta1, o.cfg.Beta2
	bc1 := 1 - math.Pow(b1, float64(o.t))
	bc2 := 1 - math.Pow(b2, float64(o.t))
	k := tensor.AdamWConsts{
		B1: float32(b1), B2: float32(b2), OneMinusB1: float32(1 - b1), OneMinusB2: float32(1 - b2),
		Scale:      gradScale,
		StepSize:   float32(lr / bc1),
		InvSqrtBC2: float32(1 / math.Sqrt(bc2)),
		Eps:        float32(o.cfg.Eps),
	}
	decayed := float32(1 - lr*o.cfg.WeightDecay)
	o.run(func(_ int, c chunk) {
		p := o.params[c.param]
		kc := k
		kc.Decay = 1
		if p.Decay {
			kc.Decay = decayed
		}
		if p.LR > 0 { // its own group: a constant rate (Param.LR)
			kc.StepSize = float32(p.LR / bc1)
			if p.Decay {
				kc.Decay = float32(1 - p.LR*o.cfg.WeightDecay)
			}
		}
		tensor.AdamWUpdate(p.W.Data[c.lo:c.hi], p.Grad.Data[c.lo:c.hi], o.m[c.param][c.lo:c.hi], o.v[c.param][c.lo:c.hi], kc)
	})
}

// ZeroGrad zeroes every gradient. The trainer calls it before the first step and after a
// skipped one; after a normal step Step has already done it.
func (o *AdamW) ZeroGrad() {
	o.run(func(_ int, c chunk) { clear(o.params[c.param].Grad.Data[c.lo:c.hi]) })
}

// run calls fn for every chunk, across o.workers goroutines when the model is big enough.
func (o *AdamW) run(fn func(i int, c chunk)) {
	if o.workers <= 1 || o.total < parallelMin {
		for i, c := range o.chunks {
			fn(i, c)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(o.workers, len(o.chunks)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(o.chunks) {
					return
				}
				fn(i, o.chunks[i])
			}
		})
	}
	wg.Wait()
}

// sumSquares returns Σ x² in float64, with four accumulators so the adds pipeline.
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	for ; len(x) >= 4; x = x[4:] {
		a, b, c, d := float64(x[0]), float64(x[1]), float64(x[2]), float64(x[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for _, v := range x {
		a := float64(v)
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// adamwMagic opens AdamW's MarshalBinary encoding.
const adamwMagic = "CHADAMW1"

// MarshalBinary encodes the optimizer state: the magic "CHADAMW1", the step count (u64), the
// record count (u32), then per param m and v as records named "m/<name>" and "v/<name>" in the
// checkpoint record format (see ReadCheckpoint), uncompressed.
func (o *AdamW) MarshalBinary() ([]byte, error) {
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	w.WriteString(adamwMagic)
	var hdr [12]byte
	binary.LittleEndian.PutUint64(hdr[0:], uint64(o.t))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(2*len(o.params)))
	w.Write(hdr[:])
	for i, p := range o.params {
		if err := writeRecord(w, "m/"+p.Name, p.W.Shape, o.m[i]); err != nil {
			return nil, fmt.Errorf("adamw: marshal: %w", err)
		}
		if err := writeRecord(w, "v/"+p.Name, p.W.Shape, o.v[i]); err != nil {
			return nil, fmt.Errorf("adamw: marshal: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return nil, fmt.Errorf("adamw: marshal: %w", err)
	}
	return buf.Bytes(), nil
}

// UnmarshalBinary restores state written by MarshalBinary into an optimizer built over the
// same params (names and shapes). It changes nothing unless the whole encoding is valid.
func (o *AdamW) UnmarshalBinary(data []byte) error {
	r := newRecordReader(bytes.NewReader(data), int64(len(data)))
	magic, err := r.bytes(len(adamwMagic))
	if err != nil {
		return fmt.Errorf("adamw: unmarshal: %w", err)
	}
	if string(magic) != adamwMagic {
		return fmt.Errorf("adamw: unmarshal: bad magic %q: %w", magic, ErrCorrupt)
	}
	t, err := r.u64()
	if err != nil {
		return fmt.Errorf("adamw: unmarshal: %w", err)
	}
	n, err := r.u32()
	if err != nil {
		return fmt.Errorf("adamw: unmarshal: %w", err)
	}
	if t > math.MaxInt64 {
		return fmt.Errorf("adamw: unmarshal: step %d: %w", t, ErrCorrupt)
	}
	recs := make(map[string]NamedTensor, min(int(n), 2*len(o.params)))
	for range n {
		rec, err := r.record()
		if err != nil {
			return fmt.Errorf("adamw: unmarshal: %w", err)
		}
		recs[rec.Name] = rec
	}
	if r.remaining != 0 {
		return fmt.Errorf("adamw: unmarshal: %d trailing bytes: %w", r.remaining, ErrCorrupt)
	}
	state := make(map[string]NamedTensor, len(recs))
	for _, prefix := range []string{"m/", "v/"} {
		for _, p := range o.params {
			name := prefix + p.Name
			rec, ok := recs[name]
			if !ok {
				return fmt.Errorf("adamw: unmarshal: no state %q", name)
			}
			if err := rec.fits(p.W.Shape); err != nil {
				return fmt.Errorf("adamw: unmarshal: %w", err)
			}
			state[name] = rec
		}
	}
	if len(recs) != len(state) {
		return fmt.Errorf("adamw: unmarshal: %d state tensors for %d params", len(recs), len(o.params))
	}
	for i, p := range o.params {
		copy(o.m[i], state["m/"+p.Name].Data)
		copy(o.v[i], state["v/"+p.Name].Data)
	}
	o.t = int64(t)
	return nil
}

// errShape is wrapped by NamedTensor.fits.
var errShape = errors.New("shape mismatch")
