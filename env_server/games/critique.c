/*
 * critique.c - the critique game and its scripted bots (docs/games.md).
 *
 * A solver writes the chain of a chain-arithmetic task; a critic answers `ok`
 * or `step i` (the first wrong step). After a `step i` the solver rewrites
 * steps i..k and the critic judges the new chain, for at most `rounds`
 * revisions. The critic earns a reward on every verdict (+1 right, -1 false
 * alarm or missed error, 0 for a wrong chain blamed on the wrong step); the
 * solver earns at the end 1 for a correct final chain plus the SCoRe-style
 * shaping improve_bonus * (r_final - r_first), which pays for fixing and
 * charges for breaking a first answer, so "never change anything" is not a
 * free equilibrium.
 *
 * With critic=redo the critic checks the chain one step per turn by doing
 * the step again: it is shown "i: a+d=" (the chain's previous value and
 * operation i) and answers the result; the first step where its result and
 * the solver's differ is its verdict. Each check is then local, the same
 * skill as solving, and each is rewarded on its own.
 */
#include <string.h>

#include "game.h"
#include "task.h"
#include "text.h"

#define MAX_ROUNDS 8

enum { PHASE_SOLVE, PHASE_VERDICT, PHASE_REVISE, PHASE_OVER };
enum { SEAT_SOLVER, SEAT_CRITIC };
enum { BOT_SOLVER, BOT_CRITIC_RANDOM, BOT_CRITIC_PERFECT };
enum { END_NONE, END_OK, END_ROUNDS, END_INVALID };

typedef struct critique {
    ag_task_t task;
    char task_text[AG_TASK_TEXT_CAP];
    uint8_t truth_chain[AG_TASK_MAX_K];
    uint8_t first_chain[AG_TASK_MAX_K];
    uint8_t chain[AG_TASK_MAX_K]; /* the current chain */
    bool solved;                  /* the first chain exists */
    int phase;
    int rounds;                   /* revisions allowed */
    int revisions;                /* revisions made */
    int verdicts[MAX_ROUNDS + 1]; /* 0 = ok, i = step i */
    int num_verdicts;
    int tp, fp, fn, tn, correct_verdicts;
    int end;
    double solver_error;
    double revision_error; /* the solver bot's per-step error rate when it revises */
    double improve_bonus;
    bool penalize;
    bool redo;  /* critic=redo: one step redone per critic turn */
    int cursor; /* redo: the step the critic checks next (1-based) */
    int checks; /* redo: checks made */
    int right_checks;
} critique_t;

extern const ag_game_t ag_game_critique; /* defined at the end, used by reset */

static const char *const s_roles[] = {"solver", "critic"};
static const char *const s_bots[] = {"solver", "critic-random", "critic-perfect"};
static const int s_bot_seats[] = {SEAT_SOLVER, SEAT_CRITIC, SEAT_CRITIC};
static const char *const s_demo_bots[] = {"solver", "critic-perfect"};
static const char *const s_invalid_modes[] = {"error", "penalize", NULL};
static const char *const s_critic_modes[] = {"chain", "redo", NULL};
static const char *const s_ends[] = {"", "ok", "rounds", "invalid"};

/*
 * The headline is final_accuracy: the chain the episode ends with is what
 * the solver is paid for and what a critic exists to improve, so it is the
 * figure of the pair playing together; first_accuracy is the solver alone.
 */
static const ag_game_metric_spec_t s_metrics[] = {
    {"first_accuracy", "1 when the solver's first chain is right (before any critique)",
     AG_METRIC_MAXIMIZE, false, NULL, NULL},
    {"final_accuracy", "1 when the chain the episode ends with is right",
     AG_METRIC_MAXIMIZE, true, NULL, NULL},
    {"fixed", "1 when a wrong first chain was revised into a right one", AG_METRIC_MAXIMIZE,
     false, NULL, NULL},
    {"broken", "1 when a right first chain was revised into a wrong one", AG_METRIC_MINIMIZE,
     false, NULL, NULL},
    {"critic_tp", "verdicts `step i` on a wrong chain", AG_METRIC_UNSPECIFIED, false, NULL, NULL},
    {"critic_fp", "verdicts `step i` on a right chain (false alarms)", AG_METRIC_UNSPECIFIED, false,
     NULL, NULL},
    {"critic_fn", "verdicts `ok` on a wrong chain (missed errors)", AG_METRIC_UNSPECIFIED, false,
     NULL, NULL},
    {"critic_tn", "verdicts `ok` on a right chain", AG_METRIC_UNSPECIFIED, false, NULL, NULL},
    {"critic_correct_verdicts",
     "verdicts that were right: `ok` on a right chain or the first wrong step of a wrong one",
     AG_METRIC_UNSPECIFIED, false, NULL, NULL},
    {"critic_flags", "verdicts `step i` (critic_tp + critic_fp)", AG_METRIC_UNSPECIFIED, false,
     NULL, NULL},
    {"critic_errors", "verdicts on a wrong chain (critic_tp + critic_fn)", AG_METRIC_UNSPECIFIED,
     false, NULL, NULL},
    {"critic_precision", "of the chains the critic flagged, the share that were wrong",
     AG_METRIC_MAXIMIZE, false, "critic_tp", "critic_flags"},
    {"critic_recall", "of the wrong chains the critic judged, the share it flagged",
     AG_METRIC_MAXIMIZE, false, "critic_tp", "critic_errors"},
    {"critic_checks", "critic=redo only: steps the critic redid", AG_METRIC_UNSPECIFIED, false,
     NULL, NULL},
    {"critic_right_checks", "critic=redo only: steps the critic redid to the right result",
     AG_METRIC_UNSPECIFIED, false, NULL, NULL},
    {"critic_check_accuracy", "critic=redo only: of the steps the critic redid, the share right",
     AG_METRIC_MAXIMIZE, false, "critic_right_checks", "critic_checks"},
};

static const ag_game_option_t s_options[] = {
    {"k", "6", "chain length (number of operations), 2..32"},
    {"rounds", "2", "most revisions the solver may make after a `step i` verdict, 1..8"},
    {"solver_error", "0.1", "per-step error rate of the solver bot, 0..1"},
    {"revision_error", "-1",
     "per-step error rate of the solver bot when it revises, 0..1 (-1: solver_error)"},
    {"improve_bonus", "0",
     "alpha of the solver's shaping alpha * (r_final - r_first), 0..10 (SCoRe-style)"},
    {"invalid_action", "error",
     "error: an invalid action is refused and may be retried | penalize: the seat gets -1 and "
     "the game ends"},
    {"critic", "chain",
     "chain: the critic reads the chain and answers `ok` or `step i` | redo: the critic checks "
     "one step per turn by redoing it: shown `i: a+d=`, it answers the result digit"},
};

static int critique_reset(void *state, uint64_t seed, const ag_game_kv_t *options,
                          size_t num_options, char *err, size_t err_cap)
{
    critique_t *c = state;
    const ag_game_t *g = &ag_game_critique;
    int k, rounds, mode, critic;
    double solver_error, revision_error, improve_bonus;
    if (ag_game_check_options(g, options, num_options, err, err_cap) < 0 ||
        ag_game_option_int("k", ag_game_option_value(g, options, num_options, "k"), 2,
                           AG_TASK_MAX_K, &k, err, err_cap) < 0 ||
        ag_game_option_int("rounds", ag_game_option_value(g, options, num_options, "rounds"), 1,
                           MAX_ROUNDS, &rounds, err, err_cap) < 0 ||
        ag_game_option_double("solver_error",
                              ag_game_option_value(g, options, num_options, "solver_error"), 0.0,
                              1.0, &solver_error, err, err_cap) < 0 ||
        ag_game_option_double("revision_error",
                              ag_game_option_value(g, options, num_options, "revision_error"), -1.0,
                              1.0, &revision_error, err, err_cap) < 0 ||
        ag_game_option_double("improve_bonus",
                              ag_game_option_value(g, options, num_options, "improve_bonus"), 0.0,
                              10.0, &improve_bonus, err, err_cap) < 0 ||
        ag_game_option_choice("invalid_action",
                              ag_game_option_value(g, options, num_options, "invalid_action"),
                              s_invalid_modes, &mode, err, err_cap) < 0 ||
        ag_game_option_choice("critic", ag_game_option_value(g, options, num_options, "critic"),
                              s_critic_modes, &critic, err, err_cap) < 0)
        return AG_GAME_EBADOPT;
    /* every chain, first and revised, may take k checks, plus the solver's turns */
    if (critic == 1 && (rounds + 1) * (k + 1) > AG_GAME_MAX_TURNS) {
        ag_game_errorf(err, err_cap,
                       "critic=redo: (rounds + 1) * (k + 1) turns must be at most %d (k=%d, "
                       "rounds=%d)",
                       AG_GAME_MAX_TURNS, k, rounds);
        return AG_GAME_EBADOPT;
    }

    memset(c, 0, sizeof *c);
    ag_rng_t rng;
    ag_rng_seed(&rng, seed);
    ag_task_generate(&c->task, &rng, k);
    ag_task_render(&c->task, c->task_text, sizeof c->task_text);
    ag_task_chain(&c->task, c->truth_chain);
    c->phase = PHASE_SOLVE;
    c->rounds = rounds;
    c->solver_error = solver_error;
    c->revision_error = revision_error < 0 ? solver_error : revision_error;
    c->improve_bonus = improve_bonus;
    c->penalize = mode == 1;
    c->redo = critic == 1;
    return 0;
}

static int critique_to_act(const void *state)
{
    const critique_t *c = state;
    switch (c->phase) {
    case PHASE_SOLVE:
    case PHASE_REVISE:
        return SEAT_SOLVER;
    case PHASE_VERDICT:
        return SEAT_CRITIC;
    default:
        return -1;
    }
}

/* The value step i starts from: the current chain's step i-1 (x0 for i = 1). */
static uint8_t step_input(const critique_t *c, int i)
{
    return i == 1 ? c->task.x0 : c->chain[i - 2];
}

/*
 * critic=redo: the step under check, "\ni: a+d=" (the game's first text
 * starts with "critique"): step i's number, the chain's previous value (x0
 * for step 1) and operation i; the critic answers the result.
 */
static void observe_check(const critique_t *c, ag_text_t *t)
{
    const int i = c->cursor;
    if (c->checks == 0)
        ag_text_str(t, "critique");
    ag_text_str(t, "\n");
    ag_text_int(t, i);
    ag_text_str(t, ": ");
    ag_text_int(t, step_input(c, i));
    const char op[2] = {c->task.op[i - 1], '\0'};
    ag_text_str(t, op);
    ag_text_int(t, c->task.arg[i - 1]);
    ag_text_str(t, "=");
}

static void critique_observe(const void *state, ag_text_t *t)
{
    const critique_t *c = state;
    switch (c->phase) {
    case PHASE_SOLVE:
        ag_text_str(t, "critique\ntask: ");
        ag_text_str(t, c->task_text);
        ag_text_str(t, "\nyour chain: ");
        break;
    case PHASE_VERDICT:
        if (c->redo) {
            observe_check(c, t);
            break;
        }
        if (c->num_verdicts == 0) {
            ag_text_str(t, "critique\ntask: ");
            ag_text_str(t, c->task_text);
        }
        ag_text_str(t, "\nsolver chain: ");
        ag_text_chain(t, c->chain, c->task.k);
        ag_text_str(t, "\nverdict: ");
        break;
    case PHASE_REVISE: {
        int i = c->verdicts[c->num_verdicts - 1];
        ag_text_str(t, "\ncritic: step ");
        ag_text_int(t, i);
        /* The rest of the work as a task of its own: the chain's step i-1 (x0 for
         * i = 1), then operations i..k, in the first attempt's format. */
        ag_text_str(t, "\nrevise from step ");
        ag_text_int(t, i);
        ag_text_str(t, "\ntask: ");
        ag_text_int(t, step_input(c, i));
        /* task_text is "x0 op1 op2 ...", three bytes per " op": operations i..k are its tail */
        ag_text_str(t, c->task_text + 1 + 3 * (i - 1));
        ag_text_str(t, "\nyour chain: ");
        break;
    }
    default:
        break;
    }
}

static bool chain_correct(const critique_t *c, const uint8_t *chain)
{
    return memcmp(chain, c->truth_chain, (size_t)c->task.k) == 0;
}

/*
 * Ends the game. The solver's end reward is paid unless the solver itself
 * ended it with a penalised action (then it got -1 instead).
 */
static void finish(critique_t *c, int end, bool pay_solver, ag_game_step_t *out)
{
    c->end = end;
    c->phase = PHASE_OVER;
    if (pay_solver && c->solved) {
        double r_first = chain_correct(c, c->first_chain);
        double r_final = chain_correct(c, c->chain);
        out->rewards[SEAT_SOLVER] += (float)(r_final + c->improve_bonus * (r_final - r_first));
    }
}

/*
 * An invalid action by seat: refused (the seat may try again), or with
 * invalid_action=penalize consumed, -1 for the seat, and the game ends (the
 * solver still paid for its chain when pay_solver).
 */
static int invalid(critique_t *c, int seat, bool pay_solver, ag_game_step_t *out)
{
    if (!c->penalize)
        return AG_GAME_EINVAL;
    out->invalid_action = true;
    out->rewards[seat] -= 1.0f;
    finish(c, END_INVALID, pay_solver, out);
    return 0;
}

/* Strips surrounding whitespace from [*s, *s + len); returns the new length. */
static size_t trim(const char **s, size_t len)
{
    const char *p = *s, *end = p + len;
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        end--;
    *s = p;
    return (size_t)(end - p);
}

/* "ok" -> 0, "step i" -> i (1..k), with surrounding whitespace; else -1. */
static int parse_verdict(const char *s, size_t len, int k)
{
    size_t n = trim(&s, len);
    if (n == 2 && memcmp(s, "ok", 2) == 0)
        return 0;
    int i;
    if (n > 5 && memcmp(s, "step", 4) == 0 && (s[4] == ' ' || s[4] == '\t') &&
        ag_parse_int(s + 4, n - 4, 1, k, &i) == 0)
        return i;
    return -1;
}

/*
 * Records a verdict on the current chain (0 = ok, i = step i), counts it and
 * moves the game on: the end after `ok` or when the revisions are used up,
 * else the solver's revision. Returns the verdict's reward in the chain
 * view: +1 right (ok on a correct chain, or its first wrong step), -1 false
 * alarm or missed error, 0 a wrong chain blamed on another step.
 */
static float apply_verdict(critique_t *c, int verdict, ag_game_step_t *out)
{
    int wrong = ag_task_first_wrong(&c->task, c->chain);
    float r;
    if (verdict == 0) {
        r = wrong == 0 ? 1.0f : -1.0f;
        c->tn += wrong == 0;
        c->fn += wrong != 0;
    } else {
        r = wrong == 0 ? -1.0f : verdict == wrong ? 1.0f : 0.0f;
        c->fp += wrong == 0;
        c->tp += wrong != 0;
    }
    c->correct_verdicts += r > 0.0f;
    c->verdicts[c->num_verdicts++] = verdict;
    if (verdict == 0)
        finish(c, END_OK, true, out);
    else if (c->revisions == c->rounds)
        finish(c, END_ROUNDS, true, out);
    else
        c->phase = PHASE_REVISE;
    return r;
}

/* The right result of step i from the current chain's step i-1 (x0 for i = 1). */
static uint8_t step_result(const critique_t *c, int i)
{
    return ag_task_apply(c->task.op[i - 1], c->task.arg[i - 1], step_input(c, i));
}

/* One digit with surrounding whitespace -> 0..9; else -1. */
static int parse_digit(const char *s, size_t len)
{
    size_t n = trim(&s, len);
    return n == 1 && s[0] >= '0' && s[0] <= '9' ? s[0] - '0' : -1;
}

/*
 * critic=redo: one check of step `cursor`: the critic's result, paid on its
 * own (+1 if it is the step's right result, -1 if not). A result other than
 * the chain's step is the verdict `step cursor`; agreeing on the last step
 * is the verdict `ok`; any other agreement moves on to the next step. A
 * chain verdict reached this way is counted as in the chain view (tp, fp,
 * fn, tn, correct verdicts), but only the checks are paid.
 */
static int check_step(critique_t *c, const char *action, size_t len, bool too_long,
                      ag_game_step_t *out, char *err, size_t err_cap)
{
    const int i = c->cursor;
    int digit = too_long ? -1 : parse_digit(action, len);
    if (digit < 0) {
        ag_game_errorf(err, err_cap, "expected one digit 0-9, the result of step %d", i);
        return invalid(c, SEAT_CRITIC, true, out);
    }
    const bool right = digit == step_result(c, i);
    c->checks++;
    c->right_checks += right;
    out->rewards[SEAT_CRITIC] += right ? 1.0f : -1.0f;
    if (digit != c->chain[i - 1])
        apply_verdict(c, c->cursor, out);
    else if (c->cursor == c->task.k)
        apply_verdict(c, 0, out);
    else
        c->cursor++;
    return 0;
}

static int critique_step(void *state, const char *action, size_t len, ag_game_step_t *out,
                         char *err, size_t err_cap)
{
    critique_t *c = state;
    if (c->phase == PHASE_OVER)
        return AG_GAME_EOVER;
    int k = c->task.k;
    bool too_long = len > AG_GAME_ACTION_MAX;

    if (c->phase == PHASE_SOLVE || c->phase == PHASE_REVISE) {
        int from = c->phase == PHASE_SOLVE ? 1 : c->verdicts[c->num_verdicts - 1];
        uint8_t digits[AG_TASK_MAX_K];
        if (too_long || len == 0 || ag_chain_parse(action, len, k - from + 1, digits) < 0) {
            ag_game_errorf(err, err_cap,
                           "expected %d digits 0-9 separated by spaces (steps %d..%d)",
                           k - from + 1, from, k);
            return invalid(c, SEAT_SOLVER, false, out);
        }
        memcpy(c->chain + from - 1, digits, (size_t)(k - from + 1));
        if (c->phase == PHASE_SOLVE) {
            memcpy(c->first_chain, c->chain, (size_t)k);
            c->solved = true;
        } else {
            c->revisions++;
        }
        c->phase = PHASE_VERDICT;
        c->cursor = from; /* steps before it are unchanged and were checked ok */
        return 0;
    }

    if (c->redo)
        return check_step(c, action, len, too_long, out, err, err_cap);
    int verdict = too_long ? -1 : parse_verdict(action, len, k);
    if (verdict < 0) {
        ag_game_errorf(err, err_cap, "expected 'ok' or 'step i' with i in 1..%d", k);
        return invalid(c, SEAT_CRITIC, true, out);
    }
    out->rewards[SEAT_CRITIC] += apply_verdict(c, verdict, out);
    return 0;
}

/* Steps from..k computed by a solver who slips on each step with probability solver_error
 * (revision_error when it revises from a flagged step). */
static void solve_from(const critique_t *c, int from, ag_rng_t *rng, uint8_t *chain)
{
    const double slip = c->phase == PHASE_REVISE ? c->revision_error : c->solver_error;
    uint8_t x = from == 1 ? c->task.x0 : chain[from - 2];
    for (int i = from - 1; i < c->task.k; i++) {
        x = ag_task_apply(c->task.op[i], c->task.arg[i], x);
        if (ag_rng_double(rng) < slip)
            x = (uint8_t)((x + 1 + ag_rng_below(rng, 9)) % 10);
        chain[i] = x;
    }
}

static void critique_bot_act(const void *state, int bot, ag_rng_t *rng, ag_text_t *t)
{
    const critique_t *c = state;
    int k = c->task.k;
    if (c->phase == PHASE_SOLVE || c->phase == PHASE_REVISE) {
        int from = c->phase == PHASE_SOLVE ? 1 : c->verdicts[c->num_verdicts - 1];
        uint8_t chain[AG_TASK_MAX_K];
        memcpy(chain, c->chain, (size_t)k);
        solve_from(c, from, rng, chain);
        ag_text_chain(t, chain + from - 1, k - from + 1);
        return;
    }
    if (c->redo) {
        /* the perfect critic redoes the step right; the random one answers a random digit */
        ag_text_int(t,
                    bot == BOT_CRITIC_PERFECT ? step_result(c, c->cursor) : ag_rng_below(rng, 10));
        return;
    }
    int step = 0;
    if (bot == BOT_CRITIC_PERFECT)
        step = ag_task_first_wrong(&c->task, c->chain);
    else if (ag_rng_below(rng, 2) == 1)
        step = 1 + (int)ag_rng_below(rng, (uint32_t)k);
    if (step == 0) {
        ag_text_str(t, "ok");
    } else {
        ag_text_str(t, "step ");
        ag_text_int(t, step);
    }
}

static void critique_outcome(const void *state, ag_game_outcome_t *out)
{
    const critique_t *c = state;
    int k = c->task.k;

    ag_text_str(ag_game_outcome_info(out, "task"), c->task_text);
    ag_text_chain(ag_game_outcome_info(out, "truth"), c->truth_chain, k);
    ag_text_int(ag_game_outcome_info(out, "answer"), c->truth_chain[k - 1]);
    ag_text_t *t = ag_game_outcome_info(out, "first_chain");
    if (c->solved)
        ag_text_chain(t, c->first_chain, k);
    t = ag_game_outcome_info(out, "final_chain");
    if (c->solved)
        ag_text_chain(t, c->chain, k);
    ag_text_int(ag_game_outcome_info(out, "rounds_used"), c->revisions);
    t = ag_game_outcome_info(out, "verdicts");
    for (int i = 0; i < c->num_verdicts; i++) {
        if (i > 0)
            ag_text_str(t, ",");
        if (c->verdicts[i] == 0) {
            ag_text_str(t, "ok");
        } else {
            ag_text_str(t, "step ");
            ag_text_int(t, c->verdicts[i]);
        }
    }
    ag_text_str(ag_game_outcome_info(out, "reason"), s_ends[c->end]);

    bool first = c->solved && chain_correct(c, c->first_chain);
    bool final = c->solved && chain_correct(c, c->chain);
    ag_game_outcome_metric(out, "first_accuracy", first);
    ag_game_outcome_metric(out, "final_accuracy", final);
    ag_game_outcome_metric(out, "fixed", !first && final);
    ag_game_outcome_metric(out, "broken", first && !final);
    ag_game_outcome_metric(out, "critic_tp", c->tp);
    ag_game_outcome_metric(out, "critic_fp", c->fp);
    ag_game_outcome_metric(out, "critic_fn", c->fn);
    ag_game_outcome_metric(out, "critic_tn", c->tn);
    ag_game_outcome_metric(out, "critic_correct_verdicts", c->correct_verdicts);
    ag_game_outcome_metric(out, "critic_flags", c->tp + c->fp);
    ag_game_outcome_metric(out, "critic_errors", c->tp + c->fn);
    if (c->redo) {
        ag_game_outcome_metric(out, "critic_checks", c->checks);
        ag_game_outcome_metric(out, "critic_right_checks", c->right_checks);
    }
}

const ag_game_t ag_game_critique = {
    .name = "critique",
    .description = "A solver writes the chain of partial results of a chain-arithmetic task mod "
                   "10; a critic answers 'ok' or 'step i'; the solver revises from step i, for "
                   "up to `rounds` revisions. Critic rewarded per verdict, solver for a correct "
                   "final chain.",
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
    .state_size = sizeof(critique_t),
    .reset = critique_reset,
    .to_act = critique_to_act,
    .observe = critique_observe,
    .step = critique_step,
    .bot_act = critique_bot_act,
    .outcome = critique_outcome,
};
