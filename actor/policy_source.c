/*
 * policy_source.c - weights from the learner: control snapshots, PUB
 * updates, league snapshots (see policy_source.h).
 */
#include "policy_source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "control.pb-c.h"
#include "crc32.h"
#include "log.h"
#include "rpc.h"
#include "weights.pb-c.h"
#include "zsock.h"

#define TOPIC "agora.v1.weights"
#define RETRY_MS 1000
#define WAIT_LOG_MS 10000

enum { FROM_CONTROL, FROM_PUB };

typedef struct staged {
    float *params;
    size_t cap; /* floats allocated */
    uint64_t version;
    bool have;  /* holds valid weights */
    bool fresh; /* not taken yet */
} staged_t;

struct ag_policy_source {
    uv_loop_t *loop;
    ag_policy_source_opts_t opts;
    ag_rpc_client_t *control;
    ag_zsock_t *sub;
    uv_timer_t timer;
    bool timer_live;
    ag_model_config_t cfg;
    bool have_cfg;
    staged_t cur, league;
    float *scratch; /* a message being checked */
    size_t scratch_cap;
    uint64_t last_pub; /* last version seen on PUB */
    uint64_t learner_version;
    int lower_polls;   /* consecutive status polls below our version */
    bool fetching;     /* a GetWeights(0) is outstanding */
    bool accept_lower; /* the outstanding fetch may go backwards (restart) */
    bool listing;      /* a League request is outstanding */
    uint64_t *league_versions;
    size_t n_league;
    uint64_t last_wait_log;
    uint64_t started_ms;
    ag_policy_source_stats_t st;
};

static const ProtobufCMessageDescriptor *s_control_desc = &agora__v1__control_reply__descriptor;

/* Validates a header and its raw frame; copies the parameters (host floats) into *params. */
static int s_check_header(const Agora__V1__WeightsHeader *h, const void *raw, size_t raw_len,
                          ag_model_config_t *cfg, float **params, size_t *cap, char *err,
                          size_t errlen)
{
    if (!h->dtype || strcmp(h->dtype, "f32le") != 0) {
        snprintf(err, errlen, "dtype \"%s\" (expected f32le)", h->dtype ? h->dtype : "");
        return -EBADMSG;
    }
    if (!h->config) {
        snprintf(err, errlen, "no model config in the header");
        return -EBADMSG;
    }
    const Agora__V1__ModelConfig *mc = h->config;
    ag_model_config_t c = {
        .vocab = (int)(mc->vocab_size > 65536 ? 0 : mc->vocab_size),
        .d_model = (int)(mc->d_model > 65536 ? 0 : mc->d_model),
        .n_layers = (int)(mc->n_layers > 65536 ? 0 : mc->n_layers),
        .n_heads = (int)(mc->n_heads > 65536 ? 0 : mc->n_heads),
        .ctx = (int)(mc->context > 65536 ? 0 : mc->context),
        .mlp_ratio = (int)(mc->mlp_ratio > 65536 ? 0 : mc->mlp_ratio),
    };
    char why[160];
    if (ag_model_config_check(&c, why, sizeof why) < 0) {
        snprintf(err, errlen, "model config: %s", why);
        return -EBADMSG;
    }
    size_t n = ag_model_config_num_params(&c);
    if (h->num_bytes != (uint64_t)n * 4 || raw_len != (size_t)h->num_bytes) {
        snprintf(err, errlen, "%zu bytes of weights, header says %llu, the config needs %zu",
                 raw_len, (unsigned long long)h->num_bytes, n * 4);
        return -EBADMSG;
    }
    uint32_t crc = ag_crc32(0, raw, raw_len);
    if (crc != h->crc32) {
        snprintf(err, errlen, "CRC-32 %08x, header says %08x", crc, h->crc32);
        return -EBADMSG;
    }
    if (*cap < n) {
        float *p = realloc(*params, n * sizeof(float));
        if (!p) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        *params = p;
        *cap = n;
    }
    const uint8_t *b = raw;
    for (size_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
                     (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
        memcpy(&(*params)[i], &u, sizeof u);
    }
    *cfg = c;
    return 0;
}

int ag_weights_check(const void *header, size_t header_len, const void *raw, size_t raw_len,
                     uint64_t *version, ag_model_config_t *cfg, float **params, size_t *cap,
                     char *err, size_t errlen)
{
    char why[160];
    ProtobufCMessage *m = ag_codec_decode(&agora__v1__weights_header__descriptor, header,
                                          header_len, NULL, why, sizeof why);
    if (!m) {
        snprintf(err, errlen, "undecodable header: %s", why);
        return -EBADMSG;
    }
    const Agora__V1__WeightsHeader *h = (const Agora__V1__WeightsHeader *)m;
    int rc = s_check_header(h, raw, raw_len, cfg, params, cap, err, errlen);
    if (rc == 0 && version)
        *version = h->version;
    ag_codec_free(m);
    return rc;
}

/* Keeps weights the checks passed, if the version rules say so. */
static void s_offer(ag_policy_source_t *ps, staged_t *slot, const Agora__V1__WeightsHeader *h,
                    const void *raw, size_t raw_len, int from, bool accept_lower)
{
    char err[256];
    ag_model_config_t cfg;
    ps->st.received++;
    int rc = s_check_header(h, raw, raw_len, &cfg, &ps->scratch, &ps->scratch_cap, err, sizeof err);
    if (rc == 0 && ps->have_cfg && memcmp(&cfg, &ps->cfg, sizeof cfg) != 0) {
        snprintf(err, sizeof err, "a model of another shape (d_model %d, %d layers, ctx %d)",
                 cfg.d_model, cfg.n_layers, cfg.ctx);
        rc = -EINVAL;
    }
    if (rc < 0) {
        ps->st.refused++;
        ag_warn("actor", "refused weights version %llu from the learner's %s: %s",
                (unsigned long long)h->version, from == FROM_PUB ? "PUB" : "control", err);
        return;
    }
    if (slot == &ps->cur) {
        bool restart = false;
        if (from == FROM_PUB) {
            restart = ps->last_pub && h->version < ps->last_pub;
            ps->last_pub = h->version;
        }
        if (slot->have && h->version <= slot->version && !restart &&
            !(accept_lower && h->version < slot->version))
            return;
        if (slot->have && h->version < slot->version) {
            ps->st.restarts++;
            ag_warn("actor", "learner restarted: weights version %llu after %llu",
                    (unsigned long long)h->version, (unsigned long long)slot->version);
        }
        if (h->version > ps->learner_version || restart || accept_lower)
            ps->learner_version = h->version;
        ps->lower_polls = 0;
    }
    float *tmp = slot->params;
    size_t tcap = slot->cap;
    slot->params = ps->scratch;
    slot->cap = ps->scratch_cap;
    ps->scratch = tmp;
    ps->scratch_cap = tcap;
    slot->version = h->version;
    slot->have = slot->fresh = true;
    if (!ps->have_cfg) {
        ps->cfg = cfg;
        ps->have_cfg = true;
    }
    ps->st.accepted++;
    ag_debug("actor", "weights version %llu staged", (unsigned long long)h->version);
}

/* ---- control requests ---- */

typedef struct call {
    ag_policy_source_t *ps;
    int kind; /* 0 current, 1 league snapshot, 2 status, 3 league list */
    bool accept_lower;
} call_t;

static void s_control_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                           size_t extra_len);

static int s_call(ag_policy_source_t *ps, int kind, uint64_t version, bool accept_lower)
{
    call_t *c = malloc(sizeof *c);
    if (!c)
        return -ENOMEM;
    *c = (call_t){ps, kind, accept_lower};
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__GetWeightsRequest gw = AGORA__V1__GET_WEIGHTS_REQUEST__INIT;
    Agora__V1__StatusRequest sr = AGORA__V1__STATUS_REQUEST__INIT;
    Agora__V1__LeagueRequest lr = AGORA__V1__LEAGUE_REQUEST__INIT;
    if (kind <= 1) {
        gw.version = version;
        req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS;
        req.get_weights = &gw;
    } else if (kind == 2) {
        req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
        req.status = &sr;
    } else {
        req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_LEAGUE;
        req.league = &lr;
    }
    int rc = ag_rpc_call(ps->control, &req.base, s_control_done, c);
    if (rc < 0) {
        free(c);
        return rc;
    }
    if (kind == 0)
        ps->fetching = true;
    if (kind == 3)
        ps->listing = true;
    return 0;
}

static void s_fetch_current(ag_policy_source_t *ps, bool accept_lower)
{
    if (!ps->fetching)
        s_call(ps, 0, 0, accept_lower);
}

static void s_control_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                           size_t extra_len)
{
    call_t c = *(call_t *)arg;
    free(arg);
    if (status == -ECANCELED)
        return;
    ag_policy_source_t *ps = c.ps;
    if (c.kind == 0)
        ps->fetching = false;
    if (c.kind == 3)
        ps->listing = false;
    if (status < 0)
        return; /* the learner may be starting or gone: the timer asks again */
    const Agora__V1__ControlReply *rep = (const Agora__V1__ControlReply *)msg;
    if (rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_ERROR) {
        ag_debug("actor", "learner control: %s %s",
                 ag_error_name(rep->error ? rep->error->code : 0),
                 rep->error && rep->error->message ? rep->error->message : "");
        return;
    }
    switch (c.kind) {
    case 0:
    case 1:
        if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_WEIGHTS || !rep->weights)
            return;
        if (!extra) {
            ag_warn("actor", "learner sent a weights header without the raw frame");
            return;
        }
        s_offer(ps, c.kind == 0 ? &ps->cur : &ps->league, rep->weights, extra, extra_len,
                FROM_CONTROL, c.accept_lower);
        break;
    case 2:
        if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_STATUS || !rep->status)
            return;
        if (!ps->cur.have)
            return;
        ps->learner_version = rep->status->version;
        if (rep->status->version > ps->cur.version) {
            s_fetch_current(ps, false); /* a PUB message was missed */
            ps->lower_polls = 0;
        } else if (rep->status->version < ps->cur.version) {
            if (++ps->lower_polls >= 2)
                s_fetch_current(ps, true);
        } else {
            ps->lower_polls = 0;
        }
        break;
    case 3:
        if (rep->body_case != AGORA__V1__CONTROL_REPLY__BODY_LEAGUE || !rep->league)
            return;
        uint64_t *v = NULL;
        if (rep->league->n_versions) {
            v = malloc(rep->league->n_versions * sizeof *v);
            if (!v)
                return;
            memcpy(v, rep->league->versions, rep->league->n_versions * sizeof *v);
        }
        free(ps->league_versions);
        ps->league_versions = v;
        ps->n_league = rep->league->n_versions;
        break;
    }
}

static void s_on_timer(uv_timer_t *t)
{
    ag_policy_source_t *ps = t->data;
    uint64_t now = uv_now(ps->loop);
    if (!ps->cur.have) {
        s_fetch_current(ps, false);
        if (now - ps->last_wait_log >= WAIT_LOG_MS && now - ps->started_ms >= WAIT_LOG_MS) {
            ag_info("actor", "waiting for weights from the learner at %s", ps->opts.control);
            ps->last_wait_log = now;
        }
        uv_timer_start(t, s_on_timer, RETRY_MS, 0);
        return;
    }
    s_call(ps, 2, 0, false);
    if (ps->opts.league && !ps->listing)
        s_call(ps, 3, 0, false);
    uv_timer_start(t, s_on_timer, (uint64_t)ps->opts.poll_ms, 0);
}

static void s_on_pub(ag_zsock_t *sock, ag_zmsg_t *m, void *arg)
{
    ag_policy_source_t *ps = arg;
    if (m->n != 3 || ag_zmsg_size(m, 0) != strlen(TOPIC) ||
        memcmp(ag_zmsg_data(m, 0), TOPIC, strlen(TOPIC)) != 0) {
        ag_warn("actor", "ignored a weights message of %zu frames", m->n);
        return;
    }
    char why[160];
    ProtobufCMessage *hm =
        ag_codec_decode(&agora__v1__weights_header__descriptor, ag_zmsg_data(m, 1),
                        ag_zmsg_size(m, 1), NULL, why, sizeof why);
    if (!hm) {
        ps->st.refused++;
        ag_warn("actor", "ignored a weights message: %s", why);
        return;
    }
    s_offer(ps, &ps->cur, (const Agora__V1__WeightsHeader *)hm, ag_zmsg_data(m, 2),
            ag_zmsg_size(m, 2), FROM_PUB, false);
    ag_codec_free(hm);
}

ag_policy_source_t *ag_policy_source_create(uv_loop_t *loop, void *zctx,
                                            const ag_policy_source_opts_t *opts)
{
    ag_policy_source_t *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->loop = loop;
    ps->opts = *opts;
    if (ps->opts.poll_ms <= 0)
        ps->opts.poll_ms = 5000;
    if (ps->opts.timeout_ms <= 0)
        ps->opts.timeout_ms = 2000;
    ag_rpc_client_opts_t ro = {
        .timeout_ms = ps->opts.timeout_ms,
        .attempts = 1,
        .max_reply = (int64_t)1 << 30,
    };
    ps->control = ag_rpc_client_create(loop, zctx, opts->control, s_control_desc, &ro);
    if (!ps->control) {
        ag_error("actor", "cannot connect to the learner's control socket %s", opts->control);
        goto fail;
    }
    if (opts->weights && opts->weights[0]) {
        ag_zsock_opts_t zo = {.maxmsgsize = (int64_t)1 << 30, .subscribe = TOPIC, .rcvhwm = 4};
        ps->sub = ag_zsock_create(loop, zctx, ZMQ_SUB, &zo, s_on_pub, ps);
        if (!ps->sub || ag_zsock_connect(ps->sub, opts->weights) < 0) {
            ag_error("actor", "cannot subscribe to the learner's weights at %s", opts->weights);
            goto fail;
        }
    }
    uv_timer_init(loop, &ps->timer);
    ps->timer.data = ps;
    ps->timer_live = true;
    ps->started_ms = uv_now(loop);
    s_fetch_current(ps, false);
    uv_timer_start(&ps->timer, s_on_timer, RETRY_MS, 0);
    return ps;
fail:
    ag_policy_source_destroy(&ps);
    return NULL;
}

static void s_timer_closed(uv_handle_t *h)
{
    ag_policy_source_t *ps = h->data;
    free(ps);
}

void ag_policy_source_destroy(ag_policy_source_t **self)
{
    if (!self || !*self)
        return;
    ag_policy_source_t *ps = *self;
    *self = NULL;
    ag_rpc_client_destroy(&ps->control);
    ag_zsock_destroy(&ps->sub);
    free(ps->cur.params);
    free(ps->league.params);
    free(ps->scratch);
    free(ps->league_versions);
    if (ps->timer_live) {
        uv_timer_stop(&ps->timer);
        uv_close((uv_handle_t *)&ps->timer, s_timer_closed);
    } else {
        free(ps);
    }
}

const ag_model_config_t *ag_policy_source_config(const ag_policy_source_t *ps)
{
    return ps->have_cfg ? &ps->cfg : NULL;
}

static int s_take(ag_policy_source_t *ps, staged_t *slot, ag_model_t *m, uint64_t *version)
{
    if (!slot->fresh)
        return -EAGAIN;
    if (memcmp(ag_model_config(m), &ps->cfg, sizeof ps->cfg) != 0)
        return -EINVAL;
    int rc = ag_model_load_params(m, slot->params, ag_model_num_params(m));
    if (rc < 0)
        return rc;
    slot->fresh = false;
    if (version)
        *version = slot->version;
    return 0;
}

bool ag_policy_source_fresh(const ag_policy_source_t *ps, uint64_t *version)
{
    if (ps->cur.fresh && version)
        *version = ps->cur.version;
    return ps->cur.fresh;
}

int ag_policy_source_take(ag_policy_source_t *ps, ag_model_t *m, uint64_t *version)
{
    return s_take(ps, &ps->cur, m, version);
}

const uint64_t *ag_policy_source_league(const ag_policy_source_t *ps, size_t *n)
{
    *n = ps->n_league;
    return ps->league_versions;
}

int ag_policy_source_fetch_league(ag_policy_source_t *ps, uint64_t version)
{
    return s_call(ps, 1, version, false);
}

bool ag_policy_source_league_fresh(const ag_policy_source_t *ps, uint64_t *version)
{
    if (ps->league.fresh && version)
        *version = ps->league.version;
    return ps->league.fresh;
}

int ag_policy_source_take_league(ag_policy_source_t *ps, ag_model_t *m, uint64_t *version)
{
    return s_take(ps, &ps->league, m, version);
}

uint64_t ag_policy_source_learner_version(const ag_policy_source_t *ps)
{
    return ps->learner_version;
}

void ag_policy_source_get_stats(const ag_policy_source_t *ps, ag_policy_source_stats_t *out)
{
    *out = ps->st;
}
