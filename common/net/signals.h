/*
 * signals.h - SIGINT/SIGTERM as loop events, for clean shutdown. The callback
 * runs on the loop thread (never inside a signal handler), once per signal
 * delivery; the owner decides what stopping means (stop accepting work,
 * checkpoint, close handles, let the loop end). SIGPIPE is ignored.
 */
#ifndef AG_SIGNALS_H
#define AG_SIGNALS_H

#include <uv.h>

typedef struct ag_signals ag_signals_t;
typedef void (*ag_signals_cb)(void *arg, int signum);

ag_signals_t *ag_signals_create(uv_loop_t *loop, ag_signals_cb cb, void *arg);
/* Stops watching; the memory is freed once libuv releases the handles. Accepts NULL. */
void ag_signals_destroy(ag_signals_t **self);

#endif
