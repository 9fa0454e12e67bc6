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
 * request_id per attempt, matches replies by request_id (late replies of
 * abandoned attempts are dropped), and calls back exactly once: with the
 * decoded reply, or with a timeout after the last attempt.
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

typedef struct ag_rpc_client_opts {
    int timeout_ms;        /* per attempt; 0 = 3000 */
    int attempts;          /* 0 = 3 */
    int64_t max_reply;     /* ZMQ_MAXMSGSIZE for replies; 0 = 16 MiB */
    const ag_limits_t *limits; /* checked on decoded replies; NULL = generous defaults */
} ag_rpc_client_opts_t;

/*
 * status: 0 with reply set (owned by the client: valid during the call only),
 * -ETIMEDOUT after the last attempt, -EPROTO when a reply did not decode,
 * -ECANCELED when the client is destroyed with the call pending.
 * extra: a frame after the reply payload, if any (valid during the call).
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
 */
int ag_rpc_call(ag_rpc_client_t *self, ProtobufCMessage *request, ag_rpc_done_t done,
                void *arg);

size_t ag_rpc_client_pending(const ag_rpc_client_t *self);

#endif
