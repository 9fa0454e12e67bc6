/*
 * fuzz - building blocks of the hostile-input tests (see fuzz.h).
 */
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "control.pb-c.h"
#include "env.pb-c.h"
#include "reward.pb-c.h"
#include "trajectory.pb-c.h"

/* Every service of the protocol speaks version 1. */
#define PROTOCOL_VERSION 1
/* Arena bytes for another service's envelope: bodies are a few fields. */
#define FOREIGN_CAP 512

int fuzz_init(fuzz_t *fz, size_t cap, uint64_t seed)
{
    memset(fz, 0, sizeof *fz);
    fz->scratch = malloc(cap);
    if (!fz->scratch)
        return -ENOMEM;
    fz->cap = cap;
    ag_rng_seed(&fz->rng, seed);
    return 0;
}

void fuzz_finish(fuzz_t *fz)
{
    free(fz->scratch);
    memset(fz, 0, sizeof *fz);
}

void fuzz_reset(fuzz_t *fz)
{
    fz->used = 0;
}

uint8_t *fuzz_take(fuzz_t *fz, size_t n)
{
    if (n > fz->cap - fz->used) {
        fprintf(stderr, "fuzz: a message needs more than the %zu-byte arena\n", fz->cap);
        abort();
    }
    uint8_t *p = fz->scratch + fz->used;
    fz->used += n;
    return p;
}

uint32_t fuzz_between(fuzz_t *fz, uint32_t lo, uint32_t hi)
{
    return lo + ag_rng_below(&fz->rng, hi - lo + 1);
}

char *fuzz_text(fuzz_t *fz, size_t len, const char *alphabet)
{
    char *s = (char *)fuzz_take(fz, len + 1);
    const uint32_t n = (uint32_t)strlen(alphabet);
    for (size_t i = 0; i < len; i++)
        s[i] = alphabet[ag_rng_below(&fz->rng, n)];
    s[len] = '\0';
    return s;
}

bool fuzz_decodable(const ProtobufCMessageDescriptor *desc, const void *data, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return m != NULL;
}

size_t fuzz_garbage(fuzz_t *fz, const ProtobufCMessageDescriptor *desc, size_t max,
                    ag_env_frame_t *frames)
{
    ag_env_frame_t f;
    do {
        size_t len = fuzz_between(fz, 1, (uint32_t)max);
        uint8_t *p = fuzz_take(fz, len);
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)ag_rng_u64(&fz->rng);
        f = (ag_env_frame_t){p, len};
    } while (fuzz_decodable(desc, f.data, f.size));
    size_t n = 0;
    if (ag_rng_below(&fz->rng, 2))
        frames[n++] = (ag_env_frame_t){"", 0};
    frames[n++] = f;
    return n;
}

ag_env_frame_t fuzz_truncate(fuzz_t *fz, ag_env_frame_t valid,
                             const ProtobufCMessageDescriptor *desc)
{
    ag_env_frame_t f = valid;
    do
        f.size = fuzz_between(fz, 1, (uint32_t)valid.size - 1);
    while (fuzz_decodable(desc, f.data, f.size));
    return f;
}

static size_t s_env_request(fuzz_t *fz, uint64_t id, uint8_t *out)
{
    Agora__V1__EnvRequest env = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    env.protocol_version = PROTOCOL_VERSION;
    env.request_id = id;
    if (ag_rng_below(&fz->rng, 2)) {
        step.episode_id = ag_rng_u64(&fz->rng);
        step.action = "3 7 1";
        env.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
        env.step = &step;
    } else {
        reset.game = "debate";
        env.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
        env.reset = &reset;
    }
    return agora__v1__env_request__pack(&env, out);
}

static size_t s_control_request(fuzz_t *fz, uint64_t id, uint8_t *out)
{
    Agora__V1__ControlRequest ctl = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__GetWeightsRequest gw = AGORA__V1__GET_WEIGHTS_REQUEST__INIT;
    Agora__V1__StatusRequest st = AGORA__V1__STATUS_REQUEST__INIT;
    gw.version = ag_rng_below(&fz->rng, 1000);
    ctl.protocol_version = PROTOCOL_VERSION;
    ctl.request_id = id;
    if (ag_rng_below(&fz->rng, 2)) {
        ctl.body_case = AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS;
        ctl.get_weights = &gw;
    } else {
        ctl.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
        ctl.status = &st;
    }
    return agora__v1__control_request__pack(&ctl, out);
}

static size_t s_reward_request(uint64_t id, uint8_t *out)
{
    Agora__V1__RewardRequest rw = AGORA__V1__REWARD_REQUEST__INIT;
    Agora__V1__LabelRequest label = AGORA__V1__LABEL_REQUEST__INIT;
    Agora__V1__Preference pref = AGORA__V1__PREFERENCE__INIT;
    Agora__V1__Preference *prefs[1] = {&pref};
    pref.preferred = 1;
    label.model = "default";
    label.n_preferences = 1;
    label.preferences = prefs;
    rw.protocol_version = PROTOCOL_VERSION;
    rw.request_id = id;
    rw.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    rw.label = &label;
    return agora__v1__reward_request__pack(&rw, out);
}

static size_t s_trajectory_request(fuzz_t *fz, uint64_t id, uint8_t *out)
{
    Agora__V1__TrajectoryRequest tr = AGORA__V1__TRAJECTORY_REQUEST__INIT;
    Agora__V1__SubmitTrajectories submit = AGORA__V1__SUBMIT_TRAJECTORIES__INIT;
    Agora__V1__Trajectory traj = AGORA__V1__TRAJECTORY__INIT;
    Agora__V1__Trajectory *trajs[1] = {&traj};
    traj.game = "debate";
    traj.seed = ag_rng_u64(&fz->rng);
    submit.n_trajectories = 1;
    submit.trajectories = trajs;
    tr.protocol_version = PROTOCOL_VERSION;
    tr.request_id = id;
    tr.body_case = AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT;
    tr.submit = &submit;
    return agora__v1__trajectory_request__pack(&tr, out);
}

ag_env_frame_t fuzz_foreign_envelope(fuzz_t *fz, const ProtobufCMessageDescriptor *own, uint64_t id)
{
    const ProtobufCMessageDescriptor *const all[4] = {
        &agora__v1__env_request__descriptor, &agora__v1__control_request__descriptor,
        &agora__v1__reward_request__descriptor, &agora__v1__trajectory_request__descriptor};
    const ProtobufCMessageDescriptor *others[4];
    uint32_t n = 0;
    for (size_t i = 0; i < 4; i++)
        if (all[i] != own)
            others[n++] = all[i];
    const ProtobufCMessageDescriptor *pick = others[ag_rng_below(&fz->rng, n)];
    uint8_t *p = fuzz_take(fz, FOREIGN_CAP);
    size_t len;
    if (pick == &agora__v1__env_request__descriptor)
        len = s_env_request(fz, id, p);
    else if (pick == &agora__v1__control_request__descriptor)
        len = s_control_request(fz, id, p);
    else if (pick == &agora__v1__reward_request__descriptor)
        len = s_reward_request(id, p);
    else
        len = s_trajectory_request(fz, id, p);
    return (ag_env_frame_t){p, len};
}

size_t fuzz_frames(fuzz_t *fz, ag_env_frame_t valid, ag_env_frame_t *frames, size_t max,
                   bool *empty_payload)
{
    *empty_payload = false;
    switch (ag_rng_below(&fz->rng, 4)) {
    case 0:
        frames[0] = (ag_env_frame_t){"", 0};
        return 1;
    case 1:
        frames[0] = frames[1] = (ag_env_frame_t){"", 0};
        *empty_payload = true;
        return 2;
    case 2: {
        const char *junk = fuzz_text(fz, fuzz_between(fz, 1, 32), "abc\x01\x02");
        frames[0] = (ag_env_frame_t){junk, strlen(junk)};
        frames[1] = valid;
        return 2;
    }
    default: {
        size_t n = fuzz_between(fz, 3, (uint32_t)max);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = ag_rng_below(&fz->rng, 3);
            frames[i] = r == 0   ? (ag_env_frame_t){"", 0}
                        : r == 1 ? valid
                                 : (ag_env_frame_t){fuzz_text(fz, 8, "0123456789abcdef"), 8};
        }
        return n;
    }
    }
}

int fuzz_send_oversize(const char *endpoint, size_t size, bool delimited, int wait_ms)
{
    uint8_t *blob = malloc(size ? size : 1);
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    int rc = -ENOMEM;
    if (blob && sock) {
        memset(blob, 0x42, size);
        int zero = 0;
        zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
        rc = zmq_connect(sock, endpoint) < 0 ? -errno : 0;
        if (rc == 0 && delimited && zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0)
            rc = -errno;
        if (rc == 0 && zmq_send(sock, blob, size, 0) < 0)
            rc = -errno;
        if (rc == 0) {
            zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
            int n = zmq_poll(&it, 1, wait_ms);
            rc = n < 0 ? -errno : n > 0 ? -EPROTO : 0;
        }
    }
    if (sock)
        zmq_close(sock);
    if (ctx)
        zmq_ctx_term(ctx);
    free(blob);
    return rc;
}
