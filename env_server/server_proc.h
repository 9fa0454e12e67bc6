/*
 * server_proc - start an agora service binary on a free loopback port for a
 * test or a benchmark, wait until it answers, and stop it.
 *
 * The port is found by binding 127.0.0.1:0 and releasing it; another process
 * could take it in between, so a server that exits during start-up is
 * retried on a new port a few times. Readiness means the server answered an
 * env Hello (the only services started this way are env servers). The child's
 * stdout goes to the caller's stderr, so a benchmark's stdout stays one JSON
 * line.
 */
#ifndef AG_SERVER_PROC_H
#define AG_SERVER_PROC_H

#include <stdbool.h>
#include <sys/types.h>

/* How agora-env is told where to listen: `--bind ENDPOINT`. */
#define AG_SERVER_PROC_BIND_OPTION "--bind"

typedef struct {
    pid_t pid;       /* 0 when not started or already reaped */
    int wait_status; /* waitpid() status once reaped */
    bool reaped;
    char endpoint[64]; /* tcp://127.0.0.1:PORT */
} ag_server_proc_t;

/*
 * Runs `exe BIND_OPTION tcp://127.0.0.1:PORT extra...` (extra: NULL-terminated,
 * may be NULL) and waits up to timeout_ms for it to answer Hello. Returns 0,
 * or a negative errno after printing why to stderr (the child is then gone).
 */
int ag_server_proc_start(ag_server_proc_t *p, const char *exe, const char *const *extra,
                         int timeout_ms);

/* True while the child has not exited (reaps it if it has). */
bool ag_server_proc_alive(ag_server_proc_t *p);

/*
 * Sends SIGTERM (unless the child already exited) and waits up to timeout_ms,
 * then SIGKILL. Returns the child's exit status (0..255), or -1 if it died
 * from a signal (including that SIGKILL) or was never started.
 */
int ag_server_proc_stop(ag_server_proc_t *p, int timeout_ms);

#endif
