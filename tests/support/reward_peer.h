/*
 * reward_peer - what the tests that talk to a real agora-reward share:
 * starting it on a free loopback port or a given endpoint (ready once it
 * answers a reward Stats), and a raw DEALER client that sends any frames
 * and reads RewardReply envelopes with their frame layout, so a test can
 * speak the protocol both correctly and badly, with Score, Label and Stats
 * calls on top.
 *
 * The process handle is the env client library's ag_server_proc_t, so
 * ag_server_proc_alive() and ag_server_proc_stop() (SIGTERM, then the exit
 * status) work on it unchanged.
 */
#ifndef AG_REWARD_PEER_H
#define AG_REWARD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env_client.h" /* ag_env_frame_t */
#include "reward.pb-c.h"
#include "server_proc.h"

/*
 * Runs `exe --bind tcp://127.0.0.1:PORT extra...` (extra NULL-terminated)
 * and waits up to timeout_ms for a Stats answer; a child that exits during
 * start-up (a port taken in between) is retried on another port. Returns 0
 * or a negative errno after printing why.
 */
int reward_proc_start(ag_server_proc_t *p, const char *exe, const char *const *extra,
                      int timeout_ms);

/*
 * The same on a given endpoint (NULL or "": a free port, as above), for a
 * server that must come back where its clients already point. The previous
 * process may hold the port for a moment: a child that exits during
 * start-up is retried on the same endpoint after a pause.
 */
int reward_proc_start_at(ag_server_proc_t *p, const char *exe, const char *endpoint,
                         const char *const *extra, int timeout_ms);

typedef struct reward_peer {
    void *zctx;
    void *sock; /* DEALER */
    uint64_t next_id;
} reward_peer_t;

/* Connects a DEALER (16 MiB replies, linger 0) to endpoint. */
int reward_peer_open(reward_peer_t *c, const char *endpoint);
void reward_peer_close(reward_peer_t *c);

/* A fresh request id, never 0. */
uint64_t reward_peer_id(reward_peer_t *c);

/* Sends n frames as one message, whatever they hold. */
int reward_peer_send(reward_peer_t *c, const ag_env_frame_t *frames, size_t n);

/* Packs req as is (the caller set protocol_version and request_id) and sends it. */
int reward_peer_send_req(reward_peer_t *c, const Agora__V1__RewardRequest *req);

/*
 * The next reply within timeout_ms, whatever its id: 0 with *reply (free
 * with agora__v1__reward_reply__free_unpacked), -ETIMEDOUT, or -EPROTO
 * (not one payload frame after an optional empty one, or undecodable).
 * *delimited (may be NULL) tells whether an empty frame came first.
 */
int reward_peer_recv(reward_peer_t *c, int timeout_ms, Agora__V1__RewardReply **reply,
                     bool *delimited);

/* Sets version 1 and a fresh id on req, sends it and returns the reply with
 * that id (others are dropped), or NULL on a timeout. */
Agora__V1__RewardReply *reward_peer_call(reward_peer_t *c, Agora__V1__RewardRequest *req,
                                         int timeout_ms);

/* Convenience requests over reward_peer_call. */
Agora__V1__RewardReply *reward_peer_stats(reward_peer_t *c, const char *model, int timeout_ms);
Agora__V1__RewardReply *reward_peer_score(reward_peer_t *c, const char *model,
                                          const char *const *transcripts, size_t n, int timeout_ms);
Agora__V1__RewardReply *reward_peer_label(reward_peer_t *c, const char *model,
                                          Agora__V1__Preference **prefs, size_t n_prefs,
                                          Agora__V1__Outcome **outs, size_t n_outs, int timeout_ms);

/*
 * Scores n transcripts with model into out (n floats, in item order).
 * Returns 0; -ETIMEDOUT without an answer; -EPROTO for an error reply, a
 * reply of another kind or with another number of scores (said on stderr).
 */
int reward_peer_scores(reward_peer_t *c, const char *model, const char *const *transcripts,
                       size_t n, int timeout_ms, float *out);

/* The error code of a reply, 0 if it is not an error. */
int reward_reply_error(const Agora__V1__RewardReply *r);

/* The stats of model name in a Stats reply; NULL if r is not a Stats reply
 * or does not list that model. */
Agora__V1__RewardModelStats *reward_model_stats(const Agora__V1__RewardReply *r, const char *name);

/* A metric of a model's stats, or def when absent. */
double reward_metric(const Agora__V1__RewardModelStats *m, const char *name, double def);

#endif
