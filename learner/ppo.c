/*
 * ppo.c - the PPO update (see ppo.h). Minibatches are gathered from the
 * batch layout into a compact (rows, longest row) block so short games do
 * not pay for the longest sequence of the whole batch.
 */
#include "clock.h"
#include "ppo.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct ag_ppo {
    ag_model_t *policy;
    ag_model_t *ref;
    ag_adamw_t *opt;
    ag_loss_t *loss;
    ag_ppo_config_t c;
    ag_rng_t rng;
    double kl_coef;
};

/* A compact minibatch: rows gathered from a batch, (B, T) with T the longest. */
typedef struct mb {
    int B, T;
    int32_t *tokens, *targets;
    float *mask, *adv, *prox, *ret, *values, *ref, *lp;
} mb_t;

static int s_mb_alloc(mb_t *m, int rows, int T)
{
    memset(m, 0, sizeof *m);
    size_t n = (size_t)rows * (size_t)T;
    m->tokens = malloc(n * sizeof *m->tokens);
    m->targets = malloc(n * sizeof *m->targets);
    float **f[] = {&m->mask, &m->adv, &m->prox, &m->ret, &m->values, &m->ref, &m->lp};
    int fail = !m->tokens || !m->targets;
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        *f[k] = malloc(n * sizeof(float));
        fail |= !*f[k];
    }
    return fail ? -ENOMEM : 0;
}

static void s_mb_free(mb_t *m)
{
    free(m->tokens);
    free(m->targets);
    free(m->mask);
    free(m->adv);
    free(m->prox);
    free(m->ret);
    free(m->values);
    free(m->ref);
    free(m->lp);
    memset(m, 0, sizeof *m);
}

/* Copies rows idx[0..n) of b into m, cut to the longest of them. */
static void s_gather(mb_t *m, const ag_batch_t *b, const int *idx, int n)
{
    int T = 1;
    for (int k = 0; k < n; k++)
        if (b->len[idx[k]] > T)
            T = b->len[idx[k]];
    m->B = n;
    m->T = T;
    for (int k = 0; k < n; k++) {
        const size_t src = (size_t)idx[k] * (size_t)b->T, dst = (size_t)k * (size_t)T;
        const size_t bytes = (size_t)T * sizeof(float);
        memcpy(m->tokens + dst, b->tokens + src, (size_t)T * sizeof(int32_t));
        memcpy(m->targets + dst, b->targets + src, (size_t)T * sizeof(int32_t));
        memcpy(m->mask + dst, b->mask + src, bytes);
        memcpy(m->adv + dst, b->adv + src, bytes);
        memcpy(m->prox + dst, b->prox + src, bytes);
        memcpy(m->ret + dst, b->ret + src, bytes);
        memcpy(m->values + dst, b->values + src, bytes);
        memcpy(m->ref + dst, b->ref + src, bytes);
    }
}

/* Sorts rows idx[0..n) of b longest first (stable: equal lengths keep their order). */
static void s_longest_first(const ag_batch_t *b, int *idx, int n)
{
    for (int i = 1; i < n; i++) {
        const int row = idx[i];
        int k = i;
        while (k > 0 && b->len[idx[k - 1]] < b->len[row]) {
            idx[k] = idx[k - 1];
            k--;
        }
        idx[k] = row;
    }
}

/* Rows per forward pass: ppo.microbatch, at most a minibatch. */
static int s_micro(const ag_ppo_config_t *c)
{
    return c->microbatch > 0 && c->microbatch < c->minibatch ? c->microbatch : c->minibatch;
}

/* ag_ppo_score, also counting the positions computed (padding included). */
static int s_score(ag_model_t *m, const ag_batch_t *b, int chunk, float *lp, float *values,
                   double *positions)
{
    mb_t mb;
    int rc = s_mb_alloc(&mb, chunk, b->T);
    int *order = malloc((size_t)b->B * sizeof *order);
    if (rc < 0 || !order) {
        s_mb_free(&mb);
        free(order);
        return -ENOMEM;
    }
    /* Rows of similar length share a chunk, so little of the forward pass is padding. */
    for (int i = 0; i < b->B; i++)
        order[i] = i;
    s_longest_first(b, order, b->B);
    for (int r0 = 0; r0 < b->B && rc == 0; r0 += chunk) {
        int n = b->B - r0 < chunk ? b->B - r0 : chunk;
        const int *idx = order + r0;
        s_gather(&mb, b, idx, n);
        *positions += (double)mb.B * mb.T;
        rc = ag_model_forward(m, mb.B, mb.T, mb.tokens, 0);
        if (rc < 0)
            break;
        rc = ag_model_logprobs(m, mb.targets, mb.mask, mb.lp, NULL);
        if (rc < 0)
            break;
        const float *v = ag_model_values(m);
        for (int k = 0; k < n; k++) {
            const size_t src = (size_t)k * (size_t)mb.T, dst = (size_t)idx[k] * (size_t)b->T;
            memcpy(lp + dst, mb.lp + src, (size_t)mb.T * sizeof(float));
            if (values)
                memcpy(values + dst, v + src, (size_t)mb.T * sizeof(float));
        }
    }
    s_mb_free(&mb);
    free(order);
    return rc;
}

int ag_ppo_score(ag_model_t *m, const ag_batch_t *b, int chunk, float *lp, float *values)
{
    double positions = 0;
    return s_score(m, b, chunk, lp, values, &positions);
}

int ag_ppo_score_rows(ag_model_t *m, const ag_seq_t *const *rows, size_t n, float **lp)
{
    for (size_t i = 0; i < n; i++)
        lp[i] = NULL;
    ag_batch_t b;
    int rc = ag_batch_init(&b, rows, n);
    if (rc < 0)
        return rc;
    double positions = 0;
    rc = s_score(m, &b, b.B, b.ref, NULL, &positions);
    for (int i = 0; i < b.B && rc == 0; i++) {
        lp[i] = malloc((size_t)b.len[i] * sizeof(float));
        if (!lp[i])
            rc = -ENOMEM;
        else
            memcpy(lp[i], b.ref + (size_t)i * (size_t)b.T, (size_t)b.len[i] * sizeof(float));
    }
    if (rc < 0)
        for (size_t i = 0; i < n; i++) {
            free(lp[i]);
            lp[i] = NULL;
        }
    ag_batch_finish(&b);
    return rc;
}

ag_ppo_t *ag_ppo_create(ag_model_t *policy, ag_model_t *ref, const ag_ppo_config_t *c,
                        uint64_t seed)
{
    if (!policy || c->epochs < 1 || c->minibatch < 1 ||
        (c->kl_estimator != AG_KL_K1 && c->kl_estimator != AG_KL_K3))
        return NULL;
    ag_ppo_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->policy = policy;
    p->ref = ref;
    p->c = *c;
    /* An adaptive coefficient needs somewhere to start from. */
    p->kl_coef = c->kl_target > 0.0f && c->kl_coef <= 0.0f ? 0.01 : c->kl_coef;
    ag_rng_seed(&p->rng, seed);
    const int ctx = ag_model_config(policy)->ctx;
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    oc.lr = c->lr;
    oc.weight_decay = c->weight_decay;
    oc.grad_clip = c->max_grad_norm;
    p->opt = ag_adamw_create(policy, &oc);
    p->loss = ag_loss_create();
    if (!p->opt || !p->loss || ag_model_reserve(policy, c->minibatch, ctx) < 0 ||
        (ref && ag_model_reserve(ref, c->minibatch, ctx) < 0)) {
        ag_ppo_destroy(&p);
        return NULL;
    }
    return p;
}

void ag_ppo_destroy(ag_ppo_t **self)
{
    if (!self || !*self)
        return;
    ag_adamw_destroy(&(*self)->opt);
    ag_loss_destroy(&(*self)->loss);
    free(*self);
    *self = NULL;
}

ag_adamw_t *ag_ppo_optimizer(ag_ppo_t *p)
{
    return p->opt;
}

ag_rng_t *ag_ppo_rng(ag_ppo_t *p)
{
    return &p->rng;
}

double ag_ppo_kl_coef(const ag_ppo_t *p)
{
    return p->kl_coef;
}

void ag_ppo_set_kl_coef(ag_ppo_t *p, double coef)
{
    p->kl_coef = coef;
}

/* Statistics of the proximal pass: reference KL and explained variance. */
static void s_batch_stats(const ag_ppo_t *p, const ag_batch_t *b, int use_ref, ag_ppo_stats_t *st)
{
    const size_t n = (size_t)b->B * (size_t)b->T;
    double cnt = 0, kl = 0, rs = 0, rq = 0, es = 0, eq = 0;
    for (size_t i = 0; i < n; i++) {
        if (b->mask[i] == 0.0f)
            continue;
        cnt++;
        if (use_ref) {
            double d = (double)b->ref[i] - b->prox[i];
            kl += p->c.kl_estimator == AG_KL_K1 ? -d : exp(d) - d - 1.0;
        }
        double r = b->ret[i], e = r - b->values[i];
        rs += r;
        rq += r * r;
        es += e;
        eq += e * e;
    }
    if (!cnt)
        return;
    double var_r = rq / cnt - (rs / cnt) * (rs / cnt);
    double var_e = eq / cnt - (es / cnt) * (es / cnt);
    st->kl_ref = kl / cnt;
    st->explained_variance = var_r > 1e-12 ? 1.0 - var_e / var_r : 0.0;
    st->return_mean = rs / cnt;
    st->generated_tokens = cnt;
}

int ag_ppo_prepare(ag_ppo_t *p, const ag_seq_t *const *rows, const float *const *ref, size_t n,
                   ag_batch_t *b, ag_ppo_stats_t *st)
{
    const ag_ppo_config_t *c = &p->c;
    const int use_ref = p->ref && (p->kl_coef > 0.0 || c->kl_target > 0.0f);
    memset(st, 0, sizeof *st);
    int rc = ag_batch_init(b, rows, n);
    if (rc < 0)
        return rc;
    const double t0 = ag_now();
    rc = s_score(p->policy, b, s_micro(c), b->prox, b->values, &st->score_positions);
    if (rc == 0 && use_ref && ref) {
        for (int i = 0; i < b->B; i++)
            memcpy(b->ref + (size_t)i * (size_t)b->T, ref[i], (size_t)b->len[i] * sizeof(float));
    } else if (rc == 0 && use_ref) {
        rc = s_score(p->ref, b, s_micro(c), b->ref, NULL, &st->score_positions);
    }
    st->score_s = ag_now() - t0;
    st->score_passes = use_ref && !ref ? 2 : 1;
    if (rc == 0)
        rc = ag_batch_gae(b, rows, &c->gae);
    if (rc < 0) {
        ag_batch_finish(b);
        return rc;
    }
    s_batch_stats(p, b, use_ref, st);
    if (c->whiten)
        ag_batch_whiten(b, &st->adv_mean, &st->adv_std);
    /* Truncated importance weight of the behaviour policy against the proximal one. */
    const size_t total = (size_t)b->B * (size_t)b->T;
    double wsum = 0;
    for (size_t i = 0; i < total; i++) {
        if (b->mask[i] == 0.0f)
            continue;
        double w = exp((double)b->prox[i] - b->behaviour[i]);
        if (w > c->is_clip)
            w = c->is_clip;
        b->adv[i] = (float)(b->adv[i] * w);
        wsum += w;
    }
    st->is_weight_mean = st->generated_tokens > 0 ? wsum / st->generated_tokens : 0.0;
    for (int i = 0; i < b->B; i++)
        st->tokens += b->len[i];
    return 0;
}

int ag_ppo_update(ag_ppo_t *p, const ag_seq_t *const *rows, const float *const *ref, size_t n,
                  ag_ppo_stats_t *st)
{
    ag_ppo_stats_t local;
    if (!st)
        st = &local;
    memset(st, 0, sizeof *st);
    if (n == 0)
        return 0;
    const ag_ppo_config_t *c = &p->c;
    const int use_ref = p->ref && (p->kl_coef > 0.0 || c->kl_target > 0.0f);
    ag_batch_t b;
    mb_t mb = {0};
    int *perm = NULL;
    int rc = ag_ppo_prepare(p, rows, ref, n, &b, st);
    if (rc < 0)
        return rc;

    const int micro = s_micro(c);
    rc = s_mb_alloc(&mb, micro, b.T);
    perm = malloc((size_t)b.B * sizeof *perm);
    if (rc < 0 || !perm) {
        rc = -ENOMEM;
        goto done;
    }
    ag_loss_config_t lc;
    ag_loss_config_default(&lc);
    lc.clip_eps = c->clip_eps;
    lc.vf_coef = c->vf_coef;
    lc.vf_clip = c->vf_clip;
    lc.ent_coef = c->ent_coef;
    lc.kl_coef = use_ref ? (float)p->kl_coef : 0.0f;
    lc.kl_estimator = c->kl_estimator;
    double wtot = 0, kl_train = 0;
    const double t0 = ag_now();
    for (int e = 0; e < c->epochs; e++) {
        for (int i = 0; i < b.B; i++)
            perm[i] = i;
        for (int i = b.B - 1; i > 0; i--) {
            int j = (int)ag_rng_below(&p->rng, (uint32_t)i + 1);
            int t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int r0 = 0; r0 < b.B; r0 += c->minibatch) {
            const int m = b.B - r0 < c->minibatch ? b.B - r0 : c->minibatch;
            int *idx = perm + r0;
            /* One optimizer step per minibatch, its gradient accumulated over
             * micro-batches of rows of similar length (longest first), so little
             * of the forward pass is padding; each token counts 1 / (the
             * minibatch's generated tokens), as in one pass over it. */
            s_longest_first(&b, idx, m);
            double gen = 0;
            for (int k = 0; k < m; k++)
                for (int t = 0; t < b.len[idx[k]]; t++)
                    gen += b.mask[(size_t)idx[k] * (size_t)b.T + (size_t)t];
            if (gen <= 0)
                continue; /* nothing generated in these rows: no step */
            lc.token_norm = (float)gen;
            ag_model_zero_grad(p->policy);
            double sums[6] = {0}; /* policy, value, entropy, approx_kl, clip, kl: token-weighted */
            for (int u0 = 0; u0 < m; u0 += micro) {
                const int g = m - u0 < micro ? m - u0 : micro;
                s_gather(&mb, &b, idx + u0, g);
                st->train_positions += (double)mb.B * mb.T;
                rc = ag_model_forward(p->policy, mb.B, mb.T, mb.tokens, 0);
                if (rc < 0)
                    goto done;
                ag_loss_batch_t lb = {
                    .targets = mb.targets,
                    .mask = mb.mask,
                    .advantages = mb.adv,
                    .old_logprobs = mb.prox,
                    .returns = mb.ret,
                    .old_values = mb.values,
                    .ref_logprobs = use_ref ? mb.ref : NULL,
                };
                ag_loss_stats_t ls;
                rc = ag_loss_backward(p->loss, p->policy, &lb, &lc, &ls);
                if (rc < 0)
                    goto done;
                const double w = ls.tokens;
                sums[0] += w * ls.policy_loss;
                sums[1] += w * ls.value_loss;
                sums[2] += w * ls.entropy;
                sums[3] += w * ls.approx_kl;
                sums[4] += w * ls.clip_frac;
                sums[5] += w * ls.kl;
            }
            ag_adamw_stats_t os;
            rc = ag_adamw_step(p->opt, p->policy, &os);
            if (rc == -ERANGE) {
                /* A non-finite gradient is skipped, not applied: the update goes on. */
                rc = 0;
                continue;
            }
            if (rc < 0)
                goto done;
            wtot += gen;
            st->policy_loss += sums[0];
            st->value_loss += sums[1];
            st->entropy += sums[2];
            st->approx_kl += sums[3];
            st->clip_frac += sums[4];
            kl_train += sums[5];
            st->grad_norm += os.grad_norm;
            st->lr = os.lr;
            st->steps++;
        }
    }
    st->train_s = ag_now() - t0;
    if (wtot > 0) {
        st->policy_loss /= wtot;
        st->value_loss /= wtot;
        st->entropy /= wtot;
        st->approx_kl /= wtot;
        st->clip_frac /= wtot;
        kl_train /= wtot;
    }
    if (st->steps)
        st->grad_norm /= (double)st->steps;
    st->kl_coef = use_ref ? p->kl_coef : 0.0;
    if (use_ref && c->kl_target > 0.0f) {
        double err = kl_train / c->kl_target - 1.0;
        err = err < -0.2 ? -0.2 : (err > 0.2 ? 0.2 : err);
        p->kl_coef *= 1.0 + err;
        if (p->kl_coef < 1e-6)
            p->kl_coef = 1e-6;
    }
done:
    s_mb_free(&mb);
    free(perm);
    ag_batch_finish(&b);
    return rc;
}
