package prune

import (
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

// TestRoundUnits: kept units per layer are rounded down to the block by dropping the lowest
// scores; block 1 changes nothing; a width the block does not divide is an error.
func TestRoundUnits(t *testing.T) {
	d := whisper.Dims{NMels: 8, NAudioCtx: 8, NAudioState: 8, NAudioHead: 2, NAudioLayer: 1, NVocab: 20,
		NTextCtx: 8, NTextState: 8, NTextHead: 2, NTextLayer: 1, EncoderFFN: 8, DecoderFFN: 8}
	st, err := NewStructure(d)
	if err != nil {
		t.Fatal(err)
	}
	z := NewSet(st, 1)
	enc := z[Encoder][Units].Data
	copy(enc, []float32{1, 0, 1, 1, 0, 1, 1, 1})                          // 6 kept
	score := func(_ Side, _ int, j int) float64 { return float64(8 - j) } // unit 7 weakest
	if err := RoundUnits(z, st, 1, score); err != nil {
		t.Fatal(err)
	}
	if enc[7] != 1 {
		t.Fatal("block 1 changed the masks")
	}
	if err := RoundUnits(z, st, 4, score); err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 0, 1, 1, 0, 1, 0, 0} // the two weakest kept (6, 7) dropped
	for j, v := range enc {
		if v != want[j] {
			t.Fatalf("encoder units %v, want %v", enc, want)
		}
	}
	for j, v := range z[Decoder][Units].Data {
		if v != 1 {
			t.Fatalf("decoder unit %d dropped though 8 is a multiple of 4", j)
		}
	}
	if err := RoundUnits(z, st, 3, score); err == nil {
		t.Error("block 3 of width 8 accepted")
	}
}
