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

/* The longest games (k = 32, eight revisions) play out with whole texts. */
static void test_longest_texts(void **state)
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
        /* the whole task, all 32 operations, in the info and in the first observation */
        assert_int_equal(strlen(info(&s_tr.outcome, "task")), 1 + 3 * 32);
        assert_non_null(strstr(s_tr.turns[0].observation, info(&s_tr.outcome, "task")));
    }
    print_message("longest observation %d bytes, longest game %d turns\n", max_obs, max_turns);
    assert_true(max_obs >= 150); /* debate's claim at k = 32: the whole 97-byte task and more */
    assert_true(max_turns <= 18);
    assert_true(max_turns >= 10); /* critic-random with 8 rounds reaches long games */
}

/* ---- what games declare ---- */

/*
 * Plays a debate demo's actions (played with the options opts[0..n)) as a
 * client with the reward judge and rules with scores: the outcome of a
 * judged episode (rule_judge_agrees).
 */
static void judged_replay(const ag_transcript_t *tr, const ag_game_kv_t *opts, size_t n,
                          bool *seen)
{
    ag_game_kv_t judged[4] = {{"judge", "reward:m"}};
    memcpy(judged + 1, opts, n * sizeof *opts);
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(ag_episode_create(&ep, tr->game, tr->seed, judged, n + 1, NULL, 0, &res, err,
                                       sizeof err),
                     0);
    for (int i = 0; i < tr->num_turns; i++)
        assert_int_equal(ag_episode_step(ep, tr->turns[i].player, tr->turns[i].action,
                                         tr->turns[i].action_len, &res, err, sizeof err),
                         0);
    assert_true(res.ruling_pending);
    const double scores[2] = {0.25, -1.0};
    assert_int_equal(ag_episode_rule(ep, scores, 2, &res, err, sizeof err), 0);
    assert_true(res.terminated);
    reports_declared(tr->game, res.outcome, seen);
    metric(res.outcome, "rule_judge_agrees");
    ag_episode_destroy(&ep);
}

/*
 * Every hosted game's declaration is well formed; every metric a finished
 * episode reports is declared (demos, episodes bots play at create, and
 * judged ones), and each metric debate and critique declare is reported by
 * some configuration of theirs: the declaration is neither short nor stale.
 */
static void test_metrics_declared(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(ag_game_validate_all(err, sizeof err), 0);
    size_t n;
    const ag_game_t *const *games = ag_game_list(&n);
    for (size_t g = 0; g < n; g++) {
        bool seen[64] = {false};
        assert_true(games[g]->num_metrics <= 64);
        int headlines = 0;
        for (int i = 0; i < games[g]->num_metrics; i++)
            headlines += games[g]->metrics[i].headline;
        assert_int_equal(headlines, 1);
        for (uint64_t seed = 0; seed < 50; seed++) {
            assert_int_equal(
                ag_episode_demo(games[g], seed, NULL, 0, NULL, 0, &s_tr, err, sizeof err), 0);
            reports_declared(games[g], &s_tr.outcome, seen);
        }
    }

    static const struct {
        const ag_game_t *game;
        ag_game_kv_t opts[3];
        size_t n_opts;
        const char *bots[2];
    } configs[] = {
        {&ag_game_debate, {{"k", "32"}}, 1, {"honest", "liar"}},
        {&ag_game_debate, {{"k", "2"}}, 1, {"liar", "random-challenge"}},
        {&ag_game_critique, {{"rounds", "8"}, {"solver_error", "0.5"}}, 2,
         {"solver", "critic-random"}},
        {&ag_game_critique, {{"critic", "redo"}, {"k", "4"}, {"solver_error", "0.3"}}, 3,
         {"solver", "critic-random"}},
        {&ag_game_critique, {{"critic", "redo"}}, 1, {"solver", "critic-perfect"}},
    };
    bool seen[2][64] = {{false}};
    for (size_t c = 0; c < sizeof configs / sizeof configs[0]; c++) {
        const ag_game_t *game = configs[c].game;
        bool *game_seen = seen[game == &ag_game_critique];
        for (uint64_t seed = 0; seed < 40; seed++) {
            assert_int_equal(ag_episode_demo(game, seed, configs[c].opts, configs[c].n_opts,
                                             configs[c].bots, 2, &s_tr, err, sizeof err),
                             0);
            reports_declared(game, &s_tr.outcome, game_seen);
            /* the same game as an episode the bots play at create */
            ag_episode_t *ep = NULL;
            ag_episode_result_t res;
            assert_int_equal(ag_episode_create(&ep, game, seed, configs[c].opts, configs[c].n_opts,
                                               configs[c].bots, 2, &res, err, sizeof err),
                             0);
            assert_true(res.terminated);
            reports_declared(game, res.outcome, game_seen);
            same_outcome(res.outcome, &s_tr.outcome);
            ag_episode_destroy(&ep);
            if (game == &ag_game_debate && c == 0)
                judged_replay(&s_tr, configs[c].opts, configs[c].n_opts, game_seen);
        }
    }
    for (int g = 0; g < 2; g++) {
        const ag_game_t *game = g ? &ag_game_critique : &ag_game_debate;
        for (int i = 0; i < game->num_metrics; i++)
            if (!seen[g][i])
                fail_msg("game %s declares metric %s, which no episode reported", game->name,
                         game->metrics[i].name);
    }
}

/*
 * talker: a one-seat game of one turn that says as much as its options ask,
 * to push texts to and past their limits: an observation of `obs` bytes, a
 * bot action of `action` bytes, an info value of `info` bytes, and with
 * undeclared=1 a metric it does not declare.
 */
typedef struct talker {
    int obs, action, info, undeclared;
    bool done;
} talker_t;

static const ag_game_option_t s_talker_options[] = {
    {"obs", "10", "observation bytes"},
    {"action", "1", "bot action bytes"},
    {"info", "1", "info value bytes"},
    {"undeclared", "0", "1: report a metric that is not declared"},
};
static const char *const s_talker_roles[] = {"talker"};
static const char *const s_talker_bots[] = {"talker"};
static const int s_talker_bot_seats[] = {0};
static const ag_game_metric_spec_t s_talker_metrics[] = {
    {"turns", "turns played", AG_METRIC_UNSPECIFIED, true, NULL, NULL},
};
static const ag_game_t s_talker;

static int talker_reset(void *state, uint64_t seed, const ag_game_kv_t *options, size_t n,
                        char *err, size_t err_cap)
{
    talker_t *t = state;
    memset(t, 0, sizeof *t);
    const char *names[4] = {"obs", "action", "info", "undeclared"};
    int *fields[4] = {&t->obs, &t->action, &t->info, &t->undeclared};
    if (ag_game_check_options(&s_talker, options, n, err, err_cap) < 0)
        return AG_GAME_EBADOPT;
    for (int i = 0; i < 4; i++)
        if (ag_game_option_int(names[i], ag_game_option_value(&s_talker, options, n, names[i]), 0,
                               1 << 30, fields[i], err, err_cap) < 0)
            return AG_GAME_EBADOPT;
    return 0;
}

static int talker_to_act(const void *state)
{
    const talker_t *t = state;
    return t->done ? -1 : 0;
}

/* n bytes of "0123456789" over and over. */
static void say(ag_text_t *out, int n)
{
    static const char digits[] = "0123456789";
    for (int i = 0; i < n; i += 10)
        ag_text_mem(out, digits, (size_t)(n - i < 10 ? n - i : 10));
}

static void talker_observe(const void *state, ag_text_t *out)
{
    const talker_t *t = state;
    say(out, t->obs);
}

static int talker_step(void *state, const char *action, size_t len, ag_game_step_t *out, char *err,
                       size_t err_cap)
{
    talker_t *t = state;
    if (t->done)
        return AG_GAME_EOVER;
    t->done = true;
    out->rewards[0] = (float)len;
    return 0;
}

static void talker_bot_act(const void *state, int bot, ag_rng_t *rng, ag_text_t *out)
{
    const talker_t *t = state;
    say(out, t->action);
}

static void talker_outcome(const void *state, ag_game_outcome_t *out)
{
    const talker_t *t = state;
    say(ag_game_outcome_info(out, "said"), t->info);
    ag_game_outcome_metric(out, "turns", 1);
    if (t->undeclared)
        ag_game_outcome_metric(out, "secret", 1);
}

static const ag_game_t s_talker = {
    .name = "talker",
    .description = "says what its options ask",
    .num_players = 1,
    .roles = s_talker_roles,
    .options = s_talker_options,
    .num_options = 4,
    .bots = s_talker_bots,
    .bot_seats = s_talker_bot_seats,
    .num_bots = 1,
    .demo_bots = s_talker_bots,
    .metrics = s_talker_metrics,
    .num_metrics = 1,
    .state_size = sizeof(talker_t),
    .reset = talker_reset,
    .to_act = talker_to_act,
    .observe = talker_observe,
    .step = talker_step,
    .bot_act = talker_bot_act,
    .outcome = talker_outcome,
};

/* Starts a talker episode with option key = value; returns the code and fills *res. */
static int talk(ag_episode_t **ep, const char *key, long value, const char *const *bots,
                ag_episode_result_t *res, char *err)
{
    char v[32];
    snprintf(v, sizeof v, "%ld", value);
    ag_game_kv_t kv = {key, v};
    return ag_episode_create(ep, &s_talker, 1, &kv, 1, bots, bots ? 1 : 0, res, err,
                             AG_GAME_ERR_CAP);
}

static void check_said(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != (char)('0' + i % 10))
            fail_msg("byte %zu of %zu is '%c'", i, len, text[i]);
    assert_int_equal(text[len], '\0');
}

/* An observation of any size up to AG_GAME_OBS_MAX arrives whole; past it the episode says so. */
static void test_observation_has_no_fixed_cap(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    const long sizes[] = {0, 255, 256, 257, 100000, AG_GAME_OBS_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        assert_int_equal(talk(&ep, "obs", sizes[i], NULL, &res, err), 0);
        assert_int_equal(res.observation_len, (size_t)sizes[i]);
        check_said(res.observation, (size_t)sizes[i]);
        assert_int_equal(ag_episode_step(ep, 0, "ab", 2, &res, err, sizeof err), 0);
        assert_true(res.terminated && res.rewards[0] == 2.0f);
        assert_string_equal(res.observation, "");
        ag_episode_destroy(&ep);
    }
    assert_int_equal(talk(&ep, "obs", (long)AG_GAME_OBS_MAX + 1, NULL, &res, err),
                     AG_GAME_ELIMIT);
    assert_null(ep);
    assert_non_null(strstr(err, "an observation longer than 16777216 bytes"));

    /* in a demo, every turn keeps its whole observation */
    ag_game_kv_t kv = {"obs", "70000"};
    assert_int_equal(ag_episode_demo(&s_talker, 3, &kv, 1, NULL, 0, &s_tr, err, sizeof err), 0);
    assert_int_equal(s_tr.turns[0].observation_len, 70000);
    check_said(s_tr.turns[0].observation, 70000);
}

/* Bot actions, info values and metrics over their bounds are errors, never cut or passed on. */
static void test_game_texts_over_bounds(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    const char *bot[1] = {"talker"};
    assert_int_equal(talk(&ep, "action", AG_GAME_ACTION_MAX, bot, &res, err), 0);
    assert_true(res.terminated && res.rewards[0] == (float)AG_GAME_ACTION_MAX);
    ag_episode_destroy(&ep);
    assert_int_equal(talk(&ep, "action", AG_GAME_ACTION_MAX + 1, bot, &res, err),
                     AG_GAME_EINTERNAL);
    assert_non_null(strstr(err, "a bot action longer than 4096 bytes"));

    assert_int_equal(talk(&ep, "info", AG_GAME_INFO_VALUE_CAP - 1, bot, &res, err), 0);
    check_said(info(res.outcome, "said"), AG_GAME_INFO_VALUE_CAP - 1);
    ag_episode_destroy(&ep);
    assert_int_equal(talk(&ep, "info", AG_GAME_INFO_VALUE_CAP, bot, &res, err), AG_GAME_EINTERNAL);
    assert_non_null(strstr(err, "info value longer than"));

    /* an undeclared metric at the end of a client's step: an error, and the episode is over */
    assert_int_equal(talk(&ep, "undeclared", 1, NULL, &res, err), 0);
    assert_int_equal(ag_episode_step(ep, 0, "x", 1, &res, err, sizeof err), AG_GAME_EINTERNAL);
    assert_non_null(strstr(err, "secret"));
    assert_true(ag_episode_terminated(ep));
    assert_int_equal(ag_episode_step(ep, 0, "x", 1, &res, err, sizeof err), AG_GAME_EOVER);
    ag_episode_destroy(&ep);
}

/* ag_game_validate catches what a game could declare wrong. */
static void test_validate_declarations(void **state)
{
    (void)state;
    char err[AG_GAME_ERR_CAP];
    assert_int_equal(ag_game_validate(&s_talker, err, sizeof err), 0);
    static const ag_game_metric_spec_t two_headlines[] = {
        {"a", "", AG_METRIC_MAXIMIZE, true, NULL, NULL},
        {"b", "", AG_METRIC_MAXIMIZE, true, NULL, NULL},
    };
    static const ag_game_metric_spec_t bad_ratio[] = {
        {"a", "", AG_METRIC_MAXIMIZE, false, NULL, NULL},
        {"r", "", AG_METRIC_MAXIMIZE, false, "a", "missing"},
    };
    static const ag_game_metric_spec_t ratio_of_ratio[] = {
        {"a", "", AG_METRIC_MAXIMIZE, false, NULL, NULL},
        {"r", "", AG_METRIC_MAXIMIZE, false, "a", "a"},
        {"rr", "", AG_METRIC_MAXIMIZE, false, "r", "a"},
    };
    static const ag_game_metric_spec_t bad_name[] = {
        {"judge accuracy", "", AG_METRIC_MAXIMIZE, false, NULL, NULL},
    };
    static const ag_game_metric_spec_t twice[] = {
        {"a", "", AG_METRIC_MAXIMIZE, false, NULL, NULL},
        {"a", "", AG_METRIC_MINIMIZE, false, NULL, NULL},
    };
    const struct {
        const ag_game_metric_spec_t *metrics;
        int n;
        const char *why;
    } cases[] = {
        {two_headlines, 2, "headline"},  {bad_ratio, 2, "ratio metric r"},
        {ratio_of_ratio, 3, "ratio metric rr"}, {bad_name, 1, "name"},
        {twice, 2, "declared twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ag_game_t g = s_talker;
        g.metrics = cases[i].metrics;
        g.num_metrics = cases[i].n;
        assert_int_equal(ag_game_validate(&g, err, sizeof err), AG_GAME_EINTERNAL);
        if (strstr(err, cases[i].why) == NULL)
            fail_msg("case %zu: '%s' does not say %s", i, err, cases[i].why);
    }
    ag_game_t g = s_talker;
    static const int bad_seat[] = {1};
    g.bot_seats = bad_seat;
    assert_int_equal(ag_game_validate(&g, err, sizeof err), AG_GAME_EINTERNAL);
    g = s_talker;
    g.outcome = NULL;
    assert_int_equal(ag_game_validate(&g, err, sizeof err), AG_GAME_EINTERNAL);
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
        cmocka_unit_test(test_longest_texts),
        cmocka_unit_test(test_metrics_declared),
        cmocka_unit_test(test_observation_has_no_fixed_cap),
        cmocka_unit_test(test_game_texts_over_bounds),
        cmocka_unit_test(test_validate_declarations),
        cmocka_unit_test(test_hostile_actions),
        cmocka_unit_test(test_step_cost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
