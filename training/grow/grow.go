// Package grow deepens a dense variant without changing what it computes, so that training
// can go on from everything the smaller model learned with more layers to learn with. It is
// the way out of a plateau that more steps at the floor learning rate do not leave (the
// default model's dev WER stopped moving at 4 encoder and 2 decoder layers; the training
// split's own WER was still 19%: the model is too small for its data, not short of data).
//
// Each new layer is a copy of the layer it follows in the grown stack (its attention, feed-
// forward weights and layer norms), with the projections that write into the residual stream
// — self-attention's and cross-attention's out_proj, fc2 — set to zero. A pre-norm residual
// block whose output projections are zero adds nothing to the stream, so the grown model
// computes exactly its parent's function (TestGrownKeepsFunction); the zero projections get
// gradients from the first step (their inputs, the copied layer's activations, are not zero),
// and the rest of the new layer learns once they move. The copies are spread evenly through
// the stack (Placement), the way progressive stacking (Gong et al., 2019) duplicates layers
// in place rather than adding a block on top.
package grow

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

// Options are the grown stacks' depths; 0 keeps a stack as it is.
type Options struct {
	EncoderLayers int `json:"encoder_layers,omitempty"`
	DecoderLayers int `json:"decoder_layers,omitempty"`
}

// Check reports options that cannot grow a model of dimensions d.
func (o Options) Check(d whisper.Dims) error {
	switch {
	case o.EncoderLayers == 0 && o.DecoderLayers == 0:
		return fmt.Errorf("grow: no stack to grow (encoder_layers and decoder_layers both unset)")
	case o.EncoderLayers != 0 && o.EncoderLayers < d.NAudioLayer:
		return fmt.Errorf("grow: %d encoder layers is fewer than the model's %d (growing only adds layers; prune to remove them)", o.EncoderLayers, d.NAudioLayer)
	case o.DecoderLayers != 0 && o.DecoderLayers < d.NTextLayer:
		return fmt.Errorf("grow: %d decoder layers is fewer than the model's %d (growing only adds layers; prune to remove them)", o.DecoderLayers, d.NTextLayer)
	case o.EncoderLayers > 64 || o.DecoderLayers > 64:
		return fmt.Errorf("grow: %d encoder / %d decoder layers: at most 64 per stack", o.EncoderLayers, o.DecoderLayers)
	case d.NAudioLayer == 0 && o.EncoderLayers > 0, d.NTextLayer == 0 && o.DecoderLayers > 0:
		return fmt.Errorf("grow: a stack with no layer has nothing to copy")
	case d.GatedExperts > 0:
		return fmt.Errorf("grow: the model is gated (%d experts); grow the dense model, then upcycle it", d.GatedExperts)
	}
	return nil
}

// Placement lays out a stack grown from old to n layers: src[i] is the parent layer that
// layer i of the grown stack copies, fresh[i] whether it is a new (zero-output) copy. Each
// parent layer keeps its order; the n−old copies follow the parent layers at even intervals
// (2 → 4: after layers 0 and 1; 4 → 6: after 1 and 3; 4 → 5: after 3; 2 → 7: two copies
// after layer 0, three after 1).
func Placement(old, n int) (src []int, fresh []bool) {
	extra := n - old
	// copies[i] is how many copies follow parent layer i.
	copies := make([]int, old)
	for k := range extra {
		copies[((k+1)*old+extra-1)/extra-1]++ // ⌈(k+1)·old/extra⌉ − 1
	}
	for i := range old {
		src, fresh = append(src, i), append(fresh, false)
		for range copies[i] {
			src, fresh = append(src, i), append(fresh, true)
		}
	}
	return src, fresh
}

// zeroed are the tensor-name suffixes (within a layer) of the projections into the residual
// stream: a new layer gets them as zeros.
var zeroed = []string{
	"self_attn.out_proj.weight", "self_attn.out_proj.bias",
	"encoder_attn.out_proj.weight", "encoder_attn.out_proj.bias",
	"fc2.weight", "fc2.bias",
}

// Model returns the grown copy of m (m is not modified): its stacks deepened to the options'
// depths, every parent tensor copied, each new layer a zero-output copy of the layer before
// it. Per-layer sizes (a pruned parent) are carried to the copies.
func Model(m *whisper.Model, o Options) (*whisper.Model, error) {
	d := m.Dims
	if err := o.Check(d); err != nil {
		return nil, err
	}
	nd := d
	enc, dec := o.EncoderLayers, o.DecoderLayers
	if enc == 0 {
		enc = d.NAudioLayer
	}
	if dec == 0 {
		dec = d.NTextLayer
	}
	nd.NAudioLayer, nd.NTextLayer = enc, dec
	encSrc, encFresh := Placement(d.NAudioLayer, enc)
	decSrc, decFresh := Placement(d.NTextLayer, dec)
	if d.EncoderSizes != nil {
		nd.EncoderSizes = make([]whisper.EncoderLayerSize, enc)
		for i, s := range encSrc {
			nd.EncoderSizes[i] = d.EncoderSizes[s]
		}
	}
	if d.DecoderSizes != nil {
		nd.DecoderSizes = make([]whisper.DecoderLayerSize, dec)
		for i, s := range decSrc {
			nd.DecoderSizes[i] = d.DecoderSizes[s]
		}
	}
	// Every tensor is overwritten below; the seed only fills what is then replaced.
	out, err := whisper.NewRandom(nd, 0, whisper.LoadOptions{})
	if err != nil {
		return nil, fmt.Errorf("grow: %w", err)
	}
	src, _ := m.Tensors()
	dst, order := out.Tensors()
	for _, name := range order {
		w := dst[name]
		from, zero := name, false
		for _, stack := range []struct {
			prefix string
			src    []int
			fresh  []bool
		}{{"model.encoder.layers.", encSrc, encFresh}, {"model.decoder.layers.", decSrc, decFresh}} {
			rest, ok := strings.CutPrefix(name, stack.prefix)
			if !ok {
				continue
			}
			idx, field, ok := strings.Cut(rest, ".")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || i >= len(stack.src) {
				return nil, fmt.Errorf("grow: unexpected tensor %s", name)
			}
			from = stack.prefix + strconv.Itoa(stack.src[i]) + "." + field
			if stack.fresh[i] {
				for _, z := range zeroed {
					zero = zero || field == z
				}
			}
		}
		s := src[from]
		if s == nil {
			return nil, fmt.Errorf("grow: %s: the parent has no %s", name, from)
		}
		if len(s.Data) != len(w.Data) {
			return nil, fmt.Errorf("grow: %s: the parent's %s is %v, want %v", name, from, s.Shape, w.Shape)
		}
		if zero {
			clear(w.Data)
			continue
		}
		copy(w.Data, s.Data)
	}
	return out, nil
}
