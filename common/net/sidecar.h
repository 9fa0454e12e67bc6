/*
 * sidecar.h - the small JSON state files agora writes beside its
 * checkpoints (the learner's state.json, the reward server's
 * reward-state.json): one format and one reader for both.
 *
 * Format: one JSON object whose "format" member names the kind of file and
 * its version ("agora-learner-state/1"). Unsigned 64-bit values (counters,
 * versions) are written as decimal strings, since JSON readers lose integers
 * past 2^53; a reader also takes a non-negative JSON integer for them.
 * Written atomically (fsutil.h: temporary file, fsync, rename, fsync of the
 * directory), so a crash leaves the previous file whole.
 *
 * Reading validates as it goes: each getter checks the member's type and
 * range and, on the first failure, keeps an error naming the file and the
 * member ("runs/x/state.json: \"updates\": expected an unsigned integer");
 * later getters then fail too, so a loader may check once at its end.
 */
#ifndef AG_SIDECAR_H
#define AG_SIDECAR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Adds "format" to root and writes it to path atomically (root is borrowed).
 * Returns 0 or a negative errno with a reason in err. */
int ag_sidecar_save(const char *path, const char *format, json_t *root, char *err, size_t errlen);

/* A u64 as a sidecar writes it (a decimal string); NULL without memory. */
json_t *ag_sidecar_u64_new(uint64_t v);

typedef struct ag_sidecar {
    json_t *root; /* the file's object, owned */
    char path[400];
    char err[1024]; /* the first failure, "" while none */
} ag_sidecar_t;

enum {
    /* A file without "format" is read as the first version of format (files
     * written before the member existed). */
    AG_SIDECAR_UNTAGGED_OK = 1,
};

/* Reads path and checks it is a JSON object of this format. Returns 0, or
 * -ENOENT (no such file) or -EINVAL with sc->err set; sc is to be closed
 * either way. */
int ag_sidecar_open(ag_sidecar_t *sc, const char *path, const char *format, unsigned flags);
void ag_sidecar_close(ag_sidecar_t *sc);

/* Getters of member key of obj (an object of sc's file; NULL = the root).
 * Each returns 0, or -EINVAL after recording the error (also when an earlier
 * getter failed). */
int ag_sidecar_u64(ag_sidecar_t *sc, const json_t *obj, const char *key, uint64_t max,
                   uint64_t *out);
/* The same check of a value found otherwise (an array element, an object
 * member of any name); name is what the error calls it. */
int ag_sidecar_u64_of(ag_sidecar_t *sc, const json_t *v, const char *name, uint64_t max,
                      uint64_t *out);
int ag_sidecar_number(ag_sidecar_t *sc, const json_t *obj, const char *key, double lo, double hi,
                      double *out);
/* The member as an object or array (NULL after recording the error). */
const json_t *ag_sidecar_object(ag_sidecar_t *sc, const json_t *obj, const char *key);
const json_t *ag_sidecar_array(ag_sidecar_t *sc, const json_t *obj, const char *key);
/* Records a failure of the caller's own check, worded like the getters'. */
int ag_sidecar_bad(ag_sidecar_t *sc, const char *key, const char *expected);
/* For members whose damage is only a warning: gives the recorded error (if
 * any) in why and clears it, so the checks of other members go on. Returns
 * whether there was one. */
bool ag_sidecar_forgive(ag_sidecar_t *sc, char *why, size_t len);
/* Whether the file has passed every check so far. */
bool ag_sidecar_ok(const ag_sidecar_t *sc);

#endif
