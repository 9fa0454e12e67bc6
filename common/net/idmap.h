/*
 * idmap.h - a hash map from nonzero 64-bit ids to pointers (open addressing,
 * linear probing, backward-shift deletion: no tombstones, so long-running
 * services with heavy churn keep short probe chains). Not thread-safe.
 */
#ifndef AG_IDMAP_H
#define AG_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct ag_idmap {
    uint64_t *keys; /* 0 = empty slot */
    void **values;
    size_t cap;     /* power of two */
    size_t count;
} ag_idmap_t;

void ag_idmap_init(ag_idmap_t *m);
void ag_idmap_finish(ag_idmap_t *m);

void *ag_idmap_get(const ag_idmap_t *m, uint64_t key);
/* Inserts or replaces; key must be nonzero. Returns 0 or -ENOMEM. */
int ag_idmap_put(ag_idmap_t *m, uint64_t key, void *value);
/* Removes key and returns its value, or NULL if absent. */
void *ag_idmap_remove(ag_idmap_t *m, uint64_t key);

/* Iteration: for (size_t i = 0; i < m->cap; i++) if (m->keys[i]) ... ; do not
 * modify the map while iterating (collect keys first). */

#endif
