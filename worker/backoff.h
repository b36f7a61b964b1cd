/* backoff.h: capped exponential backoff with jitter for reconnecting to the master.
 *
 * Delays start at base and double up to cap; each is scaled by a random factor in
 * [1 - jitter, 1 + jitter) so that many workers losing one master do not all knock on its
 * door in the same millisecond, and is never above cap. Pure arithmetic: the caller supplies
 * the randomness, so tests are deterministic. */
#ifndef SHOAL_WORKER_BACKOFF_H
#define SHOAL_WORKER_BACKOFF_H

#include <stdint.h>

#define BACKOFF_BASE_MS 100u
#define BACKOFF_CAP_MS  5000u
#define BACKOFF_JITTER  0.25

struct backoff {
	uint64_t base_ms;
	uint64_t cap_ms;
	double jitter;
	uint64_t next_ms; /* undithered delay of the next attempt */
};

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, double jitter);
/* Back to the base delay (after a successful registration). */
void backoff_reset(struct backoff *b);
/* The delay before the next attempt, with u uniform in [0, 1); advances the sequence. */
uint64_t backoff_next(struct backoff *b, double u);

/* xorshift64* step: cheap, good enough for jitter, and without global state. */
double backoff_rand(uint64_t *state);

#endif
