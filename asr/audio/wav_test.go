package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// Fixtures come from testdata/gen.sh: 0.1 s of 8 kHz stereo (440 Hz left,
// 1 kHz right) as 16-bit PCM, converted losslessly to the other encodings.
const (
	fixtureRate   = 8000
	fixtureFrames = 800
)

func decodeFixture(t testing.TB, name string) *Clip {
	t.Helper()
	c, err := DecodeFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return c
}

// referenceS16 reads testdata/s16.wav the naive way: it is a canonical
// 44-byte-header file, so the samples are the int16s from byte 44 on.
func referenceS16(t *testing.T) [][]float32 {
	t.Helper()
	b, err := os.ReadFile("testdata/s16.wav")
	if err != nil {
		t.Fatal(err)
	}
	if string(b[36:40]) != "data" {
		t.Fatalf("s16.wav is not a canonical 44-byte-header file")
	}
	ch := [][]float32{nil, nil}
	for i := 44; i+1 < len(b); i += 2 {
		v := float32(int16(binary.LittleEndian.Uint16(b[i:]))) / 32768
		ch[(i-44)/2%2] = append(ch[(i-44)/2%2], v)
	}
	return ch
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func TestDecodeWAVFixtures(t *testing.T) {
	ref := referenceS16(t)
	tests := []struct {
		file     string
		channels int
		bits     int
		tol      float64 // vs the 16-bit reference, per sample
	}{
		{"s16.wav", 2, 16, 0},
		{"s24.wav", 2, 24, 0},       // extensible, fact chunk
		{"s32.wav", 2, 32, 0},       // extensible
		{"f32.wav", 2, 32, 0},       // format 3, cbSize, fact chunk
		{"f64.wav", 2, 64, 0},       // 64-bit float
		{"u8.wav", 2, 8, 1.0 / 128}, // 8-bit unsigned: requantised by sox
		{"m8.wav", 1, 8, 1.0 / 128},
		{"c3.wav", 3, 16, 0}, // extensible, 3 channels, same synthesis for the first two
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := decodeFixture(t, tt.file)
			if c.Channels != tt.channels || len(c.Samples) != tt.channels || c.SampleRate != fixtureRate || c.BitDepth != tt.bits {
				t.Fatalf("got %d channels (%d slices), %d Hz, %d bits; want %d, %d Hz, %d bits",
					c.Channels, len(c.Samples), c.SampleRate, c.BitDepth, tt.channels, fixtureRate, tt.bits)
			}
			if c.Frames() != fixtureFrames {
				t.Fatalf("got %d frames, want %d", c.Frames(), fixtureFrames)
			}
			for ch := range min(tt.channels, 2) {
				if d := maxAbsDiff(c.Samples[ch], ref[ch]); d > tt.tol {
					t.Errorf("channel %d differs from the 16-bit reference by %g (tolerance %g)", ch, d, tt.tol)
				}
			}
		})
	}
}

// wavChunk is a RIFF chunk for hand-built test files; size < 0 means len(body).
type wavChunk struct {
	id   string
	size int64
	body []byte
}

func buildRIFF(chunks ...wavChunk) []byte {
	var b bytes.Buffer
	b.WriteString("RIFF")
	b.Write([]byte{0, 0, 0, 0}) // patched below
	b.WriteString("WAVE")
	for _, c := range chunks {
		b.WriteString(c.id)
		size := c.size
		if size < 0 {
			size = int64(len(c.body))
		}
		binary.Write(&b, binary.LittleEndian, uint32(size))
		b.Write(c.body)
		if len(c.body)%2 == 1 && c.size < 0 {
			b.WriteByte(0)
		}
	}
	out := b.Bytes()
	binary.LittleEndian.PutUint32(out[4:], uint32(len(out)-8))
	return out
}

func fmtBody(tag, channels uint16, rate uint32, blockAlign, bits uint16) []byte {
	b := binary.LittleEndian.AppendUint16(nil, tag)
	b = binary.LittleEndian.AppendUint16(b, channels)
	b = binary.LittleEndian.AppendUint32(b, rate)
	b = binary.LittleEndian.AppendUint32(b, rate*uint32(blockAlign))
	b = binary.LittleEndian.AppendUint16(b, blockAlign)
	return binary.LittleEndian.AppendUint16(b, bits)
}

func extensibleBody(channels uint16, rate uint32, blockAlign, bits, validBits, subformat uint16) []byte {
	b := fmtBody(waveExtensible, channels, rate, blockAlign, bits)
	b = binary.LittleEndian.AppendUint16(b, 22)
	b = binary.LittleEndian.AppendUint16(b, validBits)
	b = binary.LittleEndian.AppendUint32(b, 0) // channel mask
	b = binary.LittleEndian.AppendUint16(b, subformat)
	return append(b, ksdataformatTail...)
}

func pcm16Bytes(v ...int16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, uint16(x))
	}
	return b
}

func TestDecodeWAVHandBuilt(t *testing.T) {
	fmt16 := wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 16)}
	data := pcm16Bytes(0, 16384, -32768, 32767)
	want := []float32{0, 0.5, -1, 32767.0 / 32768}
	tests := []struct {
		name string
		file []byte
		want []float32
	}{
		{"plain", buildRIFF(fmt16, wavChunk{"data", -1, data}), want},
		{"unknown chunks skipped", buildRIFF(wavChunk{"LIST", -1, []byte("INFOjunk")}, fmt16,
			wavChunk{"bext", -1, make([]byte, 10)}, wavChunk{"data", -1, data}), want},
		{"odd chunk with pad byte", buildRIFF(fmt16, wavChunk{"junk", -1, []byte{1, 2, 3}}, wavChunk{"data", -1, data}), want},
		{"odd chunk without pad byte", concat(buildRIFF(fmt16), []byte("junk\x03\x00\x00\x00abc"), []byte("data\x08\x00\x00\x00"), data), want},
		{"data size exceeds file (streamed, never patched)", buildRIFF(fmt16, wavChunk{"data", 0xFFFFFFFF, data}), want},
		{"data size zero", buildRIFF(fmt16, wavChunk{"data", 0, nil}), []float32{}},
		{"data size smaller than file: trailing bytes ignored", buildRIFF(fmt16, wavChunk{"data", 4, data}), want[:2]},
		{"fmt chunk with extra bytes", buildRIFF(wavChunk{"fmt ", -1, append(fmtBody(wavePCM, 1, 16000, 2, 16), 0, 0, 9, 9)},
			wavChunk{"data", -1, data}), want},
		{"8-bit unsigned", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 1, 8)},
			wavChunk{"data", -1, []byte{128, 192, 0, 255}}), []float32{0, 0.5, -1, 127.0 / 128}},
		{"24-bit", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 3, 24)},
			wavChunk{"data", -1, []byte{0, 0, 0x40, 0xff, 0xff, 0xff, 0, 0, 0x80}}), []float32{0.5, -1.0 / (1 << 23), -1}},
		{"12-bit left-justified in 16", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 12)},
			wavChunk{"data", -1, pcm16Bytes(0x10<<4, -2048<<4)}), []float32{16.0 / 2048, -1}},
		{"extensible 24 valid bits in 32", buildRIFF(wavChunk{"fmt ", -1, extensibleBody(1, 16000, 4, 32, 24, wavePCM)},
			wavChunk{"data", -1, []byte{0, 0, 0, 0x40, 0, 0, 0, 0xc0}}), []float32{0.5, -0.5}},
		{"extensible float", buildRIFF(wavChunk{"fmt ", -1, extensibleBody(1, 16000, 4, 32, 32, waveFloat)},
			wavChunk{"data", -1, binary.LittleEndian.AppendUint32(nil, math.Float32bits(-0.25))}), []float32{-0.25}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Decode(bytes.NewReader(tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.Channels != 1 || c.SampleRate != 16000 {
				t.Fatalf("got %d channels at %d Hz", c.Channels, c.SampleRate)
			}
			if d := maxAbsDiff(c.Samples[0], tt.want); d != 0 {
				t.Errorf("got %v, want %v", c.Samples[0], tt.want)
			}
		})
	}
}

func TestDecodeWAVStereoDeinterleaves(t *testing.T) {
	file := buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 2, 44100, 4, 16)},
		wavChunk{"data", -1, pcm16Bytes(1<<14, -1<<14, 1<<13, -1<<13)})
	c, err := Decode(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float32{{0.5, 0.25}, {-0.5, -0.25}}
	for ch := range want {
		if d := maxAbsDiff(c.Samples[ch], want[ch]); d != 0 {
			t.Errorf("channel %d: got %v, want %v", ch, c.Samples[ch], want[ch])
		}
	}
	if got := c.Mono(); maxAbsDiff(got, []float32{0, 0}) != 0 {
		t.Errorf("Mono = %v, want zeros", got)
	}
	if got := c.Interleaved(); maxAbsDiff(got, []float32{0.5, -0.5, 0.25, -0.25}) != 0 {
		t.Errorf("Interleaved = %v", got)
	}
}

func TestDecodeWAVBadInput(t *testing.T) {
	fmt16 := wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 16)}
	good := buildRIFF(fmt16, wavChunk{"data", -1, pcm16Bytes(1, 2, 3)})
	nanData := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(math.NaN())))
	tests := []struct {
		name    string
		file    []byte
		target  error
		message string // substring of the error
	}{
		{"empty", nil, ErrTruncated, "empty input"},
		{"truncated RIFF header", good[:10], ErrTruncated, "truncated RIFF header"},
		{"header only", good[:12], ErrTruncated, "no fmt chunk"},
		{"truncated chunk header", good[:16], ErrTruncated, "chunk header: 4 of 8 bytes"},
		{"truncated fmt chunk", good[:30], ErrTruncated, "fmt chunk: 10 of 16 bytes"},
		{"no data chunk", buildRIFF(fmt16), ErrTruncated, "no data chunk"},
		{"data before fmt", buildRIFF(wavChunk{"data", -1, pcm16Bytes(1)}, fmt16), ErrMalformed, "data chunk before fmt"},
		{"two fmt chunks", buildRIFF(fmt16, fmt16), ErrMalformed, "second fmt chunk"},
		{"truncated mid-frame", good[:len(good)-1], ErrTruncated, "data ends 1 bytes into a 2-byte frame after 2 frames"},
		{"declared size not whole frames", buildRIFF(fmt16, wavChunk{"data", 3, pcm16Bytes(1, 2)}), ErrMalformed, "not a whole number"},
		{"truncated unknown chunk", buildRIFF(fmt16, wavChunk{"LIST", 1000, []byte("abc")}), ErrTruncated, `"LIST" chunk of 1000 bytes ends after 3`},
		{"zero channels", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 0, 16000, 2, 16)}, wavChunk{"data", -1, nil}), ErrMalformed, "zero channels"},
		{"zero rate", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 0, 2, 16)}, wavChunk{"data", -1, nil}), ErrMalformed, "zero sample rate"},
		{"zero block align", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 0, 16)}, wavChunk{"data", -1, nil}), ErrMalformed, "block align 0"},
		{"block align not per channel", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 2, 16000, 3, 8)}, wavChunk{"data", -1, nil}), ErrMalformed, "block align 3 does not fit 2 channels"},
		{"bits exceed container", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 24)}, wavChunk{"data", -1, nil}), ErrMalformed, "24 bits per sample in 2-byte"},
		{"zero bits", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 0)}, wavChunk{"data", -1, nil}), ErrMalformed, "0 bits per sample"},
		{"64-bit integer", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 8, 64)}, wavChunk{"data", -1, nil}), ErrUnsupported, "8-byte integer"},
		{"16-bit float", buildRIFF(wavChunk{"fmt ", -1, fmtBody(waveFloat, 1, 16000, 2, 16)}, wavChunk{"data", -1, nil}), ErrUnsupported, "16-bit float"},
		{"A-law", buildRIFF(wavChunk{"fmt ", -1, fmtBody(6, 1, 8000, 1, 8)}, wavChunk{"data", -1, []byte{1}}), ErrUnsupported, "unsupported WAV format 6 (A-law)"},
		{"mu-law", buildRIFF(wavChunk{"fmt ", -1, fmtBody(7, 1, 8000, 1, 8)}, wavChunk{"data", -1, []byte{1}}), ErrUnsupported, "unsupported WAV format 7 (mu-law)"},
		{"unknown format", buildRIFF(wavChunk{"fmt ", -1, fmtBody(0x1234, 1, 8000, 1, 8)}, wavChunk{"data", -1, nil}), ErrUnsupported, "format 4660 (unknown)"},
		{"extensible A-law", buildRIFF(wavChunk{"fmt ", -1, extensibleBody(1, 8000, 1, 8, 8, 6)}, wavChunk{"data", -1, nil}), ErrUnsupported, "format 6 (A-law)"},
		{"extensible foreign GUID", buildRIFF(wavChunk{"fmt ", -1, append(extensibleBody(1, 8000, 2, 16, 16, 1)[:26], make([]byte, 14)...)}, wavChunk{"data", -1, nil}), ErrUnsupported, "subformat GUID"},
		{"extensible short", buildRIFF(wavChunk{"fmt ", -1, extensibleBody(1, 8000, 2, 16, 16, 1)[:18]}, wavChunk{"data", -1, nil}), ErrMalformed, "want 40"},
		{"extensible valid bits > container", buildRIFF(wavChunk{"fmt ", -1, extensibleBody(1, 8000, 2, 16, 20, 1)}, wavChunk{"data", -1, nil}), ErrMalformed, "20 valid bits in a 16-bit"},
		{"fmt too short", buildRIFF(wavChunk{"fmt ", -1, make([]byte, 14)}, wavChunk{"data", -1, nil}), ErrMalformed, "fmt chunk of 14 bytes"},
		{"NaN float", buildRIFF(wavChunk{"fmt ", -1, fmtBody(waveFloat, 1, 16000, 4, 32)}, wavChunk{"data", -1, nanData}), ErrMalformed, "non-finite sample"},
		{"RIFX", append([]byte("RIFX\x00\x00\x00\x00WAVE"), make([]byte, 8)...), ErrUnsupported, "RIFX"},
		{"RF64", []byte("RF64\xff\xff\xff\xffWAVEds64"), ErrUnsupported, "RF64"},
		{"AVI", []byte("RIFF\x00\x00\x00\x00AVI LIST"), ErrUnsupported, `"AVI "`},
		{"Ogg", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00"), ErrUnsupported, "Ogg"},
		{"MP3 frame", []byte{0xff, 0xfb, 0x90, 0x64, 0, 0, 0, 0, 0, 0, 0, 0}, ErrUnsupported, "MPEG audio"},
		{"ID3 then MP3", append([]byte("ID3\x04\x00\x00\x00\x00\x00\x02ab"), 0xff, 0xfb, 0x90, 0x64), ErrUnsupported, "not FLAC"},
		{"text", []byte("hello, world"), ErrUnsupported, "unrecognised format"},
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

// A failing reader's error comes back as itself, not as "truncated".
func TestDecodeWAVReadErrorPropagates(t *testing.T) {
	boom := errors.New("connection reset")
	file := buildRIFF(fmtChunkFor16k(), wavChunk{"LIST", -1, make([]byte, 10)}, wavChunk{"data", -1, pcm16Bytes(1, 2, 3, 4)})
	for _, cut := range []int{14, 30, 40, 50, len(file) - 3} {
		r := io.MultiReader(bytes.NewReader(file[:cut]), iotest.ErrReader(boom))
		if _, err := Decode(r); !errors.Is(err, boom) || errors.Is(err, ErrTruncated) {
			t.Errorf("cut at %d: got %v, want the reader's error", cut, err)
		}
	}
}

// A header claiming gigabytes must not make the decoder allocate them.
func TestDecodeWAVAbsurdSizesAllocateLittle(t *testing.T) {
	tests := []struct {
		name string
		file []byte
	}{
		{"4 GiB data, 65535 channels", buildRIFF(wavChunk{"fmt ", -1, fmtBody(wavePCM, 65535, 16000, 65535, 8)},
			wavChunk{"data", 0xFFFFFFFF, make([]byte, 65535)})},
		{"4 GiB fmt chunk", buildRIFF(wavChunk{"fmt ", 0xFFFFFFFF, fmtBody(wavePCM, 1, 16000, 2, 16)})},
		{"4 GiB unknown chunk", buildRIFF(fmtChunkFor16k(), wavChunk{"junk", 0xFFFFFFFF, []byte("x")})},
		{"4 GiB mono data", buildRIFF(fmtChunkFor16k(), wavChunk{"data", 0xFFFFFFFE, pcm16Bytes(1, 2)})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Decode(bytes.NewReader(tt.file))
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
				t.Errorf("allocated %d MiB for a %d-byte file (err %v)", got>>20, len(tt.file), err)
			}
		})
	}
}

func fmtChunkFor16k() wavChunk { return wavChunk{"fmt ", -1, fmtBody(wavePCM, 1, 16000, 2, 16)} }

func TestDecodeLimit(t *testing.T) {
	data := make([]byte, 2*16000) // 1 s of 16 kHz mono
	file := buildRIFF(fmtChunkFor16k(), wavChunk{"data", -1, data})
	if _, err := DecodeLimit(bytes.NewReader(file), time.Second); err != nil {
		t.Errorf("1 s clip with a 1 s limit: %v", err)
	}
	if _, err := DecodeLimit(bytes.NewReader(file), 999*time.Millisecond); !errors.Is(err, ErrTooLong) {
		t.Errorf("1 s clip with a 999 ms limit: got %v, want ErrTooLong", err)
	}
}

func TestWriteWAVRoundTrip(t *testing.T) {
	// Every int16 value round-trips exactly through PCM16.
	all := make([]float32, 65536)
	for i := range all {
		all[i] = float32(int16(i-32768)) / 32768
	}
	odd := []float32{0.1, -0.2, 0.3, 1e-9, -1, 0.999}
	tests := []struct {
		name     string
		samples  []float32
		rate     int
		channels int
		format   Format
		want     []float32
	}{
		{"pcm16 all values", all, 16000, 1, PCM16, all},
		{"pcm16 clamps and rounds", []float32{2, -2, 0.5 / 32768, -0.6 / 32768, float32(math.NaN()), 1}, 8000, 2, PCM16,
			[]float32{32767.0 / 32768, -1, 1.0 / 32768, -1.0 / 32768, 0, 32767.0 / 32768}},
		{"float32 exact", odd, 44100, 3, Float32, odd},
		{"float32 empty", nil, 48000, 1, Float32, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := WriteWAV(&b, tt.samples, tt.rate, tt.channels, tt.format); err != nil {
				t.Fatal(err)
			}
			c, err := Decode(&b)
			if err != nil {
				t.Fatal(err)
			}
			if c.SampleRate != tt.rate || c.Channels != tt.channels {
				t.Fatalf("got %d Hz × %d, want %d × %d", c.SampleRate, c.Channels, tt.rate, tt.channels)
			}
			got := c.Interleaved()
			if len(got) != len(tt.want) || (len(got) > 0 && maxAbsDiff(got, tt.want) != 0) {
				t.Errorf("round trip: got %v, want %v", head(got), head(tt.want))
			}
		})
	}
}

// The writer's output for a fixture's content is byte-identical to sox's
// canonical 16-bit file.
func TestWriteWAVMatchesSox(t *testing.T) {
	want, err := os.ReadFile("testdata/s16.wav")
	if err != nil {
		t.Fatal(err)
	}
	c := decodeFixture(t, "s16.wav")
	var b bytes.Buffer
	if err := WriteWAV(&b, c.Interleaved(), c.SampleRate, c.Channels, PCM16); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("WriteWAV output (%d bytes) differs from sox's s16.wav (%d bytes)", b.Len(), len(want))
	}
}

func TestWriteWAVBadArguments(t *testing.T) {
	nan := []float32{float32(math.NaN())}
	tests := []struct {
		name     string
		samples  []float32
		rate     int
		channels int
		format   Format
	}{
		{"zero channels", make([]float32, 2), 16000, 0, PCM16},
		{"zero rate", make([]float32, 2), 0, 1, PCM16},
		{"partial frame", make([]float32, 3), 16000, 2, PCM16},
		{"unknown format", make([]float32, 2), 16000, 1, Format(9)},
		{"frame too wide", make([]float32, 40000), 16000, 20000, Float32},
		{"NaN float", nan, 16000, 1, Float32},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := WriteWAV(&bytes.Buffer{}, tt.samples, tt.rate, tt.channels, tt.format); err == nil {
				t.Error("no error")
			}
		})
	}
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func head(s []float32) []float32 { return s[:min(len(s), 8)] }
