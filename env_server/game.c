/*
 * game.c - lookups in the registry of hosted games (the table itself is
 * generated from env_server/games/meson.build), the check of what a game
 * declares, and the option, outcome and error helpers every game
 * implementation shares.
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

const ag_game_t *ag_game_find(const char *name)
{
    if (name == NULL)
        return NULL;
    size_t n;
    const ag_game_t *const *games = ag_game_list(&n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(games[i]->name, name) == 0)
            return games[i];
    return NULL;
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

const ag_game_metric_spec_t *ag_game_metric_find(const ag_game_t *game, const char *name)
{
    if (name == NULL)
        return NULL;
    for (int i = 0; i < game->num_metrics; i++)
        if (strcmp(game->metrics[i].name, name) == 0)
            return &game->metrics[i];
    return NULL;
}

static bool s_metric_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > AG_GAME_METRIC_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* A ratio's numerator or denominator: a metric of the game that is not a ratio itself. */
static bool s_reported(const ag_game_t *game, const char *name)
{
    const ag_game_metric_spec_t *m = ag_game_metric_find(game, name);
    return m != NULL && m->numerator == NULL;
}

static int s_validate_metrics(const ag_game_t *game, char *err, size_t err_cap)
{
    int headlines = 0;
    for (int i = 0; i < game->num_metrics; i++) {
        const ag_game_metric_spec_t *m = &game->metrics[i];
        if (!s_metric_name_ok(m->name)) {
            ag_game_errorf(err, err_cap,
                           "game %s: metric %d's name must be 1..%d ASCII letters, digits or '_'",
                           game->name, i, AG_GAME_METRIC_NAME_MAX);
            return AG_GAME_EINTERNAL;
        }
        if (ag_game_metric_find(game, m->name) != m) {
            ag_game_errorf(err, err_cap, "game %s: metric %s declared twice", game->name, m->name);
            return AG_GAME_EINTERNAL;
        }
        if (m->description == NULL || m->goal < AG_METRIC_UNSPECIFIED ||
            m->goal > AG_METRIC_MINIMIZE) {
            ag_game_errorf(err, err_cap, "game %s: metric %s needs a description and a goal",
                           game->name, m->name);
            return AG_GAME_EINTERNAL;
        }
        headlines += m->headline;
        if ((m->numerator == NULL) != (m->denominator == NULL) ||
            (m->numerator != NULL &&
             (!s_reported(game, m->numerator) || !s_reported(game, m->denominator)))) {
            ag_game_errorf(err, err_cap,
                           "game %s: ratio metric %s needs a numerator and a denominator, both "
                           "metrics of the game that are not ratios",
                           game->name, m->name);
            return AG_GAME_EINTERNAL;
        }
    }
    if (headlines > 1) {
        ag_game_errorf(err, err_cap, "game %s declares %d headline metrics, at most one may be",
                       game->name, headlines);
        return AG_GAME_EINTERNAL;
    }
    return 0;
}

int ag_game_validate(const ag_game_t *game, char *err, size_t err_cap)
{
    if (game->name == NULL || game->name[0] == '\0' || strlen(game->name) > 64 ||
        strchr(game->name, ' ') != NULL) {
        ag_game_errorf(err, err_cap, "a game needs a name of 1..64 bytes without spaces");
        return AG_GAME_EINTERNAL;
    }
    if (game->num_players < 1 || game->num_players > AG_GAME_MAX_PLAYERS ||
        game->roles == NULL || game->demo_bots == NULL) {
        ag_game_errorf(err, err_cap, "game %s: 1..%d seats, each with a role and a demo bot",
                       game->name, AG_GAME_MAX_PLAYERS);
        return AG_GAME_EINTERNAL;
    }
    for (int s = 0; s < game->num_players; s++) {
        if (game->demo_bots[s] == NULL || ag_game_bot_find(game, game->demo_bots[s]) < 0) {
            ag_game_errorf(err, err_cap, "game %s: seat %d's demo bot is not one of its bots",
                           game->name, s);
            return AG_GAME_EINTERNAL;
        }
    }
    for (int b = 0; b < game->num_bots; b++) {
        if (game->bot_seats[b] < -1 || game->bot_seats[b] >= game->num_players) {
            ag_game_errorf(err, err_cap, "game %s: bot %s plays seat %d, which is not a seat",
                           game->name, game->bots[b], game->bot_seats[b]);
            return AG_GAME_EINTERNAL;
        }
    }
    if (game->reset == NULL || game->to_act == NULL || game->observe == NULL ||
        game->step == NULL || game->bot_act == NULL || game->outcome == NULL ||
        (game->judge == NULL) != (game->rule == NULL) ||
        (game->judge == NULL) != (game->awaiting_ruling == NULL)) {
        ag_game_errorf(err, err_cap,
                       "game %s: reset, to_act, observe, step, bot_act and outcome are required; "
                       "judge, awaiting_ruling and rule come together or not at all",
                       game->name);
        return AG_GAME_EINTERNAL;
    }
    return s_validate_metrics(game, err, err_cap);
}

int ag_game_validate_all(char *err, size_t err_cap)
{
    size_t n;
    const ag_game_t *const *games = ag_game_list(&n);
    for (size_t i = 0; i < n; i++) {
        int rc = ag_game_validate(games[i], err, err_cap);
        if (rc < 0)
            return rc;
        if (ag_game_find(games[i]->name) != games[i]) {
            ag_game_errorf(err, err_cap, "two games are called %s", games[i]->name);
            return AG_GAME_EINTERNAL;
        }
    }
    return 0;
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

void ag_game_outcome_clear(ag_game_outcome_t *out)
{
    out->num_info = 0;
    out->num_metrics = 0;
    out->err = 0;
    out->value = (ag_text_t){0};
}

int ag_game_outcome_status(ag_game_outcome_t *out)
{
    if (out->err == 0 && out->value.err != 0)
        out->err = out->value.err;
    return out->err;
}

ag_text_t *ag_game_outcome_info(ag_game_outcome_t *out, const char *key)
{
    assert(out->num_info < AG_GAME_MAX_INFO);
    ag_game_outcome_status(out); /* keep the previous value's failure */
    ag_game_info_t *info = &out->info[out->num_info++];
    info->key = key;
    out->value = ag_text_init(info->value, sizeof info->value);
    return &out->value;
}

void ag_game_outcome_metric(ag_game_outcome_t *out, const char *name, double value)
{
    assert(out->num_metrics < AG_GAME_MAX_METRICS);
    out->metrics[out->num_metrics].name = name;
    out->metrics[out->num_metrics].value = value;
    out->num_metrics++;
}
