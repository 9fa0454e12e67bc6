/*
 * agora-env-check - a conformance checker for any environment server that
 * speaks the agora env protocol v1, whatever language it is written in.
 *
 * The checker cannot know a foreign game's valid actions, so it learns them
 * from the protocol itself: it asks Demo for transcripts of each game the
 * server lists in Hello, then replays a transcript's actions with Reset(seed)
 * and Step and requires the same observations, per-step rewards, returns,
 * terminal flag, info and metrics. That one comparison covers both "play to
 * termination" and "determinism", and with bot seats it shows whether bots
 * draw from streams of their own. Around it: Hello and the games' metric
 * declarations, request-id echo, framing, the limits of §6, Close, unknown
 * episodes/games/options/bots, wrong seat-bot counts, Demo counts, acting out
 * of turn, invalid and over-long actions (the state must be unchanged: the
 * replay continues identically afterwards), version mismatch, wrong wire
 * types and malformed input of every kind, after which the server must still
 * answer. One line per check, a summary, exit status 0 (all passed), 1 (a
 * check failed) or 2 (usage error or no answer from the server).
 *
 * This file holds the command line and the order of the run; check.h says
 * which file holds which checks.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"
#include "config.h"

#define OPT(f, ...) AG_OPT(ag_check_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(only_game, "check.game", "game", "", 0, 64,
        "check only this game (empty: every game in Hello)"),
    OPT(seed, "check.seed", "seed", "1", 0, 0, "first seed for demos and resets"),
    OPT(timeout_ms, "check.timeout_ms", "timeout-ms", "3000", 1, 600000,
        "deadline of each request in milliseconds"),
};
#undef OPT

static const char s_summary[] =
    "Checks that the environment server at ENDPOINT (e.g. tcp://127.0.0.1:5570) follows the "
    "agora env protocol v1: Hello and metric declarations, Demo, Reset/Step replayed against "
    "the server's own demo transcripts (to termination, deterministically, with bot seats), "
    "acting out of turn, invalid actions, unknown episodes/games/options/bots, seat-bot "
    "counts, Demo counts, Close, the limits of protocol.md section 6, version mismatch, wrong "
    "wire types and malformed requests. Prints PASS/FAIL/SKIP per check (a FAIL names the "
    "section of docs/protocol.md whose rule is broken) and a summary. Exit status: 0 all "
    "checks passed, 1 a check failed, 2 usage error or no answer.";

/* Runs every check against c->endpoint; returns the exit status. */
static int s_check(ag_check_t *c, const char *only_game)
{
    c->cl = ag_env_client_create(c->endpoint, c->timeout_ms);
    if (!c->cl)
        return 2;

    /* First contact: one try only, so an unreachable server fails within the timeout. */
    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *hello = NULL;
    ag_env_client_set_strict(c->cl, true);
    ag_env_client_set_retries(c->cl, 0);
    int rc = ag_env_client_hello(c->cl, "agora-env-check", &hello);
    ag_env_client_set_retries(c->cl, 1);
    if (rc && rc != -EBADMSG) {
        if (rc == -ETIMEDOUT)
            ag_check_why(why, "no reply from %s within %d ms", c->endpoint, c->timeout_ms);
        else
            ag_check_call_error(why, rc);
        printf("FAIL hello: %s\n", why);
        ag_env_client_destroy(&c->cl);
        return 2;
    }
    if (rc) {
        /* It answers, but not in a way any client can match: nothing else is checkable. */
        ag_check_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
        ag_check_report(c, false, "hello", "§4", why);
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c->cl);
        printf("agora-env-check: %d passed, %d failed, %d skipped\n", c->passed, c->failed,
               c->skipped);
        return 1;
    }
    bool ok = ag_check_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why) &&
              ag_check_hello_spec(hello->hello, why);
    ag_check_report(c, ok, "hello", "§8.1", why);

    ag_check_framing(c);

    const Agora__V1__HelloReply *h =
        hello->body_case == AGORA__V1__ENV_REPLY__BODY_HELLO ? hello->hello : NULL;
    size_t n_games = h ? h->n_games : 0;
    Agora__V1__EnvReply **demos = calloc(n_games + 1, sizeof *demos);
    if (!demos) {
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c->cl);
        return 2;
    }
    const Agora__V1__GameSpec *first = NULL;
    for (size_t i = 0; i < n_games; i++) {
        if (only_game && !ag_check_str_eq(only_game, h->games[i]->name))
            continue;
        first = first ? first : h->games[i];
        demos[i] = ag_check_game(c, h->games[i]);
    }
    if (only_game && !first) {
        ag_check_why(why, "the server does not list game '%s' in Hello", only_game);
        ag_check_report(c, false, "game_listed", "§8.1", why);
    }
    ag_check_unknown_game(c);
    if (first)
        ag_check_limits(c, first);
    ag_check_malformed(c);

    /* After all the abuse, a fresh replay (the second transcript, seed + 1) must still match. */
    for (size_t i = 0; i < n_games; i++) {
        if (!demos[i])
            continue;
        char name[128];
        uint64_t ep;
        ag_check_name(name, sizeof name, h->games[i]->name, "final_replay");
        bool same =
            ag_check_replay(c, h->games[i]->name, demos[i]->demo->transcripts[1], NULL, &ep, why);
        if (!same)
            ag_check_close_quietly(c, ep);
        ag_check_report(c, same, name, "§8.6", why);
        ag_check_free(&demos[i]);
    }
    free(demos);
    agora__v1__env_reply__free_unpacked(hello, NULL);
    ag_env_client_destroy(&c->cl);

    printf("agora-env-check: %d passed, %d failed, %d skipped\n", c->passed, c->failed, c->skipped);
    return c->failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create("agora-env-check", "[options] ENDPOINT", s_summary,
                                        s_options, sizeof s_options / sizeof s_options[0], 1);
    if (!cfg)
        return 2;
    ag_check_t c = {0};
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc == 0 && ag_config_positional_count(cfg) != 1) {
        fprintf(stderr, "agora-env-check: expected one ENDPOINT (see --help)\n");
        rc = -1;
    }
    if (rc == 0 && ag_config_apply(cfg, &c) < 0)
        rc = -1;
    if (rc == 0) {
        c.endpoint = ag_config_positional(cfg, 0);
        rc = s_check(&c, c.only_game[0] ? c.only_game : NULL);
    } else {
        rc = rc > 0 ? 0 : 2;
    }
    ag_config_destroy(&cfg);
    return rc;
}
