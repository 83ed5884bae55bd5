package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "npy", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Arrays NumPy 1.24 wrote (testdata/gen_npy.py).
func TestReadNPYNumpyFixtures(t *testing.T) {
	lin := make([]float32, 24)
	for i := range lin {
		lin[i] = float32(-1 + 2*float64(i)/23) // np.linspace in float64, then cast
	}
	for _, c := range []struct {
		file  string
		data  []float32
		shape []int
	}{
		{"f4_2x3.npy", []float32{-1, -0.5, 0, 0.5, 1, 1.5}, []int{2, 3}},
		{"f4_scalar.npy", []float32{3.5}, []int{}},
		{"f4_empty.npy", []float32{}, []int{0, 4}},
		{"f4_3d.npy", lin, []int{2, 3, 4}},
		{"i4_vec.npy", []float32{-2, -1, 0, 1, 2}, []int{5}},
		{"i8_tokens.npy", []float32{50258, 50259, 50359, 50363}, []int{4}},
		{"f4_fortran.npy", []float32{0, 1, 2, 3, 4, 5}, []int{2, 3}},
		{"f8_vec.npy", []float32{0.1, -2.5, float32(math.Inf(1))}, []int{3}},
		{"f2_vec.npy", []float32{0.5, -65504, F16ToF32(F32ToF16(6e-8))}, []int{3}},
		{"f4_v2.npy", []float32{0, 1, 2, 3}, []int{4}},
	} {
		t.Run(c.file, func(t *testing.T) {
			data, shape, err := ReadNPY(bytes.NewReader(readFixture(t, c.file)))
			if err != nil {
				t.Fatal(err)
			}
			if !equalInts(shape, c.shape) || shape == nil {
				t.Fatalf("shape %v, want %v", shape, c.shape)
			}
			if !equalF32(data, c.data) {
				t.Fatalf("data %v, want %v", data, c.data)
			}
		})
	}
}

func TestReadNPYInt(t *testing.T) {
	data, shape, err := ReadNPYInt(bytes.NewReader(readFixture(t, "i8_tokens.npy")))
	if err != nil || !equalInts(shape, []int{4}) || data[3] != 50363 {
		t.Fatalf("%v %v %v", data, shape, err)
	}
	data, _, err = ReadNPYInt(bytes.NewReader(readFixture(t, "i4_vec.npy")))
	if err != nil || data[0] != -2 {
		t.Fatalf("%v %v", data, err)
	}
	_, _, err = ReadNPYInt(bytes.NewReader(readFixture(t, "f4_2x3.npy")))
	wantErr(t, err, `descr "<f4" is not an integer type`)
	var buf bytes.Buffer
	WriteNPYInt64(&buf, []int64{1 << 40, -3}, []int{2, 1})
	data, shape, err = ReadNPYInt(&buf)
	if err != nil || data[0] != 1<<40 || data[1] != -3 || !equalInts(shape, []int{2, 1}) {
		t.Fatalf("%v %v %v", data, shape, err)
	}
}

// WriteNPY* produce the same bytes as np.save.
func TestWriteNPYMatchesNumpy(t *testing.T) {
	lin := make([]float32, 24)
	for i := range lin {
		lin[i] = float32(-1 + 2*float64(i)/23)
	}
	for _, c := range []struct {
		file  string
		write func(*bytes.Buffer) error
	}{
		{"f4_2x3.npy", func(b *bytes.Buffer) error { return WriteNPY(b, []float32{-1, -0.5, 0, 0.5, 1, 1.5}, []int{2, 3}) }},
		{"f4_scalar.npy", func(b *bytes.Buffer) error { return WriteNPY(b, []float32{3.5}, nil) }},
		{"f4_empty.npy", func(b *bytes.Buffer) error { return WriteNPY(b, nil, []int{0, 4}) }},
		{"f4_3d.npy", func(b *bytes.Buffer) error { return WriteNPY(b, lin, []int{2, 3, 4}) }},
		{"i4_vec.npy", func(b *bytes.Buffer) error { return WriteNPYInt32(b, []int32{-2, -1, 0, 1, 2}, []int{5}) }},
		{"i8_tokens.npy", func(b *bytes.Buffer) error {
			return WriteNPYInt64(b, []int64{50258, 50259, 50359, 50363}, []int{4})
		}},
	} {
		t.Run(c.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := c.write(&buf); err != nil {
				t.Fatal(err)
			}
			if want := readFixture(t, c.file); !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("wrote\n%q\nnumpy wrote\n%q", buf.Bytes(), want)
			}
		})
	}
}

// Headers too long for version 1.0 switch to 2.0 (u32 length) and stay 64-aligned.
func TestNPYHeaderVersion2(t *testing.T) {
	shape := make([]int, 30000)
	for i := range shape {
		shape[i] = 1
	}
	h := npyHeaderBytes("<f4", shape)
	if h[6] != 2 || len(h)%npyAlign != 0 || h[len(h)-1] != '\n' {
		t.Fatalf("version %d, length %d", h[6], len(h))
	}
	if n := binary.LittleEndian.Uint32(h[8:]); int(n) != len(h)-12 {
		t.Fatalf("header length field %d for %d bytes", n, len(h)-12)
	}
	for _, s := range [][]int{nil, {7}, {123456789012, 2}, {3, 4, 5, 6}} {
		if h := npyHeaderBytes("<f4", s); h[6] != 1 || len(h)%npyAlign != 0 {
			t.Fatalf("shape %v: version %d, length %d", s, h[6], len(h))
		}
	}
}

func TestNPYRoundTripSequence(t *testing.T) {
	var buf bytes.Buffer
	arrays := []struct {
		data  []float32
		shape []int
	}{
		{[]float32{1, 2, 3, 4, 5, 6}, []int{3, 2}},
		{[]float32{float32(math.NaN()), float32(math.Inf(-1)), -0}, []int{1, 3, 1}},
		{[]float32{9}, []int{}},
	}
	for _, a := range arrays {
		if err := WriteNPY(&buf, a.data, a.shape); err != nil {
			t.Fatal(err)
		}
	}
	// Arrays saved back to back read back in turn: the reader stops at each array's end.
	for i, a := range arrays {
		data, shape, err := ReadNPY(&buf)
		if err != nil {
			t.Fatalf("array %d: %v", i, err)
		}
		if !equalF32(data, a.data) || !equalInts(shape, a.shape) {
			t.Fatalf("array %d: %v %v", i, data, shape)
		}
	}
	if buf.Len() != 0 {
		t.Fatalf("%d bytes left", buf.Len())
	}
	path := filepath.Join(t.TempDir(), "x.npy")
	if err := WriteNPYFile(path, arrays[0].data, arrays[0].shape); err != nil {
		t.Fatal(err)
	}
	if data, shape, err := ReadNPYFile(path); err != nil || !equalF32(data, arrays[0].data) || !equalInts(shape, []int{3, 2}) {
		t.Fatalf("file: %v %v %v", data, shape, err)
	}
}

func TestFortranToC(t *testing.T) {
	// A 2×3×2 array whose element (i,j,k) is 100i+10j+k, laid out column-major.
	shape := []int{2, 3, 2}
	var fortran []int
	for k := 0; k < 2; k++ {
		for j := 0; j < 3; j++ {
			for i := 0; i < 2; i++ {
				fortran = append(fortran, 100*i+10*j+k)
			}
		}
	}
	got := fortranToC(fortran, shape)
	want := []int{0, 1, 10, 11, 20, 21, 100, 101, 110, 111, 120, 121}
	if !equalInts(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

// npyWith builds a version 1.0 file around an arbitrary header and data.
func npyWith(header string, data []byte) []byte {
	out := append([]byte(npyMagic), 1, 0)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(header)))
	return append(append(out, header...), data...)
}

func TestReadNPYMalformed(t *testing.T) {
	ok := "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n"
	eight := make([]byte, 8)
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "magic: unexpected EOF"},
		{"bad magic", []byte("\x93NUMPZ\x01\x00\x00\x00"), "bad magic"},
		{"version 4", []byte("\x93NUMPY\x04\x00\x00\x00"), "unsupported format version 4.0"},
		{"header too long", append([]byte("\x93NUMPY\x02\x00"), 0, 0, 0, 1), "header length 16777216 exceeds"},
		{"header short", npyWith(ok, nil)[:20], "header: unexpected EOF"},
		{"data short", npyWith(ok, eight[:7]), "data (2×4 bytes): unexpected EOF"},
		{"unsupported", readFixture(t, "u1_vec.npy"), `descr "|u1": unsupported dtype`},
		{"big endian", readFixture(t, "be_f4.npy"), "big-endian"},
		{"not a dict", npyWith("['descr']", nil), "not a dict literal"},
		{"missing key", npyWith("{'descr': '<f4', 'shape': (2,)}", eight), "needs descr, fortran_order and shape"},
		{"extra key", npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", eight), `unexpected key "x"`},
		{"duplicate key", npyWith("{'descr': '<f4', 'descr': '<f4'}", eight), "duplicate key"},
		{"structured", npyWith("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", eight), "structured dtypes"},
		{"bad bool", npyWith("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", eight), "expected True or False"},
		{"negative dim", npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", eight), "shape: expected a dimension"},
		{"unclosed tuple", npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (2", eight), "expected ',' or ')'"},
		{"unterminated string", npyWith("{'descr': '<f4", eight), "unterminated string"},
		{"missing colon", npyWith("{'descr' '<f4'}", eight), "missing ':'"},
		{"trailing junk", npyWith(strings.TrimSuffix(ok, "\n")+" x", eight), "data after the dict literal"},
		{"overflowing shape", npyWith("{'descr': '<f4', 'fortran_order': False, 'shape': (999999999999, 999999999999, 999999999999)}", eight), "overflows"},
		{"ints not exact", readFixtureWith(t, func(b *bytes.Buffer) { WriteNPYInt64(b, []int64{1<<24 + 1}, []int{1}) }), "not exact in float32"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := ReadNPY(bytes.NewReader(c.file))
			wantErr(t, err, c.want)
		})
	}
	if _, _, err := ReadNPY(bytes.NewReader(readFixture(t, "u1_vec.npy"))); !errors.Is(err, ErrUnsupportedDType) {
		t.Fatalf("%v is not ErrUnsupportedDType", err)
	}
}

func readFixtureWith(t *testing.T, write func(*bytes.Buffer)) []byte {
	var b bytes.Buffer
	write(&b)
	return b.Bytes()
}

func TestReadNPYHugeClaimIsCheap(t *testing.T) {
	file := npyWith("{'descr': '<f8', 'fortran_order': False, 'shape': (100000000000,)}", make([]byte, 80))
	var err error
	n := allocatedDuring(func() { _, _, err = ReadNPY(bytes.NewReader(file)) })
	wantErr(t, err, "unexpected EOF")
	if n > 64<<20 {
		t.Fatalf("allocated %d bytes for a %d-byte input", n, len(file))
	}
}

func TestWriteNPYRejects(t *testing.T) {
	var buf bytes.Buffer
	wantErr(t, WriteNPY(&buf, []float32{1, 2}, []int{3}), "2 values for shape [3]")
	wantErr(t, WriteNPY(&buf, nil, []int{-1}), "negative dimension")
	if buf.Len() != 0 {
		t.Fatal("wrote before failing")
	}
}
