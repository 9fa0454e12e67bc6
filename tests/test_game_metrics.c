/*
 * test_game_metrics.c - a game's declared metrics over many episodes
 * (actor/game_metrics.h, protocol.md §8.1): means over the episodes that
 * reported a metric, ratios of sums, the headline, and declarations that
 * break the rules left out rather than trusted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "game_metrics.h"

typedef struct {
    const char *name, *num, *den;
    bool headline;
} decl_t;

/* A GameSpec declaring decls (n of them); the storage lives in the caller's arrays. */
static void s_spec(Agora__V1__GameSpec *spec, Agora__V1__MetricSpec *ms,
                   Agora__V1__MetricSpec **msp, const decl_t *decls, size_t n)
{
    agora__v1__game_spec__init(spec);
    spec->name = "testgame";
    for (size_t i = 0; i < n; i++) {
        agora__v1__metric_spec__init(&ms[i]);
        ms[i].name = (char *)decls[i].name;
        ms[i].numerator = (char *)(decls[i].num ? decls[i].num : "");
        ms[i].denominator = (char *)(decls[i].den ? decls[i].den : "");
        ms[i].headline = decls[i].headline;
        msp[i] = &ms[i];
    }
    spec->n_metrics = n;
    spec->metrics = msp;
}

/* One episode reporting the n (name, value) pairs. */
static void s_episode(ag_game_metrics_t *gm, const char *const *names, const double *values,
                      size_t n)
{
    Agora__V1__Metric m[8], *mp[8];
    for (size_t i = 0; i < n; i++) {
        agora__v1__metric__init(&m[i]);
        m[i].name = (char *)names[i];
        m[i].value = values[i];
        mp[i] = &m[i];
    }
    ag_game_metrics_add(gm, mp, n);
}

static int s_index(const ag_game_metrics_t *gm, const char *name)
{
    for (size_t i = 0; i < ag_game_metrics_count(gm); i++)
        if (!strcmp(ag_game_metrics_name(gm, i), name))
            return (int)i;
    return -1;
}

static double s_value(const ag_game_metrics_t *gm, const char *name)
{
    int i = s_index(gm, name);
    assert_true(i >= 0);
    double v = NAN;
    return ag_game_metrics_value(gm, (size_t)i, &v) ? v : NAN;
}

static void test_means_and_ratios(void **state)
{
    (void)state;
    const decl_t decls[] = {
        {"accuracy", NULL, NULL, true},
        {"precision", "tp", "flags", false},
        {"recall", "tp", "errors", false},
        {"never_reported", NULL, NULL, false},
    };
    Agora__V1__GameSpec spec;
    Agora__V1__MetricSpec ms[4], *msp[4];
    s_spec(&spec, ms, msp, decls, 4);
    ag_game_metrics_t *gm = ag_game_metrics_create(&spec);
    assert_non_null(gm);
    assert_int_equal(ag_game_metrics_count(gm), 4);
    assert_int_equal(ag_game_metrics_headline(gm), 0);

    const char *names[] = {"accuracy", "tp", "flags", "errors"};
    s_episode(gm, names, (const double[]){1, 1, 1, 2}, 4);
    s_episode(gm, names, (const double[]){0, 0, 3, 0}, 4);
    s_episode(gm, names, (const double[]){1, 2, 2, 2}, 4);
    /* an episode that reports only "tp" (and a non-finite value, skipped) */
    s_episode(gm, (const char *const[]){"tp", "accuracy"}, (const double[]){1, NAN}, 2);

    /* a mean over the episodes that reported it: (1 + 0 + 1) / 3 */
    assert_true(fabs(s_value(gm, "accuracy") - 2.0 / 3.0) < 1e-12);
    /* ratios of sums, not means of ratios: tp 4 over flags 6 and over errors 4 */
    assert_true(fabs(s_value(gm, "precision") - 4.0 / 6.0) < 1e-12);
    assert_true(fabs(s_value(gm, "recall") - 1.0) < 1e-12);
    assert_true(isnan(s_value(gm, "never_reported")));

    /* every reported metric has its mean, declared or not */
    assert_int_equal(ag_game_metrics_reported(gm), 4);
    for (size_t i = 0; i < ag_game_metrics_reported(gm); i++)
        if (!strcmp(ag_game_metrics_reported_name(gm, i), "tp"))
            assert_true(fabs(ag_game_metrics_reported_mean(gm, i) - 1.0) < 1e-12);
    ag_game_metrics_destroy(&gm);
    assert_null(gm);
    ag_game_metrics_destroy(&gm);
}

static void test_ratio_without_denominator(void **state)
{
    (void)state;
    const decl_t decls[] = {{"precision", "tp", "flags", false}};
    Agora__V1__GameSpec spec;
    Agora__V1__MetricSpec ms[1], *msp[1];
    s_spec(&spec, ms, msp, decls, 1);
    ag_game_metrics_t *gm = ag_game_metrics_create(&spec);
    assert_non_null(gm);
    /* no flag raised in any episode: the precision is undefined, not 0 */
    const char *names[] = {"tp", "flags"};
    s_episode(gm, names, (const double[]){0, 0}, 2);
    assert_true(isnan(s_value(gm, "precision")));
    assert_int_equal(ag_game_metrics_headline(gm), -1);
    ag_game_metrics_destroy(&gm);
}

static void test_bad_declarations_left_out(void **state)
{
    (void)state;
    const decl_t decls[] = {
        {"good", NULL, NULL, true},
        {"bad name", NULL, NULL, false},
        {"", NULL, NULL, false},
        {"half_ratio", "tp", NULL, false},
        {"bad_ratio", "tp", "x;y", false},
        {"good", NULL, NULL, false},  /* declared twice */
        {"second", NULL, NULL, true}, /* a second headline: kept, not the headline */
        {"a_very_long_name_that_is_longer_than_sixty_four_characters_in_all_xx", NULL, NULL, false},
    };
    Agora__V1__GameSpec spec;
    Agora__V1__MetricSpec ms[8], *msp[8];
    s_spec(&spec, ms, msp, decls, 8);
    ms[2].name = NULL; /* a missing name is as bad as an empty one */
    ag_game_metrics_t *gm = ag_game_metrics_create(&spec);
    assert_non_null(gm);
    assert_int_equal(ag_game_metrics_count(gm), 2);
    assert_string_equal(ag_game_metrics_name(gm, 0), "good");
    assert_string_equal(ag_game_metrics_name(gm, 1), "second");
    assert_int_equal(ag_game_metrics_headline(gm), 0);
    /* reported metrics with bad names are not counted either */
    s_episode(gm, (const char *const[]){"bad name", "good"}, (const double[]){1, 0.5}, 2);
    assert_int_equal(ag_game_metrics_reported(gm), 1);
    assert_true(fabs(s_value(gm, "good") - 0.5) < 1e-12);
    ag_game_metrics_destroy(&gm);
}

static void test_no_declarations(void **state)
{
    (void)state;
    ag_game_metrics_t *gm = ag_game_metrics_create(NULL);
    assert_non_null(gm);
    assert_int_equal(ag_game_metrics_count(gm), 0);
    assert_int_equal(ag_game_metrics_headline(gm), -1);
    s_episode(gm, (const char *const[]){"moves"}, (const double[]){7}, 1);
    assert_int_equal(ag_game_metrics_reported(gm), 1);
    assert_true(ag_game_metrics_reported_mean(gm, 0) == 7.0);
    ag_game_metrics_destroy(&gm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_means_and_ratios),
        cmocka_unit_test(test_ratio_without_denominator),
        cmocka_unit_test(test_bad_declarations_left_out),
        cmocka_unit_test(test_no_declarations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
