/*
 * check_wire.c - agora-env-check's checks of the bytes on the wire: request
 * id echo and the two frame layouts (§3), then every kind of request a server
 * must refuse before looking at its body (§4): another protocol version, no
 * body, garbage, a cut-short payload, another service's envelope, frame
 * layouts other than [payload] and [empty][payload], and known fields sent
 * with another wire type than the schema's. The last ones are hand-encoded:
 * no protobuf library would write them, and runtimes other than protobuf-c
 * keep such a field as an "unknown field" unless the server checks for it.
 * After all of it the server must still answer.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "control.pb-c.h"
#include "reward.pb-c.h"
#include "trajectory.pb-c.h"

void ag_check_framing(ag_check_t *c)
{
    char why[AG_CHECK_WHY];
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "agora-env-check";
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;

    /* An id with high bits set catches servers that truncate ids to 32 bits. */
    req.request_id = 0xFEEDFACE00000000ULL | (ag_env_client_new_id(c->cl) & 0xFFFFFFFF);
    size_t len;
    uint8_t *buf = ag_check_pack(&req, &len);
    if (!buf) {
        ag_check_report(c, false, "request_id_echo", "§4", "out of memory");
        return;
    }
    ag_env_frame_t one = {buf, len};
    Agora__V1__EnvReply *r = NULL;
    ag_env_reply_shape_t shape;
    int rc = ag_check_raw_call(c, &one, 1, req.request_id, &r, &shape);
    bool ok = ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
    if (ok && shape.delimited) {
        ag_check_why(why, "a one-frame request was answered with an empty delimiter frame");
        ok = false;
    }
    ag_check_report(c, ok, "request_id_echo", "§4", why);
    ag_check_free(&r);

    /* REQ-style framing: [empty][payload] must be answered as [empty][payload]. */
    free(buf);
    req.request_id = ag_env_client_new_id(c->cl);
    buf = ag_check_pack(&req, &len);
    if (!buf) {
        ag_check_report(c, false, "req_framing", "§3", "out of memory");
        return;
    }
    ag_env_frame_t two[2] = {{"", 0}, {buf, len}};
    rc = ag_check_raw_call(c, two, 2, req.request_id, &r, &shape);
    ok = ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
    if (ok && !shape.delimited) {
        ag_check_why(why, "an [empty][payload] request was answered without the empty delimiter");
        ok = false;
    }
    ag_check_report(c, ok, "req_framing", "§3", why);
    ag_check_free(&r);
    free(buf);
}

/*
 * Sends frames and expects error `code` answered to request id want_id; with
 * any_id, a reply with request_id 0 is as right as one with want_id.
 */
static void s_raw_error(ag_check_t *c, const char *name, const char *section,
                        const ag_env_frame_t *frames, size_t n, uint64_t want_id, bool any_id,
                        int code)
{
    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_check_raw_call(c, frames, n, want_id, &r, NULL);
    if (rc == -ETIMEDOUT) {
        ag_check_why(why, "no reply with request_id %" PRIu64 "%s within %d ms", want_id,
                     any_id && want_id ? " or 0" : "", c->timeout_ms);
        ag_check_report(c, false, name, section, why);
        return;
    }
    if (any_id && rc == -EBADMSG)
        rc = 0;
    ag_check_report(c, ag_check_error1(rc, r, code, why), name, section, why);
}

/* ---- hand-encoded protobuf, for wire types no library would write ---- */

typedef struct {
    uint8_t b[256];
    size_t n;
} wire_t;

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

static void s_varint(wire_t *w, uint64_t v)
{
    do {
        uint8_t byte = v & 0x7f;
        v >>= 7;
        w->b[w->n++] = byte | (v ? 0x80 : 0);
    } while (v);
}

static void s_tag(wire_t *w, uint32_t field, int type)
{
    s_varint(w, (uint64_t)field << 3 | (uint32_t)type);
}

static void s_len(wire_t *w, uint32_t field, const void *data, size_t len)
{
    s_tag(w, field, WT_LEN);
    s_varint(w, len);
    memcpy(w->b + w->n, data, len);
    w->n += len;
}

static void s_uint(wire_t *w, uint32_t field, uint64_t v)
{
    s_tag(w, field, WT_VARINT);
    s_varint(w, v);
}

/* An EnvRequest header (version 1, id) followed by body field `body` holding inner. */
static void s_envelope(wire_t *w, uint64_t id, uint32_t body, const wire_t *inner)
{
    w->n = 0;
    s_uint(w, 1, AG_ENV_PROTOCOL_VERSION);
    s_uint(w, 2, id);
    s_len(w, body, inner->b, inner->n);
}

/*
 * Known fields carrying another wire type than the schema's (§4, Decoding):
 * undecodable, so ERROR_BAD_REQUEST; the id may be 0 (protobuf-c cannot read
 * it) or echoed (a runtime that kept the field aside could).
 */
static void s_wrong_wire_types(ag_check_t *c)
{
    wire_t body, w;
    uint64_t id;

    /* Reset.game (a string) as a varint: a lenient runtime reads game "". */
    body.n = 0;
    s_uint(&body, 1, 5);
    s_uint(&body, 2, 7);
    id = ag_env_client_new_id(c->cl);
    s_envelope(&w, id, 11, &body);
    ag_env_frame_t f = {w.b, w.n};
    s_raw_error(c, "wire_type.reset_game", "§4", &f, 1, id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* Step.action (a string) as a 32-bit fixed: a lenient runtime reads action "". */
    body.n = 0;
    s_uint(&body, 1, 0xDEADBEEFCAFEF00DULL);
    s_uint(&body, 2, 0);
    s_tag(&body, 3, WT_I32);
    memcpy(body.b + body.n, "\x01\x02\x03\x04", 4);
    body.n += 4;
    id = ag_env_client_new_id(c->cl);
    s_envelope(&w, id, 12, &body);
    f = (ag_env_frame_t){w.b, w.n};
    s_raw_error(c, "wire_type.step_action", "§4", &f, 1, id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* Demo.count (a varint) as a length-delimited field: a lenient runtime reads count 0. */
    body.n = 0;
    s_len(&body, 1, "x", 1);
    s_len(&body, 3, "\x02", 1);
    id = ag_env_client_new_id(c->cl);
    s_envelope(&w, id, 13, &body);
    f = (ag_env_frame_t){w.b, w.n};
    s_raw_error(c, "wire_type.demo_count", "§4", &f, 1, id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* The body itself (a message) as a varint, and the request id as a fixed64. */
    w.n = 0;
    s_uint(&w, 1, AG_ENV_PROTOCOL_VERSION);
    id = ag_env_client_new_id(c->cl);
    s_uint(&w, 2, id);
    s_uint(&w, 10, 1);
    f = (ag_env_frame_t){w.b, w.n};
    s_raw_error(c, "wire_type.body", "§4", &f, 1, id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    body.n = 0;
    s_len(&body, 1, "agora-env-check", 15);
    w.n = 0;
    s_uint(&w, 1, AG_ENV_PROTOCOL_VERSION);
    s_tag(&w, 2, WT_I64);
    memcpy(w.b + w.n, "\x01\x00\x00\x00\x00\x00\x00\x00", 8);
    w.n += 8;
    s_len(&w, 10, body.b, body.n);
    f = (ag_env_frame_t){w.b, w.n};
    s_raw_error(c, "wire_type.request_id", "§4", &f, 1, 0, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
}

/* Other services' envelopes share the header (fields 1 and 2) but no body field number. */
static void s_wrong_envelopes(ag_check_t *c)
{
    Agora__V1__ControlRequest ctl = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__GetWeightsRequest gw = AGORA__V1__GET_WEIGHTS_REQUEST__INIT;
    gw.version = 3;
    ctl.protocol_version = AG_ENV_PROTOCOL_VERSION;
    ctl.request_id = ag_env_client_new_id(c->cl);
    ctl.body_case = AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS;
    ctl.get_weights = &gw;
    uint8_t ctl_buf[64];
    ag_env_frame_t f = {ctl_buf, agora__v1__control_request__pack(&ctl, ctl_buf)};
    s_raw_error(c, "wrong_envelope.control", "§4", &f, 1, ctl.request_id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    Agora__V1__RewardRequest rw = AGORA__V1__REWARD_REQUEST__INIT;
    Agora__V1__LabelRequest label = AGORA__V1__LABEL_REQUEST__INIT;
    Agora__V1__Preference pref = AGORA__V1__PREFERENCE__INIT;
    Agora__V1__Preference *prefs[1] = {&pref};
    pref.preferred = 1;
    label.model = "m";
    label.n_preferences = 1;
    label.preferences = prefs;
    rw.protocol_version = AG_ENV_PROTOCOL_VERSION;
    rw.request_id = ag_env_client_new_id(c->cl);
    rw.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    rw.label = &label;
    uint8_t rw_buf[128];
    f = (ag_env_frame_t){rw_buf, agora__v1__reward_request__pack(&rw, rw_buf)};
    s_raw_error(c, "wrong_envelope.reward", "§4", &f, 1, rw.request_id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    Agora__V1__TrajectoryRequest tr = AGORA__V1__TRAJECTORY_REQUEST__INIT;
    Agora__V1__SubmitTrajectories submit = AGORA__V1__SUBMIT_TRAJECTORIES__INIT;
    Agora__V1__Trajectory traj = AGORA__V1__TRAJECTORY__INIT;
    Agora__V1__Trajectory *trajs[1] = {&traj};
    traj.game = "any";
    traj.seed = 7;
    submit.n_trajectories = 1;
    submit.trajectories = trajs;
    tr.protocol_version = AG_ENV_PROTOCOL_VERSION;
    tr.request_id = ag_env_client_new_id(c->cl);
    tr.body_case = AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT;
    tr.submit = &submit;
    uint8_t tr_buf[128];
    f = (ag_env_frame_t){tr_buf, agora__v1__trajectory_request__pack(&tr, tr_buf)};
    s_raw_error(c, "wrong_envelope.trajectory", "§4", &f, 1, tr.request_id, true,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
}

void ag_check_malformed(ag_check_t *c)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "agora-env-check";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    size_t len;

    req.protocol_version = 2;
    req.request_id = ag_env_client_new_id(c->cl);
    uint8_t *buf = ag_check_pack(&req, &len);
    if (!buf)
        goto oom;
    ag_env_frame_t f = {buf, len};
    s_raw_error(c, "version_mismatch", "§4", &f, 1, req.request_id, false,
                AGORA__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    free(buf);

    Agora__V1__EnvRequest bodyless = AGORA__V1__ENV_REQUEST__INIT;
    bodyless.protocol_version = AG_ENV_PROTOCOL_VERSION;
    bodyless.request_id = ag_env_client_new_id(c->cl);
    buf = ag_check_pack(&bodyless, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){buf, len};
    s_raw_error(c, "missing_body", "§4", &f, 1, bodyless.request_id, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    /* Wire type 7 does not exist: no protobuf decoder can accept these bytes. */
    static const char garbage[] = "\x0fgarbage\xff\xff\xff\xff\x01\x02";
    f = (ag_env_frame_t){garbage, sizeof garbage - 1};
    s_raw_error(c, "garbage_bytes", "§4", &f, 1, 0, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* A Reset whose body is cut short: its length prefix promises more bytes. */
    Agora__V1__EnvRequest reset_req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "a-game-name-long-enough-to-cut";
    reset.seed = 12345;
    reset_req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    reset_req.request_id = ag_env_client_new_id(c->cl);
    reset_req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    reset_req.reset = &reset;
    buf = ag_check_pack(&reset_req, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){buf, len - 7};
    s_raw_error(c, "truncated_protobuf", "§4", &f, 1, 0, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    s_wrong_envelopes(c);
    s_wrong_wire_types(c);

    /* Frame layouts other than [payload] and [empty][payload]. */
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = ag_env_client_new_id(c->cl);
    buf = ag_check_pack(&req, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){"", 0};
    s_raw_error(c, "empty_frame", "§3", &f, 1, 0, false, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    ag_env_frame_t three[3] = {{"", 0}, {buf, len}, {buf, len}};
    s_raw_error(c, "three_frames", "§3", three, 3, 0, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    ag_env_frame_t undelimited[2] = {{"x", 1}, {buf, len}};
    s_raw_error(c, "two_frames_no_delimiter", "§3", undelimited, 2, 0, false,
                AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_hello(c->cl, "agora-env-check", &r);
    ag_check_report(c, ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why),
                    "alive_after_malformed", "§5", why);
    ag_check_free(&r);
    return;
oom:
    ag_check_report(c, false, "malformed", "§4", "out of memory");
}
