/*
 * join.c - registration with the learner's control service and the
 * advertised endpoint of a server (see join.h). One Register request is in
 * flight at a time, on a DEALER of its own that is closed with its reply or
 * deadline; the next one is scheduled by an unreferenced timer: at the
 * learner's heartbeat period after a success, after a growing, jittered
 * pause while the learner does not answer or refuses.
 */
#include "join.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "codec.h"
#include "log.h"
#include "rpc.h"

#define REQUEST_TIMEOUT_MS 2000
#define LEAVE_TIMEOUT_MS 1000
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 10000

struct ag_join {
    uv_loop_t *loop;
    void *zctx;
    uv_timer_t *timer; /* freed by its close callback */
    char learner[AG_JOIN_ENDPOINT_MAX + 1];
    char name[AG_JOIN_NAME_MAX + 1];
    char endpoint[AG_JOIN_ENDPOINT_MAX + 1];
    char hosts[AG_JOIN_HOSTS_MAX][AG_JOIN_HOST_MAX + 1];
    char *host_ptrs[AG_JOIN_HOSTS_MAX];
    size_t n_hosts;
    Agora__V1__ServiceKind kind;
    ag_rpc_client_t *call; /* the Register in flight */
    ag_backoff_t retry;
    ag_rng_t jitter;
    unsigned heartbeat_ms;
    bool registered, ever_registered, lost_logged, leaving;
};

const char *ag_join_kind_name(Agora__V1__ServiceKind kind)
{
    return kind == AGORA__V1__SERVICE_KIND__SERVICE_ENV      ? "env"
           : kind == AGORA__V1__SERVICE_KIND__SERVICE_REWARD ? "reward"
                                                              : "any";
}

void ag_join_default_name(char *out, size_t cap)
{
    char host[64] = "host";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    snprintf(out, cap, "%s-%d", host, (int)getpid());
}

static bool s_wildcard(const char *host, size_t n)
{
    return (n == 1 && host[0] == '*') || (n == 7 && !strncmp(host, "0.0.0.0", 7)) ||
           (n == 4 && !strncmp(host, "[::]", 4)) || (n == 2 && !strncmp(host, "::", 2));
}

int ag_join_advertised(const char *bound, const char *advertise, char *out, size_t cap)
{
    if (strncmp(bound, "tcp://", 6)) {
        if (strlen(bound) >= cap)
            return -EINVAL;
        snprintf(out, cap, "%s", bound);
        return 0;
    }
    const char *host = bound + 6;
    const char *colon = strrchr(host, ':');
    if (!colon || !colon[1])
        return -EINVAL;
    char name[256];
    if (advertise && advertise[0]) {
        snprintf(name, sizeof name, "%s", advertise);
    } else if (!s_wildcard(host, (size_t)(colon - host))) {
        snprintf(name, sizeof name, "%.*s", (int)(colon - host), host);
    } else if (gethostname(name, sizeof name - 1) != 0 || !name[0]) {
        return -EINVAL;
    }
    name[sizeof name - 1] = '\0';
    /* An IPv6 address goes in brackets, once. */
    const bool bracket = strchr(name, ':') && name[0] != '[';
    int n = snprintf(out, cap, "tcp://%s%s%s%s", bracket ? "[" : "", name, bracket ? "]" : "",
                     colon);
    return n < 0 || (size_t)n >= cap ? -EINVAL : 0;
}

static void s_send_register(ag_join_t *j);

static void s_on_timer(uv_timer_t *t)
{
    s_send_register(t->data);
}

/* A request's connection is closed with its answer (done may destroy its client). */
static void s_end_call(ag_join_t *j)
{
    ag_rpc_client_destroy(&j->call);
}

static void s_retry(ag_join_t *j, const char *why)
{
    const uint64_t pause = ag_backoff_next_ms(&j->retry, &j->jitter);
    if (!j->lost_logged) {
        ag_warn("join", "%s learner at %s: %s; retrying (every %llu ms at first, backing off)",
                j->ever_registered ? "lost the" : "cannot register with the", j->learner, why,
                (unsigned long long)pause);
        j->lost_logged = true;
    } else {
        ag_debug("join", "learner at %s: %s; retry in %llu ms", j->learner, why,
                 (unsigned long long)pause);
    }
    j->registered = false;
    uv_timer_start(j->timer, s_on_timer, pause, 0);
}

static void s_on_registered(void *arg, int status, const ProtobufCMessage *msg,
                            const uint8_t *extra, size_t extra_len)
{
    ag_join_t *j = arg;
    if (status == -ECANCELED)
        return;
    s_end_call(j);
    if (j->leaving)
        return;
    const Agora__V1__ControlReply *rep = (const Agora__V1__ControlReply *)msg;
    if (status < 0) {
        s_retry(j, status == -ETIMEDOUT ? "no answer" : strerror(-status));
        return;
    }
    if (rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_ERROR && rep->error) {
        char why[1100];
        snprintf(why, sizeof why, "%s: %s", ag_error_name(rep->error->code),
                 rep->error->message ? rep->error->message : "");
        s_retry(j, why);
        return;
    }
    if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_REGISTER_SERVICE ||
        !rep->register_service) {
        s_retry(j, "unexpected reply to Register");
        return;
    }
    const Agora__V1__RegisterReply *rr = rep->register_service;
    j->heartbeat_ms = rr->heartbeat_ms ? rr->heartbeat_ms : 1000;
    if (j->heartbeat_ms < 100)
        j->heartbeat_ms = 100;
    /* Said once, and again whenever the learner had lost us (it was away, or restarted). */
    if (!j->registered || rr->added)
        ag_info("join", "%s as %s %s (%s) with the learner at %s: heartbeat every %u ms, "
                        "dropped after %u ms of silence",
                j->ever_registered ? "registered again" : "registered", ag_join_kind_name(j->kind),
                j->name, j->endpoint, j->learner, j->heartbeat_ms, rr->ttl_ms);
    j->registered = j->ever_registered = true;
    j->lost_logged = false;
    ag_backoff_reset(&j->retry);
    uv_timer_start(j->timer, s_on_timer, j->heartbeat_ms, 0);
}

static void s_fill(ag_join_t *j, Agora__V1__RegisterRequest *rr)
{
    rr->kind = j->kind;
    rr->name = j->name;
    rr->endpoint = j->endpoint;
    rr->n_hosts = j->n_hosts;
    rr->hosts = j->host_ptrs;
}

static ag_rpc_client_t *s_client(ag_join_t *j, int timeout_ms)
{
    const ag_rpc_client_opts_t ro = {.timeout_ms = timeout_ms, .attempts = 1, .max_reply = 1 << 20};
    return ag_rpc_client_create(j->loop, j->zctx, j->learner,
                                &agora__v1__control_reply__descriptor, &ro);
}

static void s_send_register(ag_join_t *j)
{
    if (j->leaving || j->call)
        return;
    j->call = s_client(j, REQUEST_TIMEOUT_MS);
    if (!j->call) {
        s_retry(j, "cannot open a connection");
        return;
    }
    Agora__V1__RegisterRequest rr = AGORA__V1__REGISTER_REQUEST__INIT;
    s_fill(j, &rr);
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_REGISTER_SERVICE;
    req.register_service = &rr;
    int rc = ag_rpc_call(j->call, &req.base, s_on_registered, j);
    if (rc < 0) {
        s_end_call(j);
        s_retry(j, strerror(-rc));
    }
}

ag_join_t *ag_join_create(uv_loop_t *loop, void *zctx, const ag_join_opts_t *o)
{
    char endpoint[AG_JOIN_ENDPOINT_MAX + 1];
    if (!o->bound || ag_join_advertised(o->bound, o->advertise, endpoint, sizeof endpoint) < 0) {
        ag_error("join", "cannot tell the address peers reach %s by (--advertise)",
                 o->bound ? o->bound : "the server");
        return NULL;
    }
    if (!o->learner || !o->learner[0] || strlen(o->learner) > AG_JOIN_ENDPOINT_MAX ||
        (o->name && strlen(o->name) > AG_JOIN_NAME_MAX) || o->n_hosts > AG_JOIN_HOSTS_MAX) {
        ag_error("join", "bad registration: learner endpoint (1..%d bytes), name (at most %d "
                         "bytes) or more than %d hosted names",
                 AG_JOIN_ENDPOINT_MAX, AG_JOIN_NAME_MAX, AG_JOIN_HOSTS_MAX);
        return NULL;
    }
    ag_join_t *j = calloc(1, sizeof *j);
    uv_timer_t *t = malloc(sizeof *t);
    if (!j || !t) {
        free(j);
        free(t);
        return NULL;
    }
    j->loop = loop;
    j->zctx = zctx;
    j->kind = o->kind;
    snprintf(j->learner, sizeof j->learner, "%s", o->learner);
    snprintf(j->endpoint, sizeof j->endpoint, "%s", endpoint);
    if (o->name && o->name[0])
        snprintf(j->name, sizeof j->name, "%s", o->name);
    else
        ag_join_default_name(j->name, sizeof j->name);
    for (size_t i = 0; i < o->n_hosts; i++) {
        snprintf(j->hosts[i], sizeof j->hosts[i], "%s", o->hosts[i]);
        j->host_ptrs[i] = j->hosts[i];
    }
    j->n_hosts = o->n_hosts;
    j->retry = ag_backoff_make(RETRY_FIRST_MS, RETRY_MAX_MS);
    ag_rng_seed(&j->jitter, uv_hrtime() ^ (uint64_t)getpid());
    uv_timer_init(loop, t);
    uv_unref((uv_handle_t *)t);
    t->data = j;
    j->timer = t;
    ag_info("join", "joining the job at %s as %s %s (%s)", j->learner, ag_join_kind_name(j->kind),
            j->name, j->endpoint);
    uv_timer_start(j->timer, s_on_timer, 0, 0);
    return j;
}

static void s_on_left(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                      size_t extra_len)
{
    ag_join_t *j = arg;
    if (status == -ECANCELED)
        return;
    const Agora__V1__ControlReply *rep = (const Agora__V1__ControlReply *)msg;
    if (status == 0 && rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_DEREGISTER_SERVICE)
        ag_info("join", "deregistered %s from the learner at %s", j->name, j->learner);
    else
        ag_warn("join", "the learner at %s did not confirm the deregistration of %s (%s): it "
                        "drops it after the TTL",
                j->learner, j->name, status < 0 ? strerror(-status) : "error reply");
    s_end_call(j);
}

void ag_join_leave(ag_join_t *j)
{
    if (!j || j->leaving)
        return;
    j->leaving = true;
    uv_timer_stop(j->timer);
    s_end_call(j); /* a Register in flight is cancelled */
    if (!j->ever_registered)
        return;
    j->call = s_client(j, LEAVE_TIMEOUT_MS);
    if (!j->call)
        return;
    Agora__V1__DeregisterRequest dr = AGORA__V1__DEREGISTER_REQUEST__INIT;
    dr.kind = j->kind;
    dr.name = j->name;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_DEREGISTER_SERVICE;
    req.deregister_service = &dr;
    if (ag_rpc_call(j->call, &req.base, s_on_left, j) < 0)
        s_end_call(j);
}

bool ag_join_registered(const ag_join_t *j)
{
    return j && j->registered;
}

static void s_timer_closed(uv_handle_t *h)
{
    free(h);
}

void ag_join_destroy(ag_join_t **self)
{
    if (!self || !*self)
        return;
    ag_join_t *j = *self;
    *self = NULL;
    j->leaving = true;
    s_end_call(j);
    uv_timer_stop(j->timer);
    uv_close((uv_handle_t *)j->timer, s_timer_closed);
    free(j);
}
