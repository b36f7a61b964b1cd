/* trash.c: removing pruned jobs' directories off the loop.
 *
 * When --keep-jobs prunes a job (persist.c), its directory may hold a large spill file, an
 * uploaded input and a merged result: unlinking them frees their blocks, which takes as long as
 * the disk likes. So the loop only renames the directory to ID.pruned (one metadata operation,
 * like the mkdir that created it), which takes it out of every path the master uses (job ids
 * are never handed out twice, so nothing looks for the old name again), and the thread pool
 * removes it. One directory is removed at a time: commits, spill writes and fetches share the
 * pool, and a burst of prunes must not fill it.
 *
 * A master that stops leaves the directories still queued; so does one that is killed. The
 * next start finds them by their .pruned suffix and removes them. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "util.h"

#define TRASH_SUFFIX ".pruned"

struct trash {
	struct master *m;
	uv_work_t work;
	char *cur; /* the directory the pool is removing; NULL: idle */
	int cur_errno;
	char **queue; /* directories waiting, removed in order from queue[head] */
	size_t head, n, cap;
};

/* Removes a directory and everything under it (the master's own files: no mounts, no
 * links followed). Returns 0, or the errno of the first thing that could not be removed. */
static int remove_tree(const char *path)
{
	char child[PATH_MAX];
	int first = 0;
	DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : errno;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >=
		    (int)sizeof(child)) {
			if (!first)
				first = ENAMETOOLONG;
			continue;
		}
		struct stat st;
		int rc = 0;
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
			rc = remove_tree(child);
		else if (unlink(child) < 0 && errno != ENOENT)
			rc = errno;
		if (rc && !first)
			first = rc;
	}
	closedir(d);
	if (rmdir(path) < 0 && errno != ENOENT && !first)
		first = errno;
	return first;
}

static void trash_next(struct trash *t);

static void on_work(uv_work_t *w)
{
	struct trash *t = w->data;
	t->cur_errno = remove_tree(t->cur);
}

static void on_work_done(uv_work_t *w, int status)
{
	struct trash *t = w->data;
	if (status < 0)
		log_warn("persist", "event=prune_not_removed dir=%s error=\"%s\"", t->cur,
		         uv_strerror(status));
	else if (t->cur_errno)
		log_warn("persist",
		         "event=prune_not_removed dir=%s error=\"%s\" (remove it by hand; it "
		         "holds no job's data any more)",
		         t->cur, strerror(t->cur_errno));
	else
		log_debug("persist", "event=prune_removed dir=%s queued=%zu", t->cur,
		          t->n - t->head);
	free(t->cur);
	t->cur = NULL;
	trash_next(t);
}

/* Starts removing the next queued directory, unless one is being removed or the master is
 * stopping (what is left waits for the next start). */
static void trash_next(struct trash *t)
{
	if (t->cur || t->head == t->n || t->m->stopping)
		return;
	t->cur = t->queue[t->head++];
	if (t->head == t->n)
		t->head = t->n = 0;
	t->work.data = t;
	int rc = uv_queue_work(t->m->loop, &t->work, on_work, on_work_done);
	if (rc < 0) { /* cannot happen with a valid loop and callbacks; keep it for next start */
		log_warn("persist", "event=prune_not_removed dir=%s error=\"%s\"", t->cur,
		         uv_strerror(rc));
		free(t->cur);
		t->cur = NULL;
	}
}

static void trash_queue(struct trash *t, char *path)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 16;
		t->queue = xrealloc(t->queue, t->cap * sizeof(*t->queue));
	}
	t->queue[t->n++] = path;
	trash_next(t);
}

void trash_start(struct master *m)
{
	struct trash *t = xcalloc(1, sizeof(*t));
	t->m = m;
	m->trash = t;
	/* Left by an earlier run that stopped (or died) before removing them. */
	DIR *d = opendir(m->jobs_dir);
	if (!d)
		return;
	struct dirent *e;
	size_t sl = strlen(TRASH_SUFFIX);
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len > sl && !strcmp(e->d_name + len - sl, TRASH_SUFFIX)) {
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", m->jobs_dir, e->d_name);
			trash_queue(t, xstrdup(path));
		}
	}
	closedir(d);
	if (t->n)
		log_info("persist", "event=prune_leftovers dirs=%zu (removing them)", t->n);
}

void trash_put(struct master *m, const char *dir)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s" TRASH_SUFFIX, dir) < (int)sizeof(path)) {
		if (rename(dir, path) == 0) {
			trash_queue(m->trash, xstrdup(path));
			return;
		}
		if (errno == ENOENT) /* nothing to remove */
			return;
	}
	/* A leftover of the same name, or a name too long: removed where it is (its job's id is
	 * never handed out again). */
	trash_queue(m->trash, xstrdup(dir));
}

void trash_destroy(struct master *m)
{
	struct trash *t = m->trash;
	if (!t)
		return;
	for (size_t i = t->head; i < t->n; i++)
		free(t->queue[i]);
	free(t->queue);
	free(t->cur); /* NULL: the loop ran until the pool was done */
	free(t);
	m->trash = NULL;
}
