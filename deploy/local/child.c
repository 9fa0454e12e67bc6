/*
 * child.c - uv_spawn-based child processes of the launcher (see child.h).
 *
 * libuv needs a fresh uv_process_t per spawn and frees nothing until the
 * handle's close callback, so every run gets its own heap-allocated handle
 * that outlives the ag_child_t if need be.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct ag_child {
    uv_loop_t *loop;
    char *name;
    char **argv;
    size_t argc;
    char *log_path;
    char *out_path;
    ag_child_exit_cb cb;
    void *arg;
    uv_process_t *proc; /* the current run, NULL when none */
    uv_timer_t *timer;  /* restart delay; closed with the child */
    bool restart_pending;
    unsigned starts;
};

static void s_free_handle(uv_handle_t *h)
{
    free(h);
}

static void s_on_exit(uv_process_t *p, int64_t exit_status, int term_signal)
{
    ag_child_t *c = p->data;
    uv_close((uv_handle_t *)p, s_free_handle);
    if (!c)
        return; /* the child object is gone; nobody is listening */
    c->proc = NULL;
    if (c->cb)
        c->cb(c, term_signal ? -1 : exit_status, term_signal, c->arg);
}

static void s_on_restart(uv_timer_t *t)
{
    ag_child_t *c = t->data;
    c->restart_pending = false;
    int rc = ag_child_start(c);
    if (rc < 0 && c->cb)
        c->cb(c, 127, 0, c->arg); /* report a failed start like exec failing */
}

ag_child_t *ag_child_create(uv_loop_t *loop, const char *name, char *const *argv,
                            const char *log_path, const char *out_path, ag_child_exit_cb cb,
                            void *arg)
{
    ag_child_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->loop = loop;
    c->cb = cb;
    c->arg = arg;
    while (argv[c->argc])
        c->argc++;
    c->argv = calloc(c->argc + 1, sizeof *c->argv);
    c->name = strdup(name);
    c->log_path = strdup(log_path);
    c->out_path = out_path ? strdup(out_path) : NULL;
    c->timer = calloc(1, sizeof *c->timer);
    if (!c->argv || !c->name || !c->log_path || (out_path && !c->out_path) || !c->timer)
        goto fail;
    for (size_t i = 0; i < c->argc; i++)
        if (!(c->argv[i] = strdup(argv[i])))
            goto fail;
    uv_timer_init(loop, c->timer);
    c->timer->data = c;
    return c;
fail:
    if (c->argv)
        for (size_t i = 0; i < c->argc; i++)
            free(c->argv[i]);
    free(c->argv);
    free(c->name);
    free(c->log_path);
    free(c->out_path);
    free(c->timer);
    free(c);
    return NULL;
}

void ag_child_destroy(ag_child_t **self)
{
    if (!self || !*self)
        return;
    ag_child_t *c = *self;
    *self = NULL;
    if (c->proc) {
        /* Still running: it must not outlive the launcher, and its exit has no listener. */
        uv_process_kill(c->proc, SIGKILL);
        c->proc->data = NULL;
    }
    uv_timer_stop(c->timer);
    uv_close((uv_handle_t *)c->timer, s_free_handle);
    for (size_t i = 0; i < c->argc; i++)
        free(c->argv[i]);
    free(c->argv);
    free(c->name);
    free(c->log_path);
    free(c->out_path);
    free(c);
}

int ag_child_start(ag_child_t *self)
{
    if (self->proc)
        return -EBUSY;
    int log_fd = open(self->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        int e = errno;
        ag_error("agora", "%s: cannot open %s: %s", self->name, self->log_path, strerror(e));
        return -e;
    }
    int out_fd = log_fd;
    if (self->out_path) {
        out_fd = open(self->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (out_fd < 0) {
            int e = errno;
            ag_error("agora", "%s: cannot open %s: %s", self->name, self->out_path, strerror(e));
            close(log_fd);
            return -e;
        }
    }
    uv_process_t *p = calloc(1, sizeof *p);
    if (!p) {
        if (out_fd != log_fd)
            close(out_fd);
        close(log_fd);
        return -ENOMEM;
    }
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = out_fd},
        {.flags = UV_INHERIT_FD, .data.fd = log_fd},
    };
    uv_process_options_t o = {
        .exit_cb = s_on_exit,
        .file = self->argv[0],
        .args = self->argv,
        .flags = UV_PROCESS_DETACHED,
        .stdio_count = 3,
        .stdio = stdio,
    };
    p->data = self;
    int rc = uv_spawn(self->loop, p, &o);
    if (out_fd != log_fd)
        close(out_fd);
    close(log_fd);
    if (rc < 0) {
        ag_warn("agora", "%s: cannot start %s: %s", self->name, self->argv[0], uv_strerror(rc));
        /* A failed uv_spawn still initialised the handle: it must be closed. */
        p->data = NULL;
        uv_close((uv_handle_t *)p, s_free_handle);
        return rc;
    }
    self->proc = p;
    self->starts++;
    ag_debug("agora", "%s: started pid %d", self->name, p->pid);
    return 0;
}

void ag_child_restart_after(ag_child_t *self, uint64_t delay_ms)
{
    self->restart_pending = true;
    uv_timer_start(self->timer, s_on_restart, delay_ms, 0);
}

void ag_child_cancel_restart(ag_child_t *self)
{
    self->restart_pending = false;
    uv_timer_stop(self->timer);
}

bool ag_child_running(const ag_child_t *self)
{
    return self && self->proc != NULL;
}

bool ag_child_restart_pending(const ag_child_t *self)
{
    return self->restart_pending;
}

int ag_child_kill(ag_child_t *self, int signum)
{
    if (!self->proc)
        return -ESRCH;
    return uv_process_kill(self->proc, signum);
}

const char *ag_child_name(const ag_child_t *self)
{
    return self->name;
}

const char *ag_child_log_path(const ag_child_t *self)
{
    return self->log_path;
}

unsigned ag_child_starts(const ag_child_t *self)
{
    return self->starts;
}

int ag_child_pid(const ag_child_t *self)
{
    return self->proc ? self->proc->pid : 0;
}
