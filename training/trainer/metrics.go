package trainer

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/chorus-asr/chorus/training/plot"
)

// Core CSV columns, in order. Counter rates ("<name>_per_s") and eval metrics ("eval_<name>")
// follow as they first appear.
var coreColumns = []string{"step", "time", "elapsed_s", "loss", "lr", "grad_norm", "items_per_s", "skipped"}

// evalPrefix marks eval metric columns in the CSV.
const evalPrefix = "eval_"

// metricsLog is the per-step CSV log. It keeps every row in memory too (a few hundred bytes a
// step), so plots can be redrawn from it and the file can be rewritten when a new column
// appears — the set of eval metrics and task counters is only known once they are reported.
type metricsLog struct {
	path   string
	header []string
	col    map[string]int
	rows   [][]string
	f      *os.File
	w      *csv.Writer
}

// openMetrics opens the CSV log at path. A fresh run starts an empty file; a resumed run keeps
// the rows up to and including step resumeStep and drops the rest (steps the crashed session
// logged after its last checkpoint, which the resumed run will log again), so the file never
// holds a step twice. A log that cannot be parsed is moved aside to path+".bad" with a warning:
// it is a record, not state, and must not block training.
func openMetrics(path string, resume bool, resumeStep int64, log *slog.Logger) (*metricsLog, error) {
	l := &metricsLog{path: path}
	l.setHeader(coreColumns)
	if resume {
		switch data, err := os.ReadFile(path); {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("metrics log: %w", err)
		default:
			if err := l.load(data, resumeStep); err != nil {
				log.Warn("metrics log unreadable, starting a new one", "path", path, "err", err, "moved_to", path+".bad")
				if err := os.Rename(path, path+".bad"); err != nil {
					return nil, fmt.Errorf("metrics log: %w", err)
				}
				l.setHeader(coreColumns)
				l.rows = nil
			}
		}
	}
	if err := l.rewrite(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *metricsLog) setHeader(h []string) {
	l.header = slices.Clone(h)
	l.col = make(map[string]int, len(h))
	for i, c := range h {
		l.col[c] = i
	}
}

// load parses an existing log, keeping rows with step ≤ upTo. A last line without its newline
// was cut off mid-write by a crash and is dropped: its step number may itself be truncated.
func (l *metricsLog) load(data []byte, upTo int64) error {
	if i := bytes.LastIndexByte(data, '\n'); i < len(data)-1 {
		data = data[:i+1]
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	recs, err := r.ReadAll()
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		return nil
	}
	header := recs[0]
	if len(header) == 0 || header[0] != "step" {
		return fmt.Errorf("header %q does not start with step", header)
	}
	seen := make(map[string]bool)
	for _, c := range header {
		if seen[c] {
			return fmt.Errorf("duplicate column %q", c)
		}
		seen[c] = true
	}
	l.setHeader(header)
	for _, c := range coreColumns {
		l.addColumn(c)
	}
	for _, rec := range recs[1:] {
		step, err := strconv.ParseInt(rec[0], 10, 64)
		if err != nil || step > upTo || step < 1 {
			continue
		}
		row := make([]string, len(l.header))
		copy(row, rec)
		l.rows = append(l.rows, row)
	}
	return nil
}

func (l *metricsLog) addColumn(c string) bool {
	if _, ok := l.col[c]; ok {
		return false
	}
	l.col[c] = len(l.header)
	l.header = append(l.header, c)
	for i := range l.rows {
		l.rows[i] = append(l.rows[i], "")
	}
	return true
}

// rewrite writes header and rows to a temporary file, renames it over path and reopens it for
// appending.
func (l *metricsLog) rewrite() error {
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	f, err := os.CreateTemp(filepath.Dir(l.path), "."+filepath.Base(l.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	w := csv.NewWriter(f)
	if err := f.Chmod(0o644); err != nil { // CreateTemp makes it private; a log is not
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("metrics log: %w", err)
	}
	w.Write(l.header)
	w.WriteAll(l.rows) // flushes
	if err := w.Error(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("metrics log: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("metrics log: %w", err)
	}
	if err := os.Rename(f.Name(), l.path); err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("metrics log: %w", err)
	}
	if l.f, err = os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND, 0); err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	l.w = csv.NewWriter(l.f)
	return nil
}

// cell is one column value of a row.
type cell struct {
	col, val string
}

// append writes one row; columns it has not seen before are added to the header, which
// rewrites the file (rare: once per new column).
func (l *metricsLog) append(cells []cell) error {
	grown := false
	for _, c := range cells {
		grown = l.addColumn(c.col) || grown
	}
	row := make([]string, len(l.header))
	for _, c := range cells {
		row[l.col[c.col]] = c.val
	}
	l.rows = append(l.rows, row)
	if grown {
		return l.rewrite()
	}
	l.w.Write(row)
	l.w.Flush()
	if err := l.w.Error(); err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	return nil
}

// series returns (step, value) for every row where column c holds a number.
func (l *metricsLog) series(c string) (xs, ys []float64) {
	i, ok := l.col[c]
	if !ok {
		return nil, nil
	}
	for _, row := range l.rows {
		if row[i] == "" {
			continue
		}
		x, err1 := strconv.ParseFloat(row[0], 64)
		y, err2 := strconv.ParseFloat(row[i], 64)
		if err1 == nil && err2 == nil {
			xs = append(xs, x)
			ys = append(ys, y)
		}
	}
	return xs, ys
}

// plot redraws dir/loss.png (per-step loss and its moving average), one dir/<group>.png
// per group of "group/series" value columns, and one dir/eval_<metric>.png per eval metric
// (such as dev WER) against step.
func (l *metricsLog) plot(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	xs, ys := l.series("loss")
	ema := make([]float64, len(ys))
	var e, wsum float64
	for i, y := range ys {
		if finite(y) {
			e = lossEMABeta*e + (1-lossEMABeta)*y
			wsum = lossEMABeta*wsum + (1 - lossEMABeta)
		}
		ema[i] = e / wsum // NaN until the first finite loss; plot drops it
	}
	err := plot.Lines(filepath.Join(dir, "loss.png"), "training loss", "step", "loss",
		plot.Series{Name: "loss", X: xs, Y: ys},
		plot.Series{Name: fmt.Sprintf("moving average (β=%g)", lossEMABeta), X: xs, Y: ema})
	groups := map[string][]plot.Series{}
	var order []string
	for _, c := range l.header {
		g, name, ok := strings.Cut(c, "/")
		if !ok || strings.HasPrefix(c, evalPrefix) {
			continue
		}
		if _, seen := groups[g]; !seen {
			order = append(order, g)
		}
		xs, ys := l.series(c)
		groups[g] = append(groups[g], plot.Series{Name: name, X: xs, Y: ys})
	}
	for _, g := range order {
		err = errors.Join(err, plot.Lines(filepath.Join(dir, fileSafe(g)+".png"), g, "step", g, groups[g]...))
	}
	for _, c := range l.header {
		name, ok := strings.CutPrefix(c, evalPrefix)
		if !ok {
			continue
		}
		xs, ys := l.series(c)
		err = errors.Join(err, plot.Lines(filepath.Join(dir, "eval_"+fileSafe(name)+".png"),
			"dev "+name, "step", name, plot.Series{Name: name, X: xs, Y: ys}))
	}
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
}

// fileSafe maps a metric name to a file name part.
func fileSafe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

func (l *metricsLog) close() error {
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if err != nil {
		return fmt.Errorf("metrics log: %w", err)
	}
	return nil
}
