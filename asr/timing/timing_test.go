package timing

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// MedianFilterNaive is the reference for MedianFilter: each output is the sorted middle of
// its window, gathered with an explicit reflection of every index.
func MedianFilterNaive(x []float32, rows, cols, width int) {
	pad := width / 2
	if cols <= pad {
		return
	}
	out := make([]float32, len(x))
	for r := range rows {
		for j := range cols {
			var win []float32
			for k := j - pad; k <= j+pad; k++ {
				i := k
				if i < 0 {
					i = -i
				} else if i >= cols {
					i = 2*(cols-1) - i
				}
				win = append(win, x[r*cols+i])
			}
			slices.Sort(win)
			out[r*cols+j] = win[pad]
		}
	}
	copy(x, out)
}

func TestMedianFilter(t *testing.T) {
	// By hand: width 3 on [5 1 4 2 3] reflected to [1 5 1 4 2 3 2].
	x := []float32{5, 1, 4, 2, 3}
	MedianFilter(x, 1, 5, 3)
	if want := []float32{1, 4, 2, 3, 2}; !slices.Equal(x, want) {
		t.Fatalf("median 3 = %v, want %v", x, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct{ rows, cols, width int }{{1, 1, 7}, {2, 3, 7}, {3, 4, 7}, {2, 7, 7}, {4, 50, 7}, {16, 300, 7}, {3, 9, 5}, {2, 12, 1}} {
		x := make([]float32, c.rows*c.cols)
		for i := range x {
			x[i] = float32(rng.IntN(9)) // repeats exercise ties
		}
		want := slices.Clone(x)
		MedianFilterNaive(want, c.rows, c.cols, c.width)
		MedianFilter(x, c.rows, c.cols, c.width)
		if !slices.Equal(x, want) {
			t.Errorf("%+v: %v, naive %v", c, x, want)
		}
	}
}

// DTWNaive is the reference for DTW's optimality: the least total cost over every monotonic
// path from (0, 0) to (n-1, m-1), by exhaustive recursion.
func DTWNaive(x []float64, n, m int) float64 {
	var best func(i, j int) float64
	best = func(i, j int) float64 {
		if i == n-1 && j == m-1 {
			return x[i*m+j]
		}
		b := math.Inf(1)
		if i+1 < n {
			b = min(b, best(i+1, j))
		}
		if j+1 < m {
			b = min(b, best(i, j+1))
		}
		if i+1 < n && j+1 < m {
			b = min(b, best(i+1, j+1))
		}
		return x[i*m+j] + b
	}
	return best(0, 0)
}

func TestDTW(t *testing.T) {
	// By hand: the cheap cells are the diagonal then the last column.
	rows, cols := DTW([]float64{
		0, 9, 9,
		9, 0, 9,
		9, 9, 0,
		9, 9, 0,
	}, 4, 3)
	if !slices.Equal(rows, []int{0, 1, 2, 3}) || !slices.Equal(cols, []int{0, 1, 2, 2}) {
		t.Fatalf("path rows %v cols %v", rows, cols)
	}
	// OpenAI's tie rule: when the diagonal and the vertical step tie for the least cost,
	// neither is strictly least and the horizontal step is taken even though it costs more
	// (cost[3][4] here picks −1 over the tied −3s). The path is the one dtw_cpu returns.
	rows, cols = DTW([]float64{
		1, -3, 3, 2,
		-3, -2, 1, 0,
		0, 2, 3, 3,
	}, 3, 4)
	if !slices.Equal(rows, []int{0, 1, 1, 2, 2}) || !slices.Equal(cols, []int{0, 0, 1, 2, 3}) {
		t.Fatalf("tie path rows %v cols %v", rows, cols)
	}
	// Without ties the path is optimal.
	rng := rand.New(rand.NewPCG(3, 4))
	for range 300 {
		n, m := 1+rng.IntN(5), 1+rng.IntN(6)
		x := make([]float64, n*m)
		for i := range x {
			x[i] = rng.Float64()*2 - 1
		}
		rows, cols := DTW(x, n, m)
		var cost float64
		for k := range rows {
			if k > 0 {
				di, dj := rows[k]-rows[k-1], cols[k]-cols[k-1]
				if di < 0 || dj < 0 || di > 1 || dj > 1 || di+dj == 0 {
					t.Fatalf("%d×%d %v: step %d→%d not monotonic: rows %v cols %v", n, m, x, k-1, k, rows, cols)
				}
			}
			cost += x[rows[k]*m+cols[k]]
		}
		if rows[0] != 0 || cols[0] != 0 || rows[len(rows)-1] != n-1 || cols[len(cols)-1] != m-1 {
			t.Fatalf("%d×%d: path from (%d,%d) to (%d,%d)", n, m, rows[0], cols[0], rows[len(rows)-1], cols[len(cols)-1])
		}
		if want := DTWNaive(x, n, m); cost > want+1e-5 {
			t.Fatalf("%d×%d %v: path cost %g, optimum %g (rows %v cols %v)", n, m, x, cost, want, rows, cols)
		}
	}
}

// fakeDecode decodes tokens of a made-up vocabulary: id → bytes, with EOT written by name and
// ill-formed UTF-8 replaced.
func fakeDecode(vocab map[int]string, eot int) func([]int) string {
	return func(ids []int) string {
		var b strings.Builder
		for _, id := range ids {
			if id == eot {
				b.WriteString("<|endoftext|>")
			} else {
				b.WriteString(vocab[id])
			}
		}
		return strings.ToValidUTF8(b.String(), "\uFFFD")
	}
}

func TestSplitWordsAndMergePunctuations(t *testing.T) {
	const eot = 100
	vocab := map[int]string{
		1: " Hello", 2: ",", 3: " wor", 4: "ld", 5: "!", 6: " (", 7: " see", 8: ")", 9: " caf",
		10: "\xc3", 11: "\xa9", 12: " \"", 13: "Yes", 14: "\"", 15: "?!", 16: " -", 17: " ok", 18: ".",
		20: "你", 21: "\xe5", 22: "\xa5", 23: "\xbd", 24: "。",
	}
	for _, c := range []struct {
		name     string
		lang     string
		tokens   []int
		split    []string // SplitWords, EOT's word included
		merged   []string // after MergePunctuations, empty words included
		mergedTk [][]int
	}{
		{
			name: "subwords join, punctuation splits, then appends", lang: "en",
			tokens: []int{1, 2, 3, 4, 5},
			split:  []string{" Hello", ",", " world", "!", "<|endoftext|>"},
			merged: []string{" Hello,", "", " world!", ""}, mergedTk: [][]int{{1, 2}, nil, {3, 4, 5}, nil},
		},
		{
			name: "an opening bracket prepends, the closing one appends", lang: "en",
			tokens: []int{6, 7, 8},
			split:  []string{" (", " see", ")", "<|endoftext|>"},
			merged: []string{"", " ( see)", ""}, mergedTk: [][]int{nil, {6, 7, 8}, nil},
		},
		{
			name: "a character cut between tokens stays whole", lang: "fr",
			tokens: []int{9, 10, 11},
			split:  []string{" café", "<|endoftext|>"},
			merged: []string{" café"}, mergedTk: [][]int{{9, 10, 11}},
		},
		{
			name: "an opening quote joins its word; closing quote and full stop append", lang: "en",
			tokens: []int{12, 13, 14, 18},
			split:  []string{" \"Yes", "\"", ".", "<|endoftext|>"},
			merged: []string{" \"Yes\".", "", ""}, mergedTk: [][]int{{12, 13, 14, 18}, nil, nil},
		},
		{
			// Python's `in string.punctuation` is a substring test: "?!" is not one of its
			// runs, so it is no punctuation and joins the word; nor is it in the append set.
			name: "?! is not punctuation to OpenAI", lang: "en",
			tokens: []int{3, 4, 15},
			split:  []string{" world?!", "<|endoftext|>"},
			merged: []string{" world?!"}, mergedTk: [][]int{{3, 4, 15}},
		},
		{
			name: "a dash prepends to the next word", lang: "en",
			tokens: []int{16, 17},
			split:  []string{" -", " ok", "<|endoftext|>"},
			merged: []string{"", " - ok"}, mergedTk: [][]int{nil, {16, 17}},
		},
		{
			name: "Chinese splits at each character", lang: "zh",
			tokens: []int{20, 21, 22, 23, 24},
			split:  []string{"你", "好", "。", "<|endoftext|>"},
			merged: []string{"你。", "好", ""}, mergedTk: nil, // checked below by words only
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok := Tokenizer{EOT: eot, Language: c.lang, Decode: fakeDecode(vocab, eot)}
			words, wt := SplitWords(append(slices.Clone(c.tokens), eot), tok)
			if !slices.Equal(words, c.split) {
				t.Fatalf("SplitWords = %q, want %q", words, c.split)
			}
			var flat []int
			for _, w := range wt {
				flat = append(flat, w...)
			}
			if !slices.Equal(flat, append(slices.Clone(c.tokens), eot)) {
				t.Fatalf("word tokens %v do not partition %v", wt, c.tokens)
			}
			var a []WordTiming
			for i, w := range words[:len(words)-1] {
				a = append(a, WordTiming{Word: w, Tokens: wt[i]})
			}
			MergePunctuations(a, DefaultPrependPunctuations, DefaultAppendPunctuations)
			var got []string
			var gotTk [][]int
			for _, w := range a {
				got = append(got, w.Word)
				gotTk = append(gotTk, w.Tokens)
			}
			if c.lang == "zh" {
				// "。" appends to "好", the word before it; "你" is left alone.
				c.merged = []string{"你", "好。", ""}
			}
			if !slices.Equal(got, c.merged) {
				t.Fatalf("merged = %q, want %q", got, c.merged)
			}
			if c.mergedTk != nil && !slices.EqualFunc(gotTk, c.mergedTk, slices.Equal) {
				t.Fatalf("merged tokens = %v, want %v", gotTk, c.mergedTk)
			}
		})
	}
}
