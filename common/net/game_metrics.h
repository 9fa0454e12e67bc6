/*
 * game_metrics.h - a game's figures over many episodes, as the game declares
 * them in GameSpec.metrics (docs/protocol.md §8.1): the one reader of those
 * declarations, so the learner, agora-eval and the launcher report what the
 * game says about itself and know no game by name. Also the one lookup of a
 * game in an env server's HelloReply.
 *
 * Each finished episode hands in the metrics the game reported on its last
 * step. A declared metric is then either the mean of its per-episode values
 * over the episodes that reported it, or, when the declaration names a
 * numerator and a denominator, the ratio of their sums (a precision:
 * true positives over flags raised; no value while the denominator's sum is
 * 0). The mean of every reported metric, declared or not, is kept too.
 *
 * Declarations come from the network: one that breaks §8.1's rules (a name
 * that is not ASCII letters, digits and '_', only one of numerator and
 * denominator, a second headline, a name declared twice) is left out with a
 * warning, never trusted.
 */
#ifndef AG_GAME_METRICS_H
#define AG_GAME_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "env.pb-c.h"

#define AG_GAME_METRICS_MAX 64
#define AG_GAME_METRICS_NAME_MAX 64

/*
 * The GameSpec of game want in h ("" or NULL = the first game listed), or
 * NULL with why (naming the games h does list). Names over 64 bytes or
 * empty are passed over.
 */
const Agora__V1__GameSpec *ag_game_find(const Agora__V1__HelloReply *h, const char *want,
                                        char *why, size_t why_len);

/* Whether game g has a scripted bot called bot (GameSpec.bots). */
bool ag_game_has_bot(const Agora__V1__GameSpec *g, const char *bot);

typedef struct ag_game_metrics ag_game_metrics_t;

/* Copies the declarations of spec (borrowed for the call; NULL = none);
 * NULL when out of memory. */
ag_game_metrics_t *ag_game_metrics_create(const Agora__V1__GameSpec *spec);
void ag_game_metrics_destroy(ag_game_metrics_t **self);

/* Adds one episode's metrics; non-finite values and bad names are skipped. */
void ag_game_metrics_add(ag_game_metrics_t *self, Agora__V1__Metric *const *metrics, size_t n);
/* Adds one value of metric name (one episode's), as ag_game_metrics_add does. */
void ag_game_metrics_add_one(ag_game_metrics_t *self, const char *name, double value);
/* Forgets every value added; the declarations stay. */
void ag_game_metrics_clear(ag_game_metrics_t *self);

/* The declared metrics kept, in declaration order. */
size_t ag_game_metrics_count(const ag_game_metrics_t *self);
const char *ag_game_metrics_name(const ag_game_metrics_t *self, size_t i);
/* What declared metric i means, its goal, and for a ratio its two parts
 * (NULL for a mean). */
const char *ag_game_metrics_description(const ag_game_metrics_t *self, size_t i);
Agora__V1__MetricGoal ag_game_metrics_goal(const ag_game_metrics_t *self, size_t i);
const char *ag_game_metrics_numerator(const ag_game_metrics_t *self, size_t i);
const char *ag_game_metrics_denominator(const ag_game_metrics_t *self, size_t i);
/* Index of the declared headline, or -1 when the game declares none. */
int ag_game_metrics_headline(const ag_game_metrics_t *self);
/* Declared metric i over the episodes so far: true and *out, or false when it has no value yet. */
bool ag_game_metrics_value(const ag_game_metrics_t *self, size_t i, double *out);

/* Every metric reported so far (at most AG_GAME_METRICS_MAX), with its mean. */
size_t ag_game_metrics_reported(const ag_game_metrics_t *self);
const char *ag_game_metrics_reported_name(const ag_game_metrics_t *self, size_t i);
double ag_game_metrics_reported_mean(const ag_game_metrics_t *self, size_t i);

#endif
