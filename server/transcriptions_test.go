package server

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTranscriptionFormats posts the reference clip once per response_format and checks the
// status, the content type and the shape of the body.
func TestTranscriptionFormats(t *testing.T) {
	checkLeaks(t)
	_, ts := newTestServer(t, Config{})
	srtCue := regexp.MustCompile(`^\d+\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}\n`)
	vttCue := regexp.MustCompile(`^(\d{2}:)?\d{2}:\d{2}\.\d{3} --> (\d{2}:)?\d{2}:\d{2}\.\d{3}\n`)

	tests := []struct {
		name     string
		fields   map[string]string
		wantType string
		check    func(t *testing.T, body []byte)
	}{
		{"default is json", nil, "application/json", checkJSONText},
		{"json", map[string]string{"response_format": "json"}, "application/json", checkJSONText},
		{"json with whisper-1", map[string]string{"model": "whisper-1"}, "application/json", checkJSONText},
		{"json with the served name", map[string]string{"model": testModelName}, "application/json", checkJSONText},
		{"text", map[string]string{"response_format": "text"}, "text/plain", func(t *testing.T, body []byte) {
			s := string(body)
			if !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 || strings.TrimSpace(s) != strings.TrimSuffix(s, "\n") {
				t.Errorf("text body %q is not one trimmed line", s)
			}
		}},
		{"srt", map[string]string{"response_format": "srt"}, "application/x-subrip", func(t *testing.T, body []byte) {
			cues := strings.Split(strings.TrimSuffix(string(body), "\n\n"), "\n\n")
			for _, c := range cues {
				if c != "" && !srtCue.MatchString(c+"\n") {
					t.Errorf("srt cue %q is malformed", c)
				}
			}
		}},
		{"vtt", map[string]string{"response_format": "vtt"}, "text/vtt", func(t *testing.T, body []byte) {
			s, ok := strings.CutPrefix(string(body), "WEBVTT\n\n")
			if !ok {
				t.Fatalf("vtt body %q lacks the header", body)
			}
			for c := range strings.SplitSeq(strings.TrimSuffix(s, "\n\n"), "\n\n") {
				if c != "" && !vttCue.MatchString(c+"\n") {
					t.Errorf("vtt cue %q is malformed", c)
				}
			}
		}},
		{"verbose_json", map[string]string{"response_format": "verbose_json"}, "application/json", checkVerboseJSON},
		{"verbose_json with segment timestamps", map[string]string{"response_format": "verbose_json",
			"timestamp_granularities[]": "segment"}, "application/json", checkVerboseJSON},
		{"verbose_json with word timestamps", map[string]string{"response_format": "verbose_json",
			"timestamp_granularities[]": "word"}, "application/json", checkVerboseWords},
		{"language en, prompt and temperature", map[string]string{"language": "EN", "prompt": "Hello there.",
			"temperature": "0.4"}, "application/json", checkJSONText},
		{"stream false", map[string]string{"stream": "false"}, "application/json", checkJSONText},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := postForm(t, ts.Client(), ts.URL, form{fields: tt.fields, file: refWAV})
			if r.status != http.StatusOK {
				t.Fatalf("status %d, body %s", r.status, r.body)
			}
			mt, _, err := mime.ParseMediaType(r.header.Get("Content-Type"))
			if err != nil || mt != tt.wantType {
				t.Errorf("Content-Type %q, want %s", r.header.Get("Content-Type"), tt.wantType)
			}
			tt.check(t, r.body)
		})
	}
}

func checkJSONText(t *testing.T, body []byte) {
	t.Helper()
	var v struct {
		Text *string `json:"text"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Text == nil {
		t.Fatalf("json body %s is not {\"text\":…}: %v", body, err)
	}
}

func checkVerboseJSON(t *testing.T, body []byte) {
	t.Helper()
	var v struct {
		Task     string  `json:"task"`
		Language string  `json:"language"`
		Duration float64 `json:"duration"`
		Text     *string `json:"text"`
		Segments []struct {
			ID               *int     `json:"id"`
			Seek             *int     `json:"seek"`
			Start            *float64 `json:"start"`
			End              *float64 `json:"end"`
			Text             *string  `json:"text"`
			Tokens           []int    `json:"tokens"`
			Temperature      *float64 `json:"temperature"`
			AvgLogprob       *float64 `json:"avg_logprob"`
			CompressionRatio *float64 `json:"compression_ratio"`
			NoSpeechProb     *float64 `json:"no_speech_prob"`
		} `json:"segments"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("verbose_json body %s: %v", body, err)
	}
	if v.Task != "transcribe" || v.Language != "en" || v.Text == nil {
		t.Errorf("verbose_json header task %q language %q text %v", v.Task, v.Language, v.Text)
	}
	if v.Duration < 3.9 || v.Duration > 4.1 {
		t.Errorf("duration %g, want the clip's 4 s", v.Duration)
	}
	if v.Segments == nil {
		t.Fatalf("verbose_json has no segments list: %s", body)
	}
	for i, s := range v.Segments {
		// no_speech_prob may be null (a vocabulary without a nospeech token); the rest may not.
		if s.ID == nil || s.Seek == nil || s.Start == nil || s.End == nil || s.Text == nil || s.Tokens == nil ||
			s.Temperature == nil || s.AvgLogprob == nil || s.CompressionRatio == nil {
			t.Errorf("segment %d lacks a field: %s", i, body)
			continue
		}
		if *s.ID != i || *s.Start < 0 || *s.End < *s.Start {
			t.Errorf("segment %d: id %d, %g–%g s", i, *s.ID, *s.Start, *s.End)
		}
	}
}

// checkVerboseWords checks verbose_json for timestamp_granularities[]=word alone, as OpenAI
// answers it: the header, no segments, and the words, trimmed, ordered, within the clip and
// found in the text in order. (They need not spell all of it: the random model's text has
// blank and instantaneous segments, which, as in OpenAI's loop, take their words with them
// when they are cleared.)
func checkVerboseWords(t *testing.T, body []byte) {
	t.Helper()
	var v struct {
		Task     string  `json:"task"`
		Language string  `json:"language"`
		Duration float64 `json:"duration"`
		Text     string  `json:"text"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatalf("verbose_json body %s: %v", body, err)
	}
	if _, ok := raw["segments"]; ok {
		t.Errorf("segments sent though only words were asked for: %s", body)
	}
	var words []struct {
		Word  string   `json:"word"`
		Start *float64 `json:"start"`
		End   *float64 `json:"end"`
	}
	if err := json.Unmarshal(raw["words"], &words); err != nil || words == nil {
		t.Fatalf("verbose_json words %s: %v", raw["words"], err)
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Task != "transcribe" || v.Duration < 3.9 {
		t.Fatalf("verbose_json header %s: %v", body, err)
	}
	rest := v.Text
	prev := 0.0
	for i, w := range words {
		if w.Start == nil || w.End == nil || *w.Start < prev || *w.End < *w.Start || *w.End > v.Duration+0.02 {
			t.Errorf("word %d %+v out of order or outside the %g-s clip", i, w, v.Duration)
			continue
		}
		if w.Word != strings.TrimSpace(w.Word) {
			t.Errorf("word %d %q is not trimmed", i, w.Word)
		}
		prev = *w.End
		at := strings.Index(rest, w.Word)
		if at < 0 {
			t.Errorf("word %d %q is not in what is left of the text, %q", i, w.Word, rest)
			continue
		}
		rest = rest[at+len(w.Word):]
	}
	if len(words) == 0 {
		t.Error("no words")
	}
}

// TestTranscriptionBadInput checks that every kind of bad request gets a 4xx with OpenAI's
// JSON error body naming the field at fault, and that the server keeps serving afterwards.
func TestTranscriptionBadInput(t *testing.T) {
	checkLeaks(t)
	_, ts := newTestServer(t, Config{MaxBodyBytes: 64 << 10, MaxAudio: time.Second})
	short := refWAV[:16000*2] // just under 1 s: under both limits
	tests := []struct {
		name       string
		f          form
		raw        string // a non-multipart body, sent as text/plain, instead of f
		wantStatus int
		wantParam  string
		wantCode   string
		wantMsg    string // a part of the message, when it matters
	}{
		{name: "not multipart", raw: "hello", wantStatus: 400},
		{name: "no file", f: form{fields: map[string]string{"model": "whisper-1"}}, wantStatus: 400, wantParam: "file"},
		{name: "file as a text field", f: form{fields: map[string]string{"file": "audio.wav"}}, wantStatus: 400, wantParam: "file"},
		{name: "empty file", f: form{file: []byte{}}, wantStatus: 400, wantParam: "file"},
		{name: "text file", f: form{file: []byte("this is not audio at all"), filename: "notes.txt"}, wantStatus: 400, wantParam: "file"},
		{name: "mp3", f: form{file: []byte("ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x00")}, wantStatus: 400, wantParam: "file"},
		{name: "truncated wav header", f: form{file: short[:30]}, wantStatus: 400, wantParam: "file"},
		{name: "wav ending inside a sample", f: form{file: short[:1001]}, wantStatus: 400, wantParam: "file"},
		{name: "unknown model", f: form{file: short, fields: map[string]string{"model": "whisper-large"}},
			wantStatus: 404, wantParam: "model", wantCode: "model_not_found"},
		{name: "bad response_format", f: form{file: short, fields: map[string]string{"response_format": "xml"}},
			wantStatus: 400, wantParam: "response_format"},
		{name: "temperature not a number", f: form{file: short, fields: map[string]string{"temperature": "warm"}},
			wantStatus: 400, wantParam: "temperature"},
		{name: "temperature above 1", f: form{file: short, fields: map[string]string{"temperature": "1.5"}},
			wantStatus: 400, wantParam: "temperature"},
		{name: "temperature NaN", f: form{file: short, fields: map[string]string{"temperature": "NaN"}},
			wantStatus: 400, wantParam: "temperature"},
		{name: "language the English-only model lacks", f: form{file: short, fields: map[string]string{"language": "fr"}},
			wantStatus: 400, wantParam: "language"},
		{name: "stream true", f: form{file: short, fields: map[string]string{"stream": "true"}},
			wantStatus: 400, wantParam: "stream"},
		{name: "word timestamps without verbose_json", f: form{file: short, fields: map[string]string{"timestamp_granularities[]": "word"}},
			wantStatus: 400, wantParam: "timestamp_granularities[]"},
		{name: "unknown timestamp granularity", f: form{file: short, fields: map[string]string{"response_format": "verbose_json", "timestamp_granularities[]": "char"}},
			wantStatus: 400, wantParam: "timestamp_granularities[]"},
		{name: "body over MaxBodyBytes", f: form{file: refWAV}, wantStatus: 413, wantParam: "file", wantMsg: "65536-byte"},
		{name: "audio over MaxAudio", f: form{file: wavOf(t, 1500*time.Millisecond)}, wantStatus: 413, wantParam: "file", wantMsg: "1s limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r response
			if tt.raw != "" {
				r = do(t, ts.Client(), http.MethodPost, ts.URL+routeTranscriptions, "text/plain", strings.NewReader(tt.raw))
			} else {
				r = postForm(t, ts.Client(), ts.URL, tt.f)
			}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d; body %s", r.status, tt.wantStatus, r.body)
			}
			e := apiErrorOf(t, r)
			if e.Error.Type != typeInvalidRequest {
				t.Errorf("type %q, want %s", e.Error.Type, typeInvalidRequest)
			}
			if got := deref(e.Error.Param); got != tt.wantParam {
				t.Errorf("param %q, want %q (%s)", got, tt.wantParam, e.Error.Message)
			}
			if got := deref(e.Error.Code); got != tt.wantCode {
				t.Errorf("code %q, want %q", got, tt.wantCode)
			}
			if !strings.Contains(e.Error.Message, tt.wantMsg) {
				t.Errorf("message %q does not mention %q", e.Error.Message, tt.wantMsg)
			}
		})
	}
	// Still serving.
	if r := postForm(t, ts.Client(), ts.URL, form{file: short}); r.status != http.StatusOK {
		t.Errorf("after the bad requests: status %d, body %s", r.status, r.body)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// wavOf is the start of the reference clip, looped to last d: a valid WAV whose header and
// data agree.
func wavOf(t *testing.T, d time.Duration) []byte {
	t.Helper()
	const header = 44
	n := int(d.Seconds()*16000) * 2
	data := make([]byte, 0, n)
	for len(data) < n {
		data = append(data, refWAV[header:min(len(refWAV), header+n-len(data))]...)
	}
	out := append([]byte{}, refWAV[:header]...)
	le32 := func(b []byte, v int) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le32(out[4:8], 36+n)
	le32(out[40:44], n)
	if string(out[36:40]) != "data" {
		t.Fatalf("ref.wav has chunk %q at 36, not data: wavOf needs the canonical 44-byte header", out[36:40])
	}
	return append(out, data...)
}

func TestKeepTail(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"one two three four", 10, "three four"}, // the cut falls between words
		{"one two three four", 8, "four"},        // inside "three": its rest is dropped
		{"aaa ééé", 5, "éé"},                     // inside a rune, and no word boundary after
		{"nospaceatallhere", 6, "llhere"},
	}
	for _, tt := range tests {
		if got := keepTail(tt.in, tt.max); got != tt.want {
			t.Errorf("keepTail(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
