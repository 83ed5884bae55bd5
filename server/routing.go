package server

import (
	"fmt"
	"math"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// routingChoice checks a stream's RoutingConfig as far as it can without the model: a
// known router name, a fraction in (0, 1] or a positive expert count for the routers that
// need one, a known mode. Whether the pinned model can honour the choice (a dense model, k
// above its expert count) is checked when the session is built (stream.New wraps
// asr.ErrRouting), and refused with INVALID_ARGUMENT there too.
func routingChoice(r *chorusv1.RoutingConfig) (asr.RoutingChoice, error) {
	var c asr.RoutingChoice
	if r == nil {
		return c, nil
	}
	c.Router, c.Seed, c.Pathway = r.GetRouter(), r.GetSeed(), r.GetReturnPathway()
	c.Heads, c.HeadRouter = int(r.GetHeads()), r.GetHeadRouter()
	if c.Heads < 0 || c.Heads > 64 {
		return c, status.Errorf(codes.InvalidArgument, "routing.heads %d outside [0, 64]", c.Heads)
	}
	switch c.Router {
	case "", "dense", "random", "mlp", "oracle", "gate":
	case "experiment": // the live experiment assigns the routing (joinExperiment)
		return c, nil
	default:
		return c, status.Errorf(codes.InvalidArgument, "routing.router %q: unknown router; want dense, random, mlp, oracle or gate", c.Router)
	}
	switch r.GetMode() {
	case chorusv1.RoutingConfig_MODE_UNSPECIFIED, chorusv1.RoutingConfig_PER_TOKEN:
	case chorusv1.RoutingConfig_PER_REQUEST:
		c.PerRequest = true
	default:
		return c, status.Errorf(codes.InvalidArgument, "routing.mode %d: unknown mode", r.GetMode())
	}
	f := float64(r.GetFraction())
	switch {
	case math.IsNaN(f) || f < 0 || f > 1:
		return c, status.Errorf(codes.InvalidArgument, "routing.fraction %g outside (0, 1]", f)
	case r.GetExperts() < 0:
		return c, status.Errorf(codes.InvalidArgument, "routing.experts %d is negative", r.GetExperts())
	case r.GetExperts() > 0:
		c.K = int(r.GetExperts())
	default:
		c.Fraction = f
	}
	if !c.Dense() && c.K == 0 && c.Fraction == 0 {
		return c, status.Errorf(codes.InvalidArgument, "routing.router %q needs routing.fraction in (0, 1] or routing.experts > 0", c.Router)
	}
	return c, nil
}

// routerName is what served_by.router and the metrics' router label report for a stream's
// routing: "dense" for the dense model, else the router's name ("mlp:4", "random:4/request/pinned").
func routerName(rt whisper.Routing) string {
	if r, ok := rt.(*moe.Routing); ok {
		return r.Name()
	}
	return "dense"
}

// servedByRouting is servedBy with the stream's router.
func servedByRouting(mi ModelInfo, rt whisper.Routing) *chorusv1.ServedBy {
	sb := servedBy(mi)
	sb.Router = routerName(rt)
	return sb
}

// pathwayProto is the wire form of a pathway (nil for nil).
func pathwayProto(p *experts.Pathway) *chorusv1.Pathway {
	if p == nil {
		return nil
	}
	out := &chorusv1.Pathway{}
	for i := range p.Layers {
		lp := &p.Layers[i]
		out.Layers = append(out.Layers, &chorusv1.Pathway_Layer{Name: lp.Name, Experts: int32(lp.E), Tokens: int32(lp.Tokens), Masks: lp.Packed()})
	}
	return out
}

// finalPathway is the pathway of the utterance just finalized when the stream asked for it
// (routing.return_pathway on a MoE variant): everything its routing recorded since the
// previous final. Nil otherwise.
//
// The pathway is also recorded, for the export and the arm's figures, when the server
// exports pathways or the stream is in an experiment arm: then it goes to the pathway log
// (tagged with the stream's model, variant, router, arm and time) and into the arm's
// aggregate, whether or not the client asked for it.
func (w *streamWorker) finalPathway(utterance int) *chorusv1.Pathway {
	rt, ok := w.sess.Routing().(*moe.Routing)
	if !ok {
		return nil
	}
	p := rt.TakePathway()
	if p == nil {
		return nil
	}
	var out *chorusv1.Pathway
	if w.cfg.returnPathway {
		out = pathwayProto(p)
	}
	if w.arm != nil {
		w.arm.addPathway(p)
	}
	if pl := w.s.pathways; pl != nil {
		p.Request = fmt.Sprintf("%s#%d/%d", w.cfg.requestID, w.serial, utterance)
		p.Tags = map[string]string{
			"model": w.served.GetModel(), "variant": w.served.GetVariant(), "router": w.served.GetRouter(),
			"time": time.Now().UTC().Format(time.RFC3339Nano),
		}
		if w.arm != nil {
			p.Tags["experiment"], p.Tags["arm"] = w.arm.exp.spec.GetName(), w.arm.name
		}
		pl.add(p) // the log's goroutine owns p from here
	}
	return out
}

// routingMetrics are the per-router figures of routed streams: time inside the
// feed-forward blocks and the share of the expert work that ran.
type routingMetrics struct {
	ffn  *prometheus.CounterVec   // model, router
	used *prometheus.HistogramVec // model, router
}

func newRoutingMetrics(reg prometheus.Registerer) *routingMetrics {
	m := &routingMetrics{
		ffn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_ffn_seconds_total",
			Help: "Compute time inside feed-forward (expert) blocks of streams on MoE variants, by model and router.",
		}, []string{"model", "router"}),
		used: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "chorus_experts_used_ratio",
			Help:    "Per stream on a MoE variant, the share of the feed-forward expert work that ran (k/E for a top-k router, 1 for dense), by model and router.",
			Buckets: []float64{.0625, .125, .1875, .25, .375, .5, .75, 1},
		}, []string{"model", "router"}),
	}
	reg.MustRegister(m.ffn, m.used)
	return m
}

// streamDone records a finished stream's routing (nothing for the dense model's nil routing).
func (m *routingMetrics) streamDone(mi ModelInfo, rt whisper.Routing) {
	r, ok := rt.(*moe.Routing)
	if !ok {
		return
	}
	used, all := r.Work()
	m.ffn.WithLabelValues(mi.Name, r.Name()).Add(r.FFNTime().Seconds())
	if all > 0 {
		m.used.WithLabelValues(mi.Name, r.Name()).Observe(float64(used) / float64(all))
	}
}
