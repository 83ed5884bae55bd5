package server

import (
	"context"

	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chorus-asr/chorus/asr"
	asrmetrics "github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/experts"
	"github.com/chorus-asr/chorus/experts/moe"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// experiment is a running live A/B experiment: immutable once made, except for the per-arm
// figures, which have their own locks. The server holds the running one behind an atomic
// pointer, so assigning a stream never waits for an admin call.
type experiment struct {
	spec    *chorusv1.Experiment
	started time.Time
	arms    []*arm
	total   float64 // sum of the weights

	mu  sync.Mutex // guards rng
	rng *rand.Rand
}

// arm is one arm of an experiment and its figures so far.
type arm struct {
	exp     *experiment
	name    string
	model   string
	variant string
	choice  asr.RoutingChoice
	weight  float64

	streams, active atomic.Int64

	mu           sync.Mutex // guards the fields below
	audioS       float64
	computeS     float64
	usedSum      float64
	usedN        int
	finals       int64
	latencies    []float64 // the most recent final latencies, seconds (a ring of maxLatencies)
	next         int
	shadowN      int64
	shadowErrors int
	shadowWords  int
	usage        experts.Aggregate // pathways of the arm's finals (routed arms)
}

// maxLatencies is how many recent final latencies an arm keeps for its percentiles.
const maxLatencies = 1024

// experiments owns the running experiment and the per-arm metrics.
type experiments struct {
	chorusv1.UnimplementedExperimentsServer
	s   *Server
	cur atomic.Pointer[experiment]

	mu sync.Mutex // serialises Set and Stop

	streams  *prometheus.CounterVec   // experiment, arm
	rtf      *prometheus.HistogramVec // experiment, arm
	latency  *prometheus.HistogramVec // experiment, arm
	used     *prometheus.HistogramVec // experiment, arm
	shErrors *prometheus.CounterVec   // experiment, arm
	shWords  *prometheus.CounterVec   // experiment, arm
}

func newExperiments(s *Server, reg prometheus.Registerer) *experiments {
	l := []string{"experiment", "arm"}
	e := &experiments{
		s: s,
		streams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_arm_streams_total", Help: "Streams assigned to each arm of the live experiment.",
		}, l),
		rtf: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chorus_arm_real_time_factor", Help: "Per finished stream of an arm, recognition compute time over audio time.",
			Buckets: []float64{.01, .02, .05, .1, .2, .3, .5, .75, 1, 1.5, 2},
		}, l),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chorus_arm_final_latency_seconds", Help: "From the end of speech to the final result, per arm.",
			Buckets: latencyBuckets,
		}, l),
		used: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "chorus_arm_experts_used_ratio", Help: "Per finished stream of an arm, the share of the expert work that ran (1 for dense).",
			Buckets: []float64{.0625, .125, .1875, .25, .375, .5, .75, 1},
		}, l),
		shErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_arm_shadow_word_errors_total", Help: "Word errors of an arm's finals against the dense decoding of the same audio (shadow mode).",
		}, l),
		shWords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "chorus_arm_shadow_words_total", Help: "Words of the dense shadow decodings an arm was compared with; WER = errors / words.",
		}, l),
	}
	reg.MustRegister(e.streams, e.rtf, e.latency, e.used, e.shErrors, e.shWords)
	return e
}

// Set validates spec and makes it the running experiment.
func (e *experiments) Set(ctx context.Context, spec *chorusv1.Experiment) (*chorusv1.ExperimentStatus, error) {
	x, err := e.build(ctx, spec)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cur.Store(x)
	e.s.log.Info("experiment started", "experiment", spec.GetName(), "arms", len(x.arms), "shadow_fraction", spec.GetShadowFraction())
	return x.status(true), nil
}

// Get reports the running experiment.
func (e *experiments) Get(context.Context, *chorusv1.GetExperimentRequest) (*chorusv1.ExperimentStatus, error) {
	x := e.cur.Load()
	if x == nil {
		return &chorusv1.ExperimentStatus{Experiment: &chorusv1.Experiment{}}, nil
	}
	return x.status(true), nil
}

// Stop ends the running experiment.
func (e *experiments) Stop(context.Context, *chorusv1.StopExperimentRequest) (*chorusv1.ExperimentStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	x := e.cur.Swap(nil)
	if x == nil {
		return nil, status.Error(codes.NotFound, "no experiment is running")
	}
	e.s.log.Info("experiment stopped", "experiment", x.spec.GetName())
	return x.status(false), nil
}

// build checks spec and prepares its arms. Each arm's model must be servable and its router
// one the model honours now, so a typo is refused here rather than failing streams later.
func (e *experiments) build(ctx context.Context, spec *chorusv1.Experiment) (*experiment, error) {
	bad := func(format string, a ...any) (*experiment, error) {
		return nil, status.Errorf(codes.InvalidArgument, "experiment: "+format, a...)
	}
	if spec.GetName() == "" || len(spec.GetName()) > 128 {
		return bad("name must be 1 to 128 bytes")
	}
	if len(spec.GetArms()) == 0 || len(spec.GetArms()) > 32 {
		return bad("want 1 to 32 arms, got %d", len(spec.GetArms()))
	}
	if f := spec.GetShadowFraction(); math.IsNaN(f) || f < 0 || f > 1 {
		return bad("shadow_fraction %g outside [0, 1]", f)
	}
	seed := spec.GetSeed()
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	x := &experiment{spec: proto.Clone(spec).(*chorusv1.Experiment), started: time.Now(), rng: rand.New(rand.NewPCG(seed, 0x5eed))}
	seen := map[string]bool{}
	for i, a := range spec.GetArms() {
		name := a.GetName()
		switch {
		case name == "" || len(name) > 64:
			return bad("arm %d: name must be 1 to 64 bytes", i)
		case seen[name]:
			return bad("arm %q named twice", name)
		case math.IsNaN(a.GetWeight()) || math.IsInf(a.GetWeight(), 0) || a.GetWeight() < 0:
			return bad("arm %q: weight %g must be finite and not negative", name, a.GetWeight())
		case a.GetRouting().GetRouter() == "experiment":
			return bad("arm %q: router \"experiment\" is what assigns arms; name a router", name)
		}
		seen[name] = true
		choice, err := routingChoice(a.GetRouting())
		if err != nil {
			return bad("arm %q: %v", name, status.Convert(err).Message())
		}
		lease, err := e.s.acquire(ctx, a.GetModel(), a.GetVariant())
		if err != nil {
			return bad("arm %q: %v", name, status.Convert(err).Message())
		}
		_, rerr := lease.Variant.Routing(choice)
		lease.Release()
		if rerr != nil {
			return bad("arm %q: %v", name, rerr)
		}
		x.arms = append(x.arms, &arm{exp: x, name: name, model: a.GetModel(), variant: a.GetVariant(), choice: choice, weight: a.GetWeight()})
		x.total += a.GetWeight()
	}
	if !(x.total > 0) {
		return bad("the arms' weights sum to %g; at least one must be positive", x.total)
	}
	return x, nil
}

// assign picks an arm for a new stream, in proportion to the weights, and whether the stream
// is shadow-decoded. It returns nil when no experiment runs.
func (e *experiments) assign() (a *arm, shadow bool) {
	x := e.cur.Load()
	if x == nil {
		return nil, false
	}
	x.mu.Lock()
	r := x.rng.Float64() * x.total
	s := x.rng.Float64()
	x.mu.Unlock()
	a = x.arms[len(x.arms)-1]
	for _, c := range x.arms {
		if r < c.weight {
			a = c
			break
		}
		r -= c.weight
	}
	a.streams.Add(1)
	e.streams.WithLabelValues(x.spec.GetName(), a.name).Inc()
	return a, !a.choice.Dense() && s < x.spec.GetShadowFraction()
}

// labels are an arm's metric labels.
func (a *arm) labels() []string { return []string{a.exp.spec.GetName(), a.name} }

func (a *arm) final(e *experiments, latency float64) {
	a.mu.Lock()
	a.finals++
	if len(a.latencies) < maxLatencies {
		a.latencies = append(a.latencies, latency)
	} else {
		a.latencies[a.next] = latency
		a.next = (a.next + 1) % maxLatencies
	}
	a.mu.Unlock()
	e.latency.WithLabelValues(a.labels()...).Observe(latency)
}

func (a *arm) done(e *experiments, audioS, computeS float64, rt whisper.Routing) {
	used := 1.0
	if r, ok := rt.(*moe.Routing); ok {
		if u, all := r.Work(); all > 0 {
			used = float64(u) / float64(all)
		}
	}
	a.mu.Lock()
	a.audioS += audioS
	a.computeS += computeS
	a.usedSum += used
	a.usedN++
	a.mu.Unlock()
	if audioS > 0 {
		e.rtf.WithLabelValues(a.labels()...).Observe(computeS / audioS)
	}
	e.used.WithLabelValues(a.labels()...).Observe(used)
}

// addPathway adds a final's pathway to the arm's expert-use figures. A pathway whose layout
// differs from the first one's (an arm pinned to no variant, across a swap to a variant with
// another split) is left out.
func (a *arm) addPathway(p *experts.Pathway) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_ = a.usage.Add(p)
}

func (a *arm) shadow(e *experiments, c asrmetrics.Counts) {
	a.mu.Lock()
	a.shadowN++
	a.shadowErrors += c.Errors()
	a.shadowWords += c.Ref
	a.mu.Unlock()
	e.shErrors.WithLabelValues(a.labels()...).Add(float64(c.Errors()))
	e.shWords.WithLabelValues(a.labels()...).Add(float64(c.Ref))
}

// status is the experiment's figures now.
func (x *experiment) status(running bool) *chorusv1.ExperimentStatus {
	st := &chorusv1.ExperimentStatus{Experiment: x.spec, Running: running, Started: timestamppb.New(x.started)}
	for _, a := range x.arms {
		a.mu.Lock()
		as := &chorusv1.ArmStats{
			Arm: a.name, Streams: a.streams.Load(), Active: a.active.Load(),
			AudioSeconds: a.audioS, ComputeSeconds: a.computeS, Finals: a.finals, ShadowUtterances: a.shadowN,
		}
		if a.audioS > 0 {
			as.RealTimeFactor = a.computeS / a.audioS
		}
		if a.usedN > 0 {
			as.ExpertsUsed = a.usedSum / float64(a.usedN)
		}
		if a.shadowWords > 0 {
			as.ShadowWer = float64(a.shadowErrors) / float64(a.shadowWords)
		}
		for i := range a.usage.Layers {
			l := &a.usage.Layers[i]
			as.Layers = append(as.Layers, &chorusv1.LayerUsage{Name: l.Name, Tokens: l.Tokens, EntropyBits: l.Entropy(), Utilisation: l.Utilisation()})
		}
		lat := slices.Clone(a.latencies)
		a.mu.Unlock()
		slices.Sort(lat)
		as.FinalLatencyP50Seconds, as.FinalLatencyP95Seconds = percentile(lat, 50), percentile(lat, 95)
		st.Arms = append(st.Arms, as)
	}
	return st
}

// percentile is the nearest-rank p-th percentile of sorted xs (0 for none).
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(xs)))) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// errNoExperiment is the answer to routing.router "experiment" when none runs.
var errNoExperiment = status.Error(codes.FailedPrecondition, "routing.router \"experiment\": no experiment is running; name a router (dense, random, mlp, oracle, gate)")

// joinExperiment assigns cfg's stream an arm when an experiment runs and the stream did not
// name a router (or asked for "experiment"), rewriting cfg to the arm's model, variant and
// routing.
func (s *Server) joinExperiment(cfg *streamConfig) (*arm, bool, error) {
	asked := cfg.routing.Router == "experiment"
	if !asked && cfg.routing.Router != "" {
		return nil, false, nil
	}
	a, shadow := s.experiments.assign()
	if a == nil {
		if asked {
			return nil, false, errNoExperiment
		}
		return nil, false, nil
	}
	if a.model != "" {
		cfg.model = a.model
	}
	if a.variant != "" {
		cfg.variant = a.variant
	}
	pathway := cfg.routing.Pathway
	cfg.routing = a.choice
	cfg.routing.Pathway = pathway
	return a, shadow, nil
}

// shadowDecode decodes a final's audio again with the dense routing of the same variant and
// scores the arm's text against it. It runs in a compute slot like the stream's own work.
func (w *streamWorker) shadowDecode(ctx context.Context, start, end time.Duration, text string) error {
	samples := w.recent.span(start, end)
	if len(samples) == 0 {
		return nil
	}
	var dense *transcribe.Result
	var err error
	if serr := w.s.sched.do(ctx, func() {
		if w.shadowT == nil {
			if w.shadowT, err = w.variant.NewTranscriber(); err != nil {
				return
			}
		}
		o := transcribeOptions(w.cfg.language, "", w.s.cfg.Stream.BeamSize) // as the arm's final decoded
		dense, err = w.shadowT.Transcribe(ctx, samples, o)
	}); serr != nil {
		return serr
	}
	if err != nil {
		return fmt.Errorf("shadow decode: %w", err)
	}
	w.arm.shadow(w.s.experiments, asrmetrics.WordCounts(dense.Text, text))
	return nil
}

// recentAudio keeps the last maxRecent of a stream's samples, for shadow decoding.
type recentAudio struct {
	buf   []float32
	start int64 // stream sample index of buf[0]
}

// maxRecent bounds the audio kept: one Whisper window plus the endpoint's slack.
const maxRecent = 32 * samplesPerSecond

func (r *recentAudio) add(x []float32) {
	r.buf = append(r.buf, x...)
	if over := len(r.buf) - maxRecent; over > 0 {
		r.buf = append(r.buf[:0], r.buf[over:]...)
		r.start += int64(over)
	}
}

// span returns the samples from start to end audio time that are still kept.
func (r *recentAudio) span(start, end time.Duration) []float32 {
	a := int64(start.Seconds()*samplesPerSecond) - r.start
	b := int64(end.Seconds()*samplesPerSecond) - r.start
	a, b = max(a, 0), min(b, int64(len(r.buf)))
	if a >= b {
		return nil
	}
	return slices.Clone(r.buf[a:b])
}
