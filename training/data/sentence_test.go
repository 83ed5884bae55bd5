package data

import (
	"slices"
	"strings"
	"testing"

	"github.com/chorus-asr/chorus/asr/metrics"
)

func TestSplitSentences(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"two sentences", "The cat sat. The dog ran.", []string{"The cat sat.", "The dog ran."}},
		{"question and exclamation", "Who is there? Nobody! Go home.", []string{"Who is there?", "Nobody!", "Go home."}},
		{"abbreviation does not split", "Mr. Smith went to Washington. He stayed.", []string{"Mr. Smith went to Washington.", "He stayed."}},
		{"initial does not split", "John Q. Adams spoke. We listened.", []string{"John Q. Adams spoke.", "We listened."}},
		{"dotted acronym does not split", "The U.S. Congress met. It adjourned.", []string{"The U.S. Congress met.", "It adjourned."}},
		{"lowercase after period does not split", "It cost about 3 p.m. today. Fine.", []string{"It cost about 3 p.m. today.", "Fine."}},
		{"closing quote stays", `He said "Stop." Then he left.`, []string{`He said "Stop."`, "Then he left."}},
		{"opening quote starts", `It ended. "Begin again," she said.`, []string{"It ended.", `"Begin again," she said.`}},
		{"no terminator", "no full stop here", []string{"no full stop here"}},
		{"ellipsis", "Wait... What now?", []string{"Wait...", "What now?"}},
		{"whitespace and newlines", "  One line.\n\nTwo\nlines.  ", []string{"One line.", "Two lines."}},
		{"empty", "   ", nil},
		{"curly quotes cleaned", "“Yes,” he said. ‘No.’", []string{`"Yes," he said.`, "'No.'"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := SplitSentences(tt.in)
			if !slices.Equal(got, tt.want) {
				t.Errorf("SplitSentences(%q)\n got %q\nwant %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFilterSentence(t *testing.T) {
	tests := []struct {
		name, in, want, reason string
	}{
		{"plain", "The jury said it was fine.", "The jury said it was fine.", ""},
		{"too short", "Go home.", "", DropLength},
		{"exactly three words", "Go home now.", "Go home now.", ""},
		{"hyphen counts two words", "A well-known fact.", "A well-known fact.", ""},
		{"too long", strings.Repeat("word ", 26), "", DropLength},
		{"max words", strings.TrimSpace(strings.Repeat("word ", 25)), strings.TrimSpace(strings.Repeat("word ", 25)), ""},
		{"digits", "He was born in 1809 in Kentucky.", "", DropDigits},
		{"url", "See www.example for more details.", "", DropURL},
		{"http url", "Visit http://example.org today please.", "", DropURL},
		{"email", "Write to me at bob@example dot com.", "", DropURL},
		{"acronym", "The USA is a big country.", "", DropAcronym},
		{"dotted acronym", "The U.S. flag flew high.", "", DropAcronym},
		{"time acronym", "It is ten A.M. exactly now.", "", DropAcronym},
		{"single capital fine", "I think I can do it.", "I think I can do it.", ""},
		{"initial with name fine", "John Q. Adams was here.", "John Q. Adams was here.", ""},
		{"non ascii", "The café was closed today.", "", DropNonASCII},
		{"curly quotes become ascii", "“Hello there,” she said.", `"Hello there," she said.`, ""},
		{"em dash becomes hyphen", "He came—then left—quickly home.", "He came - then left - quickly home.", ""},
		{"symbols", "Salt & pepper are good.", "", DropSymbols},
		{"slash", "Use and/or as needed here.", "", DropSymbols},
		{"brackets", "[ascending tones] play now.", "", DropSymbols},
		{"dangling leading quote removed", `"He fought and marched till he died.`, "He fought and marched till he died.", ""},
		{"dangling trailing quote removed", `He fought and marched till he died."`, "He fought and marched till he died.", ""},
		{"balanced quotes kept", `He said "yes" to that.`, `He said "yes" to that.`, ""},
		{"overstrike resolved", "It is _\bv_\be_\br_\by good now.", "It is very good now.", ""},
		{"leading dateline dash removed", "-- State representatives decided Thursday.", "State representatives decided Thursday.", ""},
		{"parentheses allowed", "The man (a farmer) spoke.", "The man (a farmer) spoke.", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := FilterSentence(tt.in)
			if got != tt.want || reason != tt.reason {
				t.Errorf("FilterSentence(%q) = %q, %q; want %q, %q", tt.in, got, reason, tt.want, tt.reason)
			}
		})
	}
}

func TestFilterTextOneWord(t *testing.T) {
	if got, reason := filterText("Goodbye!", 1, MaxWords); got != "Goodbye!" || reason != "" {
		t.Errorf("filterText(Goodbye!, 1) = %q, %q", got, reason)
	}
	if _, reason := filterText("...", 1, MaxWords); reason != DropLength {
		t.Errorf("filterText(...) reason %q, want %q", reason, DropLength)
	}
}

// FuzzSplitSentences checks that splitting never panics, loses no letters,
// and that whatever FilterSentence keeps obeys DATA.md's rules.
func FuzzSplitSentences(f *testing.F) {
	for _, s := range []string{
		"Mr. Smith went. He came back!", "A.B.C. Then.", "\"Hi.\" (Yes.) [No.]", "...", "x\by", "é. É.", "a.\u00a0B",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parts := SplitSentences(s)
		letters := func(x string) string {
			var b strings.Builder
			for _, r := range x {
				if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
					b.WriteRune(r)
				}
			}
			return b.String()
		}
		if got, want := letters(strings.Join(parts, "")), letters(cleanText(s)); got != want {
			t.Fatalf("letters changed: %q -> %q", want, got)
		}
		for _, p := range parts {
			kept, reason := FilterSentence(p)
			if reason != "" {
				continue
			}
			n := len(metrics.Words(kept))
			if n < MinWords || n > MaxWords {
				t.Fatalf("kept %q with %d words", kept, n)
			}
			for _, r := range kept {
				if !isPlain(r) {
					t.Fatalf("kept %q with rune %q", kept, r)
				}
			}
			if hasAcronym(kept) {
				t.Fatalf("kept acronym in %q", kept)
			}
		}
	})
}
