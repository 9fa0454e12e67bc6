/*
 * smoke.c - the end-to-end test of the main job: `agora run
 * examples/smoke.ini --out DIR` starts a real env server, learner and two
 * actors on loopback, trains a tiny model for a few PPO updates, evaluates it
 * and writes the report. The test then reads what the run left behind:
 * summary.json has the expected keys and a completed status, led by the
 * headline debate declares (judge_accuracy, warm start and final),
 * metrics.jsonl has PPO records, and the learner's per-actor counts
 * ("actors" in its records) show that it trained on trajectories from both
 * actors, whose seat 1 played past versions drawn from the learner's league
 * (the evaluation plays the policy in that seat: self vs self).
 *
 * usage: test_smoke PATH/TO/agora PATH/TO/smoke.ini
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

extern char **environ;

/* The test fixes the number of PPO updates itself, whatever smoke.ini says. */
#define SMOKE_UPDATES 60
#define SMOKE_UPDATES_TEXT "60"

/* The job must end well inside the two minutes the test is given. */
enum { RUN_TIMEOUT_S = 110 };

static const char *s_agora;
static const char *s_runfile;
static char s_tmp[] = "/tmp/agora-smoke-XXXXXX";
static char s_out[sizeof s_tmp + 8];
static int s_status = -1;
static double s_seconds;
static int s_passed; /* tests that reached their end: the run is kept unless all did */

/* Runs the job once for every test; the exit status is checked by a test. */
static int s_run_job(void **state)
{
    (void)state;
    if (!mkdtemp(s_tmp))
        return -1;
    snprintf(s_out, sizeof s_out, "%s/run", s_tmp);
    char *argv[] = {
        (char *)s_agora,    "run", (char *)s_runfile, "--out", s_out, "--learner.max_updates",
        SMOKE_UPDATES_TEXT, NULL};
    pid_t pid;
    double t0 = ag_now();
    if (posix_spawn(&pid, s_agora, NULL, NULL, argv, environ) != 0)
        return -1;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            break;
        if (ag_now() - t0 > RUN_TIMEOUT_S) {
            fprintf(stderr, "smoke: agora run did not end within %d s; stopping it\n",
                    RUN_TIMEOUT_S);
            kill(pid, SIGTERM);
            sleep(20);
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            s_status = -2;
            s_seconds = ag_now() - t0;
            return 0;
        }
        usleep(100 * 1000);
    }
    s_seconds = ag_now() - t0;
    s_status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    fprintf(stderr, "smoke: agora run ended with status %d after %.1f s (output in %s)\n", s_status,
            s_seconds, s_out);
    return 0;
}

static json_t *s_load(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", s_out, name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        fprintf(stderr, "smoke: %s: %s (line %d)\n", path, err.text, err.line);
    return j;
}

static void test_run_succeeds(void **state)
{
    (void)state;
    assert_int_equal(s_status, 0);
    assert_true(s_seconds < RUN_TIMEOUT_S);
    s_passed++;
}

static void test_summary(void **state)
{
    (void)state;
    json_t *s = s_load("summary.json");
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "name")), "smoke");
    assert_string_equal(json_string_value(json_object_get(s, "status")), "completed");
    static const char *const numbers[] = {
        "wall_s",        "updates", "trajectories", "tokens_trained", "judge_accuracy_warmstart",
        "judge_accuracy"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        json_t *v = json_object_get(s, numbers[i]);
        if (!json_is_number(v))
            fprintf(stderr, "smoke: summary.json: %s is missing or not a number\n", numbers[i]);
        assert_true(json_is_number(v));
    }
    assert_int_equal(json_integer_value(json_object_get(s, "updates")), SMOKE_UPDATES);
    assert_true(json_integer_value(json_object_get(s, "trajectories")) > 0);
    assert_true(json_integer_value(json_object_get(s, "tokens_trained")) > 0);
    double acc = json_number_value(json_object_get(s, "judge_accuracy"));
    assert_true(acc >= 0.0 && acc <= 1.0);
    assert_true(json_is_object(json_object_get(s, "final_metrics")));
    /* The headline is what the game declares, with both evaluations' values. */
    json_t *h = json_object_get(s, "headline");
    assert_string_equal(json_string_value(json_object_get(h, "name")), "judge_accuracy");
    assert_string_equal(json_string_value(json_object_get(h, "goal")), "maximize");
    assert_true(json_is_string(json_object_get(h, "description")));
    assert_true(json_number_value(json_object_get(h, "final")) == acc);
    assert_true(json_number_value(json_object_get(h, "warmstart")) ==
                json_number_value(json_object_get(s, "judge_accuracy_warmstart")));
    assert_true(json_array_size(json_object_get(s, "declared_metrics")) >= 1);
    /* One matchup, as [actor] trains: seat 1 (league) is played by the policy itself. */
    json_t *ms = json_object_get(json_object_get(s, "eval"), "matchups");
    assert_int_equal(json_array_size(ms), 1);
    json_t *m = json_array_get(ms, 0);
    assert_string_equal(json_string_value(json_object_get(m, "name")), "self_vs_self");
    assert_true(json_is_object(json_object_get(m, "warmstart")));
    assert_true(json_is_object(json_object_get(m, "final")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "final"), "headline")),
                        "judge_accuracy");
    json_decref(s);
    s_passed++;
}

static void test_metrics_and_both_actors(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/metrics.jsonl", s_out);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char line[1 << 16];
    size_t ppo = 0, warm = 0;
    json_t *last_actors = NULL;
    while (fgets(line, sizeof line, f)) {
        json_t *rec = json_loads(line, 0, NULL);
        assert_true(json_is_object(rec));
        const char *phase = json_string_value(json_object_get(rec, "phase"));
        assert_non_null(phase);
        if (!strcmp(phase, "warmstart"))
            warm++;
        if (!strcmp(phase, "ppo")) {
            ppo++;
            assert_true(json_is_number(json_object_get(rec, "update")));
            assert_true(json_is_number(json_object_get(rec, "version")));
            json_t *actors = json_object_get(rec, "actors");
            assert_true(json_is_object(actors));
            json_decref(last_actors);
            last_actors = json_incref(actors);
        }
        json_decref(rec);
    }
    fclose(f);
    assert_true(warm >= 1);
    assert_int_equal(ppo, SMOKE_UPDATES);
    /* The learner counts trained trajectories per actor id; both actors must be there. */
    size_t contributing = 0;
    const char *id;
    json_t *n;
    json_object_foreach(last_actors, id, n)
    {
        fprintf(stderr, "smoke: actor %s: %lld trajectories trained\n", id,
                (long long)json_integer_value(n));
        if (json_integer_value(n) > 0)
            contributing++;
    }
    assert_int_equal(contributing, 2);
    json_decref(last_actors);
    s_passed++;
}

/* Seat 1 is `league`: each actor played against past snapshots fetched from the learner's
 * league and drew new ones during the run (its last metrics record says which and how often). */
static void test_league(void **state)
{
    (void)state;
    long long swaps = 0, newest = 0;
    for (int i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/logs/actor-%d.jsonl", s_out, i);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        char line[1 << 14];
        json_t *last = NULL;
        while (fgets(line, sizeof line, f)) {
            json_t *rec = json_loads(line, 0, NULL);
            assert_true(json_is_object(rec));
            json_decref(last);
            last = rec;
        }
        fclose(f);
        assert_non_null(last);
        json_t *v = json_object_get(last, "league_version");
        json_t *n = json_object_get(last, "league_swaps");
        assert_true(json_is_integer(v) && json_is_integer(n));
        fprintf(stderr, "smoke: actor-%d: league opponent version %lld, %lld swaps\n", i,
                json_integer_value(v), json_integer_value(n));
        assert_true(json_integer_value(v) >= 1);
        if (json_integer_value(v) > newest)
            newest = json_integer_value(v);
        swaps += json_integer_value(n);
        json_decref(last);
    }
    /* a swap happened, and an opponent came from a snapshot after the first weights */
    assert_true(swaps >= 1);
    assert_true(newest > 1);
    s_passed++;
}

static void test_files(void **state)
{
    (void)state;
    static const char *const files[] = {
        "run.ini",          "reference.ckpt",      "policy.ckpt",
        "curves.dat",       "eval-warmstart.json", "eval-final.json",
        "logs/learner.log", "logs/actor-0.log",    "logs/actor-1.log",
        "logs/env-0.log"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", s_out, files[i]);
        if (access(path, R_OK) != 0)
            fprintf(stderr, "smoke: missing %s\n", path);
        assert_int_equal(access(path, R_OK), 0);
    }
    s_passed++;
}

static int s_cleanup(void **state)
{
    (void)state;
    if (s_passed == 5) {
        char cmd[sizeof s_tmp + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "smoke: could not remove %s\n", s_tmp);
    } else {
        fprintf(stderr, "smoke: left the run in %s for inspection\n", s_out);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PATH/TO/agora PATH/TO/smoke.ini\n", argv[0]);
        return 2;
    }
    s_agora = argv[1];
    s_runfile = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_succeeds),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_metrics_and_both_actors),
        cmocka_unit_test(test_league),
        cmocka_unit_test(test_files),
    };
    return cmocka_run_group_tests(tests, s_run_job, s_cleanup);
}
