package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/asr/audio"
	"github.com/chorus-asr/chorus/clients"
	chorusv1 "github.com/chorus-asr/chorus/proto/chorus/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// checkWords checks one result's words: present when it has text, each within the result's
// span, ordered and not overlapping, confidences in [0, 1], and, when spell is set, joined
// they spell the transcript (spaces aside). It returns how many it checked and what they spell.
func checkWords(t *testing.T, label string, alt *chorusv1.SpeechRecognitionAlternative, start, end *durationpb.Duration, spell bool) (int, string) {
	t.Helper()
	words := alt.GetWords()
	if strings.TrimSpace(alt.GetTranscript()) != "" && len(words) == 0 {
		t.Errorf("%s: %q has no words", label, alt.GetTranscript())
		return 0, ""
	}
	// One 20-ms alignment frame of slack at the ends: word times are rounded to 10 ms.
	const slack = 20 * time.Millisecond
	var joined strings.Builder
	var prevEnd time.Duration
	for i, w := range words {
		ws, we := w.GetStartTime().AsDuration(), w.GetEndTime().AsDuration()
		switch {
		case w.GetStartTime() == nil || w.GetEndTime() == nil:
			t.Errorf("%s word %d %q has no times", label, i, w.GetWord())
		case ws > we:
			t.Errorf("%s word %d %q: starts at %v after its end %v", label, i, w.GetWord(), ws, we)
		case ws < start.AsDuration()-slack || we > end.AsDuration()+slack:
			t.Errorf("%s word %d %q: %v–%v outside the result's %v–%v", label, i, w.GetWord(), ws, we, start.AsDuration(), end.AsDuration())
		case i > 0 && ws < prevEnd:
			t.Errorf("%s word %d %q starts at %v, before the previous word's end %v", label, i, w.GetWord(), ws, prevEnd)
		}
		if c := w.GetConfidence(); !(c >= 0 && c <= 1) {
			t.Errorf("%s word %d %q: confidence %v", label, i, w.GetWord(), c)
		}
		if w.GetWord() != strings.TrimSpace(w.GetWord()) || w.GetWord() == "" {
			t.Errorf("%s word %d: %q is empty or has spaces around it", label, i, w.GetWord())
		}
		prevEnd = we
		joined.WriteString(w.GetWord())
	}
	if got, want := noSpace(joined.String()), noSpace(alt.GetTranscript()); spell && got != want {
		t.Errorf("%s: words spell %q, transcript %q", label, got, want)
	}
	return len(words), joined.String()
}

func noSpace(s string) string { return strings.Join(strings.Fields(s), "") }

// TestWordTimestamps streams two utterances (the speech clip twice, a pause between) with
// enable_word_time_offsets and enable_word_confidence, and transcribes the same audio with
// Recognize: every final and every segment carries words that are ordered, within their
// result's span in stream time (so the second utterance's words are offset by its start),
// not overlapping, and spell the transcript. The finals' text equals the whole-file
// transcription with word timestamps on, as it does without.
func TestWordTimestamps(t *testing.T) {
	checkLeaks(t)
	g := startGRPC(t, Config{})
	clip := speechClip(t)
	x := slices.Concat(clip, make([]float32, 16000), clip)

	cfg := pcmConfig()
	cfg.Config.EnableWordTimeOffsets, cfg.Config.EnableWordConfidence = true, true
	out, err := clients.StreamAudio(t.Context(), g.cc, x, clients.StreamOptions{Config: cfg, Chunk: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	finals, words := 0, 0
	var starts []time.Duration
	for _, r := range out.Responses {
		for _, res := range r.Response.GetResults() {
			alt := res.GetAlternatives()[0]
			if !res.GetIsFinal() {
				if len(alt.GetWords()) > 0 {
					t.Errorf("interim %q carries words", alt.GetTranscript())
				}
				continue
			}
			finals++
			starts = append(starts, res.GetResultStartTime().AsDuration())
			n, _ := checkWords(t, "final "+alt.GetTranscript(), alt, res.GetResultStartTime(), res.GetResultEndTime(), true)
			words += n
		}
	}
	if finals < 2 || starts[len(starts)-1] < audioDur(len(clip)) {
		t.Fatalf("%d finals starting at %v: want two utterances, the second after %v", finals, starts, audioDur(len(clip)))
	}
	t.Logf("stream: %d finals, %d words", finals, words)

	// The clip alone is one utterance: its final equals Transcribe with word timestamps.
	one, err := clients.StreamAudio(t.Context(), g.cc, clip, clients.StreamOptions{Config: cfg, Chunk: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	o := transcribeOptions("", "", 0) // the server's default: greedy
	o.WordTimestamps = true
	want, err := loadDefault(t).Transcribe(t.Context(), audio.FromPCM16(clients.PCM16(clip)), o)
	if err != nil {
		t.Fatal(err)
	}
	if got, w := one.Text, strings.TrimSpace(want.Text); got != w {
		t.Errorf("final %q, transcribe with word timestamps %q", got, w)
	}

	rec, err := chorusv1.NewRecognizerClient(g.cc).Recognize(t.Context(), &chorusv1.RecognizeRequest{
		Config:       &chorusv1.RecognitionConfig{Encoding: chorusv1.RecognitionConfig_LINEAR16, SampleRateHertz: 16000, EnableWordTimeOffsets: true},
		AudioContent: clients.PCM16(x),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Whole-file segments: OpenAI's word timestamps hand a word that straddles a segment
	// boundary (merged punctuation included) to the earlier segment, so the words spell the
	// transcript over all segments, not necessarily segment by segment.
	words = 0
	var spelled, transcript strings.Builder
	for i, res := range rec.GetResults() {
		alt := res.GetAlternatives()[0]
		n, sp := checkWords(t, "segment "+alt.GetTranscript(), alt, res.GetResultStartTime(), res.GetResultEndTime(), false)
		words += n
		spelled.WriteString(sp)
		transcript.WriteString(alt.GetTranscript())
		if i == 0 && len(alt.GetWords()) > 0 && alt.GetWords()[0].GetConfidence() != 0 {
			t.Errorf("confidence %v without enable_word_confidence", alt.GetWords()[0].GetConfidence())
		}
	}
	if words == 0 {
		t.Error("Recognize returned no words")
	}
	if got, want := noSpace(spelled.String()), noSpace(transcript.String()); got != want {
		t.Errorf("Recognize: words spell %q, transcript %q", got, want)
	}
	t.Logf("recognize: %d segments, %d words", len(rec.GetResults()), words)
}
