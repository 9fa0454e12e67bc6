/*
 * game_metrics.c - declared metrics over many episodes (see game_metrics.h).
 * Sums live per reported metric; a declared metric only points at the sums
 * it is computed from, so a ratio and the metrics it divides share them.
 */
#include "game_metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef struct sum {
    char name[AG_GAME_METRICS_NAME_MAX + 1];
    double total;
    size_t n;
} sum_t;

typedef struct decl {
    char name[AG_GAME_METRICS_NAME_MAX + 1];
    char num[AG_GAME_METRICS_NAME_MAX + 1]; /* "" = a mean of name */
    char den[AG_GAME_METRICS_NAME_MAX + 1];
    char *description; /* owned */
    Agora__V1__MetricGoal goal;
} decl_t;

struct ag_game_metrics {
    decl_t decl[AG_GAME_METRICS_MAX];
    size_t n_decl;
    int headline;
    sum_t sums[AG_GAME_METRICS_MAX];
    size_t n_sums;
};

/* §8.1: 1..64 ASCII letters, digits and '_'. */
static bool s_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > AG_GAME_METRICS_NAME_MAX)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_'))
            return false;
    return true;
}

static bool s_empty(const char *s)
{
    return !s || !*s;
}

const Agora__V1__GameSpec *ag_game_find(const Agora__V1__HelloReply *h, const char *want,
                                        char *why, size_t why_len)
{
    char listed[512] = "";
    size_t at = 0;
    for (size_t g = 0; h && g < h->n_games; g++) {
        const Agora__V1__GameSpec *gs = h->games[g];
        if (!gs || s_empty(gs->name) || strlen(gs->name) > AG_GAME_METRICS_NAME_MAX)
            continue;
        if (s_empty(want) || !strcmp(gs->name, want))
            return gs;
        if (at < sizeof listed)
            at += (size_t)snprintf(listed + at, sizeof listed - at, "%s%s", at ? ", " : "",
                                   gs->name);
    }
    if (s_empty(want))
        snprintf(why, why_len, "it lists no game");
    else
        snprintf(why, why_len, "it has no game \"%.64s\" (it lists: %s)", want,
                 at ? listed : "nothing");
    return NULL;
}

bool ag_game_has_bot(const Agora__V1__GameSpec *g, const char *bot)
{
    for (size_t i = 0; g && bot && i < g->n_bots; i++)
        if (g->bots[i] && !strcmp(g->bots[i], bot))
            return true;
    return false;
}

ag_game_metrics_t *ag_game_metrics_create(const Agora__V1__GameSpec *spec)
{
    ag_game_metrics_t *gm = calloc(1, sizeof *gm);
    if (!gm)
        return NULL;
    gm->headline = -1;
    const char *game = spec && spec->name ? spec->name : "?";
    for (size_t i = 0; spec && i < spec->n_metrics; i++) {
        const Agora__V1__MetricSpec *m = spec->metrics[i];
        const char *name = m ? m->name : NULL;
        bool ratio = m && (!s_empty(m->numerator) || !s_empty(m->denominator));
        const char *why = NULL;
        if (!s_name_ok(name))
            why = "its name is not 1..64 ASCII letters, digits or '_'";
        else if (ratio && (!s_name_ok(m->numerator) || !s_name_ok(m->denominator)))
            why = "a ratio needs both a numerator and a denominator, each a metric name";
        else if (gm->n_decl == AG_GAME_METRICS_MAX)
            why = "too many declared metrics";
        for (size_t k = 0; !why && k < gm->n_decl; k++)
            if (!strcmp(gm->decl[k].name, name))
                why = "declared twice";
        if (why) {
            ag_warn("game", "game %s: metric %zu (%.64s) left out: %s", game, i, name ? name : "",
                    why);
            continue;
        }
        decl_t *d = &gm->decl[gm->n_decl];
        snprintf(d->name, sizeof d->name, "%s", name);
        d->description = strdup(m->description ? m->description : "");
        if (!d->description) {
            ag_game_metrics_destroy(&gm);
            return NULL;
        }
        d->goal = m->goal >= AGORA__V1__METRIC_GOAL__METRIC_GOAL_UNSPECIFIED &&
                          m->goal <= AGORA__V1__METRIC_GOAL__METRIC_GOAL_MINIMIZE
                      ? m->goal
                      : AGORA__V1__METRIC_GOAL__METRIC_GOAL_UNSPECIFIED;
        if (ratio) {
            snprintf(d->num, sizeof d->num, "%s", m->numerator);
            snprintf(d->den, sizeof d->den, "%s", m->denominator);
        }
        if (m->headline && gm->headline >= 0)
            ag_warn("game", "game %s: a second headline (%s) after %s; %s is the headline", game,
                    name, gm->decl[gm->headline].name, gm->decl[gm->headline].name);
        else if (m->headline)
            gm->headline = (int)gm->n_decl;
        gm->n_decl++;
    }
    return gm;
}

void ag_game_metrics_destroy(ag_game_metrics_t **self)
{
    if (!self || !*self)
        return;
    for (size_t i = 0; i < (*self)->n_decl; i++)
        free((*self)->decl[i].description);
    free(*self);
    *self = NULL;
}

static const sum_t *s_find(const ag_game_metrics_t *gm, const char *name)
{
    for (size_t k = 0; k < gm->n_sums; k++)
        if (!strcmp(gm->sums[k].name, name))
            return &gm->sums[k];
    return NULL;
}

void ag_game_metrics_add_one(ag_game_metrics_t *self, const char *name, double value)
{
    if (!s_name_ok(name) || !isfinite(value))
        return;
    sum_t *s = (sum_t *)s_find(self, name);
    if (!s) {
        if (self->n_sums == AG_GAME_METRICS_MAX)
            return;
        s = &self->sums[self->n_sums++];
        snprintf(s->name, sizeof s->name, "%s", name);
        s->total = 0;
        s->n = 0;
    }
    s->total += value;
    s->n++;
}

void ag_game_metrics_add(ag_game_metrics_t *self, Agora__V1__Metric *const *metrics, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (metrics[i])
            ag_game_metrics_add_one(self, metrics[i]->name, metrics[i]->value);
}

void ag_game_metrics_clear(ag_game_metrics_t *self)
{
    self->n_sums = 0;
}

size_t ag_game_metrics_count(const ag_game_metrics_t *self)
{
    return self->n_decl;
}

const char *ag_game_metrics_name(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_decl ? self->decl[i].name : NULL;
}

const char *ag_game_metrics_description(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_decl ? self->decl[i].description : NULL;
}

Agora__V1__MetricGoal ag_game_metrics_goal(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_decl ? self->decl[i].goal : AGORA__V1__METRIC_GOAL__METRIC_GOAL_UNSPECIFIED;
}

const char *ag_game_metrics_numerator(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_decl && self->decl[i].num[0] ? self->decl[i].num : NULL;
}

const char *ag_game_metrics_denominator(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_decl && self->decl[i].num[0] ? self->decl[i].den : NULL;
}

int ag_game_metrics_headline(const ag_game_metrics_t *self)
{
    return self->headline;
}

bool ag_game_metrics_value(const ag_game_metrics_t *self, size_t i, double *out)
{
    if (i >= self->n_decl)
        return false;
    const decl_t *d = &self->decl[i];
    if (!d->num[0]) {
        const sum_t *s = s_find(self, d->name);
        if (!s || s->n == 0)
            return false;
        *out = s->total / (double)s->n;
        return true;
    }
    const sum_t *num = s_find(self, d->num), *den = s_find(self, d->den);
    if (!den || den->total == 0)
        return false;
    *out = (num ? num->total : 0.0) / den->total;
    return true;
}

size_t ag_game_metrics_reported(const ag_game_metrics_t *self)
{
    return self->n_sums;
}

const char *ag_game_metrics_reported_name(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_sums ? self->sums[i].name : NULL;
}

double ag_game_metrics_reported_mean(const ag_game_metrics_t *self, size_t i)
{
    return i < self->n_sums ? self->sums[i].total / (double)self->sums[i].n : NAN;
}
