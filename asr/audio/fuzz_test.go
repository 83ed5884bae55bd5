package audio

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// checkClip asserts the invariants every successfully decoded Clip keeps.
func checkClip(t *testing.T, c *Clip) {
	t.Helper()
	if c.Channels < 1 || c.Channels != len(c.Samples) || c.SampleRate < 1 {
		t.Fatalf("clip with %d channels (%d slices) at %d Hz", c.Channels, len(c.Samples), c.SampleRate)
	}
	for ch, s := range c.Samples {
		if len(s) != c.Frames() {
			t.Fatalf("channel %d has %d samples, channel 0 %d", ch, len(s), c.Frames())
		}
		for i, v := range s {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("channel %d sample %d is %v", ch, i, v)
			}
		}
	}
}

func addFixtureSeeds(f *testing.F, glob string) {
	names, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(names) == 0 {
		f.Fatalf("no seeds for %s: %v", glob, err)
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// The limit keeps fuzzed FLAC headers that promise hours of constant samples
// from spending the fuzzer's time and memory.
const fuzzLimit = 200 * time.Millisecond

func FuzzDecodeWAV(f *testing.F) {
	addFixtureSeeds(f, "*.wav")
	f.Add(buildRIFF(fmtChunkFor16k(), wavChunk{"junk", -1, []byte{1}}, wavChunk{"data", 0xFFFFFFFF, pcm16Bytes(1, 2)}))
	f.Add(buildRIFF(wavChunk{"fmt ", -1, extensibleBody(2, 8000, 6, 24, 20, wavePCM)}, wavChunk{"data", -1, make([]byte, 12)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeLimit(bytes.NewReader(b), fuzzLimit)
		if err != nil {
			return
		}
		checkClip(t, c)
		// A decoded WAV never holds more samples than its bytes allow.
		if n := c.Frames() * c.Channels; n > len(b) {
			t.Fatalf("%d samples from %d bytes", n, len(b))
		}
	})
}

func FuzzDecodeFLAC(f *testing.F) {
	addFixtureSeeds(f, "*.flac")
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeLimit(bytes.NewReader(b), fuzzLimit)
		if err != nil {
			return
		}
		checkClip(t, c)
	})
}

func FuzzFromFloat32LE(f *testing.F) {
	f.Add(float32Bytes(0, 1, -1))
	f.Add([]byte{0, 0, 0xc0, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := FromFloat32LE(b)
		if err != nil {
			return
		}
		if len(v) != len(b)/4 || len(b)%4 != 0 {
			t.Fatalf("%d samples from %d bytes", len(v), len(b))
		}
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("sample %d is %v", i, x)
			}
		}
		if p := FromPCM16(b); len(p) != len(b)/2 {
			t.Fatalf("FromPCM16: %d samples from %d bytes", len(p), len(b))
		}
	})
}
