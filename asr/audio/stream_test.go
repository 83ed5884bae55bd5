package audio

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func streamPCM16(x []float32) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(v*32767)))
	}
	return b
}

func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// TestPCMStreamChunkingInvariant feeds the same bytes whole and cut at random points
// (inside samples and frames) and checks the outputs are identical and equal to the
// batch path: FromPCM16/FromFloat32LE, Downmix, Resample.
func TestPCMStreamChunkingInvariant(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		enc            Format
		rate, channels int
	}{
		{PCM16, 16000, 1}, {PCM16, 44100, 2}, {PCM16, 8000, 1}, {Float32, 48000, 2}, {Float32, 16000, 3},
	} {
		t.Run(tc.enc.String(), func(t *testing.T) {
			frames := tc.rate / 3
			x := make([]float32, frames*tc.channels)
			for i := range x {
				x[i] = float32(rng.NormFloat64() * 0.2)
			}
			var raw []byte
			var decoded []float32
			if tc.enc == PCM16 {
				raw = streamPCM16(x)
				decoded = FromPCM16(raw)
			} else {
				raw = f32Bytes(x)
				decoded, _ = FromFloat32LE(raw)
			}
			chans := make([][]float32, tc.channels)
			for c := range chans {
				for f := range frames {
					chans[c] = append(chans[c], decoded[f*tc.channels+c])
				}
			}
			want, err := Resample(Downmix(chans), tc.rate, WhisperRate)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewPCMStream(tc.enc, tc.rate, tc.channels)
			if err != nil {
				t.Fatal(err)
			}
			var got []float32
			for rest := raw; len(rest) > 0; {
				n := min(len(rest), 1+rng.IntN(701))
				out, err := s.Write(rest[:n])
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, out...)
				rest = rest[n:]
			}
			got = append(got, s.Flush()...)
			if len(got) != len(want) {
				t.Fatalf("got %d samples, want %d", len(got), len(want))
			}
			for i := range got {
				if math.Abs(float64(got[i]-want[i])) > 1e-6 {
					t.Fatalf("sample %d: got %v, want %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestPCMStreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name           string
		enc            Format
		rate, channels int
	}{
		{"unknown encoding", Format(7), 16000, 1},
		{"rate zero", PCM16, 0, 1},
		{"rate absurd", PCM16, 10_000_000, 1},
		{"negative channels", PCM16, 16000, -1},
		{"too many channels", Float32, 16000, MaxChannels + 1},
	} {
		if _, err := NewPCMStream(tc.enc, tc.rate, tc.channels); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	s, err := NewPCMStream(Float32, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		b := f32Bytes([]float32{0.1, bad})
		if _, err := s.Write(b); !errors.Is(err, ErrNonFinite) {
			t.Errorf("%v: got %v, want ErrNonFinite", bad, err)
		}
	}
	// A rejected chunk leaves the stream usable: a half sample carried before it survives.
	if _, err := s.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte{0xc0, 0x7f}); err == nil { // completes a NaN
		t.Fatal("NaN after carry accepted")
	}
	out, err := s.Write([]byte{0x80, 0x3f}) // completes 1.0f with the carried 0x00 0x00
	if err != nil || len(out) != 1 || out[0] != 1 {
		t.Fatalf("carry after rejected chunk: %v %v", out, err)
	}
}

func FuzzPCMStream(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5}, uint8(1), uint8(2))
	f.Fuzz(func(t *testing.T, b []byte, enc, ch uint8) {
		s, err := NewPCMStream(Format(enc%3), 8000, int(ch%4))
		if err != nil {
			return
		}
		for len(b) > 0 {
			n := 1 + int(b[0])%7
			n = min(n, len(b))
			out, err := s.Write(b[:n])
			if err != nil && !errors.Is(err, ErrNonFinite) {
				t.Fatalf("unexpected error %v", err)
			}
			for _, v := range out {
				if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
					t.Fatal("non-finite output")
				}
			}
			b = b[n:]
		}
		s.Flush()
	})
}
