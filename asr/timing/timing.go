// Package timing computes word-level timestamps the way OpenAI's whisper/timing.py does
// (word_timestamps=True): one decoder pass over the window's text reads the cross-attention
// of the alignment heads, dynamic time warping pairs each token with the audio frames it
// attends to, and the tokens are grouped into words, each with the time its first token's
// path reaches and the mean probability of its tokens. Heuristics then clamp implausibly
// long words around sentence ends and pauses (AddWordTimestamps).
//
// The package never sees the model: an Aligner (the lead's adapter over whisper.State) runs
// the decoder pass.
package timing

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/chorus-asr/chorus/tensor"
)

// tokensPerSecond is audio positions per second: 1500 per 30 s (ref: audio.py TOKENS_PER_SECOND).
const tokensPerSecond = 50

// DefaultMedianFilter is find_alignment's medfilt_width.
const DefaultMedianFilter = 7

// Aligner runs the decoder once over a whole token sequence against the audio window it has
// encoded.
type Aligner interface {
	// CrossAttention returns, for each alignment head, the cross-attention scores q·kᵀ/√D
	// before the softmax, [len(tokens)][frames] row-major, and the logits [keep][vocab] of
	// the last keep positions. frames is the number of encoded audio positions.
	CrossAttention(tokens []int, keep int) (scores [][]float32, frames int, logits []float32, vocab int, err error)
}

// Tokenizer is what alignment needs of the tokenizer: the SOT sequence the window was decoded
// with (without the prompt), two special ids, the language, and the text of tokens.
type Tokenizer struct {
	SOTSequence       []int
	NoTimestamps, EOT int
	// Language decides how words are split: at spaces, or at every complete character for
	// languages written without them.
	Language string
	// Decode returns the text of text tokens optionally followed by EOT, which it writes as
	// "<|endoftext|>" (tokenizer.py decode_with_timestamps); byte sequences that are not
	// valid UTF-8 become U+FFFD, as Python's errors="replace".
	Decode func(tokens []int) string
}

// WordTiming is one word of an alignment: its text (with its leading space), its tokens,
// start and end in seconds from the window start, and the mean probability of its tokens
// (ref: timing.py#L154-L160).
type WordTiming struct {
	Word        string
	Tokens      []int
	Start, End  float64
	Probability float64
}

// FindAlignment aligns text, the text tokens of one window, with the window's audio, of which
// numFrames mel frames hold content (ref: timing.py#L163-L242):
//
//  1. one decoder pass over [SOT sequence, <|notimestamps|>, text…, <|endoftext|>];
//  2. each token's probability: the softmax over the text vocabulary (ids below EOT) at the
//     position before it;
//  3. per alignment head, the scores over the first numFrames/2 audio positions, softmaxed
//     along them, z-scored along the tokens, and median-filtered (width medfilt) along time;
//  4. the mean over heads, cut to the rows of <|notimestamps|> and the text, and DTW on its
//     negative; the path's first step into each row is when that row's token begins;
//  5. tokens grouped into words (SplitWords); a word runs from the jump time of the row of
//     its first token to that of the next word's.
//
// Row r of the matrix is the position that predicts text token r (row 0 is
// <|notimestamps|>), so a word's start is the time at which the model turns to it.
func FindAlignment(a Aligner, tok Tokenizer, text []int, numFrames, medfilt int) ([]WordTiming, error) {
	if len(text) == 0 {
		return nil, nil
	}
	if tok.Decode == nil {
		return nil, errors.New("timing: tokenizer has no Decode")
	}
	sot := len(tok.SOTSequence)
	tokens := slices.Concat(tok.SOTSequence, []int{tok.NoTimestamps}, text, []int{tok.EOT})
	keep := len(tokens) - sot
	scores, frames, logits, vocab, err := a.CrossAttention(tokens, keep)
	switch {
	case err != nil:
		return nil, fmt.Errorf("timing: %w", err)
	case len(scores) == 0:
		return nil, errors.New("timing: no alignment heads")
	case len(logits) != keep*vocab || tok.EOT > vocab:
		return nil, fmt.Errorf("timing: %d logits for %d positions of a %d-token vocabulary (eot %d)", len(logits), keep, vocab, tok.EOT)
	}
	s := len(tokens)
	for _, sc := range scores {
		if len(sc) != s*frames {
			return nil, fmt.Errorf("timing: %d scores for %d tokens × %d frames", len(sc), s, frames)
		}
	}

	probs := make([]float64, len(text))
	logp := make([]float32, tok.EOT)
	for i, id := range text {
		// softmax over the text vocabulary (ids below EOT) at the position before the token
		tensor.LogSoftmax(logp, logits[i*vocab:i*vocab+tok.EOT])
		probs[i] = math.Exp(float64(logp[id]))
	}

	t := min(numFrames/2, frames)
	if t <= 0 {
		return nil, fmt.Errorf("timing: %d content frames", numFrames)
	}
	matrix := alignmentMatrix(scores, s, frames, t, medfilt)
	// Rows sot … s-2: <|notimestamps|> and the text; the SOT rows and EOT's are dropped.
	n := s - sot - 1
	neg := make([]float64, n*t)
	for i := range neg {
		neg[i] = -float64(matrix[sot*t+i])
	}
	rows, cols := DTW(neg, n, t)

	words, wordTokens := SplitWords(append(slices.Clone(text), tok.EOT), tok)
	if len(wordTokens) <= 1 {
		return nil, nil // EOT alone
	}
	// jumps: the first path step into each row (timing.py#L228-L229).
	var jumpTimes []float64
	for k := range rows {
		if k == 0 || rows[k] != rows[k-1] {
			jumpTimes = append(jumpTimes, float64(cols[k])/tokensPerSecond)
		}
	}
	out := make([]WordTiming, 0, len(words)-1)
	b := 0 // boundary: index of the word's first token in text
	for w := 0; w < len(words)-1; w++ {
		e := b + len(wordTokens[w])
		if e >= len(jumpTimes) {
			return nil, fmt.Errorf("timing: word %d ends at token %d of a %d-row path", w, e, len(jumpTimes))
		}
		var p float64
		for _, x := range probs[b:e] {
			p += x
		}
		out = append(out, WordTiming{Word: words[w], Tokens: wordTokens[w], Start: jumpTimes[b], End: jumpTimes[e], Probability: p / float64(e-b)})
		b = e
	}
	return out, nil
}

// alignmentMatrix is step 3 and the head mean of FindAlignment: scores [H][S][frames] → the
// mean over heads of the normalised, filtered weights [S][t], t ≤ frames
// (ref: timing.py#L207-L214).
func alignmentMatrix(scores [][]float32, s, frames, t, medfilt int) []float32 {
	matrix := make([]float32, s*t)
	w := make([]float32, s*t)
	for _, sc := range scores {
		for i := range s {
			copy(w[i*t:(i+1)*t], sc[i*frames:i*frames+t])
		}
		tensor.Softmax(w, s, t)
		// z-score along the tokens, per frame (std_mean, unbiased=False).
		for j := range t {
			var sum, sq float64
			for i := range s {
				sum += float64(w[i*t+j])
			}
			mean := sum / float64(s)
			for i := range s {
				d := float64(w[i*t+j]) - mean
				sq += d * d
			}
			std := float32(math.Sqrt(sq / float64(s)))
			m32 := float32(mean)
			for i := range s {
				w[i*t+j] = (w[i*t+j] - m32) / std
			}
		}
		MedianFilter(w, s, t, medfilt)
		for i := range matrix {
			matrix[i] += w[i]
		}
	}
	for i := range matrix {
		matrix[i] /= float32(len(scores))
	}
	return matrix
}

// MedianFilter replaces each row of x [rows][cols] by its running median of width (odd),
// the rows padded by reflection (no edge repeat), as timing.py's median_filter does on CPU
// (ref: timing.py#L19-L54). Rows no longer than width/2 are left as they are, as there
// (reflection needs a longer row). See MedianFilterNaive in the tests.
func MedianFilter(x []float32, rows, cols, width int) {
	if width%2 != 1 || width <= 0 {
		panic(fmt.Sprintf("timing: median filter width %d is not odd", width))
	}
	pad := width / 2
	if cols <= pad {
		return
	}
	padded := make([]float32, cols+2*pad)
	win := make([]float32, width)
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		for i := range padded {
			padded[i] = row[reflect(i-pad, cols)]
		}
		if width == 7 {
			for j := range row {
				row[j] = median7(padded[j : j+7])
			}
			continue
		}
		for j := range row {
			// Insertion sort of the window: width is small.
			for k := range width {
				v := padded[j+k]
				m := k
				for ; m > 0 && win[m-1] > v; m-- {
					win[m] = win[m-1]
				}
				win[m] = v
			}
			row[j] = win[pad]
		}
	}
}

// median7 is the middle of 7 values by a 16-comparator sorting network (Knuth, TAOCP 5.3.4),
// about four times quicker than the insertion sort for find_alignment's width.
func median7(w []float32) float32 {
	a0, a1, a2, a3, a4, a5, a6 := w[0], w[1], w[2], w[3], w[4], w[5], w[6]
	a0, a6 = min(a0, a6), max(a0, a6)
	a2, a3 = min(a2, a3), max(a2, a3)
	a4, a5 = min(a4, a5), max(a4, a5)
	a0, a2 = min(a0, a2), max(a0, a2)
	a1, a4 = min(a1, a4), max(a1, a4)
	a3, a6 = min(a3, a6), max(a3, a6)
	a0, a1 = min(a0, a1), max(a0, a1)
	a2, a5 = min(a2, a5), max(a2, a5)
	a3, a4 = min(a3, a4), max(a3, a4)
	a1, a2 = min(a1, a2), max(a1, a2)
	a4, a6 = min(a4, a6), max(a4, a6)
	a2, a3 = min(a2, a3), max(a2, a3)
	a4, a5 = min(a4, a5), max(a4, a5)
	a1, a2 = min(a1, a2), max(a1, a2)
	a3, a4 = min(a3, a4), max(a3, a4)
	a5, a6 = min(a5, a6), max(a5, a6)
	return a3
}

// reflect maps an index outside [0, n) back in by reflection about the ends (torch's
// "reflect" padding): -1 → 1, n → n-2.
func reflect(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}

// DTW is dynamic time warping on the cost matrix x [n][m], as timing.py's dtw_cpu and
// backtrace (ref: timing.py#L57-L105): the cumulative cost is float32, a step is the diagonal
// or the vertical (i-1) one only when strictly cheaper than both others and the horizontal
// (j-1) one otherwise — so when the diagonal and the vertical tie for the least cost the
// horizontal is taken even if it costs more; the path is OpenAI's, optimal only without such
// ties. It runs from (0, 0) to (n-1, m-1) and is returned as its rows and columns; every row
// and every column appears at least once, in order. See DTWNaive in the tests.
func DTW(x []float64, n, m int) (rows, cols []int) {
	if n <= 0 || m <= 0 || len(x) != n*m {
		panic(fmt.Sprintf("timing: dtw on %d values as %d×%d", len(x), n, m))
	}
	w := m + 1
	inf := float32(math.Inf(1))
	cost := make([]float32, (n+1)*w)
	trace := make([]int8, (n+1)*w)
	for i := range cost {
		cost[i] = inf
	}
	cost[0] = 0
	for j := 1; j <= m; j++ {
		for i := 1; i <= n; i++ {
			c0, c1, c2 := cost[(i-1)*w+j-1], cost[(i-1)*w+j], cost[i*w+j-1]
			var c float32
			var t int8
			switch {
			case c0 < c1 && c0 < c2:
				c, t = c0, 0
			case c1 < c0 && c1 < c2:
				c, t = c1, 1
			default:
				c, t = c2, 2
			}
			cost[i*w+j] = float32(x[(i-1)*m+j-1] + float64(c))
			trace[i*w+j] = t
		}
	}
	for j := range w {
		trace[j] = 2
	}
	for i := range n + 1 {
		trace[i*w] = 1
	}
	i, j := n, m
	for i > 0 || j > 0 {
		rows = append(rows, i-1)
		cols = append(cols, j-1)
		switch trace[i*w+j] {
		case 0:
			i, j = i-1, j-1
		case 1:
			i--
		default:
			j--
		}
	}
	slices.Reverse(rows)
	slices.Reverse(cols)
	return rows, cols
}
