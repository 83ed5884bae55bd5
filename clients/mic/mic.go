// Package mic captures the default microphone as 16-kHz mono float32 through PortAudio
// (Debian portaudio19-dev), for `chorus mic`. It is a minimal cgo binding of PortAudio's
// blocking API — Pa_OpenDefaultStream and Pa_ReadStream — rather than a third-party Go
// binding, none of which the module proxy serves. Builds without cgo get an Open that
// returns ErrUnavailable.
package mic

import (
	"errors"
	"time"
)

// Rate is the capture rate: Whisper's, so no resampling is needed (PortAudio converts when
// the device runs at another rate).
const Rate = 16000

// ErrUnavailable is returned by Open when the binary was built without PortAudio.
var ErrUnavailable = errors.New("mic: built without PortAudio (cgo disabled)")

// Options configure Open.
type Options struct {
	// Buffer is the audio returned by each Read (default 100 ms).
	Buffer time.Duration
}

func (o Options) frames() int {
	if o.Buffer <= 0 {
		o.Buffer = 100 * time.Millisecond
	}
	return int(o.Buffer.Seconds() * Rate)
}
