/*
 * service.c - the loop-and-worker host (see service.h). The worker's end is
 * noticed on the loop thread through the same uv_async as ag_service_wake,
 * so a wake-up and the end can never be handled out of order: the owner's
 * last on_wake (e.g. publishing a final version) runs before on_stopped.
 */
#include "service.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "signals.h"

struct ag_service {
    uv_loop_t *loop;
    ag_service_config_t cfg;
    char name[64];

    uv_async_t async;
    uv_timer_t ckpt_timer, stop_timer;
    ag_signals_t *signals;
    int open_handles; /* handles still to be closed through the loop */
    bool closing;

    uv_thread_t thread;
    bool thread_started;

    uv_mutex_t lk;
    uv_cond_t cv;
    atomic_int stop;
    atomic_int ckpt;
    atomic_int failed;
    bool worker_done; /* under lk */
};

void ag_service_lock(ag_service_t *svc)
{
    uv_mutex_lock(&svc->lk);
}

void ag_service_unlock(ag_service_t *svc)
{
    uv_mutex_unlock(&svc->lk);
}

void ag_service_wait(ag_service_t *svc, double seconds)
{
    if (seconds <= 0)
        uv_cond_wait(&svc->cv, &svc->lk);
    else
        uv_cond_timedwait(&svc->cv, &svc->lk, (uint64_t)(seconds * 1e9));
}

void ag_service_broadcast(ag_service_t *svc)
{
    uv_cond_broadcast(&svc->cv);
}

void ag_service_stop(ag_service_t *svc)
{
    atomic_store(&svc->stop, 1);
    uv_mutex_lock(&svc->lk);
    uv_cond_broadcast(&svc->cv);
    uv_mutex_unlock(&svc->lk);
}

bool ag_service_stopping(const ag_service_t *svc)
{
    return atomic_load(&svc->stop) != 0;
}

atomic_int *ag_service_stop_flag(ag_service_t *svc)
{
    return &svc->stop;
}

bool ag_service_checkpoint_due(const ag_service_t *svc)
{
    return atomic_load(&svc->ckpt) != 0;
}

bool ag_service_checkpoint_take(ag_service_t *svc)
{
    return atomic_exchange(&svc->ckpt, 0) != 0;
}

void ag_service_wake(ag_service_t *svc)
{
    uv_async_send(&svc->async);
}

void ag_service_fail(ag_service_t *svc, const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    ag_error(svc->name, "%s", why);
    atomic_store(&svc->failed, 1);
}

int ag_service_exit_code(const ag_service_t *svc)
{
    return !svc || atomic_load(&svc->failed) ? 1 : 0;
}

/* ---------------------------------------------------------------- handles */

static void s_on_close(uv_handle_t *h)
{
    ag_service_t *svc = h->data;
    svc->open_handles--;
}

static void s_close_handles(ag_service_t *svc)
{
    if (svc->closing)
        return;
    svc->closing = true;
    ag_signals_destroy(&svc->signals);
    uv_close((uv_handle_t *)&svc->ckpt_timer, s_on_close);
    uv_close((uv_handle_t *)&svc->stop_timer, s_on_close);
    uv_close((uv_handle_t *)&svc->async, s_on_close);
}

/* Closes the host's handles and lets the owner close its own. Loop thread. */
static void s_close(ag_service_t *svc)
{
    if (svc->closing)
        return;
    s_close_handles(svc);
    if (svc->cfg.on_stopped)
        svc->cfg.on_stopped(svc->cfg.arg);
}

void ag_service_close(ag_service_t *svc)
{
    s_close(svc);
}

static void s_on_async(uv_async_t *a)
{
    ag_service_t *svc = a->data;
    if (svc->cfg.on_wake)
        svc->cfg.on_wake(svc->cfg.arg);
    uv_mutex_lock(&svc->lk);
    const bool done = svc->worker_done;
    uv_mutex_unlock(&svc->lk);
    if (!done || svc->closing)
        return;
    if (svc->thread_started) {
        uv_thread_join(&svc->thread);
        svc->thread_started = false;
    }
    s_close(svc);
}

static void s_on_ckpt_timer(uv_timer_t *t)
{
    ag_service_t *svc = t->data;
    atomic_store(&svc->ckpt, 1);
    uv_mutex_lock(&svc->lk);
    uv_cond_broadcast(&svc->cv);
    uv_mutex_unlock(&svc->lk);
}

static void s_on_stop_timer(uv_timer_t *t)
{
    ag_service_t *svc = t->data;
    ag_info(svc->name, "reached %s.max_seconds = %g: checkpointing and stopping", svc->name,
            svc->cfg.max_seconds);
    ag_service_stop(svc);
}

static void s_on_signal(void *arg, int signum)
{
    ag_service_t *svc = arg;
    ag_info(svc->name, "signal %d: checkpointing and stopping", signum);
    ag_service_stop(svc);
}

static void s_worker(void *arg)
{
    ag_service_t *svc = arg;
    svc->cfg.work(svc, svc->cfg.arg);
    uv_mutex_lock(&svc->lk);
    svc->worker_done = true;
    uv_mutex_unlock(&svc->lk);
    uv_async_send(&svc->async);
}

/* ------------------------------------------------------------- lifecycle */

ag_service_t *ag_service_create(uv_loop_t *loop, const ag_service_config_t *cfg)
{
    ag_service_t *svc = calloc(1, sizeof *svc);
    if (!svc)
        return NULL;
    svc->loop = loop;
    svc->cfg = *cfg;
    snprintf(svc->name, sizeof svc->name, "%s", cfg->name ? cfg->name : "service");
    svc->cfg.name = svc->name;
    atomic_init(&svc->stop, 0);
    atomic_init(&svc->ckpt, 0);
    atomic_init(&svc->failed, 0);
    if (uv_mutex_init(&svc->lk) != 0) {
        free(svc);
        return NULL;
    }
    if (uv_cond_init(&svc->cv) != 0 || uv_async_init(loop, &svc->async, s_on_async) != 0) {
        uv_mutex_destroy(&svc->lk);
        free(svc);
        return NULL;
    }
    /* From here on every handle is closed through the loop (s_close). */
    uv_timer_init(loop, &svc->ckpt_timer);
    uv_timer_init(loop, &svc->stop_timer);
    svc->async.data = svc->ckpt_timer.data = svc->stop_timer.data = svc;
    svc->open_handles = 3;
    return svc;
}

int ag_service_start(ag_service_t *svc)
{
    const ag_service_config_t *cfg = &svc->cfg;
    if (cfg->checkpoint_interval_s > 0) {
        uint64_t ms = (uint64_t)(cfg->checkpoint_interval_s * 1000.0);
        uv_timer_start(&svc->ckpt_timer, s_on_ckpt_timer, ms ? ms : 1, ms ? ms : 1);
    }
    if (cfg->max_seconds > 0)
        uv_timer_start(&svc->stop_timer, s_on_stop_timer, (uint64_t)(cfg->max_seconds * 1000.0), 0);
    if (cfg->signals)
        svc->signals = ag_signals_create(svc->loop, s_on_signal, svc);
    if (uv_thread_create(&svc->thread, s_worker, svc) != 0) {
        ag_service_fail(svc, "cannot start the worker thread");
        s_close(svc);
        return -1;
    }
    svc->thread_started = true;
    return 0;
}

void ag_service_destroy(ag_service_t **self)
{
    if (!self || !*self)
        return;
    ag_service_t *svc = *self;
    if (svc->thread_started) {
        ag_service_stop(svc);
        uv_thread_join(&svc->thread);
    }
    if (svc->open_handles > 0) {
        /* The loop was not run to the end: close here and let it run once. */
        s_close_handles(svc);
        uv_run(svc->loop, UV_RUN_NOWAIT);
    }
    uv_cond_destroy(&svc->cv);
    uv_mutex_destroy(&svc->lk);
    free(svc);
    *self = NULL;
}
