/* deps.c: jobs that wait for other jobs: --after ID (a barrier) and --input job:ID (a chained
 * stage, whose input is copied from the earlier job's result once it has succeeded). A waiting
 * job is held in m->waiting; whenever a job ends, the waiting ones are checked again: they
 * start when everything they wait for has succeeded, and fail, naming the culprit, as soon
 * as something they wait for has failed or was cancelled. */
#include <stdlib.h>

#include "master.h"
#include "plan.h"
#include "util.h"

bool deps_succeeded(const struct job *j)
{
	const struct job *a = j->after ? jobs_find(j->m, j->after) : NULL;
	const struct job *b = j->input_job ? jobs_find(j->m, j->input_job) : NULL;
	return (!a || a->state == SHOAL__JOB_STATE__JOB_SUCCEEDED) &&
	       (!b || b->state == SHOAL__JOB_STATE__JOB_SUCCEEDED);
}

static void wait_for_deps(struct job *j)
{
	struct master *m = j->m;
	if (j->waiting)
		return;
	if (m->nwaiting == m->waiting_cap) {
		m->waiting_cap = m->waiting_cap ? m->waiting_cap * 2 : 8;
		m->waiting = xrealloc(m->waiting, m->waiting_cap * sizeof(*m->waiting));
	}
	m->waiting[m->nwaiting++] = j;
	j->waiting = true;
}

/* Starts a chained stage's copy of its input once the job it reads has succeeded. */
static void start_chained_input(struct job *j)
{
	struct job *from = jobs_find(j->m, j->input_job);
	struct plan_request req = {
	    .count = from->result_size,
	    .partitions = j->req_partitions,
	    .partition_size = j->req_partition_size,
	    .total_slots = j->m->total_slots,
	    .min_part = PLAN_MIN_FILE_PART,
	    .max_part = PLAN_MAX_UPLOAD_PART,
	};
	uint64_t ntasks;
	j->part_size = plan_part_size(&req, &ntasks);
	upload_from_job(j, from, j->part_size);
}

/* Decides for a job with dependencies: fail it if one failed, start it if all succeeded, else
 * keep it waiting. */
void deps_check(struct job *j)
{
	struct master *m = j->m;
	if (jobs_finished(j))
		return;
	const uint64_t deps[2] = {j->after, j->input_job};
	for (int k = 0; k < 2; k++) {
		const struct job *d = deps[k] ? jobs_find(m, deps[k]) : NULL;
		if (d && (d->state == SHOAL__JOB_STATE__JOB_FAILED ||
		          d->state == SHOAL__JOB_STATE__JOB_CANCELLED)) {
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
			          "job %llu, which this job waits for, %s%s%s",
			          (unsigned long long)d->id, jobs_state_name(d->state),
			          d->error ? ": " : "", d->error ? d->error : "");
			return;
		}
	}
	if (!deps_succeeded(j)) {
		wait_for_deps(j);
		return;
	}
	if (j->input_job && !j->upload)
		start_chained_input(j);
	else if (j->held)
		jobs_make_runnable(j);
}

/* A job ended: jobs waiting for it run, or fail if it did not succeed. The list is taken
 * whole first, because failing a job ends it and calls here again. */
void deps_release(struct master *m)
{
	struct job **snap = m->waiting;
	size_t n = m->nwaiting;
	m->waiting = NULL;
	m->nwaiting = m->waiting_cap = 0;
	for (size_t i = 0; i < n; i++) {
		snap[i]->waiting = false;
		deps_check(snap[i]);
	}
	free(snap);
}
