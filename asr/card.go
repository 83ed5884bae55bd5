package asr

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/chorus-asr/chorus/asr/formats"
)

// WriteCard writes card (any JSON object) as dir/card.json, adding "files_sha256": the SHA-256
// of every other file in dir, so a registry can verify a variant before serving it.
func WriteCard(dir string, card any) error {
	b, err := json.Marshal(card)
	if err != nil {
		return fmt.Errorf("card: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("card: %T is not a JSON object: %w", card, err)
	}
	sums := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("card: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == "card.json" || e.Name()[0] == '.' {
			continue
		}
		s, err := FileSHA256(filepath.Join(dir, e.Name()))
		if err != nil {
			return fmt.Errorf("card: %w", err)
		}
		sums[e.Name()] = s
	}
	m["files_sha256"] = sums
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := formats.WriteFileAtomic(filepath.Join(dir, "card.json"), func(w io.Writer) error {
		_, err := w.Write(append(out, '\n'))
		return err
	}); err != nil {
		return fmt.Errorf("card: %w", err)
	}
	return nil
}

// FSFileSHA256 is the hex SHA-256 of a file in fsys (a variant folder, possibly embedded).
func FSFileSHA256(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
