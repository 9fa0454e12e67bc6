/*
 * check_limits.c - agora-env-check's checks of the limits of protocol.md §6
 * that an env server must enforce: every string and repeated field of Hello,
 * Reset, Step and Demo one byte or one entry over its limit gets
 * ERROR_BAD_REQUEST, and the same request exactly at the limit does not (it
 * gets the answer its content deserves: an unknown game, option or bot, an
 * invalid action). A server that skips a limit answers the over-limit request
 * as if it were within it, which is what each check catches; the at-limit
 * half catches a limit set one too low. Limits come before the body's own
 * checks (§4), so an over-long game name is BAD_REQUEST, not UNKNOWN_GAME.
 * Every text sent is ASCII, so no runtime refuses it for its encoding.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define MAX_STRING 256
#define MAX_NAME 64
#define MAX_REPEATED 32

/* A no-reply error code: ag_check_error() counts a non-error reply as code 0. */
#define REPLY 0

/*
 * Over the limit (rc_over, over): ERROR_BAD_REQUEST. At it (rc_at, at): one of
 * at_codes (REPLY for a non-error reply). Frees both replies.
 */
static void s_limit(ag_check_t *c, const char *name, int rc_over, Agora__V1__EnvReply *over,
                    int rc_at, Agora__V1__EnvReply *at, const int *at_codes, size_t n_at)
{
    char why[AG_CHECK_WHY], at_why[AG_CHECK_WHY];
    bool ok = ag_check_error1(rc_over, over, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST, why);
    if (ok) {
        ok = ag_check_error(rc_at, at, at_codes, n_at, at_why);
        if (!ok)
            ag_check_why(why, "exactly at the limit: %s", at_why);
    } else {
        ag_check_free(&at);
        ag_check_why_prefix(why, "over the limit: ");
    }
    ag_check_report(c, ok, name, "§6", why);
}

/* n distinct options "agora-check-K" (names no game has), each set to "1". */
typedef struct {
    const char *kv[MAX_REPEATED + 1][2];
    char keys[MAX_REPEATED + 1][24];
} options_t;

static void s_options(options_t *o, size_t n)
{
    for (size_t i = 0; i < n && i <= MAX_REPEATED; i++) {
        snprintf(o->keys[i], sizeof o->keys[i], "agora-check-%zu", i);
        o->kv[i][0] = o->keys[i];
        o->kv[i][1] = "1";
    }
}

/* Resets or demos (demo) of game with the given options and seat bots. */
static int s_send(ag_check_t *c, bool demo, const char *game, const char *const (*kv)[2],
                  size_t n_kv, const char *const *bots, size_t n_bots, Agora__V1__EnvReply **r)
{
    if (demo)
        return ag_check_demo(c, game, c->seed, 1, bots, n_bots, kv, n_kv, r);
    return ag_env_client_reset(c->cl, game, c->seed, kv, n_kv, bots, n_bots, r);
}

/* The limits of Reset (demo false) or Demo (demo true): game, options, keys, values, bots. */
static void s_reset_or_demo(ag_check_t *c, bool demo, const Agora__V1__GameSpec *g)
{
    const char *req = demo ? "limits.demo" : "limits.reset";
    const char *bots_field = demo ? "bots" : "seat_bots";
    /* A Demo on a server without demos is refused after the limits (§4, step 5). */
    const int unknown_game[] = {AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME,
                                AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED};
    const int bad_option[] = {AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION,
                              AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED};
    size_t n_at = demo ? 2 : 1;
    char name[128];
    Agora__V1__EnvReply *over = NULL, *at = NULL;
    int rc_over, rc_at;

    char *long_game = ag_check_filled(MAX_NAME + 1, 'g');
    options_t *o = calloc(1, sizeof *o);
    char *long_value = ag_check_filled(MAX_STRING + 1, 'v');
    char *long_key = ag_check_filled(MAX_NAME + 1, 'k');
    char *bot = ag_check_filled(MAX_STRING + 1, 'b');
    if (!long_game || !o || !long_value || !long_key || !bot) {
        ag_check_report(c, false, req, "§6", "out of memory");
        goto done;
    }
    s_options(o, MAX_REPEATED + 1);

    snprintf(name, sizeof name, "%s.game", req);
    rc_over = s_send(c, demo, long_game, NULL, 0, NULL, 0, &over);
    long_game[MAX_NAME] = 0;
    rc_at = s_send(c, demo, long_game, NULL, 0, NULL, 0, &at);
    s_limit(c, name, rc_over, over, rc_at, at, unknown_game, n_at);

    snprintf(name, sizeof name, "%s.options", req);
    rc_over = s_send(c, demo, g->name, o->kv, MAX_REPEATED + 1, NULL, 0, &over);
    rc_at = s_send(c, demo, g->name, o->kv, MAX_REPEATED, NULL, 0, &at);
    s_limit(c, name, rc_over, over, rc_at, at, bad_option, n_at);

    snprintf(name, sizeof name, "%s.option_key", req);
    const char *key_kv[1][2] = {{long_key, "1"}};
    rc_over = s_send(c, demo, g->name, key_kv, 1, NULL, 0, &over);
    long_key[MAX_NAME] = 0;
    rc_at = s_send(c, demo, g->name, key_kv, 1, NULL, 0, &at);
    s_limit(c, name, rc_over, over, rc_at, at, bad_option, n_at);

    /* The value of an option the game has, if any: a server must not look at it first. */
    snprintf(name, sizeof name, "%s.option_value", req);
    const char *value_kv[1][2] = {
        {g->n_options ? g->options[0]->name : "agora-check-option", long_value}};
    rc_over = s_send(c, demo, g->name, value_kv, 1, NULL, 0, &over);
    long_value[MAX_STRING] = 0;
    value_kv[0][0] = "agora-check-option";
    rc_at = s_send(c, demo, g->name, value_kv, 1, NULL, 0, &at);
    s_limit(c, name, rc_over, over, rc_at, at, bad_option, n_at);

    /* 9 seats' worth of bots: over the limit of 8 whatever the game's seat count. */
    snprintf(name, sizeof name, "%s.%s", req, bots_field);
    const char *nine[AG_CHECK_MAX_SEATS + 1];
    for (size_t i = 0; i <= AG_CHECK_MAX_SEATS; i++)
        nine[i] = "";
    rc_over = s_send(c, demo, g->name, NULL, 0, nine, AG_CHECK_MAX_SEATS + 1, &over);
    char why[AG_CHECK_WHY];
    bool ok = ag_check_error1(rc_over, over, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST, why);
    ag_check_report(c, ok, name, "§6", why);

    /* One bot name per seat, the first over 256 bytes (an unknown bot at 256). */
    snprintf(name, sizeof name, "%s.bot_name", req);
    const char *seats[AG_CHECK_MAX_SEATS];
    size_t np = g->num_players >= 1 && g->num_players <= AG_CHECK_MAX_SEATS ? g->num_players : 1;
    for (size_t i = 0; i < np; i++)
        seats[i] = "";
    seats[0] = bot;
    rc_over = s_send(c, demo, g->name, NULL, 0, seats, np, &over);
    bot[MAX_STRING] = 0;
    rc_at = s_send(c, demo, g->name, NULL, 0, seats, np, &at);
    s_limit(c, name, rc_over, over, rc_at, at, bad_option, n_at);
done:
    free(long_game);
    free(o);
    free(long_value);
    free(long_key);
    free(bot);
}

/* Hello.client_name: 256 bytes at most. */
static void s_hello(ag_check_t *c)
{
    char *client = ag_check_filled(MAX_STRING + 1, 'c');
    if (!client) {
        ag_check_report(c, false, "limits.hello.client_name", "§6", "out of memory");
        return;
    }
    Agora__V1__EnvReply *over = NULL, *at = NULL;
    int rc_over = ag_env_client_hello(c->cl, client, &over);
    client[MAX_STRING] = 0;
    int rc_at = ag_env_client_hello(c->cl, client, &at);
    const int reply = REPLY;
    s_limit(c, "limits.hello.client_name", rc_over, over, rc_at, at, &reply, 1);
    free(client);
}

/* Step.action: 4096 bytes at most, on a fresh episode of game g. */
static void s_step(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    const char *name = "limits.step.action";
    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *r = NULL, *over = NULL, *at = NULL;
    int rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, NULL, 0, &r);
    if (!ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why)) {
        ag_check_why_prefix(why, "Reset: ");
        ag_check_report(c, false, name, "§8.2", why);
        ag_check_free(&r);
        return;
    }
    uint64_t ep = r->reset->episode_id;
    uint32_t seat = r->reset->to_act;
    ag_check_free(&r);
    char *action = ag_check_filled(AG_ENV_MAX_ACTION + 1, '7');
    if (!action) {
        ag_check_report(c, false, name, "§6", "out of memory");
        ag_check_close_quietly(c, ep);
        return;
    }
    int rc_over = ag_env_client_step(c->cl, ep, seat, action, &over);
    action[AG_ENV_MAX_ACTION] = 0;
    /* Not a limit matter any more: the game may refuse the move or take it. */
    int rc_at = ag_env_client_step(c->cl, ep, seat, action, &at);
    const int at_codes[] = {AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION, REPLY};
    s_limit(c, name, rc_over, over, rc_at, at, at_codes, 2);
    free(action);
    ag_check_close_quietly(c, ep);
}

void ag_check_limits(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    s_hello(c);
    s_reset_or_demo(c, false, g);
    s_step(c, g);
    s_reset_or_demo(c, true, g);
}
