package audio

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// WAV format tags (ref: Microsoft mmreg.h; RFC 2361 appendix A).
const (
	wavePCM        = 0x0001
	waveFloat      = 0x0003
	waveExtensible = 0xFFFE
)

// waveFormatNames names format codes that turn up in the wild, so an
// unsupported upload is reported as "A-law" rather than as a bare number.
var waveFormatNames = map[uint16]string{
	0x0002: "Microsoft ADPCM",
	0x0006: "A-law",
	0x0007: "mu-law",
	0x0011: "IMA ADPCM",
	0x0031: "GSM 6.10",
	0x0050: "MPEG",
	0x0055: "MP3",
	0x0161: "WMA",
	0x2000: "AC-3",
}

// ksdataformatTail is bytes 2..15 of every KSDATAFORMAT_SUBTYPE_* GUID in
// WAVE_FORMAT_EXTENSIBLE: the subformat GUID is the format tag followed by
// 00000000-0010-0080-00AA00389B71 (ref: Microsoft ksmedia.h,
// DEFINE_WAVEFORMATEX_GUID).
const ksdataformatTail = "\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

// wavFormat is the validated content of a fmt chunk.
type wavFormat struct {
	tag        uint16 // wavePCM or waveFloat (an extensible subformat resolved)
	channels   int
	rate       int
	blockAlign int // bytes per sample frame
	container  int // bytes per sample: blockAlign / channels
	bits       int // valid bits per sample
}

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

// decodeWAV parses a RIFF/WAVE stream whose 12-byte header br has only peeked.
//
// It reads chunks in order, skipping any it does not know (LIST, fact, bext,
// cue …), until the data chunk, and stops there: nothing after the audio is
// needed. A data chunk that claims more bytes than the stream holds is read to
// the end of the stream, because writers that stream to a pipe never go back
// to patch the size (ffmpeg leaves 0xFFFFFFFF); a stream that then ends inside
// a sample frame is reported as truncated.
func decodeWAV(br *bufio.Reader, maxDur time.Duration, out sink) error {
	if _, err := br.Discard(12); err != nil {
		return fmt.Errorf("wav: truncated RIFF header: %w", ErrTruncated)
	}
	var f *wavFormat
	for {
		var hdr [8]byte
		n, err := io.ReadFull(br, hdr[:])
		if err != nil {
			if n == 0 && errors.Is(err, io.EOF) {
				if f == nil {
					return fmt.Errorf("wav: no fmt chunk before end of input: %w", ErrTruncated)
				}
				return fmt.Errorf("wav: no data chunk before end of input: %w", ErrTruncated)
			}
			return fmt.Errorf("wav: chunk header: %d of 8 bytes: %w", n, short(err))
		}
		id, size := string(hdr[:4]), int64(le32(hdr[4:]))
		switch id {
		case "fmt ":
			if f != nil {
				return fmt.Errorf("wav: second fmt chunk: %w", ErrMalformed)
			}
			if f, err = readFmt(br, size); err != nil {
				return err
			}
		case "data":
			if f == nil {
				return fmt.Errorf("wav: data chunk before fmt chunk: %w", ErrMalformed)
			}
			return readData(br, f, size, maxDur, out)
		default:
			if n, err := io.CopyN(io.Discard, br, size); err != nil {
				return fmt.Errorf("wav: %q chunk of %d bytes ends after %d: %w", id, size, n, short(err))
			}
		}
		if size%2 == 1 {
			skipPad(br)
		}
	}
}

// skipPad consumes the pad byte RIFF puts after an odd-sized chunk. Some
// writers omit it; then the next byte starts a chunk ID, which is printable
// ASCII, whereas a real pad byte is zero. A missing pad at end of input is fine.
func skipPad(br *bufio.Reader) {
	b, _ := br.Peek(4)
	if len(b) == 0 {
		return
	}
	if b[0] != 0 && len(b) == 4 && isChunkID(b) {
		return
	}
	_, _ = br.Discard(1) // cannot fail: Peek showed the byte
}

// short maps the end of input to ErrTruncated and passes real read errors
// (a dropped connection, say) through unchanged.
func short(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

func isChunkID(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// readFmt reads and validates a fmt chunk of the given declared size. Only the
// first 40 bytes (WAVEFORMATEXTENSIBLE) are kept, so a huge declared size
// costs no allocation.
func readFmt(br *bufio.Reader, size int64) (*wavFormat, error) {
	if size < 16 {
		return nil, fmt.Errorf("wav: fmt chunk of %d bytes, want at least 16: %w", size, ErrMalformed)
	}
	var b [40]byte
	k := min(size, int64(len(b)))
	if n, err := io.ReadFull(br, b[:k]); err != nil {
		return nil, fmt.Errorf("wav: fmt chunk: %d of %d bytes: %w", n, k, short(err))
	}
	if n, err := io.CopyN(io.Discard, br, size-k); err != nil {
		return nil, fmt.Errorf("wav: fmt chunk: %d of %d bytes: %w", k+n, size, short(err))
	}
	f := &wavFormat{
		tag:        le16(b[0:]),
		channels:   int(le16(b[2:])),
		rate:       int(le32(b[4:])),
		blockAlign: int(le16(b[12:])),
		bits:       int(le16(b[14:])),
	}
	if f.tag == waveExtensible {
		// WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) subFormat(16).
		if size < 40 || le16(b[16:]) < 22 {
			return nil, fmt.Errorf("wav: WAVE_FORMAT_EXTENSIBLE fmt chunk of %d bytes, want 40: %w", size, ErrMalformed)
		}
		if string(b[26:40]) != ksdataformatTail {
			return nil, fmt.Errorf("wav: extensible subformat GUID % x: %w", b[24:40], ErrUnsupported)
		}
		f.tag = le16(b[24:])
		if valid := int(le16(b[18:])); valid != 0 {
			if valid > f.bits {
				return nil, fmt.Errorf("wav: %d valid bits in a %d-bit sample: %w", valid, f.bits, ErrMalformed)
			}
			f.bits = valid
		}
	}
	if f.tag != wavePCM && f.tag != waveFloat {
		name := waveFormatNames[f.tag]
		if name == "" {
			name = "unknown"
		}
		return nil, fmt.Errorf("wav: unsupported WAV format %d (%s): %w", f.tag, name, ErrUnsupported)
	}
	if f.channels == 0 {
		return nil, fmt.Errorf("wav: zero channels: %w", ErrMalformed)
	}
	if f.rate == 0 {
		return nil, fmt.Errorf("wav: zero sample rate: %w", ErrMalformed)
	}
	if f.blockAlign == 0 || f.blockAlign%f.channels != 0 {
		return nil, fmt.Errorf("wav: block align %d does not fit %d channels: %w", f.blockAlign, f.channels, ErrMalformed)
	}
	f.container = f.blockAlign / f.channels
	switch {
	case f.tag == waveFloat && (f.container == 4 && f.bits == 32 || f.container == 8 && f.bits == 64):
	case f.tag == waveFloat:
		return nil, fmt.Errorf("wav: %d-bit float in %d-byte samples: %w", f.bits, f.container, ErrUnsupported)
	case f.container > 4:
		return nil, fmt.Errorf("wav: %d-byte integer samples: %w", f.container, ErrUnsupported)
	case f.bits < 1 || f.bits > 8*f.container:
		return nil, fmt.Errorf("wav: %d bits per sample in %d-byte samples: %w", f.bits, f.container, ErrMalformed)
	}
	return f, nil
}

// readData decodes a data chunk of declared size into out, 64 KiB at a time.
// Memory grows with the bytes actually read, never with the declared size.
func readData(br *bufio.Reader, f *wavFormat, size int64, maxDur time.Duration, out sink) error {
	limit := maxFrames(maxDur, f.rate)
	if err := out.begin(f.rate, f.channels, f.bits, size/int64(f.blockAlign)); err != nil {
		return err
	}
	buf := make([]byte, max(1, (64<<10)/f.blockAlign)*f.blockAlign)
	block := make([][]float32, f.channels)
	for ch := range block {
		block[ch] = make([]float32, len(buf)/f.blockAlign)
	}
	var frames int64
	for remaining := size; remaining > 0; {
		n, err := io.ReadFull(br, buf[:min(int64(len(buf)), remaining)])
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			return fmt.Errorf("wav: read data: %w", err)
		}
		remaining -= int64(n)
		whole := n / f.blockAlign
		if frames+int64(whole) > limit {
			return fmt.Errorf("wav: longer than %v: %w", maxDur, ErrTooLong)
		}
		if err := decodeFrames(block, buf[:whole*f.blockAlign], f); err != nil {
			return fmt.Errorf("wav: frame %d: %w", frames, err)
		}
		if err := out.write(block); err != nil {
			return err
		}
		frames += int64(whole)
		if rest := n - whole*f.blockAlign; rest != 0 {
			if err == nil {
				return fmt.Errorf("wav: data chunk of %d bytes is not a whole number of %d-byte frames: %w",
					size, f.blockAlign, ErrMalformed)
			}
			return fmt.Errorf("wav: data ends %d bytes into a %d-byte frame after %d frames: %w",
				rest, f.blockAlign, frames, ErrTruncated)
		}
		if eof {
			break // declared size exceeds the stream: keep what is there
		}
	}
	return nil
}

// maxFrames converts a duration limit to a frame count (no limit: MaxInt64).
func maxFrames(maxDur time.Duration, rate int) int64 {
	if maxDur <= 0 {
		return math.MaxInt64
	}
	f := maxDur.Seconds() * float64(rate)
	if f >= math.MaxInt64/2 {
		return math.MaxInt64
	}
	return int64(math.Ceil(f))
}

// decodeFrames decodes whole interleaved frames from b into block, one slice
// per channel, each resliced to the number of frames. Integer samples are
// left-justified in their container (the WAV rule for PCM whose bits are not
// a multiple of 8, and for extensible valid bits), so each is widened to a
// left-justified int32 and scaled by 2^-31: exactly x / 2^(bits-1) for the
// sample's own width.
func decodeFrames(block [][]float32, b []byte, f *wavFormat) error {
	cs := f.container
	frames := len(b) / f.blockAlign
	const scale31 = 1.0 / (1 << 31)
	for ch := range block {
		dst := block[ch][:frames]
		for i := range dst {
			off := i*f.blockAlign + ch*cs
			s := b[off : off+cs]
			var v float32
			switch {
			case f.tag == waveFloat && cs == 4:
				v = math.Float32frombits(le32(s))
			case f.tag == waveFloat:
				v = float32(math.Float64frombits(binary.LittleEndian.Uint64(s)))
			case cs == 1:
				v = (float32(s[0]) - 128) / 128
			case cs == 2:
				v = float32(int32(uint32(s[0])<<16|uint32(s[1])<<24)) * scale31
			case cs == 3:
				v = float32(int32(uint32(s[0])<<8|uint32(s[1])<<16|uint32(s[2])<<24)) * scale31
			default:
				v = float32(int32(le32(s))) * scale31
			}
			if f.tag == waveFloat && (math.IsNaN(float64(v)) || math.IsInf(float64(v), 0)) {
				return fmt.Errorf("non-finite sample %v in channel %d: %w", v, ch, ErrMalformed)
			}
			dst[i] = v
		}
		block[ch] = dst
	}
	return nil
}

// Format is a WAV sample encoding that WriteWAV can produce.
type Format int

const (
	// PCM16 is 16-bit signed integer PCM (format tag 1): what most tools and
	// clients exchange.
	PCM16 Format = iota
	// Float32 is 32-bit IEEE float (format tag 3): lossless for this package's
	// samples.
	Float32
)

// WriteWAV writes interleaved samples (frame-major: L0 R0 L1 R1 …) as a
// canonical RIFF/WAVE file. PCM16 clamps to [-1, 1) and rounds x*32768 to the
// nearest integer, the inverse of the decoder's /32768, so 16-bit audio
// round-trips exactly (NaN becomes 0). Float32 writes a fact chunk, as the
// WAV spec asks of non-PCM formats, and refuses NaN and infinities, which
// Decode would reject.
func WriteWAV(w io.Writer, samples []float32, rate, channels int, format Format) error {
	if channels < 1 || channels > math.MaxUint16 {
		return fmt.Errorf("write wav: %d channels", channels)
	}
	if rate < 1 || rate > math.MaxUint32 {
		return fmt.Errorf("write wav: sample rate %d", rate)
	}
	if len(samples)%channels != 0 {
		return fmt.Errorf("write wav: %d samples are not whole frames of %d channels", len(samples), channels)
	}
	if format == Float32 {
		for i, v := range samples {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				return fmt.Errorf("write wav: non-finite sample %v at index %d", v, i)
			}
		}
	}
	var bytesPer int
	var tag uint16
	switch format {
	case PCM16:
		bytesPer, tag = 2, wavePCM
	case Float32:
		bytesPer, tag = 4, waveFloat
	default:
		return fmt.Errorf("write wav: unknown format %d", format)
	}
	blockAlign := bytesPer * channels
	if blockAlign > math.MaxUint16 {
		return fmt.Errorf("write wav: %d-byte frames exceed the format's block align", blockAlign)
	}
	dataSize := int64(len(samples)) * int64(bytesPer)
	fmtSize, factSize := 16, 0
	if format == Float32 {
		fmtSize, factSize = 18, 12 // cbSize = 0; fact chunk header + frame count
	}
	riffSize := 4 + (8 + int64(fmtSize)) + int64(factSize) + 8 + dataSize
	if riffSize > math.MaxUint32 {
		return fmt.Errorf("write wav: %d bytes of audio exceed the 4 GiB RIFF limit", dataSize)
	}

	h := make([]byte, 0, 12+8+fmtSize+factSize+8)
	h = append(h, "RIFF"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(riffSize))
	h = append(h, "WAVEfmt "...)
	h = binary.LittleEndian.AppendUint32(h, uint32(fmtSize))
	h = binary.LittleEndian.AppendUint16(h, tag)
	h = binary.LittleEndian.AppendUint16(h, uint16(channels))
	h = binary.LittleEndian.AppendUint32(h, uint32(rate))
	h = binary.LittleEndian.AppendUint32(h, uint32(rate*blockAlign))
	h = binary.LittleEndian.AppendUint16(h, uint16(blockAlign))
	h = binary.LittleEndian.AppendUint16(h, uint16(8*bytesPer))
	if format == Float32 {
		h = binary.LittleEndian.AppendUint16(h, 0)
		h = append(h, "fact"...)
		h = binary.LittleEndian.AppendUint32(h, 4)
		h = binary.LittleEndian.AppendUint32(h, uint32(len(samples)/channels))
	}
	h = append(h, "data"...)
	h = binary.LittleEndian.AppendUint32(h, uint32(dataSize))
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(h); err != nil {
		return fmt.Errorf("write wav header: %w", err)
	}
	var b [4]byte
	for _, v := range samples {
		if format == PCM16 {
			binary.LittleEndian.PutUint16(b[:], uint16(toPCM16(v)))
		} else {
			binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		}
		if _, err := bw.Write(b[:bytesPer]); err != nil {
			return fmt.Errorf("write wav data: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write wav data: %w", err)
	}
	return nil
}

// toPCM16 maps [-1, 1) to int16 with rounding and clamping (NaN becomes 0).
func toPCM16(v float32) int16 {
	x := math.Round(float64(v) * 32768)
	switch {
	case x >= math.MaxInt16:
		return math.MaxInt16
	case x <= math.MinInt16:
		return math.MinInt16
	case x != x: // NaN
		return 0
	}
	return int16(x)
}
