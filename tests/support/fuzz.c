/*
 * fuzz - building blocks of the hostile-input tests (see fuzz.h).
 */
#include "fuzz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_init(fuzz_t *fz, size_t cap, uint64_t seed)
{
    memset(fz, 0, sizeof *fz);
    fz->scratch = malloc(cap);
    if (!fz->scratch)
        return -ENOMEM;
    fz->cap = cap;
    ag_rng_seed(&fz->rng, seed);
    return 0;
}

void fuzz_finish(fuzz_t *fz)
{
    free(fz->scratch);
    memset(fz, 0, sizeof *fz);
}

void fuzz_reset(fuzz_t *fz)
{
    fz->used = 0;
}

uint8_t *fuzz_take(fuzz_t *fz, size_t n)
{
    if (n > fz->cap - fz->used) {
        fprintf(stderr, "fuzz: a message needs more than the %zu-byte arena\n", fz->cap);
        abort();
    }
    uint8_t *p = fz->scratch + fz->used;
    fz->used += n;
    return p;
}

uint32_t fuzz_between(fuzz_t *fz, uint32_t lo, uint32_t hi)
{
    return lo + ag_rng_below(&fz->rng, hi - lo + 1);
}

char *fuzz_text(fuzz_t *fz, size_t len, const char *alphabet)
{
    char *s = (char *)fuzz_take(fz, len + 1);
    const uint32_t n = (uint32_t)strlen(alphabet);
    for (size_t i = 0; i < len; i++)
        s[i] = alphabet[ag_rng_below(&fz->rng, n)];
    s[len] = '\0';
    return s;
}

bool fuzz_decodable(const ProtobufCMessageDescriptor *desc, const void *data, size_t len)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m)
        protobuf_c_message_free_unpacked(m, NULL);
    return m != NULL;
}

size_t fuzz_garbage(fuzz_t *fz, const ProtobufCMessageDescriptor *desc, size_t max,
                    ag_env_frame_t *frames)
{
    ag_env_frame_t f;
    do {
        size_t len = fuzz_between(fz, 1, (uint32_t)max);
        uint8_t *p = fuzz_take(fz, len);
        for (size_t i = 0; i < len; i++)
            p[i] = (uint8_t)ag_rng_u64(&fz->rng);
        f = (ag_env_frame_t){p, len};
    } while (fuzz_decodable(desc, f.data, f.size));
    size_t n = 0;
    if (ag_rng_below(&fz->rng, 2))
        frames[n++] = (ag_env_frame_t){"", 0};
    frames[n++] = f;
    return n;
}

ag_env_frame_t fuzz_truncate(fuzz_t *fz, ag_env_frame_t valid,
                             const ProtobufCMessageDescriptor *desc)
{
    ag_env_frame_t f = valid;
    do
        f.size = fuzz_between(fz, 1, (uint32_t)valid.size - 1);
    while (fuzz_decodable(desc, f.data, f.size));
    return f;
}

size_t fuzz_frames(fuzz_t *fz, ag_env_frame_t valid, ag_env_frame_t *frames, size_t max,
                   bool *empty_payload)
{
    *empty_payload = false;
    switch (ag_rng_below(&fz->rng, 4)) {
    case 0:
        frames[0] = (ag_env_frame_t){"", 0};
        return 1;
    case 1:
        frames[0] = frames[1] = (ag_env_frame_t){"", 0};
        *empty_payload = true;
        return 2;
    case 2: {
        const char *junk = fuzz_text(fz, fuzz_between(fz, 1, 32), "abc\x01\x02");
        frames[0] = (ag_env_frame_t){junk, strlen(junk)};
        frames[1] = valid;
        return 2;
    }
    default: {
        size_t n = fuzz_between(fz, 3, (uint32_t)max);
        for (size_t i = 0; i < n; i++) {
            uint32_t r = ag_rng_below(&fz->rng, 3);
            frames[i] = r == 0   ? (ag_env_frame_t){"", 0}
                        : r == 1 ? valid
                                 : (ag_env_frame_t){fuzz_text(fz, 8, "0123456789abcdef"), 8};
        }
        return n;
    }
    }
}
