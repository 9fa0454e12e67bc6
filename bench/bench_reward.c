/*
 * agora-bench reward - Score throughput and latency of the reward service
 * over loopback TCP, with and without training running beside it.
 *
 * The service (reward_server/service.h, the code agora-reward runs) is
 * started in this process on its own libuv loop thread, bound to a free
 * loopback port; its training thread is the service's own. One DEALER keeps
 * `window` Score requests in flight, each a batch of debate-like seat
 * transcripts (about 150 bytes: the task, the seat's claim, the opponent's
 * claim, the challenge), and sends the next request as soon as a reply
 * arrives: a pipelined, closed-loop load. Latency is measured per request,
 * from its send to its reply. With --train, 2048 preference labels are sent
 * first and every label is reused without end, so the trainer takes
 * optimizer steps for the whole run and the serving copy of the weights is
 * refreshed before nearly every Score. Figures are collected for `seconds`
 * after a warm-up and printed as one JSON line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <zmq.h>

#include "clock.h"
#include "bench.h"
#include "model.h"
#include "reward.pb-c.h"
#include "rng.h"
#include "reward_options.h"
#include "reward_service.h"

#define MAX_WINDOW 256
#define POOL 1024
#define TRAIN_REQUESTS 8
#define TIMEOUT_MS 30000

/* agora-bench reward's options ([bench_reward] of a run file), filled from s_options. */
typedef struct {
    int d_model, layers, heads, ctx, batch, window, threads, score_threads;
    double seconds, warmup;
    bool train;
} opts_t;

#define OPT(f, ...) AG_OPT(opts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(d_model, "bench_reward.d_model", "d-model", "64", 0, 1e6, "model width"),
    OPT(layers, "bench_reward.layers", "layers", "2", 0, 1e6, "transformer blocks"),
    OPT(heads, "bench_reward.heads", "heads", "2", 0, 1e6, "attention heads"),
    OPT(ctx, "bench_reward.ctx", "ctx", "256", 0, 1e6, "context of the reward model"),
    OPT(batch, "bench_reward.batch", "batch", "64", 1, 256, "B: transcripts per Score request"),
    OPT(window, "bench_reward.window", "window", "4", 1, MAX_WINDOW, "W: Score requests in flight"),
    OPT(train, "bench_reward.train", "train", "false", 0, 0,
        "first send 2048 preference labels reused without end, so the trainer steps "
        "throughout the run"),
    OPT(threads, "bench_reward.threads", "threads", "1", 0, 1e6,
        "compute threads of the training copy (0 = all CPUs)"),
    OPT(score_threads, "bench_reward.score_threads", "score-threads", "1", 0, 1e6,
        "compute threads of the serving copy (0 = all CPUs)"),
    OPT(seconds, "bench_reward.seconds", "seconds", "5", 1e-3, 1e6, "measured duration (seconds)"),
    OPT(warmup, "bench_reward.warmup", "warmup", "0.5", 0, 1e6, "unmeasured start (seconds)"),
};
#undef OPT

typedef struct {
    void *zctx, *sock;
    char pool[POOL][256];
    uint64_t next_id;
    uint64_t sent_id[MAX_WINDOW];
    int64_t sent_ns[MAX_WINDOW];
    uint8_t *buf;
    size_t cap;
    uint32_t *lat_ns;
    size_t n_lat, cap_lat;
    uint64_t requests, scores, errors;
    Agora__V1__ScoreItem items[MAX_WINDOW];
    Agora__V1__ScoreItem *itemp[MAX_WINDOW];
} client_t;

/* One seat's view of a finished debate, as the actor builds it. */
static void s_transcript(ag_rng_t *r, char *out, size_t cap)
{
    static const char ops[] = "+-*";
    char task[64], chain[2][24];
    size_t n = (size_t)snprintf(task, sizeof task, "%u", ag_rng_below(r, 10));
    for (int i = 0; i < 8; i++)
        n += (size_t)snprintf(task + n, sizeof task - n, " %c%u", ops[ag_rng_below(r, 3)],
                              1 + ag_rng_below(r, 9));
    for (int c = 0; c < 2; c++) {
        size_t k = 0;
        for (int i = 0; i < 8; i++)
            k += (size_t)snprintf(chain[c] + k, sizeof chain[c] - k, "%s%u", i ? " " : "",
                                  ag_rng_below(r, 10));
    }
    snprintf(out, cap,
             "debate\ntask: %s\nyou argue: %c\nyour chain: %s\nopponent argues: %c\n"
             "opponent chain: %s\nchallenge step: %u",
             task, chain[0][14], chain[0], chain[1][14], chain[1], 1 + ag_rng_below(r, 8));
}

static int s_send(client_t *c, const Agora__V1__RewardRequest *req)
{
    size_t n = agora__v1__reward_request__get_packed_size(req);
    if (n > c->cap) {
        uint8_t *b = realloc(c->buf, n);
        if (!b)
            return -ENOMEM;
        c->buf = b;
        c->cap = n;
    }
    agora__v1__reward_request__pack(req, c->buf);
    return zmq_send(c->sock, c->buf, n, 0) == (int)n ? 0 : -EIO;
}

/* The next reply (decoded), or NULL after timeout_ms. */
static Agora__V1__RewardReply *s_recv(client_t *c, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return NULL;
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, c->sock, 0) < 0) {
        zmq_msg_close(&m);
        return NULL;
    }
    Agora__V1__RewardReply *r =
        agora__v1__reward_reply__unpack(NULL, zmq_msg_size(&m), zmq_msg_data(&m));
    zmq_msg_close(&m);
    return r;
}

/* Score request `seq` into window slot `slot`: batch transcripts from the pool. */
static int s_send_score(client_t *c, const opts_t *o, int slot, uint64_t seq)
{
    for (int i = 0; i < o->batch; i++) {
        agora__v1__score_item__init(&c->items[i]);
        c->items[i].transcript = c->pool[(seq * (uint64_t)o->batch + (uint64_t)i) % POOL];
        c->items[i].seat = (uint32_t)(i & 1);
        c->items[i].game = "debate";
        c->itemp[i] = &c->items[i];
    }
    Agora__V1__ScoreRequest sr = AGORA__V1__SCORE_REQUEST__INIT;
    sr.model = "default";
    sr.n_items = (size_t)o->batch;
    sr.items = c->itemp;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.protocol_version = 1;
    req.request_id = c->sent_id[slot] = ((++c->next_id) << 8) | (uint64_t)slot;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_SCORE;
    req.score = &sr;
    c->sent_ns[slot] = ag_now_ns();
    return s_send(c, &req);
}

/* A blocking call of one request (labels, stats); the reply or NULL. */
static Agora__V1__RewardReply *s_call(client_t *c, Agora__V1__RewardRequest *req)
{
    req->protocol_version = 1;
    req->request_id = ++c->next_id << 8;
    if (s_send(c, req) < 0)
        return NULL;
    for (;;) {
        Agora__V1__RewardReply *r = s_recv(c, TIMEOUT_MS);
        if (!r || r->request_id == req->request_id)
            return r;
        agora__v1__reward_reply__free_unpacked(r, NULL);
    }
}

/* Preference labels that keep the trainer busy: the pool's transcripts, paired. */
static int s_send_labels(client_t *c)
{
    Agora__V1__Preference prefs[256], *pp[256];
    Agora__V1__ScoreItem a[256], b[256];
    for (int q = 0; q < TRAIN_REQUESTS; q++) {
        for (int i = 0; i < 256; i++) {
            agora__v1__score_item__init(&a[i]);
            agora__v1__score_item__init(&b[i]);
            a[i].transcript = c->pool[(q * 512 + 2 * i) % POOL];
            b[i].transcript = c->pool[(q * 512 + 2 * i + 1) % POOL];
            agora__v1__preference__init(&prefs[i]);
            prefs[i].a = &a[i];
            prefs[i].b = &b[i];
            prefs[i].preferred = (uint32_t)(i & 1);
            pp[i] = &prefs[i];
        }
        Agora__V1__LabelRequest lr = AGORA__V1__LABEL_REQUEST__INIT;
        lr.model = "default";
        lr.n_preferences = 256;
        lr.preferences = pp;
        Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
        req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
        req.label = &lr;
        Agora__V1__RewardReply *r = s_call(c, &req);
        bool ok =
            r && r->body_case == AGORA__V1__REWARD_REPLY__BODY_LABEL && r->label->accepted == 256;
        if (r)
            agora__v1__reward_reply__free_unpacked(r, NULL);
        if (!ok) {
            fprintf(stderr, "agora-bench reward: the labels were not accepted\n");
            return -EPROTO;
        }
    }
    return 0;
}

static uint64_t s_updates(client_t *c)
{
    Agora__V1__RewardStatsRequest st = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    st.model = "default";
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &st;
    Agora__V1__RewardReply *r = s_call(c, &req);
    uint64_t u = 0;
    if (r && r->body_case == AGORA__V1__REWARD_REPLY__BODY_STATS && r->stats->n_models == 1)
        u = r->stats->models[0]->updates;
    if (r)
        agora__v1__reward_reply__free_unpacked(r, NULL);
    return u;
}

static void s_record(client_t *c, int64_t ns)
{
    if (c->n_lat == c->cap_lat) {
        size_t cap = c->cap_lat ? c->cap_lat * 2 : 4096;
        uint32_t *v = realloc(c->lat_ns, cap * sizeof *v);
        if (!v)
            return;
        c->lat_ns = v;
        c->cap_lat = cap;
    }
    c->lat_ns[c->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/*
 * The pipelined load. Replies that arrive between the first one after the
 * warm-up and the end count; after the end nothing new is sent and the
 * requests in flight are drained. Returns the measured seconds, or -1.
 */
static double s_run(client_t *c, const opts_t *o)
{
    uint64_t seq = 0;
    for (int s = 0; s < o->window; s++)
        if (s_send_score(c, o, s, seq++) < 0)
            return -1;
    const int64_t from = ag_now_ns() + (int64_t)(o->warmup * 1e9);
    const int64_t end = from + (int64_t)(o->seconds * 1e9);
    int64_t t0 = 0;
    for (int in_flight = o->window; in_flight > 0; in_flight--) {
        Agora__V1__RewardReply *r = s_recv(c, TIMEOUT_MS);
        if (!r) {
            fprintf(stderr, "agora-bench reward: the server stopped answering\n");
            return -1;
        }
        const int64_t t = ag_now_ns();
        const int slot = (int)(r->request_id & 0xff);
        const bool ours = slot < o->window && r->request_id == c->sent_id[slot];
        const bool good = ours && r->body_case == AGORA__V1__REWARD_REPLY__BODY_SCORE &&
                          r->score->n_scores == (size_t)o->batch;
        if (!good && c->errors++ < 3)
            fprintf(stderr, "agora-bench reward: unexpected reply (%s)\n",
                    r->error && r->error->message ? r->error->message : "no error message");
        if (good && t >= from && t <= end) {
            if (!t0)
                t0 = t;
            c->requests++;
            c->scores += r->score->n_scores;
            s_record(c, t - c->sent_ns[slot]);
        }
        agora__v1__reward_reply__free_unpacked(r, NULL);
        if (ours && t < end) {
            if (s_send_score(c, o, slot, seq++) < 0)
                return -1;
            in_flight++;
        }
    }
    return t0 && end > t0 ? (double)(end - t0) / 1e9 : -1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double s_pct_ms(const uint32_t *v, size_t n, double q)
{
    return n ? v[(size_t)(q * (double)(n - 1) + 0.5)] / 1e6 : 0;
}

/* ------------------------------------------------------- the service thread */

typedef struct {
    uv_loop_t loop;
    uv_async_t stop;
    ag_reward_service_t *svc;
} server_t;

static void s_on_stop(uv_async_t *a)
{
    server_t *sv = a->data;
    ag_reward_service_stop(sv->svc);
    uv_close((uv_handle_t *)a, NULL);
}

static void s_loop_thread(void *arg)
{
    server_t *sv = arg;
    uv_run(&sv->loop, UV_RUN_DEFAULT);
}

/* Parses the options into o; 0 to run, 1 after --help, 2 after an error. */
static int s_parse(int argc, char **argv, opts_t *o)
{
    ag_config_t *cfg;
    int rc = bench_options(
        "agora-bench reward", "[options]",
        "Runs the reward service in this process on a loopback port and keeps W Score requests "
        "of B debate-like transcripts (about 150 bytes) in flight; prints scores/s, requests/s "
        "and the per-request latency p50/p99 as one JSON line. The service's other settings are "
        "agora-reward's defaults.",
        s_options, sizeof s_options / sizeof s_options[0], 0, argc, argv, o, &cfg);
    ag_config_destroy(&cfg); /* the options are numbers only */
    return rc;
}

int bench_reward_main(int argc, char **argv)
{
    opts_t o;
    int rc = s_parse(argc, argv, &o);
    if (rc)
        return rc == 1 ? 0 : rc;

    char dir[] = "/tmp/agora-bench-reward-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("agora-bench reward: mkdtemp");
        return 1;
    }
    /* agora-reward's defaults, but for what the benchmark varies. */
    ag_reward_opts_t ro;
    ag_reward_opts_default(&ro);
    ro.bind = "tcp://127.0.0.1:*";
    ro.reuse = o.train ? 1e6 : ro.reuse;
    ro.holdout = 0;
    ro.threads = o.threads;
    ro.score_threads = o.score_threads;
    ro.out = dir;
    ro.model.d_model = o.d_model;
    ro.model.n_layers = o.layers;
    ro.model.n_heads = o.heads;
    ro.model.ctx = o.ctx;

    int status = 1;
    server_t *sv = calloc(1, sizeof *sv);
    client_t *c = calloc(1, sizeof *c);
    void *zctx = zmq_ctx_new();
    uv_thread_t thread;
    bool running = false;
    if (!sv || !c || !zctx)
        goto out;
    uv_loop_init(&sv->loop);
    sv->svc = ag_reward_service_create(&sv->loop, zctx, &ro);
    if (!sv->svc) {
        uv_run(&sv->loop, UV_RUN_DEFAULT);
        goto out;
    }
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "%s", ag_reward_service_endpoint(sv->svc));
    uv_async_init(&sv->loop, &sv->stop, s_on_stop);
    sv->stop.data = sv;
    if (uv_thread_create(&thread, s_loop_thread, sv) != 0) {
        s_on_stop(&sv->stop);
        uv_run(&sv->loop, UV_RUN_DEFAULT);
        goto out;
    }
    running = true;

    ag_rng_t r;
    ag_rng_seed(&r, 7);
    size_t bytes = 0;
    for (int i = 0; i < POOL; i++) {
        s_transcript(&r, c->pool[i], sizeof c->pool[i]);
        bytes += strlen(c->pool[i]);
    }
    c->sock = zmq_socket(zctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(c->sock, endpoint) < 0)
        goto out;
    if (o.train && s_send_labels(c) < 0)
        goto out;
    const uint64_t u0 = s_updates(c);
    const double t_u0 = (double)ag_now_ns();
    double elapsed = s_run(c, &o);
    const uint64_t u1 = s_updates(c);
    const double t_u = ((double)ag_now_ns() - t_u0) / 1e9;
    if (elapsed <= 0)
        goto out;
    qsort(c->lat_ns, c->n_lat, sizeof *c->lat_ns, cmp_u32);
    bench_report(json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:I, s:i, s:f, s:i, s:i, s:b, s:i, s:f, s:I, s:I, s:f, s:f, "
        "s:f, s:f, s:f, s:I}",
        "bench", "reward", "d_model", o.d_model, "layers", o.layers, "heads", o.heads, "ctx",
        o.ctx, "params", (json_int_t)ag_model_config_num_params(&ro.model), "batch", o.batch,
        "transcript_bytes", (double)bytes / POOL, "window", o.window, "score_threads",
        o.score_threads, "train", o.train, "train_threads", o.threads, "seconds", elapsed,
        "requests", (json_int_t)c->requests, "scores", (json_int_t)c->scores, "scores_per_s",
        (double)c->scores / elapsed, "requests_per_s", (double)c->requests / elapsed, "p50_ms",
        s_pct_ms(c->lat_ns, c->n_lat, 0.50), "p99_ms", s_pct_ms(c->lat_ns, c->n_lat, 0.99),
        "updates_per_s", (double)(u1 - u0) / t_u, "errors", (json_int_t)c->errors));
    fflush(stdout);
    status = c->errors ? 1 : 0;
out:
    if (c && c->sock)
        zmq_close(c->sock);
    if (running) {
        uv_async_send(&sv->stop);
        uv_thread_join(&thread);
    }
    if (sv && sv->svc) {
        if (ag_reward_service_exit_code(sv->svc) != 0)
            status = 1;
        ag_reward_service_destroy(&sv->svc);
    }
    if (sv)
        uv_loop_close(&sv->loop);
    if (zctx)
        zmq_ctx_term(zctx);
    if (c) {
        free(c->buf);
        free(c->lat_ns);
    }
    free(c);
    free(sv);
    char path[96];
    snprintf(path, sizeof path, "%s/default.ckpt", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/default.labels", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/reward-state.json", dir);
    unlink(path);
    rmdir(dir);
    return status;
}
