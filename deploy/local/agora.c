/*
 * agora.c - the `agora` command: `agora run [RUNFILE]` runs a whole training
 * job (env servers, learner, actors, evaluation, report) on this machine;
 * `agora join ENDPOINT` adds local actors and env servers to a job running
 * elsewhere (join_cmd.c).
 *
 * The launcher owns the [run] section of a run file. Its other sections
 * belong to the services it starts; the launcher only reads a few of their
 * keys ([game] name, [eval] games, seed and seats, [actor] seats) and passes
 * the whole file on. So
 * `agora run` accepts overrides of any key, `--learner.max_seconds 60` as
 * well as `--actors 1`: its own are checked here, the others by the service
 * that owns them when it starts. Without RUNFILE it runs the built-in
 * default run file (examples/debate.ini, a debate job); nothing else here
 * knows any game.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "launcher.h"
#include "probe.h"
#include "log.h"
#include "runfile.h"

/* examples/debate.ini, embedded at build time (embed.c). */
extern const char ag_default_runfile[];

#define DEFAULT_ORIGIN "the built-in default run file (examples/debate.ini)"

#define OPT(f, ...) AG_OPT(ag_launch_opts_t, f, __VA_ARGS__)
static const ag_option_t s_run_options[] = {
    OPT(name, "run.name", "name", "", 0, 0,
        "run name, used for the run directory and in summary.json (empty = the run file's name)"),
    OPT(out_dir, "run.out", "out", "", 0, 0, "run directory (empty = runs/NAME-YYYYmmdd-HHMMSS)"),
    OPT(env_servers, "run.env_servers", "env-servers", "1", 0, 16,
        "env servers to start (0: only those of run.env, which agora attaches)"),
    OPT(env, "run.env", "env", "", 0, 0,
        "env servers agora does not start, ENDPOINT,...: attached (never started, stopped or "
        "restarted) and used by the learner, the actors and the evaluation"),
    OPT(env_wait_s, "run.env_wait_s", "env-wait-s", "30", 1, 86400,
        "how long each env server may take to answer an env Hello before the run fails"),
    OPT(actors, "run.actors", "actors", "2", 1, 64, "actors to start (ids 0..N-1)"),
    OPT(seed, "run.seed", "seed", "1", 0, LONG_MAX / 2, "base seed: actor i runs with seed + i"),
    OPT(host, "run.host", "host", "127.0.0.1", 1, 0,
        "loopback address every service binds and connects to"),
    OPT(bin_dir, "run.bin_dir", "bin-dir", "", 0, 0,
        "directory of agora-env, agora-learner, agora-actor, agora-eval (empty = next to agora, "
        "or the build tree)"),
    OPT(max_restarts, "run.max_restarts", "max-restarts", "5", 0, 1000,
        "restarts of a crashed actor or env server before giving up on it"),
    OPT(restart_delay_ms, "run.restart_delay_ms", "restart-delay-ms", "500", 0, 600000,
        "delay before the first restart; doubles with every restart of the same process, up to "
        "30 s"),
    OPT(stop_timeout_s, "run.stop_timeout_s", "stop-timeout-s", "120", 1, 86400,
        "how long the learner may take to checkpoint and exit after SIGTERM"),
    OPT(progress_s, "run.progress_s", "progress-s", "10", 1, 86400,
        "seconds between progress lines when stderr is not a terminal"),
    OPT(eval, "run.eval", "eval", "true", 0, 0,
        "evaluate the warm start and the final policy with agora-eval at the end, in the matchups "
        "of [eval] (default: the seats [actor] trains in)"),
    OPT(plot, "run.plot", "plot", "true", 0, 0, "draw curves.png with gnuplot at the end"),
    OPT(reward_server, "run.reward_server", "reward-server", "false", 0, 0,
        "start agora-reward (the run file's [reward]); actors, env servers and the evaluation use "
        "it"),
    OPT(gnuplot, "run.gnuplot", "gnuplot", "gnuplot", 1, 0, "the gnuplot program"),
};
#undef OPT
enum { N_RUN_OPTIONS = sizeof s_run_options / sizeof s_run_options[0] };

static const char *const s_run_summary =
    "Runs a whole agora training job on this machine: env servers, the learner and the actors "
    "on free loopback ports, supervised (a crashed actor is restarted), one progress line, a "
    "clean stop on Ctrl-C (the learner checkpoints first), then an evaluation of the warm start "
    "and the final policy on held-out seeds. DIR receives run.ini (the effective run file), "
    "metrics.jsonl, reference.ckpt, policy.ckpt, summary.json, curves.png and logs/. Without "
    "RUNFILE the built-in default debate run file is used (`agora print-default` shows it). "
    "Keys of the other sections of a run file can be overridden too, e.g. "
    "--learner.max_seconds 60; the service that owns them checks them.";

static void s_usage(FILE *f)
{
    fprintf(f, "usage: agora COMMAND [ARGS]\n\n"
               "Runs agora, an actor-learner system that trains language-model policies by\n"
               "reinforcement learning through multi-turn, multi-agent games.\n\n"
               "commands:\n"
               "  run [RUNFILE] [--out DIR] [options]   run a training job on this machine\n"
               "                                        (RUNFILE: the default debate job)\n"
               "  join tcp://LEARNER:5582 [--actors N] [--env-servers M]\n"
               "                                        add actors and env servers on this\n"
               "                                        machine to a job running elsewhere\n"
               "  probe SERVICE ENDPOINT                is a service alive? (env, control or\n"
               "                                        reward, asked over the protocol)\n"
               "  print-default                         print the built-in default run file\n"
               "  help                                  print this\n\n"
               "`agora run --help` lists the options of a run.\n");
}

/* A command-line override of a key the launcher does not own ("--learner.lr 1e-3"). */
typedef struct foreign {
    const char *key;
    const char *value;
    char buf[256];
} foreign_t;

static bool s_is_own_key(const char *key)
{
    return !strncmp(key, "run.", 4) || !strncmp(key, "log.", 4);
}

/*
 * Splits the arguments after "run" into the launcher's own (kept in own[],
 * own[0] = the program name) and overrides of other sections (foreign[]).
 * `--config FILE` is accepted as another way to name RUNFILE.
 */
static int s_split_args(int argc, char **argv, char **own, int *n_own, foreign_t *foreign,
                        size_t *n_foreign, size_t max_foreign)
{
    *n_own = 0;
    own[(*n_own)++] = "agora run";
    *n_foreign = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--config") || !strncmp(a, "--config=", 9)) {
            const char *path = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (!path) {
                fprintf(stderr, "agora run: --config needs a run file\n");
                return -1;
            }
            own[(*n_own)++] = (char *)path;
            continue;
        }
        if (strncmp(a, "--", 2) || !strchr(a, '.')) {
            own[(*n_own)++] = argv[i];
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        const char *dot = memchr(a + 2, '.', klen);
        if (!dot) { /* the dot is in the value: an option of ours written --KEY=VALUE */
            own[(*n_own)++] = argv[i];
            continue;
        }
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)klen, a + 2);
        if (s_is_own_key(key)) {
            own[(*n_own)++] = argv[i];
            /* [log] is every binary's: the level goes to the children too. */
            if (strncmp(key, "log.", 4))
                continue;
            if (!eq && i + 1 < argc)
                own[(*n_own)++] = argv[i + 1];
        }
        if (*n_foreign == max_foreign || klen >= sizeof key) {
            fprintf(stderr, "agora run: too many overrides or a key too long: %s\n", a);
            return -1;
        }
        foreign_t *f = &foreign[(*n_foreign)++];
        snprintf(f->buf, sizeof f->buf, "%s", key);
        f->key = f->buf;
        if (eq) {
            f->value = eq + 1;
        } else if (i + 1 < argc) {
            f->value = argv[++i];
        } else if (s_is_own_key(key)) {
            (*n_foreign)--; /* own[] has it: ag_config reports the missing value */
        } else {
            fprintf(stderr, "agora run: option --%s needs a value\n", key);
            return -1;
        }
    }
    own[*n_own] = NULL;
    return 0;
}

/* Copies the run file's [run] and [log] keys into cfg; an unknown one is a typo. */
static int s_config_from_runfile(ag_config_t *cfg, const ag_runfile_t *rf, const char *origin)
{
    int rc = 0;
    for (size_t i = 0; i < ag_runfile_count(rf); i++) {
        const char *section, *key, *value;
        ag_runfile_entry(rf, i, &section, &key, &value);
        if (strcmp(section, "run") && strcmp(section, "log"))
            continue;
        char full[256];
        snprintf(full, sizeof full, "%s.%s", section, key);
        const char *known = ag_config_str(cfg, full);
        if (!known || ag_config_set(cfg, full, value) < 0) {
            fprintf(stderr, "agora run: %s: unknown key '%s' in section [%s]\n", origin, key,
                    section);
            rc = -1;
        }
    }
    return rc;
}

/* A long from the run file's other sections ([eval]), with a clear error. */
static int s_runfile_long(const ag_runfile_t *rf, const char *key, long def, long min, long max,
                          long *out)
{
    const char *v = ag_runfile_get(rf, key);
    if (!v || !*v) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long x = strtol(v, &end, 0);
    if (errno || end == v || *end || x < min || x > max) {
        fprintf(stderr, "agora run: %s: expected an integer in [%ld, %ld], got '%s'\n", key, min,
                max, v);
        return -1;
    }
    *out = x;
    return 0;
}

/* "examples/critique.ini" -> "critique" */
static void s_name_from_path(char *buf, size_t len, const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base);
    if (n > 4 && !strcmp(base + n - 4, ".ini"))
        n -= 4;
    snprintf(buf, len, "%.*s", (int)n, base);
    for (char *p = buf; *p; p++)
        if (*p == '/' || *p == ' ')
            *p = '_';
}

static int s_cmd_run(int argc, char **argv)
{
    enum { MAX_FOREIGN = 64 };
    char **own = calloc((size_t)argc + 2, sizeof *own);
    foreign_t *foreign = calloc(MAX_FOREIGN, sizeof *foreign);
    ag_config_t *cfg = NULL;
    ag_runfile_t *rf = NULL;
    int status = 2;
    int n_own;
    size_t n_foreign;
    if (!own || !foreign)
        goto out;
    if (s_split_args(argc, argv, own, &n_own, foreign, &n_foreign, MAX_FOREIGN) < 0)
        goto out;

    /* First pass: --help, the run file's path, and any syntax error in the arguments. */
    cfg = ag_config_create("agora run", "[RUNFILE] [--out DIR] [options]", s_run_summary,
                           s_run_options, N_RUN_OPTIONS, 1);
    if (!cfg)
        goto out;
    int rc = ag_config_parse_args(cfg, n_own, own);
    if (rc != 0) {
        status = rc > 0 ? 0 : 2;
        goto out;
    }
    char origin[PATH_MAX + 32];
    char name[128];
    const char *path = ag_config_positional(cfg, 0);
    rf = ag_runfile_create();
    if (!rf)
        goto out;
    if (path) {
        snprintf(origin, sizeof origin, "run file %s", path);
        s_name_from_path(name, sizeof name, path);
        if (ag_runfile_load(rf, path) < 0)
            goto out;
    } else {
        snprintf(origin, sizeof origin, "%s", DEFAULT_ORIGIN);
        snprintf(name, sizeof name, "default"); /* the file names itself in [run] name */
        if (ag_runfile_load_string(rf, ag_default_runfile, "(built-in debate.ini)") < 0)
            goto out;
    }

    /* Second pass: the run file's [run] keys, then the command line over them. */
    ag_config_destroy(&cfg);
    cfg = ag_config_create("agora run", "[RUNFILE] [--out DIR] [options]", s_run_summary,
                           s_run_options, N_RUN_OPTIONS, 1);
    if (!cfg || s_config_from_runfile(cfg, rf, path ? path : "(built-in debate.ini)") < 0 ||
        ag_config_parse_args(cfg, n_own, own) != 0)
        goto out;
    for (size_t i = 0; i < n_foreign; i++) {
        if (ag_runfile_set(rf, foreign[i].key, foreign[i].value) < 0) {
            fprintf(stderr, "agora run: --%s: expected --SECTION.KEY VALUE\n", foreign[i].key);
            goto out;
        }
    }

    ag_launch_opts_t o = {0};
    if (ag_config_apply(cfg, &o) < 0 ||
        s_runfile_long(rf, "eval.games", 400, 1, 100000000, &o.eval_games) < 0 ||
        s_runfile_long(rf, "eval.seed", 1000000000, 0, LONG_MAX / 2, &o.eval_seed) < 0)
        goto out;
    o.runfile = rf;
    o.origin = origin;
    if (!*o.name)
        o.name = name;
    if (o.env_servers == 0 && !*o.env) {
        fprintf(stderr, "agora run: run.env_servers = 0 needs run.env = ENDPOINT,... (the env "
                        "servers to attach)\n");
        goto out;
    }
    if (strpbrk(o.name, "/ \t\n") || !*o.name) {
        fprintf(stderr, "agora run: run.name must be a non-empty word without '/' or spaces\n");
        goto out;
    }
    status = ag_launch_run(&o);
out:
    ag_runfile_destroy(&rf);
    ag_config_destroy(&cfg);
    free(own);
    free(foreign);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "run"))
        return s_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "join"))
        return ag_join_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "probe"))
        return ag_probe_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "print-default")) {
        fputs(ag_default_runfile, stdout);
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        s_usage(stdout);
        return 0;
    }
    fprintf(stderr, "agora: unknown command '%s'\n\n", cmd);
    s_usage(stderr);
    return 2;
}
