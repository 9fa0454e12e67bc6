/*
 * with_server - run a command against a freshly started env server.
 *
 *   with_server SERVER_EXE COMMAND [ARGS...]
 *
 * Starts SERVER_EXE on a free loopback port, runs COMMAND ARGS... ENDPOINT
 * (the endpoint appended as the last argument), then stops the server with
 * SIGTERM. Exits with the command's status, or 1 if the command passed but the
 * server did not exit cleanly (status 0) on SIGTERM, or 2 if the server could
 * not be started. Lets meson run a client tool such as agora-env-check as an
 * integration test without a shell script guessing at ports.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "server_proc.h"

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: with_server SERVER_EXE COMMAND [ARGS...]\n");
        return 2;
    }
    ag_server_proc_t srv;
    if (ag_server_proc_start(&srv, argv[1], NULL, 10000))
        return 2;

    int n = argc - 2;
    char **cmd = calloc((size_t)n + 2, sizeof *cmd);
    if (!cmd) {
        ag_server_proc_stop(&srv, 5000);
        return 2;
    }
    for (int i = 0; i < n; i++)
        cmd[i] = argv[i + 2];
    cmd[n] = srv.endpoint;
    cmd[n + 1] = NULL;

    int status = 2;
    pid_t pid;
    int rc = posix_spawn(&pid, cmd[0], NULL, NULL, cmd, environ);
    if (rc) {
        fprintf(stderr, "with_server: cannot run %s: %s\n", cmd[0], strerror(rc));
    } else {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
    }
    free(cmd);

    bool alive = ag_server_proc_alive(&srv);
    int srv_status = ag_server_proc_stop(&srv, 10000);
    if (!alive)
        fprintf(stderr, "with_server: the server died during the run (status %d)\n", srv_status);
    else if (srv_status != 0)
        fprintf(stderr, "with_server: the server exited with %d on SIGTERM, expected 0\n",
                srv_status);
    if (status == 0 && (!alive || srv_status != 0))
        status = 1;
    return status;
}
