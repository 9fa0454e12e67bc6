/*
 * metrics.c - the game's figures of a batch (see metrics.h). Means are over
 * the trajectories that carry a metric, so a metric a game reports only for
 * some episodes is not diluted by the others.
 */
#include "metrics.h"

#include <stdio.h>
#include <string.h>

typedef struct acc {
    const char *name;
    double sum, cnt;
} acc_t;

/* The accumulator of name, added if there is room; NULL when full. */
static acc_t *s_acc(acc_t *acc, size_t *na, size_t cap, const char *name)
{
    for (size_t a = 0; a < *na; a++)
        if (!strcmp(acc[a].name, name))
            return &acc[a];
    if (*na == cap)
        return NULL;
    acc[*na] = (acc_t){name, 0, 0};
    return &acc[(*na)++];
}

void ag_metrics_game(json_t *rec, const ag_game_info_t *g, ag_traj_t *const *b, size_t n)
{
    acc_t acc[AG_TRAJ_MAX_METRICS];
    size_t na = 0;
    double wins[AG_TRAJ_MAX_SEATS] = {0}, seen[AG_TRAJ_MAX_SEATS] = {0}, reward = 0, seats = 0;
    for (size_t i = 0; i < n; i++) {
        const ag_traj_t *t = b[i];
        for (size_t k = 0; k < t->n_metrics; k++) {
            acc_t *a = s_acc(acc, &na, AG_TRAJ_MAX_METRICS, t->metrics[k].name);
            if (a) {
                a->sum += t->metrics[k].value;
                a->cnt += 1;
            }
        }
        for (size_t s = 0; s < t->n_returns && s < AG_TRAJ_MAX_SEATS; s++) {
            wins[s] += t->returns[s] > 0.0f;
            seen[s] += 1;
        }
        for (size_t s = 0; s < t->n_seats; s++) {
            for (size_t k = 0; k < t->seats[s].n_turns; k++)
                reward += t->seats[s].turn_rewards[k];
            seats += 1;
        }
    }
    for (size_t a = 0; a < na; a++)
        json_object_set_new(rec, acc[a].name, json_real(acc[a].sum / acc[a].cnt));
    for (size_t m = 0; g && m < g->n_metrics; m++) {
        const ag_metric_spec_t *ms = &g->metrics[m];
        if (!ms->numerator[0])
            continue;
        double num = 0, den = 0;
        for (size_t a = 0; a < na; a++) {
            if (!strcmp(acc[a].name, ms->numerator))
                num = acc[a].sum;
            if (!strcmp(acc[a].name, ms->denominator))
                den = acc[a].sum;
        }
        if (den != 0)
            json_object_set_new(rec, ms->name, json_real(num / den));
    }
    for (int s = 0; s < AG_TRAJ_MAX_SEATS; s++)
        if (seen[s] > 0) {
            char key[32];
            snprintf(key, sizeof key, "win_rate_seat%d", s);
            json_object_set_new(rec, key, json_real(wins[s] / seen[s]));
        }
    json_object_set_new(rec, "reward_mean", json_real(seats > 0 ? reward / seats : 0.0));
}

double ag_metrics_headline(const json_t *rec, const ag_game_info_t *g, const char **name)
{
    const json_t *v = NULL;
    if (g && g->headline >= 0) {
        *name = g->metrics[g->headline].name;
        v = json_object_get(rec, *name);
    }
    if (!json_is_number(v)) {
        *name = "reward_mean";
        v = json_object_get(rec, *name);
    }
    return json_is_number(v) ? json_number_value(v) : 0.0;
}
