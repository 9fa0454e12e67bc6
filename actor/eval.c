/*
 * eval.c - agora-eval: plays N games of a game on an env server between
 * fixed players (checkpoints or the server's scripted bots) with the actor's
 * episode runner, and prints one JSON line of how they played.
 *
 * The figures are the ones the game declares in its GameSpec (Hello,
 * docs/protocol.md §8.1), under the names it declares: each declared metric
 * over the games (the mean of its per-episode values, or the ratio of two
 * sums), `headline` (the name of the game's headline metric) and
 * `headline_value`; then, for every game, `win_rate_seatN` (the share of
 * games in which seat N's return is > 0, as in the learner's metrics) and
 * `mean_return_seatN`, the invalid and truncated rates, the mean of every
 * metric the game reported (`metrics`), and sampling throughput. A game that
 * declares no headline is headed by the mean return of the first seat a
 * checkpoint plays. No game is known here by name: `game.name` empty plays
 * the first game the server lists.
 *
 * Seats: a checkpoint path, `bot:NAME` (the server's scripted bot), or
 * `self`: the checkpoint given as `eval.policy`, so a run file's [eval]
 * seats can name the evaluated policy without knowing its path.
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
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ckpt.h"
#include "config.h"
#include "kv.h"
#include "env_client.h"
#include "game_metrics.h"
#include "log.h"
#include "reward_client.h"
#include "runner.h"
#include "signals.h"

#define RM_WAIT_MS 60000    /* after the last game, how long scores may take */
#define HELLO_WAIT_MS 10000 /* how long the env server may take to answer Hello */

/* agora-eval's options ([eval] and [game] of a run file), filled from s_options. */
typedef struct eval_opts {
    const char *env, *game, *game_options, *policy;
    const char *seat[AG_RUNNER_MAX_SEATS];
    long games;
    uint64_t seed;
    double temperature, top_p;
    long slots, max_action_tokens, threads, env_timeout_ms, invalid_retries;
    const char *reward, *reward_model;
} eval_opts_t;

#define OPT(f, ...) AG_OPT(eval_opts_t, f, __VA_ARGS__)
#define SEAT(s, alias, help) OPT(seat[s], "eval.seat" #s, alias, "", 0, 0, help)
static const ag_option_t s_options[] = {
    OPT(env, "eval.env", "env", "tcp://127.0.0.1:5570", 1, 0,
        "env server endpoint(s), comma-separated"),
    OPT(game, "game.name", "game", "", 0, 64,
        "game to play (empty = the first game the env server lists)"),
    OPT(game_options, "game.options", "options", "",
        0, 0, "game options KEY=VALUE,KEY=VALUE (--option KEY=VALUE adds one; empty = the "
              "game's defaults)"),
    OPT(policy, "eval.policy", "policy", "", 0, 0, "the checkpoint that seats named `self` play"),
    SEAT(0, "seat0", "seat 0: checkpoint path, bot:NAME or self (eval.policy)"),
    SEAT(1, "seat1", "seat 1: checkpoint path, bot:NAME or self (eval.policy)"),
    SEAT(2, "seat2", "seat 2 (games with more players)"),
    SEAT(3, "seat3", "seat 3"),
    SEAT(4, NULL, "seat 4"),
    SEAT(5, NULL, "seat 5"),
    SEAT(6, NULL, "seat 6"),
    SEAT(7, NULL, "seat 7"),
    OPT(games, "eval.games", "games", "200", 1, 100000000, "games to play"),
    OPT(seed, "eval.seed", "seed", "1000000000", 0, 0, "seed of game 0 (game i uses seed + i)"),
    OPT(temperature, "eval.temperature", "temperature", "1", 0, 100,
        "sampling temperature (0 = greedy)"),
    OPT(top_p, "eval.top_p", "top-p", "1", 0, 1, "nucleus sampling mass (1 = full distribution)"),
    OPT(slots, "eval.slots", "slots", "64", 1, 4096, "games in flight"),
    OPT(max_action_tokens, "eval.max_action_tokens", "max-action-tokens", "48", 1, 4096,
        "longest action in tokens"),
    OPT(threads, "eval.threads", "threads", "1", 0, 256, "threads per model (0 = every CPU)"),
    OPT(env_timeout_ms, "eval.env_timeout_ms", "env-timeout-ms", "5000", 1, 3600000,
        "deadline of one env request"),
    OPT(invalid_retries, "eval.invalid_retries", "invalid-retries", "3", 0, 1000,
        "resample an action the env server refuses as invalid up to this many times in a row, "
        "then end the game (counted as invalid_ended, left out of the averages)"),
    OPT(reward, "eval.reward", "reward", "", 0, 0,
        "reward server: score both transcripts of every two-seat game with a winner and report "
        "rm_pairwise_accuracy (both seats must be checkpoints: bot seats have no transcript "
        "here)"),
    OPT(reward_model, "eval.reward_model", "reward-model", "default", 1, 64,
        "reward model that scores (with --reward)"),
};
#undef SEAT
#undef OPT

typedef struct eval {
    uv_loop_t loop;
    ag_runner_t *runner;
    ag_signals_t *signals;
    int n_seats;
    uint64_t games;
    uint64_t wins[AG_RUNNER_MAX_SEATS];
    double returns[AG_RUNNER_MAX_SEATS];
    uint64_t invalid, truncated, invalid_ended;
    ag_game_metrics_t *metrics;
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
    for (int s = 0; s < res->n_seats; s++) {
        ev->wins[s] += res->returns[s] > 0;
        ev->returns[s] += res->returns[s];
    }
    if (ev->rm)
        s_score_pair(ev, res);
    ag_game_metrics_add(ev->metrics, res->metrics, res->n_metrics);
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


/* A number, or null when it is not finite (JSON has no NaN). */
static json_t *s_num(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/*
 * The result line's figures of how the seats played: the declared metrics
 * under their names and the headline first, then what every game has. A
 * declared name that is one of the line's own keys is left out (with a
 * warning; a reported metric's mean is still under "metrics").
 */
static void s_put_figures(json_t *out, const eval_t *ev, const int *policy)
{
    const ag_game_metrics_t *gm = ev->metrics;
    double g = ev->games ? (double)ev->games : 1.0;
    json_t *common = json_object();
    for (int s = 0; s < ev->n_seats; s++) {
        char key[32];
        snprintf(key, sizeof key, "win_rate_seat%d", s);
        json_object_set_new(common, key, json_real((double)ev->wins[s] / g));
        snprintf(key, sizeof key, "mean_return_seat%d", s);
        json_object_set_new(common, key, json_real(ev->returns[s] / g));
    }
    json_object_set_new(common, "invalid_rate", json_real((double)ev->invalid / g));
    json_object_set_new(common, "truncated_rate", json_real((double)ev->truncated / g));
    json_t *reported = json_object();
    for (size_t k = 0; k < ag_game_metrics_reported(gm); k++)
        json_object_set_new(reported, ag_game_metrics_reported_name(gm, k),
                            json_real(ag_game_metrics_reported_mean(gm, k)));
    json_object_set_new(common, "metrics", reported);

    /* Headline: the declared one, else the mean return of the first seat a checkpoint plays. */
    int h = ag_game_metrics_headline(gm);
    double v = NAN;
    if (h >= 0) {
        json_object_set_new(out, "headline", json_string(ag_game_metrics_name(gm, (size_t)h)));
        if (!ag_game_metrics_value(gm, (size_t)h, &v))
            v = NAN;
    } else {
        int seat = 0;
        for (int s = ev->n_seats - 1; s >= 0; s--)
            if (policy[s] >= 0)
                seat = s;
        char key[32];
        snprintf(key, sizeof key, "mean_return_seat%d", seat);
        json_object_set_new(out, "headline", json_string(key));
        v = ev->returns[seat] / g;
    }
    json_object_set_new(out, "headline_value", s_num(v));
    for (size_t i = 0; i < ag_game_metrics_count(gm); i++) {
        const char *name = ag_game_metrics_name(gm, i);
        if (json_object_get(out, name) || json_object_get(common, name)) {
            ag_warn("eval",
                    "the game's metric %s has the name of a figure of agora-eval's own; "
                    "left out of the line",
                    name);
            continue;
        }
        json_object_set_new(out, name,
                            ag_game_metrics_value(gm, i, &v) ? json_real(v) : json_null());
    }
    json_object_update(out, common);
    json_decref(common);
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
    eval_opts_t o;
    if (ag_config_apply(cfg, &o) < 0) {
        ag_config_destroy(&cfg);
        return 2;
    }
    const uint64_t seed = o.seed;
    const long games = o.games;
    char options[8192];
    if (ag_kv_merge(o.game_options, extra, options, sizeof options) < 0) {
        fprintf(stderr, "agora-eval: game.options and --option: expected KEY=VALUE,KEY=VALUE "
                        "with each key once\n");
        ag_config_destroy(&cfg);
        return 2;
    }
    const char *env = o.env;
    const char *policy = o.policy;
    char first_env[512];
    snprintf(first_env, sizeof first_env, "%.*s", (int)strcspn(env, ", "), env);

    ag_runner_config_t rc_cfg = {
        .env = env,
        .options = options,
        .slots = (int)o.slots,
        .max_action_tokens = (int)o.max_action_tokens,
        .sample = {(float)o.temperature, (float)o.top_p},
        .seed = seed,
        .max_episodes = (uint64_t)games,
        .retry_failed = true,
        .env_timeout_ms = (int)o.env_timeout_ms,
        .invalid_retries = (int)o.invalid_retries,
    };
    eval_t ev = {0};
    ag_model_t *models[AG_RUNNER_MAX_POLICIES] = {0};
    const char *paths[AG_RUNNER_MAX_POLICIES] = {0};
    int policy_of[AG_RUNNER_MAX_SEATS];
    int status = 1;
    void *zctx = NULL;
    char err[1024];
    const Agora__V1__GameSpec *spec = NULL;
    int hello_rc;
    Agora__V1__EnvReply *hello =
        ag_runner_hello_game(first_env, o.game, HELLO_WAIT_MS, &spec, &hello_rc, err, sizeof err);
    if (!hello) {
        ag_error("eval", "%s", err);
        goto out;
    }
    const char *game = spec->name;
    const int players = (int)spec->num_players;
    rc_cfg.game = game;

    /* Seats: every seat the game has must be given, and no other. */
    const char *const *specs = o.seat;
    for (int s = 0; s < AG_RUNNER_MAX_SEATS; s++) {
        if (s >= players && specs[s][0]) {
            ag_error("eval", "%s has %d players: seat %d is not one of them", game, players, s);
            goto out;
        }
    }
    for (int s = 0; s < players; s++) {
        const char *p = specs[s];
        if (!p[0]) {
            ag_error("eval", "%s has %d players: give --seat0 .. --seat%d (seat %d has none)", game,
                     players, players - 1, s);
            goto out;
        }
        if (strchr(p, ',')) {
            ag_error("eval", "seat %d: '%s' names several players; agora-eval plays one per seat",
                     s, p);
            goto out;
        }
        if (!strncmp(p, "bot:", 4)) {
            if (!ag_game_has_bot(spec, p + 4)) {
                ag_error("eval", "seat %d: game \"%s\" has no bot \"%s\"", s, game, p + 4);
                goto out;
            }
            rc_cfg.seats[s].policy = -1;
            snprintf(rc_cfg.seats[s].bot, sizeof rc_cfg.seats[s].bot, "%s", p + 4);
            policy_of[s] = -1;
            continue;
        }
        if (!strcmp(p, "self")) {
            if (!policy[0]) {
                ag_error("eval", "seat %d is self: give the checkpoint it plays (--policy)", s);
                goto out;
            }
            p = policy;
        }
        int k = 0;
        while (k < rc_cfg.n_policies && strcmp(paths[k], p) != 0)
            k++;
        if (k == rc_cfg.n_policies) {
            if (k == AG_RUNNER_MAX_POLICIES) {
                ag_error("eval", "at most %d different checkpoints", AG_RUNNER_MAX_POLICIES);
                goto out;
            }
            int lrc;
            models[k] = ag_ckpt_load(p, (int)o.threads, NULL, &lrc, err, sizeof err);
            if (!models[k]) {
                ag_error("eval", "seat %d: cannot load checkpoint %s: %s", s, p, err);
                goto out;
            }
            paths[k] = p;
            rc_cfg.n_policies++;
        }
        rc_cfg.seats[s].policy = k;
        policy_of[s] = k;
    }
    rc_cfg.n_seats = players;
    rc_cfg.on_episode = s_on_episode;
    rc_cfg.arg = &ev;
    ev.n_seats = players;
    ev.metrics = ag_game_metrics_create(spec);
    if (!ev.metrics)
        goto out;
    const char *rm_endpoint = o.reward;
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
            .model = o.reward_model,
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

    json_t *out = json_object();
    json_object_set_new(out, "game", json_string(game));
    json_object_set_new(out, "options", json_string(options));
    if (policy[0])
        json_object_set_new(out, "policy", json_string(policy));
    for (int s = 0; s < players; s++) {
        char key[32];
        snprintf(key, sizeof key, "seat%d", s);
        json_object_set_new(out, key, json_string(specs[s]));
    }
    json_object_set_new(out, "games", json_integer((json_int_t)ev.games));
    json_object_set_new(out, "seed", json_integer((json_int_t)seed));
    s_put_figures(out, &ev, policy_of);
    uint64_t rm_unscored = 0;
    if (ev.rm) {
        rm_unscored = ev.rm_failed + ag_reward_client_scoring(ev.rm);
        json_object_set_new(out, "rm_model", json_string(o.reward_model));
        json_object_set_new(out, "rm_pairwise_accuracy",
                            s_num(ev.rm_pairs ? (double)ev.rm_correct / (double)ev.rm_pairs : NAN));
        json_object_set_new(out, "rm_pairs", json_integer((json_int_t)ev.rm_pairs));
        json_object_set_new(out, "rm_pairwise_accuracy_decided",
                            s_num(ev.rm_pairs_decided
                                      ? (double)ev.rm_correct_decided / (double)ev.rm_pairs_decided
                                      : NAN));
        json_object_set_new(out, "rm_pairs_decided", json_integer((json_int_t)ev.rm_pairs_decided));
        json_object_set_new(out, "rm_unscored", json_integer((json_int_t)rm_unscored));
    }
    json_object_set_new(out, "dropped_context", json_integer((json_int_t)st.dropped_ctx));
    json_object_set_new(out, "invalid_resampled", json_integer((json_int_t)st.invalid_resampled));
    json_object_set_new(out, "invalid_ended", json_integer((json_int_t)ev.invalid_ended));
    json_object_set_new(out, "env_errors", json_integer((json_int_t)st.env_errors));
    json_object_set_new(out, "env_overloaded", json_integer((json_int_t)st.overloaded));
    json_object_set_new(out, "tokens_sampled", json_integer((json_int_t)st.tokens_sampled));
    /* The timing figures come last: everything before them is the same for the same seed. */
    json_object_set_new(out, "tokens_per_s",
                        json_real(wall > 0 ? (double)st.tokens_sampled / wall : 0.0));
    json_object_set_new(out, "sampler_tokens_per_s",
                        json_real(st.sample_s > 0 ? (double)st.tokens_sampled / st.sample_s : 0.0));
    json_object_set_new(out, "wall_s", json_real(wall));
    if (json_dumpf(out, stdout, JSON_COMPACT | JSON_REAL_PRECISION(10)) < 0 ||
        fputc('\n', stdout) == EOF)
        ag_error("eval", "cannot write the result: %s", strerror(errno));
    json_decref(out);
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
                 game, (unsigned long long)st.dropped_ctx,
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
    ag_game_metrics_destroy(&ev.metrics);
    if (hello)
        agora__v1__env_reply__free_unpacked(hello, NULL);
    ag_config_destroy(&cfg);
    return status;
}
