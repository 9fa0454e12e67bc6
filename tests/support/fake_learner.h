/*
 * fake_learner - the learner's three sockets, scripted, for testing actors:
 * a trajectory ROUTER that records what it receives (and can stay silent on
 * the first requests, to force resends), a weights PUB, and a control ROUTER
 * that answers GetWeights (after an optional delay: a learner still warming
 * up), Status and League. Weights are a real model's parameters with a real
 * header and CRC, so an actor under test loads and samples with them.
 */
#ifndef AG_FAKE_LEARNER_H
#define AG_FAKE_LEARNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"
#include "rpc.h"
#include "trajectory.pb-c.h"
#include "zsock.h"

typedef struct fake_learner {
    uv_loop_t *loop;
    ag_rpc_server_t *traj, *control;
    ag_zsock_t *pub;
    char traj_ep[64], pub_ep[64], control_ep[64]; /* as bound: ports resolved */
    ag_model_t *model;
    uint64_t version;
    uint64_t league[4];
    size_t n_league;
    /* behaviour */
    int ignore_submits;        /* submissions to leave unanswered */
    uint64_t control_after_ms; /* answer control only after this loop time */
    /* records */
    uint64_t submits, control_requests, get_weights;
    Agora__V1__Trajectory **trajs; /* every trajectory received (resends included) */
    size_t n_trajs, cap_trajs;
} fake_learner_t;

/* Binds the three endpoints (tcp://127.0.0.1:* or inproc://...); model config cfg, version 1. */
int fake_learner_init(fake_learner_t *fl, uv_loop_t *loop, void *zctx, const char *traj_ep,
                      const char *pub_ep, const char *control_ep, const ag_model_config_t *cfg);
void fake_learner_finish(fake_learner_t *fl);

/* fake_learner_init on free loopback ports, serving a copy of policy's
 * parameters (and config) as version 1; policy stays the caller's. */
int fake_learner_init_policy(fake_learner_t *fl, uv_loop_t *loop, void *zctx,
                             const ag_model_t *policy);

/*
 * Runs argv (an actor pointed at fl's endpoints) while serving it on fl's
 * loop, until it exits or timeout_ms pass (it is then killed); turn(fl,
 * arg), if given, is called on every turn of the loop, to act on what the
 * actor did so far. Returns the exit status (0..255), or -1.
 */
int fake_learner_run(fake_learner_t *fl, char *const argv[], int timeout_ms,
                     void (*turn)(fake_learner_t *fl, void *arg), void *arg);

/* Perturbs the weights, sets the version and publishes it (corrupt: wrong CRC). */
int fake_learner_publish(fake_learner_t *fl, uint64_t version, bool corrupt);

/* Distinct (actor_id, run_id, sequence) received. */
size_t fake_learner_distinct(const fake_learner_t *fl);

#endif
