package data

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr/audio"
)

// ErrIncompleteAudio marks an audio file whose header promises more data
// than the file holds: typically a write cut short by a crash.
var ErrIncompleteAudio = errors.New("incomplete audio file")

// wavHeader is what chorus needs from a RIFF/WAVE header.
type wavHeader struct {
	Format     uint16 // 1 PCM, 3 IEEE float (WAVE_FORMAT_EXTENSIBLE resolved)
	Channels   int
	Rate       int
	Bits       int
	BlockAlign int
	DataOffset int64 // byte offset of the first sample
	DataSize   int64 // bytes of sample data, clamped to what the file holds
	Truncated  bool  // the data chunk claims more bytes than the file has
}

// Duration is the playing time in seconds.
func (h wavHeader) Duration() float64 {
	if h.BlockAlign == 0 || h.Rate == 0 {
		return 0
	}
	return float64(h.DataSize/int64(h.BlockAlign)) / float64(h.Rate)
}

const (
	wavPCM        = 1
	wavFloat      = 3
	wavExtensible = 0xFFFE
	// wavStreamSize is the data size that streaming writers (espeak-ng
	// and sox writing to a pipe) leave in place of the real one.
	wavStreamSize = 0xFFFFFFFF
)

// parseWAVHeader reads the RIFF chunks of a WAVE file up to the data chunk.
// size is the file's length, used to detect truncation and to size a data
// chunk written by a streaming writer.
func parseWAVHeader(r io.Reader, size int64) (wavHeader, error) {
	var h wavHeader
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return h, fmt.Errorf("wav header: %w", err)
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return h, errors.New("wav header: not a RIFF/WAVE file")
	}
	off := int64(12)
	haveFmt := false
	for {
		var ch [8]byte
		if _, err := io.ReadFull(r, ch[:]); err != nil {
			return h, fmt.Errorf("wav header: no data chunk: %w", err)
		}
		off += 8
		id := string(ch[0:4])
		n := int64(binary.LittleEndian.Uint32(ch[4:8]))
		switch id {
		case "fmt ":
			if n < 16 || n > 1<<16 {
				return h, fmt.Errorf("wav header: fmt chunk of %d bytes", n)
			}
			buf := make([]byte, n+n%2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return h, fmt.Errorf("wav header: fmt chunk: %w", err)
			}
			off += int64(len(buf))
			h.Format = binary.LittleEndian.Uint16(buf[0:2])
			h.Channels = int(binary.LittleEndian.Uint16(buf[2:4]))
			h.Rate = int(binary.LittleEndian.Uint32(buf[4:8]))
			h.BlockAlign = int(binary.LittleEndian.Uint16(buf[12:14]))
			h.Bits = int(binary.LittleEndian.Uint16(buf[14:16]))
			if h.Format == wavExtensible {
				if n < 40 {
					return h, errors.New("wav header: short extensible fmt chunk")
				}
				h.Format = binary.LittleEndian.Uint16(buf[24:26])
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return h, errors.New("wav header: data chunk before fmt chunk")
			}
			if h.Channels < 1 || h.Rate < 1 || h.BlockAlign < 1 || h.Bits < 1 {
				return h, fmt.Errorf("wav header: bad format (%d channels, %d Hz, %d-byte frames, %d bits)",
					h.Channels, h.Rate, h.BlockAlign, h.Bits)
			}
			h.DataOffset = off
			avail := size - off
			if avail < 0 {
				avail = 0
			}
			switch {
			case n == wavStreamSize:
				n = avail
			case n > avail:
				h.Truncated = true
				n = avail
			}
			h.DataSize = n
			return h, nil
		default:
			if _, err := io.CopyN(io.Discard, r, n+n%2); err != nil {
				return h, fmt.Errorf("wav header: %s chunk: %w", id, err)
			}
			off += n + n%2
		}
	}
}

// readWAVHeaderFile opens path and parses its header.
func readWAVHeaderFile(path string) (wavHeader, error) {
	f, err := os.Open(path)
	if err != nil {
		return wavHeader{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return wavHeader{}, err
	}
	return parseWAVHeader(f, st.Size())
}

// wavDuration returns a WAVE file's duration from its header, failing with
// ErrIncompleteAudio when the file is shorter than its header says.
func wavDuration(path string) (float64, error) {
	h, err := readWAVHeaderFile(path)
	if err != nil {
		return 0, err
	}
	if h.Truncated {
		return 0, fmt.Errorf("%s: %w", filepath.Base(path), ErrIncompleteAudio)
	}
	return h.Duration(), nil
}

// readMono decodes the sox output of the synthesis pipeline (any WAV or FLAC asr/audio reads)
// to mono float32, refusing a rate other than want: the noise and gain stage works at the
// corpus rate. Decoding is asr/audio's, the one decoder the server also uses.
func readMono(path string, want int) ([]float32, error) {
	c, err := audio.DecodeFile(path)
	if err != nil {
		return nil, err
	}
	if c.SampleRate != want {
		return nil, fmt.Errorf("%s: %d Hz, want %d", filepath.Base(path), c.SampleRate, want)
	}
	return c.Mono(), nil
}

// encodeWAV16 encodes mono samples as 16-bit PCM WAVE, rounding x·32767 to the
// nearest level and clamping to [-1, 1]. It does not dither, so the same
// samples always give the same bytes. It is kept beside audio.WriteWAV (which
// scales by 32768, the exact inverse of its decoder) because the corpus's
// bytes, and so resumed training runs' data, depend on this scaling.
func encodeWAV16(samples []float32, rate int) []byte {
	dataSize := 2 * len(samples)
	b := make([]byte, 44+dataSize)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+dataSize))
	copy(b[8:], "WAVE")
	copy(b[12:], "fmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], wavPCM)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(dataSize))
	for i, s := range samples {
		v := math.Round(float64(s) * 32767)
		v = max(-32768, min(32767, v))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(v)))
	}
	return b
}

// writeFileAtomic writes data to path through a temporary file in the same
// folder, synced and renamed into place, so readers (and a resumed run)
// see either the old file or the complete new one.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
