//go:build cgo && !noblas

package tensor

/*
#include <cblas.h>
*/
import "C"

import (
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/cpu"
)

// OpenBLAS chooses its kernels from the CPU model when the library loads. Debian 12's build
// (0.3.21) does not know CPUs newer than itself — the Xeons of this project's machines
// report model 207 — and falls back to its Prescott (SSE3) kernels: GEMM runs about 3×
// slower (chorus-micro's training step 4.1 s against 1.3 s with the AVX-512 kernels, and
// inference alike). The kernels can only be chosen through OPENBLAS_CORETYPE before the
// library loads, so when OpenBLAS settled on a pre-AVX core on a CPU with AVX-512 or AVX2,
// the process re-executes itself once with OPENBLAS_CORETYPE set (SkylakeX or Haswell).
// Setting OPENBLAS_CORETYPE yourself, to any value, turns this off.
func init() {
	if _, set := os.LookupEnv("OPENBLAS_CORETYPE"); set {
		return
	}
	core := betterBLASCore(BLASCore())
	if core == "" {
		return
	}
	env := append(os.Environ(), "OPENBLAS_CORETYPE="+core)
	// Exec replaces the process on success; on failure the slow kernels still compute the
	// same results, so carry on.
	_ = syscall.Exec("/proc/self/exe", os.Args, env)
}

// BLASCore is the name of the CPU core OpenBLAS's kernels are built for ("SkylakeX",
// "Haswell", … "Prescott" for the generic SSE3 ones).
func BLASCore() string { return C.GoString(C.openblas_get_corename()) }

// betterBLASCore is the OPENBLAS_CORETYPE to run with when OpenBLAS detected core on this CPU,
// or "" when its choice stands.
func betterBLASCore(core string) string {
	switch strings.ToLower(core) {
	case "prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "katmai", "coppermine", "northwood", "banias", "generic", "unknown":
	default:
		return "" // a core with AVX or better: OpenBLAS knew the CPU
	}
	switch {
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL:
		return "SkylakeX"
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		return "Haswell"
	}
	return ""
}
