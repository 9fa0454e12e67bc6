/*
 * test_metrics.c - the learner's figures of its game (learner/metrics.h):
 * every metric the trajectories carry under its own name as a mean, the
 * ratio metrics a game declares as a ratio of sums, per-seat win rates,
 * reward_mean, and the headline the progress line leads with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void s_metric(ag_traj_t *t, const char *name, double v)
{
    snprintf(t->metrics[t->n_metrics].name, AG_TRAJ_METRIC_NAME, "%s", name);
    t->metrics[t->n_metrics++].value = v;
}

static double s_num(const json_t *rec, const char *key)
{
    const json_t *v = json_object_get(rec, key);
    assert_true(json_is_number(v));
    return json_number_value(v);
}

static void test_batch_figures(void **state)
{
    (void)state;
    ag_traj_t *t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = calloc(1, sizeof *t[i]);
        assert_non_null(t[i]);
        t[i]->n_returns = 2;
        t[i]->returns[0] = i == 0 ? 1.0f : -1.0f;
        t[i]->returns[1] = -t[i]->returns[0];
    }
    /* judge_accuracy on every game, flags/hits on two: hits 1+1 over flags 2+2 */
    s_metric(t[0], "judge_accuracy", 1);
    s_metric(t[1], "judge_accuracy", 0);
    s_metric(t[2], "judge_accuracy", 1);
    s_metric(t[0], "flags", 2);
    s_metric(t[0], "hits", 1);
    s_metric(t[1], "flags", 2);
    s_metric(t[1], "hits", 1);
    /* The game's declarations, as its GameSpec carries them. */
    Agora__V1__MetricSpec ms[3];
    Agora__V1__MetricSpec *msp[3] = {&ms[0], &ms[1], &ms[2]};
    for (int i = 0; i < 3; i++)
        agora__v1__metric_spec__init(&ms[i]);
    ms[0].name = "precision";
    ms[0].numerator = "hits";
    ms[0].denominator = "flags";
    ms[1].name = "judge_accuracy";
    ms[1].headline = true;
    ms[2].name = "missing_ratio";
    ms[2].numerator = "hits";
    ms[2].denominator = "never_reported";
    Agora__V1__GameSpec spec = AGORA__V1__GAME_SPEC__INIT;
    spec.name = "somegame";
    spec.n_metrics = 3;
    spec.metrics = msp;
    ag_learner_game_t g = {.name = "somegame", .metrics = ag_game_metrics_create(&spec)};
    assert_non_null(g.metrics);

    json_t *rec = json_object();
    ag_metrics_game(rec, &g, t, 3);
    assert_float_equal(s_num(rec, "judge_accuracy"), 2.0 / 3.0, 1e-12);
    assert_float_equal(s_num(rec, "flags"), 2.0, 0); /* mean over the games that carry it */
    assert_float_equal(s_num(rec, "precision"), 0.5, 1e-12);
    assert_null(json_object_get(rec, "missing_ratio")); /* denominator sums to 0 */
    assert_float_equal(s_num(rec, "win_rate_seat0"), 1.0 / 3.0, 1e-12);
    assert_float_equal(s_num(rec, "win_rate_seat1"), 2.0 / 3.0, 1e-12);
    assert_float_equal(s_num(rec, "reward_mean"), 0.0, 0);
    /* no name of a game is made up */
    assert_null(json_object_get(rec, "true_side_won"));
    assert_int_equal(json_object_size(rec), 7);

    const char *name;
    assert_float_equal(ag_metrics_headline(rec, &g, &name), 2.0 / 3.0, 1e-12);
    assert_string_equal(name, "judge_accuracy");
    ms[1].headline = false; /* no headline declared */
    ag_learner_game_t plain = {.metrics = ag_game_metrics_create(&spec)};
    ag_metrics_headline(rec, &plain, &name);
    assert_string_equal(name, "reward_mean");
    ag_learner_game_finish(&plain);
    /* A second batch is reported on its own, not added to the first. */
    json_t *rec2 = json_object();
    ag_metrics_game(rec2, &g, t, 1);
    assert_float_equal(s_num(rec2, "judge_accuracy"), 1.0, 0);
    json_decref(rec2);
    ag_learner_game_finish(&g);
    ag_metrics_headline(rec, NULL, &name); /* no GameSpec at all */
    assert_string_equal(name, "reward_mean");
    json_decref(rec);
    for (int i = 0; i < 3; i++)
        free(t[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
