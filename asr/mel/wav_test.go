package mel

import (
	"encoding/binary"
	"fmt"
	"os"
)

// readWavPCM16 reads a mono 16-bit PCM WAV file at SampleRate and scales it by 1/32768, the
// way whisper's load_audio converts s16le. Only what the fixture needs is supported.
func readWavPCM16(path string) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, fmt.Errorf("wav: not a RIFF/WAVE file")
	}
	var fmtOK bool
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8:]
		if size > len(body) {
			return nil, fmt.Errorf("wav: chunk %q past end of file", id)
		}
		body = body[:size]
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("wav: short fmt chunk")
			}
			format := binary.LittleEndian.Uint16(body[0:])
			channels := binary.LittleEndian.Uint16(body[2:])
			rate := binary.LittleEndian.Uint32(body[4:])
			bits := binary.LittleEndian.Uint16(body[14:])
			if format != 1 || channels != 1 || rate != SampleRate || bits != 16 {
				return nil, fmt.Errorf("wav: want PCM16 mono %d Hz, got format %d, %d ch, %d Hz, %d bit",
					SampleRate, format, channels, rate, bits)
			}
			fmtOK = true
		case "data":
			if !fmtOK {
				return nil, fmt.Errorf("wav: data before fmt")
			}
			out := make([]float32, size/2)
			for i := range out {
				out[i] = float32(int16(binary.LittleEndian.Uint16(body[2*i:]))) / 32768
			}
			return out, nil
		}
		p += 8 + size + size%2
	}
	return nil, fmt.Errorf("wav: no data chunk")
}
