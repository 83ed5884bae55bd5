// Package audio turns audio files and raw streamed PCM into what a Whisper model
// eats: 16 kHz mono float32 samples in [-1, 1].
//
// It decodes RIFF WAV (integer PCM 8–32 bit, IEEE float 32/64, plain or
// WAVE_FORMAT_EXTENSIBLE) with its own small parser, so that malformed uploads
// fail with an error naming the problem, and FLAC of 4 to 24 bits through
// github.com/mewkiz/flac (bit-exact; the stream MD5 is verified; 32-bit FLAC
// is reported as unsupported, since that library predates it). A
// Kaiser-windowed sinc polyphase resampler converts any sample rate to any
// other, one-shot (Resample) or chunk by chunk (Resampler) for live streams.
//
// The rest of chorus normally calls Load16kMono (files) or Decode16kMono
// (uploads), and FromPCM16/FromFloat32LE plus a Resampler for streamed audio.
//
// Integer samples are scaled by 1/2^(bits-1) (16-bit: /32768), the convention of
// ffmpeg's s16→flt conversion and of openai/whisper's load_audio
// (ref: openai/whisper audio.py, np.frombuffer(out, np.int16) / 32768.0), so a
// clip decoded here matches the reference front end sample for sample.
package audio

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// WhisperRate is the sample rate, in Hz, that Whisper models expect.
const WhisperRate = 16000

// Sentinel errors, matched with errors.Is; the returned errors wrap them with
// detail (which chunk, which format code, how many bytes).
var (
	// ErrUnsupported reports a recognised container or codec that this package
	// does not decode (A-law WAV, RF64, Ogg, MP3, …).
	ErrUnsupported = errors.New("unsupported audio format")
	// ErrTruncated reports input that ends inside a header or a sample frame.
	ErrTruncated = errors.New("truncated audio")
	// ErrMalformed reports a header whose fields contradict each other or the
	// format's rules (zero channels, block align that does not fit, …).
	ErrMalformed = errors.New("malformed audio")
	// ErrTooLong reports a clip longer than the caller's limit.
	ErrTooLong = errors.New("audio too long")
)

// Clip is decoded audio: one slice per channel, all of the same length
// (the number of sample frames), values nominally in [-1, 1].
type Clip struct {
	Samples    [][]float32 // [Channels][Frames]
	SampleRate int         // Hz, > 0
	Channels   int         // == len(Samples), >= 1
	// BitDepth is the source's bits per sample (informational: 16 for PCM16,
	// 32 for float32, the valid bits for WAVE_FORMAT_EXTENSIBLE).
	BitDepth int
}

// Frames returns the number of sample frames (samples per channel).
func (c *Clip) Frames() int {
	if len(c.Samples) == 0 {
		return 0
	}
	return len(c.Samples[0])
}

// Duration returns the clip's length in time.
func (c *Clip) Duration() time.Duration {
	if c.SampleRate <= 0 {
		return 0
	}
	return time.Duration(int64(c.Frames()) * int64(time.Second) / int64(c.SampleRate))
}

// Mono returns the clip downmixed to one channel by averaging (see Downmix).
// For a mono clip it returns the channel itself, not a copy.
func (c *Clip) Mono() []float32 { return Downmix(c.Samples) }

// Interleaved returns the samples as frame-major interleaved data
// (L0 R0 L1 R1 …), the layout WriteWAV takes.
func (c *Clip) Interleaved() []float32 {
	n := c.Frames()
	out := make([]float32, n*len(c.Samples))
	for ch, s := range c.Samples {
		for i, v := range s[:min(len(s), n)] {
			out[i*len(c.Samples)+ch] = v
		}
	}
	return out
}

// Downmix averages the channels into one: out[i] = Σ_ch ch[i] / channels.
// Averaging (rather than summing or taking the left channel) keeps the level
// of a centred source and cannot clip; it is what ffmpeg's "-ac 1" does, which
// openai/whisper relies on. A single channel is returned as is, no channels
// gives nil, and channels of unequal length are averaged over the shortest.
func Downmix(channels [][]float32) []float32 {
	switch len(channels) {
	case 0:
		return nil
	case 1:
		return channels[0]
	}
	return downmixInto(nil, channels)
}

// downmixInto is Downmix into dst's storage, so that the streaming path
// allocates nothing per block; a single channel is copied.
func downmixInto(dst []float32, channels [][]float32) []float32 {
	n := len(channels[0])
	for _, c := range channels[1:] {
		n = min(n, len(c))
	}
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	if len(channels) == 1 {
		copy(dst, channels[0])
		return dst
	}
	clear(dst)
	for _, c := range channels {
		for i, v := range c[:n] {
			dst[i] += v
		}
	}
	scale := 1 / float32(len(channels))
	for i := range dst {
		dst[i] *= scale
	}
	return dst
}

// Decode reads a whole WAV or FLAC stream, chosen by its magic bytes, with no
// limit on length. Input from untrusted sources should go through DecodeLimit
// or Decode16kMono: FLAC compresses silence so well that a small file can
// expand enormously.
func Decode(r io.Reader) (*Clip, error) { return DecodeLimit(r, 0) }

// DecodeLimit is Decode that stops with ErrTooLong once the clip would exceed
// maxDur (0 means no limit). WAV input allocates in proportion to its own
// size (at most 4 bytes per sample, 8 for 8-bit audio counting slice growth)
// however large its header claims the data to be; the limit matters for FLAC.
func DecodeLimit(r io.Reader, maxDur time.Duration) (*Clip, error) {
	var c clipSink
	if err := decode(r, maxDur, &c); err != nil {
		return nil, err
	}
	return &c.clip, nil
}

// sink receives decoded audio block by block, so that a caller can keep the
// whole clip (clipSink) or reduce it as it goes (monoSink) without ever
// holding the source's rate × channels × duration in memory.
type sink interface {
	// begin is called once, before any write; frames is the length the
	// header declares (0 or a lie is possible: use it only as a hint).
	begin(rate, channels, bits int, frames int64) error
	// write takes one slice per channel, all of one length. The slices are
	// reused after the call returns.
	write(block [][]float32) error
}

// clipSink collects the blocks into a Clip.
type clipSink struct{ clip Clip }

func (s *clipSink) begin(rate, channels, bits int, frames int64) error {
	// Preallocate at most 4 MiB of samples: the header may lie.
	n := int(min(max(frames, 0), int64(1<<20/channels)))
	s.clip = Clip{Samples: make([][]float32, channels), SampleRate: rate, Channels: channels, BitDepth: bits}
	for ch := range s.clip.Samples {
		s.clip.Samples[ch] = make([]float32, 0, n)
	}
	return nil
}

func (s *clipSink) write(block [][]float32) error {
	for ch, b := range block {
		s.clip.Samples[ch] = append(s.clip.Samples[ch], b...)
	}
	return nil
}

// monoSink downmixes each block and resamples it to WhisperRate as it
// arrives. By the Resampler's chunking guarantee the result is bit-identical
// to To16kMono of the whole clip.
type monoSink struct {
	r    *Resampler
	mono []float32
	out  []float32
}

func (s *monoSink) begin(rate, _, _ int, frames int64) error {
	r, err := NewResampler(rate, WhisperRate)
	if err != nil {
		return fmt.Errorf("audio: %w: %w", err, ErrUnsupported)
	}
	s.r = r
	s.out = make([]float32, 0, min(max(frames, 0)*WhisperRate/int64(rate)+1, 1<<20))
	return nil
}

func (s *monoSink) write(block [][]float32) error {
	s.mono = downmixInto(s.mono[:0], block)
	s.out = s.r.appendProcess(s.out, s.mono)
	return nil
}

// decode sniffs the format from the magic bytes and decodes r into out.
func decode(r io.Reader, maxDur time.Duration, out sink) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(12)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("audio: read header: %w", err)
	}
	switch {
	case len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WAVE":
		return decodeWAV(br, maxDur, out)
	case len(head) >= 4 && string(head[:4]) == "fLaC":
		return decodeFLAC(br, maxDur, out)
	case len(head) >= 3 && string(head[:3]) == "ID3":
		// An ID3v2 tag precedes some FLAC files (and most MP3s): skip it and look again.
		if err := skipID3(br); err != nil {
			return err
		}
		if next, _ := br.Peek(4); string(next) == "fLaC" {
			return decodeFLAC(br, maxDur, out)
		}
		return fmt.Errorf("audio: ID3-tagged stream that is not FLAC (MP3?): %w", ErrUnsupported)
	}
	return sniffError(head)
}

// sniffError names the format of an unrecognised header when it can, so that a
// user who uploads an MP3 learns that, not merely "bad header".
func sniffError(head []byte) error {
	has := func(p string) bool { return bytes.HasPrefix(head, []byte(p)) }
	var name string
	switch {
	case len(head) == 0:
		return fmt.Errorf("audio: empty input: %w", ErrTruncated)
	case has("RIFF") && len(head) < 12:
		return fmt.Errorf("audio: truncated RIFF header (%d bytes): %w", len(head), ErrTruncated)
	case has("RIFF"):
		name = fmt.Sprintf("RIFF form %q (not WAVE)", head[8:12])
	case has("RIFX"):
		name = "big-endian RIFX WAV"
	case has("RF64"), has("BW64"):
		name = "RF64/BW64 WAV"
	case has("FORM"):
		name = "AIFF"
	case has("OggS"):
		name = "Ogg"
	case has("\x1aE\xdf\xa3"):
		name = "WebM/Matroska"
	case len(head) >= 8 && string(head[4:8]) == "ftyp":
		name = "MP4/M4A"
	case len(head) >= 2 && head[0] == 0xFF && head[1]&0xE0 == 0xE0:
		name = "MPEG audio (MP3/AAC)"
	default:
		return fmt.Errorf("audio: unrecognised format (header % x): %w", head, ErrUnsupported)
	}
	return fmt.Errorf("audio: %s: %w", name, ErrUnsupported)
}

// skipID3 discards an ID3v2 tag: a 10-byte header whose last four bytes hold
// the tag size as a 28-bit "syncsafe" integer, plus a 10-byte footer when flag
// bit 4 is set (ref: id3.org ID3v2.4.0 structure, section 3.1).
func skipID3(br *bufio.Reader) error {
	var h [10]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return fmt.Errorf("audio: read ID3 header: %w", short(err))
	}
	size := int64(h[6]&0x7f)<<21 | int64(h[7]&0x7f)<<14 | int64(h[8]&0x7f)<<7 | int64(h[9]&0x7f)
	if h[5]&0x10 != 0 {
		size += 10
	}
	if n, err := io.CopyN(io.Discard, br, size); err != nil {
		return fmt.Errorf("audio: ID3 tag of %d bytes ends after %d: %w", size, n, short(err))
	}
	return nil
}

// DecodeFile decodes the WAV or FLAC file at path.
func DecodeFile(path string) (*Clip, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	c, err := Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return c, nil
}

// Load16kMono decodes the file at path, downmixes it to mono and resamples it
// to WhisperRate: the input the log-mel front end expects. It never holds the
// source-rate audio, only the 16 kHz result.
func Load16kMono(path string) ([]float32, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audio: %w", err)
	}
	defer f.Close()
	out, err := Decode16kMono(f, 0)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	return out, nil
}

// Decode16kMono is Load16kMono for a stream (an upload, say), stopping with
// ErrTooLong past maxDur (0: no limit). Memory is the 16 kHz mono output
// (64 KB per second) whatever the source's rate and channel count, so with a
// limit it is safe for untrusted input.
func Decode16kMono(r io.Reader, maxDur time.Duration) ([]float32, error) {
	var s monoSink
	if err := decode(r, maxDur, &s); err != nil {
		return nil, err
	}
	return s.r.appendFlush(s.out), nil
}

// To16kMono downmixes c and resamples it to WhisperRate.
func To16kMono(c *Clip) ([]float32, error) {
	return Resample(c.Mono(), c.SampleRate, WhisperRate)
}
