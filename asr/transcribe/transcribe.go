// Package transcribe turns a whole recording into timestamped segments with a Whisper model,
// the way OpenAI's whisper/transcribe.py does: it walks the log-mel spectrogram in 30-second
// windows, decodes each with package decode (falling back to higher temperatures when the
// text is repetitive or improbable), skips silent windows, cuts the timestamp tokens into
// segments, moves the window to the last complete segment, and conditions each window on the
// text before it. Writers render the result as text, JSON, SRT, VTT or TSV.
//
// The package never sees the model: a Window (the lead's adapter over whisper.State) encodes
// a mel window and decodes hypotheses against it, and, for word-level timestamps, also
// implements timing.Aligner.
package transcribe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/chorus-asr/chorus/asr/decode"
	"github.com/chorus-asr/chorus/asr/mel"
	"github.com/chorus-asr/chorus/asr/timing"
)

// Window is a model's decoder for one 30-second window at a time.
type Window interface {
	decode.Runner
	// EncodeWindow runs the audio encoder on one window, mel[m*frames+t] for nMels bands
	// and frames (3000) frames, makes it the audio every hypothesis attends to, and empties
	// every hypothesis. The first content frames hold audio, the rest zero padding: a model
	// trained on unpadded audio may encode just those (Whisper's own checkpoints need all).
	EncodeWindow(mel []float32, nMels, frames, content int) error
}

// Options control a transcription; they mirror the keyword arguments of OpenAI's transcribe()
// (ref: openai/whisper transcribe.py#L38-L56). Start from DefaultOptions: its zero value
// turns every threshold off.
type Options struct {
	// Decode are the per-window decoding options. Transcribe sets Temperature and Prompt
	// itself, drops BeamSize and Patience at temperatures above 0 and BestOf at 0, and fills
	// in Language (detected on multilingual models when empty) and Rand (a fixed seed) when
	// unset.
	Decode decode.Options
	// Temperatures are tried in order until a window's decoding passes the thresholds; empty
	// means DefaultTemperatures.
	Temperatures []float64
	// CompressionRatioThreshold fails a decoding whose text compresses better than this
	// (repetition loops); nil disables the check.
	CompressionRatioThreshold *float64
	// LogprobThreshold fails a decoding whose average token log-probability is lower; nil
	// disables the check.
	LogprobThreshold *float64
	// NoSpeechThreshold: a window whose p(nospeech) is above it is silence, and skipped,
	// unless its average log-probability is above LogprobThreshold; nil never skips.
	NoSpeechThreshold *float64
	// ConditionOnPreviousText feeds the text so far as the prompt of the next window (reset
	// after a window decoded above temperature 0.5).
	ConditionOnPreviousText bool
	// InitialPrompt is text given as the prompt of the first window ("" for none);
	// CarryInitialPrompt prepends it to every window's prompt.
	InitialPrompt      string
	CarryInitialPrompt bool
	// ClipTimestamps are start,end,start,end,… times in seconds of the parts to transcribe;
	// a missing last end is the end of the audio. Empty means everything.
	ClipTimestamps []float64
	// WordTimestamps aligns every window's text with its audio and gives each segment its
	// Words (OpenAI's word_timestamps=True; package timing). It costs one more decoder pass
	// per window, needs a Window that implements timing.Aligner, and, as in OpenAI's loop,
	// moves segment bounds to their words and the next window's start to the last word's end
	// when the window ends mid-segment.
	WordTimestamps bool

	// OnSegment, if set, is called with each segment as soon as its window is done.
	OnSegment func(Segment)
	// Progress, if set, is called after each window with the frames done and in total.
	Progress func(done, total int)
}

// DefaultTemperatures is OpenAI's fallback schedule 0, 0.2, …, 1.0.
var DefaultTemperatures = []float64{0, 0.2, 0.4, 0.6, 0.8, 1.0}

// DefaultOptions returns OpenAI's transcribe() defaults: decode.DefaultOptions, the fallback
// schedule, compression ratio 2.4, log-prob -1, no-speech 0.6, conditioning on previous text.
func DefaultOptions() Options {
	return Options{
		Decode:                    decode.DefaultOptions(),
		Temperatures:              DefaultTemperatures,
		CompressionRatioThreshold: new(2.4),
		LogprobThreshold:          new(-1.0),
		NoSpeechThreshold:         new(0.6),
		ConditionOnPreviousText:   true,
	}
}

// DefaultBeamSize is the beam width chorus's command line decodes with, where DefaultOptions
// keeps OpenAI's transcribe() function's greedy decoding. OpenAI's command line uses 5
// (--beam_size 5, ref: openai/whisper transcribe.py#L541-L542); chorus uses 10 because with
// joint CTC scoring and the language model a wider beam keeps paying: chorus-micro's dev
// utterances 150–299 gave 20.3 / 19.0 / 18.4 / 18.8% WER at beams 5 / 8 / 12 / 16
// (docs/BENCHMARKS.md, "Joint CTC/attention decoding").
const DefaultBeamSize = 10

// maxBestOf bounds the samples SetBeam draws at the fallback temperatures.
const maxBestOf = 5

// SetBeam makes o decode with beam search of width n at temperature 0 and draw the best of
// min(n, 5) samples at the fallback temperatures, as OpenAI's command line does with
// --beam_size n --best_of 5; n ≤ 1 is greedy decoding.
func (o *Options) SetBeam(n int) {
	if n <= 1 {
		o.Decode.BeamSize, o.Decode.BestOf = 0, 0
		return
	}
	o.Decode.BeamSize, o.Decode.BestOf = n, min(n, maxBestOf)
}

// Segment is a stretch of speech with its text (ref: transcribe.py#L246-L261).
type Segment struct {
	ID int
	// Seek is the mel frame at which the window that produced the segment began.
	Seek int
	// Start and End are in seconds from the beginning of the audio.
	Start, End float64
	Text       string
	// Tokens are the segment's tokens, timestamps included; empty when the segment has no
	// text or no duration.
	Tokens []int
	// The window's decoding: its temperature, average log-probability, compression ratio and
	// no-speech probability.
	Temperature, AvgLogprob, CompressionRatio, NoSpeechProb float64
	// Words are the segment's words with their times (Options.WordTimestamps; nil without,
	// empty for a segment without text).
	Words []Word
}

// Word is one word of a segment: its text (leading space and merged punctuation included),
// start and end in seconds from the beginning of the audio, and the mean probability of its
// tokens (OpenAI's segment["words"] entries).
type Word = timing.Word

// Result is a whole transcription.
type Result struct {
	Text     string    `json:"text"`
	Segments []Segment `json:"segments"`
	Language string    `json:"language"`
}

// Mel-frame arithmetic (ref: openai/whisper audio.py).
const (
	windowFrames    = mel.NFrames                             // frames per 30-second window
	framesPerSecond = mel.SampleRate / mel.HopLength          // 100
	secondsPerFrame = float64(mel.HopLength) / mel.SampleRate // 0.01
)

// Transcribe transcribes spec, the log-mel spectrogram of a whole recording with 30 seconds
// of zero samples appended (mel.LogMel(samples, nMels, mel.NSamples), as transcribe.py
// computes it; see Audio), decoding each window with w (ref: transcribe.py#L38-L514).
// The hallucination-silence heuristics (hallucination_silence_threshold), which build on
// word timestamps, are not implemented.
func Transcribe(ctx context.Context, w Window, m decode.Model, spec *mel.Spectrogram, o Options) (*Result, error) {
	if spec == nil || spec.NMels <= 0 || spec.NFrames < windowFrames || len(spec.Data) != spec.NMels*spec.NFrames {
		return nil, errors.New("transcribe: spectrogram must be [mels][frames] with at least the 30 s of padding")
	}
	if m.AudioCtx <= 0 || windowFrames%m.AudioCtx != 0 {
		return nil, fmt.Errorf("transcribe: %d audio positions do not divide a %d-frame window", m.AudioCtx, windowFrames)
	}
	if m.Vocab == nil {
		return nil, errors.New("transcribe: model has no vocabulary")
	}
	aligner, ok := w.(timing.Aligner)
	if o.WordTimestamps && !ok {
		return nil, errors.New("transcribe: word timestamps need a model that can align (timing.Aligner)")
	}
	t := &run{
		aligner:       aligner,
		w:             w,
		m:             m,
		o:             o,
		spec:          spec,
		contentFrames: spec.NFrames - windowFrames,
		inputStride:   windowFrames / m.AudioCtx, // mel frames per timestamp step: 2
		window:        make([]float32, spec.NMels*windowFrames),
	}
	t.precision = float64(t.inputStride) * secondsPerFrame // seconds per timestamp step: 0.02
	if len(t.o.Temperatures) == 0 {
		t.o.Temperatures = DefaultTemperatures
	}
	if t.o.Decode.Rand == nil {
		// One stream for the whole file, so that windows do not repeat each other's draws.
		t.o.Decode.Rand = rand.New(rand.NewPCG(0, 0))
	}
	if err := t.language(); err != nil {
		return nil, err
	}
	if o.WordTimestamps {
		if err := t.timingTokenizer(); err != nil {
			return nil, err
		}
	}
	clips, err := t.clips()
	if err != nil {
		return nil, err
	}
	if err := t.loop(ctx, clips); err != nil {
		return nil, err
	}
	text := m.Vocab.Decode(decode.TextTokens(t.allTokens[len(t.initialPrompt):], m.Specials.EOT))
	return &Result{Text: text, Segments: t.segments, Language: t.o.Decode.Language}, nil
}

// Audio computes the padded spectrogram of 16 kHz mono samples and transcribes it.
func Audio(ctx context.Context, w Window, m decode.Model, samples []float32, nMels int, o Options) (*Result, error) {
	spec, err := mel.LogMel(samples, nMels, mel.NSamples)
	if err != nil {
		return nil, fmt.Errorf("transcribe: %w", err)
	}
	return Transcribe(ctx, w, m, spec, o)
}

// run is one Transcribe call's state.
type run struct {
	w             Window
	m             decode.Model
	o             Options
	spec          *mel.Spectrogram
	contentFrames int
	inputStride   int
	precision     float64
	window        []float32 // the current window's mel, reused

	initialPrompt    []int
	allTokens        []int // initial prompt, then every segment's tokens
	promptResetSince int
	segments         []Segment

	aligner    timing.Aligner   // w, when it can align
	words      timing.Tokenizer // what alignment needs of the tokenizer (WordTimestamps)
	lastSpeech float64          // end of the last word so far (last_speech_timestamp)
}

// language fixes the decoding language: the requested one, English on English-only models,
// or the one detected on the first 30 seconds (ref: transcribe.py#L143-L157).
func (t *run) language() error {
	if t.o.Decode.Language != "" {
		return nil
	}
	if !t.m.Specials.Multilingual {
		t.o.Decode.Language = "en"
		return nil
	}
	// pad_or_trim(mel, N_FRAMES) of the padded spectrogram: its first 3000 frames, padding
	// frames included as they are (not zeroed as the decoding windows are).
	t.fillWindow(0, windowFrames)
	if err := t.w.EncodeWindow(t.window, t.spec.NMels, windowFrames, windowFrames); err != nil {
		return fmt.Errorf("transcribe: encode: %w", err)
	}
	lang, _, err := decode.DetectLanguage(t.w, t.m.Specials)
	if err != nil {
		return fmt.Errorf("transcribe: detect language: %w", err)
	}
	t.o.Decode.Language = lang
	return nil
}

// clips turns ClipTimestamps into [start, end) frame ranges (ref: transcribe.py#L168-L177).
// Ends past the audio are cut to it (OpenAI would decode empty windows forever).
func (t *run) clips() ([][2]int, error) {
	var points []int
	for _, s := range t.o.ClipTimestamps {
		if s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			return nil, fmt.Errorf("transcribe: clip timestamp %g", s)
		}
		points = append(points, int(math.RoundToEven(s*framesPerSecond)))
	}
	if len(points) == 0 {
		points = append(points, 0)
	}
	if len(points)%2 == 1 {
		points = append(points, t.contentFrames)
	}
	var clips [][2]int
	for i := 0; i < len(points); i += 2 {
		clips = append(clips, [2]int{points[i], min(points[i+1], t.contentFrames)})
	}
	return clips, nil
}

// fillWindow copies frames [seek, seek+n) of every band into the window and zeroes the rest,
// as pad_or_trim(mel[:, seek:seek+n], N_FRAMES) does.
func (t *run) fillWindow(seek, n int) {
	nf := t.spec.NFrames
	for b := range t.spec.NMels {
		row := t.window[b*windowFrames : (b+1)*windowFrames]
		copy(row, t.spec.Data[b*nf+seek:b*nf+seek+n])
		clear(row[n:])
	}
}

// loop walks the windows (ref: transcribe.py#L226-L508).
func (t *run) loop(ctx context.Context, clips [][2]int) error {
	if t.o.InitialPrompt != "" {
		t.initialPrompt = decode.ContextTokens(t.m.Vocab, t.o.InitialPrompt)
		t.allTokens = slices.Clone(t.initialPrompt)
	}
	remainingPrompt := t.m.TextCtx/2 - 1 - len(t.initialPrompt)

	for _, clip := range clips {
		for seek := clip[0]; seek < clip[1]; {
			if err := ctx.Err(); err != nil {
				return err
			}
			timeOffset := float64(seek) * secondsPerFrame
			size := min(windowFrames, t.contentFrames-seek, clip[1]-seek)
			t.fillWindow(seek, size)
			if err := t.w.EncodeWindow(t.window, t.spec.NMels, windowFrames, size); err != nil {
				return fmt.Errorf("transcribe: encode window at %.2fs: %w", timeOffset, err)
			}

			var prompt []int
			if t.o.CarryInitialPrompt {
				rest := t.allTokens[max(len(t.initialPrompt), t.promptResetSince):]
				if remainingPrompt <= 0 {
					rest = nil // the initial prompt fills the prompt space
				} else if len(rest) > remainingPrompt {
					rest = rest[len(rest)-remainingPrompt:]
				}
				prompt = slices.Concat(t.initialPrompt, rest)
			} else {
				prompt = t.allTokens[t.promptResetSince:]
			}

			res, err := t.decodeWithFallback(ctx, prompt)
			if err != nil {
				return fmt.Errorf("transcribe: window at %.2fs: %w", timeOffset, err)
			}

			// A silent window is skipped whole, unless its text is probable enough
			// (ref: transcribe.py#L298-L310).
			if th := t.o.NoSpeechThreshold; th != nil && res.NoSpeechProb > *th &&
				!(t.o.LogprobThreshold != nil && res.AvgLogprob > *t.o.LogprobThreshold) {
				seek += size
				t.progress(seek)
				continue
			}

			pieces, advance := windowSegments(res.Tokens, t.m.Specials.TimestampBegin, size, t.inputStride, t.precision)
			segs := make([]Segment, 0, len(pieces))
			for _, p := range pieces {
				segs = append(segs, Segment{
					ID:               len(t.segments) + len(segs),
					Seek:             seek,
					Start:            timeOffset + p.start,
					End:              timeOffset + p.end,
					Text:             t.m.Vocab.Decode(decode.TextTokens(p.tokens, t.m.Specials.EOT)),
					Tokens:           p.tokens,
					Temperature:      res.Temperature,
					AvgLogprob:       res.AvgLogprob,
					CompressionRatio: res.CompressionRatio,
					NoSpeechProb:     res.NoSpeechProb,
				})
			}
			next := seek + advance
			if t.o.WordTimestamps {
				if next, err = t.addWords(segs, res.Tokens, seek, size, next); err != nil {
					return fmt.Errorf("transcribe: word timestamps of the window at %.2fs: %w", timeOffset, err)
				}
			}
			for _, seg := range segs {
				// An instantaneous or blank segment keeps its place but loses its text
				// (ref: transcribe.py#L484-L489).
				if seg.Start == seg.End || strings.TrimSpace(seg.Text) == "" {
					seg.Text, seg.Tokens = "", []int{}
					if t.o.WordTimestamps {
						seg.Words = []Word{}
					}
				}
				t.segments = append(t.segments, seg)
				t.allTokens = append(t.allTokens, seg.Tokens...)
				if t.o.OnSegment != nil {
					t.o.OnSegment(seg)
				}
			}
			seek = next

			// Text decoded at a high temperature is a poor context (ref: transcribe.py#L503-L505).
			if !t.o.ConditionOnPreviousText || res.Temperature > 0.5 {
				t.promptResetSince = len(t.allTokens)
			}
			t.progress(seek)
		}
	}
	return nil
}

// timingTokenizer prepares what alignment needs: the SOT sequence of the decoding language
// and task, without the prompt, as tokenizer.sot_sequence is (ref: tokenizer.py#L147-L159).
func (t *run) timingTokenizer() error {
	sp := t.m.Specials
	sot := []int{sp.SOT}
	if sp.Multilingual {
		lang, err := sp.LanguageToken(t.o.Decode.Language)
		if err != nil {
			return fmt.Errorf("transcribe: %w", err)
		}
		task := sp.Transcribe
		if t.o.Decode.Task == decode.TaskTranslate {
			task = sp.Translate
		}
		sot = append(sot, lang, task)
	}
	vocab, eot := t.m.Vocab, sp.EOT
	t.words = timing.Tokenizer{
		SOTSequence: sot, NoTimestamps: sp.NoTimestamps, EOT: eot, Language: t.o.Decode.Language,
		// Alignment decodes text tokens and, last, EOT by its name (decode_with_timestamps).
		Decode: func(ids []int) string {
			if n := len(ids); n > 0 && ids[n-1] == eot {
				return vocab.Decode(ids[:n-1]) + "<|endoftext|>"
			}
			return vocab.Decode(ids)
		},
	}
	return nil
}

// addWords gives the segments of the window at seek their words and returns the next seek:
// next, or, when the window ends inside a segment, the last word's end
// (ref: transcribe.py#L401-L416, L474-L476). The seek still always moves forward.
func (t *run) addWords(segs []Segment, tokens []int, seek, size, next int) (int, error) {
	timeOffset := float64(seek) * secondsPerFrame
	ts := make([]timing.Segment, len(segs))
	for i, s := range segs {
		ts[i] = timing.Segment{Start: s.Start, End: s.End, Tokens: s.Tokens}
	}
	err := timing.AddWordTimestamps(ts, t.aligner, t.words, size, timeOffset, t.lastSpeech,
		timing.DefaultPrependPunctuations, timing.DefaultAppendPunctuations)
	if err != nil {
		return next, err
	}
	for i := range segs {
		segs[i].Start, segs[i].End, segs[i].Words = ts[i].Start, ts[i].End, ts[i].Words
		if segs[i].Words == nil {
			segs[i].Words = []Word{}
		}
	}
	end, ok := timing.GetEnd(ts)
	n := len(tokens)
	singleEnding := n >= 2 && tokens[n-2] < t.m.Specials.TimestampBegin && tokens[n-1] >= t.m.Specials.TimestampBegin
	if !singleEnding && ok && end > timeOffset {
		if f := int(math.RoundToEven(end * framesPerSecond)); f > seek {
			next = f
		}
	}
	if ok {
		t.lastSpeech = end
	}
	return next, nil
}

func (t *run) progress(seek int) {
	if t.o.Progress != nil {
		t.o.Progress(min(seek, t.contentFrames), t.contentFrames)
	}
}

// decodeWithFallback decodes the current window at each temperature in turn until the result
// is neither too repetitive nor too improbable, or is silence; it returns the last result
// tried (ref: transcribe.py#L184-L224).
func (t *run) decodeWithFallback(ctx context.Context, prompt []int) (decode.Result, error) {
	var res decode.Result
	for _, temp := range t.o.Temperatures {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		o := t.o.Decode
		o.Temperature, o.Prompt = temp, prompt
		if temp > 0 {
			o.BeamSize, o.Patience = 0, 0 // sampling, not beam search, above 0
		} else {
			o.BestOf = 0 // best-of needs sampling
		}
		all, err := decode.DecodeContext(ctx, t.w, t.m, o)
		if err != nil {
			return res, err
		}
		res = all[0]

		lp := t.o.LogprobThreshold
		failed := (t.o.CompressionRatioThreshold != nil && res.CompressionRatio > *t.o.CompressionRatioThreshold) ||
			(lp != nil && res.AvgLogprob < *lp)
		silent := t.o.NoSpeechThreshold != nil && res.NoSpeechProb > *t.o.NoSpeechThreshold &&
			lp != nil && res.AvgLogprob < *lp
		if !failed || silent {
			break
		}
	}
	return res, nil
}

// piece is one segment of a window, times relative to the window start.
type piece struct {
	tokens     []int
	start, end float64
}

// windowSegments cuts one window's sampled tokens into segments and returns them with the
// number of frames to seek forward (ref: transcribe.py#L339-L399):
//
//   - each pair of consecutive timestamps closes one segment and opens the next; a segment
//     runs from its first token's timestamp to its last one's;
//   - if the tokens end with text then a single timestamp, the last segment ends there and
//     the whole window is consumed; otherwise the text after the last pair is unfinished:
//     it is dropped and the next window starts at the last pair;
//   - without any pair the window is one segment, ending at its last timestamp (or at the
//     window's end), and the whole window is consumed.
//
// size is the window's content in frames, stride the frames per timestamp step and precision
// the seconds per step. The seek always moves forward: OpenAI would decode the same window
// forever if the last pair were <|0.00|> (which the timestamp rules never sample).
func windowSegments(tokens []int, tsBegin, size, stride int, precision float64) ([]piece, int) {
	isTS := func(i int) bool { return tokens[i] >= tsBegin }
	pos := func(tok int) int { return max(tok-tsBegin, 0) } // a non-timestamp start counts as 0
	n := len(tokens)
	singleEnding := n >= 2 && !isTS(n-2) && isTS(n-1)

	var cuts []int
	for i := 1; i < n; i++ {
		if isTS(i-1) && isTS(i) {
			cuts = append(cuts, i)
		}
	}
	if len(cuts) == 0 {
		end := float64(size) * secondsPerFrame
		for i := n - 1; i >= 0; i-- {
			if isTS(i) {
				if tokens[i] != tsBegin {
					end = float64(tokens[i]-tsBegin) * precision
				}
				break
			}
		}
		return []piece{{tokens: tokens, start: 0, end: end}}, size
	}
	if singleEnding {
		cuts = append(cuts, n)
	}
	var pieces []piece
	last := 0
	for _, c := range cuts {
		s := tokens[last:c]
		pieces = append(pieces, piece{
			tokens: s,
			start:  float64(pos(s[0])) * precision,
			end:    float64(pos(s[len(s)-1])) * precision,
		})
		last = c
	}
	if singleEnding {
		return pieces, size
	}
	advance := pos(tokens[last-1]) * stride
	if advance <= 0 {
		advance = size
	}
	return pieces, advance
}
