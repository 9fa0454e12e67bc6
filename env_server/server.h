/*
 * server.h - agora-env's service: the environment protocol (env.proto) on a
 * ROUTER socket, on top of the game logic in episode.h.
 *
 * The server owns every live episode, keyed by a random 64-bit id, and evicts
 * those idle longer than the TTL. Requests are answered in arrival order on
 * the loop thread; every bad request gets an Error reply and changes nothing.
 *
 * The one exception to answering at once: an episode whose final ruling is
 * a reward model's (debate with judge=reward:NAME) holds its last Step
 * while the reward server (opts.reward_endpoint) scores the seats'
 * transcripts. The loop keeps serving everyone else; the held Step is
 * answered when the scores arrive, or with ERROR_OVERLOADED and the
 * episode as it was before the Step when they do not arrive in time.
 */
#ifndef AG_ENV_SERVER_H
#define AG_ENV_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The options of agora-env ([env] of a run file; main.c's table fills them). */
typedef struct ag_env_server_opts {
    const char *bind;            /* endpoint, e.g. "tcp://0.0.0.0:5570" */
    const char *name;            /* server name in HelloReply */
    uint32_t episode_ttl_s;      /* idle episodes are evicted after this */
    uint64_t max_episodes;       /* more live episodes -> ERROR_OVERLOADED */
    long max_message_bytes;      /* ZMQ_MAXMSGSIZE of requests */
    const char *reward_endpoint; /* agora-reward for judge=reward:NAME; NULL or "" = none */
    uint32_t reward_timeout_ms;  /* a held Step's deadline for the scores; 0 = 2000 */
} ag_env_server_opts_t;

typedef struct ag_env_server ag_env_server_t;

typedef struct ag_env_server_stats {
    uint64_t requests;
    uint64_t errors;
    uint64_t steps;
    uint64_t episodes_live;
    uint64_t episodes_evicted;
    uint64_t rulings;         /* final Steps ruled by the reward judge */
    uint64_t ruling_failures; /* held Steps answered with an error instead */
} ag_env_server_stats_t;

/* Binds and starts serving on loop; NULL (after logging why) on failure. */
ag_env_server_t *ag_env_server_create(uv_loop_t *loop, void *zctx,
                                      const ag_env_server_opts_t *opts);
/* Stops serving and frees every episode. Accepts NULL. */
void ag_env_server_destroy(ag_env_server_t **self);

const char *ag_env_server_endpoint(const ag_env_server_t *self);
ag_env_server_stats_t ag_env_server_stats(const ag_env_server_t *self);

#endif
