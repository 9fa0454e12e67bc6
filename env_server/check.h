/*
 * check.h - what the files of agora-env-check share: the checker's state, its
 * verdict lines and the expectations every check is written with, and the
 * entry point of each group of checks.
 *
 * The checker is split by concern: check_report.c (verdicts, expectations,
 * comparisons, raw calls), check_wire.c (framing, envelopes, decoding: §3,
 * §4), check_limits.c (the limits of §6), check_spec.c (Hello and GameSpec,
 * metric declarations: §8.1), check_play.c (replaying a Demo transcript
 * through Reset and Step, with bot seats and interference), check_game.c
 * (everything about one game: Demo, Reset/Close, options and bots, invalid
 * actions, bot determinism) and check.c (options, order of the run, summary).
 *
 * Every check prints one line: `PASS name`, `SKIP name: why` or
 * `FAIL name: why (protocol.md §N)`, naming the section of docs/protocol.md
 * whose rule the server broke.
 */
#ifndef AG_CHECK_H
#define AG_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env_client.h"

#define AG_CHECK_MAX_GAME_NAME 64
#define AG_CHECK_MAX_SEATS 8
#define AG_CHECK_WHY 512

typedef struct ag_check {
    ag_env_client_t *cl;
    const char *endpoint;
    const char *only_game; /* "" = every game in Hello */
    int timeout_ms;
    uint64_t seed;
    int passed, failed, skipped;
} ag_check_t;

/* ---- verdicts (check_report.c) ---- */

/* One PASS or FAIL line; section ("§6") is the rule a failure breaks. */
void ag_check_report(ag_check_t *c, bool ok, const char *name, const char *section,
                     const char *why);
void ag_check_skip(ag_check_t *c, const char *name, const char *why);
/* printf into why (AG_CHECK_WHY bytes). */
void ag_check_why(char *why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Puts prefix ("turn 3: ") in front of the text already in why. */
void ag_check_why_prefix(char *why, const char *prefix);
/* "game.check" into out. */
void ag_check_name(char *out, size_t len, const char *game, const char *check);

/* "error ERROR_X (message)", "a step reply" or "no reply", for failure lines. */
const char *ag_check_describe(const Agora__V1__EnvReply *r, char *buf, size_t len);
/* The why of a failed call (-ETIMEDOUT, -EPROTO, ...). */
void ag_check_call_error(char *why, int rc);

/*
 * Whether a call (rc, r) answered an Error whose code is one of codes[0..n).
 * Frees r.
 */
bool ag_check_error(int rc, Agora__V1__EnvReply *r, const int *codes, size_t n, char *why);
bool ag_check_error1(int rc, Agora__V1__EnvReply *r, int code, char *why);
/* Whether a call succeeded with a reply of body kind body_case. Does not free r. */
bool ag_check_kind(int rc, const Agora__V1__EnvReply *r, int body_case, const char *kind,
                   char *why);
void ag_check_free(Agora__V1__EnvReply **r);

/* ---- comparisons (check_report.c) ---- */

bool ag_check_str_eq(const char *a, const char *b);
bool ag_check_text_eq(const char *what, const char *got, const char *want, char *why);
float ag_check_at(const float *v, size_t n, size_t i);
/* Per seat, exactly (tolerance 0) or within a relative tolerance. */
bool ag_check_rewards_eq(const char *what, const float *got, size_t n_got, const float *want,
                         size_t n_want, float tolerance, char *why);
bool ag_check_info_eq(Agora__V1__KeyValue **got, size_t n_got, Agora__V1__KeyValue **want,
                      size_t n_want, char *why);
bool ag_check_metrics_eq(Agora__V1__Metric **got, size_t n_got, Agora__V1__Metric **want,
                         size_t n_want, char *why);
/* A malloc'd string of len copies of ch (NULL when out of memory). */
char *ag_check_filled(size_t len, char ch);

/* ---- calls (check_report.c) ---- */

/*
 * Sends raw frames and waits for the reply whose request_id is want_id,
 * discarding late replies to earlier requests. A reply with request_id 0 when
 * want_id is not 0 ends the wait with -EBADMSG (the reply in *reply). shape
 * may be NULL.
 */
int ag_check_raw_call(ag_check_t *c, const ag_env_frame_t *frames, size_t n, uint64_t want_id,
                      Agora__V1__EnvReply **reply, ag_env_reply_shape_t *shape);
/* Packs an EnvRequest into a malloc'd buffer (freed by the caller). */
uint8_t *ag_check_pack(const Agora__V1__EnvRequest *req, size_t *len);
/* Demo with bots and options, which the client's wrapper does not send. */
int ag_check_demo(ag_check_t *c, const char *game, uint64_t seed, uint32_t count,
                  const char *const *bots, size_t n_bots, const char *const (*options)[2],
                  size_t n_options, Agora__V1__EnvReply **reply);

/* ---- replays (check_play.c) ---- */

/* What a replay sends besides the transcript's actions. */
typedef struct ag_check_play {
    const char *const (*options)[2]; /* Reset options, as the Demo had them */
    size_t n_options;
    const char *const *seat_bots; /* Reset.seat_bots: "" = the checker plays the seat */
    size_t n_seat_bots;
    /*
     * Called before the checker sends turn i (a client seat's turn) of the
     * transcript on episode ep. Returning false stops the replay, which then
     * fails with the why the hook wrote.
     */
    bool (*before_turn)(ag_check_t *c, uint64_t ep, uint32_t num_players, size_t i,
                        const Agora__V1__Turn *turn, void *arg, char *why);
    void *arg;
} ag_check_play_t;

/*
 * Plays transcript t from Reset(game, t->seed, options, seat_bots): the
 * checker sends the actions of the client seats, the server plays the bot
 * seats, and everything the server says must be what the transcript says
 * (observations, to_act, rewards, termination, info, metrics, returns). how
 * may be NULL (no options, no bots, no hook). On success *episode is the
 * finished episode's id; on failure the episode may still be open (the caller
 * closes it with ag_check_close_quietly) and *episode is its id or 0.
 */
bool ag_check_replay(ag_check_t *c, const char *game, const Agora__V1__Transcript *t,
                     const ag_check_play_t *how, uint64_t *episode, char *why);
/* Close, ignoring the answer (the episode may already be gone). */
void ag_check_close_quietly(ag_check_t *c, uint64_t episode);

/* ---- groups of checks ---- */

/* Hello, its GameSpecs and each game's metric declarations (check_spec.c). */
bool ag_check_hello_spec(const Agora__V1__HelloReply *h, char *why);
void ag_check_metric_specs(ag_check_t *c, const Agora__V1__GameSpec *g);
/* The metrics of finished episodes (transcripts) against g's declarations. */
void ag_check_metrics_reported(ag_check_t *c, const Agora__V1__GameSpec *g,
                               Agora__V1__Transcript *const *t, size_t n);

/* Request ids and frame layouts (§3, §4) (check_wire.c). */
void ag_check_framing(ag_check_t *c);
/* Bad envelopes, undecodable payloads, wrong wire types (§3, §4) (check_wire.c). */
void ag_check_malformed(ag_check_t *c);
/* Every limit of §6 on env requests, with game a hosted game (check_limits.c). */
void ag_check_limits(ag_check_t *c, const Agora__V1__GameSpec *game);

/*
 * Everything about one game (check_game.c). Returns its Demo reply (two
 * transcripts) for the final replay, or NULL when the server has no usable
 * demos.
 */
Agora__V1__EnvReply *ag_check_game(ag_check_t *c, const Agora__V1__GameSpec *g);
/* Reset and Demo of a game the server does not host (check_game.c). */
void ag_check_unknown_game(ag_check_t *c);

#endif
