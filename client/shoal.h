/* shoal.h: libshoal, the C client API of a shoal cluster (the `shoal` CLI is built on it).
 *
 * Calls are blocking: each runs a private libuv loop until its answer arrives, so the
 * library fits into any program. A shoal_client is one connection to the master; it is not
 * thread-safe (use one per thread). Every call returns SHOAL_OK or one of the SHOAL_E* codes,
 * which are also the CLI's exit codes; shoal_errmsg tells what went wrong. */
#ifndef SHOAL_CLIENT_H
#define SHOAL_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum shoal_status {
	SHOAL_OK = 0,
	SHOAL_EJOB = 1,   /* the job failed or was cancelled, or the master refused a request */
	SHOAL_EUSAGE = 2, /* bad arguments (unknown op, unreadable input file, ...) */
	SHOAL_ECONN = 3,  /* cannot reach or handshake with the master, or it went away */
};

enum shoal_job_state {
	SHOAL_JOB_UNKNOWN = 0,
	SHOAL_JOB_UPLOADING,
	SHOAL_JOB_QUEUED,
	SHOAL_JOB_RUNNING,
	SHOAL_JOB_SUCCEEDED,
	SHOAL_JOB_FAILED,
	SHOAL_JOB_CANCELLED,
};

typedef struct shoal_client shoal_client;

struct shoal_connect_options {
	const char *master;  /* HOST:PORT; NULL: $SHOAL_MASTER, else 127.0.0.1:7411 */
	unsigned timeout_ms; /* connect + handshake deadline; 0: 5000 */
	/* The cluster secret's file (mode 0600); NULL: $SHOAL_SECRET_FILE, and without that
	 * the plain unauthenticated handshake. */
	const char *secret_file;
	/* TLS: PEM files; NULL: $SHOAL_TLS_CA, $SHOAL_TLS_CERT, $SHOAL_TLS_KEY. With a CA the
	 * connection is TLS and the master's certificate must be signed by it and list the
	 * host connected to; cert and key are presented to a master that verifies clients.
	 * Each configuration is loaded once per process and shared by every client that uses
	 * it, from any thread; a file that changed is read again by the next connect. */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	/* How long shoal_wait and shoal_result keep trying to reconnect (with capped backoff)
	 * after the connection to the master is lost, e.g. while the master restarts; 0: 60000.
	 * They then watch the job again, or fetch the rest of the result, and carry on. */
	unsigned reconnect_ms;
	/* Called on the calling thread with a one-line message when a call loses the
	 * connection and starts reconnecting, and when it has reconnected (or gives up);
	 * NULL: nothing is said (shoal_errmsg still has the reason of a failure). */
	void (*notice)(const char *message, void *arg);
	void *notice_arg;
};

/* Connects and handshakes (with a secret: proves it to the master and checks the master's
 * proof). On failure returns SHOAL_ECONN (cannot reach the master, or authentication
 * failed) or SHOAL_EUSAGE (a bad address, an unusable secret file) and writes the reason,
 * naming the address, to err. The client keeps a copy of *opt for reconnecting: the
 * strings it points to (other than master) must stay valid until shoal_close. */
int shoal_connect(const struct shoal_connect_options *opt, shoal_client **out, char *err,
                  size_t errlen);
/* Closes and frees; sets *c to NULL. */
void shoal_close(shoal_client **c);
/* The reason for the last failed call on c. */
const char *shoal_errmsg(const shoal_client *c);

enum shoal_input_kind {
	SHOAL_INPUT_RANGE, /* integers lo..hi-1, generated on the workers */
	SHOAL_INPUT_FILE,  /* a file on this host ("-": stdin), uploaded through the master */
	SHOAL_INPUT_PATH,  /* a path every worker can read */
	SHOAL_INPUT_JOB,   /* the result of an earlier job (a chained stage), partitioned afresh
	                    * on the master; the job waits until that one has succeeded */
};

/* What a job runs is exactly one of op, exec and plugin. Local files (files, broadcast,
 * plugin) are hashed and shipped to the master by shoal_submit before the job is submitted;
 * the master keeps them by content (SHA-256), so a file it already has is not sent again. */
struct shoal_job_spec {
	const char *op; /* a built-in op ("square", "knn", ...); NULL with exec or plugin */
	const char *const *arg_keys; /* nargs keys and values: --arg KEY=VALUE */
	const char *const *arg_values;
	size_t nargs;
	enum shoal_input_kind input;
	int64_t lo, hi;          /* SHOAL_INPUT_RANGE */
	const char *path;        /* SHOAL_INPUT_FILE / SHOAL_INPUT_PATH */
	uint32_t partitions;     /* 0: master's default */
	uint64_t partition_size; /* 0: master's default */
	const char *strategy;    /* "round-robin", "least-loaded", "dynamic"; NULL: the
	                          * master's default */
	int32_t priority;
	int retries;      /* < 0: master's default */
	const char *name; /* NULL: none */
	/* User code (issue 5). All NULL / 0 for a built-in op. */
	const char *exec;         /* `sh -c EXEC` per partition (workers need --allow-exec) */
	const char *const *files; /* nfiles local paths, shipped into each task's working */
	size_t nfiles;            /* directory under their base names (which must differ) */
	const char *broadcast;    /* local path: a side input for the op (knn's training
	                           * set), $SHOAL_BROADCAST for exec; NULL: none */
	const char *plugin;       /* local path of a shared object (shoal_plugin.h) */
	const char *reduce_exec;  /* with exec: second stage over the map output grouped by
	                           * key (text before the first TAB); NULL: none */
	uint32_t reducers;        /* with reduce_exec: reduce partitions; 0: one */
	/* Scheduling and barriers (issue 3). */
	uint64_t cost;      /* the estimate shortest-job-first orders by; 0: the master's
	                     * default (the input size; a range's count) */
	uint64_t after;     /* barrier: start only once job `after` has succeeded (the job fails
	                     * if that one fails or is cancelled); 0: none */
	uint64_t input_job; /* SHOAL_INPUT_JOB: the job whose result is the input */
	uint32_t task_timeout_ms; /* an attempt running longer is stopped and retried; 0: none */
	uint32_t job_timeout_ms;  /* the job fails once no worker has been connected to run it
	                           * for this long; 0: it waits for workers forever */
};

/* Fills spec with defaults (retries -1, everything else zero). */
void shoal_job_spec_init(struct shoal_job_spec *spec);

struct shoal_job_info {
	uint64_t id;
	enum shoal_job_state state;
	char op[64];
	char name[128];
	char strategy[16];
	int32_t priority;
	uint32_t tasks_total, tasks_done, tasks_running, task_failures;
	uint64_t input_bytes, records, result_size;
	uint64_t submitted_ms, started_ms, finished_ms; /* unix ms; 0 if not yet */
	/* Why it failed. A longer error keeps its beginning and its end (where a command's
	 * stderr ends, with a traceback's last line), joined by " [...] ". */
	char error[2048];
	uint32_t queue_position; /* 1-based place under the master's queue policy while the job
	                          * waits for workers; 0 when it is not in the queue */
	uint64_t cost;           /* the queue policy's cost estimate (sjf) */
	uint64_t after;          /* the job it waits for (--after or --input job:ID); 0: none */
	/* Partitions the master found finished in its journal when it (re)started, and
	 * partitions it has dispatched since: after a restart, the two add up to the partitions
	 * run, with none run twice. */
	uint32_t partitions_recovered;
	uint32_t tasks_dispatched;
	/* Why the unfinished job cannot progress now ("": it can), e.g. "no worker has been
	 * connected since ..."; it keeps waiting unless it has a job timeout. */
	char stalled[160];
	uint64_t stalled_since_ms; /* unix ms; 0 if not stalled */
};

struct shoal_worker_info {
	uint64_t id;
	char name[128];
	char host[128];
	char address[64];
	uint32_t slots, running;
	uint32_t held; /* slots busy with cancelled or timed-out plugin/op attempts */
	uint64_t tasks_done, tasks_failed;
	bool allow_exec;
	uint64_t connected_ms, last_heartbeat_ms;
	char advertise[128]; /* the address the worker says it is reachable at ("": none) */
};

/* "queued", "running", "succeeded", ... */
const char *shoal_job_state_name(enum shoal_job_state st);

/* Submits a job and returns its id: first ships the spec's local files (files, broadcast,
 * plugin) that the master does not have yet, then submits, then uploads a SHOAL_INPUT_FILE
 * input, all with flow control. Reported before anything is sent (SHOAL_EUSAGE): an
 * unreadable input or shipped file (shipped files must be regular files), two files with the
 * same base name, not exactly one of op / exec / plugin, reduce_exec without exec, reducers
 * without reduce_exec, SHOAL_INPUT_JOB without input_job. A file the master refuses (too large,
 * changed while it was sent) fails with SHOAL_EJOB and the master's reason; so does an after
 * or input_job naming no job (SHOAL_EUSAGE). A job that waits for another (after, input_job)
 * is accepted at once and stays queued until that one succeeds; if that one fails or is
 * cancelled, so does this job, with an error naming it. */
int shoal_submit(shoal_client *c, const struct shoal_job_spec *spec, uint64_t *job_id);

typedef void (*shoal_progress_fn)(const struct shoal_job_info *info, void *arg);
/* Waits for the job to end, calling progress (if not NULL) as it advances. Returns SHOAL_OK
 * if it succeeded, SHOAL_EJOB if it failed or was cancelled (info->error says why). */
int shoal_wait(shoal_client *c, uint64_t job_id, shoal_progress_fn progress, void *arg,
               struct shoal_job_info *info);
int shoal_status(shoal_client *c, uint64_t job_id, struct shoal_job_info *info);

/* Streams a succeeded job's result to write(data, len, arg), in order. write returns 0, or
 * non-zero to stop (the call then returns SHOAL_EUSAGE). */
typedef int (*shoal_write_fn)(const void *data, size_t len, void *arg);
int shoal_result(shoal_client *c, uint64_t job_id, shoal_write_fn write, void *arg);

int shoal_cancel(shoal_client *c, uint64_t job_id);
/* Lists; the arrays are owned by the caller (free with free()). */
int shoal_jobs(shoal_client *c, struct shoal_job_info **jobs, size_t *n);
int shoal_workers(shoal_client *c, struct shoal_worker_info **workers, size_t *n);

/* Cluster-wide named locks: leases held by the master.
 *
 * shoal_lock_acquire blocks until the lock named `name` (1-256 bytes, no control characters)
 * is this connection's, waiting behind earlier holders in arrival order, and sets *token to
 * its fencing token: a number that grows with every grant, cluster-wide, so that storage
 * remembering the highest token it has seen can refuse a stale holder. The lease lasts
 * ttl_ms (100 ms .. 24 h) unless renewed; renew well before it lapses (every ttl/3, say).
 * A lease that lapses passes to the next waiter. If the connection closes while holding it,
 * the lease still runs until it lapses (whatever it guards may still be running).
 *
 * shoal_lock_renew extends the lease by its ttl. SHOAL_EJOB means the lock is lost (the lease
 * had lapsed and the lock moved on; shoal_errmsg says so): whatever it guards must stop.
 * SHOAL_ECONN means the master is gone or did not answer within the lease's ttl: the lease
 * will lapse on its own, so treat it as lost too.
 *
 * shoal_lock_release gives the lock up (to the next waiter); it returns once the master has
 * taken the release in. Releasing a lease that already lapsed is not an error. */
#define SHOAL_LOCK_NAME_MAX   256u
#define SHOAL_LOCK_TTL_MIN_MS 100u
#define SHOAL_LOCK_TTL_MAX_MS 86400000u
int shoal_lock_acquire(shoal_client *c, const char *name, uint32_t ttl_ms, uint64_t *token);
int shoal_lock_renew(shoal_client *c, const char *name, uint64_t token);
int shoal_lock_release(shoal_client *c, const char *name, uint64_t token);

#ifdef __cplusplus
}
#endif
#endif
