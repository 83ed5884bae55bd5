package experts

// Shapes (legend in doc.go): a layer's record is one bitmask of E bits per token, [T, W]
// uint64 words with W = ⌈E/64⌉; co-activation counts are [E, E].

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
)

// Pathway is one request's activation pathway: per layer, the experts each token used, in the
// order the tokens ran (encoder frames, then each decoding step's tokens). It lives in the
// request's session, never on the model.
type Pathway struct {
	Request string
	// Tags describe the request for exports (model, variant, router, arm, time…); every
	// exported line of the request carries them.
	Tags   map[string]string
	Layers []LayerPath // indexed by FFN.Layer
}

// LayerPath is one layer's record: a bitmask of experts per token, so that selections of any
// K, dense ones included, cost ⌈E/64⌉ words per token.
type LayerPath struct {
	Name   string   // e.g. "encoder.0", for exports; optional
	E      int      // experts of the layer (0: nothing recorded)
	Tokens int      // tokens recorded
	Masks  []uint64 // [Tokens, W]: bit e of token t set when t used expert e
}

func words(e int) int { return (e + 63) / 64 }

// Record appends sel's tokens to layer's record. A layer's expert count is fixed by its first
// record; a selection over a different count is a wiring error and panics.
func (p *Pathway) Record(layer int, sel Selection) {
	for len(p.Layers) <= layer {
		p.Layers = append(p.Layers, LayerPath{})
	}
	lp := &p.Layers[layer]
	if lp.E == 0 {
		lp.E = sel.E
	}
	if lp.E != sel.E {
		panic(fmt.Sprintf("experts: layer %d recorded with %d experts, now %d", layer, lp.E, sel.E))
	}
	w, t := words(lp.E), sel.T()
	base := len(lp.Masks)
	lp.Masks = append(lp.Masks, make([]uint64, t*w)...)
	for i := range t {
		m := lp.Masks[base+i*w : base+(i+1)*w]
		for _, id := range sel.Token(i) {
			m[id/64] |= 1 << (id % 64)
		}
	}
	lp.Tokens += t
}

// Packed returns the record as ⌈E/8⌉ bytes per token, bit e (little-endian within and
// across bytes) set when the token used expert e: the wire form of exports and of the gRPC
// Pathway message.
func (lp *LayerPath) Packed() []byte {
	nb, nw := (lp.E+7)/8, words(lp.E)
	raw := make([]byte, lp.Tokens*nb)
	for t := range lp.Tokens {
		for b := range nb {
			raw[t*nb+b] = byte(lp.Masks[t*nw+b/8] >> (8 * (b % 8)))
		}
	}
	return raw
}

// Experts returns the ids token i used, ascending.
func (lp *LayerPath) Experts(i int) []int { return lp.appendExperts(nil, i) }

// LayerStats aggregates layer records (of one request, one A/B arm, or a time window).
type LayerStats struct {
	Name   string
	E      int
	Tokens int64
	Counts []int64 // [E]: tokens that used expert e
	Co     []int64 // [E, E]: tokens that used both i and j; the diagonal is Counts
}

// Add accumulates a layer record; its expert count must match what was added before.
func (s *LayerStats) Add(lp *LayerPath) error {
	if lp.E == 0 {
		return nil
	}
	if s.E == 0 {
		s.E, s.Name = lp.E, lp.Name
		s.Counts = make([]int64, lp.E)
		s.Co = make([]int64, lp.E*lp.E)
	}
	if s.E != lp.E {
		return fmt.Errorf("experts: layer %q has %d experts, aggregate %d", lp.Name, lp.E, s.E)
	}
	var ids []int
	for i := range lp.Tokens {
		ids = lp.appendExperts(ids[:0], i)
		for _, a := range ids {
			s.Counts[a]++
			row := s.Co[a*s.E:]
			for _, b := range ids {
				row[b]++
			}
		}
	}
	s.Tokens += int64(lp.Tokens)
	return nil
}

func (lp *LayerPath) appendExperts(ids []int, i int) []int {
	w := words(lp.E)
	for j, word := range lp.Masks[i*w : (i+1)*w] {
		for word != 0 {
			ids = append(ids, j*64+bits.TrailingZeros64(word))
			word &= word - 1
		}
	}
	return ids
}

// Utilisation is the fraction of tokens that used each expert [E]; it sums to K for a
// fixed-k router.
func (s *LayerStats) Utilisation() []float64 {
	u := make([]float64, s.E)
	for e, c := range s.Counts {
		if s.Tokens > 0 {
			u[e] = float64(c) / float64(s.Tokens)
		}
	}
	return u
}

// CoActivation is the fraction of tokens that used both experts i and j, [E, E] row-major.
func (s *LayerStats) CoActivation() []float64 {
	co := make([]float64, len(s.Co))
	for i, c := range s.Co {
		if s.Tokens > 0 {
			co[i] = float64(c) / float64(s.Tokens)
		}
	}
	return co
}

// Entropy is the entropy in bits of the load distribution (each expert's share of all
// expert uses): log2(E) when every expert is used equally, 0 when one expert does all the
// work. Low entropy flags a router that collapsed onto few experts.
func (s *LayerStats) Entropy() float64 {
	var total int64
	for _, c := range s.Counts {
		total += c
	}
	var h float64
	for _, c := range s.Counts {
		if c > 0 {
			p := float64(c) / float64(total)
			h -= p * math.Log2(p)
		}
	}
	return h
}

// Stats aggregates each recorded layer of the pathway.
func (p *Pathway) Stats() []LayerStats {
	st := make([]LayerStats, len(p.Layers))
	for i := range p.Layers {
		_ = st[i].Add(&p.Layers[i]) // a fresh aggregate accepts any layer
	}
	return st
}

// Aggregate accumulates the pathways of many requests per layer (per A/B arm, or over time).
// Not safe for concurrent use.
type Aggregate struct {
	Requests int64
	Layers   []LayerStats
}

// Add accumulates p; it fails, adding nothing, when a layer's expert count differs from
// what the aggregate holds (a pathway of another variant).
func (a *Aggregate) Add(p *Pathway) error {
	for i := range p.Layers {
		if i < len(a.Layers) && a.Layers[i].E != 0 && p.Layers[i].E != 0 && a.Layers[i].E != p.Layers[i].E {
			return fmt.Errorf("experts: layer %d has %d experts, aggregate %d", i, p.Layers[i].E, a.Layers[i].E)
		}
	}
	for len(a.Layers) < len(p.Layers) {
		a.Layers = append(a.Layers, LayerStats{})
	}
	for i := range p.Layers {
		if err := a.Layers[i].Add(&p.Layers[i]); err != nil {
			return err
		}
	}
	a.Requests++
	return nil
}

// pathLine is one JSON line of an export: one layer of one request. Masks holds ⌈E/8⌉ bytes
// per token, bit e (little-endian within and across bytes) set when the token used expert e,
// base64-encoded: 250 encoder frames of a 16-expert layer take 668 characters.
type pathLine struct {
	Request string            `json:"request"`
	Tags    map[string]string `json:"tags,omitempty"`
	Layer   int               `json:"layer"`
	Name    string            `json:"name,omitempty"`
	Experts int               `json:"experts"`
	Tokens  int               `json:"tokens"`
	Masks   string            `json:"masks"`
}

// WriteJSONL writes one JSON line per recorded layer (pathLine's format).
func (p *Pathway) WriteJSONL(w io.Writer) error {
	enc := json.NewEncoder(w)
	for i := range p.Layers {
		lp := &p.Layers[i]
		if lp.E == 0 {
			continue
		}
		l := pathLine{Request: p.Request, Tags: p.Tags, Layer: i, Name: lp.Name, Experts: lp.E, Tokens: lp.Tokens, Masks: base64.StdEncoding.EncodeToString(lp.Packed())}
		if err := enc.Encode(&l); err != nil {
			return fmt.Errorf("write pathway: %w", err)
		}
	}
	return nil
}

// ReadJSONL reads pathways written by WriteJSONL, grouping lines by request in the order
// requests first appear.
func ReadJSONL(r io.Reader) ([]*Pathway, error) {
	var out []*Pathway
	byReq := make(map[string]*Pathway)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l pathLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("read pathway line %d: %w", n, err)
		}
		raw, err := base64.StdEncoding.DecodeString(l.Masks)
		nb := (l.Experts + 7) / 8
		switch {
		case err != nil:
			return nil, fmt.Errorf("read pathway line %d: masks: %w", n, err)
		case l.Experts <= 0 || l.Tokens < 0 || l.Layer < 0 || l.Layer > 1<<16:
			return nil, fmt.Errorf("read pathway line %d: layer %d, %d experts, %d tokens", n, l.Layer, l.Experts, l.Tokens)
		case len(raw) != l.Tokens*nb:
			return nil, fmt.Errorf("read pathway line %d: %d mask bytes for %d tokens of %d experts", n, len(raw), l.Tokens, l.Experts)
		}
		p := byReq[l.Request]
		if p == nil {
			p = &Pathway{Request: l.Request, Tags: l.Tags}
			byReq[l.Request] = p
			out = append(out, p)
		}
		for len(p.Layers) <= l.Layer {
			p.Layers = append(p.Layers, LayerPath{})
		}
		lp := &p.Layers[l.Layer]
		if lp.E != 0 {
			return nil, fmt.Errorf("read pathway line %d: request %q layer %d repeated", n, l.Request, l.Layer)
		}
		nw := words(l.Experts)
		*lp = LayerPath{Name: l.Name, E: l.Experts, Tokens: l.Tokens, Masks: make([]uint64, l.Tokens*nw)}
		for t := range l.Tokens {
			for b := range nb {
				v := raw[t*nb+b]
				if b == nb-1 && l.Experts%8 != 0 && v>>(l.Experts%8) != 0 {
					return nil, fmt.Errorf("read pathway line %d: token %d uses an expert beyond %d", n, t, l.Experts)
				}
				lp.Masks[t*nw+b/8] |= uint64(v) << (8 * (b % 8))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read pathway: %w", err)
	}
	return out, nil
}
