package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	_ "github.com/chorus-asr/chorus/experts/moe" // the embedded chorus-micro-moe needs the expert builder
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/chorus-asr/chorus/asr/defaultmodel"
)

// Store is where variants come from. It hides whether they live in a local folder (DirStore),
// in the binary (the embedded default) or, later, in object storage: a store that downloads
// a variant into a local cache and returns that folder's file system fits behind it.
type Store interface {
	// List names the complete variants the store holds now, in no particular order. A
	// variant that is still being written must not be listed.
	List(ctx context.Context) ([]Listing, error)
	// Open returns a listed variant's files. It fails with ErrVariantNotFound for a name the
	// store does not hold (or holds incomplete).
	Open(ctx context.Context, variant string) (Source, error)
}

// Listing is one variant a Store holds.
type Listing struct {
	// Variant is the variant's name in the store (a folder name).
	Variant string
	// Published is when the variant became complete (its card.json's modification time in a
	// folder); when several new variants serve one model, the newest is promoted.
	Published time.Time
}

// Source is a variant's files, ready to verify and load.
type Source struct {
	// Variant is the variant's name: the folder (or ggml file) name.
	Variant string
	// Location says where the files are, for people and the API's source field: a path, or
	// "embedded:chorus-micro".
	Location string
	// FS holds the variant folder's files at its root; nil for a single-file variant (a
	// whisper.cpp ggml file at Path).
	FS fs.FS
	// Path is the ggml file when FS is nil, else the folder's path when it has one.
	Path string
}

// cardFile is the variant's provenance file; its presence marks a folder complete.
const cardFile = "card.json"

// card is the part of card.json the registry reads (see docs/format/variant.md; the rest is
// provenance for people).
type card struct {
	// Name is the variant's name as its trainer wrote it.
	Name string `json:"name"`
	// Serves is the served model name the variant is published for: a variant with
	// "serves": "chorus-micro" hot-swaps the live chorus-micro when it appears. Absent, a
	// folder serves under its own name (see the package doc).
	Serves string `json:"serves"`
	// Files are the hex SHA-256 of every other file in the folder (asr.WriteCard).
	Files map[string]string `json:"files_sha256"`
	// GoldenTranscript, when set, is the text the variant must produce for the registry's
	// golden clip (golden/golden.wav); a variant that transcribes it differently is refused.
	GoldenTranscript *string `json:"golden_transcript"`
}

// readCard parses src's card.json; ok is false when the source has none (a plain Hugging
// Face folder or a ggml file loaded by path).
func readCard(src Source) (c card, raw []byte, ok bool, err error) {
	if src.FS == nil {
		return card{}, nil, false, nil
	}
	raw, err = fs.ReadFile(src.FS, cardFile)
	if errors.Is(err, fs.ErrNotExist) {
		return card{}, nil, false, nil
	}
	if err != nil {
		return card{}, nil, false, fmt.Errorf("read card: %w", err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return card{}, nil, false, fmt.Errorf("%w: card.json: %v", ErrInvalidVariant, err)
	}
	return c, raw, true, nil
}

// DirStore is a local models directory: one variant per sub-folder, complete once the folder
// holds card.json. Publishers write a variant under a name starting with "." (or anywhere
// else on the same file system) and rename it into place, so a half-written folder is never
// loaded; folders whose names start with "." or "_" are ignored.
type DirStore struct {
	// Dir is the models directory. It may be absent: the store then lists nothing.
	Dir string
}

// List returns the complete variant folders of Dir; an absent Dir holds none.
func (s DirStore) List(ctx context.Context) ([]Listing, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", s.Dir, err)
	}
	var out []Listing
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ignoredName(e.Name()) || !isDir(s.Dir, e) {
			continue
		}
		st, err := os.Stat(filepath.Join(s.Dir, e.Name(), cardFile))
		if err != nil || !st.Mode().IsRegular() {
			continue // still being written, or not a variant
		}
		out = append(out, Listing{Variant: e.Name(), Published: st.ModTime()})
	}
	return out, nil
}

// Open returns the folder Dir/variant.
func (s DirStore) Open(_ context.Context, variant string) (Source, error) {
	if variant == "" || ignoredName(variant) || variant != filepath.Base(variant) {
		return Source{}, fmt.Errorf("%w: %q is not a folder name in %s", ErrVariantNotFound, variant, s.Dir)
	}
	dir := filepath.Join(s.Dir, variant)
	if _, err := os.Stat(filepath.Join(dir, cardFile)); err != nil {
		return Source{}, fmt.Errorf("%w: %s (no %s)", ErrVariantNotFound, dir, cardFile)
	}
	return Source{Variant: variant, Location: dir, FS: os.DirFS(dir), Path: dir}, nil
}

// ignoredName reports names a publisher uses while writing (".name.tmp") or to park folders.
func ignoredName(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}

// isDir follows symbolic links, so a models directory may link variants kept elsewhere.
func isDir(root string, e fs.DirEntry) bool {
	if e.IsDir() {
		return true
	}
	if e.Type()&fs.ModeSymlink == 0 {
		return false
	}
	st, err := os.Stat(filepath.Join(root, e.Name()))
	return err == nil && st.IsDir()
}

// embeddedLocation is the source the built-in default reports.
const embeddedLocation = "embedded:" + defaultmodel.Name

// embeddedSource is the default model compiled into the binary.
func embeddedSource() Source {
	return Source{Variant: defaultmodel.Name, Location: embeddedLocation, FS: defaultmodel.FS()}
}

// embeddedFor returns the built-in source named variant (one of defaultmodel.Names, or its
// "embedded:" location), and whether there is one.
func embeddedFor(variant string) (Source, bool, error) {
	name := strings.TrimPrefix(variant, "embedded:")
	if !slices.Contains(defaultmodel.Names(), name) {
		return Source{}, false, nil
	}
	fsys, err := defaultmodel.VariantFS(name)
	if err != nil {
		return Source{}, true, fmt.Errorf("%w: %v", ErrInvalidVariant, err)
	}
	return Source{Variant: name, Location: "embedded:" + name, FS: fsys}, true, nil
}

// pathSource opens a variant named by path in a Load request: a folder (card.json optional,
// so a Hugging Face download loads as it is) or a whisper.cpp ggml file.
func pathSource(path string) (Source, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Source{}, fmt.Errorf("%w: %v", ErrVariantNotFound, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return Source{}, fmt.Errorf("%w: %v", ErrVariantNotFound, err)
	}
	name := filepath.Base(abs)
	if st.IsDir() {
		return Source{Variant: name, Location: abs, FS: os.DirFS(abs), Path: abs}, nil
	}
	return Source{Variant: name, Location: abs, Path: abs}, nil
}

// isPath tells a path in a Load request from a variant name in the store.
func isPath(variant string) bool {
	return filepath.IsAbs(variant) || strings.ContainsRune(variant, '/') ||
		strings.ContainsRune(variant, filepath.Separator) || variant == "." || variant == ".."
}
