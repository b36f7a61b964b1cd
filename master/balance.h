/* balance.h: the arithmetic behind task placement, kept apart from the loop so it is unit
 * tested. See sched.c for how it is used. */
#ifndef SHOAL_BALANCE_H
#define SHOAL_BALANCE_H

#include <stddef.h>
#include <stdint.h>

/* Prefetch aims to cover this much work beyond the running tasks. */
#define BALANCE_PREFETCH_TARGET_US    2000.0
#define BALANCE_PREFETCH_MAX_PER_SLOT 32u

/* Tasks a worker may hold: its slots plus a prefetch that covers BALANCE_PREFETCH_TARGET_US of
 * its average task time (at least 1, at most BALANCE_PREFETCH_MAX_PER_SLOT per slot). Before
 * any task was timed (ewma_us <= 0) the prefetch is one per slot. */
uint32_t balance_window(uint32_t slots, double ewma_us);

/* Folds one task time into a worker's moving average. */
double balance_ewma(double ewma_us, double sample_us);

/* Round-robin ring: fills ring[] with worker indexes, each worker appearing once per slot,
 * interleaved (0 1 2 0 1 2 0 ...) so that consecutive tasks go to different workers. ring
 * holds sum(slots) entries; returns the number written. */
size_t balance_ring(const uint32_t *slots, size_t nworkers, uint32_t *ring);

#endif
