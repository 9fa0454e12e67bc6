/*
 * test_config.c - run files, command-line overrides and typed getters of
 * common/net/config.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static const ag_option_t s_opts[] = {
    {"env.bind", "bind", "tcp://*:5570", "endpoint"},
    {"env.episode_ttl_s", "episode-ttl", "300", "ttl"},
    {"env.fast", NULL, "false", "a flag"},
    {"env.ratio", NULL, "0.5", "a ratio"},
};
#define N_OPTS (sizeof s_opts / sizeof s_opts[0])

static char s_path[64];

static void s_write(const char *text)
{
    snprintf(s_path, sizeof s_path, "/tmp/agora-test-config-%d.ini", (int)getpid());
    FILE *f = fopen(s_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int s_parse(ag_config_t *c, int argc, const char **argv)
{
    return ag_config_parse_args(c, argc, (char **)argv);
}

static void test_defaults(void **state)
{
    ag_config_t *c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *argv[] = {"t"};
    assert_int_equal(s_parse(c, 1, argv), 0);
    assert_string_equal(ag_config_str(c, "env.bind"), "tcp://*:5570");
    long ttl;
    assert_int_equal(ag_config_long(c, "env.episode_ttl_s", 1, 1000, &ttl), 0);
    assert_int_equal(ttl, 300);
    bool fast = true;
    assert_int_equal(ag_config_bool(c, "env.fast", &fast), 0);
    assert_false(fast);
    assert_null(ag_config_str(c, "env.nope"));
    ag_config_destroy(&c);
    assert_null(c);
    ag_config_destroy(&c);
}

static void test_run_file_then_overrides(void **state)
{
    s_write("# a cluster run file\n[env]\nbind = tcp://127.0.0.1:6000\nepisode_ttl_s = 60\n"
            "[learner]\nanything = goes\n");
    ag_config_t *c = ag_config_create("t", "", "", s_opts, N_OPTS, 1);
    /* The override stands before --config on the line and still wins. */
    const char *argv[] = {"t", "--episode-ttl=7", "--config", s_path, "--env.ratio", "0.25",
                          "positional"};
    assert_int_equal(s_parse(c, 7, argv), 0);
    assert_string_equal(ag_config_str(c, "env.bind"), "tcp://127.0.0.1:6000");
    long ttl;
    assert_int_equal(ag_config_long(c, "env.episode_ttl_s", 1, 1000, &ttl), 0);
    assert_int_equal(ttl, 7);
    double ratio;
    assert_int_equal(ag_config_double(c, "env.ratio", 0, 1, &ratio), 0);
    assert_true(ratio == 0.25);
    assert_int_equal(ag_config_positional_count(c), 1);
    assert_string_equal(ag_config_positional(c, 0), "positional");
    ag_config_destroy(&c);
    unlink(s_path);
}

static void test_errors(void **state)
{
    ag_config_t *c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *unknown[] = {"t", "--no-such-option", "1"};
    assert_true(s_parse(c, 3, unknown) < 0);
    ag_config_destroy(&c);

    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *extra[] = {"t", "stray"};
    assert_true(s_parse(c, 2, extra) < 0);
    ag_config_destroy(&c);

    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *missing[] = {"t", "--bind"};
    assert_true(s_parse(c, 2, missing) < 0);
    ag_config_destroy(&c);

    /* A typo inside a section this binary owns is an error. */
    s_write("[env]\nbnid = tcp://x\n");
    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *typo[] = {"t", "--config", s_path};
    assert_true(s_parse(c, 3, typo) < 0);
    ag_config_destroy(&c);

    s_write("[env\nbind = x\n");
    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    assert_true(s_parse(c, 3, typo) < 0);
    ag_config_destroy(&c);
    unlink(s_path);

    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *nofile[] = {"t", "--config", "/nonexistent/agora.ini"};
    assert_true(s_parse(c, 3, nofile) < 0);
    ag_config_destroy(&c);

    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *bad[] = {"t", "--episode-ttl", "12abc", "--env.fast", "maybe", "--env.ratio",
                         "nan"};
    assert_int_equal(s_parse(c, 7, bad), 0);
    long ttl;
    bool fast;
    double ratio;
    assert_true(ag_config_long(c, "env.episode_ttl_s", 1, 1000, &ttl) < 0);
    assert_true(ag_config_bool(c, "env.fast", &fast) < 0);
    assert_true(ag_config_double(c, "env.ratio", 0, 1, &ratio) < 0);
    ag_config_set(c, "env.episode_ttl_s", "5000");
    assert_true(ag_config_long(c, "env.episode_ttl_s", 1, 1000, &ttl) < 0);
    ag_config_destroy(&c);

    c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *level[] = {"t", "--log-level", "loud"};
    assert_true(s_parse(c, 3, level) < 0);
    ag_config_destroy(&c);
}

static void test_help(void **state)
{
    ag_config_t *c = ag_config_create("t", "[options]", "summary", s_opts, N_OPTS, 0);
    const char *argv[] = {"t", "--help"};
    assert_int_equal(s_parse(c, 2, argv), 1);
    ag_config_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_run_file_then_overrides),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_help),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
