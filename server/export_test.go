package server

// Test helpers shared with the external server_test package (tests that also import
// server/registry, which imports server).
var (
	CheckLeaks  = checkLeaks
	SpeechClip  = speechClip
	TestLogger  = testLogger
	LoadDefault = loadDefault
)

// StreamsInflight is the number of admitted streams.
func (s *Server) StreamsInflight() int { return s.streams.inflight() }

// Ready reports readiness.
func (s *Server) Ready() bool { return s.ready.Load() }
