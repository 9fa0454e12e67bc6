/*
 * loss.c - the learner's objective (see loss.h): per-token terms and their
 * gradients with respect to the model's per-token outputs, in one pass over
 * the tokens. The vocabulary-wide work (softmax, d/d logits) stays in the
 * model core's threads; what is left here is a few flops per token.
 */
#include "loss.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ag_loss_config_default(ag_loss_config_t *lc)
{
    memset(lc, 0, sizeof(*lc));
    lc->pg_coef = 1.0f;
    lc->clip_eps = 0.2f;
    lc->vf_coef = 0.5f;
    lc->vf_clip = 0.2f;
    lc->kl_estimator = AG_KL_K3;
}

enum { ST_LOSS, ST_CE, ST_PG, ST_VL, ST_ENT, ST_KL, ST_AKL, ST_CLIP, ST_VCLIP, ST_N };

static int s_uses_targets(const ag_loss_config_t *lc)
{
    return lc->ce_coef != 0.0f || lc->pg_coef != 0.0f || lc->kl_coef != 0.0f;
}

static int s_check(const ag_loss_config_t *lc, const ag_loss_batch_t *b,
                   const ag_loss_outputs_t *out)
{
    if (s_uses_targets(lc) && !out->logprobs)
        return -EINVAL;
    if (lc->ent_coef != 0.0f && !out->entropy)
        return -EINVAL;
    if (lc->pg_coef != 0.0f && (!b->advantages || !b->old_logprobs))
        return -EINVAL;
    if (lc->vf_coef != 0.0f && (!b->returns || !out->values))
        return -EINVAL;
    if (lc->kl_coef != 0.0f && !b->ref_logprobs)
        return -EINVAL;
    if (lc->kl_estimator != AG_KL_K1 && lc->kl_estimator != AG_KL_K3)
        return -EINVAL;
    if (lc->clip_eps < 0.0f || !(lc->token_norm >= 0.0f))
        return -EINVAL;
    return 0;
}

/* One unmasked token of weight w: adds its terms into acc and gives d loss /
 * d log p(target) per unit weight (g) and d loss / d value (dv). */
static void s_token(const ag_loss_config_t *lc, const ag_loss_batch_t *b,
                    const ag_loss_outputs_t *out, size_t r, double w, double inv_norm,
                    double acc[ST_N], double *gp, double *dvp)
{
    double g = 0.0, loss = 0.0, dv = 0.0;
    if (out->entropy) {
        const double ent = out->entropy[r];
        acc[ST_ENT] += w * ent;
        loss -= lc->ent_coef * ent;
    }
    if (out->logprobs) {
        const double lp = out->logprobs[r];
        acc[ST_CE] -= w * lp;
        loss -= lc->ce_coef * lp;
        g -= lc->ce_coef;
        if (b->advantages && b->old_logprobs) {
            const double A = b->advantages[r];
            const double ratio = exp(lp - b->old_logprobs[r]);
            const double lo_r = 1.0 - lc->clip_eps, hi_r = 1.0 + lc->clip_eps;
            const double clipped = ratio < lo_r ? lo_r : (ratio > hi_r ? hi_r : ratio);
            const double s1 = ratio * A, s2 = clipped * A;
            const double pg = -(s1 < s2 ? s1 : s2);
            acc[ST_PG] += w * pg;
            acc[ST_AKL] += w * ((ratio - 1.0) - (lp - b->old_logprobs[r]));
            acc[ST_CLIP] += w * (fabs(ratio - 1.0) > lc->clip_eps);
            loss += lc->pg_coef * pg;
            if (s1 <= s2)
                g -= lc->pg_coef * A * ratio;
        }
        if (b->ref_logprobs) {
            const double d = b->ref_logprobs[r] - lp;
            double kl, dkl;
            if (lc->kl_estimator == AG_KL_K1) {
                kl = -d;
                dkl = 1.0;
            } else {
                kl = exp(d) - d - 1.0;
                dkl = 1.0 - exp(d);
            }
            acc[ST_KL] += w * kl;
            loss += lc->kl_coef * kl;
            g += lc->kl_coef * dkl;
        }
    }
    if (b->returns && out->values) {
        const double v = out->values[r], R = b->returns[r];
        double vl = 0.5 * (v - R) * (v - R), d = v - R;
        if (lc->vf_clip > 0.0f && b->old_values) {
            const double old = b->old_values[r], c = lc->vf_clip;
            const double dlt = v - old;
            const double vc = old + (dlt < -c ? -c : (dlt > c ? c : dlt));
            const double vl2 = 0.5 * (vc - R) * (vc - R);
            acc[ST_VCLIP] += w * (fabs(dlt) > c);
            if (vl2 > vl) {
                vl = vl2;
                d = fabs(dlt) < c ? vc - R : 0.0;
            }
        }
        acc[ST_VL] += w * vl;
        loss += lc->vf_coef * vl;
        dv = w * inv_norm * lc->vf_coef * d;
    }
    acc[ST_LOSS] += w * loss;
    *gp = g;
    *dvp = dv;
}

int ag_loss_tokens(const ag_loss_config_t *lc, const ag_loss_batch_t *b,
                   const ag_loss_outputs_t *out, size_t n, float *dlogprobs, float *dentropy,
                   float *dvalues, ag_loss_stats_t *st)
{
    if (!lc || !b || !out)
        return -EINVAL;
    int rc = s_check(lc, b, out);
    if (rc < 0)
        return rc;
    double wsum = 0.0;
    for (size_t r = 0; r < n; r++) {
        const float w = b->mask ? b->mask[r] : 1.0f;
        if (!(w >= 0.0f))
            return -EINVAL;
        wsum += w;
    }
    const double norm = lc->token_norm > 0.0f ? lc->token_norm : wsum;
    const double inv_norm = norm > 0.0 ? 1.0 / norm : 0.0;
    double acc[ST_N] = {0};
    for (size_t r = 0; r < n; r++) {
        const double w = b->mask ? b->mask[r] : 1.0;
        double g = 0.0, dv = 0.0;
        if (w != 0.0)
            s_token(lc, b, out, r, w, inv_norm, acc, &g, &dv);
        if (dlogprobs)
            dlogprobs[r] = (float)(w * inv_norm * g);
        if (dentropy) /* d loss / d entropy = -ent_coef per unit weight */
            dentropy[r] = -(float)(w * inv_norm * lc->ent_coef);
        if (dvalues)
            dvalues[r] = (float)dv;
    }
    if (st) {
        const double inv = wsum > 0.0 ? 1.0 / wsum : 0.0;
        st->loss = acc[ST_LOSS] * inv_norm;
        st->ce = acc[ST_CE] * inv;
        st->policy_loss = acc[ST_PG] * inv;
        st->value_loss = acc[ST_VL] * inv;
        st->entropy = acc[ST_ENT] * inv;
        st->kl = acc[ST_KL] * inv;
        st->approx_kl = acc[ST_AKL] * inv;
        st->clip_frac = acc[ST_CLIP] * inv;
        st->value_clip_frac = acc[ST_VCLIP] * inv;
        st->tokens = wsum;
    }
    return 0;
}

/* ------------------------------------------------------------- with a model */

struct ag_loss {
    size_t cap;
    float *lp, *ent, *dlp, *dent, *dv;
};

ag_loss_t *ag_loss_create(void)
{
    return calloc(1, sizeof(ag_loss_t));
}

static void s_free_arrays(ag_loss_t *l)
{
    free(l->lp);
    free(l->ent);
    free(l->dlp);
    free(l->dent);
    free(l->dv);
}

void ag_loss_destroy(ag_loss_t **self)
{
    if (!self || !*self)
        return;
    s_free_arrays(*self);
    free(*self);
    *self = NULL;
}

static int s_reserve(ag_loss_t *l, size_t n)
{
    if (n <= l->cap)
        return 0;
    s_free_arrays(l);
    memset(l, 0, sizeof *l);
    float **a[] = {&l->lp, &l->ent, &l->dlp, &l->dent, &l->dv};
    for (size_t k = 0; k < sizeof a / sizeof a[0]; k++)
        if (!(*a[k] = malloc(n * sizeof(float))))
            return -ENOMEM;
    l->cap = n;
    return 0;
}

static int s_run(ag_loss_t *l, ag_model_t *m, const ag_loss_batch_t *b, const ag_loss_config_t *lc,
                 ag_loss_stats_t *st, int backward)
{
    int B, T;
    if (!l || !b || !lc || ag_model_forward_shape(m, &B, &T) < 0)
        return -EINVAL;
    const size_t n = (size_t)B * (size_t)T;
    int rc = s_reserve(l, n);
    if (rc < 0)
        return rc;
    const int have_logits = ag_model_logits(m) != NULL;
    ag_loss_outputs_t out = {.values = ag_model_values(m)};
    if (have_logits) {
        rc = ag_model_logprobs(m, b->targets, b->mask, l->lp, l->ent);
        if (rc < 0)
            return rc;
        out.logprobs = b->targets ? l->lp : NULL;
        out.entropy = l->ent;
    }
    rc = ag_loss_tokens(lc, b, &out, n, backward ? l->dlp : NULL, backward ? l->dent : NULL,
                        backward ? l->dv : NULL, st);
    if (rc < 0)
        return rc;
    if (b->out_logprobs)
        for (size_t r = 0; r < n; r++)
            b->out_logprobs[r] = out.logprobs ? l->lp[r] : 0.0f;
    if (b->out_entropy)
        for (size_t r = 0; r < n; r++)
            b->out_entropy[r] = out.entropy ? l->ent[r] : 0.0f;
    if (!backward)
        return 0;
    const int policy_grad = have_logits && (s_uses_targets(lc) || lc->ent_coef != 0.0f);
    const int value_grad = lc->vf_coef != 0.0f;
    return ag_model_backward(m, policy_grad ? l->dlp : NULL, policy_grad ? l->dent : NULL,
                             value_grad ? l->dv : NULL);
}

int ag_loss_eval(ag_loss_t *l, ag_model_t *m, const ag_loss_batch_t *b, const ag_loss_config_t *lc,
                 ag_loss_stats_t *st)
{
    return s_run(l, m, b, lc, st, 0);
}

int ag_loss_backward(ag_loss_t *l, ag_model_t *m, const ag_loss_batch_t *b,
                     const ag_loss_config_t *lc, ag_loss_stats_t *st)
{
    return s_run(l, m, b, lc, st, 1);
}
