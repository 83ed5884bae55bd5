package audio

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"
)

// The streaming path (decode block by block, downmix, resample as it goes)
// must give exactly the two-step result (whole clip, then To16kMono).
func TestDecode16kMonoMatchesTwoStep(t *testing.T) {
	var long bytes.Buffer // 3 s of 44.1 kHz stereo: many 64 KiB reads
	x := noise(2*3*44100, 5)
	if err := WriteWAV(&long, x, 44100, 2, PCM16); err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{"44.1k stereo PCM16 (generated)": long.Bytes()}
	for _, name := range []string{"s16.wav", "u8.wav", "f64.wav", "c3.wav", "s16.flac", "c3.flac", "m8.flac"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		inputs[name] = b
	}
	for name, b := range inputs {
		t.Run(name, func(t *testing.T) {
			c, err := Decode(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			want, err := To16kMono(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode16kMono(bytes.NewReader(b), 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) || len(got) != OutputLen(c.Frames(), c.SampleRate, WhisperRate) {
				t.Fatalf("%d samples, two-step %d", len(got), len(want))
			}
			for i := range got {
				if got[i] != want[i] {
					t.Fatalf("sample %d = %v, two-step %v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestDecode16kMonoErrors(t *testing.T) {
	if _, err := Decode16kMono(bytes.NewReader(readFixture(t, "s16.flac")), 50*time.Millisecond); !errors.Is(err, ErrTooLong) {
		t.Errorf("100 ms FLAC, 50 ms limit: got %v, want ErrTooLong", err)
	}
	// 500 Hz is a valid WAV but below MinRate: the resampler refuses it.
	low := buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 500, 2, 16)}, wavChunk{"data", -1, pcm16Bytes(1, 2)})
	if _, err := Decode16kMono(bytes.NewReader(low), 0); !errors.Is(err, ErrUnsupported) {
		t.Errorf("500 Hz WAV: got %v, want ErrUnsupported", err)
	}
	if _, err := Load16kMono("testdata/missing.wav"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
}

func TestClipDuration(t *testing.T) {
	c := decodeFixture(t, "s16.flac")
	if d := c.Duration(); d != 100*time.Millisecond {
		t.Errorf("Duration = %v, want 100ms", d)
	}
	if d := (&Clip{}).Duration(); d != 0 {
		t.Errorf("empty clip Duration = %v", d)
	}
}

// BenchmarkDecodeWAV decodes 60 s of 44.1 kHz stereo PCM16.
func BenchmarkDecodeWAV(b *testing.B) {
	var file bytes.Buffer
	if err := WriteWAV(&file, noise(2*60*44100, 1), 44100, 2, PCM16); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(file.Len()))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(file.Bytes())); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(60/(b.Elapsed().Seconds()/float64(b.N)), "x-realtime")
}

// BenchmarkDecode16kMono is Load16kMono's work on the same file: decode,
// downmix and resample in one pass.
func BenchmarkDecode16kMono(b *testing.B) {
	var file bytes.Buffer
	if err := WriteWAV(&file, noise(2*60*44100, 1), 44100, 2, PCM16); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(file.Len()))
	for b.Loop() {
		if _, err := Decode16kMono(bytes.NewReader(file.Bytes()), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(60/(b.Elapsed().Seconds()/float64(b.N)), "x-realtime")
}
