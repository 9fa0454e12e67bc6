/*
 * reward_client.h - the actor's and agora-eval's client of the reward
 * service (proto/reward.proto, docs/protocol.md §13), on the caller's libuv
 * loop. It never blocks: every request goes through an asynchronous DEALER
 * (ag_rpc_client_t: deadline and bounded retries per request).
 *
 * Scores. ag_reward_client_score() queues a group of transcripts (one
 * finished episode's seats) and calls back once with their scores. A group
 * waits at most batch_ms for others to share its ScoreRequest (at most 256
 * items, whole groups only; sooner when 256 are waiting); at most
 * max_inflight requests are out at a time, and what queues meanwhile goes
 * out together when one is answered.
 * Scoring is safe to repeat, so a request that gets no answer within its
 * deadline and retries is queued again: the server is then taken as down,
 * a warning is logged once, and it is probed with a small RewardStats every
 * retry_ms; the waiting groups go out again as soon as it answers. So a
 * group is called back with scores, with a permanent error (the server
 * refused the request: unknown model, bad request), or with -ECANCELED
 * when the client is destroyed; never with a timeout.
 *
 * Labels. ag_reward_client_label_game() turns a finished game into the
 * labels the actor sends (outcomes: one per seat with a nonzero
 * return; preferences: the winner's transcript over the loser's in a
 * two-seat game with different returns) and queues them. One LabelRequest
 * (at most 256 outcomes and 256 preferences) is in flight at a time. Each
 * carries a batch id "<actor_id>/<run_id>/<n>" (n counts the batches of
 * this client), so a resend is learnt once: the retries of a request carry
 * its body unchanged, and a batch that timed out or was answered OVERLOADED
 * goes back to the front of the queue as a whole and is sent again under
 * the same id. While the server is down no labels are sent (they would only
 * pile up in the socket's queue); the queue then keeps the newest max_labels
 * (older ones are dropped, one warning per burst of drops, even from a batch
 * waiting to be resent: the rest of it still goes under its id).
 *
 * Transcripts longer than the protocol's 65536 bytes are cut to their last
 * 65536 bytes (at a UTF-8 boundary): the reward model reads the end of a
 * game anyway.
 */
#ifndef AG_REWARD_CLIENT_H
#define AG_REWARD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common.pb-c.h"

#define AG_REWARD_MAX_ITEMS 256        /* per ScoreRequest, and labels of each kind per request */
#define AG_REWARD_MAX_TRANSCRIPT 65536 /* bytes of ScoreItem.transcript */
#define AG_REWARD_MAX_NAME 64          /* model and game names */
#define AG_REWARD_MAX_SEATS 8

typedef enum ag_reward_labels {
    AG_REWARD_LABELS_OFF = 0,
    AG_REWARD_LABELS_OUTCOMES,
    AG_REWARD_LABELS_PREFERENCES,
} ag_reward_labels_t;

/* One transcript: the seat's text (no NUL bytes) and the seat it belongs to. */
typedef struct ag_reward_item {
    const char *text;
    size_t len;
    uint32_t seat;
} ag_reward_item_t;

/* What a finished game is labelled with (no transcripts: see ag_reward_game_labels). */
typedef struct ag_reward_label {
    bool preference;
    int seat;    /* outcome: the seat labelled; preference: the preferred seat (the winner) */
    int other;   /* preference: the other seat */
    float label; /* outcome: 1 (won) or 0 (lost) */
} ag_reward_label_t;

/*
 * The labels of a game with n_seats seats, their returns, and which seats
 * have a transcript (seats the caller did not play have none). Outcomes: one
 * per seat with a transcript, 1 for a return > 0, 0 for < 0, none for 0.
 * Preferences: one, when the game has two seats, both with a transcript, and
 * different returns. Writes at most AG_REWARD_MAX_SEATS labels; returns the
 * count.
 */
int ag_reward_game_labels(ag_reward_labels_t mode, int n_seats, const float *returns,
                          const bool *has_text, ag_reward_label_t *out);

/*
 * The pair a two-seat game gives: true, with the winner and the loser, when
 * both seats have a transcript and their returns differ.
 */
bool ag_reward_game_pair(int n_seats, const float *returns, const bool *has_text, int *winner,
                         int *loser);

/* Whether the game's outcome was decided on the transcripts: false only when
 * its final info says `reason` = `coin` (a fair coin decided). */
bool ag_reward_decided(Agora__V1__KeyValue *const *info, size_t n_info);

typedef struct ag_reward_client ag_reward_client_t;

typedef struct ag_reward_client_opts {
    const char *endpoint;
    const char *model; /* reward model name; NULL = "default" */
    int timeout_ms;    /* per attempt; 0 = 5000 */
    int attempts;      /* per request; 0 = 2 */
    int batch_ms;      /* how long a group may wait for others to share its request; 0 = 5 */
    int max_inflight;  /* Score requests at a time; 0 = 2 */
    int retry_ms; /* probe period while the server is down, back-off after OVERLOADED; 0 = 2000 */
    size_t max_labels;      /* labels kept while they cannot be sent; 0 = 4096 */
    size_t max_label_bytes; /* and their transcripts' bytes; 0 = 64 MiB */
    /* Label batch ids: the actor's id and run id, as in its trajectory ids.
     * NULL = "<host>-<pid>"; run_id 0 = a random one. Characters outside
     * printable ASCII become '_', and the id is cut to 90 bytes. */
    const char *actor_id;
    uint64_t run_id;
    /* Label only games decided on their merits (ag_reward_decided): a game
     * its coin settled says nothing about which transcript was better. */
    bool decided_only;
} ag_reward_client_opts_t;

typedef struct ag_reward_client_stats {
    uint64_t score_requests; /* ScoreRequests answered with scores */
    uint64_t scored;         /* transcripts scored */
    uint64_t score_failed;   /* groups called back with an error */
    uint64_t labels_queued;
    uint64_t games_undecided; /* games not labelled under decided_only: the coin settled them */
    uint64_t labels_sent;     /* in answered requests (accepted + rejected) */
    uint64_t labels_accepted; /* as the server counted them */
    uint64_t labels_rejected;
    uint64_t labels_dropped;   /* queue full, or refused as a whole by the server */
    uint64_t label_duplicates; /* label requests answered duplicate (a resend of a learnt batch) */
    uint64_t timeouts;         /* requests that got no answer after every attempt */
    uint64_t outages;          /* times the server was taken as down */
    uint64_t model_version;    /* from the last ScoreReply */
} ag_reward_client_stats_t;

/*
 * status 0: scores[i] is the score of the group's item i (finite).
 * Otherwise a negative errno and scores is NULL: -ENOENT (unknown model),
 * -EINVAL (the server refused the request as malformed or over a limit),
 * -EPROTO (a reply that does not fit the request, or a non-finite score),
 * -ECANCELED (the client was destroyed first).
 */
typedef void (*ag_reward_score_cb)(void *arg, int status, const float *scores, size_t n);

/* Connects (asynchronously: a server that is not up yet is fine). Returns
 * NULL after logging why (bad endpoint, model name over 64 bytes). */
ag_reward_client_t *ag_reward_client_create(uv_loop_t *loop, void *zctx,
                                            const ag_reward_client_opts_t *opts);
/* Calls back every queued group with -ECANCELED and drops queued labels.
 * Accepts NULL. */
void ag_reward_client_destroy(ag_reward_client_t **self);

/*
 * Queues n (1..AG_REWARD_MAX_SEATS) transcripts of game `game` for scoring;
 * the texts are copied. done(arg, ...) is called exactly once, later (never
 * from inside this call). Returns 0, or -EINVAL (bad n, a NUL byte in a
 * text), -ENOMEM; done is not called then.
 */
int ag_reward_client_score(ag_reward_client_t *c, const char *game, const ag_reward_item_t *items,
                           size_t n, ag_reward_score_cb done, void *arg);

/*
 * Queues the labels (ag_reward_game_labels) of a finished game: info
 * (n_info entries, may be NULL) is its outcome info, texts[s] (lens[s]
 * bytes) is seat s's transcript, or NULL for a seat without one. Copies what
 * it keeps. Returns the number of labels queued (0 for a game the coin
 * decided under decided_only), or -EINVAL (a NUL byte in a text), -ENOMEM.
 */
int ag_reward_client_label_game(ag_reward_client_t *c, ag_reward_labels_t mode, const char *game,
                                Agora__V1__KeyValue *const *info, size_t n_info, int n_seats,
                                const float *returns, const char *const *texts, const size_t *lens);

/* Groups waiting for scores (queued or in flight). */
size_t ag_reward_client_scoring(const ag_reward_client_t *c);
/* Labels not yet answered by the server (queued or in flight). */
size_t ag_reward_client_labels_pending(const ag_reward_client_t *c);
/* False from a request's final timeout until the server answers again. */
bool ag_reward_client_up(const ag_reward_client_t *c);
void ag_reward_client_get_stats(const ag_reward_client_t *c, ag_reward_client_stats_t *out);

#endif
