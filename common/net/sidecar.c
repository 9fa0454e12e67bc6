/*
 * sidecar.c - JSON state files beside checkpoints (see sidecar.h).
 */
#include "sidecar.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fsutil.h"

int ag_sidecar_save(const char *path, const char *format, json_t *root, char *err, size_t errlen)
{
    if (json_object_set_new(root, "format", json_string(format)) < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS | JSON_REAL_PRECISION(17));
    int rc = text ? ag_write_atomic(path, text, strlen(text)) : -ENOMEM;
    free(text);
    if (rc < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
    return rc;
}

json_t *ag_sidecar_u64_new(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return json_string(b);
}

int ag_sidecar_bad(ag_sidecar_t *sc, const char *key, const char *expected)
{
    if (!sc->err[0])
        snprintf(sc->err, sizeof sc->err, "%s: \"%.100s\": expected %.200s", sc->path, key,
                 expected);
    return -EINVAL;
}

bool ag_sidecar_forgive(ag_sidecar_t *sc, char *why, size_t len)
{
    if (!sc->err[0])
        return false;
    snprintf(why, len, "%s", sc->err);
    sc->err[0] = '\0';
    return true;
}

bool ag_sidecar_ok(const ag_sidecar_t *sc)
{
    return sc->root && !sc->err[0];
}

int ag_sidecar_open(ag_sidecar_t *sc, const char *path, const char *format, unsigned flags)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->path, sizeof sc->path, "%s", path);
    FILE *f = fopen(path, "rb");
    if (!f) {
        const int e = errno;
        snprintf(sc->err, sizeof sc->err, "%s: %s", sc->path, strerror(e));
        return e == ENOENT ? -ENOENT : -EINVAL;
    }
    json_error_t je;
    /* A NUL inside a string is that member's damage, for its own check to find. */
    sc->root = json_loadf(f, JSON_ALLOW_NUL, &je);
    fclose(f);
    if (!sc->root) {
        snprintf(sc->err, sizeof sc->err, "%s: line %d: %s", sc->path, je.line, je.text);
        return -EINVAL;
    }
    if (!json_is_object(sc->root)) {
        snprintf(sc->err, sizeof sc->err, "%s: not a JSON object", sc->path);
        return -EINVAL;
    }
    const json_t *fmt = json_object_get(sc->root, "format");
    if (!fmt && (flags & AG_SIDECAR_UNTAGGED_OK))
        return 0;
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), format)) {
        snprintf(sc->err, sizeof sc->err, "%s: not an %.100s file (\"format\" is %s%.100s%s)",
                 sc->path, format, json_is_string(fmt) ? "\"" : "",
                 json_is_string(fmt) ? json_string_value(fmt)
                 : fmt               ? "not a string"
                                     : "missing",
                 json_is_string(fmt) ? "\"" : "");
        return -EINVAL;
    }
    return 0;
}

void ag_sidecar_close(ag_sidecar_t *sc)
{
    json_decref(sc->root);
    sc->root = NULL;
}

static const json_t *s_member(ag_sidecar_t *sc, const json_t *obj, const char *key)
{
    if (sc->err[0] || !sc->root)
        return NULL;
    return json_object_get(obj ? obj : sc->root, key);
}

int ag_sidecar_u64_of(ag_sidecar_t *sc, const json_t *v, const char *name, uint64_t max,
                      uint64_t *out)
{
    if (sc->err[0] || !sc->root)
        return -EINVAL;
    char expected[80];
    snprintf(expected, sizeof expected, "an unsigned integer up to %" PRIu64, max);
    uint64_t x;
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        x = (uint64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        x = strtoull(s, &end, 10);
        if (errno || end == s || *end || *s < '0' || *s > '9')
            return ag_sidecar_bad(sc, name, expected);
    } else {
        return ag_sidecar_bad(sc, name, expected);
    }
    if (x > max)
        return ag_sidecar_bad(sc, name, expected);
    *out = x;
    return 0;
}

int ag_sidecar_u64(ag_sidecar_t *sc, const json_t *obj, const char *key, uint64_t max,
                   uint64_t *out)
{
    return ag_sidecar_u64_of(sc, s_member(sc, obj, key), key, max, out);
}

int ag_sidecar_number(ag_sidecar_t *sc, const json_t *obj, const char *key, double lo, double hi,
                      double *out)
{
    if (sc->err[0])
        return -EINVAL;
    const json_t *v = s_member(sc, obj, key);
    const double x = json_is_number(v) ? json_number_value(v) : NAN;
    if (!(x >= lo && x <= hi)) {
        char expected[96];
        snprintf(expected, sizeof expected, "a number in [%g, %g]", lo, hi);
        return ag_sidecar_bad(sc, key, expected);
    }
    *out = x;
    return 0;
}

const json_t *ag_sidecar_object(ag_sidecar_t *sc, const json_t *obj, const char *key)
{
    const json_t *v = s_member(sc, obj, key);
    if (sc->err[0])
        return NULL;
    if (!json_is_object(v)) {
        ag_sidecar_bad(sc, key, "an object");
        return NULL;
    }
    return v;
}

const json_t *ag_sidecar_array(ag_sidecar_t *sc, const json_t *obj, const char *key)
{
    const json_t *v = s_member(sc, obj, key);
    if (sc->err[0])
        return NULL;
    if (!json_is_array(v)) {
        ag_sidecar_bad(sc, key, "an array");
        return NULL;
    }
    return v;
}
