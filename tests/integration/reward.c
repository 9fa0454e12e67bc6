/*
 * reward - agora-reward as a service, over the real protocol: a real
 * process (a tiny model, two hosted models) on a free loopback port.
 *
 *   serving:  Score replies carry one score per item in item order; empty
 *             batches, unknown and unnamed models are refused with the
 *             right codes; Stats lists every model;
 *   learning: labels of a synthetic task the tiny model can learn in
 *             seconds (a seat's transcript ends "result: won" or "result:
 *             lost", then noise) are accepted or rejected item by item;
 *             Stats then shows updates and held-out pairwise and outcome
 *             accuracy far above chance, and Score keeps answering quickly
 *             while the model trains;
 *   resume:   once training idles, scores are taken, SIGTERM exits 0 with
 *             NAME.ckpt, NAME.labels and reward-state.json written, and a
 *             server started with --resume gives bit-identical scores for the
 *             same batch, the same counters, the same buffer and held-out
 *             set, and once it has evaluated that set again the same held-out
 *             pairs and accuracy; a damaged NAME.labels costs the labels
 *             (buffer, held-out set, pending 0), not the resume or Score;
 *   overload: labels that would leave training more than a buffer behind
 *             are refused with ERROR_OVERLOADED while Score still answers;
 *             resumed, the buffer is still owed its training uses; resumed
 *             with a smaller reward.buffer, it keeps its newest labels (read
 *             back from NAME.labels, format and CRC checked here) and owes
 *             at most reward.reuse uses each; a NAME.labels of another
 *             checkpoint is recognised and ignored; a batch refused as a
 *             whole is not remembered as accepted;
 *   batch ids: a Label resent under its batch_id (with a fresh request id,
 *             as a retry is) is answered duplicate with the first counts and
 *             learnt once, the same body without an id twice; a batch refused
 *             (unknown model) is learnt when resent to the right one; each
 *             model remembers its own ids; a batch_id over 128 bytes or not
 *             printable ASCII gets ERROR_BAD_REQUEST naming the field; after
 *             SIGTERM and --resume the ids are still duplicates, and a
 *             damaged list in reward-state.json costs that model its memory,
 *             not the resume.
 *
 * Usage: test_reward_service PATH/TO/agora-reward
 */
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "harness.h"
#include "reward_peer.h"
#include "rng.h"

#define E(name) AGORA__V1__ERROR_CODE__ERROR_##name
#define TIMEOUT_MS 10000
#define REQUESTS 8
#define PREFS 96
#define OUTCOMES 32
#define N_FIXED 6
#define BATCH_ID_MAX 128 /* the longest LabelRequest.batch_id */

static const char *s_exe;

/* What Stats says of a model's labels. */
typedef struct {
    double buffer, heldout, pending, pairs, outcomes, pair_acc, outcome_acc;
} label_figures_t;

typedef struct {
    ag_server_proc_t srv;
    reward_peer_t c;
    char dir[256];
    ag_rng_t rng;
    /* what the first server showed, for the resumed one */
    float fixed_scores[N_FIXED];
    uint64_t version, labels, updates;
    double rejected;
    label_figures_t figures;
} fixture_t;

static const char *const s_fixed[N_FIXED] = {
    "table 4 | seat 0 | claim: 7 | result: won. 3fz",
    "table 4 | seat 1 | claim: 2 | result: lost. 9q",
    "",
    "result: won.",
    "a long opening that the model's context cuts away entirely, long before the end of this "
    "transcript, which is what decides it | result: lost. 01",
    "seat 1 | result: won. \xc3\xa9t\xc3\xa9",
};

/* One seat's transcript of the synthetic game: won or lost near the end. */
static void s_transcript(ag_rng_t *r, bool won, char *out, size_t cap)
{
    char noise[12];
    size_t n = 2 + ag_rng_below(r, 9);
    for (size_t i = 0; i < n; i++)
        noise[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[ag_rng_below(r, 36)];
    snprintf(out, cap, "table %u | seat %u | claim: %u | result: %s. %.*s", ag_rng_below(r, 100),
             ag_rng_below(r, 2), ag_rng_below(r, 10), won ? "won" : "lost", (int)n, noise);
}

static Agora__V1__RewardModelStats *s_model_stats(Agora__V1__RewardReply *r, const char *name)
{
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_STATS);
    Agora__V1__RewardModelStats *m = reward_model_stats(r, name);
    if (!m)
        fail_msg("Stats has no model %s", name);
    return m;
}

/* Starts the server (resuming from resume if not NULL); extra options, if
 * any, come last and override the others. */
static int s_start(fixture_t *fx, const char *resume, const char *const *extra)
{
    const char *args[48] = {"--reward.models",
                            "default,second",
                            "--reward.d_model",
                            "32",
                            "--reward.n_layers",
                            "1",
                            "--reward.n_heads",
                            "2",
                            "--reward.ctx",
                            "64",
                            "--reward.mlp_ratio",
                            "2",
                            "--reward.lr",
                            "3e-3",
                            "--reward.batch",
                            "32",
                            "--reward.reuse",
                            "4",
                            "--reward.holdout",
                            "0.2",
                            "--reward.threads",
                            "1",
                            "--checkpoint-interval",
                            "0",
                            "--out",
                            fx->dir,
                            "--resume",
                            resume ? resume : "",
                            "--log.level",
                            "warn",
                            NULL};
    size_t n = 0;
    while (args[n])
        n++;
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof args / sizeof args[0]; i++)
        args[n++] = extra[i];
    if (reward_proc_start(&fx->srv, s_exe, args, TIMEOUT_MS) < 0)
        return -1;
    return reward_peer_open(&fx->c, fx->srv.endpoint);
}

static int s_stop(fixture_t *fx)
{
    reward_peer_close(&fx->c);
    return ag_server_proc_stop(&fx->srv, TIMEOUT_MS);
}

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    if (fx->srv.pid)
        s_stop(fx);
    if (fx->dir[0])
        harness_rmtree(fx->dir);
    free(fx);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    if (!fx)
        return -1;
    if (harness_mkdtemp(fx->dir, sizeof fx->dir, "agora-reward-test") < 0 ||
        s_start(fx, NULL, NULL) < 0) {
        teardown(state);
        return -1;
    }
    ag_rng_seed(&fx->rng, 20250101);
    return 0;
}

static void s_expect_error(Agora__V1__RewardReply *r, int code)
{
    assert_non_null(r);
    if (reward_reply_error(r) != code)
        fail_msg("expected error %d, got body %d error %d (%s)", code, r->body_case,
                 reward_reply_error(r), r->error && r->error->message ? r->error->message : "");
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

static void test_serving(void **state)
{
    fixture_t *fx = *state;
    Agora__V1__RewardReply *r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    assert_int_equal(r->score->n_scores, N_FIXED);
    assert_int_equal(r->score->model_version, 0);
    float fwd[N_FIXED];
    for (size_t i = 0; i < N_FIXED; i++) {
        fwd[i] = r->score->scores[i];
        assert_true(isfinite(fwd[i]));
    }
    agora__v1__reward_reply__free_unpacked(r, NULL);

    /* reversed batch -> reversed scores; alone -> the same score */
    const char *rev[N_FIXED];
    for (size_t i = 0; i < N_FIXED; i++)
        rev[i] = s_fixed[N_FIXED - 1 - i];
    r = reward_peer_score(&fx->c, "default", rev, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->score->n_scores, N_FIXED);
    for (size_t i = 0; i < N_FIXED; i++)
        assert_float_equal(r->score->scores[i], fwd[N_FIXED - 1 - i], 1e-5);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    r = reward_peer_score(&fx->c, "default", s_fixed + 1, 1, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->score->n_scores, 1);
    assert_float_equal(r->score->scores[0], fwd[1], 1e-5);
    agora__v1__reward_reply__free_unpacked(r, NULL);

    /* distinct transcripts get distinct scores from a random model, and the
     * second model is a different one */
    assert_true(fwd[0] != fwd[1] && fwd[1] != fwd[3]);
    r = reward_peer_score(&fx->c, "second", s_fixed, 1, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    assert_true(r->score->scores[0] != fwd[0]);
    agora__v1__reward_reply__free_unpacked(r, NULL);

    s_expect_error(reward_peer_score(&fx->c, "nope", s_fixed, 2, TIMEOUT_MS), E(UNKNOWN_MODEL));
    s_expect_error(reward_peer_score(&fx->c, "", s_fixed, 2, TIMEOUT_MS), E(BAD_REQUEST));
    s_expect_error(reward_peer_score(&fx->c, "default", s_fixed, 0, TIMEOUT_MS), E(BAD_REQUEST));
    s_expect_error(reward_peer_stats(&fx->c, "nope", TIMEOUT_MS), E(UNKNOWN_MODEL));
    s_expect_error(reward_peer_label(&fx->c, "nope", NULL, 0, NULL, 0, TIMEOUT_MS),
                   E(UNKNOWN_MODEL));

    r = reward_peer_stats(&fx->c, "", TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->stats->n_models, 2);
    Agora__V1__RewardModelStats *m = s_model_stats(r, "default");
    assert_int_equal(m->labels, 0);
    assert_int_equal(m->updates, 0);
    assert_float_equal(reward_metric(m, "heldout_pairs", -1), 0, 0);
    assert_float_equal(reward_metric(m, "pairwise_accuracy", -1), -1, 0); /* none yet */
    s_model_stats(r, "second");
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

/* Sends REQUESTS Label requests of the synthetic task, each with a few
 * invalid items; every valid item must be accepted, every invalid one
 * rejected. */
static void s_send_labels(fixture_t *fx)
{
    enum { BAD = 5, NP = PREFS + BAD, NO = OUTCOMES };
    static char text[NP + NO][2][96];
    Agora__V1__ScoreItem items[NP + NO][2];
    Agora__V1__Preference prefs[NP], *pp[NP];
    Agora__V1__Outcome outs[NO], *op[NO];
    for (int q = 0; q < REQUESTS; q++) {
        for (int i = 0; i < NP + NO; i++) {
            int win = (int)ag_rng_below(&fx->rng, 2);
            s_transcript(&fx->rng, win == 0, text[i][0], sizeof text[i][0]);
            s_transcript(&fx->rng, win == 1, text[i][1], sizeof text[i][1]);
            for (int k = 0; k < 2; k++) {
                agora__v1__score_item__init(&items[i][k]);
                items[i][k].transcript = text[i][k];
                items[i][k].seat = (uint32_t)k;
                items[i][k].game = "synthetic";
            }
            if (i < NP) {
                agora__v1__preference__init(&prefs[i]);
                prefs[i].a = &items[i][0];
                prefs[i].b = &items[i][1];
                prefs[i].preferred = (uint32_t)win;
                prefs[i].weight = i % 3 ? 0.0f : 1.5f;
                pp[i] = &prefs[i];
            } else {
                Agora__V1__Outcome *o = &outs[i - NP];
                agora__v1__outcome__init(o);
                o->item = &items[i][0];
                o->label = win == 0 ? 1.0f : 0.0f;
                op[i - NP] = o;
            }
        }
        /* the invalid ones: preferred 7, a missing transcript side, NaN and
         * negative weights, an outcome label out of range */
        prefs[0].preferred = 7;
        prefs[1].b = NULL;
        prefs[2].weight = NAN;
        prefs[3].weight = -1.0f;
        prefs[4].weight = INFINITY;
        outs[0].label = 1.5f;
        Agora__V1__RewardReply *r =
            reward_peer_label(&fx->c, "default", pp, NP, op, NO, TIMEOUT_MS);
        assert_non_null(r);
        if (r->body_case != AGORA__V1__REWARD_REPLY__BODY_LABEL)
            fail_msg("Label %d: error %d (%s)", q, reward_reply_error(r),
                     r->error && r->error->message ? r->error->message : "");
        assert_int_equal(r->label->accepted, NP + NO - BAD - 1);
        assert_int_equal(r->label->rejected, BAD + 1);
        agora__v1__reward_reply__free_unpacked(r, NULL);
    }
}

static void test_learns(void **state)
{
    fixture_t *fx = *state;
    s_send_labels(fx);
    const double t0 = ag_now();
    double worst_score_s = 0, acc = 0, oacc = 0;
    uint64_t last_version = 0;
    for (;;) {
        /* Score answers while the model trains; the version only grows */
        double ts = ag_now();
        Agora__V1__RewardReply *r =
            reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
        ts = ag_now() - ts;
        assert_non_null(r);
        assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
        assert_true(r->score->model_version >= last_version);
        last_version = r->score->model_version;
        agora__v1__reward_reply__free_unpacked(r, NULL);
        if (ts > worst_score_s)
            worst_score_s = ts;

        r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
        assert_non_null(r);
        Agora__V1__RewardModelStats *m = s_model_stats(r, "default");
        const double pairs = reward_metric(m, "heldout_pairs", 0);
        const double outs = reward_metric(m, "heldout_outcomes", 0);
        acc = reward_metric(m, "pairwise_accuracy", 0);
        oacc = reward_metric(m, "outcome_accuracy", 0);
        const bool idle = reward_metric(m, "pending", -1) == 0;
        const uint64_t updates = m->updates;
        assert_int_equal(m->labels, REQUESTS * (PREFS + OUTCOMES - 1));
        assert_float_equal(reward_metric(m, "rejected", -1), REQUESTS * 6, 0);
        agora__v1__reward_reply__free_unpacked(r, NULL);
        if (idle && updates > 0 && pairs >= 100 && outs >= 30 && acc >= 0.9 && oacc >= 0.85)
            break;
        if (ag_now() - t0 > 30)
            fail_msg("after %.0f s: %" PRIu64 " updates, pairwise %.3f over %.0f, outcome %.3f "
                     "over %.0f, idle %d",
                     ag_now() - t0, updates, acc, pairs, oacc, outs, idle);
        usleep(100 * 1000);
    }
    print_message("  held-out pairwise accuracy %.3f, outcome accuracy %.3f after %.1f s; "
                  "slowest Score %.3f s, version %" PRIu64 "\n",
                  acc, oacc, ag_now() - t0, worst_score_s, last_version);
    assert_true(last_version > 0);
    assert_true(worst_score_s < 2.0);

    /* the other model learnt nothing */
    Agora__V1__RewardReply *r = reward_peer_stats(&fx->c, "second", TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->stats->n_models, 1);
    assert_int_equal(r->stats->models[0]->updates, 0);
    assert_int_equal(r->stats->models[0]->labels, 0);
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

/* Scores of s_fixed on "default" and its counters, once training is idle. */
static void s_snapshot(fixture_t *fx, float *scores, uint64_t *version, uint64_t *labels,
                       uint64_t *updates, double *rejected)
{
    uint64_t prev = UINT64_MAX;
    for (int i = 0; i < 100; i++) {
        Agora__V1__RewardReply *r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
        assert_non_null(r);
        Agora__V1__RewardModelStats *m = s_model_stats(r, "default");
        bool idle = reward_metric(m, "pending", -1) == 0 && m->updates == prev;
        prev = m->updates;
        agora__v1__reward_reply__free_unpacked(r, NULL);
        if (idle)
            break;
        usleep(200 * 1000);
    }
    Agora__V1__RewardReply *r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->score->n_scores, N_FIXED);
    memcpy(scores, r->score->scores, N_FIXED * sizeof *scores);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
    assert_non_null(r);
    Agora__V1__RewardModelStats *m = s_model_stats(r, "default");
    *version = m->version;
    *labels = m->labels;
    *updates = m->updates;
    *rejected = reward_metric(m, "rejected", -1);
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

static void s_figures_of(const Agora__V1__RewardModelStats *m, label_figures_t *f)
{
    f->buffer = reward_metric(m, "buffer", -1);
    f->heldout = reward_metric(m, "heldout", -1);
    f->pending = reward_metric(m, "pending", -1);
    f->pairs = reward_metric(m, "heldout_pairs", -1);
    f->outcomes = reward_metric(m, "heldout_outcomes", -1);
    f->pair_acc = reward_metric(m, "pairwise_accuracy", -1);
    f->outcome_acc = reward_metric(m, "outcome_accuracy", -1);
}

static label_figures_t s_figures_now(fixture_t *fx)
{
    label_figures_t f;
    Agora__V1__RewardReply *r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
    assert_non_null(r);
    s_figures_of(s_model_stats(r, "default"), &f);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    return f;
}

/* The label figures of "default" once every held-out label has a result and
 * two Stats 300 ms apart agree: an idle trainer evaluates the set until the
 * results match its weights. */
static void s_figures(fixture_t *fx, label_figures_t *f)
{
    label_figures_t prev = {0};
    for (int i = 0; i < 60; i++) {
        *f = s_figures_now(fx);
        if (i > 0 && f->pairs + f->outcomes == f->heldout && !memcmp(f, &prev, sizeof *f))
            return;
        prev = *f;
        usleep(300 * 1000);
    }
    fail_msg("held-out figures did not settle: %.0f of %.0f held-out labels evaluated",
             f->pairs + f->outcomes, f->heldout);
}

static void test_resume(void **state)
{
    fixture_t *fx = *state;
    s_snapshot(fx, fx->fixed_scores, &fx->version, &fx->labels, &fx->updates, &fx->rejected);
    assert_true(fx->updates > 0);
    /* the winners' transcripts score above the losers' */
    assert_true(fx->fixed_scores[0] > fx->fixed_scores[1]);
    assert_true(fx->fixed_scores[3] > fx->fixed_scores[4]);
    label_figures_t *before = &fx->figures;
    s_figures(fx, before);
    assert_true(before->buffer > 0 && before->pairs >= 100 && before->outcomes >= 30);
    assert_float_equal(before->pending, 0, 0);
    assert_int_equal(s_stop(fx), 0);

    char path[sizeof fx->dir + 32];
    struct stat st;
    const char *const files[] = {"default.ckpt", "second.ckpt", "default.labels", "second.labels",
                                 "reward-state.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", fx->dir, files[i]);
        if (stat(path, &st) != 0 || st.st_size == 0)
            fail_msg("%s was not written", path);
    }

    assert_int_equal(s_start(fx, fx->dir, NULL), 0);
    float again[N_FIXED];
    uint64_t version, labels, updates;
    double rejected;
    s_snapshot(fx, again, &version, &labels, &updates, &rejected);
    for (size_t i = 0; i < N_FIXED; i++)
        if (memcmp(&again[i], &fx->fixed_scores[i], sizeof again[i]))
            fail_msg("score %zu after resume: %.9g, before: %.9g", i, again[i],
                     fx->fixed_scores[i]);
    assert_int_equal(version, fx->version);
    assert_int_equal(labels, fx->labels);
    assert_int_equal(updates, fx->updates);
    assert_float_equal(rejected, fx->rejected, 0);

    /* the same buffer and held-out set; evaluated again with the same
     * weights, the same figures (a near tie may fall the other way in a
     * differently composed evaluation batch: one label's worth of slack) */
    label_figures_t after;
    s_figures(fx, &after);
    print_message("  before the stop: buffer %.0f, held out %.0f (%.0f pairs, accuracy %.4f; "
                  "%.0f outcomes, %.4f); resumed: buffer %.0f, held out %.0f (%.0f pairs, "
                  "%.4f; %.0f outcomes, %.4f)\n",
                  before->buffer, before->heldout, before->pairs, before->pair_acc,
                  before->outcomes, before->outcome_acc, after.buffer, after.heldout, after.pairs,
                  after.pair_acc, after.outcomes, after.outcome_acc);
    assert_float_equal(after.buffer, before->buffer, 0);
    assert_float_equal(after.heldout, before->heldout, 0);
    assert_float_equal(after.pending, 0, 0);
    assert_float_equal(after.pairs, before->pairs, 0);
    assert_float_equal(after.outcomes, before->outcomes, 0);
    assert_float_equal(after.pair_acc, before->pair_acc, 1.0 / before->pairs + 1e-9);
    assert_float_equal(after.outcome_acc, before->outcome_acc, 1.0 / before->outcomes + 1e-9);
    assert_int_equal(s_stop(fx), 0);
}

/* A damaged NAME.labels: the model resumes its weights and counters with no
 * labels, and still serves. */
static void test_labels_damaged(void **state)
{
    fixture_t *fx = *state;
    char path[sizeof fx->dir + 32];
    snprintf(path, sizeof path, "%s/default.labels", fx->dir);
    size_t len = 0;
    uint8_t *data = harness_read_file(path, &len);
    assert_non_null(data);
    assert_true(len > 64);
    data[len / 2] ^= 0x10;
    assert_int_equal(harness_write_file(path, data, len), 0);
    free(data);

    assert_int_equal(s_start(fx, fx->dir, NULL), 0);
    label_figures_t f = s_figures_now(fx);
    assert_float_equal(f.buffer, 0, 0);
    assert_float_equal(f.heldout, 0, 0);
    assert_float_equal(f.pending, 0, 0);
    assert_float_equal(f.pairs, 0, 0);
    Agora__V1__RewardReply *r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    assert_int_equal(r->score->n_scores, N_FIXED);
    assert_memory_equal(r->score->scores, fx->fixed_scores, sizeof fx->fixed_scores);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(s_model_stats(r, "default")->labels, fx->labels);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    assert_int_equal(s_stop(fx), 0);
}

/* A Label of outcomes op[0..n) for model under batch_id (NULL: none), sent
 * with a fresh request id (as a retry would be); the reply. */
static Agora__V1__RewardReply *s_send_outcomes(fixture_t *fx, const char *model,
                                               Agora__V1__Outcome **op, size_t n,
                                               const char *batch_id)
{
    Agora__V1__LabelRequest lr = AGORA__V1__LABEL_REQUEST__INIT;
    lr.model = (char *)model;
    lr.n_outcomes = n;
    lr.outcomes = op;
    lr.batch_id = batch_id ? (char *)batch_id : "";
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    req.label = &lr;
    Agora__V1__RewardReply *r = reward_peer_call(&fx->c, &req, TIMEOUT_MS);
    assert_non_null(r);
    return r;
}

/* A Label of n outcomes (label 1) for model "default" under batch_id (NULL:
 * none); the reply. */
static Agora__V1__RewardReply *s_outcomes(fixture_t *fx, size_t n, const char *batch_id)
{
    Agora__V1__ScoreItem items[16];
    Agora__V1__Outcome outs[16], *op[16];
    char text[16][96];
    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        s_transcript(&fx->rng, true, text[i], sizeof text[i]);
        agora__v1__score_item__init(&items[i]);
        items[i].transcript = text[i];
        agora__v1__outcome__init(&outs[i]);
        outs[i].item = &items[i];
        outs[i].label = 1.0f;
        op[i] = &outs[i];
    }
    return s_send_outcomes(fx, "default", op, n, batch_id);
}

/* Labels that would leave training more than a buffer behind are refused
 * with OVERLOADED (a buffer of 16, each label owed 100000 uses). */
/* reward.init: a model that is not resumed starts from the given checkpoint; while the
 * file does not exist yet the server serves fresh weights and trains nothing, and it
 * takes the file as soon as it appears (the trained one of test_resume here). */
static void test_init(void **state)
{
    fixture_t *fx = *state;
    char trained[sizeof fx->dir + 32], later[sizeof fx->dir + 32];
    snprintf(trained, sizeof trained, "%s/trained.ckpt", fx->dir);
    snprintf(later, sizeof later, "%s/later.ckpt", fx->dir);
    char src[sizeof fx->dir + 32];
    snprintf(src, sizeof src, "%s/default.ckpt", fx->dir);
    assert_int_equal(rename(src, trained), 0);
    const char *const extra[] = {"--reward.init", later, NULL};
    assert_int_equal(s_start(fx, NULL, extra), 0);
    Agora__V1__RewardReply *r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->score->n_scores, N_FIXED);
    assert_true(memcmp(r->score->scores, fx->fixed_scores, sizeof fx->fixed_scores) != 0);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    r = s_outcomes(fx, 8, NULL); /* labels wait too: no training before the file */
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_LABEL);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    usleep(1500 * 1000);
    r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(s_model_stats(r, "default")->updates, 0);
    agora__v1__reward_reply__free_unpacked(r, NULL);

    assert_int_equal(rename(trained, later), 0);
    bool same = false;
    for (int i = 0; i < 100 && !same; i++) {
        r = reward_peer_score(&fx->c, "second", s_fixed, N_FIXED, TIMEOUT_MS);
        assert_non_null(r);
        assert_int_equal(r->score->n_scores, N_FIXED);
        same = !memcmp(r->score->scores, fx->fixed_scores, sizeof fx->fixed_scores);
        agora__v1__reward_reply__free_unpacked(r, NULL);
        if (!same)
            usleep(100 * 1000);
    }
    if (!same)
        fail_msg("model \"second\" did not take the weights of %s", later);
    assert_int_equal(s_stop(fx), 0);
}

static void test_overloaded(void **state)
{
    fixture_t *fx = *state;
    const char *const extra[] = {
        "--reward.buffer", "16", "--reward.reuse", "100000", "--reward.holdout", "0", NULL};
    assert_int_equal(s_start(fx, NULL, extra), 0);
    Agora__V1__RewardReply *r = s_outcomes(fx, 16, "overload/0");
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_LABEL);
    assert_int_equal(r->label->accepted, 16);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    s_expect_error(s_outcomes(fx, 1, "overload/1"), E(OVERLOADED));
    s_expect_error(s_outcomes(fx, 1, "overload/1"), E(OVERLOADED));
    r = reward_peer_stats(&fx->c, "default", TIMEOUT_MS);
    assert_non_null(r);
    Agora__V1__RewardModelStats *m = s_model_stats(r, "default");
    assert_int_equal(m->labels, 16);
    /* a batch refused as a whole is not remembered: its resend was refused
     * again, not answered as a duplicate */
    assert_float_equal(reward_metric(m, "batch_ids", -1), 1, 0);
    assert_float_equal(reward_metric(m, "duplicates", -1), 0, 0);
    assert_float_equal(reward_metric(m, "buffer", -1), 16, 0);
    assert_true(reward_metric(m, "pending", 0) > 1e6 - 1e5);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    /* Score is not held back by it */
    r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    assert_int_equal(s_stop(fx), 0);
}

/* A NAME.labels file, walked by the format of reward_server/README.md. */
#define MAX_RECORDS 64
typedef struct {
    uint8_t *data;
    size_t len;
    uint32_t count;
    size_t off[MAX_RECORDS], size[MAX_RECORDS];
} labels_file_t;

static uint32_t s_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static float s_lef32(const uint8_t *p)
{
    uint32_t v = s_le32(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* CRC-32 (IEEE, reflected), bit by bit: not the server's table. */
static uint32_t s_crc32(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0xedb88320u : c >> 1;
    }
    return ~c;
}

static void s_labels_read(const char *path, labels_file_t *lf)
{
    memset(lf, 0, sizeof *lf);
    lf->data = harness_read_file(path, &lf->len);
    if (!lf->data)
        fail_msg("%s: cannot read it", path);
    assert_true(lf->len >= 16);
    assert_memory_equal(lf->data, "agoraL1\n", 8);
    const size_t end = lf->len - 4;
    assert_int_equal(s_le32(lf->data + end), s_crc32(lf->data, end));
    lf->count = s_le32(lf->data + 8);
    assert_true(lf->count <= MAX_RECORDS);
    size_t pos = 12;
    for (uint32_t i = 0; i < lf->count; i++) {
        assert_true(end - pos >= 11);
        const uint8_t kind = lf->data[pos + 1];
        assert_true(kind <= 1);
        size_t q = pos + 11;
        for (int t = 0; t <= kind; t++) {
            assert_true(end - q >= 4 && end - q - 4 >= s_le32(lf->data + q));
            q += 4 + s_le32(lf->data + q);
        }
        lf->off[i] = pos;
        lf->size[i] = q - pos;
        pos = q;
    }
    assert_int_equal(pos, end);
}

/*
 * Follows test_overloaded (16 outcome labels, label 1, each owed 100000
 * uses): resumed, the buffer keeps its labels and the uses they are owed;
 * resumed with reward.buffer 8, its 8 newest labels, owed at most 100000
 * uses each; and a NAME.labels left by another checkpoint is ignored.
 */
static void test_labels_resume(void **state)
{
    fixture_t *fx = *state;
    char path[sizeof fx->dir + 32], state_path[sizeof fx->dir + 32];
    snprintf(path, sizeof path, "%s/default.labels", fx->dir);
    snprintf(state_path, sizeof state_path, "%s/reward-state.json", fx->dir);
    labels_file_t old, kept;
    s_labels_read(path, &old);
    assert_int_equal(old.count, 16);
    for (uint32_t i = 0; i < old.count; i++) {
        const uint8_t *rec = old.data + old.off[i];
        assert_int_equal(rec[0], 0); /* in the buffer */
        assert_int_equal(rec[1], 0); /* an outcome */
        assert_float_equal(s_lef32(rec + 3), 1.0, 0);
        assert_float_equal(s_lef32(rec + 7), 1.0, 0);
        assert_int_equal(old.size[i], 15 + s_le32(rec + 11));
        assert_memory_equal(rec + 15, "table ", 6); /* s_transcript's, shorter than ctx */
    }
    /* reward-state.json records that very file ("default" sorts first) */
    size_t state_len = 0;
    char *json = (char *)harness_read_file(state_path, &state_len);
    assert_non_null(json);
    double count = -1, crc = -1, pending = -1;
    assert_int_equal(harness_json_num(json, "count", &count), 0);
    assert_int_equal(harness_json_num(json, "crc32", &crc), 0);
    assert_int_equal(harness_json_num(json, "pending", &pending), 0);
    free(json);
    assert_float_equal(count, 16, 0);
    assert_float_equal(crc, s_le32(old.data + old.len - 4), 0);
    assert_true(pending > 1e6);

    const char *const same[] = {
        "--reward.buffer", "16", "--reward.reuse", "100000", "--reward.holdout", "0", NULL};
    assert_int_equal(s_start(fx, fx->dir, same), 0);
    label_figures_t f = s_figures_now(fx);
    assert_float_equal(f.buffer, 16, 0);
    assert_true(f.pending > 1e6 && f.pending <= ceil(pending));
    assert_int_equal(s_stop(fx), 0);

    const char *const smaller[] = {
        "--reward.buffer", "8", "--reward.reuse", "100000", "--reward.holdout", "0", NULL};
    assert_int_equal(s_start(fx, fx->dir, smaller), 0);
    f = s_figures_now(fx);
    assert_float_equal(f.buffer, 8, 0);
    assert_true(f.pending > 7e5 && f.pending <= 8e5);
    assert_int_equal(s_stop(fx), 0);
    s_labels_read(path, &kept);
    assert_int_equal(kept.count, 8);
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(kept.size[i], old.size[8 + i]);
        assert_memory_equal(kept.data + kept.off[i], old.data + old.off[8 + i], kept.size[i]);
    }

    /* the 16-label file back: intact, but not the one reward-state.json records */
    assert_int_equal(harness_write_file(path, old.data, old.len), 0);
    assert_int_equal(s_start(fx, fx->dir, smaller), 0);
    f = s_figures_now(fx);
    assert_float_equal(f.buffer, 0, 0);
    assert_float_equal(f.pending, 0, 0);
    Agora__V1__RewardReply *r = reward_peer_score(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    assert_int_equal(s_stop(fx), 0);
    free(old.data);
    free(kept.data);
}

/* ---- idempotent labels (LabelRequest.batch_id) ---- */

/* Three outcomes and an invalid one (label 1.5) for model under batch_id
 * (NULL: none), sent with a fresh request id as a retry would be; the reply. */
static Agora__V1__RewardReply *s_batch(fixture_t *fx, const char *model, const char *batch_id)
{
    static const char *const texts[3] = {"batch | result: won. a1", "batch | result: lost. b2",
                                         "batch | result: won. c3"};
    Agora__V1__ScoreItem items[4];
    Agora__V1__Outcome outs[4], *op[4];
    for (size_t i = 0; i < 4; i++) {
        agora__v1__score_item__init(&items[i]);
        items[i].transcript = (char *)texts[i % 3];
        agora__v1__outcome__init(&outs[i]);
        outs[i].item = &items[i];
        outs[i].label = i == 3 ? 1.5f : i == 1 ? 0.0f : 1.0f;
        op[i] = &outs[i];
    }
    return s_send_outcomes(fx, model, op, 4, batch_id);
}

/* s_batch's reply: 3 accepted, 1 rejected, and whether it was a duplicate. */
static void s_expect_batch(Agora__V1__RewardReply *r, bool duplicate)
{
    if (r->body_case != AGORA__V1__REWARD_REPLY__BODY_LABEL)
        fail_msg("expected a LabelReply, got body %d error %d (%s)", r->body_case,
                 reward_reply_error(r), r->error && r->error->message ? r->error->message : "");
    assert_int_equal(r->label->accepted, 3);
    assert_int_equal(r->label->rejected, 1);
    assert_int_equal(r->label->duplicate, duplicate);
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

/* A batch id refused with BAD_REQUEST, the reason naming the field. */
static void s_expect_bad_id(fixture_t *fx, const char *batch_id)
{
    Agora__V1__RewardReply *r = s_batch(fx, "default", batch_id);
    if (reward_reply_error(r) != E(BAD_REQUEST) || !r->error->message ||
        !strstr(r->error->message, "batch_id"))
        fail_msg("batch id of %zu bytes: body %d error %d (%s)", strlen(batch_id), r->body_case,
                 reward_reply_error(r), r->error && r->error->message ? r->error->message : "");
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

typedef struct {
    uint64_t labels;
    double rejected, duplicates, batch_ids;
} batch_figures_t;

static batch_figures_t s_batch_figures(fixture_t *fx, const char *model)
{
    Agora__V1__RewardReply *r = reward_peer_stats(&fx->c, model, TIMEOUT_MS);
    assert_non_null(r);
    Agora__V1__RewardModelStats *m = s_model_stats(r, model);
    batch_figures_t f = {m->labels, reward_metric(m, "rejected", -1),
                         reward_metric(m, "duplicates", -1), reward_metric(m, "batch_ids", -1)};
    agora__v1__reward_reply__free_unpacked(r, NULL);
    return f;
}

static void s_expect_figures(fixture_t *fx, const char *model, uint64_t labels, double rejected,
                             double duplicates, double batch_ids)
{
    batch_figures_t f = s_batch_figures(fx, model);
    if (f.labels != labels || f.rejected != rejected || f.duplicates != duplicates ||
        f.batch_ids != batch_ids)
        fail_msg("model %s: labels %" PRIu64 ", rejected %.0f, duplicates %.0f, batch_ids %.0f; "
                 "expected %" PRIu64 ", %.0f, %.0f, %.0f",
                 model, f.labels, f.rejected, f.duplicates, f.batch_ids, labels, rejected,
                 duplicates, batch_ids);
}

/* Replaces the first `from` in path by `to` (the same file otherwise). */
static void s_file_replace(const char *path, const char *from, const char *to)
{
    size_t len = 0;
    char *d = (char *)harness_read_file(path, &len);
    assert_non_null(d);
    char *at = memmem(d, len, from, strlen(from));
    if (!at)
        fail_msg("%s holds no %s", path, from);
    const size_t pre = (size_t)(at - d), nf = strlen(from), nt = strlen(to);
    char *out = malloc(len - nf + nt);
    assert_non_null(out);
    memcpy(out, d, pre);
    memcpy(out + pre, to, nt);
    memcpy(out + pre + nt, at + nf, len - pre - nf);
    assert_int_equal(harness_write_file(path, out, len - nf + nt), 0);
    free(out);
    free(d);
}

/*
 * A retried batch (same batch_id, fresh request id) is answered duplicate
 * with the first counts and learnt once, the same body without an id twice;
 * a batch refused as a whole is learnt when resent; each model has its own
 * memory; bad ids are refused; the memory survives SIGTERM and --resume, and
 * a damaged one costs the memory, not the resume.
 */
static void test_batch_ids(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_start(fx, NULL, NULL), 0);
    s_expect_figures(fx, "default", 0, 0, 0, 0);

    s_expect_batch(s_batch(fx, "default", "run-a/0"), false);
    s_expect_batch(s_batch(fx, "default", "run-a/0"), true);
    s_expect_figures(fx, "default", 3, 1, 1, 1);
    s_expect_batch(s_batch(fx, "default", NULL), false);
    s_expect_batch(s_batch(fx, "default", NULL), false);
    s_expect_figures(fx, "default", 9, 3, 1, 1);

    s_expect_error(s_batch(fx, "nope", "run-a/1"), E(UNKNOWN_MODEL));
    s_expect_batch(s_batch(fx, "default", "run-a/1"), false);
    s_expect_batch(s_batch(fx, "second", "run-a/1"), false);
    s_expect_figures(fx, "default", 12, 4, 1, 2);
    s_expect_figures(fx, "second", 3, 1, 0, 1);

    char id[BATCH_ID_MAX + 2];
    memset(id, 'y', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    s_expect_bad_id(fx, id); /* 129 bytes */
    s_expect_bad_id(fx, "run\x01a");
    s_expect_bad_id(fx, "tab\there");
    s_expect_bad_id(fx, "caf\xc3\xa9");
    id[BATCH_ID_MAX] = '\0'; /* 128: the longest */
    s_expect_batch(s_batch(fx, "default", id), false);
    s_expect_batch(s_batch(fx, "default", id), true);
    s_expect_batch(s_batch(fx, "default", " "), false);
    s_expect_figures(fx, "default", 18, 6, 2, 4);
    float scores[N_FIXED];
    assert_int_equal(reward_peer_scores(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS, scores),
                     0);

    /* resumed: the same ids are still duplicates, nothing is learnt again */
    assert_int_equal(s_stop(fx), 0);
    assert_int_equal(s_start(fx, fx->dir, NULL), 0);
    s_expect_figures(fx, "default", 18, 6, 2, 4);
    s_expect_batch(s_batch(fx, "default", "run-a/0"), true);
    s_expect_batch(s_batch(fx, "default", id), true);
    s_expect_batch(s_batch(fx, "second", "run-a/1"), true);
    s_expect_figures(fx, "default", 18, 6, 4, 4);
    s_expect_figures(fx, "second", 3, 1, 1, 1);
    assert_int_equal(s_stop(fx), 0);

    /* A damaged list (an id that is not printable): that model resumes with
     * an empty memory, so the batch is learnt again; the other keeps its own. */
    char path[sizeof fx->dir + 32];
    snprintf(path, sizeof path, "%s/reward-state.json", fx->dir);
    s_file_replace(path, "\"run-a/0\"", "\"run-a\\u0001\"");
    assert_int_equal(s_start(fx, fx->dir, NULL), 0);
    s_expect_figures(fx, "default", 18, 6, 4, 0);
    s_expect_batch(s_batch(fx, "default", "run-a/0"), false);
    s_expect_batch(s_batch(fx, "second", "run-a/1"), true);
    s_expect_figures(fx, "default", 21, 7, 4, 1);
    assert_int_equal(reward_peer_scores(&fx->c, "default", s_fixed, N_FIXED, TIMEOUT_MS, scores),
                     0);
    assert_int_equal(s_stop(fx), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_reward_service AGORA_REWARD_BINARY\n");
        return 2;
    }
    s_exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serving),       cmocka_unit_test(test_learns),
        cmocka_unit_test(test_resume),        cmocka_unit_test(test_labels_damaged),
        cmocka_unit_test(test_init),          cmocka_unit_test(test_overloaded),
        cmocka_unit_test(test_labels_resume), cmocka_unit_test(test_batch_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
