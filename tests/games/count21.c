/*
 * count21.c - "count to 21", the game of the new-game walkthrough
 * (env_server/games/README.md): written the way a game in
 * env_server/games/ is, and built into an agora-env of its own by
 * tests/meson.build with the same registry generator, to show that a game
 * needs nothing outside its own file and the list of games.
 *
 * Two seats take turns adding 1, 2 or 3 to a count that starts at a number
 * drawn from the seed (0..3); whoever brings it to `target` wins (+1, the
 * other -1). The seat to act wins under perfect play exactly when
 * (target - count) % 4 != 0 at its turn; the bot `perfect` plays so.
 */
#include <string.h>

#include "game.h"
#include "task.h"
#include "text.h"

enum { BOT_RANDOM, BOT_PERFECT };

typedef struct count21 {
    int target;
    int count;
    int to_act;       /* -1 once someone reached the target */
    int last_add;     /* what the previous seat added, 0 before the first move */
    int moves;
    int winner;
    int theory_winner; /* who wins with perfect play from the start */
    bool seen[2];      /* the seat has had its first observation */
} count21_t;

extern const ag_game_t ag_game_count21;

static const char *const s_roles[] = {"first", "second"};
static const char *const s_bots[] = {"random", "perfect"};
static const int s_bot_seats[] = {-1, -1};
static const char *const s_demo_bots[] = {"random", "perfect"};

static const ag_game_option_t s_options[] = {
    {"target", "21", "the count that wins, 4..100"},
};

static const ag_game_metric_spec_t s_metrics[] = {
    {"theory_winner_won", "1 when the seat that wins with perfect play from the start won",
     AG_METRIC_MAXIMIZE, true, NULL, NULL},
    {"first_won", "1 when the first seat won", AG_METRIC_UNSPECIFIED, false, NULL, NULL},
    {"moves", "moves played", AG_METRIC_UNSPECIFIED, false, NULL, NULL},
};

static int count21_reset(void *state, uint64_t seed, const ag_game_kv_t *options,
                         size_t num_options, char *err, size_t err_cap)
{
    count21_t *c = state;
    const ag_game_t *g = &ag_game_count21;
    int target;
    if (ag_game_check_options(g, options, num_options, err, err_cap) < 0 ||
        ag_game_option_int("target", ag_game_option_value(g, options, num_options, "target"), 4,
                           100, &target, err, err_cap) < 0)
        return AG_GAME_EBADOPT;
    ag_rng_t rng;
    ag_rng_seed(&rng, seed);
    memset(c, 0, sizeof *c);
    c->target = target;
    c->count = (int)ag_rng_below(&rng, 4);
    c->winner = -1;
    c->theory_winner = (target - c->count) % 4 != 0 ? 0 : 1;
    return 0;
}

static int count21_to_act(const void *state)
{
    const count21_t *c = state;
    return c->winner >= 0 ? -1 : c->moves % 2;
}

static void count21_observe(const void *state, ag_text_t *out)
{
    const count21_t *c = state;
    int seat = c->moves % 2;
    if (!c->seen[seat]) {
        ag_text_str(out, "count21: add 1, 2 or 3 to the count; whoever reaches ");
        ag_text_int(out, c->target);
        ag_text_str(out, " wins");
    }
    if (c->last_add > 0) {
        ag_text_str(out, "\nopponent added ");
        ag_text_int(out, c->last_add);
    }
    ag_text_str(out, "\ncount: ");
    ag_text_int(out, c->count);
    ag_text_str(out, "\nyou add: ");
}

static int count21_step(void *state, const char *action, size_t len, ag_game_step_t *out,
                        char *err, size_t err_cap)
{
    count21_t *c = state;
    if (c->winner >= 0)
        return AG_GAME_EOVER;
    int most = c->target - c->count < 3 ? c->target - c->count : 3, add;
    if (len > AG_GAME_ACTION_MAX || ag_parse_int(action, len, 1, most, &add) < 0) {
        ag_game_errorf(err, err_cap, "expected a number 1..%d", most);
        return AG_GAME_EINVAL;
    }
    int seat = c->moves % 2;
    c->seen[seat] = true; /* its next observations leave out the rules */
    c->count += add;
    c->last_add = add;
    c->moves++;
    if (c->count == c->target) {
        c->winner = seat;
        out->rewards[seat] += 1.0f;
        out->rewards[1 - seat] -= 1.0f;
    }
    return 0;
}

static void count21_bot_act(const void *state, int bot, ag_rng_t *rng, ag_text_t *out)
{
    const count21_t *c = state;
    int left = c->target - c->count, most = left < 3 ? left : 3;
    int add = bot == BOT_PERFECT ? left % 4 : 0;
    if (add == 0)
        add = 1 + (int)ag_rng_below(rng, (uint32_t)most);
    ag_text_int(out, add);
}

static void count21_outcome(const void *state, ag_game_outcome_t *out)
{
    const count21_t *c = state;
    ag_text_int(ag_game_outcome_info(out, "winner"), c->winner);
    ag_text_int(ag_game_outcome_info(out, "count"), c->count);
    ag_game_outcome_metric(out, "theory_winner_won", c->winner == c->theory_winner);
    ag_game_outcome_metric(out, "first_won", c->winner == 0);
    ag_game_outcome_metric(out, "moves", c->moves);
}

const ag_game_t ag_game_count21 = {
    .name = "count21",
    .description = "Two seats add 1, 2 or 3 in turn to a count; whoever reaches the target "
                   "(21) wins: +1, the other -1.",
    .num_players = 2,
    .roles = s_roles,
    .options = s_options,
    .num_options = (int)(sizeof s_options / sizeof s_options[0]),
    .bots = s_bots,
    .bot_seats = s_bot_seats,
    .num_bots = (int)(sizeof s_bots / sizeof s_bots[0]),
    .demo_bots = s_demo_bots,
    .metrics = s_metrics,
    .num_metrics = (int)(sizeof s_metrics / sizeof s_metrics[0]),
    .state_size = sizeof(count21_t),
    .reset = count21_reset,
    .to_act = count21_to_act,
    .observe = count21_observe,
    .step = count21_step,
    .bot_act = count21_bot_act,
    .outcome = count21_outcome,
};
