// Package plot draws the small PNG charts chorus's training jobs leave beside their checkpoints:
// line charts (loss, learning rate, dev WER against step) and heatmaps (activation pathways:
// layers × experts). It wraps gonum.org/v1/plot so callers pass plain slices, never build
// plotters, and so every gonum panic on degenerate input (an empty or constant range, NaN
// values) is turned into an error or handled before it is reached.
//
// Files are written atomically (a temporary file in the same folder, then a rename), so a
// viewer that reloads the PNG while training runs never sees a half-written image.
//
// Every image is Width × Height pixels.
package plot

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"

	"github.com/chorus-asr/chorus/asr/formats"

	gplot "gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Image size in pixels, at DPI dots per inch. Fixed so that successive plots of one run can be
// flipped through without the axes jumping.
const (
	Width  = 960
	Height = 540
	DPI    = 96
)

// ErrNoData is returned when there is nothing to draw at all (no series, or an empty grid).
var ErrNoData = errors.New("plot: no data")

// Series is one named line: Y[i] plotted against X[i]. Points where X or Y is NaN or ±Inf are
// left out (a skipped training step logs a NaN loss; it should not blank the whole chart).
type Series struct {
	Name string
	X, Y []float64
}

// Lines writes a PNG line chart of the series to path. Series with no finite points are drawn
// as nothing but still appear in the legend, so a chart's set of lines is stable from the first
// step on. When every plotted Y is positive and they span more than two decades (a training
// loss falling from 10 to 0.05), the Y axis is logarithmic, so the late part of the curve is not
// flattened against the axis. It is an error to pass no series, or a series whose X and Y differ
// in length.
func Lines(path, title, xlabel, ylabel string, series ...Series) error {
	if len(series) == 0 {
		return fmt.Errorf("lines %s: %w", path, ErrNoData)
	}
	p := gplot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		if len(s.X) != len(s.Y) {
			return fmt.Errorf("lines %s: series %q has %d x and %d y values", path, s.Name, len(s.X), len(s.Y))
		}
		pts := make(plotter.XYs, 0, len(s.X))
		for j := range s.X {
			if finite(s.X[j]) && finite(s.Y[j]) {
				pts = append(pts, plotter.XY{X: s.X[j], Y: s.Y[j]})
				lo, hi = min(lo, s.Y[j]), max(hi, s.Y[j])
			}
		}
		l := &plotter.Line{XYs: pts, LineStyle: plotter.DefaultLineStyle}
		l.LineStyle.Color = plotutil.Color(i)
		l.LineStyle.Width = vg.Points(1.5)
		p.Add(l)
		if s.Name != "" {
			p.Legend.Add(s.Name, l)
		}
	}
	if lo > 0 && hi > 100*lo {
		p.Y.Scale = gplot.LogScale{}
		p.Y.Tick.Marker = gplot.LogTicks{Prec: -1}
	}
	return render(path, func(c draw.Canvas) { p.Draw(c) })
}

// Heatmap writes a PNG heatmap of rows to path: rows[r][c] is drawn in row r (top to bottom) and
// column c, with a colour bar giving the scale. xlabels names the columns and ylabels the rows;
// either may be nil for 0-based indices. NaN cells are drawn black (a layer with fewer experts);
// ±Inf is an error, and so are ragged rows and label counts that do not match.
func Heatmap(path, title string, rows [][]float64, xlabels, ylabels []string) error {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return fmt.Errorf("heatmap %s: %w", path, ErrNoData)
	}
	nr, nc := len(rows), len(rows[0])
	lo, hi := math.Inf(1), math.Inf(-1)
	for r, row := range rows {
		if len(row) != nc {
			return fmt.Errorf("heatmap %s: row %d has %d values, row 0 has %d", path, r, len(row), nc)
		}
		for c, v := range row {
			if math.IsInf(v, 0) {
				return fmt.Errorf("heatmap %s: row %d column %d is %v", path, r, c, v)
			}
			if !math.IsNaN(v) {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	if xlabels != nil && len(xlabels) != nc {
		return fmt.Errorf("heatmap %s: %d x labels for %d columns", path, len(xlabels), nc)
	}
	if ylabels != nil && len(ylabels) != nr {
		return fmt.Errorf("heatmap %s: %d y labels for %d rows", path, len(ylabels), nr)
	}
	switch {
	case lo > hi: // every cell NaN: any range will do, all cells are drawn as NaN
		lo, hi = 0, 1
	case lo == hi: // gonum needs a non-empty range for the colour scale
		lo, hi = lo-0.5, hi+0.5
	}

	cmap := moreland.SmoothBlueRed()
	cmap.SetMin(lo)
	cmap.SetMax(hi)
	hm := plotter.NewHeatMap(grid(rows), cmap.Palette(255))
	hm.Min, hm.Max = lo, hi
	hm.NaN = color.Black // the palette runs blue, light grey, red: black is unmistakable

	p := gplot.New()
	p.Title.Text = title
	p.Add(hm)
	p.X.Tick.Marker = labelTicks(xlabels, nc, grid(rows).X)
	p.Y.Tick.Marker = labelTicks(ylabels, nr, grid(rows).Y)
	p.X.Padding, p.Y.Padding = 0, 0

	bar := gplot.New()
	bar.HideX()
	bar.Y.Padding = 0
	bar.Title.Text = " "
	bar.Add(&plotter.ColorBar{ColorMap: cmap, Vertical: true})

	const barWidth = vg.Length(Width) * vg.Inch / DPI / 8
	return render(path, func(c draw.Canvas) {
		left := draw.Crop(c, 0, -barWidth, 0, 0)
		right := draw.Crop(c, c.Max.X-c.Min.X-barWidth, 0, 0, 0)
		p.Draw(left)
		bar.Draw(right)
	})
}

// grid adapts [][]float64 to gonum's GridXYZ. Row r sits at y = -r so that row 0 is drawn at
// the top, as in a table.
type grid [][]float64

func (g grid) Dims() (c, r int)   { return len(g[0]), len(g) }
func (g grid) Z(c, r int) float64 { return g[r][c] }
func (g grid) X(c int) float64    { return float64(c) }
func (g grid) Y(r int) float64    { return -float64(r) }

// labelTicks puts one tick per cell at pos(i), named by labels[i] (or i when labels is nil),
// thinned so that at most about 40 labels are written on an axis (64 experts would otherwise
// overprint).
func labelTicks(labels []string, n int, pos func(int) float64) gplot.Ticker {
	step := max(1, (n+39)/40)
	return gplot.TickerFunc(func(_, _ float64) []gplot.Tick {
		ts := make([]gplot.Tick, n)
		for i := range ts {
			ts[i].Value = pos(i)
			if i%step == 0 {
				ts[i].Label = fmt.Sprint(i)
				if labels != nil {
					ts[i].Label = labels[i]
				}
			}
		}
		return ts
	})
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// render draws onto a Width × Height canvas and writes it to path atomically. gonum/plot
// panics on some degenerate inputs deep inside its tick and range code (it documents them as
// panics, not errors); those are recovered here and returned as errors so a bad chart can never
// take down a training run.
func render(path string, drawFn func(draw.Canvas)) (err error) {
	img := vgimg.NewWith(
		vgimg.UseWH(vg.Length(Width)*vg.Inch/DPI, vg.Length(Height)*vg.Inch/DPI),
		vgimg.UseDPI(DPI),
		vgimg.UseBackgroundColor(color.White),
	)
	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("plot %s: draw: %v", path, r)
			}
		}()
		// A small white margin keeps the outermost tick labels and legend off the image edge.
		const m = vg.Inch / 10
		drawFn(draw.Crop(draw.New(img), m, -m, m, -m))
	}()
	if err != nil {
		return err
	}
	png := vgimg.PngCanvas{Canvas: img}
	if err := formats.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := png.WriteTo(w)
		return err
	}); err != nil {
		return fmt.Errorf("plot %s: %w", path, err)
	}
	return nil
}
