//go:build cgo && !noblas

// AVX2/FMA/F16C and AVX-512 kernels for package tensor. Each function is compiled for its
// instruction set with a target attribute and chosen at run time (chorus_simd_level), so the
// binary still runs on CPUs without them: there the Go side uses its pure-Go twins and never
// calls in here.
// The numerics (tables, polynomial degrees, accumulation in double) are the same as the Go
// twins in simd_go.go and mathf.go; tests compare both against the naive references.

#include "simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

static int detect_level(void) {
	__builtin_cpu_init();
	if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	      __builtin_cpu_supports("f16c")))
		return 0;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		return 2;
	return 1;
}

// Kernels with an AVX-512 variant use it where the CPU has it, chosen per call by level_now():
// on Zen 4 a 512-bit instruction is one scheduler entry for 16 lanes, so latency-bound code
// (the exp and erf polynomials) runs ~1.6× faster, and the 32 registers allow bigger
// register tiles (attention). chorus_set_level lets tests run the AVX2 variants on such CPUs.
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,f16c")))

// simd_level is set once by chorus_simd_level, which the Go package calls during its
// initialisation, before any kernel can run; afterwards it is only read (tests excepted).
static int simd_level = -1;

int chorus_simd_level(void) {
	simd_level = detect_level();
	return simd_level;
}

void chorus_set_level(int level) { simd_level = level; }

static int level_now(void) { return simd_level; }

// tailmask+8-r is an 8-lane mask with the first r lanes set (0 <= r <= 8).
static const int32_t tailmask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

AVX2_INLINE __m256i mask8(long r) { return _mm256_loadu_si256((const __m256i *)(tailmask + 8 - r)); }

// hsum4 returns {sum(a0), sum(a1), sum(a2), sum(a3)}.
AVX2_INLINE __m128 hsum4(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
	__m256 t0 = _mm256_hadd_ps(a0, a1);
	__m256 t1 = _mm256_hadd_ps(a2, a3);
	__m256 t2 = _mm256_hadd_ps(t0, t1);
	return _mm_add_ps(_mm256_castps256_ps128(t2), _mm256_extractf128_ps(t2, 1));
}

AVX2_INLINE float hmax8(__m256 v) {
	__m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	m = _mm_max_ps(m, _mm_movehl_ps(m, m));
	m = _mm_max_ss(m, _mm_movehdup_ps(m));
	return _mm_cvtss_f32(m);
}

AVX2_INLINE double hsumd(__m256d v) {
	__m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
	s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
	return _mm_cvtsd_f64(s);
}

// acc8d adds the 8 floats of v into two double accumulators.
AVX2_INLINE void acc8d(__m256 v, __m256d *s0, __m256d *s1) {
	*s0 = _mm256_add_pd(*s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
	*s1 = _mm256_add_pd(*s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

/* ---------------------------------------------------------------- half precision */

AVX2 void chorus_f16_to_f32(float *dst, const uint16_t *src, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		_mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
		_mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i + 8))));
	}
	for (; i < n; i += 8) {
		size_t r = n - i < 8 ? n - i : 8;
		uint16_t h[8] = {0};
		float f[8];
		memcpy(h, src + i, r * sizeof h[0]);
		_mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
		memcpy(dst + i, f, r * sizeof f[0]);
	}
}

AVX2 void chorus_f32_to_f16(uint16_t *dst, const float *src, size_t n) {
	const int mode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
	size_t i = 0;
	for (; i + 8 <= n; i += 8)
		_mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), mode));
	if (i < n) {
		size_t r = n - i;
		float f[8] = {0};
		uint16_t h[8];
		memcpy(f, src + i, r * sizeof f[0]);
		_mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(_mm256_loadu_ps(f), mode));
		memcpy(dst + i, h, r * sizeof h[0]);
	}
}

/* ---------------------------------------------------------------- small-m GEMM, w transposed */

// The weight loads differ between f32 and f16 only; the kernel body is shared by macro.
#define LOADW_F32(ptr) _mm256_loadu_ps(ptr)
#define LOADW_F16(ptr) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(ptr)))

AVX2_INLINE __m256 loadw_tail_f32(const float *w, long r) { return _mm256_maskload_ps(w, mask8(r)); }

AVX2_INLINE __m256 loadw_tail_f16(const uint16_t *w, long r) {
	uint16_t h[8] = {0};
	memcpy(h, w, (size_t)r * sizeof h[0]);
	return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

AVX2_INLINE void store_cols(float *dst, __m128 r, long nc) {
	if (nc == 4) {
		_mm_storeu_ps(dst, r);
		return;
	}
	float t[4];
	_mm_storeu_ps(t, r);
	for (long c = 0; c < nc; c++)
		dst[c] = t[c];
}

// finish scales four column sums by alpha and adds the bias (nc valid columns).
AVX2_INLINE __m128 finish(__m128 r, float alpha, const float *bias, long nc) {
	r = _mm_mul_ps(r, _mm_set1_ps(alpha));
	if (bias) {
		float b[4] = {0, 0, 0, 0};
		for (long c = 0; c < nc; c++)
			b[c] = bias[c];
		r = _mm_add_ps(r, _mm_loadu_ps(b));
	}
	return r;
}

// GEMM_NT_BODY computes blocks of 2 rows x 4 weight rows (output columns): 8 accumulators,
// 4 weight vectors and one x vector fit AVX2's 16 registers. A 4-column weight block is
// reused from L1 by every row pair, so the weight streams from memory once for all m rows.
// Missing rows/columns at the edges alias the last valid one and are not stored.
#ifndef PF_ROWS
#define PF_ROWS 8
#endif
#define PREFETCH4(p)                                                                              \
	do {                                                                                          \
		_mm_prefetch((const char *)(w0 + pf + (p)), _MM_HINT_T1);                                 \
		_mm_prefetch((const char *)(w1 + pf + (p)), _MM_HINT_T1);                                 \
		_mm_prefetch((const char *)(w2 + pf + (p)), _MM_HINT_T1);                                 \
		_mm_prefetch((const char *)(w3 + pf + (p)), _MM_HINT_T1);                                 \
	} while (0)

#define GEMM_NT_BODY(WT, LOADW, LOADW_TAIL)                                                       \
	long kv = k & ~7L, kr = k - kv;                                                               \
	__m256i km = mask8(kr);                                                                       \
	for (long j = 0; j < n; j += 4) {                                                             \
		long nc = n - j < 4 ? n - j : 4;                                                          \
		const WT *w0 = w + j * ldw;                                                               \
		const WT *w1 = w + (j + (nc > 1 ? 1 : 0)) * ldw;                                          \
		const WT *w2 = w + (j + (nc > 2 ? 2 : nc - 1)) * ldw;                                     \
		const WT *w3 = w + (j + (nc > 3 ? 3 : nc - 1)) * ldw;                                     \
		const float *bj = bias ? bias + j : NULL;                                                 \
		/* Prefetch the weight rows PF_ROWS ahead into L2 while this block is consumed: each */ \
		/* row is a short stream (k values) that the hardware prefetcher picks up late, and   */ \
		/* with it a single core reads f16 weights from DRAM at ~17 GB/s instead of ~9.       */ \
		/* (Into L1 the prefetches evicted the block in use for k = 1536.)                    */ \
		long pf = j + PF_ROWS < n ? PF_ROWS * ldw : 0;                                            \
		long i = 0;                                                                               \
		for (; i + 2 <= m; i += 2) {                                                              \
			const float *x0 = x + i * ldx, *x1 = x0 + ldx;                                        \
			__m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                    \
			__m256 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                    \
			for (long p = 0; p < kv; p += 8) {                                                    \
				PREFETCH4(p);                                                                     \
				__m256 v0 = LOADW(w0 + p), v1 = LOADW(w1 + p), v2 = LOADW(w2 + p),                \
				       v3 = LOADW(w3 + p);                                                        \
				__m256 u = _mm256_loadu_ps(x0 + p);                                               \
				a00 = _mm256_fmadd_ps(u, v0, a00);                                                \
				a01 = _mm256_fmadd_ps(u, v1, a01);                                                \
				a02 = _mm256_fmadd_ps(u, v2, a02);                                                \
				a03 = _mm256_fmadd_ps(u, v3, a03);                                                \
				u = _mm256_loadu_ps(x1 + p);                                                      \
				a10 = _mm256_fmadd_ps(u, v0, a10);                                                \
				a11 = _mm256_fmadd_ps(u, v1, a11);                                                \
				a12 = _mm256_fmadd_ps(u, v2, a12);                                                \
				a13 = _mm256_fmadd_ps(u, v3, a13);                                                \
			}                                                                                     \
			if (kr) {                                                                             \
				__m256 v0 = LOADW_TAIL(w0 + kv, kr), v1 = LOADW_TAIL(w1 + kv, kr),                \
				       v2 = LOADW_TAIL(w2 + kv, kr), v3 = LOADW_TAIL(w3 + kv, kr);                \
				__m256 u = _mm256_maskload_ps(x0 + kv, km);                                       \
				a00 = _mm256_fmadd_ps(u, v0, a00);                                                \
				a01 = _mm256_fmadd_ps(u, v1, a01);                                                \
				a02 = _mm256_fmadd_ps(u, v2, a02);                                                \
				a03 = _mm256_fmadd_ps(u, v3, a03);                                                \
				u = _mm256_maskload_ps(x1 + kv, km);                                              \
				a10 = _mm256_fmadd_ps(u, v0, a10);                                                \
				a11 = _mm256_fmadd_ps(u, v1, a11);                                                \
				a12 = _mm256_fmadd_ps(u, v2, a12);                                                \
				a13 = _mm256_fmadd_ps(u, v3, a13);                                                \
			}                                                                                     \
			store_cols(out + i * ldo + j, finish(hsum4(a00, a01, a02, a03), alpha, bj, nc), nc);  \
			store_cols(out + (i + 1) * ldo + j, finish(hsum4(a10, a11, a12, a13), alpha, bj, nc), \
			           nc);                                                                       \
		}                                                                                         \
		if (i < m) {                                                                              \
			/* One row left: two k-phases keep 8 FMA chains in flight. */                         \
			const float *x0 = x + i * ldx;                                                        \
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;                           \
			__m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;                                            \
			long p = 0;                                                                           \
			for (; p + 16 <= kv; p += 16) {                                                       \
				PREFETCH4(p);                                                                     \
				PREFETCH4(p + 8);                                                                 \
				__m256 u = _mm256_loadu_ps(x0 + p), t = _mm256_loadu_ps(x0 + p + 8);              \
				a0 = _mm256_fmadd_ps(u, LOADW(w0 + p), a0);                                       \
				a1 = _mm256_fmadd_ps(u, LOADW(w1 + p), a1);                                       \
				a2 = _mm256_fmadd_ps(u, LOADW(w2 + p), a2);                                       \
				a3 = _mm256_fmadd_ps(u, LOADW(w3 + p), a3);                                       \
				b0 = _mm256_fmadd_ps(t, LOADW(w0 + p + 8), b0);                                   \
				b1 = _mm256_fmadd_ps(t, LOADW(w1 + p + 8), b1);                                   \
				b2 = _mm256_fmadd_ps(t, LOADW(w2 + p + 8), b2);                                   \
				b3 = _mm256_fmadd_ps(t, LOADW(w3 + p + 8), b3);                                   \
			}                                                                                     \
			for (; p < kv; p += 8) {                                                              \
				__m256 u = _mm256_loadu_ps(x0 + p);                                               \
				a0 = _mm256_fmadd_ps(u, LOADW(w0 + p), a0);                                       \
				a1 = _mm256_fmadd_ps(u, LOADW(w1 + p), a1);                                       \
				a2 = _mm256_fmadd_ps(u, LOADW(w2 + p), a2);                                       \
				a3 = _mm256_fmadd_ps(u, LOADW(w3 + p), a3);                                       \
			}                                                                                     \
			if (kr) {                                                                             \
				__m256 u = _mm256_maskload_ps(x0 + kv, km);                                       \
				b0 = _mm256_fmadd_ps(u, LOADW_TAIL(w0 + kv, kr), b0);                             \
				b1 = _mm256_fmadd_ps(u, LOADW_TAIL(w1 + kv, kr), b1);                             \
				b2 = _mm256_fmadd_ps(u, LOADW_TAIL(w2 + kv, kr), b2);                             \
				b3 = _mm256_fmadd_ps(u, LOADW_TAIL(w3 + kv, kr), b3);                             \
			}                                                                                     \
			__m128 r = hsum4(_mm256_add_ps(a0, b0), _mm256_add_ps(a1, b1), _mm256_add_ps(a2, b2), \
			                 _mm256_add_ps(a3, b3));                                              \
			store_cols(out + i * ldo + j, finish(r, alpha, bj, nc), nc);                          \
		}                                                                                         \
	}

AVX2 static void gemm_nt_f32_avx2(long m, long n, long k, float alpha, const float *x, long ldx,
                                  const float *w, long ldw, const float *bias, float *out, long ldo) {
	GEMM_NT_BODY(float, LOADW_F32, loadw_tail_f32)
}

AVX2 static void gemm_nt_f16_avx2(long m, long n, long k, float alpha, const float *x, long ldx,
                                  const uint16_t *w, long ldw, const float *bias, float *out, long ldo) {
	GEMM_NT_BODY(uint16_t, LOADW_F16, loadw_tail_f16)
}

// The AVX-512 variant holds R rows × C weight rows of accumulators (R×C <= 16 of the 32 zmm
// registers): blocks of 4×4 convert each f16 weight vector once for four x rows (the AVX2
// kernel converts it once per row pair), and m = 1 uses 1×8 so eight FMA chains are in flight.
// Rows of a block past m alias the last row and are not stored.
#define NT512_BLOCK(NAME, WT, LOADW, LOADW_MASK)                                                  \
	AVX512_INLINE void NAME(const int R, const int C, long k, float alpha, const float *x, long ldx,   \
	                        long nr, const WT *w, long ldw, long nc, long pf, const float *bias,      \
	                        float *out, long ldo) {                                                   \
		const float *xr[4];                                                                       \
		const WT *wr[8];                                                                          \
		for (int r = 0; r < R; r++)                                                               \
			xr[r] = x + (r < nr ? r : nr - 1) * ldx;                                              \
		for (int c = 0; c < C; c++)                                                               \
			wr[c] = w + (c < nc ? c : nc - 1) * ldw;                                              \
		__m512 acc[4][8];                                                                         \
		for (int r = 0; r < R; r++)                                                               \
			for (int c = 0; c < C; c++)                                                           \
				acc[r][c] = _mm512_setzero_ps();                                                  \
		long p = 0;                                                                               \
		for (; p + 16 <= k; p += 16) {                                                            \
			__m512 wv[8];                                                                         \
			for (int c = 0; c < C; c++) {                                                         \
				_mm_prefetch((const char *)(wr[c] + pf + p), _MM_HINT_T1);                        \
				wv[c] = LOADW(wr[c] + p);                                                         \
			}                                                                                     \
			for (int r = 0; r < R; r++) {                                                         \
				__m512 xv = _mm512_loadu_ps(xr[r] + p);                                           \
				for (int c = 0; c < C; c++)                                                       \
					acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);                            \
			}                                                                                     \
		}                                                                                         \
		if (p < k) {                                                                              \
			__mmask16 km = (__mmask16)((1u << (k - p)) - 1);                                      \
			__m512 wv[8];                                                                         \
			for (int c = 0; c < C; c++)                                                           \
				wv[c] = LOADW_MASK(km, wr[c] + p);                                                \
			for (int r = 0; r < R; r++) {                                                         \
				__m512 xv = _mm512_maskz_loadu_ps(km, xr[r] + p);                                 \
				for (int c = 0; c < C; c++)                                                       \
					acc[r][c] = _mm512_fmadd_ps(xv, wv[c], acc[r][c]);                            \
			}                                                                                     \
		}                                                                                         \
		for (int r = 0; r < R && r < nr; r++) {                                                   \
			for (int c0 = 0; c0 < C && c0 < nc; c0 += 4) {                                        \
				__m256 h[4];                                                                      \
				for (int c = 0; c < 4; c++)                                                       \
					h[c] = half_sum(acc[r][c0 + c]);                                              \
				long ncc = nc - c0 < 4 ? nc - c0 : 4;                                             \
				store_cols(out + r * ldo + c0, finish(hsum4(h[0], h[1], h[2], h[3]), alpha,        \
				                                      bias ? bias + c0 : NULL, ncc), ncc);        \
			}                                                                                     \
		}                                                                                         \
	}

// half_sum adds the two 256-bit halves of a zmm (the first step of a horizontal sum).
AVX512_INLINE __m256 half_sum(__m512 a) {
	return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}

#define LOADW512_F32(ptr) _mm512_loadu_ps(ptr)
#define LOADW512_F32_MASK(m, ptr) _mm512_maskz_loadu_ps(m, ptr)
#define LOADW512_F16(ptr) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(ptr)))
#define LOADW512_F16_MASK(m, ptr) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, ptr))

NT512_BLOCK(nt512_block_f32, float, LOADW512_F32, LOADW512_F32_MASK)
NT512_BLOCK(nt512_block_f16, uint16_t, LOADW512_F16, LOADW512_F16_MASK)

// NT512_DRIVER walks the weight in column blocks (C rows of w at a time, prefetching PF_ROWS
// ahead) and the x rows in groups of 4, then 2, then 1.
#define NT512_DRIVER(BLOCK)                                                                       \
	long C = m == 1 ? 8 : 4;                                                                      \
	for (long j = 0; j < n; j += C) {                                                             \
		long nc = n - j < C ? n - j : C;                                                          \
		long pf = j + PF_ROWS < n ? PF_ROWS * ldw : 0;                                            \
		const float *bj = bias ? bias + j : NULL;                                                 \
		if (m == 1) {                                                                             \
			BLOCK(1, 8, k, alpha, x, ldx, 1, w + j * ldw, ldw, nc, pf, bj, out + j, ldo);         \
			continue;                                                                             \
		}                                                                                         \
		long i = 0;                                                                               \
		for (; i + 3 <= m; i += 4)                                                                \
			BLOCK(4, 4, k, alpha, x + i * ldx, ldx, m - i, w + j * ldw, ldw, nc, pf, bj,          \
			      out + i * ldo + j, ldo);                                                        \
		if (i + 2 <= m) {                                                                         \
			BLOCK(2, 4, k, alpha, x + i * ldx, ldx, 2, w + j * ldw, ldw, nc, pf, bj,              \
			      out + i * ldo + j, ldo);                                                        \
			i += 2;                                                                               \
		}                                                                                         \
		if (i < m)                                                                                \
			BLOCK(1, 4, k, alpha, x + i * ldx, ldx, 1, w + j * ldw, ldw, nc, pf, bj,              \
			      out + i * ldo + j, ldo);                                                        \
	}

AVX512 static void gemm_nt_f32_avx512(long m, long n, long k, float alpha, const float *x, long ldx,
                                      const float *w, long ldw, const float *bias, float *out, long ldo) {
	NT512_DRIVER(nt512_block_f32)
}

AVX512 static void gemm_nt_f16_avx512(long m, long n, long k, float alpha, const float *x, long ldx,
                                      const uint16_t *w, long ldw, const float *bias, float *out, long ldo) {
	NT512_DRIVER(nt512_block_f16)
}

void chorus_gemm_nt_f32(long m, long n, long k, float alpha, const float *x, long ldx,
                        const float *w, long ldw, const float *bias, float *out, long ldo) {
	if (level_now() >= 2)
		gemm_nt_f32_avx512(m, n, k, alpha, x, ldx, w, ldw, bias, out, ldo);
	else
		gemm_nt_f32_avx2(m, n, k, alpha, x, ldx, w, ldw, bias, out, ldo);
}

void chorus_gemm_nt_f16(long m, long n, long k, float alpha, const float *x, long ldx,
                        const uint16_t *w, long ldw, const float *bias, float *out, long ldo) {
	if (level_now() >= 2)
		gemm_nt_f16_avx512(m, n, k, alpha, x, ldx, w, ldw, bias, out, ldo);
	else
		gemm_nt_f16_avx2(m, n, k, alpha, x, ldx, w, ldw, bias, out, ldo);
}

/* ---------------------------------------------------------------- small-m GEMM, b plain */

// store32 writes a 32-column panel row, masked only when it is partial (nc < 32): masked
// stores (vmaskmovps) are slow on AMD cores.
AVX2_INLINE void store32(float *o, long nc, const __m256i *mk, __m256 a, __m256 b, __m256 c, __m256 d) {
	if (nc == 32) {
		_mm256_storeu_ps(o, a);
		_mm256_storeu_ps(o + 8, b);
		_mm256_storeu_ps(o + 16, c);
		_mm256_storeu_ps(o + 24, d);
	} else {
		_mm256_maskstore_ps(o, mk[0], a);
		_mm256_maskstore_ps(o + 8, mk[1], b);
		_mm256_maskstore_ps(o + 16, mk[2], c);
		_mm256_maskstore_ps(o + 24, mk[3], d);
	}
}

// chorus_gemm_nn_small works on column panels of 32 (4 vectors) and row pairs: each b row
// segment is loaded once per row pair and broadcast-multiplied, 8 accumulators in flight.
AVX2 void chorus_gemm_nn_small(long m, long n, long k, const float *a, long lda, const float *b,
                               long ldb, float *c, long ldc) {
	for (long j = 0; j < n; j += 32) {
		long nc = n - j < 32 ? n - j : 32;
		__m256i mk[4];
		for (int v = 0; v < 4; v++) {
			long r = nc - 8 * v;
			mk[v] = mask8(r < 0 ? 0 : r > 8 ? 8 : r);
		}
		const float *bj = b + j;
		for (long i = 0; i < m; i += 2) {
			int two = i + 1 < m;
			const float *a0 = a + i * lda, *a1 = two ? a0 + lda : a0;
			__m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
			__m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
			if (nc == 32) {
				for (long p = 0; p < k; p++) {
					const float *bp = bj + p * ldb;
					__m256 v0 = _mm256_loadu_ps(bp), v1 = _mm256_loadu_ps(bp + 8),
					       v2 = _mm256_loadu_ps(bp + 16), v3 = _mm256_loadu_ps(bp + 24);
					__m256 s = _mm256_broadcast_ss(a0 + p), t = _mm256_broadcast_ss(a1 + p);
					c00 = _mm256_fmadd_ps(s, v0, c00);
					c01 = _mm256_fmadd_ps(s, v1, c01);
					c02 = _mm256_fmadd_ps(s, v2, c02);
					c03 = _mm256_fmadd_ps(s, v3, c03);
					c10 = _mm256_fmadd_ps(t, v0, c10);
					c11 = _mm256_fmadd_ps(t, v1, c11);
					c12 = _mm256_fmadd_ps(t, v2, c12);
					c13 = _mm256_fmadd_ps(t, v3, c13);
				}
			} else {
				for (long p = 0; p < k; p++) {
					const float *bp = bj + p * ldb;
					__m256 v0 = _mm256_maskload_ps(bp, mk[0]), v1 = _mm256_maskload_ps(bp + 8, mk[1]),
					       v2 = _mm256_maskload_ps(bp + 16, mk[2]), v3 = _mm256_maskload_ps(bp + 24, mk[3]);
					__m256 s = _mm256_broadcast_ss(a0 + p), t = _mm256_broadcast_ss(a1 + p);
					c00 = _mm256_fmadd_ps(s, v0, c00);
					c01 = _mm256_fmadd_ps(s, v1, c01);
					c02 = _mm256_fmadd_ps(s, v2, c02);
					c03 = _mm256_fmadd_ps(s, v3, c03);
					c10 = _mm256_fmadd_ps(t, v0, c10);
					c11 = _mm256_fmadd_ps(t, v1, c11);
					c12 = _mm256_fmadd_ps(t, v2, c12);
					c13 = _mm256_fmadd_ps(t, v3, c13);
				}
			}
			float *o = c + i * ldc + j;
			store32(o, nc, mk, c00, c01, c02, c03);
			if (two)
				store32(o + ldc, nc, mk, c10, c11, c12, c13);
		}
	}
}

/* ---------------------------------------------------------------- exp, erf, GELU */

// exp8 is e^x to ~2 ulp for x in [-87.3, 88]: n = round(x/ln2), r = x - n*ln2 with ln2 split
// in two (the high part has 9 bits so n*hi is exact), e^r by its Taylor series to degree 7
// (truncation < 6e-9 relative on |r| <= ln2/2), scaled by 2^n through the exponent bits.
// Inputs below -87.3 (and NaN) give 0; inputs above 88 saturate at e^88.
AVX2_INLINE __m256 exp8(__m256 x) {
	const __m256 lo = _mm256_set1_ps(-87.33654f);
	__m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), _mm256_set1_ps(88.0f));
	__m256 nf = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
	                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m256 r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(0.693359375f), xc);
	r = _mm256_fnmadd_ps(nf, _mm256_set1_ps(-2.12194440e-4f), r);
	__m256 p = _mm256_set1_ps(1.0f / 5040);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
	__m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nf), _mm256_set1_epi32(127)), 23);
	__m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
	return _mm256_and_ps(y, _mm256_cmp_ps(x, lo, _CMP_GE_OQ));
}

// The erf tables are generated by tools/fit_erf.py (same numbers as erfSmall/erfTable in
// mathf.go). For a = |x| < 0.5, erf(a) = a + a*Q(a^2) with Q of degree 5. For 0.5 <= a < 4,
// interval i = floor(2a)-1 holds a degree-8 polynomial in u = a - (0.75 + i/2); entry 7 is the
// constant 1 used for a >= 4, where erf rounds to 1 in float32.
#include "erf_table.h"

// erf_abs8 returns erf(a) for a >= 0 (a NaN gives an unspecified finite value).
AVX2_INLINE __m256 erf_abs8(__m256 a) {
	__m256 t = _mm256_mul_ps(a, a);
	__m256 q = _mm256_set1_ps(erf_small[5]);
	for (int d = 4; d >= 0; d--)
		q = _mm256_fmadd_ps(q, t, _mm256_set1_ps(erf_small[d]));
	__m256 small = _mm256_fmadd_ps(a, q, a);

	__m256 ac = _mm256_min_ps(a, _mm256_set1_ps(4.25f));
	__m256i idx = _mm256_sub_epi32(_mm256_cvttps_epi32(_mm256_add_ps(ac, ac)), _mm256_set1_epi32(1));
	idx = _mm256_min_epi32(_mm256_max_epi32(idx, _mm256_setzero_si256()), _mm256_set1_epi32(7));
	__m256 center = _mm256_fmadd_ps(_mm256_cvtepi32_ps(idx), _mm256_set1_ps(0.5f), _mm256_set1_ps(0.75f));
	__m256 u = _mm256_sub_ps(ac, center);
	__m256 p = _mm256_permutevar8x32_ps(_mm256_loadu_ps(erf_table[8]), idx);
	for (int d = 7; d >= 0; d--)
		p = _mm256_fmadd_ps(p, u, _mm256_permutevar8x32_ps(_mm256_loadu_ps(erf_table[d]), idx));
	__m256 big = _mm256_min_ps(p, _mm256_set1_ps(1.0f));
	return _mm256_blendv_ps(big, small, _mm256_cmp_ps(a, _mm256_set1_ps(0.5f), _CMP_LT_OQ));
}

// gelu8 is x*0.5*(1+erf(x/sqrt2)) written as h + h*erf with h = x/2 (one rounding fewer).
AVX2_INLINE __m256 gelu8(__m256 x) {
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.707106781186547524f));
	__m256 e = erf_abs8(_mm256_andnot_ps(sign, z));
	e = _mm256_or_ps(e, _mm256_and_ps(sign, z));
	__m256 h = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
	return _mm256_fmadd_ps(h, e, h);
}

AVX2 static void gelu_avx2(float *out, const float *x, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m256 a = gelu8(_mm256_loadu_ps(x + i)), b = gelu8(_mm256_loadu_ps(x + i + 8));
		_mm256_storeu_ps(out + i, a);
		_mm256_storeu_ps(out + i + 8, b);
	}
	for (; i < n; i += 8) {
		long r = (long)(n - i) < 8 ? (long)(n - i) : 8;
		__m256i m = mask8(r);
		_mm256_maskstore_ps(out + i, m, gelu8(_mm256_maskload_ps(x + i, m)));
	}
}

// erf_abs16 and gelu16 are erf_abs8 and gelu8 on 16 lanes (same tables and arithmetic); the
// 8-entry coefficient tables sit in the low half of a zmm, and indices never exceed 7.
AVX512_INLINE __m512 erf_abs16(__m512 a) {
	__m512 t = _mm512_mul_ps(a, a);
	__m512 q = _mm512_set1_ps(erf_small[5]);
	for (int d = 4; d >= 0; d--)
		q = _mm512_fmadd_ps(q, t, _mm512_set1_ps(erf_small[d]));
	__m512 small = _mm512_fmadd_ps(a, q, a);

	__m512 ac = _mm512_min_ps(a, _mm512_set1_ps(4.25f));
	__m512i idx = _mm512_sub_epi32(_mm512_cvttps_epi32(_mm512_add_ps(ac, ac)), _mm512_set1_epi32(1));
	idx = _mm512_min_epi32(_mm512_max_epi32(idx, _mm512_setzero_si512()), _mm512_set1_epi32(7));
	__m512 center = _mm512_fmadd_ps(_mm512_cvtepi32_ps(idx), _mm512_set1_ps(0.5f), _mm512_set1_ps(0.75f));
	__m512 u = _mm512_sub_ps(ac, center);
	__m512 p = _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(erf_table[8])));
	for (int d = 7; d >= 0; d--)
		p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(erf_table[d]))));
	__m512 big = _mm512_min_ps(p, _mm512_set1_ps(1.0f));
	return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, _mm512_set1_ps(0.5f), _CMP_LT_OQ), big, small);
}

AVX512_INLINE __m512 gelu16(__m512 x) {
	__m512 z = _mm512_mul_ps(x, _mm512_set1_ps(0.707106781186547524f));
	__m512i sign = _mm512_set1_epi32((int)0x80000000u);
	__m512 e = erf_abs16(_mm512_abs_ps(z));
	e = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(e), _mm512_and_si512(_mm512_castps_si512(z), sign)));
	__m512 h = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
	return _mm512_fmadd_ps(h, e, h);
}

AVX512 static void gelu_avx512(float *out, const float *x, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16)
		_mm512_storeu_ps(out + i, gelu16(_mm512_loadu_ps(x + i)));
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		_mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, x + i)));
	}
}

/* ---------------------------------------------------------------- column sums, LayerNorm backward */

// Four floats widened to doubles.
AVX2_INLINE __m256d f4d(const float *p) { return _mm256_cvtps_pd(_mm_loadu_ps(p)); }

AVX2_INLINE double hsum4d(__m256d v) {
	__m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
	return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

AVX2 void chorus_col_sums_f64(double *acc, const float *x, long rows, long cols) {
	for (long r = 0; r < rows; r++) {
		const float *xr = x + r * cols;
		long j = 0;
		for (; j + 8 <= cols; j += 8) {
			_mm256_storeu_pd(acc + j, _mm256_add_pd(_mm256_loadu_pd(acc + j), f4d(xr + j)));
			_mm256_storeu_pd(acc + j + 4, _mm256_add_pd(_mm256_loadu_pd(acc + j + 4), f4d(xr + j + 4)));
		}
		for (; j < cols; j++)
			acc[j] += xr[j];
	}
}

AVX2 void chorus_layernorm_backward_rows(float *dx, double *gacc, double *bacc, const float *dout,
                                         const float *x, const float *gamma, long rows, long cols,
                                         float eps) {
	long c4 = cols / 4 * 4;
	for (long r = 0; r < rows; r++) {
		const float *xr = x + r * cols, *dr = dout + r * cols;
		__m256d vs = _mm256_setzero_pd();
		for (long c = 0; c < c4; c += 4)
			vs = _mm256_add_pd(vs, f4d(xr + c));
		double s = hsum4d(vs);
		for (long c = c4; c < cols; c++)
			s += xr[c];
		double mean = s / cols;
		__m256d vm = _mm256_set1_pd(mean), vss = _mm256_setzero_pd();
		for (long c = 0; c < c4; c += 4) {
			__m256d d = _mm256_sub_pd(f4d(xr + c), vm);
			vss = _mm256_fmadd_pd(d, d, vss);
		}
		double ss = hsum4d(vss);
		for (long c = c4; c < cols; c++) {
			double d = xr[c] - mean;
			ss += d * d;
		}
		double inv = 1 / sqrt(ss / cols + (double)eps);
		__m256d vi = _mm256_set1_pd(inv), vsg = _mm256_setzero_pd(), vsgx = _mm256_setzero_pd();
		for (long c = 0; c < c4; c += 4) {
			__m256d d = f4d(dr + c), xh = _mm256_mul_pd(_mm256_sub_pd(f4d(xr + c), vm), vi);
			_mm256_storeu_pd(gacc + c, _mm256_fmadd_pd(d, xh, _mm256_loadu_pd(gacc + c)));
			_mm256_storeu_pd(bacc + c, _mm256_add_pd(d, _mm256_loadu_pd(bacc + c)));
			__m256d g = gamma ? _mm256_mul_pd(d, f4d(gamma + c)) : d;
			vsg = _mm256_add_pd(vsg, g);
			vsgx = _mm256_fmadd_pd(g, xh, vsgx);
		}
		double sg = hsum4d(vsg), sgx = hsum4d(vsgx);
		for (long c = c4; c < cols; c++) {
			double d = dr[c], xh = (xr[c] - mean) * inv;
			gacc[c] += d * xh;
			bacc[c] += d;
			double g = gamma ? d * gamma[c] : d;
			sg += g;
			sgx += g * xh;
		}
		if (!dx)
			continue;
		sg /= cols;
		sgx /= cols;
		float *o = dx + r * cols;
		__m256d vsg2 = _mm256_set1_pd(sg), vsgx2 = _mm256_set1_pd(sgx);
		for (long c = 0; c < c4; c += 4) {
			__m256d d = f4d(dr + c), xh = _mm256_mul_pd(_mm256_sub_pd(f4d(xr + c), vm), vi);
			__m256d g = gamma ? _mm256_mul_pd(d, f4d(gamma + c)) : d;
			// inv·(g − sg − xh·sgx)
			__m256d t = _mm256_mul_pd(vi, _mm256_sub_pd(_mm256_sub_pd(g, vsg2), _mm256_mul_pd(xh, vsgx2)));
			_mm_storeu_ps(o + c, _mm_add_ps(_mm_loadu_ps(o + c), _mm256_cvtpd_ps(t)));
		}
		for (long c = c4; c < cols; c++) {
			double g = gamma ? (double)dr[c] * gamma[c] : dr[c];
			double xh = (xr[c] - mean) * inv;
			o[c] += (float)(inv * (g - sg - xh * sgx));
		}
	}
}

void chorus_gelu(float *out, const float *x, size_t n) {
	if (level_now() >= 2)
		gelu_avx512(out, x, n);
	else
		gelu_avx2(out, x, n);
}

/* ---------------------------------------------------------------- softmax */

// row_max returns the max of p[0..n) and sets *nan when a NaN is present.
AVX2_INLINE float row_max(const float *p, long n, int *nan) {
	__m256 vmax = _mm256_set1_ps(-INFINITY), vnan = _mm256_setzero_ps();
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 v = _mm256_loadu_ps(p + j);
		vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
		vmax = _mm256_max_ps(vmax, v);
	}
	float mx = hmax8(vmax);
	int bad = _mm256_movemask_ps(vnan);
	for (; j < n; j++) {
		float v = p[j];
		if (v != v)
			bad = 1;
		if (v > mx)
			mx = v;
	}
	*nan = bad != 0;
	return mx;
}

// exp_sum8 stores e^(p[j]-mx) (when dst is set) and returns their sum, accumulated in double so a row
// of thousands of probabilities sums to ~1 ulp.
AVX2 static double exp_sum8(float *dst, const float *p, long n, float mx) {
	__m256 vm = _mm256_set1_ps(mx);
	__m256d s0 = _mm256_setzero_pd(), s1 = s0;
	long j = 0;
	for (; j + 8 <= n; j += 8) {
		__m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), vm));
		if (dst)
			_mm256_storeu_ps(dst + j, e);
		acc8d(e, &s0, &s1);
	}
	if (j < n) {
		__m256i m = mask8(n - j);
		__m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(p + j, m), vm)), _mm256_castsi256_ps(m));
		if (dst)
			_mm256_maskstore_ps(dst + j, m, e);
		acc8d(e, &s0, &s1);
	}
	return hsumd(_mm256_add_pd(s0, s1));
}

// exp16 is exp8 on 16 lanes; vscalefps applies 2^n without building exponent bits.
AVX512_INLINE __m512 exp16(__m512 x) {
	const __m512 lo = _mm512_set1_ps(-87.33654f);
	__m512 xc = _mm512_min_ps(_mm512_max_ps(x, lo), _mm512_set1_ps(88.0f));
	__m512 nf = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
	                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	__m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(0.693359375f), xc);
	r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(-2.12194440e-4f), r);
	__m512 p = _mm512_set1_ps(1.0f / 5040);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
	return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), _mm512_scalef_ps(p, nf));
}

// GELU's derivative Φ(x) + x·φ(x) = ½(1 + erf(x/√2)) + x·e^(−x²/2)/√(2π), accumulated:
// dx += dout·gelu'(x). erf from erf_abs with z's sign put back (no branch), e^ from exp8/exp16; a
// NaN x gives a NaN gradient through the x·φ term.
AVX2_INLINE __m256 gelu_grad8(__m256 v) {
	const __m256 sign = _mm256_set1_ps(-0.0f);
	__m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
	__m256 e = _mm256_or_ps(erf_abs8(_mm256_andnot_ps(sign, z)), _mm256_and_ps(sign, z));
	__m256 cdf = _mm256_fmadd_ps(_mm256_set1_ps(0.5f), e, _mm256_set1_ps(0.5f));
	__m256 pdf = _mm256_mul_ps(_mm256_set1_ps(0.39894228040143268f),
	                           exp8(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(v, v))));
	return _mm256_fmadd_ps(v, pdf, cdf);
}

AVX2 static void gelu_backward_avx2(float *dx, const float *dout, const float *x, size_t n) {
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 g = gelu_grad8(_mm256_loadu_ps(x + i));
		_mm256_storeu_ps(dx + i, _mm256_fmadd_ps(_mm256_loadu_ps(dout + i), g, _mm256_loadu_ps(dx + i)));
	}
	if (i < n) {
		__m256i m = mask8((long)(n - i));
		__m256 g = gelu_grad8(_mm256_maskload_ps(x + i, m));
		_mm256_maskstore_ps(dx + i, m, _mm256_fmadd_ps(_mm256_maskload_ps(dout + i, m), g, _mm256_maskload_ps(dx + i, m)));
	}
}

AVX512_INLINE __m512 gelu_grad16(__m512 v) {
	__m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
	__m512 e = _mm512_or_ps(erf_abs16(_mm512_abs_ps(z)), _mm512_and_ps(_mm512_set1_ps(-0.0f), z));
	__m512 cdf = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), e, _mm512_set1_ps(0.5f));
	__m512 pdf = _mm512_mul_ps(_mm512_set1_ps(0.39894228040143268f),
	                           exp16(_mm512_mul_ps(_mm512_set1_ps(-0.5f), _mm512_mul_ps(v, v))));
	return _mm512_fmadd_ps(v, pdf, cdf);
}

AVX512 static void gelu_backward_avx512(float *dx, const float *dout, const float *x, size_t n) {
	size_t i = 0;
	for (; i + 16 <= n; i += 16) {
		__m512 g = gelu_grad16(_mm512_loadu_ps(x + i));
		_mm512_storeu_ps(dx + i, _mm512_fmadd_ps(_mm512_loadu_ps(dout + i), g, _mm512_loadu_ps(dx + i)));
	}
	if (i < n) {
		__mmask16 m = (__mmask16)((1u << (n - i)) - 1);
		__m512 g = gelu_grad16(_mm512_maskz_loadu_ps(m, x + i));
		_mm512_mask_storeu_ps(dx + i, m, _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, dout + i), g, _mm512_maskz_loadu_ps(m, dx + i)));
	}
}

void chorus_gelu_backward(float *dx, const float *dout, const float *x, size_t n) {
	if (level_now() >= 2)
		gelu_backward_avx512(dx, dout, x, n);
	else
		gelu_backward_avx2(dx, dout, x, n);
}

AVX512_INLINE void acc16d(__m512 v, __m512d *s0, __m512d *s1) {
	*s0 = _mm512_add_pd(*s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
	*s1 = _mm512_add_pd(*s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

AVX512 static double exp_sum16(float *dst, const float *p, long n, float mx) {
	__m512 vm = _mm512_set1_ps(mx);
	__m512d s0 = _mm512_setzero_pd(), s1 = s0;
	long j = 0;
	for (; j + 16 <= n; j += 16) {
		__m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p + j), vm));
		if (dst)
			_mm512_storeu_ps(dst + j, e);
		acc16d(e, &s0, &s1);
	}
	if (j < n) {
		__mmask16 m = (__mmask16)((1u << (n - j)) - 1);
		__m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + j), vm)));
		if (dst)
			_mm512_mask_storeu_ps(dst + j, m, e);
		acc16d(e, &s0, &s1);
	}
	return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}

// exp_sum stores e^(p[j]-mx) to dst (when set) and returns their sum in double, so a row of
// thousands of probabilities sums to ~1 ulp.
static double exp_sum(float *dst, const float *p, long n, float mx) {
	return level_now() >= 2 ? exp_sum16(dst, p, n, mx) : exp_sum8(dst, p, n, mx);
}

AVX2_INLINE void fill(float *p, long n, float v) {
	for (long j = 0; j < n; j++)
		p[j] = v;
}

AVX2 void chorus_softmax_rows(float *x, long rows, long cols, long ld, long causal) {
	for (long i = 0; i < rows; i++) {
		float *p = x + i * ld;
		long lim = cols;
		if (causal >= 0 && causal + i + 1 < cols)
			lim = causal + i + 1;
		int nan;
		float mx = row_max(p, lim, &nan);
		if (nan || !isfinite(mx)) {
			// As the float64 reference: inf-inf or a NaN poisons the whole row.
			fill(p, lim, NAN);
		} else {
			float inv = (float)(1.0 / exp_sum(p, p, lim, mx));
			__m256 vi = _mm256_set1_ps(inv);
			long j = 0;
			for (; j + 8 <= lim; j += 8)
				_mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vi));
			for (; j < lim; j++)
				p[j] *= inv;
		}
		if (lim < cols)
			memset(p + lim, 0, (size_t)(cols - lim) * sizeof *p);
	}
}

AVX2 void chorus_log_softmax(float *out, const float *x, size_t n) {
	int nan;
	float mx = row_max(x, (long)n, &nan);
	if (nan || !isfinite(mx)) {
		fill(out, (long)n, NAN);
		return;
	}
	float ls = (float)log(exp_sum(NULL, x, (long)n, mx));
	__m256 vm = _mm256_set1_ps(mx), vl = _mm256_set1_ps(ls);
	size_t j = 0;
	for (; j + 8 <= n; j += 8)
		_mm256_storeu_ps(out + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), vm), vl));
	for (; j < n; j++)
		out[j] = (x[j] - mx) - ls;
}

/* ---------------------------------------------------------------- layernorm */

// Two passes in double over the row (it is in L1), then one float pass. The mean is split
// into hi+lo floats so x-mean keeps full relative precision even when |mean| >> std.
AVX2 void chorus_layernorm_rows(float *out, const float *x, const float *gamma, const float *beta,
                                long rows, long cols, float eps) {
	long cv = cols & ~7L;
	__m256i tm = mask8(cols - cv);
	for (long r = 0; r < rows; r++) {
		const float *p = x + r * cols;
		float *o = out + r * cols;
		__m256d s0 = _mm256_setzero_pd(), s1 = s0;
		long j = 0;
		for (; j < cv; j += 8)
			acc8d(_mm256_loadu_ps(p + j), &s0, &s1);
		if (j < cols)
			acc8d(_mm256_maskload_ps(p + j, tm), &s0, &s1);
		double mean = hsumd(_mm256_add_pd(s0, s1)) / (double)cols;
		float mhi = (float)mean, mlo = (float)(mean - (double)mhi);
		__m256 vh = _mm256_set1_ps(mhi), vl = _mm256_set1_ps(mlo);

		s0 = _mm256_setzero_pd();
		s1 = s0;
		for (j = 0; j < cv; j += 8) {
			__m256 d = _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(p + j), vh), vl);
			__m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
			s0 = _mm256_fmadd_pd(d0, d0, s0);
			s1 = _mm256_fmadd_pd(d1, d1, s1);
		}
		if (j < cols) {
			__m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(p + j, tm), vh), vl),
			                         _mm256_castsi256_ps(tm));
			__m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(d)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(d, 1));
			s0 = _mm256_fmadd_pd(d0, d0, s0);
			s1 = _mm256_fmadd_pd(d1, d1, s1);
		}
		double var = hsumd(_mm256_add_pd(s0, s1)) / (double)cols;
		__m256 vinv = _mm256_set1_ps((float)(1.0 / sqrt(var + (double)eps)));

		// Full vectors with plain stores: a masked store (vmaskmovps) is slow on AMD cores.
		for (j = 0; j < cv; j += 8) {
			__m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(p + j), vh), vl), vinv);
			if (gamma)
				y = _mm256_mul_ps(y, _mm256_loadu_ps(gamma + j));
			if (beta)
				y = _mm256_add_ps(y, _mm256_loadu_ps(beta + j));
			_mm256_storeu_ps(o + j, y);
		}
		if (j < cols) {
			__m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(p + j, tm), vh), vl), vinv);
			if (gamma)
				y = _mm256_mul_ps(y, _mm256_maskload_ps(gamma + j, tm));
			if (beta)
				y = _mm256_add_ps(y, _mm256_maskload_ps(beta + j, tm));
			_mm256_maskstore_ps(o + j, tm, y);
		}
	}
}

/* ---------------------------------------------------------------- fused attention */



long chorus_attn_panel(void) { return 32; }

// chorus_attn_pack_k lays K_h [tk, d] (row stride ldk) out as panels of pw keys,
// kp[(j/pw)*d*pw + e*pw + j%pw] = K[j][e], zero-padded to whole panels. The score kernel then
// reads one contiguous panel per pw keys instead of pw strided rows.
void chorus_attn_pack_k(float *kp, const float *k, long ldk, long tk, long d, long pw) {
	long np = (tk + pw - 1) / pw;
	for (long pn = 0; pn < np; pn++) {
		float *dst = kp + pn * d * pw;
		long j0 = pn * pw, nj = tk - j0 < pw ? tk - j0 : pw;
		if (nj < pw)
			memset(dst, 0, (size_t)(d * pw) * sizeof *dst);
		for (long jj = 0; jj < nj; jj++) {
			const float *src = k + (j0 + jj) * ldk;
			for (long e = 0; e < d; e++)
				dst[e * pw + jj] = src[e];
		}
	}
}

// softmax_exp replaces each row's first lim = min(cols, causal+i+1) scores by e^(s-max) and
// the rest by 0, and stores 1/sum in rinv[i]: the normalisation is folded into the ·V output
// (rows×D multiplies instead of a third pass over rows×Tk). Poisoned rows (NaN, max ±Inf)
// become NaN, as the reference.
AVX2 static void softmax_exp(float *s, long rows, long cols, long ld, long causal, float *rinv) {
	for (long i = 0; i < rows; i++) {
		float *p = s + i * ld;
		long lim = cols;
		if (causal >= 0 && causal + i + 1 < cols)
			lim = causal + i + 1;
		int nan;
		float mx = row_max(p, lim, &nan);
		if (nan || !isfinite(mx)) {
			fill(p, lim, NAN);
			rinv[i] = 1;
		} else {
			rinv[i] = (float)(1.0 / exp_sum(p, p, lim, mx));
		}
		if (lim < cols)
			memset(p + lim, 0, (size_t)(cols - lim) * sizeof *p);
	}
}

// load_qt copies nr query rows (stride ldq) scaled by scale into qt [R][d], zeroing rows
// nr..R-1 so the fixed-size tiles never read garbage.
static void load_qt(float *qt, long R, long nr, const float *q, long ldq, long d, float scale) {
	for (long r = 0; r < R; r++) {
		float *dst = qt + r * d;
		if (r < nr) {
			const float *src = q + r * ldq;
			for (long e = 0; e < d; e++)
				dst[e] = src[e] * scale;
		} else {
			memset(dst, 0, (size_t)d * sizeof *dst);
		}
	}
}

// AVX2 score tile: 6 query rows × 16 keys, 12 accumulators + 2 key vectors + 1 broadcast;
// each 32-key panel is two such tiles (the panel rows are 32 floats apart).
AVX2 static void attn_scores_avx2(const float *qt, long d, const float *kp, long np, float *s, long lds, long nr) {
	for (long pn = 0; pn < 2 * np; pn++) {
		const float *kq = kp + (pn >> 1) * d * 32 + (pn & 1) * 16;
		__m256 a[6][2];
		for (int r = 0; r < 6; r++)
			a[r][0] = a[r][1] = _mm256_setzero_ps();
		for (long e = 0; e < d; e++) {
			__m256 k0 = _mm256_loadu_ps(kq + e * 32), k1 = _mm256_loadu_ps(kq + e * 32 + 8);
			for (int r = 0; r < 6; r++) {
				__m256 b = _mm256_broadcast_ss(qt + r * d + e);
				a[r][0] = _mm256_fmadd_ps(b, k0, a[r][0]);
				a[r][1] = _mm256_fmadd_ps(b, k1, a[r][1]);
			}
		}
		for (int r = 0; r < 6; r++) {
			if (r < nr) {
				_mm256_storeu_ps(s + r * lds + pn * 16, a[r][0]);
				_mm256_storeu_ps(s + r * lds + pn * 16 + 8, a[r][1]);
			}
		}
	}
}

// AVX2 output tile: 3 rows × 32 columns; each V vector feeds three FMAs (12 accumulators,
// 3 broadcasts, 1 load). Row pointers past the block alias its last row and are not stored.
AVX2 static void attn_pv_avx2(long rows, long kn, long d, const float *p, long lds, const float *v, long ldv,
                              const float *rinv, float *out, long ldo) {
	for (long c0 = 0; c0 < d; c0 += 32) {
		long nc = d - c0 < 32 ? d - c0 : 32;
		__m256i mk[4];
		for (int c = 0; c < 4; c++) {
			long r = nc - 8 * c;
			mk[c] = mask8(r < 0 ? 0 : r > 8 ? 8 : r);
		}
		for (long i = 0; i < rows; i += 3) {
			long nr = rows - i < 3 ? rows - i : 3;
			const float *pr[3];
			for (int r = 0; r < 3; r++)
				pr[r] = p + (i + (r < nr ? r : nr - 1)) * lds;
			__m256 a[3][4];
			for (int r = 0; r < 3; r++)
				for (int c = 0; c < 4; c++)
					a[r][c] = _mm256_setzero_ps();
			for (long j = 0; j < kn; j++) {
				const float *vr = v + j * ldv + c0;
				__m256 b0 = _mm256_broadcast_ss(pr[0] + j), b1 = _mm256_broadcast_ss(pr[1] + j),
				       b2 = _mm256_broadcast_ss(pr[2] + j);
				for (int c = 0; c < 4; c++) {
					__m256 x = nc == 32 ? _mm256_loadu_ps(vr + 8 * c) : _mm256_maskload_ps(vr + 8 * c, mk[c]);
					a[0][c] = _mm256_fmadd_ps(b0, x, a[0][c]);
					a[1][c] = _mm256_fmadd_ps(b1, x, a[1][c]);
					a[2][c] = _mm256_fmadd_ps(b2, x, a[2][c]);
				}
			}
			for (int r = 0; r < 3 && r < nr; r++) {
				__m256 sc = _mm256_set1_ps(rinv[i + r]);
				store32(out + (i + r) * ldo + c0, nc, mk, _mm256_mul_ps(a[r][0], sc), _mm256_mul_ps(a[r][1], sc),
				        _mm256_mul_ps(a[r][2], sc), _mm256_mul_ps(a[r][3], sc));
			}
		}
	}
}

// AVX-512 score tile: 8 query rows × 32 keys, 16 accumulators.
AVX512 static void attn_scores_avx512(const float *qt, long d, const float *kp, long np, float *s, long lds, long nr) {
	for (long pn = 0; pn < np; pn++) {
		const float *kq = kp + pn * d * 32;
		__m512 a[8][2];
		for (int r = 0; r < 8; r++)
			a[r][0] = a[r][1] = _mm512_setzero_ps();
		for (long e = 0; e < d; e++) {
			__m512 k0 = _mm512_loadu_ps(kq + e * 32), k1 = _mm512_loadu_ps(kq + e * 32 + 16);
			for (int r = 0; r < 8; r++) {
				__m512 b = _mm512_set1_ps(qt[r * d + e]);
				a[r][0] = _mm512_fmadd_ps(b, k0, a[r][0]);
				a[r][1] = _mm512_fmadd_ps(b, k1, a[r][1]);
			}
		}
		for (int r = 0; r < 8; r++) {
			if (r < nr) {
				_mm512_storeu_ps(s + r * lds + pn * 32, a[r][0]);
				_mm512_storeu_ps(s + r * lds + pn * 32 + 16, a[r][1]);
			}
		}
	}
}

// AVX-512 output tile: 6 rows × 64 columns (24 accumulators), masked at the column edge.
AVX512 static void attn_pv_avx512(long rows, long kn, long d, const float *p, long lds, const float *v, long ldv,
                                  const float *rinv, float *out, long ldo) {
	for (long c0 = 0; c0 < d; c0 += 64) {
		long nc = d - c0 < 64 ? d - c0 : 64;
		__mmask16 mk[4];
		for (int c = 0; c < 4; c++) {
			long r = nc - 16 * c;
			mk[c] = r <= 0 ? 0 : r >= 16 ? 0xffff : (__mmask16)((1u << r) - 1);
		}
		for (long i = 0; i < rows; i += 6) {
			long nr = rows - i < 6 ? rows - i : 6;
			const float *pr[6];
			for (int r = 0; r < 6; r++)
				pr[r] = p + (i + (r < nr ? r : nr - 1)) * lds;
			__m512 a[6][4];
			for (int r = 0; r < 6; r++)
				for (int c = 0; c < 4; c++)
					a[r][c] = _mm512_setzero_ps();
			for (long j = 0; j < kn; j++) {
				const float *vr = v + j * ldv + c0;
				__m512 x[4];
				for (int c = 0; c < 4; c++)
					x[c] = _mm512_maskz_loadu_ps(mk[c], vr + 16 * c);
				for (int r = 0; r < 6; r++) {
					__m512 b = _mm512_set1_ps(pr[r][j]);
					for (int c = 0; c < 4; c++)
						a[r][c] = _mm512_fmadd_ps(b, x[c], a[r][c]);
				}
			}
			for (int r = 0; r < 6 && r < nr; r++) {
				__m512 sc = _mm512_set1_ps(rinv[i + r]);
				for (int c = 0; c < 4; c++)
					_mm512_mask_storeu_ps(out + (i + r) * ldo + c0 + 16 * c, mk[c], _mm512_mul_ps(a[r][c], sc));
			}
		}
	}
}

void chorus_attn_rows(long rows, long kn, long d, float scale, const float *q, long ldq,
                      const float *kp, const float *v, long ldv, float *s, float *qt,
                      long causal, float *out, long ldo) {
	int z = level_now() >= 2;
	long pw = 32, R = z ? 8 : 6;
	long np = (kn + pw - 1) / pw, lds = np * pw;
	float *rinv = qt + R * d; // scratch: R*d for the q tile, then rows floats
	for (long i = 0; i < rows; i += R) {
		long nr = rows - i < R ? rows - i : R;
		load_qt(qt, R, nr, q + i * ldq, ldq, d, scale);
		if (z)
			attn_scores_avx512(qt, d, kp, np, s + i * lds, lds, nr);
		else
			attn_scores_avx2(qt, d, kp, np, s + i * lds, lds, nr);
	}
	softmax_exp(s, rows, kn, lds, causal, rinv);
	if (z)
		attn_pv_avx512(rows, kn, d, s, lds, v, ldv, rinv, out, ldo);
	else
		attn_pv_avx2(rows, kn, d, s, lds, v, ldv, rinv, out, ldo);
}

/* ---------------------------------------------------------------- indexed row add */

// chorus_add_rows_indexed: each src row added (scaled when w is given: a multiply, then an
// add, as the Go twin) into its dst row, 8 lanes at a time with a masked tail.
AVX2 void chorus_add_rows_indexed(float *dst, const float *src, const int32_t *idx, const float *w, long n, long c) {
	for (long j = 0; j < n; j++) {
		float *d = dst + (long)idx[j] * c;
		const float *x = src + j * c;
		long i = 0;
		if (w) {
			__m256 a = _mm256_set1_ps(w[j]);
			for (; i + 8 <= c; i += 8)
				_mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_mul_ps(a, _mm256_loadu_ps(x + i))));
			for (; i < c; i++)
				d[i] += w[j] * x[i];
		} else {
			for (; i + 32 <= c; i += 32) {
				__m256 s0 = _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(x + i));
				__m256 s1 = _mm256_add_ps(_mm256_loadu_ps(d + i + 8), _mm256_loadu_ps(x + i + 8));
				__m256 s2 = _mm256_add_ps(_mm256_loadu_ps(d + i + 16), _mm256_loadu_ps(x + i + 16));
				__m256 s3 = _mm256_add_ps(_mm256_loadu_ps(d + i + 24), _mm256_loadu_ps(x + i + 24));
				_mm256_storeu_ps(d + i, s0);
				_mm256_storeu_ps(d + i + 8, s1);
				_mm256_storeu_ps(d + i + 16, s2);
				_mm256_storeu_ps(d + i + 24, s3);
			}
			for (; i + 8 <= c; i += 8)
				_mm256_storeu_ps(d + i, _mm256_add_ps(_mm256_loadu_ps(d + i), _mm256_loadu_ps(x + i)));
			for (; i < c; i++)
				d[i] += x[i];
		}
	}
}

/* ---------------------------------------------------------------- fused expert FFN */

// chorus_expert_ffn: one expert's feed-forward block for the n tokens idx lists, fused so the
// expert's weights (fc1 transposed [c][s], fc2 transposed [s][c]: 32 KB for 16 units of 256)
// stay in L1 while every token streams through: h = relu(x·W1ᵀ + b1) over s units (8 or 16
// at a time, one broadcast of x[k] per FMA row), then y = h·W2ᵀ over c outputs (32 at a
// time), added — times w[j] when given, a multiply then an add as AddRowsIndexed — into the
// token's dst row. s and c are multiples of 8; h is scratch of s floats.
// expert_fc1_4 computes h[4][s] = relu(b1 + x_j·W1ᵀ) for four tokens at once: eight
// independent FMA chains (four tokens × two vectors of units), each weight vector loaded once
// for the four.
AVX2 static void expert_fc1_4(const float *x0, const float *x1, const float *x2, const float *x3, long c, long s,
                              const float *w1t, const float *b1, float *h) {
	for (long u = 0; u < s; u += 16) {
		int two = u + 16 <= s;
		__m256 b0 = b1 ? _mm256_loadu_ps(b1 + u) : _mm256_setzero_ps();
		__m256 bb = two && b1 ? _mm256_loadu_ps(b1 + u + 8) : _mm256_setzero_ps();
		__m256 a00 = b0, a01 = bb, a10 = b0, a11 = bb, a20 = b0, a21 = bb, a30 = b0, a31 = bb;
		const float *wp = w1t + u;
		if (two) {
			for (long k = 0; k < c; k++, wp += s) {
				__m256 w0 = _mm256_loadu_ps(wp), w1 = _mm256_loadu_ps(wp + 8);
				__m256 v0 = _mm256_set1_ps(x0[k]), v1 = _mm256_set1_ps(x1[k]), v2 = _mm256_set1_ps(x2[k]), v3 = _mm256_set1_ps(x3[k]);
				a00 = _mm256_fmadd_ps(v0, w0, a00); a01 = _mm256_fmadd_ps(v0, w1, a01);
				a10 = _mm256_fmadd_ps(v1, w0, a10); a11 = _mm256_fmadd_ps(v1, w1, a11);
				a20 = _mm256_fmadd_ps(v2, w0, a20); a21 = _mm256_fmadd_ps(v2, w1, a21);
				a30 = _mm256_fmadd_ps(v3, w0, a30); a31 = _mm256_fmadd_ps(v3, w1, a31);
			}
		} else {
			for (long k = 0; k < c; k++, wp += s) {
				__m256 w0 = _mm256_loadu_ps(wp);
				a00 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k]), w0, a00);
				a10 = _mm256_fmadd_ps(_mm256_set1_ps(x1[k]), w0, a10);
				a20 = _mm256_fmadd_ps(_mm256_set1_ps(x2[k]), w0, a20);
				a30 = _mm256_fmadd_ps(_mm256_set1_ps(x3[k]), w0, a30);
			}
		}
		__m256 z = _mm256_setzero_ps();
		_mm256_storeu_ps(h + u, _mm256_max_ps(a00, z));
		_mm256_storeu_ps(h + s + u, _mm256_max_ps(a10, z));
		_mm256_storeu_ps(h + 2 * s + u, _mm256_max_ps(a20, z));
		_mm256_storeu_ps(h + 3 * s + u, _mm256_max_ps(a30, z));
		if (two) {
			_mm256_storeu_ps(h + u + 8, _mm256_max_ps(a01, z));
			_mm256_storeu_ps(h + s + u + 8, _mm256_max_ps(a11, z));
			_mm256_storeu_ps(h + 2 * s + u + 8, _mm256_max_ps(a21, z));
			_mm256_storeu_ps(h + 3 * s + u + 8, _mm256_max_ps(a31, z));
		}
	}
}

// expert_fc1_1 is expert_fc1_4 for one token (the tail), its units in 16s split over four
// partial sums of k so that the FMA chains do not wait on each other.
AVX2 static void expert_fc1_1(const float *x0, long c, long s, const float *w1t, const float *b1, float *h) {
	for (long u = 0; u < s; u += 8) {
		__m256 a0 = b1 ? _mm256_loadu_ps(b1 + u) : _mm256_setzero_ps();
		__m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
		const float *wp = w1t + u;
		long k = 0;
		for (; k + 4 <= c; k += 4, wp += 4 * s) {
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k]), _mm256_loadu_ps(wp), a0);
			a1 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k + 1]), _mm256_loadu_ps(wp + s), a1);
			a2 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k + 2]), _mm256_loadu_ps(wp + 2 * s), a2);
			a3 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k + 3]), _mm256_loadu_ps(wp + 3 * s), a3);
		}
		for (; k < c; k++, wp += s)
			a0 = _mm256_fmadd_ps(_mm256_set1_ps(x0[k]), _mm256_loadu_ps(wp), a0);
		__m256 a = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
		_mm256_storeu_ps(h + u, _mm256_max_ps(a, _mm256_setzero_ps()));
	}
}

// chorus_expert_ffn: one expert's feed-forward block for the n tokens idx lists, fused so the
// expert's weights (fc1 transposed [c][s], fc2 transposed [s][c]: 32 KB for 16 units of 256)
// stay in L1 while the tokens stream through, four at a time: h = relu(x·W1ᵀ + b1) over the
// s units, then y = h·W2ᵀ over the c outputs (16 at a time, eight FMA chains), added — times
// w[j] when given, a multiply then an add as AddRowsIndexed — into each token's dst row. s
// and c are multiples of 8; h is scratch of 4·s floats.
AVX2 void chorus_expert_ffn(float *dst, const float *x, const int32_t *idx, const float *w, long n, long c, long s,
                            const float *w1t, const float *b1, const float *w2r, float *h) {
	for (long j = 0; j < n; j += 4) {
		long m = n - j < 4 ? n - j : 4;
		const float *xr[4];
		for (long t = 0; t < 4; t++)
			xr[t] = x + (long)idx[j + (t < m ? t : 0)] * c;
		if (m == 4)
			expert_fc1_4(xr[0], xr[1], xr[2], xr[3], c, s, w1t, b1, h);
		else
			for (long t = 0; t < m; t++)
				expert_fc1_1(xr[t], c, s, w1t, b1, h + t * s);
		float *d[4];
		__m256 wa[4];
		for (long t = 0; t < 4; t++) {
			d[t] = dst + (long)idx[j + (t < m ? t : 0)] * c;
			wa[t] = _mm256_set1_ps(w ? w[j + (t < m ? t : 0)] : 1.0f);
		}
		for (long i = 0; i < c; i += 16) {
			int two = i + 16 <= c;
			__m256 y00 = _mm256_setzero_ps(), y01 = y00, y10 = y00, y11 = y00, y20 = y00, y21 = y00, y30 = y00, y31 = y00;
			const float *wp = w2r + i;
			for (long q = 0; q < s; q++, wp += c) {
				__m256 w0 = _mm256_loadu_ps(wp), w1 = two ? _mm256_loadu_ps(wp + 8) : w0;
				__m256 h0 = _mm256_set1_ps(h[q]), h1 = _mm256_set1_ps(h[s + q]);
				__m256 h2 = _mm256_set1_ps(h[2 * s + q]), h3 = _mm256_set1_ps(h[3 * s + q]);
				y00 = _mm256_fmadd_ps(h0, w0, y00); y01 = _mm256_fmadd_ps(h0, w1, y01);
				y10 = _mm256_fmadd_ps(h1, w0, y10); y11 = _mm256_fmadd_ps(h1, w1, y11);
				y20 = _mm256_fmadd_ps(h2, w0, y20); y21 = _mm256_fmadd_ps(h2, w1, y21);
				y30 = _mm256_fmadd_ps(h3, w0, y30); y31 = _mm256_fmadd_ps(h3, w1, y31);
			}
			__m256 ys[4][2] = {{y00, y01}, {y10, y11}, {y20, y21}, {y30, y31}};
			for (long t = 0; t < m; t++) {
				for (int v = 0; v < 1 + two; v++) {
					__m256 y = ys[t][v];
					if (w)
						y = _mm256_mul_ps(wa[t], y);
					float *dp = d[t] + i + 8 * v;
					_mm256_storeu_ps(dp, _mm256_add_ps(_mm256_loadu_ps(dp), y));
				}
			}
		}
	}
}

/* ---------------------------------------------------------------- argmax */

// chorus_argmax: four independent sets of 16 lanes each keep their largest value and its
// first index (a strictly-greater compare, so NaNs never win and ties keep the earlier
// index); the result is the smallest index among the lanes holding the overall maximum.
AVX512 long chorus_argmax(const float *x, long n) {
	const __m512 ninf = _mm512_set1_ps(-INFINITY);
	const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	__m512 mx[4] = {ninf, ninf, ninf, ninf};
	__m512i ix[4];
	for (int s = 0; s < 4; s++)
		ix[s] = _mm512_set1_epi32(-1);
	long i = 0;
	for (; i + 64 <= n; i += 64) {
		for (int s = 0; s < 4; s++) {
			__m512 v = _mm512_loadu_ps(x + i + 16 * s);
			__mmask16 m = _mm512_cmp_ps_mask(v, mx[s], _CMP_GT_OQ);
			mx[s] = _mm512_mask_mov_ps(mx[s], m, v);
			ix[s] = _mm512_mask_mov_epi32(ix[s], m, _mm512_add_epi32(iota, _mm512_set1_epi32((int)(i + 16 * s))));
		}
	}
	for (; i < n; i += 16) {
		long r = n - i < 16 ? n - i : 16;
		__mmask16 k = (__mmask16)((1u << r) - 1);
		__m512 v = _mm512_mask_loadu_ps(ninf, k, x + i);
		__mmask16 m = _mm512_cmp_ps_mask(v, mx[0], _CMP_GT_OQ);
		mx[0] = _mm512_mask_mov_ps(mx[0], m, v);
		ix[0] = _mm512_mask_mov_epi32(ix[0], m, _mm512_add_epi32(iota, _mm512_set1_epi32((int)i)));
	}
	float best = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(mx[0], mx[1]), _mm512_max_ps(mx[2], mx[3])));
	if (!(best > -INFINITY))
		return -1;
	__m512 vb = _mm512_set1_ps(best);
	__m512i lo = _mm512_set1_epi32(0x7fffffff);
	for (int s = 0; s < 4; s++)
		lo = _mm512_mask_min_epi32(lo, _mm512_cmp_ps_mask(mx[s], vb, _CMP_EQ_OQ), lo, ix[s]);
	return _mm512_reduce_min_epi32(lo);
}

/* ---------------------------------------------------------------- KV cache */

// Cache layout (simd.h, kvcache.go): per head, keys in panels of 32 positions,
// kc[(j/32)*d*32 + e*32 + j%32], and values in rows, vc[j*d + e]; a head's block is lp
// positions (a multiple of 32) long and the heads follow one another.

// chorus_kv_store_* write s rows k, v [s, heads*d] (row strides ldk, ldv) at positions
// pos..pos+s-1.
AVX2 void chorus_kv_store_f32(float *kc, float *vc, const float *k, long ldk, const float *v, long ldv,
                              long pos, long s, long lp, long heads, long d) {
	for (long h = 0; h < heads; h++) {
		float *kh = kc + h * lp * d, *vh = vc + h * lp * d;
		for (long i = 0; i < s; i++) {
			long j = pos + i;
			const float *kr = k + i * ldk + h * d;
			float *kq = kh + (j / 32) * d * 32 + j % 32;
			for (long e = 0; e < d; e++)
				kq[e * 32] = kr[e];
			memcpy(vh + j * d, v + i * ldv + h * d, (size_t)d * sizeof *vh);
		}
	}
}

AVX2 void chorus_kv_store_f16(uint16_t *kc, uint16_t *vc, const float *k, long ldk, const float *v, long ldv,
                              long pos, long s, long lp, long heads, long d) {
	const int mode = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
	for (long h = 0; h < heads; h++) {
		uint16_t *kh = kc + h * lp * d, *vh = vc + h * lp * d;
		for (long i = 0; i < s; i++) {
			long j = pos + i;
			const float *kr = k + i * ldk + h * d;
			uint16_t *kq = kh + (j / 32) * d * 32 + j % 32;
			long e = 0;
			for (; e + 8 <= d; e += 8) {
				uint16_t t[8];
				_mm_storeu_si128((__m128i *)t, _mm256_cvtps_ph(_mm256_loadu_ps(kr + e), mode));
				for (int c = 0; c < 8; c++)
					kq[(e + c) * 32] = t[c];
			}
			for (; e < d; e++)
				kq[e * 32] = (uint16_t)_cvtss_sh(kr[e], mode);
			chorus_f32_to_f16(vh + j * d, v + i * ldv + h * d, (size_t)d);
		}
	}
}

// Decoding attention for one head straight from the cache, AVX-512 only: no packing, no tiles
// of padding rows. Scores take one 32-key panel at a time (two 16-key halves, the head
// dimension split in even and odd steps: four FMA chains), the softmax is softmax_exp's, and
// the ·V product streams the value rows once for all rows (one row: even and odd positions in
// separate accumulators, eight chains). f16 caches are widened in registers (F16C).
#define KVLOAD_F32(ptr) _mm512_loadu_ps(ptr)
#define KVLOAD_F32_MASK(m, ptr) _mm512_maskz_loadu_ps(m, ptr)
#define KVLOAD_F16(ptr) _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(ptr)))
#define KVLOAD_F16_MASK(m, ptr) _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, ptr))

#define ATTN_KV_DECODE(NAME, WT, LOAD, LOADM)                                                     \
	AVX512 static void NAME(long rows, long kn, long d, float scale, const float *q, long ldq,        \
	                        const WT *kp, const WT *v, long ldv, float *s, long causal, float *out,   \
	                        long ldo) {                                                               \
		long np = (kn + 31) / 32, lds = np * 32;                                                  \
		__m512 vs = _mm512_set1_ps(scale);                                                        \
		for (long pn = 0; pn < np; pn++) {                                                        \
			const WT *kq = kp + pn * d * 32;                                                      \
			for (long r = 0; r < rows; r++) {                                                     \
				const float *qr = q + r * ldq;                                                    \
				__m512 a0 = _mm512_setzero_ps(), a1 = a0, b0 = a0, b1 = a0;                       \
				long e = 0;                                                                       \
				for (; e + 2 <= d; e += 2) {                                                      \
					__m512 x0 = _mm512_set1_ps(qr[e]), x1 = _mm512_set1_ps(qr[e + 1]);            \
					a0 = _mm512_fmadd_ps(x0, LOAD(kq + e * 32), a0);                              \
					a1 = _mm512_fmadd_ps(x0, LOAD(kq + e * 32 + 16), a1);                         \
					b0 = _mm512_fmadd_ps(x1, LOAD(kq + e * 32 + 32), b0);                         \
					b1 = _mm512_fmadd_ps(x1, LOAD(kq + e * 32 + 48), b1);                         \
				}                                                                                 \
				if (e < d) {                                                                      \
					__m512 x0 = _mm512_set1_ps(qr[e]);                                            \
					a0 = _mm512_fmadd_ps(x0, LOAD(kq + e * 32), a0);                              \
					a1 = _mm512_fmadd_ps(x0, LOAD(kq + e * 32 + 16), a1);                         \
				}                                                                                 \
				float *sr = s + r * lds + pn * 32;                                                \
				_mm512_storeu_ps(sr, _mm512_mul_ps(_mm512_add_ps(a0, b0), vs));                   \
				_mm512_storeu_ps(sr + 16, _mm512_mul_ps(_mm512_add_ps(a1, b1), vs));              \
			}                                                                                     \
		}                                                                                         \
		float rinv[4];                                                                            \
		softmax_exp(s, rows, kn, lds, causal, rinv);                                              \
		for (long c0 = 0; c0 < d; c0 += 64) {                                                     \
			long nc = d - c0 < 64 ? d - c0 : 64;                                                  \
			__mmask16 mk[4];                                                                      \
			for (int c = 0; c < 4; c++) {                                                         \
				long r = nc - 16 * c;                                                             \
				mk[c] = r <= 0 ? 0 : r >= 16 ? 0xffff : (__mmask16)((1u << r) - 1);               \
			}                                                                                     \
			if (rows == 1) {                                                                      \
				__m512 a[4], b[4];                                                                \
				for (int c = 0; c < 4; c++)                                                       \
					a[c] = b[c] = _mm512_setzero_ps();                                            \
				long j = 0;                                                                       \
				for (; j + 2 <= kn; j += 2) {                                                     \
					const WT *v0 = v + j * ldv + c0, *v1 = v0 + ldv;                              \
					__m512 p0 = _mm512_set1_ps(s[j]), p1 = _mm512_set1_ps(s[j + 1]);              \
					for (int c = 0; c < 4; c++) {                                                 \
						a[c] = _mm512_fmadd_ps(p0, LOADM(mk[c], v0 + 16 * c), a[c]);              \
						b[c] = _mm512_fmadd_ps(p1, LOADM(mk[c], v1 + 16 * c), b[c]);              \
					}                                                                             \
				}                                                                                 \
				if (j < kn) {                                                                     \
					const WT *v0 = v + j * ldv + c0;                                              \
					__m512 p0 = _mm512_set1_ps(s[j]);                                             \
					for (int c = 0; c < 4; c++)                                                   \
						a[c] = _mm512_fmadd_ps(p0, LOADM(mk[c], v0 + 16 * c), a[c]);              \
				}                                                                                 \
				__m512 sc = _mm512_set1_ps(rinv[0]);                                              \
				for (int c = 0; c < 4; c++)                                                       \
					_mm512_mask_storeu_ps(out + c0 + 16 * c, mk[c],                               \
					                      _mm512_mul_ps(_mm512_add_ps(a[c], b[c]), sc));          \
				continue;                                                                         \
			}                                                                                     \
			__m512 a[4][4];                                                                       \
			for (int r = 0; r < 4; r++)                                                           \
				for (int c = 0; c < 4; c++)                                                       \
					a[r][c] = _mm512_setzero_ps();                                                \
			for (long j = 0; j < kn; j++) {                                                       \
				const WT *vr = v + j * ldv + c0;                                                  \
				__m512 x[4];                                                                      \
				for (int c = 0; c < 4; c++)                                                       \
					x[c] = LOADM(mk[c], vr + 16 * c);                                             \
				for (int r = 0; r < 4; r++) {                                                     \
					if (r < rows) {                                                               \
						__m512 p = _mm512_set1_ps(s[r * lds + j]);                                \
						for (int c = 0; c < 4; c++)                                               \
							a[r][c] = _mm512_fmadd_ps(p, x[c], a[r][c]);                          \
					}                                                                             \
				}                                                                                 \
			}                                                                                     \
			for (int r = 0; r < 4 && r < rows; r++) {                                             \
				__m512 sc = _mm512_set1_ps(rinv[r]);                                              \
				for (int c = 0; c < 4; c++)                                                       \
					_mm512_mask_storeu_ps(out + r * ldo + c0 + 16 * c, mk[c], _mm512_mul_ps(a[r][c], sc)); \
			}                                                                                     \
		}                                                                                         \
	}

ATTN_KV_DECODE(attn_kv_decode_f32, float, KVLOAD_F32, KVLOAD_F32_MASK)
ATTN_KV_DECODE(attn_kv_decode_f16, uint16_t, KVLOAD_F16, KVLOAD_F16_MASK)

int chorus_attn_kv_decode_f32(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const float *kp, const float *v, long ldv, float *s, long causal,
                              float *out, long ldo) {
	if (level_now() < 2 || rows > 4)
		return 0;
	attn_kv_decode_f32(rows, kn, d, scale, q, ldq, kp, v, ldv, s, causal, out, ldo);
	return 1;
}

int chorus_attn_kv_decode_f16(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const uint16_t *kp, const uint16_t *v, long ldv, float *s, long causal,
                              float *out, long ldo) {
	if (level_now() < 2 || rows > 4)
		return 0;
	attn_kv_decode_f16(rows, kn, d, scale, q, ldq, kp, v, ldv, s, causal, out, ldo);
	return 1;
}

// AdamW (see adamwGo in adamw.go, the reference order of operations): per element
//	g ← scale·g;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g·g
//	w ← w·decay − stepSize·m / (sqrt(v)·invSqrtBC2 + eps);  g ← 0
// The same roundings as the Go twin: separate multiplies and adds (no contraction into FMA),
// correctly rounded square root and division.
#define ADAMW_OPT __attribute__((optimize("fp-contract=off")))

AVX512 ADAMW_OPT static void adamw_avx512(float *w, float *g, float *m, float *v, long n, const float *k) {
	__m512 scale = _mm512_set1_ps(k[0]), b1 = _mm512_set1_ps(k[1]), omb1 = _mm512_set1_ps(k[2]);
	__m512 b2 = _mm512_set1_ps(k[3]), omb2 = _mm512_set1_ps(k[4]), step = _mm512_set1_ps(k[5]);
	__m512 ibc2 = _mm512_set1_ps(k[6]), eps = _mm512_set1_ps(k[7]), decay = _mm512_set1_ps(k[8]);
	for (long i = 0; i < n; i += 16) {
		__mmask16 mk = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
		__m512 gi = _mm512_mul_ps(_mm512_maskz_loadu_ps(mk, g + i), scale);
		__m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_maskz_loadu_ps(mk, m + i)), _mm512_mul_ps(omb1, gi));
		__m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_maskz_loadu_ps(mk, v + i)),
		                          _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
		__m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_sqrt_ps(vi), ibc2), eps);
		__m512 wi = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(mk, w + i), decay),
		                          _mm512_div_ps(_mm512_mul_ps(step, mi), den));
		_mm512_mask_storeu_ps(m + i, mk, mi);
		_mm512_mask_storeu_ps(v + i, mk, vi);
		_mm512_mask_storeu_ps(w + i, mk, wi);
		_mm512_mask_storeu_ps(g + i, mk, _mm512_setzero_ps());
	}
}

AVX2 ADAMW_OPT static void adamw_avx2(float *w, float *g, float *m, float *v, long n, const float *k) {
	__m256 scale = _mm256_set1_ps(k[0]), b1 = _mm256_set1_ps(k[1]), omb1 = _mm256_set1_ps(k[2]);
	__m256 b2 = _mm256_set1_ps(k[3]), omb2 = _mm256_set1_ps(k[4]), step = _mm256_set1_ps(k[5]);
	__m256 ibc2 = _mm256_set1_ps(k[6]), eps = _mm256_set1_ps(k[7]), decay = _mm256_set1_ps(k[8]);
	long i = 0;
	for (; i + 8 <= n; i += 8) {
		__m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), scale);
		__m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(omb1, gi));
		__m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
		__m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), ibc2), eps);
		__m256 wi = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(w + i), decay), _mm256_div_ps(_mm256_mul_ps(step, mi), den));
		_mm256_storeu_ps(m + i, mi);
		_mm256_storeu_ps(v + i, vi);
		_mm256_storeu_ps(w + i, wi);
		_mm256_storeu_ps(g + i, _mm256_setzero_ps());
	}
	for (; i < n; i++) {
		float gi = g[i] * k[0];
		float mi = k[1] * m[i] + k[2] * gi;
		float vi = k[3] * v[i] + k[4] * gi * gi;
		m[i] = mi;
		v[i] = vi;
		w[i] = w[i] * k[8] - k[5] * mi / (sqrtf(vi) * k[6] + k[7]);
		g[i] = 0;
	}
}

void chorus_adamw(float *w, float *g, float *m, float *v, long n, const float *k) {
	if (level_now() >= 2)
		adamw_avx512(w, g, m, v, n, k);
	else
		adamw_avx2(w, g, m, v, n, k);
}

#else // not x86: chorus_simd_level() is 0 and the Go side never calls the kernels below.

int chorus_simd_level(void) { return 0; }
void chorus_f16_to_f32(float *dst, const uint16_t *src, size_t n) { abort(); }
void chorus_f32_to_f16(uint16_t *dst, const float *src, size_t n) { abort(); }
void chorus_gemm_nt_f32(long m, long n, long k, float alpha, const float *x, long ldx,
                        const float *w, long ldw, const float *bias, float *out, long ldo) { abort(); }
void chorus_gemm_nt_f16(long m, long n, long k, float alpha, const float *x, long ldx,
                        const uint16_t *w, long ldw, const float *bias, float *out, long ldo) { abort(); }
void chorus_gemm_nn_small(long m, long n, long k, const float *a, long lda, const float *b,
                          long ldb, float *c, long ldc) { abort(); }
void chorus_gelu(float *out, const float *x, size_t n) { abort(); }
void chorus_softmax_rows(float *x, long rows, long cols, long ld, long causal) { abort(); }
void chorus_log_softmax(float *out, const float *x, size_t n) { abort(); }
void chorus_layernorm_rows(float *out, const float *x, const float *gamma, const float *beta,
                           long rows, long cols, float eps) { abort(); }
void chorus_set_level(int level) {}
long chorus_attn_panel(void) { abort(); }
void chorus_attn_pack_k(float *kp, const float *k, long ldk, long tk, long d, long pw) { abort(); }
void chorus_attn_rows(long rows, long kn, long d, float scale, const float *q, long ldq,
                      const float *kp, const float *v, long ldv, float *s, float *qt,
                      long causal, float *out, long ldo) { abort(); }

void chorus_kv_store_f32(float *kc, float *vc, const float *k, long ldk, const float *v, long ldv,
                         long pos, long s, long lp, long heads, long d) { abort(); }
void chorus_kv_store_f16(uint16_t *kc, uint16_t *vc, const float *k, long ldk, const float *v, long ldv,
                         long pos, long s, long lp, long heads, long d) { abort(); }
int chorus_attn_kv_decode_f32(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const float *kp, const float *v, long ldv, float *s, long causal,
                              float *out, long ldo) { abort(); }
int chorus_attn_kv_decode_f16(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const uint16_t *kp, const uint16_t *v, long ldv, float *s, long causal,
                              float *out, long ldo) { abort(); }

void chorus_gelu_backward(float *dx, const float *dout, const float *x, size_t n) { abort(); }

void chorus_col_sums_f64(double *acc, const float *x, long rows, long cols) { abort(); }

void chorus_layernorm_backward_rows(float *dx, double *gacc, double *bacc, const float *dout,
                                    const float *x, const float *gamma, long rows, long cols,
                                    float eps) { abort(); }

long chorus_argmax(const float *x, long n) { abort(); }
void chorus_add_rows_indexed(float *dst, const float *src, const int32_t *idx, const float *w, long n, long c) { abort(); }
void chorus_expert_ffn(float *dst, const float *x, const int32_t *idx, const float *w, long n, long c, long s,
                       const float *w1t, const float *b1, const float *w2r, float *h) { abort(); }

void chorus_adamw(float *w, float *g, float *m, float *v, long n, const float *k) { abort(); }

#endif
