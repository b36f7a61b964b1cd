/* runner.c: task queue, slots, and execution on libuv's thread pool or as exec children
 * (see runner.h).
 *
 * Ownership: a task belongs to the runner from enqueue until it is freed (cancelled,
 * dropped, stopped) or its result is handed to on_done; from then on to whoever took the
 * result. While a pool task is in a thread, the thread alone touches its input and result;
 * the loop thread only flips `dropped` and links, which the thread never reads. An exec
 * task's child is driven from the loop (exec.c); its input stays until the child is done. */
#include "runner.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exec.h"
#include "log.h"
#include "ops.h"
#include "plugin.h"
#include "records.h"
#include "util.h"

#define SUBSYS "runner"

/* Chunking of small tasks (see runner_pump). */
#define RUNNER_CHUNK_MAX   64u
#define RUNNER_SMALL_RANGE 4096u
#define RUNNER_SMALL_DATA  ((size_t)16 * 1024)

#define RUNNER_DEFAULT_CHUNK ((size_t)4 << 20)
#define RUNNER_ENV_VARS      6u

struct runner_list {
	struct task *head, *tail;
	size_t n;
};

/* What an exec task's child gets besides its input: kept until the child is done. */
struct runner_exec {
	struct runner *runner;
	struct task *task;
	struct exec_file *files;
	char *env[RUNNER_ENV_VARS];
	size_t nenv;
	char label[96];
};

struct runner {
	uv_loop_t *loop;
	uint32_t slots;
	runner_done_fn on_done;
	void *arg;
	struct runner_list queue;
	struct runner_list running; /* pool tasks and exec tasks, dropped ones included */
	uint32_t live;              /* running and not dropped */
	uint32_t busy;              /* slots in use: work requests in the pool, exec children */
	bool paused;
	bool stopping;
	runner_stopped_fn on_stopped;
	void *stopped_arg;

	char *work_root; /* NULL: exec tasks fail */
	char *shim;
	char *master;
	size_t chunk;
	runner_output_fn on_output;

	runner_started_fn on_started;
	runner_held_fn on_held;
	uint32_t held; /* as last reported through on_held */
};

static void runner_list_push(struct runner_list *l, struct task *t)
{
	t->next = NULL;
	t->prev = l->tail;
	if (l->tail != NULL)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
	l->n++;
}

static void runner_list_unlink(struct runner_list *l, struct task *t)
{
	if (t->prev != NULL)
		t->prev->next = t->next;
	else
		l->head = t->next;
	if (t->next != NULL)
		t->next->prev = t->prev;
	else
		l->tail = t->prev;
	t->prev = t->next = NULL;
	l->n--;
}

/* ---- slots held by unwanted attempts ---- */

/* Slots whose every task is dropped: a pool work request (one task, or a chunk of small ones)
 * or an exec child. */
uint32_t runner_held(const struct runner *r)
{
	uint32_t held = 0;
	for (const struct task *t = r->running.head; t != NULL; t = t->next) {
		if (t->exec == NULL && t->work.data != t)
			continue; /* a chunk member: its lead stands for the slot */
		bool all = true;
		for (const struct task *c = t; c != NULL && all; c = c->chunk_next)
			all = c->dropped;
		held += all;
	}
	return held;
}

static void runner_note_held(struct runner *r)
{
	uint32_t held = runner_held(r);
	if (held == r->held)
		return;
	r->held = held;
	if (r->on_held != NULL)
		r->on_held(r->arg, held);
}

/* ---- pool tasks: built-in ops and plugins ---- */

/* Decimal lines lo..hi-1: what a plugin or a command sees of a range. */
static void runner_range_lines(int64_t lo, int64_t hi, struct buf *out)
{
	for (int64_t v = lo; v < hi; v++)
		buf_printf(out, "%" PRId64 "\n", v);
}

static uint64_t runner_count_records(const uint8_t *p, size_t len)
{
	struct record_iter it;
	record_iter_init(&it, p, len);
	const uint8_t *rec;
	size_t reclen;
	uint64_t n = 0;
	while (record_iter_next(&it, &rec, &reclen))
		n++;
	return n;
}

/* Runs in a pool thread: a plugin's map over the partition's records. */
static void runner_run_plugin(struct task *t, const struct op_input *in)
{
	struct buf lines = BUF_INIT;
	const uint8_t *data = in->data;
	size_t len = in->len;
	if (in->is_range) {
		runner_range_lines(in->lo, in->hi, &lines);
		data = lines.data != NULL ? lines.data : (const uint8_t *)"";
		len = lines.len;
	}
	char err[1024] = "";
	t->res.records = runner_count_records(data, len);
	if (plugin_map(t->plugin_obj, t->args, t->nargs, data, len, &t->res.out, err,
	               sizeof(err)) != 0)
		task_fail(t, false, "%s", err[0] != '\0' ? err : "plugin map failed");
	else
		t->res.ok = true;
	buf_free(&lines);
}

/* Runs in a pool thread: reads a split if needed, then the op or plugin. */
static void runner_task_execute(struct task *t)
{
	const struct op_desc *op = NULL;
	struct op_error err;
	memset(&err, 0, sizeof(err));
	if (t->plugin_obj == NULL) {
		op = op_find(t->op);
		if (op == NULL) {
			task_fail(t, true, "unknown op %s", t->op);
			return;
		}
		if (op_args_check(op, t->args, t->nargs, err.msg, sizeof(err.msg)) != 0) {
			task_fail(t, true, "%s", err.msg);
			return;
		}
	}

	struct op_input in;
	memset(&in, 0, sizeof(in));
	struct buf split = BUF_INIT;
	switch (t->input) {
	case TASK_INPUT_RANGE:
		in.is_range = true;
		in.lo = t->lo;
		in.hi = t->hi;
		break;
	case TASK_INPUT_DATA:
		in.data = t->data;
		in.len = t->len;
		break;
	case TASK_INPUT_SPLIT:
		/* Not permanent: the file may be missing or unreadable on this worker only. */
		if (split_read(t->path, t->offset, t->length, &split, err.msg, sizeof(err.msg)) !=
		    0) {
			buf_free(&split);
			task_fail(t, false, "%s", err.msg);
			return;
		}
		in.data = split.data;
		in.len = split.len;
		break;
	case TASK_INPUT_NONE:
	default:
		task_fail(t, true, "task has no input");
		return;
	}
	if (t->side != NULL) {
		in.side = t->side->data;
		in.side_len = t->side->len;
	}

	if (t->plugin_obj != NULL) {
		runner_run_plugin(t, &in);
	} else {
		uint64_t records = 0;
		if (op_run(op, t->args, t->nargs, &in, t->res.ref.task_id, &t->res.out, &records,
		           &err) != 0)
			task_fail(t, err.permanent, "%s", err.msg[0] ? err.msg : "op failed");
		else
			t->res.ok = true;
		t->res.records = records;
	}
	buf_free(&split);
}

/* Runs in a pool thread: every task of the chunk, one after the other. */
static void on_work(uv_work_t *req)
{
	for (struct task *t = req->data; t != NULL; t = t->chunk_next) {
		uint64_t start = mono_us();
		runner_task_execute(t);
		/* The input is not needed any more: free it here so big inputs do not wait for
		 * the loop to get around to this task. */
		free(t->data);
		t->data = NULL;
		t->res.elapsed_us = mono_us() - start;
	}
}

static void runner_pump(struct runner *r);

static void runner_check_stopped(struct runner *r)
{
	if (!r->stopping || r->busy > 0 || r->on_stopped == NULL)
		return;
	runner_stopped_fn cb = r->on_stopped;
	r->on_stopped = NULL;
	cb(r->stopped_arg);
}

/* Takes the task out of the running list; the caller then frees it or hands it on. */
static void runner_task_finish(struct runner *r, struct task *t, int status)
{
	runner_list_unlink(&r->running, t);
	if (!t->dropped)
		r->live--;
	task_free_input(t);
	if (status != 0 && !t->dropped)
		task_fail(t, false, "task was not run: %s", uv_strerror(status));
}

static void runner_task_deliver(struct runner *r, struct task *t)
{
	if (t->dropped)
		task_free(&t);
	else
		r->on_done(r->arg, &t->res);
}

static void on_after_work(uv_work_t *req, int status)
{
	struct task *lead = req->data;
	struct runner *r = lead->runner;

	r->busy--;
	for (struct task *t = lead; t != NULL; t = t->chunk_next)
		runner_task_finish(r, t, status);

	/* Refill the slot before anything else, so the pool never waits on the loop. */
	runner_pump(r);

	struct task *next;
	for (struct task *t = lead; t != NULL; t = next) {
		next = t->chunk_next;
		t->chunk_next = NULL;
		runner_task_deliver(r, t);
	}
	runner_note_held(r);
	runner_check_stopped(r);
}

/* ---- exec tasks ---- */

static void runner_exec_free(struct runner_exec *x)
{
	free(x->files);
	for (size_t i = 0; i < x->nenv; i++)
		free(x->env[i]);
	free(x);
}

static void on_exec_output(void *arg, const uint8_t *data, size_t len)
{
	struct runner_exec *x = arg;
	struct runner *r = x->runner;
	if (!x->task->dropped && r->on_output != NULL)
		r->on_output(r->arg, &x->task->res.ref, data, len);
}

static void on_exec_done(void *arg, struct exec_result *res)
{
	struct runner_exec *x = arg;
	struct runner *r = x->runner;
	struct task *t = x->task;
	t->run = NULL;
	if (t->timed_out && !t->dropped) {
		task_fail(t, false,
		          "attempt %" PRIu32 " ran longer than the task timeout (%" PRIu32
		          " ms); its command was killed",
		          t->res.ref.attempt, t->timeout_ms);
	} else if (res->ok) {
		t->res.ok = true;
		t->res.out = res->out;
		res->out = (struct buf)BUF_INIT;
		t->res.buckets = res->buckets;
		t->res.nbuckets = res->nbuckets;
		res->buckets = NULL;
	} else {
		/* Non-permanent: the normal retry rules apply to a failing command. */
		task_fail(t, false, "%s", res->error != NULL ? res->error : "command failed");
	}
	t->res.records = res->records;
	t->res.elapsed_us = res->elapsed_us;
	/* A cached file vanished under us (removed by hand, or by another worker sharing the
	 * directory): forget it, so that the retry fetches it again. */
	if (res->missing > 0 && res->missing <= t->nfiles && t->files[res->missing - 1].entry)
		cache_forget(t->files[res->missing - 1].entry);
	else if (res->missing == t->nfiles + 1 && t->broadcast != NULL && t->broadcast->entry)
		cache_forget(t->broadcast->entry);
	runner_exec_free(x);

	r->busy--;
	runner_task_finish(r, t, 0);
	runner_pump(r);
	runner_task_deliver(r, t);
	runner_note_held(r);
	runner_check_stopped(r);
}

static char *runner_env(const char *key, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *runner_env(const char *key, const char *fmt, ...)
{
	char value[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(value, sizeof(value), fmt, ap);
	va_end(ap);
	size_t n = strlen(key) + 1 + strlen(value) + 1;
	char *s = xmalloc(n);
	snprintf(s, n, "%s=%s", key, value);
	return s;
}

static void runner_start_exec(struct runner *r, struct task *t)
{
	struct runner_exec *x = xcalloc(1, sizeof(*x));
	x->runner = r;
	x->task = t;
	const struct task_ref *ref = &t->res.ref;
	snprintf(x->label, sizeof(x->label), "j%" PRIu64 "-t%" PRIu32 "-a%" PRIu32, ref->job_id,
	         ref->task_id, ref->attempt);
	x->files = xcalloc(t->nfiles > 0 ? t->nfiles : 1, sizeof(*x->files));
	for (size_t i = 0; i < t->nfiles; i++) {
		x->files[i].name = t->files[i].name;
		x->files[i].path = t->files[i].entry != NULL ? cache_entry_path(t->files[i].entry)
		                                             : "/nonexistent";
	}
	x->env[x->nenv++] = runner_env("SHOAL_JOB_ID", "%" PRIu64, ref->job_id);
	x->env[x->nenv++] = runner_env("SHOAL_TASK_ID", "%" PRIu32, ref->task_id);
	x->env[x->nenv++] = runner_env("SHOAL_PARTITION", "%" PRIu32, ref->task_id);
	x->env[x->nenv++] = runner_env("SHOAL_ATTEMPT", "%" PRIu32, ref->attempt);
	x->env[x->nenv++] = runner_env("SHOAL_MASTER", "%s", r->master != NULL ? r->master : "");
	if (t->broadcast != NULL && t->broadcast->entry != NULL)
		x->env[x->nenv++] =
		    runner_env("SHOAL_BROADCAST", "%s", cache_entry_path(t->broadcast->entry));

	struct exec_params p;
	memset(&p, 0, sizeof(p));
	p.cmd = t->exec;
	p.shim = r->shim;
	p.work_root = r->work_root;
	p.label = x->label;
	p.files = x->files;
	p.nfiles = t->nfiles;
	if (t->broadcast != NULL && t->broadcast->entry != NULL)
		p.broadcast = cache_entry_path(t->broadcast->entry);
	p.env = (const char *const *)x->env;
	p.nenv = x->nenv;
	switch (t->input) {
	case TASK_INPUT_RANGE:
		p.input = EXEC_INPUT_RANGE;
		p.lo = t->lo;
		p.hi = t->hi;
		break;
	case TASK_INPUT_DATA:
		p.input = EXEC_INPUT_DATA;
		p.data = t->data;
		p.len = t->len;
		break;
	case TASK_INPUT_SPLIT:
		p.input = EXEC_INPUT_SPLIT;
		p.path = t->path;
		p.offset = t->offset;
		p.length = t->length;
		break;
	case TASK_INPUT_NONE:
	default:
		p.input = EXEC_INPUT_NONE;
		break;
	}
	p.chunk = r->chunk;
	p.reducers = t->reducers;
	static const struct exec_callbacks cb = {on_exec_output, on_exec_done};
	t->run = exec_start(r->loop, &p, &cb, x);
	if (t->run != NULL && r->paused)
		exec_pause(t->run, true);
}

/* ---- the queue ---- */

/* A queued task starts running: its timeout counts from now, not from when it came. */
static struct task *runner_take(struct runner *r)
{
	struct task *t = r->queue.head;
	runner_list_unlink(&r->queue, t);
	runner_list_push(&r->running, t);
	t->chunk_next = NULL;
	r->live++;
	if (t->timeout_ms > 0) {
		t->deadline_ms = uv_now(r->loop) + t->timeout_ms;
		if (r->on_started != NULL)
			r->on_started(r->arg, &t->res.ref);
	}
	return t;
}

/* Starts queued tasks while slots are free. A thread hand-off costs a few microseconds,
 * as much as a small task itself, so when the queue is deep, small tasks travel in chunks
 * (the queue spread evenly over the free slots, at most RUNNER_CHUNK_MAX per chunk); a
 * shallow queue still gets one task per slot, and big tasks always go alone. */
static void runner_pump(struct runner *r)
{
	while (!r->paused && !r->stopping && r->busy < r->slots && r->queue.head != NULL) {
		uint32_t free_slots = r->slots - r->busy;
		size_t per = (r->queue.n + free_slots - 1) / free_slots;
		if (per > RUNNER_CHUNK_MAX)
			per = RUNNER_CHUNK_MAX;

		struct task *lead = runner_take(r);
		if (lead->exec != NULL) {
			r->busy++;
			runner_start_exec(r, lead);
			continue;
		}
		struct task *tail = lead;
		for (size_t k = 1;
		     lead->small && k < per && r->queue.head != NULL && r->queue.head->small; k++) {
			tail->chunk_next = runner_take(r);
			tail = tail->chunk_next;
		}

		lead->work.data = lead;
		int rc = uv_queue_work(r->loop, &lead->work, on_work, on_after_work);
		if (rc != 0) {
			/* Cannot happen with valid arguments; report rather than lose the tasks. */
			struct task *next;
			for (struct task *t = lead; t != NULL; t = next) {
				next = t->chunk_next;
				t->chunk_next = NULL;
				runner_task_finish(r, t, rc);
				runner_task_deliver(r, t);
			}
			continue;
		}
		r->busy++;
	}
}

struct runner *runner_create(uv_loop_t *loop, uint32_t slots, runner_done_fn on_done, void *arg)
{
	struct runner *r = xcalloc(1, sizeof(*r));
	r->loop = loop;
	r->slots = slots > 0 ? slots : 1;
	r->on_done = on_done;
	r->arg = arg;
	r->chunk = RUNNER_DEFAULT_CHUNK;
	return r;
}

void runner_set_exec(struct runner *r, const struct runner_exec_config *cfg)
{
	free(r->work_root);
	free(r->shim);
	free(r->master);
	r->work_root = cfg->work_root != NULL ? xstrdup(cfg->work_root) : NULL;
	r->shim = cfg->shim != NULL ? xstrdup(cfg->shim) : NULL;
	r->master = cfg->master != NULL ? xstrdup(cfg->master) : NULL;
	if (cfg->chunk > 0)
		r->chunk = cfg->chunk;
	r->on_output = cfg->on_output;
}

void runner_set_chunk(struct runner *r, size_t chunk)
{
	if (chunk > 0)
		r->chunk = chunk;
}

static void runner_clear_queue(struct runner *r)
{
	struct task *t;
	while ((t = r->queue.head) != NULL) {
		runner_list_unlink(&r->queue, t);
		task_free(&t);
	}
}

void runner_destroy(struct runner **rp)
{
	struct runner *r = *rp;
	if (r == NULL)
		return;
	runner_clear_queue(r);
	if (r->busy > 0) {
		/* Threads and children still hold these tasks and their callbacks will look at
		 * r: freeing either would be a use-after-free, so leak them, loudly. */
		log_error(SUBSYS, "destroyed with %zu tasks running; leaking them", r->running.n);
		runner_drop(r);
		r->stopping = true;
	} else {
		free(r->work_root);
		free(r->shim);
		free(r->master);
		free(r);
	}
	*rp = NULL;
}

/* Small by input size, the only cost known in advance; file splits do I/O and go alone. */
static bool runner_task_is_small(const struct task *t)
{
	if (t->plugin_obj != NULL || t->side != NULL)
		return false; /* cost unknown */
	switch (t->input) {
	case TASK_INPUT_RANGE:
		return t->hi <= t->lo || (uint64_t)t->hi - (uint64_t)t->lo <= RUNNER_SMALL_RANGE;
	case TASK_INPUT_DATA:
		return t->len <= RUNNER_SMALL_DATA;
	case TASK_INPUT_NONE:
		return true;
	default:
		return false;
	}
}

/* The master takes a result in pieces (TaskOutput) only where it concatenates partials. */
static bool runner_task_streamable(const struct task *t)
{
	if (t->exec != NULL || t->plugin != NULL)
		return true;
	const struct op_desc *op = op_find(t->op != NULL ? t->op : "");
	return op != NULL && op->combine == OP_COMBINE_CONCAT;
}

void runner_enqueue(struct runner *r, struct task *t)
{
	if (r->stopping) {
		task_free(&t);
		return;
	}
	t->runner = r;
	if (t->failed_early) {
		r->on_done(r->arg, &t->res);
		return;
	}
	if (t->exec != NULL && r->work_root == NULL) {
		task_fail(t, false, "this worker cannot run commands (no working directory)");
		r->on_done(r->arg, &t->res);
		return;
	}
	t->small = t->exec == NULL && runner_task_is_small(t);
	t->res.streamable = runner_task_streamable(t);
	runner_list_push(&r->queue, t);
	runner_pump(r);
}

void runner_submit(struct runner *r, const Shoal__Task *task)
{
	if (r->stopping)
		return;
	runner_enqueue(r, task_create(task));
}

/* Marks a running task's result unwanted; an exec child dies at once. */
static void runner_task_drop(struct runner *r, struct task *t)
{
	t->dropped = true;
	r->live--;
	if (t->run != NULL)
		exec_kill(t->run);
}

void runner_set_watchers(struct runner *r, runner_started_fn on_started, runner_held_fn on_held)
{
	r->on_started = on_started;
	r->on_held = on_held;
}

uint64_t runner_next_deadline(const struct runner *r)
{
	uint64_t next = 0;
	for (const struct task *t = r->running.head; t != NULL; t = t->next)
		if (!t->dropped && !t->timed_out && t->deadline_ms > 0 &&
		    (next == 0 || t->deadline_ms < next))
			next = t->deadline_ms;
	return next;
}

/* The attempt ran past its timeout. A command is killed and reports the timeout when its
 * child is gone. A pool task cannot be stopped: its failure is reported now, from a stand-in
 * task, and the thread's result is dropped when it ends; until then it holds its slot. */
static void runner_task_timeout(struct runner *r, struct task *t, uint64_t now)
{
	t->timed_out = true;
	log_warn(SUBSYS,
	         "job=%" PRIu64 " task=%" PRIu32 " attempt=%" PRIu32
	         " event=task_timeout timeout_ms=%" PRIu32 " kind=%s",
	         t->res.ref.job_id, t->res.ref.task_id, t->res.ref.attempt, t->timeout_ms,
	         t->exec != NULL ? "command" : "thread");
	if (t->exec != NULL) {
		if (t->run != NULL)
			exec_kill(t->run);
		return;
	}
	struct task *f = xcalloc(1, sizeof(*f));
	f->res.ref = t->res.ref;
	f->res.elapsed_us = (now - (t->deadline_ms - t->timeout_ms)) * 1000u;
	task_fail(f, false,
	          "attempt %" PRIu32 " ran longer than the task timeout (%" PRIu32
	          " ms); a plugin or built-in op cannot be interrupted: it runs on, holding its "
	          "slot, and its result is dropped",
	          t->res.ref.attempt, t->timeout_ms);
	t->dropped = true;
	r->live--;
	r->on_done(r->arg, &f->res);
}

void runner_expire(struct runner *r, uint64_t now)
{
	struct task *next;
	for (struct task *t = r->running.head; t != NULL; t = next) {
		next = t->next; /* on_done may not touch the running list, but be safe */
		if (!t->dropped && !t->timed_out && t->deadline_ms > 0 && now >= t->deadline_ms)
			runner_task_timeout(r, t, now);
	}
	runner_note_held(r);
}

size_t runner_cancel(struct runner *r, const struct task_ref *refs, size_t n)
{
	if (n == 0)
		return 0;
	size_t found = 0;
	struct task *t = r->queue.head;
	while (t != NULL) {
		struct task *next = t->next;
		if (bsearch(&t->res.ref, refs, n, sizeof(*refs), task_ref_cmp) != NULL) {
			runner_list_unlink(&r->queue, t);
			task_free(&t);
			found++;
		}
		t = next;
	}
	for (t = r->running.head; t != NULL; t = t->next) {
		if (!t->dropped &&
		    bsearch(&t->res.ref, refs, n, sizeof(*refs), task_ref_cmp) != NULL) {
			runner_task_drop(r, t);
			found++;
		}
	}
	runner_note_held(r);
	return found;
}

void runner_drop(struct runner *r)
{
	runner_clear_queue(r);
	for (struct task *t = r->running.head; t != NULL; t = t->next)
		if (!t->dropped)
			runner_task_drop(r, t);
	runner_note_held(r);
}

void runner_set_paused(struct runner *r, bool paused)
{
	if (r->paused == paused)
		return;
	r->paused = paused;
	for (struct task *t = r->running.head; t != NULL; t = t->next)
		if (t->run != NULL)
			exec_pause(t->run, paused);
	if (!paused)
		runner_pump(r);
}

void runner_stop(struct runner *r, runner_stopped_fn on_stopped, void *arg)
{
	if (r->stopping)
		return;
	r->stopping = true;
	r->on_stopped = on_stopped;
	r->stopped_arg = arg;
	runner_clear_queue(r);
	runner_check_stopped(r);
}

void runner_kill_children(struct runner *r)
{
	for (struct task *t = r->running.head; t != NULL; t = t->next)
		if (t->run != NULL)
			exec_kill(t->run);
}

uint32_t runner_running(const struct runner *r)
{
	return r->live;
}

size_t runner_queued(const struct runner *r)
{
	return r->queue.n;
}
