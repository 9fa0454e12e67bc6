/*
 * reward_hostile - agora-reward under bad input, over the real protocol.
 *
 * Starts agora-reward (its path is argv[1]) with a tiny model on a free
 * loopback port. While a well-behaved client scores now and then, a hostile
 * client sends 10,000 messages of every bad kind a peer can produce: random
 * bytes, truncated envelopes, other services' envelopes, wrong protocol
 * versions, body-less envelopes, bad frame layouts, strings and repeated
 * fields over their limits, empty and unknown model names, empty Score
 * batches, batch ids over 128 bytes or outside printable ASCII, and labels
 * that are individually invalid (NaN, infinite or negative weights, outcome
 * labels outside [0, 1], preferred = 7, missing transcripts) mixed with
 * valid ones, most of them under a batch id, some resending an earlier
 * batch's id. Every one must be answered: with the right Error code under
 * the request's id (id 0 where the bytes cannot be decoded), or, for the
 * invalid labels, with a LabelReply that counts each exactly (a resent batch
 * id: the counts of its first reply, flagged duplicate). Every 1000th
 * message is a huge but valid request (256 items of about 60 KB, just under
 * the 16 MiB message limit) that must be served.
 * A preference between two empty transcripts is accepted like any other.
 * Messages over the size limit go on their own socket: ZeroMQ drops that
 * connection without a reply and the server keeps serving. Finally a valid
 * Score is answered, Stats counts every rejected label, and SIGTERM exits 0.
 *
 * Every random choice comes from one seeded rng, so a failure reproduces.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fuzz.h"
#include "harness.h"
#include "reward_peer.h"
#include "rng.h"

#define HOSTILE_MESSAGES 10000
#define SCRATCH_BYTES (40u << 20)
#define MAX_FRAMES 6
#define MAX_ENTRIES 600
#define HUGE_ITEMS 256
#define HUGE_TRANSCRIPT 60000
#define LIMIT (16u << 20)
#define TIMEOUT_MS 20000

#define E(name) AGORA__V1__ERROR_CODE__ERROR_##name

enum kind {
    K_GARBAGE,
    K_TRUNCATED,
    K_WRONG_ENVELOPE,
    K_VERSION,
    K_NO_BODY,
    K_FRAMES,
    K_LONG_STRING,
    K_TOO_MANY,
    K_EMPTY_MODEL,
    K_UNKNOWN_MODEL,
    K_EMPTY_SCORE,
    K_BAD_LABELS,
    K_BAD_BATCH_ID,
    K_HUGE, /* sent only every 1000th message */
    N_KINDS
};

static const char *const kind_names[N_KINDS] = {
    "garbage bytes",    "truncated envelope", "wrong envelope",    "version mismatch",
    "missing body",     "bad frame layout",   "over-long string",  "too many entries",
    "empty model name", "unknown model",      "empty score batch", "invalid labels",
    "bad batch id",     "huge valid request",
};

/* One hostile message and what must come back. */
typedef struct {
    ag_env_frame_t frames[MAX_FRAMES];
    size_t n_frames;
    int codes[2];                /* acceptable error codes; 0 = a LabelReply or ScoreReply */
    uint64_t want_id;            /* 0 for requests that cannot be decoded */
    bool id_zero_ok;             /* a bounded decoder may give up before reading the id */
    uint32_t accepted, rejected; /* expected LabelReply counts */
    bool duplicate;              /* and duplicate flag */
    size_t scores;               /* expected ScoreReply length */
} hostile_msg_t;

typedef struct {
    ag_server_proc_t srv;
    reward_peer_t hostile, good;
    fuzz_t fz; /* rng and scratch */
    Agora__V1__ScoreItem *items;
    Agora__V1__ScoreItem **itemp;
    Agora__V1__Preference *prefs;
    Agora__V1__Preference **prefp;
    Agora__V1__Outcome *outs;
    Agora__V1__Outcome **outp;
    char dir[256];
    int sent[N_KINDS];
    uint64_t rejected_total;
    /* batch ids of the invalid-labels messages: the next one's number, the
     * last one sent and the counts its reply must have */
    unsigned next_batch;
    char last_batch[32];
    uint32_t last_accepted, last_rejected;
} fixture_t;

static const char *server_exe;

/* ---- building blocks ------------------------------------------------------------------ */

/* A long transcript: a constant body and a random end (what the model reads). */
static char *long_text(fixture_t *fx, size_t len)
{
    char *s = (char *)fuzz_take(&fx->fz, len + 1);
    memset(s, 'x', len);
    for (size_t i = len > 200 ? len - 200 : 0; i < len; i++)
        s[i] = (char)('a' + ag_rng_below(&fx->fz.rng, 26));
    s[len] = '\0';
    return s;
}

static void expect(hostile_msg_t *m, int a, int b)
{
    m->codes[0] = a;
    m->codes[1] = b ? b : a;
}

/* A request under construction: its bodies point into the fixture's arrays. */
typedef struct {
    Agora__V1__RewardRequest req;
    Agora__V1__ScoreRequest score;
    Agora__V1__LabelRequest label;
    Agora__V1__RewardStatsRequest stats;
} draft_t;

static Agora__V1__ScoreItem *item(fixture_t *fx, size_t i, char *transcript)
{
    Agora__V1__ScoreItem *it = &fx->items[i];
    agora__v1__score_item__init(it);
    it->transcript = transcript;
    it->seat = ag_rng_below(&fx->fz.rng, 2);
    it->game = "debate";
    fx->itemp[i] = it;
    return it;
}

static char *transcript(fixture_t *fx)
{
    return fuzz_text(&fx->fz, fuzz_between(&fx->fz, 0, 120),
                     "abcdefghij klmnop 0123456789+-*=:|\n");
}

static void draft_init(draft_t *d)
{
    agora__v1__reward_request__init(&d->req);
    agora__v1__score_request__init(&d->score);
    agora__v1__label_request__init(&d->label);
    agora__v1__reward_stats_request__init(&d->stats);
}

static void draft_score(fixture_t *fx, draft_t *d, const char *model, size_t n)
{
    draft_init(d);
    for (size_t i = 0; i < n; i++)
        item(fx, i, transcript(fx));
    d->score.model = (char *)model;
    d->score.n_items = n;
    d->score.items = fx->itemp;
    d->req.body_case = AGORA__V1__REWARD_REQUEST__BODY_SCORE;
    d->req.score = &d->score;
}

/* n_p preferences then n_o outcomes, all valid (items 0..2 n_p + n_o). */
static void draft_label(fixture_t *fx, draft_t *d, const char *model, size_t n_p, size_t n_o)
{
    draft_init(d);
    for (size_t i = 0; i < n_p; i++) {
        Agora__V1__Preference *p = &fx->prefs[i];
        agora__v1__preference__init(p);
        p->a = item(fx, 2 * i, transcript(fx));
        p->b = item(fx, 2 * i + 1, transcript(fx));
        p->preferred = ag_rng_below(&fx->fz.rng, 2);
        p->weight = ag_rng_below(&fx->fz.rng, 2) ? 0.0f : 0.5f;
        fx->prefp[i] = p;
    }
    for (size_t i = 0; i < n_o; i++) {
        Agora__V1__Outcome *o = &fx->outs[i];
        agora__v1__outcome__init(o);
        o->item = item(fx, 2 * n_p + i, transcript(fx));
        o->label = (float)ag_rng_below(&fx->fz.rng, 5) / 4.0f;
        o->weight = (float)ag_rng_below(&fx->fz.rng, 3);
        fx->outp[i] = o;
    }
    d->label.model = (char *)model;
    d->label.n_preferences = n_p;
    d->label.preferences = fx->prefp;
    d->label.n_outcomes = n_o;
    d->label.outcomes = fx->outp;
    d->req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    d->req.label = &d->label;
}

static void draft_stats(draft_t *d, const char *model)
{
    draft_init(d);
    d->stats.model = (char *)model;
    d->req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    d->req.stats = &d->stats;
}

/* One of the three requests, valid, for model. */
static void draft_any(fixture_t *fx, draft_t *d, const char *model)
{
    switch (ag_rng_below(&fx->fz.rng, 3)) {
    case 0:
        draft_stats(d, model);
        break;
    case 1:
        draft_score(fx, d, model, fuzz_between(&fx->fz, 1, 4));
        break;
    default:
        draft_label(fx, d, model, fuzz_between(&fx->fz, 1, 3), fuzz_between(&fx->fz, 0, 3));
        break;
    }
}

/* Packs the draft (version 1 unless set, a fresh id) as the message's one frame. */
static void finish(fixture_t *fx, hostile_msg_t *m, draft_t *d)
{
    if (!d->req.protocol_version)
        d->req.protocol_version = 1;
    d->req.request_id = reward_peer_id(&fx->hostile);
    m->want_id = d->req.request_id;
    size_t n = agora__v1__reward_request__get_packed_size(&d->req);
    uint8_t *p = fuzz_take(&fx->fz, n);
    agora__v1__reward_request__pack(&d->req, p);
    m->frames[0] = (ag_env_frame_t){p, n};
    m->n_frames = 1;
}

/* ---- the hostile messages ------------------------------------------------------------- */

static void make_garbage(fixture_t *fx, hostile_msg_t *m)
{
    /* half the time REQ-style: the error must come back the same way */
    m->n_frames = fuzz_garbage(&fx->fz, &agora__v1__reward_request__descriptor, 300, m->frames);
    expect(m, E(BAD_REQUEST), 0);
}

static void make_truncated(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_label(fx, &d, "default", fuzz_between(&fx->fz, 1, 4), fuzz_between(&fx->fz, 1, 4));
    finish(fx, m, &d);
    m->frames[0] = fuzz_truncate(&fx->fz, m->frames[0], &agora__v1__reward_request__descriptor);
    expect(m, E(BAD_REQUEST), 0);
    m->want_id = 0;
}

/* Other services' envelopes share fields 1 and 2 but not their bodies: they
 * read as a RewardRequest without a body. */
static void make_wrong_envelope(fixture_t *fx, hostile_msg_t *m)
{
    const uint64_t id = reward_peer_id(&fx->hostile);
    m->frames[0] = fuzz_foreign_envelope(&fx->fz, &agora__v1__reward_request__descriptor, id);
    m->n_frames = 1;
    m->want_id = id;
    expect(m, E(BAD_REQUEST), 0);
}

static void make_version(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_any(fx, &d, "default");
    d.req.protocol_version =
        ag_rng_below(&fx->fz.rng, 2) ? 2 : fuzz_between(&fx->fz, 3, UINT32_MAX);
    finish(fx, m, &d);
    expect(m, E(VERSION_MISMATCH), 0);
}

static void make_no_body(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_init(&d);
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
}

static void make_frames(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_any(fx, &d, "default");
    finish(fx, m, &d);
    bool empty_payload;
    m->n_frames = fuzz_frames(&fx->fz, m->frames[0], m->frames, MAX_FRAMES, &empty_payload);
    /* [empty][empty] is REQ framing around an empty payload, an envelope of defaults */
    expect(m, E(BAD_REQUEST), empty_payload ? E(VERSION_MISMATCH) : 0);
    m->want_id = 0;
}

static void make_long_string(fixture_t *fx, hostile_msg_t *m)
{
    const char *az = "abcdefghijklmnopqrstuvwxyz";
    draft_t d;
    switch (ag_rng_below(&fx->fz.rng, 4)) {
    case 0: /* a transcript over 65536 bytes */
        draft_score(fx, &d, "default", fuzz_between(&fx->fz, 1, 3));
        fx->items[0].transcript = long_text(fx, fuzz_between(&fx->fz, 65537, 90000));
        break;
    case 1: /* a model name over 64 bytes */
        draft_score(fx, &d, fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 300), az), 1);
        break;
    case 2: /* a game name over 64 bytes, inside a label */
        draft_label(fx, &d, "default", 1, 1);
        fx->items[ag_rng_below(&fx->fz.rng, 3)].game =
            fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 300), az);
        break;
    default:
        draft_stats(&d, fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 300), az));
        break;
    }
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
}

static void make_too_many(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    const size_t n = fuzz_between(&fx->fz, 257, MAX_ENTRIES);
    switch (ag_rng_below(&fx->fz.rng, 3)) {
    case 0:
        draft_score(fx, &d, "default", n);
        break;
    case 1:
        draft_label(fx, &d, "default", n, 0);
        break;
    default:
        draft_label(fx, &d, "default", 1, n);
        break;
    }
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
    /* many small entries make a decoder allocate many times the input: a
     * bounded decoder may refuse before it reads the id */
    m->id_zero_ok = true;
}

static void make_empty_model(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    if (ag_rng_below(&fx->fz.rng, 2))
        draft_score(fx, &d, "", fuzz_between(&fx->fz, 1, 4));
    else
        draft_label(fx, &d, "", fuzz_between(&fx->fz, 0, 4), fuzz_between(&fx->fz, 0, 4));
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
}

static void make_unknown_model(fixture_t *fx, hostile_msg_t *m)
{
    /* "zz-" keeps it clear of the hosted names */
    char *name =
        fuzz_text(&fx->fz, fuzz_between(&fx->fz, 3, 64), "abcdefghijklmnopqrstuvwxyz-_.0123456789");
    memcpy(name, "zz-", 3);
    draft_t d;
    draft_any(fx, &d, name);
    finish(fx, m, &d);
    expect(m, E(UNKNOWN_MODEL), 0);
}

static void make_empty_score(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_score(fx, &d, ag_rng_below(&fx->fz.rng, 2) ? "default" : "other", 0);
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
}

/* Valid labels with invalid ones among them: each invalid one is counted. */
static void make_bad_labels(fixture_t *fx, hostile_msg_t *m)
{
    const size_t n_p = fuzz_between(&fx->fz, 0, 12), n_o = fuzz_between(&fx->fz, n_p ? 0 : 1, 12);
    draft_t d;
    draft_label(fx, &d, "default", n_p, n_o);
    uint32_t bad = 0;
    static const float weights[] = {NAN, INFINITY, -INFINITY, -1.0f, -1e-6f};
    static const float labels[] = {NAN, INFINITY, -0.01f, 1.01f, 7.0f, -1e9f};
    for (size_t i = 0; i < n_p; i++) {
        if (ag_rng_below(&fx->fz.rng, 2))
            continue;
        Agora__V1__Preference *p = &fx->prefs[i];
        switch (ag_rng_below(&fx->fz.rng, 4)) {
        case 0:
            p->preferred = ag_rng_below(&fx->fz.rng, 2) ? 7 : fuzz_between(&fx->fz, 2, UINT32_MAX);
            break;
        case 1:
            p->weight = weights[ag_rng_below(&fx->fz.rng, 5)];
            break;
        case 2:
            p->a = NULL;
            break;
        default:
            p->b = NULL;
            break;
        }
        bad++;
    }
    for (size_t i = 0; i < n_o; i++) {
        if (ag_rng_below(&fx->fz.rng, 2))
            continue;
        Agora__V1__Outcome *o = &fx->outs[i];
        switch (ag_rng_below(&fx->fz.rng, 3)) {
        case 0:
            o->label = labels[ag_rng_below(&fx->fz.rng, 6)];
            break;
        case 1:
            o->weight = weights[ag_rng_below(&fx->fz.rng, 5)];
            break;
        default:
            o->item = NULL;
            break;
        }
        bad++;
    }
    m->accepted = (uint32_t)(n_p + n_o) - bad;
    m->rejected = bad;
    switch (ag_rng_below(&fx->fz.rng, 4)) {
    case 0: /* no batch id */
        break;
    case 1: /* a resend of the last batch (its counts, whatever this body holds) */
        if (fx->last_batch[0]) {
            d.label.batch_id = fx->last_batch;
            m->accepted = fx->last_accepted;
            m->rejected = fx->last_rejected;
            m->duplicate = true;
            break;
        }
        /* fall through */
    default:
        snprintf(fx->last_batch, sizeof fx->last_batch, "hostile/%u", fx->next_batch++);
        fx->last_accepted = m->accepted;
        fx->last_rejected = m->rejected;
        d.label.batch_id = fx->last_batch;
        break;
    }
    finish(fx, m, &d);
    expect(m, 0, 0);
}

/* A batch id over 128 bytes or with a byte outside printable ASCII: the
 * whole request is refused, nothing counted. */
static void make_bad_batch_id(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    draft_label(fx, &d, "default", fuzz_between(&fx->fz, 0, 3), fuzz_between(&fx->fz, 0, 3));
    const char *printable = "abcdefghijklmnopqrstuvwxyz0123456789/-_ ~!";
    if (ag_rng_below(&fx->fz.rng, 2)) {
        d.label.batch_id = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 129, 400), printable);
    } else {
        const size_t n = fuzz_between(&fx->fz, 1, 128);
        char *id = fuzz_text(&fx->fz, n, printable);
        static const unsigned char bad[] = {0x01, 0x09, 0x0a, 0x1f, 0x7f, 0x80, 0xc3, 0xff};
        id[ag_rng_below(&fx->fz.rng, (uint32_t)n)] = (char)bad[ag_rng_below(&fx->fz.rng, 8)];
        d.label.batch_id = id;
    }
    finish(fx, m, &d);
    expect(m, E(BAD_REQUEST), 0);
}

/* Just under the 16 MiB message limit, and valid: must be served. */
static void make_huge(fixture_t *fx, hostile_msg_t *m)
{
    draft_t d;
    if (ag_rng_below(&fx->fz.rng, 2)) {
        draft_score(fx, &d, "default", HUGE_ITEMS);
        for (size_t i = 0; i < HUGE_ITEMS; i++)
            fx->items[i].transcript = long_text(fx, HUGE_TRANSCRIPT);
        m->scores = HUGE_ITEMS;
    } else {
        draft_label(fx, &d, "default", HUGE_ITEMS, 0);
        for (size_t i = 0; i < 2 * HUGE_ITEMS; i++)
            fx->items[i].transcript = long_text(fx, HUGE_TRANSCRIPT / 2);
        m->accepted = HUGE_ITEMS;
    }
    finish(fx, m, &d);
    assert_true(m->frames[0].size < LIMIT);
    expect(m, 0, 0);
}

static void make_hostile(fixture_t *fx, enum kind k, hostile_msg_t *m)
{
    static void (*const makers[N_KINDS])(fixture_t *, hostile_msg_t *) = {
        make_garbage,      make_truncated,     make_wrong_envelope, make_version,
        make_no_body,      make_frames,        make_long_string,    make_too_many,
        make_empty_model,  make_unknown_model, make_empty_score,    make_bad_labels,
        make_bad_batch_id, make_huge,
    };
    memset(m, 0, sizeof *m);
    fuzz_reset(&fx->fz);
    makers[k](fx, m);
}

/* ---- fixture -------------------------------------------------------------------------- */

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    reward_peer_close(&fx->hostile);
    reward_peer_close(&fx->good);
    if (fx->srv.pid)
        ag_server_proc_stop(&fx->srv, 10000);
    if (fx->dir[0])
        harness_rmtree(fx->dir);
    fuzz_finish(&fx->fz);
    free(fx->items);
    free(fx->itemp);
    free(fx->prefs);
    free(fx->prefp);
    free(fx->outs);
    free(fx->outp);
    free(fx);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    if (!fx)
        return -1;
    const size_t n_items = 2 * MAX_ENTRIES + 1;
    fx->items = calloc(n_items, sizeof *fx->items);
    fx->itemp = calloc(n_items, sizeof *fx->itemp);
    fx->prefs = calloc(MAX_ENTRIES, sizeof *fx->prefs);
    fx->prefp = calloc(MAX_ENTRIES, sizeof *fx->prefp);
    fx->outs = calloc(MAX_ENTRIES, sizeof *fx->outs);
    fx->outp = calloc(MAX_ENTRIES, sizeof *fx->outp);
    if (fuzz_init(&fx->fz, SCRATCH_BYTES, 20250607) < 0 || !fx->items || !fx->itemp || !fx->prefs ||
        !fx->prefp || !fx->outs || !fx->outp ||
        harness_mkdtemp(fx->dir, sizeof fx->dir, "agora-reward-hostile") < 0)
        goto fail;
    const char *const args[] = {"--reward.models",
                                "default,other",
                                "--reward.d_model",
                                "16",
                                "--reward.n_layers",
                                "1",
                                "--reward.n_heads",
                                "2",
                                "--reward.ctx",
                                "64",
                                "--reward.batch",
                                "16",
                                "--checkpoint-interval",
                                "0",
                                "--out",
                                fx->dir,
                                "--log.level",
                                "warn",
                                NULL};
    if (reward_proc_start(&fx->srv, server_exe, args, TIMEOUT_MS) < 0 ||
        reward_peer_open(&fx->hostile, fx->srv.endpoint) < 0 ||
        reward_peer_open(&fx->good, fx->srv.endpoint) < 0)
        goto fail;
    return 0;
fail:
    /* CMocka skips the group teardown when setup fails: do not leave the server running. */
    teardown(state);
    return -1;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void assert_good_score(fixture_t *fx)
{
    static const char *const t[3] = {"seat 0 | result: won", "", "seat 1 | result: lost"};
    Agora__V1__RewardReply *r = reward_peer_score(&fx->good, "default", t, 3, TIMEOUT_MS);
    if (!r)
        fail_msg("a valid Score went unanswered");
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_SCORE);
    assert_int_equal(r->score->n_scores, 3);
    for (size_t i = 0; i < 3; i++)
        assert_true(isfinite(r->score->scores[i]));
    agora__v1__reward_reply__free_unpacked(r, NULL);
}

static void send_and_check(fixture_t *fx, enum kind k, int i)
{
    hostile_msg_t m;
    make_hostile(fx, k, &m);
    assert_int_equal(reward_peer_send(&fx->hostile, m.frames, m.n_frames), 0);
    Agora__V1__RewardReply *r = NULL;
    bool delimited = false;
    int rc = reward_peer_recv(&fx->hostile, TIMEOUT_MS, &r, &delimited);
    if (rc)
        fail_msg("message %d (%s): no decodable reply (%d)", i, kind_names[k], rc);
    const int code = reward_reply_error(r);
    bool ok = code == m.codes[0] || code == m.codes[1];
    if (ok && code == 0 && m.scores)
        ok = r->body_case == AGORA__V1__REWARD_REPLY__BODY_SCORE && r->score->n_scores == m.scores;
    else if (ok && code == 0)
        ok = r->body_case == AGORA__V1__REWARD_REPLY__BODY_LABEL &&
             r->label->accepted == m.accepted && r->label->rejected == m.rejected &&
             r->label->duplicate == m.duplicate;
    if (!ok || (r->request_id != m.want_id && !(m.id_zero_ok && r->request_id == 0)))
        fail_msg("message %d (%s): expected code %d (or %d) with request_id %llu, got body %d "
                 "code %d with request_id %llu (%s)",
                 i, kind_names[k], m.codes[0], m.codes[1], (unsigned long long)m.want_id,
                 r->body_case, code, (unsigned long long)r->request_id,
                 r->error && r->error->message ? r->error->message : "");
    if (r->protocol_version != 1)
        fail_msg("message %d (%s): reply protocol_version %u", i, kind_names[k],
                 (unsigned)r->protocol_version);
    /* a well-framed request is answered in its own frame layout */
    if (k == K_GARBAGE && delimited != (m.n_frames == 2))
        fail_msg("message %d (%s): reply framing does not match the request's", i, kind_names[k]);
    if (!m.duplicate)
        fx->rejected_total += m.rejected;
    agora__v1__reward_reply__free_unpacked(r, NULL);
    fx->sent[k]++;
}

static void test_hostile_flood(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < HOSTILE_MESSAGES; i++) {
        enum kind k = i % 1000 == 999 ? K_HUGE : (enum kind)ag_rng_below(&fx->fz.rng, N_KINDS - 1);
        send_and_check(fx, k, i);
        if (i % 500 == 250)
            assert_good_score(fx);
    }
    for (int k = 0; k < N_KINDS; k++) {
        print_message("  %-20s %5d\n", kind_names[k], fx->sent[k]);
        assert_true(fx->sent[k] > 0);
    }
}

/* Two empty transcripts decode to one shared string: a preference between
 * them is a label like any other (and must not hang the server). */
static void test_empty_pair(void **state)
{
    fixture_t *fx = *state;
    Agora__V1__ScoreItem a = AGORA__V1__SCORE_ITEM__INIT, b = AGORA__V1__SCORE_ITEM__INIT;
    Agora__V1__Preference pref = AGORA__V1__PREFERENCE__INIT;
    Agora__V1__Preference *prefs[1] = {&pref};
    a.transcript = "";
    b.transcript = "";
    pref.a = &a;
    pref.b = &b;
    pref.preferred = 1;
    Agora__V1__RewardReply *r =
        reward_peer_label(&fx->good, "default", prefs, 1, NULL, 0, TIMEOUT_MS);
    if (!r)
        fail_msg("a preference between two empty transcripts went unanswered");
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_LABEL);
    assert_int_equal(r->label->accepted, 1);
    assert_int_equal(r->label->rejected, 0);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    assert_good_score(fx);
}

/* Over the size limit: ZeroMQ drops that connection, no reply, everyone else served. */
static void test_oversize(void **state)
{
    fixture_t *fx = *state;
    const size_t sizes[2] = {LIMIT + 4096, 2 * (size_t)LIMIT};
    for (size_t i = 0; i < 2; i++) {
        /* one-frame and REQ-style two-frame layouts */
        int rc = fuzz_send_oversize(fx->srv.endpoint, sizes[i], i == 1, 1000);
        if (rc)
            fail_msg("a %zu-byte request: %s", sizes[i],
                     rc == -EPROTO ? "answered" : strerror(-rc));
        assert_good_score(fx);
    }
}

static void test_still_serving(void **state)
{
    fixture_t *fx = *state;
    assert_good_score(fx);
    Agora__V1__RewardReply *r = reward_peer_stats(&fx->good, "default", TIMEOUT_MS);
    assert_non_null(r);
    assert_int_equal(r->body_case, AGORA__V1__REWARD_REPLY__BODY_STATS);
    assert_int_equal(r->stats->n_models, 1);
    const Agora__V1__RewardModelStats *m = r->stats->models[0];
    print_message("  default: %llu labels, %llu updates, %.0f rejected\n",
                  (unsigned long long)m->labels, (unsigned long long)m->updates,
                  reward_metric(m, "rejected", -1));
    assert_float_equal(reward_metric(m, "rejected", -1), (double)fx->rejected_total, 0);
    assert_true(m->labels > 0);
    agora__v1__reward_reply__free_unpacked(r, NULL);
    assert_true(ag_server_proc_alive(&fx->srv));
    assert_int_equal(ag_server_proc_stop(&fx->srv, TIMEOUT_MS), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_reward_hostile AGORA_REWARD_BINARY\n");
        return 2;
    }
    server_exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_flood),
        cmocka_unit_test(test_empty_pair),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_still_serving),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
