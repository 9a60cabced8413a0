/* rng: small deterministic random numbers for the load generator.
 *
 * xoshiro256** seeded through splitmix64, plus lg_mix() to derive
 * independent sub-seeds (per group, per request, per hash id) so that any
 * piece of a workload can be regenerated on its own, in any order, and come
 * out the same. Header-only: every function is tiny. */
#ifndef KVGATE_BENCH_RNG_H
#define KVGATE_BENCH_RNG_H

#include <math.h>
#include <stdint.h>

struct lg_rng {
    uint64_t s[4];
};

static inline uint64_t lg_splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A well-mixed 64-bit function of (a, b): sub-seed derivation. */
static inline uint64_t lg_mix(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xD6E8FEB86659FD93ull + 0x632BE59BD9B4E019ull);
    lg_splitmix64(&x);
    return lg_splitmix64(&x);
}

static inline void lg_rng_seed(struct lg_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = lg_splitmix64(&x);
}

static inline uint64_t lg_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t lg_rng_next(struct lg_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = lg_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = lg_rotl(s[3], 45);
    return out;
}

/* Uniform in the open interval (0, 1): safe to take the log of. */
static inline double lg_rng_uniform(struct lg_rng *r)
{
    return ((double)(lg_rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n > 0 (multiply-shift; bias < 2^-32 for our n). */
static inline uint32_t lg_rng_below(struct lg_rng *r, uint32_t n)
{
    return (uint32_t)(((lg_rng_next(r) >> 32) * (uint64_t)n) >> 32);
}

static inline double lg_rng_exp(struct lg_rng *r, double mean)
{
    return -mean * log(lg_rng_uniform(r));
}

/* Standard normal (Marsaglia polar method). */
static inline double lg_rng_normal(struct lg_rng *r)
{
    for (;;) {
        double u = 2.0 * lg_rng_uniform(r) - 1.0, v = 2.0 * lg_rng_uniform(r) - 1.0;
        double s = u * u + v * v;
        if (s > 0.0 && s < 1.0)
            return u * sqrt(-2.0 * log(s) / s);
    }
}

#endif
