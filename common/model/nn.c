/*
 * nn.c - the transformer's numeric kernels (see nn.h).
 *
 * Products go through single-threaded cblas_sgemm calls, one per thread share
 * (rows of the output for forward and input-gradient products, rows of the
 * weight gradient for weight-gradient products, so no share ever adds into
 * another's memory). Everything else is written with GCC vector extensions,
 * eight floats wide, and compiled twice (AVX2 and baseline x86-64) with the
 * right copy picked at load time, so one binary runs fast on any x86-64.
 * exp() is a Cephes-style polynomial rather than libm's so that it vectorises;
 * it is used everywhere (softmax, GELU), scalar tails included, so that the
 * training pass and the decoder compute the same function.
 */
/* Vector values are only passed between inlined helpers, never across a
 * real call boundary, so the AVX calling-convention warning does not apply. */
#pragma GCC diagnostic ignored "-Wpsabi"
/* ISO C mode turns off a * b + c -> fma contraction; these kernels want it. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=fast")
#endif

#include "nn.h"

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SIMD __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SIMD
#endif
#define INLINE static inline __attribute__((always_inline))

INLINE v8f v8_load(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof(v));
    return v;
}

INLINE void v8_store(float *p, const v8f *v)
{
    memcpy(p, v, sizeof(*v));
}

/* Broadcast. Written as an addition because GCC builds a vector literal
 * {a, a, ...} lane by lane through the stack inside target clones; in inner
 * loops the kernels multiply by the scalar directly, which broadcasts too. */
INLINE v8f v8_set1(float a)
{
    const v8f zero = {0};
    return zero + a;
}

#define V8_SEL(m, a, b) ((v8f)(((m) & (v8i)(a)) | (~(m) & (v8i)(b))))
#define V8_MAX(a, b) V8_SEL((a) > (b), a, b)
#define V8_MIN(a, b) V8_SEL((a) < (b), a, b)

INLINE float v8_hsum(const v8f *v)
{
    const v8f x = *v;
    return ((x[0] + x[4]) + (x[1] + x[5])) + ((x[2] + x[6]) + (x[3] + x[7]));
}

INLINE float v8_hmax(const v8f *v)
{
    float m = (*v)[0];
    for (int i = 1; i < 8; i++)
        m = (*v)[i] > m ? (*v)[i] : m;
    return m;
}

/* Cephes expf: exp(x) = 2^n * exp(r), |r| <= ln2/2, degree-6 polynomial. */
#define EXP_LO -87.0f
#define EXP_HI 88.0f
#define EXP_LOG2E 1.44269504088896341f
#define EXP_C1 0.693359375f
#define EXP_C2 -2.12194440e-4f
#define EXP_P0 1.9875691500e-4f
#define EXP_P1 1.3981999507e-3f
#define EXP_P2 8.3334519073e-3f
#define EXP_P3 4.1665795894e-2f
#define EXP_P4 1.6666665459e-1f
#define EXP_P5 5.0000001201e-1f

INLINE void v8_exp(v8f *px)
{
    v8f x = *px;
    x = V8_MIN(V8_MAX(x, v8_set1(EXP_LO)), v8_set1(EXP_HI));
    v8f fx = x * EXP_LOG2E + 0.5f;
    v8i n = __builtin_convertvector(fx, v8i);
    v8f fn = __builtin_convertvector(n, v8f);
    n += (v8i)(fn > fx); /* truncation -> floor: subtract 1 where it rounded up */
    fn = __builtin_convertvector(n, v8f);
    x = x - fn * EXP_C1 - fn * EXP_C2;
    v8f z = x * x;
    v8f y = ((((EXP_P0 * x + EXP_P1) * x + EXP_P2) * x + EXP_P3) * x + EXP_P4) * x + EXP_P5;
    y = y * z + x + 1.0f;
    v8i e = (n + 127) << 23;
    *px = y * (v8f)e;
}

static inline float s_exp(float x)
{
    x = x < EXP_LO ? EXP_LO : (x > EXP_HI ? EXP_HI : x);
    float fn = floorf(x * EXP_LOG2E + 0.5f);
    int32_t n = (int32_t)fn;
    x = x - fn * EXP_C1 - fn * EXP_C2;
    float z = x * x;
    float y = ((((EXP_P0 * x + EXP_P1) * x + EXP_P2) * x + EXP_P3) * x + EXP_P4) * x + EXP_P5;
    y = y * z + x + 1.0f;
    uint32_t bits = (uint32_t)(n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof(scale));
    return y * scale;
}

float *ag_nn_alloc(size_t n)
{
    size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
    return aligned_alloc(64, bytes ? bytes : 64);
}

/* y (n) += a * x (n) */
INLINE void s_axpy(float *y, float a, const float *x, int n)
{
    int i = 0;
    v8f va = v8_set1(a);
    for (; i + 8 <= n; i += 8) {
        v8f r = v8_load(y + i) + va * v8_load(x + i);
        v8_store(y + i, &r);
    }
    for (; i < n; i++)
        y[i] += a * x[i];
}

/* ---------------------------------------------------------------- softmax */

SIMD static float s_softmax(float *x, int n)
{
    int i = 0;
    float mx = -INFINITY;
    if (n >= 8) {
        v8f vm = v8_load(x);
        for (i = 8; i + 8 <= n; i += 8) {
            v8f v = v8_load(x + i);
            vm = V8_MAX(vm, v);
        }
        mx = v8_hmax(&vm);
    }
    for (; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    v8f vsum = v8_set1(0.0f);
    v8f vmx = v8_set1(mx);
    for (i = 0; i + 8 <= n; i += 8) {
        v8f v = v8_load(x + i) - vmx;
        v8_exp(&v);
        vsum += v;
        v8_store(x + i, &v);
    }
    float sum = v8_hsum(&vsum);
    for (; i < n; i++) {
        x[i] = s_exp(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    v8f vinv = v8_set1(inv);
    for (i = 0; i + 8 <= n; i += 8) {
        v8f v = v8_load(x + i) * vinv;
        v8_store(x + i, &v);
    }
    for (; i < n; i++)
        x[i] *= inv;
    return mx + logf(sum);
}

float ag_nn_softmax(float *x, int n)
{
    return s_softmax(x, n);
}

/* ------------------------------------------------------------------- gelu */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f

/* tanh(u) = 1 - 2 / (exp(2u) + 1); exact at the clamped ends (+-1). */
SIMD static void s_gelu_range(float *out, const float *in, long lo, long hi)
{
    long i = lo;
    for (; i + 8 <= hi; i += 8) {
        v8f x = v8_load(in + i);
        v8f u = 2.0f * GELU_K * (x + GELU_A * x * x * x);
        v8_exp(&u);
        v8f th = 1.0f - 2.0f / (u + 1.0f);
        v8f y = 0.5f * x * (1.0f + th);
        v8_store(out + i, &y);
    }
    for (; i < hi; i++) {
        float x = in[i];
        float th = 1.0f - 2.0f / (s_exp(2.0f * GELU_K * (x + GELU_A * x * x * x)) + 1.0f);
        out[i] = 0.5f * x * (1.0f + th);
    }
}

SIMD static void s_gelu_bwd_range(float *dinp, const float *in, const float *dout, long lo, long hi)
{
    long i = lo;
    for (; i + 8 <= hi; i += 8) {
        v8f x = v8_load(in + i);
        v8f u = 2.0f * GELU_K * (x + GELU_A * x * x * x);
        v8_exp(&u);
        v8f th = 1.0f - 2.0f / (u + 1.0f);
        v8f g = 0.5f * (1.0f + th) +
                0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        v8f r = g * v8_load(dout + i);
        v8_store(dinp + i, &r);
    }
    for (; i < hi; i++) {
        float x = in[i];
        float th = 1.0f - 2.0f / (s_exp(2.0f * GELU_K * (x + GELU_A * x * x * x)) + 1.0f);
        float g = 0.5f * (1.0f + th) +
                  0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * GELU_A * x * x);
        dinp[i] = g * dout[i];
    }
}

/* ----------------------------------------------------------------- linear */

typedef struct {
    float *out, *gelu_out;
    const float *in, *w, *bias, *resid;
    int M, N, K;
    int split_m;
} linear_ctx_t;

/* Writes resid + bias into out rows [r0,r1) x cols [c0,c1) so sgemm can add
 * onto it with beta = 1. */
SIMD static void s_prefill(float *out, const float *bias, const float *resid, int N, long r0,
                           long r1, long c0, long c1)
{
    for (long r = r0; r < r1; r++) {
        float *o = out + r * N;
        const float *res = resid ? resid + r * N : NULL;
        long c = c0;
        for (; c + 8 <= c1; c += 8) {
            v8f v = res ? v8_load(res + c) : v8_set1(0.0f);
            if (bias)
                v += v8_load(bias + c);
            v8_store(o + c, &v);
        }
        for (; c < c1; c++)
            o[c] = (res ? res[c] : 0.0f) + (bias ? bias[c] : 0.0f);
    }
}

/* Rows [lo, hi) of the output, all columns. */
static void s_linear_rows(const linear_ctx_t *c, long lo, long hi)
{
    const float beta = (c->bias || c->resid) ? 1.0f : 0.0f;
    if (hi <= lo)
        return;
    if (beta != 0.0f && !(c->resid == c->out && !c->bias))
        s_prefill(c->out, c->bias, c->resid, c->N, lo, hi, 0, c->N);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(hi - lo), c->N, c->K, 1.0f,
                c->in + lo * c->K, c->K, c->w, c->K, beta, c->out + lo * c->N, c->N);
    if (c->gelu_out)
        s_gelu_range(c->gelu_out, c->out, lo * c->N, hi * c->N);
}

/* Columns [lo, hi) of the output, all rows (few rows: decoding). */
static void s_linear_cols(const linear_ctx_t *c, long lo, long hi)
{
    const float beta = (c->bias || c->resid) ? 1.0f : 0.0f;
    if (hi <= lo)
        return;
    if (beta != 0.0f && !(c->resid == c->out && !c->bias))
        s_prefill(c->out, c->bias, c->resid, c->N, 0, c->M, lo, hi);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, c->M, (int)(hi - lo), c->K, 1.0f, c->in,
                c->K, c->w + lo * c->K, c->K, beta, c->out + lo, c->N);
    for (long m = 0; c->gelu_out && m < c->M; m++)
        s_gelu_range(c->gelu_out + m * c->N, c->out + m * c->N, lo, hi);
}

static void s_linear_share(void *arg, int index, int count)
{
    const linear_ctx_t *c = arg;
    long lo, hi;
    if (c->split_m) {
        ag_forkjoin_split(c->M, index, count, 8, &lo, &hi);
        s_linear_rows(c, lo, hi);
    } else {
        ag_forkjoin_split(c->N, index, count, 16, &lo, &hi);
        s_linear_cols(c, lo, hi);
    }
}

void ag_nn_linear(ag_forkjoin_t *fj, float *out, const float *in, const float *w, const float *bias,
                  const float *resid, int M, int N, int K)
{
    int n = ag_forkjoin_threads(fj);
    linear_ctx_t c = {out, NULL, in, w, bias, resid, M, N, K, M >= 32 * n || N < 16 * n};
    ag_forkjoin_run_work(fj, s_linear_share, &c, 2.0 * M * N * K);
}

void ag_nn_linear_gelu(ag_forkjoin_t *fj, float *pre, float *post, const float *in, const float *w,
                       const float *bias, int M, int N, int K)
{
    int n = ag_forkjoin_threads(fj);
    linear_ctx_t c = {pre, post, in, w, bias, NULL, M, N, K, M >= 32 * n || N < 16 * n};
    ag_forkjoin_run_work(fj, s_linear_share, &c, 2.0 * M * N * K);
}

typedef struct {
    float *dinp, *dw, *dbias;
    const float *dout, *in, *w, *gelu_in;
    int M, N, K;
    int accumulate;
} linear_bwd_ctx_t;

SIMD static void s_colsum(float *dbias, const float *dout, int M, int N, long c0, long c1)
{
    for (int m = 0; m < M; m++)
        s_axpy(dbias + c0, 1.0f, dout + (long)m * N + c0, (int)(c1 - c0));
}

static void s_linear_bwd_share(void *arg, int index, int count)
{
    const linear_bwd_ctx_t *c = arg;
    long lo, hi;
    if (c->dinp) {
        ag_forkjoin_split(c->M, index, count, 8, &lo, &hi);
        if (hi > lo)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(hi - lo), c->K, c->N, 1.0f,
                        c->dout + lo * c->N, c->N, c->w, c->K, c->accumulate ? 1.0f : 0.0f,
                        c->dinp + lo * c->K, c->K);
        if (hi > lo && c->gelu_in)
            s_gelu_bwd_range(c->dinp, c->gelu_in, c->dinp, lo * c->K, hi * c->K);
    }
    ag_forkjoin_split(c->N, index, count, 8, &lo, &hi);
    if (hi > lo) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(hi - lo), c->K, c->M, 1.0f,
                    c->dout + lo, c->N, c->in, c->K, 1.0f, c->dw + lo * c->K, c->K);
        if (c->dbias)
            s_colsum(c->dbias, c->dout, c->M, c->N, lo, hi);
    }
}

void ag_nn_linear_backward(ag_forkjoin_t *fj, float *dinp, float *dw, float *dbias,
                           const float *dout, const float *in, const float *w, int M, int N, int K,
                           int accumulate)
{
    linear_bwd_ctx_t c = {dinp, dw, dbias, dout, in, w, NULL, M, N, K, accumulate};
    ag_forkjoin_run(fj, s_linear_bwd_share, &c);
}

void ag_nn_linear_gelu_backward(ag_forkjoin_t *fj, float *dpre, float *dw, float *dbias,
                                const float *dout, const float *post, const float *pre,
                                const float *w, int M, int N, int K)
{
    linear_bwd_ctx_t c = {dpre, dw, dbias, dout, post, w, pre, M, N, K, 0};
    ag_forkjoin_run(fj, s_linear_bwd_share, &c);
}

/* -------------------------------------------------------------- layernorm */

typedef struct {
    float *out, *mean, *rstd, *dinp, *dw, *db, *scratch;
    const float *in, *w, *b, *dout, *cmean, *crstd;
    int M, C;
} ln_ctx_t;

SIMD static void s_ln_rows(const ln_ctx_t *c, long r0, long r1)
{
    const int C = c->C;
    for (long r = r0; r < r1; r++) {
        const float *x = c->in + r * C;
        float *o = c->out + r * C;
        int i = 0;
        v8f acc = v8_set1(0.0f);
        for (; i + 8 <= C; i += 8)
            acc += v8_load(x + i);
        float sum = v8_hsum(&acc);
        for (; i < C; i++)
            sum += x[i];
        float mu = sum / (float)C;
        v8f vmu = v8_set1(mu);
        acc = v8_set1(0.0f);
        for (i = 0; i + 8 <= C; i += 8) {
            v8f d = v8_load(x + i) - vmu;
            acc += d * d;
        }
        float var = v8_hsum(&acc);
        for (; i < C; i++)
            var += (x[i] - mu) * (x[i] - mu);
        float rs = 1.0f / sqrtf(var / (float)C + AG_NN_LN_EPS);
        v8f vrs = v8_set1(rs);
        for (i = 0; i + 8 <= C; i += 8) {
            v8f v = (v8_load(x + i) - vmu) * vrs * v8_load(c->w + i) + v8_load(c->b + i);
            v8_store(o + i, &v);
        }
        for (; i < C; i++)
            o[i] = (x[i] - mu) * rs * c->w[i] + c->b[i];
        if (c->mean)
            c->mean[r] = mu;
        if (c->rstd)
            c->rstd[r] = rs;
    }
}

static void s_ln_share(void *arg, int index, int count)
{
    const ln_ctx_t *c = arg;
    long lo, hi;
    ag_forkjoin_split(c->M, index, count, 1, &lo, &hi);
    s_ln_rows(c, lo, hi);
}

void ag_nn_layernorm(ag_forkjoin_t *fj, float *out, float *mean, float *rstd, const float *in,
                     const float *w, const float *b, int M, int C)
{
    ln_ctx_t c = {.out = out, .mean = mean, .rstd = rstd, .in = in, .w = w, .b = b, .M = M, .C = C};
    ag_forkjoin_run_work(fj, s_ln_share, &c, 10.0 * M * C);
}

SIMD static void s_ln_bwd_rows(const ln_ctx_t *c, float *pdw, float *pdb, long r0, long r1)
{
    const int C = c->C;
    for (long r = r0; r < r1; r++) {
        const float *x = c->in + r * C;
        const float *dy = c->dout + r * C;
        float *dx = c->dinp + r * C;
        const float mu = c->cmean[r], rs = c->crstd[r];
        const v8f vmu = v8_set1(mu), vrs = v8_set1(rs);
        v8f a1 = v8_set1(0.0f), a2 = v8_set1(0.0f);
        int i = 0;
        for (; i + 8 <= C; i += 8) {
            v8f dy8 = v8_load(dy + i);
            v8f nrm = (v8_load(x + i) - vmu) * vrs;
            v8f dn = dy8 * v8_load(c->w + i);
            a1 += dn;
            a2 += dn * nrm;
            v8f t = v8_load(pdb + i) + dy8;
            v8_store(pdb + i, &t);
            t = v8_load(pdw + i) + dy8 * nrm;
            v8_store(pdw + i, &t);
        }
        float s1 = v8_hsum(&a1), s2 = v8_hsum(&a2);
        for (; i < C; i++) {
            float nrm = (x[i] - mu) * rs;
            float dn = dy[i] * c->w[i];
            s1 += dn;
            s2 += dn * nrm;
            pdb[i] += dy[i];
            pdw[i] += dy[i] * nrm;
        }
        const float m1 = s1 / (float)C, m2 = s2 / (float)C;
        const v8f vm1 = v8_set1(m1), vm2 = v8_set1(m2);
        for (i = 0; i + 8 <= C; i += 8) {
            v8f nrm = (v8_load(x + i) - vmu) * vrs;
            v8f dn = v8_load(dy + i) * v8_load(c->w + i);
            v8f t = v8_load(dx + i) + (dn - vm1 - nrm * vm2) * vrs;
            v8_store(dx + i, &t);
        }
        for (; i < C; i++) {
            float nrm = (x[i] - mu) * rs;
            float dn = dy[i] * c->w[i];
            dx[i] += (dn - m1 - nrm * m2) * rs;
        }
    }
}

static void s_ln_bwd_share(void *arg, int index, int count)
{
    const ln_ctx_t *c = arg;
    long lo, hi;
    float *pdw = c->scratch + (long)index * 2 * c->C;
    float *pdb = pdw + c->C;
    memset(pdw, 0, sizeof(float) * 2 * (size_t)c->C);
    ag_forkjoin_split(c->M, index, count, 1, &lo, &hi);
    s_ln_bwd_rows(c, pdw, pdb, lo, hi);
}

void ag_nn_layernorm_backward(ag_forkjoin_t *fj, float *dinp, float *dw, float *db,
                              const float *dout, const float *in, const float *w, const float *mean,
                              const float *rstd, int M, int C, float *scratch)
{
    ln_ctx_t c = {.dinp = dinp,
                  .dw = dw,
                  .db = db,
                  .scratch = scratch,
                  .in = in,
                  .w = w,
                  .dout = dout,
                  .cmean = mean,
                  .crstd = rstd,
                  .M = M,
                  .C = C};
    ag_forkjoin_run(fj, s_ln_bwd_share, &c);
    int n = ag_forkjoin_threads(fj);
    for (int t = 0; t < n; t++) {
        const float *pdw = scratch + (long)t * 2 * C;
        for (int i = 0; i < C; i++) {
            dw[i] += pdw[i];
            db[i] += pdw[C + i];
        }
    }
}

/* ---------------------------------------------------- LayerNorm + linear */

/* With the rows split across the pool, a share's linear layer needs only the
 * LayerNorm rows the same share computed, so the two run as one region: one
 * synchronisation less, and the normalised rows are still in cache. */

typedef struct {
    ln_ctx_t ln;
    linear_ctx_t lin;
} ln_linear_ctx_t;

static void s_ln_linear_share(void *arg, int index, int count)
{
    const ln_linear_ctx_t *c = arg;
    long lo, hi;
    ag_forkjoin_split(c->lin.M, index, count, 8, &lo, &hi);
    s_ln_rows(&c->ln, lo, hi);
    s_linear_rows(&c->lin, lo, hi);
}

void ag_nn_layernorm_linear(ag_forkjoin_t *fj, float *ln, float *mean, float *rstd, const float *x,
                            const float *lnw, const float *lnb, float *out, float *gelu_out,
                            const float *w, const float *bias, int M, int N, int K)
{
    const int n = ag_forkjoin_threads(fj);
    if (M < 32 * n) {
        ag_nn_layernorm(fj, ln, mean, rstd, x, lnw, lnb, M, K);
        if (gelu_out)
            ag_nn_linear_gelu(fj, out, gelu_out, ln, w, bias, M, N, K);
        else
            ag_nn_linear(fj, out, ln, w, bias, NULL, M, N, K);
        return;
    }
    ln_linear_ctx_t c = {
        .ln = {.out = ln, .mean = mean, .rstd = rstd, .in = x, .w = lnw, .b = lnb, .M = M, .C = K},
        .lin = {out, gelu_out, ln, w, bias, NULL, M, N, K, 1}};
    ag_forkjoin_run_work(fj, s_ln_linear_share, &c, 2.0 * M * N * K);
}

typedef struct {
    linear_bwd_ctx_t lin;
    ln_ctx_t ln;
} linear_ln_bwd_ctx_t;

static void s_linear_ln_bwd_share(void *arg, int index, int count)
{
    const linear_ln_bwd_ctx_t *c = arg;
    s_linear_bwd_share((void *)&c->lin, index, count);
    long lo, hi;
    float *pdw = c->ln.scratch + (long)index * 2 * c->ln.C;
    memset(pdw, 0, sizeof(float) * 2 * (size_t)c->ln.C);
    ag_forkjoin_split(c->lin.M, index, count, 8, &lo, &hi);
    s_ln_bwd_rows(&c->ln, pdw, pdw + c->ln.C, lo, hi);
}

void ag_nn_linear_layernorm_backward(ag_forkjoin_t *fj, float *dx, float *dlnw, float *dlnb,
                                     float *dln, float *dw, float *dbias, const float *dout,
                                     const float *ln, const float *w, const float *x,
                                     const float *lnw, const float *mean, const float *rstd, int M,
                                     int N, int K, float *scratch)
{
    linear_ln_bwd_ctx_t c = {.lin = {dln, dw, dbias, dout, ln, w, NULL, M, N, K, 0},
                             .ln = {.dinp = dx,
                                    .scratch = scratch,
                                    .in = x,
                                    .w = lnw,
                                    .dout = dln,
                                    .cmean = mean,
                                    .crstd = rstd,
                                    .M = M,
                                    .C = K}};
    ag_forkjoin_run(fj, s_linear_ln_bwd_share, &c);
    const int n = ag_forkjoin_threads(fj);
    for (int t = 0; t < n; t++) {
        const float *pdw = scratch + (long)t * 2 * K;
        for (int i = 0; i < K; i++) {
            dlnw[i] += pdw[i];
            dlnb[i] += pdw[K + i];
        }
    }
}

/* -------------------------------------------------------------- attention */

size_t ag_nn_attention_scratch(int T, int hs)
{
    /* forward: key tiles, values, one row of scores;
     * backward: value tiles, keys, queries, output gradients, dS */
    const size_t tiles = ag_nn_ktile_floats(T, hs), rows = (size_t)T * (size_t)hs;
    const size_t pstride = ((size_t)T + 23) & ~(size_t)7;
    size_t fwd = tiles + rows + 4 * pstride;
    size_t bwd = tiles + 3 * rows + (size_t)T * pstride + 8;
    return (fwd > bwd ? fwd : bwd) + 16;
}

/* dst (T, hs) contiguous = T rows of hs floats at src with row stride ld.
 * The rows of one head sit 3*C floats apart in qkv, a stride that maps them
 * onto a few L1 sets; a contiguous copy avoids those conflict misses. */
SIMD static void s_gather(float *dst, const float *src, int T, int hs, int ld)
{
    for (int t = 0; t < T; t++) {
        const float *in = src + (long)t * ld;
        float *out = dst + (long)t * hs;
        int d = 0;
        for (; d + 8 <= hs; d += 8) {
            v8f v = v8_load(in + d);
            v8_store(out + d, &v);
        }
        for (; d < hs; d++)
            out[d] = in[d];
    }
}

size_t ag_nn_ktile_floats(int n, int hs)
{
    return ((size_t)n + AG_NN_KTILE - 1) / AG_NN_KTILE * AG_NN_KTILE * (size_t)hs;
}

/* scores (n) = scale * q (hs) . keys 0..n-1 stored as tiles (see nn.h): the
 * 8 keys of a tile are one vector per dimension, and a tile's dimensions
 * are contiguous, so this runs along memory. Even and odd dimensions go to
 * separate accumulators to hide the FMA latency. Whole tiles are computed:
 * s must hold n rounded up to 8, and the scores past n are meaningless. */
INLINE void s_scores(float *s, const float *q, const float *kt, int n, int hs, float scale)
{
    const long tile = (long)hs * AG_NN_KTILE;
    int j = 0;
    if (hs % 2 == 0) {
        for (; j + 32 <= n; j += 32) {
            const float *k0 = kt + (j / AG_NN_KTILE) * tile;
            v8f a0 = v8_set1(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (int d = 0; d < hs; d += 2) {
                const float *k = k0 + d * AG_NN_KTILE;
                const float qd = q[d], qe = q[d + 1];
                a0 += qd * v8_load(k);
                a1 += qd * v8_load(k + tile);
                a2 += qd * v8_load(k + 2 * tile);
                a3 += qd * v8_load(k + 3 * tile);
                b0 += qe * v8_load(k + 8);
                b1 += qe * v8_load(k + 8 + tile);
                b2 += qe * v8_load(k + 8 + 2 * tile);
                b3 += qe * v8_load(k + 8 + 3 * tile);
            }
            a0 = (a0 + b0) * scale;
            a1 = (a1 + b1) * scale;
            a2 = (a2 + b2) * scale;
            a3 = (a3 + b3) * scale;
            v8_store(s + j, &a0);
            v8_store(s + j + 8, &a1);
            v8_store(s + j + 16, &a2);
            v8_store(s + j + 24, &a3);
        }
    }
    for (; j < n; j += 8) {
        const float *k0 = kt + (j / AG_NN_KTILE) * tile;
        v8f a0 = v8_set1(0.0f), a1 = a0;
        int d = 0;
        for (; d + 2 <= hs; d += 2) {
            a0 += q[d] * v8_load(k0 + d * AG_NN_KTILE);
            a1 += q[d + 1] * v8_load(k0 + (d + 1) * AG_NN_KTILE);
        }
        if (d < hs)
            a0 += q[d] * v8_load(k0 + d * AG_NN_KTILE);
        a0 = (a0 + a1) * scale;
        v8_store(s + j, &a0);
    }
}

/* out (hs) = scale * sum_j p_j v_j, v (n, ldv); even and odd j accumulate
 * separately to hide the FMA latency. */
INLINE void s_weighted_sum(float *out, const float *p, const float *v, int ldv, int n, int hs,
                           float scale)
{
    int d = 0;
    for (; d + 32 <= hs; d += 32) {
        v8f a0 = v8_set1(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int j = 0;
        for (; j + 2 <= n; j += 2) {
            const float *vj = v + (long)j * ldv + d, *vk = vj + ldv;
            const float pj = p[j], pk = p[j + 1];
            a0 += pj * v8_load(vj);
            a1 += pj * v8_load(vj + 8);
            a2 += pj * v8_load(vj + 16);
            a3 += pj * v8_load(vj + 24);
            b0 += pk * v8_load(vk);
            b1 += pk * v8_load(vk + 8);
            b2 += pk * v8_load(vk + 16);
            b3 += pk * v8_load(vk + 24);
        }
        if (j < n) {
            const float *vj = v + (long)j * ldv + d;
            const float pj = p[j];
            a0 += pj * v8_load(vj);
            a1 += pj * v8_load(vj + 8);
            a2 += pj * v8_load(vj + 16);
            a3 += pj * v8_load(vj + 24);
        }
        a0 = (a0 + b0) * scale;
        a1 = (a1 + b1) * scale;
        a2 = (a2 + b2) * scale;
        a3 = (a3 + b3) * scale;
        v8_store(out + d, &a0);
        v8_store(out + d + 8, &a1);
        v8_store(out + d + 16, &a2);
        v8_store(out + d + 24, &a3);
    }
    for (; d + 8 <= hs; d += 8) {
        v8f a0 = v8_set1(0.0f);
        for (int j = 0; j < n; j++)
            a0 += p[j] * v8_load(v + (long)j * ldv + d);
        a0 *= scale;
        v8_store(out + d, &a0);
    }
    for (; d < hs; d++) {
        float a = 0.0f;
        for (int j = 0; j < n; j++)
            a += p[j] * v[(long)j * ldv + d];
        out[d] = a * scale;
    }
}

/* p (n) = exp(p - max(p)); returns the sum. Works on whole vectors: p must
 * hold n rounded up to 8, and p[n..] are set to zero. */
INLINE float s_exp_shifted(float *p, int n)
{
    const int np = (n + 7) & ~7;
    for (int i = n; i < np; i++)
        p[i] = -INFINITY;
    v8f vm = v8_load(p);
    for (int i = 8; i < np; i += 8) {
        v8f v = v8_load(p + i);
        vm = V8_MAX(vm, v);
    }
    const v8f vmx = v8_set1(v8_hmax(&vm));
    v8f vsum = v8_set1(0.0f);
    for (int i = 0; i < np; i += 8) {
        v8f v = v8_load(p + i) - vmx;
        v8_exp(&v);
        v8_store(p + i, &v);
    }
    for (int i = n; i < np; i++)
        p[i] = 0.0f; /* exp() clamps, so -inf came out tiny, not zero */
    for (int i = 0; i < np; i += 8)
        vsum += v8_load(p + i);
    return v8_hsum(&vsum);
}

/* The attention weights are normalised after the weighted sum (one
 * multiply of the output instead of one per weight on the critical path);
 * p is left holding the normalised weights for the backward pass. p holds n
 * rounded up to 8 floats. */
SIMD static void s_attend_row(float *out, const float *q, const float *kt, const float *v, int ldv,
                              int n, int hs, float scale, float *p)
{
    s_scores(p, q, kt, n, hs, scale);
    const float inv = 1.0f / s_exp_shifted(p, n);
    s_weighted_sum(out, p, v, ldv, n, hs, inv);
    const v8f vinv = v8_set1(inv);
    for (int i = 0; i < n; i += 8) {
        v8f x = v8_load(p + i) * vinv;
        v8_store(p + i, &x);
    }
}

void ag_nn_attend_row(float *out, const float *q, const float *kt, const float *v, int ldv, int n,
                      int hs, float scale, float *scores)
{
    s_attend_row(out, q, kt, v, ldv, n, hs, scale, scores);
}

static inline void s_ktile_put(float *kt, int j, const float *k, int hs)
{
    float *dst = kt + (long)(j / AG_NN_KTILE) * hs * AG_NN_KTILE + j % AG_NN_KTILE;
    for (int d = 0; d < hs; d++)
        dst[d * AG_NN_KTILE] = k[d];
}

void ag_nn_ktile_put(float *kt, int j, const float *k, int hs)
{
    s_ktile_put(kt, j, k, hs);
}

/* In-register transpose of an 8 x 8 block: r[i][j] -> r[j][i] (written out
 * so that the compiler keeps all sixteen vectors in registers). */
#if defined(__clang__)
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUF(a, b, ...) __builtin_shuffle(a, b, (v8i){__VA_ARGS__})
#endif
INLINE void s_transpose8(v8f r[8])
{
#define LO 0, 8, 1, 9, 4, 12, 5, 13
#define HI 2, 10, 3, 11, 6, 14, 7, 15
#define EV 0, 1, 8, 9, 4, 5, 12, 13
#define OD 2, 3, 10, 11, 6, 7, 14, 15
#define BOT 0, 1, 2, 3, 8, 9, 10, 11
#define TOP 4, 5, 6, 7, 12, 13, 14, 15
    const v8f t0 = SHUF(r[0], r[1], LO), t1 = SHUF(r[0], r[1], HI);
    const v8f t2 = SHUF(r[2], r[3], LO), t3 = SHUF(r[2], r[3], HI);
    const v8f t4 = SHUF(r[4], r[5], LO), t5 = SHUF(r[4], r[5], HI);
    const v8f t6 = SHUF(r[6], r[7], LO), t7 = SHUF(r[6], r[7], HI);
    const v8f u0 = SHUF(t0, t2, EV), u1 = SHUF(t0, t2, OD);
    const v8f u2 = SHUF(t1, t3, EV), u3 = SHUF(t1, t3, OD);
    const v8f u4 = SHUF(t4, t6, EV), u5 = SHUF(t4, t6, OD);
    const v8f u6 = SHUF(t5, t7, EV), u7 = SHUF(t5, t7, OD);
    r[0] = SHUF(u0, u4, BOT);
    r[1] = SHUF(u1, u5, BOT);
    r[2] = SHUF(u2, u6, BOT);
    r[3] = SHUF(u3, u7, BOT);
    r[4] = SHUF(u0, u4, TOP);
    r[5] = SHUF(u1, u5, TOP);
    r[6] = SHUF(u2, u6, TOP);
    r[7] = SHUF(u3, u7, TOP);
#undef LO
#undef HI
#undef EV
#undef OD
#undef BOT
#undef TOP
}
#undef SHUF

/* dst: T rows of hs floats at src (row stride ld), in key tiles; the unused
 * lanes of the last tile are zeroed so whole-tile products stay finite.
 * Whole tiles are 8 x 8 block transposes. */
SIMD static void s_tile(float *dst, const float *src, int T, int hs, int ld)
{
    int t = 0;
    if (hs % 8 == 0) {
        for (; t + AG_NN_KTILE <= T; t += AG_NN_KTILE) {
            float *tile = dst + (long)t * hs;
            const float *row = src + (long)t * ld;
            for (int d = 0; d < hs; d += 8) {
                v8f r[8] = {v8_load(row + d),          v8_load(row + ld + d),
                            v8_load(row + 2 * ld + d), v8_load(row + 3 * ld + d),
                            v8_load(row + 4 * ld + d), v8_load(row + 5 * ld + d),
                            v8_load(row + 6 * ld + d), v8_load(row + 7 * ld + d)};
                s_transpose8(r);
                float *out = tile + d * AG_NN_KTILE;
                v8_store(out, &r[0]);
                v8_store(out + 8, &r[1]);
                v8_store(out + 16, &r[2]);
                v8_store(out + 24, &r[3]);
                v8_store(out + 32, &r[4]);
                v8_store(out + 40, &r[5]);
                v8_store(out + 48, &r[6]);
                v8_store(out + 56, &r[7]);
            }
        }
    }
    for (; t < T; t++)
        s_ktile_put(dst, t, src + (long)t * ld, hs);
    float *last = dst + (long)(T / AG_NN_KTILE) * hs * AG_NN_KTILE;
    for (int k = T % AG_NN_KTILE; k && k < AG_NN_KTILE; k++)
        for (int d = 0; d < hs; d++)
            last[d * AG_NN_KTILE + k] = 0.0f;
}

/* Four query rows at once, for the training pass where consecutive rows
 * attend to n, n+1, n+2, n+3 keys: every key and value loaded serves four
 * rows. Requires hs % 16 == 0. */

/* s[r] (nmax rounded up to 8) = scale * q[r] . keys, for nmax keys */
INLINE void s_scores4(float *const s[4], const float *const q[4], const float *kt, int nmax, int hs,
                      float scale)
{
    const long tile = (long)hs * AG_NN_KTILE;
    const int np = (nmax + 7) & ~7;
    int j = 0;
    for (; j + 16 <= np; j += 16) {
        const float *k0 = kt + (j / AG_NN_KTILE) * tile, *k1 = k0 + tile;
        v8f a0 = v8_set1(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int d = 0; d < hs; d++) {
            const v8f t0 = v8_load(k0 + d * AG_NN_KTILE), t1 = v8_load(k1 + d * AG_NN_KTILE);
            a0 += q[0][d] * t0;
            a1 += q[1][d] * t0;
            a2 += q[2][d] * t0;
            a3 += q[3][d] * t0;
            b0 += q[0][d] * t1;
            b1 += q[1][d] * t1;
            b2 += q[2][d] * t1;
            b3 += q[3][d] * t1;
        }
        a0 *= scale, a1 *= scale, a2 *= scale, a3 *= scale;
        b0 *= scale, b1 *= scale, b2 *= scale, b3 *= scale;
        v8_store(s[0] + j, &a0);
        v8_store(s[1] + j, &a1);
        v8_store(s[2] + j, &a2);
        v8_store(s[3] + j, &a3);
        v8_store(s[0] + j + 8, &b0);
        v8_store(s[1] + j + 8, &b1);
        v8_store(s[2] + j + 8, &b2);
        v8_store(s[3] + j + 8, &b3);
    }
    if (j < np) {
        const float *k0 = kt + (j / AG_NN_KTILE) * tile;
        v8f a0 = v8_set1(0.0f), a1 = a0, a2 = a0, a3 = a0;
        for (int d = 0; d < hs; d++) {
            const v8f t0 = v8_load(k0 + d * AG_NN_KTILE);
            a0 += q[0][d] * t0;
            a1 += q[1][d] * t0;
            a2 += q[2][d] * t0;
            a3 += q[3][d] * t0;
        }
        a0 *= scale, a1 *= scale, a2 *= scale, a3 *= scale;
        v8_store(s[0] + j, &a0);
        v8_store(s[1] + j, &a1);
        v8_store(s[2] + j, &a2);
        v8_store(s[3] + j, &a3);
    }
}

/* out[r] (hs) = scale[r] * sum_{j < nmax} p[r][j] v_j; rows with fewer keys
 * carry zeros in p past their own count. */
INLINE void s_wsum4(float *const out[4], const float *const p[4], const float *v, int ldv, int nmax,
                    int hs, const float scale[4])
{
    for (int d = 0; d < hs; d += 16) {
        v8f a0 = v8_set1(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int j = 0; j < nmax; j++) {
            const float *vj = v + (long)j * ldv + d;
            const v8f v0 = v8_load(vj), v1 = v8_load(vj + 8);
            a0 += p[0][j] * v0;
            a1 += p[1][j] * v0;
            a2 += p[2][j] * v0;
            a3 += p[3][j] * v0;
            b0 += p[0][j] * v1;
            b1 += p[1][j] * v1;
            b2 += p[2][j] * v1;
            b3 += p[3][j] * v1;
        }
        a0 *= scale[0], b0 *= scale[0];
        a1 *= scale[1], b1 *= scale[1];
        a2 *= scale[2], b2 *= scale[2];
        a3 *= scale[3], b3 *= scale[3];
        v8_store(out[0] + d, &a0);
        v8_store(out[0] + d + 8, &b0);
        v8_store(out[1] + d, &a1);
        v8_store(out[1] + d + 8, &b1);
        v8_store(out[2] + d, &a2);
        v8_store(out[2] + d + 8, &b2);
        v8_store(out[3] + d, &a3);
        v8_store(out[3] + d + 8, &b3);
    }
}

/* Rows i0 .. i0+3 of one (batch, head) of the training forward; the
 * weights go to p[r] (normalised, zero past each row's keys). */
SIMD static void s_attend_rows4(float *const out[4], const float *const q[4], const float *kt,
                                const float *v, int i0, int hs, float scale, float *const p[4])
{
    const int nmax = i0 + 4;
    float inv[4];
    s_scores4(p, q, kt, nmax, hs, scale);
    for (int r = 0; r < 4; r++) {
        inv[r] = 1.0f / s_exp_shifted(p[r], i0 + 1 + r);
        for (int j = i0 + 1 + r; j < nmax; j++)
            p[r][j] = 0.0f;
    }
    s_wsum4(out, (const float *const *)p, v, hs, nmax, hs, inv);
    for (int r = 0; r < 4; r++) {
        const v8f vinv = v8_set1(inv[r]);
        for (int j = 0; j < nmax; j += 8) {
            v8f x = v8_load(p[r] + j) * vinv;
            v8_store(p[r] + j, &x);
        }
    }
}

typedef struct {
    float *out, *probs, *dqkv, *scratch;
    const float *qkv, *dout, *cprobs;
    int B, T, C, H;
} att_ctx_t;

static void s_att_share(void *arg, int index, int count)
{
    const att_ctx_t *c = arg;
    const int T = c->T, C = c->C, H = c->H, hs = C / H, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const long pstride = ((long)T + 23) & ~7L;
    float *kt = c->scratch + (long)index * (long)ag_nn_attention_scratch(T, hs);
    float *vs = kt + ag_nn_ktile_floats(T, hs);
    float *pr = vs + (long)T * hs;
    long lo, hi;
    ag_forkjoin_split((long)c->B * H, index, count, 1, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        const int b = (int)(bh / H), h = (int)(bh % H);
        const float *base = c->qkv + (long)b * T * C3;
        s_tile(kt, base + C + h * hs, T, hs, C3);
        s_gather(vs, base + 2 * C + h * hs, T, hs, C3);
        int i = 0;
        if (hs % 16 == 0) {
            for (; i + 4 <= T; i += 4) {
                float *out[4], *p[4];
                const float *q[4];
                /* with T a multiple of 8, whole tiles fit the rows of probs */
                const int direct = T % AG_NN_KTILE == 0;
                for (int r = 0; r < 4; r++) {
                    out[r] = c->out + ((long)b * T + i + r) * C + h * hs;
                    q[r] = base + (long)(i + r) * C3 + h * hs;
                    p[r] = direct ? c->probs + (bh * T + i + r) * T : pr + r * pstride;
                }
                s_attend_rows4(out, q, kt, vs, i, hs, scale, p);
                for (int r = 0; !direct && r < 4; r++)
                    memcpy(c->probs + (bh * T + i + r) * T, p[r],
                           sizeof(float) * (size_t)(i + r + 1));
            }
        }
        for (; i < T; i++) {
            s_attend_row(c->out + ((long)b * T + i) * C + h * hs, base + (long)i * C3 + h * hs, kt,
                         vs, hs, i + 1, hs, scale, pr);
            memcpy(c->probs + (bh * T + i) * T, pr, sizeof(float) * (size_t)(i + 1));
        }
    }
}

void ag_nn_attention(ag_forkjoin_t *fj, float *out, float *probs, const float *qkv, int B, int T,
                     int C, int H, float *scratch)
{
    att_ctx_t c = {
        .out = out, .probs = probs, .scratch = scratch, .qkv = qkv, .B = B, .T = T, .C = C, .H = H};
    ag_forkjoin_run(fj, s_att_share, &c);
}

/* ds (n) = p * (ds - sum_k p_k ds_k) * scale: the softmax backward of one
 * row, ds holding dP on entry and dS on return. */
INLINE void s_dsoftmax(float *ds, const float *p, int n, float scale)
{
    int j = 0;
    v8f acc = v8_set1(0.0f);
    for (; j + 8 <= n; j += 8)
        acc += v8_load(p + j) * v8_load(ds + j);
    float dot = v8_hsum(&acc);
    for (; j < n; j++)
        dot += p[j] * ds[j];
    const v8f vdot = v8_set1(dot);
    for (j = 0; j + 8 <= n; j += 8) {
        v8f v = v8_load(p + j) * (v8_load(ds + j) - vdot) * scale;
        v8_store(ds + j, &v);
    }
    for (; j < n; j++)
        ds[j] = p[j] * (ds[j] - dot) * scale;
}

/* dk (hs) = sum_{r = j0}^{T-1} ds[r * ldds] q_r and dv (hs) = sum_r p[r * ldp] g_r:
 * the key and value gradients of key j0 (ds and p point at column j0). */
INLINE void s_dkv_key(float *dk, float *dv, const float *qs, const float *gs, const float *ds,
                      long ldds, const float *p, long ldp, int j0, int T, int hs)
{
    int d = 0;
    for (; d + 16 <= hs; d += 16) {
        v8f k0 = v8_set1(0.0f), k1 = k0, v0 = k0, v1 = k0;
        for (long r = j0; r < T; r++) {
            const float *q = qs + r * hs + d, *g = gs + r * hs + d;
            const float sr = ds[r * ldds], pr = p[r * ldp];
            k0 += sr * v8_load(q);
            k1 += sr * v8_load(q + 8);
            v0 += pr * v8_load(g);
            v1 += pr * v8_load(g + 8);
        }
        v8_store(dk + d, &k0);
        v8_store(dk + d + 8, &k1);
        v8_store(dv + d, &v0);
        v8_store(dv + d + 8, &v1);
    }
    for (; d < hs; d++) {
        float ak = 0.0f, av = 0.0f;
        for (long r = j0; r < T; r++) {
            ak += ds[r * ldds] * qs[r * hs + d];
            av += p[r * ldp] * gs[r * hs + d];
        }
        dk[d] = ak;
        dv[d] = av;
    }
}

/* The same for keys j0 and j0 + 1 at once, sharing the loads of q_r and g_r
 * (8 independent accumulators keep both FMA pipes busy). hs % 16 == 0. */
INLINE void s_dkv_pair(float *dk0, float *dv0, float *dk1, float *dv1, const float *qs,
                       const float *gs, const float *ds, long ldds, const float *p, long ldp,
                       int j0, int T, int hs)
{
    for (int d = 0; d < hs; d += 16) {
        const float *q = qs + (long)j0 * hs + d, *g = gs + (long)j0 * hs + d;
        const float s0 = ds[j0 * ldds], p0 = p[j0 * ldp];
        v8f a0 = s0 * v8_load(q), a1 = s0 * v8_load(q + 8);
        v8f b0 = p0 * v8_load(g), b1 = p0 * v8_load(g + 8);
        v8f c0 = v8_set1(0.0f), c1 = c0, e0 = c0, e1 = c0;
        for (long r = j0 + 1; r < T; r++) {
            q = qs + r * hs + d;
            g = gs + r * hs + d;
            const v8f q0 = v8_load(q), q1 = v8_load(q + 8), g0 = v8_load(g), g1 = v8_load(g + 8);
            const float sa = ds[r * ldds], sb = ds[r * ldds + 1];
            const float pa = p[r * ldp], pb = p[r * ldp + 1];
            a0 += sa * q0;
            a1 += sa * q1;
            b0 += pa * g0;
            b1 += pa * g1;
            c0 += sb * q0;
            c1 += sb * q1;
            e0 += pb * g0;
            e1 += pb * g1;
        }
        v8_store(dk0 + d, &a0);
        v8_store(dk0 + d + 8, &a1);
        v8_store(dv0 + d, &b0);
        v8_store(dv0 + d + 8, &b1);
        v8_store(dk1 + d, &c0);
        v8_store(dk1 + d + 8, &c1);
        v8_store(dv1 + d, &e0);
        v8_store(dv1 + d + 8, &e1);
    }
}

/* One (batch, head). Per query row i, with P the attention weights and dO
 * the output gradient:
 *   dP_j = dO . v_j,  dS_j = P_j (dP_j - sum_k P_k dP_k) * scale,
 *   dq_i = sum_j dS_j k_j;
 * the rows of dS are kept, and then per key j
 *   dk_j = sum_{i >= j} dS_ij q_i,  dv_j = sum_{i >= j} P_ij dO_i
 * accumulate in registers instead of in memory. */
SIMD static void s_att_bwd_pair(const att_ctx_t *c, long bh, float *vt, float *ks, float *qs,
                                float *gs, float *dsm)
{
    const int T = c->T, C = c->C, H = c->H, hs = C / H, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    const int b = (int)(bh / H), h = (int)(bh % H);
    const float *base = c->qkv + (long)b * T * C3;
    const float *probs = c->cprobs + bh * T * T;
    float *dbase = c->dqkv + (long)b * T * C3;
    s_tile(vt, base + 2 * C + h * hs, T, hs, C3);
    s_gather(ks, base + C + h * hs, T, hs, C3);
    s_gather(qs, base + h * hs, T, hs, C3);
    s_gather(gs, c->dout + (long)b * T * C + h * hs, T, hs, C);
    const long ps = ((long)T + 23) & ~7L; /* row stride of dsm */
    int i = 0;
    if (hs % 16 == 0) {
        for (; i + 4 <= T; i += 4) {
            float *ds[4], *dq[4];
            const float *g[4];
            float one[4] = {1.0f, 1.0f, 1.0f, 1.0f};
            for (int r = 0; r < 4; r++) {
                ds[r] = dsm + (i + r) * ps;
                g[r] = gs + (long)(i + r) * hs;
                dq[r] = dbase + (long)(i + r) * C3 + h * hs;
            }
            s_scores4(ds, g, vt, i + 4, hs, 1.0f);
            for (int r = 0; r < 4; r++) {
                s_dsoftmax(ds[r], probs + (long)(i + r) * T, i + r + 1, scale);
                for (int j = i + r + 1; j < i + 4; j++)
                    ds[r][j] = 0.0f;
            }
            s_wsum4(dq, (const float *const *)ds, ks, hs, i + 4, hs, one);
        }
    }
    for (; i < T; i++) {
        float *ds = dsm + i * ps;
        s_scores(ds, gs + (long)i * hs, vt, i + 1, hs, 1.0f);
        s_dsoftmax(ds, probs + (long)i * T, i + 1, scale);
        s_weighted_sum(dbase + (long)i * C3 + h * hs, ds, ks, hs, i + 1, hs, 1.0f);
    }
    int j = 0;
    for (; j + 2 <= T && hs % 16 == 0; j += 2) {
        float *dk = dbase + (long)j * C3 + C + h * hs, *dv = dk + C;
        s_dkv_pair(dk, dv, dk + C3, dv + C3, qs, gs, dsm + j, ps, probs + j, T, j, T, hs);
    }
    for (; j < T; j++) {
        float *dk = dbase + (long)j * C3 + C + h * hs, *dv = dk + C;
        s_dkv_key(dk, dv, qs, gs, dsm + j, ps, probs + j, T, j, T, hs);
    }
}

static void s_att_bwd_share(void *arg, int index, int count)
{
    const att_ctx_t *c = arg;
    const int hs = c->C / c->H;
    const long rows = (long)c->T * hs;
    float *vt = c->scratch + (long)index * (long)ag_nn_attention_scratch(c->T, hs);
    float *ks = vt + (long)ag_nn_ktile_floats(c->T, hs);
    float *qs = ks + rows, *gs = qs + rows, *dsm = gs + rows;
    long lo, hi;
    ag_forkjoin_split((long)c->B * c->H, index, count, 1, &lo, &hi);
    for (long bh = lo; bh < hi; bh++)
        s_att_bwd_pair(c, bh, vt, ks, qs, gs, dsm);
}

void ag_nn_attention_backward(ag_forkjoin_t *fj, float *dqkv, const float *dout, const float *probs,
                              const float *qkv, int B, int T, int C, int H, float *scratch)
{
    att_ctx_t c = {.dqkv = dqkv,
                   .scratch = scratch,
                   .qkv = qkv,
                   .dout = dout,
                   .cprobs = probs,
                   .B = B,
                   .T = T,
                   .C = C,
                   .H = H};
    ag_forkjoin_run(fj, s_att_bwd_share, &c);
}
