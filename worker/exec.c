/* exec.c: one --exec command for one task attempt (see exec.h).
 *
 * Ownership: the exec owns itself from exec_start to the end of on_done. While a work
 * request is in the pool, the pool thread alone touches the fields it fills (dir, split,
 * records, setup error); the loop touches them again in the after-work callback. The child's
 * handles (process and three pipes) are counted in open_handles; the attempt moves on once
 * every one of them is closed. */
#include "exec.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "shim.h"
#include "records.h"
#include "shuffle.h"
#include "util.h"

#define SUBSYS "exec"

#define EXEC_READ_SIZE  ((size_t)64 * 1024)
#define EXEC_RANGE_FEED ((size_t)64 * 1024)
/* uv_buf_t lengths are unsigned int: bigger inputs go in slices. */
#define EXEC_SLICE ((size_t)1 << 30)
/* Longest decimal int64 with its sign and '\n'. */
#define EXEC_NUM_MAX 21u

extern char **environ;

enum exec_phase { EXEC_SETUP, EXEC_RUNNING, EXEC_SHUFFLE, EXEC_CLEANUP };

struct exec {
	uv_loop_t *loop;
	struct exec_params p;
	struct exec_callbacks cb;
	void *arg;
	enum exec_phase phase;
	uint64_t start_us;
	uv_work_t work;

	/* Filled by the setup work. */
	char *dir;
	struct buf split;
	uint64_t records;
	int setup_status;
	char err[1024];

	uv_process_t proc;
	uv_pipe_t in, out, errp;
	int open_handles;
	bool spawned;
	bool exited;
	int64_t exit_status;
	int term_signal;
	bool killed;
	bool paused;
	bool out_open, err_open, in_open;
	bool reading; /* uv_read_start is in effect on out */

	uv_write_t wreq;
	int64_t next; /* range: the next integer to feed */
	uint8_t *feed;
	size_t fed; /* data and split: bytes written so far */

	struct buf outbuf;
	struct buf errbuf;
	struct exec_result res;
};

void exec_signal_name(int sig, char *out, size_t outlen)
{
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev != NULL)
		snprintf(out, outlen, "SIG%s", abbrev);
	else
		snprintf(out, outlen, "signal %d", sig);
}

static void exec_cleanup(struct exec *e);
static void exec_finish(struct exec *e);

/* ---- pool work ---- */

static void exec_count_records(struct exec *e, const uint8_t *p, size_t len)
{
	struct record_iter it;
	record_iter_init(&it, p, len);
	const uint8_t *rec;
	size_t reclen;
	while (record_iter_next(&it, &rec, &reclen))
		e->records++;
}

static void on_setup_work(uv_work_t *req)
{
	struct exec *e = req->data;
	size_t n = strlen(e->p.work_root) + strlen(e->p.label) + 16;
	e->dir = xmalloc(n);
	snprintf(e->dir, n, "%s/%s-XXXXXX", e->p.work_root, e->p.label);
	if (mkdtemp(e->dir) == NULL) {
		e->setup_status =
		    errorf(e->err, sizeof(e->err), "cannot make a working directory in %s: %s",
		           e->p.work_root, strerror(errno));
		free(e->dir);
		e->dir = NULL;
		return;
	}
	for (size_t i = 0; i < e->p.nfiles; i++) {
		const struct exec_file *f = &e->p.files[i];
		size_t m = strlen(e->dir) + strlen(f->name) + 2;
		char *dst = xmalloc(m);
		snprintf(dst, m, "%s/%s", e->dir, f->name);
		char why[768];
		int rc = fs_link_or_copy(f->path, dst, why, sizeof(why));
		free(dst);
		if (rc != 0) {
			/* The caller forgets a cached file that vanished, so a retry refetches. */
			if (access(f->path, F_OK) != 0)
				e->res.missing = i + 1;
			e->setup_status = errorf(e->err, sizeof(e->err), "cannot place file %s: %s",
			                         f->name, why);
			return;
		}
	}
	if (e->p.broadcast != NULL && access(e->p.broadcast, R_OK) != 0) {
		e->res.missing = e->p.nfiles + 1;
		e->setup_status = errorf(e->err, sizeof(e->err), "broadcast file %s: %s",
		                         e->p.broadcast, strerror(errno));
		return;
	}
	switch (e->p.input) {
	case EXEC_INPUT_DATA:
		exec_count_records(e, e->p.data, e->p.len);
		break;
	case EXEC_INPUT_SPLIT:
		if (split_read(e->p.path, e->p.offset, e->p.length, &e->split, e->err,
		               sizeof(e->err)) != 0) {
			e->setup_status = -1;
			return;
		}
		exec_count_records(e, e->split.data, e->split.len);
		break;
	case EXEC_INPUT_RANGE:
		e->records = e->p.hi > e->p.lo ? (uint64_t)e->p.hi - (uint64_t)e->p.lo : 0;
		break;
	case EXEC_INPUT_NONE:
	default:
		break;
	}
}

static void on_shuffle_work(uv_work_t *req)
{
	struct exec *e = req->data;
	struct buf shuffled = BUF_INIT;
	e->res.nbuckets = e->p.reducers;
	e->res.buckets = xcalloc(e->p.reducers, sizeof(*e->res.buckets));
	shuffle_partition(e->outbuf.data, e->outbuf.len, e->p.reducers, &shuffled, e->res.buckets);
	buf_free(&e->outbuf);
	e->outbuf = shuffled;
}

static void on_cleanup_work(uv_work_t *req)
{
	struct exec *e = req->data;
	buf_free(&e->split);
	if (e->dir == NULL)
		return;
	char why[512];
	if (fs_rmtree(e->dir, why, sizeof(why)) != 0)
		snprintf(e->err, sizeof(e->err), "%s", why);
	else
		e->err[0] = '\0';
}

/* ---- the end ---- */

static void exec_fail(struct exec *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void exec_fail(struct exec *e, const char *fmt, ...)
{
	if (e->res.error != NULL)
		return; /* the first reason stands */
	char msg[EXEC_STDERR_TAIL + 1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e->res.ok = false;
	e->res.error = xstrdup(msg);
}

static void on_cleanup_done(uv_work_t *req, int status)
{
	struct exec *e = req->data;
	(void)status;
	if (e->err[0] != '\0' && e->dir != NULL)
		log_warn(SUBSYS, "%s: %s", e->p.label, e->err);
	exec_finish(e);
}

static void exec_cleanup(struct exec *e)
{
	e->phase = EXEC_CLEANUP;
	e->err[0] = '\0';
	e->work.data = e;
	if (uv_queue_work(e->loop, &e->work, on_cleanup_work, on_cleanup_done) != 0) {
		on_cleanup_work(&e->work);
		on_cleanup_done(&e->work, 0);
	}
}

static void exec_finish(struct exec *e)
{
	if (e->res.ok) {
		e->res.out = e->outbuf;
		e->outbuf = (struct buf)BUF_INIT;
	}
	e->res.cancelled = e->killed;
	e->res.records = e->records;
	e->res.elapsed_us = mono_us() - e->start_us;
	e->cb.on_done(e->arg, &e->res);
	free(e->res.error);
	buf_free(&e->res.out);
	free(e->res.buckets);
	buf_free(&e->outbuf);
	buf_free(&e->errbuf);
	buf_free(&e->split);
	free(e->feed);
	free(e->dir);
	free(e);
}

static void on_shuffle_done(uv_work_t *req, int status)
{
	struct exec *e = req->data;
	if (status != 0)
		exec_fail(e, "shuffle not run: %s", uv_strerror(status));
	exec_cleanup(e);
}

/* The stderr tail for an error message: the last bytes, without trailing blank space. Short
 * enough that the whole error (the master and the client add their words in front, and
 * libshoal keeps 1 KiB of it) still ends with the command's last words, which is where a
 * traceback says what went wrong. */
static const char *exec_stderr_tail(struct exec *e)
{
	struct buf *b = &e->errbuf;
	while (b->len > 0 && (b->data[b->len - 1] == '\n' || b->data[b->len - 1] == ' ' ||
	                      b->data[b->len - 1] == '\r' || b->data[b->len - 1] == '\t'))
		b->len--;
	if (b->len > EXEC_ERROR_TAIL) {
		buf_consume(b, b->len - EXEC_ERROR_TAIL + 3);
		memcpy(b->data, "...", 3);
	}
	/* The error reaches people's terminals: no control bytes (escape sequences, NUL) from
	 * the command, only its text. */
	for (size_t i = 0; i < b->len; i++)
		if ((b->data[i] < 0x20 && b->data[i] != '\n' && b->data[i] != '\t') ||
		    b->data[i] == 0x7f)
			b->data[i] = '?';
	buf_append_byte(b, '\0');
	return (const char *)b->data;
}

/* Every handle of the child is closed: judge the attempt. */
static void exec_child_over(struct exec *e)
{
	char sig[32];
	const char *tail = exec_stderr_tail(e);
	const char *sep = tail[0] != '\0' ? ": " : "";
	if (e->killed) {
		exec_fail(e, "command cancelled");
	} else if (e->res.error != NULL) {
		/* spawn failed */
	} else if (e->term_signal != 0) {
		exec_signal_name(e->term_signal, sig, sizeof(sig));
		exec_fail(e, "command killed by signal %s%s%s", sig, sep, tail);
	} else if (e->exit_status != 0) {
		exec_fail(e, "command exited with status %" PRId64 "%s%s", e->exit_status, sep,
		          tail);
	} else {
		e->res.ok = true;
	}
	log_debug(SUBSYS, "%s: done ok=%d status=%" PRId64 " signal=%d stdout_left=%zu", e->p.label,
	          e->res.ok, e->exit_status, e->term_signal, e->outbuf.len);
	if (e->res.ok && e->p.reducers > 0) {
		e->phase = EXEC_SHUFFLE;
		e->work.data = e;
		if (uv_queue_work(e->loop, &e->work, on_shuffle_work, on_shuffle_done) == 0)
			return;
		on_shuffle_work(&e->work);
	}
	exec_cleanup(e);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct exec *e = h->data;
	if (--e->open_handles == 0)
		exec_child_over(e);
}

static void exec_close_in(struct exec *e)
{
	if (!e->in_open)
		return;
	e->in_open = false;
	uv_close((uv_handle_t *)&e->in, on_handle_closed);
}

static void exec_close_out(struct exec *e)
{
	if (!e->out_open)
		return;
	e->out_open = false;
	e->reading = false;
	uv_close((uv_handle_t *)&e->out, on_handle_closed);
}

static void exec_close_err(struct exec *e)
{
	if (!e->err_open)
		return;
	e->err_open = false;
	uv_close((uv_handle_t *)&e->errp, on_handle_closed);
}

/* ---- stdin ---- */

static void exec_feed(struct exec *e);

static void on_fed(uv_write_t *req, int status)
{
	struct exec *e = req->data;
	if (status < 0) {
		/* EPIPE: the command stopped reading (head, or it never reads); ECANCELED: we
		 * closed stdin ourselves. Neither is an error: the exit status judges. */
		if (status != UV_EPIPE && status != UV_ECANCELED)
			log_debug(SUBSYS, "%s: stdin: %s", e->p.label, uv_strerror(status));
		exec_close_in(e);
		return;
	}
	if (e->in_open)
		exec_feed(e);
}

static size_t exec_format_i64(int64_t v, char *out)
{
	char tmp[EXEC_NUM_MAX];
	size_t n = 0;
	/* Negate in unsigned arithmetic: INT64_MIN has no positive counterpart. */
	uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	size_t k = 0;
	if (v < 0)
		out[k++] = '-';
	while (n > 0)
		out[k++] = tmp[--n];
	out[k++] = '\n';
	return k;
}

static void exec_write(struct exec *e, const uint8_t *p, size_t len)
{
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)len);
	e->wreq.data = e;
	int rc = uv_write(&e->wreq, (uv_stream_t *)&e->in, &b, 1, on_fed);
	if (rc != 0) {
		log_debug(SUBSYS, "%s: stdin: %s", e->p.label, uv_strerror(rc));
		exec_close_in(e);
	}
}

/* Writes the next piece of stdin, or closes stdin when everything is written. */
static void exec_feed(struct exec *e)
{
	const uint8_t *src = NULL;
	size_t len = 0;
	switch (e->p.input) {
	case EXEC_INPUT_RANGE:
		if (e->feed == NULL)
			e->feed = xmalloc(EXEC_RANGE_FEED);
		while (e->next < e->p.hi && len + EXEC_NUM_MAX <= EXEC_RANGE_FEED)
			len += exec_format_i64(e->next++, (char *)e->feed + len);
		src = e->feed;
		break;
	case EXEC_INPUT_DATA:
	case EXEC_INPUT_SPLIT: {
		const uint8_t *all = e->p.input == EXEC_INPUT_DATA ? e->p.data : e->split.data;
		size_t total = e->p.input == EXEC_INPUT_DATA ? e->p.len : e->split.len;
		src = all + e->fed;
		len = total - e->fed < EXEC_SLICE ? total - e->fed : EXEC_SLICE;
		e->fed += len;
		break;
	}
	case EXEC_INPUT_NONE:
	default:
		break;
	}
	if (len == 0)
		exec_close_in(e);
	else
		exec_write(e, src, len);
}

/* ---- stdout and stderr ---- */

static void on_alloc_out(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct exec *e = h->data;
	(void)suggested;
	uint8_t *p = buf_reserve(&e->outbuf, EXEC_READ_SIZE);
	*b = uv_buf_init((char *)p, (unsigned)EXEC_READ_SIZE);
}

static void on_read_out(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct exec *e = s->data;
	(void)b;
	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug(SUBSYS, "%s: stdout: %s", e->p.label, uv_strerror((int)nread));
		exec_close_out(e);
		return;
	}
	e->outbuf.len += (size_t)nread;
	if (e->killed) {
		/* Nobody wants it; read on only so the child is not stuck on a full pipe. */
		e->outbuf.len = 0;
		return;
	}
	if (e->p.reducers > 0)
		return;
	while (e->outbuf.len >= e->p.chunk) {
		e->cb.on_output(e->arg, e->outbuf.data, e->p.chunk);
		buf_consume(&e->outbuf, e->p.chunk);
	}
}

static void on_alloc_err(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct exec *e = h->data;
	(void)suggested;
	uint8_t *p = buf_reserve(&e->errbuf, EXEC_STDERR_TAIL);
	*b = uv_buf_init((char *)p, EXEC_STDERR_TAIL);
}

static void on_read_err(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct exec *e = s->data;
	(void)b;
	if (nread < 0) {
		exec_close_err(e);
		return;
	}
	e->errbuf.len += (size_t)nread;
	/* Keep only the tail; trimming at twice its size keeps the copying amortised. */
	if (e->errbuf.len > 2 * EXEC_STDERR_TAIL)
		buf_consume(&e->errbuf, e->errbuf.len - EXEC_STDERR_TAIL);
}

static void exec_update_reading(struct exec *e)
{
	if (!e->out_open)
		return;
	/* With reducers nothing goes out before the end, so back-pressure does not apply. */
	bool want = !e->paused || e->killed || e->p.reducers > 0;
	if (want && !e->reading) {
		if (uv_read_start((uv_stream_t *)&e->out, on_alloc_out, on_read_out) == 0)
			e->reading = true;
	} else if (!want && e->reading) {
		uv_read_stop((uv_stream_t *)&e->out);
		e->reading = false;
	}
}

/* ---- the child ---- */

static void on_child_exit(uv_process_t *proc, int64_t status, int signal)
{
	struct exec *e = proc->data;
	e->exited = true;
	e->exit_status = status;
	e->term_signal = signal;
	/* The command is over; whatever it left running in its group goes with it (and would
	 * otherwise hold the pipes open). */
	(void)kill(-proc->pid, SIGKILL);
	exec_close_in(e);
	uv_close((uv_handle_t *)proc, on_handle_closed);
}

/* The inherited environment with params' entries added, replacing same-named ones. */
static char **exec_environment(const struct exec *e)
{
	size_t n = 0;
	while (environ != NULL && environ[n] != NULL)
		n++;
	char **env = xcalloc(n + e->p.nenv + 1, sizeof(*env));
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(environ[i], '=');
		size_t keylen = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);
		bool replaced = false;
		for (size_t j = 0; j < e->p.nenv && !replaced; j++)
			replaced = strncmp(e->p.env[j], environ[i], keylen) == 0 &&
			           e->p.env[j][keylen] == '=';
		if (!replaced)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < e->p.nenv; j++)
		env[k++] = (char *)e->p.env[j];
	env[k] = NULL;
	return env;
}

/* Stops the running command: its shim cleans up after it; without one, its process group
 * is killed. */
static void exec_signal_stop(struct exec *e)
{
	if (e->p.shim != NULL)
		(void)kill(e->proc.pid, SIGTERM);
	else
		(void)kill(-e->proc.pid, SIGKILL);
}

static void exec_spawn(struct exec *e)
{
	e->phase = EXEC_RUNNING;
	uv_pipe_init(e->loop, &e->in, 0);
	uv_pipe_init(e->loop, &e->out, 0);
	uv_pipe_init(e->loop, &e->errp, 0);
	e->in.data = e->out.data = e->errp.data = e->proc.data = e;
	e->in_open = e->out_open = e->err_open = true;
	e->open_handles = 4;

	uv_stdio_container_t stdio[3];
	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&e->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&e->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&e->errp;

	char *args[] = {(char *)"sh", (char *)"-c", (char *)e->p.cmd, NULL};
	char pid[24];
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	char *shim_args[] = {(char *)"shoal-exec-shim", (char *)SHIM_ARG, pid, (char *)e->p.cmd,
	                     NULL};
	char **env = exec_environment(e);
	uv_process_options_t opt;
	memset(&opt, 0, sizeof(opt));
	opt.file = e->p.shim != NULL ? e->p.shim : "/bin/sh";
	opt.args = e->p.shim != NULL ? shim_args : args;
	opt.env = env;
	opt.cwd = e->dir;
	opt.flags = UV_PROCESS_DETACHED;
	opt.stdio_count = 3;
	opt.stdio = stdio;
	opt.exit_cb = on_child_exit;
	int rc = uv_spawn(e->loop, &e->proc, &opt);
	free(env);
	if (rc != 0) {
		exec_fail(e, "cannot run /bin/sh: %s", uv_strerror(rc));
		/* The handle is initialised even when the spawn fails and must be closed. */
		uv_close((uv_handle_t *)&e->proc, on_handle_closed);
		exec_close_in(e);
		exec_close_out(e);
		exec_close_err(e);
		return;
	}
	e->spawned = true;
	log_debug(SUBSYS, "%s: pid=%d dir=%s", e->p.label, e->proc.pid, e->dir);
	uv_read_start((uv_stream_t *)&e->errp, on_alloc_err, on_read_err);
	exec_update_reading(e);
	e->next = e->p.lo;
	exec_feed(e);
	/* A cancel that came while setting up. */
	if (e->killed)
		exec_signal_stop(e);
}

static void on_setup_done(uv_work_t *req, int status)
{
	struct exec *e = req->data;
	if (e->killed) {
		exec_fail(e, "command cancelled");
		exec_cleanup(e);
		return;
	}
	if (status != 0 || e->setup_status != 0) {
		exec_fail(e, "%s", status != 0 ? uv_strerror(status) : e->err);
		exec_cleanup(e);
		return;
	}
	exec_spawn(e);
}

struct exec *exec_start(uv_loop_t *loop, const struct exec_params *p,
                        const struct exec_callbacks *cb, void *arg)
{
	struct exec *e = xcalloc(1, sizeof(*e));
	e->loop = loop;
	e->p = *p;
	if (e->p.chunk == 0)
		e->p.chunk = 1;
	e->cb = *cb;
	e->arg = arg;
	e->start_us = mono_us();
	e->phase = EXEC_SETUP;
	e->work.data = e;
	if (uv_queue_work(loop, &e->work, on_setup_work, on_setup_done) != 0) {
		on_setup_work(&e->work);
		on_setup_done(&e->work, 0);
	}
	return e;
}

void exec_kill(struct exec *e)
{
	if (e->killed)
		return;
	e->killed = true;
	if (e->phase != EXEC_RUNNING || !e->spawned)
		return;
	if (!e->exited)
		exec_signal_stop(e);
	exec_close_in(e);
	/* Drain what is left so the pipes reach EOF even while paused. */
	exec_update_reading(e);
}

void exec_pause(struct exec *e, bool paused)
{
	e->paused = paused;
	if (e->phase == EXEC_RUNNING && e->spawned)
		exec_update_reading(e);
}
