/*
 * backoff.h - the one exponential backoff of agora: how long to wait before
 * the next attempt at something that failed or was refused (a restart of a
 * crashed child, a request answered ERROR_OVERLOADED, a peer that does not
 * answer). The pause doubles from first_ms with every attempt up to max_ms;
 * with an rng it is drawn uniformly from its upper half ("equal jitter"), so
 * many clients refused at once do not all come back at once.
 */
#ifndef AG_BACKOFF_H
#define AG_BACKOFF_H

#include <stdint.h>

#include "rng.h"

typedef struct ag_backoff {
    uint64_t first_ms; /* the pause before the first retry */
    uint64_t max_ms;   /* the longest pause */
    unsigned attempts; /* retries so far (since the last success) */
} ag_backoff_t;

static inline ag_backoff_t ag_backoff_make(uint64_t first_ms, uint64_t max_ms)
{
    ag_backoff_t b = {first_ms, max_ms >= first_ms ? max_ms : first_ms, 0};
    return b;
}

/* The pause before retry number `attempt` (0 = the first): first_ms * 2^attempt, at most max_ms. */
static inline uint64_t ag_backoff_pause_ms(const ag_backoff_t *b, unsigned attempt)
{
    uint64_t d = b->first_ms;
    for (unsigned i = 0; i < attempt && d < b->max_ms; i++)
        d *= 2;
    return d < b->max_ms ? d : b->max_ms;
}

/* The pause before the next retry, counting it; rng may be NULL (no jitter). */
static inline uint64_t ag_backoff_next_ms(ag_backoff_t *b, ag_rng_t *rng)
{
    uint64_t d = ag_backoff_pause_ms(b, b->attempts);
    b->attempts++;
    if (rng && d > 1)
        d = d - d / 2 + ag_rng_u64(rng) % (d / 2 + 1);
    return d;
}

/* After a success: the next failure starts again from first_ms. */
static inline void ag_backoff_reset(ag_backoff_t *b)
{
    b->attempts = 0;
}

#endif
