/*
 * metrics.h - the learner's figures of its game: what an update's record in
 * metrics.jsonl says about the games of its batch, and the one figure the
 * progress line leads with. Game-agnostic: every metric the trajectories
 * carry is reported under its own name, the ratio metrics the game declares
 * are computed from their parts, and the headline is the game's own
 * (game.h); nothing here knows a game by name.
 */
#ifndef AG_LEARNER_METRICS_H
#define AG_LEARNER_METRICS_H

#include <jansson.h>
#include <stddef.h>

#include "game.h"
#include "traj.h"

/*
 * Adds to rec the figures of the batch b[0..n): each metric the trajectories
 * carry, as its mean over those that carry it; each ratio metric g declares,
 * as sum(numerator) / sum(denominator) over the batch (absent while the
 * denominator sums to 0); win_rate_seatN (share of games with a positive
 * return for seat N); reward_mean (the turn rewards per trained seat).
 * g's sums are those of this batch afterwards.
 */
void ag_metrics_game(json_t *rec, ag_learner_game_t *g, ag_traj_t *const *b, size_t n);

/* The figure the progress line leads with: the game's headline metric when
 * it declares one and rec has it, else reward_mean. Sets *name to its name. */
double ag_metrics_headline(const json_t *rec, const ag_learner_game_t *g, const char **name);

#endif
