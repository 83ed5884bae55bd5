package plot

import (
	"errors"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkPNG fails the test unless path holds a PNG of Width × Height pixels that is not one flat
// colour (a blank canvas would mean nothing was drawn).
func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	if got := img.Bounds().Size(); got != (image.Point{X: Width, Y: Height}) {
		t.Fatalf("%s is %v, want %dx%d", path, got, Width, Height)
	}
	first := img.At(0, 0)
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			if img.At(x, y) != first {
				return
			}
		}
	}
	t.Fatalf("%s is a single colour", path)
}

// noTemps fails if a temporary file was left beside the output.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

func TestLines(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5}
	tests := []struct {
		name    string
		series  []Series
		wantErr error // nil: a PNG must be written
	}{
		{"two series", []Series{{"loss", x, []float64{5, 3, 2, 1.5, 1.2}}, {"ema", x, []float64{5, 4, 3, 2.4, 1.9}}}, nil},
		{"single point", []Series{{"wer", []float64{100}, []float64{0.9}}}, nil},
		{"log scale", []Series{{"loss", x, []float64{1000, 30, 1, 0.2, 0.01}}}, nil},
		{"decades with a zero stay linear", []Series{{"loss", x, []float64{1000, 30, 1, 0.2, 0}}}, nil},
		{"decades with a negative stay linear", []Series{{"x", x, []float64{1000, -30, 1, 0.2, 0.01}}}, nil},
		{"constant", []Series{{"lr", x, []float64{1e-3, 1e-3, 1e-3, 1e-3, 1e-3}}}, nil},
		{"non-finite points dropped", []Series{{"loss", x, []float64{1, math.NaN(), math.Inf(1), 2, math.Inf(-1)}}}, nil},
		{"all points non-finite", []Series{{"loss", []float64{1}, []float64{math.NaN()}}}, nil},
		{"empty series", []Series{{"wer", nil, nil}}, nil},
		{"unnamed series", []Series{{"", x, x}}, nil},
		{"no series", nil, ErrNoData},
		{"ragged series", []Series{{"bad", x, x[:3]}}, errors.New("3 y values")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.png")
			err := Lines(path, "title", "step", "value", tc.series...)
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("Lines: %v", err)
			case tc.wantErr == nil:
				checkPNG(t, path)
			case err == nil:
				t.Fatalf("Lines succeeded, want error %v", tc.wantErr)
			case errors.Is(tc.wantErr, ErrNoData) && !errors.Is(err, ErrNoData):
				t.Fatalf("error %v, want %v", err, ErrNoData)
			case !errors.Is(tc.wantErr, ErrNoData) && !strings.Contains(err.Error(), tc.wantErr.Error()):
				t.Fatalf("error %q does not mention %q", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				if _, err := os.Stat(path); !os.IsNotExist(err) {
					t.Errorf("a failed Lines left %s (stat: %v)", path, err)
				}
			}
			noTemps(t, dir)
		})
	}
}

func TestLinesOverwrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	if err := os.WriteFile(path, []byte("not a png"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Lines(path, "loss", "step", "loss", Series{"loss", []float64{1, 2}, []float64{3, 1}}); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
}

func TestLinesBadDir(t *testing.T) {
	err := Lines(filepath.Join(t.TempDir(), "missing", "x.png"), "t", "x", "y", Series{"a", []float64{1}, []float64{1}})
	if err == nil {
		t.Fatal("Lines into a missing folder succeeded")
	}
}

func TestHeatmap(t *testing.T) {
	nan := math.NaN()
	wide := make([][]float64, 4)
	for r := range wide {
		wide[r] = make([]float64, 64)
		for c := range wide[r] {
			wide[r][c] = float64(r*64+c) / 256
		}
	}
	tests := []struct {
		name           string
		rows           [][]float64
		xlabels, ylabs []string
		wantErr        string // "": a PNG must be written
	}{
		{"labelled", [][]float64{{0.1, 0.5, 0.9}, {0.3, 0.2, 0.1}}, []string{"e0", "e1", "e2"}, []string{"layer 0", "layer 1"}, ""},
		{"index labels", [][]float64{{1, 2}, {3, 4}, {5, 6}}, nil, nil, ""},
		{"single cell", [][]float64{{7}}, nil, nil, ""},
		{"constant", [][]float64{{2, 2}, {2, 2}}, nil, nil, ""},
		{"with NaN", [][]float64{{nan, 1}, {2, nan}}, nil, nil, ""},
		{"all NaN", [][]float64{{nan, nan}}, nil, nil, ""},
		{"64 experts thinned labels", wide, nil, nil, ""},
		{"empty", nil, nil, nil, "no data"},
		{"empty row", [][]float64{{}}, nil, nil, "no data"},
		{"ragged", [][]float64{{1, 2}, {3}}, nil, nil, "row 1 has 1 values"},
		{"infinite", [][]float64{{1, math.Inf(1)}}, nil, nil, "+Inf"},
		{"x label count", [][]float64{{1, 2}}, []string{"a"}, nil, "1 x labels for 2 columns"},
		{"y label count", [][]float64{{1, 2}}, nil, []string{"a", "b"}, "2 y labels for 1 rows"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "heat.png")
			err := Heatmap(path, "pathways", tc.rows, tc.xlabels, tc.ylabs)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Heatmap: %v", err)
				}
				checkPNG(t, path)
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
			noTemps(t, dir)
		})
	}
}

func ExampleLines() {
	dir, err := os.MkdirTemp("", "plot")
	if err != nil {
		return
	}
	defer os.RemoveAll(dir)
	steps := []float64{100, 200, 300}
	err = Lines(filepath.Join(dir, "wer.png"), "dev WER", "step", "WER",
		Series{Name: "dev", X: steps, Y: []float64{0.94, 0.61, 0.35}},
		Series{Name: "dev-voices", X: steps, Y: []float64{0.97, 0.70, 0.41}})
	if err != nil {
		fmt.Println(err)
	}
	// Output:
}
