package tokenizer

import (
	"container/heap"
	"strings"
	"sync"
)

// merge is one learned BPE rule: the adjacent pair it applies to merges into result, and
// lower ranks apply first.
type merge struct {
	rank   int32
	result int32
}

// pairKey packs an ordered pair of token ids.
func pairKey(left, right int32) uint64 { return uint64(uint32(left))<<32 | uint64(uint32(right)) }

// bpeSymbol is one symbol of a piece being merged, in a doubly linked list over the piece.
type bpeSymbol struct {
	id         int32
	prev, next int32 // neighbour indices, -1 at the ends
	dead       bool  // merged into its left neighbour
}

// bpeCandidate is an applicable merge of the symbol at pos with its right neighbour.
type bpeCandidate struct {
	rank        int32
	pos         int32
	left, right int32 // the ids the pair had when queued, to detect stale entries
}

// bpeQueue orders candidates by rank, then position, so the leftmost occurrence of the
// best-ranked pair merges first — the rule byte-level BPE encoders share (HF tokenizers'
// Word::merge_all, tiktoken's lowest-rank loop).
type bpeQueue []bpeCandidate

func (q bpeQueue) Len() int { return len(q) }
func (q bpeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q bpeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *bpeQueue) Push(x any)   { *q = append(*q, x.(bpeCandidate)) }
func (q *bpeQueue) Pop() any {
	old := *q
	c := old[len(old)-1]
	*q = old[:len(old)-1]
	return c
}

// bpe encodes one pre-tokenized piece: its bytes become byte tokens, then the best-ranked
// adjacent pair merges repeatedly until no pair has a merge rule. It appends the ids to dst.
// A heap of candidates makes this O(n log n) in the piece length, so a long run of
// characters without spaces (pasted base64, say) does not go quadratic.
func (t *Tokenizer) bpe(dst []int, piece string) []int {
	if len(piece) == 1 {
		return append(dst, int(t.byteID[piece[0]]))
	}
	syms := make([]bpeSymbol, len(piece))
	for i := range syms {
		syms[i] = bpeSymbol{id: t.byteID[piece[i]], prev: int32(i - 1), next: int32(i + 1)}
	}
	syms[len(syms)-1].next = -1
	q := make(bpeQueue, 0, len(piece))
	push := func(pos int32) {
		next := syms[pos].next
		if next < 0 {
			return
		}
		if m, ok := t.merges[pairKey(syms[pos].id, syms[next].id)]; ok {
			heap.Push(&q, bpeCandidate{rank: m.rank, pos: pos, left: syms[pos].id, right: syms[next].id})
		}
	}
	for i := range syms {
		push(int32(i))
	}
	for q.Len() > 0 {
		c := heap.Pop(&q).(bpeCandidate)
		s := &syms[c.pos]
		if s.dead || s.id != c.left || s.next < 0 || syms[s.next].id != c.right {
			continue // an earlier merge changed this pair
		}
		right := &syms[s.next]
		s.id = t.merges[pairKey(c.left, c.right)].result
		right.dead = true
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			push(s.prev)
		}
		push(c.pos)
	}
	for i := int32(0); i >= 0; i = syms[i].next {
		dst = append(dst, int(syms[i].id))
	}
	return dst
}

// bpeCache remembers the ids of recently encoded pieces; a vocabulary's common words recur
// constantly. It is safe for concurrent use, and it is cleared when full rather than tracking
// recency, which keeps it simple and bounded.
type bpeCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	cacheMaxEntries  = 1 << 15
	cacheMaxPieceLen = 64 // longer pieces are rare and not worth the memory
)

func (c *bpeCache) get(piece string) ([]int, bool) {
	c.mu.RLock()
	ids, ok := c.m[piece]
	c.mu.RUnlock()
	return ids, ok
}

func (c *bpeCache) put(piece string, ids []int) {
	if len(piece) > cacheMaxPieceLen {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheMaxEntries {
		c.m = make(map[string][]int)
	}
	c.m[strings.Clone(piece)] = ids // the piece may point into a much larger text
	c.mu.Unlock()
}
