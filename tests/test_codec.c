/*
 * test_codec.c - bounded decoding, limit checks and envelope reflection of
 * common/net/codec.c, on real protocol messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "env.pb-c.h"
#include "trajectory.pb-c.h"

static const ag_field_limit_t s_fields[] = {
    {&agora__v1__step_request__descriptor, "action", 4096},
    {&agora__v1__key_value__descriptor, "key", 8},
};
static const ag_limits_t s_limits = {256, 4, s_fields, 2};

static size_t s_pack_step(uint8_t *out, size_t cap, const char *action)
{
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    step.episode_id = 42;
    step.player = 1;
    step.action = (char *)action;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    ag_envelope_set_header(&req.base, 99);
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &step;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    assert_true(n <= cap);
    return protobuf_c_message_pack(&req.base, out);
}

static void test_round_trip(void **state)
{
    uint8_t buf[8192];
    size_t n = s_pack_step(buf, sizeof buf, "1 2 3");
    char why[128];
    ProtobufCMessage *m = ag_codec_decode(&agora__v1__env_request__descriptor, buf, n,
                                          &s_limits, why, sizeof why);
    assert_non_null(m);
    assert_int_equal(ag_envelope_version(m), 1);
    assert_int_equal(ag_envelope_request_id(m), 99);
    assert_int_equal(ag_envelope_body(m), AGORA__V1__ENV_REQUEST__BODY_STEP);
    Agora__V1__EnvRequest *req = (Agora__V1__EnvRequest *)m;
    assert_int_equal(req->step->episode_id, 42);
    assert_string_equal(req->step->action, "1 2 3");
    ag_codec_free(m);
}

static void test_garbage_and_truncation(void **state)
{
    uint8_t buf[256];
    size_t n = s_pack_step(buf, sizeof buf, "a fairly long action text");
    char why[128] = "";
    /* Every proper prefix that cuts a field must fail cleanly, never crash. */
    int failures = 0;
    for (size_t cut = 1; cut < n; cut++) {
        ProtobufCMessage *m = ag_codec_decode(&agora__v1__env_request__descriptor, buf, cut,
                                              &s_limits, why, sizeof why);
        if (!m)
            failures++;
        ag_codec_free(m);
    }
    assert_true(failures > 0);
    const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_null(ag_codec_decode(&agora__v1__env_request__descriptor, junk, sizeof junk,
                                &s_limits, why, sizeof why));
    assert_non_null(strstr(why, "undecodable"));
}

static void test_string_limit(void **state)
{
    static uint8_t buf[16384];
    char action[5000];
    memset(action, 'x', sizeof action - 1);
    action[sizeof action - 1] = '\0';
    size_t n = s_pack_step(buf, sizeof buf, action);
    char why[128] = "";
    assert_null(ag_codec_decode(&agora__v1__env_request__descriptor, buf, n, &s_limits, why,
                                sizeof why));
    assert_non_null(strstr(why, "action"));
    action[4096] = '\0';
    n = s_pack_step(buf, sizeof buf, action);
    ProtobufCMessage *m =
        ag_codec_decode(&agora__v1__env_request__descriptor, buf, n, &s_limits, why, sizeof why);
    assert_non_null(m);
    ag_codec_free(m);
}

static void test_repeated_and_nested_limits(void **state)
{
    Agora__V1__KeyValue kv[5];
    Agora__V1__KeyValue *kvp[5];
    for (int i = 0; i < 5; i++) {
        agora__v1__key_value__init(&kv[i]);
        kv[i].key = "k";
        kv[i].value = "v";
        kvp[i] = &kv[i];
    }
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "debate";
    reset.options = kvp;
    reset.n_options = 5;
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    uint8_t buf[1024];
    size_t n = protobuf_c_message_pack(&req.base, buf);
    char why[128] = "";
    assert_null(ag_codec_decode(&agora__v1__env_request__descriptor, buf, n, &s_limits, why,
                                sizeof why));
    assert_non_null(strstr(why, "options"));
    /* Within the count, a nested per-field limit (KeyValue.key <= 8) still applies. */
    reset.n_options = 2;
    kv[1].key = "much-too-long-key";
    n = protobuf_c_message_pack(&req.base, buf);
    assert_null(ag_codec_decode(&agora__v1__env_request__descriptor, buf, n, &s_limits, why,
                                sizeof why));
    assert_non_null(strstr(why, "key"));
    kv[1].key = "ok";
    n = protobuf_c_message_pack(&req.base, buf);
    ProtobufCMessage *m =
        ag_codec_decode(&agora__v1__env_request__descriptor, buf, n, &s_limits, why, sizeof why);
    assert_non_null(m);
    ag_codec_free(m);
}

/* A packed repeated field of one-byte varints would make protobuf-c allocate
 * 4 bytes per input byte: still inside the budget. The budget stops far worse
 * ratios; here we check that a large valid message within budget decodes and
 * that limits cut the element count. */
static void test_packed_repeated(void **state)
{
    size_t count = 100000;
    uint32_t *tokens = malloc(count * sizeof *tokens);
    for (size_t i = 0; i < count; i++)
        tokens[i] = (uint32_t)(i % 200);
    Agora__V1__SeatTrajectory seat = AGORA__V1__SEAT_TRAJECTORY__INIT;
    seat.tokens = tokens;
    seat.n_tokens = count;
    size_t n = protobuf_c_message_get_packed_size(&seat.base);
    uint8_t *buf = malloc(n);
    protobuf_c_message_pack(&seat.base, buf);
    char why[128] = "";
    ag_limits_t small = {256, 1000, NULL, 0};
    assert_null(ag_codec_decode(&agora__v1__seat_trajectory__descriptor, buf, n, &small, why,
                                sizeof why));
    assert_non_null(strstr(why, "tokens"));
    ag_limits_t big = {256, 1u << 20, NULL, 0};
    ProtobufCMessage *m =
        ag_codec_decode(&agora__v1__seat_trajectory__descriptor, buf, n, &big, why, sizeof why);
    assert_non_null(m);
    assert_int_equal(((Agora__V1__SeatTrajectory *)m)->n_tokens, count);
    ag_codec_free(m);
    free(buf);
    free(tokens);
}

/* Each empty Turn costs two input bytes and a whole struct of allocation: far
 * past the decode budget, though it is valid protobuf (protobuf-c's own
 * unpack, which has no budget, takes it). */
static void test_allocation_budget(void **state)
{
    size_t turns = 50000;
    size_t n = 0;
    uint8_t *buf = malloc(turns * 2);
    for (size_t i = 0; i < turns; i++) {
        buf[n++] = 0x22; /* field 4 (turns), length-delimited */
        buf[n++] = 0x00; /* an empty Turn */
    }
    Agora__V1__Transcript *plain = agora__v1__transcript__unpack(NULL, n, buf);
    assert_non_null(plain);
    assert_int_equal(plain->n_turns, turns);
    agora__v1__transcript__free_unpacked(plain, NULL);
    char why[128] = "";
    ag_limits_t no_limits = {1 << 30, 1 << 24, NULL, 0};
    assert_null(ag_codec_decode(&agora__v1__transcript__descriptor, buf, n, &no_limits, why,
                                sizeof why));
    assert_non_null(strstr(why, "undecodable"));
    /* A few hundred of them are within the budget. */
    ProtobufCMessage *m = ag_codec_decode(&agora__v1__transcript__descriptor, buf, 600,
                                          &no_limits, why, sizeof why);
    assert_non_null(m);
    assert_int_equal(((Agora__V1__Transcript *)m)->n_turns, 300);
    ag_codec_free(m);
    free(buf);
}

/* Decoded messages are plain malloc memory: users of protobuf-c free them the usual way. */
static void test_free_unpacked_frees_decoded(void **state)
{
    uint8_t buf[256];
    size_t n = s_pack_step(buf, sizeof buf, "an action to copy");
    ProtobufCMessage *m = ag_codec_decode(&agora__v1__env_request__descriptor, buf, n,
                                          &s_limits, NULL, 0);
    assert_non_null(m);
    Agora__V1__EnvRequest *req = (Agora__V1__EnvRequest *)m;
    assert_string_equal(req->step->action, "an action to copy");
    agora__v1__env_request__free_unpacked(req, NULL);
}

static void test_error_envelope(void **state)
{
    Agora__V1__EnvReply reply;
    Agora__V1__Error err;
    ag_envelope_init_error(&reply.base, &agora__v1__env_reply__descriptor, 77, &err,
                           AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN, "seat 1 is to act");
    ag_buf_t buf = {0};
    assert_int_equal(ag_codec_pack(&reply.base, &buf), 0);
    Agora__V1__EnvReply *back = agora__v1__env_reply__unpack(NULL, buf.len, buf.data);
    assert_non_null(back);
    assert_int_equal(back->protocol_version, 1);
    assert_int_equal(back->request_id, 77);
    assert_int_equal(back->body_case, AGORA__V1__ENV_REPLY__BODY_ERROR);
    assert_int_equal(back->error->code, AGORA__V1__ERROR_CODE__ERROR_NOT_YOUR_TURN);
    assert_string_equal(back->error->message, "seat 1 is to act");
    agora__v1__env_reply__free_unpacked(back, NULL);
    ag_buf_finish(&buf);
    assert_string_equal(ag_error_name(AGORA__V1__ERROR_CODE__ERROR_INVALID_ACTION),
                        "ERROR_INVALID_ACTION");
}

static void test_random_bytes_never_crash(void **state)
{
    uint8_t buf[512];
    uint64_t x = 12345;
    int decoded = 0;
    for (int round = 0; round < 20000; round++) {
        size_t n = (size_t)(x % sizeof buf);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        ProtobufCMessage *m = ag_codec_decode(&agora__v1__env_request__descriptor, buf, n,
                                              &s_limits, NULL, 0);
        if (m)
            decoded++;
        ag_codec_free(m);
    }
    /* Random bytes are almost never a valid envelope; the point is surviving them. */
    assert_true(decoded < 20000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_garbage_and_truncation),
        cmocka_unit_test(test_string_limit),
        cmocka_unit_test(test_repeated_and_nested_limits),
        cmocka_unit_test(test_packed_repeated),
        cmocka_unit_test(test_allocation_budget),
        cmocka_unit_test(test_free_unpacked_frees_decoded),
        cmocka_unit_test(test_error_envelope),
        cmocka_unit_test(test_random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
