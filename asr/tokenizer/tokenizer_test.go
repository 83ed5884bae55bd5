package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"unicode/utf8"
)

func TestByteLevelAlphabet(t *testing.T) {
	tests := []struct {
		b byte
		r rune
	}{
		{'!', '!'}, {'A', 'A'}, {'~', '~'}, {0xA1, 0xA1}, {0xFF, 0xFF},
		{0x00, 0x100}, {'\n', 0x10A}, {' ', 0x120}, {0x7F, 0x121}, {0xA0, 0x142}, {0xAD, 0x143},
	}
	for _, tc := range tests {
		if byteRune[tc.b] != tc.r {
			t.Errorf("byte %#02x → %U, want %U", tc.b, byteRune[tc.b], tc.r)
		}
	}
	if byteOrder[0] != '!' || byteOrder[187] != 0xFF || byteOrder[188] != 0 || byteOrder[255] != 0xAD {
		t.Errorf("byteOrder starts %v, ends %v", byteOrder[:3], byteOrder[253:])
	}
	seen := map[byte]bool{}
	for _, b := range byteOrder {
		seen[b] = true
	}
	if len(seen) != 256 {
		t.Errorf("byteOrder has %d distinct bytes", len(seen))
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if got, ok := symbolsToBytes(bytesToSymbols(all)); !ok || string(got) != string(all) {
		t.Error("bytes → symbols → bytes does not round-trip")
	}
	if _, ok := symbolsToBytes("a\u0200"); ok {
		t.Error("U+0200 accepted as a byte symbol")
	}
}

// helloMerges spell "hello" and " world" as single tokens.
var helloMerges = [][2]string{
	{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"},
	{" ", "w"}, {" w", "o"}, {"r", "l"}, {" wo", "rl"}, {" worl", "d"},
}

func TestLoadDerivedLayout(t *testing.T) {
	vocab, merges := handVocab(helloMerges)
	withEOT := maps.Clone(vocab)
	withEOT[NameEOT] = len(vocab) // GPT-2 lists <|endoftext|> in vocab.json
	for name, v := range map[string]map[string]int{"plain": vocab, "eot in vocab.json": withEOT} {
		t.Run(name, func(t *testing.T) {
			tok, err := Load(writeFolder(t, v, merges, nil))
			if err != nil {
				t.Fatal(err)
			}
			base := 256 + len(helloMerges) // 265 ordinary tokens
			sp := tok.Specials()
			want := Specials{
				EOT: base, SOT: base + 1, Translate: base + 101, Transcribe: base + 102, SOTLM: base + 103,
				SOTPrev: base + 104, NoSpeech: base + 105, NoTimestamps: base + 106, TimestampBegin: base + 107,
				Languages: WhisperLanguages[:99], Multilingual: true,
			}
			if fmt.Sprint(sp) != fmt.Sprint(want) {
				t.Errorf("specials\n got %+v\nwant %+v", sp, want)
			}
			if tok.Size() != base+107+NumTimestamps {
				t.Errorf("size %d", tok.Size())
			}
			ids := tok.Encode("hello world")
			if len(ids) != 2 || tok.Token(ids[0]) != "hello" || tok.Token(ids[1]) != "Ġworld" {
				t.Errorf("Encode(hello world) = %v (%q %q)", ids, tok.Token(ids[0]), tok.Token(ids[len(ids)-1]))
			}
			for _, n := range []string{"<|en|>", "<|yue|>", "<|30.00|>", "Ġworld", "h"} {
				id, ok := tok.ID(n)
				if n == "<|yue|>" {
					if ok {
						t.Errorf("ID(%s) = %d with 99 languages", n, id)
					}
					continue
				}
				if !ok || tok.Token(id) != n {
					t.Errorf("ID(%q) = %d, %v; Token = %q", n, id, ok, tok.Token(id))
				}
			}
			if id, _ := tok.ID("<|30.00|>"); id != tok.Size()-1 {
				t.Errorf("<|30.00|> = %d, want the last id %d", id, tok.Size()-1)
			}
		})
	}
}

func TestLoadNamedSpecials(t *testing.T) {
	vocab, merges := handVocab(helloMerges)
	base := len(vocab)
	// Older Hugging Face folders: two languages, <|nocaptions|>, no timestamp tokens listed.
	t.Run("added_tokens.json", func(t *testing.T) {
		dir := writeFolder(t, vocab, merges, map[string]string{
			"added_tokens.json": addedTokensJSON(base, []string{"en", "de"}, false, NameNoCaptions),
		})
		tok, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		sp := tok.Specials()
		if !slices.Equal(sp.Languages, []string{"en", "de"}) || !sp.Multilingual {
			t.Errorf("languages %v, multilingual %v", sp.Languages, sp.Multilingual)
		}
		if sp.NoSpeech != base+8 || sp.NoTimestamps != base+9 || sp.TimestampBegin != base+10 {
			t.Errorf("specials %+v", sp)
		}
		if id, ok := tok.ID(NameNoCaptions); !ok || id != sp.NoSpeech || tok.Token(id) != NameNoCaptions {
			t.Errorf("ID(nocaptions) = %d, %v", id, ok)
		}
		if tok.Token(sp.TimestampBegin+54) != "<|1.08|>" {
			t.Errorf("timestamp 54 is %q", tok.Token(sp.TimestampBegin+54))
		}
	})
	// tokenizer.json alone: model vocab with merges as pairs, specials in added_tokens.
	t.Run("tokenizer.json", func(t *testing.T) {
		var mergePairs [][2]string
		for _, m := range merges {
			a, b, _ := strings.Cut(m, " ")
			mergePairs = append(mergePairs, [2]string{a, b})
		}
		type added struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
			Special bool   `json:"special"`
		}
		var at []added
		for i, n := range layoutNames([]string{"en"}) {
			at = append(at, added{base + i, n, true})
		}
		tj, _ := json.Marshal(map[string]any{
			"added_tokens": at,
			"model":        map[string]any{"type": "BPE", "vocab": vocab, "merges": mergePairs},
		})
		fsys := fstest.MapFS{"m/tokenizer.json": {Data: tj}}
		tok, err := LoadFS(fsys, "m")
		if err != nil {
			t.Fatal(err)
		}
		sp := tok.Specials()
		if sp.Multilingual || !slices.Equal(sp.Languages, []string{"en"}) || sp.TimestampBegin != base+9 {
			t.Errorf("specials %+v", sp)
		}
		if got := tok.Decode(tok.Encode("hello world")); got != "hello world" {
			t.Errorf("round trip %q", got)
		}
	})
	// vocab.json + merges.txt, specials from tokenizer.json whose merges are "a b" strings.
	t.Run("vocab.json+tokenizer.json", func(t *testing.T) {
		var at []map[string]any
		for i, n := range layoutNames(WhisperLanguages) {
			at = append(at, map[string]any{"id": base + i, "content": n})
		}
		tj, _ := json.Marshal(map[string]any{"added_tokens": at, "model": map[string]any{"merges": merges}})
		tok, err := Load(writeFolder(t, vocab, merges, map[string]string{"tokenizer.json": string(tj)}))
		if err != nil {
			t.Fatal(err)
		}
		if sp := tok.Specials(); len(sp.Languages) != 100 || sp.Languages[99] != "yue" {
			t.Errorf("languages %v", sp.Languages)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	vocab, merges := handVocab(helloMerges)
	base := len(vocab)
	noByte := maps.Clone(vocab)
	delete(noByte, bytesToSymbols([]byte{0x00}))
	clash := maps.Clone(vocab)
	clash["Ġhi"] = 3
	outOfAlphabet := maps.Clone(vocab)
	outOfAlphabet["ȷ"] = base
	tests := []struct {
		name   string
		vocab  string
		merges string
		extra  map[string]string
	}{
		{"missing merges.txt", mustJSON(vocab), "", nil},
		{"vocab not an object", `[1, 2]`, "a b", nil},
		{"vocab bad json", `{"a": 1`, "a b", nil},
		{"vocab id negative", `{"a": -1}`, "", nil},
		{"vocab id huge", `{"a": 99999999999}`, "", nil},
		{"vocab id fraction", `{"a": 1.5}`, "", nil},
		{"vocab duplicate key", strings.Replace(mustJSON(vocab), "{", `{"h": 7,`, 1), "", nil},
		{"vocab trailing data", mustJSON(vocab) + "{}", "", nil},
		{"byte token missing", mustJSON(noByte), strings.Join(merges, "\n"), nil},
		{"two tokens share an id", mustJSON(clash), strings.Join(merges, "\n"), nil},
		{"token outside the byte alphabet", mustJSON(outOfAlphabet), strings.Join(merges, "\n"), nil},
		{"merge of unknown tokens", mustJSON(vocab), "x yz", nil},
		{"merge result unknown", mustJSON(vocab), "x y", nil},
		{"merge line with three parts", mustJSON(vocab), "h e l", nil},
		{"merge line with one part", mustJSON(vocab), "he", nil},
		{"special collides with a token", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{"added_tokens.json": addedTokensJSON(base-1, []string{"en"}, true, NameNoSpeech)}},
		{"special missing", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{"added_tokens.json": fmt.Sprintf(`{"%s": %d, "%s": %d}`, NameEOT, base, NameSOT, base+1)}},
		{"language range has a gap", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{"added_tokens.json": strings.Replace(addedTokensJSON(base, []string{"en", "de"}, true, NameNoSpeech), `"<|de|>"`, `"<|xx"`, 1)}},
		{"timestamp out of place", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{"added_tokens.json": strings.Replace(addedTokensJSON(base, []string{"en"}, true, NameNoSpeech), `"<|0.02|>"`, `"<|0.03|>"`, 1)}},
		{"added_tokens conflicts with tokenizer.json", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{
				"added_tokens.json": fmt.Sprintf(`{"%s": %d}`, NameEOT, base),
				"tokenizer.json":    fmt.Sprintf(`{"added_tokens": [{"id": %d, "content": "%s"}]}`, base+5, NameEOT),
			}},
		{"eot inside the vocabulary", mustJSON(vocab), strings.Join(merges, "\n"),
			map[string]string{"added_tokens.json": fmt.Sprintf(`{"%s": 10}`, NameEOT)}},
		{"tokenizer.json bad", mustJSON(vocab), strings.Join(merges, "\n"), map[string]string{"tokenizer.json": `{"added_tokens": 5}`}},
		{"tokenizer.json unigram", "", "", map[string]string{"tokenizer.json": `{"model": {"type": "Unigram", "vocab": {"a": 0}}}`}},
		{"tokenizer.json bad merge", "", "", map[string]string{"tokenizer.json": `{"model": {"vocab": {"a": 0}, "merges": [3]}}`}},
		{"nothing", "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			if tc.vocab != "" {
				fsys["vocab.json"] = &fstest.MapFile{Data: []byte(tc.vocab)}
			}
			if tc.merges != "" {
				fsys["merges.txt"] = &fstest.MapFile{Data: []byte(tc.merges)}
			}
			for k, v := range tc.extra {
				fsys[k] = &fstest.MapFile{Data: []byte(v)}
			}
			if _, err := LoadFS(fsys, "."); err == nil {
				t.Error("no error")
			} else if !strings.HasPrefix(err.Error(), "load tokenizer: ") {
				t.Errorf("error %q lacks context", err)
			}
		})
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var trained = sync.OnceValues(func() (*Tokenizer, error) {
	return Train(slices.Values(corpus(3000)), 500, []string{"en"})
})

func trainedTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := trained()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestEncodeMatchesNaive(t *testing.T) {
	tok := trainedTokenizer(t)
	texts := append(corpus(200), "", " ", "the the the", "  The cat\n\nwalks.", "naïve café 123 ½",
		"\xff\xfe invalid", strings.Repeat("ab", 500), "<|endoftext|>", "ready?!  ok ♪♪ 「x」")
	for _, s := range texts {
		if got, want := tok.Encode(s), naiveEncode(tok, s); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", s, got, want)
		}
	}
	// Cached pieces give the same answer as fresh ones.
	for _, s := range texts {
		if got, want := tok.Encode(s), naiveEncode(tok, s); !slices.Equal(got, want) {
			t.Errorf("second Encode(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := trainedTokenizer(t)
	sp := tok.Specials()
	hello := tok.Encode(" hello")
	seq := slices.Concat([]int{sp.SOT, sp.TimestampBegin}, hello, []int{sp.TimestampBegin + 54, sp.EOT, -1, tok.Size()})
	if got, want := tok.Decode(seq), "<|startoftranscript|> hello<|endoftext|>"; got != want {
		t.Errorf("Decode = %q, want %q", got, want)
	}
	if got, want := tok.DecodeWithTimestamps(seq), "<|startoftranscript|><|0.00|> hello<|1.08|><|endoftext|>"; got != want {
		t.Errorf("DecodeWithTimestamps = %q, want %q", got, want)
	}
	// Invalid UTF-8 becomes one U+FFFD per maximal subpart, as Python's errors="replace".
	tests := []struct{ in, want string }{
		{"\xe2\x82", "\ufffd"},
		{"\xf0\x80", "\ufffd\ufffd"},
		{"a\xffb", "a\ufffdb"},
		{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
		{"\xe2\x82a", "\ufffda"},
		{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
		{"\xc0\xaf", "\ufffd\ufffd"},
		{"\xe0\x80\xaf", "\ufffd\ufffd\ufffd"},
		{"\xf0\x9f\x98", "\ufffd"},
		{"\xf0\x9f\x98\x80\xef\xbf\xbd", "😀\ufffd"},
	}
	for _, tc := range tests {
		if got := tok.Decode(tok.Encode(tc.in)); got != tc.want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", tc.in, got, tc.want)
		}
		var raw []byte
		for _, id := range tok.Encode(tc.in) {
			raw = append(raw, tok.TokenBytes(id)...)
		}
		if string(raw) != tc.in {
			t.Errorf("TokenBytes of %q gives %q", tc.in, raw)
		}
	}
	if tok.Token(-1) != "" || tok.Token(tok.Size()) != "" || tok.TokenBytes(tok.Size()) != nil {
		t.Error("out-of-range ids are not empty")
	}
	if !tok.IsSpecial(sp.EOT) || tok.IsSpecial(hello[0]) || tok.IsSpecial(-3) {
		t.Error("IsSpecial")
	}
}

func TestIsWhisperSpecialName(t *testing.T) {
	for name, want := range map[string]bool{
		"<|endoftext|>": true, "<|en|>": true, "<|1.08|>": true, "<|nocaptions|>": true,
		"<||>": false, "<|||>": false, "<|a b|>": false, "<|en": false, "en|>": false, "<|é|>": false, "": false,
	} {
		if got := isWhisperSpecialName(name); got != want {
			t.Errorf("isWhisperSpecialName(%q) = %v", name, got)
		}
	}
}

func TestTimestampName(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{{0, "<|0.00|>"}, {1, "<|0.02|>"}, {29, "<|0.58|>"}, {54, "<|1.08|>"}, {1500, "<|30.00|>"}} {
		if got := TimestampName(tc.i); got != tc.want {
			t.Errorf("TimestampName(%d) = %s, want %s", tc.i, got, tc.want)
		}
	}
	// i*0.02 is never within rounding distance of a half-hundredth, so it names what i/50 does.
	for i := range NumTimestamps {
		if got, want := TimestampName(i), fmt.Sprintf("<|%.2f|>", float64(i)/50); got != want {
			t.Fatalf("TimestampName(%d) = %s, want %s", i, got, want)
		}
	}
}

func TestSOTSequence(t *testing.T) {
	multi := &Specials{EOT: 10, SOT: 11, Languages: []string{"en", "de", "fr"}, Translate: 15, Transcribe: 16,
		SOTLM: 17, SOTPrev: 18, NoSpeech: 19, NoTimestamps: 20, TimestampBegin: 21, Multilingual: true}
	english := &Specials{EOT: 10, SOT: 11, Languages: []string{"en"}, Translate: 13, Transcribe: 14,
		SOTLM: 15, SOTPrev: 16, NoSpeech: 17, NoTimestamps: 18, TimestampBegin: 19}
	tests := []struct {
		sp         *Specials
		lang, task string
		ts         bool
		want       []int
		err        bool
	}{
		{multi, "en", "transcribe", true, []int{11, 12, 16}, false},
		{multi, "de", "translate", false, []int{11, 13, 15, 20}, false},
		{multi, "FR", "transcribe", true, []int{11, 14, 16}, false},
		{multi, "", "transcribe", true, []int{11, 16}, false},
		{multi, "", "", false, []int{11, 20}, false},
		{multi, "ja", "transcribe", true, nil, true},
		{multi, "en", "summarize", true, nil, true},
		{english, "", "", true, []int{11}, false},
		{english, "en", "transcribe", false, []int{11, 18}, false},
		{english, "de", "transcribe", true, nil, true},
		{english, "en", "translate", true, nil, true},
	}
	for _, tc := range tests {
		got, err := tc.sp.SOTSequence(tc.lang, tc.task, tc.ts)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("multilingual=%v SOTSequence(%q, %q, %v) = %v, %v; want %v, error %v",
				tc.sp.Multilingual, tc.lang, tc.task, tc.ts, got, err, tc.want, tc.err)
		}
	}
	if _, err := multi.LanguageToken("xx"); !errors.Is(err, ErrUnknownLanguage) {
		t.Errorf("LanguageToken(xx) error %v", err)
	}
	if id, err := multi.LanguageToken("fr"); err != nil || id != 14 {
		t.Errorf("LanguageToken(fr) = %d, %v", id, err)
	}
	if !multi.IsTimestamp(21) || !multi.IsTimestamp(21+1500) || multi.IsTimestamp(20) || multi.IsTimestamp(21+1501) {
		t.Error("IsTimestamp")
	}
}

// TestOpenAILayouts builds vocabularies of OpenAI's sizes (with made-up tokens) and checks that
// the derived and named layouts give whisper/model.py's n_vocab and is_multilingual.
func TestOpenAILayouts(t *testing.T) {
	tests := []struct {
		name         string
		ordinary     int
		languages    int // 0: derived layout
		size         int
		multilingual bool
	}{
		{"english-only (gpt2)", 50256, 0, 51864, false},
		{"multilingual", 50257, 0, 51865, true},
		{"large-v3", 50257, 100, 51866, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			vocab, _ := handVocab(nil)
			for i := len(vocab); i < tc.ordinary; i++ {
				vocab[bytesToSymbols(fmt.Appendf(nil, "w%d", i))] = i
			}
			fsys := fstest.MapFS{
				"vocab.json": {Data: []byte(mustJSON(vocab))},
				"merges.txt": {Data: []byte("#version: 0.2\n")},
			}
			if tc.languages > 0 {
				fsys["added_tokens.json"] = &fstest.MapFile{
					Data: []byte(addedTokensJSON(tc.ordinary, WhisperLanguages[:tc.languages], true, NameNoSpeech)),
				}
			}
			tok, err := LoadFS(fsys, ".")
			if err != nil {
				t.Fatal(err)
			}
			sp := tok.Specials()
			if tok.Size() != tc.size || sp.Multilingual != tc.multilingual || sp.EOT != tc.ordinary {
				t.Errorf("size %d, multilingual %v, eot %d", tok.Size(), sp.Multilingual, sp.EOT)
			}
			// whisper/model.py: num_languages = n_vocab - 51765 - int(is_multilingual)
			nl := tok.Size() - 51765
			if sp.Multilingual {
				nl--
			}
			if len(sp.Languages) != nl {
				t.Errorf("%d languages, model.py says %d", len(sp.Languages), nl)
			}
		})
	}
}

func TestNonSpeechTokens(t *testing.T) {
	music := "\u266a" // ♪ = E2 99 AA
	merges := [][2]string{
		{" ", "-"}, {" ", "'"}, {"(", "("}, {" ", "(("}, {"-", "-"}, {"\xe2", "\x99"},
		{"\xe2\x99", "\xaa"}, {music, music}, {"[", "["},
	}
	vocab, lines := handVocab(merges)
	tok, err := Load(writeFolder(t, vocab, lines, nil))
	if err != nil {
		t.Fatal(err)
	}
	id := func(raw string) int {
		i, ok := tok.ID(bytesToSymbols([]byte(raw)))
		if !ok {
			t.Fatalf("no token %q", raw)
		}
		return i
	}
	want := []int{id(" -"), id(" '"), id("(("), id(" (("), id("--"), id("[["), id(music + music),
		id(music), id("\xe2\x99")}
	// Each single-byte symbol is one token bare; never with a space here (no such merges).
	for _, c := range `"#()*+/:;<=>@[\]^_` + "`" + `{|}~` {
		want = append(want, id(string(c)))
	}
	// 「」『』 are three bytes and not merged: not suppressed. The other musical symbols
	// share ♪'s first two bytes, merged into one token, which is their first token too.
	want = slices.Compact(slices.Sorted(slices.Values(want)))
	if got := tok.NonSpeechTokens(); !slices.Equal(got, want) {
		t.Errorf("NonSpeechTokens = %v, want %v", got, want)
	}
	// On the trained English vocabulary every listed ASCII symbol is a single token, and
	// " ♪" starts with the bare space token, which must not be suppressed.
	tr := trainedTokenizer(t)
	got := tr.NonSpeechTokens()
	if !slices.IsSorted(got) || len(got) < 23 {
		t.Errorf("trained NonSpeechTokens = %v", got)
	}
	if space, _ := tr.ID("Ġ"); slices.Contains(got, space) || tr.Encode(" " + music)[0] != space {
		t.Errorf("trained NonSpeechTokens %v contains the space token %d", got, space)
	}
	got[0] = -5 // a copy
	if tr.NonSpeechTokens()[0] == -5 {
		t.Error("NonSpeechTokens returned its cache")
	}
}

func TestTrainMerges(t *testing.T) {
	// Pieces "ab", " ab", " ab", " cd", " cd". (a,b) occurs 3 times and merges first; then
	// (Ġ,ab), (Ġ,c) and (c,d) tie at 2 and the smaller ids win: c=66 < Ġ=220 gives "c d",
	// then (Ġ=220, ab=256) before (Ġ, cd=257).
	tok, err := Train(slices.Values([]string{"ab ab ab cd cd"}), 300, []string{"en"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range tok.mergeList {
		got = append(got, tok.Token(int(m[0]))+" "+tok.Token(int(m[1])))
	}
	if want := []string{"a b", "c d", "Ġ ab", "Ġ cd"}; !slices.Equal(got, want) {
		t.Errorf("merges %q, want %q", got, want)
	}
	if sp := tok.Specials(); sp.EOT != 260 || sp.Multilingual || tok.Size() != 260+8+1+NumTimestamps {
		t.Errorf("specials %+v, size %d", sp, tok.Size())
	}
	// Two merge paths to the same bytes share one token: "xab" with (a,b) first, then
	// "x ab"; "xa b" cannot arise after (a,b), so force it with separate words.
	tok, err = Train(slices.Values([]string{"abc abc bc bc bc ab"}), 300, []string{"en"})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for id := range 300 {
		if s := tok.Token(id); s != "" && !tok.IsSpecial(id) {
			if seen[s] {
				t.Errorf("token %q twice", s)
			}
			seen[s] = true
		}
	}
}

func TestTrainErrors(t *testing.T) {
	texts := slices.Values([]string{"x"})
	for _, tc := range []struct {
		size  int
		langs []string
	}{
		{255, nil}, {maxTrainVocab + 1, nil}, {300, []string{}}, {300, []string{"en", "en"}},
		{300, []string{"EN"}}, {300, []string{"e"}}, {300, []string{"e|"}},
	} {
		if _, err := Train(texts, tc.size, tc.langs); err == nil {
			t.Errorf("Train(size %d, %q): no error", tc.size, tc.langs)
		}
	}
}

func TestTrainSaveLoad(t *testing.T) {
	texts := corpus(3000)
	tok := trainedTokenizer(t)
	if id, ok := tok.ID("Ġthe"); !ok || !slices.Equal(tok.Encode(" the"), []int{id}) {
		t.Errorf(`" the" is not one token: %v`, tok.Encode(" the"))
	}
	if n := len(tok.Encode(texts[0])); n > 12 {
		t.Errorf("%q takes %d tokens", texts[0], n)
	}
	if tok.Size() != 500+8+1+NumTimestamps {
		t.Errorf("size %d", tok.Size())
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	back, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Size() != tok.Size() || fmt.Sprint(back.Specials()) != fmt.Sprint(tok.Specials()) {
		t.Fatalf("loaded size %d specials %+v, want %d %+v", back.Size(), back.Specials(), tok.Size(), tok.Specials())
	}
	for id := range tok.Size() {
		if back.Token(id) != tok.Token(id) {
			t.Fatalf("token %d: %q, want %q", id, back.Token(id), tok.Token(id))
		}
	}
	for _, s := range texts[:500] {
		ids := back.Encode(s)
		if !slices.Equal(ids, tok.Encode(s)) {
			t.Fatalf("Encode(%q) differs after Save/Load", s)
		}
		if got := back.Decode(ids); got != s {
			t.Fatalf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	// Saving again gives the same bytes.
	dir2 := t.TempDir()
	if err := back.Save(dir2); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json"} {
		a, _ := os.ReadFile(filepath.Join(dir, f))
		b, _ := os.ReadFile(filepath.Join(dir2, f))
		if string(a) != string(b) || len(a) == 0 {
			t.Errorf("%s differs between saves", f)
		}
	}
}

// TestTrainGolden pins training and the saved format: testdata/trained-en holds what Save
// wrote for a 400-token vocabulary of corpus(2000); regenerate with -update.
func TestTrainGolden(t *testing.T) {
	tok, err := Train(slices.Values(corpus(2000)), 400, []string{"en"})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "trained-en")
	if *update {
		if err := tok.Save(golden); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	if err := tok.Save(dir); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json"} {
		got, _ := os.ReadFile(filepath.Join(dir, f))
		want, err := os.ReadFile(filepath.Join(golden, f))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from the golden file (run with -update if intended)", f)
		}
	}
	back, err := Load(golden)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"The", "Ġc", "at", "Ġw", "al", "k", "s", "Ġthe", "Ġdoor", "."}
	var got []string
	for _, id := range back.Encode("The cat walks the door.") {
		got = append(got, back.Token(id))
	}
	if !slices.Equal(got, want) {
		t.Errorf("tokens %q, want %q", got, want)
	}
}

// FuzzRoundTrip checks that Encode then Decode returns valid UTF-8 text unchanged, that the
// tokens' bytes reassemble any input, and that Encode agrees with the naive reference.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"", "The cat walks.", "  \n\t", "naïve ½ 日本語", "\xff", "don't ♪♪"} {
		f.Add(s)
	}
	tok := trainedTokenizer(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s)
		if utf8.ValidString(s) {
			if got := tok.Decode(ids); got != s {
				t.Fatalf("Decode(Encode(%q)) = %q", s, got)
			}
		}
		var raw []byte
		for _, id := range ids {
			if tok.IsSpecial(id) {
				t.Fatalf("Encode(%q) produced special %d", s, id)
			}
			raw = append(raw, tok.TokenBytes(id)...)
		}
		if string(raw) != s {
			t.Fatalf("token bytes of %q reassemble to %q", s, raw)
		}
		if want := naiveEncode(tok, s); !slices.Equal(ids, want) {
			t.Fatalf("Encode(%q) = %v, naive %v", s, ids, want)
		}
	})
}

// FuzzLoadVocab feeds arbitrary vocab.json, merges.txt and added_tokens.json to the loader:
// it must fail cleanly or give a tokenizer that round-trips text.
func FuzzLoadVocab(f *testing.F) {
	vocab, merges := handVocab(helloMerges)
	f.Add([]byte(mustJSON(vocab)), []byte("#version: 0.2\n"+strings.Join(merges, "\n")), []byte(""))
	f.Add([]byte(mustJSON(vocab)), []byte(strings.Join(merges, "\n")), []byte(addedTokensJSON(len(vocab), []string{"en"}, false, NameNoSpeech)))
	f.Add([]byte(`{"a": 0}`), []byte("a a"), []byte(`{"<|endoftext|>": 1}`))
	f.Fuzz(func(t *testing.T, vocabJSON, mergesTxt, added []byte) {
		fsys := fstest.MapFS{
			"vocab.json": {Data: vocabJSON},
			"merges.txt": {Data: mergesTxt},
		}
		if len(added) > 0 {
			fsys["added_tokens.json"] = &fstest.MapFile{Data: added}
		}
		tok, err := LoadFS(fsys, ".")
		if err != nil {
			return
		}
		s := "hello world, don't ½"
		if got := tok.Decode(tok.Encode(s)); got != s {
			t.Fatalf("round trip %q", got)
		}
		sp := tok.Specials()
		if sp.EOT < 0 || sp.EOT >= tok.Size() || sp.TimestampBegin+NumTimestamps > tok.Size() {
			t.Fatalf("specials %+v outside size %d", sp, tok.Size())
		}
		_ = tok.NonSpeechTokens()
	})
}

func BenchmarkEncode(b *testing.B) {
	tok := trainedTokenizer(b)
	text := strings.Join(corpus(100), " ")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.Encode(text)
	}
}

func BenchmarkDecode(b *testing.B) {
	tok := trainedTokenizer(b)
	ids := tok.Encode(strings.Join(corpus(100), " "))
	for b.Loop() {
		tok.Decode(ids)
	}
}

// BenchmarkTrain is the workload of issue 3: 20k sentences to a 1000-token vocabulary, on a
// repetitive corpus and on one with a long tail of 20k distinct words.
func BenchmarkTrain(b *testing.B) {
	for name, texts := range map[string][]string{"simple": corpus(20000), "zipf": zipfCorpus(20000, 20000)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := Train(slices.Values(texts), 1000, []string{"en"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestConcurrentEncode shares one tokenizer (and its cache) between goroutines, as streams
// share a model; run with -race.
func TestConcurrentEncode(t *testing.T) {
	tok := trainedTokenizer(t)
	texts := corpus(300)
	want := make([][]int, len(texts))
	for i, s := range texts {
		want[i] = naiveEncode(tok, s)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range texts {
				j := (i + 77*g) % len(texts)
				if got := tok.Encode(texts[j]); !slices.Equal(got, want[j]) {
					t.Errorf("goroutine %d: Encode(%q) = %v", g, texts[j], got)
					return
				}
				_ = tok.NonSpeechTokens()
			}
		}()
	}
	wg.Wait()
}
