// Package server serves chorus models over the network.
//
// This file set is the HTTP side: an OpenAI-compatible POST /v1/audio/transcriptions and
// GET /v1/models, liveness and readiness probes (/healthz, /readyz) and Prometheus metrics
// (/metrics). The gRPC streaming API and the hot-swap model registry plug into the same
// pieces:
//
//   - Models is the single owner of "which model is live". Every request pins the variant it
//     runs on with Acquire and unpins it with the release function it got back, so a registry
//     can swap variants under load and retire the old one once its last user is gone. Single
//     is the one-model implementation the server uses today.
//   - gate is the admission control every unit of work passes: a bounded number of slots
//     taken with select … default (a full server answers 429 at once instead of queueing),
//     closed on shutdown so new work is refused while admitted work drains.
//   - Serve owns the process lifecycle and shuts down in a fixed order: probes go 503, new
//     work is refused, admitted work gets ShutdownGrace to finish and is then cancelled,
//     http.Server.Shutdown runs with a Close fallback, and Serve returns only once no
//     handler can touch a model any more, so the caller may unload models last.
package server
