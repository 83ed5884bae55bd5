package timing_test

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/models/whisper"
	"github.com/chorus-asr/chorus/asr/timing"
	"github.com/chorus-asr/chorus/tensor"
)

// refAlignment is testdata/whisper-ref/tiny/alignment.json, written by tools/ref/whisper_ref.py
// from OpenAI's timing.py on the seeded tiny checkpoint and the reference clip.
type refAlignment struct {
	SOTSequence    []int             `json:"sot_sequence"`
	NoTimestamps   int               `json:"no_timestamps"`
	EOT            int               `json:"eot"`
	Language       string            `json:"language"`
	TextTokens     []int             `json:"text_tokens"`
	TokenBytes     map[string]string `json:"token_bytes"`
	NumFrames      int               `json:"num_frames"`
	AlignmentHeads [][2]int          `json:"alignment_heads"`
	FindAlignment  []refWord         `json:"find_alignment"`
	Segments       []struct {
		Start  float64   `json:"start"`
		End    float64   `json:"end"`
		Tokens []int     `json:"tokens"`
		Words  []refWord `json:"words"`
	} `json:"segments"`
}

type refWord struct {
	Word        string  `json:"word"`
	Tokens      []int   `json:"tokens"`
	Start       float64 `json:"start"`
	End         float64 `json:"end"`
	Probability float64 `json:"probability"`
}

const refDir = "../../testdata/whisper-ref"

// stateAligner runs the alignment pass on a whisper.State holding the encoded window.
type stateAligner struct {
	st    *whisper.State
	heads [][2]int
}

func (a stateAligner) CrossAttention(tokens []int, keep int) ([][]float32, int, []float32, int, error) {
	logits, scores := a.st.Align(tokens, a.heads, keep)
	return scores, len(scores[0]) / len(tokens), logits.Data, logits.Shape[1], nil
}

// Frame is one audio position: the resolution of word times.
const frame = 0.02

// TestAlignmentMatchesOpenAI compares FindAlignment and AddWordTimestamps, run on chorus's
// tiny model with the seeded weights, with OpenAI's find_alignment and add_word_timestamps on
// the same weights, clip and tokens: every word's text and tokens equal, times within one
// 20-ms frame, probabilities within 1e-4 (and 1% relative, since most are tiny for a random
// model).
func TestAlignmentMatchesOpenAI(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tiny model (2 s)")
	}
	b, err := os.ReadFile(refDir + "/tiny/alignment.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref refAlignment
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	m, err := whisper.NewRandom(whisper.Tiny, 1, whisper.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := whisper.DefaultAlignmentHeads(m.Dims); !slices.Equal(got, ref.AlignmentHeads) {
		t.Fatalf("default alignment heads %v, OpenAI %v", got, ref.AlignmentHeads)
	}
	f, err := os.Open(refDir + "/mel80.npy")
	if err != nil {
		t.Fatal(err)
	}
	mel, shape, err := formats.ReadNPY(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	st := m.NewState(1)
	st.EncodeInPlace(tensor.FromData(mel, shape[0], shape[1]))
	a := stateAligner{st: st, heads: ref.AlignmentHeads}

	raw := map[int][]byte{}
	for id, s := range ref.TokenBytes {
		n, _ := strconv.Atoi(id)
		raw[n], _ = base64.StdEncoding.DecodeString(s)
	}
	tok := timing.Tokenizer{
		SOTSequence: ref.SOTSequence, NoTimestamps: ref.NoTimestamps, EOT: ref.EOT, Language: ref.Language,
		Decode: func(ids []int) string {
			var b []byte
			for _, id := range ids {
				if id == ref.EOT {
					b = append(b, "<|endoftext|>"...)
				} else {
					b = append(b, raw[id]...)
				}
			}
			return strings.ToValidUTF8(string(b), "\uFFFD")
		},
	}

	var maxDT, maxDP float64
	check := func(label string, got []timing.WordTiming, want []refWord, tokens bool) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%s: %d words, OpenAI %d: %+v", label, len(got), len(want), got)
		}
		for i, w := range want {
			g := got[i]
			if g.Word != w.Word || tokens && !slices.Equal(g.Tokens, w.Tokens) {
				t.Errorf("%s word %d = %q %v, OpenAI %q %v", label, i, g.Word, g.Tokens, w.Word, w.Tokens)
			}
			dt := max(math.Abs(g.Start-w.Start), math.Abs(g.End-w.End))
			dp := math.Abs(g.Probability - w.Probability)
			maxDT, maxDP = max(maxDT, dt), max(maxDP, dp)
			if dt > frame+1e-9 {
				t.Errorf("%s word %d %q: %.2f–%.2f s, OpenAI %.2f–%.2f s", label, i, w.Word, g.Start, g.End, w.Start, w.End)
			}
			if dp > 1e-4 || w.Probability > 1e-30 && math.Abs(math.Log(g.Probability/w.Probability)) > 0.01 {
				t.Errorf("%s word %d %q: probability %.6g, OpenAI %.6g", label, i, w.Word, g.Probability, w.Probability)
			}
		}
	}

	got, err := timing.FindAlignment(a, tok, ref.TextTokens, ref.NumFrames, timing.DefaultMedianFilter)
	if err != nil {
		t.Fatal(err)
	}
	check("find_alignment", got, ref.FindAlignment, true)

	segs := make([]timing.Segment, len(ref.Segments))
	for i, s := range ref.Segments {
		// The segments' own times, before adjustment, are those of their timestamp tokens.
		tsBegin := ref.NoTimestamps + 1
		segs[i] = timing.Segment{Start: float64(s.Tokens[0]-tsBegin) * frame, End: float64(s.Tokens[len(s.Tokens)-1]-tsBegin) * frame, Tokens: s.Tokens}
	}
	if err := timing.AddWordTimestamps(segs, a, tok, ref.NumFrames, 0, 0, timing.DefaultPrependPunctuations, timing.DefaultAppendPunctuations); err != nil {
		t.Fatal(err)
	}
	for i, s := range ref.Segments {
		var words []timing.WordTiming
		for _, w := range segs[i].Words {
			words = append(words, timing.WordTiming{Word: w.Word, Start: w.Start, End: w.End, Probability: w.Probability})
		}
		check("segment "+strconv.Itoa(i), words, s.Words, false)
		if d := max(math.Abs(segs[i].Start-s.Start), math.Abs(segs[i].End-s.End)); d > frame+1e-9 {
			t.Errorf("segment %d adjusted to %.2f–%.2f s, OpenAI %.2f–%.2f s", i, segs[i].Start, segs[i].End, s.Start, s.End)
		}
	}
	t.Logf("max time difference %.3g s, max probability difference %.3g", maxDT, maxDP)
}

// BenchmarkFindAlignment is the cost word timestamps add per window on Whisper tiny (f16
// weights, as served): one decoder pass over the SOT sequence and text with the alignment
// heads read out, the normalisation and DTW, for a short window (15 text tokens, 4 s of
// audio) and a full one (100 tokens, 30 s).
func BenchmarkFindAlignment(b *testing.B) {
	m, err := whisper.NewRandom(whisper.Tiny, 1, whisper.LoadOptions{F16: true})
	if err != nil {
		b.Fatal(err)
	}
	st := m.NewState(1)
	st.EncodeInPlace(tensor.FromData(make([]float32, 80*3000), 80, 3000))
	a := stateAligner{st: st, heads: whisper.DefaultAlignmentHeads(m.Dims)}
	tok := timing.Tokenizer{SOTSequence: []int{50258, 50259, 50359}, NoTimestamps: 50363, EOT: 50257, Language: "en",
		Decode: func(ids []int) string { return strings.Repeat(" w", len(ids)) }}
	for _, c := range []struct {
		name           string
		tokens, frames int
	}{{"4s-15tok", 15, 402}, {"30s-100tok", 100, 3000}} {
		text := make([]int, c.tokens)
		for i := range text {
			text[i] = 440 + i
		}
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := timing.FindAlignment(a, tok, text, c.frames, timing.DefaultMedianFilter); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
