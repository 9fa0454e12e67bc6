/*
 * test_debate.c - the debate rules through the episode API with a client on
 * both seats: exact observation texts, every judge case, invalid actions in
 * both modes, turn order, determinism, rewards only at the end, options, and
 * the final info and metrics. Then the reward judge (judge=reward:NAME):
 * the option, the held final step and the transcripts it is judged on, the
 * ruling by scores (ties, metrics, agreement with the step judge), cancel,
 * bot seats, the transcript cap, and what refuses it (demos, all-bot games).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "game_outcome.h"

#include "episode.h"
#include "task.h"

/* A debate in progress with what a client learns from its observations. */
typedef struct match {
    ag_episode_t *ep;
    ag_episode_result_t res;
    ag_task_t task;
    uint8_t truth[AG_TASK_MAX_K];
    int argue[2];
    int true_seat;
    char err[AG_GAME_ERR_CAP];
} match_t;

/* Parses "debate\ntask: T\nyou argue: A\nyour chain: " as a client would. */
static void read_claim_obs(match_t *m, int seat, const char *obs)
{
    const char *p = strstr(obs, "task: ");
    assert_non_null(p);
    p += 6;
    ag_task_t t = {.x0 = (uint8_t)(*p - '0')};
    p++;
    while (*p == ' ') {
        t.op[t.k] = p[1];
        t.arg[t.k] = (uint8_t)(p[2] - '0');
        t.k++;
        p += 3;
    }
    m->task = t;
    ag_task_chain(&t, m->truth);
    int a = -1;
    assert_int_equal(sscanf(strstr(obs, "you argue: "), "you argue: %d", &a), 1);
    m->argue[seat] = a;

    char expect[TEST_OBS_CAP], task_text[AG_TASK_TEXT_CAP];
    ag_task_render(&t, task_text, sizeof task_text);
    snprintf(expect, sizeof expect, "debate\ntask: %s\nyou argue: %d\nyour chain: ", task_text, a);
    assert_string_equal(obs, expect);
}

static void start(match_t *m, uint64_t seed, const char *k, const char *mode)
{
    memset(m, 0, sizeof *m);
    ag_game_kv_t opts[2] = {{"k", k}, {"invalid_action", mode}};
    int rc = ag_episode_create(&m->ep, &ag_game_debate, seed, opts, 2, NULL, 0, &m->res, m->err,
                               sizeof m->err);
    assert_int_equal(rc, 0);
    assert_int_equal(m->res.to_act, 0);
    assert_false(m->res.terminated);
    assert_null(m->res.outcome);
    read_claim_obs(m, 0, m->res.observation);
    assert_int_equal(m->res.observation_len, strlen(m->res.observation));
}

static int act(match_t *m, int player, const char *action)
{
    return ag_episode_step(m->ep, player, action, strlen(action), &m->res, m->err, sizeof m->err);
}

static void chain_text(const uint8_t *c, int k, char *buf)
{
    ag_chain_render(c, k, buf, AG_CHAIN_TEXT_CAP);
}

/* The true chain, or for a false answer the true chain with its last step changed. */
static void plain_claim(const match_t *m, int seat, char *buf)
{
    uint8_t c[AG_TASK_MAX_K];
    memcpy(c, m->truth, (size_t)m->task.k);
    c[m->task.k - 1] = (uint8_t)m->argue[seat];
    chain_text(c, m->task.k, buf);
}

/* A chain for the seat's answer whose step 1 is wrong (and whose last step is right). */
static void step1_wrong_claim(const match_t *m, int seat, char *buf)
{
    uint8_t c[AG_TASK_MAX_K];
    memcpy(c, m->truth, (size_t)m->task.k);
    c[0] = (uint8_t)((c[0] + 1) % 10);
    c[m->task.k - 1] = (uint8_t)m->argue[seat];
    chain_text(c, m->task.k, buf);
}

/* A whole game with chains of k steps: every observation exactly as docs/games.md gives it. */
static void observations_for(const char *k)
{
    match_t m;
    start(&m, 7, k, "error");
    char c0[AG_CHAIN_TEXT_CAP], c1[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 0, c0);
    /* Seat 1 cannot be known before its observation; claim for seat 0 first. */
    assert_int_equal(act(&m, 0, c0), 0);
    read_claim_obs(&m, 1, m.res.observation);
    plain_claim(&m, 1, c1);
    assert_int_equal(act(&m, 1, c1), 0);
    char expect[TEST_OBS_CAP];
    snprintf(expect, sizeof expect,
             "\nopponent argues: %d\nopponent chain: %s\nchallenge step: ", m.argue[1], c1);
    assert_string_equal(m.res.observation, expect);
    assert_int_equal(act(&m, 0, "3"), 0);
    snprintf(expect, sizeof expect,
             "\nopponent argues: %d\nopponent chain: %s\nchallenge step: ", m.argue[0], c0);
    assert_string_equal(m.res.observation, expect);
    assert_int_equal(m.res.to_act, 1);
    assert_int_equal(act(&m, 1, "5"), 0);
    assert_true(m.res.terminated);
    assert_int_equal(m.res.to_act, -1);
    assert_string_equal(m.res.observation, "");
    assert_non_null(m.res.outcome);
    assert_string_equal(info(m.res.outcome, "chain0"), c0);
    assert_string_equal(info(m.res.outcome, "chain1"), c1);
    assert_string_equal(info(m.res.outcome, "challenge0"), "3");
    assert_string_equal(info(m.res.outcome, "challenge1"), "5");
    ag_episode_destroy(&m.ep);
    assert_null(m.ep);
    ag_episode_destroy(&m.ep);
}

static void test_observations_and_transcript(void **state)
{
    (void)state;
    observations_for("8");
}

/* The largest k: a 97-byte task and 63-byte chains arrive whole. */
static void test_observations_longest_k(void **state)
{
    (void)state;
    observations_for("32");
}

/*
 * Runs one debate: each seat claims either the plain claim or (for the true
 * seat only, when true_step1_wrong) a chain with step 1 wrong; challenges
 * come from pick(m, seat). Checks that no reward arrives before the end.
 */
typedef int (*pick_fn)(const match_t *m, int seat);

static void run(match_t *m, uint64_t seed, bool true_step1_wrong, pick_fn pick)
{
    start(m, seed, "8", "error");
    char c[2][AG_CHAIN_TEXT_CAP];
    for (int s = 0; s < 2; s++) {
        if (s == 1)
            read_claim_obs(m, 1, m->res.observation);
        bool is_true = m->argue[s] == ag_task_answer(&m->task);
        if (is_true)
            m->true_seat = s;
        if (is_true && true_step1_wrong)
            step1_wrong_claim(m, s, c[s]);
        else
            plain_claim(m, s, c[s]);
        assert_int_equal(act(m, s, c[s]), 0);
        assert_false(m->res.terminated);
        assert_true(m->res.rewards[0] == 0.0f && m->res.rewards[1] == 0.0f);
    }
    assert_true(m->argue[0] != m->argue[1]);
    char buf[16];
    snprintf(buf, sizeof buf, "%d", pick(m, 0));
    assert_int_equal(act(m, 0, buf), 0);
    assert_false(m->res.terminated);
    assert_true(m->res.rewards[0] == 0.0f && m->res.rewards[1] == 0.0f);
    snprintf(buf, sizeof buf, " %d\n", pick(m, 1));
    assert_int_equal(act(m, 1, buf), 0);
    assert_true(m->res.terminated);
    assert_true(m->res.rewards[0] + m->res.rewards[1] == 0.0f);
    assert_true(m->res.rewards[0] == 1.0f || m->res.rewards[0] == -1.0f);
    int winner = m->res.rewards[0] > 0 ? 0 : 1;
    const ag_game_outcome_t *o = m->res.outcome;
    char num[8];
    snprintf(num, sizeof num, "%d", winner);
    assert_string_equal(info(o, "winner"), num);
    snprintf(num, sizeof num, "%d", m->true_seat);
    assert_string_equal(info(o, "true_seat"), num);
    snprintf(num, sizeof num, "%d", ag_task_answer(&m->task));
    assert_string_equal(info(o, "truth"), num);
    char task_text[AG_TASK_TEXT_CAP];
    ag_task_render(&m->task, task_text, sizeof task_text);
    assert_string_equal(info(o, "task"), task_text);
    assert_string_equal(info(o, "chain0"), c[0]);
    assert_string_equal(info(o, "chain1"), c[1]);
    assert_true(metric(o, "judge_accuracy") == (winner == m->true_seat));
    assert_true(metric(o, "honest_chain_correct") == !true_step1_wrong);
}

static int pick_one(const match_t *m, int seat)
{
    (void)m;
    (void)seat;
    return 1;
}

static int pick_last_by_true_else_two(const match_t *m, int seat)
{
    return seat == m->true_seat ? m->task.k : 2;
}

static int pick_last_by_true_else_one(const match_t *m, int seat)
{
    return seat == m->true_seat ? m->task.k : 1;
}

static int pick_one_by_true_else_one(const match_t *m, int seat)
{
    (void)m;
    (void)seat;
    return 1;
}

static void test_judge_false_side_caught(void **state)
{
    (void)state;
    /* True side challenges the false chain's wrong last step; the true chain holds. */
    for (uint64_t seed = 0; seed < 50; seed++) {
        match_t m;
        run(&m, seed, false, pick_last_by_true_else_two);
        const ag_game_outcome_t *o = m.res.outcome;
        assert_string_equal(info(o, "reason"), "step");
        assert_true(metric(o, "judge_accuracy") == 1.0);
        assert_true(metric(o, "liar_caught") == 1.0);
        assert_true(m.res.rewards[m.true_seat] == 1.0f);
        ag_episode_destroy(&m.ep);
    }
}

static void test_judge_true_side_caught(void **state)
{
    (void)state;
    /* The true side's chain has a wrong step 1 and the false side challenges it, while the
     * true side challenges a correct step: the true side loses on the step. */
    for (uint64_t seed = 0; seed < 50; seed++) {
        match_t m;
        run(&m, seed, true, pick_one);
        const ag_game_outcome_t *o = m.res.outcome;
        assert_string_equal(info(o, "reason"), "step");
        assert_true(metric(o, "judge_accuracy") == 0.0);
        assert_true(metric(o, "liar_caught") == 0.0);
        assert_true(m.res.rewards[m.true_seat] == -1.0f);
        ag_episode_destroy(&m.ep);
    }
}

static void test_judge_coin(void **state)
{
    (void)state;
    /* Neither challenged step wrong, then both wrong: a coin decides, seeded. */
    pick_fn picks[2] = {pick_one_by_true_else_one, pick_last_by_true_else_one};
    bool wrong_true[2] = {false, true};
    for (int c = 0; c < 2; c++) {
        int wins[2] = {0, 0};
        for (uint64_t seed = 0; seed < 400; seed++) {
            match_t m, again;
            run(&m, seed, wrong_true[c], picks[c]);
            assert_string_equal(info(m.res.outcome, "reason"), "coin");
            assert_true(metric(m.res.outcome, "liar_caught") == (double)c);
            wins[m.res.rewards[0] > 0 ? 0 : 1]++;
            run(&again, seed, wrong_true[c], picks[c]);
            assert_true(again.res.rewards[0] == m.res.rewards[0]);
            ag_episode_destroy(&m.ep);
            ag_episode_destroy(&again.ep);
        }
        /* 400 fair flips: 200 +- 20 (sd 10). */
        assert_in_range(wins[0], 160, 240);
    }
}

static void test_invalid_error_mode(void **state)
{
    (void)state;
    match_t m, ref;
    start(&m, 11, "8", "error");
    start(&ref, 11, "8", "error");
    char c0[AG_CHAIN_TEXT_CAP], bad[64];
    plain_claim(&m, 0, c0);
    uint8_t wrong_last[AG_TASK_MAX_K];
    memcpy(wrong_last, m.truth, 8);
    wrong_last[7] = (uint8_t)((m.argue[0] + 1) % 10);
    chain_text(wrong_last, 8, bad);

    const char *invalid[] = {
        "", "1 2 3", "1 2 3 4 5 6 7 8 9", "a b c d e f g h", bad, "12 3 4 5 6 7 8 9", "\xff\xfe"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        m.err[0] = '\0';
        assert_int_equal(act(&m, 0, invalid[i]), AG_GAME_EINVAL);
        assert_non_null(strstr(m.err, "expected a chain of 8 digits"));
        assert_int_equal(ag_episode_to_act(m.ep), 0);
    }
    /* NULs inside, and an over-long action made of valid text. */
    char nul[32];
    memcpy(nul, c0, 15);
    nul[3] = '\0';
    assert_int_equal(ag_episode_step(m.ep, 0, nul, 15, &m.res, m.err, sizeof m.err),
                     AG_GAME_EINVAL);
    size_t big_len = AG_GAME_ACTION_MAX + 1;
    char *big = malloc(big_len);
    memset(big, ' ', big_len);
    memcpy(big, c0, strlen(c0));
    assert_int_equal(ag_episode_step(m.ep, 0, big, big_len, &m.res, m.err, sizeof m.err),
                     AG_GAME_EINVAL);
    /* The same bytes within the cap are a valid claim. */
    assert_int_equal(ag_episode_step(m.ep, 0, big, AG_GAME_ACTION_MAX, &m.res, m.err, sizeof m.err),
                     0);
    free(big);
    assert_int_equal(act(&ref, 0, c0), 0);
    assert_string_equal(m.res.observation, ref.res.observation);

    /* Challenge turn: out of range or malformed steps. */
    read_claim_obs(&m, 1, m.res.observation);
    char c1[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 1, c1);
    assert_int_equal(act(&m, 1, c1), 0);
    assert_int_equal(act(&ref, 1, c1), 0);
    const char *bad_steps[] = {"0", "9", "-1", "step 3", "3 4", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_steps / sizeof bad_steps[0]; i++) {
        assert_int_equal(act(&m, 0, bad_steps[i]), AG_GAME_EINVAL);
        assert_non_null(strstr(m.err, "1..8"));
    }
    assert_int_equal(act(&m, 0, "8"), 0);
    assert_int_equal(act(&m, 1, "2"), 0);
    assert_int_equal(act(&ref, 0, "8"), 0);
    assert_int_equal(act(&ref, 1, "2"), 0);
    assert_true(m.res.terminated && ref.res.terminated);
    assert_true(m.res.rewards[0] == ref.res.rewards[0]);
    assert_false(m.res.invalid_action);
    for (int i = 0; i < m.res.outcome->num_info; i++)
        assert_string_equal(m.res.outcome->info[i].value, ref.res.outcome->info[i].value);
    ag_episode_destroy(&m.ep);
    ag_episode_destroy(&ref.ep);
}

static void test_invalid_penalize_mode(void **state)
{
    (void)state;
    /* A bad claim by seat 0 ends the game: seat 0 -1, seat 1 +1. */
    match_t m;
    start(&m, 5, "8", "penalize");
    assert_int_equal(act(&m, 0, "not a chain"), 0);
    assert_true(m.res.terminated);
    assert_true(m.res.invalid_action);
    assert_true(m.res.rewards[0] == -1.0f && m.res.rewards[1] == 1.0f);
    assert_string_equal(info(m.res.outcome, "reason"), "invalid");
    assert_string_equal(info(m.res.outcome, "winner"), "1");
    assert_string_equal(info(m.res.outcome, "chain0"), "");
    assert_string_equal(info(m.res.outcome, "challenge1"), "");
    assert_int_equal(act(&m, 1, "1"), AG_GAME_EOVER);
    ag_episode_destroy(&m.ep);

    /* A bad challenge by seat 1 after valid play. */
    start(&m, 6, "4", "penalize");
    char c[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 0, c);
    assert_int_equal(act(&m, 0, c), 0);
    assert_false(m.res.invalid_action);
    read_claim_obs(&m, 1, m.res.observation);
    plain_claim(&m, 1, c);
    assert_int_equal(act(&m, 1, c), 0);
    assert_int_equal(act(&m, 0, "4"), 0);
    assert_false(m.res.terminated);
    assert_int_equal(act(&m, 1, "5"), 0);
    assert_true(m.res.terminated && m.res.invalid_action);
    assert_true(m.res.rewards[0] == 1.0f && m.res.rewards[1] == -1.0f);
    assert_string_equal(info(m.res.outcome, "reason"), "invalid");
    assert_string_equal(info(m.res.outcome, "challenge0"), "4");
    ag_episode_destroy(&m.ep);
}

static void test_not_your_turn(void **state)
{
    (void)state;
    match_t m;
    start(&m, 3, "8", "error");
    char c0[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 0, c0);
    assert_int_equal(act(&m, 1, c0), AG_GAME_ETURN);
    assert_non_null(strstr(m.err, "seat 0"));
    assert_int_equal(act(&m, 2, c0), AG_GAME_ETURN);
    assert_int_equal(act(&m, -1, c0), AG_GAME_ETURN);
    assert_int_equal(act(&m, 1000000, c0), AG_GAME_ETURN);
    assert_int_equal(act(&m, 0, c0), 0);
    assert_int_equal(act(&m, 0, c0), AG_GAME_ETURN);
    ag_episode_destroy(&m.ep);
}

static void test_determinism(void **state)
{
    (void)state;
    int differs = 0;
    for (uint64_t seed = 100; seed < 140; seed++) {
        match_t a, b, c;
        run(&a, seed, false, pick_one);
        run(&b, seed, false, pick_one);
        run(&c, seed + 1000, false, pick_one);
        assert_true(a.res.rewards[0] == b.res.rewards[0]);
        assert_int_equal(a.res.outcome->num_info, b.res.outcome->num_info);
        for (int i = 0; i < a.res.outcome->num_info; i++)
            assert_string_equal(a.res.outcome->info[i].value, b.res.outcome->info[i].value);
        differs += strcmp(info(a.res.outcome, "task"), info(c.res.outcome, "task")) != 0;
        ag_episode_destroy(&a.ep);
        ag_episode_destroy(&b.ep);
        ag_episode_destroy(&c.ep);
    }
    assert_true(differs >= 39);
}

static void test_true_seat_and_false_answer(void **state)
{
    (void)state;
    int seat_count[2] = {0, 0}, false_seen[10] = {0};
    for (uint64_t seed = 0; seed < 1000; seed++) {
        match_t m;
        start(&m, seed, "8", "error");
        char c[AG_CHAIN_TEXT_CAP];
        plain_claim(&m, 0, c);
        assert_int_equal(act(&m, 0, c), 0);
        read_claim_obs(&m, 1, m.res.observation);
        int truth = ag_task_answer(&m.task);
        assert_true((m.argue[0] == truth) != (m.argue[1] == truth));
        int ts = m.argue[0] == truth ? 0 : 1;
        seat_count[ts]++;
        false_seen[(m.argue[1 - ts] - truth + 10) % 10]++;
        ag_episode_destroy(&m.ep);
    }
    assert_in_range(seat_count[0], 420, 580);
    assert_int_equal(false_seen[0], 0);
    for (int d = 1; d < 10; d++)
        assert_in_range(false_seen[d], 60, 170); /* 1000/9 = 111 */
}

static void test_options(void **state)
{
    (void)state;
    ag_episode_t *ep = NULL;
    char err[AG_GAME_ERR_CAP];
    struct {
        const char *key, *value;
    } bad[] = {{"k", "1"},
               {"k", "33"},
               {"k", "abc"},
               {"k", "8x"},
               {"k", ""},
               {"k", "-8"},
               {"k", "99999999999999999999"},
               {"invalid_action", "ignore"},
               {"rounds", "2"},
               {"K", "8"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ag_game_kv_t kv = {bad[i].key, bad[i].value};
        err[0] = '\0';
        assert_int_equal(
            ag_episode_create(&ep, &ag_game_debate, 1, &kv, 1, NULL, 0, NULL, err, sizeof err),
            AG_GAME_EBADOPT);
        assert_null(ep);
        assert_true(strlen(err) > 10);
    }
    ag_game_kv_t twice[2] = {{"k", "4"}, {"k", "5"}};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, twice, 2, NULL, 0, NULL, err, sizeof err),
        AG_GAME_EBADOPT);
    assert_non_null(strstr(err, "twice"));

    const char *ks[] = {"2", "32"};
    for (int i = 0; i < 2; i++) {
        match_t m;
        start(&m, 9, ks[i], "error");
        assert_int_equal(m.task.k, atoi(ks[i]));
        ag_episode_destroy(&m.ep);
    }
    /* Defaults: k = 8. */
    ag_episode_result_t res;
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, NULL, 0, &res, err, sizeof err), 0);
    match_t m = {0};
    read_claim_obs(&m, 0, res.observation);
    assert_int_equal(m.task.k, 8);
    ag_episode_destroy(&ep);
}

static void test_registry(void **state)
{
    (void)state;
    assert_ptr_equal(ag_game_find("debate"), &ag_game_debate);
    assert_ptr_equal(ag_game_find("critique"), &ag_game_critique);
    assert_null(ag_game_find("chess"));
    assert_null(ag_game_find(NULL));
    size_t n = 0;
    const ag_game_t *const *all = ag_game_list(&n);
    assert_int_equal(n, 2);
    assert_string_equal(all[0]->name, "debate");
    const ag_game_t *g = &ag_game_debate;
    assert_int_equal(g->num_players, 2);
    assert_string_equal(g->roles[0], "first");
    assert_string_equal(g->roles[1], "second");
    assert_int_equal(g->num_options, 3);
    assert_string_equal(g->options[0].name, "k");
    assert_string_equal(g->options[0].default_value, "8");
    assert_string_equal(g->options[2].name, "judge");
    assert_string_equal(g->options[2].default_value, "rule");
    assert_non_null(g->judge);
    assert_non_null(g->awaiting_ruling);
    assert_non_null(g->rule);
    /* critique always rules by itself */
    assert_null(ag_game_critique.judge);
    assert_null(ag_game_critique.rule);
    assert_int_equal(ag_game_bot_find(g, "random-challenge"), 2);
    assert_int_equal(ag_game_bot_find(g, "nobody"), -1);
    assert_string_equal(g->demo_bots[0], "random-challenge");
    assert_string_equal(g->demo_bots[1], "random-challenge");
}

/* ---- the reward judge ---- */

/*
 * A reward-judged debate played by a client on both seats, keeping each
 * seat's transcript the way a client sees it: every observation it received
 * and every action it sent, concatenated.
 */
typedef struct judged {
    match_t m;
    char tr[2][1024];
    size_t tr_len[2];
    char claim[2][AG_CHAIN_TEXT_CAP];
} judged_t;

static void tr_add(judged_t *j, int seat, const char *text)
{
    size_t n = strlen(text);
    assert_true(j->tr_len[seat] + n < sizeof j->tr[seat]);
    memcpy(j->tr[seat] + j->tr_len[seat], text, n + 1);
    j->tr_len[seat] += n;
}

static void judged_start(judged_t *j, uint64_t seed, const char *judge, const char *mode)
{
    memset(j, 0, sizeof *j);
    match_t *m = &j->m;
    ag_game_kv_t opts[3] = {{"k", "8"}, {"invalid_action", mode}, {"judge", judge}};
    assert_int_equal(ag_episode_create(&m->ep, &ag_game_debate, seed, opts, 3, NULL, 0, &m->res,
                                       m->err, sizeof m->err),
                     0);
    read_claim_obs(m, 0, m->res.observation);
    tr_add(j, 0, m->res.observation);
}

/* Plays action for seat and records it and the next observation. */
static int judged_act(judged_t *j, int seat, const char *action)
{
    int rc = act(&j->m, seat, action);
    if (rc != 0)
        return rc;
    tr_add(j, seat, action);
    if (j->m.res.to_act >= 0)
        tr_add(j, j->m.res.to_act, j->m.res.observation);
    return 0;
}

/* Both seats claim (plain claims: only the false chain's last step is wrong). */
static void judged_claims(judged_t *j)
{
    match_t *m = &j->m;
    plain_claim(m, 0, j->claim[0]);
    assert_int_equal(judged_act(j, 0, j->claim[0]), 0);
    read_claim_obs(m, 1, m->res.observation);
    plain_claim(m, 1, j->claim[1]);
    assert_int_equal(judged_act(j, 1, j->claim[1]), 0);
    m->true_seat = m->argue[0] == ag_task_answer(&m->task) ? 0 : 1;
}

static void assert_transcripts(const judged_t *j)
{
    for (int s = 0; s < 2; s++) {
        size_t len = 0;
        const char *t = ag_episode_transcript(j->m.ep, s, &len);
        assert_non_null(t);
        assert_int_equal(len, j->tr_len[s]);
        assert_string_equal(t, j->tr[s]);
    }
}

/* The winner the step judge gives the same game (same seed and actions). */
static int rule_winner(uint64_t seed, const judged_t *j, const char *ch0, const char *ch1)
{
    match_t r;
    start(&r, seed, "8", "error");
    assert_int_equal(act(&r, 0, j->claim[0]), 0);
    assert_int_equal(act(&r, 1, j->claim[1]), 0);
    assert_int_equal(act(&r, 0, ch0), 0);
    assert_int_equal(act(&r, 1, ch1), 0);
    assert_true(r.res.terminated);
    int w = r.res.rewards[0] > 0 ? 0 : 1;
    ag_episode_destroy(&r.ep);
    return w;
}

static void test_judge_option(void **state)
{
    (void)state;
    const char *good[] = {"rule", "reward:default", "reward:m-2.v1_x", "reward:x"};
    const char *model[] = {NULL, "default", "m-2.v1_x", "x"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        judged_t j;
        judged_start(&j, 1, good[i], "error");
        if (model[i] == NULL) {
            assert_null(ag_episode_judge(j.m.ep));
            size_t len = 1;
            assert_null(ag_episode_transcript(j.m.ep, 0, &len));
            assert_int_equal(len, 0);
        } else {
            assert_string_equal(ag_episode_judge(j.m.ep), model[i]);
        }
        ag_episode_destroy(&j.m.ep);
    }
    char longest[80] = "reward:", too_long[80] = "reward:";
    memset(longest + 7, 'a', AG_GAME_JUDGE_NAME_MAX);
    memset(too_long + 7, 'a', AG_GAME_JUDGE_NAME_MAX + 1);
    judged_t j;
    judged_start(&j, 1, longest, "error");
    assert_int_equal(strlen(ag_episode_judge(j.m.ep)), AG_GAME_JUDGE_NAME_MAX);
    ag_episode_destroy(&j.m.ep);

    const char *bad[] = {"",           "reward",     "reward:",         "reward: x",
                         "reward:a,b", "reward:a b", "Reward:x",        "rules",
                         "rule ",      "reward:\tx", "reward:\xc3\xa9", too_long};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ag_game_kv_t kv = {"judge", bad[i]};
        ag_episode_t *ep = NULL;
        char err[AG_GAME_ERR_CAP] = "";
        assert_int_equal(
            ag_episode_create(&ep, &ag_game_debate, 1, &kv, 1, NULL, 0, NULL, err, sizeof err),
            AG_GAME_EBADOPT);
        assert_null(ep);
        assert_non_null(strstr(err, "option judge must be rule or reward:NAME"));
    }
}

static void test_reward_held_step_and_transcripts(void **state)
{
    (void)state;
    judged_t j;
    judged_start(&j, 21, "reward:default", "error");
    assert_transcripts(&j);
    judged_claims(&j);
    assert_transcripts(&j);
    assert_int_equal(judged_act(&j, 0, "3"), 0);
    assert_false(j.m.res.ruling_pending);
    assert_int_equal(j.m.res.to_act, 1);
    /* The final step is held: nothing ends, nobody is to act, no reward yet. */
    assert_int_equal(judged_act(&j, 1, "5"), 0);
    assert_true(j.m.res.ruling_pending);
    assert_false(j.m.res.terminated);
    assert_int_equal(j.m.res.to_act, -1);
    assert_null(j.m.res.outcome);
    assert_true(j.m.res.rewards[0] == 0.0f && j.m.res.rewards[1] == 0.0f);
    assert_true(ag_episode_ruling_pending(j.m.ep));
    assert_false(ag_episode_terminated(j.m.ep));
    assert_int_equal(ag_episode_to_act(j.m.ep), -1);
    /* The transcripts the judge scores: exactly what each seat saw and wrote. */
    assert_transcripts(&j);
    assert_non_null(strstr(j.tr[1], "challenge step: 5"));
    assert_int_equal(strncmp(j.tr[0], "debate\ntask: ", 13), 0);
    for (int p = 0; p < 2; p++) {
        assert_int_equal(act(&j.m, p, "1"), AG_GAME_ERULING);
        assert_non_null(strstr(j.m.err, "ruling"));
    }

    /* Bad scores change nothing. */
    double nan_scores[2] = {NAN, 1.0}, inf_scores[2] = {0.0, INFINITY}, ok[2] = {0.5, -1.25};
    assert_int_equal(ag_episode_rule(j.m.ep, ok, 1, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_EINVAL);
    assert_int_equal(ag_episode_rule(j.m.ep, ok, 3, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_EINVAL);
    assert_int_equal(ag_episode_rule(j.m.ep, nan_scores, 2, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_EINVAL);
    assert_non_null(strstr(j.m.err, "finite"));
    assert_int_equal(ag_episode_rule(j.m.ep, inf_scores, 2, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_EINVAL);
    assert_true(ag_episode_ruling_pending(j.m.ep));

    /* The ruling: seat 0 scored higher, so seat 0 wins. */
    assert_int_equal(ag_episode_rule(j.m.ep, ok, 2, &j.m.res, j.m.err, sizeof j.m.err), 0);
    assert_true(j.m.res.terminated);
    assert_false(j.m.res.ruling_pending);
    assert_int_equal(j.m.res.to_act, -1);
    assert_string_equal(j.m.res.observation, "");
    assert_true(j.m.res.rewards[0] == 1.0f && j.m.res.rewards[1] == -1.0f);
    const ag_game_outcome_t *o = j.m.res.outcome;
    assert_non_null(o);
    assert_string_equal(info(o, "reason"), "reward");
    assert_string_equal(info(o, "winner"), "0");
    assert_string_equal(info(o, "judge_score0"), "0.5");
    assert_string_equal(info(o, "judge_score1"), "-1.25");
    assert_string_equal(info(o, "chain0"), j.claim[0]);
    assert_string_equal(info(o, "challenge1"), "5");
    assert_true(metric(o, "judge_accuracy") == (j.m.true_seat == 0));
    assert_true(metric(o, "rule_judge_agrees") == (rule_winner(21, &j, "3", "5") == 0));
    assert_true(ag_episode_terminated(j.m.ep));
    assert_int_equal(ag_episode_rule(j.m.ep, ok, 2, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_EINTERNAL);
    assert_int_equal(act(&j.m, 0, "1"), AG_GAME_EOVER);
    ag_episode_destroy(&j.m.ep);
}

/*
 * Over many seeds: the higher score wins whatever the step judge says; an
 * exact tie gets the episode's coin, the same one the step judge flips, so
 * on a coin game a tie always agrees with it. judge_accuracy and
 * rule_judge_agrees follow.
 */
static void test_reward_ruling_by_scores(void **state)
{
    (void)state;
    int tie_wins[2] = {0, 0}, disagreements = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        for (int c = 0; c < 4; c++) {
            judged_t j;
            judged_start(&j, seed, "reward:default", "error");
            judged_claims(&j);
            /* c 0..1: both challenge step 1 (both correct: the step judge flips its coin);
             * c 2..3: the true side catches the false chain's wrong last step. */
            char ch[2][8];
            for (int s = 0; s < 2; s++)
                snprintf(ch[s], sizeof ch[s], "%d", c >= 2 && s == j.m.true_seat ? 8 : 1);
            assert_int_equal(judged_act(&j, 0, ch[0]), 0);
            assert_int_equal(judged_act(&j, 1, ch[1]), 0);
            assert_true(j.m.res.ruling_pending);
            int step_winner = rule_winner(seed, &j, ch[0], ch[1]);
            double scores[2];
            int want;
            if (c % 2 == 0) { /* a tie */
                scores[0] = scores[1] = (double)seed - 100.0;
                want = -1;
            } else { /* the false side scores higher */
                scores[j.m.true_seat] = -0.25;
                scores[1 - j.m.true_seat] = 3.0;
                want = 1 - j.m.true_seat;
            }
            assert_int_equal(ag_episode_rule(j.m.ep, scores, 2, &j.m.res, j.m.err, sizeof j.m.err),
                             0);
            const ag_game_outcome_t *o = j.m.res.outcome;
            int winner = j.m.res.rewards[0] > 0 ? 0 : 1;
            char num[8];
            snprintf(num, sizeof num, "%d", winner);
            assert_string_equal(info(o, "winner"), num);
            assert_string_equal(info(o, "reason"), "reward");
            if (want >= 0)
                assert_int_equal(winner, want);
            if (c == 0) {
                tie_wins[winner]++;
                assert_int_equal(winner, step_winner);
            }
            if (c >= 2)
                assert_int_equal(step_winner, j.m.true_seat);
            assert_true(metric(o, "judge_accuracy") == (winner == j.m.true_seat));
            assert_true(metric(o, "rule_judge_agrees") == (winner == step_winner));
            disagreements += metric(o, "rule_judge_agrees") == 0.0;
            /* The scores are reported as given. */
            assert_true(strtod(info(o, "judge_score0"), NULL) == scores[0]);
            assert_true(strtod(info(o, "judge_score1"), NULL) == scores[1]);
            ag_episode_destroy(&j.m.ep);
        }
    }
    /* 200 fair coins: 100 +- 15 (sd 7). */
    assert_in_range(tie_wins[0], 70, 130);
    assert_true(disagreements > 100);
}

static void test_reward_cancel(void **state)
{
    (void)state;
    judged_t j, fresh;
    judged_start(&j, 33, "reward:default", "error");
    judged_claims(&j);
    assert_int_equal(judged_act(&j, 0, "2"), 0);
    char before[2][1024];
    size_t before_len[2];
    for (int s = 0; s < 2; s++) {
        const char *t = ag_episode_transcript(j.m.ep, s, &before_len[s]);
        memcpy(before[s], t, before_len[s] + 1);
    }
    /* Held, then cancelled: as before the step, several times over. */
    for (int round = 0; round < 3; round++) {
        assert_int_equal(act(&j.m, 1, "6"), 0);
        assert_true(j.m.res.ruling_pending);
        ag_episode_cancel_ruling(j.m.ep);
        assert_false(ag_episode_ruling_pending(j.m.ep));
        assert_int_equal(ag_episode_to_act(j.m.ep), 1);
        for (int s = 0; s < 2; s++) {
            size_t len;
            const char *t = ag_episode_transcript(j.m.ep, s, &len);
            assert_int_equal(len, before_len[s]);
            assert_string_equal(t, before[s]);
        }
        assert_int_equal(act(&j.m, 0, "1"), AG_GAME_ETURN);
        assert_int_equal(act(&j.m, 1, "x"), AG_GAME_EINVAL);
    }
    ag_episode_cancel_ruling(j.m.ep); /* nothing held: no-op */
    assert_int_equal(ag_episode_to_act(j.m.ep), 1);
    /* Another action after a cancel is judged like a first one. */
    assert_int_equal(judged_act(&j, 1, "7"), 0);
    assert_true(j.m.res.ruling_pending);
    assert_transcripts(&j);
    double tie[2] = {1.0, 1.0};
    assert_int_equal(ag_episode_rule(j.m.ep, tie, 2, &j.m.res, j.m.err, sizeof j.m.err), 0);

    /* Same outcome as an episode that never had a cancelled step (same coin). */
    judged_start(&fresh, 33, "reward:default", "error");
    judged_claims(&fresh);
    assert_int_equal(judged_act(&fresh, 0, "2"), 0);
    assert_int_equal(judged_act(&fresh, 1, "7"), 0);
    assert_int_equal(
        ag_episode_rule(fresh.m.ep, tie, 2, &fresh.m.res, fresh.m.err, sizeof fresh.m.err), 0);
    assert_true(fresh.m.res.rewards[0] == j.m.res.rewards[0]);
    assert_int_equal(fresh.m.res.outcome->num_info, j.m.res.outcome->num_info);
    for (int i = 0; i < j.m.res.outcome->num_info; i++)
        assert_string_equal(fresh.m.res.outcome->info[i].value, j.m.res.outcome->info[i].value);
    ag_episode_destroy(&j.m.ep);
    ag_episode_destroy(&fresh.m.ep);
}

/* A bot on seat 1: the client's last challenge makes the bot's due, and that one is held. */
static void test_reward_bot_seat(void **state)
{
    (void)state;
    ag_game_kv_t opts[2] = {{"judge", "reward:default"}, {"k", "6"}};
    const char *bots[2] = {"", "liar"};
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 8, opts, 2, bots, 2, &res, err, sizeof err), 0);
    match_t m = {0};
    read_claim_obs(&m, 0, res.observation);
    char c0[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 0, c0);
    assert_int_equal(ag_episode_step(ep, 0, c0, strlen(c0), &res, err, sizeof err), 0);
    assert_int_equal(res.to_act, 0);
    assert_false(res.ruling_pending);
    assert_int_equal(ag_episode_step(ep, 0, "2", 1, &res, err, sizeof err), 0);
    assert_true(res.ruling_pending);
    size_t len0, len1;
    const char *t1 = ag_episode_transcript(ep, 1, &len1);
    char bot_tr[1024];
    memcpy(bot_tr, t1, len1 + 1);
    /* The bot's view: its claim prompt, its chain, the challenge prompt, its step. */
    assert_int_equal(strncmp(bot_tr, "debate\ntask: ", 13), 0);
    assert_non_null(strstr(bot_tr, "\nopponent chain: "));
    assert_non_null(strstr(bot_tr, c0));
    assert_non_null(strstr(bot_tr, "\nchallenge step: "));
    const char *t0 = ag_episode_transcript(ep, 0, &len0);
    assert_non_null(strstr(t0, "challenge step: 2"));
    /* Cancel undoes the bot's move too, its rng included: the redo is the same. */
    ag_episode_cancel_ruling(ep);
    assert_int_equal(ag_episode_to_act(ep), 0);
    assert_true(ag_episode_transcript(ep, 1, &len1) != NULL && len1 < strlen(bot_tr));
    assert_int_equal(ag_episode_step(ep, 0, "2", 1, &res, err, sizeof err), 0);
    assert_true(res.ruling_pending);
    assert_string_equal(ag_episode_transcript(ep, 1, &len1), bot_tr);
    double scores[2] = {-2.0, 2.0};
    assert_int_equal(ag_episode_rule(ep, scores, 2, &res, err, sizeof err), 0);
    assert_true(res.terminated);
    assert_true(res.rewards[1] == 1.0f);
    ag_episode_destroy(&ep);
}

static void test_reward_refused_and_capped(void **state)
{
    (void)state;
    ag_game_kv_t judge = {"judge", "reward:default"};
    ag_transcript_t *tr = calloc(1, sizeof *tr);
    char err[AG_GAME_ERR_CAP] = "";
    assert_int_equal(ag_episode_demo(&ag_game_debate, 1, &judge, 1, NULL, 0, tr, err, sizeof err),
                     AG_GAME_EBADOPT);
    assert_non_null(strstr(err, "demos use"));
    ag_transcript_finish(tr);
    free(tr);
    ag_episode_t *ep = NULL;
    const char *bots[2] = {"honest", "liar"};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, &judge, 1, bots, 2, NULL, err, sizeof err),
        AG_GAME_EBADOPT);
    assert_null(ep);
    assert_non_null(strstr(err, "client"));

    /* penalize mode: a huge invalid action would be consumed, but it cannot fit the
     * transcript, so the step is refused and nothing changes. */
    judged_t j;
    judged_start(&j, 4, "reward:default", "penalize");
    size_t big_len = AG_EPISODE_TRANSCRIPT_MAX;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    assert_int_equal(ag_episode_step(j.m.ep, 0, big, big_len, &j.m.res, j.m.err, sizeof j.m.err),
                     AG_GAME_ELIMIT);
    assert_non_null(strstr(j.m.err, "65536"));
    free(big);
    assert_int_equal(ag_episode_to_act(j.m.ep), 0);
    assert_false(ag_episode_terminated(j.m.ep));
    assert_transcripts(&j);
    /* An invalid action that fits ends the game by the rules: no ruling, no scores. */
    assert_int_equal(judged_act(&j, 0, "not a chain"), 0);
    assert_true(j.m.res.terminated && j.m.res.invalid_action);
    assert_false(j.m.res.ruling_pending);
    const ag_game_outcome_t *o = j.m.res.outcome;
    assert_string_equal(info(o, "reason"), "invalid");
    assert_string_equal(info(o, "judge_score0"), "");
    assert_string_equal(info(o, "judge_score1"), "");
    for (int i = 0; i < o->num_metrics; i++)
        assert_string_not_equal(o->metrics[i].name, "rule_judge_agrees");
    ag_episode_destroy(&j.m.ep);
}

/* judge=rule (and the default) keeps the step judge's outcome exactly: no new keys. */
static void test_rule_judge_unchanged(void **state)
{
    (void)state;
    for (int explicit_rule = 0; explicit_rule < 2; explicit_rule++) {
        match_t m;
        if (explicit_rule) {
            judged_t j;
            judged_start(&j, 12, "rule", "error");
            m = j.m;
        } else {
            start(&m, 12, "8", "error");
        }
        char c[AG_CHAIN_TEXT_CAP];
        plain_claim(&m, 0, c);
        assert_int_equal(act(&m, 0, c), 0);
        read_claim_obs(&m, 1, m.res.observation);
        plain_claim(&m, 1, c);
        assert_int_equal(act(&m, 1, c), 0);
        assert_int_equal(act(&m, 0, "1"), 0);
        assert_int_equal(act(&m, 1, "1"), 0);
        assert_true(m.res.terminated);
        assert_false(m.res.ruling_pending);
        assert_int_equal(m.res.outcome->num_info, 9);
        assert_int_equal(m.res.outcome->num_metrics, 3);
        assert_string_equal(info(m.res.outcome, "reason"), "coin");
        ag_episode_destroy(&m.ep);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observations_and_transcript),
        cmocka_unit_test(test_observations_longest_k),
        cmocka_unit_test(test_judge_false_side_caught),
        cmocka_unit_test(test_judge_true_side_caught),
        cmocka_unit_test(test_judge_coin),
        cmocka_unit_test(test_invalid_error_mode),
        cmocka_unit_test(test_invalid_penalize_mode),
        cmocka_unit_test(test_not_your_turn),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_true_seat_and_false_answer),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_judge_option),
        cmocka_unit_test(test_reward_held_step_and_transcripts),
        cmocka_unit_test(test_reward_ruling_by_scores),
        cmocka_unit_test(test_reward_cancel),
        cmocka_unit_test(test_reward_bot_seat),
        cmocka_unit_test(test_reward_refused_and_capped),
        cmocka_unit_test(test_rule_judge_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
