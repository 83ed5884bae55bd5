package tokenizer

import (
	"container/heap"
	"fmt"
	"iter"
	"slices"
	"strings"
)

// maxTrainVocab bounds Train's vocabSize; beyond it ids would collide with maxID's room for
// the specials.
const maxTrainVocab = maxID - 4096

// Train learns a byte-level BPE vocabulary from texts, the way GPT-2's was built: every text
// is split with the pre-tokenization pattern, the 256 byte tokens are the starting alphabet,
// and the most frequent adjacent pair of tokens within a piece (counted over all pieces,
// weighted by how often each piece occurs) is merged into a new token, again and again,
// until the vocabulary has vocabSize ordinary tokens. Ties go to the pair with the smaller
// (left, right) ids, so training is deterministic. Training stops early when no pair occurs
// twice.
//
// Whisper's special tokens follow the ordinary ones in Whisper's layout (see Specials), with
// one language token per code in languages, in that order; nil means Whisper's first
// DefaultNumLanguages languages. A single language gives an English-only-style vocabulary
// whose SOT sequence carries no language or task token; more than one, a multilingual one.
// The model's n_vocab is Size() = vocabSize + 8 + len(languages) + NumTimestamps.
//
// Pair counts are updated incrementally after each merge (only the pieces containing the
// merged pair are revisited) and the best pair comes from a lazily updated heap, so 20k
// sentences train a 1000-token vocabulary in well under a second.
func Train(texts iter.Seq[string], vocabSize int, languages []string) (*Tokenizer, error) {
	if vocabSize < 256 || vocabSize > maxTrainVocab {
		return nil, fmt.Errorf("train tokenizer: vocab size %d outside [256, %d]", vocabSize, maxTrainVocab)
	}
	if languages == nil {
		languages = WhisperLanguages[:DefaultNumLanguages]
	}
	if err := checkLanguages(languages); err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}

	freq := map[string]int64{}
	for text := range texts {
		for p := range pieces(text) {
			if _, ok := freq[p]; !ok {
				p = strings.Clone(p) // do not pin the whole text
			}
			freq[p]++
		}
	}
	tr := newTrainer(freq)
	for len(tr.tokens) < vocabSize && tr.step() {
	}

	vocab := make(map[string]int, len(tr.tokens))
	for id, b := range tr.tokens {
		vocab[bytesToSymbols(b)] = id
	}
	merges := make([][2]string, len(tr.merges))
	for i, m := range tr.merges {
		merges[i] = [2]string{bytesToSymbols(tr.tokens[m[0]]), bytesToSymbols(tr.tokens[m[1]])}
	}
	named := map[string]int{}
	for i, n := range layoutNames(languages) {
		named[n] = len(tr.tokens) + i
	}
	t, err := build(vocab, merges, named)
	if err != nil {
		return nil, fmt.Errorf("train tokenizer: %w", err)
	}
	return t, nil
}

// checkLanguages accepts distinct codes of 2 to 8 lowercase ASCII letters, which is what
// Whisper's codes are and keeps "<|code|>" unambiguous.
func checkLanguages(codes []string) error {
	if len(codes) == 0 {
		return fmt.Errorf("no languages")
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) < 2 || len(c) > 8 || strings.IndexFunc(c, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
			return fmt.Errorf("language code %q is not 2-8 lowercase letters", c)
		}
		if seen[c] {
			return fmt.Errorf("language code %q repeats", c)
		}
		seen[c] = true
	}
	return nil
}

// trainWord is one distinct piece of the corpus as its current token sequence.
type trainWord struct {
	syms []int32
	freq int64
}

// pairCount is a heap entry: a pair and its count when pushed. Entries whose count no longer
// matches the live count are stale and skipped; every change pushes a fresh entry.
type pairCount struct {
	count int64
	pair  uint64
}

type pairHeap []pairCount

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count > h[j].count
	}
	return h[i].pair < h[j].pair // (left, right) ascending: left is the high half
}
func (h pairHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pairCount)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// trainer holds BPE training state.
type trainer struct {
	tokens [][]byte         // id → bytes; ids 0…255 are the bytes in byteOrder
	index  map[string]int32 // bytes → id
	merges [][2]int32       // learned rules in order
	words  []trainWord
	counts map[uint64]int64   // live pair counts, frequency-weighted
	where  map[uint64][]int32 // pair → words that may contain it (a superset)
	heap   pairHeap
	delta  map[uint64]int64 // scratch for one merge's count changes
	stamp  []int            // word → last merge that visited it (deduplicates where lists)
}

func newTrainer(freq map[string]int64) *trainer {
	tr := &trainer{
		index:  map[string]int32{},
		counts: map[uint64]int64{},
		where:  map[uint64][]int32{},
		delta:  map[uint64]int64{},
	}
	var byteTok [256]int32
	for id, b := range byteOrder {
		tr.tokens = append(tr.tokens, []byte{b})
		tr.index[string([]byte{b})] = int32(id)
		byteTok[b] = int32(id)
	}
	keys := make([]string, 0, len(freq))
	for k := range freq {
		keys = append(keys, k)
	}
	slices.Sort(keys) // a fixed word order makes the where lists, not just results, repeatable
	tr.words = make([]trainWord, len(keys))
	tr.stamp = make([]int, len(keys))
	for wi, k := range keys {
		w := trainWord{syms: make([]int32, len(k)), freq: freq[k]}
		for i := range len(k) {
			w.syms[i] = byteTok[k[i]]
		}
		tr.words[wi] = w
		for i := 0; i+1 < len(w.syms); i++ {
			p := pairKey(w.syms[i], w.syms[i+1])
			tr.counts[p] += w.freq
			tr.addWhere(p, int32(wi))
		}
	}
	for p, c := range tr.counts {
		tr.heap = append(tr.heap, pairCount{c, p})
	}
	heap.Init(&tr.heap)
	return tr
}

// addWhere notes that word wi contains pair p; words are added in runs, so checking the last
// entry avoids most duplicates.
func (tr *trainer) addWhere(p uint64, wi int32) {
	l := tr.where[p]
	if len(l) > 0 && l[len(l)-1] == wi {
		return
	}
	tr.where[p] = append(l, wi)
}

// step performs the best merge and reports whether there was one worth making (a pair seen at
// least twice).
func (tr *trainer) step() bool {
	var best pairCount
	for {
		if tr.heap.Len() == 0 {
			return false
		}
		best = heap.Pop(&tr.heap).(pairCount)
		if tr.counts[best.pair] == best.count {
			break
		}
	}
	if best.count < 2 {
		return false
	}
	a, b := int32(best.pair>>32), int32(uint32(best.pair))
	// Different merge paths can spell the same bytes ("a"+"bc" and "ab"+"c"); like Hugging
	// Face's trainer, the second rule then reuses the token and adds no new one.
	joined := slices.Concat(tr.tokens[a], tr.tokens[b])
	c, ok := tr.index[string(joined)]
	if !ok {
		c = int32(len(tr.tokens))
		tr.tokens = append(tr.tokens, joined)
		tr.index[string(joined)] = c
	}
	tr.merges = append(tr.merges, [2]int32{a, b})
	clear(tr.delta)
	mergeNo := len(tr.merges)
	for _, wi := range tr.where[best.pair] {
		if tr.stamp[wi] == mergeNo {
			continue
		}
		tr.stamp[wi] = mergeNo
		tr.mergeWord(wi, a, b, c)
	}
	delete(tr.where, best.pair)
	for p, d := range tr.delta {
		if d == 0 {
			continue
		}
		n := tr.counts[p] + d
		if n <= 0 {
			delete(tr.counts, p)
			delete(tr.where, p)
			continue
		}
		tr.counts[p] = n
		heap.Push(&tr.heap, pairCount{n, p})
	}
	return true
}

// mergeWord replaces every non-overlapping occurrence of (a, b) in word wi, left to right, by
// c, recording the pair count changes: all of the word's pairs are taken out and the new ones
// put back, which handles overlaps like "a a a" without special cases.
func (tr *trainer) mergeWord(wi int32, a, b, c int32) {
	w := &tr.words[wi]
	s := w.syms
	found := false
	for i := 0; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			found = true
			break
		}
	}
	if !found {
		return
	}
	for i := 0; i+1 < len(s); i++ {
		tr.delta[pairKey(s[i], s[i+1])] -= w.freq
	}
	j := 0
	for i := 0; i < len(s); j++ {
		if i+1 < len(s) && s[i] == a && s[i+1] == b {
			s[j] = c
			i += 2
		} else {
			s[j] = s[i]
			i++
		}
	}
	s = s[:j]
	w.syms = s
	for i := 0; i+1 < len(s); i++ {
		p := pairKey(s[i], s[i+1])
		tr.delta[p] += w.freq
		if s[i] == c || s[i+1] == c {
			tr.addWhere(p, wi)
		}
	}
}
