/*
 * eval.c - agora-eval: plays N games of a game on an env server between
 * fixed players (checkpoints or the server's scripted bots) with the actor's
 * episode runner, and prints one JSON line of the game's metrics averaged
 * over the games (debate: judge_accuracy, per-seat win rates; critique:
 * first/final accuracy, fixed/broken rates, critic precision/recall; any
 * game: the mean of every metric it reports), plus sampling throughput.
 *
 * Seeds: game i is played with seed S + i (default S = 1000000000, above
 * every training seed the actor uses), and its tokens come from a sampling
 * stream derived from (S, i), so the same checkpoints, seed and thread count
 * give the same result. A game lost to an env error is replayed (same seed)
 * up to three times; a game whose transcript would overflow a checkpoint's
 * context is counted as dropped and left out of the averages, and so is one
 * the runner ended because the env server refused a seat's actions
 * eval.invalid_retries + 1 times in a row (invalid_ended). An evaluation
 * that completes no game at all exits with status 3 and says why.
 *
 * Reward model check (--reward ENDPOINT --reward-model NAME): after every
 * two-seat game with different returns in which both seats acted (a seat
 * that never acted has no transcript), both seats' transcripts are scored
 * by the reward service and the line gets rm_pairwise_accuracy (the share of
 * those games where the winner's transcript scored strictly higher) and
 * rm_pairs, and the same over the games the rule judge decided on the
 * transcripts (every game but those whose info says reason = coin):
 * rm_pairwise_accuracy_decided, rm_pairs_decided. Only seats played here
 * (checkpoints) have a transcript on this side, so it needs both seats to be
 * checkpoints; games with a bot seat are not scored.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ckpt.h"
#include "config.h"
#include "jsonw.h"
#include "log.h"
#include "reward_client.h"
#include "runner.h"
#include "signals.h"

#define MAX_METRICS 64
#define RM_WAIT_MS 60000 /* after the last game, how long scores may take */

static const ag_option_t s_options[] = {
    {"eval.env", "env", "tcp://127.0.0.1:5570", "env server endpoint(s), comma-separated"},
    {"game.name", "game", "", "game to play (empty = the first game the env server lists)"},
    {"game.options", "options", "",
     "game options KEY=VALUE,KEY=VALUE (--option KEY=VALUE adds one)"},
    {"eval.seat0", "seat0", "", "seat 0: checkpoint path or bot:NAME"},
    {"eval.seat1", "seat1", "", "seat 1: checkpoint path or bot:NAME"},
    {"eval.seat2", "seat2", "", "seat 2 (games with more players)"},
    {"eval.seat3", "seat3", "", "seat 3 (games with more players)"},
    {"eval.games", "games", "200", "games to play"},
    {"eval.seed", "seed", "1000000000", "seed of game 0 (game i uses seed + i)"},
    {"eval.temperature", "temperature", "1", "sampling temperature (0 = greedy)"},
    {"eval.top_p", "top-p", "1", "nucleus sampling mass (1 = full distribution)"},
    {"eval.slots", "slots", "64", "games in flight"},
    {"eval.max_action_tokens", "max-action-tokens", "48", "longest action in tokens"},
    {"eval.threads", "threads", "1", "threads per model (0 = every CPU)"},
    {"eval.env_timeout_ms", "env-timeout-ms", "5000", "deadline of one env request"},
    {"eval.invalid_retries", "invalid-retries", "3",
     "resample an action the env server refuses as invalid up to this many times in a row, "
     "then end the game (counted as invalid_ended, left out of the averages)"},
    {"eval.reward", "reward", "",
     "reward server: score both transcripts of every two-seat game with a winner and report "
     "rm_pairwise_accuracy (both seats must be checkpoints: bot seats have no transcript here)"},
    {"eval.reward_model", "reward-model", "default", "reward model that scores (with --reward)"},
};

typedef struct metric_sum {
    char name[64];
    double sum;
    uint64_t n;
} metric_sum_t;

typedef struct eval {
    uv_loop_t loop;
    ag_runner_t *runner;
    ag_signals_t *signals;
    int n_seats;
    uint64_t games;
    uint64_t wins[AG_RUNNER_MAX_SEATS];
    double returns[AG_RUNNER_MAX_SEATS];
    uint64_t invalid, truncated, invalid_ended;
    metric_sum_t metrics[MAX_METRICS];
    int n_metrics;
    bool interrupted;
    /* reward model check */
    ag_reward_client_t *rm;
    uint64_t rm_pairs, rm_correct, rm_pairs_decided, rm_correct_decided, rm_failed;
    char *text[2];
    size_t text_cap[2];
} eval_t;

/* A scored pair: which item is the winner's, and whether the rule judge decided. */
typedef struct rm_pair {
    eval_t *ev;
    int winner, loser;
    bool decided;
} rm_pair_t;

static void s_on_scored(void *arg, int status, const float *scores, size_t n)
{
    rm_pair_t *p = arg;
    eval_t *ev = p->ev;
    if (status == 0 && n == 2) {
        bool right = scores[p->winner] > scores[p->loser];
        ev->rm_pairs++;
        ev->rm_correct += right;
        if (p->decided) {
            ev->rm_pairs_decided++;
            ev->rm_correct_decided += right;
        }
    } else if (status != -ECANCELED) {
        ev->rm_failed++;
    }
    free(p);
}

/* Sends both transcripts of a two-seat game with a winner for scoring. */
static void s_score_pair(eval_t *ev, const ag_runner_result_t *res)
{
    bool has[2] = {false, false};
    ag_reward_item_t items[2];
    for (int s = 0; s < res->n_seats && s < 2; s++)
        has[s] = res->seq[s] && res->seq[s]->n_turns > 0;
    int winner, loser;
    if (!ag_reward_game_pair(res->n_seats, res->returns, has, &winner, &loser))
        return;
    for (int s = 0; s < 2; s++) {
        const ag_seq_t *q = res->seq[s];
        if (ev->text_cap[s] < q->len + 1) {
            char *t = realloc(ev->text[s], q->len + 1);
            if (!t)
                goto fail;
            ev->text[s] = t;
            ev->text_cap[s] = q->len + 1;
        }
        items[s].len = ag_runner_transcript(q, ev->text[s], ev->text_cap[s]);
        items[s].text = ev->text[s];
        items[s].seat = (uint32_t)s;
    }
    rm_pair_t *p = malloc(sizeof *p);
    if (!p)
        goto fail;
    *p = (rm_pair_t){ev, winner, loser, ag_reward_decided(res->info, res->n_info)};
    if (ag_reward_client_score(ev->rm, res->game, items, 2, s_on_scored, p) < 0) {
        free(p);
        goto fail;
    }
    return;
fail:
    ev->rm_failed++;
}

static void s_on_episode(void *arg, const ag_runner_result_t *res)
{
    eval_t *ev = arg;
    if (res->invalid_ended) { /* no outcome: the game did not end by its rules */
        ev->invalid_ended++;
        return;
    }
    ev->games++;
    ev->invalid += res->invalid_action;
    ev->truncated += res->truncated;
    /* The winner: the game's own "winner" info if it has one, else the unique best return. */
    int winner = -1;
    for (size_t i = 0; i < res->n_info; i++)
        if (res->info[i]->key && !strcmp(res->info[i]->key, "winner") && res->info[i]->value) {
            char *end;
            long w = strtol(res->info[i]->value, &end, 10);
            if (end != res->info[i]->value && *end == '\0' && w >= 0 && w < res->n_seats)
                winner = (int)w;
        }
    if (winner < 0) {
        for (int s = 0; s < res->n_seats; s++) {
            bool best = true;
            for (int o = 0; o < res->n_seats; o++)
                if (o != s && res->returns[o] >= res->returns[s])
                    best = false;
            if (best)
                winner = s;
        }
    }
    if (winner >= 0)
        ev->wins[winner]++;
    for (int s = 0; s < res->n_seats; s++)
        ev->returns[s] += res->returns[s];
    if (ev->rm)
        s_score_pair(ev, res);
    for (size_t i = 0; i < res->n_metrics; i++) {
        const Agora__V1__Metric *m = res->metrics[i];
        if (!m->name || !isfinite(m->value))
            continue;
        int k = 0;
        while (k < ev->n_metrics && strcmp(ev->metrics[k].name, m->name) != 0)
            k++;
        if (k == ev->n_metrics) {
            if (k == MAX_METRICS || strlen(m->name) >= sizeof ev->metrics[k].name)
                continue;
            snprintf(ev->metrics[k].name, sizeof ev->metrics[k].name, "%s", m->name);
            ev->n_metrics++;
        }
        ev->metrics[k].sum += m->value;
        ev->metrics[k].n++;
    }
}

static const metric_sum_t *s_metric(const eval_t *ev, const char *name)
{
    for (int k = 0; k < ev->n_metrics; k++)
        if (!strcmp(ev->metrics[k].name, name))
            return &ev->metrics[k];
    return NULL;
}

/* Adds "key": mean of metric `name`, when the game reports it. */
static void s_put_mean(ag_jsonw_t *j, const eval_t *ev, const char *key, const char *name)
{
    const metric_sum_t *m = s_metric(ev, name);
    if (m && m->n)
        ag_jsonw_num(j, key, m->sum / (double)m->n);
}

/* Adds "key": a / (a + b) over the summed counts, when both are reported. */
static void s_put_ratio(ag_jsonw_t *j, const eval_t *ev, const char *key, const char *a,
                        const char *b)
{
    const metric_sum_t *ma = s_metric(ev, a), *mb = s_metric(ev, b);
    if (ma && mb)
        ag_jsonw_num(j, key, ma->sum + mb->sum > 0 ? ma->sum / (ma->sum + mb->sum) : 0.0);
}

static void s_on_signal(void *arg, int signum)
{
    eval_t *ev = arg;
    ag_warn("eval", "signal %d: stopping", signum);
    ev->interrupted = true;
    ag_runner_abandon(ev->runner);
}

/* Moves every "--option KEY=VALUE" of argv into extra (comma-separated) and
 * drops it from argv; returns the new argc, or -1 on a missing value. */
static int s_take_options(int argc, char **argv, char *extra, size_t cap)
{
    int out = 1;
    extra[0] = '\0';
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        if (!strcmp(argv[i], "--option")) {
            if (i + 1 >= argc)
                return -1;
            v = argv[++i];
        } else if (!strncmp(argv[i], "--option=", 9)) {
            v = argv[i] + 9;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        size_t len = strlen(extra);
        if (len + strlen(v) + 2 > cap)
            return -1;
        snprintf(extra + len, cap - len, "%s%s", len ? "," : "", v);
    }
    return out;
}

int main(int argc, char **argv)
{
    char extra[4096];
    argc = s_take_options(argc, argv, extra, sizeof extra);
    if (argc < 0) {
        fprintf(stderr, "agora-eval: --option needs KEY=VALUE\n");
        return 2;
    }
    ag_config_t *cfg = ag_config_create(
        "agora-eval", "[options] [--option KEY=VALUE ...]",
        "Plays games between fixed players (checkpoints or bot:NAME) on an env server and "
        "prints one JSON line of the game's metrics averaged over the games. With --reward "
        "ENDPOINT it also checks a reward model: after each two-seat game with different "
        "returns both seats' transcripts are scored, and rm_pairwise_accuracy is the share of "
        "games where the winner's scored higher (also over games not decided by a coin: "
        "rm_pairwise_accuracy_decided). Transcripts exist only for seats played here, so that "
        "needs both seats to be checkpoints.",
        s_options, sizeof s_options / sizeof s_options[0], 0);
    if (!cfg)
        return 1;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : 2;
    }
    long games, slots, max_action, threads, env_timeout, invalid_retries;
    double temperature, top_p;
    if (ag_config_long(cfg, "eval.games", 1, 100000000, &games) < 0 ||
        ag_config_long(cfg, "eval.slots", 1, 4096, &slots) < 0 ||
        ag_config_long(cfg, "eval.max_action_tokens", 1, 4096, &max_action) < 0 ||
        ag_config_long(cfg, "eval.threads", 0, 256, &threads) < 0 ||
        ag_config_long(cfg, "eval.env_timeout_ms", 1, 3600000, &env_timeout) < 0 ||
        ag_config_long(cfg, "eval.invalid_retries", 0, 1000, &invalid_retries) < 0 ||
        ag_config_double(cfg, "eval.temperature", 0, 100, &temperature) < 0 ||
        ag_config_double(cfg, "eval.top_p", 0, 1, &top_p) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    char *end;
    const char *seed_text = ag_config_str(cfg, "eval.seed");
    errno = 0;
    unsigned long long seed = strtoull(seed_text, &end, 10);
    if (errno || end == seed_text || *end) {
        fprintf(stderr, "agora-eval: eval.seed: expected an unsigned integer\n");
        ag_config_destroy(&cfg);
        return 2;
    }
    ag_runner_game_t game;
    char options[8192];
    snprintf(options, sizeof options, "%s%s%s", ag_config_str(cfg, "game.options"),
             extra[0] && ag_config_str(cfg, "game.options")[0] ? "," : "", extra);
    const char *env = ag_config_str(cfg, "eval.env");
    char first_env[512];
    snprintf(first_env, sizeof first_env, "%.*s", (int)strcspn(env, ", "), env);

    ag_runner_config_t rc_cfg = {
        .env = env,
        .options = options,
        .slots = (int)slots,
        .max_action_tokens = (int)max_action,
        .sample = {(float)temperature, (float)top_p},
        .seed = seed,
        .max_episodes = (uint64_t)games,
        .retry_failed = true,
        .env_timeout_ms = (int)env_timeout,
        .invalid_retries = (int)invalid_retries,
    };
    eval_t ev = {0};
    ag_model_t *models[AG_RUNNER_MAX_POLICIES] = {0};
    const char *paths[AG_RUNNER_MAX_POLICIES] = {0};
    const char *bots[AG_RUNNER_MAX_SEATS];
    int n_bots = 0, status = 1;
    void *zctx = NULL;
    char err[512];

    /* Seats: every seat the game has must be given. */
    const char *specs[4];
    int n_specs = 0;
    for (int s = 0; s < 4; s++) {
        char key[32];
        snprintf(key, sizeof key, "eval.seat%d", s);
        specs[s] = ag_config_str(cfg, key);
        if (specs[s][0])
            n_specs = s + 1;
    }
    for (int s = 0; s < n_specs; s++) {
        if (!specs[s][0]) {
            ag_error("eval", "seat %d has no player (--seat%d)", s, s);
            goto out;
        }
        if (!strncmp(specs[s], "bot:", 4)) {
            rc_cfg.seats[s].policy = -1;
            snprintf(rc_cfg.seats[s].bot, sizeof rc_cfg.seats[s].bot, "%s", specs[s] + 4);
            bots[n_bots++] = specs[s] + 4;
            continue;
        }
        int p = 0;
        while (p < rc_cfg.n_policies && strcmp(paths[p], specs[s]) != 0)
            p++;
        if (p == rc_cfg.n_policies) {
            if (p == AG_RUNNER_MAX_POLICIES) {
                ag_error("eval", "at most %d different checkpoints", AG_RUNNER_MAX_POLICIES);
                goto out;
            }
            int lrc;
            models[p] = ag_ckpt_load(specs[s], (int)threads, NULL, &lrc, err, sizeof err);
            if (!models[p]) {
                ag_error("eval", "seat %d: cannot load checkpoint %s: %s", s, specs[s], err);
                goto out;
            }
            paths[p] = specs[s];
            rc_cfg.n_policies++;
        }
        rc_cfg.seats[s].policy = p;
    }
    if (ag_runner_find_game(first_env, ag_config_str(cfg, "game.name"), bots, n_bots, 10000, &game,
                            err, sizeof err) < 0) {
        ag_error("eval", "%s", err);
        goto out;
    }
    int players = game.players;
    if (players != n_specs) {
        ag_error("eval", "%s has %d players: give --seat0 .. --seat%d", game.name, players,
                 players - 1);
        goto out;
    }
    rc_cfg.game = game.name;
    rc_cfg.n_seats = players;
    rc_cfg.on_episode = s_on_episode;
    rc_cfg.arg = &ev;
    ev.n_seats = players;
    const char *rm_endpoint = ag_config_str(cfg, "eval.reward");
    if (rm_endpoint[0] &&
        (players != 2 || rc_cfg.seats[0].policy < 0 || rc_cfg.seats[1].policy < 0))
        ag_warn("eval",
                "--reward: rm_pairwise_accuracy needs a two-seat game with both seats "
                "played by checkpoints (a bot seat's transcript stays on the env server); no "
                "game will be scored");

    uv_loop_init(&ev.loop);
    zctx = zmq_ctx_new();
    ev.runner = ag_runner_create(&ev.loop, zctx, &rc_cfg);
    if (!ev.runner)
        goto out_loop;
    if (rm_endpoint[0]) {
        ag_reward_client_opts_t ro = {
            .endpoint = rm_endpoint,
            .model = ag_config_str(cfg, "eval.reward_model"),
        };
        ev.rm = ag_reward_client_create(&ev.loop, zctx, &ro);
        if (!ev.rm)
            goto out_loop;
    }
    for (int p = 0; p < rc_cfg.n_policies; p++) {
        char label[AG_RUNNER_NAME_MAX];
        snprintf(label, sizeof label, "ckpt:%s", paths[p]);
        if (ag_runner_set_policy(ev.runner, p, models[p], 0, label, false) < 0) {
            ag_error("eval", "cannot set up sampling for %s", paths[p]);
            goto out_loop;
        }
    }
    ev.signals = ag_signals_create(&ev.loop, s_on_signal, &ev);
    uint64_t t0 = uv_hrtime();
    if (ag_runner_start(ev.runner) < 0)
        goto out_loop;
    bool busy = false;
    uint64_t rm_until = 0;
    while (true) {
        if (ag_runner_done(ev.runner)) {
            /* The last games' scores may still be on their way. */
            if (!ev.rm || ag_reward_client_scoring(ev.rm) == 0 || ev.interrupted)
                break;
            if (!rm_until)
                rm_until = uv_now(&ev.loop) + RM_WAIT_MS;
            if (uv_now(&ev.loop) >= rm_until) {
                ag_warn("eval", "%zu games still unscored by the reward server after %d s",
                        ag_reward_client_scoring(ev.rm), RM_WAIT_MS / 1000);
                break;
            }
        }
        uv_run(&ev.loop, busy ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        int n = ag_runner_sample(ev.runner);
        if (n < 0) {
            ag_runner_abandon(ev.runner);
            ev.interrupted = true;
        }
        busy = n > 0;
    }
    double wall = (double)(uv_hrtime() - t0) * 1e-9;
    ag_runner_stats_t st;
    ag_runner_get_stats(ev.runner, &st);

    ag_jsonw_t j;
    ag_jsonw_begin(&j, stdout);
    ag_jsonw_str(&j, "game", game.name);
    ag_jsonw_str(&j, "options", options);
    for (int s = 0; s < players; s++) {
        char key[32];
        snprintf(key, sizeof key, "seat%d", s);
        ag_jsonw_str(&j, key, specs[s]);
    }
    ag_jsonw_int(&j, "games", (long long)ev.games);
    ag_jsonw_int(&j, "seed", (long long)seed);
    double g = ev.games ? (double)ev.games : 1.0;
    s_put_mean(&j, &ev, "judge_accuracy", "true_side_won");
    s_put_mean(&j, &ev, "first_accuracy", "first_correct");
    s_put_mean(&j, &ev, "final_accuracy", "final_correct");
    s_put_mean(&j, &ev, "fixed_rate", "fixed");
    s_put_mean(&j, &ev, "broken_rate", "broken");
    s_put_ratio(&j, &ev, "critic_precision", "critic_tp", "critic_fp");
    s_put_ratio(&j, &ev, "critic_recall", "critic_tp", "critic_fn");
    for (int s = 0; s < players; s++) {
        char key[32];
        snprintf(key, sizeof key, "win_rate_seat%d", s);
        ag_jsonw_num(&j, key, (double)ev.wins[s] / g);
        snprintf(key, sizeof key, "mean_return_seat%d", s);
        ag_jsonw_num(&j, key, ev.returns[s] / g);
    }
    ag_jsonw_num(&j, "invalid_rate", (double)ev.invalid / g);
    ag_jsonw_num(&j, "truncated_rate", (double)ev.truncated / g);
    ag_jsonw_object(&j, "metrics");
    for (int k = 0; k < ev.n_metrics; k++)
        ag_jsonw_num(&j, ev.metrics[k].name, ev.metrics[k].sum / (double)ev.metrics[k].n);
    ag_jsonw_end_object(&j);
    uint64_t rm_unscored = 0;
    if (ev.rm) {
        rm_unscored = ev.rm_failed + ag_reward_client_scoring(ev.rm);
        ag_jsonw_str(&j, "rm_model", ag_config_str(cfg, "eval.reward_model"));
        ag_jsonw_num(&j, "rm_pairwise_accuracy",
                     ev.rm_pairs ? (double)ev.rm_correct / (double)ev.rm_pairs : NAN);
        ag_jsonw_int(&j, "rm_pairs", (long long)ev.rm_pairs);
        ag_jsonw_num(&j, "rm_pairwise_accuracy_decided",
                     ev.rm_pairs_decided
                         ? (double)ev.rm_correct_decided / (double)ev.rm_pairs_decided
                         : NAN);
        ag_jsonw_int(&j, "rm_pairs_decided", (long long)ev.rm_pairs_decided);
        ag_jsonw_int(&j, "rm_unscored", (long long)rm_unscored);
    }
    ag_jsonw_int(&j, "dropped_context", (long long)st.dropped_ctx);
    ag_jsonw_int(&j, "invalid_resampled", (long long)st.invalid_resampled);
    ag_jsonw_int(&j, "invalid_ended", (long long)ev.invalid_ended);
    ag_jsonw_int(&j, "env_errors", (long long)st.env_errors);
    ag_jsonw_int(&j, "env_overloaded", (long long)st.overloaded);
    ag_jsonw_int(&j, "tokens_sampled", (long long)st.tokens_sampled);
    ag_jsonw_num(&j, "tokens_per_s", wall > 0 ? (double)st.tokens_sampled / wall : 0.0);
    ag_jsonw_num(&j, "sampler_tokens_per_s",
                 st.sample_s > 0 ? (double)st.tokens_sampled / st.sample_s : 0.0);
    ag_jsonw_num(&j, "wall_s", wall);
    ag_jsonw_end(&j);
    fflush(stdout);
    /* Games dropped for the context or ended on refused actions were played. */
    bool lost = ev.games + st.dropped_ctx + ev.invalid_ended < (uint64_t)games;
    status = ev.interrupted || lost || rm_unscored ? 1 : 0;
    if (ev.games < (uint64_t)games)
        ag_warn("eval",
                "%llu of %ld games finished (%llu dropped: context full; %llu ended: actions "
                "refused as invalid)",
                (unsigned long long)ev.games, games, (unsigned long long)st.dropped_ctx,
                (unsigned long long)ev.invalid_ended);
    if (ev.games == 0 && !ev.interrupted) {
        ag_error("eval",
                 "no game of %s was played to the end: %llu dropped because a transcript "
                 "overflowed a checkpoint's context (model.ctx), %llu ended after actions "
                 "refused as invalid, %llu lost to env errors (exit status 3)",
                 game.name, (unsigned long long)st.dropped_ctx,
                 (unsigned long long)ev.invalid_ended, (unsigned long long)st.env_errors);
        status = 3;
    }

out_loop:
    ag_reward_client_destroy(&ev.rm);
    free(ev.text[0]);
    free(ev.text[1]);
    ag_runner_destroy(&ev.runner);
    ag_signals_destroy(&ev.signals);
    uv_run(&ev.loop, UV_RUN_DEFAULT);
    uv_loop_close(&ev.loop);
    if (zctx)
        zmq_ctx_term(zctx);
out:
    for (int p = 0; p < AG_RUNNER_MAX_POLICIES; p++)
        ag_model_destroy(&models[p]);
    ag_config_destroy(&cfg);
    return status;
}
