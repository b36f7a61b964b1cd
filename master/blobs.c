/* blobs.c: the master's content-addressed store of files shipped with jobs (--file,
 * --broadcast, --plugin), in STATE/blobs/<sha256 hex>.
 *
 * Clients offer a file by hash before submitting; only a file the store lacks is uploaded,
 * in chunks under a window of unacknowledged bytes. Each chunk is written and hashed on the
 * thread pool (one request in flight per upload, so the hash sees the bytes in order); the
 * file enters the store, by rename, only once its size and SHA-256 match the offer. Workers
 * ask for a blob when a task needs one their cache lacks; it is streamed to them in chunks
 * while their connection has room. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "digest.h"
#include "log.h"
#include "master.h"
#include "util.h"

#define BLOB_CHUNK    (1u << 20)
#define BLOB_WINDOW   (8u << 20)
#define BLOB_MAX_SIZE (4ull << 30)

struct blob_upload {
	struct master *m;
	struct client *cl; /* NULL once the client is gone */
	Shoal__FileRef ref;
	uint8_t sha[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1];
	char *tmp_path;
	int fd;
	uint64_t received; /* bytes accepted from the client */
	uint64_t written;  /* bytes written and hashed */
	bool last;
	struct buf pending;  /* received, waiting for the pool */
	struct buf inflight; /* being written and hashed */
	bool busy;
	struct digest *dg;
	uv_work_t work;
	int io_errno;
};

/* A blob on its way to one worker. */
struct blob_send {
	struct list_node link; /* in worker->blob_sends */
	struct worker *w;      /* NULL once the worker is gone */
	uint8_t sha[DIGEST_LEN];
	int fd;
	uint64_t size;
	uint64_t offset;
	uv_fs_t req;
	uint8_t *chunk;
	bool reading;
};

int blobs_init(struct master *m, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/blobs", m->cfg.state_dir);
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return errorf(err, errlen, "cannot create %s: %s", path, strerror(errno));
	m->blobs_dir = xstrdup(path);
	return 0;
}

void blobs_path(const struct master *m, const uint8_t *sha, char *out, size_t outlen)
{
	char hex[DIGEST_HEX_LEN + 1];
	digest_hex(sha, hex);
	snprintf(out, outlen, "%s/%s", m->blobs_dir, hex);
}

bool blobs_have(const struct master *m, const Shoal__FileRef *ref)
{
	char path[4096];
	struct stat st;
	blobs_path(m, ref->sha256.data, path, sizeof(path));
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == ref->size;
}

static void send_ack(struct master *m, struct conn *c, const uint8_t *sha, bool done,
                     uint64_t received, const char *error)
{
	Shoal__BlobAck ack = SHOAL__BLOB_ACK__INIT;
	ack.sha256.data = (uint8_t *)sha;
	ack.sha256.len = DIGEST_LEN;
	ack.done = done;
	ack.has_received = true;
	ack.received = received;
	ack.has_window = true;
	ack.window = BLOB_WINDOW;
	ack.error = (char *)error;
	(void)m;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_ACK;
	env.blob_ack = &ack;
	conn_send(c, &env);
}

static void upload_free(struct blob_upload *u)
{
	if (u->fd >= 0) {
		close(u->fd);
		unlink(u->tmp_path);
	}
	if (u->dg) {
		uint8_t sink[DIGEST_LEN];
		digest_finish(&u->dg, sink);
	}
	free(u->tmp_path);
	free(u->ref.name);
	buf_free(&u->pending);
	buf_free(&u->inflight);
	free(u);
}

/* Ends an upload with an error for the client (if it is still there). */
static void upload_fail(struct blob_upload *u, const char *fmt, const char *detail)
{
	char why[512];
	snprintf(why, sizeof(why), fmt, detail);
	log_warn("blobs", "blob=%.12s name=%s event=upload_failed reason=\"%s\"", u->hex,
	         u->ref.name, why);
	if (u->cl) {
		send_ack(u->m, u->cl->conn, u->sha, false, u->written, why);
		u->cl->blob = NULL;
	}
	upload_free(u);
}

void blobs_on_offer(struct master *m, struct client *cl, const Shoal__BlobOffer *offer)
{
	const Shoal__FileRef *ref = offer->file;
	if (blobs_have(m, ref)) {
		send_ack(m, cl->conn, ref->sha256.data, true, ref->size, NULL);
		return;
	}
	if (cl->blob) {
		server_drop(cl->conn, "blob offer while another blob is uploading");
		return;
	}
	if (ref->size > BLOB_MAX_SIZE) {
		char why[160];
		snprintf(why, sizeof(why),
		         "file %s is %llu bytes; shipped files are limited to %llu", ref->name,
		         (unsigned long long)ref->size, (unsigned long long)BLOB_MAX_SIZE);
		send_ack(m, cl->conn, ref->sha256.data, false, 0, why);
		return;
	}
	struct blob_upload *u = xcalloc(1, sizeof(*u));
	u->m = m;
	u->cl = cl;
	memcpy(u->sha, ref->sha256.data, DIGEST_LEN);
	digest_hex(u->sha, u->hex);
	shoal__file_ref__init(&u->ref);
	u->ref.name = xstrdup(ref->name);
	u->ref.size = ref->size;
	char path[4096];
	snprintf(path, sizeof(path), "%s/.upload-%s-%llu", m->blobs_dir, u->hex,
	         (unsigned long long)conn_id(cl->conn));
	u->tmp_path = xstrdup(path);
	/* One open per shipped file, on the local state dir; the bytes go through the pool. */
	u->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (u->fd < 0) {
		u->cl = NULL;
		send_ack(m, cl->conn, u->sha, false, 0, "the master cannot store files");
		log_error("blobs", "cannot create %s: %s", path, strerror(errno));
		upload_free(u);
		return;
	}
	u->dg = digest_create();
	cl->blob = u;
	send_ack(m, cl->conn, u->sha, false, 0, NULL);
}

static void start_write(struct blob_upload *u);

static void write_work(uv_work_t *w)
{
	struct blob_upload *u = w->data;
	u->io_errno = 0;
	if (pwrite_all(u->fd, u->inflight.data, u->inflight.len, u->written) < 0) {
		u->io_errno = errno;
		return;
	}
	digest_update(u->dg, u->inflight.data, u->inflight.len);
}

static void finish_upload(struct blob_upload *u)
{
	uint8_t got[DIGEST_LEN];
	digest_finish(&u->dg, got);
	if (u->written != u->ref.size) {
		upload_fail(u, "file arrived with a different size than offered (%s)", u->ref.name);
		return;
	}
	if (memcmp(got, u->sha, DIGEST_LEN) != 0) {
		upload_fail(u, "file %s does not match its SHA-256", u->ref.name);
		return;
	}
	char path[4096];
	blobs_path(u->m, u->sha, path, sizeof(path));
	if (fsync(u->fd) < 0 || rename(u->tmp_path, path) < 0) {
		upload_fail(u, "the master cannot store the file: %s", strerror(errno));
		return;
	}
	close(u->fd);
	u->fd = -1;
	log_info("blobs", "blob=%.12s name=%s bytes=%llu event=stored", u->hex, u->ref.name,
	         (unsigned long long)u->written);
	if (u->cl) {
		send_ack(u->m, u->cl->conn, u->sha, true, u->written, NULL);
		u->cl->blob = NULL;
	}
	upload_free(u);
}

static void write_done(uv_work_t *w, int status)
{
	struct blob_upload *u = w->data;
	u->busy = false;
	if (status < 0 || u->io_errno) {
		upload_fail(u, "the master cannot store the file: %s",
		            status < 0 ? uv_strerror(status) : strerror(u->io_errno));
		return;
	}
	u->written += u->inflight.len;
	buf_reset(&u->inflight);
	if (!u->cl) {
		upload_free(u); /* the client left; nothing more will come */
		return;
	}
	if (!u->last || u->pending.len)
		send_ack(u->m, u->cl->conn, u->sha, false, u->written, NULL);
	if (u->pending.len)
		start_write(u);
	else if (u->last)
		finish_upload(u); /* frees u */
}

static void start_write(struct blob_upload *u)
{
	struct buf tmp = u->inflight;
	u->inflight = u->pending;
	u->pending = tmp;
	u->busy = true;
	u->work.data = u;
	int rc = uv_queue_work(u->m->loop, &u->work, write_work, write_done);
	if (rc < 0) {
		u->busy = false;
		upload_fail(u, "the master cannot store the file: %s", uv_strerror(rc));
	}
}

void blobs_on_data(struct master *m, struct client *cl, const Shoal__BlobData *d)
{
	(void)m;
	struct blob_upload *u = cl->blob;
	if (!u || memcmp(d->sha256.data, u->sha, DIGEST_LEN) != 0 || u->last ||
	    d->offset != u->received) {
		server_drop(cl->conn, "blob data out of order or for a blob not offered");
		return;
	}
	if (u->received + d->data.len > u->ref.size ||
	    u->received - u->written + d->data.len > BLOB_WINDOW + BLOB_CHUNK) {
		server_drop(cl->conn, "blob data beyond the offered size or the window");
		return;
	}
	buf_append(&u->pending, d->data.data, d->data.len);
	u->received += d->data.len;
	if (d->has_last && d->last)
		u->last = true;
	if (u->busy)
		return;
	if (u->pending.len)
		start_write(u);
	else if (u->last)
		finish_upload(u);
}

void blobs_client_gone(struct client *cl)
{
	struct blob_upload *u = cl->blob;
	if (!u)
		return;
	cl->blob = NULL;
	u->cl = NULL;
	if (!u->busy)
		upload_free(u); /* else write_done frees it */
}

/* ---- serving workers ---- */

static void send_free(struct blob_send *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->chunk);
	free(s);
}

static void pump(struct worker *w);

static void on_chunk_read(uv_fs_t *req)
{
	struct blob_send *s = req->data;
	ssize_t n = req->result;
	uv_fs_req_cleanup(req);
	s->reading = false;
	struct worker *w = s->w;
	if (!w) {
		send_free(s);
		return;
	}
	if (n < 0) {
		log_error("blobs", "worker=%llu event=blob_read_failed error=\"%s\"",
		          (unsigned long long)w->id, uv_strerror((int)n));
		n = 0; /* an empty last chunk: the worker's size check fails the tasks */
		s->offset = s->size;
	}
	Shoal__BlobData d = SHOAL__BLOB_DATA__INIT;
	d.sha256.data = s->sha;
	d.sha256.len = DIGEST_LEN;
	d.offset = s->offset;
	d.data.data = s->chunk;
	d.data.len = (size_t)n;
	s->offset += (uint64_t)n;
	d.has_last = true;
	d.last = s->offset >= s->size || n == 0;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_DATA;
	env.blob_data = &d;
	conn_send(w->conn, &env);
	if (d.last) {
		list_unlink(&s->link);
		send_free(s);
	}
	pump(w);
}

/* Reads the next chunk of the first queued blob while the worker's connection has room. */
static void pump(struct worker *w)
{
	struct list_node *n = list_first(&w->blob_sends);
	if (!n || conn_closing(w->conn) || !conn_writable(w->conn))
		return;
	struct blob_send *s = list_entry(n, struct blob_send, link);
	if (s->reading)
		return;
	uint64_t len = s->size - s->offset < BLOB_CHUNK ? s->size - s->offset : BLOB_CHUNK;
	s->reading = true;
	s->req.data = s;
	uv_buf_t b = uv_buf_init((char *)s->chunk, (unsigned)len);
	int rc = uv_fs_read(w->m->loop, &s->req, s->fd, &b, 1, (int64_t)s->offset, on_chunk_read);
	if (rc < 0) {
		s->req.result = rc;
		on_chunk_read(&s->req);
	}
}

void blobs_on_request(struct worker *w, const Shoal__BlobRequest *r)
{
	char path[4096];
	blobs_path(w->m, r->sha256.data, path, sizeof(path));
	struct blob_send *s = xcalloc(1, sizeof(*s));
	memcpy(s->sha, r->sha256.data, DIGEST_LEN);
	s->w = w;
	s->fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (s->fd >= 0 && fstat(s->fd, &st) == 0)
		s->size = (uint64_t)st.st_size;
	else
		log_error("blobs", "worker=%llu event=blob_missing path=%s error=\"%s\"",
		          (unsigned long long)w->id, path, strerror(errno));
	s->chunk = xmalloc(BLOB_CHUNK);
	list_push_back(&w->blob_sends, &s->link);
	log_debug("blobs", "worker=%llu blob=%.12s bytes=%llu event=send",
	          (unsigned long long)w->id, path + strlen(path) - DIGEST_HEX_LEN,
	          (unsigned long long)s->size);
	pump(w);
}

void blobs_worker_drain(struct worker *w)
{
	pump(w);
}

void blobs_worker_gone(struct worker *w)
{
	struct list_node *n;
	while ((n = list_first(&w->blob_sends))) {
		struct blob_send *s = list_entry(n, struct blob_send, link);
		list_unlink(&s->link);
		s->w = NULL;
		if (!s->reading)
			send_free(s);
	}
}
