/* runner.h: the worker's task queue and its execution on libuv's thread pool.
 *
 * runner_submit copies everything a task needs (the envelope it arrived in is freed as soon
 * as the message callback returns) and appends it to a FIFO. Up to `slots` tasks run at once
 * with uv_queue_work; when one finishes, the next queued task starts from the same after-work
 * callback, so a slot never idles while work waits.
 *
 * A finished task reaches on_done on the loop thread as a struct runner_result that the
 * callee takes and releases with runner_result_free: its `out` buffer is the op's partial
 * result and can go to the wire without a copy.
 *
 * Task lifecycle inside the runner:
 *
 *   submit --> QUEUED --slot free--> RUNNING --thread done--> on_done (result handed over)
 *                |                      |
 *   cancel/drop: freed        cancel/drop: marked; result freed unseen when the thread ends
 *
 * Running tasks cannot be interrupted (built-in ops are short); they still hold their slot
 * until they end. Everything here runs on the loop thread except the op itself. */
#ifndef SHOAL_WORKER_RUNNER_H
#define SHOAL_WORKER_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "shoal.pb-c.h"

struct runner;

/* Identifies one attempt of one task. */
struct runner_ref {
	uint64_t job_id;
	uint32_t task_id;
	uint32_t attempt;
};

struct runner_result {
	struct runner_ref ref;
	bool ok;
	bool permanent;      /* !ok: the data is at fault, re-running cannot help */
	struct buf out;      /* ok: the op's partial result (owned) */
	char *error;         /* !ok: why (owned) */
	uint64_t records;    /* records the task read */
	uint64_t elapsed_us; /* time in the thread, input reading included */
};

/* Takes res. Called on the loop thread. */
typedef void (*runner_done_fn)(void *arg, struct runner_result *res);
/* The runner is stopped and no task is in a thread any more. */
typedef void (*runner_stopped_fn)(void *arg);

/* Returns an owned runner; slots >= 1. */
struct runner *runner_create(uv_loop_t *loop, uint32_t slots, runner_done_fn on_done, void *arg);
/* Requires that no task is in a thread (after runner_stop's callback, or before any
 * submit ran). Frees queued tasks. Sets *r to NULL. */
void runner_destroy(struct runner **r);

/* Queues a copy of task (borrowed). Ignored after runner_stop. */
void runner_submit(struct runner *r, const Shoal__Task *task);
/* Cancels these attempts: queued ones are removed, running ones lose their result. Sorts
 * refs in place. Returns how many attempts were found. */
size_t runner_cancel(struct runner *r, struct runner_ref *refs, size_t n);
/* Forgets every task (the master they came from is gone): the queue is emptied, running
 * tasks lose their result. */
void runner_drop(struct runner *r);
/* While paused no queued task starts (the connection's write queue is full). */
void runner_set_paused(struct runner *r, bool paused);
/* Stops taking work: the queue is emptied, running tasks finish and report as usual; then
 * on_stopped runs once (maybe before runner_stop returns, if nothing is running). */
void runner_stop(struct runner *r, runner_stopped_fn on_stopped, void *arg);

/* Tasks whose results are still wanted and that are in a thread now. */
uint32_t runner_running(const struct runner *r);
/* Tasks waiting for a slot. */
size_t runner_queued(const struct runner *r);

/* Releases a result handed to on_done. Sets *res to NULL. */
void runner_result_free(struct runner_result **res);

#endif
