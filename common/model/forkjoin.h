/*
 * forkjoin.h - a tiny fork-join pool for the model core's data-parallel
 * kernels. The caller runs one share of the work itself and waits for the
 * others, so a pool of n threads owns n - 1 workers. Work is partitioned
 * statically by thread index, never by who finishes first, which keeps every
 * result bit-for-bit reproducible for a given thread count.
 *
 * OpenBLAS is used single-threaded inside each share: splitting a product in
 * our own threads measured about 1.7x faster at the model's sizes than
 * OpenBLAS's own threading, and it leaves no OpenBLAS workers spinning while
 * the non-product kernels run.
 */
#ifndef AG_FORKJOIN_H
#define AG_FORKJOIN_H

/* One share of a parallel region: index in [0, count). */
typedef void (*ag_forkjoin_fn)(void *ctx, int index, int count);

typedef struct ag_forkjoin ag_forkjoin_t;

/* A pool of nthreads threads (the caller included), 1..AG_FORKJOIN_MAX.
 * Returns NULL if threads cannot be started. */
ag_forkjoin_t *ag_forkjoin_create(int nthreads);
void ag_forkjoin_destroy(ag_forkjoin_t **self);

int ag_forkjoin_threads(const ag_forkjoin_t *fj);

/* Calls fn(ctx, i, n) once for every i in [0, n) and returns when all
 * shares are done. The calling thread takes part; which thread runs which
 * share is not fixed, so a share must depend only on its index (per-share
 * scratch is indexed by i, never by thread). Not reentrant: a share must not
 * call ag_forkjoin_run on the same pool. */
void ag_forkjoin_run(ag_forkjoin_t *fj, ag_forkjoin_fn fn, void *ctx);

/* As ag_forkjoin_run, but regions smaller than AG_FORKJOIN_MIN_WORK
 * floating-point operations run all their shares on the calling thread:
 * waking a worker costs more than it saves there. The shares and hence the
 * results are the same either way. */
void ag_forkjoin_run_work(ag_forkjoin_t *fj, ag_forkjoin_fn fn, void *ctx, double work);

#define AG_FORKJOIN_MIN_WORK 100000.0

/* The half-open range [*lo, *hi) of [0, total) that share index of count
 * owns, in units of `align` items (except possibly the last share). */
void ag_forkjoin_split(long total, int index, int count, long align, long *lo, long *hi);

#define AG_FORKJOIN_MAX 64

#endif
