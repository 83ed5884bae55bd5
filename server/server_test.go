package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gatedModels serves the test model, but each Acquire first announces itself on entered and
// then waits until proceed is closed, so a test can hold requests in flight at a known point.
type gatedModels struct {
	*Single
	entered chan struct{}
	proceed chan struct{}
	// leaseOnCancel makes an Acquire whose context ends while it waits return the lease
	// anyway, so the handler goes on to transcribe with a cancelled context.
	leaseOnCancel bool
}

func newGatedModels(t *testing.T) *gatedModels {
	t.Helper()
	single, err := NewSingle(testModelName, testVariant)
	if err != nil {
		t.Fatal(err)
	}
	return &gatedModels{Single: single, entered: make(chan struct{}, 16), proceed: make(chan struct{})}
}

func (g *gatedModels) Acquire(ctx context.Context, name string) (Lease, error) {
	g.entered <- struct{}{}
	select {
	case <-g.proceed:
	case <-ctx.Done():
		if !g.leaseOnCancel {
			return Lease{}, ctx.Err()
		}
	}
	return g.Single.Acquire(ctx, name)
}

// waitEntered waits for one Acquire to start.
func (g *gatedModels) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached Acquire")
	}
}

// shortWAV is just under a second of the reference clip.
func shortWAV() []byte { return refWAV[:16000*2] }

// postAsync posts f in the background; the response arrives on the returned channel.
func postAsync(t *testing.T, client *http.Client, baseURL string, f form) <-chan response {
	t.Helper()
	body, ct := f.encode(t)
	ch := make(chan response, 1)
	go func() {
		req, err := http.NewRequest(http.MethodPost, baseURL+routeTranscriptions, body)
		if err != nil {
			ch <- response{status: -1, body: []byte(err.Error())}
			return
		}
		req.Header.Set("Content-Type", ct)
		res, err := client.Do(req)
		if err != nil {
			ch <- response{status: -1, body: []byte(err.Error())}
			return
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			ch <- response{status: -1, body: []byte(err.Error())}
			return
		}
		ch <- response{res.StatusCode, res.Header, b}
	}()
	return ch
}

func await(t *testing.T, ch <-chan response) response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no response")
		return response{}
	}
}

// scrape reads /metrics into a map from series ("name{label="value",…}") to value.
func scrape(t *testing.T, client *http.Client, baseURL string) map[string]float64 {
	t.Helper()
	r := do(t, client, http.MethodGet, baseURL+routeMetrics, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("/metrics: status %d: %s", r.status, r.body)
	}
	series := map[string]float64{}
	for line := range strings.Lines(string(r.body)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		series[line[:i]] = v
	}
	return series
}

// waitFor polls cond every 10 ms for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestAdmissionLimit(t *testing.T) {
	checkLeaks(t)
	gm := newGatedModels(t)
	_, ts := newTestServer(t, Config{Models: gm, MaxConcurrent: 1})

	first := postAsync(t, ts.Client(), ts.URL, form{file: shortWAV()})
	gm.waitEntered(t)
	if got := scrape(t, ts.Client(), ts.URL)["chorus_inflight_requests"]; got != 1 {
		t.Errorf("chorus_inflight_requests = %g with one request held, want 1", got)
	}

	r := postForm(t, ts.Client(), ts.URL, form{file: shortWAV()})
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("second request: status %d, want 429; body %s", r.status, r.body)
	}
	if ra := r.header.Get("Retry-After"); ra != "1" {
		t.Errorf("Retry-After %q, want 1", ra)
	}
	if e := apiErrorOf(t, r); e.Error.Type != typeRateLimit || deref(e.Error.Code) != "rate_limit_exceeded" {
		t.Errorf("429 error %+v", e.Error)
	}

	close(gm.proceed)
	if r := await(t, first); r.status != http.StatusOK {
		t.Fatalf("held request: status %d, body %s", r.status, r.body)
	}
	// The slot is free again.
	if r := postForm(t, ts.Client(), ts.URL, form{file: shortWAV()}); r.status != http.StatusOK {
		t.Fatalf("after the held request: status %d, body %s", r.status, r.body)
	}
	if got := scrape(t, ts.Client(), ts.URL)["chorus_inflight_requests"]; got != 0 {
		t.Errorf("chorus_inflight_requests = %g when idle, want 0", got)
	}
}

// TestClientCancelAbortsTranscription lets a request reach the transcription only after its
// client has gone: Transcribe must see the cancelled context and stop, and the request is
// recorded as 499.
func TestClientCancelAbortsTranscription(t *testing.T) {
	checkLeaks(t)
	gm := newGatedModels(t)
	gm.leaseOnCancel = true
	s, ts := newTestServer(t, Config{Models: gm})

	ctx, cancel := context.WithCancel(t.Context())
	body, ct := form{file: shortWAV()}.encode(t)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+routeTranscriptions, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	done := make(chan error, 1)
	go func() {
		res, err := ts.Client().Do(req)
		if err == nil {
			res.Body.Close()
		}
		done <- err
	}()
	gm.waitEntered(t)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("client: %v, want context.Canceled", err)
	}
	waitFor(t, "the cancelled request to be counted", func() bool {
		return scrape(t, ts.Client(), ts.URL)[`chorus_requests_total{code="499",endpoint="/v1/audio/transcriptions"}`] == 1
	})
	if n := s.gate.inflight(); n != 0 {
		t.Errorf("%d requests still admitted", n)
	}
	if got := scrape(t, ts.Client(), ts.URL)[`chorus_audio_seconds_total{model="tiny-random"}`]; got != 0 {
		t.Errorf("an aborted transcription counted %g s of audio", got)
	}
}

func TestMetrics(t *testing.T) {
	checkLeaks(t)
	_, ts := newTestServer(t, Config{})
	if r := postForm(t, ts.Client(), ts.URL, form{file: refWAV}); r.status != http.StatusOK {
		t.Fatalf("transcription: status %d, body %s", r.status, r.body)
	}
	if r := postForm(t, ts.Client(), ts.URL, form{}); r.status != http.StatusBadRequest {
		t.Fatalf("request without file: status %d", r.status)
	}
	do(t, ts.Client(), http.MethodGet, ts.URL+routeHealthz, "", nil)

	m := scrape(t, ts.Client(), ts.URL)
	want := map[string]float64{
		`chorus_requests_total{code="200",endpoint="/v1/audio/transcriptions"}`:                 1,
		`chorus_requests_total{code="400",endpoint="/v1/audio/transcriptions"}`:                 1,
		`chorus_requests_total{code="200",endpoint="/healthz"}`:                                 1,
		`chorus_request_duration_seconds_count{endpoint="/v1/audio/transcriptions"}`:            2,
		`chorus_request_duration_seconds_bucket{endpoint="/healthz",le="+Inf"}`:                 1,
		`chorus_audio_seconds_total{model="tiny-random"}`:                                       4.016,
		`chorus_real_time_factor_count{model="tiny-random"}`:                                    1,
		`chorus_inflight_requests`:                                                              0,
		`chorus_model_info{model="tiny-random",variant="tiny-random"}`:                          1,
		`chorus_request_duration_seconds_count{endpoint="/v1/models"}`:                          0, // absent: never requested
		`chorus_requests_total{code="200",endpoint="/metrics"}`:                                 0, // counted after this scrape
		`chorus_requests_total{code="429",endpoint="/v1/audio/transcriptions"}`:                 0,
		`chorus_real_time_factor_bucket{model="tiny-random",le="+Inf"}`:                         1,
		`chorus_request_duration_seconds_bucket{endpoint="/v1/audio/transcriptions",le="+Inf"}`: 2,
	}
	for series, v := range want {
		if got := m[series]; math.Abs(got-v) > 0.01 {
			t.Errorf("%s = %g, want %g", series, got, v)
		}
	}
	for _, series := range []string{"go_goroutines", "process_cpu_seconds_total", `chorus_real_time_factor_sum{model="tiny-random"}`} {
		if _, ok := m[series]; !ok {
			t.Errorf("/metrics lacks %s", series)
		}
	}
	// The next scrape counts this one.
	if got := scrape(t, ts.Client(), ts.URL)[`chorus_requests_total{code="200",endpoint="/metrics"}`]; got != 1 {
		t.Errorf("/metrics requests counted %g, want 1", got)
	}
}

func TestEndpoints(t *testing.T) {
	checkLeaks(t)
	_, ts := newTestServer(t, Config{})
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string // exact, when set
		wantJSON     bool   // an OpenAI error body
		wantAllow    string
	}{
		{method: "GET", path: "/healthz", wantStatus: 200, wantBody: "ok\n"},
		{method: "HEAD", path: "/healthz", wantStatus: 200},
		// Handler without Serve never warms the model, so it is alive but not ready.
		{method: "GET", path: "/readyz", wantStatus: 503, wantBody: "warming up\n"},
		{method: "POST", path: "/healthz", wantStatus: 405, wantJSON: true, wantAllow: "GET, HEAD"},
		{method: "GET", path: "/v1/audio/transcriptions", wantStatus: 405, wantJSON: true, wantAllow: "POST"},
		{method: "DELETE", path: "/v1/models", wantStatus: 405, wantJSON: true, wantAllow: "GET, HEAD"},
		{method: "GET", path: "/v1/models/whisper-large", wantStatus: 404, wantJSON: true},
		{method: "GET", path: "/v1/nothing", wantStatus: 404, wantJSON: true},
		// "/" is the page (webrtc_page.go): GET only.
		{method: "PUT", path: "/", wantStatus: 405, wantJSON: true, wantAllow: "GET, HEAD"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r := do(t, ts.Client(), tt.method, ts.URL+tt.path, "", nil)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			if tt.wantBody != "" && string(r.body) != tt.wantBody {
				t.Errorf("body %q, want %q", r.body, tt.wantBody)
			}
			if tt.wantJSON {
				apiErrorOf(t, r)
			}
			if got := r.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
		})
	}

	t.Run("models", func(t *testing.T) {
		r := do(t, ts.Client(), http.MethodGet, ts.URL+routeModels, "", nil)
		var list struct {
			Object string        `json:"object"`
			Data   []modelObject `json:"data"`
		}
		if err := json.Unmarshal(r.body, &list); err != nil || r.status != 200 {
			t.Fatalf("status %d, body %s: %v", r.status, r.body, err)
		}
		if list.Object != "list" || len(list.Data) != 1 {
			t.Fatalf("list %+v", list)
		}
		m := list.Data[0]
		if m.ID != testModelName || m.Object != "model" || m.OwnedBy != "chorus" || m.Variant != testModelName ||
			time.Since(time.Unix(m.Created, 0)) > time.Hour {
			t.Errorf("model %+v", m)
		}
		r = do(t, ts.Client(), http.MethodGet, ts.URL+routeModels+"/"+testModelName, "", nil)
		var one modelObject
		if err := json.Unmarshal(r.body, &one); err != nil || r.status != 200 || one != m {
			t.Errorf("GET /v1/models/%s: status %d, body %s (%v), want %+v", testModelName, r.status, r.body, err, m)
		}
	})
}

// panicModels panics in Acquire, standing in for a bug deep in a request.
type panicModels struct{ *Single }

func (panicModels) Acquire(context.Context, string) (Lease, error) { panic("boom") }

func TestPanicIsA500(t *testing.T) {
	checkLeaks(t)
	single, err := NewSingle(testModelName, testVariant)
	if err != nil {
		t.Fatal(err)
	}
	s, ts := newTestServer(t, Config{Models: panicModels{single}})
	for range 2 { // twice: the slot of the first must have been released
		r := postForm(t, ts.Client(), ts.URL, form{file: shortWAV()})
		if r.status != http.StatusInternalServerError {
			t.Fatalf("status %d, body %s", r.status, r.body)
		}
		if e := apiErrorOf(t, r); e.Error.Type != typeServer {
			t.Errorf("type %q", e.Error.Type)
		}
	}
	if n := s.gate.inflight(); n != 0 {
		t.Errorf("%d requests still admitted after panics", n)
	}
}

func TestNewConfig(t *testing.T) {
	noTokenizer := *testVariant
	noTokenizer.Tokenizer = nil
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no model", Config{}, "no model"},
		{"negative MaxConcurrent", Config{Model: testVariant, MaxConcurrent: -1}, "MaxConcurrent"},
		{"negative MaxAudio", Config{Model: testVariant, MaxAudio: -time.Second}, "MaxAudio"},
		{"negative MaxBodyBytes", Config{Model: testVariant, MaxBodyBytes: -1}, "MaxBodyBytes"},
		{"negative ShutdownGrace", Config{Model: testVariant, ShutdownGrace: -time.Second}, "ShutdownGrace"},
		{"model without tokenizer", Config{Model: &noTokenizer}, "tokenizer"},
		{"empty model source", Config{Models: emptyModels{}}, "lists no models"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New: %v, want an error about %s", err, tt.wantErr)
			}
		})
	}

	s, err := New(Config{Model: testVariant})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.Addr != DefaultAddr || c.MaxConcurrent < 1 || c.MaxAudio != DefaultMaxAudio || c.MaxBodyBytes != DefaultMaxBodyBytes ||
		c.ShutdownGrace != DefaultShutdownGrace || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if got := s.models.List()[0].Name; got != testModelName {
		t.Errorf("default model name %q, want the folder's name %q", got, testModelName)
	}
}

type emptyModels struct{}

func (emptyModels) Acquire(context.Context, string) (Lease, error) { return Lease{}, ErrModelNotFound }
func (emptyModels) List() []ModelInfo                              { return nil }

// serving runs ServeListener on a loopback port until the test ends.
type serving struct {
	s      *Server
	base   string
	addr   string
	client *http.Client
	stop   context.CancelFunc
	done   chan error
}

// startServing serves New(cfg), changed by tweaks, until the test ends.
func startServing(t *testing.T, cfg Config, tweaks ...func(*Server)) *serving {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tweak := range tweaks {
		tweak(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	sv := &serving{s: s, base: "http://" + ln.Addr().String(), addr: ln.Addr().String(),
		client: &http.Client{Transport: &http.Transport{}}, stop: stop, done: make(chan error, 1)}
	go func() { sv.done <- s.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-sv.done:
		case <-time.After(30 * time.Second):
			t.Error("Serve did not return")
		}
		sv.client.CloseIdleConnections()
	})
	return sv
}

func (sv *serving) status(t *testing.T, path string) int {
	t.Helper()
	return do(t, sv.client, http.MethodGet, sv.base+path, "", nil).status
}

// waitServed waits for Serve to return and returns its error.
func (sv *serving) waitServed(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-sv.done:
		sv.done <- err // for the cleanup
		return err
	case <-time.After(within):
		t.Fatalf("Serve did not return within %v", within)
		return nil
	}
}

// TestShutdownDrains follows the shutdown order: ready after warm-up; on cancel the probes go
// 503 and new work is refused while the admitted request runs on; then it completes, Serve
// returns and the port is closed.
func TestShutdownDrains(t *testing.T) {
	checkLeaks(t)
	gm := newGatedModels(t)
	sv := startServing(t, Config{Models: gm, ShutdownGrace: 20 * time.Second})

	waitFor(t, "readiness after warm-up", func() bool { return sv.status(t, routeReadyz) == http.StatusOK })
	if got := sv.status(t, routeHealthz); got != http.StatusOK {
		t.Fatalf("healthz %d while serving", got)
	}
	inflight := postAsync(t, sv.client, sv.base, form{file: shortWAV(), fields: map[string]string{"response_format": "text"}})
	gm.waitEntered(t)

	sv.stop()
	waitFor(t, "healthz to go 503", func() bool { return sv.status(t, routeHealthz) == http.StatusServiceUnavailable })
	if got := sv.status(t, routeReadyz); got != http.StatusServiceUnavailable {
		t.Errorf("readyz %d while draining, want 503", got)
	}
	r := postForm(t, sv.client, sv.base, form{file: shortWAV()})
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("new request while draining: status %d, want 503; body %s", r.status, r.body)
	}
	if e := apiErrorOf(t, r); deref(e.Error.Code) != "shutting_down" || r.header.Get("Retry-After") == "" {
		t.Errorf("draining refusal %+v, Retry-After %q", e.Error, r.header.Get("Retry-After"))
	}
	if got := sv.status(t, routeModels); got != http.StatusServiceUnavailable {
		t.Errorf("/v1/models %d while draining, want 503", got)
	}
	select {
	case err := <-sv.done:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}

	close(gm.proceed)
	if r := await(t, inflight); r.status != http.StatusOK || len(r.body) == 0 {
		t.Fatalf("in-flight request: status %d, body %q", r.status, r.body)
	}
	if err := sv.waitServed(t, 10*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if c, err := net.DialTimeout("tcp", sv.addr, time.Second); err == nil {
		c.Close()
		t.Error("the port still accepts connections after Serve returned")
	}
}

// TestShutdownGraceExpires checks that a request still running when the grace ends is
// cancelled and answered 503, and that Serve then returns promptly.
func TestShutdownGraceExpires(t *testing.T) {
	checkLeaks(t)
	gm := newGatedModels(t) // proceed is never closed: the request runs until cancelled
	sv := startServing(t, Config{Models: gm, ShutdownGrace: 200 * time.Millisecond})
	waitFor(t, "readiness", func() bool { return sv.status(t, routeReadyz) == http.StatusOK })

	inflight := postAsync(t, sv.client, sv.base, form{file: shortWAV()})
	gm.waitEntered(t)
	start := time.Now()
	sv.stop()
	r := await(t, inflight)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("request cancelled by shutdown: status %d, want 503; body %s", r.status, r.body)
	}
	if e := apiErrorOf(t, r); deref(e.Error.Code) != "shutting_down" {
		t.Errorf("error %+v", e.Error)
	}
	if err := sv.waitServed(t, 10*time.Second); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("Serve returned after %v, before the grace period", d)
	}
}

// TestLongTranscriptionOutlivesReadTimeout holds a request well past the server's read
// timeout after its upload: the read deadline must not cancel the transcription.
func TestLongTranscriptionOutlivesReadTimeout(t *testing.T) {
	checkLeaks(t)
	gm := newGatedModels(t)
	sv := startServing(t, Config{Models: gm}, func(s *Server) { s.readTimeout = 200 * time.Millisecond })
	res := postAsync(t, sv.client, sv.base, form{file: shortWAV()})
	gm.waitEntered(t)
	time.Sleep(500 * time.Millisecond)
	close(gm.proceed)
	if r := await(t, res); r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
}

// blockingWarm is a model source whose warm-up runs until it is cancelled.
type blockingWarm struct{ *Single }

func (blockingWarm) Warm(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// TestShutdownDuringWarmup checks that the server is alive but not ready while it warms up,
// and that a shutdown stops the warm-up at once instead of waiting out the grace.
func TestShutdownDuringWarmup(t *testing.T) {
	checkLeaks(t)
	single, err := NewSingle(testModelName, testVariant)
	if err != nil {
		t.Fatal(err)
	}
	sv := startServing(t, Config{Models: blockingWarm{single}, ShutdownGrace: time.Minute})
	if got := sv.status(t, routeHealthz); got != http.StatusOK {
		t.Errorf("healthz %d while warming up, want 200", got)
	}
	if got := sv.status(t, routeReadyz); got != http.StatusServiceUnavailable {
		t.Errorf("readyz %d while warming up, want 503", got)
	}
	sv.stop()
	if err := sv.waitServed(t, 10*time.Second); err != nil {
		t.Errorf("Serve: %v, want nil: a cancelled warm-up is no failure", err)
	}
}

// failingWarm is a model source whose warm-up fails.
type failingWarm struct{ *Single }

func (failingWarm) Warm(context.Context) error { return errors.New("weights are garbage") }

func TestServeErrors(t *testing.T) {
	checkLeaks(t)
	single, err := NewSingle(testModelName, testVariant)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("warm-up fails", func(t *testing.T) {
		sv := startServing(t, Config{Models: failingWarm{single}})
		err := sv.waitServed(t, 10*time.Second)
		if err == nil || !strings.Contains(err.Error(), "weights are garbage") {
			t.Errorf("Serve: %v, want the warm-up error", err)
		}
	})

	t.Run("listener fails", func(t *testing.T) {
		s, err := New(Config{Models: single, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		if err := s.ServeListener(t.Context(), ln); err == nil {
			t.Error("ServeListener on a closed listener returned nil")
		}
		if err := s.ServeListener(t.Context(), ln); err == nil || !strings.Contains(err.Error(), "twice") {
			t.Errorf("second ServeListener: %v, want an error", err)
		}
	})

	t.Run("address in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		s, err := New(Config{Models: single, Addr: ln.Addr().String(), Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Serve(t.Context()); err == nil {
			t.Error("Serve on a busy address returned nil")
		}
	})
}

func TestGate(t *testing.T) {
	g := newGate(2)
	for i := range 2 {
		if err := g.enter(); err != nil {
			t.Fatalf("enter %d: %v", i, err)
		}
	}
	if err := g.enter(); !errors.Is(err, errBusy) {
		t.Fatalf("third enter: %v, want errBusy", err)
	}
	g.leave()
	if err := g.enter(); err != nil {
		t.Fatalf("enter after leave: %v", err)
	}
	idle := g.close()
	if err := g.enter(); !errors.Is(err, errDraining) {
		t.Fatalf("enter after close: %v, want errDraining", err)
	}
	for i := range 2 {
		select {
		case <-idle:
			t.Fatalf("idle with %d units admitted", 2-i)
		default:
		}
		g.leave()
	}
	select {
	case <-idle:
	default:
		t.Fatal("not idle after every unit left")
	}
	if g.close() != idle || !g.draining() || g.inflight() != 0 {
		t.Error("second close changed the gate")
	}
	if idle := newGate(1).close(); !isClosed(idle) {
		t.Error("closing an empty gate is not idle at once")
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
