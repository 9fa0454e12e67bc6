/*
 * learner_options.c - agora-learner's option table and the defaults taken
 * from it (see learner_options.h). A default is written here once: the
 * binary's --help, the README's table, the library's PPO defaults and the
 * unit tests all read it from the rows.
 */
#include "learner_options.h"

#include <assert.h>
#include <string.h>

#include "model.h"

static const ag_opt_choice_t s_progress[] = {{"auto", AG_LEARNER_PROGRESS_AUTO},
                                             {"on", AG_LEARNER_PROGRESS_ON},
                                             {"off", AG_LEARNER_PROGRESS_OFF},
                                             {NULL, 0}};
static const ag_opt_choice_t s_kl_estimators[] = {{"k1", AG_KL_K1}, {"k3", AG_KL_K3}, {NULL, 0}};

#define OPT(f, ...) AG_OPT(ag_learner_opts_t, f, __VA_ARGS__)
#define CHOICE(f, ...) AG_OPT_CHOICE(ag_learner_opts_t, f, __VA_ARGS__)
const ag_option_t ag_learner_options[] = {
    OPT(trajectories, "learner.trajectories", "trajectories", "tcp://*:5580", 1, 0,
        "ROUTER endpoint actors submit trajectories to"),
    OPT(weights, "learner.weights", "weights", "tcp://*:5581", 1, 0,
        "PUB endpoint every new policy version is published on"),
    OPT(control, "learner.control", "control", "tcp://*:5582", 1, 0,
        "ROUTER endpoint for status, weight snapshots and the league"),
    OPT(advertise, "learner.advertise", "advertise", "", 0, 255,
        "host name or address peers reach this learner by, handed to actors that join (empty "
        "= the bound address, or this machine's host name for a wildcard)"),
    OPT(service_ttl_s, "learner.service_ttl_s", "service-ttl", "10", 0.3, 3600,
        "a registered env or reward server that sends no heartbeat for this long is dropped "
        "(it heartbeats every third of it)"),
    OPT(ws.env, "learner.env", "env", "", 0, 0,
        "comma-separated env servers the warm start fetches Demo transcripts from (chunks go "
        "round-robin; empty = the env servers registered with this learner, --join)"),
    OPT(out, "learner.out", "out", "learner-out", 1, 0,
        "output directory: metrics.jsonl, reference.ckpt, policy.ckpt, queue.bin, state.json, "
        "league/"),
    OPT(resume, "learner.resume", "resume", "", 0, 0,
        "continue the run saved in this directory (policy, optimizer, RNG, league, counters)"),
    OPT(seed, "learner.seed", "seed", "1", 0, 0,
        "seed of the initial weights, warm-start order and minibatch order"),
    OPT(threads, "learner.threads", "threads", "2", 0, 256,
        "compute threads of the model (0 = all CPUs)"),
    OPT(ws.threads, "warmstart.threads", NULL, "0", 0, 256,
        "compute threads during the warm start, while actors wait (0 = all CPUs)"),
    OPT(max_updates, "learner.max_updates", "max-updates", "0", 0, 1L << 40,
        "stop after this many PPO updates (0 = never)"),
    OPT(max_seconds, "learner.max_seconds", "max-seconds", "0", 0, 1e9,
        "stop after this many seconds of this process, warm start included (0 = never)"),
    OPT(checkpoint_interval_s, "learner.checkpoint_interval_s", "checkpoint-interval", "120", 0,
        1e9,
        "write policy.ckpt, queue.bin and state.json this often (seconds; 0 = only at the "
        "end)"),
    OPT(max_staleness, "learner.max_staleness", "max-staleness", "4", 0, 1L << 40,
        "drop trajectories whose oldest trainable turn is more versions behind than this"),
    OPT(max_pending, "learner.max_pending", "max-pending", "1024", 1, 1L << 24,
        "accepted trajectories queued for training before submissions get OVERLOADED (at least "
        "one batch)"),
    OPT(min_actors, "learner.min_actors", "min-actors", "1", 1, 64,
        "the first PPO update waits for trajectories from this many distinct actors; until "
        "then each actor may fill only its share of the queue, so a fast actor cannot keep a "
        "slow one out"),
    OPT(league_interval, "learner.league_interval", "league-interval", "10", 0, 1L << 40,
        "keep versions 1, 1+N, 1+2N, ... in the league (0 = no league)"),
    OPT(league_max, "learner.league_max", "league-max", "32", 0, 1L << 20,
        "league snapshots served at most (the oldest are dropped; 0 = unlimited)"),
    OPT(pub_hwm, "learner.pub_hwm", "pub-hwm", "4", 1, 1L << 20,
        "send high-water mark of the weights PUB: a slow subscriber drops old versions"),
    CHOICE(progress, "learner.progress", "progress", "auto", s_progress,
           "live progress line on stderr (auto: when it is a terminal)"),
    OPT(model.d_model, "model.d_model", NULL, "128", 1, AG_MODEL_MAX_DIM, "model width"),
    OPT(model.n_layers, "model.n_layers", NULL, "4", 1, AG_MODEL_MAX_LAYERS, "transformer blocks"),
    OPT(model.n_heads, "model.n_heads", NULL, "4", 1, AG_MODEL_MAX_DIM,
        "attention heads (divide d_model)"),
    OPT(model.ctx, "model.ctx", NULL, "256", 2, AG_MODEL_MAX_CTX,
        "context: longest seat transcript in tokens"),
    OPT(model.mlp_ratio, "model.mlp_ratio", NULL, "4", 1, 64, "MLP width / d_model"),
    OPT(ws.game, "game.name", "game", "", 0, 0,
        "game the warm start fetches demos of (empty = the first game learner.env's Hello "
        "lists)"),
    OPT(ws.options, "game.options", "game-options", "", 0, 0,
        "comma-separated KEY=VALUE game options passed in Demo (empty = the game's defaults)"),
    AG_OPT_TEXT("warmstart.options", NULL, "",
                "game options for the demos, laid over game.options (a key given here replaces "
                "the same key there; e.g. more solver errors, so more revisions to imitate)"),
    OPT(ws.demos, "warmstart.demos", "demos", "2048", 0, 1L << 24,
        "Demo transcripts to fetch from learner.env (0 and no file = no warm start)"),
    OPT(ws.seed, "warmstart.seed", NULL, "1", 0, 0,
        "seed of the first demo (transcript i uses seed + i; evaluation seeds start at 1e9)"),
    OPT(ws.file, "warmstart.file", NULL, "", 0, 0, "JSONL transcripts to use instead of Demo"),
    OPT(ws.epochs, "warmstart.epochs", NULL, "4", 0, 10000, "passes over the demos"),
    OPT(ws.lr, "warmstart.lr", NULL, "1e-3", 0, 10, "peak learning rate (cosine decay to 0.1x)"),
    OPT(ws.batch, "warmstart.batch", NULL, "32", 1, 65536, "sequences per minibatch"),
    OPT(ws.obs_weight, "warmstart.observation_weight", NULL, "0", 0, 1,
        "weight of the loss on predicting the observations' tokens (0 = the actions' only): "
        "reading the game's texts as a language model teaches the task's structure sooner"),
    OPT(batch_trajectories, "ppo.batch_trajectories", "batch", "128", 1, 1L << 20,
        "trajectories (games) per PPO update"),
    OPT(ppo.epochs, "ppo.epochs", NULL, "2", 1, 1000, "passes over each batch"),
    OPT(ppo.minibatch, "ppo.minibatch", NULL, "32", 1, 65536,
        "sequences (seats) per minibatch / optimizer step"),
    OPT(ppo.microbatch, "ppo.microbatch", NULL, "8", 0, 65536,
        "sequences per forward pass: a minibatch runs as micro-batches of sequences of similar "
        "length, gradients accumulated (0 = the whole minibatch)"),
    OPT(ppo.lr, "ppo.lr", NULL, "3e-4", 0, 10, "AdamW learning rate"),
    OPT(ppo.weight_decay, "ppo.weight_decay", NULL, "0.01", 0, 10,
        "AdamW weight decay (matrices only)"),
    OPT(ppo.max_grad_norm, "ppo.max_grad_norm", NULL, "1.0", 0, 1e9,
        "global gradient-norm clip (0 = off)"),
    OPT(ppo.gae.gamma, "ppo.gamma", NULL, "1.0", 0, 1, "per-token discount"),
    OPT(ppo.gae.lambda, "ppo.lambda", NULL, "0.95", 0, 1, "GAE lambda"),
    OPT(ppo.gae.turn_gamma, "ppo.turn_gamma", NULL, "1.0", 0, 1,
        "extra discount applied only between a seat's turns"),
    OPT(ppo.clip_eps, "ppo.clip", NULL, "0.2", 0, 10, "PPO ratio clip"),
    OPT(ppo.vf_coef, "ppo.vf_coef", NULL, "0.5", 0, 1e6, "value loss weight"),
    OPT(ppo.vf_clip, "ppo.vf_clip", NULL, "0.2", 0, 1e6,
        "value clip around the proximal value (0 = off)"),
    OPT(ppo.ent_coef, "ppo.ent_coef", NULL, "0.001", 0, 1e6, "entropy bonus weight"),
    OPT(ppo.kl_coef, "ppo.kl_coef", NULL, "0.02", 0, 1e6,
        "KL-to-reference weight (initial value when adaptive)"),
    OPT(ppo.kl_target, "ppo.kl_target", NULL, "0", 0, 1e6,
        "adaptive KL: target per-token KL (0 = fixed coefficient)"),
    CHOICE(ppo.kl_estimator, "ppo.kl_estimator", NULL, "k3", s_kl_estimators, "KL estimator"),
    OPT(ppo.is_clip, "ppo.is_clip", NULL, "1.0", 1e-6, 1e6,
        "truncation of the behaviour/proximal importance weight"),
    OPT(ppo.whiten, "ppo.whiten", NULL, "true", 0, 0, "whiten advantages over the batch"),
};
#undef CHOICE
#undef OPT
const size_t ag_learner_n_options = sizeof ag_learner_options / sizeof ag_learner_options[0];

void ag_learner_opts_default(ag_learner_opts_t *o)
{
    memset(o, 0, sizeof *o);
    ag_model_config_default(&o->model);
    const int rc = ag_option_defaults(ag_learner_options, ag_learner_n_options, o);
    assert(rc == 0 && "a default of agora-learner's option table is out of its range");
    (void)rc;
}

void ag_ppo_config_default(ag_ppo_config_t *c)
{
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    memcpy(c, &o.ppo, sizeof *c); /* padding included: copies compare equal byte for byte */
}
