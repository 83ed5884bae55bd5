package decode

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/chorus-asr/chorus/tensor"
)

// Result is one decoded hypothesis of a window (ref: openai/whisper decoding.py#L117-L127).
type Result struct {
	// Language is the language decoded in; LanguageProbs is set when it was detected.
	Language      string
	LanguageProbs map[string]float32
	// Tokens are the sampled tokens, timestamps included, without the initial tokens (prompt,
	// SOT sequence, prefix) and without EOT.
	Tokens []int
	// Text is the decoded text tokens, surrounding white space trimmed.
	Text string
	// SumLogprob is the sum of the sampled tokens' log-probabilities, EOT's included, under
	// the filtered distributions; AvgLogprob is SumLogprob / (len(Tokens)+1).
	SumLogprob, AvgLogprob float64
	// Score is what the ranker compared: SumLogprob over the length penalty, or, when the
	// search rescored tokens (joint CTC/attention decoding, Options.CTCWeight; shallow fusion,
	// Options.LMWeight), the rescored sum over it. SumLogprob stays the decoder's own.
	Score float64
	// NoSpeechProb is p(<|nospeech|>) right after SOT; NaN without a nospeech token.
	NoSpeechProb float64
	// Temperature is Options.Temperature.
	Temperature float64
	// CompressionRatio is CompressionRatio(Text).
	CompressionRatio float64
}

// Decode decodes the audio window r holds, following OpenAI's DecodingTask
// (ref: openai/whisper decoding.py#L508-L789): it detects the language if needed, feeds the
// initial tokens, reads the no-speech probability at SOT, then samples with the logit filters
// (blank suppression, token suppression, timestamp rules) either greedily or by beam search
// until EOT, Options.SampleLen tokens or the text context is reached.
//
// It returns every finished hypothesis, best first by the maximum-likelihood ranker (sum
// log-prob over the length penalty): one for plain greedy decoding, BestOf for best-of-N
// sampling, and at least BeamSize for beam search. r must hold the encoded window and at least
// that many hypotheses; Decode rewinds and reuses them.
func Decode(r Runner, m Model, o Options) ([]Result, error) {
	return DecodeContext(context.Background(), r, m, o)
}

// DecodeContext is Decode, giving up with ctx's error between decoding steps once ctx is done.
func DecodeContext(ctx context.Context, r Runner, m Model, o Options) ([]Result, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	if err := o.verify(); err != nil {
		return nil, err
	}
	if n := o.groupSize(); r.Seqs() < n {
		return nil, fmt.Errorf("decode: runner holds %d hypotheses, %d needed", r.Seqs(), n)
	}
	lang, langToken, langProbs, err := resolveLanguage(r, m, o)
	if err != nil {
		return nil, err
	}
	t, err := newTask(ctx, m, o, langToken)
	if err != nil {
		return nil, err
	}
	noSpeech, first, err := t.prime(r)
	if err != nil {
		return nil, err
	}
	if t.ctc, err = newCTCScorer(r, m.Specials.EOT, m.Specials.TimestampBegin, o.CTCWeight); err != nil {
		return nil, err
	}
	if m.LM != nil && o.LMWeight > 0 && o.BeamSize > 0 {
		t.lm = m.LM
	}
	var cands []candidate
	if o.BeamSize > 0 {
		cands, err = t.beamSearch(r, first)
	} else {
		cands, err = t.sample(r, first)
	}
	if err != nil {
		return nil, err
	}
	return t.results(cands, lang, langProbs, noSpeech), nil
}

// resolveLanguage picks the language token of the SOT sequence: the requested language, or the
// detected one on a multilingual model (ref: decoding.py#L666-L678). English-only models
// have no language token (-1).
func resolveLanguage(r Runner, m Model, o Options) (lang string, token int, probs map[string]float32, err error) {
	lang = strings.ToLower(o.Language)
	if !m.Specials.Multilingual {
		if lang != "" && lang != "en" {
			return "", 0, nil, fmt.Errorf("decode: English-only model cannot decode language %q", o.Language)
		}
		return "en", -1, nil, nil
	}
	if lang == "" {
		if lang, probs, err = DetectLanguage(r, m.Specials); err != nil {
			return "", 0, nil, err
		}
	}
	token, err = m.Specials.LanguageToken(lang)
	if err != nil {
		return "", 0, nil, fmt.Errorf("decode: %w", err)
	}
	return lang, token, probs, nil
}

// task is one Decode call's fixed state (OpenAI's DecodingTask).
type task struct {
	ctx       context.Context // checked once per step
	m         Model
	o         Options
	initial   []int // prompt, SOT sequence and prefix
	sotIndex  int   // position of SOT in initial
	sampleLen int
	filters   []logitFilter
	filterIDs []int // token ids the filters index directly, checked against the vocabulary
	prefix    []int // the forced prefix kept in initial
	rng       *rand.Rand
	ctc       *ctcScorer    // joint CTC/attention decoding; nil when off
	lm        LanguageModel // shallow fusion with Model.LM; nil when off
	// Scratch of proposals and fuseLM: indices of proposals awaiting their LM term, tokens
	// and log-probs of one LM call, complete scores.
	lmPending, lmToks []int
	lmLogp, lmBest    []float64
}

// rescores reports whether candidates are rescored beyond the decoder's log-probabilities.
func (t *task) rescores() bool { return t.ctc != nil || t.lm != nil }

func newTask(ctx context.Context, m Model, o Options, langToken int) (*task, error) {
	t := &task{ctx: ctx, m: m, o: o, sampleLen: o.SampleLen, rng: o.Rand}
	if t.sampleLen == 0 {
		t.sampleLen = m.TextCtx / 2 // ref: decoding.py#L529
	}
	if t.rng == nil {
		t.rng = rand.New(rand.NewPCG(0, 0))
	}
	sot := m.sotSequence(langToken, o)
	t.initial, t.sotIndex = m.initialTokens(sot, o, t.sampleLen)
	t.prefix = t.initial[t.sotIndex+len(sot):]
	if len(t.initial) > m.TextCtx {
		return nil, fmt.Errorf("decode: %d initial tokens exceed the text context of %d", len(t.initial), m.TextCtx)
	}

	// Filter order matters: the timestamp rule compares probabilities after the others
	// have masked (ref: decoding.py#L553-L570).
	sp := m.Specials
	if o.SuppressBlank {
		blank := append(m.Vocab.Encode(" "), sp.EOT)
		t.filters = append(t.filters, suppressBlank{tokens: blank})
		t.filterIDs = append(t.filterIDs, blank...)
	}
	if ids := m.suppressTokens(o); ids != nil {
		t.filters = append(t.filters, suppressTokens{tokens: ids})
		t.filterIDs = append(t.filterIDs, ids...)
	}
	if !o.WithoutTimestamps {
		t.filters = append(t.filters, timestampRules{
			begin:        sp.TimestampBegin,
			eot:          sp.EOT,
			noTimestamps: sp.NoTimestamps,
			maxInitial:   m.maxInitialTimestampIndex(o),
		})
		t.filterIDs = append(t.filterIDs, sp.NoTimestamps)
	}
	return t, nil
}

// prime feeds the initial tokens to hypothesis 0 and returns p(<|nospeech|>) from the logits
// at SOT (ref: decoding.py#L689-L693) and a copy of the logits at the last initial token. It
// feeds through SOT and the rest in two calls so that no more than one logit row is ever
// materialised, whatever the prompt length.
func (t *task) prime(r Runner) (noSpeech float64, last []float32, err error) {
	r.Rewind(0, 0)
	atSOT := r.Logits(0, t.initial[:t.sotIndex+1])
	v := len(atSOT)
	if err := t.checkVocab(v); err != nil {
		return 0, nil, err
	}
	if i := badLogit(atSOT); i >= 0 {
		return 0, nil, fmt.Errorf("decode: runner gave logit %g for token %d at SOT", atSOT[i], i)
	}
	noSpeech = math.NaN()
	if ns := t.m.Specials.NoSpeech; ns >= 0 {
		noSpeech = math.Exp(float64(atSOT[ns]) - logSumExp(atSOT))
	}
	if rest := t.initial[t.sotIndex+1:]; len(rest) > 0 {
		last = r.Logits(0, rest)
		if len(last) != v {
			return 0, nil, fmt.Errorf("decode: runner gave %d logits, then %d", v, len(last))
		}
	} else {
		last = atSOT
	}
	return noSpeech, slices.Clone(last), nil
}

// checkVocab validates the token ids the filters and the search index against a vocabulary of
// v entries, once the runner has revealed v.
func (t *task) checkVocab(v int) error {
	if err := t.m.checkVocabSize(v, !t.o.WithoutTimestamps); err != nil {
		return err
	}
	for _, id := range t.filterIDs {
		if id < 0 || id >= v {
			return fmt.Errorf("decode: suppressed token %d outside vocabulary of %d", id, v)
		}
	}
	if t.o.BeamSize > 0 && v <= t.o.BeamSize {
		return fmt.Errorf("decode: beam size %d needs a vocabulary larger than %d", t.o.BeamSize, v)
	}
	return nil
}

// step feeds toks[i] to hypothesis seqs[i] and reads its logits into dst[i], in one call when
// the runner is a BatchRunner.
func (t *task) step(r Runner, seqs, toks []int, dst [][]float32) error {
	br, ok := r.(BatchRunner)
	if !ok || len(seqs) < 2 {
		for i, q := range seqs {
			if err := t.next(r, q, toks[i], dst[i]); err != nil {
				return err
			}
		}
		return nil
	}
	got := br.LogitsBatch(seqs, toks)
	v := len(dst[0])
	if len(got) != len(seqs)*v {
		return fmt.Errorf("decode: runner gave %d logits for %d hypotheses of %d", len(got), len(seqs), v)
	}
	for i := range seqs {
		copy(dst[i], got[i*v:(i+1)*v])
	}
	return nil
}

// next reads hypothesis seq's logits after feeding tok into dst.
func (t *task) next(r Runner, seq, tok int, dst []float32) error {
	got := r.Logits(seq, []int{tok})
	if len(got) != len(dst) {
		return fmt.Errorf("decode: runner gave %d logits, then %d", len(dst), len(got))
	}
	copy(dst, got)
	return nil
}

// filter applies the logit filters to one hypothesis's logits and checks something is left.
func (t *task) filter(logits []float32, sampled []int) error {
	if i := badLogit(logits); i >= 0 {
		return fmt.Errorf("decode: runner gave logit %g for token %d after %d sampled tokens", logits[i], i, len(sampled))
	}
	for _, f := range t.filters {
		f.apply(logits, sampled)
	}
	if math.IsInf(float64(maxOf(logits)), -1) {
		return fmt.Errorf("decode: every token is suppressed after %d sampled tokens", len(sampled))
	}
	return nil
}

// candidate is a finished hypothesis: sampled tokens without EOT, its sum log-prob and the
// score the search ranked it by (the sum itself, or the joint CTC/attention score).
type candidate struct {
	tokens     []int
	sum, joint float64
}

// bestClosing adds to the proposals dst[start:] the timestamp that best closes the segment by
// the joint score, when the pre-beam missed it: the decoder's most probable closing
// timestamps can all come long before the text's last word is spoken (a small decoder's
// failure), and only the CTC side knows where it ends, so every allowed timestamp is scored
// (each an O(1) look-up of the forward variables). Timestamps within g's frames come first:
// any allowed one there beats every one outside, whose CTC score is log 0, so the rest are
// scanned only when none there is allowed.
func (t *task) bestClosing(dst []scored, start int, l []float32, lse, sum, joint float64, g *ctcState, lam float64) []scored {
	begin := t.m.Specials.TimestampBegin
	best, bestScore, bestAtt := -1, math.Inf(-1), 0.0
	scan := func(from, to int) {
		for tok := max(from, begin); tok < min(to, len(l)); tok++ {
			a := float64(l[tok]) - lse
			if math.IsInf(a, -1) {
				continue
			}
			if sc := joint + (1-lam)*a + lam*t.ctc.endScore(g, tok-begin); sc > bestScore {
				best, bestScore, bestAtt = tok, sc, a
			}
		}
	}
	// endScore(g, f) reads frame min(f, frames)−1: inside g's frames for lo < f ≤ hi, and
	// for every later f too when g reaches the window's end.
	to := begin + g.hi + 1
	if g.hi >= t.ctc.frames {
		to = len(l)
	}
	scan(begin+g.lo+1, to)
	if best < 0 {
		scan(begin, len(l))
	}
	if best < 0 || slices.ContainsFunc(dst[start:], func(p scored) bool { return p.tok == best }) {
		return dst
	}
	return append(dst, scored{tok: best, att: sum + bestAtt, joint: bestScore})
}

// lmContext is the language model's context for a hypothesis that sampled tokens: SOT (the
// model's sentence start), the forced prefix and the sampled text tokens, of which the last
// Order()−1 count.
func (t *task) lmContext(sampled []int) []int {
	eot, keep := t.m.Specials.EOT, t.lm.Order()-1
	ctx := make([]int, 0, keep+1)
	for i := len(sampled) - 1; i >= 0 && len(ctx) < keep; i-- {
		if sampled[i] < eot {
			ctx = append(ctx, sampled[i])
		}
	}
	for i := len(t.prefix) - 1; i >= 0 && len(ctx) < keep; i-- {
		if t.prefix[i] < eot {
			ctx = append(ctx, t.prefix[i])
		}
	}
	if len(ctx) < keep {
		ctx = append(ctx, t.m.Specials.SOT)
	}
	slices.Reverse(ctx)
	return ctx
}

// ctcStart is the CTC state of the window's text before anything is sampled: the empty
// prefix extended by the forced prefix's text tokens.
func (t *task) ctcStart() *ctcState {
	st := t.ctc.initial()
	for _, tok := range t.prefix {
		st = t.ctc.advance(st, tok)
	}
	return st
}

// scored is a proposed next token with its log-prob under the attention decoder (att) and
// the score it is ranked by (joint).
type scored struct {
	tok        int
	att, joint float64
}

// proposals appends hypothesis g's n best next tokens to dst, best first. l are its filtered
// logits, sum and joint its scores so far, g its CTC state and sampled its tokens so far.
// Without rescoring they are the n most probable tokens (joint = att); with it, the
// ctcPreBeam(n) most probable are rescored — (1−λ)·log p_att + λ·CTC score under joint
// decoding, plus β·log p_lm + γ for a text token (β·log p_lm(end) for EOT) under shallow
// fusion — and the best n by that kept.
func (t *task) proposals(dst []scored, l []float32, sum, joint float64, g *ctcState, sampled []int, n int) []scored {
	lse := logSumExp(l)
	if !t.rescores() {
		for _, tok := range topK(l, n) {
			a := sum + float64(l[tok]) - lse
			dst = append(dst, scored{tok: tok, att: a, joint: a})
		}
		return dst
	}
	start := len(dst)
	var lam float64
	if t.ctc != nil {
		lam = t.ctc.lambda
	}
	eot := t.m.Specials.EOT
	// A timestamp after text closes a segment (timestamp mode only: without timestamps the
	// decoder is not asked for any).
	lastText := !t.o.WithoutTimestamps && len(sampled) > 0 && sampled[len(sampled)-1] < eot
	pending := t.lmPending[:0] // indices into dst of text tokens and EOT still without their LM term
	for _, tok := range topK(l, ctcPreBeam(n)) {
		a := float64(l[tok]) - lse
		if math.IsInf(a, -1) {
			continue // masked: topK ran out of allowed tokens
		}
		score := joint + (1-lam)*a
		if t.ctc != nil {
			score += lam * t.ctc.tokenScore(g, tok, lastText)
		}
		if t.lm != nil && tok <= eot {
			if tok < eot {
				score += t.o.LMBonus
			}
			pending = append(pending, len(dst))
		}
		dst = append(dst, scored{tok: tok, att: sum + a, joint: score})
	}
	if len(pending) > 0 {
		t.fuseLM(dst, start, pending, t.lmContext(sampled), n)
	}
	t.lmPending = pending[:0]
	if t.ctc != nil && lastText && t.o.BeamSize > 0 {
		dst = t.bestClosing(dst, start, l, lse, sum, joint, g, lam)
	}
	mine := dst[start:]
	slices.SortStableFunc(mine, func(a, b scored) int { return cmp.Compare(b.joint, a.joint) })
	return dst[:start+min(n, len(mine))]
}

// fuseLM adds β·log p_lm(tok | ctx) to the proposals dst[pending[i]], except to those that
// cannot be among the n best of dst[start:]. The LM is the costly part of rescoring (a few
// hash lookups per token, each likely a cache miss), and its term is at most 0 for β ≥ 0, so
// proposals are scored in order of their score without it, n at a time, until the next one's
// score — a bound on its complete one — is below the n-th best complete score: the rest rank
// below n with the LM's term or without it, so the n best, and their scores, are what
// scoring every one gives.
func (t *task) fuseLM(dst []scored, start int, pending []int, ctx []int, n int) {
	w := t.o.LMWeight
	batch, batched := t.lm.(BatchLanguageModel)
	if w > 0 {
		slices.SortStableFunc(pending, func(i, j int) int { return cmp.Compare(dst[j].joint, dst[i].joint) })
	}
	toks, lp := t.lmToks[:0], t.lmLogp[:0]
	done := 0
	for done < len(pending) {
		if w > 0 && done > 0 {
			// The n-th best complete score: proposals not pending, and pending ones done.
			best := t.lmBest[:0]
			for i := start; i < len(dst); i++ {
				if !slices.Contains(pending[done:], i) {
					best = append(best, dst[i].joint)
				}
			}
			t.lmBest = best
			if len(best) >= n {
				slices.SortFunc(best, func(a, b float64) int { return cmp.Compare(b, a) })
				if dst[pending[done]].joint < best[n-1] {
					break
				}
			}
		}
		chunk := pending[done:]
		if w > 0 {
			chunk = chunk[:min(n, len(chunk))]
		}
		toks = toks[:0]
		for _, i := range chunk {
			toks = append(toks, dst[i].tok)
		}
		lp = slices.Grow(lp[:0], len(toks))[:len(toks)]
		if batched {
			batch.LogProbs(ctx, toks, lp)
		} else {
			for k, tok := range toks {
				lp[k] = t.lm.LogProb(ctx, tok)
			}
		}
		for k, i := range chunk {
			dst[i].joint += w * lp[k]
		}
		done += len(chunk)
	}
	t.lmToks, t.lmLogp = toks, lp
}

// sample is OpenAI's GreedyDecoder over a group of independent hypotheses: argmax at
// temperature 0, otherwise a draw from softmax(logits/T); each adds the log-prob of its token
// under the filtered logits and stops at EOT (ref: decoding.py#L272-L298, #L680-L710).
func (t *task) sample(r Runner, first []float32) ([]candidate, error) {
	n := t.o.groupSize()
	eot := t.m.Specials.EOT
	logits := make([][]float32, n)
	seqs := make([][]int, n)
	sums := make([]float64, n)
	joints := make([]float64, n)
	states := make([]*ctcState, n)
	done := make([]bool, n)
	for j := range n {
		if j > 0 {
			r.Fork(j, 0) // every sample starts from the primed hypothesis 0
		}
		logits[j] = slices.Clone(first)
		if t.ctc != nil {
			states[j] = t.ctcStart()
		}

	}
	var (
		props      []scored
		live, toks []int
		dst        [][]float32
	)
	for step := range t.sampleLen {
		if err := t.ctx.Err(); err != nil {
			return nil, err
		}
		for j := range n {
			if done[j] {
				continue
			}
			l := logits[j]
			if err := t.filter(l, seqs[j]); err != nil {
				return nil, err
			}
			var tok int
			switch {
			case t.rescores():
				// The best joint score at temperature 0; above it a draw from the joint
				// scores of the pre-beam candidates, softened by the temperature.
				want := 1
				if t.o.Temperature > 0 {
					want = ctcPreBeam(1)
				}
				props = t.proposals(props[:0], l, sums[j], joints[j], states[j], seqs[j], want)
				p := props[0]
				if t.o.Temperature > 0 {
					p = props[t.sampleScored(props)]
				}
				tok, sums[j], joints[j] = p.tok, p.att, p.joint
				if t.ctc != nil {
					states[j] = t.ctc.advance(states[j], tok)
				}
			case t.o.Temperature == 0:
				tok = argmax(l)
			default:
				tok = sampleSoftmax(l, t.o.Temperature, t.rng)
			}
			if !t.rescores() {
				sums[j] += float64(l[tok]) - logSumExp(l)
				joints[j] = sums[j]
			}
			seqs[j] = append(seqs[j], tok)
			done[j] = tok == eot
		}
		// Stop when all ended, or when the next position would not fit the text context.
		if !slices.Contains(done, false) || len(t.initial)+step+1 > t.m.TextCtx {
			break
		}
		live, toks, dst = live[:0], toks[:0], dst[:0]
		for j := range n {
			if !done[j] {
				live, toks, dst = append(live, j), append(toks, seqs[j][len(seqs[j])-1]), append(dst, logits[j])
			}
		}
		if err := t.step(r, live, toks, dst); err != nil {
			return nil, err
		}
	}
	cands := make([]candidate, n)
	for j := range n {
		cands[j] = candidate{tokens: trimEOT(seqs[j], eot), sum: sums[j], joint: joints[j]}
	}
	return cands, nil
}

// sampleScored draws one of props (best first) with probability ∝ exp(joint/T).
func (t *task) sampleScored(props []scored) int {
	best := props[0].joint
	var sum float64
	w := make([]float64, len(props))
	for i, p := range props {
		w[i] = math.Exp((p.joint - best) / t.o.Temperature)
		sum += w[i]
	}
	u := t.rng.Float64() * sum
	for i, x := range w {
		if u -= x; u < 0 {
			return i
		}
	}
	return 0 // rounding left u just above 0
}

// beam is one live beam-search hypothesis, the runner slot holding its cache, and under joint
// decoding its CTC state and joint score.
type beam struct {
	tokens     []int
	sum, joint float64
	slot       int
	ctc        *ctcState
}

// beamSearch is OpenAI's BeamSearchDecoder (ref: decoding.py#L301-L404). Each step every beam
// proposes its BeamSize+1 most probable next tokens; the candidates are ranked by cumulative
// log-prob, those ending in EOT become finished (in rank order, until
// round(BeamSize·Patience) are collected) and the best BeamSize others are the next beams. At
// the end, if fewer than BeamSize finished, the best live beams are added as if ended.
//
// All hypotheses start identical, so the first step expands hypothesis 0 alone: OpenAI
// expands BeamSize copies whose candidates coincide and are merged by its dictionary.
func (t *task) beamSearch(r Runner, first []float32) ([]candidate, error) {
	size, maxCand := t.o.BeamSize, t.o.maxCandidates()
	eot := t.m.Specials.EOT
	beams := []beam{{slot: 0}}
	if t.ctc != nil {
		beams[0].ctc = t.ctcStart()
	}
	logits := [][]float32{first}
	var finished []candidate

	type proposal struct {
		src int
		scored
	}
	var (
		props []proposal
		mine  []scored
	)
	for step := range t.sampleLen {
		if err := t.ctx.Err(); err != nil {
			return nil, err
		}
		props = props[:0]
		for b := range beams {
			l := logits[b]
			if err := t.filter(l, beams[b].tokens); err != nil {
				return nil, err
			}
			mine = t.proposals(mine[:0], l, beams[b].sum, beams[b].joint, beams[b].ctc, beams[b].tokens, size+1)
			for _, s := range mine {
				props = append(props, proposal{src: b, scored: s})
			}
		}
		// Stable, like Python's sorted(…, reverse=True): ties keep proposal order.
		slices.SortStableFunc(props, func(a, b proposal) int { return cmp.Compare(b.joint, a.joint) })

		var next []proposal
		for _, p := range props {
			if p.tok == eot {
				if len(finished) < maxCand {
					finished = append(finished, candidate{tokens: slices.Clone(beams[p.src].tokens), sum: p.att, joint: p.joint})
				}
				continue
			}
			if next = append(next, p); len(next) == size {
				break
			}
		}

		nextBeams := make([]beam, len(next))
		srcs := make([]int, len(next))
		for k, p := range next {
			nextBeams[k] = beam{tokens: append(slices.Clone(beams[p.src].tokens), p.tok), sum: p.att, joint: p.joint}
			if t.ctc != nil {
				nextBeams[k].ctc = t.ctc.advance(beams[p.src].ctc, p.tok)
			}
			srcs[k] = p.src
		}
		if err := assignSlots(r, beams, srcs, nextBeams); err != nil {
			return nil, err
		}
		beams = nextBeams

		if len(finished) >= maxCand || len(t.initial)+step+1 > t.m.TextCtx {
			break
		}
		for len(logits) < len(beams) {
			logits = append(logits, make([]float32, len(first)))
		}
		slots, toks := make([]int, len(beams)), make([]int, len(beams))
		for k, b := range beams {
			slots[k], toks[k] = b.slot, b.tokens[len(b.tokens)-1]
		}
		if err := t.step(r, slots, toks, logits[:len(beams)]); err != nil {
			return nil, err
		}
	}

	// Too few finished: add the best live beams as if they ended here. The beams were
	// selected in rank order, so they are already sorted by sum as OpenAI's argsort sorts them.
	for _, b := range beams {
		if len(finished) >= size {
			break
		}
		finished = append(finished, candidate{tokens: b.tokens, sum: b.sum, joint: b.joint})
	}
	return finished, nil
}

// assignSlots gives each next beam k (extending old beam srcs[k]) a runner slot holding its
// source's cache: the first beam from each source takes over the source's slot as it is, the
// others get a copy in a slot no surviving source occupies. Copies only read surviving slots
// and only write free ones, so the order of Forks cannot corrupt a cache (OpenAI's
// rearrange_kv_cache, ref: decoding.py#L172-L176).
func assignSlots(r Runner, old []beam, srcs []int, next []beam) error {
	taken := make([]bool, r.Seqs())
	claimed := make([]bool, len(old))
	for k, s := range srcs {
		next[k].slot = -1
		if !claimed[s] {
			claimed[s] = true
			next[k].slot = old[s].slot
			taken[old[s].slot] = true
		}
	}
	free := 0
	for k, s := range srcs {
		if next[k].slot >= 0 {
			continue
		}
		for free < len(taken) && taken[free] {
			free++
		}
		if free == len(taken) {
			return errors.New("decode: runner ran out of hypothesis slots") // unreachable: Seqs() >= BeamSize
		}
		taken[free] = true
		r.Fork(free, old[s].slot)
		next[k].slot = free
	}
	return nil
}

// results ranks the candidates with OpenAI's MaximumLikelihoodRanker
// (ref: decoding.py#L190-L213) and builds the Results, best first.
func (t *task) results(cands []candidate, lang string, langProbs map[string]float32, noSpeech float64) []Result {
	eot := t.m.Specials.EOT
	out := make([]Result, len(cands))
	for i, c := range cands {
		text := strings.TrimSpace(t.m.Vocab.Decode(TextTokens(c.tokens, eot)))
		out[i] = Result{
			Language:         lang,
			LanguageProbs:    langProbs,
			Tokens:           c.tokens,
			Text:             text,
			SumLogprob:       c.sum,
			AvgLogprob:       c.sum / float64(len(c.tokens)+1),
			Score:            c.joint / lengthPenalty(len(c.tokens), t.o.LengthPenalty),
			NoSpeechProb:     noSpeech,
			Temperature:      t.o.Temperature,
			CompressionRatio: CompressionRatio(text),
		}
	}
	// Stable, so that among equal scores the first wins as with np.argmax.
	slices.SortStableFunc(out, func(a, b Result) int { return cmp.Compare(b.Score, a.Score) })
	return out
}

// lengthPenalty is the ranker's divisor: the length itself, or Google NMT's
// ((5+length)/6)^alpha. OpenAI divides by a zero length too (and fails); an empty hypothesis
// is ranked by its sum here.
func lengthPenalty(length int, alpha *float64) float64 {
	if alpha != nil {
		return math.Pow((5+float64(length))/6, *alpha)
	}
	return float64(max(length, 1))
}

// TextTokens returns the tokens below eot, the ones that decode to text: OpenAI's decode drops
// timestamps (ref: tokenizer.py#L164-L166); the other specials are suppressed while sampling,
// and are dropped here too rather than rendered as "<|…|>".
func TextTokens(tokens []int, eot int) []int {
	out := make([]int, 0, len(tokens))
	for _, t := range tokens {
		if t < eot {
			out = append(out, t)
		}
	}
	return out
}

// trimEOT drops the first EOT and what follows.
func trimEOT(tokens []int, eot int) []int {
	if i := slices.Index(tokens, eot); i >= 0 {
		return tokens[:i]
	}
	return tokens
}

// badLogit returns the index of the first NaN or +Inf logit, or -1. -Inf is a legitimate
// mask; the others would poison every softmax.
func badLogit(l []float32) int {
	for i, v := range l {
		if v != v || math.IsInf(float64(v), 1) {
			return i
		}
	}
	return -1
}

// argmax returns the index of the largest logit, the first among equals (torch.argmax).
func argmax(l []float32) int { return max(0, tensor.ArgMax(l)) }

// topK returns the indices of the k largest logits, largest first, lower index first among
// equals (torch.topk leaves ties unspecified). k is small (BeamSize+1), so a running insertion
// sort beats sorting the vocabulary.
func topK(l []float32, k int) []int {
	k = min(k, len(l))
	top := make([]int, 0, k)
	thr := float32(math.Inf(-1)) // the k-th largest so far, once there are k
	for i, v := range l {
		if len(top) == k && v <= thr {
			continue
		}
		if len(top) < k {
			top = append(top, i)
		} else {
			top[k-1] = i
		}
		for j := len(top) - 1; j > 0 && l[top[j]] > l[top[j-1]]; j-- {
			top[j], top[j-1] = top[j-1], top[j]
		}
		if len(top) == k {
			thr = l[top[k-1]]
		}
	}
	return top
}

// sampleSoftmax draws a token from softmax(logits/temp) (torch Categorical(logits=l/T));
// masked (-inf) tokens have probability 0. The probabilities come from tensor.Softmax's SIMD
// kernel (float32 exponentials, float64 row sum), computed once into pooled scratch.
func sampleSoftmax(l []float32, temp float64, rng *rand.Rand) int {
	bp := getScratch(len(l))
	defer putScratch(bp)
	p := *bp
	inv := float32(1 / temp)
	for i, v := range l {
		p[i] = v * inv
	}
	tensor.Softmax(p, 1, len(p))
	var sum float64
	for _, w := range p {
		sum += float64(w)
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return argmax(l) // no finite weights (every logit masked): what T → 0 would give
	}
	u := rng.Float64() * sum
	last := 0
	for i, w := range p {
		if w == 0 {
			continue
		}
		if u -= float64(w); u < 0 {
			return i
		}
		last = i
	}
	return last // rounding left u just above 0: the last token with weight
}
