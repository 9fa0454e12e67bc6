/*
 * game_outcome.h - lookups in a finished game's outcome, shared by the game
 * tests. Include after <cmocka.h>: a missing key fails the calling test.
 */
#ifndef AG_TEST_GAME_OUTCOME_H
#define AG_TEST_GAME_OUTCOME_H

#include <string.h>

#include "game.h"

static inline const char *info(const ag_game_outcome_t *o, const char *key)
{
    for (int i = 0; i < o->num_info; i++)
        if (strcmp(o->info[i].key, key) == 0)
            return o->info[i].value;
    fail_msg("no info key %s", key);
    return NULL;
}

static inline double metric(const ag_game_outcome_t *o, const char *name)
{
    for (int i = 0; i < o->num_metrics; i++)
        if (strcmp(o->metrics[i].name, name) == 0)
            return o->metrics[i].value;
    fail_msg("no metric %s", name);
    return 0;
}

#endif
