package asr

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr/formats"
	"github.com/chorus-asr/chorus/asr/lm"
	"github.com/chorus-asr/chorus/asr/tokenizer"
)

// LMFile is a variant's optional token n-gram language model (`chorus lm build`): ARPA,
// zstd-compressed, token ids for words, <s> and </s> for the tokenizer's SOT and EOT.
const LMFile = "lm.arpa.zst"

// readLM reads the variant folder's language model, or returns nil when it has none. Its
// sentence marks are the tokenizer's SOT and EOT, so a folder without tokenizer files (usable
// with token ids only, and refused by whatever needs text) has its model left unread.
func readLM(fsys fs.FS, dir, name string, tok *tokenizer.Tokenizer) (*lm.NGram, error) {
	if tok == nil {
		return nil, nil
	}
	r, err := fsys.Open(filepath.Join(dir, LMFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open model %s: language model: %w", name, err)
	}
	defer r.Close()
	sp := tok.Specials()
	m, err := lm.Load(r, sp.SOT, sp.EOT, tok.Size())
	if err != nil {
		return nil, fmt.Errorf("open model %s: language model: %w", name, err)
	}
	return m, nil
}

// WriteLM stores m in the variant folder dir as LMFile; nil writes nothing. A variant made
// from another with the same tokenizer (fine-tuned, pruned, MoE-fied) carries its parent's.
func WriteLM(dir string, m *lm.NGram) error {
	if m == nil {
		return nil
	}
	if err := formats.WriteFileAtomic(filepath.Join(dir, LMFile), m.SaveZstd); err != nil {
		return fmt.Errorf("language model: %w", err)
	}
	return nil
}
