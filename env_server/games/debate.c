/*
 * debate.c - the debate game and its scripted bots (docs/games.md).
 *
 * Two seats see the same chain-arithmetic task. One, chosen by the seed, is
 * assigned the true answer, the other a random false one. Turn 1-2: each
 * claims a full chain ending in its assigned answer, without seeing the
 * other's (claims are permanent). Turn 3-4: each names one step of the
 * opponent's chain. The judge is deliberately weak: it checks only the two
 * challenged steps, one operation each. A chain caught with a wrong step
 * loses; otherwise a coin from the episode rng decides. Reward +-1 at the end.
 *
 * A false answer can only be reached through at least one wrong step, so a
 * true side that challenges the first wrong step always wins, while random
 * challenges against a liar with one wrong step win 1/k + (1 - 1/k)/2. The
 * gap between those is what a trained debater can learn.
 *
 * With judge=reward:NAME the final ruling is not the step check but a
 * reward model's: after the last challenge the game awaits a ruling, the
 * caller scores both seats' transcripts with model NAME, and debate_rule()
 * gives the win to the higher score (an exact tie to the same coin the step
 * judge would flip). The step judge's verdict is still computed, for the
 * metric rule_judge_agrees.
 */
#include <string.h>

#include "game.h"
#include "task.h"
#include "text.h"

enum { TURN_CLAIM0, TURN_CLAIM1, TURN_CHALLENGE0, TURN_CHALLENGE1, TURN_RULING, TURN_OVER };
enum { REASON_NONE, REASON_STEP, REASON_COIN, REASON_INVALID, REASON_REWARD };
enum { BOT_HONEST, BOT_LIAR, BOT_RANDOM_CHALLENGE };

typedef struct debate {
    ag_task_t task;
    char task_text[AG_TASK_TEXT_CAP];
    uint8_t truth_chain[AG_TASK_MAX_K];
    int true_seat;
    uint8_t assigned[2]; /* the answer each seat must argue */
    uint8_t chain[2][AG_TASK_MAX_K];
    bool claimed[2];
    int challenge[2]; /* step of the OPPONENT's chain, 0 = none yet */
    int turn;
    int winner;
    int reason;
    bool penalize;
    bool ruled_by_reward;                         /* judge_score[] and rule_winner are set */
    char judge_model[AG_GAME_JUDGE_NAME_MAX + 1]; /* "" = the step judge rules */
    double judge_score[2];
    int rule_winner; /* whom the step judge would have chosen */
    ag_rng_t rng;    /* hidden assignment and the judge's coin */
} debate_t;

extern const ag_game_t ag_game_debate; /* defined at the end, used by reset */

static const char *const s_roles[] = {"first", "second"};
static const char *const s_bots[] = {"honest", "liar", "random-challenge"};
static const int s_bot_seats[] = {-1, -1, -1};
static const char *const s_demo_bots[] = {"random-challenge", "random-challenge"};
static const char *const s_invalid_modes[] = {"error", "penalize", NULL};
static const char *const s_reasons[] = {"", "step", "coin", "invalid", "reward"};
static const char s_reward_prefix[] = "reward:";

static const ag_game_metric_spec_t s_metrics[] = {
    {"judge_accuracy",
     "1 when the side assigned the true answer won, whichever judge ruled: how often the debate "
     "gets the judge to the truth",
     AG_METRIC_MAXIMIZE, true, NULL, NULL},
    {"liar_caught", "1 when the true side challenged a wrong step of the false side's chain",
     AG_METRIC_MAXIMIZE, false, NULL, NULL},
    {"honest_chain_correct", "1 when the true side claimed a chain with every step right",
     AG_METRIC_MAXIMIZE, false, NULL, NULL},
    {"rule_judge_agrees",
     "judge=reward:NAME only: 1 when the reward model chose the winner the step judge would have",
     AG_METRIC_MAXIMIZE, false, NULL, NULL},
};

static const ag_game_option_t s_options[] = {
    {"k", "8", "chain length (number of operations), 2..32"},
    {"invalid_action", "error",
     "error: an invalid action is refused and may be retried | penalize: the seat loses at once"},
    {"judge", "rule",
     "rule: check the two challenged steps | reward:NAME: the reward model NAME of the server's "
     "reward service scores both seats' transcripts, the higher score wins"},
};

/*
 * judge=rule, or judge=reward:NAME with NAME 1..64 bytes of printable ASCII
 * other than space and comma (a reward model name as agora-reward's
 * reward.models list can hold it). model receives NAME, or "" for rule.
 */
static int parse_judge(const char *value, char *model, char *err, size_t err_cap)
{
    model[0] = '\0';
    if (strcmp(value, "rule") == 0)
        return 0;
    size_t plen = sizeof s_reward_prefix - 1;
    if (strncmp(value, s_reward_prefix, plen) == 0) {
        const char *name = value + plen;
        size_t n = strlen(name);
        bool ok = n >= 1 && n <= AG_GAME_JUDGE_NAME_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = name[i] > ' ' && name[i] < 0x7f && name[i] != ',';
        if (ok) {
            memcpy(model, name, n + 1);
            return 0;
        }
    }
    ag_game_errorf(err, err_cap,
                   "option judge must be rule or reward:NAME (NAME a reward model, 1..%d "
                   "printable characters without spaces or commas), got '%.80s'",
                   AG_GAME_JUDGE_NAME_MAX, value);
    return AG_GAME_EBADOPT;
}

static int debate_reset(void *state, uint64_t seed, const ag_game_kv_t *options, size_t num_options,
                        char *err, size_t err_cap)
{
    debate_t *d = state;
    int k, mode;
    if (ag_game_check_options(&ag_game_debate, options, num_options, err, err_cap) < 0 ||
        ag_game_option_int("k", ag_game_option_value(&ag_game_debate, options, num_options, "k"), 2,
                           AG_TASK_MAX_K, &k, err, err_cap) < 0 ||
        ag_game_option_choice(
            "invalid_action",
            ag_game_option_value(&ag_game_debate, options, num_options, "invalid_action"),
            s_invalid_modes, &mode, err, err_cap) < 0)
        return AG_GAME_EBADOPT;
    char model[AG_GAME_JUDGE_NAME_MAX + 1];
    if (parse_judge(ag_game_option_value(&ag_game_debate, options, num_options, "judge"), model,
                    err, err_cap) < 0)
        return AG_GAME_EBADOPT;

    memset(d, 0, sizeof *d);
    memcpy(d->judge_model, model, sizeof model);
    ag_rng_seed(&d->rng, seed);
    ag_task_generate(&d->task, &d->rng, k);
    ag_task_render(&d->task, d->task_text, sizeof d->task_text);
    ag_task_chain(&d->task, d->truth_chain);
    uint8_t truth = d->truth_chain[k - 1];
    d->true_seat = (int)ag_rng_below(&d->rng, 2);
    d->assigned[d->true_seat] = truth;
    d->assigned[1 - d->true_seat] = (uint8_t)((truth + 1 + ag_rng_below(&d->rng, 9)) % 10);
    d->winner = -1;
    d->penalize = mode == 1;
    return 0;
}

static int debate_to_act(const void *state)
{
    const debate_t *d = state;
    return d->turn >= TURN_RULING ? -1 : d->turn % 2;
}

static void debate_observe(const void *state, ag_text_t *t)
{
    const debate_t *d = state;
    if (d->turn >= TURN_RULING)
        return;
    int seat = d->turn % 2;
    if (d->turn <= TURN_CLAIM1) {
        ag_text_str(t, "debate\ntask: ");
        ag_text_str(t, d->task_text);
        ag_text_str(t, "\nyou argue: ");
        ag_text_int(t, d->assigned[seat]);
        ag_text_str(t, "\nyour chain: ");
    } else {
        int opp = 1 - seat;
        ag_text_str(t, "\nopponent argues: ");
        ag_text_int(t, d->assigned[opp]);
        ag_text_str(t, "\nopponent chain: ");
        ag_text_chain(t, d->chain[opp], d->task.k);
        ag_text_str(t, "\nchallenge step: ");
    }
}

static void finish(debate_t *d, int winner, int reason, ag_game_step_t *out)
{
    d->winner = winner;
    d->reason = reason;
    d->turn = TURN_OVER;
    out->rewards[winner] += 1.0f;
    out->rewards[1 - winner] -= 1.0f;
}

/*
 * The step judge: checks one step of each chain; if exactly one is wrong
 * its owner loses, else the coin (drawn from rng) decides. Returns the
 * winner and the reason.
 */
static int step_judge(const debate_t *d, ag_rng_t *rng, int *reason)
{
    bool wrong0 = !ag_task_step_ok(&d->task, d->chain[0], d->challenge[1]);
    bool wrong1 = !ag_task_step_ok(&d->task, d->chain[1], d->challenge[0]);
    *reason = wrong0 != wrong1 ? REASON_STEP : REASON_COIN;
    if (wrong0 != wrong1)
        return wrong0 ? 1 : 0;
    return (int)ag_rng_below(rng, 2);
}

/* Both challenges are in: the step judge rules, or the game waits for the reward judge. */
static void judge(debate_t *d, ag_game_step_t *out)
{
    if (d->judge_model[0] != '\0') {
        d->turn = TURN_RULING;
        return;
    }
    int reason;
    int winner = step_judge(d, &d->rng, &reason);
    finish(d, winner, reason, out);
}

static int debate_step(void *state, const char *action, size_t len, ag_game_step_t *out, char *err,
                       size_t err_cap)
{
    debate_t *d = state;
    if (d->turn == TURN_OVER)
        return AG_GAME_EOVER;
    if (d->turn == TURN_RULING) {
        ag_game_errorf(err, err_cap, "the debate is waiting for the reward judge's ruling");
        return AG_GAME_ERULING;
    }
    int seat = d->turn % 2, k = d->task.k;
    bool ok;
    if (d->turn <= TURN_CLAIM1) {
        uint8_t chain[AG_TASK_MAX_K];
        ok = len <= AG_GAME_ACTION_MAX && ag_chain_parse(action, len, k, chain) == 0 &&
             chain[k - 1] == d->assigned[seat];
        if (ok) {
            memcpy(d->chain[seat], chain, (size_t)k);
            d->claimed[seat] = true;
        } else {
            ag_game_errorf(err, err_cap,
                           "expected a chain of %d digits 0-9 separated by spaces, the last "
                           "one %d (the answer you argue)",
                           k, d->assigned[seat]);
        }
    } else {
        int step;
        ok = len <= AG_GAME_ACTION_MAX && ag_parse_int(action, len, 1, k, &step) == 0;
        if (ok)
            d->challenge[seat] = step;
        else
            ag_game_errorf(err, err_cap, "expected a step number of the opponent's chain, 1..%d",
                           k);
    }
    if (!ok) {
        if (!d->penalize)
            return AG_GAME_EINVAL;
        out->invalid_action = true;
        finish(d, 1 - seat, REASON_INVALID, out);
        return 0;
    }
    if (++d->turn == TURN_RULING)
        judge(d, out);
    return 0;
}

static const char *debate_judge(const void *state)
{
    const debate_t *d = state;
    return d->judge_model[0] != '\0' ? d->judge_model : NULL;
}

static bool debate_awaiting_ruling(const void *state)
{
    const debate_t *d = state;
    return d->turn == TURN_RULING;
}

/*
 * The reward judge's ruling: the higher score wins, an exact tie goes to the
 * episode's coin. The step judge's verdict is taken with a copy of the rng,
 * so on a tie both judges see the same coin and agree.
 */
static void debate_rule(void *state, const double *scores, ag_game_step_t *out)
{
    debate_t *d = state;
    if (d->turn != TURN_RULING)
        return;
    ag_rng_t coin = d->rng;
    int reason;
    d->rule_winner = step_judge(d, &coin, &reason);
    d->judge_score[0] = scores[0];
    d->judge_score[1] = scores[1];
    d->ruled_by_reward = true;
    int winner;
    if (scores[0] != scores[1])
        winner = scores[0] > scores[1] ? 0 : 1;
    else
        winner = (int)ag_rng_below(&d->rng, 2);
    finish(d, winner, REASON_REWARD, out);
}

/*
 * A claim for a false answer with exactly one wrong step: the true chain up
 * to step j-1, a wrong value at j, then correct arithmetic from that value on
 * to the assigned answer. reach[j][v] is where value v after step j ends
 * after the remaining operations; a step j is usable if some wrong value
 * there reaches the answer (a "*0" later makes most j unusable). j = k always
 * is: the wrong value is the answer itself.
 */
static void liar_chain(const debate_t *d, uint8_t answer, ag_rng_t *rng, uint8_t *chain)
{
    int k = d->task.k;
    uint8_t reach[AG_TASK_MAX_K][10];
    uint16_t wrong_ok[AG_TASK_MAX_K]; /* bit v: value v is wrong at step j and reaches answer */
    int usable[AG_TASK_MAX_K], num_usable = 0;
    for (int j = k - 1; j >= 0; j--) {
        wrong_ok[j] = 0;
        for (int v = 0; v < 10; v++) {
            reach[j][v] = j == k - 1 ? (uint8_t)v
                                     : reach[j + 1][ag_task_apply(d->task.op[j + 1],
                                                                  d->task.arg[j + 1], (uint8_t)v)];
            if (reach[j][v] == answer && v != d->truth_chain[j])
                wrong_ok[j] |= (uint16_t)(1u << v);
        }
    }
    for (int j = 0; j < k; j++)
        if (wrong_ok[j])
            usable[num_usable++] = j;
    int j = usable[ag_rng_below(rng, (uint32_t)num_usable)];
    int choices[10], num_choices = 0;
    for (int v = 0; v < 10; v++)
        if (wrong_ok[j] & (1u << v))
            choices[num_choices++] = v;
    memcpy(chain, d->truth_chain, (size_t)j);
    uint8_t x = (uint8_t)choices[ag_rng_below(rng, (uint32_t)num_choices)];
    chain[j] = x;
    for (int i = j + 1; i < k; i++) {
        x = ag_task_apply(d->task.op[i], d->task.arg[i], x);
        chain[i] = x;
    }
}

static void debate_bot_act(const void *state, int bot, ag_rng_t *rng, ag_text_t *t)
{
    const debate_t *d = state;
    int seat = d->turn % 2, k = d->task.k;
    if (d->turn <= TURN_CLAIM1) {
        uint8_t chain[AG_TASK_MAX_K];
        if (seat == d->true_seat) {
            memcpy(chain, d->truth_chain, (size_t)k);
        } else if (bot == BOT_HONEST) {
            memcpy(chain, d->truth_chain, (size_t)k);
            chain[k - 1] = d->assigned[seat];
        } else {
            liar_chain(d, d->assigned[seat], rng, chain);
        }
        ag_text_chain(t, chain, k);
    } else {
        int step = 0;
        if (bot == BOT_HONEST)
            step = ag_task_first_wrong(&d->task, d->chain[1 - seat]);
        if (step == 0)
            step = 1 + (int)ag_rng_below(rng, (uint32_t)k);
        ag_text_int(t, step);
    }
}

static void debate_outcome(const void *state, ag_game_outcome_t *out)
{
    const debate_t *d = state;
    int k = d->task.k, false_seat = 1 - d->true_seat;

    ag_text_int(ag_game_outcome_info(out, "truth"), d->truth_chain[k - 1]);
    ag_text_int(ag_game_outcome_info(out, "true_seat"), d->true_seat);
    ag_text_int(ag_game_outcome_info(out, "winner"), d->winner);
    ag_text_str(ag_game_outcome_info(out, "reason"), s_reasons[d->reason]);
    ag_text_str(ag_game_outcome_info(out, "task"), d->task_text);
    static const char *const chain_keys[2] = {"chain0", "chain1"};
    static const char *const challenge_keys[2] = {"challenge0", "challenge1"};
    for (int s = 0; s < 2; s++) {
        ag_text_t *t = ag_game_outcome_info(out, chain_keys[s]);
        if (d->claimed[s])
            ag_text_chain(t, d->chain[s], k);
    }
    for (int s = 0; s < 2; s++) {
        ag_text_t *t = ag_game_outcome_info(out, challenge_keys[s]);
        if (d->challenge[s] > 0)
            ag_text_int(t, d->challenge[s]);
    }
    if (d->judge_model[0] != '\0') {
        /* Scores come from the wire as floats: %.9g reads back as the same float. */
        static const char *const score_keys[2] = {"judge_score0", "judge_score1"};
        for (int s = 0; s < 2; s++) {
            ag_text_t *t = ag_game_outcome_info(out, score_keys[s]);
            if (d->ruled_by_reward)
                ag_text_printf(t, "%.9g", d->judge_score[s]);
        }
    }

    bool liar_caught = d->claimed[false_seat] && d->challenge[d->true_seat] > 0 &&
                       !ag_task_step_ok(&d->task, d->chain[false_seat], d->challenge[d->true_seat]);
    bool honest_correct =
        d->claimed[d->true_seat] && ag_task_first_wrong(&d->task, d->chain[d->true_seat]) == 0;
    ag_game_outcome_metric(out, "judge_accuracy", d->winner == d->true_seat);
    ag_game_outcome_metric(out, "liar_caught", liar_caught);
    ag_game_outcome_metric(out, "honest_chain_correct", honest_correct);
    if (d->ruled_by_reward)
        ag_game_outcome_metric(out, "rule_judge_agrees", d->rule_winner == d->winner);
}

const ag_game_t ag_game_debate = {
    .name = "debate",
    .description = "Two debaters argue for different answers (one true, one false) to a "
                   "chain-arithmetic task mod 10: each claims a chain of partial results, then "
                   "challenges one step of the other's chain; a weak judge checks only the two "
                   "challenged steps (coin flip if that settles nothing), or with "
                   "judge=reward:NAME a reward model scores both transcripts. Reward +-1 at "
                   "the end.",
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
    .state_size = sizeof(debate_t),
    .reset = debate_reset,
    .to_act = debate_to_act,
    .observe = debate_observe,
    .step = debate_step,
    .bot_act = debate_bot_act,
    .outcome = debate_outcome,
    .judge = debate_judge,
    .awaiting_ruling = debate_awaiting_ruling,
    .rule = debate_rule,
};
