package trainer

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// ProgressStyle chooses how Run reports progress on Config.Progress.
type ProgressStyle int

const (
	// ProgressAuto draws a bar when Progress is a terminal and writes lines otherwise (a log
	// file, a pipe, a cluster job's stdout).
	ProgressAuto ProgressStyle = iota
	// ProgressBar always draws a bar.
	ProgressBar
	// ProgressLines always writes one plain line per ProgressEvery.
	ProgressLines
)

// report is what one finished step tells the progress display.
type report struct {
	step, total int64
	lossEMA     float64
	lr, gnorm   float64
	items       int64
	counters    map[string]float64
	skipped     int64
	eval        map[string]float64
	now         time.Time
}

// progress renders reports as a bar or as periodic lines, with throughput measured over the
// time since the last display and an ETA from this session's average step time.
type progress struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	every time.Duration

	sessionStart time.Time
	startStep    int64

	// throughput window, reset at each display
	winStart    time.Time
	winItems    int64
	winCounters map[string]float64
	lastShown   time.Time
	rates       string // last computed throughput text
	evalText    string // latest eval metrics
}

func newProgress(w io.Writer, style ProgressStyle, every time.Duration, startStep, total int64, now time.Time) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, every: every, sessionStart: now, startStep: startStep, winStart: now,
		winCounters: map[string]float64{}}
	if style == ProgressBar || (style == ProgressAuto && isTerminal(w)) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("train"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(false), // its ETA counts resumed steps as instant
			progressbar.OptionSetElapsedTime(false),
			progressbar.OptionSetWidth(24),
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
		// Render errors (a closed terminal) are ignored here and below: the display must
		// never stop training.
		p.bar.Set64(startStep)
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

func (p *progress) update(r report) {
	if p == nil {
		return
	}
	p.winItems += r.items
	for k, v := range r.counters {
		p.winCounters[k] += v
	}
	if len(r.eval) > 0 {
		p.evalText = formatEval(r.eval)
	}
	if win := r.now.Sub(p.winStart); win >= time.Second || p.rates == "" {
		p.rates = p.formatRates(win)
		p.winStart, p.winItems = r.now, 0
		clear(p.winCounters)
	}
	eta := "?"
	if done := r.step - p.startStep; done > 0 {
		per := r.now.Sub(p.sessionStart) / time.Duration(done)
		eta = (per * time.Duration(r.total-r.step)).Round(time.Second).String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "loss %.4f lr %.2e |g| %.3g%s", r.lossEMA, r.lr, r.gnorm, p.rates)
	if r.skipped > 0 {
		fmt.Fprintf(&b, " skipped %d", r.skipped)
	}
	b.WriteString(p.evalText)
	fmt.Fprintf(&b, " eta %s", eta)

	if p.bar != nil {
		p.bar.Describe(b.String())
		p.bar.Set64(r.step)
		return
	}
	if r.step == r.total || r.step == p.startStep+1 || len(r.eval) > 0 || r.now.Sub(p.lastShown) >= p.every {
		fmt.Fprintf(p.w, "step %d/%d %s\n", r.step, r.total, b.String())
		p.lastShown = r.now
	}
}

// formatRates renders the window's throughput, items first, then the task's counters sorted by
// name (such as "audio_s/s" — seconds of audio per second).
func (p *progress) formatRates(win time.Duration) string {
	s := win.Seconds()
	if s <= 0 {
		return ""
	}
	var b strings.Builder
	if p.winItems > 0 {
		fmt.Fprintf(&b, " items/s %.3g", float64(p.winItems)/s)
	}
	for _, k := range slices.Sorted(maps.Keys(p.winCounters)) {
		fmt.Fprintf(&b, " %s/s %.3g", k, p.winCounters[k]/s)
	}
	return b.String()
}

func formatEval(m map[string]float64) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, " %s %.4g", k, m[k])
	}
	return b.String()
}

// note prints a line of its own (interruption, resume), clearing the bar first.
func (p *progress) note(format string, args ...any) {
	if p == nil {
		return
	}
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) finish() {
	if p == nil || p.bar == nil {
		return
	}
	p.bar.Exit()
}
