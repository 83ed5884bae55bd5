package server

// WebRTC ingest: browsers (and any WHIP client) stream Opus audio to the same streaming
// pipeline as gRPC StreamingRecognize, and get the same responses back as JSON on a data
// channel.
//
// Wire behaviour (RFC 9725, WHIP):
//
//   - POST /v1/whip with Content-Type application/sdp and a complete SDP offer (no trickle
//     ICE: the offer's candidates may be absent, the server learns the client's address from
//     its connectivity checks). The offer must carry one audio section with Opus and one
//     data channel (m=application) that the client created (any label; ordered, reliable),
//     because results travel on it and an answer cannot add a section the offer lacks.
//     Answer: 201 Created, Content-Type application/sdp, the SDP answer with every server
//     candidate in it, and Location: /v1/whip/{id}.
//   - The stream's StreamingRecognitionConfig is the query parameter "config", as the proto3
//     JSON of chorus.v1.StreamingRecognitionConfig (protojson: camelCase or proto names).
//     It is a query parameter rather than a header or a first data-channel message so that
//     any WHIP client (whose URL the user types) can set it, and so that a bad config, an
//     unknown model or a full server is answered at signalling time with an HTTP status
//     instead of after media has started. config.encoding, sample_rate_hertz and
//     audio_channel_count are ignored: the audio is the Opus track, decoded to 16 kHz mono.
//     Without the parameter, interim results are on; with it, interimResults defaults to
//     true too unless the JSON sets it.
//   - Server → client on the data channel: every StreamingRecognizeResponse the gRPC stream
//     would get, as protojson text messages (same field names, durations as "1.5s"). A stream
//     that ends in error gets one last message {"error":{"code":N,"status":"NAME",
//     "message":"…"}}, the gRPC status the gRPC stream would end with, before the peer
//     closes.
//   - Client → server on the data channel (optional): StreamingRecognizeRequest as protojson,
//     where only {"finalize":{}} is accepted (force an endpoint now); audio comes on the
//     track and the config in the URL.
//   - DELETE /v1/whip/{id} ends the session gracefully: the audio received so far is
//     finalized, its finals and is_eof are sent on the data channel, and then the peer
//     closes. The DELETE answers 200 once that is done (at most a few seconds), so a client
//     that waits for it before closing its own peer gets every final.
//   - The peer is closed, its stream slot and model pin released, when ICE fails or closes,
//     when the data channel closes (a closed tab), when it has not connected within the
//     connect timeout, on DELETE, and on server shutdown (the drain finalizes and sends what
//     was heard, then http.Server.Shutdown's RegisterOnShutdown hook closes what is left).
//     PATCH (trickle ICE, ICE restart) is answered 405, as RFC 9725 allows.
//   - Limits: WebRTCConfig.MaxPeers peers at once (503 with Retry-After beyond), and every
//     peer is also a stream of Config.MaxStreams.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/opus"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// Routes of the WHIP endpoint.
const (
	routeWHIP        = "/v1/whip"
	routeWHIPSession = "/v1/whip/{id}"
)

// WebRTCConfig configures WebRTC ingest at /v1/whip. Zero fields take the defaults below.
type WebRTCConfig struct {
	// MaxPeers is how many WebRTC peers may be connected or connecting at once; more are
	// answered 503. Each peer also takes one of Config.MaxStreams.
	MaxPeers int
	// ICEPortMin and ICEPortMax bound the UDP ports of the server's ICE candidates (both 0:
	// any ephemeral port), so that a firewall can open just that range.
	ICEPortMin, ICEPortMax uint16
	// ICEPublicIPs are the addresses the server's host candidates are announced with, for a
	// server behind a 1:1 NAT (a cloud VM, a Kubernetes node): clients must reach it there.
	ICEPublicIPs []string
	// ICEInterfaces limits candidates to these network interfaces ("eth0"); empty means all.
	ICEInterfaces []string
	// ICELoopback adds loopback candidates (127.0.0.1), off by default as pion has it; tests
	// and a browser on the same machine use it.
	ICELoopback bool
	// ConnectTimeout is how long a peer may take from its offer to an open data channel
	// before it is closed; it bounds what a client that never completes ICE can hold.
	ConnectTimeout time.Duration
	// DisconnectedTimeout and FailedTimeout are ICE's: how long without traffic before the
	// connection counts as disconnected, and after that as failed (the peer is then closed).
	// Browsers send consent checks every few seconds, so a vanished tab ends within their sum.
	DisconnectedTimeout, FailedTimeout time.Duration
}

// Defaults of WebRTCConfig.
const (
	// DefaultMaxPeers leaves half of the default stream slots to gRPC clients.
	DefaultMaxPeers = DefaultMaxStreams / 2
	// DefaultConnectTimeout is generous for ICE and DTLS on real networks (a few round trips
	// each), and short enough that abandoned offers do not pile up.
	DefaultConnectTimeout = 15 * time.Second
	// DefaultDisconnectedTimeout and DefaultFailedTimeout end a peer that went silent within
	// about 10 s, rather than pion's 5 + 25 s, since a speech stream is useless once stalled.
	DefaultDisconnectedTimeout = 4 * time.Second
	DefaultFailedTimeout       = 6 * time.Second
)

// WHIP limits and timings.
const (
	// maxOfferBytes bounds an SDP offer; browsers' offers are a few kilobytes.
	maxOfferBytes = 64 << 10
	// gatherTimeout bounds the wait for the server's own ICE candidates (local interfaces
	// only; no STUN), so the answer can carry them all.
	gatherTimeout = 5 * time.Second
	// deleteTimeout bounds a DELETE's wait for the session's last finals to be sent.
	deleteTimeout = 10 * time.Second
	// flushTimeout bounds the wait for the data channel to hand its last messages to the
	// network before the peer is closed.
	flushTimeout = 2 * time.Second
	// maxGap is the longest RTP timestamp gap (lost packets, discontinuous transmission)
	// filled with silence; longer jumps are filled up to it, so a misbehaving sender cannot
	// make the server allocate hours of zeros.
	maxGap = 2 * time.Second
	// settleIdle and settleTimeout: see peer.endAudio. settleIdle is well above the 20-ms
	// packet interval, so a sender that is still sending is not mistaken for one that ended.
	settleIdle    = 60 * time.Millisecond
	settleTimeout = 2 * time.Second
	// opusRate is Opus's RTP clock rate, whatever the audio's bandwidth (RFC 7587).
	opusRate = 48000
)

// rtcIngest owns the WebRTC API and the live peers.
type rtcIngest struct {
	api   *webrtc.API
	cfg   WebRTCConfig // defaults applied
	peers *gate        // admission of peers

	mu       sync.Mutex       // guards sessions
	sessions map[string]*peer // live peers by id

	// onAudio, when set (tests), receives each peer's decoded samples as they are handed to
	// the stream, so a test can replay exactly that audio through gRPC.
	onAudio atomic.Pointer[audioTap]
}

type audioTap func(id string, samples []float32)

// newRTCIngest builds the MediaEngine (Opus only), the interceptor registry and the API.
func newRTCIngest(cfg WebRTCConfig, log *slog.Logger) (*rtcIngest, error) {
	switch {
	case cfg.MaxPeers < 0 || cfg.ConnectTimeout < 0 || cfg.DisconnectedTimeout < 0 || cfg.FailedTimeout < 0:
		return nil, errors.New("server: negative WebRTC limit")
	case cfg.ICEPortMin > cfg.ICEPortMax:
		return nil, fmt.Errorf("server: ICE port range %d-%d is empty", cfg.ICEPortMin, cfg.ICEPortMax)
	}
	if cfg.MaxPeers == 0 {
		cfg.MaxPeers = DefaultMaxPeers
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	}
	if cfg.DisconnectedTimeout == 0 {
		cfg.DisconnectedTimeout = DefaultDisconnectedTimeout
	}
	if cfg.FailedTimeout == 0 {
		cfg.FailedTimeout = DefaultFailedTimeout
	}

	me := &webrtc.MediaEngine{}
	// Only Opus: an offer whose audio has no Opus is refused before pion sees it.
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: opusRate, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"},
		PayloadType:        111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("server: webrtc codec: %w", err)
	}
	// Receiver reports only: they give the sender loss and jitter figures. NACK is not
	// registered (browsers do not retransmit audio), nor congestion control (one audio
	// stream in, nothing out).
	ir := &interceptor.Registry{}
	if err := webrtc.ConfigureRTCPReports(ir); err != nil {
		return nil, fmt.Errorf("server: webrtc interceptors: %w", err)
	}

	se := webrtc.SettingEngine{}
	se.LoggerFactory = pionLogger{log}
	se.SetICETimeouts(cfg.DisconnectedTimeout, cfg.FailedTimeout, time.Second)
	// The server's candidates are its interfaces' addresses; resolving clients' mDNS names
	// would only add multicast sockets: their connectivity checks reveal their address.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(cfg.ICELoopback)
	if cfg.ICEPortMin != 0 || cfg.ICEPortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(cfg.ICEPortMin, cfg.ICEPortMax); err != nil {
			return nil, fmt.Errorf("server: ICE port range: %w", err)
		}
	}
	if len(cfg.ICEPublicIPs) > 0 {
		se.SetNAT1To1IPs(cfg.ICEPublicIPs, webrtc.ICECandidateTypeHost)
	}
	if len(cfg.ICEInterfaces) > 0 {
		names := slices.Clone(cfg.ICEInterfaces)
		se.SetInterfaceFilter(func(name string) bool { return slices.Contains(names, name) })
	}
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})

	api := webrtc.NewAPI(webrtc.WithMediaEngine(me), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	return &rtcIngest{api: api, cfg: cfg, peers: newGate(cfg.MaxPeers), sessions: map[string]*peer{}}, nil
}

// shutdown closes every peer still open. It is http.Server.Shutdown's RegisterOnShutdown
// hook: by then the drain has had its grace period to finalize and send each stream's audio.
func (r *rtcIngest) shutdown() {
	r.peers.close()
	r.mu.Lock()
	ps := make([]*peer, 0, len(r.sessions))
	for _, p := range r.sessions {
		ps = append(ps, p)
	}
	r.mu.Unlock()
	for _, p := range ps {
		p.cancel(errShutdown)
	}
}

func (r *rtcIngest) lookup(id string) *peer {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions[id]
}

// whip serves /v1/whip: POST creates a session.
func (s *Server) whip(w http.ResponseWriter, r *http.Request) error {
	rtc := s.rtc
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		return &apiError{status: http.StatusUnsupportedMediaType, typ: typeInvalidRequest, code: "unsupported_media_type",
			msg: "the body must be an SDP offer with Content-Type: application/sdp (WHIP, RFC 9725)"}
	}
	if rtc.peers.draining() || s.gate.draining() {
		return shuttingDown()
	}
	cfg, err := whipConfig(r.URL.Query())
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOfferBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, code: "offer_too_large",
				msg: fmt.Sprintf("the SDP offer is over %d bytes", maxOfferBytes)}
		}
		return err
	}
	if err := checkOffer(body); err != nil {
		return err
	}
	switch err := rtc.peers.enter(); {
	case errors.Is(err, errDraining):
		return shuttingDown()
	case err != nil:
		return &apiError{status: http.StatusServiceUnavailable, typ: typeRateLimit, code: "too_many_peers", retryAfter: 1,
			msg: fmt.Sprintf("the server is at its limit of %d WebRTC peers; retry later", rtc.cfg.MaxPeers)}
	}
	p := &peer{s: s, id: newPeerID(), items: make(chan item, 64), dcOpen: make(chan struct{}), done: make(chan struct{})}
	p.log = s.log.With("peer", p.id)
	p.ctx, p.cancel = context.WithCancelCause(context.Background())
	worker, closeStream, err := s.openStream(r.Context(), cfg, p)
	if err != nil {
		p.cancel(err)
		rtc.peers.leave()
		return statusToAPIError(err)
	}
	answer, err := p.negotiate(r.Context(), string(body))
	if err != nil {
		p.cancel(err)
		if p.pc != nil {
			p.pc.Close()
		}
		p.wg.Wait()
		closeStream()
		rtc.peers.leave()
		if ae := (*apiError)(nil); errors.As(err, &ae) {
			return ae
		}
		return fmt.Errorf("webrtc negotiation: %w", err)
	}
	rtc.mu.Lock()
	rtc.sessions[p.id] = p
	rtc.mu.Unlock()
	go p.serve(worker, closeStream)

	w.Header().Set("Location", routeWHIP+"/"+p.id)
	w.Header().Set("Cache-Control", "no-store")
	writeBody(w, http.StatusCreated, "application/sdp", []byte(answer))
	return nil
}

// whipSession serves /v1/whip/{id}: DELETE ends the session; PATCH (trickle ICE) is not
// supported, which RFC 9725 allows servers to answer with 405.
func (s *Server) whipSession(w http.ResponseWriter, r *http.Request) error {
	p := s.rtc.lookup(r.PathValue("id"))
	if p == nil {
		return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, code: "session_not_found",
			msg: fmt.Sprintf("no WebRTC session at %s (it ended, or never existed)", r.URL.Path)}
	}
	p.dcMu.Lock()
	connected := p.open
	p.dcMu.Unlock()
	if !connected { // nothing was heard, nothing can be sent: just close
		p.cancel(errors.New("DELETE before the peer connected"))
	}
	p.endAudio()
	t := time.NewTimer(deleteTimeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		p.cancel(errors.New("DELETE: session did not end in time"))
		<-p.done
	case <-r.Context().Done():
		return r.Context().Err()
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

// whipConfig reads the stream's config from the query parameter "config"; see the file
// comment for what is defaulted and ignored.
func whipConfig(q map[string][]string) (streamConfig, error) {
	sc := &chorusv1.StreamingRecognitionConfig{InterimResults: true}
	if vs := q["config"]; len(vs) > 0 {
		raw := []byte(vs[0])
		if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, sc); err != nil {
			return streamConfig{}, &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: "config", code: "invalid_config",
				msg: fmt.Sprintf("config: not a chorus.v1.StreamingRecognitionConfig in JSON: %v", err)}
		}
		var keys map[string]json.RawMessage
		if json.Unmarshal(raw, &keys) == nil {
			_, camel := keys["interimResults"]
			_, snake := keys["interim_results"]
			if !camel && !snake {
				sc.InterimResults = true
			}
		}
	}
	if sc.Config == nil {
		sc.Config = &chorusv1.RecognitionConfig{}
	}
	// The audio is Opus, decoded to 16 kHz mono float samples before the worker sees it.
	sc.Config.Encoding, sc.Config.SampleRateHertz, sc.Config.AudioChannelCount = chorusv1.RecognitionConfig_FLOAT32, samplesPerSecond, 1
	cfg, err := checkStreamingConfig(sc)
	if err != nil {
		ae := statusToAPIError(err)
		ae.param = "config"
		return cfg, ae
	}
	return cfg, nil
}

// statusToAPIError maps the gRPC status openStream and checkStreamingConfig return to the
// HTTP answer of a WHIP POST.
func statusToAPIError(err error) *apiError {
	st := status.Convert(err)
	ae := &apiError{typ: typeInvalidRequest, msg: st.Message()}
	switch st.Code() {
	case codes.InvalidArgument, codes.OutOfRange:
		ae.status, ae.code = http.StatusBadRequest, "invalid_config"
	case codes.NotFound:
		ae.status, ae.code = http.StatusNotFound, "model_not_found"
	case codes.Unimplemented:
		ae.status, ae.code = http.StatusNotImplemented, "not_implemented"
	case codes.ResourceExhausted:
		ae.status, ae.typ, ae.code, ae.retryAfter = http.StatusServiceUnavailable, typeRateLimit, "too_many_streams", 1
	case codes.Unavailable:
		ae.status, ae.typ, ae.code, ae.retryAfter = http.StatusServiceUnavailable, typeServer, "unavailable", 1
	case codes.FailedPrecondition:
		ae.status, ae.code = http.StatusConflict, "failed_precondition"
	default:
		ae.status, ae.typ = http.StatusInternalServerError, typeServer
	}
	return ae
}

// checkOffer refuses, with a 400 that says why, offers that pion would either reject with a
// vague error or accept into a session that can never produce text: malformed SDP, no
// audio, audio without Opus, no data channel for the results.
func checkOffer(body []byte) error {
	bad := func(code, format string, args ...any) error {
		return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, code: code, msg: fmt.Sprintf(format, args...)}
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(string(body)); err != nil {
		return bad("malformed_sdp", "the body is not a valid SDP offer: %v", err)
	}
	var audio, opusFound, data bool
	var offered []string
	for _, m := range sd.MediaDescriptions {
		switch m.MediaName.Media {
		case "audio":
			if m.MediaName.Port.Value == 0 {
				continue // a rejected or stopped section
			}
			audio = true
			for _, a := range m.Attributes {
				if a.Key != "rtpmap" {
					continue
				}
				_, enc, _ := strings.Cut(a.Value, " ")
				offered = append(offered, enc)
				if name, _, _ := strings.Cut(enc, "/"); strings.EqualFold(name, "opus") {
					opusFound = true
				}
			}
		case "application":
			data = true
		}
	}
	switch {
	case !audio:
		return bad("no_audio", "the offer has no audio section; add a sendonly (or sendrecv) audio transceiver")
	case !opusFound:
		return bad("unsupported_codec", "the offer's audio has no Opus (offered: %s); chorus decodes Opus only", strings.Join(offered, ", "))
	case !data:
		return bad("no_data_channel", "the offer has no data channel; create one before the offer: results are sent on it")
	}
	return nil
}

func newPeerID() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// peer is one WebRTC session: a PeerConnection whose audio track feeds a streamWorker and
// whose data channel carries the worker's responses.
type peer struct {
	s   *Server
	id  string
	log *slog.Logger
	pc  *webrtc.PeerConnection // set by negotiate before any callback can run

	// ctx ends everything: cancelled by ICE failure, a closed data channel, the connect
	// timeout, shutdown, or after the worker returned. Not stored past the peer's life.
	ctx    context.Context
	cancel context.CancelCauseFunc

	items  chan item     // the track reader and the data channel → the worker
	dcOpen chan struct{} // closed when the results channel is open
	done   chan struct{} // closed when the peer is fully closed and its slots released
	wg     sync.WaitGroup

	feedMu sync.Mutex // serializes what is handed to items, so eof comes after all audio
	ended  bool       // eof was handed; nothing more is

	dcMu sync.Mutex          // guards dc and the flags below
	dc   *webrtc.DataChannel // the first data channel the client announced
	open bool                // dcOpen was closed
	trk  *webrtc.TrackRemote // the audio track being read

	// waiting is when the track reader last started waiting for a packet (Unix ns), 0
	// while it is decoding or handing one over: endAudio uses it to tell that the audio
	// which reached the server has all been taken in.
	waiting atomic.Int64
}

// negotiate builds the PeerConnection, applies the offer and returns the answer with the
// server's candidates.
func (p *peer) negotiate(ctx context.Context, offer string) (string, error) {
	pc, err := p.s.rtc.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", err
	}
	p.pc = pc
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		p.log.Debug("webrtc connection state", "state", st.String())
		switch st {
		case webrtc.PeerConnectionStateFailed:
			p.cancel(errors.New("ICE failed"))
		case webrtc.PeerConnectionStateClosed:
			p.cancel(errors.New("peer connection closed"))
		}
	})
	pc.OnTrack(p.onTrack)
	pc.OnDataChannel(p.onDataChannel)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, code: "bad_offer", msg: fmt.Sprintf("the offer cannot be applied: %v", err)}
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, code: "bad_offer", msg: fmt.Sprintf("no answer to the offer: %v", err)}
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", err
	}
	t := time.NewTimer(gatherTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		return "", errors.New("ICE candidate gathering timed out")
	case <-ctx.Done():
		return "", ctx.Err()
	}
	return pc.LocalDescription().SDP, nil
}

// onTrack starts reading the first audio track; any other track is drained and ignored, so
// that its packets do not fill pion's buffers. Every receiver's RTCP is drained too, which
// the interceptors need to run.
func (p *peer) onTrack(track *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		for {
			if _, _, err := recv.ReadRTCP(); err != nil {
				return
			}
		}
	}()
	p.dcMu.Lock()
	first := p.trk == nil && track.Kind() == webrtc.RTPCodecTypeAudio
	if first {
		p.trk = track
	}
	p.dcMu.Unlock()
	if !first {
		p.log.Info("ignoring an extra track", "kind", track.Kind().String(), "codec", track.Codec().MimeType)
		go func() {
			defer p.wg.Done()
			for {
				if _, _, err := track.ReadRTP(); err != nil {
					return
				}
			}
		}()
		return
	}
	go func() {
		defer p.wg.Done()
		p.readAudio(track)
	}()
}

// readAudio decodes the Opus track to 16 kHz mono and hands it to the worker. Timestamp gaps
// (lost packets, discontinuous transmission) become silence, so that audio time stays
// wall-clock time; late or repeated packets are dropped. When the track ends, so does the
// client's audio (eof).
func (p *peer) readAudio(track *webrtc.TrackRemote) {
	dec, err := opus.NewDecoderWithOutput(samplesPerSecond, 1)
	if err != nil { // 16 kHz mono is always valid
		p.cancel(err)
		return
	}
	buf := make([]float32, opusRate*120/1000) // the longest Opus packet, 120 ms, with room
	const ticksPerSample = opusRate / samplesPerSecond
	var next uint32 // the RTP timestamp the next packet should have
	started := false
	badPackets := 0
	for {
		p.waiting.Store(time.Now().UnixNano())
		pkt, _, err := track.ReadRTP()
		p.waiting.Store(0)
		if err != nil {
			if errors.Is(err, io.EOF) {
				p.feed(item{eof: true, at: time.Now()})
			}
			return
		}
		now := time.Now()
		if len(pkt.Payload) == 0 {
			continue
		}
		if started {
			gap := int32(pkt.Timestamp - next)
			if gap < 0 {
				continue // late, reordered or duplicated: its time has been filled already
			}
			if gap > 0 {
				n := min(time.Duration(gap)*time.Second/opusRate, maxGap)
				p.feed(item{samples: make([]float32, int64(n)*samplesPerSecond/int64(time.Second)), at: now})
			}
		}
		n, err := dec.DecodeToFloat32(pkt.Payload, buf)
		if err != nil {
			if badPackets++; badPackets <= 3 {
				p.log.Warn("undecodable Opus packet dropped", "err", err, "bytes", len(pkt.Payload))
			}
			continue // the next packet's timestamp gap fills its time with silence
		}
		started = true
		next = pkt.Timestamp + uint32(n*ticksPerSample)
		if n > 0 {
			p.feed(item{samples: slices.Clone(buf[:n]), at: now})
		}
	}
}

// feed hands it to the worker unless the client's audio already ended; it gives up when the
// peer is closing.
func (p *peer) feed(it item) {
	p.feedMu.Lock()
	defer p.feedMu.Unlock()
	if p.ended {
		return
	}
	if it.eof || it.err != nil {
		p.ended = true
	}
	if it.samples != nil {
		if tap := p.s.rtc.onAudio.Load(); tap != nil {
			(*tap)(p.id, it.samples)
		}
	}
	select {
	case p.items <- it:
	case <-p.ctx.Done():
	}
}

// endAudio ends the client's audio (DELETE): what was heard is finalized and sent. Packets
// that reached the server before the DELETE may still sit in pion's buffers while the
// worker is busy, so it first waits (at most settleTimeout) until the reader has been
// waiting for a packet for settleIdle: the audio received so far has then all been taken in.
func (p *peer) endAudio() {
	p.dcMu.Lock()
	reading := p.trk != nil
	p.dcMu.Unlock()
	for deadline := time.Now().Add(settleTimeout); reading && time.Now().Before(deadline) && p.ctx.Err() == nil; {
		if w := p.waiting.Load(); w != 0 && time.Since(time.Unix(0, w)) >= settleIdle {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.feed(item{eof: true, at: time.Now()})
}

// onDataChannel takes the first channel the client opened as the results channel.
func (p *peer) onDataChannel(dc *webrtc.DataChannel) {
	p.dcMu.Lock()
	if p.dc != nil {
		p.dcMu.Unlock()
		p.log.Info("closing an extra data channel", "label", dc.Label())
		dc.Close()
		return
	}
	p.dc = dc
	p.dcMu.Unlock()
	dc.OnOpen(func() {
		p.dcMu.Lock()
		defer p.dcMu.Unlock()
		if !p.open {
			p.open = true
			close(p.dcOpen)
		}
	})
	// A closed channel is a closed tab (or a client done with the session): nobody can
	// receive results any more.
	dc.OnClose(func() { p.cancel(errors.New("data channel closed")) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		var req chorusv1.StreamingRecognizeRequest
		if err := protojson.Unmarshal(m.Data, &req); err != nil {
			p.feed(item{err: status.Errorf(codes.InvalidArgument, "data channel message: not a chorus.v1.StreamingRecognizeRequest in JSON: %v", err), at: time.Now()})
			return
		}
		switch req.GetStreamingRequest().(type) {
		case *chorusv1.StreamingRecognizeRequest_Finalize:
			p.feed(item{finalize: true, at: time.Now()})
		default:
			p.feed(item{err: status.Error(codes.InvalidArgument, `data channel message: only {"finalize":{}} is accepted (audio comes on the track, the config in the WHIP URL)`), at: time.Now()})
		}
	})
}

// Send implements responseSink: the response as protojson text on the data channel. Only
// the worker calls it, after the channel opened.
func (p *peer) Send(r *chorusv1.StreamingRecognizeResponse) error {
	b, err := protojson.Marshal(r)
	if err != nil {
		return status.Errorf(codes.Internal, "encode response: %v", err)
	}
	return p.sendText(string(b))
}

func (p *peer) sendText(s string) error {
	p.dcMu.Lock()
	dc := p.dc
	p.dcMu.Unlock()
	if dc == nil {
		return status.Error(codes.Unavailable, "no data channel")
	}
	if err := dc.SendText(s); err != nil {
		return status.Errorf(codes.Unavailable, "data channel: %v", err)
	}
	return nil
}

// rtcError is the data channel's last message when a stream ends in error.
type rtcError struct {
	Error struct {
		Code    int    `json:"code"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"error"`
}

// serve runs the session once negotiated: it waits for the results channel to open (at most
// ConnectTimeout), runs the worker until the stream ends, sends its error if any, and closes
// the peer, releasing the stream slot, the model pin and the peer slot.
func (p *peer) serve(w *streamWorker, closeStream func()) {
	rtc := p.s.rtc
	defer func() {
		p.flush()
		p.cancel(errors.New("session over"))
		p.pc.Close()
		p.wg.Wait() // the readers return once the connection is closed
		closeStream()
		rtc.mu.Lock()
		delete(rtc.sessions, p.id)
		rtc.mu.Unlock()
		rtc.peers.leave()
		close(p.done)
	}()
	t := time.NewTimer(rtc.cfg.ConnectTimeout)
	defer t.Stop()
	select {
	case <-p.dcOpen:
	case <-t.C:
		p.log.Info("webrtc peer did not connect in time; closing", "timeout", rtc.cfg.ConnectTimeout)
		return
	case <-p.ctx.Done():
		p.log.Info("webrtc peer closed before connecting", "cause", context.Cause(p.ctx))
		return
	case <-p.s.drain:
		return
	}
	p.log.Debug("webrtc peer connected")
	err := w.run(p.ctx, p.items)
	if err == nil || p.ctx.Err() != nil {
		p.log.Debug("webrtc session ended", "err", err, "cause", context.Cause(p.ctx))
		return
	}
	st := status.Convert(err)
	var e rtcError
	e.Error.Code, e.Error.Status, e.Error.Message = int(st.Code()), codeName(st.Code()), st.Message()
	b, _ := json.Marshal(e)
	p.sendText(string(b))
	p.log.Debug("webrtc session ended with an error", "err", err)
}

// codeName is a gRPC code's canonical name ("INVALID_ARGUMENT"), as google.rpc.Status JSON
// has it.
func codeName(c codes.Code) string {
	n := c.String() // "InvalidArgument"
	var b strings.Builder
	for i, r := range n {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

// flush waits, at most flushTimeout, until the data channel has handed its queued messages
// to SCTP's send path, so that closing the peer does not cut off the last finals.
func (p *peer) flush() {
	p.dcMu.Lock()
	dc, open := p.dc, p.open
	p.dcMu.Unlock()
	if dc == nil || !open || p.ctx.Err() != nil {
		return
	}
	deadline := time.Now().Add(flushTimeout)
	for dc.BufferedAmount() > 0 && time.Now().Before(deadline) && p.ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	// BufferedAmount counts what SCTP has not yet sent, not what the peer acknowledged;
	// closing the data channel first makes SCTP deliver what it holds before it resets the
	// stream, and the peer sees the channel close after the last message.
	dc.GracefulClose()
}

// pionLogger routes pion's logs into the server's logger: its Info and Warn at Debug (they
// are per-connection chatter, such as ICE pinging before the client's first check arrives,
// which is normal without trickle ICE) and its errors at Warn.
type pionLogger struct{ log *slog.Logger }

func (l pionLogger) NewLogger(scope string) logging.LeveledLogger {
	return pionScope{l.log.With("pion", scope)}
}

type pionScope struct{ log *slog.Logger }

func (l pionScope) Trace(string)                 {}
func (l pionScope) Tracef(string, ...any)        {}
func (l pionScope) Debug(string)                 {}
func (l pionScope) Debugf(string, ...any)        {}
func (l pionScope) Info(msg string)              { l.log.Debug(msg) }
func (l pionScope) Infof(f string, args ...any)  { l.log.Debug(fmt.Sprintf(f, args...)) }
func (l pionScope) Warn(msg string)              { l.log.Warn(msg) }
func (l pionScope) Warnf(f string, args ...any)  { l.log.Warn(fmt.Sprintf(f, args...)) }
func (l pionScope) Error(msg string)             { l.log.Warn(msg) }
func (l pionScope) Errorf(f string, args ...any) { l.log.Warn(fmt.Sprintf(f, args...)) }
