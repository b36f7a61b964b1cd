/* sched.c: which worker runs which task.
 *
 * Scheduling runs once per loop iteration (a uv_check handle, after all I/O of the
 * iteration), so every result that arrived in a burst frees its slot before any assignment is
 * made, and each worker gets all of its new tasks in one TaskBatch frame.
 *
 * Jobs are served first come, first served: the oldest job with ready tasks fills the free
 * capacity first, later jobs use what is left. Within a job:
 *   dynamic      every worker is topped up to its window as its slots free: workers in effect
 *                pull, so a fast worker returns results sooner and is given more tasks.
 *   round-robin  tasks are dealt to workers in a fixed ring (each worker once per slot), in
 *                turn, whatever their speed: when the next worker in the ring is full, dealing
 *                waits for it.
 * A worker's window is its slots plus a prefetch sized from its average task time, so tiny
 * tasks keep its pipeline full across a network round trip while long tasks are not hoarded. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "balance.h"
#include "log.h"
#include "plan.h"
#include "master.h"
#include "util.h"

void sched_kick(struct master *m)
{
	if (m->sched_pending || m->stopping)
		return;
	m->sched_pending = true;
	uv_check_start(&m->sched, sched_on_check);
}

uint32_t sched_free_slots(const struct worker *w)
{
	return w->held < w->slots ? w->slots - w->held : 0;
}

uint32_t sched_window(const struct worker *w)
{
	uint32_t slots = sched_free_slots(w);
	return slots > 0 ? balance_window(slots, w->ewma_task_us) : 0;
}

void sched_rebuild_ring(struct master *m)
{
	free(m->ring);
	m->ring = NULL;
	m->ring_len = 0;
	m->rr_epoch++;
	if (!m->total_slots)
		return;
	uint32_t *slots = xcalloc(m->nworkers, sizeof(*slots));
	struct worker **byindex = xcalloc(m->nworkers, sizeof(*byindex));
	size_t nw = 0;
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		byindex[nw] = list_entry(n, struct worker, link);
		slots[nw] = byindex[nw]->slots;
		nw++;
	}
	uint32_t *ring = xcalloc(m->total_slots, sizeof(*ring));
	m->ring_len = balance_ring(slots, nw, ring);
	m->ring = xcalloc(m->ring_len, sizeof(*m->ring));
	for (size_t i = 0; i < m->ring_len; i++)
		m->ring[i] = byindex[ring[i]];
	free(ring);
	free(byindex);
	free(slots);
}

/* The worker may run the job's tasks at all now (whether it has room or not). */
static bool worker_serves(const struct worker *w, const struct job *j)
{
	if (conn_closing(w->conn) || w->draining || w->quarantined_until > uv_now(w->m->loop))
		return false;
	/* User code goes to workers that run it. With none connected, the others take it and
	 * fail it with an error that says how to allow it, rather than leave it waiting unseen. */
	return !((j->exec || j->plugin) && !w->allow_exec && w->m->exec_workers > 0);
}

static bool worker_has_room(const struct worker *w, const struct job *j)
{
	if (!worker_serves(w, j) || !conn_writable(w->conn))
		return false;
	if (j->input == INPUT_UPLOAD)
		return sched_free_slots(w) > 0 && w->inflight < sched_free_slots(w) + 1;
	return w->inflight < sched_window(w);
}

static bool any_room(const struct master *m)
{
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		const struct worker *w = list_entry(n, struct worker, link);
		if (!conn_closing(w->conn) && !w->draining && conn_writable(w->conn) &&
		    w->quarantined_until <= uv_now(m->loop) && w->inflight < sched_window(w))
			return true;
	}
	return false;
}

/* Builds the wire form of a task. One allocation holds the message and its input so that
 * free() of the Task releases all of it; strings and args are borrowed from the job. */
struct task_msg {
	Shoal__Task task;
	Shoal__Range range;
	Shoal__PathSplit split;
};

static Shoal__Task *task_message(const struct task *t, uint32_t attempt)
{
	const struct job *j = t->job;
	struct task_msg *tm = xmalloc(sizeof(*tm));
	shoal__task__init(&tm->task);
	tm->task.job_id = j->id;
	tm->task.task_id = t->id;
	tm->task.attempt = attempt;
	tm->task.op = (char *)j->op->name;
	tm->task.n_args = j->nargs;
	tm->task.args = j->args;
	tm->task.exec = j->reducing ? j->reduce_exec : j->exec;
	tm->task.n_files = j->nfiles;
	tm->task.files = j->files;
	tm->task.broadcast = j->broadcast;
	tm->task.plugin = j->plugin;
	if (j->task_timeout_ms) {
		tm->task.has_task_timeout_ms = true;
		tm->task.task_timeout_ms = j->task_timeout_ms;
	}
	if (j->reducers && !j->reducing) {
		tm->task.has_reducers = true;
		tm->task.reducers = j->reducers;
	}
	switch (j->input) {
	case INPUT_RANGE: {
		shoal__range__init(&tm->range);
		plan_range_task(j->lo, j->hi, j->part_size, t->id, &tm->range.lo, &tm->range.hi);
		tm->task.input_case = SHOAL__TASK__INPUT_RANGE;
		tm->task.range = &tm->range;
		break;
	}
	case INPUT_PATH:
		shoal__path_split__init(&tm->split);
		tm->split.path = j->path;
		tm->split.offset = t->in_off;
		tm->split.length = t->in_len;
		tm->task.input_case = SHOAL__TASK__INPUT_SPLIT;
		tm->task.split = &tm->split;
		break;
	case INPUT_UPLOAD:
		tm->task.input_case = SHOAL__TASK__INPUT_DATA;
		break;
	}
	return &tm->task;
}

void sched_dispatch(struct task *t, struct worker *w, uint32_t attempt)
{
	Shoal__Task *msg = task_message(t, attempt);
	if (t->job->input == INPUT_UPLOAD) {
		upload_send_task(t, msg); /* reads the input, then sends; takes msg */
		return;
	}
	if (w->batch_len == w->batch_cap) {
		w->batch_cap = w->batch_cap ? w->batch_cap * 2 : 64;
		w->batch = xrealloc(w->batch, w->batch_cap * sizeof(*w->batch));
	}
	w->batch[w->batch_len++] = msg;
}

static void assign(struct task *t, struct worker *w)
{
	struct job *j = t->job;
	list_unlink(&t->link);
	list_push_back(&w->assigned, &t->link);
	t->state = TASK_ASSIGNED;
	t->worker = w;
	t->attempt = ++t->issued;
	if (t->issued == 1)
		j->dispatched++; /* first run of this partition by this master */
	t->started_ms = uv_now(w->m->loop);
	t->running = false;
	w->inflight++;
	j->running++;
	/* A job resumed after a restart keeps the start time it was journaled with. */
	if (!j->started_ms || j->state == SHOAL__JOB_STATE__JOB_QUEUED) {
		if (!j->started_ms) {
			j->started_ms = wall_ms();
			persist_job_started(j);
		}
		j->state = SHOAL__JOB_STATE__JOB_RUNNING;
		watch_job_changed(j);
	}
	sched_dispatch(t, w, t->attempt);
}

/* How far into a job's ready list a worker looks past tasks that should avoid it. */
#define SCHED_AVOID_SCAN 8u

/* The next ready task of j for w: a task whose last attempt failed on w is retried on
 * another worker while one can take work (the failed ones are at the front of the list). */
static struct task *next_ready_for(struct job *j, const struct worker *w)
{
	uint32_t k = 0;
	for (struct list_node *n = list_first(&j->ready); n && k < SCHED_AVOID_SCAN;
	     n = list_next(&j->ready, n), k++) {
		struct task *t = list_entry(n, struct task, link);
		if (t->avoid_worker != w->id || !registry_other_usable(w))
			return t;
	}
	return NULL;
}

/* Returns the number of tasks assigned. */
static uint32_t schedule_dynamic(struct master *m, struct job *j)
{
	uint32_t assigned = 0;
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		struct worker *w = list_entry(n, struct worker, link);
		struct task *t;
		while (worker_has_room(w, j) && (t = next_ready_for(j, w))) {
			assign(t, w);
			assigned++;
		}
		if (list_empty(&j->ready))
			break;
	}
	/* Rotate so that the next job's first pick is not always the same worker. */
	struct list_node *first = list_first(&m->workers);
	if (first && m->nworkers > 1) {
		list_unlink(first);
		list_push_back(&m->workers, first);
	}
	return assigned;
}

static uint32_t schedule_round_robin(struct master *m, struct job *j)
{
	uint32_t assigned = 0, skipped = 0;
	while (m->ring_len && !list_empty(&j->ready)) {
		struct worker *w = m->ring[j->rr_next % m->ring_len];
		bool serves = worker_serves(w, j);
		if (serves && !worker_has_room(w, j))
			break; /* strict turns: wait for this worker */
		struct task *t = serves ? next_ready_for(j, w) : NULL;
		j->rr_next = (uint32_t)((j->rr_next + 1) % m->ring_len);
		if (!t) {
			/* Its turn passes: it is quarantined (or leaving, or runs no commands), or
			 * what is ready must avoid it. */
			if (++skipped >= m->ring_len)
				break;
			continue;
		}
		skipped = 0;
		assign(t, w);
		assigned++;
	}
	return assigned;
}

static struct job *container_of_job(struct policy_entry *e)
{
	return (struct job *)((char *)e - offsetof(struct job, qentry));
}

/* Lower load first: inflight / slots, compared without division. */
static bool less_loaded(const struct worker *a, const struct worker *b)
{
	return (uint64_t)a->inflight * b->slots < (uint64_t)b->inflight * a->slots;
}

static void heap_down(struct worker **h, size_t n, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, best = i;
		if (l < n && less_loaded(h[l], h[best]))
			best = l;
		if (l + 1 < n && less_loaded(h[l + 1], h[best]))
			best = l + 1;
		if (best == i)
			return;
		struct worker *t = h[i];
		h[i] = h[best];
		h[best] = t;
		i = best;
	}
}

/* Each task goes to the worker with the lowest in-flight/slots ratio that has room: a heap
 * of the workers with room, O(log workers) per task. */
static uint32_t schedule_least_loaded(struct master *m, struct job *j)
{
	struct worker **h = xcalloc(m->nworkers, sizeof(*h));
	size_t n = 0;
	for (struct list_node *ln = list_first(&m->workers); ln; ln = list_next(&m->workers, ln)) {
		struct worker *w = list_entry(ln, struct worker, link);
		if (worker_has_room(w, j))
			h[n++] = w;
	}
	for (size_t i = n / 2; i-- > 0;)
		heap_down(h, n, i);
	uint32_t assigned = 0;
	struct task *t;
	while (n && !list_empty(&j->ready)) {
		struct worker *w = h[0];
		t = next_ready_for(j, w);
		if (t) {
			assign(t, w);
			assigned++;
		}
		if (!t || !worker_has_room(w, j))
			h[0] = h[--n];
		heap_down(h, n, 0);
	}
	free(h);
	return assigned;
}

void sched_on_check(uv_check_t *h)
{
	struct master *m = h->data;
	uv_check_stop(h);
	m->sched_pending = false;
	if (m->stopping || !m->nworkers)
		return;
	/* Jobs leave the queue in policy order while workers have room; those that still have
	 * ready tasks go back (their keys are fixed, so they keep their places). */
	size_t nvisited = 0;
	struct policy_entry *e;
	while (any_room(m) && (e = policy_pop(&m->queue))) {
		struct job *j = container_of_job(e);
		switch (j->strategy) {
		case SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN:
			schedule_round_robin(m, j);
			break;
		case SHOAL__STRATEGY__STRATEGY_LEAST_LOADED:
			schedule_least_loaded(m, j);
			break;
		default:
			schedule_dynamic(m, j);
			break;
		}
		if (list_empty(&j->ready))
			continue;
		if (nvisited == m->visited_cap) {
			m->visited_cap = m->visited_cap ? m->visited_cap * 2 : 16;
			m->visited = xrealloc(m->visited, m->visited_cap * sizeof(*m->visited));
		}
		m->visited[nvisited++] = j;
	}
	for (size_t i = 0; i < nvisited; i++)
		policy_push(&m->queue, &m->visited[i]->qentry);
	registry_flush_batches(m);
}
