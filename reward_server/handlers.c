/*
 * handlers.c - agora-reward's ROUTER, on the loop thread: Score runs a
 * forward pass on a serving copy of the model's weights (refreshed from the
 * trainer's published copy when it changed), Label validates labels and
 * stores them (held out or into the replay buffer, with their training
 * uses; a resent batch id is answered as before and learnt once), Stats
 * reads the counters and held-out figures.
 */
#include "reward_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "log.h"
#include "reward.pb-c.h"

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

const ag_limits_t ag_reward_limits = {
    .max_string = 256,
    .max_repeated = 32,
    .fields = s_fields,
    .n_fields = sizeof s_fields / sizeof s_fields[0],
};

static const char *s_text(const Agora__V1__ScoreItem *item)
{
    return item && item->transcript ? item->transcript : "";
}

bool ag_reward_weight_ok(float w)
{
    return isfinite(w) && w >= 0.0f;
}

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
    if (!p->a || !p->b || p->preferred > 1 || !ag_reward_weight_ok(p->weight))
        return NULL;
    const char *a = s_text(p->a), *b = s_text(p->b);
    slabel_t *l = ag_reward_label_new(AG_RM_PREFERENCE, (int)p->preferred, 0, p->weight, a, b, ctx);
    *oom = !l;
    return l;
}

static slabel_t *s_parse_outcome(const Agora__V1__Outcome *o, int ctx, bool *oom)
{
    if (!o->item || !isfinite(o->label) || o->label < 0.0f || o->label > 1.0f ||
        !ag_reward_weight_ok(o->weight))
        return NULL;
    slabel_t *l =
        ag_reward_label_new(AG_RM_OUTCOME, 0, o->label, o->weight, s_text(o->item), NULL, ctx);
    *oom = !l;
    return l;
}

static bool s_label_held_out(const ag_reward_service_t *s, const slabel_t *l,
                             const Agora__V1__Preference *p, const Agora__V1__Outcome *o)
{
    if (o)
        return ag_reward_held_out(s->o.holdout, AG_RM_OUTCOME, l->target, s_text(o->item), NULL);
    const char *a = s_text(p->a), *b = s_text(p->b);
    return ag_reward_held_out(s->o.holdout, AG_RM_PREFERENCE, 0, p->preferred ? b : a,
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
            dropped = ag_reward_ring_push(&m->held, got[i]);
        } else {
            dropped = ag_reward_ring_push(&m->buf, got[i]);
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
        const slabel_t *l = ag_reward_ring_at(&m->held, i);
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

void ag_reward_on_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                          size_t len, void *arg)
{
    ag_reward_service_t *s = arg;
    char why[256];
    Agora__V1__RewardRequest *req = (Agora__V1__RewardRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__reward_request__descriptor,
        &agora__v1__reward_reply__descriptor, &ag_reward_limits, why, sizeof why);
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
