/*
 * join.h - a server's registration with the job's rendezvous, the learner's
 * control service (docs/protocol.md §12.4): what `agora-env --join` and
 * `agora-reward --join` share.
 *
 * A joined server sends Register at once and then every heartbeat period the
 * learner asks for (RegisterReply.heartbeat_ms); Register is idempotent, so
 * the same request is the heartbeat, and a learner that restarted and no
 * longer knows the server simply adds it again. While the learner does not
 * answer, the server keeps serving and retries with backoff (backoff.h), with
 * one log line when the learner is lost and one when it is back. Leaving
 * cleanly sends Deregister; a server that dies is dropped by the learner
 * after the TTL.
 *
 * The client never keeps its loop alive by itself: each request uses a
 * connection of its own that lives only until its reply or deadline, and the
 * heartbeat timer is unreferenced. So a server's loop ends when the server
 * closes its own sockets, at most one request deadline later.
 *
 * Also here: the endpoint a server advertises. A server binds where it is
 * told (the wildcard address, port 5570) and is reached by a name its peers can resolve: the
 * advertised endpoint is the bound one with its host replaced by the
 * --advertise name, by the bound address when that is not a wildcard, or by
 * the machine's host name.
 */
#ifndef AG_JOIN_H
#define AG_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "control.pb-c.h"

#define AG_JOIN_NAME_MAX 128    /* bytes of RegisterRequest.name */
#define AG_JOIN_ENDPOINT_MAX 256 /* bytes of RegisterRequest.endpoint */
#define AG_JOIN_HOSTS_MAX 32    /* entries of RegisterRequest.hosts */
#define AG_JOIN_HOST_MAX 64     /* bytes of each entry */

/*
 * Writes to out the endpoint peers should use for a socket bound at bound
 * (its last endpoint as ZeroMQ reports it): tcp://HOST:PORT with HOST =
 * advertise when not empty, else the bound address unless it is a wildcard
 * (*, 0.0.0.0, ::), else this machine's host name; other transports (ipc://)
 * are returned as bound. An IPv6 address is bracketed. Returns 0, or -EINVAL
 * when bound is not a tcp:// endpoint with a port or out is too small.
 */
int ag_join_advertised(const char *bound, const char *advertise, char *out, size_t cap);

/*
 * The three option rows (config.h) of a server that joins, in run-file
 * section sec: sec.join (the learner's control endpoint; empty = do not
 * register), sec.advertise and sec.service_name, stored in the const char *
 * fields join, advertise and service_name of T.
 */
#define AG_JOIN_OPTIONS(T, sec, what)                                                          \
    AG_OPT(T, join, sec ".join", "join", "", 0, AG_JOIN_ENDPOINT_MAX,                          \
           "the learner's control endpoint (tcp://LEARNER:5582) to register this " what        \
           " with and heartbeat to, so the job's actors find it (empty = do not register)"),  \
        AG_OPT(T, advertise, sec ".advertise", "advertise", "", 0, 255,                        \
               "host name or address peers reach this " what " by, registered with --join "    \
               "(empty = the bound address, or this machine's host name for a wildcard)"),     \
        AG_OPT(T, service_name, sec ".service_name", "service-name", "", 0, AG_JOIN_NAME_MAX,  \
               "the name this " what " registers under, unique in the job (empty = HOST-PID)")

/* The default registration name of this process: HOST-PID. */
void ag_join_default_name(char *out, size_t cap);

/* "env", "reward" or "any". */
const char *ag_join_kind_name(Agora__V1__ServiceKind kind);

typedef struct ag_join_opts {
    const char *learner;  /* the learner's control endpoint, e.g. tcp://learner:5582 */
    Agora__V1__ServiceKind kind;
    const char *name;     /* unique in the job, printable ASCII; NULL or "" = HOST-PID */
    const char *bound;     /* the endpoint the server bound (its last endpoint) */
    const char *advertise; /* the host peers reach it by ("" = ag_join_advertised's choice) */
    const char *const *hosts; /* env: its games; reward: its model names */
    size_t n_hosts;
} ag_join_opts_t;

typedef struct ag_join ag_join_t;

/* Starts registering the advertised endpoint of o->bound on loop (strings
 * are copied). NULL after logging why (bad options, out of memory). */
ag_join_t *ag_join_create(uv_loop_t *loop, void *zctx, const ag_join_opts_t *o);

/*
 * Stops the heartbeats and sends Deregister (one attempt, 1 s); the loop
 * stays alive until it is answered or its deadline passes. Idempotent.
 */
void ag_join_leave(ag_join_t *j);

/* Whether the learner accepted the last Register. */
bool ag_join_registered(const ag_join_t *j);

/* Cancels what is in flight; the memory goes once the loop has closed the
 * timer (run the loop afterwards). Accepts NULL. */
void ag_join_destroy(ag_join_t **self);

#endif
