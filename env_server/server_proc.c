/*
 * server_proc - start an agora env server on a free loopback port, wait for
 * its Hello, stop it with SIGTERM. See server_proc.h.
 */
#include "clock.h"
#include "server_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "env_client.h"

extern char **environ;

enum { START_ATTEMPTS = 5, MAX_EXTRA = 32 };

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A loopback TCP port that was free a moment ago, or -1. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (!bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &len))
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

bool ag_server_proc_alive(ag_server_proc_t *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid) {
        p->wait_status = st;
        p->reaped = true;
        return false;
    }
    return r == 0;
}

static int spawn(ag_server_proc_t *p, const char *exe, const char *const *extra)
{
    char *argv[MAX_EXTRA + 4];
    size_t n = 0;
    argv[n++] = (char *)exe;
    argv[n++] = (char *)AG_SERVER_PROC_BIND_OPTION;
    argv[n++] = p->endpoint;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n >= MAX_EXTRA + 3)
            return -E2BIG;
        argv[n++] = (char *)extra[i];
    }
    argv[n] = NULL;

    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa))
        return -ENOMEM;
    /* The child's stdout joins our stderr: a benchmark's stdout is its JSON line. */
    posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
    pid_t pid;
    int rc = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc) {
        fprintf(stderr, "server_proc: cannot start %s: %s\n", exe, strerror(rc));
        return -rc;
    }
    p->pid = pid;
    p->reaped = false;
    p->wait_status = 0;
    return 0;
}

/* Polls Hello until the server answers, dies, or the deadline passes. */
static int wait_ready(ag_server_proc_t *p, int64_t deadline)
{
    ag_env_client_t *cl = ag_env_client_create(p->endpoint, 200);
    if (!cl)
        return -ENOMEM;
    ag_env_client_set_retries(cl, 0);
    int rc = -ETIMEDOUT;
    while (ag_now_ms() < deadline) {
        if (!ag_server_proc_alive(p)) {
            rc = -ECHILD;
            break;
        }
        Agora__V1__EnvReply *r = NULL;
        int c = ag_env_client_hello(cl, "server_proc", &r);
        if (!c) {
            rc = r->body_case == AGORA__V1__ENV_REPLY__BODY_HELLO ? 0 : -EPROTO;
            agora__v1__env_reply__free_unpacked(r, NULL);
            break;
        }
        if (c != -ETIMEDOUT) {
            rc = c;
            break;
        }
        sleep_ms(20);
    }
    ag_env_client_destroy(&cl);
    return rc;
}

int ag_server_proc_start(ag_server_proc_t *p, const char *exe, const char *const *extra,
                         int timeout_ms)
{
    memset(p, 0, sizeof *p);
    int64_t deadline = ag_now_ms() + timeout_ms;
    int rc = -ETIMEDOUT;
    for (int attempt = 0; attempt < START_ATTEMPTS && ag_now_ms() < deadline; attempt++) {
        int port = free_port();
        if (port < 0)
            return -errno;
        snprintf(p->endpoint, sizeof p->endpoint, "tcp://127.0.0.1:%d", port);
        rc = spawn(p, exe, extra);
        if (rc)
            return rc;
        rc = wait_ready(p, deadline);
        if (!rc)
            return 0;
        if (rc == -ECHILD) {
            /* Most likely the port was taken in between; try another. */
            fprintf(stderr, "server_proc: %s exited during start-up (status 0x%x)\n", exe,
                    p->wait_status);
            continue;
        }
        break;
    }
    fprintf(stderr, "server_proc: %s did not answer Hello within %d ms: %s\n", exe, timeout_ms,
            strerror(-rc));
    ag_server_proc_stop(p, 1000);
    return rc;
}

int ag_server_proc_stop(ag_server_proc_t *p, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    if (ag_server_proc_alive(p)) {
        kill(p->pid, SIGTERM);
        int64_t deadline = ag_now_ms() + timeout_ms;
        while (ag_server_proc_alive(p) && ag_now_ms() < deadline)
            sleep_ms(10);
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            int st;
            if (waitpid(p->pid, &st, 0) == p->pid) {
                p->wait_status = st;
                p->reaped = true;
            }
        }
    }
    int st = p->wait_status;
    bool reaped = p->reaped;
    p->pid = 0;
    return reaped && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
