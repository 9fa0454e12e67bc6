/*
 * main.c - agora-reward: reads its run-file section [reward], then serves
 * the reward models until SIGINT/SIGTERM (or reward.max_seconds),
 * checkpointing first.
 * Clients name the server and the model in their own sections
 * (actor.reward, actor.reward_model, env.reward, eval.reward, ...). The
 * options are reward_options.c's table.
 */
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "reward_options.h"
#include "reward_service.h"

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-reward", "[options]",
        "Hosts trajectory-level reward models: scores whole transcripts (Score), learns online "
        "from outcome and preference labels (Label) and reports held-out accuracy (Stats) over "
        "agora's reward protocol v1 (see reward_server/README.md and docs/protocol.md).",
        ag_reward_options, ag_reward_n_options, 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    ag_reward_opts_t o;
    ag_reward_opts_default(&o);
    if (ag_config_apply(cfg, &o) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    o.signals = true;

    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    ag_reward_service_t *s = ag_reward_service_create(&loop, zctx, &o);
    ag_config_destroy(&cfg);
    if (!s) {
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        zmq_ctx_term(zctx);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = ag_reward_service_exit_code(s);
    ag_reward_service_destroy(&s);
    uv_loop_close(&loop);
    zmq_ctx_term(zctx);
    ag_info("reward", "stopped");
    return rc;
}
