/*
 * reward_service.c - the agora-reward service (see reward_service.h): requests on the loop
 * thread, training and held-out evaluation on the training thread,
 * checkpoints and resume.
 *
 * Labels are stored already cut to what the model reads (the last ctx - 1
 * bytes of each transcript), so a full buffer of the largest transcripts
 * costs at most buffer * 2 * ctx bytes per model. The trainer copies the
 * labels of a minibatch into its own staging area under the lock and
 * computes outside it, so the loop thread may drop a label from the buffer
 * at any time.
 */
#include "clock.h"
#include "reward_service.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "batch_ids.h"
#include "ckpt.h"
#include "codec.h"
#include "crc32.h"
#include "fsutil.h"
#include "log.h"
#include "optim.h"
#include "reward.pb-c.h"
#include "rm.h"
#include "rng.h"
#include "rpc.h"
#include "service.h" /* the host: common/net */
#include "sidecar.h"

#define PATH_LEN 4096
#define SCORE_CHUNK 32 /* sequences per scoring forward */
#define LOSS_WINDOW 32 /* steps in train_loss */
#define N_METRICS 12
#define STATE_FILE "reward-state.json"
#define STATE_FORMAT "agora-reward-state/1"

/* A stored label: the bytes the model reads of text 0, then of text 1. */
typedef struct slabel {
    uint64_t id;      /* held-out: consecutive per model */
    uint64_t eval_at; /* held-out: the model's update count when last evaluated */
    int8_t result;    /* held-out: -1 not evaluated yet, else 0/1 (got it right) */
    uint8_t kind;
    uint8_t preferred;
    float target;
    float weight;
    uint32_t len[2];
    uint8_t bytes[];
} slabel_t;

/* A ring of labels; pushing into a full ring drops the oldest. */
typedef struct ring {
    slabel_t **v;
    size_t cap, head, len;
} ring_t;

typedef struct rmodel {
    char name[AG_REWARD_MAX_NAME + 1];

    /* training thread (and create/destroy) */
    ag_rm_t *train;
    ag_adamw_t *opt;
    ag_rng_t rng;
    ag_rm_label_t *stage;   /* a minibatch or evaluation chunk */
    uint8_t *stage_bytes;   /* its transcripts */
    uint64_t *stage_ids;    /* its held-out ids */
    uint8_t *stage_correct; /* its evaluation results */
    size_t *pick;           /* sampled buffer positions */
    double last_eval;
    uint64_t eval_next; /* id of the held-out label the next evaluation starts at */

    /* loop thread */
    ag_rm_t *serve;
    uint64_t served; /* pub_serial of the weights in serve */
    float scores[AG_REWARD_MAX_ITEMS];
    ag_rm_text_t texts[AG_REWARD_MAX_ITEMS];

    /* shared, under the service's lock */
    float *published;
    uint64_t pub_serial;
    ring_t buf, held;
    uint64_t next_held_id;
    double credits; /* training uses owed to the buffer's labels */
    uint64_t version, labels, rejected, updates, failed_steps, duplicates;
    /* Written by the loop thread only, under the lock; so that thread reads
     * it without the lock, the trainer (checkpoints) under it. */
    ag_batch_ids_t *seen;
    float losses[LOSS_WINDOW];
    size_t n_losses;
} rmodel_t;

struct ag_reward_service {
    uv_loop_t *loop;
    ag_reward_opts_t o;
    char bind[512];
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char init[PATH_LEN];
    bool init_pending; /* reward.init does not exist yet: no training until it does */
    double init_checked;

    ag_rpc_server_t *rpc;
    /* the training thread, stop, time limit, checkpoint ticks, and the lock
     * and condition of what the models share */
    ag_service_t *svc;

    rmodel_t *models;
    size_t n_models;
};

static const ag_field_limit_t s_fields[] = {
    {&agora__v1__score_item__descriptor, "transcript", AG_REWARD_MAX_TRANSCRIPT},
    {&agora__v1__score_item__descriptor, "game", AG_REWARD_MAX_GAME},
    {&agora__v1__score_request__descriptor, "model", AG_REWARD_MAX_NAME},
    {&agora__v1__score_request__descriptor, "items", AG_REWARD_MAX_ITEMS},
    {&agora__v1__label_request__descriptor, "model", AG_REWARD_MAX_NAME},
    {&agora__v1__label_request__descriptor, "preferences", AG_REWARD_MAX_ITEMS},
    {&agora__v1__label_request__descriptor, "outcomes", AG_REWARD_MAX_ITEMS},
    {&agora__v1__label_request__descriptor, "batch_id", AG_BATCH_ID_MAX},
    {&agora__v1__reward_stats_request__descriptor, "model", AG_REWARD_MAX_NAME},
};

static const ag_limits_t s_limits = {
    .max_string = 256,
    .max_repeated = 32,
    .fields = s_fields,
    .n_fields = sizeof s_fields / sizeof s_fields[0],
};

/* ---------------------------------------------------------------- rings */

static int s_ring_init(ring_t *r, size_t cap)
{
    r->v = calloc(cap, sizeof *r->v);
    r->cap = cap;
    r->head = r->len = 0;
    return r->v ? 0 : -ENOMEM;
}

static slabel_t *s_ring_at(const ring_t *r, size_t i)
{
    return r->v[(r->head + i) % r->cap];
}

/* Appends x; returns the label it pushed out (to free), or NULL. */
static slabel_t *s_ring_push(ring_t *r, slabel_t *x)
{
    slabel_t *dropped = NULL;
    if (r->len == r->cap) {
        dropped = r->v[r->head];
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    r->v[(r->head + r->len) % r->cap] = x;
    r->len++;
    return dropped;
}

/* Frees every label, keeping the ring. */
static void s_ring_clear(ring_t *r)
{
    for (size_t i = 0; r->v && i < r->len; i++)
        free(s_ring_at(r, i));
    r->head = r->len = 0;
}

static void s_ring_finish(ring_t *r)
{
    s_ring_clear(r);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* --------------------------------------------------------------- labels */

static uint64_t s_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/*
 * Whether a label is held out: a hash of what it says (kind, target, the
 * preferred transcript then the other one, whole) against the fraction. A
 * preference and its mirror image (a and b swapped, preferred flipped) are
 * the same label and land on the same side.
 */
static bool s_held_out(double fraction, int kind, float target, const char *first,
                       const char *second)
{
    if (fraction <= 0)
        return false;
    uint64_t h = 0xcbf29ce484222325ULL;
    uint8_t k = (uint8_t)kind;
    h = s_fnv(h, &k, 1);
    if (kind == AG_RM_OUTCOME)
        h = s_fnv(h, &target, sizeof target);
    /* Indexed, not by pointer: first and second may be one string (two
     * empty transcripts decode to protobuf-c's shared ""). */
    const char *const texts[2] = {first, second};
    for (size_t i = 0; i < 2 && texts[i]; i++) {
        uint64_t n = strlen(texts[i]);
        h = s_fnv(h, &n, sizeof n);
        h = s_fnv(h, texts[i], n);
    }
    h ^= h >> 33; /* fmix64: FNV's low bits alone are poorly mixed */
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (double)(h >> 11) * (1.0 / 9007199254740992.0) < fraction;
}

/* A stored label of transcripts a (la bytes) and b (lb, 0 for an outcome),
 * keeping only what the model reads of each. */
static slabel_t *s_label_make(int kind, int preferred, float target, float weight, const uint8_t *a,
                              size_t la, const uint8_t *b, size_t lb, int ctx)
{
    size_t ka = ag_rm_kept_bytes(la, ctx), kb = ag_rm_kept_bytes(lb, ctx);
    slabel_t *l = malloc(sizeof *l + ka + kb);
    if (!l)
        return NULL;
    l->id = 0;
    l->eval_at = 0;
    l->result = -1;
    l->kind = (uint8_t)kind;
    l->preferred = (uint8_t)preferred;
    l->target = target;
    l->weight = weight > 0 ? weight : 1.0f;
    l->len[0] = (uint32_t)ka;
    l->len[1] = (uint32_t)kb;
    memcpy(l->bytes, a + (la - ka), ka);
    if (kb)
        memcpy(l->bytes + ka, b + (lb - kb), kb);
    return l;
}

static slabel_t *s_label_new(int kind, int preferred, float target, float weight, const char *a,
                             const char *b, int ctx)
{
    return s_label_make(kind, preferred, target, weight, (const uint8_t *)a, strlen(a),
                        (const uint8_t *)b, b ? strlen(b) : 0, ctx);
}

static const char *s_text(const Agora__V1__ScoreItem *item)
{
    return item && item->transcript ? item->transcript : "";
}

static bool s_weight_ok(float w)
{
    return isfinite(w) && w >= 0.0f;
}

/* Copies a stored label into the trainer's staging slot i. */
static void s_stage(rmodel_t *m, size_t i, const slabel_t *l, int ctx)
{
    uint8_t *dst = m->stage_bytes + i * 2 * (size_t)(ctx - 1);
    memcpy(dst, l->bytes, (size_t)l->len[0] + l->len[1]);
    ag_rm_label_t *x = &m->stage[i];
    x->kind = l->kind;
    x->preferred = l->preferred;
    x->target = l->target;
    x->weight = l->weight;
    x->text[0] = (ag_rm_text_t){dst, l->len[0]};
    x->text[1] = (ag_rm_text_t){dst + l->len[0], l->len[1]};
    m->stage_ids[i] = l->id;
}

/* ------------------------------------------------------------- requests */

static void s_error(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    Agora__V1__ErrorCode code, const char *msg)
{
    ag_debug("reward", "request %" PRIu64 ": %s: %s", rid, ag_error_name(code), msg);
    ag_rpc_reply_error(s->rpc, peer, &agora__v1__reward_reply__descriptor, rid, code, msg);
}

/* Sends a reply envelope whose body is set, under the request's id. */
static void s_reply(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    Agora__V1__RewardReply *rep)
{
    rep->protocol_version = AG_PROTOCOL_VERSION;
    rep->request_id = rid;
    ag_rpc_reply_msg(s->rpc, peer, &rep->base);
}

/* The model a request names, or NULL after answering why not. */
static rmodel_t *s_model(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                         const char *name)
{
    if (!name || !*name) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                "the request names no reward model");
        return NULL;
    }
    for (size_t i = 0; i < s->n_models; i++)
        if (!strcmp(s->models[i].name, name))
            return &s->models[i];
    char msg[320];
    snprintf(msg, sizeof msg, "no reward model named '%.64s' (reward.models = %.150s)", name,
             s->o.models);
    s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL, msg);
    return NULL;
}

/* Loads the trainer's latest weights into the serving copy if they changed. */
static void s_refresh(ag_reward_service_t *s, rmodel_t *m)
{
    ag_service_lock(s->svc);
    if (m->pub_serial != m->served) {
        ag_model_t *mm = ag_rm_model(m->serve);
        ag_model_load_params(mm, m->published, ag_model_num_params(mm));
        m->served = m->pub_serial;
        m->version++;
    }
    ag_service_unlock(s->svc);
}

static void s_score(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    const Agora__V1__ScoreRequest *sr)
{
    rmodel_t *m = s_model(s, peer, rid, sr->model);
    if (!m)
        return;
    if (sr->n_items == 0) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                "ScoreRequest.items is empty (1..256 items)");
        return;
    }
    for (size_t i = 0; i < sr->n_items; i++) {
        const char *t = s_text(sr->items[i]);
        m->texts[i] = (ag_rm_text_t){(const uint8_t *)t, strlen(t)};
    }
    s_refresh(s, m);
    int rc = ag_rm_score(m->serve, m->texts, sr->n_items, m->scores);
    if (rc < 0) {
        ag_error("reward", "scoring with model %s failed: %s", m->name, strerror(-rc));
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_INTERNAL, "scoring failed");
        return;
    }
    Agora__V1__ScoreReply sc = AGORA__V1__SCORE_REPLY__INIT;
    sc.n_scores = sr->n_items;
    sc.scores = m->scores;
    sc.model_version = m->version;
    Agora__V1__RewardReply rep = AGORA__V1__REWARD_REPLY__INIT;
    rep.body_case = AGORA__V1__REWARD_REPLY__BODY_SCORE;
    rep.score = &sc;
    s_reply(s, peer, rid, &rep);
}

/* Validates one preference or outcome into a stored label. Returns the
 * label, NULL for a rejected one, and sets *oom when out of memory. */
static slabel_t *s_parse_preference(const Agora__V1__Preference *p, int ctx, bool *oom)
{
    if (!p->a || !p->b || p->preferred > 1 || !s_weight_ok(p->weight))
        return NULL;
    const char *a = s_text(p->a), *b = s_text(p->b);
    slabel_t *l = s_label_new(AG_RM_PREFERENCE, (int)p->preferred, 0, p->weight, a, b, ctx);
    *oom = !l;
    return l;
}

static slabel_t *s_parse_outcome(const Agora__V1__Outcome *o, int ctx, bool *oom)
{
    if (!o->item || !isfinite(o->label) || o->label < 0.0f || o->label > 1.0f ||
        !s_weight_ok(o->weight))
        return NULL;
    slabel_t *l = s_label_new(AG_RM_OUTCOME, 0, o->label, o->weight, s_text(o->item), NULL, ctx);
    *oom = !l;
    return l;
}

static bool s_label_held_out(const ag_reward_service_t *s, const slabel_t *l,
                             const Agora__V1__Preference *p, const Agora__V1__Outcome *o)
{
    if (o)
        return s_held_out(s->o.holdout, AG_RM_OUTCOME, l->target, s_text(o->item), NULL);
    const char *a = s_text(p->a), *b = s_text(p->b);
    return s_held_out(s->o.holdout, AG_RM_PREFERENCE, 0, p->preferred ? b : a,
                      p->preferred ? a : b);
}

static void s_label_reply(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                          uint32_t accepted, uint32_t rejected, bool duplicate)
{
    Agora__V1__LabelReply lrep = AGORA__V1__LABEL_REPLY__INIT;
    lrep.accepted = accepted;
    lrep.rejected = rejected;
    lrep.duplicate = duplicate;
    Agora__V1__RewardReply rep = AGORA__V1__REWARD_REPLY__INIT;
    rep.body_case = AGORA__V1__REWARD_REPLY__BODY_LABEL;
    rep.label = &lrep;
    s_reply(s, peer, rid, &rep);
}

/*
 * A batch with a batch_id is remembered once its labels are taken (in the
 * same locked section, so a checkpoint holds both or neither); a resend of
 * it gets the first reply's counts again, flagged duplicate. A batch refused
 * as a whole is not remembered: its resend must be learnt.
 */
static void s_label(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    const Agora__V1__LabelRequest *lr)
{
    rmodel_t *m = s_model(s, peer, rid, lr->model);
    if (!m)
        return;
    const char *batch_id = lr->batch_id && *lr->batch_id ? lr->batch_id : NULL;
    if (batch_id && !ag_batch_id_valid(batch_id)) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                "LabelRequest.batch_id: at most 128 printable ASCII characters (0x20..0x7e)");
        return;
    }
    uint32_t first_accepted, first_rejected;
    if (batch_id && ag_batch_ids_find(m->seen, batch_id, &first_accepted, &first_rejected)) {
        ag_service_lock(s->svc);
        m->duplicates++;
        ag_service_unlock(s->svc);
        s_label_reply(s, peer, rid, first_accepted, first_rejected, true);
        return;
    }
    if (ag_service_stopping(s->svc)) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                "the reward server is stopping");
        return;
    }
    const int ctx = s->o.model.ctx;
    const size_t n = lr->n_preferences + lr->n_outcomes;
    slabel_t *got[2 * AG_REWARD_MAX_ITEMS];
    bool held[2 * AG_REWARD_MAX_ITEMS];
    size_t n_got = 0;
    uint32_t rejected = 0;
    bool oom = false;
    for (size_t i = 0; i < n && !oom; i++) {
        const Agora__V1__Preference *p = i < lr->n_preferences ? lr->preferences[i] : NULL;
        const Agora__V1__Outcome *o = p ? NULL : lr->outcomes[i - lr->n_preferences];
        slabel_t *l = p ? s_parse_preference(p, ctx, &oom) : s_parse_outcome(o, ctx, &oom);
        if (!l) {
            rejected += !oom;
            continue;
        }
        held[n_got] = s_label_held_out(s, l, p, o);
        got[n_got++] = l;
    }
    size_t n_train = 0;
    for (size_t i = 0; i < n_got; i++)
        n_train += !held[i];
    /* Backpressure: while training still owes uses, new labels are taken only
     * if what would then be owed fits a buffer's worth; otherwise they would
     * push out labels not yet trained on. An idle trainer takes anything. */
    const double reuse = s->o.reuse, full = (double)s->o.buffer * reuse;
    ag_service_lock(s->svc);
    bool overloaded =
        !oom && reuse > 0 && m->credits > 0 && m->credits + (double)n_train * reuse > full;
    if (oom || overloaded) {
        ag_service_unlock(s->svc);
        for (size_t i = 0; i < n_got; i++)
            free(got[i]);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                oom ? "out of memory"
                    : "training is a buffer of labels behind: back off and resend");
        return;
    }
    for (size_t i = 0; i < n_got; i++) {
        slabel_t *dropped;
        if (held[i]) {
            got[i]->id = m->next_held_id++;
            dropped = s_ring_push(&m->held, got[i]);
        } else {
            dropped = s_ring_push(&m->buf, got[i]);
            m->credits += reuse;
        }
        free(dropped);
    }
    /* Uses owed to labels that were pushed out are owed to no one. */
    if (m->credits > full)
        m->credits = full;
    m->labels += n_got;
    m->rejected += rejected;
    if (batch_id)
        ag_batch_ids_add(m->seen, batch_id, (uint32_t)n_got, rejected);
    if (n_got)
        ag_service_broadcast(s->svc);
    ag_service_unlock(s->svc);
    s_label_reply(s, peer, rid, (uint32_t)n_got, rejected, false);
}

/* One model's figures as Metric entries (under the lock); returns how many. */
static size_t s_metrics(const rmodel_t *m, Agora__V1__Metric *out)
{
    size_t pairs = 0, pairs_ok = 0, outs = 0, outs_ok = 0;
    for (size_t i = 0; i < m->held.len; i++) {
        const slabel_t *l = s_ring_at(&m->held, i);
        if (l->result < 0)
            continue;
        if (l->kind == AG_RM_PREFERENCE) {
            pairs++;
            pairs_ok += (size_t)l->result;
        } else {
            outs++;
            outs_ok += (size_t)l->result;
        }
    }
    double loss = 0;
    for (size_t i = 0; i < m->n_losses; i++)
        loss += m->losses[i];
    struct {
        const char *name;
        double value;
        bool present;
    } v[N_METRICS] = {
        {"pairwise_accuracy", pairs ? (double)pairs_ok / (double)pairs : 0, pairs > 0},
        {"heldout_pairs", (double)pairs, true},
        {"outcome_accuracy", outs ? (double)outs_ok / (double)outs : 0, outs > 0},
        {"heldout_outcomes", (double)outs, true},
        {"train_loss", m->n_losses ? loss / (double)m->n_losses : 0, m->n_losses > 0},
        {"buffer", (double)m->buf.len, true},
        {"heldout", (double)m->held.len, true},
        {"pending", m->credits > 0 ? ceil(m->credits) : 0, true},
        {"rejected", (double)m->rejected, true},
        {"failed_steps", (double)m->failed_steps, true},
        {"duplicates", (double)m->duplicates, true},
        {"batch_ids", (double)ag_batch_ids_count(m->seen), true},
    };
    size_t n = 0;
    for (size_t i = 0; i < N_METRICS; i++) {
        if (!v[i].present)
            continue;
        agora__v1__metric__init(&out[n]);
        out[n].name = (char *)v[i].name;
        out[n].value = v[i].value;
        n++;
    }
    return n;
}

static void s_stats(ag_reward_service_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    const Agora__V1__RewardStatsRequest *sr)
{
    rmodel_t *only = NULL;
    if (sr->model && *sr->model && !(only = s_model(s, peer, rid, sr->model)))
        return;
    Agora__V1__RewardModelStats ms[AG_REWARD_MAX_MODELS], *msp[AG_REWARD_MAX_MODELS];
    Agora__V1__Metric met[AG_REWARD_MAX_MODELS][N_METRICS];
    Agora__V1__Metric *metp[AG_REWARD_MAX_MODELS][N_METRICS];
    size_t n = 0;
    ag_service_lock(s->svc);
    for (size_t i = 0; i < s->n_models; i++) {
        const rmodel_t *m = &s->models[i];
        if (only && m != only)
            continue;
        agora__v1__reward_model_stats__init(&ms[n]);
        ms[n].name = (char *)m->name;
        ms[n].version = m->version;
        ms[n].labels = m->labels;
        ms[n].updates = m->updates;
        ms[n].n_metrics = s_metrics(m, met[n]);
        for (size_t k = 0; k < ms[n].n_metrics; k++)
            metp[n][k] = &met[n][k];
        ms[n].metrics = metp[n];
        msp[n] = &ms[n];
        n++;
    }
    ag_service_unlock(s->svc);
    Agora__V1__RewardStatsReply st = AGORA__V1__REWARD_STATS_REPLY__INIT;
    st.n_models = n;
    st.models = msp;
    Agora__V1__RewardReply rep = AGORA__V1__REWARD_REPLY__INIT;
    rep.body_case = AGORA__V1__REWARD_REPLY__BODY_STATS;
    rep.stats = &st;
    s_reply(s, peer, rid, &rep);
}

static void s_on_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                         size_t len, void *arg)
{
    ag_reward_service_t *s = arg;
    char why[256];
    Agora__V1__RewardRequest *req = (Agora__V1__RewardRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__reward_request__descriptor,
        &agora__v1__reward_reply__descriptor, &s_limits, why, sizeof why);
    if (!req) {
        ag_debug("reward", "refused a request: %s", why);
        return;
    }
    const uint64_t rid = req->request_id;
    if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_SCORE && req->score)
        s_score(s, peer, rid, req->score);
    else if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_LABEL && req->label)
        s_label(s, peer, rid, req->label);
    else if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_STATS && req->stats)
        s_stats(s, peer, rid, req->stats);
    else
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                "RewardRequest has no body (score, label or stats)");
    ag_codec_free(&req->base);
}

/* ------------------------------------------------------------- training */

static void s_path(char *dst, const char *dir, const char *name, const char *ext)
{
    if (snprintf(dst, PATH_LEN, "%s/%s%s", dir, name, ext) >= PATH_LEN)
        dst[PATH_LEN - 1] = '\0';
}

/* Picks k distinct positions of [0, n) (Floyd's algorithm), in m->pick. */
static void s_sample(rmodel_t *m, size_t n, size_t k)
{
    size_t got = 0;
    for (size_t j = n - k; j < n; j++) {
        size_t t = ag_rng_below(&m->rng, (uint32_t)(j + 1));
        for (size_t i = 0; i < got; i++)
            if (m->pick[i] == t) {
                t = j;
                break;
            }
        m->pick[got++] = t;
    }
}

/* One optimizer step for m if it has training owed. Returns 1 if it took
 * one, 0 if there was nothing to do. Training thread. */
static int s_train_one(ag_reward_service_t *s, rmodel_t *m)
{
    const int ctx = s->o.model.ctx;
    ag_service_lock(s->svc);
    if (m->credits <= 0 || m->buf.len == 0) {
        ag_service_unlock(s->svc);
        return 0;
    }
    size_t k = m->buf.len < (size_t)s->o.batch ? m->buf.len : (size_t)s->o.batch;
    s_sample(m, m->buf.len, k);
    for (size_t i = 0; i < k; i++)
        s_stage(m, i, s_ring_at(&m->buf, m->pick[i]), ctx);
    m->credits -= (double)k;
    ag_service_unlock(s->svc);

    ag_rm_stats_t st;
    int rc = ag_rm_train_step(m->train, m->opt, m->stage, k, &st);
    ag_model_t *mm = ag_rm_model(m->train);
    ag_service_lock(s->svc);
    if (rc == 0) {
        memcpy(m->published, ag_model_params_const(mm), ag_model_num_params(mm) * sizeof(float));
        m->pub_serial++;
        m->updates++;
        m->losses[m->n_losses < LOSS_WINDOW ? m->n_losses++ : m->updates % LOSS_WINDOW] =
            (float)st.loss;
    } else {
        m->failed_steps++;
    }
    const uint64_t failed = m->failed_steps;
    ag_service_unlock(s->svc);
    if (rc < 0 && (failed & (failed - 1)) == 0) /* 1st, 2nd, 4th, ... failure */
        ag_warn("reward", "model %s: training step skipped (%s); %" PRIu64 " so far", m->name,
                rc == -ERANGE ? "non-finite gradient" : strerror(-rc), failed);
    return 1;
}

static bool s_stale(const rmodel_t *m, const slabel_t *l)
{
    return l->result < 0 || l->eval_at != m->updates;
}

static bool s_has_stale(const rmodel_t *m)
{
    for (size_t i = 0; i < m->held.len; i++)
        if (s_stale(m, s_ring_at(&m->held, i)))
            return true;
    return false;
}

/*
 * Evaluates up to one batch of held-out labels whose result is older than
 * the current weights. Returns 1 if it evaluated any. Training thread.
 */
static int s_eval_chunk(ag_reward_service_t *s, rmodel_t *m)
{
    const int ctx = s->o.model.ctx;
    size_t k = 0;
    ag_service_lock(s->svc);
    const uint64_t at = m->updates;
    /* Round robin from where the last chunk stopped: while the model trains every
     * result goes stale at once, and the figures must still cover the whole set. */
    const size_t n = m->held.len;
    const uint64_t first_id = n ? s_ring_at(&m->held, 0)->id : 0;
    size_t start = n && m->eval_next >= first_id ? (size_t)((m->eval_next - first_id) % n) : 0;
    size_t j = 0;
    for (; j < n && k < (size_t)s->o.batch; j++) {
        const slabel_t *l = s_ring_at(&m->held, (start + j) % n);
        if (s_stale(m, l))
            s_stage(m, k++, l, ctx);
    }
    if (n)
        m->eval_next = s_ring_at(&m->held, (start + j) % n)->id;
    ag_service_unlock(s->svc);
    if (!k)
        return 0;
    int rc = ag_rm_evaluate(m->train, m->stage, k, m->stage_correct, NULL);
    m->last_eval = ag_now();
    if (rc < 0) {
        /* Count them as wrong rather than retry them forever. */
        ag_warn("reward", "model %s: held-out evaluation failed: %s", m->name, strerror(-rc));
        memset(m->stage_correct, 0, k);
    }
    ag_service_lock(s->svc);
    if (m->held.len) {
        const uint64_t first = s_ring_at(&m->held, 0)->id;
        for (size_t i = 0; i < k; i++) {
            /* the loop thread may have pushed it out meanwhile */
            uint64_t id = m->stage_ids[i];
            if (id < first || id - first >= m->held.len)
                continue;
            slabel_t *l = s_ring_at(&m->held, (size_t)(id - first));
            l->result = (int8_t)m->stage_correct[i];
            l->eval_at = at;
        }
    }
    ag_service_unlock(s->svc);
    return 1;
}

/* --------------------------------------------------------- saved labels */

/*
 * NAME.labels holds a model's replay buffer and held-out set, so a resumed
 * server trains on the labels it had and evaluates the same held-out set.
 * All integers little-endian:
 *
 *   "agoraL1\n", u32 count, count records, u32 CRC-32 of everything before;
 *   record: u8 set (0 buffer, 1 held out), u8 kind (0 outcome, 1 preference),
 *           u8 preferred, f32 target, f32 weight, then the transcripts as
 *           stored (already cut to what the model reads), each u32 length +
 *           bytes: one for an outcome, a then b for a preference.
 *
 * The buffer comes first, then the held-out set, each oldest first, so
 * pushing the records back in file order rebuilds both rings as they were.
 * That is all a stored label holds besides its held-out bookkeeping (id,
 * result), which is rebuilt: results belong to the weights, and a resumed
 * trainer evaluates the whole set again at once. The file is paired with
 * reward-state.json by its count and CRC-32, so one left by another
 * checkpoint (a crash between the two writes) is recognised.
 */
#define LABELS_MAGIC "agoraL1\n"
#define LABELS_MAGIC_LEN 8
#define RECORD_HEAD 11 /* set, kind, preferred, target, weight */

static int s_n_texts(int kind)
{
    return kind == AG_RM_PREFERENCE ? 2 : 1;
}

static size_t s_record_len(const slabel_t *l)
{
    size_t n = RECORD_HEAD;
    for (int t = 0; t < s_n_texts(l->kind); t++)
        n += 4 + (size_t)l->len[t];
    return n;
}

/* Bytes of m's NAME.labels image (under the lock). */
static size_t s_labels_len(const rmodel_t *m)
{
    size_t n = LABELS_MAGIC_LEN + 4 + 4;
    for (size_t i = 0; i < m->buf.len; i++)
        n += s_record_len(s_ring_at(&m->buf, i));
    for (size_t i = 0; i < m->held.len; i++)
        n += s_record_len(s_ring_at(&m->held, i));
    return n;
}

static uint8_t *s_put_record(uint8_t *p, const slabel_t *l, uint8_t set)
{
    p[0] = set;
    p[1] = l->kind;
    p[2] = l->preferred;
    ag_put_f32le(p + 3, l->target);
    ag_put_f32le(p + 7, l->weight);
    p += RECORD_HEAD;
    const uint8_t *src = l->bytes;
    for (int t = 0; t < s_n_texts(l->kind); t++) {
        ag_put_u32le(p, l->len[t]);
        memcpy(p + 4, src, l->len[t]);
        p += 4 + l->len[t];
        src += l->len[t];
    }
    return p;
}

/* What a checkpoint saves of one model besides its weights. */
typedef struct msave {
    uint64_t version, labels, updates, rejected, duplicates;
    double pending; /* training uses owed to the buffer */
    uint8_t *image; /* NAME.labels, the caller's to free */
    size_t len;
    uint32_t count, crc;
    ag_batch_id_t *ids; /* the batch ids remembered, oldest first; the caller's to free */
    size_t n_ids;
} msave_t;

/* Copies m's counters and owed uses into sv (under the lock). */
static void s_counters_copy(const rmodel_t *m, msave_t *sv)
{
    sv->version = m->version;
    sv->labels = m->labels;
    sv->updates = m->updates;
    sv->rejected = m->rejected;
    sv->duplicates = m->duplicates;
    sv->pending = m->credits > 0 ? m->credits : 0;
}

/*
 * Copies m's counters, owed uses, labels (as the NAME.labels image) and
 * batch ids at one instant. The loop thread adds labels and drops old ones
 * meanwhile, so this follows the trainer's discipline: copy under the lock,
 * nothing else. The copy is the image itself (a memcpy per label, no second
 * pass); its memory, and the batch ids', is allocated and faulted in outside
 * the lock at a size measured under it (labels that arrive in between cost
 * one more round), and the CRC and the write happen after. Returns 0,
 * -ENOMEM, or -EFBIG for more labels than the format counts.
 */
static int s_save_copy(ag_reward_service_t *s, rmodel_t *m, msave_t *sv)
{
    memset(sv, 0, sizeof *sv);
    size_t cap = 0, ids_cap = 0;
    uint8_t *b = NULL;
    ag_batch_id_t *ids = NULL;
    for (;;) {
        ag_service_lock(s->svc);
        const size_t need = s_labels_len(m), need_ids = ag_batch_ids_count(m->seen);
        if (need <= cap && need_ids <= ids_cap)
            break;
        ag_service_unlock(s->svc);
        if (need > cap) {
            free(b);
            cap = need + need / 8;
            b = malloc(cap);
            if (!b)
                goto oom;
            memset(b, 0, cap);
        }
        if (need_ids > ids_cap) {
            free(ids);
            ids_cap = need_ids + need_ids / 8;
            if (ids_cap > ag_batch_ids_cap(m->seen))
                ids_cap = ag_batch_ids_cap(m->seen);
            ids = malloc(ids_cap * sizeof *ids);
            if (!ids)
                goto oom;
            memset(ids, 0, ids_cap * sizeof *ids);
        }
    }
    const size_t count = m->buf.len + m->held.len;
    if (count > UINT32_MAX) {
        ag_service_unlock(s->svc);
        free(b);
        free(ids);
        return -EFBIG;
    }
    sv->n_ids = ag_batch_ids_count(m->seen);
    if (sv->n_ids)
        ag_batch_ids_copy(m->seen, ids);
    uint8_t *p = b;
    memcpy(p, LABELS_MAGIC, LABELS_MAGIC_LEN);
    ag_put_u32le(p + LABELS_MAGIC_LEN, (uint32_t)count);
    p += LABELS_MAGIC_LEN + 4;
    for (size_t i = 0; i < m->buf.len; i++)
        p = s_put_record(p, s_ring_at(&m->buf, i), 0);
    for (size_t i = 0; i < m->held.len; i++)
        p = s_put_record(p, s_ring_at(&m->held, i), 1);
    s_counters_copy(m, sv);
    ag_service_unlock(s->svc);

    sv->len = (size_t)(p - b) + 4;
    sv->crc = ag_crc32(0, b, sv->len - 4);
    ag_put_u32le(p, sv->crc);
    sv->image = b;
    sv->count = (uint32_t)count;
    sv->ids = ids;
    return 0;
oom:
    free(b);
    free(ids);
    return -ENOMEM;
}

/* One record of a NAME.labels image, pointing into it. */
typedef struct record {
    uint8_t set, kind, preferred;
    float target, weight;
    const uint8_t *text[2];
    uint32_t len[2];
} record_t;

/* Reads the record at *pos (the records end at end). Returns 0, or -1 when it
 * does not fit: the file's structure is broken, not just this label. */
static int s_record_read(const uint8_t *d, size_t end, size_t *pos, record_t *r)
{
    size_t p = *pos;
    if (end - p < RECORD_HEAD)
        return -1;
    r->set = d[p];
    r->kind = d[p + 1];
    r->preferred = d[p + 2];
    r->target = ag_get_f32le(d + p + 3);
    r->weight = ag_get_f32le(d + p + 7);
    p += RECORD_HEAD;
    /* The kind says how many transcripts follow: without it nothing after
     * this record can be found. */
    if (r->kind != AG_RM_OUTCOME && r->kind != AG_RM_PREFERENCE)
        return -1;
    r->text[1] = NULL;
    r->len[1] = 0;
    for (int t = 0; t < s_n_texts(r->kind); t++) {
        if (end - p < 4 || end - p - 4 < ag_get_u32le(d + p))
            return -1;
        r->len[t] = ag_get_u32le(d + p);
        r->text[t] = d + p + 4;
        p += 4 + r->len[t];
    }
    *pos = p;
    return 0;
}

/* Why a record would have been refused as a network label, or NULL. */
static const char *s_record_refused(const record_t *r)
{
    if (r->set > 1)
        return "set is neither 0 (buffer) nor 1 (held out)";
    if (!s_weight_ok(r->weight))
        return "weight is negative or not finite";
    if (r->kind == AG_RM_PREFERENCE && r->preferred > 1)
        return "preferred is neither 0 nor 1";
    if (r->kind == AG_RM_OUTCOME &&
        !(isfinite(r->target) && r->target >= 0.0f && r->target <= 1.0f))
        return "outcome label outside [0, 1]";
    /* fields a network label of that kind leaves at 0 */
    if ((r->kind == AG_RM_OUTCOME && r->preferred != 0) ||
        (r->kind == AG_RM_PREFERENCE && r->target != 0.0f))
        return "preferred set on an outcome, or target on a preference";
    for (int t = 0; t < s_n_texts(r->kind); t++) {
        if (r->len[t] > AG_REWARD_MAX_TRANSCRIPT)
            return "transcript longer than the protocol allows";
        /* a transcript crosses the wire as a C string: it cannot hold a NUL */
        if (r->len[t] && memchr(r->text[t], 0, r->len[t]))
            return "transcript holds a NUL byte";
    }
    return NULL;
}

/*
 * Checks a NAME.labels image: magic, CRC-32, every record inside the file
 * and the last one ending where the CRC starts. Returns 0 with its count
 * and CRC, or -1 with why.
 */
static int s_labels_check(const uint8_t *d, size_t len, uint32_t *count, uint32_t *crc, char *why,
                          size_t why_len)
{
    if (len < LABELS_MAGIC_LEN + 8 || memcmp(d, LABELS_MAGIC, LABELS_MAGIC_LEN)) {
        snprintf(why, why_len, "not a labels file (%zu bytes, bad magic or too short)", len);
        return -1;
    }
    const size_t end = len - 4;
    const uint32_t want = ag_get_u32le(d + end), got = ag_crc32(0, d, end);
    if (want != got) {
        snprintf(why, why_len,
                 "CRC-32 %08" PRIx32 " does not match the recorded %08" PRIx32 " (damaged or cut)",
                 got, want);
        return -1;
    }
    const uint32_t n = ag_get_u32le(d + LABELS_MAGIC_LEN);
    size_t pos = LABELS_MAGIC_LEN + 4;
    record_t r;
    for (uint32_t i = 0; i < n; i++)
        if (s_record_read(d, end, &pos, &r) < 0) {
            snprintf(why, why_len,
                     "record %" PRIu32 " of %" PRIu32 " has an unknown kind or runs past the end",
                     i, n);
            return -1;
        }
    if (pos != end) {
        snprintf(why, why_len, "%zu bytes after the last record", end - pos);
        return -1;
    }
    *count = n;
    *crc = got;
    return 0;
}

/*
 * Writes, per model, NAME.ckpt and NAME.labels, then reward-state.json,
 * which records each NAME.labels by count and CRC-32: each file is atomic,
 * and the state file, written last, says which labels file belongs to it.
 * A model whose labels could not be saved gets no record, so a resume
 * starts it with no labels rather than with another checkpoint's.
 */
static int s_checkpoint(ag_reward_service_t *s)
{
    char path[PATH_LEN], err[512];
    int rc = 0;
    json_t *models = json_object();
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        msave_t sv;
        int cr = s_save_copy(s, m, &sv);
        if (cr < 0) {
            ag_error("reward", "checkpoint: the labels of model %s: %s", m->name, strerror(-cr));
            rc = -EIO;
            ag_service_lock(s->svc);
            s_counters_copy(m, &sv);
            ag_service_unlock(s->svc);
        }
        s_path(path, s->out, m->name, ".ckpt");
        if (ag_ckpt_save(path, ag_rm_model(m->train), m->opt, sv.updates, err, sizeof err) < 0) {
            ag_error("reward", "checkpoint: %s", err);
            free(sv.image);
            free(sv.ids);
            rc = -EIO;
            continue;
        }
        json_t *j = json_pack(
            "{s:o,s:o,s:o,s:o,s:o}", "version", ag_sidecar_u64_new(sv.version), "labels",
            ag_sidecar_u64_new(sv.labels), "updates", ag_sidecar_u64_new(sv.updates), "rejected",
            ag_sidecar_u64_new(sv.rejected), "duplicates", ag_sidecar_u64_new(sv.duplicates));
        /* Without its copy (out of memory) the model gets no list, and a
         * resume warns that its memory of batches is lost. */
        if (cr == 0)
            json_object_set_new(j, "batches", ag_batch_ids_json(sv.ids, sv.n_ids));
        free(sv.ids);
        if (sv.image) {
            s_path(path, s->out, m->name, ".labels");
            int wr = ag_write_atomic(path, sv.image, sv.len);
            if (wr < 0) {
                ag_error("reward", "checkpoint: %s: %s", path, strerror(-wr));
                rc = -EIO;
            } else {
                json_object_set_new(j, "label_file",
                                    json_pack("{s:I,s:I,s:f}", "count", (json_int_t)sv.count,
                                              "crc32", (json_int_t)sv.crc, "pending", sv.pending));
            }
            free(sv.image);
        }
        json_object_set_new(models, m->name, j);
    }
    json_t *root = json_pack("{s:o}", "models", models);
    s_path(path, s->out, STATE_FILE, "");
    char why[PATH_LEN + 256];
    int wr = root ? ag_sidecar_save(path, STATE_FORMAT, root, why, sizeof why) : -ENOMEM;
    json_decref(root);
    if (wr < 0) {
        ag_error("reward", "%s", root ? why : "checkpoint: out of memory");
        rc = wr;
    }
    if (rc == 0)
        ag_info("reward", "checkpoint: %zu model%s in %s", s->n_models, s->n_models == 1 ? "" : "s",
                s->out);
    return rc;
}

/* Whether the trainer has anything to do (under the lock). */
static bool s_has_work(const ag_reward_service_t *s)
{
    for (size_t i = 0; i < s->n_models; i++) {
        const rmodel_t *m = &s->models[i];
        if ((m->credits > 0 && m->buf.len) || s_has_stale(m))
            return true;
    }
    return false;
}

/*
 * Starts every model that was not resumed from the policy checkpoint
 * reward.init: its trunk already reads the game (the reward model of RLHF
 * starts from the supervised policy the same way). Returns 0, or -1 when the
 * file cannot be used.
 */
static int s_load_init(ag_reward_service_t *s)
{
    char err[512];
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        if (m->updates > 0)
            continue; /* resumed: its own weights win */
        ag_model_t *mm = ag_rm_model(m->train);
        if (ag_ckpt_load_into(s->init, mm, NULL, NULL, err, sizeof err) < 0) {
            ag_error("reward", "reward.init: model %s: %s", m->name, err);
            return -1;
        }
        ag_service_lock(s->svc);
        memcpy(m->published, ag_model_params_const(mm), ag_model_num_params(mm) * sizeof(float));
        m->pub_serial++;
        ag_service_unlock(s->svc);
    }
    ag_info("reward", "models start from %s", s->init);
    return 0;
}

/* Training waits for reward.init: the learner writes it when its warm start ends. */
static bool s_waiting_for_init(ag_reward_service_t *s)
{
    if (!s->init_pending)
        return false;
    const double now = ag_now();
    if (now - s->init_checked < 1.0)
        return true;
    s->init_checked = now;
    if (access(s->init, R_OK) != 0)
        return true;
    if (s_load_init(s) < 0)
        ag_warn("reward", "training goes on from fresh weights");
    s->init_pending = false;
    return false;
}

static void s_trainer(ag_service_t *svc, void *arg)
{
    ag_reward_service_t *s = arg;
    size_t rr = s->n_models - 1;
    for (;;) {
        if (ag_service_stopping(s->svc))
            break;
        if (ag_service_checkpoint_take(s->svc))
            s_checkpoint(s);
        if (s_waiting_for_init(s)) {
            ag_service_lock(s->svc);
            if (!ag_service_stopping(s->svc) && !ag_service_checkpoint_due(s->svc))
                ag_service_wait(s->svc, 0.25);
            ag_service_unlock(s->svc);
            continue;
        }
        /* one step, for the next model (round-robin) that has training owed */
        size_t trained = s->n_models;
        for (size_t k = 1; k <= s->n_models; k++) {
            size_t i = (rr + k) % s->n_models;
            if (s_train_one(s, &s->models[i])) {
                rr = trained = i;
                break;
            }
        }
        /* Held-out figures: at most once a second per model while it trains,
         * continuously while it is idle until they match its weights. */
        bool evaluated = false;
        const double now = ag_now();
        for (size_t i = 0; i < s->n_models; i++) {
            rmodel_t *m = &s->models[i];
            ag_service_lock(s->svc);
            bool busy = i == trained || (m->credits > 0 && m->buf.len);
            ag_service_unlock(s->svc);
            if (busy && now - m->last_eval < 1.0)
                continue;
            evaluated |= s_eval_chunk(s, m) > 0;
        }
        if (trained < s->n_models || evaluated)
            continue;
        ag_service_lock(s->svc);
        if (!ag_service_stopping(s->svc) && !ag_service_checkpoint_due(s->svc) && !s_has_work(s))
            ag_service_wait(s->svc, 0.5);
        ag_service_unlock(s->svc);
    }
    if (s_checkpoint(s) < 0)
        ag_service_fail(svc, "the final checkpoint could not be written");
}

/* ------------------------------------------------------------ lifecycle */

/* Once the trainer has ended: the socket closes, so the loop ends. */
static void s_on_stopped(void *arg)
{
    ag_reward_service_t *s = arg;
    ag_rpc_server_destroy(&s->rpc);
}

void ag_reward_service_stop(ag_reward_service_t *s)
{
    if (s->svc)
        ag_service_stop(s->svc);
}

int ag_reward_service_exit_code(const ag_reward_service_t *s)
{
    return ag_service_exit_code(s ? s->svc : NULL);
}

const char *ag_reward_service_endpoint(const ag_reward_service_t *s)
{
    return s->rpc ? ag_rpc_server_endpoint(s->rpc) : "";
}

/* Splits o->models into s->models[].name; 0 or -1 after logging why. */
static int s_parse_names(ag_reward_service_t *s)
{
    const char *p = s->o.models;
    size_t n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        while (len && *p == ' ') {
            p++;
            len--;
        }
        while (len && p[len - 1] == ' ')
            len--;
        if (len == 0 || len > AG_REWARD_MAX_NAME ||
            strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") < len ||
            p[0] == '.') {
            ag_error("reward",
                     "reward.models: '%s': each name is 1..%d letters, digits, '_', '-' or '.' "
                     "(not starting with '.'), comma-separated",
                     s->o.models, AG_REWARD_MAX_NAME);
            return -1;
        }
        if (n == AG_REWARD_MAX_MODELS) {
            ag_error("reward", "reward.models: at most %d models", AG_REWARD_MAX_MODELS);
            return -1;
        }
        memcpy(s->models[n].name, p, len);
        s->models[n].name[len] = '\0';
        for (size_t i = 0; i < n; i++)
            if (!strcmp(s->models[i].name, s->models[n].name)) {
                ag_error("reward", "reward.models: '%s' is named twice", s->models[n].name);
                return -1;
            }
        n++;
        p += strcspn(p, ",");
        if (!*p)
            break;
        p++;
    }
    s->n_models = n;
    return 0;
}

static int s_model_init(ag_reward_service_t *s, rmodel_t *m, size_t index)
{
    const ag_reward_opts_t *o = &s->o;
    const uint64_t seed = o->seed + 0x9e3779b97f4a7c15ULL * index;
    m->train = ag_rm_create(&o->model, seed, o->threads, 2 * o->batch);
    m->serve = ag_rm_create(&o->model, seed, o->score_threads, SCORE_CHUNK);
    if (!m->train || !m->serve)
        return -ENOMEM;
    ag_adamw_config_t ac;
    ag_adamw_config_default(&ac);
    ac.lr = (float)o->lr;
    m->opt = ag_adamw_create(ag_rm_model(m->train), &ac);
    ag_rng_seed(&m->rng, seed ^ 0x5245574152444bULL);
    const size_t np = ag_model_num_params(ag_rm_model(m->train));
    const size_t per = 2 * (size_t)(o->model.ctx - 1);
    m->published = malloc(np * sizeof(float));
    m->stage = calloc((size_t)o->batch, sizeof *m->stage);
    m->stage_bytes = malloc((size_t)o->batch * per + 1);
    m->stage_ids = calloc((size_t)o->batch, sizeof *m->stage_ids);
    m->stage_correct = calloc((size_t)o->batch, 1);
    m->pick = calloc((size_t)o->batch, sizeof *m->pick);
    if (!m->opt || !m->published || !m->stage || !m->stage_bytes || !m->stage_ids ||
        !m->stage_correct || !m->pick || s_ring_init(&m->buf, (size_t)o->buffer) < 0 ||
        s_ring_init(&m->held, AG_REWARD_HELDOUT_MAX) < 0 ||
        !(m->seen = ag_batch_ids_create(AG_REWARD_BATCH_IDS)))
        return -ENOMEM;
    return 0;
}

/* The counters of m's entry j of reward-state.json (NULL: none saved); a
 * damaged one fails the resume, with the reason in sc. */
static int s_state_counters(ag_sidecar_t *sc, const json_t *j, rmodel_t *m)
{
    if (!j)
        return 0;
    if (!json_is_object(j))
        return ag_sidecar_bad(sc, m->name, "an object");
    ag_sidecar_u64(sc, j, "version", UINT64_MAX, &m->version);
    ag_sidecar_u64(sc, j, "labels", UINT64_MAX, &m->labels);
    ag_sidecar_u64(sc, j, "rejected", UINT64_MAX, &m->rejected);
    /* a state file written before duplicates were counted has none */
    if (json_object_get(j, "duplicates"))
        ag_sidecar_u64(sc, j, "duplicates", UINT64_MAX, &m->duplicates);
    return ag_sidecar_ok(sc) ? 0 : -EINVAL;
}

/*
 * Puts back the batch ids m had accepted, from its entry j of
 * reward-state.json: their labels are in the resumed buffer or weights, so
 * a resend must still be a duplicate. A list that is missing or damaged is a
 * warning and an empty memory, never a failed resume. Called before the
 * threads start.
 */
static void s_restore_batches(rmodel_t *m, const json_t *j)
{
    const json_t *list = json_object_get(j, "batches");
    char why[160];
    if (!list) {
        ag_warn("reward",
                "resume: %s has no batch ids for model %s: a Label resent from before the "
                "checkpoint would be learnt again",
                STATE_FILE, m->name);
        return;
    }
    if (ag_batch_ids_load(m->seen, list, 2 * AG_REWARD_MAX_ITEMS, why, sizeof why) < 0) {
        ag_warn("reward",
                "resume: %s: model %s: \"batches\": %s; it starts with no batch ids (a Label "
                "resent from before the checkpoint would be learnt again)",
                STATE_FILE, m->name, why);
        return;
    }
    if (json_array_size(list) > ag_batch_ids_count(m->seen))
        ag_info("reward", "resume: model %s: the oldest %zu batch ids do not fit the memory of %zu",
                m->name, json_array_size(list) - ag_batch_ids_count(m->seen),
                ag_batch_ids_cap(m->seen));
}

/*
 * Puts the labels of DIR/NAME.labels back into m's buffer and held-out set,
 * with the training uses the buffer was owed, as recorded in m's entry j of
 * reward-state.json. A file that is missing, damaged or not the one j
 * records (another checkpoint's) is a warning and leaves m with no labels;
 * so is running out of memory. A record that fails the checks of a network
 * label is skipped with a warning. A buffer saved larger than reward.buffer
 * keeps its newest labels. The uses owed come back as saved but at most
 * reward.reuse per label kept, the same cap Label keeps, so no use is owed
 * to a label that is gone. Called before the threads start.
 */
static void s_restore_labels(ag_reward_service_t *s, ag_sidecar_t *sc, rmodel_t *m, const json_t *j)
{
    const json_t *rec = json_object_get(j, "label_file");
    if (!rec) {
        ag_warn("reward",
                "resume: %s has no saved labels for model %s: its buffer and held-out set "
                "start empty",
                STATE_FILE, m->name);
        return;
    }
    uint64_t count = 0, crc32 = 0;
    double pending = 0;
    ag_sidecar_u64(sc, rec, "count", UINT32_MAX, &count);
    ag_sidecar_u64(sc, rec, "crc32", UINT32_MAX, &crc32);
    ag_sidecar_number(sc, rec, "pending", 0, HUGE_VAL, &pending);
    char damage[1024];
    if (ag_sidecar_forgive(sc, damage, sizeof damage)) {
        ag_warn("reward",
                "resume: model %s: bad \"label_file\" (%s): its buffer and held-out set start "
                "empty",
                m->name, damage);
        return;
    }
    const uint32_t want_n = (uint32_t)count;
    const uint32_t want_crc = (uint32_t)crc32;
    if (want_n == 0)
        return;

    char path[PATH_LEN], why[256];
    s_path(path, s->resume, m->name, ".labels");
    uint8_t *d = NULL;
    size_t len = 0;
    uint32_t n = 0, crc = 0;
    int rc = ag_read_file(path, &d, &len);
    if (rc < 0) {
        snprintf(why, sizeof why, "%s", strerror(-rc));
    } else if ((rc = s_labels_check(d, len, &n, &crc, why, sizeof why)) == 0 &&
               (n != want_n || crc != want_crc)) {
        snprintf(why, sizeof why,
                 "holds %" PRIu32 " labels (CRC-32 %08" PRIx32 ") but %s was saved with %" PRIu32
                 " (%08" PRIx32 "): not the same checkpoint",
                 n, crc, STATE_FILE, want_n, want_crc);
        rc = -1;
    }
    if (rc < 0) {
        ag_warn("reward", "resume: %s: %s; model %s starts with no labels (%" PRIu32 " lost)", path,
                why, m->name, want_n);
        free(d);
        return;
    }

    const int ctx = s->o.model.ctx;
    size_t pos = LABELS_MAGIC_LEN + 4, skipped = 0, dropped = 0;
    const char *first = NULL;
    bool oom = false;
    for (uint32_t i = 0; i < n && !oom; i++) {
        record_t r;
        s_record_read(d, len - 4, &pos, &r); /* s_labels_check walked them all */
        const char *bad = s_record_refused(&r);
        if (bad) {
            if (!skipped++)
                first = bad;
            continue;
        }
        slabel_t *l = s_label_make(r.kind, r.preferred, r.target, r.weight, r.text[0], r.len[0],
                                   r.text[1], r.len[1], ctx);
        if (!l) {
            oom = true;
            break;
        }
        slabel_t *out;
        if (r.set) {
            l->id = m->next_held_id++;
            out = s_ring_push(&m->held, l);
        } else {
            out = s_ring_push(&m->buf, l);
        }
        dropped += out != NULL;
        free(out);
    }
    free(d);
    if (oom) {
        s_ring_clear(&m->buf);
        s_ring_clear(&m->held);
        m->next_held_id = 0;
        ag_warn("reward", "resume: %s: out of memory; model %s starts with no labels", path,
                m->name);
        return;
    }
    if (skipped)
        ag_warn("reward", "resume: %s: %zu of %" PRIu32 " labels skipped (the first: %s)", path,
                skipped, n, first);
    if (dropped)
        ag_info("reward", "resume: %s: the oldest %zu labels do not fit reward.buffer = %ld", path,
                dropped, s->o.buffer);
    const double most = (double)m->buf.len * s->o.reuse;
    m->credits = pending < most ? pending : most;
    ag_info("reward",
            "resume: model %s: %zu labels in the buffer (%.0f training uses owed), %zu held out",
            m->name, m->buf.len, ceil(m->credits), m->held.len);
}

/* Loads DIR/NAME.ckpt for the models that have one, with their counters and labels. */
static int s_resume(ag_reward_service_t *s)
{
    char path[PATH_LEN], err[512];
    ag_sidecar_t sc;
    s_path(path, s->resume, STATE_FILE, "");
    /* Files written before the format member existed are its first version. */
    int rc = ag_sidecar_open(&sc, path, STATE_FORMAT, AG_SIDECAR_UNTAGGED_OK);
    const json_t *models = NULL;
    if (rc == -ENOENT) {
        ag_warn("reward",
                "resume: no %s: counters start from the checkpoints, buffers and held-out "
                "sets empty",
                path);
    } else if (rc < 0 || !(models = ag_sidecar_object(&sc, NULL, "models"))) {
        ag_error("reward", "resume: %s", sc.err);
        ag_sidecar_close(&sc);
        return -1;
    }
    size_t loaded = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        rmodel_t *m = &s->models[i];
        s_path(path, s->resume, m->name, ".ckpt");
        if (access(path, F_OK) != 0) {
            ag_info("reward", "resume: no %s: model %s starts fresh", path, m->name);
            continue;
        }
        ag_ckpt_info_t info;
        ag_model_t *mm = ag_rm_model(m->train);
        if (ag_ckpt_load_into(path, mm, m->opt, &info, err, sizeof err) < 0) {
            ag_error("reward", "resume: model %s: %s", m->name, err);
            ag_sidecar_close(&sc);
            return -1;
        }
        m->updates = info.step;
        const json_t *j = models ? json_object_get(models, m->name) : NULL;
        if (s_state_counters(&sc, j, m) < 0) {
            ag_error("reward", "resume: %s", sc.err);
            ag_sidecar_close(&sc);
            return -1;
        }
        if (models) {
            s_restore_labels(s, &sc, m, j);
            s_restore_batches(m, j);
        }
        loaded++;
    }
    ag_sidecar_close(&sc);
    ag_info("reward", "resumed %zu of %zu models from %s", loaded, s->n_models, s->resume);
    return 0;
}

static int s_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    ag_error("reward", "mkdir %s: %s", path, strerror(errno));
    return -1;
}

ag_reward_service_t *ag_reward_service_create(uv_loop_t *loop, void *zctx,
                                              const ag_reward_opts_t *o)
{
    char err[256];
    if (ag_model_config_check(&o->model, err, sizeof err) < 0) {
        ag_error("reward", "model shape: %s", err);
        return NULL;
    }
    if (o->model.vocab != AG_VOCAB_SIZE || o->batch < 1 || o->buffer < 1 || !(o->reuse >= 0) ||
        !(o->holdout >= 0 && o->holdout <= 1) || !(o->lr > 0)) {
        ag_error("reward", "bad options (vocab, batch, buffer, reuse, holdout or lr)");
        return NULL;
    }
    if (strlen(o->out) > PATH_LEN - 128 || (o->resume && strlen(o->resume) > PATH_LEN - 128) ||
        (o->init && strlen(o->init) >= PATH_LEN) || strlen(o->bind) >= 512) {
        ag_error("reward", "reward.bind / reward.out / reward.resume: too long");
        return NULL;
    }
    ag_reward_service_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->o = *o;
    snprintf(s->bind, sizeof s->bind, "%s", o->bind);
    snprintf(s->out, sizeof s->out, "%s", o->out);
    snprintf(s->resume, sizeof s->resume, "%s", o->resume ? o->resume : "");
    snprintf(s->init, sizeof s->init, "%s", o->init ? o->init : "");
    s->o.init = s->init;
    s->o.bind = s->bind;
    s->o.out = s->out;
    s->o.resume = s->resume;
    s->o.models = NULL;
    const ag_service_config_t sc = {.name = "reward",
                                    .max_seconds = o->max_seconds,
                                    .checkpoint_interval_s = o->checkpoint_interval_s,
                                    .signals = o->signals,
                                    .work = s_trainer,
                                    .on_stopped = s_on_stopped,
                                    .arg = s};
    s->svc = ag_service_create(loop, &sc);
    s->models = calloc(AG_REWARD_MAX_MODELS, sizeof *s->models);
    char *names = strdup(o->models ? o->models : "");
    s->o.models = names;
    if (!s->svc || !s->models || !names || s_parse_names(s) < 0)
        goto fail;
    for (size_t i = 0; i < s->n_models; i++)
        if (s_model_init(s, &s->models[i], i) < 0) {
            ag_error("reward", "cannot create model %s: out of memory", s->models[i].name);
            goto fail;
        }
    if (s_mkdir(s->out) < 0 || (s->resume[0] && s_resume(s) < 0))
        goto fail;
    if (s->init[0] && access(s->init, R_OK) == 0) {
        if (s_load_init(s) < 0)
            goto fail;
    } else if (s->init[0]) {
        ag_info("reward", "training waits for %s", s->init);
        s->init_pending = true;
    }
    /* Serving starts from the trainer's weights, resumed or fresh. */
    for (size_t i = 0; i < s->n_models; i++) {
        const ag_model_t *mm = ag_rm_model(s->models[i].train);
        const size_t np = ag_model_num_params(mm);
        memcpy(s->models[i].published, ag_model_params_const(mm), np * sizeof(float));
        ag_model_load_params(ag_rm_model(s->models[i].serve), s->models[i].published, np);
    }

    ag_zsock_opts_t zo = {.maxmsgsize = AG_REWARD_MAX_MESSAGE};
    s->rpc = ag_rpc_server_create(loop, zctx, s->bind, &zo, s_on_request, s);
    if (!s->rpc) {
        ag_error("reward", "cannot bind %s", s->bind);
        goto fail;
    }
    if (ag_service_start(s->svc) < 0)
        return s; /* closing, exit code 1: the loop closes the handles */
    ag_info("reward", "serving %zu model%s (%s; d_model %d, n_layers %d, ctx %d) on %s",
            s->n_models, s->n_models == 1 ? "" : "s", s->o.models, o->model.d_model,
            o->model.n_layers, o->model.ctx, ag_rpc_server_endpoint(s->rpc));
    return s;
fail:
    ag_reward_service_destroy(&s);
    return NULL;
}

void ag_reward_service_destroy(ag_reward_service_t **self)
{
    if (!self || !*self)
        return;
    ag_reward_service_t *s = *self;
    ag_service_destroy(&s->svc);
    for (size_t i = 0; s->models && i < AG_REWARD_MAX_MODELS; i++) {
        rmodel_t *m = &s->models[i];
        ag_rm_destroy(&m->train);
        ag_rm_destroy(&m->serve);
        ag_adamw_destroy(&m->opt);
        free(m->published);
        free(m->stage);
        free(m->stage_bytes);
        free(m->stage_ids);
        free(m->stage_correct);
        free(m->pick);
        s_ring_finish(&m->buf);
        s_ring_finish(&m->held);
        ag_batch_ids_destroy(&m->seen);
    }
    free(s->models);
    free((char *)s->o.models);
    free(s);
    *self = NULL;
}
