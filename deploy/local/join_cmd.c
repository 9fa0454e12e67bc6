/*
 * join_cmd.c - `agora join tcp://LEARNER:5582 [--actors N] [--env-servers M]`:
 * adds this machine's actors and env servers to a job running elsewhere.
 * Every child gets --join ENDPOINT (agora-env registers with the learner,
 * agora-actor fetches the run's configuration and the live env servers from
 * it), so nothing else about the job needs to be known here.
 *
 * The children are supervised as `agora run` does it (child.h): a crashed
 * one is restarted with a doubling delay, at most join.max_restarts times;
 * one that exits with AG_LAUNCH_EXIT_FATAL (the job asks for what it cannot
 * do) is not. Ctrl-C or SIGTERM stops them in order: the actors first (they
 * send what they hold), then the env servers (they deregister); a second
 * signal kills what is left. The options of the join are [join] keys;
 * other --KEY VALUE arguments are passed on, --env.* to the env servers and
 * the rest to the actors.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "backoff.h"
#include "child.h"
#include "config.h"
#include "launcher.h"
#include "log.h"
#include "signals.h"

#define MAX_CHILDREN 128
#define MAX_PASSED 64

typedef struct join_opts {
    long actors, env_servers;
    const char *advertise, *env_bind, *dir, *bin_dir;
    long env_port, max_restarts, restart_delay_ms;
} join_opts_t;

#define OPT(f, ...) AG_OPT(join_opts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(actors, "join.actors", "actors", "1", 0, 64, "actors to start here"),
    OPT(env_servers, "join.env_servers", "env-servers", "0", 0, 16, "env servers to start here"),
    OPT(advertise, "join.advertise", "advertise", "", 0, 255,
        "host name or address the job reaches this machine's env servers by (empty = this "
        "machine's host name)"),
    OPT(env_bind, "join.env_bind", "env-bind", "*", 1, 255,
        "address the env servers bind (* = every interface)"),
    OPT(env_port, "join.env_port", "env-port", "5570", 1, 65535,
        "port of the first env server; env server i binds env_port + i"),
    OPT(dir, "join.dir", "dir", "agora-join", 1, 0, "directory of the children's logs (DIR/logs)"),
    OPT(bin_dir, "join.bin_dir", "bin-dir", "", 0, 0,
        "directory of agora-env and agora-actor (empty = next to agora, or the build tree)"),
    OPT(max_restarts, "join.max_restarts", "max-restarts", "5", 0, 1000,
        "restarts of a crashed actor or env server before giving up on it"),
    OPT(restart_delay_ms, "join.restart_delay_ms", "restart-delay-ms", "500", 0, 600000,
        "delay before the first restart; doubles with every restart of the same process, up "
        "to 30 s"),
};
#undef OPT

typedef struct member {
    struct joiner *j;
    ag_child_t *child;
    bool actor;
    bool gone; /* exited for good */
    unsigned restarts;
} member_t;

typedef struct joiner {
    uv_loop_t loop;
    join_opts_t o;
    ag_signals_t *signals;
    member_t m[MAX_CHILDREN];
    int n;
    int stopping; /* 0 running, 1 stopping the actors, 2 the env servers, 3 killing */
    int status;
} joiner_t;

static int s_live(const joiner_t *j, bool actors)
{
    int n = 0;
    for (int i = 0; i < j->n; i++)
        n += !j->m[i].gone && j->m[i].actor == actors;
    return n;
}

static void s_signal_all(joiner_t *j, bool actors, int signum)
{
    for (int i = 0; i < j->n; i++)
        if (!j->m[i].gone && j->m[i].actor == actors) {
            ag_child_cancel_restart(j->m[i].child);
            if (ag_child_running(j->m[i].child))
                ag_child_kill(j->m[i].child, signum);
            else
                j->m[i].gone = true;
        }
}

/* The next step of an orderly stop, once the previous one is over. */
static void s_advance(joiner_t *j)
{
    if (j->stopping == 1 && s_live(j, true) == 0) {
        j->stopping = 2;
        s_signal_all(j, false, SIGTERM);
    }
    if (s_live(j, true) + s_live(j, false) == 0) {
        ag_signals_destroy(&j->signals);
        uv_stop(&j->loop);
    }
}

static void s_on_signal(void *arg, int signum)
{
    joiner_t *j = arg;
    if (j->stopping) {
        ag_warn("agora", "signal %d again: killing what is left", signum);
        j->stopping = 3;
        s_signal_all(j, true, SIGKILL);
        s_signal_all(j, false, SIGKILL);
        return;
    }
    ag_info("agora", "signal %d: stopping the actors, then the env servers", signum);
    j->stopping = 1;
    s_signal_all(j, true, SIGTERM);
    s_advance(j);
}

static void s_on_exit(ag_child_t *child, int64_t status, int term_signal, void *arg)
{
    member_t *m = arg;
    joiner_t *j = m->j;
    if (j->stopping) {
        m->gone = true;
        s_advance(j);
        return;
    }
    if (status == 0) {
        ag_info("agora", "%s ended by itself", ag_child_name(child));
        m->gone = true;
    } else if (status == AG_LAUNCH_EXIT_FATAL) {
        ag_error("agora", "%s cannot do this job (exit status %d; its log %s says why): not "
                          "restarted",
                 ag_child_name(child), AG_LAUNCH_EXIT_FATAL, ag_child_log_path(child));
        m->gone = true;
        j->status = AG_LAUNCH_EXIT_FATAL;
    } else if (m->restarts >= (unsigned)j->o.max_restarts) {
        ag_error("agora", "%s exited (%s %lld) %u times: giving up on it (log: %s)",
                 ag_child_name(child), term_signal ? "signal" : "status",
                 (long long)(term_signal ? term_signal : status), m->restarts + 1,
                 ag_child_log_path(child));
        m->gone = true;
        j->status = 1;
    } else {
        const ag_backoff_t b = ag_backoff_make((uint64_t)j->o.restart_delay_ms, 30000);
        const uint64_t delay = ag_backoff_pause_ms(&b, m->restarts++);
        ag_warn("agora", "%s exited (%s %lld): restarting it in %llu ms", ag_child_name(child),
                term_signal ? "signal" : "status",
                (long long)(term_signal ? term_signal : status), (unsigned long long)delay);
        ag_child_restart_after(child, delay);
    }
    if (s_live(j, true) + s_live(j, false) == 0) {
        ag_error("agora", "no actor or env server of this join is left");
        ag_signals_destroy(&j->signals);
        uv_stop(&j->loop);
    }
}

/* Starts one child: bin --join ENDPOINT [own args] [passed args]. */
static int s_start(joiner_t *j, const char *bin, const char *name, bool actor,
                   const char *const *own, int n_own, char **passed, int n_passed)
{
    if (j->n == MAX_CHILDREN)
        return -ENOSPC;
    char *argv[8 + 2 * MAX_PASSED + 8];
    int n = 0;
    argv[n++] = (char *)bin;
    for (int i = 0; i < n_own; i++)
        argv[n++] = (char *)own[i];
    for (int i = 0; i < n_passed; i++)
        argv[n++] = passed[i];
    argv[n] = NULL;
    char log[4096];
    snprintf(log, sizeof log, "%s/logs/%s.log", j->o.dir, name);
    member_t *m = &j->m[j->n];
    *m = (member_t){.j = j, .actor = actor};
    m->child = ag_child_create(&j->loop, name, argv, log, NULL, s_on_exit, m);
    if (!m->child || ag_child_start(m->child) < 0) {
        ag_child_destroy(&m->child);
        return -EIO;
    }
    j->n++;
    ag_info("agora", "started %s (log %s)", name, log);
    return 0;
}

/* Arguments not of the join: "--KEY VALUE" or "--KEY=VALUE" (a flag alone as is). */
static bool s_is_own(const char *key)
{
    if (!strncmp(key, "join.", 5) || !strncmp(key, "log.", 5) || !strcmp(key, "log-level"))
        return true;
    for (size_t i = 0; i < sizeof s_options / sizeof s_options[0]; i++)
        if (s_options[i].alias && !strcmp(s_options[i].alias, key))
            return true;
    return false;
}

int ag_join_main(int argc, char **argv)
{
    static char *own[2 * MAX_PASSED + 4], *to_env[2 * MAX_PASSED], *to_actor[2 * MAX_PASSED];
    int n_own = 0, n_env = 0, n_actor = 0;
    own[n_own++] = "agora join";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !a[2] || !strcmp(a, "--help") || !strcmp(a, "--help-markdown")) {
            if (n_own < 2 * MAX_PASSED)
                own[n_own++] = argv[i];
            continue;
        }
        char key[256];
        const char *eq = strchr(a, '=');
        snprintf(key, sizeof key, "%.*s", (int)(eq ? eq - a : (long)strlen(a)) - 2, a + 2);
        const bool with_value = !eq && i + 1 < argc && strncmp(argv[i + 1], "--", 2);
        char **dst = s_is_own(key) ? own : !strncmp(key, "env.", 4) ? to_env : to_actor;
        int *nd = dst == own ? &n_own : dst == to_env ? &n_env : &n_actor;
        if (*nd + 2 > 2 * MAX_PASSED) {
            fprintf(stderr, "agora join: too many arguments\n");
            return 2;
        }
        dst[(*nd)++] = argv[i];
        if (with_value)
            dst[(*nd)++] = argv[++i];
    }
    ag_config_t *cfg = ag_config_create(
        "agora join", "tcp://LEARNER:5582 [options] [--actor.KEY VALUE ...] [--env.KEY VALUE ...]",
        "Adds actors and env servers on this machine to an agora job running elsewhere: each is "
        "started with --join ENDPOINT (the learner's control endpoint), so the learner hands "
        "them the run's configuration and each other; supervised (restarted with backoff when "
        "they crash), stopped in order on Ctrl-C. Other --KEY VALUE arguments are passed on: "
        "--env.* to the env servers, the rest to the actors.",
        s_options, sizeof s_options / sizeof s_options[0], 1);
    if (!cfg)
        return 1;
    joiner_t *j = calloc(1, sizeof *j);
    int rc = j ? ag_config_parse_args(cfg, n_own, own) : -1;
    if (rc != 0 || ag_config_apply(cfg, &j->o) < 0) {
        ag_config_destroy(&cfg);
        free(j);
        return rc > 0 ? 0 : 2;
    }
    const char *learner = ag_config_positional(cfg, 0);
    if (!learner || strncmp(learner, "tcp://", 6) || (!j->o.actors && !j->o.env_servers)) {
        fprintf(stderr, "agora join: %s (see agora join --help)\n",
                !learner ? "which job? give the learner's control endpoint, tcp://LEARNER:5582"
                : strncmp(learner, "tcp://", 6) ? "the learner's endpoint is tcp://HOST:PORT"
                                                : "nothing to start: --actors and --env-servers are 0");
        ag_config_destroy(&cfg);
        free(j);
        return 2;
    }
    char env_bin[4096], actor_bin[4096], err[8192], logs[4096];
    snprintf(logs, sizeof logs, "%s/logs", j->o.dir);
    if ((j->o.env_servers &&
         ag_launch_find_bin(j->o.bin_dir, "agora-env", env_bin, sizeof env_bin, err, sizeof err) <
             0) ||
        (j->o.actors && ag_launch_find_bin(j->o.bin_dir, "agora-actor", actor_bin,
                                           sizeof actor_bin, err, sizeof err) < 0)) {
        ag_error("agora", "%s; set join.bin_dir", err);
        ag_config_destroy(&cfg);
        free(j);
        return 1;
    }
    if ((rc = ag_launch_mkdirs(logs)) < 0) {
        ag_error("agora", "cannot make %s: %s", logs, strerror(-rc));
        ag_config_destroy(&cfg);
        free(j);
        return 1;
    }
    uv_loop_init(&j->loop);
    j->signals = ag_signals_create(&j->loop, s_on_signal, j);
    rc = j->signals ? 0 : -ENOMEM;
    for (long i = 0; i < j->o.env_servers && rc == 0; i++) {
        char name[32], bind[300];
        snprintf(name, sizeof name, "env-%ld", i);
        snprintf(bind, sizeof bind, "tcp://%s:%ld", j->o.env_bind, j->o.env_port + i);
        const char *args[] = {"--join", learner, "--bind", bind, "--advertise", j->o.advertise};
        rc = s_start(j, env_bin, name, false, args, j->o.advertise[0] ? 6 : 4, to_env, n_env);
    }
    for (long i = 0; i < j->o.actors && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "actor-%ld", i);
        const char *args[] = {"--join", learner};
        rc = s_start(j, actor_bin, name, true, args, 2, to_actor, n_actor);
    }
    if (rc < 0) {
        ag_error("agora", "cannot start every child: stopping those that run");
        s_on_signal(j, SIGTERM);
        j->status = 1;
    } else {
        ag_info("agora", "joined the job at %s with %ld actors and %ld env servers; Ctrl-C stops "
                         "them",
                learner, j->o.actors, j->o.env_servers);
    }
    uv_run(&j->loop, UV_RUN_DEFAULT);
    const int status = j->status;
    for (int i = 0; i < j->n; i++)
        ag_child_destroy(&j->m[i].child);
    ag_signals_destroy(&j->signals);
    uv_run(&j->loop, UV_RUN_DEFAULT);
    uv_loop_close(&j->loop);
    ag_config_destroy(&cfg);
    free(j);
    return status;
}
