/*
 * test_critique.c - the critique rules through the episode API with a client
 * on both seats: exact observation texts, verdict rewards in every case,
 * revisions, the rounds limit, the solver's end reward with the improvement
 * bonus, invalid actions in both modes, options, info and metrics.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "game_outcome.h"

#include "episode.h"
#include "task.h"

typedef struct match {
    ag_episode_t *ep;
    ag_episode_result_t res;
    ag_task_t task;
    uint8_t truth[AG_TASK_MAX_K];
    char task_text[AG_TASK_TEXT_CAP];
    float total[2];
    char err[AG_GAME_ERR_CAP];
} match_t;

/* Starts with options "key=value" pairs (NULL-terminated list of key, value). */
static void start(match_t *m, uint64_t seed, const char *const *kv)
{
    memset(m, 0, sizeof *m);
    ag_game_kv_t opts[8];
    size_t n = 0;
    for (; kv != NULL && kv[2 * n] != NULL; n++)
        opts[n] = (ag_game_kv_t){kv[2 * n], kv[2 * n + 1]};
    assert_int_equal(ag_episode_create(&m->ep, &ag_game_critique, seed, opts, n, NULL, 0, &m->res,
                                       m->err, sizeof m->err),
                     0);
    assert_int_equal(m->res.to_act, 0);
    const char *obs = m->res.observation;
    const char *p = strstr(obs, "task: ");
    assert_non_null(p);
    p += 6;
    ag_task_t t = {.x0 = (uint8_t)(*p++ - '0')};
    while (*p == ' ') {
        t.op[t.k] = p[1];
        t.arg[t.k] = (uint8_t)(p[2] - '0');
        t.k++;
        p += 3;
    }
    m->task = t;
    ag_task_chain(&t, m->truth);
    ag_task_render(&t, m->task_text, sizeof m->task_text);
    char expect[TEST_OBS_CAP];
    snprintf(expect, sizeof expect, "critique\ntask: %s\nyour chain: ", m->task_text);
    assert_string_equal(obs, expect);
}

static int act(match_t *m, int player, const char *action)
{
    int rc = ag_episode_step(m->ep, player, action, strlen(action), &m->res, m->err, sizeof m->err);
    if (rc == 0)
        for (int s = 0; s < 2; s++)
            m->total[s] += m->res.rewards[s];
    return rc;
}

/* The true chain with step `wrong` (1-based, 0 = none) bumped, later steps recomputed. */
static void chain_with_error(const match_t *m, int wrong, char *buf)
{
    uint8_t c[AG_TASK_MAX_K];
    uint8_t x = m->task.x0;
    for (int i = 0; i < m->task.k; i++) {
        x = ag_task_apply(m->task.op[i], m->task.arg[i], x);
        if (i + 1 == wrong)
            x = (uint8_t)((x + 1) % 10);
        c[i] = x;
    }
    ag_chain_render(c, m->task.k, buf, AG_CHAIN_TEXT_CAP);
}

static void expect_critic_obs(const match_t *m, bool first, const char *chain)
{
    char expect[TEST_OBS_CAP];
    if (first)
        snprintf(expect, sizeof expect,
                 "critique\ntask: %s\nsolver chain: %s\nverdict: ", m->task_text, chain);
    else
        snprintf(expect, sizeof expect, "\nsolver chain: %s\nverdict: ", chain);
    assert_int_equal(m->res.to_act, 1);
    assert_string_equal(m->res.observation, expect);
}

/* After `step i` on chain (text "d d ... d"): the rest as a task of its own, the chain's
 * step i-1 (x0 for i = 1) and the task text's operations i..k ("x0 op1 op2 ..."). */
static void expect_revise_obs(const match_t *m, int i, const char *chain)
{
    char expect[TEST_OBS_CAP];
    char prev = i == 1 ? m->task_text[0] : chain[2 * (i - 2)];
    snprintf(expect, sizeof expect,
             "\ncritic: step %d\nrevise from step %d\ntask: %c%s\nyour chain: ", i, i, prev,
             m->task_text + 1 + 3 * (i - 1));
    assert_int_equal(m->res.to_act, 0);
    assert_string_equal(m->res.observation, expect);
}

static void expect_rewards(const match_t *m, float solver, float critic)
{
    assert_true(fabsf(m->res.rewards[0] - solver) < 1e-6f);
    assert_true(fabsf(m->res.rewards[1] - critic) < 1e-6f);
}

static void test_correct_then_ok(void **state)
{
    (void)state;
    match_t m;
    start(&m, 1, NULL);
    assert_int_equal(m.task.k, 6);
    char c[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 0, c);
    assert_int_equal(act(&m, 0, c), 0);
    expect_rewards(&m, 0, 0);
    expect_critic_obs(&m, true, c);
    assert_int_equal(act(&m, 1, " ok\n"), 0);
    assert_true(m.res.terminated);
    expect_rewards(&m, 1, 1);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "task"), m.task_text);
    assert_string_equal(info(o, "truth"), c);
    assert_string_equal(info(o, "first_chain"), c);
    assert_string_equal(info(o, "final_chain"), c);
    assert_string_equal(info(o, "rounds_used"), "0");
    assert_string_equal(info(o, "verdicts"), "ok");
    char ans[4];
    snprintf(ans, sizeof ans, "%d", m.truth[5]);
    assert_string_equal(info(o, "answer"), ans);
    assert_true(metric(o, "first_accuracy") == 1 && metric(o, "final_accuracy") == 1);
    assert_true(metric(o, "fixed") == 0 && metric(o, "broken") == 0);
    assert_true(metric(o, "critic_tn") == 1 && metric(o, "critic_tp") == 0);
    assert_true(metric(o, "critic_fp") == 0 && metric(o, "critic_fn") == 0);
    assert_true(metric(o, "critic_correct_verdicts") == 1);
    assert_true(metric(o, "critic_flags") == 0 && metric(o, "critic_errors") == 0);
    ag_episode_destroy(&m.ep);
}

static void test_fix_with_bonus(void **state)
{
    (void)state;
    const char *opts[] = {"improve_bonus", "0.5", NULL};
    match_t m;
    start(&m, 2, opts);
    char wrong[AG_CHAIN_TEXT_CAP], right[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 3, wrong);
    chain_with_error(&m, 0, right);
    assert_int_equal(act(&m, 0, wrong), 0);
    assert_int_equal(act(&m, 1, "step 3"), 0);
    expect_rewards(&m, 0, 1);
    expect_revise_obs(&m, 3, wrong);
    /* Steps 3..6 of the right chain: "d d d d" starting at offset 4 of "d d d d d d". */
    assert_int_equal(act(&m, 0, right + 2), AG_GAME_EINVAL); /* 5 digits */
    assert_non_null(strstr(m.err, "expected 4 digits"));
    assert_int_equal(act(&m, 0, right + 4), 0);
    expect_critic_obs(&m, false, right);
    assert_int_equal(act(&m, 1, "ok"), 0);
    assert_true(m.res.terminated);
    expect_rewards(&m, 1.5f, 1);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "first_chain"), wrong);
    assert_string_equal(info(o, "final_chain"), right);
    assert_string_equal(info(o, "rounds_used"), "1");
    assert_string_equal(info(o, "verdicts"), "step 3,ok");
    assert_string_equal(info(o, "reason"), "ok");
    assert_true(metric(o, "fixed") == 1 && metric(o, "broken") == 0);
    assert_true(metric(o, "first_accuracy") == 0 && metric(o, "final_accuracy") == 1);
    assert_true(metric(o, "critic_tp") == 1 && metric(o, "critic_tn") == 1);
    assert_true(metric(o, "critic_correct_verdicts") == 2);
    assert_true(m.total[0] == 1.5f && m.total[1] == 2.0f);
    ag_episode_destroy(&m.ep);
}

static void test_rounds_limit_and_wrong_index(void **state)
{
    (void)state;
    const char *opts[] = {"rounds", "1", "improve_bonus", "1", NULL};
    match_t m;
    start(&m, 3, opts);
    char wrong[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 3, wrong);
    assert_int_equal(act(&m, 0, wrong), 0);
    /* A wrong chain blamed on the wrong step: 0. */
    assert_int_equal(act(&m, 1, "step\t5"), 0);
    expect_rewards(&m, 0, 0);
    expect_revise_obs(&m, 5, wrong);
    assert_int_equal(act(&m, 0, wrong + 8), 0); /* keeps steps 5..6: step 3 still wrong */
    expect_critic_obs(&m, false, wrong);
    assert_int_equal(act(&m, 1, "step 3"), 0);
    /* Rounds used up: the game ends on the verdict, solver paid 0 + 1 * (0 - 0). */
    assert_true(m.res.terminated);
    expect_rewards(&m, 0, 1);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "reason"), "rounds");
    assert_string_equal(info(o, "rounds_used"), "1");
    assert_string_equal(info(o, "verdicts"), "step 5,step 3");
    assert_true(metric(o, "critic_tp") == 2 && metric(o, "critic_correct_verdicts") == 1);
    assert_true(metric(o, "fixed") == 0 && metric(o, "broken") == 0);
    ag_episode_destroy(&m.ep);
}

static void test_false_alarm_missed_error_broken(void **state)
{
    (void)state;
    const char *opts[] = {"improve_bonus", "1", NULL};
    match_t m;
    char right[AG_CHAIN_TEXT_CAP], wrong[AG_CHAIN_TEXT_CAP];

    /* Missed error: ok on a wrong chain. */
    start(&m, 4, opts);
    chain_with_error(&m, 6, wrong);
    assert_int_equal(act(&m, 0, wrong), 0);
    assert_int_equal(act(&m, 1, "ok"), 0);
    assert_true(m.res.terminated);
    expect_rewards(&m, 0, -1);
    assert_true(metric(m.res.outcome, "critic_fn") == 1);
    assert_true(metric(m.res.outcome, "critic_correct_verdicts") == 0);
    assert_true(metric(m.res.outcome, "critic_flags") == 0);
    assert_true(metric(m.res.outcome, "critic_errors") == 1);
    ag_episode_destroy(&m.ep);

    /* False alarm on a correct chain, the solver breaks it, the critic misses it. */
    start(&m, 5, opts);
    chain_with_error(&m, 0, right);
    chain_with_error(&m, 2, wrong);
    assert_int_equal(act(&m, 0, right), 0);
    assert_int_equal(act(&m, 1, "step 1"), 0);
    expect_rewards(&m, 0, -1);
    assert_int_equal(act(&m, 0, wrong), 0); /* all 6 digits from step 1 */
    expect_critic_obs(&m, false, wrong);
    assert_int_equal(act(&m, 1, "ok"), 0);
    assert_true(m.res.terminated);
    expect_rewards(&m, -1, -1); /* solver: 0 + 1 * (0 - 1) */
    const ag_game_outcome_t *o = m.res.outcome;
    assert_true(metric(o, "broken") == 1 && metric(o, "fixed") == 0);
    assert_true(metric(o, "critic_fp") == 1 && metric(o, "critic_fn") == 1);
    assert_true(metric(o, "critic_flags") == 1 && metric(o, "critic_errors") == 1);
    assert_true(m.total[1] == -2.0f);
    ag_episode_destroy(&m.ep);
}

static void test_max_rounds_turn_count(void **state)
{
    (void)state;
    const char *opts[] = {"rounds", "8", "k", "32", NULL};
    match_t m;
    start(&m, 6, opts);
    char wrong[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 1, wrong);
    assert_int_equal(act(&m, 0, wrong), 0);
    int turns = 1;
    for (int r = 0; r < 8; r++) {
        assert_int_equal(act(&m, 1, "step 32"), 0);
        expect_rewards(&m, 0, 0);
        assert_false(m.res.terminated);
        assert_int_equal(act(&m, 0, wrong + 62), 0);
        turns += 2;
    }
    assert_int_equal(act(&m, 1, "step 1"), 0);
    turns++;
    assert_true(m.res.terminated);
    assert_int_equal(turns, 18);
    assert_string_equal(info(m.res.outcome, "rounds_used"), "8");
    assert_true(metric(m.res.outcome, "critic_tp") == 9);
    assert_int_equal(act(&m, 1, "ok"), AG_GAME_EOVER);
    ag_episode_destroy(&m.ep);
}

/* k = 32: the longest texts arrive whole (the task, 32-digit chains, a revision of every step). */
static void test_longest_observations(void **state)
{
    (void)state;
    const char *opts[] = {"k", "32", NULL};
    match_t m;
    start(&m, 11, opts); /* checks the solver's first observation */
    char wrong[AG_CHAIN_TEXT_CAP], right[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 1, wrong);
    chain_with_error(&m, 0, right);
    assert_int_equal(strlen(wrong), 63);
    assert_int_equal(act(&m, 0, wrong), 0);
    expect_critic_obs(&m, true, wrong);
    assert_int_equal(act(&m, 1, "step 1"), 0);
    expect_revise_obs(&m, 1, wrong);
    assert_int_equal(act(&m, 0, right), 0);
    expect_critic_obs(&m, false, right);
    assert_int_equal(act(&m, 1, "ok"), 0);
    assert_true(m.res.terminated);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "task"), m.task_text);
    assert_string_equal(info(o, "first_chain"), wrong);
    assert_string_equal(info(o, "final_chain"), right);
    assert_string_equal(info(o, "verdicts"), "step 1,ok");
    /* one flag, on a wrong chain; one wrong chain judged, flagged */
    assert_true(metric(o, "critic_tp") == 1 && metric(o, "critic_tn") == 1);
    assert_true(metric(o, "critic_flags") == 1 && metric(o, "critic_errors") == 1);
    assert_true(metric(o, "fixed") == 1 && metric(o, "final_accuracy") == 1);
    ag_episode_destroy(&m.ep);
}

static void test_invalid_error_mode(void **state)
{
    (void)state;
    match_t m;
    start(&m, 7, NULL);
    char c[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 2, c);
    const char *bad_chains[] = {"", "1 2 3", "1 2 3 4 5 6 7", "ok", "step 1"};
    for (size_t i = 0; i < sizeof bad_chains / sizeof bad_chains[0]; i++)
        assert_int_equal(act(&m, 0, bad_chains[i]), AG_GAME_EINVAL);
    assert_int_equal(act(&m, 1, "ok"), AG_GAME_ETURN);
    assert_int_equal(act(&m, 0, c), 0);
    const char *bad_verdicts[] = {
        "",      "Ok",      "OK",      "ok ok", "step", "step 0",   "step 7",
        "step3", "step -1", "steps 2", "2",     "ok.",  "step 2 3", "step 99999999999999999999"};
    for (size_t i = 0; i < sizeof bad_verdicts / sizeof bad_verdicts[0]; i++) {
        assert_int_equal(act(&m, 1, bad_verdicts[i]), AG_GAME_EINVAL);
        assert_non_null(strstr(m.err, "'ok' or 'step i'"));
    }
    assert_int_equal(ag_episode_step(m.ep, 1, "ok\0", 3, &m.res, m.err, sizeof m.err),
                     AG_GAME_EINVAL);
    assert_int_equal(act(&m, 1, "step 2"), 0);
    expect_rewards(&m, 0, 1);
    ag_episode_destroy(&m.ep);
}

static void test_invalid_penalize_mode(void **state)
{
    (void)state;
    const char *opts[] = {"invalid_action", "penalize", NULL};
    match_t m;
    start(&m, 8, opts);
    assert_int_equal(act(&m, 0, "no idea"), 0);
    assert_true(m.res.terminated && m.res.invalid_action);
    expect_rewards(&m, -1, 0);
    assert_string_equal(info(m.res.outcome, "reason"), "invalid");
    assert_string_equal(info(m.res.outcome, "first_chain"), "");
    ag_episode_destroy(&m.ep);

    /* A critic's invalid verdict: -1 for it; the solver is still paid for its chain. */
    start(&m, 8, opts);
    char c[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 0, c);
    assert_int_equal(act(&m, 0, c), 0);
    assert_false(m.res.invalid_action);
    assert_int_equal(act(&m, 1, "looks fine"), 0);
    assert_true(m.res.terminated && m.res.invalid_action);
    expect_rewards(&m, 1, -1);
    assert_string_equal(info(m.res.outcome, "verdicts"), "");
    ag_episode_destroy(&m.ep);
}

static void test_options(void **state)
{
    (void)state;
    struct {
        const char *key, *value;
    } bad[] = {{"rounds", "0"},
               {"rounds", "9"},
               {"solver_error", "-0.1"},
               {"solver_error", "1.5"},
               {"solver_error", "nan"},
               {"solver_error", "0.1x"},
               {"solver_error", ""},
               {"revision_error", "-1.5"},
               {"revision_error", "2"},
               {"improve_bonus", "-1"},
               {"improve_bonus", "inf"},
               {"k", "1"},
               {"invalid_action", "warn"},
               {"critic", "steps"},
               {"seed", "3"}};
    char err[AG_GAME_ERR_CAP];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ag_episode_t *ep = NULL;
        ag_game_kv_t kv = {bad[i].key, bad[i].value};
        assert_int_equal(
            ag_episode_create(&ep, &ag_game_critique, 1, &kv, 1, NULL, 0, NULL, err, sizeof err),
            AG_GAME_EBADOPT);
        assert_null(ep);
    }
    const char *ok[] = {"rounds", "8", "solver_error", "1", "improve_bonus", "2.5", "k", "2", NULL};
    match_t m;
    start(&m, 9, ok);
    assert_int_equal(m.task.k, 2);
    ag_episode_destroy(&m.ep);

    const ag_game_t *g = ag_game_find("critique");
    assert_int_equal(g->num_players, 2);
    assert_string_equal(g->roles[0], "solver");
    assert_string_equal(g->roles[1], "critic");
    assert_int_equal(g->num_options, 7);
    /* critic=steps bounds the turns a game can take */
    ag_episode_t *ep = NULL;
    ag_game_kv_t many[] = {{"critic", "redo"}, {"k", "8"}, {"rounds", "3"}};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_critique, 1, many, 3, NULL, 0, NULL, err, sizeof err),
        AG_GAME_EBADOPT);
    assert_non_null(strstr(err, "critic=redo"));
    ag_game_kv_t fits[] = {{"critic", "redo"}, {"k", "7"}, {"rounds", "3"}};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_critique, 1, fits, 3, NULL, 0, NULL, err, sizeof err), 0);
    ag_episode_destroy(&ep);
    assert_string_equal(g->demo_bots[0], "solver");
    assert_string_equal(g->demo_bots[1], "critic-perfect");
}

/* critic=redo: the check observation of step i of chain text "d d ... d". */
static void expect_check_obs(const match_t *m, bool first, int i, const char *chain)
{
    char expect[64];
    char prev = i == 1 ? (char)('0' + m->task.x0) : chain[2 * (i - 2)];
    snprintf(expect, sizeof expect, "%s\n%d: %c%c%d=", first ? "critique" : "", i, prev,
             m->task.op[i - 1], m->task.arg[i - 1]);
    assert_int_equal(m->res.to_act, 1);
    assert_string_equal(m->res.observation, expect);
}

/* The critic's answer for step i of chain text: the right result from the chain's step i-1
 * (bumped by `off`, so off = 1 is a wrong result), as text. */
static const char *redo(const match_t *m, int i, const char *chain, int off)
{
    static char buf[4];
    uint8_t prev = i == 1 ? m->task.x0 : (uint8_t)(chain[2 * (i - 2)] - '0');
    uint8_t r = ag_task_apply(m->task.op[i - 1], m->task.arg[i - 1], prev);
    snprintf(buf, sizeof buf, "%d", (r + off) % 10);
    return buf;
}

/* critic=redo: one step redone per turn, each paid +1 right / -1 wrong; the first result
 * that differs from the chain's is the verdict `step i`, after a revision from step i the
 * checks resume at step i. */
static void test_redo_fix(void **state)
{
    (void)state;
    const char *opts[] = {"critic", "redo", "improve_bonus", "0.5", NULL};
    match_t m;
    start(&m, 2, opts);
    char wrong[AG_CHAIN_TEXT_CAP], right[AG_CHAIN_TEXT_CAP];
    chain_with_error(&m, 3, wrong);
    chain_with_error(&m, 0, right);
    assert_int_equal(act(&m, 0, wrong), 0);
    expect_check_obs(&m, true, 1, wrong);
    char padded[8];
    snprintf(padded, sizeof padded, " %s\n", redo(&m, 1, wrong, 0));
    assert_int_equal(act(&m, 1, padded), 0);
    expect_rewards(&m, 0, 1);
    expect_check_obs(&m, false, 2, wrong);
    assert_int_equal(act(&m, 1, redo(&m, 2, wrong, 0)), 0);
    expect_check_obs(&m, false, 3, wrong);
    assert_int_equal(act(&m, 1, redo(&m, 3, wrong, 0)), 0); /* differs from the chain's 3 */
    expect_rewards(&m, 0, 1);
    expect_revise_obs(&m, 3, wrong);
    assert_int_equal(act(&m, 0, right + 4), 0);
    for (int i = 3; i <= 6; i++) {
        expect_check_obs(&m, false, i, right);
        assert_false(m.res.terminated);
        assert_int_equal(act(&m, 1, redo(&m, i, right, 0)), 0);
    }
    assert_true(m.res.terminated);
    expect_rewards(&m, 1.5f, 1);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "verdicts"), "step 3,ok");
    assert_string_equal(info(o, "reason"), "ok");
    assert_true(metric(o, "fixed") == 1 && metric(o, "critic_tp") == 1 &&
                metric(o, "critic_tn") == 1 && metric(o, "critic_correct_verdicts") == 2);
    assert_true(metric(o, "critic_checks") == 7 && metric(o, "critic_right_checks") == 7);
    assert_true(m.total[1] == 7.0f);
    ag_episode_destroy(&m.ep);
}

/* critic=redo: a wrong result equal to the chain's wrong step misses it (the later checks go
 * on from the chain's own values); a wrong result on a correct step is a false alarm; bad
 * answers are refused or penalised. */
static void test_redo_errors(void **state)
{
    (void)state;
    const char *opts[] = {"critic", "redo", "rounds", "1", NULL};
    match_t m;
    char wrong[AG_CHAIN_TEXT_CAP], right[AG_CHAIN_TEXT_CAP];
    start(&m, 5, opts);
    chain_with_error(&m, 2, wrong);
    chain_with_error(&m, 0, right);
    assert_int_equal(act(&m, 0, wrong), 0);
    const char *bad[] = {"", "ok", "no", "12", "1 2", "x", "-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(act(&m, 1, bad[i]), AG_GAME_EINVAL);
        assert_non_null(strstr(m.err, "one digit 0-9, the result of step 1"));
    }
    assert_int_equal(act(&m, 1, redo(&m, 1, wrong, 0)), 0);
    /* step 2 is the chain's bumped digit: the same wrong digit agrees with it (missed) */
    assert_int_equal(act(&m, 1, redo(&m, 2, wrong, 1)), 0);
    expect_rewards(&m, 0, -1);
    /* step 3 is right from the wrong 2; a wrong result there is a false alarm on it */
    assert_int_equal(act(&m, 1, redo(&m, 3, wrong, 5)), 0);
    expect_rewards(&m, 0, -1);
    expect_revise_obs(&m, 3, wrong);
    assert_int_equal(act(&m, 0, wrong + 4), 0);
    for (int i = 3; i <= 5; i++)
        assert_int_equal(act(&m, 1, redo(&m, i, wrong, 0)), 0);
    assert_int_equal(act(&m, 1, redo(&m, 6, wrong, 2)), 0); /* rounds used up: the end */
    assert_true(m.res.terminated);
    expect_rewards(&m, 0, -1);
    const ag_game_outcome_t *o = m.res.outcome;
    assert_string_equal(info(o, "verdicts"), "step 3,step 6");
    assert_string_equal(info(o, "reason"), "rounds");
    assert_true(metric(o, "critic_tp") == 2 && metric(o, "critic_correct_verdicts") == 0);
    assert_true(metric(o, "critic_checks") == 7 && metric(o, "critic_right_checks") == 4);
    ag_episode_destroy(&m.ep);

    const char *pen[] = {"critic", "redo", "invalid_action", "penalize", NULL};
    start(&m, 6, pen);
    chain_with_error(&m, 0, right);
    assert_int_equal(act(&m, 0, right), 0);
    assert_int_equal(act(&m, 1, "maybe"), 0);
    assert_true(m.res.terminated && m.res.invalid_action);
    expect_rewards(&m, 1, -1);
    ag_episode_destroy(&m.ep);
}

/* critic=redo demos: the perfect critic gets every check right, finds every wrong chain's
 * first wrong step, and a game never takes more turns than a transcript holds. */
static void test_redo_demos(void **state)
{
    (void)state;
    static ag_transcript_t tr;
    ag_game_kv_t opts[] = {{"critic", "redo"}, {"solver_error", "0.3"}};
    char err[AG_GAME_ERR_CAP];
    double flagged = 0, wrong_first = 0;
    for (uint64_t seed = 0; seed < 300; seed++) {
        assert_int_equal(
            ag_episode_demo(&ag_game_critique, seed, opts, 2, NULL, 0, &tr, err, sizeof err), 0);
        const ag_game_outcome_t *o = &tr.outcome;
        assert_true(metric(o, "critic_checks") >= 1);
        assert_true(metric(o, "critic_right_checks") == metric(o, "critic_checks"));
        assert_true(metric(o, "critic_fp") == 0 && metric(o, "critic_fn") == 0);
        assert_true(tr.num_turns <= AG_GAME_MAX_TURNS);
        flagged += metric(o, "critic_tp") > 0;
        wrong_first += metric(o, "first_accuracy") == 0;
    }
    assert_true(wrong_first > 100 && flagged == wrong_first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_correct_then_ok),
        cmocka_unit_test(test_fix_with_bonus),
        cmocka_unit_test(test_rounds_limit_and_wrong_index),
        cmocka_unit_test(test_false_alarm_missed_error_broken),
        cmocka_unit_test(test_max_rounds_turn_count),
        cmocka_unit_test(test_longest_observations),
        cmocka_unit_test(test_invalid_error_mode),
        cmocka_unit_test(test_invalid_penalize_mode),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_redo_fix),
        cmocka_unit_test(test_redo_errors),
        cmocka_unit_test(test_redo_demos),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
