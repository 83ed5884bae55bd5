//go:build cgo && !noblas

// A bfloat16 GEMM for training (see SetMatmulBF16 in blas_cgo.go): C = alpha·op(A)·op(B) +
// beta·C on row-major float32 matrices whose operands are rounded to bfloat16 (round to
// nearest even) as they are packed, multiplied with AVX512-BF16's VDPBF16PS and accumulated in
// float32 — the "bf16 autocast" of mixed-precision training. VDPBF16PS does 32 multiply-adds
// per instruction where an FMA does 16, so on CPUs that have it (Zen 4, Cooper Lake, Sapphire
// Rapids and later) the products run up to twice as fast as OpenBLAS's float32 SGEMM.
//
// Layout (GotoBLAS-style blocking): for each KC×NC block of op(B), packed into panels of NR = 32
// columns; for each MC×KC block of op(A), packed into panels of MR = 8 rows; an MR×NR register
// tile of C (16 zmm accumulators) takes one packed A panel and one B panel. A packed element is a
// pair of bf16 values of consecutive k (the low half the even k), because VDPBF16PS multiplies
// such pairs: acc[j] += a[2q]·b[2q][j] + a[2q+1]·b[2q+1][j]. An odd K is padded with a zero.

#include "simd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

#define BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

enum { MR = 8, NR = 32, KC = 256, MC = 128, NC = 1024 };

int chorus_bf16_supported(void) {
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
}

// bf16 rounds x to bfloat16, to nearest even; NaNs stay NaN (quieted), as VCVTNEPS2BF16 does.
static inline uint32_t bf16(float x) {
	uint32_t u;
	memcpy(&u, &x, 4);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return (u >> 16) | 0x40u;
	u += 0x7fffu + ((u >> 16) & 1u);
	return u >> 16;
}

static inline uint32_t pair(float lo, float hi) { return bf16(lo) | bf16(hi) << 16; }

// tr8 transposes an 8×8 matrix of 32-bit values held one row per register.
BF16 static inline void tr8(__m256i r[8]) {
	__m256i t0 = _mm256_unpacklo_epi32(r[0], r[1]), t1 = _mm256_unpackhi_epi32(r[0], r[1]);
	__m256i t2 = _mm256_unpacklo_epi32(r[2], r[3]), t3 = _mm256_unpackhi_epi32(r[2], r[3]);
	__m256i t4 = _mm256_unpacklo_epi32(r[4], r[5]), t5 = _mm256_unpackhi_epi32(r[4], r[5]);
	__m256i t6 = _mm256_unpacklo_epi32(r[6], r[7]), t7 = _mm256_unpackhi_epi32(r[6], r[7]);
	__m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
	__m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
	__m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
	__m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
	r[0] = _mm256_permute2x128_si256(u0, u4, 0x20);
	r[1] = _mm256_permute2x128_si256(u1, u5, 0x20);
	r[2] = _mm256_permute2x128_si256(u2, u6, 0x20);
	r[3] = _mm256_permute2x128_si256(u3, u7, 0x20);
	r[4] = _mm256_permute2x128_si256(u0, u4, 0x31);
	r[5] = _mm256_permute2x128_si256(u1, u5, 0x31);
	r[6] = _mm256_permute2x128_si256(u2, u6, 0x31);
	r[7] = _mm256_permute2x128_si256(u3, u7, 0x31);
}

// pack8 converts 16 consecutive k values of each of 8 rows (row i at src + i·ld) to 8 bf16
// pairs and stores them transposed: dst[q·stride + i] for pair q = 0..7.
BF16 static inline void pack8(uint32_t *dst, long stride, const float *src, long ld) {
	__m256i r[8];
	for (int i = 0; i < 8; i++)
		r[i] = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i * ld));
	tr8(r);
	for (int q = 0; q < 8; q++)
		_mm256_storeu_si256((__m256i *)(dst + q * stride), r[q]);
}

// pack_a packs op(A) rows [0, mc) × k [0, kc) (a points at the block's first element) into
// panels of MR rows: dst[(r/MR)·kp·MR + q·MR + r%MR] = pair(op(A)[r][2q], op(A)[r][2q+1]), zero
// beyond mc rows and kc columns; kp = ceil(kc/2).
BF16 static void pack_a(uint32_t *dst, const float *a, long lda, int trans, long mc, long kc) {
	long kp = (kc + 1) / 2;
	for (long r0 = 0; r0 < mc; r0 += MR) {
		uint32_t *d = dst + (r0 / MR) * kp * MR;
		long mr = mc - r0 < MR ? mc - r0 : MR;
		if (!trans) {
			// Rows contiguous in k: 16 values of each of the panel's 8 rows convert to 8
			// pairs, transposed in registers into 8 contiguous pair groups.
			long q = 0;
			if (mr == MR)
				for (; 2 * q + 16 <= kc; q += 8)
					pack8(d + q * MR, MR, a + r0 * lda + 2 * q, lda);
			for (long r = 0; r < mr; r++) {
				const float *row = a + (r0 + r) * lda;
				for (long p = q; p < kp; p++)
					d[p * MR + r] = pair(row[2 * p], 2 * p + 1 < kc ? row[2 * p + 1] : 0);
			}
		} else {
			// op(A)[r][p] = a[p·lda + r]: one k row holds the panel's MR values contiguously;
			// two k rows interleave into MR pairs.
			for (long q = 0; q < kp; q++) {
				const float *p0 = a + 2 * q * lda + r0, *p1 = p0 + lda;
				int odd = 2 * q + 1 >= kc;
				if (mr == MR && !odd) {
					__m128i lo = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(p0));
					__m128i hi = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(p1));
					_mm_storeu_si128((__m128i *)(d + q * MR), _mm_unpacklo_epi16(lo, hi));
					_mm_storeu_si128((__m128i *)(d + q * MR + 4), _mm_unpackhi_epi16(lo, hi));
					continue;
				}
				for (long r = 0; r < MR; r++)
					d[q * MR + r] = r < mr ? pair(p0[r], odd ? 0 : p1[r]) : 0;
			}
		}
		if (mr < MR && !trans)
			for (long q = 0; q < kp; q++)
				for (long r = mr; r < MR; r++)
					d[q * MR + r] = 0;
	}
}

// pack_b packs op(B) k [0, kc) × columns [0, nc) into panels of NR columns:
// dst[(c/NR)·kp·NR + q·NR + c%NR] = pair(op(B)[2q][c], op(B)[2q+1][c]), zero beyond.
BF16 static void pack_b(uint32_t *dst, const float *b, long ldb, int trans, long kc, long nc) {
	long kp = (kc + 1) / 2;
	for (long c0 = 0; c0 < nc; c0 += NR) {
		uint32_t *d = dst + (c0 / NR) * kp * NR;
		long nr = nc - c0 < NR ? nc - c0 : NR;
		if (trans) {
			// op(B)[p][c] = b[c·ldb + p]: each column is a contiguous row of b; 8 columns at
			// a time are converted and transposed in registers.
			long c = 0;
			long qfull = kc >= 16 ? (kc - 16) / 16 * 8 + 8 : 0; // pairs covered by whole 16-value loads
			for (; c + 8 <= nr; c += 8)
				for (long q = 0; q < qfull; q += 8)
					pack8(d + q * NR + c, NR, b + (c0 + c) * ldb + 2 * q, ldb);
			for (long cc = 0; cc < nr; cc++) {
				const float *col = b + (c0 + cc) * ldb;
				for (long q = cc < c ? qfull : 0; q < kp; q++)
					d[q * NR + cc] = pair(col[2 * q], 2 * q + 1 < kc ? col[2 * q + 1] : 0);
			}
			for (long q = 0; q < kp; q++)
				for (long c = nr; c < NR; c++)
					d[q * NR + c] = 0;
		} else {
			// op(B)[p][c] = b[p·ldb + c]: two k rows interleave, 16 columns at a time.
			for (long q = 0; q < kp; q++) {
				const float *p0 = b + 2 * q * ldb + c0, *p1 = p0 + ldb;
				int odd = 2 * q + 1 >= kc;
				uint32_t *o = d + q * NR;
				long c = 0;
				if (!odd)
					for (; c + 16 <= nr; c += 16) {
						__m256i lo = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(p0 + c));
						__m256i hi = (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(p1 + c));
						__m256i x = _mm256_unpacklo_epi16(lo, hi); // columns 0-3, 8-11
						__m256i y = _mm256_unpackhi_epi16(lo, hi); // columns 4-7, 12-15
						_mm256_storeu_si256((__m256i *)(o + c), _mm256_permute2x128_si256(x, y, 0x20));
						_mm256_storeu_si256((__m256i *)(o + c + 8), _mm256_permute2x128_si256(x, y, 0x31));
					}
				for (; c < NR; c++)
					o[c] = c < nr ? pair(p0[c], odd ? 0 : p1[c]) : 0;
			}
		}
	}
}

// Packing buffers, one pair per OS thread (a cgo call runs on its goroutine's thread) and kept
// between calls: allocating them per call would map and fault in fresh pages every GEMM.
static __thread uint32_t *tl_pa, *tl_pb;
static __thread size_t tl_pa_cap, tl_pb_cap;

static uint32_t *scratch(uint32_t **buf, size_t *cap, size_t n) {
	if (*cap < n) {
		free(*buf);
		*buf = aligned_alloc(64, (n * 4 + 63) / 64 * 64);
		if (!*buf)
			abort();
		*cap = n;
	}
	return *buf;
}

// kernel accumulates alpha·(A panel · B panel) into the MR×NR tile c (mr×nr of it valid), or
// with over set stores it in place of what c held (the first K block of a beta = 0 product,
// which so never reads C).
BF16 static void kernel(long kp, const uint32_t *a, const uint32_t *b, float alpha, float *c, long ldc,
                        long mr, long nr, int over, const float *bias) {
	__m512 acc[MR][2];
	for (int i = 0; i < MR; i++)
		acc[i][0] = acc[i][1] = _mm512_setzero_ps();
	for (long q = 0; q < kp; q++) {
		__m512bh b0 = (__m512bh)_mm512_loadu_si512(b + q * NR);
		__m512bh b1 = (__m512bh)_mm512_loadu_si512(b + q * NR + 16);
		const uint32_t *ap = a + q * MR;
		for (int i = 0; i < MR; i++) {
			__m512bh ai = (__m512bh)_mm512_set1_epi32((int)ap[i]);
			acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
			acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
		}
	}
	__m512 va = _mm512_set1_ps(alpha);
	if (mr == MR && nr == NR) {
		__m512 z0 = _mm512_setzero_ps(), z1 = z0;
		if (over && bias) {
			z0 = _mm512_loadu_ps(bias);
			z1 = _mm512_loadu_ps(bias + 16);
		}
		for (int i = 0; i < MR; i++) {
			float *ci = c + i * ldc;
			__m512 o0 = over ? z0 : _mm512_loadu_ps(ci);
			__m512 o1 = over ? z1 : _mm512_loadu_ps(ci + 16);
			_mm512_storeu_ps(ci, _mm512_fmadd_ps(va, acc[i][0], o0));
			_mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(va, acc[i][1], o1));
		}
		return;
	}
	__mmask16 m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
	__mmask16 m1 = nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
	__mmask16 l0 = over ? 0 : m0, l1 = over ? 0 : m1;
	__m512 z0 = _mm512_setzero_ps(), z1 = z0;
	if (over && bias) {
		z0 = _mm512_maskz_loadu_ps(m0, bias);
		z1 = _mm512_maskz_loadu_ps(m1, bias + 16);
	}
	for (long i = 0; i < mr; i++) {
		float *ci = c + i * ldc;
		_mm512_mask_storeu_ps(ci, m0, _mm512_fmadd_ps(va, acc[i][0], _mm512_mask_loadu_ps(z0, l0, ci)));
		if (m1)
			_mm512_mask_storeu_ps(ci + 16, m1, _mm512_fmadd_ps(va, acc[i][1], _mm512_mask_loadu_ps(z1, l1, ci + 16)));
	}
}

BF16 void chorus_sgemm_bf16(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                            long lda, const float *b, long ldb, float beta, float *c, long ldc,
                            const float *bias) {
	// beta = 0 never reads C (it may hold NaN garbage): the first K block stores over it, bias
	// (when given, with beta 0 only) added per column as it does.
	if (bias && (beta != 0 || alpha == 0 || k == 0))
		abort(); // the Go side passes a bias only with beta 0 and a product to add it to
	if (beta != 1 && (beta != 0 || alpha == 0))
		for (long i = 0; i < m; i++) {
			float *ci = c + i * ldc;
			if (beta == 0)
				memset(ci, 0, n * sizeof(float));
			else
				for (long j = 0; j < n; j++)
					ci[j] *= beta;
		}
	if (k == 0 || alpha == 0)
		return;
	int over0 = beta == 0;
	uint32_t *pb = scratch(&tl_pb, &tl_pb_cap, (size_t)NC * (KC / 2));
	uint32_t *pa = scratch(&tl_pa, &tl_pa_cap, (size_t)MC * (KC / 2));
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += KC) {
			long kc = k - pc < KC ? k - pc : KC, kp = (kc + 1) / 2;
			// op(B)[pc][jc]: b[pc·ldb + jc] untransposed, b[jc·ldb + pc] transposed.
			pack_b(pb, transb ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, transb, kc, nc);
			for (long ic = 0; ic < m; ic += MC) {
				long mc = m - ic < MC ? m - ic : MC;
				pack_a(pa, transa ? a + pc * lda + ic : a + ic * lda + pc, lda, transa, mc, kc);
				for (long jr = 0; jr < nc; jr += NR) {
					long nr = nc - jr < NR ? nc - jr : NR;
					const uint32_t *bp = pb + (jr / NR) * kp * NR;
					for (long ir = 0; ir < mc; ir += MR) {
						long mr = mc - ir < MR ? mc - ir : MR;
						kernel(kp, pa + (ir / MR) * kp * MR, bp, alpha, c + (ic + ir) * ldc + jc + jr, ldc, mr, nr,
						       over0 && pc == 0, bias ? bias + jc + jr : NULL);
					}
				}
			}
		}
	}
}

#else

int chorus_bf16_supported(void) { return 0; }

void chorus_sgemm_bf16(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc,
                       const float *bias) {
	abort();
}

#endif
