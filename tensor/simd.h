//go:build cgo && !noblas

// SIMD kernels behind the cgo build of package tensor (see simd_cgo.go).
//
// Every function here has a pure-Go twin (simd_go.go) that the !cgo || noblas build uses and
// that the cgo build falls back to on CPUs without AVX2+FMA+F16C (chorus_simd_level() == 0).
// Callers guarantee valid pointers and sizes: the Go wrappers check bounds before calling.
// Matrices are row-major with explicit leading dimensions (elements, not bytes).
#ifndef CHORUS_SIMD_H
#define CHORUS_SIMD_H

#include <stddef.h>
#include <stdint.h>

// 0: no usable SIMD (use the Go kernels); 1: AVX2+FMA+F16C; 2: also AVX-512 F/BW/VL/DQ.
int chorus_simd_level(void);

// IEEE binary16 <-> binary32, round to nearest even, NaNs quieted with payload kept (F16C).
void chorus_f16_to_f32(float *dst, const uint16_t *src, size_t n);
void chorus_f32_to_f16(uint16_t *dst, const float *src, size_t n);

// out[i*ldo+j] = alpha * sum_p x[i*ldx+p]*w[j*ldw+p] + (bias ? bias[j] : 0), i<m, j<n.
// Streams each weight row once for all m rows: meant for small m (decode), where a GEMM
// library spends its time packing.
void chorus_gemm_nt_f32(long m, long n, long k, float alpha, const float *x, long ldx,
                        const float *w, long ldw, const float *bias, float *out, long ldo);
void chorus_gemm_nt_f16(long m, long n, long k, float alpha, const float *x, long ldx,
                        const uint16_t *w, long ldw, const float *bias, float *out, long ldo);

// c[i*ldc+j] = sum_p a[i*lda+p]*b[p*ldb+j], i<m, j<n (overwrites c). Small m only.
void chorus_gemm_nn_small(long m, long n, long k, const float *a, long lda, const float *b,
                          long ldb, float *c, long ldc);

// out = x*Phi(x) with the exact erf, |error| <= ~1.2e-7*max(1,|x|).
void chorus_gelu(float *out, const float *x, size_t n);

// dx += dout * GELU'(x), GELU' = Phi(x) + x*phi(x) (erf as chorus_gelu, exp to ~2 ulp).
void chorus_gelu_backward(float *dx, const float *dout, const float *x, size_t n);

// acc[j] += sum over r < rows of x[r*cols + j], j < cols, in double.
void chorus_col_sums_f64(double *acc, const float *x, long rows, long cols);

// LayerNorm backward over rows of cols values (see layerNormBackwardGo in backward.go): per row
// mean and r = 1/sqrt(var+eps) recomputed, dx += r*(g - mean(g) - xh*mean(g*xh)) with g =
// dout*gamma (dx may be NULL, gamma NULL means 1), gacc[j] += dout*xh, bacc[j] += dout; all in
// double.
void chorus_layernorm_backward_rows(float *dx, double *gacc, double *bacc, const float *dout,
                                    const float *x, const float *gamma, long rows, long cols,
                                    float eps);

// Row softmax in place on rows of length cols spaced ld apart. With causal >= 0, row i keeps
// its first min(cols, causal+i+1) >= 1 entries and the rest are set to 0.
void chorus_softmax_rows(float *x, long rows, long cols, long ld, long causal);

// out = x - logsumexp(x) for one row of n >= 1 values.
void chorus_log_softmax(float *out, const float *x, size_t n);

// LayerNorm of rows x[r*cols ...] with biased variance; gamma/beta may be NULL.
void chorus_layernorm_rows(float *out, const float *x, const float *gamma, const float *beta,
                           long rows, long cols, float eps);

// Fused attention for one head. chorus_attn_panel is the key-panel width of the kernels (32,
// for AVX2 and AVX-512 alike). chorus_attn_pack_k packs K_h [tk, d] (row stride ldk) into
// panels of pw keys: kp needs ceil(tk/pw)*pw*d floats. chorus_attn_rows then computes, for
// `rows` query rows q (stride ldq) against the first kn keys: S = scale·q·Kᵀ into s (rows ×
// ceil(kn/pw)*pw floats), the row softmax (causal as chorus_softmax_rows), and out = S·V with
// v of stride ldv. qt is scratch for 8*d + rows floats.
long chorus_attn_panel(void);
void chorus_attn_pack_k(float *kp, const float *k, long ldk, long tk, long d, long pw);
void chorus_attn_rows(long rows, long kn, long d, float scale, const float *q, long ldq,
                      const float *kp, const float *v, long ldv, float *s, float *qt,
                      long causal, float *out, long ldo);

// dst row idx[j] (rows of c values) += w[j]·src row j, for j < n (w NULL: weight 1): the
// scatter of a sparse expert block's outputs back to its tokens' rows. AVX2.
void chorus_add_rows_indexed(float *dst, const float *src, const int32_t *idx, const float *w, long n, long c);
void chorus_expert_ffn(float *dst, const float *x, const int32_t *idx, const float *w, long n, long c, long s,
                       const float *w1t, const float *b1, const float *w2r, float *h);

// Index of the largest of x[0..n), n < 2^31, the first on ties, NaNs ignored; -1 when no value
// exceeds -Inf (the caller scans those rare inputs itself). AVX-512 only.
long chorus_argmax(const float *x, long n);

// KV cache (kvcache.go): per head, keys in panels of 32 positions, kc[(j/32)*d*32 + e*32 +
// j%32], values in rows, vc[j*d + e]; head h's blocks start at h*lp*d (lp a multiple of 32).
// chorus_kv_store_* write s rows k, v [s, heads*d] (row strides ldk, ldv) at positions pos...
void chorus_kv_store_f32(float *kc, float *vc, const float *k, long ldk, const float *v, long ldv,
                         long pos, long s, long lp, long heads, long d);
void chorus_kv_store_f16(uint16_t *kc, uint16_t *vc, const float *k, long ldk, const float *v, long ldv,
                         long pos, long s, long lp, long heads, long d);

// chorus_attn_kv_decode_* run attention for rows <= 4 query rows q (stride ldq) of one head
// against its first kn cached positions: kp the head's key panels, v its value rows (stride
// ldv), s scratch for rows*ceil(kn/32)*32 floats, causal as chorus_softmax_rows. They return
// 0, doing nothing, where the CPU lacks AVX-512 or rows > 4 (the caller uses
// chorus_attn_rows).
int chorus_attn_kv_decode_f32(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const float *kp, const float *v, long ldv, float *s, long causal,
                              float *out, long ldo);
int chorus_attn_kv_decode_f16(long rows, long kn, long d, float scale, const float *q, long ldq,
                              const uint16_t *kp, const uint16_t *v, long ldv, float *s, long causal,
                              float *out, long ldo);

// One AdamW step over n parameters, gradients zeroed (see adamwGo in adamw.go); k holds
// scale, β1, 1−β1, β2, 1−β2, stepSize, 1/sqrt(1−β2^t), eps, decay.
void chorus_adamw(float *w, float *g, float *m, float *v, long n, const float *k);

// chorus_set_level overrides the detected level for kernels that have several (tests).
void chorus_set_level(int level);

// bfloat16 GEMM (gemm_bf16.c): C = alpha·op(A)·op(B) + beta·C on row-major float32 matrices,
// operands rounded to bfloat16 as they are packed, float32 accumulation; with bias (beta 0
// only) C = alpha·op(A)·op(B) + bias[j] per column. Only where chorus_bf16_supported()
// (AVX512-BF16).
int chorus_bf16_supported(void);
void chorus_sgemm_bf16(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                       long lda, const float *b, long ldb, float beta, float *c, long ldc,
                       const float *bias);

// The same product on AMX tiles (Sapphire Rapids and later), where chorus_amx_init() — which
// asks Linux for the tile state — returned 1. chorus_cpu_amd() reports an AMD CPU, whose
// AVX512-BF16 does twice float32's multiply-adds per cycle (Intel's the same: there AMX is the
// fast path).
int chorus_amx_init(void);
int chorus_cpu_amd(void);
void chorus_sgemm_amx(int transa, int transb, long m, long n, long k, float alpha, const float *a,
                      long lda, const float *b, long ldb, float beta, float *c, long ldc,
                      const float *bias);

#endif
