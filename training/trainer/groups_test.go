package trainer

import (
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/tensor"
)

// constGrad gives every param the gradient 1 each step and reports two values.
type constGrad struct{ params []Param }

func (c *constGrad) Params() []Param { return c.params }

func (c *constGrad) Step(_ context.Context, b Batch, _ *rand.Rand) (StepResult, error) {
	for _, p := range c.params {
		p.Grad.Data[0] += 1
	}
	return StepResult{Loss: 1, Values: map[string]float64{"lambda/1": float64(b.Step), "lambda/2": 2 * float64(b.Step)}}, nil
}

// TestParamLRAndValues checks a param with its own LR (a second group) moves at that rate
// while the other follows the schedule — AdamW's first step moves a weight by exactly lr
// against a constant gradient — and that Values land in the CSV and their group's plot.
func TestParamLRAndValues(t *testing.T) {
	dir := t.TempDir()
	task := &constGrad{params: []Param{
		{Name: "w", W: tensor.New(1), Grad: tensor.New(1)},
		{Name: "gate", W: tensor.New(1), Grad: tensor.New(1), LR: 0.25},
	}}
	err := Run(context.Background(), task, Config{
		Steps: 1, Schedule: WarmupDecay{Peak: 0.01, Floor: 0.01, Total: 1, Shape: DecayNone},
		LogCSV: filepath.Join(dir, "log.csv"), PlotDir: dir, NoSignals: true,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if w, g := task.params[0].W.Data[0], task.params[1].W.Data[0]; math.Abs(float64(w)+0.01) > 1e-6 || math.Abs(float64(g)+0.25) > 1e-6 {
		t.Fatalf("after one step w = %v (want −0.01, the schedule's), gate = %v (want −0.25, its own)", w, g)
	}
	b, err := os.ReadFile(filepath.Join(dir, "log.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.SplitN(string(b), "\n", 2)[0], "lambda/1,lambda/2") {
		t.Fatalf("value columns missing from header: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, "lambda.png")); err != nil {
		t.Fatalf("group plot: %v", err)
	}
	// The group LR is part of the config hash: changing or removing it changes the hash.
	h1 := configHash(Config{Schedule: WarmupDecay{}}, task.params, task)
	task.params[1].LR = 0.5
	h2 := configHash(Config{Schedule: WarmupDecay{}}, task.params, task)
	task.params[1].LR = 0
	h3 := configHash(Config{Schedule: WarmupDecay{}}, task.params, task)
	if h1 == h2 || h3 == h1 {
		t.Fatalf("hashes lr=0.25 %s, lr=0.5 %s, none %s: group LR must be hashed", h1, h2, h3)
	}
}
