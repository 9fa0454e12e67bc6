/*
 * rm.c - the reward model's math (see rm.h): tokenising, batched scoring,
 * the outcome and preference losses and one training step.
 *
 * Every batch is laid out the same way: the sequences of the labels in
 * order (an outcome contributes one, a preference two: a then b), tokens
 * (B,T) with T the longest sequence, padding after each sequence's end. The
 * score of sequence b is values[b*T + last[b]]; the loss's gradient enters
 * the model only there (dvalues is zero everywhere else).
 */
#include "rm.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct ag_rm {
    ag_model_t *m;
    int max_seqs;
    int ctx;
    int32_t *tokens;    /* (max_seqs, ctx) */
    float *dvalues;     /* (max_seqs, ctx) */
    int *last;          /* (max_seqs) position of each sequence's last real token */
    float *scores;      /* (max_seqs) */
    float *dscores;     /* (max_seqs) dL/dscore */
    uint8_t *correct;   /* (max_seqs) per label of the current batch */
    ag_rm_text_t *seqs; /* (max_seqs) the sequences of the current batch */
};

size_t ag_rm_kept_bytes(size_t len, int ctx)
{
    size_t room = ctx > 1 ? (size_t)ctx - 1 : 0;
    return len < room ? len : room;
}

int ag_rm_tokenize(const uint8_t *text, size_t len, int ctx, int32_t *out)
{
    size_t keep = ag_rm_kept_bytes(len, ctx);
    const uint8_t *tail = text + (len - keep);
    out[0] = AG_TOK_BOS;
    for (size_t i = 0; i < keep; i++)
        out[1 + i] = tail[i];
    return (int)keep + 1;
}

/* log(1 + exp(x)) without overflow. */
static double s_softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double s_sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

double ag_rm_outcome_loss(double s, double y, double *ds)
{
    /* -[y log sigmoid(s) + (1 - y) log(1 - sigmoid(s))] = softplus(s) - y s */
    if (ds)
        *ds = s_sigmoid(s) - y;
    return s_softplus(s) - y * s;
}

double ag_rm_preference_loss(double s_pref, double s_other, double *ds_pref, double *ds_other)
{
    const double margin = s_pref - s_other;
    /* -log sigmoid(m) = softplus(-m); d/dm = -sigmoid(-m) */
    const double g = -s_sigmoid(-margin);
    if (ds_pref)
        *ds_pref = g;
    if (ds_other)
        *ds_other = -g;
    return s_softplus(-margin);
}

int ag_rm_label_correct(const ag_rm_label_t *label, const float *s)
{
    if (label->kind == AG_RM_PREFERENCE)
        return label->preferred ? s[1] > s[0] : s[0] > s[1];
    return (s[0] > 0.0f) == (label->target > 0.5f);
}

ag_rm_t *ag_rm_create(const ag_model_config_t *cfg, uint64_t seed, int threads, int max_seqs)
{
    if (!cfg || cfg->vocab <= AG_TOK_PAD || max_seqs < 2 || ag_model_config_check(cfg, NULL, 0) < 0)
        return NULL;
    ag_rm_t *rm = calloc(1, sizeof *rm);
    if (!rm)
        return NULL;
    rm->max_seqs = max_seqs;
    rm->ctx = cfg->ctx;
    const size_t cells = (size_t)max_seqs * (size_t)cfg->ctx;
    rm->m = ag_model_create(cfg, seed, threads);
    rm->tokens = malloc(cells * sizeof *rm->tokens);
    rm->dvalues = malloc(cells * sizeof *rm->dvalues);
    rm->last = malloc((size_t)max_seqs * sizeof *rm->last);
    rm->scores = malloc((size_t)max_seqs * sizeof *rm->scores);
    rm->dscores = malloc((size_t)max_seqs * sizeof *rm->dscores);
    rm->correct = malloc((size_t)max_seqs);
    rm->seqs = malloc((size_t)max_seqs * sizeof *rm->seqs);
    if (!rm->m || !rm->tokens || !rm->dvalues || !rm->last || !rm->scores || !rm->dscores ||
        !rm->correct || !rm->seqs || ag_model_reserve(rm->m, max_seqs, cfg->ctx) < 0) {
        ag_rm_destroy(&rm);
        return NULL;
    }
    return rm;
}

void ag_rm_destroy(ag_rm_t **self)
{
    if (!self || !*self)
        return;
    ag_rm_t *rm = *self;
    ag_model_destroy(&rm->m);
    free(rm->tokens);
    free(rm->dvalues);
    free(rm->last);
    free(rm->scores);
    free(rm->dscores);
    free(rm->correct);
    free(rm->seqs);
    free(rm);
    *self = NULL;
}

ag_model_t *ag_rm_model(ag_rm_t *rm)
{
    return rm->m;
}

int ag_rm_max_seqs(const ag_rm_t *rm)
{
    return rm->max_seqs;
}

/*
 * Forwards rm->seqs[0..B) and leaves their scores in rm->scores. tokens (B,T)
 * are laid out with the row stride T of this batch, not ctx.
 */
static int s_forward(ag_rm_t *rm, int B, double *tokens_out)
{
    int T = 1;
    for (int b = 0; b < B; b++) {
        int n = 1 + (int)ag_rm_kept_bytes(rm->seqs[b].len, rm->ctx);
        rm->last[b] = n - 1;
        if (n > T)
            T = n;
    }
    double real = 0;
    for (int b = 0; b < B; b++) {
        int32_t *row = rm->tokens + (size_t)b * T;
        int n = ag_rm_tokenize(rm->seqs[b].data, rm->seqs[b].len, rm->ctx, row);
        for (int t = n; t < T; t++)
            row[t] = AG_TOK_PAD;
        real += n;
    }
    int rc = ag_model_forward(rm->m, B, T, rm->tokens, AG_MODEL_NO_LOGITS);
    if (rc < 0)
        return rc;
    const float *v = ag_model_values(rm->m);
    for (int b = 0; b < B; b++)
        rm->scores[b] = v[(size_t)b * T + rm->last[b]];
    if (tokens_out)
        *tokens_out += real;
    return T;
}

int ag_rm_score(ag_rm_t *rm, const ag_rm_text_t *texts, size_t n, float *scores)
{
    if (n && (!texts || !scores))
        return -EINVAL;
    for (size_t i = 0; i < n; i += (size_t)rm->max_seqs) {
        size_t B = n - i < (size_t)rm->max_seqs ? n - i : (size_t)rm->max_seqs;
        for (size_t b = 0; b < B; b++) {
            if (!texts[i + b].data && texts[i + b].len)
                return -EINVAL;
            rm->seqs[b] = texts[i + b];
        }
        int rc = s_forward(rm, (int)B, NULL);
        if (rc < 0)
            return rc;
        memcpy(scores + i, rm->scores, B * sizeof *scores);
    }
    return 0;
}

static int s_label_seqs(const ag_rm_label_t *l)
{
    return l->kind == AG_RM_PREFERENCE ? 2 : 1;
}

static bool s_label_ok(const ag_rm_label_t *l)
{
    if (l->kind != AG_RM_OUTCOME && l->kind != AG_RM_PREFERENCE)
        return false;
    if (l->kind == AG_RM_PREFERENCE && l->preferred != 0 && l->preferred != 1)
        return false;
    if (!isfinite(l->weight) || l->weight < 0 || !isfinite(l->target))
        return false;
    for (int k = 0; k < s_label_seqs(l); k++)
        if (!l->text[k].data && l->text[k].len)
            return false;
    return true;
}

/* Lays the labels' sequences out in rm->seqs; returns B or a negative errno. */
static int s_gather(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n)
{
    int B = 0;
    for (size_t i = 0; i < n; i++) {
        if (!s_label_ok(&labels[i]))
            return -EINVAL;
        if (B + s_label_seqs(&labels[i]) > rm->max_seqs)
            return -ERANGE;
        for (int k = 0; k < s_label_seqs(&labels[i]); k++)
            rm->seqs[B++] = labels[i].text[k];
    }
    return B;
}

/* L of the labels over the scores in rm->scores; with ds (one per sequence)
 * also dL/dscore, with correct (one per label) whether each is got right. */
static double s_batch_loss(const ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, float *ds,
                           uint8_t *correct)
{
    double L = 0;
    const double inv_n = 1.0 / (double)n;
    int b = 0;
    for (size_t i = 0; i < n; i++) {
        const ag_rm_label_t *l = &labels[i];
        const float *s = rm->scores + b;
        const double w = l->weight;
        if (l->kind == AG_RM_OUTCOME) {
            double d;
            L += w * ag_rm_outcome_loss(s[0], l->target, &d);
            if (ds)
                ds[b] = (float)(w * inv_n * d);
        } else {
            const int p = l->preferred;
            double dp, dn;
            L += w * ag_rm_preference_loss(s[p], s[1 - p], &dp, &dn);
            if (ds) {
                ds[b + p] = (float)(w * inv_n * dp);
                ds[b + 1 - p] = (float)(w * inv_n * dn);
            }
        }
        if (correct)
            correct[i] = (uint8_t)ag_rm_label_correct(l, s);
        b += s_label_seqs(l);
    }
    return L * inv_n;
}

/* One batch: forward, loss, per-label correctness into correct (n
 * entries), and with backward the gradient slab. */
static int s_run(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, bool backward,
                 uint8_t *correct, ag_rm_stats_t *stats)
{
    if (!n || !labels)
        return -EINVAL;
    int B = s_gather(rm, labels, n);
    if (B < 0)
        return B;
    double tokens = 0;
    int T = s_forward(rm, B, &tokens);
    if (T < 0)
        return T;
    double L = s_batch_loss(rm, labels, n, backward ? rm->dscores : NULL, correct);
    if (backward) {
        memset(rm->dvalues, 0, (size_t)B * (size_t)T * sizeof *rm->dvalues);
        for (int b = 0; b < B; b++)
            rm->dvalues[(size_t)b * T + rm->last[b]] = rm->dscores[b];
        ag_model_zero_grad(rm->m);
        int rc = ag_model_backward(rm->m, NULL, NULL, rm->dvalues);
        if (rc < 0)
            return rc;
    }
    if (stats) {
        memset(stats, 0, sizeof *stats);
        stats->loss = L;
        stats->labels = (double)n;
        stats->tokens = tokens;
        for (size_t i = 0; i < n; i++)
            stats->correct += correct[i];
    }
    return 0;
}

int ag_rm_loss(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, bool backward,
               ag_rm_stats_t *stats)
{
    return s_run(rm, labels, n, backward, rm->correct, stats);
}

int ag_rm_train_step(ag_rm_t *rm, ag_adamw_t *opt, const ag_rm_label_t *labels, size_t n,
                     ag_rm_stats_t *stats)
{
    ag_rm_stats_t st;
    int rc = ag_rm_loss(rm, labels, n, true, &st);
    if (rc < 0)
        return rc;
    ag_adamw_stats_t os;
    rc = ag_adamw_step(opt, rm->m, &os);
    st.grad_norm = os.grad_norm;
    if (stats)
        *stats = st;
    return rc;
}

int ag_rm_evaluate(ag_rm_t *rm, const ag_rm_label_t *labels, size_t n, uint8_t *correct,
                   ag_rm_stats_t *stats)
{
    if (n && (!labels || !correct))
        return -EINVAL;
    ag_rm_stats_t total = {0};
    size_t i = 0;
    while (i < n) {
        /* as many labels as fit one forward */
        size_t j = i;
        int seqs = 0;
        while (j < n && seqs + s_label_seqs(&labels[j]) <= rm->max_seqs)
            seqs += s_label_seqs(&labels[j++]);
        ag_rm_stats_t st;
        int rc = s_run(rm, labels + i, j - i, false, correct + i, &st);
        if (rc < 0)
            return rc;
        total.loss += st.loss * st.labels;
        total.labels += st.labels;
        total.correct += st.correct;
        total.tokens += st.tokens;
        i = j;
    }
    if (total.labels > 0)
        total.loss /= total.labels;
    if (stats)
        *stats = total;
    return 0;
}
