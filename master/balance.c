/* balance.c: window, moving average and round-robin ring (see balance.h). */
#include "balance.h"

#include <stdbool.h>

uint32_t balance_window(uint32_t slots, double ewma_us)
{
	if (ewma_us <= 0.0)
		return slots + slots;
	double per_slot = BALANCE_PREFETCH_TARGET_US / ewma_us;
	if (per_slot > BALANCE_PREFETCH_MAX_PER_SLOT)
		per_slot = BALANCE_PREFETCH_MAX_PER_SLOT;
	uint32_t prefetch = (uint32_t)(per_slot * slots + 0.999);
	if (prefetch < 1)
		prefetch = 1;
	return slots + prefetch;
}

double balance_ewma(double ewma_us, double sample_us)
{
	return ewma_us > 0.0 ? 0.8 * ewma_us + 0.2 * sample_us : sample_us;
}

size_t balance_ring(const uint32_t *slots, size_t nworkers, uint32_t *ring)
{
	size_t len = 0;
	for (uint32_t round = 0;; round++) {
		bool any = false;
		for (size_t w = 0; w < nworkers; w++) {
			if (round < slots[w]) {
				ring[len++] = (uint32_t)w;
				any = true;
			}
		}
		if (!any)
			return len;
	}
}
