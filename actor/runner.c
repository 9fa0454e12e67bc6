/*
 * runner.c - episodes in flight against env servers, batched sampling for
 * every policy seat (see runner.h).
 *
 * State of an episode slot: IDLE (no episode), RESET (Reset sent), PLAY (a
 * policy seat has an observation to act on, or is acting), STEP (Step sent),
 * CLOSED (finished for good: stopped or max_episodes reached). Exactly one
 * env request per episode is outstanding at a time, so a reply always finds
 * its episode in the state that sent it; a reply for an episode that was
 * abandoned meanwhile is recognised by the episode's serial number. A
 * request the env server answers ERROR_OVERLOADED (busy, not applied) stays
 * the one in flight: it is sent again after a growing pause. A Step refused
 * ERROR_INVALID_ACTION (not applied either) sends the episode back to PLAY:
 * the same seat samples another action, up to invalid_retries times in a row.
 *
 * Per sampling step and policy, rows are gathered into one feed: first the
 * seats in the middle of an action (one row each: the token sampled last),
 * then prompt rows of seats starting an action (their new observation, or
 * their whole transcript after a weight change), cut to the row budget; a
 * seat whose prompt did not fit completely is sampled on a later step.
 */
#include "clock.h"
#include "runner.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "env.pb-c.h"
#include "env_client.h"
#include "game_metrics.h"
#include "kv.h"
#include "log.h"
#include "rpc.h"

#define MAX_ENVS 64
#define MAX_OPTIONS 32
#define MAX_TRIES 3
#define PROMPT_ROWS 512
/* An env request answered ERROR_OVERLOADED (not applied) is resent after a
 * pause that doubles from RESEND_FIRST_MS up to RESEND_MAX_MS, jittered
 * (backoff.h) so that the episodes and actors one busy server refused do not
 * all come back at once; after MAX_RESENDS in a row the episode fails like on
 * any other env error. */
#define RESEND_FIRST_MS 100
#define RESEND_MAX_MS 5000
#define MAX_RESENDS 12

enum { EP_IDLE, EP_RESET, EP_PLAY, EP_STEP, EP_CLOSED };

typedef struct seat {
    ag_seq_t seq;
    int slot;         /* in the policy's sampler; -1 for a bot seat */
    size_t fed;       /* tokens of seq held by the slot */
    uint64_t fed_gen; /* policy generation the slot was computed with */
    bool want;        /* has an observation to act on */
    bool acting;
    int gen;           /* tokens sampled in this action */
    size_t turn_start; /* first token of this action */
} seat_t;

typedef struct episode {
    ag_runner_t *r;
    int state;
    uint64_t serial; /* bumped whenever the slot gives up its episode */
    uint64_t number, seed, id;
    int env;
    int tries;
    ag_backoff_t resend; /* of the request in flight, after ERROR_OVERLOADED */
    uint64_t resend_at;  /* loop time (ms) to resend it; 0 = none due */
    int step_seat;       /* whose action the Step in flight carries */
    int refused;         /* refusals in a row of step_seat's action (ERROR_INVALID_ACTION) */
    ag_rng_t rng;
    float returns[AG_RUNNER_MAX_SEATS];
    bool invalid;
    seat_t seats[AG_RUNNER_MAX_SEATS];
} episode_t;

/* What an outstanding env request belongs to. */
typedef struct call_ref {
    episode_t *ep;
    uint64_t serial;
} call_ref_t;

typedef struct row_ref {
    episode_t *ep;
    int seat;
    int row;
} row_ref_t;

typedef struct retry {
    uint64_t number;
    int tries;
} retry_t;

/* An env server episodes are spread over; a slot whose client is NULL is free. */
typedef struct env_slot {
    ag_rpc_client_t *client;
    char *endpoint;
    uint64_t started; /* episodes reset on it */
} env_slot_t;

typedef struct policy {
    ag_model_t *model;
    ag_sampler_t *sampler;
    ag_model_config_t cfg;
    uint64_t version;
    uint64_t gen;
    char label[AG_RUNNER_NAME_MAX];
    bool trainable;
    bool hold;
    int acting;
    int n_slots, max_rows;
    int32_t *row_slot, *row_tok;
    row_ref_t *last;
} policy_t;

struct ag_runner {
    uv_loop_t *loop;
    ag_runner_config_t cfg;
    char *game, *options_buf;
    ag_kv_t opt_kv[MAX_OPTIONS];
    int n_options;
    Agora__V1__KeyValue kv[MAX_OPTIONS];
    Agora__V1__KeyValue *kv_ptrs[MAX_OPTIONS];
    char *bots[AG_RUNNER_MAX_SEATS];
    char bot_labels[AG_RUNNER_MAX_SEATS][80];
    void *zctx;
    env_slot_t env[MAX_ENVS];
    int n_env; /* slots in use at some time: env[0 .. n_env) */
    int next_env;
    policy_t pol[AG_RUNNER_MAX_POLICIES];
    episode_t *eps;
    int n_eps;
    uint64_t next_number;
    retry_t *retry; /* episodes to replay */
    size_t n_retry;
    uv_timer_t resend_timer; /* wakes the loop for the next due resend */
    ag_rng_t jitter;         /* of the resend pauses */
    bool started, stopping;
    int in_flight;         /* episodes neither IDLE nor CLOSED */
    char *action;          /* scratch for one action's text */
    float *logits, *probs; /* sampling scratch (vocab) */
    ag_sample_entry_t *order;
    int vocab;
    ag_runner_stats_t st;
};

static void s_start_episode(episode_t *ep);
static void s_send_reset(episode_t *ep);
static void s_send_step(episode_t *ep);
static void s_on_resend(uv_timer_t *t);

static uint64_t s_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0x9e3779b97f4a7c15ULL);
    return ag_splitmix64(&x);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if invalid. */
static size_t s_utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c == 0)
        return 0;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        len = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        len = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        len = 4, min = 0x10000;
    else
        return 0;
    if (len > n)
        return 0;
    unsigned cp = c & (0xff >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t ag_runner_sanitize_utf8(char *text, size_t len)
{
    size_t fixed = 0;
    for (size_t i = 0; i < len;) {
        size_t n = s_utf8_len((const unsigned char *)text + i, len - i);
        if (n == 0) {
            text[i++] = '?';
            fixed++;
        } else {
            i += n;
        }
    }
    return fixed;
}

size_t ag_runner_transcript(const ag_seq_t *s, char *buf, size_t cap)
{
    if (!cap)
        return 0;
    size_t n = 0, action = 0, t = 0;
    bool in_action = false;
    for (size_t i = 0; i < s->len; i++) {
        bool gen = s->generated[i] != 0;
        if (gen && !in_action) {
            in_action = true;
            action = n;
        } else if (!gen && in_action) {
            ag_runner_sanitize_utf8(buf + action, n - action);
            in_action = false;
        }
        if (s->tokens[i] >= 0 && s->tokens[i] < AG_VOCAB_BYTES && n + 1 < cap)
            buf[n++] = (char)s->tokens[i];
        while (t < s->n_turns && s->turn_end[t] < i)
            t++;
        /* Two actions with no observation between them were still sent apart. */
        if (in_action && t < s->n_turns && s->turn_end[t] == i) {
            ag_runner_sanitize_utf8(buf + action, n - action);
            in_action = false;
        }
    }
    if (in_action)
        ag_runner_sanitize_utf8(buf + action, n - action);
    buf[n] = '\0';
    return n;
}

/* ---- env requests ---- */

static call_ref_t *s_ref(episode_t *ep)
{
    call_ref_t *ref = malloc(sizeof *ref);
    if (ref) {
        ref->ep = ep;
        ref->serial = ep->serial;
    }
    return ref;
}

static void s_close_done(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                         size_t extra_len)
{
}

/* Asks the env server to forget an episode we give up on (the reply does not matter). */
static void s_send_close(ag_runner_t *r, int env, uint64_t id)
{
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    close.episode_id = id;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
    req.close = &close;
    if (r->env[env].client)
        ag_rpc_call(r->env[env].client, &req.base, s_close_done, NULL);
}

static void s_set_state(episode_t *ep, int state)
{
    ag_runner_t *r = ep->r;
    bool was = ep->state != EP_IDLE && ep->state != EP_CLOSED;
    bool is = state != EP_IDLE && state != EP_CLOSED;
    r->in_flight += (int)is - (int)was;
    ep->state = state;
}

/* Ends the slot's episode without emitting it: seats stop acting, the slot moves on. */
static void s_release(episode_t *ep)
{
    ag_runner_t *r = ep->r;
    for (int s = 0; s < r->cfg.n_seats; s++) {
        seat_t *seat = &ep->seats[s];
        int p = r->cfg.seats[s].policy;
        if (seat->acting && p >= 0)
            r->pol[p].acting--;
        seat->acting = false;
        seat->want = false;
    }
    ep->serial++;
    ep->resend_at = 0;
    s_set_state(ep, EP_IDLE);
}

static void s_fail(episode_t *ep, const char *what)
{
    ag_runner_t *r = ep->r;
    r->st.env_errors++;
    ag_warn("runner", "episode %llu (seed %llu): %s", (unsigned long long)ep->number,
            (unsigned long long)ep->seed, what);
    if (ep->id)
        s_send_close(r, ep->env, ep->id);
    if (r->cfg.retry_failed && ep->tries < MAX_TRIES) {
        retry_t *q = realloc(r->retry, (r->n_retry + 1) * sizeof *q);
        if (q) {
            r->retry = q;
            r->retry[r->n_retry++] = (retry_t){ep->number, ep->tries};
        }
    }
    s_release(ep);
    s_start_episode(ep);
}

static void s_emit(episode_t *ep, Agora__V1__KeyValue **info, size_t n_info,
                   Agora__V1__Metric **metrics, size_t n_metrics, bool truncated, int invalid_seat)
{
    ag_runner_t *r = ep->r;
    ag_runner_result_t res = {
        .number = ep->number,
        .seed = ep->seed,
        .game = r->game,
        .n_seats = r->cfg.n_seats,
        .info = info,
        .n_info = n_info,
        .metrics = metrics,
        .n_metrics = n_metrics,
        .truncated = truncated,
        .invalid_action = ep->invalid,
        .invalid_ended = invalid_seat >= 0,
        .invalid_seat = invalid_seat,
    };
    for (int s = 0; s < r->cfg.n_seats; s++) {
        int p = r->cfg.seats[s].policy;
        res.policy[s] = p;
        res.returns[s] = ep->returns[s];
        if (p >= 0) {
            res.label[s] = r->pol[p].label;
            res.trainable[s] = r->pol[p].trainable;
            res.seq[s] = &ep->seats[s].seq;
        } else {
            res.label[s] = r->bot_labels[s];
        }
    }
    r->st.finished++;
    r->st.ctx_streak = 0;
    if (r->cfg.on_episode)
        r->cfg.on_episode(r->cfg.arg, &res);
}

static void s_add_rewards(episode_t *ep, const float *rewards, size_t n)
{
    ag_runner_t *r = ep->r;
    for (size_t s = 0; s < n && s < (size_t)r->cfg.n_seats; s++) {
        ep->returns[s] += rewards[s];
        if (r->cfg.seats[s].policy >= 0)
            ag_seq_reward(&ep->seats[s].seq, rewards[s]);
    }
}

/* Seat s's transcript cannot take its next observation of obs_len bytes: the
 * episode is dropped. The first time is an error the user must see at once
 * (a game whose transcripts never fit trains nothing); later ones are counted. */
static void s_overflow(episode_t *ep, int s, size_t obs_len)
{
    ag_runner_t *r = ep->r;
    const seat_t *seat = &ep->seats[s];
    const int ctx = r->pol[r->cfg.seats[s].policy].cfg.ctx;
    r->st.dropped_ctx++;
    r->st.ctx_streak++;
    ag_log(r->st.dropped_ctx == 1 ? AG_LOG_ERROR : AG_LOG_DEBUG, "runner",
           "game %s, episode %llu (seed %llu), seat %d: the transcript needs %zu tokens (%zu so "
           "far, a %zu-byte observation and one to act) but the model's context (model.ctx) is "
           "%d: the episode is dropped, as is every one that does not fit (dropped_context)",
           r->game, (unsigned long long)ep->number, (unsigned long long)ep->seed, s,
           seat->seq.len + obs_len + 1, seat->seq.len, obs_len, ctx);
    s_send_close(r, ep->env, ep->id);
    s_release(ep);
    s_start_episode(ep);
}

/*
 * The env refused the action in flight (ERROR_INVALID_ACTION: not a legal
 * move, the episode unchanged). The refused turn keeps its place in the
 * transcript, credited -invalid_penalty, and the seat samples again, reading
 * it; after invalid_retries refusals in a row, or with no room left in the
 * context, the episode is closed and emitted truncated (see runner.h).
 */
static void s_refused(episode_t *ep, const char *message)
{
    ag_runner_t *r = ep->r;
    const int s = ep->step_seat;
    seat_t *seat = &ep->seats[s];
    const int ctx = r->pol[r->cfg.seats[s].policy].cfg.ctx;
    ag_seq_reward(&seat->seq, -r->cfg.invalid_penalty);
    if (ep->refused < r->cfg.invalid_retries && seat->seq.len < (size_t)ctx) {
        ep->refused++;
        r->st.invalid_resampled++;
        if (ag_log_get_level() <= AG_LOG_DEBUG) {
            char text[128];
            ag_seq_text(&seat->seq, seat->turn_start, seat->seq.len, text, sizeof text);
            ag_runner_sanitize_utf8(text, strlen(text));
            ag_debug("runner", "episode %llu, seat %d: action \"%s\" refused (%s); resample %d",
                     (unsigned long long)ep->number, s, text, message ? message : "", ep->refused);
        }
        seat->want = true;
        s_set_state(ep, EP_PLAY);
        return;
    }
    r->st.invalid_ended++;
    ag_log(r->st.invalid_ended == 1 ? AG_LOG_WARN : AG_LOG_DEBUG, "runner",
           "game %s, episode %llu (seed %llu), seat %d: the env server refused its action as "
           "invalid (%d in a row, the limit; last reason: %s): the episode is ended, emitted "
           "truncated with each refused turn credited %g (invalid_ended)",
           r->game, (unsigned long long)ep->number, (unsigned long long)ep->seed, s,
           ep->refused + 1, message && message[0] ? message : "no reason given",
           0.0 - (double)r->cfg.invalid_penalty);
    s_send_close(r, ep->env, ep->id);
    s_emit(ep, NULL, 0, NULL, 0, true, s);
    s_release(ep);
    s_start_episode(ep);
}

/* The env says seat to_act must act on obs: queue it, unless it would overflow the context. */
static void s_observe(episode_t *ep, uint32_t to_act, const char *obs)
{
    ag_runner_t *r = ep->r;
    if (to_act >= (uint32_t)r->cfg.n_seats || r->cfg.seats[to_act].policy < 0) {
        char why[96];
        snprintf(why, sizeof why, "env asked seat %u to act, which is not a client seat", to_act);
        s_fail(ep, why);
        return;
    }
    seat_t *seat = &ep->seats[to_act];
    const policy_t *p = &r->pol[r->cfg.seats[to_act].policy];
    size_t len = obs ? strlen(obs) : 0;
    /* Room for the observation and at least one sampled token. */
    if (seat->seq.len + len + 1 > (size_t)p->cfg.ctx) {
        s_overflow(ep, to_act, len);
        return;
    }
    if (ag_seq_context(&seat->seq, obs ? obs : "", len) < 0) {
        s_fail(ep, "out of memory");
        return;
    }
    seat->want = true;
    s_set_state(ep, EP_PLAY);
}

/* Arms the timer for the earliest resend due, or stops it. */
static void s_arm_resend(ag_runner_t *r)
{
    uint64_t due = 0;
    for (int e = 0; e < r->n_eps; e++)
        if (r->eps[e].resend_at && (!due || r->eps[e].resend_at < due))
            due = r->eps[e].resend_at;
    if (!due) {
        uv_timer_stop(&r->resend_timer);
        return;
    }
    uint64_t now = uv_now(r->loop);
    uv_timer_start(&r->resend_timer, s_on_resend, due > now ? due - now : 0, 0);
}

static void s_on_resend(uv_timer_t *t)
{
    ag_runner_t *r = t->data;
    uint64_t now = uv_now(r->loop);
    for (int e = 0; e < r->n_eps; e++) {
        episode_t *ep = &r->eps[e];
        if (!ep->resend_at || ep->resend_at > now)
            continue;
        ep->resend_at = 0;
        if (ep->state == EP_RESET)
            s_send_reset(ep);
        else if (ep->state == EP_STEP)
            s_send_step(ep);
    }
    s_arm_resend(r);
}

/* The env server answered the request in flight ERROR_OVERLOADED, which it did
 * not apply: the same request goes again after a pause. */
static void s_resend_later(episode_t *ep, const char *what, const char *message)
{
    ag_runner_t *r = ep->r;
    const uint64_t pause = ag_backoff_next_ms(&ep->resend, &r->jitter);
    r->st.overloaded++;
    ag_debug("runner", "episode %llu: %s: ERROR_OVERLOADED %s; resend %u in %llu ms",
             (unsigned long long)ep->number, what, message ? message : "", ep->resend.attempts,
             (unsigned long long)pause);
    ep->resend_at = uv_now(r->loop) + pause;
    s_arm_resend(r);
}

/* Common checks of an env reply; returns the reply as EnvReply, or NULL after
 * failing ep or setting its request to be resent. */
static const Agora__V1__EnvReply *s_reply(episode_t *ep, int status, const ProtobufCMessage *msg,
                                          const char *what)
{
    char why[1200];
    if (status < 0) {
        snprintf(why, sizeof why, "%s: %s", what,
                 status == -ETIMEDOUT ? "no reply from the env server" : strerror(-status));
        s_fail(ep, why);
        return NULL;
    }
    const Agora__V1__EnvReply *rep = (const Agora__V1__EnvReply *)msg;
    if (rep->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR) {
        const Agora__V1__Error *e = rep->error;
        if (e && e->code == AGORA__V1__ERROR_CODE__ERROR_OVERLOADED &&
            ep->resend.attempts < MAX_RESENDS) {
            s_resend_later(ep, what, e->message);
            return NULL;
        }
        snprintf(why, sizeof why, "%s: %s %s", what, ag_error_name(e ? e->code : 0),
                 e && e->message ? e->message : "");
        s_fail(ep, why);
        return NULL;
    }
    return rep;
}

static void s_reset_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    call_ref_t ref = *(call_ref_t *)arg;
    free(arg);
    if (status == -ECANCELED || ref.ep->serial != ref.serial)
        return;
    episode_t *ep = ref.ep;
    ag_runner_t *r = ep->r;
    const Agora__V1__EnvReply *rep = s_reply(ep, status, msg, "reset");
    if (!rep)
        return;
    const Agora__V1__ResetReply *rr = rep->reset;
    if (rep->body_case != AGORA__V1__ENV_REPLY__BODY_RESET || !rr) {
        s_fail(ep, "reset: unexpected reply");
        return;
    }
    ep->id = rr->episode_id;
    if (rr->num_players != (uint32_t)r->cfg.n_seats) {
        char why[96];
        snprintf(why, sizeof why, "reset: the game has %u players, configured for %d",
                 rr->num_players, r->cfg.n_seats);
        s_fail(ep, why);
        return;
    }
    s_add_rewards(ep, rr->rewards, rr->n_rewards);
    if (rr->terminated) {
        s_emit(ep, rr->info, rr->n_info, rr->metrics, rr->n_metrics, false, -1);
        s_release(ep);
        s_start_episode(ep);
        return;
    }
    s_observe(ep, rr->to_act, rr->observation);
}

static void s_step_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                        size_t extra_len)
{
    call_ref_t ref = *(call_ref_t *)arg;
    free(arg);
    if (status == -ECANCELED || ref.ep->serial != ref.serial)
        return;
    episode_t *ep = ref.ep;
    const Agora__V1__EnvReply *refusal = (const Agora__V1__EnvReply *)msg;
    if (status == 0 && refusal->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR && refusal->error &&
        refusal->error->code == AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION) {
        s_refused(ep, refusal->error->message);
        return;
    }
    const Agora__V1__EnvReply *rep = s_reply(ep, status, msg, "step");
    if (!rep)
        return;
    const Agora__V1__StepReply *sr = rep->step;
    if (rep->body_case != AGORA__V1__ENV_REPLY__BODY_STEP || !sr) {
        s_fail(ep, "step: unexpected reply");
        return;
    }
    ep->refused = 0;
    s_add_rewards(ep, sr->rewards, sr->n_rewards);
    if (sr->invalid_action) {
        ep->invalid = true;
        ep->r->st.invalid_actions++;
    }
    if (sr->terminated || sr->truncated) {
        s_emit(ep, sr->info, sr->n_info, sr->metrics, sr->n_metrics, sr->truncated, -1);
        s_release(ep);
        s_start_episode(ep);
        return;
    }
    s_observe(ep, sr->to_act, sr->observation);
}

static int s_live_envs(const ag_runner_t *r)
{
    int n = 0;
    for (int i = 0; i < r->n_env; i++)
        n += r->env[i].client != NULL;
    return n;
}

/* The next live env server, round-robin (there is one: s_live_envs > 0). */
static int s_pick_env(ag_runner_t *r)
{
    for (int k = 0; k < r->n_env; k++) {
        const int i = (r->next_env + k) % r->n_env;
        if (r->env[i].client) {
            r->next_env = (i + 1) % r->n_env;
            return i;
        }
    }
    return 0;
}

static void s_start_episode(episode_t *ep)
{
    ag_runner_t *r = ep->r;
    if (r->stopping) {
        s_set_state(ep, EP_CLOSED);
        return;
    }
    /* No env server at the moment: the slot waits, IDLE, for ag_runner_set_envs. */
    if (s_live_envs(r) == 0)
        return;
    uint64_t number;
    if (r->n_retry) {
        /* A failed episode's own slot takes its replay at once, so no slot waits for one. */
        number = r->retry[0].number;
        ep->tries = r->retry[0].tries + 1;
        memmove(r->retry, r->retry + 1, (r->n_retry - 1) * sizeof *r->retry);
        r->n_retry--;
    } else if (r->cfg.max_episodes && r->next_number >= r->cfg.max_episodes) {
        s_set_state(ep, EP_CLOSED);
        return;
    } else {
        number = r->next_number++;
        ep->tries = 1;
    }
    ep->number = number;
    ep->seed = r->cfg.game_seed ? r->cfg.game_seed(r->cfg.seed_arg, number) : r->cfg.seed + number;
    ag_rng_seed(&ep->rng, s_mix(r->cfg.seed, number));
    ep->id = 0;
    ep->invalid = false;
    ep->refused = 0;
    ep->env = s_pick_env(r);
    r->env[ep->env].started++;
    for (int s = 0; s < r->cfg.n_seats; s++) {
        seat_t *seat = &ep->seats[s];
        ep->returns[s] = 0;
        seat->want = seat->acting = false;
        seat->fed = 0;
        if (seat->slot >= 0 && r->pol[r->cfg.seats[s].policy].sampler)
            ag_sampler_reset(r->pol[r->cfg.seats[s].policy].sampler, seat->slot);
        if (seat->slot >= 0 && ag_seq_begin(&seat->seq) < 0) {
            ag_error("runner", "out of memory");
            s_set_state(ep, EP_CLOSED);
            return;
        }
    }

    r->st.started++;
    ep->resend = ag_backoff_make(RESEND_FIRST_MS, RESEND_MAX_MS);
    s_set_state(ep, EP_RESET);
    s_send_reset(ep);
}

static void s_send_reset(episode_t *ep)
{
    ag_runner_t *r = ep->r;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = r->game;
    reset.seed = ep->seed;
    reset.n_options = (size_t)r->n_options;
    reset.options = r->kv_ptrs;
    reset.n_seat_bots = (size_t)r->cfg.n_seats;
    reset.seat_bots = r->bots;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    call_ref_t *ref = s_ref(ep);
    int rc = ref ? ag_rpc_call(r->env[ep->env].client, &req.base, s_reset_done, ref) : -ENOMEM;
    if (rc < 0) {
        free(ref);
        ag_error("runner", "cannot send reset: %s", strerror(-rc));
        ep->serial++;
        s_set_state(ep, EP_CLOSED);
    }
}

/* The seat's action is complete: close the turn and send it. */
static void s_end_action(episode_t *ep, int s)
{
    ag_runner_t *r = ep->r;
    seat_t *seat = &ep->seats[s];
    policy_t *p = &r->pol[r->cfg.seats[s].policy];
    seat->acting = false;
    p->acting--;
    r->st.actions++;
    if (ag_seq_end_turn(&seat->seq, p->version) < 0) {
        s_fail(ep, "out of memory");
        return;
    }
    ep->step_seat = s;
    ep->resend = ag_backoff_make(RESEND_FIRST_MS, RESEND_MAX_MS);
    s_set_state(ep, EP_STEP);
    s_send_step(ep);
}

/* Sends the Step of the action seat ep->step_seat has completed (again, after
 * ERROR_OVERLOADED: the text is read from the transcript each time). */
static void s_send_step(episode_t *ep)
{
    ag_runner_t *r = ep->r;
    seat_t *seat = &ep->seats[ep->step_seat];
    size_t n = ag_seq_text(&seat->seq, seat->turn_start, seat->seq.len, r->action,
                           (size_t)r->cfg.max_action_tokens + 1);
    ag_runner_sanitize_utf8(r->action, n);

    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    step.episode_id = ep->id;
    step.player = (uint32_t)ep->step_seat;
    step.action = r->action;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &step;
    call_ref_t *ref = s_ref(ep);
    int rc = ref ? ag_rpc_call(r->env[ep->env].client, &req.base, s_step_done, ref) : -ENOMEM;
    if (rc < 0) {
        free(ref);
        s_fail(ep, "cannot send step");
    }
}

/* ---- sampling ---- */

/* Queues the seat's unfed tokens as rows (up to the budget); true if all fit. */
static bool s_gather(policy_t *p, episode_t *ep, int s, int *n, int *n_last, ag_runner_t *r)
{
    seat_t *seat = &ep->seats[s];
    if (seat->fed_gen != p->gen) {
        r->st.refed += seat->fed;
        ag_sampler_reset(p->sampler, seat->slot);
        seat->fed = 0;
        seat->fed_gen = p->gen;
    }
    size_t pending = seat->seq.len - seat->fed;
    size_t room = (size_t)(p->max_rows - *n);
    size_t take = pending < room ? pending : room;
    for (size_t i = 0; i < take; i++) {
        p->row_slot[*n] = seat->slot;
        p->row_tok[*n] = seat->seq.tokens[seat->fed + i];
        (*n)++;
    }
    seat->fed += take;
    if (take == pending && take > 0) {
        p->last[*n_last] = (row_ref_t){ep, s, *n - 1};
        (*n_last)++;
        return true;
    }
    return false;
}

/* Draws a token of the action alphabet (bytes and EOT: BOS, PAD and the
 * reserved ids are never an action) from row `row` of the last feed. */
static int s_draw(ag_runner_t *r, policy_t *p, int row, ag_rng_t *rng, ag_sample_t *out)
{
    const float *z = ag_sampler_logits(p->sampler, row);
    const int V = p->cfg.vocab;
    if (!z)
        return -EINVAL;
    memcpy(r->logits, z, (size_t)V * sizeof *z);
    for (int t = AG_VOCAB_BYTES; t < V; t++)
        if (t != AG_TOK_EOT)
            r->logits[t] = -INFINITY;
    int rc = ag_sample_logits(r->logits, V, &r->cfg.sample, rng, r->probs, r->order, out);
    out->value = ag_sampler_value(p->sampler, row);
    return rc;
}

static int s_sample_policy(ag_runner_t *r, int pi)
{
    policy_t *p = &r->pol[pi];
    if (!p->sampler)
        return 0;
    int n = 0, n_last = 0;
    /* Pass 0: seats mid-action (one row each); pass 1: seats starting an action. */
    for (int pass = 0; pass < 2; pass++) {
        for (int e = 0; e < r->n_eps; e++) {
            episode_t *ep = &r->eps[e];
            if (ep->state != EP_PLAY)
                continue;
            for (int s = 0; s < r->cfg.n_seats; s++) {
                if (r->cfg.seats[s].policy != pi)
                    continue;
                seat_t *seat = &ep->seats[s];
                bool mid = seat->acting && seat->gen > 0 && seat->fed_gen == p->gen &&
                           seat->seq.len - seat->fed == 1;
                if (pass == 0 && !mid)
                    continue;
                if (pass == 1) {
                    if (mid)
                        continue;
                    if (!seat->acting) {
                        if (!seat->want || p->hold)
                            continue;
                        seat->want = false;
                        seat->acting = true;
                        seat->gen = 0;
                        seat->turn_start = seat->seq.len;
                        p->acting++;
                    }
                    if (n == p->max_rows)
                        continue;
                }
                s_gather(p, ep, s, &n, &n_last, r);
            }
        }
    }
    if (n == 0)
        return 0;
    double t0 = ag_now();
    int rc = ag_sampler_feed(p->sampler, n, p->row_slot, p->row_tok);
    if (rc < 0) {
        ag_error("runner", "forward pass failed: %s", strerror(-rc));
        return rc;
    }
    r->st.forward_calls++;
    r->st.tokens_fed += (uint64_t)n;
    const int ctx = p->cfg.ctx;
    for (int i = 0; i < n_last; i++) {
        episode_t *ep = p->last[i].ep;
        int s = p->last[i].seat;
        seat_t *seat = &ep->seats[s];
        ag_sample_t out;
        rc = s_draw(r, p, p->last[i].row, &ep->rng, &out);
        if (rc < 0 || ag_seq_generated(&seat->seq, out.token, out.logprob, out.value) < 0) {
            ag_error("runner", "sampling failed");
            return rc < 0 ? rc : -ENOMEM;
        }
        seat->gen++;
        r->st.tokens_sampled++;
        if (out.token == AG_TOK_EOT || seat->gen >= r->cfg.max_action_tokens ||
            seat->seq.len >= (size_t)ctx)
            s_end_action(ep, s);
    }
    r->st.sample_s += ag_now() - t0;
    return n;
}

int ag_runner_sample(ag_runner_t *r)
{
    int total = 0;
    for (int p = 0; p < r->cfg.n_policies; p++) {
        int n = s_sample_policy(r, p);
        if (n < 0)
            return n;
        total += n;
    }
    return total;
}

/* ---- lifecycle ---- */

ag_runner_t *ag_runner_create(uv_loop_t *loop, void *zctx, const ag_runner_config_t *cfg)
{
    if (cfg->n_seats < 1 || cfg->n_seats > AG_RUNNER_MAX_SEATS || cfg->slots < 1 ||
        cfg->n_policies < 0 || cfg->n_policies > AG_RUNNER_MAX_POLICIES ||
        cfg->max_action_tokens < 1 || cfg->max_action_tokens > 4096 || !cfg->game ||
        !cfg->game[0] || !cfg->env || cfg->invalid_retries < 0 || !isfinite(cfg->invalid_penalty)) {
        ag_error("runner", "bad runner configuration");
        return NULL;
    }
    for (int s = 0; s < cfg->n_seats; s++)
        if (cfg->seats[s].policy >= cfg->n_policies ||
            (cfg->seats[s].policy < 0 && !cfg->seats[s].bot[0])) {
            ag_error("runner", "seat %d: no policy and no bot", s);
            return NULL;
        }
    ag_runner_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->loop = loop;
    uv_timer_init(loop, &r->resend_timer);
    r->resend_timer.data = r;
    r->cfg = *cfg;
    ag_rng_seed(&r->jitter, s_mix(cfg->seed, uv_hrtime()));
    if (r->cfg.env_timeout_ms <= 0)
        r->cfg.env_timeout_ms = 5000;
    const char *options = cfg->options ? cfg->options : "";
    r->game = strdup(cfg->game);
    r->options_buf = malloc(strlen(options) + 1);
    r->action = malloc((size_t)cfg->max_action_tokens + 1);
    if (!r->game || !r->options_buf || !r->action)
        goto fail;
    r->n_options =
        ag_kv_parse(options, r->options_buf, strlen(options) + 1, r->opt_kv, MAX_OPTIONS);
    if (r->n_options < 0) {
        ag_error("runner", "bad game options \"%s\": expected KEY=VALUE,KEY=VALUE, each key once",
                 options);
        goto fail;
    }
    for (int i = 0; i < r->n_options; i++) {
        agora__v1__key_value__init(&r->kv[i]);
        r->kv[i].key = (char *)r->opt_kv[i].key;
        r->kv[i].value = (char *)r->opt_kv[i].value;
        r->kv_ptrs[i] = &r->kv[i];
    }
    for (int s = 0; s < cfg->n_seats; s++) {
        r->bots[s] = cfg->seats[s].policy < 0 ? r->cfg.seats[s].bot : (char *)"";
        snprintf(r->bot_labels[s], sizeof r->bot_labels[s], "bot:%s", cfg->seats[s].bot);
    }

    r->zctx = zctx;
    if (ag_runner_set_envs(r, cfg->env) < 0)
        goto fail;
    if (r->n_env == 0) {
        ag_error("runner", "no env endpoint given");
        goto fail;
    }

    r->n_eps = cfg->slots;
    r->eps = calloc((size_t)r->n_eps, sizeof *r->eps);
    if (!r->eps)
        goto fail;
    int per_policy[AG_RUNNER_MAX_POLICIES] = {0};
    for (int e = 0; e < r->n_eps; e++) {
        episode_t *ep = &r->eps[e];
        ep->r = r;
        ep->state = EP_IDLE;
        for (int s = 0; s < cfg->n_seats; s++) {
            seat_t *seat = &ep->seats[s];
            ag_seq_init(&seat->seq);
            int p = cfg->seats[s].policy;
            seat->slot = p >= 0 ? per_policy[p]++ : -1;
        }
    }
    for (int p = 0; p < cfg->n_policies; p++)
        r->pol[p].n_slots = per_policy[p];
    return r;
fail:
    ag_runner_destroy(&r);
    return NULL;
}

/* The runner's memory goes once the loop has closed its timer. */
static void s_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ag_runner_destroy(ag_runner_t **self)
{
    if (!self || !*self)
        return;
    ag_runner_t *r = *self;
    *self = NULL;
    for (int i = 0; i < r->n_env; i++) {
        ag_rpc_client_destroy(&r->env[i].client);
        free(r->env[i].endpoint);
    }
    for (int p = 0; p < AG_RUNNER_MAX_POLICIES; p++) {
        ag_sampler_destroy(&r->pol[p].sampler);
        free(r->pol[p].row_slot);
        free(r->pol[p].row_tok);
        free(r->pol[p].last);
    }
    if (r->eps)
        for (int e = 0; e < r->n_eps; e++)
            for (int s = 0; s < AG_RUNNER_MAX_SEATS; s++)
                ag_seq_finish(&r->eps[e].seats[s].seq);
    free(r->eps);
    free(r->retry);
    free(r->game);
    free(r->options_buf);
    free(r->action);
    free(r->logits);
    free(r->probs);
    free(r->order);
    uv_timer_stop(&r->resend_timer);
    uv_close((uv_handle_t *)&r->resend_timer, s_timer_closed);
}

static long s_find_env(const ag_runner_t *r, const char *endpoint, size_t len)
{
    for (int i = 0; i < r->n_env; i++)
        if (r->env[i].client && strlen(r->env[i].endpoint) == len &&
            !strncmp(r->env[i].endpoint, endpoint, len))
            return i;
    return -1;
}

/* Whether endpoint is one of the comma- or space-separated list. */
static bool s_listed(const char *list, const char *endpoint)
{
    const size_t want = strlen(endpoint);
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        const size_t n = strcspn(p, ", ");
        if (n == want && !strncmp(p, endpoint, n))
            return true;
        p += n;
    }
    return false;
}

/* A new env server in a free slot. */
static int s_add_env(ag_runner_t *r, const char *endpoint, size_t len)
{
    int i = 0;
    while (i < r->n_env && r->env[i].client)
        i++;
    if (i == MAX_ENVS) {
        ag_error("runner", "more than %d env endpoints", MAX_ENVS);
        return -ENOSPC;
    }
    /* One attempt per request: a Step is not idempotent, and a second copy of
     * one that was applied (its reply lost or late) would be applied again
     * whenever the same seat acts next (a critic against a bot). A missed
     * deadline fails the episode instead. */
    const ag_rpc_client_opts_t ro = {
        .timeout_ms = r->cfg.env_timeout_ms,
        .attempts = 1,
        .max_reply = 16 << 20,
    };
    char *ep = strndup(endpoint, len);
    ag_rpc_client_t *c =
        ep ? ag_rpc_client_create(r->loop, r->zctx, ep, &agora__v1__env_reply__descriptor, &ro)
           : NULL;
    if (!c) {
        ag_error("runner", "cannot connect to env server %.*s", (int)len, endpoint);
        free(ep);
        return -EINVAL;
    }
    free(r->env[i].endpoint);
    r->env[i] = (env_slot_t){.client = c, .endpoint = ep};
    if (i == r->n_env)
        r->n_env++;
    return 0;
}

/* An env server that left: the episodes on it end (not emitted) and start again on
 * another one; their requests in flight are cancelled. */
static void s_drop_env(ag_runner_t *r, int i)
{
    int moved = 0;
    for (int e = 0; e < r->n_eps; e++) {
        episode_t *ep = &r->eps[e];
        if (ep->env != i || ep->state == EP_IDLE || ep->state == EP_CLOSED)
            continue;
        s_release(ep);
        moved++;
    }
    ag_info("runner", "env server %s left (%llu episodes started on it): %d episodes in play "
                      "there start again elsewhere",
            r->env[i].endpoint, (unsigned long long)r->env[i].started, moved);
    r->st.env_left += (uint64_t)moved;
    ag_rpc_client_destroy(&r->env[i].client);
}

int ag_runner_set_envs(ag_runner_t *r, const char *list)
{
    list = list ? list : "";
    bool changed = false;
    for (int i = 0; i < r->n_env; i++)
        if (r->env[i].client && !s_listed(list, r->env[i].endpoint)) {
            s_drop_env(r, i);
            changed = true;
        }
    for (const char *p = list; *p;) {
        p += strspn(p, ", ");
        const size_t n = strcspn(p, ", ");
        if (n && s_find_env(r, p, n) < 0) {
            int rc = s_add_env(r, p, n);
            if (rc < 0)
                return rc;
            if (r->started)
                ag_info("runner", "env server %.*s joined", (int)n, p);
            changed = true;
        }
        p += n;
    }
    /* Slots that waited for an env server (or whose server left) start now. */
    if (changed && r->started && !r->stopping)
        for (int e = 0; e < r->n_eps; e++)
            if (r->eps[e].state == EP_IDLE)
                s_start_episode(&r->eps[e]);
    return 0;
}

int ag_runner_env_count(const ag_runner_t *r)
{
    return s_live_envs(r);
}

int ag_runner_set_policy(ag_runner_t *r, int pi, ag_model_t *model, uint64_t version,
                         const char *label, bool trainable)
{
    if (pi < 0 || pi >= r->cfg.n_policies || !model)
        return -EINVAL;
    policy_t *p = &r->pol[pi];
    if (p->acting)
        return -EBUSY;
    const ag_model_config_t *mc = ag_model_config(model);
    if (!p->sampler && p->n_slots > 0) {
        p->cfg = *mc;
        p->max_rows = p->n_slots + PROMPT_ROWS;
        p->sampler = ag_sampler_create(model, p->n_slots, p->max_rows);
        p->row_slot = calloc((size_t)p->max_rows, sizeof *p->row_slot);
        p->row_tok = calloc((size_t)p->max_rows, sizeof *p->row_tok);
        p->last = calloc((size_t)p->max_rows, sizeof *p->last);
        if (mc->vocab > r->vocab) {
            free(r->logits);
            free(r->probs);
            free(r->order);
            r->logits = malloc((size_t)mc->vocab * sizeof *r->logits);
            r->probs = malloc((size_t)mc->vocab * sizeof *r->probs);
            r->order = malloc((size_t)mc->vocab * sizeof *r->order);
            r->vocab = r->logits && r->probs && r->order ? mc->vocab : 0;
        }
        if (!p->sampler || !p->row_slot || !p->row_tok || !p->last || r->vocab < mc->vocab) {
            ag_error("runner", "cannot create a sampler of %d slots", p->n_slots);
            return -ENOMEM;
        }
    } else if (p->sampler && model != p->model) {
        return -EINVAL; /* the sampler is bound to its model */
    }
    p->model = model;
    p->version = version;
    p->gen++;
    p->trainable = trainable;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    return 0;
}

void ag_runner_hold(ag_runner_t *r, int p, bool hold)
{
    if (p >= 0 && p < r->cfg.n_policies)
        r->pol[p].hold = hold;
}

int ag_runner_acting(const ag_runner_t *r, int p)
{
    return p >= 0 && p < r->cfg.n_policies ? r->pol[p].acting : 0;
}

int ag_runner_start(ag_runner_t *r)
{
    if (r->started)
        return 0;
    for (int s = 0; s < r->cfg.n_seats; s++) {
        int p = r->cfg.seats[s].policy;
        if (p >= 0 && !r->pol[p].model) {
            ag_error("runner", "seat %d: policy %d has no model", s, p);
            return -EINVAL;
        }
    }
    r->started = true;
    for (int e = 0; e < r->n_eps; e++)
        if (r->eps[e].state == EP_IDLE)
            s_start_episode(&r->eps[e]);
    return 0;
}

void ag_runner_stop(ag_runner_t *r)
{
    r->stopping = true;
    for (int e = 0; e < r->n_eps; e++)
        if (r->eps[e].state == EP_IDLE)
            s_set_state(&r->eps[e], EP_CLOSED);
}

void ag_runner_abandon(ag_runner_t *r)
{
    ag_runner_stop(r);
    for (int e = 0; e < r->n_eps; e++) {
        episode_t *ep = &r->eps[e];
        if (ep->state == EP_IDLE || ep->state == EP_CLOSED)
            continue;
        if (ep->id)
            s_send_close(r, ep->env, ep->id);
        s_release(ep);
        s_set_state(ep, EP_CLOSED);
    }
}

bool ag_runner_done(const ag_runner_t *r)
{
    if (!r->started)
        return r->stopping;
    for (int e = 0; e < r->n_eps; e++)
        if (r->eps[e].state != EP_CLOSED)
            return false;
    return true;
}

void ag_runner_get_stats(const ag_runner_t *r, ag_runner_stats_t *out)
{
    *out = r->st;
}

Agora__V1__EnvReply *ag_runner_hello_game(const char *endpoint, const char *game,
                                          int deadline_ms, const Agora__V1__GameSpec **spec,
                                          int *rc, char *err, size_t errlen)
{
    *spec = NULL;
    ag_env_client_t *c = ag_env_client_create(endpoint, 1000);
    if (!c) {
        snprintf(err, errlen, "cannot connect to %s", endpoint);
        *rc = -EINVAL;
        return NULL;
    }
    ag_env_client_set_retries(c, 0);
    Agora__V1__EnvReply *rep = NULL;
    uint64_t until = uv_hrtime() + (uint64_t)deadline_ms * 1000000ULL;
    do {
        *rc = ag_env_client_hello(c, "agora-runner", &rep);
    } while (*rc == -ETIMEDOUT && uv_hrtime() < until);
    ag_env_client_destroy(&c);
    if (*rc < 0) {
        snprintf(err, errlen, "env server %s: %s", endpoint,
                 *rc == -ETIMEDOUT ? "no answer to Hello" : strerror(-*rc));
        return NULL;
    }
    char why[768];
    if (rep->body_case != AGORA__V1__ENV_REPLY__BODY_HELLO || !rep->hello) {
        snprintf(err, errlen, "env server %s answered Hello with %s", endpoint,
                 ag_env_reply_kind(rep));
        *rc = -EPROTO;
    } else if (!(*spec = ag_game_find(rep->hello, game, why, sizeof why))) {
        snprintf(err, errlen, "env server %.256s: %.500s", endpoint, why);
        *rc = -ENOENT;
    } else if ((*spec)->num_players < 1 || (*spec)->num_players > AG_RUNNER_MAX_SEATS) {
        snprintf(err, errlen, "game \"%s\" has %u players (at most %d supported)",
                 (*spec)->name, (*spec)->num_players, AG_RUNNER_MAX_SEATS);
        *rc = -EPROTO;
    } else {
        return rep;
    }
    *spec = NULL;
    agora__v1__env_reply__free_unpacked(rep, NULL);
    return NULL;
}

int ag_runner_find_game(const char *endpoint, const char *game, const char *const *bots, int n_bots,
                        int deadline_ms, ag_runner_game_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    const Agora__V1__GameSpec *gs;
    int rc;
    Agora__V1__EnvReply *rep =
        ag_runner_hello_game(endpoint, game, deadline_ms, &gs, &rc, err, errlen);
    if (!rep)
        return rc;
    rc = 0;
    for (int b = 0; b < n_bots && rc == 0; b++) {
        if (!ag_game_has_bot(gs, bots[b])) {
            snprintf(err, errlen, "game \"%s\" has no bot \"%s\"", gs->name, bots[b]);
            rc = -ENOENT;
        }
    }
    if (rc == 0) {
        snprintf(out->name, sizeof out->name, "%s", gs->name);
        out->players = (int)gs->num_players;
    }
    agora__v1__env_reply__free_unpacked(rep, NULL);
    return rc;
}
