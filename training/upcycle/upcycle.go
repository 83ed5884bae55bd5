// Package upcycle builds a gated mixture-of-experts variant from a dense one — sparse
// upcycling (Komatsuzaki et al., 2022): every feed-forward block becomes E experts, each a
// copy of the dense block, behind a fresh learned gate that runs each token's top-k experts
// weighted by the softmax of their gate scores (whisper.Dims.GatedExperts). Because the
// copies are equal and the top-k weights sum to one, the upcycled model starts out computing
// exactly its parent's function; training (a `chorus train` recipe with an "upcycle" block)
// then lets the experts specialise on the tokens their gate sends them.
//
// The cost: E times the feed-forward weights, and, per token, k times the parent's
// feed-forward work when served through the sparse expert kernel (experts/moe; k = 1 keeps
// the parent's compute). Training computes every expert on every token and masks (tensor
// ops with backward twins), E times the parent's feed-forward work per step.
package upcycle

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	"github.com/chorus-asr/chorus/tensor"
)

// Options configure Model.
type Options struct {
	Experts int // E ≥ 2
	TopK    int // k in 1…E
	// Seed draws the gates: seeded uniform weights of variance 1/C times GateScale² (default
	// 0.1), so the gate starts near uniform and the first steps' routing is nearly random.
	Seed      uint64
	GateScale float64
}

// Check reports options Model would refuse.
func (o Options) Check() error {
	if o.Experts < 2 || o.TopK < 1 || o.TopK > o.Experts {
		return fmt.Errorf("upcycle: %d experts with top-%d (want at least 2 experts and top-k in 1…experts)", o.Experts, o.TopK)
	}
	if o.GateScale < 0 {
		return fmt.Errorf("upcycle: negative gate scale %g", o.GateScale)
	}
	return nil
}

// Model returns the upcycled copy of m: the same weights, each feed-forward block's fc1 rows
// and fc2 columns repeated E times (expert e owns units e·F…(e+1)·F−1), and a new gate per
// block. m must use ReLU (the sparse expert kernel serves ReLU blocks; ReLU-fy a GELU model
// first) and must not be gated already. m is not modified.
func Model(m *whisper.Model, o Options) (*whisper.Model, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	d := m.Dims
	switch {
	case d.GatedExperts > 0:
		return nil, fmt.Errorf("upcycle: the model is already gated (%d experts)", d.GatedExperts)
	case d.Activation != "relu":
		return nil, fmt.Errorf("upcycle: the model uses %q; the sparse expert kernel needs ReLU (ReLU-fy it first)", d.Activation)
	}
	e := o.Experts
	nd := d
	nd.GatedExperts, nd.GateTopK = e, o.TopK
	nd.EncoderFFN, nd.DecoderFFN = e*d.EncoderUnits(0), e*d.DecoderUnits(0)
	if !d.Uniform() {
		nd.EncoderFFN, nd.DecoderFFN = e*encoderMax(d), e*decoderMax(d)
		nd.EncoderSizes = append([]whisper.EncoderLayerSize(nil), d.EncoderSizes...)
		for i := range nd.EncoderSizes {
			nd.EncoderSizes[i].FFN *= e
		}
		nd.DecoderSizes = append([]whisper.DecoderLayerSize(nil), d.DecoderSizes...)
		for i := range nd.DecoderSizes {
			nd.DecoderSizes[i].FFN *= e
		}
	}
	scale := o.GateScale
	if scale == 0 {
		scale = 0.1
	}
	// The gates come from the seeded initialisation; every other tensor is overwritten.
	out, err := whisper.NewRandom(nd, o.Seed, whisper.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("upcycle: %w", err)
	}
	src, _ := m.Tensors()
	dst, order := out.Tensors()
	for _, name := range order {
		w := dst[name]
		switch {
		case strings.HasSuffix(name, ".gate.weight"):
			for i := range w.Data {
				w.Data[i] *= float32(scale)
			}
		case strings.HasSuffix(name, ".fc1.weight"), strings.HasSuffix(name, ".fc1.bias"):
			s := src[name]
			if s == nil || len(w.Data) != e*len(s.Data) {
				return nil, fmt.Errorf("upcycle: %s: parent has %v, upcycled %v", name, shape(s), w.Shape)
			}
			for x := range e { // rows [F, C] (or [F]) repeated: expert x is block x
				copy(w.Data[x*len(s.Data):], s.Data)
			}
		case strings.HasSuffix(name, ".fc2.weight"):
			s := src[name]
			if s == nil || len(w.Data) != e*len(s.Data) {
				return nil, fmt.Errorf("upcycle: %s: parent has %v, upcycled %v", name, shape(s), w.Shape)
			}
			c, f := s.Shape[0], s.Shape[1] // [C, F] → [C, E·F]: each row's F columns repeated
			for r := range c {
				for x := range e {
					copy(w.Data[r*e*f+x*f:r*e*f+(x+1)*f], s.Data[r*f:(r+1)*f])
				}
			}
		default:
			s := src[name]
			if s == nil || len(s.Data) != len(w.Data) {
				return nil, fmt.Errorf("upcycle: %s: parent has %v, upcycled %v", name, shape(s), w.Shape)
			}
			copy(w.Data, s.Data)
		}
	}
	return out, nil
}

// shape describes a parent tensor for an error ("none" when the parent lacks it).
func shape(t *tensor.T) any {
	if t == nil {
		return "none"
	}
	return t.Shape
}

func encoderMax(d whisper.Dims) int {
	n := 0
	for i := range d.NAudioLayer {
		n = max(n, d.EncoderUnits(i))
	}
	return n
}

func decoderMax(d whisper.Dims) int {
	n := 0
	for i := range d.NTextLayer {
		n = max(n, d.DecoderUnits(i))
	}
	return n
}

// Layout is the expert layout of a gated model (config.json's chorus.experts), which makes
// asr.Open serve it through experts/moe: per block, its units split into the gate's E
// experts in order (method "upcycled"), no permutation and no router beyond the gate, which
// lives in the model's checkpoint.
func Layout(m *whisper.Model) (*experts.ExpertLayout, error) {
	if m.Dims.GatedExperts == 0 {
		return nil, fmt.Errorf("upcycle: the model is not gated")
	}
	mlps := moe.MLPs(m)
	l := &experts.ExpertLayout{Layers: make([]experts.LayerLayout, len(mlps))}
	enc := len(m.Encoder.Layers)
	for i, mlp := range mlps {
		l.Layers[i] = experts.LayerLayout{Name: moe.LayerName(i, enc), Neurons: mlp.FC1.Out, Experts: m.Dims.GatedExperts, Method: experts.MethodUpcycled}
	}
	return l, l.Validate()
}

// LayoutJSON is Layout encoded for config.json.
func LayoutJSON(m *whisper.Model) (json.RawMessage, error) {
	l, err := Layout(m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(l)
}
