/*
 * config.c - option table, INI run files through inih, command-line
 * overrides, typed getters. Values are kept as text until a getter asks for a
 * type, so a run file can carry any key of any binary.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_POSITIONAL 16

static const ag_option_t s_log_level = {"log.level", "log-level", "info",
                                        "log threshold: debug, info, warn, error"};

struct ag_config {
    const char *prog;
    const char *usage;
    const char *summary;
    const ag_option_t *opts;
    size_t n_opts;
    char **values; /* n_opts + 1 (the last is log.level) */
    size_t max_positional;
    size_t n_positional;
    const char *positional[MAX_POSITIONAL];
};

static const ag_option_t *s_opt(const ag_config_t *c, size_t i)
{
    return i < c->n_opts ? &c->opts[i] : &s_log_level;
}

static size_t s_count(const ag_config_t *c)
{
    return c->n_opts + 1;
}

static long s_find(const ag_config_t *c, const char *key)
{
    for (size_t i = 0; i < s_count(c); i++) {
        const ag_option_t *o = s_opt(c, i);
        if (!strcmp(o->key, key) || (o->alias && !strcmp(o->alias, key)))
            return (long)i;
    }
    return -1;
}

/* Does any declared key live in this section? */
static bool s_owns_section(const ag_config_t *c, const char *section)
{
    size_t n = strlen(section);
    for (size_t i = 0; i < s_count(c); i++) {
        const char *k = s_opt(c, i)->key;
        if (!strncmp(k, section, n) && k[n] == '.')
            return true;
    }
    return false;
}

ag_config_t *ag_config_create(const char *prog, const char *usage, const char *summary,
                              const ag_option_t *opts, size_t n_opts, size_t max_positional)
{
    ag_config_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->prog = prog;
    c->usage = usage;
    c->summary = summary;
    c->opts = opts;
    c->n_opts = n_opts;
    c->max_positional = max_positional < MAX_POSITIONAL ? max_positional : MAX_POSITIONAL;
    c->values = calloc(n_opts + 1, sizeof *c->values);
    if (!c->values)
        goto fail;
    for (size_t i = 0; i < s_count(c); i++) {
        c->values[i] = strdup(s_opt(c, i)->def ? s_opt(c, i)->def : "");
        if (!c->values[i])
            goto fail;
    }
    return c;
fail:
    ag_config_destroy(&c);
    return NULL;
}

void ag_config_destroy(ag_config_t **self)
{
    if (!self || !*self)
        return;
    ag_config_t *c = *self;
    if (c->values)
        for (size_t i = 0; i < s_count(c); i++)
            free(c->values[i]);
    free(c->values);
    free(c);
    *self = NULL;
}

int ag_config_set(ag_config_t *self, const char *key, const char *value)
{
    long i = s_find(self, key);
    if (i < 0)
        return -1;
    char *v = strdup(value);
    if (!v)
        return -1;
    free(self->values[i]);
    self->values[i] = v;
    return 0;
}

typedef struct {
    ag_config_t *config;
    const char *path;
    int error;
} load_ctx_t;

static int s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    load_ctx_t *ctx = user;
    if (!s_owns_section(ctx->config, section))
        return 1;
    char key[256];
    snprintf(key, sizeof key, "%s.%s", section, name);
    long i = s_find(ctx->config, key);
    if (i < 0 || strcmp(s_opt(ctx->config, (size_t)i)->key, key)) {
        fprintf(stderr, "%s: %s: unknown key '%s' in section [%s]\n", ctx->config->prog,
                ctx->path, name, section);
        ctx->error = 1;
        return 1;
    }
    if (ag_config_set(ctx->config, key, value) < 0)
        ctx->error = 1;
    return 1;
}

int ag_config_load_file(ag_config_t *self, const char *path)
{
    load_ctx_t ctx = {self, path, 0};
    int rc = ini_parse(path, s_ini_handler, &ctx);
    if (rc == -1) {
        fprintf(stderr, "%s: cannot open run file '%s': %s\n", self->prog, path,
                strerror(errno));
        return -1;
    }
    if (rc == -2) {
        fprintf(stderr, "%s: out of memory reading '%s'\n", self->prog, path);
        return -1;
    }
    if (rc > 0) {
        fprintf(stderr, "%s: %s:%d: syntax error\n", self->prog, path, rc);
        return -1;
    }
    return ctx.error ? -1 : 0;
}

static void s_help(const ag_config_t *c)
{
    printf("usage: %s %s\n\n%s\n\noptions (--KEY VALUE or --KEY=VALUE; KEY is section.key or "
           "the short name):\n",
           c->prog, c->usage, c->summary);
    printf("  %-34s %s\n", "--config FILE", "read a run file (INI) before the overrides");
    printf("  %-34s %s\n", "--help", "print this and exit");
    for (size_t i = 0; i < s_count(c); i++) {
        const ag_option_t *o = s_opt(c, i);
        char names[128];
        if (o->alias)
            snprintf(names, sizeof names, "--%s, --%s", o->alias, o->key);
        else
            snprintf(names, sizeof names, "--%s", o->key);
        printf("  %-34s %s", names, o->help);
        if (o->def && *o->def)
            printf(" [%s]", o->def);
        printf("\n");
    }
}

int ag_config_parse_args(ag_config_t *self, int argc, char **argv)
{
    /* The run file goes first so that every override beats it, wherever it stands. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            s_help(self);
            return 1;
        }
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (path && ag_config_load_file(self, path) < 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (strncmp(a, "--", 2) || a[2] == '\0') {
            if (self->n_positional >= self->max_positional) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", self->prog, a);
                return -1;
            }
            self->positional[self->n_positional++] = a;
            continue;
        }
        char key[256];
        const char *value;
        const char *eq = strchr(a + 2, '=');
        if (eq) {
            snprintf(key, sizeof key, "%.*s", (int)(eq - (a + 2)), a + 2);
            value = eq + 1;
        } else {
            snprintf(key, sizeof key, "%s", a + 2);
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: option --%s needs a value\n", self->prog, key);
                return -1;
            }
            value = argv[++i];
        }
        if (ag_config_set(self, key, value) < 0) {
            fprintf(stderr, "%s: unknown option --%s (see --help)\n", self->prog, key);
            return -1;
        }
    }
    int level = ag_log_level_parse(ag_config_str(self, "log.level"));
    if (level < 0) {
        fprintf(stderr, "%s: log.level: expected debug, info, warn or error\n", self->prog);
        return -1;
    }
    ag_log_set_level((ag_log_level_t)level);
    return 0;
}

const char *ag_config_str(const ag_config_t *self, const char *key)
{
    long i = s_find(self, key);
    return i < 0 ? NULL : self->values[i];
}

static const char *s_checked(const ag_config_t *self, const char *key)
{
    const char *v = ag_config_str(self, key);
    if (!v)
        fprintf(stderr, "%s: internal: undeclared key '%s'\n", self->prog, key);
    return v;
}

int ag_config_long(const ag_config_t *self, const char *key, long min, long max, long *out)
{
    const char *v = s_checked(self, key);
    if (!v)
        return -1;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 0);
    if (errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "%s: %s: expected an integer in [%ld, %ld], got '%s'\n", self->prog,
                key, min, max, v);
        return -1;
    }
    *out = x;
    return 0;
}

int ag_config_double(const ag_config_t *self, const char *key, double min, double max,
                     double *out)
{
    const char *v = s_checked(self, key);
    if (!v)
        return -1;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < min || x > max) {
        fprintf(stderr, "%s: %s: expected a number in [%g, %g], got '%s'\n", self->prog, key,
                min, max, v);
        return -1;
    }
    *out = x;
    return 0;
}

int ag_config_bool(const ag_config_t *self, const char *key, bool *out)
{
    const char *v = s_checked(self, key);
    if (!v)
        return -1;
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on")) {
        *out = true;
        return 0;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off")) {
        *out = false;
        return 0;
    }
    fprintf(stderr, "%s: %s: expected true or false, got '%s'\n", self->prog, key, v);
    return -1;
}

size_t ag_config_positional_count(const ag_config_t *self)
{
    return self->n_positional;
}

const char *ag_config_positional(const ag_config_t *self, size_t i)
{
    return i < self->n_positional ? self->positional[i] : NULL;
}

void ag_config_dump(const ag_config_t *self, void *file)
{
    FILE *f = file;
    const char *section = NULL;
    size_t section_len = 0;
    for (size_t i = 0; i < s_count(self); i++) {
        const char *k = s_opt(self, i)->key;
        const char *dot = strchr(k, '.');
        if (!dot)
            continue;
        size_t n = (size_t)(dot - k);
        if (!section || n != section_len || strncmp(section, k, n)) {
            fprintf(f, "%s[%.*s]\n", section ? "\n" : "", (int)n, k);
            section = k;
            section_len = n;
        }
        fprintf(f, "%s = %s\n", dot + 1, self->values[i]);
    }
}
