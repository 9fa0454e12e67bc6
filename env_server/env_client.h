/*
 * env_client - a small blocking client for the agora environment protocol (v1).
 *
 * Used by tools and tests (agora-env-check, agora-bench env, the learner's
 * warm start, the actor's first Hello, the hostile-input tests): one ZeroMQ
 * DEALER connected to one env server. It is the messaging core's async client
 * (common/net/rpc.h) run on a private loop until each operation is over, so
 * socket options, request ids, deadlines, retries, reply matching and the
 * bounded decode are the ones every service uses. Three ways to talk to it:
 *
 *  - ag_env_client_call() and the hello/reset/step/demo/close wrappers send one
 *    request and wait for the reply carrying the same request_id within a
 *    deadline. On a timeout, requests that are safe to repeat (everything but
 *    Step) are resent with a fresh request_id, a bounded number of times.
 *    Replies to earlier requests that arrive late are discarded.
 *  - ag_env_client_send() / ag_env_client_recv(): pipelined use, many requests
 *    in flight, replies taken as they come (the caller matches request ids).
 *  - ag_env_client_send_frames(): arbitrary frames, for hostile tests.
 *
 * Replies are decoded with the codec's bounded decoder (common/net/codec.h)
 * into memory owned by the caller: free them with
 * agora__v1__env_reply__free_unpacked(reply, NULL). A reply that
 * carries an Error is still a successful call (return 0); look at
 * ag_env_reply_error(). Functions that can fail return 0 or a negative errno:
 * -ETIMEDOUT (no reply, or the server could not be reached, within the
 * deadline), -EPROTO (the reply was not an EnvReply in [payload] or
 * [empty][payload], decodable within the codec's bounds), -EBADMSG (strict
 * mode: a reply with request_id 0 came instead), -ENOMEM, -EINVAL, -EIO.
 *
 * A client is not thread-safe (ZeroMQ sockets are not): one per thread.
 */
#ifndef AG_ENV_CLIENT_H
#define AG_ENV_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"
#include "env.pb-c.h"
#include "zsock.h"

#define AG_ENV_PROTOCOL_VERSION 1
#define AG_ENV_DEFAULT_ENDPOINT "tcp://127.0.0.1:5570"
/* Largest reply a client of the env server accepts (ZMQ_MAXMSGSIZE). */
#define AG_ENV_CLIENT_MAX_REPLY (16 * 1024 * 1024)
/* Largest request an env server accepts; bigger ones drop the connection. */
#define AG_ENV_SERVER_MAX_REQUEST (1024 * 1024)
#define AG_ENV_MAX_ACTION 4096
#define AG_ENV_DEFAULT_TIMEOUT_MS 3000
#define AG_ENV_DEFAULT_RETRIES 2

typedef struct ag_env_client ag_env_client_t;

/* One frame of a raw multipart message (the messaging core's frame). */
typedef ag_frame_t ag_env_frame_t;

/* The frame layout a reply arrived in: [payload] or [empty][payload]. */
typedef struct {
    int frames;     /* 1 or 2 */
    bool delimited; /* an empty delimiter frame came first */
} ag_env_reply_shape_t;

/*
 * Connects a DEALER to endpoint (e.g. "tcp://127.0.0.1:5570"). Connecting is
 * asynchronous: an unreachable server shows up as -ETIMEDOUT on the first
 * request. timeout_ms (> 0) is the deadline of one try of a request. Returns
 * NULL on failure (bad endpoint, out of memory) with a message on stderr.
 */
ag_env_client_t *ag_env_client_create(const char *endpoint, int timeout_ms);
/* Closes the socket at once (ZMQ_LINGER 0); accepts NULL and nulls *self. */
void ag_env_client_destroy(ag_env_client_t **self);

void ag_env_client_set_timeout(ag_env_client_t *self, int timeout_ms);
/* Extra tries after a timeout for requests that are safe to repeat. */
void ag_env_client_set_retries(ag_env_client_t *self, int retries);
/*
 * Strict mode, for conformance checks: while a call waits, a reply with
 * request_id 0 (the id of answers to undecodable requests) ends the call with
 * -EBADMSG and is handed to the caller in *reply, instead of being discarded
 * as a late answer to something else. It catches servers that answer a
 * decodable request without echoing its id.
 */
void ag_env_client_set_strict(ag_env_client_t *self, bool strict);
/* A fresh request id: never 0, never handed out twice by this client (nor used by its calls). */
uint64_t ag_env_client_new_id(ag_env_client_t *self);

/*
 * Sends req and waits for the reply to it. The header is filled in here
 * (protocol_version 1, a fresh request_id per attempt; req->request_id is 0
 * on return). On success *reply is the decoded reply, owned by the caller.
 */
int ag_env_client_call(ag_env_client_t *self, Agora__V1__EnvRequest *req,
                       Agora__V1__EnvReply **reply);

/*
 * Sends req exactly as given (the caller sets protocol_version and
 * request_id). Packs into a buffer the client reuses, so sending allocates
 * nothing in the client itself. Waits at most the timeout for the socket to
 * accept the message.
 */
int ag_env_client_send(ag_env_client_t *self, const Agora__V1__EnvRequest *req);
/* Sends frames as one multipart message, whatever they contain. */
int ag_env_client_send_frames(ag_env_client_t *self, const ag_env_frame_t *frames, size_t n);
/*
 * Waits up to timeout_ms (0 = do not wait, -1 = forever) for the next reply,
 * whatever its request id. shape may be NULL.
 */
int ag_env_client_recv(ag_env_client_t *self, int timeout_ms, Agora__V1__EnvReply **reply,
                       ag_env_reply_shape_t *shape);

/* Convenience wrappers around ag_env_client_call(). */
int ag_env_client_hello(ag_env_client_t *self, const char *client_name,
                        Agora__V1__EnvReply **reply);
/* options: n_options key/value pairs; seat_bots: n_seat_bots names ("" = client). */
int ag_env_client_reset(ag_env_client_t *self, const char *game, uint64_t seed,
                        const char *const (*options)[2], size_t n_options,
                        const char *const *seat_bots, size_t n_seat_bots,
                        Agora__V1__EnvReply **reply);
/*
 * action: any bytes up to a NUL, not necessarily valid UTF-8 (protobuf-c
 * strings stop at NUL; hostile tests hand-encode actions with embedded NULs).
 */
int ag_env_client_step(ag_env_client_t *self, uint64_t episode_id, uint32_t player,
                       const char *action, Agora__V1__EnvReply **reply);
int ag_env_client_demo(ag_env_client_t *self, const char *game, uint64_t seed, uint32_t count,
                       Agora__V1__EnvReply **reply);
int ag_env_client_close(ag_env_client_t *self, uint64_t episode_id, Agora__V1__EnvReply **reply);

/* The reply's ErrorCode; 0 when it is not an error, -1 for an Error without a code. */
int ag_env_reply_error(const Agora__V1__EnvReply *reply);
/* The name of a reply's body ("hello", "reset", "error", ... or "none"). */
const char *ag_env_reply_kind(const Agora__V1__EnvReply *reply);

#endif
