/* cache.c: the worker's content-addressed blob cache (see cache.h).
 *
 * Files: DIR/<64 hex digits> for cached blobs (mode 0555: readable and executable, so a
 * shipped script can be run from a task directory that links to it), DIR/.tmp.<hex>.<pid>.<n>
 * while a blob is being received.
 *
 * Ownership: the cache owns its entries and fetches. A pinned entry outlives its removal from
 * the index (eviction never picks it; cache_forget only unlinks it from the index) and is
 * freed at its last unpin. A fetch is owned by the loop thread except while one of its work
 * requests is in the pool: then the pool thread alone touches fd, tmp file and digest, and
 * the loop only queues more pieces and may mark the fetch abandoned. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "util.h"

#define SUBSYS "cache"

#define CACHE_BUCKETS   1024u /* the index is keyed by SHA-256: buckets fill evenly */
#define CACHE_TMP       ".tmp."
#define CACHE_MODE      0555
#define CACHE_HASH_STEP ((uint64_t)1 << 20) /* hashed per round: a few ms */
#define CACHE_READ_SIZE ((size_t)256 << 10)

struct cache_entry {
	struct cache *cache;
	struct cache_entry *hnext; /* hash chain */
	uint8_t sha[DIGEST_LEN];
	uint64_t size;
	uint64_t used; /* LRU clock at the last pin */
	unsigned pins;
	bool indexed; /* in the index; false once evicted or forgotten */
	char *path;
};

struct cache_piece {
	struct cache_piece *next;
	uint8_t *data;
	size_t len;
	bool last;
};

enum cache_work { CACHE_WORK_WRITE, CACHE_WORK_DISCARD };

struct cache_fetch {
	struct cache *cache;
	struct cache_fetch *next; /* in cache->fetches while active */
	uint8_t sha[DIGEST_LEN];
	char hex[DIGEST_HEX_LEN + 1];
	uint64_t size;
	uint64_t received;               /* bytes accepted so far (queued or written) */
	struct cache_piece *head, *tail; /* waiting for the pool */
	struct cache_piece *batch;       /* being written by the pool */
	bool active;                     /* in cache->fetches: pieces are still wanted */
	bool busy;                       /* a work request is in the pool */
	enum cache_work mode;
	uv_work_t work;

	/* The pool's while busy; the loop reads them in the after-work callback. */
	char *tmp;
	char *final;
	int fd;
	bool created;  /* tmp exists (or may) */
	bool got_last; /* the last piece is written */
	uint64_t written, hashed;
	bool complete; /* the last piece was verified and renamed into place */
	struct digest *digest;
	int status;
	char err[256];
};

struct cache {
	uv_loop_t *loop;
	char *dir;
	uint64_t max_bytes;
	struct cache_callbacks cb;
	void *arg;

	struct cache_entry *index[CACHE_BUCKETS];
	uint64_t bytes;
	size_t count;
	uint64_t clock;

	struct cache_fetch *fetches; /* active */
	unsigned inflight;           /* work and fs requests in the pool */
	uint64_t seq;                /* temp file names */
	bool closing;
	void (*on_closed)(void *arg);
	void *closed_arg;
};

static size_t cache_bucket(const uint8_t sha[DIGEST_LEN])
{
	return ((size_t)sha[0] << 8 | sha[1]) % CACHE_BUCKETS;
}

static int cache_parse_hex(const char *s, uint8_t out[DIGEST_LEN])
{
	for (size_t i = 0; i < DIGEST_LEN; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char ch = s[2 * i + (size_t)k];
			int d;
			if (ch >= '0' && ch <= '9')
				d = ch - '0';
			else if (ch >= 'a' && ch <= 'f')
				d = ch - 'a' + 10;
			else
				return -1;
			v = v * 16 + d;
		}
		out[i] = (uint8_t)v;
	}
	return s[2 * DIGEST_LEN] == '\0' ? 0 : -1;
}

/* ---- the index ---- */

static struct cache_entry *cache_find(const struct cache *c, const uint8_t sha[DIGEST_LEN])
{
	for (struct cache_entry *e = c->index[cache_bucket(sha)]; e != NULL; e = e->hnext)
		if (memcmp(e->sha, sha, DIGEST_LEN) == 0)
			return e;
	return NULL;
}

static void cache_entry_free(struct cache_entry *e)
{
	free(e->path);
	free(e);
}

static struct cache_entry *cache_insert(struct cache *c, const uint8_t sha[DIGEST_LEN],
                                        uint64_t size, uint64_t used)
{
	struct cache_entry *e = xcalloc(1, sizeof(*e));
	e->cache = c;
	memcpy(e->sha, sha, DIGEST_LEN);
	e->size = size;
	e->used = used;
	char hex[DIGEST_HEX_LEN + 1];
	digest_hex(sha, hex);
	size_t n = strlen(c->dir) + 1 + DIGEST_HEX_LEN + 1;
	e->path = xmalloc(n);
	snprintf(e->path, n, "%s/%s", c->dir, hex);
	size_t b = cache_bucket(sha);
	e->hnext = c->index[b];
	c->index[b] = e;
	e->indexed = true;
	c->bytes += size;
	c->count++;
	return e;
}

/* Takes e out of the index; frees it unless pinned (the last unpin does then). */
static void cache_remove(struct cache *c, struct cache_entry *e)
{
	struct cache_entry **pp = &c->index[cache_bucket(e->sha)];
	while (*pp != NULL && *pp != e)
		pp = &(*pp)->hnext;
	if (*pp == e)
		*pp = e->hnext;
	e->hnext = NULL;
	e->indexed = false;
	c->bytes -= e->size;
	c->count--;
	if (e->pins == 0)
		cache_entry_free(e);
}

static void cache_maybe_closed(struct cache *c)
{
	if (!c->closing || c->inflight > 0 || c->on_closed == NULL)
		return;
	void (*cb)(void *) = c->on_closed;
	c->on_closed = NULL;
	cb(c->closed_arg);
}

static void on_unlinked(uv_fs_t *req)
{
	struct cache *c = req->data;
	if (req->result < 0 && req->result != UV_ENOENT)
		log_warn(SUBSYS, "cannot remove %s: %s", req->path, uv_strerror((int)req->result));
	uv_fs_req_cleanup(req);
	free(req);
	c->inflight--;
	cache_maybe_closed(c);
}

static void cache_unlink_async(struct cache *c, const char *path)
{
	uv_fs_t *req = xcalloc(1, sizeof(*req));
	req->data = c;
	if (uv_fs_unlink(c->loop, req, path, on_unlinked) != 0) {
		free(req);
		return;
	}
	c->inflight++;
}

/* Removes least recently used unpinned blobs until the cache fits its bound. Pinned blobs
 * may keep it above the bound for a while; the next unpin tries again. */
static void cache_evict(struct cache *c)
{
	/* Closed: no new file work may start (cache_close has reported the pool empty). */
	while (!c->closing && c->bytes > c->max_bytes) {
		struct cache_entry *victim = NULL;
		for (size_t b = 0; b < CACHE_BUCKETS; b++)
			for (struct cache_entry *e = c->index[b]; e != NULL; e = e->hnext)
				if (e->pins == 0 && (victim == NULL || e->used < victim->used))
					victim = e;
		if (victim == NULL)
			return;
		char hex[DIGEST_HEX_LEN + 1];
		digest_hex(victim->sha, hex);
		log_info(SUBSYS,
		         "event=evicted sha256=%s size=%" PRIu64 " cache_bytes=%" PRIu64
		         " max_bytes=%" PRIu64,
		         hex, victim->size, c->bytes, c->max_bytes);
		cache_unlink_async(c, victim->path);
		cache_remove(c, victim);
	}
}

struct cache_entry *cache_pin(struct cache *c, const uint8_t sha[DIGEST_LEN], uint64_t size)
{
	struct cache_entry *e = cache_find(c, sha);
	if (e == NULL)
		return NULL;
	if (e->size != size) {
		/* Same hash, other size: the file is damaged (or the sender lies); either way
		 * it cannot be this blob. Replace it. */
		char hex[DIGEST_HEX_LEN + 1];
		digest_hex(sha, hex);
		log_warn(SUBSYS,
		         "sha256=%s: cached file has %" PRIu64 " bytes, expected %" PRIu64
		         "; fetching it again",
		         hex, e->size, size);
		if (e->pins == 0 && !c->closing)
			cache_unlink_async(c, e->path);
		cache_remove(c, e);
		return NULL;
	}
	e->pins++;
	e->used = ++c->clock;
	return e;
}

void cache_unpin(struct cache_entry **ep)
{
	struct cache_entry *e = *ep;
	if (e == NULL)
		return;
	*ep = NULL;
	struct cache *c = e->cache;
	if (e->pins > 0)
		e->pins--;
	if (e->pins > 0)
		return;
	if (!e->indexed) {
		cache_entry_free(e);
		return;
	}
	cache_evict(c);
}

const char *cache_entry_path(const struct cache_entry *e)
{
	return e->path;
}

void cache_forget(struct cache_entry *e)
{
	if (e->indexed)
		cache_remove(e->cache, e);
}

/* ---- fetching ---- */

static struct cache_fetch *cache_find_fetch(const struct cache *c, const uint8_t sha[DIGEST_LEN])
{
	for (struct cache_fetch *f = c->fetches; f != NULL; f = f->next)
		if (memcmp(f->sha, sha, DIGEST_LEN) == 0)
			return f;
	return NULL;
}

bool cache_fetching(const struct cache *c, const uint8_t sha[DIGEST_LEN])
{
	return cache_find_fetch(c, sha) != NULL;
}

static void cache_pieces_free(struct cache_piece *p)
{
	while (p != NULL) {
		struct cache_piece *next = p->next;
		free(p->data);
		free(p);
		p = next;
	}
}

static void cache_fetch_free(struct cache_fetch *f)
{
	cache_pieces_free(f->head);
	cache_pieces_free(f->batch);
	if (f->digest != NULL) {
		uint8_t junk[DIGEST_LEN];
		digest_finish(&f->digest, junk);
	}
	free(f->tmp);
	free(f->final);
	free(f);
}

static void cache_fetch_unlink(struct cache *c, struct cache_fetch *f)
{
	struct cache_fetch **pp = &c->fetches;
	while (*pp != NULL && *pp != f)
		pp = &(*pp)->next;
	if (*pp == f)
		*pp = f->next;
	f->next = NULL;
	f->active = false;
}

/* Pool thread: hashes up to CACHE_HASH_STEP more bytes of what is written, reading them
 * back (from the page cache). */
static int cache_work_hash(struct cache_fetch *f)
{
	uint64_t stop =
	    f->written - f->hashed > CACHE_HASH_STEP ? f->hashed + CACHE_HASH_STEP : f->written;
	uint8_t *buf = xmalloc(CACHE_READ_SIZE);
	int rc = 0;
	while (f->hashed < stop) {
		size_t want = stop - f->hashed < CACHE_READ_SIZE ? (size_t)(stop - f->hashed)
		                                                 : CACHE_READ_SIZE;
		ssize_t n = pread(f->fd, buf, want, (off_t)f->hashed);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = errorf(f->err, sizeof(f->err), "cannot read back %s: %s", f->tmp,
			            n < 0 ? strerror(errno) : "file shrank");
			break;
		}
		digest_update(f->digest, buf, (size_t)n);
		f->hashed += (uint64_t)n;
	}
	free(buf);
	return rc;
}

/* Pool thread: the last byte is hashed: verify, then rename into place. */
static int cache_work_finish(struct cache_fetch *f)
{
	uint8_t got[DIGEST_LEN];
	digest_finish(&f->digest, got);
	int rc = close(f->fd);
	f->fd = -1;
	if (rc != 0)
		return errorf(f->err, sizeof(f->err), "cannot write %s: %s", f->tmp,
		              strerror(errno));
	if (memcmp(got, f->sha, DIGEST_LEN) != 0) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_hex(got, hex);
		return errorf(f->err, sizeof(f->err),
		              "blob %s arrived with SHA-256 %s: corrupted in transit", f->hex, hex);
	}
	if (rename(f->tmp, f->final) != 0)
		return errorf(f->err, sizeof(f->err), "cannot rename %s to %s: %s", f->tmp,
		              f->final, strerror(errno));
	f->created = false;
	f->complete = true;
	return 0;
}

/* Pool thread: writes the batch, then hashes a step of the file. Writing is much faster than
 * SHA-256, so pieces are written (and their memory freed) as soon as they come, and hashing
 * follows behind from the page cache: the worker never holds more than a moment's worth of
 * a blob in memory, however fast the master sends it. */
static int cache_work_write(struct cache_fetch *f)
{
	if (f->fd < 0) {
		f->fd = open(f->tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, CACHE_MODE);
		if (f->fd < 0)
			return errorf(f->err, sizeof(f->err), "cannot create %s: %s", f->tmp,
			              strerror(errno));
		f->created = true;
		f->digest = digest_create();
	}
	for (struct cache_piece *p = f->batch; p != NULL; p = p->next) {
		for (size_t off = 0; off < p->len;) {
			ssize_t n = write(f->fd, p->data + off, p->len - off);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return errorf(f->err, sizeof(f->err), "cannot write %s: %s", f->tmp,
				              strerror(errno));
			}
			off += (size_t)n;
		}
		f->written += p->len;
		if (p->last)
			f->got_last = true;
	}
	/* With pieces waiting, the next round writes them first; the loop decides. */
	if (f->hashed < f->written && cache_work_hash(f) != 0)
		return -1;
	if (f->got_last && f->hashed == f->written)
		return cache_work_finish(f);
	return 0;
}

static void cache_work_discard(struct cache_fetch *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
	if (f->created) {
		(void)unlink(f->tmp);
		f->created = false;
	}
}

static void on_fetch_work(uv_work_t *req)
{
	struct cache_fetch *f = req->data;
	if (f->mode == CACHE_WORK_DISCARD) {
		cache_work_discard(f);
		return;
	}
	f->status = cache_work_write(f);
	if (f->status != 0)
		cache_work_discard(f);
}

static void on_fetch_done(uv_work_t *req, int status);

static void cache_fetch_queue(struct cache_fetch *f, enum cache_work mode)
{
	struct cache *c = f->cache;
	f->mode = mode;
	f->busy = true;
	f->work.data = f;
	int rc = uv_queue_work(c->loop, &f->work, on_fetch_work, on_fetch_done);
	if (rc != 0) {
		/* Cannot happen with valid arguments; do the work here rather than leak it. */
		on_fetch_work(&f->work);
		c->inflight++;
		on_fetch_done(&f->work, rc);
		return;
	}
	c->inflight++;
}

/* The fetch is over (failed, abandoned): remove what it left, then free it. */
static void cache_fetch_discard(struct cache_fetch *f)
{
	if (f->active)
		cache_fetch_unlink(f->cache, f);
	if (f->busy)
		return; /* on_fetch_done comes back here */
	if (f->created || f->fd >= 0) {
		cache_fetch_queue(f, CACHE_WORK_DISCARD);
		return;
	}
	cache_fetch_free(f);
}

static void cache_fetch_fail(struct cache_fetch *f, const char *why)
{
	struct cache *c = f->cache;
	log_warn(SUBSYS, "event=fetch_failed sha256=%s why=\"%s\"", f->hex, why);
	bool report = f->active;
	uint8_t sha[DIGEST_LEN];
	memcpy(sha, f->sha, DIGEST_LEN);
	char msg[sizeof(f->err)];
	snprintf(msg, sizeof(msg), "%s", why);
	cache_fetch_discard(f); /* may free f */
	if (report && c->cb.on_fetched != NULL)
		c->cb.on_fetched(c->arg, sha, -1, msg);
}

static void cache_fetch_kick(struct cache_fetch *f)
{
	if (f->busy)
		return;
	/* Nothing new, but written bytes still to hash: another round. */
	if (f->head == NULL && f->created && (f->hashed < f->written || f->got_last)) {
		cache_fetch_queue(f, CACHE_WORK_WRITE);
		return;
	}
	if (f->head == NULL)
		return;
	f->batch = f->head;
	f->head = f->tail = NULL;
	cache_fetch_queue(f, CACHE_WORK_WRITE);
}

static void on_fetch_done(uv_work_t *req, int status)
{
	struct cache_fetch *f = req->data;
	struct cache *c = f->cache;
	c->inflight--;
	f->busy = false;
	cache_pieces_free(f->batch);
	f->batch = NULL;
	if (status != 0 && f->mode == CACHE_WORK_WRITE && f->status == 0)
		f->status =
		    errorf(f->err, sizeof(f->err), "file work not run: %s", uv_strerror(status));

	if (f->mode == CACHE_WORK_DISCARD) {
		cache_fetch_discard(f);
	} else if (f->complete) {
		/* Verified and in place, even if nobody waits any more: keep it. */
		bool report = f->active;
		if (f->active)
			cache_fetch_unlink(c, f);
		struct cache_entry *old = cache_find(c, f->sha);
		if (old != NULL)
			cache_remove(c, old);
		cache_insert(c, f->sha, f->size, ++c->clock);
		log_info(SUBSYS, "stored sha256=%s size=%" PRIu64 " cache_bytes=%" PRIu64, f->hex,
		         f->size, c->bytes);
		uint8_t sha[DIGEST_LEN];
		memcpy(sha, f->sha, DIGEST_LEN);
		cache_fetch_free(f);
		/* The waiters pin the blob before anything is evicted. */
		if (report && c->cb.on_fetched != NULL)
			c->cb.on_fetched(c->arg, sha, 0, NULL);
		cache_evict(c);
	} else if (f->status != 0) {
		char why[sizeof(f->err)];
		snprintf(why, sizeof(why), "%s", f->err);
		cache_fetch_fail(f, why);
	} else if (!f->active) {
		cache_fetch_discard(f);
	} else {
		cache_fetch_kick(f);
	}
	cache_maybe_closed(c);
}

void cache_fetch(struct cache *c, const uint8_t sha[DIGEST_LEN], uint64_t size)
{
	if (c->closing || cache_find_fetch(c, sha) != NULL)
		return;
	struct cache_fetch *f = xcalloc(1, sizeof(*f));
	f->cache = c;
	memcpy(f->sha, sha, DIGEST_LEN);
	digest_hex(sha, f->hex);
	f->size = size;
	f->fd = -1;
	size_t n = strlen(c->dir) + 128;
	f->tmp = xmalloc(n);
	snprintf(f->tmp, n, "%s/" CACHE_TMP "%s.%ld.%" PRIu64, c->dir, f->hex, (long)getpid(),
	         ++c->seq);
	f->final = xmalloc(n);
	snprintf(f->final, n, "%s/%s", c->dir, f->hex);
	f->active = true;
	f->next = c->fetches;
	c->fetches = f;
	log_debug(SUBSYS, "fetch sha256=%s size=%" PRIu64, f->hex, size);
	if (c->cb.on_request != NULL)
		c->cb.on_request(c->arg, sha);
}

void cache_on_data(struct cache *c, const Shoal__BlobData *d)
{
	if (d->sha256.len != DIGEST_LEN)
		return;
	struct cache_fetch *f = cache_find_fetch(c, d->sha256.data);
	if (f == NULL) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_hex(d->sha256.data, hex);
		log_debug(SUBSYS, "blob data for sha256=%s, which is not being fetched; ignored",
		          hex);
		return;
	}
	char why[256];
	if (d->offset != f->received) {
		snprintf(why, sizeof(why),
		         "piece at offset %" PRIu64 " while %" PRIu64 " bytes were received",
		         d->offset, f->received);
		cache_fetch_fail(f, why);
		return;
	}
	if (d->data.len > f->size - f->received) {
		snprintf(why, sizeof(why), "more than the announced %" PRIu64 " bytes arrived",
		         f->size);
		cache_fetch_fail(f, why);
		return;
	}
	bool last = d->has_last && d->last;
	if (last && f->received + d->data.len != f->size) {
		snprintf(why, sizeof(why), "ended after %" PRIu64 " of %" PRIu64 " bytes",
		         f->received + d->data.len, f->size);
		cache_fetch_fail(f, why);
		return;
	}
	struct cache_piece *p = xcalloc(1, sizeof(*p));
	p->len = d->data.len;
	p->data = xmalloc(p->len > 0 ? p->len : 1);
	if (p->len > 0)
		memcpy(p->data, d->data.data, p->len);
	p->last = last;
	if (f->tail != NULL)
		f->tail->next = p;
	else
		f->head = p;
	f->tail = p;
	f->received += p->len;
	cache_fetch_kick(f);
}

void cache_abort(struct cache *c)
{
	while (c->fetches != NULL) {
		struct cache_fetch *f = c->fetches;
		log_debug(SUBSYS, "fetch sha256=%s abandoned after %" PRIu64 " bytes", f->hex,
		          f->received);
		/* Out of the list first, whatever its state: the loop must make progress. */
		cache_fetch_unlink(c, f);
		cache_fetch_discard(f);
	}
}

void cache_close(struct cache *c, void (*on_closed)(void *arg), void *arg)
{
	cache_abort(c);
	c->closing = true;
	c->on_closed = on_closed;
	c->closed_arg = arg;
	cache_maybe_closed(c);
}

/* ---- open / destroy ---- */

int cache_default_dir(char *out, size_t outlen)
{
	if (geteuid() == 0) {
		snprintf(out, outlen, "/var/cache/shoal");
		return 0;
	}
	const char *xdg = getenv("XDG_CACHE_HOME");
	if (xdg != NULL && xdg[0] == '/') {
		snprintf(out, outlen, "%s/shoal", xdg);
		return 0;
	}
	const char *home = getenv("HOME");
	if (home == NULL || home[0] != '/') {
		struct passwd *pw = getpwuid(geteuid());
		home = pw != NULL ? pw->pw_dir : NULL;
	}
	if (home == NULL || home[0] != '/')
		return -1;
	snprintf(out, outlen, "%s/.cache/shoal", home);
	return 0;
}

/* A temp file whose writer is gone is garbage; a live writer (another worker sharing the
 * directory, against the advice) keeps its own. */
static void cache_scan_tmp(const char *dir, const char *name)
{
	const char *dot = strrchr(name, '.');
	if (dot == NULL || dot == name)
		return;
	const char *p = dot - 1;
	while (p > name && *p != '.')
		p--;
	long pid = strtol(p + 1, NULL, 10);
	if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))
		return;
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (unlink(path) == 0)
		log_debug(SUBSYS, "removed stale %s", path);
}

static int cache_scan(struct cache *c, char *err, size_t errlen)
{
	DIR *d = opendir(c->dir);
	if (d == NULL)
		return errorf(err, errlen, "cannot read cache directory %s: %s", c->dir,
		              strerror(errno));
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, CACHE_TMP, strlen(CACHE_TMP)) == 0) {
			cache_scan_tmp(c->dir, de->d_name);
			continue;
		}
		uint8_t sha[DIGEST_LEN];
		if (strlen(de->d_name) != DIGEST_HEX_LEN || cache_parse_hex(de->d_name, sha) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		/* Older files first out: the modification time is when it was stored. */
		uint64_t used =
		    (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
		cache_insert(c, sha, (uint64_t)st.st_size, used);
		if (used > c->clock)
			c->clock = used;
	}
	closedir(d);
	return 0;
}

struct cache *cache_open(uv_loop_t *loop, const char *dir, uint64_t max_bytes,
                         const struct cache_callbacks *cb, void *arg, char *err, size_t errlen)
{
	if (fs_mkdir_p(dir, 0700, err, errlen) != 0)
		return NULL;
	if (access(dir, W_OK | X_OK) != 0) {
		errorf(err, errlen, "cannot write to cache directory %s: %s", dir, strerror(errno));
		return NULL;
	}
	struct cache *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	c->dir = xstrdup(dir);
	c->max_bytes = max_bytes;
	if (cb != NULL)
		c->cb = *cb;
	c->arg = arg;
	if (cache_scan(c, err, errlen) != 0) {
		cache_destroy(&c);
		return NULL;
	}
	log_info(SUBSYS, "event=opened dir=%s blobs=%zu bytes=%" PRIu64 " max_bytes=%" PRIu64,
	         c->dir, c->count, c->bytes, c->max_bytes);
	/* A smaller bound than last time takes effect at once; nothing is pinned yet. */
	cache_evict(c);
	return c;
}

void cache_destroy(struct cache **cp)
{
	struct cache *c = *cp;
	if (c == NULL)
		return;
	if (c->inflight > 0) {
		/* Pool work still refers to c: freeing it would be a use-after-free. */
		log_error(SUBSYS, "destroyed with %u file operations in flight; leaking it",
		          c->inflight);
		*cp = NULL;
		return;
	}
	while (c->fetches != NULL) {
		struct cache_fetch *f = c->fetches;
		cache_fetch_unlink(c, f);
		cache_fetch_free(f);
	}
	for (size_t b = 0; b < CACHE_BUCKETS; b++) {
		struct cache_entry *e = c->index[b];
		while (e != NULL) {
			struct cache_entry *next = e->hnext;
			if (e->pins > 0) {
				/* Its holder will unpin it later: leave it to that. */
				log_error(SUBSYS, "destroyed with %s pinned", e->path);
				e->indexed = false;
				e->hnext = NULL;
			} else {
				cache_entry_free(e);
			}
			e = next;
		}
	}
	free(c->dir);
	free(c);
	*cp = NULL;
}

const char *cache_dir(const struct cache *c)
{
	return c->dir;
}

uint64_t cache_bytes(const struct cache *c)
{
	return c->bytes;
}

size_t cache_count(const struct cache *c)
{
	return c->count;
}
