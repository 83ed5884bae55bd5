package speech

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/grow"
	"github.com/chorus-asr/chorus/training/trainer"
	"github.com/chorus-asr/chorus/training/upcycle"
)

// Recipe is a training job as written in a recipe file (recipes/*.json): the model, the data,
// the objective and the schedule. Data and model paths are relative to the current folder
// (the repository root, where `make` runs) unless absolute.
type Recipe struct {
	Name string `json:"name"` // the variant it produces, e.g. "chorus-micro"
	// Kind is "" or "train" (train from scratch or fine-tune From) or "prune" (CoFi pruning
	// with distillation from Teacher, configured by Prune).
	Kind string `json:"kind,omitempty"`
	// Teacher is the variant a prune recipe starts from and distils from: a folder or the name
	// of an embedded variant (chorus-micro); empty: the embedded default model. In a train
	// recipe with a kd block it is the variant distilled from (empty: the From variant); it
	// must share the student's vocabulary.
	Teacher string       `json:"teacher,omitempty"`
	Prune   *PruneRecipe `json:"prune,omitempty"`
	// Publish, when set, is a models directory the final variant is published into (see
	// Publish); the --publish flag overrides it.
	Publish string `json:"publish,omitempty"`
	// From fine-tunes this variant (folder) instead of training from scratch.
	From string `json:"from,omitempty"`
	// Upcycle, with From, first turns the From variant into a gated mixture of experts
	// (training/upcycle: every feed-forward block copied into E experts behind a fresh gate),
	// then trains that.
	Upcycle *UpcycleRecipe `json:"upcycle,omitempty"`
	// Grow, with From, first deepens the From variant (training/grow: each new layer a copy
	// of its neighbour whose output projections are zero, so the grown model starts out
	// computing its parent's function), then trains that: more capacity without starting
	// over (recipes/chorus-micro-grow.json).
	Grow *grow.Options `json:"grow,omitempty"`
	// Route, with From a mixture-of-experts variant, fine-tunes it under one of its routers
	// (asr.ParseRoutingChoice's syntax, e.g. "mlp:0.25" or "mlp:0.25/enc"): each token's
	// feed-forward blocks keep only the experts the router selects (see Route). The trained
	// variant keeps the layout and routers and serves this routing by default.
	Route string `json:"route,omitempty"`
	// KD, with From, distils from Teacher or else the From variant as loaded (a frozen copy,
	// run dense) while fine-tuning: the student learns the teacher's output distribution
	// besides the transcripts — what a model fine-tuned under a router (Route) is to recover.
	KD    *KDRecipe    `json:"kd,omitempty"`
	Model whisper.Dims `json:"model"` // n_vocab is set from the tokenizer
	// Vocab is the size of the byte-level BPE learned from the training text (ordinary tokens,
	// the 256 bytes included); Whisper's special tokens are added after them.
	Vocab int `json:"vocab"`
	Data  struct {
		Train   []string `json:"train"` // manifests
		Dev     string   `json:"dev"`
		EvalN   int      `json:"eval_utterances"`
		OnError string   `json:"on_error"` // "skip" (default) or "stop" for bad manifest lines
	} `json:"data"`
	Objective struct {
		CTCWeight         float64     `json:"ctc_weight"`
		LabelSmoothing    float32     `json:"label_smoothing"`
		TimestampFraction float64     `json:"timestamp_fraction"`
		SpecAugment       SpecAugment `json:"spec_augment"`
		Silence           Silence     `json:"silence"`
	} `json:"objective"`
	Batch struct {
		Frames   int `json:"frames"`
		MaxItems int `json:"max_items"`
		Accum    int `json:"accum"`
	} `json:"batch"`
	Optim struct {
		PeakLR      float64 `json:"peak_lr"`
		FloorLR     float64 `json:"floor_lr"`
		Warmup      int     `json:"warmup"`
		Steps       int     `json:"steps"`
		Schedule    string  `json:"schedule"` // cosine, linear or none
		WeightDecay float64 `json:"weight_decay"`
		Beta2       float64 `json:"beta2"`
		ClipNorm    float64 `json:"clip_norm"`
	} `json:"optim"`
	Seed            uint64 `json:"seed"`
	EvalEvery       int    `json:"eval_every"`
	CheckpointEvery string `json:"checkpoint_every"` // Go duration, default 5m
}

// KDRecipe is a recipe's "kd" block: logit distillation (Hinton et al. 2015; distill.LogitKD)
// from the recipe's teacher, or else its From variant. The loss is (1−Logit)·speech + Logit·KD.
type KDRecipe struct {
	Logit       float64 `json:"logit"`       // weight of the distillation term, in (0, 1)
	Temperature float64 `json:"temperature"` // softmax temperature, default 2
}

// UpcycleRecipe is a recipe's "upcycle" block (sparse upcycling of the From variant).
type UpcycleRecipe struct {
	Experts int `json:"experts"` // E ≥ 2 copies of each feed-forward block
	TopK    int `json:"top_k"`   // experts each token runs, 1…E
	// BalanceWeight weights each block's load-balancing loss (default 0.01, Switch
	// Transformer's; a negative value turns it off).
	BalanceWeight float64 `json:"balance_weight,omitempty"`
	// GateScale scales the gates' initial weights (default 0.1: nearly uniform routing).
	GateScale float64 `json:"gate_scale,omitempty"`
}

func (u *UpcycleRecipe) options(seed uint64) upcycle.Options {
	return upcycle.Options{Experts: u.Experts, TopK: u.TopK, Seed: seed, GateScale: u.GateScale}
}

func (u *UpcycleRecipe) balance() float64 {
	switch {
	case u == nil || u.BalanceWeight < 0:
		return 0
	case u.BalanceWeight == 0:
		return 0.01
	}
	return u.BalanceWeight
}

// ReadRecipe parses a recipe file.
func ReadRecipe(path string) (*Recipe, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("recipe: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Recipe
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("recipe %s: %w", path, err)
	}
	if r.Name == "" || len(r.Data.Train) == 0 || r.Optim.Steps <= 0 || r.Optim.PeakLR <= 0 {
		return nil, fmt.Errorf("recipe %s: name, data.train, optim.steps and optim.peak_lr are required", path)
	}
	if s := r.Objective.Silence; !(s.Prob >= 0 && s.Prob <= 1) || !(s.MaxLead >= 0 && s.MaxLead <= 1) || !(s.MaxTail >= 0 && s.MaxTail <= 10) {
		// A lead beyond 1 s would teach first timestamps that decoding forbids (Whisper's
		// max_initial_timestamp).
		return nil, fmt.Errorf("recipe %s: objective.silence %+v: want prob in [0, 1], max_lead_s in [0, 1], max_tail_s in [0, 10]", path, s)
	}
	switch r.Kind {
	case "", "train":
		if r.Prune != nil {
			return nil, fmt.Errorf("recipe %s: a prune block needs kind \"prune\"", path)
		}
		if k := r.KD; k != nil && (r.From == "" || !(k.Logit > 0 && k.Logit < 1) || k.Temperature < 0) {
			return nil, fmt.Errorf("recipe %s: kd %+v: needs a variant to start from (from), logit in (0, 1) and a temperature ≥ 0 (0: 2)", path, *k)
		}
		if r.Teacher != "" && r.KD == nil {
			return nil, fmt.Errorf("recipe %s: a teacher in a train recipe needs a kd block (or kind \"prune\")", path)
		}
		if r.Route != "" {
			if r.From == "" || r.Upcycle != nil {
				return nil, fmt.Errorf("recipe %s: route needs a mixture-of-experts variant to start from (from) and no upcycle block", path)
			}
			if _, err := asr.ParseRoutingChoice(r.Route); err != nil {
				return nil, fmt.Errorf("recipe %s: route: %w", path, err)
			}
		}
		if r.Grow != nil && (r.From == "" || r.Route != "") {
			return nil, fmt.Errorf("recipe %s: grow needs a dense variant to start from (from) and no route", path)
		}
		if u := r.Upcycle; u != nil {
			if r.From == "" {
				return nil, fmt.Errorf("recipe %s: an upcycle block needs a dense variant to start from (from)", path)
			}
			if err := u.options(r.Seed).Check(); err != nil {
				return nil, fmt.Errorf("recipe %s: %w", path, err)
			}
		}
	case "prune":
		if _, _, err := checkPrune(&r); err != nil {
			return nil, fmt.Errorf("recipe %s: %w", path, err)
		}
	default:
		return nil, fmt.Errorf("recipe %s: unknown kind %q (train or prune)", path, r.Kind)
	}
	// A missing teacher is reported before any data is read (openTeacher's rules).
	if r.Teacher != "" && !slices.Contains(defaultmodel.Names(), r.Teacher) {
		if _, err := os.Stat(filepath.Join(r.Teacher, "config.json")); err != nil {
			return nil, fmt.Errorf("recipe %s: teacher %q is neither an embedded variant (%s) nor a variant folder: %w",
				path, r.Teacher, strings.Join(defaultmodel.Names(), ", "), err)
		}
	}
	return &r, nil
}

// RunOptions are the command-line side of a training run.
type RunOptions struct {
	Work     string // work folder: tokenizer, checkpoints, logs, plots, the variant
	Resume   bool
	Steps    int // overrides optim.steps when > 0 (extends a finished run)
	Progress io.Writer
	Logger   *slog.Logger
	// Publish overrides the recipe's publish directory.
	Publish string
	// KeepCheckpoints is how many of the newest checkpoints the run keeps (0: the
	// trainer's default of 2); keeping more lets Average average the end of a run.
	KeepCheckpoints int
	// Average > 0 trains nothing: the newest Average checkpoints of the run are averaged
	// (trainer.AverageCheckpoints) and written as the variant <work>/variant-avg.
	Average int
}

func (o RunOptions) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.Default()
	}
	return o.Logger
}

func (o RunOptions) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(o.Work, p)
}

// Run trains a recipe: tokenizer (learned once, then reused), features, the trainer loop with
// checkpoints, and finally the variant folder <work>/variant.
func Run(ctx context.Context, r *Recipe, o RunOptions) error {
	err := run(ctx, r, o)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	dir := o.Publish
	if dir == "" {
		dir = r.Publish
	}
	if dir != "" && err == nil && o.Average == 0 { // an averaged variant is published by hand
		dst, perr := Publish(o.path("variant"), dir, r.Name)
		if perr != nil {
			return perr
		}
		o.logger().Info("published", "variant", dst)
	}
	return err
}

func run(ctx context.Context, r *Recipe, o RunOptions) error {
	if r.Kind == "prune" {
		if o.Average > 0 {
			return errors.New("--average: a pruning run's gates sample new masks each step; average a fine-tune of its variant instead")
		}
		return runPrune(ctx, r, o)
	}
	log := o.logger()
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return err
	}
	start := time.Now()
	train, err := readManifests(r, o, log)
	if err != nil {
		return err
	}
	tok, err := ensureTokenizer(r, o, train, log)
	if err != nil {
		return err
	}
	dims := r.Model
	dims.NVocab = tok.Size()
	dev, err := readDev(r)
	if err != nil {
		return err
	}
	var init *whisper.Model
	var head *asr.CTCHead
	var startLM *lm.NGram
	var route *Route
	var kd *KD
	if r.From != "" {
		v, err := asr.Open(r.From, asr.OpenOptions{})
		if err != nil {
			return err
		}
		init = v.Model
		if r.Route != "" {
			if route, err = NewRoute(v, r.Route); err != nil {
				return fmt.Errorf("recipe: %w", err)
			}
			log.Info("training under a router", "route", r.Route, "experts", route.Set.E[0])
		}
		if k := r.KD; k != nil {
			src := cmp.Or(r.Teacher, r.From)
			tv, err := openTeacher(src) // its own copy: the student's weights move
			if err != nil {
				return fmt.Errorf("recipe: kd teacher: %w", err)
			}
			if tv.Model.Dims.NVocab != init.Dims.NVocab {
				return fmt.Errorf("recipe: kd teacher %s has %d tokens, the student %d: they must share a vocabulary", src, tv.Model.Dims.NVocab, init.Dims.NVocab)
			}
			kd = &KD{Teacher: tv.Model, Source: r.Teacher, Logit: k.Logit, Temperature: cmp.Or(k.Temperature, 2)}
			log.Info("distilling", "teacher", src, "logit", kd.Logit, "temperature", kd.Temperature)
		}
		head, startLM = v.CTC, v.LM
		logCTCHead(log, r.From, head, r.Objective.CTCWeight)
		// ReLU-fication: a recipe that names another activation than its From variant's
		// fine-tunes the same weights with it (recipes/chorus-relufy.json).
		if a := r.Model.Activation; a != "" && a != init.Dims.Activation {
			log.Info("changing the feed-forward activation", "from", cmp.Or(init.Dims.Activation, "gelu"), "to", a)
			if err := init.SetActivation(a); err != nil {
				return err
			}
		}
		if r.Grow != nil {
			if v.Chorus.Experts != nil {
				return fmt.Errorf("recipe: grow: %s is a mixture-of-experts variant; grow its dense parent, then MoE-fy", r.From)
			}
			before := init.Dims
			if init, err = grow.Model(init, *r.Grow); err != nil {
				return fmt.Errorf("recipe: %w", err)
			}
			log.Info("grown", "from", r.From, "encoder_layers", fmt.Sprintf("%d→%d", before.NAudioLayer, init.Dims.NAudioLayer),
				"decoder_layers", fmt.Sprintf("%d→%d", before.NTextLayer, init.Dims.NTextLayer), "params", init.NumParams())
		}
		if r.Upcycle != nil {
			if init, err = upcycle.Model(init, r.Upcycle.options(r.Seed)); err != nil {
				return err
			}
			log.Info("upcycled", "from", r.From, "experts", r.Upcycle.Experts, "top_k", r.Upcycle.TopK, "params", init.NumParams())
		}
		dims = init.Dims
	}
	log.Info("loading features", "utterances", len(train.Entries))
	task, err := New(ctx, Options{
		Dims: dims, Tokenizer: tok, Train: train, Dev: dev,
		BatchFrames: r.Batch.Frames, MaxItems: max(1, r.Batch.MaxItems),
		CTCWeight: r.Objective.CTCWeight, Smoothing: r.Objective.LabelSmoothing,
		TimestampFraction: r.Objective.TimestampFraction, SpecAugment: r.Objective.SpecAugment, Silence: r.Objective.Silence,
		EvalUtterances: r.Data.EvalN, Seed: r.Seed, Init: init, CTCHead: head, LM: startLM, BalanceWeight: r.Upcycle.balance(), Route: route, KD: kd,
		Bad: func(p string, err error) { log.Warn("skipping utterance", "audio", p, "err", err) },
	})
	if err != nil {
		return err
	}
	n, hours := task.Utterances()
	log.Info("corpus ready", "utterances", n, "hours", fmt.Sprintf("%.2f", hours), "batches", task.Batches(), "load", time.Since(start).Round(time.Second))
	cfg, err := trainerConfig(r, o, log)
	if err != nil {
		return err
	}
	if o.Average > 0 {
		steps, err := trainer.AverageCheckpoints(cfg.CheckpointDir, o.Average, task.Params())
		if err != nil {
			return err
		}
		log.Info("averaged checkpoints", "steps", fmt.Sprint(steps), "variant", o.path(averagedVariant))
		return saveVariant(r, o, task, time.Since(start), steps)
	}
	log.Info("matrix products", "precision", cmp.Or(matmulName(), "f32"), "engine", tensor.MatmulEngine())
	runErr := trainer.Run(ctx, task, cfg)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if err := saveVariant(r, o, task, time.Since(start), nil); err != nil {
		return err
	}
	return runErr
}

// readDev reads the recipe's development manifest (nil when it names none).
func readDev(r *Recipe) (*data.Manifest, error) {
	if r.Data.Dev == "" {
		return nil, nil
	}
	return data.ReadManifest(r.Data.Dev, data.ReadOptions{})
}

// trainerConfig is the trainer's configuration for a recipe.
func trainerConfig(r *Recipe, o RunOptions, log *slog.Logger) (trainer.Config, error) {
	shape := trainer.DecayCosine
	switch r.Optim.Schedule {
	case "linear":
		shape = trainer.DecayLinear
	case "none":
		shape = trainer.DecayNone
	}
	every := 5 * time.Minute
	if r.CheckpointEvery != "" {
		var err error
		if every, err = time.ParseDuration(r.CheckpointEvery); err != nil {
			return trainer.Config{}, fmt.Errorf("recipe checkpoint_every: %w", err)
		}
	}
	steps := r.Optim.Steps
	if o.Steps > 0 {
		steps = o.Steps
	}
	return trainer.Config{
		Steps: steps, Accum: max(1, r.Batch.Accum), Seed: r.Seed,
		Schedule:  trainer.WarmupDecay{Peak: r.Optim.PeakLR, Floor: r.Optim.FloorLR, Warmup: r.Optim.Warmup, Total: r.Optim.Steps, Shape: shape},
		Optimizer: trainer.AdamWConfig{Beta2: r.Optim.Beta2, WeightDecay: r.Optim.WeightDecay},
		ClipNorm:  r.Optim.ClipNorm, CheckpointDir: o.path("checkpoints"), CheckpointEvery: every,
		Resume: o.Resume, EvalEvery: r.EvalEvery, LogCSV: o.path("train.csv"), PlotDir: o.path("plots"),
		Progress: o.Progress, Logger: log, KeepCheckpoints: o.KeepCheckpoints,
	}, nil
}

func readManifests(r *Recipe, o RunOptions, log *slog.Logger) (*data.Manifest, error) {
	policy := data.Skip
	if r.Data.OnError == "stop" {
		policy = data.Stop
	}
	var all *data.Manifest
	for _, p := range r.Data.Train {
		m, err := data.ReadManifest(p, data.ReadOptions{OnError: policy,
			Report: func(e *data.LineError) { log.Warn("bad manifest line", "err", e) }})
		if err != nil {
			return nil, err
		}
		// Entries of several manifests resolve against their own folders.
		for i := range m.Entries {
			if !filepath.IsAbs(m.Entries[i].AudioFilepath) {
				m.Entries[i].AudioFilepath = filepath.Join(m.Dir, m.Entries[i].AudioFilepath)
			}
		}
		if all == nil {
			all = &data.Manifest{}
		}
		all.Entries = append(all.Entries, m.Entries...)
	}
	return all, nil
}

// ensureTokenizer loads <work>/tokenizer or learns it from the training text.
func ensureTokenizer(r *Recipe, o RunOptions, train *data.Manifest, log *slog.Logger) (*tokenizer.Tokenizer, error) {
	dir := o.path("tokenizer")
	if _, err := os.Stat(filepath.Join(dir, "vocab.json")); err == nil {
		return tokenizer.Load(dir)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if r.From != "" {
		v, err := asr.Open(r.From, asr.OpenOptions{})
		if err != nil {
			return nil, err
		}
		if v.Tokenizer == nil {
			return nil, fmt.Errorf("fine-tuning %s: it has no tokenizer", r.From)
		}
		return v.Tokenizer, v.Tokenizer.Save(dir)
	}
	texts := iter.Seq[string](func(yield func(string) bool) {
		for _, e := range train.Entries {
			if !yield(" " + e.Text) {
				return
			}
		}
	})
	tok, err := tokenizer.Train(texts, r.Vocab, []string{"en"})
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	log.Info("learned tokenizer", "tokens", tok.Size())
	return tok, tok.Save(dir)
}

// Card is a variant's card.json.
type Card struct {
	Name      string         `json:"name"`
	Parent    string         `json:"parent,omitempty"`
	Recipe    *Recipe        `json:"recipe"`
	Data      []string       `json:"data"`
	Steps     int64          `json:"steps"`
	WallTimeS float64        `json:"wall_time_s"`
	Metrics   map[string]any `json:"metrics,omitempty"`
	// Matmul is "bf16" when the run's matrix products ran in bfloat16 when the variant was
	// written (chorus train --matmul; tensor.SetMatmulBF16), empty for float32.
	Matmul string `json:"matmul,omitempty"`
	// AveragedSteps are the checkpoints whose mean the weights are (chorus train --average).
	AveragedSteps []int64           `json:"averaged_steps,omitempty"`
	Files         map[string]string `json:"files_sha256"`
	Written       time.Time         `json:"written"`
}

// averagedVariant is the folder, in a run's work folder, of the variant RunOptions.Average writes.
const averagedVariant = "variant-avg"

// saveVariant writes the task's model as <work>/variant, or as <work>/variant-avg when
// averaged names the checkpoints its weights are the mean of.
func saveVariant(r *Recipe, o RunOptions, task *Task, wall time.Duration, averaged []int64) error {
	dir := o.path("variant")
	if averaged != nil {
		dir = o.path(averagedVariant)
	}
	cfg := asr.ConfigFromDims(task.Model().Dims)
	cfg.Chorus, _ = json.Marshal(task.chorusConfig()) // a fine-tuned pruned model keeps its per-layer sizes
	if err := asr.Save(dir, task.Model(), cfg, task.o.Tokenizer, asr.SaveOptions{Compress: true, F16: true}); err != nil {
		return err
	}
	if err := asr.WriteCTCHead(dir, task.CTCHead()); err != nil {
		return err
	}
	if err := asr.WriteLM(dir, task.o.LM); err != nil {
		return err
	}
	if r := task.o.Route; r != nil {
		if err := r.writeRouters(dir); err != nil {
			return err
		}
	}
	step, elapsed := latestStep(o.path("checkpoints"))
	card := Card{Name: r.Name, Parent: r.From, Recipe: r, Data: r.Data.Train, Steps: step, WallTimeS: elapsed, Written: time.Now().UTC(), Matmul: matmulName(), AveragedSteps: averaged}
	if card.WallTimeS == 0 {
		card.WallTimeS = wall.Seconds()
	}
	return asr.WriteCard(dir, card)
}

// matmulName is the card's "matmul" value for the current process.
func matmulName() string {
	if tensor.MatmulBF16() {
		return "bf16"
	}
	return ""
}

// latestStep reads the newest checkpoint's step and training time.
func latestStep(dir string) (int64, float64) {
	names, _ := filepath.Glob(filepath.Join(dir, "ckpt-*.chk"))
	sort.Slice(names, func(i, j int) bool { return ckptStep(names[i]) > ckptStep(names[j]) })
	for _, n := range names {
		c, err := trainer.ReadCheckpointFile(n, 1<<34)
		if err == nil {
			return c.Meta.Step, c.Meta.Elapsed
		}
	}
	return 0, 0
}

func ckptStep(name string) int64 {
	var s int64
	fmt.Sscanf(strings.TrimSuffix(filepath.Base(name), ".chk"), "ckpt-%d", &s)
	return s
}
