/*
 * rpc.h - request/reply over ZeroMQ on a libuv loop, for every agora service.
 *
 * Server side (ag_rpc_server_t): a ROUTER socket. A request is
 * [routing id][payload] (a DEALER client) or [routing id][empty][payload]
 * (a REQ client, or a DEALER that adds the delimiter); the reply goes back
 * in the same shape. Anything else is reported to the handler as a framing
 * error so it can answer with its service's Error envelope. The handler gets
 * a peer by value and may reply at once or keep the peer and reply later
 * (after off-loop work).
 *
 * Client side (ag_rpc_client_t): a DEALER socket with per-request deadlines
 * and bounded retries. Each call packs a request envelope with a fresh
 * request_id per attempt, matches replies by request_id, and calls back
 * exactly once: with the decoded reply, or with a timeout after the last
 * attempt. Every reply is decoded with the codec's bounded decoder and
 * limits. Replies no call waits for (late replies of abandoned attempts,
 * replies to requests the owner framed itself) are dropped, or handed to the
 * owner's unmatched handler. The blocking env client (env_server/env_client.h)
 * is this client on a private loop.
 */
#ifndef AG_RPC_H
#define AG_RPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "codec.h"
#include "zsock.h"

typedef struct ag_rpc_peer {
    uint8_t id[256];
    size_t id_len;
    bool delimited;
} ag_rpc_peer_t;

typedef struct ag_rpc_server ag_rpc_server_t;

/*
 * payload is NULL when the frames were not a valid request layout (exactly
 * one payload frame, after an optional empty delimiter); the handler should
 * then reply with a BAD_REQUEST error.
 */
typedef void (*ag_rpc_handler_t)(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer,
                                 const uint8_t *payload, size_t len, void *arg);

ag_rpc_server_t *ag_rpc_server_create(uv_loop_t *loop, void *zctx, const char *endpoint,
                                      const ag_zsock_opts_t *opts, ag_rpc_handler_t handler,
                                      void *arg);
void ag_rpc_server_destroy(ag_rpc_server_t **self);
const char *ag_rpc_server_endpoint(const ag_rpc_server_t *self);
ag_zsock_t *ag_rpc_server_sock(ag_rpc_server_t *self);

/* Sends payload (and an optional extra frame) to peer; returns 0 or -errno (peer gone, HWM). */
int ag_rpc_reply(ag_rpc_server_t *self, const ag_rpc_peer_t *peer, const void *payload,
                 size_t len, const void *extra, size_t extra_len);

/* Packs and sends a reply envelope, reusing the server's buffer. */
int ag_rpc_reply_msg(ag_rpc_server_t *self, const ag_rpc_peer_t *peer,
                     const ProtobufCMessage *reply);

/* Packs and sends an Error envelope of type reply_desc. */
int ag_rpc_reply_error(ag_rpc_server_t *self, const ag_rpc_peer_t *peer,
                       const ProtobufCMessageDescriptor *reply_desc, uint64_t request_id,
                       Agora__V1__ErrorCode code, const char *message);

/*
 * The common front of every request handler. Answers, with the service's
 * Error envelope (reply_desc), a framing error (payload NULL), bytes that do
 * not decode as req_desc, a limit exceeded (under the request's own id) and
 * a protocol_version other than 1, and returns NULL then, with the reason in
 * why; otherwise returns the decoded request envelope (free it with
 * ag_codec_free). `what` names the request type in the framing message.
 */
ProtobufCMessage *ag_rpc_decode_request(ag_rpc_server_t *srv, const ag_rpc_peer_t *peer,
                                        const uint8_t *payload, size_t len,
                                        const ProtobufCMessageDescriptor *req_desc,
                                        const ProtobufCMessageDescriptor *reply_desc,
                                        const ag_limits_t *limits, char *why, size_t why_len);

/* ---- client ---- */

typedef struct ag_rpc_client ag_rpc_client_t;

#define AG_RPC_DEFAULT_TIMEOUT_MS 3000
#define AG_RPC_DEFAULT_ATTEMPTS 3
#define AG_RPC_DEFAULT_MAX_REPLY (16 * 1024 * 1024)

typedef struct ag_rpc_client_opts {
    int timeout_ms;        /* per attempt; 0 = AG_RPC_DEFAULT_TIMEOUT_MS */
    int attempts;          /* 0 = AG_RPC_DEFAULT_ATTEMPTS */
    int64_t max_reply;     /* ZMQ_MAXMSGSIZE for replies; 0 = AG_RPC_DEFAULT_MAX_REPLY */
    const ag_limits_t *limits; /* checked on decoded replies; NULL = generous defaults */
    bool immediate;        /* ZMQ_IMMEDIATE: an attempt waits for a connection (see below) */
} ag_rpc_client_opts_t;

/*
 * status: 0 with reply set (owned by the client: valid during the call only,
 * unless taken with ag_rpc_client_take_reply), -ETIMEDOUT after the last
 * attempt, -ECANCELED when the client is destroyed with the call pending.
 * extra: a frame after the reply payload, if any (valid during the call).
 * done may destroy the client.
 */
typedef void (*ag_rpc_done_t)(void *arg, int status, const ProtobufCMessage *reply,
                              const uint8_t *extra, size_t extra_len);

ag_rpc_client_t *ag_rpc_client_create(uv_loop_t *loop, void *zctx, const char *endpoint,
                                      const ProtobufCMessageDescriptor *reply_desc,
                                      const ag_rpc_client_opts_t *opts);
void ag_rpc_client_destroy(ag_rpc_client_t **self);

/*
 * Sends request (an envelope; its header is filled in here, so the caller's
 * message is modified) and calls done once. Returns 0, or -errno if it could
 * not even be queued (done is not called then).
 *
 * An attempt's deadline runs from when the socket takes it. An attempt the
 * socket refuses (at the high-water mark, or before a connection is up with
 * `immediate`) goes out as soon as it can; one still unsent at its deadline
 * has failed like an unanswered one.
 */
int ag_rpc_call(ag_rpc_client_t *self, ProtobufCMessage *request, ag_rpc_done_t done,
                void *arg);

/* One call's own deadline and attempts; 0 (or opts NULL) = the client's. */
typedef struct ag_rpc_call_opts {
    int timeout_ms;
    int attempts; /* 1 for a request that must not be repeated, such as an env Step */
} ag_rpc_call_opts_t;
int ag_rpc_call_with(ag_rpc_client_t *self, ProtobufCMessage *request,
                     const ag_rpc_call_opts_t *opts, ag_rpc_done_t done, void *arg);

/*
 * Forgets the pending calls made with this done and arg, without calling
 * done: their replies, if any come, are unmatched. Returns how many.
 */
size_t ag_rpc_cancel(ag_rpc_client_t *self, ag_rpc_done_t done, void *arg);

size_t ag_rpc_client_pending(const ag_rpc_client_t *self);

/* A fresh request id: never 0, never handed out twice by this client (attempts draw from it). */
uint64_t ag_rpc_client_new_id(ag_rpc_client_t *self);

/* How a reply arrived: [payload] or [empty][payload], then an optional extra frame. */
typedef struct ag_rpc_reply_shape {
    size_t frames;  /* frames in the message */
    bool delimited; /* the first was an empty delimiter */
} ag_rpc_reply_shape_t;

/*
 * Called for every message no pending call takes: status 0 with a decoded
 * reply whose request_id matches no call (valid during the callback unless
 * taken), or -EPROTO with reply NULL for a message that is no reply (a frame
 * layout other than the shapes above, undecodable, or over a limit). Without
 * a handler the former are dropped and the latter logged. The handler must
 * not destroy the client.
 */
typedef void (*ag_rpc_unmatched_t)(void *arg, int status, const ProtobufCMessage *reply,
                                   const uint8_t *extra, size_t extra_len,
                                   const ag_rpc_reply_shape_t *shape);
void ag_rpc_client_on_unmatched(ag_rpc_client_t *self, ag_rpc_unmatched_t cb, void *arg);

/*
 * Inside a done or unmatched callback that got a reply: keeps that reply,
 * which the caller then frees (ag_codec_free, or the type's free_unpacked
 * with a NULL allocator). Returns it, or NULL outside such a callback.
 */
ProtobufCMessage *ag_rpc_client_take_reply(ag_rpc_client_t *self);

/*
 * The client's socket, for messages the owner frames itself (their replies
 * are unmatched). After ag_zsock_send returned -EAGAIN, wait with
 * ag_rpc_client_on_writable: the socket's writable callback is the client's,
 * which calls cb once its own refused attempts have gone out.
 */
ag_zsock_t *ag_rpc_client_sock(ag_rpc_client_t *self);
void ag_rpc_client_on_writable(ag_rpc_client_t *self, ag_zsock_writable_cb cb, void *arg);

#endif
