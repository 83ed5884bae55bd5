package audio

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FromPCM16 converts little-endian signed 16-bit samples (gRPC LINEAR16) to
// float32 by dividing by 32768, as openai/whisper does. Every bit pattern is a
// valid sample, so there is no error; a trailing odd byte is not a sample and
// is ignored: a caller that receives a byte stream split at arbitrary points
// must carry that byte into the next chunk, or reject odd-sized chunks.
func FromPCM16(b []byte) []float32 {
	out := make([]float32, len(b)/2)
	for i := range out {
		out[i] = float32(int16(binary.LittleEndian.Uint16(b[2*i:]))) / 32768
	}
	return out
}

// FromFloat32LE converts little-endian IEEE-754 float32 samples (gRPC FLOAT32)
// to []float32. It rejects a length that is not a multiple of 4 and any NaN or
// infinity: one such sample would turn every mel frame it touches into NaN.
func FromFloat32LE(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("float32 audio: %d bytes is not a whole number of 4-byte samples: %w", len(b), ErrMalformed)
	}
	out := make([]float32, len(b)/4)
	for i := range out {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("float32 audio: non-finite sample %v at index %d: %w", v, i, ErrMalformed)
		}
		out[i] = v
	}
	return out, nil
}
