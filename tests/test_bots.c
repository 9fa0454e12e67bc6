/*
 * test_bots.c - the scripted bots of debate and critique, measured over
 * many seeded games: the honest true side always wins, random challenges
 * against a one-wrong-step liar win 1/8 + 7/8 * 1/2 = 0.5625 at k = 8, every
 * bot claim is valid, the solver bot slips at its configured rate and the
 * perfect critic is always right.
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

static ag_transcript_t s_tr;


static ag_task_t parse_task(const char *p)
{
    ag_task_t t = {.x0 = (uint8_t)(*p++ - '0')};
    while (*p == ' ') {
        t.op[t.k] = p[1];
        t.arg[t.k] = (uint8_t)(p[2] - '0');
        t.k++;
        p += 3;
    }
    return t;
}

static void parse_chain(const char *text, int k, uint8_t *out)
{
    assert_int_equal(ag_chain_parse(text, strlen(text), k, out), 0);
}

static int count_wrong(const ag_task_t *t, const uint8_t *chain)
{
    int n = 0;
    for (int i = 1; i <= t->k; i++)
        n += !ag_task_step_ok(t, chain, i);
    return n;
}

/* Records a demo of g with bots b0, b1 in *tr. */
static void demo_into(ag_transcript_t *tr, const ag_game_t *g, uint64_t seed, const char *b0,
                      const char *b1, const ag_game_kv_t *opts, size_t n_opts)
{
    const char *bots[2] = {b0, b1};
    char err[AG_GAME_ERR_CAP];
    int rc = ag_episode_demo(g, seed, opts, n_opts, bots, 2, tr, err, sizeof err);
    if (rc != 0)
        fail_msg("demo failed: %s", err);
    assert_true(tr->num_turns > 0);
}

static void demo(const ag_game_t *g, uint64_t seed, const char *b0, const char *b1,
                 const ag_game_kv_t *opts, size_t n_opts)
{
    demo_into(&s_tr, g, seed, b0, b1, opts, n_opts);
}

static void test_honest_true_side_always_wins(void **state)
{
    (void)state;
    const char *opponents[] = {"honest", "liar", "random-challenge"};
    int games = 0;
    for (uint64_t seed = 0; seed < 3000; seed++) {
        const char *opp = opponents[seed % 3];
        for (int honest_seat = 0; honest_seat < 2; honest_seat++) {
            demo(&ag_game_debate, seed, honest_seat == 0 ? "honest" : opp,
                 honest_seat == 1 ? "honest" : opp, NULL, 0);
            const ag_game_outcome_t *o = &s_tr.outcome;
            if (atoi(info(o, "true_seat")) != honest_seat)
                continue;
            games++;
            assert_true(metric(o, "judge_accuracy") == 1.0);
            assert_true(metric(o, "liar_caught") == 1.0);
            assert_string_equal(info(o, "reason"), "step");
            assert_true(s_tr.returns[honest_seat] == 1.0f);
        }
    }
    assert_in_range(games, 2700, 3300);
}

static void test_random_challenge_baseline(void **state)
{
    (void)state;
    ag_game_kv_t k8 = {"k", "8"};
    const int n = 4000;
    int true_won = 0;
    for (uint64_t seed = 0; seed < (uint64_t)n; seed++) {
        demo(&ag_game_debate, seed, NULL, NULL, &k8, 1);
        const ag_game_outcome_t *o = &s_tr.outcome;
        true_won += metric(o, "judge_accuracy") == 1.0;
        /* The claims: the true chain, and a chain with exactly one wrong step. */
        ag_task_t t = parse_task(info(o, "task"));
        int ts = atoi(info(o, "true_seat"));
        uint8_t c[2][AG_TASK_MAX_K];
        parse_chain(info(o, "chain0"), 8, c[0]);
        parse_chain(info(o, "chain1"), 8, c[1]);
        assert_int_equal(count_wrong(&t, c[ts]), 0);
        assert_int_equal(count_wrong(&t, c[1 - ts]), 1);
        assert_true(metric(o, "honest_chain_correct") == 1.0);
    }
    double p = (double)true_won / n, expect = 1.0 / 8 + 7.0 / 8 * 0.5;
    double se = sqrt(expect * (1 - expect) / n);
    print_message("random-challenge vs liar, k=8: true side won %.4f over %d games "
                  "(expected %.4f, se %.4f)\n",
                  p, n, expect, se);
    assert_true(fabs(p - expect) < 4 * se);
}

static void test_claims_valid_all_k(void **state)
{
    (void)state;
    const char *bots[] = {"honest", "liar", "random-challenge"};
    int wrong_pos_hist[AG_TASK_MAX_K + 1] = {0};
    for (int k = 2; k <= AG_TASK_MAX_K; k++) {
        char kv[8];
        snprintf(kv, sizeof kv, "%d", k);
        ag_game_kv_t opt = {"k", kv};
        for (uint64_t seed = 0; seed < 150; seed++) {
            const char *b = bots[seed % 3];
            demo(&ag_game_debate, seed * 77 + (uint64_t)k, b, b, &opt, 1);
            const ag_game_outcome_t *o = &s_tr.outcome;
            ag_task_t t = parse_task(info(o, "task"));
            assert_int_equal(t.k, k);
            int ts = atoi(info(o, "true_seat"));
            uint8_t c[2][AG_TASK_MAX_K], truth[AG_TASK_MAX_K];
            ag_task_chain(&t, truth);
            parse_chain(info(o, "chain0"), k, c[0]);
            parse_chain(info(o, "chain1"), k, c[1]);
            assert_memory_equal(c[ts], truth, (size_t)k);
            assert_int_equal(count_wrong(&t, c[1 - ts]), 1);
            assert_true(c[1 - ts][k - 1] != truth[k - 1]);
            int w = ag_task_first_wrong(&t, c[1 - ts]);
            if (seed % 3 == 0) { /* honest: only the last step changed */
                assert_int_equal(w, k);
                assert_memory_equal(c[1 - ts], truth, (size_t)(k - 1));
            }
            if (k == 8 && seed % 3 != 0)
                wrong_pos_hist[w]++;
        }
    }
    /* The liar's wrong step is spread over the chain, not always the last one. */
    int spread = 0;
    for (int i = 1; i <= 8; i++)
        spread += wrong_pos_hist[i] > 0;
    assert_true(spread >= 5);
}

static void test_honest_challenge_of_correct_chain_is_random(void **state)
{
    (void)state;
    /* The honest false side faces a correct chain: its challenge is uniform. */
    int seen[9] = {0};
    ag_game_kv_t k8 = {"k", "8"};
    for (uint64_t seed = 0; seed < 800; seed++) {
        demo(&ag_game_debate, seed, "honest", "honest", &k8, 1);
        int ts = atoi(info(&s_tr.outcome, "true_seat"));
        const char *key = ts == 0 ? "challenge1" : "challenge0";
        int ch = atoi(info(&s_tr.outcome, key));
        assert_in_range(ch, 1, 8);
        seen[ch]++;
        const char *true_key = ts == 0 ? "challenge0" : "challenge1";
        assert_string_equal(info(&s_tr.outcome, true_key), "8");
    }
    for (int i = 1; i <= 8; i++)
        assert_in_range(seen[i], 60, 140); /* 100 each */
}

static void test_solver_error_rate(void **state)
{
    (void)state;
    const double rates[] = {0.0, 0.3, 1.0};
    for (int r = 0; r < 3; r++) {
        char v[16];
        snprintf(v, sizeof v, "%g", rates[r]);
        ag_game_kv_t opts[2] = {{"solver_error", v}, {"k", "6"}};
        long steps = 0, wrong = 0;
        for (uint64_t seed = 0; seed < 2000; seed++) {
            demo(&ag_game_critique, seed, "solver", "critic-perfect", opts, 2);
            ag_task_t t = parse_task(info(&s_tr.outcome, "task"));
            uint8_t c[AG_TASK_MAX_K];
            parse_chain(info(&s_tr.outcome, "first_chain"), 6, c);
            steps += 6;
            wrong += count_wrong(&t, c);
        }
        double p = (double)wrong / (double)steps;
        double se = sqrt(rates[r] * (1 - rates[r]) / (double)steps);
        print_message("solver_error %.1f: measured %.4f over %ld steps\n", rates[r], p, steps);
        assert_true(fabs(p - rates[r]) <= 4 * se + 1e-12);
    }
}

static void test_perfect_critic_always_right(void **state)
{
    (void)state;
    ag_game_kv_t opts[2] = {{"solver_error", "0.2"}, {"rounds", "3"}};
    int fixed = 0, first_wrong = 0;
    for (uint64_t seed = 0; seed < 2000; seed++) {
        demo(&ag_game_critique, seed, NULL, NULL, opts, 2);
        const ag_game_outcome_t *o = &s_tr.outcome;
        int verdicts = 0;
        for (int i = 0; i < s_tr.num_turns; i++)
            if (s_tr.turns[i].player == 1) {
                verdicts++;
                assert_true(s_tr.turns[i].rewards[1] == 1.0f);
            }
        assert_true(metric(o, "critic_correct_verdicts") == verdicts);
        assert_true(s_tr.returns[1] == (float)verdicts);
        assert_true(metric(o, "critic_fp") == 0 && metric(o, "critic_fn") == 0);
        assert_true(metric(o, "broken") == 0);
        fixed += metric(o, "fixed") == 1.0;
        first_wrong += metric(o, "first_accuracy") == 0.0;
        /* The game ends on ok, or after the last allowed revision was judged. */
        if (strcmp(info(o, "reason"), "ok") != 0)
            assert_string_equal(info(o, "rounds_used"), "3");
    }
    /* With a 0.2 slip rate most first chains are wrong and most get fixed. */
    assert_true(first_wrong > 1000);
    assert_true(fixed > first_wrong / 2);
}

/* revision_error = 0: the solver slips on first chains only, so with the perfect critic
 * every wrong first chain is fixed by the first revision. */
static void test_careful_revisions(void **state)
{
    (void)state;
    ag_game_kv_t opts[2] = {{"solver_error", "0.2"}, {"revision_error", "0"}};
    int first_wrong = 0;
    for (uint64_t seed = 0; seed < 1000; seed++) {
        demo(&ag_game_critique, seed, NULL, NULL, opts, 2);
        const ag_game_outcome_t *o = &s_tr.outcome;
        assert_true(metric(o, "final_accuracy") == 1.0);
        if (metric(o, "first_accuracy") == 0.0) {
            first_wrong++;
            assert_true(metric(o, "fixed") == 1.0);
            assert_string_equal(info(o, "rounds_used"), "1");
        }
    }
    assert_true(first_wrong > 500); /* 1 - 0.8^6 = 0.74 of first chains are wrong */
}

static void test_random_critic(void **state)
{
    (void)state;
    int oks = 0, verdicts = 0;
    ag_game_kv_t opts[1] = {{"rounds", "8"}};
    for (uint64_t seed = 0; seed < 1000; seed++) {
        demo(&ag_game_critique, seed, "solver", "critic-random", opts, 1);
        for (int i = 0; i < s_tr.num_turns; i++) {
            if (s_tr.turns[i].player != 1)
                continue;
            verdicts++;
            oks += strcmp(s_tr.turns[i].action, "ok") == 0;
        }
    }
    double p = (double)oks / verdicts;
    assert_true(fabs(p - 0.5) < 4 * sqrt(0.25 / verdicts));
}

static void test_bots_deterministic_and_seeded(void **state)
{
    (void)state;
    static ag_transcript_t a;
    int differ = 0;
    for (uint64_t seed = 0; seed < 50; seed++) {
        demo_into(&a, &ag_game_debate, seed, "liar", "random-challenge", NULL, 0);
        demo(&ag_game_debate, seed, "liar", "random-challenge", NULL, 0);
        assert_int_equal(a.num_turns, s_tr.num_turns);
        for (int i = 0; i < a.num_turns; i++) {
            assert_string_equal(a.turns[i].action, s_tr.turns[i].action);
            assert_string_equal(a.turns[i].observation, s_tr.turns[i].observation);
        }
        demo(&ag_game_debate, seed + 500, "liar", "random-challenge", NULL, 0);
        differ += strcmp(a.turns[0].observation, s_tr.turns[0].observation) != 0;
    }
    assert_true(differ >= 49);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_honest_true_side_always_wins),
        cmocka_unit_test(test_random_challenge_baseline),
        cmocka_unit_test(test_claims_valid_all_k),
        cmocka_unit_test(test_honest_challenge_of_correct_chain_is_random),
        cmocka_unit_test(test_solver_error_rate),
        cmocka_unit_test(test_careful_revisions),
        cmocka_unit_test(test_perfect_critic_always_right),
        cmocka_unit_test(test_random_critic),
        cmocka_unit_test(test_bots_deterministic_and_seeded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
