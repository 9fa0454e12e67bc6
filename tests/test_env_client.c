/*
 * test_env_client.c - the blocking env client (env_server/env_client.h)
 * against a scripted server: a ZeroMQ ROUTER on loopback in a thread of the
 * test, which records every request and answers as the test says (at once,
 * late, never, with request_id 0, in shapes no reply may have, or with a
 * reply past the decode budget). Each test pins one promise of the client:
 * retries with a fresh id for requests safe to repeat and never for a Step,
 * late replies dropped, strict mode, bad replies as -EPROTO, pipelined and
 * raw use, an unreachable server and one that comes up late.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zmq.h>

#include "env_client.h"
#include "harness.h"

enum mode {
    ANSWER,      /* answer every request (after the first drop_first) in its own shape */
    SILENT,      /* answer nothing */
    LATE,        /* hold a request and answer it, then the next one, when the next one comes */
    ZERO_ID,     /* answer with request_id 0 */
    EXTRA_FRAME, /* [payload][junk] */
    GARBAGE,     /* bytes that are no EnvReply */
    OVER_BUDGET, /* a valid EnvReply the bounded decode refuses */
};

#define MAX_SEEN 256

typedef struct {
    char endpoint[64];
    int delay_ms; /* before binding */
    void *zctx;
    pthread_t thread;
    atomic_bool stop;
    atomic_bool bound;
    pthread_mutex_t mu;
    enum mode mode;
    int drop_first;
    int seen;
    uint64_t ids[MAX_SEEN];
    int bodies[MAX_SEEN];
    uint32_t versions[MAX_SEEN];
    /* LATE: the request held back */
    bool held;
    uint8_t held_peer[256];
    size_t held_peer_len;
    uint64_t held_id;
} script_t;

static void s_send(void *router, const void *peer, size_t peer_len, bool delimited,
                   const void *payload, size_t len, const void *extra, size_t extra_len)
{
    zmq_send(router, peer, peer_len, ZMQ_SNDMORE);
    if (delimited)
        zmq_send(router, "", 0, ZMQ_SNDMORE);
    zmq_send(router, payload, len, extra ? ZMQ_SNDMORE : 0);
    if (extra)
        zmq_send(router, extra, extra_len, 0);
}

/* A Hello or Close reply (by the request's body) with request_id id, packed into buf. */
static size_t s_pack_reply(uint8_t *buf, size_t cap, uint64_t id, int body)
{
    Agora__V1__EnvReply r = AGORA__V1__ENV_REPLY__INIT;
    Agora__V1__HelloReply hello = AGORA__V1__HELLO_REPLY__INIT;
    Agora__V1__CloseReply close = AGORA__V1__CLOSE_REPLY__INIT;
    Agora__V1__Error err = AGORA__V1__ERROR__INIT;
    r.protocol_version = 1;
    r.request_id = id;
    if (id == 0) {
        err.code = AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST;
        r.body_case = AGORA__V1__ENV_REPLY__BODY_ERROR;
        r.error = &err;
    } else if (body == AGORA__V1__ENV_REQUEST__BODY_HELLO) {
        hello.server_name = "script";
        r.body_case = AGORA__V1__ENV_REPLY__BODY_HELLO;
        r.hello = &hello;
    } else {
        r.body_case = AGORA__V1__ENV_REPLY__BODY_CLOSE;
        r.close = &close;
    }
    return agora__v1__env_reply__get_packed_size(&r) <= cap ? agora__v1__env_reply__pack(&r, buf)
                                                             : 0;
}

/* A Demo reply of one transcript of 50 000 empty turns: 100 kB that would take megabytes. */
static uint8_t *s_pack_over_budget(uint64_t id, size_t *len)
{
    enum { TURNS = 50000 };
    Agora__V1__Turn *turns = calloc(TURNS, sizeof *turns);
    Agora__V1__Turn **tp = calloc(TURNS, sizeof *tp);
    for (size_t i = 0; i < TURNS; i++) {
        agora__v1__turn__init(&turns[i]);
        tp[i] = &turns[i];
    }
    Agora__V1__Transcript t = AGORA__V1__TRANSCRIPT__INIT;
    t.n_turns = TURNS;
    t.turns = tp;
    Agora__V1__Transcript *tt = &t;
    Agora__V1__DemoReply demo = AGORA__V1__DEMO_REPLY__INIT;
    demo.n_transcripts = 1;
    demo.transcripts = &tt;
    Agora__V1__EnvReply r = AGORA__V1__ENV_REPLY__INIT;
    r.protocol_version = 1;
    r.request_id = id;
    r.body_case = AGORA__V1__ENV_REPLY__BODY_DEMO;
    r.demo = &demo;
    *len = agora__v1__env_reply__get_packed_size(&r);
    uint8_t *buf = malloc(*len);
    agora__v1__env_reply__pack(&r, buf);
    free(tp);
    free(turns);
    return buf;
}

static void s_answer(script_t *s, void *router, const zmq_msg_t *peer, bool delimited,
                     uint64_t id, int body)
{
    uint8_t buf[512];
    size_t n;
    switch (s->mode) {
    case ZERO_ID:
        n = s_pack_reply(buf, sizeof buf, 0, body);
        s_send(router, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size(peer), delimited, buf, n,
               NULL, 0);
        return;
    case EXTRA_FRAME:
        n = s_pack_reply(buf, sizeof buf, id, body);
        s_send(router, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size(peer), delimited, buf, n,
               "junk", 4);
        return;
    case GARBAGE:
        s_send(router, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size(peer), delimited,
               "\xff\xff\xff", 3, NULL, 0);
        return;
    case OVER_BUDGET: {
        uint8_t *big = s_pack_over_budget(id, &n);
        s_send(router, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size(peer), delimited, big, n,
               NULL, 0);
        free(big);
        return;
    }
    case LATE:
        if (s->held) {
            n = s_pack_reply(buf, sizeof buf, s->held_id, body);
            s_send(router, s->held_peer, s->held_peer_len, false, buf, n, NULL, 0);
            s->held = false;
            break; /* and answer this one */
        }
        s->held = true;
        s->held_id = id;
        s->held_peer_len = zmq_msg_size(peer);
        memcpy(s->held_peer, zmq_msg_data((zmq_msg_t *)peer), s->held_peer_len);
        return;
    case SILENT:
        return;
    case ANSWER:
        break;
    }
    n = s_pack_reply(buf, sizeof buf, id, body);
    s_send(router, zmq_msg_data((zmq_msg_t *)peer), zmq_msg_size(peer), delimited, buf, n, NULL,
           0);
}

/* One request: [peer]([empty])[payload]; anything else is ignored. */
static void s_serve_one(script_t *s, void *router)
{
    zmq_msg_t f[3];
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, router, 0) < 0) {
            zmq_msg_close(&m);
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 3)
            f[n++] = m;
        else
            zmq_msg_close(&m);
    }
    bool delimited = n == 3 && zmq_msg_size(&f[1]) == 0;
    if (n == 2 || delimited) {
        zmq_msg_t *payload = &f[n - 1];
        Agora__V1__EnvRequest *req =
            agora__v1__env_request__unpack(NULL, zmq_msg_size(payload), zmq_msg_data(payload));
        if (req) {
            pthread_mutex_lock(&s->mu);
            int k = s->seen++;
            if (k < MAX_SEEN) {
                s->ids[k] = req->request_id;
                s->bodies[k] = req->body_case;
                s->versions[k] = req->protocol_version;
            }
            if (k >= s->drop_first)
                s_answer(s, router, &f[0], delimited, req->request_id, req->body_case);
            pthread_mutex_unlock(&s->mu);
            agora__v1__env_request__free_unpacked(req, NULL);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

/* The server thread: cmocka's asserts belong to the test's thread, so none here. */
static void *s_thread(void *arg)
{
    script_t *s = arg;
    harness_sleep_ms(s->delay_ms);
    void *router = zmq_socket(s->zctx, ZMQ_ROUTER);
    int linger = 0;
    zmq_setsockopt(router, ZMQ_LINGER, &linger, sizeof linger);
    /* On failure nothing answers, and the test waiting for answers fails. */
    if (zmq_bind(router, s->endpoint)) {
        fprintf(stderr, "script: cannot bind %s: %s\n", s->endpoint, zmq_strerror(zmq_errno()));
        zmq_close(router);
        return NULL;
    }
    size_t len = sizeof s->endpoint;
    zmq_getsockopt(router, ZMQ_LAST_ENDPOINT, s->endpoint, &len);
    atomic_store(&s->bound, true);
    while (!atomic_load(&s->stop)) {
        zmq_pollitem_t item = {.socket = router, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 20) > 0)
            s_serve_one(s, router);
    }
    zmq_close(router);
    return NULL;
}

/* Starts the server on endpoint (NULL: a free loopback port) after delay_ms. */
static script_t *script_start(const char *endpoint, int delay_ms, enum mode mode)
{
    script_t *s = calloc(1, sizeof *s);
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint ? endpoint : "tcp://127.0.0.1:*");
    s->delay_ms = delay_ms;
    s->mode = mode;
    s->zctx = zmq_ctx_new();
    pthread_mutex_init(&s->mu, NULL);
    assert_int_equal(pthread_create(&s->thread, NULL, s_thread, s), 0);
    while (!delay_ms && !atomic_load(&s->bound))
        harness_sleep_ms(1);
    return s;
}

static void script_stop(script_t **s)
{
    atomic_store(&(*s)->stop, true);
    pthread_join((*s)->thread, NULL);
    zmq_ctx_term((*s)->zctx);
    pthread_mutex_destroy(&(*s)->mu);
    free(*s);
    *s = NULL;
}

static void script_set(script_t *s, enum mode mode, int drop_first)
{
    pthread_mutex_lock(&s->mu);
    s->mode = mode;
    s->drop_first = s->seen + drop_first;
    pthread_mutex_unlock(&s->mu);
}

static int script_seen(script_t *s)
{
    pthread_mutex_lock(&s->mu);
    int n = s->seen;
    pthread_mutex_unlock(&s->mu);
    return n;
}

typedef struct {
    script_t *srv;
    ag_env_client_t *cl;
} fixture_t;

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);
    f->srv = script_start(NULL, 0, ANSWER);
    f->cl = ag_env_client_create(f->srv->endpoint, 2000);
    assert_non_null(f->cl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    ag_env_client_destroy(&f->cl);
    assert_null(f->cl);
    script_stop(&f->srv);
    free(f);
    return 0;
}

/* The client's deadline and retries, and how the server answers from now on. */
static void s_arrange(fixture_t *f, int timeout_ms, int retries, enum mode mode, int drop_first)
{
    ag_env_client_set_timeout(f->cl, timeout_ms);
    ag_env_client_set_retries(f->cl, retries);
    script_set(f->srv, mode, drop_first);
}

/* Sends a Close with request id `id` as it is, for pipelined use. */
static int s_send_close(ag_env_client_t *cl, uint64_t id)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = id;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    return ag_env_client_send(cl, &req);
}

static void test_call(void **state)
{
    fixture_t *f = *state;
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), 0);
    assert_string_equal(ag_env_reply_kind(r), "hello");
    assert_int_equal(script_seen(f->srv), 1);
    assert_int_equal(f->srv->versions[0], AG_ENV_PROTOCOL_VERSION);
    assert_true(f->srv->ids[0] != 0);
    assert_int_equal(r->request_id, f->srv->ids[0]);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* Requests safe to repeat are resent on a timeout, each attempt with a fresh id. */
static void test_retry_with_fresh_id(void **state)
{
    fixture_t *f = *state;
    s_arrange(f, 100, 2, ANSWER, 2);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_reset(f->cl, "debate", 1, NULL, 0, NULL, 0, &r), 0);
    assert_int_equal(script_seen(f->srv), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(f->srv->bodies[i], AGORA__V1__ENV_REQUEST__BODY_RESET);
    assert_true(f->srv->ids[0] != f->srv->ids[1] && f->srv->ids[1] != f->srv->ids[2] &&
                f->srv->ids[0] != f->srv->ids[2]);
    assert_int_equal(r->request_id, f->srv->ids[2]);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* A Step is sent once, whatever the retries: a resent Step could be applied twice. */
static void test_step_never_resent(void **state)
{
    fixture_t *f = *state;
    s_arrange(f, 100, 2, SILENT, 0);
    Agora__V1__EnvReply *r = NULL;
    int64_t t0 = ag_now_ms();
    assert_int_equal(ag_env_client_step(f->cl, 7, 0, "1", &r), -ETIMEDOUT);
    assert_null(r);
    assert_true(ag_now_ms() - t0 >= 95);
    harness_sleep_ms(300);
    assert_int_equal(script_seen(f->srv), 1);
    assert_int_equal(f->srv->bodies[0], AGORA__V1__ENV_REQUEST__BODY_STEP);
    /* The same silence makes a Close go out three times. */
    assert_int_equal(ag_env_client_close(f->cl, 7, &r), -ETIMEDOUT);
    assert_int_equal(script_seen(f->srv), 4);
}

/* The reply to an abandoned attempt is dropped: the call returns the answer to its last one. */
static void test_late_reply_dropped(void **state)
{
    fixture_t *f = *state;
    s_arrange(f, 150, 1, LATE, 0);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), 0);
    assert_int_equal(script_seen(f->srv), 2);
    assert_int_equal(r->request_id, f->srv->ids[1]);
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* Nor is it kept for a later recv. */
    assert_int_equal(ag_env_client_recv(f->cl, 100, &r, NULL), -ETIMEDOUT);
    assert_null(r);
}

/* Strict mode: a reply with request_id 0 ends the call at once, and nothing is resent. */
static void test_strict_mode(void **state)
{
    fixture_t *f = *state;
    s_arrange(f, 100, 2, ZERO_ID, 0);
    ag_env_client_set_strict(f->cl, true);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), -EBADMSG);
    assert_non_null(r);
    assert_int_equal(r->request_id, 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    agora__v1__env_reply__free_unpacked(r, NULL);
    harness_sleep_ms(350);
    assert_int_equal(script_seen(f->srv), 1);
    /* Not strict: such replies answer nothing of ours, and every attempt times out. */
    ag_env_client_set_strict(f->cl, false);
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), -ETIMEDOUT);
    assert_null(r);
    assert_int_equal(script_seen(f->srv), 4);
}

/* Replies that are not an EnvReply in one or two frames, or cost too much to decode. */
static void test_bad_replies(void **state)
{
    fixture_t *f = *state;
    ag_env_client_set_retries(f->cl, 0);
    const enum mode bad[] = {EXTRA_FRAME, GARBAGE, OVER_BUDGET};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        script_set(f->srv, bad[i], 0);
        Agora__V1__EnvReply *r = NULL;
        assert_int_equal(ag_env_client_hello(f->cl, "test", &r), -EPROTO);
        assert_null(r);
        /* The same through send and recv. */
        assert_int_equal(s_send_close(f->cl, ag_env_client_new_id(f->cl)), 0);
        assert_int_equal(ag_env_client_recv(f->cl, 2000, &r, NULL), -EPROTO);
        assert_null(r);
    }
    /* The client is fine afterwards. */
    script_set(f->srv, ANSWER, 0);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), 0);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* Many requests in flight, the caller's own ids, replies taken as they come. */
static void test_pipelined(void **state)
{
    fixture_t *f = *state;
    enum { N = 200, BASE = 5000 };
    bool got[N] = {0};
    for (int i = 0; i < N; i++)
        assert_int_equal(s_send_close(f->cl, BASE + (uint64_t)i), 0);
    for (int i = 0; i < N; i++) {
        Agora__V1__EnvReply *r = NULL;
        ag_env_reply_shape_t shape = {0};
        assert_int_equal(ag_env_client_recv(f->cl, 2000, &r, &shape), 0);
        assert_true(r->request_id >= BASE && r->request_id < BASE + N);
        assert_false(got[r->request_id - BASE]);
        got[r->request_id - BASE] = true;
        assert_int_equal(shape.frames, 1);
        assert_false(shape.delimited);
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_recv(f->cl, 0, &r, NULL), -ETIMEDOUT);
    /* Replies the client has read off the socket but nobody took are freed with
     * the client (the sanitizer build checks): one recv reads all five. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(s_send_close(f->cl, BASE + (uint64_t)i), 0);
    harness_sleep_ms(100);
    assert_int_equal(ag_env_client_recv(f->cl, 2000, &r, NULL), 0);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* Raw frames go out as given; a reply reports the shape it came in. */
static void test_raw_frames(void **state)
{
    fixture_t *f = *state;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    uint8_t buf[64];
    for (int delimited = 0; delimited < 2; delimited++) {
        req.request_id = ag_env_client_new_id(f->cl);
        assert_true(req.request_id != 0);
        size_t n = agora__v1__env_request__pack(&req, buf);
        ag_env_frame_t frames[2] = {{"", 0}, {buf, n}};
        assert_int_equal(
            ag_env_client_send_frames(f->cl, delimited ? frames : frames + 1, delimited ? 2 : 1),
            0);
        Agora__V1__EnvReply *r = NULL;
        ag_env_reply_shape_t shape = {0};
        assert_int_equal(ag_env_client_recv(f->cl, 2000, &r, &shape), 0);
        assert_int_equal(r->request_id, req.request_id);
        assert_int_equal(shape.frames, delimited ? 2 : 1);
        assert_int_equal(shape.delimited, delimited);
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
    assert_int_equal(ag_env_client_send_frames(f->cl, NULL, 0), -EINVAL);
    /* Ids never repeat, and calls draw from the same sequence. */
    uint64_t a = ag_env_client_new_id(f->cl);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(f->cl, "test", &r), 0);
    uint64_t b = ag_env_client_new_id(f->cl);
    assert_true(r->request_id != a && r->request_id != b && a != b);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* Nobody listening: calls and sends time out after their deadlines, no sooner. */
static void test_unreachable(void **state)
{
    char endpoint[64];
    assert_int_equal(harness_free_endpoint(endpoint, sizeof endpoint), 0);
    ag_env_client_t *cl = ag_env_client_create(endpoint, 100);
    assert_non_null(cl);
    ag_env_client_set_retries(cl, 1);
    Agora__V1__EnvReply *r = NULL;
    int64_t t0 = ag_now_ms();
    assert_int_equal(ag_env_client_hello(cl, "test", &r), -ETIMEDOUT);
    int64_t ms = ag_now_ms() - t0;
    assert_true(ms >= 190 && ms < 2000);
    t0 = ag_now_ms();
    ag_env_frame_t frame = {"x", 1};
    assert_int_equal(ag_env_client_send_frames(cl, &frame, 1), -ETIMEDOUT);
    assert_true(ag_now_ms() - t0 >= 95);
    ag_env_client_destroy(&cl);
    assert_null(ag_env_client_create("nonsense://", 100));
}

/* A request made before the server is up goes out when it is, within its one attempt. */
static void test_server_comes_up_later(void **state)
{
    char endpoint[64];
    assert_int_equal(harness_free_endpoint(endpoint, sizeof endpoint), 0);
    ag_env_client_t *cl = ag_env_client_create(endpoint, 3000);
    assert_non_null(cl);
    ag_env_client_set_retries(cl, 0);
    int64_t t0 = ag_now_ms();
    script_t *srv = script_start(endpoint, 300, ANSWER);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(cl, "test", &r), 0);
    int64_t ms = ag_now_ms() - t0;
    assert_true(ms >= 290 && ms < 3000);
    assert_int_equal(script_seen(srv), 1);
    agora__v1__env_reply__free_unpacked(r, NULL);
    ag_env_client_destroy(&cl);
    script_stop(&srv);
}

static int s_open_fds(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Each client owns a loop, a context and a socket: destroying it gives every one back. */
static void test_destroy_releases_everything(void **state)
{
    script_t *srv = script_start(NULL, 0, ANSWER);
    int before = s_open_fds();
    for (int i = 0; i < 20; i++) {
        ag_env_client_t *cl = ag_env_client_create(srv->endpoint, 2000);
        assert_non_null(cl);
        Agora__V1__EnvReply *r = NULL;
        assert_int_equal(ag_env_client_hello(cl, "test", &r), 0);
        agora__v1__env_reply__free_unpacked(r, NULL);
        ag_env_client_destroy(&cl);
    }
    assert_int_equal(s_open_fds(), before);
    script_stop(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_with_fresh_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_never_resent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_reply_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_strict_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_frames, setup, teardown),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_server_comes_up_later),
        cmocka_unit_test(test_destroy_releases_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
