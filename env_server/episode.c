/*
 * episode.c - a running episode: the game state in the same allocation as
 * the episode, turn checks, bot seats played automatically, observations,
 * the terminal outcome, and Demo transcripts (an episode whose every seat is
 * a bot, recorded turn by turn).
 *
 * Creating an episode is one malloc of a few KB and no zeroing of buffers;
 * a client step is the game's parse-and-apply plus one observation render,
 * so the game logic of a step stays far below a microsecond.
 */
#include "episode.h"

#include <assert.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ag_episode {
    const ag_game_t *game;
    uint64_t seed;
    int num_players;
    int turns;                    /* actions applied so far */
    int bot[AG_GAME_MAX_PLAYERS]; /* index into game->bots, -1 = client */
    ag_rng_t bot_rng[AG_GAME_MAX_PLAYERS];
    bool terminated;
    bool truncated;
    ag_transcript_t *record; /* demos only */
    void *state;             /* game->state_size bytes after this struct */
    size_t obs_len;
    char obs[AG_GAME_OBS_CAP]; /* observation of the seat to act */
    ag_game_outcome_t outcome; /* valid once terminated */
};

/* The state block starts at the first max_align_t boundary after the struct. */
#define STATE_OFFSET                                                                               \
    ((sizeof(struct ag_episode) + alignof(max_align_t) - 1) / alignof(max_align_t) *               \
     alignof(max_align_t))

/* One stream per seat, derived from the seed apart from the game's own rng(seed). */
static void seed_bot_rng(ag_rng_t *rng, uint64_t seed, int seat)
{
    uint64_t mix = seed ^ 0xb07b07b07b07b07bULL;
    mix += 0x9e3779b97f4a7c15ULL * (uint64_t)(seat + 1);
    ag_rng_seed(rng, ag_splitmix64(&mix));
}

static void fill_result(const ag_episode_t *ep, ag_episode_result_t *res)
{
    if (res == NULL)
        return;
    res->num_players = ep->num_players;
    res->to_act = ep->terminated ? -1 : ep->game->to_act(ep->state);
    res->observation = ep->obs;
    res->observation_len = ep->obs_len;
    res->terminated = ep->terminated;
    res->truncated = ep->truncated;
    res->outcome = ep->terminated ? &ep->outcome : NULL;
}

/*
 * Plays bot seats until a client seat is to act or the game ends, adding
 * their rewards to rewards[] and, in demos, recording each turn. Leaves the
 * observation of the client seat to act (or "" at the end) in ep->obs.
 */
static int advance(ag_episode_t *ep, float *rewards, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    for (;;) {
        int seat = g->to_act(ep->state);
        if (seat < 0) {
            ep->terminated = true;
            ep->obs[0] = '\0';
            ep->obs_len = 0;
            g->outcome(ep->state, &ep->outcome);
            return 0;
        }
        assert(seat < ep->num_players);
        if (ep->bot[seat] < 0 || ep->record != NULL)
            ep->obs_len = g->observe(ep->state, ep->obs, sizeof ep->obs);
        if (ep->bot[seat] < 0)
            return 0;
        if (ep->turns >= AG_GAME_MAX_TURNS) {
            ag_game_errorf(err, err_cap, "internal: game %s exceeded %d turns", g->name,
                           AG_GAME_MAX_TURNS);
            return AG_GAME_EINTERNAL;
        }

        char action[AG_GAME_BOT_ACTION_CAP];
        size_t len =
            g->bot_act(ep->state, ep->bot[seat], &ep->bot_rng[seat], action, sizeof action);
        ag_game_step_t st = {0};
        char why[AG_GAME_ERR_CAP] = "";
        if (g->step(ep->state, action, len, &st, why, sizeof why) < 0 || st.invalid_action) {
            ag_game_errorf(err, err_cap, "internal: bot %s of game %s wrote '%s': %s",
                           g->bots[ep->bot[seat]], g->name, action, why);
            return AG_GAME_EINTERNAL;
        }
        for (int s = 0; s < ep->num_players; s++)
            rewards[s] += st.rewards[s];
        ep->truncated |= st.truncated;
        if (ep->record != NULL) {
            ag_turn_t *turn = &ep->record->turns[ep->record->num_turns++];
            turn->player = seat;
            memcpy(turn->observation, ep->obs, ep->obs_len + 1);
            turn->observation_len = ep->obs_len;
            memcpy(turn->action, action, len + 1);
            turn->action_len = len;
            memcpy(turn->rewards, st.rewards, sizeof turn->rewards);
        }
        ep->turns++;
    }
}

/* Resolves seat_bots into ep->bot[]; fills_demo picks the demo bot for unnamed seats. */
static int resolve_bots(ag_episode_t *ep, const char *const *seat_bots, size_t num_seat_bots,
                        bool fill_demo, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    if (num_seat_bots != 0 && (seat_bots == NULL || num_seat_bots != (size_t)g->num_players)) {
        ag_game_errorf(err, err_cap, "%zu seat bots given, game %s has %d seats", num_seat_bots,
                       g->name, g->num_players);
        return AG_GAME_EBADBOT;
    }
    for (int s = 0; s < g->num_players; s++) {
        const char *name = num_seat_bots ? seat_bots[s] : NULL;
        if ((name == NULL || name[0] == '\0') && fill_demo)
            name = g->demo_bots[s];
        ep->bot[s] = -1;
        if (name == NULL || name[0] == '\0')
            continue;
        int b = ag_game_bot_find(g, name);
        if (b < 0) {
            char list[128] = "";
            size_t used = 0;
            for (int i = 0; i < g->num_bots && used < sizeof list; i++)
                used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                         g->bots[i]);
            ag_game_errorf(err, err_cap, "unknown bot '%.64s' for game %s (bots: %s)", name,
                           g->name, list);
            return AG_GAME_EBADBOT;
        }
        if (g->bot_seats[b] >= 0 && g->bot_seats[b] != s) {
            ag_game_errorf(err, err_cap, "bot %s plays seat %d (%s), not seat %d (%s)", g->bots[b],
                           g->bot_seats[b], g->roles[g->bot_seats[b]], s, g->roles[s]);
            return AG_GAME_EBADBOT;
        }
        ep->bot[s] = b;
        seed_bot_rng(&ep->bot_rng[s], ep->seed, s);
    }
    return 0;
}

static int episode_start(ag_episode_t **out, const ag_game_t *game, uint64_t seed,
                         const ag_game_kv_t *options, size_t num_options,
                         const char *const *seat_bots, size_t num_seat_bots, bool fill_demo,
                         ag_transcript_t *record, ag_episode_result_t *res, char *err,
                         size_t err_cap)
{
    assert(game != NULL && game->num_players <= AG_GAME_MAX_PLAYERS);
    *out = NULL;
    if (err != NULL && err_cap > 0)
        err[0] = '\0';
    ag_episode_t *ep = malloc(STATE_OFFSET + game->state_size);
    if (ep == NULL) {
        ag_game_errorf(err, err_cap, "out of memory");
        return AG_GAME_ENOMEM;
    }
    ep->game = game;
    ep->seed = seed;
    ep->num_players = game->num_players;
    ep->turns = 0;
    ep->terminated = false;
    ep->truncated = false;
    ep->record = record;
    ep->state = (char *)ep + STATE_OFFSET;
    ep->obs[0] = '\0';
    ep->obs_len = 0;

    float rewards[AG_GAME_MAX_PLAYERS] = {0};
    int rc = resolve_bots(ep, seat_bots, num_seat_bots, fill_demo, err, err_cap);
    if (rc == 0)
        rc = game->reset(ep->state, seed, options, num_options, err, err_cap);
    if (rc == 0)
        rc = advance(ep, rewards, err, err_cap);
    if (rc < 0)
        goto fail;
    if (res != NULL) {
        memcpy(res->rewards, rewards, sizeof rewards);
        res->invalid_action = false;
        fill_result(ep, res);
    }
    *out = ep;
    return 0;
fail:
    free(ep);
    return rc;
}

int ag_episode_create(ag_episode_t **out, const ag_game_t *game, uint64_t seed,
                      const ag_game_kv_t *options, size_t num_options, const char *const *seat_bots,
                      size_t num_seat_bots, ag_episode_result_t *res, char *err, size_t err_cap)
{
    return episode_start(out, game, seed, options, num_options, seat_bots, num_seat_bots, false,
                         NULL, res, err, err_cap);
}

void ag_episode_destroy(ag_episode_t **self)
{
    if (self == NULL || *self == NULL)
        return;
    free(*self);
    *self = NULL;
}

int ag_episode_step(ag_episode_t *ep, int player, const void *action, size_t len,
                    ag_episode_result_t *res, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    if (ep->terminated) {
        ag_game_errorf(err, err_cap, "the episode has ended");
        return AG_GAME_EOVER;
    }
    int to_act = g->to_act(ep->state);
    if (player != to_act) {
        ag_game_errorf(err, err_cap, "not your turn: seat %d (%s) is to act", to_act,
                       g->roles[to_act]);
        return AG_GAME_ETURN;
    }
    if (action == NULL)
        action = "";
    ag_game_step_t st = {0};
    int rc = g->step(ep->state, action, len, &st, err, err_cap);
    if (rc < 0)
        return rc;
    ep->turns++;
    ep->truncated |= st.truncated;
    rc = advance(ep, st.rewards, err, err_cap);
    if (rc < 0)
        return rc;
    if (res != NULL) {
        memcpy(res->rewards, st.rewards, sizeof res->rewards);
        res->invalid_action = st.invalid_action;
        fill_result(ep, res);
    }
    return 0;
}

const ag_game_t *ag_episode_game(const ag_episode_t *ep)
{
    return ep->game;
}

uint64_t ag_episode_seed(const ag_episode_t *ep)
{
    return ep->seed;
}

int ag_episode_to_act(const ag_episode_t *ep)
{
    return ep->terminated ? -1 : ep->game->to_act(ep->state);
}

bool ag_episode_terminated(const ag_episode_t *ep)
{
    return ep->terminated;
}

int ag_episode_demo(const ag_game_t *game, uint64_t seed, const ag_game_kv_t *options,
                    size_t num_options, const char *const *bots, size_t num_bots,
                    ag_transcript_t *out, char *err, size_t err_cap)
{
    out->game = game;
    out->seed = seed;
    out->num_players = game->num_players;
    out->num_turns = 0;
    memset(out->returns, 0, sizeof out->returns);

    ag_episode_t *ep = NULL;
    int rc = episode_start(&ep, game, seed, options, num_options, bots, num_bots, true, out, NULL,
                           err, err_cap);
    if (rc < 0)
        return rc;
    assert(ep->terminated);
    for (int t = 0; t < out->num_turns; t++)
        for (int s = 0; s < out->num_players; s++)
            out->returns[s] += out->turns[t].rewards[s];
    out->outcome = ep->outcome;
    ag_episode_destroy(&ep);
    return 0;
}
