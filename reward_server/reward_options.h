/*
 * reward_options.h - agora-reward's options: one typed table (config.h) over
 * ag_reward_opts_t, the only place a key of [reward], its short name,
 * default, range and help are written. main.c parses with it; whoever runs
 * the service in process (agora-bench reward, tests) starts from
 * ag_reward_opts_default, the table's defaults.
 */
#ifndef AG_REWARD_OPTIONS_H
#define AG_REWARD_OPTIONS_H

#include <stddef.h>

#include "config.h"
#include "reward_service.h"

extern const ag_option_t ag_reward_options[];
extern const size_t ag_reward_n_options;

/* Every field with a row at its default, the model's vocabulary the model
 * core's, the rest 0 (signals off). Strings are static. */
void ag_reward_opts_default(ag_reward_opts_t *o);

#endif
