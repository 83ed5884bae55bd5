package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/models/whisper"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// smallDims is a Whisper small enough to round-trip in milliseconds but with every kind of
// tensor (2 layers each side, width 64, vocabulary 300).
var smallDims = whisper.Dims{
	NMels: 16, NAudioCtx: 24, NAudioState: 64, NAudioHead: 2, NAudioLayer: 2,
	NVocab: 300, NTextCtx: 16, NTextState: 64, NTextHead: 2, NTextLayer: 2,
}

// randomCheckpoint is whisper.RandomCheckpoint as a formats.Checkpoint in TensorSpecs order.
func randomCheckpoint(t testing.TB, d whisper.Dims, seed uint64) *Checkpoint {
	t.Helper()
	m := whisper.RandomCheckpoint(d, seed)
	var order []string
	for _, s := range whisper.TensorSpecs(d) {
		order = append(order, s.Name)
	}
	ck, err := CheckpointFromTensors(m, order)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// sameCheckpoint fails unless a and b hold the same names, shapes, dtypes and bits.
func sameCheckpoint(t testing.TB, got, want *Checkpoint) {
	t.Helper()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("got %d tensors, want %d", len(got.Tensors), len(want.Tensors))
	}
	for name, w := range want.Tensors {
		g := got.Tensors[name]
		if g == nil {
			t.Fatalf("tensor %q missing", name)
		}
		if !equalInts(g.Shape, w.Shape) || g.DType != w.DType {
			t.Fatalf("tensor %q: %v%v, want %v%v", name, g.DType, g.Shape, w.DType, w.Shape)
		}
		if len(g.F32) != len(w.F32) || len(g.F16) != len(w.F16) {
			t.Fatalf("tensor %q: data lengths differ", name)
		}
		for i := range w.F32 {
			if math.Float32bits(g.F32[i]) != math.Float32bits(w.F32[i]) {
				t.Fatalf("tensor %q[%d] = %v, want %v", name, i, g.F32[i], w.F32[i])
			}
		}
		for i := range w.F16 {
			if g.F16[i] != w.F16[i] {
				t.Fatalf("tensor %q[%d] = %#04x, want %#04x", name, i, g.F16[i], w.F16[i])
			}
		}
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from golden (%d bytes vs %d); run go test -update if the change is intended", name, len(got), len(want))
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// allocatedDuring reports the bytes allocated while f runs.
func allocatedDuring(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func wantErr(t *testing.T, err error, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", substr)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Fatalf("error %q does not contain %q", err, substr)
	}
}
