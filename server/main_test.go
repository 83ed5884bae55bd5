package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/tokenizer"
)

// Fixtures shared by every test, built once in TestMain.
var (
	// testVariant is a random two-layer Whisper with a trained English vocabulary, saved and
	// reopened the way a served model is. Its transcripts are gibberish; the tests check the
	// plumbing and the shapes of the responses.
	testVariant *asr.Variant
	// refWAV is a 4-second 16 kHz mono 16-bit clip.
	refWAV []byte
)

const testModelName = "tiny-random"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chorus-server-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		if err := setup(dir); err != nil {
			fmt.Fprintln(os.Stderr, "setup:", err)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

func setup(dir string) error {
	tok, err := tokenizer.Load(filepath.Join("..", "asr", "tokenizer", "testdata", "trained-en"))
	if err != nil {
		return err
	}
	d := whisper.Dims{NMels: 80, NAudioCtx: 1500, NAudioState: 64, NAudioHead: 2, NAudioLayer: 2,
		NVocab: tok.Size(), NTextCtx: 448, NTextState: 64, NTextHead: 2, NTextLayer: 2}
	m, err := whisper.NewRandom(d, 1, whisper.LoadOptions{})
	if err != nil {
		return err
	}
	modelDir := filepath.Join(dir, testModelName)
	if err := asr.Save(modelDir, m, nil, tok, asr.SaveOptions{}); err != nil {
		return err
	}
	if testVariant, err = asr.Open(modelDir, asr.OpenOptions{F16: true}); err != nil {
		return err
	}
	if refWAV, err = os.ReadFile(filepath.Join("..", "testdata", "audio", "ref.wav")); err != nil {
		return err
	}
	// Start the kernels' worker goroutines now, so that leak checks do not count them.
	single, err := NewSingle("", testVariant)
	if err != nil {
		return err
	}
	return single.Warm(context.Background())
}

// checkLeaks fails t if goroutines started during the test are still running when it ends.
// Call it first, so that its cleanup runs after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// testLogger logs through t, so a failing test shows the server's side.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// newTestServer builds a Server from cfg (the test model and logger when unset) and serves its
// Handler with httptest; everything is torn down when the test ends.
func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	if cfg.Model == nil && cfg.Models == nil {
		cfg.Model, cfg.ModelName = testVariant, testModelName
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		ts.Client().CloseIdleConnections()
		ts.Close()
	})
	return s, ts
}

// form is a multipart request body: fields, then the file part when file is not nil.
type form struct {
	fields   map[string]string
	file     []byte
	filename string
}

func (f form) encode(t *testing.T) (body *bytes.Buffer, contentType string) {
	t.Helper()
	body = new(bytes.Buffer)
	mw := multipart.NewWriter(body)
	for k, v := range f.fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if f.file != nil {
		name := f.filename
		if name == "" {
			name = "audio.wav"
		}
		fw, err := mw.CreateFormFile("file", name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(f.file)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return body, mw.FormDataContentType()
}

// response is a finished HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request and reads the whole response.
func do(t *testing.T, client *http.Client, method, url, contentType string, body io.Reader) response {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return response{res.StatusCode, res.Header, b}
}

// postForm posts f to /v1/audio/transcriptions.
func postForm(t *testing.T, client *http.Client, baseURL string, f form) response {
	t.Helper()
	body, ct := f.encode(t)
	return do(t, client, http.MethodPost, baseURL+routeTranscriptions, ct, body)
}

// apiErrorOf decodes an OpenAI error body, failing t if the response is not one.
func apiErrorOf(t *testing.T, r response) errorBody {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q, want application/json", ct)
	}
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %q: %v", r.body, err)
	}
	if e.Error.Message == "" || e.Error.Type == "" {
		t.Errorf("error body %s lacks a message or type", r.body)
	}
	return e
}
