/* persist.c: the journal (journal.c) on the master's loop.
 *
 * Changes gather in the current batch; a commit takes the whole batch to the thread pool,
 * where it first fsyncs the files the batch vouches for (spill files holding the counted
 * partitions, upload spools up to the length their rows record, a reduce job's grouped map
 * output) and then writes the batch in one SQLite transaction; files that a restart would
 * still need until the batch is durable (a reduce job's map stage) are held by the batch and
 * released after it. One commit runs at a time; what arrives meanwhile forms the next batch,
 * so under load a commit carries thousands of rows and costs one fsync. A batch that makes a
 * promise to a client (Submitted: "your job is accepted"; the final UploadAck: "your input is
 * safe") commits as soon as the previous commit is done; anything else waits for the timer
 * (PERSIST_INTERVAL_MS), so a trickle of finished tasks does not cost one fsync each.
 *
 * The loop never blocks on the disk, except at start (recovery) and on the way out (the last
 * commit after the loop has ended); the retention limit's removals run on the pool (trash.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "master.h"
#include "util.h"

#define PERSIST_INTERVAL_MS 50

struct sync_item {
	int fd; /* fdatasync'd before the commit; -1: only held until the batch is done */
	void *obj;
	void (*release)(void *obj);
	uint64_t job_id;
};

/* A message owed to a client once the job's row is durable: Submitted, or the final
 * UploadAck of a job whose input is all in. */
struct promise {
	uint64_t job_id;
	struct client *cl; /* NULL once it is gone */
	uint64_t window;
	bool upload_done;
};

/* An upload's spool synced up to `upto` by the batch, and its row saying so. */
struct durable_mark {
	uint64_t job_id;
	uint64_t upto;
};

struct pbatch {
	struct journal_batch *b;
	bool full; /* fsync the commit */
	struct promise *prom;
	size_t nprom, promcap;
	struct sync_item *sync;
	size_t nsync, synccap;
	uint64_t *jobs; /* jobs with rows in the batch, to fail if it cannot be written */
	size_t njobs, jobscap;
	uint64_t *uploads; /* uploading jobs that wrote more of their spool */
	size_t nuploads, uploadscap;
	struct durable_mark *durable;
	size_t ndurable, durablecap;
};

struct persist {
	struct master *m;
	struct journal *jn;
	struct pbatch *cur;
	struct pbatch *inflight;
	uv_work_t work;
	uv_timer_t timer;
	bool timer_on;
	bool timer_closed;
	int rc;
	char err[1024];
	uint64_t *flush; /* jobs whose spill should be written out on the next tick */
	size_t nflush, flushcap;
	uint32_t nended;   /* ended jobs held */
	size_t prune_from; /* m->jobs below this index are all NULL */
	uint64_t commits, rows;
};

static struct pbatch *pbatch_new(void)
{
	struct pbatch *pb = xcalloc(1, sizeof(*pb));
	pb->b = journal_batch_create();
	return pb;
}

static void pbatch_free(struct pbatch *pb)
{
	for (size_t i = 0; i < pb->nsync; i++)
		pb->sync[i].release(pb->sync[i].obj);
	journal_batch_destroy(&pb->b);
	free(pb->prom);
	free(pb->sync);
	free(pb->jobs);
	free(pb->uploads);
	free(pb->durable);
	free(pb);
}

static bool pbatch_empty(const struct pbatch *pb)
{
	return journal_batch_empty(pb->b) && pb->nprom == 0 && pb->nuploads == 0;
}

static void note_job(struct pbatch *pb, uint64_t id)
{
	if (pb->njobs && pb->jobs[pb->njobs - 1] == id)
		return;
	if (pb->njobs == pb->jobscap) {
		pb->jobscap = pb->jobscap ? pb->jobscap * 2 : 16;
		pb->jobs = xrealloc(pb->jobs, pb->jobscap * sizeof(*pb->jobs));
	}
	pb->jobs[pb->njobs++] = id;
}

static void add_sync(struct pbatch *pb, uint64_t job_id, int fd, void *obj, void (*release)(void *))
{
	for (size_t i = 0; i < pb->nsync; i++) {
		if (pb->sync[i].obj == obj) {
			release(obj); /* already held once for this batch */
			return;
		}
	}
	if (pb->nsync == pb->synccap) {
		pb->synccap = pb->synccap ? pb->synccap * 2 : 8;
		pb->sync = xrealloc(pb->sync, pb->synccap * sizeof(*pb->sync));
	}
	pb->sync[pb->nsync++] = (struct sync_item){fd, obj, release, job_id};
}

/* ---- commits ---- */

static void commit_work(uv_work_t *w)
{
	struct persist *p = w->data;
	struct pbatch *pb = p->inflight;
	p->rc = 0;
	for (size_t i = 0; i < pb->nsync; i++) {
		if (pb->sync[i].fd >= 0 && fdatasync(pb->sync[i].fd) < 0) {
			p->rc = -1;
			snprintf(p->err, sizeof(p->err), "cannot sync the files of job %llu: %s",
			         (unsigned long long)pb->sync[i].job_id, strerror(errno));
			return;
		}
	}
	p->rc = journal_commit(p->jn, pb->b, pb->full, p->err, sizeof(p->err));
}

static void start_commit(struct persist *p);

static void on_timer(uv_timer_t *t);

/* Commits now (a promise waits and no commit runs), or on the next tick. The tick also runs
 * while a commit is in flight: spills waiting to be written must not wait for it. */
static void schedule(struct persist *p, bool urgent)
{
	if (p->timer_closed)
		return;
	if (urgent && !p->inflight)
		start_commit(p);
	else if (!p->timer_on) {
		p->timer_on = true;
		uv_timer_start(&p->timer, on_timer, PERSIST_INTERVAL_MS, 0);
	}
}

static void commit_done(uv_work_t *w, int status)
{
	struct persist *p = w->data;
	struct master *m = p->m;
	struct pbatch *pb = p->inflight;
	p->inflight = NULL;
	if (status < 0 && p->rc == 0) {
		p->rc = -1;
		snprintf(p->err, sizeof(p->err), "the commit did not run: %s", uv_strerror(status));
	}
	if (p->rc < 0) {
		/* The jobs this batch was about cannot be vouched for: they fail, the master and
		 * everything else carry on. */
		log_error("persist", "event=journal_failed rows=%zu error=\"%s\"",
		          journal_batch_size(pb->b), p->err);
		for (size_t i = 0; i < pb->nprom; i++)
			if (pb->prom[i].cl)
				server_send_failure(pb->prom[i].cl->conn, pb->prom[i].job_id, 1,
				                    "the master cannot record job %llu: %s",
				                    (unsigned long long)pb->prom[i].job_id, p->err);
		for (size_t i = 0; i < pb->njobs; i++) {
			struct job *j = jobs_find(m, pb->jobs[i]);
			if (j && !jobs_finished(j))
				jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
				          "the master cannot record the job in its journal: %s",
				          p->err);
		}
	} else {
		p->commits++;
		p->rows += journal_batch_size(pb->b);
		for (size_t i = 0; i < pb->ndurable; i++) {
			struct job *j = jobs_find(m, pb->durable[i].job_id);
			if (j && !jobs_finished(j))
				upload_on_durable(j, pb->durable[i].upto);
		}
		for (size_t i = 0; i < pb->nprom; i++) {
			struct job *j = jobs_find(m, pb->prom[i].job_id);
			if (!pb->prom[i].cl || !j)
				continue;
			if (!pb->prom[i].upload_done)
				jobs_send_submitted(pb->prom[i].cl->conn, j, pb->prom[i].window);
			else if (!jobs_finished(j) || j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED)
				upload_send_complete(j,
				                     pb->prom[i].cl); /* (a failure: JobUpdate) */
		}
	}
	pbatch_free(pb);
	if (!pbatch_empty(p->cur))
		schedule(p, p->cur->nprom > 0);
}

static void fill_row(const struct job *j, struct journal_job *r, uint64_t **parts_out);

/* The uploads that wrote more of their spools join the batch: each spool is synced up to
 * what is written now, and the job's row records that length (its input_bytes while it
 * uploads), which a restarted master resumes from. */
static void batch_uploads(struct persist *p)
{
	struct pbatch *pb = p->cur;
	for (size_t i = 0; i < pb->nuploads; i++) {
		struct job *j = jobs_find(p->m, pb->uploads[i]);
		uint64_t upto;
		void *obj;
		int fd;
		if (!j || jobs_finished(j) || j->state != SHOAL__JOB_STATE__JOB_UPLOADING ||
		    (fd = upload_sync_point(j, &upto, &obj)) < 0)
			continue;
		struct journal_job r;
		uint64_t *parts;
		fill_row(j, &r, &parts);
		r.input_bytes = upto;
		journal_put_job(pb->b, &r);
		free(parts);
		note_job(pb, j->id);
		add_sync(pb, j->id, fd, obj, upload_release);
		if (pb->ndurable == pb->durablecap) {
			pb->durablecap = pb->durablecap ? pb->durablecap * 2 : 8;
			pb->durable = xrealloc(pb->durable, pb->durablecap * sizeof(*pb->durable));
		}
		pb->durable[pb->ndurable++] = (struct durable_mark){j->id, upto};
		pb->full = true;
	}
	pb->nuploads = 0;
}

static void start_commit(struct persist *p)
{
	if (p->inflight)
		return;
	batch_uploads(p);
	if (pbatch_empty(p->cur))
		return;
	p->inflight = p->cur;
	p->cur = pbatch_new();
	p->work.data = p;
	int rc = uv_queue_work(p->m->loop, &p->work, commit_work, commit_done);
	if (rc < 0) {
		p->rc = -1;
		snprintf(p->err, sizeof(p->err), "cannot start a commit: %s", uv_strerror(rc));
		commit_done(&p->work, 0);
	}
}

static void on_timer(uv_timer_t *t)
{
	struct persist *p = t->data;
	p->timer_on = false;
	/* Spills holding finished partitions write out what they have; those partitions join
	 * a later batch once written. */
	size_t n = p->nflush;
	p->nflush = 0;
	for (size_t i = 0; i < n; i++) {
		struct job *j = jobs_find(p->m, p->flush[i]);
		if (j) {
			j->flush_queued = false;
			if (!jobs_finished(j))
				spill_flush(j);
		}
	}
	start_commit(p);
}

/* ---- what the rest of the master journals ---- */

static void fill_row(const struct job *j, struct journal_job *r, uint64_t **parts_out)
{
	memset(r, 0, sizeof(*r));
	r->id = j->id;
	r->spec = j->spec_packed;
	r->spec_len = j->spec_len;
	r->state = j->state;
	r->error = j->error;
	r->submitted_ms = j->submitted_ms;
	r->started_ms = j->started_ms;
	r->finished_ms = j->finished_ms;
	r->part_size = j->part_size;
	r->ntasks = j->ntasks;
	r->input_bytes = j->input_bytes;
	r->records = j->records;
	r->task_failures = j->task_failures;
	r->result_size = j->result_size;
	r->result_file = j->result_in_file;
	r->reducing = j->reducing;
	r->map_tasks = j->map_tasks;
	if (j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED && j->op->combine == OP_COMBINE_FOLD &&
	    !j->result_in_file) {
		r->result = j->result_mem.data ? j->result_mem.data : (const uint8_t *)"";
		r->result_len = j->result_mem.len;
	}
	*parts_out = NULL;
	/* An uploaded (or chained) input's cut points, once it is cut; in a reduce job's reduce
	 * stage, the reducers' in its grouped map output. */
	if (!jobs_finished(j) && j->input == INPUT_UPLOAD && j->tasks) {
		uint64_t *parts = xmalloc((j->ntasks ? (size_t)j->ntasks : 1) * 2 * sizeof(*parts));
		for (uint32_t i = 0; i < j->ntasks; i++) {
			parts[2 * (size_t)i] = j->tasks[i].in_off;
			parts[2 * (size_t)i + 1] = j->tasks[i].in_len;
		}
		r->parts = parts;
		r->nparts = j->ntasks;
		*parts_out = parts;
	}
}

static void put_row(struct persist *p, const struct job *j)
{
	struct journal_job r;
	uint64_t *parts;
	fill_row(j, &r, &parts);
	journal_put_job(p->cur->b, &r);
	free(parts);
	note_job(p->cur, j->id);
}

void persist_job(struct job *j)
{
	struct persist *p = j->m->persist;
	if (!p)
		return;
	put_row(p, j);
	p->cur->full = true;
	/* The input's cut points vouch for the spool's bytes. */
	void *obj;
	int fd;
	if (j->input == INPUT_UPLOAD && j->tasks && (fd = upload_hold(j, &obj)) >= 0)
		add_sync(p->cur, j->id, fd, obj, upload_release);
	schedule(p, false);
}

void persist_job_started(struct job *j)
{
	struct persist *p = j->m->persist;
	if (!p)
		return;
	put_row(p, j); /* with the next batch: nothing waits for it to be durable */
	schedule(p, false);
}

void persist_reduce_stage(struct job *j, void *map_spill, void *map_input)
{
	struct persist *p = j->m->persist;
	if (!p) {
		if (map_spill)
			spill_release(map_spill);
		if (map_input)
			upload_release(map_input);
		return;
	}
	/* The map partitions' rows go in the same transaction that says the job is reducing
	 * (the reducers' rows then take their task numbers); persist_job fsyncs the grouped
	 * input first. Until that commit is durable, a restart resumes the map stage: its files
	 * stay (held here, not synced again) and are removed once the batch is done with them. */
	journal_drop_tasks(p->cur->b, j->id);
	persist_job(j);
	if (map_spill)
		add_sync(p->cur, j->id, -1, map_spill, spill_release);
	if (map_input)
		add_sync(p->cur, j->id, -1, map_input, upload_release);
}

void persist_submitted(struct job *j, struct client *cl, uint64_t window)
{
	struct persist *p = j->m->persist;
	if (!p) {
		jobs_send_submitted(cl->conn, j, window);
		return;
	}
	put_row(p, j);
	struct pbatch *pb = p->cur;
	if (pb->nprom == pb->promcap) {
		pb->promcap = pb->promcap ? pb->promcap * 2 : 8;
		pb->prom = xrealloc(pb->prom, pb->promcap * sizeof(*pb->prom));
	}
	pb->prom[pb->nprom++] = (struct promise){j->id, cl, window, false};
	pb->full = true;
	schedule(p, true);
}

void persist_upload_progress(struct job *j)
{
	struct persist *p = j->m->persist;
	if (!p)
		return;
	struct pbatch *pb = p->cur;
	for (size_t i = 0; i < pb->nuploads; i++)
		if (pb->uploads[i] == j->id)
			return;
	if (pb->nuploads == pb->uploadscap) {
		pb->uploadscap = pb->uploadscap ? pb->uploadscap * 2 : 8;
		pb->uploads = xrealloc(pb->uploads, pb->uploadscap * sizeof(*pb->uploads));
	}
	pb->uploads[pb->nuploads++] = j->id;
	schedule(p, false);
}

void persist_upload_complete(struct job *j, struct client *cl)
{
	struct persist *p = j->m->persist;
	if (!p) {
		upload_send_complete(j, cl);
		return;
	}
	struct pbatch *pb = p->cur;
	if (pb->nprom == pb->promcap) {
		pb->promcap = pb->promcap ? pb->promcap * 2 : 8;
		pb->prom = xrealloc(pb->prom, pb->promcap * sizeof(*pb->prom));
	}
	pb->prom[pb->nprom++] = (struct promise){j->id, cl, 0, true};
	schedule(p, true);
}

static void put_task(struct persist *p, struct job *j, const struct task *t, const uint8_t *data,
                     size_t len)
{
	struct journal_task r = {0};
	r.job = j->id;
	r.task = t->id;
	r.records = t->records;
	r.out_off = t->out_off;
	r.out_len = t->out_len;
	if (t->segs) {
		r.seg_off = t->segs->off;
		r.seg_len = t->segs->len;
		r.nsegs = t->segs->n;
	}
	if (t->buckets) {
		r.buckets = t->buckets;
		r.nbuckets = j->reducers;
	}
	r.partial = data;
	r.partial_len = len;
	journal_put_task(p->cur->b, &r);
	note_job(p->cur, j->id);
	if (!data) {
		void *obj;
		int fd = spill_hold(j, &obj);
		if (fd >= 0)
			add_sync(p->cur, j->id, fd, obj, spill_release);
	}
}

void persist_task(struct job *j, const struct task *t, const uint8_t *data, size_t len)
{
	struct persist *p = j->m->persist;
	if (!p)
		return;
	put_task(p, j, t, data, len);
	p->cur->full = true;
	schedule(p, false);
}

void persist_want_flush(struct job *j)
{
	struct persist *p = j->m->persist;
	if (!p || j->flush_queued)
		return;
	if (p->nflush == p->flushcap) {
		p->flushcap = p->flushcap ? p->flushcap * 2 : 16;
		p->flush = xrealloc(p->flush, p->flushcap * sizeof(*p->flush));
	}
	p->flush[p->nflush++] = j->id;
	j->flush_queued = true;
	schedule(p, false);
}

void persist_job_ended(struct job *j)
{
	struct persist *p = j->m->persist;
	if (!p)
		return;
	put_row(p, j);
	bool keep_tasks = j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED &&
	                  j->op->combine == OP_COMBINE_CONCAT && !j->result_in_file;
	/* A kept CONCAT result is read through its partitions' rows (a reduce job's: its
	 * reducers', journaled as they finished like any job's). */
	if (!keep_tasks)
		journal_drop_tasks(p->cur->b, j->id);
	p->cur->full = true;
	p->nended++;
	j->prunable = true;
	schedule(p, false);
}

void persist_client_gone(struct client *cl)
{
	struct persist *p = cl->m->persist;
	if (!p)
		return;
	struct pbatch *bs[2] = {p->cur, p->inflight};
	for (int k = 0; k < 2; k++)
		for (size_t i = 0; bs[k] && i < bs[k]->nprom; i++)
			if (bs[k]->prom[i].cl == cl)
				bs[k]->prom[i].cl = NULL;
}

/* ---- retention ---- */

/* Something still uses the ended job: a client watching or fetching it, a job that waits for
 * it or reads its result. */
static bool job_in_use(const struct master *m, const struct job *j)
{
	if (j->nwatchers || j->io_refs)
		return true;
	for (size_t i = 0; i < m->njobs; i++) {
		const struct job *o = m->jobs[i];
		if (o && !jobs_finished(o) && (o->after == j->id || o->input_job == j->id))
			return true;
	}
	return false;
}

void persist_prune(struct master *m)
{
	struct persist *p = m->persist;
	if (!p)
		return;
	while (p->prune_from < m->njobs && !m->jobs[p->prune_from])
		p->prune_from++;
	for (size_t i = p->prune_from; i < m->njobs && p->nended > m->cfg.keep_jobs; i++) {
		struct job *j = m->jobs[i];
		if (!j || !j->prunable || job_in_use(m, j))
			continue;
		log_info("persist", "job=%llu event=pruned keep_jobs=%u", (unsigned long long)j->id,
		         m->cfg.keep_jobs);
		journal_drop_job(p->cur->b, j->id);
		/* Renamed now, removed on the thread pool; destroyed, the job cannot be looked
		 * up any more. */
		if (j->dir)
			trash_put(m, j->dir);
		jobs_destroy(j);
		p->nended--;
	}
	if (!journal_batch_empty(p->cur->b))
		schedule(p, false);
}

/* ---- start and stop ---- */

int persist_start(struct master *m, char *err, size_t errlen)
{
	struct journal *jn;
	uint64_t t0 = mono_us();
	if (journal_open(m->cfg.state_dir, &jn, err, errlen) < 0)
		return -1;
	struct persist *p = xcalloc(1, sizeof(*p));
	p->m = m;
	p->jn = jn;
	p->cur = pbatch_new();
	uv_timer_init(m->loop, &p->timer);
	p->timer.data = p;
	m->persist = p;
	/* Ids continue after the highest one ever handed out. */
	if (m->njobs < journal_max_id(jn))
		m->njobs = journal_max_id(jn);
	if (recover_jobs(m, jn, err, errlen) < 0) {
		/* Nothing is written to a journal that cannot be read back. */
		uv_close((uv_handle_t *)&p->timer, NULL);
		journal_close(&p->jn);
		pbatch_free(p->cur);
		free(p);
		m->persist = NULL;
		return -1;
	}
	p->nended = 0;
	for (size_t i = 0; i < m->njobs; i++)
		if (m->jobs[i] && jobs_finished(m->jobs[i])) {
			m->jobs[i]->prunable = true;
			p->nended++;
		}
	persist_prune(m);
	log_info("persist", "event=journal_open path=%s next_job=%llu ms=%.1f", journal_path(jn),
	         (unsigned long long)(m->njobs + 1), (double)(mono_us() - t0) / 1000.0);
	return 0;
}

void persist_stop(struct master *m)
{
	struct persist *p = m->persist;
	if (!p || p->timer_closed)
		return;
	p->timer_closed = true;
	uv_close((uv_handle_t *)&p->timer, NULL);
}

void persist_close(struct master *m)
{
	struct persist *p = m->persist;
	if (!p)
		return;
	/* Partitions whose bytes wait in memory: written and counted now. */
	for (size_t i = 0; i < m->njobs; i++)
		if (m->jobs[i] && !jobs_finished(m->jobs[i]))
			spill_flush_sync(m->jobs[i]);
	if (!p->timer_closed) {
		p->timer_closed = true;
		uv_close((uv_handle_t *)&p->timer, NULL);
	}
	batch_uploads(p);
	if (!pbatch_empty(p->cur)) {
		p->inflight = p->cur;
		p->cur = pbatch_new();
		p->inflight->full = true;
		commit_work(&p->work);
		if (p->rc < 0)
			log_error("persist", "event=journal_failed at=exit error=\"%s\"", p->err);
		else
			p->commits++;
		pbatch_free(p->inflight);
		p->inflight = NULL;
	}
	log_info("persist", "event=journal_closed commits=%llu rows=%llu",
	         (unsigned long long)p->commits, (unsigned long long)p->rows);
	journal_close(&p->jn);
	pbatch_free(p->cur);
	free(p->flush);
	free(p);
	m->persist = NULL;
}
