/* Partition planning and balancing arithmetic of the master. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "balance.h"
#include "plan.h"

static uint64_t plan(uint64_t count, uint32_t parts, uint64_t psize, uint32_t slots,
		     uint64_t *ntasks)
{
	struct plan_request r = {count, parts, psize, slots, 1, UINT64_MAX};
	return plan_part_size(&r, ntasks);
}

START_TEST(partitions_given)
{
	uint64_t n;
	ck_assert_uint_eq(plan(10, 3, 0, 4, &n), 4);
	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(plan(10, 10, 0, 4, &n), 1);
	ck_assert_uint_eq(n, 10);
	/* More partitions than units: one unit each. */
	ck_assert_uint_eq(plan(5, 64, 0, 4, &n), 1);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(plan(100000, 100000, 0, 4, &n), 1);
	ck_assert_uint_eq(n, 100000);
}
END_TEST

START_TEST(partition_size_given)
{
	uint64_t n;
	ck_assert_uint_eq(plan(10, 0, 3, 4, &n), 3);
	ck_assert_uint_eq(n, 4);
	/* --partitions wins over --partition-size. */
	ck_assert_uint_eq(plan(10, 2, 3, 4, &n), 5);
	ck_assert_uint_eq(n, 2);
}
END_TEST

START_TEST(default_from_slots)
{
	uint64_t n;
	/* 4 slots x 4 tasks per slot. */
	ck_assert_uint_eq(plan(1600, 0, 0, 4, &n), 100);
	ck_assert_uint_eq(n, 16);
	/* No workers yet: planned as if 2 slots. */
	plan(1600, 0, 0, 0, &n);
	ck_assert_uint_eq(n, 8);
	/* Clamped to the bounds. */
	struct plan_request r = {1000, 0, 0, 4, 200, 300};
	ck_assert_uint_eq(plan_part_size(&r, &n), 200);
	ck_assert_uint_eq(n, 5);
	struct plan_request r2 = {1u << 30, 0, 0, 2, 1, 1u << 20};
	ck_assert_uint_eq(plan_part_size(&r2, &n), 1u << 20);
	ck_assert_uint_eq(n, 1024);
}
END_TEST

START_TEST(empty_input)
{
	uint64_t n = 99;
	ck_assert_uint_eq(plan(0, 7, 0, 4, &n), 1);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(range_tasks_tile_the_range)
{
	const int64_t cases[][2] = {
		{0, 10}, {-7, 13}, {5, 6}, {INT64_MIN, INT64_MIN + 1000}, {INT64_MAX - 999, INT64_MAX},
		{-(INT64_C(1) << 62), INT64_C(1) << 62}};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		int64_t lo = cases[c][0], hi = cases[c][1];
		uint64_t total = (uint64_t)hi - (uint64_t)lo;
		for (uint32_t parts = 1; parts <= 9; parts++) {
			uint64_t n;
			struct plan_request r = {total, parts, 0, 2, 1, UINT64_MAX};
			uint64_t size = plan_part_size(&r, &n);
			int64_t expect = lo;
			for (uint32_t i = 0; i < n; i++) {
				int64_t tlo, thi;
				plan_range_task(lo, hi, size, i, &tlo, &thi);
				ck_assert_int_eq(tlo, expect);
				ck_assert((uint64_t)thi - (uint64_t)tlo >= 1);
				expect = thi;
			}
			ck_assert_int_eq(expect, hi);
		}
	}
}
END_TEST

START_TEST(split_tasks_tile_the_file)
{
	for (uint64_t size = 1; size < 200; size += 13) {
		for (uint32_t parts = 1; parts <= 64; parts *= 2) {
			uint64_t n;
			struct plan_request r = {size, parts, 0, 2, 1, UINT64_MAX};
			uint64_t psize = plan_part_size(&r, &n);
			uint64_t expect = 0;
			for (uint32_t i = 0; i < n; i++) {
				uint64_t off, len;
				plan_split_task(size, psize, i, &off, &len);
				ck_assert_uint_eq(off, expect);
				ck_assert_uint_gt(len, 0);
				expect = off + len;
			}
			ck_assert_uint_eq(expect, size);
		}
	}
}
END_TEST

START_TEST(window_follows_task_time)
{
	/* Unmeasured: one prefetch per slot. */
	ck_assert_uint_eq(balance_window(4, 0.0), 8);
	/* Tiny tasks: the prefetch is capped per slot. */
	ck_assert_uint_eq(balance_window(2, 1.0), 2 + 2 * BALANCE_PREFETCH_MAX_PER_SLOT);
	/* 1 ms tasks: 2 ms of prefetch = 2 per slot. */
	ck_assert_uint_eq(balance_window(3, 1000.0), 3 + 6);
	/* Long tasks: never hoard more than one beyond the slots. */
	ck_assert_uint_eq(balance_window(4, 5e6), 5);
	ck_assert_uint_eq(balance_window(1, 5e6), 2);
}
END_TEST

START_TEST(ewma_moves_toward_samples)
{
	double e = balance_ewma(0.0, 100.0);
	ck_assert(e == 100.0);
	for (int i = 0; i < 50; i++)
		e = balance_ewma(e, 1000.0);
	ck_assert(e > 990.0 && e <= 1000.0);
}
END_TEST

START_TEST(ring_interleaves_by_slots)
{
	uint32_t slots[] = {2, 1, 3};
	uint32_t ring[6];
	size_t n = balance_ring(slots, 3, ring);
	uint32_t expect[] = {0, 1, 2, 0, 2, 2};
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < n; i++)
		ck_assert_uint_eq(ring[i], expect[i]);
	ck_assert_uint_eq(balance_ring(slots, 0, ring), 0);
}
END_TEST

static Suite *plan_suite(void)
{
	Suite *s = suite_create("plan");
	TCase *tc = tcase_create("plan");
	tcase_add_test(tc, partitions_given);
	tcase_add_test(tc, partition_size_given);
	tcase_add_test(tc, default_from_slots);
	tcase_add_test(tc, empty_input);
	tcase_add_test(tc, range_tasks_tile_the_range);
	tcase_add_test(tc, split_tasks_tile_the_file);
	tcase_add_test(tc, window_follows_task_time);
	tcase_add_test(tc, ewma_moves_toward_samples);
	tcase_add_test(tc, ring_interleaves_by_slots);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(plan_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
