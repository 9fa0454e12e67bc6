/*
 * model.c - the transformer: tensor table, initialisation, the batched
 * training forward, the per-token outputs an objective is built from (log
 * p(target), entropy, value) and the backward from their gradients. The
 * objectives themselves belong to their users (the learner's PPO, the reward
 * model's losses); the kernels are in nn.c; this file owns the slabs, carves
 * them into tensors and strings the kernels together.
 *
 * Rows: a batch of B sequences of T tokens is processed as R = B*T rows, so
 * each linear layer is one product over all rows (split across the pool).
 * Activations of every layer are kept for the backward pass, llm.c style; the
 * backward pass needs only one running residual gradient (dres) because each
 * block adds into it.
 */
#include "model.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_priv.h"
#include "nn.h"
#include "rng.h"

#define ALIGN_FLOATS 16

void ag_model_config_default(ag_model_config_t *cfg)
{
    cfg->vocab = AG_VOCAB_SIZE;
    cfg->d_model = 128;
    cfg->n_layers = 4;
    cfg->n_heads = 4;
    cfg->ctx = 256;
    cfg->mlp_ratio = 4;
}

static int s_fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", msg);
    return -EINVAL;
}

int ag_model_config_check(const ag_model_config_t *cfg, char *err, size_t errlen)
{
    if (cfg->vocab < 2 || cfg->vocab > AG_MODEL_MAX_DIM)
        return s_fail(err, errlen, "vocab must be in [2, 65536]");
    if (cfg->d_model < 1 || cfg->d_model > AG_MODEL_MAX_DIM)
        return s_fail(err, errlen, "d_model must be in [1, 65536]");
    if (cfg->n_layers < 1 || cfg->n_layers > AG_MODEL_MAX_LAYERS)
        return s_fail(err, errlen, "n_layers must be in [1, 256]");
    if (cfg->n_heads < 1 || cfg->d_model % cfg->n_heads != 0)
        return s_fail(err, errlen, "n_heads must divide d_model");
    if (cfg->ctx < 1 || cfg->ctx > AG_MODEL_MAX_CTX)
        return s_fail(err, errlen, "ctx must be in [1, 65536]");
    if (cfg->mlp_ratio < 1 || (long)cfg->mlp_ratio * cfg->d_model > AG_MODEL_MAX_DIM)
        return s_fail(err, errlen, "mlp_ratio * d_model must be in [1, 65536]");
    if (ag_model_config_num_params(cfg) > (size_t)1 << 32)
        return s_fail(err, errlen, "model has more than 2^32 parameters");
    return 0;
}

/* ---------------------------------------------------------- tensor table */

typedef struct {
    ag_tensor_info_t *t;
    int n;
    size_t off;
} table_builder_t;

static void s_add(table_builder_t *tb, const char *name, int rows, int cols, int ndim)
{
    if (tb->t) {
        ag_tensor_info_t *ti = &tb->t[tb->n];
        snprintf(ti->name, sizeof(ti->name), "%s", name);
        ti->ndim = ndim;
        ti->shape[0] = rows;
        ti->shape[1] = cols;
        ti->offset = tb->off;
        ti->size = (size_t)rows * (size_t)cols;
        ti->decay = ndim == 2;
    }
    tb->n++;
    tb->off += (size_t)rows * (size_t)cols;
}

/* Walks the documented tensor order once: counts tensors and floats, fills
 * the table when tb->t is set, and points the view (if any) into slab. */
static void s_layout(const ag_model_config_t *c, table_builder_t *tb, ag_param_view_t *v,
                     float *slab)
{
    const int D = c->d_model, F = c->mlp_ratio * c->d_model, V = c->vocab;
    char name[AG_MODEL_TENSOR_NAME];
#define T2(field, nm, r, cl)                                                                       \
    do {                                                                                           \
        size_t at = tb->off;                                                                       \
        s_add(tb, nm, r, cl, 2);                                                                   \
        if (v)                                                                                     \
            field = slab + at;                                                                     \
    } while (0)
#define T1(field, nm, r)                                                                           \
    do {                                                                                           \
        size_t at = tb->off;                                                                       \
        s_add(tb, nm, r, 1, 1);                                                                    \
        if (v)                                                                                     \
            field = slab + at;                                                                     \
    } while (0)
    T2(v->wte, "wte", V, D);
    T2(v->wpe, "wpe", c->ctx, D);
    for (int l = 0; l < c->n_layers; l++) {
        ag_layer_view_t *lv = v ? &v->layers[l] : NULL;
#define LNAME(suffix) (snprintf(name, sizeof(name), "layers.%d.%s", l, suffix), name)
        T1(lv->ln1w, LNAME("ln1.weight"), D);
        T1(lv->ln1b, LNAME("ln1.bias"), D);
        T2(lv->qkvw, LNAME("attn.qkv.weight"), 3 * D, D);
        T1(lv->qkvb, LNAME("attn.qkv.bias"), 3 * D);
        T2(lv->projw, LNAME("attn.proj.weight"), D, D);
        T1(lv->projb, LNAME("attn.proj.bias"), D);
        T1(lv->ln2w, LNAME("ln2.weight"), D);
        T1(lv->ln2b, LNAME("ln2.bias"), D);
        T2(lv->fcw, LNAME("mlp.fc.weight"), F, D);
        T1(lv->fcb, LNAME("mlp.fc.bias"), F);
        T2(lv->fcpw, LNAME("mlp.proj.weight"), D, F);
        T1(lv->fcpb, LNAME("mlp.proj.bias"), D);
#undef LNAME
    }
    T1(v->lnfw, "lnf.weight", D);
    T1(v->lnfb, "lnf.bias", D);
    T2(v->headw, "head.weight", V, D);
    T1(v->headb, "head.bias", V);
    T2(v->vw, "value.weight", 1, D);
    T1(v->vb, "value.bias", 1);
#undef T1
#undef T2
}

size_t ag_model_config_num_params(const ag_model_config_t *cfg)
{
    const size_t D = (size_t)cfg->d_model, F = (size_t)cfg->mlp_ratio * D, V = (size_t)cfg->vocab;
    const size_t per_layer = 4 * D + 3 * D * D + 3 * D + D * D + D + F * D + F + D * F + D;
    return V * D + (size_t)cfg->ctx * D + (size_t)cfg->n_layers * per_layer + 2 * D + V * D + V +
           D + 1;
}

int ag_model_tensor_table(const ag_model_config_t *cfg, ag_tensor_info_t *out)
{
    table_builder_t tb = {out, 0, 0};
    s_layout(cfg, &tb, NULL, NULL);
    return tb.n;
}

/* ------------------------------------------------------------ lifecycle */

static int s_views(ag_model_t *m, ag_param_view_t *v, float *slab)
{
    v->layers = calloc((size_t)m->cfg.n_layers, sizeof(ag_layer_view_t));
    if (!v->layers)
        return -ENOMEM;
    table_builder_t tb = {NULL, 0, 0};
    s_layout(&m->cfg, &tb, v, slab);
    return 0;
}

static float s_normal(ag_rng_t *rng)
{
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - ag_rng_double(rng), u2 = ag_rng_double(rng);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

static void s_init(ag_model_t *m, uint64_t seed)
{
    ag_rng_t rng;
    ag_rng_seed(&rng, seed);
    const float proj_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layers);
    for (int i = 0; i < m->n_tensors; i++) {
        const ag_tensor_info_t *t = &m->tensors[i];
        float *x = m->params + t->offset;
        const char *dot = strrchr(t->name, '.');
        int is_ln_gain = strstr(t->name, "ln") && dot && !strcmp(dot, ".weight");
        if (t->ndim == 2) {
            float std = strstr(t->name, ".proj.weight") ? proj_std : 0.02f;
            for (size_t k = 0; k < t->size; k++)
                x[k] = std * s_normal(&rng);
        } else {
            for (size_t k = 0; k < t->size; k++)
                x[k] = is_ln_gain ? 1.0f : 0.0f;
        }
    }
}

/* Per-thread scratch: LayerNorm partial sums and the
 * attention of sequences up to seq tokens (0 before ag_model_reserve: an
 * inference-only model never runs the training attention). */
static size_t s_scratch_per_thread(const ag_model_t *m, int seq)
{
    const ag_model_config_t *c = &m->cfg;
    size_t per = 2 * (size_t)c->d_model;
    if (seq > 0) {
        size_t att = ag_nn_attention_scratch(seq, c->d_model / c->n_heads);
        per = att > per ? att : per;
    }
    return (per + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

static int s_set_pool(ag_model_t *m, int threads, int seq)
{
    if (threads <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > AG_FORKJOIN_MAX)
        threads = AG_FORKJOIN_MAX;
    const size_t per = s_scratch_per_thread(m, seq);
    float *scratch = ag_nn_alloc(per * (size_t)threads);
    ag_forkjoin_t *fj = threads == m->threads && m->fj ? m->fj : ag_forkjoin_create(threads);
    if (!scratch || !fj) {
        free(scratch);
        if (fj != m->fj)
            ag_forkjoin_destroy(&fj);
        return -ENOMEM;
    }
    if (fj != m->fj)
        ag_forkjoin_destroy(&m->fj);
    free(m->scratch);
    m->fj = fj;
    m->scratch = scratch;
    m->scratch_per_thread = per;
    m->threads = threads;
    return 0;
}

ag_model_t *ag_model_create(const ag_model_config_t *cfg, uint64_t seed, int threads)
{
    if (ag_model_config_check(cfg, NULL, 0) != 0)
        return NULL;
    /* Parallelism is ours (forkjoin.h); OpenBLAS threads would fight it. */
    openblas_set_num_threads(1);
    ag_model_t *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->cfg = *cfg;
    table_builder_t tb = {NULL, 0, 0};
    s_layout(cfg, &tb, NULL, NULL);
    m->n_tensors = tb.n;
    m->n_params = tb.off;
    m->tensors = calloc((size_t)tb.n, sizeof(ag_tensor_info_t));
    m->params = ag_nn_alloc(m->n_params);
    if (!m->tensors || !m->params)
        goto fail;
    tb = (table_builder_t){m->tensors, 0, 0};
    s_layout(cfg, &tb, NULL, NULL);
    if (s_views(m, &m->p, m->params) != 0 || s_set_pool(m, threads, 0) != 0)
        goto fail;
    s_init(m, seed);
    return m;
fail:
    ag_model_destroy(&m);
    return NULL;
}

void ag_model_destroy(ag_model_t **self)
{
    if (!self || !*self)
        return;
    ag_model_t *m = *self;
    ag_forkjoin_destroy(&m->fj);
    free(m->scratch);
    free(m->tensors);
    free(m->params);
    free(m->p.layers);
    free(m->grads);
    free(m->g.layers);
    free(m->acts);
    free(m->la);
    free(m->tokens);
    free(m->tok_targets);
    free(m);
    *self = NULL;
}

const ag_model_config_t *ag_model_config(const ag_model_t *m)
{
    return &m->cfg;
}

int ag_model_threads(const ag_model_t *m)
{
    return m->threads;
}

int ag_model_set_threads(ag_model_t *m, int threads)
{
    return s_set_pool(m, threads, m->max_seq);
}

size_t ag_model_num_params(const ag_model_t *m)
{
    return m->n_params;
}

float *ag_model_params(ag_model_t *m)
{
    return m->params;
}

const float *ag_model_params_const(const ag_model_t *m)
{
    return m->params;
}

int ag_model_load_params(ag_model_t *m, const float *src, size_t n)
{
    if (!src || n != m->n_params)
        return -EINVAL;
    memmove(m->params, src, n * sizeof(float));
    return 0;
}

int ag_model_num_tensors(const ag_model_t *m)
{
    return m->n_tensors;
}

const ag_tensor_info_t *ag_model_tensor(const ag_model_t *m, int index)
{
    if (index < 0 || index >= m->n_tensors)
        return NULL;
    return &m->tensors[index];
}

int ag_model_find_tensor(const ag_model_t *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return i;
    return -1;
}

/* ----------------------------------------------------------- activations */

static size_t s_round(size_t n)
{
    return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
}

/* Carves the activation slab for a batch of B x T (or, with base = NULL,
 * only counts the floats it needs). */
static size_t s_carve(ag_model_t *m, float *base, int B, int T)
{
    const ag_model_config_t *c = &m->cfg;
    const size_t R = (size_t)B * (size_t)T, D = (size_t)c->d_model, F = (size_t)c->mlp_ratio * D,
                 V = (size_t)c->vocab, H = (size_t)c->n_heads;
    size_t off = 0;
#define TAKE(ptr, n)                                                                               \
    do {                                                                                           \
        if (base)                                                                                  \
            ptr = base + off;                                                                      \
        off += s_round(n);                                                                         \
    } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        ag_layer_acts_t dummy, *a = base ? &m->la[l] : &dummy;
        TAKE(a->res, R * D);
        TAKE(a->ln1, R * D);
        TAKE(a->ln1_mean, R);
        TAKE(a->ln1_rstd, R);
        TAKE(a->qkv, R * 3 * D);
        TAKE(a->probs, R * H * (size_t)T);
        TAKE(a->atty, R * D);
        TAKE(a->res_mid, R * D);
        TAKE(a->ln2, R * D);
        TAKE(a->ln2_mean, R);
        TAKE(a->ln2_rstd, R);
        TAKE(a->fch, R * F);
        TAKE(a->fch_gelu, R * F);
    }
    TAKE(m->res_out, R * D);
    TAKE(m->lnf, R * D);
    TAKE(m->lnf_mean, R);
    TAKE(m->lnf_rstd, R);
    TAKE(m->logits, R * V);
    TAKE(m->values, R);
    TAKE(m->probs, R * V);
    TAKE(m->logz, R);
    TAKE(m->ent, R);
    TAKE(m->dres, R * D);
    TAKE(m->dln, R * D);
    TAKE(m->datty, R * D);
    TAKE(m->dqkv, R * 3 * D);
    TAKE(m->dfch, R * F);
    TAKE(m->dvalues, R);
#undef TAKE
    return off;
}

int ag_model_reserve(ag_model_t *m, int max_batch, int max_seq)
{
    if (max_batch < 1 || max_seq < 1 || max_seq > m->cfg.ctx)
        return -EINVAL;
    if ((long)max_batch * max_seq > (1L << 24))
        return -ERANGE;
    size_t need = s_carve(m, NULL, max_batch, max_seq);
    float *acts = ag_nn_alloc(need);
    int32_t *tokens = malloc((size_t)max_batch * (size_t)max_seq * sizeof(int32_t));
    int32_t *tok_targets = malloc((size_t)max_batch * (size_t)max_seq * sizeof(int32_t));
    ag_layer_acts_t *la = m->la ? m->la : calloc((size_t)m->cfg.n_layers, sizeof(*la));
    float *grads = m->grads ? m->grads : ag_nn_alloc(m->n_params);
    /* never below the current reservation, which stays if this call fails */
    const int scratch_seq = max_seq > m->max_seq ? max_seq : m->max_seq;
    if (!acts || !tokens || !tok_targets || !la || !grads ||
        s_set_pool(m, m->threads, scratch_seq) != 0)
        goto fail;
    if (!m->grads) {
        if (s_views(m, &m->g, grads) != 0)
            goto fail;
        memset(grads, 0, m->n_params * sizeof(float));
    }
    free(m->acts);
    free(m->tokens);
    free(m->tok_targets);
    m->acts = acts;
    m->acts_floats = need;
    m->tokens = tokens;
    m->tok_targets = tok_targets;
    m->la = la;
    m->grads = grads;
    m->max_rows = max_batch * max_seq;
    m->max_seq = max_seq;
    m->B = m->T = 0;
    return 0;
fail:
    free(acts);
    free(tokens);
    free(tok_targets);
    if (la != m->la)
        free(la);
    if (grads != m->grads)
        free(grads);
    return -ENOMEM;
}

float *ag_model_grads(ag_model_t *m)
{
    return m->grads;
}

void ag_model_zero_grad(ag_model_t *m)
{
    if (m->grads)
        memset(m->grads, 0, m->n_params * sizeof(float));
}

const float *ag_model_logits(const ag_model_t *m)
{
    return m->B && !(m->fwd_flags & AG_MODEL_NO_LOGITS) ? m->logits : NULL;
}

const float *ag_model_values(const ag_model_t *m)
{
    return m->B ? m->values : NULL;
}

const float *ag_model_hidden(const ag_model_t *m)
{
    return m->B ? m->lnf : NULL;
}

int ag_model_forward_shape(const ag_model_t *m, int *B, int *T)
{
    if (!m->B)
        return -EINVAL;
    *B = m->B;
    *T = m->T;
    return 0;
}

/* ---------------------------------------------------------------- forward */

typedef struct {
    ag_model_t *m;
} model_ctx_t;

/* res0 (R,D) = wte[token] + wpe[t] */
static void s_embed_share(void *arg, int index, int count)
{
    ag_model_t *m = ((model_ctx_t *)arg)->m;
    const int D = m->cfg.d_model, T = m->T;
    long lo, hi;
    ag_forkjoin_split((long)m->B * T, index, count, 1, &lo, &hi);
    float *res = m->la[0].res;
    for (long r = lo; r < hi; r++) {
        const float *te = m->p.wte + (long)m->tokens[r] * D;
        const float *pe = m->p.wpe + (r % T) * D;
        for (int c = 0; c < D; c++)
            res[r * D + c] = te[c] + pe[c];
    }
}

static void s_value_share(void *arg, int index, int count)
{
    ag_model_t *m = ((model_ctx_t *)arg)->m;
    const int D = m->cfg.d_model;
    long lo, hi;
    ag_forkjoin_split((long)m->B * m->T, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++)
        m->values[r] = cblas_sdot(D, m->lnf + r * D, 1, m->p.vw, 1) + m->p.vb[0];
}

int ag_model_forward(ag_model_t *m, int B, int T, const int32_t *tokens, unsigned flags)
{
    const ag_model_config_t *c = &m->cfg;
    if (!m->acts)
        return -EINVAL;
    if (B < 1 || T < 1 || !tokens)
        return -EINVAL;
    if (T > m->max_seq || (long)B * T > m->max_rows)
        return -ERANGE;
    const int R = B * T, D = c->d_model, F = c->mlp_ratio * D, H = c->n_heads;
    for (int r = 0; r < R; r++)
        if (tokens[r] < 0 || tokens[r] >= c->vocab)
            return -EINVAL;
    m->B = B;
    m->T = T;
    m->fwd_flags = flags;
    m->have_probs = 0;
    s_carve(m, m->acts, B, T);
    memcpy(m->tokens, tokens, (size_t)R * sizeof(int32_t));
    model_ctx_t mc = {m};
    ag_forkjoin_run(m->fj, s_embed_share, &mc);
    float *att_scratch = m->scratch;
    for (int l = 0; l < c->n_layers; l++) {
        const ag_layer_view_t *p = &m->p.layers[l];
        ag_layer_acts_t *a = &m->la[l];
        float *next = l + 1 < c->n_layers ? m->la[l + 1].res : m->res_out;
        ag_nn_layernorm_linear(m->fj, a->ln1, a->ln1_mean, a->ln1_rstd, a->res, p->ln1w, p->ln1b,
                               a->qkv, NULL, p->qkvw, p->qkvb, R, 3 * D, D);
        ag_nn_attention(m->fj, a->atty, a->probs, a->qkv, B, T, D, H, att_scratch);
        ag_nn_linear(m->fj, a->res_mid, a->atty, p->projw, p->projb, a->res, R, D, D);
        ag_nn_layernorm_linear(m->fj, a->ln2, a->ln2_mean, a->ln2_rstd, a->res_mid, p->ln2w,
                               p->ln2b, a->fch, a->fch_gelu, p->fcw, p->fcb, R, F, D);
        ag_nn_linear(m->fj, next, a->fch_gelu, p->fcpw, p->fcpb, a->res_mid, R, D, F);
    }
    ag_nn_layernorm(m->fj, m->lnf, m->lnf_mean, m->lnf_rstd, m->res_out, m->p.lnfw, m->p.lnfb, R,
                    D);
    if (!(flags & AG_MODEL_NO_LOGITS))
        ag_nn_linear(m->fj, m->logits, m->lnf, m->p.headw, m->p.headb, NULL, R, c->vocab, D);
    ag_forkjoin_run(m->fj, s_value_share, &mc);
    return 0;
}

/* ------------------------------------------------------- per-token outputs */

typedef struct {
    ag_model_t *m;
    const int32_t *targets;
    const float *mask;
    float *logprobs, *entropy;
    /* backward */
    const float *dlogprobs, *dentropy;
} token_ctx_t;

/* Softmax of each row's logits into probs, with its log partition and
 * entropy: entropy = log Z - sum_k p_k z_k. */
static void s_logprobs_share(void *arg, int index, int count)
{
    const token_ctx_t *tc = arg;
    ag_model_t *m = tc->m;
    const int V = m->cfg.vocab;
    long lo, hi;
    ag_forkjoin_split((long)m->B * m->T, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        const int live = tc->mask ? tc->mask[r] != 0.0f : 1;
        m->tok_targets[r] = !live ? -1 : (tc->targets ? tc->targets[r] : -2);
        if (!live) {
            if (tc->logprobs)
                tc->logprobs[r] = 0.0f;
            if (tc->entropy)
                tc->entropy[r] = 0.0f;
            continue;
        }
        const float *z = m->logits + r * V;
        float *p = m->probs + r * V;
        memcpy(p, z, (size_t)V * sizeof(float));
        const double logz = ag_nn_softmax(p, V);
        double pz = 0.0;
        for (int k = 0; k < V; k++)
            pz += (double)p[k] * z[k];
        const double ent = logz - pz;
        m->logz[r] = (float)logz;
        m->ent[r] = (float)ent;
        if (tc->entropy)
            tc->entropy[r] = (float)ent;
        if (tc->logprobs)
            tc->logprobs[r] = tc->targets ? (float)((double)z[tc->targets[r]] - logz) : 0.0f;
    }
}

int ag_model_logprobs(ag_model_t *m, const int32_t *targets, const float *mask, float *logprobs,
                      float *entropy)
{
    if (!m->acts || !m->B || (m->fwd_flags & AG_MODEL_NO_LOGITS))
        return -EINVAL;
    const long R = (long)m->B * m->T;
    for (long r = 0; r < R; r++) {
        const float w = mask ? mask[r] : 1.0f;
        if (!(w >= 0.0f))
            return -EINVAL;
        if (w != 0.0f && targets && (targets[r] < 0 || targets[r] >= m->cfg.vocab))
            return -EINVAL;
    }
    token_ctx_t tc = {
        .m = m, .targets = targets, .mask = mask, .logprobs = logprobs, .entropy = entropy};
    ag_forkjoin_run(m->fj, s_logprobs_share, &tc);
    m->have_probs = 1;
    return 0;
}

/* d objective / d logits over the logits rows. With lp = log p(target):
 * d lp / d z_k = [k = target] - p_k, and d entropy / d z_k = -p_k (log p_k + H). */
static void s_dlogits_share(void *arg, int index, int count)
{
    const token_ctx_t *tc = arg;
    ag_model_t *m = tc->m;
    const int V = m->cfg.vocab;
    long lo, hi;
    ag_forkjoin_split((long)m->B * m->T, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++) {
        float *z = m->logits + r * V;
        const int t = m->tok_targets[r];
        if (t == -1) {
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float *p = m->probs + r * V;
        const float fg = tc->dlogprobs ? tc->dlogprobs[r] : 0.0f;
        const float fe = tc->dentropy ? -tc->dentropy[r] : 0.0f;
        const float flz = m->logz[r], fh = m->ent[r];
        for (int k = 0; k < V; k++)
            z[k] = -fg * p[k] + fe * p[k] * ((z[k] - flz) + fh);
        if (t >= 0)
            z[t] += fg;
    }
}

/* --------------------------------------------------------------- backward */

typedef struct {
    ag_model_t *m;
    const float *dvalues;
} value_bwd_ctx_t;

/* dlnf (R,D) += dvalue * w_v; the value head's weight and bias gradients are
 * column sums over rows, split by column so no two threads add into one. */
static void s_value_bwd_share(void *arg, int index, int count)
{
    const value_bwd_ctx_t *vc = arg;
    ag_model_t *m = vc->m;
    const int D = m->cfg.d_model;
    const long R = (long)m->B * m->T;
    long lo, hi;
    ag_forkjoin_split(R, index, count, 1, &lo, &hi);
    for (long r = lo; r < hi; r++)
        cblas_saxpy(D, vc->dvalues[r], m->p.vw, 1, m->dln + r * D, 1);
    ag_forkjoin_split(D, index, count, 1, &lo, &hi);
    for (long r = 0; r < R; r++) {
        const float dv = vc->dvalues[r];
        for (long k = lo; k < hi; k++)
            m->g.vw[k] += dv * m->lnf[r * D + k];
    }
    if (index == 0) {
        float s = 0.0f;
        for (long r = 0; r < R; r++)
            s += vc->dvalues[r];
        m->g.vb[0] += s;
    }
}

/* Token and position embedding gradients, split by column. */
static void s_embed_bwd_share(void *arg, int index, int count)
{
    ag_model_t *m = ((model_ctx_t *)arg)->m;
    const int D = m->cfg.d_model, T = m->T;
    const long R = (long)m->B * T;
    long lo, hi;
    ag_forkjoin_split(D, index, count, 1, &lo, &hi);
    for (long r = 0; r < R; r++) {
        const float *d = m->dres + r * D;
        float *te = m->g.wte + (long)m->tokens[r] * D;
        float *pe = m->g.wpe + (r % T) * D;
        for (long k = lo; k < hi; k++) {
            te[k] += d[k];
            pe[k] += d[k];
        }
    }
}

static void s_backward(ag_model_t *m, const float *dlogits, const float *dvalues)
{
    const ag_model_config_t *c = &m->cfg;
    const int B = m->B, T = m->T, R = B * T, D = c->d_model, F = c->mlp_ratio * D, H = c->n_heads;
    float *ln_scratch = m->scratch;
    if (dlogits)
        ag_nn_linear_backward(m->fj, m->dln, m->g.headw, m->g.headb, dlogits, m->lnf, m->p.headw, R,
                              c->vocab, D, 0);
    else
        memset(m->dln, 0, (size_t)R * D * sizeof(float));
    if (dvalues) {
        value_bwd_ctx_t vc = {m, dvalues};
        ag_forkjoin_run(m->fj, s_value_bwd_share, &vc);
    }
    memset(m->dres, 0, (size_t)R * D * sizeof(float));
    ag_nn_layernorm_backward(m->fj, m->dres, m->g.lnfw, m->g.lnfb, m->dln, m->res_out, m->p.lnfw,
                             m->lnf_mean, m->lnf_rstd, R, D, ln_scratch);
    for (int l = c->n_layers - 1; l >= 0; l--) {
        const ag_layer_view_t *p = &m->p.layers[l];
        const ag_layer_view_t *g = &m->g.layers[l];
        const ag_layer_acts_t *a = &m->la[l];
        /* MLP: out = res_mid + proj(gelu(fc(ln2(res_mid)))) */
        ag_nn_linear_gelu_backward(m->fj, m->dfch, g->fcpw, g->fcpb, m->dres, a->fch_gelu, a->fch,
                                   p->fcpw, R, D, F);
        ag_nn_linear_layernorm_backward(m->fj, m->dres, g->ln2w, g->ln2b, m->dln, g->fcw, g->fcb,
                                        m->dfch, a->ln2, p->fcw, a->res_mid, p->ln2w, a->ln2_mean,
                                        a->ln2_rstd, R, F, D, ln_scratch);
        /* attention: res_mid = res + proj(attn(qkv(ln1(res)))) */
        ag_nn_linear_backward(m->fj, m->datty, g->projw, g->projb, m->dres, a->atty, p->projw, R, D,
                              D, 0);
        ag_nn_attention_backward(m->fj, m->dqkv, m->datty, a->probs, a->qkv, B, T, D, H,
                                 m->scratch);
        ag_nn_linear_layernorm_backward(m->fj, m->dres, g->ln1w, g->ln1b, m->dln, g->qkvw, g->qkvb,
                                        m->dqkv, a->ln1, p->qkvw, a->res, p->ln1w, a->ln1_mean,
                                        a->ln1_rstd, R, 3 * D, D, ln_scratch);
    }
    model_ctx_t mc = {m};
    ag_forkjoin_run(m->fj, s_embed_bwd_share, &mc);
}

int ag_model_backward(ag_model_t *m, const float *dlogprobs, const float *dentropy,
                      const float *dvalues)
{
    if (!m->acts || !m->B)
        return -EINVAL;
    const int policy = dlogprobs || dentropy;
    if (policy && ((m->fwd_flags & AG_MODEL_NO_LOGITS) || !m->have_probs))
        return -EINVAL;
    if (policy) {
        token_ctx_t tc = {.m = m, .dlogprobs = dlogprobs, .dentropy = dentropy};
        ag_forkjoin_run(m->fj, s_dlogits_share, &tc);
        /* the logits now hold gradients: a second backward needs a new pass */
        m->have_probs = 0;
    }
    s_backward(m, policy ? m->logits : NULL, dvalues);
    return 0;
}

/* ------------------------------------------------------------------ flops */

static double s_matmul_params(const ag_model_config_t *c)
{
    const double D = c->d_model, F = (double)c->mlp_ratio * D;
    return c->n_layers * (3 * D * D + D * D + 2 * D * F) + (double)c->vocab * D + D;
}

double ag_model_train_flops_per_token(const ag_model_config_t *cfg, int T)
{
    /* forward attention per token at position t: 2 products of (t+1) x D
     * multiply-adds = 4 D (t+1) FLOPs; mean over t in [0, T) = 2 D (T+1). */
    const double att = 2.0 * cfg->d_model * (T + 1.0) * cfg->n_layers;
    return 3.0 * (2.0 * s_matmul_params(cfg) + att);
}

double ag_model_decode_flops(const ag_model_config_t *cfg, int pos)
{
    return 2.0 * s_matmul_params(cfg) + 4.0 * cfg->d_model * (pos + 1.0) * cfg->n_layers;
}
