/*
 * test_transport.c - ZeroMQ on libuv (zsock) and request/reply with deadlines
 * and retries (rpc), over real sockets on loopback and inproc.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "env.pb-c.h"
#include "rpc.h"
#include "zsock.h"

/* ---- zsock: echo many messages, including bursts beyond one drain budget ---- */

typedef struct echo {
    uv_loop_t loop;
    void *zctx;
    ag_zsock_t *router;
    ag_zsock_t *dealer;
    uv_timer_t timer;
    uv_timer_t guard;
    int to_send;
    int sent;
    int received;
    int expected;
    int bad;
} echo_t;

static void echo_router(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    ag_frame_t f[2] = {{ag_zmsg_data(m, 0), ag_zmsg_size(m, 0)},
                       {ag_zmsg_data(m, 1), ag_zmsg_size(m, 1)}};
    assert_int_equal(m->n, 2);
    assert_int_equal(ag_zsock_send(sock, f, 2), 0);
}

static void echo_stop(echo_t *e)
{
    uv_timer_stop(&e->timer);
    uv_timer_stop(&e->guard);
    ag_zsock_destroy(&e->router);
    ag_zsock_destroy(&e->dealer);
}

static void echo_dealer(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    echo_t *e = arg;
    int v;
    assert_int_equal(m->n, 1);
    assert_int_equal(ag_zmsg_size(m, 0), sizeof v);
    memcpy(&v, ag_zmsg_data(m, 0), sizeof v);
    if (v != e->received)
        e->bad++;
    e->received++;
    if (e->received == e->expected)
        echo_stop(e);
}

/* Sends from a timer, i.e. outside any receive callback: the case where a send
 * can swallow the edge that announced incoming replies. */
static void echo_tick(uv_timer_t *t)
{
    echo_t *e = t->data;
    for (int i = 0; i < 500 && e->sent < e->to_send; i++) {
        int v = e->sent;
        ag_frame_t f = {&v, sizeof v};
        if (ag_zsock_send(e->dealer, &f, 1) == 0)
            e->sent++;
    }
    if (e->sent == e->to_send)
        uv_timer_stop(t);
}

static void echo_timeout(uv_timer_t *t)
{
    echo_stop(t->data);
}

static void test_zsock_echo(void **state)
{
    echo_t e = {0};
    e.to_send = e.expected = 20000;
    uv_loop_init(&e.loop);
    e.zctx = zmq_ctx_new();
    e.router = ag_zsock_create(&e.loop, e.zctx, ZMQ_ROUTER, NULL, echo_router, &e);
    assert_non_null(e.router);
    assert_int_equal(ag_zsock_bind(e.router, "tcp://127.0.0.1:*"), 0);
    assert_non_null(strstr(ag_zsock_endpoint(e.router), "tcp://127.0.0.1:"));
    e.dealer = ag_zsock_create(&e.loop, e.zctx, ZMQ_DEALER, NULL, echo_dealer, &e);
    assert_int_equal(ag_zsock_connect(e.dealer, ag_zsock_endpoint(e.router)), 0);
    uv_timer_init(&e.loop, &e.timer);
    uv_timer_init(&e.loop, &e.guard);
    e.timer.data = e.guard.data = &e;
    uv_timer_start(&e.timer, echo_tick, 1, 1);
    uv_timer_start(&e.guard, echo_timeout, 20000, 0);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&e.timer, NULL);
    uv_close((uv_handle_t *)&e.guard, NULL);
    uv_run(&e.loop, UV_RUN_DEFAULT);
    assert_int_equal(e.received, e.expected);
    assert_int_equal(e.bad, 0);
    assert_int_equal(uv_loop_close(&e.loop), 0);
    zmq_ctx_term(e.zctx);
}

/* ---- rpc: a server whose handler can answer, stay silent, or answer late ---- */

typedef struct rig {
    uv_loop_t loop;
    void *zctx;
    ag_rpc_server_t *server;
    ag_rpc_client_t *client;
    int drop_first;       /* requests to ignore before answering */
    bool answer_twice;    /* answer twice, then send two messages that are no reply */
    int seen;             /* requests the server saw */
    int framing_errors;
    uint64_t ids[16];     /* request ids seen, in order */
    int done_calls;
    int done_status;
    uint64_t done_episode;
} rig_t;

static void rig_handler(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                        size_t len, void *arg)
{
    rig_t *r = arg;
    if (!payload) {
        r->framing_errors++;
        ag_rpc_reply_error(srv, peer, &agora__v1__env_reply__descriptor, 0,
                           AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST, "bad framing");
        return;
    }
    Agora__V1__EnvRequest *req = agora__v1__env_request__unpack(NULL, len, payload);
    assert_non_null(req);
    assert_int_equal(req->protocol_version, 1);
    if (r->seen < 16)
        r->ids[r->seen] = req->request_id;
    r->seen++;
    if (r->seen > r->drop_first) {
        Agora__V1__CloseReply close = AGORA__V1__CLOSE_REPLY__INIT;
        Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
        ag_envelope_set_header(&reply.base, req->request_id);
        reply.body_case = AGORA__V1__ENV_REPLY__BODY_CLOSE;
        reply.close = &close;
        assert_int_equal(ag_rpc_reply_msg(srv, peer, &reply.base), 0);
        if (r->answer_twice) {
            assert_int_equal(ag_rpc_reply_msg(srv, peer, &reply.base), 0);
            ag_frame_t three[4] = {{peer->id, peer->id_len}, {"x", 1}, {"y", 1}, {"z", 1}};
            assert_int_equal(ag_zsock_send(ag_rpc_server_sock(srv), three, 4), 0);
            assert_int_equal(ag_rpc_reply(srv, peer, "\xff\xff\xff", 3, NULL, 0), 0);
        }
    }
    agora__v1__env_request__free_unpacked(req, NULL);
}

static void rig_done(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                     size_t extra_len)
{
    rig_t *r = arg;
    r->done_calls++;
    r->done_status = status;
    if (status == 0)
        assert_int_equal(((const Agora__V1__EnvReply *)reply)->body_case,
                         AGORA__V1__ENV_REPLY__BODY_CLOSE);
    ag_rpc_server_destroy(&r->server);
    ag_rpc_client_destroy(&r->client);
}

static void rig_run_with(rig_t *r, int timeout_ms, int attempts, const ag_rpc_call_opts_t *call)
{
    uv_loop_init(&r->loop);
    r->zctx = zmq_ctx_new();
    r->server = ag_rpc_server_create(&r->loop, r->zctx, "tcp://127.0.0.1:*", NULL, rig_handler,
                                     r);
    assert_non_null(r->server);
    ag_rpc_client_opts_t co = {.timeout_ms = timeout_ms, .attempts = attempts};
    r->client = ag_rpc_client_create(&r->loop, r->zctx, ag_rpc_server_endpoint(r->server),
                                     &agora__v1__env_reply__descriptor, &co);
    assert_non_null(r->client);
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    close.episode_id = 5;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    assert_int_equal(ag_rpc_call_with(r->client, &req.base, call, rig_done, r), 0);
    assert_int_equal(ag_rpc_client_pending(r->client), 1);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    zmq_ctx_term(r->zctx);
}

static void rig_run(rig_t *r, int timeout_ms, int attempts)
{
    rig_run_with(r, timeout_ms, attempts, NULL);
}

static void test_rpc_answer(void **state)
{
    rig_t r = {0};
    rig_run(&r, 2000, 3);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.done_status, 0);
    assert_int_equal(r.seen, 1);
}

static void test_rpc_retry_with_fresh_id(void **state)
{
    rig_t r = {.drop_first = 2};
    uint64_t t0 = uv_hrtime();
    rig_run(&r, 100, 3);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.done_status, 0);
    assert_int_equal(r.seen, 3);
    assert_true(r.ids[0] != r.ids[1] && r.ids[1] != r.ids[2] && r.ids[0] != r.ids[2]);
    /* Two deadlines of 100 ms passed before the third attempt was answered. */
    assert_true(uv_hrtime() - t0 >= 190 * 1000000ULL);
}

static void test_rpc_deadline(void **state)
{
    rig_t r = {.drop_first = 1000};
    uint64_t t0 = uv_hrtime();
    rig_run(&r, 50, 2);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.done_status, -ETIMEDOUT);
    assert_int_equal(r.seen, 2);
    assert_true(uv_hrtime() - t0 >= 95 * 1000000ULL);
}

/* A call made with attempts = 1 (an env Step) is never resent, whatever the client's default. */
static void test_rpc_call_once(void **state)
{
    rig_t r = {.drop_first = 1000};
    ag_rpc_call_opts_t once = {.attempts = 1};
    rig_run_with(&r, 50, 3, &once);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.done_status, -ETIMEDOUT);
    assert_int_equal(r.seen, 1);
}

/* ---- replies no call waits for, and keeping a reply past its callback ---- */

typedef struct stray {
    rig_t rig;
    uv_timer_t stop;
    ProtobufCMessage *kept;   /* taken in the done callback */
    int unmatched;
    int unmatched_bad;
    uint64_t unmatched_id;
} stray_t;

static void stray_stop(uv_timer_t *t)
{
    stray_t *s = t->data;
    ag_rpc_server_destroy(&s->rig.server);
    ag_rpc_client_destroy(&s->rig.client);
    uv_close((uv_handle_t *)t, NULL);
}

static void stray_done(void *arg, int status, const ProtobufCMessage *reply,
                       const uint8_t *extra, size_t extra_len)
{
    stray_t *s = arg;
    s->rig.done_calls++;
    s->rig.done_status = status;
    s->kept = ag_rpc_client_take_reply(s->rig.client);
    assert_ptr_equal(s->kept, reply);
    assert_null(ag_rpc_client_take_reply(s->rig.client)); /* taken once */
}

static void stray_unmatched(void *arg, int status, const ProtobufCMessage *reply,
                            const uint8_t *extra, size_t extra_len,
                            const ag_rpc_reply_shape_t *shape)
{
    stray_t *s = arg;
    if (status < 0) {
        assert_int_equal(status, -EPROTO);
        assert_null(reply);
        s->unmatched_bad++;
        return;
    }
    s->unmatched++;
    s->unmatched_id = ag_envelope_request_id(reply);
    assert_int_equal(shape->frames, 1);
    assert_false(shape->delimited);
    /* Left to the client, which frees it after the callback. */
}

/* A server and a client on a fresh loop; the test then makes calls and runs stray_run. */
static void stray_start(stray_t *s, const ag_rpc_client_opts_t *co)
{
    rig_t *r = &s->rig;
    uv_loop_init(&r->loop);
    r->zctx = zmq_ctx_new();
    r->server = ag_rpc_server_create(&r->loop, r->zctx, "tcp://127.0.0.1:*", NULL, rig_handler,
                                     r);
    assert_non_null(r->server);
    r->client = ag_rpc_client_create(&r->loop, r->zctx, ag_rpc_server_endpoint(r->server),
                                     &agora__v1__env_reply__descriptor, co);
    assert_non_null(r->client);
}

/* Runs the loop for ms, then destroys server and client. */
static void stray_run(stray_t *s, int ms)
{
    rig_t *r = &s->rig;
    uv_timer_init(&r->loop, &s->stop);
    s->stop.data = s;
    uv_timer_start(&s->stop, stray_stop, (uint64_t)ms, 0);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    zmq_ctx_term(r->zctx);
}

static void test_rpc_unmatched(void **state)
{
    stray_t s = {.rig = {.answer_twice = true}};
    rig_t *r = &s.rig;
    stray_start(&s, NULL);
    ag_rpc_client_on_unmatched(r->client, stray_unmatched, &s);
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    assert_int_equal(ag_rpc_call(r->client, &req.base, stray_done, &s), 0);
    stray_run(&s, 500);
    assert_int_equal(r->done_calls, 1);
    assert_int_equal(r->done_status, 0);
    /* The reply taken in the callback outlives it. */
    assert_non_null(s.kept);
    assert_int_equal(ag_envelope_request_id(s.kept), r->ids[0]);
    assert_int_equal(((Agora__V1__EnvReply *)s.kept)->body_case, AGORA__V1__ENV_REPLY__BODY_CLOSE);
    ag_codec_free(s.kept);
    /* The second answer to the same id matched nothing; the other two were no replies. */
    assert_int_equal(s.unmatched, 1);
    assert_int_equal(s.unmatched_id, r->ids[0]);
    assert_int_equal(s.unmatched_bad, 2);
}

/* ---- cancel: a forgotten call is neither called back nor retried ---- */

static void cancel_done(void *arg, int status, const ProtobufCMessage *reply,
                        const uint8_t *extra, size_t extra_len)
{
    fail_msg("a cancelled call was called back (status %d)", status);
}

static void test_rpc_cancel(void **state)
{
    stray_t s = {.rig = {.drop_first = 1000}};
    rig_t *r = &s.rig;
    ag_rpc_client_opts_t co = {.timeout_ms = 50, .attempts = 3};
    stray_start(&s, &co);
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    assert_int_equal(ag_rpc_call(r->client, &req.base, cancel_done, &s), 0);
    assert_int_equal(ag_rpc_call(r->client, &req.base, cancel_done, NULL), 0);
    assert_int_equal(ag_rpc_cancel(r->client, cancel_done, &s), 1);
    assert_int_equal(ag_rpc_cancel(r->client, cancel_done, NULL), 1);
    assert_int_equal(ag_rpc_client_pending(r->client), 0);
    /* Six deadlines' worth of time: a retry would have reached the server. */
    stray_run(&s, 300);
    assert_int_equal(r->seen, 2);
}

/* ---- ZMQ_IMMEDIATE: an attempt made before the server is up goes out when it is ---- */

/* An ipc endpoint of this process; the socket file is removed at the end of the test. */
static const char *late_endpoint(void)
{
    static char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "ipc:///tmp/agora-test-transport-%d", (int)getpid());
    return endpoint;
}

static void late_server(uv_timer_t *t)
{
    rig_t *r = t->data;
    r->server = ag_rpc_server_create(&r->loop, r->zctx, late_endpoint(), NULL, rig_handler, r);
    assert_non_null(r->server);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_rpc_waits_for_connection(void **state)
{
    rig_t r = {0};
    uv_loop_init(&r.loop);
    r.zctx = zmq_ctx_new();
    const char *endpoint = late_endpoint();
    unlink(endpoint + strlen("ipc://"));
    ag_rpc_client_opts_t co = {.timeout_ms = 3000, .attempts = 1, .immediate = true};
    r.client = ag_rpc_client_create(&r.loop, r.zctx, endpoint, &agora__v1__env_reply__descriptor,
                                    &co);
    assert_non_null(r.client);
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    uv_timer_t t;
    uv_timer_init(&r.loop, &t);
    t.data = &r;
    uv_timer_start(&t, late_server, 300, 0);
    uint64_t t0 = uv_hrtime();
    assert_int_equal(ag_rpc_call(r.client, &req.base, rig_done, &r), 0);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    /* Answered on its one attempt, sent once the server was there. */
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.done_status, 0);
    assert_int_equal(r.seen, 1);
    uint64_t ms = (uv_hrtime() - t0) / 1000000;
    assert_true(ms >= 290 && ms < 3000);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    zmq_ctx_term(r.zctx);
    unlink(endpoint + strlen("ipc://"));
}

/* ---- framing seen by a ROUTER service: REQ delimiter, and bad layouts ---- */


static void test_rpc_framing(void **state)
{
    rig_t r = {0};
    uv_loop_init(&r.loop);
    r.zctx = zmq_ctx_new();
    r.server =
        ag_rpc_server_create(&r.loop, r.zctx, "tcp://127.0.0.1:*", NULL, rig_handler, &r);
    assert_non_null(r.server);
    void *req = zmq_socket(r.zctx, ZMQ_REQ);
    void *bad = zmq_socket(r.zctx, ZMQ_DEALER);
    int linger = 0, rcvtimeo = 50;
    zmq_setsockopt(req, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(bad, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(req, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
    zmq_setsockopt(bad, ZMQ_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
    assert_int_equal(zmq_connect(req, ag_rpc_server_endpoint(r.server)), 0);
    assert_int_equal(zmq_connect(bad, ag_rpc_server_endpoint(r.server)), 0);

    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    Agora__V1__EnvRequest env = AGORA__V1__ENV_REQUEST__INIT;
    ag_envelope_set_header(&env.base, 11);
    env.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    env.close = &close;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&env.base, buf);
    /* REQ adds the empty delimiter; the reply must come back through it. */
    assert_int_equal(zmq_send(req, buf, n, 0), (int)n);
    /* A DEALER sending four frames, then a lone empty frame: framing errors. */
    zmq_send(bad, "a", 1, ZMQ_SNDMORE);
    zmq_send(bad, "b", 1, ZMQ_SNDMORE);
    zmq_send(bad, "c", 1, ZMQ_SNDMORE);
    zmq_send(bad, "d", 1, 0);
    zmq_send(bad, "", 0, 0);

    uint8_t rbuf[256];
    int got_req = -1;
    int got_bad = 0;
    for (int i = 0; i < 100 && (got_req < 0 || got_bad < 2); i++) {
        uv_run(&r.loop, UV_RUN_NOWAIT);
        if (got_req < 0) {
            int rc = zmq_recv(req, rbuf, sizeof rbuf, ZMQ_DONTWAIT);
            if (rc >= 0) {
                Agora__V1__EnvReply *rep =
                    agora__v1__env_reply__unpack(NULL, (size_t)rc, rbuf);
                assert_non_null(rep);
                assert_int_equal(rep->request_id, 11);
                assert_int_equal(rep->body_case, AGORA__V1__ENV_REPLY__BODY_CLOSE);
                agora__v1__env_reply__free_unpacked(rep, NULL);
                got_req = 1;
            }
        }
        int rc = zmq_recv(bad, rbuf, sizeof rbuf, ZMQ_DONTWAIT);
        if (rc >= 0) {
            Agora__V1__EnvReply *rep = agora__v1__env_reply__unpack(NULL, (size_t)rc, rbuf);
            assert_non_null(rep);
            assert_int_equal(rep->body_case, AGORA__V1__ENV_REPLY__BODY_ERROR);
            assert_int_equal(rep->error->code, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
            agora__v1__env_reply__free_unpacked(rep, NULL);
            got_bad++;
        }
        zmq_poll(NULL, 0, 10);
    }
    assert_int_equal(got_req, 1);
    assert_int_equal(got_bad, 2);
    assert_int_equal(r.framing_errors, 2);
    zmq_close(req);
    zmq_close(bad);
    ag_rpc_server_destroy(&r.server);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    zmq_ctx_term(r.zctx);
}

/* ---- ZMQ_MAXMSGSIZE: an oversize message drops that connection only ---- */

static void test_maxmsgsize(void **state)
{
    rig_t r = {0};
    uv_loop_init(&r.loop);
    r.zctx = zmq_ctx_new();
    ag_zsock_opts_t zo = {.maxmsgsize = 4096};
    r.server = ag_rpc_server_create(&r.loop, r.zctx, "tcp://127.0.0.1:*", &zo, rig_handler, &r);
    assert_non_null(r.server);
    void *big = zmq_socket(r.zctx, ZMQ_DEALER);
    void *good = zmq_socket(r.zctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(big, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(good, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(big, ag_rpc_server_endpoint(r.server));
    zmq_connect(good, ag_rpc_server_endpoint(r.server));
    static uint8_t huge[8192];
    zmq_send(big, huge, sizeof huge, 0);
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    Agora__V1__EnvRequest env = AGORA__V1__ENV_REQUEST__INIT;
    ag_envelope_set_header(&env.base, 3);
    env.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    env.close = &close;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&env.base, buf);
    zmq_send(good, buf, n, 0);
    int got = 0, got_big = 0;
    uint8_t rbuf[256];
    for (int i = 0; i < 60 && !got; i++) {
        uv_run(&r.loop, UV_RUN_NOWAIT);
        if (zmq_recv(good, rbuf, sizeof rbuf, ZMQ_DONTWAIT) >= 0)
            got = 1;
        if (zmq_recv(big, rbuf, sizeof rbuf, ZMQ_DONTWAIT) >= 0)
            got_big = 1;
        zmq_poll(NULL, 0, 10);
    }
    assert_int_equal(got, 1);
    assert_int_equal(got_big, 0);
    assert_int_equal(r.seen, 1); /* the oversize message never reached the handler */
    zmq_close(big);
    zmq_close(good);
    ag_rpc_server_destroy(&r.server);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r.loop), 0);
    zmq_ctx_term(r.zctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zsock_echo),
        cmocka_unit_test(test_rpc_answer),
        cmocka_unit_test(test_rpc_retry_with_fresh_id),
        cmocka_unit_test(test_rpc_deadline),
        cmocka_unit_test(test_rpc_call_once),
        cmocka_unit_test(test_rpc_unmatched),
        cmocka_unit_test(test_rpc_cancel),
        cmocka_unit_test(test_rpc_waits_for_connection),
        cmocka_unit_test(test_rpc_framing),
        cmocka_unit_test(test_maxmsgsize),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
