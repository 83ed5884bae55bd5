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
}

// Server serves transcription over HTTP. Create it with New, then either call Serve, which
// owns listening and shutdown, or mount Handler in a server of your own.
type Server struct {
	cfg     Config // defaults applied
	log     *slog.Logger
	models  Models
	gate    *gate
	metrics *metrics
	handler http.Handler

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
	if len(models.List()) == 0 {
		return nil, errors.New("server: the model source lists no models")
	}
	g := newGate(cfg.MaxConcurrent)
	s := &Server{
		cfg:     cfg,
		log:     cfg.Logger,
		models:  models,
		gate:    g,
		metrics: newMetrics(models, g),

		readTimeout: readTimeout,
	}
	if _, ok := models.(Warmer); !ok {
		s.ready.Store(true)
	}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's HTTP handler. Used on its own (without Serve) it serves
// requests but never warms the models, so /readyz stays 503 for a source that needs a
// warm-up, and it never drains.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve listens on Config.Addr and serves until ctx is done, then shuts down (see
// ServeListener).
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// errShutdown is the cancellation cause of requests still running when the grace ends.
var errShutdown = errors.New("server shut down")

// ServeListener serves on ln (which it closes) until ctx is done and then shuts down in
// this order: /healthz and /readyz answer 503 and new API requests are refused with 503;
// admitted requests get ShutdownGrace to finish, after which their contexts are cancelled;
// http.Server.Shutdown closes the listener and idle connections, falling back to Close.
// It returns nil after a shutdown (an error if the server failed or did not stop cleanly),
// and only once no handler is left running, so models can be unloaded after it.
//
// It also warms the models up in the background when they implement Warmer; a failed
// warm-up shuts the server down and is returned.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	if !s.serving.CompareAndSwap(false, true) {
		ln.Close()
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
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String(), "max_concurrent", s.cfg.MaxConcurrent)

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
				s.ready.Store(true)
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
		case serr := <-served: // the listener failed: stop everything at once
			s.ready.Store(false)
			s.gate.close()
			cancelWarm()
			cancelWork(errShutdown)
			hs.Close()
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
	// Nothing may use a model once Serve has returned, the warm-up included.
	select {
	case <-warmDone:
	case <-time.After(closeTimeout):
		err = errors.Join(err, errors.New("server: warm-up still running after shutdown"))
	}
	return err
}

// shutdown drains and stops hs; see ServeListener for the order.
func (s *Server) shutdown(hs *http.Server, served <-chan error, cancelWork context.CancelCauseFunc) error {
	s.ready.Store(false)
	idle := s.gate.close()
	hs.SetKeepAlivesEnabled(false) // clients reconnect, and so find another replica
	s.log.Info("shutting down: draining", "inflight", s.gate.inflight(), "grace", s.cfg.ShutdownGrace)

	grace := time.NewTimer(s.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-idle:
	case <-grace.C:
		s.log.Warn("shutting down: grace period over, cancelling requests", "inflight", s.gate.inflight())
	}
	cancelWork(errShutdown)

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
		return nil
	case <-t.C:
		return fmt.Errorf("server: %d requests still running after shutdown", s.gate.inflight())
	}
}
