/*
 * rm.h - the reward model's math, independent of sockets and threads: how a
 * transcript becomes tokens, batched scoring, the two training losses with
 * their gradients with respect to the scores, and one training step over a
 * minibatch that mixes outcome and preference labels.
 *
 * A reward model is the model core's GPT trunk (model.h); its score for a
 * transcript is the scalar value head at the last real token, a raw logit.
 * Input tokens are BOS followed by the transcript's bytes; when that exceeds
 * the context, only the last ctx - 1 bytes are kept (the end of a game
 * decides it). Sequences of a batch are right-padded with AG_TOK_PAD to the
 * longest one: attention is causal, so padding never reaches a real token.
 *
 * Losses, for a score s (and a minibatch of n labels, each with weight w):
 *   outcome y in [0, 1]:      l = BCE(sigmoid(s), y) = softplus(s) - y s
 *   preference (pref, other): l = -log sigmoid(s_pref - s_other)
 *   minibatch:                L = (1/n) sum_i w_i l_i
 *
 * An ag_rm_t is one model plus a workspace for batches of up to max_seqs
 * sequences; it is not thread-safe (one call at a time), like the model.
 * Functions that can fail return 0 or a negative errno: -EINVAL (bad
 * arguments), -ERANGE (more sequences than max_seqs in one training batch),
 * -ENOMEM, or what the model core returns.
 */
#ifndef AG_RM_H
#define AG_RM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "optim.h"

enum { AG_RM_OUTCOME = 0, AG_RM_PREFERENCE = 1 };

/* A transcript: bytes, not necessarily NUL-terminated. */
typedef struct ag_rm_text {
    const uint8_t *data;
    size_t len;
} ag_rm_text_t;

/* One label. Outcome: text[0] with target y. Preference: text[0] (a) and
 * text[1] (b), preferred = 0 (a) or 1 (b). weight > 0. */
typedef struct ag_rm_label {
    int kind;
    int preferred;
    float target;
    float weight;
    ag_rm_text_t text[2];
} ag_rm_label_t;

/* Figures of one minibatch (or one evaluation). */
typedef struct ag_rm_stats {
    double loss;      /* L above */
    double grad_norm; /* global gradient norm before clipping (training step only) */
    double correct;   /* labels the scores get right (see ag_rm_label_correct) */
    double labels;
    double tokens; /* real tokens forwarded */
} ag_rm_stats_t;

/* How many trailing bytes of a len-byte transcript a ctx-token model reads. */
size_t ag_rm_kept_bytes(size_t len, int ctx);

/* BOS then the last ctx - 1 bytes of text into out (room for ctx tokens).
 * Returns the number of tokens, 1..ctx. */
int ag_rm_tokenize(const uint8_t *text, size_t len, int ctx, int32_t *out);

/* The losses of one label and their derivatives with respect to the
 * score(s), computed without overflow for any finite score. */
double ag_rm_outcome_loss(double s, double y, double *ds);
double ag_rm_preference_loss(double s_pref, double s_other, double *ds_pref, double *ds_other);

/* 1 if the scores (s[0] for text[0], s[1] for text[1]) get the label right:
 * a preference when s_pref > s_other, an outcome when (s > 0) == (y > 0.5). */
int ag_rm_label_correct(const ag_rm_label_t *label, const float *s);

typedef struct ag_rm ag_rm_t;

/* A reward model of shape cfg (vocab must hold BOS and PAD), initialised
 * from seed, computing with threads threads (0 = all CPUs), with room for
 * max_seqs sequences of up to cfg->ctx tokens per forward. NULL on a bad
 * config or no memory. */
ag_rm_t *ag_rm_create(const ag_model_config_t *cfg, uint64_t seed, int threads, int max_seqs);
void ag_rm_destroy(ag_rm_t **self);

/* The model inside (parameters, gradients, checkpoints); owned by rm. */
ag_model_t *ag_rm_model(ag_rm_t *rm);
int ag_rm_max_seqs(const ag_rm_t *rm);

/* Scores n transcripts into scores[n], in forwards of up to max_seqs. */
int ag_rm_score(ag_rm_t *rm, const ag_rm_text_t *texts, size_t n, float *scores);

/* Forwards the labels' transcripts as one batch (their sequences must fit
 * max_seqs) and computes L; with backward, also zeroes the gradient slab and
 * fills it with dL/dparameters. stats may be NULL. */
int ag_rm_loss(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, bool backward,
               ag_rm_stats_t *stats);

/* ag_rm_loss with backward, then one AdamW update (with opt's gradient
 * clipping). A non-finite gradient leaves the parameters unchanged and
 * returns -ERANGE. */
int ag_rm_train_step(ag_rm_t *rm, ag_adamw_t *opt, const ag_rm_label_t *labels, size_t n,
                     ag_rm_stats_t *stats);

/* Scores the labels (in batches that fit) and writes, per label, whether the
 * scores get it right into correct[n]. stats (may be NULL) gets the loss,
 * correct count and tokens. */
int ag_rm_evaluate(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, uint8_t *correct,
                   ag_rm_stats_t *stats);

#endif
