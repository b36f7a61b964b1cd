/* recover.c: rebuilding the job table from the journal when the master starts.
 *
 * Every job the journal holds comes back under its id:
 *   - ended jobs keep their state, error and result (a fold's line from the journal, a merged
 *     or combined result file, or a concatenated result read through its partitions' places
 *     in the spill file), so `shoal result` works across a restart;
 *   - queued and running jobs resume: partitions the journal holds are DONE (a fold's partial
 *     is folded again, a spilled one keeps its place in the spill file) and the rest run;
 *   - a job whose input upload had not finished keeps the durable part of its spool (the
 *     length its row records) and waits for its client to resume the upload from there
 *     (upload.c), for --upload-resume-timeout;
 *   - a reduce job (--reduce-exec) resumes the stage it was in. In its map stage, map
 *     partitions the journal holds (with their bucket sizes) are DONE, the rest run, and the
 *     shuffle runs again once all are in. In its reduce stage (journaled once the grouped map
 *     output, STATE/jobs/ID/reduce-input, was fsynced), no map partition runs again (they
 *     count as recovered): the reducers read their journaled ranges of that file and those
 *     the journal holds are DONE. A restart during the shuffle resumes the map stage with
 *     every partition done, so it only shuffles again;
 *   - a job whose partitions were all in but whose final merge (sort, wordcount, ...) had not
 *     finished merges again from its spill file;
 *   - a chained job (--input job:ID) whose input was not copied yet copies it again.
 * Task attempts start from 1 again: results of attempts from before the restart cannot
 * arrive, because workers drop their tasks when the connection to the master goes. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "master.h"
#include "util.h"

/* A journaled finished partition of a job whose tasks do not exist yet (an upload job's
 * tasks are cut in jobs_make_runnable). */
struct saved_task {
	uint32_t task;
	uint64_t records, out_off, out_len;
	uint64_t *seg_off, *seg_len;
	uint32_t nsegs;
	uint64_t *buckets;
	uint32_t nbuckets;
	uint8_t *partial;
	size_t partial_len;
	bool has_partial;
};

struct saved_tasks {
	struct saved_task *v;
	size_t n, cap;
};

struct recover {
	struct master *m;
	struct job *cur;     /* the job whose tasks are being read */
	bool cur_resumes;    /* cur is queued or running */
	struct job **resume; /* jobs to start once everything is read */
	size_t nresume, resume_cap;
	uint64_t partitions; /* finished partitions found */
	uint32_t ended;
	char *err;
	size_t errlen;
};

static void saved_free(struct saved_tasks *st)
{
	if (!st)
		return;
	for (size_t i = 0; i < st->n; i++) {
		free(st->v[i].seg_off);
		free(st->v[i].seg_len);
		free(st->v[i].buckets);
		free(st->v[i].partial);
	}
	free(st->v);
	free(st);
}

static uint64_t *dup_u64s(const uint64_t *v, uint32_t n)
{
	if (!v || !n)
		return NULL;
	uint64_t *c = xmalloc(n * sizeof(*c));
	memcpy(c, v, n * sizeof(*c));
	return c;
}

/* Where a spilled partition's bytes are. */
static void place(struct task *t, const struct saved_task *s)
{
	t->out_off = s->out_off;
	t->out_len = s->out_len;
	if (s->nsegs) {
		struct task_segs *g = xcalloc(1, sizeof(*g));
		g->n = g->cap = s->nsegs;
		g->off = dup_u64s(s->seg_off, s->nsegs);
		g->len = dup_u64s(s->seg_len, s->nsegs);
		spill_drop_pieces(&t->segs);
		t->segs = g;
	}
	if (s->nbuckets) {
		free(t->buckets);
		t->buckets = dup_u64s(s->buckets, s->nbuckets);
	}
	t->state = TASK_DONE;
	t->records = s->records;
}

/* A map partition of a reduce job: one bucket size per reducer, adding up to its output (the
 * shuffle reads its buckets by these sizes). */
static bool buckets_fit(const struct job *j, const struct saved_task *s)
{
	if (s->nbuckets != j->reducers)
		return false;
	uint64_t out = s->out_len, sum = 0;
	if (s->nsegs) {
		out = 0;
		for (uint32_t i = 0; i < s->nsegs; i++)
			out += s->seg_len[i];
	}
	for (uint32_t b = 0; b < s->nbuckets; b++) {
		if (s->buckets[b] > out - sum)
			return false;
		sum += s->buckets[b];
	}
	return sum == out;
}

/* Marks task t DONE from a journaled partition. False if the partition does not fit (a fold
 * partial that no longer folds): the task then simply runs again. */
static bool apply(struct job *j, struct task *t, const struct saved_task *s)
{
	if (t->state == TASK_DONE)
		return true;
	if (j->reducers && !j->reducing && !buckets_fit(j, s)) {
		log_warn("recover",
		         "job=%llu task=%u event=partial_dropped why=\"its bucket sizes "
		         "do not match its output and %u reducers\"",
		         (unsigned long long)j->id, t->id, j->reducers);
		return false;
	}
	if (j->op->combine == OP_COMBINE_FOLD) {
		char err[256];
		if (!s->has_partial ||
		    spill_add(j, t, s->partial ? s->partial : (const uint8_t *)"", s->partial_len,
		              err, sizeof(err)) < 0) {
			log_warn("recover", "job=%llu task=%u event=partial_dropped why=\"%s\"",
			         (unsigned long long)j->id, t->id,
			         s->has_partial ? err : "no partial journaled");
			return false;
		}
	}
	list_unlink(&t->link);
	place(t, s);
	j->done++;
	j->records += s->records;
	j->recovered++;
	return true;
}

void recover_forget(struct job *j)
{
	saved_free(j->saved);
	j->saved = NULL;
}

void recover_apply_tasks(struct job *j)
{
	struct saved_tasks *st = j->saved;
	if (!st)
		return;
	j->saved = NULL;
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i].task < j->ntasks)
			apply(j, &j->tasks[st->v[i].task], &st->v[i]);
	saved_free(st);
}

static void fail_resumed(struct job *j, const char *why)
{
	free(j->error);
	j->error = xstrdup(why);
	j->state = SHOAL__JOB_STATE__JOB_FAILED;
	j->finished_ms = wall_ms();
	log_warn("recover", "job=%llu event=failed reason=\"%s\"", (unsigned long long)j->id, why);
}

/* A reduce job in its reduce stage: the reducers read their journaled byte ranges of the
 * grouped map output. The map stage's files go, if the master stopped before removing them. */
static int resume_reduce_stage(struct job *j, const struct journal_job *r, char *why, size_t whylen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/spill", j->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/input", j->dir);
	unlink(path);
	if (!r->parts || r->nparts != j->reducers)
		return errorf(why, whylen,
		              "its journal row has %u reducer inputs for %u reducers (damaged)",
		              r->parts ? r->nparts : 0, j->reducers);
	snprintf(path, sizeof(path), "%s/reduce-input", j->dir);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		errorf(why, whylen, "its grouped map output %s is gone (%s)", path,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	uint64_t end = 0;
	for (uint32_t i = 0; i < r->nparts; i++)
		if (r->parts[2 * (size_t)i] + r->parts[2 * (size_t)i + 1] > end)
			end = r->parts[2 * (size_t)i] + r->parts[2 * (size_t)i + 1];
	if ((uint64_t)st.st_size < end) {
		close(fd);
		return errorf(why, whylen,
		              "its grouped map output %s is shorter (%llu bytes) than journaled "
		              "(%llu)",
		              path, (unsigned long long)st.st_size, (unsigned long long)end);
	}
	j->input = INPUT_UPLOAD;
	upload_adopt_file(j, fd, path);
	jobs_create_tasks(j, r->nparts, r->parts);
	j->recovered = j->map_tasks; /* every map partition is in that file: none runs again */
	return 0;
}

static int on_job(void *arg, const struct journal_job *r)
{
	struct recover *rc = arg;
	struct master *m = rc->m;
	rc->cur = NULL;
	Shoal__JobSpec *spec = shoal__job_spec__unpack(NULL, r->spec_len, r->spec);
	if (!spec || r->id == 0) {
		errorf(
		    rc->err, rc->errlen,
		    "journal %s/journal.db: job %llu cannot be read back (its spec does not "
		    "decode); the journal is damaged: move it aside (the master then starts with "
		    "no jobs) or restore it from a backup",
		    m->cfg.state_dir, (unsigned long long)r->id);
		if (spec)
			shoal__job_spec__free_unpacked(spec, NULL);
		return -1;
	}
	const struct op_desc *op = jobs_op_for(spec);
	if (!op) {
		errorf(rc->err, rc->errlen,
		       "journal %s/journal.db: job %llu runs op '%s', which this shoal-master "
		       "does not know; run the version that wrote it, or move the journal aside",
		       m->cfg.state_dir, (unsigned long long)r->id, spec->op);
		shoal__job_spec__free_unpacked(spec, NULL);
		return -1;
	}
	struct job *j = jobs_new(m, spec, op, r->id);
	j->part_size = r->part_size;
	j->after = spec->has_after ? spec->after : 0;
	j->input_job = spec->input_case == SHOAL__JOB_SPEC__INPUT_JOB ? spec->job : 0;
	j->req_partitions = spec->has_partitions ? spec->partitions : 0;
	j->req_partition_size = spec->has_partition_size ? spec->partition_size : 0;
	j->submitted_ms = r->submitted_ms;
	j->started_ms = r->started_ms;
	j->finished_ms = r->finished_ms;
	j->state = (Shoal__JobState)r->state;
	j->error = r->error ? xstrdup(r->error) : NULL;
	j->input_bytes = r->input_bytes;
	j->task_failures = r->task_failures;
	j->result_size = r->result_size;
	j->result_in_file = r->result_file;
	j->reducing = r->reducing && j->reducers;
	j->map_tasks = r->map_tasks;
	switch (spec->input_case) {
	case SHOAL__JOB_SPEC__INPUT_RANGE:
		j->input = INPUT_RANGE;
		j->lo = spec->range->lo;
		j->hi = spec->range->hi;
		break;
	case SHOAL__JOB_SPEC__INPUT_PATH:
		j->input = INPUT_PATH;
		j->path = xstrdup(spec->path);
		break;
	default:
		j->input = INPUT_UPLOAD;
		break;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/%llu", m->jobs_dir, (unsigned long long)j->id);
	j->dir = xstrdup(dir);
	char why[5120];

	if (jobs_finished(j)) {
		rc->ended++;
		j->ntasks = r->ntasks;
		j->records = r->records;
		if (j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED)
			j->done = r->ntasks;
		if (j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED) {
			if (op->combine == OP_COMBINE_FOLD && !j->result_in_file)
				buf_append(&j->result_mem,
				           r->result ? r->result : (const uint8_t *)"",
				           r->result_len);
			if (spill_resume(j, true, why, sizeof(why)) < 0) {
				char msg[5300];
				snprintf(msg, sizeof(msg), "its result is lost: %s", why);
				fail_resumed(j, msg);
				persist_job(j);
			} else if (op->combine == OP_COMBINE_CONCAT && !j->result_in_file) {
				j->ntasks = 0;
				jobs_create_tasks(j, r->ntasks, NULL);
				rc->cur = j; /* its partitions say where the result is */
				rc->cur_resumes = false;
			}
		}
		shoal__job_spec__free_unpacked(spec, NULL);
		return 0;
	}

	/* Queued or running: resume. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, sizeof(why), "cannot create %s: %s", dir, strerror(errno));
		fail_resumed(j, why);
		persist_job_ended(j);
		shoal__job_spec__free_unpacked(spec, NULL);
		return 0;
	}
	j->state = SHOAL__JOB_STATE__JOB_QUEUED;
	if (spill_resume(j, false, why, sizeof(why)) < 0) {
		fail_resumed(j, why);
		persist_job_ended(j);
		shoal__job_spec__free_unpacked(spec, NULL);
		return 0;
	}
	bool ok = true;
	if (j->reducing) {
		if (resume_reduce_stage(j, r, why, sizeof(why)) < 0) {
			char msg[5300];
			snprintf(msg, sizeof(msg),
			         "the master restarted and %s; submit the job again", why);
			fail_resumed(j, msg);
			ok = false;
		}
	} else if (j->input == INPUT_RANGE || j->input == INPUT_PATH) {
		jobs_create_tasks(j, r->ntasks, NULL);
	} else if (r->parts) {
		if (upload_resume(j, r->parts, r->nparts, why, sizeof(why)) < 0) {
			char msg[5300];
			snprintf(msg, sizeof(msg),
			         "the master restarted and %s; submit the job again", why);
			fail_resumed(j, msg);
			ok = false;
		}
	} else if (spec->input_case == SHOAL__JOB_SPEC__INPUT_UPLOAD) {
		/* Still uploading: its row's input_bytes say how much of the spool is durable. */
		j->state = SHOAL__JOB_STATE__JOB_UPLOADING;
		uint64_t durable = r->state == SHOAL__JOB_STATE__JOB_UPLOADING ? r->input_bytes : 0;
		if (upload_reopen(j, spec, durable, why, sizeof(why)) < 0) {
			char msg[5300];
			snprintf(
			    msg, sizeof(msg),
			    "the master restarted during the upload and %s; submit the job again",
			    why);
			fail_resumed(j, msg);
			ok = false;
		} else {
			log_info("recover", "job=%llu event=upload_waits durable=%llu",
			         (unsigned long long)j->id, (unsigned long long)durable);
			shoal__job_spec__free_unpacked(spec, NULL);
			rc->cur = NULL; /* no partitions yet: the client sends the rest */
			return 0;
		}
	}
	shoal__job_spec__free_unpacked(spec, NULL);
	if (!ok) {
		upload_destroy(j);
		spill_destroy(j);
		persist_job_ended(j);
		return 0;
	}
	rc->cur = j;
	rc->cur_resumes = true;
	if (rc->nresume == rc->resume_cap) {
		rc->resume_cap = rc->resume_cap ? rc->resume_cap * 2 : 16;
		rc->resume = xrealloc(rc->resume, rc->resume_cap * sizeof(struct job *));
	}
	rc->resume[rc->nresume++] = j;
	return 0;
}

static int on_task(void *arg, const struct journal_task *t)
{
	struct recover *rc = arg;
	struct job *j = rc->cur;
	if (!j || j->id != t->job)
		return 0;
	struct saved_task s = {
	    .task = t->task,
	    .records = t->records,
	    .out_off = t->out_off,
	    .out_len = t->out_len,
	    .seg_off = (uint64_t *)t->seg_off,
	    .seg_len = (uint64_t *)t->seg_len,
	    .nsegs = t->nsegs,
	    .buckets = (uint64_t *)t->buckets,
	    .nbuckets = t->nbuckets,
	    .partial = (uint8_t *)t->partial,
	    .partial_len = t->partial_len,
	    .has_partial = t->partial != NULL,
	};
	rc->partitions++;
	if (!rc->cur_resumes) {
		/* An ended job's concatenated result: where each partition's bytes are. */
		if (t->task < j->ntasks)
			place(&j->tasks[t->task], &s);
		return 0;
	}
	if (j->tasks) {
		if (t->task < j->ntasks)
			apply(j, &j->tasks[t->task], &s);
		return 0;
	}
	/* Tasks are cut later: keep an owned copy. */
	struct saved_tasks *st = j->saved;
	if (!st)
		st = j->saved = xcalloc(1, sizeof(*st));
	if (st->n == st->cap) {
		st->cap = st->cap ? st->cap * 2 : 64;
		st->v = xrealloc(st->v, st->cap * sizeof(*st->v));
	}
	s.seg_off = dup_u64s(t->seg_off, t->nsegs);
	s.seg_len = dup_u64s(t->seg_len, t->nsegs);
	s.buckets = dup_u64s(t->buckets, t->nbuckets);
	s.partial = NULL;
	if (t->partial) {
		s.partial = xmalloc(t->partial_len ? t->partial_len : 1);
		memcpy(s.partial, t->partial, t->partial_len);
	}
	st->v[st->n++] = s;
	return 0;
}

/* An ended CONCAT job: each partition's place in the result. */
static void finish_concat(struct job *j)
{
	uint64_t off = 0;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		j->tasks[i].res_off = off;
		off += j->tasks[i].out_len;
	}
	j->done = j->ntasks;
}

int recover_jobs(struct master *m, struct journal *jn, char *err, size_t errlen)
{
	uint64_t t0 = mono_us();
	struct recover rc = {.m = m, .err = err, .errlen = errlen};
	struct journal_load_fn fn = {on_job, on_task, &rc};
	int ret = journal_load(jn, &fn, err, errlen);
	if (ret) {
		free(rc.resume);
		return -1;
	}
	for (size_t i = 0; i < m->njobs; i++) {
		struct job *j = m->jobs[i];
		if (j && j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED && j->tasks)
			finish_concat(j);
	}
	uint32_t resumed = 0;
	for (size_t i = 0; i < rc.nresume; i++) {
		struct job *j = rc.resume[i];
		if (jobs_finished(j))
			continue;
		resumed++;
		log_info("recover",
		         "job=%llu event=resumed stage=%s tasks=%u partitions_done=%u "
		         "records_done=%llu",
		         (unsigned long long)j->id,
		         j->reducing   ? "reduce"
		         : j->reducers ? "map"
		                       : "only",
		         j->ntasks, j->recovered, (unsigned long long)j->records);
		if (j->input == INPUT_UPLOAD && !j->upload)
			deps_check(j); /* a chained input not copied yet: copies once it may */
		else
			jobs_make_runnable(j);
	}
	free(rc.resume);
	log_info("recover",
	         "event=recovered jobs_resumed=%u jobs_ended=%u partitions_done=%llu ms=%.1f",
	         resumed, rc.ended, (unsigned long long)rc.partitions,
	         (double)(mono_us() - t0) / 1000.0);
	return 0;
}
