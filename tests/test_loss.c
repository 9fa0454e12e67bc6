/*
 * test_loss.c - the learner's objective (learner/loss.h): the per-token
 * gradients of every term (CE, clipped PPO surrogate, clipped value loss,
 * entropy, KL k1/k3) against central finite differences of the objective
 * itself, the reported statistics against the documented formulas recomputed
 * from the logits, the whole objective through the model against finite
 * differences in its parameters, token_norm for accumulated micro-batches,
 * bad input, and (with PyTorch) the objective and its gradients against
 * autograd. The model core's own gradients are tested in test_model.c.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ckpt.h"
#include "loss.h"
#include "model.h"
#include "rng.h"
#include "tiny_model.h"

/* ------------------------------------------------------------- fixture */

enum { GB = 3, GT = 7, GR = GB * GT };

typedef struct {
    ag_model_t *m;
    int32_t tokens[GR], targets[GR];
    float mask[GR], adv[GR], oldlp[GR], ret[GR], oldv[GR], reflp[GR];
    ag_loss_batch_t batch;
} lfix_t;

/* Three sequences on a tiny model; the second is 4 tokens long and padded,
 * so its tail is masked out. Behaviour, reference log-probs and old values
 * sit at fixed offsets from the current ones, far from the clipping kinks. */
static void s_lfix_init(lfix_t *f)
{
    f->m = ag_test_tiny_model(GB, GT, 2, 7);
    ag_rng_t r;
    ag_rng_seed(&r, 99);
    for (int i = 0; i < GR; i++) {
        f->tokens[i] = (int32_t)ag_rng_below(&r, 11);
        f->targets[i] = (int32_t)ag_rng_below(&r, 11);
        f->mask[i] = (i / GT == 1 && i % GT >= 4) ? 0.0f : 1.0f;
        f->adv[i] = ag_test_uniform(&r, -2.0f, 2.0f);
        f->ret[i] = ag_test_uniform(&r, -1.0f, 1.0f);
    }
    for (int i = 4; i < GT; i++)
        f->tokens[GT + i] = 10;
    float lp[GR];
    assert_int_equal(ag_model_forward(f->m, GB, GT, f->tokens, 0), 0);
    assert_int_equal(ag_model_logprobs(f->m, f->targets, f->mask, lp, NULL), 0);
    const float *v = ag_model_values(f->m);
    static const float offs[3] = {0.0f, 0.5f, -0.5f};
    for (int i = 0; i < GR; i++) {
        f->oldlp[i] = lp[i] - offs[i % 3];
        f->reflp[i] = lp[i] + ag_test_uniform(&r, -0.7f, 0.7f);
        f->oldv[i] = v[i] - offs[(i + 1) % 3];
    }
    f->batch = (ag_loss_batch_t){.targets = f->targets,
                                 .mask = f->mask,
                                 .advantages = f->adv,
                                 .old_logprobs = f->oldlp,
                                 .returns = f->ret,
                                 .old_values = f->oldv,
                                 .ref_logprobs = f->reflp};
}

static const ag_loss_config_t s_all_terms = {.ce_coef = 0.3f,
                                             .pg_coef = 1.0f,
                                             .clip_eps = 0.2f,
                                             .vf_coef = 0.5f,
                                             .vf_clip = 0.2f,
                                             .ent_coef = 0.01f,
                                             .kl_coef = 0.1f,
                                             .kl_estimator = AG_KL_K3};

/* ------------------------------------------------ per-token gradients */

enum { NT = 60 };

/* Central differences of the objective in each token's log-prob, entropy and
 * value against the analytic per-token gradients. Inputs sit at offsets
 * 0 and +-0.5 from the behaviour log-probs and old values, away from the
 * clipping kinks, and a quarter of the tokens are masked or half-weighted. */
static double s_token_check(const ag_loss_config_t *lc)
{
    ag_rng_t r;
    ag_rng_seed(&r, 17);
    float lp[NT], ent[NT], v[NT], mask[NT], adv[NT], old[NT], ret[NT], oldv[NT], ref[NT];
    for (int i = 0; i < NT; i++) {
        lp[i] = ag_test_uniform(&r, -4.0f, -0.5f);
        ent[i] = ag_test_uniform(&r, 0.5f, 3.0f);
        v[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        mask[i] = i % 4 == 1 ? 0.0f : i % 4 == 2 ? 0.5f : 1.0f;
        adv[i] = ag_test_uniform(&r, -2.0f, 2.0f);
        old[i] = lp[i] - (i % 3 == 0 ? 0.0f : i % 3 == 1 ? 0.5f : -0.5f);
        ret[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        oldv[i] = v[i] - ((i + 1) % 3 == 0 ? 0.0f : (i + 1) % 3 == 1 ? 0.5f : -0.5f);
        ref[i] = lp[i] + ag_test_uniform(&r, -0.7f, 0.7f);
    }
    ag_loss_batch_t b = {.mask = mask,
                         .advantages = adv,
                         .old_logprobs = old,
                         .returns = ret,
                         .old_values = oldv,
                         .ref_logprobs = ref};
    ag_loss_outputs_t out = {lp, ent, v};
    float dlp[NT], dent[NT], dv[NT];
    ag_loss_stats_t st;
    assert_int_equal(ag_loss_tokens(lc, &b, &out, NT, dlp, dent, dv, &st), 0);
    float *in[3] = {lp, ent, v};
    const float *an[3] = {dlp, dent, dv};
    double num = 0.0, den = 0.0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < NT; i++) {
            const float keep = in[k][i], h = 1e-2f;
            ag_loss_stats_t up, down;
            in[k][i] = keep + h;
            assert_int_equal(ag_loss_tokens(lc, &b, &out, NT, NULL, NULL, NULL, &up), 0);
            in[k][i] = keep - h;
            assert_int_equal(ag_loss_tokens(lc, &b, &out, NT, NULL, NULL, NULL, &down), 0);
            in[k][i] = keep;
            const double fd = (up.loss - down.loss) / ((double)(keep + h) - (double)(keep - h));
            num += (fd - an[k][i]) * (fd - an[k][i]);
            den += fd * fd;
            if (mask[i] == 0.0f)
                assert_true(an[k][i] == 0.0f);
        }
    assert_true(den > 1e-12); /* the term moves the objective */
    return sqrt(num / den);
}

static void test_token_gradients(void **state)
{
    (void)state;
    const struct {
        const char *name;
        ag_loss_config_t lc;
    } cases[] = {
        {"ce", {.ce_coef = 1.0f, .kl_estimator = AG_KL_K3}},
        {"ppo", {.pg_coef = 1.0f, .clip_eps = 0.2f, .kl_estimator = AG_KL_K3}},
        {"value", {.vf_coef = 1.0f, .vf_clip = 0.2f, .kl_estimator = AG_KL_K3}},
        {"value-nc", {.vf_coef = 1.0f, .kl_estimator = AG_KL_K3}},
        {"entropy", {.ent_coef = 1.0f, .kl_estimator = AG_KL_K3}},
        {"kl-k1", {.kl_coef = 1.0f, .kl_estimator = AG_KL_K1}},
        {"kl-k3", {.kl_coef = 1.0f, .kl_estimator = AG_KL_K3}},
        {"all", s_all_terms},
        {"norm", {.ce_coef = 1.0f, .kl_estimator = AG_KL_K3, .token_norm = 100.0f}},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const double err = s_token_check(&cases[k].lc);
        if (getenv("AG_TEST_VERBOSE"))
            printf("%-9s rel err %.2e\n", cases[k].name, err);
        if (err > 1e-3)
            fail_msg("%s: relative error %.3e", cases[k].name, err);
    }
}

/* ------------------------------------------------------------ statistics */

/* Both branches of each clipped loss must be live in the fixture, or the
 * checks would not cover them. */
static void test_fixture_exercises_clipping(void **state)
{
    (void)state;
    lfix_t f;
    s_lfix_init(&f);
    ag_loss_config_t lc;
    ag_loss_config_default(&lc);
    ag_loss_stats_t st;
    ag_loss_t *l = ag_loss_create();
    assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
    assert_int_equal(ag_loss_eval(l, f.m, &f.batch, &lc, &st), 0);
    assert_true(st.clip_frac > 0.3 && st.clip_frac < 0.9);
    assert_true(st.value_clip_frac > 0.3 && st.value_clip_frac < 0.9);
    ag_loss_destroy(&l);
    assert_null(l);
    ag_model_destroy(&f.m);
}

/* The reported statistics are the documented formulas, recomputed here in
 * double from the logits and values. */
static void test_loss_values(void **state)
{
    (void)state;
    lfix_t f;
    s_lfix_init(&f);
    const ag_loss_config_t lc = s_all_terms;
    float lp[GR], ent[GR];
    f.batch.out_logprobs = lp;
    f.batch.out_entropy = ent;
    ag_loss_t *l = ag_loss_create();
    assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
    ag_loss_stats_t st;
    assert_int_equal(ag_loss_eval(l, f.m, &f.batch, &lc, &st), 0);
    const float *z = ag_model_logits(f.m), *v = ag_model_values(f.m);
    double n = 0, ce = 0, pg = 0, vl = 0, en = 0, kl = 0, akl = 0, clip = 0;
    for (int i = 0; i < GR; i++) {
        if (f.mask[i] == 0.0f)
            continue;
        const float *zi = z + i * 11;
        double h;
        const double lpi = ag_test_log_softmax(zi, 11, f.targets[i], &h);
        assert_true(fabs(lp[i] - lpi) < 1e-5 && fabs(ent[i] - h) < 1e-5);
        double ratio = exp(lpi - f.oldlp[i]);
        double cr = fmin(fmax(ratio, 0.8), 1.2);
        double vc = f.oldv[i] + fmin(fmax(v[i] - f.oldv[i], -0.2), 0.2);
        double d = f.reflp[i] - lpi;
        n += 1;
        ce += -lpi;
        pg += -fmin(ratio * f.adv[i], cr * f.adv[i]);
        vl += 0.5 * fmax(pow(v[i] - f.ret[i], 2), pow(vc - f.ret[i], 2));
        en += h;
        kl += exp(d) - d - 1;
        akl += (ratio - 1) - log(ratio);
        clip += fabs(ratio - 1) > 0.2;
    }
    assert_true(fabs(st.tokens - n) < 1e-9);
    assert_true(fabs(st.ce - ce / n) < 1e-5);
    assert_true(fabs(st.policy_loss - pg / n) < 1e-5);
    assert_true(fabs(st.value_loss - vl / n) < 1e-5);
    assert_true(fabs(st.entropy - en / n) < 1e-5);
    assert_true(fabs(st.kl - kl / n) < 1e-5);
    assert_true(fabs(st.approx_kl - akl / n) < 1e-5);
    assert_true(fabs(st.clip_frac - clip / n) < 1e-9);
    double loss = (0.3 * ce + pg + 0.5 * vl - 0.01 * en + 0.1 * kl) / n;
    assert_true(fabs(st.loss - loss) < 1e-5);
    /* masked tokens report zeros */
    assert_true(lp[GT + 5] == 0.0f && ent[GT + 5] == 0.0f);
    ag_loss_destroy(&l);
    ag_model_destroy(&f.m);
}

/* ------------------------------------------------------- through the model */

/* The whole objective, backpropagated through the model, against central
 * differences in sampled parameters of tensors at both ends and the middle. */
static void test_grad_through_model(void **state)
{
    (void)state;
    lfix_t f;
    s_lfix_init(&f);
    const ag_loss_config_t lc = s_all_terms;
    ag_loss_t *l = ag_loss_create();
    ag_model_zero_grad(f.m);
    assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
    assert_int_equal(ag_loss_backward(l, f.m, &f.batch, &lc, NULL), 0);
    const size_t np = ag_model_num_params(f.m);
    float *grad = malloc(np * sizeof(float));
    assert_non_null(grad);
    memcpy(grad, ag_model_grads(f.m), np * sizeof(float));
    static const char *names[] = {"head.weight", "value.weight", "lnf.bias",
                                  "layers.1.mlp.fc.weight", "layers.0.attn.qkv.weight"};
    ag_rng_t r;
    ag_rng_seed(&r, 5);
    float *p = ag_model_params(f.m);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        const ag_tensor_info_t *t = ag_model_tensor(f.m, ag_model_find_tensor(f.m, names[k]));
        double num = 0.0, nfd = 0.0, nan_ = 0.0;
        for (int s = 0; s < 8; s++) {
            const size_t i = t->offset + ag_rng_below(&r, (uint32_t)t->size);
            const float keep = p[i], h = 1e-2f;
            ag_loss_stats_t up, down;
            p[i] = keep + h;
            assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
            assert_int_equal(ag_loss_eval(l, f.m, &f.batch, &lc, &up), 0);
            p[i] = keep - h;
            assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
            assert_int_equal(ag_loss_eval(l, f.m, &f.batch, &lc, &down), 0);
            p[i] = keep;
            const double fd = (up.loss - down.loss) / ((double)(keep + h) - (double)(keep - h));
            num += (fd - grad[i]) * (fd - grad[i]);
            nfd += fd * fd;
            nan_ += (double)grad[i] * grad[i];
        }
        const double err = sqrt(num) / sqrt(fmax(nfd, nan_));
        if (getenv("AG_TEST_VERBOSE"))
            printf("%-26s rel err %.2e\n", names[k], err);
        assert_true(nfd > 1e-14);
        if (err > 5e-3)
            fail_msg("%s: relative error %.3e", names[k], err);
    }
    free(grad);
    ag_loss_destroy(&l);
    ag_model_destroy(&f.m);
}

/* Gradients accumulated over micro-batches with token_norm set to the whole
 * batch's token count equal one pass over the whole batch. */
static void test_token_norm_accumulates(void **state)
{
    (void)state;
    lfix_t f;
    s_lfix_init(&f);
    ag_loss_config_t lc = s_all_terms;
    ag_loss_t *l = ag_loss_create();
    const size_t np = ag_model_num_params(f.m);
    float *whole = malloc(np * sizeof(float));
    assert_non_null(whole);
    ag_loss_stats_t st;
    ag_model_zero_grad(f.m);
    assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
    assert_int_equal(ag_loss_backward(l, f.m, &f.batch, &lc, &st), 0);
    memcpy(whole, ag_model_grads(f.m), np * sizeof(float));
    lc.token_norm = (float)st.tokens;
    ag_model_zero_grad(f.m);
    double loss = 0.0;
    for (int b = 0; b < GB; b++) {
        const size_t o = (size_t)b * GT;
        ag_loss_batch_t one = {.targets = f.targets + o,
                               .mask = f.mask + o,
                               .advantages = f.adv + o,
                               .old_logprobs = f.oldlp + o,
                               .returns = f.ret + o,
                               .old_values = f.oldv + o,
                               .ref_logprobs = f.reflp + o};
        ag_loss_stats_t s1;
        assert_int_equal(ag_model_forward(f.m, 1, GT, f.tokens + o, 0), 0);
        assert_int_equal(ag_loss_backward(l, f.m, &one, &lc, &s1), 0);
        loss += s1.loss;
    }
    assert_true(fabs(loss - st.loss) < 1e-6);
    const float *g = ag_model_grads(f.m);
    double gd = 0.0, gn = 0.0;
    for (size_t k = 0; k < np; k++) {
        gd = fmax(gd, fabs(g[k] - whole[k]));
        gn = fmax(gn, fabs(whole[k]));
    }
    assert_true(gn > 1e-3);
    assert_true(gd < 1e-5 * gn);
    free(whole);
    ag_loss_destroy(&l);
    ag_model_destroy(&f.m);
}

/* ------------------------------------------------------------- bad input */

static void test_bad_input(void **state)
{
    (void)state;
    ag_model_config_t c = ag_test_tiny_config();
    ag_model_t *m = ag_model_create(&c, 1, 1);
    assert_int_equal(ag_model_reserve(m, 1, 4), 0);
    ag_loss_t *l = ag_loss_create();
    int32_t tok[4] = {0, 1, 2, 3}, tgt[4] = {1, 2, 30, 4};
    ag_loss_batch_t b = {.targets = tgt};
    ag_loss_config_t lc = {.ce_coef = 1.0f, .kl_estimator = AG_KL_K1};
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL); /* no forward yet */
    assert_int_equal(ag_model_forward(m, 1, 4, tok, 0), 0);
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL); /* target out of range */
    float mask[4] = {1, 1, 0, 1};
    b.mask = mask;
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), 0); /* masked target is not read */
    lc.pg_coef = 1.0f;
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL); /* PPO without its inputs */
    lc.pg_coef = 0.0f;
    lc.kl_estimator = 2;
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL);
    lc.kl_estimator = AG_KL_K3;
    lc.token_norm = NAN;
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL);
    lc.token_norm = 0.0f;
    assert_int_equal(ag_model_forward(m, 1, 4, tok, AG_MODEL_NO_LOGITS), 0);
    assert_int_equal(ag_loss_eval(l, m, &b, &lc, NULL), -EINVAL); /* no logits for CE */
    float ret[4] = {0.5f, 0.5f, 0.5f, 0.5f};
    ag_loss_batch_t vb = {.mask = mask, .returns = ret};
    ag_loss_config_t vc = {.vf_coef = 1.0f, .kl_estimator = AG_KL_K3};
    ag_loss_stats_t st;
    assert_int_equal(ag_loss_backward(l, m, &vb, &vc, &st), 0); /* a value-only objective */
    assert_true(st.value_loss > 0.0 && st.tokens == 3.0);
    ag_loss_destroy(&l);
    ag_loss_destroy(NULL);
    ag_model_destroy(&m);
}

/* ------------------------------------------------------ PyTorch cross-check */

static void s_write(const char *dir, const char *name, const void *data, size_t n)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* Writes a checkpoint, a batch and this code's logits, values, loss and
 * gradients into dir, for examples/python/check_model_torch.py to recompute
 * with PyTorch autograd (an implementation that shares nothing with this
 * one). */
static void s_torch_dump(const char *dir)
{
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 32,
                           .n_layers = 2,
                           .n_heads = 2,
                           .ctx = 16,
                           .mlp_ratio = 4};
    enum { B = 3, T = 16, R = B * T };
    ag_model_t *m = ag_model_create(&c, 31, 2);
    assert_int_equal(ag_model_reserve(m, B, T), 0);
    ag_test_randomise(m, 32);
    ag_rng_t r;
    ag_rng_seed(&r, 33);
    int32_t tok[R], tgt[R];
    float mask[R], adv[R], oldlp[R], ret[R], oldv[R], reflp[R];
    for (int i = 0; i < R; i++) {
        tok[i] = (int32_t)ag_rng_below(&r, AG_VOCAB_SIZE);
        tgt[i] = (int32_t)ag_rng_below(&r, AG_VOCAB_SIZE);
        mask[i] = (i / T == 2 && i % T >= 7) ? 0.0f : 1.0f;
        adv[i] = ag_test_uniform(&r, -2.0f, 2.0f);
        oldlp[i] = ag_test_uniform(&r, -7.0f, -4.0f);
        ret[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        oldv[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        reflp[i] = ag_test_uniform(&r, -7.0f, -4.0f);
    }
    ag_loss_config_t lc = {.ce_coef = 0.3f,
                           .pg_coef = 1.0f,
                           .clip_eps = 0.2f,
                           .vf_coef = 0.5f,
                           .vf_clip = 0.2f,
                           .ent_coef = 0.01f,
                           .kl_coef = 0.1f,
                           .kl_estimator = AG_KL_K3};
    ag_loss_batch_t b = {.targets = tgt,
                         .mask = mask,
                         .advantages = adv,
                         .old_logprobs = oldlp,
                         .returns = ret,
                         .old_values = oldv,
                         .ref_logprobs = reflp};
    assert_int_equal(ag_model_forward(m, B, T, tok, 0), 0);
    const size_t V = (size_t)c.vocab, n = ag_model_num_params(m);
    float *logits = malloc(sizeof(float) * R * V), values[R];
    memcpy(logits, ag_model_logits(m), sizeof(float) * R * V);
    memcpy(values, ag_model_values(m), sizeof(values));
    ag_loss_stats_t st;
    ag_loss_t *l = ag_loss_create();
    ag_model_zero_grad(m);
    assert_int_equal(ag_loss_backward(l, m, &b, &lc, &st), 0);
    ag_loss_destroy(&l);

    char path[1024];
    snprintf(path, sizeof(path), "%s/model.ckpt", dir);
    assert_int_equal(ag_ckpt_save(path, m, NULL, 0, NULL, 0), 0);
    int32_t dims[2] = {B, T};
    float coefs[8] = {lc.ce_coef, lc.pg_coef,  lc.clip_eps, lc.vf_coef,
                      lc.vf_clip, lc.ent_coef, lc.kl_coef,  (float)lc.kl_estimator};
    s_write(dir, "dims.i32", dims, sizeof(dims));
    s_write(dir, "tokens.i32", tok, sizeof(tok));
    s_write(dir, "targets.i32", tgt, sizeof(tgt));
    s_write(dir, "mask.f32", mask, sizeof(mask));
    s_write(dir, "advantages.f32", adv, sizeof(adv));
    s_write(dir, "old_logprobs.f32", oldlp, sizeof(oldlp));
    s_write(dir, "returns.f32", ret, sizeof(ret));
    s_write(dir, "old_values.f32", oldv, sizeof(oldv));
    s_write(dir, "ref_logprobs.f32", reflp, sizeof(reflp));
    s_write(dir, "coefs.f32", coefs, sizeof(coefs));
    s_write(dir, "logits.f32", logits, sizeof(float) * R * V);
    s_write(dir, "values.f32", values, sizeof(values));
    s_write(dir, "loss.f64", &st.loss, sizeof(st.loss));
    s_write(dir, "grads.f32", ag_model_grads(m), n * sizeof(float));
    free(logits);
    ag_model_destroy(&m);
}

/* AG_TORCH_DUMP_DIR=DIR only writes the files there. Otherwise, when the
 * source tree is known (meson test sets AGORA_SOURCE_DIR) and the system
 * Python has torch, the check runs here; without torch it is skipped. */
static void test_against_torch(void **state)
{
    (void)state;
    const char *dump = getenv("AG_TORCH_DUMP_DIR");
    if (dump && *dump) {
        s_torch_dump(dump);
        return;
    }
    const char *src = getenv("AGORA_SOURCE_DIR");
    if (!src || !*src || strchr(src, '\'') ||
        system("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1") != 0)
        skip();
    const char *tmp = getenv("TMPDIR");
    char dir[512], cmd[2048];
    snprintf(dir, sizeof(dir), "%s/agora-torch-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(dir));
    s_torch_dump(dir);
    snprintf(cmd, sizeof(cmd),
             "/usr/bin/python3 '%s/examples/python/check_model_torch.py' '%s' >/dev/null", src,
             dir);
    int rc = system(cmd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_gradients),
        cmocka_unit_test(test_fixture_exercises_clipping),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_grad_through_model),
        cmocka_unit_test(test_token_norm_accumulates),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_against_torch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
