package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
)

// OpenAI's error types, which OpenAI client libraries map to exception classes.
const (
	typeInvalidRequest = "invalid_request_error"
	typeRateLimit      = "rate_limit_error"
	typeServer         = "server_error"
)

// statusClientClosed is nginx's 499: the client went away before the response. Nobody reads
// it; it keeps abandoned requests apart from served ones in logs and metrics.
const statusClientClosed = 499

// apiError is an error answered to the client as OpenAI does:
//
//	{"error":{"message":…,"type":…,"param":…,"code":…}}
//
// with param and code null when unset. Handlers return it; anything else a handler returns
// is an internal error, logged in full and answered with a generic 500.
type apiError struct {
	status     int
	typ        string
	param      string // the form field at fault, if any
	code       string // a machine-readable reason, if any
	msg        string
	retryAfter int // seconds; sets Retry-After when > 0
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.status, e.msg) }

// badRequest is a 400 invalid_request_error about a form field.
func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typeInvalidRequest, param: param, msg: fmt.Sprintf(format, args...)}
}

// errorBody is the JSON shape of an apiError.
type errorBody struct {
	Error struct {
		Message string  `json:"message"`
		Type    string  `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// write sends e as the response.
func (e *apiError) write(w http.ResponseWriter) {
	var b errorBody
	b.Error.Message, b.Error.Type = e.msg, e.typ
	b.Error.Param, b.Error.Code = nullable(e.param), nullable(e.code)
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeJSON(w, e.status, b)
}

// writeJSON sends v as a JSON response with status. The value is encoded before the header
// is written, so that an encoding failure can still become a clean 500.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // transcripts are data, not HTML
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":{"message":"internal error encoding the response","type":"server_error","param":null,"code":null}}` + "\n")
	}
	writeBody(w, status, "application/json", buf.Bytes())
}

// writeBody sends a complete response body with its length.
func writeBody(w http.ResponseWriter, status int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(body) // a failed write means the client left; nothing to do about it
}
