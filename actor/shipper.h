/*
 * shipper.h - the actor's trajectory outbox: at-least-once delivery of
 * finished episodes to the learner (docs/architecture.md §10).
 *
 * Each finished episode with a trainable seat becomes one Trajectory
 * (id = actor_id, run_id, sequence; the token streams of the trainable
 * seats that acted at least once, or, of an episode the runner ended on
 * refused actions, of the refused seat only; every seat's return; the env's
 * final info and metrics; truncated), packed once and
 * kept in a bounded outbox until the learner's SubmitAck names it
 * (accepted, duplicate, stale or rejected: all mean "do not resend").
 * Trajectories are sent in SubmitTrajectories batches of at most `batch`
 * over a DEALER with ZMQ_IMMEDIATE (nothing piles up for a learner that is
 * not there); one not acknowledged within resend_ms is sent again, so a
 * lost batch, a dropped connection or a restarted learner costs a resend,
 * and the learner's de-duplication by id makes it harmless. When the outbox
 * is full the oldest trajectory is dropped, with a warning.
 *
 * The request is assembled from the packed trajectories directly (a
 * repeated message field is the concatenation of its encoded elements), so
 * a resend costs no re-encoding.
 */
#ifndef AG_SHIPPER_H
#define AG_SHIPPER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "runner.h"

#define AG_SHIPPER_MAX_BATCH 64

typedef struct ag_shipper ag_shipper_t;

typedef struct ag_shipper_opts {
    const char *endpoint; /* learner trajectories ROUTER */
    const char *actor_id;
    uint64_t run_id;
    size_t max_outbox; /* trajectories kept; 0 = 4096 */
    int batch;         /* per request, 1..64; 0 = 64 */
    int resend_ms;     /* 0 = 5000 */
    int flush_ms;      /* how often due trajectories are sent; 0 = 100 */
} ag_shipper_opts_t;

typedef struct ag_shipper_stats {
    uint64_t added; /* trajectories queued */
    uint64_t sent;  /* trajectory sends, resends included */
    uint64_t resent;
    uint64_t requests;
    uint64_t accepted, duplicate, stale, rejected;
    uint64_t dropped;         /* outbox full */
    uint64_t errors;          /* Error replies */
    uint64_t overloaded;      /* of which ERROR_OVERLOADED (the learner's back-pressure) */
    uint64_t learner_version; /* from the last ack */
} ag_shipper_stats_t;

ag_shipper_t *ag_shipper_create(uv_loop_t *loop, void *zctx, const ag_shipper_opts_t *opts);
void ag_shipper_destroy(ag_shipper_t **self);

/*
 * Whether the trajectory of res carries seat s: a trainable seat that acted.
 * Of an episode the runner ended because the env refused a seat's actions
 * (res->invalid_ended), only that seat: its refused turns are penalised and
 * say what it did wrong, while the other seats have no outcome (the game
 * never ended by its rules) and their last turns would be blamed for it.
 */
bool ag_shipper_carries(const ag_runner_result_t *res, int s);

/* Queues a finished episode (the seats ag_shipper_carries). 0, or 1 if it
 * carries no seat (nothing queued), or a negative errno. */
int ag_shipper_add(ag_shipper_t *s, const ag_runner_result_t *res);

/* Sends what is due now; all = also what is in flight and not yet acknowledged. */
void ag_shipper_flush(ag_shipper_t *s, bool all);

/* Trajectories not yet acknowledged. */
size_t ag_shipper_pending(const ag_shipper_t *s);
void ag_shipper_get_stats(const ag_shipper_t *s, ag_shipper_stats_t *out);

#endif
