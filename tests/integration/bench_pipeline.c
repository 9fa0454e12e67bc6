/*
 * bench_pipeline.c - `agora-bench pipeline RUN_DIR` on fake run directories
 * whose figures are known by hand: a run with the learner's per-update
 * timings (every share of the PPO time, padding and the passes' speeds
 * checked against values computed here from the fake numbers, and the
 * prediction against the isolated rates the tool printed), a run from an
 * older learner without them (score passes inferred from kl_coef, the
 * figures that need them null, a short mean length raised to 17), and bad
 * run directories, each of which must end with exit status 2 and a message
 * on stderr rather than a crash.
 *
 * usage: test_bench_pipeline PATH/TO/agora-bench
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "harness.h"

extern char **environ;

static const char *s_bench;
static char s_root[512];

typedef struct {
    int status; /* exit status, -1 if it did not run to its end */
    char *out, *err;
} result_t;

static void s_result_free(result_t *r)
{
    free(r->out);
    free(r->err);
}

/* Runs agora-bench pipeline on dir with a short measurement, its stdout and
 * stderr captured whole. */
static result_t s_run(const char *dir)
{
    result_t r = {-1, NULL, NULL};
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout", s_root);
    snprintf(err_path, sizeof err_path, "%s/stderr", s_root);
    char *argv[] = {(char *)s_bench, "pipeline", (char *)dir, "--runs", "1",
                    "--seconds",     "0.2",      NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int st;
    if (posix_spawn(&pid, s_bench, &fa, NULL, argv, environ) == 0 && waitpid(pid, &st, 0) == pid &&
        WIFEXITED(st))
        r.status = WEXITSTATUS(st);
    posix_spawn_file_actions_destroy(&fa);
    size_t len;
    r.out = (char *)harness_read_file(out_path, &len);
    r.err = (char *)harness_read_file(err_path, &len);
    return r;
}

/* Makes s_root/name with the given files (NULL content: the file is left out). */
static void s_make_run(char *dir, size_t cap, const char *name, const char *run_ini,
                       const char *summary, const char *metrics)
{
    snprintf(dir, cap, "%s/%s", s_root, name);
    assert_int_equal(mkdir(dir, 0755), 0);
    const char *names[] = {"run.ini", "summary.json", "metrics.jsonl"};
    const char *texts[] = {run_ini, summary, metrics};
    for (int i = 0; i < 3; i++) {
        if (!texts[i])
            continue;
        char path[700];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        assert_int_equal(harness_write_file(path, texts[i], strlen(texts[i])), 0);
    }
}

static double s_num(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("no number \"%s\" in the output", key);
    return json_number_value(v);
}

static void s_assert_near(double got, double want, double rel, const char *what)
{
    if (!(fabs(got - want) <= rel * fabs(want)))
        fail_msg("%s: got %.12g, want %.12g", what, got, want);
}

static void s_assert_null(const json_t *o, const char *key)
{
    if (!json_is_null(json_object_get(o, key)))
        fail_msg("\"%s\" should be null", key);
}

/* A tiny model, read from the run file; 3 epochs so the default (2) would show. */
static const char s_run_ini[] = "# fake run file\n"
                                "[run]\n"
                                "name = fake\n"
                                "[model]\n"
                                "d_model = 32\n"
                                "n_layers = 1\n"
                                "n_heads = 1\n"
                                "ctx = 64\n"
                                "[learner]\n"
                                "threads = 1\n"
                                "max_staleness = 4\n"
                                "[ppo]\n"
                                "epochs = 3\n"
                                "minibatch = 4\n"
                                "microbatch = 3\n";

static const char s_summary[] =
    "{\"name\":\"fake\",\"status\":\"completed\",\"tokens_trained\":300,"
    "\"ppo_s\":4.0,\"tokens_trained_per_s\":75.0}\n";

/*
 * Three updates: 300 tokens in 12 sequences (mean length 25), 3.0 s of
 * updates of which 0.6 s scoring and 1.9 s training, 720 + 1080 positions
 * computed, 4 score passes in all on the trainer and one reference pass
 * run ahead (the second update's). An eval record and a blank line must be
 * ignored.
 */
static const char s_metrics[] =
    "{\"update\":0,\"phase\":\"warmstart\",\"time_s\":2.0,\"tokens\":5000.0,\"ce\":2.5}\n"
    "{\"update\":1,\"phase\":\"ppo\",\"tokens\":100.0,\"sequences\":4,\"update_s\":1.0,"
    "\"score_s\":0.2,\"train_s\":0.6,\"score_positions\":240.0,\"train_positions\":360.0,"
    "\"score_passes\":2,\"kl_coef\":0.02,\"reference_ahead\":0}\n"
    "\n"
    "{\"update\":2,\"phase\":\"ppo\",\"tokens\":120.0,\"sequences\":4,\"update_s\":1.5,"
    "\"score_s\":0.3,\"train_s\":1.0,\"score_positions\":280.0,\"train_positions\":420.0,"
    "\"score_passes\":1,\"kl_coef\":0.02,\"reference_ahead\":1}\n"
    "{\"phase\":\"eval\",\"tokens\":999999.0,\"sequences\":1,\"update_s\":100.0}\n"
    "{\"update\":3,\"phase\":\"ppo\",\"tokens\":80.0,\"sequences\":4,\"update_s\":0.5,"
    "\"score_s\":0.1,\"train_s\":0.3,\"score_positions\":200.0,\"train_positions\":300.0,"
    "\"score_passes\":1,\"kl_coef\":0.0,\"reference_ahead\":0}\n";

static void test_figures(void **state)
{
    (void)state;
    char dir[600];
    s_make_run(dir, sizeof dir, "full", s_run_ini, s_summary, s_metrics);
    result_t r = s_run(dir);
    if (r.status != 0)
        fail_msg("exit status %d, stderr: %s", r.status, r.err ? r.err : "");
    assert_non_null(r.out);
    assert_non_null(strchr(r.out, '\n'));
    json_t *o = json_loads(r.out, 0, NULL);
    assert_true(json_is_object(o));
    assert_string_equal(json_string_value(json_object_get(o, "run_dir")), dir);
    assert_int_equal((int)s_num(o, "d_model"), 32);
    assert_int_equal((int)s_num(o, "layers"), 1);
    assert_int_equal((int)s_num(o, "heads"), 1);
    assert_int_equal((int)s_num(o, "threads"), 1);
    assert_int_equal((int)s_num(o, "minibatch"), 4);
    assert_int_equal((int)s_num(o, "rows_per_pass"), 3);
    assert_int_equal((int)s_num(o, "epochs"), 3);
    assert_int_equal((int)s_num(o, "seq_len"), 25);
    assert_int_equal((int)s_num(o, "updates"), 3);
    const double E = 3.0, P = 4.0 / 3.0, A = 1.0 / 3.0, N = 300.0;
    s_assert_near(s_num(o, "score_passes"), P, 1e-8, "score_passes");
    s_assert_near(s_num(o, "achieved_tokens_per_s"), 75.0, 1e-12, "achieved");
    s_assert_near(s_num(o, "wait"), 0.25, 1e-8, "wait");
    s_assert_near(s_num(o, "scoring"), 0.15, 1e-8, "scoring");
    s_assert_near(s_num(o, "training"), 0.475, 1e-8, "training");
    s_assert_near(s_num(o, "other"), 0.125, 1e-8, "other");
    s_assert_near(s_num(o, "padding"), 1.0 - N * (E + P) / 1800.0, 1e-8, "padding");

    const double train = s_num(o, "isolated_train_tokens_per_s"),
                 score = s_num(o, "isolated_score_tokens_per_s");
    assert_true(train > 0.0);
    assert_true(score > 0.0);
    const double predicted = s_num(o, "predicted_tokens_per_s");
    s_assert_near(predicted, 1.0 / (E / train + P / score), 1e-6, "predicted");
    s_assert_near(s_num(o, "efficiency"), 75.0 / predicted, 1e-6, "efficiency");
    s_assert_near(s_num(o, "reference_ahead"), A, 1e-8, "reference_ahead");
    const double all = s_num(o, "predicted_all_work_tokens_per_s");
    s_assert_near(all, 1.0 / (E / train + (P + A) / score), 1e-6, "predicted_all_work");
    s_assert_near(s_num(o, "efficiency_all_work"), 75.0 / all, 1e-6, "efficiency_all_work");
    s_assert_near(s_num(o, "train_speed"), E * N / train / 1.9, 1e-6, "train_speed");
    s_assert_near(s_num(o, "score_speed"), P * N / score / 0.6, 1e-6, "score_speed");
    assert_true(json_is_number(json_object_get(o, "loadavg_1m")));
    assert_int_equal(json_array_size(json_object_get(o, "notes")), 0);
    json_decref(o);
    s_result_free(&r);
}

/* An older learner's records: no timings of the passes, kl_coef only. */
static void test_older_records(void **state)
{
    (void)state;
    static const char ini[] = "[model]\nd_model = 32\nn_layers = 1\nn_heads = 1\nctx = 64\n"
                              "[learner]\nthreads = 1\n";
    static const char metrics[] =
        "{\"phase\":\"ppo\",\"tokens\":10.0,\"sequences\":1,\"update_s\":0.5,\"kl_coef\":0.02}\n"
        "{\"phase\":\"ppo\",\"tokens\":4.0,\"sequences\":1,\"update_s\":0.5,\"kl_coef\":0.02}\n";
    char dir[600];
    s_make_run(dir, sizeof dir, "older", ini, s_summary, metrics);
    result_t r = s_run(dir);
    if (r.status != 0)
        fail_msg("exit status %d, stderr: %s", r.status, r.err ? r.err : "");
    json_t *o = json_loads(r.out, 0, NULL);
    assert_true(json_is_object(o));
    /* learner defaults: 2 epochs, 32 rows per minibatch */
    assert_int_equal((int)s_num(o, "epochs"), 2);
    assert_int_equal((int)s_num(o, "minibatch"), 32);
    assert_int_equal((int)s_num(o, "seq_len"), 17);
    s_assert_near(s_num(o, "score_passes"), 2.0, 1e-12, "score_passes");
    s_assert_near(s_num(o, "wait"), 0.75, 1e-8, "wait");
    s_assert_null(o, "scoring");
    s_assert_null(o, "training");
    s_assert_null(o, "other");
    s_assert_null(o, "padding");
    s_assert_null(o, "train_speed");
    s_assert_null(o, "score_speed");
    assert_true(json_array_size(json_object_get(o, "notes")) >= 1);
    const double predicted = s_num(o, "predicted_tokens_per_s");
    s_assert_near(predicted,
                  1.0 / (2.0 / s_num(o, "isolated_train_tokens_per_s") +
                         2.0 / s_num(o, "isolated_score_tokens_per_s")),
                  1e-6, "predicted");
    json_decref(o);
    s_result_free(&r);
}

/* Exit status 2, nothing on stdout, and a message on stderr naming what. */
static void s_expect_error(const char *dir, const char *what)
{
    result_t r = s_run(dir);
    assert_int_equal(r.status, 2);
    assert_non_null(r.out);
    assert_string_equal(r.out, "");
    assert_non_null(r.err);
    if (!strstr(r.err, what))
        fail_msg("stderr does not mention %s: %s", what, r.err);
    const char *nl = strchr(r.err, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0'); /* one line */
    s_result_free(&r);
}

static void test_missing_dir(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof dir, "%s/no-such-run", s_root);
    s_expect_error(dir, "no-such-run");
}

static void test_garbage_metrics(void **state)
{
    (void)state;
    char dir[600];
    s_make_run(dir, sizeof dir, "garbage", s_run_ini, s_summary,
               "not json\n{\"phase\":\"ppo\",\"tokens\":\n\x01\x02\xff\n[1,2]\n");
    s_expect_error(dir, "metrics.jsonl");
}

static void test_bad_d_model(void **state)
{
    (void)state;
    char dir[600];
    s_make_run(dir, sizeof dir, "bad-ini", "[model]\nd_model = abc\n", s_summary, s_metrics);
    s_expect_error(dir, "d_model");
}

static void test_bad_summary(void **state)
{
    (void)state;
    char dir[600];
    s_make_run(dir, sizeof dir, "bad-summary", s_run_ini, "{\"ppo_s\": 4.0,", s_metrics);
    s_expect_error(dir, "summary.json");
    s_make_run(dir, sizeof dir, "no-summary", s_run_ini, NULL, s_metrics);
    s_expect_error(dir, "summary.json");
}

static void test_bad_record(void **state)
{
    (void)state;
    char dir[600];
    s_make_run(dir, sizeof dir, "bad-record", s_run_ini, s_summary,
               "{\"phase\":\"ppo\",\"tokens\":\"many\",\"sequences\":4,\"update_s\":1.0}\n");
    s_expect_error(dir, "tokens");
    s_make_run(dir, sizeof dir, "heads", "[model]\nd_model = 30\nn_heads = 4\n", s_summary,
               s_metrics);
    s_expect_error(dir, "run.ini");
}

static int s_setup(void **state)
{
    (void)state;
    return harness_mkdtemp(s_root, sizeof s_root, "agora-bench-pipeline") == 0 ? 0 : -1;
}

static int s_teardown(void **state)
{
    (void)state;
    harness_rmtree(s_root);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH/TO/agora-bench\n", argv[0]);
        return 2;
    }
    s_bench = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_figures),     cmocka_unit_test(test_older_records),
        cmocka_unit_test(test_missing_dir), cmocka_unit_test(test_garbage_metrics),
        cmocka_unit_test(test_bad_d_model), cmocka_unit_test(test_bad_summary),
        cmocka_unit_test(test_bad_record),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
