/*
 * rendezvous.c - an actor's requests to the learner's control service when
 * it joins a job (see rendezvous.h): RunConfig and ListServices, blocking on
 * a private loop with backoff and signals before the actor starts, and the
 * env watch on the actor's loop while it runs.
 */
#include "rendezvous.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "backoff.h"
#include "codec.h"
#include "control.pb-c.h"
#include "log.h"
#include "rpc.h"
#include "signals.h"

#define CALL_TIMEOUT_MS 2000
#define RETRY_FIRST_MS 500
#define RETRY_MAX_MS 10000
#define WAIT_LOG_MS 10000
#define MAX_WATCHED 256
/* A ListServices reply of the learner's 1024 services with 32 hosts each fits. */
#define MAX_REPLY (16 << 20)

/* Bounds on what a control reply may carry here (the run file is the long one). */
static const ag_limits_t s_reply_limits = {.max_string = AG_RENDEZVOUS_RUN_FILE_MAX,
                                           .max_repeated = 4096};

/* ---- blocking calls on a private loop ---- */

typedef struct blocking {
    uv_loop_t loop;
    uv_timer_t timer;
    ag_signals_t *signals;
    ag_rpc_client_t *client;
    Agora__V1__ControlReply *reply; /* taken from the client */
    int status;
    bool done, cancelled;
} blocking_t;

static void s_on_signal(void *arg, int signum)
{
    blocking_t *b = arg;
    ag_info("actor", "signal %d while joining: stopping", signum);
    b->cancelled = true;
    uv_stop(&b->loop);
}

static void s_on_reply(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                       size_t extra_len)
{
    blocking_t *b = arg;
    if (status == -ECANCELED)
        return;
    b->status = status;
    if (status == 0)
        b->reply = (Agora__V1__ControlReply *)ag_rpc_client_take_reply(b->client);
    b->done = true;
    uv_stop(&b->loop);
}

static void s_on_pause(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/*
 * After delay_ms, sends req to learner until it answers (any reply, error
 * replies included), pausing with backoff between attempts and logging why.
 * Returns 0 with the reply in *out (free with ag_codec_free), or -ECANCELED
 * after a signal. what names the request in the log.
 */
static int s_call(const char *learner, Agora__V1__ControlRequest *req, const char *what,
                  uint64_t delay_ms, Agora__V1__ControlReply **out)
{
    blocking_t b = {0};
    *out = NULL;
    uv_loop_init(&b.loop);
    uv_timer_init(&b.loop, &b.timer);
    void *zctx = zmq_ctx_new();
    b.signals = ag_signals_create(&b.loop, s_on_signal, &b);
    const ag_rpc_client_opts_t ro = {.timeout_ms = CALL_TIMEOUT_MS,
                                     .attempts = 1,
                                     .max_reply = MAX_REPLY,
                                     .limits = &s_reply_limits};
    ag_backoff_t backoff = ag_backoff_make(RETRY_FIRST_MS, RETRY_MAX_MS);
    ag_rng_t jitter;
    ag_rng_seed(&jitter, uv_hrtime() ^ (uint64_t)getpid());
    int rc = 0;
    if (delay_ms) {
        uv_timer_start(&b.timer, s_on_pause, delay_ms, 0);
        uv_run(&b.loop, UV_RUN_DEFAULT);
        uv_timer_stop(&b.timer);
    }
    while (!b.cancelled) {
        b.done = false;
        b.client = ag_rpc_client_create(&b.loop, zctx, learner,
                                        &agora__v1__control_reply__descriptor, &ro);
        rc = b.client ? ag_rpc_call(b.client, &req->base, s_on_reply, &b) : -EINVAL;
        if (rc < 0) {
            ag_rpc_client_destroy(&b.client);
            ag_error("actor", "cannot send %s to the learner at %s: %s", what, learner,
                     strerror(-rc));
            break;
        }
        while (!b.done && !b.cancelled)
            uv_run(&b.loop, UV_RUN_DEFAULT);
        ag_rpc_client_destroy(&b.client);
        if (b.cancelled)
            break;
        if (b.status == 0) {
            *out = b.reply;
            break;
        }
        const uint64_t pause = ag_backoff_next_ms(&backoff, &jitter);
        ag_log(backoff.attempts == 1 ? AG_LOG_WARN : AG_LOG_INFO, "actor",
               "the learner at %s does not answer %s (attempt %u): retrying in %llu ms", learner,
               what, backoff.attempts, (unsigned long long)pause);
        uv_timer_start(&b.timer, s_on_pause, pause, 0);
        uv_run(&b.loop, UV_RUN_DEFAULT);
        uv_timer_stop(&b.timer);
    }
    ag_signals_destroy(&b.signals);
    uv_close((uv_handle_t *)&b.timer, NULL);
    uv_run(&b.loop, UV_RUN_DEFAULT);
    uv_loop_close(&b.loop);
    zmq_ctx_term(zctx);
    if (b.cancelled) {
        if (*out)
            ag_codec_free(&(*out)->base);
        *out = NULL;
        return -ECANCELED;
    }
    return rc < 0 ? rc : 0;
}

/* An error reply's text in err; true when rep is one. */
static bool s_error_reply(const Agora__V1__ControlReply *rep, const char *what, char *err,
                          size_t errlen)
{
    if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_ERROR)
        return false;
    snprintf(err, errlen, "the learner answered %s with %s: %s", what,
             ag_error_name(rep->error ? rep->error->code : 0),
             rep->error && rep->error->message ? rep->error->message : "");
    return true;
}

static int s_copy(char *dst, size_t cap, const char *src, const char *field, char *err,
                  size_t errlen)
{
    if (!src || strlen(src) >= cap) {
        snprintf(err, errlen, "RunConfigReply.%s is longer than %zu bytes", field, cap - 1);
        return -EPROTO;
    }
    snprintf(dst, cap, "%s", src);
    return 0;
}

int ag_rendezvous_run_config(const char *learner, ag_run_config_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    Agora__V1__RunConfigRequest rq = AGORA__V1__RUN_CONFIG_REQUEST__INIT;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_RUN_CONFIG;
    req.run_config = &rq;
    Agora__V1__ControlReply *rep;
    int rc = s_call(learner, &req, "RunConfig", 0, &rep);
    if (rc < 0) {
        if (rc != -ECANCELED)
            snprintf(err, errlen, "RunConfig: %s", strerror(-rc));
        return rc;
    }
    const Agora__V1__RunConfigReply *r = rep->run_config;
    rc = -EPROTO;
    if (s_error_reply(rep, "RunConfig", err, errlen))
        goto out;
    if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_RUN_CONFIG || !r || !r->model) {
        snprintf(err, errlen, "the learner at %s answered RunConfig with another reply: is it "
                              "an agora-learner that serves the rendezvous?",
                 learner);
        goto out;
    }
    const Agora__V1__ModelConfig *m = r->model;
    /* The wire's uint32 may exceed an int: such a shape is refused by the check later. */
    out->model.vocab = m->vocab_size > AG_MODEL_MAX_DIM ? -1 : (int)m->vocab_size;
    out->model.d_model = m->d_model > AG_MODEL_MAX_DIM ? -1 : (int)m->d_model;
    out->model.n_layers = m->n_layers > AG_MODEL_MAX_DIM ? -1 : (int)m->n_layers;
    out->model.n_heads = m->n_heads > AG_MODEL_MAX_DIM ? -1 : (int)m->n_heads;
    out->model.ctx = m->context > AG_MODEL_MAX_DIM ? -1 : (int)m->context;
    out->model.mlp_ratio = m->mlp_ratio > AG_MODEL_MAX_DIM ? -1 : (int)m->mlp_ratio;
    if (s_copy(out->game, sizeof out->game, r->game, "game", err, errlen) < 0 ||
        s_copy(out->trajectories, sizeof out->trajectories, r->trajectories, "trajectories", err,
               errlen) < 0 ||
        s_copy(out->weights, sizeof out->weights, r->weights, "weights", err, errlen) < 0 ||
        s_copy(out->control, sizeof out->control, r->control, "control", err, errlen) < 0)
        goto out;
    out->run_file = strdup(r->run_file ? r->run_file : "");
    rc = out->run_file ? 0 : -ENOMEM;
out:
    ag_codec_free(&rep->base);
    return rc;
}

void ag_run_config_finish(ag_run_config_t *c)
{
    free(c->run_file);
    c->run_file = NULL;
}

static bool s_hosts(const Agora__V1__ServiceEntry *e, const char *game)
{
    if (!game || !game[0])
        return true;
    for (size_t k = 0; k < e->n_hosts; k++)
        if (e->hosts[k] && !strcmp(e->hosts[k], game))
            return true;
    return false;
}

/* The env endpoints hosting game in a ListServices reply, comma-separated. Returns how many. */
static size_t s_env_list(const Agora__V1__ListServicesReply *lr, const char *game, char *out,
                         size_t cap)
{
    size_t n = 0, len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < lr->n_services; i++) {
        const Agora__V1__ServiceEntry *e = lr->services[i];
        if (!e || e->kind != AGORA__V1__SERVICE_KIND__SERVICE_ENV || !e->endpoint ||
            !e->endpoint[0] || !s_hosts(e, game) ||
            len + strlen(e->endpoint) + 2 > cap)
            continue;
        len += (size_t)snprintf(out + len, cap - len, "%s%s", n ? "," : "", e->endpoint);
        n++;
    }
    return n;
}

static void s_list_request(Agora__V1__ControlRequest *req, Agora__V1__ListServicesRequest *lr)
{
    agora__v1__list_services_request__init(lr);
    lr->kind = AGORA__V1__SERVICE_KIND__SERVICE_ENV;
    agora__v1__control_request__init(req);
    req->body_case = AGORA__V1__CONTROL_REQUEST__BODY_LIST_SERVICES;
    req->list_services = lr;
}

/* Appends " NAME, NAME...)" of every game the env servers in lr host to err. */
static void s_hosted(const Agora__V1__ListServicesReply *lr, char *err, size_t errlen)
{
    size_t len = strlen(err);
    bool first = true;
    for (size_t i = 0; i < lr->n_services; i++)
        for (size_t k = 0; lr->services[i] && k < lr->services[i]->n_hosts; k++) {
            const char *h = lr->services[i]->hosts[k];
            if (!h || strstr(err, h) || len + strlen(h) + 4 >= errlen)
                continue;
            len += (size_t)snprintf(err + len, errlen - len, "%s %s", first ? "" : ",", h);
            first = false;
        }
    if (len + 2 < errlen)
        snprintf(err + len, errlen - len, ")");
}

int ag_rendezvous_wait_envs(const char *learner, const char *game, char *out, size_t cap,
                            char *err, size_t errlen)
{
    uint64_t next_log = 0, delay_ms = 0;
    for (;;) {
        Agora__V1__ListServicesRequest lq;
        Agora__V1__ControlRequest req;
        s_list_request(&req, &lq);
        Agora__V1__ControlReply *rep;
        int rc = s_call(learner, &req, "ListServices", delay_ms, &rep);
        if (rc < 0) {
            if (rc != -ECANCELED)
                snprintf(err, errlen, "ListServices: %s", strerror(-rc));
            return rc;
        }
        size_t n = 0;
        rc = 0;
        if (s_error_reply(rep, "ListServices", err, errlen)) {
            rc = -EPROTO;
        } else if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_LIST_SERVICES ||
                   !rep->list_services) {
            rc = -EPROTO;
            snprintf(err, errlen, "unexpected reply to ListServices");
        } else if (!(n = s_env_list(rep->list_services, game, out, cap)) &&
                   s_env_list(rep->list_services, "", out, cap)) {
            /* Servers are there, and none has the game: the job's game is not theirs. */
            rc = -ENOENT;
            snprintf(err, errlen, "no env server of the job hosts game \"%s\" (they host:",
                     game);
            s_hosted(rep->list_services, err, errlen);
            out[0] = '\0';
        }
        ag_codec_free(&rep->base);
        if (rc < 0 || n > 0)
            return rc;
        const uint64_t now = uv_hrtime() / 1000000;
        if (now >= next_log) {
            ag_info("actor", "no env server hosting %s is registered with the learner at %s yet: "
                             "waiting (start one with agora-env --join %s)",
                    game && game[0] ? game : "a game", learner, learner);
            next_log = now + WAIT_LOG_MS;
        }
        delay_ms = 1000;
    }
}

/* ---- the env watch ---- */

typedef struct watched {
    char endpoint[AG_RENDEZVOUS_ENDPOINT_MAX + 1];
    uint64_t listed_ms; /* loop time the learner last listed it */
} watched_t;

struct ag_env_watch {
    uv_loop_t *loop;
    void *zctx;
    uv_timer_t *timer; /* freed by its close callback; data = the watch, NULL once destroyed */
    ag_rpc_client_t *client;
    char learner[AG_RENDEZVOUS_ENDPOINT_MAX + 1];
    char game[65];
    char *statics;
    char current[AG_RENDEZVOUS_LIST_MAX];
    watched_t w[MAX_WATCHED];
    size_t n;
    ag_env_watch_cb cb;
    void *arg;
    bool unanswered_logged;
};

static void s_watch_add(ag_env_watch_t *w, const char *ep, size_t len, uint64_t now)
{
    for (size_t i = 0; i < w->n; i++)
        if (strlen(w->w[i].endpoint) == len && !strncmp(w->w[i].endpoint, ep, len)) {
            w->w[i].listed_ms = now;
            return;
        }
    if (w->n < MAX_WATCHED && len <= AG_RENDEZVOUS_ENDPOINT_MAX) {
        snprintf(w->w[w->n].endpoint, sizeof w->w[w->n].endpoint, "%.*s", (int)len, ep);
        w->w[w->n++].listed_ms = now;
    }
}

static void s_on_list(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                      size_t extra_len)
{
    ag_env_watch_t *w = arg;
    if (status == -ECANCELED)
        return;
    ag_rpc_client_destroy(&w->client);
    const Agora__V1__ControlReply *rep = (const Agora__V1__ControlReply *)msg;
    if (status < 0 || rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_LIST_SERVICES ||
        !rep->list_services) {
        if (!w->unanswered_logged)
            ag_warn("actor", "the learner at %s does not answer ListServices (%s): playing on "
                             "with the env servers known",
                    w->learner, status < 0 ? strerror(-status) : "error reply");
        w->unanswered_logged = true;
        return;
    }
    if (w->unanswered_logged)
        ag_info("actor", "the learner at %s answers again", w->learner);
    w->unanswered_logged = false;
    const Agora__V1__ListServicesReply *lr = rep->list_services;
    const uint64_t now = uv_now(w->loop);
    char listed[AG_RENDEZVOUS_LIST_MAX];
    s_env_list(lr, w->game, listed, sizeof listed);
    for (const char *p = listed; *p;) {
        const size_t n = strcspn(p, ",");
        s_watch_add(w, p, n, now);
        p += n + (p[n] == ',');
    }
    /* Kept while missing for less than the TTL (a restarted learner relearns them). */
    char next[AG_RENDEZVOUS_LIST_MAX];
    size_t len = (size_t)snprintf(next, sizeof next, "%s", w->statics);
    for (size_t i = 0; i < w->n;) {
        if (now - w->w[i].listed_ms > lr->ttl_ms) {
            w->w[i] = w->w[--w->n];
            continue;
        }
        if (len + strlen(w->w[i].endpoint) + 2 <= sizeof next)
            len += (size_t)snprintf(next + len, sizeof next - len, "%s%s", len ? "," : "",
                                    w->w[i].endpoint);
        i++;
    }
    if (strcmp(next, w->current)) {
        snprintf(w->current, sizeof w->current, "%s", next);
        w->cb(w->arg, w->current);
    }
}

static void s_on_watch_timer(uv_timer_t *t)
{
    ag_env_watch_t *w = t->data;
    if (w->client)
        return; /* the previous request has not ended yet */
    const ag_rpc_client_opts_t ro = {.timeout_ms = CALL_TIMEOUT_MS,
                                     .attempts = 1,
                                     .max_reply = MAX_REPLY,
                                     .limits = &s_reply_limits};
    w->client =
        ag_rpc_client_create(w->loop, w->zctx, w->learner, &agora__v1__control_reply__descriptor,
                             &ro);
    Agora__V1__ListServicesRequest lq;
    Agora__V1__ControlRequest req;
    s_list_request(&req, &lq);
    if (w->client && ag_rpc_call(w->client, &req.base, s_on_list, w) < 0)
        ag_rpc_client_destroy(&w->client);
}

ag_env_watch_t *ag_env_watch_create(uv_loop_t *loop, void *zctx, const char *learner,
                                    const char *game, const char *statics, const char *initial,
                                    int period_ms, ag_env_watch_cb cb, void *arg)
{
    ag_env_watch_t *w = calloc(1, sizeof *w);
    uv_timer_t *t = malloc(sizeof *t);
    char *st = strdup(statics ? statics : "");
    if (!w || !t || !st) {
        free(w);
        free(t);
        free(st);
        return NULL;
    }
    w->loop = loop;
    w->zctx = zctx;
    w->statics = st;
    w->cb = cb;
    w->arg = arg;
    snprintf(w->learner, sizeof w->learner, "%s", learner);
    snprintf(w->game, sizeof w->game, "%s", game ? game : "");
    initial = initial ? initial : "";
    snprintf(w->current, sizeof w->current, "%s%s%s", st, st[0] && initial[0] ? "," : "",
             initial);
    const uint64_t now = uv_now(loop);
    for (const char *p = initial; *p;) {
        const size_t n = strcspn(p, ",");
        s_watch_add(w, p, n, now);
        p += n + (p[n] == ',');
    }
    uv_timer_init(loop, t);
    t->data = w;
    w->timer = t;
    uv_timer_start(t, s_on_watch_timer, (uint64_t)period_ms, (uint64_t)period_ms);
    return w;
}

static void s_watch_timer_closed(uv_handle_t *h)
{
    free(h);
}

void ag_env_watch_destroy(ag_env_watch_t **self)
{
    if (!self || !*self)
        return;
    ag_env_watch_t *w = *self;
    *self = NULL;
    ag_rpc_client_destroy(&w->client);
    uv_timer_stop(w->timer);
    uv_close((uv_handle_t *)w->timer, s_watch_timer_closed);
    free(w->statics);
    free(w);
}
