/*
 * rpc.c - ROUTER-side request dispatch and the DEALER-side client with
 * deadlines and retries (see rpc.h).
 */
#include "rpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct ag_rpc_server {
    ag_zsock_t *sock;
    ag_rpc_handler_t handler;
    void *arg;
    ag_buf_t buf;
};

static void s_server_recv(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    ag_rpc_server_t *srv = arg;
    ag_rpc_peer_t peer;
    size_t idlen = ag_zmsg_size(m, 0);
    if (m->n < 1 || idlen == 0 || idlen > sizeof peer.id)
        return; /* not addressable: nothing can be sent back */
    memcpy(peer.id, ag_zmsg_data(m, 0), idlen);
    peer.id_len = idlen;
    peer.delimited = m->n >= 3 && ag_zmsg_size(m, 1) == 0;
    size_t first = peer.delimited ? 2 : 1;
    /* Exactly one payload frame, and not a lone empty frame (a delimiter without a body). */
    if (m->n_dropped || m->n != first + 1 || (!peer.delimited && ag_zmsg_size(m, 1) == 0)) {
        srv->handler(srv, &peer, NULL, 0, srv->arg);
        return;
    }
    srv->handler(srv, &peer, ag_zmsg_data(m, first), ag_zmsg_size(m, first), srv->arg);
}

ag_rpc_server_t *ag_rpc_server_create(uv_loop_t *loop, void *zctx, const char *endpoint,
                                      const ag_zsock_opts_t *opts, ag_rpc_handler_t handler,
                                      void *arg)
{
    ag_rpc_server_t *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->handler = handler;
    srv->arg = arg;
    srv->sock = ag_zsock_create(loop, zctx, ZMQ_ROUTER, opts, s_server_recv, srv);
    if (!srv->sock || ag_zsock_bind(srv->sock, endpoint) < 0) {
        ag_rpc_server_destroy(&srv);
        return NULL;
    }
    return srv;
}

void ag_rpc_server_destroy(ag_rpc_server_t **self)
{
    if (!self || !*self)
        return;
    ag_zsock_destroy(&(*self)->sock);
    ag_buf_finish(&(*self)->buf);
    free(*self);
    *self = NULL;
}

const char *ag_rpc_server_endpoint(const ag_rpc_server_t *self)
{
    return ag_zsock_endpoint(self->sock);
}

ag_zsock_t *ag_rpc_server_sock(ag_rpc_server_t *self)
{
    return self->sock;
}

int ag_rpc_reply(ag_rpc_server_t *self, const ag_rpc_peer_t *peer, const void *payload,
                 size_t len, const void *extra, size_t extra_len)
{
    ag_frame_t f[4];
    size_t n = 0;
    f[n++] = (ag_frame_t){peer->id, peer->id_len};
    if (peer->delimited)
        f[n++] = (ag_frame_t){"", 0};
    f[n++] = (ag_frame_t){payload, len};
    if (extra)
        f[n++] = (ag_frame_t){extra, extra_len};
    int rc = ag_zsock_send(self->sock, f, n);
    if (rc < 0)
        ag_debug("rpc", "reply dropped: %s", zmq_strerror(-rc));
    return rc;
}

int ag_rpc_reply_msg(ag_rpc_server_t *self, const ag_rpc_peer_t *peer,
                     const ProtobufCMessage *reply)
{
    if (ag_codec_pack(reply, &self->buf) < 0)
        return -ENOMEM;
    return ag_rpc_reply(self, peer, self->buf.data, self->buf.len, NULL, 0);
}

int ag_rpc_reply_error(ag_rpc_server_t *self, const ag_rpc_peer_t *peer,
                       const ProtobufCMessageDescriptor *reply_desc, uint64_t request_id,
                       Agora__V1__ErrorCode code, const char *message)
{
    /* Room for the largest envelope struct of any service. */
    union {
        ProtobufCMessage base;
        char storage[512];
    } reply;
    Agora__V1__Error err;
    if (reply_desc->sizeof_message > sizeof reply)
        return -EINVAL;
    ag_envelope_init_error(&reply.base, reply_desc, request_id, &err, code, message);
    return ag_rpc_reply_msg(self, peer, &reply.base);
}

ProtobufCMessage *ag_rpc_decode_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer,
                                        const uint8_t *payload, size_t len,
                                        const ProtobufCMessageDescriptor *req_desc,
                                        const ProtobufCMessageDescriptor *reply_desc,
                                        const ag_limits_t *limits, char *why, size_t why_len)
{
    if (!payload) {
        snprintf(why, why_len, "a request is one frame [%s] or two frames [empty][%s]",
                 req_desc->short_name, req_desc->short_name);
        ag_rpc_reply_error(srv, peer, reply_desc, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                           why);
        return NULL;
    }
    /* Limits are checked after the decode, so that a request over a limit is
     * still answered under its own request_id. */
    ProtobufCMessage *req = ag_codec_decode(req_desc, payload, len, NULL, why, why_len);
    if (!req) {
        ag_rpc_reply_error(srv, peer, reply_desc, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                           why);
        return NULL;
    }
    uint64_t rid = ag_envelope_request_id(req);
    Agora__V1__ErrorCode code = AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    if (limits && ag_codec_check_limits(req, limits, why, why_len) < 0)
        goto fail;
    uint32_t version = ag_envelope_version(req);
    if (version != AG_PROTOCOL_VERSION) {
        snprintf(why, why_len, "protocol_version %u is not supported; this server speaks %d",
                 (unsigned)version, AG_PROTOCOL_VERSION);
        code = AGORA__V1__ERROR_CODE__ERROR_VERSION_MISMATCH;
        goto fail;
    }
    return req;
fail:
    ag_rpc_reply_error(srv, peer, reply_desc, rid, code, why);
    ag_codec_free(req);
    return NULL;
}

/* ---- client ---- */

typedef struct call {
    struct call *next;
    uint64_t request_id;
    uint64_t deadline_ms;
    int timeout_ms;
    int attempts_left;
    bool unsent;    /* the socket refused the current attempt: it goes out when writable */
    ag_rpc_done_t done;
    void *arg;
    size_t len;     /* body bytes, after HEADER_ROOM bytes for the header */
    uint8_t *bytes;
    size_t start;   /* where the current attempt's header begins */
} call_t;

/* Room for the header fields protocol_version and request_id (2 tags + varints). */
#define HEADER_ROOM 16

struct ag_rpc_client {
    uv_loop_t *loop;
    ag_zsock_t *sock;
    uv_timer_t timer;
    const ProtobufCMessageDescriptor *reply_desc;
    ag_rpc_client_opts_t opts;
    ag_limits_t limits;
    call_t *calls;
    size_t n_calls;
    uint64_t next_id;
    ag_rpc_unmatched_t unmatched;
    void *unmatched_arg;
    ag_zsock_writable_cb writable; /* the owner's, after the client's own unsent attempts */
    void *writable_arg;
    ProtobufCMessage *delivering; /* the reply being handed to a callback */
    bool closing;
};

static void s_arm(ag_rpc_client_t *c);

static void s_call_free(call_t *call)
{
    free(call->bytes);
    free(call);
}

static call_t *s_unlink(ag_rpc_client_t *c, uint64_t request_id)
{
    for (call_t **p = &c->calls; *p; p = &(*p)->next) {
        if ((*p)->request_id == request_id) {
            call_t *call = *p;
            *p = call->next;
            c->n_calls--;
            return call;
        }
    }
    return NULL;
}

/*
 * The body is packed once with the header fields left at zero (so absent);
 * each attempt writes protocol_version and a fresh request_id in front of it.
 * Protobuf merges concatenated encodings, so header + body is the whole
 * envelope, and a late reply to an abandoned attempt never matches again.
 */
static size_t s_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static void s_write_header(call_t *call)
{
    uint8_t h[HEADER_ROOM];
    size_t n = 0;
    h[n++] = 0x08; /* field 1, varint */
    n += s_varint(h + n, AG_PROTOCOL_VERSION);
    h[n++] = 0x10; /* field 2, varint */
    n += s_varint(h + n, call->request_id);
    call->start = HEADER_ROOM - n;
    memcpy(call->bytes + call->start, h, n);
}

static void s_on_writable(ag_zsock_t *sock, void *arg);

/*
 * An attempt's deadline runs from when ZeroMQ takes it. One the socket
 * refuses (at the high-water mark, or with ZMQ_IMMEDIATE before a connection
 * is up) stays unsent and goes out as soon as the socket can take it; if
 * that does not happen within the deadline, the attempt has failed.
 */
static int s_send_attempt(ag_rpc_client_t *c, call_t *call)
{
    s_write_header(call);
    ag_frame_t f = {call->bytes + call->start, HEADER_ROOM - call->start + call->len};
    call->deadline_ms = uv_now(c->loop) + (uint64_t)call->timeout_ms;
    int rc = ag_zsock_send(c->sock, &f, 1);
    call->unsent = rc == -EAGAIN;
    if (call->unsent)
        ag_zsock_on_writable(c->sock, s_on_writable, c);
    return rc;
}

static void s_on_writable(ag_zsock_t *sock, void *arg)
{
    ag_rpc_client_t *c = arg;
    for (call_t *call = c->calls; call; call = call->next) {
        if (call->unsent && s_send_attempt(c, call) == -EAGAIN) {
            s_arm(c); /* full again: s_send_attempt waits for the next chance */
            return;
        }
    }
    s_arm(c);
    if (c->writable) {
        ag_zsock_writable_cb cb = c->writable;
        c->writable = NULL;
        cb(sock, c->writable_arg);
    }
}

void ag_rpc_client_on_writable(ag_rpc_client_t *self, ag_zsock_writable_cb cb, void *arg)
{
    self->writable = cb;
    self->writable_arg = arg;
    if (cb)
        ag_zsock_on_writable(self->sock, s_on_writable, self);
}

uint64_t ag_rpc_client_new_id(ag_rpc_client_t *self)
{
    uint64_t id = self->next_id++;
    return id ? id : self->next_id++;
}

/* Hands a reply no call waits for (or -EPROTO for a message that was none) to the owner. */
static void s_unmatched(ag_rpc_client_t *c, int status, const ProtobufCMessage *reply,
                        const uint8_t *extra, size_t extra_len, const ag_rpc_reply_shape_t *shape,
                        const char *why)
{
    if (c->unmatched)
        c->unmatched(c->unmatched_arg, status, reply, extra, extra_len, shape);
    else if (status < 0)
        ag_warn("rpc", "bad reply from %s: %s", ag_zsock_endpoint(c->sock), why);
}

static void s_client_recv(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    ag_rpc_client_t *c = arg;
    ag_rpc_reply_shape_t shape = {m->n + m->n_dropped, m->n >= 2 && ag_zmsg_size(m, 0) == 0};
    size_t first = shape.delimited ? 1 : 0;
    /* The payload, and at most one raw frame after it (Control get_weights). */
    if (m->n_dropped || m->n > first + 2) {
        s_unmatched(c, -EPROTO, NULL, NULL, 0, &shape, "too many frames");
        return;
    }
    char why[160];
    ProtobufCMessage *reply = ag_codec_decode(c->reply_desc, ag_zmsg_data(m, first),
                                              ag_zmsg_size(m, first), &c->limits, why,
                                              sizeof why);
    if (!reply) {
        s_unmatched(c, -EPROTO, NULL, NULL, 0, &shape, why);
        return;
    }
    const uint8_t *extra = m->n > first + 1 ? ag_zmsg_data(m, first + 1) : NULL;
    size_t extra_len = m->n > first + 1 ? ag_zmsg_size(m, first + 1) : 0;
    c->delivering = reply;
    call_t *call = s_unlink(c, ag_envelope_request_id(reply));
    if (call) {
        call->done(call->arg, 0, reply, extra, extra_len);
        s_call_free(call);
        s_arm(c);
    } else {
        s_unmatched(c, 0, reply, extra, extra_len, &shape, NULL);
    }
    ag_codec_free(c->delivering); /* NULL if a callback took it */
    c->delivering = NULL;
}

ProtobufCMessage *ag_rpc_client_take_reply(ag_rpc_client_t *self)
{
    ProtobufCMessage *reply = self->delivering;
    self->delivering = NULL;
    return reply;
}

static void s_on_timer(uv_timer_t *t)
{
    ag_rpc_client_t *c = t->data;
    uint64_t now = uv_now(c->loop);
    call_t **p = &c->calls;
    while (*p) {
        call_t *call = *p;
        if (call->deadline_ms > now) {
            p = &call->next;
            continue;
        }
        if (call->attempts_left > 0) {
            call->attempts_left--;
            call->request_id = ag_rpc_client_new_id(c);
            ag_debug("rpc", "retrying request to %s", ag_zsock_endpoint(c->sock));
            s_send_attempt(c, call);
            p = &call->next;
            continue;
        }
        *p = call->next;
        c->n_calls--;
        call->done(call->arg, -ETIMEDOUT, NULL, NULL, 0);
        s_call_free(call);
    }
    s_arm(c);
}

static void s_arm(ag_rpc_client_t *c)
{
    if (c->closing)
        return;
    if (!c->calls) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t min = UINT64_MAX;
    for (call_t *call = c->calls; call; call = call->next)
        if (call->deadline_ms < min)
            min = call->deadline_ms;
    uint64_t now = uv_now(c->loop);
    uv_timer_start(&c->timer, s_on_timer, min > now ? min - now : 0, 0);
}

static const ag_limits_t s_default_limits = {1 << 30, 1 << 24, NULL, 0};

ag_rpc_client_t *ag_rpc_client_create(uv_loop_t *loop, void *zctx, const char *endpoint,
                                      const ProtobufCMessageDescriptor *reply_desc,
                                      const ag_rpc_client_opts_t *opts)
{
    ag_rpc_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->reply_desc = reply_desc;
    if (opts)
        c->opts = *opts;
    if (c->opts.timeout_ms <= 0)
        c->opts.timeout_ms = AG_RPC_DEFAULT_TIMEOUT_MS;
    if (c->opts.attempts <= 0)
        c->opts.attempts = AG_RPC_DEFAULT_ATTEMPTS;
    if (c->opts.max_reply == 0)
        c->opts.max_reply = AG_RPC_DEFAULT_MAX_REPLY;
    c->limits = c->opts.limits ? *c->opts.limits : s_default_limits;
    /* Ids start at a random-looking point so two client runs never share them. */
    c->next_id = ((uint64_t)uv_hrtime() << 16) | 1;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    ag_zsock_opts_t zo = {.maxmsgsize = c->opts.max_reply, .immediate = c->opts.immediate};
    c->sock = ag_zsock_create(loop, zctx, ZMQ_DEALER, &zo, s_client_recv, c);
    if (!c->sock || ag_zsock_connect(c->sock, endpoint) < 0) {
        ag_rpc_client_destroy(&c);
        return NULL;
    }
    return c;
}

static void s_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ag_rpc_client_destroy(ag_rpc_client_t **self)
{
    if (!self || !*self)
        return;
    ag_rpc_client_t *c = *self;
    *self = NULL;
    c->closing = true;
    while (c->calls) {
        call_t *call = c->calls;
        c->calls = call->next;
        call->done(call->arg, -ECANCELED, NULL, NULL, 0);
        s_call_free(call);
    }
    ag_zsock_destroy(&c->sock);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, s_timer_closed);
}

void ag_rpc_client_on_unmatched(ag_rpc_client_t *self, ag_rpc_unmatched_t cb, void *arg)
{
    self->unmatched = cb;
    self->unmatched_arg = arg;
}

ag_zsock_t *ag_rpc_client_sock(ag_rpc_client_t *self)
{
    return self->sock;
}

int ag_rpc_call_with(ag_rpc_client_t *self, ProtobufCMessage *request,
                     const ag_rpc_call_opts_t *opts, ag_rpc_done_t done, void *arg)
{
    ag_envelope_set_header(request, 0);
    const ProtobufCFieldDescriptor *v = protobuf_c_message_descriptor_get_field(
        request->descriptor, 1);
    if (v) /* leave protocol_version out of the body: the header carries it */
        *(uint32_t *)((char *)request + v->offset) = 0;
    call_t *call = calloc(1, sizeof *call);
    if (!call)
        return -ENOMEM;
    call->len = protobuf_c_message_get_packed_size(request);
    call->bytes = malloc(HEADER_ROOM + call->len);
    if (!call->bytes) {
        free(call);
        return -ENOMEM;
    }
    protobuf_c_message_pack(request, call->bytes + HEADER_ROOM);
    ag_envelope_set_header(request, 0);
    call->request_id = ag_rpc_client_new_id(self);
    call->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : self->opts.timeout_ms;
    call->attempts_left = (opts && opts->attempts > 0 ? opts->attempts : self->opts.attempts) - 1;
    call->done = done;
    call->arg = arg;
    int rc = s_send_attempt(self, call);
    if (rc < 0 && rc != -EAGAIN) {
        s_call_free(call);
        return rc;
    }
    call->next = self->calls;
    self->calls = call;
    self->n_calls++;
    s_arm(self);
    return 0;
}

int ag_rpc_call(ag_rpc_client_t *self, ProtobufCMessage *request, ag_rpc_done_t done,
                void *arg)
{
    return ag_rpc_call_with(self, request, NULL, done, arg);
}

size_t ag_rpc_cancel(ag_rpc_client_t *self, ag_rpc_done_t done, void *arg)
{
    size_t n = 0;
    call_t **p = &self->calls;
    while (*p) {
        call_t *call = *p;
        if (call->done != done || call->arg != arg) {
            p = &call->next;
            continue;
        }
        *p = call->next;
        self->n_calls--;
        s_call_free(call);
        n++;
    }
    s_arm(self);
    return n;
}

size_t ag_rpc_client_pending(const ag_rpc_client_t *self)
{
    return self->n_calls;
}
