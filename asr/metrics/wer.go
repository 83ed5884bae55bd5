package metrics

// Counts is the outcome of aligning one hypothesis against one reference:
// the minimum-edit alignment's substitutions, deletions (reference tokens the
// hypothesis missed) and insertions, and the reference length. Counts add, so
// a corpus score is the sum over utterances, never the mean of per-utterance
// rates (which would weight a one-word prompt like a fifty-word one).
type Counts struct {
	Sub, Del, Ins int
	Ref           int // reference tokens (words or characters)
}

// Errors is the total number of edits.
func (c Counts) Errors() int { return c.Sub + c.Del + c.Ins }

// Rate is Errors/Ref, or 0 for an empty reference with no errors and 1 for
// an empty reference with insertions (so a hallucination on silence still
// counts against a model).
func (c Counts) Rate() float64 {
	if c.Ref == 0 {
		if c.Errors() == 0 {
			return 0
		}
		return 1
	}
	return float64(c.Errors()) / float64(c.Ref)
}

// Add returns the element-wise sum of c and o.
func (c Counts) Add(o Counts) Counts {
	return Counts{Sub: c.Sub + o.Sub, Del: c.Del + o.Del, Ins: c.Ins + o.Ins, Ref: c.Ref + o.Ref}
}

// Align computes a minimum-edit alignment between ref and hyp token
// sequences. Among alignments with the fewest edits it prefers
// substitutions, then deletions, then insertions, which matches the usual
// sclite/jiwer breakdown. It runs in O(len(ref)·len(hyp)) time and
// O(len(ref)·len(hyp)) memory for the backtrace; transcripts are short.
func Align[T comparable](ref, hyp []T) Counts {
	n, m := len(ref), len(hyp)
	// cost[i][j] = edits to turn ref[:i] into hyp[:j]; op records the last
	// edit so the breakdown can be recovered.
	const (
		opMatch = iota
		opSub
		opDel
		opIns
	)
	cost := make([]int, (n+1)*(m+1))
	op := make([]uint8, (n+1)*(m+1))
	at := func(i, j int) int { return i*(m+1) + j }
	for i := 1; i <= n; i++ {
		cost[at(i, 0)] = i
		op[at(i, 0)] = opDel
	}
	for j := 1; j <= m; j++ {
		cost[at(0, j)] = j
		op[at(0, j)] = opIns
	}
	for i := 1; i <= n; i++ {
		for j := 1; j <= m; j++ {
			best, bop := cost[at(i-1, j-1)], uint8(opMatch)
			if ref[i-1] != hyp[j-1] {
				best++
				bop = opSub
			}
			if c := cost[at(i-1, j)] + 1; c < best {
				best, bop = c, opDel
			}
			if c := cost[at(i, j-1)] + 1; c < best {
				best, bop = c, opIns
			}
			cost[at(i, j)] = best
			op[at(i, j)] = bop
		}
	}
	c := Counts{Ref: n}
	for i, j := n, m; i > 0 || j > 0; {
		switch op[at(i, j)] {
		case opMatch:
			i, j = i-1, j-1
		case opSub:
			c.Sub++
			i, j = i-1, j-1
		case opDel:
			c.Del++
			i--
		case opIns:
			c.Ins++
			j--
		}
	}
	return c
}

// WordCounts normalises ref and hyp with Normalize and aligns their words.
func WordCounts(ref, hyp string) Counts {
	return Align(Words(ref), Words(hyp))
}

// CharCounts normalises ref and hyp with Normalize and aligns their runes,
// spaces included: a missing word boundary is a character error.
func CharCounts(ref, hyp string) Counts {
	return Align([]rune(Normalize(ref)), []rune(Normalize(hyp)))
}

// WER scores a corpus: refs[i] is the reference for hyps[i]. It returns the
// total word edits and reference words after normalisation; the rate is
// errors/words. A missing hypothesis (len(hyps) < len(refs)) counts as an
// empty one, and extra hypotheses are scored against empty references, so
// a length mismatch is penalised rather than silently ignored.
func WER(refs, hyps []string) (errors, words int) {
	c := corpus(refs, hyps, WordCounts)
	return c.Errors(), c.Ref
}

// CER is WER over normalised characters (spaces included).
func CER(refs, hyps []string) (errors, chars int) {
	c := corpus(refs, hyps, CharCounts)
	return c.Errors(), c.Ref
}

func corpus(refs, hyps []string, score func(ref, hyp string) Counts) Counts {
	var total Counts
	for i := 0; i < max(len(refs), len(hyps)); i++ {
		var r, h string
		if i < len(refs) {
			r = refs[i]
		}
		if i < len(hyps) {
			h = hyps[i]
		}
		total = total.Add(score(r, h))
	}
	return total
}
