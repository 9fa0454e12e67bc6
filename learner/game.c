/*
 * game.c - the learner's game, from the env server's Hello (see game.h).
 * Finding the game and reading its declarations are common/net's
 * (game_metrics.h), shared with agora-eval and the launcher; a declaration
 * that breaks the protocol's rules is left out there, so nothing the server
 * sends can overflow or confuse the metrics record.
 */
#include "game.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "env_client.h"
#include "log.h"

void ag_learner_game_finish(ag_learner_game_t *game)
{
    ag_game_metrics_destroy(&game->metrics);
}

int ag_learner_game_hello(const char *env, const char *want, int timeout_ms,
                          ag_learner_game_t *game)
{
    memset(game, 0, sizeof *game);
    snprintf(game->name, sizeof game->name, "%s", want ? want : "");
    game->metrics = ag_game_metrics_create(NULL);
    if (!game->metrics)
        return -ENOMEM;
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
    char why[768];
    const Agora__V1__GameSpec *g = ag_game_find(rep->hello, want, why, sizeof why);
    rc = -ENOENT;
    if (!g) {
        ag_error("learner", "game.name = '%s': the env server at %s: %s", want ? want : "", e,
                 why);
    } else {
        ag_game_metrics_t *m = ag_game_metrics_create(g);
        rc = m ? 0 : -ENOMEM;
        if (m) {
            ag_game_metrics_destroy(&game->metrics);
            game->metrics = m;
            snprintf(game->name, sizeof game->name, "%s", g->name);
        }
    }
    agora__v1__env_reply__free_unpacked(rep, NULL);
    return rc;
}
