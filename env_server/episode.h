/*
 * episode.h - one running episode of a game: the unit agora-env stores per
 * episode id, and the Demo transcripts built from the same machinery.
 *
 * An episode owns the game state, one rng per bot seat (seeded from the
 * episode seed and the seat, so the game's own randomness never depends on
 * which seats bots play) and the observation text of the seat to act, of
 * any length up to AG_GAME_OBS_MAX. After
 * creation and after every client step it plays all bot seats itself until a
 * client seat must act or the game ends, so callers only ever see client
 * turns. Observations are incremental: the text new to the seat to act since
 * its previous observation, so a seat's transcript is obs1 + action1 + obs2 +
 * action2 + ... . Everything is deterministic in (game, seed, options,
 * seat_bots, client actions). No networking and no protobuf here.
 *
 * An episode whose game leaves the final ruling to an outside judge
 * (ag_episode_judge() non-NULL; debate with judge=reward:NAME) also keeps
 * every seat's transcript, and holds the step that completes play: that
 * step returns with ruling_pending set, the caller scores the transcripts
 * (ag_episode_transcript) and then either applies the scores
 * (ag_episode_rule) or gives up (ag_episode_cancel_ruling), which puts the
 * episode back exactly as it was before the held step. Episodes of games
 * that rule by themselves keep no transcripts and hold nothing.
 */
#ifndef AG_EPISODE_H
#define AG_EPISODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "game.h"

/* Longest transcript kept per seat for an outside judge (reward.proto's ScoreItem limit). */
#define AG_EPISODE_TRANSCRIPT_MAX 65536

typedef struct ag_episode ag_episode_t;

/*
 * What the caller learns after creation or a step. observation points into
 * the episode (valid until its next step or destroy); rewards are those
 * earned by this call (the client's step and all bot moves that followed),
 * per seat; outcome is non-NULL only when terminated and points into the
 * episode as well.
 */
typedef struct ag_episode_result {
    int num_players;
    int to_act;              /* seat to act next, -1 when terminated */
    const char *observation; /* NUL-terminated; "" when terminated */
    size_t observation_len;
    float rewards[AG_GAME_MAX_PLAYERS];
    bool terminated;
    bool truncated;
    bool invalid_action; /* this step consumed an invalid action (penalize mode) */
    /*
     * Play is complete and the step is held until an outside judge rules
     * (ag_episode_rule / ag_episode_cancel_ruling); to_act is -1, terminated
     * false, and rewards are not reported yet.
     */
    bool ruling_pending;
    const ag_game_outcome_t *outcome;
} ag_episode_result_t;

/*
 * Starts an episode of game. options: num_options borrowed key/value strings
 * (unknown key, repeat or bad value -> AG_GAME_EBADOPT). seat_bots: NULL or
 * num_seat_bots == 0 for "the client plays every seat", else exactly
 * game->num_players entries, each NULL or "" (the client plays that seat) or
 * the name of a bot of the game that can play that seat (otherwise
 * AG_GAME_EBADBOT). Options that ask for an outside judge need at least
 * one client seat (else AG_GAME_EBADOPT). On success stores the episode in *out (free it with
 * ag_episode_destroy) and fills *res (may be NULL) with the first client
 * seat's observation, or with the finished game if bots played it all.
 * On failure returns the negative code, *out = NULL, and a message in err.
 */
int ag_episode_create(ag_episode_t **out, const ag_game_t *game, uint64_t seed,
                      const ag_game_kv_t *options, size_t num_options, const char *const *seat_bots,
                      size_t num_seat_bots, ag_episode_result_t *res, char *err, size_t err_cap);

void ag_episode_destroy(ag_episode_t **self);

/*
 * Seat `player` plays action[0..len) (untrusted bytes, any content; NULL is
 * taken as empty). Returns 0 and fills *res, or:
 *   AG_GAME_EOVER     the episode has already ended;
 *   AG_GAME_ERULING   a held step waits for an outside ruling;
 *   AG_GAME_ETURN     player is not the seat to act (or not a seat);
 *   AG_GAME_EINVAL    the action is not in this turn's format (err says what
 *                     was expected); nothing changed, the seat may retry.
 *   AG_GAME_ELIMIT    an observation would exceed AG_GAME_OBS_MAX, or (outside
 *                     judge only) a transcript AG_EPISODE_TRANSCRIPT_MAX;
 *   AG_GAME_ENOMEM    no memory for a text;
 *   AG_GAME_EINTERNAL a bot's action was refused by its game, or the game
 *                     wrote what it may not (a bug).
 * After these last three the episode has ended (ag_episode_terminated, with
 * an empty outcome), except in an episode with an outside judge, where
 * nothing changed.
 * In penalize mode an invalid action is consumed instead: 0 is returned with
 * res->invalid_action set. With an outside judge, the step that completes
 * play returns 0 with res->ruling_pending set.
 */
int ag_episode_step(ag_episode_t *ep, int player, const void *action, size_t len,
                    ag_episode_result_t *res, char *err, size_t err_cap);

/*
 * The reward model that makes this episode's final ruling (borrowed from the
 * episode), or NULL when the game rules by itself.
 */
const char *ag_episode_judge(const ag_episode_t *ep);

/* True while a held step waits for ag_episode_rule or ag_episode_cancel_ruling. */
bool ag_episode_ruling_pending(const ag_episode_t *ep);

/*
 * Seat's transcript so far, obs1 + action1 + obs2 + ... exactly as observed
 * and played (NUL-terminated, *len bytes, borrowed until the next change to
 * the episode), or NULL (len 0) when the episode keeps none (no outside
 * judge) or seat is out of range.
 */
const char *ag_episode_transcript(const ag_episode_t *ep, int seat, size_t *len);

/*
 * Applies the outside judge's scores, one per seat (num_scores must be the
 * number of seats, every score finite; else AG_GAME_EINVAL with a message
 * and nothing changed), to the held step, which then completes: *res is
 * what the held step would have returned had the game ruled by itself
 * (its rewards plus the ruling's, terminated, the outcome). AG_GAME_EINTERNAL
 * when no ruling is pending.
 */
int ag_episode_rule(ag_episode_t *ep, const double *scores, size_t num_scores,
                    ag_episode_result_t *res, char *err, size_t err_cap);

/* Forgets the held step: the episode is again exactly as before it. No-op if none is held. */
void ag_episode_cancel_ruling(ag_episode_t *ep);

const ag_game_t *ag_episode_game(const ag_episode_t *ep);
uint64_t ag_episode_seed(const ag_episode_t *ep);
/* Seat to act, -1 once the episode has ended. */
int ag_episode_to_act(const ag_episode_t *ep);
bool ag_episode_terminated(const ag_episode_t *ep);

/* One turn of a demo transcript. */
typedef struct ag_turn {
    int player;
    char *observation; /* what the player saw before acting, NUL-terminated */
    size_t observation_len;
    char *action; /* NUL-terminated */
    size_t action_len;
    float rewards[AG_GAME_MAX_PLAYERS]; /* earned by this turn, per seat */
    size_t observation_cap, action_cap;  /* bytes allocated, reused by the next demo */
} ag_turn_t;

/*
 * A whole episode played by bots. Its texts live on the heap and are reused
 * by the next demo recorded into it: zero it before the first use and free
 * them with ag_transcript_finish.
 */
typedef struct ag_transcript {
    const ag_game_t *game;
    uint64_t seed;
    int num_players;
    int num_turns;
    ag_turn_t turns[AG_GAME_MAX_TURNS];
    float returns[AG_GAME_MAX_PLAYERS]; /* total reward per seat */
    ag_game_outcome_t outcome;
} ag_transcript_t;

/*
 * Plays one episode of game with a bot on every seat and records it in *out
 * (zeroed, or used by a demo before). bots: NULL or num_bots == 0 for the
 * game's demo bots, else num_players names (NULL or "" = that seat's demo
 * bot). Errors as ag_episode_create, and AG_GAME_ENOMEM.
 */
int ag_episode_demo(const ag_game_t *game, uint64_t seed, const ag_game_kv_t *options,
                    size_t num_options, const char *const *bots, size_t num_bots,
                    ag_transcript_t *out, char *err, size_t err_cap);

/* Frees a transcript's texts and zeroes it (ready for another demo). */
void ag_transcript_finish(ag_transcript_t *tr);

#endif
