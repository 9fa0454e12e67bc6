/*
 * main.c - agora-learner: reads its run-file sections ([learner], [model],
 * [game], [warmstart], [ppo]), then serves trajectories, weights and
 * control until it stops by itself (learner.max_updates,
 * learner.max_seconds) or on SIGINT/SIGTERM, checkpointing first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "kv.h"
#include "learner.h"
#include "log.h"
#include "ppo.h"

static const ag_option_t s_options[] = {
    {"learner.trajectories", "trajectories", "tcp://*:5580",
     "ROUTER endpoint actors submit trajectories to"},
    {"learner.weights", "weights", "tcp://*:5581",
     "PUB endpoint every new policy version is "
     "published on"},
    {"learner.control", "control", "tcp://*:5582",
     "ROUTER endpoint for status, weight snapshots and the league"},
    {"learner.env", "env", "tcp://127.0.0.1:5570",
     "comma-separated env servers the warm start fetches Demo transcripts from"},
    {"learner.out", "out", "learner-out",
     "output directory: metrics.jsonl, reference.ckpt, policy.ckpt, queue.bin, state.json, "
     "league/"},
    {"learner.resume", "resume", "",
     "continue the run saved in this directory (policy, optimizer, RNG, league, counters)"},
    {"learner.seed", "seed", "1",
     "seed of the initial weights, warm-start order and minibatch "
     "order"},
    {"learner.threads", "threads", "2", "compute threads of the model (0 = all CPUs)"},
    {"warmstart.threads", NULL, "0",
     "compute threads during the warm start, while actors wait (0 = all CPUs)"},
    {"learner.max_updates", "max-updates", "0", "stop after this many PPO updates (0 = never)"},
    {"learner.max_seconds", "max-seconds", "0",
     "stop after this many seconds of this process (0 = never)"},
    {"learner.checkpoint_interval_s", "checkpoint-interval", "120",
     "write policy.ckpt, queue.bin and state.json this often (seconds; 0 = only at the end)"},
    {"learner.max_staleness", "max-staleness", "4",
     "drop trajectories whose oldest trainable turn is more versions behind than this"},
    {"learner.max_pending", "max-pending", "1024",
     "accepted trajectories queued for training before submissions get OVERLOADED"},
    {"learner.min_actors", "min-actors", "1",
     "the first PPO update waits for trajectories from this many distinct actors"},
    {"learner.league_interval", "league-interval", "10",
     "keep versions 1, 1+N, 1+2N, ... in the league (0 = no league)"},
    {"learner.league_max", "league-max", "32",
     "league snapshots served at most (the oldest are dropped; 0 = unlimited)"},
    {"learner.pub_hwm", "pub-hwm", "4",
     "send high-water mark of the weights PUB: a slow subscriber drops old versions"},
    {"learner.progress", "progress", "auto",
     "live progress line on stderr: auto (when it is a terminal), on, off"},
    {"model.d_model", NULL, "128", "model width"},
    {"model.n_layers", NULL, "4", "transformer blocks"},
    {"model.n_heads", NULL, "4", "attention heads (divide d_model)"},
    {"model.ctx", NULL, "256", "context: longest seat transcript in tokens"},
    {"model.mlp_ratio", NULL, "4", "MLP width / d_model"},
    {"game.name", "game", "",
     "game the warm start fetches demos of (empty = the first game learner.env's Hello lists)"},
    {"game.options", "game-options", "",
     "comma-separated KEY=VALUE game options passed in Demo (empty = the game's defaults)"},
    {"warmstart.options", NULL, "",
     "game options for the demos on top of game.options (e.g. more solver errors, so more "
     "revisions to imitate)"},
    {"warmstart.demos", "demos", "2048",
     "Demo transcripts to fetch from learner.env (0 and no file = no warm start)"},
    {"warmstart.seed", NULL, "1",
     "seed of the first demo (transcript i uses seed + i; evaluation seeds start at 1e9)"},
    {"warmstart.file", NULL, "", "JSONL transcripts to use instead of Demo"},
    {"warmstart.epochs", NULL, "4", "passes over the demos"},
    {"warmstart.lr", NULL, "1e-3", "peak learning rate (cosine decay to 0.1x)"},
    {"warmstart.batch", NULL, "32", "sequences per minibatch"},
    {"warmstart.observation_weight", NULL, "0",
     "weight of the loss on predicting the observations' tokens (0 = the actions' only): "
     "reading the game's texts as a language model teaches the task's structure sooner"},
    {"ppo.batch_trajectories", "batch", "128", "trajectories (games) per PPO update"},
    {"ppo.epochs", NULL, AG_PPO_STR(AG_PPO_DEFAULT_EPOCHS), "passes over each batch"},
    {"ppo.minibatch", NULL, AG_PPO_STR(AG_PPO_DEFAULT_MINIBATCH),
     "sequences (seats) per minibatch / optimizer step"},
    {"ppo.microbatch", NULL, AG_PPO_STR(AG_PPO_DEFAULT_MICROBATCH),
     "sequences per forward pass: a minibatch runs as micro-batches of sequences of similar "
     "length, gradients accumulated (0 = the whole minibatch)"},
    {"ppo.lr", NULL, AG_PPO_STR(AG_PPO_DEFAULT_LR), "AdamW learning rate"},
    {"ppo.weight_decay", NULL, AG_PPO_STR(AG_PPO_DEFAULT_WEIGHT_DECAY),
     "AdamW weight decay (matrices only)"},
    {"ppo.max_grad_norm", NULL, AG_PPO_STR(AG_PPO_DEFAULT_MAX_GRAD_NORM),
     "global gradient-norm clip (0 = off)"},
    {"ppo.gamma", NULL, AG_PPO_STR(AG_PPO_DEFAULT_GAMMA), "per-token discount"},
    {"ppo.lambda", NULL, AG_PPO_STR(AG_PPO_DEFAULT_LAMBDA), "GAE lambda"},
    {"ppo.turn_gamma", NULL, AG_PPO_STR(AG_PPO_DEFAULT_TURN_GAMMA),
     "extra discount applied only between a seat's turns"},
    {"ppo.clip", NULL, AG_PPO_STR(AG_PPO_DEFAULT_CLIP), "PPO ratio clip"},
    {"ppo.vf_coef", NULL, AG_PPO_STR(AG_PPO_DEFAULT_VF_COEF), "value loss weight"},
    {"ppo.vf_clip", NULL, AG_PPO_STR(AG_PPO_DEFAULT_VF_CLIP),
     "value clip around the proximal value (0 = off)"},
    {"ppo.ent_coef", NULL, AG_PPO_STR(AG_PPO_DEFAULT_ENT_COEF), "entropy bonus weight"},
    {"ppo.kl_coef", NULL, AG_PPO_STR(AG_PPO_DEFAULT_KL_COEF),
     "KL-to-reference weight (initial value when adaptive)"},
    {"ppo.kl_target", NULL, AG_PPO_STR(AG_PPO_DEFAULT_KL_TARGET),
     "adaptive KL: target per-token KL (0 = fixed coefficient)"},
    {"ppo.kl_estimator", NULL, "k3", "KL estimator: k1 or k3"},
    {"ppo.is_clip", NULL, AG_PPO_STR(AG_PPO_DEFAULT_IS_CLIP),
     "truncation of the behaviour/proximal importance weight"},
    {"ppo.whiten", NULL, "true", "whiten advantages over the batch"},
};

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-learner", "[options]",
        "Trains the policy: supervised warm start on Demo transcripts (or a JSONL file), then "
        "PPO with GAE over each seat's own tokens on trajectories submitted by any number of "
        "actors; publishes every version, keeps a league, checkpoints atomically and writes "
        "one JSONL metrics record per update (see learner/README.md).",
        s_options, sizeof s_options / sizeof s_options[0], 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    ag_learner_opts_t o;
    memset(&o, 0, sizeof o);
    ag_model_config_default(&o.model);
    ag_ppo_config_default(&o.ppo);
    long seed, threads, wthreads, mu, d, nl, nh, ctx, mr, demos, wseed, wep, wbs, bt, ep, mb, ub,
        ms, mp, mina, li, lm, hwm;
    double maxs, ckpt, wlr, wow, lr, wd, gn, gamma, lambda, tg, clip, vfc, vfcl, ent, klc, klt, isc;
    bool whiten;
    if (ag_config_long(cfg, "learner.seed", 0, 0x7fffffffffffffffL, &seed) < 0 ||
        ag_config_long(cfg, "learner.threads", 0, 256, &threads) < 0 ||
        ag_config_long(cfg, "warmstart.threads", 0, 256, &wthreads) < 0 ||
        ag_config_long(cfg, "learner.max_updates", 0, 1L << 40, &mu) < 0 ||
        ag_config_double(cfg, "learner.max_seconds", 0, 1e9, &maxs) < 0 ||
        ag_config_double(cfg, "learner.checkpoint_interval_s", 0, 1e9, &ckpt) < 0 ||
        ag_config_long(cfg, "learner.max_staleness", 0, 1L << 40, &ms) < 0 ||
        ag_config_long(cfg, "learner.max_pending", 1, 1L << 24, &mp) < 0 ||
        ag_config_long(cfg, "learner.min_actors", 1, 64, &mina) < 0 ||
        ag_config_long(cfg, "learner.league_interval", 0, 1L << 40, &li) < 0 ||
        ag_config_long(cfg, "learner.league_max", 0, 1L << 20, &lm) < 0 ||
        ag_config_long(cfg, "learner.pub_hwm", 1, 1L << 20, &hwm) < 0 ||
        ag_config_long(cfg, "model.d_model", 1, AG_MODEL_MAX_DIM, &d) < 0 ||
        ag_config_long(cfg, "model.n_layers", 1, AG_MODEL_MAX_LAYERS, &nl) < 0 ||
        ag_config_long(cfg, "model.n_heads", 1, AG_MODEL_MAX_DIM, &nh) < 0 ||
        ag_config_long(cfg, "model.ctx", 2, AG_MODEL_MAX_CTX, &ctx) < 0 ||
        ag_config_long(cfg, "model.mlp_ratio", 1, 64, &mr) < 0 ||
        ag_config_long(cfg, "warmstart.demos", 0, 1L << 24, &demos) < 0 ||
        ag_config_long(cfg, "warmstart.seed", 0, 0x7fffffffffffffffL, &wseed) < 0 ||
        ag_config_long(cfg, "warmstart.epochs", 0, 10000, &wep) < 0 ||
        ag_config_double(cfg, "warmstart.lr", 0, 10, &wlr) < 0 ||
        ag_config_long(cfg, "warmstart.batch", 1, 65536, &wbs) < 0 ||
        ag_config_double(cfg, "warmstart.observation_weight", 0, 1, &wow) < 0 ||
        ag_config_long(cfg, "ppo.batch_trajectories", 1, 1L << 20, &bt) < 0 ||
        ag_config_long(cfg, "ppo.epochs", 1, 1000, &ep) < 0 ||
        ag_config_long(cfg, "ppo.minibatch", 1, 65536, &mb) < 0 ||
        ag_config_long(cfg, "ppo.microbatch", 0, 65536, &ub) < 0 ||
        ag_config_double(cfg, "ppo.lr", 0, 10, &lr) < 0 ||
        ag_config_double(cfg, "ppo.weight_decay", 0, 10, &wd) < 0 ||
        ag_config_double(cfg, "ppo.max_grad_norm", 0, 1e9, &gn) < 0 ||
        ag_config_double(cfg, "ppo.gamma", 0, 1, &gamma) < 0 ||
        ag_config_double(cfg, "ppo.lambda", 0, 1, &lambda) < 0 ||
        ag_config_double(cfg, "ppo.turn_gamma", 0, 1, &tg) < 0 ||
        ag_config_double(cfg, "ppo.clip", 0, 10, &clip) < 0 ||
        ag_config_double(cfg, "ppo.vf_coef", 0, 1e6, &vfc) < 0 ||
        ag_config_double(cfg, "ppo.vf_clip", 0, 1e6, &vfcl) < 0 ||
        ag_config_double(cfg, "ppo.ent_coef", 0, 1e6, &ent) < 0 ||
        ag_config_double(cfg, "ppo.kl_coef", 0, 1e6, &klc) < 0 ||
        ag_config_double(cfg, "ppo.kl_target", 0, 1e6, &klt) < 0 ||
        ag_config_double(cfg, "ppo.is_clip", 1e-6, 1e6, &isc) < 0 ||
        ag_config_bool(cfg, "ppo.whiten", &whiten) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    const char *est = ag_config_str(cfg, "ppo.kl_estimator");
    const char *prog = ag_config_str(cfg, "learner.progress");
    if (strcmp(est, "k1") && strcmp(est, "k3")) {
        fprintf(stderr, "ppo.kl_estimator: expected k1 or k3, got '%s'\n", est);
        ag_config_destroy(&cfg);
        return 2;
    }
    if (strcmp(prog, "auto") && strcmp(prog, "on") && strcmp(prog, "off")) {
        fprintf(stderr, "learner.progress: expected auto, on or off, got '%s'\n", prog);
        ag_config_destroy(&cfg);
        return 2;
    }
    o.trajectories = ag_config_str(cfg, "learner.trajectories");
    o.weights = ag_config_str(cfg, "learner.weights");
    o.control = ag_config_str(cfg, "learner.control");
    o.out = ag_config_str(cfg, "learner.out");
    o.resume = ag_config_str(cfg, "learner.resume");
    o.model.d_model = (int)d;
    o.model.n_layers = (int)nl;
    o.model.n_heads = (int)nh;
    o.model.ctx = (int)ctx;
    o.model.mlp_ratio = (int)mr;
    o.seed = (uint64_t)seed;
    o.threads = (int)threads;
    o.ws.threads = (int)wthreads;
    o.max_updates = mu;
    o.max_seconds = maxs;
    o.checkpoint_interval_s = ckpt;
    o.max_staleness = ms;
    o.batch_trajectories = bt;
    o.max_pending = mp > bt ? mp : bt;
    o.min_actors = mina;
    o.league_interval = li;
    o.league_max = lm;
    o.pub_hwm = (int)hwm;
    o.progress = !strcmp(prog, "on") || (!strcmp(prog, "auto") && isatty(2));
    o.ppo.epochs = (int)ep;
    o.ppo.minibatch = (int)mb;
    o.ppo.microbatch = (int)ub;
    o.ppo.lr = (float)lr;
    o.ppo.weight_decay = (float)wd;
    o.ppo.max_grad_norm = (float)gn;
    o.ppo.gae.gamma = (float)gamma;
    o.ppo.gae.lambda = (float)lambda;
    o.ppo.gae.turn_gamma = (float)tg;
    o.ppo.clip_eps = (float)clip;
    o.ppo.vf_coef = (float)vfc;
    o.ppo.vf_clip = (float)vfcl;
    o.ppo.ent_coef = (float)ent;
    o.ppo.kl_coef = (float)klc;
    o.ppo.kl_target = (float)klt;
    o.ppo.kl_estimator = !strcmp(est, "k1") ? AG_KL_K1 : AG_KL_K3;
    o.ppo.is_clip = (float)isc;
    o.ppo.whiten = whiten;
    o.ws.demos = demos;
    o.ws.seed = (uint64_t)wseed;
    o.ws.file = ag_config_str(cfg, "warmstart.file");
    o.ws.env = ag_config_str(cfg, "learner.env");
    o.ws.game = ag_config_str(cfg, "game.name");
    char demo_options[1024];
    if (ag_kv_merge(ag_config_str(cfg, "game.options"), ag_config_str(cfg, "warmstart.options"),
                    demo_options, sizeof demo_options) < 0) {
        ag_error("learner",
                 "game.options / warmstart.options: expected KEY=VALUE,KEY=VALUE, each key once");
        ag_config_destroy(&cfg);
        return 2;
    }
    o.ws.options = demo_options;
    o.ws.epochs = (int)wep;
    o.ws.lr = (float)wlr;
    o.ws.batch = (int)wbs;
    o.ws.obs_weight = (float)wow;

    uv_loop_t loop;
    uv_loop_init(&loop);
    void *zctx = zmq_ctx_new();
    ag_learner_t *l = ag_learner_create(&loop, zctx, &o);
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
