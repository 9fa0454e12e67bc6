/*
 * text.c - the slow paths of the text builder (text.h): growing onto the
 * heap, freeing, and formatted appends. Capacity doubles from 256 bytes, so
 * a text of n bytes costs O(log n) reallocations; the first buffer a builder
 * is given is never freed by it.
 */
#include "text.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void ag_text_init_growing(ag_text_t *t, char *first, size_t first_cap, size_t max)
{
    assert(first != NULL && first_cap >= 1);
    *t = (ag_text_t){first, 0, first_cap, max, NULL, 0};
    first[0] = '\0';
}

void ag_text_free(ag_text_t *t)
{
    free(t->heap);
    *t = (ag_text_t){0};
}

int ag_text_reserve(ag_text_t *t, size_t need)
{
    if (t->err != 0)
        return t->err;
    if (need > t->max) {
        t->err = -E2BIG;
        return t->err;
    }
    if (need + 1 <= t->cap)
        return 0;
    if (t->heap == NULL && t->max + 1 <= t->cap) {
        t->err = -E2BIG; /* a fixed buffer */
        return t->err;
    }
    size_t cap = t->cap < 256 ? 256 : t->cap;
    while (cap < need + 1)
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    if (cap > t->max + 1)
        cap = t->max + 1;
    char *p = realloc(t->heap, cap);
    if (p == NULL) {
        t->err = -ENOMEM;
        return t->err;
    }
    if (t->heap == NULL)
        memcpy(p, t->buf, t->len + 1);
    t->heap = t->buf = p;
    t->cap = cap;
    return 0;
}

void ag_text_printf(ag_text_t *t, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        if (t->err == 0)
            t->err = -E2BIG;
        return;
    }
    ag_text_mem(t, tmp, (size_t)n);
}
