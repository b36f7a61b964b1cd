/* backoff.c: see backoff.h. */
#include "backoff.h"

void backoff_init(struct backoff *b, uint64_t base_ms, uint64_t cap_ms, double jitter)
{
	b->base_ms = base_ms > 0 ? base_ms : 1;
	b->cap_ms = cap_ms >= b->base_ms ? cap_ms : b->base_ms;
	b->jitter = jitter < 0 ? 0 : jitter > 1 ? 1 : jitter;
	b->next_ms = b->base_ms;
}

void backoff_reset(struct backoff *b)
{
	b->next_ms = b->base_ms;
}

uint64_t backoff_next(struct backoff *b, double u)
{
	if (!(u >= 0 && u < 1)) /* also catches NaN */
		u = 0.5;
	double factor = 1.0 - b->jitter + 2.0 * b->jitter * u;
	double d = (double)b->next_ms * factor;
	uint64_t delay = d < 1 ? 1 : d > (double)b->cap_ms ? b->cap_ms : (uint64_t)d;

	b->next_ms = b->next_ms > b->cap_ms / 2 ? b->cap_ms : b->next_ms * 2;
	return delay;
}

double backoff_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	/* Top 53 bits make a double in [0, 1). */
	return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}
