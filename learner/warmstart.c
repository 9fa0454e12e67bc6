/*
 * warmstart.c - demonstrations (Demo requests or JSONL) and the supervised
 * warm start (see warmstart.h).
 */
#include "clock.h"
#include "warmstart.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "env_client.h"
#include "kv.h"
#include "log.h"
#include "loss.h"
#include "optim.h"

#define DEMO_CHUNK 256
#define MAX_PLAYERS 8
#define MAX_OPTIONS 32
#define MAX_ENDPOINTS 16

#define PATH_MAX_WHAT 4200
#define MAX_REPORTED 5 /* transcripts named one by one when they do not fit */

typedef struct seqs {
    ag_seq_t *v;
    size_t n, cap;
    size_t dropped, longest; /* seats that do not fit the context, and the longest */
    int ctx;
    const char *game;
} seqs_t;

/* A seat of transcript `what` that cannot be trained on: named (the first
 * few), counted, and summed up by ag_warmstart_load. */
static void s_refuse(seqs_t *l, const char *what, const char *game, size_t seat, size_t tokens)
{
    if (l->dropped++ < MAX_REPORTED)
        ag_error("warmstart",
                 "%s (game %s): seat %zu is %zu tokens, more than model.ctx = %d: it cannot be "
                 "trained on",
                 what, game, seat, tokens, l->ctx);
    if (tokens > l->longest)
        l->longest = tokens;
}

/* Moves the per-seat sequences of one transcript into the list. */
static int s_keep(seqs_t *l, ag_seq_t *seat, size_t n_seats, const char *what, const char *game)
{
    for (size_t p = 0; p < n_seats; p++) {
        if (!seat[p].n_turns || seat[p].len > (size_t)l->ctx) {
            if (seat[p].n_turns)
                s_refuse(l, what, game, p, seat[p].len);
            ag_seq_finish(&seat[p]);
            continue;
        }
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 256;
            ag_seq_t *v = realloc(l->v, cap * sizeof *v);
            if (!v)
                return -ENOMEM;
            l->v = v;
            l->cap = cap;
        }
        l->v[l->n++] = seat[p];
        ag_seq_init(&seat[p]);
    }
    return 0;
}

/* Turns (player, observation, action) into sequences, one per seat. */
typedef struct turn_text {
    uint32_t player;
    const char *obs;
    const char *action;
} turn_text_t;

static int s_add_transcript(seqs_t *l, const turn_text_t *turns, size_t n_turns, const char *what,
                            const char *game)
{
    ag_seq_t seat[MAX_PLAYERS];
    size_t n_seats = 0;
    for (size_t i = 0; i < n_turns; i++) {
        if (turns[i].player >= MAX_PLAYERS)
            return -EINVAL;
        if (turns[i].player + 1 > n_seats)
            n_seats = turns[i].player + 1;
    }
    for (size_t p = 0; p < n_seats; p++) {
        ag_seq_init(&seat[p]);
        if (ag_seq_begin(&seat[p]) < 0)
            goto nomem;
    }
    for (size_t i = 0; i < n_turns; i++)
        if (ag_seq_turn_text(&seat[turns[i].player], turns[i].obs, strlen(turns[i].obs),
                             turns[i].action, strlen(turns[i].action), 0) < 0)
            goto nomem;
    return s_keep(l, seat, n_seats, what, game);
nomem:
    for (size_t p = 0; p < n_seats; p++)
        ag_seq_finish(&seat[p]);
    return -ENOMEM;
}

static int s_load_file(const ag_warmstart_config_t *c, seqs_t *l)
{
    FILE *f = fopen(c->file, "r");
    if (!f) {
        ag_error("warmstart", "%s: %s", c->file, strerror(errno));
        return -errno;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    turn_text_t *turns = NULL;
    while (rc == 0 && (got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (got == 0 || line[0] == '\n')
            continue;
        json_error_t jerr;
        json_t *o = json_loads(line, 0, &jerr);
        json_t *jt = o ? json_object_get(o, "turns") : NULL;
        if (!o || !json_is_array(jt)) {
            ag_error("warmstart", "%s:%zu: not a transcript object with \"turns\": %s", c->file,
                     lineno, o ? "no turns array" : jerr.text);
            json_decref(o);
            rc = -EINVAL;
            break;
        }
        size_t nt = json_array_size(jt);
        turn_text_t *nt_buf = realloc(turns, (nt ? nt : 1) * sizeof *turns);
        if (!nt_buf) {
            json_decref(o);
            rc = -ENOMEM;
            break;
        }
        turns = nt_buf;
        for (size_t i = 0; i < nt && rc == 0; i++) {
            json_t *t = json_array_get(jt, i);
            json_t *pl = json_object_get(t, "player"), *ob = json_object_get(t, "observation"),
                   *ac = json_object_get(t, "action");
            if (!json_is_integer(pl) || !json_is_string(ob) || !json_is_string(ac) ||
                json_integer_value(pl) < 0 || json_integer_value(pl) >= MAX_PLAYERS) {
                ag_error("warmstart",
                         "%s:%zu: turn %zu needs player (0..%d), observation "
                         "and action",
                         c->file, lineno, i, MAX_PLAYERS - 1);
                rc = -EINVAL;
                break;
            }
            turns[i] = (turn_text_t){(uint32_t)json_integer_value(pl), json_string_value(ob),
                                     json_string_value(ac)};
        }
        if (rc == 0) {
            char what[PATH_MAX_WHAT];
            const json_t *jg = json_object_get(o, "game");
            snprintf(what, sizeof what, "%s:%zu", c->file, lineno);
            rc = s_add_transcript(l, turns, nt, what,
                                  json_is_string(jg) ? json_string_value(jg) : l->game);
        }
        json_decref(o);
    }
    free(turns);
    free(line);
    fclose(f);
    return rc;
}

static int s_fetch_demos(const ag_warmstart_config_t *c, seqs_t *l)
{
    char obuf[2048], ebuf[2048];
    ag_kv_t kv[MAX_OPTIONS];
    int n_opt = ag_kv_parse(c->options, obuf, sizeof obuf, kv, MAX_OPTIONS);
    if (n_opt < 0) {
        ag_error("warmstart", "game.options: expected KEY=VALUE,KEY=VALUE, each key once: '%s'",
                 c->options);
        return -EINVAL;
    }
    /* Chunks go round-robin over the env servers. */
    ag_env_client_t *cl[MAX_ENDPOINTS];
    size_t n_cl = 0;
    snprintf(ebuf, sizeof ebuf, "%s", c->env);
    char *save = NULL;
    int rc = 0;
    for (char *ep = strtok_r(ebuf, ",", &save); ep && n_cl < MAX_ENDPOINTS;
         ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (!*ep)
            continue;
        cl[n_cl] = ag_env_client_create(ep, c->timeout_ms > 0 ? c->timeout_ms : 30000);
        if (!cl[n_cl]) {
            rc = -EINVAL;
            goto done;
        }
        ag_env_client_set_retries(cl[n_cl], 3);
        n_cl++;
    }
    if (!n_cl) {
        ag_error("warmstart", "learner.env names no endpoint");
        return -EINVAL;
    }
    Agora__V1__KeyValue kvs[MAX_OPTIONS];
    Agora__V1__KeyValue *kvp[MAX_OPTIONS];
    for (int i = 0; i < n_opt; i++) {
        agora__v1__key_value__init(&kvs[i]);
        kvs[i].key = (char *)kv[i].key;
        kvs[i].value = (char *)kv[i].value;
        kvp[i] = &kvs[i];
    }
    turn_text_t turns[256];
    for (long done_n = 0, chunk = 0; done_n < c->demos && rc == 0; chunk++) {
        long count = c->demos - done_n < DEMO_CHUNK ? c->demos - done_n : DEMO_CHUNK;
        Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
        demo.game = (char *)c->game;
        demo.seed = c->seed + (uint64_t)done_n;
        demo.count = (uint32_t)count;
        demo.n_options = (size_t)n_opt;
        demo.options = kvp;
        Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
        req.demo = &demo;
        Agora__V1__EnvReply *rep = NULL;
        ag_env_client_t *client = cl[chunk % (long)n_cl];
        rc = ag_env_client_call(client, &req, &rep);
        if (rc < 0) {
            ag_error("warmstart", "Demo request to the env server failed: %s", strerror(-rc));
            break;
        }
        if (rep->body_case != AGORA__V1__ENV_REPLY__BODY_DEMO || !rep->demo ||
            rep->demo->n_transcripts != (size_t)count) {
            int code = ag_env_reply_error(rep);
            ag_error("warmstart", "Demo %s: %s", code > 0 ? ag_error_name(code) : "reply",
                     code > 0 && rep->error && rep->error->message ? rep->error->message
                                                                   : "wrong number of transcripts");
            agora__v1__env_reply__free_unpacked(rep, NULL);
            rc = -EPROTO;
            break;
        }
        for (size_t i = 0; i < rep->demo->n_transcripts && rc == 0; i++) {
            const Agora__V1__Transcript *t = rep->demo->transcripts[i];
            char what[96];
            snprintf(what, sizeof what, "Demo transcript %ld (seed %" PRIu64 ")", done_n + (long)i,
                     c->seed + (uint64_t)done_n + i);
            if (t->n_turns > sizeof turns / sizeof turns[0]) {
                ag_error("warmstart", "%s (game %s): %zu turns, more than %zu: not trained on",
                         what, c->game, t->n_turns, sizeof turns / sizeof turns[0]);
                l->dropped++;
                continue;
            }
            for (size_t k = 0; k < t->n_turns; k++)
                turns[k] = (turn_text_t){t->turns[k]->player, t->turns[k]->observation,
                                         t->turns[k]->action};
            rc = s_add_transcript(l, turns, t->n_turns, what, c->game);
            if (rc == -EINVAL) {
                ag_error("warmstart", "%s (game %s): a turn of a player above %d: not trained on",
                         what, c->game, MAX_PLAYERS - 1);
                l->dropped++;
                rc = 0;
            }
        }
        agora__v1__env_reply__free_unpacked(rep, NULL);
        done_n += count;
    }
done:
    for (size_t i = 0; i < n_cl; i++)
        ag_env_client_destroy(&cl[i]);
    return rc;
}

int ag_warmstart_load(const ag_warmstart_config_t *c, int ctx, ag_seq_t **out, size_t *n,
                      size_t *dropped, char *why, size_t why_len)
{
    char reason[512] = "";
    seqs_t l = {.ctx = ctx, .game = c->game && c->game[0] ? c->game : "(unnamed)"};
    const bool file = c->file && c->file[0];
    int rc = file ? s_load_file(c, &l) : (c->demos > 0 ? s_fetch_demos(c, &l) : 0);
    if (rc == 0 && l.dropped) {
        ag_error("warmstart",
                 "%zu seat transcripts cannot be trained on (the longest: %zu tokens, "
                 "model.ctx = %d)%s",
                 l.dropped, l.longest, ctx, l.n ? "; the warm start goes on with the rest" : "");
    }
    if (rc == 0 && !l.n && (file || c->demos > 0)) {
        if (l.dropped)
            snprintf(reason, sizeof reason,
                     "nothing to train on: no transcript of %s fits model.ctx = %d (the "
                     "longest seat: %zu tokens); raise model.ctx or shorten the games",
                     file ? c->file : "the Demo requests", ctx, l.longest);
        else
            snprintf(reason, sizeof reason, "nothing to train on: %s holds no turns",
                     file ? c->file : "the Demo replies");
        ag_error("warmstart", "%s", reason);
        rc = -EINVAL;
    }
    if (why && why_len)
        snprintf(why, why_len, "%s", rc < 0 && reason[0] ? reason : rc < 0 ? strerror(-rc) : "");
    if (rc < 0) {
        ag_warmstart_free(l.v, l.n);
        *out = NULL;
        *n = 0;
        return rc;
    }
    *out = l.v;
    *n = l.n;
    if (dropped)
        *dropped = l.dropped;
    return 0;
}

void ag_warmstart_free(ag_seq_t *seqs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ag_seq_finish(&seqs[i]);
    free(seqs);
}

int ag_warmstart_train(ag_model_t *m, const ag_seq_t *seqs, size_t n,
                       const ag_warmstart_config_t *c, ag_rng_t *rng, const atomic_int *stop,
                       ag_warmstart_epoch_cb cb, void *arg)
{
    if (!n || c->epochs < 1)
        return 0;
    const int ctx = ag_model_config(m)->ctx, bs = c->batch > 0 ? c->batch : 32;
    int rc = ag_model_reserve(m, bs, ctx);
    if (rc < 0)
        return rc;
    const long steps_per_epoch = (long)((n + (size_t)bs - 1) / (size_t)bs);
    ag_adamw_config_t oc;
    ag_adamw_config_default(&oc);
    oc.lr = c->lr;
    oc.total_steps = steps_per_epoch * c->epochs;
    ag_adamw_t *opt = ag_adamw_create(m, &oc);
    size_t *perm = malloc(n * sizeof *perm);
    int32_t *tok = malloc((size_t)bs * (size_t)ctx * sizeof *tok);
    int32_t *tgt = malloc((size_t)bs * (size_t)ctx * sizeof *tgt);
    float *mask = malloc((size_t)bs * (size_t)ctx * sizeof *mask);
    ag_loss_t *loss = ag_loss_create();
    if (!opt || !perm || !tok || !tgt || !mask || !loss) {
        rc = -ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    ag_loss_config_t lc;
    memset(&lc, 0, sizeof lc);
    lc.ce_coef = 1.0f;
    lc.kl_estimator = AG_KL_K3;
    for (int e = 0; e < c->epochs; e++) {
        double t0 = ag_now(), ce = 0, toks = 0;
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = ag_rng_below(rng, (uint32_t)(i + 1));
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t r0 = 0; r0 < n; r0 += (size_t)bs) {
            if (stop && atomic_load(stop)) {
                rc = -ECANCELED;
                goto done;
            }
            int B = (int)(n - r0 < (size_t)bs ? n - r0 : (size_t)bs), T = 1;
            for (int k = 0; k < B; k++)
                if ((int)seqs[perm[r0 + k]].len - 1 > T)
                    T = (int)seqs[perm[r0 + k]].len - 1;
            for (int k = 0; k < B; k++) {
                const ag_seq_t *s = &seqs[perm[r0 + k]];
                const int L = (int)s->len - 1;
                for (int t = 0; t < T; t++) {
                    size_t o = (size_t)k * (size_t)T + (size_t)t;
                    tok[o] = t < L ? s->tokens[t] : AG_TOK_PAD;
                    tgt[o] = t < L ? s->tokens[t + 1] : AG_TOK_PAD;
                    mask[o] = t >= L ? 0.0f : s->generated[t + 1] ? 1.0f : c->obs_weight;
                }
            }
            rc = ag_model_forward(m, B, T, tok, 0);
            if (rc < 0)
                goto done;
            ag_model_zero_grad(m);
            ag_loss_batch_t lb = {.targets = tgt, .mask = mask};
            ag_loss_stats_t ls;
            rc = ag_loss_backward(loss, m, &lb, &lc, &ls);
            if (rc < 0)
                goto done;
            rc = ag_adamw_step(opt, m, NULL);
            if (rc == -ERANGE)
                rc = 0; /* a non-finite gradient is skipped */
            if (rc < 0)
                goto done;
            ce += ls.ce * ls.tokens;
            toks += ls.tokens;
        }
        double secs = ag_now() - t0;
        ag_info("warmstart", "epoch %d/%d: cross-entropy %.4f over %.0f tokens (%.1f s)", e + 1,
                c->epochs, toks > 0 ? ce / toks : 0.0, toks, secs);
        if (cb && cb(arg, e + 1, toks > 0 ? ce / toks : 0.0, toks, secs)) {
            rc = -ECANCELED;
            goto done;
        }
    }
done:
    ag_adamw_destroy(&opt);
    ag_loss_destroy(&loss);
    free(perm);
    free(tok);
    free(tgt);
    free(mask);
    return rc;
}
