/*
 * game_metrics.h - a game's figures over many episodes, as the game declares
 * them in GameSpec.metrics (docs/protocol.md §8.1), so agora-eval reports
 * what the game says about itself and knows no game by name.
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

typedef struct ag_game_metrics ag_game_metrics_t;

/* Copies the declarations of spec (borrowed for the call); NULL when out of memory. */
ag_game_metrics_t *ag_game_metrics_create(const Agora__V1__GameSpec *spec);
void ag_game_metrics_destroy(ag_game_metrics_t **self);

/* Adds one episode's metrics; non-finite values and bad names are skipped. */
void ag_game_metrics_add(ag_game_metrics_t *self, Agora__V1__Metric *const *metrics, size_t n);

/* The declared metrics kept, in declaration order. */
size_t ag_game_metrics_count(const ag_game_metrics_t *self);
const char *ag_game_metrics_name(const ag_game_metrics_t *self, size_t i);
/* Index of the declared headline, or -1 when the game declares none. */
int ag_game_metrics_headline(const ag_game_metrics_t *self);
/* Declared metric i over the episodes so far: true and *out, or false when it has no value yet. */
bool ag_game_metrics_value(const ag_game_metrics_t *self, size_t i, double *out);

/* Every metric reported so far (at most AG_GAME_METRICS_MAX), with its mean. */
size_t ag_game_metrics_reported(const ag_game_metrics_t *self);
const char *ag_game_metrics_reported_name(const ag_game_metrics_t *self, size_t i);
double ag_game_metrics_reported_mean(const ag_game_metrics_t *self, size_t i);

#endif
