/* prep.c: getting tasks ready to run (see prep.h).
 *
 * Ownership: waiting tasks belong to prep until on_ready or on_failed hands them on. Sides
 * (broadcast bytes) and plugins belong to prep; a task holds a counted reference to its
 * side, and a side nobody uses is kept SIDE_LINGER_MS in case the job's next task comes (the
 * master often hands tasks out one at a time), then unmapped. Plugins stay loaded for the
 * worker's life: unloading code that a pool thread might still run is not worth the risk. */
#include "prep.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "ops.h"
#include "plugin.h"
#include "util.h"

#define SUBSYS "prep"

#define SIDE_LINGER_MS 10000u
#define SIDE_SWEEP_MS  1000u
#define SEEN_JOBS      1024u /* jobs remembered for the first-task cache_hits line */

enum load_state { LOAD_RUNNING, LOAD_READY, LOAD_FAILED };

/* The bytes of one broadcast file, keyed by content. */
struct prep_side {
	struct task_side side; /* first: its release callback finds us */
	struct prep *prep;
	struct prep_side *next;
	uint8_t sha[DIGEST_LEN];
	uint64_t size;
	enum load_state state;
	struct cache_entry *pin; /* while loading */
	char *path;
	void *map;
	char err[512];
	uint64_t idle_since_ms; /* refs == 0 since then (loop time) */
	uv_work_t work;
};

struct prep_plugin {
	struct prep *prep;
	struct prep_plugin *next;
	uint8_t sha[DIGEST_LEN];
	enum load_state state;
	struct cache_entry *pin; /* while loading */
	char *path;
	char *name; /* the file's name as shipped, for messages */
	struct plugin *p;
	char err[512];
	uv_work_t work;
};

struct prep {
	uv_loop_t *loop;
	struct cache *cache;
	char *name;
	bool allow_exec;
	char *cache_error;
	struct prep_callbacks cb;
	void *arg;

	struct task *head, *tail; /* waiting */
	size_t nwaiting;
	struct prep_side *sides;
	struct prep_plugin *plugins;
	unsigned inflight; /* loads in the pool */
	uv_timer_t sweep;
	bool sweep_open;

	uint64_t seen[SEEN_JOBS];
	size_t nseen;
	uint64_t hits;

	bool stopping;
	void (*on_stopped)(void *arg);
	void *stopped_arg;
};

/* ---- the waiting list ---- */

static void prep_push(struct prep *p, struct task *t)
{
	t->next = NULL;
	t->prev = p->tail;
	if (p->tail != NULL)
		p->tail->next = t;
	else
		p->head = t;
	p->tail = t;
	p->nwaiting++;
}

static void prep_unlink(struct prep *p, struct task *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		p->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	else
		p->tail = t->prev;
	t->prev = t->next = NULL;
	p->nwaiting--;
}

static void prep_maybe_stopped(struct prep *p)
{
	if (!p->stopping || p->inflight > 0 || p->sweep_open || p->on_stopped == NULL)
		return;
	void (*cb)(void *) = p->on_stopped;
	p->on_stopped = NULL;
	cb(p->stopped_arg);
}

/* Hands a failed task (not in the list) to on_failed. */
static void prep_fail(struct prep *p, struct task *t)
{
	p->cb.on_failed(p->arg, &t->res);
}

static void prep_fail_waiting(struct prep *p, struct task *t, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void prep_fail_waiting(struct prep *p, struct task *t, bool permanent, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	prep_unlink(p, t);
	task_fail(t, permanent, "%s", msg);
	prep_fail(p, t);
}

/* ---- sides: broadcast bytes ---- */

static bool prep_needs_side(const struct task *t)
{
	return t->broadcast != NULL && t->exec == NULL && t->plugin == NULL;
}

static void prep_side_free(struct prep_side *s)
{
	if (s->map != NULL)
		munmap(s->map, s->size);
	cache_unpin(&s->pin);
	free(s->path);
	free(s);
}

static void prep_side_unlink(struct prep *p, struct prep_side *s)
{
	struct prep_side **pp = &p->sides;
	while (*pp != NULL && *pp != s)
		pp = &(*pp)->next;
	if (*pp == s)
		*pp = s->next;
	s->next = NULL;
}

static void on_sweep(uv_timer_t *h)
{
	struct prep *p = h->data;
	uint64_t now = uv_now(p->loop);
	bool idle_left = false;
	struct prep_side *next;
	for (struct prep_side *s = p->sides; s != NULL; s = next) {
		next = s->next;
		if (s->state != LOAD_READY || s->side.refs > 0)
			continue;
		if (now - s->idle_since_ms >= SIDE_LINGER_MS || p->stopping) {
			prep_side_unlink(p, s);
			prep_side_free(s);
		} else {
			idle_left = true;
		}
	}
	if (!idle_left)
		uv_timer_stop(&p->sweep);
}

static void prep_side_release(struct task_side *ts)
{
	struct prep_side *s = (struct prep_side *)(void *)ts;
	struct prep *p = s->prep;
	s->idle_since_ms = uv_now(p->loop);
	if (p->sweep_open && !uv_is_active((uv_handle_t *)&p->sweep))
		uv_timer_start(&p->sweep, on_sweep, SIDE_SWEEP_MS, SIDE_SWEEP_MS);
}

/* Pool thread: maps the file (the pages are read as the op touches them, in its thread). */
static void on_side_work(uv_work_t *req)
{
	struct prep_side *s = req->data;
	int fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(s->err, sizeof(s->err), "cannot read %s: %s", s->path, strerror(errno));
		return;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != s->size) {
		snprintf(s->err, sizeof(s->err), "%s does not have the expected %" PRIu64 " bytes",
		         s->path, s->size);
		close(fd);
		return;
	}
	if (s->size > 0) {
		void *m = mmap(NULL, s->size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			snprintf(s->err, sizeof(s->err), "cannot map %s: %s", s->path,
			         strerror(errno));
		else
			s->map = m;
	}
	close(fd);
}

static void prep_advance(struct prep *p, struct task *t);
static void prep_advance_all(struct prep *p);

static void on_side_done(uv_work_t *req, int status)
{
	struct prep_side *s = req->data;
	struct prep *p = s->prep;
	p->inflight--;
	if (status != 0 && s->err[0] == '\0')
		snprintf(s->err, sizeof(s->err), "not loaded: %s", uv_strerror(status));
	if (s->err[0] != '\0') {
		log_warn(SUBSYS, "broadcast: %s", s->err);
		s->state = LOAD_FAILED;
		if (s->pin != NULL)
			cache_forget(s->pin);
	} else {
		s->state = LOAD_READY;
		s->side.data = s->map != NULL ? s->map : (const uint8_t *)"";
		s->side.len = s->size;
	}
	cache_unpin(&s->pin);
	prep_advance_all(p);
	if (s->state == LOAD_FAILED) {
		/* Every waiter has failed by now; the next task tries afresh. */
		prep_side_unlink(p, s);
		prep_side_free(s);
	} else if (s->side.refs == 0) {
		prep_side_release(&s->side);
	}
	prep_maybe_stopped(p);
}

static struct prep_side *prep_side_get(struct prep *p, struct task *t)
{
	for (struct prep_side *s = p->sides; s != NULL; s = s->next)
		if (memcmp(s->sha, t->broadcast->sha, DIGEST_LEN) == 0 &&
		    s->size == t->broadcast->size)
			return s;
	struct prep_side *s = xcalloc(1, sizeof(*s));
	s->prep = p;
	s->side.release = prep_side_release;
	memcpy(s->sha, t->broadcast->sha, DIGEST_LEN);
	s->size = t->broadcast->size;
	s->state = LOAD_RUNNING;
	/* Pinned on its own account: the task that asked may be cancelled meanwhile. */
	s->pin = cache_pin(p->cache, s->sha, s->size);
	s->path = xstrdup(cache_entry_path(t->broadcast->entry));
	s->next = p->sides;
	p->sides = s;
	s->work.data = s;
	if (uv_queue_work(p->loop, &s->work, on_side_work, on_side_done) != 0) {
		on_side_work(&s->work);
		p->inflight++;
		on_side_done(&s->work, 0);
		return NULL; /* settled; the caller's advance found it already */
	}
	p->inflight++;
	return s;
}

/* ---- plugins ---- */

static void on_plugin_work(uv_work_t *req)
{
	struct prep_plugin *pl = req->data;
	char why[sizeof(pl->err)] = "";
	pl->p = plugin_load(pl->path, why, sizeof(why));
	if (pl->p != NULL)
		return;
	/* The loader names the file it opened, a hash in the cache; the user knows the name
	 * they shipped. */
	const char *at = strstr(why, pl->path);
	if (at != NULL)
		(void)errorf(pl->err, sizeof(pl->err), "%.*s%s%s", (int)(at - why), why, pl->name,
		             at + strlen(pl->path));
	else
		(void)errorf(pl->err, sizeof(pl->err), "plugin %s: %s", pl->name,
		             why[0] != '\0' ? why : "cannot be loaded");
}

static void on_plugin_done(uv_work_t *req, int status)
{
	struct prep_plugin *pl = req->data;
	struct prep *p = pl->prep;
	p->inflight--;
	if (status != 0 && pl->p == NULL && pl->err[0] == '\0')
		snprintf(pl->err, sizeof(pl->err), "plugin not loaded: %s", uv_strerror(status));
	pl->state = pl->p != NULL ? LOAD_READY : LOAD_FAILED;
	if (pl->p != NULL) {
		const struct shoal_plugin *d = plugin_desc(pl->p);
		log_info(SUBSYS, "event=plugin_loaded name=%s path=%s",
		         d != NULL && d->name != NULL ? d->name : "?", pl->path);
	} else {
		log_warn(SUBSYS, "%s", pl->err);
	}
	cache_unpin(&pl->pin);
	prep_advance_all(p);
	prep_maybe_stopped(p);
}

static struct prep_plugin *prep_plugin_get(struct prep *p, struct task *t)
{
	for (struct prep_plugin *pl = p->plugins; pl != NULL; pl = pl->next)
		if (memcmp(pl->sha, t->plugin->sha, DIGEST_LEN) == 0)
			return pl;
	struct prep_plugin *pl = xcalloc(1, sizeof(*pl));
	pl->prep = p;
	memcpy(pl->sha, t->plugin->sha, DIGEST_LEN);
	pl->state = LOAD_RUNNING;
	pl->pin = cache_pin(p->cache, pl->sha, t->plugin->size);
	pl->path = xstrdup(cache_entry_path(t->plugin->entry));
	pl->name = xstrdup(t->plugin->name);
	pl->next = p->plugins;
	p->plugins = pl;
	pl->work.data = pl;
	p->inflight++;
	if (uv_queue_work(p->loop, &pl->work, on_plugin_work, on_plugin_done) != 0) {
		on_plugin_work(&pl->work);
		on_plugin_done(&pl->work, 0);
		return NULL;
	}
	return pl;
}

/* ---- advancing ---- */

/* Moves a waiting task on as far as it can go now. */
static void prep_advance(struct prep *p, struct task *t)
{
	if (t->missing > 0)
		return;
	if (prep_needs_side(t) && t->side == NULL) {
		struct prep_side *s = prep_side_get(p, t);
		if (s == NULL)
			return; /* settled synchronously: prep_advance_all ran */
		if (s->state == LOAD_RUNNING)
			return;
		if (s->state == LOAD_FAILED) {
			prep_fail_waiting(p, t, false, "broadcast file %s: %s", t->broadcast->name,
			                  s->err);
			return;
		}
		t->side = &s->side;
		s->side.refs++;
	}
	if (t->plugin != NULL && t->exec == NULL && t->plugin_obj == NULL) {
		struct prep_plugin *pl = prep_plugin_get(p, t);
		if (pl == NULL || pl->state == LOAD_RUNNING)
			return;
		if (pl->state == LOAD_FAILED) {
			prep_fail_waiting(p, t, true, "%s", pl->err);
			return;
		}
		t->plugin_obj = pl->p;
	}
	prep_unlink(p, t);
	p->cb.on_ready(p->arg, t);
}

static void prep_advance_all(struct prep *p)
{
	struct task *next;
	for (struct task *t = p->head; t != NULL; t = next) {
		next = t->next;
		prep_advance(p, t);
	}
}

/* ---- files ---- */

/* Pins a file if cached; else counts it missing and has the cache fetch it. */
static bool prep_pin_file(struct prep *p, struct task *t, struct task_file *f)
{
	f->entry = cache_pin(p->cache, f->sha, f->size);
	if (f->entry != NULL) {
		char hex[DIGEST_HEX_LEN + 1];
		digest_hex(f->sha, hex);
		log_debug(SUBSYS, "cache hit job=%" PRIu64 " task=%" PRIu32 " file=%s sha256=%s",
		          t->res.ref.job_id, t->res.ref.task_id, f->name, hex);
		return true;
	}
	t->missing++;
	cache_fetch(p->cache, f->sha, f->size);
	return false;
}

static bool prep_first_of_job(struct prep *p, uint64_t job_id)
{
	size_t n = p->nseen < SEEN_JOBS ? p->nseen : SEEN_JOBS;
	for (size_t i = 0; i < n; i++)
		if (p->seen[i] == job_id)
			return false;
	p->seen[p->nseen++ % SEEN_JOBS] = job_id;
	return true;
}

/* The task's i-th shipped file, counting files, then broadcast, then plugin; NULL past the
 * end or for an absent broadcast or plugin. Iterate i over 0..nfiles+1. */
static struct task_file *prep_task_file(struct task *t, size_t i)
{
	if (i < t->nfiles)
		return &t->files[i];
	if (i == t->nfiles)
		return t->broadcast;
	if (i == t->nfiles + 1)
		return t->plugin;
	return NULL;
}

void prep_submit(struct prep *p, struct task *t)
{
	if (p->stopping) {
		task_free(&t);
		return;
	}
	if (t->failed_early) {
		prep_fail(p, t);
		return;
	}
	if ((t->exec != NULL || t->plugin != NULL) && !p->allow_exec) {
		task_fail(t, true, "worker %s does not run %s (start it with --allow-exec)",
		          p->name, t->exec != NULL ? "--exec commands" : "--plugin code");
		prep_fail(p, t);
		return;
	}
	size_t nrefs = t->nfiles + (t->broadcast != NULL) + (t->plugin != NULL);
	if (nrefs > 0 && p->cache == NULL) {
		task_fail(t, false, "worker %s cannot take shipped files: %s", p->name,
		          p->cache_error != NULL ? p->cache_error : "no cache directory");
		prep_fail(p, t);
		return;
	}
	unsigned hits = 0;
	for (size_t i = 0; i < t->nfiles + 2; i++) {
		struct task_file *f = prep_task_file(t, i);
		if (f != NULL)
			hits += prep_pin_file(p, t, f) ? 1u : 0u;
	}
	p->hits += hits;
	if (nrefs > 0 && prep_first_of_job(p, t->res.ref.job_id) && hits > 0)
		log_info(SUBSYS,
		         "cache_hits job=%" PRIu64 " task=%" PRIu32 " hits=%u misses=%u "
		         "worker_hits=%" PRIu64,
		         t->res.ref.job_id, t->res.ref.task_id, hits, t->missing, p->hits);
	prep_push(p, t);
	prep_advance(p, t);
}

void prep_on_fetched(struct prep *p, const uint8_t sha[DIGEST_LEN], int status, const char *err)
{
	char hex[DIGEST_HEX_LEN + 1];
	digest_hex(sha, hex);
	struct task *next;
	for (struct task *t = p->head; t != NULL; t = next) {
		next = t->next;
		const char *failed = NULL;
		for (size_t i = 0; i < t->nfiles + 2; i++) {
			struct task_file *f = prep_task_file(t, i);
			if (f == NULL || f->entry != NULL || memcmp(f->sha, sha, DIGEST_LEN) != 0)
				continue;
			if (status == 0)
				f->entry = cache_pin(p->cache, f->sha, f->size);
			if (f->entry == NULL) {
				failed = f->name;
				break;
			}
			t->missing--;
		}
		if (failed != NULL)
			prep_fail_waiting(p, t, false, "cannot fetch file %s (sha256 %s): %s",
			                  failed, hex,
			                  status == 0 ? "size differs from its reference"
			                              : (err != NULL ? err : "failed"));
		else
			prep_advance(p, t);
	}
}

size_t prep_cancel(struct prep *p, const struct task_ref *refs, size_t n)
{
	size_t found = 0;
	struct task *next;
	for (struct task *t = p->head; t != NULL && n > 0; t = next) {
		next = t->next;
		if (bsearch(&t->res.ref, refs, n, sizeof(*refs), task_ref_cmp) != NULL) {
			prep_unlink(p, t);
			task_free(&t);
			found++;
		}
	}
	return found;
}

void prep_drop(struct prep *p)
{
	/* Job ids are the master's: the next master (or this one restarted) may reuse them. */
	p->nseen = 0;
	struct task *t;
	while ((t = p->head) != NULL) {
		prep_unlink(p, t);
		task_free(&t);
	}
}

static void on_sweep_closed(uv_handle_t *h)
{
	struct prep *p = h->data;
	p->sweep_open = false;
	prep_maybe_stopped(p);
}

void prep_stop(struct prep *p, void (*on_stopped)(void *arg), void *arg)
{
	if (p->stopping)
		return;
	p->stopping = true;
	p->on_stopped = on_stopped;
	p->stopped_arg = arg;
	prep_drop(p);
	uv_close((uv_handle_t *)&p->sweep, on_sweep_closed);
}

size_t prep_waiting(const struct prep *p)
{
	return p->nwaiting;
}

struct prep *prep_create(uv_loop_t *loop, struct cache *cache, const struct prep_config *cfg,
                         const struct prep_callbacks *cb, void *arg)
{
	struct prep *p = xcalloc(1, sizeof(*p));
	p->loop = loop;
	p->cache = cache;
	p->name = xstrdup(cfg->worker_name != NULL ? cfg->worker_name : "?");
	p->allow_exec = cfg->allow_exec;
	if (cfg->cache_error != NULL)
		p->cache_error = xstrdup(cfg->cache_error);
	p->cb = *cb;
	p->arg = arg;
	uv_timer_init(loop, &p->sweep);
	p->sweep.data = p;
	p->sweep_open = true;
	return p;
}

void prep_destroy(struct prep **pp)
{
	struct prep *p = *pp;
	if (p == NULL)
		return;
	if (p->inflight > 0 || p->sweep_open) {
		log_error(SUBSYS, "destroyed while busy; leaking it");
		*pp = NULL;
		return;
	}
	prep_drop(p);
	while (p->sides != NULL) {
		struct prep_side *s = p->sides;
		p->sides = s->next;
		if (s->side.refs > 0)
			log_error(SUBSYS, "broadcast still in use at exit; leaking it");
		else
			prep_side_free(s);
	}
	while (p->plugins != NULL) {
		struct prep_plugin *pl = p->plugins;
		p->plugins = pl->next;
		plugin_unload(&pl->p);
		cache_unpin(&pl->pin);
		free(pl->path);
		free(pl->name);
		free(pl);
	}
	free(p->name);
	free(p->cache_error);
	free(p);
	*pp = NULL;
}
