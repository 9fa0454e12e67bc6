/*
 * signals.c - uv_signal_t watchers for SIGINT and SIGTERM.
 */
#include "signals.h"

#include <signal.h>
#include <stdlib.h>

struct ag_signals {
    uv_signal_t sig[2];
    int open;
    ag_signals_cb cb;
    void *arg;
};

static void s_on_signal(uv_signal_t *h, int signum)
{
    ag_signals_t *s = h->data;
    s->cb(s->arg, signum);
}

ag_signals_t *ag_signals_create(uv_loop_t *loop, ag_signals_cb cb, void *arg)
{
    ag_signals_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->cb = cb;
    s->arg = arg;
    signal(SIGPIPE, SIG_IGN);
    static const int nums[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        uv_signal_init(loop, &s->sig[i]);
        s->sig[i].data = s;
        uv_signal_start(&s->sig[i], s_on_signal, nums[i]);
    }
    s->open = 2;
    return s;
}

static void s_closed(uv_handle_t *h)
{
    ag_signals_t *s = h->data;
    if (--s->open == 0)
        free(s);
}

void ag_signals_destroy(ag_signals_t **self)
{
    if (!self || !*self)
        return;
    ag_signals_t *s = *self;
    *self = NULL;
    for (int i = 0; i < 2; i++) {
        uv_signal_stop(&s->sig[i]);
        uv_close((uv_handle_t *)&s->sig[i], s_closed);
    }
}
