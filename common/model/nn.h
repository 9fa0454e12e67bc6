/*
 * nn.h - the transformer's numeric kernels: linear layers (through OpenBLAS
 * cblas_sgemm), LayerNorm, GELU, causal attention, softmax, each forward and
 * backward, each parallelised over a fork-join pool. Shared by the training
 * pass (model.c) and the KV-cache decoder (sampler.c); nothing here
 * allocates. Shapes are row-major; "(M,K)" means M rows of K floats.
 *
 * Every kernel partitions its work statically into one share per thread of
 * the pool and reduces partial sums in share order, so results depend only on
 * the inputs and the pool's thread count. Products with few rows (decoding)
 * are split by output column instead of by row.
 */
#ifndef AG_NN_H
#define AG_NN_H

#include <stddef.h>

#include "forkjoin.h"

#define AG_NN_LN_EPS 1e-5f

/* n floats, 64-byte aligned (cache lines, and whole vectors for the kernels);
 * released with free(). NULL when out of memory. */
float *ag_nn_alloc(size_t n);

/* out (M,N) = in (M,K) . w (N,K)^T + bias (N) [+ resid (M,N)].
 * bias and resid may be NULL; resid may equal out (in-place residual add). */
void ag_nn_linear(ag_forkjoin_t *fj, float *out, const float *in, const float *w, const float *bias,
                  const float *resid, int M, int N, int K);

/* Backward of ag_nn_linear. dout (M,N), in (M,K), w (N,K).
 * dinp (M,K) is overwritten (accumulate = 0) or added to (accumulate = 1);
 * dw (N,K) and dbias (N) are added to. dinp and dbias may be NULL. */
void ag_nn_linear_backward(ag_forkjoin_t *fj, float *dinp, float *dw, float *dbias,
                           const float *dout, const float *in, const float *w, int M, int N, int K,
                           int accumulate);

/* pre (M,N) = in . w^T + bias, post = GELU(pre), in one pass over the
 * pool (post may equal pre when pre is not needed afterwards). */
void ag_nn_linear_gelu(ag_forkjoin_t *fj, float *pre, float *post, const float *in, const float *w,
                       const float *bias, int M, int N, int K);

/* Backward through y = post . w^T + b with post = GELU(pre): dpre (M,K) is
 * overwritten with d/d pre; dw (N,K) and dbias (N) are added to. */
void ag_nn_linear_gelu_backward(ag_forkjoin_t *fj, float *dpre, float *dw, float *dbias,
                                const float *dout, const float *post, const float *pre,
                                const float *w, int M, int N, int K);

/* out (M,C) = LayerNorm(in (M,C)) * w + b; mean and rstd (M) may be NULL. */
void ag_nn_layernorm(ag_forkjoin_t *fj, float *out, float *mean, float *rstd, const float *in,
                     const float *w, const float *b, int M, int C);

/* Backward of ag_nn_layernorm: dinp (M,C) is added to, dw and db (C) are added
 * to. scratch holds 2 * C * threads floats for the per-thread partial sums. */
void ag_nn_layernorm_backward(ag_forkjoin_t *fj, float *dinp, float *dw, float *db,
                              const float *dout, const float *in, const float *w, const float *mean,
                              const float *rstd, int M, int C, float *scratch);

/* ln (M,K) = LayerNorm(x) * lnw + lnb (mean, rstd (M) may be NULL), then
 * out (M,N) = ln . w^T + bias, and gelu_out = GELU(out) if gelu_out is not
 * NULL: ag_nn_layernorm followed by ag_nn_linear(_gelu), in one region. */
void ag_nn_layernorm_linear(ag_forkjoin_t *fj, float *ln, float *mean, float *rstd, const float *x,
                            const float *lnw, const float *lnb, float *out, float *gelu_out,
                            const float *w, const float *bias, int M, int N, int K);

/* Backward of ag_nn_layernorm_linear without GELU: dln (M,K) receives
 * d/d ln, dx (M,K) is added d/d x; dw, dbias, dlnw, dlnb are added to.
 * scratch as for ag_nn_layernorm_backward. */
void ag_nn_linear_layernorm_backward(ag_forkjoin_t *fj, float *dx, float *dlnw, float *dlnb,
                                     float *dln, float *dw, float *dbias, const float *dout,
                                     const float *ln, const float *w, const float *x,
                                     const float *lnw, const float *mean, const float *rstd, int M,
                                     int N, int K, float *scratch);

/* Causal multi-head self-attention over whole sequences.
 * qkv (B,T,3C) holds q, k, v side by side, head h at columns h*hs..(h+1)*hs of
 * each; probs (B,H,T,T) receives the attention weights (lower triangle);
 * out (B,T,C). scratch: ag_nn_attention_scratch(T, C/H) floats per thread. */
void ag_nn_attention(ag_forkjoin_t *fj, float *out, float *probs, const float *qkv, int B, int T,
                     int C, int H, float *scratch);

/* Backward of ag_nn_attention: dqkv (B,T,3C) is overwritten. */
void ag_nn_attention_backward(ag_forkjoin_t *fj, float *dqkv, const float *dout, const float *probs,
                              const float *qkv, int B, int T, int C, int H, float *scratch);

size_t ag_nn_attention_scratch(int T, int hs);

/* Keys for attention scores are stored in tiles of AG_NN_KTILE keys: tile t
 * holds keys t*8 .. t*8+7 as (hs, 8), so key j of dimension d is at
 * kt[(j / 8) * hs * 8 + d * 8 + j % 8]. ag_nn_ktile_floats gives the size for
 * n keys; ag_nn_ktile_put stores key j (hs floats). */
#define AG_NN_KTILE 8
size_t ag_nn_ktile_floats(int n, int hs);
void ag_nn_ktile_put(float *kt, int j, const float *k, int hs);

/* One query row against n cached keys: out (hs) = softmax(q . K^T * scale) V,
 * keys kt in tiles, values v (n, ldv). Scores are computed for whole tiles:
 * scores holds n rounded up to 8 floats, and the unused keys of the last
 * tile must be finite (zero them when the cache is created). Used by the
 * decoder; the training pass computes the same function four rows at a time. */
void ag_nn_attend_row(float *out, const float *q, const float *kt, const float *v, int ldv, int n,
                      int hs, float scale, float *scores);

/* In-place softmax of x (n); returns log(sum(exp(x - max))) + max, the
 * log-partition, so log p_i = x_i - returned value. */
float ag_nn_softmax(float *x, int n);

#endif
