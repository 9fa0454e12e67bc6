/*
 * env_client - a small blocking client for the agora environment protocol.
 *
 * One ZeroMQ context and one DEALER per client. The DEALER sends a request as
 * a single frame [payload]; the env server's ROUTER answers in the same shape.
 * Replies are read with zmq_poll against a deadline and decoded with
 * protobuf-c; ZMQ_MAXMSGSIZE bounds what protobuf-c ever sees, since its
 * unpack has no size limit of its own. ZMQ_IMMEDIATE makes a send to a server
 * that is not (yet) connected wait instead of queueing, so an unreachable
 * server is a send timeout rather than a silent queue. Packing reuses one
 * buffer that only grows.
 */
#include "clock.h"
#include "env_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

struct ag_env_client {
    void *ctx;
    void *sock;
    int timeout_ms;
    int retries;
    bool strict;
    uint64_t next_id;
    uint8_t *buf; /* packing buffer, reused */
    size_t buf_cap;
};

static int set_int(void *sock, int opt, int value)
{
    return zmq_setsockopt(sock, opt, &value, sizeof value);
}

ag_env_client_t *ag_env_client_create(const char *endpoint, int timeout_ms)
{
    ag_env_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : AG_ENV_DEFAULT_TIMEOUT_MS;
    self->retries = AG_ENV_DEFAULT_RETRIES;
    /* Start ids from the clock so two runs against one server do not reuse ids. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    self->next_id = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec;
    if (!self->next_id)
        self->next_id = 1;

    self->ctx = zmq_ctx_new();
    if (!self->ctx)
        goto fail;
    self->sock = zmq_socket(self->ctx, ZMQ_DEALER);
    if (!self->sock)
        goto fail;
    int64_t maxmsg = AG_ENV_CLIENT_MAX_REPLY;
    if (set_int(self->sock, ZMQ_LINGER, 0) || set_int(self->sock, ZMQ_IMMEDIATE, 1) ||
        set_int(self->sock, ZMQ_HEARTBEAT_IVL, 5000) ||
        set_int(self->sock, ZMQ_HEARTBEAT_TIMEOUT, 15000) ||
        set_int(self->sock, ZMQ_HEARTBEAT_TTL, 15000) ||
        zmq_setsockopt(self->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        goto fail;
    if (zmq_connect(self->sock, endpoint)) {
        fprintf(stderr, "env_client: cannot connect to '%s': %s\n", endpoint,
                zmq_strerror(zmq_errno()));
        goto fail;
    }
    return self;
fail:
    ag_env_client_destroy(&self);
    return NULL;
}

void ag_env_client_destroy(ag_env_client_t **self)
{
    if (!self || !*self)
        return;
    ag_env_client_t *c = *self;
    if (c->sock)
        zmq_close(c->sock);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    free(c->buf);
    free(c);
    *self = NULL;
}

void ag_env_client_set_timeout(ag_env_client_t *self, int timeout_ms)
{
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : AG_ENV_DEFAULT_TIMEOUT_MS;
}

void ag_env_client_set_retries(ag_env_client_t *self, int retries)
{
    self->retries = retries >= 0 ? retries : 0;
}

void ag_env_client_set_strict(ag_env_client_t *self, bool strict)
{
    self->strict = strict;
}

uint64_t ag_env_client_new_id(ag_env_client_t *self)
{
    uint64_t id = self->next_id++;
    if (!id)
        id = self->next_id++;
    return id;
}

/*
 * Sends one multipart message, waiting at most timeout_ms for the socket to
 * take it. The send is tried first and polled only when the socket is full,
 * so the common case costs no poll() call.
 */
static int send_parts(ag_env_client_t *self, const ag_env_frame_t *frames, size_t n)
{
    if (n == 0)
        return -EINVAL;
    int flags = ZMQ_DONTWAIT | (n > 1 ? ZMQ_SNDMORE : 0);
    while (zmq_send(self->sock, frames[0].data, frames[0].size, flags) < 0) {
        if (zmq_errno() != EAGAIN)
            return -EIO;
        zmq_pollitem_t item = {.socket = self->sock, .events = ZMQ_POLLOUT};
        int rc = zmq_poll(&item, 1, self->timeout_ms);
        if (rc < 0)
            return -EIO;
        if (rc == 0)
            return -ETIMEDOUT;
    }
    /* Once the first part is in, ZeroMQ takes the rest of the message atomically. */
    for (size_t i = 1; i < n; i++) {
        flags = ZMQ_DONTWAIT | (i + 1 < n ? ZMQ_SNDMORE : 0);
        if (zmq_send(self->sock, frames[i].data, frames[i].size, flags) < 0)
            return -EIO;
    }
    return 0;
}

int ag_env_client_send_frames(ag_env_client_t *self, const ag_env_frame_t *frames, size_t n)
{
    return send_parts(self, frames, n);
}

int ag_env_client_send(ag_env_client_t *self, const Agora__V1__EnvRequest *req)
{
    size_t len = agora__v1__env_request__get_packed_size(req);
    if (len > self->buf_cap || !self->buf) {
        size_t cap = self->buf_cap ? self->buf_cap : 4096;
        while (cap < len)
            cap *= 2;
        uint8_t *buf = realloc(self->buf, cap);
        if (!buf)
            return -ENOMEM;
        self->buf = buf;
        self->buf_cap = cap;
    }
    agora__v1__env_request__pack(req, self->buf);
    ag_env_frame_t frame = {self->buf, len};
    return send_parts(self, &frame, 1);
}

/* Reads and discards what is left of a multipart message. */
static void drain_parts(void *sock)
{
    int more = 1;
    size_t sz = sizeof more;
    while (!zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) && more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        int rc = zmq_msg_recv(&m, sock, ZMQ_DONTWAIT);
        zmq_msg_close(&m);
        if (rc < 0)
            break;
    }
}

int ag_env_client_recv(ag_env_client_t *self, int timeout_ms, Agora__V1__EnvReply **reply,
                       ag_env_reply_shape_t *shape)
{
    *reply = NULL;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    /* Try first, poll only when nothing is queued: no poll() call in the busy case. */
    while (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
        int err = zmq_errno();
        if (err != EAGAIN || timeout_ms == 0) {
            zmq_msg_close(&msg);
            return err == EAGAIN ? -ETIMEDOUT : -EIO;
        }
        zmq_pollitem_t item = {.socket = self->sock, .events = ZMQ_POLLIN};
        int rc = zmq_poll(&item, 1, timeout_ms);
        if (rc <= 0) {
            zmq_msg_close(&msg);
            return rc < 0 ? -EIO : -ETIMEDOUT;
        }
    }
    ag_env_reply_shape_t got = {1, false};
    if (zmq_msg_more(&msg)) {
        if (zmq_msg_size(&msg) != 0) {
            zmq_msg_close(&msg);
            drain_parts(self->sock);
            return -EPROTO;
        }
        got.frames = 2;
        got.delimited = true;
        if (zmq_msg_recv(&msg, self->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&msg);
            return -EPROTO;
        }
        if (zmq_msg_more(&msg)) {
            zmq_msg_close(&msg);
            drain_parts(self->sock);
            return -EPROTO;
        }
    }
    *reply = agora__v1__env_reply__unpack(NULL, zmq_msg_size(&msg), zmq_msg_data(&msg));
    zmq_msg_close(&msg);
    if (!*reply)
        return -EPROTO;
    if (shape)
        *shape = got;
    return 0;
}

static bool is_idempotent(const Agora__V1__EnvRequest *req)
{
    /* A repeated Step could apply an action twice; everything else is safe. */
    return req->body_case != AGORA__V1__ENV_REQUEST__BODY_STEP;
}

int ag_env_client_call(ag_env_client_t *self, Agora__V1__EnvRequest *req,
                       Agora__V1__EnvReply **reply)
{
    *reply = NULL;
    int tries = is_idempotent(req) ? 1 + self->retries : 1;
    int rc = -ETIMEDOUT;
    for (int t = 0; t < tries; t++) {
        req->protocol_version = AG_ENV_PROTOCOL_VERSION;
        req->request_id = ag_env_client_new_id(self);
        rc = ag_env_client_send(self, req);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc)
            return rc;
        int64_t deadline = ag_now_ms() + self->timeout_ms;
        for (;;) {
            int64_t left = deadline - ag_now_ms();
            if (left <= 0) {
                rc = -ETIMEDOUT;
                break;
            }
            Agora__V1__EnvReply *r = NULL;
            rc = ag_env_client_recv(self, (int)left, &r, NULL);
            if (rc == -ETIMEDOUT)
                break;
            if (rc)
                return rc;
            if (r->request_id == req->request_id) {
                *reply = r;
                return 0;
            }
            if (self->strict && r->request_id == 0) {
                *reply = r;
                return -EBADMSG;
            }
            /* A late reply to an earlier try or to a raw send: not ours. */
            agora__v1__env_reply__free_unpacked(r, NULL);
        }
    }
    return rc;
}

int ag_env_client_hello(ag_env_client_t *self, const char *client_name, Agora__V1__EnvReply **reply)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = (char *)(client_name ? client_name : "");
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    return ag_env_client_call(self, &req, reply);
}

int ag_env_client_reset(ag_env_client_t *self, const char *game, uint64_t seed,
                        const char *const (*options)[2], size_t n_options,
                        const char *const *seat_bots, size_t n_seat_bots,
                        Agora__V1__EnvReply **reply)
{
    enum { MAX_OPTIONS = 64, MAX_SEATS = 16 };
    if (n_options > MAX_OPTIONS || n_seat_bots > MAX_SEATS)
        return -EINVAL;
    Agora__V1__KeyValue kv[MAX_OPTIONS];
    Agora__V1__KeyValue *kvp[MAX_OPTIONS];
    char *bots[MAX_SEATS];
    for (size_t i = 0; i < n_options; i++) {
        agora__v1__key_value__init(&kv[i]);
        kv[i].key = (char *)options[i][0];
        kv[i].value = (char *)options[i][1];
        kvp[i] = &kv[i];
    }
    for (size_t i = 0; i < n_seat_bots; i++)
        bots[i] = (char *)(seat_bots[i] ? seat_bots[i] : "");

    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = (char *)game;
    reset.seed = seed;
    reset.n_options = n_options;
    reset.options = kvp;
    reset.n_seat_bots = n_seat_bots;
    reset.seat_bots = bots;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    return ag_env_client_call(self, &req, reply);
}

int ag_env_client_step(ag_env_client_t *self, uint64_t episode_id, uint32_t player,
                       const char *action, Agora__V1__EnvReply **reply)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    step.episode_id = episode_id;
    step.player = player;
    step.action = (char *)action;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &step;
    return ag_env_client_call(self, &req, reply);
}

int ag_env_client_demo(ag_env_client_t *self, const char *game, uint64_t seed, uint32_t count,
                       Agora__V1__EnvReply **reply)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    demo.game = (char *)game;
    demo.seed = seed;
    demo.count = count;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
    req.demo = &demo;
    return ag_env_client_call(self, &req, reply);
}

int ag_env_client_close(ag_env_client_t *self, uint64_t episode_id, Agora__V1__EnvReply **reply)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    close.episode_id = episode_id;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    return ag_env_client_call(self, &req, reply);
}

int ag_env_reply_error(const Agora__V1__EnvReply *reply)
{
    if (reply->body_case != AGORA__V1__ENV_REPLY__BODY_ERROR)
        return 0;
    return reply->error && reply->error->code ? (int)reply->error->code : -1;
}

const char *ag_env_error_name(int code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&agora__v1__error_code__descriptor, code);
    return v ? v->name : "ERROR_(unknown code)";
}

const char *ag_env_reply_kind(const Agora__V1__EnvReply *reply)
{
    switch (reply->body_case) {
    case AGORA__V1__ENV_REPLY__BODY_ERROR:
        return "error";
    case AGORA__V1__ENV_REPLY__BODY_HELLO:
        return "hello";
    case AGORA__V1__ENV_REPLY__BODY_RESET:
        return "reset";
    case AGORA__V1__ENV_REPLY__BODY_STEP:
        return "step";
    case AGORA__V1__ENV_REPLY__BODY_DEMO:
        return "demo";
    case AGORA__V1__ENV_REPLY__BODY_CLOSE:
        return "close";
    default:
        return "none";
    }
}
