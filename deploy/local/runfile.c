/*
 * runfile.c - the in-memory run file of the launcher (see runfile.h), parsed
 * by inih like every other agora run file, so the launcher and the services
 * agree on the syntax (comments, continuation lines, quoting).
 */
#include "runfile.h"

#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    char *section;
    char *key;
    char *value;
} entry_t;

struct ag_runfile {
    entry_t *entries;
    size_t n;
    size_t cap;
};

ag_runfile_t *ag_runfile_create(void)
{
    return calloc(1, sizeof(ag_runfile_t));
}

void ag_runfile_destroy(ag_runfile_t **self)
{
    if (!self || !*self)
        return;
    ag_runfile_t *rf = *self;
    for (size_t i = 0; i < rf->n; i++) {
        free(rf->entries[i].section);
        free(rf->entries[i].key);
        free(rf->entries[i].value);
    }
    free(rf->entries);
    free(rf);
    *self = NULL;
}

static entry_t *s_find(const ag_runfile_t *rf, const char *section, size_t section_len,
                       const char *key)
{
    for (size_t i = 0; i < rf->n; i++) {
        entry_t *e = &rf->entries[i];
        if (strlen(e->section) == section_len && !strncmp(e->section, section, section_len) &&
            !strcmp(e->key, key))
            return e;
    }
    return NULL;
}

/* A new key goes after the last key of its section, so sections stay contiguous. */
static int s_put(ag_runfile_t *rf, const char *section, size_t section_len, const char *key,
                 const char *value)
{
    entry_t *e = s_find(rf, section, section_len, key);
    if (e) {
        char *v = strdup(value);
        if (!v)
            return -1;
        free(e->value);
        e->value = v;
        return 0;
    }
    if (rf->n == rf->cap) {
        size_t cap = rf->cap ? rf->cap * 2 : 32;
        entry_t *grown = realloc(rf->entries, cap * sizeof *grown);
        if (!grown)
            return -1;
        rf->entries = grown;
        rf->cap = cap;
    }
    entry_t ne = {strndup(section, section_len), strdup(key), strdup(value)};
    if (!ne.section || !ne.key || !ne.value) {
        free(ne.section);
        free(ne.key);
        free(ne.value);
        return -1;
    }
    size_t at = rf->n;
    for (size_t i = rf->n; i-- > 0;) {
        if (!strcmp(rf->entries[i].section, ne.section)) {
            at = i + 1;
            break;
        }
    }
    memmove(&rf->entries[at + 1], &rf->entries[at], (rf->n - at) * sizeof *rf->entries);
    rf->entries[at] = ne;
    rf->n++;
    return 0;
}

typedef struct {
    ag_runfile_t *rf;
    int error;
} load_ctx_t;

static int s_handler(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *ctx = user;
    if (!*section || strchr(section, '.') || !*name) {
        ctx->error = EINVAL;
        return 0;
    }
    if (s_put(ctx->rf, section, strlen(section), name, value ? value : "") < 0) {
        ctx->error = ENOMEM;
        return 0;
    }
    return 1;
}

static int s_report(int rc, const load_ctx_t *ctx, const char *origin)
{
    if (rc == -1) {
        fprintf(stderr, "agora: cannot open run file '%s': %s\n", origin, strerror(errno));
        return -1;
    }
    if (rc == -2 || ctx->error == ENOMEM) {
        fprintf(stderr, "agora: out of memory reading '%s'\n", origin);
        return -1;
    }
    if (ctx->error == EINVAL) {
        fprintf(stderr, "agora: %s:%d: every key must be inside a [section] named without dots\n",
                origin, rc);
        return -1;
    }
    if (rc > 0) {
        fprintf(stderr, "agora: %s:%d: syntax error\n", origin, rc);
        return -1;
    }
    return 0;
}

int ag_runfile_load(ag_runfile_t *self, const char *path)
{
    load_ctx_t ctx = {self, 0};
    return s_report(ini_parse(path, s_handler, &ctx), &ctx, path);
}

int ag_runfile_load_string(ag_runfile_t *self, const char *text, const char *origin)
{
    load_ctx_t ctx = {self, 0};
    return s_report(ini_parse_string(text, s_handler, &ctx), &ctx, origin);
}

const char *ag_runfile_get(const ag_runfile_t *self, const char *key)
{
    const char *dot = strchr(key, '.');
    if (!dot)
        return NULL;
    entry_t *e = s_find(self, key, (size_t)(dot - key), dot + 1);
    return e ? e->value : NULL;
}

int ag_runfile_split(const char *value, char *items, size_t cap, size_t max)
{
    if (!*value)
        return 0;
    size_t n = 0;
    for (const char *p = value;; p++) {
        size_t len = strcspn(p, ",");
        const char *b = p, *e = p + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e == b || (size_t)(e - b) >= cap)
            return -EINVAL;
        if (n == max)
            return -E2BIG;
        memcpy(items + n * cap, b, (size_t)(e - b));
        items[n * cap + (size_t)(e - b)] = '\0';
        n++;
        p += len;
        if (!*p)
            return (int)n;
    }
}

int ag_runfile_set(ag_runfile_t *self, const char *key, const char *value)
{
    const char *dot = strchr(key, '.');
    if (!dot || dot == key || !dot[1] || strchr(dot + 1, '.'))
        return -1;
    return s_put(self, key, (size_t)(dot - key), dot + 1, value);
}

size_t ag_runfile_count(const ag_runfile_t *self)
{
    return self->n;
}

void ag_runfile_entry(const ag_runfile_t *self, size_t i, const char **section, const char **key,
                      const char **value)
{
    *section = self->entries[i].section;
    *key = self->entries[i].key;
    *value = self->entries[i].value;
}

int ag_runfile_write(const ag_runfile_t *self, FILE *f, const char *header)
{
    for (const char *p = header; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "# %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
    const char *section = NULL;
    for (size_t i = 0; i < self->n; i++) {
        const entry_t *e = &self->entries[i];
        if (!section || strcmp(section, e->section)) {
            fprintf(f, "%s[%s]\n", section || header ? "\n" : "", e->section);
            section = e->section;
        }
        fprintf(f, "%s = %s\n", e->key, e->value);
    }
    return ferror(f) ? -1 : 0;
}
