/*
 * test_config.c - run files, command-line overrides and typed getters of
 * common/net/config.c, and the effective run file a learner hands out
 * (ag_config_run_text, read back with ag_config_load_string).
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

/* A binary's options as one struct, filled from one typed table. */
typedef struct {
    const char *bind;
    int workers;
    long ttl;
    uint64_t seed;
    float lr;
    double ratio;
    bool fast;
    int mode;
} typed_t;

static const ag_opt_choice_t s_modes[] = {{"k1", 1}, {"k3", 3}, {NULL, 0}};

static const ag_option_t s_typed[] = {
    AG_OPT(typed_t, bind, "svc.bind", "bind", "tcp://*:5570", 1, 64, "endpoint"),
    AG_OPT(typed_t, workers, "svc.workers", NULL, "2", 1, 16, "workers"),
    AG_OPT(typed_t, ttl, "svc.ttl", "ttl", "300", 0, 1L << 40, "ttl"),
    AG_OPT(typed_t, seed, "svc.seed", NULL, "7", 0, 0, "seed"),
    AG_OPT(typed_t, lr, "svc.lr", NULL, "3e-4", 0, 10, "rate"),
    AG_OPT(typed_t, ratio, "svc.ratio", NULL, "0.5", 0, 1, "a | ratio"),
    AG_OPT(typed_t, fast, "svc.fast", NULL, "off", 0, 0, "a flag"),
    AG_OPT_CHOICE(typed_t, mode, "svc.mode", NULL, "k3", s_modes, "estimator"),
    AG_OPT_TEXT("svc.extra", NULL, "", "read by key"),
};
#define N_TYPED (sizeof s_typed / sizeof s_typed[0])

static void test_typed_defaults(void **state)
{
    typed_t t;
    memset(&t, 0xab, sizeof t);
    assert_int_equal(ag_option_defaults(s_typed, N_TYPED, &t), 0);
    assert_string_equal(t.bind, "tcp://*:5570");
    assert_int_equal(t.workers, 2);
    assert_int_equal(t.ttl, 300);
    assert_true(t.seed == 7);
    assert_true(t.lr == 3e-4f);
    assert_true(t.ratio == 0.5);
    assert_false(t.fast);
    assert_int_equal(t.mode, 3);

    /* A default outside its own range is caught (the table is wrong). */
    ag_option_t bad = AG_OPT(typed_t, workers, "svc.workers", NULL, "0", 1, 16, "workers");
    assert_int_equal(ag_option_defaults(&bad, 1, &t), -1);
}

static void test_typed_apply(void **state)
{
    ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
    const char *argv[] = {"t",           "--bind",     "tcp://h:1", "--svc.workers=16",
                          "--ttl",       "0x10",       "--svc.seed", "18446744073709551615",
                          "--svc.lr",    "1",          "--svc.fast", "yes",
                          "--svc.mode",  "k1",         "--svc.extra", "x=1"};
    assert_int_equal(s_parse(c, (int)(sizeof argv / sizeof argv[0]), argv), 0);
    typed_t t;
    assert_int_equal(ag_config_apply(c, &t), 0);
    assert_string_equal(t.bind, "tcp://h:1");
    assert_int_equal(t.workers, 16);
    assert_int_equal(t.ttl, 16);
    assert_true(t.seed == UINT64_MAX);
    assert_true(t.lr == 1.0f);
    assert_true(t.fast);
    assert_int_equal(t.mode, 1);
    assert_string_equal(ag_config_str(c, "svc.extra"), "x=1");
    ag_config_destroy(&c);
}

/* A bool row given alone is true; one followed by a value takes it. */
static void test_flag_alone(void **state)
{
    const char *const cases[][4] = {
        {"t", "--svc.fast", NULL, NULL},    /* last */
        {"t", "--svc.fast", "--ttl", "3"},  /* before another option */
        {"t", "--svc.fast", "false", NULL}, /* with a value */
    };
    const int argc[] = {2, 4, 3};
    const bool want[] = {true, true, false};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
        assert_int_equal(s_parse(c, argc[i], (const char **)cases[i]), 0);
        typed_t t;
        assert_int_equal(ag_config_apply(c, &t), 0);
        assert_int_equal(t.fast, want[i]);
        ag_config_destroy(&c);
    }
    /* Only a flag may stand alone. */
    ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
    const char *argv[] = {"t", "--svc.lr", "--svc.fast"};
    assert_true(s_parse(c, 3, argv) == 0);
    typed_t t;
    assert_int_equal(ag_config_apply(c, &t), -1); /* lr = "--svc.fast" */
    ag_config_destroy(&c);
}

static void test_typed_errors(void **state)
{
    /* Each value is wrong for its row; every one is refused and the field keeps its value. */
    static const char *const cases[][2] = {
        {"svc.bind", ""},          /* may not be empty */
        {"svc.workers", "17"},     /* above the range */
        {"svc.workers", "3000000000"}, /* not an int */
        {"svc.ttl", "-1"},         /* below the range */
        {"svc.ttl", "12abc"},      /* trailing text */
        {"svc.seed", "-1"},        /* a negative unsigned */
        {"svc.seed", "18446744073709551616"}, /* overflow */
        {"svc.lr", "nan"},         /* not finite */
        {"svc.ratio", "1.5"},      /* above the range */
        {"svc.fast", "maybe"},     /* not a flag */
        {"svc.mode", "k2"},        /* not a choice */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
        assert_int_equal(ag_config_set(c, cases[i][0], cases[i][1]), 0);
        typed_t t;
        assert_int_equal(ag_option_defaults(s_typed, N_TYPED, &t), 0);
        typed_t before = t;
        assert_int_equal(ag_config_apply(c, &t), -1);
        /* The good rows store their (default) values again; the bad one stores nothing. */
        assert_string_equal(t.bind, before.bind);
        t.bind = before.bind;
        assert_memory_equal(&t, &before, sizeof t);
        ag_config_destroy(&c);
    }
    char big[80];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
    assert_int_equal(ag_config_set(c, "svc.bind", big), 0); /* longer than 64 */
    typed_t t;
    assert_int_equal(ag_config_apply(c, &t), -1);
    ag_config_destroy(&c);
}

/* --help-markdown prints one row per option, with its default, values and meaning. */
static void test_markdown(void **state)
{
    ag_config_t *c = ag_config_create("t", "", "", s_typed, N_TYPED, 0);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    ag_config_print_markdown(c, f);
    fclose(f);
    assert_non_null(strstr(text, "| option | command line | default | values | meaning |\n"));
    assert_non_null(strstr(text, "| `svc.bind` | `--bind` | `tcp://*:5570` | not empty, 64 "
                                 "characters at most | endpoint |\n"));
    assert_non_null(strstr(text, "| `svc.workers` |  | `2` | 1 .. 16 | workers |\n"));
    assert_non_null(strstr(text, "| `svc.ratio` |  | `0.5` | 0 .. 1 | a \\| ratio |\n"));
    assert_non_null(strstr(text, "| `svc.mode` |  | `k3` | k1, k3 | estimator |\n"));
    assert_non_null(strstr(text, "| `log.level` | `--log-level` | `info` | debug, info, warn, "
                                 "error | log threshold |\n"));
    size_t rows = 0;
    for (const char *p = text; (p = strchr(p, '\n')); p++)
        rows++;
    assert_int_equal(rows, 2 + N_TYPED + 1);
    free(text);
    ag_config_destroy(&c);
}

static void test_help(void **state)
{
    ag_config_t *c = ag_config_create("t", "[options]", "summary", s_opts, N_OPTS, 0);
    const char *argv[] = {"t", "--help"};
    assert_int_equal(s_parse(c, 2, argv), 1);
    ag_config_destroy(&c);
}

/* The run file's text, then the overrides: read back, every key has the same value. */
static void test_run_text_round_trip(void **state)
{
    s_write("[env]\nbind = tcp://*:6000\nfast = true\n[other]\nkey = kept as text\n");
    ag_config_t *a = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *argv[] = {"t", "--config", s_path, "--episode-ttl", "42", "--env.ratio=0.25"};
    assert_int_equal(s_parse(a, 6, argv), 0);
    assert_true(ag_config_is_set(a, "env.bind"));          /* from the file */
    assert_true(ag_config_is_set(a, "env.episode_ttl_s")); /* from the command line */
    assert_false(ag_config_is_set(a, "log.level"));        /* a default */
    assert_false(ag_config_is_set(a, "env.nope"));
    char *text = ag_config_run_text(a);
    assert_non_null(text);
    /* the file comes first, whole (other binaries' sections included), then the overrides */
    assert_non_null(strstr(text, "[other]\nkey = kept as text\n"));
    assert_true(strstr(text, "episode_ttl_s = 42") > strstr(text, "bind = tcp://*:6000"));
    ag_config_t *b = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    assert_int_equal(ag_config_load_string(b, text, "the learner's run file"), 0);
    for (size_t i = 0; i < N_OPTS; i++)
        assert_string_equal(ag_config_str(b, s_opts[i].key), ag_config_str(a, s_opts[i].key));
    assert_true(ag_config_is_set(b, "env.ratio"));
    free(text);
    ag_config_destroy(&a);
    ag_config_destroy(&b);
    unlink(s_path);
}

/* A command-line value INI cannot hold on one line is left out of the text, not cut. */
static void test_run_text_skips_line_breaks(void **state)
{
    ag_config_t *a = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    const char *argv[] = {"t", "--bind", "tcp://a:1\n[env]\nfast = true", "--episode-ttl", "7"};
    assert_int_equal(s_parse(a, 5, argv), 0);
    char *text = ag_config_run_text(a);
    assert_non_null(text);
    assert_null(strstr(text, "fast"));
    assert_non_null(strstr(text, "episode_ttl_s = 7"));
    free(text);
    ag_config_destroy(&a);
}

/* A string loaded as a run file follows the file rules: errors name it. */
static void test_load_string_errors(void **state)
{
    ag_config_t *c = ag_config_create("t", "", "", s_opts, N_OPTS, 0);
    assert_int_equal(ag_config_load_string(c, "[env]\nbind = tcp://h:1\n", "x"), 0);
    assert_string_equal(ag_config_str(c, "env.bind"), "tcp://h:1");
    assert_int_not_equal(ag_config_load_string(c, "[env]\nnope = 1\n", "x"), 0);
    assert_int_not_equal(ag_config_load_string(c, "[env\nbind = 1\n", "x"), 0);
    assert_int_equal(ag_config_load_string(c, "[elsewhere]\nanything = 1\n", "x"), 0);
    assert_int_equal(ag_config_load_string(c, "", "x"), 0);
    ag_config_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_run_file_then_overrides),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_typed_defaults),
        cmocka_unit_test(test_typed_apply),
        cmocka_unit_test(test_flag_alone),
        cmocka_unit_test(test_typed_errors),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_run_text_round_trip),
        cmocka_unit_test(test_run_text_skips_line_breaks),
        cmocka_unit_test(test_load_string_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
