package stream

import "slices"

// agreement is the LocalAgreement-n policy of Macháček, Dabre and Bojar, "Turning Whisper
// into Real-Time Transcription System" (2023; github.com/ufal/whisper_streaming): each step
// decodes the utterance so far, and the words on which the last n hypotheses agree, as a
// prefix after the text already committed, are committed. Committed words are never taken
// back within an utterance; the rest of the newest hypothesis is the unconfirmed tail.
//
// Words are compared exactly, punctuation and case included, as whisper_streaming does.
// whisper_streaming finds where a hypothesis continues past the committed text by word
// timestamps; Whisper's segment timestamps are too coarse for that, so here each hypothesis
// is aligned to the committed words by edit distance instead (tail).
type agreement struct {
	n         int
	committed []string
	hyps      [][]string // the last n hypotheses, oldest first
}

// add records a hypothesis of the whole utterance and commits what the last n agree on.
// It returns the newest hypothesis's tail after the committed words, and per tail word how
// many of the last n hypotheses (this one included) agree with it up to that word.
func (a *agreement) add(words []string) (tail []string, votes []int) {
	a.hyps = append(a.hyps, words)
	if len(a.hyps) > a.n {
		a.hyps = slices.Delete(a.hyps, 0, len(a.hyps)-a.n)
	}
	if len(a.hyps) == a.n {
		tails := make([][]string, a.n)
		for i, h := range a.hyps {
			tails[i] = h[a.tailStart(h):]
		}
		k := commonPrefix(tails)
		a.committed = append(a.committed, tails[0][:k]...)
	}
	tail = words[a.tailStart(words):]
	votes = make([]int, len(tail))
	for _, h := range a.hyps {
		t := h[a.tailStart(h):]
		for i := 0; i < len(tail) && i < len(t) && t[i] == tail[i]; i++ {
			votes[i]++
		}
	}
	return tail, votes
}

// reset forgets everything: a new utterance begins.
func (a *agreement) reset() {
	a.committed, a.hyps = nil, nil
}

// stability is the interim's stability in (0, 1]: the committed words count 1 each, a tail
// word votes/n (the share of the last n hypotheses that agree with the newest up to that
// word, at least 1/n as the newest agrees with itself), averaged over all words. It is 1
// when everything is committed; 1 for an empty text too.
func (a *agreement) stability(votes []int) float32 {
	total := len(a.committed) + len(votes)
	if total == 0 {
		return 1
	}
	sum := float64(len(a.committed))
	for _, v := range votes {
		sum += float64(v) / float64(a.n)
	}
	return float32(sum / float64(total))
}

// tailStart returns where hypothesis h continues past the committed words: the j for which
// h[:j] is closest (in word edit distance) to the committed words, the j nearest
// len(committed) among equals, then the larger. A hypothesis that repeats the committed text
// gets j = len(committed); one that revised a committed word still lines up with it.
func (a *agreement) tailStart(h []string) int {
	c := a.committed
	if len(c) == 0 {
		return 0
	}
	// prev[j] = distance between c[:i] and h[:j], row by row.
	prev := make([]int, len(h)+1)
	cur := make([]int, len(h)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(c); i++ {
		cur[0] = i
		for j := 1; j <= len(h); j++ {
			sub := prev[j-1]
			if c[i-1] != h[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	best := 0
	for j := 1; j <= len(h); j++ {
		dj, db := prev[j], prev[best]
		gj, gb := abs(j-len(c)), abs(best-len(c))
		if dj < db || dj == db && (gj < gb || gj == gb && j > best) {
			best = j
		}
	}
	return best
}

// commonPrefix is the length of the longest prefix all of ws share.
func commonPrefix(ws [][]string) int {
	n := 0
	for {
		for _, w := range ws {
			if n >= len(w) || w[n] != ws[0][n] {
				return n
			}
		}
		n++
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
