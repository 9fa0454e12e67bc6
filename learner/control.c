/*
 * control.c - the control ROUTER of agora-learner: Status (counters, the
 * latest metrics record, per-actor counts), GetWeights (the latest version
 * or a league one, raw slab attached), League, and the rendezvous of the
 * job: Register (also the heartbeat) and Deregister of env and reward
 * servers, RunConfig and ListServices for actors that join
 * (docs/protocol.md §12.4; the live set is registry.c's).
 */
#include "learner_priv.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const ag_field_limit_t s_ctl_fields[] = {
    {&agora__v1__register_request__descriptor, "name", AG_JOIN_NAME_MAX},
    {&agora__v1__deregister_request__descriptor, "name", AG_JOIN_NAME_MAX},
};
static const ag_limits_t s_ctl_limits = {.max_string = 256,
                                         .max_repeated = 32,
                                         .fields = s_ctl_fields,
                                         .n_fields = sizeof s_ctl_fields / sizeof s_ctl_fields[0]};

static void s_ctl_error(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                        Agora__V1__ErrorCode code, const char *msg)
{
    ag_debug("learner", "control request %" PRIu64 ": %s: %s", rid, ag_error_name(code), msg);
    ag_rpc_reply_error(l->ctl, peer, &agora__v1__control_reply__descriptor, rid, code, msg);
}

/* Sends rep, whose body the caller set, as the answer to request rid. */
static void s_answer(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                     Agora__V1__ControlReply *rep)
{
    rep->protocol_version = AG_PROTOCOL_VERSION;
    rep->request_id = rid;
    ag_rpc_reply_msg(l->ctl, peer, &rep->base);
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
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_LEAGUE;
    rep.league = &lr;
    s_answer(l, peer, rid, &rep);
    free(v);
}

static void s_register(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                       const Agora__V1__RegisterRequest *req)
{
    char why[512];
    bool added;
    const int rc = ag_registry_register(l->reg, req, &added, why, sizeof why);
    if (rc < 0) {
        if (rc == -EINVAL)
            ag_warn("learner", "refused a registration: %s", why);
        s_ctl_error(l, peer, rid,
                    rc == -EINVAL   ? AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST
                    : rc == -ENOSPC ? AGORA__V1__ERROR_CODE__ERROR_OVERLOADED
                                    : AGORA__V1__ERROR_CODE__ERROR_INTERNAL,
                    why);
        return;
    }
    Agora__V1__RegisterReply rr = AGORA__V1__REGISTER_REPLY__INIT;
    rr.ttl_ms = ag_registry_ttl_ms(l->reg);
    rr.heartbeat_ms = ag_registry_heartbeat_ms(l->reg);
    rr.added = added;
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_REGISTER_SERVICE;
    rep.register_service = &rr;
    s_answer(l, peer, rid, &rep);
}

static bool s_kind_ok(Agora__V1__ServiceKind kind, bool any)
{
    return kind == AGORA__V1__SERVICE_KIND__SERVICE_ENV ||
           kind == AGORA__V1__SERVICE_KIND__SERVICE_REWARD ||
           (any && kind == AGORA__V1__SERVICE_KIND__SERVICE_ANY);
}

static void s_deregister(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                         const Agora__V1__DeregisterRequest *req)
{
    if (!s_kind_ok(req->kind, false) || !req->name || !req->name[0]) {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                    "Deregister needs kind SERVICE_ENV or SERVICE_REWARD and a name");
        return;
    }
    Agora__V1__DeregisterReply dr = AGORA__V1__DEREGISTER_REPLY__INIT;
    dr.removed = ag_registry_remove(l->reg, req->kind, req->name);
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_DEREGISTER_SERVICE;
    rep.deregister_service = &dr;
    s_answer(l, peer, rid, &rep);
}

static void s_run_config(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid)
{
    char game[sizeof l->ws_game];
    ag_service_lock(l->svc);
    snprintf(game, sizeof game, "%s", l->ws_game);
    ag_service_unlock(l->svc);
    Agora__V1__ModelConfig mc = AGORA__V1__MODEL_CONFIG__INIT;
    mc.vocab_size = (uint32_t)l->o.model.vocab;
    mc.d_model = (uint32_t)l->o.model.d_model;
    mc.n_layers = (uint32_t)l->o.model.n_layers;
    mc.n_heads = (uint32_t)l->o.model.n_heads;
    mc.context = (uint32_t)l->o.model.ctx;
    mc.mlp_ratio = (uint32_t)l->o.model.mlp_ratio;
    Agora__V1__RunConfigReply rc = AGORA__V1__RUN_CONFIG_REPLY__INIT;
    rc.run_file = l->run_text;
    rc.game = game;
    rc.model = &mc;
    rc.trajectories = l->advertised[0];
    rc.weights = l->advertised[1];
    rc.control = l->advertised[2];
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_RUN_CONFIG;
    rep.run_config = &rc;
    s_answer(l, peer, rid, &rep);
}

static void s_list_services(ag_learner_t *l, const ag_rpc_peer_t *peer, uint64_t rid,
                            Agora__V1__ServiceKind kind)
{
    if (!s_kind_ok(kind, true)) {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                    "ListServices.kind must be SERVICE_ANY, SERVICE_ENV or SERVICE_REWARD");
        return;
    }
    const size_t n = ag_registry_count(l->reg);
    Agora__V1__ServiceEntry *e = calloc(n ? n : 1, sizeof *e);
    Agora__V1__ServiceEntry **ep = calloc(n ? n : 1, sizeof *ep);
    char **hosts = calloc(n ? n * AG_JOIN_HOSTS_MAX : 1, sizeof *hosts);
    if (!e || !ep || !hosts) {
        free(e);
        free(ep);
        free(hosts);
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_INTERNAL, "out of memory");
        return;
    }
    const uint64_t now = ag_registry_now(l->reg);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const ag_registry_entry_t *r = ag_registry_at(l->reg, i);
        if (kind != AGORA__V1__SERVICE_KIND__SERVICE_ANY && r->kind != kind)
            continue;
        agora__v1__service_entry__init(&e[m]);
        e[m].kind = r->kind;
        e[m].name = (char *)r->name;
        e[m].endpoint = (char *)r->endpoint;
        e[m].n_hosts = r->n_hosts;
        e[m].hosts = hosts + i * AG_JOIN_HOSTS_MAX;
        for (size_t k = 0; k < r->n_hosts; k++)
            e[m].hosts[k] = (char *)r->hosts[k];
        e[m].age_ms = now - r->seen_ms;
        e[m].probe = r->probe;
        ep[m] = &e[m];
        m++;
    }
    Agora__V1__ListServicesReply lr = AGORA__V1__LIST_SERVICES_REPLY__INIT;
    lr.n_services = m;
    lr.services = ep;
    lr.ttl_ms = ag_registry_ttl_ms(l->reg);
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_LIST_SERVICES;
    rep.list_services = &lr;
    s_answer(l, peer, rid, &rep);
    free(e);
    free(ep);
    free(hosts);
}

void ag_learner_on_registry(void *arg)
{
    ag_learner_t *l = arg;
    ag_service_lock(l->svc);
    ag_registry_env_list(l->reg, l->ws_game, l->reg_envs, sizeof l->reg_envs);
    ag_service_unlock(l->svc);
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
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_REGISTER_SERVICE &&
               req->register_service) {
        s_register(l, peer, rid, req->register_service);
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_DEREGISTER_SERVICE &&
               req->deregister_service) {
        s_deregister(l, peer, rid, req->deregister_service);
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_RUN_CONFIG) {
        s_run_config(l, peer, rid);
    } else if (req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_LIST_SERVICES &&
               req->list_services) {
        s_list_services(l, peer, rid, req->list_services->kind);
    } else {
        s_ctl_error(l, peer, rid, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST,
                    "ControlRequest has no body (status, get_weights, league, register_service, "
                    "deregister_service, run_config or list_services)");
    }
    ag_codec_free(&req->base);
}
