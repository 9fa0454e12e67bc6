/*
 * test_model.c - the model core's training path: tensor table, gradient
 * checks of every parameter group against central finite differences for
 * objectives of each per-token output (log p(target), entropy, value),
 * padding invariance, bit-for-bit determinism, AdamW against a reference
 * written out in double, and a short training run that must learn. The
 * learner's objective on top of these outputs is tested in test_loss.c.
 *
 * Finite differences run on a tiny randomised model (tiny_model.h).
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

#include "model.h"
#include "optim.h"
#include "rng.h"
#include "tiny_model.h"

/* ------------------------------------------------------------- fixtures */

enum { GB = 3, GT = 7, GR = GB * GT };

/* Which per-token outputs an objective reads. */
enum { OBJ_LOGPROB = 1, OBJ_ENTROPY = 2, OBJ_VALUE = 4 };

/* The objective J = sum over tokens of dlogprob * log p(target) + dentropy *
 * entropy + dvalue * value: linear in the outputs, so its per-token gradients
 * are the coefficients themselves and the check isolates the model core. */
typedef struct {
    ag_model_t *m;
    int32_t tokens[GR], targets[GR];
    float mask[GR], dlogprob[GR], dentropy[GR], dvalue[GR];
} gfix_t;

/* Three sequences; the second is 4 tokens long and padded, so its tail is
 * masked out. Value gradients sit at a few positions only, as the reward
 * model's do (the last token of each sequence). */
static void s_gfix_init(gfix_t *f, int threads)
{
    f->m = ag_test_tiny_model(GB, GT, threads, 7);
    ag_rng_t r;
    ag_rng_seed(&r, 99);
    for (int i = 0; i < GR; i++) {
        f->tokens[i] = (int32_t)ag_rng_below(&r, 11);
        f->targets[i] = (int32_t)ag_rng_below(&r, 11);
        f->mask[i] = (i / GT == 1 && i % GT >= 4) ? 0.0f : 1.0f;
        f->dlogprob[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        f->dentropy[i] = ag_test_uniform(&r, -1.0f, 1.0f);
        f->dvalue[i] = (i % GT == GT - 1 || i == GT + 3) ? ag_test_uniform(&r, -1.0f, 1.0f) : 0.0f;
    }
    for (int i = 4; i < GT; i++)
        f->tokens[GT + i] = 10;
}

static double s_objective(gfix_t *f, int what)
{
    const unsigned flags = what == OBJ_VALUE ? AG_MODEL_NO_LOGITS : 0;
    assert_int_equal(ag_model_forward(f->m, GB, GT, f->tokens, flags), 0);
    float lp[GR] = {0}, ent[GR] = {0};
    if (what != OBJ_VALUE)
        assert_int_equal(ag_model_logprobs(f->m, f->targets, f->mask, lp, ent), 0);
    const float *v = ag_model_values(f->m);
    double s = 0.0;
    for (int i = 0; i < GR; i++) {
        if (what & OBJ_LOGPROB)
            s += (double)f->dlogprob[i] * lp[i];
        if (what & OBJ_ENTROPY)
            s += (double)f->dentropy[i] * ent[i];
        if (what & OBJ_VALUE)
            s += (double)f->dvalue[i] * v[i];
    }
    return s;
}

static void s_analytic(gfix_t *f, int what)
{
    ag_model_zero_grad(f->m);
    const unsigned flags = what == OBJ_VALUE ? AG_MODEL_NO_LOGITS : 0;
    assert_int_equal(ag_model_forward(f->m, GB, GT, f->tokens, flags), 0);
    if (what != OBJ_VALUE)
        assert_int_equal(ag_model_logprobs(f->m, f->targets, f->mask, NULL, NULL), 0);
    assert_int_equal(ag_model_backward(f->m, what & OBJ_LOGPROB ? f->dlogprob : NULL,
                                       what & OBJ_ENTROPY ? f->dentropy : NULL,
                                       what & OBJ_VALUE ? f->dvalue : NULL),
                     0);
}

#define SAMPLES 8
#define STEP 1e-2f
/* Float32 forward passes leave about 1e-3 of noise in these relative errors;
 * a wrong term, sign or index gives errors of order 1. */
#define TOL 5e-3

/* Relative error ||fd - an|| / max(||fd||, ||an||) over a sample of entries
 * of one tensor, or -1 if the gradient is structurally zero there. */
static double s_check_tensor(gfix_t *f, int what, int ti, const float *grad, ag_rng_t *r)
{
    const ag_tensor_info_t *t = ag_model_tensor(f->m, ti);
    float *p = ag_model_params(f->m);
    double num = 0.0, nfd = 0.0, nan_ = 0.0;
    int n = t->size < SAMPLES ? (int)t->size : SAMPLES;
    for (int s = 0; s < n; s++) {
        size_t k =
            t->offset + (t->size <= SAMPLES ? (size_t)s : ag_rng_below(r, (uint32_t)t->size));
        /* embedding rows that the batch uses */
        if (!strcmp(t->name, "wpe"))
            k = t->offset + (size_t)(s % GT) * 16 + ag_rng_below(r, 16);
        if (!strcmp(t->name, "wte"))
            k = t->offset + (size_t)f->tokens[ag_rng_below(r, GR)] * 16 + ag_rng_below(r, 16);
        const float keep = p[k];
        p[k] = keep + STEP;
        double up = s_objective(f, what);
        p[k] = keep - STEP;
        double down = s_objective(f, what);
        p[k] = keep;
        /* divide by the step actually taken, after rounding to float */
        double fd = (up - down) / ((double)(keep + STEP) - (double)(keep - STEP));
        double an = grad[k];
        num += (fd - an) * (fd - an);
        nfd += fd * fd;
        nan_ += an * an;
    }
    double den = sqrt(nfd > nan_ ? nfd : nan_);
    if (den < 1e-7)
        return -1.0;
    return sqrt(num) / den;
}

/* Checks every tensor; tensors the objective cannot reach (the policy head
 * for a value-only objective, the value head without a value term) must have
 * an exactly zero gradient. */
static void s_gradcheck(int what, const char *name)
{
    gfix_t f;
    s_gfix_init(&f, 2);
    s_analytic(&f, what);
    size_t n = ag_model_num_params(f.m);
    float *grad = malloc(n * sizeof(float));
    assert_non_null(grad);
    memcpy(grad, ag_model_grads(f.m), n * sizeof(float));
    ag_rng_t r;
    ag_rng_seed(&r, 5);
    double worst = 0.0;
    for (int ti = 0; ti < ag_model_num_tensors(f.m); ti++) {
        const ag_tensor_info_t *t = ag_model_tensor(f.m, ti);
        int head = !strncmp(t->name, "head.", 5), value = !strncmp(t->name, "value.", 6);
        int unreachable = head ? what == OBJ_VALUE : value ? !(what & OBJ_VALUE) : 0;
        if (unreachable) {
            for (size_t k = 0; k < t->size; k++)
                assert_true(grad[t->offset + k] == 0.0f);
            continue;
        }
        double err = s_check_tensor(&f, what, ti, grad, &r);
        if (getenv("AG_TEST_VERBOSE"))
            printf("%-8s %-28s rel err %.2e\n", name, t->name, err);
        if (err < 0.0) {
            /* a reachable tensor whose sampled gradient is all zero is a bug */
            fail_msg("%s: %s has zero gradient", name, t->name);
        }
        if (err > worst)
            worst = err;
        if (err > TOL)
            fail_msg("%s: %s relative error %.3e", name, t->name, err);
    }
    if (getenv("AG_TEST_VERBOSE"))
        printf("%-8s worst %.2e\n", name, worst);
    free(grad);
    ag_model_destroy(&f.m);
}

static void test_grad_logprob(void **state)
{
    (void)state;
    s_gradcheck(OBJ_LOGPROB, "logprob");
}

static void test_grad_entropy(void **state)
{
    (void)state;
    s_gradcheck(OBJ_ENTROPY, "entropy");
}

static void test_grad_value(void **state)
{
    (void)state;
    s_gradcheck(OBJ_VALUE, "score");
}

static void test_grad_all(void **state)
{
    (void)state;
    s_gradcheck(OBJ_LOGPROB | OBJ_ENTROPY | OBJ_VALUE, "all");
}

/* The check above must be able to fail: a gradient that is 3% off in one
 * tensor is caught. */
static void test_grad_check_is_sensitive(void **state)
{
    (void)state;
    gfix_t f;
    s_gfix_init(&f, 1);
    s_analytic(&f, OBJ_LOGPROB);
    size_t n = ag_model_num_params(f.m);
    float *grad = malloc(n * sizeof(float));
    assert_non_null(grad);
    memcpy(grad, ag_model_grads(f.m), n * sizeof(float));
    int ti = ag_model_find_tensor(f.m, "layers.0.ln1.bias");
    assert_true(ti >= 0);
    const ag_tensor_info_t *t = ag_model_tensor(f.m, ti);
    ag_rng_t r;
    ag_rng_seed(&r, 5);
    double good = s_check_tensor(&f, OBJ_LOGPROB, ti, grad, &r);
    for (size_t k = 0; k < t->size; k++)
        grad[t->offset + k] *= 1.03f;
    ag_rng_seed(&r, 5);
    double bad = s_check_tensor(&f, OBJ_LOGPROB, ti, grad, &r);
    assert_true(good >= 0.0 && good < TOL);
    assert_true(bad > TOL);
    free(grad);
    ag_model_destroy(&f.m);
}

/* ------------------------------------------------------------ structure */

static void test_tensor_table(void **state)
{
    (void)state;
    ag_model_config_t c;
    ag_model_config_default(&c);
    assert_int_equal(ag_model_config_check(&c, NULL, 0), 0);
    ag_model_t *m = ag_model_create(&c, 1, 1);
    assert_non_null(m);
    assert_int_equal(ag_model_num_params(m), ag_model_config_num_params(&c));
    assert_int_equal(ag_model_num_tensors(m), 2 + 12 * c.n_layers + 6);
    size_t off = 0;
    for (int i = 0; i < ag_model_num_tensors(m); i++) {
        const ag_tensor_info_t *t = ag_model_tensor(m, i);
        assert_int_equal(t->offset, off);
        assert_int_equal(t->size, (size_t)t->shape[0] * (size_t)t->shape[1]);
        off += t->size;
    }
    assert_int_equal(off, ag_model_num_params(m));
    assert_string_equal(ag_model_tensor(m, 0)->name, "wte");
    int qkv = ag_model_find_tensor(m, "layers.3.attn.qkv.weight");
    assert_true(qkv > 0);
    assert_int_equal(ag_model_tensor(m, qkv)->shape[0], 3 * 128);
    assert_int_equal(ag_model_find_tensor(m, "nope"), -1);
    /* initialisation: unit gains, zero biases, small weights */
    const float *p = ag_model_params_const(m);
    const ag_tensor_info_t *g = ag_model_tensor(m, ag_model_find_tensor(m, "lnf.weight"));
    const ag_tensor_info_t *b = ag_model_tensor(m, ag_model_find_tensor(m, "head.bias"));
    assert_true(p[g->offset] == 1.0f && p[b->offset] == 0.0f);
    double ss = 0.0;
    const ag_tensor_info_t *w = ag_model_tensor(m, 0);
    for (size_t k = 0; k < w->size; k++)
        ss += (double)p[k] * p[k];
    assert_true(fabs(sqrt(ss / (double)w->size) - 0.02) < 0.002);
    ag_model_destroy(&m);
    assert_null(m);
    ag_model_destroy(NULL);

    char err[128];
    c.n_heads = 3;
    assert_int_equal(ag_model_config_check(&c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "n_heads"));
    assert_null(ag_model_create(&c, 1, 1));
}

static void test_bad_input(void **state)
{
    (void)state;
    ag_model_config_t c = ag_test_tiny_config();
    ag_model_t *m = ag_model_create(&c, 1, 1);
    int32_t tok[16] = {0};
    assert_int_equal(ag_model_forward(m, 1, 4, tok, 0), -EINVAL); /* not reserved */
    assert_int_equal(ag_model_reserve(m, 2, 8), 0);
    assert_int_equal(ag_model_reserve(m, 2, 9), -EINVAL); /* beyond ctx */
    assert_int_equal(ag_model_forward(m, 3, 8, tok, 0), -ERANGE);
    tok[3] = 11;
    assert_int_equal(ag_model_forward(m, 1, 4, tok, 0), -EINVAL);
    tok[3] = -1;
    assert_int_equal(ag_model_forward(m, 1, 4, tok, 0), -EINVAL);
    tok[3] = 2;
    assert_int_equal(ag_model_forward(m, 1, 4, tok, 0), 0);
    int32_t tgt[4] = {1, 2, 30, 4};
    float dlp[4] = {0};
    /* no per-token pass yet: nothing to backpropagate log-probs from */
    assert_int_equal(ag_model_backward(m, dlp, NULL, NULL), -EINVAL);
    assert_int_equal(ag_model_logprobs(m, tgt, NULL, NULL, NULL), -EINVAL); /* out of range */
    float mask[4] = {1, 1, 0, 1};
    assert_int_equal(ag_model_logprobs(m, tgt, mask, NULL, NULL), 0); /* masked: not read */
    mask[2] = -1.0f;
    assert_int_equal(ag_model_logprobs(m, tgt, mask, NULL, NULL), -EINVAL);
    mask[2] = NAN;
    assert_int_equal(ag_model_logprobs(m, tgt, mask, NULL, NULL), -EINVAL);
    mask[2] = 0.0f;
    assert_int_equal(ag_model_logprobs(m, tgt, mask, NULL, NULL), 0);
    assert_int_equal(ag_model_backward(m, dlp, NULL, NULL), 0);
    /* the backward consumed the pass (the logits now hold gradients) */
    assert_int_equal(ag_model_backward(m, dlp, NULL, NULL), -EINVAL);
    assert_int_equal(ag_model_forward(m, 1, 4, tok, AG_MODEL_NO_LOGITS), 0);
    assert_null(ag_model_logits(m));
    assert_int_equal(ag_model_logprobs(m, tgt, mask, NULL, NULL), -EINVAL); /* no logits */
    assert_int_equal(ag_model_backward(m, NULL, dlp, NULL), -EINVAL);
    assert_int_equal(ag_model_backward(m, NULL, NULL, dlp), 0);
    ag_model_destroy(&m);
}

/* ------------------------------------------------------ reference forward */

/* A plain double-precision implementation of the documented model, written
 * from the description in model.h rather than from model.c, for one
 * sequence: logits (T,V) and values (T). */
static const float *s_t(const ag_model_t *m, const char *name)
{
    int i = ag_model_find_tensor(m, name);
    assert_true(i >= 0);
    return ag_model_params_const(m) + ag_model_tensor(m, i)->offset;
}

static void s_ref_layernorm(double *out, const double *x, const float *w, const float *b, int C)
{
    double mu = 0.0, var = 0.0;
    for (int i = 0; i < C; i++)
        mu += x[i];
    mu /= C;
    for (int i = 0; i < C; i++)
        var += (x[i] - mu) * (x[i] - mu);
    var /= C;
    for (int i = 0; i < C; i++)
        out[i] = (x[i] - mu) / sqrt(var + 1e-5) * w[i] + b[i];
}

/* y (n_out) = W (n_out, n_in) x + b */
static void s_ref_linear(double *y, const double *x, const float *W, const float *b, int n_out,
                         int n_in)
{
    for (int o = 0; o < n_out; o++) {
        double a = b[o];
        for (int i = 0; i < n_in; i++)
            a += (double)W[(size_t)o * n_in + i] * x[i];
        y[o] = a;
    }
}

static void s_ref_forward(const ag_model_t *m, const int32_t *tok, int T, double *logits,
                          double *values)
{
    const ag_model_config_t *c = ag_model_config(m);
    const int D = c->d_model, H = c->n_heads, hs = D / H, F = c->mlp_ratio * D, V = c->vocab;
    double *x = calloc((size_t)T * D, sizeof(double)), *h = malloc(sizeof(double) * T * D);
    double *qkv = malloc(sizeof(double) * T * 3 * D), *att = malloc(sizeof(double) * T * D);
    double *tmp = malloc(sizeof(double) * (F > V ? F : V)), *tmp2 = malloc(sizeof(double) * D);
    const float *wte = s_t(m, "wte"), *wpe = s_t(m, "wpe");
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++)
            x[t * D + i] = (double)wte[tok[t] * D + i] + wpe[t * D + i];
    char n1[64], n2[64];
    for (int l = 0; l < c->n_layers; l++) {
#define P(suffix) (snprintf(n1, sizeof(n1), "layers.%d.%s", l, suffix), s_t(m, n1))
#define P2(suffix) (snprintf(n2, sizeof(n2), "layers.%d.%s", l, suffix), s_t(m, n2))
        for (int t = 0; t < T; t++) {
            s_ref_layernorm(h + t * D, x + t * D, P("ln1.weight"), P2("ln1.bias"), D);
            s_ref_linear(qkv + t * 3 * D, h + t * D, P("attn.qkv.weight"), P2("attn.qkv.bias"),
                         3 * D, D);
        }
        for (int t = 0; t < T; t++)
            for (int hd = 0; hd < H; hd++) {
                double sc[64], mx = -1e300, sum = 0.0;
                for (int j = 0; j <= t; j++) {
                    double a = 0.0;
                    for (int d = 0; d < hs; d++)
                        a += qkv[t * 3 * D + hd * hs + d] * qkv[j * 3 * D + D + hd * hs + d];
                    sc[j] = a / sqrt((double)hs);
                    mx = sc[j] > mx ? sc[j] : mx;
                }
                for (int j = 0; j <= t; j++)
                    sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < hs; d++) {
                    double a = 0.0;
                    for (int j = 0; j <= t; j++)
                        a += sc[j] / sum * qkv[j * 3 * D + 2 * D + hd * hs + d];
                    att[t * D + hd * hs + d] = a;
                }
            }
        for (int t = 0; t < T; t++) {
            s_ref_linear(tmp2, att + t * D, P("attn.proj.weight"), P2("attn.proj.bias"), D, D);
            for (int i = 0; i < D; i++)
                x[t * D + i] += tmp2[i];
            s_ref_layernorm(h + t * D, x + t * D, P("ln2.weight"), P2("ln2.bias"), D);
            s_ref_linear(tmp, h + t * D, P("mlp.fc.weight"), P2("mlp.fc.bias"), F, D);
            for (int i = 0; i < F; i++) {
                double u = tmp[i];
                tmp[i] = 0.5 * u * (1.0 + tanh(sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
            }
            s_ref_linear(tmp2, tmp, P("mlp.proj.weight"), P2("mlp.proj.bias"), D, F);
            for (int i = 0; i < D; i++)
                x[t * D + i] += tmp2[i];
        }
#undef P
#undef P2
    }
    for (int t = 0; t < T; t++) {
        s_ref_layernorm(h + t * D, x + t * D, s_t(m, "lnf.weight"), s_t(m, "lnf.bias"), D);
        s_ref_linear(logits + (size_t)t * V, h + t * D, s_t(m, "head.weight"), s_t(m, "head.bias"),
                     V, D);
        s_ref_linear(values + t, h + t * D, s_t(m, "value.weight"), s_t(m, "value.bias"), 1, D);
    }
    free(x);
    free(h);
    free(qkv);
    free(att);
    free(tmp);
    free(tmp2);
}

static void s_check_reference(int T)
{
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 48,
                           .n_layers = 2,
                           .n_heads = 3,
                           .ctx = 40,
                           .mlp_ratio = 2};
    enum { B = 2, TMAX = 40 };
    ag_model_t *m = ag_model_create(&c, 9, 2);
    assert_int_equal(ag_model_reserve(m, B, T), 0);
    ag_test_randomise(m, 10);
    int32_t tok[B * TMAX];
    ag_rng_t r;
    ag_rng_seed(&r, 12);
    for (int i = 0; i < B * T; i++)
        tok[i] = (int32_t)ag_rng_below(&r, AG_VOCAB_SIZE);
    assert_int_equal(ag_model_forward(m, B, T, tok, 0), 0);
    const int V = c.vocab;
    double *lg = malloc(sizeof(double) * T * V), vals[TMAX];
    double maxd = 0.0, maxv = 0.0;
    for (int b = 0; b < B; b++) {
        s_ref_forward(m, tok + b * T, T, lg, vals);
        const float *l = ag_model_logits(m) + (size_t)b * T * V;
        for (int i = 0; i < T * V; i++) {
            maxd = fmax(maxd, fabs(l[i] - lg[i]));
            maxv = fmax(maxv, fabs(lg[i]));
        }
        for (int t = 0; t < T; t++)
            maxd = fmax(maxd, fabs(ag_model_values(m)[b * T + t] - vals[t]));
    }
    assert_true(maxv > 1.0);
    assert_true(maxd < 1e-4 * maxv);
    free(lg);
    ag_model_destroy(&m);
}

/* T = 37 takes the partial-tile paths of the attention kernels, T = 40 the
 * whole-tile ones. */
static void test_forward_matches_reference(void **state)
{
    (void)state;
    s_check_reference(37);
    s_check_reference(40);
}

/* Log-probs and entropies are the documented formulas, recomputed here in
 * double from the logits; masked positions report zeros. */
static void test_logprobs_values(void **state)
{
    (void)state;
    gfix_t f;
    s_gfix_init(&f, 2);
    float lp[GR], ent[GR];
    assert_int_equal(ag_model_forward(f.m, GB, GT, f.tokens, 0), 0);
    assert_int_equal(ag_model_logprobs(f.m, f.targets, f.mask, lp, ent), 0);
    const float *z = ag_model_logits(f.m);
    for (int i = 0; i < GR; i++) {
        if (f.mask[i] == 0.0f) {
            assert_true(lp[i] == 0.0f && ent[i] == 0.0f);
            continue;
        }
        const float *zi = z + i * 11;
        double h;
        const double want = ag_test_log_softmax(zi, 11, f.targets[i], &h);
        assert_true(fabs(lp[i] - want) < 1e-5);
        assert_true(fabs(ent[i] - h) < 1e-5);
    }
    /* without targets: entropy only */
    float lp2[GR];
    assert_int_equal(ag_model_logprobs(f.m, NULL, f.mask, lp2, ent), 0);
    for (int i = 0; i < GR; i++)
        assert_true(lp2[i] == 0.0f);
    ag_model_destroy(&f.m);
}

/* --------------------------------------------------------------- padding */

/* Right padding: each sequence alone (B = 1, T = its length) gives the same
 * logits, values, log-probs and gradients as inside a padded batch. */
static void test_padding(void **state)
{
    (void)state;
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 32,
                           .n_layers = 2,
                           .n_heads = 4,
                           .ctx = 16,
                           .mlp_ratio = 4};
    enum { B = 3, T = 12 };
    static const int len[B] = {12, 5, 9};
    ag_model_t *m = ag_model_create(&c, 3, 2);
    assert_int_equal(ag_model_reserve(m, B, T), 0);
    ag_test_randomise(m, 3);
    ag_rng_t r;
    ag_rng_seed(&r, 4);
    int32_t tok[B * T], tgt[B * T];
    float mask[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            tok[b * T + t] = t < len[b] ? (int32_t)ag_rng_below(&r, 256) : AG_TOK_PAD;
            tgt[b * T + t] = (int32_t)ag_rng_below(&r, 256);
            mask[b * T + t] = t < len[b] ? 1.0f : 0.0f;
        }
    const size_t V = (size_t)c.vocab, n = ag_model_num_params(m);
    float *logits = malloc(sizeof(float) * B * T * V), values[B * T], lp[B * T];
    float *grad_batch = malloc(n * sizeof(float)), *grad_sum = calloc(n, sizeof(float));
    assert_int_equal(ag_model_forward(m, B, T, tok, 0), 0);
    memcpy(logits, ag_model_logits(m), sizeof(float) * B * T * V);
    memcpy(values, ag_model_values(m), sizeof(values));
    /* cross-entropy summed over the 26 real tokens, divided by 26 */
    float dlp[B * T];
    for (int i = 0; i < B * T; i++)
        dlp[i] = -mask[i] / 26.0f;
    ag_model_zero_grad(m);
    assert_int_equal(ag_model_logprobs(m, tgt, mask, lp, NULL), 0);
    assert_int_equal(ag_model_backward(m, dlp, NULL, NULL), 0);
    memcpy(grad_batch, ag_model_grads(m), n * sizeof(float));
    double maxd = 0.0;
    for (int b = 0; b < B; b++) {
        float lp1[T];
        assert_int_equal(ag_model_forward(m, 1, len[b], tok + b * T, 0), 0);
        const float *l1 = ag_model_logits(m), *v1 = ag_model_values(m);
        for (int t = 0; t < len[b]; t++) {
            for (size_t k = 0; k < V; k++)
                maxd = fmax(maxd, fabs(l1[t * V + k] - logits[(b * T + t) * V + k]));
            maxd = fmax(maxd, fabs(v1[t] - values[b * T + t]));
        }
        ag_model_zero_grad(m);
        assert_int_equal(ag_model_logprobs(m, tgt + b * T, NULL, lp1, NULL), 0);
        assert_int_equal(ag_model_backward(m, dlp + b * T, NULL, NULL), 0);
        for (int t = 0; t < len[b]; t++)
            maxd = fmax(maxd, fabs(lp1[t] - lp[b * T + t]));
        const float *g = ag_model_grads(m);
        for (size_t k = 0; k < n; k++)
            grad_sum[k] += g[k];
    }
    assert_true(maxd < 1e-5);
    double gd = 0.0, gn = 0.0;
    for (size_t k = 0; k < n; k++) {
        gd = fmax(gd, fabs(grad_sum[k] - grad_batch[k]));
        gn = fmax(gn, fabs(grad_batch[k]));
    }
    assert_true(gn > 1e-3);
    assert_true(gd < 1e-5 * gn + 1e-7);
    for (int i = 0; i < B * T; i++)
        if (mask[i] == 0.0f)
            assert_true(lp[i] == 0.0f);
    free(logits);
    free(grad_batch);
    free(grad_sum);
    ag_model_destroy(&m);
}

/* ----------------------------------------------------------- determinism */

static void s_train_steps(ag_model_t *m, ag_adamw_t *o, int steps)
{
    enum { B = 4, T = 16 };
    int32_t tok[B * T], tgt[B * T];
    float adv[B * T], old[B * T], ret[B * T];
    ag_rng_t r;
    ag_rng_seed(&r, 11);
    for (int i = 0; i < B * T; i++) {
        tok[i] = (int32_t)ag_rng_below(&r, 256);
        tgt[i] = (int32_t)ag_rng_below(&r, 256);
        adv[i] = ag_test_uniform(&r, -1, 1);
        old[i] = ag_test_uniform(&r, -6, -5);
        ret[i] = ag_test_uniform(&r, -1, 1);
    }
    /* gradients through all three outputs, as a PPO objective has */
    float dlp[B * T], dent[B * T], dv[B * T];
    for (int i = 0; i < B * T; i++) {
        dlp[i] = -adv[i] * expf(-old[i] - 5.5f) / (B * T);
        dent[i] = -0.01f / (B * T);
        dv[i] = ret[i] / (B * T);
    }
    for (int s = 0; s < steps; s++) {
        assert_int_equal(ag_model_forward(m, B, T, tok, 0), 0);
        ag_model_zero_grad(m);
        assert_int_equal(ag_model_logprobs(m, tgt, NULL, NULL, NULL), 0);
        assert_int_equal(ag_model_backward(m, dlp, dent, dv), 0);
        assert_int_equal(ag_adamw_step(o, m, NULL), 0);
    }
}

static void test_determinism(void **state)
{
    (void)state;
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 64,
                           .n_layers = 2,
                           .n_heads = 2,
                           .ctx = 32,
                           .mlp_ratio = 4};
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    oc.lr = 1e-3f;
    float *first = NULL;
    size_t n = ag_model_config_num_params(&c);
    for (int run = 0; run < 2; run++) {
        ag_model_t *m = ag_model_create(&c, 42, 2);
        ag_adamw_t *o = ag_adamw_create(m, &oc);
        assert_int_equal(ag_model_reserve(m, 4, 16), 0);
        s_train_steps(m, o, 3);
        if (!first) {
            first = malloc(n * sizeof(float));
            memcpy(first, ag_model_params(m), n * sizeof(float));
        } else {
            assert_memory_equal(first, ag_model_params(m), n * sizeof(float));
        }
        ag_adamw_destroy(&o);
        ag_model_destroy(&m);
    }
    ag_model_t *m = ag_model_create(&c, 43, 2);
    assert_memory_not_equal(first, ag_model_params(m), n * sizeof(float) / 4);
    ag_model_destroy(&m);
    free(first);
}

/* ----------------------------------------------------------------- AdamW */

static void test_adamw_reference(void **state)
{
    (void)state;
    ag_model_config_t c = ag_test_tiny_config();
    ag_model_t *m = ag_model_create(&c, 1, 2);
    assert_int_equal(ag_model_reserve(m, 1, 8), 0);
    const size_t n = ag_model_num_params(m);
    ag_adamw_config_t oc = {.lr = 0.01f,
                            .beta1 = 0.9f,
                            .beta2 = 0.99f,
                            .eps = 1e-8f,
                            .weight_decay = 0.1f,
                            .grad_clip = 0.1f,
                            .warmup_steps = 2,
                            .total_steps = 10,
                            .min_lr_ratio = 0.1f};
    ag_adamw_t *o = ag_adamw_create(m, &oc);
    double *p = malloc(n * sizeof(double)), *mm = calloc(n, sizeof(double)),
           *vv = calloc(n, sizeof(double));
    int *decay = calloc(n, sizeof(int));
    for (int i = 0; i < ag_model_num_tensors(m); i++) {
        const ag_tensor_info_t *t = ag_model_tensor(m, i);
        for (size_t k = 0; k < t->size; k++)
            decay[t->offset + k] = t->ndim == 2;
    }
    for (size_t k = 0; k < n; k++)
        p[k] = ag_model_params(m)[k];
    ag_rng_t r;
    ag_rng_seed(&r, 8);
    int clipped = 0;
    for (int step = 0; step < 4; step++) {
        float *g = ag_model_grads(m);
        double norm = 0.0;
        for (size_t k = 0; k < n; k++) {
            g[k] = ag_test_uniform(&r, -0.01f, 0.01f);
            norm += (double)g[k] * g[k];
        }
        norm = sqrt(norm);
        double scale = norm > oc.grad_clip ? oc.grad_clip / (norm + 1e-6) : 1.0;
        ag_adamw_stats_t st;
        assert_int_equal(ag_adamw_step(o, m, &st), 0);
        assert_true(fabs(st.grad_norm - norm) < 1e-6 * norm);
        assert_int_equal(st.clipped, norm > oc.grad_clip);
        clipped += st.clipped;
        double lr = step < 2 ? 0.01 * (step + 1) / 2.0
                             : 0.01 * (0.1 + 0.9 * 0.5 * (1 + cos(M_PI * (step - 2) / 8.0)));
        assert_true(fabs(st.lr - lr) < 1e-8);
        double bc1 = 1 - pow(0.9, step + 1), bc2 = 1 - pow(0.99, step + 1);
        for (size_t k = 0; k < n; k++) {
            double gk = g[k] * scale;
            mm[k] = 0.9 * mm[k] + 0.1 * gk;
            vv[k] = 0.99 * vv[k] + 0.01 * gk * gk;
            if (decay[k])
                p[k] *= 1.0 - lr * 0.1;
            p[k] -= lr * (mm[k] / bc1) / (sqrt(vv[k] / bc2) + 1e-8);
        }
    }
    double maxd = 0.0;
    for (size_t k = 0; k < n; k++)
        maxd = fmax(maxd, fabs(p[k] - ag_model_params(m)[k]));
    assert_true(maxd < 1e-5);
    assert_int_equal(clipped, 4); /* the clipping path is the one exercised */
    assert_int_equal(ag_adamw_steps(o), 4);
    /* schedule end points */
    assert_true(fabs(ag_adamw_lr_at(&oc, 0) - 0.005f) < 1e-9);
    assert_true(fabs(ag_adamw_lr_at(&oc, 10) - 0.001f) < 1e-9);
    assert_true(fabs(ag_adamw_lr_at(&oc, 1000) - 0.001f) < 1e-9);
    /* a non-finite gradient is refused and changes nothing */
    float *before = malloc(n * sizeof(float));
    memcpy(before, ag_model_params(m), n * sizeof(float));
    ag_model_grads(m)[3] = NAN;
    assert_int_equal(ag_adamw_step(o, m, NULL), -ERANGE);
    assert_memory_equal(before, ag_model_params(m), n * sizeof(float));
    assert_int_equal(ag_adamw_steps(o), 4);
    free(before);
    free(p);
    free(mm);
    free(vv);
    free(decay);
    ag_adamw_destroy(&o);
    assert_null(o);
    ag_model_destroy(&m);
}

/* ------------------------------------------------------------- learning */

/* Supervised warm start on a fixed pattern: the model must learn it. */
static void test_learns_pattern(void **state)
{
    (void)state;
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 32,
                           .n_layers = 2,
                           .n_heads = 2,
                           .ctx = 32,
                           .mlp_ratio = 4};
    enum { B = 8, T = 24 };
    ag_model_t *m = ag_model_create(&c, 5, 2);
    assert_int_equal(ag_model_reserve(m, B, T), 0);
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    oc.lr = 3e-3f;
    ag_adamw_t *o = ag_adamw_create(m, &oc);
    const char *text = "debate: 7 +3 *2 -4 = 6. ";
    int32_t tok[B * T], tgt[B * T];
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            tok[b * T + t] = (unsigned char)text[(b + t) % 24];
            tgt[b * T + t] = (unsigned char)text[(b + t + 1) % 24];
        }
    float lp[B * T], dlp[B * T];
    for (int i = 0; i < B * T; i++)
        dlp[i] = -1.0f / (B * T); /* mean cross-entropy */
    double first = 0.0, ce = 0.0;
    for (int s = 0; s < 150; s++) {
        assert_int_equal(ag_model_forward(m, B, T, tok, 0), 0);
        ag_model_zero_grad(m);
        assert_int_equal(ag_model_logprobs(m, tgt, NULL, lp, NULL), 0);
        assert_int_equal(ag_model_backward(m, dlp, NULL, NULL), 0);
        ce = 0.0;
        for (int i = 0; i < B * T; i++)
            ce -= lp[i] / (B * T);
        if (s == 0)
            first = ce;
        assert_int_equal(ag_adamw_step(o, m, NULL), 0);
    }
    assert_true(first > 5.0); /* ~log(264) at the start */
    assert_true(ce < 0.3);
    ag_adamw_destroy(&o);
    ag_model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tensor_table),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_forward_matches_reference),
        cmocka_unit_test(test_logprobs_values),
        cmocka_unit_test(test_grad_check_is_sensitive),
        cmocka_unit_test(test_grad_logprob),
        cmocka_unit_test(test_grad_entropy),
        cmocka_unit_test(test_grad_value),
        cmocka_unit_test(test_grad_all),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_adamw_reference),
        cmocka_unit_test(test_learns_pattern),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
