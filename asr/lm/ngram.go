// Package lm is chorus's external language model for shallow fusion: an n-gram model over the
// tokenizer's token ids, estimated with interpolated Kneser-Ney smoothing from the training
// text and stored in the ARPA back-off format (compressed), so that decoding can add
// β·log p_lm(token | history) to each candidate's score (decode.Options.LMWeight).
//
// Why tokens and not words: decoding extends hypotheses one BPE token at a time, so a token
// model scores every step without a lexicon or word-boundary bookkeeping; with chorus-micro's
// small byte-level vocabulary (a few hundred merges) an order-8 token model spans about two
// words, enough to tell "brown" from "bround".
package lm

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
)

// NGram is a back-off n-gram model over token ids. Sentences start with BOS (never predicted)
// and end with EOS. Every log-probability is natural.
type NGram struct {
	order    int
	bos, eos int
	vocab    int // token ids are below vocab; unseen ones get the unigram floor
	// grams[n-1] holds the n-grams: key the packed ids, value log p(last | rest) and the
	// back-off weight of the n-gram as a context (0 when it is none).
	grams []map[string]entry
	floor float64 // log p of a token the model never saw
	// next holds every n-gram of order 2 and above as a continuation of its context, grouped
	// by context (index); uni the unigrams' log-probs by token (NaN: not stored).
	next []cont
	uni  []float32
}

type entry struct {
	logp, backoff float32
	// next and nnext locate the n-gram's continuations as a context: m.next[next:next+nnext].
	next, nnext int32
}

// Order is n.
func (m *NGram) Order() int { return m.order }

// BOS and EOS are the ids of the sentence start and end symbols.
func (m *NGram) BOS() int { return m.bos }
func (m *NGram) EOS() int { return m.eos }

// Grams is the number of stored n-grams of each order, 1 first.
func (m *NGram) Grams() []int {
	out := make([]int, m.order)
	for i, g := range m.grams {
		out[i] = len(g)
	}
	return out
}

// key packs ids into a map key: two bytes each, big-endian (ids are below 65,536).
func key(ids []int) string {
	b := make([]byte, 2*len(ids))
	for i, id := range ids {
		binary.BigEndian.PutUint16(b[2*i:], uint16(id))
	}
	return string(b)
}

// LogProb returns ln p(tok | context), reading the last Order()−1 ids of context (the ids
// before tok, starting with BOS at a sentence start): the longest stored n-gram ending in tok,
// times the back-off weights of the longer contexts that had no such n-gram.
func (m *NGram) LogProb(context []int, tok int) float64 {
	var out [1]float64
	m.LogProbs(context, []int{tok}, out[:])
	return out[0]
}

// LogProbs sets out[i] to LogProb(context, toks[i]).
//
// Beam search asks for a pre-beam's worth of tokens after each hypothesis's context at every
// step, so it matters that it is quick. The context's stored suffixes are looked up once (a
// map probe each, likely a cache miss in a model of 10⁵–10⁶ n-grams); each token is then
// searched for among their continuations (index), longest context first, as the definition
// (logProbNaive) searches: a binary search in a short sorted run that all the tokens share,
// so it stays in cache, where probing the maps would cost a miss per n-gram length tried.
func (m *NGram) LogProbs(context []int, toks []int, out []float64) {
	if n := m.order - 1; len(context) > n {
		context = context[len(context)-n:]
	}
	// The context's stored suffixes, longest first (every stored n-gram's context is stored:
	// Estimate stores them, ReadARPA refuses a file without, so a suffix that is not stored
	// has no continuations and no back-off weight).
	var buf [2 * 13]byte
	b := pack(buf[:2*(len(context)+1)], context, 0)
	end := len(b) - 2
	var ctxs [12]entry
	nc := 0
	for k := len(context); k >= 1; k-- {
		if e, ok := m.grams[k-1][string(b[end-2*k:end])]; ok {
			ctxs[nc] = e
			nc++
		}
	}
	for i, tok := range toks {
		var bo float64
		found := false
		for _, e := range ctxs[:nc] {
			if lp, ok := m.continuation(e.next, e.nnext, tok); ok {
				out[i], found = bo+float64(lp), true
				break
			}
			bo += float64(e.backoff) // added longest first, as logProbNaive adds them
		}
		if found {
			continue
		}
		if tok >= 0 && tok < len(m.uni) && !math.IsNaN(float64(m.uni[tok])) {
			out[i] = bo + float64(m.uni[tok])
		} else {
			out[i] = bo + m.floor
		}
	}
}

// continuation finds tok among the continuations m.next[first:first+n] (sorted by token).
func (m *NGram) continuation(first, n int32, tok int) (float32, bool) {
	run := m.next[first : first+n]
	lo, hi := 0, len(run)
	for lo < hi {
		h := int(uint(lo+hi) >> 1)
		if int(run[h].tok) < tok {
			lo = h + 1
		} else {
			hi = h
		}
	}
	if lo < len(run) && int(run[lo].tok) == tok {
		return run[lo].logp, true
	}
	return 0, false
}

// index builds m.uni, the unigrams by token, and m.next: every stored n-gram of order 2 and
// above as a continuation of its context, grouped by context and sorted by token within a
// group, each context's entry pointing at its group. Estimate and ReadARPA call it once
// the n-grams are final.
func (m *NGram) index() {
	total := 0
	for _, g := range m.grams {
		total += len(g)
	}
	m.next = make([]cont, 0, total-len(m.grams[0]))
	for n := 1; n <= m.order; n++ {
		keys := make([]string, 0, len(m.grams[n-1]))
		for k := range m.grams[n-1] {
			keys = append(keys, k)
		}
		// By context, then by token: ids are packed big-endian.
		slices.Sort(keys)
		if n == 1 { // the unigrams: a table by token, NaN where none is stored
			m.uni = nil
			for _, k := range keys {
				tok := int(binary.BigEndian.Uint16([]byte(k)))
				for len(m.uni) <= tok {
					m.uni = append(m.uni, float32(math.NaN()))
				}
				m.uni[tok] = m.grams[0][k].logp
			}
			continue
		}
		for i := 0; i < len(keys); {
			ctx := keys[i][:2*n-2]
			first := len(m.next)
			for ; i < len(keys) && keys[i][:2*n-2] == ctx; i++ {
				tok := binary.BigEndian.Uint16([]byte(keys[i][2*n-2:]))
				m.next = append(m.next, cont{tok: tok, logp: m.grams[n-1][keys[i]].logp})
			}
			e, ok := m.grams[n-2][ctx]
			if !ok {
				panic(fmt.Sprintf("lm: %d-gram without its context stored", n))
			}
			e.next, e.nnext = int32(first), int32(len(m.next)-first)
			m.grams[n-2][ctx] = e
		}
	}
}

// cont is one continuation of a context: the token and log p(token | context).
type cont struct {
	tok  uint16
	logp float32
}

// logProbNaive is LogProb by its definition, longest n-gram first, for a context already cut
// to Order()−1 ids: the reference LogProbs is tested against.
func (m *NGram) logProbNaive(context []int, tok int) float64 {
	var buf [2 * 13]byte
	b := pack(buf[:2*(len(context)+1)], context, tok)
	var bo float64
	for start := 0; start <= len(context); start++ {
		n := len(context) + 1 - start // the n-gram context[start:] + tok
		if e, ok := m.grams[n-1][string(b[2*start:])]; ok {
			return bo + float64(e.logp)
		}
		if n > 1 {
			if e, ok := m.grams[n-2][string(b[2*start:len(b)-2])]; ok {
				bo += float64(e.backoff)
			}
		}
	}
	return bo + m.floor
}

// pack writes context's ids and then tok into b (two bytes each, big-endian, as key packs).
func pack(b []byte, context []int, tok int) []byte {
	for i, id := range context {
		binary.BigEndian.PutUint16(b[2*i:], uint16(id))
	}
	binary.BigEndian.PutUint16(b[2*len(context):], uint16(tok))
	return b
}

// EstimateOptions tune Estimate.
type EstimateOptions struct {
	// Order is n (2–12).
	Order int
	// BOS and EOS are the sentence start and end ids; Vocab bounds every id.
	BOS, EOS, Vocab int
	// MinCount drops n-grams of order 3 and above seen fewer times (1 keeps everything):
	// they keep their probability mass inside their context's back-off.
	MinCount int
}

// Estimate builds an interpolated Kneser-Ney model (Chen & Goodman, "An Empirical Study of
// Smoothing Techniques for Language Modeling", 1998, §3.5 with one discount per order,
// D = n1/(n1+2·n2)) from sentences of token ids (without BOS and EOS).
//
// For n-grams of the highest order, and those starting with BOS, the count is how often they
// occur; for the others it is the number of distinct tokens seen before them (continuation
// counts). p(w | h) = (max(c(hw) − D, 0) + D·T(h)·p(w | h′)) / S(h), where S(h) sums the
// counts after h, T(h) counts the distinct tokens after h and h′ is h without its first token;
// the unigrams interpolate with the uniform distribution over Vocab. D·T(h)/S(h) is h's
// back-off weight, so the stored model is an exact back-off form of the interpolated one.
func Estimate(sentences [][]int, o EstimateOptions) (*NGram, error) {
	switch {
	case o.Order < 2 || o.Order > 12:
		return nil, fmt.Errorf("lm: order %d outside [2, 12]", o.Order)
	case o.Vocab <= 0 || o.Vocab > 65536 || o.BOS < 0 || o.BOS >= o.Vocab || o.EOS < 0 || o.EOS >= o.Vocab || o.BOS == o.EOS:
		return nil, fmt.Errorf("lm: vocabulary %d with BOS %d and EOS %d", o.Vocab, o.BOS, o.EOS)
	}
	N := o.Order
	raw := make([]map[string]int, N)
	for i := range raw {
		raw[i] = map[string]int{}
	}
	for si, s := range sentences {
		seq := make([]int, 0, len(s)+2)
		seq = append(seq, o.BOS)
		for _, id := range s {
			if id < 0 || id >= o.Vocab || id == o.BOS || id == o.EOS {
				return nil, fmt.Errorf("lm: sentence %d has token %d (vocabulary %d, BOS %d, EOS %d)", si, id, o.Vocab, o.BOS, o.EOS)
			}
			seq = append(seq, id)
		}
		seq = append(seq, o.EOS)
		for i := 1; i < len(seq); i++ {
			for n := 1; n <= N && i-n+1 >= 0; n++ {
				raw[n-1][key(seq[i-n+1:i+1])]++
			}
		}
	}
	if len(raw[0]) == 0 {
		return nil, fmt.Errorf("lm: no sentences")
	}

	// Adjusted counts: raw at the top order and for BOS-initial n-grams, continuation
	// counts below.
	bosKey := key([]int{o.BOS})
	adj := make([]map[string]int, N)
	adj[N-1] = raw[N-1]
	for n := N - 1; n >= 1; n-- {
		a := map[string]int{}
		for g := range raw[n] { // the (n+1)-grams: one left extension each of their suffix
			a[g[2:]]++
		}
		for g, c := range raw[n-1] {
			if g[:2] == bosKey {
				a[g] = c
			}
		}
		adj[n-1] = a
	}

	m := &NGram{order: N, bos: o.BOS, eos: o.EOS, vocab: o.Vocab, grams: make([]map[string]entry, N)}
	// Per order: the discount, and per context the sum and number of types after it.
	type ctxStat struct{ sum, types int }
	disc := make([]float64, N)
	stats := make([]map[string]ctxStat, N)
	for n := 1; n <= N; n++ {
		var n1, n2 int
		st := map[string]ctxStat{}
		for g, c := range adj[n-1] {
			switch c {
			case 1:
				n1++
			case 2:
				n2++
			}
			h := g[:len(g)-2]
			s := st[h]
			s.sum += c
			s.types++
			st[h] = s
		}
		d := 0.5
		if n1 > 0 {
			d = float64(n1) / float64(n1+2*n2)
		}
		disc[n-1] = min(max(d, 0.05), 0.95)
		stats[n-1] = st
	}

	// Unigrams: interpolated with the uniform distribution over the vocabulary (BOS is
	// never predicted, but keeps an entry for its back-off).
	uni := stats[0][""]
	d1 := disc[0]
	uniform := 1 / float64(o.Vocab)
	lowerWeight := d1 * float64(uni.types) / float64(uni.sum)
	m.floor = math.Log(lowerWeight * uniform)
	m.grams[0] = map[string]entry{}
	for g, c := range adj[0] {
		p := (math.Max(float64(c)-d1, 0) + d1*float64(uni.types)*uniform) / float64(uni.sum)
		m.grams[0][g] = entry{logp: float32(math.Log(p))}
	}
	if _, ok := m.grams[0][bosKey]; !ok {
		m.grams[0][bosKey] = entry{logp: float32(m.floor)}
	}
	// Higher orders, from the interpolated lower-order probabilities already stored.
	for n := 2; n <= N; n++ {
		d := disc[n-1]
		cur := map[string]entry{}
		for g, c := range adj[n-1] {
			h := g[:len(g)-2]
			s := stats[n-1][h]
			lower := math.Exp(float64(m.grams[n-2][g[2:]].logp))
			p := (math.Max(float64(c)-d, 0) + d*float64(s.types)*lower) / float64(s.sum)
			cur[g] = entry{logp: float32(math.Log(p))}
		}
		m.grams[n-1] = cur
	}
	// Back-off weights of every stored context.
	for n := 1; n < N; n++ {
		for h, s := range stats[n] {
			e, ok := m.grams[n-1][h]
			if !ok {
				continue // unreachable: a context is a stored (n)-gram
			}
			e.backoff = float32(math.Log(disc[n] * float64(s.types) / float64(s.sum)))
			m.grams[n-1][h] = e
		}
	}
	// Pruning, from the top order down: an n-gram of order 3 or more seen fewer than MinCount
	// times goes, unless a kept longer n-gram needs it as its context; its probability then
	// comes through its context's back-off (and a pruned context's mass through its own
	// context's: a slight over-estimate, as pruning without renormalising gives).
	if o.MinCount > 1 {
		var needed map[string]bool
		for n := N; n >= 3; n-- {
			for g := range m.grams[n-1] {
				if raw[n-1][g] < o.MinCount && !needed[g] {
					delete(m.grams[n-1], g)
				}
			}
			needed = map[string]bool{}
			for g := range m.grams[n-1] {
				needed[g[:len(g)-2]] = true
			}
		}
		for n := 2; n < N; n++ { // a context whose every continuation went backs off with weight 1
			ctxs := map[string]bool{}
			for g := range m.grams[n] {
				ctxs[g[:len(g)-2]] = true
			}
			for g, e := range m.grams[n-1] {
				if e.backoff != 0 && !ctxs[g] {
					e.backoff = 0
					m.grams[n-1][g] = e
				}
			}
		}
	}
	m.index()
	return m, nil
}
