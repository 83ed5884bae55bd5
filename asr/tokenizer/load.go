package tokenizer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"strings"
)

// maxID bounds token ids read from files, so a corrupt vocab.json cannot make Load allocate
// gigabytes (Whisper's vocabularies stop at 51866).
const maxID = 1 << 20

// Load reads a tokenizer folder from disk; see LoadFS.
func Load(dir string) (*Tokenizer, error) {
	return LoadFS(os.DirFS(dir), ".")
}

// LoadFS reads the tokenizer in folder dir of fsys (an embed.FS for a built-in model):
//
//   - vocab.json and merges.txt (merges.txt's first line may be a "#version" header), or,
//     when vocab.json is absent, the "model" section of tokenizer.json (type BPE, vocab and
//     merges as "a b" strings or ["a", "b"] pairs);
//   - special tokens from added_tokens.json (name → id) and from tokenizer.json's
//     "added_tokens" list (id, content); entries of vocab.json that look like "<|…|>" (GPT-2's
//     <|endoftext|>) count as special too.
//
// Without <|startoftranscript|> among them, the specials are laid out as Whisper does after
// the ordinary tokens, with DefaultNumLanguages languages (see Specials). Every merge's parts
// and result, and all 256 byte tokens, must be in the vocabulary.
func LoadFS(fsys fs.FS, dir string) (*Tokenizer, error) {
	read := func(name string) ([]byte, error) {
		b, err := fs.ReadFile(fsys, path.Join(dir, name))
		if err != nil {
			return nil, err
		}
		return b, nil
	}
	vocabJSON, err := read("vocab.json")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	tokJSON, err := read("tokenizer.json")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	var tj *tokenizerJSON
	if tokJSON != nil {
		if tj, err = parseTokenizerJSON(tokJSON); err != nil {
			return nil, fmt.Errorf("load tokenizer: tokenizer.json: %w", err)
		}
	}

	var vocab map[string]int
	var merges [][2]string
	switch {
	case vocabJSON != nil:
		if vocab, err = parseVocab(vocabJSON); err != nil {
			return nil, fmt.Errorf("load tokenizer: vocab.json: %w", err)
		}
		m, err := read("merges.txt")
		if err != nil {
			return nil, fmt.Errorf("load tokenizer: %w", err)
		}
		if merges, err = parseMerges(m); err != nil {
			return nil, fmt.Errorf("load tokenizer: merges.txt: %w", err)
		}
	case tj != nil && tj.Model.Vocab != nil:
		vocab, merges = tj.Model.Vocab, tj.merges
	default:
		return nil, fmt.Errorf("load tokenizer: no vocab.json or tokenizer.json model in %s", dir)
	}

	named := map[string]int{}
	addNamed := func(name string, id int, from string) error {
		if old, ok := named[name]; ok && old != id {
			return fmt.Errorf("%s: %s has id %d and %d", from, name, old, id)
		}
		named[name] = id
		return nil
	}
	if tj != nil {
		for _, a := range tj.AddedTokens {
			if err := addNamed(a.Content, a.ID, "tokenizer.json"); err != nil {
				return nil, fmt.Errorf("load tokenizer: %w", err)
			}
		}
	}
	added, err := read("added_tokens.json")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	if added != nil {
		m, err := parseVocab(added)
		if err != nil {
			return nil, fmt.Errorf("load tokenizer: added_tokens.json: %w", err)
		}
		for name, id := range m {
			if err := addNamed(name, id, "added_tokens.json"); err != nil {
				return nil, fmt.Errorf("load tokenizer: %w", err)
			}
		}
	}
	t, err := build(vocab, merges, named)
	if err != nil {
		return nil, fmt.Errorf("load tokenizer: %w", err)
	}
	return t, nil
}

// parseVocab reads a JSON object of token string → id, rejecting duplicate keys (which
// encoding/json would silently resolve to the last) and ids outside [0, maxID).
func parseVocab(b []byte) (map[string]int, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("want a JSON object")
	}
	m := map[string]int{}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("bad key %v", k)
		}
		v, err := dec.Token()
		if err != nil {
			return nil, err
		}
		num, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%q: id %v is not a number", key, v)
		}
		id, err := num.Int64()
		if err != nil || id < 0 || id >= maxID {
			return nil, fmt.Errorf("%q: bad id %s", key, num)
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("duplicate token %q", key)
		}
		m[key] = int(id)
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, fmt.Errorf("data after the JSON object")
	}
	return m, nil
}

// parseMerges reads merges.txt: one rule "left right" per line, in rank order, after an
// optional "#version: …" first line. Blank lines are skipped; a line without exactly one
// separating space is an error (byte-level tokens never contain a space, which is 'Ġ').
func parseMerges(b []byte) ([][2]string, error) {
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	var out [][2]string
	for i, line := range lines {
		if i == 0 && strings.HasPrefix(line, "#version") {
			continue
		}
		if line == "" {
			continue
		}
		a, c, ok := strings.Cut(line, " ")
		if !ok || a == "" || c == "" || strings.Contains(c, " ") {
			return nil, fmt.Errorf("line %d: %q is not a pair", i+1, line)
		}
		out = append(out, [2]string{a, c})
	}
	return out, nil
}

// tokenizerJSON is the part of Hugging Face's tokenizer.json that Load reads.
type tokenizerJSON struct {
	AddedTokens []struct {
		ID      int    `json:"id"`
		Content string `json:"content"`
	} `json:"added_tokens"`
	Model struct {
		Type   string            `json:"type"`
		Vocab  map[string]int    `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
	} `json:"model"`
	merges [][2]string
}

func parseTokenizerJSON(b []byte) (*tokenizerJSON, error) {
	var tj tokenizerJSON
	if err := json.Unmarshal(b, &tj); err != nil {
		return nil, err
	}
	for _, a := range tj.AddedTokens {
		if a.ID < 0 || a.ID >= maxID || a.Content == "" {
			return nil, fmt.Errorf("added token %q: bad id %d", a.Content, a.ID)
		}
	}
	if tj.Model.Vocab == nil {
		return &tj, nil
	}
	if tj.Model.Type != "" && tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("model type %q, want BPE", tj.Model.Type)
	}
	for k, id := range tj.Model.Vocab {
		if id < 0 || id >= maxID {
			return nil, fmt.Errorf("vocab %q: bad id %d", k, id)
		}
	}
	for i, raw := range tj.Model.Merges {
		var s string
		var pair []string
		if err := json.Unmarshal(raw, &s); err == nil {
			a, c, ok := strings.Cut(s, " ")
			if !ok || a == "" || c == "" || strings.Contains(c, " ") {
				return nil, fmt.Errorf("merge %d: %q is not a pair", i, s)
			}
			tj.merges = append(tj.merges, [2]string{a, c})
		} else if err := json.Unmarshal(raw, &pair); err == nil && len(pair) == 2 && pair[0] != "" && pair[1] != "" {
			tj.merges = append(tj.merges, [2]string{pair[0], pair[1]})
		} else {
			return nil, fmt.Errorf("merge %d: %s is not a pair", i, raw)
		}
	}
	return &tj, nil
}

// build assembles a Tokenizer from a vocabulary (ordinary and possibly special entries), merge
// rules in rank order, and explicitly named special tokens.
func build(vocab map[string]int, merges [][2]string, named map[string]int) (*Tokenizer, error) {
	t := &Tokenizer{vocab: make(map[string]int32, len(vocab))}
	named = maps.Clone(named)
	ordinary := map[int]string{}
	size := 0
	for s, id := range vocab {
		if id < 0 || id >= maxID {
			return nil, fmt.Errorf("token %q: id %d out of range", s, id)
		}
		if _, ok := named[s]; ok || isWhisperSpecialName(s) {
			if old, ok := named[s]; ok && old != id {
				return nil, fmt.Errorf("special token %s has id %d and %d", s, old, id)
			}
			named[s] = id
			continue
		}
		if other, dup := ordinary[id]; dup {
			return nil, fmt.Errorf("tokens %q and %q share id %d", other, s, id)
		}
		if _, ok := symbolsToBytes(s); !ok || s == "" {
			return nil, fmt.Errorf("token %q (id %d) is not in the byte-level alphabet", s, id)
		}
		ordinary[id] = s
		t.vocab[s] = int32(id)
		size = max(size, id+1)
	}
	for b := range 256 {
		id, ok := t.vocab[string(byteRune[b])]
		if !ok {
			return nil, fmt.Errorf("vocabulary lacks the byte token %q for byte %#02x", string(byteRune[b]), b)
		}
		t.byteID[b] = id
	}

	t.merges = make(map[uint64]merge, len(merges))
	for rank, m := range merges {
		l, okL := t.vocab[m[0]]
		r, okR := t.vocab[m[1]]
		res, okRes := t.vocab[m[0]+m[1]]
		if !okL || !okR || !okRes {
			return nil, fmt.Errorf("merge %d (%q %q): token not in the vocabulary", rank+1, m[0], m[1])
		}
		k := pairKey(l, r)
		if _, dup := t.merges[k]; dup {
			continue // a repeated rule can never fire; the first rank stands
		}
		t.merges[k] = merge{rank: int32(rank), result: res}
		t.mergeList = append(t.mergeList, [2]int32{l, r})
	}

	sp, names, err := resolveSpecials(named, size)
	if err != nil {
		return nil, err
	}
	t.sp, t.names = sp, names
	total := size
	for n, id := range names {
		if id < 0 || id >= maxID {
			return nil, fmt.Errorf("special token %s: id %d out of range", n, id)
		}
		if s, clash := ordinary[id]; clash {
			return nil, fmt.Errorf("special token %s and token %q share id %d", n, s, id)
		}
		total = max(total, id+1)
	}
	t.tokens = make([]string, total)
	t.raw = make([][]byte, total)
	t.special = make([]bool, total)
	for id, s := range ordinary {
		t.tokens[id] = s
		t.raw[id], _ = symbolsToBytes(s)
	}
	for n, id := range names {
		if t.special[id] {
			// Two names for one id (<|nospeech|> and <|nocaptions|>, say): keep the
			// canonical one for Token and Decode, deterministically.
			if n > t.tokens[id] {
				continue
			}
		}
		t.tokens[id] = n
		t.special[id] = true
	}
	return t, nil
}
