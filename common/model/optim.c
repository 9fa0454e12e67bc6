/*
 * optim.c - AdamW over the parameter slab (see optim.h). The update runs on
 * the model's fork-join pool, each thread owning a contiguous range of the
 * slab; the gradient norm is summed per thread in double and the partial
 * sums are added in thread order, so the result is reproducible.
 */
#include "optim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_priv.h"

struct ag_adamw {
    ag_adamw_config_t cfg;
    size_t n;
    float *m, *v;
    uint64_t t;
    int n_ranges;
    size_t *range_lo, *range_hi; /* tensors that get weight decay */
};

void ag_adamw_config_default(ag_adamw_config_t *c)
{
    c->lr = 3e-4f;
    c->beta1 = 0.9f;
    c->beta2 = 0.95f;
    c->eps = 1e-8f;
    c->weight_decay = 0.01f;
    c->grad_clip = 1.0f;
    c->warmup_steps = 0;
    c->total_steps = 0;
    c->min_lr_ratio = 0.1f;
}

float ag_adamw_lr_at(const ag_adamw_config_t *c, long step)
{
    if (step < 0)
        step = 0;
    if (c->warmup_steps > 0 && step < c->warmup_steps)
        return c->lr * (float)(step + 1) / (float)c->warmup_steps;
    if (c->total_steps <= c->warmup_steps)
        return c->lr;
    if (step >= c->total_steps)
        return c->lr * c->min_lr_ratio;
    double progress = (double)(step - c->warmup_steps) / (double)(c->total_steps - c->warmup_steps);
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(c->lr * (c->min_lr_ratio + (1.0 - c->min_lr_ratio) * cosine));
}

ag_adamw_t *ag_adamw_create(const ag_model_t *model, const ag_adamw_config_t *c)
{
    ag_adamw_t *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->cfg = *c;
    o->n = ag_model_num_params(model);
    o->m = calloc(o->n, sizeof(float));
    o->v = calloc(o->n, sizeof(float));
    int nt = ag_model_num_tensors(model);
    o->range_lo = calloc((size_t)nt, sizeof(size_t));
    o->range_hi = calloc((size_t)nt, sizeof(size_t));
    if (!o->m || !o->v || !o->range_lo || !o->range_hi) {
        ag_adamw_destroy(&o);
        return NULL;
    }
    for (int i = 0; i < nt; i++) {
        const ag_tensor_info_t *t = ag_model_tensor(model, i);
        if (t->decay) {
            o->range_lo[o->n_ranges] = t->offset;
            o->range_hi[o->n_ranges] = t->offset + t->size;
            o->n_ranges++;
        }
    }
    return o;
}

void ag_adamw_destroy(ag_adamw_t **self)
{
    if (!self || !*self)
        return;
    ag_adamw_t *o = *self;
    free(o->m);
    free(o->v);
    free(o->range_lo);
    free(o->range_hi);
    free(o);
    *self = NULL;
}

ag_adamw_config_t *ag_adamw_config(ag_adamw_t *o)
{
    return &o->cfg;
}

typedef struct {
    ag_adamw_t *o;
    float *p;
    const float *g;
    size_t n;
    float lr, gscale, bc1, bc2;
    double partial[AG_FORKJOIN_MAX];
} adam_ctx_t;

static void s_norm_share(void *arg, int index, int count)
{
    adam_ctx_t *a = arg;
    long lo, hi;
    ag_forkjoin_split((long)a->n, index, count, 64, &lo, &hi);
    double s = 0.0;
    for (long i = lo; i < hi; i++)
        s += (double)a->g[i] * a->g[i];
    a->partial[index] = s;
}

typedef struct {
    float b1, b2, eps, lr, gs, keep, ib1, ib2;
} adam_k_t;

static void s_update_scalar(float *p, float *m, float *v, const float *g, size_t lo, size_t hi,
                            const adam_k_t *k)
{
    for (size_t i = lo; i < hi; i++) {
        const float gi = g[i] * k->gs;
        m[i] = k->b1 * m[i] + (1.0f - k->b1) * gi;
        v[i] = k->b2 * v[i] + (1.0f - k->b2) * gi * gi;
        p[i] = p[i] * k->keep - k->lr * (m[i] * k->ib1) / (sqrtf(v[i] * k->ib2) + k->eps);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX_UPDATE 1
/* The same arithmetic eight lanes wide (no fused multiply-adds, so each lane
 * rounds exactly as the scalar loop does). The compiler does not vectorise
 * the scalar loop itself because sqrtf may set errno. */
__attribute__((target("avx"))) static void
s_update_avx(float *p, float *m, float *v, const float *g, size_t lo, size_t hi, const adam_k_t *k)
{
    const __m256 b1 = _mm256_set1_ps(k->b1), c1 = _mm256_set1_ps(1.0f - k->b1);
    const __m256 b2 = _mm256_set1_ps(k->b2), c2 = _mm256_set1_ps(1.0f - k->b2);
    const __m256 gs = _mm256_set1_ps(k->gs), keep = _mm256_set1_ps(k->keep);
    const __m256 lr = _mm256_set1_ps(k->lr), eps = _mm256_set1_ps(k->eps);
    const __m256 ib1 = _mm256_set1_ps(k->ib1), ib2 = _mm256_set1_ps(k->ib2);
    size_t i = lo;
    for (; i + 8 <= hi; i += 8) {
        const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), gs);
        const __m256 mi =
            _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        const __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(v + i)),
                                        _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, ib2)), eps);
        const __m256 step = _mm256_div_ps(_mm256_mul_ps(lr, _mm256_mul_ps(mi, ib1)), den);
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), keep), step));
    }
    s_update_scalar(p, m, v, g, i, hi, k);
}
#endif

static void s_update(adam_ctx_t *a, size_t lo, size_t hi, int decay)
{
    const ag_adamw_config_t *c = &a->o->cfg;
    const adam_k_t k = {c->beta1,      c->beta2,     c->eps,
                        a->lr,         a->gscale,    decay ? 1.0f - a->lr * c->weight_decay : 1.0f,
                        1.0f / a->bc1, 1.0f / a->bc2};
#ifdef HAVE_AVX_UPDATE
    if (__builtin_cpu_supports("avx")) {
        s_update_avx(a->p, a->o->m, a->o->v, a->g, lo, hi, &k);
        return;
    }
#endif
    s_update_scalar(a->p, a->o->m, a->o->v, a->g, lo, hi, &k);
}

static void s_adam_share(void *arg, int index, int count)
{
    adam_ctx_t *a = arg;
    const ag_adamw_t *o = a->o;
    long lo, hi;
    ag_forkjoin_split((long)a->n, index, count, 64, &lo, &hi);
    size_t at = (size_t)lo;
    for (int r = 0; r < o->n_ranges && at < (size_t)hi; r++) {
        size_t rlo = o->range_lo[r], rhi = o->range_hi[r];
        if (rhi <= at)
            continue;
        if (rlo > at) {
            size_t e = rlo < (size_t)hi ? rlo : (size_t)hi;
            s_update(a, at, e, 0);
            at = e;
        }
        if (at < (size_t)hi) {
            size_t e = rhi < (size_t)hi ? rhi : (size_t)hi;
            s_update(a, at, e, 1);
            at = e;
        }
    }
    if (at < (size_t)hi)
        s_update(a, at, (size_t)hi, 0);
}

static double s_norm(ag_model_t *m, adam_ctx_t *a)
{
    ag_forkjoin_run(m->fj, s_norm_share, a);
    double s = 0.0;
    for (int t = 0; t < m->threads; t++)
        s += a->partial[t];
    return sqrt(s);
}

double ag_model_grad_norm(ag_model_t *m)
{
    if (!m->grads)
        return 0.0;
    adam_ctx_t a;
    memset(&a, 0, sizeof(a));
    a.g = m->grads;
    a.n = m->n_params;
    return s_norm(m, &a);
}

int ag_adamw_step(ag_adamw_t *o, ag_model_t *m, ag_adamw_stats_t *stats)
{
    if (!m->grads || ag_model_num_params(m) != o->n)
        return -EINVAL;
    adam_ctx_t a;
    memset(&a, 0, sizeof(a));
    a.o = o;
    a.p = m->params;
    a.g = m->grads;
    a.n = o->n;
    const double norm = s_norm(m, &a);
    if (stats) {
        stats->grad_norm = norm;
        stats->clipped = 0;
        stats->lr = 0.0f;
    }
    if (!isfinite(norm))
        return -ERANGE;
    a.gscale = 1.0f;
    if (o->cfg.grad_clip > 0.0f && norm > o->cfg.grad_clip) {
        a.gscale = (float)(o->cfg.grad_clip / (norm + 1e-6));
        if (stats)
            stats->clipped = 1;
    }
    a.lr = ag_adamw_lr_at(&o->cfg, (long)o->t);
    o->t++;
    a.bc1 = (float)(1.0 - pow(o->cfg.beta1, (double)o->t));
    a.bc2 = (float)(1.0 - pow(o->cfg.beta2, (double)o->t));
    ag_forkjoin_run(m->fj, s_adam_share, &a);
    if (stats)
        stats->lr = a.lr;
    return 0;
}

uint64_t ag_adamw_steps(const ag_adamw_t *o)
{
    return o->t;
}

void ag_adamw_set_steps(ag_adamw_t *o, uint64_t steps)
{
    o->t = steps;
}

size_t ag_adamw_num_params(const ag_adamw_t *o)
{
    return o->n;
}

float *ag_adamw_m(ag_adamw_t *o)
{
    return o->m;
}

float *ag_adamw_v(ag_adamw_t *o)
{
    return o->v;
}

const float *ag_adamw_m_const(const ag_adamw_t *o)
{
    return o->m;
}

const float *ag_adamw_v_const(const ag_adamw_t *o)
{
    return o->v;
}
