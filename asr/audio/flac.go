package audio

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mewkiz/flac"
	"github.com/mewkiz/flac/frame"
)

// decodeFLAC decodes a FLAC stream with github.com/mewkiz/flac, which is
// bit-exact, and checks what that library leaves to its caller: frame headers
// that agree with STREAMINFO, the total sample count, and the MD5 of the
// decoded audio. The library is not hardened against hostile input, so a
// panic inside it is recovered and reported as ErrMalformed. Bit depths 4–24
// decode; 32-bit FLAC (new in RFC 9639) is reported as ErrUnsupported.
func decodeFLAC(br *bufio.Reader, maxDur time.Duration, out sink) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("flac: decoder panic (%v): %w", p, ErrMalformed)
		}
	}()
	s, err := flac.New(br)
	if err != nil {
		return flacErr("flac: stream header", err)
	}
	info := s.Info
	nch, bps, rate := int(info.NChannels), int(info.BitsPerSample), int(info.SampleRate)
	if nch < 1 || nch > 8 || bps < 4 || bps > 32 || rate < 1 {
		return fmt.Errorf("flac: STREAMINFO with %d channels, %d bits, %d Hz: %w", nch, bps, rate, ErrMalformed)
	}
	if bps == 32 {
		// RFC 9639 added 32-bit samples (frame header code 0b111, and a 33-bit
		// side channel); mewkiz/flac v1.0.14 predates that and rejects them.
		return fmt.Errorf("flac: 32-bit samples: %w", ErrUnsupported)
	}
	limit := maxFrames(maxDur, rate)
	total := int64(info.NSamples) // 0: unknown
	if total > limit {
		return fmt.Errorf("flac: %d samples at %d Hz is longer than %v: %w", total, rate, maxDur, ErrTooLong)
	}
	if err := out.begin(rate, nch, bps, total); err != nil {
		return err
	}
	scale := 1 / float32(int64(1)<<(bps-1))
	block := make([][]float32, nch)
	sum := md5.New()
	var md5buf []byte
	var frames int64
	for n := 0; total == 0 || frames < total; n++ {
		fr, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return flacErr(fmt.Sprintf("flac: frame %d header", n), err)
		}
		switch fr.BitsPerSample {
		case 0: // "get from STREAMINFO", which the library cannot see
			fr.BitsPerSample = uint8(bps)
		case uint8(bps):
		default:
			return fmt.Errorf("flac: frame %d has %d bits per sample, STREAMINFO %d: %w", n, fr.BitsPerSample, bps, ErrMalformed)
		}
		if got := fr.Channels.Count(); got != nch {
			return fmt.Errorf("flac: frame %d has %d channels, STREAMINFO %d: %w", n, got, nch, ErrMalformed)
		}
		if err := fr.Parse(); err != nil {
			return flacErr(fmt.Sprintf("flac: frame %d", n), err)
		}
		size := len(fr.Subframes[0].Samples)
		for _, sf := range fr.Subframes {
			if len(sf.Samples) != size {
				return fmt.Errorf("flac: frame %d has subframes of unequal length: %w", n, ErrMalformed)
			}
		}
		if frames+int64(size) > limit {
			return fmt.Errorf("flac: longer than %v: %w", maxDur, ErrTooLong)
		}
		frames += int64(size)
		for ch, sf := range fr.Subframes {
			dst := block[ch][:0]
			for _, v := range sf.Samples {
				dst = append(dst, float32(v)*scale)
			}
			block[ch] = dst
		}
		if err := out.write(block); err != nil {
			return err
		}
		md5buf = appendMD5Input(md5buf[:0], fr.Subframes, bps)
		sum.Write(md5buf)
	}
	if total > 0 && frames != total {
		return fmt.Errorf("flac: stream ends after %d of %d samples: %w", frames, total, ErrTruncated)
	}
	if info.MD5sum != [md5.Size]byte{} && !bytes.Equal(sum.Sum(nil), info.MD5sum[:]) {
		return fmt.Errorf("flac: MD5 of decoded audio does not match STREAMINFO: %w", ErrMalformed)
	}
	return nil
}

// appendMD5Input appends the bytes whose MD5 STREAMINFO records: samples
// interleaved by channel, each little-endian signed in ceil(bps/8) bytes
// (ref: RFC 9639 section 8.2, "MD5 checksum"). mewkiz's Frame.Hash does not
// cover 32-bit samples, hence this.
func appendMD5Input(b []byte, subframes []*frame.Subframe, bps int) []byte {
	width := (bps + 7) / 8
	for i := range subframes[0].Samples {
		for _, sf := range subframes {
			v := uint32(sf.Samples[i])
			for k := range width {
				b = append(b, byte(v>>(8*k)))
			}
		}
	}
	return b
}

// flacErr wraps a library error with context and the matching sentinel.
func flacErr(context string, err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %w: %w", context, err, ErrTruncated)
	}
	return fmt.Errorf("%s: %w: %w", context, err, ErrMalformed)
}
