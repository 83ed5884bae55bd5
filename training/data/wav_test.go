package data

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rawWAV builds a WAVE file with the given format fields and sample bytes,
// with an optional extra chunk before the data chunk.
func rawWAV(format uint16, channels, rate, bits int, data []byte, extra string, dataSize uint32) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(0))
	b.WriteString("WAVE")
	b.WriteString("fmt ")
	if format == wavExtensible {
		le(uint32(40))
	} else {
		le(uint32(16))
	}
	le(format)
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * channels * bits / 8))
	le(uint16(channels * bits / 8))
	le(uint16(bits))
	if format == wavExtensible {
		le(uint16(22))
		le(uint16(bits))
		le(uint32(0))
		le(uint16(wavFloat)) // sub-format GUID begins with the format code
		b.Write(make([]byte, 14))
	}
	if extra != "" {
		b.WriteString("LIST")
		le(uint32(len(extra)))
		b.WriteString(extra)
		if len(extra)%2 == 1 {
			b.WriteByte(0)
		}
	}
	b.WriteString("data")
	le(dataSize)
	b.Write(data)
	return b.Bytes()
}

func TestWAVRoundTrip(t *testing.T) {
	in := []float32{0, 0.5, -0.5, 1, -1, 2, -2, 0.25}
	path := filepath.Join(t.TempDir(), "x.wav")
	if err := os.WriteFile(path, encodeWAV16(in, 16000), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := readMono(path, 16000)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("len %d, want %d", len(out), len(in))
	}
	for i, v := range in {
		want := float32(math.Max(-1, math.Min(1, float64(v))))
		if math.Abs(float64(out[i]-want)) > 1.0/16384 {
			t.Errorf("sample %d = %v, want %v", i, out[i], want)
		}
	}
	d, err := wavDuration(path)
	if err != nil || d != float64(len(in))/16000 {
		t.Errorf("duration %v, %v", d, err)
	}
}

func TestParseWAVHeader(t *testing.T) {
	pcm16 := make([]byte, 3200) // 0.1 s mono 16 kHz
	tests := []struct {
		name      string
		file      []byte
		dur       float64
		truncated bool
		wantErr   bool
	}{
		{"pcm16", rawWAV(wavPCM, 1, 16000, 16, pcm16, "", 3200), 0.1, false, false},
		{"stereo 8k", rawWAV(wavPCM, 2, 8000, 16, make([]byte, 3200), "", 3200), 0.1, false, false},
		{"extra chunk odd size", rawWAV(wavPCM, 1, 16000, 16, pcm16, "abc", 3200), 0.1, false, false},
		{"extensible float", rawWAV(wavExtensible, 1, 16000, 32, make([]byte, 6400), "", 6400), 0.1, false, false},
		{"streaming size", rawWAV(wavPCM, 1, 16000, 16, pcm16, "", wavStreamSize), 0.1, false, false},
		{"truncated", rawWAV(wavPCM, 1, 16000, 16, pcm16[:1600], "", 3200), 0.05, true, false},
		{"not riff", []byte("RIFX\x00\x00\x00\x00WAVE"), 0, false, true},
		{"no data chunk", rawWAV(wavPCM, 1, 16000, 16, nil, "", 0)[:36], 0, false, true},
		{"zero channels", rawWAV(wavPCM, 0, 16000, 16, pcm16, "", 3200), 0, false, true},
		{"empty", nil, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := parseWAVHeader(bytes.NewReader(tt.file), int64(len(tt.file)))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if math.Abs(h.Duration()-tt.dur) > 1e-9 || h.Truncated != tt.truncated {
				t.Errorf("duration %v truncated %v, want %v %v", h.Duration(), h.Truncated, tt.dur, tt.truncated)
			}
		})
	}
}

func TestWAVDurationIncomplete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.wav")
	full := encodeWAV16(make([]float32, 1000), 16000)
	if err := os.WriteFile(path, full[:500], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := wavDuration(path); !errors.Is(err, ErrIncompleteAudio) {
		t.Fatalf("err = %v, want ErrIncompleteAudio", err)
	}
}

func TestReadMonoRate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.wav")
	if err := os.WriteFile(path, encodeWAV16(make([]float32, 80), 8000), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMono(path, 16000); err == nil || !strings.Contains(err.Error(), "8000 Hz") {
		t.Fatalf("err = %v, want a rate mismatch", err)
	}
	if _, err := readMono(filepath.Join(t.TempDir(), "missing.wav"), 16000); err == nil {
		t.Fatal("missing file read without error")
	}
}

func FuzzParseWAVHeader(f *testing.F) {
	f.Add(encodeWAV16(make([]float32, 4), 16000))
	f.Add(rawWAV(wavExtensible, 2, 44100, 32, make([]byte, 16), "info", 16))
	f.Add(rawWAV(wavPCM, 1, 8000, 16, nil, "", wavStreamSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseWAVHeader(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if h.DataOffset+h.DataSize > int64(len(b)) || h.DataSize < 0 {
			t.Fatalf("data %d+%d beyond %d bytes", h.DataOffset, h.DataSize, len(b))
		}
		if d := h.Duration(); d < 0 || math.IsNaN(d) {
			t.Fatalf("duration %v", d)
		}
	})
}

// flacHeader builds the start of a FLAC file: marker and STREAMINFO.
func flacHeader(rate, channels, bits int, total uint64) []byte {
	b := []byte("fLaC")
	b = append(b, 0x80, 0, 0, 34) // last block, STREAMINFO, 34 bytes
	si := make([]byte, 34)
	v := uint64(rate)<<44 | uint64(channels-1)<<41 | uint64(bits-1)<<36 | total
	binary.BigEndian.PutUint64(si[10:18], v)
	return append(b, si...)
}

func TestParseFLACHeader(t *testing.T) {
	id3 := append([]byte("ID3\x04\x00\x00\x00\x00\x00\x05"), []byte("12345")...)
	tests := []struct {
		name    string
		file    []byte
		want    flacInfo
		wantErr bool
	}{
		{"plain", flacHeader(16000, 1, 16, 32000), flacInfo{16000, 1, 16, 32000}, false},
		{"stereo 44k1", flacHeader(44100, 2, 24, 44100), flacInfo{44100, 2, 24, 44100}, false},
		{"id3 prefix", append(id3, flacHeader(16000, 1, 16, 160)...), flacInfo{16000, 1, 16, 160}, false},
		{"unknown length", flacHeader(16000, 1, 16, 0), flacInfo{16000, 1, 16, 0}, false},
		{"not flac", []byte("OggS\x00\x00"), flacInfo{}, true},
		{"truncated", flacHeader(16000, 1, 16, 1)[:20], flacInfo{}, true},
		{"zero rate", flacHeader(0, 1, 16, 1), flacInfo{}, true},
		{"first block not streaminfo", append([]byte("fLaC\x04\x00\x00\x22"), make([]byte, 34)...), flacInfo{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFLACHeader(bytes.NewReader(tt.file))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseFLACHeader(f *testing.F) {
	f.Add(flacHeader(16000, 1, 16, 16000))
	f.Add([]byte("ID3\x04\x00\x00\x7f\x7f\x7f\x7f"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fi, err := parseFLACHeader(bytes.NewReader(b))
		if err == nil && (fi.Rate <= 0 || fi.Channels < 1 || fi.Channels > 8 || fi.Bits < 1 || fi.Bits > 32) {
			t.Fatalf("accepted %+v", fi)
		}
	})
}

func TestAudioDuration(t *testing.T) {
	dir := t.TempDir()
	wav := filepath.Join(dir, "a.wav")
	os.WriteFile(wav, encodeWAV16(make([]float32, 8000), 16000), 0o644)
	fl := filepath.Join(dir, "b.flac")
	os.WriteFile(fl, flacHeader(16000, 1, 16, 24000), 0o644)
	for path, want := range map[string]float64{wav: 0.5, fl: 1.5} {
		d, err := AudioDuration(t.Context(), path)
		if err != nil || d != want {
			t.Errorf("AudioDuration(%s) = %v, %v; want %v", filepath.Base(path), d, err, want)
		}
	}
	if _, err := exec.LookPath("sox"); err != nil {
		t.Log("sox not installed: real FLAC and soxi fallback not checked")
		return
	}
	real := filepath.Join(dir, "c.flac")
	if out, err := exec.Command("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", real, "synth", "0.75", "sine", "440").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	if d, err := AudioDuration(t.Context(), real); err != nil || d != 0.75 {
		t.Errorf("sox-written FLAC: %v, %v", d, err)
	}
	au := filepath.Join(dir, "d.au")
	if out, err := exec.Command("sox", "-n", "-r", "8000", "-c", "1", au, "synth", "0.25", "sine", "440").CombinedOutput(); err != nil {
		t.Fatalf("sox: %v %s", err, out)
	}
	if d, err := AudioDuration(t.Context(), au); err != nil || math.Abs(d-0.25) > 1e-6 {
		t.Errorf("soxi fallback: %v, %v", d, err)
	}
}
