/*
 * batch_ids.h - the Label batches a reward model has accepted, so that a
 * LabelRequest resent under the same batch_id (its reply was lost, the
 * client retried) is answered from memory and learnt once.
 *
 * A table of at most `cap` ids, each with the accepted and rejected counts
 * of its first reply; adding to a full table forgets the oldest id (FIFO),
 * so memory is bounded whatever clients send. The slots and an
 * open-addressing index (linear probing, at most half full) are allocated
 * once, at creation, so adding never allocates and never fails; the
 * allocation is zeroed by calloc, so its pages cost nothing until ids fill
 * them.
 *
 * Not thread-safe. The service adds ids on its loop thread under its lock and
 * looks them up on that thread (the only writer) without it; the checkpoint
 * copies them under the lock, with the labels, so both describe one instant.
 */
#ifndef AG_BATCH_IDS_H
#define AG_BATCH_IDS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AG_BATCH_ID_MAX 128 /* bytes of LabelRequest.batch_id */

/* One remembered batch. */
typedef struct ag_batch_id {
    char id[AG_BATCH_ID_MAX + 1];
    uint32_t accepted, rejected;
} ag_batch_id_t;

typedef struct ag_batch_ids ag_batch_ids_t;

/* A table of at most cap (1..2^30) ids; NULL when out of memory. */
ag_batch_ids_t *ag_batch_ids_create(size_t cap);
void ag_batch_ids_destroy(ag_batch_ids_t **self);

/* Whether id is a usable batch id: 1..AG_BATCH_ID_MAX printable ASCII
 * characters (0x20..0x7e). */
bool ag_batch_id_valid(const char *id);

/* The counts remembered for id, if it is remembered. */
bool ag_batch_ids_find(const ag_batch_ids_t *t, const char *id, uint32_t *accepted,
                       uint32_t *rejected);

/* Remembers id, which must be valid and not remembered yet (asserted),
 * forgetting the oldest id when the table is full. */
void ag_batch_ids_add(ag_batch_ids_t *t, const char *id, uint32_t accepted, uint32_t rejected);

size_t ag_batch_ids_count(const ag_batch_ids_t *t);
size_t ag_batch_ids_cap(const ag_batch_ids_t *t);
void ag_batch_ids_clear(ag_batch_ids_t *t);

/* Copies the remembered ids, oldest first, into out (room for
 * ag_batch_ids_count entries). */
void ag_batch_ids_copy(const ag_batch_ids_t *t, ag_batch_id_t *out);

/* n ids as JSON, [[id, accepted, rejected], ...] in the given order (a new
 * reference; NULL when out of memory). */
json_t *ag_batch_ids_json(const ag_batch_id_t *v, size_t n);

/*
 * Replaces t's ids with those of j, a list as ag_batch_ids_json writes it,
 * oldest first; a list longer than the table keeps its newest ids. Every
 * entry is checked (a valid id, counts of at most max_counts together, no id
 * twice): on the first bad one t is left empty and -EINVAL returned with
 * why. Returns 0 otherwise.
 */
int ag_batch_ids_load(ag_batch_ids_t *t, const json_t *j, uint32_t max_counts, char *why,
                      size_t why_len);

#endif
