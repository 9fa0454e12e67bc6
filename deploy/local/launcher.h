/*
 * launcher.h - `agora run`: one whole agora cluster on this machine from one
 * run file.
 *
 * The launcher picks free loopback ports, writes the effective run file
 * (DIR/run.ini), starts the env servers or attaches env servers it did not
 * start (and waits for their Hello, which also says what the game declares
 * about itself), the learner and the actors, restarts crashed actors and env
 * servers with backoff (not one that exits with AG_LAUNCH_EXIT_FATAL: the run
 * then fails), shows one progress line from the learner's control Status,
 * and when the learner ends by itself (or on Ctrl-C / SIGTERM) stops the
 * cluster in order: actors, learner (it checkpoints), env servers. It then
 * evaluates the warm start and the final policy with agora-eval on held-out
 * seeds, in the matchups of the run file's [eval] (matchup.h), and leaves
 * summary.json and curves.png next to the learner's files in DIR.
 */
#ifndef AG_LAUNCHER_H
#define AG_LAUNCHER_H

#include <stdbool.h>

#include "runfile.h"

/* A child's exit status for "cannot do this job; do not restart me" (its log says why). */
#define AG_LAUNCH_EXIT_FATAL 3

/* The [run] options (agora.c's table fills the fields it has rows for). */
typedef struct ag_launch_opts {
    ag_runfile_t *runfile; /* the whole run file; the launcher adds its endpoints to it */
    const char *origin;    /* where the run file came from, for the log and run.ini */
    const char *name;      /* run name (run.name) */
    const char *out_dir;   /* "" = runs/NAME-YYYYmmdd-HHMMSS under the current directory */
    const char *host;      /* loopback address every service binds and connects to */
    const char *bin_dir;   /* "" = next to the agora binary, or the build tree layout */
    const char *gnuplot;   /* the gnuplot program */
    long env_servers;      /* env servers to start */
    const char *env;       /* env servers to attach: ENDPOINT,... ("" = none); never supervised */
    long env_wait_s;       /* how long each env server may take to answer Hello */
    long actors;
    long seed;             /* actor i (0-based) gets seed + i */
    long max_restarts;     /* per actor or env server */
    long restart_delay_ms; /* first delay; doubles per restart of the same process */
    long stop_timeout_s;   /* how long the learner may take to checkpoint and exit */
    long progress_s;       /* seconds between progress lines when stderr is not a terminal */
    long eval_games;
    long eval_seed;
    bool eval;
    bool plot;
    bool reward_server; /* start agora-reward; actors, env servers and eval use it */
} ag_launch_opts_t;

/* Runs the whole job; returns the process exit status (0 ok, 1 the run failed). */
int ag_launch_run(const ag_launch_opts_t *opts);

/*
 * The path of the agora binary name (agora-env, agora-actor, ...): in
 * bin_dir when it is not empty, else next to this program, else where a
 * meson build tree puts it. 0, or -ENOENT with where it looked in err.
 */
int ag_launch_find_bin(const char *bin_dir, const char *name, char *out, size_t cap, char *err,
                       size_t errlen);

/* mkdir -p; 0 or a negative errno. */
int ag_launch_mkdirs(const char *path);

/* `agora join ENDPOINT [options]` (join.c): its exit status. */
int ag_join_main(int argc, char **argv);

#endif
