/*
 * test_actor.c - the actor's parts that need no env server: action
 * sanitising, weights checks, the trajectory shipper
 * (batches, acknowledgements, resends, the bounded outbox, the one seat an
 * episode ended on refused actions carries) and the policy source (snapshot,
 * PUB updates, refused corrupt weights, a restarted learner), the last two
 * against a scripted learner over loopback sockets.
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

#include "crc32.h"
#include "fake_learner.h"
#include "policy_source.h"
#include "runner.h"
#include "shipper.h"
#include "weights.pb-c.h"

static ag_model_config_t s_small(void)
{
    ag_model_config_t c;
    ag_model_config_default(&c);
    c.d_model = 32;
    c.n_layers = 1;
    c.n_heads = 2;
    c.ctx = 64;
    return c;
}

/* Runs the loop until *flag becomes true or ms pass; returns the flag. */
static bool s_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, int ms)
{
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000ULL;
    while (!cond(arg) && uv_hrtime() < until) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    return cond(arg);
}

static void test_sanitize(void **state)
{
    char a[] = "4 0 8 2";
    assert_int_equal(ag_runner_sanitize_utf8(a, strlen(a)), 0);
    assert_string_equal(a, "4 0 8 2");
    char b[] = {'1', 0, '2', (char)0xff, (char)0xc3, (char)0xa9, (char)0xe2, (char)0x82, 'x'};
    assert_int_equal(ag_runner_sanitize_utf8(b, sizeof b), 4);
    assert_memory_equal(b, "1?2?\xc3\xa9??x", sizeof b);
    char c[] = {(char)0xed, (char)0xa0, (char)0x80}; /* a UTF-16 surrogate: invalid */
    assert_int_equal(ag_runner_sanitize_utf8(c, sizeof c), 3);
}

/* ---- weights checks ---- */

static size_t s_pack_header(uint8_t *out, size_t cap, const ag_model_config_t *c, uint64_t bytes,
                            uint32_t crc, const char *dtype)
{
    Agora__V1__ModelConfig mc = AGORA__V1__MODEL_CONFIG__INIT;
    mc.vocab_size = (uint32_t)c->vocab;
    mc.d_model = (uint32_t)c->d_model;
    mc.n_layers = (uint32_t)c->n_layers;
    mc.n_heads = (uint32_t)c->n_heads;
    mc.context = (uint32_t)c->ctx;
    mc.mlp_ratio = (uint32_t)c->mlp_ratio;
    Agora__V1__WeightsHeader h = AGORA__V1__WEIGHTS_HEADER__INIT;
    h.version = 7;
    h.config = &mc;
    h.num_bytes = bytes;
    h.crc32 = crc;
    h.dtype = (char *)dtype;
    size_t n = agora__v1__weights_header__get_packed_size(&h);
    assert_true(n <= cap);
    agora__v1__weights_header__pack(&h, out);
    return n;
}

static void test_weights_check(void **state)
{
    ag_model_config_t c = s_small();
    size_t n = ag_model_config_num_params(&c);
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = (float)i * 0.001f;
    uint32_t crc = ag_crc32(0, w, n * 4);
    uint8_t hdr[256];
    float *params = NULL;
    size_t cap = 0;
    uint64_t version = 0;
    ag_model_config_t got;
    char err[256];

    size_t hl = s_pack_header(hdr, sizeof hdr, &c, n * 4, crc, "f32le");
    assert_int_equal(
        ag_weights_check(hdr, hl, w, n * 4, &version, &got, &params, &cap, err, sizeof err), 0);
    assert_int_equal(version, 7);
    assert_memory_equal(&got, &c, sizeof c);
    assert_memory_equal(params, w, n * 4);

    hl = s_pack_header(hdr, sizeof hdr, &c, n * 4, crc ^ 1, "f32le");
    assert_int_equal(
        ag_weights_check(hdr, hl, w, n * 4, &version, &got, &params, &cap, err, sizeof err),
        -EBADMSG);
    assert_non_null(strstr(err, "CRC"));
    hl = s_pack_header(hdr, sizeof hdr, &c, n * 4 - 4, crc, "f32le");
    assert_int_equal(
        ag_weights_check(hdr, hl, w, n * 4 - 4, &version, &got, &params, &cap, err, sizeof err),
        -EBADMSG);
    hl = s_pack_header(hdr, sizeof hdr, &c, n * 4, crc, "bf16");
    assert_int_equal(
        ag_weights_check(hdr, hl, w, n * 4, &version, &got, &params, &cap, err, sizeof err),
        -EBADMSG);
    ag_model_config_t bad = c;
    bad.n_heads = 3; /* does not divide d_model */
    hl = s_pack_header(hdr, sizeof hdr, &bad, n * 4, crc, "f32le");
    assert_int_equal(
        ag_weights_check(hdr, hl, w, n * 4, &version, &got, &params, &cap, err, sizeof err),
        -EBADMSG);
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(ag_weights_check(junk, sizeof junk, w, n * 4, &version, &got, &params, &cap,
                                      err, sizeof err),
                     -EBADMSG);
    free(params);
    free(w);
}

/* ---- shipper against a scripted learner ---- */

typedef struct rig {
    uv_loop_t loop;
    void *zctx;
    fake_learner_t fl;
    ag_shipper_t *ship;
    ag_policy_source_t *ps;
    size_t want;
    char traj_ep[64], pub_ep[64], control_ep[64];
} rig_t;

static void s_rig_init(rig_t *r)
{
    memset(r, 0, sizeof *r);
    uv_loop_init(&r->loop);
    r->zctx = zmq_ctx_new();
    ag_model_config_t cfg = s_small();
    const char *any = "tcp://127.0.0.1:*";
    assert_int_equal(fake_learner_init(&r->fl, &r->loop, r->zctx, any, any, any, &cfg), 0);
    snprintf(r->traj_ep, sizeof r->traj_ep, "%s", ag_rpc_server_endpoint(r->fl.traj));
    snprintf(r->pub_ep, sizeof r->pub_ep, "%s", ag_zsock_endpoint(r->fl.pub));
    snprintf(r->control_ep, sizeof r->control_ep, "%s", ag_rpc_server_endpoint(r->fl.control));
}

static void s_rig_finish(rig_t *r)
{
    ag_shipper_destroy(&r->ship);
    ag_policy_source_destroy(&r->ps);
    fake_learner_finish(&r->fl);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    zmq_ctx_term(r->zctx);
}

/* A finished two-seat episode: seat 0 trainable, seat 1 a bot. */
static void s_result(ag_runner_result_t *res, ag_seq_t *q, uint64_t number)
{
    ag_seq_init(q);
    ag_seq_begin(q);
    ag_seq_context(q, "obs:", 4);
    ag_seq_generated(q, '7', -0.5f, 0.25f);
    ag_seq_generated(q, AG_TOK_EOT, -0.1f, 0.5f);
    ag_seq_end_turn(q, 3);
    ag_seq_reward(q, 1.0f);
    memset(res, 0, sizeof *res);
    res->number = number;
    res->seed = 100 + number;
    res->game = "debate";
    res->n_seats = 2;
    res->policy[0] = 0;
    res->policy[1] = -1;
    res->label[0] = "current";
    res->label[1] = "bot:honest";
    res->trainable[0] = true;
    res->seq[0] = q;
    res->returns[0] = 1;
    res->returns[1] = -1;
}

static bool s_pending_zero(void *arg)
{
    rig_t *r = arg;
    return ag_shipper_pending(r->ship) == 0;
}

static bool s_got(void *arg)
{
    rig_t *r = arg;
    return r->fl.n_trajs >= r->want;
}

static void test_shipper(void **state)
{
    rig_t r;
    s_rig_init(&r);
    r.fl.ignore_submits = 1; /* the first batch is lost: it must come again */
    ag_shipper_opts_t o = {.endpoint = r.traj_ep,
                           .actor_id = "a0",
                           .run_id = 99,
                           .batch = 4,
                           .resend_ms = 200,
                           .flush_ms = 10};
    r.ship = ag_shipper_create(&r.loop, r.zctx, &o);
    assert_non_null(r.ship);
    ag_seq_t q;
    ag_runner_result_t res;
    for (int i = 0; i < 10; i++) {
        s_result(&res, &q, (uint64_t)i);
        assert_int_equal(ag_shipper_add(r.ship, &res), 0);
        ag_seq_finish(&q);
    }
    /* No trainable seat: nothing queued. */
    s_result(&res, &q, 10);
    res.trainable[0] = false;
    assert_int_equal(ag_shipper_add(r.ship, &res), 1);
    ag_seq_finish(&q);
    /* A trainable seat that never acted (the game ended first): nothing to train on. */
    ag_seq_init(&q);
    ag_seq_begin(&q);
    ag_seq_reward(&q, 1.0f);
    res.trainable[0] = true;
    res.seq[0] = &q;
    assert_int_equal(ag_shipper_add(r.ship, &res), 1);
    ag_seq_finish(&q);
    assert_int_equal(ag_shipper_pending(r.ship), 10);
    assert_true(s_run_until(&r.loop, s_pending_zero, &r, 5000));

    ag_shipper_stats_t st;
    ag_shipper_get_stats(r.ship, &st);
    assert_int_equal(st.accepted, 10);
    assert_true(st.resent >= 4); /* the ignored batch of 4 */
    assert_int_equal(fake_learner_distinct(&r.fl), 10);
    assert_true(r.fl.n_trajs >= 14);
    assert_true(r.fl.submits >= 4); /* batches of at most 4 */

    /* What the learner decoded is what was queued. */
    const Agora__V1__Trajectory *t = r.fl.trajs[0];
    assert_string_equal(t->id->actor_id, "a0");
    assert_int_equal(t->id->run_id, 99);
    assert_string_equal(t->game, "debate");
    assert_int_equal(t->seed, 100 + t->id->sequence);
    assert_int_equal(t->n_seats, 1);
    assert_int_equal(t->n_returns, 2);
    assert_true(t->returns[0] == 1.0f && t->returns[1] == -1.0f);
    const Agora__V1__SeatTrajectory *s = t->seats[0];
    assert_int_equal(s->seat, 0);
    assert_string_equal(s->policy, "current");
    assert_true(s->trainable);
    assert_int_equal(s->n_tokens, 7);
    assert_int_equal(s->tokens[0], AG_TOK_BOS);
    assert_int_equal(s->tokens[5], '7');
    assert_int_equal(s->tokens[6], AG_TOK_EOT);
    assert_int_equal(s->generated.len, 7);
    assert_memory_equal(s->generated.data, "\0\0\0\0\0\1\1", 7);
    assert_true(s->logprobs[5] == -0.5f && s->values[6] == 0.5f);
    assert_int_equal(s->n_turn_end, 1);
    assert_int_equal(s->turn_end[0], 6);
    assert_true(s->turn_rewards[0] == 1.0f);
    assert_int_equal(s->turn_version[0], 3);
    s_rig_finish(&r);
}

static void test_shipper_bounded(void **state)
{
    rig_t r;
    s_rig_init(&r);
    r.fl.ignore_submits = 1000000; /* a learner that never answers */
    ag_shipper_opts_t o = {.endpoint = r.traj_ep,
                           .actor_id = "a1",
                           .run_id = 5,
                           .max_outbox = 3,
                           .resend_ms = 50,
                           .flush_ms = 10};
    r.ship = ag_shipper_create(&r.loop, r.zctx, &o);
    ag_seq_t q;
    ag_runner_result_t res;
    for (int i = 0; i < 5; i++) {
        s_result(&res, &q, (uint64_t)i);
        assert_int_equal(ag_shipper_add(r.ship, &res), 0);
        ag_seq_finish(&q);
    }
    assert_int_equal(ag_shipper_pending(r.ship), 3);
    ag_shipper_stats_t st;
    ag_shipper_get_stats(r.ship, &st);
    assert_int_equal(st.dropped, 2);
    r.want = 6; /* the 3 kept, sent at least twice */
    assert_true(s_run_until(&r.loop, s_got, &r, 5000));
    /* Only the newest three (sequences 2, 3, 4) are ever sent. */
    for (size_t i = 0; i < r.fl.n_trajs; i++)
        assert_true(r.fl.trajs[i]->id->sequence >= 2);
    assert_int_equal(ag_shipper_pending(r.ship), 3);
    s_rig_finish(&r);
}

/* An episode the runner ended on seat 1's refused actions: only seat 1 is
 * shipped (seat 0, trainable and with a turn, has no outcome), truncated. */
static void test_shipper_invalid_ended(void **state)
{
    rig_t r;
    s_rig_init(&r);
    ag_shipper_opts_t o = {.endpoint = r.traj_ep, .actor_id = "a2", .run_id = 7, .flush_ms = 10};
    r.ship = ag_shipper_create(&r.loop, r.zctx, &o);
    assert_non_null(r.ship);
    ag_seq_t q0, q1;
    ag_runner_result_t res;
    s_result(&res, &q0, 0);
    s_result(&res, &q1, 0); /* the same turn, for seat 1 */
    res.seq[0] = &q0;
    res.seq[1] = &q1;
    res.policy[1] = 0;
    res.label[1] = "current";
    res.trainable[1] = true;
    assert_true(ag_shipper_carries(&res, 0) && ag_shipper_carries(&res, 1));
    res.truncated = true;
    res.invalid_ended = true;
    res.invalid_seat = 1;
    assert_false(ag_shipper_carries(&res, 0));
    assert_true(ag_shipper_carries(&res, 1));
    assert_int_equal(ag_shipper_add(r.ship, &res), 0);
    res.trainable[1] = false; /* the refused seat is a league opponent: nothing to ship */
    assert_int_equal(ag_shipper_add(r.ship, &res), 1);
    ag_seq_finish(&q0);
    ag_seq_finish(&q1);
    r.want = 1;
    assert_true(s_run_until(&r.loop, s_got, &r, 5000));
    const Agora__V1__Trajectory *t = r.fl.trajs[0];
    assert_true(t->truncated);
    assert_int_equal(t->n_seats, 1);
    assert_int_equal(t->seats[0]->seat, 1);
    assert_int_equal(t->n_returns, 2);
    s_rig_finish(&r);
}

/* ---- policy source ---- */

static bool s_fresh(void *arg)
{
    rig_t *r = arg;
    return ag_policy_source_fresh(r->ps, NULL);
}

static void test_policy_source(void **state)
{
    rig_t r;
    s_rig_init(&r);
    r.fl.control_after_ms = uv_now(&r.loop) + 300; /* warming up: control silent at first */
    ag_policy_source_opts_t o = {
        .control = r.control_ep, .weights = r.pub_ep, .poll_ms = 60000, .timeout_ms = 100};
    r.ps = ag_policy_source_create(&r.loop, r.zctx, &o);
    assert_non_null(r.ps);
    assert_null(ag_policy_source_config(r.ps));
    assert_true(s_run_until(&r.loop, s_fresh, &r, 5000));
    assert_true(r.fl.get_weights >= 1);
    const ag_model_config_t *c = ag_policy_source_config(r.ps);
    assert_non_null(c);
    ag_model_config_t want = s_small();
    assert_memory_equal(c, &want, sizeof want);
    ag_model_t *m = ag_model_create(c, 1, 1);
    uint64_t v = 0;
    assert_int_equal(ag_policy_source_take(r.ps, m, &v), 0);
    assert_int_equal(v, 1);
    assert_memory_equal(ag_model_params_const(m), ag_model_params_const(r.fl.model),
                        ag_model_num_params(m) * 4);
    assert_int_equal(ag_policy_source_take(r.ps, m, &v), -EAGAIN);

    /* PUB: a corrupt version is refused, a newer valid one staged. The
     * subscriber may miss the first messages: publish until one lands. */
    fake_learner_publish(&r.fl, 2, true);
    uint64_t until = uv_hrtime() + 5000000000ULL;
    uint64_t next = 3;
    while (!ag_policy_source_fresh(r.ps, NULL) && uv_hrtime() < until) {
        fake_learner_publish(&r.fl, next++, false);
        for (int i = 0; i < 20; i++) {
            uv_run(&r.loop, UV_RUN_NOWAIT);
            usleep(1000);
        }
    }
    assert_true(ag_policy_source_take(r.ps, m, &v) == 0);
    assert_true(v >= 3);
    assert_memory_equal(ag_model_params_const(m), ag_model_params_const(r.fl.model),
                        ag_model_num_params(m) * 4);
    ag_policy_source_stats_t st;
    ag_policy_source_get_stats(r.ps, &st);

    /* An older version on PUB after a newer one: a restarted learner, taken. */
    fake_learner_publish(&r.fl, 1, false);
    assert_true(s_run_until(&r.loop, s_fresh, &r, 5000));
    assert_int_equal(ag_policy_source_take(r.ps, m, &v), 0);
    assert_int_equal(v, 1);
    ag_policy_source_get_stats(r.ps, &st);
    assert_int_equal(st.restarts, 1);

    /* Weights of another shape are refused. */
    ag_model_config_t other = want;
    other.d_model = 64;
    ag_model_t *m2 = ag_model_create(&other, 1, 1);
    ag_model_destroy(&r.fl.model);
    r.fl.model = m2;
    fake_learner_publish(&r.fl, 50, false);
    for (int i = 0; i < 200; i++) {
        uv_run(&r.loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_false(ag_policy_source_fresh(r.ps, NULL));
    ag_policy_source_stats_t st2;
    ag_policy_source_get_stats(r.ps, &st2);
    assert_true(st2.refused > st.refused);
    ag_model_destroy(&m);
    s_rig_finish(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sanitize),
        cmocka_unit_test(test_weights_check),
        cmocka_unit_test(test_shipper),
        cmocka_unit_test(test_shipper_bounded),
        cmocka_unit_test(test_shipper_invalid_ended),
        cmocka_unit_test(test_policy_source),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
