/*
 * learner_priv.h - the insides of agora-learner, shared by the files of the
 * service and nothing else: the struct behind ag_learner_t (who owns which
 * field: the loop thread, the trainer, or both under the service's lock) and
 * the functions one file of the service calls in another.
 *
 *   learner.c  lifecycle: create, stop, exit code, destroy
 *   ingest.c   the trajectories ROUTER: validation, de-dup, staleness, queue
 *   control.c  the control ROUTER: Status, GetWeights, League
 *   publish.c  weight snapshots, the weights PUB, the league in memory
 *   trainer.c  the trainer thread: warm start, PPO updates, the reference
 *              pass ahead, the metrics record of each update
 *   resume.c   checkpoints (policy.ckpt, queue.bin, state.json) and --resume
 */
#ifndef AG_LEARNER_PRIV_H
#define AG_LEARNER_PRIV_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "codec.h"
#include "control.pb-c.h"
#include "dedup.h"
#include "game.h"
#include "learner.h"
#include "registry.h"
#include "rpc.h"
#include "service.h"
#include "state.h"
#include "traj.h"
#include "weights.pb-c.h"

#define WEIGHTS_TOPIC "agora.v1.weights"
#define MAX_SUBMIT 64
#define PATH_LEN 4096

/* One published version of the weights. Loop thread only once handed over. */
typedef struct snap {
    uint64_t version, step;
    bool league;
    float *params;
    size_t n;
    uint32_t crc;
    int refs;
    struct snap *next;
} snap_t;

struct ag_learner {
    uv_loop_t *loop;
    void *zctx;
    ag_learner_opts_t o;
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char endpoints[3][512];
    char ws_file[PATH_LEN], ws_env[1024], ws_game[128], ws_options[1024];
    char advertised[3][512]; /* trajectories, weights, control as peers reach them */
    char *run_text;          /* the effective run file handed to joining actors */
    int lock_fd;             /* flock'ed learner.out/lock; -1 none */
    ag_registry_t *reg;      /* loop thread */
    char reg_envs[1024];     /* the registry's env servers, under the lock (trainer reads) */

    ag_rpc_server_t *traj;
    ag_rpc_server_t *ctl;
    ag_zsock_t *pub;
    /* the trainer thread, stop, time limit, checkpoint ticks, and the lock
     * and condition of everything shared below */
    ag_service_t *svc;
    uv_thread_t ref_thread;
    uv_mutex_t ref_lk; /* the reference model's activations: one forward at a time */

    /* shared with the trainer, under the service's lock */
    ag_traj_t **q; /* ring buffer of accepted trajectories, arrival order */
    size_t q_head, q_len, q_cap;
    uint64_t arrivals;
    size_t held; /* taken from the queue by the trainer for its next batch */
    bool gated;  /* fewer than min_actors distinct actors queued: no update yet */
    ag_dedup_t *dedup;
    ag_learner_state_t st;
    const char *phase;
    json_t *status; /* the latest metrics record */
    snap_t *outbox;
    bool ref_thread_on, ref_quit; /* the reference thread runs / must stop */

    /* loop thread only */
    snap_t *latest;
    snap_t **league;
    size_t n_league, cap_league;
    ag_buf_t buf;

    /* trainer thread only (and create/destroy) */
    ag_model_t *policy;
    ag_model_t *ref;
    /* the trainer's copy of the reference, for trajectories it scores itself, and how
     * many it scored so since the previous update */
    ag_model_t *ref_own;
    uint64_t ref_own_scored;
    ag_ppo_t *ppo;
    ag_rng_t ws_rng;
    ag_learner_game_t game; /* from the env server's Hello, before training */
    FILE *metrics;
    double t_start; /* monotonic time this process started */
    double t_last;  /* end of the previous update */
    bool resumed;
    uint64_t prev_duplicates, prev_stale;
};

/* learner.c: dir/name (dir NULL = learner.out); the output directory is
 * checked to leave room for every name below it. */
void ag_learner_path(char *dst, const ag_learner_t *l, const char *dir, const char *name);

/* ingest.c */
extern const ag_limits_t ag_learner_traj_limits; /* a Trajectory, as submitted or saved */
void ag_learner_on_traj(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                        size_t len, void *arg);
/* Opens the min_actors gate once the queue holds that many actors (under the lock). */
void ag_learner_open_gate(ag_learner_t *l);
/* Whether t claims a version not published yet, or is older than the trainer
 * may use any more (under the lock). */
bool ag_learner_too_stale(const ag_learner_t *l, const ag_traj_t *t);

/* control.c */
/* Loop thread: the registry changed; refreshes reg_envs for the trainer. */
void ag_learner_on_registry(void *arg);
void ag_learner_on_ctl(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                       size_t len, void *arg);

/* publish.c */
snap_t *ag_learner_snap_make(const ag_model_t *m, uint64_t version, uint64_t step, bool league);
void ag_learner_snap_unref(snap_t *s);
void ag_learner_weights_header(const ag_learner_t *l, const snap_t *s, Agora__V1__WeightsHeader *h,
                               Agora__V1__ModelConfig *mc);
/* Loop thread: publishes s and makes it the latest (and keeps it in the
 * league when marked). Takes ownership of s. */
void ag_learner_publish(ag_learner_t *l, snap_t *s);
/* Trainer: the snapshot of a new version (and its league checkpoint). */
snap_t *ag_learner_prepare_version(ag_learner_t *l, uint64_t version, uint64_t step);
/* Trainer, under the lock: makes version current and hands s to the loop
 * thread (the caller then calls ag_service_wake). */
void ag_learner_commit_version(ag_learner_t *l, uint64_t version, snap_t *s);
/* Loop thread (the service's on_wake): publishes what the trainer handed over. */
void ag_learner_on_wake(void *arg);

/* trainer.c: the service's worker */
void ag_learner_train(ag_service_t *svc, void *arg);

/* resume.c */
/* Trainer: policy.ckpt, queue.bin (held[0..n_held) first), then state.json. */
int ag_learner_checkpoint(ag_learner_t *l, ag_traj_t *const *held, size_t n_held);
/* Before the threads start: models, optimizer, counters, league, the queue. */
int ag_learner_resume(ag_learner_t *l, const char *dir);

#endif
