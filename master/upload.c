/* upload.c: inputs uploaded by clients. The bytes are spooled to the job's directory in the
 * state dir through the thread pool, acknowledged only once written (the client keeps at most
 * a window of unacknowledged bytes in flight, so neither side buffers a whole file), and cut
 * into partitions on record boundaries as they pass. When a task of the job is assigned, its
 * partition is read back from the spool and sent with the task.
 *
 * An upload survives losing its client or the master. Each journal commit syncs the bytes
 * written so far and records how many (the job's input_bytes while it uploads); UploadAck's
 * `durable` tells the client, which may then forget them. A client that goes away mid-upload
 * leaves the job waiting --upload-resume-timeout for an UploadResume (from any connection);
 * a restarted master truncates the spool to its durable length, cuts that prefix again and
 * waits the same way. The upload is done for the client only when the final UploadAck says
 * `complete`, which is sent once the job with its cut partitions is journaled. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "util.h"

/* Unsynced bytes of a pipe upload that make the journal commit at once (see on_written). */
#define UPLOAD_SYNC_SOON (4u << 20)

struct upload {
	struct master *m;
	uint64_t job_id;
	struct client *client; /* the uploader, NULL once it is gone */
	uv_file fd;
	char *path;
	uint64_t received;
	uint64_t written;
	uint64_t durable; /* synced and journaled: what a restarted master resumes from */
	bool last;
	bool sized;         /* a file of declared size: its client can read it again */
	bool complete;      /* the last chunk is in and written: cutting, or cut */
	bool orphaned;      /* the client left mid-upload; it may resume until the timeout */
	uint64_t orphan_ms; /* loop time it left */
	struct cutter cutter;
	uint64_t *parts; /* (offset, length) pairs */
	uint32_t nparts, parts_cap;
	uint64_t largest;     /* largest partition cut: it must fit in one message */
	uint32_t defer_parts; /* --partitions of an input of unknown size: cut once it is in */
	uv_work_t cut_work;
	int cut_errno;
	struct buf pending;  /* received, not yet being written */
	struct buf inflight; /* being written */
	uv_fs_t wreq;
	bool writing;
	uint32_t refs; /* file-system requests in flight */
	bool dead;     /* the job ended: free when refs reach 0 */
};

struct task_read {
	uv_fs_t req;
	struct upload *u;
	Shoal__Task *msg;
	uint8_t *data;
	uint64_t len;
};

static void upload_unref(struct upload *u)
{
	if (--u->refs > 0 || !u->dead)
		return;
	uv_fs_t req;
	uv_fs_close(NULL, &req, u->fd, NULL);
	uv_fs_req_cleanup(&req);
	if (!u->m->exiting) /* an exiting master keeps the spool: the journal resumes from it */
		unlink(u->path);
	free(u->path);
	free(u->parts);
	buf_free(&u->pending);
	buf_free(&u->inflight);
	free(u);
}

/* The upload of j into the open spool fd at path. */
static struct upload *upload_new(struct job *j, int fd, const char *path,
                                 const Shoal__JobSpec *spec)
{
	struct upload *u = xcalloc(1, sizeof(*u));
	u->m = j->m;
	u->job_id = j->id;
	u->fd = fd;
	u->path = xstrdup(path);
	u->refs = 1; /* the job's own reference */
	cutter_init(&u->cutter, j->part_size);
	u->sized = spec->has_upload_size;
	/* --partitions of an input of unknown size: cut once its size is known. */
	if (spec->has_partitions && spec->partitions > 0 && !spec->has_upload_size)
		u->defer_parts = spec->partitions;
	j->upload = u;
	return u;
}

int upload_start(struct job *j, struct client *cl, const Shoal__JobSpec *spec, char *err,
                 size_t errlen)
{
	if (cl->uploading) {
		snprintf(err, errlen, "this connection is already uploading job %llu",
		         (unsigned long long)cl->uploading->id);
		return -1;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/input", j->dir);
	/* Creating one file per job is a metadata operation on the local state dir; the data
	 * writes go through the pool. */
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create the upload spool %s: %s", path,
		         strerror(errno));
		return -1;
	}
	struct upload *u = upload_new(j, fd, path, spec);
	u->client = cl;
	cl->uploading = j;
	return 0;
}

/* Copies an earlier job's result into the spool, cutting it as it goes (thread pool). */
struct chain_copy {
	uv_work_t work;
	struct upload *u;
	const struct job *from; /* succeeded: its result no longer changes */
	char err[512];
	int rc;
};

static void on_cut(void *arg, uint64_t offset, uint64_t length);

static void chain_work(uv_work_t *w)
{
	struct chain_copy *cc = w->data;
	struct upload *u = cc->u;
	uint64_t size = cc->from->result_size;
	size_t cap = 1u << 20;
	uint8_t *buf = xmalloc(cap);
	cc->rc = 0;
	for (uint64_t off = 0; off < size;) {
		size_t n = size - off < cap ? (size_t)(size - off) : cap;
		if (spill_read_result(cc->from, off, buf, n, cc->err, sizeof(cc->err)) < 0) {
			cc->rc = -1;
			break;
		}
		if (pwrite_all(u->fd, buf, n, off) < 0) {
			snprintf(cc->err, sizeof(cc->err), "writing %s: %s", u->path,
			         strerror(errno));
			cc->rc = -1;
			goto out;
		}
		cutter_feed(&u->cutter, buf, n, on_cut, u);
		off += n;
	}
	cutter_finish(&u->cutter, on_cut, u);
	u->written = u->received = size;
out:
	free(buf);
}

static void upload_ready(struct upload *u, struct job *j);

static void chain_done(uv_work_t *w, int status)
{
	struct chain_copy *cc = w->data;
	struct upload *u = cc->u;
	struct job *j = u->dead ? NULL : jobs_find(u->m, u->job_id);
	((struct job *)cc->from)->io_refs--;
	if (j && (status < 0 || cc->rc < 0))
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot read the result of job %llu: %s",
		          (unsigned long long)cc->from->id,
		          status < 0 ? uv_strerror(status) : cc->err);
	else if (j)
		upload_ready(u, j);
	free(cc);
	upload_unref(u);
}

void upload_from_job(struct job *j, struct job *from, uint64_t part_size)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/input", j->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot create %s: %s", path,
		          strerror(errno));
		return;
	}
	upload_adopt_file(j, fd, path);
	struct upload *u = j->upload;
	cutter_init(&u->cutter, part_size);
	struct chain_copy *cc = xcalloc(1, sizeof(*cc));
	cc->u = u;
	cc->from = from;
	cc->work.data = cc;
	u->refs++;
	from->io_refs++; /* read on the pool: the retention limit must leave it */
	log_info("upload", "job=%llu event=chained_input from_job=%llu bytes=%llu",
	         (unsigned long long)j->id, (unsigned long long)from->id,
	         (unsigned long long)from->result_size);
	int rc = uv_queue_work(j->m->loop, &cc->work, chain_work, chain_done);
	if (rc < 0) {
		u->refs--;
		from->io_refs--;
		free(cc);
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot copy the input: %s",
		          uv_strerror(rc));
	}
}

void upload_adopt_file(struct job *j, int fd, const char *path)
{
	struct upload *u = xcalloc(1, sizeof(*u));
	u->m = j->m;
	u->job_id = j->id;
	u->fd = fd;
	u->path = xstrdup(path);
	u->refs = 1;
	u->last = true; /* nothing is uploaded into it */
	upload_destroy(j);
	j->upload = u;
}

static void on_cut(void *arg, uint64_t offset, uint64_t length)
{
	struct upload *u = arg;
	if (u->nparts == u->parts_cap) {
		u->parts_cap = u->parts_cap ? u->parts_cap * 2 : 64;
		u->parts = xrealloc(u->parts, u->parts_cap * 2 * sizeof(*u->parts));
	}
	u->parts[2 * u->nparts] = offset;
	u->parts[2 * u->nparts + 1] = length;
	u->nparts++;
	if (length > u->largest)
		u->largest = length;
}

/* Tells a client where the upload of job_id stands: `received` bytes are in (answering an
 * UploadResume: held in memory or written; else: written), `durable` survive a crash. */
static void ack_to(struct conn *c, struct master *m, uint64_t job_id, uint64_t received,
                   uint64_t durable, bool resumed, bool complete)
{
	Shoal__UploadAck ack = SHOAL__UPLOAD_ACK__INIT;
	ack.job_id = job_id;
	ack.received = received;
	ack.window = m->cfg.upload_window;
	ack.has_durable = true;
	ack.durable = durable;
	ack.has_resumed = resumed;
	ack.resumed = resumed;
	ack.has_complete = true;
	ack.complete = complete;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_UPLOAD_ACK;
	env.upload_ack = &ack;
	conn_send(c, &env);
}

/* Tells an uploader that its job ended (failed or cancelled) before the upload did. */
static void fail_upload_to(struct conn *c, const struct job *j)
{
	server_send_failure(c, j->id, 1, "job %llu %s during its upload: %s",
	                    (unsigned long long)j->id, jobs_state_name(j->state),
	                    j->error ? j->error : "");
}

static void send_ack(struct upload *u)
{
	if (u->client)
		ack_to(u->client->conn, u->m, u->job_id, u->written, u->durable, false, false);
}

static void start_write(struct upload *u);

/* Cuts the whole spool into defer_parts partitions with the cutter's rule, reading only
 * around each boundary: from where a partition may end, up to the next '\n'. */
static void cut_work(uv_work_t *w)
{
	struct upload *u = w->data;
	uint64_t size = u->written;
	uint64_t target = size / u->defer_parts + (size % u->defer_parts != 0);
	if (target == 0)
		target = 1;
	uint8_t chunk[65536];
	uint64_t start = 0;
	u->cut_errno = 0;
	while (start < size) {
		uint64_t pos = start + target - 1, end = size;
		while (pos < size) {
			ssize_t n = pread(u->fd, chunk, sizeof(chunk), (off_t)pos);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				u->cut_errno = n < 0 ? errno : EIO;
				return;
			}
			const uint8_t *nl = memchr(chunk, '\n', (size_t)n);
			if (nl) {
				end = pos + (uint64_t)(nl - chunk) + 1;
				break;
			}
			pos += (uint64_t)n;
		}
		on_cut(u, start, end - start);
		start = end;
	}
}

static void cut_done(uv_work_t *w, int status)
{
	struct upload *u = w->data;
	struct job *j = u->dead ? NULL : jobs_find(u->m, u->job_id);
	if (j && (status < 0 || u->cut_errno))
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot read the upload spool %s: %s",
		          u->path, status < 0 ? uv_strerror(status) : strerror(u->cut_errno));
	else if (j)
		upload_ready(u, j);
	upload_unref(u);
}

/* The last byte is written. The client stays attached until the job is cut and queued: the
 * journal's commit of that answers it with the `complete` UploadAck. */
static void upload_complete(struct upload *u, struct job *j)
{
	u->complete = true;
	if (u->defer_parts) {
		u->refs++;
		u->cut_work.data = u;
		int rc = uv_queue_work(u->m->loop, &u->cut_work, cut_work, cut_done);
		if (rc < 0) {
			u->refs--;
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot cut the upload: %s",
			          uv_strerror(rc));
		}
		return;
	}
	cutter_finish(&u->cutter, on_cut, u);
	upload_ready(u, j);
}

static void upload_ready(struct upload *u, struct job *j)
{
	log_info("upload", "job=%llu event=upload_complete bytes=%llu partitions=%u",
	         (unsigned long long)u->job_id, (unsigned long long)u->written, u->nparts);
	/* A partition travels in one frame; leave room for the task's other fields. */
	uint64_t limit = u->m->cfg.max_frame - 65536;
	if (u->largest > limit) {
		jobs_fail(
		    j, SHOAL__JOB_STATE__JOB_FAILED,
		    "a partition of the input is %llu bytes (a record longer than the partition "
		    "size?), more than the %llu a message may carry; use smaller "
		    "--partition-size, --input-path, or a larger --max-frame on the master",
		    (unsigned long long)u->largest, (unsigned long long)limit);
		return;
	}
	/* The client is answered by the journal (a job with no tasks may end right here). */
	struct client *cl = u->client;
	if (cl) {
		cl->uploading = NULL;
		u->client = NULL;
	}
	jobs_make_runnable(j);
	if (cl && (!jobs_finished(j) || j->state == SHOAL__JOB_STATE__JOB_SUCCEEDED))
		persist_upload_complete(j, cl);
}

static void on_written(uv_fs_t *req)
{
	struct upload *u = req->data;
	ssize_t res = req->result;
	uv_fs_req_cleanup(req);
	u->writing = false;
	size_t want = u->inflight.len;
	buf_reset(&u->inflight);
	struct job *j = u->dead ? NULL : jobs_find(u->m, u->job_id);
	if (!j) {
		upload_unref(u);
		return;
	}
	if (res < 0 || (size_t)res != want) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot write the upload spool %s: %s%s",
		          u->path,
		          res < 0 ? uv_strerror((int)res) : "no space left on device (short write)",
		          res == UV_ENOSPC || res >= 0
		              ? " (the state dir's disk is full: free space there or "
		                "give the master a larger --state-dir, then submit "
		                "the job again)"
		              : "");
		upload_unref(u);
		return;
	}
	u->written += want;
	send_ack(u);
	/* A client reading a pipe holds what is not durable in a ring of 16 MiB and stops when
	 * it is full: its bytes are synced as soon as a quarter of that waits, not at the next
	 * tick (which capped pipe uploads at 16 MiB per tick). */
	persist_upload_progress(j, !u->sized && u->written - u->durable >= UPLOAD_SYNC_SOON);
	if (u->pending.len)
		start_write(u);
	else if (u->last && u->written == u->received)
		upload_complete(u, j);
	upload_unref(u);
}

static void start_write(struct upload *u)
{
	/* Swap buffers: the pool writes `inflight` while new chunks gather in `pending`. */
	struct buf tmp = u->inflight;
	u->inflight = u->pending;
	u->pending = tmp;
	u->writing = true;
	u->refs++;
	u->wreq.data = u;
	uv_buf_t b = uv_buf_init((char *)u->inflight.data, (unsigned)u->inflight.len);
	int rc = uv_fs_write(u->m->loop, &u->wreq, u->fd, &b, 1, (int64_t)u->written, on_written);
	if (rc < 0) {
		u->wreq.result = rc;
		on_written(&u->wreq);
	}
}

void upload_on_chunk(struct master *m, struct client *cl, const Shoal__UploadChunk *ch)
{
	struct job *j = jobs_find(m, ch->job_id);
	if (j && jobs_finished(j)) {
		/* Cancelled or failed while the client was still sending: tell it, drop the bytes.
		 */
		fail_upload_to(cl->conn, j);
		return;
	}
	if (j && cl->uploading == j && j->upload && j->upload->last && ch->data.len == 0 &&
	    ch->has_last && ch->last)
		return; /* the end again, from a client that resumed a finished upload */
	if (!j || cl->uploading != j || !j->upload || j->upload->last) {
		server_drop(cl->conn, "upload chunk for a job this connection is not uploading");
		return;
	}
	struct upload *u = j->upload;
	if (u->received - u->written + ch->data.len > 2 * m->cfg.upload_window + (1u << 20)) {
		/* A broken client, not a lost one: its upload is not waited for. */
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
		          "the client sent more of the input than the master acknowledged room for "
		          "(flow control broken); the upload was refused");
		server_drop(cl->conn, "upload overran its flow-control window");
		return;
	}
	if (m->cfg.max_upload > 0 && u->received + ch->data.len > m->cfg.max_upload) {
		log_warn("upload", "conn=%llu peer=%s job=%llu event=upload_too_large limit=%llu",
		         (unsigned long long)conn_id(cl->conn), conn_peer(cl->conn),
		         (unsigned long long)j->id, (unsigned long long)m->cfg.max_upload);
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
		          "the input is larger than the %llu bytes the master takes (--max-upload)",
		          (unsigned long long)m->cfg.max_upload);
		server_send_failure(cl->conn, j->id, 1, "job %llu failed: %s",
		                    (unsigned long long)j->id, j->error);
		return;
	}
	buf_append(&u->pending, ch->data.data, ch->data.len);
	if (!u->defer_parts)
		cutter_feed(&u->cutter, ch->data.data, ch->data.len, on_cut, u);
	u->received += ch->data.len;
	if (ch->has_last && ch->last)
		u->last = true;
	if (u->writing)
		return;
	if (u->pending.len) {
		start_write(u);
	} else if (u->last && u->written == u->received) {
		send_ack(u);
		upload_complete(u, j);
	}
}

const uint64_t *upload_parts(const struct job *j, uint32_t *n)
{
	*n = j->upload ? j->upload->nparts : 0;
	return j->upload ? j->upload->parts : NULL;
}

void upload_release_parts(struct job *j)
{
	if (!j->upload)
		return;
	free(j->upload->parts);
	j->upload->parts = NULL;
	j->upload->nparts = j->upload->parts_cap = 0;
}

uint64_t upload_bytes(const struct job *j)
{
	return j->upload ? j->upload->written : j->input_bytes;
}

/* The worker holding this attempt of t (the primary or a speculative copy), if any. */
static struct worker *attempt_holder(const struct task *t, uint32_t attempt)
{
	if (t->worker && t->attempt == attempt)
		return t->worker;
	if (t->backup && t->backup_attempt == attempt)
		return t->backup;
	return NULL;
}

static void on_task_read(uv_fs_t *req)
{
	struct task_read *tr = req->data;
	struct upload *u = tr->u;
	ssize_t res = req->result;
	uv_fs_req_cleanup(req);
	struct job *j = u->dead ? NULL : jobs_find(u->m, u->job_id);
	Shoal__Task *msg = tr->msg;
	if (j && j->tasks && msg->task_id < j->ntasks) {
		struct task *t = &j->tasks[msg->task_id];
		t->reading = false;
		if (res < 0 || (uint64_t)res != tr->len) {
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
			          "cannot read partition %u from the upload spool %s: %s", t->id,
			          u->path, res < 0 ? uv_strerror((int)res) : "short read");
		} else if (t->state == TASK_ASSIGNED && attempt_holder(t, msg->attempt)) {
			struct worker *holder = attempt_holder(t, msg->attempt);
			msg->data.data = tr->data;
			msg->data.len = tr->len;
			Shoal__Task *tasks[1] = {msg};
			Shoal__TaskBatch tb = SHOAL__TASK_BATCH__INIT;
			tb.n_tasks = 1;
			tb.tasks = tasks;
			Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
			env.msg_case = SHOAL__ENVELOPE__MSG_TASK_BATCH;
			env.task_batch = &tb;
			conn_send(holder->conn, &env);
		}
	}
	free(tr->data);
	free(msg);
	free(tr);
	upload_unref(u);
}

void upload_send_task(struct task *t, Shoal__Task *msg)
{
	struct job *j = t->job;
	struct upload *u = j->upload;
	struct task_read *tr = xcalloc(1, sizeof(*tr));
	tr->u = u;
	tr->msg = msg;
	tr->len = t->in_len;
	tr->data = xmalloc(t->in_len ? t->in_len : 1);
	tr->req.data = tr;
	t->reading = true;
	u->refs++;
	uv_buf_t b = uv_buf_init((char *)tr->data, (unsigned)t->in_len);
	int rc = uv_fs_read(u->m->loop, &tr->req, u->fd, &b, 1, (int64_t)t->in_off, on_task_read);
	if (rc < 0) {
		tr->req.result = rc;
		on_task_read(&tr->req);
	}
}

/* The upload waits for its client to resume it, until --upload-resume-timeout. */
static void orphan(struct upload *u)
{
	struct master *m = u->m;
	u->orphaned = true;
	u->orphan_ms = uv_now(m->loop);
	if (m->norphans == m->orphans_cap) {
		m->orphans_cap = m->orphans_cap ? m->orphans_cap * 2 : 8;
		m->orphans = xrealloc(m->orphans, m->orphans_cap * sizeof(*m->orphans));
	}
	m->orphans[m->norphans++] = u->job_id;
	log_info("upload",
	         "job=%llu event=upload_orphaned received=%llu durable=%llu resume_timeout_s=%.0f",
	         (unsigned long long)u->job_id, (unsigned long long)u->received,
	         (unsigned long long)u->durable, (double)m->cfg.upload_resume_ms / 1000.0);
}

void upload_client_gone(struct client *cl)
{
	struct job *j = cl->uploading;
	if (!j)
		return;
	cl->uploading = NULL;
	struct upload *u = j->upload;
	if (!u)
		return;
	u->client = NULL;
	/* A stopping master closes every connection: the journal keeps the job as it is. */
	if (cl->m->stopping || u->complete)
		return;
	orphan(u);
}

void upload_sweep(struct master *m)
{
	uint64_t now = uv_now(m->loop);
	size_t keep = 0;
	/* jobs_fail below never orphans an upload: the array only shrinks meanwhile. */
	for (size_t i = 0; i < m->norphans; i++) {
		struct job *j = jobs_find(m, m->orphans[i]);
		struct upload *u = j && !jobs_finished(j) ? j->upload : NULL;
		if (!u || !u->orphaned)
			continue;
		if (now - u->orphan_ms < m->cfg.upload_resume_ms) {
			m->orphans[keep++] = m->orphans[i];
			continue;
		}
		u->orphaned = false;
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED,
		          "the client left during the upload (%llu bytes in) and did not resume it "
		          "within %.0f s (--upload-resume-timeout); submit the job again",
		          (unsigned long long)u->received,
		          (double)m->cfg.upload_resume_ms / 1000.0);
	}
	m->norphans = keep;
}

void upload_on_resume(struct master *m, struct client *cl, const Shoal__UploadResume *r)
{
	struct job *j = jobs_find(m, r->job_id);
	if (!j) {
		server_send_failure(cl->conn, r->job_id, 1,
		                    "cannot resume the upload of job %llu: the master has no such "
		                    "job; submit it again",
		                    (unsigned long long)r->job_id);
		return;
	}
	if (jobs_finished(j) && j->state != SHOAL__JOB_STATE__JOB_SUCCEEDED) {
		fail_upload_to(cl->conn, j);
		return;
	}
	if (j->input != INPUT_UPLOAD || j->input_job) {
		server_send_failure(cl->conn, j->id, 1, "job %llu has no uploaded input to resume",
		                    (unsigned long long)j->id);
		return;
	}
	struct upload *u = j->upload;
	if (j->state != SHOAL__JOB_STATE__JOB_UPLOADING || !u) {
		/* The whole input is in: done once the job is journaled (it may be already). */
		persist_upload_complete(j, cl);
		return;
	}
	if (cl->uploading && cl->uploading != j) {
		server_send_failure(cl->conn, j->id, 1,
		                    "this connection is already uploading job %llu",
		                    (unsigned long long)cl->uploading->id);
		return;
	}
	/* A connection the master has not seen die yet (a cut network) gives the upload up:
	 * what it sends from now on is refused. */
	if (u->client && u->client != cl)
		u->client->uploading = NULL;
	u->client = cl;
	u->orphaned = false;
	cl->uploading = j;
	log_info("upload", "conn=%llu peer=%s job=%llu event=upload_resumed from=%llu durable=%llu",
	         (unsigned long long)conn_id(cl->conn), conn_peer(cl->conn),
	         (unsigned long long)j->id, (unsigned long long)u->received,
	         (unsigned long long)u->durable);
	ack_to(cl->conn, m, j->id, u->received, u->durable, true, false);
}

void upload_send_complete(struct job *j, struct client *cl)
{
	uint64_t n = upload_bytes(j);
	ack_to(cl->conn, j->m, j->id, n, n, true, true);
}

int upload_sync_point(struct job *j, uint64_t *upto, void **obj)
{
	struct upload *u = j->upload;
	if (!u || u->complete || u->written <= u->durable)
		return -1;
	*upto = u->written;
	u->refs++;
	*obj = u;
	return u->fd;
}

void upload_on_durable(struct job *j, uint64_t upto)
{
	struct upload *u = j->upload;
	if (!u || upto <= u->durable)
		return;
	u->durable = upto;
	send_ack(u);
}

int upload_reopen(struct job *j, const Shoal__JobSpec *spec, uint64_t durable, char *err,
                  size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/input", j->dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		errorf(err, errlen, "its uploaded input %s cannot be opened (%s)", path,
		       strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size < durable) {
		close(fd);
		return errorf(err, errlen,
		              "its uploaded input %s is shorter (%llu bytes) than journaled (%llu)",
		              path, (unsigned long long)st.st_size, (unsigned long long)durable);
	}
	/* Bytes past the durable length were never promised to the client: it sends them
	 * again. */
	if ((uint64_t)st.st_size > durable && ftruncate(fd, (off_t)durable) < 0) {
		errorf(err, errlen, "cannot truncate its uploaded input %s: %s", path,
		       strerror(errno));
		close(fd);
		return -1;
	}
	struct upload *u = upload_new(j, fd, path, spec);
	/* The cut points of the prefix are found again, exactly as they were found the first
	 * time (the cutter depends only on the bytes). Recovery runs before the loop serves. */
	if (!u->defer_parts && durable > 0) {
		size_t cap = 1u << 20;
		uint8_t *buf = xmalloc(cap);
		for (uint64_t off = 0; off < durable;) {
			size_t n = durable - off < cap ? (size_t)(durable - off) : cap;
			ssize_t got = pread_all(fd, buf, n, off);
			if (got != (ssize_t)n) {
				errorf(err, errlen, "cannot read its uploaded input %s: %s", path,
				       got < 0 ? strerror(errno) : "it ends early");
				free(buf);
				upload_destroy(j);
				return -1;
			}
			cutter_feed(&u->cutter, buf, n, on_cut, u);
			off += n;
		}
		free(buf);
	}
	u->received = u->written = u->durable = durable;
	orphan(u);
	return 0;
}

int upload_resume(struct job *j, const uint64_t *parts, uint32_t nparts, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/input", j->dir);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		errorf(err, errlen, "its input %s is gone (%s)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	uint64_t end = nparts ? parts[2 * (nparts - 1)] + parts[2 * (nparts - 1) + 1] : 0;
	if ((uint64_t)st.st_size < end) {
		close(fd);
		return errorf(err, errlen,
		              "its input %s is shorter (%llu bytes) than journaled "
		              "(%llu)",
		              path, (unsigned long long)st.st_size, (unsigned long long)end);
	}
	upload_adopt_file(j, fd, path);
	struct upload *u = j->upload;
	u->nparts = u->parts_cap = nparts;
	u->parts = xmalloc((nparts ? nparts : 1) * 2 * sizeof(*u->parts));
	memcpy(u->parts, parts, nparts * 2 * sizeof(*u->parts));
	u->received = u->written = end;
	return 0;
}

int upload_hold(struct job *j, void **obj)
{
	struct upload *u = j->upload;
	if (!u)
		return -1;
	u->refs++;
	*obj = u;
	return u->fd;
}

void upload_release(void *obj)
{
	upload_unref(obj);
}

void upload_destroy(struct job *j)
{
	struct upload *u = j->upload;
	if (!u)
		return;
	j->upload = NULL;
	if (u->client) {
		/* The job ended before its upload did: the uploader may be waiting for an ack. */
		fail_upload_to(u->client->conn, j);
		u->client->uploading = NULL;
		u->client = NULL;
	}
	u->dead = true;
	upload_unref(u);
}
