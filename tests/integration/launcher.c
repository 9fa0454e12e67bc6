/*
 * launcher.c (integration) - `agora run` beyond the smoke job: a run that
 * attaches an env server it did not start ([run] env_servers = 0, env =
 * ENDPOINT; the server comes up only after the launcher began waiting for
 * it, and outlives the run) and evaluates the seats [eval] names; a run in
 * which nothing can be trained (every transcript overflows model.ctx), which
 * must end as failed with a reason; and an [eval] seat the game does not
 * have, refused before anything is trained. Real processes on loopback.
 *
 * usage: test_launcher PATH/TO/agora PATH/TO/agora-env PATH/TO/smoke.ini
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

enum { RUN_TIMEOUT_MS = 150000 };

static const char *s_agora, *s_env_exe, *s_runfile;
static char s_tmp[512];

/* The env server the first test starts by itself, late. */
typedef struct late_env {
    char endpoint[64];
    char log[600];
    double t0, start_after_s;
    pid_t pid;
} late_env_t;

static void s_start_late_env(void *arg)
{
    late_env_t *e = arg;
    if (e->pid || ag_now() - e->t0 < e->start_after_s)
        return;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, e->log, O_WRONLY | O_CREAT | O_TRUNC,
                                     0644);
    char *argv[] = {(char *)s_env_exe, "--bind", e->endpoint, NULL};
    if (posix_spawn(&e->pid, s_env_exe, &fa, NULL, argv, environ) != 0)
        e->pid = -1;
    posix_spawn_file_actions_destroy(&fa);
}

static json_t *s_load(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    if (!j)
        fprintf(stderr, "launcher: %s: %s\n", path, err.text);
    return j;
}

static bool s_exists(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* agora run RUNFILE --out DIR ARGS...; its exit status. */
static int s_agora_run(const char *dir, const char *const *args, void (*turn)(void *), void *arg)
{
    char *argv[48] = {(char *)s_agora, "run", (char *)s_runfile, "--out", (char *)dir};
    size_t n = 5;
    for (size_t i = 0; args[i] && n < 47; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return harness_run_while(argv, RUN_TIMEOUT_MS, turn, arg);
}

static void s_noop(void *arg)
{
    (void)arg;
}

/* The headline's warm-start and final values are also the flat KEY_warmstart and KEY. */
static void s_check_headline(json_t *s)
{
    json_t *h = json_object_get(s, "headline");
    const char *name = json_string_value(json_object_get(h, "name"));
    assert_non_null(name);
    assert_non_null(json_string_value(json_object_get(h, "goal")));
    char key[128];
    snprintf(key, sizeof key, "%s_warmstart", name);
    assert_true(json_is_number(json_object_get(s, name)));
    assert_true(json_is_number(json_object_get(s, key)));
    assert_true(json_number_value(json_object_get(h, "final")) ==
                json_number_value(json_object_get(s, name)));
    assert_true(json_number_value(json_object_get(h, "warmstart")) ==
                json_number_value(json_object_get(s, key)));
}

static void test_attached_env_server(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/attached", s_tmp);
    late_env_t env = {.t0 = ag_now(), .start_after_s = 2.0};
    assert_int_equal(harness_free_endpoint(env.endpoint, sizeof env.endpoint), 0);
    snprintf(env.log, sizeof env.log, "%s/agora-env.log", s_tmp);
    const char *args[] = {"--run.env_servers",
                          "0",
                          "--run.env",
                          env.endpoint,
                          "--run.env_wait_s",
                          "60",
                          "--learner.max_updates",
                          "3",
                          "--eval.seat1",
                          "bot:honest",
                          "--eval.games",
                          "4",
                          NULL};
    int status = s_agora_run(dir, args, s_start_late_env, &env);
    assert_true(env.pid > 0);
    /* The launcher neither stopped nor restarted it: it is the same process, still serving. */
    int st;
    bool alive = waitpid(env.pid, &st, WNOHANG) == 0;
    kill(env.pid, SIGTERM);
    waitpid(env.pid, &st, 0);
    assert_int_equal(status, 0);
    assert_true(alive);

    json_t *s = s_load(dir, "summary.json");
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "completed");
    assert_int_equal(json_integer_value(json_object_get(s, "env_servers")), 0);
    assert_int_equal(json_integer_value(json_object_get(s, "updates")), 3);
    s_check_headline(s);
    /* One matchup: the evaluated policy in seat 0 against the bot [eval] names. */
    json_t *ms = json_object_get(json_object_get(s, "eval"), "matchups");
    assert_int_equal(json_array_size(ms), 1);
    json_t *seats = json_object_get(json_array_get(ms, 0), "seats");
    assert_string_equal(json_string_value(json_array_get(seats, 0)), "self");
    assert_string_equal(json_string_value(json_array_get(seats, 1)), "bot:honest");
    json_decref(s);
    static const char *const tags[2][2] = {{"eval-warmstart.json", "/reference.ckpt"},
                                           {"eval-final.json", "/policy.ckpt"}};
    for (int i = 0; i < 2; i++) {
        json_t *e = s_load(dir, tags[i][0]);
        assert_non_null(e);
        assert_string_equal(json_string_value(json_object_get(e, "seat1")), "bot:honest");
        const char *policy = json_string_value(json_object_get(e, "policy"));
        assert_non_null(policy);
        assert_non_null(strstr(policy, tags[i][1]));
        assert_int_equal(json_integer_value(json_object_get(e, "games")), 4);
        json_decref(e);
    }
    /* Every process of the run was pointed at it, and no env server of the launcher's ran. */
    char path[700];
    snprintf(path, sizeof path, "%s/run.ini", dir);
    size_t len;
    char *ini = (char *)harness_read_file(path, &len);
    assert_non_null(ini);
    char line[128];
    snprintf(line, sizeof line, "\nenv = %s\n", env.endpoint);
    int uses = 0;
    for (const char *p = ini; (p = strstr(p, line)); p++)
        uses++;
    assert_int_equal(uses, 4); /* [run], [learner], [actor], [eval] */
    free(ini);
    assert_false(s_exists(dir, "logs/env-0.log"));
}

static void test_untrainable_run_fails(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/untrainable", s_tmp);
    /* No debate transcript fits 32 tokens: nothing can ever be trained. */
    const char *args[] = {"--model.ctx", "32", "--learner.max_seconds", "10", NULL};
    int status = s_agora_run(dir, args, s_noop, NULL);
    assert_int_not_equal(status, 0);
    json_t *s = s_load(dir, "summary.json");
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "failed");
    const char *why = json_string_value(json_object_get(s, "error"));
    assert_non_null(why);
    fprintf(stderr, "launcher: untrainable run: %s\n", why);
    /* The learner's warm start finds no demo that fits, an actor gives up (exit
     * status 3), or the learner trained nothing: each says so. */
    assert_true(strstr(why, "fits model.ctx") || strstr(why, "cannot do its job") ||
                strstr(why, "made no PPO update"));
    assert_int_equal(json_integer_value(json_object_get(s, "updates")), 0);
    /* Nothing was trained, so nothing was evaluated. */
    assert_false(s_exists(dir, "eval-final.json"));
    json_decref(s);
}

static void test_eval_seat_refused_before_training(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/badseat", s_tmp);
    const char *args[] = {"--eval.seat2", "bot:honest", NULL};
    double t0 = ag_now();
    int status = s_agora_run(dir, args, s_noop, NULL);
    assert_int_equal(status, 1);
    assert_true(ag_now() - t0 < 60);
    json_t *s = s_load(dir, "summary.json");
    assert_non_null(s);
    assert_string_equal(json_string_value(json_object_get(s, "status")), "failed");
    assert_non_null(strstr(json_string_value(json_object_get(s, "error")), "eval.seat2"));
    json_decref(s);
    assert_false(s_exists(dir, "logs/learner.log"));
}

static int s_setup(void **state)
{
    (void)state;
    return harness_mkdtemp(s_tmp, sizeof s_tmp, "agora-launcher") == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    harness_rmtree(s_tmp);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PATH/TO/agora PATH/TO/agora-env PATH/TO/smoke.ini\n", argv[0]);
        return 2;
    }
    s_agora = argv[1];
    s_env_exe = argv[2];
    s_runfile = argv[3];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attached_env_server),
        cmocka_unit_test(test_untrainable_run_fails),
        cmocka_unit_test(test_eval_seat_refused_before_training),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
