package speech

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Publish copies the variant folder src into the models directory dir as dir/name, the way
// server/registry's watcher expects (registry doc, "Publishing and automatic promotion"): the
// copy is written under a name starting with "." (ignored by the watcher), card.json last,
// then renamed into place in one step, so a registry never sees a half-written folder and
// promotes the variant — hot-swaps it — on its next rescan. A folder already published
// under that name is moved aside to dir/.name.old-<time> and removed after the rename (a
// rename cannot replace a non-empty folder), so the name is absent only between two renames;
// the registry keeps serving the live model from memory meanwhile. It returns dir/name.
func Publish(src, dir, name string) (string, error) {
	if name == "" || name[0] == '.' || name[0] == '_' || filepath.Base(name) != name {
		return "", fmt.Errorf("publish: bad variant name %q", name)
	}
	if _, err := os.Stat(filepath.Join(src, "card.json")); err != nil {
		return "", fmt.Errorf("publish: %s is not a finished variant (no card.json): %w", src, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("publish: %w", err)
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000")
	tmp := filepath.Join(dir, "."+name+".tmp-"+stamp)
	if err := copyVariant(src, tmp); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("publish: %w", err)
	}
	dst := filepath.Join(dir, name)
	var old string
	if _, err := os.Stat(dst); err == nil {
		old = filepath.Join(dir, "."+name+".old-"+stamp)
		if err := os.Rename(dst, old); err != nil {
			os.RemoveAll(tmp)
			return "", fmt.Errorf("publish: %w", err)
		}
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("publish: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return dst, nil
}

// copyVariant copies the regular files of src into a new folder dst, card.json last.
func copyVariant(src, dst string) error {
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var card bool
	for _, e := range entries {
		if !e.Type().IsRegular() || e.Name()[0] == '.' {
			continue
		}
		if e.Name() == "card.json" {
			card = true
			continue
		}
		if err := copyFile(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	if card {
		return copyFile(filepath.Join(src, "card.json"), filepath.Join(dst, "card.json"))
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
