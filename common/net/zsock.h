/*
 * zsock.h - a ZeroMQ socket driven by a libuv loop.
 *
 * The socket's ZMQ_FD joins the loop through a uv_poll_t. That descriptor is
 * edge-triggered and also fires on send-side state changes, so a wake-up means
 * "look again", not "a message is there", and a send can consume the edge
 * that announced an incoming message. zsock therefore drains until a receive
 * finds nothing (which, like reading ZMQ_EVENTS, processes ZeroMQ's pending
 * commands and so re-arms the edge), and re-checks after every send (on the
 * next loop iteration, through a uv_idle_t) so no message is ever stranded.
 *
 * Every socket gets the project's standard options: ZMQ_LINGER 0, high-water
 * marks, ZMQ_MAXMSGSIZE, ZMQ heartbeats, and ZMQ_ROUTER_MANDATORY on ROUTERs
 * (a reply to a vanished peer is an error we can log, not a silent drop).
 */
#ifndef AG_ZSOCK_H
#define AG_ZSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <zmq.h>

#define AG_ZSOCK_MAX_FRAMES 8

/* One received multipart message. Frames beyond AG_ZSOCK_MAX_FRAMES are read and dropped. */
typedef struct ag_zmsg {
    zmq_msg_t frames[AG_ZSOCK_MAX_FRAMES];
    size_t n;          /* frames kept */
    size_t n_dropped;  /* frames beyond the cap */
} ag_zmsg_t;

static inline const uint8_t *ag_zmsg_data(ag_zmsg_t *m, size_t i)
{
    return (const uint8_t *)zmq_msg_data(&m->frames[i]);
}

static inline size_t ag_zmsg_size(ag_zmsg_t *m, size_t i)
{
    return zmq_msg_size(&m->frames[i]);
}

typedef struct ag_zsock_opts {
    int sndhwm;                /* 0 = default 10000 */
    int rcvhwm;                /* 0 = default 10000 */
    int64_t maxmsgsize;        /* bytes; 0 = default 1 MiB; -1 = no limit */
    int heartbeat_ivl_ms;      /* 0 = default 5000; -1 = off */
    int heartbeat_timeout_ms;  /* 0 = default 15000 */
    int heartbeat_ttl_ms;      /* 0 = default 15000 */
    bool immediate;            /* ZMQ_IMMEDIATE: queue only to completed connections */
    const char *subscribe;     /* SUB only: prefix to subscribe to ("" = all) */
} ag_zsock_opts_t;

typedef struct ag_zsock ag_zsock_t;

/*
 * Called once per received message. The message is valid during the call
 * only; zsock closes its frames afterwards. The callback may send on any
 * socket but must not destroy this one (use ag_zsock_destroy later).
 */
typedef void (*ag_zsock_recv_cb)(ag_zsock_t *sock, ag_zmsg_t *msg, void *arg);

/* opts may be NULL for the defaults. Returns NULL after logging why. */
ag_zsock_t *ag_zsock_create(uv_loop_t *loop, void *zctx, int type, const ag_zsock_opts_t *opts,
                            ag_zsock_recv_cb cb, void *arg);

/* Closes the socket (pending outgoing messages are dropped: linger 0) and
 * frees it once libuv has released the poll handle. Accepts NULL. */
void ag_zsock_destroy(ag_zsock_t **self);

int ag_zsock_bind(ag_zsock_t *self, const char *endpoint);
int ag_zsock_connect(ag_zsock_t *self, const char *endpoint);

/* The endpoint actually bound (resolves tcp://...:* ports); "" if none. */
const char *ag_zsock_endpoint(const ag_zsock_t *self);

/* The underlying ZeroMQ socket, for options zsock does not cover. */
void *ag_zsock_handle(ag_zsock_t *self);

/*
 * Calls cb once, on the loop, as soon as the socket can take a message (no
 * longer at the high-water mark; with ZMQ_IMMEDIATE, a connection is up):
 * what to wait for after a send returned -EAGAIN. A new call replaces the
 * armed callback; cb NULL disarms it. cb may send, and may arm itself again.
 * Only for a socket created with a receive callback: the loop watches no other.
 */
typedef void (*ag_zsock_writable_cb)(ag_zsock_t *sock, void *arg);
void ag_zsock_on_writable(ag_zsock_t *self, ag_zsock_writable_cb cb, void *arg);

/*
 * Sends one multipart message, copying each frame; never blocks. Returns 0,
 * or -EAGAIN at the high-water mark, -EHOSTUNREACH for a ROUTER peer that is
 * gone, or another -errno. A failed message is dropped whole.
 */
typedef struct ag_frame {
    const void *data;
    size_t size;
} ag_frame_t;
int ag_zsock_send(ag_zsock_t *self, const ag_frame_t *frames, size_t n);

/*
 * Like ag_zsock_send, but the last frame is handed over without a copy:
 * free_fn(data, hint) is called by ZeroMQ when it is done with it (on failure
 * too, before this returns).
 */
int ag_zsock_send_zc(ag_zsock_t *self, const ag_frame_t *frames, size_t n, void *data,
                     size_t size, zmq_free_fn *free_fn, void *hint);

/* Counters for metrics and tests. */
typedef struct ag_zsock_stats {
    uint64_t received;
    uint64_t sent;
    uint64_t send_failed;
} ag_zsock_stats_t;
ag_zsock_stats_t ag_zsock_stats(const ag_zsock_t *self);

#endif
