/*
 * dedup.c - bounded memory of seen trajectory ids (see dedup.h). Streams are
 * few (one per actor process), so they live in a plain array searched
 * linearly.
 */
#include "dedup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WORDS (AG_DEDUP_WINDOW / 64)

typedef struct stream {
    char *actor;
    uint64_t run_id;
    uint64_t next;          /* every sequence below was seen */
    uint64_t window[WORDS]; /* bit i: next + i was seen */
    uint64_t used;          /* last use, for eviction */
} stream_t;

struct ag_dedup {
    stream_t *s;
    size_t n, cap, max;
    uint64_t clock;
};

ag_dedup_t *ag_dedup_create(size_t max_streams)
{
    ag_dedup_t *d = calloc(1, sizeof *d);
    if (d)
        d->max = max_streams ? max_streams : 1;
    return d;
}

static void s_clear(ag_dedup_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->s[i].actor);
    d->n = 0;
}

void ag_dedup_destroy(ag_dedup_t **self)
{
    if (!self || !*self)
        return;
    s_clear(*self);
    free((*self)->s);
    free(*self);
    *self = NULL;
}

size_t ag_dedup_streams(const ag_dedup_t *d)
{
    return d->n;
}

static stream_t *s_stream(ag_dedup_t *d, const char *actor, uint64_t run_id, int create)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->s[i].run_id == run_id && !strcmp(d->s[i].actor, actor))
            return &d->s[i];
    if (!create)
        return NULL;
    if (d->n == d->max) {
        size_t lru = 0;
        for (size_t i = 1; i < d->n; i++)
            if (d->s[i].used < d->s[lru].used)
                lru = i;
        free(d->s[lru].actor);
        d->s[lru] = d->s[--d->n];
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        stream_t *s = realloc(d->s, cap * sizeof *s);
        if (!s)
            return NULL;
        d->s = s;
        d->cap = cap;
    }
    stream_t *s = &d->s[d->n];
    memset(s, 0, sizeof *s);
    s->actor = strdup(actor);
    if (!s->actor)
        return NULL;
    s->run_id = run_id;
    d->n++;
    return s;
}

static int s_bit(const stream_t *s, uint64_t i)
{
    return (int)((s->window[i / 64] >> (i % 64)) & 1u);
}

/* Moves next forward by k, shifting the window. */
static void s_shift(stream_t *s, uint64_t k)
{
    if (k >= AG_DEDUP_WINDOW) {
        memset(s->window, 0, sizeof s->window);
        s->next += k;
        return;
    }
    for (uint64_t i = 0; i < AG_DEDUP_WINDOW; i++) {
        uint64_t from = i + k;
        int b = from < AG_DEDUP_WINDOW ? s_bit(s, from) : 0;
        if (b)
            s->window[i / 64] |= (uint64_t)1 << (i % 64);
        else
            s->window[i / 64] &= ~((uint64_t)1 << (i % 64));
    }
    s->next += k;
}

int ag_dedup_check(ag_dedup_t *d, const char *actor_id, uint64_t run_id, uint64_t sequence)
{
    stream_t *s = s_stream(d, actor_id, run_id, 1);
    if (!s)
        return -ENOMEM;
    s->used = ++d->clock;
    if (sequence < s->next)
        return 1;
    uint64_t off = sequence - s->next;
    if (off >= AG_DEDUP_WINDOW) {
        s_shift(s, off - AG_DEDUP_WINDOW + 1);
        off = AG_DEDUP_WINDOW - 1;
    }
    if (s_bit(s, off))
        return 1;
    s->window[off / 64] |= (uint64_t)1 << (off % 64);
    /* Advance over the contiguous run of seen sequences at the bottom. */
    uint64_t k = 0;
    while (k < AG_DEDUP_WINDOW && s_bit(s, k))
        k++;
    if (k)
        s_shift(s, k);
    return 0;
}

json_t *ag_dedup_to_json(const ag_dedup_t *d)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n; i++) {
        const stream_t *s = &d->s[i];
        char run[24], next[24];
        snprintf(run, sizeof run, "%016" PRIx64, s->run_id);
        snprintf(next, sizeof next, "%" PRIu64, s->next);
        json_t *w = json_array();
        for (int k = 0; k < WORDS; k++)
            if (s->window[k]) {
                char hex[24];
                snprintf(hex, sizeof hex, "%016" PRIx64, s->window[k]);
                json_array_append_new(w, json_pack("{s:i,s:s}", "word", k, "bits", hex));
            }
        json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:o}", "actor", s->actor, "run_id", run,
                                           "next", next, "window", w));
    }
    return a;
}

int ag_dedup_from_json(ag_dedup_t *d, const json_t *j)
{
    if (!json_is_array(j))
        return -EINVAL;
    s_clear(d);
    size_t i;
    json_t *o;
    json_array_foreach(j, i, o)
    {
        const char *actor = NULL, *run = NULL, *next = NULL;
        json_t *w = NULL;
        if (json_unpack((json_t *)o, "{s:s,s:s,s:s,s:o}", "actor", &actor, "run_id", &run, "next",
                        &next, "window", &w) != 0 ||
            !json_is_array(w))
            return -EINVAL;
        stream_t *s = s_stream(d, actor, strtoull(run, NULL, 16), 1);
        if (!s)
            return -ENOMEM;
        s->next = strtoull(next, NULL, 10);
        size_t k;
        json_t *e;
        json_array_foreach(w, k, e)
        {
            json_int_t word = 0;
            const char *bits = NULL;
            if (json_unpack(e, "{s:I,s:s}", "word", &word, "bits", &bits) != 0 || word < 0 ||
                word >= WORDS)
                return -EINVAL;
            s->window[word] = strtoull(bits, NULL, 16);
        }
        s->used = ++d->clock;
    }
    return 0;
}
