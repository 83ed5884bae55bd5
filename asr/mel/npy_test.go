package mel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// readNpyF32 reads a NumPy .npy file holding a little-endian float32 array in C order
// (format versions 1.0–3.0) and returns its shape and data. It is the minimum the fixtures
// need; anything else is an error.
func readNpyF32(path string) ([]int, []float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return parseNpyF32(b)
}

var (
	npyDescr   = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	npyFortran = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	npyShape   = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

func parseNpyF32(b []byte) ([]int, []float32, error) {
	if len(b) < 10 || !bytes.Equal(b[:6], []byte("\x93NUMPY")) {
		return nil, nil, fmt.Errorf("npy: bad magic")
	}
	var hlen, off int
	switch b[6] {
	case 1:
		hlen, off = int(binary.LittleEndian.Uint16(b[8:10])), 10
	case 2, 3:
		if len(b) < 12 {
			return nil, nil, fmt.Errorf("npy: short header")
		}
		hlen, off = int(binary.LittleEndian.Uint32(b[8:12])), 12
	default:
		return nil, nil, fmt.Errorf("npy: unsupported version %d", b[6])
	}
	if off+hlen > len(b) {
		return nil, nil, fmt.Errorf("npy: header past end of file")
	}
	header := string(b[off : off+hlen])
	m := npyDescr.FindStringSubmatch(header)
	if m == nil || m[1] != "<f4" {
		return nil, nil, fmt.Errorf("npy: want descr '<f4' in %q", header)
	}
	if m := npyFortran.FindStringSubmatch(header); m == nil || m[1] != "False" {
		return nil, nil, fmt.Errorf("npy: want C order in %q", header)
	}
	m = npyShape.FindStringSubmatch(header)
	if m == nil {
		return nil, nil, fmt.Errorf("npy: no shape in %q", header)
	}
	var shape []int
	n := 1
	for _, f := range strings.Split(m[1], ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		d, err := strconv.Atoi(f)
		if err != nil || d < 0 {
			return nil, nil, fmt.Errorf("npy: bad dimension %q", f)
		}
		shape = append(shape, d)
		n *= d
	}
	data := b[off+hlen:]
	if len(data) != 4*n {
		return nil, nil, fmt.Errorf("npy: %d data bytes for %d float32", len(data), n)
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return shape, out, nil
}

// writeNpyF32 writes a float32 array as .npy version 1.0 (C order, little-endian).
func writeNpyF32(path string, shape []int, data []float32) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", sh)
	// Pad with spaces so magic+len+header+newline is a multiple of 64, as NumPy does.
	pad := 64 - (10+len(header)+1)%64
	header += strings.Repeat(" ", pad%64) + "\n"
	var buf bytes.Buffer
	buf.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&buf, binary.LittleEndian, uint16(len(header)))
	buf.WriteString(header)
	for _, v := range data {
		binary.Write(&buf, binary.LittleEndian, math.Float32bits(v))
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
