/*
 * main.c - agora-reward: reads its run-file section [reward], then serves
 * the reward models until SIGINT/SIGTERM (or reward.max_seconds),
 * checkpointing first.
 * Clients name the server and the model in their own sections
 * (actor.reward, actor.reward_model, env.reward, eval.reward, ...). The
 * options are reward_options.c's table, plus the rows of a server that
 * joins a job: with --join tcp://LEARNER:5582 it registers with the learner
 * (common/net/join.h), heartbeats, and deregisters when a signal stops it.
 */
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "join.h"
#include "log.h"
#include "reward_options.h"
#include "reward_service.h"
#include "signals.h"

/* The service's options and the process's own (the service's come first, so
 * the rows of reward_options.c keep their offsets). */
typedef struct reward_main_opts {
    ag_reward_opts_t service;
    const char *join, *advertise, *service_name;
} reward_main_opts_t;

static const ag_option_t s_join_rows[] = {
    AG_JOIN_OPTIONS(reward_main_opts_t, "reward", "reward server"),
};
#define N_JOIN_ROWS (sizeof s_join_rows / sizeof s_join_rows[0])

typedef struct app {
    ag_reward_service_t *service;
    ag_join_t *join;
    ag_signals_t *signals;
} app_t;

static void s_on_signal(void *arg, int signum)
{
    app_t *app = arg;
    ag_info("reward", "signal %d: stopping", signum);
    ag_join_leave(app->join);
    ag_reward_service_stop(app->service);
    ag_signals_destroy(&app->signals);
}

/* Registers the service with the learner at o->join, hosting its models. */
static ag_join_t *s_join(uv_loop_t *loop, void *zctx, const ag_reward_service_t *s,
                         const reward_main_opts_t *o)
{
    char models[AG_JOIN_HOSTS_MAX * (AG_JOIN_HOST_MAX + 1)];
    snprintf(models, sizeof models, "%s", o->service.models);
    const char *hosts[AG_JOIN_HOSTS_MAX];
    size_t n = 0;
    char *save = NULL;
    for (char *m = strtok_r(models, ", ", &save); m && n < AG_JOIN_HOSTS_MAX;
         m = strtok_r(NULL, ", ", &save))
        hosts[n++] = m;
    const ag_join_opts_t jo = {.learner = o->join,
                               .kind = AGORA__V1__SERVICE_KIND__SERVICE_REWARD,
                               .name = o->service_name,
                               .bound = ag_reward_service_endpoint(s),
                               .advertise = o->advertise,
                               .hosts = hosts,
                               .n_hosts = n};
    return ag_join_create(loop, zctx, &jo);
}

int main(int argc, char **argv)
{
    ag_option_t *rows = calloc(ag_reward_n_options + N_JOIN_ROWS, sizeof *rows);
    if (!rows)
        return 1;
    memcpy(rows, ag_reward_options, ag_reward_n_options * sizeof *rows);
    memcpy(rows + ag_reward_n_options, s_join_rows, sizeof s_join_rows);
    ag_config_t *cfg = ag_config_create(
        "agora-reward", "[options]",
        "Hosts trajectory-level reward models: scores whole transcripts (Score), learns online "
        "from outcome and preference labels (Label) and reports held-out accuracy (Stats) over "
        "agora's reward protocol v1 (see reward_server/README.md and docs/protocol.md).",
        rows, ag_reward_n_options + N_JOIN_ROWS, 0);
    if (!cfg) {
        free(rows);
        return 1;
    }
    int rc = ag_config_parse_args(cfg, argc, argv);
    reward_main_opts_t mo = {0};
    ag_reward_opts_default(&mo.service);
    if (rc != 0 || ag_config_apply(cfg, &mo) < 0) {
        ag_config_destroy(&cfg);
        free(rows);
        return rc > 0 ? 0 : 2;
    }
    ag_reward_opts_t *o = &mo.service;
    /* A server that joins handles the signals itself, to deregister first. */
    const bool joins = mo.join[0] != '\0';
    o->signals = !joins;

    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    app_t app = {0};
    app.service = ag_reward_service_create(&loop, zctx, o);
    bool join_failed = false;
    if (app.service && joins) {
        app.signals = ag_signals_create(&loop, s_on_signal, &app);
        app.join = s_join(&loop, zctx, app.service, &mo);
        join_failed = !app.signals || !app.join;
        if (join_failed)
            ag_reward_service_stop(app.service);
    }
    ag_config_destroy(&cfg);
    free(rows);
    if (!app.service) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        zmq_ctx_term(zctx);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = ag_reward_service_exit_code(app.service);
    if (join_failed)
        rc = 1;
    ag_join_destroy(&app.join);
    ag_signals_destroy(&app.signals);
    uv_run(&loop, UV_RUN_DEFAULT);
    ag_reward_service_destroy(&app.service);
    uv_loop_close(&loop);
    zmq_ctx_term(zctx);
    ag_info("reward", "stopped");
    return rc;
}
