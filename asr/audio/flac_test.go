package audio

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// Each FLAC fixture was encoded by the reference encoder from the WAV of the
// same name (testdata/gen.sh), and FLAC is lossless, so decoding must agree
// bit for bit.
func TestDecodeFLACMatchesWAV(t *testing.T) {
	tests := []struct {
		name     string
		channels int
		bits     int
	}{
		{"s16", 2, 16},
		{"s24", 2, 24},
		{"m8", 1, 8},
		{"c3", 3, 16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := decodeFixture(t, tt.name+".flac")
			w := decodeFixture(t, tt.name+".wav")
			if f.Channels != tt.channels || f.SampleRate != w.SampleRate || f.BitDepth != tt.bits {
				t.Fatalf("got %d channels, %d Hz, %d bits; want %d, %d Hz, %d bits",
					f.Channels, f.SampleRate, f.BitDepth, tt.channels, w.SampleRate, tt.bits)
			}
			for ch := range tt.channels {
				if d := maxAbsDiff(f.Samples[ch], w.Samples[ch]); d != 0 {
					t.Errorf("channel %d differs from the WAV by %g", ch, d)
				}
			}
		})
	}
}

// mewkiz/flac v1.0.14 cannot decode 32-bit FLAC; the error must say so.
func TestDecodeFLAC32BitUnsupported(t *testing.T) {
	_, err := DecodeFile("testdata/s32.flac")
	if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "32-bit") {
		t.Errorf("got %v, want an ErrUnsupported naming 32-bit samples", err)
	}
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeFLACWithID3(t *testing.T) {
	flac := readFixture(t, "s16.flac")
	// ID3v2.4 header with a 5-byte tag body (syncsafe size 0x05).
	tagged := concat([]byte("ID3\x04\x00\x00\x00\x00\x00\x05"), []byte("12345"), flac)
	c, err := Decode(bytes.NewReader(tagged))
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(c.Samples[0], decodeFixture(t, "s16.wav").Samples[0]); d != 0 {
		t.Errorf("differs from the WAV by %g", d)
	}
	// A trailing ID3v1 tag after the last frame is ignored.
	if _, err := Decode(bytes.NewReader(concat(flac, []byte("TAG"), make([]byte, 125)))); err != nil {
		t.Errorf("FLAC with trailing ID3v1 tag: %v", err)
	}
}

func TestDecodeFLACBadInput(t *testing.T) {
	good := readFixture(t, "s16.flac")
	// STREAMINFO is the first metadata block: "fLaC", 4-byte block header,
	// then 34 bytes whose last 16 are the MD5 (bytes 26..42 of the file).
	badMD5 := bytes.Clone(good)
	badMD5[30] ^= 0xff
	flipped := bytes.Clone(good)
	flipped[len(flipped)-100] ^= 0x10 // inside the audio frames
	tests := []struct {
		name    string
		file    []byte
		target  error
		message string
	}{
		{"signature only", good[:4], ErrTruncated, "stream header"},
		{"truncated STREAMINFO", good[:20], ErrTruncated, "stream header"},
		{"truncated audio", good[:len(good)-50], ErrTruncated, "flac: "},
		{"corrupted frame", flipped, ErrMalformed, "flac: frame"},
		{"MD5 mismatch", badMD5, ErrMalformed, "MD5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(bytes.NewReader(tt.file))
			if err == nil {
				t.Fatalf("decoded %d frames, want an error", c.Frames())
			}
			if !errors.Is(err, tt.target) {
				t.Errorf("error %q is not %v", err, tt.target)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
		})
	}
}

func TestDecodeFLACLimit(t *testing.T) {
	good := readFixture(t, "s16.flac") // 100 ms
	if _, err := DecodeLimit(bytes.NewReader(good), 100*time.Millisecond); err != nil {
		t.Errorf("100 ms clip, 100 ms limit: %v", err)
	}
	if _, err := DecodeLimit(bytes.NewReader(good), 50*time.Millisecond); !errors.Is(err, ErrTooLong) {
		t.Errorf("100 ms clip, 50 ms limit: got %v, want ErrTooLong", err)
	}
}

// panicReader serves its data once, then panics: it stands in for a decoder
// bug that panics midway through a stream.
type panicReader struct{ data []byte }

func (r *panicReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		panic("boom")
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestDecodeFLACRecoversPanic(t *testing.T) {
	good := readFixture(t, "s16.flac")
	_, err := Decode(&panicReader{data: good[:200]})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "panic (boom)") {
		t.Errorf("got %v, want ErrMalformed reporting the panic", err)
	}
}
