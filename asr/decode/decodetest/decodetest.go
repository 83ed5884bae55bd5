// Package decodetest provides fakes for testing code built on package decode without a model:
// a scripted Runner whose logits a test computes from the tokens each hypothesis has consumed,
// a word-level Vocab, and a special-token layout shaped like Whisper's.
package decodetest

import (
	"fmt"
	"math"
	"strings"

	"github.com/chorus-asr/chorus/asr/decode"
)

// NumTimestamps is the number of timestamp tokens, <|0.00|> … <|30.00|>.
const NumTimestamps = 1501

// Layout returns the special tokens of a vocabulary whose first nText tokens are text, followed
// by Whisper's specials in OpenAI's order (EOT, SOT, one token per language, translate,
// transcribe, startoflm, startofprev, nospeech, notimestamps) and NumTimestamps timestamps,
// and the size of that vocabulary. It is multilingual when it has more than one language.
func Layout(nText int, langs []string) (decode.Specials, int) {
	sp := decode.Specials{EOT: nText, SOT: nText + 1, Languages: langs, Multilingual: len(langs) > 1}
	next := nText + 2 + len(langs)
	for _, p := range []*int{&sp.Translate, &sp.Transcribe, &sp.SOTLM, &sp.SOTPrev, &sp.NoSpeech, &sp.NoTimestamps, &sp.TimestampBegin} {
		*p = next
		next++
	}
	return sp, next - 1 + NumTimestamps
}

// Vocab is a word-level vocabulary: token i is Words[i]. Encode matches the longest word at
// each position and returns nil for text it cannot cover (so that a symbol outside the
// vocabulary never looks like a single token); Decode concatenates.
type Vocab struct {
	Words []string
}

// Encode implements decode.Vocab.
func (v Vocab) Encode(text string) []int {
	var out []int
	for len(text) > 0 {
		best, n := -1, 0
		for i, w := range v.Words {
			if len(w) > n && strings.HasPrefix(text, w) {
				best, n = i, len(w)
			}
		}
		if best < 0 {
			return nil
		}
		out = append(out, best)
		text = text[n:]
	}
	return out
}

// Decode implements decode.Vocab; it panics on a token that is not a word, which decode must
// never pass.
func (v Vocab) Decode(tokens []int) string {
	var b strings.Builder
	for _, t := range tokens {
		if t < 0 || t >= len(v.Words) {
			panic(fmt.Sprintf("decodetest: Decode got non-text token %d", t))
		}
		b.WriteString(v.Words[t])
	}
	return b.String()
}

// Runner is a scripted decode.Runner. The logits after each position are Script(history),
// where history is every token the hypothesis has consumed up to that position, so a test
// designs the model as a function of the prefix. A Runner misused by the code under test
// (a hypothesis out of range, logits of the wrong length) panics.
type Runner struct {
	V      int
	Script func(history []int) []float32

	hist [][]int
	buf  []float32
	// Forks counts Fork calls that copied (dst != src); Fed counts tokens fed.
	Forks, Fed int
}

// NewRunner returns a runner of seqs hypotheses over a vocabulary of v tokens.
func NewRunner(seqs, v int, script func(history []int) []float32) *Runner {
	return &Runner{V: v, Script: script, hist: make([][]int, seqs)}
}

// Seqs implements decode.Runner.
func (r *Runner) Seqs() int { return len(r.hist) }

// Logits implements decode.Runner.
func (r *Runner) Logits(seq int, tokens []int) []float32 {
	if len(tokens) == 0 {
		panic("decodetest: Logits with no tokens")
	}
	var last []float32
	for _, t := range tokens {
		last = r.feed(seq, t)
	}
	r.buf = append(r.buf[:0], last...)
	return r.buf
}

// AllLogits implements decode.Runner.
func (r *Runner) AllLogits(seq int, tokens []int) []float32 {
	var out []float32
	for _, t := range tokens {
		out = append(out, r.feed(seq, t)...)
	}
	return out
}

func (r *Runner) feed(seq, tok int) []float32 {
	r.hist[seq] = append(r.hist[seq], tok)
	r.Fed++
	l := r.Script(r.hist[seq])
	if len(l) != r.V {
		panic(fmt.Sprintf("decodetest: script returned %d logits, want %d", len(l), r.V))
	}
	return l
}

// Len implements decode.Runner.
func (r *Runner) Len(seq int) int { return len(r.hist[seq]) }

// Rewind implements decode.Runner.
func (r *Runner) Rewind(seq, n int) {
	if n < len(r.hist[seq]) {
		r.hist[seq] = r.hist[seq][:n]
	}
}

// Fork implements decode.Runner.
func (r *Runner) Fork(dst, src int) {
	if dst != src {
		r.hist[dst] = append([]int(nil), r.hist[src]...)
		r.Forks++
	}
}

// History returns a copy of the tokens hypothesis seq has consumed.
func (r *Runner) History(seq int) []int { return append([]int(nil), r.hist[seq]...) }

// Fill returns v logits equal to x.
func Fill(v int, x float32) []float32 {
	l := make([]float32, v)
	for i := range l {
		l[i] = x
	}
	return l
}

// Peaked returns v logits of 0 except tok, whose probability is p (0 < p < 1): the others
// share 1-p equally. With p above 1/v, tok is the argmax and its log-probability is log p.
func Peaked(v, tok int, p float64) []float32 {
	// p = e^x / (e^x + (v-1)) with the others at 0.
	x := math.Log(p * float64(v-1) / (1 - p))
	l := make([]float32, v)
	l[tok] = float32(x)
	return l
}

// BatchRunner is a Runner that also implements decode.BatchRunner, counting its batched
// calls in Batches, so that tests run the searches' batched path.
type BatchRunner struct {
	*Runner
	Batches int
}

// LogitsBatch implements decode.BatchRunner; it panics when a hypothesis appears twice.
func (r *BatchRunner) LogitsBatch(seqs, tokens []int) []float32 {
	if len(seqs) != len(tokens) {
		panic(fmt.Sprintf("decodetest: LogitsBatch of %d hypotheses and %d tokens", len(seqs), len(tokens)))
	}
	seen := map[int]bool{}
	var out []float32
	for i, q := range seqs {
		if seen[q] {
			panic(fmt.Sprintf("decodetest: hypothesis %d twice in one batch", q))
		}
		seen[q] = true
		out = append(out, r.feed(q, tokens[i])...)
	}
	r.Batches++
	return out
}
