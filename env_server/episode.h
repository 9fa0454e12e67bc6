/*
 * episode.h - one running episode of a game: the unit agora-env stores per
 * episode id, and the Demo transcripts built from the same machinery.
 *
 * An episode owns the game state, one rng per bot seat (seeded from the
 * episode seed and the seat, so the game's own randomness never depends on
 * which seats bots play) and the observation text of the seat to act. After
 * creation and after every client step it plays all bot seats itself until a
 * client seat must act or the game ends, so callers only ever see client
 * turns. Observations are incremental: the text new to the seat to act since
 * its previous observation, so a seat's transcript is obs1 + action1 + obs2 +
 * action2 + ... . Everything is deterministic in (game, seed, options,
 * seat_bots, client actions). No networking and no protobuf here.
 */
#ifndef AG_EPISODE_H
#define AG_EPISODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "game.h"

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
    const ag_game_outcome_t *outcome;
} ag_episode_result_t;

/*
 * Starts an episode of game. options: num_options borrowed key/value strings
 * (unknown key, repeat or bad value -> AG_GAME_EBADOPT). seat_bots: NULL or
 * num_seat_bots == 0 for "the client plays every seat", else exactly
 * game->num_players entries, each NULL or "" (the client plays that seat) or
 * the name of a bot of the game that can play that seat (otherwise
 * AG_GAME_EBADBOT). On success stores the episode in *out (free it with
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
 *   AG_GAME_ETURN     player is not the seat to act (or not a seat);
 *   AG_GAME_EINVAL    the action is not in this turn's format (err says what
 *                     was expected); nothing changed, the seat may retry.
 *   AG_GAME_EINTERNAL a bot's action was refused by its game (a bug).
 * In penalize mode an invalid action is consumed instead: 0 is returned with
 * res->invalid_action set.
 */
int ag_episode_step(ag_episode_t *ep, int player, const void *action, size_t len,
                    ag_episode_result_t *res, char *err, size_t err_cap);

const ag_game_t *ag_episode_game(const ag_episode_t *ep);
uint64_t ag_episode_seed(const ag_episode_t *ep);
/* Seat to act, -1 once the episode has ended. */
int ag_episode_to_act(const ag_episode_t *ep);
bool ag_episode_terminated(const ag_episode_t *ep);

/* One turn of a demo transcript. */
typedef struct ag_turn {
    int player;
    char observation[AG_GAME_OBS_CAP]; /* what the player saw before acting */
    size_t observation_len;
    char action[AG_GAME_BOT_ACTION_CAP];
    size_t action_len;
    float rewards[AG_GAME_MAX_PLAYERS]; /* earned by this turn, per seat */
} ag_turn_t;

/* A whole episode played by bots (about 15 KB: allocate it once and reuse). */
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
 * Plays one episode of game with a bot on every seat and records it in *out.
 * bots: NULL or num_bots == 0 for the game's demo bots, else num_players
 * names (NULL or "" = that seat's demo bot). Errors as ag_episode_create.
 */
int ag_episode_demo(const ag_game_t *game, uint64_t seed, const ag_game_kv_t *options,
                    size_t num_options, const char *const *bots, size_t num_bots,
                    ag_transcript_t *out, char *err, size_t err_cap);

#endif
