// Package stream is chorus's per-stream streaming recognizer: a Session takes 16-kHz mono
// samples as they arrive and turns them into interim and final transcripts.
//
// Audio time drives everything; a Session never reads a clock. The stream is cut into
// utterances by an energy voice-activity detector (see Config's VAD fields): speech starts
// an utterance, a pause of Config.EndpointSilence ends it, and its final is decoded exactly
// as `chorus transcribe --beam B` (asr.Variant.Transcribe with transcribe.DefaultOptions and
// B = Config.BeamSize, greedy by default) decodes its audio, conditioned on the previous
// finals' text. While an utterance runs, every
// Config.Step of audio decodes it again; the words the last Config.Agreement hypotheses
// agree on are committed (LocalAgreement-n) and reported as the interim's stable prefix.
// An utterance longer than Config.MaxUtterance is cut at a committed segment boundary.
//
// A Session has no server knowledge and is not safe for concurrent use: the server makes one
// per stream and calls it from one goroutine.
package stream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/transcribe"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// Interim is a provisional transcript of the utterance so far.
	Interim EventKind = iota + 1
	// Final is an utterance's transcript; it is not revised.
	Final
	// SpeechBegin: the VAD heard speech start, at Start (detected at End).
	SpeechBegin
	// SpeechEnd: the VAD's hangover ran out; the speech lasted from Start to End.
	SpeechEnd
)

func (k EventKind) String() string {
	switch k {
	case Interim:
		return "interim"
	case Final:
		return "final"
	case SpeechBegin:
		return "speech-begin"
	case SpeechEnd:
		return "speech-end"
	}
	return fmt.Sprintf("EventKind(%d)", int(k))
}

// Event is one result of a Session.
type Event struct {
	Kind EventKind
	// Utterance is the index, from 0, of the utterance the event belongs to. An utterance
	// whose final would be empty (silence, or guarded away) emits no Final, but its index
	// is used up all the same.
	Utterance int
	// Text is, for an interim, the committed words and then the unconfirmed tail; for a
	// final, the utterance's text (white space trimmed). A final is decoded afresh, with
	// temperature fallback, and may differ from the last interim, stable part included.
	Text string
	// Stable is an interim's committed prefix of Text; within an utterance it only grows.
	Stable string
	// Stability of an interim, in (0, 1]: committed words count 1 and each tail word the
	// share of the last Agreement hypotheses that agree with it, averaged over the words
	// (agreement.stability). 1 on finals.
	Stability float32
	// Start and End are audio times from the start of the stream: the audio an interim or
	// final covers (End is Google's result_end_time), or as documented on the kinds.
	Start, End time.Duration
	// Confidence is exp of the average token log-probability, weighted by tokens, of the
	// decoded segments.
	Confidence float32
	// Language is the decoded language's code.
	Language string
	// NoSpeechProb is p(<|nospeech|>) of the first decoded window (NaN for models without
	// the token).
	NoSpeechProb float64
	// Words are a final's words, in order, with Config.WordTimestamps (nil otherwise).
	Words []Word
}

// Word is one word of a final: its text as Whisper decodes it (leading space and adjacent
// punctuation included), its start and end in audio time from the start of the stream, and
// the mean probability of its tokens (transcribe.Word, moved to stream time).
type Word struct {
	Word        string
	Start, End  time.Duration
	Probability float64
}

// Errors of a Session.
var (
	// ErrBufferFull: Write would make the session hold more than 30 s of undecoded audio;
	// call Process between writes.
	ErrBufferFull = errors.New("stream: audio buffer full (30 s); call Process between writes")
	// ErrClosed: the session was closed.
	ErrClosed = errors.New("stream: session closed")
	// ErrBadSample: Write got a NaN or infinite sample.
	ErrBadSample = errors.New("stream: sample is NaN or infinite")
)

// maxPromptBytes bounds the previous text kept for the prompt: decoding keeps only its last
// TextCtx/2−1 tokens, which never take more bytes than this in practice.
const maxPromptBytes = 1024

// Session is one stream's recognizer: its audio buffer, VAD, agreement state, the text that
// prompts the next utterance, and its own decode state (asr.Transcriber). The Variant is
// only read.
type Session struct {
	cfg   Config
	tr    *asr.Transcriber
	vad   vad
	agree agreement

	pad, step, lead, maxUtt int64 // Config durations in samples

	buf      []float32 // samples [bufStart, bufStart+len(buf))
	bufStart int64
	vadPos   int64 // samples the VAD has consumed

	utt         int   // index of the open (or next) utterance
	open        bool  // an utterance is open: speech began and it is not final yet
	uttStart    int64 // start of the open utterance; when none is open, end of the last final
	speechStart int64 // onset of the VAD's current or last speech
	lastDecode  int64 // end of the audio the last interim decoded
	lastText    string
	lastStable  string
	hyp         []segment // the last interim's segments, for cutting
	spec        *decoded  // a final decoded ahead, during the pause that may end the utterance

	prompt  string // previous finals' text (after Config.InitialPrompt), at most maxPromptBytes
	decodes int    // transcriptions run, for tests and benchmarks
	err     error  // a decoding error leaves the session unusable
	closed  bool

	// routing is the stream's expert routing (also set on tr), kept past Close so that the
	// caller can read the pathway of the finals Close emits.
	routing whisper.Routing
}

// segment is a kept decoded segment in samples from the start of the stream.
type segment struct {
	start, end int64
	text       string
	words      int
	tokens     int
	avgLogprob float64
	noSpeech   float64
	temp       float64
	wordTimes  []Word // with Config.WordTimestamps, finals only
}

// decoded is one decoding of [start, end) with a prompt.
type decoded struct {
	start, end int64
	prompt     string
	language   string
	segs       []segment
	all        bool   // no segment was dropped by a guard
	text       string // the Transcribe result's text
}

// New returns a session decoding with v under cfg (zero fields take their defaults). It
// allocates its own decode state; v is never modified and may serve other sessions.
func New(v *asr.Variant, cfg Config) (*Session, error) {
	if v == nil {
		return nil, errors.New("stream: nil model")
	}
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tr, err := v.NewTranscriber()
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	rt, err := v.Routing(c.Routing)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	tr.SetRouting(rt)
	tr.SetEncoder(cfg.Encode)
	s := &Session{
		cfg:    c,
		tr:     tr,
		agree:  agreement{n: c.Agreement},
		pad:    int64(frames(c.FinalPad)) * frameSamples,
		step:   samples(c.Step),
		lead:   samples(c.MaxLeadingSilence),
		maxUtt: samples(c.MaxUtterance),
		prompt: limitPrompt(strings.TrimSpace(c.InitialPrompt)),
		vad: vad{
			startMargin: c.SpeechMargin,
			keepMargin:  c.SpeechMargin / 2,
			minLevel:    c.MinSpeechLevel,
			onsetFrames: frames(c.MinSpeech),
			hangFrames:  frames(c.EndpointSilence),
			floorFrames: frames(c.NoiseWindow),
		},
	}
	s.routing = rt
	return s, nil
}

// Routing is the session's expert routing (Config.Routing made for this stream), nil for
// the dense model; the caller reads its pathway and timing (experts/moe.Routing).
func (s *Session) Routing() whisper.Routing { return s.routing }

// end is the sample after the last one written.
func (s *Session) end() int64 { return s.bufStart + int64(len(s.buf)) }

// Write appends samples (16 kHz mono, nominally in [−1, 1]) to the stream. It refuses, and
// appends nothing of, a chunk holding a NaN or infinite sample, or one that would make the
// session hold more than 30 s: the open utterance (at most MaxUtterance) plus what Process
// has not consumed yet. A caller that calls Process after every chunk never hits the limit.
func (s *Session) Write(samples []float32) error {
	switch {
	case s.closed:
		return ErrClosed
	case s.err != nil:
		return s.err
	}
	for i, x := range samples {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("%w: sample %d", ErrBadSample, i)
		}
	}
	if len(s.buf)+len(samples) > maxBuffer {
		return ErrBufferFull
	}
	s.buf = append(s.buf, samples...)
	return nil
}

// Process does the decoding that the audio written so far makes due: it runs the VAD,
// finalizes utterances that ended, decodes an interim when Step of new audio has arrived in
// an utterance (one decode however much arrived), decodes a final ahead during a pause, and
// cuts an utterance longer than MaxUtterance. It is cheap when nothing is due.
func (s *Session) Process(ctx context.Context) ([]Event, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	ev, err := s.advance(ctx)
	if err != nil {
		return ev, s.fail(err)
	}
	if !s.open {
		s.trimIdle()
		return ev, nil
	}
	end := s.end()
	switch {
	case end-s.uttStart >= s.maxUtt:
		cut, err := s.cut(ctx)
		ev = append(ev, cut...)
		if err != nil {
			return ev, s.fail(err)
		}
	case s.vad.paused(max(1, int(s.pad/frameSamples))) && s.vad.voicedEnd()*frameSamples > s.uttStart:
		// Decode the final ahead; the endpoint, if it comes, then costs nothing.
		spanEnd := s.vad.voicedEnd()*frameSamples + s.pad
		if s.spec == nil || s.spec.start != s.uttStart || s.spec.end != spanEnd || s.spec.prompt != s.prompt {
			d, err := s.decode(ctx, s.uttStart, spanEnd, true)
			if err != nil {
				return ev, s.fail(err)
			}
			s.spec = d
		}
	case s.cfg.Interim && end-s.lastDecode >= s.step:
		e, err := s.interim(ctx)
		if err != nil {
			return ev, s.fail(err)
		}
		ev = append(ev, e...)
	}
	return ev, nil
}

// Finalize is a client-forced endpoint: it processes the audio written so far and finalizes
// the open utterance with all of it. If speech goes on, the next utterance continues from
// here without a new SpeechBegin.
func (s *Session) Finalize(ctx context.Context) ([]Event, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	ev, err := s.advance(ctx)
	if err != nil {
		return ev, s.fail(err)
	}
	e, err := s.forceFinal(ctx)
	ev = append(ev, e...)
	if err != nil {
		return ev, s.fail(err)
	}
	return ev, nil
}

// Close ends the stream: it finalizes what is pending, as Finalize does, reports the end of
// speech still in progress, and releases the decode state. Later calls return ErrClosed.
func (s *Session) Close(ctx context.Context) ([]Event, error) {
	ev, err := s.Finalize(ctx)
	if err != nil {
		return ev, err
	}
	if s.vad.speech {
		ev = append(ev, Event{Kind: SpeechEnd, Utterance: max(s.utt-1, 0), Start: at(s.speechStart), End: at(s.vad.voicedEnd() * frameSamples)})
	}
	s.closed, s.tr, s.buf, s.spec, s.hyp = true, nil, nil, nil, nil
	return ev, nil
}

func (s *Session) usable() error {
	if s.closed {
		return ErrClosed
	}
	return s.err
}

// fail makes err the session's lasting error: a decode cut short leaves its utterance
// half-processed, and the server ends the stream anyway.
func (s *Session) fail(err error) error {
	s.err = fmt.Errorf("stream: %w", err)
	return s.err
}

// advance runs the VAD over the whole frames written since the last call, opening
// utterances at speech onsets and finalizing them at endpoints, in audio order.
func (s *Session) advance(ctx context.Context) ([]Event, error) {
	var ev []Event
	for s.vadPos+frameSamples <= s.end() {
		i := s.vadPos - s.bufStart
		switch s.vad.push(level(s.buf[i : i+frameSamples])) {
		case vadBegin:
			s.speechStart = s.vad.onset() * frameSamples
			if !s.open {
				s.open = true
				s.uttStart = max(s.uttStart, s.speechStart-s.lead, s.bufStart)
				s.lastDecode = s.speechStart
				s.drop(s.uttStart)
			}
			ev = append(ev, Event{Kind: SpeechBegin, Utterance: s.utt, Start: at(s.speechStart), End: at(s.vadPos + frameSamples)})
		case vadEnd:
			voicedEnd := s.vad.voicedEnd() * frameSamples
			ev = append(ev, Event{Kind: SpeechEnd, Utterance: s.utt, Start: at(s.speechStart), End: at(voicedEnd)})
			if s.open {
				if voicedEnd > s.uttStart {
					e, err := s.final(ctx, voicedEnd+s.pad)
					ev = append(ev, e...)
					if err != nil {
						return ev, err
					}
				}
				s.open = false // after a forced final, what speech was left held no voiced audio
			}
		}
		s.vadPos += frameSamples
	}
	return ev, nil
}

// forceFinal finalizes the open utterance with everything written.
func (s *Session) forceFinal(ctx context.Context) ([]Event, error) {
	if !s.open || s.end() <= s.uttStart {
		return nil, nil
	}
	ev, err := s.final(ctx, s.end())
	if err != nil {
		return ev, err
	}
	if s.vad.speech {
		s.open = true // the speech goes on in the next utterance
		s.lastDecode = s.uttStart
	}
	return ev, nil
}

// final decodes the open utterance up to end (or takes the decoding done ahead), closes it
// and reports its final if it has text. The next utterance starts at end.
func (s *Session) final(ctx context.Context, end int64) ([]Event, error) {
	d := s.spec
	if d == nil || d.start != s.uttStart || d.end != end || d.prompt != s.prompt {
		var err error
		if d, err = s.decode(ctx, s.uttStart, end, true); err != nil {
			return nil, err
		}
	}
	var ev []Event
	text := d.finalText()
	if text != "" {
		ev = append(ev, Event{
			Kind:         Final,
			Utterance:    s.utt,
			Text:         text,
			Stability:    1,
			Start:        at(d.start),
			End:          at(d.end),
			Confidence:   confidence(d.segs),
			Language:     d.language,
			NoSpeechProb: d.segs[0].noSpeech,
			Words:        d.words(),
		})
	}
	// Condition the next utterance as ConditionOnPreviousText does: on the text so far,
	// unless this one was decoded above temperature 0.5, which makes it a poor context
	// (ref: openai/whisper transcribe.py#L503-L505).
	if n := len(d.segs); n > 0 && d.segs[n-1].temp > 0.5 {
		s.prompt = ""
	} else if text != "" {
		s.prompt = limitPrompt(strings.TrimSpace(s.prompt + " " + text))
	}
	s.utt++
	s.open = false
	s.uttStart = end
	s.lastText, s.lastStable, s.hyp, s.spec = "", "", nil, nil
	s.agree.reset()
	s.drop(end)
	return ev, nil
}

// interim decodes the open utterance so far and reports it if its text changed.
func (s *Session) interim(ctx context.Context) ([]Event, error) {
	end := s.end()
	d, err := s.decode(ctx, s.uttStart, end, false)
	if err != nil {
		return nil, err
	}
	s.lastDecode, s.hyp = end, d.segs
	var words []string
	for _, sg := range d.segs {
		words = append(words, strings.Fields(sg.text)...)
	}
	tail, votes := s.agree.add(words)
	stable := strings.Join(s.agree.committed, " ")
	text := strings.TrimSpace(stable + " " + strings.Join(tail, " "))
	if text == "" || text == s.lastText && stable == s.lastStable {
		return nil, nil
	}
	s.lastText, s.lastStable = text, stable
	e := Event{
		Kind:         Interim,
		Utterance:    s.utt,
		Text:         text,
		Stable:       stable,
		Stability:    s.agree.stability(votes),
		Start:        at(s.uttStart),
		End:          at(end),
		Confidence:   confidence(d.segs),
		Language:     d.language,
		NoSpeechProb: math.NaN(),
	}
	if len(d.segs) > 0 {
		e.NoSpeechProb = d.segs[0].noSpeech
	}
	return []Event{e}, nil
}

// cut finalizes the part of an over-long utterance up to the last segment boundary that
// the committed words reach (or, with nothing committed, the last boundary of the newest
// hypothesis; without any, everything), and keeps the rest open with that final's text as
// its prompt.
func (s *Session) cut(ctx context.Context) ([]Event, error) {
	var ev []Event
	end := s.end()
	if s.lastDecode != end || s.hyp == nil {
		// The newest hypothesis must cover the audio to cut (also without interims).
		e, err := s.interim(ctx)
		if err != nil {
			return nil, err
		}
		if s.cfg.Interim {
			ev = append(ev, e...)
		}
	}
	var words []string
	for _, sg := range s.hyp {
		words = append(words, strings.Fields(sg.text)...)
	}
	cutAt := cutPoint(s.hyp, s.agree.tailStart(words), s.uttStart, end)
	e, err := s.final(ctx, cutAt)
	ev = append(ev, e...)
	if err != nil {
		return ev, err
	}
	s.open = true // the speech goes on
	s.lastDecode = end
	return ev, nil
}

// cutPoint is where cut cuts [start, end): the end of the last segment of hyp whose words
// are all among the first committed ones, else the last segment end, else end. Only ends
// strictly inside the audio count: Whisper's timestamps can fall outside it.
func cutPoint(hyp []segment, committed int, start, end int64) int64 {
	cutAt, lastBoundary, n := end, int64(-1), 0
	found := false
	for _, sg := range hyp {
		n += sg.words
		if sg.end <= start || sg.end >= end {
			continue
		}
		lastBoundary = sg.end
		if n <= committed {
			cutAt, found = sg.end, true
		}
	}
	if !found && lastBoundary > 0 {
		cutAt = lastBoundary
	}
	return cutAt
}

// decode transcribes [start, end) with the current prompt: with Config.BeamSize and the full
// temperature fallback for a final, greedily at temperature 0 alone for an interim. It keeps the segments the
// guards let through.
func (s *Session) decode(ctx context.Context, start, end int64, final bool) (*decoded, error) {
	o := transcribe.DefaultOptions()
	o.Decode.Language = s.cfg.Language
	o.InitialPrompt = s.prompt
	o.NoSpeechThreshold = gate(s.cfg.NoSpeechThreshold)
	o.LogprobThreshold = gate(s.cfg.LogprobThreshold)
	o.CompressionRatioThreshold = gate(s.cfg.CompressionRatioThreshold)
	if final {
		o.SetBeam(s.cfg.BeamSize)
	} else {
		o.Temperatures = []float64{0}
	}
	o.WordTimestamps = final && s.cfg.WordTimestamps
	s.decodes++
	res, err := s.tr.Transcribe(ctx, s.buf[start-s.bufStart:end-s.bufStart], o)
	if err != nil {
		return nil, err
	}
	d := &decoded{start: start, end: end, prompt: s.prompt, language: res.Language, all: true, text: res.Text}
	for _, sg := range res.Segments {
		if strings.TrimSpace(sg.Text) == "" {
			continue
		}
		if !s.keep(sg) {
			d.all = false
			continue
		}
		d.segs = append(d.segs, segment{
			start:      start + int64(math.Round(sg.Start*16000)),
			end:        start + int64(math.Round(sg.End*16000)),
			text:       sg.Text,
			words:      len(strings.Fields(sg.Text)),
			tokens:     len(sg.Tokens),
			avgLogprob: sg.AvgLogprob,
			noSpeech:   sg.NoSpeechProb,
			temp:       sg.Temperature,
			wordTimes:  streamWords(sg.Words, start),
		})
	}
	return d, nil
}

// streamWords moves a segment's words, timed from start (a sample index), to stream time.
func streamWords(ws []transcribe.Word, start int64) []Word {
	if ws == nil {
		return nil
	}
	out := make([]Word, len(ws))
	for i, w := range ws {
		out[i] = Word{
			Word:        w.Word,
			Start:       at(start + int64(math.Round(w.Start*16000))),
			End:         at(start + int64(math.Round(w.End*16000))),
			Probability: w.Probability,
		}
	}
	return out
}

// words are the kept segments' words, nil without word timestamps.
func (d *decoded) words() []Word {
	var out []Word
	for _, sg := range d.segs {
		if sg.wordTimes != nil && out == nil {
			out = []Word{}
		}
		out = append(out, sg.wordTimes...)
	}
	return out
}

// keep is the guards' verdict on a decoded segment (see Config's decoding gates).
func (s *Session) keep(sg transcribe.Segment) bool {
	c := s.cfg
	silent := sg.NoSpeechProb > c.NoSpeechThreshold && sg.AvgLogprob < c.LogprobThreshold
	if math.IsInf(c.LogprobThreshold, -1) {
		silent = sg.NoSpeechProb > c.NoSpeechThreshold // as transcribe without a log-prob threshold
	}
	return !silent && !(sg.CompressionRatio > c.CompressionRatioThreshold) && !(sg.AvgLogprob < c.MinAvgLogprob)
}

// gate is a threshold for transcribe.Options: nil when infinite (off).
func gate(v float64) *float64 {
	if math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// finalText is the final's text: Transcribe's own when no guard dropped a segment, so that
// it is byte for byte `chorus transcribe`'s, else the kept segments'.
func (d *decoded) finalText() string {
	if len(d.segs) == 0 {
		return ""
	}
	if d.all {
		return strings.TrimSpace(d.text)
	}
	var b strings.Builder
	for _, sg := range d.segs {
		b.WriteString(sg.text)
	}
	return strings.TrimSpace(b.String())
}

// confidence is exp of the token-weighted average log-probability of segs (0 when empty).
func confidence(segs []segment) float32 {
	var sum, n float64
	for _, sg := range segs {
		w := float64(sg.tokens + 1)
		sum += sg.avgLogprob * w
		n += w
	}
	if n == 0 {
		return 0
	}
	return float32(math.Exp(sum / n))
}

// drop discards the audio before sample n (the VAD has consumed it).
func (s *Session) drop(n int64) {
	n = min(n, s.vadPos)
	if n <= s.bufStart {
		return
	}
	k := n - s.bufStart
	s.buf = s.buf[:copy(s.buf, s.buf[k:])]
	s.bufStart = n
}

// trimIdle bounds the audio kept while no utterance is open: what a speech onset could still
// claim as its lead-in (MaxLeadingSilence before the onset, which is at most MinSpeech
// before the VAD's position).
func (s *Session) trimIdle() {
	keep := s.vadPos - s.lead - int64(s.vad.onsetFrames)*frameSamples
	if keep > s.uttStart {
		s.uttStart = keep
	}
	s.drop(s.uttStart)
}

// limitPrompt keeps the end of text, at most maxPromptBytes, starting at a word.
func limitPrompt(text string) string {
	if len(text) <= maxPromptBytes {
		return text
	}
	text = text[len(text)-maxPromptBytes:]
	if i := strings.IndexByte(text, ' '); i >= 0 {
		return text[i+1:]
	}
	return text
}
