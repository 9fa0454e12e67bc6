/*
 * learner_options.h - agora-learner's options: one typed table (config.h) over
 * ag_learner_opts_t, the only place a key, its short name, default, range
 * and help are written. main.c parses the command line and the run file with
 * it; the library's defaults (ag_learner_opts_default, ag_ppo_config_default)
 * are the table's defaults, so the unit tests start where the binary does.
 */
#ifndef AG_LEARNER_OPTIONS_H
#define AG_LEARNER_OPTIONS_H

#include <stddef.h>

#include "config.h"
#include "learner.h"
#include "ppo.h"

/* The rows of [learner], [model], [game], [warmstart] and [ppo]. One row has
 * no field: warmstart.options, which main.c lays over game.options. */
extern const ag_option_t ag_learner_options[];
extern const size_t ag_learner_n_options;

/* Every field the table has a row for at its default; the model's vocabulary
 * (not an option) is the model core's; the rest 0. Strings are static. */
void ag_learner_opts_default(ag_learner_opts_t *o);

/* The [ppo] rows' defaults. */
void ag_ppo_config_default(ag_ppo_config_t *c);

#endif
