/*
 * state.h - what the learner needs, besides its checkpoints, to continue a
 * run exactly after --resume: counters, the policy version, the minibatch
 * RNG, the KL coefficient, the league list, per-actor training counts and
 * the de-duplication memory. Stored as JSON (state.json in learner.out),
 * written atomically (temporary file, fsync, rename, fsync of the
 * directory) right after policy.ckpt, so a crash leaves the previous pair.
 */
#ifndef AG_LEARNER_STATE_H
#define AG_LEARNER_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fsutil.h" /* ag_write_atomic, which state.json and its companions are written with */
#include "rng.h"

typedef struct ag_actor_count {
    char *actor_id;
    uint64_t trained; /* trajectories of this actor trained on */
} ag_actor_count_t;

typedef struct ag_learner_state {
    uint64_t version;      /* latest published policy version */
    uint64_t updates;      /* PPO updates done */
    uint64_t trajectories; /* accepted */
    uint64_t trained;      /* trained on */
    uint64_t tokens_trained;
    uint64_t duplicates, stale, dropped_stale, rejected;
    double kl_coef;
    double elapsed_s; /* wall time of the run before this process */
    ag_rng_t rng;     /* minibatch order */
    uint64_t *league; /* ascending */
    size_t n_league;
    ag_actor_count_t *actors;
    size_t n_actors;
    json_t *dedup; /* ag_dedup_to_json, owned */
} ag_learner_state_t;

void ag_state_init(ag_learner_state_t *st);
void ag_state_finish(ag_learner_state_t *st);

/* Adds n to actor_id's count (creating it). Returns 0 or -ENOMEM. */
int ag_state_count_actor(ag_learner_state_t *st, const char *actor_id, uint64_t n);

/* The state as JSON text (malloc'd), or NULL without memory. */
char *ag_state_dump(const ag_learner_state_t *st);

/* Returns 0, or a negative errno with a reason in err. */
int ag_state_save(const char *path, const ag_learner_state_t *st, char *err, size_t err_len);
int ag_state_load(const char *path, ag_learner_state_t *st, char *err, size_t err_len);

#endif
