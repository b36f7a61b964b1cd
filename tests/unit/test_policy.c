/* Job queue policies: order, ties by arrival, aging, removal from anywhere. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include "policy.h"

struct item {
	struct policy_entry e;
	int id;
};

static int pop_id(struct policy_queue *q)
{
	struct policy_entry *e = policy_pop(q);
	return e ? ((struct item *)e)->id : -1;
}

START_TEST(fcfs_is_arrival_order)
{
	struct policy_queue q;
	policy_queue_init(&q, POLICY_FCFS, 0);
	struct item it[5];
	int order[5] = {3, 0, 4, 1, 2};
	for (int i = 0; i < 5; i++) {
		it[i].id = i;
		policy_entry_init(&it[i].e, (uint64_t)i);
		policy_set_key(&q, &it[i].e, 100 - i, (uint64_t)(1000 - i), 0);
	}
	for (int i = 0; i < 5; i++)
		policy_push(&q, &it[order[i]].e);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pop_id(&q), i);
	ck_assert_int_eq(pop_id(&q), -1);
	policy_queue_deinit(&q);
}
END_TEST

START_TEST(sjf_smallest_cost_first_ties_by_arrival)
{
	struct policy_queue q;
	policy_queue_init(&q, POLICY_SJF, 0);
	uint64_t cost[6] = {50, 10, 50, 5, 10, 1000};
	struct item it[6];
	for (int i = 0; i < 6; i++) {
		it[i].id = i;
		policy_entry_init(&it[i].e, (uint64_t)i);
		policy_set_key(&q, &it[i].e, 0, cost[i], 0);
		policy_push(&q, &it[i].e);
	}
	int expect[6] = {3, 1, 4, 0, 2, 5};
	for (int i = 0; i < 6; i++)
		ck_assert_int_eq(pop_id(&q), expect[i]);
	policy_queue_deinit(&q);
}
END_TEST

START_TEST(priority_highest_first_ties_by_arrival)
{
	struct policy_queue q;
	policy_queue_init(&q, POLICY_PRIORITY, 0.0); /* no aging */
	int32_t prio[5] = {1, 5, 5, -3, 7};
	struct item it[5];
	for (int i = 0; i < 5; i++) {
		it[i].id = i;
		policy_entry_init(&it[i].e, (uint64_t)i);
		policy_set_key(&q, &it[i].e, prio[i], 0, 1000u * (uint64_t)i);
		policy_push(&q, &it[i].e);
	}
	int expect[5] = {4, 1, 2, 0, 3};
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(pop_id(&q), expect[i]);
	policy_queue_deinit(&q);
}
END_TEST

START_TEST(aging_lets_old_low_priority_jobs_through)
{
	/* 0.1 points per second: a job 5 points lower overtakes after waiting 50 s longer. */
	struct policy_queue q;
	policy_queue_init(&q, POLICY_PRIORITY, 0.1);
	struct item old, young, younger;
	old.id = 0;
	young.id = 1;
	younger.id = 2;
	policy_entry_init(&old.e, 0);
	policy_entry_init(&young.e, 1);
	policy_entry_init(&younger.e, 2);
	policy_set_key(&q, &old.e, 0, 0, 0);         /* priority 0, submitted at 0 s */
	policy_set_key(&q, &young.e, 5, 0, 49000);   /* +5, submitted 49 s later */
	policy_set_key(&q, &younger.e, 5, 0, 51000); /* +5, submitted 51 s later */
	policy_push(&q, &younger.e);
	policy_push(&q, &young.e);
	policy_push(&q, &old.e);
	ck_assert_int_eq(pop_id(&q), 1); /* 49 s < 50 s: priority still wins */
	ck_assert_int_eq(pop_id(&q), 0); /* 51 s > 50 s: age wins */
	ck_assert_int_eq(pop_id(&q), 2);
	policy_queue_deinit(&q);
}
END_TEST

START_TEST(remove_from_anywhere_keeps_order)
{
	struct policy_queue q;
	policy_queue_init(&q, POLICY_SJF, 0);
	enum { N = 200 };
	struct item *it = calloc(N, sizeof(*it));
	srand(7);
	for (int i = 0; i < N; i++) {
		it[i].id = i;
		policy_entry_init(&it[i].e, (uint64_t)i);
		policy_set_key(&q, &it[i].e, 0, (uint64_t)(rand() % 50), 0);
		policy_push(&q, &it[i].e);
		policy_push(&q, &it[i].e); /* pushing twice is harmless */
	}
	for (int i = 0; i < N; i += 3)
		policy_remove(&q, &it[i].e);
	ck_assert(!policy_queued(&it[0].e));
	ck_assert(policy_queued(&it[1].e));
	struct policy_entry *prev = NULL, *e;
	size_t n = 0;
	while ((e = policy_pop(&q))) {
		ck_assert(((struct item *)e)->id % 3 != 0);
		if (prev)
			ck_assert(policy_before(prev, e));
		prev = e;
		n++;
	}
	ck_assert_uint_eq(n, N - (N + 2) / 3);
	free(it);
	policy_queue_deinit(&q);
}
END_TEST

START_TEST(names_round_trip)
{
	enum policy_kind k;
	ck_assert_int_eq(policy_parse("sjf", &k), 0);
	ck_assert_int_eq(k, POLICY_SJF);
	ck_assert_str_eq(policy_name(k), "sjf");
	ck_assert_int_eq(policy_parse("priority", &k), 0);
	ck_assert_str_eq(policy_name(k), "priority");
	ck_assert_int_eq(policy_parse("fcfs", &k), 0);
	ck_assert_str_eq(policy_name(k), "fcfs");
	ck_assert_int_eq(policy_parse("lifo", &k), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");
	tcase_add_test(tc, fcfs_is_arrival_order);
	tcase_add_test(tc, sjf_smallest_cost_first_ties_by_arrival);
	tcase_add_test(tc, priority_highest_first_ties_by_arrival);
	tcase_add_test(tc, aging_lets_old_low_priority_jobs_through);
	tcase_add_test(tc, remove_from_anywhere_keeps_order);
	tcase_add_test(tc, names_round_trip);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
