/*
 * reward_options.c - agora-reward's option table and the defaults taken from
 * it (see reward_options.h).
 */
#include "reward_options.h"

#include <assert.h>
#include <string.h>

#include "model.h"

#define OPT(f, ...) AG_OPT(ag_reward_opts_t, f, __VA_ARGS__)
const ag_option_t ag_reward_options[] = {
    OPT(bind, "reward.bind", "bind", "tcp://*:5560", 1, 0,
        "ROUTER endpoint to serve Score, Label and Stats on"),
    OPT(models, "reward.models", "models", "default", 1, 0,
        "comma-separated names of the reward models to host (1..16, each 1..64 of letters, "
        "digits, '_', '-', '.'; all of the same shape)"),
    OPT(model.d_model, "reward.d_model", "d-model", "64", 1, AG_MODEL_MAX_DIM, "model width"),
    OPT(model.n_layers, "reward.n_layers", "n-layers", "2", 1, AG_MODEL_MAX_LAYERS,
        "transformer blocks"),
    OPT(model.n_heads, "reward.n_heads", "n-heads", "2", 1, AG_MODEL_MAX_DIM,
        "attention heads (divide d_model)"),
    OPT(model.ctx, "reward.ctx", "ctx", "256", 2, AG_MODEL_MAX_CTX,
        "context: BOS + the last ctx-1 bytes of a transcript"),
    OPT(model.mlp_ratio, "reward.mlp_ratio", "mlp-ratio", "4", 1, 64, "MLP width / d_model"),
    OPT(lr, "reward.lr", "lr", "3e-4", 1e-12, 10,
        "AdamW learning rate (constant; weight decay 0.01 on matrices, gradient-norm clip 1.0)"),
    OPT(batch, "reward.batch", "batch", "32", 1, 4096, "labels per minibatch / optimizer step"),
    OPT(buffer, "reward.buffer", "buffer", "65536", 1, 1L << 24,
        "labels kept for training per model (the oldest are dropped)"),
    OPT(reuse, "reward.reuse", "reuse", "4", 0, 1e6,
        "each label is trained on about this many times, then training idles until new labels "
        "arrive (0 = never train)"),
    OPT(holdout, "reward.holdout", "holdout", "0.1", 0, 1,
        "fraction of labels held out for evaluation (by a hash of their content)"),
    OPT(threads, "reward.threads", "threads", "1", 0, 256,
        "training compute threads per model (0 = all CPUs)"),
    OPT(score_threads, "reward.score_threads", "score-threads", "1", 0, 256,
        "compute threads of each model's serving copy (Score runs on the loop thread with them)"),
    OPT(seed, "reward.seed", "seed", "1", 0, 0,
        "seed of the initial weights (model i's derived from it and i) and of the minibatch "
        "draws"),
    OPT(checkpoint_interval_s, "reward.checkpoint_interval_s", "checkpoint-interval", "60", 0, 1e9,
        "write NAME.ckpt and reward-state.json this often (seconds; 0 = only when stopping)"),
    OPT(out, "reward.out", "out", "reward", 1, 0,
        "output directory: NAME.ckpt per model, reward-state.json"),
    OPT(init, "reward.init", "init", "", 0, 0,
        "a policy checkpoint of the same shape every model not resumed starts from (e.g. the "
        "learner's reference.ckpt); training waits until the file exists"),
    OPT(resume, "reward.resume", "resume", "", 0, 0,
        "load DIR/NAME.ckpt for every model that has one, and DIR/reward-state.json"),
    OPT(max_seconds, "reward.max_seconds", "max-seconds", "0", 0, 1e9,
        "stop (checkpointing first) after this many seconds (0 = serve until signalled)"),
};
#undef OPT
const size_t ag_reward_n_options = sizeof ag_reward_options / sizeof ag_reward_options[0];

void ag_reward_opts_default(ag_reward_opts_t *o)
{
    memset(o, 0, sizeof *o);
    ag_model_config_default(&o->model);
    const int rc = ag_option_defaults(ag_reward_options, ag_reward_n_options, o);
    assert(rc == 0 && "a default of agora-reward's option table is out of its range");
    (void)rc;
}
