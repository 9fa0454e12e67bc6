/*
 * runner.c (integration) - the episode runner, agora-eval and agora-actor
 * against a real agora-env on loopback.
 *
 *   test_runner AGORA_ENV AGORA_EVAL AGORA_ACTOR
 *
 * Policy seats are played by a "scripted" model: a real transformer whose
 * token embedding and policy head are set so that after a space it writes
 * `step<TAB>1<EOT>` with high probability (each token about 0.97), while its
 * random attention and MLP weights still make every log-prob depend on the
 * whole cached context. As the critic of the critique game (the server's
 * `solver` bot on seat 0) it plays several turns per episode, which is what
 * transcripts, re-feeding after a weight change, the context limit and
 * trajectory shipping need to be tested for real. Two variants write `x`
 * (no verdict) instead, which critique with invalid_action=error refuses:
 * one then writes `step<TAB>1` after the refused action's EOT, the other
 * never stops writing `x`.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ckpt.h"
#include "codec.h"
#include "env.pb-c.h"
#include "fake_learner.h"
#include "harness.h"
#include "rpc.h"
#include "runner.h"
#include "scripted_policy.h"
#include "server_proc.h"

static const char *s_env_exe, *s_eval_exe, *s_actor_exe;
static ag_server_proc_t s_env;

#define CRITIQUE_OPTIONS "k=4,rounds=2,invalid_action=penalize"
/* invalid_action=error (the game's default): an invalid verdict is refused. */
#define REFUSING_OPTIONS "k=4,rounds=2"

/* ---- the scripted critic model ---- */

/* After a space, "step\t1" and EOT. */
static ag_model_t *s_model(int ctx)
{
    static const int32_t after[] = {' ', 's', 't', 'e', 'p', '\t', '1'};
    static const int32_t next[] = {'s', 't', 'e', 'p', '\t', '1', AG_TOK_EOT};
    ag_model_t *m = scripted_policy_create(ctx, after, next, sizeof after / sizeof after[0]);
    assert_non_null(m);
    return m;
}

/* After a space "x" and EOT (refused), after that EOT "step\t1" and EOT. */
static ag_model_t *s_model_retrying(int ctx)
{
    static const int32_t after[] = {' ', 'x', AG_TOK_EOT, 's', 't', 'e', 'p', '\t', '1'};
    static const int32_t next[] = {'x', AG_TOK_EOT, 's', 't', 'e', 'p', '\t', '1', AG_TOK_EOT};
    ag_model_t *m = scripted_policy_create(ctx, after, next, sizeof after / sizeof after[0]);
    assert_non_null(m);
    return m;
}

/* "x" and EOT whatever it read: every action is refused. */
static ag_model_t *s_model_refused(int ctx)
{
    static const int32_t after[] = {' ', 'x', AG_TOK_EOT};
    static const int32_t next[] = {'x', AG_TOK_EOT, 'x'};
    ag_model_t *m = scripted_policy_create(ctx, after, next, sizeof after / sizeof after[0]);
    assert_non_null(m);
    return m;
}

/* Saves m as a checkpoint in a fresh temporary file; path gets its name. */
static void s_save_ckpt(ag_model_t *m, char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/agora-test-critic-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_int_equal(ag_ckpt_save(path, m, NULL, 1, err, sizeof err), 0);
}

/* ---- running the runner in-process ---- */

typedef struct got {
    size_t n;
    uint64_t number[512];
    ag_seq_t seq[512]; /* seat 1's transcript, by result order */
    float ret[512];
    int verdicts[512];
    bool invalid[512];
    bool truncated[512];
    int invalid_seat[512]; /* -1: not ended by the runner */
    size_t n_info[512], n_metrics[512];
    double metric_sum;
    size_t metric_n;
} got_t;

static void s_collect(void *arg, const ag_runner_result_t *res)
{
    got_t *g = arg;
    if (g->n >= 512)
        return;
    size_t i = g->n++;
    g->number[i] = res->number;
    g->ret[i] = res->returns[1];
    g->invalid[i] = res->invalid_action;
    g->truncated[i] = res->truncated;
    g->invalid_seat[i] = res->invalid_ended ? res->invalid_seat : -1;
    g->n_info[i] = res->n_info;
    g->n_metrics[i] = res->n_metrics;
    ag_seq_init(&g->seq[i]);
    if (res->seq[1]) {
        const ag_seq_t *q = res->seq[1];
        ag_seq_t *d = &g->seq[i];
        /* A deep copy through the public API: replay tokens, flags and turns. */
        size_t t = 0;
        for (size_t k = 0; k < q->len; k++) {
            if (q->generated[k])
                ag_seq_generated(d, q->tokens[k], q->logprobs[k], q->values[k]);
            else if (q->tokens[k] == AG_TOK_BOS)
                ag_seq_begin(d);
            else {
                char ch = (char)q->tokens[k];
                ag_seq_context(d, &ch, 1);
            }
            if (t < q->n_turns && q->turn_end[t] == k) {
                ag_seq_end_turn(d, q->turn_version[t]);
                d->turn_rewards[t] = q->turn_rewards[t];
                t++;
            }
        }
    }
    for (size_t k = 0; k < res->n_info; k++)
        if (!strcmp(res->info[k]->key, "verdicts")) {
            int n = res->info[k]->value[0] ? 1 : 0;
            for (const char *s = res->info[k]->value; *s; s++)
                n += *s == ',';
            g->verdicts[i] = n;
        }
    for (size_t k = 0; k < res->n_metrics; k++)
        if (!strcmp(res->metrics[k]->name, "judge_accuracy")) {
            g->metric_sum += res->metrics[k]->value;
            g->metric_n++;
        }
}

static void s_got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        ag_seq_finish(&g->seq[i]);
    free(g);
}

/* ---- a busy env server: a proxy that answers some requests ERROR_OVERLOADED ---- */

typedef struct busy_env {
    unsigned every;        /* every N-th Reset or Step is answered ERROR_OVERLOADED (0: none) */
    unsigned swallow_step; /* the N-th Step passed on is applied, its reply never sent (0: none) */
    unsigned want_closes;  /* play on until this many Close requests came through */
    ag_rpc_server_t *srv;
    ag_rpc_client_t *env; /* the real agora-env */
    unsigned seen, steps, refused_reset, refused_step, swallowed, closes;
} busy_env_t;

typedef struct relay {
    busy_env_t *b;
    ag_rpc_peer_t peer;
    uint64_t request_id;
    bool swallow;
} relay_t;

static void s_busy_relay(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                         size_t extra_len)
{
    relay_t *rl = arg;
    if (status == 0 && rl->swallow) {
        rl->b->swallowed++;
    } else if (status == 0) {
        ag_envelope_set_header((ProtobufCMessage *)reply, rl->request_id);
        assert_int_equal(ag_rpc_reply_msg(rl->b->srv, &rl->peer, reply), 0);
    }
    free(rl);
}

static void s_busy_handle(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                          size_t len, void *arg)
{
    busy_env_t *b = arg;
    char why[256];
    ProtobufCMessage *m =
        ag_rpc_decode_request(srv, peer, payload, len, &agora__v1__env_request__descriptor,
                              &agora__v1__env_reply__descriptor, NULL, why, sizeof why);
    assert_non_null(m);
    const Agora__V1__EnvRequest *req = (const Agora__V1__EnvRequest *)m;
    bool reset = req->body_case == AGORA__V1__ENV_REQUEST__BODY_RESET;
    bool step = req->body_case == AGORA__V1__ENV_REQUEST__BODY_STEP;
    b->closes += req->body_case == AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    if ((reset || step) && b->every && ++b->seen % b->every == 0) {
        b->refused_reset += reset;
        b->refused_step += step;
        ag_rpc_reply_error(srv, peer, &agora__v1__env_reply__descriptor, ag_envelope_request_id(m),
                           AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, "busy: retry later");
    } else {
        relay_t *rl = malloc(sizeof *rl);
        assert_non_null(rl);
        *rl = (relay_t){b, *peer, ag_envelope_request_id(m), step && ++b->steps == b->swallow_step};
        assert_int_equal(ag_rpc_call(b->env, m, s_busy_relay, rl), 0);
    }
    ag_codec_free(m);
}

/* Plays cfg's episodes to the end; swap_every > 0 re-sets policy 0 (same weights,
 * version 2) whenever its seats are idle, every swap_every forward passes. With
 * proxy, the runner talks to the env server through that proxy. */
static got_t *s_play_busy(ag_runner_config_t *cfg, ag_model_t *m, int swap_every, busy_env_t *proxy,
                          ag_runner_stats_t *st)
{
    got_t *g = calloc(1, sizeof *g);
    cfg->env = s_env.endpoint;
    cfg->on_episode = s_collect;
    cfg->arg = g;
    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    if (proxy) {
        proxy->srv =
            ag_rpc_server_create(&loop, zctx, "tcp://127.0.0.1:*", NULL, s_busy_handle, proxy);
        /* Once, like the runner: a proxy that resent a Step would apply it twice. */
        ag_rpc_client_opts_t once = {.timeout_ms = 30000, .attempts = 1};
        proxy->env = ag_rpc_client_create(&loop, zctx, s_env.endpoint,
                                          &agora__v1__env_reply__descriptor, &once);
        assert_non_null(proxy->srv);
        assert_non_null(proxy->env);
        cfg->env = ag_rpc_server_endpoint(proxy->srv);
    }
    ag_runner_t *r = ag_runner_create(&loop, zctx, cfg);
    assert_non_null(r);
    if (m)
        assert_int_equal(ag_runner_set_policy(r, 0, m, 1, "current", true), 0);
    assert_int_equal(ag_runner_start(r), 0);
    int steps = 0;
    bool busy = false;
    uint64_t until = uv_hrtime() + 120000000000ULL;
    while ((!ag_runner_done(r) || (proxy && proxy->closes < proxy->want_closes)) &&
           uv_hrtime() < until) {
        uv_run(&loop, busy ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        int n = ag_runner_sample(r);
        assert_true(n >= 0);
        busy = n > 0;
        if (swap_every && n > 0 && ++steps % swap_every == 0)
            ag_runner_hold(r, 0, true);
        if (swap_every && ag_runner_acting(r, 0) == 0) {
            assert_int_equal(ag_runner_set_policy(r, 0, m, 2, "current", true), 0);
            ag_runner_hold(r, 0, false);
        } else if (swap_every) {
            assert_int_equal(ag_runner_set_policy(r, 0, m, 2, "current", true), -EBUSY);
        }
    }
    assert_true(ag_runner_done(r));
    ag_runner_get_stats(r, st);
    ag_runner_destroy(&r);
    if (proxy) {
        ag_rpc_client_destroy(&proxy->env);
        ag_rpc_server_destroy(&proxy->srv);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    zmq_ctx_term(zctx);
    return g;
}

static got_t *s_play(ag_runner_config_t *cfg, ag_model_t *m, int swap_every, ag_runner_stats_t *st)
{
    return s_play_busy(cfg, m, swap_every, NULL, st);
}

static ag_runner_config_t s_critique_cfg(int games)
{
    ag_runner_config_t c = {
        .game = "critique",
        .options = CRITIQUE_OPTIONS,
        .n_seats = 2,
        .seats = {{.policy = -1, .bot = "solver"}, {.policy = 0}},
        .n_policies = 1,
        .slots = 8,
        .max_action_tokens = 12,
        .sample = {1.0f, 1.0f},
        .seed = 5,
        .max_episodes = (uint64_t)games,
    };
    return c;
}

static void test_bots(void **state)
{
    ag_runner_config_t c = {
        .game = "debate",
        .options = "k=8,invalid_action=penalize",
        .n_seats = 2,
        .seats = {{.policy = -1, .bot = "random-challenge"},
                  {.policy = -1, .bot = "random-challenge"}},
        .slots = 16,
        .max_action_tokens = 48,
        .seed = 1000,
        .max_episodes = 400,
    };
    ag_runner_stats_t st;
    got_t *g = s_play(&c, NULL, 0, &st);
    assert_int_equal(g->n, 400);
    assert_int_equal(g->metric_n, 400);
    double acc = g->metric_sum / 400.0;
    /* 0.5625 expected; 3 standard errors of 400 games either side. */
    assert_true(acc > 0.49 && acc < 0.64);
    assert_int_equal(st.tokens_sampled, 0);
    s_got_free(g);

    c.seats[0] = (ag_runner_seat_t){.policy = -1, .bot = "honest"};
    c.seats[1] = (ag_runner_seat_t){.policy = -1, .bot = "honest"};
    c.max_episodes = 100;
    g = s_play(&c, NULL, 0, &st);
    assert_int_equal(g->n, 100);
    assert_true(g->metric_sum == 100.0);
    s_got_free(g);
}

static void test_transcripts(void **state)
{
    ag_model_t *m = s_model(256);
    ag_runner_config_t c = s_critique_cfg(64);
    ag_runner_stats_t st;
    got_t *g = s_play(&c, m, 0, &st);
    assert_int_equal(g->n, 64);
    assert_int_equal(st.dropped_ctx, 0);
    assert_int_equal(st.env_errors, 0);
    int multi = 0;
    for (size_t i = 0; i < g->n; i++) {
        const ag_seq_t *q = &g->seq[i];
        assert_true(q->len > 0 && q->n_turns >= 1);
        assert_int_equal(q->tokens[0], AG_TOK_BOS);
        /* Every turn is a verdict the env recorded, but an invalid last one. */
        assert_int_equal(g->verdicts[i] + (g->invalid[i] ? 1 : 0), (int)q->n_turns);
        multi += q->n_turns >= 2;
        float sum = 0;
        size_t start = 0;
        for (size_t t = 0; t < q->n_turns; t++) {
            size_t end = q->turn_end[t];
            assert_true(end < q->len);
            assert_true(q->generated[end]);
            assert_int_equal(q->turn_version[t], 1);
            /* The turn: context ending in the prompt's space, then sampled tokens. */
            size_t k = start;
            while (!q->generated[k])
                k++;
            assert_int_equal(q->tokens[k - 1], ' ');
            for (size_t j = k; j <= end; j++) {
                assert_true(q->generated[j]);
                assert_true(q->logprobs[j] <= 0 && isfinite(q->logprobs[j]));
                assert_true(isfinite(q->values[j]));
            }
            /* Ended by EOT, or cut at max_action_tokens. */
            assert_true(q->tokens[end] == AG_TOK_EOT || end - k + 1 == 12);
            sum += q->turn_rewards[t];
            start = end + 1;
        }
        assert_true(fabsf(sum - g->ret[i]) < 1e-5f);
    }
    /* With p(step\t1) about 0.8 per verdict most critics play all three verdicts. */
    assert_true(multi > 16);
    assert_true(st.tokens_sampled > 64 * 7);
    s_got_free(g);
    ag_model_destroy(&m);
}

/* Finds game a->number[i] in b and checks seat 1 played it token for token
 * alike; returns its index in b. */
static size_t s_same_game(const got_t *a, size_t i, const got_t *b)
{
    size_t j = 0;
    while (j < b->n && b->number[j] != a->number[i])
        j++;
    assert_true(j < b->n);
    const ag_seq_t *x = &a->seq[i], *y = &b->seq[j];
    assert_int_equal(x->len, y->len);
    assert_memory_equal(x->tokens, y->tokens, x->len * sizeof *x->tokens);
    assert_memory_equal(x->generated, y->generated, x->len);
    assert_int_equal(x->n_turns, y->n_turns);
    return j;
}

/* Weights re-set between generations: caches are fed again, and the games
 * come out exactly as without the swaps (same tokens, same log-probs). */
static void test_refeed_exact(void **state)
{
    ag_model_t *m = s_model(256);
    ag_runner_config_t c = s_critique_cfg(48);
    ag_runner_stats_t st0, st1;
    got_t *a = s_play(&c, m, 0, &st0);
    got_t *b = s_play(&c, m, 3, &st1);
    assert_int_equal(a->n, 48);
    assert_int_equal(b->n, 48);
    assert_true(st1.refed > 0);
    assert_int_equal(st0.refed, 0);
    int v2 = 0;
    for (size_t i = 0; i < a->n; i++) {
        size_t j = s_same_game(a, i, b);
        const ag_seq_t *x = &a->seq[i], *y = &b->seq[j];
        for (size_t k = 0; k < x->len; k++) {
            assert_true(fabsf(x->logprobs[k] - y->logprobs[k]) < 1e-4f);
            assert_true(fabsf(x->values[k] - y->values[k]) < 1e-4f);
        }
        for (size_t t = 0; t < y->n_turns; t++) {
            if (t > 0)
                assert_true(y->turn_version[t] >= y->turn_version[t - 1]);
            v2 += y->turn_version[t] == 2;
        }
    }
    assert_true(v2 > 0);
    s_got_free(a);
    s_got_free(b);
    ag_model_destroy(&m);
}

/* Plays c's games straight to the env server and again through proxy, checks
 * that they came out the same (tokens, returns, verdicts) and leaves the
 * proxied run's stats in st. */
static void s_play_as_direct(ag_runner_config_t *c, busy_env_t *proxy, ag_runner_stats_t *st)
{
    ag_model_t *m = s_model(256);
    ag_runner_stats_t st0;
    got_t *a = s_play(c, m, 0, &st0);
    got_t *b = s_play_busy(c, m, 0, proxy, st);
    assert_int_equal(a->n, c->max_episodes);
    assert_int_equal(b->n, c->max_episodes);
    for (size_t i = 0; i < a->n; i++) {
        size_t j = s_same_game(a, i, b);
        assert_true(a->ret[i] == b->ret[j]);
        assert_int_equal(a->verdicts[i], b->verdicts[j]);
    }
    s_got_free(a);
    s_got_free(b);
    ag_model_destroy(&m);
}

/* Resets and Steps answered ERROR_OVERLOADED are resent after a pause, not
 * failed: every game is played once, and exactly as without the refusals. */
static void test_overloaded_resent(void **state)
{
    ag_runner_config_t c = s_critique_cfg(32);
    ag_runner_stats_t st;
    busy_env_t busy = {.every = 3};
    s_play_as_direct(&c, &busy, &st);
    assert_true(busy.refused_reset > 0 && busy.refused_step > 0);
    assert_int_equal(st.overloaded, busy.refused_reset + busy.refused_step);
    assert_int_equal(st.env_errors, 0);
    assert_int_equal(st.started, 32);
}

/* A Step whose reply never comes is not sent again (the env applied it, and
 * the critic acts next, so a second copy would be its next verdict): the
 * episode fails at the deadline and is replayed from its Reset, and every
 * game comes out as without the lost reply. */
static void test_lost_step_reply(void **state)
{
    ag_runner_config_t c = s_critique_cfg(32);
    c.retry_failed = true;
    c.env_timeout_ms = 1500;
    ag_runner_stats_t st;
    busy_env_t lossy = {.swallow_step = 5};
    s_play_as_direct(&c, &lossy, &st);
    assert_int_equal(lossy.swallowed, 1);
    assert_int_equal(st.env_errors, 1);
    assert_int_equal(st.started, 33);
}

static void test_context_limit(void **state)
{
    ag_model_t *m = s_model(80); /* the critic's second observation does not fit */
    ag_runner_config_t c = s_critique_cfg(32);
    ag_runner_stats_t st;
    got_t *g = s_play(&c, m, 0, &st);
    assert_true(st.dropped_ctx > 0);
    assert_int_equal(g->n + st.dropped_ctx, 32);
    for (size_t i = 0; i < g->n; i++)
        assert_true(g->seq[i].len <= 80);
    s_got_free(g);
    ag_model_destroy(&m);
}

/* Every episode overflows at its first observation: none is emitted, and the
 * streak of drops since the last emitted one counts them all. */
static void test_context_none_fits(void **state)
{
    ag_model_t *m = s_model(32);
    ag_runner_config_t c = s_critique_cfg(16);
    ag_runner_stats_t st;
    got_t *g = s_play(&c, m, 0, &st);
    assert_int_equal(g->n, 0);
    assert_int_equal(st.dropped_ctx, 16);
    assert_int_equal(st.ctx_streak, 16);
    assert_int_equal(st.tokens_sampled, 0);
    s_got_free(g);
    ag_model_destroy(&m);
}

/* Checks the turns of seat 1 in game i of an invalid-action run: a turn
 * credited exactly -penalty is a refused one (the critic's own rewards are
 * whole numbers), and the seat acted again at once, reading it. Returns the
 * refused turns. */
static int s_refused_turns(const got_t *g, size_t i, float penalty)
{
    const ag_seq_t *q = &g->seq[i];
    int refused = 0;
    float sum = 0;
    for (size_t t = 0; t < q->n_turns; t++) {
        float r = q->turn_rewards[t];
        sum += r;
        if (r == -penalty) {
            refused++;
            if (t + 1 < q->n_turns)
                assert_true(q->generated[q->turn_end[t] + 1]);
        } else {
            assert_true(r == rintf(r));
        }
    }
    /* The penalties are on top of the game's rewards; the returns stay the game's. */
    assert_true(fabsf(sum - (g->ret[i] - penalty * (float)refused)) < 1e-5f);
    return refused;
}

/* invalid_action=error: a refused verdict is a penalised turn and the critic
 * samples again, reading it; nearly every verdict is refused once, then
 * accepted, and the env recorded exactly the accepted ones. */
static void test_invalid_resampled(void **state)
{
    ag_model_t *m = s_model_retrying(512);
    ag_runner_config_t c = s_critique_cfg(48);
    c.options = REFUSING_OPTIONS;
    c.invalid_retries = 3;
    c.invalid_penalty = 0.25f;
    ag_runner_stats_t st;
    got_t *g = s_play(&c, m, 0, &st);
    assert_int_equal(g->n, 48);
    assert_int_equal(st.env_errors, 0);
    assert_int_equal(st.dropped_ctx, 0);
    assert_int_equal(st.invalid_actions, 0);
    uint64_t refused = 0, ended = 0, complete_turns = 0;
    for (size_t i = 0; i < g->n; i++) {
        const ag_seq_t *q = &g->seq[i];
        int n = s_refused_turns(g, i, 0.25f);
        refused += (uint64_t)n;
        if (g->invalid_seat[i] >= 0) {
            ended++;
            assert_int_equal(g->invalid_seat[i], 1);
            assert_true(g->truncated[i]);
            assert_int_equal(g->n_info[i], 0);
        } else {
            assert_false(g->truncated[i]);
            assert_int_equal((int)q->n_turns - n, g->verdicts[i]);
            complete_turns += (uint64_t)g->verdicts[i];
        }
    }
    assert_int_equal(refused, st.invalid_resampled + st.invalid_ended);
    assert_int_equal(ended, st.invalid_ended);
    /* p("x", EOT) is about 0.94 per verdict: most were refused first. A
     * resample is "step\t1" with p about 0.8; one that goes astray stays
     * astray (the script knows no random byte), so about a game in five ends. */
    assert_true(st.invalid_resampled > complete_turns / 2);
    assert_true(ended > 0 && ended < g->n / 2);
    s_got_free(g);
    ag_model_destroy(&m);
}

/* A critic whose every action is refused: after invalid_retries resamples
 * the episode is closed on the env server and emitted truncated, with
 * invalid_retries + 1 refused turns of -penalty each and no outcome. */
static void test_invalid_ended(void **state)
{
    ag_model_t *m = s_model_refused(512);
    for (int retries = 0; retries <= 2; retries += 2) {
        ag_runner_config_t c = s_critique_cfg(16);
        c.options = REFUSING_OPTIONS;
        c.invalid_retries = retries;
        c.invalid_penalty = 0.5f;
        ag_runner_stats_t st;
        busy_env_t proxy = {.want_closes = 16};
        got_t *g = s_play_busy(&c, m, 0, &proxy, &st);
        assert_int_equal(g->n, 16);
        assert_int_equal(st.invalid_ended, 16);
        assert_int_equal(st.invalid_resampled, 16 * retries);
        assert_int_equal(st.env_errors, 0);
        assert_int_equal(proxy.closes, 16);
        assert_int_equal(g->metric_n, 0);
        for (size_t i = 0; i < g->n; i++) {
            assert_int_equal(g->invalid_seat[i], 1);
            assert_true(g->truncated[i]);
            assert_int_equal(g->n_info[i], 0);
            assert_int_equal(g->n_metrics[i], 0);
            assert_true(g->ret[i] == 0.0f);
            assert_int_equal(g->seq[i].n_turns, retries + 1);
            assert_int_equal(s_refused_turns(g, i, 0.5f), retries + 1);
        }
        s_got_free(g);
    }
    ag_model_destroy(&m);

    /* A context of 64 tokens holds BOS, the 60-byte observation and about one
     * refused "x" EOT: the refusal that fills it ends the episode, retries left
     * or not. */
    m = s_model_refused(64);
    ag_runner_config_t c = s_critique_cfg(16);
    c.options = REFUSING_OPTIONS;
    c.invalid_retries = 3;
    ag_runner_stats_t st;
    got_t *g = s_play(&c, m, 0, &st);
    assert_int_equal(g->n, 16);
    assert_int_equal(st.invalid_ended, 16);
    assert_int_equal(st.dropped_ctx, 0);
    uint64_t resampled = 0;
    for (size_t i = 0; i < g->n; i++) {
        assert_int_equal(g->invalid_seat[i], 1);
        assert_int_equal(g->seq[i].len, 64);
        assert_true(g->seq[i].n_turns >= 1 && g->seq[i].n_turns <= 3);
        resampled += g->seq[i].n_turns - 1;
    }
    assert_int_equal(st.invalid_resampled, resampled);
    s_got_free(g);
    ag_model_destroy(&m);
}

/* ---- agora-eval ---- */

/* The number of "key": in agora-eval's JSON line; fails if absent. */
static double s_json_num(const char *json, const char *key)
{
    double v = 0;
    if (harness_json_num(json, key, &v) < 0)
        fail_msg("no \"%s\" in %s", key, json);
    return v;
}

static void test_eval(void **state)
{
    char out[8192], out2[8192];
    char *bots[] = {(char *)s_eval_exe,
                    "--env",
                    s_env.endpoint,
                    "--game",
                    "debate",
                    "--option",
                    "k=8",
                    "--seat0",
                    "bot:random-challenge",
                    "--seat1",
                    "bot:random-challenge",
                    "--games",
                    "400",
                    NULL};
    assert_int_equal(harness_run_capture(bots, out, sizeof out), 0);
    assert_int_equal((int)s_json_num(out, "games"), 400);
    double acc = s_json_num(out, "judge_accuracy");
    assert_true(acc > 0.49 && acc < 0.64);
    assert_true(fabs(s_json_num(out, "win_rate_seat0") + s_json_num(out, "win_rate_seat1") - 1) <
                1e-9);

    char *honest[] = {(char *)s_eval_exe, "--env",   s_env.endpoint, "--game",  "debate", "--seat0",
                      "bot:honest",       "--seat1", "bot:honest",   "--games", "50",     NULL};
    assert_int_equal(harness_run_capture(honest, out, sizeof out), 0);
    assert_true(s_json_num(out, "judge_accuracy") == 1.0);

    /* No game named: the first one the env server lists (agora-env: debate). */
    char *first[] = {(char *)s_eval_exe, "--env",    s_env.endpoint, "--seat0", "bot:honest",
                     "--seat1",          "bot:liar", "--games",      "20",      NULL};
    assert_int_equal(harness_run_capture(first, out, sizeof out), 0);
    assert_non_null(strstr(out, "\"game\":\"debate\""));
    assert_int_equal((int)s_json_num(out, "games"), 20);

    /* A checkpoint seat: the scripted critic; the same seed gives the same result. */
    char path[64];
    ag_model_t *m = s_model(256);
    s_save_ckpt(m, path, sizeof path);
    ag_model_destroy(&m);
    char *crit[] = {(char *)s_eval_exe,
                    "--env",
                    s_env.endpoint,
                    "--game",
                    "critique",
                    "--options",
                    CRITIQUE_OPTIONS,
                    "--seat0",
                    "bot:solver",
                    "--seat1",
                    path,
                    "--games",
                    "60",
                    "--slots",
                    "7",
                    "--seed",
                    "123",
                    NULL};
    assert_int_equal(harness_run_capture(crit, out, sizeof out), 0);
    assert_int_equal(harness_run_capture(crit, out2, sizeof out2), 0);
    unlink(path);
    assert_int_equal((int)s_json_num(out, "games"), 60);
    assert_true(s_json_num(out, "tokens_sampled") > 60 * 7);
    assert_true(s_json_num(out, "final_accuracy") >= 0);
    assert_true(s_json_num(out, "critic_recall") >= 0);
    /* Everything up to the timing figures is identical. */
    const char *t1 = strstr(out, "\"tokens_per_s\""), *t2 = strstr(out2, "\"tokens_per_s\"");
    assert_non_null(t1);
    assert_int_equal(t1 - out, t2 - out2);
    assert_memory_equal(out, out2, (size_t)(t1 - out));
}

/* Runs agora-eval with the critic checkpoint m on seat 1 of critique (refusing
 * invalid verdicts) for 12 games, extra arguments appended; returns its exit status. */
static int s_eval_critic(ag_model_t *m, char *out, size_t cap, const char *extra_key,
                         const char *extra_value)
{
    char path[64];
    s_save_ckpt(m, path, sizeof path);
    char *argv[] = {(char *)s_eval_exe,
                    "--env",
                    s_env.endpoint,
                    "--game",
                    "critique",
                    "--options",
                    REFUSING_OPTIONS,
                    "--seat0",
                    "bot:solver",
                    "--seat1",
                    path,
                    "--games",
                    "12",
                    (char *)extra_key,
                    (char *)extra_value,
                    NULL};
    int rc = harness_run_capture(argv, out, cap);
    unlink(path);
    return rc;
}

/* agora-eval completes no game, so it exits 3 with what happened instead of
 * "games": 0 and success: every transcript overflows the checkpoint's
 * context, or every game ends on refused actions. */
static void test_eval_no_game(void **state)
{
    char out[8192];
    ag_model_t *m = s_model(32);
    assert_int_equal(s_eval_critic(m, out, sizeof out, NULL, NULL), 3);
    ag_model_destroy(&m);
    assert_int_equal((int)s_json_num(out, "games"), 0);
    assert_int_equal((int)s_json_num(out, "dropped_context"), 12);

    m = s_model_refused(512);
    assert_int_equal(s_eval_critic(m, out, sizeof out, "--invalid-retries", "1"), 3);
    ag_model_destroy(&m);
    assert_int_equal((int)s_json_num(out, "games"), 0);
    assert_int_equal((int)s_json_num(out, "invalid_ended"), 12);
    assert_int_equal((int)s_json_num(out, "invalid_resampled"), 12);
}

/* agora-eval resamples a refused verdict like the actor: the games complete. */
static void test_eval_resampled(void **state)
{
    char out[8192];
    ag_model_t *m = s_model_retrying(512);
    assert_int_equal(s_eval_critic(m, out, sizeof out, NULL, NULL), 0);
    ag_model_destroy(&m);
    double games = s_json_num(out, "games"), ended = s_json_num(out, "invalid_ended");
    assert_true(games >= 6 && games + ended == 12);
    assert_true(s_json_num(out, "invalid_resampled") >= games);
}

/* ---- agora-actor against a scripted learner ---- */

/* A new version while the first episodes run (PUB, else a status poll finds it). */
static void s_publish_once(fake_learner_t *fl, void *arg)
{
    bool *published = arg;
    if (!*published && fl->get_weights >= 1) {
        fake_learner_publish(fl, 2, false);
        *published = true;
    }
}

/* A scripted learner serving a model's weights, on a loop of its own, and a
 * scratch directory with the path of an actor's log in it. */
typedef struct actor_rig {
    uv_loop_t loop;
    void *zctx;
    fake_learner_t fl;
    char dir[256], log[300];
} actor_rig_t;

/* Serves m (destroyed here) as version 1. */
static void s_actor_rig_init(actor_rig_t *r, ag_model_t *m)
{
    uv_loop_init(&r->loop);
    r->zctx = zmq_ctx_new();
    assert_int_equal(fake_learner_init_policy(&r->fl, &r->loop, r->zctx, m), 0);
    ag_model_destroy(&m);
    assert_int_equal(harness_mkdtemp(r->dir, sizeof r->dir, "agora-test-actor"), 0);
    snprintf(r->log, sizeof r->log, "%s/actor.log", r->dir);
}

static void s_actor_rig_finish(actor_rig_t *r)
{
    harness_rmtree(r->dir);
    fake_learner_finish(&r->fl);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    zmq_ctx_term(r->zctx);
}

/*
 * Runs agora-actor against fl for the critique critic (seat 1, "self", 8
 * slots, actions of at most 12 tokens), game options options, with the
 * extra arguments (NULL-terminated), calling turn(fl, arg) as
 * fake_learner_run does; its stderr goes to the file log (NULL: the test's).
 * Returns its exit status.
 */
static int s_run_actor(fake_learner_t *fl, const char *options, const char *log,
                       const char *const *extra, void (*turn)(fake_learner_t *fl, void *arg),
                       void *arg)
{
    char *argv[64] = {"/bin/sh",
                      "-c",
                      log ? "log=$1; shift; exec \"$@\" 2>\"$log\"" : "shift; exec \"$@\"",
                      "sh",
                      (char *)(log ? log : ""),
                      (char *)s_actor_exe,
                      "--actor.env",
                      s_env.endpoint,
                      "--learner-trajectories",
                      fl->traj_ep,
                      "--learner-weights",
                      fl->pub_ep,
                      "--learner-control",
                      fl->control_ep,
                      "--game",
                      "critique",
                      "--options",
                      (char *)options,
                      "--seat0",
                      "bot:solver",
                      "--seat1",
                      "self",
                      "--slots",
                      "8",
                      "--max-action-tokens",
                      "12",
                      "--poll-ms",
                      "200",
                      "--id",
                      "actor-test"};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; extra[i]; i++) {
        assert_true(n + 1 < sizeof argv / sizeof argv[0]);
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;
    return fake_learner_run(fl, argv, 120000, turn, arg);
}

/* The last line of the text file path (a fresh string), or NULL. */
static char *s_last_line(const char *path)
{
    size_t len;
    char *text = (char *)harness_read_file(path, &len);
    if (!text)
        return NULL;
    while (len && text[len - 1] == '\n')
        text[--len] = '\0';
    char *nl = strrchr(text, '\n');
    char *line = strdup(nl ? nl + 1 : text);
    free(text);
    return line;
}

static void test_actor(void **state)
{
    actor_rig_t r;
    s_actor_rig_init(&r, s_model(256));
    r.fl.ignore_submits = 2;                        /* two lost batches: resent */
    r.fl.control_after_ms = uv_now(&r.loop) + 1500; /* a learner still warming up */
    const char *extra[] = {"--max-episodes", "300", "--resend-ms", "300", NULL};
    bool published = false;
    assert_int_equal(s_run_actor(&r.fl, CRITIQUE_OPTIONS, NULL, extra, s_publish_once, &published),
                     0);
    const fake_learner_t *fl = &r.fl;
    assert_true(fl->get_weights >= 1);
    assert_int_equal(fake_learner_distinct(fl), 300);
    assert_true(fl->n_trajs > 300); /* the ignored batches came again */
    int v2 = 0;
    for (size_t i = 0; i < fl->n_trajs; i++) {
        const Agora__V1__Trajectory *t = fl->trajs[i];
        assert_string_equal(t->id->actor_id, "actor-test");
        assert_string_equal(t->game, "critique");
        assert_true(t->seed < 1000000000ULL);
        assert_int_equal(t->n_returns, 2);
        assert_int_equal(t->n_seats, 1);
        const Agora__V1__SeatTrajectory *s = t->seats[0];
        assert_int_equal(s->seat, 1);
        assert_true(s->trainable);
        assert_string_equal(s->policy, "current");
        assert_int_equal(s->tokens[0], AG_TOK_BOS);
        assert_int_equal(s->generated.len, s->n_tokens);
        assert_int_equal(s->n_logprobs, s->n_tokens);
        assert_true(s->n_turn_end >= 1);
        assert_int_equal(s->n_turn_rewards, s->n_turn_end);
        assert_int_equal(s->n_turn_version, s->n_turn_end);
        float sum = 0;
        for (size_t k = 0; k < s->n_turn_end; k++) {
            assert_true(s->turn_end[k] < s->n_tokens);
            assert_true(s->turn_version[k] == 1 || s->turn_version[k] == 2);
            if (k)
                assert_true(s->turn_version[k] >= s->turn_version[k - 1]);
            v2 += s->turn_version[k] == 2;
            sum += s->turn_rewards[k];
        }
        assert_true(fabsf(sum - t->returns[1]) < 1e-5f);
    }
    assert_true(v2 > 0); /* the new weights were picked up */
    s_actor_rig_finish(&r);
}

/*
 * agora-actor with a critic whose every verdict is refused: each episode
 * ends after invalid_retries resamples and is shipped truncated, the
 * critic's refused turns penalised, and the actor's metrics count them.
 */
static void test_actor_invalid(void **state)
{
    actor_rig_t r;
    s_actor_rig_init(&r, s_model_refused(512));
    char metrics[300];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", r.dir);
    const char *extra[] = {"--invalid-retries",
                           "2",
                           "--invalid-penalty",
                           "0.5",
                           "--max-episodes",
                           "40",
                           "--metrics",
                           metrics,
                           "--resend-ms",
                           "300",
                           NULL};
    assert_int_equal(s_run_actor(&r.fl, REFUSING_OPTIONS, r.log, extra, NULL, NULL), 0);
    assert_int_equal(fake_learner_distinct(&r.fl), 40);
    for (size_t i = 0; i < r.fl.n_trajs; i++) {
        const Agora__V1__Trajectory *t = r.fl.trajs[i];
        assert_true(t->truncated);
        assert_int_equal(t->n_info, 0);
        assert_int_equal(t->n_metrics, 0);
        assert_int_equal(t->n_seats, 1);
        const Agora__V1__SeatTrajectory *s = t->seats[0];
        assert_int_equal(s->seat, 1);
        assert_int_equal(s->n_turn_end, 3);
        for (size_t k = 0; k < s->n_turn_end; k++) {
            assert_true(s->turn_rewards[k] == -0.5f);
            assert_true(s->generated.data[s->turn_end[k]]);
            if (k + 1 < s->n_turn_end) /* the next attempt follows at once */
                assert_true(s->generated.data[s->turn_end[k] + 1]);
        }
        assert_true(t->returns[1] == 0.0f);
    }
    char *last = s_last_line(metrics);
    assert_non_null(last);
    assert_int_equal((int)s_json_num(last, "episodes"), 40);
    assert_int_equal((int)s_json_num(last, "invalid_ended"), 40);
    assert_int_equal((int)s_json_num(last, "invalid_resampled"), 80);
    assert_int_equal((int)s_json_num(last, "invalid_actions"), 0);
    free(last);
    s_actor_rig_finish(&r);
}

/*
 * agora-actor whose model's context cannot hold a single critic observation:
 * the first overflow is an error naming the game, the episode, the seat and
 * the sizes, and after actor.overflow_limit episodes in a row the actor
 * exits with status 3, the reason as its last log line; nothing is shipped.
 * So does one whose env server does not host its game.
 */
static void test_actor_overflow(void **state)
{
    actor_rig_t r;
    s_actor_rig_init(&r, s_model(32));
    const char *extra[] = {"--overflow-limit", "20", NULL};
    assert_int_equal(s_run_actor(&r.fl, CRITIQUE_OPTIONS, r.log, extra, NULL, NULL), 3);
    assert_int_equal(r.fl.n_trajs, 0);
    size_t len;
    char *text = (char *)harness_read_file(r.log, &len);
    assert_non_null(text);
    const char *first = strstr(text, "game critique, episode ");
    assert_non_null(first);
    assert_non_null(strstr(first, "seat 1: the transcript needs "));
    assert_non_null(strstr(first, "the model's context (model.ctx) is 32"));
    assert_null(strstr(first + 1, "game critique, episode ")); /* once, not per episode */
    free(text);
    char *last = s_last_line(r.log);
    assert_non_null(last);
    assert_non_null(strstr(last, "overflowed the model's context (ctx 32"));
    assert_non_null(strstr(last, "exit status 3"));
    free(last);

    /* A game the env server does not host is as fatal. */
    const char *no_game[] = {"--game", "no-such-game", NULL};
    assert_int_equal(s_run_actor(&r.fl, "", r.log, no_game, NULL, NULL), 3);
    last = s_last_line(r.log);
    assert_non_null(last);
    assert_non_null(strstr(last, "has no game \"no-such-game\" (it lists: debate, critique)"));
    assert_non_null(strstr(last, "(exit status 3"));
    free(last);
    s_actor_rig_finish(&r);
}

static int s_setup(void **state)
{
    return ag_server_proc_start(&s_env, s_env_exe, NULL, 10000) == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    return ag_server_proc_stop(&s_env, 10000) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s AGORA_ENV AGORA_EVAL AGORA_ACTOR\n", argv[0]);
        return 2;
    }
    s_env_exe = argv[1];
    s_eval_exe = argv[2];
    s_actor_exe = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bots),
        cmocka_unit_test(test_transcripts),
        cmocka_unit_test(test_refeed_exact),
        cmocka_unit_test(test_overloaded_resent),
        cmocka_unit_test(test_lost_step_reply),
        cmocka_unit_test(test_context_limit),
        cmocka_unit_test(test_context_none_fits),
        cmocka_unit_test(test_invalid_resampled),
        cmocka_unit_test(test_invalid_ended),
        cmocka_unit_test(test_eval),
        cmocka_unit_test(test_eval_no_game),
        cmocka_unit_test(test_eval_resampled),
        cmocka_unit_test(test_actor),
        cmocka_unit_test(test_actor_invalid),
        cmocka_unit_test(test_actor_overflow),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
