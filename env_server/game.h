/*
 * game.h - what a game is to agora-env: a const vtable (ag_game_t) with its
 * description (players, roles, options, bots) and the functions that run one
 * episode's state, plus the registry of the games this server hosts.
 *
 * A game is turn-based and AEC-style: exactly one seat acts at a time. Each
 * game keeps its whole state in a caller-provided block of state_size bytes
 * (no allocation of its own, so an episode costs one small malloc), draws its
 * randomness (task, hidden assignments, coin flips) from an rng inside that
 * state seeded by the episode seed, and judges actions as untrusted bytes.
 * Scripted bots read the state and write an action text, which then goes
 * through the same step() as a client's action; they draw from an rng the
 * caller owns, so the game's own randomness does not depend on who plays.
 *
 * A game may leave its final ruling to an outside judge (debate's option
 * judge=reward:NAME): a reward model that scores each seat's transcript.
 * The game itself stays pure (no I/O): it names the judge, stops short of
 * the end when play is complete, and applies the scores it is handed; see
 * the ruling functions of the vtable.
 *
 * Most callers want episode.h, which adds turn checks, bot seats,
 * observations and demos on top of this.
 */
#ifndef AG_GAME_H
#define AG_GAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define AG_GAME_MAX_PLAYERS 8
/* No game may take more turns than this (debate: 4; critique: <= 18). */
#define AG_GAME_MAX_TURNS 32
/* Capacity of one observation text, NUL included (the longest today, k = 32: 200 bytes). */
#define AG_GAME_OBS_CAP 256
/* Longest action accepted; longer is an invalid action. */
#define AG_GAME_ACTION_MAX 4096
/* Capacity of an action written by a bot, NUL included. */
#define AG_GAME_BOT_ACTION_CAP 128
/* Suggested capacity of error-message buffers. */
#define AG_GAME_ERR_CAP 256
#define AG_GAME_MAX_INFO 16
#define AG_GAME_INFO_VALUE_CAP 160
#define AG_GAME_MAX_METRICS 16

/* Error returns of the game and episode functions (map to env.proto codes as noted). */
enum {
    AG_GAME_EBADOPT = -1,   /* unknown/duplicate option or bad value -> ERROR_BAD_OPTION */
    AG_GAME_EBADBOT = -2,   /* unknown bot or wrong seat_bots count -> ERROR_BAD_OPTION */
    AG_GAME_EINVAL = -3,    /* action not in the turn's format; state unchanged ->
                               ERROR_INVALID_ACTION */
    AG_GAME_ETURN = -4,     /* player is not the seat to act (or out of range) ->
                               ERROR_NOT_YOUR_TURN */
    AG_GAME_EOVER = -5,     /* the episode has already ended */
    AG_GAME_ENOMEM = -6,    /* out of memory -> ERROR_INTERNAL / ERROR_OVERLOADED */
    AG_GAME_EINTERNAL = -7, /* a bot wrote an action its game refused (a bug) -> ERROR_INTERNAL */
    AG_GAME_ELIMIT = -8,    /* a bound of the episode was reached (a transcript cap); state
                               unchanged -> ERROR_BAD_REQUEST */
    AG_GAME_ERULING = -9,   /* the episode waits for an outside ruling -> ERROR_NOT_YOUR_TURN */
};

/* Longest reward model name a game accepts as its outside judge (reward.proto's limit). */
#define AG_GAME_JUDGE_NAME_MAX 64

/* One option given to reset: both strings NUL-terminated, borrowed. */
typedef struct ag_game_kv {
    const char *key;
    const char *value;
} ag_game_kv_t;

/* An option a game accepts, as advertised in GameSpec. */
typedef struct ag_game_option {
    const char *name;
    const char *default_value;
    const char *help;
} ag_game_option_t;

typedef struct ag_game_info {
    const char *key; /* static string */
    char value[AG_GAME_INFO_VALUE_CAP];
} ag_game_info_t;

typedef struct ag_game_metric {
    const char *name; /* static string */
    double value;
} ag_game_metric_t;

/* Ground truth, outcome and per-game metrics of a finished episode. */
typedef struct ag_game_outcome {
    int num_info;
    ag_game_info_t info[AG_GAME_MAX_INFO];
    int num_metrics;
    ag_game_metric_t metrics[AG_GAME_MAX_METRICS];
} ag_game_outcome_t;

/* What one applied step did; the caller zeroes it, the game adds to it. */
typedef struct ag_game_step {
    float rewards[AG_GAME_MAX_PLAYERS];
    bool invalid_action; /* an invalid action was consumed (penalize mode) */
    bool truncated;      /* ended by a limit rather than by the rules */
} ag_game_step_t;

typedef struct ag_game ag_game_t;

struct ag_game {
    const char *name;
    const char *description;
    int num_players;
    const char *const *roles;        /* num_players names */
    const ag_game_option_t *options; /* num_options entries */
    int num_options;
    const char *const *bots; /* num_bots names */
    const int *bot_seats;    /* per bot: the one seat it can play, or -1 for any */
    int num_bots;
    const char *const *demo_bots; /* num_players names, the bots Demo uses by default */
    size_t state_size;

    /*
     * Starts an episode in state (state_size bytes, contents undefined).
     * Options not given take their defaults. Returns 0, or AG_GAME_EBADOPT
     * with a message in err (unknown or repeated key, value out of range).
     */
    int (*reset)(void *state, uint64_t seed, const ag_game_kv_t *options, size_t num_options,
                 char *err, size_t err_cap);
    /* The seat to act, or -1 once the game has ended. */
    int (*to_act)(const void *state);
    /*
     * Writes the observation of the seat to act: the text that is new to it
     * since its previous observation. Returns its length (NUL written too).
     */
    size_t (*observe)(const void *state, char *buf, size_t cap);
    /*
     * The seat to act plays action[0..len) (untrusted bytes). Returns 0 when
     * the action was applied (also when an invalid action was consumed in
     * penalize mode: out->invalid_action), AG_GAME_EINVAL with what was
     * expected in err and the state unchanged, or AG_GAME_EOVER after the end.
     */
    int (*step)(void *state, const char *action, size_t len, ag_game_step_t *out, char *err,
                size_t err_cap);
    /*
     * Bot number `bot` (index into bots) writes its action for the seat to
     * act into buf (NUL-terminated); returns its length. Draws only from rng.
     */
    size_t (*bot_act)(const void *state, int bot, ag_rng_t *rng, char *buf, size_t cap);
    /* Fills the final info and metrics; only valid once the game has ended. */
    void (*outcome)(const void *state, ag_game_outcome_t *out);

    /*
     * Outside rulings. All three are NULL in a game that always rules by
     * itself; a game that offers an outside judge sets all three.
     *
     * judge() names the reward model whose scores make this episode's final
     * ruling (debate: NAME of judge=reward:NAME), or returns NULL when the
     * game rules by itself. It is fixed by reset and the string lives in
     * the state.
     *
     * With a judge, the step that completes play does not end the game: it
     * leaves the game awaiting its ruling, where to_act() is -1,
     * awaiting_ruling() is true, step() answers AG_GAME_ERULING and
     * outcome() is not valid yet. The caller then scores every seat's
     * transcript (obs1 + action1 + obs2 + ..., as the seat saw and wrote it)
     * with the judge and hands the scores, one finite number per seat, to
     * rule(), which ends the game (adding the final rewards to out) exactly
     * as a ruling of the game's own would. rule() draws only from the
     * game's rng, so the same scores give the same outcome.
     */
    const char *(*judge)(const void *state);
    bool (*awaiting_ruling)(const void *state);
    void (*rule)(void *state, const double *scores, ag_game_step_t *out);
};

extern const ag_game_t ag_game_debate;
extern const ag_game_t ag_game_critique;

/* The hosted game called name, or NULL. */
const ag_game_t *ag_game_find(const char *name);

/* All hosted games (debate, critique); *count receives their number. */
const ag_game_t *const *ag_game_list(size_t *count);

/* Index of the bot called name in game->bots, or -1. */
int ag_game_bot_find(const ag_game_t *game, const char *name);

/* -- helpers for game implementations -- */

/*
 * Checks that every given option is one of game->options, given once, with
 * non-NULL key and value. Returns 0 or AG_GAME_EBADOPT with a message.
 */
int ag_game_check_options(const ag_game_t *game, const ag_game_kv_t *options, size_t num_options,
                          char *err, size_t err_cap);

/* The value given for option name, else its default from game->options. */
const char *ag_game_option_value(const ag_game_t *game, const ag_game_kv_t *options,
                                 size_t num_options, const char *name);

/* Option value parsers: 0, or AG_GAME_EBADOPT with a message naming the option. */
int ag_game_option_int(const char *name, const char *value, int lo, int hi, int *out, char *err,
                       size_t err_cap);
int ag_game_option_double(const char *name, const char *value, double lo, double hi, double *out,
                          char *err, size_t err_cap);
/* Index of value in the NULL-terminated list choices. */
int ag_game_option_choice(const char *name, const char *value, const char *const *choices, int *out,
                          char *err, size_t err_cap);

/* Appends an info entry and returns its value buffer to fill (NUL-terminated). */
char *ag_game_outcome_info(ag_game_outcome_t *out, const char *key);
void ag_game_outcome_metric(ag_game_outcome_t *out, const char *name, double value);

/* snprintf into err if err is non-NULL and err_cap > 0. */
void ag_game_errorf(char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
