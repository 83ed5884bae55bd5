package trainer

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/tensor"
)

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

// runDir lays out one run's files under root.
type runDir struct{ root string }

func (d runDir) ckpt() string { return filepath.Join(d.root, "ckpt") }
func (d runDir) csv() string  { return filepath.Join(d.root, "log.csv") }

// toyConfig is the configuration the resume tests share: accumulation, clipping, a cosine
// schedule, weight decay and RNG-driven jitter all take part.
func toyConfig(d runDir, steps int) Config {
	return Config{
		Steps:           steps,
		Accum:           2,
		Seed:            42,
		Schedule:        WarmupDecay{Peak: 0.03, Floor: 0.003, Warmup: 5, Total: steps, Shape: DecayCosine},
		Optimizer:       AdamWConfig{WeightDecay: 0.01},
		ClipNorm:        0.5,
		CheckpointDir:   d.ckpt(),
		CheckpointSteps: 10,
		EvalEvery:       5,
		LogCSV:          d.csv(),
		Logger:          quiet(),
		NoSignals:       true,
	}
}

func snapshot(params []Param) [][]float32 {
	out := make([][]float32, len(params))
	for i, p := range params {
		out[i] = slices.Clone(p.W.Data)
	}
	return out
}

// sameBits reports the first parameter element that differs in its bits.
func sameBits(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("%s: param %d element %d is %v, want %v (bit-identical)", what, i, j, got[i][j], want[i][j])
			}
		}
	}
}

func readCSV(t *testing.T, path string) (header []string, rows [][]string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(recs) == 0 {
		t.Fatalf("%s is empty", path)
	}
	return recs[0], recs[1:]
}

// column returns column name of rows, keyed by step.
func column(t *testing.T, path, name string) map[int]string {
	t.Helper()
	header, rows := readCSV(t, path)
	i := slices.Index(header, name)
	if i < 0 {
		t.Fatalf("%s has no column %q (header %q)", path, name, header)
	}
	out := map[int]string{}
	for _, r := range rows {
		step, err := strconv.Atoi(r[0])
		if err != nil {
			t.Fatalf("%s: step %q", path, r[0])
		}
		if _, dup := out[step]; dup {
			t.Fatalf("%s: step %d logged twice", path, step)
		}
		out[step] = r[i]
	}
	return out
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

const (
	toyN     = 100 // examples: 30 steps × 2 × 8 = 480 positions, so epochs wrap
	toyBatch = 8
	toySteps = 30
)

// straightRun trains the reference run with no interruption.
func straightRun(t *testing.T) (params [][]float32, d runDir) {
	t.Helper()
	d = runDir{t.TempDir()}
	task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 1)}
	if err := Run(t.Context(), task, toyConfig(d, toySteps)); err != nil {
		t.Fatalf("straight run: %v", err)
	}
	for i, b := range task.seen {
		if want := (Batch{Seed: 42, Step: i / 2, Micro: i % 2, Index: int64(i)}); b != want {
			t.Fatalf("call %d got batch %+v, want %+v", i, b, want)
		}
	}
	return snapshot(task.params), d
}

func TestExactResume(t *testing.T) {
	want, wantDir := straightRun(t)
	errBoom := errors.New("boom")

	tests := []struct {
		name string
		// crash runs the first session in d and returns the run folder to resume from, after
		// checking how the session ended.
		crash func(t *testing.T, d runDir) runDir
	}{
		{"kill -9 after a periodic checkpoint", func(t *testing.T, d runDir) runDir {
			// A process killed at step 16 leaves its folder as it was then: the step-10
			// checkpoint, a CSV with rows beyond it, perhaps an unfinished temporary file.
			dead := runDir{t.TempDir()}
			task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 1)}
			task.hook = func(_ context.Context, b Batch) error {
				if b.Step == 16 && b.Micro == 1 {
					copyDir(t, d.root, dead.root)
					os.WriteFile(filepath.Join(dead.ckpt(), ".ckpt-123.tmp"), []byte("half a checkpo"), 0o644)
					return errBoom
				}
				return nil
			}
			if err := Run(t.Context(), task, toyConfig(d, toySteps)); !errors.Is(err, errBoom) {
				t.Fatalf("first session returned %v, want %v", err, errBoom)
			}
			if got := len(column(t, dead.csv(), "loss")); got != 16 {
				t.Fatalf("the killed run's CSV has %d rows, want 16", got)
			}
			return dead
		}},
		{"cancelled mid-step", func(t *testing.T, d runDir) runDir {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 1)}
			task.hook = func(_ context.Context, b Batch) error {
				if b.Step == 17 && b.Micro == 0 {
					// This micro-batch completes and draws from the RNG; the step is then
					// abandoned before its second micro-batch, RNG draws included.
					cancel()
				}
				return nil
			}
			if err := Run(ctx, task, toyConfig(d, toySteps)); err != context.Canceled {
				t.Fatalf("first session returned %v, want context.Canceled", err)
			}
			mustHaveCheckpoint(t, d, 17)
			return d
		}},
		{"SIGINT", func(t *testing.T, d runDir) runDir {
			task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 1)}
			task.hook = func(ctx context.Context, b Batch) error {
				if b.Step == 12 && b.Micro == 0 {
					if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
						return err
					}
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(10 * time.Second):
						return errors.New("SIGINT did not cancel the context")
					}
				}
				return nil
			}
			cfg := toyConfig(d, toySteps)
			cfg.NoSignals = false
			if err := Run(t.Context(), task, cfg); err != context.Canceled {
				t.Fatalf("first session returned %v, want context.Canceled", err)
			}
			mustHaveCheckpoint(t, d, 12)
			return d
		}},
		{"task error", func(t *testing.T, d runDir) runDir {
			task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 1)}
			task.hook = func(_ context.Context, b Batch) error {
				if b.Step == 9 && b.Micro == 1 {
					return errBoom
				}
				return nil
			}
			if err := Run(t.Context(), task, toyConfig(d, toySteps)); !errors.Is(err, errBoom) {
				t.Fatalf("first session returned %v, want %v", err, errBoom)
			}
			mustHaveCheckpoint(t, d, 9)
			return d
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.crash(t, runDir{t.TempDir()})
			// A fresh process: different initial weights, which the checkpoint must overwrite.
			task := toyEvalTask{newToyTask(toyN, toyBatch, 7, 99)}
			cfg := toyConfig(from, toySteps)
			cfg.Resume = true
			if err := Run(t.Context(), task, cfg); err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			sameBits(t, "resumed params", snapshot(task.params), want)
			for _, col := range []string{"loss", "grad_norm", "lr", "eval_mse"} {
				got, exp := column(t, from.csv(), col), column(t, wantDir.csv(), col)
				if len(got) != toySteps || !equalMaps(got, exp) {
					t.Errorf("CSV column %s differs from the straight run's:\n got %v\nwant %v", col, got, exp)
				}
			}
			ents, _ := os.ReadDir(from.ckpt())
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".tmp") {
					t.Errorf("temporary file %s survived the resume", e.Name())
				}
			}
		})
	}
}

func equalMaps(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func mustHaveCheckpoint(t *testing.T, d runDir, step int64) *Checkpoint {
	t.Helper()
	c, err := ReadCheckpointFile(filepath.Join(d.ckpt(), checkpointName(step)), 1<<30)
	if err != nil {
		t.Fatalf("checkpoint for step %d: %v", step, err)
	}
	if c.Meta.Step != step || c.Meta.Position != 2*step {
		t.Fatalf("checkpoint meta %+v, want step %d position %d", c.Meta, step, 2*step)
	}
	return c
}

func TestCorruptNewestCheckpointFallsBack(t *testing.T) {
	// The reference: a straight 20-step run.
	const steps = 20
	ref := runDir{t.TempDir()}
	refTask := newToyTask(toyN, toyBatch, 7, 1)
	if err := Run(t.Context(), refTask, toyConfig(ref, steps)); err != nil {
		t.Fatal(err)
	}
	want := snapshot(refTask.params)

	corruptions := []struct {
		name string
		mod  func(b []byte) []byte
	}{
		{"truncated to half", func(b []byte) []byte { return b[:len(b)/2] }},
		{"truncated by one byte", func(b []byte) []byte { return b[:len(b)-1] }},
		{"empty", func([]byte) []byte { return nil }},
		{"header only", func(b []byte) []byte { return b[:ckptHeaderSize] }},
		{"bit flip in the compressed payload", func(b []byte) []byte { b[len(b)/2] ^= 0x10; return b }},
		{"bit flip in the checksum", func(b []byte) []byte { b[30] ^= 1; return b }},
		{"bit flip in the length", func(b []byte) []byte { b[16] ^= 1; return b }},
		{"garbage appended", func(b []byte) []byte { return append(b, "trailing"...) }},
		{"wrong magic", func(b []byte) []byte { b[0] = 'X'; return b }},
		{"payload re-compressed after a change", func(b []byte) []byte { return recompressChanged(t, b) }},
	}
	for _, tc := range corruptions {
		t.Run(tc.name, func(t *testing.T) {
			d := runDir{t.TempDir()}
			if err := Run(t.Context(), newToyTask(toyN, toyBatch, 7, 1), toyConfig(d, steps)); err != nil {
				t.Fatal(err)
			}
			newest := filepath.Join(d.ckpt(), checkpointName(20))
			data, err := os.ReadFile(newest)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(newest, tc.mod(data), 0o644); err != nil {
				t.Fatal(err)
			}
			var logBuf bytes.Buffer
			task := newToyTask(toyN, toyBatch, 7, 99)
			cfg := toyConfig(d, steps)
			cfg.Resume = true
			cfg.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
			if err := Run(t.Context(), task, cfg); err != nil {
				t.Fatalf("resume: %v", err)
			}
			if !strings.Contains(logBuf.String(), "level=WARN msg=\"checkpoint unusable") {
				t.Errorf("no warning logged; log:\n%s", logBuf.String())
			}
			if _, err := os.Stat(newest + ".corrupt"); err != nil {
				t.Errorf("corrupt checkpoint not set aside: %v", err)
			}
			if task.seen[0].Step != 10 {
				t.Errorf("resumed at step %d, want 10 (the previous checkpoint)", task.seen[0].Step)
			}
			sameBits(t, "params after fallback", snapshot(task.params), want)
			mustHaveCheckpoint(t, d, 20)
		})
	}

	t.Run("all corrupt", func(t *testing.T) {
		d := runDir{t.TempDir()}
		if err := Run(t.Context(), newToyTask(toyN, toyBatch, 7, 1), toyConfig(d, steps)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []int64{10, 20} {
			p := filepath.Join(d.ckpt(), checkpointName(s))
			if err := os.Truncate(p, 100); err != nil {
				t.Fatal(err)
			}
		}
		task := newToyTask(toyN, toyBatch, 7, 99)
		before := snapshot(task.params)
		cfg := toyConfig(d, steps)
		cfg.Resume = true
		err := Run(t.Context(), task, cfg)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want an error wrapping ErrCorrupt", err)
		}
		sameBits(t, "params after a failed resume", snapshot(task.params), before)
	})
}

// recompressChanged decodes a checkpoint's payload, changes one float and re-encodes it under
// the original header, so only the SHA-256 can catch it (zstd's own checksum is recomputed).
func recompressChanged(t *testing.T, file []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	c, err := ReadCheckpoint(bytes.NewReader(file), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	c.Tensors[0].Data[0] += 1
	f, err := os.Create(filepath.Join(dir, "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := writeCheckpoint(f, &c.Meta, c.Tensors); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	copy(out[24:56], file[24:56]) // the original checksum
	return out
}

func TestToyTrainsToLowLoss(t *testing.T) {
	d := runDir{t.TempDir()}
	task := toyEvalTask{newToyTask(256, 16, 3, 4)}
	start := task.fullLoss()
	var progress bytes.Buffer
	cfg := Config{
		Steps:         400,
		Seed:          1,
		Schedule:      WarmupDecay{Peak: 0.02, Floor: 0.001, Warmup: 20, Total: 400, Shape: DecayCosine},
		ClipNorm:      1,
		CheckpointDir: d.ckpt(),
		EvalEvery:     100,
		LogCSV:        d.csv(),
		PlotDir:       d.root,
		Progress:      &progress,
		ProgressStyle: ProgressLines,
		Logger:        quiet(),
		NoSignals:     true,
	}
	if err := Run(t.Context(), task, cfg); err != nil {
		t.Fatal(err)
	}
	end := task.fullLoss()
	t.Logf("full-data loss %.4f → %.4f", start, end)
	if end > 0.05*start {
		t.Fatalf("loss %.4f → %.4f: did not fall below 5%% of the start", start, end)
	}
	evals := column(t, d.csv(), "eval_mse")
	if v, _ := strconv.ParseFloat(evals[400], 64); math.Abs(v-end) > 1e-6*end {
		t.Errorf("eval_mse at step 400 is %q, want %v", evals[400], end)
	}
	for _, step := range []int{100, 200, 300, 400} {
		if evals[step] == "" {
			t.Errorf("no eval logged at step %d", step)
		}
	}
	if evals[150] != "" {
		t.Errorf("eval logged at step 150: %q", evals[150])
	}
	if rates := column(t, d.csv(), "audio_s_per_s"); rates[1] == "" {
		t.Error("task counter audio_s not logged as a rate")
	}
	for _, f := range []string{"loss.png", "eval_mse.png"} {
		if _, err := os.Stat(filepath.Join(d.root, f)); err != nil {
			t.Errorf("plot %s: %v", f, err)
		}
	}
	if files, _ := listCheckpoints(d.ckpt()); len(files) != 1 || files[0].step != 400 {
		t.Errorf("checkpoints %v, want only step 400", files)
	}
	last := lastLine(progress.String())
	if !strings.HasPrefix(last, "step 400/400 loss ") || !strings.Contains(last, "audio_s/s") || !strings.Contains(last, "mse ") {
		t.Errorf("last progress line %q", last)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func TestAccumulationMatchesLargerBatch(t *testing.T) {
	tests := []struct {
		accum, batch int
	}{
		{2, 8},
		{4, 4},
		{16, 1},
	}
	train := func(accum, batch int) [][]float32 {
		task := newToyTask(64, batch, 5, 6)
		cfg := Config{Steps: 12, Accum: accum, Seed: 3, Schedule: Constant(0.01), ClipNorm: 0.3,
			Optimizer: AdamWConfig{WeightDecay: 0.1}, Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); err != nil {
			t.Fatal(err)
		}
		return snapshot(task.params)
	}
	want := train(1, 16)
	for _, tc := range tests {
		t.Run(fmt.Sprintf("accum %d × batch %d", tc.accum, tc.batch), func(t *testing.T) {
			got := train(tc.accum, tc.batch)
			for i := range want {
				for j := range want[i] {
					if d := math.Abs(float64(got[i][j] - want[i][j])); d > 1e-5*max(1, math.Abs(float64(want[i][j]))) {
						t.Fatalf("param %d[%d]: %v, want %v (batch 16 in one micro-batch)", i, j, got[i][j], want[i][j])
					}
				}
			}
		})
	}
}

// constTask reports a fixed gradient g on one parameter, and a loss of 1, on every micro-batch;
// steps in poison report poisoned values instead.
type constTask struct {
	p      []Param
	g      []float32
	poison map[int]float32
	starts [][]float32 // params at the start of each step
}

func newConstTask(g ...float32) *constTask {
	w := tensor.New(len(g))
	for i := range w.Data {
		w.Data[i] = 1
	}
	return &constTask{p: []Param{{Name: "w", W: w, Grad: tensor.New(len(g)), Decay: true}}, g: g}
}

func (c *constTask) Params() []Param { return c.p }

func (c *constTask) Step(_ context.Context, b Batch, _ *rand.Rand) (StepResult, error) {
	if b.Micro == 0 {
		c.starts = append(c.starts, slices.Clone(c.p[0].W.Data))
	}
	for i, g := range c.g {
		c.p[0].Grad.Data[i] += g
	}
	if v, ok := c.poison[b.Step]; ok {
		c.p[0].Grad.Data[0] = v
	}
	return StepResult{Loss: 1, Items: 1}, nil
}

// TestClipAndAverage checks the factor the trainer applies to the gradient, read back from
// AdamW's first moment after one step: m = (1−β1)·g·scale with scale = clip/‖ḡ‖ / accum.
func TestClipAndAverage(t *testing.T) {
	tests := []struct {
		name      string
		accum     int
		clip      float64
		wantNorm  float64 // logged grad_norm: of the averaged gradient, before clipping
		wantScale float64 // applied to the accumulated gradient buffer
	}{
		{"no clipping", 1, 0, 5, 1},
		{"clip above the norm", 1, 10, 5, 1},
		{"clip to 1", 1, 1, 5, 1 / (5 + 1e-6)},
		{"average of 4", 4, 0, 5, 0.25},
		{"average of 4 then clip", 4, 2.5, 5, 0.25 * 2.5 / (5 + 1e-6)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := runDir{t.TempDir()}
			task := newConstTask(3, 4) // ‖g‖ = 5
			cfg := Config{Steps: 1, Accum: tc.accum, Schedule: Constant(0.1), ClipNorm: tc.clip,
				CheckpointDir: d.ckpt(), LogCSV: d.csv(), Logger: quiet(), NoSignals: true}
			if err := Run(t.Context(), task, cfg); err != nil {
				t.Fatal(err)
			}
			if got, _ := strconv.ParseFloat(column(t, d.csv(), "grad_norm")[1], 64); math.Abs(got-tc.wantNorm) > 1e-9 {
				t.Errorf("grad_norm %v, want %v", got, tc.wantNorm)
			}
			c, err := ReadCheckpointFile(filepath.Join(d.ckpt(), checkpointName(1)), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			m, _ := c.Tensor("adamw.m/w")
			for i, g := range []float64{3, 4} {
				want := 0.1 * g * float64(tc.accum) * tc.wantScale
				if math.Abs(float64(m.Data[i])-want) > 1e-6*want {
					t.Errorf("m[%d] = %v, want %v", i, m.Data[i], want)
				}
			}
		})
	}
}

func TestNonFiniteStepsAreSkipped(t *testing.T) {
	d := runDir{t.TempDir()}
	task := newConstTask(0.5, -0.5)
	task.poison = map[int]float32{2: float32(math.NaN()), 4: float32(math.Inf(1))}
	var logBuf bytes.Buffer
	cfg := Config{Steps: 6, Accum: 2, Schedule: Constant(0.1), CheckpointDir: d.ckpt(), LogCSV: d.csv(),
		Logger: slog.New(slog.NewTextHandler(&logBuf, nil)), NoSignals: true}
	if err := Run(t.Context(), task, cfg); err != nil {
		t.Fatal(err)
	}
	for _, s := range []int{2, 4} {
		if !slices.Equal(task.starts[s], task.starts[s+1]) {
			t.Errorf("step %d was not skipped: params moved from %v to %v", s, task.starts[s], task.starts[s+1])
		}
	}
	for _, s := range []int{0, 1, 3} {
		if slices.Equal(task.starts[s], task.starts[s+1]) {
			t.Errorf("step %d did not update", s)
		}
	}
	want := map[int]string{1: "0", 2: "0", 3: "1", 4: "1", 5: "2", 6: "2"}
	if got := column(t, d.csv(), "skipped"); !equalMaps(got, want) {
		t.Errorf("skipped column %v, want %v", got, want)
	}
	c := mustReadNewest(t, d.ckpt())
	if c.Meta.Skipped != 2 || c.Meta.OptimizerStep != 4 || c.Meta.Step != 6 || c.Meta.Position != 12 {
		t.Errorf("checkpoint meta %+v", c.Meta)
	}
	if n := strings.Count(logBuf.String(), "step skipped"); n != 2 {
		t.Errorf("%d skip warnings, want 2", n)
	}
}

func mustReadNewest(t *testing.T, dir string) *Checkpoint {
	t.Helper()
	c, _, err := loadNewest(dir, 1<<30, quiet())
	if err != nil || c == nil {
		t.Fatalf("newest checkpoint in %s: %v", dir, err)
	}
	return c
}

func TestDivergenceAborts(t *testing.T) {
	d := runDir{t.TempDir()}
	task := newConstTask(1)
	task.poison = map[int]float32{}
	for s := 2; s < 100; s++ {
		task.poison[s] = float32(math.NaN())
	}
	cfg := Config{Steps: 100, Schedule: Constant(0.1), MaxConsecutiveSkips: 3, CheckpointDir: d.ckpt(),
		Logger: quiet(), NoSignals: true}
	err := Run(t.Context(), task, cfg)
	if !errors.Is(err, ErrDiverged) {
		t.Fatalf("got %v, want ErrDiverged", err)
	}
	c := mustReadNewest(t, d.ckpt())
	if c.Meta.Step != 5 || c.Meta.Skipped != 3 {
		t.Errorf("checkpoint at step %d with %d skipped, want 5 and 3", c.Meta.Step, c.Meta.Skipped)
	}
}

func TestResumeRules(t *testing.T) {
	finished := func(t *testing.T, cfg func(*Config)) runDir {
		d := runDir{t.TempDir()}
		c := Config{Steps: 10, Seed: 1, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), LogCSV: d.csv(),
			Logger: quiet(), NoSignals: true}
		if cfg != nil {
			cfg(&c)
		}
		if err := Run(t.Context(), newToyTask(32, 4, 1, 1), c); err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("fresh run refuses a folder with checkpoints", func(t *testing.T) {
		d := finished(t, nil)
		err := Run(t.Context(), newToyTask(32, 4, 1, 1), Config{Steps: 10, Schedule: Constant(0.01),
			CheckpointDir: d.ckpt(), Logger: quiet(), NoSignals: true})
		if !errors.Is(err, ErrCheckpointsExist) {
			t.Fatalf("got %v, want ErrCheckpointsExist", err)
		}
	})
	t.Run("changed seed is a config mismatch", func(t *testing.T) {
		d := finished(t, nil)
		cfg := Config{Steps: 20, Seed: 2, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), Resume: true,
			Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), newToyTask(32, 4, 1, 1), cfg); !errors.Is(err, ErrConfigMismatch) {
			t.Fatalf("got %v, want ErrConfigMismatch", err)
		}
		cfg.IgnoreConfigHash = true
		if err := Run(t.Context(), newToyTask(32, 4, 1, 1), cfg); err != nil {
			t.Fatalf("with IgnoreConfigHash: %v", err)
		}
	})
	t.Run("changed model is a config mismatch", func(t *testing.T) {
		d := finished(t, nil)
		task := newToyTask(32, 4, 1, 1)
		task.params[1].Decay = true
		cfg := Config{Steps: 20, Seed: 1, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), Resume: true,
			Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); !errors.Is(err, ErrConfigMismatch) {
			t.Fatalf("got %v, want ErrConfigMismatch", err)
		}
	})
	t.Run("missing tensor", func(t *testing.T) {
		d := finished(t, nil)
		task := newToyTask(32, 4, 1, 1)
		task.params = append(task.params, Param{Name: "extra", W: tensor.New(2), Grad: tensor.New(2)})
		cfg := Config{Steps: 20, Seed: 1, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), Resume: true,
			IgnoreConfigHash: true, Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); err == nil || !strings.Contains(err.Error(), `lacks "param/extra"`) {
			t.Fatalf("got %v, want a missing-tensor error", err)
		}
	})
	t.Run("already complete", func(t *testing.T) {
		d := finished(t, nil)
		task := newToyTask(32, 4, 1, 1)
		cfg := Config{Steps: 10, Seed: 1, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), LogCSV: d.csv(),
			Resume: true, Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); err != nil {
			t.Fatal(err)
		}
		if len(task.seen) != 0 {
			t.Errorf("a finished run trained %d more micro-batches", len(task.seen))
		}
		if rows := column(t, d.csv(), "loss"); len(rows) != 10 {
			t.Errorf("CSV has %d rows after a no-op resume, want 10", len(rows))
		}
	})
	t.Run("extending a finished run equals the longer run", func(t *testing.T) {
		d := finished(t, nil)
		task := newToyTask(32, 4, 1, 1)
		cfg := Config{Steps: 25, Seed: 1, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), LogCSV: d.csv(),
			Resume: true, Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); err != nil {
			t.Fatal(err)
		}
		long := newToyTask(32, 4, 1, 1)
		cfg = Config{Steps: 25, Seed: 1, Schedule: Constant(0.01), Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), long, cfg); err != nil {
			t.Fatal(err)
		}
		sameBits(t, "extended run", snapshot(task.params), snapshot(long.params))
	})
	t.Run("resume with no checkpoint starts fresh", func(t *testing.T) {
		d := runDir{t.TempDir()}
		task := newToyTask(32, 4, 1, 1)
		cfg := Config{Steps: 3, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), Resume: true, Logger: quiet(), NoSignals: true}
		if err := Run(t.Context(), task, cfg); err != nil {
			t.Fatal(err)
		}
		if len(task.seen) != 3 || task.seen[0].Index != 0 {
			t.Errorf("batches %v", task.seen)
		}
	})
}

func TestCheckpointKeepsNewest(t *testing.T) {
	d := runDir{t.TempDir()}
	cfg := Config{Steps: 50, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), CheckpointSteps: 10,
		KeepCheckpoints: 3, Logger: quiet(), NoSignals: true}
	if err := Run(t.Context(), newToyTask(32, 4, 1, 1), cfg); err != nil {
		t.Fatal(err)
	}
	files, err := listCheckpoints(d.ckpt())
	if err != nil {
		t.Fatal(err)
	}
	var steps []int64
	for _, f := range files {
		steps = append(steps, f.step)
	}
	if !slices.Equal(steps, []int64{50, 40, 30}) {
		t.Errorf("kept checkpoints %v, want [50 40 30]", steps)
	}
}

// clockTask advances a fake clock by 20 s per step.
type clockTask struct {
	*constTask
	clock *time.Time
}

func (c clockTask) Step(ctx context.Context, b Batch, r *rand.Rand) (StepResult, error) {
	*c.clock = c.clock.Add(20 * time.Second)
	return c.constTask.Step(ctx, b, r)
}

// TestPeriodicCheckpoint drives the clock by hand: with 20 s steps and CheckpointEvery of a
// minute, a checkpoint is due every third step, plus one at the end.
func TestPeriodicCheckpoint(t *testing.T) {
	d := runDir{t.TempDir()}
	clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	task := clockTask{newConstTask(1), &clock}
	cfg := Config{Steps: 20, Schedule: Constant(0.01), CheckpointDir: d.ckpt(), CheckpointEvery: time.Minute,
		KeepCheckpoints: 100, Logger: quiet(), NoSignals: true, now: func() time.Time { return clock }}
	if err := Run(t.Context(), task, cfg); err != nil {
		t.Fatal(err)
	}
	files, _ := listCheckpoints(d.ckpt())
	var steps []int64
	for _, f := range files {
		steps = append(steps, f.step)
	}
	if !slices.Equal(steps, []int64{20, 18, 15, 12, 9, 6, 3}) {
		t.Errorf("checkpoints at %v, want [20 18 15 12 9 6 3]", steps)
	}
	if c := mustReadNewest(t, d.ckpt()); c.Meta.Elapsed != 400 {
		t.Errorf("elapsed %v s, want 400", c.Meta.Elapsed)
	}
}

func TestConfigValidation(t *testing.T) {
	ok := func() Config {
		return Config{Steps: 1, Schedule: Constant(0.1), Logger: quiet(), NoSignals: true}
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"zero steps", func(c *Config) { c.Steps = 0 }, "steps 0"},
		{"negative accum", func(c *Config) { c.Accum = -1 }, "accum -1"},
		{"no schedule", func(c *Config) { c.Schedule = nil }, "no learning-rate schedule"},
		{"bad schedule", func(c *Config) { c.Schedule = WarmupDecay{Peak: 1, Warmup: 10, Total: 5} }, "leaves nothing"},
		{"negative lr", func(c *Config) { c.Schedule = Constant(-1) }, "non-negative"},
		{"NaN clip", func(c *Config) { c.ClipNorm = math.NaN() }, "clip norm"},
		{"bad beta", func(c *Config) { c.Optimizer.Beta1 = 1 }, "beta1"},
		{"bad eps", func(c *Config) { c.Optimizer.Eps = -1 }, "eps"},
		{"resume without folder", func(c *Config) { c.Resume = true }, "checkpoint folder"},
		{"plots without CSV", func(c *Config) { c.PlotDir = "x" }, "LogCSV"},
		{"negative keep", func(c *Config) { c.KeepCheckpoints = -1 }, "keep -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok()
			tc.mod(&cfg)
			err := Run(t.Context(), newConstTask(1), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if err := Run(t.Context(), newConstTask(1), ok()); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// failingEval fails its second evaluation.
type failingEval struct {
	*constTask
	calls int
}

func (f *failingEval) Eval(context.Context) (map[string]float64, error) {
	f.calls++
	if f.calls == 2 {
		return nil, io.ErrUnexpectedEOF
	}
	return map[string]float64{"wer": 0.5}, nil
}

func TestEvalErrorStopsWithCheckpoint(t *testing.T) {
	d := runDir{t.TempDir()}
	task := &failingEval{constTask: newConstTask(1)}
	cfg := Config{Steps: 10, Schedule: Constant(0.1), EvalEvery: 3, CheckpointDir: d.ckpt(), Logger: quiet(), NoSignals: true}
	err := Run(t.Context(), task, cfg)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), "eval after step 6") {
		t.Fatalf("got %v", err)
	}
	if c := mustReadNewest(t, d.ckpt()); c.Meta.Step != 6 {
		t.Errorf("checkpoint at step %d, want 6", c.Meta.Step)
	}
}

// badSchedule returns NaN from step 3 on, as a buggy custom schedule might.
type badSchedule struct{}

func (badSchedule) LR(step int) float64 {
	if step >= 3 {
		return math.NaN()
	}
	return 0.1
}

func TestBadScheduleValueStops(t *testing.T) {
	d := runDir{t.TempDir()}
	task := newConstTask(1)
	cfg := Config{Steps: 10, Schedule: badSchedule{}, CheckpointDir: d.ckpt(), Logger: quiet(), NoSignals: true}
	err := Run(t.Context(), task, cfg)
	if err == nil || !strings.Contains(err.Error(), "learning rate NaN for step 4") {
		t.Fatalf("got %v", err)
	}
	if c := mustReadNewest(t, d.ckpt()); c.Meta.Step != 3 || c.Meta.Position != 3 {
		t.Errorf("checkpoint meta %+v, want step 3", c.Meta)
	}
	if len(task.starts) != 3 {
		t.Errorf("the task ran %d steps, want 3", len(task.starts))
	}
}
