/*
 * ingest.c - the trajectories ROUTER of agora-learner: each submitted
 * trajectory is validated (traj.h) outside the lock, then de-duplicated,
 * checked for staleness and queued under it, and acknowledged in one of
 * four lists; a full queue, a stopping learner or an actor over its share
 * before the first update gets ERROR_OVERLOADED, so the actor resends.
 * A trajectory is acknowledged when it is queued, long before it is trained
 * on: checkpoints save the queue (resume.c) so nothing acknowledged is lost.
 */
#include "learner_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "log.h"

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

const ag_limits_t ag_learner_traj_limits = {
    .max_string = 4096,
    .max_repeated = 65536,
    .fields = s_traj_fields,
    .n_fields = sizeof s_traj_fields / sizeof s_traj_fields[0],
};

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
void ag_learner_open_gate(ag_learner_t *l)
{
    if (l->gated && s_queued_actors(l) >= (size_t)l->o.min_actors) {
        l->gated = false;
        ag_info("learner", "trajectories from %ld actors are queued: PPO starts", l->o.min_actors);
    }
}

/* Whether t claims a version the learner has not published yet, or is older
 * than the trainer may use any more (under lk). */
bool ag_learner_too_stale(const ag_learner_t *l, const ag_traj_t *t)
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

void ag_learner_on_traj(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                        size_t len, void *arg)
{
    ag_learner_t *l = arg;
    char why[256];
    Agora__V1__TrajectoryRequest *req = (Agora__V1__TrajectoryRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__trajectory_request__descriptor,
        &agora__v1__trajectory_reply__descriptor, &ag_learner_traj_limits, why, sizeof why);
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
        } else if (ag_learner_too_stale(l, conv[i])) {
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
        ag_learner_open_gate(l);
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
