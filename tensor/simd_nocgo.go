//go:build !cgo || noblas

package tensor

// This build has no C kernels: every kernel is its pure-Go twin (simd_go.go), and the small-m
// GEMM paths report false so Linear, LinearF16 and Attention use Sgemm (gonum).

const simdLevel = 0

// SIMD names the vector kernels compiled in and usable on this CPU.
func SIMD() string { return "go" }

func geluKernel(out, x []float32) { geluGo(out, x) }

func geluBackwardKernel(dx, dout, x []float32) { geluBackwardGo(dx, dout, x) }

func colSumsKernel(acc []float64, x []float32, rows, cols int) { colSumsGo(acc, x, rows, cols) }

func layerNormBackwardKernel(dx []float32, gacc, bacc []float64, dout, x, gamma []float32, rows, cols int, eps float32) {
	layerNormBackwardGo(dx, gacc, bacc, dout, x, gamma, rows, cols, eps)
}

func softmaxKernel(x []float32, rows, cols, ld, causal int) {
	softmaxRowsGo(x, rows, cols, ld, causal)
}

func logSoftmaxKernel(out, x []float32) { logSoftmaxGo(out, x) }

func layerNormKernel(out, x, gamma, beta []float32, rows, cols int, eps float32) {
	layerNormGo(out, x, gamma, beta, rows, cols, eps)
}

func f16ToF32Kernel(dst []float32, src []uint16) { f16ToF32Go(dst, src) }

func f32ToF16Kernel(dst []uint16, src []float32) { f32ToF16Go(dst, src) }

func gemmNTKernel(m, n, k int, alpha float32, x []float32, ldx int, w []float32, ldw int, bias, out []float32, ldo int) bool {
	return false
}

func gemmNTF16Kernel(m, n, k int, alpha float32, x []float32, ldx int, w []uint16, ldw int, bias, out []float32, ldo int) bool {
	return false
}

func gemmNNKernel(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	return false
}

func attnFused() bool { return false }

func attnPanel() int { return KVPanel }

func setSIMDLevel(level int) {}

func attnPackK(kp, k []float32, ldk, tk, d, pw int) {
	panic("tensor: no fused attention in this build")
}

func attnRows(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []float32, ldv int, s, qt []float32, causal int, out []float32, ldo int) {
	panic("tensor: no fused attention in this build")
}

func kvStoreF32(kc, vc, k, v []float32, pos, s, lp, heads, d int) {
	kvStoreGo(kc, vc, k, v, pos, s, lp, heads, d, id32)
}

func kvStoreF16(kc, vc []uint16, k, v []float32, pos, s, lp, heads, d int) {
	kvStoreGo(kc, vc, k, v, pos, s, lp, heads, d, F32ToF16)
}

func attnKVDecodeF32(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []float32, ldv int, s []float32, causal int, out []float32, ldo int) bool {
	return false
}

func attnKVDecodeF16(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []uint16, ldv int, s []float32, causal int, out []float32, ldo int) bool {
	return false
}

func argMaxKernel(x []float32) (int, bool) { return -1, false }

func addRowsIndexedKernel(dst, src []float32, idx []int32, w []float32, c int) bool { return false }

func expertFFNKernel(dst, x []float32, idx []int32, w []float32, c, s int, w1t, b1, w2r, h []float32) bool {
	return false
}

func adamwKernel(w, g, m, v []float32, k *AdamWConsts) { adamwGo(w, g, m, v, k) }
