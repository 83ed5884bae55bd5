// Package mel computes Whisper's log-mel spectrogram exactly as OpenAI's whisper/audio.py
// log_mel_spectrogram does, so that a model trained on OpenAI's features sees the same
// numbers from chorus.
//
// The pipeline (ref: openai/whisper audio.py log_mel_spectrogram):
//
//  1. append `padding` zero samples;
//  2. centred STFT: reflect-pad n_fft/2 = 200 samples on each side, frames of 400 samples
//     every 160 samples, periodic Hann window (torch.hann_window default), one-sided
//     spectrum of 201 bins; the last frame is dropped (stft[..., :-1]);
//  3. power |X|², projected by the Slaney mel filterbank (80 or 128 bands, see Filterbank);
//  4. log10(max(x, 1e-10)), floored at the global maximum minus 8 (80 dB of range),
//     then mapped by (x+4)/4.
//
// The global maximum in step 4 is taken over the whole spectrogram, padding included, which
// is why Whisper30s computes the padded spectrogram before cutting a 30-second window.
package mel

import (
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
)

// Whisper's audio hyperparameters (ref: openai/whisper audio.py).
const (
	SampleRate = 16000                // samples per second
	NFFT       = 400                  // STFT window length, 25 ms
	HopLength  = 160                  // STFT hop, 10 ms
	NBins      = NFFT/2 + 1           // one-sided spectrum bins
	NSamples   = 30 * SampleRate      // samples in a 30-second chunk
	NFrames    = NSamples / HopLength // frames in a 30-second chunk (3000)
)

// logFloor is the clamp applied before log10, and logRange the dynamic range kept below the
// global maximum (in log10 units, i.e. 80 dB).
const (
	logFloor = 1e-10
	logRange = 8.0
)

// ErrTooShort is returned when the padded signal is too short for reflect padding: torch.stft
// with center=True needs more than n_fft/2 samples.
var ErrTooShort = errors.New("audio too short for a centred STFT")

// ErrTooLong is returned for signals longer than maxSamples, where the spectrogram's size would
// be absurd (and could overflow int on 32-bit platforms).
var ErrTooLong = errors.New("audio too long")

// maxSamples is the longest padded signal LogMel accepts: 24 hours at 16 kHz.
const maxSamples = 24 * 3600 * SampleRate

// Spectrogram is a log-mel spectrogram laid out like OpenAI's tensor of shape
// (n_mels, n_frames): Data[m*NFrames+t] is band m of frame t.
type Spectrogram struct {
	NMels   int
	NFrames int
	Data    []float32 // [NMels][NFrames]
}

// At returns band m of frame t.
func (s *Spectrogram) At(m, t int) float32 { return s.Data[m*s.NFrames+t] }

// LogMel computes the normalised log-mel spectrogram of 16 kHz mono samples with nMels bands
// (80 or 128), appending padding zero samples first exactly as audio.py's padding argument
// does. The result has (len(samples)+padding)/HopLength frames. It fails on non-finite
// samples, on a negative padding, and when the padded signal has at most NFFT/2 samples.
func LogMel(samples []float32, nMels int, padding int) (*Spectrogram, error) {
	fb, err := NewFilterbank(nMels)
	if err != nil {
		return nil, fmt.Errorf("log-mel: %w", err)
	}
	if padding < 0 {
		return nil, fmt.Errorf("log-mel: negative padding %d", padding)
	}
	for i, v := range samples {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("log-mel: sample %d is not finite", i)
		}
	}
	if padding > maxSamples || len(samples) > maxSamples-padding {
		return nil, fmt.Errorf("log-mel: %d+%d samples: %w", len(samples), padding, ErrTooLong)
	}
	n := len(samples) + padding
	if n <= NFFT/2 {
		return nil, fmt.Errorf("log-mel: %d samples: %w", n, ErrTooShort)
	}
	nFrames := n / HopLength // 1 + n/hop frames from the centred STFT, minus the dropped last one
	s := &Spectrogram{NMels: nMels, NFrames: nFrames, Data: make([]float32, nMels*nFrames)}

	// Frames are independent. Workers take blocks of frames from a shared counter, so the
	// all-zero padding frames (cheap) and audio frames (an FFT each) spread evenly. Each
	// worker writes log10 of its frames and reports the maximum it saw.
	blocks := (nFrames + frameBlock - 1) / frameBlock
	workers := max(1, min(maxWorkers, runtime.GOMAXPROCS(0), blocks))
	maxes := make([]float32, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fr := newFrameWorker(fb)
			for {
				b := int(next.Add(1) - 1)
				if b >= blocks {
					break
				}
				fr.run(s, samples, n, b*frameBlock, min((b+1)*frameBlock, nFrames))
			}
			maxes[w] = fr.best
		}()
	}
	wg.Wait()
	gmax := maxes[0]
	for _, m := range maxes[1:] {
		gmax = max(gmax, m)
	}
	floor := gmax - logRange
	for i, v := range s.Data {
		s.Data[i] = (max(v, floor) + 4) / 4
	}
	return s, nil
}

// maxWorkers bounds the goroutines one spectrogram uses: a server computes many streams'
// spectrograms at once, so more would only contend. frameBlock is the unit of work a worker
// takes at a time (0.64 s of audio), large enough that short inputs stay on one goroutine.
const (
	maxWorkers = 2
	frameBlock = 64
)

// frameWorker is one goroutine's state: STFT scratch, mel scratch and the largest log value
// it has written.
type frameWorker struct {
	fb   *Filterbank
	st   *stft
	mels []float32
	best float32
}

func newFrameWorker(fb *Filterbank) *frameWorker {
	return &frameWorker{fb: fb, st: newSTFT(), mels: make([]float32, fb.NMels), best: float32(math.Inf(-1))}
}

// silentLog is log10 of the clamp, the value of every band of an all-zero frame.
var silentLog = float32(math.Log10(logFloor))

// run fills frames [lo, hi) of s with log10(max(mel, 1e-10)). n is the padded signal length;
// samples past len(samples) are zero.
func (w *frameWorker) run(s *Spectrogram, samples []float32, n, lo, hi int) {
	for t := lo; t < hi; t++ {
		if !w.st.frame(samples, n, t) {
			// An all-zero frame has zero power everywhere: the clamp's log, without an FFT.
			for m := range w.fb.NMels {
				s.Data[m*s.NFrames+t] = silentLog
			}
			w.best = max(w.best, silentLog)
			continue
		}
		w.fb.apply(w.mels, w.st.power())
		for m, v := range w.mels {
			l := float32(math.Log10(float64(max(v, logFloor))))
			s.Data[m*s.NFrames+t] = l
			w.best = max(w.best, l)
		}
	}
}

// PadOrTrim returns a copy of s with exactly frames frames: extra frames are cut from the end,
// missing ones are appended as zeros, like audio.py's pad_or_trim on the last axis (which pads
// with 0, not with the log-mel of silence). A negative frames counts as 0.
func PadOrTrim(s *Spectrogram, frames int) *Spectrogram {
	frames = max(frames, 0)
	out := &Spectrogram{NMels: s.NMels, NFrames: frames, Data: make([]float32, s.NMels*frames)}
	keep := min(frames, s.NFrames)
	for m := range s.NMels {
		copy(out.Data[m*frames:m*frames+keep], s.Data[m*s.NFrames:m*s.NFrames+keep])
	}
	return out
}

// Whisper30s returns the 3000-frame input the encoder sees when transcribe.py decodes the first
// 30-second window of samples: the spectrogram is computed with padding=NSamples (so the
// global-maximum floor covers the zero padding too), its content frames are
// len(samples)/HopLength, and the window is the first min(3000, content) frames zero-padded to
// 3000 (ref: openai/whisper transcribe.py, mel_segment = pad_or_trim(mel[:, seek:seek+size])).
// Frames past the audio are therefore 0, not the log-mel of silence. (transcribe.py's
// language detection uses PadOrTrim(LogMel(samples, nMels, NSamples), NFrames) instead,
// whose frames past the audio keep the log-mel of the padding.)
func Whisper30s(samples []float32, nMels int) (*Spectrogram, error) {
	full, err := LogMel(samples, nMels, NSamples)
	if err != nil {
		return nil, err
	}
	content := full.NFrames - NFrames // = len(samples)/HopLength
	out := &Spectrogram{NMels: nMels, NFrames: NFrames, Data: make([]float32, nMels*NFrames)}
	keep := min(NFrames, content)
	for m := range nMels {
		copy(out.Data[m*NFrames:m*NFrames+keep], full.Data[m*full.NFrames:m*full.NFrames+keep])
	}
	return out, nil
}
