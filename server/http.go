package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"slices"
	"strings"
)

// Route names, used as the endpoint label of the request metrics.
const (
	routeHealthz        = "/healthz"
	routeReadyz         = "/readyz"
	routeMetrics        = "/metrics"
	routeTranscriptions = "/v1/audio/transcriptions"
	routeModels         = "/v1/models"
	routeModel          = "/v1/models/{model}"
	routeOther          = "other"
)

// routes builds the handler tree. Methods are checked by the handlers rather than by mux
// patterns, so that a wrong method gets OpenAI's JSON error body instead of the mux's text.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern, endpoint string, h http.Handler) {
		mux.Handle(pattern, s.metrics.instrument(endpoint, h))
	}
	handle(routeHealthz, routeHealthz, s.api(s.healthz, http.MethodGet))
	handle(routeReadyz, routeReadyz, s.api(s.readyz, http.MethodGet))
	handle(routeMetrics, routeMetrics, s.metrics.handler(s.log))
	handle(routeTranscriptions, routeTranscriptions, s.api(s.transcriptions, http.MethodPost))
	handle(routeModels, routeModels, s.api(s.listModels, http.MethodGet))
	handle("/v1/models/{model...}", routeModel, s.api(s.getModel, http.MethodGet))
	handle(routeWHIP, routeWHIP, s.api(s.whip, http.MethodPost))
	handle(routeWHIPSession, routeWHIPSession, s.api(s.whipSession, http.MethodDelete))
	handle("/{$}", routePage, s.page())
	handle(routeAssets, routeAssets, s.page())
	handle("/", routeOther, s.api(notFound))
	return mux
}

// api adapts a handler that returns its failure: an *apiError is answered as it says, a
// cancelled request as 499 (client gone) or 503 (server shutdown), anything else as a
// logged 500. It also answers methods other than those listed with 405 and turns a panic
// into a logged 500, so that one bad request never takes the process down. No methods
// means any method.
func (s *Server) api(h func(http.ResponseWriter, *http.Request) error, methods ...string) http.HandlerFunc {
	allow := strings.Join(methods, ", ")
	if slices.Contains(methods, http.MethodGet) {
		allow += ", " + http.MethodHead
	}
	return func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { // net/http's own signal to abort the response
					panic(p)
				}
				s.log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				internalError().write(w)
			}
		}()
		method := r.Method
		if method == http.MethodHead {
			method = http.MethodGet
		}
		if len(methods) > 0 && !slices.Contains(methods, method) {
			w.Header().Set("Allow", allow)
			(&apiError{status: http.StatusMethodNotAllowed, typ: typeInvalidRequest,
				msg: fmt.Sprintf("%s %s is not supported; use %s", r.Method, r.URL.Path, allow)}).write(w)
			return
		}
		if err := h(w, r); err != nil {
			s.fail(w, r, err)
		}
	}
}

// fail answers err; see api.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", ae.status, "err", ae.msg)
	case r.Context().Err() != nil && errors.Is(context.Cause(r.Context()), errShutdown):
		s.log.Warn("request cancelled by shutdown", "path", r.URL.Path)
		ae = shuttingDown()
	case r.Context().Err() != nil:
		s.log.Info("client went away", "path", r.URL.Path, "err", err)
		ae = &apiError{status: statusClientClosed, typ: typeInvalidRequest, msg: "request cancelled by the client"}
	default:
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ae = internalError()
	}
	ae.write(w)
}

func internalError() *apiError {
	return &apiError{status: http.StatusInternalServerError, typ: typeServer,
		msg: "the server failed to process the request; the error is in its log"}
}

// shuttingDown tells the client to go elsewhere; Connection: close is set by the server
// itself once keep-alives are off.
func shuttingDown() *apiError {
	return &apiError{status: http.StatusServiceUnavailable, typ: typeServer, code: "shutting_down",
		msg: "the server is shutting down; retry on another replica", retryAfter: 1}
}

// healthz is the liveness probe: ok while serving, 503 once shutdown has begun.
func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) error {
	if s.gate.draining() {
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("shutting down\n"))
		return nil
	}
	writeBody(w, http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"))
	return nil
}

// readyz is the readiness probe: ok once the models are warmed up, until shutdown begins.
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) error {
	switch {
	case s.gate.draining():
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("shutting down\n"))
	case !s.ready.Load():
		writeBody(w, http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("warming up\n"))
	default:
		writeBody(w, http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"))
	}
	return nil
}

// modelObject is OpenAI's model object.
type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"` // "model"
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
	// Variant is a chorus extension: the weights the name currently runs on.
	Variant string `json:"variant"`
}

func toModelObject(mi ModelInfo) modelObject {
	return modelObject{ID: mi.Name, Object: "model", Created: mi.Loaded.Unix(), OwnedBy: "chorus", Variant: mi.Variant}
}

// listModels is GET /v1/models.
func (s *Server) listModels(w http.ResponseWriter, _ *http.Request) error {
	if s.gate.draining() {
		return shuttingDown()
	}
	list := struct {
		Object string        `json:"object"`
		Data   []modelObject `json:"data"`
	}{Object: "list", Data: []modelObject{}}
	for _, mi := range s.models.List() {
		list.Data = append(list.Data, toModelObject(mi))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// getModel is GET /v1/models/{model}.
func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	if s.gate.draining() {
		return shuttingDown()
	}
	name := r.PathValue("model")
	for _, mi := range s.models.List() {
		if mi.Name == name {
			writeJSON(w, http.StatusOK, toModelObject(mi))
			return nil
		}
	}
	return modelNotFound(name)
}

func modelNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, param: "model", code: "model_not_found",
		msg: fmt.Sprintf("the model %q is not served here; GET /v1/models lists the models that are", name)}
}

// notFound answers paths no route matches.
func notFound(_ http.ResponseWriter, r *http.Request) error {
	return &apiError{status: http.StatusNotFound, typ: typeInvalidRequest, msg: fmt.Sprintf("no endpoint at %s", r.URL.Path)}
}
