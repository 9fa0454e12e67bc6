/*
 * metrics.c - the game's figures of a batch (see metrics.h). Means are over
 * the trajectories that carry a metric, so a metric a game reports only for
 * some episodes is not diluted by the others.
 */
#include "metrics.h"

#include <stdio.h>

void ag_metrics_game(json_t *rec, ag_learner_game_t *g, ag_traj_t *const *b, size_t n)
{
    ag_game_metrics_t *gm = g->metrics;
    double wins[AG_TRAJ_MAX_SEATS] = {0}, seen[AG_TRAJ_MAX_SEATS] = {0}, reward = 0, seats = 0;
    if (gm)
        ag_game_metrics_clear(gm);
    for (size_t i = 0; i < n; i++) {
        const ag_traj_t *t = b[i];
        for (size_t k = 0; gm && k < t->n_metrics; k++)
            ag_game_metrics_add_one(gm, t->metrics[k].name, t->metrics[k].value);
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
    for (size_t a = 0; gm && a < ag_game_metrics_reported(gm); a++)
        json_object_set_new(rec, ag_game_metrics_reported_name(gm, a),
                            json_real(ag_game_metrics_reported_mean(gm, a)));
    for (size_t m = 0; gm && m < ag_game_metrics_count(gm); m++) {
        double v;
        if (ag_game_metrics_numerator(gm, m) && ag_game_metrics_value(gm, m, &v))
            json_object_set_new(rec, ag_game_metrics_name(gm, m), json_real(v));
    }
    for (int s = 0; s < AG_TRAJ_MAX_SEATS; s++)
        if (seen[s] > 0) {
            char key[32];
            snprintf(key, sizeof key, "win_rate_seat%d", s);
            json_object_set_new(rec, key, json_real(wins[s] / seen[s]));
        }
    json_object_set_new(rec, "reward_mean", json_real(seats > 0 ? reward / seats : 0.0));
}

double ag_metrics_headline(const json_t *rec, const ag_learner_game_t *g, const char **name)
{
    const json_t *v = NULL;
    const int h = g && g->metrics ? ag_game_metrics_headline(g->metrics) : -1;
    if (h >= 0) {
        *name = ag_game_metrics_name(g->metrics, (size_t)h);
        v = json_object_get(rec, *name);
    }
    if (!json_is_number(v)) {
        *name = "reward_mean";
        v = json_object_get(rec, *name);
    }
    return json_is_number(v) ? json_number_value(v) : 0.0;
}
