/*
 * fsutil.h - file helpers every agora process may need: writing a file
 * (resume state, counters, saved queues) atomically, so a crash at any
 * moment leaves either the old file or the new one, never a mix; reading a
 * whole file back; and the little-endian integers of agora's own binary
 * files (queue.bin, NAME.labels).
 */
#ifndef AG_FSUTIL_H
#define AG_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Writes len bytes to path atomically: PATH.tmp is written and fsync'd,
 * renamed over path, then the directory is fsync'd so the rename itself
 * survives a crash. Returns 0 or a negative errno (PATH.tmp is removed). */
int ag_write_atomic(const char *path, const void *data, size_t len);

/* Reads the whole regular file path into a new buffer (*out, free() it) of
 * *len bytes. Returns 0 or a negative errno (-EINVAL: not a regular file). */
int ag_read_file(const char *path, uint8_t **out, size_t *len);

static inline void ag_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t ag_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void ag_put_f32le(uint8_t *p, float f)
{
    uint32_t v;
    memcpy(&v, &f, sizeof v);
    ag_put_u32le(p, v);
}

static inline float ag_get_f32le(const uint8_t *p)
{
    uint32_t v = ag_get_u32le(p);
    float f;
    memcpy(&f, &v, sizeof f);
    return f;
}

/* A random 64-bit value: /dev/urandom mixed with the clock and the process id
 * (so it still differs between processes if urandom cannot be read), for ids
 * that must not repeat across runs, such as an actor's run id. */
uint64_t ag_random_u64(void);

#endif
