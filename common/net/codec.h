/*
 * codec.h - decoding untrusted protobuf bytes and building envelopes, for
 * every service of protocol v1.
 *
 * protobuf-c's unpack has no limits of its own, so every decode here goes
 * through a bounded allocator (a decode may allocate at most a fixed multiple
 * of its input plus a constant, and fails cleanly past that), and every
 * decoded message is then walked once to check string and repeated-field
 * lengths against the protocol's limits (a default for all fields, with
 * per-field exceptions such as StepRequest.action).
 *
 * The envelope helpers use protobuf-c's reflection, so one function reads or
 * writes protocol_version, request_id and the oneof body of any service's
 * envelope (EnvRequest, TrajectoryReply, ...).
 */
#ifndef AG_CODEC_H
#define AG_CODEC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.pb-c.h"

#define AG_PROTOCOL_VERSION 1

/* A per-field limit: the field `field` of messages of type `message`, maximum length or count. */
typedef struct ag_field_limit {
    const ProtobufCMessageDescriptor *message;
    const char *field;
    size_t max;
} ag_field_limit_t;

typedef struct ag_limits {
    size_t max_string;     /* default for string and bytes fields */
    size_t max_repeated;   /* default for repeated fields */
    const ag_field_limit_t *fields;
    size_t n_fields;
} ag_limits_t;

/*
 * Decodes data as a message of type desc with a bounded allocator. Returns
 * NULL if the bytes are not a valid message, the decode would allocate too
 * much, or a limit is exceeded; *why (if not NULL) then says which. Free the
 * result with ag_codec_free, or with the type's own free_unpacked and a NULL
 * allocator (the memory is plain malloc), as callers of protobuf-c expect.
 */
ProtobufCMessage *ag_codec_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                  size_t len, const ag_limits_t *limits, char *why,
                                  size_t why_len);
void ag_codec_free(ProtobufCMessage *msg);

/* Walks msg and its sub-messages; 0 if within limits, else -1 and *why. */
int ag_codec_check_limits(const ProtobufCMessage *msg, const ag_limits_t *limits, char *why,
                          size_t why_len);

/* Envelope access by reflection (every envelope has protocol_version = 1, request_id = 2). */
uint32_t ag_envelope_version(const ProtobufCMessage *env);
uint64_t ag_envelope_request_id(const ProtobufCMessage *env);
void ag_envelope_set_header(ProtobufCMessage *env, uint64_t request_id);
/* The field number of the oneof body that is set, or 0 if none. */
uint32_t ag_envelope_body(const ProtobufCMessage *env);

/*
 * Initialises reply (of reply_desc, caller-owned storage of the right type,
 * e.g. an EnvReply on the stack) as an error reply: header, and the "error"
 * oneof member pointing at err (which must outlive the reply).
 */
void ag_envelope_init_error(ProtobufCMessage *reply, const ProtobufCMessageDescriptor *reply_desc,
                            uint64_t request_id, Agora__V1__Error *err, Agora__V1__ErrorCode code,
                            const char *message);

/* A growable byte buffer reused across packs, so the hot path does not allocate. */
typedef struct ag_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} ag_buf_t;

void ag_buf_finish(ag_buf_t *buf);
int ag_buf_reserve(ag_buf_t *buf, size_t cap);

/* Packs msg into buf (replacing its contents); returns 0 or -ENOMEM. */
int ag_codec_pack(const ProtobufCMessage *msg, ag_buf_t *buf);

/* Name of an error code as in common.proto, e.g. "ERROR_NOT_YOUR_TURN". */
const char *ag_error_name(Agora__V1__ErrorCode code);

#endif
