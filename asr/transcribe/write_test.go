package transcribe

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestFormatTimestamp(t *testing.T) {
	for _, tc := range []struct {
		seconds float64
		hours   bool
		marker  string
		want    string
	}{
		{0, false, ".", "00:00.000"},
		{0, true, ",", "00:00:00,000"},
		{1, true, ",", "00:00:01,000"},
		{61.5, false, ".", "01:01.500"},
		{0.0625, false, ".", "00:00.062"}, // 62.5 ms rounds half to even, as Python's round
		{0.1875, false, ".", "00:00.188"},
		{59.9996, false, ".", "01:00.000"},
		{3599.999, false, ".", "59:59.999"},
		{3600, false, ".", "01:00:00.000"},
		{36000 + 125.25, true, ",", "10:02:05,250"},
		{360000, false, ".", "100:00:00.000"},
	} {
		got, err := FormatTimestamp(tc.seconds, tc.hours, tc.marker)
		if err != nil || got != tc.want {
			t.Errorf("FormatTimestamp(%g, %v, %q) = %q, %v; want %q", tc.seconds, tc.hours, tc.marker, got, err, tc.want)
		}
	}
	for _, bad := range []float64{-0.001, math.NaN(), math.Inf(1)} {
		if got, err := FormatTimestamp(bad, false, "."); err == nil {
			t.Errorf("FormatTimestamp(%g) = %q, want an error", bad, got)
		}
	}
}

// sample covers what the writers must handle (the .txt, .vtt, .srt and .tsv goldens were
// checked byte for byte against openai/whisper utils.py's writers on the same segments): cue text with surrounding space, "-->" and HTML
// characters, a segment emptied for having no duration, times past an hour and a rounding
// tie, non-ASCII text, and a NaN probability.
func sample() *Result {
	return &Result{
		Text:     " Hello world. He said --> go & <stop>  Ünïcödé ✓ text  ",
		Language: "en",
		Segments: []Segment{
			{ID: 0, Seek: 0, Start: 0, End: 2.5, Text: " Hello world.", Tokens: []int{50364, 2425, 1002, 13, 50489},
				Temperature: 0, AvgLogprob: -0.25, CompressionRatio: 0.8666666666666667, NoSpeechProb: 0.01},
			{ID: 1, Seek: 0, Start: 2.5, End: 5.0625, Text: " He said --> go & <stop>", Tokens: []int{50489, 634, 50616},
				Temperature: 0, AvgLogprob: -0.25, CompressionRatio: 0.8666666666666667, NoSpeechProb: 0.01},
			{ID: 2, Seek: 500, Start: 8, End: 8, Text: "", Tokens: []int{},
				Temperature: 0.2, AvgLogprob: -0.5, CompressionRatio: 1.25, NoSpeechProb: math.NaN()},
			{ID: 3, Seek: 366118, Start: 3661.1875, End: 3725, Text: "  Ünïcödé ✓ text  ", Tokens: []int{50364, 9, 50500},
				Temperature: 1, AvgLogprob: -1.5, CompressionRatio: 2.5, NoSpeechProb: 0.5},
		},
	}
}

func TestWritersGolden(t *testing.T) {
	for _, tc := range []struct {
		file  string
		write func(io.Writer, *Result) error
	}{
		{"sample.txt", WriteText},
		{"sample.vtt", WriteVTT},
		{"sample.srt", WriteSRT},
		{"sample.tsv", WriteTSV},
		{"sample.json", func(w io.Writer, r *Result) error { return WriteJSON(w, "clips/sample.wav", r) }},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var buf bytes.Buffer
			if err := tc.write(&buf, sample()); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", tc.file, buf.Bytes(), want)
			}
			// Writing is deterministic.
			var again bytes.Buffer
			if err := tc.write(&again, sample()); err != nil || !bytes.Equal(again.Bytes(), buf.Bytes()) {
				t.Errorf("second write differs (%v)", err)
			}
		})
	}
}

func TestWriteJSONIsOneObjectPerLine(t *testing.T) {
	var buf bytes.Buffer
	for _, f := range []string{"a.wav", "b.wav"} {
		if err := WriteJSON(&buf, f, sample()); err != nil {
			t.Fatal(err)
		}
	}
	lines := bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	for i, line := range lines {
		var got struct {
			File     string
			Text     string
			Language string
			Segments []struct {
				Start, End   float64
				Text         string
				Tokens       []int
				NoSpeechProb *float64 `json:"no_speech_prob"`
			}
		}
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
		if got.File != []string{"a.wav", "b.wav"}[i] || got.Language != "en" || len(got.Segments) != 4 ||
			got.Segments[1].End != 5.0625 || got.Segments[1].Text != " He said --> go & <stop>" {
			t.Errorf("line %d decodes to %+v", i, got)
		}
		if got.Segments[2].NoSpeechProb != nil || got.Segments[2].Tokens == nil {
			t.Errorf("line %d: NaN probability %v, empty tokens %v", i, got.Segments[2].NoSpeechProb, got.Segments[2].Tokens)
		}
	}
}

func TestWritersRejectNegativeTimes(t *testing.T) {
	r := sample()
	r.Segments[1].Start = -1
	for name, write := range map[string]func(io.Writer, *Result) error{"vtt": WriteVTT, "srt": WriteSRT, "tsv": WriteTSV} {
		if err := write(io.Discard, r); err == nil {
			t.Errorf("%s: no error for a negative time", name)
		}
	}
}
