package metrics

import (
	"strings"
	"testing"
	"unicode"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"lowercase", "Hello World", "hello world"},
		{"sentence punctuation", "Hello, world! How are you?", "hello world how are you"},
		{"inner apostrophe kept", "Don't stop; it's o'clock.", "don't stop it's o'clock"},
		{"curly apostrophe", "Don’t", "don't"},
		{"edge apostrophes dropped", "'Tis the dogs' bone", "tis the dogs bone"},
		{"quoted word", "he said 'yes' twice", "he said yes twice"},
		{"hyphen to space", "a well-known fact", "a well known fact"},
		{"dashes", "wait—no – really--yes", "wait no really yes"},
		{"dotted abbreviation splits", "the U.S. flag", "the u s flag"},
		{"whitespace collapsed", "  a \t b\n\nc  ", "a b c"},
		{"double quotes", `"Quote," she said.`, "quote she said"},
		{"digits kept", "Room 101.", "room 101"},
		{"only punctuation", "...!?", ""},
		{"non-ascii letters kept", "Café NAÏVE", "café naïve"},
		{"combining mark stays on letter", "cafe\u0301", "cafe\u0301"},
		{"apostrophe next to hyphen", "rock-'n'-roll", "rock n roll"},
		{"control characters", "a\x00b\x07c", "a b c"},
		{"parentheses", "(aside) text", "aside text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Normalize(tt.in); got != tt.want {
				t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"Don't", "a--b", "'x'", "U.S.A.", "\xff\xfe", "’’’", "a\u0301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := Normalize(s)
		if Normalize(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, Normalize(n))
		}
		if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
			t.Fatalf("bad spacing in %q", n)
		}
		for _, r := range n {
			if r != ' ' && r != '\'' && !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.Is(unicode.Mn, r) {
				t.Fatalf("unexpected rune %q in %q", r, n)
			}
			if unicode.ToLower(r) != r {
				t.Fatalf("uppercase %q survived in %q", r, n)
			}
		}
	})
}

func TestAlign(t *testing.T) {
	tests := []struct {
		name     string
		ref, hyp string
		want     Counts
	}{
		{"identical", "a b c", "a b c", Counts{Ref: 3}},
		{"one substitution", "a b c", "a x c", Counts{Sub: 1, Ref: 3}},
		{"one deletion", "a b c", "a c", Counts{Del: 1, Ref: 3}},
		{"one insertion", "a b c", "a b x c", Counts{Ins: 1, Ref: 3}},
		{"empty hyp", "a b", "", Counts{Del: 2, Ref: 2}},
		{"empty ref", "", "a b", Counts{Ins: 2}},
		{"both empty", "", "", Counts{}},
		{"mixed", "the cat sat on the mat", "a cat sat the mat down", Counts{Sub: 1, Del: 1, Ins: 1, Ref: 6}},
		{"all wrong", "a b", "c d", Counts{Sub: 2, Ref: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Align(strings.Fields(tt.ref), strings.Fields(tt.hyp))
			if got != tt.want {
				t.Errorf("Align(%q, %q) = %+v, want %+v", tt.ref, tt.hyp, got, tt.want)
			}
		})
	}
}

func TestWER(t *testing.T) {
	tests := []struct {
		name       string
		refs, hyps []string
		errs, n    int
	}{
		{"normalisation hides case and punctuation", []string{"Hello, World!"}, []string{"hello world"}, 0, 2},
		{"corpus sums, not means", []string{"a", "b c d e"}, []string{"x", "b c d e"}, 1, 5},
		{"hyphen splits words", []string{"well-known"}, []string{"well known"}, 0, 2},
		{"missing hypothesis counts as empty", []string{"a b", "c"}, []string{"a b"}, 1, 3},
		{"extra hypothesis counts as insertions", []string{"a"}, []string{"a", "b c"}, 2, 1},
		{"nothing", nil, nil, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, n := WER(tt.refs, tt.hyps)
			if errs != tt.errs || n != tt.n {
				t.Errorf("WER = %d/%d, want %d/%d", errs, n, tt.errs, tt.n)
			}
		})
	}
}

func TestCER(t *testing.T) {
	tests := []struct {
		name       string
		refs, hyps []string
		errs, n    int
	}{
		{"identical after normalising", []string{"Cat."}, []string{"cat"}, 0, 3},
		{"one char", []string{"cat"}, []string{"cut"}, 1, 3},
		{"space counts", []string{"a b"}, []string{"ab"}, 1, 3},
		{"empty hyp", []string{"abc"}, []string{""}, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs, n := CER(tt.refs, tt.hyps)
			if errs != tt.errs || n != tt.n {
				t.Errorf("CER = %d/%d, want %d/%d", errs, n, tt.errs, tt.n)
			}
		})
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		c    Counts
		want float64
	}{
		{Counts{Sub: 1, Ref: 4}, 0.25},
		{Counts{}, 0},
		{Counts{Ins: 3}, 1},
		{Counts{Ins: 3, Del: 1, Ref: 2}, 2},
	}
	for _, tt := range tests {
		if got := tt.c.Rate(); got != tt.want {
			t.Errorf("%+v.Rate() = %v, want %v", tt.c, got, tt.want)
		}
	}
}

// TestAlignMatchesDistance checks the breakdown against an independent
// two-row Levenshtein distance on many small random pairs.
func TestAlignMatchesDistance(t *testing.T) {
	alpha := []string{"a", "b", "c"}
	seed := uint32(1)
	next := func() uint32 { seed = seed*1664525 + 1013904223; return seed >> 8 }
	for k := 0; k < 2000; k++ {
		ref := make([]string, next()%7)
		hyp := make([]string, next()%7)
		for i := range ref {
			ref[i] = alpha[next()%3]
		}
		for i := range hyp {
			hyp[i] = alpha[next()%3]
		}
		c := Align(ref, hyp)
		if want := distance(ref, hyp); c.Errors() != want {
			t.Fatalf("Align(%v,%v) errors %d, want %d", ref, hyp, c.Errors(), want)
		}
		if c.Ref-c.Del-c.Sub+c.Ins+c.Sub != len(hyp) {
			t.Fatalf("Align(%v,%v) = %+v inconsistent with hyp length %d", ref, hyp, c, len(hyp))
		}
	}
}

func distance(a, b []string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			d := prev[j-1]
			if a[i-1] != b[j-1] {
				d++
			}
			cur[j] = min(d, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
