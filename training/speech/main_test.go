package speech

import (
	"os"
	"testing"
)

// TestMain points the feature cache at a folder of this test binary's own, so tests neither
// read the user's cache nor evict its files.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "chorus-feature-cache")
	if err != nil {
		panic(err)
	}
	os.Setenv("CHORUS_FEATURE_CACHE", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
