package prune

import (
	"fmt"
	"math"
	"sort"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/nn"
)

// MagnitudeMasks is the magnitude-pruning baseline CoFi is compared with (Xia et al. 2022,
// §5; structured magnitude pruning as in Michel et al. 2019 and Han et al. 2015): every
// attention head (self and cross) and FFN unit of the model gets a score, the mean absolute
// value of the weights it owns (q/k/v rows and out-projection columns for a head, the fc1
// row and fc2 column for a unit) relative to the mean score of its kind; structures are removed from the lowest score up until the
// removed parameters reach target of the layers' prunable parameters. No training, no data:
// it is what a sparsity target costs when nothing learns which structures matter. Whole
// sublayers go only when all their heads or units do. The result is binary masks for
// MaterialiseModel and the achieved sparsity.
//
// unitBlock > 1 keeps each layer's FFN units a multiple of it, removing the lowest-scoring
// kept units of a layer that is not: a pruned model MoE-fied afterwards (the flagship
// variant: prune, then split into experts) needs units that split into equal experts.
func MagnitudeMasks(m *whisper.Model, target float64, unitBlock int) (Set, float64, error) {
	if !(target >= 0 && target < 1) {
		return Set{}, 0, fmt.Errorf("magnitude pruning: target %g outside [0, 1)", target)
	}
	if unitBlock < 0 {
		return Set{}, 0, fmt.Errorf("magnitude pruning: unit block %d is negative", unitBlock)
	}
	st, err := NewStructure(m.Dims)
	if err != nil {
		return Set{}, 0, err
	}
	z := NewSet(st, 1)
	type item struct {
		side  Side
		kind  Kind
		idx   int // into z[side][kind].Data
		score float64
		cost  float64
	}
	var items []item
	add := func(side Side, kind Kind, layer, j int, score, cost float64) {
		_, size, _ := st.Side[side].Shape(kind)
		items = append(items, item{side, kind, layer*size + j, score, cost})
	}
	for side := range numSides {
		s := st.Side[side]
		d := s.HeadDim()
		for l := range s.Layers {
			var attn, cross *whisper.Attention
			var mlp *whisper.MLP
			if side == Encoder {
				attn, mlp = &m.Encoder.Layers[l].Attn, &m.Encoder.Layers[l].MLP
			} else {
				attn, cross, mlp = &m.Decoder.Layers[l].Attn, &m.Decoder.Layers[l].Cross, &m.Decoder.Layers[l].MLP
			}
			for h := range s.Heads {
				sc, n := headMagnitude(attn, h, d)
				add(side, Heads, l, h, sc, n)
				if cross != nil {
					sc, n := headMagnitude(cross, h, d)
					add(side, CrossHeads, l, h, sc, n)
				}
			}
			w1, w2 := mlp.FC1.Weight(), mlp.FC2.Weight()
			for j := range s.FFN {
				var sum float64
				for _, v := range w1[j*mlp.FC1.In : (j+1)*mlp.FC1.In] {
					sum += math.Abs(float64(v))
				}
				for r := range mlp.FC2.Out {
					sum += math.Abs(float64(w2[r*mlp.FC2.In+j]))
				}
				n := float64(mlp.FC1.In + mlp.FC2.Out)
				add(side, Units, l, j, sum/n, n+1) // + the fc1 bias
			}
		}
	}
	// Heads and units have weights of different scales (a head's q/k/v rows against an FFN
	// unit's fc1 row), so raw means would prune one kind wholesale before touching the
	// other — all of an encoder's attention, at 50% on chorus-micro. Each score is taken
	// relative to the mean score of its kind on its side: a structure is compared with the
	// typical structure of its own kind.
	type group struct {
		side Side
		kind Kind
	}
	sum, count := map[group]float64{}, map[group]float64{}
	for _, it := range items {
		sum[group{it.side, it.kind}] += it.score
		count[group{it.side, it.kind}]++
	}
	for i, it := range items {
		if m := sum[group{it.side, it.kind}] / count[group{it.side, it.kind}]; m > 0 {
			items[i].score = it.score / m
		}
	}
	sort.SliceStable(items, func(a, b int) bool { return items[a].score < items[b].score })
	full := st.Full().Prunable()
	goal := target * full
	removed := 0.0
	for _, it := range items {
		if removed >= goal {
			break
		}
		z[it.side][it.kind].Data[it.idx] = 0
		removed += it.cost
	}
	unitScore := map[[3]int]float64{}
	for _, it := range items {
		if it.kind == Units {
			unitScore[[3]int{int(it.side), it.idx / st.Side[it.side].FFN, it.idx % st.Side[it.side].FFN}] = it.score
		}
	}
	if err := RoundUnits(z, st, unitBlock, func(side Side, l, j int) float64 { return unitScore[[3]int{int(side), l, j}] }); err != nil {
		return Set{}, 0, fmt.Errorf("magnitude pruning: %w", err)
	}
	// A sublayer with nothing left goes whole, so the layer norm and bias in front of it do too.
	for side := range numSides {
		s := st.Side[side]
		for l := range s.Layers {
			for _, p := range [][2]Kind{{Heads, Attn}, {CrossHeads, Cross}, {Units, FFN}} {
				row := z[side][p[0]]
				if row == nil {
					continue
				}
				_, size, _ := s.Shape(p[0])
				empty := true
				for _, v := range row.Data[l*size : (l+1)*size] {
					empty = empty && v == 0
				}
				if empty {
					z[side][p[1]].Data[l] = 0
				}
			}
		}
	}
	kept := st.Expected(MaskProbs(st, z))
	return z, 1 - kept.Prunable()/full, nil
}

// headMagnitude is the mean |w| of head h's q/k/v rows (with biases) and out-projection
// columns, and how many parameters that is.
func headMagnitude(a *whisper.Attention, h, d int) (float64, float64) {
	var sum, n float64
	for _, l := range []*nn.Linear{&a.Q, &a.K, &a.V} {
		w := l.Weight()
		for _, v := range w[h*d*l.In : (h+1)*d*l.In] {
			sum += math.Abs(float64(v))
		}
		n += float64(d * l.In)
		if l.B != nil {
			for _, v := range l.B.Data[h*d : (h+1)*d] {
				sum += math.Abs(float64(v))
			}
			n += float64(d)
		}
	}
	w := a.Out.Weight()
	for r := range a.Out.Out {
		for _, v := range w[r*a.Out.In+h*d : r*a.Out.In+(h+1)*d] {
			sum += math.Abs(float64(v))
		}
	}
	n += float64(a.Out.Out * d)
	return sum / n, n
}

// MaskProbs turns masks into keep probabilities (1 where a gate is non-zero), for counting
// what masks keep with Structure.Expected.
func MaskProbs(st Structure, z Set) Probs {
	p := NewProbs(st)
	for side := range z {
		for k, t := range z[side] {
			if t == nil {
				continue
			}
			for i, v := range t.Data {
				if v != 0 {
					p[side][k][i] = 1
				}
			}
		}
	}
	return p
}
