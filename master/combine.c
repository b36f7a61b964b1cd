/* combine.c: the master-side combine step of a plugin job. When the plugin has combine() and
 * the master may load user code (--allow-exec), the partials are folded in partition order on
 * the thread pool, then finalize() turns the fold into the job's result file. Without either,
 * the result is the partials concatenated (spill.c). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "plugin.h"
#include "util.h"

struct combine_work {
	uv_work_t work;
	struct master *m;
	uint64_t job_id;
	char *plugin_path;
	Shoal__Arg **args; /* borrowed from the job, which outlives the work */
	size_t nargs;
	int in_fd;
	int out_fd;
	char *out_path;
	uint64_t *pieces; /* (offset, length) pairs of the partials, partition order */
	size_t npieces, pieces_cap;
	uint32_t *task_end; /* per task: index one past its last piece */
	uint32_t ntasks;
	uint64_t size;
	int rc;
	char err[1024];
};

static void add_piece(void *arg, uint64_t off, uint64_t len)
{
	struct combine_work *cw = arg;
	if (cw->npieces == cw->pieces_cap) {
		cw->pieces_cap = cw->pieces_cap ? cw->pieces_cap * 2 : 64;
		cw->pieces = xrealloc(cw->pieces, cw->pieces_cap * 2 * sizeof(*cw->pieces));
	}
	cw->pieces[2 * cw->npieces] = off;
	cw->pieces[2 * cw->npieces + 1] = len;
	cw->npieces++;
}

static int read_at(int fd, uint64_t off, uint64_t len, struct buf *out, char *err, size_t errlen)
{
	uint8_t *p = buf_reserve(out, len);
	ssize_t n = pread_all(fd, p, len, off);
	if (n < 0 || (uint64_t)n != len)
		return errorf(err, errlen, "reading a partial result: %s",
		              n < 0 ? strerror(errno) : "short file");
	out->len += len;
	return 0;
}

static void combine_work(uv_work_t *w)
{
	struct combine_work *cw = w->data;
	cw->rc = -1;
	struct plugin *pl = plugin_load(cw->plugin_path, cw->err, sizeof(cw->err));
	if (!pl)
		return;
	struct buf acc = BUF_INIT, part = BUF_INIT, next = BUF_INIT;
	uint32_t piece = 0;
	for (uint32_t t = 0; t < cw->ntasks; t++) {
		buf_reset(&part);
		for (; piece < cw->task_end[t]; piece++)
			if (read_at(cw->in_fd, cw->pieces[2 * piece], cw->pieces[2 * piece + 1],
			            &part, cw->err, sizeof(cw->err)) < 0)
				goto out;
		buf_reset(&next);
		if (plugin_combine(pl, cw->args, cw->nargs, acc.data, acc.len, part.data, part.len,
		                   &next, cw->err, sizeof(cw->err)) < 0)
			goto out;
		struct buf tmp = acc;
		acc = next;
		next = tmp;
	}
	const struct buf *result = &acc;
	if (plugin_desc(pl)->finalize) {
		buf_reset(&next);
		if (plugin_finalize(pl, cw->args, cw->nargs, acc.data, acc.len, &next, cw->err,
		                    sizeof(cw->err)) < 0)
			goto out;
		result = &next;
	}
	for (size_t done = 0; done < result->len;) {
		ssize_t n = write(cw->out_fd, result->data + done, result->len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errorf(cw->err, sizeof(cw->err), "writing the combined result: %s",
			       strerror(errno));
			goto out;
		}
		done += (size_t)n;
	}
	/* The journal is about to say the result exists. */
	if (fdatasync(cw->out_fd) < 0) {
		errorf(cw->err, sizeof(cw->err), "syncing the combined result: %s",
		       strerror(errno));
		goto out;
	}
	cw->size = result->len;
	cw->rc = 0;
out:
	buf_free(&acc);
	buf_free(&part);
	buf_free(&next);
	plugin_unload(&pl);
}

static void combine_free(struct combine_work *cw)
{
	if (cw->in_fd >= 0)
		close(cw->in_fd);
	if (cw->out_fd >= 0) {
		close(cw->out_fd);
		unlink(cw->out_path);
	}
	free(cw->out_path);
	free(cw->plugin_path);
	free(cw->pieces);
	free(cw->task_end);
	free(cw);
}

static void combine_done(uv_work_t *w, int status)
{
	struct combine_work *cw = w->data;
	struct job *j = jobs_find(cw->m, cw->job_id);
	if (j && !jobs_finished(j)) {
		if (status < 0 || cw->rc < 0) {
			jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "plugin combine failed: %s",
			          status < 0 ? uv_strerror(status) : cw->err);
		} else {
			spill_set_result_file(j, cw->out_fd, cw->out_path);
			cw->out_fd = -1;
			jobs_succeed(j, cw->size);
		}
	}
	combine_free(cw);
}

void combine_start(struct job *j)
{
	struct combine_work *cw = xcalloc(1, sizeof(*cw));
	cw->m = j->m;
	cw->job_id = j->id;
	cw->args = j->args;
	cw->nargs = j->nargs;
	char path[4096];
	blobs_path(j->m, j->plugin->sha256.data, path, sizeof(path));
	cw->plugin_path = xstrdup(path);
	snprintf(path, sizeof(path), "%s/result", j->dir);
	cw->out_path = xstrdup(path);
	cw->in_fd = dup(spill_fd(j));
	cw->out_fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (cw->in_fd < 0 || cw->out_fd < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot prepare the combine step: %s",
		          strerror(errno));
		combine_free(cw);
		return;
	}
	cw->ntasks = j->ntasks;
	cw->task_end = xcalloc(j->ntasks ? j->ntasks : 1, sizeof(*cw->task_end));
	struct spill_piece_fn fn = {add_piece, cw};
	for (uint32_t i = 0; i < j->ntasks; i++) {
		spill_pieces(&j->tasks[i], 0, j->tasks[i].out_len, &fn);
		cw->task_end[i] = (uint32_t)cw->npieces;
	}
	cw->work.data = cw;
	int rc = uv_queue_work(j->m->loop, &cw->work, combine_work, combine_done);
	if (rc < 0) {
		jobs_fail(j, SHOAL__JOB_STATE__JOB_FAILED, "cannot start the combine step: %s",
		          uv_strerror(rc));
		combine_free(cw);
	}
}
