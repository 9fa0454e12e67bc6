/*
 * ppo.h - one PPO update of the policy from a batch of seats.
 *
 * The update is decoupled PPO (behaviour vs proximal policy, as in AReaL):
 *   1. proximal pass: a forward of the current weights (no gradient) gives
 *      the proximal log-probs and values of every position; with a reference
 *      model and a KL coefficient (or target), a reference forward gives the
 *      reference log-probs;
 *   2. GAE over each seat's own tokens with the proximal values (gae.h),
 *      advantage whitening over the batch's generated tokens, then each
 *      advantage is multiplied by the truncated importance weight
 *      w = min(is_clip, exp(prox - behaviour)), which corrects for the policy
 *      lag of the actors (IMPALA's truncated rho);
 *   3. epochs x shuffled minibatches of sequences (each run as micro-batches
 *      of sequences of similar length, gradients accumulated, one optimizer
 *      step): clipped surrogate against
 *      the proximal policy, clipped value loss, entropy bonus, KL to the
 *      reference (k1 or k3), AdamW with global-norm clipping;
 *   4. with kl_target > 0, the KL coefficient adapts (Ziegler et al.): it is
 *      scaled by 1 + clip(kl / target - 1, -0.2, 0.2) after each update.
 *
 * The object borrows its models (the policy, and the optional reference) and
 * owns the optimizer and the minibatch-order RNG, which the learner saves and
 * restores for an exact resume. Not thread-safe.
 */
#ifndef AG_PPO_H
#define AG_PPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gae.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "seq.h"

/* An update's settings; the defaults are agora-learner's [ppo] rows
 * (ag_ppo_config_default, learner_options.h). */
typedef struct ag_ppo_config {
    int epochs;
    int minibatch;  /* sequences per minibatch */
    int microbatch; /* sequences per forward pass (0 = a whole minibatch) */
    float lr;
    float weight_decay;
    float max_grad_norm;
    ag_gae_config_t gae;
    float clip_eps;
    float vf_coef;
    float vf_clip; /* <= 0 disables value clipping */
    float ent_coef;
    float kl_coef;    /* initial KL coefficient; used only with a reference model */
    float kl_target;  /* 0 = fixed coefficient */
    int kl_estimator; /* AG_KL_K1 or AG_KL_K3 */
    float is_clip;    /* truncation of the importance weight */
    bool whiten;      /* whiten advantages over the batch */
} ag_ppo_config_t;

typedef struct ag_ppo_stats {
    double policy_loss, value_loss, entropy, approx_kl, clip_frac; /* means over minibatches */
    double kl_ref; /* reference KL at the proximal pass (0 without reference) */
    double explained_variance;
    double adv_mean, adv_std; /* before whitening */
    double is_weight_mean;    /* mean truncated importance weight */
    double return_mean;       /* mean value target */
    double grad_norm;         /* mean over optimizer steps */
    double lr, kl_coef;       /* the ones used */
    long steps;               /* optimizer steps taken */
    double tokens;            /* non-padding positions of the batch */
    double generated_tokens;  /* positions trained by the policy loss */
    /* Where the update's time goes: the scoring passes (forward only: proximal,
     * and reference when there is a KL term) and the training minibatches, with
     * the positions each computed (rows x padded length, so padding included). */
    int score_passes;
    double score_s, train_s;
    double score_positions, train_positions;
} ag_ppo_stats_t;

typedef struct ag_ppo ag_ppo_t;

/* ref may be NULL (no KL term). Reserves activations for minibatch x ctx
 * sequences in both models. NULL on bad config or no memory. */
ag_ppo_t *ag_ppo_create(ag_model_t *policy, ag_model_t *ref, const ag_ppo_config_t *c,
                        uint64_t seed);
void ag_ppo_destroy(ag_ppo_t **self);

/* One update from n rows (seats, each 2..ctx tokens). ref is NULL, or per row
 * the reference log-probs ag_ppo_score_rows gave for that very row, scored
 * ahead (the learner does it on a thread of its own while it trains): the
 * reference pass is then skipped. Returns 0, or a negative errno (the
 * parameters may then be partly updated only if a model call failed mid-way,
 * which valid rows never cause). */
int ag_ppo_update(ag_ppo_t *p, const ag_seq_t *const *rows, const float *const *ref, size_t n,
                  ag_ppo_stats_t *st);

/* Steps 1-2 of an update, exposed for tests and tools: builds the batch
 * (caller finishes it with ag_batch_finish) with proximal log-probs and
 * values, reference log-probs, and the final (whitened, importance-weighted)
 * advantages and returns; fills the batch part of st. */
int ag_ppo_prepare(ag_ppo_t *p, const ag_seq_t *const *rows, const float *const *ref, size_t n,
                   ag_batch_t *b, ag_ppo_stats_t *st);

ag_adamw_t *ag_ppo_optimizer(ag_ppo_t *p);
ag_rng_t *ag_ppo_rng(ag_ppo_t *p);
double ag_ppo_kl_coef(const ag_ppo_t *p);
void ag_ppo_set_kl_coef(ag_ppo_t *p, double coef);

/*
 * Runs model (no gradient) over the rows of batch b in chunks of up to
 * `chunk` rows and stores each masked position's log p(target) in lp (B,T)
 * (0 elsewhere) and, if values is not NULL, the value head's output (B,T).
 * The model must have room for chunk x b->T (ag_model_reserve).
 */
int ag_ppo_score(ag_model_t *m, const ag_batch_t *b, int chunk, float *lp, float *values);

/*
 * Runs model (no gradient) over rows[0..n) in one chunk and gives each row's
 * log p(target) at its positions in batch layout (ag_batch_init: the row's
 * len positions, 0 where not generated) in a new array lp[i] (free() it).
 * The model must have room for n x ctx. Returns 0 or a negative errno (then
 * no array is left).
 */
int ag_ppo_score_rows(ag_model_t *m, const ag_seq_t *const *rows, size_t n, float **lp);

#endif
