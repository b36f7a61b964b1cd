/* plan.h: how a job's input is cut into tasks. Pure arithmetic, no I/O, unit tested.
 *
 * A job's input is `count` units (integers of a range, or bytes of a file). The partition size
 * comes from, in order: --partitions N (count/N rounded up), --partition-size, or a default of
 * PLAN_TASKS_PER_SLOT tasks per cluster slot, clamped to [min_part, max_part]. */
#ifndef SHOAL_PLAN_H
#define SHOAL_PLAN_H

#include <stdint.h>

/* Default tasks per slot: enough that a slow worker does not decide when a job ends. */
#define PLAN_TASKS_PER_SLOT 4u
/* Bounds of the default partition size of file inputs: --input-path partitions are read by
 * the workers themselves; uploaded (and chained) ones pass through the master's memory, so
 * they stay modest. PLAN_STREAM_PART: an upload of unknown size (stdin). */
#define PLAN_MIN_FILE_PART   (1u << 20)
#define PLAN_MAX_FILE_PART   (256u << 20)
#define PLAN_MAX_UPLOAD_PART (4u << 20)
#define PLAN_STREAM_PART     (4u << 20)

struct plan_request {
	uint64_t count;          /* units of input */
	uint32_t partitions;     /* 0: not given */
	uint64_t partition_size; /* 0: not given */
	uint32_t total_slots;    /* slots of the workers connected now */
	uint64_t min_part;       /* bounds for the default only */
	uint64_t max_part;
};

/* Units per task (>= 1) and the number of tasks (0 for an empty input). */
uint64_t plan_part_size(const struct plan_request *req, uint64_t *ntasks);

/* Integers of task i of a range job: [*tlo, *thi). */
void plan_range_task(int64_t lo, int64_t hi, uint64_t part, uint32_t i, int64_t *tlo, int64_t *thi);

/* Byte range of task i of a file of `size` bytes. */
void plan_split_task(uint64_t size, uint64_t part, uint32_t i, uint64_t *off, uint64_t *len);

#endif
