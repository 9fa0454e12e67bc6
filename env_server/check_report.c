/*
 * check_report.c - the verdict lines of agora-env-check and the expectations
 * and comparisons its checks are written with: "this call answered error X",
 * "this reply is a step", "these texts, rewards, info and metrics are the
 * transcript's", plus raw calls for requests the client library would not
 * send. Failure texts say what was expected and what came, quoting a few
 * bytes around the first difference, so a server's author can act on them.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

void ag_check_report(ag_check_t *c, bool ok, const char *name, const char *section, const char *why)
{
    if (ok) {
        c->passed++;
        printf("PASS %s\n", name);
    } else {
        c->failed++;
        printf("FAIL %s: %s (protocol.md %s)\n", name, why, section);
    }
    fflush(stdout);
}

void ag_check_skip(ag_check_t *c, const char *name, const char *why)
{
    c->skipped++;
    printf("SKIP %s: %s\n", name, why);
    fflush(stdout);
}

void ag_check_why(char *why, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, AG_CHECK_WHY, fmt, ap);
    va_end(ap);
}

void ag_check_why_prefix(char *why, const char *prefix)
{
    char d[AG_CHECK_WHY];
    snprintf(d, sizeof d, "%s%s", prefix, why);
    memcpy(why, d, AG_CHECK_WHY);
}

void ag_check_name(char *out, size_t len, const char *game, const char *check)
{
    snprintf(out, len, "%s.%s", game, check);
}

const char *ag_check_describe(const Agora__V1__EnvReply *r, char *buf, size_t len)
{
    if (!r) {
        snprintf(buf, len, "no reply");
    } else if (r->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR && r->error) {
        snprintf(buf, len, "error %s (%.200s)", ag_error_name(r->error->code),
                 r->error->message ? r->error->message : "");
    } else {
        snprintf(buf, len, "a %s reply", ag_env_reply_kind(r));
    }
    return buf;
}

void ag_check_call_error(char *why, int rc)
{
    if (rc == -EBADMSG)
        ag_check_why(why, "the reply does not echo the request's id (it carries request_id 0)");
    else if (rc == -ETIMEDOUT)
        ag_check_why(why, "no reply within the deadline");
    else if (rc == -EPROTO)
        ag_check_why(why, "the reply is not a decodable EnvReply in one or two frames");
    else
        ag_check_why(why, "request failed: %s", strerror(-rc));
}

static bool s_id_zero(int rc, const Agora__V1__EnvReply *r, char *why)
{
    if (rc != -EBADMSG || !r)
        return false;
    char d[300];
    ag_check_why(why, "answered %s with request_id 0 instead of echoing the request's id",
                 ag_check_describe(r, d, sizeof d));
    return true;
}

bool ag_check_error(int rc, Agora__V1__EnvReply *r, const int *codes, size_t n, char *why)
{
    bool ok = false;
    if (s_id_zero(rc, r, why)) {
        /* why says it */
    } else if (rc) {
        ag_check_call_error(why, rc);
    } else {
        int code = ag_env_reply_error(r);
        for (size_t i = 0; i < n; i++)
            ok = ok || code == codes[i];
        if (!ok) {
            char d[300];
            ag_check_why(why, "expected %s%s, got %s", ag_error_name(codes[0]),
                         n > 1 ? " (or an equivalent)" : "", ag_check_describe(r, d, sizeof d));
        }
    }
    ag_check_free(&r);
    return ok;
}

bool ag_check_error1(int rc, Agora__V1__EnvReply *r, int code, char *why)
{
    return ag_check_error(rc, r, &code, 1, why);
}

bool ag_check_kind(int rc, const Agora__V1__EnvReply *r, int body_case, const char *kind, char *why)
{
    if (s_id_zero(rc, r, why))
        return false;
    if (rc) {
        ag_check_call_error(why, rc);
        return false;
    }
    if (r->protocol_version != AG_ENV_PROTOCOL_VERSION) {
        ag_check_why(why, "reply protocol_version %" PRIu32 ", expected 1", r->protocol_version);
        return false;
    }
    if ((int)r->body_case != body_case) {
        char d[300];
        ag_check_why(why, "expected a %s reply, got %s", kind, ag_check_describe(r, d, sizeof d));
        return false;
    }
    return true;
}

void ag_check_free(Agora__V1__EnvReply **r)
{
    if (*r)
        agora__v1__env_reply__free_unpacked(*r, NULL);
    *r = NULL;
}

bool ag_check_str_eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* Quotes at most 60 bytes of s around offset `at`, escaping what is not printable. */
static const char *s_quote(const char *s, size_t at, char *buf, size_t len)
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

bool ag_check_text_eq(const char *what, const char *got, const char *want, char *why)
{
    if (ag_check_str_eq(got, want))
        return true;
    got = got ? got : "";
    want = want ? want : "";
    size_t i = 0;
    while (got[i] && got[i] == want[i])
        i++;
    char g[128], w[128];
    ag_check_why(why, "%s differs at byte %zu: got %s, expected %s", what, i,
                 s_quote(got, i, g, sizeof g), s_quote(want, i, w, sizeof w));
    return false;
}

float ag_check_at(const float *v, size_t n, size_t i)
{
    return i < n ? v[i] : 0.0f;
}

bool ag_check_rewards_eq(const char *what, const float *got, size_t n_got, const float *want,
                         size_t n_want, float tolerance, char *why)
{
    size_t n = n_got > n_want ? n_got : n_want;
    for (size_t i = 0; i < n; i++) {
        float g = ag_check_at(got, n_got, i), w = ag_check_at(want, n_want, i);
        if (fabsf(g - w) > tolerance * (1.0f + fabsf(w))) {
            ag_check_why(why, "%s: seat %zu got %g, expected %g", what, i, (double)g, (double)w);
            return false;
        }
    }
    return true;
}

bool ag_check_info_eq(Agora__V1__KeyValue **got, size_t n_got, Agora__V1__KeyValue **want,
                      size_t n_want, char *why)
{
    if (n_got != n_want) {
        ag_check_why(why, "final info has %zu entries, the transcript %zu", n_got, n_want);
        return false;
    }
    for (size_t i = 0; i < n_got; i++) {
        if (!ag_check_str_eq(got[i]->key, want[i]->key) ||
            !ag_check_str_eq(got[i]->value, want[i]->value)) {
            ag_check_why(why,
                         "final info entry %zu is %.64s=%.128s, the transcript has %.64s=%.128s", i,
                         got[i]->key, got[i]->value, want[i]->key, want[i]->value);
            return false;
        }
    }
    return true;
}

bool ag_check_metrics_eq(Agora__V1__Metric **got, size_t n_got, Agora__V1__Metric **want,
                         size_t n_want, char *why)
{
    if (n_got != n_want) {
        ag_check_why(why, "final metrics have %zu entries, the transcript %zu", n_got, n_want);
        return false;
    }
    for (size_t i = 0; i < n_got; i++) {
        if (!ag_check_str_eq(got[i]->name, want[i]->name) || got[i]->value != want[i]->value) {
            ag_check_why(why, "final metric %zu is %.64s=%g, the transcript has %.64s=%g", i,
                         got[i]->name, got[i]->value, want[i]->name, want[i]->value);
            return false;
        }
    }
    return true;
}

char *ag_check_filled(size_t len, char ch)
{
    char *s = malloc(len + 1);
    if (s) {
        memset(s, ch, len);
        s[len] = 0;
    }
    return s;
}

int ag_check_raw_call(ag_check_t *c, const ag_env_frame_t *frames, size_t n, uint64_t want_id,
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
        ag_check_free(reply);
    }
}

uint8_t *ag_check_pack(const Agora__V1__EnvRequest *req, size_t *len)
{
    *len = agora__v1__env_request__get_packed_size(req);
    uint8_t *buf = malloc(*len ? *len : 1);
    if (buf)
        agora__v1__env_request__pack(req, buf);
    return buf;
}

int ag_check_demo(ag_check_t *c, const char *game, uint64_t seed, uint32_t count,
                  const char *const *bots, size_t n_bots, const char *const (*options)[2],
                  size_t n_options, Agora__V1__EnvReply **reply)
{
    Agora__V1__KeyValue kv[64];
    Agora__V1__KeyValue *kvp[64];
    if (n_options > 64 || n_bots > 64)
        return -EINVAL;
    for (size_t i = 0; i < n_options; i++) {
        agora__v1__key_value__init(&kv[i]);
        kv[i].key = (char *)options[i][0];
        kv[i].value = (char *)options[i][1];
        kvp[i] = &kv[i];
    }
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    demo.game = (char *)game;
    demo.seed = seed;
    demo.count = count;
    demo.n_bots = n_bots;
    demo.bots = (char **)bots;
    demo.n_options = n_options;
    demo.options = kvp;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
    req.demo = &demo;
    return ag_env_client_call(c->cl, &req, reply);
}
