/*
 * server.c - the environment protocol on a ROUTER socket (see server.h).
 *
 * The hot path (Step) allocates nothing of its own: the request is decoded
 * with the bounded codec, the reply is built on the stack with pointers into
 * the episode, and packed into the rpc server's reusable buffer.
 *
 * Reward-judged episodes: the Step that completes play comes back from the
 * episode held (ruling_pending). The server sends one ScoreRequest (both
 * seats' transcripts) on its reward client, a DEALER with a deadline and
 * retries, remembers the Step's peer and request id in a judge_call_t
 * hung on the episode's entry, and returns to the loop. While the call is
 * out the entry refuses Steps (NOT_YOUR_TURN), is skipped by TTL eviction,
 * and a Close takes it out of the map at once but leaves it to the call to
 * free. The call's completion either applies the scores and sends the
 * held Step's reply, or cancels the held step and sends an Error.
 */
#include "server.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "env.pb-c.h"
#include "env_client.h"
#include "episode.h"
#include "idmap.h"
#include "log.h"
#include "reward.pb-c.h"
#include "rng.h"
#include "rpc.h"

#define DEMO_MAX 256
#define MAX_OPTIONS 32
#define MAX_SEATS 8

typedef struct judge_call judge_call_t;

typedef struct entry {
    ag_episode_t *ep;
    uint64_t touched_ms;
    judge_call_t *call; /* the held final Step waits for the reward judge */
    bool closed;        /* closed while held: out of the map, freed by the call */
} entry_t;

/* A held Step: whom to answer once the reward judge has scored. */
struct judge_call {
    ag_env_server_t *s;
    entry_t *e;
    uint64_t episode_id;
    ag_rpc_peer_t peer;
    uint64_t request_id;
};

struct ag_env_server {
    uv_loop_t *loop;
    ag_rpc_server_t *rpc;
    ag_rpc_client_t *reward; /* NULL without --reward */
    uv_timer_t ttl_timer;
    ag_env_server_opts_t opts;
    uint32_t ttl_ms; /* opts.episode_ttl_s */
    char name[128];
    ag_idmap_t episodes;
    ag_rng_t id_rng;
    ag_env_server_stats_t stats;
};

static const ag_field_limit_t s_field_limits[] = {
    {&agora__v1__step_request__descriptor, "action", 4096},
    {&agora__v1__reset_request__descriptor, "game", 64},
    {&agora__v1__reset_request__descriptor, "seat_bots", MAX_SEATS},
    {&agora__v1__demo_request__descriptor, "game", 64},
    {&agora__v1__demo_request__descriptor, "bots", MAX_SEATS},
    {&agora__v1__key_value__descriptor, "key", 64},
};

static const ag_limits_t s_limits = {
    .max_string = 256,
    .max_repeated = MAX_OPTIONS,
    .fields = s_field_limits,
    .n_fields = sizeof s_field_limits / sizeof s_field_limits[0],
};

/* ---- replies ---- */

static void s_error(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t request_id,
                    Agora__V1__ErrorCode code, const char *message)
{
    s->stats.errors++;
    ag_debug("env", "request %" PRIu64 ": %s: %s", request_id, ag_error_name(code), message);
    ag_rpc_reply_error(s->rpc, peer, &agora__v1__env_reply__descriptor, request_id, code, message);
}

static Agora__V1__ErrorCode s_game_code(int rc)
{
    switch (rc) {
    case AG_GAME_EBADOPT:
    case AG_GAME_EBADBOT:
        return AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION;
    case AG_GAME_EINVAL:
        return AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION;
    case AG_GAME_ETURN:
        return AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN;
    case AG_GAME_EOVER:
        return AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE;
    case AG_GAME_ENOMEM:
        return AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
    case AG_GAME_ELIMIT:
        return AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    case AG_GAME_ERULING:
        return AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN;
    default:
        return AGORA__V1__ERROR_CODE__ERROR_INTERNAL;
    }
}

/*
 * Sends reply, or, when it would be larger than a client accepts (a game's
 * long observations, a Demo of many long transcripts), ERROR_BAD_REQUEST
 * instead and returns -E2BIG: the caller then forgets what the reply was for.
 */
static int s_reply(ag_env_server_t *s, const ag_rpc_peer_t *peer, Agora__V1__EnvReply *reply)
{
    size_t size = protobuf_c_message_get_packed_size(&reply->base);
    if (size > AG_ENV_CLIENT_MAX_REPLY) {
        char err[256];
        snprintf(err, sizeof err,
                 "the %s reply would be %zu bytes, more than the %d a client accepts%s",
                 reply->body_case == AGORA__V1__ENV_REPLY__BODY_DEMO ? "demo" : "game's", size,
                 AG_ENV_CLIENT_MAX_REPLY,
                 reply->body_case == AGORA__V1__ENV_REPLY__BODY_DEMO
                     ? ": ask for fewer transcripts"
                     : "; the episode is closed");
        s_error(s, peer, ag_envelope_request_id(&reply->base), AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                err);
        return -E2BIG;
    }
    ag_rpc_reply_msg(s->rpc, peer, &reply->base);
    return 0;
}

/* Info and metrics of a finished game, as protobuf structs in caller storage. */
typedef struct outcome_pb {
    Agora__V1__KeyValue kv[AG_GAME_MAX_INFO];
    Agora__V1__KeyValue *kvp[AG_GAME_MAX_INFO];
    Agora__V1__Metric m[AG_GAME_MAX_METRICS];
    Agora__V1__Metric *mp[AG_GAME_MAX_METRICS];
    size_t n_kv;
    size_t n_m;
} outcome_pb_t;

static void s_outcome_pb(outcome_pb_t *o, const ag_game_outcome_t *out)
{
    o->n_kv = o->n_m = 0;
    if (!out)
        return;
    for (int i = 0; i < out->num_info && i < AG_GAME_MAX_INFO; i++) {
        agora__v1__key_value__init(&o->kv[i]);
        o->kv[i].key = (char *)out->info[i].key;
        o->kv[i].value = (char *)out->info[i].value;
        o->kvp[o->n_kv++] = &o->kv[i];
    }
    for (int i = 0; i < out->num_metrics && i < AG_GAME_MAX_METRICS; i++) {
        agora__v1__metric__init(&o->m[i]);
        o->m[i].name = (char *)out->metrics[i].name;
        o->m[i].value = out->metrics[i].value;
        o->mp[o->n_m++] = &o->m[i];
    }
}

/* ---- episodes ---- */

static uint64_t s_new_id(ag_env_server_t *s)
{
    uint64_t id;
    do
        id = ag_rng_u64(&s->id_rng);
    while (!id || ag_idmap_get(&s->episodes, id));
    return id;
}

static void s_entry_free(entry_t *e)
{
    ag_episode_destroy(&e->ep);
    free(e);
}

static void s_drop(ag_env_server_t *s, uint64_t id)
{
    entry_t *e = ag_idmap_remove(&s->episodes, id);
    if (e)
        s_entry_free(e);
}

static void s_on_ttl(uv_timer_t *t)
{
    ag_env_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    ag_idmap_t *m = &s->episodes;
    /* Collect first: removal shifts entries, so the map must not change while scanning. */
    size_t n = 0, cap = m->count;
    uint64_t *old = cap ? malloc(cap * sizeof *old) : NULL;
    for (size_t i = 0; old && i < m->cap; i++) {
        entry_t *e = m->values[i];
        /* A held Step is answered within the reward deadline; its episode waits for that. */
        if (m->keys[i] && !e->call && now - e->touched_ms >= s->ttl_ms && n < cap)
            old[n++] = m->keys[i];
    }
    for (size_t i = 0; i < n; i++)
        s_drop(s, old[i]);
    free(old);
    if (n) {
        s->stats.episodes_evicted += n;
        ag_info("env", "evicted %zu idle episodes (%zu live)", n, m->count);
    }
}

/* ---- handlers ---- */

/* A game's GameSpec, with its options and metrics, in storage that s_hello allocates. */
typedef struct spec_pb {
    Agora__V1__GameSpec spec;
    Agora__V1__GameOption *optp[];
} spec_pb_t;

static Agora__V1__GameSpec *s_game_spec(const ag_game_t *game)
{
    size_t no = (size_t)game->num_options, nm = (size_t)game->num_metrics;
    spec_pb_t *pb = calloc(1, sizeof *pb + no * (sizeof pb->optp[0] + sizeof(Agora__V1__GameOption)) +
                                  nm * (sizeof(Agora__V1__MetricSpec *) +
                                        sizeof(Agora__V1__MetricSpec)));
    if (!pb)
        return NULL;
    Agora__V1__GameOption *opts = (Agora__V1__GameOption *)(pb->optp + no);
    Agora__V1__MetricSpec **metricp = (Agora__V1__MetricSpec **)(opts + no);
    Agora__V1__MetricSpec *metrics = (Agora__V1__MetricSpec *)(metricp + nm);
    Agora__V1__GameSpec *g = &pb->spec;
    agora__v1__game_spec__init(g);
    g->name = (char *)game->name;
    g->description = (char *)game->description;
    g->num_players = (uint32_t)game->num_players;
    g->n_roles = (size_t)game->num_players;
    g->roles = (char **)game->roles;
    g->n_bots = (size_t)game->num_bots;
    g->bots = (char **)game->bots;
    for (size_t i = 0; i < no; i++) {
        agora__v1__game_option__init(&opts[i]);
        opts[i].name = (char *)game->options[i].name;
        opts[i].default_value = (char *)game->options[i].default_value;
        opts[i].description = (char *)game->options[i].help;
        pb->optp[i] = &opts[i];
    }
    g->n_options = no;
    g->options = pb->optp;
    for (size_t i = 0; i < nm; i++) {
        const ag_game_metric_spec_t *m = &game->metrics[i];
        agora__v1__metric_spec__init(&metrics[i]);
        metrics[i].name = (char *)m->name;
        metrics[i].description = (char *)m->description;
        metrics[i].goal = (Agora__V1__MetricGoal)m->goal;
        metrics[i].headline = m->headline;
        metrics[i].numerator = (char *)(m->numerator ? m->numerator : "");
        metrics[i].denominator = (char *)(m->denominator ? m->denominator : "");
        metricp[i] = &metrics[i];
    }
    g->n_metrics = nm;
    g->metrics = metricp;
    return g;
}

static void s_hello(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid)
{
    size_t n_games = 0;
    const ag_game_t *const *games = ag_game_list(&n_games);
    Agora__V1__GameSpec **specp = calloc(n_games, sizeof *specp);
    for (size_t g = 0; specp && g < n_games; g++) {
        if (!(specp[g] = s_game_spec(games[g]))) {
            for (size_t i = 0; i < g; i++)
                free(specp[i]);
            free(specp);
            specp = NULL;
        }
    }
    if (!specp) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory");
        return;
    }
    Agora__V1__HelloReply hello = AGORA__V1__HELLO_REPLY__INIT;
    hello.server_name = s->name;
    hello.protocol_version = AG_PROTOCOL_VERSION;
    hello.n_games = n_games;
    hello.games = specp;
    hello.max_message_bytes = (uint32_t)s->opts.max_message_bytes;
    hello.episode_ttl_ms = s->ttl_ms;
    Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
    ag_envelope_set_header(&reply.base, rid);
    reply.body_case = AGORA__V1__ENV_REPLY__BODY_HELLO;
    reply.hello = &hello;
    s_reply(s, peer, &reply);
    for (size_t g = 0; g < n_games; g++)
        free(specp[g]);
    free(specp);
}

/* Borrows repeated KeyValue options as game options (n <= MAX_OPTIONS, checked by the codec). */
static void s_options(Agora__V1__KeyValue **kv, size_t n, ag_game_kv_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i].key = kv[i]->key;
        out[i].value = kv[i]->value;
    }
}

static void s_reset(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    const Agora__V1__ResetRequest *req)
{
    char err[AG_GAME_ERR_CAP];
    const ag_game_t *game = ag_game_find(req->game);
    if (!game) {
        snprintf(err, sizeof err, "unknown game '%s' (Hello lists the games)", req->game);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME, err);
        return;
    }
    if (s->episodes.count >= s->opts.max_episodes) {
        snprintf(err, sizeof err, "%zu live episodes: close some or retry later",
                 s->episodes.count);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, err);
        return;
    }
    ag_game_kv_t options[MAX_OPTIONS];
    s_options(req->options, req->n_options, options);
    ag_episode_t *ep = NULL;
    ag_episode_result_t res;
    int rc = ag_episode_create(&ep, game, req->seed, options, req->n_options,
                               (const char *const *)req->seat_bots, req->n_seat_bots, &res, err,
                               sizeof err);
    if (rc < 0) {
        s_error(s, peer, rid, s_game_code(rc), err);
        return;
    }
    if (ag_episode_judge(ep) && !s->reward) {
        snprintf(err, sizeof err,
                 "judge=reward:%s needs a reward server, and this agora-env was started "
                 "without one (--reward ENDPOINT)",
                 ag_episode_judge(ep));
        ag_episode_destroy(&ep);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION, err);
        return;
    }
    uint64_t id = s_new_id(s);
    entry_t *e = NULL;
    if (!res.terminated) {
        e = malloc(sizeof *e);
        if (!e || ag_idmap_put(&s->episodes, id, e) < 0) {
            free(e);
            ag_episode_destroy(&ep);
            s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory");
            return;
        }
        e->ep = ep;
        e->touched_ms = uv_now(s->loop);
        e->call = NULL;
        e->closed = false;
    }
    outcome_pb_t o;
    s_outcome_pb(&o, res.outcome);
    Agora__V1__ResetReply r = AGORA__V1__RESET_REPLY__INIT;
    r.episode_id = id;
    r.num_players = (uint32_t)res.num_players;
    r.to_act = res.to_act < 0 ? 0 : (uint32_t)res.to_act;
    r.observation = (char *)res.observation;
    r.terminated = res.terminated;
    r.n_rewards = (size_t)res.num_players;
    r.rewards = res.rewards;
    r.n_info = o.n_kv;
    r.info = o.kvp;
    r.n_metrics = o.n_m;
    r.metrics = o.mp;
    Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
    ag_envelope_set_header(&reply.base, rid);
    reply.body_case = AGORA__V1__ENV_REPLY__BODY_RESET;
    reply.reset = &r;
    int sent = s_reply(s, peer, &reply);
    if (!e)
        ag_episode_destroy(&ep);
    else if (sent < 0)
        s_drop(s, id);
}

/*
 * Sends the reply of an applied Step; the caller drops its episode when it
 * ended or when the reply could not be sent (< 0).
 */
static int s_step_reply(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                         const ag_episode_result_t *res)
{
    outcome_pb_t o;
    s_outcome_pb(&o, res->outcome);
    Agora__V1__StepReply r = AGORA__V1__STEP_REPLY__INIT;
    r.to_act = res->to_act < 0 ? 0 : (uint32_t)res->to_act;
    r.observation = (char *)res->observation;
    r.n_rewards = (size_t)res->num_players;
    r.rewards = (float *)res->rewards;
    r.terminated = res->terminated;
    r.truncated = res->truncated;
    r.invalid_action = res->invalid_action;
    r.n_info = o.n_kv;
    r.info = o.kvp;
    r.n_metrics = o.n_m;
    r.metrics = o.mp;
    Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
    ag_envelope_set_header(&reply.base, rid);
    reply.body_case = AGORA__V1__ENV_REPLY__BODY_STEP;
    reply.step = &r;
    return s_reply(s, peer, &reply);
}

/* ---- the reward judge ---- */

/* The held Step's answer when the judge did not rule: the code and why, into err. */
static Agora__V1__ErrorCode s_judge_failure(const ag_env_server_t *s, const ag_episode_t *ep,
                                            int status, const Agora__V1__RewardReply *r, char *err,
                                            size_t err_cap)
{
    const char *model = ag_episode_judge(ep);
    if (status == -ETIMEDOUT) {
        snprintf(err, err_cap,
                 "the reward judge did not answer: retry the step (no reply from %s "
                 "within %" PRIu32 " ms)",
                 s->opts.reward_endpoint, s->opts.reward_timeout_ms);
        return AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
    }
    if (status == -ECANCELED) {
        snprintf(err, err_cap, "the env server is shutting down: retry the step on another");
        return AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
    }
    if (status < 0) {
        snprintf(err, err_cap, "the reward judge could not be asked: retry the step (%s)",
                 strerror(-status));
        return AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
    }
    if (r->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR && r->error) {
        const char *msg = r->error->message ? r->error->message : "";
        switch (r->error->code) {
        case AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL:
            snprintf(err, err_cap,
                     "the reward server %s has no model '%s' (judge=reward:%s): "
                     "%.200s",
                     s->opts.reward_endpoint, model, model, msg);
            return AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL;
        case AGORA__V1__ERROR_CODE__ERROR_OVERLOADED:
            snprintf(err, err_cap, "the reward judge is overloaded: retry the step (%.200s)", msg);
            return AGORA__V1__ERROR_CODE__ERROR_OVERLOADED;
        default:
            snprintf(err, err_cap, "the reward judge refused to score: %s: %.200s",
                     ag_error_name(r->error->code), msg);
            return AGORA__V1__ERROR_CODE__ERROR_INTERNAL;
        }
    }
    snprintf(err, err_cap, "the reward judge answered without scores");
    return AGORA__V1__ERROR_CODE__ERROR_INTERNAL;
}

static void s_on_ruling(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                        size_t extra_len)
{
    judge_call_t *call = arg;
    ag_env_server_t *s = call->s;
    entry_t *e = call->e;
    char err[512];
    e->call = NULL;
    if (e->closed) {
        snprintf(err, sizeof err,
                 "episode %" PRIu64 " was closed while its final step waited "
                 "for the reward judge",
                 call->episode_id);
        s->stats.ruling_failures++;
        s_error(s, &call->peer, call->request_id, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE,
                err);
        s_entry_free(e);
        free(call);
        return;
    }
    e->touched_ms = uv_now(s->loop);
    const Agora__V1__RewardReply *r = (const Agora__V1__RewardReply *)reply;
    Agora__V1__ErrorCode code;
    if (status == 0 && r->body_case == AGORA__V1__REWARD_REPLY__BODY_SCORE && r->score) {
        double scores[AG_GAME_MAX_PLAYERS];
        size_t n = r->score->n_scores;
        for (size_t i = 0; i < n && i < AG_GAME_MAX_PLAYERS; i++)
            scores[i] = r->score->scores[i];
        ag_episode_result_t res;
        char why[AG_GAME_ERR_CAP];
        int rc = ag_episode_rule(e->ep, scores, n, &res, why, sizeof why);
        if (rc == 0) {
            s->stats.rulings++;
            if (s_step_reply(s, &call->peer, call->request_id, &res) < 0 || res.terminated ||
                res.truncated)
                s_drop(s, call->episode_id);
            free(call);
            return;
        }
        snprintf(err, sizeof err, "the reward judge's answer cannot be used: %s", why);
        code = AGORA__V1__ERROR_CODE__ERROR_INTERNAL;
    } else {
        code = s_judge_failure(s, e->ep, status, r, err, sizeof err);
    }
    ag_episode_cancel_ruling(e->ep);
    s->stats.ruling_failures++;
    s_error(s, &call->peer, call->request_id, code, err);
    free(call);
}

/*
 * Asks the reward judge to score every seat's transcript of the held Step's
 * episode; the answer goes out from s_on_ruling. On failure to even ask,
 * the held step is cancelled and answered here.
 */
static void s_ask_judge(ag_env_server_t *s, entry_t *e, const ag_rpc_peer_t *peer, uint64_t rid,
                        uint64_t episode_id)
{
    const ag_game_t *game = ag_episode_game(e->ep);
    Agora__V1__ScoreItem items[AG_GAME_MAX_PLAYERS];
    Agora__V1__ScoreItem *itemp[AG_GAME_MAX_PLAYERS];
    for (int i = 0; i < game->num_players; i++) {
        size_t len;
        agora__v1__score_item__init(&items[i]);
        items[i].transcript = (char *)ag_episode_transcript(e->ep, i, &len);
        items[i].seat = (uint32_t)i;
        items[i].game = (char *)game->name;
        itemp[i] = &items[i];
    }
    Agora__V1__ScoreRequest score = AGORA__V1__SCORE_REQUEST__INIT;
    score.model = (char *)ag_episode_judge(e->ep);
    score.n_items = (size_t)game->num_players;
    score.items = itemp;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_SCORE;
    req.score = &score;

    judge_call_t *call = malloc(sizeof *call);
    int rc = -ENOMEM;
    if (call) {
        *call = (judge_call_t){
            .s = s, .e = e, .episode_id = episode_id, .peer = *peer, .request_id = rid};
        rc = s->reward ? ag_rpc_call(s->reward, &req.base, s_on_ruling, call) : -ENOTCONN;
    }
    if (rc < 0) {
        char err[256];
        snprintf(err, sizeof err, "the reward judge could not be asked: retry the step (%s)",
                 strerror(-rc));
        free(call);
        ag_episode_cancel_ruling(e->ep);
        s->stats.ruling_failures++;
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, err);
        return;
    }
    e->call = call;
}

static void s_step(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                   const Agora__V1__StepRequest *req)
{
    char err[AG_GAME_ERR_CAP];
    entry_t *e = ag_idmap_get(&s->episodes, req->episode_id);
    if (!e) {
        snprintf(err, sizeof err,
                 "no episode %" PRIu64 " (never existed, closed, finished or "
                 "expired)",
                 req->episode_id);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, err);
        return;
    }
    e->touched_ms = uv_now(s->loop);
    if (e->call) {
        snprintf(err, sizeof err,
                 "episode %" PRIu64 " is waiting for the reward judge's ruling "
                 "on its final step; that step's reply comes when the judge answers",
                 req->episode_id);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, err);
        return;
    }
    int player = req->player > MAX_SEATS ? -1 : (int)req->player;
    ag_episode_result_t res;
    int rc =
        ag_episode_step(e->ep, player, req->action, strlen(req->action), &res, err, sizeof err);
    if (rc < 0) {
        if (rc == AG_GAME_ETURN)
            snprintf(err, sizeof err, "seat %" PRIu32 " may not act now; seat %d is to act",
                     req->player, ag_episode_to_act(e->ep));
        s_error(s, peer, rid, s_game_code(rc), err);
        /* A step that failed after it was applied ended the episode (episode.h). */
        if (ag_episode_terminated(e->ep))
            s_drop(s, req->episode_id);
        return;
    }
    s->stats.steps++;
    if (res.invalid_action) { /* penalised, not refused: the reason is only here */
        char shown[4 * 40 + 1];
        size_t n = 0;
        for (const unsigned char *a = (const unsigned char *)req->action; *a && n < 40 * 4 - 3; a++)
            n += (size_t)snprintf(shown + n, sizeof shown - n,
                                  *a >= 0x20 && *a < 0x7f ? "%c" : "\\x%02x", *a);
        ag_debug("env", "episode %" PRIu64 ": invalid action of seat %d \"%s\": %s",
                 req->episode_id, player, shown, err);
    }
    if (res.ruling_pending) {
        s_ask_judge(s, e, peer, rid, req->episode_id);
        return;
    }
    if (s_step_reply(s, peer, rid, &res) < 0 || res.terminated || res.truncated)
        s_drop(s, req->episode_id);
}

/* Storage for one demo transcript as protobuf structs. */
typedef struct demo_pb {
    Agora__V1__Transcript t;
    Agora__V1__Turn turns[AG_GAME_MAX_TURNS];
    Agora__V1__Turn *turnp[AG_GAME_MAX_TURNS];
    outcome_pb_t o;
} demo_pb_t;

static void s_demo(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                   const Agora__V1__DemoRequest *req)
{
    char err[AG_GAME_ERR_CAP];
    const ag_game_t *game = ag_game_find(req->game);
    if (!game) {
        snprintf(err, sizeof err, "unknown game '%s' (Hello lists the games)", req->game);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME, err);
        return;
    }
    if (req->count < 1 || req->count > DEMO_MAX) {
        snprintf(err, sizeof err, "count must be 1..%d, got %" PRIu32, DEMO_MAX, req->count);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST, err);
        return;
    }
    ag_game_kv_t options[MAX_OPTIONS];
    s_options(req->options, req->n_options, options);
    size_t n = req->count;
    ag_transcript_t *tr = calloc(n, sizeof *tr);
    demo_pb_t *pb = malloc(n * sizeof *pb);
    Agora__V1__Transcript **tp = malloc(n * sizeof *tp);
    if (!tr || !pb || !tp) {
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int rc =
            ag_episode_demo(game, req->seed + i, options, req->n_options,
                            (const char *const *)req->bots, req->n_bots, &tr[i], err, sizeof err);
        if (rc < 0) {
            s_error(s, peer, rid, s_game_code(rc), err);
            goto done;
        }
        demo_pb_t *d = &pb[i];
        agora__v1__transcript__init(&d->t);
        d->t.game = (char *)game->name;
        d->t.seed = tr[i].seed;
        d->t.num_players = (uint32_t)tr[i].num_players;
        for (int k = 0; k < tr[i].num_turns; k++) {
            ag_turn_t *turn = &tr[i].turns[k];
            Agora__V1__Turn *pt = &d->turns[k];
            agora__v1__turn__init(pt);
            pt->player = (uint32_t)turn->player;
            pt->observation = turn->observation;
            pt->action = turn->action;
            pt->n_rewards = (size_t)tr[i].num_players;
            pt->rewards = turn->rewards;
            d->turnp[k] = pt;
        }
        d->t.n_turns = (size_t)tr[i].num_turns;
        d->t.turns = d->turnp;
        d->t.n_returns = (size_t)tr[i].num_players;
        d->t.returns = tr[i].returns;
        s_outcome_pb(&d->o, &tr[i].outcome);
        d->t.n_info = d->o.n_kv;
        d->t.info = d->o.kvp;
        d->t.n_metrics = d->o.n_m;
        d->t.metrics = d->o.mp;
        tp[i] = &d->t;
    }
    Agora__V1__DemoReply r = AGORA__V1__DEMO_REPLY__INIT;
    r.n_transcripts = n;
    r.transcripts = tp;
    Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
    ag_envelope_set_header(&reply.base, rid);
    reply.body_case = AGORA__V1__ENV_REPLY__BODY_DEMO;
    reply.demo = &r;
    s_reply(s, peer, &reply);
done:
    for (size_t i = 0; tr && i < n; i++)
        ag_transcript_finish(&tr[i]);
    free(tr);
    free(pb);
    free(tp);
}

static void s_close(ag_env_server_t *s, const ag_rpc_peer_t *peer, uint64_t rid,
                    const Agora__V1__CloseRequest *req)
{
    entry_t *e = ag_idmap_get(&s->episodes, req->episode_id);
    if (!e) {
        char err[128];
        snprintf(err, sizeof err, "no episode %" PRIu64, req->episode_id);
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, err);
        return;
    }
    if (e->call) {
        /* Closed at once; the held Step is answered UNKNOWN_EPISODE when the judge returns. */
        ag_idmap_remove(&s->episodes, req->episode_id);
        e->closed = true;
    } else {
        s_drop(s, req->episode_id);
    }
    Agora__V1__CloseReply r = AGORA__V1__CLOSE_REPLY__INIT;
    Agora__V1__EnvReply reply = AGORA__V1__ENV_REPLY__INIT;
    ag_envelope_set_header(&reply.base, rid);
    reply.body_case = AGORA__V1__ENV_REPLY__BODY_CLOSE;
    reply.close = &r;
    s_reply(s, peer, &reply);
}

static void s_handle(ag_rpc_server_t *rpc, const ag_rpc_peer_t *peer, const uint8_t *payload,
                     size_t len, void *arg)
{
    ag_env_server_t *s = arg;
    s->stats.requests++;
    char why[256];
    Agora__V1__EnvRequest *req = (Agora__V1__EnvRequest *)ag_rpc_decode_request(
        rpc, peer, payload, len, &agora__v1__env_request__descriptor,
        &agora__v1__env_reply__descriptor, &s_limits, why, sizeof why);
    if (!req) {
        s->stats.errors++;
        ag_debug("env", "refused a request: %s", why);
        return;
    }
    uint64_t rid = req->request_id;
    switch (req->body_case) {
    case AGORA__V1__ENV_REQUEST__BODY_HELLO:
        s_hello(s, peer, rid);
        break;
    case AGORA__V1__ENV_REQUEST__BODY_RESET:
        s_reset(s, peer, rid, req->reset);
        break;
    case AGORA__V1__ENV_REQUEST__BODY_STEP:
        s_step(s, peer, rid, req->step);
        break;
    case AGORA__V1__ENV_REQUEST__BODY_DEMO:
        s_demo(s, peer, rid, req->demo);
        break;
    case AGORA__V1__ENV_REQUEST__BODY_CLOSE:
        s_close(s, peer, rid, req->close);
        break;
    default:
        s_error(s, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                "EnvRequest has no body (hello, reset, step, demo or close)");
        break;
    }
    ag_codec_free(&req->base);
}

ag_env_server_t *ag_env_server_create(uv_loop_t *loop, void *zctx, const ag_env_server_opts_t *opts)
{
    char err[AG_GAME_ERR_CAP];
    if (ag_game_validate_all(err, sizeof err) < 0) {
        ag_error("env", "cannot host the games: %s", err);
        return NULL;
    }
    ag_env_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->opts = *opts;
    s->ttl_ms = opts->episode_ttl_s * 1000;
    snprintf(s->name, sizeof s->name, "%s", opts->name ? opts->name : "agora-env");
    ag_idmap_init(&s->episodes);
    ag_rng_seed(&s->id_rng, uv_hrtime() ^ ((uint64_t)getpid() << 32));
    ag_zsock_opts_t zo = {.maxmsgsize = opts->max_message_bytes};
    s->rpc = ag_rpc_server_create(loop, zctx, opts->bind, &zo, s_handle, s);
    if (!s->rpc) {
        free(s);
        return NULL;
    }
    if (!s->opts.reward_timeout_ms)
        s->opts.reward_timeout_ms = 2000;
    if (opts->reward_endpoint && opts->reward_endpoint[0]) {
        /* One attempt with the whole deadline: a slow judge is busy, not gone,
         * and a second copy of the request would only queue behind the first.
         * A judge that lost the request (restarted) costs the Step an
         * OVERLOADED answer, which the client resends. */
        ag_rpc_client_opts_t ro = {
            .timeout_ms = (int)s->opts.reward_timeout_ms,
            .attempts = 1,
        };
        s->reward = ag_rpc_client_create(loop, zctx, opts->reward_endpoint,
                                         &agora__v1__reward_reply__descriptor, &ro);
        if (!s->reward) {
            ag_error("env", "cannot connect to the reward server %s", opts->reward_endpoint);
            ag_rpc_server_destroy(&s->rpc);
            free(s);
            return NULL;
        }
    }
    uv_timer_init(loop, &s->ttl_timer);
    s->ttl_timer.data = s;
    uint64_t every = s->ttl_ms / 4;
    if (every < 10)
        every = 10;
    if (every > 5000)
        every = 5000;
    uv_timer_start(&s->ttl_timer, s_on_ttl, every, every);
    return s;
}

static void s_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

void ag_env_server_destroy(ag_env_server_t **self)
{
    if (!self || !*self)
        return;
    ag_env_server_t *s = *self;
    *self = NULL;
    /* First, while replies can still be sent: held Steps are answered and cancelled. */
    ag_rpc_client_destroy(&s->reward);
    ag_rpc_server_destroy(&s->rpc);
    ag_idmap_t *m = &s->episodes;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i])
            s_entry_free(m->values[i]);
    }
    ag_idmap_finish(m);
    uv_timer_stop(&s->ttl_timer);
    uv_close((uv_handle_t *)&s->ttl_timer, s_timer_closed);
}

const char *ag_env_server_endpoint(const ag_env_server_t *self)
{
    return ag_rpc_server_endpoint(self->rpc);
}

ag_env_server_stats_t ag_env_server_stats(const ag_env_server_t *self)
{
    ag_env_server_stats_t st = self->stats;
    st.episodes_live = self->episodes.count;
    return st;
}
