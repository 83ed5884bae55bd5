package speech

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chorus-asr/chorus/training/data"
)

// TestFeatureCache: the second load of a manifest reads the cache the first wrote and gives
// the same utterances and the same reported failures (a missing file, a corrupt one); a
// changed audio file, another mel count or a truncated cache file computes afresh; with the
// cache off nothing is written; old files beyond the limit are removed.
func TestFeatureCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("CHORUS_FEATURE_CACHE", cache)
	dir := t.TempDir()
	man := writeToneCorpus(t, dir)
	m, err := data.ReadManifest(man, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Two bad entries: a missing file and one that is not audio.
	if err := os.WriteFile(filepath.Join(dir, "junk.wav"), []byte("not a wav file"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.Entries = append(m.Entries, data.Entry{AudioFilepath: "missing.wav", Text: "x"}, data.Entry{AudioFilepath: "junk.wav", Text: "y"})
	tok := func(s string) []int { return []int{len(s)} }
	load := func(nMels int) ([]*utterance, []string) {
		t.Helper()
		var bad []string
		us, err := loadFeatures(t.Context(), m, nMels, tok, 3000, nil, func(i int, err error) {
			bad = append(bad, m.Entries[i].AudioFilepath+": "+err.Error())
		})
		if err != nil {
			t.Fatal(err)
		}
		return us, bad
	}
	files := func() []string {
		names, _ := filepath.Glob(filepath.Join(cache, "*.mel"))
		return names
	}
	// A missing file cannot be stat'ed: no key, no cache for this manifest.
	load(80)
	if len(files()) != 0 {
		t.Fatalf("cache files %v for a manifest with a missing file", files())
	}
	m.Entries = m.Entries[:len(m.Entries)-2]
	m.Entries = append(m.Entries, data.Entry{AudioFilepath: "junk.wav", Text: "y"})
	first, bad1 := load(80)
	if len(files()) != 1 || len(bad1) != 1 || !strings.HasPrefix(bad1[0], "junk.wav") {
		t.Fatalf("after the first load: cache %v, bad %v", files(), bad1)
	}
	// Second load: from the cache, the same utterances and failures. Then prove the cache is
	// what is read: rewrite it with every value 1.0 (half 0x3c00).
	second, bad2 := load(80)
	if len(second) != len(first) || !slices.Equal(bad1, bad2) {
		t.Fatalf("cached load: %d utterances (computed %d), bad %v (computed %v)", len(second), len(first), bad2, bad1)
	}
	for i := range first {
		if first[i].frames != second[i].frames || !slices.Equal(first[i].mel, second[i].mel) || first[i].text != second[i].text {
			t.Fatalf("utterance %d differs when cached", i)
		}
	}
	path := files()[0]
	ones := make([]cachedUtterance, len(m.Entries))
	for i, u := range first {
		ones[i] = cachedUtterance{frames: u.frames, mel: slices.Repeat([]uint16{0x3c00}, len(u.mel))}
	}
	ones[len(ones)-1] = cachedUtterance{err: os.ErrInvalid}
	if err := writeFeatureCache(path, 80, ones); err != nil {
		t.Fatal(err)
	}
	third, bad3 := load(80)
	if third[0].mel[0] != 0x3c00 || len(bad3) != 1 || !strings.Contains(bad3[0], os.ErrInvalid.Error()) {
		t.Fatalf("load after rewriting the cache: first value %#x, bad %v: not read from the cache", third[0].mel[0], bad3)
	}
	// A truncated cache file is recomputed and written again.
	st, _ := os.Stat(path)
	os.Truncate(path, st.Size()/2)
	fourth, _ := load(80)
	if !slices.Equal(fourth[0].mel, first[0].mel) {
		t.Fatal("a truncated cache was used")
	}
	if st2, err := os.Stat(path); err != nil || st2.Size() <= st.Size()/2 {
		t.Fatalf("the truncated cache file was not rewritten: %v", err)
	}
	// A changed audio file (newer modification time) is another key: a second cache file.
	wav := m.Entries[0].Path(m.Dir)
	later := st.ModTime().Add(time.Hour)
	os.Chtimes(wav, later, later)
	load(80)
	if len(files()) != 2 {
		t.Fatalf("after changing an audio file: cache files %v, want 2", files())
	}
	// Another mel count is another key too; more than featureCacheKeep files: the oldest go.
	for i := range featureCacheKeep {
		old := filepath.Join(cache, fmt.Sprintf("old%d.mel", i))
		os.WriteFile(old, nil, 0o644)
		os.Chtimes(old, st.ModTime().Add(-time.Hour), st.ModTime().Add(-time.Hour))
	}
	load(40)
	if n := len(files()); n != featureCacheKeep {
		t.Fatalf("%d cache files after pruning, want %d", n, featureCacheKeep)
	}
	olds := 0
	for _, f := range files() {
		if strings.Contains(filepath.Base(f), "old") {
			olds++
		}
	}
	if olds != featureCacheKeep-3 { // the three real files are the newest
		t.Errorf("%d old cache files kept beside the 3 new ones, want %d", olds, featureCacheKeep-3)
	}
	// Off: no path, nothing written.
	t.Setenv("CHORUS_FEATURE_CACHE", "off")
	if p := featureCachePath(m, 80, 3000); p != "" {
		t.Errorf("cache off: path %q", p)
	}
}
