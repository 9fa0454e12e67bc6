/*
 * rendezvous.h - what an actor that joins a running job (`agora-actor
 * --join tcp://LEARNER:5582`) asks the learner's control service
 * (docs/protocol.md §12.4): the run's configuration before it starts, and
 * the live env servers while it runs.
 *
 * Before the actor's loop exists, ag_rendezvous_run_config and
 * ag_rendezvous_wait_envs block on a private loop: while the learner does not
 * answer they retry with backoff (backoff.h), logging the endpoint, and
 * SIGINT/SIGTERM ends the wait (-ECANCELED). While it runs, an env watch on
 * the actor's loop asks for the live env servers every period and hands a
 * changed list to the caller. A server missing from the learner's list is
 * kept until it has been missing for the learner's TTL: a learner that just
 * restarted knows nobody until the servers' next heartbeats, and that must
 * not end every episode in play.
 */
#ifndef AG_RENDEZVOUS_H
#define AG_RENDEZVOUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "model.h"

#define AG_RENDEZVOUS_ENDPOINT_MAX 256
#define AG_RENDEZVOUS_RUN_FILE_MAX 65536
#define AG_RENDEZVOUS_LIST_MAX 4096 /* bytes of a comma-separated list of env endpoints */

/* A RunConfigReply, checked. */
typedef struct ag_run_config {
    char *run_file; /* the learner's effective run file (INI text) */
    char game[65];  /* "" while the learner does not know it */
    ag_model_config_t model;
    char trajectories[AG_RENDEZVOUS_ENDPOINT_MAX + 1];
    char weights[AG_RENDEZVOUS_ENDPOINT_MAX + 1];
    char control[AG_RENDEZVOUS_ENDPOINT_MAX + 1];
} ag_run_config_t;

/*
 * Fetches the run configuration from the learner at learner (blocking, see
 * above). Returns 0 with out filled (free with ag_run_config_finish),
 * -ECANCELED after a signal, or -EPROTO with the reason in err when the
 * learner answered with an error or a reply this actor cannot use.
 */
int ag_rendezvous_run_config(const char *learner, ag_run_config_t *out, char *err, size_t errlen);
void ag_run_config_finish(ag_run_config_t *c);

/*
 * Waits (blocking) until the learner lists at least one env server hosting
 * game ("" = any), logging every 10 s while there is none; writes their
 * endpoints, comma-separated, to out. Returns 0, -ECANCELED after a signal,
 * -ENOENT when env servers are registered and none hosts game (what they host
 * in err), or -EPROTO with the reason in err.
 */
int ag_rendezvous_wait_envs(const char *learner, const char *game, char *out, size_t cap,
                            char *err, size_t errlen);

/* Called with the new comma-separated list of env endpoints (static ones first). */
typedef void (*ag_env_watch_cb)(void *arg, const char *envs);

typedef struct ag_env_watch ag_env_watch_t;

/*
 * Asks the learner for the live env servers hosting game every period_ms on
 * loop, and calls cb when the list, with the static endpoints (comma-
 * separated, may be "") always in front, changes. initial is the learner's
 * list the caller starts with (without the static ones). NULL when out of
 * memory.
 */
ag_env_watch_t *ag_env_watch_create(uv_loop_t *loop, void *zctx, const char *learner,
                                    const char *game, const char *statics, const char *initial,
                                    int period_ms, ag_env_watch_cb cb, void *arg);
/* Accepts NULL; the memory goes once the loop closed the timer. */
void ag_env_watch_destroy(ag_env_watch_t **self);

#endif
