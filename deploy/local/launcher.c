/*
 * launcher.c - the `agora run` job (see launcher.h).
 *
 * The job is a sequence of stages (start env servers, start learner and
 * actors, supervise, stop in order, evaluate, report). Each stage runs the
 * libuv loop one iteration at a time until its condition holds, so child
 * exits, signals and the learner's Status replies are all loop events, and
 * the order of the stages reads top to bottom in ag_launch_run(). A tick
 * timer keeps the loop waking up (progress line, stage deadlines).
 *
 * Children are told everything through one file, DIR/run.ini, plus the few
 * per-process values on their command line (an env server's bind address,
 * an actor's id and seed): a run can be reproduced or resumed from run.ini.
 */
#include "launcher.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "backoff.h"
#include "child.h"
#include "codec.h"
#include "control.pb-c.h"
#include "env.pb-c.h"
#include "reward.pb-c.h"
#include "log.h"
#include "matchup.h"
#include "report.h"
#include "game_metrics.h"
#include "rpc.h"
#include "signals.h"

/*
 * How the launcher addresses each service's options. They are the keys of
 * the run file sections owned by those binaries (docs: examples/README.md).
 */
#define OPT_ENV_BIND "--env.bind"
#define OPT_ENV_NAME "--env.name"
#define OPT_ACTOR_ID "--actor.id"
#define OPT_ACTOR_SEED "--actor.seed"
#define OPT_ACTOR_METRICS "--actor.metrics"

enum {
    TICK_MS = 250,
    READY_TIMEOUT_MS = 30000,
    ACTOR_STOP_TIMEOUT_MS = 10000,
    ENV_STOP_TIMEOUT_MS = 5000,
    EVAL_TIMEOUT_MS = 3600 * 1000, /* one agora-eval */
    EVAL_PARALLEL = 2, /* agora-evals at a time (training is over: the cores are free) */
    STATUS_TIMEOUT_MS = 1000,
    MAX_RESTART_DELAY_MS = 30000,
    WAIT_NOTE_MS = 5000, /* while waiting for a service, a log line this often */
    LOG_TAIL_LINES = 12,
    MAX_ENVS = 64,
    EP_LEN = 256,
    NAME_LEN = 72, /* a game or metric name: at most 64 bytes (protocol.md §8.1) */
};

typedef enum bin {
    BIN_ENV,
    BIN_LEARNER,
    BIN_ACTOR,
    BIN_EVAL,
    BIN_REWARD,
    N_BINS,
} bin_t;

static const char *const s_bin_names[N_BINS] = {"agora-env", "agora-learner", "agora-actor",
                                                "agora-eval", "agora-reward"};
/* Where each binary sits in a meson build tree, relative to deploy/local/. */
static const char *const s_bin_build_dirs[N_BINS] = {
    "../../env_server", "../../learner", "../../actor", "../../actor", "../../reward_server"};

typedef enum phase {
    PHASE_START,
    PHASE_TRAIN,
    PHASE_STOP,
    PHASE_EVAL,
    PHASE_REPORT,
} phase_t;

typedef enum kind {
    KIND_ENV,
    KIND_LEARNER,
    KIND_ACTOR,
    KIND_EVAL,
    KIND_REWARD,
    KIND_TOOL, /* gnuplot: its exit only matters to the code waiting for it */
} kind_t;

typedef struct launcher launcher_t;

/* One supervised process and what the launcher knows about it. */
typedef struct member {
    launcher_t *l;
    kind_t kind;
    size_t index;
    ag_child_t *child;
    unsigned restarts;
    bool given_up; /* crashed more than max_restarts times */
    bool stopping; /* the launcher asked it to stop: its exit is expected */
    bool exited;   /* its last run ended */
    int64_t exit_status;
    int term_signal;
} member_t;

typedef struct status {
    bool have;
    uint64_t version, updates, trajectories, tokens_trained;
    char phase[32];
    bool have_headline;
    double headline;
    char headline_name[NAME_LEN];
} status_t;

struct launcher {
    const ag_launch_opts_t *o;
    ag_backoff_t restart_delay; /* the n-th restart of a process waits pause_ms(n - 1) */
    uv_loop_t loop;
    void *zctx;
    ag_signals_t *signals;
    uv_timer_t tick;
    uint64_t t0_ms, train_t0_ms, train_t1_ms;

    char dir[PATH_MAX];
    char run_ini[PATH_MAX + 16];
    char bins[N_BINS][PATH_MAX];

    /* The run's game as the env servers' Hello declares it (env.proto GameSpec). */
    char game[NAME_LEN];
    int players;
    json_t *declared; /* its MetricSpecs, as JSON objects in declaration order */
    int headline;     /* index in declared of the headline metric, -1 = none declared */
    /* Figures the progress line looks for, best first: the headline, the reward model's. */
    const char *live[3];

    /* Env servers: the first n_envs are started here, the next n_attached are attached. */
    member_t *envs;
    char (*env_eps)[EP_LEN];
    bool *env_ready;
    size_t n_envs, n_attached;
    member_t learner;
    member_t *actors;
    size_t n_actors;
    ag_matchup_t matchups[AG_MATCHUP_MAX];
    size_t n_matchups;
    member_t evals[2 * AG_MATCHUP_MAX]; /* matchup m: 2m the warm start, 2m + 1 the final policy */
    member_t reward;

    char ep_traj[64], ep_weights[64], ep_control[64], ep_reward[64];
    bool reward_ready;
    bool reward_stats_done; /* the final Stats call was answered or failed */
    bool *waiting;          /* flags s_wait_answers waits for */
    size_t n_waiting;
    json_t *reward_stats; /* the reward server's Stats after the evaluation */

    phase_t phase;
    size_t keep_envs; /* env servers left running after training (for the evaluation) */
    int interrupts;
    bool failed;
    char fail_why[512];

    ag_rpc_client_t *control;
    bool status_pending;
    status_t status;
    uint64_t status_ms;

    bool tty;
    bool line_shown;
    uint64_t last_line_ms;
};

static const char *const s_eval_tags[2] = {"warmstart", "final"};
static const char *const s_eval_ckpts[2] = {"reference.ckpt", "policy.ckpt"};
static const char *const s_goals[] = {"unspecified", "maximize", "minimize"};

/* ---- small helpers ---- */

static uint64_t s_now(launcher_t *l)
{
    return uv_now(&l->loop);
}

static void s_clear_line(launcher_t *l)
{
    if (l->line_shown) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
        l->line_shown = false;
    }
}

/* Logs through log.h, first erasing the live progress line so the two never mix. */
#define NOTE(l, level, ...)                                                                        \
    do {                                                                                           \
        s_clear_line(l);                                                                           \
        ag_log(level, "agora", __VA_ARGS__);                                                       \
    } while (0)

static void s_fail(launcher_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void s_fail(launcher_t *l, const char *fmt, ...)
{
    if (l->failed)
        return; /* the first cause is the one worth reporting */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->fail_why, sizeof l->fail_why, fmt, ap);
    va_end(ap);
    l->failed = true;
    NOTE(l, AG_LOG_ERROR, "%s", l->fail_why);
}

int ag_launch_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static bool s_file_exists(const char *dir, const char *name)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* Prints the last lines of a child's log, so a failure is explained where it is reported. */
static void s_print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char *lines[LOG_TAIL_LINES] = {0};
    size_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) >= 0) {
        free(lines[n % LOG_TAIL_LINES]);
        lines[n % LOG_TAIL_LINES] = strdup(line);
        n++;
    }
    free(line);
    fclose(f);
    size_t first = n > LOG_TAIL_LINES ? n - LOG_TAIL_LINES : 0;
    if (n > 0)
        fprintf(stderr, "---- last lines of %s ----\n", path);
    for (size_t i = first; i < n; i++)
        if (lines[i % LOG_TAIL_LINES])
            fprintf(stderr, "  %s", lines[i % LOG_TAIL_LINES]);
    for (size_t i = 0; i < LOG_TAIL_LINES; i++)
        free(lines[i]);
}

/*
 * The message of the last line of a child's log (log.h: "TIME LEVEL
 * component: message") at level min or above, into buf; false when there is
 * none. A child that gives up says why there last.
 */
static bool s_last_log_line(const char *path, ag_log_level_t min, char *buf, size_t len)
{
    static const char *const levels[] = {"debug ", "info  ", "warn  ", "error "};
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    bool found = false;
    while ((n = getline(&line, &cap, f)) >= 0) {
        const char *p = strchr(line, ' ');
        if (!p)
            continue;
        p++;
        int level = AG_LOG_DEBUG;
        while (level <= AG_LOG_ERROR && strncmp(p, levels[level], 6))
            level++;
        if (level > AG_LOG_ERROR || level < (int)min)
            continue;
        p += 6;
        while (*p == ' ')
            p++;
        snprintf(buf, len, "%.*s", (int)strcspn(p, "\r\n"), p);
        found = true;
    }
    free(line);
    fclose(f);
    return found;
}

/* ---- binaries and ports ---- */

int ag_launch_find_bin(const char *bin_dir, const char *name, char *out, size_t cap, char *err,
                       size_t errlen)
{
    int b = 0;
    while (b < N_BINS && strcmp(s_bin_names[b], name))
        b++;
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (b == N_BINS || n <= 0) {
        snprintf(err, errlen, "cannot find %s: %s", name,
                 b == N_BINS ? "not an agora binary" : "no /proc/self/exe");
        return -ENOENT;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    char cand[2][PATH_MAX + 128];
    int n_cand = 0;
    if (bin_dir && *bin_dir) {
        snprintf(cand[n_cand++], sizeof cand[0], "%s/%s", bin_dir, name);
    } else {
        snprintf(cand[n_cand++], sizeof cand[0], "%s/%s", self, name);
        snprintf(cand[n_cand++], sizeof cand[0], "%s/%s/%s", self, s_bin_build_dirs[b], name);
    }
    for (int c = 0; c < n_cand; c++) {
        char real[PATH_MAX];
        if (access(cand[c], X_OK) == 0 && realpath(cand[c], real) && strlen(real) < cap) {
            snprintf(out, cap, "%s", real);
            return 0;
        }
    }
    snprintf(err, errlen, "cannot find %s (looked at %s%s%s)", name, cand[0],
             n_cand > 1 ? " and " : "", n_cand > 1 ? cand[1] : "");
    return -ENOENT;
}

static int s_find_bins(launcher_t *l)
{
    for (int b = 0; b < N_BINS; b++) {
        if ((b == BIN_EVAL && !l->o->eval) || (b == BIN_REWARD && !l->o->reward_server) ||
            (b == BIN_ENV && l->n_envs == 0))
            continue;
        char err[2 * PATH_MAX + 512];
        if (ag_launch_find_bin(l->o->bin_dir, s_bin_names[b], l->bins[b], sizeof l->bins[b], err,
                               sizeof err) < 0) {
            NOTE(l, AG_LOG_ERROR, "%s; set run.bin_dir%s", err,
                 b == BIN_EVAL ? " or run.eval = false" : "");
            return -1;
        }
        ag_debug("agora", "%s: %s", s_bin_names[b], l->bins[b]);
    }
    return 0;
}

/*
 * Finds n distinct loopback ports that were free a moment ago: all sockets
 * stay bound until every port is chosen, so no two services get the same
 * one. Another program could still take one before our child binds it; the
 * child then fails at start-up with "address in use" in its log.
 */
static int s_pick_ports(const char *host, int *ports, size_t n)
{
    int fds[64];
    if (n > sizeof fds / sizeof fds[0])
        return -E2BIG;
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -EINVAL;
    size_t opened = 0;
    int rc = 0;
    for (; opened < n; opened++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            break;
        }
        fds[opened] = fd;
        struct sockaddr_in b = a;
        b.sin_port = 0;
        socklen_t len = sizeof b;
        if (bind(fd, (struct sockaddr *)&b, sizeof b) < 0 ||
            getsockname(fd, (struct sockaddr *)&b, &len) < 0) {
            rc = -errno;
            opened++;
            break;
        }
        ports[opened] = ntohs(b.sin_port);
    }
    for (size_t i = 0; i < opened; i++)
        close(fds[i]);
    return rc;
}

/* ---- supervision ---- */

static size_t s_actors_alive(const launcher_t *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n_actors; i++)
        n += ag_child_running(l->actors[i].child);
    return n;
}

static void s_describe_exit(char *buf, size_t len, int64_t status, int sig)
{
    if (sig)
        snprintf(buf, len, "killed by signal %d (%s)", sig, strsignal(sig));
    else
        snprintf(buf, len, "exit status %lld", (long long)status);
}

/* Restarts a crashed actor or env server unless it has used up its restarts. */
static void s_maybe_restart(launcher_t *l, member_t *m, const char *how)
{
    const char *name = ag_child_name(m->child);
    if ((long)m->restarts >= l->o->max_restarts) {
        m->given_up = true;
        NOTE(l, AG_LOG_ERROR, "%s %s and was restarted %u times already; giving up on it (see %s)",
             name, how, m->restarts, ag_child_log_path(m->child));
        return;
    }
    m->restarts++;
    uint64_t delay = ag_backoff_pause_ms(&l->restart_delay, m->restarts - 1);
    NOTE(l, AG_LOG_WARN, "%s %s; restart %u/%ld in %.1f s (log: %s)", name, how, m->restarts,
         l->o->max_restarts, (double)delay / 1000.0, ag_child_log_path(m->child));
    ag_child_restart_after(m->child, delay);
}

static void s_on_exit(ag_child_t *child, int64_t exit_status, int term_signal, void *arg)
{
    member_t *m = arg;
    launcher_t *l = m->l;
    m->exited = true;
    m->exit_status = exit_status;
    m->term_signal = term_signal;
    char how[96];
    s_describe_exit(how, sizeof how, exit_status, term_signal);
    char why[512] = "";
    if ((exit_status != 0 || term_signal) &&
        s_last_log_line(ag_child_log_path(child), AG_LOG_ERROR, why + 2, sizeof why - 2))
        memcpy(why, ": ", 2);
    if (m->kind != KIND_LEARNER && m->kind != KIND_EVAL && m->kind != KIND_TOOL && !m->stopping &&
        exit_status == AG_LAUNCH_EXIT_FATAL) {
        /* It cannot do its job and said so: a restart would fail again. */
        m->given_up = true;
        s_fail(l, "%s cannot do its job (exit status %d, not restarted)%s; see %s",
               ag_child_name(child), AG_LAUNCH_EXIT_FATAL, why, ag_child_log_path(child));
        return;
    }
    switch (m->kind) {
    case KIND_LEARNER:
        l->train_t1_ms = s_now(l);
        if (exit_status != 0 || term_signal) {
            s_fail(l, "the learner failed (%s)%s; see %s", how, why, ag_child_log_path(child));
            s_clear_line(l);
            s_print_tail(ag_child_log_path(child));
        } else {
            NOTE(l, AG_LOG_INFO, "the learner finished");
        }
        break;
    case KIND_ACTOR:
        if (m->stopping)
            break;
        s_maybe_restart(l, m, how);
        if (s_actors_alive(l) == 0) {
            bool any_left = false;
            for (size_t i = 0; i < l->n_actors; i++)
                any_left |= !l->actors[i].given_up;
            if (!any_left)
                s_fail(l, "every actor crashed more than run.max_restarts times; see %s",
                       ag_child_log_path(child));
        }
        break;
    case KIND_ENV:
    case KIND_REWARD:
        if (m->stopping)
            break;
        s_maybe_restart(l, m, how);
        if (m->given_up && m->kind == KIND_ENV)
            s_fail(l, "env server %zu keeps failing; see %s", m->index, ag_child_log_path(child));
        else if (m->given_up)
            s_fail(l, "the reward server keeps failing; see %s", ag_child_log_path(child));
        break;
    case KIND_EVAL:
        if (exit_status != 0 || term_signal) {
            NOTE(l, AG_LOG_ERROR, "evaluation of the %s policy (%s) failed (%s)%s; see %s",
                 s_eval_tags[m->index % 2], l->matchups[m->index / 2].name, how, why,
                 ag_child_log_path(child));
        }
        break;
    case KIND_TOOL:
        break;
    }
}

static int s_member_init(launcher_t *l, member_t *m, kind_t kind, size_t index, const char *name,
                         char *const *argv, const char *out_path)
{
    char log[PATH_MAX + 256];
    snprintf(log, sizeof log, "%s/logs/%s.log", l->dir, name);
    *m = (member_t){.l = l, .kind = kind, .index = index};
    m->child = ag_child_create(&l->loop, name, argv, log, out_path, s_on_exit, m);
    return m->child ? 0 : -ENOMEM;
}

static int s_member_start(member_t *m)
{
    m->exited = false;
    return ag_child_start(m->child);
}

/* ---- the learner's Status, for the progress line ---- */

static void s_on_status(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                        size_t extra_len)
{
    launcher_t *l = arg;
    l->status_pending = false;
    if (status < 0)
        return;
    const Agora__V1__ControlReply *r = (const Agora__V1__ControlReply *)reply;
    if (r->body_case != AGORA__V1__CONTROL_REPLY__BODY_STATUS)
        return;
    const Agora__V1__StatusReply *s = r->status;
    status_t *st = &l->status;
    st->have = true;
    st->version = s->version;
    st->updates = s->updates;
    st->trajectories = s->trajectories;
    st->tokens_trained = s->tokens_trained;
    snprintf(st->phase, sizeof st->phase, "%s", s->phase ? s->phase : "");
    st->have_headline = false;
    for (size_t h = 0; l->live[h] && !st->have_headline; h++)
        for (size_t i = 0; i < s->n_metrics; i++)
            if (s->metrics[i]->name && !strcmp(s->metrics[i]->name, l->live[h]) &&
                isfinite(s->metrics[i]->value)) {
                st->headline = s->metrics[i]->value;
                snprintf(st->headline_name, sizeof st->headline_name, "%s", l->live[h]);
                st->have_headline = true;
                break;
            }
    l->status_ms = s_now(l);
}

static void s_ask_status(launcher_t *l)
{
    if (!l->control || l->status_pending)
        return;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    Agora__V1__StatusRequest body = AGORA__V1__STATUS_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
    req.status = &body;
    if (ag_rpc_call(l->control, &req.base, s_on_status, l) == 0)
        l->status_pending = true;
}

/* The headline figure from the newest metrics record, when Status has none. */
static void s_headline_from_metrics(launcher_t *l)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", l->dir);
    json_t *rec = ag_report_tail_record(path);
    if (!rec)
        return;
    for (size_t h = 0; l->live[h]; h++) {
        double v;
        if (ag_report_number(rec, l->live[h], &v) && isfinite(v)) {
            l->status.headline = v;
            l->status.have_headline = true;
            snprintf(l->status.headline_name, sizeof l->status.headline_name, "%s", l->live[h]);
            break;
        }
    }
    if (!l->status.have) {
        double v;
        if (ag_report_number(rec, "update", &v))
            l->status.updates = (uint64_t)v;
        if (ag_report_number(rec, "version", &v))
            l->status.version = (uint64_t)v;
        const char *p = json_string_value(json_object_get(rec, "phase"));
        if (p)
            snprintf(l->status.phase, sizeof l->status.phase, "%s", p);
    }
    json_decref(rec);
}

static void s_human_count(char *buf, size_t len, uint64_t n)
{
    if (n >= 10000000)
        snprintf(buf, len, "%.1fM", (double)n / 1e6);
    else if (n >= 10000)
        snprintf(buf, len, "%.1fk", (double)n / 1e3);
    else
        snprintf(buf, len, "%llu", (unsigned long long)n);
}

static void s_progress(launcher_t *l, bool force)
{
    uint64_t now = s_now(l);
    uint64_t every = l->tty ? 1000 : (uint64_t)l->o->progress_s * 1000;
    if (!force && now - l->last_line_ms < every)
        return;
    l->last_line_ms = now;
    bool stale = !l->status.have || now - l->status_ms > 3000;
    if (stale && l->phase == PHASE_TRAIN)
        s_headline_from_metrics(l);

    const char *phase = "starting";
    if (l->phase == PHASE_TRAIN)
        phase = l->status.phase[0] ? l->status.phase : "starting";
    else if (l->phase == PHASE_STOP)
        phase = "stopping";
    else if (l->phase == PHASE_EVAL)
        phase = "eval";
    else if (l->phase == PHASE_REPORT)
        phase = "report";
    uint64_t el = (now - l->t0_ms) / 1000;
    char line[512];
    int n = snprintf(line, sizeof line, "%s | %-9s %02llu:%02llu", l->o->name, phase,
                     (unsigned long long)(el / 60), (unsigned long long)(el % 60));
    if (l->phase >= PHASE_TRAIN && l->phase <= PHASE_STOP &&
        (l->status.have || l->status.updates)) {
        n += snprintf(line + n, sizeof line - (size_t)n, " | v%llu upd %llu",
                      (unsigned long long)l->status.version, (unsigned long long)l->status.updates);
    }
    if (l->phase >= PHASE_TRAIN && l->phase <= PHASE_STOP && l->status.have) {
        char traj[32], tok[32];
        s_human_count(traj, sizeof traj, l->status.trajectories);
        s_human_count(tok, sizeof tok, l->status.tokens_trained);
        n += snprintf(line + n, sizeof line - (size_t)n, " | traj %s tok %s", traj, tok);
    }
    if (l->status.have_headline && (l->phase == PHASE_TRAIN || l->phase == PHASE_STOP) &&
        n < (int)sizeof line)
        n += snprintf(line + n, sizeof line - (size_t)n, " | %s %.3f", l->status.headline_name,
                      l->status.headline);
    if (l->phase == PHASE_TRAIN && n < (int)sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, " | actors %zu/%zu", s_actors_alive(l),
                 l->n_actors);
    if (l->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        fflush(stderr);
        l->line_shown = true;
    } else {
        ag_info("agora", "%s", line);
    }
}

static void s_on_tick(uv_timer_t *t)
{
    launcher_t *l = t->data;
    if (l->phase == PHASE_TRAIN)
        s_ask_status(l);
    if (l->phase != PHASE_REPORT)
        s_progress(l, false);
}

/* Leaves the live line on the terminal as the record of where training ended. */
static void s_keep_line(launcher_t *l)
{
    if (l->line_shown) {
        fputc('\n', stderr);
        l->line_shown = false;
    }
}

static void s_on_signal(void *arg, int signum)
{
    launcher_t *l = arg;
    l->interrupts++;
    if (l->interrupts == 1)
        NOTE(l, AG_LOG_WARN,
             "%s: stopping the run (the learner checkpoints first); "
             "again to skip the evaluation",
             strsignal(signum));
    else if (l->interrupts == 2)
        NOTE(l, AG_LOG_WARN, "%s: skipping the evaluation; once more to kill everything now",
             strsignal(signum));
    else
        NOTE(l, AG_LOG_WARN, "%s: killing every process of the run", strsignal(signum));
}

/*
 * Runs the loop until done(l) holds; false when timeout_ms (0 = none)
 * passed first, or when stop(l) (may be NULL) became true.
 */
static bool s_wait(launcher_t *l, bool (*done)(launcher_t *), bool (*stop)(launcher_t *),
                   uint64_t timeout_ms)
{
    uint64_t deadline = s_now(l) + timeout_ms;
    while (!done(l)) {
        if ((timeout_ms && s_now(l) >= deadline) || (stop && stop(l)))
            return false;
        uv_run(&l->loop, UV_RUN_ONCE);
    }
    return true;
}

/* ---- stage conditions ---- */

static bool s_start_aborted(launcher_t *l)
{
    return l->failed || l->interrupts > 0;
}

static bool s_training_over(launcher_t *l)
{
    return l->failed || l->interrupts > 0 || !ag_child_running(l->learner.child);
}

static bool s_actors_stopped(launcher_t *l)
{
    for (size_t i = 0; i < l->n_actors; i++)
        if (ag_child_running(l->actors[i].child))
            return false;
    return true;
}

static bool s_learner_stopped(launcher_t *l)
{
    return !ag_child_running(l->learner.child);
}

static bool s_too_many_interrupts(launcher_t *l)
{
    return l->interrupts >= 3;
}

static bool s_extra_envs_stopped(launcher_t *l)
{
    for (size_t i = l->keep_envs; i < l->n_envs; i++)
        if (ag_child_running(l->envs[i].child))
            return false;
    return true;
}

static bool s_all_envs_stopped(launcher_t *l)
{
    for (size_t i = 0; i < l->n_envs; i++)
        if (ag_child_running(l->envs[i].child))
            return false;
    return true;
}

static size_t s_evals_running(launcher_t *l)
{
    size_t n = 0;
    for (size_t i = 0; i < 2 * l->n_matchups; i++)
        n += l->evals[i].child && ag_child_running(l->evals[i].child);
    return n;
}

static bool s_evals_done(launcher_t *l)
{
    return s_evals_running(l) == 0;
}

static bool s_eval_slot_free(launcher_t *l)
{
    return s_evals_running(l) < EVAL_PARALLEL;
}

static bool s_eval_abort(launcher_t *l)
{
    return l->interrupts >= 2;
}

/* ---- readiness: a request over the real protocol, answered by the service ---- */

/* What a service answered; may fail the run (a reply that shows it cannot serve it). */
typedef void (*answer_fn)(launcher_t *l, size_t i, const ProtobufCMessage *reply);

typedef struct ping {
    launcher_t *l;
    size_t i;
    bool *answered;
    answer_fn seen;
} ping_t;

static void s_on_ping(void *arg, int status, const ProtobufCMessage *reply, const uint8_t *extra,
                      size_t extra_len)
{
    (void)extra;
    (void)extra_len;
    ping_t *p = arg;
    if (status < 0)
        return;
    *p->answered = true; /* any reply, even an error, shows the service is serving */
    if (p->seen)
        p->seen(p->l, p->i, reply);
}

static bool s_all_answered(launcher_t *l)
{
    for (size_t i = 0; i < l->n_waiting; i++)
        if (!l->waiting[i])
            return false;
    return true;
}

/* "a, b and c": the labels of the endpoints that have not answered. */
static void s_unanswered(char *buf, size_t len, const char *const *labels, const bool *answered,
                         size_t n)
{
    size_t left = 0, at = 0;
    for (size_t i = 0; i < n; i++)
        left += !answered[i];
    buf[0] = '\0';
    for (size_t i = 0, k = 0; i < n && at < len; i++) {
        if (answered[i])
            continue;
        k++;
        at += (size_t)snprintf(buf + at, len - at, "%s%s",
                               k == 1 ? "" : (k == left ? " and " : ", "), labels[i]);
    }
}

/*
 * Sends req to each of the n endpoints, again and again while a service is
 * starting, until every one has answered (answered[i] set; seen, if not
 * NULL, looks at each reply) or timeout_ms passed. labels name the
 * endpoints in the log, which says every WAIT_NOTE_MS which ones it still
 * waits for; what is the request ("an env Hello"); hint ends the reason a
 * run fails for when one does not answer.
 */
static int s_wait_answers(launcher_t *l, const char *const *eps, const char *const *labels,
                          size_t n, const ProtobufCMessageDescriptor *reply, ProtobufCMessage *req,
                          bool *answered, answer_fn seen, const char *what, uint64_t timeout_ms,
                          const char *hint)
{
    ag_rpc_client_t **clients = calloc(n, sizeof *clients);
    ping_t *ctx = calloc(n, sizeof *ctx);
    char names[1024];
    int rc = -ENOMEM;
    if (!clients || !ctx)
        goto out;
    /* Short attempts, many of them: the server is starting, the first tries find nobody. */
    ag_rpc_client_opts_t co = {.timeout_ms = 250, .attempts = (int)(timeout_ms / 250) + 1};
    for (size_t i = 0; i < n; i++) {
        ctx[i] = (ping_t){l, i, &answered[i], seen};
        clients[i] = ag_rpc_client_create(&l->loop, l->zctx, eps[i], reply, &co);
        if (!clients[i])
            goto out;
        if ((rc = ag_rpc_call(clients[i], req, s_on_ping, &ctx[i])) < 0)
            goto out;
    }
    l->waiting = answered;
    l->n_waiting = n;
    uint64_t t0 = s_now(l);
    rc = -ETIMEDOUT;
    while (s_now(l) - t0 < timeout_ms) {
        uint64_t chunk = timeout_ms - (s_now(l) - t0);
        if (chunk > WAIT_NOTE_MS)
            chunk = WAIT_NOTE_MS;
        if (s_wait(l, s_all_answered, s_start_aborted, chunk)) {
            rc = 0;
            break;
        }
        if (s_start_aborted(l))
            break;
        s_unanswered(names, sizeof names, labels, answered, n);
        NOTE(l, AG_LOG_INFO, "waiting for %s to answer %s (%llu of %llu s)", names, what,
             (unsigned long long)((s_now(l) - t0) / 1000), (unsigned long long)(timeout_ms / 1000));
    }
    l->waiting = NULL;
    l->n_waiting = 0;
    if (rc < 0 && !s_start_aborted(l)) {
        s_unanswered(names, sizeof names, labels, answered, n);
        s_fail(l, "%s did not answer %s within %llu s; %s", names, what,
               (unsigned long long)(timeout_ms / 1000), hint);
    }
out:
    for (size_t i = 0; clients && i < n; i++)
        ag_rpc_client_destroy(&clients[i]);
    free(clients);
    free(ctx);
    return s_start_aborted(l) && rc == 0 ? -ECANCELED : rc;
}

/*
 * An env server's Hello: the run's game is the one game.name names, or the
 * first game the first server lists; every server must host it. What the
 * game declares about itself (players, metrics, headline) is kept.
 */
static void s_on_env_hello(launcher_t *l, size_t i, const ProtobufCMessage *msg)
{
    const Agora__V1__EnvReply *r = (const Agora__V1__EnvReply *)msg;
    const char *ep = l->env_eps[i];
    if (r->body_case != AGORA__V1__ENV_REPLY__BODY_HELLO || !r->hello) {
        bool err = r->body_case == AGORA__V1__ENV_REPLY__BODY_ERROR && r->error;
        s_fail(l, "env server %s answered Hello with %s%s", ep,
               err ? "an error: " : "another reply",
               err && r->error->message ? r->error->message : "");
        return;
    }
    const Agora__V1__HelloReply *h = r->hello;
    const char *want = ag_runfile_get(l->o->runfile, "game.name");
    if (!want || !*want)
        want = l->game; /* "" until the first server has answered */
    char why[768];
    const Agora__V1__GameSpec *spec = ag_game_find(h, want, why, sizeof why);
    if (!spec) {
        s_fail(l, "env server %s: %s", ep, why);
        return;
    }
    if (l->game[0])
        return; /* the declarations are taken from the first server that answered */
    ag_game_metrics_t *gm = ag_game_metrics_create(spec);
    if (!gm) {
        s_fail(l, "out of memory reading the game's declarations");
        return;
    }
    snprintf(l->game, sizeof l->game, "%s", spec->name);
    l->players = (int)spec->num_players;
    l->headline = ag_game_metrics_headline(gm);
    l->declared = json_array();
    for (size_t k = 0; k < ag_game_metrics_count(gm); k++) {
        const Agora__V1__MetricGoal goal = ag_game_metrics_goal(gm, k);
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(ag_game_metrics_name(gm, k)));
        json_object_set_new(j, "description", json_string(ag_game_metrics_description(gm, k)));
        json_object_set_new(j, "goal", json_string(s_goals[goal]));
        json_object_set_new(j, "headline", json_boolean((int)k == l->headline));
        if (ag_game_metrics_numerator(gm, k)) {
            json_object_set_new(j, "numerator", json_string(ag_game_metrics_numerator(gm, k)));
            json_object_set_new(j, "denominator",
                                json_string(ag_game_metrics_denominator(gm, k)));
        }
        json_array_append_new(l->declared, j);
    }
    ag_game_metrics_destroy(&gm);
}

static int s_wait_envs_ready(launcher_t *l)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "agora-launcher";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    size_t n = l->n_envs + l->n_attached;
    const char *eps[MAX_ENVS];
    char labels[MAX_ENVS][EP_LEN + 48];
    const char *lp[MAX_ENVS];
    for (size_t i = 0; i < n; i++) {
        eps[i] = l->env_eps[i];
        if (i < l->n_envs)
            snprintf(labels[i], sizeof labels[i], "env server %zu (%s)", i, eps[i]);
        else
            snprintf(labels[i], sizeof labels[i], "the attached env server %s", eps[i]);
        lp[i] = labels[i];
    }
    if (l->n_attached)
        NOTE(l, AG_LOG_INFO,
             "attaching %zu env server%s that agora does not start or supervise (run.env): %s",
             l->n_attached, l->n_attached > 1 ? "s" : "", l->o->env);
    char hint[PATH_MAX + 128];
    snprintf(hint, sizeof hint, "%s%s%s%s", l->n_envs ? "see " : "", l->n_envs ? l->dir : "",
             l->n_envs ? "/logs/" : "",
             !l->n_attached ? ""
             : l->n_envs    ? " (an attached one must be running and reachable from here)"
                            : "an attached env server must be running and reachable from here");
    return s_wait_answers(l, eps, lp, n, &agora__v1__env_reply__descriptor, &req.base, l->env_ready,
                          s_on_env_hello, "an env Hello", (uint64_t)l->o->env_wait_s * 1000, hint);
}

static int s_wait_reward_ready(launcher_t *l)
{
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    Agora__V1__RewardStatsRequest st = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &st;
    const char *ep = l->ep_reward, *label = "the reward server";
    char hint[PATH_MAX + 32];
    snprintf(hint, sizeof hint, "see %s/logs/reward.log", l->dir);
    return s_wait_answers(l, &ep, &label, 1, &agora__v1__reward_reply__descriptor, &req.base,
                          &l->reward_ready, NULL, "a reward Stats", READY_TIMEOUT_MS, hint);
}

/* ---- set-up ---- */

static int s_make_dir(launcher_t *l)
{
    const ag_launch_opts_t *o = l->o;
    char dir[PATH_MAX];
    if (*o->out_dir) {
        snprintf(dir, sizeof dir, "%s", o->out_dir);
    } else {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(dir, sizeof dir, "runs/%s-%s", o->name, stamp);
    }
    int rc = ag_launch_mkdirs(dir);
    if (rc < 0) {
        NOTE(l, AG_LOG_ERROR, "cannot create the run directory %s: %s", dir, strerror(-rc));
        return rc;
    }
    if (!realpath(dir, l->dir)) {
        NOTE(l, AG_LOG_ERROR, "%s: %s", dir, strerror(errno));
        return -errno;
    }
    if (s_file_exists(l->dir, "metrics.jsonl")) {
        NOTE(l, AG_LOG_ERROR,
             "%s already holds a run (metrics.jsonl); choose another --out directory", l->dir);
        return -EEXIST;
    }
    char logs[PATH_MAX + 16];
    snprintf(logs, sizeof logs, "%s/logs", l->dir);
    if ((rc = ag_launch_mkdirs(logs)) < 0) {
        NOTE(l, AG_LOG_ERROR, "cannot create %s: %s", logs, strerror(-rc));
        return rc;
    }
    return 0;
}

static int s_set(launcher_t *l, const char *key, const char *value)
{
    if (ag_runfile_set(l->o->runfile, key, value) < 0) {
        NOTE(l, AG_LOG_ERROR, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* Writes DIR/run.ini, the one file all children read: the run file as the launcher completed it. */
static int s_save_run_ini(launcher_t *l)
{
    const ag_launch_opts_t *o = l->o;
    snprintf(l->run_ini, sizeof l->run_ini, "%s/run.ini", l->dir);
    char header[PATH_MAX + 512];
    snprintf(header, sizeof header,
             "Effective run file of the agora run '%s': %s\n"
             "with the endpoints and output directory the launcher chose. Every process of\n"
             "the run read this file; per-process values (an env server's bind address, an\n"
             "actor's id and seed) were given on its command line (see logs/).",
             o->name, o->origin);
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp", l->run_ini);
    FILE *f = fopen(tmp, "w");
    if (!f || ag_runfile_write(o->runfile, f, header) < 0 || fclose(f) != 0 ||
        rename(tmp, l->run_ini) != 0) {
        NOTE(l, AG_LOG_ERROR, "cannot write %s: %s", l->run_ini, strerror(errno));
        return -EIO;
    }
    return 0;
}

/*
 * Sets key to the env servers of the run. With env servers of its own the
 * launcher's endpoints replace what the run file says (it cannot know their
 * ports); with attached ones only, an endpoint list the run file gives
 * stays: those servers are the user's.
 */
static int s_set_envs(launcher_t *l, const char *key, const char *envs)
{
    const char *given = ag_runfile_get(l->o->runfile, key);
    if (given && *given && strcmp(given, envs)) {
        if (l->n_envs == 0) {
            NOTE(l, AG_LOG_INFO, "%s = %s, as the run file says", key, given);
            return 0;
        }
        NOTE(l, AG_LOG_WARN,
             "%s = %s replaced by the env servers agora starts (for servers of your own: "
             "[run] env_servers = 0, env = ENDPOINT,...)",
             key, given);
    }
    return s_set(l, key, envs);
}

/* Chooses every endpoint and writes DIR/run.ini. */
static int s_write_run_file(launcher_t *l)
{
    const ag_launch_opts_t *o = l->o;
    size_t n_ports = 3 + l->n_envs + (o->reward_server ? 1 : 0);
    int ports[64];
    int rc = s_pick_ports(o->host, ports, n_ports);
    if (rc < 0) {
        NOTE(l, AG_LOG_ERROR, "cannot find free ports on %s: %s", o->host, strerror(-rc));
        return rc;
    }
    snprintf(l->ep_traj, sizeof l->ep_traj, "tcp://%s:%d", o->host, ports[0]);
    snprintf(l->ep_weights, sizeof l->ep_weights, "tcp://%s:%d", o->host, ports[1]);
    snprintf(l->ep_control, sizeof l->ep_control, "tcp://%s:%d", o->host, ports[2]);
    for (size_t i = 0; i < l->n_envs; i++)
        snprintf(l->env_eps[i], sizeof l->env_eps[i], "tcp://%s:%d", o->host, ports[3 + i]);
    /* Every env server serves training; the evaluation keeps env server 0 and the attached. */
    char envs[MAX_ENVS * EP_LEN] = "", eval_envs[MAX_ENVS * EP_LEN] = "";
    size_t at = 0, eat = 0;
    for (size_t i = 0; i < l->n_envs + l->n_attached; i++) {
        at += (size_t)snprintf(envs + at, sizeof envs - at, "%s%s", i ? "," : "", l->env_eps[i]);
        if (i == 0 || i >= l->n_envs)
            eat += (size_t)snprintf(eval_envs + eat, sizeof eval_envs - eat, "%s%s", eat ? "," : "",
                                    l->env_eps[i]);
    }
    char num[32];
    if (s_set(l, "run.name", o->name) || s_set(l, "run.out", l->dir) ||
        s_set(l, "learner.out", l->dir) || s_set(l, "learner.trajectories", l->ep_traj) ||
        s_set(l, "learner.weights", l->ep_weights) || s_set(l, "learner.control", l->ep_control) ||
        s_set_envs(l, "learner.env", envs) || s_set(l, "actor.learner_trajectories", l->ep_traj) ||
        s_set(l, "actor.learner_weights", l->ep_weights) ||
        s_set(l, "actor.learner_control", l->ep_control) || s_set_envs(l, "actor.env", envs) ||
        (o->eval && s_set_envs(l, "eval.env", eval_envs)) ||
        (*o->env && s_set(l, "run.env", o->env)))
        return -ENOMEM;
    if (o->reward_server) {
        /* One reward server for every client of the run; its checkpoints go to DIR/reward. */
        char rdir[PATH_MAX + 16];
        snprintf(l->ep_reward, sizeof l->ep_reward, "tcp://%s:%d", o->host, ports[3 + l->n_envs]);
        snprintf(rdir, sizeof rdir, "%s/reward", l->dir);
        /* reward.init names a file of this run (e.g. the learner's reference.ckpt). */
        const char *init = ag_runfile_get(o->runfile, "reward.init");
        char init_path[PATH_MAX + 512];
        if (init && *init && *init != '/') {
            snprintf(init_path, sizeof init_path, "%s/%s", l->dir, init);
            if (s_set(l, "reward.init", init_path))
                return -ENOMEM;
        }
        const char *model = ag_runfile_get(o->runfile, "actor.reward_model");
        if (s_set(l, "reward.bind", l->ep_reward) || s_set(l, "actor.reward", l->ep_reward) ||
            s_set(l, "reward.out", rdir) || s_set(l, "env.reward", l->ep_reward) ||
            s_set(l, "eval.reward", l->ep_reward) ||
            (model && *model && !ag_runfile_get(o->runfile, "eval.reward_model") &&
             s_set(l, "eval.reward_model", model)))
            return -ENOMEM;
    }
    snprintf(num, sizeof num, "%ld", o->actors);
    if (s_set(l, "run.actors", num))
        return -ENOMEM;
    snprintf(num, sizeof num, "%ld", o->env_servers);
    if (s_set(l, "run.env_servers", num))
        return -ENOMEM;
    return s_save_run_ini(l);
}

/*
 * Once the env servers have said what the game is: the evaluation's
 * matchups (a mistake in [eval] fails the run now, not after training), the
 * figures the progress line shows, and the game's name in run.ini, so that
 * every process plays the game the launcher reports.
 */
static int s_take_game(launcher_t *l)
{
    char err[512];
    if (l->o->eval && ag_matchup_plan(l->o->runfile, l->players, l->matchups, AG_MATCHUP_MAX,
                                      &l->n_matchups, err, sizeof err) < 0) {
        s_fail(l, "[eval]: %s", err);
        return -1;
    }
    size_t n = 0;
    if (l->headline >= 0)
        l->live[n++] = json_string_value(
            json_object_get(json_array_get(l->declared, (size_t)l->headline), "name"));
    if (l->o->reward_server)
        l->live[n++] = "rm_pairwise_accuracy";
    l->live[n] = NULL;
    char seats[64 * AG_MATCHUP_MAX] = "";
    for (size_t i = 0, at = 0; i < l->n_matchups && at < sizeof seats; i++)
        at += (size_t)snprintf(seats + at, sizeof seats - at, "%s%s", i ? ", " : "",
                               l->matchups[i].name);
    NOTE(l, AG_LOG_INFO, "game %s: %d players, %zu declared metrics, headline %s%s%s", l->game,
         l->players, json_array_size(l->declared),
         l->headline >= 0 ? l->live[0] : "none (reported by the mean return per seat)",
         l->n_matchups ? "; evaluation: " : "", seats);
    if (s_set(l, "game.name", l->game) < 0 || s_save_run_ini(l) < 0)
        return -1;
    return 0;
}

static int s_start_cluster(launcher_t *l)
{
    const ag_launch_opts_t *o = l->o;
    char name[64];
    if (o->reward_server) {
        /* First: env servers with a learned judge and actors that score need it. */
        char *argv[] = {l->bins[BIN_REWARD], "--config", l->run_ini, NULL};
        if (s_member_init(l, &l->reward, KIND_REWARD, 0, "reward", argv, NULL) < 0 ||
            s_member_start(&l->reward) < 0) {
            s_fail(l, "cannot start the reward server");
            return -1;
        }
        NOTE(l, AG_LOG_INFO, "reward server starting on %s", l->ep_reward);
        if (s_wait_reward_ready(l) < 0)
            return -1;
    }
    for (size_t i = 0; i < l->n_envs; i++) {
        snprintf(name, sizeof name, "env-%zu", i);
        char *argv[] = {l->bins[BIN_ENV], "--config",   l->run_ini, OPT_ENV_BIND,
                        l->env_eps[i],    OPT_ENV_NAME, name,       NULL};
        if (s_member_init(l, &l->envs[i], KIND_ENV, i, name, argv, NULL) < 0 ||
            s_member_start(&l->envs[i]) < 0) {
            s_fail(l, "cannot start env server %zu", i);
            return -1;
        }
    }
    if (l->n_envs)
        NOTE(l, AG_LOG_INFO, "%zu env server%s starting on %s%s", l->n_envs,
             l->n_envs > 1 ? "s" : "", l->env_eps[0], l->n_envs > 1 ? ", ..." : "");
    if (s_wait_envs_ready(l) < 0 || s_take_game(l) < 0)
        return -1;

    char *largv[] = {l->bins[BIN_LEARNER], "--config", l->run_ini, NULL};
    if (s_member_init(l, &l->learner, KIND_LEARNER, 0, "learner", largv, NULL) < 0 ||
        s_member_start(&l->learner) < 0) {
        s_fail(l, "cannot start the learner");
        return -1;
    }
    l->train_t0_ms = s_now(l);
    for (size_t i = 0; i < l->n_actors; i++) {
        char seed[32], metrics[PATH_MAX + 128];
        snprintf(name, sizeof name, "actor-%zu", i);
        snprintf(seed, sizeof seed, "%lld", (long long)o->seed + (long long)i);
        snprintf(metrics, sizeof metrics, "%s/logs/%s.jsonl", l->dir, name);
        /* The actor's name is its id in trajectory ids and the learner's per-actor counts. */
        char *argv[] = {l->bins[BIN_ACTOR], "--config", l->run_ini,        OPT_ACTOR_ID, name,
                        OPT_ACTOR_SEED,     seed,       OPT_ACTOR_METRICS, metrics,      NULL};
        if (s_member_init(l, &l->actors[i], KIND_ACTOR, i, name, argv, NULL) < 0 ||
            s_member_start(&l->actors[i]) < 0) {
            s_fail(l, "cannot start actor %zu", i);
            return -1;
        }
    }
    NOTE(l, AG_LOG_INFO, "learner and %zu actor%s started; logs in %s/logs", l->n_actors,
         l->n_actors > 1 ? "s" : "", l->dir);
    ag_rpc_client_opts_t co = {.timeout_ms = STATUS_TIMEOUT_MS, .attempts = 1};
    l->control = ag_rpc_client_create(&l->loop, l->zctx, l->ep_control,
                                      &agora__v1__control_reply__descriptor, &co);
    if (!l->control)
        NOTE(l, AG_LOG_WARN, "no control client; the progress line reads metrics.jsonl instead");
    return 0;
}

/* ---- shutdown ---- */

/* Asks every member of ms to stop (restarts are off from now on). */
static void s_kill_all(member_t *ms, size_t n, int signum)
{
    for (size_t i = 0; i < n; i++) {
        if (!ms[i].child)
            continue;
        ms[i].stopping = true;
        ag_child_cancel_restart(ms[i].child);
        ag_child_kill(ms[i].child, signum);
    }
}

/* Stops actors, then the learner (which checkpoints), then the env servers the eval does not need.
 */
static void s_stop_cluster(launcher_t *l)
{
    l->phase = PHASE_STOP;
    ag_rpc_client_destroy(&l->control);
    l->status_pending = false;

    s_kill_all(l->actors, l->n_actors, SIGTERM);
    if (!s_wait(l, s_actors_stopped, NULL, ACTOR_STOP_TIMEOUT_MS)) {
        NOTE(l, AG_LOG_WARN, "actors did not stop within %d s; killing them",
             ACTOR_STOP_TIMEOUT_MS / 1000);
        s_kill_all(l->actors, l->n_actors, SIGKILL);
        s_wait(l, s_actors_stopped, NULL, 0);
    }

    if (l->learner.child && ag_child_running(l->learner.child)) {
        NOTE(l, AG_LOG_INFO, "stopping the learner (it writes its checkpoint first)");
        l->learner.stopping = true;
        ag_child_kill(l->learner.child, SIGTERM);
        if (!s_wait(l, s_learner_stopped, s_too_many_interrupts,
                    (uint64_t)l->o->stop_timeout_s * 1000)) {
            s_fail(l,
                   "the learner did not exit in time after SIGTERM (run.stop_timeout_s = %ld); "
                   "killed it (see %s)",
                   l->o->stop_timeout_s, ag_child_log_path(l->learner.child));
            ag_child_kill(l->learner.child, SIGKILL);
            s_wait(l, s_learner_stopped, NULL, 0);
        }
    }

    /* Env server 0 serves the evaluation, if there is one. */
    l->keep_envs = (l->o->eval && !l->failed && l->interrupts < 2 && l->n_envs) ? 1 : 0;
    size_t keep = l->keep_envs;
    s_kill_all(l->envs + keep, l->n_envs - keep, SIGTERM);
    if (!s_wait(l, s_extra_envs_stopped, NULL, ENV_STOP_TIMEOUT_MS)) {
        s_kill_all(l->envs + keep, l->n_envs - keep, SIGKILL);
        s_wait(l, s_extra_envs_stopped, NULL, 0);
    }
}

/* ---- evaluation ---- */

static json_t *s_read_eval(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    json_t *last = NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_t *j = json_loadb(line, (size_t)n, 0, NULL);
        if (json_is_object(j)) {
            json_decref(last);
            last = j;
        } else {
            json_decref(j);
        }
    }
    free(line);
    fclose(f);
    return last;
}

/* "eval-final.json", or "eval-final-self_vs_bot_x.json" when there are several matchups. */
static void s_eval_file(const launcher_t *l, size_t e, char *buf, size_t len, const char *ext)
{
    const ag_matchup_t *m = &l->matchups[e / 2];
    snprintf(buf, len, "eval-%s%s%s%s", s_eval_tags[e % 2], l->n_matchups > 1 ? "-" : "",
             l->n_matchups > 1 ? m->name : "", ext);
}

/* Starts agora-eval number e: matchup e / 2, the warm start (e even) or the final policy. */
static int s_start_eval(launcher_t *l, size_t e)
{
    const ag_launch_opts_t *o = l->o;
    const ag_matchup_t *m = &l->matchups[e / 2];
    char ckpt[PATH_MAX + 32], out[PATH_MAX + 200], name[160], games[32], seed[32];
    snprintf(ckpt, sizeof ckpt, "%s/%s", l->dir, s_eval_ckpts[e % 2]);
    char file[160];
    s_eval_file(l, e, file, sizeof file, ".json");
    snprintf(out, sizeof out, "%s/%s", l->dir, file);
    s_eval_file(l, e, name, sizeof name, "");
    snprintf(games, sizeof games, "%ld", o->eval_games);
    snprintf(seed, sizeof seed, "%ld", o->eval_seed);
    if (access(ckpt, R_OK) != 0) {
        NOTE(l, AG_LOG_ERROR, "no %s to evaluate: %s", ckpt, strerror(errno));
        return -1;
    }
    /* Every seat is given here: the run file's [eval] lists are matchups, not seats. */
    char seat_opts[AG_MATCHUP_MAX_SEATS][24];
    char *argv[16 + 2 * AG_MATCHUP_MAX_SEATS] = {
        l->bins[BIN_EVAL], "--config", l->run_ini, "--policy", ckpt,
        "--games",         games,      "--seed",   seed};
    int argc = 9;
    for (int s = 0; s < m->n_seats; s++) {
        snprintf(seat_opts[s], sizeof seat_opts[s], "--seat%d", s);
        argv[argc++] = seat_opts[s];
        argv[argc++] = (char *)m->seats[s];
    }
    argv[argc] = NULL;
    if (s_member_init(l, &l->evals[e], KIND_EVAL, e, name, argv, out) < 0 ||
        s_member_start(&l->evals[e]) < 0) {
        NOTE(l, AG_LOG_ERROR, "cannot start %s", name);
        return -1;
    }
    return 0;
}

/*
 * Plays the held-out games of every matchup for the warm start and for the
 * final policy, EVAL_PARALLEL agora-evals at a time. Returns the results as
 * a JSON array, one object per matchup: {"name", "seats": [...],
 * "warmstart": {...}, "final": {...}} (what agora-eval printed; a missing
 * one failed), or NULL when the evaluation was interrupted or timed out.
 */
static json_t *s_evaluate(launcher_t *l)
{
    const ag_launch_opts_t *o = l->o;
    l->phase = PHASE_EVAL;
    size_t n = 2 * l->n_matchups;
    NOTE(l, AG_LOG_INFO,
         "evaluating the warm start and the final policy on %ld held-out games (seeds from %ld)"
         ", %zu matchup%s",
         o->eval_games, o->eval_seed, l->n_matchups, l->n_matchups > 1 ? "s" : "");
    bool stopped = false;
    for (size_t e = 0; e < n && !stopped; e++) {
        stopped = !s_wait(l, s_eval_slot_free, s_eval_abort, EVAL_TIMEOUT_MS);
        if (!stopped)
            s_start_eval(l, e);
    }
    if (stopped || !s_wait(l, s_evals_done, s_eval_abort, EVAL_TIMEOUT_MS)) {
        NOTE(l, AG_LOG_WARN, "evaluation %s; stopping it",
             l->interrupts >= 2 ? "interrupted" : "timed out");
        for (size_t e = 0; e < n; e++)
            if (l->evals[e].child)
                ag_child_kill(l->evals[e].child, SIGKILL);
        s_wait(l, s_evals_done, NULL, 0);
        return NULL;
    }
    json_t *res = json_array();
    for (size_t k = 0; k < l->n_matchups; k++) {
        const ag_matchup_t *m = &l->matchups[k];
        json_t *mj = json_object(), *seats = json_array();
        json_object_set_new(mj, "name", json_string(m->name));
        for (int s = 0; s < m->n_seats; s++)
            json_array_append_new(seats, json_string(m->seats[s]));
        json_object_set_new(mj, "seats", seats);
        for (size_t e = 2 * k; e < 2 * k + 2; e++) {
            member_t *mm = &l->evals[e];
            if (!mm->child || mm->exit_status != 0 || mm->term_signal)
                continue;
            char file[160], out[PATH_MAX + 200];
            s_eval_file(l, e, file, sizeof file, ".json");
            snprintf(out, sizeof out, "%s/%s", l->dir, file);
            json_t *j = s_read_eval(out);
            if (!j) {
                NOTE(l, AG_LOG_ERROR, "agora-eval printed no JSON object into %s", out);
                continue;
            }
            json_object_set_new(mj, s_eval_tags[e % 2], j);
        }
        json_array_append_new(res, mj);
    }
    return res;
}

/* ---- the reward server: its own held-out figures, then a checkpointing stop ---- */

static void s_on_reward_stats(void *arg, int status, const ProtobufCMessage *reply,
                              const uint8_t *extra, size_t extra_len)
{
    (void)extra;
    (void)extra_len;
    launcher_t *l = arg;
    l->reward_stats_done = true;
    const Agora__V1__RewardReply *r = (const Agora__V1__RewardReply *)reply;
    if (status < 0 || r->body_case != AGORA__V1__REWARD_REPLY__BODY_STATS)
        return;
    json_t *models = json_object();
    for (size_t i = 0; i < r->stats->n_models; i++) {
        const Agora__V1__RewardModelStats *m = r->stats->models[i];
        json_t *j = json_object();
        json_object_set_new(j, "version", json_integer((json_int_t)m->version));
        json_object_set_new(j, "labels", json_integer((json_int_t)m->labels));
        json_object_set_new(j, "updates", json_integer((json_int_t)m->updates));
        for (size_t k = 0; k < m->n_metrics; k++)
            if (isfinite(m->metrics[k]->value))
                json_object_set_new(j, m->metrics[k]->name, json_real(m->metrics[k]->value));
        json_object_set_new(models, m->name, j);
    }
    json_decref(l->reward_stats);
    l->reward_stats = models;
}

static bool s_reward_answered(launcher_t *l)
{
    return l->reward_stats_done || !ag_child_running(l->reward.child);
}

static bool s_reward_stopped(launcher_t *l)
{
    return !ag_child_running(l->reward.child);
}

static void s_finish_reward(launcher_t *l)
{
    if (!l->reward.child)
        return;
    ag_rpc_client_opts_t co = {.timeout_ms = STATUS_TIMEOUT_MS, .attempts = 2};
    ag_rpc_client_t *c = ag_rpc_client_create(&l->loop, l->zctx, l->ep_reward,
                                              &agora__v1__reward_reply__descriptor, &co);
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    Agora__V1__RewardStatsRequest st = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &st;
    if (c && ag_child_running(l->reward.child) &&
        ag_rpc_call(c, &req.base, s_on_reward_stats, l) == 0)
        s_wait(l, s_reward_answered, s_too_many_interrupts, 3 * STATUS_TIMEOUT_MS);
    ag_rpc_client_destroy(&c);
    l->reward.stopping = true;
    ag_child_cancel_restart(l->reward.child);
    ag_child_kill(l->reward.child, SIGTERM);
    if (!s_wait(l, s_reward_stopped, s_too_many_interrupts,
                (uint64_t)l->o->stop_timeout_s * 1000)) {
        NOTE(l, AG_LOG_WARN, "the reward server did not exit in time after SIGTERM; killed it");
        ag_child_kill(l->reward.child, SIGKILL);
        s_wait(l, s_reward_stopped, NULL, 0);
    }
}

/* ---- the report ---- */

/* The latest value of a counter: the last record's, or the last Status's if larger. */
static void s_set_count(json_t *summary, const char *key, json_t *rec, const char *rec_key,
                        uint64_t from_status)
{
    double v = 0;
    uint64_t n = from_status;
    if (rec && ag_report_number(rec, rec_key, &v) && v > (double)n)
        n = (uint64_t)v;
    json_object_set_new(summary, key, json_integer((json_int_t)n));
}

/*
 * A per-update figure summed over every PPO record (trajectories and tokens
 * trained); the Status total only when the records do not carry it.
 */
static void s_set_sum(json_t *summary, const char *key, json_t *records, const char *rec_key,
                      uint64_t from_status)
{
    double sum = 0, v;
    bool found = false;
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        const char *p = json_string_value(json_object_get(rec, "phase"));
        if (p && !strcmp(p, "ppo") && ag_report_number(rec, rec_key, &v)) {
            sum += v;
            found = true;
        }
    }
    if (!found)
        sum = (double)from_status;
    json_object_set_new(summary, key, json_integer((json_int_t)llround(sum)));
}

static void s_draw_curves(launcher_t *l, json_t *records)
{
    /* The game's headline first (a panel of its own), then its other declared metrics. */
    const char *names[64 + 1];
    size_t n = 0;
    if (l->headline >= 0)
        names[n++] = json_string_value(
            json_object_get(json_array_get(l->declared, (size_t)l->headline), "name"));
    for (size_t i = 0; i < json_array_size(l->declared) && n < 64; i++)
        if ((int)i != l->headline)
            names[n++] = json_string_value(json_object_get(json_array_get(l->declared, i), "name"));
    names[n] = NULL;
    int panels = ag_report_write_plot(l->dir, records, l->headline >= 0, names);
    if (panels <= 0) {
        if (panels == 0)
            NOTE(l, AG_LOG_WARN, "no PPO records in metrics.jsonl: no curves to draw");
        return;
    }
    char *argv[] = {(char *)l->o->gnuplot, "curves.gp", NULL};
    member_t m;
    if (s_member_init(l, &m, KIND_TOOL, 0, "gnuplot", argv, NULL) < 0)
        return;
    /* gnuplot reads curves.gp and writes curves.png relative to the run directory. */
    char cwd[PATH_MAX];
    int rc = -1;
    if (getcwd(cwd, sizeof cwd) && chdir(l->dir) == 0) {
        rc = s_member_start(&m);
        if (chdir(cwd) != 0)
            NOTE(l, AG_LOG_WARN, "cannot return to %s: %s", cwd, strerror(errno));
    }
    if (rc < 0) {
        NOTE(l, AG_LOG_WARN,
             "gnuplot (%s) could not be started: no curves.png (the table is "
             "in curves.dat, the script in curves.gp)",
             l->o->gnuplot);
        ag_child_destroy(&m.child);
        return;
    }
    while (ag_child_running(m.child))
        uv_run(&l->loop, UV_RUN_ONCE);
    if (m.exit_status != 0 || m.term_signal)
        NOTE(l, AG_LOG_WARN, "gnuplot failed; see %s", ag_child_log_path(m.child));
    else
        NOTE(l, AG_LOG_INFO, "learning curves: %s/curves.png", l->dir);
    ag_child_destroy(&m.child);
}

/* Eval output fields that say how the evaluation ran, not how well the policy played. */
static bool s_is_bookkeeping(const char *key)
{
    static const char *const keys[] = {"games",           "seed",         "wall_s",
                                       "tokens_sampled",  "tokens_per_s", "sampler_tokens_per_s",
                                       "dropped_context", "env_errors",   "env_overloaded",
                                       "headline_value"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(key, keys[i]))
            return true;
    return false;
}

/*
 * summary.json's "headline": the game's declared headline metric (name,
 * goal, description) and its warm-start and final values in the first
 * matchup; for a game that declares none, the evaluated policy's mean
 * return (what agora-eval heads its line with). null without either.
 */
static json_t *s_headline(const launcher_t *l, json_t *eval)
{
    json_t *first = json_array_get(eval, 0);
    json_t *h = json_object();
    json_t *decl = l->headline >= 0 ? json_array_get(l->declared, (size_t)l->headline) : NULL;
    const char *name =
        decl ? json_string_value(json_object_get(decl, "name"))
             : json_string_value(json_object_get(json_object_get(first, "final"), "headline"));
    if (!name) {
        json_decref(h);
        return json_null();
    }
    json_object_set_new(h, "name", json_string(name));
    if (decl) {
        json_object_set(h, "goal", json_object_get(decl, "goal"));
        json_object_set(h, "description", json_object_get(decl, "description"));
    } else {
        json_object_set_new(h, "goal", json_string(s_goals[1]));
        json_object_set_new(h, "description",
                            json_string("the evaluated policy's mean return: the game declares "
                                        "no headline metric"));
    }
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(json_object_get(first, s_eval_tags[i]), name);
        json_object_set(h, s_eval_tags[i], json_is_number(v) ? v : json_null());
    }
    if (first)
        json_object_set(h, "matchup", json_object_get(first, "name"));
    return h;
}

static int s_report(launcher_t *l, json_t *eval)
{
    const ag_launch_opts_t *o = l->o;
    l->phase = PHASE_REPORT;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", l->dir);
    size_t bad = 0;
    json_t *records = ag_report_read_metrics(path, &bad);
    if (!records)
        NOTE(l, AG_LOG_WARN, "no metrics.jsonl in %s", l->dir);
    else if (bad)
        NOTE(l, AG_LOG_WARN, "%zu line%s of metrics.jsonl were not JSON objects (skipped)", bad,
             bad > 1 ? "s" : "");
    json_t *last_ppo = ag_report_last_record(records, "ppo");
    json_t *last_warm = ag_report_last_record(records, "warmstart");

    json_t *s = json_object();
    json_object_set_new(s, "name", json_string(o->name));
    /* The game the env servers named; the run file's, when none answered. */
    const char *game = l->game[0] ? l->game : ag_runfile_get(o->runfile, "game.name");
    json_object_set_new(s, "game", game && *game ? json_string(game) : json_null());
    json_object_set_new(s, "run_dir", json_string(l->dir));
    json_object_set_new(s, "run_file", json_string(o->origin));
    json_object_set_new(s, "status",
                        json_string(l->failed           ? "failed"
                                    : l->interrupts > 0 ? "interrupted"
                                                        : "completed"));
    if (l->failed)
        json_object_set_new(s, "error", json_string(l->fail_why));
    json_object_set_new(s, "wall_s", json_real((double)(s_now(l) - l->t0_ms) / 1000.0));
    uint64_t t1 = l->train_t1_ms ? l->train_t1_ms : s_now(l);
    json_object_set_new(s, "train_s",
                        json_real(l->train_t0_ms ? (double)(t1 - l->train_t0_ms) / 1000.0 : 0));
    s_set_count(s, "updates", last_ppo, "update", l->status.updates);
    s_set_count(s, "version", last_ppo, "version", l->status.version);
    /* Records carry per-update counts; Status carries totals (possibly a moment old). */
    s_set_sum(s, "trajectories", records, "trajectories", l->status.trajectories);
    s_set_sum(s, "tokens_trained", records, "tokens", l->status.tokens_trained);
    /*
     * PPO time: from the end of the warm start to the last update, on the
     * learner's clock; the throughput figure the bench run file is about.
     */
    double t_end, t_begin = 0;
    if (last_ppo && ag_report_number(last_ppo, "time_s", &t_end)) {
        if (last_warm)
            ag_report_number(last_warm, "time_s", &t_begin);
        double ppo_s = t_end - t_begin;
        json_t *tok = json_object_get(s, "tokens_trained");
        json_object_set_new(s, "ppo_s", json_real(ppo_s));
        if (ppo_s > 0)
            json_object_set_new(s, "tokens_trained_per_s",
                                json_real((double)json_integer_value(tok) / ppo_s));
    }
    if (l->status.have)
        json_object_set_new(s, "trajectories_accepted",
                            json_integer((json_int_t)l->status.trajectories));
    json_object_set_new(s, "actors", json_integer(o->actors));
    json_object_set_new(s, "env_servers", json_integer(o->env_servers));
    json_int_t actor_restarts = 0, env_restarts = 0;
    for (size_t i = 0; i < l->n_actors; i++)
        actor_restarts += l->actors[i].restarts;
    for (size_t i = 0; i < l->n_envs; i++)
        env_restarts += l->envs[i].restarts;
    json_object_set_new(s, "actor_restarts", json_integer(actor_restarts));
    json_object_set_new(s, "env_restarts", json_integer(env_restarts));
    json_object_set_new(s, "metrics_records", json_integer((json_int_t)json_array_size(records)));
    json_object_set(s, "final_metrics", last_ppo ? last_ppo : json_null());
    json_object_set(s, "warmstart_metrics", last_warm ? last_warm : json_null());

    json_t *ev = json_object();
    json_object_set_new(ev, "games", json_integer(o->eval_games));
    json_object_set_new(ev, "seed", json_integer(o->eval_seed));
    json_object_set_new(ev, "matchups", eval ? json_incref(eval) : json_array());
    /*
     * Every figure of the evaluations, flat: KEY_warmstart (the warm start)
     * and KEY (the final policy), and with several matchups KEY_warmstart@M
     * and KEY@M for matchup M.
     */
    size_t k;
    json_t *mj;
    json_array_foreach(eval, k, mj)
    {
        const char *mname = json_string_value(json_object_get(mj, "name"));
        for (int i = 0; i < 2; i++) {
            const char *key;
            json_t *v;
            json_object_foreach(json_object_get(mj, s_eval_tags[i]), key, v)
            {
                if (!json_is_number(v) || s_is_bookkeeping(key))
                    continue;
                char flat[256];
                snprintf(flat, sizeof flat, "%s%s%s%s", key, i == 0 ? "_warmstart" : "",
                         json_array_size(eval) > 1 ? "@" : "",
                         json_array_size(eval) > 1 ? mname : "");
                if (json_object_get(s, flat))
                    NOTE(l, AG_LOG_WARN,
                         "the evaluation's %s is also a figure of the run: "
                         "summary.json keeps the run's",
                         flat);
                else
                    json_object_set(s, flat, v);
            }
        }
    }
    json_object_set_new(s, "headline", s_headline(l, eval));
    json_object_set(s, "declared_metrics", l->declared ? l->declared : json_null());
    json_object_set_new(s, "eval", ev);
    if (l->reward_stats) {
        /* The reward model's own held-out figure, next to the evaluation's. */
        json_object_set(s, "reward_models", l->reward_stats);
        const char *model = ag_runfile_get(o->runfile, "actor.reward_model");
        json_t *m = json_object_get(l->reward_stats, model && *model ? model : "default");
        json_t *acc = json_object_get(m, "pairwise_accuracy");
        if (json_is_number(acc))
            json_object_set(s, "rm_heldout_pairwise_accuracy", acc);
    }

    snprintf(path, sizeof path, "%s/summary.json", l->dir);
    int rc = ag_report_write_json(path, s);
    if (rc == 0)
        NOTE(l, AG_LOG_INFO, "summary: %s", path);

    /* One human line per matchup and headline figure: warm start -> final. */
    json_array_foreach(eval, k, mj)
    {
        const char *names[] = {
            json_string_value(json_object_get(json_object_get(s, "headline"), "name")),
            o->reward_server ? "rm_pairwise_accuracy" : NULL};
        for (size_t h = 0; h < 2; h++) {
            json_t *w = json_object_get(json_object_get(mj, "warmstart"), names[h] ? names[h] : "");
            json_t *f = json_object_get(json_object_get(mj, "final"), names[h] ? names[h] : "");
            if (!json_is_number(w) && !json_is_number(f))
                continue;
            char wb[32] = "n/a", fb[32] = "n/a";
            if (json_is_number(w))
                snprintf(wb, sizeof wb, "%.3f", json_number_value(w));
            if (json_is_number(f))
                snprintf(fb, sizeof fb, "%.3f", json_number_value(f));
            printf("%s: warm start %s -> final %s (%ld held-out games, %s)\n", names[h], wb, fb,
                   o->eval_games, json_string_value(json_object_get(mj, "name")));
        }
    }
    printf("run directory: %s\n", l->dir);
    fflush(stdout);

    if (o->plot && records)
        s_draw_curves(l, records);
    json_decref(s);
    json_decref(records);
    return rc;
}

/* ---- the job ---- */

/*
 * A learner that made no PPO update trained nothing: the run failed, with
 * what the logs say about why (an actor's last complaint when no trajectory
 * reached the learner).
 */
static void s_check_trained(launcher_t *l)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/metrics.jsonl", l->dir);
    json_t *records = ag_report_read_metrics(path, NULL);
    double updates = (double)l->status.updates;
    json_t *last = ag_report_last_record(records, "ppo");
    if (last)
        ag_report_number(last, "update", &updates);
    json_decref(records);
    if (updates > 0)
        return;
    char why[600] = "", line[512];
    if (l->status.trajectories == 0) {
        /* What an actor last complained about, else its last word (its final counts). */
        size_t at = (size_t)snprintf(why, sizeof why, ": no trajectory reached it");
        const char *log = l->actors[0].child ? ag_child_log_path(l->actors[0].child) : "";
        if (s_last_log_line(log, AG_LOG_WARN, line, sizeof line) ||
            s_last_log_line(log, AG_LOG_DEBUG, line, sizeof line))
            snprintf(why + at, sizeof why - at, " (%s: %s)", ag_child_name(l->actors[0].child),
                     line);
    } else {
        snprintf(why, sizeof why, ": it accepted %llu trajectories but trained none",
                 (unsigned long long)l->status.trajectories);
    }
    s_fail(l, "the learner made no PPO update%s; see %s/logs/", why, l->dir);
}

/* The env servers of run.env, after those the launcher starts. 0, or -1 after logging why. */
static int s_attach_envs(launcher_t *l)
{
    int n = ag_runfile_split(l->o->env, l->env_eps[l->n_envs], EP_LEN, MAX_ENVS - l->n_envs);
    if (n < 0) {
        NOTE(l, AG_LOG_ERROR,
             "run.env: expected at most %zu endpoints, comma-separated, each shorter than %d "
             "bytes: '%s'",
             MAX_ENVS - l->n_envs, EP_LEN, l->o->env);
        return -1;
    }
    l->n_attached = (size_t)n;
    return 0;
}

static void s_destroy_members(member_t *ms, size_t n)
{
    for (size_t i = 0; ms && i < n; i++)
        ag_child_destroy(&ms[i].child);
}

int ag_launch_run(const ag_launch_opts_t *o)
{
    launcher_t *l = calloc(1, sizeof *l);
    if (!l)
        return 1;
    l->o = o;
    /* A first delay over the cap is the cap (ag_backoff_make would raise the cap instead). */
    const uint64_t first = (uint64_t)o->restart_delay_ms;
    l->restart_delay = ag_backoff_make(first < MAX_RESTART_DELAY_MS ? first : MAX_RESTART_DELAY_MS,
                                       MAX_RESTART_DELAY_MS);
    l->n_envs = (size_t)o->env_servers;
    l->n_actors = (size_t)o->actors;
    l->envs = calloc(l->n_envs, sizeof *l->envs);
    l->env_eps = calloc(MAX_ENVS, sizeof *l->env_eps);
    l->env_ready = calloc(MAX_ENVS, sizeof *l->env_ready);
    l->actors = calloc(l->n_actors, sizeof *l->actors);
    l->headline = -1;
    l->tty = isatty(STDERR_FILENO);
    uv_loop_init(&l->loop);
    l->zctx = zmq_ctx_new();
    uv_timer_init(&l->loop, &l->tick);
    l->tick.data = l;
    l->t0_ms = s_now(l);
    int status = 1;
    json_t *eval = NULL;

    if ((l->n_envs && !l->envs) || !l->env_eps || !l->env_ready || !l->actors || !l->zctx)
        goto done;
    l->signals = ag_signals_create(&l->loop, s_on_signal, l);
    if (s_attach_envs(l) < 0 || s_find_bins(l) < 0 || s_make_dir(l) < 0 || s_write_run_file(l) < 0)
        goto done;
    NOTE(l, AG_LOG_INFO, "run '%s' (%s) in %s", o->name, o->origin, l->dir);
    uv_timer_start(&l->tick, s_on_tick, TICK_MS, TICK_MS);

    l->phase = PHASE_START;
    if (s_start_cluster(l) == 0 && !s_start_aborted(l)) {
        l->phase = PHASE_TRAIN;
        s_wait(l, s_training_over, NULL, 0);
    }
    if (l->interrupts == 0 && !l->failed) {
        s_progress(l, true);
        s_keep_line(l);
    }
    s_stop_cluster(l);

    bool learner_ok = l->learner.child && l->learner.exited && l->learner.exit_status == 0 &&
                      !l->learner.term_signal;
    if (learner_ok && !l->failed && l->interrupts == 0)
        s_check_trained(l);
    if (o->eval && learner_ok && !l->failed && l->interrupts < 2) {
        eval = s_evaluate(l);
        for (size_t e = 0; e < 2 * l->n_matchups && l->interrupts < 2; e++) {
            json_t *mj = json_array_get(eval, e / 2);
            char name[160];
            s_eval_file(l, e, name, sizeof name, "");
            if (!json_object_get(mj, s_eval_tags[e % 2]))
                s_fail(l,
                       "the evaluation of the %s policy (%s) did not complete; see %s/logs/%s.log",
                       s_eval_tags[e % 2], l->matchups[e / 2].name, l->dir, name);
        }
    }
    l->phase = PHASE_REPORT;
    s_finish_reward(l);
    s_kill_all(l->envs, l->n_envs, SIGTERM);
    if (!s_wait(l, s_all_envs_stopped, NULL, ENV_STOP_TIMEOUT_MS)) {
        s_kill_all(l->envs, l->n_envs, SIGKILL);
        s_wait(l, s_all_envs_stopped, NULL, 0);
    }
    s_clear_line(l);
    s_report(l, eval); /* a run that failed to start says why there too */
    if (!l->failed)
        status = 0;
    else
        fprintf(stderr, "agora: run failed: %s\n", l->fail_why);

done:
    s_clear_line(l);
    json_decref(eval);
    ag_rpc_client_destroy(&l->control);
    s_destroy_members(l->envs, l->n_envs);
    s_destroy_members(l->actors, l->n_actors);
    s_destroy_members(&l->learner, 1);
    s_destroy_members(l->evals, 2 * AG_MATCHUP_MAX);
    json_decref(l->declared);
    s_destroy_members(&l->reward, 1);
    json_decref(l->reward_stats);
    ag_signals_destroy(&l->signals);
    uv_timer_stop(&l->tick);
    uv_close((uv_handle_t *)&l->tick, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    uv_loop_close(&l->loop);
    if (l->zctx)
        zmq_ctx_term(l->zctx);
    free(l->envs);
    free(l->env_eps);
    free(l->env_ready);
    free(l->actors);
    free(l);
    return status;
}
