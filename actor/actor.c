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
 * Reward service (actor.reward*, reward_client.h): with actor.reward_weight != 0 a
 * finished episode is held until the reward server has scored the
 * transcript of every seat its trajectory carries; weight x score is then
 * added to that seat's last turn (where the game's final reward lands),
 * the mean score is recorded as the trajectory's metric `rm_score`, and the
 * trajectory goes to the outbox. The score is part of the data, so a
 * trajectory is never shipped without it: while the reward server is away
 * the episodes wait (and count against actor.max_unacked, which stops new
 * actions), and one the server refuses to score is dropped with a warning.
 * With actor.reward_labels the labels of every finished game (outcomes or
 * preferences) are sent too, fire-and-forget, from a bounded queue; with
 * actor.reward_labels_decided only those of games not settled by the game's
 * coin.
 *
 * Invalid actions (runner.h): an action the env server refuses is a turn
 * penalised by actor.invalid_penalty and the seat samples again, up to
 * actor.invalid_retries times in a row; then the runner ends the episode,
 * which is shipped truncated with the refused seat only (the others have no
 * outcome to learn from) and labels no game.
 *
 * Joining a running job (actor.join = tcp://LEARNER:5582, rendezvous.h):
 * the actor fetches the learner's run file and applies it under its own
 * --config file and command line (which win), takes the learner's advertised
 * trajectory and weights endpoints, its game and the live env servers that
 * host it (waiting for the first), and follows the servers as they join and
 * leave (ag_runner_set_envs). Endpoints set explicitly (actor.env,
 * actor.learner_*) are kept. While the learner does not answer, it retries
 * with backoff; a signal ends the wait (exit 0). A run file or model it cannot
 * honour (an unknown key, a shape it cannot check or receive) is fatal.
 *
 * Stops after actor.max_episodes episodes (0 = never) or on SIGTERM/SIGINT:
 * live episodes are abandoned (closed on the env server), what is in the
 * outbox is sent at once, and the actor waits up to actor.drain_ms for the
 * acknowledgements; a second signal exits at once. When it cannot do its
 * job at all, so that a restart would not help (the env server lacks the
 * game or a bot; actor.overflow_limit episodes in a row overflowed the
 * model's context), it exits with status 3 (AG_EXIT_FATAL), the reason as
 * the last line of its log.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "policy_source.h"
#include "rendezvous.h"
#include "reward_client.h"
#include "runner.h"
#include "shipper.h"
#include "signals.h"

#define MAX_SEAT_OPTS 8
#define TRAIN_SEED_LIMIT 1000000000ULL
#define RM_MAX_LABELS 4096 /* labels kept while the reward server cannot take them */
#define RM_WARN_MS 10000   /* at most one warning this often about unscored trajectories */
/* Exit status of an actor that cannot do its job: restarting it would not help. */
#define AG_EXIT_FATAL 3

enum { POL_CURRENT = 0, POL_LEAGUE = 1 };

/* agora-actor's options ([actor] and [game] of a run file), filled from s_options. */
typedef struct actor_opts {
    const char *id, *join, *env, *learner_trajectories, *learner_weights, *learner_control;
    long join_poll_ms;
    const char *seat[AG_RUNNER_MAX_SEATS];
    long slots, max_action_tokens;
    double temperature, top_p;
    uint64_t seed;
    long threads, max_episodes, outbox, batch, resend_ms, max_per_version, max_unacked;
    long flush_ms, poll_ms;
    double league_refresh_s;
    long log_interval_s;
    const char *metrics;
    long drain_ms, env_timeout_ms, invalid_retries;
    double invalid_penalty;
    long overflow_limit;
    const char *reward, *reward_model;
    double reward_weight;
    int reward_labels; /* ag_reward_labels_t */
    bool reward_labels_decided;
    long reward_timeout_ms;
    const char *game, *game_options;
} actor_opts_t;

static const ag_opt_choice_t s_label_kinds[] = {{"off", AG_REWARD_LABELS_OFF},
                                                {"outcomes", AG_REWARD_LABELS_OUTCOMES},
                                                {"preferences", AG_REWARD_LABELS_PREFERENCES},
                                                {NULL, 0}};

#define OPT(f, ...) AG_OPT(actor_opts_t, f, __VA_ARGS__)
#define SEAT(s, alias, help) OPT(seat[s], "actor.seat" #s, alias, "self", 1, 0, help)
static const ag_option_t s_options[] = {
    OPT(id, "actor.id", "id", "", 0, 200, "actor name in trajectory ids (empty = HOST-PID)"),
    OPT(join, "actor.join", "join", "", 0, AG_RENDEZVOUS_ENDPOINT_MAX,
        "join the job whose learner's control endpoint this is (tcp://LEARNER:5582): the run "
        "file, game, learner endpoints and live env servers come from the learner (what this "
        "actor's --config and command line set explicitly wins)"),
    OPT(join_poll_ms, "actor.join_poll_ms", "join-poll-ms", "2000", 100, 3600000,
        "with actor.join: how often the learner is asked for the live env servers"),
    OPT(env, "actor.env", "env", "tcp://127.0.0.1:5570", 1, 0,
        "env server endpoint(s), comma-separated (with actor.join: used only when set "
        "explicitly, besides the registered ones)"),
    OPT(learner_trajectories, "actor.learner_trajectories", "learner-trajectories",
        "tcp://127.0.0.1:5580", 1, 0, "learner's trajectory socket"),
    OPT(learner_weights, "actor.learner_weights", "learner-weights", "tcp://127.0.0.1:5581", 1,
        0, "learner's weights PUB socket"),
    OPT(learner_control, "actor.learner_control", "learner-control", "tcp://127.0.0.1:5582", 1,
        0, "learner's control socket (weight snapshots, status, league)"),
    SEAT(0, "seat0", "seat 0: self, league or bot:NAME"),
    SEAT(1, "seat1", "seat 1: self, league or bot:NAME"),
    SEAT(2, NULL, "seat 2 (games with more players)"),
    SEAT(3, NULL, "seat 3"),
    SEAT(4, NULL, "seat 4"),
    SEAT(5, NULL, "seat 5"),
    SEAT(6, NULL, "seat 6"),
    SEAT(7, NULL, "seat 7"),
    OPT(slots, "actor.slots", "slots", "64", 1, 4096,
        "episodes in flight (one batched forward pass for all)"),
    OPT(max_action_tokens, "actor.max_action_tokens", "max-action-tokens", "48", 1, 4096,
        "longest action in tokens; a longer one is cut and judged as it is"),
    OPT(temperature, "actor.temperature", "temperature", "1", 0, 100, "sampling temperature"),
    OPT(top_p, "actor.top_p", "top-p", "1", 0, 1,
        "nucleus sampling mass (1 = full distribution)"),
    OPT(seed, "actor.seed", "seed", "1", 0, 0, "seed of episode seeds and sampling"),
    OPT(threads, "actor.threads", "threads", "1", 0, 256, "compute threads (0 = every CPU)"),
    OPT(max_episodes, "actor.max_episodes", "max-episodes", "0", 0, 1L << 62,
        "stop after this many episodes (0 = never)"),
    OPT(outbox, "actor.outbox", "outbox", "4096", 1, 1L << 24,
        "trajectories kept until acknowledged (oldest dropped)"),
    OPT(batch, "actor.batch", "batch", "64", 1, AG_SHIPPER_MAX_BATCH,
        "trajectories per submission"),
    OPT(resend_ms, "actor.resend_ms", "resend-ms", "2000", 10, 3600000,
        "resend a trajectory unacknowledged this long"),
    OPT(max_per_version, "actor.max_per_version", "max-per-version", "0", 0, 1L << 30,
        "pause after producing this many trajectories with one policy version (0 = never)"),
    OPT(max_unacked, "actor.max_unacked", "max-unacked", "128", 1, 1L << 24,
        "start no new action while this many trajectories wait for an acknowledgement"),
    OPT(flush_ms, "actor.flush_ms", "flush-ms", "100", 1, 60000,
        "how often finished trajectories are sent"),
    OPT(poll_ms, "actor.poll_ms", "poll-ms", "5000", 10, 3600000,
        "how often the learner's status is checked"),
    OPT(league_refresh_s, "actor.league_refresh_s", "league-refresh-s", "60", 0.05, 86400,
        "draw another league opponent this often (seconds)"),
    OPT(log_interval_s, "actor.log_interval_s", "log-interval-s", "5", 1, 86400,
        "throughput log line period"),
    OPT(metrics, "actor.metrics", "metrics", "", 0, 0,
        "append one JSON record per log line to this file"),
    OPT(drain_ms, "actor.drain_ms", "drain-ms", "3000", 0, 3600000,
        "on stop, wait this long for acknowledgements"),
    OPT(env_timeout_ms, "actor.env_timeout_ms", "env-timeout-ms", "5000", 1, 3600000,
        "deadline of one env request"),
    OPT(invalid_retries, "actor.invalid_retries", "invalid-retries", "3", 0, 1000,
        "resample an action the env server refuses as invalid (ERROR_INVALID_ACTION) up to this "
        "many times in a row, then end the episode (shipped truncated)"),
    OPT(invalid_penalty, "actor.invalid_penalty", "invalid-penalty", "1", 0, 1e6,
        "subtracted from the reward of each refused action's turn; keep (invalid_retries + 1) x "
        "penalty at least the largest loss the game can give a seat, so that ending a game by "
        "invalid actions never pays"),
    OPT(overflow_limit, "actor.overflow_limit", "overflow-limit", "100", 0, 1L << 40,
        "exit with status 3 when this many episodes in a row were dropped because a transcript "
        "overflowed the model's context (model.ctx), none played to the end in between (0 = "
        "never)"),
    OPT(reward, "actor.reward", "reward", "", 0, 0,
        "reward server, e.g. tcp://127.0.0.1:5560 (empty = no reward service)"),
    OPT(reward_model, "actor.reward_model", "reward-model", "default", 1, 64,
        "reward model that scores and learns"),
    OPT(reward_weight, "actor.reward_weight", "reward-weight", "0", -1e6, 1e6,
        "add weight x score to each shipped seat's final reward (0 = do not score)"),
    AG_OPT_CHOICE(actor_opts_t, reward_labels, "actor.reward_labels", "reward-labels", "off",
                  s_label_kinds, "labels sent for every finished game"),
    OPT(reward_labels_decided, "actor.reward_labels_decided", "reward-labels-decided", "false",
        0, 0,
        "label only games decided on their merits, not by the game's coin (outcome info "
        "reason=coin): a coin toss says nothing about which transcript was better"),
    OPT(reward_timeout_ms, "actor.reward_timeout_ms", "reward-timeout-ms", "5000", 1, 3600000,
        "deadline of one reward request (two attempts, then the server is taken as down)"),
    OPT(game, "game.name", "game", "", 0, 64,
        "game to play (empty = the first game the env server lists)"),
    OPT(game_options, "game.options", "options", "", 0, 0,
        "game options KEY=VALUE,KEY=VALUE sent in Reset"),
};
#undef SEAT
#undef OPT

/* A finished episode waiting for its reward scores: an own copy of the
 * runner's result (which is valid during the callback only). */
typedef struct held {
    struct held *prev, *next;
    struct actor *a;
    ag_runner_result_t res;
    ag_seq_t seqs[AG_RUNNER_MAX_SEATS];
    char labels[AG_RUNNER_MAX_SEATS][AG_RUNNER_NAME_MAX + 8];
    char *game;
    Agora__V1__KeyValue *kv;
    Agora__V1__KeyValue **kv_ptrs;
    Agora__V1__Metric *metrics;
    Agora__V1__Metric **metric_ptrs;
    int scored[AG_RUNNER_MAX_SEATS]; /* the seats sent for scoring, in order */
    int n_scored;
} held_t;

typedef struct actor {
    uv_loop_t loop;
    void *zctx;
    ag_config_t *cfg;
    ag_config_t *own_cfg; /* with actor.join: this actor's own options, before the learner's */
    ag_run_config_t run;  /* with actor.join: what the learner handed out */
    ag_env_watch_t *watch;
    char statics[AG_RENDEZVOUS_LIST_MAX]; /* env servers set explicitly */
    char listed[AG_RENDEZVOUS_LIST_MAX];  /* env servers the learner listed at the start */
    char envs[2 * AG_RENDEZVOUS_LIST_MAX + 2]; /* the env servers played on */
    actor_opts_t o;
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
    uint64_t version;
    uint64_t swaps;
    uint64_t league_version, league_swaps; /* the league opponent in use; its changes */
    uint64_t untrainable;
    uv_timer_t stats_timer, league_timer;
    FILE *metrics;
    /* throughput between two log lines */
    uint64_t last_ns;
    ag_runner_stats_t last;
    uint64_t budget_base; /* trajectories produced when the current weights arrived */
    bool throttled;
    bool stopping, quit;
    uint64_t drain_until;
    int exit_code;
    char fatal[512]; /* why the actor cannot do its job (exit status AG_EXIT_FATAL) */
    uint64_t produced; /* trajectories produced (shipped or waiting for scores) */
    /* reward service */
    ag_reward_client_t *rm;
    held_t *held; /* waiting for scores */
    size_t n_held;
    uint64_t rm_dropped, rm_dropped_logged;
    uint64_t rm_last_warn;
    char *text[AG_RUNNER_MAX_SEATS];
    size_t text_cap[AG_RUNNER_MAX_SEATS];
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

static void s_ship(actor_t *a, const ag_runner_result_t *res)
{
    int rc = ag_shipper_add(a->ship, res);
    if (rc < 0)
        ag_warn("actor", "cannot queue trajectory: %s", strerror(-rc));
}

static void s_held_free(held_t *h)
{
    for (int s = 0; s < AG_RUNNER_MAX_SEATS; s++)
        ag_seq_finish(&h->seqs[s]);
    for (size_t i = 0; i < h->res.n_info; i++) {
        free(h->kv[i].key);
        free(h->kv[i].value);
    }
    for (size_t i = 0; i < h->res.n_metrics; i++)
        free(h->metrics[i].name);
    free(h->kv);
    free(h->kv_ptrs);
    free(h->metrics);
    free(h->metric_ptrs);
    free(h->game);
    free(h);
}

static int s_seq_copy(ag_seq_t *d, const ag_seq_t *q)
{
    ag_seq_init(d);
    size_t n = q->len ? q->len : 1, k = q->n_turns ? q->n_turns : 1;
    d->tokens = malloc(n * sizeof *d->tokens);
    d->generated = malloc(n);
    d->logprobs = malloc(n * sizeof *d->logprobs);
    d->values = malloc(n * sizeof *d->values);
    d->turn_end = malloc(k * sizeof *d->turn_end);
    d->turn_rewards = malloc(k * sizeof *d->turn_rewards);
    d->turn_version = malloc(k * sizeof *d->turn_version);
    if (!d->tokens || !d->generated || !d->logprobs || !d->values || !d->turn_end ||
        !d->turn_rewards || !d->turn_version)
        return -ENOMEM;
    memcpy(d->tokens, q->tokens, q->len * sizeof *d->tokens);
    memcpy(d->generated, q->generated, q->len);
    memcpy(d->logprobs, q->logprobs, q->len * sizeof *d->logprobs);
    memcpy(d->values, q->values, q->len * sizeof *d->values);
    memcpy(d->turn_end, q->turn_end, q->n_turns * sizeof *d->turn_end);
    memcpy(d->turn_rewards, q->turn_rewards, q->n_turns * sizeof *d->turn_rewards);
    memcpy(d->turn_version, q->turn_version, q->n_turns * sizeof *d->turn_version);
    d->len = d->cap = q->len;
    d->n_turns = d->turns_cap = q->n_turns;
    d->pending_reward = q->pending_reward;
    return 0;
}

/* A copy of what s_ship needs of res (the seats it carries, info, metrics,
 * plus room for one more metric: rm_score). NULL when out of memory. */
static held_t *s_hold(actor_t *a, const ag_runner_result_t *res)
{
    held_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->a = a;
    h->res = *res;
    h->game = strdup(res->game ? res->game : "");
    h->kv = calloc(res->n_info + 1, sizeof *h->kv);
    h->kv_ptrs = calloc(res->n_info + 1, sizeof *h->kv_ptrs);
    h->metrics = calloc(res->n_metrics + 1, sizeof *h->metrics);
    h->metric_ptrs = calloc(res->n_metrics + 1, sizeof *h->metric_ptrs);
    h->res.n_info = h->res.n_metrics = 0;
    h->res.game = h->game;
    h->res.info = h->kv_ptrs;
    h->res.metrics = h->metric_ptrs;
    if (!h->game || !h->kv || !h->kv_ptrs || !h->metrics || !h->metric_ptrs)
        goto fail;
    for (size_t i = 0; i < res->n_info; i++) {
        agora__v1__key_value__init(&h->kv[i]);
        h->kv_ptrs[i] = &h->kv[i];
        h->res.n_info++;
        h->kv[i].key = strdup(res->info[i]->key ? res->info[i]->key : "");
        h->kv[i].value = strdup(res->info[i]->value ? res->info[i]->value : "");
        if (!h->kv[i].key || !h->kv[i].value)
            goto fail;
    }
    for (size_t i = 0; i < res->n_metrics; i++) {
        agora__v1__metric__init(&h->metrics[i]);
        h->metric_ptrs[i] = &h->metrics[i];
        h->res.n_metrics++;
        h->metrics[i].value = res->metrics[i]->value;
        h->metrics[i].name = strdup(res->metrics[i]->name ? res->metrics[i]->name : "");
        if (!h->metrics[i].name)
            goto fail;
    }
    for (int s = 0; s < res->n_seats; s++) {
        snprintf(h->labels[s], sizeof h->labels[s], "%s", res->label[s] ? res->label[s] : "");
        h->res.label[s] = h->labels[s];
        h->res.seq[s] = NULL;
        if (ag_shipper_carries(res, s)) {
            if (s_seq_copy(&h->seqs[s], res->seq[s]) < 0)
                goto fail;
            h->res.seq[s] = &h->seqs[s];
        }
    }
    return h;
fail:
    s_held_free(h);
    return NULL;
}

static void s_unhold(actor_t *a, held_t *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else
        a->held = h->next;
    if (h->next)
        h->next->prev = h->prev;
    a->n_held--;
}

/* A trajectory that cannot get its score is not shipped; say so, but not for every one. */
static void s_drop_unscored(actor_t *a, int status)
{
    a->rm_dropped++;
    uint64_t now = uv_now(&a->loop);
    if (a->rm_last_warn && now - a->rm_last_warn < RM_WARN_MS)
        return;
    ag_warn("actor",
            "reward server cannot score transcripts (%s): %llu trajectories dropped so "
            "far, not shipped without their reward",
            status == -ENOENT   ? "unknown reward model"
            : status == -EINVAL ? "request refused"
                                : "bad reply",
            (unsigned long long)a->rm_dropped);
    a->rm_last_warn = now ? now : 1;
}

static void s_on_scored(void *arg, int status, const float *scores, size_t n)
{
    held_t *h = arg;
    actor_t *a = h->a;
    s_unhold(a, h);
    if (status == 0 && n == (size_t)h->n_scored) {
        double sum = 0;
        for (int i = 0; i < h->n_scored; i++) {
            ag_seq_t *q = &h->seqs[h->scored[i]];
            q->turn_rewards[q->n_turns - 1] += (float)(a->o.reward_weight * scores[i]);
            sum += scores[i];
        }
        Agora__V1__Metric *m = &h->metrics[h->res.n_metrics];
        agora__v1__metric__init(m);
        m->name = strdup("rm_score");
        m->value = sum / (double)h->n_scored;
        if (m->name) {
            h->metric_ptrs[h->res.n_metrics] = m;
            h->res.n_metrics++;
        }
        s_ship(a, &h->res);
    } else if (status != -ECANCELED) {
        s_drop_unscored(a, status);
    }
    s_held_free(h);
}

/* Seat s's transcript text (ag_runner_transcript) in the actor's scratch. */
static const char *s_text(actor_t *a, const ag_seq_t *q, int s, size_t *len)
{
    if (a->text_cap[s] < q->len + 1) {
        char *t = realloc(a->text[s], q->len + 1);
        if (!t)
            return NULL;
        a->text[s] = t;
        a->text_cap[s] = q->len + 1;
    }
    *len = ag_runner_transcript(q, a->text[s], a->text_cap[s]);
    return a->text[s];
}

static void s_on_episode(void *arg, const ag_runner_result_t *res)
{
    actor_t *a = arg;
    const char *texts[AG_RUNNER_MAX_SEATS] = {0};
    size_t lens[AG_RUNNER_MAX_SEATS] = {0};
    bool trainable = false;
    for (int s = 0; s < res->n_seats; s++) {
        trainable |= ag_shipper_carries(res, s);
        if (a->rm && res->seq[s] && res->seq[s]->n_turns > 0)
            texts[s] = s_text(a, res->seq[s], s, &lens[s]);
    }
    /* A game the runner ended on refused actions has no outcome to label. */
    if (((ag_reward_labels_t)a->o.reward_labels) != AG_REWARD_LABELS_OFF && !res->invalid_ended) {
        int rc = ag_reward_client_label_game(a->rm, ((ag_reward_labels_t)a->o.reward_labels), res->game, res->info, res->n_info,
                                             res->n_seats, res->returns, texts, lens);
        if (rc < 0)
            ag_warn("actor", "cannot queue labels: %s", strerror(-rc));
    }
    if (!trainable) {
        a->untrainable++;
        return;
    }
    a->produced++;
    if (a->o.reward_weight == 0) {
        s_ship(a, res);
        return;
    }
    held_t *h = s_hold(a, res);
    if (!h)
        goto fail;
    ag_reward_item_t items[AG_RUNNER_MAX_SEATS];
    int n = 0;
    for (int s = 0; s < res->n_seats; s++) {
        if (!ag_shipper_carries(res, s))
            continue;
        if (!texts[s])
            goto fail;
        items[n] = (ag_reward_item_t){texts[s], lens[s], (uint32_t)s};
        h->scored[n++] = s;
    }
    h->n_scored = n;
    if (ag_reward_client_score(a->rm, res->game, items, (size_t)n, s_on_scored, h) < 0)
        goto fail;
    h->prev = NULL;
    h->next = a->held;
    if (a->held)
        a->held->prev = h;
    a->held = h;
    a->n_held++;
    return;
fail:
    if (h)
        s_held_free(h);
    ag_warn("actor", "out of memory: trajectory dropped");
    a->rm_dropped++;
}

static void s_put_int(json_t *o, const char *key, uint64_t v)
{
    json_object_set_new(o, key, json_integer((json_int_t)v));
}

/* A figure, or null when it is not a finite number (JSON has none). */
static void s_put_num(json_t *o, const char *key, double v)
{
    json_object_set_new(o, key, isfinite(v) ? json_real(v) : json_null());
}

/* Appends one record to actor.metrics: the counters so far and the rates since the last one. */
static void s_write_metrics(actor_t *a, const ag_runner_stats_t *st, const ag_shipper_stats_t *sh,
                            const ag_reward_client_stats_t *rs, double time_s, double eps,
                            double tps, double rps, double busy)
{
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "actor_id", json_string(a->id));
    s_put_num(o, "time_s", time_s);
    s_put_int(o, "version", a->version);
    s_put_num(o, "episodes_per_s", eps);
    s_put_num(o, "tokens_per_s", tps);
    s_put_num(o, "rows_per_s", rps);
    s_put_num(o, "model_busy", busy);
    s_put_int(o, "episodes", st->finished);
    s_put_int(o, "tokens_sampled", st->tokens_sampled);
    s_put_int(o, "invalid_actions", st->invalid_actions);
    s_put_int(o, "invalid_resampled", st->invalid_resampled);
    s_put_int(o, "invalid_ended", st->invalid_ended);
    s_put_int(o, "dropped_context", st->dropped_ctx);
    s_put_int(o, "env_errors", st->env_errors);
    s_put_int(o, "env_overloaded", st->overloaded);
    s_put_int(o, "weight_swaps", a->swaps);
    if (a->has_league) {
        s_put_int(o, "league_version", a->league_version);
        s_put_int(o, "league_swaps", a->league_swaps);
    }
    s_put_int(o, "refed_rows", st->refed);
    s_put_int(o, "outbox", ag_shipper_pending(a->ship));
    s_put_int(o, "sent", sh->sent);
    s_put_int(o, "resent", sh->resent);
    s_put_int(o, "accepted", sh->accepted);
    s_put_int(o, "duplicate", sh->duplicate);
    s_put_int(o, "stale", sh->stale);
    s_put_int(o, "rejected", sh->rejected);
    s_put_int(o, "overloaded", sh->overloaded);
    s_put_int(o, "dropped_outbox", sh->dropped);
    if (rs) {
        s_put_int(o, "rm_up", ag_reward_client_up(a->rm));
        s_put_int(o, "rm_waiting", a->n_held);
        s_put_int(o, "rm_scored", rs->scored);
        s_put_int(o, "rm_model_version", rs->model_version);
        s_put_int(o, "rm_dropped", a->rm_dropped);
        s_put_int(o, "rm_labels_sent", rs->labels_sent);
        s_put_int(o, "rm_labels_accepted", rs->labels_accepted);
        s_put_int(o, "rm_labels_pending", ag_reward_client_labels_pending(a->rm));
        s_put_int(o, "rm_labels_dropped", rs->labels_dropped);
        s_put_int(o, "rm_games_undecided", rs->games_undecided);
        s_put_int(o, "rm_outages", rs->outages);
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (line) {
        fprintf(a->metrics, "%s\n", line);
        fflush(a->metrics);
        free(line);
    }
    json_decref(o);
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
            "%.0f%%) | episodes %llu | outbox %zu | acked %llu dup %llu stale %llu | env "
            "overloaded %llu | invalid: resampled %llu ended %llu | dropped: context %llu env "
            "%llu outbox %llu",
            final ? "final:" : "", (unsigned long long)a->version, eps, tps, rps, busy * 100.0,
            (unsigned long long)st.finished, ag_shipper_pending(a->ship),
            (unsigned long long)sh.accepted, (unsigned long long)sh.duplicate,
            (unsigned long long)sh.stale, (unsigned long long)st.overloaded,
            (unsigned long long)st.invalid_resampled, (unsigned long long)st.invalid_ended,
            (unsigned long long)st.dropped_ctx, (unsigned long long)st.env_errors,
            (unsigned long long)sh.dropped);
    ag_reward_client_stats_t rs = {0};
    if (a->rm) {
        ag_reward_client_get_stats(a->rm, &rs);
        ag_info("actor",
                "%s reward server %s | %zu episodes wait for scores | %llu transcripts scored "
                "(model v%llu), %llu trajectories dropped unscored | labels: %llu sent, %zu "
                "pending, %llu dropped, %llu games not labelled (decided by the coin)",
                final ? "final:" : "", ag_reward_client_up(a->rm) ? "up" : "DOWN", a->n_held,
                (unsigned long long)rs.scored, (unsigned long long)rs.model_version,
                (unsigned long long)a->rm_dropped, (unsigned long long)rs.labels_sent,
                ag_reward_client_labels_pending(a->rm), (unsigned long long)rs.labels_dropped,
                (unsigned long long)rs.games_undecided);
    }
    if (a->metrics)
        s_write_metrics(a, &st, &sh, a->rm ? &rs : NULL, (double)now * 1e-9, eps, tps, rps, busy);
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
    a->drain_until = uv_now(&a->loop) + (uint64_t)a->o.drain_ms;
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
    a->model[POL_CURRENT] = ag_model_create(mc, 0, (int)a->o.threads);
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
        a->model[POL_LEAGUE] = ag_model_create(mc, 0, (int)a->o.threads);
        if (!a->model[POL_LEAGUE])
            return -ENOMEM;
        ag_model_load_params(a->model[POL_LEAGUE], ag_model_params_const(a->model[POL_CURRENT]),
                             ag_model_num_params(a->model[POL_CURRENT]));
        char label[64];
        snprintf(label, sizeof label, "league:%llu", (unsigned long long)v);
        rc = ag_runner_set_policy(a->runner, POL_LEAGUE, a->model[POL_LEAGUE], v, label, false);
        a->league_version = v;
        const uint64_t every_ms = (uint64_t)(a->o.league_refresh_s * 1000.0);
        uv_timer_start(&a->league_timer, s_on_league_timer, every_ms < 1000 ? every_ms : 1000,
                       every_ms);
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
 * acknowledged (a learner that cannot keep up, or is away; trajectories
 * waiting for reward scores count too), or once this
 * actor produced actor.max_per_version trajectories with the weights it
 * samples with (the learner trains on a batch per version), no new action starts, so the actor
 * neither burns the CPU the learner needs nor produces data that would only go stale.
 */
static void s_apply_weights(actor_t *a)
{
    uint64_t v;
    bool throttle =
        ag_shipper_pending(a->ship) + a->n_held >= (size_t)a->o.max_unacked ||
        (a->o.max_per_version && a->produced - a->budget_base >= (uint64_t)a->o.max_per_version);
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
            a->budget_base = a->produced;
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
        if (ag_policy_source_take_league(a->ps, a->model[POL_LEAGUE], &v) == 0 &&
            ag_runner_set_policy(a->runner, POL_LEAGUE, a->model[POL_LEAGUE], v, label, false) ==
                0) {
            ag_debug("actor", "league opponent: weights version %llu", (unsigned long long)v);
            a->league_version = v;
            a->league_swaps++;
        }
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
        const char *spec = a->o.seat[s];
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
            ag_error("actor", "actor.seat%d = \"%s\": expected self, league or bot:NAME", s, spec);
            return -EINVAL;
        }
    }
    if (!a->has_self)
        ag_warn("actor", "no seat is \"self\": nothing this actor plays is trainable");
    return 0;
}

/* Setup failed with rc from ag_runner_find_game: a game or bot the env
 * server does not have (or a game this actor cannot play) is fatal; a server
 * that did not answer may yet come, so a restart may help. */
static void s_fail_setup(actor_t *a, int rc, const char *why)
{
    if (rc == -ENOENT || rc == -EPROTO) {
        a->exit_code = AG_EXIT_FATAL;
        snprintf(a->fatal, sizeof a->fatal, "%s", why);
    } else {
        ag_error("actor", "%s", why);
    }
}

/*
 * True (and stopping, with exit status AG_EXIT_FATAL) once actor.overflow_limit
 * episodes in a row were dropped for the context with none played to the end:
 * whatever this actor plays, nothing reaches the learner.
 */
static bool s_overflowing(actor_t *a)
{
    ag_runner_stats_t st;
    ag_runner_get_stats(a->runner, &st);
    if (!a->o.overflow_limit || st.ctx_streak < (uint64_t)a->o.overflow_limit)
        return false;
    snprintf(a->fatal, sizeof a->fatal,
             "the last %llu episodes all overflowed the model's context (ctx %d, model.ctx) "
             "and none was played to the end: nothing can be trained; raise model.ctx or "
             "shorten the game's texts (the first overflow is logged above with its sizes)",
             (unsigned long long)st.ctx_streak, ag_policy_source_config(a->ps)->ctx);
    s_begin_stop(a, "every episode overflows the model's context");
    a->exit_code = AG_EXIT_FATAL;
    return true;
}

static void s_on_envs(void *arg, const char *envs)
{
    actor_t *a = arg;
    snprintf(a->envs, sizeof a->envs, "%s", envs);
    ag_info("actor", "env servers: %s", envs[0] ? envs : "none (episodes wait)");
    if (a->runner && ag_runner_set_envs(a->runner, envs) < 0)
        ag_warn("actor", "could not take every env server of %s", envs);
}

/* Stops with exit status AG_EXIT_FATAL: the job asks for what this actor cannot do. */
static int s_fatal(actor_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int s_fatal(actor_t *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->fatal, sizeof a->fatal, fmt, ap);
    va_end(ap);
    a->exit_code = AG_EXIT_FATAL;
    return -1;
}

/*
 * actor.join: the learner's run file under this actor's own options, the
 * learner's endpoints, game and env servers. Returns 0 to go on, or -1 with
 * a->exit_code set (0 after a signal while waiting).
 */
static int s_join(actor_t *a, int argc, char **argv)
{
    char err[1024];
    const char *learner = a->o.join;
    int rc = ag_rendezvous_run_config(learner, &a->run, err, sizeof err);
    if (rc == -ECANCELED) {
        a->exit_code = 0;
        return -1;
    }
    if (rc < 0) {
        ag_error("actor", "cannot join the job at %s: %s", learner, err);
        return -1;
    }
    char why[256];
    const ag_model_config_t *mc = &a->run.model;
    if (ag_model_config_check(mc, why, sizeof why) < 0)
        return s_fatal(a, "the learner at %s trains a model this actor cannot build: %s",
                       learner, why);
    const double bytes = 4.0 * (double)ag_model_config_num_params(mc);
    if (bytes > (double)(1u << 30))
        return s_fatal(a,
                       "the learner at %s trains a model of %.0f MiB of weights (d_model %d, %d "
                       "layers, ctx %d): more than the 1 GiB a weights message may carry "
                       "(docs/protocol.md section 6)",
                       learner, bytes / (1 << 20), mc->d_model, mc->n_layers, mc->ctx);
    ag_info("actor", "joined the job at %s: game %s, model d_model %d, %d layers, ctx %d; "
                     "learner at %s (trajectories) and %s (weights)",
            learner, a->run.game[0] ? a->run.game : "(not known yet)", mc->d_model, mc->n_layers,
            mc->ctx, a->run.trajectories, a->run.weights);
    /* The learner's run file under this actor's own --config and command line. */
    a->own_cfg = a->cfg;
    a->cfg = ag_config_create("agora-actor", "[options]", "", s_options,
                              sizeof s_options / sizeof s_options[0], 0);
    char name[AG_RENDEZVOUS_ENDPOINT_MAX + 64];
    snprintf(name, sizeof name, "the run file of the learner at %s", learner);
    if (!a->cfg || ag_config_load_string(a->cfg, a->run.run_file, name) < 0)
        return s_fatal(a, "cannot apply the run file of the learner at %s (see above): this "
                          "actor does not know every key of its [actor] or [game] section",
                       learner);
    if (ag_config_parse_args(a->cfg, argc, argv) != 0 || ag_config_apply(a->cfg, &a->o) < 0) {
        a->exit_code = 2;
        return -1;
    }
    actor_opts_t *o = &a->o;
    if (!ag_config_is_set(a->own_cfg, "actor.learner_trajectories"))
        o->learner_trajectories = a->run.trajectories;
    if (!ag_config_is_set(a->own_cfg, "actor.learner_weights"))
        o->learner_weights = a->run.weights;
    if (!ag_config_is_set(a->own_cfg, "actor.learner_control"))
        o->learner_control = learner;
    if (!o->game[0])
        o->game = a->run.game;
    if (ag_config_is_set(a->own_cfg, "actor.env"))
        snprintf(a->statics, sizeof a->statics, "%s", o->env);
    const char *listed = a->listed;
    if (!a->statics[0]) {
        rc = ag_rendezvous_wait_envs(learner, o->game, a->listed, sizeof a->listed, err,
                                     sizeof err);
        if (rc == -ECANCELED) {
            a->exit_code = 0;
            return -1;
        }
        if (rc == -ENOENT)
            return s_fatal(a, "cannot join the job at %s: %s", learner, err);
        if (rc < 0) {
            ag_error("actor", "cannot join the job at %s: %s", learner, err);
            return -1;
        }
    }
    snprintf(a->envs, sizeof a->envs, "%s%s%s", a->statics, a->statics[0] && listed[0] ? "," : "",
             listed);
    o->env = a->envs;
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
    if (ag_config_apply(a.cfg, &a.o) < 0) {
        ag_config_destroy(&a.cfg);
        return 2;
    }
    if (a.o.join[0] && s_join(&a, argc, argv) < 0)
        goto out_cfg;
    const actor_opts_t *o = &a.o;
    if ((o->reward_weight != 0 || o->reward_labels != AG_REWARD_LABELS_OFF) && !o->reward[0]) {
        fprintf(stderr,
                "agora-actor: actor.reward_weight and actor.reward_labels need actor.reward\n");
        a.exit_code = 2;
        goto out_cfg;
    }
    if (o->id[0]) {
        snprintf(a.id, sizeof a.id, "%s", o->id);
    } else {
        char host[128] = "localhost";
        gethostname(host, sizeof host - 1);
        snprintf(a.id, sizeof a.id, "%s-%d", host, (int)getpid());
    }
    a.run_id = ag_random_u64();
    a.seed_base = ag_splitmix64(&(uint64_t){o->seed ^ s_hash(a.id)});
    ag_rng_seed(&a.rng, a.seed_base ^ a.run_id);

    const char *env = o->env;
    char first_env[512], err[512];
    snprintf(first_env, sizeof first_env, "%.*s", (int)strcspn(env, ", "), env);
    const char *bots[AG_RUNNER_MAX_SEATS];
    int n_bots = 0;
    /* Seat bots are checked against the game once the player count is known. */
    ag_runner_game_t game;
    rc = ag_runner_find_game(first_env, o->game, NULL, 0, 60000, &game,
                             err, sizeof err);
    if (rc < 0) {
        s_fail_setup(&a, rc, err);
        goto out_cfg;
    }
    if (!o->game[0])
        ag_info("actor", "game.name not set: playing %s, the first game %s lists", game.name,
                first_env);
    a.rcfg = (ag_runner_config_t){
        .env = env,
        .game = game.name,
        .options = o->game_options,
        .slots = (int)o->slots,
        .max_action_tokens = (int)o->max_action_tokens,
        .sample = {(float)o->temperature, (float)o->top_p},
        .seed = a.seed_base,
        .game_seed = s_game_seed,
        .seed_arg = &a,
        .max_episodes = (uint64_t)o->max_episodes,
        .env_timeout_ms = (int)o->env_timeout_ms,
        .invalid_retries = (int)o->invalid_retries,
        .invalid_penalty = (float)o->invalid_penalty,
        .on_episode = s_on_episode,
        .arg = &a,
    };
    if (s_seats(&a, game.players, bots, &n_bots) < 0)
        goto out_cfg;
    ag_runner_game_t checked;
    if (n_bots && (rc = ag_runner_find_game(first_env, game.name, bots, n_bots, 10000, &checked,
                                            err, sizeof err)) < 0) {
        s_fail_setup(&a, rc, err);
        goto out_cfg;
    }
    const char *metrics_path = o->metrics;
    if (metrics_path[0] && !(a.metrics = fopen(metrics_path, "a"))) {
        ag_error("actor", "cannot open %s: %s", metrics_path, strerror(errno));
        goto out_cfg;
    }

    uv_loop_init(&a.loop);
    a.zctx = zmq_ctx_new();
    ag_policy_source_opts_t pso = {
        .control = o->learner_control,
        .weights = o->learner_weights,
        .poll_ms = (int)o->poll_ms,
        .league = a.has_league,
    };
    ag_shipper_opts_t sho = {
        .endpoint = o->learner_trajectories,
        .actor_id = a.id,
        .run_id = a.run_id,
        .max_outbox = (size_t)o->outbox,
        .batch = (int)o->batch,
        .resend_ms = (int)o->resend_ms,
        .flush_ms = (int)o->flush_ms,
    };
    uv_timer_init(&a.loop, &a.stats_timer);
    uv_timer_init(&a.loop, &a.league_timer);
    a.stats_timer.data = a.league_timer.data = &a;
    a.ps = ag_policy_source_create(&a.loop, a.zctx, &pso);
    a.ship = ag_shipper_create(&a.loop, a.zctx, &sho);
    a.signals = ag_signals_create(&a.loop, s_on_signal, &a);
    if (!a.ps || !a.ship || !a.signals)
        goto out_loop;
    if (o->reward_weight != 0 || o->reward_labels != AG_REWARD_LABELS_OFF) {
        ag_reward_client_opts_t ro = {
            .endpoint = o->reward,
            .model = o->reward_model,
            .timeout_ms = (int)o->reward_timeout_ms,
            .max_labels = RM_MAX_LABELS,
            .actor_id = a.id,
            .run_id = a.run_id,
            .decided_only = o->reward_labels_decided,
        };
        a.rm = ag_reward_client_create(&a.loop, a.zctx, &ro);
        if (!a.rm)
            goto out_loop;
        ag_info("actor", "reward server %s, model %s: weight %g, labels %s%s", o->reward,
                ro.model, o->reward_weight, ag_config_str(a.cfg, "actor.reward_labels"),
                o->reward_labels_decided ? " (of games decided on their merits)" : "");
    } else if (o->reward[0]) {
        ag_info("actor",
                "actor.reward is set but actor.reward_weight is 0 and actor.reward_labels off: "
                "the reward server is not used");
    }
    ag_info("actor", "actor %s (run %016llx): %s on %s, %ld slots, learner %s", a.id,
            (unsigned long long)a.run_id, game.name, env, o->slots, pso.control);
    uv_timer_start(&a.stats_timer, s_on_stats_timer, (uint64_t)o->log_interval_s * 1000,
                   (uint64_t)o->log_interval_s * 1000);
    if (o->join[0]) {
        a.watch = ag_env_watch_create(&a.loop, a.zctx, o->join, game.name, a.statics, a.listed,
                                      (int)o->join_poll_ms, s_on_envs, &a);
        if (!a.watch)
            goto out_loop;
    }

    a.exit_code = 0;
    bool busy = false;
    while (!a.quit) {
        uv_run(&a.loop, busy ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        busy = false;
        if (a.stopping) {
            bool drained = ag_shipper_pending(a.ship) == 0 && a.n_held == 0 &&
                           (!a.rm || ag_reward_client_labels_pending(a.rm) == 0);
            if (drained || uv_now(&a.loop) >= a.drain_until)
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
        if (s_overflowing(&a))
            continue;
        if (ag_runner_done(a.runner))
            s_begin_stop(&a, "max_episodes reached");
    }
    if (a.stopping && ag_shipper_pending(a.ship))
        ag_warn("actor", "%zu trajectories not acknowledged at exit", ag_shipper_pending(a.ship));
    if (a.n_held)
        ag_warn("actor", "%zu trajectories still wait for reward scores at exit: not shipped",
                a.n_held);
    if (a.rm && ag_reward_client_labels_pending(a.rm))
        ag_warn("actor", "%zu labels not delivered to the reward server at exit",
                ag_reward_client_labels_pending(a.rm));
    s_log_stats(&a, true);

out_loop:
    ag_env_watch_destroy(&a.watch);
    ag_reward_client_destroy(&a.rm); /* held trajectories are called back and freed */
    for (int s = 0; s < AG_RUNNER_MAX_SEATS; s++)
        free(a.text[s]);
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
    ag_config_destroy(&a.own_cfg);
    ag_run_config_finish(&a.run);
    if (a.exit_code == AG_EXIT_FATAL)
        ag_error("actor", "%s (exit status %d: do not restart)", a.fatal, AG_EXIT_FATAL);
    return a.exit_code;
}
