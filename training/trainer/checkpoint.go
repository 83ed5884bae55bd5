package trainer

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"

	"github.com/chorus-asr/chorus/tensor"
)

// ErrCorrupt marks a checkpoint (or encoded optimizer state) that cannot be trusted: bad magic,
// truncation, a checksum mismatch, or an impossible field. The trainer falls back to the
// previous checkpoint when it sees it.
var ErrCorrupt = errors.New("corrupt checkpoint")

// Checkpoint format constants; the layout is documented on ReadCheckpoint.
const (
	ckptMagic      = "CHORUSCK"
	ckptVersion    = 1
	ckptHeaderSize = 56
	maxRank        = 8
	maxNameLen     = 4096
	maxMetaLen     = 1 << 20
)

// CheckpointMeta is the scalar state of a run at the end of step Step.
type CheckpointMeta struct {
	// Step is the number of optimizer steps completed, skipped ones included.
	Step int64 `json:"step"`
	// Position is the number of micro-batches consumed: the Batch.Index the next step starts at.
	Position int64 `json:"position"`
	// OptimizerStep is AdamW's t: steps actually applied (Step minus skipped steps).
	OptimizerStep int64 `json:"optimizer_step"`
	// Skipped counts steps dropped by the non-finite-gradient guard.
	Skipped int64 `json:"skipped"`
	// Seed is Config.Seed of the run that wrote the checkpoint.
	Seed uint64 `json:"seed"`
	// RNG is the trainer's PCG state (rand.PCG.MarshalBinary) at the start of step Step.
	RNG []byte `json:"rng"`
	// ConfigHash fingerprints every setting that changes the trajectory (see Config).
	ConfigHash string `json:"config_hash"`
	// Elapsed is the training wall time in seconds over all sessions so far.
	Elapsed float64 `json:"elapsed_s"`
	// LossEMA and LossEMAWeight carry the displayed loss average across a restart.
	LossEMA       float64 `json:"loss_ema"`
	LossEMAWeight float64 `json:"loss_ema_weight"`
	// Written is when the checkpoint was written.
	Written time.Time `json:"written"`
}

func (m *CheckpointMeta) validate() error {
	switch {
	case m.Step < 0 || m.Position < 0 || m.OptimizerStep < 0 || m.Skipped < 0:
		return fmt.Errorf("negative counter in meta: %w", ErrCorrupt)
	case m.OptimizerStep+m.Skipped != m.Step:
		return fmt.Errorf("meta: %d applied + %d skipped steps ≠ step %d: %w", m.OptimizerStep, m.Skipped, m.Step, ErrCorrupt)
	case m.Position < m.Step:
		return fmt.Errorf("meta: position %d before step %d: %w", m.Position, m.Step, ErrCorrupt)
	case math.IsNaN(m.Elapsed) || m.Elapsed < 0:
		return fmt.Errorf("meta: elapsed %v: %w", m.Elapsed, ErrCorrupt)
	}
	return nil
}

// NamedTensor is one record of a checkpoint.
type NamedTensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// fits reports whether the record has the given shape.
func (t NamedTensor) fits(shape []int) error {
	if !tensor.SameShape(t.Shape, shape) || len(t.Data) != tensor.Numel(shape) {
		return fmt.Errorf("%q has shape %v, want %v: %w", t.Name, t.Shape, shape, errShape)
	}
	return nil
}

// Checkpoint is a decoded checkpoint file.
type Checkpoint struct {
	Meta    CheckpointMeta
	Tensors []NamedTensor
}

// Tensor returns the record called name, or false.
func (c *Checkpoint) Tensor(name string) (NamedTensor, bool) {
	for _, t := range c.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return NamedTensor{}, false
}

// ReadCheckpointFile reads and verifies the checkpoint at path; see ReadCheckpoint.
func ReadCheckpointFile(path string, maxPayload int64) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	defer f.Close()
	c, err := ReadCheckpoint(bufio.NewReaderSize(f, 1<<20), maxPayload)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint %s: %w", path, err)
	}
	return c, nil
}

// ReadCheckpoint decodes a checkpoint and verifies it completely (length, SHA-256, no trailing
// bytes) before returning it; any defect is reported as an error wrapping ErrCorrupt. A
// payload longer than maxPayload bytes is refused before it is decompressed, and memory grows
// only with the bytes actually decoded, so a corrupt length field cannot exhaust memory.
//
// The file layout, version 1 (all integers little-endian):
//
//	offset  size  field
//	0       8     magic "CHORUSCK"
//	8       4     version (1)
//	12      4     flags (0; reserved)
//	16      8     payload length in bytes, uncompressed
//	24      32    SHA-256 of the uncompressed payload
//	56      …     the payload, as one zstd stream, and nothing after it
//
// Payload:
//
//	u32 n, then n bytes of JSON CheckpointMeta
//	u32 count, then count records:
//	  u16 name length, name (UTF-8)
//	  u8 rank (≤ 8), rank × u32 dims
//	  Π dims × float32 values
//
// Record names are "param/<name>", "adamw.m/<name>" and "adamw.v/<name>".
func ReadCheckpoint(r io.Reader, maxPayload int64) (*Checkpoint, error) {
	var hdr [ckptHeaderSize]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("header: %w: %w", err, ErrCorrupt)
	}
	if string(hdr[:8]) != ckptMagic {
		return nil, fmt.Errorf("bad magic %q: %w", hdr[:8], ErrCorrupt)
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != ckptVersion {
		return nil, fmt.Errorf("unsupported version %d: %w", v, ErrCorrupt)
	}
	if f := binary.LittleEndian.Uint32(hdr[12:]); f != 0 {
		return nil, fmt.Errorf("unknown flags %#x: %w", f, ErrCorrupt)
	}
	n := binary.LittleEndian.Uint64(hdr[16:])
	if n > math.MaxInt64 || int64(n) > maxPayload {
		return nil, fmt.Errorf("payload of %d bytes exceeds the limit of %d: %w", n, maxPayload, ErrCorrupt)
	}
	dec, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20),
		zstd.WithDecoderMaxMemory(uint64(max(n, 1))+(64<<20)))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	defer dec.Close()
	h := sha256.New()
	rr := newRecordReader(io.TeeReader(io.LimitReader(dec, int64(n)), h), int64(n))

	var c Checkpoint
	metaLen, err := rr.u32()
	if err != nil {
		return nil, err
	}
	if metaLen > maxMetaLen {
		return nil, fmt.Errorf("meta of %d bytes: %w", metaLen, ErrCorrupt)
	}
	metaJSON, err := rr.bytes(int(metaLen))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(metaJSON, &c.Meta); err != nil {
		return nil, fmt.Errorf("meta: %w: %w", err, ErrCorrupt)
	}
	if err := c.Meta.validate(); err != nil {
		return nil, err
	}
	count, err := rr.u32()
	if err != nil {
		return nil, err
	}
	if int64(count) > rr.remaining/4 { // a record takes at least 4 bytes
		return nil, fmt.Errorf("%d tensors in %d bytes: %w", count, rr.remaining, ErrCorrupt)
	}
	names := make(map[string]bool)
	for range count {
		t, err := rr.record()
		if err != nil {
			return nil, err
		}
		if names[t.Name] {
			return nil, fmt.Errorf("duplicate tensor %q: %w", t.Name, ErrCorrupt)
		}
		names[t.Name] = true
		c.Tensors = append(c.Tensors, t)
	}
	if rr.remaining != 0 {
		return nil, fmt.Errorf("%d payload bytes after the last tensor: %w", rr.remaining, ErrCorrupt)
	}
	var extra [1]byte
	if k, err := dec.Read(extra[:]); k != 0 || !errors.Is(err, io.EOF) {
		if k == 0 && err != nil {
			return nil, fmt.Errorf("after payload: %w: %w", err, ErrCorrupt)
		}
		return nil, fmt.Errorf("data after the payload: %w", ErrCorrupt)
	}
	if !bytes.Equal(h.Sum(nil), hdr[24:56]) {
		return nil, fmt.Errorf("checksum mismatch: %w", ErrCorrupt)
	}
	return &c, nil
}

// writeCheckpoint encodes meta and tensors into f, an empty file: the payload is streamed
// through zstd and SHA-256, and the header is filled in afterwards with WriteAt, once the
// payload's length and checksum are known — so no second copy of the model is held in memory.
func writeCheckpoint(f *os.File, meta *CheckpointMeta, tensors []NamedTensor) error {
	if _, err := f.Write(make([]byte, ckptHeaderSize)); err != nil {
		return err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	enc, err := zstd.NewWriter(bw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithWindowSize(8<<20))
	if err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(h, enc)}
	pw := bufio.NewWriterSize(cw, 1<<16)

	metaJSON, err := json.Marshal(meta)
	if err != nil {
		enc.Close()
		return fmt.Errorf("meta: %w", err)
	}
	var u [4]byte
	binary.LittleEndian.PutUint32(u[:], uint32(len(metaJSON)))
	pw.Write(u[:])
	pw.Write(metaJSON)
	binary.LittleEndian.PutUint32(u[:], uint32(len(tensors)))
	pw.Write(u[:])
	for _, t := range tensors {
		if err := writeRecord(pw, t.Name, t.Shape, t.Data); err != nil {
			enc.Close()
			return err
		}
	}
	if err := pw.Flush(); err != nil {
		enc.Close()
		return err
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("zstd: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var hdr [ckptHeaderSize]byte
	copy(hdr[:], ckptMagic)
	binary.LittleEndian.PutUint32(hdr[8:], ckptVersion)
	binary.LittleEndian.PutUint64(hdr[16:], uint64(cw.n))
	copy(hdr[24:], h.Sum(nil))
	_, err = f.WriteAt(hdr[:], 0)
	return err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	k, err := c.w.Write(p)
	c.n += int64(k)
	return k, err
}

// writeRecord appends one tensor record. A shape that disagrees with the data is a caller bug
// reported as an error, so a half-written file is abandoned rather than saved.
func writeRecord(w io.Writer, name string, shape []int, data []float32) error {
	if len(name) > maxNameLen || len(shape) > maxRank {
		return fmt.Errorf("tensor %q: name or rank too long", name)
	}
	if len(data) != tensor.Numel(shape) {
		return fmt.Errorf("tensor %q: %d values for shape %v", name, len(data), shape)
	}
	buf := make([]byte, 0, 3+len(name)+4*len(shape))
	buf = binary.LittleEndian.AppendUint16(buf, uint16(len(name)))
	buf = append(buf, name...)
	buf = append(buf, byte(len(shape)))
	for _, d := range shape {
		if d < 0 || d > math.MaxUint32 {
			return fmt.Errorf("tensor %q: dimension %d out of range", name, d)
		}
		buf = binary.LittleEndian.AppendUint32(buf, uint32(d))
	}
	if _, err := w.Write(buf); err != nil {
		return err
	}
	var chunk [1 << 14]byte
	for len(data) > 0 {
		k := min(len(data), len(chunk)/4)
		for i, x := range data[:k] {
			binary.LittleEndian.PutUint32(chunk[4*i:], math.Float32bits(x))
		}
		if _, err := w.Write(chunk[:4*k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// recordReader decodes payload fields from r, never reading past remaining bytes.
type recordReader struct {
	r         io.Reader
	remaining int64
	scratch   [1 << 14]byte
}

func newRecordReader(r io.Reader, n int64) *recordReader {
	return &recordReader{r: r, remaining: n}
}

func (rr *recordReader) read(p []byte) error {
	if int64(len(p)) > rr.remaining {
		return fmt.Errorf("field of %d bytes with %d left: %w", len(p), rr.remaining, ErrCorrupt)
	}
	if _, err := io.ReadFull(rr.r, p); err != nil {
		return fmt.Errorf("truncated: %w: %w", err, ErrCorrupt)
	}
	rr.remaining -= int64(len(p))
	return nil
}

func (rr *recordReader) u8() (uint8, error) {
	err := rr.read(rr.scratch[:1])
	return rr.scratch[0], err
}

func (rr *recordReader) u16() (uint16, error) {
	err := rr.read(rr.scratch[:2])
	return binary.LittleEndian.Uint16(rr.scratch[:]), err
}

func (rr *recordReader) u32() (uint32, error) {
	err := rr.read(rr.scratch[:4])
	return binary.LittleEndian.Uint32(rr.scratch[:]), err
}

func (rr *recordReader) u64() (uint64, error) {
	err := rr.read(rr.scratch[:8])
	return binary.LittleEndian.Uint64(rr.scratch[:]), err
}

// bytes returns n fresh bytes; n is checked against remaining before allocating.
func (rr *recordReader) bytes(n int) ([]byte, error) {
	if int64(n) > rr.remaining {
		return nil, fmt.Errorf("field of %d bytes with %d left: %w", n, rr.remaining, ErrCorrupt)
	}
	b := make([]byte, n)
	return b, rr.read(b)
}

// record decodes one tensor record.
func (rr *recordReader) record() (NamedTensor, error) {
	var t NamedTensor
	nameLen, err := rr.u16()
	if err != nil {
		return t, err
	}
	if nameLen == 0 || nameLen > maxNameLen {
		return t, fmt.Errorf("tensor name of %d bytes: %w", nameLen, ErrCorrupt)
	}
	name, err := rr.bytes(int(nameLen))
	if err != nil {
		return t, err
	}
	if !utf8.Valid(name) {
		return t, fmt.Errorf("tensor name not UTF-8: %w", ErrCorrupt)
	}
	t.Name = string(name)
	rank, err := rr.u8()
	if err != nil {
		return t, err
	}
	if rank > maxRank {
		return t, fmt.Errorf("tensor %q: rank %d: %w", t.Name, rank, ErrCorrupt)
	}
	t.Shape = make([]int, rank)
	numel := int64(1)
	for i := range t.Shape {
		d, err := rr.u32()
		if err != nil {
			return t, err
		}
		t.Shape[i] = int(d)
		numel *= int64(d)
		if numel > rr.remaining/4 {
			return t, fmt.Errorf("tensor %q: shape %v exceeds the payload: %w", t.Name, t.Shape[:i+1], ErrCorrupt)
		}
	}
	if numel > rr.remaining/4 {
		return t, fmt.Errorf("tensor %q: shape %v exceeds the payload: %w", t.Name, t.Shape, ErrCorrupt)
	}
	// Grow with the data actually read rather than trusting numel for one big allocation.
	t.Data = make([]float32, 0, min(numel, 1<<18))
	for left := int(numel); left > 0; {
		k := min(left, len(rr.scratch)/4)
		if err := rr.read(rr.scratch[:4*k]); err != nil {
			return t, err
		}
		for i := range k {
			t.Data = append(t.Data, math.Float32frombits(binary.LittleEndian.Uint32(rr.scratch[4*i:])))
		}
		left -= k
	}
	return t, nil
}

// Checkpoint files in a folder.

const (
	ckptPrefix = "ckpt-"
	ckptSuffix = ".chk"
	tmpPrefix  = ".ckpt-"
	tmpSuffix  = ".tmp"
)

func checkpointName(step int64) string { return fmt.Sprintf("%s%010d%s", ckptPrefix, step, ckptSuffix) }

type ckptFile struct {
	path string
	step int64
}

// listCheckpoints returns the checkpoints in dir, newest (highest step) first.
func listCheckpoints(dir string) ([]ckptFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []ckptFile
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ckptPrefix) || !strings.HasSuffix(name, ckptSuffix) {
			continue
		}
		step, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(name, ckptPrefix), ckptSuffix), 10, 64)
		if err != nil || step < 0 {
			continue
		}
		out = append(out, ckptFile{filepath.Join(dir, name), step})
	}
	slices.SortFunc(out, func(a, b ckptFile) int { return cmp.Compare(b.step, a.step) })
	return out, nil
}

// saveCheckpointFile writes a checkpoint for meta.Step into dir atomically: a temporary file in
// the same folder is written, fsynced and renamed over the final name, and the folder is
// fsynced so the rename itself survives a power cut. Readers therefore see either the old set
// of checkpoints or the new one, never a partial file under a checkpoint name.
func saveCheckpointFile(dir string, meta *CheckpointMeta, tensors []NamedTensor) (path string, err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*"+tmpSuffix)
	if err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it private, unlike other outputs
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	if err := writeCheckpoint(f, meta, tensors); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("save checkpoint: fsync: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	path = filepath.Join(dir, checkpointName(meta.Step))
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return "", fmt.Errorf("save checkpoint: %w", err)
	}
	return path, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// pruneCheckpoints deletes all but the newest keep checkpoints in dir.
func pruneCheckpoints(dir string, keep int) error {
	files, err := listCheckpoints(dir)
	if err != nil {
		return fmt.Errorf("prune checkpoints: %w", err)
	}
	for _, f := range files[min(keep, len(files)):] {
		if err := os.Remove(f.path); err != nil {
			return fmt.Errorf("prune checkpoints: %w", err)
		}
	}
	return nil
}

// removeTemps deletes temporary files a killed writer left in dir.
func removeTemps(dir string, log *slog.Logger) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) && strings.HasSuffix(e.Name(), tmpSuffix) {
			p := filepath.Join(dir, e.Name())
			if err := os.Remove(p); err == nil {
				log.Info("removed unfinished checkpoint", "path", p)
			}
		}
	}
}

// loadNewest returns the newest checkpoint in dir that reads back intact, or nil if dir holds
// none. Each newer checkpoint that fails to read is renamed to <name>.corrupt — kept for
// inspection, but no longer counted as a checkpoint, so pruning and the next resume skip it —
// and reported with a warning. It is an error when checkpoints exist but none is readable:
// silently starting over would throw away the run.
func loadNewest(dir string, maxPayload int64, log *slog.Logger) (*Checkpoint, string, error) {
	files, err := listCheckpoints(dir)
	if err != nil {
		return nil, "", fmt.Errorf("list checkpoints: %w", err)
	}
	var errs []error
	for _, f := range files {
		c, err := ReadCheckpointFile(f.path, maxPayload)
		if err == nil && c.Meta.Step != f.step {
			err = fmt.Errorf("%s holds step %d: %w", f.path, c.Meta.Step, ErrCorrupt)
		}
		if err == nil {
			return c, f.path, nil
		}
		errs = append(errs, err)
		log.Warn("checkpoint unusable, trying the previous one", "path", f.path, "err", err)
		if rerr := os.Rename(f.path, f.path+".corrupt"); rerr != nil {
			log.Warn("could not set the unusable checkpoint aside", "path", f.path, "err", rerr)
		}
	}
	if len(errs) > 0 {
		return nil, "", fmt.Errorf("no readable checkpoint in %s: %w", dir, errors.Join(errs...))
	}
	return nil, "", nil
}

// AverageCheckpoints sets every param to the mean of its values in the newest n readable
// checkpoints in dir and returns their steps, newest first. Averaging the checkpoints at the end
// of a run (Vaswani et al. 2017 averaged the last 5 or 20; fairseq's average_checkpoints.py)
// smooths the noise of the last steps' updates; the optimizer's moments are not averaged and
// the run's own checkpoints are left alone, so a resumed run continues unaveraged. Unreadable
// checkpoints are skipped with the reason in the error only when none is readable; every
// checkpoint averaged must hold every param at its shape, and params are written only once
// all are read.
func AverageCheckpoints(dir string, n int, params []Param) ([]int64, error) {
	if n < 1 {
		return nil, fmt.Errorf("average %d checkpoints: want at least one", n)
	}
	files, err := listCheckpoints(dir)
	if err != nil {
		return nil, fmt.Errorf("list checkpoints: %w", err)
	}
	sums := make([][]float64, len(params))
	for i, p := range params {
		sums[i] = make([]float64, len(p.W.Data))
	}
	var steps []int64
	var errs []error
	for _, f := range files {
		if len(steps) == n {
			break
		}
		c, err := ReadCheckpointFile(f.path, maxPayloadFor(params))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i, p := range params {
			rec, ok := c.Tensor("param/" + p.Name)
			if !ok {
				return nil, fmt.Errorf("average: %s lacks %q", f.path, "param/"+p.Name)
			}
			if err := rec.fits(p.W.Shape); err != nil {
				return nil, fmt.Errorf("average: %s: %w", f.path, err)
			}
			for j, v := range rec.Data {
				sums[i][j] += float64(v)
			}
		}
		steps = append(steps, c.Meta.Step)
	}
	if len(steps) == 0 {
		if len(errs) == 0 {
			return nil, fmt.Errorf("average: no checkpoint in %s", dir)
		}
		return nil, fmt.Errorf("average: no readable checkpoint in %s: %w", dir, errors.Join(errs...))
	}
	for i, p := range params {
		for j := range p.W.Data {
			p.W.Data[j] = float32(sums[i][j] / float64(len(steps)))
		}
	}
	return steps, nil
}
