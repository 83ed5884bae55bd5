package trainer

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// Sentinel errors, for errors.Is.
var (
	// ErrConfigMismatch: the checkpoint was written under settings that change the trajectory
	// (see Config.IgnoreConfigHash).
	ErrConfigMismatch = errors.New("checkpoint was written with a different training configuration")
	// ErrCheckpointsExist: a fresh run (Resume false) was pointed at a folder that already
	// holds checkpoints, which it would otherwise overwrite and prune.
	ErrCheckpointsExist = errors.New("checkpoint folder already holds checkpoints; set Resume to continue them or use an empty folder")
	// ErrDiverged: too many consecutive steps had non-finite gradients.
	ErrDiverged = errors.New("training diverged")
)

// Batch identifies one micro-batch. Everything a task needs to choose its data is here, so the
// data order is a pure function of (Seed, Index): a resumed run is handed exactly the Index
// sequence the uninterrupted run would have been handed, and a loader can prefetch Index+1
// early.
type Batch struct {
	Seed  uint64 // Config.Seed
	Step  int    // 0-based optimizer step this micro-batch belongs to
	Micro int    // 0 … Accum−1 within the step
	// Index counts the micro-batches consumed before this one since the start of training,
	// across restarts. Skipped steps consume their batches too. With a fixed batch size B,
	// examples Index·B … Index·B+B−1 of an Order are this micro-batch's.
	Index int64
}

// StepResult is what a task reports for one micro-batch.
type StepResult struct {
	// Loss is the mean loss over the micro-batch's items, the quantity whose gradient the task
	// added to the params' Grad.
	Loss float64
	// Items is the number of examples (utterances) in the micro-batch; 0 if not meaningful.
	Items int
	// Counters are extra throughput quantities, summed over micro-batches and reported per
	// second: "audio_s" (seconds of audio) shows as audio_s/s, logged as audio_s_per_s.
	Counters map[string]float64
	// Values are quantities logged as they are, one CSV column each, from the step's last
	// micro-batch (a pruning run's expected sparsity, Lagrange multipliers, per-layer keep
	// ratios). A name "group/series" is drawn with the other series of its group in
	// <PlotDir>/group.png.
	Values map[string]float64
}

// Task is a model plus its objective and data, as the trainer sees it.
type Task interface {
	// Params returns the trainable tensors, in the same order on every call and every run
	// (the order fixes the summation order of the gradient norm, and so exact resumes).
	Params() []Param
	// Step runs forward and backward on micro-batch b and adds (+=) the gradient of the
	// micro-batch's mean loss into each Param.Grad; the trainer averages over micro-batches
	// and zeroes Grad after each update. rng is the trainer's generator, restored exactly on
	// resume; a task that draws from it must do so in a fixed order (or derive its own
	// generators from b.Seed and b.Index instead, which also suits prefetching). Step may use
	// every core. If ctx is cancelled it may return early with ctx.Err(); the partial step is
	// then discarded.
	Step(ctx context.Context, b Batch, rng *rand.Rand) (StepResult, error)
}

// Evaluator is an optional Task capability: dev-set metrics such as "wer" or "cer", computed
// every Config.EvalEvery steps, logged as eval_<name> columns and plotted.
type Evaluator interface {
	Eval(ctx context.Context) (map[string]float64, error)
}

// Fingerprinter is an optional Task capability: a string naming everything about the task
// that changes the trajectory (model config, manifest digests, batch size). It is folded into
// the config hash, so resuming with a different dataset or model fails loudly.
type Fingerprinter interface {
	Fingerprint() string
}

// Config controls Run. Fields marked (hashed) change the trajectory and are folded into the
// config hash stored in each checkpoint; resuming with a different hash fails unless
// IgnoreConfigHash is set. Steps is deliberately not hashed, so a finished run can be extended.
type Config struct {
	// Steps is the total number of optimizer steps, counted over all sessions.
	Steps int
	// Accum is the number of micro-batches per optimizer step (gradient accumulation); 0 means
	// 1. (hashed)
	Accum int
	// Seed fixes the data order and the trainer's RNG. (hashed)
	Seed uint64
	// Schedule gives the learning rate per step. Required. (hashed, by its printed value)
	Schedule Schedule
	// Optimizer holds AdamW's hyperparameters. (hashed)
	Optimizer AdamWConfig
	// ClipNorm clips the global gradient norm (after averaging over micro-batches) to this
	// value; 0 disables clipping. (hashed)
	ClipNorm float64
	// Workers is the number of goroutines the optimizer uses; 0 means 2. Results do not depend
	// on it.
	Workers int
	// MaxConsecutiveSkips aborts with ErrDiverged after this many steps in a row were skipped
	// for non-finite gradients; 0 means 20, negative means never.
	MaxConsecutiveSkips int

	// CheckpointDir receives checkpoints (ckpt-<step>.chk). Empty disables checkpointing.
	CheckpointDir string
	// CheckpointEvery is the wall-clock interval between checkpoints; 0 means 5 minutes,
	// negative disables time-based checkpoints. A checkpoint is also written at the end, on
	// cancellation (SIGINT/SIGTERM) and when the task fails.
	CheckpointEvery time.Duration
	// CheckpointSteps, if positive, also writes a checkpoint every this many steps.
	CheckpointSteps int
	// KeepCheckpoints is how many of the newest checkpoints to keep; 0 means 2, so that a
	// corrupt newest one still leaves one to resume from.
	KeepCheckpoints int
	// Resume continues from the newest readable checkpoint in CheckpointDir (or starts fresh if
	// there is none). Without it, a folder that holds checkpoints is refused.
	Resume bool
	// IgnoreConfigHash resumes even when the hashed settings changed (say, a lower peak LR
	// after a divergence), with a warning.
	IgnoreConfigHash bool

	// EvalEvery runs the task's Eval every this many steps and after the last one; 0 never.
	EvalEvery int
	// LogCSV is the per-step CSV log (see the package documentation); empty disables it.
	LogCSV string
	// PlotDir receives loss.png and eval_<metric>.png, redrawn from the CSV log at every
	// checkpoint and at the end. It needs LogCSV; empty disables plots.
	PlotDir string

	// Progress receives the progress display; nil disables it.
	Progress io.Writer
	// ProgressStyle picks a bar or plain lines; the default draws a bar on a terminal.
	ProgressStyle ProgressStyle
	// ProgressEvery is the interval between plain progress lines; 0 means 10 seconds.
	ProgressEvery time.Duration
	// Logger receives warnings (skipped steps, corrupt checkpoints) and milestones; nil means
	// slog.Default().
	Logger *slog.Logger
	// NoSignals stops Run from turning SIGINT and SIGTERM into cancellation, for callers that
	// handle signals themselves.
	NoSignals bool

	now func() time.Time // clock, replaced in tests
}

func (c Config) withDefaults() (Config, error) {
	c.Accum = cmp.Or(c.Accum, 1)
	c.Workers = cmp.Or(c.Workers, 2)
	c.MaxConsecutiveSkips = cmp.Or(c.MaxConsecutiveSkips, 20)
	c.CheckpointEvery = cmp.Or(c.CheckpointEvery, 5*time.Minute)
	c.KeepCheckpoints = cmp.Or(c.KeepCheckpoints, 2)
	c.ProgressEvery = cmp.Or(c.ProgressEvery, 10*time.Second)
	c.Optimizer = c.Optimizer.withDefaults()
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.now == nil {
		c.now = time.Now
	}
	switch {
	case c.Steps <= 0:
		return c, fmt.Errorf("steps %d must be positive", c.Steps)
	case c.Accum < 1:
		return c, fmt.Errorf("accum %d must be positive", c.Accum)
	case c.Schedule == nil:
		return c, errors.New("no learning-rate schedule")
	case !(c.ClipNorm >= 0) || math.IsInf(c.ClipNorm, 0):
		return c, fmt.Errorf("clip norm %v must be finite and non-negative", c.ClipNorm)
	case c.KeepCheckpoints < 1:
		return c, fmt.Errorf("keep %d checkpoints: must keep at least one", c.KeepCheckpoints)
	case c.Resume && c.CheckpointDir == "":
		return c, errors.New("resume needs a checkpoint folder")
	case c.EvalEvery < 0 || c.CheckpointSteps < 0:
		return c, errors.New("negative eval or checkpoint interval")
	case c.PlotDir != "" && c.LogCSV == "":
		return c, errors.New("plots are drawn from the CSV log: set LogCSV too")
	}
	if v, ok := c.Schedule.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return c, err
		}
	}
	if err := c.Optimizer.validate(); err != nil {
		return c, err
	}
	return c, nil
}

// rngStream is the PCG stream the trainer's generator uses, distinct from Order's.
const rngStream = 0x747261696e65725f

// lossEMABeta smooths the displayed and plotted loss.
const lossEMABeta = 0.98

// errInterrupted is returned by runStep when ctx was cancelled before the step completed.
var errInterrupted = errors.New("interrupted")

// Run trains task for cfg.Steps optimizer steps (in total, across sessions).
//
// Each step calls task.Step for Accum micro-batches (which accumulate into the zeroed Grad
// buffers), measures the averaged gradient's global norm, skips the update if that norm or the
// loss is not finite (counting the skip), clips to ClipNorm, and applies AdamW with the
// scheduled learning rate, zeroing Grad. It then evaluates, logs a CSV row, updates the
// progress display and checkpoints when due.
//
// Unless NoSignals is set, SIGINT and SIGTERM cancel ctx. On cancellation Run writes a
// checkpoint of the last completed step (a step cut short is discarded, RNG included) and
// returns ctx.Err(); a second signal during that write kills the process as usual, which is
// safe because checkpoints are written atomically. When the task fails, Run also writes a
// checkpoint before returning the error, since the state of the last completed step is intact.
//
// With Resume, Run continues from the newest readable checkpoint: parameters, optimizer
// moments, step, data position and RNG are restored, so the continued run is bit-identical to
// one that was never interrupted (given a deterministic task).
func Run(ctx context.Context, task Task, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("train: config: %w", err)
	}
	if task == nil {
		return errors.New("train: nil task")
	}
	params := task.Params()
	opt, err := NewAdamW(params, cfg.Optimizer, cfg.Workers)
	if err != nil {
		return fmt.Errorf("train: %w", err)
	}
	r := &run{cfg: cfg, task: task, params: params, opt: opt, log: cfg.Logger,
		pcg: rand.NewPCG(cfg.Seed, rngStream), lastSaveStep: -1}
	r.rng = rand.New(r.pcg)
	r.eval, _ = task.(Evaluator)
	r.hash = configHash(cfg, params, task)
	if !cfg.NoSignals {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		r.stopSignals = stop
	}
	done, err := r.start()
	if err != nil || done {
		return err
	}
	defer r.metricsClose()
	return r.loop(ctx)
}

// run is the state of one Run call.
type run struct {
	cfg    Config
	task   Task
	eval   Evaluator
	params []Param
	opt    *AdamW
	hash   string
	log    *slog.Logger

	pcg *rand.PCG
	rng *rand.Rand

	step, position, skipped, consecSkips int64
	elapsedBase                          float64 // seconds trained in earlier sessions
	sessionStart                         time.Time
	ema, emaWeight                       float64

	metrics      *metricsLog
	prog         *progress
	lastSaveStep int64
	lastSaveTime time.Time
	stopSignals  func()
	maxPayload   int64
}

// start restores or initialises state; done reports that no step is left to run.
func (r *run) start() (done bool, err error) {
	cfg := r.cfg
	r.sessionStart = cfg.now()
	r.lastSaveTime = r.sessionStart
	r.maxPayload = maxPayloadFor(r.params)
	if cfg.CheckpointDir != "" {
		if err := os.MkdirAll(cfg.CheckpointDir, 0o755); err != nil {
			return false, fmt.Errorf("train: %w", err)
		}
		removeTemps(cfg.CheckpointDir, r.log)
		if cfg.Resume {
			c, path, err := loadNewest(cfg.CheckpointDir, r.maxPayload, r.log)
			if err != nil {
				return false, fmt.Errorf("train: resume: %w", err)
			}
			if c == nil {
				r.log.Info("no checkpoint to resume from: starting fresh", "dir", cfg.CheckpointDir)
			} else {
				if err := r.restore(c); err != nil {
					return false, fmt.Errorf("train: resume from %s: %w", path, err)
				}
				r.log.Info("resumed", "path", path, "step", r.step, "position", r.position)
			}
		} else {
			files, err := listCheckpoints(cfg.CheckpointDir)
			if err != nil {
				return false, fmt.Errorf("train: %w", err)
			}
			if len(files) > 0 {
				return false, fmt.Errorf("train: %s: %w", cfg.CheckpointDir, ErrCheckpointsExist)
			}
		}
	}
	if r.step >= int64(cfg.Steps) {
		r.log.Info("training already complete", "step", r.step, "steps", cfg.Steps)
		return true, nil
	}
	if cfg.LogCSV != "" {
		if r.metrics, err = openMetrics(cfg.LogCSV, cfg.Resume, r.step, r.log); err != nil {
			return false, fmt.Errorf("train: %w", err)
		}
	}
	r.prog = newProgress(cfg.Progress, cfg.ProgressStyle, cfg.ProgressEvery, r.step, int64(cfg.Steps), r.sessionStart)
	r.opt.ZeroGrad()
	n := 0
	for _, p := range r.params {
		n += len(p.W.Data)
	}
	r.log.Info("training", "params", len(r.params), "elements", n, "from_step", r.step, "steps", cfg.Steps,
		"accum", cfg.Accum, "config_hash", r.hash)
	return false, nil
}

func (r *run) loop(ctx context.Context) error {
	for r.step < int64(r.cfg.Steps) {
		if ctx.Err() != nil {
			return r.interrupted(ctx)
		}
		err := r.runStep(ctx)
		switch {
		case errors.Is(err, errInterrupted):
			return r.interrupted(ctx)
		case err != nil:
			return r.failed(err)
		}
		due := r.step == int64(r.cfg.Steps) ||
			(r.cfg.CheckpointSteps > 0 && r.step%int64(r.cfg.CheckpointSteps) == 0) ||
			(r.cfg.CheckpointEvery > 0 && r.cfg.now().Sub(r.lastSaveTime) >= r.cfg.CheckpointEvery)
		if due {
			if err := r.checkpoint(); err != nil {
				return fmt.Errorf("train: %w", err)
			}
		}
	}
	r.prog.finish()
	return nil
}

// runStep runs one optimizer step and everything logged with it.
func (r *run) runStep(ctx context.Context) error {
	cfg := r.cfg
	t0 := cfg.now()
	lr := cfg.Schedule.LR(int(r.step))
	if !finite(lr) || lr < 0 {
		return fmt.Errorf("schedule gave learning rate %v for step %d", lr, r.step+1)
	}
	snap := *r.pcg
	var loss float64
	var items int64
	var counters, values map[string]float64
	for micro := range cfg.Accum {
		if micro > 0 && ctx.Err() != nil {
			*r.pcg = snap // the checkpoint must hold the RNG as this step found it
			return errInterrupted
		}
		b := Batch{Seed: cfg.Seed, Step: int(r.step), Micro: micro, Index: r.position + int64(micro)}
		res, err := r.task.Step(ctx, b, r.rng)
		if err != nil {
			*r.pcg = snap
			if ctx.Err() != nil {
				return errInterrupted
			}
			return fmt.Errorf("step %d, micro-batch %d: %w", r.step+1, micro, err)
		}
		loss += res.Loss
		items += int64(res.Items)
		if res.Values != nil {
			values = res.Values
		}
		for k, v := range res.Counters {
			if counters == nil {
				counters = make(map[string]float64, len(res.Counters))
			}
			counters[k] += v
		}
	}
	accum := float64(cfg.Accum)
	loss /= accum
	norm := r.opt.GradNorm() / accum
	if finite(norm) && finite(loss) {
		r.consecSkips = 0
		scale := 1 / accum
		if cfg.ClipNorm > 0 && norm > cfg.ClipNorm {
			scale *= clipFactor(norm, cfg.ClipNorm)
		}
		r.opt.Step(lr, float32(scale))
		r.ema = lossEMABeta*r.ema + (1-lossEMABeta)*loss
		r.emaWeight = lossEMABeta*r.emaWeight + (1 - lossEMABeta)
	} else {
		r.opt.ZeroGrad()
		r.skipped++
		r.consecSkips++
		r.log.Warn("non-finite gradient or loss: step skipped", "step", r.step+1, "loss", loss, "grad_norm", norm,
			"skipped_total", r.skipped)
	}
	r.step++
	r.position += int64(cfg.Accum)
	now := cfg.now()
	stepTime := now.Sub(t0).Seconds()

	var evals map[string]float64
	if r.eval != nil && cfg.EvalEvery > 0 && (r.step%int64(cfg.EvalEvery) == 0 || r.step == int64(cfg.Steps)) {
		var err error
		if evals, err = r.eval.Eval(ctx); err != nil {
			if ctx.Err() != nil {
				return errInterrupted // the step itself is complete; the checkpoint keeps it
			}
			return fmt.Errorf("eval after step %d: %w", r.step, err)
		}
		r.log.Info("eval", "step", r.step, "metrics", evals)
	}

	if r.metrics != nil {
		cells := []cell{
			{"step", strconv.FormatInt(r.step, 10)},
			{"time", now.UTC().Format(time.RFC3339)},
			{"elapsed_s", strconv.FormatFloat(r.elapsed(now), 'f', 3, 64)},
			{"loss", fmtFloat(loss)},
			{"lr", fmtFloat(lr)},
			{"grad_norm", fmtFloat(norm)},
			{"items_per_s", ""},
			{"skipped", strconv.FormatInt(r.skipped, 10)},
		}
		if stepTime > 0 && items > 0 {
			cells[6].val = fmtFloat(float64(items) / stepTime)
		}
		for _, k := range slices.Sorted(maps.Keys(counters)) {
			if stepTime > 0 {
				cells = append(cells, cell{k + "_per_s", fmtFloat(counters[k] / stepTime)})
			}
		}
		for _, k := range slices.Sorted(maps.Keys(values)) {
			cells = append(cells, cell{k, fmtFloat(values[k])})
		}
		for _, k := range slices.Sorted(maps.Keys(evals)) {
			cells = append(cells, cell{evalPrefix + k, fmtFloat(evals[k])})
		}
		if err := r.metrics.append(cells); err != nil {
			return err
		}
	}
	r.prog.update(report{step: r.step, total: int64(cfg.Steps), lossEMA: r.lossEMA(), lr: lr, gnorm: norm,
		items: items, counters: counters, skipped: r.skipped, eval: evals, now: now})
	if n := cfg.MaxConsecutiveSkips; n > 0 && r.consecSkips >= int64(n) {
		return fmt.Errorf("%w: %d consecutive steps had non-finite gradients", ErrDiverged, r.consecSkips)
	}
	return nil
}

// clipFactor is the factor that brings a gradient of the given norm down to maxNorm, with
// PyTorch's clip_grad_norm_ guard against division by a zero norm.
func clipFactor(norm, maxNorm float64) float64 {
	return min(1, maxNorm/(norm+1e-6))
}

func (r *run) lossEMA() float64 {
	if r.emaWeight == 0 {
		return math.NaN()
	}
	return r.ema / r.emaWeight
}

func (r *run) elapsed(now time.Time) float64 {
	return r.elapsedBase + now.Sub(r.sessionStart).Seconds()
}

// interrupted writes a checkpoint of the last completed step and returns ctx.Err().
func (r *run) interrupted(ctx context.Context) error {
	if r.stopSignals != nil {
		r.stopSignals() // a second ^C now kills the process; the atomic write makes that safe
	}
	r.prog.note("interrupted after step %d: writing checkpoint", r.step)
	r.log.Info("interrupted: writing checkpoint", "step", r.step, "cause", context.Cause(ctx))
	if err := r.checkpoint(); err != nil {
		return errors.Join(ctx.Err(), fmt.Errorf("train: %w", err))
	}
	return ctx.Err()
}

// failed saves what the last completed step left (the task's error did not touch it) and
// returns err.
func (r *run) failed(err error) error {
	err = fmt.Errorf("train: %w", err)
	r.prog.note("stopped after step %d: %v", r.step, err)
	if cerr := r.checkpoint(); cerr != nil {
		return errors.Join(err, fmt.Errorf("train: %w", cerr))
	}
	return err
}

// checkpoint writes the state after step r.step (unless already written), prunes old
// checkpoints and redraws the plots.
func (r *run) checkpoint() error {
	now := r.cfg.now()
	r.lastSaveTime = now
	var err error
	if dir := r.cfg.CheckpointDir; dir != "" && r.lastSaveStep != r.step {
		t0 := time.Now()
		var path string
		if path, err = r.save(now); err == nil {
			r.lastSaveStep = r.step
			err = pruneCheckpoints(dir, r.cfg.KeepCheckpoints)
			r.log.Info("checkpoint written", "path", path, "step", r.step, "took", time.Since(t0).Round(time.Millisecond))
		}
	}
	if r.metrics != nil && r.cfg.PlotDir != "" {
		if perr := r.metrics.plot(r.cfg.PlotDir); perr != nil {
			// Plots are a convenience: a failure is logged, never fatal.
			r.log.Warn("plots not drawn", "err", perr)
		}
	}
	return err
}

func (r *run) save(now time.Time) (string, error) {
	rng, err := r.pcg.MarshalBinary()
	if err != nil {
		return "", fmt.Errorf("save checkpoint: rng: %w", err)
	}
	meta := CheckpointMeta{
		Step: r.step, Position: r.position, OptimizerStep: r.opt.t, Skipped: r.skipped,
		Seed: r.cfg.Seed, RNG: rng, ConfigHash: r.hash, Elapsed: r.elapsed(now),
		LossEMA: r.ema, LossEMAWeight: r.emaWeight, Written: now.UTC(),
	}
	tensors := make([]NamedTensor, 0, 3*len(r.params))
	for i, p := range r.params {
		tensors = append(tensors,
			NamedTensor{"param/" + p.Name, p.W.Shape, p.W.Data},
			NamedTensor{"adamw.m/" + p.Name, p.W.Shape, r.opt.m[i]},
			NamedTensor{"adamw.v/" + p.Name, p.W.Shape, r.opt.v[i]})
	}
	return saveCheckpointFile(r.cfg.CheckpointDir, &meta, tensors)
}

// restore loads a verified checkpoint into the params, the optimizer and the run. Every
// tensor is checked before any is copied, so a mismatch leaves the task's params untouched.
func (r *run) restore(c *Checkpoint) error {
	m := c.Meta
	if m.ConfigHash != r.hash {
		if !r.cfg.IgnoreConfigHash {
			return fmt.Errorf("config hash %s, this run's is %s: %w", m.ConfigHash, r.hash, ErrConfigMismatch)
		}
		r.log.Warn("resuming under a changed configuration", "checkpoint_hash", m.ConfigHash, "config_hash", r.hash)
	}
	byName := make(map[string]NamedTensor, len(c.Tensors))
	for _, t := range c.Tensors {
		byName[t.Name] = t
	}
	type dst struct {
		rec NamedTensor
		to  []float32
	}
	var copies []dst
	for i, p := range r.params {
		for _, pair := range []struct {
			name string
			to   []float32
		}{{"param/" + p.Name, p.W.Data}, {"adamw.m/" + p.Name, r.opt.m[i]}, {"adamw.v/" + p.Name, r.opt.v[i]}} {
			rec, ok := byName[pair.name]
			if !ok {
				return fmt.Errorf("checkpoint lacks %q", pair.name)
			}
			if err := rec.fits(p.W.Shape); err != nil {
				return err
			}
			copies = append(copies, dst{rec, pair.to})
			delete(byName, pair.name)
		}
	}
	if len(byName) > 0 {
		extra := slices.Sorted(maps.Keys(byName))
		return fmt.Errorf("checkpoint holds %d tensors the task does not train, such as %q", len(extra), extra[0])
	}
	var pcg rand.PCG
	if err := pcg.UnmarshalBinary(m.RNG); err != nil {
		return fmt.Errorf("rng state: %w", err)
	}
	for _, c := range copies {
		copy(c.to, c.rec.Data)
	}
	*r.pcg = pcg
	r.opt.t = m.OptimizerStep
	r.step, r.position, r.skipped = m.Step, m.Position, m.Skipped
	r.elapsedBase = m.Elapsed
	r.ema, r.emaWeight = m.LossEMA, m.LossEMAWeight
	r.lastSaveStep = m.Step
	return nil
}

func (r *run) metricsClose() {
	if r.metrics != nil {
		if err := r.metrics.close(); err != nil {
			r.log.Warn("metrics log", "err", err)
		}
	}
}

// configHash fingerprints the settings that change the trajectory (see Config).
func configHash(cfg Config, params []Param, task Task) string {
	h := sha256.New()
	fmt.Fprintf(h, "chorus-trainer/1\naccum=%d\nseed=%d\nclip=%v\nadamw=%+v\nschedule=%T%+v\n",
		cfg.Accum, cfg.Seed, cfg.ClipNorm, cfg.Optimizer, cfg.Schedule, cfg.Schedule)
	sorted := slices.Clone(params)
	slices.SortFunc(sorted, func(a, b Param) int { return cmp.Compare(a.Name, b.Name) })
	for _, p := range sorted {
		fmt.Fprintf(h, "param %q %v decay=%t\n", p.Name, p.W.Shape, p.Decay)
		if p.LR > 0 { // only then, so that runs without groups keep their hashes
			fmt.Fprintf(h, "param %q lr=%v\n", p.Name, p.LR)
		}
	}
	if f, ok := task.(Fingerprinter); ok {
		fmt.Fprintf(h, "task %q\n", f.Fingerprint())
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// maxPayloadFor bounds the payload of a checkpoint of params: three float32 arrays per param,
// the record headers and the meta. ReadCheckpoint refuses anything longer before decompressing.
func maxPayloadFor(params []Param) int64 {
	n := int64(8 + maxMetaLen)
	for _, p := range params {
		n += 3 * (int64(len(p.W.Data))*4 + int64(len(p.Name)) + 16 + 3 + 4*maxRank)
	}
	return n
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', 7, 64) }
