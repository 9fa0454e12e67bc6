/*
 * actor.c - agora-actor: plays many episodes at once against env servers
 * with the learner's current policy and ships them to the learner as
 * trajectories.
 *
 * Parts (all on one libuv loop, one thread): the episode runner (runner.h:
 * env requests, batched KV-cached sampling), the policy source
 * (policy_source.h: weights snapshot + PUB updates + league snapshots), the
 * shipper (shipper.h: outbox, resends until acknowledged). The loop runs
 * without blocking while there is sampling to do and blocks for events
 * otherwise, so env replies, acks and weights are handled between two
 * forward passes (a forward pass over every slot takes milliseconds).
 *
 * Seats (actor.seat0, actor.seat1, ...): `self` (the current policy,
 * trainable), `league` (a past snapshot from the learner's league, redrawn
 * every actor.league_refresh_s; the current weights until the league has
 * one), `bot:NAME` (played by the env server). New weights are applied
 * between generations: the runner holds the seats of that policy, lets
 * actions in progress finish, the weights are loaded, and the live
 * episodes' transcripts are fed again with the new weights; each turn
 * records the version that generated it.
 *
 * Episode seeds are drawn from (actor.seed, actor.id, episode number) and
 * kept below 1000000000, the first seed agora-eval uses for held-out games.
 *
 * Stops after actor.max_episodes episodes (0 = never) or on SIGTERM/SIGINT:
 * live episodes are abandoned (closed on the env server), what is in the
 * outbox is sent at once, and the actor waits up to actor.drain_ms for the
 * acknowledgements; a second signal exits at once.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "jsonw.h"
#include "log.h"
#include "policy_source.h"
#include "runner.h"
#include "shipper.h"
#include "signals.h"

#define MAX_SEAT_OPTS 8
#define TRAIN_SEED_LIMIT 1000000000ULL

enum { POL_CURRENT = 0, POL_LEAGUE = 1 };

static const ag_option_t s_options[] = {
    {"actor.id", "id", "", "actor name in trajectory ids (default HOST-PID)"},
    {"actor.env", "env", "tcp://127.0.0.1:5570", "env server endpoint(s), comma-separated"},
    {"actor.learner_trajectories", "learner-trajectories", "tcp://127.0.0.1:5580",
     "learner's trajectory socket"},
    {"actor.learner_weights", "learner-weights", "tcp://127.0.0.1:5581",
     "learner's weights PUB socket"},
    {"actor.learner_control", "learner-control", "tcp://127.0.0.1:5582",
     "learner's control socket (weight snapshots, status, league)"},
    {"actor.seat0", "seat0", "self", "seat 0: self, league or bot:NAME"},
    {"actor.seat1", "seat1", "self", "seat 1: self, league or bot:NAME"},
    {"actor.seat2", NULL, "self", "seat 2 (games with more players)"},
    {"actor.seat3", NULL, "self", "seat 3"},
    {"actor.seat4", NULL, "self", "seat 4"},
    {"actor.seat5", NULL, "self", "seat 5"},
    {"actor.seat6", NULL, "self", "seat 6"},
    {"actor.seat7", NULL, "self", "seat 7"},
    {"actor.slots", "slots", "64", "episodes in flight (one batched forward pass for all)"},
    {"actor.max_action_tokens", "max-action-tokens", "48",
     "longest action in tokens; a longer one is cut and judged as it is"},
    {"actor.temperature", "temperature", "1", "sampling temperature"},
    {"actor.top_p", "top-p", "1", "nucleus sampling mass (1 = full distribution)"},
    {"actor.seed", "seed", "1", "seed of episode seeds and sampling"},
    {"actor.threads", "threads", "1", "compute threads (0 = every CPU)"},
    {"actor.max_episodes", "max-episodes", "0", "stop after this many episodes (0 = never)"},
    {"actor.outbox", "outbox", "4096", "trajectories kept until acknowledged (oldest dropped)"},
    {"actor.batch", "batch", "64", "trajectories per submission (1..64)"},
    {"actor.resend_ms", "resend-ms", "2000", "resend a trajectory unacknowledged this long"},
    {"actor.max_per_version", "max-per-version", "0",
     "pause after producing this many trajectories with one policy version (0 = never)"},
    {"actor.max_unacked", "max-unacked", "128",
     "start no new action while this many trajectories wait for an acknowledgement"},
    {"actor.flush_ms", "flush-ms", "100", "how often finished trajectories are sent"},
    {"actor.poll_ms", "poll-ms", "5000", "how often the learner's status is checked"},
    {"actor.league_refresh_s", "league-refresh-s", "60", "draw another league opponent this often"},
    {"actor.log_interval_s", "log-interval-s", "5", "throughput log line period"},
    {"actor.metrics", "metrics", "", "append one JSON record per log line to this file"},
    {"actor.drain_ms", "drain-ms", "3000", "on stop, wait this long for acknowledgements"},
    {"actor.env_timeout_ms", "env-timeout-ms", "5000", "deadline of one env request"},
    {"game.name", "game", "debate", "game to play"},
    {"game.options", "options", "invalid_action=penalize",
     "game options KEY=VALUE,KEY=VALUE sent in Reset"},
};

typedef struct actor {
    uv_loop_t loop;
    void *zctx;
    ag_config_t *cfg;
    char id[256];
    uint64_t run_id;
    uint64_t seed_base;
    ag_rng_t rng;
    ag_runner_config_t rcfg;
    ag_runner_t *runner;
    ag_policy_source_t *ps;
    ag_shipper_t *ship;
    ag_signals_t *signals;
    ag_model_t *model[2];
    bool has_self, has_league;
    long threads, league_refresh_s, log_interval_s, drain_ms;
    uint64_t version;
    uint64_t swaps;
    uint64_t untrainable;
    uv_timer_t stats_timer, league_timer;
    FILE *metrics;
    /* throughput between two log lines */
    uint64_t last_ns;
    ag_runner_stats_t last;
    long max_unacked, max_per_version;
    uint64_t budget_base; /* trajectories produced when the current weights arrived */
    bool throttled;
    bool stopping, quit;
    uint64_t drain_until;
    int exit_code;
} actor_t;

static uint64_t s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t s_game_seed(void *arg, uint64_t n)
{
    actor_t *a = arg;
    uint64_t x = a->seed_base ^ (n * 0x9e3779b97f4a7c15ULL);
    return ag_splitmix64(&x) % TRAIN_SEED_LIMIT;
}

static uint64_t s_random_u64(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v)
            v = 0;
        close(fd);
    }
    uint64_t x = v ^ uv_hrtime() ^ ((uint64_t)getpid() << 32);
    return ag_splitmix64(&x);
}

static void s_on_episode(void *arg, const ag_runner_result_t *res)
{
    actor_t *a = arg;
    int rc = ag_shipper_add(a->ship, res);
    if (rc == 1)
        a->untrainable++;
    else if (rc < 0)
        ag_warn("actor", "cannot queue trajectory: %s", strerror(-rc));
}

static void s_log_stats(actor_t *a, bool final)
{
    if (!a->runner)
        return;
    ag_runner_stats_t st;
    ag_runner_get_stats(a->runner, &st);
    ag_shipper_stats_t sh;
    ag_shipper_get_stats(a->ship, &sh);
    uint64_t now = uv_hrtime();
    double dt = (double)(now - a->last_ns) * 1e-9;
    if (dt <= 0)
        dt = 1e-9;
    double eps = (double)(st.finished - a->last.finished) / dt;
    double tps = (double)(st.tokens_sampled - a->last.tokens_sampled) / dt;
    double rps = (double)(st.tokens_fed - a->last.tokens_fed) / dt;
    double busy = (st.sample_s - a->last.sample_s) / dt;
    ag_info("actor",
            "%s v%llu | %.1f episodes/s | %.0f tokens/s sampled (%.0f rows/s, model busy "
            "%.0f%%) | episodes %llu | outbox %zu | acked %llu dup %llu stale %llu | dropped: "
            "context %llu env %llu outbox %llu",
            final ? "final:" : "", (unsigned long long)a->version, eps, tps, rps, busy * 100.0,
            (unsigned long long)st.finished, ag_shipper_pending(a->ship),
            (unsigned long long)sh.accepted, (unsigned long long)sh.duplicate,
            (unsigned long long)sh.stale, (unsigned long long)st.dropped_ctx,
            (unsigned long long)st.env_errors, (unsigned long long)sh.dropped);
    if (a->metrics) {
        ag_jsonw_t j;
        ag_jsonw_begin(&j, a->metrics);
        ag_jsonw_str(&j, "actor_id", a->id);
        ag_jsonw_num(&j, "time_s", (double)now * 1e-9);
        ag_jsonw_int(&j, "version", (long long)a->version);
        ag_jsonw_num(&j, "episodes_per_s", eps);
        ag_jsonw_num(&j, "tokens_per_s", tps);
        ag_jsonw_num(&j, "rows_per_s", rps);
        ag_jsonw_num(&j, "model_busy", busy);
        ag_jsonw_int(&j, "episodes", (long long)st.finished);
        ag_jsonw_int(&j, "tokens_sampled", (long long)st.tokens_sampled);
        ag_jsonw_int(&j, "invalid_actions", (long long)st.invalid_actions);
        ag_jsonw_int(&j, "dropped_context", (long long)st.dropped_ctx);
        ag_jsonw_int(&j, "env_errors", (long long)st.env_errors);
        ag_jsonw_int(&j, "weight_swaps", (long long)a->swaps);
        ag_jsonw_int(&j, "refed_rows", (long long)st.refed);
        ag_jsonw_int(&j, "outbox", (long long)ag_shipper_pending(a->ship));
        ag_jsonw_int(&j, "sent", (long long)sh.sent);
        ag_jsonw_int(&j, "resent", (long long)sh.resent);
        ag_jsonw_int(&j, "accepted", (long long)sh.accepted);
        ag_jsonw_int(&j, "duplicate", (long long)sh.duplicate);
        ag_jsonw_int(&j, "stale", (long long)sh.stale);
        ag_jsonw_int(&j, "rejected", (long long)sh.rejected);
        ag_jsonw_int(&j, "dropped_outbox", (long long)sh.dropped);
        ag_jsonw_end(&j);
        fflush(a->metrics);
    }
    a->last = st;
    a->last_ns = now;
}

static void s_on_stats_timer(uv_timer_t *t)
{
    s_log_stats(t->data, false);
}

/* Asks for a random league snapshot (the swap happens in s_apply_weights). */
static void s_on_league_timer(uv_timer_t *t)
{
    actor_t *a = t->data;
    size_t n;
    const uint64_t *v = ag_policy_source_league(a->ps, &n);
    if (n)
        ag_policy_source_fetch_league(a->ps, v[ag_rng_below(&a->rng, (uint32_t)n)]);
}

static void s_begin_stop(actor_t *a, const char *why)
{
    if (a->stopping)
        return;
    a->stopping = true;
    ag_info("actor", "%s: sending %zu pending trajectories", why,
            a->ship ? ag_shipper_pending(a->ship) : (size_t)0);
    if (a->runner)
        ag_runner_abandon(a->runner);
    if (a->ship)
        ag_shipper_flush(a->ship, true);
    a->drain_until = uv_now(&a->loop) + (uint64_t)a->drain_ms;
    uv_stop(&a->loop);
}

static void s_on_signal(void *arg, int signum)
{
    actor_t *a = arg;
    if (a->stopping) {
        ag_warn("actor", "signal %d again: exiting now", signum);
        a->quit = true;
        uv_stop(&a->loop);
        return;
    }
    char why[32];
    snprintf(why, sizeof why, "signal %d", signum);
    s_begin_stop(a, why);
}

/* First weights: build the models and the runner, then start playing. */
static int s_setup(actor_t *a)
{
    const ag_model_config_t *mc = ag_policy_source_config(a->ps);
    a->model[POL_CURRENT] = ag_model_create(mc, 0, (int)a->threads);
    if (!a->model[POL_CURRENT])
        return -ENOMEM;
    uint64_t v;
    if (ag_policy_source_take(a->ps, a->model[POL_CURRENT], &v) < 0)
        return -EINVAL;
    a->version = v;
    ag_info("actor", "weights version %llu (d_model %d, %d layers, ctx %d)", (unsigned long long)v,
            mc->d_model, mc->n_layers, mc->ctx);
    a->runner = ag_runner_create(&a->loop, a->zctx, &a->rcfg);
    if (!a->runner)
        return -EINVAL;
    int rc =
        ag_runner_set_policy(a->runner, POL_CURRENT, a->model[POL_CURRENT], v, "current", true);
    if (rc == 0 && a->has_league) {
        a->model[POL_LEAGUE] = ag_model_create(mc, 0, (int)a->threads);
        if (!a->model[POL_LEAGUE])
            return -ENOMEM;
        ag_model_load_params(a->model[POL_LEAGUE], ag_model_params_const(a->model[POL_CURRENT]),
                             ag_model_num_params(a->model[POL_CURRENT]));
        char label[64];
        snprintf(label, sizeof label, "league:%llu", (unsigned long long)v);
        rc = ag_runner_set_policy(a->runner, POL_LEAGUE, a->model[POL_LEAGUE], v, label, false);
        uv_timer_start(&a->league_timer, s_on_league_timer, 1000,
                       (uint64_t)a->league_refresh_s * 1000);
    }
    if (rc == 0)
        rc = ag_runner_start(a->runner);
    a->last_ns = uv_hrtime();
    return rc;
}

/*
 * New weights are applied only when no seat of that policy is mid-action:
 * while weights wait, the policy's seats start no new action. The same hold
 * is the back-pressure: with actor.max_unacked trajectories not yet
 * acknowledged (a learner that cannot keep up, or is away), or once this
 * actor produced actor.max_per_version trajectories with the weights it
 * samples with (the learner trains on a batch per version), no new action starts, so the actor
 * neither burns the CPU the learner needs nor produces data that would only go stale.
 */
static void s_apply_weights(actor_t *a)
{
    uint64_t v;
    ag_shipper_stats_t sh;
    ag_shipper_get_stats(a->ship, &sh);
    bool throttle =
        ag_shipper_pending(a->ship) >= (size_t)a->max_unacked ||
        (a->max_per_version && sh.added - a->budget_base >= (uint64_t)a->max_per_version);
    if (throttle != a->throttled)
        ag_debug("actor", "%s", throttle ? "learner behind: pausing" : "resuming");
    a->throttled = throttle;
    bool fresh = ag_policy_source_fresh(a->ps, &v);
    if (fresh && ag_runner_acting(a->runner, POL_CURRENT) == 0) {
        if (ag_policy_source_take(a->ps, a->model[POL_CURRENT], &v) == 0 &&
            ag_runner_set_policy(a->runner, POL_CURRENT, a->model[POL_CURRENT], v, "current",
                                 true) == 0) {
            ag_debug("actor", "now sampling with weights version %llu", (unsigned long long)v);
            a->version = v;
            a->swaps++;
            a->budget_base = sh.added;
        }
        fresh = false;
    }
    ag_runner_hold(a->runner, POL_CURRENT, fresh || throttle);
    if (!a->has_league)
        return;
    fresh = ag_policy_source_league_fresh(a->ps, &v);
    if (fresh && ag_runner_acting(a->runner, POL_LEAGUE) == 0) {
        char label[64];
        snprintf(label, sizeof label, "league:%llu", (unsigned long long)v);
        if (ag_policy_source_take_league(a->ps, a->model[POL_LEAGUE], &v) == 0)
            ag_runner_set_policy(a->runner, POL_LEAGUE, a->model[POL_LEAGUE], v, label, false);
        fresh = false;
    }
    ag_runner_hold(a->runner, POL_LEAGUE, fresh || throttle);
}

/* Reads actor.seatN for the game's players into the runner config. */
static int s_seats(actor_t *a, int players, const char **bots, int *n_bots)
{
    a->rcfg.n_seats = players;
    a->rcfg.n_policies = 1;
    for (int s = 0; s < players; s++) {
        char key[32];
        snprintf(key, sizeof key, "actor.seat%d", s);
        const char *spec = ag_config_str(a->cfg, key);
        ag_runner_seat_t *seat = &a->rcfg.seats[s];
        if (!strcmp(spec, "self")) {
            seat->policy = POL_CURRENT;
            a->has_self = true;
        } else if (!strcmp(spec, "league")) {
            seat->policy = POL_LEAGUE;
            a->has_league = true;
            a->rcfg.n_policies = 2;
        } else if (!strncmp(spec, "bot:", 4) && spec[4] && strlen(spec + 4) < sizeof seat->bot) {
            seat->policy = -1;
            snprintf(seat->bot, sizeof seat->bot, "%s", spec + 4);
            bots[(*n_bots)++] = spec + 4;
        } else {
            ag_error("actor", "%s = \"%s\": expected self, league or bot:NAME", key, spec);
            return -EINVAL;
        }
    }
    if (!a->has_self)
        ag_warn("actor", "no seat is \"self\": nothing this actor plays is trainable");
    return 0;
}

int main(int argc, char **argv)
{
    actor_t a = {.exit_code = 1};
    a.cfg = ag_config_create(
        "agora-actor", "[options]",
        "Plays many episodes at once on env servers with the learner's current policy "
        "(batched sampling) and ships them to the learner as trajectories.",
        s_options, sizeof s_options / sizeof s_options[0], 0);
    if (!a.cfg)
        return 1;
    int rc = ag_config_parse_args(a.cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&a.cfg);
        return rc > 0 ? 0 : 2;
    }
    long slots, max_action, outbox, batch, resend_ms, flush_ms, poll_ms, env_timeout, max_episodes;
    double temperature, top_p;
    if (ag_config_long(a.cfg, "actor.slots", 1, 4096, &slots) < 0 ||
        ag_config_long(a.cfg, "actor.max_action_tokens", 1, 4096, &max_action) < 0 ||
        ag_config_long(a.cfg, "actor.threads", 0, 256, &a.threads) < 0 ||
        ag_config_long(a.cfg, "actor.max_episodes", 0, 1L << 62, &max_episodes) < 0 ||
        ag_config_long(a.cfg, "actor.outbox", 1, 1L << 24, &outbox) < 0 ||
        ag_config_long(a.cfg, "actor.batch", 1, AG_SHIPPER_MAX_BATCH, &batch) < 0 ||
        ag_config_long(a.cfg, "actor.resend_ms", 10, 3600000, &resend_ms) < 0 ||
        ag_config_long(a.cfg, "actor.max_unacked", 1, 1L << 24, &a.max_unacked) < 0 ||
        ag_config_long(a.cfg, "actor.max_per_version", 0, 1L << 30, &a.max_per_version) < 0 ||
        ag_config_long(a.cfg, "actor.flush_ms", 1, 60000, &flush_ms) < 0 ||
        ag_config_long(a.cfg, "actor.poll_ms", 10, 3600000, &poll_ms) < 0 ||
        ag_config_long(a.cfg, "actor.league_refresh_s", 1, 86400, &a.league_refresh_s) < 0 ||
        ag_config_long(a.cfg, "actor.log_interval_s", 1, 86400, &a.log_interval_s) < 0 ||
        ag_config_long(a.cfg, "actor.drain_ms", 0, 3600000, &a.drain_ms) < 0 ||
        ag_config_long(a.cfg, "actor.env_timeout_ms", 1, 3600000, &env_timeout) < 0 ||
        ag_config_double(a.cfg, "actor.temperature", 0, 100, &temperature) < 0 ||
        ag_config_double(a.cfg, "actor.top_p", 0, 1, &top_p) < 0) {
        ag_config_destroy(&a.cfg);
        return 2;
    }
    const char *seed_text = ag_config_str(a.cfg, "actor.seed");
    char *end;
    errno = 0;
    unsigned long long seed = strtoull(seed_text, &end, 10);
    if (errno || end == seed_text || *end) {
        fprintf(stderr, "agora-actor: actor.seed: expected an unsigned integer\n");
        ag_config_destroy(&a.cfg);
        return 2;
    }
    if (ag_config_str(a.cfg, "actor.id")[0]) {
        snprintf(a.id, sizeof a.id, "%s", ag_config_str(a.cfg, "actor.id"));
    } else {
        char host[128] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(a.id, sizeof a.id, "%s-%d", host, (int)getpid());
    }
    a.run_id = s_random_u64();
    a.seed_base = ag_splitmix64(&(uint64_t){seed ^ s_hash(a.id)});
    ag_rng_seed(&a.rng, a.seed_base ^ a.run_id);

    const char *game = ag_config_str(a.cfg, "game.name");
    const char *env = ag_config_str(a.cfg, "actor.env");
    char first_env[512], err[512];
    snprintf(first_env, sizeof first_env, "%.*s", (int)strcspn(env, ", "), env);
    const char *bots[AG_RUNNER_MAX_SEATS];
    int n_bots = 0;
    /* Seat bots are checked against the game once the player count is known. */
    int players = ag_runner_game_players(first_env, game, NULL, 0, 60000, err, sizeof err);
    if (players < 0) {
        ag_error("actor", "%s", err);
        goto out_cfg;
    }
    a.rcfg = (ag_runner_config_t){
        .env = env,
        .game = game,
        .options = ag_config_str(a.cfg, "game.options"),
        .slots = (int)slots,
        .max_action_tokens = (int)max_action,
        .sample = {(float)temperature, (float)top_p},
        .seed = a.seed_base,
        .game_seed = s_game_seed,
        .seed_arg = &a,
        .max_episodes = (uint64_t)max_episodes,
        .env_timeout_ms = (int)env_timeout,
        .on_episode = s_on_episode,
        .arg = &a,
    };
    if (s_seats(&a, players, bots, &n_bots) < 0)
        goto out_cfg;
    if (n_bots &&
        ag_runner_game_players(first_env, game, bots, n_bots, 10000, err, sizeof err) < 0) {
        ag_error("actor", "%s", err);
        goto out_cfg;
    }
    const char *metrics_path = ag_config_str(a.cfg, "actor.metrics");
    if (metrics_path[0] && !(a.metrics = fopen(metrics_path, "a"))) {
        ag_error("actor", "cannot open %s: %s", metrics_path, strerror(errno));
        goto out_cfg;
    }

    uv_loop_init(&a.loop);
    a.zctx = zmq_ctx_new();
    ag_policy_source_opts_t pso = {
        .control = ag_config_str(a.cfg, "actor.learner_control"),
        .weights = ag_config_str(a.cfg, "actor.learner_weights"),
        .poll_ms = (int)poll_ms,
        .league = a.has_league,
    };
    ag_shipper_opts_t sho = {
        .endpoint = ag_config_str(a.cfg, "actor.learner_trajectories"),
        .actor_id = a.id,
        .run_id = a.run_id,
        .max_outbox = (size_t)outbox,
        .batch = (int)batch,
        .resend_ms = (int)resend_ms,
        .flush_ms = (int)flush_ms,
    };
    uv_timer_init(&a.loop, &a.stats_timer);
    uv_timer_init(&a.loop, &a.league_timer);
    a.stats_timer.data = a.league_timer.data = &a;
    a.ps = ag_policy_source_create(&a.loop, a.zctx, &pso);
    a.ship = ag_shipper_create(&a.loop, a.zctx, &sho);
    a.signals = ag_signals_create(&a.loop, s_on_signal, &a);
    if (!a.ps || !a.ship || !a.signals)
        goto out_loop;
    ag_info("actor", "actor %s (run %016llx): %s on %s, %ld slots, learner %s", a.id,
            (unsigned long long)a.run_id, game, env, slots, pso.control);
    uv_timer_start(&a.stats_timer, s_on_stats_timer, (uint64_t)a.log_interval_s * 1000,
                   (uint64_t)a.log_interval_s * 1000);

    a.exit_code = 0;
    bool busy = false;
    while (!a.quit) {
        uv_run(&a.loop, busy ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        busy = false;
        if (a.stopping) {
            if (ag_shipper_pending(a.ship) == 0 || uv_now(&a.loop) >= a.drain_until)
                break;
            continue;
        }
        if (!a.runner) {
            if (ag_policy_source_fresh(a.ps, NULL) && (rc = s_setup(&a)) < 0) {
                ag_error("actor", "cannot start playing: %s", strerror(-rc));
                a.exit_code = 1;
                break;
            }
            continue;
        }
        int n = ag_runner_sample(a.runner);
        if (n < 0) {
            a.exit_code = 1;
            s_begin_stop(&a, "sampling failed");
            continue;
        }
        busy = n > 0;
        s_apply_weights(&a);
        if (ag_runner_done(a.runner))
            s_begin_stop(&a, "max_episodes reached");
    }
    if (a.stopping && ag_shipper_pending(a.ship))
        ag_warn("actor", "%zu trajectories not acknowledged at exit", ag_shipper_pending(a.ship));
    s_log_stats(&a, true);

out_loop:
    ag_runner_destroy(&a.runner);
    ag_shipper_destroy(&a.ship);
    ag_policy_source_destroy(&a.ps);
    ag_signals_destroy(&a.signals);
    uv_close((uv_handle_t *)&a.stats_timer, NULL);
    uv_close((uv_handle_t *)&a.league_timer, NULL);
    uv_run(&a.loop, UV_RUN_DEFAULT);
    uv_loop_close(&a.loop);
    zmq_ctx_term(a.zctx);
    ag_model_destroy(&a.model[0]);
    ag_model_destroy(&a.model[1]);
    if (a.metrics)
        fclose(a.metrics);
out_cfg:
    ag_config_destroy(&a.cfg);
    return a.exit_code;
}
