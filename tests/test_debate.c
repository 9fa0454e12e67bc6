/*
 * test_debate.c - the debate rules through the episode API with a client on
 * both seats: exact observation texts, every judge case, invalid actions in
 * both modes, turn order, determinism, rewards only at the end, options, and
 * the final info and metrics.
 */
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

    char expect[AG_GAME_OBS_CAP], task_text[AG_TASK_TEXT_CAP];
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

static void test_observations_and_transcript(void **state)
{
    (void)state;
    match_t m;
    start(&m, 7, "8", "error");
    char c0[AG_CHAIN_TEXT_CAP], c1[AG_CHAIN_TEXT_CAP];
    plain_claim(&m, 0, c0);
    /* Seat 1 cannot be known before its observation; claim for seat 0 first. */
    assert_int_equal(act(&m, 0, c0), 0);
    read_claim_obs(&m, 1, m.res.observation);
    plain_claim(&m, 1, c1);
    assert_int_equal(act(&m, 1, c1), 0);
    char expect[AG_GAME_OBS_CAP];
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
    assert_true(metric(o, "true_side_won") == (winner == m->true_seat));
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
        assert_true(metric(o, "true_side_won") == 1.0);
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
        assert_true(metric(o, "true_side_won") == 0.0);
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
    assert_int_equal(g->num_options, 2);
    assert_string_equal(g->options[0].name, "k");
    assert_string_equal(g->options[0].default_value, "8");
    assert_int_equal(ag_game_bot_find(g, "random-challenge"), 2);
    assert_int_equal(ag_game_bot_find(g, "nobody"), -1);
    assert_string_equal(g->demo_bots[0], "random-challenge");
    assert_string_equal(g->demo_bots[1], "random-challenge");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observations_and_transcript),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
