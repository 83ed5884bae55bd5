package speech

import (
	"bufio"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/chorus-asr/chorus/training/data"
)

// The feature cache keeps the log-mel features loadFeatures computes for a manifest, so the
// next training run on the same corpus reads them instead of decoding and transforming every
// file again: on corpus/v2 (56,598 utterances, 69 hours) the computation took 70–90 s of both
// cores at the start of every run — a sweep of ten pruning runs paid it ten times.
//
// A cache file belongs to one list of audio files with their sizes and modification times,
// one mel-band count and one frame limit (featureKey hashes them, with the format version): a
// regenerated corpus, a changed file or another model's mel count misses and computes afresh.
// Entries that failed to load are stored with their error, so a cached run reports the same
// bad lines. Files live in $CHORUS_FEATURE_CACHE (default: the user cache directory's
// chorus/features; "off" disables the cache); the newest few are kept.
//
// File layout (little-endian): the magic line, nMels and the entry count as uint32, then per
// entry its frame count as int32 followed by nMels·frames half-precision values band by band,
// or −1 followed by the error's length (uint32) and text.

const featureCacheMagic = "chorus features v1\n"

// featureCacheKeep is how many cache files are kept (newest first): a corpus and its
// extension, their dev splits, and room for one more.
const featureCacheKeep = 6

// featureCacheDir is where cache files go; "" when caching is off or no directory is known.
func featureCacheDir() string {
	d := os.Getenv("CHORUS_FEATURE_CACHE")
	switch d {
	case "off":
		return ""
	case "":
		base, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		d = filepath.Join(base, "chorus", "features")
	}
	return d
}

// featureKey names the cache file of m's features: a hash of the format, the settings and
// every entry's audio path, size and modification time ("" when a file cannot be stat'ed:
// that run computes, and reports the file as loadOne does).
func featureKey(m *data.Manifest, nMels, maxFrames int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s%d %d %d\n", featureCacheMagic, nMels, maxFrames, len(m.Entries))
	for _, e := range m.Entries {
		p := e.Path(m.Dir)
		st, err := os.Stat(p)
		if err != nil {
			return ""
		}
		fmt.Fprintf(h, "%s\x00%d\x00%d\n", p, st.Size(), st.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// cachedUtterance is one entry of a cache file: its features, or the error it failed with.
type cachedUtterance struct {
	mel    []uint16
	frames int
	err    error
}

// readFeatureCache reads the cache file at path for n entries of nMels bands, calling each
// with every entry in order; false (and nothing called) when the file is missing, or when its
// header does not match. A file that ends early or is malformed later is an error: the
// caller computes afresh.
func readFeatureCache(path string, nMels, n int, each func(i int, u cachedUtterance)) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, nil
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	head := make([]byte, len(featureCacheMagic)+8)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(featureCacheMagic)]) != featureCacheMagic {
		return false, nil
	}
	if int(binary.LittleEndian.Uint32(head[len(featureCacheMagic):])) != nMels || int(binary.LittleEndian.Uint32(head[len(featureCacheMagic)+4:])) != n {
		return false, nil
	}
	var buf []byte
	var word [4]byte
	for i := range n {
		if _, err := io.ReadFull(r, word[:]); err != nil {
			return true, fmt.Errorf("feature cache %s: entry %d: %w", path, i, err)
		}
		frames := int32(binary.LittleEndian.Uint32(word[:]))
		if frames < 0 {
			if _, err := io.ReadFull(r, word[:]); err != nil {
				return true, fmt.Errorf("feature cache %s: entry %d: %w", path, i, err)
			}
			msg := make([]byte, binary.LittleEndian.Uint32(word[:]))
			if _, err := io.ReadFull(r, msg); err != nil {
				return true, fmt.Errorf("feature cache %s: entry %d: %w", path, i, err)
			}
			each(i, cachedUtterance{err: errors.New(string(msg))})
			continue
		}
		vals := nMels * int(frames)
		buf = slices.Grow(buf[:0], 2*vals)[:2*vals]
		if _, err := io.ReadFull(r, buf); err != nil {
			return true, fmt.Errorf("feature cache %s: entry %d: %w", path, i, err)
		}
		mel := make([]uint16, vals)
		for j := range mel {
			mel[j] = binary.LittleEndian.Uint16(buf[2*j:])
		}
		each(i, cachedUtterance{mel: mel, frames: int(frames)})
	}
	return true, nil
}

// writeFeatureCache writes the entries' features (or errors) to path: a temporary file in
// the same folder, renamed into place once complete, so a reader never sees half a file.
// Older cache files beyond featureCacheKeep are removed.
func writeFeatureCache(path string, nMels int, us []cachedUtterance) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after the rename: a no-op
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(featureCacheMagic)
	var word [4]byte
	put := func(v uint32) {
		binary.LittleEndian.PutUint32(word[:], v)
		w.Write(word[:])
	}
	put(uint32(nMels))
	put(uint32(len(us)))
	var buf []byte
	for _, u := range us {
		if u.err != nil {
			msg := u.err.Error()
			put(^uint32(0))
			put(uint32(len(msg)))
			w.WriteString(msg)
			continue
		}
		put(uint32(u.frames))
		buf = slices.Grow(buf[:0], 2*len(u.mel))[:2*len(u.mel)]
		for j, v := range u.mel {
			binary.LittleEndian.PutUint16(buf[2*j:], v)
		}
		w.Write(buf)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	pruneFeatureCache(dir)
	return nil
}

// pruneFeatureCache removes all but the newest featureCacheKeep cache files in dir.
func pruneFeatureCache(dir string) {
	names, _ := filepath.Glob(filepath.Join(dir, "*.mel"))
	type file struct {
		name string
		mod  int64
	}
	var fs []file
	for _, n := range names {
		if st, err := os.Stat(n); err == nil {
			fs = append(fs, file{n, st.ModTime().UnixNano()})
		}
	}
	slices.SortFunc(fs, func(a, b file) int { return cmp.Compare(b.mod, a.mod) })
	for i := featureCacheKeep; i < len(fs); i++ {
		os.Remove(fs[i].name)
	}
}

// featureCachePath is the cache file of m's features, "" when caching is off or the key
// cannot be made.
func featureCachePath(m *data.Manifest, nMels, maxFrames int) string {
	dir := featureCacheDir()
	if dir == "" || len(m.Entries) == 0 {
		return ""
	}
	key := featureKey(m, nMels, maxFrames)
	if key == "" {
		return ""
	}
	return filepath.Join(dir, key+"-"+strconv.Itoa(len(m.Entries))+".mel")
}
