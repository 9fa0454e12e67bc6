/*
 * zsock.c - ZeroMQ sockets on a libuv loop (see zsock.h for the edge-trigger
 * rules this file exists to get right).
 *
 * Draining is bounded per wake-up (DRAIN_BUDGET messages) so one busy socket
 * cannot starve timers and other sockets; when the budget runs out, or after
 * a send, the uv_idle_t handle asks for another look on the next iteration.
 */
#include "zsock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DRAIN_BUDGET 4096

struct ag_zsock {
    uv_poll_t poll;
    uv_idle_t idle;
    void *zsock;
    int type;
    ag_zsock_recv_cb cb;
    void *arg;
    bool draining;  /* inside s_drain: sends need no extra wake-up */
    bool idle_on;
    ag_zsock_writable_cb writable; /* armed by ag_zsock_on_writable, called once */
    void *writable_arg;
    int closing;    /* handles still to be closed before free */
    char endpoint[256];
    ag_zsock_stats_t stats;
    ag_zmsg_t msg;
};

static int s_setopt_int(void *z, int opt, int v)
{
    return zmq_setsockopt(z, opt, &v, sizeof v);
}

static void s_idle_start(ag_zsock_t *s);

static int s_events(ag_zsock_t *s)
{
    int events = 0;
    size_t len = sizeof events;
    if (zmq_getsockopt(s->zsock, ZMQ_EVENTS, &events, &len) != 0)
        return 0;
    return events;
}

/* Reads one whole multipart message into s->msg; returns false if none is ready. */
static bool s_recv_one(ag_zsock_t *s)
{
    ag_zmsg_t *m = &s->msg;
    m->n = 0;
    m->n_dropped = 0;
    for (;;) {
        zmq_msg_t *f;
        zmq_msg_t spill;
        if (m->n < AG_ZSOCK_MAX_FRAMES)
            f = &m->frames[m->n];
        else
            f = &spill;
        zmq_msg_init(f);
        if (zmq_msg_recv(f, s->zsock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(f);
            /* A multipart message arrives atomically: failure here is only possible on the first frame. */
            for (size_t i = 0; i < m->n; i++)
                zmq_msg_close(&m->frames[i]);
            m->n = 0;
            return false;
        }
        int more = zmq_msg_more(f);
        if (f == &spill) {
            zmq_msg_close(f);
            m->n_dropped++;
        } else {
            m->n++;
        }
        if (!more)
            return true;
    }
}

static void s_drain(ag_zsock_t *s)
{
    if (s->closing)
        return;
    s->draining = true;
    /* Receive until EAGAIN rather than asking ZMQ_EVENTS before every message:
     * each query costs a getpid(2) and a poll(2) on the socket's mailbox. */
    int budget = DRAIN_BUDGET;
    for (; budget > 0 && s_recv_one(s); budget--) {
        s->stats.received++;
        if (s->cb)
            s->cb(s, &s->msg, s->arg);
        for (size_t i = 0; i < s->msg.n; i++)
            zmq_msg_close(&s->msg.frames[i]);
        s->msg.n = 0;
    }
    s->draining = false;
    /*
     * The receive that found nothing came after any send of the callbacks and
     * processed ZeroMQ's pending commands, as reading ZMQ_EVENTS would: the
     * descriptor fires again for whatever arrives next. Only a spent budget
     * needs another look.
     */
    if (budget == 0)
        s_idle_start(s);
    if (s->writable && (s_events(s) & ZMQ_POLLOUT)) {
        ag_zsock_writable_cb cb = s->writable;
        s->writable = NULL;
        cb(s, s->writable_arg);
    }
}

static void s_on_poll(uv_poll_t *h, int status, int events)
{
    ag_zsock_t *s = h->data;
    if (status < 0)
        ag_warn("zsock", "poll error on %s: %s", s->endpoint, uv_strerror(status));
    s_drain(s);
}

static void s_on_idle(uv_idle_t *h)
{
    ag_zsock_t *s = h->data;
    uv_idle_stop(h);
    s->idle_on = false;
    s_drain(s);
}

static void s_idle_start(ag_zsock_t *s)
{
    if (!s->idle_on && !s->closing) {
        s->idle_on = true;
        uv_idle_start(&s->idle, s_on_idle);
    }
}

ag_zsock_t *ag_zsock_create(uv_loop_t *loop, void *zctx, int type, const ag_zsock_opts_t *opts,
                            ag_zsock_recv_cb cb, void *arg)
{
    static const ag_zsock_opts_t defaults = {0};
    if (!opts)
        opts = &defaults;
    ag_zsock_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->type = type;
    s->cb = cb;
    s->arg = arg;
    s->zsock = zmq_socket(zctx, type);
    if (!s->zsock) {
        ag_error("zsock", "zmq_socket: %s", zmq_strerror(errno));
        free(s);
        return NULL;
    }
    int64_t maxmsg = opts->maxmsgsize ? opts->maxmsgsize : (1 << 20);
    int ivl = opts->heartbeat_ivl_ms ? opts->heartbeat_ivl_ms : 5000;
    int rc = 0;
    rc |= s_setopt_int(s->zsock, ZMQ_LINGER, 0);
    rc |= s_setopt_int(s->zsock, ZMQ_SNDHWM, opts->sndhwm ? opts->sndhwm : 10000);
    rc |= s_setopt_int(s->zsock, ZMQ_RCVHWM, opts->rcvhwm ? opts->rcvhwm : 10000);
    rc |= zmq_setsockopt(s->zsock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (ivl > 0) {
        rc |= s_setopt_int(s->zsock, ZMQ_HEARTBEAT_IVL, ivl);
        rc |= s_setopt_int(s->zsock, ZMQ_HEARTBEAT_TIMEOUT,
                           opts->heartbeat_timeout_ms ? opts->heartbeat_timeout_ms : 15000);
        rc |= s_setopt_int(s->zsock, ZMQ_HEARTBEAT_TTL,
                           opts->heartbeat_ttl_ms ? opts->heartbeat_ttl_ms : 15000);
    }
    if (type == ZMQ_ROUTER)
        rc |= s_setopt_int(s->zsock, ZMQ_ROUTER_MANDATORY, 1);
    if (opts->immediate)
        rc |= s_setopt_int(s->zsock, ZMQ_IMMEDIATE, 1);
    if (type == ZMQ_SUB)
        rc |= zmq_setsockopt(s->zsock, ZMQ_SUBSCRIBE, opts->subscribe ? opts->subscribe : "",
                             opts->subscribe ? strlen(opts->subscribe) : 0);
    if (rc != 0) {
        ag_error("zsock", "setting socket options: %s", zmq_strerror(errno));
        zmq_close(s->zsock);
        free(s);
        return NULL;
    }
    int fd;
    size_t fdlen = sizeof fd;
    if (zmq_getsockopt(s->zsock, ZMQ_FD, &fd, &fdlen) != 0) {
        ag_error("zsock", "ZMQ_FD: %s", zmq_strerror(errno));
        zmq_close(s->zsock);
        free(s);
        return NULL;
    }
    uv_poll_init(loop, &s->poll, fd);
    uv_idle_init(loop, &s->idle);
    s->poll.data = s;
    s->idle.data = s;
    if (cb && type != ZMQ_PUB)
        uv_poll_start(&s->poll, UV_READABLE, s_on_poll);
    return s;
}

static void s_on_close(uv_handle_t *h)
{
    ag_zsock_t *s = h->data;
    if (--s->closing == 0) {
        zmq_close(s->zsock);
        free(s);
    }
}

void ag_zsock_destroy(ag_zsock_t **self)
{
    if (!self || !*self)
        return;
    ag_zsock_t *s = *self;
    *self = NULL;
    s->closing = 2;
    uv_poll_stop(&s->poll);
    uv_idle_stop(&s->idle);
    uv_close((uv_handle_t *)&s->poll, s_on_close);
    uv_close((uv_handle_t *)&s->idle, s_on_close);
}

int ag_zsock_bind(ag_zsock_t *self, const char *endpoint)
{
    if (zmq_bind(self->zsock, endpoint) != 0) {
        int e = errno;
        ag_error("zsock", "bind %s: %s", endpoint, zmq_strerror(e));
        return -e;
    }
    size_t len = sizeof self->endpoint;
    if (zmq_getsockopt(self->zsock, ZMQ_LAST_ENDPOINT, self->endpoint, &len) != 0)
        snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    return 0;
}

int ag_zsock_connect(ag_zsock_t *self, const char *endpoint)
{
    if (zmq_connect(self->zsock, endpoint) != 0) {
        int e = errno;
        ag_error("zsock", "connect %s: %s", endpoint, zmq_strerror(e));
        return -e;
    }
    snprintf(self->endpoint, sizeof self->endpoint, "%s", endpoint);
    return 0;
}

const char *ag_zsock_endpoint(const ag_zsock_t *self)
{
    return self->endpoint;
}

void *ag_zsock_handle(ag_zsock_t *self)
{
    return self->zsock;
}

void ag_zsock_on_writable(ag_zsock_t *self, ag_zsock_writable_cb cb, void *arg)
{
    self->writable = cb;
    self->writable_arg = arg;
    if (!cb)
        return;
    /* The edge that announced the change may already be spent: look once now. */
    s_idle_start(self);
}

ag_zsock_stats_t ag_zsock_stats(const ag_zsock_t *self)
{
    return self->stats;
}

static void s_after_send(ag_zsock_t *s)
{
    if (!s->draining && s->cb && s->type != ZMQ_PUB)
        s_idle_start(s);
}

static int s_send_frames(ag_zsock_t *s, const ag_frame_t *frames, size_t n, bool more_after)
{
    for (size_t i = 0; i < n; i++) {
        int flags = ZMQ_DONTWAIT | ((i + 1 < n || more_after) ? ZMQ_SNDMORE : 0);
        if (zmq_send(s->zsock, frames[i].data, frames[i].size, flags) < 0)
            return -errno;
    }
    return 0;
}

int ag_zsock_send(ag_zsock_t *self, const ag_frame_t *frames, size_t n)
{
    int rc = s_send_frames(self, frames, n, false);
    if (rc < 0)
        self->stats.send_failed++;
    else
        self->stats.sent++;
    s_after_send(self);
    return rc;
}

int ag_zsock_send_zc(ag_zsock_t *self, const ag_frame_t *frames, size_t n, void *data,
                     size_t size, zmq_free_fn *free_fn, void *hint)
{
    zmq_msg_t last;
    if (zmq_msg_init_data(&last, data, size, free_fn, hint) != 0) {
        free_fn(data, hint);
        return -ENOMEM;
    }
    int rc = s_send_frames(self, frames, n, true);
    if (rc == 0 && zmq_msg_send(&last, self->zsock, ZMQ_DONTWAIT) < 0)
        rc = -errno;
    zmq_msg_close(&last); /* releases the data if it was not sent */
    if (rc < 0)
        self->stats.send_failed++;
    else
        self->stats.sent++;
    s_after_send(self);
    return rc;
}
