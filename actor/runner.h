/*
 * runner.h - the episode runner shared by agora-actor and agora-eval: many
 * episodes in flight against one or more env servers, with one batched,
 * KV-cached forward pass per token for every policy seat that is acting.
 *
 * The runner lives on the caller's libuv loop. Env requests (Reset, Step,
 * Close) are asynchronous (ag_rpc_client_t), so episodes waiting for the env
 * never hold up those that are sampling. The caller drives it:
 *
 *   while (!stop) {
 *       uv_run(loop, busy ? UV_RUN_NOWAIT : UV_RUN_ONCE);
 *       busy = ag_runner_sample(r) > 0;
 *   }
 *
 * Each episode slot plays one episode at a time. Every seat is either played
 * by one of the runner's policies (a model; the runner creates its sampler)
 * or by a scripted bot on the env server (Reset.seat_bots). A policy seat has
 * its own sampler slot holding the seat's transcript so far (ag_seq_t: BOS,
 * observations, actions, EOT), so when the seat must act only its new
 * observation is fed. An action ends at EOT, after max_action_tokens tokens,
 * or when the transcript fills the model's context; its bytes (EOT and other
 * special tokens dropped) are sent as the Step. An action cut by a limit has
 * no EOT: the turn ends on its last sampled token, so the transcript is
 * exactly what the policy read and wrote.
 *
 * Invalid actions (protocol.md §5, §8.6): a Step the env refuses with
 * ERROR_INVALID_ACTION changed nothing, so the same seat acts again. The
 * refused action stays in its transcript as a turn of its own, credited
 * -invalid_penalty, and the seat's next sample reads it: every token the
 * learner trains on is then exactly what the policy read when it sampled,
 * and the refusal itself is a penalised turn it learns from. After
 * invalid_retries resamples refused in a row (or when the context has no
 * room for another), the episode is closed on the env server and emitted
 * truncated, with invalid_ended and invalid_seat set: its refused turns are its
 * data, while the other seats have no outcome. A game played with
 * invalid_action=penalize consumes such actions itself (StepReply
 * invalid_action); nothing here changes for it.
 *
 * Context: an observation that would not fit in the model's context (with
 * room for one sampled token) drops the episode: never emitted, counted in
 * dropped_ctx and ctx_streak, and the first one is logged as an error naming
 * the game, episode, seed, seat and sizes. The caller decides when nothing
 * can be trained any more (agora-actor: actor.overflow_limit).
 *
 * Weights: a policy's weights may change only while none of its seats is
 * mid-action. ag_runner_hold stops its seats from starting new actions; once
 * ag_runner_acting reports 0, the caller replaces the weights and calls
 * ag_runner_set_policy. The KV caches of live episodes were computed with the
 * old weights, so each seat's whole transcript is fed again (lazily, when the
 * seat next acts): exact, and cheap, since prompt rows are batched.
 *
 * Randomness: every episode draws its tokens from its own generator seeded
 * from (seed, episode number), so an episode's tokens do not depend on which
 * other episodes shared its batches: the same seed, weights and thread count
 * give the same games.
 *
 * Actions are drawn from the bytes and EOT only (BOS, PAD and the reserved
 * ids are masked: they are never part of an action). The behaviour log-prob
 * stored with each sampled token is its log-probability under the
 * distribution it was actually drawn from (mask, temperature, top-p), what
 * importance ratios need; with temperature 1 and top-p 1 it is the model's own
 * log p renormalised over the action alphabet.
 */
#ifndef AG_RUNNER_H
#define AG_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.pb-c.h"
#include "model.h"
#include "env.pb-c.h"
#include "sampler.h"
#include "seq.h"

#define AG_RUNNER_MAX_SEATS 8
#define AG_RUNNER_MAX_POLICIES 4
#define AG_RUNNER_NAME_MAX 128
#define AG_RUNNER_GAME_MAX 64 /* bytes of a game name (protocol.md §6) */

typedef struct ag_runner ag_runner_t;

/* A seat: played by policy `policy` (>= 0), or by the env server's bot `bot`. */
typedef struct ag_runner_seat {
    int policy;
    char bot[64];
} ag_runner_seat_t;

/* A finished episode, handed to the on_episode callback (valid during the call). */
typedef struct ag_runner_result {
    uint64_t number; /* episode number: 0, 1, 2, ... in start order */
    uint64_t seed;   /* the game seed */
    const char *game;
    int n_seats;
    int policy[AG_RUNNER_MAX_SEATS];        /* -1 = bot */
    const char *label[AG_RUNNER_MAX_SEATS]; /* policy name or "bot:NAME" */
    bool trainable[AG_RUNNER_MAX_SEATS];
    const ag_seq_t *seq[AG_RUNNER_MAX_SEATS]; /* NULL for bot seats */
    float returns[AG_RUNNER_MAX_SEATS];       /* total reward per seat */
    Agora__V1__KeyValue **info;
    size_t n_info;
    Agora__V1__Metric **metrics;
    size_t n_metrics;
    bool truncated;      /* the env ended it by a limit, or the runner did (invalid_ended) */
    bool invalid_action; /* some step was penalised as invalid (invalid_action=penalize) */
    bool invalid_ended;  /* the runner ended it: the env refused (ERROR_INVALID_ACTION) the
                          * actions of seat invalid_seat; no info, no metrics */
    int invalid_seat;
} ag_runner_result_t;

typedef void (*ag_runner_episode_cb)(void *arg, const ag_runner_result_t *res);
/* Game seed of episode number n. */
typedef uint64_t (*ag_runner_seed_fn)(void *arg, uint64_t n);

typedef struct ag_runner_config {
    const char *env;     /* comma-separated env endpoints; episodes are spread over them
                          * (ag_runner_set_envs replaces them at run time) */
    const char *game;    /* a name the env server hosts (ag_runner_find_game) */
    const char *options; /* "k=8,judge=rule": KEY=VALUE, comma-separated; may be empty */
    int n_seats;         /* the game's number of players */
    ag_runner_seat_t seats[AG_RUNNER_MAX_SEATS];
    int n_policies; /* policies referenced by seats: 0 .. n_policies-1 */
    int slots;      /* episodes in flight */
    int max_action_tokens;
    ag_sample_config_t sample;
    uint64_t seed;               /* sampling streams (per episode) */
    ag_runner_seed_fn game_seed; /* NULL: seed + n */
    void *seed_arg;
    uint64_t max_episodes; /* episodes to play (0 = no limit) */
    bool retry_failed;     /* replay an episode number that failed on an env error (3 tries);
                            * ERROR_OVERLOADED is no failure: the request is resent after a
                            * pause (up to 12 times in a row) */
    int env_timeout_ms;    /* deadline of one env request (sent once); 0 = 5000 */
    int invalid_retries;   /* resamples of an action refused ERROR_INVALID_ACTION, in a row;
                            * 0 = the first refusal ends the episode */
    float invalid_penalty; /* subtracted from the reward of each refused turn */
    ag_runner_episode_cb on_episode;
    void *arg;
} ag_runner_config_t;

typedef struct ag_runner_stats {
    uint64_t started;         /* episodes reset (including replays) */
    uint64_t finished;        /* emitted through on_episode */
    uint64_t dropped_ctx;     /* an observation would overflow the context */
    uint64_t ctx_streak;      /* of which since the last episode emitted */
    uint64_t env_errors;      /* episodes lost to an env error or timeout */
    uint64_t env_left;        /* episodes in play on an env server that left (started again) */
    uint64_t overloaded;      /* env requests answered ERROR_OVERLOADED and resent after a pause */
    uint64_t invalid_actions; /* Steps the env consumed as penalised (invalid_action=penalize) */
    uint64_t invalid_resampled; /* Steps refused ERROR_INVALID_ACTION, then resampled */
    uint64_t invalid_ended;     /* episodes ended after invalid_retries resamples were refused */
    uint64_t actions;
    uint64_t tokens_sampled; /* generated tokens */
    uint64_t tokens_fed;     /* every row run through a model (prompts, re-feeds, samples) */
    uint64_t refed;          /* rows fed again after a weight change */
    uint64_t forward_calls;
    double sample_s; /* time spent in forward passes and sampling */
} ag_runner_stats_t;

/*
 * Creates the env clients on loop (zctx: the caller's ZeroMQ context). Seats'
 * policies have no model yet: set them with ag_runner_set_policy before
 * ag_runner_start. Returns NULL after logging why.
 */
ag_runner_t *ag_runner_create(uv_loop_t *loop, void *zctx, const ag_runner_config_t *cfg);
/* Cancels outstanding env requests (live episodes are left to the env's TTL;
 * call ag_runner_abandon first to close them). Accepts NULL. */
void ag_runner_destroy(ag_runner_t **self);

/*
 * Sets policy p's model (borrowed: must outlive the runner), the version
 * stamped on the turns it generates, and its label in results. The first
 * call for p creates its sampler over that model; later calls, after new
 * weights were loaded into the same model (ag_model_load_params), mark its
 * seats' caches for re-feeding. -EBUSY while a seat of p is mid-action;
 * -EINVAL for another model than the first one.
 */
int ag_runner_set_policy(ag_runner_t *r, int p, ag_model_t *model, uint64_t version,
                         const char *label, bool trainable);
/* While held, p's seats start no new action; ongoing ones finish. */
void ag_runner_hold(ag_runner_t *r, int p, bool hold);
/* Seats of p mid-action. */
int ag_runner_acting(const ag_runner_t *r, int p);

/* Starts the episode slots (every policy used by a seat must be set). */
int ag_runner_start(ag_runner_t *r);
/*
 * One batched forward pass and one sampled token for every acting seat of
 * every policy (prompt rows of seats starting an action ride along). Returns
 * the number of rows run (0: nothing to do), or a negative error.
 */
int ag_runner_sample(ag_runner_t *r);

/*
 * Replaces the env servers episodes are spread over with list (comma-
 * separated endpoints; may be empty). A server no longer listed is dropped:
 * its episodes in play end without being emitted (counted in env_left) and
 * their slots start new episodes on the others; a new one gets its share of
 * the episodes started from now on. With no server at all, slots wait until
 * one is set. Returns 0, or a negative errno (a bad endpoint, more than 64)
 * with the servers before the failing one already applied.
 */
int ag_runner_set_envs(ag_runner_t *r, const char *list);
/* The env servers episodes are spread over now. */
int ag_runner_env_count(const ag_runner_t *r);

/* Starts no new episode from now on. */
void ag_runner_stop(ag_runner_t *r);
/* Stops, and closes every live episode on its env server (best effort). */
void ag_runner_abandon(ag_runner_t *r);
/* True when stopped or max_episodes reached, and no episode is in flight. */
bool ag_runner_done(const ag_runner_t *r);

void ag_runner_get_stats(const ag_runner_t *r, ag_runner_stats_t *out);

/* A game as an env server's Hello describes it. */
typedef struct ag_runner_game {
    char name[AG_RUNNER_GAME_MAX + 1];
    int players;
} ag_runner_game_t;

/*
 * Asks the env server at endpoint (Hello, blocking) for game, or, when game
 * is NULL or "", for the first game it lists, and checks that the game has
 * each of the n_bots bot names. Retries until deadline_ms (a server may
 * still be starting). Returns 0 with the game in out, or a negative errno
 * after writing the reason to err: -ETIMEDOUT (no answer), -ENOENT (no such
 * game or bot), -EPROTO (a reply or a game this runner cannot use).
 */
int ag_runner_find_game(const char *endpoint, const char *game, const char *const *bots, int n_bots,
                        int deadline_ms, ag_runner_game_t *out, char *err, size_t errlen);

/*
 * The same Hello, for a caller that needs the whole GameSpec (its metric
 * declarations, its bots): returns the reply (the caller frees it with
 * agora__v1__env_reply__free_unpacked) with *spec pointing into it, or NULL
 * with *rc a negative errno as above and the reason in err.
 */
Agora__V1__EnvReply *ag_runner_hello_game(const char *endpoint, const char *game,
                                          int deadline_ms, const Agora__V1__GameSpec **spec,
                                          int *rc, char *err, size_t errlen);

/* Replaces NUL bytes and bytes that are not part of valid UTF-8 with '?', so
 * any sampled action can be sent as a protobuf string. Returns the count. */
size_t ag_runner_sanitize_utf8(char *text, size_t len);

/*
 * A policy seat's transcript as text: exactly the bytes it exchanged with the
 * env server, every observation as received and every action as sent, in
 * order and with nothing between (obs1 + action1 + obs2 + ..., the text the
 * reward service scores). Rebuilt from the token stream, which keeps what was
 * sampled: specials (BOS, EOT) are dropped, and each turn's action bytes go
 * through ag_runner_sanitize_utf8 on their own, as they did before the Step
 * was sent. Writes at most cap - 1 bytes and a NUL (s->len + 1 is always
 * enough); returns the length.
 */
size_t ag_runner_transcript(const ag_seq_t *s, char *buf, size_t cap);

#endif
