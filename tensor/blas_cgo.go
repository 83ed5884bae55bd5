//go:build cgo && !noblas

package tensor

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"os"
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
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(&a[0])), C.blasint(lda),
		(*C.float)(unsafe.Pointer(&b[0])), C.blasint(ldb),
		C.float(beta), (*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
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
