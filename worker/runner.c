/* runner.c: task queue and execution on libuv's thread pool (see runner.h).
 *
 * Ownership: a task belongs to the runner from submit until it is freed (cancelled, dropped,
 * stopped) or its result is handed to on_done; from then on to whoever took the result.
 * While a task is in a thread, the thread alone touches its input and result; the loop
 * thread only flips `dropped` and links, which the thread never reads. */
#include "runner.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ops.h"
#include "records.h"
#include "util.h"

/* Chunking of small tasks (see runner_pump). */
#define RUNNER_CHUNK_MAX   64u
#define RUNNER_SMALL_RANGE 4096u
#define RUNNER_SMALL_DATA  ((size_t)16 * 1024)

enum runner_input { RUNNER_INPUT_NONE, RUNNER_INPUT_RANGE, RUNNER_INPUT_DATA, RUNNER_INPUT_SPLIT };

struct runner_task {
	struct runner_result res; /* first: runner_result_free finds the task from it */
	uv_work_t work;
	struct runner *runner;
	struct runner_task *prev, *next; /* in the queue or the running list */
	struct runner_task *chunk_next;  /* running: the next task of the same work request */
	bool dropped;                    /* running, but nobody wants the result any more */
	bool small;                      /* cheap enough to share a work request (see pump) */

	char *op;
	Shoal__Arg *argv;  /* nargs args, strings owned */
	Shoal__Arg **args; /* pointers into argv, the shape op_run wants */
	size_t nargs;

	enum runner_input input;
	int64_t lo, hi;
	uint8_t *data;
	size_t len;
	char *path;
	uint64_t offset, length;
};

struct runner_list {
	struct runner_task *head, *tail;
	size_t n;
};

struct runner {
	uv_loop_t *loop;
	uint32_t slots;
	runner_done_fn on_done;
	void *arg;
	struct runner_list queue;
	struct runner_list running; /* in threads, dropped ones included */
	uint32_t live;              /* running and not dropped */
	uint32_t busy;              /* work requests in the pool: slots in use */
	bool paused;
	bool stopping;
	runner_stopped_fn on_stopped;
	void *stopped_arg;
};

static void runner_list_push(struct runner_list *l, struct runner_task *t)
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

static void runner_list_unlink(struct runner_list *l, struct runner_task *t)
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

static void runner_task_free_input(struct runner_task *t)
{
	free(t->op);
	t->op = NULL;
	for (size_t i = 0; i < t->nargs; i++) {
		free(t->argv[i].key);
		free(t->argv[i].value);
	}
	free(t->argv);
	free(t->args);
	t->argv = NULL;
	t->args = NULL;
	t->nargs = 0;
	free(t->data);
	t->data = NULL;
	free(t->path);
	t->path = NULL;
}

static void runner_task_free(struct runner_task *t)
{
	runner_task_free_input(t);
	buf_free(&t->res.out);
	free(t->res.error);
	free(t);
}

void runner_result_free(struct runner_result **res)
{
	if (*res == NULL)
		return;
	runner_task_free((struct runner_task *)(void *)*res);
	*res = NULL;
}

static void runner_task_fail(struct runner_task *t, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void runner_task_fail(struct runner_task *t, bool permanent, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	t->res.ok = false;
	t->res.permanent = permanent;
	free(t->res.error);
	/* The master rejects a failure without a reason (it would have nothing to show). */
	t->res.error = xstrdup(msg[0] != '\0' ? msg : "task failed");
	buf_free(&t->res.out);
}

/* Runs in a pool thread: reads a split if needed, then the op. */
static void runner_task_execute(struct runner_task *t)
{
	const struct op_desc *op = op_find(t->op);
	if (op == NULL) {
		runner_task_fail(t, true, "unknown op %s", t->op);
		return;
	}
	struct op_error err;
	memset(&err, 0, sizeof(err));
	if (op_args_check(op, t->args, t->nargs, err.msg, sizeof(err.msg)) != 0) {
		runner_task_fail(t, true, "%s", err.msg);
		return;
	}

	struct op_input in;
	memset(&in, 0, sizeof(in));
	struct buf split = BUF_INIT;
	switch (t->input) {
	case RUNNER_INPUT_RANGE:
		in.is_range = true;
		in.lo = t->lo;
		in.hi = t->hi;
		break;
	case RUNNER_INPUT_DATA:
		in.data = t->data;
		in.len = t->len;
		break;
	case RUNNER_INPUT_SPLIT:
		/* Not permanent: the file may be missing or unreadable on this worker only. */
		if (split_read(t->path, t->offset, t->length, &split, err.msg, sizeof(err.msg)) !=
		    0) {
			buf_free(&split);
			runner_task_fail(t, false, "%s", err.msg);
			return;
		}
		in.data = split.data;
		in.len = split.len;
		break;
	case RUNNER_INPUT_NONE:
	default:
		runner_task_fail(t, true, "task has no input");
		return;
	}

	uint64_t records = 0;
	if (op_run(op, t->args, t->nargs, &in, t->res.ref.task_id, &t->res.out, &records, &err) !=
	    0) {
		runner_task_fail(t, err.permanent, "%s", err.msg[0] ? err.msg : "op failed");
	} else {
		t->res.ok = true;
	}
	t->res.records = records;
	buf_free(&split);
}

/* Runs in a pool thread: every task of the chunk, one after the other. */
static void on_work(uv_work_t *req)
{
	for (struct runner_task *t = req->data; t != NULL; t = t->chunk_next) {
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
static void runner_task_finish(struct runner *r, struct runner_task *t, int status)
{
	runner_list_unlink(&r->running, t);
	if (!t->dropped)
		r->live--;
	runner_task_free_input(t);
	if (status != 0 && !t->dropped)
		runner_task_fail(t, false, "task was not run: %s", uv_strerror(status));
}

static void runner_task_deliver(struct runner *r, struct runner_task *t)
{
	if (t->dropped)
		runner_task_free(t);
	else
		r->on_done(r->arg, &t->res);
}

static void on_after_work(uv_work_t *req, int status)
{
	struct runner_task *lead = req->data;
	struct runner *r = lead->runner;

	r->busy--;
	for (struct runner_task *t = lead; t != NULL; t = t->chunk_next)
		runner_task_finish(r, t, status);

	/* Refill the slot before anything else, so the pool never waits on the loop. */
	runner_pump(r);

	struct runner_task *next;
	for (struct runner_task *t = lead; t != NULL; t = next) {
		next = t->chunk_next;
		t->chunk_next = NULL;
		runner_task_deliver(r, t);
	}
	runner_check_stopped(r);
}

static struct runner_task *runner_take(struct runner *r)
{
	struct runner_task *t = r->queue.head;
	runner_list_unlink(&r->queue, t);
	runner_list_push(&r->running, t);
	t->chunk_next = NULL;
	r->live++;
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

		struct runner_task *lead = runner_take(r);
		struct runner_task *tail = lead;
		for (size_t k = 1;
		     lead->small && k < per && r->queue.head != NULL && r->queue.head->small; k++) {
			tail->chunk_next = runner_take(r);
			tail = tail->chunk_next;
		}

		lead->work.data = lead;
		int rc = uv_queue_work(r->loop, &lead->work, on_work, on_after_work);
		if (rc != 0) {
			/* Cannot happen with valid arguments; report rather than lose the tasks. */
			struct runner_task *next;
			for (struct runner_task *t = lead; t != NULL; t = next) {
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
	return r;
}

static void runner_clear_queue(struct runner *r)
{
	struct runner_task *t;
	while ((t = r->queue.head) != NULL) {
		runner_list_unlink(&r->queue, t);
		runner_task_free(t);
	}
}

void runner_destroy(struct runner **rp)
{
	struct runner *r = *rp;
	if (r == NULL)
		return;
	runner_clear_queue(r);
	if (r->busy > 0) {
		/* Threads still hold these tasks and their after-work callbacks will look at r:
		 * freeing either would be a use-after-free, so leak them, loudly. */
		log_error("runner", "destroyed with %zu tasks in threads; leaking them",
		          r->running.n);
		runner_drop(r);
		r->stopping = true;
	} else {
		free(r);
	}
	*rp = NULL;
}

static void runner_copy_args(struct runner_task *t, const Shoal__Task *task)
{
	if (task->n_args == 0 || task->args == NULL)
		return;
	t->nargs = task->n_args;
	t->argv = xcalloc(t->nargs, sizeof(*t->argv));
	t->args = xcalloc(t->nargs, sizeof(*t->args));
	for (size_t i = 0; i < t->nargs; i++) {
		const Shoal__Arg *a = task->args[i];
		shoal__arg__init(&t->argv[i]);
		t->argv[i].key = xstrdup(a != NULL && a->key != NULL ? a->key : "");
		t->argv[i].value = xstrdup(a != NULL && a->value != NULL ? a->value : "");
		t->args[i] = &t->argv[i];
	}
}

/* Small by input size, the only cost known in advance; file splits do I/O and go alone. */
static bool runner_task_is_small(const struct runner_task *t)
{
	switch (t->input) {
	case RUNNER_INPUT_RANGE:
		return t->hi <= t->lo || (uint64_t)t->hi - (uint64_t)t->lo <= RUNNER_SMALL_RANGE;
	case RUNNER_INPUT_DATA:
		return t->len <= RUNNER_SMALL_DATA;
	case RUNNER_INPUT_NONE:
		return true;
	default:
		return false;
	}
}

void runner_submit(struct runner *r, const Shoal__Task *task)
{
	if (r->stopping)
		return;
	struct runner_task *t = xcalloc(1, sizeof(*t));
	t->runner = r;
	t->res.ref.job_id = task->job_id;
	t->res.ref.task_id = task->task_id;
	t->res.ref.attempt = task->attempt;
	t->op = xstrdup(task->op != NULL ? task->op : "");
	runner_copy_args(t, task);

	switch (task->input_case) {
	case SHOAL__TASK__INPUT_RANGE:
		if (task->range != NULL) {
			t->input = RUNNER_INPUT_RANGE;
			t->lo = task->range->lo;
			t->hi = task->range->hi;
		}
		break;
	case SHOAL__TASK__INPUT_DATA:
		/* The envelope dies when on_message returns; the thread needs its own copy. */
		t->input = RUNNER_INPUT_DATA;
		t->len = task->data.len;
		t->data = xmalloc(t->len);
		if (t->len > 0)
			memcpy(t->data, task->data.data, t->len);
		break;
	case SHOAL__TASK__INPUT_SPLIT:
		if (task->split != NULL && task->split->path != NULL) {
			t->input = RUNNER_INPUT_SPLIT;
			t->path = xstrdup(task->split->path);
			t->offset = task->split->offset;
			t->length = task->split->length;
		}
		break;
	default:
		break;
	}
	t->small = runner_task_is_small(t);
	runner_list_push(&r->queue, t);
	runner_pump(r);
}

static int runner_ref_cmp(const void *a, const void *b)
{
	const struct runner_ref *x = a, *y = b;
	if (x->job_id != y->job_id)
		return x->job_id < y->job_id ? -1 : 1;
	if (x->task_id != y->task_id)
		return x->task_id < y->task_id ? -1 : 1;
	if (x->attempt != y->attempt)
		return x->attempt < y->attempt ? -1 : 1;
	return 0;
}

size_t runner_cancel(struct runner *r, struct runner_ref *refs, size_t n)
{
	if (n == 0)
		return 0;
	/* Sorting once makes a big cancel O((queue + n) log n) instead of O(queue * n). */
	qsort(refs, n, sizeof(*refs), runner_ref_cmp);
	size_t found = 0;
	struct runner_task *t = r->queue.head;
	while (t != NULL) {
		struct runner_task *next = t->next;
		if (bsearch(&t->res.ref, refs, n, sizeof(*refs), runner_ref_cmp) != NULL) {
			runner_list_unlink(&r->queue, t);
			runner_task_free(t);
			found++;
		}
		t = next;
	}
	for (t = r->running.head; t != NULL; t = t->next) {
		if (!t->dropped &&
		    bsearch(&t->res.ref, refs, n, sizeof(*refs), runner_ref_cmp) != NULL) {
			t->dropped = true;
			r->live--;
			found++;
		}
	}
	return found;
}

void runner_drop(struct runner *r)
{
	runner_clear_queue(r);
	for (struct runner_task *t = r->running.head; t != NULL; t = t->next) {
		if (!t->dropped) {
			t->dropped = true;
			r->live--;
		}
	}
}

void runner_set_paused(struct runner *r, bool paused)
{
	r->paused = paused;
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

uint32_t runner_running(const struct runner *r)
{
	return r->live;
}

size_t runner_queued(const struct runner *r)
{
	return r->queue.n;
}
