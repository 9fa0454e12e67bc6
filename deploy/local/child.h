/*
 * child.h - one child process of the launcher, started with uv_spawn and
 * restartable.
 *
 * A child owns its command line, its log file (stdout and stderr appended to
 * DIR/logs/NAME.log, so the terminal shows only the launcher's progress line)
 * and, optionally, a separate file for stdout (agora-eval's JSON line). It
 * runs in its own session: a Ctrl-C on the terminal reaches only the
 * launcher, which then stops the children in order (actors, learner, env
 * servers) instead of all of them at once. The launcher decides what an exit
 * means; the child only reports it and, when asked, starts the same command
 * again after a delay.
 */
#ifndef AG_CHILD_H
#define AG_CHILD_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct ag_child ag_child_t;

/* exit_status is the exit code, or -1 when term_signal killed it. */
typedef void (*ag_child_exit_cb)(ag_child_t *child, int64_t exit_status, int term_signal,
                                 void *arg);

/*
 * argv: NULL-terminated, copied. log_path: stderr (and stdout unless
 * out_path) are appended there. out_path: NULL, or a file stdout replaces at
 * every start. Returns NULL when out of memory.
 */
ag_child_t *ag_child_create(uv_loop_t *loop, const char *name, char *const *argv,
                            const char *log_path, const char *out_path, ag_child_exit_cb cb,
                            void *arg);
/* The child must have exited (or never started); pending restarts are cancelled. Accepts NULL. */
void ag_child_destroy(ag_child_t **self);

/* Starts the command; 0 or a negative libuv/errno code after logging why. */
int ag_child_start(ag_child_t *self);
/* Starts it again after delay_ms (a pending restart is replaced). */
void ag_child_restart_after(ag_child_t *self, uint64_t delay_ms);
void ag_child_cancel_restart(ag_child_t *self);

/* False also for NULL: a child that was never created is not running. */
bool ag_child_running(const ag_child_t *self);
bool ag_child_restart_pending(const ag_child_t *self);
/* Sends signum if the child is running; returns 0 or a negative code. */
int ag_child_kill(ag_child_t *self, int signum);

const char *ag_child_name(const ag_child_t *self);
const char *ag_child_log_path(const ag_child_t *self);
/* How many times it was started, and the pid of the current run (0 if none). */
unsigned ag_child_starts(const ag_child_t *self);
int ag_child_pid(const ag_child_t *self);

#endif
