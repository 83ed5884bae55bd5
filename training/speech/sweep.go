package speech

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/bench"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/tensor"
	"github.com/chorus-asr/chorus/training/data"
	"github.com/chorus-asr/chorus/training/plot"
)

// The pruning methods a sweep compares (issue: pruning and distillation).
const (
	SweepMagnitude     = "magnitude"      // no training: the structures with the smallest weights go
	SweepCoFi          = "cofi"           // the recipe as written: CoFi masks with distillation
	SweepCoFiNoDistill = "cofi-nodistill" // the same masks trained on the speech loss alone
	// SweepMagnitudeFT prunes by magnitude, then fine-tunes the smaller model for as many
	// steps as a CoFi run takes, distilling the teacher's logits with the recipe's weight and
	// temperature (a train recipe's kd block: no hidden-state terms): the baseline that spends
	// the same training budget as CoFi, so the comparison is of how the structures are chosen.
	SweepMagnitudeFT = "magnitude-ft"
	SweepCoFiEntropy = "cofi-entropy" // CoFi with distillation plus the entropy regulariser
	SweepCoFiKL      = "cofi-kl"      // CoFi with distillation plus the KL-from-uniform regulariser
)

// sweepMethods are the methods Sweep knows, in its default order (the regularised ones run
// only when asked).
var sweepMethods = []string{SweepMagnitude, SweepMagnitudeFT, SweepCoFi, SweepCoFiNoDistill, SweepCoFiEntropy, SweepCoFiKL}

// SweepOptions configure Sweep.
type SweepOptions struct {
	// Recipe is a prune recipe (kind prune): its teacher is the model pruned, its prune block
	// the CoFi settings; each run replaces the target (and, without distillation, zeroes the
	// distillation weights and sets the task weight to 1).
	Recipe  *Recipe
	Targets []float64
	Methods []string // default: magnitude, magnitude-ft, cofi, cofi-nodistill
	// Entropy and KL weight the non-uniformity regularisers of the cofi-entropy and cofi-kl
	// runs (prune.Regulariser; default 0.5 each). The plain CoFi runs use the recipe's.
	Entropy, KL float64
	// Work holds one folder per run (<method>-<percent>): CoFi runs resume from their
	// checkpoints and finished variants are reused, so an interrupted sweep continues.
	Work string
	// Dev is scored on its first Limit utterances (0: all); BenchRuns times encoder and
	// decoder per variant (median of that many; default 3).
	Dev       *data.Manifest
	Limit     int
	BenchRuns int
	Logger    *slog.Logger
	Run       RunOptions // progress and logging of the CoFi runs (Work and Resume are set per run)
}

// SweepRow is one variant of a sweep: the teacher (method "teacher", sparsity 0) or a pruned one.
type SweepRow struct {
	Method   string  `json:"method"`
	Target   float64 `json:"target"`
	Sparsity float64 `json:"sparsity"` // achieved share of the layers' parameters removed
	// Layers is each layer's achieved sparsity (encoder layers, then decoder), from the card.
	Layers           []float64 `json:"layers,omitempty"`
	Params           int64     `json:"params"`
	WER              float64   `json:"wer"`
	CER              float64   `json:"cer"`
	EncoderMS        float64   `json:"encoder_ms"`          // one 30-s window (chorus bench)
	DecodeMSPerToken float64   `json:"decode_ms_per_token"` // chorus bench
	Variant          string    `json:"variant"`
}

// Sweep prunes the recipe's teacher to each target with each method, scores every variant
// and the teacher on the dev manifest, and times them: the WER-against-sparsity comparison.
// Rows come teacher first, then per method in order of target.
func Sweep(ctx context.Context, o SweepOptions) ([]SweepRow, error) {
	r := o.Recipe
	if r == nil || r.Kind != "prune" || r.Prune == nil {
		return nil, errors.New("sweep: needs a prune recipe")
	}
	if o.Dev == nil || len(o.Targets) == 0 || o.Work == "" {
		return nil, errors.New("sweep: needs a dev manifest, targets and a work folder")
	}
	methods := o.Methods
	if len(methods) == 0 {
		methods = []string{SweepMagnitude, SweepMagnitudeFT, SweepCoFi, SweepCoFiNoDistill}
	}
	for _, m := range methods {
		if !slices.Contains(sweepMethods, m) {
			return nil, fmt.Errorf("sweep: unknown method %q (want one of %s)", m, strings.Join(sweepMethods, ", "))
		}
	}
	for _, t := range o.Targets {
		if !(t > 0 && t < 1) {
			return nil, fmt.Errorf("sweep: target %g outside (0, 1)", t)
		}
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	teacher, err := openTeacher(r.Teacher)
	if err != nil {
		return nil, fmt.Errorf("sweep: teacher: %w", err)
	}
	// Variants are scored and timed in float32, Whisper's numerics, whatever precision
	// (--matmul) the CoFi runs train in, so every row is measured the same way.
	score := func(v *asr.Variant, row SweepRow) (SweepRow, error) {
		if tensor.MatmulBF16() {
			if err := tensor.SetMatmulBF16(false); err != nil {
				return row, err
			}
			defer tensor.SetMatmulBF16(true)
		}
		rep, err := Evaluate(ctx, v, o.Dev, EvalOptions{Limit: o.Limit, Beam: transcribe.DefaultBeamSize}) // as chorus eval
		if err != nil {
			return row, err
		}
		b, err := bench.Run(v.Model, v.Name, bench.Options{Runs: max(1, o.BenchRuns)})
		if err != nil {
			return row, err
		}
		row.WER, row.CER, row.EncoderMS, row.DecodeMSPerToken = rep.Overall.WER, rep.Overall.CER, b.EncoderMS, b.DecodeMSPerToken
		row.Params = v.Model.NumParams()
		log.Info("sweep: scored", "method", row.Method, "target", row.Target, "sparsity", row.Sparsity, "wer", row.WER, "encoder_ms", row.EncoderMS)
		return row, nil
	}
	row, err := score(teacher, SweepRow{Method: "teacher", Variant: teacher.Path})
	if err != nil {
		return nil, err
	}
	rows := []SweepRow{row}
	for _, m := range methods {
		for _, t := range o.Targets {
			dir := filepath.Join(o.Work, sweepRunName(m, t, o))
			variant, err := sweepVariant(ctx, o, teacher, m, t, dir)
			if err != nil {
				return rows, fmt.Errorf("sweep %s at %g: %w", m, t, err)
			}
			v, err := asr.Open(variant, asr.OpenOptions{})
			if err != nil {
				return rows, err
			}
			// A fine-tuned magnitude variant's card is a training card: the sparsity is that of
			// the pruned model it started from.
			card := variant
			if m == SweepMagnitudeFT {
				card = filepath.Join(dir, "pruned")
			}
			sp, layers, err := cardSparsity(card)
			if err != nil {
				return rows, err
			}
			row, err := score(v, SweepRow{Method: m, Target: t, Sparsity: sp, Layers: layers, Variant: variant})
			if err != nil {
				return rows, err
			}
			rows = append(rows, row)
		}
	}
	return rows, nil
}

// sweepRunName is the folder of one method's run at target t: "<method>-<percent>", with the
// regulariser's weight when it is not the default 0.5 ("cofi-entropy-w5-50"), so runs of
// other weights never reuse each other's variants.
func sweepRunName(m string, t float64, o SweepOptions) string {
	w := 0.0
	switch m {
	case SweepCoFiEntropy:
		w = cmp.Or(o.Entropy, 0.5)
	case SweepCoFiKL:
		w = cmp.Or(o.KL, 0.5)
	}
	if w != 0 && w != 0.5 {
		return fmt.Sprintf("%s-w%g-%02.0f", m, w, 100*t)
	}
	return fmt.Sprintf("%s-%02.0f", m, 100*t)
}

// sweepVariant makes (or finds, from an earlier run) the variant of one method and target
// and returns its folder.
func sweepVariant(ctx context.Context, o SweepOptions, teacher *asr.Variant, method string, t float64, dir string) (string, error) {
	if method == SweepMagnitude {
		if _, err := os.Stat(filepath.Join(dir, "card.json")); err == nil {
			return dir, nil
		}
		_, err := PruneMagnitude(teacher, t, o.Recipe.Prune.UnitBlock, dir)
		return dir, err
	}
	variant := filepath.Join(dir, "variant")
	if _, err := os.Stat(filepath.Join(variant, "card.json")); err == nil && finished(dir, o.Recipe) {
		return variant, nil
	}
	r := *o.Recipe
	p := *r.Prune
	r.Name = filepath.Base(dir)
	ro := o.Run
	ro.Work, ro.Resume = dir, true
	if method == SweepMagnitudeFT {
		pruned := filepath.Join(dir, "pruned")
		if _, err := os.Stat(filepath.Join(pruned, "card.json")); err != nil {
			if _, err := PruneMagnitude(teacher, t, p.UnitBlock, pruned); err != nil {
				return "", err
			}
		}
		r.Kind, r.Prune, r.From = "", nil, pruned
		r.Teacher = cmp.Or(r.Teacher, defaultmodel.Name)
		r.KD = nil
		if p.Distill.Logit > 0 && p.Distill.Logit < 1 {
			r.KD = &KDRecipe{Logit: p.Distill.Logit, Temperature: p.Distill.Temperature}
		} else {
			r.Teacher = ""
		}
		if err := Run(ctx, &r, ro); err != nil {
			return "", err
		}
		return variant, nil
	}
	p.Target = t
	switch method {
	case SweepCoFiNoDistill:
		p.TaskWeight = 1
		p.Distill.Logit, p.Distill.Hidden, p.Distill.Attn, p.Distill.FFN = 0, 0, 0, 0
	case SweepCoFiEntropy:
		p.Entropy, p.KL = cmp.Or(o.Entropy, 0.5), 0
	case SweepCoFiKL:
		p.Entropy, p.KL = 0, cmp.Or(o.KL, 0.5)
	}
	r.Prune = &p
	if err := Run(ctx, &r, ro); err != nil {
		return "", err
	}
	return variant, nil
}

// finished reports whether the run in dir reached the recipe's steps (its variant is final).
func finished(dir string, r *Recipe) bool {
	step, _ := latestStep(filepath.Join(dir, "checkpoints"))
	return step >= int64(r.Optim.Steps)
}

// cardSparsity reads the achieved sparsity a pruned variant's card records, overall and per
// layer (the magnitude baseline's card has no per-layer figures: nil).
func cardSparsity(dir string) (float64, []float64, error) {
	b, err := fs.ReadFile(os.DirFS(dir), "card.json")
	if err != nil {
		return 0, nil, err
	}
	var c struct {
		Prune struct {
			Achieved float64         `json:"achieved_sparsity"`
			Layers   json.RawMessage `json:"layers"` // CoFi: per-layer cards; magnitude: sizes per stack
		} `json:"prune"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return 0, nil, fmt.Errorf("%s/card.json: %w", dir, err)
	}
	var cards []struct {
		Achieved *float64 `json:"achieved_sparsity"`
	}
	if json.Unmarshal(c.Prune.Layers, &cards) != nil {
		return c.Prune.Achieved, nil, nil
	}
	var layers []float64
	for _, l := range cards {
		if l.Achieved == nil {
			return c.Prune.Achieved, nil, nil
		}
		layers = append(layers, *l.Achieved)
	}
	return c.Prune.Achieved, layers, nil
}

// werSeries returns one line per method (in the order methods first appear), from the
// teacher's point at 0% through the method's rows by increasing achieved sparsity — rows come
// in the order the sweep ran its targets, which need not be increasing (--targets 0.5,0.3,0.7).
func werSeries(rows []SweepRow) []plot.Series {
	var teacher *SweepRow
	byMethod := map[string][]*SweepRow{}
	var order []string
	for i := range rows {
		r := &rows[i]
		if r.Method == "teacher" {
			teacher = r
			continue
		}
		if _, ok := byMethod[r.Method]; !ok {
			order = append(order, r.Method)
		}
		byMethod[r.Method] = append(byMethod[r.Method], r)
	}
	var ss []plot.Series
	for _, m := range order {
		rs := byMethod[m]
		slices.SortStableFunc(rs, func(a, b *SweepRow) int { return cmp.Compare(a.Sparsity, b.Sparsity) })
		s := plot.Series{Name: m}
		if teacher != nil {
			s.X, s.Y = []float64{0}, []float64{100 * teacher.WER}
		}
		for _, r := range rs {
			s.X, s.Y = append(s.X, 100*r.Sparsity), append(s.Y, 100*r.WER)
		}
		ss = append(ss, s)
	}
	return ss
}

// WriteSweep writes the rows as CSV and draws WER against achieved sparsity, one line per
// method from the teacher's point.
func WriteSweep(rows []SweepRow, csvPath, pngPath string) error {
	f, err := os.Create(csvPath)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.Write([]string{"method", "target", "sparsity", "params", "wer", "cer", "encoder_ms", "decode_ms_per_token", "variant"})
	g := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	for _, r := range rows {
		w.Write([]string{r.Method, g(r.Target), g(r.Sparsity), strconv.FormatInt(r.Params, 10), g(r.WER), g(r.CER), g(r.EncoderMS), g(r.DecodeMSPerToken), r.Variant})
	}
	w.Flush()
	if err := errors.Join(w.Error(), f.Close()); err != nil {
		return err
	}
	if err := plot.Lines(pngPath, "WER against sparsity (encoder+decoder layers)", "parameters removed (%)", "WER (%)", werSeries(rows)...); err != nil {
		return err
	}
	// Per-layer sparsity maps: for each target, one line per CoFi run (Lagrangian alone and
	// with each regulariser) over the layers, encoder first.
	byTarget := map[float64][]plot.Series{}
	var targets []float64
	for _, r := range rows {
		if len(r.Layers) == 0 {
			continue
		}
		if _, ok := byTarget[r.Target]; !ok {
			targets = append(targets, r.Target)
		}
		s := plot.Series{Name: r.Method}
		for i, v := range r.Layers {
			s.X, s.Y = append(s.X, float64(i)), append(s.Y, 100*v)
		}
		byTarget[r.Target] = append(byTarget[r.Target], s)
	}
	base := strings.TrimSuffix(pngPath, filepath.Ext(pngPath))
	for _, t := range targets {
		title := fmt.Sprintf("per-layer sparsity at target %.0f%% (encoder layers, then decoder)", 100*t)
		if err := plot.Lines(fmt.Sprintf("%s-layers-%02.0f.png", base, 100*t), title, "layer", "parameters removed (%)", byTarget[t]...); err != nil {
			return err
		}
	}
	return nil
}
