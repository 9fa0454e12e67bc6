/*
 * game.c - the learner's game, from the env server's Hello (see game.h).
 * Metric names are checked as the protocol defines them (ASCII letters,
 * digits, '_', at most 64 bytes): a declared name that is not one is left
 * out, so nothing the server sends can overflow or confuse the metrics
 * record.
 */
#include "game.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "env_client.h"
#include "log.h"

static bool s_name_ok(const char *s, bool may_be_empty)
{
    if (!s)
        return may_be_empty;
    const size_t n = strlen(s);
    return (n || may_be_empty) && n < AG_GAME_NAME_LEN &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

static void s_take(ag_game_info_t *info, const Agora__V1__GameSpec *g)
{
    snprintf(info->name, sizeof info->name, "%s", g->name);
    info->declared = true;
    for (size_t i = 0; i < g->n_metrics && info->n_metrics < AG_GAME_MAX_METRICS; i++) {
        const Agora__V1__MetricSpec *ms = g->metrics[i];
        const bool ratio = ms->numerator && ms->numerator[0];
        if (!s_name_ok(ms->name, false) || !s_name_ok(ms->numerator, true) ||
            !s_name_ok(ms->denominator, true) || ratio != (ms->denominator && ms->denominator[0])) {
            ag_warn("learner", "game %s: metric '%.64s' is not a valid declaration: ignored",
                    info->name, ms->name ? ms->name : "");
            continue;
        }
        ag_metric_spec_t *m = &info->metrics[info->n_metrics];
        snprintf(m->name, sizeof m->name, "%s", ms->name);
        snprintf(m->numerator, sizeof m->numerator, "%s", ratio ? ms->numerator : "");
        snprintf(m->denominator, sizeof m->denominator, "%s", ratio ? ms->denominator : "");
        if (ms->headline && info->headline < 0)
            info->headline = (int)info->n_metrics;
        info->n_metrics++;
    }
}

int ag_game_hello(const char *env, const char *want, int timeout_ms, ag_game_info_t *info)
{
    memset(info, 0, sizeof *info);
    info->headline = -1;
    snprintf(info->name, sizeof info->name, "%s", want ? want : "");
    char ep[1024];
    const size_t n = strcspn(env ? env : "", ",");
    snprintf(ep, sizeof ep, "%.*s", (int)n, env ? env : "");
    char *e = ep;
    while (*e == ' ')
        e++;
    if (!*e)
        return -ENOTCONN;
    ag_env_client_t *c = ag_env_client_create(e, timeout_ms);
    if (!c)
        return -EINVAL;
    Agora__V1__EnvReply *rep = NULL;
    int rc = ag_env_client_hello(c, "agora-learner", &rep);
    ag_env_client_destroy(&c);
    if (rc < 0)
        return rc;
    if (rep->body_case != AGORA__V1__ENV_REPLY__BODY_HELLO || !rep->hello) {
        agora__v1__env_reply__free_unpacked(rep, NULL);
        return -EPROTO;
    }
    const Agora__V1__HelloReply *h = rep->hello;
    rc = -ENOENT;
    for (size_t i = 0; i < h->n_games && rc < 0; i++) {
        const Agora__V1__GameSpec *g = h->games[i];
        if (!s_name_ok(g->name, false))
            continue;
        if ((!want || !want[0]) || !strcmp(g->name, want)) {
            s_take(info, g);
            rc = 0;
        }
    }
    if (rc == -ENOENT) {
        char offered[512] = "";
        size_t at = 0;
        for (size_t i = 0; i < h->n_games && at < sizeof offered; i++)
            at += (size_t)snprintf(offered + at, sizeof offered - at, "%s%.64s", i ? ", " : "",
                                   h->games[i]->name ? h->games[i]->name : "");
        ag_error("learner", "game.name = '%s': the env server at %s hosts %s", want, e,
                 h->n_games ? offered : "no game");
    }
    agora__v1__env_reply__free_unpacked(rep, NULL);
    return rc;
}
