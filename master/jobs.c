/* jobs.c: the job table. A job is created by Submit, cut into tasks (partitions), queued,
 * and ends succeeded (every partition aggregated), failed (a task ran out of retries, or its
 * data is bad) or cancelled. Jobs are numbered from 1 and kept for status and result queries. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "balance.h"
#include "log.h"
#include "plan.h"
#include "master.h"
#include "util.h"

#define MAX_TASKS_PER_JOB 10000000u
/* Quarantine: this many failed attempts in a row keep a worker out for QUARANTINE_MS. */
#define QUARANTINE_AFTER 5u
#define QUARANTINE_MS    30000u
/* `shoal jobs` lists at most this many of the most recent jobs. */
#define MAX_LISTED_JOBS 10000u

struct job *jobs_find(struct master *m, uint64_t id)
{
	if (id == 0 || id > m->njobs)
		return NULL;
	return m->jobs[id - 1];
}

bool jobs_finished(const struct job *j)
{
	return j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED ||
	       j->state == SHOAL__JOB_STATE__JOB_FAILED ||
	       j->state == SHOAL__JOB_STATE__JOB_CANCELLED;
}

const char *jobs_state_name(Shoal__JobState s)
{
	switch (s) {
	case SHOAL__JOB_STATE__JOB_UPLOADING:
		return "uploading";
	case SHOAL__JOB_STATE__JOB_QUEUED:
		return "queued";
	case SHOAL__JOB_STATE__JOB_RUNNING:
		return "running";
	case SHOAL__JOB_STATE__JOB_SUCCEEDED:
		return "succeeded";
	case SHOAL__JOB_STATE__JOB_FAILED:
		return "failed";
	case SHOAL__JOB_STATE__JOB_CANCELLED:
		return "cancelled";
	default:
		return "unknown";
	}
}

/* Partition size for `count` units; see plan.h for the rules. */
static uint64_t choose_part_size(struct master *m, const Shoal__JobSpec *spec, uint64_t count,
                                 uint64_t min_part, uint64_t max_part, uint64_t *ntasks)
{
	struct plan_request req = {
	    .count = count,
	    .partitions = spec->has_partitions ? spec->partitions : 0,
	    .partition_size = spec->has_partition_size ? spec->partition_size : 0,
	    .total_slots = m->total_slots,
	    .min_part = min_part,
	    .max_part = max_part,
	};
	return plan_part_size(&req, ntasks);
}

/* Jobs that run user code combine like an ordered op: partials concatenated in order. */
static const struct op_desc exec_op = {"exec", OP_COMBINE_CONCAT, false, "", "", false};
static const struct op_desc plugin_op = {"plugin", OP_COMBINE_CONCAT, false, "", "", false};

const struct op_desc *jobs_op_for(const Shoal__JobSpec *spec)
{
	if (spec->exec)
		return &exec_op;
	if (spec->plugin)
		return &plugin_op;
	return op_find(spec->op);
}

static Shoal__FileRef *fileref_copy(const Shoal__FileRef *f)
{
	if (!f)
		return NULL;
	Shoal__FileRef *c = xmalloc(sizeof(*c) + f->sha256.len);
	shoal__file_ref__init(c);
	c->name = xstrdup(f->name);
	c->size = f->size;
	c->sha256.len = f->sha256.len;
	c->sha256.data = (uint8_t *)(c + 1);
	memcpy(c->sha256.data, f->sha256.data, f->sha256.len);
	return c;
}

static void fileref_free(Shoal__FileRef *f)
{
	if (f)
		free(f->name);
	free(f);
}

struct job *jobs_new(struct master *m, const Shoal__JobSpec *spec, const struct op_desc *op,
                     uint64_t id)
{
	struct job *j = xcalloc(1, sizeof(*j));
	j->m = m;
	j->id = id ? id : m->njobs + 1;
	j->op = op;
	/* The spec as submitted, for the journal. */
	j->spec_len = shoal__job_spec__get_packed_size(spec);
	j->spec_packed = xmalloc(j->spec_len ? j->spec_len : 1);
	shoal__job_spec__pack(spec, j->spec_packed);
	j->nargs = spec->n_args;
	j->args = xcalloc(spec->n_args ? spec->n_args : 1, sizeof(*j->args));
	for (size_t i = 0; i < spec->n_args; i++) {
		Shoal__Arg *a = xmalloc(sizeof(*a));
		shoal__arg__init(a);
		a->key = xstrdup(spec->args[i]->key);
		a->value = xstrdup(spec->args[i]->value);
		j->args[i] = a;
	}
	j->name = xstrdup(spec->name ? spec->name : "");
	j->exec = spec->exec ? xstrdup(spec->exec) : NULL;
	j->reduce_exec = spec->reduce_exec ? xstrdup(spec->reduce_exec) : NULL;
	j->reducers = j->reduce_exec ? (spec->has_reducers ? spec->reducers : 1) : 0;
	j->nfiles = spec->n_files;
	j->files = xcalloc(spec->n_files ? spec->n_files : 1, sizeof(*j->files));
	for (size_t i = 0; i < spec->n_files; i++)
		j->files[i] = fileref_copy(spec->files[i]);
	j->broadcast = fileref_copy(spec->broadcast);
	j->plugin = fileref_copy(spec->plugin);
	j->strategy = spec->has_strategy && spec->strategy != SHOAL__STRATEGY__STRATEGY_DEFAULT
	                  ? spec->strategy
	                  : m->cfg.strategy;
	j->priority = spec->has_priority ? spec->priority : 0;
	j->cost = spec->has_cost ? spec->cost : 0;
	j->task_timeout_ms = spec->has_task_timeout_ms ? spec->task_timeout_ms : 0;
	j->job_timeout_ms = spec->has_job_timeout_ms ? spec->job_timeout_ms : 0;
	j->timed_from_ms = uv_now(m->loop);
	j->retries =
	    spec->has_retries && spec->retries > 0 ? spec->retries : m->cfg.default_retries;
	j->submitted_ms = wall_ms();
	j->result_fd = -1;
	list_init(&j->ready);
	policy_entry_init(&j->qentry, j->id);
	/* m->jobs is indexed by id - 1; ids the journal no longer holds stay NULL. */
	while (m->jobs_cap < j->id) {
		m->jobs_cap = m->jobs_cap ? m->jobs_cap * 2 : 64;
		m->jobs = xrealloc(m->jobs, m->jobs_cap * sizeof(*m->jobs));
	}
	for (uint64_t k = m->njobs; k < j->id; k++)
		m->jobs[k] = NULL;
	m->jobs[j->id - 1] = j;
	if (j->id > m->njobs)
		m->njobs = j->id;
	if (j->job_timeout_ms) {
		if (m->ntimed == m->timed_cap) {
			m->timed_cap = m->timed_cap ? m->timed_cap * 2 : 16;
			m->timed = xrealloc(m->timed, m->timed_cap * sizeof(*m->timed));
		}
		m->timed[m->ntimed++] = j;
	}
	return j;
}

static void job_free_tasks(struct job *j)
{
	if (!j->tasks)
		return;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		spill_drop_pieces(&j->tasks[i].segs);
		spill_drop_pieces(&j->tasks[i].backup_segs);
		free(j->tasks[i].buckets);
	}
	free(j->tasks);
	j->tasks = NULL;
}

/* Creates the tasks of a range or path job, or of an upload job from its cut partitions. */
void jobs_create_tasks(struct job *j, uint32_t ntasks, const uint64_t *parts)
{
	j->ntasks = ntasks;
	j->tasks = xcalloc(ntasks ? ntasks : 1, sizeof(*j->tasks));
	for (uint32_t i = 0; i < ntasks; i++) {
		struct task *t = &j->tasks[i];
		t->job = j;
		t->id = i;
		t->state = TASK_READY;
		list_node_init(&t->link);
		if (j->input == INPUT_PATH) {
			plan_split_task(j->input_bytes, j->part_size, i, &t->in_off, &t->in_len);
		} else if (parts) {
			t->in_off = parts[2 * i];
			t->in_len = parts[2 * i + 1];
		}
	}
}

/* Puts the job in the queue (its key is fixed, so a job that returns because a task was
 * re-queued takes its old place). */
static void queue_job(struct master *m, struct job *j)
{
	policy_push(&m->queue, &j->qentry);
}

void jobs_make_runnable(struct job *j)
{
	struct master *m = j->m;
	if (!deps_succeeded(j)) {
		j->held = true;
		j->state = SHOAL__JOB_STATE__JOB_QUEUED;
		deps_check(j);
		return;
	}
	j->held = false;
	/* (A reduce job resumed in its reduce stage has its reducers already, from the journal.) */
	if (j->input == INPUT_UPLOAD && !j->reducing) {
		uint32_t n;
		const uint64_t *parts = upload_parts(j, &n);
		j->input_bytes = upload_bytes(j);
		jobs_create_tasks(j, n, parts);
		upload_release_parts(j);
		recover_apply_tasks(j); /* a resumed job: its partitions the journal has are done */
	}
	j->state = SHOAL__JOB_STATE__JOB_QUEUED;
	persist_job(j); /* its partitions are fixed: from now on they may be journaled */
	log_info("jobs", "job=%llu event=queued op=%s tasks=%u input_bytes=%llu strategy=%s",
	         (unsigned long long)j->id, j->op->name, j->ntasks,
	         (unsigned long long)j->input_bytes,
	         j->strategy == SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN ? "round-robin" : "dynamic");
	if (!j->cost)
		j->cost =
		    j->input == INPUT_RANGE ? (uint64_t)j->hi - (uint64_t)j->lo : j->input_bytes;
	policy_set_key(&m->queue, &j->qentry, j->priority, j->cost, j->submitted_ms);
	if (j->done == j->ntasks) {
		spill_finish(j);
		return;
	}
	for (uint32_t i = 0; i < j->ntasks; i++)
		if (j->tasks[i].state == TASK_READY)
			list_push_back(&j->ready, &j->tasks[i].link);
	queue_job(m, j);
	watch_job_changed(j);
	sched_kick(m);
}

void jobs_start_stage(struct job *j, uint32_t n, const uint64_t *parts)
{
	j->map_tasks = j->ntasks;
	j->reducing = true;
	j->input = INPUT_UPLOAD; /* reducers read their input from the job's input file */
	job_free_tasks(j);
	j->done = 0;
	jobs_create_tasks(j, n, parts);
	log_info("jobs", "job=%llu event=reduce_stage reducers=%u", (unsigned long long)j->id, n);
	for (uint32_t i = 0; i < j->ntasks; i++)
		list_push_back(&j->ready, &j->tasks[i].link);
	queue_job(j->m, j);
	watch_job_changed(j);
	sched_kick(j->m);
}

void jobs_send_submitted(struct conn *c, const struct job *j, uint64_t window)
{
	Shoal__Submitted s = SHOAL__SUBMITTED__INIT;
	s.job_id = j->id;
	s.has_upload_window = window != 0;
	s.upload_window = window;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_SUBMITTED;
	env.submitted = &s;
	conn_send(c, &env);
}

/* --max-queued-jobs and --max-upload (a declared upload size; upload.c checks the bytes as
 * they come): refuses the submit with a Failure saying which limit. Returns true if it did. */
static bool jobs_refuse_over_limits(struct master *m, struct conn *c, const Shoal__JobSpec *spec)
{
	uint32_t unfinished = 0;
	for (size_t i = 0; i < m->njobs; i++)
		unfinished += m->jobs[i] != NULL && !jobs_finished(m->jobs[i]);
	if (unfinished >= m->cfg.max_queued_jobs) {
		log_warn("jobs", "conn=%llu peer=%s event=submit_refused unfinished=%u",
		         (unsigned long long)conn_id(c), conn_peer(c), unfinished);
		server_send_failure(c, 0, 1,
		                    "the master has %u unfinished jobs, its limit "
		                    "(--max-queued-jobs %u); submit again once some have ended",
		                    unfinished, m->cfg.max_queued_jobs);
		return true;
	}
	if (m->cfg.max_upload > 0 && spec->input_case == SHOAL__JOB_SPEC__INPUT_UPLOAD &&
	    spec->has_upload_size && spec->upload_size > m->cfg.max_upload) {
		server_send_failure(c, 0, 2,
		                    "the input is %llu bytes; the master takes uploads of at most "
		                    "%llu bytes (--max-upload): use --input-path for shared "
		                    "storage, or ask for a larger limit",
		                    (unsigned long long)spec->upload_size,
		                    (unsigned long long)m->cfg.max_upload);
		return true;
	}
	return false;
}

void jobs_on_submit(struct master *m, struct client *cl, const Shoal__Submit *s)
{
	const Shoal__JobSpec *spec = s->spec;
	struct conn *c = cl->conn;
	char err[512];
	const struct op_desc *op;
	if (spec->exec) {
		op = &exec_op;
	} else if (spec->plugin) {
		op = &plugin_op; /* its --arg pairs are the plugin's to judge */
	} else {
		op = op_find(spec->op);
		if (!op) {
			server_send_failure(c, 0, 2, "unknown op '%s'", spec->op);
			return;
		}
		if (op_args_check(op, spec->args, spec->n_args, err, sizeof(err)) < 0) {
			server_send_failure(c, 0, 2, "%s", err);
			return;
		}
		if (op->needs_broadcast && !spec->broadcast) {
			server_send_failure(c, 0, 2, "op %s needs --broadcast FILE", op->name);
			return;
		}
	}
	/* Shipped files must be in the blob store before the job may refer to them. */
	const Shoal__FileRef *missing = NULL;
	for (size_t i = 0; i < spec->n_files && !missing; i++)
		if (!blobs_have(m, spec->files[i]))
			missing = spec->files[i];
	if (!missing && spec->broadcast && !blobs_have(m, spec->broadcast))
		missing = spec->broadcast;
	if (!missing && spec->plugin && !blobs_have(m, spec->plugin))
		missing = spec->plugin;
	if (missing) {
		server_send_failure(
		    c, 0, 2,
		    "file %s was not uploaded to the master (offer it with BlobOffer "
		    "before submitting)",
		    missing->name);
		return;
	}
	uint64_t count = 0, part_size = 1, path_size = 0, ntasks = 0;
	switch (spec->input_case) {
	case SHOAL__JOB_SPEC__INPUT_RANGE:
		if (spec->range->lo > spec->range->hi) {
			server_send_failure(c, 0, 2, "range %lld:%lld is empty backwards (LO > HI)",
			                    (long long)spec->range->lo, (long long)spec->range->hi);
			return;
		}
		count = (uint64_t)spec->range->hi - (uint64_t)spec->range->lo;
		part_size = choose_part_size(m, spec, count, 1, UINT64_MAX, &ntasks);
		break;
	case SHOAL__JOB_SPEC__INPUT_PATH: {
		struct stat st;
		const char *why = NULL;
		/* Master and workers each have their own working directory. */
		if (spec->path[0] != '/')
			why = "is not an absolute path";
		else if (stat(spec->path, &st) < 0)
			why = strerror(errno);
		else if (!S_ISREG(st.st_mode))
			why = S_ISDIR(st.st_mode) ? "is a directory" : "is not a regular file";
		if (why) {
			server_send_failure(
			    c, 0, 2,
			    "input path %s: %s on the master host (--input-path needs a "
			    "regular file that the master and every worker can read at "
			    "the same path)",
			    spec->path, why);
			return;
		}
		path_size = count = (uint64_t)st.st_size;
		part_size = choose_part_size(m, spec, count, PLAN_MIN_FILE_PART, PLAN_MAX_FILE_PART,
		                             &ntasks);
		break;
	}
	case SHOAL__JOB_SPEC__INPUT_JOB:
		break; /* sized when the earlier job's result is known */
	case SHOAL__JOB_SPEC__INPUT_UPLOAD:
		/* Uploaded partitions pass through the master's memory: keep them modest. */
		if (spec->has_upload_size)
			part_size = choose_part_size(m, spec, spec->upload_size, PLAN_MIN_FILE_PART,
			                             PLAN_MAX_UPLOAD_PART, &ntasks);
		else if (spec->has_partition_size && spec->partition_size > 0)
			part_size = spec->partition_size;
		else
			part_size = PLAN_STREAM_PART;
		break;
	default:
		server_send_failure(c, 0, 2, "job has no input");
		return;
	}
	if (ntasks > MAX_TASKS_PER_JOB) {
		server_send_failure(c, 0, 2, "%llu partitions is more than the %u a job may have",
		                    (unsigned long long)ntasks, MAX_TASKS_PER_JOB);
		return;
	}

	if (jobs_refuse_over_limits(m, c, spec))
		return;

	/* Barriers: the jobs this one waits for must exist (they may still be running). */
	uint64_t deps[2] = {spec->has_after ? spec->after : 0,
	                    spec->input_case == SHOAL__JOB_SPEC__INPUT_JOB ? spec->job : 0};
	for (int k = 0; k < 2; k++) {
		if (deps[k] && !jobs_find(m, deps[k])) {
			server_send_failure(c, 0, 2, "no job %llu to %s",
			                    (unsigned long long)deps[k],
			                    k ? "read the result of" : "run after");
			return;
		}
	}

	struct job *j = jobs_new(m, spec, op, 0);
	j->part_size = part_size;
	j->after = deps[0];
	j->input_job = deps[1];
	j->req_partitions = spec->has_partitions ? spec->partitions : 0;
	j->req_partition_size = spec->has_partition_size ? spec->partition_size : 0;
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%llu", m->jobs_dir, (unsigned long long)j->id);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot create %s: %s", dir,
		          strerror(errno));
		jobs_send_submitted(c, j, 0);
		return;
	}
	j->dir = xstrdup(dir);
	if (spill_start(j, err, sizeof(err)) < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "%s", err);
		jobs_send_submitted(c, j, 0);
		return;
	}
	log_info("jobs", "conn=%llu peer=%s job=%llu event=submitted op=%s",
	         (unsigned long long)conn_id(c), conn_peer(c), (unsigned long long)j->id, op->name);
	switch (spec->input_case) {
	case SHOAL__JOB_SPEC__INPUT_RANGE:
		j->input = INPUT_RANGE;
		j->lo = spec->range->lo;
		j->hi = spec->range->hi;
		jobs_create_tasks(j, (uint32_t)ntasks, NULL);
		persist_submitted(j, cl, 0);
		jobs_make_runnable(j);
		break;
	case SHOAL__JOB_SPEC__INPUT_PATH:
		j->input = INPUT_PATH;
		j->path = xstrdup(spec->path);
		j->input_bytes = path_size;
		jobs_create_tasks(j, (uint32_t)ntasks, NULL);
		persist_submitted(j, cl, 0);
		jobs_make_runnable(j);
		break;
	case SHOAL__JOB_SPEC__INPUT_JOB:
		/* Its input is copied from the earlier job's result once that has succeeded. */
		j->input = INPUT_UPLOAD;
		j->state = SHOAL__JOB_STATE__JOB_QUEUED;
		persist_submitted(j, cl, 0);
		deps_check(j); /* the earlier job may have ended already */
		break;
	default:
		j->input = INPUT_UPLOAD;
		j->state = SHOAL__JOB_STATE__JOB_UPLOADING;
		if (upload_start(j, cl, spec, err, sizeof(err)) < 0) {
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "%s", err);
			jobs_send_submitted(c, j, 0);
			return;
		}
		/* The client starts sending once the job is journaled. */
		persist_submitted(j, cl, m->cfg.upload_window);
		break;
	}
}

/* Takes a task away from its (primary) holder after a result, a failure or a cancellation. */
static void task_release(struct task *t)
{
	list_unlink(&t->link);
	t->worker->inflight--;
	t->job->running--;
	t->worker = NULL;
}

static void send_cancel(struct worker *w, const struct task *t, uint32_t attempt)
{
	Shoal__TaskRef ref = SHOAL__TASK_REF__INIT;
	ref.job_id = t->job->id;
	ref.task_id = t->id;
	ref.attempt = attempt;
	Shoal__TaskRef *refs[1] = {&ref};
	Shoal__CancelTasks ct = SHOAL__CANCEL_TASKS__INIT;
	ct.n_tasks = 1;
	ct.tasks = refs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_CANCEL_TASKS;
	env.cancel_tasks = &ct;
	conn_send(w->conn, &env);
}

static void cancel_on_worker(struct task *t)
{
	send_cancel(t->worker, t, t->attempt);
}

/* Ends the speculative copy (telling its worker to stop it when `cancel`). */
static void backup_release(struct task *t, bool cancel)
{
	if (!t->backup)
		return;
	if (cancel)
		send_cancel(t->backup, t, t->backup_attempt);
	list_unlink(&t->backup_link);
	t->backup->inflight--;
	t->backup = NULL;
	spill_drop_pieces(&t->backup_segs);
}

/* The primary copy is gone (released): the speculative copy becomes the primary, with its
 * own output pieces. */
static void backup_promote(struct task *t)
{
	struct worker *w = t->backup;
	spill_drop_pieces(&t->segs);
	list_unlink(&t->backup_link);
	list_push_back(&w->assigned, &t->link);
	t->worker = w;
	t->attempt = t->backup_attempt;
	t->running = false; /* its start was not tracked: its worker enforces the timeout */
	t->backup = NULL;
	t->segs = t->backup_segs;
	t->backup_segs = NULL;
	t->job->running++;
}

static void on_task_failed(struct job *j, struct task *t, struct worker *w, const char *error,
                           bool permanent);

void jobs_timeout_task(struct task *t)
{
	struct job *j = t->job;
	struct worker *w = t->worker;
	char why[192];
	snprintf(why, sizeof(why),
	         "attempt %u ran longer than the task timeout (%u ms) and its worker did not "
	         "stop it",
	         t->attempt, j->task_timeout_ms);
	cancel_on_worker(t); /* the worker kills a command's process group */
	on_task_failed(j, t, w, why, false);
	sched_kick(w->m); /* the retry goes out with the next round */
}

void jobs_withdraw(struct task *t)
{
	struct worker *w = t->worker;
	log_info("jobs",
	         "job=%llu task=%u attempt=%u worker=%llu event=withdrawn why=\"every slot of the "
	         "worker is held by an attempt that cannot be stopped\"",
	         (unsigned long long)t->job->id, t->id, t->attempt, (unsigned long long)w->id);
	cancel_on_worker(t);
	jobs_requeue(t);
	sched_kick(w->m);
}

/* The worker started running these attempts (tasks with a --task-timeout): the master's
 * backstop for the timeout counts from now. */
static void on_started(struct worker *w, const Shoal__TaskRef *ref)
{
	struct job *j = jobs_find(w->m, ref->job_id);
	if (!j || jobs_finished(j) || !j->tasks || ref->task_id >= j->ntasks)
		return;
	struct task *t = &j->tasks[ref->task_id];
	if (t->state != TASK_ASSIGNED || t->worker != w || t->attempt != ref->attempt)
		return;
	t->running = true;
	t->started_ms = uv_now(w->m->loop);
}

void jobs_sweep_timeouts(struct master *m)
{
	uint64_t now = uv_now(m->loop);
	size_t keep = 0;
	/* Ended jobs leave the array; jobs_fail below ends jobs but never adds any. */
	for (size_t i = 0; i < m->ntimed; i++) {
		struct job *j = m->timed[i];
		if (jobs_finished(j))
			continue;
		m->timed[keep++] = j;
		/* An upload needs no worker yet: the clock starts once the input is in. */
		if (j->state == SHOAL__JOB_STATE__JOB_UPLOADING)
			j->timed_from_ms = now;
	}
	m->ntimed = keep;
	if (m->nworkers > 0)
		return;
	for (size_t i = 0; i < m->ntimed; i++) {
		struct job *j = m->timed[i];
		uint64_t from = j->timed_from_ms > m->no_workers_since_ms ? j->timed_from_ms
		                                                          : m->no_workers_since_ms;
		if (jobs_finished(j) || j->state == SHOAL__JOB_STATE__JOB_UPLOADING ||
		    now - from < j->job_timeout_ms)
			continue;
		jobs_fail(
		    j, SHOAL__JOB_STATE__JOB_FAILED,
		    "job timeout: no worker connected to run it for %.1f s (--job-timeout %g); "
		    "%u of %u tasks were done",
		    (double)(now - from) / 1000.0, (double)j->job_timeout_ms / 1000.0, j->done,
		    j->ntasks);
	}
}

/* True if an unfinished job would run tasks if a worker could take them. */
static bool job_wants_workers(const struct job *j)
{
	return j->state == SHOAL__JOB_STATE__JOB_QUEUED ||
	       j->state == SHOAL__JOB_STATE__JOB_RUNNING;
}

void jobs_sweep_stalled(struct master *m)
{
	uint64_t now = uv_now(m->loop);
	bool stalled = m->nworkers == 0 && now - m->no_workers_since_ms >= STALL_NOTICE_MS;
	if (stalled == m->stalled)
		return;
	m->stalled = stalled;
	uint32_t waiting = 0;
	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];
		if (j && job_wants_workers(j)) {
			waiting++;
			watch_job_changed(j);
		}
	}
	if (!stalled) {
		m->stall_reason[0] = '\0';
		if (waiting)
			log_info("jobs", "event=unstalled workers=%u jobs_waiting=%u", m->nworkers,
			         waiting);
		return;
	}
	char when[32];
	time_t secs = (time_t)(m->no_workers_since_wall_ms / 1000);
	struct tm tm;
	gmtime_r(&secs, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(m->stall_reason, sizeof(m->stall_reason), "no worker has been connected since %s",
	         when);
	if (waiting)
		log_warn(
		    "jobs",
		    "event=stalled jobs_waiting=%u reason=\"%s\" (start workers; jobs wait for "
		    "them unless submitted with --job-timeout)",
		    waiting, m->stall_reason);
}

void jobs_drop_backup(struct task *t)
{
	backup_release(t, false);
}

void jobs_requeue(struct task *t)
{
	struct job *j = t->job;
	if (t->state != TASK_ASSIGNED)
		return;
	task_release(t);
	if (t->backup) {
		backup_promote(t); /* the copy carries on: nothing to run again */
		return;
	}
	spill_drop_pieces(&t->segs);
	t->state = TASK_READY;
	list_push_front(&j->ready, &t->link);
	queue_job(j->m, j);
}

void jobs_fail(struct job *j, Shoal__JobState state, const char *fmt, ...)
{
	if (jobs_finished(j))
		return;
	char reason[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	free(j->error);
	j->error = xstrdup(reason);
	j->state = state;
	j->finished_ms = wall_ms();
	for (uint32_t i = 0; i < j->ntasks; i++) {
		struct task *t = &j->tasks[i];
		if (t->state == TASK_ASSIGNED) {
			cancel_on_worker(t);
			task_release(t);
			backup_release(t, true);
		}
		list_unlink(&t->link);
		t->state = TASK_DONE;
	}
	policy_remove(&j->m->queue, &j->qentry);
	log_info("jobs", "job=%llu event=%s reason=\"%s\"", (unsigned long long)j->id,
	         jobs_state_name(state), reason);
	upload_destroy(j);
	spill_destroy(j);
	job_free_tasks(j); /* ntasks stays for display; nothing indexes tasks of an ended job */
	persist_job_ended(j);
	watch_job_changed(j);
	deps_release(j->m);
	sched_kick(j->m);
	persist_prune(j->m);
}

void jobs_succeed(struct job *j, uint64_t result_size)
{
	j->state = SHOAL__JOB_STATE__JOB_SUCCEEDED;
	j->finished_ms = wall_ms();
	j->result_size = result_size;
	log_info("jobs", "job=%llu event=succeeded tasks=%u records=%llu result_bytes=%llu ms=%llu",
	         (unsigned long long)j->id, j->ntasks, (unsigned long long)j->records,
	         (unsigned long long)result_size,
	         (unsigned long long)(j->finished_ms - j->submitted_ms));
	upload_destroy(j);
	persist_job_ended(j); /* before the tasks go: a CONCAT result is read through them */
	/* Only CONCAT results are read back through the tasks (their place in the spill). */
	if (j->op->combine != OP_COMBINE_CONCAT)
		job_free_tasks(j);
	watch_job_changed(j);
	deps_release(j->m);
	persist_prune(j->m);
}

static void on_task_failed(struct job *j, struct task *t, struct worker *w, const char *error,
                           bool permanent)
{
	t->failures++;
	j->task_failures++;
	w->tasks_failed++;
	j->m->stats.tasks_failed++;
	/* A worker that fails attempt after attempt (a broken host, a full disk) would otherwise
	 * eat the whole queue: it gets no new work for a while. Data errors do not count. */
	/* Quarantine helps only if someone else can take the work: with every other worker gone
	 * or quarantined, the failures are more likely the job's than this worker's. */
	if (!permanent && ++w->failed_in_a_row >= QUARANTINE_AFTER && registry_other_usable(w)) {
		w->quarantined_until = uv_now(j->m->loop) + QUARANTINE_MS;
		w->failed_in_a_row = 0;
		log_warn("jobs",
		         "worker=%llu name=%s event=quarantined failures_in_a_row=%u for_ms=%u",
		         (unsigned long long)w->id, w->name, QUARANTINE_AFTER, QUARANTINE_MS);
	}
	log_warn("jobs",
	         "job=%llu task=%u attempt=%u worker=%llu event=task_failed failures=%u "
	         "error=\"%s\"",
	         (unsigned long long)j->id, t->id, t->attempt, (unsigned long long)w->id,
	         t->failures, error);
	if (permanent || t->failures >= j->retries) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "task %u failed%s: %s", t->id,
		          permanent ? "" : " on every attempt", error);
		return;
	}
	task_release(t);
	t->avoid_worker = w->id; /* the retry goes elsewhere if another worker can take it */
	if (t->backup) {
		backup_promote(t); /* the speculative copy may still succeed */
	} else {
		spill_drop_pieces(&t->segs);
		t->state = TASK_READY;
		list_push_front(&j->ready, &t->link);
		queue_job(j->m, j);
	}
	watch_job_changed(j);
}

/* A map task of a reduce job reports how its output splits into the reducers' buckets. */
static int check_buckets(const struct job *j, struct task *t, const Shoal__TaskResult *r,
                         size_t final_len, char *err, size_t errlen)
{
	if (r->n_buckets != j->reducers)
		return errorf(err, errlen, "map task %u reported %zu buckets for %u reducers",
		              t->id, r->n_buckets, j->reducers);
	uint64_t total = final_len, sum = 0;
	if (t->segs)
		for (uint32_t i = 0; i < t->segs->n; i++)
			total += t->segs->len[i];
	for (size_t b = 0; b < r->n_buckets; b++) {
		if (r->buckets[b] > total - sum)
			return errorf(err, errlen, "map task %u: bucket sizes exceed its output",
			              t->id);
		sum += r->buckets[b];
	}
	if (sum != total)
		return errorf(err, errlen,
		              "map task %u: bucket sizes (%llu) differ from its output "
		              "(%llu bytes)",
		              t->id, (unsigned long long)sum, (unsigned long long)total);
	free(t->buckets);
	t->buckets = xmalloc(r->n_buckets * sizeof(*t->buckets));
	memcpy(t->buckets, r->buckets, r->n_buckets * sizeof(*t->buckets));
	return 0;
}

void jobs_on_output(struct worker *w, const Shoal__TaskOutput *out)
{
	struct job *j = jobs_find(w->m, out->job_id);
	if (!j || jobs_finished(j) || !j->tasks || out->task_id >= j->ntasks)
		return;
	struct task *t = &j->tasks[out->task_id];
	if (t->state != TASK_ASSIGNED)
		return;
	/* Each copy of a task keeps its own pieces until one of them wins. */
	struct task_segs **segs;
	if (t->worker == w && t->attempt == out->attempt)
		segs = &t->segs;
	else if (t->backup == w && t->backup_attempt == out->attempt)
		segs = &t->backup_segs;
	else
		return; /* a stale attempt's output */
	if (j->op->combine != OP_COMBINE_CONCAT) {
		if (segs == &t->segs)
			on_task_failed(j, t, w,
			               "output arrived in pieces for an op that cannot take them",
			               false);
		return;
	}
	spill_add_piece(j, segs, out->data.data, out->data.len);
	if (spill_backlogged(w->m))
		registry_pause(w);
}

static void on_result(struct worker *w, const Shoal__TaskResult *r)
{
	struct master *m = w->m;
	struct job *j = jobs_find(m, r->job_id);
	if (!j || jobs_finished(j) || r->task_id >= j->ntasks) {
		log_debug("jobs",
		          "worker=%llu job=%llu task=%u event=result_dropped why=no_such_task",
		          (unsigned long long)w->id, (unsigned long long)r->job_id, r->task_id);
		return;
	}
	struct task *t = &j->tasks[r->task_id];
	if (t->state == TASK_ASSIGNED && t->backup == w && t->backup_attempt == r->attempt) {
		if (!r->ok) {
			/* The copy failed; the primary is still running. */
			log_info("jobs",
			         "job=%llu task=%u worker=%llu event=backup_failed error=\"%s\"",
			         (unsigned long long)j->id, t->id, (unsigned long long)w->id,
			         r->error ? r->error : "");
			backup_release(t, false);
			return;
		}
		/* The copy won: the primary is cancelled and the copy's result is the task's. */
		log_info("jobs", "job=%llu task=%u worker=%llu event=backup_won",
		         (unsigned long long)j->id, t->id, (unsigned long long)w->id);
		cancel_on_worker(t);
		task_release(t);
		backup_promote(t);
	}
	if (t->state != TASK_ASSIGNED || t->worker != w || t->attempt != r->attempt) {
		log_debug("jobs",
		          "worker=%llu job=%llu task=%u attempt=%u event=result_dropped "
		          "why=stale",
		          (unsigned long long)w->id, (unsigned long long)j->id, t->id, r->attempt);
		return;
	}
	if (r->has_elapsed_us) {
		w->ewma_task_us = balance_ewma(w->ewma_task_us, (double)r->elapsed_us + 1.0);
		if (r->ok) {
			stats_task_done(j->m, r->elapsed_us);
			j->dur_ms[j->dur_next] = (uint32_t)(r->elapsed_us / 1000);
			j->dur_next = (j->dur_next + 1) % (uint32_t)ARRAY_SIZE(j->dur_ms);
			if (j->ndur < ARRAY_SIZE(j->dur_ms))
				j->ndur++;
		}
	}
	if (!r->ok) {
		on_task_failed(j, t, w, r->error ? r->error : "no reason given",
		               r->has_permanent && r->permanent);
		return;
	}
	char err[512];
	const uint8_t *data = r->has_data ? r->data.data : (const uint8_t *)"";
	size_t len = r->has_data ? r->data.len : 0;
	if (j->reducers && !j->reducing && check_buckets(j, t, r, len, err, sizeof(err)) < 0) {
		on_task_failed(j, t, w, err, false);
		return;
	}
	int rc = spill_add(j, t, data, len, err, sizeof(err));
	if (rc < 0) {
		/* A malformed partial is the worker's fault (try elsewhere); an overflow of the
		 * exact result is the data's (no retry can help). */
		on_task_failed(j, t, w, err, rc == OP_FOLD_OVERFLOW);
		return;
	}
	if (spill_backlogged(m))
		registry_pause(w);
	task_release(t);
	backup_release(t, true); /* the loser is cancelled; its result will be dropped */
	t->state = TASK_DONE;
	t->records = r->has_records ? r->records : 0;
	w->tasks_done++;
	w->failed_in_a_row = 0;
	j->done++;
	j->records += t->records;
	/* A fold's partial is journaled as it is; a spilled one once its bytes are on disk
	 * (spill.c). */
	if (j->op->combine == OP_COMBINE_FOLD)
		persist_task(j, t, data, len);
	if (j->done == j->ntasks)
		spill_finish(j);
	else
		watch_job_changed(j);
}

void jobs_on_results(struct worker *w, const Shoal__ResultBatch *rb)
{
	for (size_t i = 0; i < rb->n_started; i++)
		on_started(w, rb->started[i]);
	for (size_t i = 0; i < rb->n_results; i++)
		on_result(w, rb->results[i]);
	sched_kick(w->m);
}

void jobs_on_cancel(struct master *m, struct client *cl, uint64_t job_id)
{
	struct job *j = jobs_find(m, job_id);
	if (!j) {
		server_send_failure(cl->conn, job_id, 1, "no job %llu", (unsigned long long)job_id);
		return;
	}
	if (!jobs_finished(j))
		jobs_fail(j, SHOAL__JOB_STATE__JOB_CANCELLED, "cancelled by a client (%s)",
		          conn_peer(cl->conn));
	watch_send_update(cl->conn, j);
}

/* 1-based rank of a queued job under the queue policy. O(queued jobs): for display only. */
static uint32_t queue_position(const struct job *j)
{
	const struct policy_queue *q = &j->m->queue;
	uint32_t pos = 1;
	for (size_t i = 0; i < q->n; i++)
		if (q->heap[i] != &j->qentry && policy_before(q->heap[i], &j->qentry))
			pos++;
	return pos;
}

void jobs_fill_info(const struct job *j, Shoal__JobInfo *info)
{
	shoal__job_info__init(info);
	info->job_id = j->id;
	info->state = j->state;
	info->op = (char *)(j->plugin ? "plugin" : j->op->name);
	info->name = j->name;
	info->has_tasks_total = info->has_tasks_done = info->has_tasks_running = true;
	/* A reduce job counts its map and reduce tasks as one sequence. */
	info->tasks_total = j->reducing ? j->map_tasks + j->ntasks : j->ntasks + j->reducers;
	info->tasks_done = j->reducing ? j->map_tasks + j->done : j->done;
	info->tasks_running = j->running;
	info->has_task_failures = true;
	info->task_failures = j->task_failures;
	info->has_result_size = j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED;
	info->result_size = j->result_size;
	info->error = j->error;
	info->has_strategy = true;
	info->strategy = j->strategy;
	info->has_priority = true;
	info->priority = j->priority;
	info->has_submitted_ms = true;
	info->submitted_ms = j->submitted_ms;
	info->has_started_ms = j->started_ms != 0;
	info->started_ms = j->started_ms;
	info->has_finished_ms = j->finished_ms != 0;
	info->finished_ms = j->finished_ms;
	info->has_input_bytes = true;
	info->input_bytes =
	    j->state == SHOAL__JOB_STATE__JOB_UPLOADING ? upload_bytes(j) : j->input_bytes;
	info->has_records = true;
	info->records = j->records;
	info->has_cost = true;
	info->cost = j->cost;
	info->has_after = j->after || j->input_job;
	info->after = j->after ? j->after : j->input_job;
	info->has_partitions_recovered = true;
	info->partitions_recovered = j->recovered;
	info->has_tasks_dispatched = true;
	info->tasks_dispatched = j->dispatched;
	if (policy_queued(&j->qentry)) {
		info->has_queue_position = true;
		info->queue_position = queue_position(j);
	}
	if (j->m->stalled && job_wants_workers(j)) {
		info->stalled = (char *)j->m->stall_reason;
		info->has_stalled_since_ms = true;
		info->stalled_since_ms = j->m->no_workers_since_wall_ms;
	}
}

void jobs_list(struct master *m, struct conn *c)
{
	size_t first = m->njobs > MAX_LISTED_JOBS ? m->njobs - MAX_LISTED_JOBS : 0;
	size_t cap = m->njobs - first, n = 0;
	Shoal__JobInfo *infos = xcalloc(cap ? cap : 1, sizeof(*infos));
	Shoal__JobInfo **ptrs = xcalloc(cap ? cap : 1, sizeof(*ptrs));
	for (size_t i = first; i < m->njobs; i++) {
		if (!m->jobs[i])
			continue; /* pruned by the retention limit */
		jobs_fill_info(m->jobs[i], &infos[n]);
		ptrs[n] = &infos[n];
		n++;
	}
	Shoal__JobList jl = SHOAL__JOB_LIST__INIT;
	jl.n_jobs = n;
	jl.jobs = ptrs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_JOB_LIST;
	env.job_list = &jl;
	conn_send(c, &env);
	free(ptrs);
	free(infos);
}

void jobs_destroy(struct job *j)
{
	struct master *m = j->m;
	upload_destroy(j);
	spill_destroy(j);
	job_free_tasks(j);
	for (size_t k = 0; k < j->nargs; k++) {
		free(j->args[k]->key);
		free(j->args[k]->value);
		free(j->args[k]);
	}
	free(j->args);
	free(j->name);
	free(j->exec);
	free(j->reduce_exec);
	for (size_t k = 0; k < j->nfiles; k++)
		fileref_free(j->files[k]);
	free(j->files);
	fileref_free(j->broadcast);
	fileref_free(j->plugin);
	free(j->path);
	free(j->error);
	free(j->dir);
	free(j->watchers);
	free(j->spec_packed);
	recover_forget(j);
	buf_free(&j->result_mem);
	for (size_t i = 0; i < m->ntimed; i++) {
		if (m->timed[i] == j) { /* an ended job the timeout sweep has not dropped yet */
			m->timed[i] = m->timed[--m->ntimed];
			break;
		}
	}
	m->jobs[j->id - 1] = NULL;
	free(j);
}

void jobs_destroy_all(struct master *m)
{
	for (size_t i = 0; i < m->njobs; i++)
		if (m->jobs[i])
			jobs_destroy(m->jobs[i]);
	free(m->jobs);
	free(m->ring);
	free(m->visited);
	free(m->dirty);
	free(m->orphans);
	m->orphans = NULL;
	m->norphans = m->orphans_cap = 0;
	free(m->timed);
	m->timed = NULL;
	m->ntimed = m->timed_cap = 0;
	locks_destroy_all(m);
	free(m->waiting);
	policy_queue_deinit(&m->queue);
	m->jobs = NULL;
	m->njobs = 0;
}
