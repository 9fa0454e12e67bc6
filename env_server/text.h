/*
 * text.h - a bounded text builder for observations, info values and error
 * messages of the game logic (private to env_server/).
 *
 * Observations are built on every step, so this is a few inline memcpys into
 * a caller-owned fixed buffer instead of snprintf. Capacities are sized for
 * the longest text a game can produce; should one still be too small the
 * text is cut (and stays NUL-terminated) rather than overrun.
 */
#ifndef AG_TEXT_H
#define AG_TEXT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "task.h"

typedef struct ag_text {
    char *buf;
    size_t cap; /* including the NUL; >= 1 */
    size_t len;
} ag_text_t;

static inline ag_text_t ag_text_init(char *buf, size_t cap)
{
    ag_text_t t = {buf, cap, 0};
    buf[0] = '\0';
    return t;
}

static inline void ag_text_mem(ag_text_t *t, const char *s, size_t n)
{
    size_t room = t->cap - 1 - t->len;
    if (n > room)
        n = room;
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

static inline void ag_text_chain(ag_text_t *t, const uint8_t *digits, int n)
{
    char tmp[AG_CHAIN_TEXT_CAP];
    int len = ag_chain_render(digits, n, tmp, sizeof tmp);
    if (len > 0)
        ag_text_mem(t, tmp, (size_t)len);
}

#endif
