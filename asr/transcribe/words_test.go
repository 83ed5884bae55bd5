package transcribe

import (
	"context"
	"math"
	"slices"
	"testing"
)

// aligningWindow is a fakeWindow that also aligns: text row j (row 0 being
// <|notimestamps|>) attends to audio positions [bounds[j], bounds[j+1]), the last row to
// the end, so that DTW's jumps, and the words' times, are known: row j starts at bounds[j]/50 s.
type aligningWindow struct {
	*fakeWindow
	bounds []int
}

func (a *aligningWindow) CrossAttention(tokens []int, keep int) ([][]float32, int, []float32, int, error) {
	const frames = 1500
	sot := slices.Index(tokens, a.sp.NoTimestamps)
	scores := make([]float32, len(tokens)*frames)
	for r := sot; r < len(tokens)-1; r++ {
		j := r - sot
		lo, hi := a.bounds[min(j, len(a.bounds)-1)], frames
		if j+1 < len(a.bounds) {
			hi = a.bounds[j+1]
		}
		for f := lo; f < hi; f++ {
			scores[r*frames+f] = 10
		}
	}
	return [][]float32{scores}, frames, make([]float32, keep*a.v), a.v, nil
}

// TestTranscribeWordTimestamps checks the loop's side of word timestamps (OpenAI's
// transcribe.py#L401-L416): each segment gets its words with the window's offset added, its
// bounds move to its words', and a window that ends inside a segment is followed by one that
// starts at the last word's end rather than at the last timestamp pair.
func TestTranscribeWordTimestamps(t *testing.T) {
	var f *fakeWindow
	f = newFakeWindow(t, 1, func(w, a int) plan {
		switch w {
		case 0: // ends with an unfinished segment: without words the next window is at 5 s
			return plan{tokens: []int{f.ts(0), hello, world, f.ts(100), f.ts(100), the, f.ts(250), f.ts(260), hello}, noise: negInf}
		case 1:
			return plan{tokens: []int{f.ts(0), world, f.ts(150)}, noise: negInf}
		}
		return plan{tokens: []int{f.ts(0), the, hello, f.ts(50)}, noise: 0, noSpeech: 20}
	})
	a := &aligningWindow{fakeWindow: f, bounds: []int{0, 25, 60, 100}}
	m, _ := fakeModel()
	spec := spectrogram(4500)
	o := english()
	o.WordTimestamps = true
	res, err := Transcribe(context.Background(), a, m, spec, o)
	if err != nil {
		t.Fatal(err)
	}
	type seg struct {
		start, end float64
		words      []Word
	}
	p := 1 / float64(f.sp.EOT) // uniform logits over the text vocabulary
	word := func(text string, start, end float64) Word {
		return Word{Word: text, Start: start, End: end, Probability: p}
	}
	want := []seg{
		{0, 1.2, []Word{word(" hello", 0, 0.5), word(" world", 0.5, 1.2)}},
		{1.2, 2, []Word{word(" the", 1.2, 2)}},
		{2, 2.5, []Word{word(" world", 2, 2.5)}}, // window 2 starts at 2 s, the last word's end
	}
	if len(res.Segments) != len(want) {
		t.Fatalf("%d segments %+v, want %d", len(res.Segments), res.Segments, len(want))
	}
	for i, s := range res.Segments {
		w := want[i]
		if !near(s.Start, w.start) || !near(s.End, w.end) || len(s.Words) != len(w.words) {
			t.Errorf("segment %d: %.2f–%.2f %+v, want %.2f–%.2f %+v", i, s.Start, s.End, s.Words, w.start, w.end, w.words)
			continue
		}
		for j, g := range s.Words {
			x := w.words[j]
			if g.Word != x.Word || !near(g.Start, x.Start) || !near(g.End, x.End) || math.Abs(g.Probability-x.Probability) > 1e-6 {
				t.Errorf("segment %d word %d: %+v, want %+v", i, j, g, x)
			}
		}
	}
	if len(f.encoded) != 3 {
		t.Fatalf("%d windows encoded, want 3", len(f.encoded))
	}
	checkWindow(t, f.encoded[1], spec, 200, 3000)
	checkWindow(t, f.encoded[2], spec, 3200, 1300)

	// A window that cannot align is refused up front.
	if _, err := Transcribe(context.Background(), newFakeWindow(t, 1, nil), m, spec, o); err == nil {
		t.Error("word timestamps with a window that cannot align: no error")
	}
}

// TestSegmentJSONWords checks the JSON of words as OpenAI writes it: no "words" key without
// word timestamps, [] for a segment without words, and word, start, end, probability.
func TestSegmentJSONWords(t *testing.T) {
	for _, c := range []struct {
		words []Word
		want  string
	}{
		{nil, `"no_speech_prob":0}`},
		{[]Word{}, `"no_speech_prob":0,"words":[]}`},
		{[]Word{{Word: " Hi.", Start: 0.5, End: 0.92, Probability: 0.75}}, `"no_speech_prob":0,"words":[{"word":" Hi.","start":0.5,"end":0.92,"probability":0.75}]}`},
	} {
		b, err := Segment{Words: c.words}.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(b); len(got) < len(c.want) || got[len(got)-len(c.want):] != c.want {
			t.Errorf("words %v: %s, want it to end with %s", c.words, got, c.want)
		}
	}
}
