/* session.h: the worker's session with its master.
 *
 * Connects, registers (Hello -> Welcome), heartbeats, feeds TaskBatch to prep (shipped
 * files, broadcast, plugin) and on to the runner, CancelTasks to both, BlobData to the blob
 * cache (whose BlobRequests it sends), and sends finished tasks back as one ResultBatch per
 * loop iteration. Output too big for one frame goes ahead of its result as TaskOutput
 * pieces, paced by the connection's write queue. When the master goes away, the tasks it
 * gave are forgotten (it re-runs them elsewhere), partial blobs are discarded, and the
 * session reconnects with capped exponential backoff and jitter, forever, then registers
 * again. A Refusal that is permanent (protocol version or cluster secret mismatch), or a
 * master that fails to prove the cluster secret, stops the session for good.
 *
 * With a cluster secret, HELLO_SENT includes the challenge-response (common/handshake.h).
 *
 *   IDLE --timer--> CONNECTING --connected, Hello sent--> HELLO_SENT --Welcome--> REGISTERED
 *     ^                 |                                    |                      |
 *     +---- backoff ----+------------------------------------+------ closed --------+
 *
 * Stopping (worker_session_stop) takes no new tasks, lets running ones finish and report,
 * closes the connection and every handle, then calls on_stopped with the exit status. */
#ifndef SHOAL_WORKER_SESSION_H
#define SHOAL_WORKER_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct worker_session;
struct tls_ctx;

struct worker_session_config {
	const char *master;      /* HOST:PORT as configured, for logs */
	const char *master_host; /* to connect to */
	uint16_t master_port;
	const char *name;      /* reported in Hello */
	const char *host;      /* this host's name, reported in Hello */
	const char *advertise; /* the address reported in Hello; NULL or "": the local address of
	                        * the connection to the master */
	uint32_t slots;
	bool allow_exec;
	const char *cache_dir; /* blob cache directory */
	uint64_t cache_size;   /* its bound in bytes */
	const char *work_root; /* exec tasks' working directories go under it */
	const char *exec_shim; /* runs each exec task's command (shim.h); NULL: sh directly */
	const uint8_t *secret; /* cluster secret (auth.h), copied; NULL: plain handshake */
	size_t secret_len;
	struct tls_ctx *tls; /* borrowed (outlives the session); NULL: plain TCP */
};

/* The session is fully stopped: no handle open, no connection, no task in a thread.
 * status: 0 after worker_session_stop, 1 if the master refused this worker for good. */
typedef void (*worker_session_stopped_fn)(void *arg, int status);

/* Returns an owned session; copies cfg's strings. Does not connect yet. */
struct worker_session *worker_session_create(uv_loop_t *loop,
                                             const struct worker_session_config *cfg,
                                             worker_session_stopped_fn on_stopped, void *arg);
/* Starts the first connection attempt. */
void worker_session_start(struct worker_session *s);
/* Begins a graceful stop (idempotent); on_stopped follows, from the loop. */
void worker_session_stop(struct worker_session *s);
/* The worker is exiting at once: SIGKILL every exec child (they lead their own process
 * groups and would outlive us). */
void worker_session_kill_children(struct worker_session *s);
/* Frees a session after on_stopped ran. Sets *s to NULL. */
void worker_session_destroy(struct worker_session **s);

#endif
