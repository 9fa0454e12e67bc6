/*
 * game_outcome.h - the hosted games the game tests play, lookups in a
 * finished game's outcome, and the check that an outcome reports exactly
 * what its game declares. Include after <cmocka.h>: a missing key fails the
 * calling test.
 */
#ifndef AG_TEST_GAME_OUTCOME_H
#define AG_TEST_GAME_OUTCOME_H

#include <stdbool.h>
#include <string.h>

#include "game.h"

/* Defined in env_server/games/ (the registry declares them; the tests name them directly). */
extern const ag_game_t ag_game_debate;
extern const ag_game_t ag_game_critique;

/* A buffer for an expected observation of the hosted games in the tests. */
#define TEST_OBS_CAP 512

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

/*
 * Every metric o reports is declared by game and is not a ratio, none is
 * reported twice, and each ratio's numerator and denominator are reported
 * together or not at all.
 * seen (game->num_metrics flags) marks each declared metric this outcome
 * reported, so a caller can also check that each one is reported somewhere.
 */
static inline void reports_declared(const ag_game_t *game, const ag_game_outcome_t *o, bool *seen)
{
    for (int i = 0; i < o->num_metrics; i++) {
        const ag_game_metric_spec_t *m = ag_game_metric_find(game, o->metrics[i].name);
        if (m == NULL || m->numerator != NULL)
            fail_msg("game %s reported metric %s, not declared as a reported one", game->name,
                     o->metrics[i].name);
        for (int j = 0; j < i; j++)
            if (strcmp(o->metrics[j].name, o->metrics[i].name) == 0)
                fail_msg("game %s reported metric %s twice", game->name, o->metrics[i].name);
        seen[m - game->metrics] = true;
    }
    for (int k = 0; k < game->num_metrics; k++) {
        const ag_game_metric_spec_t *m = &game->metrics[k];
        if (m->numerator == NULL)
            continue;
        bool num = false, den = false;
        for (int i = 0; i < o->num_metrics; i++) {
            num |= strcmp(o->metrics[i].name, m->numerator) == 0;
            den |= strcmp(o->metrics[i].name, m->denominator) == 0;
        }
        if (num != den)
            fail_msg("game %s reported only one of %s's %s and %s", game->name, m->name,
                     m->numerator, m->denominator);
        seen[k] |= num;
    }
}

#endif
