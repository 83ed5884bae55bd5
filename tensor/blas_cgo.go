//go:build cgo && !noblas

package tensor

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
#include "simd.h"
*/
import "C"

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"
)

// BLASName names the GEMM backend compiled in.
const BLASName = "openblas"

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices, op(X) = Xᵀ when trans is
// set. op(A) is M×K, op(B) is K×N, C is M×N. This is OpenBLAS's cblas_sgemm through cgo (~27 ns
// per call, negligible against any GEMM chorus runs).
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	if matmulBF16.Load() && m >= bf16MinDim && n >= bf16MinDim && k >= bf16MinDim {
		sgemmBF16(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, nil)
		return
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}

// bf16Supported reports whether the CPU runs the bfloat16 GEMM (AVX512-BF16).
var bf16Supported = C.chorus_bf16_supported() != 0

// bf16MinDim: products with a side below it stay in float32 (OpenBLAS); packing would cost
// more than the bfloat16 products save.
const bf16MinDim = 16

// matmulBF16 routes Sgemm through the bfloat16 GEMM (SetMatmulBF16); useAMX runs it on the
// AMX tile unit rather than with AVX512-BF16.
var matmulBF16, useAMX atomic.Bool

// amxAvailable reports whether the CPU has AMX-BF16 and Linux granted the process the tile
// state; asked once, and only by a process that wants bfloat16 products.
var amxAvailable = sync.OnceValue(func() bool { return bf16Supported && C.chorus_amx_init() != 0 })

// SetMatmulBF16 makes Sgemm — every GEMM of a training step: the linear layers forward and
// backward, the convolutions, attention's backward pass — round its operands to bfloat16 and
// multiply them with float32 accumulation, as mixed-precision training's autocast does: on the
// AMX tile unit where there is one, else with AVX512-BF16. It is process-wide and meant for
// training runs (chorus train --matmul bf16): inference keeps Whisper's float32 numerics unless
// a process asks otherwise. It fails on CPUs without AVX512-BF16. BF16Preferred says whether it
// is faster than float32 here.
func SetMatmulBF16(on bool) error {
	if on && !bf16Supported {
		return errors.New("tensor: bfloat16 matmul needs a CPU with AVX512-BF16 (Zen 4, Cooper Lake, Sapphire Rapids or later)")
	}
	useAMX.Store(on && amxAvailable())
	matmulBF16.Store(on)
	return nil
}

// MatmulBF16 reports whether Sgemm runs in bfloat16 (SetMatmulBF16).
func MatmulBF16() bool { return matmulBF16.Load() }

// MatmulEngine names what runs Sgemm's large products: "openblas-f32", "amx-bf16" or
// "avx512-bf16".
func MatmulEngine() string {
	switch {
	case !matmulBF16.Load():
		return BLASName + "-f32"
	case useAMX.Load():
		return "amx-bf16"
	}
	return "avx512-bf16"
}

// BF16Preferred reports whether bfloat16 products are faster than OpenBLAS's float32 ones on
// this CPU (what --matmul auto asks): with AMX, or with AVX512-BF16 on AMD (Zen 4 issues
// VDPBF16PS as often as a float32 FMA, twice the multiply-adds; Intel's cores half as often,
// where the bfloat16 kernel's packing makes it slower than OpenBLAS — docs/BENCHMARKS.md).
func BF16Preferred() bool {
	return amxAvailable() || (bf16Supported && C.chorus_cpu_amd() != 0)
}

// sgemmBF16 is the bfloat16 GEMM on arguments Sgemm has checked (m, n, k > 0); bias (len n,
// beta 0 only) is added to every row as the product is stored.
func sgemmBF16(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int, bias []float32) {
	if useAMX.Load() {
		C.chorus_sgemm_amx(cbool(transA), cbool(transB), C.long(m), C.long(n), C.long(k), C.float(alpha),
			fptr(a), C.long(lda), fptr(b), C.long(ldb), C.float(beta), fptr(c), C.long(ldc), fptr(bias))
		return
	}
	C.chorus_sgemm_bf16(cbool(transA), cbool(transB), C.long(m), C.long(n), C.long(k), C.float(alpha),
		fptr(a), C.long(lda), fptr(b), C.long(ldb), C.float(beta), fptr(c), C.long(ldc), fptr(bias))
}

// linearBF16 is Linear's out = x·wᵀ + b through the bfloat16 GEMM with the bias added as the
// product is stored (no pass that fills out with the bias first), when SetMatmulBF16 is on
// and the product is one Sgemm would send there; it reports false, doing nothing, otherwise.
// Rows are split over the threads as sgemmRowsLd splits them (gemmSplit).
func linearBF16(out, x, w, b []float32, m, k, n int) bool {
	if !matmulBF16.Load() || m < bf16MinDim || n < bf16MinDim || k < bf16MinDim {
		return false
	}
	checkGemm(false, true, m, n, k, len(x), k, len(w), k, len(out), n)
	gemmSplit(m, m*n*k, func(lo, hi int) {
		sgemmBF16(false, true, hi-lo, n, k, 1, x[lo*k:], k, w, k, 0, out[lo*n:], n, b)
	})
	return true
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// blasThreads mirrors OpenBLAS's process-wide thread count so kernels can read it without a
// cgo call (see the threading policy in threads.go).
var blasThreads atomic.Int32

func init() {
	// chorus splits work itself (threads.go): OpenBLAS runs single-threaded unless the user
	// asked otherwise through OpenBLAS's own environment variables.
	for _, v := range []string{"OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"} {
		if os.Getenv(v) != "" {
			blasThreads.Store(int32(C.openblas_get_num_threads()))
			return
		}
	}
	SetBLASThreads(1)
}

// SetBLASThreads sets how many threads one GEMM call may use (n < 1 means 1). chorus
// parallelises across heads and streams itself, and on small shapes a second BLAS thread
// measured slower, so callers choose deliberately; see the threading policy in threads.go.
func SetBLASThreads(n int) {
	if n < 1 {
		n = 1
	}
	C.openblas_set_num_threads(C.int(n))
	blasThreads.Store(int32(C.openblas_get_num_threads()))
}

// BLASThreads reports how many threads one GEMM call may use.
func BLASThreads() int { return int(blasThreads.Load()) }
