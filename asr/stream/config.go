package stream

import (
	"fmt"
	"math"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/tensor"
)

// Config is a Session's streaming policy. The zero value of every field means its default,
// so Config{} is a usable configuration (without interim results); the defaults are the
// Default* constants below.
type Config struct {
	// Interim turns on interim results: every Step of audio in an utterance is decoded and
	// reported with its stable prefix (LocalAgreement). Without it only finals are decoded.
	Interim bool
	// Step is the audio between interim decodes, and the audio after speech starts before
	// the first one, so it is also the first interim's delay (in audio time).
	Step time.Duration
	// Agreement is the n of LocalAgreement-n: a word is committed once n consecutive
	// hypotheses agree on it.
	Agreement int

	// EndpointSilence is the unvoiced audio after speech that ends an utterance (the VAD's
	// hangover). Shorter finals come sooner but split sentences at their pauses. The
	// default, 160 ms, is what keeps the final within 300 ms of the end of speech with
	// 100-ms chunks: the endpoint is known only when the chunk holding it arrives (up to
	// 100 ms later), and the final, decoded ahead during the pause, must be ready by then
	// (BenchmarkSessionRealtime measures it).
	EndpointSilence time.Duration
	// FinalPad is the audio after the last voiced frame that an endpointed utterance's final
	// covers; the rest of the pause belongs to the next utterance. The final is decoded as
	// soon as the pad has arrived, so that it is ready when the endpoint comes
	// EndpointSilence−FinalPad later (and thrown away if speech resumes). It must be shorter
	// than EndpointSilence.
	FinalPad time.Duration
	// MaxUtterance is the most audio an utterance may hold before it is cut, without an
	// endpoint, at the last segment boundary the committed text reaches; at most 29 s, so
	// that an utterance fits one 30-second Whisper window.
	MaxUtterance time.Duration
	// MaxLeadingSilence is the most audio before its speech onset that an utterance starts
	// with. Utterances partition the stream contiguously while the pauses between them are
	// shorter (plus FinalPad); longer pauses are dropped, and belong to no utterance. Whisper
	// puts the first timestamp at most 1 s into a window, so long lead-ins cost accuracy.
	MaxLeadingSilence time.Duration

	// WordTimestamps gives finals their words with times and probabilities (Event.Words),
	// as transcribe.Options.WordTimestamps computes them: one more decoder pass per final
	// window. Off by default for that cost; interims never carry words. A final's text then
	// equals `chorus transcribe --word-timestamps` of its audio (word timestamps can move
	// where a long utterance's second window starts, as in OpenAI's loop).
	WordTimestamps bool

	// BeamSize > 1 decodes finals with beam search of that width (transcribe.Options.SetBeam,
	// as `chorus transcribe --beam N`); 0 and 1 decode them greedily, as OpenAI's
	// transcribe() does. Beam search lowers the default model's WER by about a quarter but
	// costs finals about twice the decoding time, and a loaded server's capacity with it
	// (docs/BENCHMARKS.md, "Joint CTC/attention decoding"). Interims always decode greedily:
	// they are redone every Step and only the words consecutive ones agree on are kept.
	BeamSize int

	// Routing chooses the experts a mixture-of-experts variant runs for this stream
	// (asr.RoutingChoice; the zero value is the dense model). New refuses a choice the
	// variant cannot honour with an error wrapping asr.ErrRouting.
	Routing asr.RoutingChoice
	// Encode, when set, encodes the session's windows instead of its own encoder: a server
	// batching concurrent streams' windows (whisper.Encoder.ForwardBatch) passes it; it must
	// compute exactly what the model's encoder computes. Routed sessions ignore it.
	Encode func(mel *tensor.T) *tensor.T

	// Language is the spoken language's code; "" detects it (multilingual models) or means
	// English. InitialPrompt is text that conditions the first utterance, as
	// transcribe.Options.InitialPrompt does.
	Language, InitialPrompt string

	// Voice-activity detection (see vad): SpeechMargin is how many dB above the noise floor
	// a 10-ms frame must be to be voiced (half of it once in speech); MinSpeechLevel the
	// level in dBFS below which no frame is voiced; MinSpeech the voiced audio in a row that
	// starts speech; NoiseWindow the span over which the noise floor is the minimum level.
	SpeechMargin   float64
	MinSpeechLevel float64
	MinSpeech      time.Duration
	NoiseWindow    time.Duration

	// Decoding gates. NoSpeechThreshold, LogprobThreshold and CompressionRatioThreshold are
	// transcribe.Options' thresholds (temperature fallback when the average log-probability
	// is below LogprobThreshold or the compression ratio above CompressionRatioThreshold;
	// silence when p(nospeech) is above NoSpeechThreshold and the log-probability below
	// LogprobThreshold), and with their defaults finals decode as `chorus transcribe` does.
	// The session applies them once more to each decoded segment, as guards: a segment that
	// is silence by that rule, or that still compresses above CompressionRatioThreshold after
	// the whole fallback (a repetition loop), or whose average log-probability is below
	// MinAvgLogprob, is dropped. +Inf (−Inf for the log-probabilities) turns a gate off.
	NoSpeechThreshold         float64
	LogprobThreshold          float64
	CompressionRatioThreshold float64
	MinAvgLogprob             float64
}

// Defaults of Config's fields.
const (
	DefaultStep              = 500 * time.Millisecond
	DefaultAgreement         = 2
	DefaultEndpointSilence   = 160 * time.Millisecond
	DefaultFinalPad          = 60 * time.Millisecond
	DefaultMaxUtterance      = 20 * time.Second
	DefaultMaxLeadingSilence = 2 * time.Second

	DefaultSpeechMargin   = 12.0 // dB
	DefaultMinSpeechLevel = -55.0
	DefaultMinSpeech      = 60 * time.Millisecond
	DefaultNoiseWindow    = 3 * time.Second

	// OpenAI's transcribe() thresholds (transcribe.DefaultOptions).
	DefaultNoSpeechThreshold         = 0.6
	DefaultLogprobThreshold          = -1.0
	DefaultCompressionRatioThreshold = 2.4
	// DefaultMinAvgLogprob is low because the embedded default model, early in its
	// training, decodes real speech at average log-probabilities of −3.5 to −4.5, no higher
	// than it decodes silence and noise; a well-trained Whisper model is rarely below −1.5
	// on speech, and −2 is a sensible gate for one.
	DefaultMinAvgLogprob = -6.0
)

// maxBuffer is the most audio a Session holds: one Whisper window. Write refuses more.
const maxBuffer = mel.NSamples

// frameSamples is the VAD's frame: one mel hop, 10 ms.
const frameSamples = mel.HopLength

// withDefaults fills in the zero fields and checks the result.
func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	deff := func(f *float64, v float64) {
		if *f == 0 {
			*f = v
		}
	}
	def(&c.Step, DefaultStep)
	def(&c.EndpointSilence, DefaultEndpointSilence)
	def(&c.FinalPad, DefaultFinalPad)
	def(&c.MaxUtterance, DefaultMaxUtterance)
	def(&c.MaxLeadingSilence, DefaultMaxLeadingSilence)
	def(&c.MinSpeech, DefaultMinSpeech)
	def(&c.NoiseWindow, DefaultNoiseWindow)
	if c.Agreement == 0 {
		c.Agreement = DefaultAgreement
	}
	deff(&c.SpeechMargin, DefaultSpeechMargin)
	deff(&c.MinSpeechLevel, DefaultMinSpeechLevel)
	deff(&c.NoSpeechThreshold, DefaultNoSpeechThreshold)
	deff(&c.LogprobThreshold, DefaultLogprobThreshold)
	deff(&c.CompressionRatioThreshold, DefaultCompressionRatioThreshold)
	deff(&c.MinAvgLogprob, DefaultMinAvgLogprob)

	const frame = 10 * time.Millisecond
	switch {
	case c.Step < frame || c.Step > 10*time.Second:
		return c, fmt.Errorf("stream: step %v outside [10ms, 10s]", c.Step)
	case c.BeamSize < 0 || c.BeamSize > 16:
		return c, fmt.Errorf("stream: beam size %d outside [0, 16]", c.BeamSize)
	case c.Agreement < 1 || c.Agreement > 10:
		return c, fmt.Errorf("stream: agreement %d outside [1, 10]", c.Agreement)
	case c.EndpointSilence < 2*frame || c.EndpointSilence > 10*time.Second:
		return c, fmt.Errorf("stream: endpoint silence %v outside [20ms, 10s]", c.EndpointSilence)
	case c.FinalPad < 0 || c.FinalPad >= c.EndpointSilence:
		return c, fmt.Errorf("stream: final pad %v must be in [0, endpoint silence %v)", c.FinalPad, c.EndpointSilence)
	case c.MaxUtterance < time.Second || c.MaxUtterance > 29*time.Second:
		return c, fmt.Errorf("stream: max utterance %v outside [1s, 29s]", c.MaxUtterance)
	case c.MaxLeadingSilence < 0 || c.MaxLeadingSilence > 10*time.Second:
		return c, fmt.Errorf("stream: max leading silence %v outside [0, 10s]", c.MaxLeadingSilence)
	case c.MinSpeech < frame || c.MinSpeech > time.Second:
		return c, fmt.Errorf("stream: min speech %v outside [10ms, 1s]", c.MinSpeech)
	case c.NoiseWindow < 10*frame || c.NoiseWindow > time.Minute:
		return c, fmt.Errorf("stream: noise window %v outside [100ms, 1m]", c.NoiseWindow)
	case !finite(c.SpeechMargin) || !finite(c.MinSpeechLevel):
		return c, fmt.Errorf("stream: speech margin %g and min speech level %g must be finite", c.SpeechMargin, c.MinSpeechLevel)
	case math.IsNaN(c.NoSpeechThreshold) || math.IsNaN(c.LogprobThreshold) ||
		math.IsNaN(c.CompressionRatioThreshold) || math.IsNaN(c.MinAvgLogprob):
		return c, fmt.Errorf("stream: a decoding gate is NaN")
	}
	return c, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// frames is d in whole VAD frames, rounded up.
func frames(d time.Duration) int {
	return int((d + 10*time.Millisecond - 1) / (10 * time.Millisecond))
}

// samples is d in samples at 16 kHz, rounded down.
func samples(d time.Duration) int64 { return int64(d / sampleDur) }

// at is the audio time of sample n.
func at(n int64) time.Duration { return time.Duration(n) * sampleDur }

// sampleDur is one sample at 16 kHz: 62.5 µs.
const sampleDur = time.Second / mel.SampleRate
