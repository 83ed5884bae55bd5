package formats

// Safetensors, the Hugging Face checkpoint format (model.safetensors):
//
//	u64 LE  N                      header length in bytes
//	N bytes JSON header            {"__metadata__": {str: str},
//	                                "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...}
//	        data                   tensor bytes, little-endian, C order; offsets are relative to here
//
// ref: huggingface/safetensors @000a16f safetensors/src/tensor.rs — prepare() (writer:
// tensors sorted by descending dtype, then name; header padded with spaces to a multiple of 8
// bytes), read_metadata() (header ≤ 100 MB, valid UTF-8 JSON) and Metadata::validate()
// (tensors sorted by offset must tile the data section exactly: each begins where the
// previous ended, its length is numel × dtype size, and the last one ends at the end of the
// file).
//
// chorus adds transparent zstd: a stream that begins with a zstd frame is decompressed first.
// That is unambiguous: the zstd magic read as a header length is ~4.2 GB, far above the
// 100 MB header limit, so no valid uncompressed file starts that way.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// maxSafetensorsHeader is the reference implementation's MAX_HEADER_SIZE.
const maxSafetensorsHeader = 100_000_000

// zstdMaxWindow bounds the history a zstd stream may ask the decoder to keep. 128 MiB is the
// largest window the zstd CLI uses without --long=28+ (level 22 --ultra uses 2^27).
const zstdMaxWindow = 1 << 27

// ErrUnsupportedDType is wrapped by errors for tensors whose element type chorus cannot hold
// (integers, float64, 8-bit floats, ggml's quantized blocks).
var ErrUnsupportedDType = errors.New("unsupported dtype")

// safetensorsDTypes lists every dtype the safetensors spec defines, with its element size; the
// ones chorus holds map to a DType. Knowing all sizes lets an error say "unsupported" rather
// than "unknown" for a valid file that simply holds, say, int64 position ids.
var safetensorsDTypes = map[string]struct {
	size int
	dt   DType
}{
	"BOOL": {1, 0}, "U8": {1, 0}, "I8": {1, 0}, "F8_E5M2": {1, 0}, "F8_E4M3": {1, 0},
	"I16": {2, 0}, "U16": {2, 0}, "F16": {2, F16}, "BF16": {2, BF16},
	"I32": {4, 0}, "U32": {4, 0}, "F32": {4, F32},
	"F64": {8, 0}, "I64": {8, 0}, "U64": {8, 0},
}

// stEntry is one tensor's header record.
type stEntry struct {
	name       string
	dtype      DType
	shape      []int
	begin, end int
}

// stInfo mirrors the JSON of one tensor record. Pointers tell a missing field from a zero one.
type stInfo struct {
	DType       *string   `json:"dtype"`
	Shape       *[]uint64 `json:"shape"`
	DataOffsets *[]uint64 `json:"data_offsets"`
}

// parseSafetensorsHeader decodes and validates the JSON header. It returns the entries in
// data order, the metadata, and the length the data section must have.
func parseSafetensorsHeader(hdr []byte) ([]stEntry, map[string]string, int, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, 0, errors.New("header is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, 0, errors.New("header is not a JSON object")
	}
	var entries []stEntry
	meta := map[string]string{}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, 0, fmt.Errorf("header: %w", err)
		}
		name, _ := tok.(string) // object keys are always strings
		if seen[name] {
			return nil, nil, 0, fmt.Errorf("header: duplicate key %q", name)
		}
		seen[name] = true
		if name == "__metadata__" {
			var m map[string]string
			if err := dec.Decode(&m); err != nil {
				return nil, nil, 0, fmt.Errorf("header __metadata__: %w", err)
			}
			for k, v := range m {
				meta[k] = v
			}
			continue
		}
		var info stInfo
		if err := dec.Decode(&info); err != nil {
			return nil, nil, 0, fmt.Errorf("tensor %q: %w", name, err)
		}
		e, err := info.entry(name)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("tensor %q: %w", name, err)
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, 0, fmt.Errorf("header: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, 0, errors.New("header: data after the JSON object")
	}
	// Reference rule: sorted by offsets, the tensors tile the data section without gaps.
	sort.SliceStable(entries, func(i, j int) bool {
		if entries[i].begin != entries[j].begin {
			return entries[i].begin < entries[j].begin
		}
		return entries[i].end < entries[j].end
	})
	pos := 0
	for _, e := range entries {
		if e.begin != pos {
			if e.begin < pos {
				return nil, nil, 0, fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap the previous tensor (ends at %d)", e.name, e.begin, e.end, pos)
			}
			return nil, nil, 0, fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap after byte %d", e.name, e.begin, e.end, pos)
		}
		pos = e.end
	}
	return entries, meta, pos, nil
}

// entry validates one record: known dtype, offsets in order, size = numel × element size.
func (in stInfo) entry(name string) (stEntry, error) {
	if in.DType == nil || in.Shape == nil || in.DataOffsets == nil {
		return stEntry{}, errors.New("record needs dtype, shape and data_offsets")
	}
	kind, ok := safetensorsDTypes[*in.DType]
	if !ok {
		return stEntry{}, fmt.Errorf("unknown dtype %q", *in.DType)
	}
	if kind.dt == 0 {
		return stEntry{}, fmt.Errorf("%w %s (chorus reads F32, F16 and BF16)", ErrUnsupportedDType, *in.DType)
	}
	shape := make([]int, len(*in.Shape))
	for i, d := range *in.Shape {
		if d > math.MaxInt32 {
			return stEntry{}, fmt.Errorf("shape %v: dimension too large", *in.Shape)
		}
		shape[i] = int(d)
	}
	n, err := numel(shape)
	if err != nil {
		return stEntry{}, err
	}
	if len(*in.DataOffsets) != 2 {
		return stEntry{}, fmt.Errorf("data_offsets has %d values, want 2", len(*in.DataOffsets))
	}
	b, e := (*in.DataOffsets)[0], (*in.DataOffsets)[1]
	if e < b || e > math.MaxInt64/2 {
		return stEntry{}, fmt.Errorf("invalid data_offsets [%d, %d]", b, e)
	}
	if n > math.MaxInt/kind.size || uint64(n*kind.size) != e-b {
		return stEntry{}, fmt.Errorf("data_offsets [%d, %d] hold %d bytes, but %s%v needs %d×%d", b, e, e-b, *in.DType, shape, n, kind.size)
	}
	return stEntry{name: name, dtype: kind.dt, shape: shape, begin: int(b), end: int(e)}, nil
}

// decodeEntry decodes one tensor's bytes.
func decodeEntry(e stEntry, raw []byte) *Tensor {
	t := &Tensor{Name: e.name, Shape: e.shape, DType: e.dtype}
	if e.dtype == F32 {
		t.F32 = decodeF32(raw)
	} else {
		t.F16 = decodeU16(raw)
	}
	return t
}

func newSafetensorsCheckpoint(entries []stEntry, meta map[string]string) *Checkpoint {
	return &Checkpoint{Tensors: make(map[string]*Tensor, len(entries)), Order: make([]string, 0, len(entries)), Metadata: meta}
}

// isZstd reports whether b starts with a zstd frame or a zstd skippable frame.
func isZstd(b []byte) bool {
	if len(b) < 4 {
		return false
	}
	return string(b[:4]) == "\x28\xb5\x2f\xfd" || (b[0]&0xf0 == 0x50 && string(b[1:4]) == "\x2a\x4d\x18")
}

func newZstdReader(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1), // synchronous: no goroutines to leak on error paths
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(zstdMaxWindow))
}

// ReadSafetensors parses a whole safetensors file held in memory (zstd-compressed or not).
// Tensors come back in file order; the half types stay undecoded (see Tensor).
func ReadSafetensors(data []byte) (*Checkpoint, error) {
	if isZstd(data) {
		return ReadSafetensorsFrom(bytes.NewReader(data))
	}
	return ReadSafetensorsAt(bytes.NewReader(data), int64(len(data)))
}

// ReadSafetensorsAt parses an uncompressed safetensors file of the given size through
// ReadAt, one tensor at a time, so only the decoded weights and one tensor's raw bytes are in
// memory at once (an *os.File of a multi-gigabyte checkpoint is not read whole).
func ReadSafetensorsAt(r io.ReaderAt, size int64) (*Checkpoint, error) {
	var lenBuf [8]byte
	if size < 8 {
		return nil, errors.New("safetensors: file shorter than its 8-byte header length")
	}
	if _, err := r.ReadAt(lenBuf[:], 0); err != nil {
		return nil, fmt.Errorf("safetensors: header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxSafetensorsHeader {
		return nil, fmt.Errorf("safetensors: header length %d exceeds %d", n, maxSafetensorsHeader)
	}
	if n > uint64(size-8) {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the %d bytes after it", n, size-8)
	}
	hdr := make([]byte, n)
	if _, err := r.ReadAt(hdr, 8); err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	entries, meta, dataLen, err := parseSafetensorsHeader(hdr)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	base := 8 + int64(n)
	if int64(dataLen) != size-base {
		return nil, fmt.Errorf("safetensors: tensors cover %d data bytes, file has %d", dataLen, size-base)
	}
	ck := newSafetensorsCheckpoint(entries, meta)
	var buf []byte
	for _, e := range entries {
		if k := e.end - e.begin; cap(buf) < k {
			buf = make([]byte, k)
		}
		raw := buf[:e.end-e.begin]
		if _, err := r.ReadAt(raw, base+int64(e.begin)); err != nil {
			return nil, fmt.Errorf("safetensors: tensor %q: %w", e.name, err)
		}
		ck.Tensors[e.name] = decodeEntry(e, raw)
		ck.Order = append(ck.Order, e.name)
	}
	return ck, nil
}

// ReadSafetensorsFrom parses a safetensors stream (zstd-compressed or not), e.g. an embedded
// file. Memory grows with the bytes actually read, never with what the header claims.
func ReadSafetensorsFrom(r io.Reader) (*Checkpoint, error) {
	br := bufio.NewReader(r)
	if head, _ := br.Peek(4); isZstd(head) {
		zr, err := newZstdReader(br)
		if err != nil {
			return nil, fmt.Errorf("safetensors: zstd: %w", err)
		}
		defer zr.Close()
		ck, err := readSafetensorsStream(zr)
		if err != nil {
			return nil, fmt.Errorf("safetensors (zstd): %w", err)
		}
		return ck, nil
	}
	ck, err := readSafetensorsStream(br)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	return ck, nil
}

func readSafetensorsStream(r io.Reader) (*Checkpoint, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, fmt.Errorf("header length: %w", unexpected(err))
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > maxSafetensorsHeader {
		return nil, fmt.Errorf("header length %d exceeds %d", n, maxSafetensorsHeader)
	}
	hdr, err := readBytes(r, int64(n))
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	entries, meta, size, err := parseSafetensorsHeader(hdr)
	if err != nil {
		return nil, err
	}
	// Entries tile the data section in order, so each tensor is the next slice of the stream.
	ck := newSafetensorsCheckpoint(entries, meta)
	for _, e := range entries {
		raw, err := readBytes(r, int64(e.end-e.begin))
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", e.name, err)
		}
		ck.Tensors[e.name] = decodeEntry(e, raw)
		ck.Order = append(ck.Order, e.name)
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k != 0 {
		return nil, fmt.Errorf("data after the last tensor (which ends at byte %d)", size)
	}
	return ck, nil
}

// ReadSafetensorsFile reads a safetensors file; "*.zst" files (or any file starting with a
// zstd frame) are decompressed on the fly.
func ReadSafetensorsFile(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if strings.HasSuffix(path, ".zst") {
		ck, err := ReadSafetensorsFrom(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ck, nil
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var head [4]byte
	if k, _ := f.ReadAt(head[:], 0); isZstd(head[:k]) {
		ck, err := ReadSafetensorsFrom(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return ck, nil
	}
	ck, err := ReadSafetensorsAt(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return ck, nil
}

// dtypeRank orders dtypes as the reference writer does: descending alignment (its Dtype enum
// order, F16 < BF16 < F32), so larger elements come first and every tensor stays aligned.
func dtypeRank(d DType) int {
	switch d {
	case F32:
		return 0
	case BF16:
		return 1
	}
	return 2
}

// WriteSafetensors writes ck as safetensors, byte for byte as the reference implementation
// would: tensors sorted by dtype (F32, BF16, F16) then name, a compact JSON header with
// "__metadata__" first (keys sorted; omitted when empty), padded with spaces to 8 bytes.
func WriteSafetensors(w io.Writer, ck *Checkpoint) error {
	if err := ck.Validate(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	names := make([]string, 0, len(ck.Tensors))
	for n := range ck.Tensors {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		ri, rj := dtypeRank(ck.Tensors[names[i]].DType), dtypeRank(ck.Tensors[names[j]].DType)
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
	var hdr bytes.Buffer
	hdr.WriteByte('{')
	first := true
	sep := func() {
		if !first {
			hdr.WriteByte(',')
		}
		first = false
	}
	if len(ck.Metadata) > 0 {
		sep()
		hdr.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(ck.Metadata))
		for k := range ck.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if !utf8.ValidString(k) || !utf8.ValidString(ck.Metadata[k]) {
				return fmt.Errorf("safetensors: metadata %q is not valid UTF-8", k)
			}
			if i > 0 {
				hdr.WriteByte(',')
			}
			writeJSONString(&hdr, k)
			hdr.WriteByte(':')
			writeJSONString(&hdr, ck.Metadata[k])
		}
		hdr.WriteByte('}')
	}
	offset := 0
	for _, n := range names {
		if n == "__metadata__" {
			return errors.New(`safetensors: a tensor cannot be named "__metadata__"`)
		}
		if !utf8.ValidString(n) {
			return fmt.Errorf("safetensors: tensor name %q is not valid UTF-8", n)
		}
		t := ck.Tensors[n]
		size := t.Numel() * t.DType.Size()
		sep()
		writeJSONString(&hdr, n)
		fmt.Fprintf(&hdr, `:{"dtype":"%s","shape":[`, t.DType)
		for i, d := range t.Shape {
			if i > 0 {
				hdr.WriteByte(',')
			}
			fmt.Fprintf(&hdr, "%d", d)
		}
		fmt.Fprintf(&hdr, `],"data_offsets":[%d,%d]}`, offset, offset+size)
		offset += size
	}
	hdr.WriteByte('}')
	for hdr.Len()%8 != 0 {
		hdr.WriteByte(' ')
	}
	if hdr.Len() > maxSafetensorsHeader {
		return fmt.Errorf("safetensors: header of %d bytes exceeds %d", hdr.Len(), maxSafetensorsHeader)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(hdr.Len()))
	bw.Write(lenBuf[:])
	bw.Write(hdr.Bytes())
	for _, n := range names {
		if err := writeTensorData(bw, ck.Tensors[n]); err != nil {
			return fmt.Errorf("safetensors: tensor %q: %w", n, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// writeJSONString writes s as a JSON string without Go's HTML escaping of <, > and &, which
// serde_json (the reference writer) does not do.
func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	// Encoding a string cannot fail; Encode ends it with a newline, which is dropped.
	enc.Encode(s)
	b.Truncate(b.Len() - 1)
}

// WriteSafetensorsFile writes ck to path atomically: into a temporary file in the same
// directory, fsynced, then renamed over path, so a crash leaves the old file or the new one,
// never a torn one. compress selects zstd and must agree with a ".zst" suffix on path, since
// other tools go by the name.
func WriteSafetensorsFile(path string, ck *Checkpoint, compress bool) error {
	if compress != strings.HasSuffix(path, ".zst") {
		return fmt.Errorf("safetensors: %s: compress=%v disagrees with the file name", path, compress)
	}
	return WriteFileAtomic(path, func(w io.Writer) error {
		if !compress {
			return WriteSafetensors(w, ck)
		}
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return err
		}
		if err := WriteSafetensors(zw, ck); err != nil {
			zw.Close()
			return err
		}
		return zw.Close()
	})
}

// WriteFileAtomic runs write against a temporary file beside path, then fsyncs and renames it
// into place and fsyncs the directory so the rename itself is durable.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = write(tmp); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; model files are meant to be read by other users
	// (a server running under its own account).
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, derr := os.Open(dir); derr == nil {
		d.Sync() // best effort: some filesystems cannot sync directories
		d.Close()
	}
	return nil
}
