package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/stream"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// Defaults for the zero fields of Config.
const (
	DefaultAddr = ":8080"
	// DefaultMaxAudio bounds an upload's duration: the decoded 16 kHz samples of 10 minutes
	// are 38 MB, and the transcription takes minutes on a CPU.
	DefaultMaxAudio = 10 * time.Minute
	// DefaultMaxBodyBytes is OpenAI's upload limit for /v1/audio/transcriptions (25 MB), so
	// clients written against it split files the same way here.
	DefaultMaxBodyBytes = 25 << 20
	// DefaultShutdownGrace leaves room inside Kubernetes' default 30 s termination grace
	// period for the HTTP shutdown that follows the drain.
	DefaultShutdownGrace = 25 * time.Second
)

// HTTP server timeouts. There is no write timeout: a long transcription would trip it
// before the response is even started.
const (
	readHeaderTimeout = 10 * time.Second
	// readTimeout bounds the whole upload, so a client trickling bytes cannot hold an
	// admission slot forever: 25 MB at about 1 Mbit/s. net/http lifts it once the body has
	// been read to its end, so it does not limit the transcription that follows.
	readTimeout = 5 * time.Minute
	idleTimeout = 2 * time.Minute
	// closeTimeout bounds each step after the grace period: http.Server.Shutdown, then the
	// wait for cancelled handlers to return.
	closeTimeout = 5 * time.Second
)

// Config configures a Server. Set either Model (one variant) or Models (a model source such
// as the registry); zero fields take the defaults above.
type Config struct {
	// Addr is the TCP address Serve listens on.
	Addr string
	// Model is served under ModelName (default: the variant folder's name). Ignored when
	// Models is set.
	Model     *asr.Variant
	ModelName string
	// Models is the source of live models; nil serves Model with NewSingle.
	Models Models
	// MaxConcurrent is how many transcriptions run at once; more are answered 429 at once.
	// The default, GOMAXPROCS, keeps every core busy: the kernels already use all cores,
	// but decoding has serial stretches that a second request fills.
	MaxConcurrent int
	// MaxAudio is the longest audio accepted (413 beyond).
	MaxAudio time.Duration
	// MaxBodyBytes is the largest request body accepted (413 beyond).
	MaxBodyBytes int64
	// ShutdownGrace is how long admitted requests may run on after shutdown begins before
	// they are cancelled.
	ShutdownGrace time.Duration
	// Logger receives the server's logs; nil is slog.Default().
	Logger *slog.Logger

	// GRPCAddr is the TCP address Serve listens on for gRPC (Recognizer, Models, health,
	// reflection); empty serves HTTP only.
	GRPCAddr string
	// MaxStreams is how many streams may be open at once; more are refused with
	// RESOURCE_EXHAUSTED at once.
	MaxStreams int
	// MaxStreamAudio is the longest audio one stream may carry (OUT_OF_RANGE beyond).
	MaxStreamAudio time.Duration
	// MaxMessageBytes is the largest gRPC message accepted (RESOURCE_EXHAUSTED beyond).
	MaxMessageBytes int
	// ComputeSlots is how many stream decoding jobs run at once; streams queue for them in
	// arrival order, so compute is shared fairly.
	ComputeSlots int
	// EncoderBatch is the most streams' windows encoded in one batch (batch.go); 0 means
	// DefaultEncoderBatch, 1 turns batching off.
	EncoderBatch int
	// Stream is the base configuration of every stream's session; requests set its
	// per-stream fields (language, prompt, interim results).
	Stream stream.Config
	// Admin serves the Models admin API (usually the registry); nil leaves it unregistered.
	Admin chorusv1.ModelsServer
	// AdminToken is the bearer token admin calls must carry; empty refuses every admin call.
	AdminToken string
	// TLSCertFile and TLSKeyFile, when set, serve both gRPC and HTTP over TLS.
	TLSCertFile, TLSKeyFile string
	// PathwayLog is a directory to export the activation pathway of every final of a routed
	// stream to, as zstd-compressed JSON lines (see pathwaylog.go); empty exports nothing.
	PathwayLog string
	// Metrics is the Prometheus registry /metrics serves, shared with collaborators such as
	// the model registry; nil gives the server one of its own.
	Metrics *prometheus.Registry

	// WebRTC configures WebRTC ingest (WHIP at /v1/whip, used by the page at /): the peer
	// limit, ICE ports, addresses and interfaces, and connection timeouts. Its zero value
	// serves it with the defaults in webrtc.go; every peer also counts against MaxStreams.
	WebRTC WebRTCConfig
}

// Defaults of the streaming limits.
const (
	// DefaultMaxStreams is well above what two cores serve in real time with the default
	// model (docs/BENCHMARKS.md), so the limit guards memory, not latency.
	DefaultMaxStreams = 64
	// DefaultMaxStreamAudio is one hour: longer sessions should reconnect, so that a
	// replica can drain within a reasonable time.
	DefaultMaxStreamAudio = time.Hour
	// DefaultEncoderBatch bounds a batch of concurrent streams' encoder windows: beyond 8 the
	// measured gain per window flattens (docs/BENCHMARKS.md) while the batch's latency grows.
	DefaultEncoderBatch = 8
	// DefaultMaxMessageBytes is gRPC's own default receive limit: 4 MiB is 2 minutes of
	// 16-kHz LINEAR16, far more than a streaming chunk needs.
	DefaultMaxMessageBytes = 4 << 20
)

// Server serves transcription over HTTP. Create it with New, then either call Serve, which
// owns listening and shutdown, or mount Handler in a server of your own.
type Server struct {
	cfg     Config // defaults applied
	log     *slog.Logger
	models  Models
	gate    *gate // admission of whole-file transcriptions (HTTP and gRPC Recognize)
	streams *gate // admission of streams
	sched   *scheduler
	drain   chan struct{} // closed when shutdown begins: open streams finalize and end
	metrics *metrics
	handler http.Handler
	grpc    *grpc.Server
	health  *health.Server
	rtc     *rtcIngest // WebRTC peers (webrtc.go)

	experiments  *experiments   // the live A/B experiment (experiment.go)
	batcher      *encodeBatcher // nil: every stream encodes alone
	pathways     *pathwayLog    // the pathway export (nil: none); closed when Serve returns
	streamSerial atomic.Uint64  // streams opened, numbering them

	ready   atomic.Bool // the models are warmed up; readiness probes pass
	serving atomic.Bool // Serve was called; it may be called once

	readTimeout time.Duration // http.Server.ReadTimeout; a field so tests can shorten it
}

// New checks cfg, applies its defaults and builds the server. It does not listen.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.MaxConcurrent < 0:
		return nil, fmt.Errorf("server: negative MaxConcurrent %d", cfg.MaxConcurrent)
	case cfg.MaxAudio < 0:
		return nil, fmt.Errorf("server: negative MaxAudio %v", cfg.MaxAudio)
	case cfg.MaxBodyBytes < 0:
		return nil, fmt.Errorf("server: negative MaxBodyBytes %d", cfg.MaxBodyBytes)
	case cfg.ShutdownGrace < 0:
		return nil, fmt.Errorf("server: negative ShutdownGrace %v", cfg.ShutdownGrace)
	case cfg.MaxStreams < 0 || cfg.MaxStreamAudio < 0 || cfg.MaxMessageBytes < 0 || cfg.ComputeSlots < 0 || cfg.EncoderBatch < 0:
		return nil, errors.New("server: negative stream limit")
	case cfg.Stream.BeamSize < 0 || cfg.Stream.BeamSize > 16:
		return nil, fmt.Errorf("server: beam size %d outside [0, 16]", cfg.Stream.BeamSize)
	case (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == ""):
		return nil, errors.New("server: TLS needs both a certificate and a key file")
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.MaxStreamAudio == 0 {
		cfg.MaxStreamAudio = DefaultMaxStreamAudio
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.ComputeSlots == 0 {
		cfg.ComputeSlots = runtime.GOMAXPROCS(0)
	}
	if cfg.EncoderBatch == 0 {
		cfg.EncoderBatch = DefaultEncoderBatch
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxAudio == 0 {
		cfg.MaxAudio = DefaultMaxAudio
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ShutdownGrace == 0 {
		cfg.ShutdownGrace = DefaultShutdownGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	models := cfg.Models
	if models == nil {
		if cfg.Model == nil {
			return nil, errors.New("server: no model to serve (set Config.Model or Config.Models)")
		}
		single, err := NewSingle(cfg.ModelName, cfg.Model)
		if err != nil {
			return nil, err
		}
		models = single
	}
	if _, warms := models.(Warmer); !warms && len(models.List()) == 0 { // a Warmer loads its models in Warm
		return nil, errors.New("server: the model source lists no models")
	}
	g := newGate(cfg.MaxConcurrent)
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		models:  models,
		gate:    g,
		streams: newGate(cfg.MaxStreams),
		sched:   newScheduler(cfg.ComputeSlots),
		drain:   make(chan struct{}),
		metrics: newMetrics(models, g, cfg.Metrics),

		readTimeout: readTimeout,
	}
	rtc, err := newRTCIngest(cfg.WebRTC, cfg.Logger)
	if err != nil {
		return nil, err
	}
	s.rtc = rtc
	s.experiments = newExperiments(s, s.metrics.reg)
	if cfg.EncoderBatch > 1 {
		s.batcher = newEncodeBatcher(s.sched, cfg.EncoderBatch)
		h := prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "chorus_encoder_batch_windows", Help: "Streams' encoder windows encoded together per batch.",
			Buckets: []float64{1, 2, 3, 4, 6, 8, 12, 16},
		})
		s.metrics.reg.MustRegister(h)
		s.batcher.sizes = h
	}
	if cfg.PathwayLog != "" {
		if s.pathways, err = newPathwayLog(cfg.PathwayLog, cfg.Logger, s.metrics.reg); err != nil {
			return nil, err
		}
	}
	s.handler = s.routes()
	gs, hs, err := s.newGRPC()
	if err != nil {
		return nil, err
	}
	s.grpc, s.health = gs, hs
	if _, ok := models.(Warmer); !ok {
		s.markReady()
	}
	return s, nil
}

// Handler returns the server's HTTP handler. Used on its own (without Serve) it serves
// requests but never warms the models, so /readyz stays 503 for a source that needs a
// warm-up, and it never drains.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on Config.Addr (HTTP) and Config.GRPCAddr (gRPC, when set) and serves until
// ctx is done, then shuts down (see ServeListeners).
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	var gln net.Listener
	if s.cfg.GRPCAddr != "" {
		if gln, err = net.Listen("tcp", s.cfg.GRPCAddr); err != nil {
			ln.Close()
			return fmt.Errorf("server: %w", err)
		}
	}
	return s.ServeListeners(ctx, ln, gln)
}

// ServeListener serves HTTP only on ln; see ServeListeners.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	return s.ServeListeners(ctx, ln, nil)
}

// markReady flips readiness on: /readyz and the gRPC health service.
func (s *Server) markReady() {
	s.ready.Store(true)
	s.setHealth(true)
}

// markNotReady flips readiness off, first of all on shutdown.
func (s *Server) markNotReady() {
	s.ready.Store(false)
	s.setHealth(false)
}

// errShutdown is the cancellation cause of requests still running when the grace ends.
var errShutdown = errors.New("server shut down")

// ServeListeners serves HTTP on ln and gRPC on gln (nil: none), closing both, until ctx is
// done, and then shuts down in this order (STYLE: drain in a fixed order): health goes
// NOT_SERVING (/healthz, /readyz and the gRPC health service); new requests and streams are
// refused (503, UNAVAILABLE); open streams finalize what they heard, send it, and end with
// UNAVAILABLE so clients reconnect elsewhere; admitted work gets ShutdownGrace to finish,
// after which it is cancelled; grpc.Server.GracefulStop runs, falling back to Stop;
// http.Server.Shutdown closes the listener and idle connections, falling back to Close.
// It returns nil after a shutdown (an error if the server failed or did not stop cleanly),
// and only once no handler is left running, so models can be unloaded after it.
//
// It also warms the models up in the background when they implement Warmer; a failed
// warm-up shuts the server down and is returned.
func (s *Server) ServeListeners(ctx context.Context, ln, gln net.Listener) error {
	if !s.serving.CompareAndSwap(false, true) {
		ln.Close()
		if gln != nil {
			gln.Close()
		}
		return errors.New("server: Serve called twice")
	}
	// Requests run under work, not ctx: they must outlive the shutdown signal by the grace.
	work, cancelWork := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancelWork(errShutdown)
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       s.readTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return work },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// WebRTC peers close when http.Server.Shutdown runs, once the drain is over.
	hs.RegisterOnShutdown(s.rtc.shutdown)
	served := make(chan error, 2) // the first listener to fail, HTTP or gRPC
	go func() {
		if s.cfg.TLSCertFile != "" {
			served <- hs.ServeTLS(ln, s.cfg.TLSCertFile, s.cfg.TLSKeyFile)
			return
		}
		served <- hs.Serve(ln)
	}()
	grpcDone := make(chan struct{})
	if gln != nil {
		go func() {
			defer close(grpcDone)
			if err := s.grpc.Serve(gln); err != nil {
				served <- fmt.Errorf("grpc: %w", err)
			}
		}()
		s.log.Info("listening", "grpc", gln.Addr().String(), "max_streams", s.cfg.MaxStreams, "compute_slots", s.cfg.ComputeSlots)
	} else {
		close(grpcDone)
	}
	s.log.Info("listening", "http", ln.Addr().String(), "max_concurrent", s.cfg.MaxConcurrent)

	// The warm-up runs while the probes already answer (alive, not ready); shutdown stops it
	// at once, since a draining server has no use for it.
	warmCtx, cancelWarm := context.WithCancel(work)
	defer cancelWarm()
	warmed := make(chan error, 1)   // the warm-up's result
	warmDone := make(chan struct{}) // closed once no warm-up is running
	if w, ok := s.models.(Warmer); ok && !s.ready.Load() {
		go func() {
			defer close(warmDone)
			start := time.Now()
			err := w.Warm(warmCtx)
			if err == nil {
				s.markReady()
				s.log.Info("ready", "warmup", time.Since(start).Round(time.Millisecond))
			}
			warmed <- err
		}()
	} else {
		close(warmDone)
	}

	var err error
	for done := false; !done; {
		select {
		case serr := <-served: // a listener failed: stop everything at once
			s.markNotReady()
			s.gate.close()
			s.streams.close()
			cancelWarm()
			cancelWork(errShutdown)
			hs.Close()
			s.rtc.shutdown()
			s.grpc.Stop()
			err = errors.Join(fmt.Errorf("server: %w", serr), s.awaitHandlers())
			served = nil
			done = true
		case werr := <-warmed:
			warmed = nil // a nil channel never fires again
			if werr != nil && warmCtx.Err() == nil {
				err = fmt.Errorf("server: %w", werr)
				s.log.Error("warm-up failed; shutting down", "err", werr)
				done = true
			}
		case <-ctx.Done():
			done = true
		}
	}
	cancelWarm()
	if served != nil {
		err = errors.Join(err, s.shutdown(hs, served, cancelWork))
	}
	<-grpcDone
	if s.pathways != nil {
		s.pathways.close() // the streams are done: flush the export
	}
	// Nothing may use a model once Serve has returned, the warm-up included.
	select {
	case <-warmDone:
	case <-time.After(closeTimeout):
		err = errors.Join(err, errors.New("server: warm-up still running after shutdown"))
	}
	return err
}

// shutdown drains and stops hs and the gRPC server; see ServeListeners for the order.
func (s *Server) shutdown(hs *http.Server, served <-chan error, cancelWork context.CancelCauseFunc) error {
	s.markNotReady()
	idle := s.gate.close()
	streamsIdle := s.streams.close()
	close(s.drain)                 // open streams: finalize, send, end
	hs.SetKeepAlivesEnabled(false) // clients reconnect, and so find another replica
	s.log.Info("shutting down: draining", "inflight", s.gate.inflight(), "streams", s.streams.inflight(), "grace", s.cfg.ShutdownGrace)

	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	for idle != nil || streamsIdle != nil {
		select {
		case <-idle:
			idle = nil
		case <-streamsIdle:
			streamsIdle = nil
		case <-grace.C:
			s.log.Warn("shutting down: grace period over, cancelling requests", "inflight", s.gate.inflight(), "streams", s.streams.inflight())
			idle, streamsIdle = nil, nil
		}
	}
	cancelWork(errShutdown)

	// GracefulStop waits for RPCs still running (a stream whose client ignores the end, a
	// Watch); Stop after closeTimeout cancels them.
	stopped := make(chan struct{})
	force := time.AfterFunc(closeTimeout, s.grpc.Stop)
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	<-stopped
	force.Stop()

	sctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	var errs []error
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("shutting down: closing connections", "err", err)
		if err := hs.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close: %w", err))
		}
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		errs = append(errs, fmt.Errorf("server: %w", err))
	}
	errs = append(errs, s.awaitHandlers())
	s.log.Info("shut down")
	return errors.Join(errs...)
}

// awaitHandlers waits, at most closeTimeout, for the admitted requests to return after their
// contexts were cancelled, so that no handler uses a model once Serve has returned.
func (s *Server) awaitHandlers() error {
	t := time.NewTimer(closeTimeout)
	defer t.Stop()
	select {
	case <-s.gate.close():
	case <-t.C:
		return fmt.Errorf("server: %d requests still running after shutdown", s.gate.inflight())
	}
	select {
	case <-s.streams.close():
		return nil
	case <-t.C:
		return fmt.Errorf("server: %d streams still running after shutdown", s.streams.inflight())
	}
}
