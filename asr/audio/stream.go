package audio

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// sampleSize is the bytes per sample of a raw stream in f, 0 for a format that is not one.
func (f Format) sampleSize() int {
	switch f {
	case PCM16:
		return 2
	case Float32:
		return 4
	}
	return 0
}

// String names the format as the gRPC API names the encoding.
func (f Format) String() string {
	switch f {
	case PCM16:
		return "LINEAR16"
	case Float32:
		return "FLOAT32"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// MaxChannels bounds the interleaved channels a stream may declare; more is surely a
// mistake (a byte count sent as the channel count) and would make one frame huge.
const MaxChannels = 32

// PCMStream converts raw interleaved samples arriving in chunks of any size — a network
// message may end in the middle of a sample or of a frame — into 16-kHz mono float32, as a
// streaming session consumes it. Samples are averaged across channels and resampled with
// Resampler, so the output equals Resample(Downmix(whole input)) however the input was cut.
//
// It is not safe for concurrent use; make one per stream.
type PCMStream struct {
	enc      Format
	channels int
	rs       *Resampler // nil when the rate already is WhisperRate
	carry    []byte     // bytes of an unfinished frame from the previous chunk
	frame    int        // bytes per frame: channels · sample size
	mono     []float32  // scratch for the downmixed chunk
}

// NewPCMStream returns a converter for rate Hz, channels interleaved channels (0 means 1)
// in enc (PCM16 or Float32, little-endian, without a WAV header).
func NewPCMStream(enc Format, rate, channels int) (*PCMStream, error) {
	if enc.sampleSize() == 0 {
		return nil, fmt.Errorf("audio stream: unknown encoding %v", enc)
	}
	if channels == 0 {
		channels = 1
	}
	if channels < 0 || channels > MaxChannels {
		return nil, fmt.Errorf("audio stream: %d channels outside [1, %d]", channels, MaxChannels)
	}
	if rate < MinRate || rate > MaxRate {
		return nil, fmt.Errorf("audio stream: sample rate %d Hz outside [%d, %d]", rate, MinRate, MaxRate)
	}
	s := &PCMStream{enc: enc, channels: channels, frame: channels * enc.sampleSize()}
	if rate != WhisperRate {
		rs, err := NewResampler(rate, WhisperRate)
		if err != nil {
			return nil, fmt.Errorf("audio stream: %w", err)
		}
		s.rs = rs
	}
	return s, nil
}

// ErrNonFinite is returned (wrapped) by PCMStream.Write for a FLOAT32 NaN or infinity.
var ErrNonFinite = errors.New("non-finite sample")

// Write converts b and returns the 16-kHz mono samples now determined (the resampler holds
// back a few milliseconds until the input that follows them arrives). A NaN or infinite
// sample fails the call with ErrNonFinite and leaves the stream as it was before b.
func (s *PCMStream) Write(b []byte) ([]float32, error) {
	data := b
	if len(s.carry) > 0 {
		data = append(s.carry[:len(s.carry):len(s.carry)], b...)
	}
	whole := len(data) / s.frame * s.frame
	frames := whole / s.frame
	s.mono = s.mono[:0]
	size := s.enc.sampleSize()
	for f := range frames {
		var sum float32
		for c := range s.channels {
			off := f*s.frame + c*size
			var v float32
			if s.enc == PCM16 {
				v = float32(int16(binary.LittleEndian.Uint16(data[off:]))) / 32768
			} else {
				v = math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					return nil, fmt.Errorf("audio stream: sample %v in frame %d of this chunk: %w", v, f, ErrNonFinite)
				}
			}
			sum += v
		}
		s.mono = append(s.mono, sum/float32(s.channels))
	}
	s.carry = append(s.carry[:0], data[whole:]...)
	if s.rs == nil {
		return append([]float32(nil), s.mono...), nil
	}
	return s.rs.Process(s.mono), nil
}

// Pending reports how many bytes of an unfinished frame are held back.
func (s *PCMStream) Pending() int { return len(s.carry) }

// Flush ends the stream: it returns the resampler's remaining output. Bytes of an
// unfinished frame are dropped (Pending says how many) — they are not a sample.
func (s *PCMStream) Flush() []float32 {
	s.carry = s.carry[:0]
	if s.rs == nil {
		return nil
	}
	return s.rs.Flush()
}
