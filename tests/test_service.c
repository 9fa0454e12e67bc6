/*
 * test_service.c - the service host (common/net/service.h) and its sidecar
 * files (common/net/sidecar.h): a worker that stops at the time limit, on a
 * stop request and on SIGTERM, checkpoint ticks, wake-ups of the loop
 * thread, the exit code after a failure; and sidecar files written and read
 * back, with every kind of damage refused with an error that names the file
 * and the member.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "service.h"
#include "sidecar.h"

/* ------------------------------------------------------------- service */

typedef struct run {
    int checkpoints; /* worker */
    int wakes;       /* loop thread */
    int stopped;     /* loop thread: on_stopped calls */
    int fail;        /* the worker fails instead of waiting */
    int raise_term;  /* the worker sends itself SIGTERM */
} run_t;

/* Waits for stop, taking checkpoints, as a trainer between steps. */
static void s_work(ag_service_t *svc, void *arg)
{
    run_t *r = arg;
    if (r->fail) {
        ag_service_fail(svc, "test failure %d", 42);
        return;
    }
    if (r->raise_term)
        kill(getpid(), SIGTERM);
    ag_service_wake(svc);
    ag_service_lock(svc);
    while (!ag_service_stopping(svc)) {
        if (ag_service_checkpoint_take(svc))
            r->checkpoints++;
        ag_service_wait(svc, 5.0);
    }
    ag_service_unlock(svc);
}

static void s_on_wake(void *arg)
{
    ((run_t *)arg)->wakes++;
}

static void s_on_stopped(void *arg)
{
    ((run_t *)arg)->stopped++;
}

static int s_run(run_t *r, double max_seconds, double ckpt_s, bool signals, double *took)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    const ag_service_config_t c = {.name = "test",
                                   .max_seconds = max_seconds,
                                   .checkpoint_interval_s = ckpt_s,
                                   .signals = signals,
                                   .work = s_work,
                                   .on_wake = s_on_wake,
                                   .on_stopped = s_on_stopped,
                                   .arg = r};
    ag_service_t *svc = ag_service_create(&loop, &c);
    assert_non_null(svc);
    uv_update_time(&loop);
    const uint64_t t0 = uv_now(&loop);
    assert_int_equal(ag_service_start(svc), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_update_time(&loop);
    *took = (double)(uv_now(&loop) - t0) / 1000.0;
    const int code = ag_service_exit_code(svc);
    ag_service_destroy(&svc);
    assert_null(svc);
    assert_int_equal(uv_loop_close(&loop), 0); /* every handle closed */
    return code;
}

static void test_time_limit_and_checkpoints(void **state)
{
    (void)state;
    run_t r = {0};
    double took;
    assert_int_equal(s_run(&r, 0.5, 0.1, false, &took), 0);
    assert_true(took >= 0.45 && took < 4.0);
    assert_true(r.checkpoints >= 2 && r.checkpoints <= 6);
    assert_int_equal(r.wakes >= 1, 1);
    assert_int_equal(r.stopped, 1);
}

static void test_signal_stops(void **state)
{
    (void)state;
    run_t r = {.raise_term = 1};
    double took;
    /* without the signal it would run for 30 s */
    assert_int_equal(s_run(&r, 30.0, 0, true, &took), 0);
    assert_true(took < 10.0);
    assert_int_equal(r.stopped, 1);
    assert_int_equal(r.checkpoints, 0);
}

static void test_failure_exit_code(void **state)
{
    (void)state;
    run_t r = {.fail = 1};
    double took;
    assert_int_equal(s_run(&r, 30.0, 0, false, &took), 1);
    assert_true(took < 10.0); /* the worker's end ends the loop */
    assert_int_equal(r.stopped, 1);
    assert_int_equal(ag_service_exit_code(NULL), 1);
}

/* Never started: closed through the loop, on_stopped called once. */
static void test_close_unstarted(void **state)
{
    (void)state;
    run_t r = {0};
    uv_loop_t loop;
    uv_loop_init(&loop);
    const ag_service_config_t c = {
        .name = "test", .work = s_work, .on_stopped = s_on_stopped, .arg = &r};
    ag_service_t *svc = ag_service_create(&loop, &c);
    assert_non_null(svc);
    ag_service_lock(svc); /* usable before the worker exists */
    ag_service_unlock(svc);
    ag_service_close(svc);
    assert_int_equal(r.stopped, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    ag_service_destroy(&svc);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* and one destroyed without the loop ever running */
    uv_loop_init(&loop);
    svc = ag_service_create(&loop, &c);
    ag_service_destroy(&svc);
    assert_int_equal(uv_loop_close(&loop), 0);
    ag_service_destroy(NULL);
}

/* ------------------------------------------------------------- sidecar */

static void s_tmp(char *out, size_t cap, const char *name)
{
    const char *t = getenv("TMPDIR");
    snprintf(out, cap, "%s/agora-sidecar-%d-%s", t && *t ? t : "/tmp", (int)getpid(), name);
}

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_sidecar_round_trip(void **state)
{
    (void)state;
    char path[256], err[512];
    s_tmp(path, sizeof path, "ok.json");
    json_t *root =
        json_pack("{s:o,s:f,s:{s:i},s:[i,i]}", "big", ag_sidecar_u64_new(0xfedcba9876543210ULL),
                  "x", 2.5, "o", "c", 5, "a", 1, 2);
    assert_int_equal(ag_sidecar_save(path, "agora-test/1", root, err, sizeof err), 0);
    json_decref(root);
    ag_sidecar_t sc;
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), 0);
    uint64_t big = 0, c = 0;
    double x = 0;
    assert_int_equal(ag_sidecar_u64(&sc, NULL, "big", UINT64_MAX, &big), 0);
    assert_true(big == 0xfedcba9876543210ULL);
    assert_int_equal(ag_sidecar_number(&sc, NULL, "x", 0, 10, &x), 0);
    assert_true(x == 2.5);
    const json_t *o = ag_sidecar_object(&sc, NULL, "o");
    assert_non_null(o);
    assert_int_equal(ag_sidecar_u64(&sc, o, "c", 5, &c), 0); /* an integer is taken too */
    assert_int_equal(c, 5);
    assert_non_null(ag_sidecar_array(&sc, NULL, "a"));
    assert_true(ag_sidecar_ok(&sc));
    ag_sidecar_close(&sc);
    /* another format is refused by name */
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-other/1", 0), -EINVAL);
    assert_non_null(strstr(sc.err, path));
    assert_non_null(strstr(sc.err, "agora-other/1"));
    assert_non_null(strstr(sc.err, "agora-test/1"));
    ag_sidecar_close(&sc);
    unlink(path);
}

/* Each damaged member fails with the file, the member and what was expected. */
static void test_sidecar_damage(void **state)
{
    (void)state;
    char path[256];
    s_tmp(path, sizeof path, "bad.json");
    static const struct {
        const char *value; /* of member "n" */
        const char *expected;
    } bad[] = {
        {"\"-1\"", "unsigned integer"}, {"\"12x\"", "unsigned integer"},
        {"\"\"", "unsigned integer"},   {"1.5", "unsigned integer"},
        {"-3", "unsigned integer"},     {"\"18446744073709551616\"", "unsigned integer"},
        {"101", "up to 100"},           {"null", "unsigned integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"format\": \"agora-test/1\", \"n\": %s, \"m\": 1}",
                 bad[i].value);
        s_write(path, text);
        ag_sidecar_t sc;
        assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), 0);
        uint64_t n = 7, m = 0;
        assert_int_equal(ag_sidecar_u64(&sc, NULL, "n", 100, &n), -EINVAL);
        assert_int_equal(n, 7); /* untouched */
        assert_non_null(strstr(sc.err, path));
        assert_non_null(strstr(sc.err, "\"n\""));
        assert_non_null(strstr(sc.err, bad[i].expected));
        /* later getters fail too, and the first error stays */
        assert_int_equal(ag_sidecar_u64(&sc, NULL, "m", 100, &m), -EINVAL);
        assert_non_null(strstr(sc.err, "\"n\""));
        assert_false(ag_sidecar_ok(&sc));
        char why[1200];
        assert_true(ag_sidecar_forgive(&sc, why, sizeof why));
        assert_non_null(strstr(why, "\"n\""));
        assert_int_equal(ag_sidecar_u64(&sc, NULL, "m", 100, &m), 0);
        assert_int_equal(m, 1);
        ag_sidecar_close(&sc);
    }
    /* numbers, objects and arrays */
    s_write(path, "{\"format\": \"agora-test/1\", \"x\": 11, \"o\": [], \"a\": {}}");
    ag_sidecar_t sc;
    double x;
    char why[1200];
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), 0);
    assert_int_equal(ag_sidecar_number(&sc, NULL, "x", 0, 10, &x), -EINVAL);
    assert_non_null(strstr(sc.err, "[0, 10]"));
    ag_sidecar_forgive(&sc, why, sizeof why);
    assert_null(ag_sidecar_object(&sc, NULL, "o"));
    assert_non_null(strstr(sc.err, "an object"));
    ag_sidecar_forgive(&sc, why, sizeof why);
    assert_null(ag_sidecar_array(&sc, NULL, "a"));
    assert_non_null(strstr(sc.err, "an array"));
    ag_sidecar_close(&sc);
    /* not JSON, not an object, no format, no file */
    s_write(path, "{\"format\": ");
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), -EINVAL);
    assert_non_null(strstr(sc.err, "line"));
    ag_sidecar_close(&sc);
    s_write(path, "[1]");
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), -EINVAL);
    assert_non_null(strstr(sc.err, "not a JSON object"));
    ag_sidecar_close(&sc);
    s_write(path, "{\"n\": 1}");
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), -EINVAL);
    assert_non_null(strstr(sc.err, "missing"));
    ag_sidecar_close(&sc);
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", AG_SIDECAR_UNTAGGED_OK), 0);
    ag_sidecar_close(&sc);
    unlink(path);
    assert_int_equal(ag_sidecar_open(&sc, path, "agora-test/1", 0), -ENOENT);
    ag_sidecar_close(&sc);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_limit_and_checkpoints), cmocka_unit_test(test_signal_stops),
        cmocka_unit_test(test_failure_exit_code),          cmocka_unit_test(test_close_unstarted),
        cmocka_unit_test(test_sidecar_round_trip),         cmocka_unit_test(test_sidecar_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
