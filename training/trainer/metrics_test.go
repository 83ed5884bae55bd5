package trainer

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func row(step string, extra ...cell) []cell {
	return append([]cell{{"step", step}, {"loss", "1.5"}, {"lr", "0.001"}}, extra...)
}

func TestMetricsLogColumnsGrow(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.csv")
	l, err := openMetrics(path, false, 0, quiet())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][]cell{
		row("1"),
		row("2", cell{"audio_s_per_s", "40"}),
		row("3", cell{"eval_wer", "0.5"}, cell{"audio_s_per_s", "41"}),
		row("4"),
	} {
		if err := l.append(r); err != nil {
			t.Fatal(err)
		}
	}
	l.close()
	header, rows := readCSV(t, path)
	if want := append(slices.Clone(coreColumns), "audio_s_per_s", "eval_wer"); !slices.Equal(header, want) {
		t.Errorf("header %v, want %v", header, want)
	}
	if len(rows) != 4 || rows[0][8] != "" || rows[1][8] != "40" || rows[2][9] != "0.5" || rows[3][9] != "" {
		t.Errorf("rows %q", rows)
	}
	if xs, ys := l.series("eval_wer"); !slices.Equal(xs, []float64{3}) || !slices.Equal(ys, []float64{0.5}) {
		t.Errorf("eval_wer series %v %v", xs, ys)
	}
}

func TestMetricsLogResume(t *testing.T) {
	const header = "step,time,elapsed_s,loss,lr,grad_norm,items_per_s,skipped,eval_wer\n"
	tests := []struct {
		name      string
		existing  string // "" means no file
		upTo      int64
		wantSteps []string
		wantBad   bool // moved aside to .bad
	}{
		{"no file", "", 5, nil, false},
		{"drops rows past the checkpoint", header + "1,,,,,,,,\n2,,,,,,,,0.9\n3,,,,,,,,\n4,,,,,,,,0.8\n", 2, []string{"1", "2"}, false},
		{"drops a line cut off mid-write", header + "1,,,,,,,,\n2,,,,,,,,\n1", 5, []string{"1", "2"}, false},
		{"keeps everything up to the step", header + "1,,,,,,,,\n2,,,,,,,,\n", 2, []string{"1", "2"}, false},
		{"drops unparsable steps", header + "x,,,,,,,,\n2,,,,,,,,\n", 5, []string{"2"}, false},
		{"old header gains core columns", "step,loss\n1,2.5\n", 5, []string{"1"}, false},
		{"not our CSV", "a,b\n1,2\n", 5, nil, true},
		{"quote soup", "step,loss\n\"1,2\n", 5, nil, true},
		{"duplicate column", "step,loss,loss\n1,2,3\n", 5, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "log.csv")
			if tc.existing != "" {
				os.WriteFile(path, []byte(tc.existing), 0o644)
			}
			l, err := openMetrics(path, true, tc.upTo, quiet())
			if err != nil {
				t.Fatal(err)
			}
			if err := l.append(row("99")); err != nil {
				t.Fatal(err)
			}
			l.close()
			hdr, rows := readCSV(t, path)
			if hdr[0] != "step" {
				t.Fatalf("header %v", hdr)
			}
			for _, c := range coreColumns {
				if !slices.Contains(hdr, c) {
					t.Errorf("header %v lacks %s", hdr, c)
				}
			}
			var steps []string
			for _, r := range rows {
				if len(r) != len(hdr) {
					t.Errorf("row %q has %d cells for %d columns", r, len(r), len(hdr))
				}
				steps = append(steps, r[0])
			}
			if want := append(slices.Clone(tc.wantSteps), "99"); !slices.Equal(steps, want) {
				t.Errorf("steps %v, want %v", steps, want)
			}
			_, err = os.Stat(path + ".bad")
			if got := err == nil; got != tc.wantBad {
				t.Errorf("moved aside: %v, want %v", got, tc.wantBad)
			}
		})
	}
}

func TestMetricsLogFreshTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.csv")
	os.WriteFile(path, []byte("step,loss\n1,2\n2,3\n"), 0o644)
	l, err := openMetrics(path, false, 0, quiet())
	if err != nil {
		t.Fatal(err)
	}
	l.close()
	if _, rows := readCSV(t, path); len(rows) != 0 {
		t.Errorf("a fresh run kept %d old rows", len(rows))
	}
}

func TestMetricsPlots(t *testing.T) {
	dir := t.TempDir()
	l, err := openMetrics(filepath.Join(dir, "log.csv"), false, 0, quiet())
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	for i, loss := range []string{"3", "NaN", "2", "1.5", "+Inf", "1"} {
		cells := []cell{{"step", string(rune('1' + i))}, {"loss", loss}}
		if i%2 == 1 {
			cells = append(cells, cell{"eval_wer", "0.5"}, cell{"eval_odd/name", "1"})
		}
		if err := l.append(cells); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.plot(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"loss.png", "eval_wer.png", "eval_odd_name.png"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		f.Close()
	}
	// A plot folder that does not exist yet is created (a fresh run's work folder).
	if err := l.plot(filepath.Join(dir, "new", "plots")); err != nil {
		t.Errorf("plotting into a new folder: %v", err)
	} else if _, err := os.Stat(filepath.Join(dir, "new", "plots", "loss.png")); err != nil {
		t.Error(err)
	}
	// A folder that cannot be created is an error naming the plots.
	blocker := filepath.Join(dir, "file")
	os.WriteFile(blocker, nil, 0o644)
	if err := l.plot(filepath.Join(blocker, "plots")); err == nil {
		t.Error("plotting under a regular file succeeded")
	}
}
