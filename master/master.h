/* master.h: the state of shoal-master and the private interfaces between its modules.
 *
 * The master is one libuv loop. Every module here works on `struct master` and does O(1) work
 * per task event; file I/O goes through the libuv thread pool. Modules:
 *
 *   server.c    listener, handshake, routing of messages by peer role
 *   registry.c  workers: registration, heartbeat deadlines, death
 *   jobs.c      job table: submission, partitioning, task state, ending jobs
 *   sched.c     which worker runs which task (round-robin, dynamic)
 *   upload.c    client uploads spooled to the state dir, cut into partitions
 *   spill.c     partition results: folded, or spilled to a file and merged at the end
 *   fetch.c     streaming a result to a client
 *   watch.c     progress updates to clients that watch a job
 *   persist.c   the journal on the loop: batched commits on the thread pool, recovery at start
 *   journal.c   the journal itself (SQLite, no loop)
 *   trash.c     pruned jobs' directories, removed on the thread pool
 *   http.c      --http: JSON API, Prometheus metrics and the dashboard, on the same loop
 *
 * Task lifecycle (one partition of a job):
 *
 *      READY --assign--> ASSIGNED --ok result--> DONE
 *        ^                  |
 *        +---- requeue -----+  (worker died, or the attempt failed and retries remain)
 *                           +--failed, no retries left--> the job fails
 *
 * A draining worker (SIGTERM) sends Draining with the attempts it is still running: every
 * other task it holds is requeued at once (not a failure) and it gets no new work.
 *
 * Every assignment increments the task's attempt; a result is accepted only from the worker
 * holding the task with the same attempt, so a late or duplicate result is dropped, never
 * aggregated twice. */
#ifndef SHOAL_MASTER_H
#define SHOAL_MASTER_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "buf.h"
#include "conn.h"
#include "list.h"
#include "ops.h"
#include "policy.h"
#include "records.h"
#include "shoal.pb-c.h"
#include "tls.h"

struct journal;

struct master;
struct job;

enum task_state { TASK_READY, TASK_ASSIGNED, TASK_DONE };

struct task {
	struct job *job;
	struct worker *worker; /* holder while ASSIGNED */
	struct list_node link; /* in job->ready while READY, in worker->assigned while ASSIGNED */
	uint32_t id;
	uint32_t attempt;
	uint32_t failures;
	uint8_t state;
	bool reading;    /* ASSIGNED: its uploaded input is being read for sending */
	bool running;    /* ASSIGNED with a --task-timeout: its worker reported it started */
	uint64_t in_off; /* uploaded input: byte range in the spool file */
	uint64_t in_len;
	uint64_t out_off;       /* CONCAT/MERGE: partial result's bytes in the spill file */
	uint64_t out_len;       /* with segs: the total of all segments */
	uint64_t res_off;       /* CONCAT: where the partial starts in the job's result */
	struct task_segs *segs; /* output streamed in pieces (TaskOutput), else NULL */
	uint32_t issued;        /* attempt numbers handed out; each assignment takes the next */
	/* When the current attempt was assigned (loop time); with a --task-timeout, when its
	 * worker reported that it started running (`running`). */
	uint64_t started_ms;
	/* A speculative copy of a straggler (dynamic strategy): its holder and attempt. The first
	 * copy to succeed wins; the other is cancelled and its result dropped. */
	struct worker *backup;
	uint32_t backup_attempt;
	struct list_node backup_link; /* in backup->backups */
	struct task_segs *backup_segs;
	uint64_t *buckets; /* map task of a reduce job: bucket sizes of its output */
	uint64_t records;  /* DONE: records its partial covers */
	/* The worker its last attempt failed on (0: none): a task's failures are counted against
	 * the task only if they happen on different workers while others can take it, so a
	 * broken worker cannot use up a task's --retries by itself. */
	uint64_t avoid_worker;
};

/* A partial result that arrived in pieces, interleaved with other tasks' bytes in the spill
 * file: its (offset, length) pieces in order. */
struct task_segs {
	uint32_t n, cap;
	uint64_t *off, *len;
};

struct worker {
	struct master *m;
	struct conn *conn;
	struct list_node link;     /* in m->workers */
	struct list_head assigned; /* tasks it holds */
	struct list_head backups;  /* speculative copies it runs */
	uint64_t id;
	char *name;
	char *host;      /* the hostname it reports */
	char *advertise; /* the address it says it is reachable at ("": none given) */
	uint32_t slots;
	uint32_t inflight;
	uint32_t held; /* slots busy with attempts nobody wants (Heartbeat.held): not free */
	bool allow_exec;
	uint64_t tasks_done;
	uint64_t tasks_failed;
	/* Durations and deadlines use the loop's monotonic clock (uv_now): a step of the
	 * system clock must not make a worker look dead. Unix times are for display only. */
	uint64_t connected_ms;       /* unix ms, shown to users */
	uint64_t last_heartbeat_ms;  /* unix ms of its last message, shown to users */
	uint64_t last_seen_ms;       /* loop time of its last message: the heartbeat deadline */
	double ewma_task_us;         /* moving average of task time, sizes the prefetch */
	uint32_t failed_in_a_row;    /* attempts failed since its last success */
	uint64_t quarantined_until;  /* loop time: no new tasks before then */
	bool paused;                 /* not read from until the spill files catch up */
	bool draining;               /* said Draining: finishes what it runs, takes nothing new */
	struct list_head blob_sends; /* shipped files on their way to it */
	Shoal__Task **batch; /* tasks assigned during this scheduling round, sent as one frame */
	size_t batch_len, batch_cap;
};

enum input_kind { INPUT_RANGE, INPUT_UPLOAD, INPUT_PATH };

struct job {
	struct master *m;
	uint64_t id;
	Shoal__JobState state;
	const struct op_desc *op;
	Shoal__Arg **args; /* owned deep copies */
	size_t nargs;
	char *name;
	enum input_kind input;
	int64_t lo, hi;     /* INPUT_RANGE */
	char *path;         /* INPUT_PATH */
	uint64_t part_size; /* integers (range) or bytes (path, upload) per partition */
	Shoal__Strategy strategy;
	int32_t priority;
	uint32_t retries;
	uint32_t task_timeout_ms; /* 0: none */
	uint32_t job_timeout_ms;  /* fail once no worker has been connected this long; 0: none */
	uint64_t timed_from_ms;   /* loop time the job-timeout clock may start from */
	char *error;              /* why it failed */
	char *exec;               /* run this command per partition instead of an op */
	char *reduce_exec;        /* second stage over the grouped map output */
	uint32_t reducers;
	bool reducing;          /* the reduce stage is running (tasks are the reducers) */
	uint32_t map_tasks;     /* tasks of the map stage, for progress once reducing */
	Shoal__FileRef **files; /* owned deep copies */
	size_t nfiles;
	Shoal__FileRef *broadcast;
	Shoal__FileRef *plugin;

	struct task *tasks;
	uint32_t ntasks;
	uint32_t done;
	uint32_t running;
	uint32_t task_failures;
	uint64_t records;
	uint64_t input_bytes;
	struct list_head ready;
	struct policy_entry qentry; /* in m->queue while it has tasks to run */
	uint32_t dur_ms[32];        /* recent task times, for speculation's median */
	uint32_t ndur, dur_next;
	uint32_t speculated;     /* backup copies launched */
	uint64_t after;          /* barrier: runs only once this job has succeeded */
	uint64_t input_job;      /* chained stage: its input is this job's result */
	uint32_t req_partitions; /* --partitions / --partition-size, kept for a chained input */
	uint64_t req_partition_size;
	bool held;        /* ready to run, waiting for `after` / `input_job` */
	bool waiting;     /* in m->waiting */
	uint64_t cost;    /* shortest-job-first's estimate */
	uint32_t rr_next; /* round-robin: position in the worker ring */

	uint64_t submitted_ms, started_ms, finished_ms;

	char *dir; /* state dir of the job */
	struct upload *upload;
	struct spill *spill;
	uint64_t result_size;
	struct buf result_mem; /* FOLD results live in memory */
	int result_fd;         /* MERGE results live in a file; CONCAT reads the spill */
	bool result_in_file;   /* the result is the spill's result file (merged or combined) */
	uint32_t io_refs;      /* thread-pool requests that use the job's files */

	uint8_t *spec_packed; /* the JobSpec as submitted, for the journal */
	size_t spec_len;
	uint32_t recovered;        /* partitions found finished in the journal at start */
	uint32_t dispatched;       /* partitions dispatched at least once by this master */
	bool prunable;             /* ended, with files the retention limit may remove */
	bool flush_queued;         /* its spill is to be written out on the journal's next tick */
	struct saved_tasks *saved; /* resumed upload job: journaled partitions, until cut */

	struct client **watchers; /* clients watching the job */
	size_t nwatchers, watchers_cap;
	bool update_pending;
};

struct client {
	struct master *m;
	struct conn *conn;
	struct list_node link;
	struct job **watching;
	size_t nwatching, watching_cap;
	struct fetch *fetch;
	struct job *uploading;    /* the job whose input this client is sending */
	struct blob_upload *blob; /* the shipped file it is sending */
};

struct master_config {
	char listen_host[256];
	uint16_t listen_port;
	char *state_dir;
	Shoal__Strategy strategy;
	enum policy_kind policy;
	double aging;
	uint32_t heartbeat_ms;
	uint32_t heartbeat_timeout_ms;
	uint32_t handshake_timeout_ms;
	uint32_t max_frame;
	uint32_t default_retries;
	uint64_t upload_window;
	uint32_t upload_resume_ms; /* an upload whose client left waits this long to resume */
	/* The cluster secret (auth.h), loaded at startup from --secret-file or
	 * $SHOAL_SECRET_FILE; NULL: none, peers use the plain handshake. Read-only afterwards;
	 * any listener may check tokens against it with auth_hmac/auth_equal. */
	char *secret_file;
	uint8_t *secret;
	size_t secret_len;
	bool insecure; /* --insecure: listening beyond loopback without a secret is allowed */
	/* Limits on what peers may take (README "Security"); 0 where noted means none. */
	uint32_t max_conns;          /* connections at once, all peers */
	uint32_t max_conns_per_addr; /* connections at once from one source address */
	uint32_t max_queued_jobs;    /* unfinished jobs; a Submit beyond is refused */
	uint64_t max_upload;         /* bytes of one job's uploaded input (0: none) */
	uint64_t max_write_queue;    /* bytes queued to one peer before it is disconnected */
	uint32_t write_stall_ms;     /* a peer whose queue stays above the high-water mark without
	                              * draining this long is disconnected */
	struct tls_files tls;        /* --tls-cert/--tls-key/--tls-ca (owned copies) */
	bool allow_exec;             /* may load plugins to run their combine step */
	uint32_t keep_jobs;          /* ended jobs kept (with their results) before the oldest go */
	bool http_enabled;           /* --http off clears it */
	bool http_explicit;          /* --http was given: failing to listen there is fatal */
	char http_host[256];
	uint16_t http_port;
};

/* Counters for /metrics that the master's state does not hold already. */
#define STATS_TASK_BUCKETS 12
extern const double stats_task_bounds[STATS_TASK_BUCKETS]; /* seconds, increasing */
struct master_stats {
	uint64_t task_buckets[STATS_TASK_BUCKETS + 1]; /* successful attempts by run time; +Inf */
	uint64_t task_us_sum;
	uint64_t tasks_ok, tasks_failed; /* attempts that ended */
	uint64_t started_ms;             /* loop time */
};

struct master {
	uv_loop_t *loop;
	struct master_config cfg;
	uv_tcp_t listener;
	uv_timer_t sweep;   /* heartbeat deadlines and handshake deadlines */
	uv_timer_t updates; /* throttled progress updates */
	uv_check_t sched;   /* one scheduling round per loop iteration, after I/O */
	uv_signal_t sigint, sigterm;
	bool sched_pending;
	bool stopping;
	struct conn_limits limits;
	struct auth_replay *replay; /* recent peer nonces (handshake.h) */
	uint32_t nconns;            /* accepted connections not yet closed */
	struct tls_ctx *tls;        /* owned; NULL: plain TCP */

	struct list_head workers;
	struct list_head clients;
	struct list_head pending; /* connections that have not said Hello yet */
	uint32_t nworkers;
	uint64_t no_workers_since_ms; /* loop time the last worker left (or the master started) */
	/* Unfinished jobs cannot progress: no worker has been able to take work for
	 * STALL_NOTICE_MS. JobInfo.stalled says why (stall_reason), since no_workers_since_wall_ms.
	 */
	bool stalled;
	char stall_reason[160];
	uint64_t no_workers_since_wall_ms; /* unix ms of no_workers_since_ms, for display */
	struct job **timed;                /* unfinished jobs with a --job-timeout */
	uint64_t *orphans;                 /* ids of jobs whose uploader left (upload.c) */
	size_t norphans, orphans_cap;
	size_t ntimed, timed_cap;
	uint32_t total_slots;
	uint32_t exec_workers;  /* workers started with --allow-exec */
	uint64_t spill_backlog; /* result bytes received and not yet written to spill files */
	uint64_t next_worker_id;
	uint32_t rr_epoch;    /* bumped when the worker set changes */
	struct worker **ring; /* round-robin ring: each worker once per slot */
	size_t ring_len;

	struct job **jobs; /* by id - 1 */
	size_t njobs, jobs_cap;
	struct policy_queue queue; /* jobs with READY tasks, in the queue policy's order */
	struct job **visited;      /* scheduling round scratch */
	struct job **waiting;      /* jobs whose dependencies have not all succeeded */
	struct list_head locks;    /* named locks with a holder or waiters */
	uint64_t lock_token;       /* fencing tokens: grows with every grant */
	size_t nwaiting, waiting_cap;
	size_t visited_cap;
	uint64_t *dirty; /* ids of watched jobs with an update due */
	size_t ndirty, dirty_cap;
	char *jobs_dir;
	char *blobs_dir;
	struct persist *persist; /* the journal (persist.c) */
	struct trash *trash;     /* pruned jobs' directories being removed (trash.c) */
	bool exiting;            /* after the loop: files stay for the next start */

	struct master_stats stats;
	uv_tcp_t http_listener;
	bool http_listening;
	struct list_head http_conns;
	uint32_t http_nconns;
};

/* server.c */
/* The peer lists, the queue and the loop handles (listener, timers): before the journal is
 * read, which may queue jobs. */
void server_init(struct master *m);
/* Listens (and says so: event=listening, sd_notify READY) and starts the sweep. -1 after
 * logging why; server_stop then closes the handles. */
int server_start(struct master *m);
/* Closes every handle of server_init, the signals and every connection. */
void server_stop(struct master *m);
/* Closes a peer's connection for breaking the protocol, with a log line naming it and why. */
void server_drop(struct conn *c, const char *reason);
/* Sends a Failure answer to a client request. */
void server_send_failure(struct conn *c, uint64_t job_id, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* http.c */
/* Starts the --http endpoint (if enabled). 0, or -1 after logging why. */
int http_start(struct master *m);
/* Closes the listener and every HTTP connection. */
void http_stop(struct master *m);
/* A task attempt succeeded after running elapsed_us on its worker. */
void stats_task_done(struct master *m, uint64_t elapsed_us);

/* registry.c */
struct worker *registry_add(struct master *m, struct conn *c, const Shoal__Hello *hello);
/* Drops a worker (disconnected or dead): its tasks go back to their jobs' queues. */
void registry_remove(struct worker *w, const char *why);
void registry_on_heartbeat(struct worker *w, const Shoal__Heartbeat *hb);
/* The worker drains: the tasks it will not run go back to their queues (not a failure), and
 * it takes no new work. */
void registry_on_draining(struct worker *w, const Shoal__Draining *d);
/* Heartbeat deadlines and quarantines; now_ms is loop time (uv_now). */
void registry_sweep(struct master *m, uint64_t now_ms);
/* True if a worker other than w is connected, not draining and not quarantined. */
bool registry_other_usable(const struct worker *w);
void registry_list(struct master *m, struct conn *c);
/* Results arrive faster than the disk takes them: stop reading from w until the spill
 * backlog drains (registry_resume_all). */
void registry_pause(struct worker *w);
void registry_resume_all(struct master *m);
/* Sends each worker the tasks batched for it during this round. */
void registry_flush_batches(struct master *m);

/* jobs.c */
/* A new job from spec, numbered id (0: the next number); registered in m->jobs. */
struct job *jobs_new(struct master *m, const Shoal__JobSpec *spec, const struct op_desc *op,
                     uint64_t id);
/* The op a spec runs (exec and plugin jobs have their own), NULL if unknown. */
const struct op_desc *jobs_op_for(const Shoal__JobSpec *spec);
void jobs_create_tasks(struct job *j, uint32_t ntasks, const uint64_t *parts);
void jobs_send_submitted(struct conn *c, const struct job *j, uint64_t window);
/* Frees a job and its files' handles; its slot in m->jobs becomes NULL. */
void jobs_destroy(struct job *j);
void jobs_on_submit(struct master *m, struct client *cl, const Shoal__Submit *s);
void jobs_on_results(struct worker *w, const Shoal__ResultBatch *rb);
void jobs_on_output(struct worker *w, const Shoal__TaskOutput *out);
/* Replaces the job's tasks with `n` new READY tasks reading byte ranges (pairs in parts) of
 * the job's input file, and queues them (the reduce stage). */
void jobs_start_stage(struct job *j, uint32_t n, const uint64_t *parts);
void jobs_on_cancel(struct master *m, struct client *cl, uint64_t job_id);
struct job *jobs_find(struct master *m, uint64_t id);
void jobs_list(struct master *m, struct conn *c);
void jobs_fill_info(const struct job *j, Shoal__JobInfo *info);
/* A task goes back to READY (front of the queue) with its holder's bookkeeping undone. */
void jobs_requeue(struct task *t);
/* The task's attempt ran past the job's --task-timeout and its worker did not stop it: stop
 * it and retry (or fail the job). */
void jobs_timeout_task(struct task *t);
/* Takes a task that has not started back from its worker (cancelled there) and queues it for
 * another, without counting a failure. */
void jobs_withdraw(struct task *t);
/* Fails the jobs whose --job-timeout has passed with no worker connected (sweep timer). */
void jobs_sweep_timeouts(struct master *m);
/* How long no worker may take work before unfinished jobs are reported stalled. */
#define STALL_NOTICE_MS 3000u
/* Notices when unfinished jobs start or stop being stalled, and tells their watchers (sweep
 * timer). */
void jobs_sweep_stalled(struct master *m);
/* The worker running a task's speculative copy is gone: the primary carries on. */
void jobs_drop_backup(struct task *t);
/* The job's tasks are all cut (upload finished): queue it. */
void jobs_make_runnable(struct job *j);
/* Ends a job as failed or cancelled: stops its running tasks and tells watchers. */
void jobs_fail(struct job *j, Shoal__JobState state, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* All partitions are aggregated and the result is complete. */
void jobs_succeed(struct job *j, uint64_t result_size);
bool jobs_finished(const struct job *j);
const char *jobs_state_name(Shoal__JobState s);
void jobs_destroy_all(struct master *m);

/* deps.c */
/* True when every job j waits for has succeeded (or it waits for none). */
bool deps_succeeded(const struct job *j);
/* Fails j if a job it waits for failed, starts it if all succeeded, else keeps it waiting. */
void deps_check(struct job *j);
/* A job ended: re-checks every waiting job. */
void deps_release(struct master *m);

/* sched.c */
/* Asks for a scheduling round at the end of this loop iteration. */
void sched_kick(struct master *m);
void sched_on_check(uv_check_t *h);
/* Slots of the worker that can run tasks now: its slots less those held by attempts nobody
 * wants (a plugin or op that ran past its timeout or was cancelled runs on to its end). */
uint32_t sched_free_slots(const struct worker *w);
/* Tasks the worker may hold: its free slots plus a prefetch sized by its task times. */
uint32_t sched_window(const struct worker *w);
/* Sends attempt `attempt` of t to w (batched, or after reading its uploaded input). */
void sched_dispatch(struct task *t, struct worker *w, uint32_t attempt);
void sched_rebuild_ring(struct master *m);

/* upload.c */
/* Prepares the spool file of an upload job; the client then streams UploadChunks. */
int upload_start(struct job *j, struct client *cl, const Shoal__JobSpec *spec, char *err,
                 size_t errlen);
void upload_on_chunk(struct master *m, struct client *cl, const Shoal__UploadChunk *ch);
/* The partitions cut so far: n pairs (offset, length) in the spool file. */
const uint64_t *upload_parts(const struct job *j, uint32_t *n);
void upload_release_parts(struct job *j);
uint64_t upload_bytes(const struct job *j);
/* A chained stage: copies the result of job `from` into j's spool, cut into partitions of
 * part_size bytes, on the thread pool; then the job becomes runnable. */
void upload_from_job(struct job *j, struct job *from, uint64_t part_size);
/* A resumed job: its spool STATE/jobs/ID/input with the journaled cut points. */
int upload_resume(struct job *j, const uint64_t *parts, uint32_t nparts, char *err, size_t errlen);
/* The spool's fd, kept open (with *obj referenced) until upload_release(*obj); -1 if none. */
int upload_hold(struct job *j, void **obj);
void upload_release(void *obj);
/* Makes an existing file the job's input file (the reducers' grouped input); takes fd. */
void upload_adopt_file(struct job *j, int fd, const char *path);
/* Reads a task's input from the spool and sends it to its worker; takes msg. */
void upload_send_task(struct task *t, Shoal__Task *msg);
/* The uploading client went away: an unfinished upload waits for it to resume. */
void upload_client_gone(struct client *cl);
/* A client carries on an upload (after a lost connection or a master restart). */
void upload_on_resume(struct master *m, struct client *cl, const Shoal__UploadResume *r);
/* Fails the jobs whose uploads were not resumed within --upload-resume-timeout. */
void upload_sweep(struct master *m);
/* A restarted master's unfinished upload: the spool cut back to its journaled durable
 * length, whose partitions are cut again; it waits for the client to resume. */
int upload_reopen(struct job *j, const Shoal__JobSpec *spec, uint64_t durable, char *err,
                  size_t errlen);
/* For a journal commit: the spool's fd (with *obj referenced until upload_release) and the
 * bytes written so far, which the commit syncs and records; -1 when there is nothing new. */
int upload_sync_point(struct job *j, uint64_t *upto, void **obj);
/* A commit made the first `upto` bytes durable: the client hears of it. */
void upload_on_durable(struct job *j, uint64_t upto);
/* The final UploadAck (`complete`): the job is journaled with its whole input. */
void upload_send_complete(struct job *j, struct client *cl);
void upload_destroy(struct job *j);

/* spill.c */
int spill_start(struct job *j, char *err, size_t errlen);
/* A job from the journal: reopens its spill file (appending after what is there), or for an
 * ended job its result. */
int spill_resume(struct job *j, bool finished, char *err, size_t errlen);
/* Starts writing what waits in memory (finished partitions wait for it to be journaled). */
void spill_flush(struct job *j);
/* After the loop: writes what waits, blocking, and hands those partitions to the journal. */
void spill_flush_sync(struct job *j);
/* The spill file's fd, kept open (with *obj referenced) until spill_release(*obj); -1 if
 * none. */
int spill_hold(struct job *j, void **obj);
void spill_release(void *obj);
/* Takes a finished task's partial result into the job's aggregate. -1 with a reason if the
 * partial is malformed (the task is then treated as failed), OP_FOLD_OVERFLOW if folding it
 * overflows (the job fails). */
int spill_add(struct job *j, struct task *t, const uint8_t *data, size_t len, char *err,
              size_t errlen);
/* Takes a piece of a running attempt's output (TaskOutput) into *segs; the final piece comes
 * with its result through spill_add. */
void spill_add_piece(struct job *j, struct task_segs **segs, const uint8_t *data, size_t len);
/* Drops the pieces of an attempt that will not finish. */
void spill_drop_pieces(struct task_segs **segs);
/* True while more result bytes wait for the disk than the master will hold. */
bool spill_backlogged(const struct master *m);
/* The spill file, for readers on the thread pool (reduce, combine). */
int spill_fd(const struct job *j);
/* Calls fn for each (spill offset, length) run holding bytes [from, from+len) of a task's
 * partial, in order. */
struct spill_piece_fn {
	void (*piece)(void *arg, uint64_t off, uint64_t len);
	void *arg;
};
void spill_pieces(const struct task *t, uint64_t from, uint64_t len, struct spill_piece_fn *fn);
/* The job's result is this file (a plugin's combined result); takes fd. */
void spill_set_result_file(struct job *j, int fd, const char *path);
/* All tasks are done: produce the result (async for spilled results), then jobs_succeed or
 * jobs_fail. */
void spill_finish(struct job *j);
void spill_destroy(struct job *j);
/* Thread-safe read of result bytes [off, off+len) into out (used by fetch on the pool). */
int spill_read_result(const struct job *j, uint64_t off, uint8_t *out, size_t len, char *err,
                      size_t errlen);

/* persist.c */
/* Opens the journal in the state dir and resumes the jobs it holds. -1 with err naming the
 * file and what to do. */
int persist_start(struct master *m, char *err, size_t errlen);
/* Stops the commit timer (the loop is stopping). */
void persist_stop(struct master *m);
/* After the loop: commits what is left (fsynced), checkpoints and closes the journal. */
void persist_close(struct master *m);
/* Journals the job's row as it is now. */
void persist_job(struct job *j);
/* The job's first task went out: its row gets started_ms (so that a restarted master shows
 * the time it has really been running). */
void persist_job_started(struct job *j);
/* A new job: journals it, and sends Submitted to cl once that is durable. */
void persist_submitted(struct job *j, struct client *cl, uint64_t window);
/* A reduce job's reduce stage has started (its tasks are the reducers, reading the grouped
 * input): journals that in place of its map partitions. map_spill and map_input (from
 * spill_hold/upload_hold before the switch, or NULL) are the map stage's files, released once
 * the switch is durable; takes both. */
void persist_reduce_stage(struct job *j, void *map_spill, void *map_input);
/* A finished partition (data: a fold's partial, else NULL: its place in the spill file). */
void persist_task(struct job *j, const struct task *t, const uint8_t *data, size_t len);
/* A spill holds finished partitions that wait for their bytes to be written. */
void persist_want_flush(struct job *j);
/* The job ended: its final row; partitions it no longer needs are forgotten. */
void persist_job_ended(struct job *j);
/* Removes the oldest ended jobs beyond --keep-jobs (rows and files). */
void persist_prune(struct master *m);
void persist_client_gone(struct client *cl);
/* An upload wrote more of its spool: the next commit syncs it and records how much. */
void persist_upload_progress(struct job *j);
/* The job's input is all in (it is cut and queued): cl gets the `complete` UploadAck once
 * the job is journaled as such. */
void persist_upload_complete(struct job *j, struct client *cl);

/* trash.c */
/* Starts the remover, and queues the pruned directories an earlier run left behind. */
void trash_start(struct master *m);
/* Takes a pruned job's directory out of use (renamed to DIR.pruned, on the loop) and removes
 * it on the thread pool. The caller has made sure nothing uses the job's files any more. */
void trash_put(struct master *m, const char *dir);
/* After the loop: frees the queue (directories still in it are removed by the next start). */
void trash_destroy(struct master *m);

/* recover.c */
/* Rebuilds the job table from the journal (persist_start calls it). */
int recover_jobs(struct master *m, struct journal *jn, char *err, size_t errlen);
/* A resumed upload job whose tasks were just cut: marks the journaled partitions DONE. */
void recover_apply_tasks(struct job *j);
void recover_forget(struct job *j);

/* blobs.c */
int blobs_init(struct master *m, char *err, size_t errlen);
/* Path of a stored blob. */
void blobs_path(const struct master *m, const uint8_t *sha, char *out, size_t outlen);
bool blobs_have(const struct master *m, const Shoal__FileRef *ref);
void blobs_on_offer(struct master *m, struct client *cl, const Shoal__BlobOffer *offer);
void blobs_on_data(struct master *m, struct client *cl, const Shoal__BlobData *d);
void blobs_client_gone(struct client *cl);
void blobs_on_request(struct worker *w, const Shoal__BlobRequest *r);
void blobs_worker_drain(struct worker *w);
void blobs_worker_gone(struct worker *w);

/* reduce.c */
/* Every map task of a reduce job is in: merges bucket b of every map output into reducer b's
 * input (on the thread pool), then starts the reduce stage. */
void reduce_start(struct job *j);

/* combine.c */
/* A plugin job with a combine step (and a master started with --allow-exec): folds the
 * partials in partition order with the plugin on the thread pool, then finalizes. */
void combine_start(struct job *j);

/* speculate.c */
/* Launches backup copies of stragglers on idle workers (called from the sweep timer). */
void speculate_sweep(struct master *m);

/* locks.c */
void locks_on_acquire(struct master *m, struct client *cl, const Shoal__LockAcquire *a);
void locks_on_renew(struct master *m, struct client *cl, const Shoal__LockRenew *r);
void locks_on_release(struct master *m, struct client *cl, const Shoal__LockRelease *r);
void locks_client_gone(struct master *m, struct client *cl);
/* Expires lapsed leases (called from the sweep timer). */
void locks_sweep(struct master *m);
void locks_destroy_all(struct master *m);

/* fetch.c */
void fetch_on_request(struct master *m, struct client *cl, const Shoal__FetchResult *fr);
void fetch_on_ack(struct client *cl, const Shoal__ResultAck *ack);
void fetch_on_drain(struct client *cl);
void fetch_abort(struct client *cl);

/* watch.c */
void watch_add(struct client *cl, struct job *j);
void watch_remove_client(struct client *cl);
/* The job changed: watchers get an update (throttled unless the job ended). */
void watch_job_changed(struct job *j);
void watch_on_timer(uv_timer_t *t);
void watch_send_update(struct conn *c, const struct job *j);

#endif
