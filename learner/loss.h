/*
 * loss.h - the learner's training objective, built on the model core's
 * per-token outputs: after ag_model_forward, the model gives log p(target),
 * the entropy and the value of each position (model.h); this file turns
 * them into the weighted objective below, its statistics and its per-token
 * gradients, which ag_model_backward carries into the parameters. The warm
 * start uses the CE term, the PPO update (ppo.h) the rest.
 *
 *   loss = ce_coef * CE + pg_coef * PPO + vf_coef * VALUE
 *          - ent_coef * ENTROPY + kl_coef * KL
 *   CE      = -log p(target)                          supervised warm start
 *   PPO     = -min(r A, clip(r, 1-clip_eps, 1+clip_eps) A),
 *             r = exp(log p(target) - behaviour log-prob)
 *   VALUE   = 0.5 max((v - R)^2, (v_clip - R)^2), v_clip = v_old +
 *             clip(v - v_old, -vf_clip, vf_clip); plain 0.5 (v - R)^2 if vf_clip <= 0
 *   ENTROPY = -sum_a p(a) log p(a) over the whole vocabulary
 *   KL      = k1: log p(target) - ref;  k3: exp(ref - lp) - (ref - lp) - 1
 * Each term is a mean over the masked tokens (weighted by the mask), or a sum
 * divided by token_norm when that is set.
 *
 * Errors: 0 or a negative errno: -EINVAL for a term whose inputs are missing,
 * a bad mask or target, or a bad config; -ENOMEM.
 */
#ifndef AG_LOSS_H
#define AG_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum { AG_KL_K1 = 1, AG_KL_K3 = 3 };

typedef struct ag_loss_config {
    float ce_coef;
    float pg_coef;
    float clip_eps; /* 0.2 */
    float vf_coef;
    float vf_clip; /* 0.2; <= 0 disables value clipping */
    float ent_coef;
    float kl_coef;
    int kl_estimator; /* AG_KL_K1 or AG_KL_K3 */
    /* Divide by this instead of the sum of the mask (> 0), e.g. the token
     * count of the whole batch when gradients of minibatches are accumulated. */
    float token_norm;
} ag_loss_config_t;

void ag_loss_config_default(ag_loss_config_t *lc); /* PPO: pg 1, vf 0.5, clips 0.2, k3 */

/* Per-token data, all (B,T) matching the last forward. A term's inputs are
 * needed only when its coefficient is non-zero; its statistic is reported
 * whenever its inputs are given. Targets where mask = 0 are not read. */
typedef struct ag_loss_batch {
    const int32_t *targets;    /* token at t+1 the policy is scored on */
    const float *mask;         /* >= 0 weight per token, usually 0/1; NULL = all 1 */
    const float *advantages;   /* PPO */
    const float *old_logprobs; /* PPO: behaviour policy's log p(target) */
    const float *returns;      /* value targets */
    const float *old_values;   /* value clipping */
    const float *ref_logprobs; /* KL: reference policy's log p(target) */
    float *out_logprobs;       /* if set: the current log p(target) (0 where masked) */
    float *out_entropy;        /* if set: the current entropy per token */
} ag_loss_batch_t;

/* Means over masked tokens (weighted by the mask). */
typedef struct ag_loss_stats {
    double loss;        /* the weighted objective */
    double ce;          /* mean -log p(target) */
    double policy_loss; /* PPO surrogate */
    double value_loss;
    double entropy;
    double kl;        /* to the reference, with the configured estimator */
    double approx_kl; /* behaviour -> current, k3 estimator */
    double clip_frac; /* share of tokens with |r - 1| > clip_eps */
    double value_clip_frac;
    double tokens; /* sum of the mask */
} ag_loss_stats_t;

/* The model's per-token outputs an objective is evaluated on, each (n) or
 * NULL when the model has none (logprobs: no logits or no targets; entropy:
 * no logits). */
typedef struct ag_loss_outputs {
    const float *logprobs;
    const float *entropy;
    const float *values;
} ag_loss_outputs_t;

/* The objective over n tokens from the model's outputs, its statistics (st
 * may be NULL), and, where the arrays are given, its gradients with respect
 * to each token's log-prob, entropy and value (0 at masked tokens). Pure
 * arithmetic: no model involved, so tests check it on its own. */
int ag_loss_tokens(const ag_loss_config_t *lc, const ag_loss_batch_t *b,
                   const ag_loss_outputs_t *out, size_t n, float *dlogprobs, float *dentropy,
                   float *dvalues, ag_loss_stats_t *st);

/* Per-token workspace for the two calls below; it grows to the largest batch
 * seen (the first batch of each size allocates, later ones do not). */
typedef struct ag_loss ag_loss_t;

ag_loss_t *ag_loss_create(void);
void ag_loss_destroy(ag_loss_t **self);

/* Evaluates the objective of the model's last forward without touching
 * gradients. */
int ag_loss_eval(ag_loss_t *l, ag_model_t *m, const ag_loss_batch_t *b, const ag_loss_config_t *lc,
                 ag_loss_stats_t *st);

/* Evaluates it and backpropagates it, adding into the model's gradient slab
 * (ag_model_backward: the logits of the last forward are overwritten). */
int ag_loss_backward(ag_loss_t *l, ag_model_t *m, const ag_loss_batch_t *b,
                     const ag_loss_config_t *lc, ag_loss_stats_t *st);

#endif
