/*
 * main.c - agora-reward: reads its run-file section [reward], then serves
 * the reward models until SIGINT/SIGTERM (or reward.max_seconds),
 * checkpointing first.
 * Clients name the server and the model in their own sections
 * (actor.reward, actor.reward_model, env.reward, eval.reward, ...).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "log.h"
#include "reward_service.h"

static const ag_option_t s_options[] = {
    {"reward.bind", "bind", "tcp://*:5560", "ROUTER endpoint to serve Score, Label and Stats on"},
    {"reward.models", "models", "default",
     "comma-separated names of the reward models to host (all of the same shape)"},
    {"reward.d_model", "d-model", "64", "model width"},
    {"reward.n_layers", "n-layers", "2", "transformer blocks"},
    {"reward.n_heads", "n-heads", "2", "attention heads (divide d_model)"},
    {"reward.ctx", "ctx", "256", "context: BOS + the last ctx-1 bytes of a transcript"},
    {"reward.mlp_ratio", "mlp-ratio", "4", "MLP width / d_model"},
    {"reward.lr", "lr", "3e-4", "AdamW learning rate (constant)"},
    {"reward.batch", "batch", "32", "labels per minibatch / optimizer step"},
    {"reward.buffer", "buffer", "65536",
     "labels kept for training per model (the oldest are dropped)"},
    {"reward.reuse", "reuse", "4",
     "each label is trained on about this many times, then training idles until new labels "
     "arrive (0 = never train)"},
    {"reward.holdout", "holdout", "0.1",
     "fraction of labels held out for evaluation (by a hash of their content)"},
    {"reward.threads", "threads", "1", "training compute threads per model (0 = all CPUs)"},
    {"reward.score_threads", "score-threads", "1",
     "compute threads of each model's serving copy (Score runs on the loop thread with them)"},
    {"reward.seed", "seed", "1", "seed of the initial weights and of the minibatch draws"},
    {"reward.checkpoint_interval_s", "checkpoint-interval", "60",
     "write NAME.ckpt and reward-state.json this often (seconds; 0 = only when stopping)"},
    {"reward.out", "out", "reward", "output directory: NAME.ckpt per model, reward-state.json"},
    {"reward.init", "init", "",
     "a policy checkpoint of the same shape every model not resumed starts from (e.g. the "
     "learner's reference.ckpt); training waits until the file exists"},
    {"reward.resume", "resume", "",
     "load DIR/NAME.ckpt for every model that has one, and DIR/reward-state.json"},
    {"reward.max_seconds", "max-seconds", "0",
     "stop (checkpointing first) after this many seconds (0 = serve until signalled)"},
};

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-reward", "[options]",
        "Hosts trajectory-level reward models: scores whole transcripts (Score), learns online "
        "from outcome and preference labels (Label) and reports held-out accuracy (Stats) over "
        "agora's reward protocol v1 (see reward_server/README.md and docs/protocol.md).",
        s_options, sizeof s_options / sizeof s_options[0], 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    long d, nl, nh, ctx, mr, batch, buffer, threads, sthreads, seed;
    double lr, reuse, holdout, ckpt, maxs;
    if (ag_config_long(cfg, "reward.d_model", 1, AG_MODEL_MAX_DIM, &d) < 0 ||
        ag_config_long(cfg, "reward.n_layers", 1, AG_MODEL_MAX_LAYERS, &nl) < 0 ||
        ag_config_long(cfg, "reward.n_heads", 1, AG_MODEL_MAX_DIM, &nh) < 0 ||
        ag_config_long(cfg, "reward.ctx", 2, AG_MODEL_MAX_CTX, &ctx) < 0 ||
        ag_config_long(cfg, "reward.mlp_ratio", 1, 64, &mr) < 0 ||
        ag_config_double(cfg, "reward.lr", 1e-12, 10, &lr) < 0 ||
        ag_config_long(cfg, "reward.batch", 1, 4096, &batch) < 0 ||
        ag_config_long(cfg, "reward.buffer", 1, 1L << 24, &buffer) < 0 ||
        ag_config_double(cfg, "reward.reuse", 0, 1e6, &reuse) < 0 ||
        ag_config_double(cfg, "reward.holdout", 0, 1, &holdout) < 0 ||
        ag_config_long(cfg, "reward.threads", 0, 256, &threads) < 0 ||
        ag_config_long(cfg, "reward.score_threads", 0, 256, &sthreads) < 0 ||
        ag_config_long(cfg, "reward.seed", 0, 0x7fffffffffffffffL, &seed) < 0 ||
        ag_config_double(cfg, "reward.checkpoint_interval_s", 0, 1e9, &ckpt) < 0 ||
        ag_config_double(cfg, "reward.max_seconds", 0, 1e9, &maxs) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    ag_reward_opts_t o = {
        .bind = ag_config_str(cfg, "reward.bind"),
        .models = ag_config_str(cfg, "reward.models"),
        .lr = lr,
        .batch = (int)batch,
        .buffer = buffer,
        .reuse = reuse,
        .holdout = holdout,
        .threads = (int)threads,
        .score_threads = (int)sthreads,
        .seed = (uint64_t)seed,
        .checkpoint_interval_s = ckpt,
        .out = ag_config_str(cfg, "reward.out"),
        .resume = ag_config_str(cfg, "reward.resume"),
        .init = ag_config_str(cfg, "reward.init"),
        .max_seconds = maxs,
        .signals = true,
    };
    ag_model_config_default(&o.model);
    o.model.d_model = (int)d;
    o.model.n_layers = (int)nl;
    o.model.n_heads = (int)nh;
    o.model.ctx = (int)ctx;
    o.model.mlp_ratio = (int)mr;

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
