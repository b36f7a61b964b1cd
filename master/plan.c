/* plan.c: partition planning (see plan.h). */
#include "plan.h"

static uint64_t div_ceil(uint64_t a, uint64_t b)
{
	return a / b + (a % b != 0);
}

uint64_t plan_part_size(const struct plan_request *req, uint64_t *ntasks)
{
	uint64_t size;
	if (req->count == 0) {
		*ntasks = 0;
		return 1;
	}
	if (req->partitions > 0) {
		size = div_ceil(req->count, req->partitions);
	} else if (req->partition_size > 0) {
		size = req->partition_size;
	} else {
		uint32_t slots = req->total_slots > 2 ? req->total_slots : 2;
		size = div_ceil(req->count, (uint64_t)slots * PLAN_TASKS_PER_SLOT);
		if (size < req->min_part)
			size = req->min_part;
		if (size > req->max_part)
			size = req->max_part;
	}
	if (size == 0)
		size = 1;
	*ntasks = div_ceil(req->count, size);
	return size;
}

void plan_range_task(int64_t lo, int64_t hi, uint64_t part, uint32_t i, int64_t *tlo, int64_t *thi)
{
	/* Unsigned arithmetic: hi - lo may exceed INT64_MAX for ranges spanning zero. */
	uint64_t start = (uint64_t)i * part;
	uint64_t total = (uint64_t)hi - (uint64_t)lo;
	uint64_t n = total - start < part ? total - start : part;
	*tlo = (int64_t)((uint64_t)lo + start);
	*thi = (int64_t)((uint64_t)lo + start + n);
}

void plan_split_task(uint64_t size, uint64_t part, uint32_t i, uint64_t *off, uint64_t *len)
{
	*off = (uint64_t)i * part;
	*len = size - *off < part ? size - *off : part;
}
