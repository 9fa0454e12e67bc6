/*
 * rng.h - the one random number generator of agora: xoshiro256** seeded
 * through splitmix64. Header-only so hot loops inline it. Everything that must
 * be reproducible (games, bots, sampling, initialisation, minibatch order)
 * draws from an ag_rng_t it owns, never from a global.
 */
#ifndef AG_RNG_H
#define AG_RNG_H

#include <stdint.h>

typedef struct ag_rng {
    uint64_t s[4];
} ag_rng_t;

static inline uint64_t ag_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static inline void ag_rng_seed(ag_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = ag_splitmix64(&seed);
}

static inline uint64_t ag_rng_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t ag_rng_u64(ag_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = ag_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = ag_rng_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n), n > 0; unbiased (Lemire's multiply-shift with rejection). */
static inline uint32_t ag_rng_below(ag_rng_t *r, uint32_t n)
{
    uint64_t m = (uint64_t)(uint32_t)(ag_rng_u64(r) >> 32) * n;
    uint32_t lo = (uint32_t)m;
    if (lo < n) {
        uint32_t t = -n % n;
        while (lo < t) {
            m = (uint64_t)(uint32_t)(ag_rng_u64(r) >> 32) * n;
            lo = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

/* Uniform in [0, 1) with 24 bits, exactly representable as float. */
static inline float ag_rng_float(ag_rng_t *r)
{
    return (float)(ag_rng_u64(r) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform in [0, 1) with 53 bits. */
static inline double ag_rng_double(ag_rng_t *r)
{
    return (double)(ag_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
