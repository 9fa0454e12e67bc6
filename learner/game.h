/*
 * game.h - what the learner knows of the game it trains on, learnt from the
 * env server it already asks for warm-start demos (learner.env): the game's
 * name (game.name, or the first game the server's Hello lists when that is
 * empty) and the metrics its GameSpec declares (docs/protocol.md §8.1), so
 * the learner reports what the game declares and names no game itself.
 */
#ifndef AG_LEARNER_GAME_H
#define AG_LEARNER_GAME_H

#include <stdbool.h>
#include <stddef.h>

#define AG_GAME_MAX_METRICS 32
#define AG_GAME_NAME_LEN 65 /* 64 bytes and a NUL, as GameSpec.name and MetricSpec.name */

typedef struct ag_metric_spec {
    char name[AG_GAME_NAME_LEN];
    /* both empty, or the metrics summed above and below for a ratio metric */
    char numerator[AG_GAME_NAME_LEN], denominator[AG_GAME_NAME_LEN];
} ag_metric_spec_t;

typedef struct ag_game_info {
    char name[AG_GAME_NAME_LEN]; /* "" while unknown */
    bool declared;               /* a GameSpec was read (its metrics below) */
    size_t n_metrics;
    ag_metric_spec_t metrics[AG_GAME_MAX_METRICS];
    int headline; /* index into metrics, or -1 */
} ag_game_info_t;

/*
 * Sends Hello to the first endpoint of env (comma-separated) and fills info
 * with the game named want, or the first game listed when want is "". Every
 * outcome leaves info usable: name = want and no metrics when no server
 * answered within timeout_ms (-ETIMEDOUT, or another negative errno); -ENOENT
 * when the server does not host want (logged with the games it offers).
 * Returns 0 when the game's GameSpec was read.
 */
int ag_game_hello(const char *env, const char *want, int timeout_ms, ag_game_info_t *info);

#endif
