/*
 * env_client - the blocking client of the environment protocol, as a facade
 * over the messaging core's async client (common/net/rpc.h).
 *
 * Each client owns a private libuv loop, a ZeroMQ context and one
 * ag_rpc_client_t on them: socket options, request ids, deadlines and
 * retries, matching replies by id and the bounded decode all happen there,
 * exactly as for the services. A blocking function starts the async
 * operation and runs the loop until it has finished:
 *
 *  - ag_env_client_call() is one ag_rpc_call_with(), with one attempt for a
 *    Step and 1 + retries for the rest, run until its callback.
 *  - Replies no call waits for reach the rpc client's unmatched handler: in a
 *    call they are late replies and dropped (in strict mode one with
 *    request_id 0 ends the call), otherwise they are queued in arrival order
 *    for ag_env_client_recv(), with the shape they came in.
 *  - ag_env_client_send()/send_frames() write on the rpc client's socket;
 *    when it refuses (ZMQ_IMMEDIATE before a connection, or the high-water
 *    mark) they wait on the loop until it can take the message.
 *
 * Replies are [payload] or [empty][payload]: the extra frame the rpc layer
 * allows after a payload (Control get_weights) is a protocol error here.
 */
#include "env_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "codec.h"
#include "rpc.h"

/* A reply that came while no call was waiting, or -EPROTO for one that was no reply. */
typedef struct {
    int status;
    Agora__V1__EnvReply *reply;
    ag_env_reply_shape_t shape;
} queued_t;

struct ag_env_client {
    uv_loop_t loop;
    bool loop_ready;
    uv_timer_t timer; /* bounds a wait of recv or send */
    bool timer_fired;
    void *zctx;
    ag_rpc_client_t *rpc;
    int timeout_ms;
    int retries;
    bool strict;
    bool writable;
    ag_buf_t buf; /* packing buffer of ag_env_client_send, reused */
    /* the call in progress */
    bool calling;
    bool call_done;
    int call_status;
    Agora__V1__EnvReply *call_reply;
    /* ring of queued replies */
    queued_t *q;
    size_t q_cap, q_head, q_len;
};

static void s_on_timeout(uv_timer_t *t)
{
    ag_env_client_t *self = t->data;
    self->timer_fired = true;
}

typedef bool (*until_t)(const ag_env_client_t *self);

/* Runs the loop until `until` holds or timeout_ms passes (0: one look, -1: no limit). */
static void s_run(ag_env_client_t *self, int timeout_ms, until_t until)
{
    uv_update_time(&self->loop);
    if (timeout_ms == 0) {
        uv_run(&self->loop, UV_RUN_NOWAIT);
        return;
    }
    self->timer_fired = false;
    if (timeout_ms > 0)
        uv_timer_start(&self->timer, s_on_timeout, (uint64_t)timeout_ms, 0);
    while (!until(self) && !self->timer_fired)
        uv_run(&self->loop, UV_RUN_ONCE);
    uv_timer_stop(&self->timer);
}

static bool s_has_queued(const ag_env_client_t *self)
{
    return self->q_len > 0;
}

static bool s_call_finished(const ag_env_client_t *self)
{
    return self->call_done;
}

static bool s_is_writable(const ag_env_client_t *self)
{
    return self->writable;
}

static int s_push(ag_env_client_t *self, queued_t item)
{
    if (self->q_len == self->q_cap) {
        size_t cap = self->q_cap ? self->q_cap * 2 : 64;
        queued_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -ENOMEM;
        for (size_t i = 0; i < self->q_len; i++)
            q[i] = self->q[(self->q_head + i) % self->q_cap];
        free(self->q);
        self->q = q;
        self->q_cap = cap;
        self->q_head = 0;
    }
    self->q[(self->q_head + self->q_len) % self->q_cap] = item;
    self->q_len++;
    return 0;
}

static queued_t s_pop(ag_env_client_t *self)
{
    queued_t item = self->q[self->q_head];
    self->q_head = (self->q_head + 1) % self->q_cap;
    self->q_len--;
    return item;
}

static void s_finish(ag_env_client_t *self, int status, Agora__V1__EnvReply *reply)
{
    self->call_done = true;
    self->call_status = status;
    self->call_reply = reply;
}

static void s_on_done(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                      size_t extra_len)
{
    ag_env_client_t *self = arg;
    if (self->call_done)
        return;
    if (status == 0 && extra)
        status = -EPROTO;
    s_finish(self, status,
             status == 0 ? (Agora__V1__EnvReply *)ag_rpc_client_take_reply(self->rpc) : NULL);
}

/*
 * What a reply no call matched means: while a call waits, a late reply to
 * something else (dropped), the end of the call (a message that was no reply;
 * in strict mode, a reply with request_id 0); otherwise the next reply for
 * ag_env_client_recv. Takes ownership of item.reply.
 */
static void s_offer(ag_env_client_t *self, queued_t item)
{
    if (self->calling && !self->call_done) {
        if (item.status < 0 || (self->strict && item.reply->request_id == 0)) {
            s_finish(self, item.status < 0 ? item.status : -EBADMSG, item.reply);
            ag_rpc_cancel(self->rpc, s_on_done, self);
        } else {
            agora__v1__env_reply__free_unpacked(item.reply, NULL);
        }
        return;
    }
    if (s_push(self, item) < 0 && item.reply)
        agora__v1__env_reply__free_unpacked(item.reply, NULL);
}

static void s_on_unmatched(void *arg, int status, const ProtobufCMessage *reply,
                           const uint8_t *extra, size_t extra_len,
                           const ag_rpc_reply_shape_t *shape)
{
    ag_env_client_t *self = arg;
    queued_t item = {status, NULL, {(int)shape->frames, shape->delimited}};
    if (status == 0 && extra)
        item.status = -EPROTO;
    if (item.status == 0)
        item.reply = (Agora__V1__EnvReply *)ag_rpc_client_take_reply(self->rpc);
    s_offer(self, item);
}

static void s_on_writable(ag_zsock_t *sock, void *arg)
{
    ag_env_client_t *self = arg;
    self->writable = true;
}

ag_env_client_t *ag_env_client_create(const char *endpoint, int timeout_ms)
{
    ag_env_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = timeout_ms > 0 ? timeout_ms : AG_ENV_DEFAULT_TIMEOUT_MS;
    self->retries = AG_ENV_DEFAULT_RETRIES;
    if (uv_loop_init(&self->loop))
        goto fail;
    self->loop_ready = true;
    uv_timer_init(&self->loop, &self->timer);
    self->timer.data = self;
    self->zctx = zmq_ctx_new();
    if (!self->zctx)
        goto fail;
    /* ZMQ_IMMEDIATE: an unreachable server is a request that cannot go out
     * within its deadline, not one queued for whenever a server appears. */
    ag_rpc_client_opts_t ro = {.timeout_ms = self->timeout_ms,
                               .attempts = 1 + self->retries,
                               .max_reply = AG_ENV_CLIENT_MAX_REPLY,
                               .immediate = true};
    self->rpc = ag_rpc_client_create(&self->loop, self->zctx, endpoint,
                                     &agora__v1__env_reply__descriptor, &ro);
    if (!self->rpc)
        goto fail;
    ag_rpc_client_on_unmatched(self->rpc, s_on_unmatched, self);
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
    ag_rpc_client_destroy(&c->rpc);
    if (c->loop_ready) {
        uv_close((uv_handle_t *)&c->timer, NULL);
        uv_run(&c->loop, UV_RUN_DEFAULT); /* lets the closed handles go */
        uv_loop_close(&c->loop);
    }
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    while (c->q_len) {
        queued_t item = s_pop(c);
        if (item.reply)
            agora__v1__env_reply__free_unpacked(item.reply, NULL);
    }
    free(c->q);
    ag_buf_finish(&c->buf);
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
    return ag_rpc_client_new_id(self->rpc);
}

int ag_env_client_send_frames(ag_env_client_t *self, const ag_env_frame_t *frames, size_t n)
{
    if (n == 0)
        return -EINVAL;
    ag_zsock_t *sock = ag_rpc_client_sock(self->rpc);
    int rc = ag_zsock_send(sock, frames, n);
    if (rc == -EAGAIN) {
        self->writable = false;
        ag_rpc_client_on_writable(self->rpc, s_on_writable, self);
        s_run(self, self->timeout_ms, s_is_writable);
        ag_rpc_client_on_writable(self->rpc, NULL, NULL);
        if (!self->writable)
            return -ETIMEDOUT;
        rc = ag_zsock_send(sock, frames, n);
    }
    if (rc == -EAGAIN)
        return -ETIMEDOUT;
    return rc < 0 ? -EIO : 0;
}

int ag_env_client_send(ag_env_client_t *self, const Agora__V1__EnvRequest *req)
{
    if (ag_codec_pack(&req->base, &self->buf) < 0)
        return -ENOMEM;
    ag_env_frame_t frame = {self->buf.data, self->buf.len};
    return ag_env_client_send_frames(self, &frame, 1);
}

int ag_env_client_recv(ag_env_client_t *self, int timeout_ms, Agora__V1__EnvReply **reply,
                       ag_env_reply_shape_t *shape)
{
    *reply = NULL;
    if (!self->q_len)
        s_run(self, timeout_ms, s_has_queued);
    if (!self->q_len)
        return -ETIMEDOUT;
    queued_t item = s_pop(self);
    if (item.status < 0)
        return item.status;
    *reply = item.reply;
    if (shape)
        *shape = item.shape;
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
    ag_rpc_call_opts_t opts = {.timeout_ms = self->timeout_ms,
                               .attempts = is_idempotent(req) ? 1 + self->retries : 1};
    self->calling = true;
    self->call_done = false;
    self->call_reply = NULL;
    uv_update_time(&self->loop);
    int rc = ag_rpc_call_with(self->rpc, &req->base, &opts, s_on_done, self);
    if (rc < 0) {
        self->calling = false;
        return rc == -ENOMEM ? rc : -EIO;
    }
    /* Replies queued before the request went out answer something else; looked at
     * in order, as if they came now (one could still end the call, see s_offer). */
    while (self->q_len && !self->call_done)
        s_offer(self, s_pop(self));
    s_run(self, -1, s_call_finished);
    self->calling = false;
    *reply = self->call_reply;
    self->call_reply = NULL;
    return self->call_status;
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
