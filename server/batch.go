package server

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/tensor"
)

// encodeBatcher batches the encoder work of concurrent streams (issue: streaming server,
// "encoder work of concurrent streams batched where that measures faster"): windows of one
// model that are due while its encoder is busy are encoded together in one
// whisper.Encoder.ForwardBatch call, which computes for each window exactly what Forward
// computes (no padding: the default model's windows differ in length) and measured 25–35%
// less time per window for 2–8 windows (docs/BENCHMARKS.md). There is no waiting for a batch
// to fill: the first window due encodes at once (with whatever is already pending), and the
// windows that arrive meanwhile form the next batch, so a lone stream pays nothing. A stream
// waiting for its batch gives its compute slot to others (scheduler.yield).
type encodeBatcher struct {
	sched    *scheduler
	maxBatch int

	mu    sync.Mutex                        // guards lanes
	lanes map[*whisper.Encoder]*encoderLane // one per model

	sizes prometheus.Observer // windows per batch (nil: not recorded)
}

// encoderLane is one model's encoder: whether a batch is running and what waits for the next.
// A lane exists only while a batch runs or waits: an idle lane is deleted, so the map never
// keeps a retired model (its encoder) alive after a hot swap.
type encoderLane struct {
	busy    bool
	pending []*encodeReq
}

// arenas are the batches' scratch contexts, shared by every model's lane.
var arenas = sync.Pool{New: func() any { return tensor.NewCtx() }}

type encodeReq struct {
	mel  *tensor.T
	out  *tensor.T     // the features, a copy the requester owns
	done chan struct{} // closed when out is set, or when the requester must run the next batch
	lead bool          // set before done closes: run the pending batch yourself
}

func newEncodeBatcher(s *scheduler, maxBatch int) *encodeBatcher {
	return &encodeBatcher{sched: s, maxBatch: max(maxBatch, 1), lanes: map[*whisper.Encoder]*encoderLane{}}
}

// encoder returns the stream session's Encode function for model e (asr/stream.Config.Encode):
// it must be called from within a compute slot (a session's Process runs in one).
func (b *encodeBatcher) encoder(e *whisper.Encoder) func(mel *tensor.T) *tensor.T {
	return func(mel *tensor.T) *tensor.T { return b.encode(e, mel) }
}

func (b *encodeBatcher) encode(e *whisper.Encoder, mel *tensor.T) *tensor.T {
	r := &encodeReq{mel: mel, done: make(chan struct{})}
	b.mu.Lock()
	lane := b.lanes[e]
	if lane == nil {
		lane = &encoderLane{}
		b.lanes[e] = lane
	}
	lane.pending = append(lane.pending, r)
	if lane.busy {
		b.mu.Unlock()
		b.sched.yield(func() { <-r.done }) // a batch runs: wait for it, or to lead the next
		if !r.lead {
			return r.out
		}
		b.mu.Lock()
	}
	// Lead: take what is pending (this request included) and encode it.
	lane.busy = true
	batch := lane.pending
	if len(batch) > b.maxBatch {
		batch = batch[:b.maxBatch]
	}
	lane.pending = append([]*encodeReq(nil), lane.pending[len(batch):]...)
	b.mu.Unlock()

	ctx := arenas.Get().(*tensor.Ctx)
	b.run(e, ctx, batch)
	arenas.Put(ctx)

	b.mu.Lock()
	if len(lane.pending) > 0 { // hand the lane to the oldest waiter
		next := lane.pending[0]
		next.lead = true
		close(next.done)
	} else {
		delete(b.lanes, e)
	}
	b.mu.Unlock()
	return r.out
}

// run encodes batch and delivers every window's features, waking the requesters that wait
// (batch[0] is the leader, which runs it).
func (b *encodeBatcher) run(e *whisper.Encoder, ctx *tensor.Ctx, batch []*encodeReq) {
	defer ctx.Reset()
	mels := make([]*tensor.T, len(batch))
	for i, r := range batch {
		mels[i] = r.mel
	}
	outs := e.ForwardBatch(ctx, mels)
	if b.sizes != nil {
		b.sizes.Observe(float64(len(batch)))
	}
	for i, r := range batch {
		r.out = outs[i].Clone()
		if i > 0 {
			close(r.done)
		}
	}
}
