/*
 * traj.h - the learner's own copy of an accepted trajectory.
 *
 * A Trajectory from the wire is untrusted: ag_traj_from_pb checks everything
 * the trainer will rely on (lengths, token ids, turn indices, finite numbers,
 * the context limit) and copies the trainable seats into ag_seq_t streams
 * (seq.h), so a decoded request can be freed as soon as it is acknowledged.
 * Seats that are not trainable (bots, league opponents) are not kept: the
 * learner never trains on them, and their context is already inside the
 * trainable seat's own observations. The message itself is kept packed, so
 * the learner can save a queued trajectory exactly as it arrived and read it
 * back on --resume (queue.bin).
 */
#ifndef AG_TRAJ_H
#define AG_TRAJ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seq.h"
#include "trajectory.pb-c.h"

#define AG_TRAJ_MAX_SEATS 8
#define AG_TRAJ_MAX_ACTOR 256
#define AG_TRAJ_MAX_METRICS 64
#define AG_TRAJ_METRIC_NAME 64

typedef struct ag_traj_metric {
    char name[AG_TRAJ_METRIC_NAME];
    double value;
} ag_traj_metric_t;

enum { AG_REF_TODO, AG_REF_BUSY, AG_REF_DONE };

typedef struct ag_traj {
    char actor_id[AG_TRAJ_MAX_ACTOR + 1];
    uint64_t run_id;
    uint64_t sequence;
    uint64_t arrival;     /* position in the learner's arrival order */
    uint64_t min_version; /* oldest turn_version over the trainable seats */
    size_t n_seats;
    ag_seq_t seats[AG_TRAJ_MAX_SEATS]; /* trainable seats only */
    size_t n_returns;
    float returns[AG_TRAJ_MAX_SEATS];
    size_t n_metrics;
    ag_traj_metric_t metrics[AG_TRAJ_MAX_METRICS];
    bool truncated;
    /* Reference log-probs of each seat (ag_ppo_score_rows), scored ahead of
     * the update by the learner's reference thread; NULL until then, or if
     * scoring failed. ref_state (under the learner's lock) says where that
     * stands. */
    float *ref[AG_TRAJ_MAX_SEATS];
    int ref_state;
    uint8_t *pb; /* the Trajectory it was built from, packed; owned */
    size_t pb_len;
} ag_traj_t;

/*
 * Validates pb and copies it into a new ag_traj_t (free with ag_traj_free),
 * packed bytes of the whole message included. vocab and ctx are the model's:
 * every token must be below vocab and not PAD or reserved, and a trainable
 * seat may hold at most ctx tokens. Returns 0, or -EINVAL with a one-line
 * reason in why (the trajectory is then "rejected"), or -ENOMEM.
 */
int ag_traj_from_pb(const Agora__V1__Trajectory *pb, int vocab, int ctx, ag_traj_t **out, char *why,
                    size_t why_len);
void ag_traj_free(ag_traj_t **self);

/* Builds a SeatTrajectory message over s (the message points into s; s must
 * outlive it). For tests and tools that submit trajectories. */
void ag_traj_seat_to_pb(const ag_seq_t *s, uint32_t seat, bool trainable,
                        Agora__V1__SeatTrajectory *pb, uint32_t *tokens_buf);

#endif
