/* fuzz_util.h: a tiny deterministic PRNG for the fuzz targets, seeded from the input so a
 * crash input replays exactly (chunk sizes, targets and limits derive from the bytes). */
#ifndef SHOAL_FUZZ_UTIL_H
#define SHOAL_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t fuzz_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h ? h : 1;
}

static inline uint64_t fuzz_rand(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 2685821657736338717ull;
}

/* A chunk size in [1, max], biased towards small ones. */
static inline size_t fuzz_chunk(uint64_t *s, size_t max)
{
	uint64_t r = fuzz_rand(s);
	size_t cap;
	switch (r & 3) {
	case 0: cap = 1; break;
	case 1: cap = 7; break;
	case 2: cap = 64; break;
	default: cap = 4096; break;
	}
	if (cap > max)
		cap = max;
	return cap ? 1 + (size_t)((r >> 2) % cap) : 1;
}

#endif
