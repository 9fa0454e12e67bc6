/*
 * report.c - metrics.jsonl reading, summary.json writing and the learning
 * curves (see report.h). The curves go through a plain whitespace table
 * because that is what gnuplot reads best, and because the table is useful
 * on its own (any plotting tool reads it).
 */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum { TAIL_BYTES = 1 << 16, MAX_SERIES = 24 };

json_t *ag_report_read_metrics(const char *path, size_t *bad_lines)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    json_t *records = json_array();
    char *line = NULL;
    size_t cap = 0;
    size_t bad = 0;
    ssize_t n;
    while (records && (n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            continue;
        json_t *rec = json_loadb(line, (size_t)n, 0, NULL);
        if (!json_is_object(rec)) {
            bad++;
            json_decref(rec);
            continue;
        }
        json_array_append_new(records, rec);
    }
    free(line);
    fclose(f);
    if (bad_lines)
        *bad_lines = bad;
    return records;
}

json_t *ag_report_last_record(json_t *records, const char *phase)
{
    for (size_t i = json_array_size(records); i-- > 0;) {
        json_t *rec = json_array_get(records, i);
        const char *p = json_string_value(json_object_get(rec, "phase"));
        if (!phase || (p && !strcmp(p, phase)))
            return rec;
    }
    return NULL;
}

json_t *ag_report_tail_record(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    off_t size = lseek(fd, 0, SEEK_END);
    off_t start = size > TAIL_BYTES ? size - TAIL_BYTES : 0;
    char *buf = malloc(TAIL_BYTES + 1);
    ssize_t got = buf && size > 0 ? pread(fd, buf, (size_t)(size - start), start) : -1;
    close(fd);
    json_t *rec = NULL;
    if (got > 0) {
        /* Only a line with its newline is known to be complete. */
        ssize_t end = got;
        while (end > 0 && buf[end - 1] != '\n')
            end--;
        while (!rec && end > 0) {
            ssize_t lend = end - 1; /* the newline */
            ssize_t lstart = lend;
            while (lstart > 0 && buf[lstart - 1] != '\n')
                lstart--;
            if (lend > lstart) {
                rec = json_loadb(buf + lstart, (size_t)(lend - lstart), 0, NULL);
                if (!json_is_object(rec)) {
                    json_decref(rec);
                    rec = NULL;
                }
            }
            end = lstart;
        }
    }
    free(buf);
    return rec;
}

bool ag_report_number(json_t *record, const char *name, double *out)
{
    json_t *v = json_object_get(record, name);
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return true;
    }
    const char *key;
    json_t *sub;
    json_object_foreach(record, key, sub)
    {
        v = json_is_object(sub) ? json_object_get(sub, name) : NULL;
        if (json_is_number(v)) {
            *out = json_number_value(v);
            return true;
        }
    }
    return false;
}

int ag_report_write_json(const char *path, json_t *json)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *text = json_dumps(json, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    if (!text) {
        ag_error("agora", "%s: cannot serialise", path);
        return -1;
    }
    int rc = -1;
    FILE *f = fopen(tmp, "w");
    if (f) {
        int ok =
            fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 && fsync(fileno(f)) == 0;
        if (fclose(f) == 0 && ok && rename(tmp, path) == 0)
            rc = 0;
    }
    if (rc < 0) {
        ag_error("agora", "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(text);
    return rc;
}

/*
 * The panels after the game's. Each lists the names different learners have
 * used for the same figure; the first one the records carry is plotted.
 */
typedef struct panel {
    const char *title;
    const char *names[6];
} panel_t;

static const panel_t s_panels[] = {
    {"mean return (trainable seats)",
     {"reward_mean", "return_mean", "mean_return", "reward", "returns", NULL}},
    {"KL to the reference", {"kl_ref", "kl", "kl_mean", "approx_kl", NULL}},
    {"entropy", {"entropy", "entropy_mean", NULL}},
    {"value loss", {"value_loss", "loss_value", "vf_loss", NULL}},
    {"clip fraction", {"clip_frac", "clip_fraction", "clipfrac", NULL}},
    {"tokens/s trained", {"tokens_per_s", "train_tokens_per_s", "tokens_per_sec", NULL}},
};
enum { N_PANELS = sizeof s_panels / sizeof s_panels[0] };

/* The game's panels, before those of s_panels. */
enum { PANEL_HEADLINE = -2, PANEL_DECLARED = -1 };

typedef struct series {
    const char *name;
    int panel; /* PANEL_HEADLINE, PANEL_DECLARED or an index of s_panels */
} series_t;

static bool s_any_has(json_t *records, const char *name)
{
    size_t i;
    json_t *rec;
    double v;
    json_array_foreach(records, i, rec)
    {
        if (ag_report_number(rec, name, &v))
            return true;
    }
    return false;
}

static void s_gp_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '_') /* an underscore is a subscript in enhanced-text titles */
            fputs("\\\\", f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int ag_report_write_plot(const char *dir, json_t *records, bool has_headline,
                         const char *const *game)
{
    json_t *ppo = json_array();
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec)
    {
        const char *p = json_string_value(json_object_get(rec, "phase"));
        if (p && !strcmp(p, "ppo"))
            json_array_append(ppo, rec);
    }
    series_t series[MAX_SERIES];
    size_t n_series = 0;
    int n_panels = 0;
    bool shown[2] = {false, false}; /* the headline panel, the other declared metrics' panel */
    for (size_t h = 0; game && game[h] && n_series < MAX_SERIES; h++) {
        bool headline = h == 0 && has_headline;
        if (s_any_has(ppo, game[h])) {
            series[n_series++] = (series_t){game[h], headline ? PANEL_HEADLINE : PANEL_DECLARED};
            shown[!headline] = true;
        }
    }
    n_panels += shown[0] + shown[1];
    for (int p = 0; p < N_PANELS && n_series < MAX_SERIES; p++)
        for (size_t k = 0; s_panels[p].names[k]; k++)
            if (s_any_has(ppo, s_panels[p].names[k])) {
                series[n_series++] = (series_t){s_panels[p].names[k], p};
                n_panels++;
                break;
            }
    if (n_panels == 0 || json_array_size(ppo) == 0) {
        json_decref(ppo);
        return 0;
    }

    char path[4096];
    snprintf(path, sizeof path, "%s/curves.dat", dir);
    FILE *f = fopen(path, "w");
    if (!f)
        goto io_fail;
    fprintf(f, "# agora learning curves, one row per PPO update ('?' = not reported)\n");
    fprintf(f, "# update time_s");
    for (size_t s = 0; s < n_series; s++)
        fprintf(f, " %s", series[s].name);
    fputc('\n', f);
    json_array_foreach(ppo, i, rec)
    {
        double u, t;
        if (!ag_report_number(rec, "update", &u))
            u = (double)i + 1;
        if (!ag_report_number(rec, "time_s", &t))
            t = NAN;
        fprintf(f, "%.0f", u);
        fprintf(f, isfinite(t) ? " %.3f" : " ?", t);
        for (size_t s = 0; s < n_series; s++) {
            double v;
            if (ag_report_number(rec, series[s].name, &v) && isfinite(v))
                fprintf(f, " %.9g", v);
            else
                fputs(" ?", f);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0)
        goto io_fail;

    snprintf(path, sizeof path, "%s/curves.gp", dir);
    f = fopen(path, "w");
    if (!f)
        goto io_fail;
    int cols = n_panels <= 2 ? n_panels : (n_panels <= 4 ? 2 : 3);
    int rows = (n_panels + cols - 1) / cols;
    fprintf(f, "# Draws curves.png from curves.dat (run from the run directory).\n");
    fprintf(f, "set terminal pngcairo size %d,%d font 'sans,10'\n", 520 * cols, 380 * rows);
    fprintf(f, "set output 'curves.png'\n");
    fprintf(f, "set datafile missing '?'\n");
    fprintf(f, "set grid\nset key bottom right\nset xlabel 'PPO update'\n");
    fprintf(f, "set multiplot layout %d,%d title 'agora: learning curves'\n", rows, cols);
    const char *style = json_array_size(ppo) > 40 ? "lines" : "linespoints pt 7 ps 0.5";
    for (int p = PANEL_HEADLINE; p < N_PANELS; p++) {
        size_t first = n_series;
        for (size_t s = 0; s < n_series; s++)
            if (series[s].panel == p) {
                first = s;
                break;
            }
        if (first == n_series)
            continue;
        char title[128];
        if (p == PANEL_HEADLINE)
            snprintf(title, sizeof title, "%s: the game's headline (actors' games)",
                     series[first].name);
        fprintf(f, "set title ");
        s_gp_string(f, p == PANEL_HEADLINE   ? title
                       : p == PANEL_DECLARED ? "the game's other metrics (actors' games)"
                                             : s_panels[p].title);
        fprintf(f, "\n");
        fprintf(f, "plot ");
        bool sep = false;
        for (size_t s = first; s < n_series; s++) {
            if (series[s].panel != p)
                continue;
            fprintf(f, "%s'curves.dat' using 1:%zu with %s lw 2 title ", sep ? ", " : "", s + 3,
                    style);
            s_gp_string(f, series[s].name);
            sep = true;
        }
        fprintf(f, "\n");
    }
    fprintf(f, "unset multiplot\n");
    if (fclose(f) != 0)
        goto io_fail;
    json_decref(ppo);
    return n_panels;
io_fail:
    ag_error("agora", "cannot write %s: %s", path, strerror(errno));
    json_decref(ppo);
    return -1;
}
