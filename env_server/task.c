/*
 * task.c - chain-arithmetic tasks: generation, rendering, the true chain,
 * step checks and the parsers for chains and step numbers.
 *
 * The parsers are the first thing untrusted action bytes meet, so they walk
 * the bytes once with an explicit end pointer and accept only the documented
 * alphabet; they never depend on a NUL terminator.
 */
#include "task.h"

#include <assert.h>
#include <string.h>

static const char s_ops[3] = {'+', '-', '*'};

void ag_task_generate(ag_task_t *task, ag_rng_t *rng, int k)
{
    assert(k >= AG_TASK_MIN_K && k <= AG_TASK_MAX_K);
    task->k = k;
    task->x0 = (uint8_t)ag_rng_below(rng, 10);
    for (int i = 0; i < k; i++) {
        task->op[i] = s_ops[ag_rng_below(rng, 3)];
        task->arg[i] = (uint8_t)ag_rng_below(rng, 10);
    }
}

int ag_task_render(const ag_task_t *task, char *buf, size_t cap)
{
    size_t need = 1 + 3 * (size_t)task->k + 1;
    if (cap < need)
        return -1;
    char *p = buf;
    *p++ = (char)('0' + task->x0);
    for (int i = 0; i < task->k; i++) {
        *p++ = ' ';
        *p++ = task->op[i];
        *p++ = (char)('0' + task->arg[i]);
    }
    *p = '\0';
    return (int)(p - buf);
}

void ag_task_chain(const ag_task_t *task, uint8_t *chain)
{
    uint8_t x = task->x0;
    for (int i = 0; i < task->k; i++) {
        x = ag_task_apply(task->op[i], task->arg[i], x);
        chain[i] = x;
    }
}

uint8_t ag_task_answer(const ag_task_t *task)
{
    uint8_t x = task->x0;
    for (int i = 0; i < task->k; i++)
        x = ag_task_apply(task->op[i], task->arg[i], x);
    return x;
}

bool ag_task_step_ok(const ag_task_t *task, const uint8_t *chain, int i)
{
    if (i < 1 || i > task->k)
        return false;
    uint8_t prev = i == 1 ? task->x0 : chain[i - 2];
    return chain[i - 1] == ag_task_apply(task->op[i - 1], task->arg[i - 1], prev);
}

int ag_task_first_wrong(const ag_task_t *task, const uint8_t *chain)
{
    for (int i = 1; i <= task->k; i++)
        if (!ag_task_step_ok(task, chain, i))
            return i;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

int ag_chain_parse(const char *text, size_t len, int n, uint8_t *out)
{
    if (n < 1 || len == 0 || text == NULL)
        return -1;
    const char *p = text, *end = text + len;
    int count = 0;
    while (p < end) {
        if (is_space(*p)) {
            p++;
            continue;
        }
        if (!is_digit(*p) || count == n)
            return -1;
        /* A digit must stand alone: "12" is not two steps. */
        if (p + 1 < end && !is_space(p[1]))
            return -1;
        out[count++] = (uint8_t)(*p - '0');
        p++;
    }
    return count == n ? 0 : -1;
}

int ag_chain_render(const uint8_t *digits, int n, char *buf, size_t cap)
{
    if (n < 0 || cap < (size_t)(n > 0 ? 2 * n : 1))
        return -1;
    char *p = buf;
    for (int i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ' ';
        *p++ = (char)('0' + digits[i]);
    }
    *p = '\0';
    return (int)(p - buf);
}

int ag_parse_int(const char *text, size_t len, int lo, int hi, int *out)
{
    if (len == 0 || text == NULL)
        return -1;
    const char *p = text, *end = text + len;
    while (p < end && is_space(*p))
        p++;
    if (p == end || !is_digit(*p))
        return -1;
    long long value = 0;
    while (p < end && is_digit(*p)) {
        /* Saturate instead of overflowing: any value above hi is out anyway. */
        if (value <= hi)
            value = value * 10 + (*p - '0');
        p++;
    }
    while (p < end && is_space(*p))
        p++;
    if (p != end || value < lo || value > hi)
        return -1;
    *out = (int)value;
    return 0;
}
