/* journal.h: the master's durable record of its jobs, in SQLite (STATE/journal.db).
 *
 * What is kept, so that a restarted master resumes where a killed one stopped:
 *   jobs   one row per job: its JobSpec (packed protobuf), state, error, timings, partition
 *          plan (partition size, count, and for an uploaded input the cut points in the spool
 *          file STATE/jobs/ID/input), and for a finished fold its result line. A reduce job
 *          in its reduce stage says so (stage 1): its partitions are then the reducers, cut
 *          from its grouped map output STATE/jobs/ID/reduce-input.
 *   tasks  one row per finished partition of the job's current stage: its record count, where
 *          its bytes are in the job's spill file (offset and length, or the pieces of a streamed
 *          output), the bucket sizes of a map task, and for a fold the partial itself.
 *   meta   the highest job id ever handed out, so ids never repeat.
 *
 * This module is plain SQLite: no event loop. Changes gather in a journal_batch (owned copies
 * of everything) and journal_commit writes a batch in one transaction, on whichever thread
 * calls it; the master runs commits on the libuv thread pool, one at a time (persist.c). The
 * database runs in WAL mode with synchronous=NORMAL; a commit that makes a promise (a job
 * accepted, a partition counted) asks for synchronous=FULL, which fsyncs the WAL. */
#ifndef SHOAL_JOURNAL_H
#define SHOAL_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct journal;

/* A job row. Pointers are borrowed by journal_put_job (it copies) and by the load callback
 * (valid during the call only). */
struct journal_job {
	uint64_t id;
	const uint8_t *spec; /* packed Shoal__JobSpec */
	size_t spec_len;
	int state; /* Shoal__JobState */
	const char *error;
	uint64_t submitted_ms, started_ms, finished_ms;
	uint64_t part_size;
	uint32_t ntasks;
	uint64_t input_bytes;
	uint64_t records;
	uint32_t task_failures;
	uint64_t result_size;
	const uint8_t *result; /* a fold's result; NULL otherwise */
	size_t result_len;
	bool result_file;      /* the result is STATE/jobs/ID/result */
	const uint64_t *parts; /* uploaded input: nparts (offset, length) pairs; NULL until cut */
	uint32_t nparts;
	/* A reduce job in its reduce stage: ntasks and parts are the reducers' (their cut points
	 * in STATE/jobs/ID/reduce-input), map_tasks the number of map tasks before them. */
	bool reducing;
	uint32_t map_tasks;
};

/* A finished partition. */
struct journal_task {
	uint64_t job;
	uint32_t task;
	uint64_t records;
	uint64_t out_off, out_len;         /* spilled partial (CONCAT, MERGE) */
	const uint64_t *seg_off, *seg_len; /* a streamed partial's pieces, nsegs of them */
	uint32_t nsegs;
	const uint64_t *buckets; /* map task of a reduce job */
	uint32_t nbuckets;
	const uint8_t *partial; /* a fold's partial; NULL otherwise */
	size_t partial_len;
};

struct journal_batch;

/* Opens (creating if needed) DIR/journal.db and checks it. On failure err names the file, what
 * is wrong and what to do, and -1 is returned. */
int journal_open(const char *dir, struct journal **out, char *err, size_t errlen);
/* Checkpoints the WAL into the database file and closes. Sets *j to NULL. */
void journal_close(struct journal **j);
const char *journal_path(const struct journal *j);

/* The highest job id ever stored (0 for a new journal). */
uint64_t journal_max_id(const struct journal *j);

/* Calls job_fn for every job (ascending id) and task_fn for each of that job's finished
 * partitions right after it. A non-zero return from a callback stops and is returned. -1 with
 * err on a database error. */
struct journal_load_fn {
	int (*job)(void *arg, const struct journal_job *job);
	int (*task)(void *arg, const struct journal_task *task);
	void *arg;
};
int journal_load(struct journal *j, const struct journal_load_fn *fn, char *err, size_t errlen);

/* Batches: owned by their creator; every put copies what it is given. */
struct journal_batch *journal_batch_create(void);
void journal_batch_destroy(struct journal_batch **b);
bool journal_batch_empty(const struct journal_batch *b);
size_t journal_batch_size(const struct journal_batch *b);
/* Inserts or replaces the job's row. */
void journal_put_job(struct journal_batch *b, const struct journal_job *job);
void journal_put_task(struct journal_batch *b, const struct journal_task *task);
/* Forgets the finished partitions of a job (its result no longer needs them). */
void journal_drop_tasks(struct journal_batch *b, uint64_t job);
/* Forgets a job entirely (retention). */
void journal_drop_job(struct journal_batch *b, uint64_t job);

/* Writes the batch in one transaction; with `full` the commit is fsynced before it returns.
 * Thread-safe with respect to the loop as long as only one commit runs at a time and no other
 * journal call runs meanwhile. -1 with err (naming the file) on failure; nothing of the batch
 * is then stored. */
int journal_commit(struct journal *j, const struct journal_batch *b, bool full, char *err,
                   size_t errlen);

#endif
