/*
 * codec.c - bounded protobuf decoding, limit checks and envelope reflection.
 */
#include "codec.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decode may allocate this many times its input, plus a constant: protobuf-c
 * allocates per element, so a malicious packed repeated field of one-byte
 * varints could otherwise ask for 8 bytes of storage per input byte and more. */
#define ALLOC_FACTOR 16
#define ALLOC_SLACK (64 * 1024)

typedef struct {
    size_t used;
    size_t budget;
} budget_t;

/*
 * The budget counts every byte a decode asks for, whether protobuf-c frees it
 * again or not, so it bounds the decode's work as well as its memory. The
 * blocks themselves are plain malloc: a decoded message can be freed by
 * protobuf-c's default allocator as well as by ag_codec_free.
 */
static void *s_alloc(void *data, size_t size)
{
    budget_t *b = data;
    if (size > b->budget - b->used)
        return NULL;
    b->used += size;
    return malloc(size ? size : 1);
}

static void s_free(void *data, void *ptr)
{
    free(ptr);
}

static void s_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || !why_len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

ProtobufCMessage *ag_codec_decode(const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                                  size_t len, const ag_limits_t *limits, char *why,
                                  size_t why_len)
{
    budget_t budget = {0, len * ALLOC_FACTOR + ALLOC_SLACK};
    ProtobufCAllocator alloc = {s_alloc, s_free, &budget};
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &alloc, len, data);
    if (!msg) {
        s_why(why, why_len, "undecodable %s (%zu bytes)", desc->name, len);
        return NULL;
    }
    if (limits && ag_codec_check_limits(msg, limits, why, why_len) < 0) {
        ag_codec_free(msg);
        return NULL;
    }
    return msg;
}

void ag_codec_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

static size_t s_field_limit(const ag_limits_t *l, const ProtobufCMessageDescriptor *d,
                            const ProtobufCFieldDescriptor *f, bool repeated)
{
    /* Descriptors are unique objects: a pointer comparison rules out almost every entry. */
    for (size_t i = 0; i < l->n_fields; i++)
        if (l->fields[i].message == d && !strcmp(l->fields[i].field, f->name))
            return l->fields[i].max;
    return repeated ? l->max_repeated : l->max_string;
}

static int s_check_value(const ProtobufCFieldDescriptor *f, const void *p, size_t limit,
                         const ag_limits_t *l, char *why, size_t why_len, int depth);

static int s_check(const ProtobufCMessage *msg, const ag_limits_t *l, char *why, size_t why_len,
                   int depth)
{
    const ProtobufCMessageDescriptor *d = msg->descriptor;
    if (depth > 16) {
        s_why(why, why_len, "%s nested too deeply (%d)", d->name, depth);
        return -1;
    }
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *base = (const char *)msg;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t which = *(const uint32_t *)(base + f->quantifier_offset);
            if (which != f->id)
                continue;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            size_t max = s_field_limit(l, d, f, true);
            if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES ||
                f->type == PROTOBUF_C_TYPE_MESSAGE) {
                /* A repeated string field's per-element limit is the default string limit. */
                if (n > max) {
                    s_why(why, why_len, "field %s has too many elements (%zu)", f->name, n);
                    return -1;
                }
                const void *arr = *(const void *const *)(base + f->offset);
                size_t esz = f->type == PROTOBUF_C_TYPE_BYTES ? sizeof(ProtobufCBinaryData)
                                                              : sizeof(void *);
                for (size_t k = 0; k < n; k++)
                    if (s_check_value(f, (const char *)arr + k * esz, l->max_string, l, why,
                                      why_len, depth) < 0)
                        return -1;
            } else if (n > max) {
                s_why(why, why_len, "field %s has too many elements (%zu)", f->name, n);
                return -1;
            }
            continue;
        }
        if (s_check_value(f, base + f->offset, s_field_limit(l, d, f, false), l, why, why_len,
                          depth) < 0)
            return -1;
    }
    return 0;
}

static int s_check_value(const ProtobufCFieldDescriptor *f, const void *p, size_t limit,
                         const ag_limits_t *l, char *why, size_t why_len, int depth)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
        const char *s = *(const char *const *)p;
        size_t n = s ? strlen(s) : 0;
        if (n > limit) {
            s_why(why, why_len, "field %s is too long (%zu bytes)", f->name, n);
            return -1;
        }
        return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
        const ProtobufCBinaryData *b = p;
        if (b->len > limit) {
            s_why(why, why_len, "field %s is too long (%zu bytes)", f->name, b->len);
            return -1;
        }
        return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessage *m = *(const ProtobufCMessage *const *)p;
        return m ? s_check(m, l, why, why_len, depth + 1) : 0;
    }
    default:
        return 0;
    }
}

int ag_codec_check_limits(const ProtobufCMessage *msg, const ag_limits_t *limits, char *why,
                          size_t why_len)
{
    return s_check(msg, limits, why, why_len, 0);
}

static const ProtobufCFieldDescriptor *s_field(const ProtobufCMessageDescriptor *d,
                                               unsigned id)
{
    return protobuf_c_message_descriptor_get_field(d, id);
}

uint32_t ag_envelope_version(const ProtobufCMessage *env)
{
    const ProtobufCFieldDescriptor *f = s_field(env->descriptor, 1);
    return f ? *(const uint32_t *)((const char *)env + f->offset) : 0;
}

uint64_t ag_envelope_request_id(const ProtobufCMessage *env)
{
    const ProtobufCFieldDescriptor *f = s_field(env->descriptor, 2);
    return f ? *(const uint64_t *)((const char *)env + f->offset) : 0;
}

void ag_envelope_set_header(ProtobufCMessage *env, uint64_t request_id)
{
    const ProtobufCFieldDescriptor *v = s_field(env->descriptor, 1);
    const ProtobufCFieldDescriptor *r = s_field(env->descriptor, 2);
    if (v)
        *(uint32_t *)((char *)env + v->offset) = AG_PROTOCOL_VERSION;
    if (r)
        *(uint64_t *)((char *)env + r->offset) = request_id;
}

uint32_t ag_envelope_body(const ProtobufCMessage *env)
{
    const ProtobufCMessageDescriptor *d = env->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            return *(const uint32_t *)((const char *)env + f->quantifier_offset);
    }
    return 0;
}

void ag_envelope_init_error(ProtobufCMessage *reply, const ProtobufCMessageDescriptor *reply_desc,
                            uint64_t request_id, Agora__V1__Error *err, Agora__V1__ErrorCode code,
                            const char *message)
{
    protobuf_c_message_init(reply_desc, reply);
    agora__v1__error__init(err);
    err->code = code;
    err->message = (char *)message;
    ag_envelope_set_header(reply, request_id);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(
        reply_desc, "error");
    if (f) {
        *(uint32_t *)((char *)reply + f->quantifier_offset) = f->id;
        *(Agora__V1__Error **)((char *)reply + f->offset) = err;
    }
}

void ag_buf_finish(ag_buf_t *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = buf->cap = 0;
}

int ag_buf_reserve(ag_buf_t *buf, size_t cap)
{
    if (cap <= buf->cap)
        return 0;
    size_t ncap = buf->cap ? buf->cap : 256;
    while (ncap < cap)
        ncap *= 2;
    uint8_t *p = realloc(buf->data, ncap);
    if (!p)
        return -ENOMEM;
    buf->data = p;
    buf->cap = ncap;
    return 0;
}

int ag_codec_pack(const ProtobufCMessage *msg, ag_buf_t *buf)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (ag_buf_reserve(buf, n ? n : 1) < 0)
        return -ENOMEM;
    buf->len = protobuf_c_message_pack(msg, buf->data);
    return 0;
}

const char *ag_error_name(Agora__V1__ErrorCode code)
{
    const ProtobufCEnumValue *v =
        protobuf_c_enum_descriptor_get_value(&agora__v1__error_code__descriptor, (int)code);
    return v ? v->name : "ERROR_UNKNOWN";
}
