/*
 * probe.c - `agora probe SERVICE ENDPOINT`: is an agora service alive, as
 * its peers would see it? It sends the service's cheapest request over the
 * real protocol (env: Hello, control: Status, reward: Stats) on a DEALER
 * and exits 0 only when a reply of the right kind comes back within the
 * deadline: an open TCP port with a stuck loop behind it fails, so this is
 * what health checks (Kubernetes liveness/readiness exec probes, scripts
 * waiting for a server) run.
 *
 * Exit status: 0 alive; 1 no valid reply (none in time, an Error, another
 * body); 2 usage.
 */
#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "control.pb-c.h"
#include "env.pb-c.h"
#include "log.h"
#include "reward.pb-c.h"
#include "rpc.h"

typedef struct probe_opts {
    long timeout_ms;
} probe_opts_t;

static const ag_option_t s_options[] = {
    AG_OPT(probe_opts_t, timeout_ms, "probe.timeout_ms", "timeout-ms", "2000", 1, 3600000,
           "how long to wait for the reply"),
};

/* One service's request and the reply body that proves it alive. */
typedef struct service {
    const char *name;
    const ProtobufCMessageDescriptor *reply;
    int alive_body; /* the reply's body_case that counts */
} service_t;

static const service_t s_services[] = {
    {"env", &agora__v1__env_reply__descriptor, AGORA__V1__ENV_REPLY__BODY_HELLO},
    {"control", &agora__v1__control_reply__descriptor, AGORA__V1__CONTROL_REPLY__BODY_STATUS},
    {"reward", &agora__v1__reward_reply__descriptor, AGORA__V1__REWARD_REPLY__BODY_STATS},
};

typedef struct result {
    bool done;
    int status;
    int body;
} result_t;

/* Every reply envelope starts with protocol_version, request_id and the oneof. */
static int s_body_case(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (d == &agora__v1__env_reply__descriptor)
        return (int)((const Agora__V1__EnvReply *)m)->body_case;
    if (d == &agora__v1__control_reply__descriptor)
        return (int)((const Agora__V1__ControlReply *)m)->body_case;
    return (int)((const Agora__V1__RewardReply *)m)->body_case;
}

static void s_done(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                   size_t extra_len)
{
    result_t *r = arg;
    r->done = true;
    r->status = status;
    r->body = status == 0 && reply ? s_body_case(reply) : 0;
}

/* Sends svc's request to endpoint and runs the loop until its reply or the deadline. */
static int s_probe(const service_t *svc, const char *endpoint, long timeout_ms)
{
    Agora__V1__EnvRequest env = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    Agora__V1__ControlRequest control = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__StatusRequest status = AGORA__V1__STATUS_REQUEST__INIT;
    Agora__V1__RewardRequest reward = AGORA__V1__REWARD_REQUEST__INIT;
    Agora__V1__RewardStatsRequest stats = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    ProtobufCMessage *req;
    if (svc->reply == &agora__v1__env_reply__descriptor) {
        hello.client_name = "agora-probe";
        env.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
        env.hello = &hello;
        req = &env.base;
    } else if (svc->reply == &agora__v1__control_reply__descriptor) {
        control.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
        control.status = &status;
        req = &control.base;
    } else {
        reward.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
        reward.stats = &stats;
        req = &reward.base;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    ag_rpc_client_opts_t ro = {.timeout_ms = (int)timeout_ms, .attempts = 1};
    ag_rpc_client_t *c = ag_rpc_client_create(&loop, zctx, endpoint, svc->reply, &ro);
    result_t r = {0};
    int rc = c ? ag_rpc_call(c, req, s_done, &r) : -EINVAL;
    while (rc == 0 && !r.done)
        uv_run(&loop, UV_RUN_ONCE);
    ag_rpc_client_destroy(&c);
    uv_run(&loop, UV_RUN_DEFAULT); /* let the closed handles finish */
    uv_loop_close(&loop);
    zmq_ctx_term(zctx);
    if (rc < 0) {
        fprintf(stderr, "agora probe: cannot send to %s: %s\n", endpoint, strerror(-rc));
        return 1;
    }
    if (r.status < 0) {
        fprintf(stderr, "agora probe: %s at %s: %s\n", svc->name, endpoint,
                r.status == -ETIMEDOUT ? "no reply in time" : strerror(-r.status));
        return 1;
    }
    if (r.body != svc->alive_body) {
        fprintf(stderr, "agora probe: %s at %s answered, but not with a %s reply (body %d)\n",
                svc->name, endpoint, svc->name, r.body);
        return 1;
    }
    printf("%s at %s: alive\n", svc->name, endpoint);
    return 0;
}

int ag_probe_main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora probe", "SERVICE ENDPOINT [options]",
        "Asks the agora service at ENDPOINT for its cheapest reply over the real protocol "
        "(SERVICE env: Hello; control: the learner's Status; reward: Stats) and exits 0 only "
        "when a reply of that kind arrives in time: a health check that a stuck process "
        "behind an open port fails.",
        s_options, sizeof s_options / sizeof s_options[0], 2);
    if (!cfg)
        return 2;
    probe_opts_t o;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc == 0 && ag_config_positional_count(cfg) != 2) {
        fprintf(stderr, "agora probe: expected SERVICE ENDPOINT (see --help)\n");
        rc = -1;
    }
    if (rc == 0 && ag_config_apply(cfg, &o) < 0)
        rc = -1;
    const service_t *svc = NULL;
    for (size_t i = 0; rc == 0 && i < sizeof s_services / sizeof s_services[0]; i++)
        if (!strcmp(ag_config_positional(cfg, 0), s_services[i].name))
            svc = &s_services[i];
    if (rc == 0 && !svc) {
        fprintf(stderr, "agora probe: SERVICE is env, control or reward, not '%s'\n",
                ag_config_positional(cfg, 0));
        rc = -1;
    }
    if (rc == 0)
        rc = s_probe(svc, ag_config_positional(cfg, 1), o.timeout_ms);
    else
        rc = rc > 0 ? 0 : 2;
    ag_config_destroy(&cfg);
    return rc;
}
