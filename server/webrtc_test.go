package server

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr/transcribe"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"github.com/pion/ice/v4"
	"github.com/pion/opus"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"google.golang.org/protobuf/encoding/protojson"
)

// rtcTestConfig keeps ICE on loopback: the tests never send to another address.
func rtcTestConfig() WebRTCConfig {
	return WebRTCConfig{ICELoopback: true, ICEInterfaces: []string{"lo"}}
}

// wavBytes is samples (16 kHz mono) as a 16-bit WAV file.
func wavBytes(samples []float32) []byte {
	var b bytes.Buffer
	pcm := make([]byte, 2*len(samples))
	for i, v := range samples {
		x := max(-32768, min(32767, math.Round(float64(v)*32768)))
		binary.LittleEndian.PutUint16(pcm[2*i:], uint16(int16(x)))
	}
	w := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	w(uint32(36 + len(pcm)))
	b.WriteString("WAVEfmt ")
	w(uint32(16))
	w(uint16(1))
	w(uint16(1))
	w(uint32(16000))
	w(uint32(32000))
	w(uint16(2))
	w(uint16(16))
	b.WriteString("data")
	w(uint32(len(pcm)))
	b.Write(pcm)
	return b.Bytes()
}

// encodeOpus encodes samples with opusenc (Debian opus-tools, installed by `make deps`) in
// 20-ms packets, as a browser sends them, and returns the Opus packets of the Ogg file.
func encodeOpus(t *testing.T, samples []float32) [][]byte {
	t.Helper()
	bin, err := exec.LookPath("opusenc")
	if err != nil {
		t.Fatal("opusenc not found: install Debian's opus-tools (make deps); the WebRTC tests encode their audio with it")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.opus")
	if err := os.WriteFile(in, wavBytes(samples), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "--quiet", "--framesize", "20", "--bitrate", "32", in, out).CombinedOutput(); err != nil {
		t.Fatalf("opusenc: %v: %s", err, b)
	}
	ogg, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pkts, err := oggPackets(ogg)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) < 3 || !bytes.HasPrefix(pkts[0], []byte("OpusHead")) || !bytes.HasPrefix(pkts[1], []byte("OpusTags")) {
		t.Fatalf("opusenc output is not an Ogg Opus stream (%d packets)", len(pkts))
	}
	return pkts[2:]
}

// oggPackets splits an Ogg stream into its packets (RFC 3533: a lacing value below 255 ends
// a packet; packets may span pages).
func oggPackets(b []byte) ([][]byte, error) {
	var pkts [][]byte
	var cur []byte
	for len(b) > 0 {
		if len(b) < 27 || string(b[:4]) != "OggS" {
			return nil, errors.New("bad Ogg page")
		}
		nseg := int(b[26])
		if len(b) < 27+nseg {
			return nil, errors.New("short Ogg page")
		}
		lacing := b[27 : 27+nseg]
		data := b[27+nseg:]
		for _, l := range lacing {
			if int(l) > len(data) {
				return nil, errors.New("short Ogg segment")
			}
			cur = append(cur, data[:l]...)
			data = data[l:]
			if l < 255 {
				pkts = append(pkts, cur)
				cur = nil
			}
		}
		b = data
	}
	return pkts, nil
}

// decodeOpus decodes packets as the server does (pion/opus, 16 kHz mono), giving the audio
// the server's session receives.
func decodeOpus(t *testing.T, pkts [][]byte) []float32 {
	t.Helper()
	dec, err := opus.NewDecoderWithOutput(16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]float32, 5760)
	var out []float32
	for _, p := range pkts {
		n, err := dec.DecodeToFloat32(p, buf)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, buf[:n]...)
	}
	return out
}

// grpcFinals streams samples as FLOAT32 (so the server gets exactly these values) on the
// gRPC path, ends the stream, and returns the finals.
func grpcFinals(t *testing.T, g *grpcTest, samples []float32) []string {
	t.Helper()
	st, err := chorusv1.NewRecognizerClient(g.cc).StreamingRecognize(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(configMsg(&chorusv1.StreamingRecognitionConfig{InterimResults: true, Config: &chorusv1.RecognitionConfig{
		Encoding: chorusv1.RecognitionConfig_FLOAT32, SampleRateHertz: 16000}})); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(samples); off += 1600 {
		x := samples[off:min(off+1600, len(samples))]
		b := make([]byte, 4*len(x))
		for i, v := range x {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		if err := st.Send(audioMsg(b)); err != nil {
			t.Fatal(err)
		}
	}
	st.CloseSend()
	var finals []string
	for {
		r, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return finals
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, res := range r.GetResults() {
			if res.GetIsFinal() {
				finals = append(finals, res.GetAlternatives()[0].GetTranscript())
			}
		}
	}
}

// whipClient is a pion peer that talks to the server as a browser does: a sendonly Opus
// track and a data channel it created, offered with WHIP.
type whipClient struct {
	t        *testing.T
	base     string
	pc       *webrtc.PeerConnection
	track    *webrtc.TrackLocalStaticSample
	location string

	mu     sync.Mutex
	msgs   []map[string]json.RawMessage // every data-channel message, decoded as JSON
	resps  []*chorusv1.StreamingRecognizeResponse
	times  []time.Time // arrival of each of resps
	eof    chan struct{}
	closed chan struct{}
	open   chan struct{}
	dc     *webrtc.DataChannel // the results channel
}

// newWHIPClient builds the client's peer connection with pion's defaults (all its codecs
// and interceptors, as a real client has), ICE on loopback only.
func newWHIPClient(t *testing.T, base string) *whipClient {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetInterfaceFilter(func(n string) bool { return n == "lo" })
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c := &whipClient{t: t, base: base, pc: pc, eof: make(chan struct{}), closed: make(chan struct{}), open: make(chan struct{})}
	t.Cleanup(func() { pc.Close() })
	return c
}

// addOpusTrack adds a sendonly Opus track and drains its RTCP.
func (c *whipClient) addOpusTrack() {
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "audio", "chorus-test")
	if err != nil {
		c.t.Fatal(err)
	}
	sender, err := c.pc.AddTrack(tr)
	if err != nil {
		c.t.Fatal(err)
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	c.track = tr
}

// addDataChannel creates the results channel and records what arrives on it.
func (c *whipClient) addDataChannel() {
	dc, err := c.pc.CreateDataChannel("chorus", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	c.dc = dc
	dc.OnOpen(func() { close(c.open) })
	dc.OnClose(func() { close(c.closed) })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		now := time.Now()
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(m.Data, &raw); err != nil {
			c.t.Errorf("data channel message %q is not JSON: %v", m.Data, err)
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.msgs = append(c.msgs, raw)
		if _, isErr := raw["error"]; isErr {
			return
		}
		var r chorusv1.StreamingRecognizeResponse
		if err := protojson.Unmarshal(m.Data, &r); err != nil {
			c.t.Errorf("data channel message %s is not a StreamingRecognizeResponse: %v", m.Data, err)
			return
		}
		c.resps = append(c.resps, &r)
		c.times = append(c.times, now)
		if r.GetIsEof() {
			close(c.eof)
		}
	})
}

// offer makes the offer, waits for the client's candidates, and POSTs it; it returns the
// raw response (the answer is applied when the status is 201).
func (c *whipClient) offer(query string) response {
	c.t.Helper()
	o, err := c.pc.CreateOffer(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(o); err != nil {
		c.t.Fatal(err)
	}
	<-gathered
	return c.post(c.pc.LocalDescription().SDP, query)
}

func (c *whipClient) post(sdp, query string) response {
	c.t.Helper()
	u := c.base + routeWHIP
	if query != "" {
		u += "?" + query
	}
	r := do(c.t, http.DefaultClient, http.MethodPost, u, "application/sdp", strings.NewReader(sdp))
	if r.status == http.StatusCreated {
		c.location = r.header.Get("Location")
		if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(r.body)}); err != nil {
			c.t.Fatalf("apply the answer: %v", err)
		}
	}
	return r
}

// connect offers an Opus track and a data channel and waits for the channel to open.
func (c *whipClient) connect(query string) {
	c.t.Helper()
	c.addOpusTrack()
	c.addDataChannel()
	if r := c.offer(query); r.status != http.StatusCreated {
		c.t.Fatalf("WHIP POST: %d %s", r.status, r.body)
	}
	select {
	case <-c.open:
	case <-time.After(10 * time.Second):
		c.t.Fatal("data channel not open after 10 s")
	}
}

// send sends Opus packets of 20 ms, paced at speed times real time.
func (c *whipClient) send(pkts [][]byte, speed float64) error {
	start := time.Now()
	for i, p := range pkts {
		if d := time.Until(start.Add(time.Duration(float64(i) * float64(20*time.Millisecond) / speed))); d > 0 {
			time.Sleep(d)
		}
		if err := c.track.WriteSample(media.Sample{Data: p, Duration: 20 * time.Millisecond}); err != nil {
			return err
		}
	}
	return nil
}

// sendOnResults sends a text message on the results channel.
func (c *whipClient) sendOnResults(msg string) {
	c.t.Helper()
	if err := c.dc.SendText(msg); err != nil {
		c.t.Fatal(err)
	}
}

// end DELETEs the session and waits for is_eof on the data channel.
func (c *whipClient) end() {
	c.t.Helper()
	r := do(c.t, http.DefaultClient, http.MethodDelete, c.base+c.location, "", nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("DELETE %s: %d %s", c.location, r.status, r.body)
	}
	select {
	case <-c.eof:
	case <-time.After(5 * time.Second):
		c.t.Fatal("no is_eof on the data channel after DELETE")
	}
}

func (c *whipClient) finals() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, r := range c.resps {
		for _, res := range r.GetResults() {
			if res.GetIsFinal() {
				out = append(out, res.GetAlternatives()[0].GetTranscript())
			}
		}
	}
	return out
}

// startRTC starts a server with the default model and loopback ICE (and gRPC for the
// reference path), plus the HTTP base URL.
func startRTC(t *testing.T, cfg Config) (*grpcTest, string) {
	t.Helper()
	if cfg.WebRTC.ICEInterfaces == nil {
		w := rtcTestConfig()
		w.MaxPeers, w.ConnectTimeout = cfg.WebRTC.MaxPeers, cfg.WebRTC.ConnectTimeout
		cfg.WebRTC = w
	}
	g := startGRPC(t, cfg)
	return g, "http://" + g.addr
}

// waitPeers waits until the server holds n peers.
func waitPeers(t *testing.T, s *Server, n int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.rtc.peers.inflight() != n || s.streams.inflight() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d peers and %d streams after %v, want %d", s.rtc.peers.inflight(), s.streams.inflight(), within, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebRTCMatchesGRPC streams an Opus-encoded speech clip from a pion peer through WHIP,
// and checks the data channel carries what the gRPC stream sends for the same decoded audio:
// the same finals (which equal the whole-file transcription), interim results, a constant
// served_by, the echoed request id, is_eof last; and that DELETE leaves nothing behind.
func TestWebRTCMatchesGRPC(t *testing.T) {
	checkLeaks(t)
	g, base := startRTC(t, Config{})
	clip := speechClip(t)
	pkts := encodeOpus(t, clip)
	decoded := decodeOpus(t, pkts)

	var tapped []float32
	var tapMu sync.Mutex
	tap := audioTap(func(_ string, x []float32) { tapMu.Lock(); tapped = append(tapped, x...); tapMu.Unlock() })
	g.s.rtc.onAudio.Store(&tap)

	c := newWHIPClient(t, base)
	c.connect("config=" + url.QueryEscape(`{"config":{"requestId":"rtc-1"}}`))
	if !strings.HasPrefix(c.location, routeWHIP+"/") {
		t.Errorf("Location %q", c.location)
	}
	if err := c.send(pkts, 1); err != nil {
		t.Fatal(err)
	}
	// DELETE ends the session with whatever the server has read from the track; packets
	// still in flight on a loaded machine would be cut off, so wait for them to arrive.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		tapMu.Lock()
		n := len(tapped)
		tapMu.Unlock()
		if n >= len(decoded) {
			break
		}
	}
	c.end()

	tapMu.Lock()
	if len(tapped) != len(decoded) {
		t.Errorf("server decoded %d samples, the client's packets decode to %d", len(tapped), len(decoded))
	}
	for i := range min(len(tapped), len(decoded)) {
		if tapped[i] != decoded[i] {
			t.Fatalf("server's decoded audio differs from the packets' at sample %d", i)
		}
	}
	tapMu.Unlock()

	want := grpcFinals(t, g, decoded)
	got := c.finals()
	if strings.Join(got, "|") != strings.Join(want, "|") || len(got) == 0 {
		t.Errorf("WebRTC finals %q, gRPC finals of the same audio %q", got, want)
	}
	whole, err := loadDefault(t).Transcribe(t.Context(), decoded, transcribe.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != strings.TrimSpace(whole.Text) {
		t.Errorf("WebRTC finals %q, transcription of the decoded audio %q", got, whole.Text)
	}

	c.mu.Lock()
	interims := 0
	for i, r := range c.resps {
		if r.GetServedBy().GetModel() != "chorus-micro" || r.GetServedBy().GetRouter() != "dense" || r.GetRequestId() != "rtc-1" {
			t.Errorf("response %d: served_by %v, request id %q", i, r.GetServedBy(), r.GetRequestId())
		}
		for _, res := range r.GetResults() {
			if !res.GetIsFinal() {
				interims++
			}
		}
		if r.GetIsEof() != (i == len(c.resps)-1) {
			t.Errorf("is_eof on response %d of %d", i, len(c.resps))
		}
	}
	c.mu.Unlock()
	if interims == 0 {
		t.Error("no interim results (they are on by default)")
	}
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Error("the server did not close the data channel after the session ended")
	}
	waitPeers(t, g.s, 0, 5*time.Second)
	if r := do(t, http.DefaultClient, http.MethodDelete, base+c.location, "", nil); r.status != http.StatusNotFound {
		t.Errorf("DELETE of an ended session: %d, want 404", r.status)
	}
}

// minimalOffer is a hand-written offer whose audio offers only the given rtpmap.
func minimalOffer(audio bool, rtpmap string, data bool) string {
	s := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n" +
		"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n"
	if audio {
		s += "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=rtcp-mux\r\na=rtpmap:0 " + rtpmap + "\r\n"
	}
	if data {
		s += "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=setup:actpass\r\na=sctp-port:5000\r\n"
	}
	return s
}

// TestWHIPBadInput sends what broken or hostile WHIP clients send and checks each gets a
// clear HTTP 4xx (or, for a peer that never completes ICE, a clean close after the connect
// timeout), that nothing is left admitted, and that no goroutine leaks.
func TestWHIPBadInput(t *testing.T) {
	checkLeaks(t)
	g, base := startRTC(t, Config{WebRTC: WebRTCConfig{MaxPeers: 1, ConnectTimeout: 1500 * time.Millisecond}})
	for _, tc := range []struct {
		name, ctype, body, query string
		status                   int
		code                     string
	}{
		{"malformed SDP", "application/sdp", "this is not SDP", "", 400, "malformed_sdp"},
		{"no audio", "application/sdp", minimalOffer(false, "", true), "", 400, "no_audio"},
		{"unsupported codec", "application/sdp", minimalOffer(true, "PCMU/8000", true), "", 400, "unsupported_codec"},
		{"no data channel", "application/sdp", minimalOffer(true, "opus/48000/2", false), "", 400, "no_data_channel"},
		{"wrong content type", "application/json", "{}", "", 415, "unsupported_media_type"},
		{"bad config JSON", "application/sdp", minimalOffer(true, "opus/48000/2", true), "config=" + url.QueryEscape("{nope"), 400, "invalid_config"},
		{"unknown model", "application/sdp", minimalOffer(true, "opus/48000/2", true), "config=" + url.QueryEscape(`{"config":{"model":"nope"}}`), 404, "model_not_found"},
		{"unknown router", "application/sdp", minimalOffer(true, "opus/48000/2", true), "config=" + url.QueryEscape(`{"routing":{"router":"magic"}}`), 400, "invalid_config"},
		{"oversized offer", "application/sdp", strings.Repeat("a=x\r\n", 20000), "", 413, "offer_too_large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := base + routeWHIP
			if tc.query != "" {
				u += "?" + tc.query
			}
			r := do(t, http.DefaultClient, http.MethodPost, u, tc.ctype, strings.NewReader(tc.body))
			if r.status != tc.status {
				t.Fatalf("status %d (%s), want %d", r.status, r.body, tc.status)
			}
			if e := apiErrorOf(t, r); e.Error.Code == nil || *e.Error.Code != tc.code {
				t.Errorf("error %s, want code %q", r.body, tc.code)
			}
		})
	}
	if r := do(t, http.DefaultClient, http.MethodGet, base+routeWHIP, "", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET %s: %d, want 405", routeWHIP, r.status)
	}
	if r := do(t, http.DefaultClient, http.MethodDelete, base+routeWHIP+"/nosuchsession", "", nil); r.status != http.StatusNotFound {
		t.Errorf("DELETE of an unknown session: %d, want 404", r.status)
	}
	if r := do(t, http.DefaultClient, http.MethodPatch, base+routeWHIP+"/x", "application/trickle-ice-sdpfrag", nil); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PATCH (trickle ICE): %d, want 405", r.status)
	}
	waitPeers(t, g.s, 0, time.Second)

	t.Run("never completes ICE", func(t *testing.T) {
		// A valid offer whose client never answers connectivity checks: the server must
		// give up after ConnectTimeout and release everything.
		c := newWHIPClient(t, base)
		c.addOpusTrack()
		c.addDataChannel()
		o, err := c.pc.CreateOffer(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.pc.Close() // its candidates' sockets are gone: checks go nowhere
		r := do(t, http.DefaultClient, http.MethodPost, base+routeWHIP, "application/sdp", strings.NewReader(o.SDP))
		if r.status != http.StatusCreated {
			t.Fatalf("offer: %d %s", r.status, r.body)
		}
		waitPeers(t, g.s, 1, time.Second)
		// At the peer limit of 1 meanwhile: a second offer is refused with 503.
		c2 := newWHIPClient(t, base)
		c2.addOpusTrack()
		c2.addDataChannel()
		if r := c2.offer(""); r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
			t.Errorf("offer over the peer limit: %d %s, want 503 with Retry-After", r.status, r.body)
		}
		waitPeers(t, g.s, 0, 5*time.Second)
	})

	t.Run("client vanishes", func(t *testing.T) {
		// A closed tab: the client's peer closes mid-stream without a DELETE. The data
		// channel's close (or ICE failing) must end the session.
		c := newWHIPClient(t, base)
		c.connect("")
		if err := c.send(encodeOpus(t, refSamples(t)[:16000]), 4); err != nil {
			t.Fatal(err)
		}
		waitPeers(t, g.s, 1, time.Second)
		c.pc.Close()
		waitPeers(t, g.s, 0, 10*time.Second)
	})

	t.Run("data channel message", func(t *testing.T) {
		// Audio in a data-channel message is refused with the gRPC status as JSON.
		c := newWHIPClient(t, base)
		c.connect("")
		c.sendOnResults(`{"audioContent":"AAAA"}`)
		deadline := time.Now().Add(5 * time.Second)
		for {
			c.mu.Lock()
			var last map[string]json.RawMessage
			if len(c.msgs) > 0 {
				last = c.msgs[len(c.msgs)-1]
			}
			c.mu.Unlock()
			if e, ok := last["error"]; ok {
				var ee struct {
					Status string `json:"status"`
				}
				json.Unmarshal(e, &ee)
				if ee.Status != "INVALID_ARGUMENT" {
					t.Errorf("error message %s, want INVALID_ARGUMENT", e)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no error message after sending audio on the data channel")
			}
			time.Sleep(10 * time.Millisecond)
		}
		waitPeers(t, g.s, 0, 5*time.Second)
	})
}

// TestWebRTCConcurrentPeers streams 8 different clips from 8 pion peers at once, in real
// time, and checks every peer gets its own clip's transcript (the gRPC path's finals for
// the same decoded audio) without errors.
func TestWebRTCConcurrentPeers(t *testing.T) {
	checkLeaks(t)
	const n = 8
	g, base := startRTC(t, Config{})
	clip := speechClip(t)
	// Eight distinct clips: the speech clip at different gains and with different lead-in
	// silences, so a transcript sent to the wrong peer would show.
	type job struct {
		pkts [][]byte
		want []string
	}
	jobs := make([]job, n)
	for i := range jobs {
		lead := make([]float32, 1600*(i+1))
		x := append(lead, clip...)
		gain := float32(0.6 + 0.1*float64(i))
		for k := range x {
			x[k] *= gain
		}
		jobs[i].pkts = encodeOpus(t, x)
		jobs[i].want = grpcFinals(t, g, decodeOpus(t, jobs[i].pkts))
	}
	distinct := map[string]bool{}
	for _, j := range jobs {
		distinct[strings.Join(j.want, "|")] = true
	}
	t.Logf("%d distinct transcripts among the %d clips", len(distinct), n)
	if len(distinct) < n/2 { // else a transcript sent to the wrong peer could go unnoticed
		t.Fatalf("only %d distinct transcripts among the %d clips", len(distinct), n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	clients := make([]*whipClient, n)
	for i := range n {
		clients[i] = newWHIPClient(t, base)
		clients[i].connect("")
	}
	waitPeers(t, g.s, n, 5*time.Second)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := clients[i].send(jobs[i].pkts, 1); err != nil {
				errs <- fmt.Errorf("peer %d: send: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range clients {
		c.end()
		got := c.finals()
		if strings.Join(got, "|") != strings.Join(jobs[i].want, "|") || len(got) == 0 {
			t.Errorf("peer %d: finals %q, want %q", i, got, jobs[i].want)
		}
		c.mu.Lock()
		for _, m := range c.msgs {
			if e, ok := m["error"]; ok {
				t.Errorf("peer %d: error %s", i, e)
			}
		}
		c.mu.Unlock()
	}
	waitPeers(t, g.s, 0, 5*time.Second)
}

// TestWebRTCDrain shuts the server down under a live WebRTC stream: what was heard is
// finalized and sent on the data channel, then an UNAVAILABLE error message, and the peer
// closes; Serve returns cleanly.
func TestWebRTCDrain(t *testing.T) {
	checkLeaks(t)
	g, base := startRTC(t, Config{ShutdownGrace: 5 * time.Second})
	pkts := encodeOpus(t, refSamples(t)[:2*16000])
	c := newWHIPClient(t, base)
	c.connect("")
	if err := c.send(pkts, 1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	g.stop(t)
	select {
	case <-c.closed:
	case <-time.After(5 * time.Second):
		t.Fatal("data channel still open after shutdown")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	finals, sawErr := 0, false
	for _, r := range c.resps {
		for _, res := range r.GetResults() {
			if res.GetIsFinal() {
				finals++
			}
		}
	}
	if len(c.msgs) > 0 {
		if e, ok := c.msgs[len(c.msgs)-1]["error"]; ok && strings.Contains(string(e), "UNAVAILABLE") {
			sawErr = true
		}
	}
	if finals == 0 || !sawErr {
		t.Errorf("%d finals, UNAVAILABLE last: %v; want finals then UNAVAILABLE", finals, sawErr)
	}
}

// TestPage checks the page is served at exactly / with its assets, and that unknown paths
// are still 404.
func TestPage(t *testing.T) {
	_, ts := newTestServer(t, Config{})
	r := do(t, ts.Client(), http.MethodGet, ts.URL+"/", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") || !bytes.Contains(r.body, []byte(`id="mic"`)) {
		t.Fatalf("GET /: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, asset := range []string{"/web/app.js", "/web/style.css"} {
		if r := do(t, ts.Client(), http.MethodGet, ts.URL+asset, "", nil); r.status != 200 || len(r.body) == 0 {
			t.Errorf("GET %s: %d", asset, r.status)
		}
	}
	for _, p := range []string{"/nope", "/web/", "/web/missing.js", "/index.html/x"} {
		if r := do(t, ts.Client(), http.MethodGet, ts.URL+p, "", nil); r.status != 404 {
			t.Errorf("GET %s: %d, want 404", p, r.status)
		}
	}
	if r := do(t, ts.Client(), http.MethodPost, ts.URL+"/", "text/plain", nil); r.status != 405 {
		t.Errorf("POST /: %d, want 405", r.status)
	}
}
