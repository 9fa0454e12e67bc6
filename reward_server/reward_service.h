/*
 * reward_service.h - agora-reward's service: named reward models (rm.h) that score
 * transcripts and learn online from labels, behind the reward protocol
 * (reward.proto, docs/protocol.md §13) on one ROUTER socket.
 *
 * Threads. The process is hosted by common/net/service.h (the training
 * thread, stop on SIGINT/SIGTERM or at max_seconds, checkpoint ticks, the
 * lock below, the exit code). The libuv loop thread owns the socket and
 * answers every request itself: Score runs a forward pass on a
 * serving copy of the model's weights, Label validates and stores labels,
 * Stats reads counters. One training thread owns the models being trained
 * and takes one optimizer step at a time, round-robin over the models that
 * have work, then evaluates held-out labels. The two share, per model and
 * under one mutex, the replay buffer, the held-out set, the counters and a
 * published copy of the weights: after each step the trainer copies its
 * weights there, and before a Score the loop thread loads them into its
 * serving copy if they changed (version + 1). A Score therefore never waits
 * for training, only for the copy of one parameter slab.
 *
 * Training. Each accepted label is either held out (probability
 * opts.holdout, decided by a hash of its content so a resent label lands on
 * the same side) or added to the model's replay buffer (opts.buffer labels,
 * the oldest dropped) with a budget of opts.reuse training uses; minibatches
 * of opts.batch distinct labels are drawn uniformly from the buffer while
 * budget remains, then training idles until new labels arrive. When taking a
 * request's labels would leave more uses owed than a whole buffer's worth
 * (training is a buffer behind), Label answers ERROR_OVERLOADED.
 *
 * Idempotent labels. A LabelRequest may carry a batch_id; each model
 * remembers the ids of the batches it accepted (the newest
 * AG_REWARD_BATCH_IDS, batch_ids.h) with their reply's counts, and answers a
 * resend of one with those counts, flagged duplicate, learning nothing.
 *
 * Output (opts.out): per model NAME.ckpt (weights and AdamW state) and
 * NAME.labels (its replay buffer and held-out set), then reward-state.json
 * (version, labels, updates, rejected, duplicates, the batch ids remembered
 * and the NAME.labels it goes with),
 * each written atomically, every opts.checkpoint_interval_s and when the
 * service stops. opts.resume loads them from a directory, so a resumed
 * model trains on the same labels and is evaluated on the same held-out set.
 */
#ifndef AG_REWARD_SERVICE_H
#define AG_REWARD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"

#define AG_REWARD_MAX_MODELS 16
#define AG_REWARD_MAX_NAME 64          /* bytes of a model name */
#define AG_REWARD_MAX_ITEMS 256        /* items, preferences, outcomes per request */
#define AG_REWARD_MAX_TRANSCRIPT 65536 /* bytes of ScoreItem.transcript */
#define AG_REWARD_MAX_GAME 64          /* bytes of ScoreItem.game */
#define AG_REWARD_MAX_MESSAGE (16 << 20)
#define AG_REWARD_HELDOUT_MAX 4096 /* held-out labels kept per model (oldest dropped) */
#define AG_REWARD_BATCH_IDS 65536  /* Label batch ids remembered per model (oldest forgotten) */

typedef struct ag_reward_opts {
    const char *bind;   /* ROUTER endpoint */
    const char *models; /* comma-separated names: letters, digits, '_', '-', '.' */
    ag_model_config_t model;
    double lr;
    int batch;   /* labels per minibatch */
    long buffer; /* labels kept for training per model */
    double reuse;
    double holdout;
    int threads;       /* training compute threads (0 = all CPUs) */
    int score_threads; /* compute threads of each serving copy */
    uint64_t seed;
    double checkpoint_interval_s; /* 0 = only when stopping */
    const char *out;
    const char *resume; /* "" or a directory */
    const char *init;   /* "" or a policy checkpoint every fresh model starts from */
    double max_seconds; /* 0 = until stopped */
    bool signals;       /* stop on SIGINT/SIGTERM */
} ag_reward_opts_t;

typedef struct ag_reward_service ag_reward_service_t;

/*
 * Builds the models (resuming them if asked), binds, and starts the training
 * thread. Returns NULL after logging why; the loop must then still be run
 * once so that handles already created can close. If only the training
 * thread cannot start, the service is returned already closing, with exit
 * code 1. Strings in o are copied.
 */
ag_reward_service_t *ag_reward_service_create(uv_loop_t *loop, void *zctx,
                                              const ag_reward_opts_t *o);

/* The endpoint actually bound (tcp://...:* resolved). */
const char *ag_reward_service_endpoint(const ag_reward_service_t *s);

/* Asks for a clean stop: the trainer finishes its step and checkpoints, then
 * the service closes its handles so the loop ends. Loop thread only. */
void ag_reward_service_stop(ag_reward_service_t *s);

/* 0 after a clean stop, 1 if the final checkpoint could not be written. */
int ag_reward_service_exit_code(const ag_reward_service_t *s);

/* Frees everything; call after uv_run returned. Accepts NULL. */
void ag_reward_service_destroy(ag_reward_service_t **self);

#endif
