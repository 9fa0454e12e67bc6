/*
 * idmap.c - open-addressing uint64 -> pointer map (see idmap.h).
 */
#include "idmap.h"

#include <errno.h>
#include <stdlib.h>

static size_t s_slot(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

void ag_idmap_init(ag_idmap_t *m)
{
    m->keys = NULL;
    m->values = NULL;
    m->cap = 0;
    m->count = 0;
}

void ag_idmap_finish(ag_idmap_t *m)
{
    free(m->keys);
    free(m->values);
    ag_idmap_init(m);
}

void *ag_idmap_get(const ag_idmap_t *m, uint64_t key)
{
    if (!m->cap || !key)
        return NULL;
    for (size_t i = s_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return m->values[i];
        if (!m->keys[i])
            return NULL;
    }
}

static int s_grow(ag_idmap_t *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = calloc(ncap, sizeof *keys);
    void **values = calloc(ncap, sizeof *values);
    if (!keys || !values) {
        free(keys);
        free(values);
        return -ENOMEM;
    }
    for (size_t j = 0; j < m->cap; j++) {
        if (!m->keys[j])
            continue;
        size_t i = s_slot(m->keys[j], ncap);
        while (keys[i])
            i = (i + 1) & (ncap - 1);
        keys[i] = m->keys[j];
        values[i] = m->values[j];
    }
    free(m->keys);
    free(m->values);
    m->keys = keys;
    m->values = values;
    m->cap = ncap;
    return 0;
}

int ag_idmap_put(ag_idmap_t *m, uint64_t key, void *value)
{
    if (!key)
        return -EINVAL;
    if ((m->count + 1) * 4 > m->cap * 3 && s_grow(m) < 0)
        return -ENOMEM;
    size_t i = s_slot(key, m->cap);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->keys[i])
        m->count++;
    m->keys[i] = key;
    m->values[i] = value;
    return 0;
}

void *ag_idmap_remove(ag_idmap_t *m, uint64_t key)
{
    if (!m->cap || !key)
        return NULL;
    size_t mask = m->cap - 1;
    size_t i = s_slot(key, m->cap);
    while (m->keys[i] != key) {
        if (!m->keys[i])
            return NULL;
        i = (i + 1) & mask;
    }
    void *value = m->values[i];
    /* Backward shift: pull later members of the probe chain into the hole. */
    for (size_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        size_t home = s_slot(m->keys[j], m->cap);
        /* Move j to i if its home is not in the cyclic range (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->keys[i] = m->keys[j];
            m->values[i] = m->values[j];
            i = j;
        }
    }
    m->keys[i] = 0;
    m->values[i] = NULL;
    m->count--;
    return value;
}
