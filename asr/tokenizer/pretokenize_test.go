package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The expected splits are derived by hand from the pattern's semantics (alternatives tried in
// order at each position; `?` is a literal space; \s+(?!\S) backs off one character before a
// non-space) and were cross-checked with Python's `regex` module.
func TestPieces(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"Hello world", []string{"Hello", " world"}},
		{"  hello", []string{" ", " hello"}},       // the run backs off one space for the word
		{"hello  ", []string{"hello", "  "}},       // at the end the whole run stays
		{"a  b", []string{"a", " ", " b"}},         //
		{"a\nb", []string{"a", "\n", "b"}},         // one non-space whitespace: alternative \s+
		{"a\n\nb", []string{"a", "\n", "\n", "b"}}, // backs off "\n", which stands alone
		{"a \n b", []string{"a", " \n", " b"}},
		{"\t\t x", []string{"\t\t", " x"}},
		{"  \n x", []string{"  \n", " x"}},
		{"\r\n\r\nz", []string{"\r\n\r", "\n", "z"}},
		{" ", []string{" "}},
		{"   ", []string{"   "}},
		{"\n", []string{"\n"}},
		{" 42 ", []string{" 42", " "}},
		{"x  ", []string{"x", "  "}},
		{"don't", []string{"don", "'t"}},
		{"can't've", []string{"can", "'t", "'ve"}},
		{"x'll", []string{"x", "'ll"}},
		{"I'LL", []string{"I", "'", "LL"}}, // contractions are case-sensitive
		{"''s", []string{"''", "s"}},       // punctuation runs are greedy
		{" 's", []string{" '", "s"}},       // contractions only start a piece
		{"?'s", []string{"?'", "s"}},
		{"'re'", []string{"'re", "'"}},
		{"'x", []string{"'", "x"}},
		{"hi!!! ok", []string{"hi", "!!!", " ok"}},
		{"€5 ", []string{"€", "5", " "}},
		{"Ü ber 123abc", []string{"Ü", " ber", " 123", "abc"}},
		{"naïve café", []string{"naïve", " café"}},
		{"e\u0301té", []string{"e", "\u0301", "té"}}, // a combining mark is neither L nor N
		{"٣٤ ١", []string{"٣٤", " ١"}},
		{"Ⅻ ½", []string{"Ⅻ", " ½"}},
		{"a\u00a0b", []string{"a", "\u00a0", "b"}}, // NBSP is \s but not the optional space
		{"a \u00a0b", []string{"a", " ", "\u00a0", "b"}},
		{"\u00a0 x", []string{"\u00a0", " x"}},
		{"a\u3000\u3000b", []string{"a", "\u3000", "\u3000", "b"}},
		{"x\u2028y", []string{"x", "\u2028", "y"}},
		{"a\x1c\x1cb", []string{"a", "\x1c\x1c", "b"}},             // U+001C is not White_Space
		{"a\u0085\u0085b", []string{"a", "\u0085", "\u0085", "b"}}, // U+0085 is
		{"a\u200b\u200bb", []string{"a", "\u200b\u200b", "b"}},
		{"a\xff\xfeb c", []string{"a", "\xff\xfe", "b", " c"}}, // invalid bytes count as symbols
		{" \xff", []string{" \xff"}},
		{"<|endoftext|>", []string{"<|", "endoftext", "|>"}},
	}
	for _, tc := range tests {
		got := slices.Collect(pieces(tc.in))
		if !slices.Equal(got, tc.want) {
			t.Errorf("pieces(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if naive := piecesNaive(tc.in); !slices.Equal(naive, tc.want) {
			t.Errorf("piecesNaive(%q) = %q, want %q", tc.in, naive, tc.want)
		}
	}
}

// piecesNaive matches the pattern by literal backtracking over its alternatives, in order,
// at each position: the reference for the hand-written scanner.
func piecesNaive(s string) []string {
	var rs []rune
	var offs []int
	for i, r := range s {
		rs = append(rs, r)
		offs = append(offs, i)
	}
	offs = append(offs, len(s))
	n := len(rs)
	isL := func(r rune) bool { return unicode.IsLetter(r) }
	isN := func(r rune) bool { return unicode.IsNumber(r) }
	isS := func(r rune) bool { return unicode.IsSpace(r) }
	isO := func(r rune) bool { return !isL(r) && !isN(r) && !isS(r) }
	literal := func(lit string) func(int) int {
		return func(i int) int {
			for _, r := range lit {
				if i >= n || rs[i] != r {
					return -1
				}
				i++
			}
			return i
		}
	}
	optSpaceRun := func(class func(rune) bool) func(int) int {
		return func(i int) int {
			for _, opt := range []bool{true, false} { // `?` is greedy: try the space first
				j := i
				if opt {
					if j >= n || rs[j] != ' ' {
						continue
					}
					j++
				}
				k := j
				for k < n && class(rs[k]) {
					k++
				}
				if k > j {
					return k
				}
			}
			return -1
		}
	}
	spaceRun := func(i int) int {
		k := i
		for k < n && isS(rs[k]) {
			k++
		}
		return k
	}
	alts := []func(int) int{
		literal("'s"), literal("'t"), literal("'re"), literal("'ve"), literal("'m"), literal("'ll"), literal("'d"),
		optSpaceRun(isL), optSpaceRun(isN), optSpaceRun(isO),
		func(i int) int { // \s+(?!\S): longest run first, backing off until the lookahead holds
			for e := spaceRun(i); e > i; e-- {
				if e == n || isS(rs[e]) {
					return e
				}
			}
			return -1
		},
		func(i int) int { // \s+
			if e := spaceRun(i); e > i {
				return e
			}
			return -1
		},
	}
	var out []string
	for i := 0; i < n; {
		end := -1
		for _, alt := range alts {
			if end = alt(i); end >= 0 {
				break
			}
		}
		if end < 0 {
			panic("no alternative matched") // every rune is in one of the classes
		}
		out = append(out, s[offs[i]:offs[end]])
		i = end
	}
	return out
}

// FuzzPieces checks the scanner against the backtracking reference, and that the pieces
// reassemble the input.
func FuzzPieces(f *testing.F) {
	for _, s := range []string{"Hello  world\n\n", "don't 'S", " \t\u00a0x", "a\xffb", "12 ab ?!", "\u2028\u2029 \r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := slices.Collect(pieces(s))
		if want := piecesNaive(s); !slices.Equal(got, want) {
			t.Fatalf("pieces(%q) = %q, want %q", s, got, want)
		}
		if strings.Join(got, "") != s {
			t.Fatalf("pieces(%q) do not reassemble", s)
		}
		for _, p := range got {
			if p == "" {
				t.Fatalf("empty piece in %q", s)
			}
		}
	})
}
