package trainer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/tensor"
)

func sampleCheckpoint() (*CheckpointMeta, []NamedTensor) {
	meta := &CheckpointMeta{Step: 12, Position: 24, OptimizerStep: 11, Skipped: 1, Seed: 9,
		RNG: []byte("pcg:0123456789abcdef"), ConfigHash: "abc", Elapsed: 3.5, LossEMA: 0.7, LossEMAWeight: 0.2,
		Written: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)}
	tensors := []NamedTensor{
		{"param/w", []int{2, 3}, []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0}},
		{"param/scalar", []int{}, []float32{42}},
		{"param/empty", []int{0, 4}, []float32{}},
		{"adamw.m/w", []int{6}, []float32{1e-30, 2, 3, 4, 5, 6}},
	}
	return meta, tensors
}

// encodeSample returns the bytes of a checkpoint file holding sampleCheckpoint.
func encodeSample(t testing.TB) []byte {
	t.Helper()
	meta, tensors := sampleCheckpoint()
	dir := t.TempDir()
	path, err := saveCheckpointFile(dir, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestCheckpointRoundTrip(t *testing.T) {
	meta, tensors := sampleCheckpoint()
	dir := t.TempDir()
	path, err := saveCheckpointFile(dir, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(path) != "ckpt-0000000012.chk" {
		t.Errorf("written as %s", path)
	}
	c, err := ReadCheckpointFile(path, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if c.Meta.Step != 12 || c.Meta.Position != 24 || !bytes.Equal(c.Meta.RNG, meta.RNG) || !c.Meta.Written.Equal(meta.Written) ||
		c.Meta.ConfigHash != "abc" || c.Meta.Elapsed != 3.5 {
		t.Errorf("meta %+v, want %+v", c.Meta, *meta)
	}
	if len(c.Tensors) != len(tensors) {
		t.Fatalf("%d tensors, want %d", len(c.Tensors), len(tensors))
	}
	for i, want := range tensors {
		got := c.Tensors[i]
		if got.Name != want.Name || !slices.Equal(got.Shape, want.Shape) || len(got.Data) != len(want.Data) {
			t.Fatalf("tensor %d: %q %v ×%d, want %q %v ×%d", i, got.Name, got.Shape, len(got.Data), want.Name, want.Shape, len(want.Data))
		}
		for j := range want.Data {
			if math.Float32bits(got.Data[j]) != math.Float32bits(want.Data[j]) {
				t.Errorf("%s[%d] = %v, want %v", want.Name, j, got.Data[j], want.Data[j])
			}
		}
	}
	if _, ok := c.Tensor("adamw.m/w"); !ok {
		t.Error("Tensor lookup failed")
	}
	if _, ok := c.Tensor("nope"); ok {
		t.Error("Tensor found a missing name")
	}
}

func TestReadCheckpointRejects(t *testing.T) {
	good := encodeSample(t)
	header := func(mod func(h []byte)) []byte {
		b := slices.Clone(good)
		mod(b)
		return b
	}
	tests := []struct {
		name       string
		data       []byte
		maxPayload int64
		want       string
	}{
		{"empty", nil, 1 << 20, "header"},
		{"short header", good[:20], 1 << 20, "header"},
		{"magic", header(func(h []byte) { h[3] = 'x' }), 1 << 20, "bad magic"},
		{"version", header(func(h []byte) { binary.LittleEndian.PutUint32(h[8:], 2) }), 1 << 20, "version 2"},
		{"flags", header(func(h []byte) { h[12] = 1 }), 1 << 20, "flags"},
		{"payload over the limit", good, 100, "exceeds the limit"},
		{"huge length", header(func(h []byte) { binary.LittleEndian.PutUint64(h[16:], math.MaxUint64) }), 1 << 20, "exceeds the limit"},
		{"length too short", header(func(h []byte) { binary.LittleEndian.PutUint64(h[16:], binary.LittleEndian.Uint64(h[16:])-4) }), 1 << 20, ""},
		{"length too long", header(func(h []byte) { binary.LittleEndian.PutUint64(h[16:], binary.LittleEndian.Uint64(h[16:])+4) }), 1 << 20, "after the last tensor"},
		{"checksum", header(func(h []byte) { h[40] ^= 0xff }), 1 << 20, "checksum mismatch"},
		{"truncated stream", good[:len(good)-5], 1 << 20, ""},
		{"trailing bytes", append(slices.Clone(good), 1, 2, 3), 1 << 20, ""},
		{"second zstd frame", append(slices.Clone(good), good[ckptHeaderSize:]...), 1 << 20, "data after the payload"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCheckpoint(bytes.NewReader(tc.data), tc.maxPayload)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want an error wrapping ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestReadCheckpointRejectsBadPayload encodes payloads that are well-formed zstd with a correct
// checksum but impossible content: only the structural checks can catch them.
func TestReadCheckpointRejectsBadPayload(t *testing.T) {
	meta, _ := sampleCheckpoint()
	tests := []struct {
		name    string
		meta    CheckpointMeta
		tensors []NamedTensor
		want    string
	}{
		{"negative step", func() CheckpointMeta { m := *meta; m.Step = -1; return m }(), nil, "negative"},
		{"steps do not add up", func() CheckpointMeta { m := *meta; m.Skipped = 5; return m }(), nil, "≠ step"},
		{"position before step", func() CheckpointMeta { m := *meta; m.Position = 3; return m }(), nil, "position"},
		{"duplicate tensor", *meta, []NamedTensor{{"a", []int{1}, []float32{1}}, {"a", []int{1}, []float32{2}}}, "duplicate tensor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "c"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := writeCheckpoint(f, &tc.meta, tc.tensors); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(f.Name())
			_, err = ReadCheckpoint(bytes.NewReader(data), 1<<20)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrCorrupt mentioning %q", err, tc.want)
			}
		})
	}
}

// TestSaveCheckpointAtomic: a write that fails part-way leaves neither a checkpoint under the
// final name nor a temporary file, and the previous checkpoint intact.
func TestSaveCheckpointAtomic(t *testing.T) {
	dir := t.TempDir()
	meta, tensors := sampleCheckpoint()
	prev, err := saveCheckpointFile(dir, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	next := *meta
	next.Step, next.Position, next.OptimizerStep = 13, 26, 12
	bad := append(slices.Clone(tensors), NamedTensor{"broken", []int{5}, []float32{1}}) // fails after the others
	if _, err := saveCheckpointFile(dir, &next, bad); err == nil || !strings.Contains(err.Error(), "1 values for shape [5]") {
		t.Fatalf("got %v, want a shape error", err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{filepath.Base(prev)}) {
		t.Errorf("folder holds %v, want only %s", names, filepath.Base(prev))
	}
	if _, err := ReadCheckpointFile(prev, 1<<20); err != nil {
		t.Errorf("previous checkpoint damaged: %v", err)
	}
	if _, err := saveCheckpointFile(filepath.Join(dir, "missing"), &next, tensors); err == nil {
		t.Error("saving into a missing folder succeeded")
	}
}

func TestCheckpointFolder(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{
		"ckpt-0000000010.chk", "ckpt-0000000002.chk", "ckpt-0000000100.chk",
		"ckpt-abc.chk", "ckpt--000000001.chk", "ckpt-0000000005.chk.corrupt", "other.chk", ".ckpt-77.tmp", ".ckpt-x.tmp",
	} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, "ckpt-0000000999.chk"), 0o755) // a folder is not a checkpoint
	files, err := listCheckpoints(dir)
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, f := range files {
		steps = append(steps, f.step)
	}
	if !slices.Equal(steps, []int64{100, 10, 2}) {
		t.Errorf("listed steps %v, want [100 10 2]", steps)
	}
	removeTemps(dir, quiet())
	for _, tmp := range []string{".ckpt-77.tmp", ".ckpt-x.tmp"} {
		if _, err := os.Stat(filepath.Join(dir, tmp)); !os.IsNotExist(err) {
			t.Errorf("%s not removed", tmp)
		}
	}
	if err := pruneCheckpoints(dir, 1); err != nil {
		t.Fatal(err)
	}
	files, _ = listCheckpoints(dir)
	if len(files) != 1 || files[0].step != 100 {
		t.Errorf("after pruning to 1: %v", files)
	}
	if _, err := os.Stat(filepath.Join(dir, "ckpt-0000000005.chk.corrupt")); err != nil {
		t.Errorf("pruning touched a set-aside file: %v", err)
	}
}

// TestLoadNewestChecksStepName: a valid checkpoint under another step's name (a copy gone
// wrong) is not trusted.
func TestLoadNewestChecksStepName(t *testing.T) {
	dir := t.TempDir()
	meta, tensors := sampleCheckpoint()
	path, err := saveCheckpointFile(dir, meta, tensors)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	os.WriteFile(filepath.Join(dir, checkpointName(50)), data, 0o644)
	c, got, err := loadNewest(dir, 1<<20, quiet())
	if err != nil || c == nil || got != path {
		t.Fatalf("loaded %q (%v), want %s", got, err, path)
	}
}

func FuzzReadCheckpoint(f *testing.F) {
	good := encodeSample(f)
	f.Add(good)
	f.Add(good[:ckptHeaderSize])
	f.Add(good[:len(good)/2])
	f.Add([]byte(ckptMagic))
	meta, _ := sampleCheckpoint()
	dir := f.TempDir()
	if p, err := saveCheckpointFile(dir, meta, nil); err == nil {
		empty, _ := os.ReadFile(p)
		f.Add(empty)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ReadCheckpoint(bytes.NewReader(data), 1<<20)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// Whatever was accepted is self-consistent and survives a rewrite.
		for _, tt := range c.Tensors {
			n := 1
			for _, d := range tt.Shape {
				n *= d
			}
			if n != len(tt.Data) {
				t.Fatalf("tensor %q: shape %v with %d values", tt.Name, tt.Shape, len(tt.Data))
			}
		}
		if err := c.Meta.validate(); err != nil {
			t.Fatalf("accepted invalid meta: %v", err)
		}
		out, err := os.Create(filepath.Join(t.TempDir(), "c"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		if err := writeCheckpoint(out, &c.Meta, c.Tensors); err != nil {
			t.Fatalf("rewrite: %v", err)
		}
		again, _ := os.ReadFile(out.Name())
		if _, err := ReadCheckpoint(bytes.NewReader(again), 1<<20); err != nil {
			t.Fatalf("rewritten checkpoint rejected: %v", err)
		}
	})
}

// TestAverageCheckpoints: the newest n readable checkpoints are averaged (a corrupt one is
// skipped, older ones beyond n ignored); a missing param or a changed shape is an error that
// leaves the params as they were.
func TestAverageCheckpoints(t *testing.T) {
	dir := t.TempDir()
	write := func(step int64, w []float32, b float32) {
		t.Helper()
		meta := &CheckpointMeta{Step: step, Position: step, OptimizerStep: step, RNG: []byte("x")}
		if _, err := saveCheckpointFile(dir, meta, []NamedTensor{
			{"param/w", []int{2, 2}, w}, {"param/b", []int{1}, []float32{b}}, {"adamw.m/w", []int{2, 2}, []float32{9, 9, 9, 9}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	write(10, []float32{100, 100, 100, 100}, 100) // too old for n = 3
	write(20, []float32{1, 2, 3, 4}, 1)
	write(30, []float32{3, 2, 1, 0}, 2)
	write(40, []float32{2, 2, 2, 8}, 6)
	os.WriteFile(filepath.Join(dir, checkpointName(50)), []byte("CHORUSCK garbage"), 0o644)
	params := func() []Param {
		return []Param{{Name: "w", W: tensor.New(2, 2)}, {Name: "b", W: tensor.New(1)}}
	}
	p := params()
	steps, err := AverageCheckpoints(dir, 3, p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(steps, []int64{40, 30, 20}) {
		t.Errorf("averaged steps %v, want [40 30 20]", steps)
	}
	if want := []float32{2, 2, 2, 4}; !slices.Equal(p[0].W.Data, want) {
		t.Errorf("w = %v, want %v", p[0].W.Data, want)
	}
	if p[1].W.Data[0] != 3 {
		t.Errorf("b = %v, want 3", p[1].W.Data[0])
	}
	// More than there are: all readable ones.
	p = params()
	if steps, err = AverageCheckpoints(dir, 10, p); err != nil || len(steps) != 4 || p[1].W.Data[0] != 109.0/4 {
		t.Errorf("n = 10: steps %v, b %v, err %v", steps, p[1].W.Data[0], err)
	}
	for name, ps := range map[string][]Param{
		"missing param": append(params(), Param{Name: "extra", W: tensor.New(3)}),
		"changed shape": {{Name: "w", W: tensor.New(4)}},
	} {
		before := slices.Clone(ps[0].W.Data)
		if _, err := AverageCheckpoints(dir, 2, ps); err == nil {
			t.Errorf("%s: no error", name)
		} else if !slices.Equal(ps[0].W.Data, before) {
			t.Errorf("%s: params changed on error", name)
		}
	}
	if _, err := AverageCheckpoints(t.TempDir(), 2, params()); err == nil {
		t.Error("empty folder: no error")
	}
	if _, err := AverageCheckpoints(dir, 0, params()); err == nil {
		t.Error("n = 0: no error")
	}
}
