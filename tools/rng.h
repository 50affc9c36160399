/*
 * rng.h - a small seeded PRNG (xoshiro256**): the same seed gives the same
 * sequence everywhere, which is what makes a failing sample drill
 * repeatable with --seed.  Not for secrets.
 */
#ifndef VBFS_RNG_H
#define VBFS_RNG_H

#include <stdint.h>

struct rng { uint64_t s[4]; };

void     rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_next(struct rng *r);
/* Uniform in [0, n), n > 0, without modulo bias (rejection). */
uint64_t rng_below(struct rng *r, uint64_t n);

#endif
