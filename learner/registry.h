/*
 * registry.h - the learner's live set of services: the env and reward
 * servers that registered with its control service (docs/protocol.md
 * §12.4), each with its advertised endpoint, what it hosts, when it was last
 * heard from and whether the learner could reach it back.
 *
 * Loop thread only. Bounded (AG_REGISTRY_MAX entries); an entry not
 * refreshed for the TTL is dropped by a timer of the loop. A new entry, or
 * one whose endpoint changed, is probed once with a short deadline (env:
 * Hello; reward: RewardStats): an endpoint the learner cannot reach is kept
 * (the learner is not every peer) but logged and flagged PROBE_FAILED. The
 * owner hears of every change (added, removed, dropped) through on_change.
 */
#ifndef AG_LEARNER_REGISTRY_H
#define AG_LEARNER_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "control.pb-c.h"
#include "join.h"

#define AG_REGISTRY_MAX 1024
#define AG_REGISTRY_PROBE_MS 1000

typedef struct ag_registry_entry {
    Agora__V1__ServiceKind kind;
    char name[AG_JOIN_NAME_MAX + 1];
    char endpoint[AG_JOIN_ENDPOINT_MAX + 1];
    char hosts[AG_JOIN_HOSTS_MAX][AG_JOIN_HOST_MAX + 1];
    size_t n_hosts;
    uint64_t seen_ms; /* loop time of its last heartbeat */
    Agora__V1__ProbeState probe;
} ag_registry_entry_t;

typedef struct ag_registry ag_registry_t;
typedef void (*ag_registry_change_cb)(void *arg);

/* ttl_ms: silence after which a service is dropped (its heartbeat period is a third). */
ag_registry_t *ag_registry_create(uv_loop_t *loop, void *zctx, uint32_t ttl_ms,
                                  ag_registry_change_cb on_change, void *arg);
/* Cancels the probes in flight; the memory goes once the loop closed the timer. */
void ag_registry_destroy(ag_registry_t **self);

uint32_t ag_registry_ttl_ms(const ag_registry_t *r);
uint32_t ag_registry_heartbeat_ms(const ag_registry_t *r);

/*
 * Adds or refreshes a registration. Returns 0 (*added tells which), -EINVAL
 * with the reason in why for a registration that breaks the rules (kind,
 * name, endpoint, hosts: docs/protocol.md §12.4), -ENOSPC when the registry
 * is full.
 */
int ag_registry_register(ag_registry_t *r, const Agora__V1__RegisterRequest *req, bool *added,
                         char *why, size_t why_len);
/* Removes a registration; false when there was none. */
bool ag_registry_remove(ag_registry_t *r, Agora__V1__ServiceKind kind, const char *name);

size_t ag_registry_count(const ag_registry_t *r);
/* Entry i (0 .. count-1, registration order). */
const ag_registry_entry_t *ag_registry_at(const ag_registry_t *r, size_t i);
uint64_t ag_registry_now(const ag_registry_t *r);

/*
 * The endpoints of the live env servers that host game ("" = any), comma-
 * separated, in registration order, as many as fit in cap. Returns how many.
 */
size_t ag_registry_env_list(const ag_registry_t *r, const char *game, char *out, size_t cap);

#endif
