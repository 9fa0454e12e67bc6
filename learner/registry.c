/*
 * registry.c - the learner's live set of services (see registry.h): an
 * array of entries in registration order, a timer that drops those silent
 * for the TTL, and one probe per new endpoint on a DEALER of its own that is
 * closed with its answer or deadline.
 */
#include "registry.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "env.pb-c.h"
#include "log.h"
#include "reward.pb-c.h"
#include "rpc.h"

typedef struct entry {
    ag_registry_entry_t pub;
    ag_registry_t *r;
    ag_rpc_client_t *probe; /* in flight */
} entry_t;

struct ag_registry {
    uv_loop_t *loop;
    void *zctx;
    uv_timer_t *timer; /* freed by its close callback */
    uint32_t ttl_ms;
    entry_t **e;
    size_t n;
    ag_registry_change_cb on_change;
    void *arg;
};

static void s_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_why(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

static void s_changed(ag_registry_t *r)
{
    if (r->on_change)
        r->on_change(r->arg);
}

static void s_entry_free(entry_t *e)
{
    ag_rpc_client_destroy(&e->probe);
    free(e);
}

static void s_remove_at(ag_registry_t *r, size_t i)
{
    s_entry_free(r->e[i]);
    memmove(r->e + i, r->e + i + 1, (r->n - i - 1) * sizeof *r->e);
    r->n--;
}

static void s_on_tick(uv_timer_t *t)
{
    ag_registry_t *r = t->data;
    const uint64_t now = uv_now(r->loop);
    bool changed = false;
    for (size_t i = 0; i < r->n;) {
        const ag_registry_entry_t *p = &r->e[i]->pub;
        if (now - p->seen_ms > r->ttl_ms) {
            ag_warn("learner", "%s server %s (%s) sent no heartbeat for %u ms: dropped",
                    ag_join_kind_name(p->kind), p->name, p->endpoint, r->ttl_ms);
            s_remove_at(r, i);
            changed = true;
        } else {
            i++;
        }
    }
    if (changed)
        s_changed(r);
}

ag_registry_t *ag_registry_create(uv_loop_t *loop, void *zctx, uint32_t ttl_ms,
                                  ag_registry_change_cb on_change, void *arg)
{
    ag_registry_t *r = calloc(1, sizeof *r);
    uv_timer_t *t = malloc(sizeof *t);
    if (!r || !t) {
        free(r);
        free(t);
        return NULL;
    }
    r->loop = loop;
    r->zctx = zctx;
    r->ttl_ms = ttl_ms ? ttl_ms : 1;
    r->on_change = on_change;
    r->arg = arg;
    uv_timer_init(loop, t);
    t->data = r;
    r->timer = t;
    /* Eviction is checked a few times per TTL, so an entry goes at most a quarter late. */
    const uint64_t every = r->ttl_ms / 4 ? r->ttl_ms / 4 : 1;
    uv_timer_start(t, s_on_tick, every, every);
    return r;
}

static void s_timer_closed(uv_handle_t *h)
{
    free(h);
}

void ag_registry_destroy(ag_registry_t **self)
{
    if (!self || !*self)
        return;
    ag_registry_t *r = *self;
    *self = NULL;
    for (size_t i = 0; i < r->n; i++)
        s_entry_free(r->e[i]);
    free(r->e);
    uv_timer_stop(r->timer);
    uv_close((uv_handle_t *)r->timer, s_timer_closed);
    free(r);
}

uint32_t ag_registry_ttl_ms(const ag_registry_t *r)
{
    return r->ttl_ms;
}

uint32_t ag_registry_heartbeat_ms(const ag_registry_t *r)
{
    return r->ttl_ms / 3 ? r->ttl_ms / 3 : 1;
}

size_t ag_registry_count(const ag_registry_t *r)
{
    return r->n;
}

const ag_registry_entry_t *ag_registry_at(const ag_registry_t *r, size_t i)
{
    return i < r->n ? &r->e[i]->pub : NULL;
}

uint64_t ag_registry_now(const ag_registry_t *r)
{
    return uv_now(r->loop);
}

static long s_find(const ag_registry_t *r, Agora__V1__ServiceKind kind, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->e[i]->pub.kind == kind && !strcmp(r->e[i]->pub.name, name))
            return (long)i;
    return -1;
}

static bool s_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

/* An endpoint a peer can connect to: tcp://HOST:PORT (HOST not a wildcard) or ipc://PATH. */
static bool s_connectable(const char *ep)
{
    if (!strncmp(ep, "ipc://", 6))
        return ep[6] != '\0';
    if (strncmp(ep, "tcp://", 6))
        return false;
    const char *host = ep + 6, *colon = strrchr(host, ':');
    if (!colon || colon == host || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return false;
    const size_t n = (size_t)(colon - host);
    return !(n == 1 && host[0] == '*') && strncmp(host, "0.0.0.0:", 8) &&
           strncmp(host, "[::]:", 5);
}

static int s_check(const Agora__V1__RegisterRequest *req, char *why, size_t why_len)
{
    if (req->kind != AGORA__V1__SERVICE_KIND__SERVICE_ENV &&
        req->kind != AGORA__V1__SERVICE_KIND__SERVICE_REWARD) {
        s_why(why, why_len, "Register.kind must be SERVICE_ENV or SERVICE_REWARD, got %d",
              (int)req->kind);
        return -EINVAL;
    }
    const char *name = req->name ? req->name : "";
    if (!name[0] || strlen(name) > AG_JOIN_NAME_MAX || !s_printable(name)) {
        s_why(why, why_len, "Register.name must be 1..%d bytes of printable ASCII",
              AG_JOIN_NAME_MAX);
        return -EINVAL;
    }
    const char *ep = req->endpoint ? req->endpoint : "";
    if (strlen(ep) > AG_JOIN_ENDPOINT_MAX || !s_printable(ep) || !s_connectable(ep)) {
        s_why(why, why_len,
              "Register.endpoint \"%.64s\" is not an address peers can connect to "
              "(tcp://HOST:PORT with a host name or address, not a wildcard, or ipc://PATH): "
              "register the advertised endpoint (--advertise)",
              ep);
        return -EINVAL;
    }
    if (req->n_hosts > AG_JOIN_HOSTS_MAX) {
        s_why(why, why_len, "Register.hosts has more than %d entries", AG_JOIN_HOSTS_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < req->n_hosts; i++) {
        const char *h = req->hosts[i] ? req->hosts[i] : "";
        if (!h[0] || strlen(h) > AG_JOIN_HOST_MAX) {
            s_why(why, why_len, "Register.hosts[%zu] must be 1..%d bytes", i, AG_JOIN_HOST_MAX);
            return -EINVAL;
        }
    }
    return 0;
}

static void s_on_probe(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                       size_t extra_len)
{
    entry_t *e = arg;
    if (status == -ECANCELED)
        return;
    ag_rpc_client_destroy(&e->probe);
    ag_registry_entry_t *p = &e->pub;
    if (status == 0) {
        p->probe = AGORA__V1__PROBE_STATE__PROBE_OK;
        ag_debug("learner", "%s server %s (%s) answers", ag_join_kind_name(p->kind), p->name,
                 p->endpoint);
        return;
    }
    p->probe = AGORA__V1__PROBE_STATE__PROBE_FAILED;
    ag_warn("learner",
            "%s server %s registered the endpoint %s, which does not answer from here (%s in "
            "%d ms): kept, but peers that cannot reach it either will fail; check that server's "
            "--advertise name",
            ag_join_kind_name(p->kind), p->name, p->endpoint,
            status == -ETIMEDOUT ? "no answer" : strerror(-status), AG_REGISTRY_PROBE_MS);
}

/* One request the service answers whatever it hosts: Hello (env) or RewardStats (reward). */
static void s_probe(ag_registry_t *r, entry_t *e)
{
    ag_rpc_client_destroy(&e->probe);
    e->pub.probe = AGORA__V1__PROBE_STATE__PROBE_PENDING;
    const bool env = e->pub.kind == AGORA__V1__SERVICE_KIND__SERVICE_ENV;
    const ag_rpc_client_opts_t ro = {
        .timeout_ms = AG_REGISTRY_PROBE_MS, .attempts = 1, .max_reply = 16 << 20};
    e->probe = ag_rpc_client_create(r->loop, r->zctx, e->pub.endpoint,
                                    env ? &agora__v1__env_reply__descriptor
                                        : &agora__v1__reward_reply__descriptor,
                                    &ro);
    if (!e->probe) {
        s_on_probe(e, -EINVAL, NULL, NULL, 0);
        return;
    }
    int rc;
    if (env) {
        Agora__V1__HelloRequest h = AGORA__V1__HELLO_REQUEST__INIT;
        h.client_name = "agora-learner";
        Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
        req.hello = &h;
        rc = ag_rpc_call(e->probe, &req.base, s_on_probe, e);
    } else {
        Agora__V1__RewardStatsRequest st = AGORA__V1__REWARD_STATS_REQUEST__INIT;
        Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
        req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
        req.stats = &st;
        rc = ag_rpc_call(e->probe, &req.base, s_on_probe, e);
    }
    if (rc < 0)
        s_on_probe(e, rc, NULL, NULL, 0);
}

int ag_registry_register(ag_registry_t *r, const Agora__V1__RegisterRequest *req, bool *added,
                         char *why, size_t why_len)
{
    *added = false;
    int rc = s_check(req, why, why_len);
    if (rc < 0)
        return rc;
    long i = s_find(r, req->kind, req->name);
    entry_t *e;
    bool moved = false;
    if (i < 0) {
        if (r->n >= AG_REGISTRY_MAX) {
            s_why(why, why_len, "the learner holds %d services already", AG_REGISTRY_MAX);
            return -ENOSPC;
        }
        entry_t **grown = realloc(r->e, (r->n + 1) * sizeof *grown);
        e = calloc(1, sizeof *e);
        if (grown)
            r->e = grown;
        if (!grown || !e) {
            free(e);
            s_why(why, why_len, "out of memory");
            return -ENOMEM;
        }
        e->r = r;
        e->pub.kind = req->kind;
        snprintf(e->pub.name, sizeof e->pub.name, "%s", req->name);
        r->e[r->n++] = e;
        *added = true;
    } else {
        e = r->e[i];
        moved = strcmp(e->pub.endpoint, req->endpoint) != 0;
    }
    ag_registry_entry_t *p = &e->pub;
    bool hosts_changed = p->n_hosts != req->n_hosts;
    for (size_t k = 0; k < req->n_hosts && !hosts_changed; k++)
        hosts_changed = strcmp(p->hosts[k], req->hosts[k]) != 0;
    snprintf(p->endpoint, sizeof p->endpoint, "%s", req->endpoint);
    p->n_hosts = req->n_hosts;
    for (size_t k = 0; k < req->n_hosts; k++)
        snprintf(p->hosts[k], sizeof p->hosts[k], "%s", req->hosts[k]);
    p->seen_ms = uv_now(r->loop);
    if (*added || moved) {
        ag_info("learner", "%s server %s %s at %s", ag_join_kind_name(p->kind), p->name,
                *added ? "registered" : "moved", p->endpoint);
        s_probe(r, e);
    }
    if (*added || moved || hosts_changed)
        s_changed(r);
    return 0;
}

bool ag_registry_remove(ag_registry_t *r, Agora__V1__ServiceKind kind, const char *name)
{
    long i = s_find(r, kind, name ? name : "");
    if (i < 0)
        return false;
    ag_info("learner", "%s server %s (%s) left", ag_join_kind_name(kind), r->e[i]->pub.name,
            r->e[i]->pub.endpoint);
    s_remove_at(r, (size_t)i);
    s_changed(r);
    return true;
}

size_t ag_registry_env_list(const ag_registry_t *r, const char *game, char *out, size_t cap)
{
    size_t n = 0, len = 0;
    if (cap)
        out[0] = '\0';
    for (size_t i = 0; i < r->n; i++) {
        const ag_registry_entry_t *p = &r->e[i]->pub;
        if (p->kind != AGORA__V1__SERVICE_KIND__SERVICE_ENV)
            continue;
        bool hosts = !game || !game[0];
        for (size_t k = 0; k < p->n_hosts && !hosts; k++)
            hosts = !strcmp(p->hosts[k], game);
        const size_t need = strlen(p->endpoint) + (n ? 1 : 0);
        if (!hosts || len + need + 1 > cap)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? "," : "", p->endpoint);
        n++;
    }
    return n;
}
