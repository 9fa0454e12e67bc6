/*
 * jsonw.h - a minimal writer of one-line JSON objects (agora-eval's result,
 * agora-actor's metrics records): keys and strings escaped, non-finite
 * numbers written as null, one level of nested objects.
 */
#ifndef AG_JSONW_H
#define AG_JSONW_H

#include <stdbool.h>
#include <stdio.h>

typedef struct ag_jsonw {
    FILE *f;
    bool first;
} ag_jsonw_t;

void ag_jsonw_begin(ag_jsonw_t *j, FILE *f);
void ag_jsonw_str(ag_jsonw_t *j, const char *key, const char *value);
void ag_jsonw_num(ag_jsonw_t *j, const char *key, double value);
void ag_jsonw_int(ag_jsonw_t *j, const char *key, long long value);
void ag_jsonw_object(ag_jsonw_t *j, const char *key);
void ag_jsonw_end_object(ag_jsonw_t *j);
/* Closes the object and ends the line. */
void ag_jsonw_end(ag_jsonw_t *j);

#endif
