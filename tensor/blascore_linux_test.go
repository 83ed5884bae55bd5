//go:build cgo && !noblas

package tensor

import (
	"os"
	"testing"
)

// TestBLASCore: the test binary itself went through the re-execution, so OpenBLAS must be
// running kernels this CPU supports at their best (not the generic SSE3 ones), unless the
// environment chose a core.
func TestBLASCore(t *testing.T) {
	core := BLASCore()
	t.Logf("OpenBLAS core %s (OPENBLAS_CORETYPE=%q)", core, os.Getenv("OPENBLAS_CORETYPE"))
	if better := betterBLASCore(core); better != "" {
		t.Errorf("OpenBLAS runs %s kernels; this CPU supports %s", core, better)
	}
	for core, want := range map[string]bool{"Prescott": true, "Haswell": false, "SkylakeX": false, "Zen": false} {
		if got := betterBLASCore(core) != ""; got && !want {
			t.Errorf("betterBLASCore(%q) replaces a core OpenBLAS knew", core)
		}
	}
}
