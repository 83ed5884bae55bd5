package data

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
)

// flacInfo is the part of a FLAC STREAMINFO block that gives duration.
type flacInfo struct {
	Rate         int
	Channels     int
	Bits         int
	TotalSamples uint64 // 0 means the encoder did not know
}

// parseFLACHeader reads the "fLaC" marker (after an optional ID3v2 tag, which
// some taggers prepend) and the STREAMINFO block that the format requires to
// come first.
func parseFLACHeader(r io.Reader) (flacInfo, error) {
	var fi flacInfo
	br := bufio.NewReader(r)
	var magic [4]byte
	if _, err := io.ReadFull(br, magic[:]); err != nil {
		return fi, fmt.Errorf("flac header: %w", err)
	}
	if string(magic[:3]) == "ID3" {
		var rest [6]byte
		if _, err := io.ReadFull(br, rest[:]); err != nil {
			return fi, fmt.Errorf("flac header: id3 tag: %w", err)
		}
		// Size is four 7-bit bytes; bit 4 of the flags adds a footer.
		n := int64(rest[2]&0x7f)<<21 | int64(rest[3]&0x7f)<<14 | int64(rest[4]&0x7f)<<7 | int64(rest[5]&0x7f)
		if rest[1]&0x10 != 0 {
			n += 10
		}
		if _, err := io.CopyN(io.Discard, br, n); err != nil {
			return fi, fmt.Errorf("flac header: id3 tag: %w", err)
		}
		if _, err := io.ReadFull(br, magic[:]); err != nil {
			return fi, fmt.Errorf("flac header: %w", err)
		}
	}
	if string(magic[:]) != "fLaC" {
		return fi, errors.New("flac header: not a FLAC file")
	}
	var bh [4]byte
	if _, err := io.ReadFull(br, bh[:]); err != nil {
		return fi, fmt.Errorf("flac header: %w", err)
	}
	if bh[0]&0x7f != 0 {
		return fi, errors.New("flac header: first metadata block is not STREAMINFO")
	}
	if n := int(bh[1])<<16 | int(bh[2])<<8 | int(bh[3]); n != 34 {
		return fi, fmt.Errorf("flac header: STREAMINFO of %d bytes, want 34", n)
	}
	var si [34]byte
	if _, err := io.ReadFull(br, si[:]); err != nil {
		return fi, fmt.Errorf("flac header: STREAMINFO: %w", err)
	}
	// Bytes 10..17 pack: 20 bits rate, 3 bits channels-1, 5 bits
	// bits-per-sample-1, 36 bits total samples.
	v := binary.BigEndian.Uint64(si[10:18])
	fi.Rate = int(v >> 44)
	fi.Channels = int(v>>41&0x7) + 1
	fi.Bits = int(v>>36&0x1f) + 1
	fi.TotalSamples = v & (1<<36 - 1)
	if fi.Rate == 0 {
		return fi, errors.New("flac header: sample rate 0")
	}
	return fi, nil
}

// AudioDuration returns the duration in seconds of a WAV or FLAC file from
// its header, without decoding. Other formats, and FLAC files whose header
// leaves the length unknown, are measured with `soxi -D` when sox is
// installed.
func AudioDuration(ctx context.Context, path string) (float64, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".wav":
		return wavDuration(path)
	case ".flac":
		f, err := os.Open(path)
		if err != nil {
			return 0, err
		}
		fi, err := parseFLACHeader(f)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", filepath.Base(path), err)
		}
		if fi.TotalSamples > 0 {
			return float64(fi.TotalSamples) / float64(fi.Rate), nil
		}
	}
	return soxiDuration(ctx, path)
}

func soxiDuration(ctx context.Context, path string) (float64, error) {
	if _, err := exec.LookPath("soxi"); err != nil {
		return 0, fmt.Errorf("%s: duration needs soxi (run: apt-get install -y sox)", filepath.Base(path))
	}
	out, err := exec.CommandContext(ctx, "soxi", "-D", path).Output()
	if err != nil {
		return 0, fmt.Errorf("soxi %s: %w", filepath.Base(path), err)
	}
	d, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	if err != nil {
		return 0, fmt.Errorf("soxi %s: %w", filepath.Base(path), err)
	}
	return d, nil
}
