/*
 * agora-env-check - a conformance checker for any environment server that
 * speaks the agora env protocol v1, whatever language it is written in.
 *
 * The checker cannot know a foreign game's valid actions, so it learns them
 * from the protocol itself: it asks Demo for transcripts of each game the
 * server lists in Hello, then replays a transcript's actions with Reset(seed)
 * and Step and requires the same observations, per-step rewards, returns,
 * terminal flag, info and metrics. That one comparison covers both "play to
 * termination" and "determinism". Around it: Hello, request-id echo, REQ-style
 * framing, reset determinism, Close, unknown episode/game/option, acting out
 * of turn, invalid and over-long actions (state must be unchanged: the replay
 * continues identically afterwards), version mismatch and malformed input of
 * every kind, after which the server must still answer. One line per check,
 * a summary, exit status 0 (all passed), 1 (a check failed) or 2 (usage
 * error or no answer from the server).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.pb-c.h"
#include "env_client.h"
#include "reward.pb-c.h"
#include "trajectory.pb-c.h"

#define MAX_GAME_NAME 64
#define MAX_SEATS 8
#define WHY 512

typedef struct {
    ag_env_client_t *cl;
    const char *endpoint;
    int timeout_ms;
    uint64_t seed;
    int passed, failed, skipped;
} checker_t;

/* Outcomes of one kind of interference sent during a replay. */
typedef struct {
    int ok, bad;
    char why[WHY];
} tally_t;

typedef struct {
    tally_t not_your_turn, bad_seat, invalid_action, long_action;
} interference_t;

static void report(checker_t *c, bool ok, const char *name, const char *why)
{
    if (ok) {
        c->passed++;
        printf("PASS %s\n", name);
    } else {
        c->failed++;
        printf("FAIL %s: %s\n", name, why);
    }
    fflush(stdout);
}

static void skip(checker_t *c, const char *name, const char *why)
{
    c->skipped++;
    printf("SKIP %s: %s\n", name, why);
    fflush(stdout);
}

static void format_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void format_why(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, WHY, fmt, ap);
    va_end(ap);
}

/* "error ERROR_X (message)" or "a step reply", for failure messages. */
static const char *describe(const Agora__V1__EnvReply *r, char *buf, size_t len)
{
    if (!r) {
        snprintf(buf, len, "no reply");
    } else if (r->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR && r->error) {
        snprintf(buf, len, "error %s (%.200s)", ag_env_error_name(r->error->code),
                 r->error->message ? r->error->message : "");
    } else {
        snprintf(buf, len, "a %s reply", ag_env_reply_kind(r));
    }
    return buf;
}

static void format_call_error(char *why, int rc)
{
    if (rc == -EBADMSG)
        format_why(why, "the reply does not echo the request's id (it carries request_id 0)");
    else if (rc == -ETIMEDOUT)
        format_why(why, "no reply within the deadline");
    else if (rc == -EPROTO)
        format_why(why, "the reply is not a decodable EnvReply in one or two frames");
    else
        format_why(why, "request failed: %s", strerror(-rc));
}

/*
 * Checks that a call returned an Error whose code is one of codes (n of
 * them). Frees the reply.
 */
static bool expect_error(int rc, Agora__V1__EnvReply *r, const int *codes, size_t n, char *why)
{
    bool ok = false;
    if (rc == -EBADMSG && r) {
        char d[300];
        format_why(why, "answered %s with request_id 0 instead of echoing the request's id",
                   describe(r, d, sizeof d));
    } else if (rc) {
        format_call_error(why, rc);
    } else {
        int code = ag_env_reply_error(r);
        for (size_t i = 0; i < n; i++)
            ok = ok || code == codes[i];
        if (!ok) {
            char d[300];
            format_why(why, "expected %s%s, got %s", ag_env_error_name(codes[0]),
                       n > 1 ? " (or an equivalent)" : "", describe(r, d, sizeof d));
        }
    }
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);
    return ok;
}

static bool expect_one(int rc, Agora__V1__EnvReply *r, int code, char *why)
{
    return expect_error(rc, r, &code, 1, why);
}

/* Checks that a call succeeded with a reply of the given body kind. */
static bool expect_kind(int rc, const Agora__V1__EnvReply *r, int body_case, const char *kind,
                        char *why)
{
    if (rc == -EBADMSG && r) {
        char d[300];
        format_why(why, "answered %s with request_id 0 instead of echoing the request's id",
                   describe(r, d, sizeof d));
        return false;
    }
    if (rc) {
        format_call_error(why, rc);
        return false;
    }
    if (r->protocol_version != AG_ENV_PROTOCOL_VERSION) {
        format_why(why, "reply protocol_version %" PRIu32 ", expected 1", r->protocol_version);
        return false;
    }
    if ((int)r->body_case != body_case) {
        char d[300];
        format_why(why, "expected a %s reply, got %s", kind, describe(r, d, sizeof d));
        return false;
    }
    return true;
}

static bool str_eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* Quotes at most 60 bytes of s around offset `at`, escaping what is not printable. */
static const char *quote(const char *s, size_t at, char *buf, size_t len)
{
    s = s ? s : "";
    size_t n = strlen(s), start = at > 20 ? at - 20 : 0, o = 0;
    buf[o++] = '"';
    for (size_t i = start; i < n && i < start + 60 && o + 6 < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else if (ch < 32 || ch >= 127 || ch == '"') {
            o += (size_t)snprintf(buf + o, len - o, "\\x%02x", ch);
        } else {
            buf[o++] = (char)ch;
        }
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

static bool text_eq(const char *what, const char *got, const char *want, char *why)
{
    if (str_eq(got, want))
        return true;
    got = got ? got : "";
    want = want ? want : "";
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    char g[128], w[128];
    format_why(why, "%s differs at byte %zu: got %s, expected %s", what, i,
               quote(got, i, g, sizeof g), quote(want, i, w, sizeof w));
    return false;
}

static float at_or_zero(const float *v, size_t n, size_t i)
{
    return i < n ? v[i] : 0.0f;
}

static bool rewards_eq(const char *what, const float *got, size_t n_got, const float *want,
                       size_t n_want, char *why)
{
    size_t n = n_got > n_want ? n_got : n_want;
    for (size_t i = 0; i < n; i++) {
        if (at_or_zero(got, n_got, i) != at_or_zero(want, n_want, i)) {
            format_why(why, "%s: seat %zu got %g, expected %g", what, i,
                       (double)at_or_zero(got, n_got, i), (double)at_or_zero(want, n_want, i));
            return false;
        }
    }
    return true;
}

static bool info_eq(Agora__V1__KeyValue **got, size_t n_got, Agora__V1__KeyValue **want,
                    size_t n_want, char *why)
{
    if (n_got != n_want) {
        format_why(why, "final info has %zu entries, the transcript %zu", n_got, n_want);
        return false;
    }
    for (size_t i = 0; i < n_got; i++) {
        if (!str_eq(got[i]->key, want[i]->key) || !str_eq(got[i]->value, want[i]->value)) {
            format_why(why, "final info entry %zu is %.64s=%.128s, the transcript has %.64s=%.128s",
                       i, got[i]->key, got[i]->value, want[i]->key, want[i]->value);
            return false;
        }
    }
    return true;
}

static bool metrics_eq(Agora__V1__Metric **got, size_t n_got, Agora__V1__Metric **want,
                       size_t n_want, char *why)
{
    if (n_got != n_want) {
        format_why(why, "final metrics have %zu entries, the transcript %zu", n_got, n_want);
        return false;
    }
    for (size_t i = 0; i < n_got; i++) {
        if (!str_eq(got[i]->name, want[i]->name) || got[i]->value != want[i]->value) {
            format_why(why, "final metric %zu is %.64s=%g, the transcript has %.64s=%g", i,
                       got[i]->name, got[i]->value, want[i]->name, want[i]->value);
            return false;
        }
    }
    return true;
}

/*
 * Sends raw frames and waits for the reply whose request_id is want_id,
 * discarding late replies to earlier requests. A reply with request_id 0
 * when want_id is not 0 ends the wait with -EBADMSG (the reply in *reply).
 */
static int raw_call(checker_t *c, const ag_env_frame_t *frames, size_t n, uint64_t want_id,
                    Agora__V1__EnvReply **reply, ag_env_reply_shape_t *shape)
{
    *reply = NULL;
    int rc = ag_env_client_send_frames(c->cl, frames, n);
    if (rc)
        return rc;
    for (;;) {
        rc = ag_env_client_recv(c->cl, c->timeout_ms, reply, shape);
        if (rc)
            return rc;
        if ((*reply)->request_id == want_id)
            return 0;
        if ((*reply)->request_id == 0)
            return -EBADMSG;
        agora__v1__env_reply__free_unpacked(*reply, NULL);
        *reply = NULL;
    }
}

/* Packs an EnvRequest into a malloc'd buffer (freed by the caller). */
static uint8_t *pack_request(const Agora__V1__EnvRequest *req, size_t *len)
{
    *len = agora__v1__env_request__get_packed_size(req);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        agora__v1__env_request__pack(req, buf);
    return buf;
}

/* ---- Hello ---------------------------------------------------------------------------- */

static bool spec_sane(const Agora__V1__HelloReply *h, char *why)
{
    if (!h->server_name || !*h->server_name) {
        format_why(why, "empty server_name");
        return false;
    }
    if (h->protocol_version != AG_ENV_PROTOCOL_VERSION) {
        format_why(why, "HelloReply.protocol_version %" PRIu32 ", expected 1", h->protocol_version);
        return false;
    }
    if (h->n_games == 0) {
        format_why(why, "no games listed");
        return false;
    }
    if (h->episode_ttl_ms == 0) {
        format_why(why, "episode_ttl_ms is 0");
        return false;
    }
    for (size_t i = 0; i < h->n_games; i++) {
        const Agora__V1__GameSpec *g = h->games[i];
        size_t len = g->name ? strlen(g->name) : 0;
        if (len == 0 || len > MAX_GAME_NAME) {
            format_why(why, "game %zu: name length %zu (1..%d)", i, len, MAX_GAME_NAME);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (str_eq(h->games[j]->name, g->name)) {
                format_why(why, "game '%s' listed twice", g->name);
                return false;
            }
        }
        if (g->num_players < 1 || g->num_players > MAX_SEATS) {
            format_why(why, "game '%s': num_players %" PRIu32 " (1..%d)", g->name, g->num_players,
                       MAX_SEATS);
            return false;
        }
        if (g->n_roles != g->num_players) {
            format_why(why, "game '%s': %zu roles for %" PRIu32 " players", g->name, g->n_roles,
                       g->num_players);
            return false;
        }
        for (size_t j = 0; j < g->n_options; j++) {
            if (!g->options[j]->name || !*g->options[j]->name) {
                format_why(why, "game '%s': option %zu has no name", g->name, j);
                return false;
            }
            for (size_t k = 0; k < j; k++) {
                if (str_eq(g->options[k]->name, g->options[j]->name)) {
                    format_why(why, "game '%s': option '%s' listed twice", g->name,
                               g->options[j]->name);
                    return false;
                }
            }
        }
    }
    return true;
}

static void check_request_id_and_framing(checker_t *c)
{
    char why[WHY];
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "agora-env-check";
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;

    /* An id with high bits set catches servers that truncate ids to 32 bits. */
    req.request_id = 0xFEEDFACE00000000ULL | (ag_env_client_new_id(c->cl) & 0xFFFFFFFF);
    size_t len;
    uint8_t *buf = pack_request(&req, &len);
    if (!buf) {
        report(c, false, "request_id_echo", "out of memory");
        return;
    }
    ag_env_frame_t one = {buf, len};
    Agora__V1__EnvReply *r = NULL;
    ag_env_reply_shape_t shape;
    int rc = raw_call(c, &one, 1, req.request_id, &r, &shape);
    bool ok = expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
    if (ok && shape.delimited) {
        format_why(why, "a one-frame request was answered with an empty delimiter frame");
        ok = false;
    }
    report(c, ok, "request_id_echo", why);
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);

    /* REQ-style framing: [empty][payload] must be answered as [empty][payload]. */
    free(buf);
    req.request_id = ag_env_client_new_id(c->cl);
    buf = pack_request(&req, &len);
    if (!buf) {
        report(c, false, "req_framing", "out of memory");
        return;
    }
    ag_env_frame_t two[2] = {{"", 0}, {buf, len}};
    rc = raw_call(c, two, 2, req.request_id, &r, &shape);
    ok = expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
    if (ok && !shape.delimited) {
        format_why(why, "an [empty][payload] request was answered without the empty delimiter");
        ok = false;
    }
    report(c, ok, "req_framing", why);
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);
    free(buf);
}

/* ---- Malformed requests --------------------------------------------------------------- */

/* Sends frames, expects BAD_REQUEST (or `code`) answered to request id want_id. */
static void check_raw_error(checker_t *c, const char *name, const ag_env_frame_t *frames, size_t n,
                            uint64_t want_id, int code)
{
    char why[WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc = raw_call(c, frames, n, want_id, &r, NULL);
    if (rc == -ETIMEDOUT) {
        format_why(why, "no reply with request_id %" PRIu64 " within %d ms", want_id,
                   c->timeout_ms);
        report(c, false, name, why);
        return;
    }
    report(c, expect_one(rc, r, code, why), name, why);
}

/* Like check_raw_error, but a reply with request_id 0 is as right as one with want_id. */
static void check_raw_error_any_id(checker_t *c, const char *name, const ag_env_frame_t *frames,
                                   size_t n, uint64_t want_id, int code)
{
    char why[WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc = raw_call(c, frames, n, want_id, &r, NULL);
    if (rc == -ETIMEDOUT) {
        format_why(why, "no reply with request_id %" PRIu64 " or 0 within %d ms", want_id,
                   c->timeout_ms);
        report(c, false, name, why);
        return;
    }
    report(c, expect_one(rc == -EBADMSG ? 0 : rc, r, code, why), name, why);
}

static void check_malformed(checker_t *c)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "agora-env-check";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    size_t len;

    req.protocol_version = 2;
    req.request_id = ag_env_client_new_id(c->cl);
    uint8_t *buf = pack_request(&req, &len);
    if (!buf)
        goto oom;
    ag_env_frame_t f = {buf, len};
    check_raw_error(c, "version_mismatch", &f, 1, req.request_id,
                    AGORA__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    free(buf);

    Agora__V1__EnvRequest bodyless = AGORA__V1__ENV_REQUEST__INIT;
    bodyless.protocol_version = AG_ENV_PROTOCOL_VERSION;
    bodyless.request_id = ag_env_client_new_id(c->cl);
    buf = pack_request(&bodyless, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){buf, len};
    check_raw_error(c, "missing_body", &f, 1, bodyless.request_id,
                    AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    /* Wire type 7 does not exist: no protobuf decoder can accept these bytes. */
    static const char garbage[] = "\x0fgarbage\xff\xff\xff\xff\x01\x02";
    f = (ag_env_frame_t){garbage, sizeof garbage - 1};
    check_raw_error(c, "garbage_bytes", &f, 1, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* A Reset whose body is cut short: its length prefix promises more bytes. */
    Agora__V1__EnvRequest reset_req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "a-game-name-long-enough-to-cut";
    reset.seed = 12345;
    reset_req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    reset_req.request_id = ag_env_client_new_id(c->cl);
    reset_req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    reset_req.reset = &reset;
    buf = pack_request(&reset_req, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){buf, len - 7};
    check_raw_error(c, "truncated_protobuf", &f, 1, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    /*
     * Other services' envelopes share the header (fields 1 and 2) but not the
     * body fields: one reads as an EnvRequest without a body (its id then
     * echoed) or, where a field number meets another wire type, not at all
     * (id 0). Either way it is not a request this server may act on.
     */
    Agora__V1__ControlRequest ctl = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__GetWeightsRequest gw = AGORA__V1__GET_WEIGHTS_REQUEST__INIT;
    gw.version = 3;
    ctl.protocol_version = AG_ENV_PROTOCOL_VERSION;
    ctl.request_id = ag_env_client_new_id(c->cl);
    ctl.body_case = AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS;
    ctl.get_weights = &gw;
    uint8_t ctl_buf[64];
    f = (ag_env_frame_t){ctl_buf, agora__v1__control_request__pack(&ctl, ctl_buf)};
    check_raw_error_any_id(c, "wrong_envelope.control", &f, 1, ctl.request_id,
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
    check_raw_error_any_id(c, "wrong_envelope.reward", &f, 1, rw.request_id,
                           AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    Agora__V1__TrajectoryRequest tr = AGORA__V1__TRAJECTORY_REQUEST__INIT;
    Agora__V1__SubmitTrajectories submit = AGORA__V1__SUBMIT_TRAJECTORIES__INIT;
    Agora__V1__Trajectory traj = AGORA__V1__TRAJECTORY__INIT;
    Agora__V1__Trajectory *trajs[1] = {&traj};
    traj.game = "debate";
    traj.seed = 7;
    submit.n_trajectories = 1;
    submit.trajectories = trajs;
    tr.protocol_version = AG_ENV_PROTOCOL_VERSION;
    tr.request_id = ag_env_client_new_id(c->cl);
    tr.body_case = AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT;
    tr.submit = &submit;
    uint8_t tr_buf[128];
    f = (ag_env_frame_t){tr_buf, agora__v1__trajectory_request__pack(&tr, tr_buf)};
    check_raw_error_any_id(c, "wrong_envelope.trajectory", &f, 1, tr.request_id,
                           AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);

    /* Frame layouts other than [payload] and [empty][payload]. */
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = ag_env_client_new_id(c->cl);
    buf = pack_request(&req, &len);
    if (!buf)
        goto oom;
    f = (ag_env_frame_t){"", 0};
    check_raw_error(c, "empty_frame", &f, 1, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    ag_env_frame_t three[3] = {{"", 0}, {buf, len}, {buf, len}};
    check_raw_error(c, "three_frames", three, 3, 0, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    ag_env_frame_t undelimited[2] = {{"x", 1}, {buf, len}};
    check_raw_error(c, "two_frames_no_delimiter", undelimited, 2, 0,
                    AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
    free(buf);

    char why[WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_hello(c->cl, "agora-env-check", &r);
    report(c, expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why),
           "alive_after_malformed", why);
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);
    return;
oom:
    report(c, false, "malformed", "out of memory");
}

/* ---- Per game ------------------------------------------------------------------------- */

static const char not_an_action[] = "\x01not an action\xff";

static void tally(tally_t *t, bool ok, const char *why)
{
    if (ok) {
        t->ok++;
    } else if (t->bad++ == 0) {
        snprintf(t->why, sizeof t->why, "%s", why);
    }
}

/* Sends the interference of one turn: nothing here may change the episode. */
static void interfere(checker_t *c, uint64_t ep, uint32_t np, uint32_t player, const char *action,
                      interference_t *itf)
{
    char why[WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc;
    if (np >= 2) {
        rc = ag_env_client_step(c->cl, ep, (player + 1) % np, action, &r);
        tally(&itf->not_your_turn,
              expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, why), why);
    }
    static const int seat_codes[] = {AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN,
                                     AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST};
    rc = ag_env_client_step(c->cl, ep, np + 3, action, &r);
    tally(&itf->bad_seat, expect_error(rc, r, seat_codes, 2, why), why);

    static const int action_codes[] = {AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION,
                                       AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST};
    rc = ag_env_client_step(c->cl, ep, player, not_an_action, &r);
    tally(&itf->invalid_action, expect_error(rc, r, action_codes, 2, why), why);

    char *long_action = malloc(AG_ENV_MAX_ACTION + 2);
    if (!long_action) {
        tally(&itf->long_action, false, "out of memory");
        return;
    }
    memset(long_action, '7', AG_ENV_MAX_ACTION + 1);
    long_action[AG_ENV_MAX_ACTION + 1] = 0;
    rc = ag_env_client_step(c->cl, ep, player, long_action, &r);
    tally(&itf->long_action, expect_error(rc, r, action_codes, 2, why), why);
    free(long_action);
}

/*
 * Plays transcript t from Reset(game, t->seed) with the transcript's actions
 * and compares everything the server says with it. With itf, every turn is
 * preceded by interference that must leave the episode unchanged. On success
 * *episode is the (finished) episode id.
 */
static bool replay(checker_t *c, const char *game, const Agora__V1__Transcript *t,
                   interference_t *itf, uint64_t *episode, char *why)
{
    Agora__V1__EnvReply *r = NULL;
    bool ok = false;
    int rc = ag_env_client_reset(c->cl, game, t->seed, NULL, 0, NULL, 0, &r);
    if (!expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why))
        goto out;
    const Agora__V1__ResetReply *rs = r->reset;
    uint64_t ep = rs->episode_id;
    *episode = ep;
    uint32_t np = rs->num_players;
    if (np != t->num_players || np < 1 || np > MAX_SEATS) {
        format_why(why, "Reset says %" PRIu32 " players, the transcript %" PRIu32, np,
                   t->num_players);
        goto out;
    }
    if (rs->terminated) {
        format_why(why, "Reset with no bot seats reports a terminated episode");
        goto out;
    }
    if (rs->to_act != t->turns[0]->player) {
        format_why(why, "Reset: to_act %" PRIu32 ", the transcript's first player %" PRIu32,
                   rs->to_act, t->turns[0]->player);
        goto out;
    }
    if (!text_eq("Reset observation", rs->observation, t->turns[0]->observation, why))
        goto out;
    agora__v1__env_reply__free_unpacked(r, NULL);
    r = NULL;

    float sums[MAX_SEATS] = {0};
    for (size_t i = 0; i < t->n_turns; i++) {
        const Agora__V1__Turn *turn = t->turns[i];
        if (itf)
            interfere(c, ep, np, turn->player, turn->action, itf);
        rc = ag_env_client_step(c->cl, ep, turn->player, turn->action, &r);
        if (!expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_STEP, "step", why)) {
            char d[WHY];
            snprintf(d, sizeof d, "turn %zu: %s", i + 1, why);
            memcpy(why, d, WHY);
            goto out;
        }
        const Agora__V1__StepReply *st = r->step;
        char what[64];
        snprintf(what, sizeof what, "turn %zu rewards", i + 1);
        if (!rewards_eq(what, st->rewards, st->n_rewards, turn->rewards, turn->n_rewards, why))
            goto out;
        for (size_t s = 0; s < np && s < st->n_rewards; s++)
            sums[s] += st->rewards[s];
        if (i + 1 < t->n_turns) {
            const Agora__V1__Turn *next = t->turns[i + 1];
            if (st->terminated || st->truncated) {
                format_why(why, "turn %zu ends the episode, the transcript has %zu turns", i + 1,
                           t->n_turns);
                goto out;
            }
            if (st->to_act != next->player) {
                format_why(why,
                           "turn %zu: to_act %" PRIu32 ", the transcript's next player %" PRIu32,
                           i + 1, st->to_act, next->player);
                goto out;
            }
            snprintf(what, sizeof what, "turn %zu observation", i + 2);
            if (!text_eq(what, st->observation, next->observation, why))
                goto out;
        } else {
            if (!st->terminated) {
                format_why(why, "the transcript's last action (turn %zu) did not terminate", i + 1);
                goto out;
            }
            if (!info_eq(st->info, st->n_info, t->info, t->n_info, why) ||
                !metrics_eq(st->metrics, st->n_metrics, t->metrics, t->n_metrics, why))
                goto out;
        }
        agora__v1__env_reply__free_unpacked(r, NULL);
        r = NULL;
    }
    for (size_t s = 0; s < np; s++) {
        float want = at_or_zero(t->returns, t->n_returns, s);
        if (fabsf(sums[s] - want) > 1e-4f * (1.0f + fabsf(want))) {
            format_why(why, "seat %zu: step rewards sum to %g, the transcript's return is %g", s,
                       (double)sums[s], (double)want);
            goto out;
        }
    }
    ok = true;
out:
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);
    return ok;
}

/* Checks the shape of Demo transcript i (seed + i). */
static bool transcript_sane(const Agora__V1__Transcript *t, const char *game, uint64_t seed,
                            uint32_t np, char *why)
{
    if (!str_eq(t->game, game)) {
        format_why(why, "transcript game '%.64s', expected '%s'", t->game, game);
        return false;
    }
    if (t->seed != seed) {
        format_why(why, "transcript seed %" PRIu64 ", expected %" PRIu64, t->seed, seed);
        return false;
    }
    if (t->num_players != np) {
        format_why(why, "transcript has %" PRIu32 " players, Hello says %" PRIu32, t->num_players,
                   np);
        return false;
    }
    if (t->n_turns == 0) {
        format_why(why, "transcript has no turns");
        return false;
    }
    for (size_t i = 0; i < t->n_turns; i++) {
        if (t->turns[i]->player >= np) {
            format_why(why, "turn %zu: player %" PRIu32 " of %" PRIu32, i + 1, t->turns[i]->player,
                       np);
            return false;
        }
    }
    if (t->n_returns != np) {
        format_why(why, "%zu returns for %" PRIu32 " players", t->n_returns, np);
        return false;
    }
    for (size_t s = 0; s < np; s++) {
        float sum = 0;
        for (size_t i = 0; i < t->n_turns; i++)
            sum += at_or_zero(t->turns[i]->rewards, t->turns[i]->n_rewards, s);
        if (fabsf(sum - t->returns[s]) > 1e-4f * (1.0f + fabsf(t->returns[s]))) {
            format_why(why, "seat %zu: turn rewards sum to %g, returns say %g", s, (double)sum,
                       (double)t->returns[s]);
            return false;
        }
    }
    return true;
}

static bool same_transcripts(const Agora__V1__DemoReply *a, const Agora__V1__DemoReply *b,
                             char *why)
{
    size_t la = agora__v1__demo_reply__get_packed_size(a);
    size_t lb = agora__v1__demo_reply__get_packed_size(b);
    bool same = false;
    uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
    if (pa && pb && la == lb) {
        agora__v1__demo_reply__pack(a, pa);
        agora__v1__demo_reply__pack(b, pb);
        same = !memcmp(pa, pb, la);
    }
    if (!same)
        format_why(why, "two Demo requests with the same game and seed gave different transcripts");
    free(pa);
    free(pb);
    return same;
}

static void name_of(char *out, size_t len, const char *game, const char *check)
{
    snprintf(out, len, "%s.%s", game, check);
}

static void report_tally(checker_t *c, const char *game, const char *check, const tally_t *t)
{
    char name[128], why[WHY];
    name_of(name, sizeof name, game, check);
    if (t->ok + t->bad == 0) {
        skip(c, name, "not exercised");
        return;
    }
    format_why(why, "%d of %d wrong; first: %s", t->bad, t->ok + t->bad, t->why);
    report(c, t->bad == 0, name, why);
}

/* Expects Step and Close on a finished or closed episode to answer UNKNOWN_EPISODE. */
static bool check_gone(checker_t *c, uint64_t ep, const char *action, char *why)
{
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_step(c->cl, ep, 0, action, &r);
    if (!expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, why)) {
        char d[WHY];
        snprintf(d, sizeof d, "Step: %s", why);
        memcpy(why, d, WHY);
        return false;
    }
    rc = ag_env_client_close(c->cl, ep, &r);
    if (!expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, why)) {
        char d[WHY];
        snprintf(d, sizeof d, "Close: %s", why);
        memcpy(why, d, WHY);
        return false;
    }
    return true;
}

static void check_reset_and_close(checker_t *c, const Agora__V1__GameSpec *g, const char *action)
{
    char name[128], why[WHY];
    Agora__V1__EnvReply *a = NULL, *b = NULL, *r = NULL;
    int rc = ag_env_client_reset(c->cl, g->name, c->seed + 1000, NULL, 0, NULL, 0, &a);
    bool ok = expect_kind(rc, a, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why);
    if (ok) {
        rc = ag_env_client_reset(c->cl, g->name, c->seed + 1000, NULL, 0, NULL, 0, &b);
        ok = expect_kind(rc, b, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why);
    }
    if (ok) {
        const Agora__V1__ResetReply *x = a->reset, *y = b->reset;
        if (x->episode_id == y->episode_id) {
            format_why(why, "two Resets returned the same episode id %" PRIu64, x->episode_id);
            ok = false;
        } else if (x->num_players != g->num_players) {
            format_why(why, "Reset says %" PRIu32 " players, Hello %" PRIu32, x->num_players,
                       g->num_players);
            ok = false;
        } else if (x->num_players != y->num_players || x->to_act != y->to_act ||
                   x->terminated != y->terminated) {
            format_why(why, "same seed, different num_players/to_act/terminated");
            ok = false;
        } else if (x->to_act >= x->num_players) {
            format_why(why, "to_act %" PRIu32 " of %" PRIu32 " players", x->to_act, x->num_players);
            ok = false;
        } else {
            ok = text_eq("second Reset's observation", y->observation, x->observation, why);
        }
    }
    name_of(name, sizeof name, g->name, "reset_deterministic");
    report(c, ok, name, why);

    name_of(name, sizeof name, g->name, "close");
    if (a && a->body_case == AGORA__V1__ENV_REPLY__BODY_RESET) {
        uint64_t ep = a->reset->episode_id;
        rc = ag_env_client_close(c->cl, ep, &r);
        ok = expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_CLOSE, "close", why);
        if (r)
            agora__v1__env_reply__free_unpacked(r, NULL);
        report(c, ok, name, why);
        name_of(name, sizeof name, g->name, "closed_episode");
        report(c, check_gone(c, ep, action, why), name, why);
    } else {
        skip(c, name, "no episode to close");
    }
    if (b && b->body_case == AGORA__V1__ENV_REPLY__BODY_RESET) {
        rc = ag_env_client_close(c->cl, b->reset->episode_id, &r);
        if (r)
            agora__v1__env_reply__free_unpacked(r, NULL);
    }
    if (a)
        agora__v1__env_reply__free_unpacked(a, NULL);
    if (b)
        agora__v1__env_reply__free_unpacked(b, NULL);

    /* Ids a server never handed out: far from a counter, with the top bit set. */
    name_of(name, sizeof name, g->name, "unknown_episode");
    report(c, check_gone(c, 0xDEADBEEFCAFEF00DULL, action, why), name, why);

    static const char *const bad_option[][2] = {{"agora-check-no-such-option", "1"}};
    rc = ag_env_client_reset(c->cl, g->name, c->seed, bad_option, 1, NULL, 0, &r);
    name_of(name, sizeof name, g->name, "bad_option");
    report(c, expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION, why), name, why);
}

/* Without known valid actions: out-of-turn must still be refused before the action is read. */
static void check_not_your_turn_blind(checker_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[WHY];
    name_of(name, sizeof name, g->name, "not_your_turn");
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, NULL, 0, &r);
    if (!expect_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why)) {
        report(c, false, name, why);
        if (r)
            agora__v1__env_reply__free_unpacked(r, NULL);
        return;
    }
    uint64_t ep = r->reset->episode_id;
    uint32_t np = r->reset->num_players, to_act = r->reset->to_act;
    agora__v1__env_reply__free_unpacked(r, NULL);
    if (np < 2) {
        skip(c, name, "a one-player game");
    } else {
        rc = ag_env_client_step(c->cl, ep, (to_act + 1) % np, "x", &r);
        report(c, expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, why), name, why);
    }
    rc = ag_env_client_close(c->cl, ep, &r);
    if (r)
        agora__v1__env_reply__free_unpacked(r, NULL);
}

/*
 * Everything about one game. Returns the Demo reply (two transcripts) for the
 * final replay, or NULL when the server has no usable demos.
 */
static Agora__V1__EnvReply *check_game(checker_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[WHY];
    Agora__V1__EnvReply *demo = NULL, *again = NULL;

    name_of(name, sizeof name, g->name, "demo");
    int rc = ag_env_client_demo(c->cl, g->name, c->seed, 2, &demo);
    if (!rc && ag_env_reply_error(demo) == AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED) {
        skip(c, name, "the server does not implement Demo; replay checks skipped");
        agora__v1__env_reply__free_unpacked(demo, NULL);
        check_reset_and_close(c, g, "x");
        check_not_your_turn_blind(c, g);
        return NULL;
    }
    bool ok = expect_kind(rc, demo, AGORA__V1__ENV_REPLY__BODY_DEMO, "demo", why);
    if (ok && demo->demo->n_transcripts != 2) {
        format_why(why, "asked for 2 transcripts, got %zu", demo->demo->n_transcripts);
        ok = false;
    }
    for (size_t i = 0; ok && i < 2; i++)
        ok = transcript_sane(demo->demo->transcripts[i], g->name, c->seed + i, g->num_players, why);
    report(c, ok, name, why);
    if (!ok) {
        if (demo)
            agora__v1__env_reply__free_unpacked(demo, NULL);
        check_reset_and_close(c, g, "x");
        check_not_your_turn_blind(c, g);
        return NULL;
    }

    name_of(name, sizeof name, g->name, "demo_deterministic");
    rc = ag_env_client_demo(c->cl, g->name, c->seed, 2, &again);
    ok = expect_kind(rc, again, AGORA__V1__ENV_REPLY__BODY_DEMO, "demo", why) &&
         same_transcripts(demo->demo, again->demo, why);
    report(c, ok, name, why);
    if (again)
        agora__v1__env_reply__free_unpacked(again, NULL);

    const Agora__V1__Transcript *t = demo->demo->transcripts[0];
    uint64_t ep = 0;
    name_of(name, sizeof name, g->name, "replay");
    ok = replay(c, g->name, t, NULL, &ep, why);
    report(c, ok, name, why);
    name_of(name, sizeof name, g->name, "finished_episode_removed");
    if (ok)
        report(c, check_gone(c, ep, t->turns[0]->action, why), name, why);
    else
        skip(c, name, "the replay did not finish");

    check_reset_and_close(c, g, t->turns[0]->action);

    interference_t itf;
    memset(&itf, 0, sizeof itf);
    name_of(name, sizeof name, g->name, "replay_with_bad_steps");
    ok = replay(c, g->name, t, &itf, &ep, why);
    report(c, ok, name, why);
    report_tally(c, g->name, "not_your_turn", &itf.not_your_turn);
    report_tally(c, g->name, "seat_out_of_range", &itf.bad_seat);
    report_tally(c, g->name, "invalid_action", &itf.invalid_action);
    report_tally(c, g->name, "oversized_action", &itf.long_action);
    return demo;
}

static void check_unknown_game(checker_t *c)
{
    char why[WHY];
    Agora__V1__EnvReply *r = NULL;
    const char *game = "agora-check-no-such-game";
    int rc = ag_env_client_reset(c->cl, game, c->seed, NULL, 0, NULL, 0, &r);
    report(c, expect_one(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME, why), "unknown_game",
           why);
    static const int demo_codes[] = {AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME,
                                     AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED};
    rc = ag_env_client_demo(c->cl, game, c->seed, 1, &r);
    report(c, expect_error(rc, r, demo_codes, 2, why), "unknown_game.demo", why);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: agora-env-check [OPTIONS] ENDPOINT\n"
            "\n"
            "Checks that the environment server at ENDPOINT (e.g. tcp://127.0.0.1:5570)\n"
            "follows the agora env protocol v1: Hello, Demo, Reset/Step replayed against the\n"
            "server's own demo transcripts (to termination, deterministically), acting out of\n"
            "turn, invalid actions, unknown episodes/games/options, Close, version mismatch\n"
            "and malformed requests. Prints PASS/FAIL/SKIP per check and a summary.\n"
            "\n"
            "options:\n"
            "  -g, --game NAME        check only this game (default: every game in Hello)\n"
            "  -s, --seed N           first seed for demos and resets (default 1)\n"
            "  -t, --timeout-ms N     deadline of each request in ms (default 3000)\n"
            "  -h, --help             show this help\n"
            "\n"
            "exit status: 0 all checks passed, 1 a check failed, 2 usage error or no answer\n");
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"game", required_argument, NULL, 'g'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    checker_t c = {.timeout_ms = AG_ENV_DEFAULT_TIMEOUT_MS, .seed = 1};
    const char *only_game = NULL;
    uint64_t v;
    int opt;
    while ((opt = getopt_long(argc, argv, "g:s:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g':
            only_game = optarg;
            break;
        case 's':
            if (!parse_u64(optarg, &c.seed)) {
                fprintf(stderr, "agora-env-check: bad --seed '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (!parse_u64(optarg, &v) || v < 1 || v > 600000) {
                fprintf(stderr, "agora-env-check: --timeout-ms must be 1..600000\n");
                return 2;
            }
            c.timeout_ms = (int)v;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    c.endpoint = argv[optind];
    c.cl = ag_env_client_create(c.endpoint, c.timeout_ms);
    if (!c.cl)
        return 2;

    /* First contact: one try only, so an unreachable server fails within the timeout. */
    char why[WHY];
    Agora__V1__EnvReply *hello = NULL;
    ag_env_client_set_strict(c.cl, true);
    ag_env_client_set_retries(c.cl, 0);
    int rc = ag_env_client_hello(c.cl, "agora-env-check", &hello);
    ag_env_client_set_retries(c.cl, 1);
    if (rc && rc != -EBADMSG) {
        if (rc == -ETIMEDOUT)
            format_why(why, "no reply from %s within %d ms", c.endpoint, c.timeout_ms);
        else
            format_call_error(why, rc);
        printf("FAIL hello: %s\n", why);
        ag_env_client_destroy(&c.cl);
        return 2;
    }
    if (rc) {
        /* It answers, but not in a way any client can match: nothing else is checkable. */
        expect_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
        report(&c, false, "hello", why);
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c.cl);
        printf("agora-env-check: %d passed, %d failed, %d skipped\n", c.passed, c.failed,
               c.skipped);
        return 1;
    }
    bool ok = expect_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why) &&
              spec_sane(hello->hello, why);
    report(&c, ok, "hello", why);

    check_request_id_and_framing(&c);

    const Agora__V1__HelloReply *h =
        hello->body_case == AGORA__V1__ENV_REPLY__BODY_HELLO ? hello->hello : NULL;
    size_t n_games = h ? h->n_games : 0;
    Agora__V1__EnvReply **demos = calloc(n_games + 1, sizeof *demos);
    if (!demos) {
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c.cl);
        return 2;
    }
    bool listed = !only_game;
    for (size_t i = 0; i < n_games; i++) {
        if (only_game && !str_eq(only_game, h->games[i]->name))
            continue;
        listed = true;
        demos[i] = check_game(&c, h->games[i]);
    }
    if (!listed) {
        format_why(why, "the server does not list game '%s' in Hello", only_game);
        report(&c, false, "game_listed", why);
    }
    check_unknown_game(&c);
    check_malformed(&c);

    /* After all the abuse, a fresh replay (the second transcript, seed + 1) must still match. */
    for (size_t i = 0; i < n_games; i++) {
        if (!demos[i])
            continue;
        char name[128];
        uint64_t ep;
        name_of(name, sizeof name, h->games[i]->name, "final_replay");
        report(&c, replay(&c, h->games[i]->name, demos[i]->demo->transcripts[1], NULL, &ep, why),
               name, why);
        agora__v1__env_reply__free_unpacked(demos[i], NULL);
    }
    free(demos);
    agora__v1__env_reply__free_unpacked(hello, NULL);
    ag_env_client_destroy(&c.cl);

    printf("agora-env-check: %d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
    return c.failed ? 1 : 0;
}
