//go:build !cgo || noblas

package tensor

import (
	"errors"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"
)

// BLASName names the GEMM backend compiled in.
const BLASName = "gonum"

// Sgemm computes C = alpha·op(A)·op(B) + beta·C on row-major matrices (see the cgo build);
// this build uses gonum's pure-Go BLAS so the module builds without cgo.
func Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	checkGemm(transA, transB, m, n, k, len(a), lda, len(b), ldb, len(c), ldc)
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	blas32.Implementation().Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// SetBLASThreads is a no-op for gonum (single-threaded per call).
func SetBLASThreads(n int) {}

// BLASThreads is 1: each gonum call runs on its caller's goroutine, so concurrent calls are
// fine (see the threading policy in threads.go).
func BLASThreads() int { return 1 }

// SetMatmulBF16 fails in this build: the bfloat16 GEMM is a C kernel (see the cgo build).
func SetMatmulBF16(on bool) error {
	if on {
		return errors.New("tensor: bfloat16 matmul needs the cgo build (this one uses gonum)")
	}
	return nil
}

// MatmulBF16 is false in this build.
func MatmulBF16() bool { return false }

// MatmulEngine names gonum's float32 GEMM.
func MatmulEngine() string { return BLASName + "-f32" }

// BF16Preferred is false in this build.
func BF16Preferred() bool { return false }

// linearBF16 never applies in this build.
func linearBF16(out, x, w, b []float32, m, k, n int) bool { return false }
