/*
 * shipper.c - the trajectory outbox and its submission to the learner (see
 * shipper.h).
 *
 * The outbox is a list in arrival order (oldest first: dropped first when
 * full, sent first when due) plus a map from sequence number to entry for
 * acknowledgements.
 */
#include "shipper.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "idmap.h"
#include "log.h"
#include "trajectory.pb-c.h"
#include "zsock.h"

#define MAX_REQUEST_BYTES (32u << 20)
#define DROP_LOG_MS 10000

typedef struct entry {
    struct entry *prev, *next;
    uint64_t sequence;
    uint8_t *bytes;
    size_t len;
    uint64_t sent_ms; /* 0 = never sent */
} entry_t;

struct ag_shipper {
    uv_loop_t *loop;
    ag_shipper_opts_t opts;
    char *actor_id;
    ag_zsock_t *sock;
    uv_timer_t timer;
    entry_t *head, *tail;
    size_t count;
    ag_idmap_t by_seq;
    uint64_t next_seq;
    uint64_t next_request;
    uint64_t traj_tag; /* SubmitTrajectories.trajectories */
    ag_buf_t req;
    uint32_t *tokens[AG_RUNNER_MAX_SEATS];
    size_t tokens_cap[AG_RUNNER_MAX_SEATS];
    uint64_t last_drop_log;
    uint64_t drops_since_log;
    bool unreachable_logged;
    ag_shipper_stats_t st;
};

static void s_unlink(ag_shipper_t *s, entry_t *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    ag_idmap_remove(&s->by_seq, e->sequence + 1);
    s->count--;
    free(e->bytes);
    free(e);
}

static size_t s_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

/* The tag of a length-delimited field, from the schema (field numbers are not hard-coded). */
static uint64_t s_tag(const ProtobufCMessageDescriptor *desc, const char *field)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(desc, field);
    return f ? ((uint64_t)f->id << 3) | 2 : 0;
}

static int s_append(ag_buf_t *b, const void *data, size_t len)
{
    if (ag_buf_reserve(b, b->len + len) < 0)
        return -ENOMEM;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* Sends entries [first, first + n) as one SubmitTrajectories; their total packed size is body. */
static int s_send_batch(ag_shipper_t *s, entry_t *first, int n, size_t body)
{
    uint8_t hdr[32];
    size_t h = 0;
    hdr[h++] = 0x08; /* protocol_version = 1 */
    hdr[h++] = 1;
    hdr[h++] = 0x10; /* request_id */
    h += s_varint(hdr + h, ++s->next_request);
    h += s_varint(hdr + h, s_tag(&agora__v1__trajectory_request__descriptor, "submit"));
    size_t submit_len = body;
    entry_t *e = first;
    for (int i = 0; i < n; i++, e = e->next) {
        uint8_t tmp[20];
        submit_len += s_varint(tmp, s->traj_tag) + s_varint(tmp, e->len);
    }
    h += s_varint(hdr + h, submit_len);
    s->req.len = 0;
    if (s_append(&s->req, hdr, h) < 0)
        return -ENOMEM;
    e = first;
    for (int i = 0; i < n; i++, e = e->next) {
        uint8_t tmp[20];
        size_t t = s_varint(tmp, s->traj_tag);
        t += s_varint(tmp + t, e->len);
        if (s_append(&s->req, tmp, t) < 0 || s_append(&s->req, e->bytes, e->len) < 0)
            return -ENOMEM;
    }
    ag_frame_t f = {s->req.data, s->req.len};
    return ag_zsock_send(s->sock, &f, 1);
}

void ag_shipper_flush(ag_shipper_t *s, bool all)
{
    const uint64_t now = uv_now(s->loop);
    entry_t *e = s->head;
    while (e) {
        /* The next run of due entries, up to a batch. */
        while (e && !(all || e->sent_ms == 0 || now - e->sent_ms >= (uint64_t)s->opts.resend_ms))
            e = e->next;
        if (!e)
            break;
        entry_t *first = e;
        int n = 0;
        size_t body = 0;
        while (e && n < s->opts.batch && body + e->len <= MAX_REQUEST_BYTES &&
               (all || e->sent_ms == 0 || now - e->sent_ms >= (uint64_t)s->opts.resend_ms)) {
            body += e->len;
            n++;
            e = e->next;
        }
        if (n == 0) { /* a single trajectory beyond the request limit: cannot be sent */
            entry_t *next = first->next;
            ag_warn("actor", "dropped trajectory %llu: %zu bytes",
                    (unsigned long long)first->sequence, first->len);
            s_unlink(s, first);
            s->st.dropped++;
            e = next;
            continue;
        }
        int rc = s_send_batch(s, first, n, body);
        if (rc < 0) {
            if (!s->unreachable_logged)
                ag_warn("actor", "cannot send trajectories to %s (%s); keeping them",
                        s->opts.endpoint, rc == -EAGAIN ? "learner not connected" : strerror(-rc));
            s->unreachable_logged = true;
            return;
        }
        s->unreachable_logged = false;
        s->st.requests++;
        entry_t *x = first;
        for (int i = 0; i < n; i++, x = x->next) {
            if (x->sent_ms)
                s->st.resent++;
            x->sent_ms = now ? now : 1;
            s->st.sent++;
        }
    }
}

static void s_forget(ag_shipper_t *s, Agora__V1__TrajectoryId **ids, size_t n, uint64_t *count)
{
    for (size_t i = 0; i < n; i++) {
        const Agora__V1__TrajectoryId *id = ids[i];
        if (!id || id->run_id != s->opts.run_id || !id->actor_id ||
            strcmp(id->actor_id, s->actor_id) != 0)
            continue;
        entry_t *e = ag_idmap_get(&s->by_seq, id->sequence + 1);
        if (e) {
            s_unlink(s, e);
            (*count)++;
        }
    }
}

static void s_on_reply(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    ag_shipper_t *s = arg;
    size_t first = (m->n >= 2 && ag_zmsg_size(m, 0) == 0) ? 1 : 0;
    if (m->n != first + 1)
        return;
    char why[160];
    ProtobufCMessage *msg =
        ag_codec_decode(&agora__v1__trajectory_reply__descriptor, ag_zmsg_data(m, first),
                        ag_zmsg_size(m, first), NULL, why, sizeof why);
    if (!msg) {
        ag_warn("actor", "undecodable reply from the learner: %s", why);
        return;
    }
    const Agora__V1__TrajectoryReply *rep = (const Agora__V1__TrajectoryReply *)msg;
    if (rep->body_case == AGORA__V1__TRAJECTORY_REPLY__BODY_ACK && rep->ack) {
        const Agora__V1__SubmitAck *a = rep->ack;
        s_forget(s, a->accepted, a->n_accepted, &s->st.accepted);
        s_forget(s, a->duplicate, a->n_duplicate, &s->st.duplicate);
        s_forget(s, a->stale, a->n_stale, &s->st.stale);
        s_forget(s, a->rejected, a->n_rejected, &s->st.rejected);
        if (a->n_rejected)
            ag_warn("actor", "the learner rejected %zu trajectories as malformed", a->n_rejected);
        s->st.learner_version = a->learner_version;
    } else if (rep->body_case == AGORA__V1__TRAJECTORY_REPLY__BODY_ERROR) {
        s->st.errors++;
        const Agora__V1__Error *e = rep->error;
        /* OVERLOADED and the like: the entries stay and are resent after resend_ms.
         * OVERLOADED is the learner's ordinary back-pressure: counted, logged at debug. */
        const bool busy = e && e->code == AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
        if (busy)
            s->st.overloaded++;
        ag_log(busy ? AG_LOG_DEBUG : AG_LOG_WARN, "actor",
               "learner answered a submission with %s %s", ag_error_name(e ? e->code : 0),
               e && e->message ? e->message : "");
    }
    ag_codec_free(msg);
}

static void s_on_timer(uv_timer_t *t)
{
    ag_shipper_flush(t->data, false);
}

ag_shipper_t *ag_shipper_create(uv_loop_t *loop, void *zctx, const ag_shipper_opts_t *opts)
{
    ag_shipper_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->opts = *opts;
    s->traj_tag = s_tag(&agora__v1__submit_trajectories__descriptor, "trajectories");
    if (!s->opts.max_outbox)
        s->opts.max_outbox = 4096;
    if (s->opts.batch <= 0 || s->opts.batch > AG_SHIPPER_MAX_BATCH)
        s->opts.batch = AG_SHIPPER_MAX_BATCH;
    if (s->opts.resend_ms <= 0)
        s->opts.resend_ms = 5000;
    if (s->opts.flush_ms <= 0)
        s->opts.flush_ms = 100;
    ag_idmap_init(&s->by_seq);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->actor_id = strdup(opts->actor_id ? opts->actor_id : "");
    ag_zsock_opts_t zo = {.maxmsgsize = 16 << 20, .immediate = true};
    s->sock = ag_zsock_create(loop, zctx, ZMQ_DEALER, &zo, s_on_reply, s);
    if (!s->actor_id || !s->sock || ag_zsock_connect(s->sock, opts->endpoint) < 0) {
        ag_error("actor", "cannot connect to the learner's trajectory socket %s", opts->endpoint);
        ag_shipper_destroy(&s);
        return NULL;
    }
    uv_timer_start(&s->timer, s_on_timer, (uint64_t)s->opts.flush_ms, (uint64_t)s->opts.flush_ms);
    return s;
}

static void s_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ag_shipper_destroy(ag_shipper_t **self)
{
    if (!self || !*self)
        return;
    ag_shipper_t *s = *self;
    *self = NULL;
    ag_zsock_destroy(&s->sock);
    while (s->head)
        s_unlink(s, s->head);
    ag_idmap_finish(&s->by_seq);
    ag_buf_finish(&s->req);
    for (int i = 0; i < AG_RUNNER_MAX_SEATS; i++)
        free(s->tokens[i]);
    free(s->actor_id);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, s_timer_closed);
}

bool ag_shipper_carries(const ag_runner_result_t *res, int s)
{
    const ag_seq_t *q = res->seq[s];
    /* A seat that never acted (the game ended first) has nothing to train on. */
    return res->trainable[s] && q && q->n_turns > 0 &&
           (!res->invalid_ended || res->invalid_seat == s);
}

int ag_shipper_add(ag_shipper_t *s, const ag_runner_result_t *res)
{
    Agora__V1__SeatTrajectory seats[AG_RUNNER_MAX_SEATS];
    Agora__V1__SeatTrajectory *seat_ptrs[AG_RUNNER_MAX_SEATS];
    size_t n_seats = 0;
    for (int i = 0; i < res->n_seats && i < AG_RUNNER_MAX_SEATS; i++) {
        if (!ag_shipper_carries(res, i))
            continue;
        const ag_seq_t *q = res->seq[i];
        if (s->tokens_cap[n_seats] < q->len) {
            uint32_t *t = realloc(s->tokens[n_seats], q->len * sizeof *t);
            if (!t)
                return -ENOMEM;
            s->tokens[n_seats] = t;
            s->tokens_cap[n_seats] = q->len;
        }
        for (size_t k = 0; k < q->len; k++)
            s->tokens[n_seats][k] = (uint32_t)q->tokens[k];
        Agora__V1__SeatTrajectory *st = &seats[n_seats];
        agora__v1__seat_trajectory__init(st);
        st->seat = (uint32_t)i;
        st->policy = (char *)res->label[i];
        st->n_tokens = q->len;
        st->tokens = s->tokens[n_seats];
        st->generated.len = q->len;
        st->generated.data = q->generated;
        st->n_logprobs = q->len;
        st->logprobs = q->logprobs;
        st->n_values = q->len;
        st->values = q->values;
        st->n_turn_end = q->n_turns;
        st->turn_end = q->turn_end;
        st->n_turn_rewards = q->n_turns;
        st->turn_rewards = q->turn_rewards;
        st->n_turn_version = q->n_turns;
        st->turn_version = q->turn_version;
        st->trainable = true;
        seat_ptrs[n_seats] = st;
        n_seats++;
    }
    if (n_seats == 0)
        return 1;

    Agora__V1__TrajectoryId id = AGORA__V1__TRAJECTORY_ID__INIT;
    id.actor_id = s->actor_id;
    id.run_id = s->opts.run_id;
    id.sequence = s->next_seq;
    Agora__V1__Trajectory t = AGORA__V1__TRAJECTORY__INIT;
    t.id = &id;
    t.game = (char *)res->game;
    t.seed = res->seed;
    t.n_seats = n_seats;
    t.seats = seat_ptrs;
    t.n_returns = (size_t)res->n_seats;
    t.returns = (float *)res->returns;
    t.n_info = res->n_info;
    t.info = res->info;
    t.n_metrics = res->n_metrics;
    t.metrics = res->metrics;
    t.truncated = res->truncated;

    entry_t *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->len = agora__v1__trajectory__get_packed_size(&t);
    e->bytes = malloc(e->len ? e->len : 1);
    if (!e->bytes || ag_idmap_put(&s->by_seq, s->next_seq + 1, e) < 0) {
        free(e->bytes);
        free(e);
        return -ENOMEM;
    }
    agora__v1__trajectory__pack(&t, e->bytes);
    e->sequence = s->next_seq++;
    e->prev = s->tail;
    if (s->tail)
        s->tail->next = e;
    else
        s->head = e;
    s->tail = e;
    s->count++;
    s->st.added++;

    while (s->count > s->opts.max_outbox) {
        s_unlink(s, s->head);
        s->st.dropped++;
        s->drops_since_log++;
        uint64_t now = uv_now(s->loop);
        if (now - s->last_drop_log >= DROP_LOG_MS) {
            ag_warn("actor",
                    "outbox full (%zu trajectories, learner unreachable?): dropped "
                    "%llu oldest",
                    s->opts.max_outbox, (unsigned long long)s->drops_since_log);
            s->last_drop_log = now;
            s->drops_since_log = 0;
        }
    }
    return 0;
}

size_t ag_shipper_pending(const ag_shipper_t *s)
{
    return s->count;
}

void ag_shipper_get_stats(const ag_shipper_t *s, ag_shipper_stats_t *out)
{
    *out = s->st;
}
