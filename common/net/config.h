/*
 * config.h - the one configuration mechanism of every agora binary.
 *
 * A binary declares its options as a table of "section.key" entries with a
 * default and a help line. Values come, in increasing priority, from the
 * defaults, a run file (INI, parsed by inih: `[section]` then `key = value`)
 * given by --config FILE, and command-line overrides `--KEY VALUE` or
 * `--KEY=VALUE`, where KEY is the full "section.key" or the option's short
 * alias; a flag (a bool option) given alone, `--KEY` followed by nothing or
 * by another option, is true. One run file can configure a whole cluster: a binary reads the
 * sections it owns (those in its table) and ignores the others, but an
 * unknown key inside a section it owns is an error (a typo must not pass
 * silently). --help prints the table. Every config also has `log.level`.
 */
#ifndef AG_CONFIG_H
#define AG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What an option's value is and where ag_config_apply stores it. */
typedef enum ag_opt_kind {
    AG_OPT_TEXT = 0, /* no field: read with ag_config_str and the getters below */
    AG_OPT_STR,      /* const char * (borrowed from the config: lives as long as it) */
    AG_OPT_BOOL,     /* bool: true/false, 1/0, yes/no, on/off */
    AG_OPT_INT,      /* int, in [min, max] */
    AG_OPT_LONG,     /* long, in [min, max] */
    AG_OPT_U32,      /* uint32_t, in [min, max] */
    AG_OPT_U64,      /* uint64_t, in [min, max] */
    AG_OPT_FLOAT,    /* float, finite, in [min, max] */
    AG_OPT_DOUBLE,   /* double, finite, in [min, max] */
    AG_OPT_ENUM,     /* int: the value of the choice named */
} ag_opt_kind_t;

/* One name an AG_OPT_ENUM option accepts; a table ends with {NULL, 0}. */
typedef struct ag_opt_choice {
    const char *name;
    int value;
} ag_opt_choice_t;

/*
 * One row of a binary's option table: everything about an option in one
 * place (Redis's config.c is the model). Parsing, defaults, range checks,
 * --help and the Markdown table of a README (--help-markdown) all come from
 * the rows, so an option is written once. Write rows with the macros below;
 * a row without a kind (AG_OPT_TEXT) has no field and is read by key.
 */
typedef struct ag_option {
    const char *key;   /* "section.key" */
    const char *alias; /* short command-line name, or NULL for none */
    const char *def;   /* default value as text ("" if none) */
    const char *help;
    ag_opt_kind_t kind;
    size_t offset;                  /* of the field in the struct given to ag_config_apply */
    double min, max;                /* numbers: the range; AG_OPT_STR: max = longest length
                                       (0 = any) and min = 1 when the value may not be empty */
    const ag_opt_choice_t *choices; /* AG_OPT_ENUM */
} ag_option_t;

/* The kind of field f of struct type T, chosen by its C type. */
#define AG_OPT_KIND_OF(T, f)                                                                   \
    _Generic(((T *)0)->f,                                                                      \
        const char *: AG_OPT_STR,                                                              \
        bool: AG_OPT_BOOL,                                                                     \
        int: AG_OPT_INT,                                                                       \
        long: AG_OPT_LONG,                                                                     \
        uint32_t: AG_OPT_U32,                                                                  \
        uint64_t: AG_OPT_U64,                                                                  \
        float: AG_OPT_FLOAT,                                                                   \
        double: AG_OPT_DOUBLE)

/* A number, flag or string stored in field f of T (the kind follows f's type). */
#define AG_OPT(T, f, key, alias, def, lo, hi, help)                                            \
    {key, alias, def, help, AG_OPT_KIND_OF(T, f), offsetof(T, f), lo, hi, NULL}
/* An int field f of T set from one of the names in choices. */
#define AG_OPT_CHOICE(T, f, key, alias, def, choices, help)                                    \
    {key, alias, def, help, AG_OPT_ENUM, offsetof(T, f), 0, 0, choices}
/* An option without a field, read with ag_config_str (e.g. one a launcher passes on). */
#define AG_OPT_TEXT(key, alias, def, help) {key, alias, def, help, AG_OPT_TEXT, 0, 0, 0, NULL}

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
 * run, 1 when --help or --help-markdown was printed (exit 0), or a negative
 * value after printing an error to stderr (exit 2). Applies log.level.
 */
int ag_config_parse_args(ag_config_t *self, int argc, char **argv);

/* Loads an INI run file (at most 1 MiB); returns 0 or a negative value after
 * logging why. Its text is kept for ag_config_run_text. */
int ag_config_load_file(ag_config_t *self, const char *path);

/*
 * Loads INI text as if it were a run file named name (in error messages): a
 * run file that did not come from a file, such as the one an actor fetches
 * from the learner. Sections the table does not own are ignored, as in a file.
 */
int ag_config_load_string(ag_config_t *self, const char *text, const char *name);

/* Whether key was given in a run file or on the command line (not its default). */
bool ag_config_is_set(const ag_config_t *self, const char *key);

/*
 * The effective run file: the text of every run file loaded by --config, in
 * order, then the command-line overrides as INI lines (a later line wins, so
 * parsing this text gives the same values for every key; a value with a line
 * break is left out). A new string (free() it), NULL when out of memory.
 */
char *ag_config_run_text(const ag_config_t *self);

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

/*
 * Stores every typed option's current value into its field of dst (the
 * struct the table's offsets are of), checking types and ranges. Every bad
 * value is reported ("KEY: expected ..., got '...'") before it returns -1;
 * 0 when all are good. Strings are borrowed from the config.
 */
int ag_config_apply(const ag_config_t *self, void *dst);

/*
 * Stores the defaults of the typed rows of opts into dst without parsing
 * anything: the one source of a library's defaults (tests start where the
 * binary does). Returns 0, or -1 after printing the row whose default is
 * not valid (a programming error that a test catches).
 */
int ag_option_defaults(const ag_option_t *opts, size_t n_opts, void *dst);

/*
 * Prints the table as a Markdown table (option, command-line name, default,
 * range or choices, meaning): what --help-markdown prints, and what each
 * README's option table must equal.
 */
void ag_config_print_markdown(const ag_config_t *self, void *file /* FILE * */);

/* Writes every declared key and its current value as an INI file body. */
void ag_config_dump(const ag_config_t *self, void *file /* FILE * */);

#endif
