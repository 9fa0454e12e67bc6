/*
 * episode.c - a running episode: the game state in the same allocation as
 * the episode, turn checks, bot seats played automatically, observations,
 * the terminal outcome, and Demo transcripts (an episode whose every seat is
 * a bot, recorded turn by turn).
 *
 * Creating an episode is one malloc of a few KB and no zeroing of buffers;
 * a client step is the game's parse-and-apply plus one observation render,
 * so the game logic of a step stays far below a microsecond. Observations
 * are written into a builder that starts in the episode's own 256 bytes and
 * moves to the heap only for a game that says more (up to AG_GAME_OBS_MAX).
 *
 * Only an episode with an outside judge pays for one: a second block with
 * the seats' transcripts (grown on demand, capped) and a snapshot of the
 * episode taken before each client step, so that a held step, or a step
 * that would overflow a transcript, can be undone by copying it back.
 */
#include "episode.h"

#include <assert.h>
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct transcript {
    char *text; /* NUL-terminated */
    size_t len;
    size_t cap;
} transcript_t;

/* What an episode with an outside judge adds (see the file comment). */
typedef struct judging {
    transcript_t seat[AG_GAME_MAX_PLAYERS];
    /* the episode before the last client step */
    size_t saved_len[AG_GAME_MAX_PLAYERS];
    ag_rng_t saved_bot_rng[AG_GAME_MAX_PLAYERS];
    int saved_turns;
    bool saved_truncated;
    ag_text_t saved_obs;
    char saved_obs_first[256];
    /* what the held step earned before the ruling */
    float held_rewards[AG_GAME_MAX_PLAYERS];
    bool held_invalid;
    void *saved_state; /* game->state_size bytes after this struct */
} judging_t;

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
    const char *judge;       /* the outside judge, NULL when the game rules by itself */
    bool ruling_pending;
    judging_t *judging; /* with an outside judge only */
    void *state;        /* game->state_size bytes after this struct */
    ag_text_t obs;      /* observation of the seat to act */
    char obs_first[256];
    ag_game_outcome_t outcome; /* valid once terminated */
};

/* A state block starts at the first max_align_t boundary after its struct. */
#define ALIGNED(size)                                                                              \
    (((size) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))
#define STATE_OFFSET ALIGNED(sizeof(struct ag_episode))
#define SAVED_STATE_OFFSET ALIGNED(sizeof(judging_t))

/* Appends text to a seat's transcript; AG_GAME_ELIMIT over the cap, AG_GAME_ENOMEM. */
static int transcript_add(transcript_t *t, const char *text, size_t len, char *err, size_t err_cap)
{
    if (len > AG_EPISODE_TRANSCRIPT_MAX - t->len) {
        ag_game_errorf(err, err_cap,
                       "a seat's transcript would exceed %d bytes, the most an outside judge "
                       "is sent",
                       AG_EPISODE_TRANSCRIPT_MAX);
        return AG_GAME_ELIMIT;
    }
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 1024;
        while (cap < t->len + len + 1)
            cap *= 2;
        char *p = realloc(t->text, cap);
        if (p == NULL) {
            ag_game_errorf(err, err_cap, "out of memory for a transcript");
            return AG_GAME_ENOMEM;
        }
        t->text = p;
        t->cap = cap;
    }
    memcpy(t->text + t->len, text, len);
    t->len += len;
    t->text[t->len] = '\0';
    return 0;
}

/* Replaces the text of t with text[0..len); only fails where t must grow. */
static int text_set(ag_text_t *t, const char *text, size_t len)
{
    ag_text_clear(t);
    ag_text_mem(t, text, len);
    return t->err;
}

static int judging_save(ag_episode_t *ep, char *err, size_t err_cap)
{
    judging_t *j = ep->judging;
    if (text_set(&j->saved_obs, ep->obs.buf, ep->obs.len) < 0) {
        ag_game_errorf(err, err_cap, "out of memory");
        return AG_GAME_ENOMEM;
    }
    memcpy(j->saved_state, ep->state, ep->game->state_size);
    for (int s = 0; s < ep->num_players; s++)
        j->saved_len[s] = j->seat[s].len;
    memcpy(j->saved_bot_rng, ep->bot_rng, sizeof j->saved_bot_rng);
    j->saved_turns = ep->turns;
    j->saved_truncated = ep->truncated;
    return 0;
}

static void judging_restore(ag_episode_t *ep)
{
    judging_t *j = ep->judging;
    memcpy(ep->state, j->saved_state, ep->game->state_size);
    for (int s = 0; s < ep->num_players; s++) {
        j->seat[s].len = j->saved_len[s];
        if (j->seat[s].text != NULL)
            j->seat[s].text[j->saved_len[s]] = '\0';
    }
    memcpy(ep->bot_rng, j->saved_bot_rng, sizeof ep->bot_rng);
    ep->turns = j->saved_turns;
    ep->truncated = j->saved_truncated;
    /* Cannot fail: the observation's buffer only grows, so the saved text fits. */
    text_set(&ep->obs, j->saved_obs.buf, j->saved_obs.len);
    ep->ruling_pending = false;
}

static void judging_free(ag_episode_t *ep)
{
    if (ep->judging == NULL)
        return;
    for (int s = 0; s < AG_GAME_MAX_PLAYERS; s++)
        free(ep->judging->seat[s].text);
    ag_text_free(&ep->judging->saved_obs);
    free(ep->judging);
    ep->judging = NULL;
}

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
    res->observation = ep->obs.buf;
    res->observation_len = ep->obs.len;
    res->terminated = ep->terminated;
    res->truncated = ep->truncated;
    res->ruling_pending = ep->ruling_pending;
    res->outcome = ep->terminated ? &ep->outcome : NULL;
}

/*
 * The finished game's outcome, checked: every info value fitted and every
 * metric reported is one the game declares (and not a ratio, which
 * consumers compute from two reported ones).
 */
static int finish_outcome(ag_episode_t *ep, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    ag_game_outcome_t *o = &ep->outcome;
    ag_game_outcome_clear(o);
    g->outcome(ep->state, o);
    if (ag_game_outcome_status(o) < 0) {
        ag_game_errorf(err, err_cap, "internal: game %s wrote an info value longer than %d bytes",
                       g->name, AG_GAME_INFO_VALUE_CAP - 1);
        return AG_GAME_EINTERNAL;
    }
    for (int i = 0; i < o->num_metrics; i++) {
        const ag_game_metric_spec_t *m = ag_game_metric_find(g, o->metrics[i].name);
        if (m == NULL || m->numerator != NULL) {
            ag_game_errorf(err, err_cap,
                           "internal: game %s reported metric %.64s, which it does not declare "
                           "as a reported metric",
                           g->name, o->metrics[i].name);
            return AG_GAME_EINTERNAL;
        }
    }
    return 0;
}

/* A text failure of the game's (an observation or a bot action) as an episode error. */
static int text_failure(const ag_game_t *g, int text_err, const char *what, size_t max, char *err,
                        size_t err_cap)
{
    if (text_err == -ENOMEM) {
        ag_game_errorf(err, err_cap, "out of memory for %s of game %s", what, g->name);
        return AG_GAME_ENOMEM;
    }
    ag_game_errorf(err, err_cap, "game %s wrote %s longer than %zu bytes", g->name, what, max);
    return AG_GAME_ELIMIT;
}

/* Copies text[0..len) and its NUL into *dst, growing it (*cap bytes) as needed. */
static int keep_text(char **dst, size_t *cap, const char *text, size_t len)
{
    if (len + 1 > *cap) {
        char *p = realloc(*dst, len + 1);
        if (p == NULL)
            return AG_GAME_ENOMEM;
        *dst = p;
        *cap = len + 1;
    }
    memcpy(*dst, text, len + 1);
    return 0;
}

/* Records a bot's turn in the demo transcript. */
static int record_turn(ag_episode_t *ep, int seat, const ag_text_t *action,
                       const ag_game_step_t *st, char *err, size_t err_cap)
{
    ag_turn_t *turn = &ep->record->turns[ep->record->num_turns];
    if (keep_text(&turn->observation, &turn->observation_cap, ep->obs.buf, ep->obs.len) < 0 ||
        keep_text(&turn->action, &turn->action_cap, action->buf, action->len) < 0) {
        ag_game_errorf(err, err_cap, "out of memory for a demo transcript");
        return AG_GAME_ENOMEM;
    }
    turn->player = seat;
    turn->observation_len = ep->obs.len;
    turn->action_len = action->len;
    memcpy(turn->rewards, st->rewards, sizeof turn->rewards);
    ep->record->num_turns++;
    return 0;
}

/*
 * Plays bot seats until a client seat is to act, the game ends or it awaits
 * an outside ruling, adding their rewards to rewards[] and, in demos,
 * recording each turn. Leaves the observation of the client seat to act
 * (or "" at the end) in ep->obs. With an outside judge every observation
 * and bot action also goes into its seat's transcript.
 */
static int advance(ag_episode_t *ep, float *rewards, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    judging_t *j = ep->judging;
    int rc;
    for (;;) {
        int seat = g->to_act(ep->state);
        ag_text_clear(&ep->obs);
        if (seat < 0) {
            if (ep->judge != NULL && g->awaiting_ruling(ep->state)) {
                ep->ruling_pending = true;
                return 0;
            }
            if ((rc = finish_outcome(ep, err, err_cap)) < 0)
                return rc;
            ep->terminated = true;
            return 0;
        }
        assert(seat < ep->num_players);
        if (ep->bot[seat] < 0 || ep->record != NULL || j != NULL) {
            g->observe(ep->state, &ep->obs);
            if (ep->obs.err != 0)
                return text_failure(g, ep->obs.err, "an observation", ep->obs.max, err, err_cap);
        }
        if (j != NULL &&
            (rc = transcript_add(&j->seat[seat], ep->obs.buf, ep->obs.len, err, err_cap)) < 0)
            return rc;
        if (ep->bot[seat] < 0)
            return 0;
        if (ep->turns >= AG_GAME_MAX_TURNS) {
            ag_game_errorf(err, err_cap, "internal: game %s exceeded %d turns", g->name,
                           AG_GAME_MAX_TURNS);
            return AG_GAME_EINTERNAL;
        }

        char action_buf[AG_GAME_ACTION_MAX + 1];
        ag_text_t action = ag_text_init(action_buf, sizeof action_buf);
        g->bot_act(ep->state, ep->bot[seat], &ep->bot_rng[seat], &action);
        if (action.err != 0) {
            text_failure(g, action.err, "a bot action", action.max, err, err_cap);
            return AG_GAME_EINTERNAL;
        }
        ag_game_step_t st = {0};
        char why[AG_GAME_ERR_CAP] = "";
        if (g->step(ep->state, action.buf, action.len, &st, why, sizeof why) < 0 ||
            st.invalid_action) {
            ag_game_errorf(err, err_cap, "internal: bot %s of game %s wrote '%.200s': %s",
                           g->bots[ep->bot[seat]], g->name, action.buf, why);
            return AG_GAME_EINTERNAL;
        }
        if (j != NULL &&
            (rc = transcript_add(&j->seat[seat], action.buf, action.len, err, err_cap)) < 0)
            return rc;
        for (int s = 0; s < ep->num_players; s++)
            rewards[s] += st.rewards[s];
        ep->truncated |= st.truncated;
        if (ep->record != NULL && (rc = record_turn(ep, seat, &action, &st, err, err_cap)) < 0)
            return rc;
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

/*
 * Sets up an episode whose game named an outside judge: only for episodes a
 * client plays a seat of, since the ruling is asked for by the client's step.
 */
static int judging_start(ag_episode_t *ep, char *err, size_t err_cap)
{
    const ag_game_t *g = ep->game;
    assert(g->awaiting_ruling != NULL && g->rule != NULL);
    if (ep->record != NULL) {
        ag_game_errorf(err, err_cap,
                       "demos use the rule judge (the game's own): drop the option judge=reward:%s",
                       ep->judge);
        return AG_GAME_EBADOPT;
    }
    int clients = 0;
    for (int s = 0; s < ep->num_players; s++)
        clients += ep->bot[s] < 0;
    if (clients == 0) {
        ag_game_errorf(err, err_cap,
                       "judge=reward:%s needs a seat played by the client (every seat is a bot)",
                       ep->judge);
        return AG_GAME_EBADOPT;
    }
    ep->judging = calloc(1, SAVED_STATE_OFFSET + g->state_size);
    if (ep->judging == NULL) {
        ag_game_errorf(err, err_cap, "out of memory");
        return AG_GAME_ENOMEM;
    }
    ep->judging->saved_state = (char *)ep->judging + SAVED_STATE_OFFSET;
    ag_text_init_growing(&ep->judging->saved_obs, ep->judging->saved_obs_first,
                         sizeof ep->judging->saved_obs_first, AG_GAME_OBS_MAX);
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
    ep->judge = NULL;
    ep->ruling_pending = false;
    ep->judging = NULL;
    ep->state = (char *)ep + STATE_OFFSET;
    ag_text_init_growing(&ep->obs, ep->obs_first, sizeof ep->obs_first, AG_GAME_OBS_MAX);

    float rewards[AG_GAME_MAX_PLAYERS] = {0};
    int rc = resolve_bots(ep, seat_bots, num_seat_bots, fill_demo, err, err_cap);
    if (rc == 0)
        rc = game->reset(ep->state, seed, options, num_options, err, err_cap);
    if (rc == 0 && game->judge != NULL && (ep->judge = game->judge(ep->state)) != NULL)
        rc = judging_start(ep, err, err_cap);
    if (rc == 0)
        rc = advance(ep, rewards, err, err_cap);
    if (rc == 0 && ep->ruling_pending) {
        ag_game_errorf(err, err_cap, "internal: game %s awaits a ruling before any client step",
                       game->name);
        rc = AG_GAME_EINTERNAL;
    }
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
    judging_free(ep);
    ag_text_free(&ep->obs);
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
    judging_free(*self);
    ag_text_free(&(*self)->obs);
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
    if (ep->ruling_pending) {
        ag_game_errorf(err, err_cap, "the episode is waiting for its judge's ruling");
        return AG_GAME_ERULING;
    }
    int to_act = g->to_act(ep->state);
    if (player != to_act) {
        ag_game_errorf(err, err_cap, "not your turn: seat %d (%s) is to act", to_act,
                       g->roles[to_act]);
        return AG_GAME_ETURN;
    }
    if (action == NULL)
        action = "";
    judging_t *j = ep->judging;
    int rc;
    if (j != NULL && (rc = judging_save(ep, err, err_cap)) < 0)
        return rc;
    ag_game_step_t st = {0};
    rc = g->step(ep->state, action, len, &st, err, err_cap);
    if (rc < 0)
        return rc;
    ep->turns++;
    ep->truncated |= st.truncated;
    if (j != NULL)
        rc = transcript_add(&j->seat[player], action, len, err, err_cap);
    if (rc == 0)
        rc = advance(ep, st.rewards, err, err_cap);
    if (rc < 0) {
        if (j != NULL) {
            judging_restore(ep);
        } else {
            /* The step was applied but what follows failed: no one can play on from here. */
            ep->terminated = true;
            ag_game_outcome_clear(&ep->outcome);
        }
        return rc;
    }
    if (ep->ruling_pending) {
        memcpy(j->held_rewards, st.rewards, sizeof j->held_rewards);
        j->held_invalid = st.invalid_action;
    }
    if (res != NULL) {
        memcpy(res->rewards, st.rewards, sizeof res->rewards);
        res->invalid_action = st.invalid_action;
        fill_result(ep, res);
    }
    return 0;
}

const char *ag_episode_judge(const ag_episode_t *ep)
{
    return ep->judge;
}

bool ag_episode_ruling_pending(const ag_episode_t *ep)
{
    return ep->ruling_pending;
}

const char *ag_episode_transcript(const ag_episode_t *ep, int seat, size_t *len)
{
    *len = 0;
    if (ep->judging == NULL || seat < 0 || seat >= ep->num_players)
        return NULL;
    const transcript_t *t = &ep->judging->seat[seat];
    *len = t->len;
    return t->text != NULL ? t->text : "";
}

int ag_episode_rule(ag_episode_t *ep, const double *scores, size_t num_scores,
                    ag_episode_result_t *res, char *err, size_t err_cap)
{
    if (!ep->ruling_pending) {
        ag_game_errorf(err, err_cap, "no ruling is awaited");
        return AG_GAME_EINTERNAL;
    }
    if (num_scores != (size_t)ep->num_players) {
        ag_game_errorf(err, err_cap, "the judge gave %zu scores for %d seats", num_scores,
                       ep->num_players);
        return AG_GAME_EINVAL;
    }
    for (size_t s = 0; s < num_scores; s++) {
        if (!isfinite(scores[s])) {
            ag_game_errorf(err, err_cap, "the judge's score of seat %zu is not a finite number", s);
            return AG_GAME_EINVAL;
        }
    }
    judging_t *j = ep->judging;
    ag_game_step_t st = {0};
    ep->game->rule(ep->state, scores, &st);
    ep->ruling_pending = false;
    ep->truncated |= st.truncated;
    for (int s = 0; s < ep->num_players; s++)
        st.rewards[s] += j->held_rewards[s];
    int rc = advance(ep, st.rewards, err, err_cap);
    if (rc < 0) {
        judging_restore(ep);
        return rc;
    }
    if (res != NULL) {
        memcpy(res->rewards, st.rewards, sizeof res->rewards);
        res->invalid_action = j->held_invalid || st.invalid_action;
        fill_result(ep, res);
    }
    return 0;
}

void ag_episode_cancel_ruling(ag_episode_t *ep)
{
    if (ep->ruling_pending)
        judging_restore(ep);
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

void ag_transcript_finish(ag_transcript_t *tr)
{
    for (int t = 0; t < AG_GAME_MAX_TURNS; t++) {
        free(tr->turns[t].observation);
        free(tr->turns[t].action);
    }
    memset(tr, 0, sizeof *tr);
}
