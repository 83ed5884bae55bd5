package server

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	asrmetrics "github.com/chorus-asr/chorus/asr/metrics"
	"github.com/chorus-asr/chorus/asr/stream"
	"github.com/chorus-asr/chorus/asr/transcribe"
	"github.com/chromedp/chromedp"
)

// findChromium returns the Chromium binary, or skips the test when there is none and
// CHORUS_E2E is unset; with CHORUS_E2E=1 a missing browser is a failure, so CI cannot pass
// without having run the test.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CHORUS_E2E") == "" {
		t.Skip("chromium is not installed (Debian package chromium; `make deps` installs it); set CHORUS_E2E=1 to make its absence a failure")
	}
	t.Fatal("CHORUS_E2E is set but no chromium binary is on PATH (Debian package chromium; `make deps` installs it)")
	return ""
}

// pageSession is what the page reports after one microphone session.
type pageSession struct {
	Transcript string       `json:"transcript"` // the final spans' text, as shown
	Finals     []string     `json:"finals"`
	FinalAt    []float64    `json:"finalAt"`    // ms, performance.now()
	FinalSpans [][2]float64 `json:"finalSpans"` // s, each final's result_start_time and result_end_time
	MicOpened  float64      `json:"micOpened"`  // ms: the fake microphone's file starts here
	Error      string       `json:"error"`
	State      string       `json:"state"`
	Model      string       `json:"model"`
	Router     string       `json:"router"`
	Pathway    string       `json:"pathway"`
}

// TestPageChromium drives the page in headless Chromium whose fake microphone plays a WAV
// file: the page must show, as its final transcript, what `chorus transcribe` (whole-file
// Variant.Transcribe with its default options) gives for each utterance's audio as the
// server received it, and
// the gRPC stream's finals for that audio; served_by and the dense-model pathway state must
// be shown. It saves a screenshot to $CHORUS_ARTIFACTS (or the test's temp dir) and logs
// the end-of-speech → final-on-page latency. CHORUS_E2E_RUNS=N repeats the session N times
// in the same page (for a latency median).
//
// The page's text must match `chorus transcribe --beam 5` of the WAV file itself (joint CTC,
// the model's language model), and the server decodes finals with that beam (`chorus serve
// --beam 5`; its default is greedy, for capacity). Chromium's capture resampling and Opus
// coding change the samples, and the utterance the server cuts is not the whole file, so
// "match" is at most maxFileWER of word errors after the scoring normaliser (one word in this
// clip's eleven): at beam 5 every one of 18 runs was within one word, and 10 of the 15 logged
// equal outright; greedy, they differed in every run tried; at chorus transcribe's default beam of 10 the file's own
// transcription came out better ("brown", "dog") than the page's, two words apart.
// The text must equal, exactly, the gRPC finals and the transcription of the audio the
// server received.
func TestPageChromium(t *testing.T) {
	const maxFileWER = 0.1
	chromium := findChromium(t)
	const beam = 5
	g, base := startRTC(t, Config{Stream: stream.Config{BeamSize: beam}})
	fileOpts := transcribe.DefaultOptions()
	fileOpts.SetBeam(beam) // chorus transcribe --beam 5

	// The file: 1 s of silence (the page opens the microphone only once connected, but
	// Chromium's capture takes a moment to start), the speech clip, 1.5 s of silence.
	clip := speechClip(t)
	const lead, trail = 16000, 24000
	x := make([]float32, lead+len(clip)+trail)
	copy(x[lead:], clip)
	speechEnd := time.Duration(lead+len(clip)-800) * time.Second / 16000 // speechClip keeps 50 ms after the speech
	dir := t.TempDir()
	wav := filepath.Join(dir, "speech.wav")
	if err := os.WriteFile(wav, wavBytes(x), 0o644); err != nil {
		t.Fatal(err)
	}
	fileText, err := loadDefault(t).Transcribe(t.Context(), x, fileOpts)
	if err != nil {
		t.Fatal(err)
	}

	var tapMu sync.Mutex
	tapped := map[string][]float32{}
	var order []string
	tap := audioTap(func(id string, s []float32) {
		tapMu.Lock()
		defer tapMu.Unlock()
		if _, ok := tapped[id]; !ok {
			order = append(order, id)
		}
		tapped[id] = append(tapped[id], s...)
	})
	g.s.rtc.onAudio.Store(&tap)

	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), chromiumOptions(chromium, wav)...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	runs := 1
	if n, err := strconv.Atoi(os.Getenv("CHORUS_E2E_RUNS")); err == nil && n > 1 {
		runs = n
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#mic`)); err != nil {
		t.Fatalf("open the page: %v", err)
	}
	var latencies []time.Duration
	for run := range runs {
		err := chromedp.Do(ctx,
			chromedp.Click(`#mic`),
			chromedp.WaitVisible(`body[data-state="live"]`),
			// Let the whole file play: the microphone opened just before "live".
			chromedp.Sleep(time.Duration(len(x))*time.Second/16000+300*time.Millisecond),
			chromedp.Click(`#mic`),
			chromedp.WaitVisible(`body[data-state="ended"], body[data-state="error"]`),
		)
		if err != nil {
			t.Fatalf("run %d: drive the page: %v", run, err)
		}
		ps, err := chromedp.Run(ctx, chromedp.Evaluate[pageSession](`({
				transcript: Array.from(document.querySelectorAll('#transcript .final')).map(e => e.textContent).join(' '),
				finals: chorus.finals, finalAt: chorus.finalAt, finalSpans: chorus.finalSpans, micOpened: chorus.micOpened || 0,
				error: chorus.error || '', state: document.body.dataset.state,
				model: document.getElementById('sb-model').textContent,
				router: document.getElementById('sb-router').textContent,
				pathway: document.getElementById('pathway-note').textContent,
			})`))
		if err != nil {
			t.Fatalf("run %d: read the page: %v", run, err)
		}
		if ps.Error != "" || ps.State != "ended" {
			t.Fatalf("run %d: page state %q, error %q", run, ps.State, ps.Error)
		}
		tapMu.Lock()
		if len(order) != run+1 {
			tapMu.Unlock()
			t.Fatalf("run %d: the server decoded audio from %d sessions", run, len(order))
		}
		got := tapped[order[run]]
		tapMu.Unlock()

		want := strings.Join(grpcFinals(t, g, got), " ")
		// Each final is `chorus transcribe` of the audio its utterance spans (the session's
		// contract; silence outside utterances belongs to none).
		var whole []string
		for _, sp := range ps.FinalSpans {
			a, b := min(int(sp[0]*16000), len(got)), min(int(sp[1]*16000+0.5), len(got))
			res, err := loadDefault(t).Transcribe(t.Context(), got[a:b], fileOpts)
			if err != nil {
				t.Fatal(err)
			}
			whole = append(whole, res.Text)
		}
		norm := func(s string) string { return strings.Join(strings.Fields(s), " ") }
		if norm(ps.Transcript) == "" || norm(ps.Transcript) != norm(want) {
			t.Errorf("run %d: page shows %q; the gRPC stream of the same audio gives %q", run, ps.Transcript, want)
		}
		if norm(ps.Transcript) != norm(strings.Join(whole, " ")) {
			t.Errorf("run %d: page shows %q; chorus transcribe of the utterances' audio as the server received it gives %q", run, ps.Transcript, whole)
		}
		c := asrmetrics.WordCounts(fileText.Text, ps.Transcript)
		if c.Rate() > maxFileWER {
			t.Errorf("run %d: page shows %q; chorus transcribe of the WAV file gives %q (%d word errors in %d)", run, ps.Transcript, fileText.Text, c.Errors(), c.Ref)
		}
		t.Logf("run %d: page %q; the WAV file's transcription %q (%d word errors); server received %.2f s of audio",
			run, norm(ps.Transcript), norm(fileText.Text), c.Errors(), float64(len(got))/16000)
		if ps.Model != "chorus-micro" || ps.Router != "dense" || !strings.Contains(ps.Pathway, "no experts") {
			t.Errorf("run %d: served by %q router %q, pathway note %q", run, ps.Model, ps.Router, ps.Pathway)
		}
		// The last final covers the end of the speech: its arrival on the page less the time
		// the speech ended in the file (the file starts playing when the microphone opens).
		if len(ps.FinalAt) > 0 && ps.MicOpened > 0 {
			lat := time.Duration((ps.FinalAt[len(ps.FinalAt)-1] - ps.MicOpened) * float64(time.Millisecond))
			latencies = append(latencies, lat-speechEnd)
		}
	}
	if len(latencies) > 0 {
		sorted := slices.Sorted(slices.Values(latencies))
		t.Logf("end of speech → final on the page over %d runs: median %v, all %v", len(sorted), sorted[len(sorted)/2].Round(time.Millisecond), latencies)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	out := os.Getenv("CHORUS_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(out, "page-chromium.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)
}

// TestPagePathwayChromium: on a model split into experts, a stream the page opens with the
// random router at k/E 1/4 comes back with activation pathways, and the page draws the
// layers × experts heatmap from them (and says how many layers and experts it drew).
func TestPagePathwayChromium(t *testing.T) {
	chromium := findChromium(t)
	_, base := startRTC(t, Config{Model: moeDefault(t), ModelName: "chorus-micro-moe"})
	clip := speechClip(t)
	x := make([]float32, 16000+len(clip)+16000)
	copy(x[16000:], clip)
	wav := filepath.Join(t.TempDir(), "speech.wav")
	if err := os.WriteFile(wav, wavBytes(x), 0o644); err != nil {
		t.Fatal(err)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), chromiumOptions(chromium, wav)...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#mic`),
		chromedp.SetValue(`#router`, "random"),
		chromedp.SetValue(`#fraction`, "0.25"),
		chromedp.Click(`#mic`),
		chromedp.WaitVisible(`body[data-state="live"]`),
		chromedp.Sleep(time.Duration(len(x))*time.Second/16000+300*time.Millisecond),
		chromedp.Click(`#mic`),
		chromedp.WaitVisible(`body[data-state="ended"], body[data-state="error"]`),
	)
	if err != nil {
		t.Fatalf("drive the page: %v", err)
	}
	type page struct {
		State, Error, Router, Note string
		Hidden                     bool
	}
	p, err := chromedp.Run(ctx, chromedp.Evaluate[page](`({
		state: document.body.dataset.state, error: chorus.error || '',
		router: document.getElementById('sb-router').textContent,
		note: document.getElementById('pathway-note').textContent,
		hidden: document.getElementById('heatmap').hidden,
	})`))
	if err != nil {
		t.Fatal(err)
	}
	if p.State != "ended" || p.Error != "" || p.Router != "random:4" {
		t.Fatalf("page state %q error %q router %q", p.State, p.Error, p.Router)
	}
	if want := fmt.Sprintf("%d layers × 16 experts", defaultLayers(t)); p.Hidden || !strings.Contains(p.Note, want) {
		t.Errorf("heatmap hidden %v, note %q; want %s drawn", p.Hidden, p.Note, want)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	out := os.Getenv("CHORUS_ARTIFACTS")
	if out == "" {
		out = t.TempDir()
	}
	if err := os.MkdirAll(out, 0o755); err == nil {
		shot := filepath.Join(out, "page-pathway-chromium.png")
		if err := os.WriteFile(shot, png, 0o644); err == nil {
			t.Logf("screenshot: %s", shot)
		}
	}
}

// chromiumOptions runs headless Chromium at path with a fake microphone playing wav once.
func chromiumOptions(path, wav string) []chromedp.ExecAllocatorOption {
	return append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav+"%noloop"),
		// ICE on loopback only, and no mDNS announcements of the browser's addresses: the
		// test's traffic stays on this machine.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"),
		chromedp.Flag("force-webrtc-ip-handling-policy", "default"),
		chromedp.WindowSize(1100, 900),
	)
}
