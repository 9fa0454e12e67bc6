/*
 * fuzz - the building blocks the hostile-input tests share (hostile.c for
 * agora-env, reward_hostile.c for agora-reward): one seeded rng, so a
 * failure reproduces, a scratch arena emptied before each message, random
 * text, and the malformed messages every ROUTER service of the protocol
 * must refuse the same way whatever its envelope: bytes that do not decode
 * as the envelope, an envelope cut short, another service's envelope,
 * frame layouts other than [payload] and [empty][payload], and messages
 * over the size limit.
 *
 * The arena aborts the test on overflow: a message larger than it is a bug
 * of the test, not of the server.
 */
#ifndef AG_TEST_FUZZ_H
#define AG_TEST_FUZZ_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env_client.h"
#include "rng.h"

typedef struct fuzz {
    ag_rng_t rng;
    uint8_t *scratch;
    size_t used, cap;
} fuzz_t;

/* An arena of cap bytes and an rng seeded with seed; -ENOMEM. */
int fuzz_init(fuzz_t *fz, size_t cap, uint64_t seed);
void fuzz_finish(fuzz_t *fz);

/* Empties the arena (everything taken from it is gone). */
void fuzz_reset(fuzz_t *fz);
uint8_t *fuzz_take(fuzz_t *fz, size_t n);

/* Uniform in [lo, hi]. */
uint32_t fuzz_between(fuzz_t *fz, uint32_t lo, uint32_t hi);

/* len random characters of alphabet, NUL-terminated, in the arena. */
char *fuzz_text(fuzz_t *fz, size_t len, const char *alphabet);

/* Whether the bytes decode as a message of type desc. */
bool fuzz_decodable(const ProtobufCMessageDescriptor *desc, const void *data, size_t len);

/* 1..max random bytes that do not decode as desc (random bytes sometimes
 * do), into frames as [payload] or, half the time, REQ-style
 * [empty][payload]. Returns the number of frames (1 or 2). */
size_t fuzz_garbage(fuzz_t *fz, const ProtobufCMessageDescriptor *desc, size_t max,
                    ag_env_frame_t *frames);

/* A prefix of valid (a packed desc) that no longer decodes: a cut at a
 * field boundary would still decode, so cuts are drawn until one does not. */
ag_env_frame_t fuzz_truncate(fuzz_t *fz, ag_env_frame_t valid,
                             const ProtobufCMessageDescriptor *desc);

/*
 * Another service's request envelope (version 1, request id id), packed in
 * the arena: one of the protocol's four request types other than own's,
 * with a small random body. The services' body field numbers do not
 * overlap, so own's service reads it as a request without a body.
 */
ag_env_frame_t fuzz_foreign_envelope(fuzz_t *fz, const ProtobufCMessageDescriptor *own,
                                     uint64_t id);

/*
 * A frame layout no ROUTER service accepts, around the valid payload: a
 * lone empty frame, [empty][empty], a non-empty frame before the payload,
 * or 3..max frames mixing empty, valid and junk frames. Returns the number
 * of frames written to frames (room for max >= 3). *empty_payload is set
 * for [empty][empty], whose empty payload decodes as an envelope of
 * defaults: a version mismatch is as right an answer to it as a bad request.
 */
size_t fuzz_frames(fuzz_t *fz, ag_env_frame_t valid, ag_env_frame_t *frames, size_t max,
                   bool *empty_payload);

/*
 * Sends size bytes of filler to endpoint, as [payload] or (delimited)
 * [empty][payload], on a connection of its own, and waits wait_ms for an
 * answer. Over a service's message size limit ZeroMQ must drop the
 * connection unanswered: returns 0 then, -EPROTO if anything came back, or
 * a negative errno if the message could not be sent.
 */
int fuzz_send_oversize(const char *endpoint, size_t size, bool delimited, int wait_ms);

#endif
