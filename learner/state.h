/*
 * state.h - what the learner needs, besides its checkpoints, to continue a
 * run exactly after --resume: counters, the policy version, the minibatch
 * RNG, the KL coefficient, the league list, per-actor training counts and
 * the de-duplication memory. Stored as a sidecar file (sidecar.h:
 * state.json in learner.out), written atomically after policy.ckpt and
 * queue.bin, so a crash leaves the previous state.
 *
 * The trajectories accepted but not yet trained at the checkpoint are in a
 * companion file, queue.bin, written just before state.json; state.json
 * records its count and CRC-32, so a queue.bin that does not belong to it
 * (a crash between the two writes) is recognised and not trained on.
 */
#ifndef AG_LEARNER_STATE_H
#define AG_LEARNER_STATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "fsutil.h" /* ag_write_atomic, which state.json and queue.bin are written with */
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
    /* queue.bin as saved with this state: 0 trajectories (or an older state
     * without the key) means there is nothing to read back. */
    uint64_t queue_count;
    uint32_t queue_crc32;
} ag_learner_state_t;

void ag_state_init(ag_learner_state_t *st);
void ag_state_finish(ag_learner_state_t *st);

/* Adds n to actor_id's count (creating it). Returns 0 or -ENOMEM. */
int ag_state_count_actor(ag_learner_state_t *st, const char *actor_id, uint64_t n);

/* Writes / reads state.json (format "agora-learner-state/1", sidecar.h).
 * Returns 0, or a negative errno with a reason in err: the file and the
 * member that failed its type or range check. */
int ag_state_save(const char *path, const ag_learner_state_t *st, char *err, size_t err_len);
int ag_state_load(const char *path, ag_learner_state_t *st, char *err, size_t err_len);

/*
 * queue.bin, all integers little-endian:
 *   8 bytes  magic "agoraQ1\n"
 *   u32      count
 *   count x  { u32 length, length bytes: a packed agora.v1.Trajectory }
 *   u32      CRC-32 (crc32.h) of every byte before it
 * The records are opaque here; the learner decodes and checks them.
 */
#define AG_QUEUE_MAGIC "agoraQ1\n"
#define AG_QUEUE_MAGIC_LEN 8

typedef struct ag_queue_rec {
    const uint8_t *data;
    size_t len;
} ag_queue_rec_t;

/* Encodes n records into a new buffer (*out, *out_len; the caller frees it)
 * and gives its CRC-32 in *crc. Returns 0, -EINVAL if a record or the count
 * does not fit in a u32, or -ENOMEM. */
int ag_queue_encode(const ag_queue_rec_t *recs, size_t n, uint8_t **out, size_t *out_len,
                    uint32_t *crc);

/* Checks a queue.bin image (size, magic, every record inside the file,
 * nothing after the last, the CRC) and returns its records in a new array
 * (*recs, freed by the caller; the records point into data) with *n and
 * *crc. Returns 0, -EBADMSG with a one-line reason in why, or -ENOMEM. */
int ag_queue_decode(const uint8_t *data, size_t len, ag_queue_rec_t **recs, size_t *n,
                    uint32_t *crc, char *why, size_t why_len);

#endif
