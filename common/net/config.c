/*
 * config.c - option tables, INI run files through inih, command-line
 * overrides, and the conversion of text to typed fields. Values are kept as
 * text until ag_config_apply (or a getter) converts them, so a run file can
 * carry any key of any binary; one converter per kind serves the values, the
 * defaults and the getters alike, and one description of a row's range
 * serves --help and the Markdown table.
 */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define MAX_POSITIONAL 16
/* A run file is read whole before it is parsed, so its text can be handed on. */
#define MAX_RUN_FILE (1 << 20)

/* Where a value came from (ag_config_is_set, ag_config_run_text). */
enum { FROM_DEFAULT = 0, FROM_FILE, FROM_ARGS };

static const ag_opt_choice_t s_log_levels[] = {
    {"debug", AG_LOG_DEBUG}, {"info", AG_LOG_INFO}, {"warn", AG_LOG_WARN}, {"error", AG_LOG_ERROR},
    {NULL, 0}};
/* Every binary's last row; parse_args applies it (it has no field of the binary's). */
static const ag_option_t s_log_level = {"log.level", "log-level", "info",
                                        "log threshold", AG_OPT_ENUM, 0, 0, 0, s_log_levels};

struct ag_config {
    const char *prog;
    const char *usage;
    const char *summary;
    const ag_option_t *opts;
    size_t n_opts;
    char **values; /* n_opts + 1 (the last is log.level) */
    unsigned char *origin; /* FROM_*, per value */
    bool parsing_args;     /* ag_config_set is storing a command-line value */
    char *file_text;       /* the run files loaded, in order ("" none) */
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

/* ---- text -> typed values ---- */

static bool s_is_integer_kind(ag_opt_kind_t k)
{
    return k == AG_OPT_INT || k == AG_OPT_LONG || k == AG_OPT_U32 || k == AG_OPT_U64;
}

/* A row's values in words for --help and the Markdown table ("" = any text). */
static void s_describe_range(const ag_option_t *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    switch (o->kind) {
    case AG_OPT_BOOL:
        snprintf(buf, cap, "true or false");
        break;
    case AG_OPT_ENUM: {
        size_t n = 0;
        for (const ag_opt_choice_t *c = o->choices; c && c->name && n + 1 < cap; c++)
            n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", c->name);
        break;
    }
    case AG_OPT_STR:
        if (o->max > 0)
            snprintf(buf, cap, "%s%.0f characters at most", o->min >= 1 ? "not empty, " : "",
                     o->max);
        else if (o->min >= 1)
            snprintf(buf, cap, "not empty");
        break;
    case AG_OPT_INT:
    case AG_OPT_LONG:
    case AG_OPT_U32:
    case AG_OPT_U64:
    case AG_OPT_FLOAT:
    case AG_OPT_DOUBLE:
        if (o->min == 0 && o->max == 0)
            snprintf(buf, cap, "%s",
                     o->kind == AG_OPT_U64 || o->kind == AG_OPT_U32 ? "a non-negative integer"
                     : s_is_integer_kind(o->kind) ? "an integer"
                                                  : "a number");
        else if (s_is_integer_kind(o->kind))
            snprintf(buf, cap, "%.0f .. %.0f", o->min, o->max);
        else
            snprintf(buf, cap, "%g .. %g", o->min, o->max);
        break;
    case AG_OPT_TEXT:
        break;
    }
}

static bool s_in_range(const ag_option_t *o, double x)
{
    return (o->min == 0 && o->max == 0) || (x >= o->min && x <= o->max);
}

static int s_parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (!strcmp(v, yes[i])) {
            *out = true;
            return 0;
        }
        if (!strcmp(v, no[i])) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

/*
 * Converts text v for row o and stores it at dst + o->offset (dst may be NULL
 * to only check). Returns 0, or -1 after printing "PROG: KEY: expected ...,
 * got 'v'" to stderr.
 */
static int s_convert(const char *prog, const ag_option_t *o, const char *v, void *dst)
{
    char *field = dst ? (char *)dst + o->offset : NULL;
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case AG_OPT_TEXT:
        return 0;
    case AG_OPT_STR: {
        size_t len = strlen(v);
        if ((o->min >= 1 && len == 0) || (o->max > 0 && (double)len > o->max))
            break;
        if (field)
            memcpy(field, &v, sizeof v);
        return 0;
    }
    case AG_OPT_BOOL: {
        bool b;
        if (s_parse_bool(v, &b) < 0)
            break;
        if (field)
            memcpy(field, &b, sizeof b);
        return 0;
    }
    case AG_OPT_ENUM:
        for (const ag_opt_choice_t *c = o->choices; c && c->name; c++)
            if (!strcmp(v, c->name)) {
                if (field)
                    memcpy(field, &c->value, sizeof c->value);
                return 0;
            }
        break;
    case AG_OPT_INT:
    case AG_OPT_LONG:
    case AG_OPT_U32: {
        long long x = strtoll(v, &end, 0);
        if (errno || end == v || *end || !s_in_range(o, (double)x))
            break;
        if (o->kind == AG_OPT_INT && (x < INT32_MIN || x > INT32_MAX))
            break;
        if (o->kind == AG_OPT_U32 && (x < 0 || x > UINT32_MAX))
            break;
        if (field && o->kind == AG_OPT_INT) {
            int i = (int)x;
            memcpy(field, &i, sizeof i);
        } else if (field && o->kind == AG_OPT_U32) {
            uint32_t u = (uint32_t)x;
            memcpy(field, &u, sizeof u);
        } else if (field) {
            long l = (long)x;
            memcpy(field, &l, sizeof l);
        }
        return 0;
    }
    case AG_OPT_U64: {
        const char *p = v;
        while (*p == ' ' || *p == '\t')
            p++;
        uint64_t x = strtoull(v, &end, 0);
        if (*p == '-' || errno || end == v || *end || !s_in_range(o, (double)x))
            break;
        if (field)
            memcpy(field, &x, sizeof x);
        return 0;
    }
    case AG_OPT_FLOAT:
    case AG_OPT_DOUBLE: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || !s_in_range(o, x))
            break;
        if (field && o->kind == AG_OPT_FLOAT) {
            float f = (float)x;
            memcpy(field, &f, sizeof f);
        } else if (field) {
            memcpy(field, &x, sizeof x);
        }
        return 0;
    }
    }
    char range[256];
    s_describe_range(o, range, sizeof range);
    const bool ranged = !(o->min == 0 && o->max == 0);
    const char *what = o->kind == AG_OPT_ENUM ? "one of "
                       : o->kind == AG_OPT_STR ? "a text: "
                       : s_is_integer_kind(o->kind) ? (ranged ? "an integer in " : "")
                       : o->kind == AG_OPT_BOOL ? ""
                                                : (ranged ? "a number in " : "");
    fprintf(stderr, "%s: %s: expected %s%s, got '%s'\n", prog, o->key, what, range, v);
    return -1;
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
    c->origin = calloc(n_opts + 1, sizeof *c->origin);
    c->file_text = strdup("");
    if (!c->values || !c->origin || !c->file_text)
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
    free(c->origin);
    free(c->file_text);
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
    self->origin[i] = self->parsing_args ? FROM_ARGS : FROM_FILE;
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

/* Parses INI text; name is the file (or source) its errors are reported against. */
static int s_load_text(ag_config_t *self, const char *text, const char *name)
{
    load_ctx_t ctx = {self, name, 0};
    const int rc = ini_parse_string(text, s_ini_handler, &ctx);
    if (rc == -2) {
        fprintf(stderr, "%s: out of memory reading '%s'\n", self->prog, name);
        return -1;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: %s:%d: syntax error\n", self->prog, name, rc);
        return -1;
    }
    return ctx.error ? -1 : 0;
}

int ag_config_load_string(ag_config_t *self, const char *text, const char *name)
{
    return s_load_text(self, text, name);
}

int ag_config_load_file(ag_config_t *self, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: cannot open run file '%s': %s\n", self->prog, path,
                strerror(errno));
        return -1;
    }
    char *text = malloc(MAX_RUN_FILE + 1);
    size_t n = text ? fread(text, 1, MAX_RUN_FILE + 1, f) : 0;
    const bool bad = ferror(f) != 0;
    fclose(f);
    if (!text || bad || n > MAX_RUN_FILE || memchr(text, '\0', n)) {
        fprintf(stderr, "%s: run file '%s': %s\n", self->prog, path,
                !text ? "out of memory"
                : bad ? "read error"
                : n > MAX_RUN_FILE ? "larger than 1 MiB"
                                   : "contains a NUL byte");
        free(text);
        return -1;
    }
    text[n] = '\0';
    int rc = s_load_text(self, text, path);
    size_t have = strlen(self->file_text);
    char *all = rc == 0 ? realloc(self->file_text, have + n + 2) : NULL;
    if (rc == 0 && !all) {
        fprintf(stderr, "%s: out of memory reading '%s'\n", self->prog, path);
        rc = -1;
    }
    if (all) {
        memcpy(all + have, text, n);
        /* the next file must not continue this one's last line */
        if (n && text[n - 1] != '\n')
            all[have + n++] = '\n';
        all[have + n] = '\0';
        self->file_text = all;
    }
    free(text);
    return rc;
}

bool ag_config_is_set(const ag_config_t *self, const char *key)
{
    long i = s_find(self, key);
    return i >= 0 && self->origin[i] != FROM_DEFAULT;
}

char *ag_config_run_text(const ag_config_t *self)
{
    size_t cap = strlen(self->file_text) + 64;
    for (size_t i = 0; i < s_count(self); i++)
        if (self->origin[i] == FROM_ARGS)
            cap += strlen(s_opt(self, i)->key) + strlen(self->values[i]) + 8;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    size_t n = (size_t)snprintf(out, cap, "%s", self->file_text);
    bool header = false;
    for (size_t i = 0; i < s_count(self); i++) {
        const char *k = s_opt(self, i)->key, *v = self->values[i];
        const char *dot = strchr(k, '.');
        /* A value INI cannot carry on one line is left out rather than cut. */
        if (self->origin[i] != FROM_ARGS || !dot || strpbrk(v, "\r\n"))
            continue;
        if (!header)
            n += (size_t)snprintf(out + n, cap - n, "; command-line overrides\n");
        header = true;
        n += (size_t)snprintf(out + n, cap - n, "[%.*s]\n%s = %s\n", (int)(dot - k), k, dot + 1,
                              v);
    }
    return out;
}

static void s_help(const ag_config_t *c)
{
    printf("usage: %s %s\n\n%s\n\noptions (--KEY VALUE or --KEY=VALUE, a flag alone is true; KEY "
           "is section.key or the short name):\n",
           c->prog, c->usage, c->summary);
    printf("  %-34s %s\n", "--config FILE", "read a run file (INI) before the overrides");
    printf("  %-34s %s\n", "--help", "print this and exit");
    printf("  %-34s %s\n", "--help-markdown", "print the options as a Markdown table and exit");
    for (size_t i = 0; i < s_count(c); i++) {
        const ag_option_t *o = s_opt(c, i);
        char names[128], range[256];
        if (o->alias)
            snprintf(names, sizeof names, "--%s, --%s", o->alias, o->key);
        else
            snprintf(names, sizeof names, "--%s", o->key);
        s_describe_range(o, range, sizeof range);
        printf("  %-34s %s", names, o->help);
        if ((o->def && *o->def) || *range)
            printf(" [%s%s%s%s]", o->def && *o->def ? "default " : "", o->def ? o->def : "",
                   o->def && *o->def && *range ? "; " : "", range);
        printf("\n");
    }
}

/* Text for one Markdown table cell: '|' escaped, newlines folded. */
static void s_md_cell(FILE *f, const char *text)
{
    for (const char *p = text; p && *p; p++) {
        if (*p == '|')
            fputs("\\|", f);
        else
            fputc(*p == '\n' ? ' ' : *p, f);
    }
}

void ag_config_print_markdown(const ag_config_t *self, void *file)
{
    FILE *f = file;
    fprintf(f, "| option | command line | default | values | meaning |\n"
               "|---|---|---|---|---|\n");
    for (size_t i = 0; i < s_count(self); i++) {
        const ag_option_t *o = s_opt(self, i);
        char range[256];
        s_describe_range(o, range, sizeof range);
        fprintf(f, "| `%s` | ", o->key);
        if (o->alias)
            fprintf(f, "`--%s`", o->alias);
        fputs(" | ", f);
        if (o->def && *o->def) {
            fputc('`', f);
            s_md_cell(f, o->def);
            fputc('`', f);
        }
        fputs(" | ", f);
        s_md_cell(f, range);
        fputs(" | ", f);
        s_md_cell(f, o->help);
        fputs(" |\n", f);
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
        if (!strcmp(argv[i], "--help-markdown")) {
            ag_config_print_markdown(self, stdout);
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
    self->parsing_args = true;
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
                self->parsing_args = false;
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
            const long row = s_find(self, key);
            if (row >= 0 && s_opt(self, (size_t)row)->kind == AG_OPT_BOOL &&
                (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
                value = "true"; /* a flag given alone: --train means --train true */
            } else if (i + 1 >= argc) {
                fprintf(stderr, "%s: option --%s needs a value\n", self->prog, key);
                self->parsing_args = false;
                return -1;
            } else {
                value = argv[++i];
            }
        }
        if (ag_config_set(self, key, value) < 0) {
            fprintf(stderr, "%s: unknown option --%s (see --help)\n", self->prog, key);
            self->parsing_args = false;
            return -1;
        }
    }
    self->parsing_args = false;
    int level;
    if (s_convert(self->prog, &s_log_level, ag_config_str(self, "log.level"), &level) < 0)
        return -1;
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

/* The getters convert through a row made for the call, so their checks and
 * messages are those of the table's rows. */
int ag_config_long(const ag_config_t *self, const char *key, long min, long max, long *out)
{
    const char *v = s_checked(self, key);
    ag_option_t row = {.key = key, .kind = AG_OPT_LONG, .min = (double)min, .max = (double)max};
    return v ? s_convert(self->prog, &row, v, out) : -1;
}

int ag_config_double(const ag_config_t *self, const char *key, double min, double max,
                     double *out)
{
    const char *v = s_checked(self, key);
    ag_option_t row = {.key = key, .kind = AG_OPT_DOUBLE, .min = min, .max = max};
    return v ? s_convert(self->prog, &row, v, out) : -1;
}

int ag_config_bool(const ag_config_t *self, const char *key, bool *out)
{
    const char *v = s_checked(self, key);
    ag_option_t row = {.key = key, .kind = AG_OPT_BOOL};
    return v ? s_convert(self->prog, &row, v, out) : -1;
}

int ag_config_apply(const ag_config_t *self, void *dst)
{
    int rc = 0;
    for (size_t i = 0; i < self->n_opts; i++)
        if (s_convert(self->prog, &self->opts[i], self->values[i], dst) < 0)
            rc = -1;
    return rc;
}

int ag_option_defaults(const ag_option_t *opts, size_t n_opts, void *dst)
{
    int rc = 0;
    for (size_t i = 0; i < n_opts; i++)
        if (s_convert("defaults", &opts[i], opts[i].def ? opts[i].def : "", dst) < 0)
            rc = -1;
    return rc;
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
