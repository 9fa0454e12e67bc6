/*
 * game.c - the registry of hosted games and the option, outcome and error
 * helpers every game implementation shares.
 *
 * Option values arrive from the network as text, so each parser accepts the
 * whole string or nothing (no trailing garbage, no NaN) and says in its
 * message which option was wrong and what range it takes.
 */
#include "game.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ag_game_t *const s_games[] = {&ag_game_debate, &ag_game_critique};

const ag_game_t *ag_game_find(const char *name)
{
    if (name == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof s_games / sizeof s_games[0]; i++)
        if (strcmp(s_games[i]->name, name) == 0)
            return s_games[i];
    return NULL;
}

const ag_game_t *const *ag_game_list(size_t *count)
{
    *count = sizeof s_games / sizeof s_games[0];
    return s_games;
}

int ag_game_bot_find(const ag_game_t *game, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < game->num_bots; i++)
        if (strcmp(game->bots[i], name) == 0)
            return i;
    return -1;
}

void ag_game_errorf(char *err, size_t err_cap, const char *fmt, ...)
{
    if (err == NULL || err_cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, err_cap, fmt, ap);
    va_end(ap);
}

int ag_game_check_options(const ag_game_t *game, const ag_game_kv_t *options, size_t num_options,
                          char *err, size_t err_cap)
{
    for (size_t i = 0; i < num_options; i++) {
        const char *key = options[i].key;
        if (key == NULL || options[i].value == NULL) {
            ag_game_errorf(err, err_cap, "option %zu has no key or no value", i);
            return AG_GAME_EBADOPT;
        }
        int known = 0;
        for (int j = 0; j < game->num_options; j++)
            known |= strcmp(game->options[j].name, key) == 0;
        if (!known) {
            /* Cut the echoed key so a hostile one cannot flood the message. */
            ag_game_errorf(err, err_cap, "unknown option '%.64s' for game %s", key, game->name);
            return AG_GAME_EBADOPT;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(options[j].key, key) == 0) {
                ag_game_errorf(err, err_cap, "option '%s' given twice", key);
                return AG_GAME_EBADOPT;
            }
        }
    }
    return 0;
}

const char *ag_game_option_value(const ag_game_t *game, const ag_game_kv_t *options,
                                 size_t num_options, const char *name)
{
    for (size_t i = 0; i < num_options; i++)
        if (strcmp(options[i].key, name) == 0)
            return options[i].value;
    for (int j = 0; j < game->num_options; j++)
        if (strcmp(game->options[j].name, name) == 0)
            return game->options[j].default_value;
    assert(!"option not declared by the game");
    return "";
}

int ag_game_option_int(const char *name, const char *value, int lo, int hi, int *out, char *err,
                       size_t err_cap)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (end == value || *end != '\0' || errno != 0 || v < lo || v > hi) {
        ag_game_errorf(err, err_cap, "option %s must be an integer in %d..%d, got '%.32s'", name,
                       lo, hi, value);
        return AG_GAME_EBADOPT;
    }
    *out = (int)v;
    return 0;
}

int ag_game_option_double(const char *name, const char *value, double lo, double hi, double *out,
                          char *err, size_t err_cap)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    /* The negated comparison also rejects NaN. */
    if (end == value || *end != '\0' || errno != 0 || !(v >= lo && v <= hi)) {
        ag_game_errorf(err, err_cap, "option %s must be a number in %g..%g, got '%.32s'", name, lo,
                       hi, value);
        return AG_GAME_EBADOPT;
    }
    *out = v;
    return 0;
}

int ag_game_option_choice(const char *name, const char *value, const char *const *choices, int *out,
                          char *err, size_t err_cap)
{
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(choices[i], value) == 0) {
            *out = i;
            return 0;
        }
    }
    char list[128] = "";
    size_t used = 0;
    for (int i = 0; choices[i] != NULL && used < sizeof list; i++)
        used +=
            (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? " | " : "", choices[i]);
    ag_game_errorf(err, err_cap, "option %s must be one of %s, got '%.32s'", name, list, value);
    return AG_GAME_EBADOPT;
}

char *ag_game_outcome_info(ag_game_outcome_t *out, const char *key)
{
    assert(out->num_info < AG_GAME_MAX_INFO);
    ag_game_info_t *info = &out->info[out->num_info++];
    info->key = key;
    info->value[0] = '\0';
    return info->value;
}

void ag_game_outcome_metric(ag_game_outcome_t *out, const char *name, double value)
{
    assert(out->num_metrics < AG_GAME_MAX_METRICS);
    out->metrics[out->num_metrics].name = name;
    out->metrics[out->num_metrics].value = value;
    out->num_metrics++;
}
