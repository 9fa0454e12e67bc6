/*
 * rendezvous.c - one rendezvous at the learner, with real processes on
 * loopback: env and reward servers that --join appear in ListServices, go
 * after the TTL when killed -9 and at once when they deregister on SIGTERM;
 * an actor given nothing but --join trains, takes an env server that joins
 * while it runs, carries on when the one it used dies and through a learner
 * restart (--resume); --join to a dead endpoint retries with a log line and
 * obeys SIGTERM; an actor that cannot honour the run config (an unknown game,
 * a model too large to receive) exits 3; two learners on one directory; a
 * registration the learner cannot reach back is reported; bad registrations
 * and bytes get errors and the learner keeps serving; `agora join` adds an
 * actor and an env server that train, and stops them in order on SIGINT.
 *
 * usage: test_rendezvous agora-learner agora-env agora-reward agora-actor smoke.ini agora
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "codec.h"
#include "control.pb-c.h"
#include "harness.h"
#include "rpc.h"

extern char **environ;

#define TTL_S "3"
#define TTL_MS 3000

static const char *s_learner_exe, *s_env_exe, *s_reward_exe, *s_actor_exe, *s_runfile, *s_agora;
static char s_dir[512];

/* Every process a test started, so that a failed test leaves none behind. */
static struct proc *s_started[32];
static size_t s_n_started;

/* ---- processes ---- */

typedef struct proc {
    pid_t pid;
    char log[600];
    int status; /* once reaped: exit status, or -1 for a signal */
} proc_t;

static int s_spawn(proc_t *p, const char *name, char *const argv[])
{
    snprintf(p->log, sizeof p->log, "%s/%s.log", s_dir, name);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, p->log, O_WRONLY | O_CREAT | O_APPEND,
                                     0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    int e = posix_spawn(&p->pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    p->status = -2;
    if (!e && s_n_started < sizeof s_started / sizeof s_started[0])
        s_started[s_n_started++] = p;
    return e ? -e : 0;
}

/* Waits up to timeout_ms for p to exit; its status, or -2 if it still runs. */
static int s_wait(proc_t *p, int timeout_ms)
{
    const int64_t until = ag_now_ms() + timeout_ms;
    while (p->pid > 0) {
        int st;
        if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
            p->pid = 0;
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
            break;
        }
        if (ag_now_ms() >= until)
            return -2;
        harness_sleep_ms(20);
    }
    return p->status;
}

/* SIGTERM, then SIGKILL after timeout_ms. Returns the exit status. */
static int s_stop(proc_t *p, int timeout_ms)
{
    if (p->pid <= 0)
        return p->status;
    kill(p->pid, SIGTERM);
    if (s_wait(p, timeout_ms) == -2) {
        kill(p->pid, SIGKILL);
        s_wait(p, 5000);
        return -3;
    }
    return p->status;
}

static void s_kill9(proc_t *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        s_wait(p, 5000);
    }
}

static bool s_log_has(const proc_t *p, const char *text)
{
    size_t n;
    uint8_t *d = harness_read_file(p->log, &n);
    bool found = d && strstr((const char *)d, text);
    free(d);
    return found;
}

static void s_dump_log(const proc_t *p)
{
    size_t n;
    uint8_t *d = harness_read_file(p->log, &n);
    fprintf(stderr, "---- %s ----\n%s\n", p->log, d ? (const char *)d : "(none)");
    free(d);
}

/* ---- the learner and its servers ---- */

typedef struct learner {
    proc_t proc;
    char traj[64], weights[64], control[64], out[600];
} learner_t;

static void s_learner_endpoints(learner_t *l, const char *out)
{
    assert_int_equal(harness_free_endpoint(l->traj, sizeof l->traj), 0);
    assert_int_equal(harness_free_endpoint(l->weights, sizeof l->weights), 0);
    assert_int_equal(harness_free_endpoint(l->control, sizeof l->control), 0);
    snprintf(l->out, sizeof l->out, "%s/%s", s_dir, out);
}

/* Starts agora-learner on l's endpoints (resume: continue l->out); extra: more arguments. */
static void s_learner_start(learner_t *l, const char *name, bool resume, const char *const *extra)
{
    char *argv[64];
    int n = 0;
    const char *base[] = {s_learner_exe, "--config", s_runfile, "--learner.out", l->out,
                          "--trajectories", l->traj, "--weights", l->weights, "--control",
                          l->control, "--service-ttl", TTL_S, "--learner.min_actors", "1",
                          "--learner.max_seconds", "240", "--learner.max_updates", "0",
                          "--warmstart.demos", "0", "--learner.threads", "1"};
    for (size_t i = 0; i < sizeof base / sizeof base[0]; i++)
        argv[n++] = (char *)base[i];
    if (resume) {
        argv[n++] = "--resume";
        argv[n++] = l->out;
    }
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = (char *)extra[i];
    argv[n] = NULL;
    assert_int_equal(s_spawn(&l->proc, name, argv), 0);
}

static void s_env_start(proc_t *p, const char *name, const learner_t *l, char *endpoint,
                        size_t cap)
{
    assert_int_equal(harness_free_endpoint(endpoint, cap), 0);
    char *argv[] = {(char *)s_env_exe, "--bind", endpoint, "--join", (char *)l->control,
                    "--service-name", (char *)name, NULL};
    assert_int_equal(s_spawn(p, name, argv), 0);
}

static void s_actor_start(proc_t *p, const char *name, const char *join)
{
    char metrics[700];
    snprintf(metrics, sizeof metrics, "%s/%s.jsonl", s_dir, name);
    char *argv[] = {(char *)s_actor_exe, "--join",          (char *)join, "--slots", "8",
                    "--join-poll-ms",    "500",             "--id",       (char *)name,
                    "--log-interval-s",  "1",               "--metrics",  metrics,   NULL};
    assert_int_equal(s_spawn(p, name, argv), 0);
}

/* Episodes the actor called name has played to the end, by its last metrics record. */
static double s_episodes(const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s.jsonl", s_dir, name);
    size_t n;
    uint8_t *d = harness_read_file(path, &n);
    double v = -1;
    if (d && n > 1) {
        d[n - 1] = '\0'; /* the last line's newline */
        char *last = strrchr((char *)d, '\n');
        harness_json_num(last ? last + 1 : (char *)d, "episodes", &v);
    }
    free(d);
    return v;
}

/* Waits until the actor has played at least `at_least` episodes; the count. */
static double s_until_episodes(const char *name, double at_least, int timeout_ms)
{
    const int64_t t0 = ag_now_ms();
    double v = s_episodes(name);
    while (v < at_least && ag_now_ms() - t0 < timeout_ms) {
        harness_sleep_ms(250);
        v = s_episodes(name);
    }
    return v;
}

/* ---- control requests ---- */

typedef struct call {
    uv_loop_t loop;
    ag_rpc_client_t *c;
    Agora__V1__ControlReply *reply;
    bool done;
} call_t;

static void s_on_reply(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                       size_t extra_len)
{
    call_t *c = arg;
    if (status == 0)
        c->reply = (Agora__V1__ControlReply *)ag_rpc_client_take_reply(c->c);
    c->done = true;
}

/* One request to the control endpoint; the reply (free with ag_codec_free) or NULL. */
static Agora__V1__ControlReply *s_ctl(const char *endpoint, Agora__V1__ControlRequest *req)
{
    call_t c = {0};
    uv_loop_init(&c.loop);
    void *zctx = zmq_ctx_new();
    const ag_rpc_client_opts_t ro = {.timeout_ms = 2000, .attempts = 1, .max_reply = 1 << 20};
    c.c = ag_rpc_client_create(&c.loop, zctx, endpoint, &agora__v1__control_reply__descriptor,
                               &ro);
    if (c.c && ag_rpc_call(c.c, &req->base, s_on_reply, &c) == 0)
        while (!c.done)
            uv_run(&c.loop, UV_RUN_ONCE);
    ag_rpc_client_destroy(&c.c);
    uv_run(&c.loop, UV_RUN_DEFAULT);
    uv_loop_close(&c.loop);
    zmq_ctx_term(zctx);
    return c.reply;
}

static Agora__V1__ControlReply *s_list(const char *endpoint, Agora__V1__ServiceKind kind)
{
    Agora__V1__ListServicesRequest lq = AGORA__V1__LIST_SERVICES_REQUEST__INIT;
    lq.kind = kind;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_LIST_SERVICES;
    req.list_services = &lq;
    return s_ctl(endpoint, &req);
}

/* The entry called name in the learner's list, copied to *out; false when absent. */
static bool s_listed(const char *control, const char *name, Agora__V1__ProbeState *probe,
                     char *hosts, size_t cap)
{
    Agora__V1__ControlReply *rep = s_list(control, AGORA__V1__SERVICE_KIND__SERVICE_ANY);
    bool found = false;
    if (rep && rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_LIST_SERVICES)
        for (size_t i = 0; i < rep->list_services->n_services && !found; i++) {
            const Agora__V1__ServiceEntry *e = rep->list_services->services[i];
            if (strcmp(e->name, name))
                continue;
            found = true;
            if (probe)
                *probe = e->probe;
            if (hosts) {
                hosts[0] = '\0';
                for (size_t k = 0; k < e->n_hosts; k++)
                    snprintf(hosts + strlen(hosts), cap - strlen(hosts), "%s%s", k ? "," : "",
                             e->hosts[k]);
            }
        }
    if (rep)
        ag_codec_free(&rep->base);
    return found;
}

/* Polls until name is listed (want) or not (!want); the milliseconds it took, or -1. */
static int64_t s_until_listed(const char *control, const char *name, bool want, int timeout_ms)
{
    const int64_t t0 = ag_now_ms();
    while (ag_now_ms() - t0 < timeout_ms) {
        if (s_listed(control, name, NULL, NULL, 0) == want)
            return ag_now_ms() - t0;
        harness_sleep_ms(100);
    }
    return -1;
}

/* The learner's count of accepted trajectories, or -1 when it does not answer. */
static int64_t s_trajectories(const char *control)
{
    Agora__V1__StatusRequest sq = AGORA__V1__STATUS_REQUEST__INIT;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
    req.status = &sq;
    Agora__V1__ControlReply *rep = s_ctl(control, &req);
    int64_t n = -1;
    if (rep && rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_STATUS)
        n = (int64_t)rep->status->trajectories;
    if (rep)
        ag_codec_free(&rep->base);
    return n;
}

static int64_t s_until_trajectories(const char *control, int64_t at_least, int timeout_ms)
{
    const int64_t t0 = ag_now_ms();
    int64_t n = -1;
    while (ag_now_ms() - t0 < timeout_ms) {
        n = s_trajectories(control);
        if (n >= at_least)
            return n;
        harness_sleep_ms(250);
    }
    return n;
}

static int s_setup(void **state)
{
    (void)state;
    return harness_mkdtemp(s_dir, sizeof s_dir, "agora-rendezvous");
}

static int s_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < s_n_started; i++)
        s_kill9(s_started[i]);
    s_n_started = 0;
    harness_rmtree(s_dir);
    return 0;
}

/* ---- tests ---- */

/* Env and reward servers register; killed -9, one goes after the TTL; SIGTERM deregisters at once. */
static void test_register_ttl_deregister(void **state)
{
    (void)state;
    learner_t l;
    s_learner_endpoints(&l, "reg");
    s_learner_start(&l, "reg-learner", false, NULL);
    proc_t env, rew;
    char env_ep[64], rew_ep[64], rew_out[700];
    s_env_start(&env, "reg-env", &l, env_ep, sizeof env_ep);
    assert_int_equal(harness_free_endpoint(rew_ep, sizeof rew_ep), 0);
    snprintf(rew_out, sizeof rew_out, "%s/reward", s_dir);
    char *rargv[] = {(char *)s_reward_exe, "--bind", rew_ep, "--join", l.control,
                     "--service-name", "reg-reward", "--reward.out", rew_out, "--models",
                     "judge,critic", NULL};
    assert_int_equal(s_spawn(&rew, "reg-reward", rargv), 0);

    assert_true(s_until_listed(l.control, "reg-env", true, 20000) >= 0);
    assert_true(s_until_listed(l.control, "reg-reward", true, 20000) >= 0);
    /* The learner probed both: each answered. */
    Agora__V1__ProbeState probe = AGORA__V1__PROBE_STATE__PROBE_PENDING;
    char hosts[512];
    for (int i = 0; i < 50 && probe != AGORA__V1__PROBE_STATE__PROBE_OK; i++, harness_sleep_ms(100))
        assert_true(s_listed(l.control, "reg-env", &probe, hosts, sizeof hosts));
    assert_int_equal(probe, AGORA__V1__PROBE_STATE__PROBE_OK);
    assert_non_null(strstr(hosts, "debate"));
    assert_non_null(strstr(hosts, "critique"));
    probe = AGORA__V1__PROBE_STATE__PROBE_PENDING;
    for (int i = 0; i < 50 && probe != AGORA__V1__PROBE_STATE__PROBE_OK; i++, harness_sleep_ms(100))
        assert_true(s_listed(l.control, "reg-reward", &probe, hosts, sizeof hosts));
    assert_int_equal(probe, AGORA__V1__PROBE_STATE__PROBE_OK);
    assert_string_equal(hosts, "judge,critic");
    /* A kind filter lists only that kind. */
    Agora__V1__ControlReply *rep = s_list(l.control, AGORA__V1__SERVICE_KIND__SERVICE_REWARD);
    assert_non_null(rep);
    assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_LIST_SERVICES);
    assert_int_equal(rep->list_services->n_services, 1);
    assert_int_equal(rep->list_services->ttl_ms, TTL_MS);
    ag_codec_free(&rep->base);

    /* killed -9: still listed for a while (no heartbeat yet missed), gone after the TTL */
    s_kill9(&env);
    const int64_t gone = s_until_listed(l.control, "reg-env", false, 3 * TTL_MS);
    fprintf(stderr, "env server killed -9: dropped after %lld ms (TTL %d ms)\n", (long long)gone,
            TTL_MS);
    assert_true(gone >= TTL_MS / 3);
    assert_true(gone >= 0 && gone <= TTL_MS * 2);
    assert_true(s_log_has(&l.proc, "sent no heartbeat"));

    /* SIGTERM: deregistered well before the TTL */
    const int64_t t0 = ag_now_ms();
    kill(rew.pid, SIGTERM);
    const int64_t left = s_until_listed(l.control, "reg-reward", false, 3 * TTL_MS);
    fprintf(stderr, "reward server stopped: gone after %lld ms\n", (long long)(ag_now_ms() - t0));
    assert_true(left >= 0 && ag_now_ms() - t0 < TTL_MS / 2 + 500);
    assert_int_equal(s_wait(&rew, 30000), 0);
    assert_true(s_log_has(&rew, "deregistered"));
    assert_int_equal(s_stop(&l.proc, 30000), 0);
}

/*
 * An actor given only --join trains; an env server that joins gets episodes
 * (the first one is then killed -9 and trajectories keep coming); the learner
 * restarts with --resume and the actor and the server carry on.
 */
static void test_actor_joins_follows_restarts(void **state)
{
    (void)state;
    learner_t l;
    s_learner_endpoints(&l, "run");
    s_learner_start(&l, "run-learner", false, NULL);
    proc_t env_a, env_b, actor;
    char ep_a[64], ep_b[64];
    s_env_start(&env_a, "run-env-a", &l, ep_a, sizeof ep_a);
    s_actor_start(&actor, "run-actor", l.control);
    int64_t n = s_until_trajectories(l.control, 16, 90000);
    if (n < 16) {
        s_dump_log(&actor);
        s_dump_log(&l.proc);
    }
    assert_true(n >= 16);
    assert_true(s_log_has(&actor, "joined the job at"));

    /* A second env server joins; the first dies: the actor plays on the second. */
    s_env_start(&env_b, "run-env-b", &l, ep_b, sizeof ep_b);
    assert_true(s_until_listed(l.control, "run-env-b", true, 20000) >= 0);
    const int64_t t0 = ag_now_ms();
    while (!s_log_has(&actor, ep_b) && ag_now_ms() - t0 < 10000)
        harness_sleep_ms(100);
    assert_true(s_log_has(&actor, ep_b)); /* the actor took it ("env server ... joined") */
    s_kill9(&env_a);
    assert_true(s_until_listed(l.control, "run-env-a", false, 3 * TTL_MS) >= 0);
    /* Episodes in play on A end by their deadline (5 s); from then on only B plays. */
    harness_sleep_ms(6000);
    const double played = s_episodes("run-actor");
    assert_true(s_until_episodes("run-actor", played + 16, 60000) >= played + 16);
    const int64_t before = s_trajectories(l.control);
    n = s_until_trajectories(l.control, before + 16, 90000);
    if (n < before + 16)
        s_dump_log(&actor);
    assert_true(n >= before + 16);
    assert_true(s_log_has(&actor, "left"));

    /* The learner restarts on the same endpoints from its run directory. */
    assert_int_equal(s_stop(&l.proc, 60000), 0);
    s_learner_start(&l, "run-learner-2", true, NULL);
    assert_true(s_until_listed(l.control, "run-env-b", true, 20000) >= 0);
    const int64_t resumed = s_until_trajectories(l.control, 0, 20000);
    assert_true(resumed >= 0);
    const double at_restart = s_episodes("run-actor");
    assert_true(s_until_episodes("run-actor", at_restart + 16, 60000) >= at_restart + 16);
    n = s_until_trajectories(l.control, resumed + 16, 90000);
    if (n < resumed + 16) {
        s_dump_log(&actor);
        s_dump_log(&l.proc);
    }
    assert_true(n >= resumed + 16);

    assert_int_equal(s_stop(&actor, 30000), 0);
    assert_int_equal(s_stop(&env_b, 30000), 0);
    assert_int_equal(s_stop(&l.proc, 60000), 0);
}

/* --join to an endpoint nobody serves: retried with a log line, a clean exit on SIGTERM. */
static void test_join_dead_endpoint(void **state)
{
    (void)state;
    char dead[64];
    assert_int_equal(harness_free_endpoint(dead, sizeof dead), 0);
    proc_t actor;
    s_actor_start(&actor, "dead-actor", dead);
    const int64_t t0 = ag_now_ms();
    while (!s_log_has(&actor, "does not answer RunConfig (attempt 2)") &&
           ag_now_ms() - t0 < 20000)
        harness_sleep_ms(100);
    assert_true(s_log_has(&actor, "does not answer RunConfig (attempt 2)"));
    assert_true(s_log_has(&actor, dead));
    assert_int_equal(s_wait(&actor, 0), -2); /* still waiting, not crashed */
    assert_int_equal(s_stop(&actor, 10000), 0);
}

/* A game no registered env server hosts: the actor exits 3 saying so. */
static void test_unknown_game_is_fatal(void **state)
{
    (void)state;
    learner_t l;
    s_learner_endpoints(&l, "game");
    const char *extra[] = {"--game", "nosuchgame", NULL};
    s_learner_start(&l, "game-learner", false, extra);
    proc_t env, actor;
    char ep[64];
    s_env_start(&env, "game-env", &l, ep, sizeof ep);
    assert_true(s_until_listed(l.control, "game-env", true, 20000) >= 0);
    s_actor_start(&actor, "game-actor", l.control);
    assert_int_equal(s_wait(&actor, 60000), 3);
    assert_true(s_log_has(&actor, "hosts game \"nosuchgame\""));
    assert_true(s_log_has(&actor, "exit status 3"));
    assert_int_equal(s_stop(&env, 30000), 0);
    assert_int_equal(s_stop(&l.proc, 30000), 0);
}

/* A scripted learner whose run config asks for a model whose weights (~1.6 GB) are
 * over the 1 GiB a weights message may carry, though a valid shape. */
typedef struct fake {
    uv_loop_t loop;
    ag_rpc_server_t *srv;
    int run_configs;
} fake_t;

static void s_fake_handle(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer, const uint8_t *payload,
                          size_t len, void *arg)
{
    fake_t *f = arg;
    char why[256];
    const ag_limits_t lim = {.max_string = 256, .max_repeated = 32};
    Agora__V1__ControlRequest *req = (Agora__V1__ControlRequest *)ag_rpc_decode_request(
        srv, peer, payload, len, &agora__v1__control_request__descriptor,
        &agora__v1__control_reply__descriptor, &lim, why, sizeof why);
    if (!req)
        return;
    Agora__V1__ModelConfig mc = AGORA__V1__MODEL_CONFIG__INIT;
    mc.vocab_size = 264;
    mc.d_model = 4096;
    mc.n_layers = 2;
    mc.n_heads = 8;
    mc.context = 256;
    mc.mlp_ratio = 4;
    Agora__V1__RunConfigReply rc = AGORA__V1__RUN_CONFIG_REPLY__INIT;
    rc.run_file = "[game]\nname = debate\n";
    rc.game = "debate";
    rc.model = &mc;
    rc.trajectories = "tcp://127.0.0.1:9";
    rc.weights = "tcp://127.0.0.1:9";
    rc.control = "tcp://127.0.0.1:9";
    Agora__V1__ControlReply rep = AGORA__V1__CONTROL_REPLY__INIT;
    rep.protocol_version = AG_PROTOCOL_VERSION;
    rep.request_id = req->request_id;
    rep.body_case = AGORA__V1__CONTROL_REPLY__BODY_RUN_CONFIG;
    rep.run_config = &rc;
    f->run_configs += req->body_case == AGORA__V1__CONTROL_REQUEST__BODY_RUN_CONFIG;
    ag_rpc_reply_msg(srv, peer, &rep.base);
    ag_codec_free(&req->base);
}


static void test_model_too_large_is_fatal(void **state)
{
    (void)state;
    fake_t f = {0};
    char ep[64];
    assert_int_equal(harness_free_endpoint(ep, sizeof ep), 0);
    uv_loop_init(&f.loop);
    void *zctx = zmq_ctx_new();
    const ag_zsock_opts_t zo = {.maxmsgsize = 1 << 20};
    f.srv = ag_rpc_server_create(&f.loop, zctx, ep, &zo, s_fake_handle, &f);
    assert_non_null(f.srv);
    char *argv[] = {(char *)s_actor_exe, "--join", ep, NULL};
    proc_t actor;
    assert_int_equal(s_spawn(&actor, "big-actor", argv), 0);
    const int64_t t0 = ag_now_ms();
    while (s_wait(&actor, 0) == -2 && ag_now_ms() - t0 < 30000) {
        uv_run(&f.loop, UV_RUN_NOWAIT);
        harness_sleep_ms(1);
    }
    assert_int_equal(s_wait(&actor, 0), 3);
    assert_int_equal(f.run_configs, 1);
    assert_true(s_log_has(&actor, "more than the 1 GiB a weights message may carry"));
    ag_rpc_server_destroy(&f.srv);
    uv_run(&f.loop, UV_RUN_DEFAULT);
    uv_loop_close(&f.loop);
    zmq_ctx_term(zctx);
}

/* Two learners on one run directory: the second refuses to start. */
static void test_two_learners_one_directory(void **state)
{
    (void)state;
    learner_t a, b;
    s_learner_endpoints(&a, "shared");
    s_learner_endpoints(&b, "shared");
    s_learner_start(&a, "shared-learner-a", false, NULL);
    assert_true(s_until_trajectories(a.control, 0, 20000) >= 0); /* a is up */
    s_learner_start(&b, "shared-learner-b", false, NULL);
    assert_int_equal(s_wait(&b.proc, 20000), 1);
    assert_true(s_log_has(&b.proc, "is in use by another learner"));
    assert_true(s_trajectories(a.control) >= 0); /* the first one is untouched */
    assert_int_equal(s_stop(&a.proc, 30000), 0);
}

static Agora__V1__ErrorCode s_register(const char *control, Agora__V1__ServiceKind kind,
                                       const char *name, const char *endpoint, char **hosts,
                                       size_t n_hosts)
{
    Agora__V1__RegisterRequest rr = AGORA__V1__REGISTER_REQUEST__INIT;
    rr.kind = kind;
    rr.name = (char *)name;
    rr.endpoint = (char *)endpoint;
    rr.hosts = hosts;
    rr.n_hosts = n_hosts;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_REGISTER_SERVICE;
    req.register_service = &rr;
    Agora__V1__ControlReply *rep = s_ctl(control, &req);
    Agora__V1__ErrorCode code = AGORA__V1__ERROR_CODE__ERROR_UNSPECIFIED;
    if (!rep)
        return (Agora__V1__ErrorCode)-1;
    if (rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_ERROR)
        code = rep->error->code;
    else
        assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_REGISTER_SERVICE);
    ag_codec_free(&rep->base);
    return code;
}

/* Sends raw frames on a DEALER and returns the error code of the reply (-1: none). */
static int s_raw(const char *control, const void *bytes, size_t len)
{
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, timeout = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    zmq_connect(s, control);
    zmq_send(s, bytes, len, 0);
    uint8_t buf[4096];
    int n = zmq_recv(s, buf, sizeof buf, 0), code = -1;
    if (n > 0) {
        Agora__V1__ControlReply *rep =
            agora__v1__control_reply__unpack(NULL, (size_t)n, buf);
        if (rep && rep->body_case == AGORA__V1__CONTROL_REPLY__BODY_ERROR)
            code = rep->error->code;
        if (rep)
            agora__v1__control_reply__free_unpacked(rep, NULL);
    }
    zmq_close(s);
    zmq_ctx_term(ctx);
    return code;
}

/* A registration the learner cannot reach back is kept and reported; bad ones are refused. */
static void test_unreachable_and_hostile(void **state)
{
    (void)state;
    learner_t l;
    s_learner_endpoints(&l, "hostile");
    s_learner_start(&l, "hostile-learner", false, NULL);
    assert_true(s_until_trajectories(l.control, 0, 20000) >= 0);
    const Agora__V1__ServiceKind env = AGORA__V1__SERVICE_KIND__SERVICE_ENV;
    const int bad = AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST;

    char nobody[64];
    assert_int_equal(harness_free_endpoint(nobody, sizeof nobody), 0);
    char *debate[] = {"debate"};
    assert_int_equal(s_register(l.control, env, "ghost", nobody, debate, 1), 0);
    Agora__V1__ProbeState probe = AGORA__V1__PROBE_STATE__PROBE_PENDING;
    for (int i = 0; i < 60 && probe == AGORA__V1__PROBE_STATE__PROBE_PENDING; i++) {
        harness_sleep_ms(100);
        assert_true(s_listed(l.control, "ghost", &probe, NULL, 0));
    }
    assert_int_equal(probe, AGORA__V1__PROBE_STATE__PROBE_FAILED);
    assert_true(s_log_has(&l.proc, "does not answer from here"));

    /* Each broken rule of a registration is ERROR_BAD_REQUEST. */
    char long_name[130], long_host[66], *many[33], *long_hosts[] = {long_host},
                                                    *empty_host[] = {""};
    memset(long_name, 'n', 129);
    long_name[129] = '\0';
    memset(long_host, 'h', 65);
    long_host[65] = '\0';
    for (int i = 0; i < 33; i++)
        many[i] = "debate";
    assert_int_equal(s_register(l.control, 0, "a", nobody, NULL, 0), bad);
    assert_int_equal(s_register(l.control, 9, "a", nobody, NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "", nobody, NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "two words", nobody, NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, long_name, nobody, NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", "tcp://*:5570", NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", "tcp://0.0.0.0:5570", NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", "tcp://host:port", NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", "http://host:80", NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", "", NULL, 0), bad);
    assert_int_equal(s_register(l.control, env, "a", nobody, many, 33), bad);
    assert_int_equal(s_register(l.control, env, "a", nobody, long_hosts, 1), bad);
    assert_int_equal(s_register(l.control, env, "a", nobody, empty_host, 1), bad);
    /* at the limits: accepted */
    long_name[128] = '\0';
    long_host[64] = '\0';
    assert_int_equal(s_register(l.control, env, long_name, nobody, many, 32), 0);
    assert_int_equal(s_register(l.control, env, "b", nobody, long_hosts, 1), 0);
    assert_false(s_listed(l.control, "a", NULL, NULL, 0));

    /* Deregister and ListServices with a bad kind */
    Agora__V1__DeregisterRequest dq = AGORA__V1__DEREGISTER_REQUEST__INIT;
    dq.name = "ghost";
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_DEREGISTER_SERVICE;
    req.deregister_service = &dq;
    Agora__V1__ControlReply *rep = s_ctl(l.control, &req);
    assert_non_null(rep);
    assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_ERROR);
    assert_int_equal(rep->error->code, bad);
    ag_codec_free(&rep->base);
    rep = s_list(l.control, (Agora__V1__ServiceKind)5);
    assert_non_null(rep);
    assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_ERROR);
    assert_int_equal(rep->error->code, bad);
    ag_codec_free(&rep->base);
    /* a good Deregister removes it */
    dq.kind = env;
    rep = s_ctl(l.control, &req);
    assert_non_null(rep);
    assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_DEREGISTER_SERVICE);
    assert_true(rep->deregister_service->removed);
    ag_codec_free(&rep->base);
    assert_false(s_listed(l.control, "ghost", NULL, NULL, 0));

    /* Hostile bytes: a cut Register, a wrong wire type in it, junk */
    Agora__V1__RegisterRequest rr = AGORA__V1__REGISTER_REQUEST__INIT;
    rr.kind = env;
    rr.name = "cut";
    rr.endpoint = nobody;
    Agora__V1__ControlRequest full = AGORA__V1__CONTROL_REQUEST__INIT;
    full.protocol_version = 1;
    full.request_id = 7;
    full.body_case = AGORA__V1__CONTROL_REQUEST__BODY_REGISTER_SERVICE;
    full.register_service = &rr;
    uint8_t packed[512];
    const size_t plen = agora__v1__control_request__pack(&full, packed);
    for (size_t cut = 1; cut < plen; cut += 3)
        assert_int_equal(s_raw(l.control, packed, cut), bad);
    /* body 33 with a varint instead of a message */
    const uint8_t wrong_type[] = {0x08, 0x01, 0x10, 0x07, 0x88, 0x02, 0x01};
    assert_int_equal(s_raw(l.control, wrong_type, sizeof wrong_type), bad);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(s_raw(l.control, junk, sizeof junk), bad);
    /* ... and the learner still serves */
    assert_true(s_trajectories(l.control) >= 0);
    assert_true(s_listed(l.control, "b", NULL, NULL, 0));
    assert_int_equal(s_stop(&l.proc, 30000), 0);
}

/* `agora join`: a local actor and env server join, train, and stop in order on SIGINT. */
static void test_agora_join(void **state)
{
    (void)state;
    learner_t l;
    s_learner_endpoints(&l, "join");
    s_learner_start(&l, "join-learner", false, NULL);
    char port[64], dir[700], metrics[700];
    assert_int_equal(harness_free_endpoint(port, sizeof port), 0);
    snprintf(dir, sizeof dir, "%s/join", s_dir);
    snprintf(metrics, sizeof metrics, "%s/join-actor.jsonl", s_dir);
    char *argv[] = {(char *)s_agora, "join", l.control, "--actors", "1", "--env-servers", "1",
                    "--env-bind", "127.0.0.1", "--env-port", strrchr(port, ':') + 1,
                    "--advertise", "127.0.0.1", "--dir", dir, "--actor.slots", "8",
                    "--actor.metrics", metrics, "--env.service_name", "join-env", NULL};
    proc_t agora;
    assert_int_equal(s_spawn(&agora, "join-agora", argv), 0);
    assert_true(s_until_listed(l.control, "join-env", true, 20000) >= 0);
    const int64_t n = s_until_trajectories(l.control, 16, 90000);
    if (n < 16)
        s_dump_log(&agora);
    assert_true(n >= 16);
    kill(agora.pid, SIGINT);
    assert_int_equal(s_wait(&agora, 30000), 0);
    /* the env server deregistered as it stopped (long before the TTL would drop it) */
    assert_false(s_listed(l.control, "join-env", NULL, NULL, 0));
    assert_true(s_log_has(&agora, "stopping the actors, then the env servers"));
    assert_int_equal(s_stop(&l.proc, 30000), 0);
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr,
                "usage: %s agora-learner agora-env agora-reward agora-actor smoke.ini agora\n",
                argv[0]);
        return 2;
    }
    s_agora = argv[6];
    s_learner_exe = argv[1];
    s_env_exe = argv[2];
    s_reward_exe = argv[3];
    s_actor_exe = argv[4];
    s_runfile = argv[5];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_ttl_deregister, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unreachable_and_hostile, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_two_learners_one_directory, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_join_dead_endpoint, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_model_too_large_is_fatal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_game_is_fatal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_actor_joins_follows_restarts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_agora_join, s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
