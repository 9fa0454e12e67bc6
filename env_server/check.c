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
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: agora-env-check [OPTIONS] ENDPOINT\n"
            "\n"
            "Checks that the environment server at ENDPOINT (e.g. tcp://127.0.0.1:5570)\n"
            "follows the agora env protocol v1: Hello and metric declarations, Demo,\n"
            "Reset/Step replayed against the server's own demo transcripts (to termination,\n"
            "deterministically, with bot seats), acting out of turn, invalid actions,\n"
            "unknown episodes/games/options/bots, seat-bot counts, Demo counts, Close, the\n"
            "limits of protocol.md section 6, version mismatch, wrong wire types and\n"
            "malformed requests. Prints PASS/FAIL/SKIP per check (a FAIL names the section\n"
            "of docs/protocol.md whose rule is broken) and a summary.\n"
            "\n"
            "options:\n"
            "  -g, --game NAME        check only this game (default: every game in Hello)\n"
            "  -s, --seed N           first seed for demos and resets (default 1)\n"
            "  -t, --timeout-ms N     deadline of each request in ms (default 3000)\n"
            "  -h, --help             show this help\n"
            "\n"
            "exit status: 0 all checks passed, 1 a check failed, 2 usage error or no answer\n");
}

static bool s_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-')
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"game", required_argument, NULL, 'g'},
                                             {"seed", required_argument, NULL, 's'},
                                             {"timeout-ms", required_argument, NULL, 't'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    ag_check_t c = {.timeout_ms = AG_ENV_DEFAULT_TIMEOUT_MS, .seed = 1};
    const char *only_game = NULL;
    uint64_t v;
    int opt;
    while ((opt = getopt_long(argc, argv, "g:s:t:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'g':
            only_game = optarg;
            break;
        case 's':
            if (!s_parse_u64(optarg, &c.seed)) {
                fprintf(stderr, "agora-env-check: bad --seed '%s'\n", optarg);
                return 2;
            }
            break;
        case 't':
            if (!s_parse_u64(optarg, &v) || v < 1 || v > 600000) {
                fprintf(stderr, "agora-env-check: --timeout-ms must be 1..600000\n");
                return 2;
            }
            c.timeout_ms = (int)v;
            break;
        case 'h':
            s_usage(stdout);
            return 0;
        default:
            s_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        s_usage(stderr);
        return 2;
    }
    c.endpoint = argv[optind];
    c.cl = ag_env_client_create(c.endpoint, c.timeout_ms);
    if (!c.cl)
        return 2;

    /* First contact: one try only, so an unreachable server fails within the timeout. */
    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *hello = NULL;
    ag_env_client_set_strict(c.cl, true);
    ag_env_client_set_retries(c.cl, 0);
    int rc = ag_env_client_hello(c.cl, "agora-env-check", &hello);
    ag_env_client_set_retries(c.cl, 1);
    if (rc && rc != -EBADMSG) {
        if (rc == -ETIMEDOUT)
            ag_check_why(why, "no reply from %s within %d ms", c.endpoint, c.timeout_ms);
        else
            ag_check_call_error(why, rc);
        printf("FAIL hello: %s\n", why);
        ag_env_client_destroy(&c.cl);
        return 2;
    }
    if (rc) {
        /* It answers, but not in a way any client can match: nothing else is checkable. */
        ag_check_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why);
        ag_check_report(&c, false, "hello", "§4", why);
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c.cl);
        printf("agora-env-check: %d passed, %d failed, %d skipped\n", c.passed, c.failed,
               c.skipped);
        return 1;
    }
    bool ok = ag_check_kind(rc, hello, AGORA__V1__ENV_REPLY__BODY_HELLO, "hello", why) &&
              ag_check_hello_spec(hello->hello, why);
    ag_check_report(&c, ok, "hello", "§8.1", why);

    ag_check_framing(&c);

    const Agora__V1__HelloReply *h =
        hello->body_case == AGORA__V1__ENV_REPLY__BODY_HELLO ? hello->hello : NULL;
    size_t n_games = h ? h->n_games : 0;
    Agora__V1__EnvReply **demos = calloc(n_games + 1, sizeof *demos);
    if (!demos) {
        agora__v1__env_reply__free_unpacked(hello, NULL);
        ag_env_client_destroy(&c.cl);
        return 2;
    }
    const Agora__V1__GameSpec *first = NULL;
    for (size_t i = 0; i < n_games; i++) {
        if (only_game && !ag_check_str_eq(only_game, h->games[i]->name))
            continue;
        first = first ? first : h->games[i];
        demos[i] = ag_check_game(&c, h->games[i]);
    }
    if (only_game && !first) {
        ag_check_why(why, "the server does not list game '%s' in Hello", only_game);
        ag_check_report(&c, false, "game_listed", "§8.1", why);
    }
    ag_check_unknown_game(&c);
    if (first)
        ag_check_limits(&c, first);
    ag_check_malformed(&c);

    /* After all the abuse, a fresh replay (the second transcript, seed + 1) must still match. */
    for (size_t i = 0; i < n_games; i++) {
        if (!demos[i])
            continue;
        char name[128];
        uint64_t ep;
        ag_check_name(name, sizeof name, h->games[i]->name, "final_replay");
        bool same =
            ag_check_replay(&c, h->games[i]->name, demos[i]->demo->transcripts[1], NULL, &ep, why);
        if (!same)
            ag_check_close_quietly(&c, ep);
        ag_check_report(&c, same, name, "§8.6", why);
        ag_check_free(&demos[i]);
    }
    free(demos);
    agora__v1__env_reply__free_unpacked(hello, NULL);
    ag_env_client_destroy(&c.cl);

    printf("agora-env-check: %d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
    return c.failed ? 1 : 0;
}
