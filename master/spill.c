/* spill.c: partition results on their way to the job's result, folded or written to disk as
 * they arrive so the master never holds all of them at once.
 *
 *   FOLD    each partial is folded into a small accumulator at once (op_fold_add); the
 *           result is one line kept in memory.
 *   CONCAT  partials are appended to the job's spill file in arrival order; each task records
 *           where its bytes went. The result is the partials in partition order, read
 *           straight from the spill file when a client fetches it (no second copy).
 *   MERGE   partials (sorted runs) are appended the same way and, once all are in, merged on
 *           the thread pool into the job's result file.
 *
 * Writes go through the thread pool, batched: arriving bytes gather in `pending` while the
 * previous batch is written.
 *
 * Durability: a finished CONCAT/MERGE partition is handed to the journal (persist_task) only
 * once the spill file holds all its bytes; the journal fsyncs the spill file before it commits
 * the partition's row. Partitions waiting for that are in `durable` (completion order, so
 * their end offsets only grow); the journal's timer writes out a spill that has such waiters
 * even when its batch is not full. A reduce job's map and reduce stages each have a spill file
 * of their own (STATE/jobs/ID/spill, then reduce-spill), so that the map outputs stay until
 * the journal says the reduce stage has started. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "merge.h"
#include "master.h"
#include "util.h"

/* Start a write once this much has gathered (all of it is written at the end anyway). */
#define SPILL_WRITE_BATCH (1u << 20)
/* Bytes waiting for the disk, over all jobs, at which the master stops reading results from
 * workers, and at which it reads again: memory stays bounded when the disk is slower than
 * the network. */
#define SPILL_BACKLOG_HIGH (16u << 20)
#define SPILL_BACKLOG_LOW  (8u << 20)

struct spill {
	struct master *m;
	uint64_t job_id;
	struct op_fold *fold;
	uv_file fd;
	char *path;
	uint64_t size;    /* bytes appended */
	uint64_t flushed; /* bytes on disk */
	struct buf pending;
	struct buf inflight;
	uv_fs_t wreq;
	bool writing;
	bool finishing; /* every task is in: finish once flushed */
	uint32_t refs;  /* the job's reference plus requests in flight */
	bool dead;
	struct durable_wait {
		uint32_t task;
		uint64_t end;
	} * durable; /* finished partitions whose bytes are not all written yet */
	size_t ndurable, durable_head, durable_cap;

	/* MERGE */
	uv_work_t work;
	struct merge_run *runs;
	size_t nruns;
	bool sum_keys;
	int result_fd;
	char *result_path;
	char *tmpdir;
	uint64_t merged_bytes;
	int merge_rc;
	char merge_err[512];
};

static void spill_unref(struct spill *s)
{
	if (--s->refs > 0 || !s->dead)
		return;
	s->m->spill_backlog -= s->pending.len; /* never written: no longer waiting either */
	/* A master that exits keeps its files: the journal resumes from them. */
	bool keep = s->m->exiting;
	if (s->fd >= 0) {
		close(s->fd);
		if (!keep)
			unlink(s->path);
	}
	if (s->result_fd >= 0) {
		close(s->result_fd);
		if (!keep)
			unlink(s->result_path);
	}
	free(s->durable);
	if (s->fold)
		op_fold_destroy(&s->fold);
	free(s->path);
	free(s->result_path);
	free(s->tmpdir);
	free(s->runs);
	buf_free(&s->pending);
	buf_free(&s->inflight);
	free(s);
}

/* The job's spill file: the reduce stage of a reduce job has its own. */
static void spill_path(const struct job *j, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s", j->dir, j->reducing ? "reduce-spill" : "spill");
}

static struct spill *spill_new(struct job *j)
{
	struct spill *s = xcalloc(1, sizeof(*s));
	s->m = j->m;
	s->job_id = j->id;
	s->fd = -1;
	s->result_fd = -1;
	s->refs = 1;
	return s;
}

int spill_resume(struct job *j, bool finished, char *err, size_t errlen)
{
	struct spill *s = spill_new(j);
	char path[4096];
	if (j->op->combine == OP_COMBINE_FOLD && !finished) {
		s->fold = op_fold_create(j->op);
		j->spill = s;
		return 0;
	}
	if (finished && j->result_in_file) {
		snprintf(path, sizeof(path), "%s/result", j->dir);
		s->result_fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s->result_fd < 0) {
			free(s);
			return errorf(err, errlen, "cannot open the result file %s: %s", path,
			              strerror(errno));
		}
		s->result_path = xstrdup(path);
		j->spill = s;
		return 0;
	}
	if (j->op->combine == OP_COMBINE_FOLD) { /* a finished fold's result is in memory */
		j->spill = s;
		return 0;
	}
	spill_path(j, path, sizeof(path));
	/* Bytes past what the journal knows are an attempt's that did not count: new partials
	 * go after them. */
	s->fd = open(path, (finished ? O_RDONLY : O_RDWR | O_CREAT) | O_CLOEXEC, 0600);
	struct stat st;
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		errorf(err, errlen, "cannot open the spill file %s: %s", path, strerror(errno));
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return -1;
	}
	s->size = s->flushed = (uint64_t)st.st_size;
	s->path = xstrdup(path);
	s->tmpdir = xstrdup(j->dir);
	j->spill = s;
	return 0;
}

int spill_start(struct job *j, char *err, size_t errlen)
{
	struct spill *s = xcalloc(1, sizeof(*s));
	s->m = j->m;
	s->job_id = j->id;
	s->fd = -1;
	s->result_fd = -1;
	s->refs = 1;
	if (j->op->combine == OP_COMBINE_FOLD) {
		s->fold = op_fold_create(j->op);
	} else {
		char path[4096];
		spill_path(j, path, sizeof(path));
		/* One open per job on the local state dir; the data goes through the pool. */
		s->fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (s->fd < 0) {
			snprintf(err, errlen, "cannot create the spill file %s: %s", path,
			         strerror(errno));
			free(s);
			return -1;
		}
		s->path = xstrdup(path);
		s->tmpdir = xstrdup(j->dir);
	}
	j->spill = s;
	return 0;
}

static void finish_spilled(struct spill *s, struct job *j);
static void start_write(struct spill *s);

/* Partitions whose bytes are all written go to the journal (which fsyncs the file first). */
static void hand_durable(struct spill *s, struct job *j)
{
	while (s->durable_head < s->ndurable && s->durable[s->durable_head].end <= s->flushed) {
		uint32_t id = s->durable[s->durable_head++].task;
		if (!jobs_finished(j) && j->tasks && id < j->ntasks)
			persist_task(j, &j->tasks[id], NULL, 0);
	}
	if (s->durable_head == s->ndurable)
		s->durable_head = s->ndurable = 0;
}

static void wait_durable(struct spill *s, const struct task *t)
{
	if (s->ndurable == s->durable_cap) {
		if (s->durable_head) { /* reuse the consumed front */
			memmove(s->durable, s->durable + s->durable_head,
			        (s->ndurable - s->durable_head) * sizeof(*s->durable));
			s->ndurable -= s->durable_head;
			s->durable_head = 0;
		}
		if (s->ndurable == s->durable_cap) {
			s->durable_cap = s->durable_cap ? s->durable_cap * 2 : 64;
			s->durable = xrealloc(s->durable, s->durable_cap * sizeof(*s->durable));
		}
	}
	s->durable[s->ndurable].task = t->id;
	s->durable[s->ndurable].end = s->size;
	s->ndurable++;
}

void spill_flush(struct job *j)
{
	struct spill *s = j->spill;
	if (s && s->fd >= 0 && !s->writing && s->pending.len)
		start_write(s);
}

void spill_flush_sync(struct job *j)
{
	struct spill *s = j->spill;
	if (!s || s->fd < 0 || s->writing || jobs_finished(j))
		return;
	if (s->pending.len) {
		if (pwrite_all(s->fd, s->pending.data, s->pending.len, s->flushed) < 0)
			return; /* those partitions are simply not journaled: they run again */
		s->flushed += s->pending.len;
		s->m->spill_backlog -= s->pending.len;
		buf_reset(&s->pending);
	}
	hand_durable(s, j);
}

int spill_hold(struct job *j, void **obj)
{
	struct spill *s = j->spill;
	if (!s || s->fd < 0)
		return -1;
	s->refs++;
	*obj = s;
	return s->fd;
}

void spill_release(void *obj)
{
	spill_unref(obj);
}

static void on_written(uv_fs_t *req)
{
	struct spill *s = req->data;
	ssize_t res = req->result;
	uv_fs_req_cleanup(req);
	size_t want = s->inflight.len;
	buf_reset(&s->inflight);
	s->writing = false;
	s->m->spill_backlog -= want;
	if (s->m->spill_backlog <= SPILL_BACKLOG_LOW)
		registry_resume_all(s->m);
	struct job *j = s->dead ? NULL : jobs_find(s->m, s->job_id);
	if (j) {
		if (res < 0 || (size_t)res != want) {
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
			          "cannot write the spill file %s: %s%s", s->path,
			          res < 0 ? uv_strerror((int)res)
			                  : "no space left on device (short write)",
			          res == UV_ENOSPC || res >= 0
			              ? " (the state dir's disk is full: free space "
			                "there or give the master a larger --state-dir, "
			                "then submit the job again)"
			              : "");
		} else {
			s->flushed += want;
			hand_durable(s, j);
			if (s->pending.len >= SPILL_WRITE_BATCH || (s->finishing && s->pending.len))
				start_write(s);
			else if (s->finishing && s->flushed == s->size)
				finish_spilled(s, j);
		}
	}
	spill_unref(s);
}

static void start_write(struct spill *s)
{
	struct buf tmp = s->inflight;
	s->inflight = s->pending;
	s->pending = tmp;
	s->writing = true;
	s->refs++;
	s->wreq.data = s;
	uv_buf_t b = uv_buf_init((char *)s->inflight.data, (unsigned)s->inflight.len);
	int rc = uv_fs_write(s->m->loop, &s->wreq, s->fd, &b, 1, (int64_t)s->flushed, on_written);
	if (rc < 0) {
		s->wreq.result = rc;
		on_written(&s->wreq);
	}
}

static void append(struct spill *s, const uint8_t *data, size_t len);

int spill_add(struct job *j, struct task *t, const uint8_t *data, size_t len, char *err,
              size_t errlen)
{
	struct spill *s = j->spill;
	switch (j->op->combine) {
	case OP_COMBINE_FOLD:
		return op_fold_add(s->fold, data, len, err, errlen);
	case OP_COMBINE_MERGE:
		if (op_run_check(j->op, data, len, err, errlen) < 0)
			return -1;
		break;
	case OP_COMBINE_CONCAT:
		break;
	}
	if (t->segs) {
		spill_add_piece(j, &t->segs, data, len); /* the last piece */
		t->out_off = t->segs->off[0];
		t->out_len = 0;
		for (uint32_t i = 0; i < t->segs->n; i++)
			t->out_len += t->segs->len[i];
	} else {
		t->out_off = s->size;
		t->out_len = len;
		append(s, data, len);
	}
	wait_durable(s, t);
	persist_want_flush(j);
	return 0;
}

void spill_add_piece(struct job *j, struct task_segs **segs, const uint8_t *data, size_t len)
{
	struct spill *s = j->spill;
	struct task_segs *g = *segs;
	if (!g)
		g = *segs = xcalloc(1, sizeof(*g));
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 8;
		g->off = xrealloc(g->off, g->cap * sizeof(*g->off));
		g->len = xrealloc(g->len, g->cap * sizeof(*g->len));
	}
	g->off[g->n] = s->size;
	g->len[g->n] = len;
	g->n++;
	append(s, data, len);
}

void spill_drop_pieces(struct task_segs **segs)
{
	struct task_segs *g = *segs;
	if (!g)
		return;
	/* The bytes stay in the spill file, unreferenced: an abandoned attempt costs disk space
	 * until the job ends, never a wrong result. */
	free(g->off);
	free(g->len);
	free(g);
	*segs = NULL;
}

static void append(struct spill *s, const uint8_t *data, size_t len)
{
	buf_append(&s->pending, data, len);
	s->size += len;
	s->m->spill_backlog += len;
	/* Backlogged, every spill writes what it has, or workers paused on it would wait on a
	 * batch that never fills. */
	if (!s->writing && (s->pending.len >= SPILL_WRITE_BATCH || spill_backlogged(s->m)))
		start_write(s);
}

static void merge_work(uv_work_t *w)
{
	struct spill *s = w->data;
	s->merge_rc = merge_runs(s->runs, s->nruns, s->sum_keys, s->result_fd, s->tmpdir,
	                         &s->merged_bytes, s->merge_err, sizeof(s->merge_err));
	/* The journal is about to say the result exists. */
	if (s->merge_rc == 0 && fdatasync(s->result_fd) < 0) {
		s->merge_rc = -1;
		snprintf(s->merge_err, sizeof(s->merge_err), "syncing the result file: %s",
		         strerror(errno));
	}
}

static void merge_done(uv_work_t *w, int status)
{
	struct spill *s = w->data;
	struct job *j = s->dead ? NULL : jobs_find(s->m, s->job_id);
	if (j) {
		if (status < 0)
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "merge did not run: %s",
			          uv_strerror(status));
		else if (s->merge_rc < 0)
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
			          "merging the partitions failed: %s", s->merge_err);
		else
			jobs_succeed(j, s->merged_bytes);
	}
	free(s->runs);
	s->runs = NULL;
	spill_unref(s);
}

static void start_merge(struct spill *s, struct job *j)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/result", j->dir);
	s->result_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->result_fd < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot create %s: %s", path,
		          strerror(errno));
		return;
	}
	s->result_path = xstrdup(path);
	j->result_in_file = true;
	s->runs = xcalloc(j->ntasks ? j->ntasks : 1, sizeof(*s->runs));
	s->nruns = 0;
	uint64_t bytes = 0;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		if (!j->tasks[i].out_len)
			continue;
		s->runs[s->nruns].fd = s->fd;
		s->runs[s->nruns].offset = j->tasks[i].out_off;
		s->runs[s->nruns].length = j->tasks[i].out_len;
		s->nruns++;
		bytes += j->tasks[i].out_len;
	}
	s->sum_keys = j->op->sum_keys;
	log_info("spill", "job=%llu event=merge_started runs=%zu bytes=%llu",
	         (unsigned long long)j->id, s->nruns, (unsigned long long)bytes);
	s->work.data = s;
	s->refs++;
	int rc = uv_queue_work(s->m->loop, &s->work, merge_work, merge_done);
	if (rc < 0) {
		s->refs--;
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot start the merge: %s",
		          uv_strerror(rc));
	}
}

/* Every partial is on disk. */
static void finish_spilled(struct spill *s, struct job *j)
{
	/* Everything is on disk: the write buffers (tens of MiB after a big result) would
	 * otherwise stay with the job for the master's lifetime. */
	buf_free(&s->pending);
	buf_free(&s->inflight);
	/* Partitions with nothing left to write (an empty partial after the last write): to the
	 * journal before the next stage. */
	hand_durable(s, j);
	if (j->op->combine == OP_COMBINE_MERGE) {
		start_merge(s, j);
		return;
	}
	if (j->reducers && !j->reducing) {
		reduce_start(j);
		return;
	}
	uint64_t off = 0;
	for (uint32_t i = 0; i < j->ntasks; i++) {
		j->tasks[i].res_off = off;
		off += j->tasks[i].out_len;
	}
	if (j->plugin && j->m->cfg.allow_exec) {
		combine_start(j);
		return;
	}
	jobs_succeed(j, off);
}

void spill_finish(struct job *j)
{
	struct spill *s = j->spill;
	if (j->op->combine == OP_COMBINE_FOLD) {
		char err[512];
		buf_reset(&j->result_mem);
		if (op_fold_finish(s->fold, &j->result_mem, err, sizeof(err)) < 0)
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "%s", err);
		else
			jobs_succeed(j, j->result_mem.len);
		return;
	}
	s->finishing = true;
	if (s->writing)
		return; /* on_written continues */
	if (s->pending.len)
		start_write(s);
	else
		finish_spilled(s, j);
}

void spill_destroy(struct job *j)
{
	struct spill *s = j->spill;
	if (!s)
		return;
	j->spill = NULL;
	s->dead = true;
	spill_unref(s);
}

/* Finds the first task whose result bytes end after `off` (tasks are in result order). */
static uint32_t task_at(const struct job *j, uint64_t off)
{
	uint32_t lo = 0, hi = j->ntasks;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct task *t = &j->tasks[mid];
		if (t->res_off + t->out_len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int read_exact(int fd, uint8_t *out, size_t len, uint64_t off, char *err, size_t errlen)
{
	ssize_t n = pread_all(fd, out, len, off);
	if (n < 0 || (size_t)n != len)
		return errorf(err, errlen, "reading the result: %s",
		              n < 0 ? strerror(errno) : "file is shorter than recorded");
	return 0;
}

/* The piece of a streamed partial that holds byte `skip` of it: where it is in the spill file
 * and how much of the piece is left from there. */
static int task_piece(const struct task *t, uint64_t skip, uint64_t *file_off, uint64_t *n)
{
	for (uint32_t p = 0; p < t->segs->n; p++) {
		if (skip < t->segs->len[p]) {
			*file_off = t->segs->off[p] + skip;
			*n = t->segs->len[p] - skip;
			return 0;
		}
		skip -= t->segs->len[p];
	}
	return -1;
}

int spill_read_result(const struct job *j, uint64_t off, uint8_t *out, size_t len, char *err,
                      size_t errlen)
{
	const struct spill *s = j->spill;
	if (j->op->combine == OP_COMBINE_FOLD) {
		memcpy(out, j->result_mem.data + off, len);
		return 0;
	}
	if (j->result_in_file)
		return read_exact(s->result_fd, out, len, off, err, errlen);
	/* Partials are scattered in the spill file in arrival order; gather them in partition
	 * order, coalescing neighbours that happen to be adjacent on disk. */
	uint32_t i = task_at(j, off);
	while (len && i < j->ntasks) {
		const struct task *t = &j->tasks[i];
		uint64_t skip = off - t->res_off;
		uint64_t file_off, n;
		if (t->segs) {
			if (task_piece(t, skip, &file_off, &n) < 0)
				return errorf(err, errlen, "result index of task %u is corrupt",
				              t->id);
		} else {
			file_off = t->out_off + skip;
			n = t->out_len - skip;
			for (uint32_t k = i + 1; n < len && k < j->ntasks && !j->tasks[k].segs &&
			                         j->tasks[k].out_off == file_off + n;
			     k++)
				n += j->tasks[k].out_len;
		}
		if (n > len)
			n = len;
		if (read_exact(s->fd, out, n, file_off, err, errlen) < 0)
			return -1;
		out += n;
		len -= n;
		off += n;
		i = task_at(j, off);
	}
	return 0;
}

bool spill_backlogged(const struct master *m)
{
	return m->spill_backlog > SPILL_BACKLOG_HIGH;
}

int spill_fd(const struct job *j)
{
	return j->spill ? j->spill->fd : -1;
}

void spill_pieces(const struct task *t, uint64_t from, uint64_t len, struct spill_piece_fn *fn)
{
	if (!t->segs) {
		fn->piece(fn->arg, t->out_off + from, len);
		return;
	}
	for (uint32_t p = 0; p < t->segs->n && len; p++) {
		if (from >= t->segs->len[p]) {
			from -= t->segs->len[p];
			continue;
		}
		uint64_t n = t->segs->len[p] - from;
		if (n > len)
			n = len;
		fn->piece(fn->arg, t->segs->off[p] + from, n);
		len -= n;
		from = 0;
	}
}

void spill_set_result_file(struct job *j, int fd, const char *path)
{
	struct spill *s = j->spill;
	s->result_fd = fd;
	free(s->result_path);
	s->result_path = xstrdup(path);
	j->result_in_file = true;
}
