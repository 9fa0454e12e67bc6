/*
 * gae.c - GAE over a seat's own tokens and the batch layout (see gae.h).
 */
#include "gae.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

size_t ag_gae_seat(const ag_seq_t *s, const float *values, const ag_gae_config_t *c, float *adv,
                   float *ret)
{
    memset(adv, 0, s->len * sizeof *adv);
    memset(ret, 0, s->len * sizeof *ret);
    /* Walk backwards over generated tokens; `turn` tracks the latest turn
     * whose end is at or after j, so turn ends are recognised in one pass. */
    double next_v = 0.0, next_a = 0.0;
    size_t turn = s->n_turns, steps = 0;
    for (size_t jj = s->len; jj-- > 0;) {
        if (!s->generated[jj])
            continue;
        while (turn > 0 && s->turn_end[turn - 1] > jj)
            turn--;
        int ends_turn = turn > 0 && s->turn_end[turn - 1] == jj;
        double r = ends_turn ? s->turn_rewards[turn - 1] : 0.0;
        /* The last step of the seat has no successor: V after it is 0 and
         * the discount does not matter. */
        double g = c->gamma * (ends_turn ? c->turn_gamma : 1.0);
        double v = values[jj];
        double delta = r + g * next_v - v;
        double a = delta + g * c->lambda * next_a;
        adv[jj] = (float)a;
        ret[jj] = (float)(a + v);
        next_v = v;
        next_a = a;
        steps++;
    }
    return steps;
}

int ag_batch_init(ag_batch_t *b, const ag_seq_t *const *rows, size_t n_rows)
{
    memset(b, 0, sizeof *b);
    int T = 1;
    for (size_t i = 0; i < n_rows; i++) {
        if (rows[i]->len < 2)
            return -EINVAL;
        if ((int)rows[i]->len - 1 > T)
            T = (int)rows[i]->len - 1;
    }
    b->B = (int)n_rows;
    b->T = T;
    size_t n = (size_t)b->B * (size_t)T;
    b->len = calloc(n_rows ? n_rows : 1, sizeof *b->len);
    b->tokens = malloc(n * sizeof *b->tokens);
    b->targets = malloc(n * sizeof *b->targets);
    float **f[] = {&b->mask, &b->behaviour, &b->prox, &b->ref, &b->values, &b->adv, &b->ret};
    int fail = !b->len || !b->tokens || !b->targets;
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        *f[k] = calloc(n ? n : 1, sizeof(float));
        fail |= !*f[k];
    }
    if (fail) {
        ag_batch_finish(b);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_rows; i++) {
        const ag_seq_t *s = rows[i];
        const int L = (int)s->len - 1;
        int32_t *tok = b->tokens + i * (size_t)T, *tgt = b->targets + i * (size_t)T;
        float *mask = b->mask + i * (size_t)T, *beh = b->behaviour + i * (size_t)T;
        b->len[i] = L;
        for (int t = 0; t < T; t++) {
            if (t < L) {
                tok[t] = s->tokens[t];
                tgt[t] = s->tokens[t + 1];
                mask[t] = s->generated[t + 1] ? 1.0f : 0.0f;
                beh[t] = s->generated[t + 1] ? s->logprobs[t + 1] : 0.0f;
            } else {
                tok[t] = AG_TOK_PAD;
                tgt[t] = AG_TOK_PAD;
            }
        }
    }
    return 0;
}

void ag_batch_finish(ag_batch_t *b)
{
    free(b->len);
    free(b->tokens);
    free(b->targets);
    free(b->mask);
    free(b->behaviour);
    free(b->prox);
    free(b->ref);
    free(b->values);
    free(b->adv);
    free(b->ret);
    memset(b, 0, sizeof *b);
}

int ag_batch_gae(ag_batch_t *b, const ag_seq_t *const *rows, const ag_gae_config_t *c)
{
    size_t maxlen = (size_t)b->T + 1;
    float *v = malloc(maxlen * sizeof *v), *a = malloc(maxlen * sizeof *a),
          *r = malloc(maxlen * sizeof *r);
    if (!v || !a || !r) {
        free(v);
        free(a);
        free(r);
        return -ENOMEM;
    }
    for (int i = 0; i < b->B; i++) {
        const ag_seq_t *s = rows[i];
        const size_t off = (size_t)i * (size_t)b->T;
        v[0] = 0.0f;
        for (size_t j = 1; j < s->len; j++)
            v[j] = b->values[off + j - 1];
        ag_gae_seat(s, v, c, a, r);
        for (size_t j = 1; j < s->len; j++) {
            b->adv[off + j - 1] = a[j];
            b->ret[off + j - 1] = r[j];
        }
    }
    free(v);
    free(a);
    free(r);
    return 0;
}

size_t ag_batch_whiten(ag_batch_t *b, double *mean, double *std)
{
    const size_t n = (size_t)b->B * (size_t)b->T;
    double sum = 0.0, sq = 0.0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++)
        if (b->mask[i] != 0.0f) {
            sum += b->adv[i];
            cnt++;
        }
    double mu = cnt ? sum / (double)cnt : 0.0;
    for (size_t i = 0; i < n; i++)
        if (b->mask[i] != 0.0f)
            sq += (b->adv[i] - mu) * (b->adv[i] - mu);
    double sd = cnt ? sqrt(sq / (double)cnt) : 0.0;
    for (size_t i = 0; i < n; i++)
        b->adv[i] = b->mask[i] != 0.0f ? (float)((b->adv[i] - mu) / (sd + 1e-8)) : 0.0f;
    if (mean)
        *mean = mu;
    if (std)
        *std = sd;
    return cnt;
}
