/*
 * check_game.c - everything agora-env-check checks about one hosted game,
 * learnt from the game's own Demo transcripts so that it works for any game:
 *
 *  - Demo: transcripts of the right shape, the same twice, and replayed
 *    through Reset/Step to the same episode (§8.4, §8.6);
 *  - Reset and Close: the same seed gives the same start, ids are fresh,
 *    closed and finished episodes are gone (§8.2, §8.5, §8.7);
 *  - options and bots: unknown options, a wrong number of seat bots, unknown
 *    bot names (ERROR_BAD_OPTION), Demo counts out of range and the order in
 *    which Demo's fields are checked (§8.2, §8.4);
 *  - interference: out of turn, out of range seats, actions that are not
 *    UTF-8 or are over the limit, all refused with the episode unchanged;
 *  - invalid actions: a well-formed action that is not a legal move gets
 *    ERROR_INVALID_ACTION and changes nothing (the same seat acts next, and
 *    the game goes on as if it had never been sent), with the default
 *    options and with `invalid_action=error` where the game has that option
 *    (§5, §8.6);
 *  - bots: a bot seat plays the same moves whoever plays the other seats, so
 *    bots must draw from random streams of their own (§8.6, Determinism);
 *  - metrics: the game's declarations and what its episodes report (§8.1).
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

#define DEMO_MAX 256
/* Bots of a game whose independence is probed (each costs a Demo and a replay per seat). */
#define MAX_BOTS_PROBED 4

static const char no_such_bot[] = "agora-check-no-such-bot";

/* ---- Demo transcripts ---- */

/* The shape of Demo transcript i (seed + i). */
static bool s_transcript_sane(const Agora__V1__Transcript *t, const char *game, uint64_t seed,
                              uint32_t np, char *why)
{
    if (!ag_check_str_eq(t->game, game)) {
        ag_check_why(why, "transcript game '%.64s', expected '%s'", t->game, game);
        return false;
    }
    if (t->seed != seed) {
        ag_check_why(why, "transcript seed %" PRIu64 ", expected %" PRIu64, t->seed, seed);
        return false;
    }
    if (t->num_players != np) {
        ag_check_why(why, "transcript has %" PRIu32 " players, Hello says %" PRIu32, t->num_players,
                     np);
        return false;
    }
    if (t->n_turns == 0) {
        ag_check_why(why, "transcript has no turns");
        return false;
    }
    for (size_t i = 0; i < t->n_turns; i++) {
        if (t->turns[i]->player >= np) {
            ag_check_why(why, "turn %zu: player %" PRIu32 " of %" PRIu32, i + 1,
                         t->turns[i]->player, np);
            return false;
        }
    }
    if (t->n_returns != np) {
        ag_check_why(why, "%zu returns for %" PRIu32 " players", t->n_returns, np);
        return false;
    }
    for (size_t s = 0; s < np; s++) {
        float sum = 0;
        for (size_t i = 0; i < t->n_turns; i++)
            sum += ag_check_at(t->turns[i]->rewards, t->turns[i]->n_rewards, s);
        if (fabsf(sum - t->returns[s]) > 1e-4f * (1.0f + fabsf(t->returns[s]))) {
            ag_check_why(why, "seat %zu: turn rewards sum to %g, returns say %g", s, (double)sum,
                         (double)t->returns[s]);
            return false;
        }
    }
    return true;
}

/* A Demo reply of count transcripts of game g from seed, each of the right shape. */
static bool s_demo_ok(int rc, const Agora__V1__EnvReply *r, const Agora__V1__GameSpec *g,
                      uint64_t seed, size_t count, char *why)
{
    if (!ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_DEMO, "demo", why))
        return false;
    if (r->demo->n_transcripts != count) {
        ag_check_why(why, "asked for %zu transcripts, got %zu", count, r->demo->n_transcripts);
        return false;
    }
    for (size_t i = 0; i < count; i++)
        if (!s_transcript_sane(r->demo->transcripts[i], g->name, seed + i, g->num_players, why))
            return false;
    return true;
}

static bool s_same_transcripts(const Agora__V1__DemoReply *a, const Agora__V1__DemoReply *b,
                               char *why)
{
    size_t la = agora__v1__demo_reply__get_packed_size(a);
    size_t lb = agora__v1__demo_reply__get_packed_size(b);
    bool same = false;
    uint8_t *pa = malloc(la + 1), *pb = malloc(lb + 1);
    if (pa && pb && la == lb) {
        agora__v1__demo_reply__pack(a, pa);
        agora__v1__demo_reply__pack(b, pb);
        same = !memcmp(pa, pb, la);
    }
    if (!same)
        ag_check_why(why, "two Demo requests with the same game and seed gave different "
                          "transcripts");
    free(pa);
    free(pb);
    return same;
}

/* ---- Reset, Close, finished and unknown episodes ---- */

/* Expects Step and Close on a finished or closed episode to answer UNKNOWN_EPISODE. */
static bool s_gone(ag_check_t *c, uint64_t ep, const char *action, char *why)
{
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_step(c->cl, ep, 0, action, &r);
    if (!ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, why)) {
        ag_check_why_prefix(why, "Step: ");
        return false;
    }
    rc = ag_env_client_close(c->cl, ep, &r);
    if (!ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_EPISODE, why)) {
        ag_check_why_prefix(why, "Close: ");
        return false;
    }
    return true;
}

static bool s_same_start(const Agora__V1__GameSpec *g, const Agora__V1__ResetReply *x,
                         const Agora__V1__ResetReply *y, char *why)
{
    if (x->episode_id == y->episode_id) {
        ag_check_why(why, "two Resets returned the same episode id %" PRIu64, x->episode_id);
        return false;
    }
    if (x->num_players != g->num_players) {
        ag_check_why(why, "Reset says %" PRIu32 " players, Hello %" PRIu32, x->num_players,
                     g->num_players);
        return false;
    }
    if (x->num_players != y->num_players || x->to_act != y->to_act ||
        x->terminated != y->terminated) {
        ag_check_why(why, "same seed, different num_players/to_act/terminated");
        return false;
    }
    if (x->to_act >= x->num_players) {
        ag_check_why(why, "to_act %" PRIu32 " of %" PRIu32 " players", x->to_act, x->num_players);
        return false;
    }
    return ag_check_text_eq("second Reset's observation", y->observation, x->observation, why);
}

static void s_reset_and_close(ag_check_t *c, const Agora__V1__GameSpec *g, const char *action)
{
    char name[128], why[AG_CHECK_WHY];
    Agora__V1__EnvReply *a = NULL, *b = NULL, *r = NULL;
    int rc = ag_env_client_reset(c->cl, g->name, c->seed + 1000, NULL, 0, NULL, 0, &a);
    bool ok = ag_check_kind(rc, a, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why);
    if (ok) {
        rc = ag_env_client_reset(c->cl, g->name, c->seed + 1000, NULL, 0, NULL, 0, &b);
        ok = ag_check_kind(rc, b, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why) &&
             s_same_start(g, a->reset, b->reset, why);
    }
    ag_check_name(name, sizeof name, g->name, "reset_deterministic");
    ag_check_report(c, ok, name, "§8.6", why);

    ag_check_name(name, sizeof name, g->name, "close");
    if (a && a->body_case == AGORA__V1__ENV_REPLY__BODY_RESET) {
        uint64_t ep = a->reset->episode_id;
        rc = ag_env_client_close(c->cl, ep, &r);
        ok = ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_CLOSE, "close", why);
        ag_check_free(&r);
        ag_check_report(c, ok, name, "§8.5", why);
        ag_check_name(name, sizeof name, g->name, "closed_episode");
        ag_check_report(c, s_gone(c, ep, action, why), name, "§8.5", why);
    } else {
        ag_check_skip(c, name, "no episode to close");
    }
    if (b && b->body_case == AGORA__V1__ENV_REPLY__BODY_RESET)
        ag_check_close_quietly(c, b->reset->episode_id);
    ag_check_free(&a);
    ag_check_free(&b);

    /* Ids a server never handed out: far from a counter, with the top bit set. */
    ag_check_name(name, sizeof name, g->name, "unknown_episode");
    ag_check_report(c, s_gone(c, 0xDEADBEEFCAFEF00DULL, action, why), name, "§8.7", why);
}

/* Without known valid actions: out-of-turn must still be refused before the action is read. */
static void s_not_your_turn_blind(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, "not_your_turn");
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, NULL, 0, &r);
    if (!ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why)) {
        ag_check_report(c, false, name, "§8.2", why);
        ag_check_free(&r);
        return;
    }
    uint64_t ep = r->reset->episode_id;
    uint32_t np = r->reset->num_players, to_act = r->reset->to_act;
    ag_check_free(&r);
    if (np < 2) {
        ag_check_skip(c, name, "a one-player game");
    } else {
        rc = ag_env_client_step(c->cl, ep, (to_act + 1) % np, "x", &r);
        ag_check_report(c, ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, why),
                        name, "§8.3", why);
    }
    ag_check_close_quietly(c, ep);
}

/* ---- options and bots ---- */

static void s_expect(ag_check_t *c, const Agora__V1__GameSpec *g, const char *check,
                     const char *section, int rc, Agora__V1__EnvReply *r, int code)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, check);
    /* A Reset the server took leaves an episode behind. */
    if (!rc && r && r->body_case == AGORA__V1__ENV_REPLY__BODY_RESET)
        ag_check_close_quietly(c, r->reset->episode_id);
    ag_check_report(c, ag_check_error1(rc, r, code, why), name, section, why);
}

/* n seat entries, all "" (the client plays) except seat `bot_seat` = bot. */
static void s_seats(const char **seats, size_t n, size_t bot_seat, const char *bot)
{
    for (size_t i = 0; i < n; i++)
        seats[i] = i == bot_seat ? bot : "";
}

static void s_options_and_bots(ag_check_t *c, const Agora__V1__GameSpec *g, bool has_demo)
{
    const int bad_option = AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION;
    const int bad_request = AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST;
    size_t np = g->num_players;
    const char *seats[AG_CHECK_MAX_SEATS + 1];
    Agora__V1__EnvReply *r = NULL;
    int rc;

    static const char *const unknown_option[][2] = {{"agora-check-no-such-option", "1"}};
    rc = ag_env_client_reset(c->cl, g->name, c->seed, unknown_option, 1, NULL, 0, &r);
    s_expect(c, g, "bad_option", "§8.2", rc, r, bad_option);

    /* One seat too many (within the limit of 8), and one too few. */
    s_seats(seats, AG_CHECK_MAX_SEATS + 1, AG_CHECK_MAX_SEATS + 1, NULL);
    if (np < AG_CHECK_MAX_SEATS) {
        rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, seats, np + 1, &r);
        s_expect(c, g, "seat_bots_too_many", "§8.2", rc, r, bad_option);
    }
    if (np >= 2) {
        rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, seats, np - 1, &r);
        s_expect(c, g, "seat_bots_too_few", "§8.2", rc, r, bad_option);
    }
    s_seats(seats, np, 0, no_such_bot);
    rc = ag_env_client_reset(c->cl, g->name, c->seed, NULL, 0, seats, np, &r);
    s_expect(c, g, "unknown_bot", "§8.2", rc, r, bad_option);

    if (!has_demo)
        return;
    s_seats(seats, AG_CHECK_MAX_SEATS + 1, AG_CHECK_MAX_SEATS + 1, NULL);
    rc = ag_check_demo(c, g->name, c->seed, 1, seats, np < AG_CHECK_MAX_SEATS ? np + 1 : np - 1,
                       NULL, 0, &r);
    s_expect(c, g, "demo_bots_count", "§8.4", rc, r, bad_option);
    s_seats(seats, np, np - 1, no_such_bot);
    rc = ag_check_demo(c, g->name, c->seed, 1, seats, np, NULL, 0, &r);
    s_expect(c, g, "demo_unknown_bot", "§8.4", rc, r, bad_option);

    rc = ag_check_demo(c, g->name, c->seed, 0, NULL, 0, NULL, 0, &r);
    s_expect(c, g, "demo_count_zero", "§8.4", rc, r, bad_request);
    rc = ag_check_demo(c, g->name, c->seed, DEMO_MAX + 1, NULL, 0, NULL, 0, &r);
    s_expect(c, g, "demo_count_over", "§8.4", rc, r, bad_request);
    /* Demo's own checks in order: game, then count, then bots and options. */
    rc = ag_check_demo(c, g->name, c->seed, 0, seats, np, unknown_option, 1, &r);
    s_expect(c, g, "demo_check_order", "§8.4", rc, r, bad_request);
}

/* ---- interference: requests that must change nothing ---- */

/* Outcomes of one kind of interference sent during a replay. */
typedef struct {
    int ok, bad;
    char why[AG_CHECK_WHY];
} tally_t;

typedef struct {
    tally_t not_your_turn, bad_seat, not_utf8, long_action;
} interference_t;

/* Not UTF-8: a runtime may refuse the message (BAD_REQUEST) or the game the move. */
static const char not_utf8[] = "\x01not an action\xff";

static void s_tally(tally_t *t, bool ok, const char *why)
{
    if (ok)
        t->ok++;
    else if (t->bad++ == 0)
        snprintf(t->why, sizeof t->why, "%s", why);
}

static bool s_interfere(ag_check_t *c, uint64_t ep, uint32_t np, size_t i,
                        const Agora__V1__Turn *turn, void *arg, char *why)
{
    (void)i;
    (void)why;
    interference_t *itf = arg;
    char w[AG_CHECK_WHY];
    Agora__V1__EnvReply *r = NULL;
    int rc;
    if (np >= 2) {
        rc = ag_env_client_step(c->cl, ep, (turn->player + 1) % np, turn->action, &r);
        s_tally(&itf->not_your_turn,
                ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, w), w);
    }
    static const int seat_codes[] = {AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN,
                                     AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST};
    rc = ag_env_client_step(c->cl, ep, np + 3, turn->action, &r);
    s_tally(&itf->bad_seat, ag_check_error(rc, r, seat_codes, 2, w), w);

    static const int utf8_codes[] = {AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION,
                                     AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST};
    rc = ag_env_client_step(c->cl, ep, turn->player, not_utf8, &r);
    s_tally(&itf->not_utf8, ag_check_error(rc, r, utf8_codes, 2, w), w);

    char *long_action = ag_check_filled(AG_ENV_MAX_ACTION + 1, '7');
    if (!long_action) {
        s_tally(&itf->long_action, false, "out of memory");
        return true;
    }
    rc = ag_env_client_step(c->cl, ep, turn->player, long_action, &r);
    s_tally(&itf->long_action, ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST, w),
            w);
    free(long_action);
    return true;
}

static void s_report_tally(ag_check_t *c, const char *game, const char *check, const char *section,
                           const tally_t *t)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, game, check);
    if (t->ok + t->bad == 0) {
        ag_check_skip(c, name, "not exercised");
        return;
    }
    ag_check_why(why, "%d of %d wrong; first: %s", t->bad, t->ok + t->bad, t->why);
    ag_check_report(c, t->bad == 0, name, section, why);
}

static void s_interference(ag_check_t *c, const Agora__V1__GameSpec *g,
                           const Agora__V1__Transcript *t)
{
    char name[128], why[AG_CHECK_WHY];
    interference_t itf;
    memset(&itf, 0, sizeof itf);
    ag_check_play_t how = {.before_turn = s_interfere, .arg = &itf};
    uint64_t ep;
    bool ok = ag_check_replay(c, g->name, t, &how, &ep, why);
    if (!ok)
        ag_check_close_quietly(c, ep);
    ag_check_name(name, sizeof name, g->name, "replay_with_bad_steps");
    ag_check_report(c, ok, name, "§5", why);
    s_report_tally(c, g->name, "not_your_turn", "§8.3", &itf.not_your_turn);
    s_report_tally(c, g->name, "seat_out_of_range", "§8.3", &itf.bad_seat);
    s_report_tally(c, g->name, "invalid_utf8_action", "§4", &itf.not_utf8);
    s_report_tally(c, g->name, "oversized_action", "§6", &itf.long_action);
}

/* ---- invalid actions: refused, and nothing changes ---- */

/* Well-formed actions (UTF-8, within the limit) that few games would take as a move. */
static const struct {
    const char *action, *shown;
} s_not_moves[] = {
    {"", "an empty action"},
    {"\x01", "the action \"\\x01\""},
    {"agora-env-check: this is not a move", "the action \"agora-env-check: this is not a move\""},
};

enum { PROBE_UNSENT, PROBE_REFUSED, PROBE_TAKEN, PROBE_WRONG };

typedef struct {
    size_t at;    /* the turn before which the probe is sent */
    size_t which; /* index into s_not_moves */
    int outcome;
} probe_t;

static bool s_probe(ag_check_t *c, uint64_t ep, uint32_t np, size_t i, const Agora__V1__Turn *turn,
                    void *arg, char *why)
{
    (void)np;
    probe_t *p = arg;
    if (i != p->at)
        return true;
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_env_client_step(c->cl, ep, turn->player, s_not_moves[p->which].action, &r);
    if (!rc && r && r->body_case == AGORA__V1__ENV_REPLY__BODY_STEP) {
        p->outcome = PROBE_TAKEN;
        ag_check_free(&r);
        ag_check_why(why, "the game took %s as a move", s_not_moves[p->which].shown);
        return false;
    }
    if (ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION, why)) {
        p->outcome = PROBE_REFUSED;
        return true;
    }
    p->outcome = PROBE_WRONG;
    char prefix[160];
    snprintf(prefix, sizeof prefix, "turn %zu, %s (well-formed, not a legal move): ", i + 1,
             s_not_moves[p->which].shown);
    ag_check_why_prefix(why, prefix);
    return false;
}

/*
 * For a few turns of t (first, middle, last): replays up to the turn, sends
 * an action that is not a move, which must be refused with INVALID_ACTION,
 * then the turn's own action and the rest, which must go on exactly as the
 * transcript. A game that takes every probe as a move cannot be checked.
 */
static void s_invalid_actions(ag_check_t *c, const Agora__V1__GameSpec *g, const char *check,
                              const Agora__V1__Transcript *t, const char *const (*options)[2],
                              size_t n_options)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, check);
    size_t turns[3] = {0, t->n_turns / 2, t->n_turns - 1};
    int refused = 0;
    for (size_t k = 0; k < 3; k++) {
        if (k > 0 && turns[k] == turns[k - 1])
            continue;
        for (size_t which = 0; which < sizeof s_not_moves / sizeof s_not_moves[0]; which++) {
            probe_t p = {.at = turns[k], .which = which, .outcome = PROBE_UNSENT};
            ag_check_play_t how = {
                .options = options, .n_options = n_options, .before_turn = s_probe, .arg = &p};
            uint64_t ep;
            bool ok = ag_check_replay(c, g->name, t, &how, &ep, why);
            if (!ok)
                ag_check_close_quietly(c, ep);
            if (p.outcome == PROBE_TAKEN)
                continue;
            if (p.outcome == PROBE_WRONG) {
                ag_check_report(c, false, name, "§5", why);
                return;
            }
            if (!ok && p.outcome == PROBE_REFUSED) {
                char prefix[200];
                snprintf(prefix, sizeof prefix,
                         "after ERROR_INVALID_ACTION for %s at turn %zu the episode was not "
                         "the same: ",
                         s_not_moves[which].shown, turns[k] + 1);
                ag_check_why_prefix(why, prefix);
                ag_check_report(c, false, name, "§8.6", why);
                return;
            }
            if (!ok) {
                ag_check_why_prefix(why, "the replay failed before the probe: ");
                ag_check_report(c, false, name, "§8.4", why);
                return;
            }
            refused++;
            break;
        }
    }
    if (refused)
        ag_check_report(c, true, name, "§8.6", "");
    else
        ag_check_skip(c, name,
                      "the game took every probe (an empty action, \"\\x01\", a "
                      "sentence) as a legal move");
}

static bool s_has_option(const Agora__V1__GameSpec *g, const char *option)
{
    for (size_t i = 0; i < g->n_options; i++)
        if (ag_check_str_eq(g->options[i]->name, option))
            return true;
    return false;
}

/* The same probes under an explicit invalid_action=error, from a Demo with that option. */
static void s_invalid_action_option(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, "invalid_action_error_option");
    if (!s_has_option(g, "invalid_action")) {
        ag_check_skip(c, name, "the game has no invalid_action option");
        return;
    }
    static const char *const error_mode[][2] = {{"invalid_action", "error"}};
    Agora__V1__EnvReply *r = NULL;
    int rc = ag_check_demo(c, g->name, c->seed + 200, 1, NULL, 0, error_mode, 1, &r);
    if (!s_demo_ok(rc, r, g, c->seed + 200, 1, why)) {
        ag_check_why_prefix(why, "Demo with invalid_action=error: ");
        ag_check_report(c, false, name, "§8.4", why);
    } else {
        s_invalid_actions(c, g, "invalid_action_error_option", r->demo->transcripts[0], error_mode,
                          1);
    }
    ag_check_free(&r);
}

/* ---- bots: each plays from its own random stream ---- */

/*
 * Replays the two transcripts of a Demo played by `demo_bots` with the bot
 * seats of `seat_bots` (the checker sends the other seats' moves). Returns
 * -1 when the Demo refuses these bots (BAD_OPTION: a bot may be made for some
 * seats only), else whether both replays matched.
 */
static int s_bot_replay(ag_check_t *c, const Agora__V1__GameSpec *g, const char *const *demo_bots,
                        const char *const *seat_bots, char *why)
{
    size_t np = g->num_players;
    uint64_t seed = c->seed + 100;
    Agora__V1__EnvReply *demo = NULL;
    int rc = ag_check_demo(c, g->name, seed, 2, demo_bots, np, NULL, 0, &demo);
    if (!rc && ag_env_reply_error(demo) == AGORA__V1__ERROR_CODE__ERROR_BAD_OPTION) {
        ag_check_free(&demo);
        return -1;
    }
    bool ok = s_demo_ok(rc, demo, g, seed, 2, why);
    if (!ok)
        ag_check_why_prefix(why, "Demo with bots: ");
    for (size_t k = 0; ok && k < 2; k++) {
        const Agora__V1__Transcript *t = demo->demo->transcripts[k];
        ag_check_play_t how = {.seat_bots = seat_bots, .n_seat_bots = np};
        uint64_t ep;
        ok = ag_check_replay(c, g->name, t, &how, &ep, why);
        if (!ok) {
            ag_check_close_quietly(c, ep);
            char prefix[64];
            snprintf(prefix, sizeof prefix, "seed %" PRIu64 ": ", t->seed);
            ag_check_why_prefix(why, prefix);
        }
    }
    ag_check_free(&demo);
    return ok;
}

/*
 * Each listed bot b in each seat s it plays: a Demo with b in seat s (the
 * other seats' demo bots in theirs), then a Reset with b in seat s alone, the
 * checker sending the other seats' moves from the Demo. b must play the same
 * moves: a bot that shares one random stream with the other seats' bots
 * draws other numbers once they are gone. Last, every seat a bot (the first
 * that plays it): the Reset must play the whole Demo at once.
 */
static void s_bots_independent(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[AG_CHECK_WHY];
    ag_check_name(name, sizeof name, g->name, "bots_independent");
    size_t np = g->num_players;
    if (g->n_bots == 0) {
        ag_check_skip(c, name, "the game lists no bots");
        return;
    }
    const char *own[AG_CHECK_MAX_SEATS] = {NULL};
    const char *seats[AG_CHECK_MAX_SEATS];
    int probed = 0;
    for (size_t s = 0; s < np; s++) {
        for (size_t i = 0; i < g->n_bots && i < MAX_BOTS_PROBED; i++) {
            const char *b = g->bots[i];
            s_seats(seats, np, s, b);
            int rc = s_bot_replay(c, g, seats, seats, why);
            if (rc < 0)
                continue;
            if (!rc) {
                char prefix[160];
                snprintf(prefix, sizeof prefix,
                         "bot '%.32s' in seat %zu, the other seats sending the Demo's moves: ", b,
                         s);
                ag_check_why_prefix(why, prefix);
                ag_check_report(c, false, name, "§8.6", why);
                return;
            }
            own[s] = own[s] ? own[s] : b;
            probed++;
        }
    }
    bool all = np >= 2;
    for (size_t s = 0; s < np; s++)
        all = all && own[s];
    if (all && s_bot_replay(c, g, own, own, why) != 1) {
        ag_check_why_prefix(why, "a bot in every seat of a Reset: ");
        ag_check_report(c, false, name, "§8.6", why);
        return;
    }
    if (probed)
        ag_check_report(c, true, name, "§8.6", "");
    else
        ag_check_skip(c, name, "Demo refused each listed bot in each seat");
}

/* ---- one game ---- */

Agora__V1__EnvReply *ag_check_game(ag_check_t *c, const Agora__V1__GameSpec *g)
{
    char name[128], why[AG_CHECK_WHY];
    Agora__V1__EnvReply *demo = NULL, *again = NULL;

    ag_check_metric_specs(c, g);

    ag_check_name(name, sizeof name, g->name, "demo");
    int rc = ag_check_demo(c, g->name, c->seed, 2, NULL, 0, NULL, 0, &demo);
    if (!rc && ag_env_reply_error(demo) == AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED) {
        ag_check_skip(c, name, "the server does not implement Demo; replay checks skipped");
        ag_check_free(&demo);
        s_reset_and_close(c, g, "x");
        s_options_and_bots(c, g, false);
        s_not_your_turn_blind(c, g);
        return NULL;
    }
    bool ok = s_demo_ok(rc, demo, g, c->seed, 2, why);
    ag_check_report(c, ok, name, "§8.4", why);
    if (!ok) {
        ag_check_free(&demo);
        s_reset_and_close(c, g, "x");
        s_options_and_bots(c, g, true);
        s_not_your_turn_blind(c, g);
        return NULL;
    }
    ag_check_metrics_reported(c, g, demo->demo->transcripts, demo->demo->n_transcripts);

    ag_check_name(name, sizeof name, g->name, "demo_deterministic");
    rc = ag_check_demo(c, g->name, c->seed, 2, NULL, 0, NULL, 0, &again);
    ok = ag_check_kind(rc, again, AGORA__V1__ENV_REPLY__BODY_DEMO, "demo", why) &&
         s_same_transcripts(demo->demo, again->demo, why);
    ag_check_report(c, ok, name, "§8.6", why);
    ag_check_free(&again);

    const Agora__V1__Transcript *t = demo->demo->transcripts[0];
    uint64_t ep = 0;
    ag_check_name(name, sizeof name, g->name, "replay");
    ok = ag_check_replay(c, g->name, t, NULL, &ep, why);
    ag_check_report(c, ok, name, "§8.4", why);
    ag_check_name(name, sizeof name, g->name, "finished_episode_removed");
    if (ok) {
        ag_check_report(c, s_gone(c, ep, t->turns[0]->action, why), name, "§8.7", why);
    } else {
        ag_check_close_quietly(c, ep);
        ag_check_skip(c, name, "the replay did not finish");
    }

    s_reset_and_close(c, g, t->turns[0]->action);
    s_options_and_bots(c, g, true);
    s_interference(c, g, t);
    s_invalid_actions(c, g, "invalid_action", t, NULL, 0);
    s_invalid_action_option(c, g);
    s_bots_independent(c, g);
    return demo;
}

void ag_check_unknown_game(ag_check_t *c)
{
    char why[AG_CHECK_WHY];
    Agora__V1__EnvReply *r = NULL;
    const char *game = "agora-check-no-such-game";
    int rc = ag_env_client_reset(c->cl, game, c->seed, NULL, 0, NULL, 0, &r);
    ag_check_report(c, ag_check_error1(rc, r, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME, why),
                    "unknown_game", "§8.2", why);
    static const int demo_codes[] = {AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_GAME,
                                     AGORA__V1__ERROR_CODE__ERROR_UNSUPPORTED};
    rc = ag_check_demo(c, game, c->seed, 1, NULL, 0, NULL, 0, &r);
    ag_check_report(c, ag_check_error(rc, r, demo_codes, 2, why), "unknown_game.demo", "§8.4", why);
    /* The game is looked up before the count is (§8.4). */
    rc = ag_check_demo(c, game, c->seed, 0, NULL, 0, NULL, 0, &r);
    ag_check_report(c, ag_check_error(rc, r, demo_codes, 2, why), "unknown_game.demo_count_zero",
                    "§8.4", why);
}
