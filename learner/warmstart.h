/*
 * warmstart.h - the supervised warm start (SFT) of the policy.
 *
 * Demonstrations come from the environment servers' Demo request (games
 * played by their scripted bots) or from a JSONL file, one transcript per
 * line:
 *   {"game":"debate","turns":[{"player":0,"observation":"..","action":".."},..]}
 * Every seat of every transcript becomes one token sequence (seq.h); both
 * seats' actions are trained with cross-entropy on the generated tokens
 * (action bytes and EOT), the observations being context.
 *
 * Demo seeds: transcript i of the warm start is played with seed
 * warmstart.seed + i. Evaluation seeds start at 1e9 (agora-eval), so a warm
 * start seed below 1e9 - demos never sees an evaluation game.
 */
#ifndef AG_WARMSTART_H
#define AG_WARMSTART_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "rng.h"
#include "seq.h"

typedef struct ag_warmstart_config {
    long demos;          /* transcripts to fetch by Demo (0 = none) */
    uint64_t seed;       /* seed of the first transcript */
    const char *file;    /* JSONL transcripts instead of Demo ("" = none) */
    const char *env;     /* comma-separated env endpoints for Demo */
    const char *game;    /* game name */
    const char *options; /* "k=8,invalid_action=penalize" (kv.h) */
    int epochs;
    float lr;
    int batch;        /* sequences per minibatch */
    float obs_weight; /* weight of the observation tokens' loss (actions: 1) */
    int threads;      /* compute threads during the warm start (0 = all CPUs) */
    int timeout_ms;   /* per Demo request */
} ag_warmstart_config_t;

/*
 * Loads the demonstrations as sequences (caller frees with
 * ag_warmstart_free). A seat longer than ctx tokens cannot be trained on: it
 * is an error naming the game, the transcript (Demo index and seed, or
 * FILE:LINE) and the sizes, counted in *dropped; when no seat is left, the
 * load fails (-EINVAL) rather than train on nothing. Returns 0 or a negative
 * errno after logging why; why (why_len bytes, may be NULL) gets the reason
 * of a failure in one line.
 */
int ag_warmstart_load(const ag_warmstart_config_t *c, int ctx, ag_seq_t **out, size_t *n,
                      size_t *dropped, char *why, size_t why_len);
void ag_warmstart_free(ag_seq_t *seqs, size_t n);

/* Called after each epoch; a non-zero return stops the warm start. */
typedef int (*ag_warmstart_epoch_cb)(void *arg, int epoch, double ce, double tokens,
                                     double seconds);

/*
 * Trains m on the sequences: c->epochs passes in an order shuffled by rng,
 * minibatches of c->batch sequences, AdamW at c->lr with a cosine decay to
 * 0.1 lr, gradient clipping at 1. stop (may be NULL) is polled between
 * minibatches. Returns 0, -ECANCELED when stopped, or a negative errno.
 */
int ag_warmstart_train(ag_model_t *m, const ag_seq_t *seqs, size_t n,
                       const ag_warmstart_config_t *c, ag_rng_t *rng, const atomic_int *stop,
                       ag_warmstart_epoch_cb cb, void *arg);

#endif
