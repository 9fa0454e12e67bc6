/*
 * main.c - agora-env: serves the debate and critique games (and any other
 * game in the registry) over the environment protocol until SIGINT/SIGTERM.
 * With --reward ENDPOINT it can also let a reward model of that agora-reward
 * judge debates (option judge=reward:NAME). With --join tcp://LEARNER:5582
 * it registers with the job's learner (common/net/join.h) under the
 * endpoint its peers reach it by (--advertise), heartbeats, and deregisters
 * when it stops on a signal.
 */
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "config.h"
#include "game.h"
#include "join.h"
#include "log.h"
#include "server.h"
#include "signals.h"

/* The server's options and the process's own: where it registers. */
typedef struct env_opts {
    ag_env_server_opts_t server;
    const char *join, *advertise, *service_name;
} env_opts_t;

#define OPT(f, ...) AG_OPT(env_opts_t, server.f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(bind, "env.bind", "bind", "tcp://*:5570", 1, 0,
        "endpoint to serve on (tcp://HOST:PORT, ipc://PATH)"),
    OPT(name, "env.name", "name", "agora-env", 0, 127, "server name reported in Hello"),
    OPT(episode_ttl_s, "env.episode_ttl_s", "episode-ttl", "300", 1, 86400 * 7,
        "evict episodes idle this many seconds"),
    OPT(max_episodes, "env.max_episodes", "max-episodes", "100000", 1, 100000000,
        "live episodes before Reset is refused"),
    OPT(max_message_bytes, "env.max_message_bytes", "max-message-bytes", "1048576", 1024,
        1L << 30, "largest request accepted; ZeroMQ drops a connection that sends more"),
    OPT(reward_endpoint, "env.reward", "reward", "", 0, 0,
        "reward server (agora-reward, e.g. tcp://127.0.0.1:5560) whose models judge debates "
        "reset with judge=reward:NAME; empty = none (such a Reset is refused)"),
    OPT(reward_timeout_ms, "env.reward_timeout_ms", "reward-timeout-ms", "2000", 10, 600000,
        "how long a debate's final Step waits for the reward judge before it is answered "
        "ERROR_OVERLOADED (the step is not applied and may be resent)"),
    AG_JOIN_OPTIONS(env_opts_t, "env", "server"),
};
#undef OPT

typedef struct app {
    uv_loop_t loop;
    ag_env_server_t *server;
    ag_signals_t *signals;
    ag_join_t *join;
} app_t;

static void s_on_signal(void *arg, int signum)
{
    app_t *app = arg;
    ag_info("env", "signal %d: shutting down", signum);
    ag_join_leave(app->join);
    ag_env_server_destroy(&app->server);
    ag_signals_destroy(&app->signals);
}

/* Registers the server with the learner at join, hosting every game of this build. */
static ag_join_t *s_join(app_t *app, void *zctx, const env_opts_t *o)
{
    size_t n_games;
    const ag_game_t *const *games = ag_game_list(&n_games);
    const char *hosts[AG_JOIN_HOSTS_MAX];
    size_t n = 0;
    for (size_t i = 0; i < n_games && n < AG_JOIN_HOSTS_MAX; i++)
        hosts[n++] = games[i]->name;
    const ag_join_opts_t jo = {.learner = o->join,
                               .kind = AGORA__V1__SERVICE_KIND__SERVICE_ENV,
                               .name = o->service_name,
                               .bound = ag_env_server_endpoint(app->server),
                               .advertise = o->advertise,
                               .hosts = hosts,
                               .n_hosts = n};
    return ag_join_create(&app->loop, zctx, &jo);
}

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-env", "[options]",
        "Serves stateful multi-turn games (debate, critique) over agora's environment "
        "protocol v1 (see docs/protocol.md and docs/games.md).",
        s_options, sizeof s_options / sizeof s_options[0], 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    env_opts_t eo;
    const ag_env_server_opts_t *opts = &eo.server;
    if (ag_config_apply(cfg, &eo) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    app_t app = {0};
    uv_loop_init(&app.loop);
    void *zctx = zmq_ctx_new();
    app.server = ag_env_server_create(&app.loop, zctx, opts);
    if (!app.server) {
        ag_error("env", "cannot serve on %s", opts->bind);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        zmq_ctx_term(zctx);
        ag_config_destroy(&cfg);
        return 1;
    }
    ag_info("env", "serving on %s", ag_env_server_endpoint(app.server));
    if (opts->reward_endpoint[0])
        ag_info("env", "reward judge: %s (deadline %u ms)", opts->reward_endpoint,
                opts->reward_timeout_ms);
    app.signals = ag_signals_create(&app.loop, s_on_signal, &app);
    if (eo.join[0] && !(app.join = s_join(&app, zctx, &eo))) {
        ag_env_server_destroy(&app.server);
        ag_signals_destroy(&app.signals);
        rc = 1;
    }
    uv_run(&app.loop, UV_RUN_DEFAULT);
    ag_join_destroy(&app.join);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    zmq_ctx_term(zctx);
    ag_config_destroy(&cfg);
    ag_info("env", "stopped");
    return rc;
}
