/*
 * test_reward_client.c - the actor's side of the reward service: a seat's
 * transcript rebuilt from its token stream byte for byte as it crossed the
 * wire, the labels a finished game gives, and the asynchronous client
 * (batched scores, labels, error replies, a server that is away and comes
 * back, a bounded label queue, cancellation, label batch ids kept across
 * retries, resends after an outage and OVERLOADED) against a scripted reward
 * server on loopback. The real agora-reward is exercised by the
 * integration test tests/integration/actor_reward.c.
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
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "codec.h"
#include "log.h"
#include "reward.pb-c.h"
#include "reward_client.h"
#include "rpc.h"
#include "runner.h"

/* ---- transcripts ---- */

static void s_obs(ag_seq_t *q, const char *text)
{
    assert_int_equal(ag_seq_context(q, text, strlen(text)), 0);
}

/* Appends a sampled action (bytes, then EOT unless cut) and closes the turn. */
static void s_act(ag_seq_t *q, const char *bytes, size_t n, bool eot)
{
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ag_seq_generated(q, (unsigned char)bytes[i], -0.1f, 0.0f), 0);
    if (eot)
        assert_int_equal(ag_seq_generated(q, AG_TOK_EOT, -0.1f, 0.0f), 0);
    assert_int_equal(ag_seq_end_turn(q, 1), 0);
}

/* What the runner sends for an action: its bytes, sanitised on their own. */
static size_t s_sent(const char *bytes, size_t n, char *out)
{
    memcpy(out, bytes, n);
    ag_runner_sanitize_utf8(out, n);
    return n;
}

static void test_transcript(void **state)
{
    ag_seq_t q;
    ag_seq_init(&q);
    assert_int_equal(ag_seq_begin(&q), 0);
    char want[256];
    size_t w = 0;
    const char *o1 = "critique\ntask: 6 -2\nyour chain: ";
    s_obs(&q, o1);
    memcpy(want + w, o1, strlen(o1));
    w += strlen(o1);
    /* Invalid bytes and a NUL: sent as '?'. */
    static const char a1[] = {'4', ' ', (char)0xff, 0, '2'};
    s_act(&q, a1, sizeof a1, true);
    w += s_sent(a1, sizeof a1, want + w);
    /* A valid two-byte character split over two actions with no observation
     * between them (the first was cut by the token limit): each half was sent
     * alone, so each is a '?'; sanitising the whole text would keep it. */
    static const char a2[] = {'1', (char)0xc3};
    static const char a3[] = {(char)0xa9, 'z'};
    s_act(&q, a2, sizeof a2, false);
    w += s_sent(a2, sizeof a2, want + w);
    s_act(&q, a3, sizeof a3, true);
    w += s_sent(a3, sizeof a3, want + w);
    /* Observations are kept as received, multi-byte characters included. */
    const char *o2 = "\n\xc3\xa9t\xc3\xa9: ";
    s_obs(&q, o2);
    memcpy(want + w, o2, strlen(o2));
    w += strlen(o2);
    static const char a4[] = {'o', 'k'};
    s_act(&q, a4, sizeof a4, true);
    w += s_sent(a4, sizeof a4, want + w);

    char got[256];
    size_t n = ag_runner_transcript(&q, got, q.len + 1);
    assert_int_equal(n, w);
    assert_memory_equal(got, want, w);
    assert_int_equal(got[n], '\0');
    assert_memory_equal(got + strlen(o1), "4 ??21??z", 9);

    /* Dropping the specials and sanitising the whole text would differ. */
    char naive[256];
    size_t m = ag_seq_text(&q, 0, q.len, naive, sizeof naive);
    ag_runner_sanitize_utf8(naive, m);
    assert_int_equal(m, w);
    assert_true(memcmp(naive, want, w) != 0);

    /* A short buffer gets a NUL-terminated prefix. */
    char small[8];
    assert_int_equal(ag_runner_transcript(&q, small, sizeof small), 7);
    assert_memory_equal(small, want, 7);
    assert_int_equal(small[7], '\0');

    /* A seat that never acted: its observation alone. */
    ag_seq_t e;
    ag_seq_init(&e);
    assert_int_equal(ag_seq_begin(&e), 0);
    assert_int_equal(ag_runner_transcript(&e, got, sizeof got), 0);
    s_obs(&e, "abc");
    assert_int_equal(ag_runner_transcript(&e, got, sizeof got), 3);
    assert_string_equal(got, "abc");
    ag_seq_finish(&e);
    ag_seq_finish(&q);
}

/* ---- labels ---- */

static void test_labels(void **state)
{
    ag_reward_label_t l[8];
    bool both[2] = {true, true}, first[2] = {true, false};
    float r[3] = {1.0f, -1.0f, 0.0f};

    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OFF, 2, r, both, l), 0);

    /* Outcomes: 1 for a positive return, 0 for a negative one, none for a tie. */
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OUTCOMES, 2, r, both, l), 2);
    assert_false(l[0].preference);
    assert_int_equal(l[0].seat, 0);
    assert_true(l[0].label == 1.0f);
    assert_int_equal(l[1].seat, 1);
    assert_true(l[1].label == 0.0f);
    float tie[2] = {0.0f, 0.5f};
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OUTCOMES, 2, tie, both, l), 1);
    assert_int_equal(l[0].seat, 1);
    assert_true(l[0].label == 1.0f);
    /* Only seats with a transcript. */
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OUTCOMES, 2, r, first, l), 1);
    assert_int_equal(l[0].seat, 0);
    bool three[3] = {true, true, true};
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OUTCOMES, 3, r, three, l), 2);

    /* Preferences: the winner of a two-seat game over the loser. */
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 2, r, both, l), 1);
    assert_true(l[0].preference);
    assert_int_equal(l[0].seat, 0);
    assert_int_equal(l[0].other, 1);
    float r2[2] = {-1.0f, 0.25f};
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 2, r2, both, l), 1);
    assert_int_equal(l[0].seat, 1);
    assert_int_equal(l[0].other, 0);
    float same[2] = {1.0f, 1.0f};
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 2, same, both, l), 0);
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 2, r, first, l), 0);
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 3, r, three, l), 0);
    float nan2[2] = {NAN, 1.0f};
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_PREFERENCES, 2, nan2, both, l), 0);
    assert_int_equal(ag_reward_game_labels(AG_REWARD_LABELS_OUTCOMES, 2, nan2, both, l), 1);

    /* Decided on the transcripts: anything but a coin. */
    Agora__V1__KeyValue kv[2] = {AGORA__V1__KEY_VALUE__INIT, AGORA__V1__KEY_VALUE__INIT};
    Agora__V1__KeyValue *info[2] = {&kv[0], &kv[1]};
    kv[0].key = "winner";
    kv[0].value = "1";
    kv[1].key = "reason";
    kv[1].value = "coin";
    assert_false(ag_reward_decided(info, 2));
    kv[1].value = "step";
    assert_true(ag_reward_decided(info, 2));
    kv[1].value = "invalid";
    assert_true(ag_reward_decided(info, 2));
    assert_true(ag_reward_decided(info, 1));
    assert_true(ag_reward_decided(NULL, 0));
}

/* ---- a scripted reward server ---- */

enum { MODE_OK, MODE_UNKNOWN_MODEL, MODE_OVERLOADED_ONCE, MODE_SHORT, MODE_SILENT };

#define FAKE_MAX 64

typedef struct fake_rm {
    uv_loop_t *loop;
    ag_rpc_server_t *srv;
    int mode;
    int overloaded_left;
    uint64_t score_requests, stats_requests, label_requests;
    size_t max_items; /* most items in one ScoreRequest */
    size_t items;
    char *labels[FAKE_MAX]; /* "P:seatA:seatB:pref:textA|textB" or "O:seat:label:text" */
    size_t n_labels;
    /* every LabelRequest: its batch id and number of labels, answered or not */
    char *batch_ids[FAKE_MAX];
    size_t request_labels[FAKE_MAX];
    bool taken[FAKE_MAX]; /* its labels were kept */
    /* label requests taken (labels kept) but left unanswered, as if the reply were lost */
    int drop_label_replies;
    /* as agora-reward: a batch id taken before is answered duplicate, its labels not kept */
    bool dedup;
    uint64_t duplicates;
} fake_rm_t;

/* The label request before `before` whose labels were kept under batch id, or -1. */
static int s_fake_taken(const fake_rm_t *f, const char *id, size_t before)
{
    for (size_t i = 0; i < before; i++)
        if (*id && f->taken[i] && !strcmp(f->batch_ids[i], id))
            return (int)i;
    return -1;
}

/* The scripted score: the transcript's length plus a tenth of the seat; "nan..." scores NaN. */
static float s_fake_score(const Agora__V1__ScoreItem *it)
{
    if (!strncmp(it->transcript, "nan", 3))
        return NAN;
    return (float)strlen(it->transcript) + 0.1f * (float)it->seat;
}

/* A LabelReply (rep's header already set), unless a reply is to be dropped. */
static void s_fake_label_reply(fake_rm_t *f, ag_rpc_server_t *srv, const ag_rpc_peer_t *peer,
                               Agora__V1__RewardReply *rep, uint32_t accepted, bool duplicate)
{
    Agora__V1__LabelReply lrep = AGORA__V1__LABEL_REPLY__INIT;
    lrep.accepted = accepted;
    lrep.duplicate = duplicate;
    rep->body_case = AGORA__V1__REWARD_REPLY__BODY_LABEL;
    rep->label = &lrep;
    if (f->drop_label_replies > 0)
        f->drop_label_replies--;
    else
        ag_rpc_reply_msg(srv, peer, &rep->base);
}

static void s_fake_on_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer,
                              const uint8_t *payload, size_t len, void *arg)
{
    fake_rm_t *f = arg;
    char why[256];
    Agora__V1__RewardRequest *req = (Agora__V1__RewardRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__reward_request__descriptor,
        &agora__v1__reward_reply__descriptor, NULL, why, sizeof why);
    if (!req)
        return;
    const ProtobufCMessageDescriptor *rd = &agora__v1__reward_reply__descriptor;
    Agora__V1__RewardReply rep = AGORA__V1__REWARD_REPLY__INIT;
    ag_envelope_set_header(&rep.base, req->request_id);
    size_t k = 0; /* a label request's index */
    if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_LABEL) {
        const Agora__V1__LabelRequest *lr = req->label;
        k = f->label_requests++;
        assert_true(k < FAKE_MAX);
        f->batch_ids[k] = strdup(lr->batch_id);
        f->request_labels[k] = lr->n_preferences + lr->n_outcomes;
    }
    if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_STATS) {
        f->stats_requests++;
        if (f->mode != MODE_SILENT) {
            Agora__V1__RewardStatsReply st = AGORA__V1__REWARD_STATS_REPLY__INIT;
            rep.body_case = AGORA__V1__REWARD_REPLY__BODY_STATS;
            rep.stats = &st;
            ag_rpc_reply_msg(srv, peer, &rep.base);
        }
    } else if (f->mode == MODE_SILENT) {
        /* a server that takes requests and never answers */
    } else if (f->mode == MODE_UNKNOWN_MODEL) {
        ag_rpc_reply_error(srv, peer, rd, req->request_id,
                           AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL, "no such model");
    } else if (f->mode == MODE_OVERLOADED_ONCE && f->overloaded_left > 0) {
        f->overloaded_left--;
        ag_rpc_reply_error(srv, peer, rd, req->request_id, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED,
                           "busy");
    } else if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_SCORE) {
        const Agora__V1__ScoreRequest *sr = req->score;
        f->score_requests++;
        f->items += sr->n_items;
        if (sr->n_items > f->max_items)
            f->max_items = sr->n_items;
        assert_string_equal(sr->model, "default");
        float *scores = calloc(sr->n_items + 1, sizeof *scores);
        for (size_t i = 0; i < sr->n_items; i++)
            scores[i] = s_fake_score(sr->items[i]);
        Agora__V1__ScoreReply sc = AGORA__V1__SCORE_REPLY__INIT;
        sc.scores = scores;
        sc.n_scores = f->mode == MODE_SHORT ? sr->n_items - 1 : sr->n_items;
        sc.model_version = 7;
        rep.body_case = AGORA__V1__REWARD_REPLY__BODY_SCORE;
        rep.score = &sc;
        ag_rpc_reply_msg(srv, peer, &rep.base);
        free(scores);
    } else if (req->body_case == AGORA__V1__REWARD_REQUEST__BODY_LABEL) {
        const Agora__V1__LabelRequest *lr = req->label;
        const int first = f->dedup ? s_fake_taken(f, lr->batch_id, k) : -1;
        if (first >= 0) {
            f->duplicates++;
            s_fake_label_reply(f, srv, peer, &rep, (uint32_t)f->request_labels[first], true);
            ag_codec_free(&req->base);
            return;
        }
        f->taken[k] = true;
        for (size_t i = 0; i < lr->n_preferences && f->n_labels < FAKE_MAX; i++) {
            const Agora__V1__Preference *p = lr->preferences[i];
            char buf[512];
            snprintf(buf, sizeof buf, "P:%u:%u:%u:%s|%s", p->a->seat, p->b->seat, p->preferred,
                     p->a->transcript, p->b->transcript);
            f->labels[f->n_labels++] = strdup(buf);
        }
        for (size_t i = 0; i < lr->n_outcomes && f->n_labels < FAKE_MAX; i++) {
            const Agora__V1__Outcome *o = lr->outcomes[i];
            char buf[512];
            snprintf(buf, sizeof buf, "O:%u:%g:%s", o->item->seat, (double)o->label,
                     o->item->transcript);
            f->labels[f->n_labels++] = strdup(buf);
        }
        s_fake_label_reply(f, srv, peer, &rep, (uint32_t)(lr->n_preferences + lr->n_outcomes),
                           false);
    }
    ag_codec_free(&req->base);
}

/* Binds ep; an endpoint given up a moment ago may take ZeroMQ a while to release. */
static void s_fake_bind(fake_rm_t *f, void *zctx, const char *ep)
{
    ag_zsock_opts_t zo = {.maxmsgsize = 16 << 20};
    for (int i = 0; i < 100 && !f->srv; i++) {
        f->srv = ag_rpc_server_create(f->loop, zctx, ep, &zo, s_fake_on_request, f);
        if (!f->srv) {
            uv_run(f->loop, UV_RUN_NOWAIT);
            usleep(20000);
        }
    }
    assert_non_null(f->srv);
}

static void s_fake_finish(fake_rm_t *f)
{
    ag_rpc_server_destroy(&f->srv);
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->labels[i]);
    f->n_labels = 0;
    for (size_t i = 0; i < f->label_requests && i < FAKE_MAX; i++) {
        free(f->batch_ids[i]);
        f->batch_ids[i] = NULL;
        f->taken[i] = false;
    }
    f->label_requests = 0;
}

typedef struct rig {
    uv_loop_t loop;
    void *zctx;
    fake_rm_t fake;
    char ep[64];
    ag_reward_client_t *c;
} rig_t;

static void s_rig_init(rig_t *r, int mode)
{
    memset(r, 0, sizeof *r);
    uv_loop_init(&r->loop);
    r->zctx = zmq_ctx_new();
    r->fake.loop = &r->loop;
    r->fake.mode = mode;
    s_fake_bind(&r->fake, r->zctx, "tcp://127.0.0.1:*");
    snprintf(r->ep, sizeof r->ep, "%s", ag_rpc_server_endpoint(r->fake.srv));
}

static void s_rig_finish(rig_t *r)
{
    ag_reward_client_destroy(&r->c);
    s_fake_finish(&r->fake);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    zmq_ctx_term(r->zctx);
}

/* Runs the loop until cond(arg) or ms pass; returns cond. */
static bool s_run_until(uv_loop_t *loop, bool (*cond)(void *), void *arg, int ms)
{
    uint64_t until = uv_hrtime() + (uint64_t)ms * 1000000ULL;
    while (!cond(arg) && uv_hrtime() < until) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    return cond(arg);
}

typedef struct got {
    int calls;
    int status;
    size_t n;
    float scores[8];
} got_t;

static void s_on_scores(void *arg, int status, const float *scores, size_t n)
{
    got_t *g = arg;
    g->calls++;
    g->status = status;
    g->n = n;
    if (status == 0)
        memcpy(g->scores, scores, n * sizeof *scores);
}

typedef struct wait_all {
    got_t *g;
    int n;
} wait_all_t;

static bool s_all_called(void *arg)
{
    wait_all_t *w = arg;
    for (int i = 0; i < w->n; i++)
        if (!w->g[i].calls)
            return false;
    return true;
}

static int s_score(rig_t *r, const char *a, const char *b, got_t *g)
{
    ag_reward_item_t it[2] = {{a, strlen(a), 0}, {b, b ? strlen(b) : 0, 1}};
    return ag_reward_client_score(r->c, "debate", it, b ? 2 : 1, s_on_scores, g);
}

static void test_scores_batched(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_OK);
    ag_reward_client_opts_t o = {.endpoint = r.ep, .batch_ms = 20};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);

    /* Episodes finishing close together share one request. */
    got_t g[40] = {0};
    assert_int_equal(s_score(&r, "abc", "de", &g[0]), 0);
    assert_int_equal(s_score(&r, "", "xyz!", &g[1]), 0);
    assert_int_equal(s_score(&r, "hello", NULL, &g[2]), 0);
    assert_int_equal(g[0].calls, 0); /* never called back from inside the call */
    assert_int_equal(ag_reward_client_scoring(r.c), 3);
    wait_all_t w = {g, 3};
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(r.fake.score_requests, 1);
    assert_int_equal(r.fake.max_items, 5);
    assert_int_equal(g[0].status, 0);
    assert_int_equal(g[0].n, 2);
    assert_true(g[0].scores[0] == 3.0f && g[0].scores[1] == 2.1f);
    assert_true(g[1].scores[0] == 0.0f && g[1].scores[1] == 4.1f);
    assert_int_equal(g[2].n, 1);
    assert_true(g[2].scores[0] == 5.0f);
    assert_int_equal(ag_reward_client_scoring(r.c), 0);

    /* 40 groups of 8 items: at most 256 items per request, groups kept whole. */
    memset(g, 0, sizeof g);
    ag_reward_item_t it[8];
    char text[8][16];
    for (int k = 0; k < 8; k++) {
        snprintf(text[k], sizeof text[k], "%.*s", k + 1, "aaaaaaaaaaaa");
        it[k] = (ag_reward_item_t){text[k], strlen(text[k]), (uint32_t)k};
    }
    for (int i = 0; i < 40; i++)
        assert_int_equal(ag_reward_client_score(r.c, "debate", it, 8, s_on_scores, &g[i]), 0);
    w.n = 40;
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(r.fake.score_requests, 3);
    assert_int_equal(r.fake.items, 5 + 320);
    assert_int_equal(r.fake.max_items, 256);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, 0);
        for (int k = 0; k < 8; k++)
            assert_true(fabsf(g[i].scores[k] - (float)(k + 1) - 0.1f * (float)k) < 1e-5f);
    }
    ag_reward_client_stats_t st;
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.scored, 325);
    assert_int_equal(st.model_version, 7);

    /* Bad input is refused at once. */
    assert_int_equal(ag_reward_client_score(r.c, "debate", it, 0, s_on_scores, &g[0]), -EINVAL);
    assert_int_equal(ag_reward_client_score(r.c, "debate", it, 9, s_on_scores, &g[0]), -EINVAL);
    ag_reward_item_t nul = {"a\0b", 3, 0};
    assert_int_equal(ag_reward_client_score(r.c, "debate", &nul, 1, s_on_scores, &g[0]), -EINVAL);

    /* A transcript over the protocol's limit goes as its last 65536 bytes. */
    size_t big = AG_REWARD_MAX_TRANSCRIPT + 100;
    char *long_text = malloc(big);
    memset(long_text, 'x', big);
    memset(&g[0], 0, sizeof g[0]);
    ag_reward_item_t one = {long_text, big, 0};
    assert_int_equal(ag_reward_client_score(r.c, "debate", &one, 1, s_on_scores, &g[0]), 0);
    w.n = 1;
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(g[0].status, 0);
    assert_true(g[0].scores[0] == (float)AG_REWARD_MAX_TRANSCRIPT);
    free(long_text);
    s_rig_finish(&r);
}

static void test_score_errors(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_UNKNOWN_MODEL);
    ag_reward_client_opts_t o = {.endpoint = r.ep, .batch_ms = 1, .retry_ms = 50};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);
    got_t g[3] = {0};
    wait_all_t w = {g, 1};

    assert_int_equal(s_score(&r, "a", "b", &g[0]), 0);
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(g[0].status, -ENOENT);

    /* OVERLOADED: backed off, then served. */
    r.fake.mode = MODE_OVERLOADED_ONCE;
    r.fake.overloaded_left = 2;
    memset(g, 0, sizeof g);
    assert_int_equal(s_score(&r, "a", "b", &g[0]), 0);
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(g[0].status, 0);
    assert_int_equal(r.fake.overloaded_left, 0);

    /* A reply with too few scores fails every group of the request; a
     * non-finite score fails its own group only. */
    r.fake.mode = MODE_SHORT;
    memset(g, 0, sizeof g);
    assert_int_equal(s_score(&r, "a", "b", &g[0]), 0);
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(g[0].status, -EPROTO);
    r.fake.mode = MODE_OK;
    memset(g, 0, sizeof g);
    assert_int_equal(s_score(&r, "nan!", "b", &g[0]), 0);
    assert_int_equal(s_score(&r, "ok", "b", &g[1]), 0);
    w.n = 2;
    assert_true(s_run_until(&r.loop, s_all_called, &w, 5000));
    assert_int_equal(g[0].status, -EPROTO);
    assert_int_equal(g[1].status, 0);

    /* Destroyed with groups waiting: each is called back once, cancelled. */
    r.fake.mode = MODE_SILENT;
    memset(g, 0, sizeof g);
    assert_int_equal(s_score(&r, "a", "b", &g[0]), 0);
    assert_int_equal(s_score(&r, "c", "d", &g[1]), 0);
    uint64_t until = uv_hrtime() + 100000000ULL; /* let the first request go out */
    while (uv_hrtime() < until)
        uv_run(&r.loop, UV_RUN_NOWAIT);
    assert_int_equal(g[0].calls + g[1].calls, 0);
    ag_reward_client_destroy(&r.c);
    assert_int_equal(g[0].calls, 1);
    assert_int_equal(g[0].status, -ECANCELED);
    assert_int_equal(g[1].calls, 1);
    assert_int_equal(g[1].status, -ECANCELED);
    s_rig_finish(&r);
}

/* Every label answered, with at least `labels` labels and `requests` label
 * requests seen by the fake. */
typedef struct want_labels {
    rig_t *r;
    size_t labels;
    uint64_t requests;
} want_labels_t;

static bool s_labels_arrived(void *arg)
{
    want_labels_t *w = arg;
    return ag_reward_client_labels_pending(w->r->c) == 0 && w->r->fake.n_labels >= w->labels &&
           w->r->fake.label_requests >= w->requests;
}

static void test_labels_sent(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_OK);
    ag_reward_client_opts_t o = {.endpoint = r.ep};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);
    const char *texts[2] = {"seat zero", "seat one"};
    size_t lens[2] = {9, 8};
    float ret[2] = {-1.0f, 1.0f};
    assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_PREFERENCES, "debate", NULL,
                                                 0, 2, ret, texts, lens),
                     1);
    want_labels_t w = {&r, 1, 0};
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.n_labels, 1);
    /* a = seat 0, b = seat 1, b preferred: seat 1 won. */
    assert_string_equal(r.fake.labels[0], "P:0:1:1:seat zero|seat one");

    ret[0] = 1.0f;
    ret[1] = 0.0f;
    const char *one[2] = {"won", NULL};
    lens[0] = 3;
    assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_OUTCOMES, "debate", NULL, 0,
                                                 2, ret, one, lens),
                     1);
    w.labels = 2;
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.n_labels, 2);
    assert_string_equal(r.fake.labels[1], "O:0:1:won");
    ag_reward_client_stats_t st;
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.labels_sent, 2);
    assert_int_equal(st.labels_accepted, 2);
    assert_int_equal(st.labels_dropped, 0);
    assert_int_equal(st.label_duplicates, 0);

    /* Without an actor id: "<host>-<pid>/<random run id>/<n>", n counting batches. */
    assert_int_equal(r.fake.label_requests, 2);
    char host[128] = "localhost", want[160];
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    int prefix = snprintf(want, sizeof want, "%s-%d/", host, (int)getpid());
    for (int k = 0; k < 2; k++) {
        const char *id = r.fake.batch_ids[k];
        assert_int_equal(strlen(id), (size_t)prefix + 16 + 2);
        assert_memory_equal(id, want, (size_t)prefix);
        assert_int_equal(strspn(id + prefix, "0123456789abcdef"), 16);
        assert_int_equal(id[prefix + 16], '/');
        assert_int_equal(id[prefix + 17], '0' + k);
    }
    /* one run id per client */
    assert_memory_equal(r.fake.batch_ids[0], r.fake.batch_ids[1], (size_t)prefix + 16);
    s_rig_finish(&r);
}

/* decided_only: a game its coin settled is not labelled, one a step decided is. */
static void test_labels_decided_only(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_OK);
    ag_reward_client_opts_t o = {.endpoint = r.ep, .decided_only = true};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);
    const char *texts[2] = {"coin a", "coin b"};
    size_t lens[2] = {6, 6};
    float ret[2] = {1.0f, -1.0f};
    Agora__V1__KeyValue kv = AGORA__V1__KEY_VALUE__INIT;
    Agora__V1__KeyValue *info[1] = {&kv};
    kv.key = "reason";
    kv.value = "coin";
    assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_PREFERENCES, "debate", info,
                                                 1, 2, ret, texts, lens),
                     0);
    assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_OUTCOMES, "debate", info, 1,
                                                 2, ret, texts, lens),
                     0);
    kv.value = "step";
    texts[0] = "step a";
    texts[1] = "step b";
    assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_PREFERENCES, "debate", info,
                                                 1, 2, ret, texts, lens),
                     1);
    want_labels_t w = {&r, 1, 1};
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.n_labels, 1);
    assert_string_equal(r.fake.labels[0], "P:0:1:0:step a|step b");
    ag_reward_client_stats_t st;
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.games_undecided, 2);
    assert_int_equal(st.labels_sent, 1);
    s_rig_finish(&r);
}

static bool s_is_down(void *arg)
{
    return !ag_reward_client_up(((rig_t *)arg)->c);
}

static void s_outcome(rig_t *r, const char *text)
{
    const char *t[2] = {text, NULL};
    size_t lens[2] = {strlen(text), 0};
    float ret[2] = {1.0f, 0.0f};
    assert_int_equal(ag_reward_client_label_game(r->c, AG_REWARD_LABELS_OUTCOMES, "debate", NULL, 0,
                                                 2, ret, t, lens),
                     1);
}

/*
 * A batch keeps its id however it is resent: by the rpc layer after a lost
 * reply, after a final timeout and an outage, after OVERLOADED; and labels
 * queued meanwhile go in a batch of their own. The scripted server
 * de-duplicates like agora-reward, so each label is kept once.
 */
static void test_label_batch_ids(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_OK);
    r.fake.dedup = true;
    ag_reward_client_opts_t o = {.endpoint = r.ep,
                                 .timeout_ms = 150,
                                 .attempts = 2,
                                 .retry_ms = 50,
                                 .actor_id = "rack/a\tb",
                                 .run_id = 0xabc};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);
    const char *id0 = "rack/a_b/0000000000000abc/0", *id1 = "rack/a_b/0000000000000abc/1",
               *id2 = "rack/a_b/0000000000000abc/2", *id3 = "rack/a_b/0000000000000abc/3";

    /* The first reply is lost: the retry carries the same id and is a duplicate. */
    r.fake.drop_label_replies = 1;
    s_outcome(&r, "first");
    want_labels_t w = {&r, 0, 2};
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.label_requests, 2);
    assert_string_equal(r.fake.batch_ids[0], id0);
    assert_string_equal(r.fake.batch_ids[1], id0);
    assert_int_equal(r.fake.n_labels, 1);
    ag_reward_client_stats_t st;
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.label_duplicates, 1);
    assert_int_equal(st.labels_accepted, 1);

    /* Both attempts lost: the server is taken as down, and once it answers the
     * probe the batch goes again, alone and under its id; a label queued
     * during the outage follows in the next batch. */
    r.fake.drop_label_replies = 2;
    s_outcome(&r, "second");
    assert_true(s_run_until(&r.loop, s_is_down, &r, 5000));
    s_outcome(&r, "third");
    w.requests = 6;
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.label_requests, 6);
    for (int k = 2; k < 6; k++)
        assert_string_equal(r.fake.batch_ids[k], k < 5 ? id1 : id2);
    assert_int_equal(r.fake.request_labels[4], 1);
    assert_int_equal(r.fake.request_labels[5], 1);
    assert_int_equal(r.fake.n_labels, 3);
    assert_string_equal(r.fake.labels[2], "O:0:1:third");
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.outages, 1);
    assert_int_equal(st.label_duplicates, 2);
    assert_int_equal(st.labels_accepted, 3);

    /* OVERLOADED (nothing kept): resent under the same id, and learnt. */
    r.fake.mode = MODE_OVERLOADED_ONCE;
    r.fake.overloaded_left = 1;
    s_outcome(&r, "fourth");
    w.requests = 8;
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.label_requests, 8);
    assert_string_equal(r.fake.batch_ids[6], id3);
    assert_string_equal(r.fake.batch_ids[7], id3);
    assert_int_equal(r.fake.n_labels, 4);
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.label_duplicates, 2);
    assert_int_equal(st.labels_accepted, 4);
    assert_int_equal(r.fake.duplicates, 3); /* one of them unanswered */

    /* 300 outcomes queued while a request waits for its retry: they go as 256
     * and 44, each batch under an id of its own, and all are kept. */
    r.fake.mode = MODE_OK;
    r.fake.drop_label_replies = 1;
    s_outcome(&r, "fifth");
    for (int i = 0; i < 300; i++)
        s_outcome(&r, "many");
    w.requests = 12;
    assert_true(s_run_until(&r.loop, s_labels_arrived, &w, 5000));
    assert_int_equal(r.fake.label_requests, 12);
    const char *ids[4] = {"rack/a_b/0000000000000abc/4", "rack/a_b/0000000000000abc/4",
                          "rack/a_b/0000000000000abc/5", "rack/a_b/0000000000000abc/6"};
    const size_t sizes[4] = {1, 1, 256, 44};
    size_t kept = 0;
    for (int k = 0; k < 4; k++) {
        assert_string_equal(r.fake.batch_ids[8 + k], ids[k]);
        assert_int_equal(r.fake.request_labels[8 + k], sizes[k]);
        kept += r.fake.taken[8 + k] ? r.fake.request_labels[8 + k] : 0;
    }
    assert_int_equal(kept, 301);
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.labels_accepted, 305);
    assert_int_equal(st.label_duplicates, 3);
    s_rig_finish(&r);
}

typedef struct away {
    rig_t *r;
    got_t *g;
    int n;
    size_t labels;
} away_t;

static bool s_away_done(void *arg)
{
    away_t *a = arg;
    for (int i = 0; i < a->n; i++)
        if (!a->g[i].calls)
            return false;
    return ag_reward_client_labels_pending(a->r->c) == 0 && a->r->fake.n_labels >= a->labels;
}

static bool s_has_label(const fake_rm_t *f, const char *want)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (!strcmp(f->labels[i], want))
            return true;
    return false;
}

/* The server goes away and comes back: scores wait (never failed for it),
 * the label queue keeps its newest entries, and all of it goes out again. */
static void test_server_away(void **state)
{
    rig_t r;
    s_rig_init(&r, MODE_OK);
    s_fake_finish(&r.fake); /* nobody listens at r.ep now */
    ag_reward_client_opts_t o = {.endpoint = r.ep,
                                 .timeout_ms = 100,
                                 .attempts = 1,
                                 .batch_ms = 1,
                                 .retry_ms = 100,
                                 .max_labels = 5};
    r.c = ag_reward_client_create(&r.loop, r.zctx, &o);
    assert_non_null(r.c);
    got_t g[3] = {0};
    assert_int_equal(s_score(&r, "a", "bb", &g[0]), 0);
    char texts[8][8];
    size_t lens[8];
    for (int i = 0; i < 8; i++) {
        snprintf(texts[i], sizeof texts[i], "L%d", i);
        const char *t[2] = {texts[i], NULL};
        lens[0] = strlen(texts[i]);
        float ret[2] = {1.0f, 0.0f};
        assert_int_equal(ag_reward_client_label_game(r.c, AG_REWARD_LABELS_OUTCOMES, "debate", NULL,
                                                     0, 2, ret, t, lens),
                         1);
    }
    assert_true(s_run_until(&r.loop, s_is_down, &r, 5000));
    assert_int_equal(s_score(&r, "ccc", "d", &g[1]), 0);
    uint64_t until = uv_hrtime() + 400000000ULL; /* a few probe periods */
    while (uv_hrtime() < until) {
        uv_run(&r.loop, UV_RUN_NOWAIT);
        usleep(500);
    }
    assert_int_equal(g[0].calls + g[1].calls, 0);
    ag_reward_client_stats_t st;
    ag_reward_client_get_stats(r.c, &st);
    assert_int_equal(st.outages, 1);
    assert_int_equal(st.labels_dropped, 3); /* 8 labels, room for 5 */
    assert_int_equal(ag_reward_client_labels_pending(r.c), 5);

    /* Back on the same endpoint. */
    s_fake_bind(&r.fake, r.zctx, r.ep);
    away_t a = {&r, g, 2, 5};
    assert_true(s_run_until(&r.loop, s_away_done, &a, 10000));
    assert_true(ag_reward_client_up(r.c));
    assert_int_equal(g[0].status, 0);
    assert_true(g[0].scores[0] == 1.0f && g[0].scores[1] == 2.1f);
    assert_int_equal(g[1].status, 0);
    assert_true(g[1].scores[0] == 3.0f);
    assert_true(r.fake.stats_requests >= 1); /* the probe found it */
    /* The newest five arrived (a copy of a request sent before the outage
     * was noticed may arrive too: ZeroMQ keeps it for the reconnection). */
    for (int i = 3; i < 8; i++) {
        char want[32];
        snprintf(want, sizeof want, "O:0:1:L%d", i);
        assert_true(s_has_label(&r.fake, want));
    }
    s_rig_finish(&r);
}

int main(void)
{
    ag_log_set_level(AG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transcript),      cmocka_unit_test(test_labels),
        cmocka_unit_test(test_scores_batched),  cmocka_unit_test(test_score_errors),
        cmocka_unit_test(test_labels_sent),     cmocka_unit_test(test_labels_decided_only),
        cmocka_unit_test(test_label_batch_ids), cmocka_unit_test(test_server_away),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
