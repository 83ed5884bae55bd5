package formats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
)

// readChunk is how much a bounded read allocates ahead of the bytes that have actually
// arrived. A header may claim any size; memory grows only as the input delivers.
const readChunk = 16 << 20

// readBytes reads exactly n bytes from r. Memory is allocated in steps of at most readChunk as
// data arrives, so a lying length costs at most one chunk beyond the real input. A short input
// is io.ErrUnexpectedEOF.
func readBytes(r io.Reader, n int64) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative length %d", n)
	}
	if n <= readChunk {
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, unexpected(err)
		}
		return buf, nil
	}
	var buf []byte
	for int64(len(buf)) < n {
		step := min(n-int64(len(buf)), readChunk)
		start := len(buf)
		buf = append(buf, make([]byte, step)...)
		if _, err := io.ReadFull(r, buf[start:]); err != nil {
			return nil, unexpected(err)
		}
	}
	return buf, nil
}

// unexpected turns a clean EOF in the middle of a structure into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decodeF32 decodes little-endian float32s.
func decodeF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

// decodeU16 decodes little-endian 16-bit words.
func decodeU16(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out
}

// writeTensorData writes a tensor's elements little-endian in its own dtype, in bounded
// chunks so a large tensor is not duplicated in memory.
func writeTensorData(w io.Writer, t *Tensor) error {
	const step = 1 << 16
	buf := make([]byte, 0, 4*step)
	switch t.DType {
	case F32:
		for i := 0; i < len(t.F32); i += step {
			buf = buf[:0]
			for _, v := range t.F32[i:min(i+step, len(t.F32))] {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	case F16, BF16:
		for i := 0; i < len(t.F16); i += step {
			buf = buf[:0]
			for _, v := range t.F16[i:min(i+step, len(t.F16))] {
				buf = binary.LittleEndian.AppendUint16(buf, v)
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("tensor %q: invalid dtype %v", t.Name, t.DType)
	}
	return nil
}
