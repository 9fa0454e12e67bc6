/*
 * game.h - what the learner knows of the game it trains on, learnt from the
 * env server it already asks for warm-start demos (learner.env): the game's
 * name (game.name, or the first game the server's Hello lists when that is
 * empty) and the metrics its GameSpec declares (docs/protocol.md §8.1, read
 * by common/net/game_metrics.h), so the learner reports what the game
 * declares and names no game itself.
 */
#ifndef AG_LEARNER_GAME_H
#define AG_LEARNER_GAME_H

#include "game_metrics.h"

#define AG_GAME_NAME_LEN 65 /* 64 bytes and a NUL, as GameSpec.name */

typedef struct ag_learner_game {
    char name[AG_GAME_NAME_LEN]; /* "" while unknown */
    ag_game_metrics_t *metrics;  /* its declarations (none without a GameSpec); owned */
} ag_learner_game_t;

/*
 * Sends Hello to the first endpoint of env (comma-separated) and fills game
 * with the game named want, or the first game listed when want is "". Every
 * outcome leaves game usable: name = want and no declared metrics when no
 * server answered within timeout_ms (-ETIMEDOUT, or another negative errno);
 * -ENOENT when the server does not host want (logged with the games it
 * offers); -ENOMEM. Returns 0 when the game's GameSpec was read. Free with
 * ag_learner_game_finish.
 */
int ag_learner_game_hello(const char *env, const char *want, int timeout_ms,
                          ag_learner_game_t *game);
void ag_learner_game_finish(ag_learner_game_t *game);

#endif
