/* policy.h: job queue policies, i.e. which job's tasks go next. Pure data structure, unit
 * tested; sched.c walks it.
 *
 * Each policy orders jobs by a key that never changes while a job waits, so one binary heap
 * serves all three with O(log n) push, pop and removal:
 *   fcfs      arrival order
 *   sjf       smallest cost first (--cost; default the input size), ties by arrival
 *   priority  highest effective priority first, where a job's effective priority grows by
 *             `aging` points per second it has waited: priority + aging * (now - submitted).
 *             Comparing two jobs, `now` cancels out, so the key is
 *             aging * submitted_s - priority (smaller first), ties by arrival.
 * A low-priority job therefore overtakes a job D points above it after waiting D / aging
 * seconds longer: nothing starves. */
#ifndef SHOAL_POLICY_H
#define SHOAL_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_kind { POLICY_FCFS, POLICY_SJF, POLICY_PRIORITY };

/* Default aging: one priority point per 10 seconds of waiting. */
#define POLICY_DEFAULT_AGING 0.1

/* Embedded in each queued item. */
struct policy_entry {
	double key;
	uint64_t seq; /* arrival number: the tie-breaker */
	size_t index; /* position in the heap; SIZE_MAX when not queued */
};

struct policy_queue {
	enum policy_kind kind;
	double aging; /* priority points per second of waiting */
	struct policy_entry **heap;
	size_t n, cap;
};

/* Parses fcfs|sjf|priority; 0 or -1. */
int policy_parse(const char *s, enum policy_kind *out);
const char *policy_name(enum policy_kind k);

void policy_queue_init(struct policy_queue *q, enum policy_kind kind, double aging);
void policy_queue_deinit(struct policy_queue *q);

void policy_entry_init(struct policy_entry *e, uint64_t seq);
/* Sets the entry's key from the job's attributes (call before the first push). */
void policy_set_key(const struct policy_queue *q, struct policy_entry *e, int32_t priority,
                    uint64_t cost, uint64_t submitted_ms);
bool policy_queued(const struct policy_entry *e);
/* Queues e (no-op if already queued). */
void policy_push(struct policy_queue *q, struct policy_entry *e);
/* The first entry, or NULL. */
struct policy_entry *policy_peek(const struct policy_queue *q);
struct policy_entry *policy_pop(struct policy_queue *q);
/* Removes e wherever it is (no-op if not queued). */
void policy_remove(struct policy_queue *q, struct policy_entry *e);
/* True if a goes before b. */
bool policy_before(const struct policy_entry *a, const struct policy_entry *b);

#endif
