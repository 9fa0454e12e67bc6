/*
 * reward_judge - debates judged by a real reward model, over the real
 * protocols: agora-env (argv[1]) started with --reward, pointing at a real
 * agora-reward (argv[2]) on loopback.
 *
 * Debates reset with judge=reward:default are played to the end over the
 * wire; the final Step must come back with reason=reward, both judge scores,
 * the higher score winning, judge_accuracy agreeing with winner and
 * true_seat, and the scores equal to what the reward server itself gives
 * the two transcripts the client saw and wrote (so the env server judged
 * exactly the text that crossed the wire). Then what must be refused (no
 * --reward, demos, all-bot games), an unknown model (a clear
 * ERROR_UNKNOWN_MODEL), and the reward server stopped: the final Step is
 * held for the default 2 s deadline while other requests are answered at
 * once and a second Step on the episode gets NOT_YOUR_TURN, then it gets
 * ERROR_OVERLOADED, and after the reward server is restarted the same Step
 * succeeds with the outcome the episode would have had anyway. Last, TTL
 * eviction spares an episode whose final Step is held, and a server stopped
 * while one is held exits cleanly.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "debate_player.h"
#include "env_client.h"
#include "harness.h"
#include "reward_peer.h"
#include "server_proc.h"

#define CLIENT_TIMEOUT_MS 15000
#define REWARD_START_MS 60000
#define TRANSCRIPT_CAP 4096
#define MODEL "default"

static const char *env_exe, *reward_exe;
static char workdir[256];

/* ---- processes ---- */

/* Starts agora-reward on endpoint (or on a fresh port if endpoint is "")
 * and waits until it answers Stats. */
static int reward_start(ag_server_proc_t *p, const char *endpoint)
{
    char out[300];
    snprintf(out, sizeof out, "%s/reward", workdir);
    const char *const extra[] = {"--reward.out", out, NULL};
    return reward_proc_start_at(p, reward_exe, endpoint, extra, REWARD_START_MS);
}

static void env_start(ag_server_proc_t *p, const char *const *extra)
{
    assert_int_equal(ag_server_proc_start(p, env_exe, extra, 20000), 0);
}

static void stop_clean(ag_server_proc_t *p)
{
    assert_true(ag_server_proc_alive(p));
    assert_int_equal(ag_server_proc_stop(p, 15000), 0);
}

/* ---- debates over the wire ---- */

typedef struct wire_game {
    uint64_t id;
    uint32_t to_act;
    int turns;
    char obs[1024];
    char tr[2][TRANSCRIPT_CAP]; /* each seat's transcript as the client saw and wrote it */
    size_t tr_len[2];
} wire_game_t;

static void tr_add(wire_game_t *g, uint32_t seat, const char *text)
{
    size_t n = strlen(text);
    assert_true(seat < 2 && g->tr_len[seat] + n < TRANSCRIPT_CAP);
    memcpy(g->tr[seat] + g->tr_len[seat], text, n + 1);
    g->tr_len[seat] += n;
}

static const char *info_of(const Agora__V1__StepReply *st, const char *key)
{
    for (size_t i = 0; i < st->n_info; i++)
        if (strcmp(st->info[i]->key, key) == 0)
            return st->info[i]->value;
    fail_msg("no info %s", key);
    return NULL;
}

static bool has_metric(const Agora__V1__StepReply *st, const char *name, double *value)
{
    for (size_t i = 0; i < st->n_metrics; i++) {
        if (strcmp(st->metrics[i]->name, name) == 0) {
            *value = st->metrics[i]->value;
            return true;
        }
    }
    return false;
}

static double metric_of(const Agora__V1__StepReply *st, const char *name)
{
    double v = 0;
    if (!has_metric(st, name, &v))
        fail_msg("no metric %s", name);
    return v;
}

static const char *error_message(const Agora__V1__EnvReply *r)
{
    return r->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR && r->error->message ? r->error->message
                                                                                 : "";
}

/* Resets a debate (k = 8) with the given judge; seat1_bot "" = the client plays both seats. */
static int wg_reset(ag_env_client_t *c, wire_game_t *g, uint64_t seed, const char *judge,
                    const char *seat1_bot, Agora__V1__EnvReply **out)
{
    memset(g, 0, sizeof *g);
    const char *opts[2][2] = {{"k", "8"}, {"judge", judge}};
    const char *bots[2] = {"", seat1_bot};
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(
        ag_env_client_reset(c, "debate", seed, opts, 2, bots, seat1_bot[0] ? 2 : 0, &r), 0);
    int code = ag_env_reply_error(r);
    if (code == 0) {
        assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_RESET);
        g->id = r->reset->episode_id;
        g->to_act = r->reset->to_act;
        snprintf(g->obs, sizeof g->obs, "%s", r->reset->observation);
        tr_add(g, g->to_act, g->obs);
    }
    if (out)
        *out = r;
    else
        agora__v1__env_reply__free_unpacked(r, NULL);
    return code;
}

/* The move for the seat to act: a valid claim, or a challenge of step `challenge`. */
static void wg_move(const wire_game_t *g, int challenge, char *action)
{
    assert_true(ag_debate_player_move(g->obs, action));
    if (strstr(g->obs, "challenge step: "))
        snprintf(action, AG_DEBATE_PLAYER_MOVE_CAP, "%d", challenge);
}

/* Records an answered Step: the action sent and, unless it ended, the next observation. */
static void wg_applied(wire_game_t *g, const char *action, const Agora__V1__EnvReply *r)
{
    assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_STEP);
    tr_add(g, g->to_act, action);
    g->turns++;
    if (!r->step->terminated) {
        g->to_act = r->step->to_act;
        snprintf(g->obs, sizeof g->obs, "%s", r->step->observation);
        tr_add(g, g->to_act, g->obs);
    }
}

/* Plays the seat to act; returns the reply (caller frees). Applied steps are recorded. */
static Agora__V1__EnvReply *wg_step(ag_env_client_t *c, wire_game_t *g, int challenge, char *action)
{
    wg_move(g, challenge, action);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_step(c, g->id, g->to_act, action, &r), 0);
    if (ag_env_reply_error(r) == 0)
        wg_applied(g, action, r);
    return r;
}

/* Plays the client's turns until one is left (the one that completes play). */
static void wg_play_to_last(ag_env_client_t *c, wire_game_t *g, int last_client_turn, int challenge)
{
    char action[AG_DEBATE_PLAYER_MOVE_CAP];
    while (g->turns < last_client_turn) {
        Agora__V1__EnvReply *r = wg_step(c, g, challenge, action);
        assert_int_equal(ag_env_reply_error(r), 0);
        assert_false(r->step->terminated);
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
}

/* Sends a Step without waiting for its reply; returns its request id. */
static uint64_t send_step(ag_env_client_t *c, uint64_t episode, uint32_t player, const char *action)
{
    Agora__V1__StepRequest st = AGORA__V1__STEP_REQUEST__INIT;
    st.episode_id = episode;
    st.player = player;
    st.action = (char *)action;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = ag_env_client_new_id(c);
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &st;
    assert_int_equal(ag_env_client_send(c, &req), 0);
    return req.request_id;
}

/*
 * The reply to request id (others, late answers, are dropped), or NULL when
 * none came within timeout_ms (0: only look at what has arrived).
 */
static Agora__V1__EnvReply *recv_reply(ag_env_client_t *c, uint64_t id, int timeout_ms)
{
    int64_t deadline = ag_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ag_now_ms();
        Agora__V1__EnvReply *r = NULL;
        int rc = ag_env_client_recv(c, left > 0 ? (int)left : 0, &r, NULL);
        if (rc == -ETIMEDOUT)
            return NULL;
        assert_int_equal(rc, 0);
        if (r->request_id == id)
            return r;
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
}

/* What the reward server itself scores the two transcripts (model MODEL). */
static void direct_scores(const char *reward_ep, const char *tr0, const char *tr1, float *out)
{
    reward_peer_t c;
    assert_int_equal(reward_peer_open(&c, reward_ep), 0);
    const char *const tr[2] = {tr0, tr1};
    int rc = reward_peer_scores(&c, MODEL, tr, 2, CLIENT_TIMEOUT_MS, out);
    reward_peer_close(&c);
    assert_int_equal(rc, 0);
}

static float parse_score(const char *text)
{
    char *end = NULL;
    float v = strtof(text, &end);
    assert_true(end != text && *end == '\0');
    assert_true(isfinite(v));
    return v;
}

/*
 * Checks a final Step judged by the reward model: the ruling, the info and
 * metrics, and that the scores are the reward server's for the transcripts
 * tr0, tr1. Returns the winner.
 */
static int check_judged(const Agora__V1__EnvReply *r, const char *reward_ep, const char *tr0,
                        const char *tr1)
{
    assert_int_equal(ag_env_reply_error(r), 0);
    const Agora__V1__StepReply *st = r->step;
    assert_true(st->terminated);
    assert_false(st->truncated);
    assert_string_equal(st->observation, "");
    assert_string_equal(info_of(st, "reason"), "reward");
    float s0 = parse_score(info_of(st, "judge_score0"));
    float s1 = parse_score(info_of(st, "judge_score1"));
    int winner = atoi(info_of(st, "winner"));
    int true_seat = atoi(info_of(st, "true_seat"));
    assert_true(winner == 0 || winner == 1);
    assert_true(true_seat == 0 || true_seat == 1);
    if (s0 != s1)
        assert_int_equal(winner, s0 > s1 ? 0 : 1);
    assert_int_equal(st->n_rewards, 2);
    assert_true(st->rewards[winner] == 1.0f && st->rewards[1 - winner] == -1.0f);
    assert_true(metric_of(st, "judge_accuracy") == (winner == true_seat ? 1.0 : 0.0));
    double agrees = metric_of(st, "rule_judge_agrees");
    assert_true(agrees == 0.0 || agrees == 1.0);
    float direct[2];
    direct_scores(reward_ep, tr0, tr1, direct);
    assert_true(direct[0] == s0);
    assert_true(direct[1] == s1);
    return winner;
}

/* ---- fixture: one agora-reward and one agora-env using it ---- */

typedef struct fixture {
    ag_server_proc_t reward;
    ag_server_proc_t env;
    ag_env_client_t *c;
} fixture_t;

static fixture_t fx;

static int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (harness_mkdtemp(workdir, sizeof workdir, "agora-reward-judge") < 0 ||
        reward_start(&fx.reward, "") < 0)
        return -1;
    const char *extra[] = {"--reward", fx.reward.endpoint, NULL};
    env_start(&fx.env, extra);
    fx.c = ag_env_client_create(fx.env.endpoint, CLIENT_TIMEOUT_MS);
    return fx.c ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    ag_env_client_destroy(&fx.c);
    int env_status = ag_server_proc_stop(&fx.env, 15000);
    int reward_status = ag_server_proc_stop(&fx.reward, 15000);
    harness_rmtree(workdir);
    if (env_status != 0 || reward_status != 0) {
        fprintf(stderr, "reward_judge: exit status env %d, reward %d (expected 0, 0)\n", env_status,
                reward_status);
        return -1;
    }
    return 0;
}

/* ---- tests ---- */

static void test_judged_debates(void **state)
{
    (void)state;
    int wins[2] = {0, 0}, true_won = 0, agreed = 0;
    const int games = 24;
    for (int i = 0; i < games; i++) {
        wire_game_t g;
        assert_int_equal(wg_reset(fx.c, &g, 1000 + (uint64_t)i, "reward:" MODEL, "", NULL), 0);
        int challenge = 1 + i % 8;
        wg_play_to_last(fx.c, &g, 3, challenge);
        char action[AG_DEBATE_PLAYER_MOVE_CAP];
        Agora__V1__EnvReply *r = wg_step(fx.c, &g, challenge, action);
        int w = check_judged(r, fx.reward.endpoint, g.tr[0], g.tr[1]);
        wins[w]++;
        true_won += (int)metric_of(r->step, "judge_accuracy");
        agreed += (int)metric_of(r->step, "rule_judge_agrees");
        agora__v1__env_reply__free_unpacked(r, NULL);
        /* Finished: the episode is gone. */
        Agora__V1__EnvReply *cl = NULL;
        assert_int_equal(ag_env_client_close(fx.c, g.id, &cl), 0);
        assert_int_equal(ag_env_reply_error(cl), AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE);
        agora__v1__env_reply__free_unpacked(cl, NULL);
    }
    printf("reward judge over %d debates: seat 0 won %d, true side won %d, rule judge "
           "agreed %d\n",
           games, wins[0], true_won, agreed);
}

/*
 * A bot on seat 1: the client's last challenge makes the bot's due, and the
 * bot's transcript is what a client in its seat would have seen and written,
 * rebuilt here from the published text format and the final info.
 */
static void test_judged_with_bot_seat(void **state)
{
    (void)state;
    for (uint64_t seed = 40; seed < 44; seed++) {
        wire_game_t g;
        assert_int_equal(wg_reset(fx.c, &g, seed, "reward:" MODEL, "liar", NULL), 0);
        assert_int_equal(g.to_act, 0);
        char claim_obs[sizeof g.obs];
        snprintf(claim_obs, sizeof claim_obs, "%s", g.obs);
        char action[AG_DEBATE_PLAYER_MOVE_CAP];
        Agora__V1__EnvReply *r = wg_step(fx.c, &g, 0, action);
        assert_int_equal(ag_env_reply_error(r), 0);
        assert_int_equal(r->step->to_act, 0);
        agora__v1__env_reply__free_unpacked(r, NULL);
        r = wg_step(fx.c, &g, 3, action);
        const Agora__V1__StepReply *st = r->step;
        assert_non_null(st);
        const char *chain0 = info_of(st, "chain0"), *chain1 = info_of(st, "chain1");
        char bot_tr[TRANSCRIPT_CAP];
        const char *argue = strstr(claim_obs, "\nyou argue: ");
        assert_non_null(argue);
        snprintf(bot_tr, sizeof bot_tr,
                 "%.*s\nyou argue: %c\nyour chain: %s\nopponent argues: %c\nopponent chain: "
                 "%s\nchallenge step: %s",
                 (int)(argue - claim_obs), claim_obs, chain1[strlen(chain1) - 1], chain1,
                 chain0[strlen(chain0) - 1], chain0, info_of(st, "challenge1"));
        check_judged(r, fx.reward.endpoint, g.tr[0], bot_tr);
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
}

static void test_refused(void **state)
{
    (void)state;
    /* Without --reward: a clear BAD_OPTION at Reset. */
    ag_server_proc_t plain;
    env_start(&plain, NULL);
    ag_env_client_t *c = ag_env_client_create(plain.endpoint, CLIENT_TIMEOUT_MS);
    assert_non_null(c);
    wire_game_t g;
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(wg_reset(c, &g, 1, "reward:" MODEL, "", &r),
                     AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION);
    assert_non_null(strstr(error_message(r), "--reward"));
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* ...while the rule judge works as ever there. */
    assert_int_equal(wg_reset(c, &g, 1, "rule", "", NULL), 0);
    wg_play_to_last(c, &g, 3, 1);
    char action[AG_DEBATE_PLAYER_MOVE_CAP];
    r = wg_step(c, &g, 1, action);
    assert_true(r->step->terminated);
    assert_string_not_equal(info_of(r->step, "reason"), "reward");
    double v;
    assert_false(has_metric(r->step, "rule_judge_agrees", &v));
    agora__v1__env_reply__free_unpacked(r, NULL);
    ag_env_client_destroy(&c);
    stop_clean(&plain);

    /* With --reward: demos, all-bot games and malformed judges are refused. */
    Agora__V1__KeyValue kv = AGORA__V1__KEY_VALUE__INIT;
    Agora__V1__KeyValue *kvp[1] = {&kv};
    kv.key = "judge";
    kv.value = "reward:" MODEL;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    demo.game = "debate";
    demo.count = 2;
    demo.n_options = 1;
    demo.options = kvp;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
    req.demo = &demo;
    assert_int_equal(ag_env_client_call(fx.c, &req, &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION);
    assert_non_null(strstr(error_message(r), "demos use"));
    agora__v1__env_reply__free_unpacked(r, NULL);

    const char *opts[1][2] = {{"judge", "reward:" MODEL}};
    const char *bots[2] = {"honest", "liar"};
    assert_int_equal(ag_env_client_reset(fx.c, "debate", 1, opts, 1, bots, 2, &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION);
    agora__v1__env_reply__free_unpacked(r, NULL);

    const char *bad[] = {"reward:", "reward", "reward:a b", "judge"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(wg_reset(fx.c, &g, 1, bad[i], "", &r),
                         AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION);
        assert_non_null(strstr(error_message(r), "judge"));
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
}

static void test_unknown_model(void **state)
{
    (void)state;
    wire_game_t g;
    assert_int_equal(wg_reset(fx.c, &g, 7, "reward:no-such-model", "", NULL), 0);
    wg_play_to_last(fx.c, &g, 3, 2);
    char action[AG_DEBATE_PLAYER_MOVE_CAP];
    for (int again = 0; again < 2; again++) {
        wg_move(&g, 2, action);
        Agora__V1__EnvReply *r = NULL;
        assert_int_equal(ag_env_client_step(fx.c, g.id, g.to_act, action, &r), 0);
        assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL);
        assert_non_null(strstr(error_message(r), "no-such-model"));
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
    /* The episode is as it was: still there, the same seat to act, closable. */
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_step(fx.c, g.id, 1 - g.to_act, "1", &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN);
    agora__v1__env_reply__free_unpacked(r, NULL);
    assert_int_equal(ag_env_client_close(fx.c, g.id, &r), 0);
    assert_int_equal(ag_env_reply_error(r), 0);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/*
 * The reward server stops. A final Step waits the default 2 s deadline for
 * it; meanwhile the env server answers everyone else at once, refuses a
 * second Step on that episode, and lets a Close through (the closed
 * episode's own held Step then gets UNKNOWN_EPISODE). The held Step gets
 * OVERLOADED; once the reward server is back, the same Step is judged, and
 * its outcome is the one an episode that never failed gets.
 */
static void test_reward_down_and_back(void **state)
{
    (void)state;
    wire_game_t a, b, other;
    assert_int_equal(wg_reset(fx.c, &a, 77, "reward:" MODEL, "", NULL), 0);
    wg_play_to_last(fx.c, &a, 3, 5);
    assert_int_equal(wg_reset(fx.c, &b, 78, "reward:" MODEL, "", NULL), 0);
    wg_play_to_last(fx.c, &b, 3, 5);
    stop_clean(&fx.reward);

    ag_env_client_t *held = ag_env_client_create(fx.env.endpoint, CLIENT_TIMEOUT_MS);
    ag_env_client_t *held_b = ag_env_client_create(fx.env.endpoint, CLIENT_TIMEOUT_MS);
    assert_non_null(held);
    assert_non_null(held_b);
    char action[AG_DEBATE_PLAYER_MOVE_CAP], action_b[AG_DEBATE_PLAYER_MOVE_CAP];
    wg_move(&a, 5, action);
    wg_move(&b, 5, action_b);
    int64_t sent = ag_now_ms();
    uint64_t id_a = send_step(held, a.id, a.to_act, action);
    uint64_t id_b = send_step(held_b, b.id, b.to_act, action_b);
    harness_sleep_ms(50);

    /* Others are served while the judge is awaited. */
    int64_t t0 = ag_now_ms();
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(fx.c, "reward_judge", &r), 0);
    assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_HELLO);
    agora__v1__env_reply__free_unpacked(r, NULL);
    assert_int_equal(wg_reset(fx.c, &other, 5, "rule", "", NULL), 0);
    wg_play_to_last(fx.c, &other, 3, 1);
    r = wg_step(fx.c, &other, 1, action_b);
    assert_true(r->step->terminated);
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* A second Step on the held episode: NOT_YOUR_TURN, saying why. */
    assert_int_equal(ag_env_client_step(fx.c, a.id, a.to_act, action, &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN);
    assert_non_null(strstr(error_message(r), "judge"));
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* Close wins over a held Step. */
    assert_int_equal(ag_env_client_close(fx.c, b.id, &r), 0);
    assert_int_equal(ag_env_reply_error(r), 0);
    agora__v1__env_reply__free_unpacked(r, NULL);
    int64_t served_ms = ag_now_ms() - t0;
    printf("while a Step waited for the judge: hello, a whole rule-judged debate, a refused "
           "step and a close took %lld ms\n",
           (long long)served_ms);
    assert_true(served_ms < 1500);
    /* The held Steps are still unanswered. */
    assert_null(recv_reply(held, id_a, 0));

    r = recv_reply(held, id_a, CLIENT_TIMEOUT_MS);
    int64_t waited = ag_now_ms() - sent;
    assert_non_null(r);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_OVERLOADED);
    assert_non_null(strstr(error_message(r), "the reward judge did not answer: retry the step"));
    printf("held Step answered OVERLOADED after %lld ms\n", (long long)waited);
    assert_true(waited >= 1800);
    agora__v1__env_reply__free_unpacked(r, NULL);
    r = recv_reply(held_b, id_b, CLIENT_TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE);
    assert_non_null(strstr(error_message(r), "closed"));
    agora__v1__env_reply__free_unpacked(r, NULL);
    ag_env_client_destroy(&held);
    ag_env_client_destroy(&held_b);

    /* Episode a is as before its final Step: resend it once the judge is back. */
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "%s", fx.reward.endpoint);
    assert_int_equal(reward_start(&fx.reward, endpoint), 0);
    if (strcmp(endpoint, fx.reward.endpoint) != 0)
        fail_msg("agora-reward could not be restarted on %s", endpoint);
    for (int attempt = 0;; attempt++) {
        assert_int_equal(ag_env_client_step(fx.c, a.id, a.to_act, action, &r), 0);
        if (ag_env_reply_error(r) != AGORA__V1__ERROR_CODE__ERROR_OVERLOADED || attempt == 4)
            break;
        agora__v1__env_reply__free_unpacked(r, NULL); /* still reconnecting */
    }
    wg_applied(&a, action, r);
    check_judged(r, fx.reward.endpoint, a.tr[0], a.tr[1]);

    /* The same game played in one go ends the same way. */
    wire_game_t same;
    assert_int_equal(wg_reset(fx.c, &same, 77, "reward:" MODEL, "", NULL), 0);
    wg_play_to_last(fx.c, &same, 3, 5);
    Agora__V1__EnvReply *r2 = wg_step(fx.c, &same, 5, action_b);
    assert_int_equal(ag_env_reply_error(r2), 0);
    assert_int_equal(r2->step->n_info, r->step->n_info);
    for (size_t i = 0; i < r->step->n_info; i++) {
        assert_string_equal(r2->step->info[i]->key, r->step->info[i]->key);
        assert_string_equal(r2->step->info[i]->value, r->step->info[i]->value);
    }
    assert_string_equal(same.tr[0], a.tr[0]);
    assert_string_equal(same.tr[1], a.tr[1]);
    agora__v1__env_reply__free_unpacked(r, NULL);
    agora__v1__env_reply__free_unpacked(r2, NULL);
}

/* An episode whose final Step is held outlives a TTL shorter than the judge's deadline. */
static void test_ttl_spares_held_step(void **state)
{
    (void)state;
    char nobody[64];
    assert_int_equal(harness_free_endpoint(nobody, sizeof nobody), 0); /* nothing listens there */
    const char *extra[] = {"--reward", nobody, "--reward-timeout-ms", "3000", "--episode-ttl",
                           "1",        NULL};
    ag_server_proc_t env;
    env_start(&env, extra);
    ag_env_client_t *c = ag_env_client_create(env.endpoint, CLIENT_TIMEOUT_MS);
    assert_non_null(c);
    wire_game_t g;
    assert_int_equal(wg_reset(c, &g, 3, "reward:" MODEL, "", NULL), 0);
    wg_play_to_last(c, &g, 3, 4);
    char action[AG_DEBATE_PLAYER_MOVE_CAP];
    wg_move(&g, 4, action);
    Agora__V1__EnvReply *r = NULL;
    int64_t t0 = ag_now_ms();
    assert_int_equal(ag_env_client_step(c, g.id, g.to_act, action, &r), 0);
    assert_true(ag_now_ms() - t0 >= 2700);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_OVERLOADED);
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* Still there (not evicted while held): the wrong seat is told whose turn it is. */
    assert_int_equal(ag_env_client_step(c, g.id, 1 - g.to_act, "1", &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN);
    agora__v1__env_reply__free_unpacked(r, NULL);
    /* Left idle, it is evicted like any other. */
    harness_sleep_ms(2000);
    assert_int_equal(ag_env_client_step(c, g.id, g.to_act, action, &r), 0);
    assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE);
    agora__v1__env_reply__free_unpacked(r, NULL);

    /* Stopped while a Step is held: the Step is cancelled and the server exits cleanly
     * (status 0, so nothing leaked in a sanitizer build). */
    assert_int_equal(wg_reset(c, &g, 4, "reward:" MODEL, "", NULL), 0);
    wg_play_to_last(c, &g, 3, 4);
    wg_move(&g, 4, action);
    uint64_t id = send_step(c, g.id, g.to_act, action);
    harness_sleep_ms(200);
    assert_null(recv_reply(c, id, 0));
    stop_clean(&env);
    r = recv_reply(c, id, 200);
    if (r) /* linger 0: the cancellation may or may not get out before the exit */
        assert_int_equal(ag_env_reply_error(r), AGORA__V1__ERROR_CODE__ERROR_OVERLOADED);
    agora__v1__env_reply__free_unpacked(r, NULL);
    ag_env_client_destroy(&c);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s PATH/TO/agora-env PATH/TO/agora-reward\n", argv[0]);
        return 2;
    }
    env_exe = argv[1];
    reward_exe = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judged_debates),
        cmocka_unit_test(test_judged_with_bot_seat),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_unknown_model),
        cmocka_unit_test(test_reward_down_and_back),
        cmocka_unit_test(test_ttl_spares_held_step),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
