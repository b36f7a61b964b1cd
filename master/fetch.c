/* fetch.c: streaming a succeeded job's result to a client in ResultChunks. The client grants
 * a window of bytes and acknowledges what it has written out; the master reads ahead only
 * within that window and while the connection's write queue is below its high-water mark, so
 * a result of any size streams in bounded memory. Reads from disk run on the thread pool. */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "master.h"
#include "util.h"

#define FETCH_CHUNK      (1u << 20)
#define FETCH_MIN_WINDOW (1u << 20)
#define FETCH_MAX_WINDOW (256u << 20)

struct fetch {
	struct client *cl; /* NULL once the client is gone */
	struct job *job;
	uint64_t pos;   /* next byte to send */
	uint64_t acked; /* bytes the client has consumed */
	uint64_t window;
	bool reading;
	bool sent_last;
	uv_work_t work;
	uint8_t *data;
	size_t len;
	int rc;
	char err[256];
};

static void fetch_free(struct fetch *f)
{
	f->job->io_refs--; /* the retention limit may remove the job again */
	free(f->data);
	free(f);
}

static void send_chunk(struct fetch *f, const uint8_t *data, size_t len)
{
	Shoal__ResultChunk rc = SHOAL__RESULT_CHUNK__INIT;
	rc.job_id = f->job->id;
	rc.offset = f->pos;
	rc.data.data = (uint8_t *)data;
	rc.data.len = len;
	f->pos += len;
	rc.has_last = true;
	rc.last = f->pos == f->job->result_size;
	f->sent_last = rc.last;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_CHUNK;
	env.result_chunk = &rc;
	conn_send(f->cl->conn, &env);
}

static void pump(struct fetch *f);

static void read_work(uv_work_t *w)
{
	struct fetch *f = w->data;
	f->rc = spill_read_result(f->job, f->pos, f->data, f->len, f->err, sizeof(f->err));
}

static void read_done(uv_work_t *w, int status)
{
	struct fetch *f = w->data;
	f->reading = false;
	if (!f->cl) {
		fetch_free(f);
		return;
	}
	if (status < 0 || f->rc < 0) {
		server_send_failure(
		    f->cl->conn, f->job->id, 1, "cannot read the result of job %llu: %s",
		    (unsigned long long)f->job->id, status < 0 ? uv_strerror(status) : f->err);
		f->cl->fetch = NULL;
		fetch_free(f);
		return;
	}
	send_chunk(f, f->data, f->len);
	pump(f);
}

static void pump(struct fetch *f)
{
	struct job *j = f->job;
	while (!f->reading && !f->sent_last && conn_writable(f->cl->conn)) {
		uint64_t room = f->window - (f->pos - f->acked);
		if (f->pos - f->acked >= f->window)
			return;
		uint64_t n = j->result_size - f->pos;
		if (n > FETCH_CHUNK)
			n = FETCH_CHUNK;
		if (n > room)
			n = room;
		if (j->op->combine == OP_COMBINE_FOLD || n == 0) {
			/* In memory (or nothing left): send without a copy. */
			send_chunk(f, j->result_mem.data + f->pos, n);
			continue;
		}
		f->data = xrealloc(f->data, n);
		f->len = n;
		f->reading = true;
		f->work.data = f;
		int rc = uv_queue_work(j->m->loop, &f->work, read_work, read_done);
		if (rc < 0) {
			f->reading = false;
			server_send_failure(f->cl->conn, j->id, 1, "cannot read the result: %s",
			                    uv_strerror(rc));
			return;
		}
	}
	if (f->sent_last && !f->reading) {
		f->cl->fetch = NULL;
		fetch_free(f);
	}
}

void fetch_on_request(struct master *m, struct client *cl, const Shoal__FetchResult *fr)
{
	struct job *j = jobs_find(m, fr->job_id);
	/* A new request replaces a fetch the client abandoned (its writer stopped early). */
	fetch_abort(cl);
	if (!j) {
		server_send_failure(cl->conn, fr->job_id, 1, "no job %llu",
		                    (unsigned long long)fr->job_id);
		return;
	}
	if (j->state != SHOAL__JOB_STATE__JOB_SUCCEEDED) {
		server_send_failure(cl->conn, j->id, 1, "job %llu has no result: it is %s%s%s",
		                    (unsigned long long)j->id, jobs_state_name(j->state),
		                    j->error ? ": " : "", j->error ? j->error : "");
		return;
	}
	uint64_t offset = fr->has_offset ? fr->offset : 0;
	if (offset > j->result_size) {
		server_send_failure(cl->conn, j->id, 2,
		                    "offset %llu is beyond the result's %llu bytes",
		                    (unsigned long long)offset, (unsigned long long)j->result_size);
		return;
	}
	log_info("fetch", "conn=%llu peer=%s job=%llu event=fetch offset=%llu size=%llu",
	         (unsigned long long)conn_id(cl->conn), conn_peer(cl->conn),
	         (unsigned long long)j->id, (unsigned long long)offset,
	         (unsigned long long)j->result_size);
	struct fetch *f = xcalloc(1, sizeof(*f));
	f->cl = cl;
	f->job = j;
	j->io_refs++;
	f->pos = f->acked = offset;
	f->window = fr->has_window ? fr->window : 8u << 20;
	if (f->window < FETCH_MIN_WINDOW)
		f->window = FETCH_MIN_WINDOW;
	if (f->window > FETCH_MAX_WINDOW)
		f->window = FETCH_MAX_WINDOW;
	cl->fetch = f;
	pump(f);
}

void fetch_on_ack(struct client *cl, const Shoal__ResultAck *ack)
{
	struct fetch *f = cl->fetch;
	if (!f || ack->job_id != f->job->id)
		return; /* a late ack after the last chunk */
	if (ack->consumed > f->pos || ack->consumed < f->acked) {
		server_drop(cl->conn, "result ack outside the bytes sent");
		return;
	}
	f->acked = ack->consumed;
	pump(f);
}

void fetch_on_drain(struct client *cl)
{
	if (cl->fetch)
		pump(cl->fetch);
}

void fetch_abort(struct client *cl)
{
	struct fetch *f = cl->fetch;
	if (!f)
		return;
	cl->fetch = NULL;
	f->cl = NULL;
	if (!f->reading)
		fetch_free(f);
}
