/*
 * learner.c - the agora-learner service (see learner.h): ingest with
 * de-duplication and staleness checks on the loop thread, warm start and PPO
 * on the training thread, publication of every version, checkpoints,
 * metrics.
 *
 * A trajectory is acknowledged when it is queued, long before it is trained
 * on, so a checkpoint saves the queue (queue.bin) with the de-duplication
 * memory that refuses its resends, and --resume puts it back: nothing
 * acknowledged is lost across a restart.
 */
#include "clock.h"
#include "learner.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "codec.h"
#include "control.pb-c.h"
#include "crc32.h"
#include "dedup.h"
#include "game.h"
#include "log.h"
#include "metrics.h"
#include "rpc.h"
#include "service.h"
#include "state.h"
#include "traj.h"
#include "weights.pb-c.h"

#define WEIGHTS_TOPIC "agora.v1.weights"
#define MAX_SUBMIT 64
#define PATH_LEN 4096

/* One published version of the weights. Loop thread only once handed over. */
typedef struct snap {
    uint64_t version, step;
    bool league;
    float *params;
    size_t n;
    uint32_t crc;
    int refs;
    struct snap *next;
} snap_t;

struct ag_learner {
    uv_loop_t *loop;
    void *zctx;
    ag_learner_opts_t o;
    char out[PATH_LEN];
    char resume[PATH_LEN];
    char endpoints[3][512];
    char ws_file[PATH_LEN], ws_env[1024], ws_game[128], ws_options[1024];

    ag_rpc_server_t *traj;
    ag_rpc_server_t *ctl;
    ag_zsock_t *pub;
    /* the trainer thread, stop, time limit, checkpoint ticks, and the lock
     * and condition of everything shared below */
    ag_service_t *svc;
    uv_thread_t ref_thread;
    uv_mutex_t ref_lk; /* the reference model's activations: one forward at a time */

    /* shared with the trainer, under the service's lock */
    ag_traj_t **q; /* ring buffer of accepted trajectories, arrival order */
    size_t q_head, q_len, q_cap;
    uint64_t arrivals;
    size_t held; /* taken from the queue by the trainer for its next batch */
    bool gated;  /* fewer than min_actors distinct actors queued: no update yet */
    ag_dedup_t *dedup;
    ag_learner_state_t st;
    const char *phase;
    json_t *status; /* the latest metrics record */
    snap_t *outbox;
    bool ref_thread_on, ref_quit; /* the reference thread runs / must stop */

    /* loop thread only */
    snap_t *latest;
    snap_t **league;
    size_t n_league, cap_league;
    ag_buf_t buf;

    /* trainer thread only (and create/destroy) */
    ag_model_t *policy;
    ag_model_t *ref;
    /* the trainer's copy of the reference, for trajectories it scores itself, and how
     * many it scored so since the previous update */
    ag_model_t *ref_own;
    uint64_t ref_own_scored;
    ag_ppo_t *ppo;
    ag_rng_t ws_rng;
    ag_game_info_t game; /* from the env server's Hello, before training */
    FILE *metrics;
    double t_start; /* monotonic time this process started */
    double t_last;  /* end of the previous update */
    bool resumed;
    uint64_t prev_duplicates, prev_stale;
};

static const ag_field_limit_t s_traj_fields[] = {
    {&agora__v1__submit_trajectories__descriptor, "trajectories", MAX_SUBMIT},
    {&agora__v1__trajectory__descriptor, "seats", 8},
    {&agora__v1__trajectory__descriptor, "returns", 8},
    {&agora__v1__trajectory__descriptor, "info", 64},
    {&agora__v1__trajectory__descriptor, "metrics", 64},
    {&agora__v1__trajectory_id__descriptor, "actor_id", 256},
    {&agora__v1__seat_trajectory__descriptor, "policy", 256},
    {&agora__v1__seat_trajectory__descriptor, "generated", 65536},
    {&agora__v1__trajectory__descriptor, "game", 64},
};

static const ag_limits_t s_traj_limits = {
    .max_string = 4096,
    .max_repeated = 65536,
    .fields = s_traj_fields,
    .n_fields = sizeof s_traj_fields / sizeof s_traj_fields[0],
};

static const ag_limits_t s_ctl_limits = {.max_string = 256, .max_repeated = 32};

/* The output directory is checked to leave room for every name below it. */
static void s_path(char *dst, const ag_learner_t *l, const char *dir, const char *name)
{
    if (snprintf(dst, PATH_LEN, "%s/%s", dir ? dir : l->out, name) >= PATH_LEN)
        dst[PATH_LEN - 1] = '\0';
}

/* ------------------------------------------------------------ snapshots */

static void s_snap_unref(snap_t *s)
{
    if (s && --s->refs <= 0) {
        free(s->params);
        free(s);
    }
}

static snap_t *s_snap_make(const ag_model_t *m, uint64_t version, uint64_t step, bool league)
{
    snap_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->n = ag_model_num_params(m);
    s->params = malloc(s->n * sizeof(float));
    if (!s->params) {
        free(s);
        return NULL;
    }
    memcpy(s->params, ag_model_params_const(m), s->n * sizeof(float));
    /* The raw frame is the slab as it is in memory: agora runs on
     * little-endian hosts, which is what "f32le" promises. */
    s->crc = ag_crc32(0, s->params, s->n * sizeof(float));
    s->version = version;
    s->step = step;
    s->league = league;
    return s;
}

static void s_header(const ag_learner_t *l, const snap_t *s, Agora__V1__WeightsHeader *h,
                     Agora__V1__ModelConfig *mc)
{
    agora__v1__weights_header__init(h);
    agora__v1__model_config__init(mc);
    mc->vocab_size = (uint32_t)l->o.model.vocab;
    mc->d_model = (uint32_t)l->o.model.d_model;
    mc->n_layers = (uint32_t)l->o.model.n_layers;
    mc->n_heads = (uint32_t)l->o.model.n_heads;
    mc->context = (uint32_t)l->o.model.ctx;
    mc->mlp_ratio = (uint32_t)l->o.model.mlp_ratio;
    h->version = s->version;
    h->config = mc;
    h->num_bytes = s->n * sizeof(float);
    h->crc32 = s->crc;
    h->dtype = (char *)"f32le";
    h->step = s->step;
    h->league = s->league;
}

/* Loop thread: publish a new version and make it the latest (and keep it in
 * the league when marked). Takes ownership of s. */
static void s_publish(ag_learner_t *l, snap_t *s)
{
    Agora__V1__WeightsHeader h;
    Agora__V1__ModelConfig mc;
    s_header(l, s, &h, &mc);
    if (l->pub && ag_codec_pack(&h.base, &l->buf) == 0) {
        ag_frame_t f[3] = {{WEIGHTS_TOPIC, strlen(WEIGHTS_TOPIC)},
                           {l->buf.data, l->buf.len},
                           {s->params, s->n * sizeof(float)}};
        int rc = ag_zsock_send(l->pub, f, 3);
        if (rc < 0)
            ag_debug("learner", "publishing version %" PRIu64 ": %s", s->version,
                     zmq_strerror(-rc));
    }
    s->refs++;
    s_snap_unref(l->latest);
    l->latest = s;
    if (s->league) {
        if (l->n_league == l->cap_league) {
            size_t cap = l->cap_league ? l->cap_league * 2 : 16;
            snap_t **v = realloc(l->league, cap * sizeof *v);
            if (!v)
                return;
            l->league = v;
            l->cap_league = cap;
        }
        s->refs++;
        l->league[l->n_league++] = s;
        while (l->o.league_max > 0 && l->n_league > (size_t)l->o.league_max) {
            s_snap_unref(l->league[0]);
            memmove(l->league, l->league + 1, (l->n_league - 1) * sizeof *l->league);
            l->n_league--;
        }
    }
}

/* --------------------------------------------------------------- ingest */

static void s_traj_error(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                         Agora__V1__ErrorCode code, const char *msg)
{
    ag_debug("learner", "trajectory request %" PRIu64 ": %s: %s", rid, ag_error_name(code), msg);
    ag_rpc_reply_error(l->traj, peer, &agora__v1__trajectory_reply__descriptor, rid, code, msg);
}

static bool s_valid_id(const Agora__V1__TrajectoryId *id)
{
    return id && id->actor_id && id->actor_id[0];
}

/* Distinct actor ids in the queue, counted up to min_actors (under lk). */
static size_t s_queued_actors(const ag_learner_t *l)
{
    const char *seen[64];
    size_t n = 0, cap = (size_t)l->o.min_actors < 64 ? (size_t)l->o.min_actors : 64;
    for (size_t i = 0; i < l->q_len && n < cap; i++) {
        const char *a = l->q[(l->q_head + i) % l->q_cap]->actor_id;
        size_t k = 0;
        while (k < n && strcmp(seen[k], a))
            k++;
        if (k == n)
            seen[n++] = a;
    }
    return n;
}

/* Opens the min_actors gate once the queue holds that many actors (under lk). */
static void s_open_gate(ag_learner_t *l)
{
    if (l->gated && s_queued_actors(l) >= (size_t)l->o.min_actors) {
        l->gated = false;
        ag_info("learner", "trajectories from %ld actors are queued: PPO starts", l->o.min_actors);
    }
}

/* Whether t claims a version the learner has not published yet, or is older
 * than the trainer may use any more (under lk). */
static bool s_too_stale(const ag_learner_t *l, const ag_traj_t *t)
{
    return t->min_version > l->st.version ||
           l->st.version - t->min_version > (uint64_t)l->o.max_staleness;
}

/* Before the first update, an actor may fill only its share of the queue, so
 * a fast actor cannot keep the others out while the learner waits for them. */
static bool s_over_quota(const ag_learner_t *l, const char *actor_id)
{
    size_t share = (size_t)(l->o.max_pending / l->o.min_actors), mine = 0;
    if (share == 0)
        share = 1;
    for (size_t i = 0; i < l->q_len; i++)
        if (!strcmp(l->q[(l->q_head + i) % l->q_cap]->actor_id, actor_id))
            mine++;
    return mine >= share;
}

static void s_on_traj(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                      size_t len, void *arg)
{
    ag_learner_t *l = arg;
    char why[256];
    Agora__V1__TrajectoryRequest *req = (Agora__V1__TrajectoryRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__trajectory_request__descriptor,
        &agora__v1__trajectory_reply__descriptor, &s_traj_limits, why, sizeof why);
    if (!req) {
        ag_debug("learner", "refused a trajectory request: %s", why);
        return;
    }
    const uint64_t rid = req->request_id;
    if (req->body_case != AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT || !req->submit) {
        s_traj_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                     "TrajectoryRequest has no body (submit)");
        goto done;
    }
    const Agora__V1__SubmitTrajectories *sub = req->submit;
    /* Take only what fits in the queue; the rest stays unacknowledged (in no ack
     * list), so the actor resends it later: backpressure without losing anything. */
    size_t n = sub->n_trajectories;
    ag_service_lock(l->svc);
    size_t room = l->q_len < (size_t)l->o.max_pending ? (size_t)l->o.max_pending - l->q_len : 0;
    bool full = n > 0 && room == 0;
    bool stopping = ag_service_stopping(l->svc);
    ag_service_unlock(l->svc);
    if (n > room)
        n = room;
    if (full || stopping) {
        s_traj_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                     stopping ? "the learner is stopping"
                              : "the learner's queue is full: back off and resend");
        goto done;
    }
    /* Validate and copy outside the lock; de-duplicate and queue under it. */
    ag_traj_t *conv[MAX_SUBMIT] = {0};
    int verdict[MAX_SUBMIT]; /* 0 accepted, 1 duplicate, 2 stale, 3 rejected */
    for (size_t i = 0; i < n; i++) {
        const Agora__V1__Trajectory *t = sub->trajectories[i];
        verdict[i] = 3;
        if (!s_valid_id(t->id))
            continue;
        int rc = ag_traj_from_pb(t, l->o.model.vocab, l->o.model.ctx, &conv[i], why, sizeof why);
        if (rc == -ENOMEM) {
            for (size_t k = 0; k < i; k++)
                ag_traj_free(&conv[k]);
            s_traj_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED, "out of memory");
            goto done;
        }
        if (rc < 0)
            ag_debug("learner", "rejected %s/%" PRIu64 "/%" PRIu64 ": %s", t->id->actor_id,
                     t->id->run_id, t->id->sequence, why);
        else
            verdict[i] = 0;
    }
    Agora__V1__TrajectoryId *lists[4][MAX_SUBMIT];
    size_t counts[4] = {0}, held_back = 0;
    ag_service_lock(l->svc);
    if (ag_service_stopping(l->svc)) {
        /* The final checkpoint may have copied the queue already: whatever were
         * acknowledged now would be lost, so none is. */
        ag_service_unlock(l->svc);
        for (size_t i = 0; i < n; i++)
            ag_traj_free(&conv[i]);
        s_traj_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                     "the learner is stopping");
        goto done;
    }
    const uint64_t version = l->st.version;
    for (size_t i = 0; i < n; i++) {
        Agora__V1__TrajectoryId *id = sub->trajectories[i]->id;
        if (!s_valid_id(id)) {
            l->st.rejected++;
            continue; /* nothing to acknowledge it by */
        }
        if (l->gated && s_over_quota(l, id->actor_id)) {
            held_back++; /* unacknowledged: resent once other actors have caught up */
            continue;
        }
        int seen = ag_dedup_check(l->dedup, id->actor_id, id->run_id, id->sequence);
        if (seen == 1) {
            ag_traj_free(&conv[i]);
            verdict[i] = 1;
            l->st.duplicates++;
        } else if (verdict[i] == 3) {
            l->st.rejected++;
        } else if (s_too_stale(l, conv[i])) {
            ag_traj_free(&conv[i]);
            verdict[i] = 2;
            l->st.stale++;
        } else {
            conv[i]->arrival = l->arrivals++;
            l->q[(l->q_head + l->q_len) % l->q_cap] = conv[i];
            l->q_len++;
            conv[i] = NULL;
            l->st.trajectories++;
        }
        lists[verdict[i]][counts[verdict[i]]++] = id;
    }
    if (counts[0])
        s_open_gate(l);
    if (counts[0])
        ag_service_broadcast(l->svc);
    ag_service_unlock(l->svc);
    for (size_t i = 0; i < n; i++)
        ag_traj_free(&conv[i]);
    if (n > 0 && held_back == n) {
        s_traj_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                     "waiting for trajectories from other actors: back off and resend");
        goto done;
    }

    Agora__V1__SubmitAck ack = AGORA__V1__SUBMIT_ACK__INIT;
    ack.n_accepted = counts[0];
    ack.accepted = lists[0];
    ack.n_duplicate = counts[1];
    ack.duplicate = lists[1];
    ack.n_stale = counts[2];
    ack.stale = lists[2];
    ack.n_rejected = counts[3];
    ack.rejected = lists[3];
    ack.learner_version = version;
    Agora__V1__TrajectoryReply rep = AGORA__V1__TRAJECTORY_REPLY__INIT;
    rep.protocol_version = AG_PROTOCOL_VERSION;
    rep.request_id = rid;
    rep.body_case = AGORA__V1__TRAJECTORY_REPLY__BODY_ACK;
    rep.ack = &ack;
    ag_rpc_reply_msg(srv, peer, &rep.base);
done:
    ag_codec_free(&req->base);
}

/* -------------------------------------------------------------- control */

static void s_ctl_error(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                        Agora__V1__ErrorCode code, const char *msg)
{
    ag_debug("learner", "control request %" PRIu64 ": %s: %s", rid, ag_error_name(code), msg);
    ag_rpc_reply_error(l->ctl, peer, &agora__v1__control_reply__descriptor, rid, code, msg);
}

static void s_status(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid)
{
    ag_service_lock(l->svc);
    size_t cap = (l->status ? json_object_size(l->status) : 0) + l->st.n_actors + 8;
    Agora__V1__Metric *m = calloc(cap, sizeof *m);
    Agora__V1__Metric **mp = calloc(cap, sizeof *mp);
    char(*names)[320] = calloc(cap, sizeof *names);
    if (!m || !mp || !names) {
        ag_service_unlock(l->svc);
        free(m);
        free(mp);
        free(names);
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_INTERNAL, "out of memory");
        return;
    }
    size_t n = 0;
    const char *key;
    json_t *val;
    if (l->status) {
        json_object_foreach(l->status, key, val)
        {
            if (!json_is_number(val) || n == cap)
                continue;
            snprintf(names[n], sizeof names[n], "%s", key);
            agora__v1__metric__init(&m[n]);
            m[n].name = names[n];
            m[n].value = json_number_value(val);
            n++;
        }
    }
    /* Per-actor training counts, "actor:ID" (the smoke test checks every actor contributed). */
    for (size_t i = 0; i < l->st.n_actors && n < cap; i++) {
        snprintf(names[n], sizeof names[n], "actor:%s", l->st.actors[i].actor_id);
        agora__v1__metric__init(&m[n]);
        m[n].name = names[n];
        m[n].value = (double)l->st.actors[i].trained;
        n++;
    }
    const struct {
        const char *name;
        double v;
    } extra[] = {
        {"pending", (double)(l->q_len + l->held)},
        {"duplicates_total", (double)l->st.duplicates},
        {"stale_total", (double)(l->st.stale + l->st.dropped_stale)},
        {"rejected_total", (double)l->st.rejected},
        {"trained_trajectories", (double)l->st.trained},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0] && n < cap; i++) {
        snprintf(names[n], sizeof names[n], "%s", extra[i].name);
        agora__v1__metric__init(&m[n]);
        m[n].name = names[n];
        m[n].value = extra[i].v;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        mp[i] = &m[i];
    Agora__V1__StatusReply sr = AGORA__V1__STATUS_REPLY__INIT;
    sr.version = l->st.version;
    sr.updates = l->st.updates;
    sr.trajectories = l->st.trajectories;
    sr.tokens_trained = l->st.tokens_trained;
    sr.phase = (char *)(ag_service_stopping(l->svc) ? "stopping" : l->phase);
    sr.n_metrics = n;
    sr.metrics = mp;
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.protocol_version = AG_PROTOCOL_VERSION;
    rep.request_id = rid;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_STATUS;
    rep.status = &sr;
    int rc = ag_codec_pack(&rep.base, &l->buf);
    ag_service_unlock(l->svc);
    if (rc == 0)
        ag_rpc_reply(l->ctl, peer, l->buf.data, l->buf.len, NULL, 0);
    free(m);
    free(mp);
    free(names);
}

static void s_get_weights(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                          uint64_t version)
{
    snap_t *s = NULL;
    if (!l->latest) {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                    "no policy published yet (warm start in progress): retry later");
        return;
    }
    if (version == 0 || version == l->latest->version)
        s = l->latest;
    for (size_t i = 0; !s && i < l->n_league; i++)
        if (l->league[i]->version == version)
            s = l->league[i];
    if (!s) {
        char msg[128];
        snprintf(msg, sizeof msg, "version %" PRIu64 " is neither the latest nor in the league",
                 version);
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL, msg);
        return;
    }
    Agora__V1__WeightsHeader h;
    Agora__V1__ModelConfig mc;
    s_header(l, s, &h, &mc);
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.protocol_version = AG_PROTOCOL_VERSION;
    rep.request_id = rid;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_WEIGHTS;
    rep.weights = &h;
    if (ag_codec_pack(&rep.base, &l->buf) == 0)
        ag_rpc_reply(l->ctl, peer, l->buf.data, l->buf.len, s->params, s->n * sizeof(float));
}

static void s_league(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid)
{
    uint64_t *v = malloc((l->n_league ? l->n_league : 1) * sizeof *v);
    if (!v) {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_INTERNAL, "out of memory");
        return;
    }
    for (size_t i = 0; i < l->n_league; i++)
        v[i] = l->league[i]->version;
    Agora__V1__LeagueReply lr = AGORA__V1__LEAGUE_REPLY__INIT;
    lr.n_versions = l->n_league;
    lr.versions = v;
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.protocol_version = AG_PROTOCOL_VERSION;
    rep.request_id = rid;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_LEAGUE;
    rep.league = &lr;
    ag_rpc_reply_msg(l->ctl, peer, &rep.base);
    free(v);
}

static void s_on_ctl(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                     size_t len, void *arg)
{
    ag_learner_t *l = arg;
    char why[256];
    Agora__V1__ControlRequest *req = (Agora__V1__ControlRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__control_request__descriptor,
        &agora__v1__control_reply__descriptor, &s_ctl_limits, why, sizeof why);
    if (!req) {
        ag_debug("learner", "refused a control request: %s", why);
        return;
    }
    const uint64_t rid = req->request_id;
    if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_STATUS) {
        s_status(l, peer, rid);
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS && req->get_weights) {
        s_get_weights(l, peer, rid, req->get_weights->version);
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_LEAGUE) {
        s_league(l, peer, rid);
    } else {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                    "ControlRequest has no body (status, get_weights or league)");
    }
    ag_codec_free(&req->base);
}

/* ------------------------------------------------------------ the trainer */

/*
 * Saves policy.ckpt (with the optimizer), queue.bin and state.json, in that
 * order. held[0..n_held) is the trainer's batch in the making: it arrived
 * before everything still in the queue, so it comes first in queue.bin.
 * Trainer thread.
 */
static int s_checkpoint(ag_learner_t *l, ag_traj_t *const *held, size_t n_held)
{
    char path[PATH_LEN], err[PATH_LEN + 512];
    s_path(path, l, NULL, "policy.ckpt");
    ag_service_lock(l->svc);
    const uint64_t version = l->st.version;
    ag_service_unlock(l->svc);
    int rc = ag_ckpt_save(path, l->policy, ag_ppo_optimizer(l->ppo), version, err, sizeof err);
    if (rc < 0) {
        ag_error("learner", "checkpoint: %s", err);
        return rc;
    }
    /* The queue, the de-duplication memory and the counters are copied in one
     * critical section, so every id the memory refuses is either in policy.ckpt
     * or in queue.bin. Only pointers are copied under the lock: queued
     * trajectories are freed by this thread alone, and the loop thread only
     * appends. */
    ag_learner_state_t st;
    ag_service_lock(l->svc);
    const size_t n = n_held + l->q_len;
    ag_queue_rec_t *recs = malloc((n ? n : 1) * sizeof *recs);
    if (recs) {
        for (size_t i = 0; i < n_held; i++)
            recs[i] = (ag_queue_rec_t){held[i]->pb, held[i]->pb_len};
        for (size_t i = 0; i < l->q_len; i++) {
            const ag_traj_t *t = l->q[(l->q_head + i) % l->q_cap];
            recs[n_held + i] = (ag_queue_rec_t){t->pb, t->pb_len};
        }
    }
    /* Shallow: the league and actor arrays stay owned by l->st, and only this
     * thread ever changes them, so they may be read after the unlock. */
    st = l->st;
    st.rng = *ag_ppo_rng(l->ppo);
    st.kl_coef = ag_ppo_kl_coef(l->ppo);
    st.elapsed_s = l->st.elapsed_s + (ag_now() - l->t_start);
    st.dedup = ag_dedup_to_json(l->dedup);
    ag_service_unlock(l->svc);

    uint8_t *qbuf = NULL;
    size_t qlen = 0;
    uint32_t qcrc = 0;
    rc = recs && st.dedup ? ag_queue_encode(recs, n, &qbuf, &qlen, &qcrc) : -ENOMEM;
    free(recs);
    s_path(path, l, NULL, "queue.bin");
    /* queue.bin first: a crash before state.json leaves a queue.bin the old
     * state.json does not vouch for, which --resume recognises. */
    if (rc == 0)
        rc = ag_write_atomic(path, qbuf, qlen);
    free(qbuf);
    if (rc == 0) {
        st.queue_count = n;
        st.queue_crc32 = qcrc;
        s_path(path, l, NULL, "state.json");
        rc = ag_state_save(path, &st, err, sizeof err);
    } else {
        snprintf(err, sizeof err, "%s: %s", path, strerror(-rc));
    }
    json_decref(st.dedup);
    if (rc < 0) {
        ag_error("learner", "state: %s", err);
        return rc;
    }
    ag_info("learner", "checkpoint: version %" PRIu64 ", %zu trajectories queued, in %s", version,
            n, l->out);
    return 0;
}

/* Makes the snapshot of a new version (and its league checkpoint when it is
 * a league version). Trainer thread, outside the lock. */
static snap_t *s_prepare_version(ag_learner_t *l, uint64_t version, uint64_t step)
{
    bool league = l->o.league_interval > 0 && (version - 1) % (uint64_t)l->o.league_interval == 0;
    if (league) {
        char path[PATH_LEN], name[64], err[512];
        snprintf(name, sizeof name, "league/%" PRIu64 ".ckpt", version);
        s_path(path, l, NULL, name);
        if (ag_ckpt_save(path, l->policy, NULL, version, err, sizeof err) < 0) {
            ag_warn("learner", "league snapshot: %s", err);
            league = false;
        }
    }
    snap_t *s = s_snap_make(l->policy, version, step, league);
    if (!s)
        ag_warn("learner", "no memory to publish version %" PRIu64, version);
    return s;
}

/* Makes version current and hands its snapshot to the loop thread for
 * publication. Called with the lock held, so the version and the counters
 * of the update that made it change together; the caller then wakes the
 * loop with ag_service_wake. */
static void s_commit_version(ag_learner_t *l, uint64_t version, snap_t *s)
{
    l->st.version = version;
    if (!s)
        return;
    if (s->league) {
        uint64_t *v = realloc(l->st.league, (l->st.n_league + 1) * sizeof *v);
        if (v) {
            l->st.league = v;
            v[l->st.n_league++] = version;
        }
    }
    snap_t **tail = &l->outbox;
    while (*tail)
        tail = &(*tail)->next;
    *tail = s;
}

static void s_progress(ag_learner_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_progress(ag_learner_t *l, const char *fmt, ...)
{
    if (!l->o.progress)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
}

static double s_time_s(const ag_learner_t *l)
{
    return l->st.elapsed_s + (ag_now() - l->t_start);
}

static void s_write_metrics(ag_learner_t *l, json_t *rec)
{
    if (!l->metrics)
        return;
    char *line = json_dumps(rec, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (line) {
        fprintf(l->metrics, "%s\n", line);
        fflush(l->metrics);
        free(line);
    }
}

static int s_ws_epoch(void *arg, int epoch, double ce, double tokens, double seconds)
{
    ag_learner_t *l = arg;
    json_t *rec = json_pack("{s:i,s:i,s:f,s:s,s:i,s:f,s:f,s:f}", "update", 0, "version", 0,
                            "time_s", s_time_s(l), "phase", "warmstart", "epoch", epoch, "ce", ce,
                            "tokens", tokens, "tokens_per_s", seconds > 0 ? tokens / seconds : 0.0);
    if (rec) {
        s_write_metrics(l, rec);
        ag_service_lock(l->svc);
        json_decref(l->status);
        l->status = rec;
        ag_service_unlock(l->svc);
    }
    s_progress(l, "learner: warm start epoch %d/%d  ce %.4f", epoch, l->o.ws.epochs, ce);
    return ag_service_stopping(l->svc);
}

/* Runs the warm start and makes the result version 1 and the reference. */
static int s_warmstart(ag_learner_t *l)
{
    char path[PATH_LEN], err[512];
    ag_seq_t *seqs = NULL;
    size_t n = 0, dropped = 0;
    int rc = ag_warmstart_load(&l->o.ws, l->o.model.ctx, &seqs, &n, &dropped);
    if (rc < 0)
        return rc;
    if (n) {
        ag_info("learner", "warm start: %zu sequences (%zu longer than the context dropped)", n,
                dropped);
        /* Nothing else computes yet (actors wait for version 1): use the cores. */
        ag_model_set_threads(l->policy, l->o.ws.threads);
        rc = ag_warmstart_train(l->policy, seqs, n, &l->o.ws, &l->ws_rng,
                                ag_service_stop_flag(l->svc), s_ws_epoch, l);
        ag_model_set_threads(l->policy, l->o.threads);
    } else {
        ag_info("learner", "no warm start: the initial policy is the reference");
    }
    ag_warmstart_free(seqs, n);
    if (rc < 0)
        return rc;
    if (ag_model_reserve(l->policy, l->o.ppo.minibatch, l->o.model.ctx) < 0)
        return -ENOMEM;
    if (l->ref)
        ag_model_load_params(l->ref, ag_model_params_const(l->policy),
                             ag_model_num_params(l->policy));
    s_path(path, l, NULL, "reference.ckpt");
    rc = ag_ckpt_save(path, l->policy, NULL, 1, err, sizeof err);
    if (rc < 0) {
        ag_error("learner", "reference: %s", err);
        return rc;
    }
    snap_t *snap = s_prepare_version(l, 1, 0);
    ag_service_lock(l->svc);
    s_commit_version(l, 1, snap);
    ag_service_unlock(l->svc);
    ag_service_wake(l->svc);
    return s_checkpoint(l, NULL, 0);
}

/* One PPO update over the batch; publishes the new version. */
static int s_update(ag_learner_t *l, ag_traj_t **b, size_t n)
{
    const ag_seq_t *rows[MAX_SUBMIT * 8 + 1];
    const float *refs[MAX_SUBMIT * 8 + 1];
    const bool small = n * AG_TRAJ_MAX_SEATS <= sizeof rows / sizeof rows[0];
    const ag_seq_t **rp = small ? rows : malloc(n * AG_TRAJ_MAX_SEATS * sizeof *rp);
    const float **rr = small ? refs : malloc(n * AG_TRAJ_MAX_SEATS * sizeof *rr);
    if (!rp || !rr) {
        if (!small) {
            free(rp);
            free(rr);
        }
        return -ENOMEM;
    }
    size_t nr = 0;
    bool all_ref = true; /* every row scored ahead by the reference thread */
    ag_service_lock(l->svc);
    const uint64_t version = l->st.version;
    ag_service_unlock(l->svc);
    double st_sum = 0, st_max = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t s = 0; s < b[i]->n_seats; s++) {
            all_ref = all_ref && b[i]->ref[s];
            rr[nr] = b[i]->ref[s];
            rp[nr++] = &b[i]->seats[s];
        }
        double stl = (double)(version - b[i]->min_version);
        st_sum += stl;
        if (stl > st_max)
            st_max = stl;
    }
    const double t0 = ag_now();
    ag_ppo_stats_t ps;
    if (!all_ref)
        uv_mutex_lock(&l->ref_lk); /* the update runs the reference pass itself */
    int rc = ag_ppo_update(l->ppo, rp, all_ref ? rr : NULL, nr, &ps);
    if (!all_ref)
        uv_mutex_unlock(&l->ref_lk);
    const double t1 = ag_now();
    if (!small) {
        free(rp);
        free(rr);
    }
    if (rc < 0) {
        ag_error("learner", "PPO update failed: %s", strerror(-rc));
        return rc;
    }
    ag_service_lock(l->svc);
    const uint64_t updates = l->st.updates + 1, dups = l->st.duplicates;
    const uint64_t stale = l->st.stale + l->st.dropped_stale;
    ag_service_unlock(l->svc);
    snap_t *snap = s_prepare_version(l, version + 1, updates);

    const double compute = t1 - t0, wall = t1 - l->t_last;
    l->t_last = t1;
    json_t *rec = json_object();
    json_object_set_new(rec, "update", json_integer((json_int_t)updates));
    json_object_set_new(rec, "version", json_integer((json_int_t)(version + 1)));
    json_object_set_new(rec, "time_s", json_real(s_time_s(l)));
    json_object_set_new(rec, "phase", json_string("ppo"));
    json_object_set_new(rec, "trajectories", json_integer((json_int_t)n));
    json_object_set_new(rec, "sequences", json_integer((json_int_t)nr));
    json_object_set_new(rec, "tokens", json_real(ps.tokens));
    json_object_set_new(rec, "generated_tokens", json_real(ps.generated_tokens));
    json_object_set_new(rec, "update_s", json_real(compute));
    json_object_set_new(rec, "tokens_per_s", json_real(compute > 0 ? ps.tokens / compute : 0));
    json_object_set_new(rec, "tokens_per_s_wall", json_real(wall > 0 ? ps.tokens / wall : 0));
    /* Forward+backward token passes (epochs x tokens): the unit of agora-bench model's
     * train_tokens_per_s, for pipeline-efficiency comparisons. */
    const double passes = ps.tokens * l->o.ppo.epochs;
    json_object_set_new(rec, "train_tokens", json_real(passes));
    json_object_set_new(rec, "train_tokens_per_s", json_real(compute > 0 ? passes / compute : 0));
    json_object_set_new(rec, "score_passes", json_integer(ps.score_passes));
    json_object_set_new(rec, "reference_ahead", json_integer(all_ref ? 1 : 0));
    json_object_set_new(rec, "reference_by_trainer", json_integer((json_int_t)l->ref_own_scored));
    l->ref_own_scored = 0;
    json_object_set_new(rec, "score_s", json_real(ps.score_s));
    json_object_set_new(rec, "train_s", json_real(ps.train_s));
    json_object_set_new(rec, "score_positions", json_real(ps.score_positions));
    json_object_set_new(rec, "train_positions", json_real(ps.train_positions));
    json_object_set_new(rec, "policy_loss", json_real(ps.policy_loss));
    json_object_set_new(rec, "value_loss", json_real(ps.value_loss));
    json_object_set_new(rec, "entropy", json_real(ps.entropy));
    json_object_set_new(rec, "kl_ref", json_real(ps.kl_ref));
    json_object_set_new(rec, "approx_kl", json_real(ps.approx_kl));
    json_object_set_new(rec, "clip_frac", json_real(ps.clip_frac));
    json_object_set_new(rec, "explained_variance", json_real(ps.explained_variance));
    json_object_set_new(rec, "adv_mean", json_real(ps.adv_mean));
    json_object_set_new(rec, "adv_std", json_real(ps.adv_std));
    json_object_set_new(rec, "is_weight_mean", json_real(ps.is_weight_mean));
    json_object_set_new(rec, "grad_norm", json_real(ps.grad_norm));
    json_object_set_new(rec, "staleness_mean", json_real(n ? st_sum / (double)n : 0));
    json_object_set_new(rec, "staleness_max", json_real(st_max));
    json_object_set_new(rec, "dropped_stale", json_integer((json_int_t)(stale - l->prev_stale)));
    json_object_set_new(rec, "duplicates", json_integer((json_int_t)(dups - l->prev_duplicates)));
    json_object_set_new(rec, "lr", json_real(ps.lr));
    json_object_set_new(rec, "kl_coef", json_real(ps.kl_coef));
    ag_metrics_game(rec, &l->game, b, n);
    l->prev_stale = stale;
    l->prev_duplicates = dups;

    /* The version, the counters and the status record change together. */
    ag_service_lock(l->svc);
    s_commit_version(l, version + 1, snap);
    l->st.updates = updates;
    l->st.trained += n;
    l->st.tokens_trained += (uint64_t)ps.tokens;
    for (size_t i = 0; i < n; i++)
        ag_state_count_actor(&l->st, b[i]->actor_id, 1);
    json_t *actors = json_object();
    for (size_t i = 0; i < l->st.n_actors; i++)
        json_object_set_new(actors, l->st.actors[i].actor_id,
                            json_integer((json_int_t)l->st.actors[i].trained));
    json_object_set_new(rec, "actors", actors);
    json_decref(l->status);
    l->status = rec;
    ag_service_unlock(l->svc);
    ag_service_wake(l->svc);

    /* rec is only read from here on (the loop thread reads it too). */
    s_write_metrics(l, rec);
    const char *headline;
    const double hv = ag_metrics_headline(rec, &l->game, &headline);
    s_progress(l,
               "learner: v%" PRIu64 " update %" PRIu64 "  %.0f tok/s  pl %.3f  vl %.3f  ent %.3f"
               "  kl %.4f  %s %.3f",
               version + 1, updates, compute > 0 ? ps.tokens / compute : 0, ps.policy_loss,
               ps.value_loss, ps.entropy, ps.kl_ref, headline, hv);
    return 0;
}

/* The reference log-probs of t's seats with model m, in one forward. */
static void s_score_ref(ag_model_t *m, ag_traj_t *t)
{
    const ag_seq_t *rows[AG_TRAJ_MAX_SEATS];
    for (size_t s = 0; s < t->n_seats; s++)
        rows[s] = &t->seats[s];
    if (t->n_seats && ag_ppo_score_rows(m, rows, t->n_seats, t->ref) < 0)
        ag_warn("learner", "reference pass ahead of the update: out of memory");
}

/*
 * The reference pass, ahead of the trainer: the frozen reference model scores
 * queued trajectories, oldest first, while the trainer trains on the batch
 * before them, so the update itself runs only the proximal pass (the
 * reference log-probs do not depend on the policy being trained). Each
 * trajectory is scored in a forward of its own, so its figures are the same
 * whatever else was queued with it. The trainer takes only scored
 * trajectories; one the thread has not reached yet the trainer scores itself,
 * with a copy of the reference of its own, rather than wait (where the cores
 * are busy the low-priority thread may fall far behind). One that cannot be
 * scored (no memory) leaves the update to run the reference pass itself.
 * Trajectories already too stale to train are skipped.
 */
static void s_ref_thread(void *arg)
{
    ag_learner_t *l = arg;
    /* It only has to keep ahead of the trainer: where the cores are short, the
     * trainer (and the actors feeding it) go first. On Linux a thread has a
     * nice value of its own; elsewhere this is a no-op. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0)
        ag_debug("learner", "reference thread: cannot lower its priority: %s", strerror(errno));
    ag_service_lock(l->svc);
    while (!l->ref_quit) {
        ag_traj_t *t = NULL;
        for (size_t i = 0; i < l->q_len && !t; i++) {
            ag_traj_t *c = l->q[(l->q_head + i) % l->q_cap];
            if (c->ref_state != AG_REF_TODO)
                continue;
            if (s_too_stale(l, c))
                c->ref_state = AG_REF_DONE; /* dropped when the trainer gets to it */
            else
                t = c;
        }
        if (!t) {
            ag_service_wait(l->svc, 0);
            continue;
        }
        t->ref_state = AG_REF_BUSY;
        ag_service_unlock(l->svc);
        uv_mutex_lock(&l->ref_lk);
        s_score_ref(l->ref, t);
        uv_mutex_unlock(&l->ref_lk);
        ag_service_lock(l->svc);
        t->ref_state = AG_REF_DONE;
        ag_service_broadcast(l->svc);
    }
    ag_service_unlock(l->svc);
}

static void s_ref_thread_start(ag_learner_t *l)
{
    if (!l->ref)
        return;
    const ag_model_config_t *c = ag_model_config(l->ref);
    l->ref_own = ag_model_create(c, l->o.seed, l->o.threads);
    if (!l->ref_own || ag_model_reserve(l->ref_own, AG_TRAJ_MAX_SEATS, c->ctx) < 0 ||
        ag_model_load_params(l->ref_own, ag_model_params_const(l->ref),
                             ag_model_num_params(l->ref)) < 0) {
        ag_model_destroy(&l->ref_own);
        ag_warn("learner", "no reference thread (no memory): each update runs its reference pass");
        return;
    }
    ag_service_lock(l->svc);
    l->ref_quit = false;
    l->ref_thread_on = uv_thread_create(&l->ref_thread, s_ref_thread, l) == 0;
    ag_service_unlock(l->svc);
    if (!l->ref_thread_on)
        ag_warn("learner", "no reference thread: each update runs its reference pass itself");
}

static void s_ref_thread_stop(ag_learner_t *l)
{
    ag_service_lock(l->svc);
    const bool on = l->ref_thread_on;
    l->ref_quit = true;
    l->ref_thread_on = false;
    ag_service_broadcast(l->svc);
    ag_service_unlock(l->svc);
    if (on)
        uv_thread_join(&l->ref_thread);
}

/*
 * The game from learner.env's Hello: its name when game.name is empty, and
 * the metrics it declares. Needed (for the warm start's Demo), no answer or
 * an unknown game is an error; otherwise the learner goes on without the
 * GameSpec, and its progress line shows reward_mean.
 */
static int s_learn_game(ag_learner_t *l, bool needed)
{
    int rc = ag_game_hello(l->o.ws.env, l->o.ws.game, needed ? 10000 : 2000, &l->game);
    if (rc == 0) {
        ag_info("learner", "game %s: %zu metrics declared, headline %s", l->game.name,
                l->game.n_metrics,
                l->game.headline >= 0 ? l->game.metrics[l->game.headline].name
                                      : "none (reward_mean)");
        snprintf(l->ws_game, sizeof l->ws_game, "%s", l->game.name);
        return 0;
    }
    if (rc == -ENOENT)
        return needed ? rc : 0; /* logged */
    if (needed) {
        ag_error("learner",
                 "the warm start needs the game: no env server answered Hello at %s (%s)",
                 l->o.ws.env, strerror(-rc));
        return rc;
    }
    ag_info("learner", "no GameSpec from learner.env (%s): the progress line shows reward_mean",
            strerror(-rc));
    return 0;
}

static void s_trainer(ag_service_t *svc, void *arg)
{
    ag_learner_t *l = arg;
    int rc = 0;
    const size_t want = (size_t)l->o.batch_trajectories;
    ag_traj_t **batch = calloc(want, sizeof *batch);
    size_t have = 0;
    if (!batch) {
        rc = -ENOMEM;
        goto finish;
    }
    /* The warm start's Demo needs the game's name: learn it first then. */
    const bool demos = !l->resumed && l->o.ws.demos > 0 && !(l->o.ws.file && l->o.ws.file[0]);
    if (demos && (rc = s_learn_game(l, true)) < 0)
        goto finish;
    if (!l->resumed) {
        rc = s_warmstart(l);
        if (rc == -ECANCELED) {
            rc = 0;
            goto finish;
        }
        if (rc < 0)
            goto finish;
    }
    if (!demos)
        s_learn_game(l, false);
    ag_service_lock(l->svc);
    l->phase = "ppo";
    ag_service_unlock(l->svc);
    s_ref_thread_start(l);
    l->t_last = ag_now();
    for (;;) {
        if (l->o.max_updates > 0) {
            ag_service_lock(l->svc);
            bool done = l->st.updates >= (uint64_t)l->o.max_updates;
            ag_service_unlock(l->svc);
            if (done) {
                ag_info("learner", "reached learner.max_updates = %ld", l->o.max_updates);
                break;
            }
        }
        ag_service_lock(l->svc);
        for (;;) {
            /* Take queued trajectories in arrival order, dropping the stale ones. */
            while (!l->gated && have < want && l->q_len > 0) {
                ag_traj_t *t = l->q[l->q_head];
                const bool stale = s_too_stale(l, t);
                if (l->ref_thread_on && t->ref_state == AG_REF_TODO) {
                    /* The reference thread has not reached it: score it here (unless
                     * it is dropped anyway). Only the trainer takes from the queue,
                     * so it stays at its head. */
                    t->ref_state = AG_REF_BUSY;
                    ag_service_unlock(l->svc);
                    if (!stale) {
                        s_score_ref(l->ref_own, t);
                        l->ref_own_scored++;
                    }
                    ag_service_lock(l->svc);
                    t->ref_state = AG_REF_DONE;
                    continue;
                }
                if (l->ref_thread_on && t->ref_state != AG_REF_DONE)
                    break; /* the reference thread is scoring it: a moment */
                l->q_head = (l->q_head + 1) % l->q_cap;
                l->q_len--;
                if (stale) {
                    l->st.dropped_stale++;
                    ag_traj_free(&t);
                    continue;
                }
                batch[have++] = t;
            }
            l->held = have;
            if (have == want || ag_service_stopping(l->svc) || ag_service_checkpoint_due(l->svc))
                break;
            ag_service_wait(l->svc, 0.5);
        }
        ag_service_unlock(l->svc);
        if (ag_service_stopping(l->svc))
            break;
        if (ag_service_checkpoint_take(l->svc))
            s_checkpoint(l, batch, have);
        if (have < want)
            continue;
        rc = s_update(l, batch, have);
        for (size_t i = 0; i < have; i++)
            ag_traj_free(&batch[i]);
        have = 0;
        ag_service_lock(l->svc);
        l->held = 0;
        ag_service_unlock(l->svc);
        if (rc < 0)
            goto finish;
    }
finish:
    s_ref_thread_stop(l);
    if (l->o.progress)
        fputc('\n', stderr);
    ag_service_lock(l->svc);
    l->phase = "stopping";
    /* The trainer may stop by itself (max_updates, an error): from here on
     * nothing more is acknowledged, so the checkpoint below holds every
     * trajectory accepted and not trained. */
    const bool have_policy = l->st.version > 0;
    ag_service_unlock(l->svc);
    ag_service_stop(svc);
    if (have_policy && s_checkpoint(l, batch, have) < 0 && rc == 0)
        rc = -EIO;
    for (size_t i = 0; i < have; i++)
        ag_traj_free(&batch[i]);
    free(batch);
    if (rc < 0)
        ag_service_fail(svc, "training stopped: %s", strerror(-rc));
    ag_service_lock(svc);
    l->held = 0;
    ag_service_unlock(svc);
}

/* ------------------------------------------------------------ lifecycle */

/* Once the trainer has ended: the sockets close, so the loop ends. */
static void s_on_stopped(void *arg)
{
    ag_learner_t *l = arg;
    ag_rpc_server_destroy(&l->traj);
    ag_rpc_server_destroy(&l->ctl);
    ag_zsock_destroy(&l->pub);
}

/* New versions from the trainer, published on the loop thread. */
static void s_on_wake(void *arg)
{
    ag_learner_t *l = arg;
    ag_service_lock(l->svc);
    snap_t *out = l->outbox;
    l->outbox = NULL;
    ag_service_unlock(l->svc);
    while (out) {
        snap_t *next = out->next;
        out->next = NULL;
        s_publish(l, out);
        out = next;
    }
}

void ag_learner_stop(ag_learner_t *l)
{
    if (l->svc)
        ag_service_stop(l->svc);
}

int ag_learner_exit_code(const ag_learner_t *l)
{
    return ag_service_exit_code(l ? l->svc : NULL);
}

static int s_mkdir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    ag_error("learner", "mkdir %s: %s", path, strerror(errno));
    return -1;
}

/*
 * Puts the trajectories of dir/queue.bin back in the queue, in their saved
 * order, under new arrival numbers. A queue.bin that is missing, damaged or
 * not the one state.json was saved with (a crash between the two writes) is
 * warned about and the run goes on with an empty queue: those trajectories
 * are lost, but the run is not. Each record passes the checks of a network
 * submission (a model with a smaller context may refuse some); staleness is
 * checked when the trainer takes it, as for any queued trajectory. Called
 * before the threads start.
 */
static void s_restore_queue(ag_learner_t *l, const char *dir)
{
    const uint64_t want = l->st.queue_count;
    if (want == 0)
        return;
    char path[PATH_LEN], why[256];
    s_path(path, l, dir, "queue.bin");
    uint8_t *data = NULL;
    size_t len = 0, n = 0, queued = 0, skipped = 0;
    ag_queue_rec_t *recs = NULL;
    uint32_t crc = 0;
    int rc = ag_read_file(path, &data, &len);
    if (rc < 0) {
        ag_warn("learner",
                "resume: %s: %s; the %" PRIu64 " trajectories queued at the checkpoint are lost",
                path, strerror(-rc), want);
        goto done;
    }
    if (ag_queue_decode(data, len, &recs, &n, &crc, why, sizeof why) < 0) {
        ag_warn("learner",
                "resume: %s: %s; the %" PRIu64 " trajectories queued at the checkpoint are lost",
                path, why, want);
        goto done;
    }
    if (n != want || crc != l->st.queue_crc32) {
        ag_warn("learner",
                "resume: %s holds %zu trajectories (CRC-32 %08" PRIx32 ") but state.json "
                "was saved with %" PRIu64 " (%08" PRIx32 "): not the same checkpoint; the "
                "queued trajectories are lost",
                path, n, crc, want, l->st.queue_crc32);
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (l->q_len == l->q_cap) {
            ag_warn("learner",
                    "resume: the queue holds %zu trajectories (learner.max_pending); the last "
                    "%zu of queue.bin are dropped",
                    l->q_cap, n - i);
            break;
        }
        Agora__V1__Trajectory *pb = (Agora__V1__Trajectory *)ag_codec_decode(
            &agora__v1__trajectory__descriptor, recs[i].data, recs[i].len, &s_traj_limits, why,
            sizeof why);
        ag_traj_t *t = NULL;
        rc = pb ? ag_traj_from_pb(pb, l->o.model.vocab, l->o.model.ctx, &t, why, sizeof why)
                : -EINVAL;
        if (pb)
            ag_codec_free(&pb->base);
        if (rc < 0) {
            ag_warn("learner", "resume: queue.bin record %zu skipped: %s", i,
                    rc == -ENOMEM ? "out of memory" : why);
            skipped++;
            continue;
        }
        t->arrival = l->arrivals++;
        l->q[(l->q_head + l->q_len) % l->q_cap] = t;
        l->q_len++;
        queued++;
    }
    if (queued)
        s_open_gate(l);
    ag_info("learner", "resume: %zu trajectories queued again from %s (%zu skipped)", queued, path,
            skipped);
done:
    free(recs);
    free(data);
}

/* Loads the resume state from dir into l (models, optimizer, counters,
 * league, the queue). */
static int s_resume(ag_learner_t *l, const char *dir)
{
    char path[PATH_LEN], err[512];
    ag_ckpt_info_t info;
    s_path(path, l, dir, "state.json");
    if (ag_state_load(path, &l->st, err, sizeof err) < 0) {
        ag_error("learner", "resume: %s", err);
        return -1;
    }
    s_path(path, l, dir, "policy.ckpt");
    if (ag_ckpt_load_into(path, l->policy, ag_ppo_optimizer(l->ppo), &info, err, sizeof err) < 0) {
        ag_error("learner", "resume: %s", err);
        return -1;
    }
    if (info.step != l->st.version) {
        /* A crash between policy.ckpt and state.json: the saved queue is from
         * before the newer policy, which may have trained on part of it. */
        ag_warn("learner",
                "resume: policy.ckpt holds version %" PRIu64 " but state.json says %" PRIu64
                "; using the checkpoint's; the %" PRIu64
                " trajectories of queue.bin saved with state.json are lost",
                info.step, l->st.version, l->st.queue_count);
        l->st.queue_count = 0;
    }
    l->st.version = info.step;
    if (l->ref) {
        s_path(path, l, dir, "reference.ckpt");
        if (ag_ckpt_load_into(path, l->ref, NULL, NULL, err, sizeof err) < 0) {
            ag_error("learner", "resume: %s", err);
            return -1;
        }
    }
    *ag_ppo_rng(l->ppo) = l->st.rng;
    ag_ppo_set_kl_coef(l->ppo, l->st.kl_coef);
    if (ag_dedup_from_json(l->dedup, l->st.dedup) < 0) {
        ag_error("learner", "resume: bad de-duplication state");
        return -1;
    }
    s_restore_queue(l, dir);
    /* League snapshots back into memory, through a scratch model. */
    ag_model_t *tmp = ag_model_create(&l->o.model, 0, 1);
    if (!tmp)
        return -1;
    size_t kept = 0;
    for (size_t i = 0; i < l->st.n_league; i++) {
        char name[64];
        snprintf(name, sizeof name, "league/%" PRIu64 ".ckpt", l->st.league[i]);
        s_path(path, l, dir, name);
        if (ag_ckpt_load_into(path, tmp, NULL, NULL, err, sizeof err) < 0) {
            ag_warn("learner", "resume: league version %" PRIu64 " dropped: %s", l->st.league[i],
                    err);
            continue;
        }
        l->st.league[kept++] = l->st.league[i];
        snap_t *s = s_snap_make(tmp, l->st.league[i], 0, true);
        if (s)
            s_publish(l, s);
    }
    l->st.n_league = kept;
    ag_model_destroy(&tmp);
    snap_t *s = s_snap_make(l->policy, l->st.version, l->st.updates, false);
    if (s)
        s_publish(l, s);
    /* The trainer's counters of "since the last update" continue from here. */
    l->prev_duplicates = l->st.duplicates;
    l->prev_stale = l->st.stale + l->st.dropped_stale;
    json_decref(l->st.dedup);
    l->st.dedup = NULL;
    ag_info("learner", "resumed from %s: version %" PRIu64 ", %" PRIu64 " updates, league of %zu",
            dir, l->st.version, l->st.updates, kept);
    return 0;
}

ag_learner_t *ag_learner_create(uv_loop_t *loop, void *zctx, const ag_learner_opts_t *o)
{
    ag_learner_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->loop = loop;
    l->zctx = zctx;
    l->o = *o;
    if (strlen(o->out) > PATH_LEN - 128 || (o->resume && strlen(o->resume) > PATH_LEN - 128)) {
        ag_error("learner", "learner.out / learner.resume: path too long");
        free(l);
        return NULL;
    }
    snprintf(l->out, sizeof l->out, "%s", o->out);
    snprintf(l->resume, sizeof l->resume, "%s", o->resume ? o->resume : "");
    snprintf(l->endpoints[0], sizeof l->endpoints[0], "%s", o->trajectories);
    snprintf(l->endpoints[1], sizeof l->endpoints[1], "%s", o->weights);
    snprintf(l->endpoints[2], sizeof l->endpoints[2], "%s", o->control);
    snprintf(l->ws_file, sizeof l->ws_file, "%s", o->ws.file ? o->ws.file : "");
    snprintf(l->ws_env, sizeof l->ws_env, "%s", o->ws.env ? o->ws.env : "");
    snprintf(l->ws_game, sizeof l->ws_game, "%s", o->ws.game ? o->ws.game : "");
    snprintf(l->ws_options, sizeof l->ws_options, "%s", o->ws.options ? o->ws.options : "");
    l->o.ws.file = l->ws_file;
    l->o.ws.env = l->ws_env;
    l->o.ws.game = l->ws_game;
    l->o.ws.options = l->ws_options;
    l->o.out = l->out;
    l->o.resume = l->resume;
    l->phase = "warmstart";
    l->t_start = ag_now();
    l->resumed = l->resume[0] != '\0';
    uv_mutex_init(&l->ref_lk);
    const ag_service_config_t sc = {.name = "learner",
                                    .max_seconds = o->max_seconds,
                                    .checkpoint_interval_s = o->checkpoint_interval_s,
                                    .signals = true,
                                    .work = s_trainer,
                                    .on_wake = s_on_wake,
                                    .on_stopped = s_on_stopped,
                                    .arg = l};
    l->svc = ag_service_create(loop, &sc);
    if (!l->svc) {
        ag_learner_destroy(&l);
        return NULL;
    }
    ag_rng_seed(&l->ws_rng, o->seed ^ 0x5753ULL);
    char err[256], path[PATH_LEN];

    /* Room for a full queue plus the trainer's batch: a checkpoint saves both,
     * and --resume puts both back in the queue. */
    l->q_cap =
        (size_t)o->max_pending +
        ((size_t)o->batch_trajectories > MAX_SUBMIT ? (size_t)o->batch_trajectories : MAX_SUBMIT);
    l->q = calloc(l->q_cap, sizeof *l->q);
    l->gated = o->min_actors > 1;
    l->dedup = ag_dedup_create(4096);
    if (!l->q || !l->dedup)
        goto fail_early;
    if (ag_model_config_check(&o->model, err, sizeof err) < 0) {
        ag_error("learner", "model: %s", err);
        goto fail_early;
    }
    l->policy = ag_model_create(&o->model, o->seed, o->threads);
    bool want_ref = o->ppo.kl_coef > 0.0f || o->ppo.kl_target > 0.0f;
    if (want_ref)
        l->ref = ag_model_create(&o->model, o->seed, o->threads);
    if (!l->policy || (want_ref && !l->ref)) {
        ag_error("learner", "cannot create the model");
        goto fail_early;
    }
    l->ppo = ag_ppo_create(l->policy, l->ref, &o->ppo, o->seed ^ 0x50504fULL);
    /* The reference thread scores a trajectory's seats in one forward. */
    if (l->ppo && l->ref && o->ppo.minibatch < AG_TRAJ_MAX_SEATS &&
        ag_model_reserve(l->ref, AG_TRAJ_MAX_SEATS, o->model.ctx) < 0)
        ag_ppo_destroy(&l->ppo);
    if (!l->ppo) {
        ag_error("learner", "cannot set up PPO (bad [ppo] values or no memory)");
        goto fail_early;
    }
    s_path(path, l, NULL, "league");
    if (s_mkdir(l->out) < 0 || s_mkdir(path) < 0)
        goto fail_early;
    if (l->resumed && s_resume(l, l->resume) < 0)
        goto fail_early;
    if (!l->resumed)
        l->st.kl_coef = ag_ppo_kl_coef(l->ppo);
    s_path(path, l, NULL, "metrics.jsonl");
    l->metrics = fopen(path, l->resumed ? "a" : "w");
    if (!l->metrics) {
        ag_error("learner", "%s: %s", path, strerror(errno));
        goto fail_early;
    }

    ag_zsock_opts_t to = {.maxmsgsize = 64ll << 20};
    ag_zsock_opts_t co = {.maxmsgsize = 1 << 20};
    ag_zsock_opts_t po = {.sndhwm = o->pub_hwm > 0 ? o->pub_hwm : 4};
    l->traj = ag_rpc_server_create(loop, zctx, l->endpoints[0], &to, s_on_traj, l);
    l->ctl = ag_rpc_server_create(loop, zctx, l->endpoints[2], &co, s_on_ctl, l);
    l->pub = ag_zsock_create(loop, zctx, ZMQ_PUB, &po, NULL, NULL);
    if (!l->traj || !l->ctl || !l->pub || ag_zsock_bind(l->pub, l->endpoints[1]) < 0) {
        ag_error("learner", "cannot bind %s, %s and %s", l->endpoints[0], l->endpoints[1],
                 l->endpoints[2]);
        goto fail_sockets;
    }
    if (ag_service_start(l->svc) < 0)
        return l; /* closing, exit code 1: the loop closes the handles */
    ag_info("learner", "trajectories on %s, weights on %s, control on %s",
            ag_rpc_server_endpoint(l->traj), ag_zsock_endpoint(l->pub),
            ag_rpc_server_endpoint(l->ctl));
    return l;

fail_sockets:
    /* Handles were created on the loop: they must be closed through it. */
    ag_service_fail(l->svc, "cannot start");
    ag_service_close(l->svc);
    return l;
fail_early:
    ag_learner_destroy(&l);
    return NULL;
}

void ag_learner_destroy(ag_learner_t **self)
{
    if (!self || !*self)
        return;
    ag_learner_t *l = *self;
    ag_service_destroy(&l->svc);
    for (size_t i = 0; i < l->q_len; i++)
        ag_traj_free(&l->q[(l->q_head + i) % l->q_cap]);
    free(l->q);
    while (l->outbox) {
        snap_t *n = l->outbox->next;
        l->outbox->refs = 0;
        s_snap_unref(l->outbox);
        l->outbox = n;
    }
    s_snap_unref(l->latest);
    for (size_t i = 0; i < l->n_league; i++)
        s_snap_unref(l->league[i]);
    free(l->league);
    ag_buf_finish(&l->buf);
    ag_dedup_destroy(&l->dedup);
    ag_state_finish(&l->st);
    json_decref(l->status);
    if (l->metrics)
        fclose(l->metrics);
    ag_ppo_destroy(&l->ppo);
    ag_model_destroy(&l->ref);
    ag_model_destroy(&l->ref_own);
    ag_model_destroy(&l->policy);
    uv_mutex_destroy(&l->ref_lk);
    free(l);
    *self = NULL;
}
