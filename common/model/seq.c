/*
 * seq.c - a seat's token stream (see seq.h).
 */
#include "seq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

void ag_seq_init(ag_seq_t *s)
{
    memset(s, 0, sizeof *s);
}

void ag_seq_finish(ag_seq_t *s)
{
    free(s->tokens);
    free(s->generated);
    free(s->logprobs);
    free(s->values);
    free(s->turn_end);
    free(s->turn_rewards);
    free(s->turn_version);
    ag_seq_init(s);
}

void ag_seq_clear(ag_seq_t *s)
{
    s->len = 0;
    s->n_turns = 0;
    s->pending_reward = 0;
}

static int s_grow(void **p, size_t elem, size_t cap)
{
    void *q = realloc(*p, cap * elem);
    if (!q)
        return -ENOMEM;
    *p = q;
    return 0;
}

static int s_reserve(ag_seq_t *s, size_t extra)
{
    if (s->len + extra <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < s->len + extra)
        cap *= 2;
    if (s_grow((void **)&s->tokens, sizeof *s->tokens, cap) < 0 ||
        s_grow((void **)&s->generated, sizeof *s->generated, cap) < 0 ||
        s_grow((void **)&s->logprobs, sizeof *s->logprobs, cap) < 0 ||
        s_grow((void **)&s->values, sizeof *s->values, cap) < 0)
        return -ENOMEM;
    s->cap = cap;
    return 0;
}

static void s_put(ag_seq_t *s, int32_t token, uint8_t generated, float logprob, float value)
{
    s->tokens[s->len] = token;
    s->generated[s->len] = generated;
    s->logprobs[s->len] = logprob;
    s->values[s->len] = value;
    s->len++;
}

int ag_seq_begin(ag_seq_t *s)
{
    ag_seq_clear(s);
    if (s_reserve(s, 1) < 0)
        return -ENOMEM;
    s_put(s, AG_TOK_BOS, 0, 0, 0);
    return 0;
}

int ag_seq_context(ag_seq_t *s, const char *text, size_t len)
{
    if (s_reserve(s, len) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < len; i++)
        s_put(s, (uint8_t)text[i], 0, 0, 0);
    return 0;
}

int ag_seq_generated(ag_seq_t *s, int32_t token, float logprob, float value)
{
    if (s_reserve(s, 1) < 0)
        return -ENOMEM;
    s_put(s, token, 1, logprob, value);
    return 0;
}

int ag_seq_end_turn(ag_seq_t *s, uint64_t version)
{
    if (!s->len)
        return -EINVAL;
    if (s->n_turns == s->turns_cap) {
        size_t cap = s->turns_cap ? s->turns_cap * 2 : 8;
        if (s_grow((void **)&s->turn_end, sizeof *s->turn_end, cap) < 0 ||
            s_grow((void **)&s->turn_rewards, sizeof *s->turn_rewards, cap) < 0 ||
            s_grow((void **)&s->turn_version, sizeof *s->turn_version, cap) < 0)
            return -ENOMEM;
        s->turns_cap = cap;
    }
    s->turn_end[s->n_turns] = (uint32_t)(s->len - 1);
    s->turn_rewards[s->n_turns] = s->pending_reward;
    s->turn_version[s->n_turns] = version;
    s->pending_reward = 0;
    s->n_turns++;
    return 0;
}

void ag_seq_reward(ag_seq_t *s, float reward)
{
    if (s->n_turns)
        s->turn_rewards[s->n_turns - 1] += reward;
    else
        s->pending_reward += reward;
}

int ag_seq_turn_text(ag_seq_t *s, const char *observation, size_t obs_len, const char *action,
                     size_t action_len, uint64_t version)
{
    if (ag_seq_context(s, observation, obs_len) < 0 || s_reserve(s, action_len + 1) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < action_len; i++)
        s_put(s, (uint8_t)action[i], 1, 0, 0);
    s_put(s, AG_TOK_EOT, 1, 0, 0);
    return ag_seq_end_turn(s, version);
}

size_t ag_seq_text(const ag_seq_t *s, size_t from, size_t to, char *buf, size_t cap)
{
    size_t n = 0;
    if (!cap)
        return 0;
    for (size_t i = from; i < to && i < s->len && n + 1 < cap; i++)
        if (s->tokens[i] >= 0 && s->tokens[i] < AG_VOCAB_BYTES)
            buf[n++] = (char)s->tokens[i];
    buf[n] = '\0';
    return n;
}
