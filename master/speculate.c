/* speculate.c: backup copies of stragglers (dynamic strategy).
 *
 * When every remaining task of a job is running (nothing left to hand out) and one has been
 * running for more than SPECULATE_FACTOR times the median of the job's recent task times
 * (plus SPECULATE_SLACK_MS, so that tiny tasks are not copied over scheduling noise), a copy
 * runs on a worker with a free slot. The first copy to succeed wins; jobs.c cancels the
 * other and drops its result by attempt id, so nothing is aggregated twice. A stopped or
 * overloaded worker therefore cannot hold a job's end hostage.
 *
 * --task-timeout is enforced by the worker, which knows when an attempt starts running (a
 * task may wait in its queue behind others first, which must not count) and reports when it
 * does. The master keeps a backstop for a worker that does not stop an attempt it reported
 * started: TIMEOUT_GRACE more than the timeout (at least TIMEOUT_GRACE_MIN_MS). */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"

#define SPECULATE_FACTOR     4
#define SPECULATE_SLACK_MS   200
#define TIMEOUT_GRACE        2 /* the backstop waits timeout / TIMEOUT_GRACE more */
#define TIMEOUT_GRACE_MIN_MS 10000u

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static uint32_t median_ms(const struct job *j)
{
	uint32_t v[ARRAY_SIZE(j->dur_ms)];
	memcpy(v, j->dur_ms, j->ndur * sizeof(*v));
	qsort(v, j->ndur, sizeof(*v), cmp_u32);
	return v[j->ndur / 2];
}

/* A worker with a free slot that may run the job's tasks, other than `holder`, least loaded
 * first. */
static struct worker *idle_worker(struct master *m, const struct worker *holder,
                                  const struct job *j)
{
	struct worker *best = NULL;
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n)) {
		struct worker *w = list_entry(n, struct worker, link);
		if (w == holder || w->draining || w->inflight >= sched_free_slots(w) ||
		    conn_closing(w->conn) || !conn_writable(w->conn) ||
		    ((j->exec || j->plugin) && !w->allow_exec))
			continue;
		if (!best ||
		    (uint64_t)w->inflight * best->slots < (uint64_t)best->inflight * w->slots)
			best = w;
	}
	return best;
}

static bool is_straggler(const struct task *t, uint64_t now)
{
	const struct job *j = t->job;
	if (t->backup || j->strategy != SHOAL__STRATEGY__STRATEGY_DYNAMIC || !j->ndur ||
	    !list_empty(&j->ready) || jobs_finished(j))
		return false;
	uint64_t limit = (uint64_t)SPECULATE_FACTOR * median_ms(j) + SPECULATE_SLACK_MS;
	return now - t->started_ms > limit;
}

/* The backstop for --task-timeout: an attempt its worker reported started and has not
 * stopped well past the timeout is stopped and retried here. And a task with a timeout that
 * waits on a worker whose every slot is held by attempts that cannot be stopped (a plugin or
 * op past its timeout runs on) goes back to the queue once it has waited the timeout: it
 * might wait there for ever. O(assigned tasks) per sweep, only for jobs with a timeout. */
static void expire_attempts(struct master *m, uint64_t now)
{
	for (struct list_node *wn = list_first(&m->workers); wn; wn = list_next(&m->workers, wn)) {
		struct worker *w = list_entry(wn, struct worker, link);
		bool stuck = sched_free_slots(w) == 0;
		struct list_node *tn = list_first(&w->assigned);
		while (tn) {
			struct list_node *next = list_next(&w->assigned, tn);
			struct task *t = list_entry(tn, struct task, link);
			uint32_t limit = t->job->task_timeout_ms;
			uint64_t grace = limit / TIMEOUT_GRACE > TIMEOUT_GRACE_MIN_MS
			                     ? limit / TIMEOUT_GRACE
			                     : TIMEOUT_GRACE_MIN_MS;
			if (limit && t->running && now - t->started_ms > limit + grace) {
				jobs_timeout_task(t);
				/* The job may have failed and freed its tasks: start over. */
				return;
			}
			if (limit && !t->running && stuck && now - t->started_ms > limit)
				jobs_withdraw(t);
			tn = next;
		}
	}
}

void speculate_sweep(struct master *m)
{
	uint64_t now = uv_now(m->loop);
	expire_attempts(m, now);
	for (struct list_node *wn = list_first(&m->workers); wn; wn = list_next(&m->workers, wn)) {
		struct worker *holder = list_entry(wn, struct worker, link);
		for (struct list_node *tn = list_first(&holder->assigned); tn;
		     tn = list_next(&holder->assigned, tn)) {
			struct task *t = list_entry(tn, struct task, link);
			if (!is_straggler(t, now))
				continue;
			struct worker *w = idle_worker(m, holder, t->job);
			if (!w)
				continue; /* no free slot that fits this job */
			t->backup = w;
			t->backup_attempt = ++t->issued;
			list_push_back(&w->backups, &t->backup_link);
			w->inflight++;
			t->job->speculated++;
			log_info("sched",
			         "job=%llu task=%u event=speculate running_ms=%llu median_ms=%u "
			         "holder=%llu backup=%llu attempt=%u",
			         (unsigned long long)t->job->id, t->id,
			         (unsigned long long)(now - t->started_ms), median_ms(t->job),
			         (unsigned long long)holder->id, (unsigned long long)w->id,
			         t->backup_attempt);
			sched_dispatch(t, w, t->backup_attempt);
		}
	}
	registry_flush_batches(m);
}
