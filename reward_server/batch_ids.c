/*
 * batch_ids.c - bounded memory of accepted Label batch ids (see
 * batch_ids.h). The slots form a ring, oldest at head; the index maps a
 * hash of an id to its slot (stored + 1, 0 = empty). Forgetting the oldest
 * id removes its index entry by backward-shift deletion, so the index never
 * fills with tombstones however many ids pass through it.
 */
#include "batch_ids.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
    ag_batch_id_t e;
    uint32_t hash;
} slot_t;

struct ag_batch_ids {
    slot_t *slots; /* cap, a ring */
    size_t cap, head, len;
    uint32_t *index; /* n_index (a power of two >= 2 cap): slot + 1, or 0 */
    size_t mask;
};

static uint32_t s_hash(const char *id)
{
    uint32_t h = 0x811c9dc5u;
    for (const unsigned char *p = (const unsigned char *)id; *p; p++) {
        h ^= *p;
        h *= 0x01000193u;
    }
    /* murmur3's finaliser: FNV's low bits, which pick the bucket, are weak */
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

ag_batch_ids_t *ag_batch_ids_create(size_t cap)
{
    if (cap < 1 || cap > ((size_t)1 << 30))
        return NULL;
    ag_batch_ids_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    size_t n = 2;
    while (n < 2 * cap)
        n *= 2;
    t->cap = cap;
    t->mask = n - 1;
    t->slots = calloc(cap, sizeof *t->slots);
    t->index = calloc(n, sizeof *t->index);
    if (!t->slots || !t->index)
        ag_batch_ids_destroy(&t);
    return t;
}

void ag_batch_ids_destroy(ag_batch_ids_t **self)
{
    if (!self || !*self)
        return;
    free((*self)->slots);
    free((*self)->index);
    free(*self);
    *self = NULL;
}

bool ag_batch_id_valid(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++)
        if (n == AG_BATCH_ID_MAX || id[n] < 0x20 || id[n] > 0x7e)
            return false;
    return n > 0;
}

/* The index position holding id, or the empty one where it would go. */
static size_t s_probe(const ag_batch_ids_t *t, const char *id, uint32_t h)
{
    size_t i = h & t->mask;
    for (;;) {
        uint32_t v = t->index[i];
        if (!v)
            return i;
        const slot_t *s = &t->slots[v - 1];
        if (s->hash == h && !strcmp(s->e.id, id))
            return i;
        i = (i + 1) & t->mask;
    }
}

bool ag_batch_ids_find(const ag_batch_ids_t *t, const char *id, uint32_t *accepted,
                       uint32_t *rejected)
{
    uint32_t v = t->index[s_probe(t, id, s_hash(id))];
    if (!v)
        return false;
    *accepted = t->slots[v - 1].e.accepted;
    *rejected = t->slots[v - 1].e.rejected;
    return true;
}

/* Removes the index entry of slot k, moving up the entries probed past it. */
static void s_unindex(ag_batch_ids_t *t, size_t k)
{
    size_t i = t->slots[k].hash & t->mask;
    while (t->index[i] != k + 1)
        i = (i + 1) & t->mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        uint32_t v = t->index[j];
        if (!v)
            break;
        size_t home = t->slots[v - 1].hash & t->mask;
        /* An entry stays put if its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (stays)
            continue;
        t->index[i] = v;
        i = j;
    }
    t->index[i] = 0;
}

void ag_batch_ids_add(ag_batch_ids_t *t, const char *id, uint32_t accepted, uint32_t rejected)
{
    assert(ag_batch_id_valid(id));
    size_t k;
    if (t->len == t->cap) {
        k = t->head;
        s_unindex(t, k);
        t->head = (t->head + 1) % t->cap;
    } else {
        k = (t->head + t->len) % t->cap;
        t->len++;
    }
    slot_t *s = &t->slots[k];
    s->hash = s_hash(id);
    size_t i = s_probe(t, id, s->hash);
    assert(t->index[i] == 0); /* not remembered yet */
    snprintf(s->e.id, sizeof s->e.id, "%s", id);
    s->e.accepted = accepted;
    s->e.rejected = rejected;
    t->index[i] = (uint32_t)(k + 1);
}

size_t ag_batch_ids_count(const ag_batch_ids_t *t)
{
    return t->len;
}

size_t ag_batch_ids_cap(const ag_batch_ids_t *t)
{
    return t->cap;
}

void ag_batch_ids_clear(ag_batch_ids_t *t)
{
    for (size_t i = 0; i < t->len; i++)
        s_unindex(t, (t->head + i) % t->cap);
    t->head = t->len = 0;
}

void ag_batch_ids_copy(const ag_batch_ids_t *t, ag_batch_id_t *out)
{
    for (size_t i = 0; i < t->len; i++)
        out[i] = t->slots[(t->head + i) % t->cap].e;
}

json_t *ag_batch_ids_json(const ag_batch_id_t *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *e =
            json_pack("[s,I,I]", v[i].id, (json_int_t)v[i].accepted, (json_int_t)v[i].rejected);
        if (!e || json_array_append_new(a, e) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

int ag_batch_ids_load(ag_batch_ids_t *t, const json_t *j, uint32_t max_counts, char *why,
                      size_t why_len)
{
    ag_batch_ids_clear(t);
    if (!json_is_array(j)) {
        snprintf(why, why_len, "not a list");
        return -EINVAL;
    }
    const size_t n = json_array_size(j);
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(j, i);
        const json_t *jid = json_array_get(e, 0), *ja = json_array_get(e, 1),
                     *jr = json_array_get(e, 2);
        const char *id = json_string_value(jid);
        uint32_t acc, rej;
        const char *bad = NULL;
        if (!json_is_array(e) || json_array_size(e) != 3 || !id ||
            strlen(id) != json_string_length(jid) || !json_is_integer(ja) || !json_is_integer(jr))
            bad = "not [id, accepted, rejected]";
        else if (!ag_batch_id_valid(id))
            bad = "the id is not 1..128 printable ASCII characters";
        else if (json_integer_value(ja) < 0 || json_integer_value(jr) < 0 ||
                 json_integer_value(ja) > (json_int_t)max_counts ||
                 json_integer_value(jr) > (json_int_t)max_counts - json_integer_value(ja))
            bad = "counts out of range";
        else if (ag_batch_ids_find(t, id, &acc, &rej))
            bad = "an id listed twice";
        if (bad) {
            snprintf(why, why_len, "entry %zu of %zu: %s", i, n, bad);
            ag_batch_ids_clear(t);
            return -EINVAL;
        }
        ag_batch_ids_add(t, id, (uint32_t)json_integer_value(ja), (uint32_t)json_integer_value(jr));
    }
    return 0;
}
