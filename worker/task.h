/* task.h: the worker's own copy of one task attempt, from TaskBatch to its result.
 *
 * A TaskBatch envelope is freed as soon as its message callback returns, so task_create
 * copies everything an attempt needs. The task then moves between the worker's modules,
 * always owned by exactly one of them:
 *
 *   session --task_create--> prep (FETCHING: blobs; LOADING: broadcast bytes, plugin)
 *     --> runner (QUEUED, RUNNING: thread pool or exec child) --> session (result sent)
 *
 * and is freed with task_free (or task_result_free on its result), which also unpins its
 * cached files and releases its share of the broadcast bytes. Loop thread only, except the
 * fields a pool thread owns while the task runs there (runner.c says which). */
#ifndef SHOAL_WORKER_TASK_H
#define SHOAL_WORKER_TASK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "cache.h"
#include "digest.h"
#include "shoal.pb-c.h"

struct plugin;
struct exec;
struct runner;

/* Identifies one attempt of one task. */
struct task_ref {
	uint64_t job_id;
	uint32_t task_id;
	uint32_t attempt;
};

struct task_result {
	struct task_ref ref;
	bool ok;
	bool permanent;      /* !ok: the data is at fault, re-running cannot help */
	struct buf out;      /* ok: the partial result (owned) */
	char *error;         /* !ok: why (owned) */
	uint64_t records;    /* records the task read */
	uint64_t elapsed_us; /* execution time on the worker */
	uint64_t *buckets;   /* map task of a reduce job: nbuckets sizes (owned) */
	uint32_t nbuckets;
	bool streamable; /* the master takes this output in pieces (TaskOutput) */
	size_t sent;     /* bytes of out already sent as TaskOutput (session.c) */
};

enum task_input { TASK_INPUT_NONE, TASK_INPUT_RANGE, TASK_INPUT_DATA, TASK_INPUT_SPLIT };

/* A shipped file the task uses. */
struct task_file {
	char *name;
	uint8_t sha[DIGEST_LEN];
	uint64_t size;
	struct cache_entry *entry; /* pinned, once the cache has it */
};

/* A broadcast file's bytes, shared by the tasks that read them (prep.c owns it). */
struct task_side {
	const uint8_t *data;
	size_t len;
	unsigned refs;
	void (*release)(struct task_side *s); /* refs reached 0 */
};

struct task {
	struct task_result res;   /* first: task_result_free finds the task from it */
	struct task *prev, *next; /* in the list of the module that owns it */

	char *op;
	Shoal__Arg *argv;  /* nargs args, strings owned */
	Shoal__Arg **args; /* pointers into argv, the shape op_run wants */
	size_t nargs;
	enum task_input input;
	int64_t lo, hi;
	uint8_t *data;
	size_t len;
	char *path;
	uint64_t offset, length;
	char *exec;        /* run this command instead of op */
	uint32_t reducers; /* > 0: map task of a reduce job */
	struct task_file *files;
	size_t nfiles;
	struct task_file *broadcast; /* NULL or one */
	struct task_file *plugin;    /* NULL or one */

	/* Resources prep attaches before the task may run. */
	struct task_side *side;          /* op tasks with a broadcast */
	const struct plugin *plugin_obj; /* plugin tasks; owned by prep */
	unsigned missing;                /* FETCHING: files not in the cache yet */

	/* The runner's bookkeeping. */
	struct runner *runner;
	uv_work_t work;
	struct task *chunk_next; /* running: the next task of the same work request */
	struct exec *run;        /* an exec task's running command */
	uint32_t timeout_ms;     /* the job's --task-timeout (0: none) */
	uint64_t deadline_ms;    /* running with a timeout: loop time it expires */
	bool timed_out;          /* stopped for running past timeout_ms */
	bool dropped;            /* nobody wants the result any more */
	bool small;              /* cheap enough to share a work request */
	bool failed_early;       /* res already holds a failure: run nothing */
};

/* Copies task (borrowed) into an owned task. */
struct task *task_create(const Shoal__Task *task);
/* Frees the task's input (not its result). Idempotent. */
void task_free_input(struct task *t);
/* Frees everything; sets *t to NULL. */
void task_free(struct task **t);
/* Releases a result (the task it belongs to). Sets *res to NULL. */
void task_result_free(struct task_result **res);
/* Turns the result into a failure with this reason. */
void task_fail(struct task *t, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Orders task refs by job, task, attempt (qsort and bsearch). */
int task_ref_cmp(const void *a, const void *b);
/* True if name is a plain file name: not empty, no '/', not "." or "..". */
bool task_file_name_ok(const char *name);

#endif
