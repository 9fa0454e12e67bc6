/*
 * control.c - the control ROUTER of agora-learner: Status (counters, the
 * latest metrics record, per-actor counts), GetWeights (the latest version
 * or a league one, raw slab attached) and League.
 */
#include "learner_priv.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const ag_limits_t s_ctl_limits = {.max_string = 256, .max_repeated = 32};

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
    ag_learner_weights_header(l, s, &h, &mc);
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

void ag_learner_on_ctl(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
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
