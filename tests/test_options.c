/*
 * test_options.c - the game-option lists of run files: parsing "K=V,K=V" and
 * laying warmstart.options over game.options for the warm start's demos;
 * and which tokens the warm start's loss counts (warmstart.observation_weight).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "model.h"
#include "rng.h"
#include "seq.h"
#include "warmstart.h"

static void test_parse(void **state)
{
    (void)state;
    char buf[64];
    const char *kv[4][2];
    assert_int_equal(ag_options_parse("k=6, rounds=2,,", buf, sizeof buf, kv, 4), 2);
    assert_string_equal(kv[0][0], "k");
    assert_string_equal(kv[0][1], "6");
    assert_string_equal(kv[1][0], "rounds");
    assert_string_equal(kv[1][1], "2");
    assert_int_equal(ag_options_parse("", buf, sizeof buf, kv, 4), 0);
    assert_int_equal(ag_options_parse("k", buf, sizeof buf, kv, 4), -EINVAL);
    assert_int_equal(ag_options_parse("=3", buf, sizeof buf, kv, 4), -EINVAL);
    assert_int_equal(ag_options_parse("a=1,b=2,c=3,d=4,e=5", buf, sizeof buf, kv, 4), -EINVAL);
}

static void test_merge(void **state)
{
    (void)state;
    char out[128];
    assert_int_equal(
        ag_options_merge("k=6,solver_error=0.05,rounds=2", "solver_error=0.2,x=1", out, sizeof out),
        0);
    assert_string_equal(out, "k=6,rounds=2,solver_error=0.2,x=1");
    assert_int_equal(ag_options_merge("k=6", "", out, sizeof out), 0);
    assert_string_equal(out, "k=6");
    assert_int_equal(ag_options_merge("", "", out, sizeof out), 0);
    assert_string_equal(out, "");
    assert_int_equal(ag_options_merge("k=6", "oops", out, sizeof out), -EINVAL);
    assert_int_equal(ag_options_merge("k=6,rounds=2", "", out, 8), -ENAMETOOLONG);
}

typedef struct epoch_seen {
    double ce, tokens;
} epoch_seen_t;

static int s_on_epoch(void *arg, int epoch, double ce, double tokens, double seconds)
{
    (void)epoch;
    (void)seconds;
    epoch_seen_t *e = arg;
    e->ce = ce;
    e->tokens = tokens;
    return 0;
}

/* BOS "abc" "xy" EOT: the loss predicts a b c x y EOT; x, y and EOT are the action's
 * (weight 1), a, b and c the observation's (weight observation_weight). */
static void test_observation_weight(void **state)
{
    (void)state;
    ag_model_config_t mc;
    ag_model_config_default(&mc);
    mc.d_model = 16;
    mc.n_layers = 1;
    mc.n_heads = 2;
    mc.ctx = 16;
    ag_seq_t seq;
    ag_seq_init(&seq);
    assert_int_equal(ag_seq_begin(&seq), 0);
    assert_int_equal(ag_seq_turn_text(&seq, "abc", 3, "xy", 2, 0), 0);
    const float weights[] = {0.0f, 0.5f, 1.0f};
    const double expect[] = {3.0, 4.5, 6.0};
    double ce[3];
    for (int i = 0; i < 3; i++) {
        ag_model_t *m = ag_model_create(&mc, 7, 1);
        assert_non_null(m);
        ag_warmstart_config_t c = {.epochs = 1, .lr = 0.0f, .batch = 1, .obs_weight = weights[i]};
        ag_rng_t rng;
        ag_rng_seed(&rng, 1);
        epoch_seen_t seen = {0};
        assert_int_equal(ag_warmstart_train(m, &seq, 1, &c, &rng, NULL, s_on_epoch, &seen), 0);
        assert_float_equal(seen.tokens, expect[i], 1e-9);
        ce[i] = seen.ce;
        ag_model_destroy(&m);
    }
    /* the same untrained model: the mean over more tokens is a different mean */
    assert_true(ce[0] != ce[2]);
    ag_seq_finish(&seq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_merge),
        cmocka_unit_test(test_observation_weight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
