/*
 * traj.c - validation and copying of trajectories from the wire (see traj.h).
 */
#include "traj.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static int s_fail(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* Checks one trainable seat; the message is untrusted. */
static int s_check_seat(const Agora__V1__SeatTrajectory *s, int vocab, int ctx, char *why,
                        size_t why_len)
{
    const size_t n = s->n_tokens;
    if (n < 2)
        return s_fail(why, why_len, "seat %" PRIu32 ": fewer than 2 tokens", s->seat);
    if (n > (size_t)ctx)
        return s_fail(why, why_len, "seat %" PRIu32 ": %zu tokens exceed the context of %d",
                      s->seat, n, ctx);
    if (s->generated.len != n || s->n_logprobs != n)
        return s_fail(why, why_len,
                      "seat %" PRIu32 ": generated/logprobs length differs "
                      "from tokens",
                      s->seat);
    if (s->n_values != 0 && s->n_values != n)
        return s_fail(why, why_len, "seat %" PRIu32 ": values length differs from tokens", s->seat);
    if (s->n_turn_rewards != s->n_turn_end || s->n_turn_version != s->n_turn_end)
        return s_fail(why, why_len, "seat %" PRIu32 ": turn_* lengths differ", s->seat);
    if (s->n_turn_end == 0)
        return s_fail(why, why_len, "seat %" PRIu32 ": no turn", s->seat);
    for (size_t i = 0; i < n; i++) {
        uint32_t t = s->tokens[i];
        if (t >= (uint32_t)vocab || (t >= AG_TOK_PAD && t < AG_VOCAB_SIZE))
            return s_fail(why, why_len,
                          "seat %" PRIu32 ": token %" PRIu32 " at %zu is not "
                          "a valid id",
                          s->seat, t, i);
        uint8_t g = s->generated.data[i];
        if (g > 1)
            return s_fail(why, why_len, "seat %" PRIu32 ": generated must be 0 or 1", s->seat);
        if (g && !(s->logprobs[i] <= 1e-3f && s->logprobs[i] > -1e4f))
            return s_fail(why, why_len,
                          "seat %" PRIu32 ": log-prob at %zu is not a "
                          "log-probability",
                          s->seat, i);
    }
    if (s->generated.data[0])
        return s_fail(why, why_len, "seat %" PRIu32 ": the first token cannot be generated",
                      s->seat);
    for (size_t i = 0; i < s->n_turn_end; i++) {
        uint32_t e = s->turn_end[i];
        if (e >= n || (i > 0 && e <= s->turn_end[i - 1]))
            return s_fail(why, why_len,
                          "seat %" PRIu32 ": turn_end must be increasing "
                          "indices into tokens",
                          s->seat);
        if (!s->generated.data[e])
            return s_fail(why, why_len,
                          "seat %" PRIu32 ": turn %zu does not end on a "
                          "generated token",
                          s->seat, i);
        if (!isfinite(s->turn_rewards[i]) || fabsf(s->turn_rewards[i]) > 1e6f)
            return s_fail(why, why_len, "seat %" PRIu32 ": reward of turn %zu is not finite",
                          s->seat, i);
    }
    return 0;
}

static int s_copy_seat(const Agora__V1__SeatTrajectory *s, ag_seq_t *q)
{
    const size_t n = s->n_tokens, k = s->n_turn_end;
    q->tokens = malloc(n * sizeof *q->tokens);
    q->generated = malloc(n);
    q->logprobs = malloc(n * sizeof *q->logprobs);
    q->values = calloc(n, sizeof *q->values);
    q->turn_end = malloc(k * sizeof *q->turn_end);
    q->turn_rewards = malloc(k * sizeof *q->turn_rewards);
    q->turn_version = malloc(k * sizeof *q->turn_version);
    if (!q->tokens || !q->generated || !q->logprobs || !q->values || !q->turn_end ||
        !q->turn_rewards || !q->turn_version)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        q->tokens[i] = (int32_t)s->tokens[i];
    memcpy(q->generated, s->generated.data, n);
    for (size_t i = 0; i < n; i++)
        q->logprobs[i] = q->generated[i] ? s->logprobs[i] : 0.0f;
    if (s->n_values)
        for (size_t i = 0; i < n; i++)
            q->values[i] = isfinite(s->values[i]) ? s->values[i] : 0.0f;
    memcpy(q->turn_end, s->turn_end, k * sizeof *q->turn_end);
    memcpy(q->turn_rewards, s->turn_rewards, k * sizeof *q->turn_rewards);
    memcpy(q->turn_version, s->turn_version, k * sizeof *q->turn_version);
    q->len = q->cap = n;
    q->n_turns = q->turns_cap = k;
    return 0;
}

int ag_traj_from_pb(const Agora__V1__Trajectory *pb, int vocab, int ctx, ag_traj_t **out, char *why,
                    size_t why_len)
{
    *out = NULL;
    if (!pb->id || !pb->id->actor_id || !pb->id->actor_id[0])
        return s_fail(why, why_len, "trajectory has no id or an empty actor_id");
    if (strlen(pb->id->actor_id) > AG_TRAJ_MAX_ACTOR)
        return s_fail(why, why_len, "actor_id longer than %d bytes", AG_TRAJ_MAX_ACTOR);
    if (pb->n_seats > AG_TRAJ_MAX_SEATS || pb->n_returns > AG_TRAJ_MAX_SEATS)
        return s_fail(why, why_len, "more than %d seats or returns", AG_TRAJ_MAX_SEATS);
    unsigned seen = 0;
    size_t trainable = 0;
    for (size_t i = 0; i < pb->n_seats; i++) {
        const Agora__V1__SeatTrajectory *s = pb->seats[i];
        if (s->seat >= AG_TRAJ_MAX_SEATS || (seen & (1u << s->seat)))
            return s_fail(why, why_len, "seat %" PRIu32 " out of range or repeated", s->seat);
        seen |= 1u << s->seat;
        if (!s->trainable)
            continue;
        int rc = s_check_seat(s, vocab, ctx, why, why_len);
        if (rc < 0)
            return rc;
        trainable++;
    }
    if (!trainable)
        return s_fail(why, why_len, "no trainable seat");
    for (size_t i = 0; i < pb->n_returns; i++)
        if (!isfinite(pb->returns[i]))
            return s_fail(why, why_len, "return of seat %zu is not finite", i);

    ag_traj_t *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    snprintf(t->actor_id, sizeof t->actor_id, "%s", pb->id->actor_id);
    t->run_id = pb->id->run_id;
    t->sequence = pb->id->sequence;
    t->truncated = pb->truncated;
    t->min_version = UINT64_MAX;
    for (size_t i = 0; i < pb->n_seats; i++) {
        const Agora__V1__SeatTrajectory *s = pb->seats[i];
        if (!s->trainable)
            continue;
        ag_seq_t *q = &t->seats[t->n_seats++];
        if (s_copy_seat(s, q) < 0) {
            ag_traj_free(&t);
            return -ENOMEM;
        }
        for (size_t k = 0; k < q->n_turns; k++)
            if (q->turn_version[k] < t->min_version)
                t->min_version = q->turn_version[k];
    }
    t->n_returns = pb->n_returns;
    if (pb->n_returns)
        memcpy(t->returns, pb->returns, pb->n_returns * sizeof *t->returns);
    t->pb_len = agora__v1__trajectory__get_packed_size(pb);
    t->pb = malloc(t->pb_len ? t->pb_len : 1);
    if (!t->pb) {
        ag_traj_free(&t);
        return -ENOMEM;
    }
    agora__v1__trajectory__pack(pb, t->pb);
    for (size_t i = 0; i < pb->n_metrics && t->n_metrics < AG_TRAJ_MAX_METRICS; i++) {
        const Agora__V1__Metric *m = pb->metrics[i];
        if (!m->name || !m->name[0] || strlen(m->name) >= AG_TRAJ_METRIC_NAME ||
            !isfinite(m->value))
            continue; /* a metric we cannot average is ignored, not fatal */
        ag_traj_metric_t *d = &t->metrics[t->n_metrics++];
        snprintf(d->name, sizeof d->name, "%s", m->name);
        d->value = m->value;
    }
    *out = t;
    return 0;
}

void ag_traj_free(ag_traj_t **self)
{
    if (!self || !*self)
        return;
    for (size_t i = 0; i < (*self)->n_seats; i++) {
        ag_seq_finish(&(*self)->seats[i]);
        free((*self)->ref[i]);
    }
    free((*self)->pb);
    free(*self);
    *self = NULL;
}

void ag_traj_seat_to_pb(const ag_seq_t *s, uint32_t seat, bool trainable,
                        Agora__V1__SeatTrajectory *pb, uint32_t *tokens_buf)
{
    agora__v1__seat_trajectory__init(pb);
    for (size_t i = 0; i < s->len; i++)
        tokens_buf[i] = (uint32_t)s->tokens[i];
    pb->seat = seat;
    pb->policy = (char *)"current";
    pb->n_tokens = s->len;
    pb->tokens = tokens_buf;
    pb->generated.len = s->len;
    pb->generated.data = s->generated;
    pb->n_logprobs = s->len;
    pb->logprobs = s->logprobs;
    pb->n_values = s->len;
    pb->values = s->values;
    pb->n_turn_end = s->n_turns;
    pb->turn_end = s->turn_end;
    pb->n_turn_rewards = s->n_turns;
    pb->turn_rewards = s->turn_rewards;
    pb->n_turn_version = s->n_turns;
    pb->turn_version = s->turn_version;
    pb->trainable = trainable;
}
