/*
 * test_option_defaults.c - the option tables of agora-learner (learner/
 * learner_options.c) and agora-reward (reward_server/reward_options.c) as the
 * one source of their libraries' defaults: parsing no argument with a table
 * gives what the library calls its defaults, row by row; a few known values
 * (so a changed default is a deliberate edit here too); the learner's model
 * rows are the model core's default shape; overrides reach nested fields;
 * bad values are refused.
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
#include "reward_options.h"

/*
 * Parses argv (NULL-terminated, argv[0] the program) with a table into dst
 * (size bytes), which starts from zeros (the binaries start from the
 * defaults), so every value looked at came from the parse. Returns
 * ag_config_parse_args's or ag_config_apply's result; *cfg owns the strings.
 */
static int s_parse(const ag_option_t *rows, size_t n, const char *const *argv, void *dst,
                   size_t size, ag_config_t **cfg)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    *cfg = ag_config_create(argv[0], "[options]", "test", rows, n, 0);
    assert_non_null(*cfg);
    memset(dst, 0, size);
    int rc = ag_config_parse_args(*cfg, argc, (char **)argv);
    return rc != 0 ? rc : ag_config_apply(*cfg, dst);
}

/* Bytes of the field a typed row writes (0: a string, compared as text). */
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

/*
 * Parses no argument but prog with the table into parsed (size bytes) and
 * checks every typed row's field against lib's, the library's defaults.
 * Returns the rows compared.
 */
static size_t s_parsed_is_library(const char *prog, const ag_option_t *rows, size_t n, void *parsed,
                                  const void *lib, size_t size)
{
    const char *argv[] = {prog, NULL};
    ag_config_t *cfg;
    assert_int_equal(s_parse(rows, n, argv, parsed, size, &cfg), 0);
    size_t typed = 0;
    for (size_t i = 0; i < n; i++) {
        const ag_option_t *r = &rows[i];
        if (r->kind == AG_OPT_TEXT)
            continue;
        const char *a = (const char *)parsed + r->offset, *b = (const char *)lib + r->offset;
        if (r->kind == AG_OPT_STR) {
            const char *sa, *sb;
            memcpy(&sa, a, sizeof sa);
            memcpy(&sb, b, sizeof sb);
            if (strcmp(sa, sb))
                fail_msg("%s: parsed '%s', library '%s'", r->key, sa, sb);
        } else if (memcmp(a, b, s_field_size(r->kind))) {
            fail_msg("%s: the parsed default differs from the library's", r->key);
        }
        typed++;
    }
    ag_config_destroy(&cfg);
    return typed;
}

/* What agora-learner gets from no argument is what the library calls its defaults. */
static void test_learner_parsed_defaults(void **state)
{
    (void)state;
    ag_learner_opts_t parsed, lib;
    ag_learner_opts_default(&lib);
    /* every row but warmstart.options has a field */
    assert_int_equal(s_parsed_is_library("agora-learner", ag_learner_options, ag_learner_n_options,
                                         &parsed, &lib, sizeof lib),
                     ag_learner_n_options - 1);
}

/* The PPO defaults the unit tests use are the [ppo] rows', and a few known values. */
static void test_learner_known_defaults(void **state)
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
static void test_learner_model_defaults(void **state)
{
    (void)state;
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    ag_model_config_t m;
    ag_model_config_default(&m);
    assert_memory_equal(&o.model, &m, sizeof m);
}

/* Overrides land in the nested fields (offsetof through ppo.gae, ws, model). */
static void test_learner_overrides(void **state)
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
    assert_int_equal(s_parse(ag_learner_options, ag_learner_n_options, argv, &o, sizeof o, &cfg),
                     0);
    assert_true(o.ppo.gae.lambda == 0.9f);
    assert_int_equal(o.progress, AG_LEARNER_PROGRESS_OFF);
    assert_int_equal(o.model.ctx, 64);
    assert_int_equal(o.ws.demos, 0);
    assert_int_equal(o.ppo.kl_estimator, AG_KL_K1);
    assert_false(o.ppo.whiten);
    assert_true(o.seed == UINT64_MAX);
    ag_config_destroy(&cfg);
}

static void test_learner_bad_values(void **state)
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
        if (s_parse(ag_learner_options, ag_learner_n_options, bad[i], &o, sizeof o, &cfg) >= 0)
            fail_msg("%s was accepted", bad[i][1]);
        ag_config_destroy(&cfg);
    }
}

/* agora-reward: the same for the service that agora-bench reward runs in process. */
static void test_reward_defaults(void **state)
{
    (void)state;
    ag_reward_opts_t parsed, lib;
    ag_reward_opts_default(&lib);
    assert_int_equal(s_parsed_is_library("agora-reward", ag_reward_options, ag_reward_n_options,
                                         &parsed, &lib, sizeof lib),
                     ag_reward_n_options);
    assert_int_equal(lib.model.d_model, 64);
    assert_int_equal(lib.model.n_layers, 2);
    assert_int_equal(lib.model.ctx, 256);
    assert_int_equal(lib.model.vocab, AG_VOCAB_SIZE);
    assert_true(lib.lr == 3e-4 && lib.holdout == 0.1 && lib.reuse == 4);
    assert_int_equal(lib.batch, 32);
    assert_string_equal(lib.models, "default");
    assert_false(lib.signals);
    const char *bad[] = {"agora-reward", "--holdout=1.5", NULL};
    ag_reward_opts_t o;
    ag_config_t *cfg;
    assert_true(s_parse(ag_reward_options, ag_reward_n_options, bad, &o, sizeof o, &cfg) < 0);
    ag_config_destroy(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learner_parsed_defaults),
        cmocka_unit_test(test_learner_known_defaults),
        cmocka_unit_test(test_learner_model_defaults),
        cmocka_unit_test(test_learner_overrides),
        cmocka_unit_test(test_learner_bad_values),
        cmocka_unit_test(test_reward_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
