/* policy.c: the job queue as a binary min-heap on (key, seq) (see policy.h). */
#include "policy.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

int policy_parse(const char *s, enum policy_kind *out)
{
	if (!strcmp(s, "fcfs"))
		*out = POLICY_FCFS;
	else if (!strcmp(s, "sjf"))
		*out = POLICY_SJF;
	else if (!strcmp(s, "priority"))
		*out = POLICY_PRIORITY;
	else
		return -1;
	return 0;
}

const char *policy_name(enum policy_kind k)
{
	switch (k) {
	case POLICY_SJF:
		return "sjf";
	case POLICY_PRIORITY:
		return "priority";
	default:
		return "fcfs";
	}
}

void policy_queue_init(struct policy_queue *q, enum policy_kind kind, double aging)
{
	memset(q, 0, sizeof(*q));
	q->kind = kind;
	q->aging = aging;
}

void policy_queue_deinit(struct policy_queue *q)
{
	free(q->heap);
	q->heap = NULL;
	q->n = q->cap = 0;
}

void policy_entry_init(struct policy_entry *e, uint64_t seq)
{
	e->key = 0;
	e->seq = seq;
	e->index = SIZE_MAX;
}

void policy_set_key(const struct policy_queue *q, struct policy_entry *e, int32_t priority,
                    uint64_t cost, uint64_t submitted_ms)
{
	switch (q->kind) {
	case POLICY_FCFS:
		e->key = 0; /* seq decides */
		break;
	case POLICY_SJF:
		e->key = (double)cost;
		break;
	case POLICY_PRIORITY:
		e->key = q->aging * ((double)submitted_ms / 1000.0) - (double)priority;
		break;
	}
}

bool policy_queued(const struct policy_entry *e)
{
	return e->index != SIZE_MAX;
}

bool policy_before(const struct policy_entry *a, const struct policy_entry *b)
{
	if (a->key != b->key)
		return a->key < b->key;
	return a->seq < b->seq;
}

static void place(struct policy_queue *q, size_t i, struct policy_entry *e)
{
	q->heap[i] = e;
	e->index = i;
}

static void sift_up(struct policy_queue *q, size_t i)
{
	struct policy_entry *e = q->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!policy_before(e, q->heap[parent]))
			break;
		place(q, i, q->heap[parent]);
		i = parent;
	}
	place(q, i, e);
}

static void sift_down(struct policy_queue *q, size_t i)
{
	struct policy_entry *e = q->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, best = i;
		struct policy_entry *b = e;
		if (l < q->n && policy_before(q->heap[l], b)) {
			best = l;
			b = q->heap[l];
		}
		if (l + 1 < q->n && policy_before(q->heap[l + 1], b)) {
			best = l + 1;
			b = q->heap[l + 1];
		}
		if (best == i)
			break;
		place(q, i, b);
		i = best;
	}
	place(q, i, e);
}

void policy_push(struct policy_queue *q, struct policy_entry *e)
{
	if (policy_queued(e))
		return;
	if (q->n == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 16;
		q->heap = xrealloc(q->heap, q->cap * sizeof(*q->heap));
	}
	place(q, q->n++, e);
	sift_up(q, q->n - 1);
}

struct policy_entry *policy_peek(const struct policy_queue *q)
{
	return q->n ? q->heap[0] : NULL;
}

void policy_remove(struct policy_queue *q, struct policy_entry *e)
{
	if (!policy_queued(e))
		return;
	size_t i = e->index;
	e->index = SIZE_MAX;
	struct policy_entry *last = q->heap[--q->n];
	if (i == q->n)
		return;
	place(q, i, last);
	if (i > 0 && policy_before(last, q->heap[(i - 1) / 2]))
		sift_up(q, i);
	else
		sift_down(q, i);
}

struct policy_entry *policy_pop(struct policy_queue *q)
{
	struct policy_entry *e = policy_peek(q);
	if (e)
		policy_remove(q, e);
	return e;
}
