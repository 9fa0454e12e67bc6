/*
 * test_learner_options.c - agora-learner's option table (learner/
 * learner_options.c) as the one source of its defaults: the library's PPO
 * defaults are the table's, parsing no argument gives the same struct as
 * ag_learner_opts_default, a few known values (so a changed default is a
 * deliberate edit here too), the model rows equal the model core's defaults,
 * overrides reach the nested fields, and bad values are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "learner_options.h"
#include "model.h"

/* Parses argv (NULL-terminated, argv[0] the program) with agora-learner's
 * table into *o, which starts from zeros (main.c's starts from the
 * defaults), so every value compared came from the parse. Returns
 * ag_config_parse_args's or ag_config_apply's result. */
static int s_parse(const char *const *argv, ag_learner_opts_t *o, ag_config_t **cfg)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    *cfg = ag_config_create("agora-learner", "[options]", "test", ag_learner_options,
                            ag_learner_n_options, 0);
    assert_non_null(*cfg);
    memset(o, 0, sizeof *o);
    ag_model_config_default(&o->model);
    int rc = ag_config_parse_args(*cfg, argc, (char **)argv);
    return rc != 0 ? rc : ag_config_apply(*cfg, o);
}

/* Bytes of the field a typed row writes. */
static size_t s_field_size(ag_opt_kind_t kind)
{
    switch (kind) {
    case AG_OPT_BOOL:
        return sizeof(bool);
    case AG_OPT_INT:
    case AG_OPT_ENUM:
        return sizeof(int);
    case AG_OPT_LONG:
        return sizeof(long);
    case AG_OPT_U32:
        return sizeof(uint32_t);
    case AG_OPT_U64:
        return sizeof(uint64_t);
    case AG_OPT_FLOAT:
        return sizeof(float);
    case AG_OPT_DOUBLE:
        return sizeof(double);
    case AG_OPT_STR:
    case AG_OPT_TEXT:
        return 0;
    }
    return 0;
}

/* What the binary gets from no argument at all is what the library calls its defaults. */
static void test_parsed_defaults_are_the_library_defaults(void **state)
{
    (void)state;
    const char *argv[] = {"agora-learner", NULL};
    ag_learner_opts_t parsed, lib;
    ag_config_t *cfg;
    assert_int_equal(s_parse(argv, &parsed, &cfg), 0);
    ag_learner_opts_default(&lib);
    size_t typed = 0;
    for (size_t i = 0; i < ag_learner_n_options; i++) {
        const ag_option_t *r = &ag_learner_options[i];
        const char *a = (const char *)&parsed + r->offset, *b = (const char *)&lib + r->offset;
        if (r->kind == AG_OPT_STR) {
            const char *sa, *sb;
            memcpy(&sa, a, sizeof sa);
            memcpy(&sb, b, sizeof sb);
            if (strcmp(sa, sb))
                fail_msg("%s: parsed '%s', library '%s'", r->key, sa, sb);
        } else if (s_field_size(r->kind) && memcmp(a, b, s_field_size(r->kind))) {
            fail_msg("%s: the parsed default differs from ag_learner_opts_default's", r->key);
        }
        typed += r->kind != AG_OPT_TEXT;
    }
    /* every row but warmstart.options has a field */
    assert_int_equal(typed, ag_learner_n_options - 1);
    assert_int_equal(parsed.model.vocab, lib.model.vocab);
    ag_config_destroy(&cfg);
}

/* The PPO defaults the unit tests use are the [ppo] rows', and a few known values. */
static void test_known_defaults(void **state)
{
    (void)state;
    ag_ppo_config_t c;
    ag_ppo_config_default(&c);
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    assert_memory_equal(&c, &o.ppo, sizeof c);
    assert_int_equal(c.epochs, 2);
    assert_int_equal(c.minibatch, 32);
    assert_int_equal(c.microbatch, 8);
    assert_true(c.lr == 3e-4f && c.ent_coef == 0.001f && c.kl_coef == 0.02f);
    assert_true(c.gae.gamma == 1.0f && c.gae.lambda == 0.95f && c.clip_eps == 0.2f);
    assert_true(c.kl_target == 0.0f && c.is_clip == 1.0f);
    assert_int_equal(c.kl_estimator, AG_KL_K3);
    assert_true(c.whiten);
    assert_int_equal(o.batch_trajectories, 128);
    assert_int_equal(o.threads, 2);
    assert_int_equal(o.progress, AG_LEARNER_PROGRESS_AUTO);
    assert_int_equal(o.ws.demos, 2048);
    assert_string_equal(o.trajectories, "tcp://*:5580");
    assert_string_equal(o.ws.options, "");
}

/* The learner's model is the model core's default shape. */
static void test_model_defaults(void **state)
{
    (void)state;
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    ag_model_config_t m;
    ag_model_config_default(&m);
    assert_memory_equal(&o.model, &m, sizeof m);
}

/* Overrides land in the nested fields (offsetof through ppo.gae, ws, model). */
static void test_overrides(void **state)
{
    (void)state;
    const char *argv[] = {"agora-learner",
                          "--ppo.lambda=0.9",
                          "--progress=off",
                          "--model.ctx=64",
                          "--demos=0",
                          "--ppo.kl_estimator=k1",
                          "--ppo.whiten=false",
                          "--seed=18446744073709551615",
                          NULL};
    ag_learner_opts_t o;
    ag_config_t *cfg;
    assert_int_equal(s_parse(argv, &o, &cfg), 0);
    assert_true(o.ppo.gae.lambda == 0.9f);
    assert_int_equal(o.progress, AG_LEARNER_PROGRESS_OFF);
    assert_int_equal(o.model.ctx, 64);
    assert_int_equal(o.ws.demos, 0);
    assert_int_equal(o.ppo.kl_estimator, AG_KL_K1);
    assert_false(o.ppo.whiten);
    assert_true(o.seed == UINT64_MAX);
    ag_config_destroy(&cfg);
}

static void test_bad_values_refused(void **state)
{
    (void)state;
    const char *bad[][3] = {
        {"agora-learner", "--ppo.gamma=1.5", NULL},
        {"agora-learner", "--ppo.kl_estimator=k2", NULL},
        {"agora-learner", "--progress=maybe", NULL},
        {"agora-learner", "--model.ctx=1", NULL},
        {"agora-learner", "--ppo.is_clip=0", NULL},
        {"agora-learner", "--learner.out=", NULL},
        {"agora-learner", "--min-actors=65", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ag_learner_opts_t o;
        ag_config_t *cfg;
        if (s_parse(bad[i], &o, &cfg) >= 0)
            fail_msg("%s was accepted", bad[i][1]);
        ag_config_destroy(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsed_defaults_are_the_library_defaults),
        cmocka_unit_test(test_known_defaults),
        cmocka_unit_test(test_model_defaults),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_bad_values_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
