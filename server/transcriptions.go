package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// Response formats of POST /v1/audio/transcriptions, as OpenAI names them.
const (
	formatJSON        = "json"
	formatText        = "text"
	formatSRT         = "srt"
	formatVTT         = "vtt"
	formatVerboseJSON = "verbose_json"
)

// openAIDefaultModel is the model name OpenAI clients send by default; it means whatever
// this server serves by default, so those clients work unchanged.
const openAIDefaultModel = "whisper-1"

// maxPromptBytes is how much of a prompt is kept, from its end. The decoder keeps only the
// last n_text_ctx/2-1 (223) prompt tokens, which are far fewer bytes than this, so cutting
// changes nothing but spares tokenizing a huge prompt that would be dropped anyway.
const maxPromptBytes = 8 << 10

// transcriptionRequest is a parsed and checked POST /v1/audio/transcriptions form.
type transcriptionRequest struct {
	file        *multipart.FileHeader
	model       string // as sent; "" and openAIDefaultModel mean the default
	format      string
	language    string // lower case; "" detects (multilingual) or means English
	prompt      string
	temperature float64
	// words and segments are the timestamp_granularities[] asked for; neither means
	// segments. Words cost one more decoder pass per 30-s window.
	words, segments bool
}

// transcriptions is POST /v1/audio/transcriptions: the OpenAI audio transcription API.
func (s *Server) transcriptions(w http.ResponseWriter, r *http.Request) error {
	if err := s.gate.enter(); err != nil {
		return s.admissionError(err)
	}
	defer s.gate.leave()

	req, err := s.parseTranscription(w, r)
	if err != nil {
		return err
	}
	name := req.model
	if name == openAIDefaultModel {
		name = ""
	}
	lease, err := s.models.Acquire(r.Context(), name)
	switch {
	case errors.Is(err, ErrModelNotFound):
		return modelNotFound(req.model)
	case errors.Is(err, ErrModelClosing):
		return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "model_unavailable", retryAfter: 1,
			msg: fmt.Sprintf("the model %q is being replaced; retry", req.model)}
	case err != nil:
		return fmt.Errorf("acquire model %q: %w", req.model, err)
	}
	defer lease.Release()

	opts, err := req.options(lease)
	if err != nil {
		return err
	}
	opts.SetBeam(s.cfg.Stream.BeamSize) // as the server's stream finals and `chorus transcribe`
	samples, err := decodeUpload(req.file, s.cfg.MaxAudio)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := lease.Variant.Transcribe(r.Context(), samples, opts)
	if err != nil {
		return fmt.Errorf("transcribe with %s: %w", lease.Model.Variant, err)
	}
	compute := time.Since(start)
	duration := float64(len(samples)) / audio.WhisperRate

	body, contentType, err := render(req, res, duration)
	if err != nil {
		return fmt.Errorf("render %s: %w", req.format, err)
	}
	rtf := 0.0
	if duration > 0 {
		rtf = compute.Seconds() / duration
		s.metrics.observeTranscription(lease.Model.Name, duration, rtf)
	}
	s.log.Info("transcribed", "model", lease.Model.Name, "variant", lease.Model.Variant, "format", req.format,
		"audio_s", duration, "compute", compute.Round(time.Millisecond), "rtf", rtf, "segments", len(res.Segments))
	writeBody(w, http.StatusOK, contentType, body)
	return nil
}

// admissionError answers a request the gate turned away.
func (s *Server) admissionError(err error) *apiError {
	if errors.Is(err, errDraining) {
		return shuttingDown()
	}
	return &apiError{status: http.StatusTooManyRequests, typ: typeRateLimit, code: "rate_limit_exceeded", retryAfter: 1,
		msg: fmt.Sprintf("the server is busy: all %d transcription slots are in use; retry shortly", s.cfg.MaxConcurrent)}
}

// parseTranscription reads the multipart form, at most MaxBodyBytes of it, and checks every
// field except the language, which depends on the model.
func (s *Server) parseTranscription(w http.ResponseWriter, r *http.Request) (*transcriptionRequest, error) {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	// The whole body fits in memory by the limit above, so no part spills to a temporary
	// file (net/http removes any that would once the handler returns).
	if err := r.ParseMultipartForm(s.cfg.MaxBodyBytes); err != nil {
		return nil, s.bodyError(err)
	}
	// Read the body to its end (an epilogue after the closing boundary, within the limit).
	// Hitting its end starts net/http's background read of the connection, which is what
	// cancels the request context, and so the transcription, when the client goes away.
	if _, err := io.Copy(io.Discard, r.Body); err != nil {
		return nil, s.bodyError(err)
	}
	form := r.MultipartForm
	value := func(key string) string {
		if v := form.Value[key]; len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}

	req := &transcriptionRequest{model: value("model"), language: strings.ToLower(value("language"))}
	switch files := form.File["file"]; {
	case len(files) > 0:
		req.file = files[0]
	case len(form.Value["file"]) > 0:
		return nil, badRequest("file", "file was sent as a text field; upload it as a file part (curl -F file=@audio.wav)")
	default:
		return nil, badRequest("file", "file is required: the audio to transcribe (WAV or FLAC)")
	}

	switch req.format = value("response_format"); req.format {
	case "":
		req.format = formatJSON
	case formatJSON, formatText, formatSRT, formatVTT, formatVerboseJSON:
	default:
		return nil, badRequest("response_format", "response_format %q is not one of json, text, srt, verbose_json, vtt", req.format)
	}

	if t := value("temperature"); t != "" {
		v, err := strconv.ParseFloat(t, 64)
		if err != nil || !(v >= 0 && v <= 1) {
			return nil, badRequest("temperature", "temperature %q is not a number between 0 and 1", t)
		}
		req.temperature = v
	}

	if st := value("stream"); st != "" {
		stream, err := strconv.ParseBool(st)
		if err != nil {
			return nil, badRequest("stream", "stream %q is not a boolean", st)
		}
		if stream {
			return nil, badRequest("stream", "streamed responses are not supported here; use the gRPC streaming API")
		}
	}
	for _, g := range append(form.Value["timestamp_granularities[]"], form.Value["timestamp_granularities"]...) {
		switch strings.TrimSpace(g) {
		case "segment":
			req.segments = true
		case "word":
			req.words = true
		default:
			return nil, badRequest("timestamp_granularities[]", "timestamp granularity %q is not word or segment", g)
		}
	}
	if req.words && req.format != formatVerboseJSON {
		return nil, badRequest("timestamp_granularities[]", "word timestamps need response_format verbose_json")
	}
	if !req.words {
		req.segments = true
	}

	req.prompt = keepTail(value("prompt"), maxPromptBytes)
	return req, nil
}

// bodyError answers a failure to read the request body as a multipart form.
func (s *Server) bodyError(err error) *apiError {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge), errors.Is(err, multipart.ErrMessageTooLarge):
		return &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, param: "file",
			msg: fmt.Sprintf("the request body is larger than the %d-byte limit", s.cfg.MaxBodyBytes)}
	case errors.Is(err, http.ErrNotMultipart), errors.Is(err, http.ErrMissingBoundary):
		return badRequest("", "the request must be a multipart/form-data form with the audio in a part named file")
	}
	return badRequest("", "could not read the multipart form: %v", err)
}

// keepTail returns the last max bytes of s or fewer: it starts at a rune, and at a word when
// the cut falls inside one that is not the whole tail.
func keepTail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := len(s) - max
	for cut < len(s) && !utf8.RuneStart(s[cut]) {
		cut++
	}
	if !isSpace(s[cut-1]) {
		if i := strings.IndexAny(s[cut:], " \t\n"); i >= 0 {
			cut += i + 1
		}
	}
	return s[cut:]
}

func isSpace(b byte) bool { return b == ' ' || b == '\t' || b == '\n' }

// options turns the request into transcription options for the leased model: OpenAI's
// defaults, with temperature 0 meaning its fallback schedule and a higher temperature that
// single temperature.
func (req *transcriptionRequest) options(lease Lease) (transcribe.Options, error) {
	o := transcribe.DefaultOptions()
	o.InitialPrompt = req.prompt
	o.WordTimestamps = req.words
	if req.temperature > 0 {
		o.Temperatures = []float64{req.temperature}
	}
	if req.language != "" {
		if err := checkLanguage(lease, req.language); err != nil {
			var le languageError
			if errors.As(err, &le) {
				return o, badRequest("language", "%s", le.msg)
			}
			return o, err
		}
		o.Decode.Language = req.language
	}
	return o, nil
}

// languageError is a language the leased model cannot decode in: the client's mistake.
type languageError struct{ msg string }

func (e languageError) Error() string { return e.msg }

// checkLanguage fails with a languageError when the leased model does not know lang (a
// Whisper language code; "" always passes), and with another error when the model cannot
// decode at all.
func checkLanguage(lease Lease, lang string) error {
	if lang == "" {
		return nil
	}
	dm, err := lease.Variant.DecodeModel()
	if err != nil {
		return err
	}
	if !dm.Specials.Multilingual {
		if lang != "en" {
			return languageError{fmt.Sprintf("the model %q is English-only; language must be en or left out", lease.Model.Name)}
		}
	} else if _, err := dm.Specials.LanguageToken(lang); err != nil {
		return languageError{fmt.Sprintf("language %q is not one the model %q knows; use an ISO-639-1 code such as en, de or ja", lang, lease.Model.Name)}
	}
	return nil
}

// decodeUpload decodes the uploaded file to 16 kHz mono. Input the decoder rejects is the
// client's fault (400), audio over the limit too long (413).
func decodeUpload(fh *multipart.FileHeader, maxDur time.Duration) ([]float32, error) {
	f, err := fh.Open()
	if err != nil {
		return nil, fmt.Errorf("open upload: %w", err)
	}
	defer f.Close()
	samples, err := audio.Decode16kMono(f, maxDur)
	switch {
	case err == nil:
		return samples, nil
	case errors.Is(err, audio.ErrTooLong):
		return nil, &apiError{status: http.StatusRequestEntityTooLarge, typ: typeInvalidRequest, param: "file",
			msg: fmt.Sprintf("the audio is longer than the %v limit", maxDur)}
	case errors.Is(err, audio.ErrUnsupported):
		return nil, badRequest("file", "unsupported audio (%v); send WAV or FLAC", err)
	}
	// ErrMalformed, ErrTruncated, or a read error of an in-memory part: the bytes are bad.
	return nil, badRequest("file", "could not decode the audio: %v", err)
}

// render encodes res in the request's format with its content type.
func render(req *transcriptionRequest, res *transcribe.Result, duration float64) ([]byte, string, error) {
	format := req.format
	var buf bytes.Buffer
	text := strings.TrimSpace(res.Text)
	switch format {
	case formatText:
		buf.WriteString(text)
		buf.WriteByte('\n')
		return buf.Bytes(), "text/plain; charset=utf-8", nil
	case formatSRT:
		err := transcribe.WriteSRT(&buf, res)
		return buf.Bytes(), "application/x-subrip; charset=utf-8", err
	case formatVTT:
		err := transcribe.WriteVTT(&buf, res)
		return buf.Bytes(), "text/vtt; charset=utf-8", err
	}
	var v any = struct {
		Text string `json:"text"`
	}{text}
	if format == formatVerboseJSON {
		// OpenAI's verbose_json: segments unless only words were asked for, and then a flat
		// list of words, each without its leading space.
		vj := verboseJSON{Task: "transcribe", Language: res.Language, Duration: math.Round(duration*1000) / 1000, Text: text}
		if req.segments {
			vj.Segments = slices.Clone(res.Segments)
			if vj.Segments == nil {
				vj.Segments = []transcribe.Segment{}
			}
			for i := range vj.Segments {
				vj.Segments[i].Words = nil // the words are listed once, at the top
			}
		}
		if req.words {
			vj.Words = []verboseWord{}
			for _, s := range res.Segments {
				for _, w := range s.Words {
					vj.Words = append(vj.Words, verboseWord{Word: strings.TrimSpace(w.Word), Start: w.Start, End: w.End})
				}
			}
		}
		v = vj
	}
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return buf.Bytes(), "application/json", err
}

// verboseJSON is OpenAI's verbose_json transcription.
type verboseJSON struct {
	Task     string               `json:"task"`
	Language string               `json:"language"`
	Duration float64              `json:"duration"`
	Text     string               `json:"text"`
	Segments []transcribe.Segment `json:"segments,omitzero"`
	Words    []verboseWord        `json:"words,omitzero"`
}

// verboseWord is one entry of verbose_json's words.
type verboseWord struct {
	Word  string  `json:"word"`
	Start float64 `json:"start"`
	End   float64 `json:"end"`
}
