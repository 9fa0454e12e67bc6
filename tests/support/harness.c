/*
 * harness - clock, ports, child processes and scratch directories for the
 * integration tests (see harness.h).
 */
#include "clock.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void harness_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int harness_free_endpoint(char *out, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&a, len) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && snprintf(out, cap, "tcp://127.0.0.1:%d", ntohs(a.sin_port)) >= (int)cap)
        rc = -ENAMETOOLONG;
    return rc;
}

/* The status harness_run_* return for a child that ended. */
static int s_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int harness_run_capture(char *const argv[], char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    int fd[2];
    if (pipe2(fd, O_CLOEXEC) < 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], STDOUT_FILENO);
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e) {
        close(fd[0]);
        fprintf(stderr, "harness: cannot start %s: %s\n", argv[0], strerror(e));
        return -1;
    }
    size_t n = 0;
    char drop[4096];
    for (;;) {
        const bool room = n + 1 < cap;
        ssize_t k = read(fd[0], room ? out + n : drop, room ? cap - 1 - n : sizeof drop);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        if (room)
            n += (size_t)k;
    }
    if (cap)
        out[n] = '\0';
    close(fd[0]);
    return s_status(pid);
}

int harness_run_while(char *const argv[], int timeout_ms, void (*turn)(void *arg), void *arg)
{
    pid_t pid;
    int e = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (e) {
        fprintf(stderr, "harness: cannot start %s: %s\n", argv[0], strerror(e));
        return -1;
    }
    const int64_t until = ag_now_ms() + timeout_ms;
    while (ag_now_ms() < until) {
        if (turn)
            turn(arg);
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        harness_sleep_ms(1);
    }
    fprintf(stderr, "harness: %s still running after %d ms: killed\n", argv[0], timeout_ms);
    kill(pid, SIGKILL);
    s_status(pid);
    return -1;
}

int harness_mkdtemp(char *out, size_t cap, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    int rc = 0;
    if (snprintf(out, cap, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", name) >= (int)cap)
        rc = -ENAMETOOLONG;
    else if (!mkdtemp(out))
        rc = -errno;
    if (rc < 0 && cap)
        out[0] = '\0';
    return rc;
}

static int s_remove(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) < 0)
        fprintf(stderr, "harness: cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* remove what can be removed */
}

void harness_rmtree(const char *dir)
{
    nftw(dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
}

int harness_json_num(const char *json, const char *key, double *out)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    if (!p)
        return -ENOENT;
    p += strlen(pat);
    *out = strncmp(p, "null", 4) ? strtod(p, NULL) : NAN;
    return 0;
}

uint8_t *harness_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    uint8_t *b = NULL;
    if (fstat(fileno(f), &st) == 0 && (b = malloc((size_t)st.st_size + 1))) {
        *len = fread(b, 1, (size_t)st.st_size, f);
        if (*len != (size_t)st.st_size) {
            free(b);
            b = NULL;
        } else {
            b[*len] = '\0';
        }
    }
    fclose(f);
    return b;
}

int harness_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -errno;
    int rc = fwrite(data, 1, len, f) == len ? 0 : -EIO;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}
