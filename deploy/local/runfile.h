/*
 * runfile.h - a whole run file held in memory, every section and key, for
 * the launcher.
 *
 * Each agora binary reads only the sections it declares (config.h); the
 * launcher is the one process that must see all of them: it reads a few keys
 * of other sections ([game], [eval], [learner]), fills in the endpoints and
 * output directory it chose, and writes the result back out as the run's
 * effective run file (DIR/run.ini) that every child then reads. Values are
 * kept as text in the order they first appeared, so the written file keeps
 * the author's section order. Keys are addressed as "section.key".
 */
#ifndef AG_RUNFILE_H
#define AG_RUNFILE_H

#include <stddef.h>
#include <stdio.h>

typedef struct ag_runfile ag_runfile_t;

ag_runfile_t *ag_runfile_create(void);
void ag_runfile_destroy(ag_runfile_t **self);

/*
 * Merges an INI file (or text; origin names it in messages) into the model;
 * a key given twice keeps the last value. Returns 0, or -1 after printing
 * why (cannot open, syntax error with its line) to stderr.
 */
int ag_runfile_load(ag_runfile_t *self, const char *path);
int ag_runfile_load_string(ag_runfile_t *self, const char *text, const char *origin);

/* The value of "section.key", or NULL when the run file does not set it. */
const char *ag_runfile_get(const ag_runfile_t *self, const char *key);

/*
 * Splits a comma-separated value ("a, b,c") into at most max items, each
 * with spaces and tabs trimmed and copied to items + i * cap (cap bytes
 * each). Returns the count ("" has none), -EINVAL for an empty item or one
 * of cap bytes or more, -E2BIG for more than max.
 */
int ag_runfile_split(const char *value, char *items, size_t cap, size_t max);

/* Sets "section.key" (adding the section if new); 0, or -1 on a malformed key or no memory. */
int ag_runfile_set(ag_runfile_t *self, const char *key, const char *value);

/* Iteration in file order: *section, *key and *value are borrowed. */
size_t ag_runfile_count(const ag_runfile_t *self);
void ag_runfile_entry(const ag_runfile_t *self, size_t i, const char **section, const char **key,
                      const char **value);

/*
 * Writes the model as INI, sections in first-appearance order, after a
 * comment block (header, may be NULL; each line gets "# "). Returns 0 or -1.
 */
int ag_runfile_write(const ag_runfile_t *self, FILE *f, const char *header);

#endif
