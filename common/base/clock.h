/*
 * clock.h - the one monotonic clock of every agora process and tool: seconds
 * since an arbitrary start, for durations, rates and deadlines (never for
 * dates). CLOCK_MONOTONIC, the clock libuv's uv_hrtime reads too.
 */
#ifndef AG_CLOCK_H
#define AG_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t ag_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t ag_now_ms(void)
{
    return ag_now_ns() / 1000000;
}

static inline double ag_now(void)
{
    return (double)ag_now_ns() * 1e-9;
}

#endif
