/*
 * game.h - what a game is to agora-env: a const vtable (ag_game_t) with its
 * description (players, roles, options, bots, metrics) and the functions
 * that run one episode's state, plus the registry of the games this server
 * hosts. env_server/games/README.md walks through writing one.
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
 * A game says everything about itself here: the metrics it reports are
 * declared next to its options and bots (name, meaning, which way is
 * better, the headline figure, ratios of sums), and agora-env sends the
 * declaration in Hello, so no consumer needs to know a game by name.
 *
 * Texts have no fixed size: a game writes observations, bot actions and
 * info values through a text builder (text.h) that grows up to the bounds
 * below and fails, never cuts, past them.
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
#include "text.h"

#define AG_GAME_MAX_PLAYERS 8
/* No game may take more turns than this (debate: 4; critique: <= 18). */
#define AG_GAME_MAX_TURNS 32
/*
 * Longest observation a game may write (bytes): the largest reply an env
 * client accepts (docs/protocol.md, message size limits), so the protocol,
 * not the game logic, bounds what a game can say. An observation past it
 * fails its step with AG_GAME_ELIMIT; one that fits but makes a reply too
 * large for a client is refused by the server (env_server/README.md).
 */
#define AG_GAME_OBS_MAX (16 * 1024 * 1024)
/* Longest action accepted, from a client or a bot; longer is an invalid action. */
#define AG_GAME_ACTION_MAX 4096
/* Suggested capacity of error-message buffers. */
#define AG_GAME_ERR_CAP 256
#define AG_GAME_MAX_INFO 16
/* Capacity of one info value, NUL included; a longer value is an error of the game. */
#define AG_GAME_INFO_VALUE_CAP 160
/* Most metrics one episode reports (a game may declare more, e.g. per option). */
#define AG_GAME_MAX_METRICS 16
/* Longest metric name (MetricSpec.name). */
#define AG_GAME_METRIC_NAME_MAX 64

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

/* Which way a metric improves (env.proto's MetricGoal, same values). */
typedef enum ag_metric_goal {
    AG_METRIC_UNSPECIFIED = 0, /* neither: a count, a rate to watch */
    AG_METRIC_MAXIMIZE = 1,
    AG_METRIC_MINIMIZE = 2,
} ag_metric_goal_t;

/*
 * A metric a game reports, as advertised in GameSpec.metrics. Over many
 * episodes its value is the mean of the per-episode values of the episodes
 * that report it, unless numerator and denominator are set: then the game
 * does not report it and its value is sum(numerator) / sum(denominator) of
 * two metrics the game does report (a precision: true positives over flags).
 */
typedef struct ag_game_metric_spec {
    const char *name;        /* ASCII letters, digits and '_', 1..AG_GAME_METRIC_NAME_MAX */
    const char *description; /* what it means, for people */
    ag_metric_goal_t goal;
    bool headline;           /* the one figure that says how well a policy plays */
    const char *numerator;   /* NULL, or the metric summed on top of a ratio ... */
    const char *denominator; /* ... and the one summed below */
} ag_game_metric_spec_t;

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
    ag_text_t value; /* the info value being written (ag_game_outcome_info) */
    int err;         /* the first info value that did not fit (-E2BIG), else 0 */
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
    const ag_game_metric_spec_t *metrics; /* num_metrics entries, the ones outcome() reports */
    int num_metrics;
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
     * Appends to out (empty) the observation of the seat to act: the text
     * that is new to it since its previous observation. out grows as needed
     * up to AG_GAME_OBS_MAX bytes; past that it records the failure and the
     * episode refuses the step (AG_GAME_ELIMIT).
     */
    void (*observe)(const void *state, ag_text_t *out);
    /*
     * The seat to act plays action[0..len) (untrusted bytes). Returns 0 when
     * the action was applied (also when an invalid action was consumed in
     * penalize mode: out->invalid_action), AG_GAME_EINVAL with what was
     * expected in err and the state unchanged, or AG_GAME_EOVER after the end.
     */
    int (*step)(void *state, const char *action, size_t len, ag_game_step_t *out, char *err,
                size_t err_cap);
    /*
     * Bot number `bot` (index into bots) appends its action for the seat to
     * act to out (empty, at most AG_GAME_ACTION_MAX bytes). Draws only from
     * rng.
     */
    void (*bot_act)(const void *state, int bot, ag_rng_t *rng, ag_text_t *out);
    /*
     * Fills the final info and metrics into out (empty) with
     * ag_game_outcome_info and ag_game_outcome_metric: only metrics the game
     * declares, never a ratio one. Only valid once the game has ended.
     */
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

/* The hosted game called name, or NULL. */
const ag_game_t *ag_game_find(const char *name);

/*
 * All hosted games, in the order env_server/games/meson.build lists them;
 * *count receives their number. The table is generated by the build from
 * that list (env_server/games/registry_gen.c).
 */
const ag_game_t *const *ag_game_list(size_t *count);

/* Index of the bot called name in game->bots, or -1. */
int ag_game_bot_find(const ag_game_t *game, const char *name);

/* The metric called name that game declares, or NULL. */
const ag_game_metric_spec_t *ag_game_metric_find(const ag_game_t *game, const char *name);

/*
 * Checks what a game declares about itself: a name, roles and demo bots for
 * its 1..AG_GAME_MAX_PLAYERS seats, bot seats in range, and metrics with
 * well-formed unique names, a known goal, at most one headline, and for a
 * ratio both a numerator and a denominator naming metrics the game reports
 * (not ratios themselves). Returns 0, or AG_GAME_EINTERNAL with what is
 * wrong in err. agora-env refuses to start with a game that fails it.
 */
int ag_game_validate(const ag_game_t *game, char *err, size_t err_cap);

/* ag_game_validate for every hosted game, and no two with one name. */
int ag_game_validate_all(char *err, size_t err_cap);

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

/*
 * Appends an info entry key (a static string) and returns the builder of its
 * value, valid until the next call. A value longer than
 * AG_GAME_INFO_VALUE_CAP - 1 bytes is not cut: it fails the outcome
 * (ag_game_outcome_status), which the episode reports as an internal error.
 */
ag_text_t *ag_game_outcome_info(ag_game_outcome_t *out, const char *key);
/* Appends metric name (a static string declared in the game's metrics). */
void ag_game_outcome_metric(ag_game_outcome_t *out, const char *name, double value);
/* Empties out before the game fills it. */
void ag_game_outcome_clear(ag_game_outcome_t *out);
/* 0 when every info value fitted, else -E2BIG. */
int ag_game_outcome_status(ag_game_outcome_t *out);

/* snprintf into err if err is non-NULL and err_cap > 0. */
void ag_game_errorf(char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
