package formats

// NumPy .npy arrays, the interchange format for reference dumps (chorus models dump writes
// them; tests read arrays written by NumPy/PyTorch scripts):
//
//	"\x93NUMPY" major minor
//	header length: u16 LE (version 1.0) or u32 LE (2.0, 3.0)
//	header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
//	        padded with spaces and ended by '\n' so the data starts at a multiple of 64
//	data:   the elements, C (or Fortran) order
//
// ref: numpy/lib/format.py (NEP 1) — _write_array_header (sorted keys, repr values, spare
// spaces for the growth axis: GROWTH_AXIS_MAX_DIGITS = 21), _wrap_header (ARRAY_ALIGN = 64,
// padding 1..64 spaces before the newline, version 2.0 only when the header outgrows u16),
// _read_array_header. The writer reproduces NumPy 1.24's np.save byte for byte for the types
// it writes; testdata/npy holds arrays NumPy wrote.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
)

const (
	npyMagic = "\x93NUMPY"
	// npyAlign is numpy's ARRAY_ALIGN: the data offset is a multiple of it.
	npyAlign = 64
	// npyGrowthDigits is numpy's GROWTH_AXIS_MAX_DIGITS.
	npyGrowthDigits = 21
	// maxNPYHeader bounds the header; numpy's own reader refuses more than 10000 bytes by
	// default, and a plain numeric array needs about 128.
	maxNPYHeader = 1 << 16
)

// npyTypes are the element types the reader understands, by descr.
var npyTypes = map[string]struct {
	size    int
	isFloat bool
}{
	"<f2": {2, true}, "<f4": {4, true}, "<f8": {8, true},
	"<i4": {4, false}, "<i8": {8, false},
}

// npyHeader is a parsed .npy header.
type npyHeader struct {
	descr   string
	fortran bool
	shape   []int
}

// WriteNPY writes a float32 array as a version 1.0 .npy file (version 2.0 if the header does
// not fit), as np.save would.
func WriteNPY(w io.Writer, data []float32, shape []int) error {
	return writeNPY(w, "<f4", len(data), shape, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(data[i]))
	})
}

// WriteNPYInt32 writes an int32 array (e.g. token ids) as .npy.
func WriteNPYInt32(w io.Writer, data []int32, shape []int) error {
	return writeNPY(w, "<i4", len(data), shape, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint32(b, uint32(data[i]))
	})
}

// WriteNPYInt64 writes an int64 array as .npy (NumPy's default integer type).
func WriteNPYInt64(w io.Writer, data []int64, shape []int) error {
	return writeNPY(w, "<i8", len(data), shape, func(b []byte, i int) []byte {
		return binary.LittleEndian.AppendUint64(b, uint64(data[i]))
	})
}

// WriteNPYFile writes a float32 array to path atomically.
func WriteNPYFile(path string, data []float32, shape []int) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return WriteNPY(w, data, shape) })
}

func writeNPY(w io.Writer, descr string, n int, shape []int, put func([]byte, int) []byte) error {
	want, err := numel(shape)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	if want != n {
		return fmt.Errorf("npy: %d values for shape %v (want %d)", n, shape, want)
	}
	if _, err := w.Write(npyHeaderBytes(descr, shape)); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	const step = 1 << 14
	buf := make([]byte, 0, 8*step)
	for i := 0; i < n; i += step {
		buf = buf[:0]
		for j := i; j < min(i+step, n); j++ {
			buf = put(buf, j)
		}
		if _, err := w.Write(buf); err != nil {
			return fmt.Errorf("npy: %w", err)
		}
	}
	return nil
}

// npyHeaderBytes builds magic, version, length and padded header exactly as numpy does.
func npyHeaderBytes(descr string, shape []int) []byte {
	var dims []string
	for _, d := range shape {
		dims = append(dims, strconv.Itoa(d))
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)" // Python's one-element tuple
	}
	h := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + tuple + ", }"
	if len(shape) > 0 {
		h += strings.Repeat(" ", max(0, npyGrowthDigits-len(dims[0])))
	}
	for _, v := range []struct {
		major  byte
		lenLen int
	}{{1, 2}, {2, 4}} {
		hlen := len(h) + 1 // the newline
		pad := npyAlign - (len(npyMagic)+2+v.lenLen+hlen)%npyAlign
		total := hlen + pad
		if v.lenLen == 2 && total > math.MaxUint16 {
			continue
		}
		out := append([]byte(npyMagic), v.major, 0)
		if v.lenLen == 2 {
			out = binary.LittleEndian.AppendUint16(out, uint16(total))
		} else {
			out = binary.LittleEndian.AppendUint32(out, uint32(total))
		}
		out = append(out, h...)
		out = append(out, strings.Repeat(" ", pad)...)
		return append(out, '\n')
	}
	panic("unreachable: a version 2.0 header always fits")
}

// ReadNPY reads a .npy array as float32 in C order. float32 is returned as stored, float16
// widened exactly, float64 rounded to nearest; int32/int64 arrays are accepted when every
// value is exactly representable (|v| ≤ 2^24), so token ids read fine and nothing is silently
// rounded. Fortran-order arrays are transposed into C order. r is left just past the array,
// so several arrays saved back to back can be read in turn.
func ReadNPY(r io.Reader) (data []float32, shape []int, err error) {
	h, raw, err := readNPYRaw(r)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	n := len(raw) / npyTypes[h.descr].size
	data = make([]float32, n)
	switch h.descr {
	case "<f2":
		for i := range data {
			data[i] = F16ToF32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
	case "<f4":
		for i := range data {
			data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case "<f8":
		for i := range data {
			data[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:])))
		}
	case "<i4", "<i8":
		ints := decodeNPYInts(h.descr, raw)
		for i, v := range ints {
			if v > 1<<24 || v < -(1<<24) {
				return nil, nil, fmt.Errorf("npy: %s element %d = %d is not exact in float32 (use ReadNPYInt)", h.descr, i, v)
			}
			data[i] = float32(v)
		}
	}
	if h.fortran {
		data = fortranToC(data, h.shape)
	}
	return data, h.shape, nil
}

// ReadNPYInt reads an int32 or int64 .npy array as int64 in C order.
func ReadNPYInt(r io.Reader) (data []int64, shape []int, err error) {
	h, raw, err := readNPYRaw(r)
	if err != nil {
		return nil, nil, fmt.Errorf("npy: %w", err)
	}
	if npyTypes[h.descr].isFloat {
		return nil, nil, fmt.Errorf("npy: descr %q is not an integer type", h.descr)
	}
	data = decodeNPYInts(h.descr, raw)
	if h.fortran {
		data = fortranToC(data, h.shape)
	}
	return data, h.shape, nil
}

// ReadNPYFile reads a .npy file as float32 (see ReadNPY).
func ReadNPYFile(path string) ([]float32, []int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, shape, err := ReadNPY(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return data, shape, nil
}

func decodeNPYInts(descr string, raw []byte) []int64 {
	if descr == "<i4" {
		out := make([]int64, len(raw)/4)
		for i := range out {
			out[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
		return out
	}
	out := make([]int64, len(raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out
}

// fortranToC reorders column-major data into row-major order of the same shape.
func fortranToC[T any](src []T, shape []int) []T {
	if len(shape) < 2 {
		return src
	}
	dst := make([]T, len(src))
	idx := make([]int, len(shape))
	for c := range dst { // c walks C order; f is the matching Fortran offset
		f, stride := 0, 1
		for k := range shape {
			f += idx[k] * stride
			stride *= shape[k]
		}
		dst[c] = src[f]
		for k := len(shape) - 1; k >= 0; k-- {
			idx[k]++
			if idx[k] < shape[k] {
				break
			}
			idx[k] = 0
		}
	}
	return dst
}

// readNPYRaw reads and validates the header, then exactly the data bytes it announces.
func readNPYRaw(r io.Reader) (npyHeader, []byte, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return npyHeader{}, nil, fmt.Errorf("magic: %w", unexpected(err))
	}
	if string(pre[:6]) != npyMagic {
		return npyHeader{}, nil, fmt.Errorf("bad magic %q", pre[:6])
	}
	var hlen int
	switch major := pre[6]; major {
	case 1:
		var b [2]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, nil, fmt.Errorf("header length: %w", unexpected(err))
		}
		hlen = int(binary.LittleEndian.Uint16(b[:]))
	case 2, 3:
		var b [4]byte
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return npyHeader{}, nil, fmt.Errorf("header length: %w", unexpected(err))
		}
		hlen = int(binary.LittleEndian.Uint32(b[:]))
	default:
		return npyHeader{}, nil, fmt.Errorf("unsupported format version %d.%d", major, pre[7])
	}
	if hlen > maxNPYHeader {
		return npyHeader{}, nil, fmt.Errorf("header length %d exceeds %d", hlen, maxNPYHeader)
	}
	raw, err := readBytes(r, int64(hlen))
	if err != nil {
		return npyHeader{}, nil, fmt.Errorf("header: %w", err)
	}
	h, err := parseNPYHeader(string(raw))
	if err != nil {
		return npyHeader{}, nil, fmt.Errorf("header: %w", err)
	}
	kind, ok := npyTypes[h.descr]
	if !ok {
		if strings.HasPrefix(h.descr, ">") {
			return npyHeader{}, nil, fmt.Errorf("descr %q: big-endian arrays are not supported", h.descr)
		}
		return npyHeader{}, nil, fmt.Errorf("descr %q: %w (chorus reads <f2, <f4, <f8, <i4, <i8)", h.descr, ErrUnsupportedDType)
	}
	n, err := numel(h.shape)
	if err != nil {
		return npyHeader{}, nil, fmt.Errorf("header: %w", err)
	}
	if n > math.MaxInt64/8 {
		return npyHeader{}, nil, fmt.Errorf("header: shape %v too large", h.shape)
	}
	data, err := readBytes(r, int64(n*kind.size))
	if err != nil {
		return npyHeader{}, nil, fmt.Errorf("data (%d×%d bytes): %w", n, kind.size, err)
	}
	return h, data, nil
}

// parseNPYHeader parses the dict literal numpy writes: exactly the keys descr, fortran_order
// and shape, with a string, a bool and a tuple of ints. Trailing spaces/newline are allowed.
func parseNPYHeader(s string) (npyHeader, error) {
	p := &pyLit{s: s}
	var h npyHeader
	if !p.eat('{') {
		return h, errors.New("not a dict literal")
	}
	seen := map[string]bool{}
	for {
		if p.eat('}') {
			break
		}
		key, err := p.str()
		if err != nil {
			return h, fmt.Errorf("key: %w", err)
		}
		if seen[key] {
			return h, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return h, fmt.Errorf("key %q: missing ':'", key)
		}
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return h, fmt.Errorf("descr: %w (structured dtypes are not supported)", err)
			}
		case "fortran_order":
			if h.fortran, err = p.boolean(); err != nil {
				return h, fmt.Errorf("fortran_order: %w", err)
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, fmt.Errorf("shape: %w", err)
			}
		default:
			return h, fmt.Errorf("unexpected key %q", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return h, fmt.Errorf("after %q: expected ',' or '}'", key)
			}
			break
		}
	}
	if len(seen) != 3 {
		return h, errors.New("header needs descr, fortran_order and shape")
	}
	if strings.TrimRight(p.s[p.i:], " \t\r\n\x00") != "" {
		return h, errors.New("data after the dict literal")
	}
	return h, nil
}

// pyLit is a cursor over a Python literal.
type pyLit struct {
	s string
	i int
}

func (p *pyLit) skip() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t' || p.s[p.i] == '\n' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *pyLit) eat(c byte) bool {
	p.skip()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a '…' or "…" string without escapes (numpy's keys and plain descrs have none).
func (p *pyLit) str() (string, error) {
	p.skip()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", errors.New("expected a string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", errors.New("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsRune(v, '\\') {
		return "", errors.New("escapes are not supported")
	}
	p.i += end + 2
	return v, nil
}

func (p *pyLit) boolean() (bool, error) {
	p.skip()
	for _, c := range []struct {
		lit string
		v   bool
	}{{"True", true}, {"False", false}} {
		if strings.HasPrefix(p.s[p.i:], c.lit) {
			p.i += len(c.lit)
			return c.v, nil
		}
	}
	return false, errors.New("expected True or False")
}

// tuple reads (), (n,) or (n, m, …) of non-negative ints; Python 2's "3L" is accepted.
func (p *pyLit) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, errors.New("expected a tuple")
	}
	shape := []int{}
	for {
		if p.eat(')') {
			return shape, nil
		}
		p.skip()
		start := p.i
		for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
			p.i++
		}
		if start == p.i || p.i-start > 12 {
			return nil, errors.New("expected a dimension (a non-negative int below 10^12)")
		}
		d, _ := strconv.Atoi(p.s[start:p.i])
		if p.i < len(p.s) && p.s[p.i] == 'L' {
			p.i++
		}
		shape = append(shape, d)
		if len(shape) > 64 {
			return nil, errors.New("more than 64 dimensions")
		}
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, errors.New("expected ',' or ')'")
			}
			return shape, nil
		}
	}
}
