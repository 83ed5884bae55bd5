package tensor

import "fmt"

// checkGemm panics with a clear message when slices are too short for the declared shapes;
// cgo would otherwise read out of bounds.
func checkGemm(transA, transB bool, m, n, k, la, lda, lb, ldb, lc, ldc int) {
	ar, ac := m, k
	if transA {
		ar, ac = k, m
	}
	br, bc := k, n
	if transB {
		br, bc = n, k
	}
	if lda < ac || la < (ar-1)*lda+ac {
		panic(fmt.Sprintf("tensor: sgemm A %dx%d lda %d len %d", ar, ac, lda, la))
	}
	if ldb < bc || lb < (br-1)*ldb+bc {
		panic(fmt.Sprintf("tensor: sgemm B %dx%d ldb %d len %d", br, bc, ldb, lb))
	}
	if ldc < n || lc < (m-1)*ldc+n {
		panic(fmt.Sprintf("tensor: sgemm C %dx%d ldc %d len %d", m, n, ldc, lc))
	}
}

func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		for j := range row {
			if beta == 0 {
				row[j] = 0
			} else {
				row[j] *= beta
			}
		}
	}
}

// SgemmNaive is the reference for Sgemm: a triple loop accumulating in float64.
func SgemmNaive(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			old := float32(0)
			if beta != 0 {
				old = beta * c[i*ldc+j]
			}
			c[i*ldc+j] = alpha*float32(s) + old
		}
	}
}
