/*
 * main.c - agora-learner: reads its run-file sections ([learner], [model],
 * [game], [warmstart], [ppo]), then serves trajectories, weights and
 * control until it stops by itself (learner.max_updates,
 * learner.max_seconds) or on SIGINT/SIGTERM, checkpointing first. The
 * options are learner_options.c's table. The effective run file (the file
 * and the command-line overrides) is what joining actors fetch.
 */
#include <stdlib.h>
#include <zmq.h>

#include "config.h"
#include "kv.h"
#include "learner.h"
#include "learner_options.h"
#include "log.h"

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-learner", "[options]",
        "Trains the policy: supervised warm start on Demo transcripts (or a JSONL file), then "
        "PPO with GAE over each seat's own tokens on trajectories submitted by any number of "
        "actors; publishes every version, keeps a league, checkpoints atomically and writes "
        "one JSONL metrics record per update (see learner/README.md).",
        ag_learner_options, ag_learner_n_options, 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    if (ag_config_apply(cfg, &o) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    if (o.max_pending < o.batch_trajectories)
        o.max_pending = o.batch_trajectories;
    char demo_options[1024];
    if (ag_kv_merge(o.ws.options, ag_config_str(cfg, "warmstart.options"), demo_options,
                    sizeof demo_options) < 0) {
        ag_error("learner",
                 "game.options / warmstart.options: expected KEY=VALUE,KEY=VALUE, each key once");
        ag_config_destroy(&cfg);
        return 2;
    }
    o.ws.options = demo_options;

    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    /* What actors that join get: the run file with this learner's overrides. */
    char *run_text = ag_config_run_text(cfg);
    o.run_text = run_text;
    ag_learner_t *l = run_text ? ag_learner_create(&loop, zctx, &o) : NULL;
    free(run_text);
    ag_config_destroy(&cfg);
    if (!l) {
        uv_loop_close(&loop);
        zmq_ctx_term(zctx);
        return 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    rc = ag_learner_exit_code(l);
    ag_learner_destroy(&l);
    uv_loop_close(&loop);
    zmq_ctx_term(zctx);
    ag_info("learner", "stopped");
    return rc;
}
