/*
 * actor_reward.c (integration) - agora-actor and agora-eval with a real
 * agora-reward, a real agora-env and the scripted learner on loopback.
 *
 *   test_actor_reward AGORA_ENV AGORA_REWARD AGORA_ACTOR AGORA_EVAL
 *
 * The reward server hosts two models: `labelled`, which the actor sends
 * labels to, and `frozen`, which never gets a label, so its weights (and the
 * scores it gives) do not change while the test compares them.
 *
 * Both seats of a critique game (k = 2) are played by the actor's policy, a
 * scripted transformer that after a space writes `1 1` (each token with
 * probability about 0.97; the action is cut at 3 tokens): a valid chain for
 * the solver, an invalid verdict for the critic, so most games end with
 * different returns after both seats acted, and some end earlier.
 *
 *  - labels = preferences: the reward server's Stats counts exactly one
 *    label per shipped game in which both seats acted with different returns,
 *    and the actor's label requests carry batch ids (the model remembers
 *    some, at most one per label).
 *  - weight = 1: every shipped seat's final reward is its game reward plus
 *    the score the reward server gives its transcript. The transcript is
 *    rebuilt independently, by replaying the trajectory's actions against
 *    agora-env (same seed: same game) and concatenating what the env sent
 *    and received, so the check covers the transcript being byte-exact too.
 *    The trajectory's rm_score metric is the mean of its seats' scores.
 *  - agora-eval --reward prints rm_pairwise_accuracy over the games with a
 *    winner, the same figures on a second run, and none for bot seats.
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
#include <zmq.h>

#include <cmocka.h>

#include "ckpt.h"
#include "env_client.h"
#include "fake_learner.h"
#include "harness.h"
#include "reward_peer.h"
#include "runner.h"
#include "scripted_policy.h"
#include "server_proc.h"

#define GAME "critique"
#define OPTIONS "k=2,rounds=1,invalid_action=penalize"
#define REWARD_START_MS 60000
#define CALL_TIMEOUT_MS 15000

static const char *s_env_exe, *s_reward_exe, *s_actor_exe, *s_eval_exe;
static ag_server_proc_t s_env, s_reward, s_late;
static reward_peer_t s_rc; /* a client of s_reward */
static char s_workdir[256];
static void *s_zctx;

/* ---- the reward server, over its protocol ---- */

/* Stats of one model (labels and version), or false if it did not answer. */
static bool s_stats(const char *model, uint64_t *labels, uint64_t *version, int timeout_ms)
{
    Agora__V1__RewardReply *r = reward_peer_stats(&s_rc, model, timeout_ms);
    const Agora__V1__RewardModelStats *m = r ? reward_model_stats(r, model) : NULL;
    const bool ok = m != NULL;
    *labels = ok ? m->labels : 0;
    *version = ok ? m->version : 0;
    if (r)
        agora__v1__reward_reply__free_unpacked(r, NULL);
    return ok;
}

/* The frozen model's scores of n transcripts. */
static void s_score(const char *const *texts, size_t n, float *out)
{
    assert_int_equal(reward_peer_scores(&s_rc, "frozen", texts, n, CALL_TIMEOUT_MS, out), 0);
}

/* Starts agora-reward (models labelled and frozen) on endpoint, or on a
 * fresh one if endpoint is "", and waits until it answers Stats. */
static int s_reward_start(ag_server_proc_t *p, const char *endpoint, const char *dir)
{
    char out[300];
    snprintf(out, sizeof out, "%s/%s", s_workdir, dir);
    const char *const extra[] = {"--reward.models",
                                 "labelled,frozen",
                                 "--reward.out",
                                 out,
                                 "--reward.checkpoint_interval_s",
                                 "0",
                                 NULL};
    return reward_proc_start_at(p, s_reward_exe, endpoint, extra, REWARD_START_MS);
}

/* ---- the scripted policy ---- */

/* After a space, `1`; after a `1`, a space: with actions cut at 3 tokens, "1 1". */
static ag_model_t *s_model(void)
{
    static const int32_t after[] = {' ', '1'};
    static const int32_t next[] = {'1', ' '};
    ag_model_t *m = scripted_policy_create(256, after, next, 2);
    assert_non_null(m);
    return m;
}

/* ---- child processes ---- */

/* The value of "key": in agora-eval's JSON line; NAN for null, fails if absent. */
static double s_json_num(const char *json, const char *key)
{
    double v = 0;
    if (harness_json_num(json, key, &v) < 0)
        fail_msg("no \"%s\" in %s", key, json);
    return v;
}

typedef struct run {
    uv_loop_t loop;
    fake_learner_t fl;
    /* distinct trajectories received, by sequence */
    const Agora__V1__Trajectory **t;
    size_t n;
    /* called once, late_ms after the actor started */
    void (*late)(void);
    int late_ms;
    int64_t t0;
} run_t;

static void s_turn(fake_learner_t *fl, void *arg)
{
    run_t *r = arg;
    if (r->late && ag_now_ms() - r->t0 >= r->late_ms) {
        r->late();
        r->late = NULL;
    }
}

/* Runs agora-actor on both seats of the game against the scripted learner,
 * with reward server `reward` and extra arguments, until it exits; keeps the
 * distinct trajectories. late(), if given, is called once after late_ms. */
static void s_run_actor(run_t *r, const char *reward, const char *const *extra, int episodes,
                        void (*late)(void), int late_ms)
{
    uv_loop_init(&r->loop);
    ag_model_t *m = s_model();
    assert_int_equal(fake_learner_init_policy(&r->fl, &r->loop, s_zctx, m), 0);
    ag_model_destroy(&m);
    char eps[16];
    snprintf(eps, sizeof eps, "%d", episodes);
    const char *base[] = {s_actor_exe,
                          "--actor.env",
                          s_env.endpoint,
                          "--learner-trajectories",
                          r->fl.traj_ep,
                          "--learner-weights",
                          r->fl.pub_ep,
                          "--learner-control",
                          r->fl.control_ep,
                          "--game",
                          GAME,
                          "--options",
                          OPTIONS,
                          "--seat0",
                          "self",
                          "--seat1",
                          "self",
                          "--slots",
                          "8",
                          "--max-action-tokens",
                          "3",
                          "--max-episodes",
                          eps,
                          "--drain-ms",
                          "20000",
                          "--id",
                          "actor-rm",
                          "--reward",
                          reward};
    const size_t nb = sizeof base / sizeof base[0];
    char *argv[64];
    size_t argc = 0;
    for (size_t i = 0; i < nb; i++)
        argv[argc++] = (char *)base[i];
    for (size_t i = 0; extra[i]; i++)
        argv[argc++] = (char *)extra[i];
    argv[argc] = NULL;
    r->late = late;
    r->late_ms = late_ms;
    r->t0 = ag_now_ms();
    assert_int_equal(fake_learner_run(&r->fl, argv, 240000, s_turn, r), 0);
    r->t = calloc(r->fl.n_trajs + 1, sizeof *r->t);
    for (size_t i = 0; i < r->fl.n_trajs; i++) {
        const Agora__V1__Trajectory *t = r->fl.trajs[i];
        bool seen = false;
        for (size_t k = 0; k < r->n; k++)
            seen |= r->t[k]->id->sequence == t->id->sequence;
        if (!seen)
            r->t[r->n++] = t;
    }
    assert_int_equal(r->n, (size_t)episodes);
}

static void s_run_finish(run_t *r)
{
    free(r->t);
    fake_learner_finish(&r->fl);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
}

static const Agora__V1__SeatTrajectory *s_seat(const Agora__V1__Trajectory *t, uint32_t seat)
{
    for (size_t i = 0; i < t->n_seats; i++)
        if (t->seats[i]->seat == seat)
            return t->seats[i];
    return NULL;
}

/* ---- labels = preferences ---- */

static void test_preference_labels(void **state)
{
    uint64_t labels0, version0;
    assert_true(s_stats("labelled", &labels0, &version0, CALL_TIMEOUT_MS));
    run_t r = {0};
    const char *extra[] = {"--reward-model", "labelled", "--reward-labels", "preferences", NULL};
    s_run_actor(&r, s_reward.endpoint, extra, 120, NULL, 0);
    /* One preference per game both seats played with different returns. */
    uint64_t expected = 0;
    for (size_t i = 0; i < r.n; i++) {
        const Agora__V1__Trajectory *t = r.t[i];
        assert_int_equal(t->n_returns, 2);
        if (s_seat(t, 0) && s_seat(t, 1) && t->returns[0] != t->returns[1])
            expected++;
        /* weight 0: nothing added, no score recorded */
        for (size_t m = 0; m < t->n_metrics; m++)
            assert_string_not_equal(t->metrics[m]->name, "rm_score");
    }
    assert_true(expected >= 60);
    uint64_t labels1, version1;
    assert_true(s_stats("labelled", &labels1, &version1, CALL_TIMEOUT_MS));
    fprintf(stderr, "actor_reward: %zu trajectories, %llu preference pairs, %llu labels counted\n",
            r.n, (unsigned long long)expected, (unsigned long long)(labels1 - labels0));
    assert_int_equal(labels1 - labels0, expected);
    Agora__V1__RewardReply *st = reward_peer_stats(&s_rc, "labelled", CALL_TIMEOUT_MS);
    assert_non_null(st);
    const double batch_ids = reward_metric(reward_model_stats(st, "labelled"), "batch_ids", -1);
    agora__v1__reward_reply__free_unpacked(st, NULL);
    fprintf(stderr, "actor_reward: %.0f label batch ids remembered\n", batch_ids);
    assert_true(batch_ids >= 1 && batch_ids <= (double)expected);
    /* The frozen model got nothing. */
    uint64_t fl, fv;
    assert_true(s_stats("frozen", &fl, &fv, CALL_TIMEOUT_MS));
    assert_int_equal(fl, 0);
    s_run_finish(&r);
}

/* ---- weight = 1 ---- */

/* Seat q's k-th action as the runner sent it: the turn's sampled bytes, sanitised. */
static size_t s_action(const Agora__V1__SeatTrajectory *q, size_t k, char *out)
{
    size_t from = k ? q->turn_end[k - 1] + 1 : 0, n = 0;
    for (size_t i = from; i <= q->turn_end[k]; i++)
        if (q->generated.data[i] && q->tokens[i] < 256)
            out[n++] = (char)q->tokens[i];
    ag_runner_sanitize_utf8(out, n);
    out[n] = '\0';
    return n;
}

/* Appends text to a growing transcript. */
static void s_append(char *t, size_t *len, size_t cap, const char *text)
{
    size_t n = strlen(text);
    assert_true(*len + n < cap);
    memcpy(t + *len, text, n + 1);
    *len += n;
}

/*
 * Replays a game against agora-env: seat s's k-th action is the k-th of its
 * turns in trajectory t, or "1 1" when t is NULL (what the scripted policy
 * writes when sampling greedily). Fills each seat's transcript (what the env
 * sent it + what it sent), the game's returns and how many turns each seat
 * played.
 */
static void s_replay(ag_env_client_t *env, const Agora__V1__Trajectory *t, uint64_t seed,
                     char text[2][4096], float ret[2], size_t turns[2])
{
    static const char *const opts[][2] = {
        {"k", "2"}, {"rounds", "1"}, {"invalid_action", "penalize"}};
    static const char *const bots[2] = {"", ""};
    size_t len[2] = {0, 0}, next[2] = {0, 0};
    text[0][0] = text[1][0] = '\0';
    ret[0] = ret[1] = 0;
    Agora__V1__EnvReply *rep = NULL;
    assert_int_equal(ag_env_client_reset(env, GAME, seed, opts, 3, bots, 2, &rep), 0);
    assert_int_equal(rep->body_case, AGORA__V1__ENV_REPLY__BODY_RESET);
    uint64_t id = rep->reset->episode_id;
    uint32_t to_act = rep->reset->to_act;
    char obs[4096];
    snprintf(obs, sizeof obs, "%s", rep->reset->observation);
    for (size_t s = 0; s < rep->reset->n_rewards && s < 2; s++)
        ret[s] += rep->reset->rewards[s];
    bool over = rep->reset->terminated;
    agora__v1__env_reply__free_unpacked(rep, NULL);
    while (!over) {
        assert_true(to_act < 2);
        char action[64] = "1 1";
        if (t) {
            const Agora__V1__SeatTrajectory *q = s_seat(t, to_act);
            assert_non_null(q);
            assert_true(next[to_act] < q->n_turn_end);
            s_action(q, next[to_act], action);
        }
        next[to_act]++;
        s_append(text[to_act], &len[to_act], 4096, obs);
        s_append(text[to_act], &len[to_act], 4096, action);
        assert_int_equal(ag_env_client_step(env, id, to_act, action, &rep), 0);
        assert_int_equal(rep->body_case, AGORA__V1__ENV_REPLY__BODY_STEP);
        const Agora__V1__StepReply *sr = rep->step;
        for (size_t s = 0; s < sr->n_rewards && s < 2; s++)
            ret[s] += sr->rewards[s];
        over = sr->terminated || sr->truncated;
        to_act = sr->to_act;
        snprintf(obs, sizeof obs, "%s", sr->observation ? sr->observation : "");
        agora__v1__env_reply__free_unpacked(rep, NULL);
    }
    turns[0] = next[0];
    turns[1] = next[1];
}

/* The transcript the actor's side rebuilds from a seat's shipped tokens. */
static size_t s_rebuilt(const Agora__V1__SeatTrajectory *q, char *out, size_t cap)
{
    ag_seq_t s;
    ag_seq_init(&s);
    s.len = q->n_tokens;
    s.tokens = malloc(q->n_tokens * sizeof *s.tokens);
    for (size_t i = 0; i < q->n_tokens; i++)
        s.tokens[i] = (int32_t)q->tokens[i];
    s.generated = q->generated.data;
    s.turn_end = q->turn_end;
    s.n_turns = q->n_turn_end;
    size_t n = ag_runner_transcript(&s, out, cap);
    free(s.tokens);
    return n;
}

static void test_weighted_scores(void **state)
{
    uint64_t fl0, fv0;
    assert_true(s_stats("frozen", &fl0, &fv0, CALL_TIMEOUT_MS));
    run_t r = {0};
    const char *extra[] = {"--reward-model", "frozen", "--reward-weight", "1", NULL};
    s_run_actor(&r, s_reward.endpoint, extra, 60, NULL, 0);
    ag_env_client_t *env = ag_env_client_create(s_env.endpoint, 5000);
    assert_non_null(env);
    size_t seats = 0, both = 0;
    double max_err = 0;
    for (size_t i = 0; i < r.n; i++) {
        const Agora__V1__Trajectory *t = r.t[i];
        char text[2][4096];
        float ret[2];
        size_t turns[2];
        s_replay(env, t, t->seed, text, ret, turns);
        /* Every action of the trajectory was played. */
        for (uint32_t s = 0; s < 2; s++)
            assert_int_equal(turns[s], s_seat(t, s) ? s_seat(t, s)->n_turn_end : 0);
        /* The trajectory's returns are the game's, without the scores. */
        assert_true(t->returns[0] == ret[0] && t->returns[1] == ret[1]);
        const char *texts[2];
        uint32_t which[2];
        size_t n = 0;
        for (uint32_t s = 0; s < 2; s++) {
            const Agora__V1__SeatTrajectory *q = s_seat(t, s);
            if (!q)
                continue;
            char rebuilt[4096];
            size_t len = s_rebuilt(q, rebuilt, sizeof rebuilt);
            assert_int_equal(len, strlen(text[s]));
            assert_memory_equal(rebuilt, text[s], len);
            texts[n] = text[s];
            which[n++] = s;
        }
        assert_true(n >= 1);
        both += n == 2;
        float scores[2];
        s_score(texts, n, scores);
        double sum = 0;
        for (size_t k = 0; k < n; k++) {
            const Agora__V1__SeatTrajectory *q = s_seat(t, which[k]);
            size_t last = q->n_turn_end - 1;
            float game_last = t->returns[which[k]];
            for (size_t j = 0; j < last; j++)
                game_last -= q->turn_rewards[j];
            double added = (double)q->turn_rewards[last] - (double)game_last;
            double err = fabs(added - (double)scores[k]);
            if (err > max_err)
                max_err = err;
            assert_true(err <= 1e-4 * fmax(1.0, fabs(scores[k])));
            sum += scores[k];
            seats++;
        }
        bool has_metric = false;
        for (size_t m = 0; m < t->n_metrics; m++)
            if (!strcmp(t->metrics[m]->name, "rm_score")) {
                has_metric = true;
                assert_true(fabs(t->metrics[m]->value - sum / (double)n) <= 1e-4);
            }
        assert_true(has_metric);
    }
    fprintf(stderr,
            "actor_reward: %zu trajectories, %zu seats scored (%zu games both seats), "
            "largest |added - score| %.3g\n",
            r.n, seats, both, max_err);
    assert_true(both >= 30);
    ag_env_client_destroy(&env);
    /* Nobody trained the frozen model meanwhile. */
    uint64_t fl1, fv1;
    assert_true(s_stats("frozen", &fl1, &fv1, CALL_TIMEOUT_MS));
    assert_int_equal(fl1, 0);
    assert_int_equal(fv1, fv0);
    s_run_finish(&r);
}

/* ---- a reward server that is away at first ---- */

static char s_late_ep[64];
static int64_t s_late_started;
static run_t *s_late_run;
static size_t s_shipped_before;

static void s_start_late(void)
{
    s_shipped_before = s_late_run->fl.n_trajs;
    assert_int_equal(s_reward_start(&s_late, s_late_ep, "reward-late"), 0);
    s_late_started = ag_now_ms();
}

/* The actor's scores time out, it waits (nothing shipped unscored) and
 * asks again; once a reward server answers, every trajectory goes out
 * scored. */
static void test_reward_away(void **state)
{
    assert_int_equal(harness_free_endpoint(s_late_ep, sizeof s_late_ep), 0);
    run_t r = {0};
    const char *extra[] = {
        "--reward-model", "frozen", "--reward-weight", "1", "--reward-timeout-ms", "300", NULL};
    int64_t t0 = ag_now_ms();
    s_late_run = &r;
    s_run_actor(&r, s_late_ep, extra, 24, s_start_late, 3000);
    int64_t done = ag_now_ms();
    fprintf(stderr, "actor_reward: reward server up after %lld ms, actor done after %lld ms\n",
            (long long)(s_late_started - t0), (long long)(done - t0));
    assert_true(s_late_started > 0);
    /* Nothing reached the learner before the reward server was there; then
     * every trajectory did, scored. */
    assert_int_equal(s_shipped_before, 0);
    for (size_t i = 0; i < r.n; i++) {
        bool has_metric = false;
        for (size_t m = 0; m < r.t[i]->n_metrics; m++)
            has_metric |= !strcmp(r.t[i]->metrics[m]->name, "rm_score");
        assert_true(has_metric);
    }
    s_run_finish(&r);
    assert_int_equal(ag_server_proc_stop(&s_late, 20000), 0);
}

/* ---- agora-eval --reward ---- */

static void test_eval(void **state)
{
    char path[300];
    snprintf(path, sizeof path, "%s/policy.ckpt", s_workdir);
    ag_model_t *m = s_model();
    char err[256];
    assert_int_equal(ag_ckpt_save(path, m, NULL, 1, err, sizeof err), 0);
    ag_model_destroy(&m);
    char *argv[] = {(char *)s_eval_exe,
                    "--env",
                    s_env.endpoint,
                    "--game",
                    GAME,
                    "--options",
                    OPTIONS,
                    "--seat0",
                    path,
                    "--seat1",
                    path,
                    "--max-action-tokens",
                    "3",
                    "--games",
                    "60",
                    "--reward",
                    s_reward.endpoint,
                    "--reward-model",
                    "frozen",
                    NULL};
    char out[8192], out2[8192];
    assert_int_equal(harness_run_capture(argv, out, sizeof out), 0);
    fprintf(stderr, "actor_reward: %s", out);
    double pairs = s_json_num(out, "rm_pairs");
    double acc = s_json_num(out, "rm_pairwise_accuracy");
    assert_true(pairs >= 30 && pairs <= 60);
    assert_true(acc >= 0.0 && acc <= 1.0);
    /* critique's games are never decided by a coin */
    assert_true(s_json_num(out, "rm_pairs_decided") == pairs);
    assert_true(s_json_num(out, "rm_pairwise_accuracy_decided") == acc);
    assert_true(s_json_num(out, "rm_unscored") == 0);
    /* Same games, same frozen model: the same figures. */
    assert_int_equal(harness_run_capture(argv, out2, sizeof out2), 0);
    assert_true(s_json_num(out2, "rm_pairs") == pairs);
    assert_true(s_json_num(out2, "rm_pairwise_accuracy") == acc);

    /* Sampling greedily, every action is "1 1": the games can be replayed
     * here and their transcripts scored, so the figures are known. */
    char *greedy[32];
    size_t ac = 0;
    for (; argv[ac]; ac++)
        greedy[ac] = argv[ac];
    greedy[ac++] = "--temperature";
    greedy[ac++] = "0";
    greedy[ac] = NULL;
    assert_int_equal(harness_run_capture(greedy, out2, sizeof out2), 0);
    ag_env_client_t *env = ag_env_client_create(s_env.endpoint, 5000);
    assert_non_null(env);
    int want_pairs = 0, want_right = 0;
    for (uint64_t g = 0; g < 60; g++) {
        char text[2][4096];
        float ret[2];
        size_t turns[2];
        s_replay(env, NULL, 1000000000ULL + g, text, ret, turns);
        if (!turns[0] || !turns[1] || ret[0] == ret[1])
            continue;
        const char *texts[2] = {text[0], text[1]};
        float sc[2];
        s_score(texts, 2, sc);
        int w = ret[0] > ret[1] ? 0 : 1;
        want_pairs++;
        want_right += sc[w] > sc[1 - w];
    }
    ag_env_client_destroy(&env);
    fprintf(stderr, "actor_reward: greedy: %d pairs, %d right\n", want_pairs, want_right);
    assert_true(want_pairs > 0);
    assert_true(s_json_num(out2, "rm_pairs") == want_pairs);
    assert_true(fabs(s_json_num(out2, "rm_pairwise_accuracy") - (double)want_right / want_pairs) <
                1e-9);

    /* A bot seat has no transcript here: no pair is scored. */
    argv[8] = "bot:solver";
    assert_int_equal(harness_run_capture(argv, out, sizeof out), 0);
    assert_true(s_json_num(out, "rm_pairs") == 0);
    assert_true(isnan(s_json_num(out, "rm_pairwise_accuracy")));
    unlink(path);
}

/* ---- fixture ---- */

static int s_setup(void **state)
{
    s_zctx = zmq_ctx_new();
    if (harness_mkdtemp(s_workdir, sizeof s_workdir, "agora-actor-reward") < 0)
        return -1;
    if (ag_server_proc_start(&s_env, s_env_exe, NULL, 20000) < 0)
        return -1;
    if (s_reward_start(&s_reward, "", "reward") < 0)
        return -1;
    return reward_peer_open(&s_rc, s_reward.endpoint);
}

static int s_teardown(void **state)
{
    int rc = 0;
    reward_peer_close(&s_rc);
    if (ag_server_proc_stop(&s_env, 10000) != 0)
        rc = -1;
    if (ag_server_proc_stop(&s_reward, 20000) != 0)
        rc = -1;
    harness_rmtree(s_workdir);
    zmq_ctx_term(s_zctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s AGORA_ENV AGORA_REWARD AGORA_ACTOR AGORA_EVAL\n", argv[0]);
        return 2;
    }
    s_env_exe = argv[1];
    s_reward_exe = argv[2];
    s_actor_exe = argv[3];
    s_eval_exe = argv[4];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preference_labels),
        cmocka_unit_test(test_weighted_scores),
        cmocka_unit_test(test_reward_away),
        cmocka_unit_test(test_eval),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
