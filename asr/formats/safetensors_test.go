package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// stFile assembles a safetensors file from a raw header and data section.
func stFile(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func f32Bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

// Byte-exact vectors from the reference implementation's own tests
// (huggingface/safetensors safetensors/src/tensor.rs test_serialization, test_empty,
// test_serialization_forced_alignement).
func TestSafetensorsReferenceBytes(t *testing.T) {
	six := []float32{0, 1, 2, 3, 4, 5}
	for _, c := range []struct {
		name string
		ck   *Checkpoint
		want []byte
	}{
		{
			name: "one tensor",
			ck:   mustCheckpoint(t, nil, NewF32("attn.0", []int{1, 2, 3}, six)),
			want: []byte{
				64, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 46, 48, 34, 58, 123, 34, 100,
				116, 121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34,
				58, 91, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102, 115,
				101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 0, 0, 0, 0, 0, 0, 128, 63,
				0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64,
			},
		},
		{
			name: "empty",
			ck:   mustCheckpoint(t, nil),
			want: []byte{8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32},
		},
		{
			name: "empty with metadata",
			ck:   mustCheckpoint(t, map[string]string{"framework": "pt"}),
			want: []byte{
				40, 0, 0, 0, 0, 0, 0, 0, 123, 34, 95, 95, 109, 101, 116, 97, 100, 97, 116, 97, 95,
				95, 34, 58, 123, 34, 102, 114, 97, 109, 101, 119, 111, 114, 107, 34, 58, 34, 112,
				116, 34, 125, 125, 32, 32, 32, 32, 32,
			},
		},
		{
			name: "padding forces alignment",
			ck:   mustCheckpoint(t, nil, NewF32("attn0", []int{1, 1, 2, 3}, six)),
			want: []byte{
				72, 0, 0, 0, 0, 0, 0, 0, 123, 34, 97, 116, 116, 110, 48, 34, 58, 123, 34, 100, 116,
				121, 112, 101, 34, 58, 34, 70, 51, 50, 34, 44, 34, 115, 104, 97, 112, 101, 34, 58,
				91, 49, 44, 49, 44, 50, 44, 51, 93, 44, 34, 100, 97, 116, 97, 95, 111, 102, 102,
				115, 101, 116, 115, 34, 58, 91, 48, 44, 50, 52, 93, 125, 125, 32, 32, 32, 32, 32,
				32, 32, 0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0,
				160, 64,
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteSafetensors(&buf, c.ck); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), c.want) {
				t.Fatalf("wrote\n%q\nwant\n%q", buf.Bytes(), c.want)
			}
			back, err := ReadSafetensors(c.want)
			if err != nil {
				t.Fatal(err)
			}
			sameCheckpoint(t, back, c.ck)
			if len(back.Metadata) != len(c.ck.Metadata) || back.Metadata["framework"] != c.ck.Metadata["framework"] {
				t.Fatalf("metadata %v, want %v", back.Metadata, c.ck.Metadata)
			}
		})
	}
}

func mustCheckpoint(t testing.TB, meta map[string]string, ts ...*Tensor) *Checkpoint {
	t.Helper()
	ck := NewCheckpoint()
	for k, v := range meta {
		ck.Metadata[k] = v
	}
	for _, x := range ts {
		if err := ck.Add(x); err != nil {
			t.Fatal(err)
		}
	}
	return ck
}

// mixedCheckpoint holds every supported dtype, a scalar, an empty tensor and names that need
// JSON escaping; it is the golden file's content.
func mixedCheckpoint(t testing.TB) *Checkpoint {
	a := NewF32("z.f32", []int{2, 3}, []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0.25})
	b := NewF32("a<b>&\"c\"", []int{3}, []float32{0.1, 0.2, 0.3}).Convert(F16)
	c := NewF32("m.bf16", []int{2, 2}, []float32{1, 2, 3, 4}).Convert(BF16)
	s := NewF32("scalar", nil, []float32{42})
	e := NewF32("empty", []int{0, 4}, []float32{})
	return mustCheckpoint(t, map[string]string{"format": "pt", "chorus": "test"}, a, b, c, s, e)
}

func TestSafetensorsGolden(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, mixedCheckpoint(t)); err != nil {
		t.Fatal(err)
	}
	golden(t, "mixed.safetensors", buf.Bytes())
	back, err := ReadSafetensors(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	sameCheckpoint(t, back, mixedCheckpoint(t))
	// File order is the reference writer's: F32 by name, then BF16, then F16.
	want := []string{"empty", "scalar", "z.f32", "m.bf16", "a<b>&\"c\""}
	if !equalStrings(back.Order, want) {
		t.Fatalf("order %q, want %q", back.Order, want)
	}
	// Writing what was read reproduces the file.
	var again bytes.Buffer
	if err := WriteSafetensors(&again, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Fatal("rewrite is not byte-identical")
	}
}

func equalStrings(a, b []string) bool {
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

// Every reading path returns the same checkpoint for a Whisper-shaped file in each dtype.
func TestSafetensorsRoundTripPaths(t *testing.T) {
	base := randomCheckpoint(t, smallDims, 7)
	for _, dt := range []DType{F32, F16, BF16} {
		t.Run(dt.String(), func(t *testing.T) {
			ck := NewCheckpoint()
			ck.Metadata["format"] = "pt"
			for _, n := range base.Names() {
				if err := ck.Add(base.Tensors[n].Convert(dt)); err != nil {
					t.Fatal(err)
				}
			}
			var plain bytes.Buffer
			if err := WriteSafetensors(&plain, ck); err != nil {
				t.Fatal(err)
			}
			var zbuf bytes.Buffer
			zw, _ := zstd.NewWriter(&zbuf)
			zw.Write(plain.Bytes())
			zw.Close()
			dir := t.TempDir()
			plainPath := filepath.Join(dir, "model.safetensors")
			zstPath := plainPath + ".zst"
			if err := WriteSafetensorsFile(plainPath, ck, false); err != nil {
				t.Fatal(err)
			}
			if err := WriteSafetensorsFile(zstPath, ck, true); err != nil {
				t.Fatal(err)
			}
			onDisk, _ := os.ReadFile(plainPath)
			if !bytes.Equal(onDisk, plain.Bytes()) {
				t.Fatal("WriteSafetensorsFile differs from WriteSafetensors")
			}
			reads := map[string]func() (*Checkpoint, error){
				"bytes":       func() (*Checkpoint, error) { return ReadSafetensors(plain.Bytes()) },
				"reader":      func() (*Checkpoint, error) { return ReadSafetensorsFrom(bytes.NewReader(plain.Bytes())) },
				"one-byte":    func() (*Checkpoint, error) { return ReadSafetensorsFrom(&oneByteReader{plain.Bytes()}) },
				"zstd bytes":  func() (*Checkpoint, error) { return ReadSafetensors(zbuf.Bytes()) },
				"zstd reader": func() (*Checkpoint, error) { return ReadSafetensorsFrom(bytes.NewReader(zbuf.Bytes())) },
				"file":        func() (*Checkpoint, error) { return ReadSafetensorsFile(plainPath) },
				"zst file":    func() (*Checkpoint, error) { return ReadSafetensorsFile(zstPath) },
			}
			for name, read := range reads {
				got, err := read()
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				sameCheckpoint(t, got, ck)
				if got.Metadata["format"] != "pt" {
					t.Fatalf("%s: metadata %v", name, got.Metadata)
				}
				if err := got.Validate(); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
			}
		})
	}
}

type oneByteReader struct{ b []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = r.b[0]
	r.b = r.b[1:]
	return 1, nil
}

func TestSafetensorsMalformed(t *testing.T) {
	eight := f32Bytes(1, 2)
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"too short", []byte{1, 2, 3}, "shorter than"},
		{"header past end", stFile("{}", nil)[:9], "exceeds the 1 bytes"},
		{"header too large", binary.LittleEndian.AppendUint64(nil, 200_000_000), "exceeds 100000000"},
		{"not json", stFile("nope", nil), "not a JSON object"},
		{"json array", stFile("[]", nil), "not a JSON object"},
		{"invalid utf8", stFile("{\"\xff\":1}", nil), "UTF-8"},
		{"trailing json", stFile("{}{}", nil), "after the JSON object"},
		{"duplicate name", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), `duplicate key "a"`},
		{"missing field", stFile(`{"w":{"dtype":"F32","shape":[2]}}`, eight), `tensor "w": record needs`},
		{"unsupported dtype", stFile(`{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}`, eight), `tensor "ids": unsupported dtype I64`},
		{"unknown dtype", stFile(`{"w":{"dtype":"F128","shape":[1],"data_offsets":[0,8]}}`, eight), `tensor "w": unknown dtype "F128"`},
		{"negative dim", stFile(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}`, eight), `tensor "w"`},
		{"size mismatch", stFile(`{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, eight), `tensor "w": data_offsets [0, 8] hold 8 bytes`},
		{"overflowing shape", stFile(`{"w":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,8]}}`, eight), "overflows"},
		{"reversed offsets", stFile(`{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, eight), "invalid data_offsets"},
		{"three offsets", stFile(`{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}`, eight), "has 3 values"},
		{"gap", stFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "leave a gap"},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, eight), "overlap"},
		{"data past end", stFile(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, eight), "cover 16 data bytes, file has 8"},
		{"trailing data", stFile(`{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, eight), "cover 4 data bytes, file has 8"},
		{"metadata not strings", stFile(`{"__metadata__":{"a":1}}`, nil), "__metadata__"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ReadSafetensors(c.file)
			wantErr(t, err, c.want)
			// The streaming reader must reject the same files (its messages may differ).
			if _, err := ReadSafetensorsFrom(bytes.NewReader(c.file)); err == nil {
				t.Fatal("ReadSafetensorsFrom accepted it")
			}
		})
	}
}

func TestSafetensorsUnsupportedIsSentinel(t *testing.T) {
	_, err := ReadSafetensors(stFile(`{"ids":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, f32Bytes(1)))
	if !errors.Is(err, ErrUnsupportedDType) {
		t.Fatalf("error %v is not ErrUnsupportedDType", err)
	}
}

// A header that claims a terabyte of data must fail on the short input, not allocate.
func TestSafetensorsHugeClaimIsCheap(t *testing.T) {
	file := stFile(`{"w":{"dtype":"F32","shape":[262144,1048576],"data_offsets":[0,1099511627776]}}`, f32Bytes(1, 2, 3))
	var err error
	n := allocatedDuring(func() { _, err = ReadSafetensorsFrom(bytes.NewReader(file)) })
	wantErr(t, err, "unexpected EOF")
	if n > 64<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte input", n, len(file))
	}
	n = allocatedDuring(func() { _, err = ReadSafetensors(file) })
	wantErr(t, err, "cover 1099511627776 data bytes")
	if n > 1<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte input", n, len(file))
	}
}

func TestWriteSafetensorsRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		ck   *Checkpoint
		want string
	}{
		{"short data", mustCheckpoint(t, nil, NewF32("w", []int{3}, []float32{1})), `tensor "w": 1 elements for shape [3]`},
		{"reserved name", mustCheckpoint(t, nil, NewF32("__metadata__", []int{1}, []float32{1})), "__metadata__"},
		{"bad dtype", mustCheckpoint(t, nil, &Tensor{Name: "w", Shape: []int{1}, F32: []float32{1}}), "invalid dtype"},
		{"name not UTF-8", mustCheckpoint(t, nil, NewF32("w\xff", []int{1}, []float32{1})), "not valid UTF-8"},
		{"metadata not UTF-8", mustCheckpoint(t, map[string]string{"k": "\xfe"}), `metadata "k" is not valid UTF-8`},
		{"order disagrees", &Checkpoint{Tensors: map[string]*Tensor{"a": NewF32("a", nil, []float32{1})}, Order: []string{"b"}}, `"b", which has no tensor`},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, WriteSafetensors(io.Discard, c.ck), c.want)
		})
	}
}

func TestWriteSafetensorsFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	good := mixedCheckpoint(t)
	if err := WriteSafetensorsFile(path, good, false); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(path)
	bad := mustCheckpoint(t, nil, NewF32("w", []int{3}, []float32{1}))
	if err := WriteSafetensorsFile(path, bad, false); err == nil {
		t.Fatal("bad checkpoint written")
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("failed write changed the existing file")
	}
	wantErr(t, WriteSafetensorsFile(path, good, true), "disagrees with the file name")
	wantErr(t, WriteSafetensorsFile(path+".zst", good, false), "disagrees with the file name")
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the model (temp files left behind?)", len(entries))
	}
}
