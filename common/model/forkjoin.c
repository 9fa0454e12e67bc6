/*
 * forkjoin.c - the fork-join pool. A parallel region in the model is short
 * (tens of microseconds to a few milliseconds) and follows the previous one
 * almost immediately, so waiting threads spin briefly, then yield their core
 * for a while, before they fall asleep on a condition variable.
 *
 * Shares are claimed, not assigned: the ticket holds the region's generation
 * and the next unclaimed share, and whoever takes a share (the caller or any
 * worker) runs it. On a busy machine a worker may not get a core for
 * milliseconds; the caller then simply runs that worker's share itself
 * instead of waiting. Which thread runs a share never changes what the share
 * computes, so results stay reproducible.
 */
#include "forkjoin.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

/* Waiting: first a short busy spin (a region usually follows within
 * microseconds), then spinning on sched_yield() so that a waiting thread
 * gives its core to anyone else who needs it (a busy spinner on a shared
 * machine would push the thread doing the real work off its core), then
 * sleep. */
#define SPIN_ITERS 2000
#define YIELD_ITERS 200

struct ag_forkjoin {
    int n;
    pthread_t threads[AG_FORKJOIN_MAX];
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv_start;
    pthread_cond_t cv_done;
    int sleepers;      /* workers waiting on cv_start, under mu */
    int caller_asleep; /* the caller waits on cv_done, under mu */
    /* generation << 32 | next share to claim */
    _Atomic uint64_t ticket;
    atomic_int done;
    atomic_int stop;
    ag_forkjoin_fn fn;
    void *ctx;
};

static inline void s_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Claims and runs shares of generation gen until none is left. */
static void s_run_shares(ag_forkjoin_t *fj, uint32_t gen)
{
    uint64_t t = atomic_load(&fj->ticket);
    for (;;) {
        if ((uint32_t)(t >> 32) != gen || (uint32_t)t >= (uint32_t)fj->n)
            return;
        if (!atomic_compare_exchange_weak(&fj->ticket, &t, t + 1))
            continue;
        fj->fn(fj->ctx, (int)(uint32_t)t, fj->n);
        if (atomic_fetch_add(&fj->done, 1) == fj->n - 1) {
            pthread_mutex_lock(&fj->mu);
            if (fj->caller_asleep)
                pthread_cond_signal(&fj->cv_done);
            pthread_mutex_unlock(&fj->mu);
        }
        t = atomic_load(&fj->ticket);
    }
}

static void *s_worker(void *arg)
{
    ag_forkjoin_t *fj = arg;
    uint32_t seen = 0;
    for (;;) {
        int spins = 0;
        while ((uint32_t)(atomic_load(&fj->ticket) >> 32) == seen && spins < SPIN_ITERS) {
            s_relax();
            spins++;
        }
        for (spins = 0; (uint32_t)(atomic_load(&fj->ticket) >> 32) == seen && spins < YIELD_ITERS;
             spins++)
            sched_yield();
        if ((uint32_t)(atomic_load(&fj->ticket) >> 32) == seen) {
            pthread_mutex_lock(&fj->mu);
            fj->sleepers++;
            while ((uint32_t)(atomic_load(&fj->ticket) >> 32) == seen)
                pthread_cond_wait(&fj->cv_start, &fj->mu);
            fj->sleepers--;
            pthread_mutex_unlock(&fj->mu);
        }
        seen = (uint32_t)(atomic_load(&fj->ticket) >> 32);
        if (atomic_load(&fj->stop))
            return NULL;
        s_run_shares(fj, seen);
    }
}

ag_forkjoin_t *ag_forkjoin_create(int nthreads)
{
    if (nthreads < 1 || nthreads > AG_FORKJOIN_MAX)
        return NULL;
    ag_forkjoin_t *fj = calloc(1, sizeof(*fj));
    if (!fj)
        return NULL;
    fj->n = nthreads;
    pthread_mutex_init(&fj->mu, NULL);
    pthread_cond_init(&fj->cv_start, NULL);
    pthread_cond_init(&fj->cv_done, NULL);
    atomic_init(&fj->ticket, (uint64_t)nthreads); /* generation 0, nothing to claim */
    atomic_init(&fj->done, 0);
    atomic_init(&fj->stop, 0);
    for (int i = 1; i < nthreads; i++) {
        if (pthread_create(&fj->threads[i], NULL, s_worker, fj) != 0)
            goto fail;
        fj->started++;
    }
    return fj;
fail:
    ag_forkjoin_destroy(&fj);
    return NULL;
}

void ag_forkjoin_destroy(ag_forkjoin_t **self)
{
    if (!self || !*self)
        return;
    ag_forkjoin_t *fj = *self;
    pthread_mutex_lock(&fj->mu);
    atomic_store(&fj->stop, 1);
    uint64_t gen = (atomic_load(&fj->ticket) >> 32) + 1;
    atomic_store(&fj->ticket, gen << 32 | (uint32_t)fj->n);
    pthread_cond_broadcast(&fj->cv_start);
    pthread_mutex_unlock(&fj->mu);
    for (int i = 1; i <= fj->started; i++)
        pthread_join(fj->threads[i], NULL);
    pthread_cond_destroy(&fj->cv_done);
    pthread_cond_destroy(&fj->cv_start);
    pthread_mutex_destroy(&fj->mu);
    free(fj);
    *self = NULL;
}

int ag_forkjoin_threads(const ag_forkjoin_t *fj)
{
    return fj->n;
}

void ag_forkjoin_run(ag_forkjoin_t *fj, ag_forkjoin_fn fn, void *ctx)
{
    if (fj->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    fj->fn = fn;
    fj->ctx = ctx;
    atomic_store(&fj->done, 0);
    const uint32_t gen = (uint32_t)(atomic_load(&fj->ticket) >> 32) + 1;
    atomic_store(&fj->ticket, (uint64_t)gen << 32);
    pthread_mutex_lock(&fj->mu);
    if (fj->sleepers)
        pthread_cond_broadcast(&fj->cv_start);
    pthread_mutex_unlock(&fj->mu);

    s_run_shares(fj, gen);

    int spins = 0;
    while (atomic_load(&fj->done) < fj->n && spins < SPIN_ITERS) {
        s_relax();
        spins++;
    }
    for (spins = 0; atomic_load(&fj->done) < fj->n && spins < YIELD_ITERS; spins++)
        sched_yield();
    if (atomic_load(&fj->done) < fj->n) {
        pthread_mutex_lock(&fj->mu);
        fj->caller_asleep = 1;
        while (atomic_load(&fj->done) < fj->n)
            pthread_cond_wait(&fj->cv_done, &fj->mu);
        fj->caller_asleep = 0;
        pthread_mutex_unlock(&fj->mu);
    }
}

void ag_forkjoin_run_work(ag_forkjoin_t *fj, ag_forkjoin_fn fn, void *ctx, double work)
{
    if (work >= AG_FORKJOIN_MIN_WORK) {
        ag_forkjoin_run(fj, fn, ctx);
        return;
    }
    for (int i = 0; i < fj->n; i++)
        fn(ctx, i, fj->n);
}

void ag_forkjoin_split(long total, int index, int count, long align, long *lo, long *hi)
{
    if (align < 1)
        align = 1;
    long units = (total + align - 1) / align;
    long ulo = units * index / count;
    long uhi = units * (index + 1) / count;
    *lo = ulo * align;
    *hi = uhi * align;
    if (*lo > total)
        *lo = total;
    if (*hi > total)
        *hi = total;
}
