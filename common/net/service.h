/*
 * service.h - the host of a process with a libuv loop thread and one worker
 * thread (agora-learner, agora-reward): the loop thread serves sockets while
 * the worker trains. The host owns what such a process needs besides its
 * work: the worker thread and its lifecycle, one lock and condition shared
 * by the two threads, a clean stop on SIGINT/SIGTERM or at a time limit,
 * periodic checkpoint requests, a wake-up of the loop thread from the
 * worker, and the exit code. Modelled on libuv's handle lifecycle and CZMQ's
 * zactor: created running, stopped by request, closed through the loop.
 *
 * Lifecycle:
 *   ag_service_create  (loop thread) sets up the lock and the handles; the
 *                      owner may use the lock before the worker exists;
 *   ag_service_start   starts the timers, the signal watchers and the
 *                      worker thread, which runs cfg.work(svc, arg);
 *   the worker polls ag_service_stopping and ag_service_checkpoint_take
 *                      between steps, waits with ag_service_wait, and returns
 *                      when it is done (after its final checkpoint);
 *   then, on the loop thread, the host joins it, closes its own handles and
 *                      calls cfg.on_stopped, where the owner closes its
 *                      sockets, so the loop ends;
 *   ag_service_destroy after uv_run returned.
 * A stop (signal, time limit, ag_service_stop) only sets the flag and wakes
 * the worker: the worker finishes its step and checkpoints before it returns.
 *
 * Exit code: 0 after a clean run; 1 once ag_service_fail recorded a reason
 * (it is logged as an error).
 */
#ifndef AG_SERVICE_H
#define AG_SERVICE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <uv.h>

typedef struct ag_service ag_service_t;

typedef struct ag_service_config {
    /* log tag and option section: "reached NAME.max_seconds" */
    const char *name;
    double max_seconds;           /* stop after this many seconds (0 = never) */
    double checkpoint_interval_s; /* ask for a checkpoint this often (0 = never) */
    bool signals;                 /* stop on SIGINT/SIGTERM */
    /* the worker thread's body; returns when the worker is done */
    void (*work)(ag_service_t *svc, void *arg);
    /* loop thread, after ag_service_wake (may be NULL) */
    void (*on_wake)(void *arg);
    /* loop thread, once the worker has ended: close the owner's handles (may be NULL) */
    void (*on_stopped)(void *arg);
    void *arg;
} ag_service_config_t;

/* A service on loop, not started (loop thread). NULL without memory or on a
 * libuv failure. The strings of cfg are copied. */
ag_service_t *ag_service_create(uv_loop_t *loop, const ag_service_config_t *cfg);

/*
 * Starts the timers, the signal watchers and the worker (loop thread, once).
 * Returns 0, or -1 if the worker thread cannot start: the service is then
 * closing with exit code 1 (on_stopped has been called) and the loop must
 * still run so the handles close. A service that is never started is closed
 * with ag_service_close (or ag_service_destroy).
 */
int ag_service_start(ag_service_t *svc);

/* Closes a service that was never started (its owner failed before
 * ag_service_start): its handles close through the loop and on_stopped is
 * called. Loop thread. */
void ag_service_close(ag_service_t *svc);

/* Asks for a clean stop; any thread, any number of times. */
void ag_service_stop(ag_service_t *svc);
bool ag_service_stopping(const ag_service_t *svc);
/* The stop flag itself, for code that polls an atomic_int (the warm start). */
atomic_int *ag_service_stop_flag(ag_service_t *svc);

/* Whether a checkpoint is due (the interval elapsed since the last take). */
bool ag_service_checkpoint_due(const ag_service_t *svc);
/* Worker: true once per due checkpoint, clearing it. */
bool ag_service_checkpoint_take(ag_service_t *svc);

/* The lock and condition the loop thread and the worker share. A stop and a
 * due checkpoint broadcast the condition. */
void ag_service_lock(ag_service_t *svc);
void ag_service_unlock(ag_service_t *svc);
/* With the lock held: waits for a broadcast, at most seconds (<= 0: no limit). */
void ag_service_wait(ag_service_t *svc, double seconds);
void ag_service_broadcast(ag_service_t *svc);

/* Any thread: cfg.on_wake runs on the loop thread soon (coalesced). */
void ag_service_wake(ag_service_t *svc);

/* Records a failure (exit code 1) and logs why. Any thread. */
void ag_service_fail(ag_service_t *svc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 0 after a clean run, 1 after a failure (or for NULL). */
int ag_service_exit_code(const ag_service_t *svc);

/* Frees the service; call after uv_run returned. If the worker still runs
 * (the loop was never run), stops and joins it first. Accepts NULL. */
void ag_service_destroy(ag_service_t **self);

#endif
