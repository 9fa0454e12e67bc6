/*
 * config.h - the one configuration mechanism of every agora binary.
 *
 * A binary declares its options as a table of "section.key" entries with a
 * default and a help line. Values come, in increasing priority, from the
 * defaults, a run file (INI, parsed by inih: `[section]` then `key = value`)
 * given by --config FILE, and command-line overrides `--KEY VALUE` or
 * `--KEY=VALUE`, where KEY is the full "section.key" or the option's short
 * alias. One run file can configure a whole cluster: a binary reads the
 * sections it owns (those in its table) and ignores the others, but an
 * unknown key inside a section it owns is an error (a typo must not pass
 * silently). --help prints the table. Every config also has `log.level`.
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ag_option {
    const char *key;   /* "section.key" */
    const char *alias; /* short command-line name, or NULL for none */
    const char *def;   /* default value as text ("" if none) */
    const char *help;
} ag_option_t;

typedef struct ag_config ag_config_t;

/*
 * usage: the synopsis line after the program name (e.g. "[options] ENDPOINT").
 * summary: a paragraph printed by --help. opts: the table (borrowed; must
 * outlive the config). max_positional: how many bare arguments are allowed.
 */
ag_config_t *ag_config_create(const char *prog, const char *usage, const char *summary,
                              const ag_option_t *opts, size_t n_opts, size_t max_positional);
void ag_config_destroy(ag_config_t **self);

/*
 * Parses argv (argv[0] is the program). Returns 0 when the program should
 * run, 1 when --help was printed (exit 0), or a negative value after printing
 * an error to stderr (exit 2). Applies log.level.
 */
int ag_config_parse_args(ag_config_t *self, int argc, char **argv);

/* Loads an INI run file; returns 0 or a negative value after logging why. */
int ag_config_load_file(ag_config_t *self, const char *path);

/* Sets one value as if given on the command line; returns 0 or -1 if unknown. */
int ag_config_set(ag_config_t *self, const char *key, const char *value);

/* The value of a declared key (never NULL for a declared key). */
const char *ag_config_str(const ag_config_t *self, const char *key);

/*
 * Typed getters: 0 on success; a negative value after printing
 * "KEY: expected ..." when the text is not a number in [min, max].
 */
int ag_config_long(const ag_config_t *self, const char *key, long min, long max, long *out);
int ag_config_double(const ag_config_t *self, const char *key, double min, double max,
                     double *out);
int ag_config_bool(const ag_config_t *self, const char *key, bool *out);

size_t ag_config_positional_count(const ag_config_t *self);
const char *ag_config_positional(const ag_config_t *self, size_t i);

/* Writes every declared key and its current value as an INI file body. */
void ag_config_dump(const ag_config_t *self, void *file /* FILE * */);

#endif
