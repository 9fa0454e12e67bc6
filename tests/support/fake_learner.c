/*
 * fake_learner.c - a scripted learner for actor tests (see fake_learner.h).
 */
#include "fake_learner.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "control.pb-c.h"
#include "crc32.h"
#include "harness.h"
#include "weights.pb-c.h"

#define TOPIC "agora.v1.weights"

static void s_header(fake_learner_t *fl, Agora__V1__WeightsHeader *h, Agora__V1__ModelConfig *mc,
                     bool corrupt)
{
    const ag_model_config_t *c = ag_model_config(fl->model);
    agora__v1__model_config__init(mc);
    mc->vocab_size = (uint32_t)c->vocab;
    mc->d_model = (uint32_t)c->d_model;
    mc->n_layers = (uint32_t)c->n_layers;
    mc->n_heads = (uint32_t)c->n_heads;
    mc->context = (uint32_t)c->ctx;
    mc->mlp_ratio = (uint32_t)c->mlp_ratio;
    agora__v1__weights_header__init(h);
    h->version = fl->version;
    h->config = mc;
    h->num_bytes = ag_model_num_params(fl->model) * 4;
    h->crc32 = ag_crc32(0, ag_model_params_const(fl->model), h->num_bytes) ^ (corrupt ? 1u : 0u);
    h->dtype = "f32le";
    h->step = fl->version;
}

static void s_on_traj(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                      size_t len, void *arg)
{
    fake_learner_t *fl = arg;
    if (!payload)
        return;
    Agora__V1__TrajectoryRequest *req = agora__v1__trajectory_request__unpack(NULL, len, payload);
    if (!req)
        return;
    fl->submits++;
    if (req->body_case != AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT || !req->submit ||
        req->protocol_version != 1) {
        agora__v1__trajectory_request__free_unpacked(req, NULL);
        return;
    }
    Agora__V1__SubmitTrajectories *sub = req->submit;
    Agora__V1__TrajectoryId **ids = calloc(sub->n_trajectories + 1, sizeof *ids);
    for (size_t i = 0; i < sub->n_trajectories; i++) {
        if (fl->n_trajs == fl->cap_trajs) {
            fl->cap_trajs = fl->cap_trajs ? 2 * fl->cap_trajs : 256;
            fl->trajs = realloc(fl->trajs, fl->cap_trajs * sizeof *fl->trajs);
        }
        /* Keep an own copy: the request is freed below. */
        size_t n = agora__v1__trajectory__get_packed_size(sub->trajectories[i]);
        uint8_t *buf = malloc(n ? n : 1);
        agora__v1__trajectory__pack(sub->trajectories[i], buf);
        fl->trajs[fl->n_trajs++] = agora__v1__trajectory__unpack(NULL, n, buf);
        free(buf);
        ids[i] = sub->trajectories[i]->id;
    }
    if (fl->submits > (uint64_t)fl->ignore_submits) {
        Agora__V1__SubmitAck ack = AGORA__V1__SUBMIT_ACK__INIT;
        ack.n_accepted = sub->n_trajectories;
        ack.accepted = ids;
        ack.learner_version = fl->version;
        Agora__V1__TrajectoryReply rep = AGORA__V1__TRAJECTORY_REPLY__INIT;
        ag_envelope_set_header(&rep.base, req->request_id);
        rep.body_case = AGORA__V1__TRAJECTORY_REPLY__BODY_ACK;
        rep.ack = &ack;
        ag_rpc_reply_msg(srv, peer, &rep.base);
    }
    free(ids);
    agora__v1__trajectory_request__free_unpacked(req, NULL);
}

static void s_on_control(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                         size_t len, void *arg)
{
    fake_learner_t *fl = arg;
    if (!payload)
        return;
    fl->control_requests++;
    if (uv_now(fl->loop) < fl->control_after_ms)
        return; /* still "warming up": silent */
    Agora__V1__ControlRequest *req = agora__v1__control_request__unpack(NULL, len, payload);
    if (!req)
        return;
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    ag_envelope_set_header(&rep.base, req->request_id);
    Agora__V1__WeightsHeader h;
    Agora__V1__ModelConfig mc;
    Agora__V1__StatusReply st = AGORA__V1__STATUS_REPLY__INIT;
    Agora__V1__LeagueReply lg = AGORA__V1__LEAGUE_REPLY__INIT;
    switch (req->body_case) {
    case AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS: {
        fl->get_weights++;
        s_header(fl, &h, &mc, false);
        rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_WEIGHTS;
        rep.weights = &h;
        ag_buf_t buf = {0};
        ag_codec_pack(&rep.base, &buf);
        ag_rpc_reply(srv, peer, buf.data, buf.len, ag_model_params_const(fl->model), h.num_bytes);
        ag_buf_finish(&buf);
        agora__v1__control_request__free_unpacked(req, NULL);
        return;
    }
    case AGORA__V1__CONTROL_REQUEST__BODY_STATUS:
        st.version = fl->version;
        st.phase = "ppo";
        rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_STATUS;
        rep.status = &st;
        break;
    case AGORA__V1__CONTROL_REQUEST__BODY_LEAGUE:
        lg.n_versions = fl->n_league;
        lg.versions = fl->league;
        rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_LEAGUE;
        rep.league = &lg;
        break;
    default:
        break;
    }
    ag_rpc_reply_msg(srv, peer, &rep.base);
    agora__v1__control_request__free_unpacked(req, NULL);
}

int fake_learner_init(fake_learner_t *fl, uv_loop_t *loop, void *zctx, const char *traj_ep,
                      const char *pub_ep, const char *control_ep, const ag_model_config_t *cfg)
{
    memset(fl, 0, sizeof *fl);
    fl->loop = loop;
    fl->version = 1;
    fl->model = ag_model_create(cfg, 42, 1);
    ag_zsock_opts_t big = {.maxmsgsize = 64 << 20};
    fl->traj = ag_rpc_server_create(loop, zctx, traj_ep, &big, s_on_traj, fl);
    fl->control = ag_rpc_server_create(loop, zctx, control_ep, NULL, s_on_control, fl);
    fl->pub = ag_zsock_create(loop, zctx, ZMQ_PUB, NULL, NULL, NULL);
    if (!fl->model || !fl->traj || !fl->control || !fl->pub || ag_zsock_bind(fl->pub, pub_ep) < 0)
        return -EINVAL;
    snprintf(fl->traj_ep, sizeof fl->traj_ep, "%s", ag_rpc_server_endpoint(fl->traj));
    snprintf(fl->pub_ep, sizeof fl->pub_ep, "%s", ag_zsock_endpoint(fl->pub));
    snprintf(fl->control_ep, sizeof fl->control_ep, "%s", ag_rpc_server_endpoint(fl->control));
    return 0;
}

int fake_learner_init_policy(fake_learner_t *fl, uv_loop_t *loop, void *zctx,
                             const ag_model_t *policy)
{
    const char *any = "tcp://127.0.0.1:*";
    int rc = fake_learner_init(fl, loop, zctx, any, any, any, ag_model_config(policy));
    if (rc < 0)
        return rc;
    return ag_model_load_params(fl->model, ag_model_params_const(policy),
                                ag_model_num_params(policy));
}

typedef struct run_turn {
    fake_learner_t *fl;
    void (*turn)(fake_learner_t *fl, void *arg);
    void *arg;
} run_turn_t;

static void s_run_turn(void *arg)
{
    run_turn_t *t = arg;
    uv_run(t->fl->loop, UV_RUN_NOWAIT);
    if (t->turn)
        t->turn(t->fl, t->arg);
}

int fake_learner_run(fake_learner_t *fl, char *const argv[], int timeout_ms,
                     void (*turn)(fake_learner_t *fl, void *arg), void *arg)
{
    run_turn_t t = {fl, turn, arg};
    return harness_run_while(argv, timeout_ms, s_run_turn, &t);
}

void fake_learner_finish(fake_learner_t *fl)
{
    ag_rpc_server_destroy(&fl->traj);
    ag_rpc_server_destroy(&fl->control);
    ag_zsock_destroy(&fl->pub);
    ag_model_destroy(&fl->model);
    for (size_t i = 0; i < fl->n_trajs; i++)
        agora__v1__trajectory__free_unpacked(fl->trajs[i], NULL);
    free(fl->trajs);
    fl->trajs = NULL;
    fl->n_trajs = 0;
}

int fake_learner_publish(fake_learner_t *fl, uint64_t version, bool corrupt)
{
    float *p = ag_model_params(fl->model);
    size_t n = ag_model_num_params(fl->model);
    for (size_t i = 0; i < n; i += 97)
        p[i] += 0.01f;
    fl->version = version;
    Agora__V1__WeightsHeader h;
    Agora__V1__ModelConfig mc;
    s_header(fl, &h, &mc, corrupt);
    ag_buf_t buf = {0};
    if (ag_codec_pack(&h.base, &buf) < 0)
        return -ENOMEM;
    ag_frame_t f[3] = {{TOPIC, strlen(TOPIC)}, {buf.data, buf.len}, {p, n * 4}};
    int rc = ag_zsock_send(fl->pub, f, 3);
    ag_buf_finish(&buf);
    return rc;
}

static int s_cmp_id(const void *a, const void *b)
{
    const Agora__V1__TrajectoryId *x = (*(Agora__V1__Trajectory *const *)a)->id;
    const Agora__V1__TrajectoryId *y = (*(Agora__V1__Trajectory *const *)b)->id;
    int c = strcmp(x->actor_id, y->actor_id);
    if (c)
        return c;
    if (x->run_id != y->run_id)
        return x->run_id < y->run_id ? -1 : 1;
    return (x->sequence > y->sequence) - (x->sequence < y->sequence);
}

size_t fake_learner_distinct(const fake_learner_t *fl)
{
    if (!fl->n_trajs)
        return 0;
    Agora__V1__Trajectory **v = malloc(fl->n_trajs * sizeof *v);
    memcpy(v, fl->trajs, fl->n_trajs * sizeof *v);
    qsort(v, fl->n_trajs, sizeof *v, s_cmp_id);
    size_t d = 1;
    for (size_t i = 1; i < fl->n_trajs; i++)
        d += s_cmp_id(&v[i - 1], &v[i]) != 0;
    free(v);
    return d;
}
