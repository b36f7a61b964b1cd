/* runner.h: the worker's task queue and its slots.
 *
 * Ready tasks (prep.c has their files, broadcast bytes and plugin at hand) wait in a FIFO.
 * Up to `slots` run at once: built-in ops and plugins on libuv's thread pool (small ones a
 * few to a work request, see runner_pump), --exec tasks as child processes (exec.c). When one
 * finishes, the next queued task starts at once, so a slot never idles while work waits.
 *
 * A finished task reaches on_done on the loop thread as a struct task_result that the callee
 * takes and releases with task_result_free: its `out` buffer is the partial result and can go
 * to the wire without a copy. An exec task's stdout also streams out while it runs, through
 * on_output, in pieces of the configured chunk size; out then holds only the rest.
 *
 * Task lifecycle inside the runner:
 *
 *   enqueue --> QUEUED --slot free--> RUNNING --thread / child done--> on_done
 *                 |                      |
 *   cancel/drop: freed        cancel/drop: marked (an exec child is SIGKILLed); the result
 *                                          is freed unseen when the task ends
 *
 * A task with a timeout (the job's --task-timeout) is stopped once it has been RUNNING that
 * long; time spent QUEUED does not count. An exec child is killed and the attempt reports the
 * timeout. Pool tasks (built-in ops, plugins) cannot be interrupted: a timed-out one reports
 * its failure at once and a cancelled one is forgotten, but either keeps running, holding its
 * slot, until it ends, and its result is then dropped. runner_held counts such slots, so the
 * master is told not to count them as free. Everything here runs on the loop thread except
 * the op or plugin itself. */
#ifndef SHOAL_WORKER_RUNNER_H
#define SHOAL_WORKER_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "shoal.pb-c.h"
#include "task.h"

struct runner;

/* Takes res. Called on the loop thread. */
typedef void (*runner_done_fn)(void *arg, struct task_result *res);
/* A piece of a running exec task's stdout. Borrows data. */
typedef void (*runner_output_fn)(void *arg, const struct task_ref *ref, const uint8_t *data,
                                 size_t len);
/* The runner is stopped and no task is in a thread or a child any more. */
typedef void (*runner_stopped_fn)(void *arg);
/* An attempt with a timeout started running: its clock starts now. Borrows ref. */
typedef void (*runner_started_fn)(void *arg, const struct task_ref *ref);
/* The number of slots held by attempts nobody wants (runner_held) changed. */
typedef void (*runner_held_fn)(void *arg, uint32_t held);

/* How exec tasks run. Strings are copied. */
struct runner_exec_config {
	const char *work_root; /* per-attempt working directories go under it */
	const char *shim;      /* exec_params.shim (NULL: none) */
	const char *master;    /* SHOAL_MASTER for the child */
	size_t chunk;          /* stdout streams in pieces of this size */
	runner_output_fn on_output;
};

/* Returns an owned runner; slots >= 1. Without runner_set_exec, exec tasks fail. */
struct runner *runner_create(uv_loop_t *loop, uint32_t slots, runner_done_fn on_done, void *arg);
void runner_set_exec(struct runner *r, const struct runner_exec_config *cfg);
/* Size of the stdout pieces of exec tasks started from now on (the master's frame limit may
 * be known only after registration). */
void runner_set_chunk(struct runner *r, size_t chunk);
/* Requires that no task is running (after runner_stop's callback, or before any task
 * started). Frees queued tasks. Sets *r to NULL. */
void runner_destroy(struct runner **r);

/* Takes t and queues it (a task that already failed is reported at once). Ignored (t freed)
 * after runner_stop. */
void runner_enqueue(struct runner *r, struct task *t);
/* Copies task (borrowed) and queues it: for tasks that need no shipped file. */
void runner_submit(struct runner *r, const Shoal__Task *task);
/* Cancels these attempts: queued ones are removed, running ones lose their result (exec
 * children are killed). refs must be sorted with task_ref_cmp. Returns how many were found. */
size_t runner_cancel(struct runner *r, const struct task_ref *refs, size_t n);
/* Forgets every task (the master they came from is gone): the queue is emptied, running
 * tasks lose their result, exec children are killed. */
void runner_drop(struct runner *r);
/* While paused no queued task starts and exec tasks' stdout is not read (the connection's
 * write queue is full). */
void runner_set_paused(struct runner *r, bool paused);
/* Stops taking work: the queue is emptied, running tasks finish and report as usual; then
 * on_stopped runs once (maybe before runner_stop returns, if nothing is running). */
void runner_stop(struct runner *r, runner_stopped_fn on_stopped, void *arg);
/* SIGKILLs every exec child now (the worker is exiting at once). */
void runner_kill_children(struct runner *r);

/* Callbacks for attempts with a timeout starting, and for held slots changing (either may be
 * NULL). */
void runner_set_watchers(struct runner *r, runner_started_fn on_started, runner_held_fn on_held);
/* Loop time (ms) at which the earliest running attempt's timeout expires; 0 if none. */
uint64_t runner_next_deadline(const struct runner *r);
/* Stops the running attempts whose timeout has expired at loop time now_ms: each reports
 * "ran longer than the task timeout" through on_done. */
void runner_expire(struct runner *r, uint64_t now_ms);
/* Slots still busy with attempts whose results nobody wants (cancelled or timed out): a
 * plugin or op thread runs to its end, a killed command until it is reaped. */
uint32_t runner_held(const struct runner *r);

/* Tasks whose results are still wanted and that are running now. */
uint32_t runner_running(const struct runner *r);
/* Tasks waiting for a slot. */
size_t runner_queued(const struct runner *r);

#endif
