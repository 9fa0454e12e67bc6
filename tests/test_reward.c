/*
 * test_reward.c - the reward model's math (reward_server/rm.h): tokenising
 * and truncation, both losses and their derivatives against hand-computed
 * values, the minibatch loss against per-label losses of separately scored
 * transcripts, the gradient through the whole model against central finite
 * differences (and a check that the comparison can fail), bad labels, and a
 * short training run that must learn a rule it can only find by reading the
 * transcript. And the service's memory of Label batch ids
 * (reward_server/batch_ids.h): which ids are valid, FIFO forgetting with
 * every remembered id still found however the index entries collide, and
 * the JSON form it is checkpointed in, read back and refused when damaged.
 *
 * The gradient check runs on a tiny model (d_model 16, 2 layers, context 12)
 * whose parameters are all perturbed away from their initial values
 * (LayerNorm gains and biases included), so no term hides behind a zero.
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

#include "batch_ids.h"
#include "model.h"
#include "optim.h"
#include "rm.h"
#include "rng.h"

#define T(s) ((ag_rm_text_t){(const uint8_t *)(s), sizeof(s) - 1})

static ag_model_config_t s_tiny(int ctx)
{
    ag_model_config_t c = {.vocab = AG_VOCAB_SIZE,
                           .d_model = 16,
                           .n_layers = 2,
                           .n_heads = 2,
                           .ctx = ctx,
                           .mlp_ratio = 2};
    return c;
}

/* ------------------------------------------------------------ tokens */

static void test_tokenize(void **state)
{
    (void)state;
    int32_t tok[8];
    assert_int_equal(ag_rm_tokenize((const uint8_t *)"abc", 3, 8, tok), 4);
    assert_int_equal(tok[0], AG_TOK_BOS);
    assert_int_equal(tok[1], 'a');
    assert_int_equal(tok[3], 'c');
    /* longer than the context: BOS and the last ctx - 1 bytes */
    assert_int_equal(ag_rm_tokenize((const uint8_t *)"0123456789", 10, 5, tok), 5);
    assert_int_equal(tok[0], AG_TOK_BOS);
    assert_int_equal(tok[1], '6');
    assert_int_equal(tok[4], '9');
    /* exactly ctx - 1 bytes fit whole */
    assert_int_equal(ag_rm_tokenize((const uint8_t *)"wxyz", 4, 5, tok), 5);
    assert_int_equal(tok[1], 'w');
    /* empty: BOS alone */
    assert_int_equal(ag_rm_tokenize((const uint8_t *)"", 0, 5, tok), 1);
    assert_int_equal(tok[0], AG_TOK_BOS);
    /* bytes above 127 are tokens 128..255, never specials */
    const uint8_t hi[2] = {0xff, 0x80};
    assert_int_equal(ag_rm_tokenize(hi, 2, 8, tok), 3);
    assert_int_equal(tok[1], 255);
    assert_int_equal(tok[2], 128);
    assert_int_equal(ag_rm_kept_bytes(100, 256), 100);
    assert_int_equal(ag_rm_kept_bytes(300, 256), 255);
}

/* ------------------------------------------------------------ losses */

static void test_losses(void **state)
{
    (void)state;
    double dp, dn, ds;
    /* s_a = 1.2, s_b = -0.3, a preferred: -log sigmoid(1.5) */
    assert_float_equal(ag_rm_preference_loss(1.2, -0.3, &dp, &dn), 0.2014132779827524, 1e-12);
    assert_float_equal(dp, -0.18242552380635635, 1e-12);
    assert_float_equal(dn, 0.18242552380635635, 1e-12);
    /* the other way round costs softplus(1.5) */
    assert_float_equal(ag_rm_preference_loss(-0.3, 1.2, &dp, &dn), 1.7014132779827524, 1e-12);
    assert_float_equal(dp, -0.8175744761936437, 1e-12);
    assert_float_equal(dn, 0.8175744761936437, 1e-12);

    /* outcome: softplus(s) - y s, d/ds = sigmoid(s) - y */
    assert_float_equal(ag_rm_outcome_loss(0.7, 1.0, &ds), 0.40318604888545795, 1e-12);
    assert_float_equal(ds, -0.33181222783183384, 1e-12);
    assert_float_equal(ag_rm_outcome_loss(-2.0, 0.25, &ds), 0.6269280110429725, 1e-12);
    assert_float_equal(ds, -0.13079707797788245, 1e-12);
    assert_float_equal(ag_rm_outcome_loss(2.5, 0.4, &ds), 1.5788897342925496, 1e-12);
    assert_float_equal(ds, 0.5241418199787565, 1e-12);

    /* far from zero: no overflow, the asymptotes */
    assert_float_equal(ag_rm_outcome_loss(800.0, 0.0, &ds), 800.0, 1e-9);
    assert_float_equal(ds, 1.0, 1e-12);
    assert_float_equal(ag_rm_outcome_loss(-800.0, 1.0, &ds), 800.0, 1e-9);
    assert_float_equal(ds, -1.0, 1e-12);
    assert_float_equal(ag_rm_preference_loss(-400.0, 400.0, &dp, &dn), 800.0, 1e-9);
    assert_float_equal(ag_rm_preference_loss(400.0, -400.0, &dp, &dn), 0.0, 1e-12);

    /* derivatives against central differences over a grid */
    const double h = 1e-5;
    for (double s = -4.0; s <= 4.0; s += 0.37) {
        for (double y = 0.0; y <= 1.0; y += 0.25) {
            ag_rm_outcome_loss(s, y, &ds);
            double fd =
                (ag_rm_outcome_loss(s + h, y, NULL) - ag_rm_outcome_loss(s - h, y, NULL)) / (2 * h);
            assert_float_equal(ds, fd, 1e-8);
        }
        ag_rm_preference_loss(s, 0.3, &dp, &dn);
        double fp = (ag_rm_preference_loss(s + h, 0.3, NULL, NULL) -
                     ag_rm_preference_loss(s - h, 0.3, NULL, NULL)) /
                    (2 * h);
        double fo = (ag_rm_preference_loss(0.3, s + h, NULL, NULL) -
                     ag_rm_preference_loss(0.3, s - h, NULL, NULL)) /
                    (2 * h);
        assert_float_equal(dp, fp, 1e-8);
        ag_rm_preference_loss(0.3, s, &dp, &dn);
        assert_float_equal(dn, fo, 1e-8);
    }

    ag_rm_label_t pref = {.kind = AG_RM_PREFERENCE, .preferred = 1, .weight = 1};
    ag_rm_label_t out = {.kind = AG_RM_OUTCOME, .target = 1.0f, .weight = 1};
    float s01[2] = {0.1f, 0.2f}, s10[2] = {0.2f, 0.1f}, neg[1] = {-0.5f};
    assert_true(ag_rm_label_correct(&pref, s01));
    assert_false(ag_rm_label_correct(&pref, s10));
    assert_false(ag_rm_label_correct(&out, neg));
    out.target = 0.0f;
    assert_true(ag_rm_label_correct(&out, neg));
}

/* ------------------------------------------------------------ batches */

/* Moves every parameter off its initial value: gains around 1, the rest by
 * up to +-0.4 (uniform), so every term of the backward pass carries weight. */
static void s_perturb(ag_model_t *m, uint64_t seed)
{
    ag_rng_t r;
    ag_rng_seed(&r, seed);
    float *p = ag_model_params(m);
    for (int i = 0; i < ag_model_num_tensors(m); i++) {
        const ag_tensor_info_t *t = ag_model_tensor(m, i);
        const int gain = strstr(t->name, "ln") && strstr(t->name, ".weight");
        for (size_t k = 0; k < t->size; k++) {
            float u = 0.8f * ag_rng_float(&r) - 0.4f;
            p[t->offset + k] = gain ? 1.0f + u : p[t->offset + k] + u;
        }
    }
}

/* Two preferences (one with a transcript longer than the context, one
 * preferring b) and two outcomes (one empty), weights not 1. */
static void s_mixed(ag_rm_label_t *l)
{
    l[0] = (ag_rm_label_t){.kind = AG_RM_PREFERENCE,
                           .preferred = 0,
                           .weight = 1.0f,
                           .text = {T("x=3 ok"), T("a much longer transcript, cut")}};
    l[1] =
        (ag_rm_label_t){.kind = AG_RM_OUTCOME, .target = 0.8f, .weight = 2.0f, .text = {T("win!")}};
    l[2] = (ag_rm_label_t){
        .kind = AG_RM_PREFERENCE, .preferred = 1, .weight = 0.5f, .text = {T("no"), T("yes, 7")}};
    l[3] = (ag_rm_label_t){.kind = AG_RM_OUTCOME, .target = 0.0f, .weight = 1.0f, .text = {T("")}};
}

/* The minibatch loss is the weighted mean of each label's loss, with the
 * scores each transcript gets alone (padding never reaches a score). */
static void test_batch_loss_matches_labels(void **state)
{
    (void)state;
    ag_model_config_t c = s_tiny(12);
    ag_rm_t *rm = ag_rm_create(&c, 3, 1, 8);
    assert_non_null(rm);
    s_perturb(ag_rm_model(rm), 11);
    ag_rm_label_t l[4];
    s_mixed(l);
    float s[6];
    for (int i = 0, k = 0; i < 4; i++)
        for (int j = 0; j < (l[i].kind == AG_RM_PREFERENCE ? 2 : 1); j++, k++)
            assert_int_equal(ag_rm_score(rm, &l[i].text[j], 1, &s[k]), 0);
    double want = 0;
    want += 1.0 * ag_rm_preference_loss(s[0], s[1], NULL, NULL);
    want += 2.0 * ag_rm_outcome_loss(s[2], 0.8f, NULL);
    want += 0.5 * ag_rm_preference_loss(s[4], s[3], NULL, NULL);
    want += 1.0 * ag_rm_outcome_loss(s[5], 0.0, NULL);
    want /= 4;
    ag_rm_stats_t st;
    assert_int_equal(ag_rm_loss(rm, l, 4, false, &st), 0);
    assert_float_equal(st.loss, want, 1e-5 * fabs(want));
    assert_float_equal(st.labels, 4, 0);
    /* 6 + 29 -> 11 + 4 + 2 + 6 + 0 bytes, plus a BOS each */
    assert_float_equal(st.tokens, 7 + 12 + 5 + 3 + 7 + 1, 0);

    /* the same transcripts scored together, in two forwards of at most 8 */
    ag_rm_text_t all[10];
    float together[10];
    for (int i = 0; i < 10; i++)
        all[i] = l[i % 4].text[0];
    assert_int_equal(ag_rm_score(rm, all, 10, together), 0);
    static const int alone[4] = {0, 2, 3, 5};
    for (int i = 0; i < 10; i++)
        assert_float_equal(together[i], s[alone[i % 4]], 1e-5);
    ag_rm_destroy(&rm);
}

static void test_bad_labels(void **state)
{
    (void)state;
    ag_model_config_t c = s_tiny(12);
    ag_rm_t *rm = ag_rm_create(&c, 3, 1, 4);
    assert_non_null(rm);
    ag_rm_label_t l[4];
    s_mixed(l);
    ag_rm_label_t bad = l[0];
    bad.preferred = 2;
    assert_int_equal(ag_rm_loss(rm, &bad, 1, false, NULL), -EINVAL);
    bad = l[1];
    bad.weight = NAN;
    assert_int_equal(ag_rm_loss(rm, &bad, 1, false, NULL), -EINVAL);
    bad.weight = -1.0f;
    assert_int_equal(ag_rm_loss(rm, &bad, 1, false, NULL), -EINVAL);
    bad = l[1];
    bad.kind = 7;
    assert_int_equal(ag_rm_loss(rm, &bad, 1, false, NULL), -EINVAL);
    /* 6 sequences do not fit a workspace of 4 */
    assert_int_equal(ag_rm_loss(rm, l, 4, false, NULL), -ERANGE);
    assert_int_equal(ag_rm_loss(rm, l, 0, false, NULL), -EINVAL);
    /* ... but evaluation splits them */
    uint8_t ok[4];
    ag_rm_stats_t st;
    assert_int_equal(ag_rm_evaluate(rm, l, 4, ok, &st), 0);
    assert_float_equal(st.labels, 4, 0);
    /* a vocabulary without PAD cannot be a reward model */
    c.vocab = 11;
    assert_null(ag_rm_create(&c, 3, 1, 4));
    ag_rm_destroy(&rm);
}

/* -------------------------------------------------- gradient by differences */

#define SAMPLES 6
#define STEP 1e-2f
/* Float32 forwards leave about 1e-3 of noise in these relative errors; a
 * wrong sign, term or position gives errors of order 1. */
#define TOL 5e-3

/* Relative error ||fd - an|| / max(||fd||, ||an||) over SAMPLES entries of
 * tensor ti (rows of used tokens only for wte), or -1 if both are zero. */
static double s_check_tensor(ag_rm_t *rm, const ag_rm_label_t *l, size_t n, int ti,
                             const float *grad, ag_rng_t *r)
{
    ag_model_t *m = ag_rm_model(rm);
    const ag_tensor_info_t *t = ag_model_tensor(m, ti);
    const int D = ag_model_config(m)->d_model;
    static const int used[] = {AG_TOK_BOS, 'x', '3', 'o', 'w', 'n', 'y', 'e', ' '};
    float *p = ag_model_params(m);
    double num = 0, nfd = 0, nan_ = 0;
    for (int s = 0; s < SAMPLES; s++) {
        size_t k = t->offset + ag_rng_below(r, (uint32_t)t->size);
        if (!strcmp(t->name, "wte"))
            k = t->offset + (size_t)used[ag_rng_below(r, 9)] * D + ag_rng_below(r, (uint32_t)D);
        const float keep = p[k];
        ag_rm_stats_t up, down;
        p[k] = keep + STEP;
        assert_int_equal(ag_rm_loss(rm, l, n, false, &up), 0);
        p[k] = keep - STEP;
        assert_int_equal(ag_rm_loss(rm, l, n, false, &down), 0);
        p[k] = keep;
        double fd = (up.loss - down.loss) / ((double)(keep + STEP) - (double)(keep - STEP));
        double an = grad[k];
        num += (fd - an) * (fd - an);
        nfd += fd * fd;
        nan_ += an * an;
    }
    double den = sqrt(nfd > nan_ ? nfd : nan_);
    return den < 1e-7 ? -1.0 : sqrt(num) / den;
}

typedef struct {
    ag_rm_t *rm;
    ag_rm_label_t l[4];
    float *grad;
} gfix_t;

static void s_gfix(gfix_t *f)
{
    ag_model_config_t c = s_tiny(12);
    f->rm = ag_rm_create(&c, 5, 2, 8);
    assert_non_null(f->rm);
    ag_model_t *m = ag_rm_model(f->rm);
    s_perturb(m, 23);
    s_mixed(f->l);
    ag_rm_stats_t st;
    assert_int_equal(ag_rm_loss(f->rm, f->l, 4, true, &st), 0);
    size_t np = ag_model_num_params(m);
    f->grad = malloc(np * sizeof(float));
    assert_non_null(f->grad);
    memcpy(f->grad, ag_model_grads(m), np * sizeof(float));
}

static void s_gfix_finish(gfix_t *f)
{
    free(f->grad);
    ag_rm_destroy(&f->rm);
}

static void test_grad_through_model(void **state)
{
    (void)state;
    gfix_t f;
    s_gfix(&f);
    ag_model_t *m = ag_rm_model(f.rm);
    static const char *const names[] = {
        "wte",
        "wpe",
        "layers.0.ln1.weight",
        "layers.0.attn.qkv.weight",
        "layers.0.attn.proj.bias",
        "layers.1.ln2.bias",
        "layers.1.mlp.fc.weight",
        "layers.1.mlp.proj.weight",
        "lnf.weight",
        "value.weight",
        "value.bias",
    };
    ag_rng_t r;
    ag_rng_seed(&r, 9);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int ti = ag_model_find_tensor(m, names[i]);
        assert_true(ti >= 0);
        double err = s_check_tensor(f.rm, f.l, 4, ti, f.grad, &r);
        if (getenv("AG_TEST_VERBOSE"))
            printf("%-28s rel err %.2e\n", names[i], err);
        if (err < 0 || err > TOL)
            fail_msg("%s: relative error %.3e", names[i], err);
    }
    /* the policy head takes no part in a score */
    const ag_tensor_info_t *head = ag_model_tensor(m, ag_model_find_tensor(m, "head.weight"));
    for (size_t k = 0; k < head->size; k++)
        assert_true(f.grad[head->offset + k] == 0.0f);
    s_gfix_finish(&f);
}

/* The comparison above can fail: the gradient of a wrong objective (one
 * preference flipped) or a gradient 3% off are caught. */
static void test_grad_check_is_sensitive(void **state)
{
    (void)state;
    gfix_t f;
    s_gfix(&f);
    ag_model_t *m = ag_rm_model(f.rm);
    int ti = ag_model_find_tensor(m, "layers.0.attn.qkv.weight");
    const ag_tensor_info_t *t = ag_model_tensor(m, ti);
    ag_rng_t r;
    ag_rng_seed(&r, 9);
    double good = s_check_tensor(f.rm, f.l, 4, ti, f.grad, &r);
    assert_true(good >= 0 && good < TOL);
    for (size_t k = 0; k < t->size; k++)
        f.grad[t->offset + k] *= 1.03f;
    ag_rng_seed(&r, 9);
    assert_true(s_check_tensor(f.rm, f.l, 4, ti, f.grad, &r) > TOL);

    ag_rm_label_t flipped[4];
    memcpy(flipped, f.l, sizeof flipped);
    flipped[0].preferred = 1;
    assert_int_equal(ag_rm_loss(f.rm, flipped, 4, true, NULL), 0);
    memcpy(f.grad, ag_model_grads(m), ag_model_num_params(m) * sizeof(float));
    ag_rng_seed(&r, 9);
    assert_true(s_check_tensor(f.rm, f.l, 4, ti, f.grad, &r) > TOL);
    s_gfix_finish(&f);
}

/* ------------------------------------------------------------ training */

/* "...verdict: win ..." vs "...verdict: lose ...", noise around: the score
 * must read the word a few tokens before the end. */
static size_t s_synth(ag_rng_t *r, int win, char *out, size_t cap)
{
    char noise[16], tail[8];
    size_t nn = 3 + ag_rng_below(r, 8), nt = 1 + ag_rng_below(r, 4);
    for (size_t i = 0; i < nn; i++)
        noise[i] = (char)('a' + ag_rng_below(r, 26));
    for (size_t i = 0; i < nt; i++)
        tail[i] = (char)('0' + ag_rng_below(r, 10));
    return (size_t)snprintf(out, cap, "%.*s verdict: %s. %.*s", (int)nn, noise,
                            win ? "win" : "lose", (int)nt, tail);
}

static void test_training_learns(void **state)
{
    (void)state;
    ag_model_config_t c = s_tiny(40);
    c.n_layers = 1;
    ag_rm_t *rm = ag_rm_create(&c, 7, 1, 32);
    assert_non_null(rm);
    ag_adamw_config_t ac;
    ag_adamw_config_default(&ac);
    ac.lr = 3e-3f;
    ag_adamw_t *opt = ag_adamw_create(ag_rm_model(rm), &ac);
    assert_non_null(opt);
    ag_rng_t r;
    ag_rng_seed(&r, 1);
    char text[16][2][64];
    ag_rm_label_t l[16];
    ag_rm_stats_t st;
    double first_loss = 0;
    for (int step = 0; step < 300; step++) {
        for (int i = 0; i < 16; i++) {
            int p = (int)ag_rng_below(&r, 2);
            size_t na = s_synth(&r, p == 0, text[i][0], sizeof text[i][0]);
            size_t nb = s_synth(&r, p == 1, text[i][1], sizeof text[i][1]);
            l[i] = (ag_rm_label_t){
                .kind = i % 4 ? AG_RM_PREFERENCE : AG_RM_OUTCOME,
                .preferred = p,
                .target = p == 0 ? 1.0f : 0.0f,
                .weight = 1.0f,
                .text = {{(const uint8_t *)text[i][0], na}, {(const uint8_t *)text[i][1], nb}}};
        }
        assert_int_equal(ag_rm_train_step(rm, opt, l, 16, &st), 0);
        if (step == 0)
            first_loss = st.loss;
    }
    /* fresh labels */
    double ok = 0, n = 0;
    for (int rep = 0; rep < 8; rep++) {
        for (int i = 0; i < 16; i++) {
            int p = (int)ag_rng_below(&r, 2);
            size_t na = s_synth(&r, p == 0, text[i][0], sizeof text[i][0]);
            size_t nb = s_synth(&r, p == 1, text[i][1], sizeof text[i][1]);
            l[i] = (ag_rm_label_t){
                .kind = AG_RM_PREFERENCE,
                .preferred = p,
                .weight = 1.0f,
                .text = {{(const uint8_t *)text[i][0], na}, {(const uint8_t *)text[i][1], nb}}};
        }
        uint8_t good[16];
        assert_int_equal(ag_rm_evaluate(rm, l, 16, good, &st), 0);
        ok += st.correct;
        n += st.labels;
    }
    if (getenv("AG_TEST_VERBOSE"))
        printf("first loss %.3f, held-out accuracy %.3f, loss %.3f\n", first_loss, ok / n, st.loss);
    assert_true(ok / n > 0.95);
    assert_true(st.loss < 0.5 * first_loss);
    assert_int_equal(ag_adamw_steps(opt), 300);
    ag_adamw_destroy(&opt);
    ag_rm_destroy(&rm);
}

/* ---- batch ids ---- */

static void test_batch_id_valid(void **state)
{
    char id[AG_BATCH_ID_MAX + 2];
    memset(id, '~', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    assert_false(ag_batch_id_valid(id)); /* 129 bytes */
    id[AG_BATCH_ID_MAX] = '\0';
    assert_true(ag_batch_id_valid(id));
    assert_true(ag_batch_id_valid(" "));
    assert_true(ag_batch_id_valid("actor-1/00000000000000ab/17"));
    assert_false(ag_batch_id_valid(""));
    assert_false(ag_batch_id_valid("a\tb"));
    assert_false(ag_batch_id_valid("a\x7f"));
    assert_false(ag_batch_id_valid("caf\xc3\xa9"));
}

static void s_id(char *out, size_t cap, unsigned i)
{
    snprintf(out, cap, "run/%u", i);
}

/* After every add to a table of cap ids, exactly the newest cap are found,
 * with their counts. A tiny table makes index entries collide and wrap, so
 * forgetting must move the right ones. */
static void s_check_fifo(size_t cap, unsigned n)
{
    ag_batch_ids_t *t = ag_batch_ids_create(cap);
    assert_non_null(t);
    char id[32];
    uint32_t a, r;
    for (unsigned i = 0; i < n; i++) {
        s_id(id, sizeof id, i);
        assert_false(ag_batch_ids_find(t, id, &a, &r));
        ag_batch_ids_add(t, id, i % 257, i % 3);
        assert_int_equal(ag_batch_ids_count(t), i + 1 < cap ? i + 1 : cap);
        for (unsigned k = i + 1 > cap ? i + 1 - (unsigned)cap : 0; k <= i; k++) {
            s_id(id, sizeof id, k);
            if (!ag_batch_ids_find(t, id, &a, &r))
                fail_msg("cap %zu: id %u lost after adding %u", cap, k, i);
            assert_int_equal(a, k % 257);
            assert_int_equal(r, k % 3);
        }
        if (i >= cap) {
            s_id(id, sizeof id, i - (unsigned)cap);
            assert_false(ag_batch_ids_find(t, id, &a, &r));
        }
    }
    ag_batch_id_t *v = calloc(cap, sizeof *v);
    assert_non_null(v);
    ag_batch_ids_copy(t, v);
    for (size_t k = 0; k < ag_batch_ids_count(t); k++) {
        s_id(id, sizeof id, n - (unsigned)ag_batch_ids_count(t) + (unsigned)k);
        assert_string_equal(v[k].id, id); /* oldest first */
    }
    ag_batch_ids_clear(t);
    assert_int_equal(ag_batch_ids_count(t), 0);
    s_id(id, sizeof id, n - 1);
    assert_false(ag_batch_ids_find(t, id, &a, &r));
    ag_batch_ids_add(t, id, 5, 6);
    assert_true(ag_batch_ids_find(t, id, &a, &r));
    assert_int_equal(a, 5);
    free(v);
    ag_batch_ids_destroy(&t);
    assert_null(t);
    ag_batch_ids_destroy(&t);
}

static void test_batch_ids_fifo(void **state)
{
    s_check_fifo(1, 50);
    s_check_fifo(3, 2000);
    s_check_fifo(100, 1000);
    assert_null(ag_batch_ids_create(0));
}

/* Loads text (JSON) into t; returns ag_batch_ids_load's result. */
static int s_load(ag_batch_ids_t *t, const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    if (!j)
        fail_msg("bad test JSON %s: %s", text, je.text);
    char why[160];
    int rc = ag_batch_ids_load(t, j, 512, why, sizeof why);
    json_decref(j);
    return rc;
}

static void test_batch_ids_json(void **state)
{
    ag_batch_ids_t *t = ag_batch_ids_create(8), *u = ag_batch_ids_create(8),
                   *small = ag_batch_ids_create(3);
    assert_true(t && u && small);
    char id[32];
    for (unsigned i = 0; i < 6; i++) {
        s_id(id, sizeof id, i);
        ag_batch_ids_add(t, id, 256 + i, 256 - i);
    }
    ag_batch_id_t v[8], w[8];
    ag_batch_ids_copy(t, v);
    json_t *j = ag_batch_ids_json(v, ag_batch_ids_count(t));
    assert_non_null(j);
    char *text = json_dumps(j, JSON_COMPACT);
    assert_string_equal(text, "[[\"run/0\",256,256],[\"run/1\",257,255],[\"run/2\",258,254],"
                              "[\"run/3\",259,253],[\"run/4\",260,252],[\"run/5\",261,251]]");
    char why[160];
    assert_int_equal(ag_batch_ids_load(u, j, 512, why, sizeof why), 0);
    assert_int_equal(ag_batch_ids_count(u), 6);
    ag_batch_ids_copy(u, w);
    assert_memory_equal(v, w, 6 * sizeof *v);
    /* into a smaller table: the newest */
    assert_int_equal(ag_batch_ids_load(small, j, 512, why, sizeof why), 0);
    assert_int_equal(ag_batch_ids_count(small), 3);
    ag_batch_ids_copy(small, w);
    assert_string_equal(w[0].id, "run/3");
    assert_string_equal(w[2].id, "run/5");
    json_decref(j);
    free(text);

    /* damaged: refused, the table left empty */
    static const char *const bad[] = {
        "{}",
        "[\"run/0\"]",
        "[[\"run/0\", 1]]",
        "[[\"run/0\", 1, 2, 3]]",
        "[[7, 1, 2]]",
        "[[\"\", 1, 2]]",
        "[[\"a\\u0001\", 1, 2]]",
        "[[\"a\\u0000b\", 1, 2]]",
        "[[\"run/0\", -1, 2]]",
        "[[\"run/0\", 1.5, 2]]",
        "[[\"run/0\", 500, 13]]",
        "[[\"run/0\", 4611686018427387904, 4611686018427387904]]",
        "[[\"run/0\", 1, 2], [\"run/1\", 1, 2], [\"run/0\", 1, 2]]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(s_load(u, "[[\"keep\", 1, 1]]"), 0);
        if (s_load(u, bad[i]) != -EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(ag_batch_ids_count(u), 0);
    }
    assert_int_equal(s_load(u, "[[\"run/0\", 500, 12], [\" \", 0, 0]]"), 0);
    assert_int_equal(s_load(u, "[]"), 0);
    assert_int_equal(ag_batch_ids_count(u), 0);
    ag_batch_ids_destroy(&t);
    ag_batch_ids_destroy(&u);
    ag_batch_ids_destroy(&small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokenize),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_batch_loss_matches_labels),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_grad_through_model),
        cmocka_unit_test(test_grad_check_is_sensitive),
        cmocka_unit_test(test_training_learns),
        cmocka_unit_test(test_batch_id_valid),
        cmocka_unit_test(test_batch_ids_fifo),
        cmocka_unit_test(test_batch_ids_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
