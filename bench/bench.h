/* bench.h - the subcommands of agora-bench; argv[0] is the subcommand name. */
#ifndef AG_BENCH_H
#define AG_BENCH_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "model.h"

/* A macro's value as a string literal, for --help texts. */
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)

int bench_env_main(int argc, char **argv);
int bench_model_main(int argc, char **argv);
int bench_pipeline_main(int argc, char **argv);
int bench_reward_main(int argc, char **argv);

/*
 * A subcommand's options: one typed table (config.h) over its options struct
 * dst, section [bench_SUB] of a run file, --help and --help-markdown from the
 * rows. Parses argv (argv[0] the subcommand) into dst; *cfg owns dst's
 * strings and the positional arguments (ag_config_destroy it). Returns 0 to
 * run, 1 when help was printed (exit 0), 2 after printing what is wrong.
 */
int bench_options(const char *prog, const char *usage, const char *summary, const ag_option_t *rows,
                  size_t n_rows, size_t max_positional, int argc, char **argv, void *dst,
                  ag_config_t **cfg);

/* Prints a subcommand's one-line JSON report (compact, then a newline) and
 * frees it; 0, or -1 when it could not be built or written. */
int bench_report(json_t *report);

/*
 * The isolated rates agora-bench model reports, for a model of config cfg
 * on threads compute threads (0 = all CPUs): training steps and scoring
 * passes over the same B x T random tokens, each timed for about seconds
 * after two warm-up calls. Writes tokens/s of each to *train and *score.
 * Returns 0, or -1 (both 0) on a bad config, no memory or a failed call.
 */
int bench_model_rates(const ag_model_config_t *cfg, int threads, int B, int T, double seconds,
                      double *train, double *score);

#endif
