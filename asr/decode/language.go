package decode

import (
	"errors"
	"fmt"
	"math"
)

// DetectLanguage returns the most probable spoken language of the window r holds and the
// probability of every language: the decoder's logits after SOT alone, restricted to the
// language tokens and normalised over them (ref: openai/whisper decoding.py#L18-L77). It
// uses hypothesis 0 and leaves it empty. Only multilingual models can do this; on an
// English-only model the language tokens exist but were never trained.
func DetectLanguage(r Runner, sp Specials) (string, map[string]float32, error) {
	if len(sp.Languages) == 0 {
		return "", nil, errors.New("decode: vocabulary has no language tokens")
	}
	if r.Seqs() < 1 {
		return "", nil, errors.New("decode: runner has no hypotheses")
	}
	r.Rewind(0, 0)
	logits := r.Logits(0, []int{sp.SOT})
	defer r.Rewind(0, 0)
	if last := sp.SOT + len(sp.Languages); last >= len(logits) {
		return "", nil, fmt.Errorf("decode: language token %d outside vocabulary of %d", last, len(logits))
	}
	lang := logits[sp.SOT+1 : sp.SOT+1+len(sp.Languages)]
	if i := badLogit(lang); i >= 0 {
		return "", nil, fmt.Errorf("decode: language %q has logit %g", sp.Languages[i], lang[i])
	}
	best, m := 0, math.Inf(-1)
	for i, v := range lang {
		if float64(v) > m {
			best, m = i, float64(v)
		}
	}
	if math.IsInf(m, -1) {
		return "", nil, errors.New("decode: every language token has probability 0")
	}
	var sum float64
	for _, v := range lang {
		sum += math.Exp(float64(v) - m)
	}
	probs := make(map[string]float32, len(lang))
	for i, v := range lang {
		probs[sp.Languages[i]] = float32(math.Exp(float64(v)-m) / sum)
	}
	return sp.Languages[best], probs, nil
}
