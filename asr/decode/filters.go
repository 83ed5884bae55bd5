package decode

import (
	"math"
	"sync"

	"github.com/chorus-asr/chorus/tensor"
)

var negInf = float32(math.Inf(-1))

// logitFilter masks logits in place before a token is chosen. sampled holds the tokens this
// hypothesis has sampled so far (everything after the initial tokens), so len(sampled) == 0 is
// OpenAI's tokens.shape[1] == sample_begin (ref: decoding.py#L407-L420).
type logitFilter interface {
	apply(logits []float32, sampled []int)
}

// mask sets logits[lo:hi] to -inf, clamping the range to the vocabulary like a Python slice.
func mask(logits []float32, lo, hi int) {
	lo, hi = max(lo, 0), min(hi, len(logits))
	for i := lo; i < hi; i++ {
		logits[i] = negInf
	}
}

// suppressBlank keeps the first sampled token from being blank or EOT: a window that starts
// with a space or ends at once is almost always a failure (ref: decoding.py#L423-L430).
type suppressBlank struct {
	tokens []int // Encode(" ") and EOT
}

func (f suppressBlank) apply(logits []float32, sampled []int) {
	if len(sampled) == 0 {
		for _, t := range f.tokens {
			logits[t] = negInf
		}
	}
}

// suppressTokens masks a fixed set at every step (ref: decoding.py#L433-L438).
type suppressTokens struct {
	tokens []int
}

func (f suppressTokens) apply(logits []float32, _ []int) {
	for _, t := range f.tokens {
		logits[t] = negInf
	}
}

// timestampRules makes the sampled stream a well-formed sequence of timestamped segments
// (ref: decoding.py#L441-L505):
//
//   - <|notimestamps|> is never sampled;
//   - timestamps come in pairs (segment end, next segment start), except that a single one
//     may precede EOT: after two timestamps in a row text must follow, after text + one
//     timestamp another timestamp or EOT must follow;
//   - timestamps never decrease, and a segment start is strictly after the previous one;
//   - the first token is a timestamp, at most maxInitial steps after <|0.00|>;
//   - when the timestamps together are more probable than the single most probable other
//     token, a timestamp is forced.
type timestampRules struct {
	begin        int // <|0.00|>
	eot          int
	noTimestamps int
	maxInitial   int // in timestamp steps; -1 for no bound
}

func (f timestampRules) apply(logits []float32, sampled []int) {
	logits[f.noTimestamps] = negInf // its meaning is carried by Options.WithoutTimestamps

	n := len(sampled)
	lastWasTimestamp := n >= 1 && sampled[n-1] >= f.begin
	penultimateWasTimestamp := n < 2 || sampled[n-2] >= f.begin
	if lastWasTimestamp {
		if penultimateWasTimestamp {
			mask(logits, f.begin, len(logits)) // a pair is complete: text must follow
		} else {
			mask(logits, 0, f.eot) // a segment just ended: no text before the next start
		}
	}

	// Timestamps never decrease. The next one may repeat the last only when the last just
	// closed a segment (the next segment may start where this one ended); otherwise it ends
	// a segment and must be strictly later, so that no segment is empty and the seek always
	// moves forward.
	for i := n - 1; i >= 0; i-- {
		if sampled[i] < f.begin {
			continue
		}
		last := sampled[i]
		if !lastWasTimestamp || penultimateWasTimestamp {
			last++
		}
		mask(logits, f.begin, last)
		break
	}

	if n == 0 {
		mask(logits, 0, f.begin) // the window starts with a timestamp
		if f.maxInitial >= 0 {
			mask(logits, f.begin+f.maxInitial+1, len(logits))
		}
	}

	// log Σ_ts p(ts) > max_text log p(text) ⇔ logsumexp(ts logits) > max(text logits): the
	// shared log-softmax normaliser cancels, so it is not computed.
	if logSumExp(logits[f.begin:]) > float64(maxOf(logits[:f.begin])) {
		mask(logits, 0, f.begin)
	}
}

// logSumExp returns log Σ exp(x), -inf for an empty or all -inf x (+Inf when x holds +Inf).
// It runs tensor.LogSoftmax's SIMD kernel (float32 exponentials, float64 sum) into pooled
// scratch and reads the normaliser back at the largest entry: within ~2e-6 of a float64
// loop, the precision of the float32 log_softmax openai/whisper takes its log-probabilities
// from, at a small fraction of the cost. Decoding calls it two or three times per token over
// the whole vocabulary (the timestamp rule, the sample's log-probability, beam scores).
func logSumExp(x []float32) float64 {
	k := tensor.ArgMax(x)
	if k < 0 || math.IsInf(float64(x[k]), 0) {
		if k < 0 {
			return math.Inf(-1)
		}
		return float64(x[k])
	}
	bp := getScratch(len(x))
	defer putScratch(bp)
	out := *bp
	tensor.LogSoftmax(out, x)
	return float64(x[k]) - float64(out[k])
}

// maxOf returns the largest element, -inf for an empty x.
func maxOf(x []float32) float32 {
	if k := tensor.ArgMax(x); k >= 0 {
		return x[k]
	}
	return negInf
}

// scratchPool holds vocabulary-sized float32 buffers for logSumExp and sampleSoftmax, which
// run once or more per decoded token of every stream.
var scratchPool sync.Pool

func getScratch(n int) *[]float32 {
	if p, ok := scratchPool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	b := make([]float32, n)
	return &b
}

func putScratch(p *[]float32) { scratchPool.Put(p) }
