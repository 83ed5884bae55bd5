//go:build cgo

package mic

/*
#cgo pkg-config: portaudio-2.0
#include <portaudio.h>
#include <stdlib.h>

static PaError openDefault(PaStream **s, unsigned long frames) {
	return Pa_OpenDefaultStream(s, 1, 0, paFloat32, 16000, frames, NULL, NULL);
}
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"
)

// Stream is an open capture stream. Read it from one goroutine; Close from any.
type Stream struct {
	mu     sync.Mutex // guards s against Close during Read
	s      unsafe.Pointer
	frames int
	buf    []float32
}

func paErr(what string, e C.PaError) error {
	return fmt.Errorf("mic: %s: %s", what, C.GoString(C.Pa_GetErrorText(e)))
}

// Open starts capturing the default input device, one channel at Rate.
func Open(o Options) (*Stream, error) {
	if e := C.Pa_Initialize(); e != C.paNoError {
		return nil, paErr("initialize", e)
	}
	if C.Pa_GetDefaultInputDevice() == C.paNoDevice {
		C.Pa_Terminate()
		return nil, fmt.Errorf("mic: no default input device (is a microphone connected, and does this user have access to the sound devices?)")
	}
	n := o.frames()
	var s unsafe.Pointer // PaStream is void
	if e := C.openDefault(&s, C.ulong(n)); e != C.paNoError {
		C.Pa_Terminate()
		return nil, paErr("open the default input", e)
	}
	if e := C.Pa_StartStream(s); e != C.paNoError {
		C.Pa_CloseStream(s)
		C.Pa_Terminate()
		return nil, paErr("start", e)
	}
	return &Stream{s: s, frames: n, buf: make([]float32, n)}, nil
}

// Read blocks until the next buffer is captured and returns it (reused by the next Read).
// An input overflow (the reader fell behind) is not an error: the lost audio is gone and
// capture goes on.
func (m *Stream) Read() ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.s == nil {
		return nil, fmt.Errorf("mic: closed")
	}
	e := C.Pa_ReadStream(m.s, unsafe.Pointer(&m.buf[0]), C.ulong(m.frames))
	if e != C.paNoError && e != C.paInputOverflowed {
		return nil, paErr("read", e)
	}
	return m.buf, nil
}

// Close stops capturing and releases PortAudio.
func (m *Stream) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.s == nil {
		return nil
	}
	C.Pa_StopStream(m.s)
	C.Pa_CloseStream(m.s)
	m.s = nil
	C.Pa_Terminate()
	return nil
}
