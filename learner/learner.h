/*
 * learner.h - the agora-learner service: the single writer of the policy.
 *
 * Threads: the libuv loop thread owns the sockets (trajectories ROUTER,
 * control ROUTER, weights PUB), so acks, status and weight snapshots are
 * answered while an update runs; one training thread owns the models and
 * runs the warm start, then PPO updates. The service host
 * (common/net/service.h) runs that thread, stops it on SIGINT/SIGTERM or at
 * max_seconds, asks it for checkpoints and keeps the exit code. The two
 * threads share, under the host's lock, the queue of accepted trajectories (in
 * arrival order), the de-duplication memory, the counters and the latest
 * metrics; new weight versions go from the trainer to the loop through an
 * outbox and ag_service_wake, and are published on the loop thread.
 *
 * Batch composition depends only on the arrival order of trajectories: an
 * update takes the first ppo.batch_trajectories queued trajectories that are
 * not stale at batch time. So feeding the same trajectories in the same order
 * gives the same updates (the resume-equivalence test relies on it).
 *
 * Rendezvous (registry.h): env and reward servers register with the control
 * service and heartbeat; actors fetch the run file (run_text), the game, the
 * model's shape, the advertised endpoints and the live servers from it. A
 * lock on learner.out/lock keeps a second learner out of the same directory.
 *
 * Output directory (learner.out): metrics.jsonl, reference.ckpt,
 * policy.ckpt (+ optimizer), queue.bin (the queued, untrained trajectories),
 * state.json, league/VERSION.ckpt. --resume DIR continues from DIR's
 * policy.ckpt, reference.ckpt, queue.bin, state.json and league.
 */
#ifndef AG_LEARNER_H
#define AG_LEARNER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"
#include "ppo.h"
#include "warmstart.h"

/* learner.progress: the live progress line on stderr. */
enum { AG_LEARNER_PROGRESS_OFF, AG_LEARNER_PROGRESS_ON, AG_LEARNER_PROGRESS_AUTO };

/* What agora-learner's option table (learner_options.h) fills. */
typedef struct ag_learner_opts {
    const char *trajectories; /* ROUTER bind */
    const char *weights;      /* PUB bind */
    const char *control;      /* ROUTER bind */
    const char *advertise;    /* host name peers reach the learner by ("" = bound address or
                                 this machine's host name) */
    double service_ttl_s;     /* a registered server silent this long is dropped */
    const char *run_text;     /* the effective run file RunConfig hands out (NULL = "") */
    const char *out;          /* output directory */
    const char *resume;       /* "" or a directory to resume from */
    ag_model_config_t model;
    uint64_t seed;
    int threads;
    long max_updates;   /* 0 = never stop by count */
    double max_seconds; /* 0 = never stop by time */
    double checkpoint_interval_s;
    long max_staleness;
    long batch_trajectories;
    long max_pending;     /* queued trajectories before OVERLOADED */
    long min_actors;      /* distinct actors queued before the first update */
    long league_interval; /* keep every N-th version (1, 1+N, ...) */
    long league_max;      /* league snapshots served (oldest dropped) */
    int pub_hwm;
    int progress; /* AG_LEARNER_PROGRESS_*: AUTO is on when stderr is a terminal */
    ag_ppo_config_t ppo;
    ag_warmstart_config_t ws;
} ag_learner_opts_t;

typedef struct ag_learner ag_learner_t;

/*
 * Binds the sockets, prepares the output directory, loads the resume state
 * if asked, and starts the training thread. Returns NULL after logging why.
 * The strings in o are copied.
 */
ag_learner_t *ag_learner_create(uv_loop_t *loop, void *zctx, const ag_learner_opts_t *o);

/* Asks for a clean stop: the trainer finishes its update, checkpoints, and
 * the learner closes its handles so the loop ends. Loop thread only. */
void ag_learner_stop(ag_learner_t *l);

/* 0 after a clean run, 1 after a failure (to be called after the loop ended). */
int ag_learner_exit_code(const ag_learner_t *l);

/* Frees everything; call after uv_run returned. Accepts NULL. */
void ag_learner_destroy(ag_learner_t **self);

#endif
