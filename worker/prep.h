/* prep.h: getting a task ready to run: its shipped files in the cache, its broadcast bytes
 * in memory, its plugin loaded.
 *
 *   submit --refused (--exec/--plugin without --allow-exec, bad file ref)--> on_failed
 *     |
 *     v
 *   FETCHING (some file not cached: the cache asks the master, once per blob however many
 *     |        tasks wait for it)          --fetch failed--> on_failed (non-permanent)
 *     v
 *   LOADING  (op with a broadcast: the file mapped into memory once and shared by every task
 *     |       that reads it; plugin: dlopened once per worker) --load failed--> on_failed
 *     v
 *   on_ready (the runner takes it)
 *
 * A task waiting here holds no slot. Cancelled and dropped tasks are freed at once; loads in
 * the pool finish on their own and serve later tasks. Loop thread only; loads run in the
 * pool. */
#ifndef SHOAL_WORKER_PREP_H
#define SHOAL_WORKER_PREP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "task.h"

struct prep;

struct prep_config {
	const char *worker_name; /* for the --allow-exec refusal */
	bool allow_exec;
	const char *cache_error; /* why there is no cache (cache == NULL) */
};

struct prep_callbacks {
	/* Takes t: everything it needs is at hand. */
	void (*on_ready)(void *arg, struct task *t);
	/* Takes res: the task failed before running. */
	void (*on_failed)(void *arg, struct task_result *res);
};

/* cache may be NULL (tasks that ship files then fail with cfg->cache_error). cfg's strings
 * are copied, cb too. */
struct prep *prep_create(uv_loop_t *loop, struct cache *cache, const struct prep_config *cfg,
                         const struct prep_callbacks *cb, void *arg);
/* Requires prep_stop's callback to have run (or no load ever started). Sets *p to NULL. */
void prep_destroy(struct prep **p);

/* Takes t. */
void prep_submit(struct prep *p, struct task *t);
/* The cache finished a fetch (forwarded from its on_fetched). */
void prep_on_fetched(struct prep *p, const uint8_t sha[DIGEST_LEN], int status, const char *err);
/* Frees the waiting tasks among refs (sorted with task_ref_cmp). Returns how many. */
size_t prep_cancel(struct prep *p, const struct task_ref *refs, size_t n);
/* Frees every waiting task (the master that gave them is gone). */
void prep_drop(struct prep *p);
/* Drops the waiting tasks and takes no more; on_stopped runs once no load is left in the
 * pool (maybe before returning). */
void prep_stop(struct prep *p, void (*on_stopped)(void *arg), void *arg);

/* Tasks waiting for files or loads. */
size_t prep_waiting(const struct prep *p);

#endif
