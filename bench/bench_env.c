/*
 * agora-bench env - step rate and round-trip latency of an environment server
 * over loopback TCP.
 *
 * One client keeps `window` debate episodes going at once, one request in
 * flight per episode, and plays both seats itself with valid moves read off
 * the observation text (the true chain of `task:` with its last digit set to
 * the `you argue:` answer; challenge step 1). Each episode's next request
 * goes out as soon as its reply has arrived (replies already queued are taken
 * first, then the new requests are sent back to back), so up to `window`
 * requests are always in flight: a pipelined, closed-loop load. A Step reply
 * counts as a step; Resets are counted separately. Latency is measured per request from
 * the send to its matching reply. After a warm-up, figures are collected for
 * `seconds` and printed as one JSON line.
 *
 * By default the benchmark starts its own agora-env (found next to
 * agora-bench in the build tree, or given by --server) on a free loopback
 * port; --endpoint measures a server that is already running.
 *
 * The client stays out of the way: requests are built on the stack and packed
 * into one reused buffer, latencies go into a preallocated array, and the hot
 * loop makes no poll() call while replies are queued.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "bench.h"
#include "debate_player.h"
#include "env_client.h"
#include "server_proc.h"

#define MAX_WINDOW 1024
#define SLOT_BITS 10 /* request_id = sequence << SLOT_BITS | slot */

/* What a slot sends next, decided when its reply arrives, sent after the drain. */
enum next { NEXT_NONE, NEXT_RESET, NEXT_STEP };

typedef struct {
    uint64_t episode;
    uint64_t request_id;
    int64_t sent_ns;
    bool open; /* the episode exists on the server */
    enum next next;
    uint32_t player;
    char move[AG_DEBATE_PLAYER_MOVE_CAP];
} slot_t;

typedef struct {
    ag_env_client_t *cl;
    const char *game;
    int window;
    slot_t slots[MAX_WINDOW];
    int ready[MAX_WINDOW]; /* slots with a request to send */
    int n_ready;
    uint64_t seq;
    uint64_t next_seed;
    bool measuring;
    uint64_t steps, resets, errors, stray;
    uint32_t *lat_ns; /* one per reply while measuring */
    size_t n_lat, cap_lat;
} bench_t;

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static int send_reset(bench_t *b, int s)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = (char *)b->game;
    reset.seed = b->next_seed++;
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = (++b->seq << SLOT_BITS) | (uint64_t)s;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    b->slots[s].request_id = req.request_id;
    b->slots[s].sent_ns = ag_now_ns();
    return ag_env_client_send(b->cl, &req);
}

static int send_step(bench_t *b, int s, uint32_t player, const char *action)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    step.episode_id = b->slots[s].episode;
    step.player = player;
    step.action = (char *)action;
    req.protocol_version = AG_ENV_PROTOCOL_VERSION;
    req.request_id = (++b->seq << SLOT_BITS) | (uint64_t)s;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &step;
    b->slots[s].request_id = req.request_id;
    b->slots[s].sent_ns = ag_now_ns();
    return ag_env_client_send(b->cl, &req);
}

static void record_latency(bench_t *b, int64_t ns)
{
    if (b->n_lat == b->cap_lat) {
        /* Doubling keeps reallocations to a handful over a whole run. */
        size_t cap = b->cap_lat * 2;
        uint32_t *lat = realloc(b->lat_ns, cap * sizeof *lat);
        if (!lat)
            return;
        b->lat_ns = lat;
        b->cap_lat = cap;
    }
    b->lat_ns[b->n_lat++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

/* Handles one reply and decides its episode's next request. */
static int on_reply(bench_t *b, Agora__V1__EnvReply *r, int64_t t)
{
    int s = (int)(r->request_id & ((1u << SLOT_BITS) - 1));
    if (s >= b->window || r->request_id != b->slots[s].request_id) {
        b->stray++;
        return 0;
    }
    slot_t *slot = &b->slots[s];
    if (b->measuring)
        record_latency(b, t - slot->sent_ns);
    slot->request_id = 0;

    const char *obs = NULL;
    bool done = false;
    switch (r->body_case) {
    case AGORA__V1__ENV_REPLY__BODY_RESET:
        b->resets += b->measuring;
        slot->episode = r->reset->episode_id;
        slot->open = true;
        obs = r->reset->observation;
        slot->player = r->reset->to_act;
        done = r->reset->terminated;
        break;
    case AGORA__V1__ENV_REPLY__BODY_STEP:
        b->steps += b->measuring;
        obs = r->step->observation;
        slot->player = r->step->to_act;
        done = r->step->terminated || r->step->truncated;
        break;
    default:
        /* An error: count it, abandon the episode and start another. */
        b->errors++;
        if (b->errors <= 3)
            fprintf(stderr, "agora-bench env: error reply %s: %s\n",
                    ag_error_name(ag_env_reply_error(r)),
                    r->error && r->error->message ? r->error->message : "");
        done = true;
        break;
    }
    b->ready[b->n_ready++] = s;
    if (done) {
        slot->open = false;
        slot->next = NEXT_RESET;
        return 0;
    }
    if (!ag_debate_player_move(obs ? obs : "", slot->move)) {
        fprintf(stderr, "agora-bench env: cannot read a move off the observation \"%.200s\"\n",
                obs ? obs : "");
        return -EPROTO;
    }
    slot->next = NEXT_STEP;
    return 0;
}

/* Sends the requests decided during a drain, back to back. */
static int flush_ready(bench_t *b)
{
    for (int i = 0; i < b->n_ready; i++) {
        int s = b->ready[i];
        slot_t *slot = &b->slots[s];
        int rc =
            slot->next == NEXT_RESET ? send_reset(b, s) : send_step(b, s, slot->player, slot->move);
        slot->next = NEXT_NONE;
        if (rc)
            return rc;
    }
    b->n_ready = 0;
    return 0;
}

/* Closes the episodes still open so a long-running server does not keep them until the TTL. */
static void close_open(bench_t *b)
{
    ag_env_client_set_retries(b->cl, 0);
    ag_env_client_set_timeout(b->cl, 500);
    for (int s = 0; s < b->window; s++) {
        if (!b->slots[s].open)
            continue;
        Agora__V1__EnvReply *r = NULL;
        if (!ag_env_client_close(b->cl, b->slots[s].episode, &r))
            agora__v1__env_reply__free_unpacked(r, NULL);
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static double percentile_us(const uint32_t *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

/* Runs the load for warmup + seconds; fills the counters. */
static int run(bench_t *b, double warmup, double seconds, double *elapsed, double *cpu)
{
    for (int s = 0; s < b->window; s++) {
        int rc = send_reset(b, s);
        if (rc)
            return rc;
    }
    int64_t start = ag_now_ns();
    int64_t measure_from = start + (int64_t)(warmup * 1e9);
    int64_t end = measure_from + (int64_t)(seconds * 1e9);
    double cpu0 = 0;
    int64_t t0 = start;
    for (;;) {
        Agora__V1__EnvReply *r = NULL;
        /*
         * Wait for one reply, take every other one already queued, then send
         * all the next requests back to back: one wake-up of ZeroMQ's I/O
         * thread per burst instead of one per request.
         */
        int rc = ag_env_client_recv(b->cl, b->n_ready ? 0 : 2000, &r, NULL);
        if (rc == -ETIMEDOUT && b->n_ready) {
            rc = flush_ready(b);
            if (rc)
                return rc;
            continue;
        }
        if (rc) {
            fprintf(stderr, "agora-bench env: %s\n",
                    rc == -ETIMEDOUT ? "the server stopped answering" : strerror(-rc));
            return rc;
        }
        int64_t t = ag_now_ns();
        if (!b->measuring && t >= measure_from) {
            b->measuring = true;
            t0 = t;
            cpu0 = cpu_seconds();
        }
        if (t >= end) {
            agora__v1__env_reply__free_unpacked(r, NULL);
            *elapsed = (t - t0) / 1e9;
            *cpu = cpu_seconds() - cpu0;
            break;
        }
        rc = on_reply(b, r, t);
        agora__v1__env_reply__free_unpacked(r, NULL);
        if (rc)
            return rc;
    }
    /* Let the requests still in flight come back before closing their episodes. */
    int in_flight = 0;
    for (int s = 0; s < b->window; s++)
        in_flight += b->slots[s].request_id != 0;
    for (; in_flight > 0; in_flight--) {
        Agora__V1__EnvReply *r = NULL;
        if (ag_env_client_recv(b->cl, 500, &r, NULL))
            break;
        int s = (int)(r->request_id & ((1u << SLOT_BITS) - 1));
        if (s < b->window && r->body_case == AGORA__V1__ENV_REPLY__BODY_RESET) {
            b->slots[s].episode = r->reset->episode_id;
            b->slots[s].open = true;
        } else if (s < b->window && r->body_case == AGORA__V1__ENV_REPLY__BODY_STEP &&
                   r->step->terminated) {
            b->slots[s].open = false;
        }
        agora__v1__env_reply__free_unpacked(r, NULL);
    }
    close_open(b);
    return 0;
}

/* agora-bench env's options ([bench_env] of a run file), filled from s_options. */
typedef struct {
    const char *endpoint, *server, *game;
    double seconds, warmup;
    int window;
} opts_t;

#define OPT(f, ...) AG_OPT(opts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(endpoint, "bench_env.endpoint", "endpoint", "", 0, 0,
        "measure the server at this endpoint (empty = start agora-env on a free loopback port "
        "and stop it afterwards)"),
    OPT(server, "bench_env.server", "server", "", 0, 0,
        "agora-env binary to start (empty = ../env_server/agora-env relative to this binary)"),
    OPT(seconds, "bench_env.seconds", "seconds", "5", 0.01, 3600, "measured duration (seconds)"),
    OPT(warmup, "bench_env.warmup", "warmup", "0.5", 0, 600, "unmeasured start (seconds)"),
    OPT(window, "bench_env.window", "window", "8", 1, MAX_WINDOW,
        "requests in flight, one per episode"),
    OPT(game, "bench_env.game", "game", "debate", 1, 0,
        "game to play (the built-in player knows debate only)"),
};
#undef OPT

/* ../env_server/agora-env relative to this executable, in the build tree. */
static int default_server(char *out, size_t len)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -errno;
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -ENOENT;
    *slash = 0;
    if ((size_t)snprintf(out, len, "%s/../env_server/agora-env", self) >= len)
        return -ENAMETOOLONG;
    return 0;
}

int bench_env_main(int argc, char **argv)
{
    opts_t o;
    ag_config_t *cfg;
    int rc =
        bench_options("agora-bench env", "[options]",
                      "Drives debate episodes over loopback TCP with pipelined requests from "
                      "one client (both seats played with valid moves) and prints steps/s "
                      "and round-trip latency p50/p99 as one JSON line.",
                      s_options, sizeof s_options / sizeof s_options[0], 0, argc, argv, &o, &cfg);
    if (rc == 0 && strcmp(o.game, "debate")) {
        fprintf(stderr, "agora-bench env: the built-in player only knows 'debate'\n");
        rc = 2;
    }
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc == 1 ? 0 : rc;
    }
    const char *endpoint = *o.endpoint ? o.endpoint : NULL;
    const char *server = *o.server ? o.server : NULL;
    const char *game = o.game;

    int status = 2;
    bench_t *b = NULL;
    ag_server_proc_t srv = {0};
    char server_path[PATH_MAX];
    if (!endpoint) {
        if (!server) {
            if (default_server(server_path, sizeof server_path)) {
                fprintf(stderr, "agora-bench env: cannot locate agora-env; use --server\n");
                goto out;
            }
            server = server_path;
        }
        if (ag_server_proc_start(&srv, server, NULL, 10000))
            goto out;
        endpoint = srv.endpoint;
    }

    status = 1;
    b = calloc(1, sizeof *b);
    if (!b)
        goto out;
    b->game = game;
    b->window = o.window;
    b->next_seed = 1;
    b->cap_lat = 1u << 20;
    b->lat_ns = malloc(b->cap_lat * sizeof *b->lat_ns);
    b->cl = ag_env_client_create(endpoint, 3000);
    if (!b->lat_ns || !b->cl)
        goto out;

    /* Hello first: an unreachable endpoint is a clear error, not a stalled run. */
    Agora__V1__EnvReply *hello = NULL;
    if (ag_env_client_hello(b->cl, "agora-bench", &hello)) {
        fprintf(stderr, "agora-bench env: no answer from %s\n", endpoint);
        status = 2;
        goto out;
    }
    agora__v1__env_reply__free_unpacked(hello, NULL);

    double elapsed = 0, cpu = 0;
    if (run(b, o.warmup, o.seconds, &elapsed, &cpu))
        goto out;
    qsort(b->lat_ns, b->n_lat, sizeof *b->lat_ns, cmp_u32);
    bench_report(json_pack(
        "{s:s, s:s, s:i, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:b}", "bench",
        "env", "game", game, "window", b->window, "seconds", elapsed, "steps", (json_int_t)b->steps,
        "resets", (json_int_t)b->resets, "errors", (json_int_t)b->errors, "steps_per_s",
        b->steps / elapsed, "resets_per_s", b->resets / elapsed, "requests_per_s",
        (b->steps + b->resets) / elapsed, "p50_us", percentile_us(b->lat_ns, b->n_lat, 0.50),
        "p99_us", percentile_us(b->lat_ns, b->n_lat, 0.99), "p999_us",
        percentile_us(b->lat_ns, b->n_lat, 0.999), "client_cpu", cpu / elapsed,
        "spawned_server", srv.pid != 0));
    fflush(stdout);
    status = b->errors || b->stray ? 1 : 0;
    if (b->stray)
        fprintf(stderr, "agora-bench env: %" PRIu64 " replies matched no request\n", b->stray);
out:
    if (b) {
        ag_env_client_destroy(&b->cl);
        free(b->lat_ns);
        free(b);
    }
    if (srv.pid) {
        int st = ag_server_proc_stop(&srv, 5000);
        if (st != 0) {
            fprintf(stderr, "agora-bench env: the server exited with %d on SIGTERM\n", st);
            if (!status)
                status = 1;
        }
    }
    ag_config_destroy(&cfg);
    return status;
}
