/*
 * policy_source.h - the actor's side of weights distribution (docs/architecture.md §4,
 * the Clone pattern): a snapshot from the learner's control socket
 * (GetWeights), then every newer version from its PUB socket (topic
 * "agora.v1.weights"), plus league snapshots on request.
 *
 * Every weights message is checked before it is kept: dtype "f32le", a model
 * config this code can build, a raw frame of exactly the config's parameter
 * count in bytes, and its CRC-32. Valid weights are staged; the actor takes
 * them (ag_policy_source_take) only between generations.
 *
 * Versions: a newer version replaces the staged one; an older one is
 * ignored, except when the learner was restarted: the PUB stream going
 * backwards (a publisher's versions only grow, so a lower one is a new
 * learner), or two status polls in a row reporting a lower version than
 * ours (a restarted learner that has not published yet). The control socket
 * is polled (Status) every poll_ms, which also recovers PUB messages lost to
 * a reconnect. Until the first weights arrive, GetWeights is retried.
 *
 * The model config comes from the learner: the first weights fix it, and
 * later weights with another config are refused (logged).
 */
#ifndef AG_POLICY_SOURCE_H
#define AG_POLICY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"

typedef struct ag_policy_source ag_policy_source_t;

typedef struct ag_policy_source_opts {
    const char *control; /* learner control endpoint (ROUTER) */
    const char *weights; /* learner weights endpoint (PUB); NULL or "" = control only */
    int poll_ms;         /* status polls; 0 = 5000 */
    int timeout_ms;      /* per control request; 0 = 2000 */
    bool league;         /* keep the list of league versions up to date */
} ag_policy_source_opts_t;

typedef struct ag_policy_source_stats {
    uint64_t received; /* weights messages (PUB + control) */
    uint64_t accepted; /* staged */
    uint64_t refused;  /* failed a check */
    uint64_t restarts; /* learner restarts detected */
} ag_policy_source_stats_t;

/* Starts asking for weights at once. NULL after logging why. */
ag_policy_source_t *ag_policy_source_create(uv_loop_t *loop, void *zctx,
                                            const ag_policy_source_opts_t *opts);
void ag_policy_source_destroy(ag_policy_source_t **self);

/* The learner's model config, once the first weights arrived; else NULL. */
const ag_model_config_t *ag_policy_source_config(const ag_policy_source_t *ps);

/* True if weights newer than the last taken ones are staged (*version set). */
bool ag_policy_source_fresh(const ag_policy_source_t *ps, uint64_t *version);
/* Loads the staged weights into m (same config) and marks them taken;
 * returns 0 and the version, -EAGAIN if nothing fresh, -EINVAL on a config mismatch. */
int ag_policy_source_take(ag_policy_source_t *ps, ag_model_t *m, uint64_t *version);

/* League: the versions the learner listed last (NULL/0 before the first answer). */
const uint64_t *ag_policy_source_league(const ag_policy_source_t *ps, size_t *n);
/* Asks for league snapshot `version`; when it arrives it is staged for take_league. */
int ag_policy_source_fetch_league(ag_policy_source_t *ps, uint64_t version);
bool ag_policy_source_league_fresh(const ag_policy_source_t *ps, uint64_t *version);
int ag_policy_source_take_league(ag_policy_source_t *ps, ag_model_t *m, uint64_t *version);

/* The learner version last reported (status, PUB or snapshot), 0 if none. */
uint64_t ag_policy_source_learner_version(const ag_policy_source_t *ps);
void ag_policy_source_get_stats(const ag_policy_source_t *ps, ag_policy_source_stats_t *out);

/*
 * Checks one weights message (header bytes as received, raw frame) and, if
 * valid, fills cfg and copies the parameters into *params (allocated or
 * grown with realloc; *cap in floats). Returns 0 or -EBADMSG / -EINVAL /
 * -ENOMEM with a reason in err. Exposed for tests.
 */
int ag_weights_check(const void *header, size_t header_len, const void *raw, size_t raw_len,
                     uint64_t *version, ag_model_config_t *cfg, float **params, size_t *cap,
                     char *err, size_t errlen);

#endif
