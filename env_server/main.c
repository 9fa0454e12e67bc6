/*
 * main.c - agora-env: serves the debate and critique games (and any other
 * game in the registry) over the environment protocol until SIGINT/SIGTERM.
 * With --reward ENDPOINT it can also let a reward model of that agora-reward
 * judge debates (option judge=reward:NAME).
 */
#include <stdio.h>
#include <stdlib.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "server.h"
#include "signals.h"

#define OPT(f, ...) AG_OPT(ag_env_server_opts_t, f, __VA_ARGS__)
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
};
#undef OPT

typedef struct app {
    uv_loop_t loop;
    ag_env_server_t *server;
    ag_signals_t *signals;
} app_t;

static void s_on_signal(void *arg, int signum)
{
    app_t *app = arg;
    ag_info("env", "signal %d: shutting down", signum);
    ag_env_server_destroy(&app->server);
    ag_signals_destroy(&app->signals);
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
    ag_env_server_opts_t opts;
    if (ag_config_apply(cfg, &opts) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    app_t app = {0};
    uv_loop_init(&app.loop);
    void *zctx = zmq_ctx_new();
    app.server = ag_env_server_create(&app.loop, zctx, &opts);
    if (!app.server) {
        ag_error("env", "cannot serve on %s", opts.bind);
        uv_run(&app.loop, UV_RUN_DEFAULT);
        uv_loop_close(&app.loop);
        zmq_ctx_term(zctx);
        ag_config_destroy(&cfg);
        return 1;
    }
    ag_info("env", "serving on %s", ag_env_server_endpoint(app.server));
    if (opts.reward_endpoint[0])
        ag_info("env", "reward judge: %s (deadline %u ms)", opts.reward_endpoint,
                opts.reward_timeout_ms);
    app.signals = ag_signals_create(&app.loop, s_on_signal, &app);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    zmq_ctx_term(zctx);
    ag_config_destroy(&cfg);
    ag_info("env", "stopped");
    return 0;
}
