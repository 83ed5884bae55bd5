package trainer

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgressLines(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	p := newProgress(&buf, ProgressAuto, 10*time.Second, 100, 200, t0) // a buffer is not a terminal
	if p.bar != nil {
		t.Fatal("bar drawn on a non-terminal")
	}
	for s := int64(101); s <= 200; s++ {
		r := report{step: s, total: 200, lossEMA: 2.5, lr: 3e-4, gnorm: 1.25, items: 32,
			counters: map[string]float64{"audio_s": 128}, now: t0.Add(time.Duration(s-100) * 2 * time.Second)}
		if s == 150 {
			r.eval = map[string]float64{"wer": 0.42}
			r.skipped = 1
		}
		p.update(r)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	// First step, then one line per 10 s (5 steps), the eval step, and the last.
	if len(lines) < 20 || len(lines) > 22 {
		t.Errorf("%d lines:\n%s", len(lines), buf.String())
	}
	first := lines[0]
	for _, want := range []string{"step 101/200", "loss 2.5000", "lr 3.00e-04", "|g| 1.25", "items/s 16", "audio_s/s 64", "eta 3m18s"} {
		if !strings.Contains(first, want) {
			t.Errorf("first line %q lacks %q", first, want)
		}
	}
	var evalLine string
	for _, l := range lines {
		if strings.HasPrefix(l, "step 150/200") {
			evalLine = l
		}
	}
	if !strings.Contains(evalLine, "wer 0.42") || !strings.Contains(evalLine, "skipped 1") {
		t.Errorf("eval step line %q", evalLine)
	}
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "step 200/200") || !strings.Contains(last, "eta 0s") || !strings.Contains(last, "wer 0.42") {
		t.Errorf("last line %q", last)
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Now()
	p := newProgress(&buf, ProgressBar, time.Second, 0, 3, t0)
	for s := int64(1); s <= 3; s++ {
		p.update(report{step: s, total: 3, lossEMA: 0.125, lr: 1e-3, gnorm: 2, now: t0.Add(time.Duration(s) * time.Second)})
	}
	p.note("interrupted after step %d", 3)
	p.finish()
	out := buf.String()
	for _, want := range []string{"3/3", "loss 0.1250", "interrupted after step 3"} {
		if !strings.Contains(out, want) {
			t.Errorf("bar output lacks %q:\n%q", want, out)
		}
	}
}

func TestProgressNil(t *testing.T) {
	p := newProgress(nil, ProgressAuto, time.Second, 0, 1, time.Now())
	p.update(report{step: 1, total: 1}) // must not panic
	p.note("x")
	p.finish()
}
