/*
 * task.h - the chain-arithmetic task library shared by every agora game.
 *
 * A task is a start digit x0 and k operations `+d`, `-d` or `*d` (d a digit),
 * all mod 10, so every partial result is a digit. Its text is "x0 op1 ... opk"
 * (`7 +3 *2 -4 +9`); a chain is the k partial results as single-space
 * separated digits (`0 0 6 5`). A chain is the proof of its last digit: each
 * step i (1-based) is checked against the previous value of the SAME chain (x0
 * for step 1) and op i, so one wrong step is a local, one-operation fact a weak
 * judge can verify. Parsers take untrusted bytes (pointer + length, embedded
 * NULs allowed) and never read past them.
 */
#ifndef AG_TASK_H
#define AG_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

#define AG_TASK_MIN_K 1
#define AG_TASK_MAX_K 32
/* Longest task text: "d" + k * " +d", plus the NUL. */
#define AG_TASK_TEXT_CAP (1 + 3 * AG_TASK_MAX_K + 1)
/* Longest chain text: k digits and k-1 spaces, plus the NUL. */
#define AG_CHAIN_TEXT_CAP (2 * AG_TASK_MAX_K)

typedef struct ag_task {
    int k;                      /* number of operations, AG_TASK_MIN_K..AG_TASK_MAX_K */
    uint8_t x0;                 /* start digit */
    char op[AG_TASK_MAX_K];     /* '+', '-' or '*' */
    uint8_t arg[AG_TASK_MAX_K]; /* operand digit */
} ag_task_t;

/* One operation mod 10 on digit x. */
static inline uint8_t ag_task_apply(char op, uint8_t arg, uint8_t x)
{
    switch (op) {
    case '+':
        return (uint8_t)((x + arg) % 10);
    case '-':
        return (uint8_t)((x + 10 - arg) % 10);
    default:
        return (uint8_t)((x * arg) % 10);
    }
}

/* Draws x0, k operators and k operands uniformly from rng. k must be in range. */
void ag_task_generate(ag_task_t *task, ag_rng_t *rng, int k);

/*
 * Writes the task text and a NUL into buf (cap >= AG_TASK_TEXT_CAP is always
 * enough). Returns the text length, or -1 if cap is too small.
 */
int ag_task_render(const ag_task_t *task, char *buf, size_t cap);

/* The true chain: chain[i] = result after op i+1 (k digits). */
void ag_task_chain(const ag_task_t *task, uint8_t *chain);

/* The true answer (the last digit of the true chain). */
uint8_t ag_task_answer(const ag_task_t *task);

/*
 * Whether step i (1-based, 1..k) of chain is right given the chain's own
 * previous value (x0 for i = 1). i out of range is never right.
 */
bool ag_task_step_ok(const ag_task_t *task, const uint8_t *chain, int i);

/* The first wrong step of chain (1-based), or 0 if every step is right. */
int ag_task_first_wrong(const ag_task_t *task, const uint8_t *chain);

/*
 * Parses exactly n digits (n >= 1) from untrusted bytes text[0..len): single
 * digits separated by runs of whitespace (space, tab, CR, LF), optional
 * leading and trailing whitespace. Anything else (a letter, a NUL, a
 * multi-digit number, too few or too many digits) is invalid. Returns 0 and
 * fills out[0..n), or -1 (out may be partly written).
 */
int ag_chain_parse(const char *text, size_t len, int n, uint8_t *out);

/*
 * Writes n digits as chain text ("0 0 6 5") and a NUL into buf
 * (cap >= AG_CHAIN_TEXT_CAP is always enough for n <= AG_TASK_MAX_K).
 * Returns the text length, or -1 if cap is too small.
 */
int ag_chain_render(const uint8_t *digits, int n, char *buf, size_t cap);

/*
 * Parses one decimal integer in lo..hi from untrusted bytes, with optional
 * surrounding whitespace (as ag_chain_parse). Leading zeros are accepted;
 * signs, other characters and values out of range (however many digits) are
 * not. Returns 0 and sets *out, or -1.
 */
int ag_parse_int(const char *text, size_t len, int lo, int hi, int *out);

#endif
