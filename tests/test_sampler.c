/*
 * test_sampler.c - the KV-cache decoder and token sampling: incremental
 * decoding (one token at a time, prompts fed in one call, slots at different
 * positions sharing a call) gives the logits and values of the full forward
 * pass; sampling follows the model's distribution, honours temperature,
 * top-p and greedy, and is reproducible from its seed; bad requests are
 * refused without side effects.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "model.h"
#include "rng.h"
#include "sampler.h"

enum { SLOTS = 4, CTX = 40, V = AG_VOCAB_SIZE };
static const int s_len[SLOTS] = {40, 17, 1, 33};

static ag_model_t *s_model(int threads)
{
    ag_model_config_t c = {
        .vocab = V, .d_model = 64, .n_layers = 3, .n_heads = 2, .ctx = CTX, .mlp_ratio = 4};
    ag_model_t *m = ag_model_create(&c, 21, threads);
    assert_non_null(m);
    /* larger weights than the initialisation so that logits differ clearly */
    ag_rng_t r;
    ag_rng_seed(&r, 3);
    float *p = ag_model_params(m);
    for (size_t k = 0; k < ag_model_num_params(m); k++)
        p[k] += 0.1f * (2.0f * ag_rng_float(&r) - 1.0f);
    return m;
}

static void s_tokens(int32_t *tok)
{
    ag_rng_t r;
    ag_rng_seed(&r, 5);
    for (int i = 0; i < SLOTS * CTX; i++)
        tok[i] = (int32_t)ag_rng_below(&r, V);
}

/* Reference logits/values from the training forward, one sequence at a time. */
static void s_reference(ag_model_t *m, const int32_t *tok, float *logits, float *values)
{
    assert_int_equal(ag_model_reserve(m, 1, CTX), 0);
    for (int s = 0; s < SLOTS; s++) {
        assert_int_equal(ag_model_forward(m, 1, s_len[s], tok + s * CTX, 0), 0);
        memcpy(logits + (size_t)s * CTX * V, ag_model_logits(m),
               sizeof(float) * (size_t)s_len[s] * V);
        memcpy(values + s * CTX, ag_model_values(m), sizeof(float) * (size_t)s_len[s]);
    }
}

static double s_diff_row(const ag_sampler_t *sm, int row, const float *logits, const float *values,
                         int slot, int pos)
{
    const float *l = ag_sampler_logits(sm, row);
    const float *ref = logits + ((size_t)slot * CTX + pos) * V;
    double d = fabs(ag_sampler_value(sm, row) - values[slot * CTX + pos]);
    for (int k = 0; k < V; k++)
        d = fmax(d, fabs(l[k] - ref[k]));
    return d;
}

static void s_check_decoding(int threads)
{
    ag_model_t *m = s_model(threads);
    int32_t tok[SLOTS * CTX];
    s_tokens(tok);
    float *logits = malloc(sizeof(float) * SLOTS * CTX * V), values[SLOTS * CTX];
    s_reference(m, tok, logits, values);

    /* 1: every active slot advances by one token per call, so slots sit at
     *    different positions (they start at different times) */
    ag_sampler_t *sm = ag_sampler_create(m, SLOTS, SLOTS);
    assert_non_null(sm);
    static const int start[SLOTS] = {0, 5, 30, 2};
    double maxd = 0.0;
    for (int step = 0; step < 80; step++) {
        int32_t slots[SLOTS], toks[SLOTS];
        int pos[SLOTS], n = 0;
        for (int s = 0; s < SLOTS; s++) {
            int p = step - start[s];
            if (p < 0 || p >= s_len[s])
                continue;
            assert_int_equal(ag_sampler_position(sm, s), p);
            slots[n] = s;
            toks[n] = tok[s * CTX + p];
            pos[n++] = p;
        }
        if (!n)
            continue;
        assert_int_equal(ag_sampler_feed(sm, n, slots, toks), 0);
        for (int i = 0; i < n; i++)
            maxd = fmax(maxd, s_diff_row(sm, i, logits, values, slots[i], pos[i]));
    }
    assert_true(maxd < 1e-4);

    /* 2: prompts fed in one call (several rows per slot, interleaved), then
     *    the rest one token at a time */
    ag_sampler_t *sp = ag_sampler_create(m, SLOTS, 64);
    int32_t slots[64], toks[64];
    int pos[64], n = 0;
    static const int prompt[SLOTS] = {9, 17, 1, 12};
    for (int p = 0; p < 17; p++)
        for (int s = 0; s < SLOTS; s++)
            if (p < prompt[s]) {
                slots[n] = s;
                toks[n] = tok[s * CTX + p];
                pos[n++] = p;
            }
    assert_int_equal(ag_sampler_feed(sp, n, slots, toks), 0);
    maxd = 0.0;
    for (int i = 0; i < n; i++)
        maxd = fmax(maxd, s_diff_row(sp, i, logits, values, slots[i], pos[i]));
    for (int s = 0; s < SLOTS; s++)
        for (int p = prompt[s]; p < s_len[s]; p++) {
            int32_t one = s, t = tok[s * CTX + p];
            assert_int_equal(ag_sampler_feed(sp, 1, &one, &t), 0);
            maxd = fmax(maxd, s_diff_row(sp, 0, logits, values, s, p));
        }
    assert_true(maxd < 1e-4);

    /* 3: a reset slot starts over and matches again */
    assert_int_equal(ag_sampler_reset(sp, 1), 0);
    assert_int_equal(ag_sampler_position(sp, 1), 0);
    int32_t one = 1;
    assert_int_equal(ag_sampler_feed(sp, 1, &one, &tok[CTX]), 0);
    assert_true(s_diff_row(sp, 0, logits, values, 1, 0) < 1e-4);

    ag_sampler_destroy(&sm);
    ag_sampler_destroy(&sp);
    assert_null(sp);
    free(logits);
    ag_model_destroy(&m);
}

static void test_decoding_matches_forward(void **state)
{
    (void)state;
    s_check_decoding(2);
}

static void test_decoding_matches_forward_1thread(void **state)
{
    (void)state;
    s_check_decoding(1);
}

static void test_bad_requests(void **state)
{
    (void)state;
    ag_model_t *m = s_model(1);
    ag_sampler_t *s = ag_sampler_create(m, 2, 3);
    int32_t slots[4] = {0, 1, 0, 0}, toks[4] = {1, 2, 3, 4};
    assert_int_equal(ag_sampler_feed(s, 4, slots, toks), -ERANGE); /* > max_rows */
    slots[1] = 2;
    assert_int_equal(ag_sampler_feed(s, 2, slots, toks), -EINVAL); /* bad slot */
    slots[1] = 1;
    toks[1] = V;
    assert_int_equal(ag_sampler_feed(s, 2, slots, toks), -EINVAL); /* bad token */
    toks[1] = 2;
    assert_int_equal(ag_sampler_position(s, 0), 0);
    /* fill slot 0 to the context, then one more must be refused */
    for (int p = 0; p < CTX; p++)
        assert_int_equal(ag_sampler_feed(s, 1, slots, toks), 0);
    assert_int_equal(ag_sampler_feed(s, 2, slots, toks), -ERANGE);
    assert_int_equal(ag_sampler_position(s, 0), CTX);
    assert_int_equal(ag_sampler_position(s, 1), 0); /* unchanged by the refused call */
    assert_int_equal(ag_sampler_reset(s, 5), -EINVAL);
    assert_null(ag_sampler_logits(s, 1));
    assert_null(ag_sampler_create(m, 0, 1));
    ag_sampler_destroy(&s);
    ag_sampler_destroy(NULL);
    ag_model_destroy(&m);
}

/* Empirical frequencies of 40000 draws match softmax(logits / temperature). */
static void test_sampling_distribution(void **state)
{
    (void)state;
    enum { N = 8, DRAWS = 40000 };
    const float logits[N] = {1.0f, 0.5f, -1.0f, 2.0f, 0.0f, -3.0f, 1.5f, 0.2f};
    float probs[N];
    ag_sample_entry_t order[N];
    ag_rng_t rng;
    ag_rng_seed(&rng, 1);
    static const float temps[2] = {1.0f, 0.5f};
    for (int ti = 0; ti < 2; ti++) {
        ag_sample_config_t sc = {temps[ti], 1.0f};
        double p[N], z = 0.0, mx = 2.0;
        for (int k = 0; k < N; k++)
            z += (p[k] = exp((logits[k] - mx) / sc.temperature));
        int count[N] = {0};
        for (int d = 0; d < DRAWS; d++) {
            ag_sample_t s;
            assert_int_equal(ag_sample_logits(logits, N, &sc, &rng, probs, order, &s), 0);
            assert_true(s.token >= 0 && s.token < N);
            count[s.token]++;
            double want = log(p[s.token] / z);
            assert_true(fabs(s.logprob - want) < 1e-5);
        }
        for (int k = 0; k < N; k++) {
            double pk = p[k] / z, f = (double)count[k] / DRAWS;
            assert_true(fabs(f - pk) < 5.0 * sqrt(pk * (1 - pk) / DRAWS) + 1e-4);
        }
    }
}

static void test_top_p_and_greedy(void **state)
{
    (void)state;
    enum { N = 6 };
    /* probabilities ~ 0.6, 0.22, 0.08, 0.08, 0.01, 0.01 */
    const float logits[N] = {2.0f, 1.0f, 0.0f, 0.0f, -2.0f, -2.0f};
    float probs[N];
    ag_sample_entry_t order[N];
    ag_rng_t rng;
    ag_rng_seed(&rng, 2);
    ag_sample_config_t sc = {1.0f, 0.8f}; /* keeps tokens 0 and 1 (0.6 + 0.22 >= 0.8) */
    double z = 0.0;
    for (int k = 0; k < N; k++)
        z += exp(logits[k]);
    double keep = (exp(2.0) + exp(1.0)) / z;
    int seen[N] = {0};
    for (int d = 0; d < 5000; d++) {
        ag_sample_t s;
        assert_int_equal(ag_sample_logits(logits, N, &sc, &rng, probs, order, &s), 0);
        seen[s.token]++;
        assert_true(fabs(s.logprob - (logits[s.token] - log(z) - log(keep))) < 1e-5);
        assert_true(fabs(s.policy_logprob - (logits[s.token] - log(z))) < 1e-5);
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
    assert_int_equal(seen[2] + seen[3] + seen[4] + seen[5], 0);
    sc.top_p = 1e-6f; /* only the most likely token */
    for (int d = 0; d < 100; d++) {
        ag_sample_t s;
        assert_int_equal(ag_sample_logits(logits, N, &sc, &rng, probs, order, &s), 0);
        assert_int_equal(s.token, 0);
        assert_true(fabs(s.logprob) < 1e-6);
    }
    sc.temperature = 0.0f; /* greedy draws nothing from the RNG */
    ag_rng_t before = rng;
    ag_sample_t s;
    assert_int_equal(ag_sample_logits(logits, N, &sc, &rng, probs, order, &s), 0);
    assert_int_equal(s.token, 0);
    assert_memory_equal(&before, &rng, sizeof(rng));
    assert_int_equal(ag_sample_logits(logits, N, NULL, &rng, probs, order, &s), -EINVAL);
}

/* The same seed and inputs give the same tokens, log-probs and values. */
static void test_generation_reproducible(void **state)
{
    (void)state;
    ag_model_t *m = s_model(2);
    ag_sample_t out[2][SLOTS * 30];
    for (int run = 0; run < 2; run++) {
        ag_sampler_t *s = ag_sampler_create(m, SLOTS, SLOTS);
        ag_rng_t rng;
        ag_rng_seed(&rng, 77);
        ag_sample_config_t sc = {0.9f, 0.95f};
        int32_t slots[SLOTS] = {0, 1, 2, 3}, toks[SLOTS];
        for (int i = 0; i < SLOTS; i++)
            toks[i] = AG_TOK_BOS;
        for (int step = 0; step < 30; step++) {
            ag_sample_t *o = &out[run][step * SLOTS];
            assert_int_equal(ag_sampler_step(s, SLOTS, slots, toks, &sc, &rng, o), 0);
            for (int i = 0; i < SLOTS; i++) {
                toks[i] = o[i].token;
                assert_true(o[i].logprob <= 0.0f && o[i].policy_logprob <= 0.0f);
            }
        }
        ag_sampler_destroy(&s);
    }
    assert_memory_equal(out[0], out[1], sizeof(out[0]));
    ag_model_destroy(&m);
}

/* The actor's weight swap: new parameters copied into the model between
 * generations are what the next generation decodes with. */
static void test_weight_swap(void **state)
{
    (void)state;
    ag_model_t *m = s_model(2), *other = s_model(1);
    ag_rng_t r;
    ag_rng_seed(&r, 9);
    float *p = ag_model_params(other);
    for (size_t k = 0; k < ag_model_num_params(other); k++)
        p[k] += 0.05f * (2.0f * ag_rng_float(&r) - 1.0f);
    int32_t tok[SLOTS * CTX];
    s_tokens(tok);
    float *logits = malloc(sizeof(float) * SLOTS * CTX * V), values[SLOTS * CTX];
    s_reference(other, tok, logits, values);
    ag_sampler_t *s = ag_sampler_create(m, 1, 8);
    int32_t slot0[8] = {0};
    assert_int_equal(ag_sampler_feed(s, 8, slot0, tok), 0);
    assert_true(s_diff_row(s, 7, logits, values, 0, 7) > 1e-3); /* old weights differ */
    assert_int_equal(ag_model_load_params(m, ag_model_params(other), ag_model_num_params(other)),
                     0);
    assert_int_equal(ag_model_load_params(m, p, 3), -EINVAL);
    assert_int_equal(ag_sampler_reset(s, 0), 0);
    assert_int_equal(ag_sampler_feed(s, 8, slot0, tok), 0);
    for (int i = 0; i < 8; i++)
        assert_true(s_diff_row(s, i, logits, values, 0, i) < 1e-4);
    ag_sampler_destroy(&s);
    free(logits);
    ag_model_destroy(&m);
    ag_model_destroy(&other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoding_matches_forward),
        cmocka_unit_test(test_decoding_matches_forward_1thread),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_sampling_distribution),
        cmocka_unit_test(test_top_p_and_greedy),
        cmocka_unit_test(test_generation_reproducible),
        cmocka_unit_test(test_weight_swap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
