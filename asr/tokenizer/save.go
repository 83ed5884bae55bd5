package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/chorus-asr/chorus/asr/formats"
)

// Save writes the tokenizer into dir (created if needed) in Hugging Face's layout, which Load
// reads back and Hugging Face's WhisperTokenizer understands:
//
//   - vocab.json: the ordinary tokens and <|endoftext|>, in id order;
//   - merges.txt: "#version: 0.2", then one rule per line in rank order;
//   - added_tokens.json: every special token, timestamps included, in id order;
//   - special_tokens_map.json: <|endoftext|> as bos/eos/unk/pad, and the other
//     non-timestamp specials as additional_special_tokens.
//
// Each file is written to a temporary name and renamed, so an interrupted Save leaves whole
// files behind, never torn ones.
func (t *Tokenizer) Save(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	var vocab, added []jsonPair
	var additional []string
	for id, s := range t.tokens {
		switch {
		case s == "":
			continue
		case !t.special[id]:
			vocab = append(vocab, jsonPair{s, id})
		default:
			added = append(added, jsonPair{s, id})
			if id == t.sp.EOT {
				vocab = append(vocab, jsonPair{s, id})
			} else if !t.sp.IsTimestamp(id) {
				additional = append(additional, s)
			}
		}
	}
	var merges bytes.Buffer
	merges.WriteString("#version: 0.2\n")
	for _, m := range t.mergeList {
		fmt.Fprintf(&merges, "%s %s\n", t.tokens[m[0]], t.tokens[m[1]])
	}
	eot := t.tokens[t.sp.EOT]
	stm, err := marshalNoEscape(struct {
		Additional []string `json:"additional_special_tokens"`
		BOS        string   `json:"bos_token"`
		EOS        string   `json:"eos_token"`
		PAD        string   `json:"pad_token"`
		UNK        string   `json:"unk_token"`
	}{additional, eot, eot, eot, eot})
	if err != nil {
		return fmt.Errorf("save tokenizer: %w", err)
	}
	files := []struct {
		name string
		data []byte
	}{
		{"vocab.json", orderedJSON(vocab)},
		{"merges.txt", merges.Bytes()},
		{"added_tokens.json", orderedJSON(added)},
		{"special_tokens_map.json", stm},
	}
	for _, f := range files {
		if err := formats.WriteFileAtomic(filepath.Join(dir, f.name), func(w io.Writer) error {
			_, err := w.Write(f.data)
			return err
		}); err != nil {
			return fmt.Errorf("save tokenizer: %w", err)
		}
	}
	return nil
}

type jsonPair struct {
	key string
	id  int
}

// orderedJSON writes a JSON object of string → int in the given order (encoding/json would
// sort the keys), one entry per line, without HTML escaping, so "<|en|>" stays readable.
func orderedJSON(pairs []jsonPair) []byte {
	pairs = slices.Clone(pairs)
	slices.SortFunc(pairs, func(a, b jsonPair) int { return a.id - b.id })
	var buf bytes.Buffer
	buf.WriteString("{")
	for i, p := range pairs {
		if i > 0 {
			buf.WriteString(",")
		}
		k, _ := marshalNoEscape(p.key) // a string always marshals
		fmt.Fprintf(&buf, "\n  %s: %d", k, p.id)
	}
	buf.WriteString("\n}\n")
	return buf.Bytes()
}

func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
