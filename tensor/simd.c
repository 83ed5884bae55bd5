//go:build cgo && !noblas

// AVX2/FMA/F16C kernels for package tensor. Each function is compiled for its instruction set
// with a target attribute and chosen at run time (chorus_simd_level), so the binary still runs
// on CPUs without them: there the Go side uses its pure-Go twins and never calls in here.
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

int chorus_simd_level(void) {
	__builtin_cpu_init();
	if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
	      __builtin_cpu_supports("f16c")))
		return 0;
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	    __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
		return 2;
	return 1;
}

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
#define PREFETCH4(p)                                                                              \
	do {                                                                                          \
		_mm_prefetch((const char *)(w0 + pf + (p)), _MM_HINT_T0);                                 \
		_mm_prefetch((const char *)(w1 + pf + (p)), _MM_HINT_T0);                                 \
		_mm_prefetch((const char *)(w2 + pf + (p)), _MM_HINT_T0);                                 \
		_mm_prefetch((const char *)(w3 + pf + (p)), _MM_HINT_T0);                                 \
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
		/* Prefetch the next 4-row weight block while this one is consumed: each row is a    */ \
		/* short stream (k values) that the hardware prefetcher would only pick up late.      */ \
		long pf = j + 4 < n ? 4 * ldw : 0;                                                        \
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

AVX2 void chorus_gemm_nt_f32(long m, long n, long k, float alpha, const float *x, long ldx,
                             const float *w, long ldw, const float *bias, float *out, long ldo) {
	GEMM_NT_BODY(float, LOADW_F32, loadw_tail_f32)
}

AVX2 void chorus_gemm_nt_f16(long m, long n, long k, float alpha, const float *x, long ldx,
                             const uint16_t *w, long ldw, const float *bias, float *out, long ldo) {
	GEMM_NT_BODY(uint16_t, LOADW_F16, loadw_tail_f16)
}

/* ---------------------------------------------------------------- small-m GEMM, b plain */

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
			_mm256_maskstore_ps(o, mk[0], c00);
			_mm256_maskstore_ps(o + 8, mk[1], c01);
			_mm256_maskstore_ps(o + 16, mk[2], c02);
			_mm256_maskstore_ps(o + 24, mk[3], c03);
			if (two) {
				o += ldc;
				_mm256_maskstore_ps(o, mk[0], c10);
				_mm256_maskstore_ps(o + 8, mk[1], c11);
				_mm256_maskstore_ps(o + 16, mk[2], c12);
				_mm256_maskstore_ps(o + 24, mk[3], c13);
			}
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

AVX2 void chorus_gelu(float *out, const float *x, size_t n) {
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

// exp_sum stores e^(p[j]-mx) (when st) and returns their sum, accumulated in double so a row
// of thousands of probabilities sums to ~1 ulp.
AVX2_INLINE double exp_sum(float *dst, const float *p, long n, float mx) {
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

		for (j = 0; j < cols; j += 8) {
			long rem = cols - j < 8 ? cols - j : 8;
			__m256i m = mask8(rem);
			__m256 y = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(p + j, m), vh), vl), vinv);
			if (gamma)
				y = _mm256_mul_ps(y, _mm256_maskload_ps(gamma + j, m));
			if (beta)
				y = _mm256_add_ps(y, _mm256_maskload_ps(beta + j, m));
			_mm256_maskstore_ps(o + j, m, y);
		}
	}
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

#endif
