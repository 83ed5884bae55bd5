package speech

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/distill"
	"github.com/chorus-asr/chorus/training/plot"
	"github.com/chorus-asr/chorus/training/prune"
	"github.com/chorus-asr/chorus/training/trainer"
)

// PruneRecipe is the "prune" block of a recipe of kind "prune": CoFi structured pruning
// (Xia et al. 2022) of a teacher variant with hard-concrete L0 gates, the Lagrangian that
// drives the expected sparsity to Target, and distillation from the unpruned teacher.
type PruneRecipe struct {
	// Target is the sparsity t of the encoder+decoder layers' parameters, in [0, 1).
	Target float64 `json:"target"`
	// Warmup is the number of steps over which the target rises from 0 (CoFi's
	// lagrangian_warmup).
	Warmup int `json:"warmup"`
	// Kinds are the granularities pruned (prune.Kind names); default every kind but
	// "hidden" (removing hidden dimensions makes the two stacks' widths differ, which
	// whisper.cpp's format cannot hold; name it to prune them, as CoFi does).
	Kinds []string `json:"kinds"`
	// GateLR and LambdaLR are the constant learning rates of the gates' log α and of λ₁, λ₂
	// (their own AdamW groups; CoFi's reg_learning_rate).
	GateLR   float64 `json:"gate_lr"`
	LambdaLR float64 `json:"lambda_lr"`
	// Entropy and KL weight the non-uniformity regularisers (prune.Regulariser).
	Entropy float64 `json:"entropy"`
	KL      float64 `json:"kl"`
	// TaskWeight weights the speech loss (CE + CTC); Distill the distillation terms.
	TaskWeight float64 `json:"task_weight"`
	Distill    struct {
		Temperature float64 `json:"temperature"`
		Logit       float64 `json:"logit"`
		Hidden      float64 `json:"hidden"`
		Attn        float64 `json:"attn"`
		FFN         float64 `json:"ffn"`
		// RAILLayers > 0 distils, each step, that many randomly chosen layers per stack
		// (RAIL-KD, Haidar et al. 2022); 0: every layer (CoFi's fixed map; equal depths).
		RAILLayers int `json:"rail_layers"`
	} `json:"distill"`
	// UnitBlock > 1 keeps each layer's FFN units a multiple of it when materialising
	// (prune.RoundUnits), so the pruned variant can be MoE-fied into that many experts.
	UnitBlock int `json:"unit_block,omitempty"`
}

// pruneTask is the speech task with CoFi gates on the student and a teacher to distil from.
type pruneTask struct {
	*Task
	r       *PruneRecipe
	teacher *whisper.Model
	tctx    *tensor.Ctx
	gates   *prune.Gates
	enabled [prune.NumKinds]bool
	lag     prune.Lagrangian
	reg     prune.Regulariser
	params  []trainer.Param
	srec    whisper.Record
	trec    whisper.Record
	last    prune.Sparsity
}

// masks returns z with the kinds that are not pruned left unmasked (nil).
func (p *pruneTask) masks(z prune.Set) prune.Set {
	for side := range z {
		for k := range z[side] {
			if !p.enabled[k] {
				z[side][k] = nil
			}
		}
	}
	return z
}

// evalMasks are the deterministic masks with the kinds that are not pruned at exactly 1.
func (p *pruneTask) evalMasks() prune.Set {
	z := p.gates.EvalMasks()
	ones := prune.NewSet(p.gates.S, 1)
	for side := range z {
		for k := range z[side] {
			if !p.enabled[k] {
				z[side][k] = ones[side][k]
			}
		}
	}
	// The soft gate values rank the units: the weakest kept ones go to round the block.
	// runPrune has checked that the block divides the widths, so RoundUnits cannot fail.
	ffn := func(side prune.Side) int { _, n, _ := p.gates.S.Side[side].Shape(prune.Units); return n }
	_ = prune.RoundUnits(z, p.gates.S, p.r.UnitBlock, func(side prune.Side, l, j int) float64 {
		return float64(z[side][prune.Units].Data[l*ffn(side)+j])
	})
	return z
}

func (p *pruneTask) Params() []trainer.Param { return p.params }

// Step is one CoFi step: the teacher's outputs (no tape), the student under freshly sampled
// masks, L = w_task·L_speech + L_distill + λ₁(ŝ−t) + λ₂(ŝ−t)² (+ regulariser), backward.
func (p *pruneTask) Step(ctx context.Context, b trainer.Batch, _ *rand.Rand) (trainer.StepResult, error) {
	t := p.Task
	sb, err := t.batch(b)
	if err != nil {
		return trainer.StepResult{}, err
	}
	defer p.tctx.Reset()
	p.trec.Reset()
	th := &whisper.Hooks{Record: &p.trec}
	txa := p.teacher.Encoder.ForwardHooked(p.tctx, sb.mel, th)
	tlog := p.teacher.Decoder.ForwardTrainHooked(p.tctx, sb.inputs, sb.size, txa, th)

	z := p.masks(p.gates.Sample(t.ctx, sb.rng))
	p.srec.Reset()
	sh := &whisper.Hooks{Masks: &z, Record: &p.srec}
	xa := t.m.Encoder.ForwardHooked(t.ctx, sb.mel, sh)
	logits := t.m.Decoder.ForwardTrainHooked(t.ctx, sb.inputs, sb.size, xa, sh)
	r := p.r
	task := t.speechLoss(sb, xa, logits, r.TaskWeight)
	keep := t.scored(sb)
	w := distill.Weights{Logit: r.Distill.Logit, Hidden: r.Distill.Hidden, Attn: r.Distill.Attn, FFN: r.Distill.FFN}
	var kd distill.Terms
	for s := range 2 {
		so := distill.Outputs{Hidden: p.srec.Hidden[s], Attn: p.srec.Attn[s], FFN: p.srec.FFN[s]}
		to := distill.Outputs{Hidden: p.trec.Hidden[s], Attn: p.trec.Attn[s], FFN: p.trec.FFN[s]}
		ws := w
		if s == int(whisper.DecoderStack) {
			so.Logits, to.Logits = logits, tlog
		} else {
			ws.Logit = 0
		}
		pairs, err := p.pairs(len(so.Hidden), b)
		if err != nil {
			t.ctx.Reset()
			return trainer.StepResult{}, err
		}
		// Layer losses are per stack; the two stacks' terms add.
		tm := distill.Objective(t.ctx, so, to, pairs, distill.Projection{}, r.Distill.Temperature, keep, ws)
		kd.Logit += tm.Logit
		kd.Hidden += tm.Hidden
		kd.Attn += tm.Attn
		kd.FFN += tm.FFN
	}
	if err := ctx.Err(); err != nil {
		t.ctx.Reset()
		return trainer.StepResult{}, err
	}
	t.tape.Backward()
	t.ctx.Reset()
	// The sparsity terms do not depend on the data: once per optimizer step.
	vals := map[string]float64{}
	if b.Micro == 0 {
		p.last = p.gates.Objective(p.lag, p.reg, b.Step, t.tape)
	}
	sp := p.last
	loss := r.TaskWeight*task + kd.Total(w) + sp.Loss
	vals["loss/speech"], vals["loss/kd_logit"], vals["loss/kd_hidden"] = task, kd.Logit, kd.Hidden
	vals["loss/lagrangian"] = sp.Lagrange
	vals["sparsity/expected"], vals["sparsity/target"] = sp.Expected, sp.Target
	vals["lambda/1"], vals["lambda/2"] = float64(p.gates.Lambda1.Data[0]), float64(p.gates.Lambda2.Data[0])
	for i, v := range prune.LayerRatios(sp.Kept, sp.Full) {
		vals[fmt.Sprintf("keep/%s", p.layerName(i))] = v
	}
	return trainer.StepResult{Loss: loss, Items: sb.size, Counters: map[string]float64{"audio_s": sb.audioSec}, Values: vals}, nil
}

// layerName names layer i of LayerRatios' order (encoder first).
func (p *pruneTask) layerName(i int) string {
	if n := p.gates.S.Side[prune.Encoder].Layers; i >= n {
		return fmt.Sprintf("dec%d", i-n)
	}
	return fmt.Sprintf("enc%d", i)
}

// pairs is the layer map of one step: every layer (student and teacher have the same depth
// while masked), or RAIL-KD's random subset, a pure function of the step.
func (p *pruneTask) pairs(layers int, b trainer.Batch) ([]distill.Pair, error) {
	k := p.r.Distill.RAILLayers
	if k <= 0 || k >= layers {
		return distill.FixedMap(layers, layers)
	}
	pick, err := distill.RAILMap(k, layers, b.Seed, b.Step)
	if err != nil {
		return nil, err
	}
	for i := range pick {
		pick[i].Student = pick[i].Teacher // same model: layer j of the student against j
	}
	return pick, nil
}

// Eval is the dev WER of the model the current deterministic masks materialise into.
func (p *pruneTask) Eval(ctx context.Context) (map[string]float64, error) {
	mat, err := prune.MaterialiseModel(p.m, p.evalMasks())
	if err != nil {
		return nil, err
	}
	student := p.m
	p.m = mat.Model
	defer func() { p.m = student }()
	return p.Task.Eval(ctx)
}

// Fingerprint adds the pruning settings to the task's.
func (p *pruneTask) Fingerprint() string {
	b, _ := json.Marshal(p.r)
	return p.Task.Fingerprint() + " prune " + string(b)
}

// openTeacher opens a teacher variant: the embedded default model when path is empty, an
// embedded variant by its name (defaultmodel.Names, as the CLI's --model takes them), else a
// variant folder.
func openTeacher(path string) (*asr.Variant, error) {
	if path == "" {
		return defaultmodel.Open(asr.OpenOptions{})
	}
	if slices.Contains(defaultmodel.Names(), path) {
		return defaultmodel.OpenNamed(path, asr.OpenOptions{})
	}
	return asr.Open(path, asr.OpenOptions{})
}

// checkPrune reports a recipe of kind prune that cannot run, before any data is read.
func checkPrune(r *Recipe) (*PruneRecipe, [prune.NumKinds]bool, error) {
	var en [prune.NumKinds]bool
	pr := r.Prune
	if pr == nil {
		return nil, en, errors.New("recipe: kind prune needs a prune block")
	}
	if err := (prune.Lagrangian{Target: pr.Target, Warmup: pr.Warmup}).Validate(); err != nil {
		return nil, en, fmt.Errorf("recipe: %w", err)
	}
	kinds := pr.Kinds
	if len(kinds) == 0 {
		kinds = []string{"heads", "attn", "cross_heads", "cross", "units", "ffn"}
	}
	for _, name := range kinds {
		found := false
		for k := range prune.NumKinds {
			if k.String() == name {
				en[k], found = true, true
			}
		}
		if !found {
			return nil, en, fmt.Errorf("recipe: unknown prune kind %q", name)
		}
	}
	if pr.UnitBlock < 0 {
		return nil, en, fmt.Errorf("recipe: prune.unit_block %d is negative", pr.UnitBlock)
	}
	if !(pr.GateLR > 0) || !(pr.LambdaLR > 0) {
		return nil, en, errors.New("recipe: prune.gate_lr and prune.lambda_lr must be positive")
	}
	if pr.Distill.Temperature == 0 {
		pr.Distill.Temperature = 1
	}
	return pr, en, nil
}

// runPrune runs a recipe of kind prune: teacher and student from the same variant, gates,
// the trainer loop with checkpoints, and at the end the materialised variant.
func runPrune(ctx context.Context, r *Recipe, o RunOptions) error {
	log := o.logger()
	pr, enabled, err := checkPrune(r)
	if err != nil {
		return err
	}
	start := time.Now()
	tv, err := openTeacher(r.Teacher)
	if err != nil {
		return fmt.Errorf("prune: teacher: %w", err)
	}
	sv, err := openTeacher(r.Teacher) // the student: its own copy of the weights
	if err != nil {
		return fmt.Errorf("prune: teacher: %w", err)
	}
	if tv.Tokenizer == nil {
		return fmt.Errorf("prune: teacher %q has no tokenizer", r.Teacher)
	}
	st, err := prune.NewStructure(tv.Model.Dims)
	if err != nil {
		return err
	}
	if b := r.Prune.UnitBlock; b > 1 && (st.Side[prune.Encoder].FFN%b != 0 || st.Side[prune.Decoder].FFN%b != 0) {
		return fmt.Errorf("prune: unit_block %d does not divide the teacher's FFN widths %d and %d", b, st.Side[prune.Encoder].FFN, st.Side[prune.Decoder].FFN)
	}
	gates, err := prune.NewGates(st, prune.DefaultHardConcrete(), prune.DefaultInit, r.Seed)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return err
	}
	if err := tv.Tokenizer.Save(o.path("tokenizer")); err != nil {
		return err
	}
	train, err := readManifests(r, o, log)
	if err != nil {
		return err
	}
	dev, err := readDev(r)
	if err != nil {
		return err
	}
	head := tv.CTC
	logCTCHead(log, tv.Path, head, r.Objective.CTCWeight)
	task, err := New(ctx, Options{
		Dims: tv.Model.Dims, Tokenizer: tv.Tokenizer, Train: train, Dev: dev,
		BatchFrames: r.Batch.Frames, MaxItems: max(1, r.Batch.MaxItems),
		CTCWeight: r.Objective.CTCWeight, Smoothing: r.Objective.LabelSmoothing,
		TimestampFraction: r.Objective.TimestampFraction, SpecAugment: r.Objective.SpecAugment, Silence: r.Objective.Silence,
		EvalUtterances: r.Data.EvalN, Seed: r.Seed, Init: sv.Model, CTCHead: head,
		Bad: func(p string, err error) { log.Warn("skipping utterance", "audio", p, "err", err) },
	})
	if err != nil {
		return err
	}
	p := &pruneTask{Task: task, r: pr, teacher: tv.Model, tctx: tensor.NewCtx(), gates: gates, enabled: enabled,
		lag: prune.Lagrangian{Target: pr.Target, Warmup: pr.Warmup}, reg: prune.Regulariser{Entropy: pr.Entropy, KL: pr.KL}}
	p.params = append(p.params, task.params...)
	for side := range gates.LogAlpha {
		for k, la := range gates.LogAlpha[side] {
			if la == nil || !enabled[k] {
				continue
			}
			task.tape.Watch(la)
			p.params = append(p.params, trainer.Param{Name: fmt.Sprintf("prune.%s.%s.log_alpha", prune.Side(side), prune.Kind(k)), W: la, Grad: task.tape.Grad(la), LR: pr.GateLR})
		}
	}
	for i, l := range []*tensor.T{gates.Lambda1, gates.Lambda2} {
		task.tape.Watch(l)
		p.params = append(p.params, trainer.Param{Name: fmt.Sprintf("prune.lambda_%d", i+1), W: l, Grad: task.tape.Grad(l), LR: pr.LambdaLR})
	}
	cfg, err := trainerConfig(r, o, log)
	if err != nil {
		return err
	}
	// The gates are kept inside CoFi's clamp (constrain_parameters) after every update by
	// clamping on the way into the next step's sampling.
	runErr := trainer.Run(ctx, &constrained{p}, cfg)
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return runErr
	}
	if err := savePruned(r, o, p, tv, time.Since(start)); err != nil {
		return err
	}
	return runErr
}

// constrained clamps log α to CoFi's [log 10⁻², log 10²] before each step (after the
// previous update), so a gate never saturates past the reach of its gradient.
type constrained struct{ *pruneTask }

func (c *constrained) Step(ctx context.Context, b trainer.Batch, rng *rand.Rand) (trainer.StepResult, error) {
	c.gates.Constrain(float32(math.Log(1e-2)), float32(math.Log(1e2)))
	return c.pruneTask.Step(ctx, b, rng)
}

// LayerCard is one layer's line in a pruned variant's card.
type LayerCard struct {
	Layer      string  `json:"layer"`
	Expected   float64 `json:"expected_sparsity"` // 1 − expected keep ratio of the gates
	Achieved   float64 `json:"achieved_sparsity"` // 1 − kept/full under the deterministic masks
	Heads      int     `json:"heads"`
	CrossHeads int     `json:"cross_heads,omitempty"`
	Units      int     `json:"units"`
	Removed    bool    `json:"removed,omitempty"`
}

// PruneCard is the pruning section of a pruned variant's card.json.
type PruneCard struct {
	Target       float64 `json:"target_sparsity"`
	Expected     float64 `json:"expected_sparsity"`
	Achieved     float64 `json:"achieved_sparsity"` // of the encoder+decoder layers, exact
	ParentParams int     `json:"parent_params"`
	Params       int     `json:"params"` // stored tensors of the materialised model (per-layer sizes, no padding)
	// EffectiveParams is CoFi's exact count of what the masks keep; Params exceeds it only by
	// the zero output biases and layer norms that removed sublayers of kept layers still store.
	EffectiveParams int         `json:"effective_params"`
	Layers          []LayerCard `json:"layers"`
}

func savePruned(r *Recipe, o RunOptions, p *pruneTask, tv *asr.Variant, wall time.Duration) error {
	z := p.evalMasks()
	mat, err := prune.MaterialiseModel(p.m, z)
	if err != nil {
		return err
	}
	st := p.gates.S
	full := st.Full()
	kept := st.Expected(prune.MaskProbs(st, z))
	expected := p.gates.Objective(p.lag, p.reg, math.MaxInt32, nil)
	pc := PruneCard{Target: p.r.Target, Expected: expected.Expected, Achieved: 1 - kept.Prunable()/full.Prunable()}
	pc.ParentParams = int(p.teacher.NumParams())
	pc.Params = int(mat.Model.NumParams())
	pc.EffectiveParams = int(math.Round(kept.Total()))
	er, ar := prune.LayerRatios(expected.Kept, full), prune.LayerRatios(kept, full)
	var xs, ye, ya []float64
	i := 0
	for side := range mat.Layers {
		for _, l := range mat.Layers[side] {
			pc.Layers = append(pc.Layers, LayerCard{Layer: p.layerName(i), Expected: 1 - er[i], Achieved: 1 - ar[i],
				Heads: l.Heads, CrossHeads: l.CrossHeads, Units: l.Units, Removed: l.Removed})
			xs, ye, ya = append(xs, float64(i)), append(ye, 1-er[i]), append(ya, 1-ar[i])
			i++
		}
	}
	if err := plot.Lines(o.path("plots/layer_sparsity.png"), "per-layer sparsity (encoder layers first, then decoder)", "layer", "sparsity",
		plot.Series{Name: "expected (gates)", X: xs, Y: ye}, plot.Series{Name: "achieved (deterministic masks)", X: xs, Y: ya}); err != nil {
		o.logger().Warn("layer sparsity plot", "err", err)
	}
	dir := o.path("variant")
	d := mat.Model.Dims
	cfg := asr.ConfigFromDims(d)
	ch := asr.DimsChorus(d) // head widths, encoder attention and per-layer sizes
	ch.EncoderWindow = tv.Chorus.EncoderWindow
	cfg.Chorus, _ = json.Marshal(ch)
	if err := asr.Save(dir, mat.Model, cfg, tv.Tokenizer, asr.SaveOptions{Compress: true, F16: true}); err != nil {
		return err
	}
	if head := p.CTCHead(); head != nil { // it reads the encoder's output: its kept hidden dimensions only
		head.W = prune.CutColumns(head.W, mat.Hidden[prune.Encoder])
		if err := asr.WriteCTCHead(dir, head); err != nil {
			return err
		}
	}
	if err := asr.WriteLM(dir, tv.LM); err != nil { // the teacher's tokenizer is the student's
		return err
	}
	step, elapsed := latestStep(o.path("checkpoints"))
	parent := r.Teacher
	if parent == "" {
		parent = tv.Name
	}
	card := struct {
		Card
		Prune PruneCard `json:"prune"`
	}{Card{Name: r.Name, Parent: parent, Recipe: r, Data: r.Data.Train, Steps: step, WallTimeS: elapsed, Written: time.Now().UTC(), Matmul: matmulName()}, pc}
	if card.WallTimeS == 0 {
		card.WallTimeS = wall.Seconds()
	}
	o.logger().Info("materialised", "variant", dir, "params", pc.Params, "parent_params", pc.ParentParams,
		"achieved_sparsity", fmt.Sprintf("%.3f", pc.Achieved), "expected_sparsity", fmt.Sprintf("%.3f", pc.Expected))
	if err := asr.WriteCard(dir, card); err != nil {
		return err
	}
	return nil
}
