/* reduce.c: the shuffle between the map and reduce stages of an --exec/--reduce-exec job.
 *
 * Every map task returned its output split into `reducers` buckets, each sorted (so equal keys
 * are adjacent). Reducer b's input is the k-way merge of bucket b of every map output: merged
 * on the thread pool into one file, reducer after reducer, so each reducer sees its keys
 * grouped and sorted. The reduce tasks then read their byte range of that file like uploaded
 * partitions.
 *
 * Restarts: map partitions are journaled as they finish (with their bucket sizes), so a
 * restarted master runs only the missing ones and shuffles again. Once the grouped file
 * (STATE/jobs/ID/reduce-input) is written, one commit fsyncs it and records the reduce stage
 * with the reducers' cut points in place of the map partitions; from then on a restart resumes
 * the reduce stage (finished reducers are journaled like any partition) and the map stage's
 * files are removed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "merge.h"
#include "util.h"

struct reduce_work {
	uv_work_t work;
	struct master *m;
	uint64_t job_id;
	int in_fd; /* a dup of the spill file: the job may end while we read */
	int out_fd;
	char *out_path;
	char *tmpdir;
	uint32_t reducers;
	struct merge_run *runs;
	size_t nruns, runs_cap;
	size_t *first_run; /* reducers + 1 entries: runs of bucket b are [first_run[b],
	                      first_run[b+1]) */
	uint64_t *parts;   /* (offset, length) of each reducer's input */
	int rc;
	char err[512];
};

static void add_run(void *arg, uint64_t off, uint64_t len)
{
	struct reduce_work *rw = arg;
	if (!len)
		return;
	if (rw->nruns == rw->runs_cap) {
		rw->runs_cap = rw->runs_cap ? rw->runs_cap * 2 : 64;
		rw->runs = xrealloc(rw->runs, rw->runs_cap * sizeof(*rw->runs));
	}
	rw->runs[rw->nruns++] = (struct merge_run){rw->in_fd, off, len};
}

static void reduce_work(uv_work_t *w)
{
	struct reduce_work *rw = w->data;
	uint64_t at = 0;
	for (uint32_t b = 0; b < rw->reducers; b++) {
		uint64_t bytes = 0;
		size_t first = rw->first_run[b];
		size_t n = rw->first_run[b + 1] - first;
		if (n && merge_runs_grouped(rw->runs + first, n, rw->out_fd, rw->tmpdir, &bytes,
		                            rw->err, sizeof(rw->err)) < 0) {
			rw->rc = -1;
			return;
		}
		rw->parts[2 * b] = at;
		rw->parts[2 * b + 1] = bytes;
		at += bytes;
	}
	rw->rc = 0;
}

static void reduce_free(struct reduce_work *rw)
{
	if (rw->in_fd >= 0)
		close(rw->in_fd);
	if (rw->out_fd >= 0) {
		close(rw->out_fd);
		unlink(rw->out_path);
	}
	free(rw->out_path);
	free(rw->tmpdir);
	free(rw->runs);
	free(rw->first_run);
	free(rw->parts);
	free(rw);
}

static void reduce_done(uv_work_t *w, int status)
{
	struct reduce_work *rw = w->data;
	struct job *j = jobs_find(rw->m, rw->job_id);
	if (!j || jobs_finished(j)) {
		reduce_free(rw);
		return;
	}
	if (status < 0 || rw->rc < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "grouping the map output failed: %s",
		          status < 0 ? uv_strerror(status) : rw->err);
		reduce_free(rw);
		return;
	}
	/* A reducer's input travels in one message with its task. */
	uint64_t limit = rw->m->cfg.max_frame - 65536;
	for (uint32_t b = 0; b < rw->reducers; b++) {
		if (rw->parts[2 * b + 1] > limit) {
			jobs_fail(
			    j, SHOAL__JOB_STATE__JOB_FAILED,
			    "reducer %u's input is %llu bytes, more than the %llu a message may "
			    "carry; use more --reducers",
			    b, (unsigned long long)rw->parts[2 * b + 1], (unsigned long long)limit);
			reduce_free(rw);
			return;
		}
	}
	/* The map outputs are merged: the reducers' outputs go to a spill file of their own, and
	 * their input is the grouped file. The map stage's spill and input stay (held) until the
	 * journal says the reduce stage has started: a restart before that shuffles again. */
	char err[512];
	void *map_spill = NULL, *map_input = NULL;
	if (spill_hold(j, &map_spill) < 0)
		map_spill = NULL;
	if (upload_hold(j, &map_input) < 0)
		map_input = NULL;
	spill_destroy(j);
	j->reducing = true; /* from here on the job's files are the reduce stage's */
	if (spill_start(j, err, sizeof(err)) < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "%s", err);
		if (map_spill)
			spill_release(map_spill);
		if (map_input)
			upload_release(map_input);
		reduce_free(rw);
		return;
	}
	upload_adopt_file(j, rw->out_fd, rw->out_path);
	rw->out_fd = -1;
	jobs_start_stage(j, rw->reducers, rw->parts);
	persist_reduce_stage(j, map_spill, map_input);
	reduce_free(rw);
}

void reduce_start(struct job *j)
{
	struct reduce_work *rw = xcalloc(1, sizeof(*rw));
	rw->m = j->m;
	rw->job_id = j->id;
	rw->reducers = j->reducers;
	rw->in_fd = dup(spill_fd(j));
	char path[4096];
	snprintf(path, sizeof(path), "%s/reduce-input", j->dir);
	rw->out_path = xstrdup(path);
	rw->out_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (rw->in_fd < 0 || rw->out_fd < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
		          "cannot prepare the reduce stage in %s: %s", j->dir, strerror(errno));
		reduce_free(rw);
		return;
	}
	rw->tmpdir = xstrdup(j->dir);
	rw->first_run = xcalloc(rw->reducers + 1, sizeof(*rw->first_run));
	rw->parts = xcalloc(2 * (size_t)rw->reducers, sizeof(*rw->parts));
	struct spill_piece_fn fn = {add_run, rw};
	/* from[i]: where bucket b starts in map task i's output. */
	uint64_t *from = xcalloc(j->ntasks ? j->ntasks : 1, sizeof(*from));
	for (uint32_t b = 0; b < rw->reducers; b++) {
		rw->first_run[b] = rw->nruns;
		for (uint32_t i = 0; i < j->ntasks; i++) {
			const struct task *t = &j->tasks[i];
			spill_pieces(t, from[i], t->buckets[b], &fn);
			from[i] += t->buckets[b];
		}
	}
	free(from);
	rw->first_run[rw->reducers] = rw->nruns;
	log_info("jobs", "job=%llu event=shuffle map_tasks=%u reducers=%u runs=%zu",
	         (unsigned long long)j->id, j->ntasks, rw->reducers, rw->nruns);
	rw->work.data = rw;
	int rc = uv_queue_work(j->m->loop, &rw->work, reduce_work, reduce_done);
	if (rc < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot start the reduce stage: %s",
		          uv_strerror(rc));
		reduce_free(rw);
	}
}
