/*
 * text.h - the text builder games write their observations, bot actions and
 * info values with (game.h's vtable hands one to observe and bot_act).
 *
 * Observations are built on every step, so appends are a few inline memcpys
 * instead of snprintf. A builder either writes into a fixed caller buffer or
 * grows on the heap (starting from an optional caller buffer, so the common
 * short text allocates nothing) up to a limit `max` set by its owner. A text
 * is never cut: an append that would pass the limit (or find no memory)
 * leaves the text as it was, records the failure in `err` (-E2BIG, or
 * -ENOMEM) and makes every later append a no-op, so a game appends freely
 * and its caller checks `err` once when the text is done.
 */
#ifndef AG_TEXT_H
#define AG_TEXT_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "task.h"

typedef struct ag_text {
    char *buf;  /* the text, NUL-terminated */
    size_t len; /* bytes of text, NUL not included */
    size_t cap; /* bytes of buf, NUL included; >= 1 */
    size_t max; /* the longest the text may become (NUL not included) */
    char *heap; /* buf when the builder allocated it (ag_text_free), else NULL */
    int err;    /* 0, or the first failure: -E2BIG (past max) or -ENOMEM */
} ag_text_t;

/* A builder over the fixed buffer buf[cap] (cap >= 1): texts up to cap - 1 bytes. */
static inline ag_text_t ag_text_init(char *buf, size_t cap)
{
    ag_text_t t = {buf, 0, cap, cap - 1, NULL, 0};
    buf[0] = '\0';
    return t;
}

/*
 * A builder that starts in first[first_cap] (first_cap >= 1) and moves to
 * the heap when a text outgrows it, up to max bytes. Free it with
 * ag_text_free.
 */
void ag_text_init_growing(ag_text_t *t, char *first, size_t first_cap, size_t max);

/* Empties the text and forgets a failure, keeping the storage. */
static inline void ag_text_clear(ag_text_t *t)
{
    t->len = 0;
    t->err = 0;
    t->buf[0] = '\0';
}

/* Frees what the builder allocated; initialise it again before another use. */
void ag_text_free(ag_text_t *t);

/*
 * Makes room for a text of need bytes; 0, or sets and returns t->err
 * (-E2BIG when need > max, -ENOMEM). Appends call it when buf is full.
 */
int ag_text_reserve(ag_text_t *t, size_t need);

static inline void ag_text_mem(ag_text_t *t, const char *s, size_t n)
{
    if (t->err != 0)
        return;
    if (n > t->max - t->len) {
        t->err = -E2BIG;
        return;
    }
    if (t->len + n + 1 > t->cap && ag_text_reserve(t, t->len + n) < 0)
        return;
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static inline void ag_text_str(ag_text_t *t, const char *s)
{
    ag_text_mem(t, s, strlen(s));
}

static inline void ag_text_int(ag_text_t *t, long long v)
{
    char tmp[24];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0)
        tmp[sizeof tmp - 1 - n++] = '-';
    ag_text_mem(t, tmp + sizeof tmp - n, (size_t)n);
}

/* n digits as chain text ("0 0 6 5"), n <= AG_TASK_MAX_K. */
static inline void ag_text_chain(ag_text_t *t, const uint8_t *digits, int n)
{
    char tmp[AG_CHAIN_TEXT_CAP];
    int len = ag_chain_render(digits, n, tmp, sizeof tmp);
    if (len < 0) {
        if (t->err == 0)
            t->err = -E2BIG;
        return;
    }
    ag_text_mem(t, tmp, (size_t)len);
}

/* printf-style append (at most 255 bytes a call) for texts off the hot path, such as a score. */
void ag_text_printf(ag_text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
