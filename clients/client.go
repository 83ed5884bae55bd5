// Package clients is the Go client of chorus's gRPC API: a connection helper, a typed
// stream wrapper, and StreamAudio, which streams samples to the server with real-time pacing
// (or as fast as possible) and times every result against the audio it accounts for. The
// CLI's `chorus stream` and the load tool are thin layers over it.
package clients

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"sync"
	"time"

	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// DialOptions configure Dial.
type DialOptions struct {
	// TLS uses transport security with the system roots (or Config when set).
	TLS       bool
	TLSConfig *tls.Config
	// Token is sent as "authorization: Bearer <token>" on every call (admin calls need it).
	Token string
}

// Dial connects to a chorus server at addr (host:port).
func Dial(addr string, o DialOptions) (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if o.TLS || o.TLSConfig != nil {
		cfg := o.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.Token != "" {
		tok := o.Token
		opts = append(opts,
			grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
				return invoker(WithToken(ctx, tok), method, req, reply, cc, opts...)
			}),
			grpc.WithStreamInterceptor(func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
				return streamer(WithToken(ctx, tok), desc, cc, method, opts...)
			}))
	}
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return cc, nil
}

// WithToken returns ctx carrying the admin bearer token as outgoing metadata.
func WithToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// PCM16 encodes samples in [-1, 1] as LINEAR16 bytes (clamped, rounded), the usual wire
// format; FLOAT32 clients can send math.Float32bits of each sample instead.
func PCM16(samples []float32) []byte {
	b := make([]byte, 2*len(samples))
	for i, v := range samples {
		x := math.Round(float64(v) * 32768)
		x = max(-32768, min(32767, x))
		binary.LittleEndian.PutUint16(b[2*i:], uint16(int16(x)))
	}
	return b
}

// StreamOptions configure StreamAudio.
type StreamOptions struct {
	// Config is the stream's first message. Its audio fields are filled in by StreamAudio
	// (LINEAR16, 16 kHz, mono) when Encoding is unset.
	Config *chorusv1.StreamingRecognitionConfig
	// Chunk is the audio per message (default 100 ms).
	Chunk time.Duration
	// Realtime paces the messages at the audio's own speed, as a microphone would; false
	// sends as fast as the server takes them.
	Realtime bool
	// OnResponse, when set, is called with every response as it arrives, with its timing.
	OnResponse func(Timed)
}

// Timed is a response and when it arrived, on the stream's clocks.
type Timed struct {
	Response *chorusv1.StreamingRecognizeResponse
	// Wall is the time since the first audio was sent; Sent is the audio time sent by then.
	Wall, Sent time.Duration
}

// Outcome is what a whole stream produced.
type Outcome struct {
	Responses []Timed
	// Finals are the final transcripts in order; Text joins them with spaces.
	Finals []string
	Text   string
	// ServedBy is the served_by of the responses (constant for the stream).
	ServedBy *chorusv1.ServedBy
	// FinalLatency, per final, is how long after the end of its speech was sent the final
	// arrived — with Realtime pacing, the wait a live speaker sees after they stop talking.
	// The end of speech is the time of the last SPEECH_ACTIVITY_END event before the final
	// (ask for enable_voice_activity_events), else the final's result_end_time.
	// FirstInterim, per utterance, is the time from sending the start of its speech (the
	// last SPEECH_ACTIVITY_BEGIN before it, else the utterance's result_start_time) to its
	// first interim result.
	FinalLatency, FirstInterim []time.Duration
	// EOF reports that the stream ended with is_eof.
	EOF bool
	// Audio is the audio time sent, Wall the stream's duration.
	Audio, Wall time.Duration
}

// StreamAudio streams 16-kHz mono samples on a new StreamingRecognize call and collects
// every response until is_eof. The latencies it reports are measured on the client's
// clock: wall time since the first audio message against audio time sent.
func StreamAudio(ctx context.Context, cc grpc.ClientConnInterface, samples []float32, o StreamOptions) (*Outcome, error) {
	if o.Chunk <= 0 {
		o.Chunk = 100 * time.Millisecond
	}
	chunk := int(o.Chunk.Seconds() * 16000)
	off := 0
	var start time.Time
	next := func(ctx context.Context) ([]float32, error) {
		if off >= len(samples) {
			return nil, io.EOF
		}
		if start.IsZero() {
			start = time.Now()
		}
		end := min(off+chunk, len(samples))
		if o.Realtime { // send a chunk once the speaker has said it
			due := start.Add(time.Duration(end) * time.Second / 16000)
			if d := time.Until(due); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
		}
		x := samples[off:end]
		off = end
		return x, nil
	}
	return StreamFrom(ctx, cc, next, o)
}

// StreamFrom is StreamAudio for audio that arrives over time (a microphone): next returns
// the next 16-kHz mono samples, blocking until they exist, and io.EOF at the end. Chunk and
// Realtime are ignored: the source sets the pace.
func StreamFrom(ctx context.Context, cc grpc.ClientConnInterface, next func(context.Context) ([]float32, error), o StreamOptions) (*Outcome, error) {
	cfg := o.Config
	if cfg == nil {
		cfg = &chorusv1.StreamingRecognitionConfig{}
	}
	if cfg.Config == nil {
		cfg.Config = &chorusv1.RecognitionConfig{}
	}
	if cfg.Config.Encoding == chorusv1.RecognitionConfig_ENCODING_UNSPECIFIED {
		cfg.Config.Encoding = chorusv1.RecognitionConfig_LINEAR16
		cfg.Config.SampleRateHertz = 16000
		cfg.Config.AudioChannelCount = 1
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := chorusv1.NewRecognizerClient(cc).StreamingRecognize(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&chorusv1.StreamingRecognizeRequest{StreamingRequest: &chorusv1.StreamingRecognizeRequest_StreamingConfig{StreamingConfig: cfg}}); err != nil {
		return nil, fmt.Errorf("send config: %w", err)
	}
	start := time.Now()
	var mu sync.Mutex // guards sent
	var sent time.Duration
	var total int
	sendErr := make(chan error, 1)
	go func() {
		for {
			x, err := next(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				sendErr <- err
				return
			}
			if err := st.Send(&chorusv1.StreamingRecognizeRequest{StreamingRequest: &chorusv1.StreamingRecognizeRequest_AudioContent{AudioContent: PCM16(x)}}); err != nil {
				sendErr <- err // io.EOF: the server ended the stream; Recv says why
				return
			}
			total += len(x)
			mu.Lock()
			sent = time.Duration(total) * time.Second / 16000
			mu.Unlock()
		}
		sendErr <- st.CloseSend()
	}()

	out := &Outcome{}
	firstInterimSeen := map[int32]bool{}
	var speechEnd, speechBegin time.Duration = -1, -1
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
		mu.Lock()
		t := Timed{Response: r, Wall: time.Since(start), Sent: sent}
		mu.Unlock()
		out.Responses = append(out.Responses, t)
		if o.OnResponse != nil {
			o.OnResponse(t)
		}
		if out.ServedBy == nil {
			out.ServedBy = r.GetServedBy()
		}
		switch r.GetSpeechEventType() {
		case chorusv1.StreamingRecognizeResponse_SPEECH_ACTIVITY_END:
			speechEnd = r.GetSpeechEventTime().AsDuration()
		case chorusv1.StreamingRecognizeResponse_SPEECH_ACTIVITY_BEGIN:
			speechBegin = r.GetSpeechEventTime().AsDuration()
		}
		for _, res := range r.GetResults() {
			text := ""
			if alts := res.GetAlternatives(); len(alts) > 0 {
				text = alts[0].GetTranscript()
			}
			if res.GetIsFinal() {
				out.Finals = append(out.Finals, text)
				end := res.GetResultEndTime().AsDuration()
				if speechEnd >= 0 && speechEnd <= end {
					end = speechEnd
				}
				speechEnd = -1
				out.FinalLatency = append(out.FinalLatency, t.Wall-end)
			} else if !firstInterimSeen[res.GetUtterance()] {
				firstInterimSeen[res.GetUtterance()] = true
				start := res.GetResultStartTime().AsDuration()
				if speechBegin >= start {
					start = speechBegin
				}
				out.FirstInterim = append(out.FirstInterim, t.Wall-start)
			}
		}
		if r.GetIsEof() {
			out.EOF = true
		}
	}
	out.Wall = time.Since(start)
	mu.Lock()
	out.Audio = sent
	mu.Unlock()
	var parts []string
	for _, f := range out.Finals {
		if f = strings.TrimSpace(f); f != "" {
			parts = append(parts, f)
		}
	}
	out.Text = strings.Join(parts, " ")
	if err := <-sendErr; err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
		return out, fmt.Errorf("send audio: %w", err)
	}
	return out, nil
}

// Percentile is the p-th percentile (0–100, nearest rank) of ds; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}
