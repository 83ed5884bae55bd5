package moe

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/tensor"
)

// Routing is one stream's whisper.Routing: its router, the time spent inside feed-forward
// blocks, the share of expert work it ran, and, when asked, its activation pathway. It
// belongs to one stream (a pinned router and the pathway change as it runs); the counters
// may be read from other goroutines.
type Routing struct {
	set    *Set
	router experts.Router
	dense  bool
	// minTokens: calls with fewer tokens run every expert (RoutingChoice.MinTokens).
	minTokens int
	// denseLayer marks the blocks that run every expert whatever the router: the decoder's
	// under RoutingChoice.EncoderOnly (nil otherwise).
	denseLayer []bool

	pathway *experts.Pathway // nil unless recording; owned by the stream's goroutine

	ffnNanos    atomic.Int64 // wall time inside FFN, all blocks
	encFFNNanos atomic.Int64 // of which inside the encoder's blocks
	used        atomic.Int64 // expert-token pairs computed
	possible    atomic.Int64 // expert-token pairs a dense model computes

	heads         headChoice
	sliced        map[int]*slicedAttn // per encoder layer, per-request head subsets
	attnNanos     atomic.Int64
	headsUsed     atomic.Int64
	headsPossible atomic.Int64
}

// NewRouting runs r on the set's blocks for one stream, recording the pathway when asked.
// The dense router runs the model's own dense block (the speed of an unrouted model, plus
// the timing).
func (s *Set) NewRouting(r experts.Router, pathway bool) *Routing {
	rt := &Routing{set: s, router: r}
	_, rt.dense = r.(experts.Dense)
	if pathway {
		rt.pathway = s.newPathway()
	}
	return rt
}

func (s *Set) newPathway() *experts.Pathway {
	p := &experts.Pathway{Layers: make([]experts.LayerPath, len(s.FFNs))}
	for i := range p.Layers {
		p.Layers[i].Name = s.Layout.Layers[i].Name
	}
	return p
}

// FFN implements whisper.Routing.
func (r *Routing) FFN(ctx *tensor.Ctx, m *whisper.MLP, x *tensor.T) *tensor.T {
	start := time.Now()
	layer := m.Layer()
	f := r.set.FFNs[layer]
	var y *tensor.T
	if f == nil {
		// An empty block (pruned to no units): fc2's bias, no experts to run or record.
		y = m.Forward(ctx, x)
		r.ffnNanos.Add(int64(time.Since(start)))
		return y
	}
	t := len(x.Data) / f.C
	if r.dense || t < r.minTokens || (r.denseLayer != nil && r.denseLayer[layer]) {
		y = m.Forward(ctx, x)
		if r.pathway != nil {
			r.pathway.Record(layer, experts.All(t, f.E))
		}
		r.used.Add(int64(t * f.E))
	} else {
		sel := r.router.Select(ctx, layer, x)
		if g := r.set.Gate; g != nil {
			g.Weigh(ctx, layer, x, &sel)
		}
		y = f.Forward(ctx, x, sel, r.pathway)
		r.used.Add(int64(len(sel.IDs)))
	}
	r.possible.Add(int64(t * f.E))
	d := int64(time.Since(start))
	r.ffnNanos.Add(d)
	if layer < len(r.set.model.Encoder.Layers) {
		r.encFFNNanos.Add(d)
	}
	return y
}

// Name is the router's name ("dense", "mlp:4", "oracle:4/request/pinned"), with the head
// selection when there is one ("random:4+heads:oracle:2/request").
func (r *Routing) Name() string {
	n := r.router.Name()
	if r.minTokens > 1 && !r.dense {
		n += fmt.Sprintf("/min%d", r.minTokens)
	}
	if r.denseLayer != nil && !r.dense {
		n += "/enc"
	}
	if h := r.heads; h.k > 0 {
		n += fmt.Sprintf("+heads:%s:%d", h.router, h.k)
		if h.perRequest {
			n += "/request"
		}
	}
	return n
}

// FFNTime is the wall time spent inside feed-forward blocks so far.
func (r *Routing) FFNTime() time.Duration { return time.Duration(r.ffnNanos.Load()) }

// EncoderFFNTime is the part of FFNTime spent in the encoder's blocks: the sparse FFN's own
// time under an encoder-only router (RoutingChoice.EncoderOnly), whose decoder runs dense.
func (r *Routing) EncoderFFNTime() time.Duration { return time.Duration(r.encFFNNanos.Load()) }

// Work is the expert-token pairs computed so far and those the dense model would have
// computed; used/possible is the share of the FFN work that ran.
func (r *Routing) Work() (used, possible int64) { return r.used.Load(), r.possible.Load() }

// Pathway is the pathway recorded so far (nil when not recording).
func (r *Routing) Pathway() *experts.Pathway { return r.pathway }

// TakePathway returns the pathway recorded so far and starts a new one (nil when not
// recording): a stream returns each utterance's pathway with its final result.
func (r *Routing) TakePathway() *experts.Pathway {
	p := r.pathway
	if p != nil {
		r.pathway = r.set.newPathway()
	}
	return p
}
