package whisper

import (
	"fmt"
	"sort"

	"github.com/chorus-asr/chorus/nn"
	"github.com/chorus-asr/chorus/tensor"
)

// MapSource is an nn.Source over in-memory float32 tensors keyed by Hugging Face name.
type MapSource map[string]*tensor.T

// Lookup implements nn.Source.
func (m MapSource) Lookup(name string) ([]int, []float32, []uint16, bool) {
	t, ok := m[name]
	if !ok {
		return nil, nil, nil, false
	}
	return t.Shape, t.Data, nil, true
}

// LoadOptions tune Load.
type LoadOptions struct {
	// F16 stores the large Linear weights (projections, MLP, the tied output projection) in
	// half precision with f32 compute; half-precision checkpoints keep their storage.
	F16 bool
	// AllowUnused accepts checkpoints with tensors the model does not use (e.g. a separate
	// proj_out.weight equal to the tied embedding).
	AllowUnused bool
}

// Load builds a model of dims d with the weights from src (Hugging Face names). A missing or
// mis-shaped tensor is an error naming it; so is an unknown one unless opts.AllowUnused.
func Load(d Dims, src nn.Source, names []string, opts LoadOptions) (*Model, error) {
	m, err := New(d)
	if err != nil {
		return nil, err
	}
	used, err := nn.Load(m, src, nn.LoadOptions{KeepF16: opts.F16})
	if err != nil {
		return nil, fmt.Errorf("load whisper: %w", err)
	}
	if !opts.AllowUnused && names != nil {
		seen := make(map[string]bool, len(used))
		for _, n := range used {
			seen[n] = true
		}
		var extra []string
		for _, n := range names {
			if !seen[n] && n != "proj_out.weight" {
				extra = append(extra, n)
			}
		}
		if len(extra) > 0 {
			sort.Strings(extra)
			return nil, fmt.Errorf("load whisper: %d unexpected tensors, first %q", len(extra), extra[0])
		}
	}
	if opts.F16 {
		m.eachLinear(func(l *nn.Linear) { l.ToF16() })
	}
	return m, nil
}

// eachLinear visits every Linear of the model.
func (m *Model) eachLinear(f func(*nn.Linear)) {
	attn := func(a *Attention) { f(&a.Q); f(&a.K); f(&a.V); f(&a.Out) }
	for i := range m.Encoder.Layers {
		l := &m.Encoder.Layers[i]
		attn(&l.Attn)
		f(&l.MLP.FC1)
		f(&l.MLP.FC2)
	}
	for i := range m.Decoder.Layers {
		l := &m.Decoder.Layers[i]
		attn(&l.Attn)
		attn(&l.Cross)
		f(&l.MLP.FC1)
		f(&l.MLP.FC2)
	}
	f(&m.Decoder.Tok)
}

// NewRandom builds a model with seeded weights (see RandomCheckpoint).
func NewRandom(d Dims, seed uint64, opts LoadOptions) (*Model, error) {
	return Load(d, MapSource(RandomCheckpoint(d, seed)), nil, opts)
}

// Tensors returns the model's weights keyed by Hugging Face name, in checkpoint order
// (half-precision weights widened to float32).
func (m *Model) Tensors() (map[string]*tensor.T, []string) { return nn.Collect(m) }

// NumParams is the number of parameters (elements of every weight, by shape, so weights kept
// in half precision count too).
func (m *Model) NumParams() int64 {
	ts, _ := m.Tensors()
	var n int64
	for _, t := range ts {
		n += int64(tensor.Numel(t.Shape))
	}
	return n
}
