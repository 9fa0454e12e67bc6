/*
 * check_play.c - replays a Demo transcript through Reset and Step. It is how
 * agora-env-check plays a foreign game at all: the checker cannot know which
 * actions are legal, but a transcript is a whole episode the server itself
 * played, and protocol.md §8.4 and §8.6 promise that the same seed, options
 * and actions give the same episode. So every observation, to_act, reward,
 * the termination and the final info and metrics must be the transcript's.
 *
 * Any seat may be left to a server bot (Reset.seat_bots): the bot must then
 * play what it played in the transcript, since a bot's moves depend on the
 * seed, its seat and what it has seen, never on who plays the other seats.
 * The server answers a client's step with the rewards of that step and of
 * the bot moves it triggered, and the next client seat's observation.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "check.h"

void ag_check_close_quietly(ag_check_t *c, uint64_t episode)
{
    Agora__V1__EnvReply *r = NULL;
    if (episode && !ag_env_client_close(c->cl, episode, &r))
        ag_check_free(&r);
}

/*
 * Adds the rewards of turns [from, ...) played by bot seats to want and
 * returns the first turn after them that a client seat plays (n_turns if
 * none).
 */
static size_t s_bot_turns(const Agora__V1__Transcript *t, const bool *bot, size_t from, float *want)
{
    size_t i = from;
    for (; i < t->n_turns && bot[t->turns[i]->player]; i++) {
        for (size_t s = 0; s < t->num_players; s++)
            want[s] += ag_check_at(t->turns[i]->rewards, t->turns[i]->n_rewards, s);
    }
    return i;
}

/*
 * What a reply (Reset or Step) must say when the transcript goes on at turn
 * next: not over, that turn's seat to act and its observation.
 */
static bool s_continues(const Agora__V1__Transcript *t, size_t next, bool over, uint32_t to_act,
                        const char *observation, const char *after, char *why)
{
    const Agora__V1__Turn *turn = t->turns[next];
    if (over) {
        ag_check_why(why, "%s ends the episode, the transcript goes on to turn %zu of %zu", after,
                     next + 1, t->n_turns);
        return false;
    }
    if (to_act != turn->player) {
        ag_check_why(why, "%s: to_act %" PRIu32 ", the transcript's turn %zu is seat %" PRIu32,
                     after, to_act, next + 1, turn->player);
        return false;
    }
    char what[96];
    snprintf(what, sizeof what, "turn %zu observation (seat %" PRIu32 ")", next + 1, turn->player);
    return ag_check_text_eq(what, observation, turn->observation, why);
}

/* What the reply that ends the episode must carry: the transcript's info and metrics. */
static bool s_ends(const Agora__V1__Transcript *t, bool terminated, Agora__V1__KeyValue **info,
                   size_t n_info, Agora__V1__Metric **metrics, size_t n_metrics, const char *after,
                   char *why)
{
    if (!terminated) {
        ag_check_why(why, "%s: the transcript's last turn did not terminate the episode", after);
        return false;
    }
    return ag_check_info_eq(info, n_info, t->info, t->n_info, why) &&
           ag_check_metrics_eq(metrics, n_metrics, t->metrics, t->n_metrics, why);
}

bool ag_check_replay(ag_check_t *c, const char *game, const Agora__V1__Transcript *t,
                     const ag_check_play_t *how, uint64_t *episode, char *why)
{
    static const ag_check_play_t plain;
    how = how ? how : &plain;
    *episode = 0;
    bool bot[AG_CHECK_MAX_SEATS] = {false};
    uint32_t np = t->num_players;
    if (np < 1 || np > AG_CHECK_MAX_SEATS) {
        ag_check_why(why, "the transcript has %" PRIu32 " players", np);
        return false;
    }
    for (size_t s = 0; s < how->n_seat_bots && s < np; s++)
        bot[s] = how->seat_bots[s] && how->seat_bots[s][0];

    Agora__V1__EnvReply *r = NULL;
    bool ok = false;
    int rc = ag_env_client_reset(c->cl, game, t->seed, how->options, how->n_options, how->seat_bots,
                                 how->n_seat_bots, &r);
    if (!ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_RESET, "reset", why)) {
        ag_check_why_prefix(why, "Reset: ");
        goto out;
    }
    const Agora__V1__ResetReply *rs = r->reset;
    *episode = rs->episode_id;
    if (rs->num_players != np) {
        ag_check_why(why, "Reset says %" PRIu32 " players, the transcript %" PRIu32,
                     rs->num_players, np);
        goto out;
    }
    float want[AG_CHECK_MAX_SEATS] = {0}, sums[AG_CHECK_MAX_SEATS] = {0};
    size_t i = s_bot_turns(t, bot, 0, want);
    /* Several turns' rewards summed by the server may round differently. */
    float tol = i > 0 ? 1e-5f : 0.0f;
    if (!ag_check_rewards_eq("Reset rewards", rs->rewards, rs->n_rewards, want, np, tol, why))
        goto out;
    for (size_t s = 0; s < np; s++)
        sums[s] += ag_check_at(rs->rewards, rs->n_rewards, s);
    if (i == t->n_turns) {
        if (!s_ends(t, rs->terminated, rs->info, rs->n_info, rs->metrics, rs->n_metrics, "Reset",
                    why))
            goto out;
    } else if (!s_continues(t, i, rs->terminated, rs->to_act, rs->observation, "Reset", why)) {
        goto out;
    }
    ag_check_free(&r);

    while (i < t->n_turns) {
        const Agora__V1__Turn *turn = t->turns[i];
        if (how->before_turn && !how->before_turn(c, *episode, np, i, turn, how->arg, why))
            goto out;
        rc = ag_env_client_step(c->cl, *episode, turn->player, turn->action, &r);
        char after[64];
        snprintf(after, sizeof after, "turn %zu", i + 1);
        if (!ag_check_kind(rc, r, AGORA__V1__ENV_REPLY__BODY_STEP, "step", why)) {
            char prefix[80];
            snprintf(prefix, sizeof prefix, "%s (seat %" PRIu32 "): ", after, turn->player);
            ag_check_why_prefix(why, prefix);
            goto out;
        }
        const Agora__V1__StepReply *st = r->step;
        for (size_t s = 0; s < np; s++)
            want[s] = ag_check_at(turn->rewards, turn->n_rewards, s);
        size_t next = s_bot_turns(t, bot, i + 1, want);
        char what[64];
        snprintf(what, sizeof what, "turn %zu rewards", i + 1);
        tol = next > i + 1 ? 1e-5f : 0.0f;
        if (!ag_check_rewards_eq(what, st->rewards, st->n_rewards, want, np, tol, why))
            goto out;
        for (size_t s = 0; s < np; s++)
            sums[s] += ag_check_at(st->rewards, st->n_rewards, s);
        bool over = st->terminated || st->truncated;
        if (next == t->n_turns) {
            if (!s_ends(t, st->terminated, st->info, st->n_info, st->metrics, st->n_metrics, after,
                        why))
                goto out;
        } else if (!s_continues(t, next, over, st->to_act, st->observation, after, why)) {
            goto out;
        }
        ag_check_free(&r);
        i = next;
    }
    for (size_t s = 0; s < np; s++) {
        float w = ag_check_at(t->returns, t->n_returns, s);
        if (fabsf(sums[s] - w) > 1e-4f * (1.0f + fabsf(w))) {
            ag_check_why(why, "seat %zu: rewards sum to %g, the transcript's return is %g", s,
                         (double)sums[s], (double)w);
            goto out;
        }
    }
    ok = true;
out:
    ag_check_free(&r);
    return ok;
}
