//go:build cgo && !noblas

package tensor

/*
#cgo CFLAGS: -O3
#cgo LDFLAGS: -lm
#include "simd.h"
*/
import "C"

import "unsafe"

// simdLevel is what simd.c can run here: 0 none (Go twins are used), 1 AVX2+FMA+F16C,
// 2 also AVX-512.
var simdLevel = int(C.chorus_simd_level())

// SIMD names the vector kernels compiled in and usable on this CPU.
func SIMD() string {
	switch simdLevel {
	case 2:
		return "avx512+f16c"
	case 1:
		return "avx2+fma+f16c"
	}
	return "go"
}

func fptr(s []float32) *C.float {
	if len(s) == 0 {
		return nil
	}
	return (*C.float)(unsafe.Pointer(&s[0]))
}

func hptr(s []uint16) *C.uint16_t {
	if len(s) == 0 {
		return nil
	}
	return (*C.uint16_t)(unsafe.Pointer(&s[0]))
}

func geluKernel(out, x []float32) {
	if simdLevel == 0 || len(x) == 0 {
		geluGo(out, x)
		return
	}
	_ = out[len(x)-1]
	C.chorus_gelu(fptr(out), fptr(x), C.size_t(len(x)))
}

// geluBackwardKernel: dx += dout·GELU'(x) over len(x) values (the caller checked bounds).
func geluBackwardKernel(dx, dout, x []float32) {
	if simdLevel == 0 || len(x) == 0 {
		geluBackwardGo(dx, dout, x)
		return
	}
	_, _ = dx[len(x)-1], dout[len(x)-1]
	C.chorus_gelu_backward(fptr(dx), fptr(dout), fptr(x), C.size_t(len(x)))
}

// colSumsKernel: acc[j] += Σ_r x[r·cols + j] (the caller checked bounds).
func colSumsKernel(acc []float64, x []float32, rows, cols int) {
	if simdLevel == 0 || rows == 0 || cols == 0 {
		colSumsGo(acc, x, rows, cols)
		return
	}
	_, _ = acc[cols-1], x[rows*cols-1]
	C.chorus_col_sums_f64((*C.double)(unsafe.Pointer(&acc[0])), fptr(x), C.long(rows), C.long(cols))
}

// layerNormBackwardKernel: LayerNormBackward on rows rows (see layerNormBackwardGo).
func layerNormBackwardKernel(dx []float32, gacc, bacc []float64, dout, x, gamma []float32, rows, cols int, eps float32) {
	if simdLevel == 0 || rows == 0 || cols == 0 {
		layerNormBackwardGo(dx, gacc, bacc, dout, x, gamma, rows, cols, eps)
		return
	}
	_, _, _, _ = gacc[cols-1], bacc[cols-1], dout[rows*cols-1], x[rows*cols-1]
	if dx != nil {
		_ = dx[rows*cols-1]
	}
	if gamma != nil {
		_ = gamma[cols-1]
	}
	C.chorus_layernorm_backward_rows(fptr(dx), (*C.double)(unsafe.Pointer(&gacc[0])), (*C.double)(unsafe.Pointer(&bacc[0])),
		fptr(dout), fptr(x), fptr(gamma), C.long(rows), C.long(cols), C.float(eps))
}

// softmaxKernel: rows of cols values spaced ld apart in x; causal < 0 for no mask, else row i
// keeps min(cols, causal+i+1) entries. The caller checked bounds.
func softmaxKernel(x []float32, rows, cols, ld, causal int) {
	if simdLevel == 0 || rows == 0 || cols == 0 {
		softmaxRowsGo(x, rows, cols, ld, causal)
		return
	}
	_ = x[(rows-1)*ld+cols-1]
	C.chorus_softmax_rows(fptr(x), C.long(rows), C.long(cols), C.long(ld), C.long(causal))
}

func logSoftmaxKernel(out, x []float32) {
	if simdLevel == 0 || len(x) == 0 {
		logSoftmaxGo(out, x)
		return
	}
	_ = out[len(x)-1]
	C.chorus_log_softmax(fptr(out), fptr(x), C.size_t(len(x)))
}

func layerNormKernel(out, x, gamma, beta []float32, rows, cols int, eps float32) {
	if simdLevel == 0 || rows == 0 || cols == 0 {
		layerNormGo(out, x, gamma, beta, rows, cols, eps)
		return
	}
	_ = out[rows*cols-1]
	_ = x[rows*cols-1]
	C.chorus_layernorm_rows(fptr(out), fptr(x), fptr(gamma), fptr(beta), C.long(rows), C.long(cols), C.float(eps))
}

func f16ToF32Kernel(dst []float32, src []uint16) {
	if simdLevel == 0 || len(src) == 0 {
		f16ToF32Go(dst, src)
		return
	}
	_ = dst[len(src)-1]
	C.chorus_f16_to_f32(fptr(dst), hptr(src), C.size_t(len(src)))
}

func f32ToF16Kernel(dst []uint16, src []float32) {
	if simdLevel == 0 || len(src) == 0 {
		f32ToF16Go(dst, src)
		return
	}
	_ = dst[len(src)-1]
	C.chorus_f32_to_f16(hptr(dst), fptr(src), C.size_t(len(src)))
}

// gemmNTKernel computes out[i*ldo+j] = alpha·x_i·w_jᵀ + bias[j] for i < m, j < n with chorus's
// small-m kernel and reports false when none is available (the caller then uses Sgemm). The
// caller checked bounds (m, n, k >= 1).
func gemmNTKernel(m, n, k int, alpha float32, x []float32, ldx int, w []float32, ldw int, bias, out []float32, ldo int) bool {
	if simdLevel == 0 {
		return false
	}
	C.chorus_gemm_nt_f32(C.long(m), C.long(n), C.long(k), C.float(alpha), fptr(x), C.long(ldx),
		fptr(w), C.long(ldw), fptr(bias), fptr(out), C.long(ldo))
	return true
}

// gemmNTF16Kernel is gemmNTKernel with an IEEE-half weight.
func gemmNTF16Kernel(m, n, k int, alpha float32, x []float32, ldx int, w []uint16, ldw int, bias, out []float32, ldo int) bool {
	if simdLevel == 0 {
		return false
	}
	C.chorus_gemm_nt_f16(C.long(m), C.long(n), C.long(k), C.float(alpha), fptr(x), C.long(ldx),
		hptr(w), C.long(ldw), fptr(bias), fptr(out), C.long(ldo))
	return true
}

// gemmNNKernel computes c = a·b (overwriting c) for small m, or reports false.
func gemmNNKernel(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) bool {
	if simdLevel == 0 {
		return false
	}
	C.chorus_gemm_nn_small(C.long(m), C.long(n), C.long(k), fptr(a), C.long(lda), fptr(b), C.long(ldb), fptr(c), C.long(ldc))
	return true
}

// attnFused reports whether the fused attention kernels are available.
func attnFused() bool { return simdLevel > 0 }

// attnPanel is the key-panel width of the fused attention kernels (KVPanel).
func attnPanel() int { return int(C.chorus_attn_panel()) }

// setSIMDLevel makes the C kernels that have AVX-512 variants use the AVX2 (1) or AVX-512 (2)
// one, so tests cover both on one machine. Not for concurrent use with running kernels.
func setSIMDLevel(level int) { C.chorus_set_level(C.int(level)) }

// attnPackK packs head columns k (tk rows of stride ldk, d values) into panels of pw keys in
// kp (ceil(tk/pw)·pw·d floats). The caller checked bounds.
func attnPackK(kp, k []float32, ldk, tk, d, pw int) {
	C.chorus_attn_pack_k(fptr(kp), fptr(k), C.long(ldk), C.long(tk), C.long(d), C.long(pw))
}

// attnRows runs scores, softmax and ·V for rows query rows of one head (see simd.h).
func attnRows(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []float32, ldv int, s, qt []float32, causal int, out []float32, ldo int) {
	C.chorus_attn_rows(C.long(rows), C.long(kn), C.long(d), C.float(scale), fptr(q), C.long(ldq),
		fptr(kp), fptr(v), C.long(ldv), fptr(s), fptr(qt), C.long(causal), fptr(out), C.long(ldo))
}

// kvStoreF32 and kvStoreF16 write s positions of keys and values k, v [s, heads·d] at pos into
// cache blocks kc, vc (layout in kvcache.go). The caller checked bounds.
func kvStoreF32(kc, vc, k, v []float32, pos, s, lp, heads, d int) {
	if simdLevel == 0 {
		kvStoreGo(kc, vc, k, v, pos, s, lp, heads, d, id32)
		return
	}
	w := heads * d
	C.chorus_kv_store_f32(fptr(kc), fptr(vc), fptr(k), C.long(w), fptr(v), C.long(w),
		C.long(pos), C.long(s), C.long(lp), C.long(heads), C.long(d))
}

func kvStoreF16(kc, vc []uint16, k, v []float32, pos, s, lp, heads, d int) {
	if simdLevel == 0 {
		kvStoreGo(kc, vc, k, v, pos, s, lp, heads, d, F32ToF16)
		return
	}
	w := heads * d
	C.chorus_kv_store_f16(hptr(kc), hptr(vc), fptr(k), C.long(w), fptr(v), C.long(w),
		C.long(pos), C.long(s), C.long(lp), C.long(heads), C.long(d))
}

// attnKVDecodeF32 and attnKVDecodeF16 run chorus_attn_kv_decode for one head (see simd.h) and
// report false where it does not apply (no AVX-512, rows > 4).
func attnKVDecodeF32(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []float32, ldv int, s []float32, causal int, out []float32, ldo int) bool {
	if simdLevel < 2 {
		return false
	}
	return C.chorus_attn_kv_decode_f32(C.long(rows), C.long(kn), C.long(d), C.float(scale), fptr(q), C.long(ldq),
		fptr(kp), fptr(v), C.long(ldv), fptr(s), C.long(causal), fptr(out), C.long(ldo)) != 0
}

func attnKVDecodeF16(rows, kn, d int, scale float32, q []float32, ldq int, kp, v []uint16, ldv int, s []float32, causal int, out []float32, ldo int) bool {
	if simdLevel < 2 {
		return false
	}
	return C.chorus_attn_kv_decode_f16(C.long(rows), C.long(kn), C.long(d), C.float(scale), fptr(q), C.long(ldq),
		hptr(kp), hptr(v), C.long(ldv), fptr(s), C.long(causal), fptr(out), C.long(ldo)) != 0
}

// argMaxKernel is chorus_argmax (see simd.h); ok is false where it does not apply (no
// AVX-512, no value above -Inf), and the caller scans.
func argMaxKernel(x []float32) (i int, ok bool) {
	if simdLevel < 2 || len(x) == 0 || len(x) >= 1<<31 {
		return -1, false
	}
	i = int(C.chorus_argmax(fptr(x), C.long(len(x))))
	return i, i >= 0
}

// addRowsIndexedKernel is chorus_add_rows_indexed (AddRowsIndexed, arguments checked);
// false without AVX2, and the caller loops.
func addRowsIndexedKernel(dst, src []float32, idx []int32, w []float32, c int) bool {
	if simdLevel == 0 {
		return false
	}
	var wp *C.float
	if w != nil {
		wp = fptr(w)
	}
	C.chorus_add_rows_indexed(fptr(dst), fptr(src), (*C.int32_t)(unsafe.Pointer(&idx[0])), wp, C.long(len(idx)), C.long(c))
	return true
}

// expertFFNKernel is chorus_expert_ffn (ExpertFFN, arguments checked).
func expertFFNKernel(dst, x []float32, idx []int32, w []float32, c, s int, w1t, b1, w2r, h []float32) bool {
	if simdLevel == 0 {
		return false
	}
	var wp, bp *C.float
	if w != nil {
		wp = fptr(w)
	}
	if b1 != nil {
		bp = fptr(b1)
	}
	C.chorus_expert_ffn(fptr(dst), fptr(x), (*C.int32_t)(unsafe.Pointer(&idx[0])), wp, C.long(len(idx)), C.long(c), C.long(s),
		fptr(w1t), bp, fptr(w2r), fptr(h))
	return true
}

// adamwKernel: AdamWUpdate on slices of equal, non-zero length.
func adamwKernel(w, g, m, v []float32, k *AdamWConsts) {
	if simdLevel == 0 {
		adamwGo(w, g, m, v, k)
		return
	}
	kc := [9]float32{k.Scale, k.B1, k.OneMinusB1, k.B2, k.OneMinusB2, k.StepSize, k.InvSqrtBC2, k.Eps, k.Decay}
	C.chorus_adamw(fptr(w), fptr(g), fptr(m), fptr(v), C.long(len(w)), (*C.float)(unsafe.Pointer(&kc[0])))
}
