/*
 * sampler.c - the KV-cache decoder and token sampling (see sampler.h).
 *
 * Cache layout, per layer, slot and head: keys in tiles of 8 (nn.h), so
 * that the scores of one query against all earlier keys run along
 * contiguous memory, and values as rows (ctx x head_size), so that the
 * weighted sum does too. A feed first appends every row's key and value to
 * its slot, then attends, so a row may attend to a key fed by an earlier row
 * of the same call (prompt feeding).
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_priv.h"
#include "nn.h"

struct ag_sampler {
    ag_model_t *m;
    int slots, max_rows;
    int *pos;       /* (slots) tokens held */
    float *kcache;  /* (L, slots, H, ktile_floats(ctx, hs)) */
    float *vcache;  /* (L, slots, H, ctx, hs) */
    size_t kstride; /* floats per (layer, slot, head) of keys */
    int n;          /* rows of the last feed */
    int *row_slot, *row_pos;
    float *x, *ln, *qkv, *atty, *fch, *logits, *values, *scores;
    float *probs;
    ag_sample_entry_t *order;
};

static float *s_alloc(size_t floats)
{
    return ag_nn_alloc(floats + 16);
}

ag_sampler_t *ag_sampler_create(ag_model_t *m, int slots, int max_rows)
{
    if (!m || slots < 1 || max_rows < 1 || slots > (1 << 20) || max_rows > (1 << 20))
        return NULL;
    const ag_model_config_t *c = ag_model_config(m);
    const size_t D = (size_t)c->d_model, F = (size_t)c->mlp_ratio * D, V = (size_t)c->vocab,
                 L = (size_t)c->n_layers, H = (size_t)c->n_heads, R = (size_t)max_rows,
                 ctx = (size_t)c->ctx;
    ag_sampler_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->m = m;
    s->slots = slots;
    s->max_rows = max_rows;
    s->pos = calloc((size_t)slots, sizeof(int));
    s->row_slot = calloc(R, sizeof(int));
    s->row_pos = calloc(R, sizeof(int));
    s->kstride = ag_nn_ktile_floats((int)ctx, (int)(D / H));
    s->kcache = s_alloc(L * (size_t)slots * H * s->kstride);
    s->vcache = s_alloc(L * (size_t)slots * D * ctx);
    s->x = s_alloc(R * D);
    s->ln = s_alloc(R * D);
    s->qkv = s_alloc(R * 3 * D);
    s->atty = s_alloc(R * D);
    s->fch = s_alloc(R * F);
    s->logits = s_alloc(R * V);
    s->values = s_alloc(R);
    s->scores = s_alloc(R * H * (ctx + 8));
    s->probs = s_alloc(V);
    s->order = calloc(V, sizeof(ag_sample_entry_t));
    if (!s->pos || !s->row_slot || !s->row_pos || !s->kcache || !s->vcache || !s->x || !s->ln ||
        !s->qkv || !s->atty || !s->fch || !s->logits || !s->values || !s->scores || !s->probs ||
        !s->order) {
        ag_sampler_destroy(&s);
        return NULL;
    }
    /* Scores are computed for whole key tiles; keep the not yet written keys
     * of a tile finite. */
    memset(s->kcache, 0, L * (size_t)slots * H * s->kstride * sizeof(float));
    return s;
}

void ag_sampler_destroy(ag_sampler_t **self)
{
    if (!self || !*self)
        return;
    ag_sampler_t *s = *self;
    free(s->pos);
    free(s->row_slot);
    free(s->row_pos);
    free(s->kcache);
    free(s->vcache);
    free(s->x);
    free(s->ln);
    free(s->qkv);
    free(s->atty);
    free(s->fch);
    free(s->logits);
    free(s->values);
    free(s->scores);
    free(s->probs);
    free(s->order);
    free(s);
    *self = NULL;
}

int ag_sampler_slots(const ag_sampler_t *s)
{
    return s->slots;
}

int ag_sampler_max_rows(const ag_sampler_t *s)
{
    return s->max_rows;
}

int ag_sampler_reset(ag_sampler_t *s, int slot)
{
    if (slot < 0 || slot >= s->slots)
        return -EINVAL;
    s->pos[slot] = 0;
    return 0;
}

int ag_sampler_position(const ag_sampler_t *s, int slot)
{
    if (slot < 0 || slot >= s->slots)
        return -EINVAL;
    return s->pos[slot];
}

/* Start of the cached keys (tiled) and values of one layer/slot/head. */
static float *s_kt(const ag_sampler_t *s, int l, int slot, int h)
{
    const ag_model_config_t *c = &s->m->cfg;
    return s->kcache + (((size_t)l * s->slots + slot) * c->n_heads + h) * s->kstride;
}

static float *s_vc(const ag_sampler_t *s, int l, int slot, int h)
{
    const ag_model_config_t *c = &s->m->cfg;
    const size_t hs = (size_t)(c->d_model / c->n_heads);
    return s->vcache + (((size_t)l * s->slots + slot) * c->n_heads + h) * hs * c->ctx;
}

typedef struct {
    ag_sampler_t *s;
    int layer;
    const int32_t *tokens;
} feed_ctx_t;

static void s_embed_share(void *arg, int index, int count)
{
    const feed_ctx_t *f = arg;
    const ag_sampler_t *s = f->s;
    const int D = s->m->cfg.d_model;
    long lo, hi;
    ag_forkjoin_split(s->n, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        const float *te = s->m->p.wte + (long)f->tokens[r] * D;
        const float *pe = s->m->p.wpe + (long)s->row_pos[r] * D;
        for (int c = 0; c < D; c++)
            s->x[r * D + c] = te[c] + pe[c];
    }
}

/* The cache of a slot is cold by the time its row comes up (the cache of all
 * slots is larger than L2); asking for the next (row, head)'s keys and values
 * while this one computes hides most of the latency. */
static void s_prefetch(const ag_sampler_t *s, int layer, int r, int h)
{
    const ag_model_config_t *c = &s->m->cfg;
    const int hs = c->d_model / c->n_heads, slot = s->row_slot[r];
    const size_t n = (size_t)s->row_pos[r] + 1;
    const char *k = (const char *)s_kt(s, layer, slot, h);
    const char *v = (const char *)s_vc(s, layer, slot, h);
    const size_t kbytes = ag_nn_ktile_floats((int)n, hs) * sizeof(float);
    const size_t vbytes = n * (size_t)hs * sizeof(float);
    for (size_t off = 0; off < kbytes; off += 64)
        __builtin_prefetch(k + off);
    for (size_t off = 0; off < vbytes; off += 64)
        __builtin_prefetch(v + off);
}

static void s_attend_share(void *arg, int index, int count)
{
    const feed_ctx_t *f = arg;
    const ag_sampler_t *s = f->s;
    const ag_model_config_t *c = &s->m->cfg;
    const int D = c->d_model, H = c->n_heads, hs = D / H;
    const float scale = 1.0f / sqrtf((float)hs);
    long lo, hi;
    ag_forkjoin_split((long)s->n * H, index, count, 1, &lo, &hi);
    for (long rh = lo; rh < hi; rh++) {
        const int r = (int)(rh / H), h = (int)(rh % H);
        const int slot = s->row_slot[r];
        if (rh + 1 < hi)
            s_prefetch(s, f->layer, (int)((rh + 1) / H), (int)((rh + 1) % H));
        ag_nn_attend_row(s->atty + (long)r * D + h * hs, s->qkv + (long)r * 3 * D + h * hs,
                         s_kt(s, f->layer, slot, h), s_vc(s, f->layer, slot, h), hs,
                         s->row_pos[r] + 1, hs, scale, s->scores + rh * (c->ctx + 8));
    }
}

static void s_value_share(void *arg, int index, int count)
{
    const feed_ctx_t *f = arg;
    ag_sampler_t *s = f->s;
    const int D = s->m->cfg.d_model;
    long lo, hi;
    ag_forkjoin_split(s->n, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        float acc = s->m->p.vb[0];
        for (int k = 0; k < D; k++)
            acc += s->ln[r * D + k] * s->m->p.vw[k];
        s->values[r] = acc;
    }
}

int ag_sampler_feed(ag_sampler_t *s, int n, const int32_t *slots, const int32_t *tokens)
{
    ag_model_t *m = s->m;
    const ag_model_config_t *c = &m->cfg;
    if (n < 1 || !slots || !tokens)
        return -EINVAL;
    if (n > s->max_rows)
        return -ERANGE;
    for (int r = 0; r < n; r++) {
        if (slots[r] < 0 || slots[r] >= s->slots || tokens[r] < 0 || tokens[r] >= c->vocab)
            return -EINVAL;
    }
    /* Positions: each row takes the next free position of its slot. */
    int overflow = 0;
    for (int r = 0; r < n; r++) {
        s->row_slot[r] = slots[r];
        s->row_pos[r] = s->pos[slots[r]]++;
        overflow |= s->row_pos[r] >= c->ctx;
    }
    if (overflow) {
        for (int r = n - 1; r >= 0; r--)
            s->pos[slots[r]]--;
        return -ERANGE;
    }
    s->n = n;
    const int D = c->d_model, F = c->mlp_ratio * D, H = c->n_heads, hs = D / H;
    feed_ctx_t f = {s, 0, tokens};
    ag_forkjoin_run_work(m->fj, s_embed_share, &f, (double)n * D);
    for (int l = 0; l < c->n_layers; l++) {
        const ag_layer_view_t *p = &m->p.layers[l];
        ag_nn_layernorm_linear(m->fj, s->ln, NULL, NULL, s->x, p->ln1w, p->ln1b, s->qkv, NULL,
                               p->qkvw, p->qkvb, n, 3 * D, D);
        for (int r = 0; r < n; r++) {
            const float *k = s->qkv + (long)r * 3 * D + D;
            const float *v = k + D;
            const int at = s->row_pos[r];
            for (int h = 0; h < H; h++) {
                float *vc = s_vc(s, l, s->row_slot[r], h);
                ag_nn_ktile_put(s_kt(s, l, s->row_slot[r], h), at, k + h * hs, hs);
                memcpy(vc + (long)at * hs, v + h * hs, sizeof(float) * (size_t)hs);
            }
        }
        f.layer = l;
        double work = 0.0;
        for (int r = 0; r < n; r++)
            work += 4.0 * D * (s->row_pos[r] + 1);
        ag_forkjoin_run_work(m->fj, s_attend_share, &f, work);
        ag_nn_linear(m->fj, s->x, s->atty, p->projw, p->projb, s->x, n, D, D);
        ag_nn_layernorm_linear(m->fj, s->ln, NULL, NULL, s->x, p->ln2w, p->ln2b, s->fch, s->fch,
                               p->fcw, p->fcb, n, F, D);
        ag_nn_linear(m->fj, s->x, s->fch, p->fcpw, p->fcpb, s->x, n, D, F);
    }
    ag_nn_layernorm(m->fj, s->ln, NULL, NULL, s->x, m->p.lnfw, m->p.lnfb, n, D);
    ag_nn_linear(m->fj, s->logits, s->ln, m->p.headw, m->p.headb, NULL, n, c->vocab, D);
    ag_forkjoin_run_work(m->fj, s_value_share, &f, 2.0 * n * D);
    return 0;
}

const float *ag_sampler_logits(const ag_sampler_t *s, int row)
{
    if (row < 0 || row >= s->n)
        return NULL;
    return s->logits + (size_t)row * (size_t)s->m->cfg.vocab;
}

float ag_sampler_value(const ag_sampler_t *s, int row)
{
    if (row < 0 || row >= s->n)
        return NAN;
    return s->values[row];
}

/* Descending probability, ties by ascending token: a total order, so the
 * nucleus does not depend on the sort algorithm. */
static int s_cmp_entry(const void *a, const void *b)
{
    const ag_sample_entry_t *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return (x->token > y->token) - (x->token < y->token);
}

int ag_sample_logits(const float *logits, int V, const ag_sample_config_t *cfg, ag_rng_t *rng,
                     float *probs, ag_sample_entry_t *order, ag_sample_t *out)
{
    if (!logits || V < 1 || !cfg || !rng || !probs || !order || !out)
        return -EINVAL;
    memcpy(probs, logits, sizeof(float) * (size_t)V);
    const float logz1 = ag_nn_softmax(probs, V);
    out->value = 0.0f;
    if (!(cfg->temperature > 0.0f)) {
        int best = 0;
        for (int k = 1; k < V; k++)
            if (logits[k] > logits[best])
                best = k;
        out->token = best;
        out->logprob = 0.0f;
        out->policy_logprob = logits[best] - logz1;
        return 0;
    }
    const float inv_t = 1.0f / cfg->temperature;
    float logzt = logz1;
    if (inv_t != 1.0f) {
        for (int k = 0; k < V; k++)
            probs[k] = logits[k] * inv_t;
        logzt = ag_nn_softmax(probs, V);
    }
    int token = -1;
    double mass = 1.0;
    if (cfg->top_p > 0.0f && cfg->top_p < 1.0f) {
        for (int k = 0; k < V; k++)
            order[k] = (ag_sample_entry_t){probs[k], k};
        qsort(order, (size_t)V, sizeof(*order), s_cmp_entry);
        int keep = 0;
        double cum = 0.0;
        while (keep < V && (keep == 0 || cum < cfg->top_p))
            cum += order[keep++].p;
        mass = cum;
        const double u = ag_rng_double(rng) * mass;
        cum = 0.0;
        for (int i = 0; i < keep && token < 0; i++) {
            cum += order[i].p;
            if (u < cum)
                token = order[i].token;
        }
        for (int i = keep - 1; token < 0 && i >= 0; i--)
            if (order[i].p > 0.0f)
                token = order[i].token;
    } else {
        const double u = ag_rng_double(rng);
        double cum = 0.0;
        for (int k = 0; k < V && token < 0; k++) {
            cum += probs[k];
            if (u < cum)
                token = k;
        }
        for (int k = V - 1; token < 0 && k >= 0; k--)
            if (probs[k] > 0.0f)
                token = k;
    }
    if (token < 0)
        token = 0;
    out->token = token;
    out->logprob = (float)((double)(logits[token] * inv_t) - logzt - log(mass));
    out->policy_logprob = logits[token] - logz1;
    return 0;
}

int ag_sampler_sample(ag_sampler_t *s, int row, const ag_sample_config_t *cfg, ag_rng_t *rng,
                      ag_sample_t *out)
{
    const float *z = ag_sampler_logits(s, row);
    if (!z)
        return -EINVAL;
    int rc = ag_sample_logits(z, s->m->cfg.vocab, cfg, rng, s->probs, s->order, out);
    if (rc == 0)
        out->value = s->values[row];
    return rc;
}

int ag_sampler_step(ag_sampler_t *s, int n, const int32_t *slots, const int32_t *tokens,
                    const ag_sample_config_t *cfg, ag_rng_t *rng, ag_sample_t *out)
{
    if (!cfg || !rng || !out)
        return -EINVAL;
    int rc = ag_sampler_feed(s, n, slots, tokens);
    for (int r = 0; rc == 0 && r < n; r++)
        rc = ag_sampler_sample(s, r, cfg, rng, &out[r]);
    return rc;
}
