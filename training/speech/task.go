// Package speech is the speech-recognition training task: a Whisper model trained on a
// manifest corpus with joint CTC/attention (the decoder's label-smoothed cross-entropy plus a
// CTC loss on the encoder, which teaches the alignment to the audio early), length-bucketed
// batches and SpecAugment. It plugs into training/trainer, which owns the loop, optimizer
// and checkpoints.
package speech

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/distill"
	"github.com/chorus-asr/chorus/training/trainer"
	"github.com/chorus-asr/chorus/training/upcycle"
)

// Options configure the task.
type Options struct {
	Dims      whisper.Dims
	Tokenizer *tokenizer.Tokenizer
	Train     *data.Manifest
	Dev       *data.Manifest // optional: WER/CER on its first EvalUtterances entries
	// BatchFrames bounds a batch's padded mel frames (items × longest item); MaxItems its
	// utterance count.
	BatchFrames, MaxItems int
	CTCWeight             float64 // λ of λ·CTC + (1−λ)·CE
	Smoothing             float32 // label smoothing of the cross-entropy
	TimestampFraction     float64 // share of examples trained with timestamp tokens
	SpecAugment           SpecAugment
	Silence               Silence
	EvalUtterances        int
	// BalanceWeight weights the load-balancing loss of each gated feed-forward block of an
	// upcycled model (whisper.Hooks.BalanceWeight; Switch Transformer's α, 0.01 there).
	BalanceWeight float64
	// Route, if set, trains a mixture-of-experts variant under one of its routers (Init
	// holds its weights).
	Route *Route
	// KD, if set, distils the teacher's logits into the model (a fine-tune's parent).
	KD   *KD
	Seed uint64
	// Init, if set, starts from these weights (fine-tuning) instead of a fresh initialisation.
	Init *whisper.Model
	// CTCHead, if set, starts the CTC head from these weights (the CTC head of the variant Init
	// came from) instead of a fresh one; it must fit the tokenizer and d_model.
	CTCHead *asr.CTCHead
	// LM is the starting variant's language model (same tokenizer): the written variant
	// carries it.
	LM *lm.NGram
	// Progress reports feature extraction.
	Progress func(done, total int)
	// Bad reports manifest entries whose audio could not be used.
	Bad func(path string, err error)
}

// SpecAugment masks (Park et al., 2019): FreqMasks bands of up to F mel bins and TimeMasks
// spans of up to T frames (at most TimeRatio of the utterance), set to zero.
type SpecAugment struct {
	FreqMasks, F int
	TimeMasks, T int
	TimeRatio    float64
}

// Silence pads whole batches with silence: with probability Prob a batch gets a lead of up to
// MaxLead seconds before every utterance and a tail of up to MaxTail seconds after it (drawn
// once per batch, so the batch grows by the same frames for every item and the cost stays
// bounded), made of the utterance's own first and last frames (its recorded silence, noise
// included). The corpus pads clips with 0.05–0.3 s; files people transcribe start and end
// with seconds of it. Timestamp targets move with the lead; the CTC loss covers the padding
// (blanks). Zero Prob: off.
type Silence struct {
	Prob    float64 `json:"prob"`
	MaxLead float64 `json:"max_lead_s"`
	MaxTail float64 `json:"max_tail_s"`
}

// draw returns a batch's lead and tail in frames (even: the conv stem halves them), both 0
// when the batch is not padded; room bounds their sum (the model's frames less the batch's
// longest utterance). It draws from rng only when padding is on, so runs without it keep
// their batches.
func (s Silence) draw(rng *rand.Rand, room int) (lead, tail int) {
	if s.Prob <= 0 {
		return 0, 0
	}
	u, a, b := rng.Float64(), rng.Float64(), rng.Float64()
	if u >= s.Prob {
		return 0, 0
	}
	lead = int(a*s.MaxLead*100) / 2 * 2 // 100 frames per second
	tail = int(b*s.MaxTail*100) / 2 * 2
	lead = min(lead, room/2*2)
	tail = min(tail, (room-lead)/2*2)
	return lead, tail
}

// Task implements trainer.Task, trainer.Evaluator and trainer.Fingerprinter.
type Task struct {
	o       Options
	m       *whisper.Model
	ctcW    *tensor.T // [nText+1, C]: CTC head over the ordinary tokens plus blank
	ctcB    *tensor.T
	blank   int
	utts    []*utterance
	dev     []*utterance
	batches [][]int
	order   *trainer.Order
	ctx     *tensor.Ctx
	tape    *tensor.Tape
	params  []trainer.Param
	prefix  [2][]int // SOT sequences without and with timestamps
	ignore  int
}

const ignoreIndex = -100

// New loads the corpus features and builds the model.
func New(ctx context.Context, o Options) (*Task, error) {
	tok := o.Tokenizer
	t, err := newTask(o)
	if err != nil {
		return nil, err
	}
	maxFrames := 2 * o.Dims.NAudioCtx
	bad := func(m *data.Manifest) func(int, error) {
		return func(i int, err error) {
			if o.Bad != nil {
				o.Bad(m.Entries[i].AudioFilepath, err)
			}
		}
	}
	if t.utts, err = loadFeatures(ctx, o.Train, o.Dims.NMels, tok.Encode, maxFrames, o.Progress, bad(o.Train)); err != nil {
		return nil, err
	}
	if len(t.utts) == 0 {
		return nil, fmt.Errorf("speech: no usable training utterances")
	}
	if o.Dev != nil {
		dev := &data.Manifest{Dir: o.Dev.Dir, Entries: o.Dev.Entries[:min(len(o.Dev.Entries), o.EvalUtterances)]}
		if t.dev, err = loadFeatures(ctx, dev, o.Dims.NMels, tok.Encode, maxFrames, nil, bad(dev)); err != nil {
			return nil, err
		}
	}
	if err := t.build(); err != nil {
		return nil, err
	}
	return t, nil
}

// newTask checks the options and prepares the token layout.
func newTask(o Options) (*Task, error) {
	tok := o.Tokenizer
	if tok == nil {
		return nil, fmt.Errorf("speech: no tokenizer")
	}
	if tok.Size() != o.Dims.NVocab {
		return nil, fmt.Errorf("speech: tokenizer has %d tokens, model vocabulary %d", tok.Size(), o.Dims.NVocab)
	}
	t := &Task{o: o, ignore: ignoreIndex}
	t.blank = tok.Specials().EOT // ordinary tokens are 0 … EOT−1; the CTC head's last row is blank
	for i, ts := range []bool{false, true} {
		var err error
		if t.prefix[i], err = tok.SOTSequence("en", "transcribe", ts); err != nil {
			return nil, fmt.Errorf("speech: %w", err)
		}
	}
	return t, nil
}

// build groups the loaded utterances into batches and sets up the model, the CTC head and
// the tape.
func (t *Task) build() error {
	o := t.o
	var err error
	t.batches = makeBatches(t.utts, o.BatchFrames, o.MaxItems)
	if t.order, err = trainer.NewOrder(o.Seed, len(t.batches)); err != nil {
		return err
	}
	if o.Init != nil {
		t.m = o.Init
	} else if t.m, err = NewScratch(o.Dims, o.Seed); err != nil {
		return err
	}
	c := o.Dims.NAudioState
	t.ctcW = tensor.New(t.blank+1, c)
	t.ctcB = tensor.New(t.blank + 1)
	if h := o.CTCHead; h != nil {
		if err := h.Fits(t.blank, c); err != nil {
			return err
		}
		copy(t.ctcW.Data, h.W.Data)
		copy(t.ctcB.Data, h.B.Data)
	} else {
		tensor.SeededUniform(t.ctcW.Data, o.Seed, "chorus.ctc_head.weight", 0, math.Sqrt(3/float64(c)))
	}
	t.ctx = tensor.NewTrainCtx()
	t.tape = t.ctx.Tape()
	ts, order := t.m.Tensors()
	for _, name := range order {
		w := ts[name]
		if name == "model.encoder.embed_positions.weight" {
			continue // fixed sinusoids, as in Whisper
		}
		t.params = append(t.params, trainer.Param{Name: name, W: w, Decay: trainer.DecayFor(name, w)})
	}
	t.params = append(t.params,
		trainer.Param{Name: "chorus.ctc_head.weight", W: t.ctcW, Decay: true},
		trainer.Param{Name: "chorus.ctc_head.bias", W: t.ctcB})
	for i := range t.params {
		t.tape.Watch(t.params[i].W)
		t.params[i].Grad = t.tape.Grad(t.params[i].W) // the tape accumulates straight into it
	}
	return nil
}

// CTCHead is the CTC head being trained (weights update in place), or nil when the task has
// neither trained one (CTCWeight 0) nor started from one: a fresh random head must not be
// written as if it read the encoder.
func (t *Task) CTCHead() *asr.CTCHead {
	if t.o.CTCWeight == 0 && t.o.CTCHead == nil {
		return nil
	}
	return &asr.CTCHead{W: t.ctcW, B: t.ctcB}
}

// Model is the model being trained (weights update in place).
func (t *Task) Model() *whisper.Model { return t.m }

// Utterances is the number of training utterances and their total duration in hours.
func (t *Task) Utterances() (int, float64) {
	var d float64
	for _, u := range t.utts {
		d += u.duration
	}
	return len(t.utts), d / 3600
}

// Batches is the number of batches per epoch.
func (t *Task) Batches() int { return len(t.batches) }

// Params implements trainer.Task.
func (t *Task) Params() []trainer.Param { return t.params }

// Fingerprint implements trainer.Fingerprinter.
func (t *Task) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %d %d %g %g %g %+v %d\n", dimsFingerprint(t.o.Dims), t.o.BatchFrames, t.o.MaxItems, t.o.CTCWeight,
		t.o.Smoothing, t.o.TimestampFraction, t.o.SpecAugment, len(t.utts))
	if t.o.Silence.Prob > 0 { // only then, so that runs without it keep their hashes
		fmt.Fprintf(h, "silence %+v\n", t.o.Silence)
	}
	if r := t.o.Route; r != nil {
		fmt.Fprintf(h, "route %+v\n", r.Choice)
	}
	if k := t.o.KD; k != nil {
		fmt.Fprintf(h, "kd %g %g\n", k.Logit, k.Temperature)
		if k.Source != "" {
			fmt.Fprintf(h, "kd teacher %s\n", k.Source)
		}
	}
	for _, u := range t.utts {
		fmt.Fprintf(h, "%d %s\n", u.frames, u.text)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dimsFingerprint formats d for the task fingerprint exactly as %+v formatted whisper.Dims
// before it gained fields, so that runs started then still resume; fields added since appear
// only when set.
func dimsFingerprint(d whisper.Dims) string {
	type dimsV1 struct {
		NMels, NAudioCtx, NAudioState, NAudioHead, NAudioLayer int
		NVocab, NTextCtx, NTextState, NTextHead, NTextLayer    int
		EncoderFFN, DecoderFFN                                 int
		Activation                                             string
	}
	s := fmt.Sprintf("%+v", dimsV1{d.NMels, d.NAudioCtx, d.NAudioState, d.NAudioHead, d.NAudioLayer,
		d.NVocab, d.NTextCtx, d.NTextState, d.NTextHead, d.NTextLayer, d.EncoderFFN, d.DecoderFFN, d.Activation})
	if d.AudioHeadDim != 0 || d.TextHeadDim != 0 {
		s += fmt.Sprintf(" head_dims=%d/%d", d.AudioHeadDim, d.TextHeadDim)
	}
	if d.EncoderAttention != "" {
		s += " encoder_attention=" + d.EncoderAttention
	}
	if !d.Uniform() {
		s += fmt.Sprintf(" layer_sizes=%v/%v", d.EncoderSizes, d.DecoderSizes)
	}
	if d.GatedExperts > 0 {
		s += fmt.Sprintf(" gated=%d/top%d", d.GatedExperts, d.GateTopK)
	}
	return s
}

// Step implements trainer.Task: forward and backward on one batch.
func (t *Task) Step(ctx context.Context, b trainer.Batch, _ *rand.Rand) (trainer.StepResult, error) {
	sb, err := t.batch(b)
	if err != nil {
		return trainer.StepResult{}, err
	}
	var h *whisper.Hooks
	if t.m.Dims.GatedExperts > 0 && t.o.BalanceWeight > 0 {
		h = &whisper.Hooks{BalanceWeight: float32(t.o.BalanceWeight)}
	}
	if r := t.o.Route; r != nil {
		h = &whisper.Hooks{Route: r.mask}
	}
	var tlog *tensor.T
	kd := t.o.KD
	if kd != nil {
		if kd.ctx == nil {
			kd.ctx = tensor.NewCtx()
		}
		defer kd.ctx.Reset()
		txa := kd.Teacher.Encoder.Forward(kd.ctx, sb.mel)
		tlog = kd.Teacher.Decoder.ForwardTrainHooked(kd.ctx, sb.inputs, sb.size, txa, nil)
	}
	xa := t.m.Encoder.ForwardHooked(t.ctx, sb.mel, h) // [B, F/2, C]
	logits := t.m.Decoder.ForwardTrainHooked(t.ctx, sb.inputs, sb.size, xa, h)
	speechWeight, kdLoss := 1.0, 0.0
	if kd != nil {
		speechWeight = 1 - kd.Logit
		kdLoss = distill.ApplyLogitKD(t.ctx, logits, tlog, kd.Temperature, t.scored(sb), kd.Logit)
	}
	loss := t.speechLoss(sb, xa, logits, speechWeight)
	if err := ctx.Err(); err != nil {
		t.ctx.Reset()
		return trainer.StepResult{}, err
	}
	t.tape.Backward()
	t.ctx.Reset()
	res := trainer.StepResult{Loss: loss, Items: sb.size, Counters: map[string]float64{"audio_s": sb.audioSec}}
	if kd != nil {
		// The loss column stays the speech loss, comparable with runs without distillation.
		res.Values = map[string]float64{"loss/kd_logit": kdLoss}
	}
	if h != nil && len(h.Balance) > 0 {
		// The trainer's loss stays the speech loss, comparable with the parent's; the
		// balance term (1 when the gates spread tokens evenly) is logged beside it.
		var sum float64
		for _, b := range h.Balance {
			sum += b
		}
		if res.Values == nil {
			res.Values = map[string]float64{}
		}
		res.Values["balance"] = sum / float64(len(h.Balance))
	}
	return res, nil
}

// scored marks the decoder positions of sb that have a target (not padding): the rows
// distillation compares.
func (t *Task) scored(sb *stepBatch) []bool {
	keep := make([]bool, len(sb.targets))
	for i, y := range sb.targets {
		keep[i] = y != t.ignore
	}
	return keep
}

// stepBatch is one micro-batch laid out for the model.
type stepBatch struct {
	items           []int
	size, frames    int
	lead, tail      int       // silence frames before and after every utterance (Silence)
	mel             *tensor.T // [B, M, F] in the task's arena, zero padded, SpecAugmented
	inputs, targets []int     // [B·S] decoder inputs and next-token targets (padding ignored)
	audioSec        float64
	rng             *rand.Rand // the batch's own generator, after the augmentation's draws
}

// batch builds micro-batch b in the task's arena.
func (t *Task) batch(b trainer.Batch) (*stepBatch, error) {
	_, bi := t.order.At(b.Index)
	items := t.batches[bi]
	rng := rand.New(rand.NewPCG(b.Seed, uint64(b.Index)))
	d := t.o.Dims
	bs := len(items)
	frames := 0
	for _, i := range items {
		frames = max(frames, t.utts[i].frames)
	}
	lead, tail := t.o.Silence.draw(rng, 2*d.NAudioCtx-frames)
	frames += lead + tail
	// Mel batch [B, M, F], zero padded (0 is what Whisper pads windows with), SpecAugmented.
	melB := t.ctx.Zeros(bs, d.NMels, frames)
	var audioSec float64
	seqs := make([][]int, bs)
	for j, i := range items {
		u := t.utts[i]
		audioSec += u.duration
		base := j * d.NMels * frames
		for m := range d.NMels {
			row := melB.Data[base+m*frames : base+m*frames+lead+u.frames+tail]
			tensor.F16ToF32Slice(row[lead:lead+u.frames], u.mel[m*u.frames:(m+1)*u.frames])
			padSilence(row, lead, u.frames)
		}
		t.o.SpecAugment.apply(melB.Data[base:base+d.NMels*frames], d.NMels, frames, lead+u.frames+tail, rng)
		seqs[j] = t.sequence(u, lead, rng.Float64() < t.o.TimestampFraction)
	}
	s := 0
	for _, q := range seqs {
		s = max(s, len(q)-1)
	}
	if s > d.NTextCtx {
		t.ctx.Reset()
		return nil, fmt.Errorf("speech: %d tokens exceed the %d text positions", s, d.NTextCtx)
	}
	inputs := make([]int, bs*s)
	targets := make([]int, bs*s)
	for j, q := range seqs {
		for p := range s {
			inputs[j*s+p], targets[j*s+p] = q[len(q)-1], t.ignore // padding: any token in, nothing out
			if p < len(q)-1 {
				inputs[j*s+p], targets[j*s+p] = q[p], q[p+1]
			}
		}
	}
	return &stepBatch{items: items, size: bs, frames: frames, lead: lead, tail: tail, mel: melB, inputs: inputs, targets: targets, audioSec: audioSec, rng: rng}, nil
}

// padSilence fills row[:lead] with the utterance's first frames and the rest after
// row[lead:lead+n] (the utterance, n frames) with its last ones, tiling two frames of each
// end: its recorded silence, away from the speech the corpus starts 50 ms in.
func padSilence(row []float32, lead, n int) {
	if n == 0 {
		return
	}
	head, tail := row[lead:lead+min(2, n)], row[lead+n-min(2, n):lead+n]
	for i := range lead {
		row[i] = head[i%len(head)]
	}
	for i, k := lead+n, 0; i < len(row); i, k = i+1, k+1 {
		row[i] = tail[k%len(tail)]
	}
}

// speechLoss is the joint CTC/attention loss of the batch given the model's audio features
// xa [B, F/2, C] and logits [B, S, V] (from a taped forward on the task's ctx); it records
// weight times its gradient on the tape and returns the unweighted loss.
func (t *Task) speechLoss(sb *stepBatch, xa, logits *tensor.T, weight float64) float64 {
	lam := t.o.CTCWeight
	ce := t.ctx.CrossEntropy(t.ctx.ScaleGrad(logits, float32(weight*(1-lam))), sb.targets, t.o.Smoothing, t.ignore)
	loss := (1 - lam) * ce
	if lam > 0 {
		h := t.ctx.Linear(xa, t.ctcW, t.ctcB) // [B, F/2, nText+1]
		tEnc := sb.frames / 2
		bs := sb.size
		var ctc float64
		for j, i := range sb.items {
			u := t.utts[i]
			rows := t.ctx.Rows(h, j*tEnc, j*tEnc+(sb.lead+u.frames+sb.tail)/2)
			w := weight * lam / float64(bs*max(1, len(u.tokens)))
			l := t.ctx.CTCLoss(t.ctx.ScaleGrad(t.ctx.LogSoftmax(rows), float32(w)), u.tokens, t.blank)
			if !math.IsInf(l, 0) {
				ctc += l / float64(max(1, len(u.tokens)))
			}
		}
		loss += lam * ctc / float64(bs)
	}
	return loss
}

// sequence is the decoder's token sequence for u after lead frames of silence: the SOT
// sequence, the text (between its start and end timestamps when timestamps are on) and EOT.
func (t *Task) sequence(u *utterance, lead int, timestamps bool) []int {
	sp := t.o.Tokenizer.Specials()
	var q []int
	if timestamps {
		start := lead / 2 // timestamps count 20 ms, frames 10 ms
		q = append(q, t.prefix[1]...)
		q = append(q, sp.TimestampBegin+start)
		q = append(q, u.tokens...)
		end := min(start+int(math.Round(u.duration/0.02)), 1500)
		q = append(q, sp.TimestampBegin+end)
	} else {
		q = append(q, t.prefix[0]...)
		q = append(q, u.tokens...)
	}
	return append(q, sp.EOT)
}

// Eval implements trainer.Evaluator: greedy transcription of the dev utterances through the
// inference path, scored with the project's normaliser.
func (t *Task) Eval(ctx context.Context) (map[string]float64, error) {
	if len(t.dev) == 0 {
		return nil, nil
	}
	// Dev metrics in Whisper's float32 numerics, as chorus eval and the server decode, even
	// when the step's products run in bfloat16 (--matmul bf16). The trainer evaluates between
	// steps, so no product of a step is in flight while the setting is switched.
	if tensor.MatmulBF16() {
		tensor.SetMatmulBF16(false)
		defer tensor.SetMatmulBF16(true)
	}
	refs, hyps, err := t.Transcribe(ctx, t.dev)
	if err != nil {
		return nil, err
	}
	we, ww := metrics.WER(refs, hyps)
	ce, cc := metrics.CER(refs, hyps)
	return map[string]float64{"wer": float64(we) / float64(max(1, ww)), "cer": float64(ce) / float64(max(1, cc))}, nil
}

// Transcribe decodes utterances with the current weights (greedy, no timestamps).
func (t *Task) Transcribe(ctx context.Context, us []*utterance) (refs, hyps []string, err error) {
	v, err := t.Variant()
	if err != nil {
		return nil, nil, err
	}
	o := transcribe.DefaultOptions()
	o.Temperatures = []float64{0}
	o.Decode.WithoutTimestamps = true
	o.ConditionOnPreviousText = false
	for _, u := range us {
		res, err := v.TranscribeMel(ctx, u.spectrogram(t.o.Dims.NMels), o)
		if err != nil {
			return nil, nil, err
		}
		refs = append(refs, u.text)
		hyps = append(hyps, strings.TrimSpace(res.Text))
	}
	return refs, hyps, nil
}

// chorusConfig is the chorus block of the trained model's config: its dimensions' extensions
// (head widths, encoder attention, per-layer sizes) and content-length encoder windows.
func (t *Task) chorusConfig() asr.ChorusConfig {
	ch := asr.DimsChorus(t.m.Dims)
	ch.EncoderWindow = asr.WindowContent
	if t.m.Dims.GatedExperts > 0 {
		// An upcycled model is served through its experts (the gate's top-k, run sparsely).
		ch.Experts, _ = upcycle.LayoutJSON(t.m) // a gated model always has a layout
	}
	if r := t.o.Route; r != nil {
		ch.Experts, _ = json.Marshal(r.Set.Layout) // a layout always marshals
		ch.Routing = r.routingDefault()
	}
	return ch
}

// Variant wraps the current weights as a servable variant (content-length encoder windows).
// Under a route it runs through the route's experts, rebuilt over the current weights.
func (t *Task) Variant() (*asr.Variant, error) {
	cfg := asr.ConfigFromDims(t.m.Dims)
	v := &asr.Variant{Name: "training", Model: t.m, Tokenizer: t.o.Tokenizer, Config: cfg,
		Chorus: t.chorusConfig()}
	if r := t.o.Route; r != nil {
		set, err := r.Set.Over(t.m)
		if err != nil {
			return nil, err
		}
		v.Experts = set
	}
	return v, nil
}
