/*
 * agora-bench pipeline - end-to-end efficiency of a finished `agora run`: the
 * trained tokens/s the whole system achieved (summary.json) against the rate
 * the learner could reach doing nothing but its PPO work, predicted from the
 * isolated rates of agora-bench model (bench_model_rates) for the run's
 * model, learner threads, minibatch rows and mean sequence length, measured
 * now on this machine. The per-update timings in metrics.jsonl then say
 * where the rest went: waiting for trajectories, scoring, training, the rest
 * of each update (batch building, GAE, snapshot), padding, and passes that
 * ran slower than in isolation.
 *
 * A PPO update over N real tokens runs ppo.epochs training passes and
 * score_passes no-gradient scoring passes (proximal, plus the reference when
 * a KL term is on) over every token, so on perfectly packed sequences it
 * takes N * (epochs / train + passes / score) seconds; hence
 * predicted = 1 / (epochs / train + passes / score).
 *
 * Newer learners score the reference pass ahead, on a thread of their own,
 * while the trainer trains (reference_ahead = 1 in a record): score_passes is
 * then the trainer's 1. efficiency counts only the trainer's own passes; a
 * second figure, efficiency_all_work, also counts the passes run ahead, as
 * if one thread did all of the work.
 *
 * Everything read from the run directory is untrusted: a missing, unreadable
 * or malformed file is a one-line error and exit status 2.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "bench.h"
#include "config.h"
#include "forkjoin.h"
#include "learner_options.h"
#include "model.h"

#define PROG "agora-bench pipeline"

/* The shortest sequence agora-bench model measures: its 16-token prompt and one more. */
#define MIN_SEQ 17
#define MAX_RUNS 1000 /* --runs */

/* agora-bench pipeline's options ([bench_pipeline] of a run file), filled from s_options. */
typedef struct {
    int runs;
    double seconds;
} popts_t;

#define OPT(f, ...) AG_OPT(popts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(runs, "bench_pipeline.runs", "runs", "3", 1, MAX_RUNS,
        "isolated measurements of each rate (their median is used)"),
    OPT(seconds, "bench_pipeline.seconds", "seconds", "3", 1e-3, 1e6,
        "how long each isolated measurement runs (seconds)"),
};
#undef OPT

typedef struct {
    ag_model_config_t model;
    int threads, epochs, minibatch;
    int rows; /* rows per forward pass: ppo.microbatch, at most a minibatch */
} run_cfg_t;

typedef struct {
    double achieved, ppo_s, tokens_trained;
} summary_t;

/* The per-update fields newer learners add; each is used only when every
 * PPO record has it. */
enum { F_SCORE_S, F_TRAIN_S, F_SCORE_POS, F_TRAIN_POS, F_PASSES, F_KL_COEF, F_AHEAD, N_OPT };
static const char *const s_opt_names[N_OPT] = {
    "score_s",      "train_s", "score_positions", "train_positions",
    "score_passes", "kl_coef", "reference_ahead",
};

typedef struct {
    size_t updates, bad_lines;
    double tokens, sequences, update_s;
    double sum[N_OPT];
    size_t have[N_OPT];
    double kl_passes; /* sum over records of 2 when kl_coef > 0, else 1 */
} metrics_t;

/* Up to a few notes on how a figure was obtained, printed with the results. */
typedef struct {
    json_t *list;
} notes_t;

__attribute__((format(printf, 1, 2))) static int s_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 2;
}

__attribute__((format(printf, 2, 3))) static void s_note(notes_t *n, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_array_append_new(n->list, json_string(buf));
}

/* --help's text, line by line as printed. */
/* clang-format off */
static const char s_summary[] =
    "The trained tokens/s a finished `agora run ... --out RUN_DIR` achieved against the\n"
    "rate its model's isolated figures predict; prints one JSON line. Reads run.ini\n"
    "([model], [learner] threads, [ppo] epochs minibatch microbatch; missing keys:\n"
    "agora-learner's defaults), summary.json (tokens_trained_per_s = achieved, ppo_s)\n"
    "and the ppo records of metrics.jsonl.\n"
    "  seq_len      round(sum tokens / sum sequences), within [" BENCH_STR(MIN_SEQ) ", ctx]\n"
    "  isolated_*   agora-bench model's train_ and score_tokens_per_s at B = rows_per_pass\n"
    "               (ppo.microbatch, at most ppo.minibatch: the learner's forward passes),\n"
    "               T = seq_len, the run's model and threads: median of --runs runs\n"
    "               of --seconds each\n"
    "  score_passes mean of the records' (1 proximal, 2 + reference); older records:\n"
    "               2 where kl_coef > 0, else 1\n"
    "  predicted    1 / (epochs / train + score_passes / score); efficiency =\n"
    "               achieved / predicted\n"
    "  reference_ahead  share of updates whose reference pass a thread of its own ran\n"
    "               ahead (not in score_passes); efficiency_all_work counts it too:\n"
    "               achieved / (1 / (epochs / train + (score_passes + ahead) / score))\n"
    "  shares of ppo_s: wait (not in an update: waiting for trajectories), scoring\n"
    "  (sum score_s), training (sum train_s), other (rest of the updates: batch, GAE,\n"
    "  snapshot); padding: share of computed positions that were padding;\n"
    "  train_speed, score_speed: isolated time of the passes' real tokens / their time\n"
    "Figures needing a per-update field the records lack are null; notes says so.\n"
    "Exit status 2 on a missing or malformed file or no ppo record, 1 if a measurement\n"
    "failed.";
/* clang-format on */

/* Parses the options into o and the run directory into *dir; 0 to run, 1
 * after --help, 2 after an error. *cfg owns *dir. */
static int s_parse(int argc, char **argv, popts_t *o, const char **dir, ag_config_t **cfg)
{
    int rc = bench_options(PROG, "RUN_DIR [options]", s_summary, s_options,
                           sizeof s_options / sizeof s_options[0], 1, argc, argv, o, cfg);
    if (rc)
        return rc;
    *dir = ag_config_positional(*cfg, 0);
    return *dir ? 0 : s_fail("give the run directory (see --help)");
}

static int s_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return s_fail("%s: path too long", dir);
    return 0;
}

/* Opens DIR/NAME for reading into *f (path keeps its name for messages); 0 or 2. */
static int s_open(char *path, size_t cap, const char *dir, const char *name, FILE **f)
{
    if (s_path(path, cap, dir, name))
        return 2;
    *f = fopen(path, "r");
    return *f ? 0 : s_fail("%s: %s", path, strerror(errno));
}

/* ------------------------------------------------------------- run.ini */

/* The learner's settings of the run: run.ini read with agora-learner's own
 * option table, so a missing key has the learner's default and a value out
 * of the learner's range is refused as the learner refuses it. */
static int s_read_run_ini(const char *dir, run_cfg_t *rc)
{
    char path[PATH_MAX];
    if (s_path(path, sizeof path, dir, "run.ini"))
        return 2;
    ag_config_t *cfg = ag_config_create(PROG, "", "", ag_learner_options, ag_learner_n_options, 0);
    if (!cfg)
        return s_fail("out of memory");
    ag_learner_opts_t o;
    ag_learner_opts_default(&o);
    /* Both say what is wrong, naming the file or the key. */
    const int bad = ag_config_load_file(cfg, path) < 0 || ag_config_apply(cfg, &o) < 0;
    ag_config_destroy(&cfg); /* the strings of o go with it; only numbers are kept */
    if (bad)
        return 2;
    rc->model = o.model;
    rc->threads = o.threads;
    rc->epochs = o.ppo.epochs;
    rc->minibatch = o.ppo.minibatch;
    rc->rows = o.ppo.microbatch > 0 && o.ppo.microbatch < o.ppo.minibatch ? o.ppo.microbatch
                                                                          : o.ppo.minibatch;
    char err[160];
    if (ag_model_config_check(&rc->model, err, sizeof err) != 0)
        return s_fail("%s: [model]: %s", path, err);
    return 0;
}

/* --------------------------------------------------------- summary.json */

/* A finite number >= 0 under key, or -1. */
static int s_number(const json_t *o, const char *key, double *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return -1;
    double x = json_number_value(v);
    if (!isfinite(x) || x < 0.0)
        return -1;
    *out = x;
    return 0;
}

static int s_read_summary(const char *dir, summary_t *s)
{
    char path[PATH_MAX];
    if (s_path(path, sizeof path, dir, "summary.json"))
        return 2;
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return je.line > 0 ? s_fail("%s:%d: %s", path, je.line, je.text)
                           : s_fail("%s: %s", path, je.text);
    int ret = 0;
    if (!json_is_object(root))
        ret = s_fail("%s: not a JSON object", path);
    else if (s_number(root, "tokens_trained_per_s", &s->achieved) != 0)
        ret = s_fail("%s: no number tokens_trained_per_s >= 0", path);
    else if (s_number(root, "ppo_s", &s->ppo_s) != 0 || s->ppo_s <= 0.0)
        ret = s_fail("%s: no number ppo_s > 0", path);
    else if (s_number(root, "tokens_trained", &s->tokens_trained) != 0)
        ret = s_fail("%s: no number tokens_trained >= 0", path);
    json_decref(root);
    return ret;
}

/* -------------------------------------------------------- metrics.jsonl */

/* Adds one "phase":"ppo" record; 0, or 2 after saying which field is wrong. */
static int s_add_record(metrics_t *m, const json_t *o, const char *path, size_t lineno)
{
    static const char *const required[] = {"tokens", "sequences", "update_s"};
    double v[3];
    for (int i = 0; i < 3; i++)
        if (s_number(o, required[i], &v[i]) != 0)
            return s_fail("%s:%zu: a ppo record without a number %s >= 0", path, lineno,
                          required[i]);
    m->tokens += v[0];
    m->sequences += v[1];
    m->update_s += v[2];
    for (int f = 0; f < N_OPT; f++) {
        double x;
        if (s_number(o, s_opt_names[f], &x) != 0)
            continue;
        m->sum[f] += x;
        m->have[f]++;
        if (f == F_KL_COEF)
            m->kl_passes += x > 0.0 ? 2.0 : 1.0;
    }
    m->updates++;
    return 0;
}

/* Lines that are not JSON objects are counted and skipped, as the launcher
 * does when it writes summary.json from the same file. */
static int s_read_metrics(const char *dir, metrics_t *m)
{
    char path[PATH_MAX];
    FILE *f;
    if (s_open(path, sizeof path, dir, "metrics.jsonl", &f))
        return 2;
    memset(m, 0, sizeof *m);
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    int ret = 0;
    while (ret == 0 && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == '\0')
            continue;
        json_t *o = json_loads(line, 0, NULL);
        if (!json_is_object(o)) {
            m->bad_lines++;
        } else {
            const char *phase = json_string_value(json_object_get(o, "phase"));
            if (phase && !strcmp(phase, "ppo"))
                ret = s_add_record(m, o, path, lineno);
        }
        json_decref(o);
    }
    if (ret == 0 && ferror(f))
        ret = s_fail("%s: read error", path);
    free(line);
    fclose(f);
    if (ret == 0 && m->updates == 0)
        ret = s_fail("%s: no \"phase\":\"ppo\" record (%zu of %zu lines not JSON objects)", path,
                     m->bad_lines, lineno);
    else if (ret == 0 && !(m->sequences > 0.0))
        ret = s_fail("%s: the ppo records count no sequences", path);
    return ret;
}

/* The sum of an optional field when every record has it, else NAN (noted
 * when only some have it). */
static double s_opt_sum(const metrics_t *m, int f, notes_t *notes)
{
    if (m->have[f] == m->updates)
        return m->sum[f];
    if (m->have[f] > 0)
        s_note(notes, "%s in only %zu of %zu ppo records: not used", s_opt_names[f], m->have[f],
               m->updates);
    return NAN;
}

/* --------------------------------------------------------------- output */

static int s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double s_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, s_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* x / y, NAN (printed null) when either is unknown or y is 0. */
static double s_div(double x, double y)
{
    return isfinite(x) && isfinite(y) && y != 0.0 ? x / y : NAN;
}

static json_t *s_real(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

/* Everything after the options: reads the run directory, measures, prints. */
static int s_pipeline(const popts_t *o, const char *dir)
{
    int rc;
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return s_fail("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return s_fail("%s: not a directory", dir);
    run_cfg_t run;
    summary_t sum;
    metrics_t met;
    if ((rc = s_read_run_ini(dir, &run)) || (rc = s_read_summary(dir, &sum)) ||
        (rc = s_read_metrics(dir, &met)))
        return rc;

    notes_t notes = {json_array()};
    if (!notes.list)
        return 1;
    if (met.bad_lines)
        s_note(&notes, "%zu lines of metrics.jsonl were not JSON objects (skipped)", met.bad_lines);
    if (fabs(sum.tokens_trained - met.tokens) > 0.005 * met.tokens)
        s_note(&notes, "summary.json's tokens_trained %.0f differs from the records' %.0f",
               sum.tokens_trained, met.tokens);
    double passes;
    if (met.have[F_PASSES] == met.updates) {
        passes = met.sum[F_PASSES] / (double)met.updates;
    } else if (met.have[F_KL_COEF] == met.updates) {
        passes = met.kl_passes / (double)met.updates;
        s_note(&notes, "score_passes not recorded: inferred from kl_coef (> 0: a reference "
                       "pass)");
    } else {
        passes = 2.0;
        s_note(&notes, "score_passes not recorded and no kl_coef to tell: 2 assumed");
    }
    const double score_s = s_opt_sum(&met, F_SCORE_S, &notes),
                 train_s = s_opt_sum(&met, F_TRAIN_S, &notes),
                 score_pos = s_opt_sum(&met, F_SCORE_POS, &notes),
                 train_pos = s_opt_sum(&met, F_TRAIN_POS, &notes);

    const double mean_len = met.tokens / met.sequences;
    long T = lround(mean_len);
    if (T < MIN_SEQ)
        T = MIN_SEQ;
    if (T > run.model.ctx)
        T = run.model.ctx;
    int threads = run.threads;
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)n : 1;
    }
    if (threads > AG_FORKJOIN_MAX)
        threads = AG_FORKJOIN_MAX;

    /* Figures taken on a loaded machine are not comparable with quiet ones. */
    double load = -1.0;
    if (getloadavg(&load, 1) != 1)
        load = -1.0;
    double *tr = calloc((size_t)o->runs, sizeof *tr), *sc = calloc((size_t)o->runs, sizeof *sc);
    rc = tr && sc ? 0 : -1;
    for (int i = 0; i < o->runs && rc == 0; i++)
        rc = bench_model_rates(&run.model, threads, run.rows, (int)T, o->seconds, &tr[i], &sc[i]);
    if (rc != 0) {
        fprintf(stderr, PROG ": the isolated measurement failed (out of memory?)\n");
        free(tr);
        free(sc);
        json_decref(notes.list);
        return 1;
    }
    const double train = s_median(tr, o->runs), score = s_median(sc, o->runs);
    free(tr);
    free(sc);

    const double E = run.epochs, N = met.tokens, P = sum.ppo_s;
    const double predicted = 1.0 / (E / train + passes / score);
    const double ahead = met.have[F_AHEAD] == met.updates ? met.sum[F_AHEAD] / met.updates : 0.0;
    const double predicted_all = 1.0 / (E / train + (passes + ahead) / score);
    json_t *out = json_object();
    json_object_set_new(out, "bench", json_string("pipeline"));
    json_object_set_new(out, "run_dir", json_string(dir));
    json_object_set_new(out, "d_model", json_integer(run.model.d_model));
    json_object_set_new(out, "layers", json_integer(run.model.n_layers));
    json_object_set_new(out, "heads", json_integer(run.model.n_heads));
    json_object_set_new(out, "ctx", json_integer(run.model.ctx));
    json_object_set_new(out, "mlp_ratio", json_integer(run.model.mlp_ratio));
    json_object_set_new(out, "threads", json_integer(threads));
    json_object_set_new(out, "minibatch", json_integer(run.minibatch));
    json_object_set_new(out, "rows_per_pass", json_integer(run.rows));
    json_object_set_new(out, "epochs", json_integer(run.epochs));
    json_object_set_new(out, "score_passes", json_real(passes));
    json_object_set_new(out, "mean_seq_len", json_real(mean_len));
    json_object_set_new(out, "seq_len", json_integer(T));
    json_object_set_new(out, "runs", json_integer(o->runs));
    json_object_set_new(out, "seconds", json_real(o->seconds));
    json_object_set_new(out, "updates", json_integer((json_int_t)met.updates));
    json_object_set_new(out, "tokens", json_real(N));
    json_object_set_new(out, "sequences", json_real(met.sequences));
    json_object_set_new(out, "tokens_trained", json_real(sum.tokens_trained));
    json_object_set_new(out, "ppo_s", json_real(P));
    json_object_set_new(out, "update_s", json_real(met.update_s));
    json_object_set_new(out, "score_s", s_real(score_s));
    json_object_set_new(out, "train_s", s_real(train_s));
    json_object_set_new(out, "score_positions", s_real(score_pos));
    json_object_set_new(out, "train_positions", s_real(train_pos));
    json_object_set_new(out, "isolated_train_tokens_per_s", json_real(train));
    json_object_set_new(out, "isolated_score_tokens_per_s", json_real(score));
    json_object_set_new(out, "predicted_tokens_per_s", json_real(predicted));
    json_object_set_new(out, "achieved_tokens_per_s", json_real(sum.achieved));
    json_object_set_new(out, "efficiency", s_real(s_div(sum.achieved, predicted)));
    json_object_set_new(out, "reference_ahead", json_real(ahead));
    json_object_set_new(out, "predicted_all_work_tokens_per_s", json_real(predicted_all));
    json_object_set_new(out, "efficiency_all_work", s_real(s_div(sum.achieved, predicted_all)));
    json_object_set_new(out, "wait", s_real((P - met.update_s) / P));
    json_object_set_new(out, "scoring", s_real(s_div(score_s, P)));
    json_object_set_new(out, "training", s_real(s_div(train_s, P)));
    json_object_set_new(out, "other", s_real(s_div(met.update_s - score_s - train_s, P)));
    json_object_set_new(out, "padding",
                        s_real(1.0 - s_div(N * (E + passes), train_pos + score_pos)));
    json_object_set_new(out, "train_speed", s_real(s_div(E * N / train, train_s)));
    json_object_set_new(out, "score_speed", s_real(s_div(passes * N / score, score_s)));
    json_object_set_new(out, "loadavg_1m", json_real(load));
    json_object_set_new(out, "notes", notes.list);
    char *text = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(out);
    if (!text)
        return 1;
    puts(text);
    free(text);
    return 0;
}

int bench_pipeline_main(int argc, char **argv)
{
    popts_t o;
    const char *dir = NULL;
    ag_config_t *cfg = NULL;
    int rc = s_parse(argc, argv, &o, &dir, &cfg);
    if (rc == 0)
        rc = s_pipeline(&o, dir);
    else if (rc == 1)
        rc = 0; /* --help */
    ag_config_destroy(&cfg);
    return rc;
}
