/*
 * test_episode.c - episodes as the server uses them: bot seats played
 * automatically, seat_bots validation, demos (complete, deterministic, and
 * replayable action by action by a client with identical observations,
 * rewards, info and metrics), hostile action bytes, and the cost of a step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"
#include "game_outcome.h"

#include "episode.h"
#include "task.h"

static ag_transcript_t s_tr;

static void same_outcome(const ag_game_outcome_t *a, const ag_game_outcome_t *b)
{
    assert_int_equal(a->num_info, b->num_info);
    for (int i = 0; i < a->num_info; i++) {
        assert_string_equal(a->info[i].key, b->info[i].key);
        assert_string_equal(a->info[i].value, b->info[i].value);
    }
    assert_int_equal(a->num_metrics, b->num_metrics);
    for (int i = 0; i < a->num_metrics; i++) {
        assert_string_equal(a->metrics[i].name, b->metrics[i].name);
        assert_true(a->metrics[i].value == b->metrics[i].value);
    }
}

static void test_bot_seat_autoplay(void **state)
{
    (void)state;
    const char *bots[2] = {"", "honest"};
    for (uint64_t seed = 0; seed < 200; seed++) {
        ag_episode_t *ep = NULL;
        ag_episode_result_t res;
        char err[AG_GAME_ERR_CAP];
        assert_int_equal(
            ag_episode_create(&ep, &ag_game_debate, seed, NULL, 0, bots, 2, &res, err, sizeof err),
            0);
        assert_int_equal(res.to_act, 0);
        assert_non_null(strstr(res.observation, "your chain: "));

        /* Seat 0 claims the truth; the bot claims and seat 0 is asked to challenge. */
        ag_task_t t = {0};
        const char *p = strstr(res.observation, "task: ") + 6;
        t.x0 = (uint8_t)(*p++ - '0');
        while (*p == ' ') {
            t.op[t.k] = p[1];
            t.arg[t.k++] = (uint8_t)(p[2] - '0');
            p += 3;
        }
        uint8_t chain[AG_TASK_MAX_K];
        ag_task_chain(&t, chain);
        int argue = atoi(strstr(res.observation, "you argue: ") + 11);
        chain[t.k - 1] = (uint8_t)argue;
        char text[AG_CHAIN_TEXT_CAP];
        int len = ag_chain_render(chain, t.k, text, sizeof text);
        assert_int_equal(ag_episode_step(ep, 0, text, (size_t)len, &res, err, sizeof err), 0);
        assert_int_equal(res.to_act, 0);
        assert_non_null(strstr(res.observation, "\nopponent chain: "));
        assert_true(strncmp(res.observation, "\nopponent argues: ", 18) == 0);
        assert_true(res.rewards[0] == 0.0f && res.rewards[1] == 0.0f);
        assert_int_equal(ag_episode_step(ep, 1, "1", 1, &res, err, sizeof err), AG_GAME_ETURN);

        /* Challenge the bot's first wrong step (if seat 0 holds the truth there is one). */
        uint8_t opp[AG_TASK_MAX_K];
        const char *oc = strstr(res.observation, "opponent chain: ") + 16;
        assert_int_equal(ag_chain_parse(oc, (size_t)(strchr(oc, '\n') - oc), t.k, opp), 0);
        int w = ag_task_first_wrong(&t, opp);
        char ch[8];
        snprintf(ch, sizeof ch, "%d", w ? w : 1);
        assert_int_equal(ag_episode_step(ep, 0, ch, strlen(ch), &res, err, sizeof err), 0);
        assert_true(res.terminated);
        assert_int_equal(res.to_act, -1);
        assert_true(res.rewards[0] + res.rewards[1] == 0.0f);
        assert_true(res.rewards[0] == 1.0f || res.rewards[0] == -1.0f);
        bool seat0_true = argue == ag_task_answer(&t);
        if (seat0_true) /* honest play by both: the true side wins */
            assert_true(res.rewards[0] == 1.0f);
        else /* the honest bot holds the truth and catches our changed last step */
            assert_true(res.rewards[0] == -1.0f);
        assert_true(ag_episode_terminated(ep));
        assert_int_equal(ag_episode_step(ep, 0, "1", 1, &res, err, sizeof err), AG_GAME_EOVER);
        ag_episode_destroy(&ep);
    }
}

static void test_all_bots_play_at_create(void **state)
{
    (void)state;
    const char *bots[2] = {"solver", "critic-random"};
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_critique, 5, NULL, 0, bots, 2, &res, err, sizeof err), 0);
    assert_true(res.terminated);
    assert_int_equal(res.to_act, -1);
    assert_non_null(res.outcome);
    assert_int_equal(res.num_players, 2);
    assert_string_equal(res.observation, "");

    /* The rewards of create are the whole game's: the same as the demo's returns. */
    assert_int_equal(
        ag_episode_demo(&ag_game_critique, 5, NULL, 0, bots, 2, &s_tr, err, sizeof err), 0);
    assert_true(res.rewards[0] == s_tr.returns[0] && res.rewards[1] == s_tr.returns[1]);
    same_outcome(res.outcome, &s_tr.outcome);
    ag_episode_destroy(&ep);
}

static void test_seat_bots_validation(void **state)
{
    (void)state;
    ag_episode_t *ep = NULL;
    char err[AG_GAME_ERR_CAP];
    const char *one[1] = {"honest"};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, one, 1, NULL, err, sizeof err),
        AG_GAME_EBADBOT);
    assert_non_null(strstr(err, "2 seats"));
    const char *three[3] = {"", "", ""};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, three, 3, NULL, err, sizeof err),
        AG_GAME_EBADBOT);
    const char *unknown[2] = {"", "alphago"};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, unknown, 2, NULL, err, sizeof err),
        AG_GAME_EBADBOT);
    assert_non_null(strstr(err, "alphago"));
    assert_non_null(strstr(err, "random-challenge"));
    const char *wrong_seat[2] = {"critic-perfect", ""};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_critique, 1, NULL, 0, wrong_seat, 2, NULL, err, sizeof err),
        AG_GAME_EBADBOT);
    assert_non_null(strstr(err, "critic"));
    assert_null(ep);
    const char *none[2] = {NULL, ""};
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, none, 2, NULL, err, sizeof err), 0);
    assert_int_equal(ag_episode_to_act(ep), 0);
    assert_ptr_equal(ag_episode_game(ep), &ag_game_debate);
    assert_true(ag_episode_seed(ep) == 1);
    ag_episode_destroy(&ep);
    assert_int_equal(
        ag_episode_demo(&ag_game_debate, 1, NULL, 0, unknown, 2, &s_tr, err, sizeof err),
        AG_GAME_EBADBOT);
}

/*
 * Replays a demo's actions as a client on every seat with the same seed and
 * options: observations, per-turn rewards and the outcome must be identical
 * (this is what agora-env-check does over the wire).
 */
static void replay(const ag_transcript_t *tr, const ag_game_kv_t *opts, size_t n_opts)
{
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(
        ag_episode_create(&ep, tr->game, tr->seed, opts, n_opts, NULL, 0, &res, err, sizeof err),
        0);
    for (int i = 0; i < tr->num_turns; i++) {
        const ag_turn_t *turn = &tr->turns[i];
        assert_int_equal(res.to_act, turn->player);
        assert_string_equal(res.observation, turn->observation);
        assert_int_equal(res.observation_len, turn->observation_len);
        assert_int_equal(ag_episode_step(ep, turn->player, turn->action, turn->action_len, &res,
                                         err, sizeof err),
                         0);
        for (int s = 0; s < tr->num_players; s++)
            assert_true(res.rewards[s] == turn->rewards[s]);
        assert_int_equal(res.terminated, i == tr->num_turns - 1);
    }
    same_outcome(res.outcome, &tr->outcome);
    ag_episode_destroy(&ep);
}

static void test_demo_complete_deterministic_replayable(void **state)
{
    (void)state;
    static ag_transcript_t again;
    char err[AG_GAME_ERR_CAP];
    ag_game_kv_t dopts[1] = {{"k", "12"}};
    ag_game_kv_t copts[3] = {{"rounds", "4"}, {"solver_error", "0.3"}, {"improve_bonus", "0.5"}};
    for (uint64_t seed = 0; seed < 300; seed++) {
        const ag_game_t *g = seed % 2 ? &ag_game_critique : &ag_game_debate;
        const ag_game_kv_t *opts = seed % 2 ? copts : dopts;
        size_t n = seed % 2 ? 3 : 1;
        assert_int_equal(ag_episode_demo(g, seed, opts, n, NULL, 0, &s_tr, err, sizeof err), 0);
        assert_int_equal(ag_episode_demo(g, seed, opts, n, NULL, 0, &again, err, sizeof err), 0);
        assert_ptr_equal(s_tr.game, g);
        assert_true(s_tr.seed == seed);
        if (g == &ag_game_debate) {
            assert_int_equal(s_tr.num_turns, 4);
            assert_true(s_tr.returns[0] + s_tr.returns[1] == 0.0f);
            /* Rewards only on the last turn. */
            for (int i = 0; i < 3; i++)
                assert_true(s_tr.turns[i].rewards[0] == 0 && s_tr.turns[i].rewards[1] == 0);
        } else {
            assert_in_range(s_tr.num_turns, 2, 10);
        }
        assert_int_equal(again.num_turns, s_tr.num_turns);
        for (int i = 0; i < s_tr.num_turns; i++) {
            assert_string_equal(again.turns[i].observation, s_tr.turns[i].observation);
            assert_string_equal(again.turns[i].action, s_tr.turns[i].action);
        }
        same_outcome(&again.outcome, &s_tr.outcome);
        replay(&s_tr, opts, n);

        /* Each seat's transcript is its observations and actions in order. */
        char seat0[2048] = "";
        for (int i = 0; i < s_tr.num_turns; i++) {
            if (s_tr.turns[i].player != 0)
                continue;
            strcat(seat0, s_tr.turns[i].observation);
            strcat(seat0, s_tr.turns[i].action);
        }
        const char *head = g == &ag_game_debate ? "debate\ntask: " : "critique\ntask: ";
        assert_true(strncmp(seat0, head, strlen(head)) == 0);
        assert_non_null(strstr(seat0, info(&s_tr.outcome, "task")));
    }
}

static void test_demo_bot_choice(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    /* NULL / "" entries take the demo bot of that seat. */
    const char *bots[2] = {"honest", NULL};
    const char *explicit_bots[2] = {"honest", "random-challenge"};
    static ag_transcript_t b;
    for (uint64_t seed = 0; seed < 20; seed++) {
        assert_int_equal(
            ag_episode_demo(&ag_game_debate, seed, NULL, 0, bots, 2, &s_tr, err, sizeof err), 0);
        assert_int_equal(
            ag_episode_demo(&ag_game_debate, seed, NULL, 0, explicit_bots, 2, &b, err, sizeof err),
            0);
        for (int i = 0; i < 4; i++)
            assert_string_equal(s_tr.turns[i].action, b.turns[i].action);
    }
    ag_game_kv_t bad = {"k", "40"};
    assert_int_equal(ag_episode_demo(&ag_game_debate, 0, &bad, 1, NULL, 0, &s_tr, err, sizeof err),
                     AG_GAME_EBADOPT);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* The longest games and texts fit the fixed capacities: no observation is ever cut. */
static void test_capacities(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    ag_game_kv_t dopts[1] = {{"k", "32"}};
    ag_game_kv_t copts[3] = {{"k", "32"}, {"rounds", "8"}, {"solver_error", "0.5"}};
    const char *critics[2] = {"solver", "critic-random"};
    int max_obs = 0, max_turns = 0;
    for (uint64_t seed = 0; seed < 200; seed++) {
        bool crit = seed % 2;
        int rc = crit ? ag_episode_demo(&ag_game_critique, seed, copts, 3, critics, 2, &s_tr, err,
                                        sizeof err)
                      : ag_episode_demo(&ag_game_debate, seed, dopts, 1, NULL, 0, &s_tr, err,
                                        sizeof err);
        assert_int_equal(rc, 0);
        if (s_tr.num_turns > max_turns)
            max_turns = s_tr.num_turns;
        for (int i = 0; i < s_tr.num_turns; i++) {
            const ag_turn_t *t = &s_tr.turns[i];
            assert_true(ends_with(t->observation, ": "));
            assert_int_equal(t->observation_len, strlen(t->observation));
            if ((int)t->observation_len > max_obs)
                max_obs = (int)t->observation_len;
            assert_int_equal(t->action_len, strlen(t->action));
        }
        for (int i = 0; i < s_tr.outcome.num_info; i++)
            assert_true(strlen(s_tr.outcome.info[i].value) < AG_GAME_INFO_VALUE_CAP - 1);
    }
    print_message("longest observation %d bytes, longest game %d turns\n", max_obs, max_turns);
    assert_true(max_obs <= TEST_OBS_CAP - 32);
    assert_true(max_turns <= 18);
    assert_true(max_turns >= 10); /* critic-random with 8 rounds reaches long games */
}

/* xorshift for hostile bytes: independent of the library's rng. */
static uint32_t s_x = 2463534242u;
static uint32_t next(void)
{
    s_x ^= s_x << 13;
    s_x ^= s_x >> 17;
    s_x ^= s_x << 5;
    return s_x;
}

static void test_hostile_actions(void **state)
{
    (void)state;
    char *buf = malloc(8192);
    char err[AG_GAME_ERR_CAP];
    static const char alphabet[] = "0123456789 \t\r\n-+*okstep\0\xff\x80\xc3";
    for (int g = 0; g < 2; g++) {
        const ag_game_t *game = g ? &ag_game_critique : &ag_game_debate;
        for (uint64_t seed = 0; seed < 40; seed++) {
            /* The hostile episode and a clean reference get the same valid moves. */
            ag_episode_t *ep = NULL, *ref = NULL;
            ag_episode_result_t res, rref;
            assert_int_equal(
                ag_episode_create(&ep, game, seed, NULL, 0, NULL, 0, &res, err, sizeof err), 0);
            assert_int_equal(
                ag_episode_create(&ref, game, seed, NULL, 0, NULL, 0, &rref, err, sizeof err), 0);
            assert_int_equal(ag_episode_demo(game, seed, NULL, 0, NULL, 0, &s_tr, err, sizeof err),
                             0);
            for (int t = 0; t < s_tr.num_turns; t++) {
                for (int h = 0; h < 50; h++) {
                    size_t len = next() % 3 == 0 ? next() % 8192 : next() % 40;
                    for (size_t i = 0; i < len; i++)
                        buf[i] = h % 2 ? (char)next() : alphabet[next() % (sizeof alphabet - 1)];
                    int player = (int)(next() % 4) - 1;
                    int rc = ag_episode_step(ep, player, buf, len, &res, err, sizeof err);
                    if (rc == 0) {
                        /* A random action that happens to be valid: drop this episode pair. */
                        goto next_seed;
                    }
                    assert_true(rc == AG_GAME_EINVAL || rc == AG_GAME_ETURN);
                    assert_true(strlen(err) > 0 && strlen(err) < sizeof err);
                }
                const ag_turn_t *turn = &s_tr.turns[t];
                assert_int_equal(ag_episode_step(ep, turn->player, turn->action, turn->action_len,
                                                 &res, err, sizeof err),
                                 0);
                assert_int_equal(ag_episode_step(ref, turn->player, turn->action, turn->action_len,
                                                 &rref, err, sizeof err),
                                 0);
                assert_string_equal(res.observation, rref.observation);
            }
            assert_true(res.terminated && rref.terminated);
            same_outcome(res.outcome, rref.outcome);
        next_seed:
            ag_episode_destroy(&ep);
            ag_episode_destroy(&ref);
        }
    }
    /* NULL action with length 0 is just an empty (invalid) action. */
    ag_episode_t *ep = NULL;
    assert_int_equal(
        ag_episode_create(&ep, &ag_game_debate, 1, NULL, 0, NULL, 0, NULL, err, sizeof err), 0);
    assert_int_equal(ag_episode_step(ep, 0, NULL, 0, NULL, err, sizeof err), AG_GAME_EINVAL);
    ag_episode_destroy(&ep);

    /* Penalize mode consumes hostile bytes: the game ends at once. */
    ag_game_kv_t pen = {"invalid_action", "penalize"};
    for (int g = 0; g < 2; g++) {
        const ag_game_t *game = g ? &ag_game_critique : &ag_game_debate;
        ag_episode_result_t res;
        assert_int_equal(ag_episode_create(&ep, game, 3, &pen, 1, NULL, 0, &res, err, sizeof err),
                         0);
        memset(buf, 0, 5000);
        assert_int_equal(ag_episode_step(ep, 0, buf, 5000, &res, err, sizeof err), 0);
        assert_true(res.terminated && res.invalid_action);
        assert_true(res.rewards[0] == -1.0f);
        ag_episode_destroy(&ep);
    }
    free(buf);
}

/*
 * The server's budget is 100,000 steps/s including networking on 2 cores;
 * the game logic must be a small part of that. Plays client-side debates
 * (create + 4 steps) with pre-computed valid actions and reports the rate.
 */
static void test_step_cost(void **state)
{
    (void)state;
    enum { N = 256 };
    static char actions[N][4][AG_CHAIN_TEXT_CAP];
    static ag_transcript_t tr;
    char err[AG_GAME_ERR_CAP];
    for (int i = 0; i < N; i++) {
        assert_int_equal(
            ag_episode_demo(&ag_game_debate, (uint64_t)i, NULL, 0, NULL, 0, &tr, err, sizeof err),
            0);
        for (int t = 0; t < 4; t++)
            strcpy(actions[i][t], tr.turns[t].action);
    }
    long steps = 0, episodes = 0;
    double t0 = ag_now(), elapsed;
    do {
        for (int r = 0; r < 200; r++, episodes++) {
            int i = (int)(episodes % N);
            ag_episode_t *ep = NULL;
            ag_episode_result_t res;
            assert_int_equal(ag_episode_create(&ep, &ag_game_debate, (uint64_t)i, NULL, 0, NULL, 0,
                                               &res, err, sizeof err),
                             0);
            for (int t = 0; t < 4; t++, steps++)
                if (ag_episode_step(ep, t % 2, actions[i][t], strlen(actions[i][t]), &res, err,
                                    sizeof err) != 0)
                    fail_msg("step failed: %s", err);
            assert_true(res.terminated);
            ag_episode_destroy(&ep);
        }
        elapsed = ag_now() - t0;
    } while (elapsed < 0.5);
    double per_step_ns = elapsed / (double)steps * 1e9;
    print_message("debate game logic: %.0f steps/s (%.0f ns per step, create included), %.0f "
                  "episodes/s\n",
                  (double)steps / elapsed, per_step_ns, (double)episodes / elapsed);
    /* Loose floors for a shared machine (sanitizers make malloc ~20x slower), still well above
     * the 100,000 steps/s the whole server must reach. */
#if defined(__SANITIZE_ADDRESS__)
    assert_true((double)steps / elapsed > 20000.0);
#else
    assert_true((double)steps / elapsed > 500000.0);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bot_seat_autoplay),
        cmocka_unit_test(test_all_bots_play_at_create),
        cmocka_unit_test(test_seat_bots_validation),
        cmocka_unit_test(test_demo_complete_deterministic_replayable),
        cmocka_unit_test(test_demo_bot_choice),
        cmocka_unit_test(test_capacities),
        cmocka_unit_test(test_hostile_actions),
        cmocka_unit_test(test_step_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
