package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/stream"
	"github.com/chorus-asr/chorus/asr/transcribe"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// recognizer implements chorusv1.RecognizerServer on the Server's models, limits and
// scheduler.
type recognizer struct {
	chorusv1.UnimplementedRecognizerServer
	s *Server
}

// streamConfig is a validated StreamingRecognitionConfig.
type streamConfig struct {
	format      audio.Format
	rate, chans int
	model       string
	variant     string
	language    string
	prompt      string
	requestID   string
	interim     bool
	single      bool
	vadEvents   bool
	wordTimes   bool          // enable_word_time_offsets
	wordConf    bool          // enable_word_confidence
	startTO     time.Duration // 0: none
	endTO       time.Duration // 0: none
	routing     asr.RoutingChoice
	// returnPathway is the client's routing.return_pathway; routing.Pathway may be turned on
	// besides, for the server's own pathway export and experiment figures.
	returnPathway bool
}

// checkRecognitionConfig validates the fields StreamingRecognize and Recognize share.
func checkRecognitionConfig(c *chorusv1.RecognitionConfig) (streamConfig, error) {
	var sc streamConfig
	if c == nil {
		return sc, status.Error(codes.InvalidArgument, "config: missing")
	}
	switch c.GetEncoding() {
	case chorusv1.RecognitionConfig_LINEAR16:
		sc.format = audio.PCM16
	case chorusv1.RecognitionConfig_FLOAT32:
		sc.format = audio.Float32
	default:
		return sc, status.Errorf(codes.InvalidArgument, "config.encoding: %v is not supported (use LINEAR16 or FLOAT32)", c.GetEncoding())
	}
	sc.rate = int(c.GetSampleRateHertz())
	if sc.rate < audio.MinRate || sc.rate > audio.MaxRate {
		return sc, status.Errorf(codes.InvalidArgument, "config.sample_rate_hertz: %d outside [%d, %d]", sc.rate, audio.MinRate, audio.MaxRate)
	}
	sc.chans = int(c.GetAudioChannelCount())
	if sc.chans < 0 || sc.chans > audio.MaxChannels {
		return sc, status.Errorf(codes.InvalidArgument, "config.audio_channel_count: %d outside [0, %d]", sc.chans, audio.MaxChannels)
	}
	if n := c.GetMaxAlternatives(); n < 0 || n > 10 {
		return sc, status.Errorf(codes.InvalidArgument, "config.max_alternatives: %d outside [0, 10]", n)
	}
	sc.wordTimes, sc.wordConf = c.GetEnableWordTimeOffsets(), c.GetEnableWordConfidence()
	if len(c.GetInitialPrompt()) > 4096 || len(c.GetRequestId()) > 256 || len(c.GetModel()) > 256 || len(c.GetVariant()) > 256 || len(c.GetLanguageCode()) > 35 {
		return sc, status.Error(codes.InvalidArgument, "config: a string field is too long (initial_prompt ≤ 4096 bytes, request_id/model/variant ≤ 256, language_code ≤ 35)")
	}
	sc.model, sc.variant = c.GetModel(), c.GetVariant()
	sc.language = whisperLanguage(c.GetLanguageCode())
	sc.prompt, sc.requestID = c.GetInitialPrompt(), c.GetRequestId()
	return sc, nil
}

// whisperLanguage turns a BCP-47 tag ("en-US") into Whisper's language code ("en").
func whisperLanguage(tag string) string {
	for i, r := range tag {
		if r == '-' || r == '_' {
			return tag[:i]
		}
	}
	return tag
}

func checkStreamingConfig(c *chorusv1.StreamingRecognitionConfig) (streamConfig, error) {
	sc, err := checkRecognitionConfig(c.GetConfig())
	if err != nil {
		return sc, err
	}
	sc.interim, sc.single, sc.vadEvents = c.GetInterimResults(), c.GetSingleUtterance(), c.GetEnableVoiceActivityEvents()
	if t := c.GetVoiceActivityTimeout(); t != nil {
		for _, d := range []struct {
			name string
			d    *durationpb.Duration
			dst  *time.Duration
		}{{"speech_start_timeout", t.GetSpeechStartTimeout(), &sc.startTO}, {"speech_end_timeout", t.GetSpeechEndTimeout(), &sc.endTO}} {
			if d.d == nil {
				continue
			}
			if err := d.d.CheckValid(); err != nil || d.d.AsDuration() < 0 {
				return sc, status.Errorf(codes.InvalidArgument, "voice_activity_timeout.%s: invalid duration", d.name)
			}
			*d.dst = d.d.AsDuration()
		}
	}
	if sc.routing, err = routingChoice(c.GetRouting()); err != nil {
		return sc, err
	}
	return sc, nil
}

// acquire pins the model a config names, mapping the registry's errors to gRPC codes.
func (s *Server) acquire(ctx context.Context, model, variant string) (Lease, error) {
	var l Lease
	var err error
	if variant != "" {
		va, ok := s.models.(VariantAcquirer)
		if !ok {
			return l, status.Errorf(codes.InvalidArgument, "config.variant: this server serves one variant per model; leave it empty")
		}
		l, err = va.AcquireVariant(ctx, model, variant)
	} else {
		l, err = s.models.Acquire(ctx, model)
	}
	switch {
	case err == nil:
		return l, nil
	case errors.Is(err, ErrModelNotFound):
		return l, status.Errorf(codes.NotFound, "%v", err)
	case errors.Is(err, ErrModelClosing):
		return l, status.Errorf(codes.Unavailable, "%v; retry", err)
	case ctx.Err() != nil:
		return l, status.FromContextError(ctx.Err()).Err()
	}
	return l, status.Errorf(codes.Internal, "acquire model: %v", err)
}

// sessionConfig is the server's base session configuration with a stream's own settings.
func (s *Server) sessionConfig(c streamConfig) stream.Config {
	sc := s.cfg.Stream
	sc.Interim = c.interim
	sc.Language = c.language
	sc.InitialPrompt = c.prompt
	sc.WordTimestamps = c.words()
	sc.Routing = c.routing
	return sc
}

// words reports whether results carry words: either word option needs the alignment pass.
func (c streamConfig) words() bool { return c.wordTimes || c.wordConf }

// wordInfo is one word of a result: its text without the leading space Whisper's tokens
// carry, its times (stream audio time) with enable_word_time_offsets and its probability
// as the confidence with enable_word_confidence.
func (c streamConfig) wordInfo(word string, start, end time.Duration, prob float64) *chorusv1.WordInfo {
	wi := &chorusv1.WordInfo{Word: strings.TrimSpace(word)}
	if c.wordTimes {
		wi.StartTime, wi.EndTime = durationpb.New(start), durationpb.New(end)
	}
	if c.wordConf {
		wi.Confidence = float32(prob)
	}
	return wi
}

// languageStatus is checkLanguage as a gRPC status.
func languageStatus(lease Lease, lang string) error {
	err := checkLanguage(lease, lang)
	var le languageError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &le):
		return status.Errorf(codes.InvalidArgument, "config.language_code: %s", le.msg)
	}
	return status.Errorf(codes.FailedPrecondition, "model %s cannot decode: %v", lease.Model.Name, err)
}

func servedBy(mi ModelInfo) *chorusv1.ServedBy {
	return &chorusv1.ServedBy{Model: mi.Name, Variant: mi.Variant, Version: mi.Version, Router: "dense"}
}

// item is one unit the receive loop hands to the stream's worker: converted samples, a
// finalize request, the end of the client's side, or a receive error.
type item struct {
	samples  []float32
	finalize bool
	eof      bool
	err      error
	at       time.Time // when the message arrived
}

// StreamingRecognize runs one stream: a receive loop converts audio as it arrives and hands
// it over a bounded channel (so a fast sender is slowed by gRPC flow control, not buffered
// without bound), and this goroutine — the only one that sends — feeds the session, runs
// its decoding in a compute slot, and sends what it produced.
func (r *recognizer) StreamingRecognize(st chorusv1.Recognizer_StreamingRecognizeServer) error {
	s := r.s
	ctx := st.Context()
	first, err := st.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.InvalidArgument, "stream closed before its streaming_config")
	}
	if err != nil {
		return err
	}
	sc0 := first.GetStreamingConfig()
	if sc0 == nil {
		return status.Error(codes.InvalidArgument, "the first message must carry streaming_config (audio and finalize come after it)")
	}
	cfg, err := checkStreamingConfig(sc0)
	if err != nil {
		return err
	}
	pcm, err := audio.NewPCMStream(cfg.format, cfg.rate, cfg.chans)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "config: %v", err)
	}
	w, closeStream, err := s.openStream(ctx, cfg, st)
	if err != nil {
		return err
	}
	defer closeStream()

	// The receive loop ends when the client closes its side or the stream's context ends
	// (the handler returned, the client vanished); done stops it handing items over.
	items := make(chan item, 16)
	done := make(chan struct{})
	defer close(done)
	go func() {
		hand := func(it item) bool {
			select {
			case items <- it:
				return true
			case <-done:
				return false
			}
		}
		for {
			m, err := st.Recv()
			now := time.Now()
			if errors.Is(err, io.EOF) {
				if tail := pcm.Flush(); len(tail) > 0 && !hand(item{samples: tail, at: now}) {
					return
				}
				hand(item{eof: true, at: now})
				return
			}
			if err != nil {
				hand(item{err: err, at: now})
				return
			}
			var it item
			switch x := m.GetStreamingRequest().(type) {
			case *chorusv1.StreamingRecognizeRequest_AudioContent:
				samples, err := pcm.Write(x.AudioContent)
				if err != nil {
					hand(item{err: status.Errorf(codes.InvalidArgument, "audio_content: %v", err), at: now})
					return
				}
				if len(samples) == 0 {
					continue
				}
				it = item{samples: samples, at: now}
			case *chorusv1.StreamingRecognizeRequest_Finalize:
				it = item{finalize: true, at: now}
			case *chorusv1.StreamingRecognizeRequest_StreamingConfig:
				it = item{err: status.Error(codes.InvalidArgument, "streaming_config may only be sent once, in the first message"), at: now}
			default:
				it = item{err: status.Error(codes.InvalidArgument, "empty StreamingRecognizeRequest"), at: now}
			}
			if !hand(it) || it.err != nil {
				return
			}
		}
	}()
	return w.run(ctx, items)
}

// responseSink receives a stream's responses: the gRPC stream itself, or a WebRTC data
// channel that sends the same messages as JSON. Send is only ever called from one goroutine.
type responseSink interface {
	Send(*chorusv1.StreamingRecognizeResponse) error
}

// openStream admits a stream configured by cfg and prepares its worker: it takes a stream
// slot (RESOURCE_EXHAUSTED when none is free, UNAVAILABLE while draining), pins the model
// (NOT_FOUND, UNAVAILABLE), checks the language and builds the session. The caller feeds the
// worker with run and must call closeStream once done, whatever happened. Every error is a
// gRPC status.
func (s *Server) openStream(ctx context.Context, cfg streamConfig, sink responseSink) (w *streamWorker, closeStream func(), err error) {
	if err := s.streams.enter(); err != nil {
		if errors.Is(err, errDraining) {
			return nil, nil, status.Error(codes.Unavailable, "server shutting down; connect to another replica")
		}
		return nil, nil, status.Errorf(codes.ResourceExhausted, "server at its limit of %d concurrent streams; retry later", s.cfg.MaxStreams)
	}
	arm, shadow, err := s.joinExperiment(&cfg)
	if err != nil {
		s.streams.leave()
		return nil, nil, err
	}
	if arm != nil {
		arm.active.Add(1)
	}
	cfg.returnPathway = cfg.routing.Pathway
	if (arm != nil || s.pathways != nil) && !cfg.routing.Dense() {
		cfg.routing.Pathway = true
	}
	leaveArm := func() {
		if arm != nil {
			arm.active.Add(-1)
		}
	}
	lease, err := s.acquire(ctx, cfg.model, cfg.variant)
	if err != nil {
		leaveArm()
		s.streams.leave()
		return nil, nil, err
	}
	fail := func(err error) (*streamWorker, func(), error) {
		lease.Release()
		leaveArm()
		s.streams.leave()
		return nil, nil, err
	}
	if err := languageStatus(lease, cfg.language); err != nil {
		return fail(err)
	}
	sc := s.sessionConfig(cfg)
	if s.batcher != nil {
		sc.Encode = s.batcher.encoder(&lease.Variant.Model.Encoder)
	}
	sess, err := stream.New(lease.Variant, sc)
	if err != nil {
		return fail(status.Errorf(codes.InvalidArgument, "config: %v", err))
	}
	w = &streamWorker{
		s: s, st: sink, cfg: cfg, sess: sess, served: servedByRouting(lease.Model, sess.Routing()), lease: lease.Model,
		log:     s.log.With("request_id", cfg.requestID, "model", lease.Model.Name, "variant", lease.Model.Variant),
		arm:     arm,
		shadow:  shadow,
		variant: lease.Variant,
		serial:  s.streamSerial.Add(1),
	}
	if arm != nil {
		w.served.Arm = arm.name
		w.log = w.log.With("experiment", arm.exp.spec.GetName(), "arm", arm.name, "shadow", shadow)
	}
	s.metrics.streamOpened(lease.Model)
	return w, func() {
		s.metrics.streamClosed(lease.Model)
		s.metrics.routing.streamDone(lease.Model, sess.Routing())
		if arm != nil {
			arm.done(s.experiments, samplesToDuration(w.samples).Seconds(), w.compute.Seconds(), sess.Routing())
		}
		lease.Release()
		leaveArm()
		s.streams.leave()
	}, nil
}

// streamWorker is the state of one stream's sending goroutine; nothing else touches it.
type streamWorker struct {
	s      *Server
	st     responseSink
	cfg    streamConfig
	sess   *stream.Session
	served *chorusv1.ServedBy
	lease  ModelInfo
	log    *slog.Logger

	// Live experiment: the stream's arm (nil outside one) and, for a shadow-decoded stream,
	// its recent audio, the variant and a dense transcriber to decode finals again.
	arm     *arm
	shadow  bool
	variant *asr.Variant
	recent  recentAudio
	shadowT *asr.Transcriber
	serial  uint64 // the stream's number in this process, for pathway export ids

	samples      int64         // 16-kHz samples received
	arrivals     []arrival     // when recent audio arrived, for latency figures; oldest first
	speaking     bool          // between SpeechBegin and SpeechEnd
	lastSpeech   int64         // sample index of the last SpeechEnd (or 0)
	heardSpeech  bool          // a SpeechBegin was seen
	firstInterim bool          // the utterance's first interim was sent (latency metric)
	compute      time.Duration // session compute time, for the real-time factor
}

// arrival records that audio up to sample end had arrived at time at.
type arrival struct {
	end int64
	at  time.Time
}

const samplesPerSecond = audio.WhisperRate

func samplesToDuration(n int64) time.Duration {
	return time.Duration(n) * time.Second / samplesPerSecond
}

// arrivedAt is when the sample at audio time d arrived (zero time if unknown).
func (w *streamWorker) arrivedAt(d time.Duration) time.Time {
	n := int64(d.Seconds() * samplesPerSecond)
	for _, a := range w.arrivals {
		if a.end >= n {
			return a.at
		}
	}
	return time.Time{}
}

// run feeds the session from items until the client's end (an eof item), an error, ctx's
// end or the server's drain, sending every response through the sink. It returns nil after
// a clean end (is_eof sent) and a gRPC status otherwise.
func (w *streamWorker) run(ctx context.Context, items <-chan item) error {
	s := w.s
	started := time.Now()
	defer func() {
		if audioS := samplesToDuration(w.samples).Seconds(); audioS > 0 {
			s.metrics.streamAudio(w.lease, audioS, w.compute.Seconds()/audioS)
		}
		w.log.Debug("stream ended", "audio", samplesToDuration(w.samples), "wall", time.Since(started), "compute", w.compute)
	}()
	for {
		var batch []item
		select {
		case it := <-items:
			batch = append(batch, it)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.drain:
			return w.drain(ctx)
		}
	more: // take everything already waiting: one decode covers it all
		for {
			select {
			case it := <-items:
				batch = append(batch, it)
			default:
				break more
			}
		}
		for _, it := range batch {
			switch {
			case it.err != nil:
				if status.Code(it.err) == codes.Canceled || ctx.Err() != nil {
					return status.FromContextError(context.Cause(ctx)).Err()
				}
				if _, ok := status.FromError(it.err); ok {
					return it.err
				}
				return status.Errorf(codes.Unknown, "receive: %v", it.err)
			case it.samples != nil:
				if end, err := w.write(ctx, it); end || err != nil {
					return err
				}
			case it.finalize:
				if end, err := w.step(ctx, w.sess.Process); end || err != nil {
					return err
				}
				if end, err := w.step(ctx, w.sess.Finalize); end || err != nil {
					return err
				}
			case it.eof:
				if end, err := w.step(ctx, w.sess.Process); end || err != nil {
					return err
				}
				return w.finish(ctx, w.sess.Close)
			}
		}
		if end, err := w.step(ctx, w.sess.Process); end || err != nil {
			return err
		}
	}
}

// write appends converted samples to the session, enforcing the stream-length limit. The
// session holds at most one 30-s window of undecoded audio, so a sender far ahead of the
// decoder (a file sent as fast as possible) gets its audio decoded in between, in pieces.
func (w *streamWorker) write(ctx context.Context, it item) (end bool, err error) {
	w.samples += int64(len(it.samples))
	if limit := w.s.cfg.MaxStreamAudio; samplesToDuration(w.samples) > limit {
		return true, status.Errorf(codes.OutOfRange, "stream longer than the server's limit of %v of audio; open a new stream", limit)
	}
	w.arrivals = append(w.arrivals, arrival{end: w.samples, at: it.at})
	if len(w.arrivals) > 4096 { // keep the last few minutes of 50-ms chunks
		w.arrivals = append(w.arrivals[:0], w.arrivals[len(w.arrivals)-2048:]...)
	}
	if w.shadow {
		w.recent.add(it.samples)
	}
	const piece = 5 * samplesPerSecond
	for x := it.samples; len(x) > 0; {
		n := min(len(x), piece)
		err := w.sess.Write(x[:n])
		if errors.Is(err, stream.ErrBufferFull) {
			if end, err := w.step(ctx, w.sess.Process); end || err != nil {
				return true, err
			}
			err = w.sess.Write(x[:n])
		}
		if err != nil {
			return true, status.Errorf(codes.InvalidArgument, "audio: %v", err)
		}
		x = x[n:]
	}
	return false, nil
}

// step runs one session call in a compute slot and sends its events. end reports that the
// stream is over (single utterance done, or a voice-activity timeout), and it sent is_eof.
func (w *streamWorker) step(ctx context.Context, f func(context.Context) ([]stream.Event, error)) (end bool, err error) {
	var evs []stream.Event
	var ferr error
	t0 := time.Now()
	if err := w.s.sched.do(ctx, func() { evs, ferr = f(ctx) }); err != nil {
		return true, status.FromContextError(err).Err()
	}
	w.compute += time.Since(t0)
	if ferr != nil {
		if ctx.Err() != nil {
			return true, status.FromContextError(ctx.Err()).Err()
		}
		w.log.Error("session failed", "err", ferr)
		return true, status.Errorf(codes.Internal, "recognition failed: %v", ferr)
	}
	return w.send(ctx, evs)
}

// finish runs the session's last call and ends the stream with is_eof.
func (w *streamWorker) finish(ctx context.Context, f func(context.Context) ([]stream.Event, error)) error {
	end, err := w.step(ctx, f)
	if end || err != nil {
		return err
	}
	return w.sendEOF()
}

// drain ends the stream during shutdown: what was heard is finalized and sent, then the
// client is told to reconnect elsewhere.
func (w *streamWorker) drain(ctx context.Context) error {
	if end, err := w.step(ctx, w.sess.Close); end || err != nil {
		return err
	}
	return status.Error(codes.Unavailable, "server shutting down: the audio so far has been finalized; reconnect to continue")
}

func (w *streamWorker) sendEOF() error {
	return w.sendResp(&chorusv1.StreamingRecognizeResponse{IsEof: true})
}

func (w *streamWorker) sendResp(r *chorusv1.StreamingRecognizeResponse) error {
	r.ServedBy, r.RequestId = w.served, w.cfg.requestID
	if err := w.st.Send(r); err != nil {
		return err // the client is gone; its context says why
	}
	return nil
}

// send turns session events into responses. It reports end when the stream is over.
func (w *streamWorker) send(ctx context.Context, evs []stream.Event) (end bool, err error) {
	now := time.Now()
	for _, ev := range evs {
		switch ev.Kind {
		case stream.SpeechBegin:
			w.speaking, w.heardSpeech, w.firstInterim = true, true, false
			if w.cfg.vadEvents {
				if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{
					SpeechEventType: chorusv1.StreamingRecognizeResponse_SPEECH_ACTIVITY_BEGIN, SpeechEventTime: durationpb.New(ev.Start),
				}); err != nil {
					return true, err
				}
			}
		case stream.SpeechEnd:
			w.speaking = false
			w.lastSpeech = int64(ev.End.Seconds() * samplesPerSecond)
			if w.cfg.vadEvents {
				if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{
					SpeechEventType: chorusv1.StreamingRecognizeResponse_SPEECH_ACTIVITY_END, SpeechEventTime: durationpb.New(ev.End),
				}); err != nil {
					return true, err
				}
			}
		case stream.Interim:
			if !w.firstInterim {
				w.firstInterim = true
				if at := w.arrivedAt(ev.Start); !at.IsZero() {
					w.s.metrics.firstInterim(w.lease, now.Sub(at).Seconds())
				}
			}
			if !w.cfg.interim {
				continue
			}
			if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{Results: []*chorusv1.StreamingRecognitionResult{{
				Alternatives:     []*chorusv1.SpeechRecognitionAlternative{{Transcript: ev.Text, Confidence: ev.Confidence}},
				Stability:        ev.Stability,
				StableTranscript: ev.Stable,
				ResultStartTime:  durationpb.New(ev.Start),
				ResultEndTime:    durationpb.New(ev.End),
				Utterance:        int32(ev.Utterance),
				LanguageCode:     ev.Language,
			}}}); err != nil {
				return true, err
			}
		case stream.Final:
			speechEnd := ev.End
			if w.lastSpeech > 0 && samplesToDuration(w.lastSpeech) < speechEnd {
				speechEnd = samplesToDuration(w.lastSpeech)
			}
			if at := w.arrivedAt(speechEnd); !at.IsZero() {
				w.s.metrics.finalLatency(w.lease, now.Sub(at).Seconds())
				if w.arm != nil {
					w.arm.final(w.s.experiments, now.Sub(at).Seconds())
				}
			}
			if w.cfg.single {
				if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{
					SpeechEventType: chorusv1.StreamingRecognizeResponse_END_OF_SINGLE_UTTERANCE, SpeechEventTime: durationpb.New(ev.End),
				}); err != nil {
					return true, err
				}
			}
			alt := &chorusv1.SpeechRecognitionAlternative{Transcript: ev.Text, Confidence: ev.Confidence}
			if w.cfg.words() {
				for _, wd := range ev.Words {
					if strings.TrimSpace(wd.Word) == "" {
						continue // a lone space token: no text to time (OpenAI keeps it as " ")
					}
					alt.Words = append(alt.Words, w.cfg.wordInfo(wd.Word, wd.Start, wd.End, wd.Probability))
				}
			}
			if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{Results: []*chorusv1.StreamingRecognitionResult{{
				Alternatives:    []*chorusv1.SpeechRecognitionAlternative{alt},
				IsFinal:         true,
				ResultStartTime: durationpb.New(ev.Start),
				ResultEndTime:   durationpb.New(ev.End),
				Utterance:       int32(ev.Utterance),
				LanguageCode:    ev.Language,
			}}, Pathway: w.finalPathway(ev.Utterance)}); err != nil {
				return true, err
			}
			if w.shadow {
				if err := w.shadowDecode(ctx, ev.Start, ev.End, ev.Text); err != nil {
					if ctx.Err() != nil {
						return true, status.FromContextError(ctx.Err()).Err()
					}
					w.log.Warn("shadow decoding failed", "err", err) // the arm's stream goes on
				}
			}
			if w.cfg.single {
				return true, w.sendEOF()
			}
		}
	}
	// Voice-activity timeouts run on audio time, like everything else in the session.
	heard := samplesToDuration(w.samples)
	timeout := (w.cfg.startTO > 0 && !w.heardSpeech && heard > w.cfg.startTO) ||
		(w.cfg.endTO > 0 && w.heardSpeech && !w.speaking && heard-samplesToDuration(w.lastSpeech) > w.cfg.endTO)
	if timeout {
		if err := w.sendResp(&chorusv1.StreamingRecognizeResponse{
			SpeechEventType: chorusv1.StreamingRecognizeResponse_SPEECH_ACTIVITY_TIMEOUT, SpeechEventTime: durationpb.New(heard),
		}); err != nil {
			return true, err
		}
		evs, err := w.sess.Close(ctx)
		if err != nil {
			return true, status.Errorf(codes.Internal, "recognition failed: %v", err)
		}
		if end, err := w.send(ctx, evs); end || err != nil {
			return true, err
		}
		return true, w.sendEOF()
	}
	return false, nil
}

// Recognize transcribes a whole recording with the long-form loop (what `chorus transcribe`
// and /v1/audio/transcriptions run), in a compute slot like stream work.
func (r *recognizer) Recognize(ctx context.Context, req *chorusv1.RecognizeRequest) (*chorusv1.RecognizeResponse, error) {
	s := r.s
	cfg, err := checkRecognitionConfig(req.GetConfig())
	if err != nil {
		return nil, err
	}
	pcm, err := audio.NewPCMStream(cfg.format, cfg.rate, cfg.chans)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "config: %v", err)
	}
	samples, err := pcm.Write(req.GetAudioContent())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "audio_content: %v", err)
	}
	samples = append(samples, pcm.Flush()...)
	dur := samplesToDuration(int64(len(samples)))
	if dur > s.cfg.MaxAudio {
		return nil, status.Errorf(codes.OutOfRange, "audio is %v long; the limit is %v (stream longer audio)", dur.Round(time.Second), s.cfg.MaxAudio)
	}
	if err := s.gate.enter(); err != nil {
		if errors.Is(err, errDraining) {
			return nil, status.Error(codes.Unavailable, "server shutting down")
		}
		return nil, status.Errorf(codes.ResourceExhausted, "server at its limit of %d concurrent transcriptions; retry later", s.cfg.MaxConcurrent)
	}
	defer s.gate.leave()
	lease, err := s.acquire(ctx, cfg.model, cfg.variant)
	if err != nil {
		return nil, err
	}
	defer lease.Release()
	if err := languageStatus(lease, cfg.language); err != nil {
		return nil, err
	}
	o := transcribeOptions(cfg.language, cfg.prompt, s.cfg.Stream.BeamSize)
	o.WordTimestamps = cfg.words()
	t0 := time.Now()
	res, terr := lease.Variant.Transcribe(ctx, samples, o)
	if terr != nil {
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return nil, status.Errorf(codes.Internal, "transcribe: %v", terr)
	}
	if sec := dur.Seconds(); sec > 0 {
		s.metrics.observeTranscription(lease.Model.Name, sec, time.Since(t0).Seconds()/sec)
	}
	out := &chorusv1.RecognizeResponse{ServedBy: servedBy(lease.Model), RequestId: cfg.requestID, TotalAudioTime: durationpb.New(dur)}
	for _, seg := range res.Segments {
		alt := &chorusv1.SpeechRecognitionAlternative{Transcript: seg.Text, Confidence: confidence(seg.AvgLogprob)}
		for _, wd := range seg.Words {
			if strings.TrimSpace(wd.Word) == "" {
				continue // a lone space token: no text to time
			}
			alt.Words = append(alt.Words, cfg.wordInfo(wd.Word, secondsToDuration(wd.Start), secondsToDuration(wd.End), wd.Probability))
		}
		out.Results = append(out.Results, &chorusv1.SpeechRecognitionResult{
			Alternatives:    []*chorusv1.SpeechRecognitionAlternative{alt},
			ResultStartTime: durationpb.New(secondsToDuration(seg.Start)),
			ResultEndTime:   durationpb.New(secondsToDuration(seg.End)),
			LanguageCode:    res.Language,
		})
	}
	return out, nil
}

func secondsToDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// confidence maps an average token log-probability to (0, 1]: the geometric mean of the
// token probabilities.
func confidence(avgLogprob float64) float32 {
	if math.IsNaN(avgLogprob) {
		return 0
	}
	return float32(math.Exp(min(avgLogprob, 0)))
}

// transcribeOptions are the whole-file options for a request: the defaults `chorus
// transcribe` uses, with the request's language and prompt and the server's beam.
func transcribeOptions(language, prompt string, beam int) transcribe.Options {
	o := transcribe.DefaultOptions()
	o.SetBeam(beam)
	o.Decode.Language = language
	o.InitialPrompt = prompt
	return o
}
