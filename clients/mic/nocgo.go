//go:build !cgo

package mic

// Stream is an open capture stream; without cgo none can be opened.
type Stream struct{}

// Open fails: capture needs PortAudio through cgo.
func Open(Options) (*Stream, error) { return nil, ErrUnavailable }

// Read is never reached.
func (*Stream) Read() ([]float32, error) { return nil, ErrUnavailable }

// Close does nothing.
func (*Stream) Close() error { return nil }
