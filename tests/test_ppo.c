/*
 * test_ppo.c - the learner's PPO update (learner/ppo.c) on a tiny model:
 * log-prob alignment of the proximal pass against the logits, the truncated
 * importance weights, the clipped surrogate and value loss against
 * hand-computed values, a two-armed bandit the update must learn, the KL
 * terms, and bit-for-bit determinism.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "learner_options.h"
#include "model.h"
#include "ppo.h"
#include "seq.h"

static ag_model_config_t s_cfg(void)
{
    ag_model_config_t c;
    ag_model_config_default(&c);
    c.d_model = 16;
    c.n_layers = 1;
    c.n_heads = 2;
    c.ctx = 16;
    c.mlp_ratio = 2;
    return c;
}

/* BOS q X EOT, one turn, reward r; behaviour log-probs given. */
static void s_bandit_seq(ag_seq_t *s, int32_t x, float r, float lp_x, float lp_eot)
{
    ag_seq_init(s);
    ag_seq_begin(s);
    ag_seq_context(s, "q", 1);
    ag_seq_generated(s, x, lp_x, 0.0f);
    ag_seq_generated(s, AG_TOK_EOT, lp_eot, 0.0f);
    ag_seq_end_turn(s, 1);
    ag_seq_reward(s, r);
}

static double s_log_softmax(const float *z, int V, int k)
{
    double mx = z[0];
    for (int i = 1; i < V; i++)
        if (z[i] > mx)
            mx = z[i];
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += exp((double)z[i] - mx);
    return (double)z[k] - mx - log(sum);
}

/* log p(x | BOS q) under m, computed from the logits directly. */
static double s_lp_after_q(ag_model_t *m, int32_t x)
{
    int32_t tok[2] = {AG_TOK_BOS, 'q'};
    assert_int_equal(ag_model_forward(m, 1, 2, tok, 0), 0);
    return s_log_softmax(ag_model_logits(m) + AG_VOCAB_SIZE, AG_VOCAB_SIZE, x);
}

static void test_score_alignment(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m = ag_model_create(&cfg, 7, 1);
    assert_non_null(m);
    assert_int_equal(ag_model_reserve(m, 4, cfg.ctx), 0);
    ag_seq_t a, b;
    s_bandit_seq(&a, 'a', 1.0f, 0.0f, 0.0f);
    ag_seq_init(&b);
    ag_seq_begin(&b);
    ag_seq_context(&b, "xyz", 3);
    ag_seq_generated(&b, 'k', 0.0f, 0.0f);
    ag_seq_generated(&b, AG_TOK_EOT, 0.0f, 0.0f);
    ag_seq_end_turn(&b, 1);
    const ag_seq_t *rows[2] = {&a, &b};
    ag_batch_t bt;
    assert_int_equal(ag_batch_init(&bt, rows, 2), 0);
    float *lp = calloc((size_t)bt.B * bt.T, sizeof(float));
    float *val = calloc((size_t)bt.B * bt.T, sizeof(float));
    /* chunks of one row, so the second row is run on its own */
    assert_int_equal(ag_ppo_score(m, &bt, 1, lp, val), 0);
    /* row 1 alone, all its tokens: position t predicts token t+1 */
    assert_int_equal(ag_model_forward(m, 1, 5, b.tokens, 0), 0);
    const float *z = ag_model_logits(m), *v = ag_model_values(m);
    for (int t = 0; t < 5; t++) {
        const size_t o = (size_t)bt.T + (size_t)t;
        if (b.generated[t + 1])
            assert_float_equal(
                lp[o], s_log_softmax(z + (size_t)t * AG_VOCAB_SIZE, AG_VOCAB_SIZE, b.tokens[t + 1]),
                1e-5);
        else
            assert_float_equal(lp[o], 0.0f, 0.0);
        assert_float_equal(val[o], v[t], 1e-5);
    }
    assert_float_equal(lp[1], s_lp_after_q(m, 'a'), 1e-5);
    free(lp);
    free(val);
    ag_batch_finish(&bt);
    ag_seq_finish(&a);
    ag_seq_finish(&b);
    ag_model_destroy(&m);
    assert_null(m);
}

/* Advantages after prepare, with whitening off and gamma = lambda = 1, are
 * (R - V) * min(is_clip, exp(prox - behaviour)). */
static void test_truncated_importance_weights(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m = ag_model_create(&cfg, 11, 1);
    ag_ppo_config_t pc;
    ag_ppo_config_default(&pc);
    pc.whiten = 0;
    pc.gae.lambda = 1.0f;
    pc.minibatch = 4;
    ag_ppo_t *p = ag_ppo_create(m, NULL, &pc, 1);
    assert_non_null(p);
    /* first pass learns the proximal log-probs, then behaviour is set around them */
    ag_seq_t s;
    s_bandit_seq(&s, 'a', 2.0f, 0.0f, 0.0f);
    const ag_seq_t *rows[1] = {&s};
    ag_batch_t b;
    ag_ppo_stats_t st;
    assert_int_equal(ag_ppo_prepare(p, rows, NULL, 1, &b, &st), 0);
    const float prox_a = b.prox[1], prox_eot = b.prox[2];
    ag_batch_finish(&b);
    s.logprobs[2] = prox_a + 0.5f;   /* behaviour more likely: w = e^-0.5 */
    s.logprobs[3] = prox_eot - 0.5f; /* less likely: e^0.5 truncated to 1 */
    assert_int_equal(ag_ppo_prepare(p, rows, NULL, 1, &b, &st), 0);
    assert_float_equal(b.prox[1], prox_a, 0.0);
    const double w_a = exp(-0.5), w_eot = 1.0;
    assert_float_equal(b.adv[1], (2.0 - b.values[1]) * w_a, 1e-5);
    assert_float_equal(b.adv[2], (2.0 - b.values[2]) * w_eot, 1e-5);
    assert_float_equal(b.ret[1], 2.0f, 1e-5);
    assert_float_equal(b.ret[2], 2.0f, 1e-5);
    assert_float_equal(st.is_weight_mean, (w_a + w_eot) / 2, 1e-5);
    assert_float_equal(st.generated_tokens, 2.0, 0.0);
    assert_float_equal(st.tokens, 3.0, 0.0);
    ag_batch_finish(&b);
    ag_seq_finish(&s);
    ag_ppo_destroy(&p);
    ag_model_destroy(&m);
}

/* The objective the update minimises, on one position, against numbers
 * computed here from the logits. */
static void test_surrogate_hand_computed(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m = ag_model_create(&cfg, 3, 1);
    assert_int_equal(ag_model_reserve(m, 2, cfg.ctx), 0);
    int32_t tok[2] = {AG_TOK_BOS, 'q'};
    int32_t tgt[2] = {'q', 'a'};
    float mask[2] = {0.0f, 1.0f};
    assert_int_equal(ag_model_forward(m, 1, 2, tok, 0), 0);
    const double lp = s_log_softmax(ag_model_logits(m) + AG_VOCAB_SIZE, AG_VOCAB_SIZE, 'a');
    const double v = ag_model_values(m)[1];
    ag_loss_config_t lc;
    ag_loss_config_default(&lc); /* clip 0.2, vf 0.5, vf_clip 0.2 */
    ag_loss_t *loss = ag_loss_create();
    for (int sign = -1; sign <= 1; sign += 2) {
        const float A = 0.7f * (float)sign;
        /* old log-prob log(1.5) above the current one: ratio 2/3 */
        float old[2] = {0, (float)(lp + log(1.5))};
        float adv[2] = {0, A}, ret[2] = {0, (float)v + 1.0f}, oldv[2] = {0, (float)v - 0.5f};
        ag_loss_batch_t lb = {.targets = tgt,
                              .mask = mask,
                              .advantages = adv,
                              .old_logprobs = old,
                              .returns = ret,
                              .old_values = oldv};
        ag_loss_stats_t st;
        assert_int_equal(ag_loss_eval(loss, m, &lb, &lc, &st), 0);
        const double r = exp(lp - old[1]), rc = r < 0.8 ? 0.8 : r;
        const double want_pg = -fmin(r * A, rc * A);
        assert_float_equal(st.policy_loss, want_pg, 1e-5);
        assert_float_equal(st.clip_frac, 1.0, 0.0);
        /* value: v - old = 0.5 is clipped to 0.2; max of the two squared errors */
        const double vc = oldv[1] + 0.2, R = ret[1];
        const double want_vl = 0.5 * fmax((v - R) * (v - R), (vc - R) * (vc - R));
        assert_float_equal(st.value_loss, want_vl, 1e-5);
        assert_float_equal(st.approx_kl, (r - 1) - log(r), 1e-5);
    }
    ag_loss_destroy(&loss);
    ag_model_destroy(&m);
}

/* A two-armed bandit after "q": 'a' earns +1, 'b' earns -1. On-policy PPO
 * updates must move probability from b to a. */
static void test_bandit_learns(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m = ag_model_create(&cfg, 5, 1);
    ag_ppo_config_t pc;
    ag_ppo_config_default(&pc);
    pc.lr = 1e-2f;
    pc.minibatch = 8;
    pc.epochs = 2;
    ag_ppo_t *p = ag_ppo_create(m, NULL, &pc, 9);
    assert_non_null(p);
    const double a0 = s_lp_after_q(m, 'a'), b0 = s_lp_after_q(m, 'b');
    ag_seq_t seqs[16];
    const ag_seq_t *rows[16];
    for (int u = 0; u < 10; u++) {
        for (int i = 0; i < 16; i++) {
            int32_t x = i % 2 ? 'b' : 'a';
            s_bandit_seq(&seqs[i], x, x == 'a' ? 1.0f : -1.0f, (float)s_lp_after_q(m, x), 0.0f);
            rows[i] = &seqs[i];
        }
        ag_ppo_stats_t st;
        assert_int_equal(ag_ppo_update(p, rows, NULL, 16, &st), 0);
        assert_true(st.steps == 4);
        assert_true(isfinite(st.policy_loss) && isfinite(st.value_loss));
        for (int i = 0; i < 16; i++)
            ag_seq_finish(&seqs[i]);
    }
    const double a1 = s_lp_after_q(m, 'a'), b1 = s_lp_after_q(m, 'b');
    assert_true(a1 > a0 + 1.0);
    assert_true(b1 < b0 - 1.0);
    assert_true(a1 > b1 + 2.0);
    ag_ppo_destroy(&p);
    ag_model_destroy(&m);
}

static void test_kl_to_reference(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m = ag_model_create(&cfg, 5, 1), *ref = ag_model_create(&cfg, 5, 1);
    ag_ppo_config_t pc;
    ag_ppo_config_default(&pc);
    pc.lr = 1e-2f;
    pc.minibatch = 8;
    pc.kl_coef = 0.1f;
    pc.kl_target = 0.01f;
    ag_ppo_t *p = ag_ppo_create(m, ref, &pc, 9);
    assert_non_null(p);
    ag_seq_t seqs[8];
    const ag_seq_t *rows[8];
    ag_ppo_stats_t st;
    double first_kl = -1, coef_before = ag_ppo_kl_coef(p);
    for (int u = 0; u < 4; u++) {
        for (int i = 0; i < 8; i++) {
            int32_t x = i % 2 ? 'b' : 'a';
            s_bandit_seq(&seqs[i], x, x == 'a' ? 1.0f : -1.0f, (float)s_lp_after_q(m, x), 0);
            rows[i] = &seqs[i];
        }
        assert_int_equal(ag_ppo_update(p, rows, NULL, 8, &st), 0);
        if (first_kl < 0)
            first_kl = st.kl_ref;
        for (int i = 0; i < 8; i++)
            ag_seq_finish(&seqs[i]);
    }
    /* identical weights at the first proximal pass: zero KL; then it grows */
    assert_float_equal(first_kl, 0.0, 1e-9);
    assert_true(st.kl_ref > 1e-4);
    /* KL far above target: the adaptive coefficient went up (at most 20% per update) */
    assert_true(ag_ppo_kl_coef(p) > coef_before);
    assert_true(ag_ppo_kl_coef(p) <= coef_before * pow(1.2, 4) + 1e-9);
    ag_ppo_destroy(&p);
    ag_model_destroy(&m);
    ag_model_destroy(&ref);
}

/* Reference log-probs scored ahead (ag_ppo_score_rows, one row at a time, as
 * the learner's reference thread does) give the update the reference pass
 * would have: the same KL and the same weights, with one scoring pass fewer. */
static void test_reference_ahead(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    ag_model_t *m[2] = {ag_model_create(&cfg, 5, 1), ag_model_create(&cfg, 5, 1)};
    ag_model_t *ref = ag_model_create(&cfg, 6, 1);
    assert_int_equal(ag_model_reserve(ref, 8, cfg.ctx), 0);
    ag_ppo_config_t pc;
    ag_ppo_config_default(&pc);
    pc.lr = 1e-2f;
    pc.minibatch = 4;
    pc.kl_coef = 0.1f;
    ag_ppo_t *p[2] = {ag_ppo_create(m[0], ref, &pc, 9), ag_ppo_create(m[1], ref, &pc, 9)};
    assert_non_null(p[0]);
    assert_non_null(p[1]);
    ag_seq_t seqs[8];
    const ag_seq_t *rows[8];
    float *lp[8];
    for (int u = 0; u < 3; u++) {
        ag_ppo_stats_t st[2];
        for (int k = 0; k < 2; k++) {
            for (int i = 0; i < 8; i++) {
                int32_t x = i % 3 ? 'b' : 'a';
                s_bandit_seq(&seqs[i], x, x == 'a' ? 1.0f : -1.0f, (float)s_lp_after_q(m[k], x), 0);
                rows[i] = &seqs[i];
                if (k == 1)
                    assert_int_equal(ag_ppo_score_rows(ref, &rows[i], 1, &lp[i]), 0);
            }
            assert_int_equal(
                ag_ppo_update(p[k], rows, k ? (const float *const *)lp : NULL, 8, &st[k]), 0);
            for (int i = 0; i < 8; i++) {
                ag_seq_finish(&seqs[i]);
                if (k == 1)
                    free(lp[i]);
            }
        }
        assert_int_equal(st[0].score_passes, 2);
        assert_int_equal(st[1].score_passes, 1);
        assert_float_equal(st[1].score_positions * 2, st[0].score_positions, 0.0);
        assert_true(u == 0 || st[0].kl_ref > 1e-4);
        assert_float_equal(st[1].kl_ref, st[0].kl_ref, 1e-6);
    }
    const float *w0 = ag_model_params_const(m[0]), *w1 = ag_model_params_const(m[1]);
    double maxd = 0;
    for (size_t i = 0; i < ag_model_num_params(m[0]); i++)
        maxd = fmax(maxd, fabs((double)w0[i] - w1[i]));
    assert_true(maxd < 1e-5);
    for (int k = 0; k < 2; k++) {
        ag_ppo_destroy(&p[k]);
        ag_model_destroy(&m[k]);
    }
    ag_model_destroy(&ref);
}

/* A minibatch run as micro-batches of rows of similar length (gradients
 * accumulated, one step) is the same update as one pass over it: the same
 * weights, losses and step count, with fewer padded positions. */
static void test_microbatches(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    enum { N = 12 };
    ag_model_t *m[2] = {ag_model_create(&cfg, 7, 1), ag_model_create(&cfg, 7, 1)};
    ag_ppo_stats_t st[2];
    for (int k = 0; k < 2; k++) {
        ag_ppo_config_t pc;
        ag_ppo_config_default(&pc);
        pc.lr = 1e-2f;
        pc.minibatch = 6;
        pc.microbatch = k ? 2 : 0;
        ag_ppo_t *p = ag_ppo_create(m[k], NULL, &pc, 3);
        assert_non_null(p);
        ag_seq_t seqs[N];
        const ag_seq_t *rows[N];
        for (int u = 0; u < 2; u++) {
            for (int i = 0; i < N; i++) {
                /* contexts of 1..12 bytes: rows of many lengths */
                static const char ctx[] = "qrstuvwxyzab";
                ag_seq_init(&seqs[i]);
                ag_seq_begin(&seqs[i]);
                ag_seq_context(&seqs[i], ctx, (size_t)(i % N) + 1);
                ag_seq_generated(&seqs[i], i % 2 ? 'b' : 'a', -5.0f, 0.0f);
                ag_seq_generated(&seqs[i], AG_TOK_EOT, -1.0f, 0.0f);
                ag_seq_end_turn(&seqs[i], 1);
                ag_seq_reward(&seqs[i], i % 2 ? -1.0f : 1.0f);
                rows[i] = &seqs[i];
            }
            assert_int_equal(ag_ppo_update(p, rows, NULL, N, &st[k]), 0);
            for (int i = 0; i < N; i++)
                ag_seq_finish(&seqs[i]);
        }
        ag_ppo_destroy(&p);
    }
    assert_int_equal(st[1].steps, st[0].steps);
    assert_float_equal(st[1].policy_loss, st[0].policy_loss, 1e-5);
    assert_float_equal(st[1].value_loss, st[0].value_loss, 1e-5);
    assert_float_equal(st[1].entropy, st[0].entropy, 1e-5);
    assert_true(st[1].train_positions < st[0].train_positions);
    assert_true(st[1].score_positions < st[0].score_positions);
    const float *w0 = ag_model_params_const(m[0]), *w1 = ag_model_params_const(m[1]);
    double maxd = 0, moved = 0;
    ag_model_t *init = ag_model_create(&cfg, 7, 1);
    const float *wi = ag_model_params_const(init);
    for (size_t i = 0; i < ag_model_num_params(m[0]); i++) {
        maxd = fmax(maxd, fabs((double)w0[i] - w1[i]));
        moved = fmax(moved, fabs((double)w0[i] - wi[i]));
    }
    assert_true(moved > 1e-3); /* the updates did change the weights */
    /* float rounding differs with the grouping; AdamW's per-weight
     * normalisation turns that into differences far below the steps taken */
    assert_true(maxd < 1e-3 * moved);
    ag_model_destroy(&init);
    for (int k = 0; k < 2; k++)
        ag_model_destroy(&m[k]);
}

static void test_deterministic(void **state)
{
    (void)state;
    ag_model_config_t cfg = s_cfg();
    float *params[2];
    for (int run = 0; run < 2; run++) {
        ag_model_t *m = ag_model_create(&cfg, 21, 1);
        ag_ppo_config_t pc;
        ag_ppo_config_default(&pc);
        pc.minibatch = 3;
        ag_ppo_t *p = ag_ppo_create(m, NULL, &pc, 77);
        ag_seq_t seqs[7];
        const ag_seq_t *rows[7];
        for (int i = 0; i < 7; i++) {
            s_bandit_seq(&seqs[i], 'a' + i, (float)i - 3.0f, -5.0f, -0.1f);
            rows[i] = &seqs[i];
        }
        assert_int_equal(ag_ppo_update(p, rows, NULL, 7, NULL), 0);
        assert_int_equal(ag_ppo_update(p, rows, NULL, 7, NULL), 0);
        params[run] = malloc(ag_model_num_params(m) * sizeof(float));
        memcpy(params[run], ag_model_params(m), ag_model_num_params(m) * sizeof(float));
        for (int i = 0; i < 7; i++)
            ag_seq_finish(&seqs[i]);
        ag_ppo_destroy(&p);
        if (run == 1)
            assert_memory_equal(params[0], params[1], ag_model_num_params(m) * sizeof(float));
        ag_model_destroy(&m);
    }
    free(params[0]);
    free(params[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_score_alignment),
        cmocka_unit_test(test_truncated_importance_weights),
        cmocka_unit_test(test_surrogate_hand_computed),
        cmocka_unit_test(test_bandit_learns),
        cmocka_unit_test(test_kl_to_reference),
        cmocka_unit_test(test_reference_ahead),
        cmocka_unit_test(test_microbatches),
        cmocka_unit_test(test_deterministic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
