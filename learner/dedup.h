/*
 * dedup.h - which trajectory ids the learner has already seen, so a resent
 * trajectory is trained on once (at-least-once delivery + de-duplication).
 *
 * Ids are (actor_id, run_id, sequence), sequences counting from 0 per
 * (actor_id, run_id). Memory is bounded: per stream, the lowest sequence not
 * yet seen ("next": everything below it was seen) plus a bitmap of a window
 * of AG_DEDUP_WINDOW sequences above it for out-of-order arrivals. A sequence
 * beyond the window slides it, treating the skipped ones as seen: a very late
 * resend of one of them is then answered "duplicate" and dropped, never
 * trained twice. At most max_streams streams are kept; the least recently
 * used is forgotten first (an actor restart is a new run_id, so old streams
 * go quiet). The state is saved with the learner's resume state.
 */
#ifndef AG_DEDUP_H
#define AG_DEDUP_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define AG_DEDUP_WINDOW 4096

typedef struct ag_dedup ag_dedup_t;

ag_dedup_t *ag_dedup_create(size_t max_streams);
void ag_dedup_destroy(ag_dedup_t **self);

/* 1 if the id was seen before; else records it and returns 0; -ENOMEM. */
int ag_dedup_check(ag_dedup_t *d, const char *actor_id, uint64_t run_id, uint64_t sequence);

size_t ag_dedup_streams(const ag_dedup_t *d);

/* The state as JSON (a new reference), and back; from_json replaces the state
 * and returns 0 or -EINVAL on a malformed document. */
json_t *ag_dedup_to_json(const ag_dedup_t *d);
int ag_dedup_from_json(ag_dedup_t *d, const json_t *j);

#endif
