package prune

import (
	"math"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

// TestMagnitudeMasks: the masks reach the target (within one structure's cost), remove
// structures in order of their mean |w| (scaling one unit's weights up keeps it), drop a
// sublayer whose heads are all gone, and materialise into a smaller model; a target outside
// [0, 1) is refused.
func TestMagnitudeMasks(t *testing.T) {
	d := whisper.Dims{NMels: 8, NAudioCtx: 8, NAudioState: 16, NAudioHead: 4, NAudioLayer: 2, NVocab: 20,
		NTextCtx: 8, NTextState: 16, NTextHead: 4, NTextLayer: 2, EncoderFFN: 32, DecoderFFN: 32, Activation: "relu"}
	m, err := whisper.NewRandom(d, 11, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Make encoder layer 0's unit 5 loud: it must survive any target below 1.
	fc1 := &m.Encoder.Layers[0].MLP.FC1
	for i := range fc1.In {
		fc1.W.Data[5*fc1.In+i] *= 100
	}
	st, err := NewStructure(d)
	if err != nil {
		t.Fatal(err)
	}
	full := st.Full().Prunable()
	for _, target := range []float64{0, 0.3, 0.5, 0.7} {
		z, achieved, err := MagnitudeMasks(m, target, 0)
		if err != nil {
			t.Fatal(err)
		}
		maxCost := float64(4 * 16 * 4) // a head: q, k, v rows and out columns (+ biases below that)
		if achieved < target-1e-9 || achieved > target+(maxCost+3*4)/full+1e-9 {
			t.Errorf("target %.1f: achieved %.3f", target, achieved)
		}
		if z[Encoder][Units].Data[5] != 1 {
			t.Errorf("target %.1f: the loudest unit was pruned", target)
		}
		for side := range z {
			for _, k := range z[side] {
				if k == nil {
					continue
				}
				for _, v := range k.Data {
					if v != 0 && v != 1 {
						t.Fatalf("mask value %v", v)
					}
				}
			}
		}
		mat, err := MaterialiseModel(m, z)
		if err != nil {
			t.Fatalf("target %.1f: materialise: %v", target, err)
		}
		n, n0 := mat.Model.NumParams(), m.NumParams()
		t.Logf("target %.1f: achieved %.3f, parameters %d → %d", target, achieved, n0, n)
		if target > 0 && n >= n0 {
			t.Errorf("target %.1f: %d parameters, not fewer than %d", target, n, n0)
		}
		if target == 0 && math.Abs(achieved) > 1e-12 {
			t.Errorf("target 0 pruned %.3f", achieved)
		}
	}
	for _, bad := range []float64{-0.1, 1, math.NaN()} {
		if _, _, err := MagnitudeMasks(m, bad, 0); err == nil {
			t.Errorf("target %v accepted", bad)
		}
	}
}

// TestMagnitudeUnitBlock: with a unit block every layer keeps a multiple of it (so the
// pruned model splits into equal experts), the target still holds, and a width that is not a
// multiple of the block is refused.
func TestMagnitudeUnitBlock(t *testing.T) {
	d := whisper.Dims{NMels: 8, NAudioCtx: 8, NAudioState: 16, NAudioHead: 4, NAudioLayer: 2, NVocab: 20,
		NTextCtx: 8, NTextState: 16, NTextHead: 4, NTextLayer: 2, EncoderFFN: 32, DecoderFFN: 32, Activation: "relu"}
	m, err := whisper.NewRandom(d, 12, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	z, achieved, err := MagnitudeMasks(m, 0.5, 8)
	if err != nil {
		t.Fatal(err)
	}
	if achieved < 0.5 {
		t.Errorf("achieved %.3f below the target", achieved)
	}
	for side := range z {
		u := z[side][Units]
		for l := range 2 {
			kept := 0
			for _, v := range u.Data[l*32 : (l+1)*32] {
				if v != 0 {
					kept++
				}
			}
			if kept%8 != 0 {
				t.Errorf("%v layer %d keeps %d units, not a multiple of 8", Side(side), l, kept)
			}
		}
	}
	if _, _, err := MagnitudeMasks(m, 0.5, 5); err == nil {
		t.Error("a unit block that does not divide the FFN width accepted")
	}
}
