package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/defaultmodel"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

// The embedded default model, loaded once: the streaming tests compare against `chorus
// transcribe` with the model `make run` serves.
var (
	defaultOnce    sync.Once
	defaultVariant *asr.Variant
	defaultErr     error
)

func loadDefault(t *testing.T) *asr.Variant {
	t.Helper()
	defaultOnce.Do(func() {
		defaultVariant, defaultErr = defaultmodel.Open(asr.OpenOptions{F16: true})
		if defaultErr == nil { // start the kernels' workers before any leak check counts
			_, defaultErr = defaultVariant.Transcribe(context.Background(), make([]float32, 16000), transcribe.DefaultOptions())
		}
	})
	if defaultErr != nil {
		t.Fatal(defaultErr)
	}
	return defaultVariant
}

// grpcTest is a Server serving gRPC over an in-memory connection (and HTTP on loopback),
// through ServeListeners, so that drain and health behave as in production.
type grpcTest struct {
	s      *Server
	cc     *grpc.ClientConn
	cancel context.CancelFunc
	done   chan error
	addr   string // the HTTP listener's host:port
}

func startGRPC(t *testing.T, cfg Config) *grpcTest {
	t.Helper()
	if cfg.Model == nil && cfg.Models == nil {
		cfg.Model, cfg.ModelName = loadDefault(t), "chorus-micro"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	bl := bufconn.Listen(1 << 20)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &grpcTest{s: s, cancel: cancel, done: make(chan error, 1), addr: hl.Addr().String()}
	go func() { g.done <- s.ServeListeners(ctx, hl, bl) }()
	g.cc, err = grpc.NewClient("passthrough:///bufnet",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return bl.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.stop(t) })
	for deadline := time.Now().Add(30 * time.Second); !s.ready.Load(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("server not ready after 30 s")
		}
	}
	return g
}

// stop shuts the server down (once) and checks it stopped cleanly.
func (g *grpcTest) stop(t *testing.T) {
	if g.cancel == nil {
		return
	}
	g.cancel()
	g.cancel = nil
	if err := <-g.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	g.cc.Close()
}

func refSamples(t *testing.T) []float32 {
	t.Helper()
	x, err := audio.Decode16kMono(strings.NewReader(string(refWAV)), 0)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// speechClip is ref.wav with its trailing silence cut to 50 ms, shorter than the session's
// endpoint silence, so that the whole clip is one utterance whose final covers all of it —
// the case in which the final must equal the whole-file transcription exactly.
func speechClip(t *testing.T) []float32 {
	x := refSamples(t)
	end := len(x)
	for end > 0 && math.Abs(float64(x[end-1])) < 0.01 {
		end--
	}
	return x[:min(len(x), end+800)]
}

func configMsg(c *chorusv1.StreamingRecognitionConfig) *chorusv1.StreamingRecognizeRequest {
	return &chorusv1.StreamingRecognizeRequest{StreamingRequest: &chorusv1.StreamingRecognizeRequest_StreamingConfig{StreamingConfig: c}}
}

func audioMsg(b []byte) *chorusv1.StreamingRecognizeRequest {
	return &chorusv1.StreamingRecognizeRequest{StreamingRequest: &chorusv1.StreamingRecognizeRequest_AudioContent{AudioContent: b}}
}

func pcmConfig() *chorusv1.StreamingRecognitionConfig {
	return &chorusv1.StreamingRecognitionConfig{Config: &chorusv1.RecognitionConfig{
		Encoding: chorusv1.RecognitionConfig_LINEAR16, SampleRateHertz: 16000, RequestId: "t-1"}, InterimResults: true}
}

// TestStreamMatchesTranscribe streams a speech clip and checks the shape of what comes
// back: interim results whose committed text only grows within an utterance, finals whose
// text joined equals `chorus transcribe` (Variant.Transcribe with the default options) of
// the same audio, result_end_times that are ordered and within the audio, a constant
// served_by, the echoed request id, and is_eof last.
func TestStreamMatchesTranscribe(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{})
	x := speechClip(t)
	// Whole-file transcription of the audio as the server received it (LINEAR16 rounds).
	want, err := loadDefault(t).Transcribe(t.Context(), audio.FromPCM16(clients.PCM16(x)), transcribe.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []time.Duration{100 * time.Millisecond, 37 * time.Millisecond} {
		out, err := clients.StreamAudio(t.Context(), g.cc, x, clients.StreamOptions{Config: pcmConfig(), Chunk: chunk})
		if err != nil {
			t.Fatal(err)
		}
		if !out.EOF || !out.Responses[len(out.Responses)-1].Response.GetIsEof() {
			t.Fatal("stream did not end with is_eof")
		}
		if got, w := out.Text, strings.TrimSpace(want.Text); got != w {
			t.Errorf("chunk %v: finals %q, transcribe %q", chunk, got, w)
		}
		stable := map[int32]string{}
		var lastEnd time.Duration
		interims := 0
		for _, r := range out.Responses {
			if !sameServedBy(r.Response.GetServedBy(), out.ServedBy) || r.Response.GetRequestId() != "t-1" {
				t.Fatalf("served_by %v / request id %q changed", r.Response.GetServedBy(), r.Response.GetRequestId())
			}
			for _, res := range r.Response.GetResults() {
				end := res.GetResultEndTime().AsDuration()
				if end > audioDur(len(x))+10*time.Millisecond {
					t.Errorf("result_end_time %v past the audio's %v", end, audioDur(len(x)))
				}
				if res.GetIsFinal() {
					if end < lastEnd {
						t.Errorf("final ends at %v, before the previous final's %v", end, lastEnd)
					}
					lastEnd = end
					continue
				}
				interims++
				u := res.GetUtterance()
				if !strings.HasPrefix(res.GetStableTranscript(), stable[u]) {
					t.Errorf("utterance %d: committed text %q does not extend %q", u, res.GetStableTranscript(), stable[u])
				}
				stable[u] = res.GetStableTranscript()
				if !strings.HasPrefix(res.GetAlternatives()[0].GetTranscript(), res.GetStableTranscript()) {
					t.Errorf("interim %q does not start with its stable part %q", res.GetAlternatives()[0].GetTranscript(), res.GetStableTranscript())
				}
				if s := res.GetStability(); s <= 0 || s > 1 {
					t.Errorf("stability %v outside (0, 1]", s)
				}
			}
		}
		if interims == 0 {
			t.Error("no interim results")
		}
		if out.ServedBy.GetModel() != "chorus-micro" {
			t.Errorf("served_by %v", out.ServedBy)
		}
	}
}

func sameServedBy(a, b *chorusv1.ServedBy) bool {
	return a.GetModel() == b.GetModel() && a.GetVariant() == b.GetVariant() && a.GetVersion() == b.GetVersion()
}

func audioDur(n int) time.Duration { return time.Duration(n) * time.Second / 16000 }

// TestStreamBadInput sends what a broken or hostile client sends and checks each gets a
// clear status, while a good stream running at the same time is unaffected.
func TestStreamBadInput(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{MaxMessageBytes: 64 << 10})
	x := refSamples(t)
	good := make(chan error, 1)
	go func() {
		out, err := clients.StreamAudio(t.Context(), g.cc, x, clients.StreamOptions{Config: pcmConfig()})
		if err == nil && (!out.EOF || out.Text == "") {
			err = errors.New("good stream: no eof or no text")
		}
		good <- err
	}()
	nan := make([]byte, 8)
	binary.LittleEndian.PutUint32(nan[4:], math.Float32bits(float32(math.NaN())))
	f32cfg := &chorusv1.StreamingRecognitionConfig{Config: &chorusv1.RecognitionConfig{Encoding: chorusv1.RecognitionConfig_FLOAT32, SampleRateHertz: 16000}}
	withCfg := func(mut func(*chorusv1.RecognitionConfig)) *chorusv1.StreamingRecognizeRequest {
		c := pcmConfig()
		mut(c.Config)
		return configMsg(c)
	}
	for _, tc := range []struct {
		name string
		msgs []*chorusv1.StreamingRecognizeRequest
		want codes.Code
	}{
		{"audio before config", []*chorusv1.StreamingRecognizeRequest{audioMsg(make([]byte, 320))}, codes.InvalidArgument},
		{"no messages", nil, codes.InvalidArgument},
		{"unknown encoding", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.Encoding = 7 })}, codes.InvalidArgument},
		{"unspecified encoding", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.Encoding = 0 })}, codes.InvalidArgument},
		{"sample rate 0", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.SampleRateHertz = 0 })}, codes.InvalidArgument},
		{"sample rate absurd", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.SampleRateHertz = 1 << 30 })}, codes.InvalidArgument},
		{"negative channels", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.AudioChannelCount = -2 })}, codes.InvalidArgument},
		{"unknown model", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.Model = "nope" })}, codes.NotFound},
		{"unknown language", []*chorusv1.StreamingRecognizeRequest{withCfg(func(c *chorusv1.RecognitionConfig) { c.LanguageCode = "xx" })}, codes.InvalidArgument},
		{"unknown router", []*chorusv1.StreamingRecognizeRequest{configMsg(&chorusv1.StreamingRecognitionConfig{Config: pcmConfig().Config, Routing: &chorusv1.RoutingConfig{Router: "magic"}})}, codes.InvalidArgument},
		{"NaN samples", []*chorusv1.StreamingRecognizeRequest{configMsg(f32cfg), audioMsg(nan)}, codes.InvalidArgument},
		{"second config", []*chorusv1.StreamingRecognizeRequest{configMsg(pcmConfig()), configMsg(pcmConfig())}, codes.InvalidArgument},
		{"empty request", []*chorusv1.StreamingRecognizeRequest{configMsg(pcmConfig()), {}}, codes.InvalidArgument},
		{"oversized message", []*chorusv1.StreamingRecognizeRequest{configMsg(pcmConfig()), audioMsg(make([]byte, 128<<10))}, codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range tc.msgs {
				if err := st.Send(m); err != nil {
					break // the server already ended the stream; Recv says why
				}
			}
			st.CloseSend()
			var rerr error
			for rerr == nil {
				_, rerr = st.Recv()
			}
			if got := status.Code(rerr); got != tc.want {
				t.Errorf("got %v (%v), want %v", got, rerr, tc.want)
			}
		})
	}
	t.Run("flood of tiny chunks", func(t *testing.T) {
		b := clients.PCM16(x[:16000])
		st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		st.Send(configMsg(pcmConfig()))
		for i := range b { // one byte per message: samples straddle messages
			if err := st.Send(audioMsg(b[i : i+1])); err != nil {
				t.Fatal(err)
			}
		}
		st.CloseSend()
		eof := false
		for {
			r, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			eof = eof || r.GetIsEof()
		}
		if !eof {
			t.Error("no is_eof")
		}
	})
	t.Run("client vanishes", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(ctx)
		if err != nil {
			t.Fatal(err)
		}
		st.Send(configMsg(pcmConfig()))
		st.Send(audioMsg(clients.PCM16(x[:32000])))
		time.Sleep(50 * time.Millisecond)
		cancel()
		deadline := time.Now().Add(5 * time.Second)
		for g.s.streams.inflight() > 1 { // the good stream may still run
			if time.Now().After(deadline) {
				t.Fatalf("%d streams still admitted after the client vanished", g.s.streams.inflight())
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
	if err := <-good; err != nil {
		t.Fatalf("a good stream beside the bad ones: %v", err)
	}
}

// TestStreamLimits checks the stream limit (RESOURCE_EXHAUSTED at once), the audio-length
// limit (OUT_OF_RANGE), and that admin calls without the token are UNAUTHENTICATED.
func TestStreamLimits(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{MaxStreams: 1, MaxStreamAudio: 2 * time.Second, AdminToken: "s3cret", Admin: &chorusv1.UnimplementedModelsServer{}})
	x := refSamples(t)
	st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.Send(configMsg(pcmConfig()))
	st.Send(audioMsg(clients.PCM16(x[:1600])))
	for g.s.streams.inflight() != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	_, err = clients.StreamAudio(t.Context(), g.cc, x, clients.StreamOptions{Config: pcmConfig()})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second stream over the limit of 1: %v, want ResourceExhausted", err)
	}
	st.Send(audioMsg(clients.PCM16(x[1600:])))
	var rerr error
	for rerr == nil {
		_, rerr = st.Recv()
	}
	if status.Code(rerr) != codes.OutOfRange {
		t.Errorf("4 s of audio over a 2-s limit: %v, want OutOfRange", rerr)
	}

	admin := chorusv1.NewModelsClient(g.cc)
	for _, ctx := range []context.Context{t.Context(), clients.WithToken(t.Context(), "wrong")} {
		if _, err := admin.List(ctx, &chorusv1.ListModelsRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("admin call with a missing or wrong token: %v, want Unauthenticated", err)
		}
	}
	if _, err := admin.List(clients.WithToken(t.Context(), "s3cret"), &chorusv1.ListModelsRequest{}); status.Code(err) != codes.Unimplemented {
		t.Errorf("admin call with the token: %v, want to reach the (unimplemented) service", err)
	}
	hc := healthpb.NewHealthClient(g.cc)
	if r, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: recognizerService}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health: %v %v", r, err)
	}
}

// TestStreamDrain shuts the server down under an open stream: the audio heard so far is
// finalized and sent, then the stream ends with UNAVAILABLE, and health says NOT_SERVING.
func TestStreamDrain(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{ShutdownGrace: 5 * time.Second})
	x := refSamples(t)
	st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	st.Send(configMsg(pcmConfig()))
	st.Send(audioMsg(clients.PCM16(x[:2*16000]))) // speech still going on
	// Wait until the audio is in: the first interim comes after it has been decoded.
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	go g.cancel()
	finals := 0
	var rerr error
	for rerr == nil {
		var r *chorusv1.StreamingRecognizeResponse
		r, rerr = st.Recv()
		for _, res := range r.GetResults() {
			if res.GetIsFinal() {
				finals++
			}
		}
	}
	if status.Code(rerr) != codes.Unavailable {
		t.Errorf("stream during shutdown ended with %v, want Unavailable", rerr)
	}
	if finals == 0 {
		t.Error("no final sent before the stream ended")
	}
	if err := <-g.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	g.cancel = nil
	g.cc.Close()
}

// TestEncoderBatching: concurrent streams' windows are encoded in shared batches (the batch
// histogram records batches of more than one window) and every stream's finals still equal
// `chorus transcribe` of its audio exactly; a lone stream encodes alone.
func TestEncoderBatching(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{})
	x := speechClip(t)
	want, err := loadDefault(t).Transcribe(t.Context(), audio.FromPCM16(clients.PCM16(x)), transcribe.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := clients.StreamAudio(t.Context(), g.cc, x, clients.StreamOptions{Config: pcmConfig(), Chunk: 50 * time.Millisecond})
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			if out.Text != strings.TrimSpace(want.Text) {
				t.Errorf("stream %d: finals %q, transcribe %q", i, out.Text, strings.TrimSpace(want.Text))
			}
		}()
	}
	wg.Wait()
	mfs, err := g.s.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == "chorus_encoder_batch_windows" {
			h := mf.GetMetric()[0].GetHistogram()
			count, sum = h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Logf("%d batches, %.0f windows", count, sum)
	if count == 0 || sum <= float64(count) {
		t.Errorf("%d batches of %.0f windows: nothing was batched", count, sum)
	}
}
