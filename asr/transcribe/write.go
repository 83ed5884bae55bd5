package transcribe

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
)

// FormatTimestamp renders seconds as [HH:]MM:SS<marker>mmm, rounding to the millisecond
// half-to-even like Python's round; hours appear when nonzero or when alwaysHours is set
// (ref: openai/whisper utils.py#L50-L68). Negative or non-finite times are an error.
func FormatTimestamp(seconds float64, alwaysHours bool, marker string) (string, error) {
	if !(seconds >= 0) || math.IsInf(seconds, 1) {
		return "", fmt.Errorf("transcribe: timestamp %g is not a non-negative time", seconds)
	}
	ms := int64(math.RoundToEven(seconds * 1000))
	h := ms / 3_600_000
	ms -= h * 3_600_000
	m := ms / 60_000
	ms -= m * 60_000
	s := ms / 1000
	ms -= s * 1000
	if alwaysHours || h > 0 {
		return fmt.Sprintf("%02d:%02d:%02d%s%03d", h, m, s, marker, ms), nil
	}
	return fmt.Sprintf("%02d:%02d%s%03d", m, s, marker, ms), nil
}

// cueText is a segment's text as a subtitle cue: trimmed, and without "-->", which would end
// the cue's timing line (ref: utils.py#L224-L228).
func cueText(s Segment) string {
	return strings.ReplaceAll(strings.TrimSpace(s.Text), "-->", "->")
}

// WriteText writes each segment's trimmed text on its own line (ref: utils.py#L109-L116).
func WriteText(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	for _, s := range r.Segments {
		fmt.Fprintln(bw, strings.TrimSpace(s.Text))
	}
	return bw.Flush()
}

// WriteVTT writes WebVTT: a header, then one cue per segment with MM:SS.mmm times, hours
// added when needed (ref: utils.py#L238-L248).
func WriteVTT(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "WEBVTT\n\n")
	for _, s := range r.Segments {
		start, end, err := cueTimes(s, false, ".")
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%s --> %s\n%s\n\n", start, end, cueText(s))
	}
	return bw.Flush()
}

// WriteSRT writes SubRip: numbered cues from 1 with HH:MM:SS,mmm times
// (ref: utils.py#L251-L262).
func WriteSRT(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	for i, s := range r.Segments {
		start, end, err := cueTimes(s, true, ",")
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%d\n%s --> %s\n%s\n\n", i+1, start, end, cueText(s))
	}
	return bw.Flush()
}

func cueTimes(s Segment, alwaysHours bool, marker string) (string, string, error) {
	start, err := FormatTimestamp(s.Start, alwaysHours, marker)
	if err != nil {
		return "", "", fmt.Errorf("segment %d start: %w", s.ID, err)
	}
	end, err := FormatTimestamp(s.End, alwaysHours, marker)
	if err != nil {
		return "", "", fmt.Errorf("segment %d end: %w", s.ID, err)
	}
	return start, end, nil
}

// WriteTSV writes a header and one start<TAB>end<TAB>text line per segment, times in integer
// milliseconds so that no locale can turn a decimal point into a comma
// (ref: utils.py#L265-L284).
func WriteTSV(w io.Writer, r *Result) error {
	bw := bufio.NewWriter(w)
	fmt.Fprint(bw, "start\tend\ttext\n")
	for _, s := range r.Segments {
		if !(s.Start >= 0 && s.End >= 0) || math.IsInf(s.End, 1) {
			return fmt.Errorf("transcribe: segment %d has times %g–%g", s.ID, s.Start, s.End)
		}
		fmt.Fprintf(bw, "%d\t%d\t%s\n", int64(math.RoundToEven(1000*s.Start)), int64(math.RoundToEven(1000*s.End)),
			strings.ReplaceAll(strings.TrimSpace(s.Text), "\t", " "))
	}
	return bw.Flush()
}

// WriteJSON writes the result as one line of JSON:
//
//	{"file":…,"text":…,"segments":[{"id":…,"seek":…,"start":…,"end":…,"text":…,"tokens":[…],
//	"temperature":…,"avg_logprob":…,"compression_ratio":…,"no_speech_prob":…[,"words":[{"word":…,
//	"start":…,"end":…,"probability":…},…]]},…],"language":…}
//
// with OpenAI's field names (ref: utils.py#L287-L293; "words" with word timestamps only) plus the input file's name, so that a
// command transcribing several files prints one object per line. Probabilities that are not
// finite (no-speech without a nospeech token) are null; HTML characters are not escaped.
func WriteJSON(w io.Writer, file string, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(struct {
		File string `json:"file"`
		*Result
	}{file, r})
}

// MarshalJSON encodes a segment with OpenAI's field names; non-finite numbers become null
// and missing tokens an empty list.
func (s Segment) MarshalJSON() ([]byte, error) {
	tokens := s.Tokens
	if tokens == nil {
		tokens = []int{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "<" and "&" of the text readable
	err := enc.Encode(jsonSegment{
		ID: s.ID, Seek: s.Seek, Start: jsonFloat(s.Start), End: jsonFloat(s.End), Text: s.Text, Tokens: tokens,
		Temperature: jsonFloat(s.Temperature), AvgLogprob: jsonFloat(s.AvgLogprob),
		CompressionRatio: jsonFloat(s.CompressionRatio), NoSpeechProb: jsonFloat(s.NoSpeechProb),
		Words: s.Words,
	})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

type jsonSegment struct {
	ID               int       `json:"id"`
	Seek             int       `json:"seek"`
	Start            jsonFloat `json:"start"`
	End              jsonFloat `json:"end"`
	Text             string    `json:"text"`
	Tokens           []int     `json:"tokens"`
	Temperature      jsonFloat `json:"temperature"`
	AvgLogprob       jsonFloat `json:"avg_logprob"`
	CompressionRatio jsonFloat `json:"compression_ratio"`
	NoSpeechProb     jsonFloat `json:"no_speech_prob"`
	// Words is absent without word timestamps (nil) and [] for a segment without words.
	Words []Word `json:"words,omitzero"`
}

// jsonFloat is a float64 that encodes NaN and ±Inf as null, which JSON cannot represent
// (Python's json.dump writes the invalid literal NaN instead).
type jsonFloat float64

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return []byte("null"), nil
	}
	return json.Marshal(float64(f))
}
