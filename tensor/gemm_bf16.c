//go:build cgo && !noblas

// A bfloat16 GEMM for training (see SetMatmulBF16 in blas_cgo.go): C = alpha·op(A)·op(B) +
// beta·C on row-major float32 matrices whose operands are rounded to bfloat16 (round to
// nearest even) as they are packed, multiplied with AVX512-BF16's VDPBF16PS and accumulated in
// float32 — the "bf16 autocast" of mixed-precision training. VDPBF16PS does 32 multiply-adds
// per instruction where an FMA does 16, so where it issues as often as an FMA (Zen 4) the
// products run up to twice as fast as OpenBLAS's float32 SGEMM; Intel's cores issue it half as
// often, and there the AMX kernel below is the fast path.
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

// pack_b packs op(B) k [0, kc) × columns [0, nc) into panels of NR columns, kps ≥ ceil(kc/2)
// pairs each: dst[(c/NR)·kps·NR + q·NR + c%NR] = pair(op(B)[2q][c], op(B)[2q+1][c]), zero
// beyond (AMX pads a panel's pairs to whole tiles of 16).
BF16 static void pack_b(uint32_t *dst, const float *b, long ldb, int trans, long kc, long nc, long kps) {
	long kp = (kc + 1) / 2;
	for (long c0 = 0; c0 < nc; c0 += NR) {
		uint32_t *d = dst + (c0 / NR) * kps * NR;
		if (kps > kp)
			memset(d + kp * NR, 0, (size_t)(kps - kp) * NR * sizeof(uint32_t));
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

// out stores a tile's rows of NR = 32 sums into C: c = alpha·sum + (over ? bias or 0 : c),
// columns beyond nr left alone (m0, m1 mask the two 16-column halves).
struct out {
	__m512 va, z0, z1;
	__mmask16 m0, m1, l0, l1;
	int over;
};

BF16 static inline struct out out_begin(float alpha, long nr, int over, const float *bias) {
	struct out o;
	o.va = _mm512_set1_ps(alpha);
	o.over = over;
	o.m0 = nr >= 16 ? 0xffff : (__mmask16)((1u << nr) - 1);
	o.m1 = nr <= 16 ? 0 : nr >= 32 ? 0xffff : (__mmask16)((1u << (nr - 16)) - 1);
	o.l0 = over ? 0 : o.m0;
	o.l1 = over ? 0 : o.m1;
	o.z0 = o.z1 = _mm512_setzero_ps();
	if (over && bias) {
		o.z0 = _mm512_maskz_loadu_ps(o.m0, bias);
		o.z1 = _mm512_maskz_loadu_ps(o.m1, bias + 16);
	}
	return o;
}

// out_full stores one whole row of 32 (nr = NR).
BF16 static inline void out_full(const struct out *o, float *ci, __m512 s0, __m512 s1) {
	__m512 c0 = o->over ? o->z0 : _mm512_loadu_ps(ci);
	__m512 c1 = o->over ? o->z1 : _mm512_loadu_ps(ci + 16);
	_mm512_storeu_ps(ci, _mm512_fmadd_ps(o->va, s0, c0));
	_mm512_storeu_ps(ci + 16, _mm512_fmadd_ps(o->va, s1, c1));
}

// out_row stores one row's nr ≤ 32 values.
BF16 static inline void out_row(const struct out *o, float *ci, __m512 s0, __m512 s1) {
	_mm512_mask_storeu_ps(ci, o->m0, _mm512_fmadd_ps(o->va, s0, _mm512_mask_loadu_ps(o->z0, o->l0, ci)));
	if (o->m1)
		_mm512_mask_storeu_ps(ci + 16, o->m1, _mm512_fmadd_ps(o->va, s1, _mm512_mask_loadu_ps(o->z1, o->l1, ci + 16)));
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
	struct out o = out_begin(alpha, nr, over, bias);
	if (mr == MR && nr == NR) {
		for (int i = 0; i < MR; i++)
			out_full(&o, c + i * ldc, acc[i][0], acc[i][1]);
		return;
	}
	for (long i = 0; i < mr; i++)
		out_row(&o, c + i * ldc, acc[i][0], acc[i][1]);
}

// prescale applies beta to C before the blocked product accumulates into it, and reports
// whether there is a product to add. beta = 0 never reads C (it may hold NaN garbage): the first
// K block stores over it, bias (when given, with beta 0 only) added per column as it does.
static int prescale(long m, long n, float alpha, float *c, long ldc, long k, float beta, const float *bias) {
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
	return k != 0 && alpha != 0;
}

// ---- AMX ----
//
// On CPUs with AMX (Sapphire Rapids and later Xeons) the same product runs on the tile unit:
// TDPBF16PS multiplies a 16×32 bfloat16 tile of A by a 32×16 tile of B (16 rows of pairs, the
// layout pack_b already writes: a 16-column half of an NR panel, loaded with a row stride of
// NR pairs) into a 16×16 float32 tile, 16× the work of one VDPBF16PS. On those cores
// VDPBF16PS issues half as often as a float32 FMA — no more multiply-adds per cycle — so with
// its packing the AVX512-BF16 kernel above is slower than OpenBLAS and AMX is the fast path. The register tile is 32×32 (four C tiles, two A and two
// B tiles: the eight tile registers); A is packed as 32-row panels of rows, each row the
// bfloat16 pairs of its k values (a tile loads 16 rows with a stride of the padded pair count).
// K blocks are padded with zero pairs to whole tiles of 16.

#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>

#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))

enum { AMR = 32, AKC = 512 };

int chorus_cpu_amd(void) {
	__builtin_cpu_init();
	return __builtin_cpu_is("amd");
}

// chorus_amx_init reports whether AMX-BF16 can be used, asking Linux for the tile data state
// (arch_prctl ARCH_REQ_XCOMP_PERM; without it the first tile instruction faults). Permission
// is per process; the Go side calls this once.
int chorus_amx_init(void) {
	unsigned a, b, c, d;
	if (!chorus_bf16_supported() || !__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return 0;
	if (!(d & (1u << 24)) || !(d & (1u << 22))) // AMX-TILE, AMX-BF16
		return 0;
	enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
	return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

// pack_a_amx packs op(A) rows [0, mc) × k [0, kc) as rows of kps pairs:
// dst[r·kps + q] = pair(op(A)[r][2q], op(A)[r][2q+1]), zero beyond mc rows (up to a whole
// panel of AMR) and beyond ceil(kc/2) pairs.
BF16 static void pack_a_amx(uint32_t *dst, const float *a, long lda, int trans, long mc, long kc, long kps) {
	long kp = (kc + 1) / 2, mcp = (mc + AMR - 1) / AMR * AMR;
	if (!trans) {
		// A row's k values are contiguous: 32 of them convert to 16 pairs in one instruction.
		for (long r = 0; r < mc; r++) {
			const float *row = a + r * lda;
			uint32_t *d = dst + r * kps;
			long q = 0;
			for (; 2 * q + 32 <= kc; q += 16)
				_mm512_storeu_si512(d + q, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(row + 2 * q + 16),
				                                                         _mm512_loadu_ps(row + 2 * q)));
			for (; q < kp; q++)
				d[q] = pair(row[2 * q], 2 * q + 1 < kc ? row[2 * q + 1] : 0);
			for (; q < kps; q++)
				d[q] = 0;
		}
	} else {
		// op(A)[r][p] = a[p·lda + r]: two k rows give the pairs of 8 rows at one q; eight
		// such q form an 8×8 block of pairs, transposed in registers into 8 rows' runs.
		long r = 0;
		long q8 = (kc / 2) / 8 * 8; // pairs in whole blocks of 8 with both k values present
		for (; r + 8 <= mc; r += 8) {
			for (long q = 0; q < q8; q += 8) {
				__m256i v[8];
				for (int j = 0; j < 8; j++) {
					const float *p0 = a + 2 * (q + j) * lda + r;
					__m128i lo = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(p0));
					__m128i hi = (__m128i)_mm256_cvtneps_pbh(_mm256_loadu_ps(p0 + lda));
					v[j] = _mm256_set_m128i(_mm_unpackhi_epi16(lo, hi), _mm_unpacklo_epi16(lo, hi));
				}
				tr8(v);
				for (int j = 0; j < 8; j++)
					_mm256_storeu_si256((__m256i *)(dst + (r + j) * kps + q), v[j]);
			}
		}
		for (long rr = 0; rr < mc; rr++) {
			uint32_t *d = dst + rr * kps;
			for (long q = rr < r ? q8 : 0; q < kp; q++)
				d[q] = pair(a[2 * q * lda + rr], 2 * q + 1 < kc ? a[(2 * q + 1) * lda + rr] : 0);
			for (long q = kp; q < kps; q++)
				d[q] = 0;
		}
	}
	if (mcp > mc)
		memset(dst + mc * kps, 0, (size_t)(mcp - mc) * kps * sizeof(uint32_t));
}

// amx_config sets up the eight tiles: 0-3 the 2×2 C tiles (16 rows of 16 floats), 4-5 the two
// A tiles (16 rows of 16 pairs), 6-7 the two B tiles (16 pair rows of 16 columns).
AMX static void amx_config(void) {
	struct {
		uint8_t palette, start_row, reserved[14];
		uint16_t colsb[16];
		uint8_t rows[16];
	} __attribute__((packed, aligned(64))) cfg;
	memset(&cfg, 0, sizeof cfg);
	cfg.palette = 1;
	for (int t = 0; t < 8; t++) {
		cfg.colsb[t] = 64;
		cfg.rows[t] = 16;
	}
	_tile_loadconfig(&cfg);
}

// kernel_amx: the 32×32 tile of C at c (mr×nr valid) from a packed A panel (AMR rows of kps
// pairs) and a B panel (kps pair rows of NR columns); over as in kernel.
AMX static void kernel_amx(long kps, const uint32_t *a, const uint32_t *b, float alpha, float *c, long ldc,
                           long mr, long nr, int over, const float *bias) {
	float t[4][16 * 16] __attribute__((aligned(64)));
	_tile_zero(0);
	_tile_zero(1);
	_tile_zero(2);
	_tile_zero(3);
	for (long q = 0; q < kps; q += 16) {
		_tile_loadd(4, a + q, kps * 4);
		_tile_loadd(5, a + 16 * kps + q, kps * 4);
		_tile_loadd(6, b + q * NR, NR * 4);
		_tile_loadd(7, b + q * NR + 16, NR * 4);
		_tile_dpbf16ps(0, 4, 6);
		_tile_dpbf16ps(1, 4, 7);
		_tile_dpbf16ps(2, 5, 6);
		_tile_dpbf16ps(3, 5, 7);
	}
	_tile_stored(0, t[0], 64);
	_tile_stored(1, t[1], 64);
	_tile_stored(2, t[2], 64);
	_tile_stored(3, t[3], 64);
	struct out o = out_begin(alpha, nr, over, bias);
	if (mr == AMR && nr == NR) {
		for (int i = 0; i < AMR; i++)
			out_full(&o, c + i * ldc, _mm512_load_ps(t[i / 16 * 2] + i % 16 * 16),
			         _mm512_load_ps(t[i / 16 * 2 + 1] + i % 16 * 16));
		return;
	}
	for (long i = 0; i < mr; i++)
		out_row(&o, c + i * ldc, _mm512_load_ps(t[i / 16 * 2] + i % 16 * 16), _mm512_load_ps(t[i / 16 * 2 + 1] + i % 16 * 16));
}

// gemm_blocked is the GotoBLAS loop nest both kernels run in: op(B) in KC×NC blocks packed
// into NR-column panels, op(A) in MC×KC blocks packed into panels of the kernel's rows (MR for
// AVX512-BF16, AMR for AMX, whose K blocks are also longer and padded to whole tiles).
AMX static void gemm_blocked(int amx, int transa, int transb, long m, long n, long k, float alpha, const float *a,
                             long lda, const float *b, long ldb, float beta, float *c, long ldc,
                             const float *bias) {
	if (!prescale(m, n, alpha, c, ldc, k, beta, bias))
		return;
	int over0 = beta == 0;
	long kcmax = amx ? AKC : KC, rows = amx ? AMR : MR;
	uint32_t *pb = scratch(&tl_pb, &tl_pb_cap, (size_t)NC * (kcmax / 2));
	uint32_t *pa = scratch(&tl_pa, &tl_pa_cap, (size_t)MC * (kcmax / 2));
	if (amx)
		amx_config();
	for (long jc = 0; jc < n; jc += NC) {
		long nc = n - jc < NC ? n - jc : NC;
		for (long pc = 0; pc < k; pc += kcmax) {
			long kc = k - pc < kcmax ? k - pc : kcmax, kps = (kc + 1) / 2;
			if (amx)
				kps = (kps + 15) / 16 * 16;
			// op(B)[pc][jc]: b[pc·ldb + jc] untransposed, b[jc·ldb + pc] transposed.
			pack_b(pb, transb ? b + jc * ldb + pc : b + pc * ldb + jc, ldb, transb, kc, nc, kps);
			for (long ic = 0; ic < m; ic += MC) {
				long mc = m - ic < MC ? m - ic : MC;
				const float *ablk = transa ? a + pc * lda + ic : a + ic * lda + pc;
				if (amx)
					pack_a_amx(pa, ablk, lda, transa, mc, kc, kps);
				else
					pack_a(pa, ablk, lda, transa, mc, kc);
				for (long jr = 0; jr < nc; jr += NR) {
					long nr = nc - jr < NR ? nc - jr : NR;
					const uint32_t *bp = pb + (jr / NR) * kps * NR;
					for (long ir = 0; ir < mc; ir += rows) {
						long mr = mc - ir < rows ? mc - ir : rows;
						float *cc = c + (ic + ir) * ldc + jc + jr;
						const float *bb = bias ? bias + jc + jr : NULL;
						// Both A layouts put panel ir at ir·kps pairs.
						if (amx)
							kernel_amx(kps, pa + ir * kps, bp, alpha, cc, ldc, mr, nr, over0 && pc == 0, bb);
						else
							kernel(kps, pa + ir * kps, bp, alpha, cc, ldc, mr, nr, over0 && pc == 0, bb);
					}
				}
			}
		}
	}
	if (amx)
		_tile_release();
}

void chorus_sgemm_bf16(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda,
                       const float *b, long ldb, float beta, float *c, long ldc, const float *bias) {
	gemm_blocked(0, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

// chorus_sgemm_amx is chorus_sgemm_bf16 on the tile unit (chorus_amx_init must have succeeded).
void chorus_sgemm_amx(int transa, int transb, long m, long n, long k, float alpha, const float *a, long lda,
                      const float *b, long ldb, float beta, float *c, long ldc, const float *bias) {
	gemm_blocked(1, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias);
}

#else

int chorus_bf16_supported(void) { return 0; }

int chorus_amx_init(void) { return 0; }

int chorus_cpu_amd(void) { return 0; }

void chorus_sgemm_amx(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                      long lda, const float *b, long ldb, float beta, float *c, long ldc,
                      const float *bias) {
	abort();
}

void chorus_sgemm_bf16(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc,
                       const float *bias) {
	abort();
}

#endif
