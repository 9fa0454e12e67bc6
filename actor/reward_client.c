/*
 * reward_client.c - the asynchronous reward-service client (see
 * reward_client.h).
 *
 * Three queues: score groups waiting to be sent (FIFO), labels waiting to
 * be sent (FIFO, bounded), and the requests in flight, each a batch that
 * owns what it carries until its answer (or its final timeout, which puts
 * the contents back at the front of their queue). A label remembers the
 * batch it first went out in, so labels put back are sent again together,
 * under that batch's id, and never mixed with new ones. The server is either up
 * (work is sent) or down (only a RewardStats probe is sent, every
 * retry_ms): sending work to a server that is away would only pile copies
 * of it in the socket's queue, to be delivered all at once when it returns.
 */
#include "reward_client.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "fsutil.h"
#include "log.h"
#include "reward.pb-c.h"
#include "rng.h"
#include "rpc.h"

#define MAX_REQUEST_TEXT (8u << 20) /* transcript bytes per request: well below 16 MiB */
/* Room for the actor id in a batch id of at most 128 bytes: "/", 16 hex
 * digits, "/", up to 20 digits. */
#define BATCH_ACTOR_MAX 90

typedef struct group {
    struct group *next;
    ag_reward_score_cb done;
    void *arg;
    char *game;
    size_t n;
    char *text[AG_REWARD_MAX_SEATS];
    uint32_t seat[AG_REWARD_MAX_SEATS];
    size_t bytes;
} group_t;

typedef struct label {
    struct label *next;
    bool preference;
    char *game;
    char *text[2]; /* outcome: [0] only; preference: a, b */
    uint32_t seat[2];
    uint32_t preferred;
    float value;
    size_t bytes;
    uint64_t batch; /* 1 + the n of the batch it went out in; 0 = not sent yet */
} label_t;

typedef struct batch {
    ag_reward_client_t *c;
    group_t *groups; /* in request order */
    size_t n_items;
    label_t *labels; /* in queue order */
    size_t n_labels;
} batch_t;

struct ag_reward_client {
    uv_loop_t *loop;
    ag_reward_client_opts_t opts;
    char *endpoint;
    char model[AG_REWARD_MAX_NAME + 1];
    ag_rpc_client_t *rpc;
    uv_timer_t batch_timer, retry_timer, backoff_timer;
    int open_handles;
    bool closing;
    bool up, backoff, probing;
    group_t *todo, *todo_tail;
    size_t todo_items;
    size_t scoring; /* groups queued or in flight */
    int score_inflight;
    label_t *labels, *labels_tail;
    size_t n_labels, label_bytes;
    size_t labels_inflight;
    bool label_busy;
    uint64_t dropped_in_burst;
    uint64_t last_overload_log;
    char actor_id[BATCH_ACTOR_MAX + 1];
    uint64_t run_id;
    uint64_t batches; /* label batches formed so far */
    ag_reward_client_stats_t st;
    /* request scratch, reused: rpc packs a request before ag_rpc_call returns */
    Agora__V1__ScoreItem items[2 * AG_REWARD_MAX_ITEMS + AG_REWARD_MAX_ITEMS];
    Agora__V1__ScoreItem *item_ptrs[AG_REWARD_MAX_ITEMS];
    Agora__V1__Preference prefs[AG_REWARD_MAX_ITEMS];
    Agora__V1__Preference *pref_ptrs[AG_REWARD_MAX_ITEMS];
    Agora__V1__Outcome outcomes[AG_REWARD_MAX_ITEMS];
    Agora__V1__Outcome *outcome_ptrs[AG_REWARD_MAX_ITEMS];
};

/* Replies are small: scores for at most 256 items, stats, an Error. */
static const ag_limits_t s_reply_limits = {.max_string = 4096, .max_repeated = 4096};

static void s_pump_scores(ag_reward_client_t *c);
static void s_pump_labels(ag_reward_client_t *c);
static void s_on_batch_timer(uv_timer_t *t);

/* ---- labels of a game (pure) ---- */

bool ag_reward_game_pair(int n_seats, const float *returns, const bool *has_text, int *winner,
                         int *loser)
{
    if (n_seats != 2 || !has_text[0] || !has_text[1] || !isfinite(returns[0]) ||
        !isfinite(returns[1]) || returns[0] == returns[1])
        return false;
    *winner = returns[0] > returns[1] ? 0 : 1;
    *loser = 1 - *winner;
    return true;
}

int ag_reward_game_labels(ag_reward_labels_t mode, int n_seats, const float *returns,
                          const bool *has_text, ag_reward_label_t *out)
{
    int n = 0;
    if (mode == AG_REWARD_LABELS_OUTCOMES) {
        for (int s = 0; s < n_seats && s < AG_REWARD_MAX_SEATS; s++) {
            if (!has_text[s] || !(returns[s] != 0.0f) || !isfinite(returns[s]))
                continue;
            out[n++] = (ag_reward_label_t){
                .preference = false, .seat = s, .other = -1, .label = returns[s] > 0 ? 1.0f : 0.0f};
        }
    } else if (mode == AG_REWARD_LABELS_PREFERENCES) {
        int w, l;
        if (ag_reward_game_pair(n_seats, returns, has_text, &w, &l))
            out[n++] = (ag_reward_label_t){.preference = true, .seat = w, .other = l, .label = 1};
    }
    return n;
}

bool ag_reward_decided(Agora__V1__KeyValue *const *info, size_t n_info)
{
    for (size_t i = 0; i < n_info; i++)
        if (info[i] && info[i]->key && !strcmp(info[i]->key, "reason") && info[i]->value &&
            !strcmp(info[i]->value, "coin"))
            return false;
    return true;
}

/* ---- queues ---- */

/* A protocol-sized copy of a transcript: the last 65536 bytes, starting at a
 * character boundary. NULL for a text with a NUL byte (or out of memory). */
static char *s_text_copy(const char *text, size_t len, size_t *out_len)
{
    *out_len = 0; /* defined on failure too: callers add it to byte counts */
    if (len && memchr(text, '\0', len))
        return NULL;
    if (len > AG_REWARD_MAX_TRANSCRIPT) {
        size_t cut = len - AG_REWARD_MAX_TRANSCRIPT;
        for (int k = 0; k < 3 && cut < len && ((unsigned char)text[cut] & 0xc0) == 0x80; k++)
            cut++;
        text += cut;
        len -= cut;
    }
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, text, len);
        p[len] = '\0';
        *out_len = len;
    }
    return p;
}

static void s_group_free(group_t *g)
{
    for (size_t i = 0; i < g->n; i++)
        free(g->text[i]);
    free(g->game);
    free(g);
}

static void s_label_free(label_t *l)
{
    free(l->text[0]);
    free(l->text[1]);
    free(l->game);
    free(l);
}

/* Puts a list of groups (in order) back at the front of the queue. */
static void s_requeue_groups(ag_reward_client_t *c, group_t *list)
{
    if (!list)
        return;
    group_t *last = list;
    size_t items = last->n;
    while (last->next) {
        last = last->next;
        items += last->n;
    }
    last->next = c->todo;
    if (!c->todo)
        c->todo_tail = last;
    c->todo = list;
    c->todo_items += items;
}

/* Drops the oldest labels past the bounds; one warning per burst of drops. */
static void s_trim_labels(ag_reward_client_t *c)
{
    while (c->labels &&
           (c->n_labels > c->opts.max_labels || c->label_bytes > c->opts.max_label_bytes)) {
        label_t *l = c->labels;
        c->labels = l->next;
        if (!c->labels)
            c->labels_tail = NULL;
        c->n_labels--;
        c->label_bytes -= l->bytes;
        s_label_free(l);
        c->st.labels_dropped++;
        if (c->dropped_in_burst++ == 0)
            ag_warn("reward",
                    "label queue full (%zu labels): dropping the oldest until reward "
                    "server %s takes labels again",
                    c->n_labels + 1, c->endpoint);
    }
}

static void s_requeue_labels(ag_reward_client_t *c, label_t *list)
{
    if (!list)
        return;
    label_t *last = list;
    size_t n = 1, bytes = last->bytes;
    while (last->next) {
        last = last->next;
        n++;
        bytes += last->bytes;
    }
    last->next = c->labels;
    if (!c->labels)
        c->labels_tail = last;
    c->labels = list;
    c->n_labels += n;
    c->label_bytes += bytes;
    s_trim_labels(c);
}

static void s_fail_groups(ag_reward_client_t *c, group_t *list, int status)
{
    while (list) {
        group_t *g = list;
        list = g->next;
        c->scoring--;
        if (status != -ECANCELED)
            c->st.score_failed++;
        g->done(g->arg, status, NULL, 0);
        s_group_free(g);
    }
}

static void s_free_labels(label_t *list)
{
    while (list) {
        label_t *l = list;
        list = l->next;
        s_label_free(l);
    }
}

/* ---- server state ---- */

/* Any answer, even an Error, means the server is there (again). */
static void s_up(ag_reward_client_t *c)
{
    if (c->up)
        return;
    c->up = true;
    uv_timer_stop(&c->retry_timer);
    ag_info("reward", "reward server %s answers again", c->endpoint);
}

static void s_probe_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    batch_t *b = arg;
    ag_reward_client_t *c = b->c;
    free(b);
    if (status == -ECANCELED)
        return;
    c->probing = false;
    if (status < 0 || c->up)
        return;
    s_up(c);
    s_pump_scores(c);
    s_pump_labels(c);
}

static void s_on_retry_timer(uv_timer_t *t)
{
    ag_reward_client_t *c = t->data;
    if (c->up || c->probing)
        return;
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return;
    b->c = c;
    Agora__V1__RewardStatsRequest stats = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    stats.model = c->model;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &stats;
    if (ag_rpc_call(c->rpc, &req.base, s_probe_done, b) < 0) {
        free(b);
        return;
    }
    c->probing = true;
}

/* A request got no answer after every attempt: the server is away. */
static void s_down(ag_reward_client_t *c)
{
    c->st.timeouts++;
    if (!c->up)
        return;
    c->up = false;
    c->st.outages++;
    ag_warn("reward",
            "reward server %s does not answer: %zu episodes wait for scores, %zu labels "
            "for sending; asking again every %d ms",
            c->endpoint, c->scoring, c->n_labels + c->labels_inflight, c->opts.retry_ms);
    uv_timer_start(&c->retry_timer, s_on_retry_timer, (uint64_t)c->opts.retry_ms,
                   (uint64_t)c->opts.retry_ms);
}

static void s_on_backoff(uv_timer_t *t)
{
    ag_reward_client_t *c = t->data;
    c->backoff = false;
    s_pump_scores(c);
    s_pump_labels(c);
}

/* The server said OVERLOADED: send nothing for retry_ms. */
static void s_back_off(ag_reward_client_t *c, const char *what)
{
    uint64_t now = uv_now(c->loop);
    if (now - c->last_overload_log >= 10000 || !c->last_overload_log) {
        ag_warn("reward", "reward server %s is overloaded (%s): backing off %d ms", c->endpoint,
                what, c->opts.retry_ms);
        c->last_overload_log = now ? now : 1;
    }
    if (!c->backoff) {
        c->backoff = true;
        uv_timer_start(&c->backoff_timer, s_on_backoff, (uint64_t)c->opts.retry_ms, 0);
    }
}

static int s_error_status(const Agora__V1__Error *e)
{
    switch (e ? e->code : 0) {
    case AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL:
        return -ENOENT;
    case AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST:
        return -EINVAL;
    default:
        return -EPROTO;
    }
}

/* ---- scores ---- */

static void s_score_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    batch_t *b = arg;
    ag_reward_client_t *c = b->c;
    group_t *list = b->groups;
    size_t n_items = b->n_items;
    free(b);
    c->score_inflight--;
    if (status == -ECANCELED) {
        s_fail_groups(c, list, -ECANCELED);
        return;
    }
    if (status < 0) {
        s_requeue_groups(c, list);
        s_down(c);
        return;
    }
    bool was_down = !c->up;
    s_up(c);
    if (was_down)
        s_pump_labels(c);
    const Agora__V1__RewardReply *rep = (const Agora__V1__RewardReply *)msg;
    if (rep->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR) {
        const Agora__V1__Error *e = rep->error;
        if (e && e->code == AGORA__V1__ERROR_CODE__ERROR_OVERLOADED) {
            s_requeue_groups(c, list);
            s_back_off(c, "scores");
            return;
        }
        ag_warn("reward", "reward server %s refused to score %zu transcripts: %s %s", c->endpoint,
                n_items, ag_error_name(e ? e->code : 0), e && e->message ? e->message : "");
        s_fail_groups(c, list, s_error_status(e));
    } else if (rep->body_case != AGORA__V1__REWARD_REPLY__BODY_SCORE || !rep->score ||
               rep->score->n_scores != n_items) {
        ag_warn("reward", "reward server %s answered %zu transcripts with %zu scores", c->endpoint,
                n_items,
                rep->body_case == AGORA__V1__REWARD_REPLY__BODY_SCORE && rep->score
                    ? rep->score->n_scores
                    : (size_t)0);
        s_fail_groups(c, list, -EPROTO);
    } else {
        c->st.score_requests++;
        c->st.model_version = rep->score->model_version;
        const float *scores = rep->score->scores;
        size_t off = 0;
        while (list) {
            group_t *g = list;
            list = g->next;
            bool finite = true;
            for (size_t i = 0; i < g->n; i++)
                finite &= isfinite(scores[off + i]) != 0;
            c->scoring--;
            if (finite) {
                c->st.scored += g->n;
                g->done(g->arg, 0, scores + off, g->n);
            } else {
                c->st.score_failed++;
                ag_warn("reward", "reward server %s gave a non-finite score", c->endpoint);
                g->done(g->arg, -EPROTO, NULL, 0);
            }
            off += g->n;
            s_group_free(g);
        }
    }
    s_pump_scores(c);
}

/* Sends one ScoreRequest of whole groups from the front of the queue. */
static int s_send_scores(ag_reward_client_t *c)
{
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->c = c;
    group_t **tail = &b->groups;
    size_t n = 0, bytes = 0;
    while (c->todo && n + c->todo->n <= AG_REWARD_MAX_ITEMS &&
           (n == 0 || bytes + c->todo->bytes <= MAX_REQUEST_TEXT)) {
        group_t *g = c->todo;
        c->todo = g->next;
        if (!c->todo)
            c->todo_tail = NULL;
        c->todo_items -= g->n;
        g->next = NULL;
        *tail = g;
        tail = &g->next;
        for (size_t i = 0; i < g->n; i++) {
            Agora__V1__ScoreItem *it = &c->items[n];
            agora__v1__score_item__init(it);
            it->transcript = g->text[i];
            it->seat = g->seat[i];
            it->game = g->game;
            c->item_ptrs[n++] = it;
        }
        bytes += g->bytes;
    }
    b->n_items = n;
    Agora__V1__ScoreRequest score = AGORA__V1__SCORE_REQUEST__INIT;
    score.model = c->model;
    score.n_items = n;
    score.items = c->item_ptrs;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_SCORE;
    req.score = &score;
    int rc = ag_rpc_call(c->rpc, &req.base, s_score_done, b);
    if (rc < 0) {
        s_requeue_groups(c, b->groups);
        free(b);
        return rc;
    }
    c->score_inflight++;
    return 0;
}

static void s_pump_scores(ag_reward_client_t *c)
{
    if (c->closing || !c->up || c->backoff)
        return;
    uv_timer_stop(&c->batch_timer);
    while (c->todo && c->score_inflight < c->opts.max_inflight) {
        int rc = s_send_scores(c);
        if (rc < 0) {
            ag_warn("reward", "cannot send a score request: %s", strerror(-rc));
            uv_timer_start(&c->batch_timer, s_on_batch_timer, (uint64_t)c->opts.retry_ms, 0);
            return;
        }
    }
}

static void s_on_batch_timer(uv_timer_t *t)
{
    s_pump_scores(t->data);
}

int ag_reward_client_score(ag_reward_client_t *c, const char *game, const ag_reward_item_t *items,
                           size_t n, ag_reward_score_cb done, void *arg)
{
    if (c->closing)
        return -ECANCELED;
    if (n < 1 || n > AG_REWARD_MAX_SEATS || !done)
        return -EINVAL;
    group_t *g = calloc(1, sizeof *g);
    if (!g)
        return -ENOMEM;
    g->done = done;
    g->arg = arg;
    g->game = strndup(game ? game : "", AG_REWARD_MAX_NAME);
    if (!g->game)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        g->text[i] = s_text_copy(items[i].text, items[i].len, &len);
        if (!g->text[i]) {
            int rc = items[i].len && memchr(items[i].text, '\0', items[i].len) ? -EINVAL : -ENOMEM;
            g->n = i;
            s_group_free(g);
            return rc;
        }
        g->seat[i] = items[i].seat;
        g->bytes += len;
        g->n = i + 1;
    }
    g->next = NULL;
    if (c->todo_tail)
        c->todo_tail->next = g;
    else
        c->todo = g;
    c->todo_tail = g;
    c->todo_items += n;
    c->scoring++;
    if (c->todo_items >= AG_REWARD_MAX_ITEMS) {
        /* A full request's worth is waiting: no reason to wait longer. Deferred,
         * so done is never called from inside this function. */
        uv_timer_start(&c->batch_timer, s_on_batch_timer, 0, 0);
    } else if (!uv_is_active((uv_handle_t *)&c->batch_timer)) {
        uv_timer_start(&c->batch_timer, s_on_batch_timer, (uint64_t)c->opts.batch_ms, 0);
    }
    return 0;
fail:
    s_group_free(g);
    return -ENOMEM;
}

/* ---- labels ---- */

static void s_label_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    batch_t *b = arg;
    ag_reward_client_t *c = b->c;
    label_t *list = b->labels;
    size_t n = b->n_labels;
    free(b);
    c->label_busy = false;
    c->labels_inflight = 0;
    if (status == -ECANCELED) {
        s_free_labels(list);
        return;
    }
    if (status < 0) {
        s_requeue_labels(c, list);
        s_down(c);
        return;
    }
    bool was_down = !c->up;
    s_up(c);
    if (was_down)
        s_pump_scores(c);
    const Agora__V1__RewardReply *rep = (const Agora__V1__RewardReply *)msg;
    if (rep->body_case == AGORA__V1__REWARD_REPLY__BODY_LABEL && rep->label) {
        if (rep->label->duplicate) {
            /* An earlier attempt was learnt and only its reply was lost. */
            c->st.label_duplicates++;
            ag_debug("reward", "reward server had the %zu labels already (a resend)", n);
        }
        c->st.labels_sent += n;
        c->st.labels_accepted += rep->label->accepted;
        c->st.labels_rejected += rep->label->rejected;
        if (rep->label->rejected)
            ag_debug("reward", "reward server rejected %u of %zu labels", rep->label->rejected, n);
        s_free_labels(list);
        if (c->dropped_in_burst) {
            ag_info("reward", "reward server %s takes labels again (%llu were dropped meanwhile)",
                    c->endpoint, (unsigned long long)c->dropped_in_burst);
            c->dropped_in_burst = 0;
        }
    } else if (rep->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR && rep->error &&
               rep->error->code == AGORA__V1__ERROR_CODE__ERROR_OVERLOADED) {
        s_requeue_labels(c, list);
        s_back_off(c, "labels");
        return;
    } else {
        const Agora__V1__Error *e =
            rep->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR ? rep->error : NULL;
        ag_warn("reward", "reward server %s refused %zu labels: %s %s", c->endpoint, n,
                e ? ag_error_name(e->code) : "unexpected reply", e && e->message ? e->message : "");
        c->st.labels_dropped += n;
        s_free_labels(list);
    }
    s_pump_labels(c);
}

static void s_item(Agora__V1__ScoreItem *it, char *text, uint32_t seat, char *game)
{
    agora__v1__score_item__init(it);
    it->transcript = text;
    it->seat = seat;
    it->game = game;
}

/*
 * Sends one LabelRequest: the labels of the batch put back at the front of
 * the queue, under its id again, or else a new batch of the labels that
 * were never sent, under a new id.
 */
static void s_pump_labels(ag_reward_client_t *c)
{
    if (c->closing || !c->up || c->backoff || c->label_busy || !c->labels)
        return;
    batch_t *b = calloc(1, sizeof *b);
    if (!b)
        return;
    b->c = c;
    /* A new label added to a resent batch would be lost if the server
     * answers it as a duplicate. */
    const uint64_t resent = c->labels->batch;
    const uint64_t batch = resent ? resent : ++c->batches;
    size_t n_pref = 0, n_out = 0, n_items = 0, bytes = 0;
    label_t **tail = &b->labels;
    while (c->labels && c->labels->batch == resent &&
           (b->n_labels == 0 || bytes + c->labels->bytes <= MAX_REQUEST_TEXT)) {
        label_t *l = c->labels;
        if (l->preference ? n_pref == AG_REWARD_MAX_ITEMS : n_out == AG_REWARD_MAX_ITEMS)
            break;
        l->batch = batch;
        c->labels = l->next;
        if (!c->labels)
            c->labels_tail = NULL;
        c->n_labels--;
        c->label_bytes -= l->bytes;
        l->next = NULL;
        *tail = l;
        tail = &l->next;
        b->n_labels++;
        bytes += l->bytes;
        if (l->preference) {
            Agora__V1__Preference *p = &c->prefs[n_pref];
            agora__v1__preference__init(p);
            p->a = &c->items[n_items++];
            p->b = &c->items[n_items++];
            s_item(p->a, l->text[0], l->seat[0], l->game);
            s_item(p->b, l->text[1], l->seat[1], l->game);
            p->preferred = l->preferred;
            c->pref_ptrs[n_pref++] = p;
        } else {
            Agora__V1__Outcome *o = &c->outcomes[n_out];
            agora__v1__outcome__init(o);
            o->item = &c->items[n_items++];
            s_item(o->item, l->text[0], l->seat[0], l->game);
            o->label = l->value;
            c->outcome_ptrs[n_out++] = o;
        }
    }
    char batch_id[BATCH_ACTOR_MAX + 48];
    snprintf(batch_id, sizeof batch_id, "%s/%016" PRIx64 "/%" PRIu64, c->actor_id, c->run_id,
             batch - 1);
    Agora__V1__LabelRequest label = AGORA__V1__LABEL_REQUEST__INIT;
    label.model = c->model;
    label.batch_id = batch_id;
    label.n_preferences = n_pref;
    label.preferences = c->pref_ptrs;
    label.n_outcomes = n_out;
    label.outcomes = c->outcome_ptrs;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    req.label = &label;
    size_t n = b->n_labels;
    int rc = ag_rpc_call(c->rpc, &req.base, s_label_done, b);
    if (rc < 0) {
        ag_warn("reward", "cannot send labels: %s", strerror(-rc));
        s_requeue_labels(c, b->labels);
        free(b);
        s_back_off(c, "labels not sent");
        return;
    }
    c->label_busy = true;
    c->labels_inflight = n;
}

int ag_reward_client_label_game(ag_reward_client_t *c, ag_reward_labels_t mode, const char *game,
                                Agora__V1__KeyValue *const *info, size_t n_info, int n_seats,
                                const float *returns, const char *const *texts, const size_t *lens)
{
    if (c->closing)
        return -ECANCELED;
    if (n_seats < 1 || n_seats > AG_REWARD_MAX_SEATS)
        return -EINVAL;
    if (mode != AG_REWARD_LABELS_OFF && c->opts.decided_only && !ag_reward_decided(info, n_info)) {
        c->st.games_undecided++;
        return 0;
    }
    bool has[AG_REWARD_MAX_SEATS];
    for (int s = 0; s < n_seats; s++) {
        has[s] = texts[s] != NULL;
        if (has[s] && lens[s] && memchr(texts[s], '\0', lens[s]))
            return -EINVAL;
    }
    ag_reward_label_t lab[AG_REWARD_MAX_SEATS];
    int n = ag_reward_game_labels(mode, n_seats, returns, has, lab);
    for (int i = 0; i < n; i++) {
        label_t *l = calloc(1, sizeof *l);
        if (!l)
            return -ENOMEM;
        l->preference = lab[i].preference;
        l->game = strndup(game ? game : "", AG_REWARD_MAX_NAME);
        int seats[2] = {lab[i].seat, lab[i].other};
        if (l->preference && seats[0] > seats[1]) {
            /* a = the lower seat, so `preferred` says which one won */
            seats[0] = lab[i].other;
            seats[1] = lab[i].seat;
        }
        l->preferred = l->preference && seats[1] == lab[i].seat ? 1 : 0;
        l->value = lab[i].label;
        bool ok = l->game != NULL;
        for (int k = 0; k < (l->preference ? 2 : 1) && ok; k++) {
            size_t len;
            l->text[k] = s_text_copy(texts[seats[k]], lens[seats[k]], &len);
            l->seat[k] = (uint32_t)seats[k];
            l->bytes += len;
            ok = l->text[k] != NULL;
        }
        if (!ok) {
            s_label_free(l);
            return -ENOMEM;
        }
        if (c->labels_tail)
            c->labels_tail->next = l;
        else
            c->labels = l;
        c->labels_tail = l;
        c->n_labels++;
        c->label_bytes += l->bytes;
        c->st.labels_queued++;
    }
    s_trim_labels(c);
    s_pump_labels(c);
    return n;
}

/* ---- lifecycle ---- */

/* The actor id part of batch ids: printable ASCII, at most BATCH_ACTOR_MAX bytes. */
static void s_batch_actor(ag_reward_client_t *c, const char *actor_id)
{
    char host[128] = "localhost";
    if (!actor_id || !*actor_id) {
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = '\0';
        snprintf(c->actor_id, sizeof c->actor_id, "%.*s-%d", BATCH_ACTOR_MAX - 12, host,
                 (int)getpid());
        actor_id = c->actor_id;
    }
    size_t n = 0;
    for (; actor_id[n] && n < BATCH_ACTOR_MAX; n++)
        c->actor_id[n] = actor_id[n] >= 0x20 && actor_id[n] < 0x7f ? actor_id[n] : '_';
    c->actor_id[n] = '\0';
}

ag_reward_client_t *ag_reward_client_create(uv_loop_t *loop, void *zctx,
                                            const ag_reward_client_opts_t *opts)
{
    const char *model = opts->model ? opts->model : "default";
    if (!opts->endpoint || !opts->endpoint[0]) {
        ag_error("reward", "no reward server endpoint");
        return NULL;
    }
    if (!model[0] || strlen(model) > AG_REWARD_MAX_NAME) {
        ag_error("reward", "reward model name \"%s\": expected 1..%d bytes", model,
                 AG_REWARD_MAX_NAME);
        return NULL;
    }
    ag_reward_client_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->opts = *opts;
    if (c->opts.timeout_ms <= 0)
        c->opts.timeout_ms = 5000;
    if (c->opts.attempts <= 0)
        c->opts.attempts = 2;
    if (c->opts.batch_ms <= 0)
        c->opts.batch_ms = 5;
    if (c->opts.max_inflight <= 0)
        c->opts.max_inflight = 2;
    if (c->opts.retry_ms <= 0)
        c->opts.retry_ms = 2000;
    if (!c->opts.max_labels)
        c->opts.max_labels = 4096;
    if (!c->opts.max_label_bytes)
        c->opts.max_label_bytes = 64u << 20;
    snprintf(c->model, sizeof c->model, "%s", model);
    s_batch_actor(c, opts->actor_id);
    c->run_id = opts->run_id ? opts->run_id : ag_random_u64();
    c->up = true;
    uv_timer_init(loop, &c->batch_timer);
    uv_timer_init(loop, &c->retry_timer);
    uv_timer_init(loop, &c->backoff_timer);
    c->batch_timer.data = c->retry_timer.data = c->backoff_timer.data = c;
    c->open_handles = 3;
    c->endpoint = strdup(opts->endpoint);
    ag_rpc_client_opts_t ro = {
        .timeout_ms = c->opts.timeout_ms,
        .attempts = c->opts.attempts,
        .max_reply = 16 << 20,
        .limits = &s_reply_limits,
    };
    c->rpc = c->endpoint ? ag_rpc_client_create(loop, zctx, c->endpoint,
                                                &agora__v1__reward_reply__descriptor, &ro)
                         : NULL;
    if (!c->rpc) {
        ag_error("reward", "cannot connect to the reward server %s", opts->endpoint);
        ag_reward_client_destroy(&c);
        return NULL;
    }
    return c;
}

static void s_handle_closed(uv_handle_t *h)
{
    ag_reward_client_t *c = h->data;
    if (--c->open_handles == 0)
        free(c);
}

void ag_reward_client_destroy(ag_reward_client_t **self)
{
    if (!self || !*self)
        return;
    ag_reward_client_t *c = *self;
    *self = NULL;
    c->closing = true;
    /* In-flight batches come back here as -ECANCELED and call their groups back. */
    ag_rpc_client_destroy(&c->rpc);
    group_t *todo = c->todo;
    c->todo = c->todo_tail = NULL;
    s_fail_groups(c, todo, -ECANCELED);
    s_free_labels(c->labels);
    c->labels = c->labels_tail = NULL;
    free(c->endpoint);
    uv_close((uv_handle_t *)&c->batch_timer, s_handle_closed);
    uv_close((uv_handle_t *)&c->retry_timer, s_handle_closed);
    uv_close((uv_handle_t *)&c->backoff_timer, s_handle_closed);
}

size_t ag_reward_client_scoring(const ag_reward_client_t *c)
{
    return c->scoring;
}

size_t ag_reward_client_labels_pending(const ag_reward_client_t *c)
{
    return c->n_labels + c->labels_inflight;
}

bool ag_reward_client_up(const ag_reward_client_t *c)
{
    return c->up;
}

void ag_reward_client_get_stats(const ag_reward_client_t *c, ag_reward_client_stats_t *out)
{
    *out = c->st;
}
