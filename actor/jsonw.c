/*
 * jsonw.c - one-line JSON objects (see jsonw.h).
 */
#include "jsonw.h"

#include <math.h>

static void s_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void s_key(ag_jsonw_t *j, const char *key)
{
    if (!j->first)
        fputc(',', j->f);
    j->first = false;
    s_string(j->f, key);
    fputc(':', j->f);
}

void ag_jsonw_begin(ag_jsonw_t *j, FILE *f)
{
    j->f = f;
    j->first = true;
    fputc('{', f);
}

void ag_jsonw_str(ag_jsonw_t *j, const char *key, const char *value)
{
    s_key(j, key);
    s_string(j->f, value ? value : "");
}

void ag_jsonw_num(ag_jsonw_t *j, const char *key, double value)
{
    s_key(j, key);
    if (isfinite(value))
        fprintf(j->f, "%.6g", value);
    else
        fputs("null", j->f);
}

void ag_jsonw_int(ag_jsonw_t *j, const char *key, long long value)
{
    s_key(j, key);
    fprintf(j->f, "%lld", value);
}

void ag_jsonw_object(ag_jsonw_t *j, const char *key)
{
    s_key(j, key);
    fputc('{', j->f);
    j->first = true;
}

void ag_jsonw_end_object(ag_jsonw_t *j)
{
    fputc('}', j->f);
    j->first = false;
}

void ag_jsonw_end(ag_jsonw_t *j)
{
    fputs("}\n", j->f);
}
