/*
 * check_spec.c - agora-env-check's checks of what a server says about itself
 * (protocol.md §8.1): HelloReply and its GameSpecs (names, seats, roles,
 * options), each game's metric declarations (valid unique names, at most one
 * headline, ratio metrics naming two reported metrics), and that finished
 * episodes report exactly the metrics their game declares, since agora's
 * learner, agora-eval and launcher report what a game declares and nothing
 * else.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

#define MAX_METRIC_NAME 64

bool ag_check_hello_spec(const Agora__V1__HelloReply *h, char *why)
{
    if (!h->server_name || !*h->server_name) {
        ag_check_why(why, "empty server_name");
        return false;
    }
    if (h->protocol_version != AG_ENV_PROTOCOL_VERSION) {
        ag_check_why(why, "HelloReply.protocol_version %" PRIu32 ", expected 1",
                     h->protocol_version);
        return false;
    }
    if (h->n_games == 0) {
        ag_check_why(why, "no games listed");
        return false;
    }
    if (h->episode_ttl_ms == 0) {
        ag_check_why(why, "episode_ttl_ms is 0");
        return false;
    }
    for (size_t i = 0; i < h->n_games; i++) {
        const Agora__V1__GameSpec *g = h->games[i];
        size_t len = g->name ? strlen(g->name) : 0;
        if (len == 0 || len > AG_CHECK_MAX_GAME_NAME) {
            ag_check_why(why, "game %zu: name length %zu (1..%d)", i, len, AG_CHECK_MAX_GAME_NAME);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (ag_check_str_eq(h->games[j]->name, g->name)) {
                ag_check_why(why, "game '%s' listed twice", g->name);
                return false;
            }
        }
        if (g->num_players < 1 || g->num_players > AG_CHECK_MAX_SEATS) {
            ag_check_why(why, "game '%s': num_players %" PRIu32 " (1..%d)", g->name, g->num_players,
                         AG_CHECK_MAX_SEATS);
            return false;
        }
        if (g->n_roles != g->num_players) {
            ag_check_why(why, "game '%s': %zu roles for %" PRIu32 " players", g->name, g->n_roles,
                         g->num_players);
            return false;
        }
        for (size_t j = 0; j < g->n_options; j++) {
            if (!g->options[j]->name || !*g->options[j]->name) {
                ag_check_why(why, "game '%s': option %zu has no name", g->name, j);
                return false;
            }
            for (size_t k = 0; k < j; k++) {
                if (ag_check_str_eq(g->options[k]->name, g->options[j]->name)) {
                    ag_check_why(why, "game '%s': option '%s' listed twice", g->name,
                                 g->options[j]->name);
                    return false;
                }
            }
        }
    }
    return true;
}

/* 1..64 bytes of ASCII letters, digits and '_'. */
static bool s_metric_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MAX_METRIC_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_';
        if (!ok)
            return false;
    }
    return true;
}

static bool s_is_ratio(const Agora__V1__MetricSpec *m)
{
    return (m->numerator && *m->numerator) || (m->denominator && *m->denominator);
}

static const Agora__V1__MetricSpec *s_declared(const Agora__V1__GameSpec *g, const char *name)
{
    for (size_t i = 0; i < g->n_metrics; i++)
        if (ag_check_str_eq(g->metrics[i]->name, name))
            return g->metrics[i];
    return NULL;
}

/* A ratio's numerator or denominator: another declared metric, reported (not a ratio). */
static bool s_ratio_part_ok(const Agora__V1__GameSpec *g, const Agora__V1__MetricSpec *m,
                            const char *part, const char *which, char *why)
{
    const Agora__V1__MetricSpec *p = part && *part ? s_declared(g, part) : NULL;
    if (!part || !*part) {
        ag_check_why(why, "ratio metric '%s' has a %s but no %s", m->name,
                     !strcmp(which, "numerator") ? "denominator" : "numerator", which);
    } else if (!p || p == m) {
        ag_check_why(why, "ratio metric '%s': %s '%.64s' is not another declared metric", m->name,
                     which, part);
    } else if (s_is_ratio(p)) {
        ag_check_why(why, "ratio metric '%s': %s '%s' is itself a ratio, which is not reported",
                     m->name, which, part);
    } else {
        return true;
    }
    return false;
}

static bool s_metric_specs_ok(const Agora__V1__GameSpec *g, char *why)
{
    const char *headline = NULL;
    for (size_t i = 0; i < g->n_metrics; i++) {
        const Agora__V1__MetricSpec *m = g->metrics[i];
        if (!s_metric_name_ok(m->name)) {
            ag_check_why(why, "metric %zu: name '%.80s' is not 1..%d ASCII letters, digits or '_'",
                         i, m->name ? m->name : "", MAX_METRIC_NAME);
            return false;
        }
        if (s_declared(g, m->name) != m) {
            ag_check_why(why, "metric '%s' declared twice", m->name);
            return false;
        }
        if ((int)m->goal < 0 || (int)m->goal > AGORA__V1__METRIC_GOAL__METRIC_GOAL_MINIMIZE) {
            ag_check_why(why, "metric '%s': goal %d is not a MetricGoal", m->name, (int)m->goal);
            return false;
        }
        if (m->headline && headline) {
            ag_check_why(why, "two headline metrics, '%s' and '%s' (at most one)", headline,
                         m->name);
            return false;
        }
        if (m->headline)
            headline = m->name;
        if (s_is_ratio(m) && (!s_ratio_part_ok(g, m, m->numerator, "numerator", why) ||
                              !s_ratio_part_ok(g, m, m->denominator, "denominator", why)))
            return false;
    }
    return true;
}

void ag_check_metric_specs(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, "metric_specs");
    ag_check_report(c, s_metric_specs_ok(g, why), name, "§8.1", why);
}

/* Metrics of one finished episode against the declarations (which declare some).
 * A declared metric may be missing (one that applies only under some options);
 * an undeclared one, a ratio, or one reported twice may not. */
static bool s_reported_ok(const Agora__V1__GameSpec *g, const Agora__V1__Transcript *t, char *why)
{
    for (size_t i = 0; i < t->n_metrics; i++) {
        const char *name = t->metrics[i]->name;
        const Agora__V1__MetricSpec *m = s_declared(g, name);
        if (!m) {
            ag_check_why(why,
                         "seed %" PRIu64 ": the episode reports metric '%.64s', which the "
                         "game does not declare",
                         t->seed, name ? name : "");
            return false;
        }
        if (s_is_ratio(m)) {
            ag_check_why(why,
                         "seed %" PRIu64 ": the episode reports ratio metric '%s', which is "
                         "computed from its numerator and denominator, not reported",
                         t->seed, name);
            return false;
        }
        for (size_t j = 0; j < i; j++) {
            if (ag_check_str_eq(t->metrics[j]->name, name)) {
                ag_check_why(why, "seed %" PRIu64 ": metric '%s' reported twice", t->seed, name);
                return false;
            }
        }
    }
    return true;
}

void ag_check_metrics_reported(ag_check_t *c, const Agora__V1__GameSpec *g,
                               Agora__V1__Transcript *const *t, size_t n)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, "metrics_declared");
    if (g->n_metrics == 0) {
        size_t reported = 0;
        for (size_t i = 0; i < n; i++)
            reported += t[i]->n_metrics;
        if (reported) {
            /* Declarations are new in v1; consumers fall back to mean returns. */
            ag_check_why(why,
                         "the game declares no metrics (GameSpec.metrics) but its episodes "
                         "report %.64s and others: agora's tools will show only returns",
                         t[0]->n_metrics ? t[0]->metrics[0]->name : "some");
            ag_check_skip(c, name, why);
        } else {
            ag_check_report(c, true, name, "§8.1", "");
        }
        return;
    }
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++)
        ok = s_reported_ok(g, t[i], why);
    ag_check_report(c, ok, name, "§8.1", why);
}
