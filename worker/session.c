/* session.c: the worker's master session (see session.h). */
#include "session.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backoff.h"
#include "cache.h"
#include "codec.h"
#include "auth.h"
#include "conn.h"
#include "handshake.h"
#include "log.h"
#include "notify.h"
#include "prep.h"
#include "runner.h"
#include "tls.h"
#include "util.h"

#define SUBSYS "session"

/* How long connect + handshake may take before the attempt counts as failed. */
#define SESSION_HANDSHAKE_MS         10000u
#define SESSION_DEFAULT_HEARTBEAT_MS 1000u
/* A ResultBatch goes out at the end of each loop iteration, or at once when it is this big:
 * small enough to keep frames and latency modest, big enough to amortise framing. */
#define SESSION_BATCH_RESULTS 1024u
#define SESSION_BATCH_BYTES   (1u << 20)
/* Generous bound on a TaskResult's encoding beyond its data and error text, and on each
 * bucket size it carries (a varint of up to 10 bytes and its tag). */
#define SESSION_RESULT_OVERHEAD 128u
#define SESSION_BUCKET_BYTES    12u
#define SESSION_FRAME_SLACK     1024u
/* TaskOutput pieces: big enough to amortise framing, small enough to interleave with other
 * traffic and to keep the worker's memory per streaming task modest. */
#define SESSION_OUTPUT_CHUNK ((size_t)4 << 20)
/* Shutting down: how long the last results may take to reach the kernel. */
#define SESSION_GOODBYE_MS      5000u
#define SESSION_GOODBYE_POLL_MS 10u

enum session_state {
	SESSION_IDLE,       /* no connection; maybe waiting for the backoff timer */
	SESSION_CONNECTING, /* conn_connect issued */
	SESSION_HELLO_SENT, /* waiting for Welcome or Refusal */
	SESSION_REGISTERED,
};

struct worker_session {
	uv_loop_t *loop;
	char *master;
	char *master_host;
	uint16_t master_port;
	char *name;
	char *host;
	char *advertise; /* NULL: the local address of each connection to the master */
	uint32_t slots;
	bool allow_exec;
	uint8_t *secret; /* owned copy; NULL: plain handshake */
	size_t secret_len;
	struct handshake_peer hs; /* the current connection's handshake */
	worker_session_stopped_fn on_stopped;
	void *arg;

	struct runner *runner;
	struct prep *prep;
	struct cache *cache; /* NULL if the directory was unusable */
	struct conn *conn;   /* NULL while disconnected */
	struct conn_limits limits;
	struct tls_ctx *tls; /* borrowed; NULL: plain TCP */
	enum session_state state;
	uint64_t worker_id;

	uv_timer_t heartbeat;
	uv_timer_t
	    timer; /* IDLE: backoff before the next attempt; otherwise the handshake deadline */
	uv_check_t flush;    /* sends the pending ResultBatch at the end of the loop iteration */
	uv_timer_t deadline; /* the earliest running attempt's task timeout */
	int open_handles;

	struct backoff backoff;
	uint64_t rand_state;
	uint64_t attempts; /* connection attempts since the last registration */
	bool warned;       /* the "cannot reach" warning was logged for this run of failures */
	char last_error[600];
	uint64_t goodbye_deadline_us;

	/* Results waiting to be sent. results[i] points into owned[i]'s buffers. */
	Shoal__TaskResult *results;
	Shoal__TaskResult **result_ptrs;
	struct task_result **owned;
	size_t nresults;
	size_t cap;
	size_t bytes;
	/* Attempts with a task timeout that started since the last batch (ResultBatch.started). */
	Shoal__TaskRef *started_refs;
	Shoal__TaskRef **started_ptrs;
	size_t nstarted, started_cap;

	/* Results too big for one frame, sending their leading bytes as TaskOutput pieces while
	 * the connection is writable: outbox[out_head .. out_head + out_n). */
	struct task_result **outbox;
	size_t out_head, out_n, out_cap;
	size_t chunk; /* TaskOutput piece size */

	/* Attempts handed to the runner whose results are still due, in the order they were
	 * enqueued. The runner starts tasks first in, first out, so its queued tasks are the
	 * last runner_queued() of these and the others are running: what Draining reports. */
	struct task_ref *inrun;
	size_t ninrun, inrun_cap;
	int stop_waits; /* prep and runner still stopping */

	bool started;
	bool stopping;
	bool runner_stopped;
	bool finished;
	bool fatal;
	int status;
};

static void session_connect(struct worker_session *s);
static void session_maybe_finish(struct worker_session *s);

static uint64_t session_conn_id(const struct worker_session *s)
{
	return s->conn != NULL ? conn_id(s->conn) : 0;
}

static const char *session_peer(const struct worker_session *s)
{
	return s->conn != NULL ? conn_peer(s->conn) : "-";
}

/* ---- attempts in the runner ---- */

static void session_inrun_add(struct worker_session *s, const struct task_ref *ref)
{
	if (s->ninrun == s->inrun_cap) {
		s->inrun_cap = s->inrun_cap ? s->inrun_cap * 2 : 64;
		s->inrun = xrealloc(s->inrun, s->inrun_cap * sizeof(*s->inrun));
	}
	s->inrun[s->ninrun++] = *ref;
}

/* Results come back mostly in the order tasks went in: the search is short. */
static void session_inrun_remove(struct worker_session *s, const struct task_ref *ref)
{
	for (size_t i = 0; i < s->ninrun; i++) {
		if (task_ref_cmp(&s->inrun[i], ref) == 0) {
			memmove(&s->inrun[i], &s->inrun[i + 1],
			        (s->ninrun - i - 1) * sizeof(*s->inrun));
			s->ninrun--;
			return;
		}
	}
}

/* ---- results ---- */

static void session_drop_results(struct worker_session *s)
{
	for (size_t i = 0; i < s->nresults; i++)
		task_result_free(&s->owned[i]);
	s->nresults = 0;
	s->nstarted = 0;
	s->bytes = 0;
	uv_check_stop(&s->flush);
	for (size_t i = 0; i < s->out_n; i++)
		task_result_free(&s->outbox[s->out_head + i]);
	s->out_head = s->out_n = 0;
}

static bool session_registered(const struct worker_session *s)
{
	return s->conn != NULL && s->state == SESSION_REGISTERED && !conn_closing(s->conn);
}

/* Back-pressure: a master that does not read what we send gets no new work and no more
 * command output from us until the queue drains (on_drain resumes). */
static void session_check_writable(struct worker_session *s)
{
	if (s->conn != NULL && !conn_writable(s->conn))
		runner_set_paused(s->runner, true);
}

/* Sends the pending results as one ResultBatch, then frees them: conn_send has packed the
 * bytes by the time it returns, so the result buffers are no longer needed. */
static void session_flush(struct worker_session *s)
{
	uv_check_stop(&s->flush);
	if (s->nresults == 0 && s->nstarted == 0)
		return;
	/* A closing connection is about to report itself; these results die with it. */
	if (!session_registered(s)) {
		session_drop_results(s);
		return;
	}
	for (size_t i = 0; i < s->nresults; i++)
		s->result_ptrs[i] = &s->results[i];
	for (size_t i = 0; i < s->nstarted; i++)
		s->started_ptrs[i] = &s->started_refs[i];
	Shoal__ResultBatch batch = SHOAL__RESULT_BATCH__INIT;
	batch.n_results = s->nresults;
	batch.results = s->result_ptrs;
	batch.n_started = s->nstarted;
	batch.started = s->started_ptrs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_BATCH;
	env.result_batch = &batch;
	int rc = conn_send(s->conn, &env);
	if (rc < 0)
		log_warn(
		    SUBSYS, "conn=%" PRIu64 " peer=%s: cannot send %zu results (%zu bytes): %s",
		    session_conn_id(s), session_peer(s), s->nresults, s->bytes, uv_strerror(rc));
	else
		log_debug(SUBSYS, "conn=%" PRIu64 " sent %zu results (%zu bytes)",
		          session_conn_id(s), s->nresults, s->bytes);
	/* Only the batch: the outbox keeps going. */
	for (size_t i = 0; i < s->nresults; i++)
		task_result_free(&s->owned[i]);
	s->nresults = 0;
	s->nstarted = 0;
	s->bytes = 0;
	session_check_writable(s);
}

static void on_flush(uv_check_t *h)
{
	session_flush(h->data);
}

static void session_result_reserve(struct worker_session *s)
{
	if (s->nresults < s->cap)
		return;
	size_t cap = s->cap ? s->cap * 2 : 64;
	s->results = xrealloc(s->results, cap * sizeof(*s->results));
	s->result_ptrs = xrealloc(s->result_ptrs, cap * sizeof(*s->result_ptrs));
	s->owned = xrealloc(s->owned, cap * sizeof(*s->owned));
	s->cap = cap;
}

static size_t session_result_size(const struct task_result *res)
{
	return SESSION_RESULT_OVERHEAD + (res->out.len - res->sent) +
	       (res->error ? strlen(res->error) : 0) + (size_t)res->nbuckets * SESSION_BUCKET_BYTES;
}

/* The largest frame we may send, less room for the envelope around a result. */
static size_t session_limit(const struct worker_session *s)
{
	return s->limits.max_frame > SESSION_FRAME_SLACK ? s->limits.max_frame - SESSION_FRAME_SLACK
	                                                 : s->limits.max_frame;
}

/* Takes res: appends it to the pending batch (its output from `sent` on). */
static void session_batch_add(struct worker_session *s, struct task_result *res)
{
	size_t size = session_result_size(res);
	if (s->bytes + size > session_limit(s))
		session_flush(s);

	session_result_reserve(s);
	Shoal__TaskResult *tr = &s->results[s->nresults];
	shoal__task_result__init(tr);
	tr->job_id = res->ref.job_id;
	tr->task_id = res->ref.task_id;
	tr->attempt = res->ref.attempt;
	tr->ok = res->ok;
	if (res->ok) {
		static uint8_t empty[1];
		tr->has_data = true;
		tr->data.data = res->out.data != NULL ? res->out.data + res->sent : empty;
		tr->data.len = res->out.len - res->sent;
		tr->n_buckets = res->nbuckets;
		tr->buckets = res->buckets;
	} else {
		tr->error = res->error != NULL ? res->error : "failed";
		tr->has_permanent = true;
		tr->permanent = res->permanent;
	}
	tr->has_records = true;
	tr->records = res->records;
	tr->has_elapsed_us = true;
	tr->elapsed_us = res->elapsed_us;
	s->owned[s->nresults++] = res;
	s->bytes += size;

	if (s->nresults >= SESSION_BATCH_RESULTS || s->bytes >= SESSION_BATCH_BYTES)
		session_flush(s);
	else
		uv_check_start(&s->flush, on_flush);
}

static int session_send_output(struct worker_session *s, const struct task_ref *ref,
                               const uint8_t *data, size_t len)
{
	Shoal__TaskOutput out = SHOAL__TASK_OUTPUT__INIT;
	out.job_id = ref->job_id;
	out.task_id = ref->task_id;
	out.attempt = ref->attempt;
	out.data.data = (uint8_t *)data;
	out.data.len = len;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_TASK_OUTPUT;
	env.task_output = &out;
	int rc = conn_send(s->conn, &env);
	if (rc < 0)
		log_warn(SUBSYS,
		         "conn=%" PRIu64 " peer=%s: cannot send %zu bytes of output of job=%" PRIu64
		         " task=%" PRIu32 ": %s",
		         session_conn_id(s), session_peer(s), len, ref->job_id, ref->task_id,
		         uv_strerror(rc));
	return rc;
}

/* Length of the next TaskOutput piece of res. A map task's bucketed output (reduce jobs) is
 * cut only after a '\n': the master merges each bucket's pieces as sorted runs of whole lines.
 * 0 if a single line is longer than a frame can carry. */
static size_t session_piece_len(const struct worker_session *s, const struct task_result *res,
                                size_t limit)
{
	const uint8_t *p = res->out.data + res->sent;
	size_t left = res->out.len - res->sent;
	size_t n = left < s->chunk ? left : s->chunk;
	if (res->nbuckets == 0 || n == left)
		return n;
	for (size_t i = n; i > 0; i--)
		if (p[i - 1] == '\n')
			return i;
	size_t most = left < limit ? left : limit;
	const uint8_t *nl = memchr(p + n, '\n', most - n);
	return nl ? (size_t)(nl - p) + 1 : 0;
}

/* A bucketed output whose line cannot fit a frame can never be delivered: fail the task for
 * good (the pieces already sent are dropped by the master with the failed attempt). */
static void session_fail_unsplittable(struct worker_session *s, struct task_result *res)
{
	s->out_head++;
	s->out_n--;
	if (s->out_n == 0)
		s->out_head = 0;
	buf_free(&res->out);
	res->sent = 0;
	free(res->buckets);
	res->buckets = NULL;
	res->nbuckets = 0;
	free(res->error);
	res->error = xstrdup("a line of the map output is longer than a message can carry");
	res->ok = false;
	res->permanent = true;
	session_batch_add(s, res);
}

/* Sends outbox pieces while the connection takes them; a result whose rest fits one frame
 * joins the batch. */
static void session_pump_outbox(struct worker_session *s)
{
	size_t limit = session_limit(s);
	while (s->out_n > 0 && session_registered(s) && conn_writable(s->conn)) {
		struct task_result *res = s->outbox[s->out_head];
		if (session_result_size(res) > limit) {
			size_t n = session_piece_len(s, res, limit);
			if (n == 0) {
				session_fail_unsplittable(s, res);
				continue;
			}
			if (session_send_output(s, &res->ref, res->out.data + res->sent, n) < 0)
				return; /* the connection is closing; on_close drops the outbox */
			res->sent += n;
			continue;
		}
		s->out_head++;
		s->out_n--;
		if (s->out_n == 0)
			s->out_head = 0;
		session_batch_add(s, res);
	}
	session_check_writable(s);
}

static void session_outbox_push(struct worker_session *s, struct task_result *res)
{
	if (s->out_head > 0 && s->out_head + s->out_n == s->out_cap) {
		memmove(s->outbox, s->outbox + s->out_head, s->out_n * sizeof(*s->outbox));
		s->out_head = 0;
	}
	if (s->out_n == s->out_cap) {
		s->out_cap = s->out_cap ? s->out_cap * 2 : 16;
		s->outbox = xrealloc(s->outbox, s->out_cap * sizeof(*s->outbox));
	}
	s->outbox[s->out_head + s->out_n++] = res;
}

/* Takes res: sends it now or with the next batch, its leading bytes first as TaskOutput if
 * it is too big for one frame. */
static void on_task_done(void *arg, struct task_result *res)
{
	struct worker_session *s = arg;
	session_inrun_remove(s, &res->ref);
	if (!session_registered(s)) {
		task_result_free(&res);
		return;
	}
	if (session_result_size(res) > session_limit(s)) {
		if (res->ok && res->streamable) {
			session_outbox_push(s, res);
			session_pump_outbox(s);
			return;
		}
		/* It can never be sent; the same partition would produce it again. */
		char msg[256];
		snprintf(msg, sizeof(msg),
		         "partition result of %zu bytes exceeds the %" PRIu32
		         "-byte frame limit; use smaller partitions",
		         res->out.len, s->limits.max_frame);
		buf_free(&res->out);
		res->sent = 0;
		free(res->error);
		res->error = xstrdup(msg);
		res->ok = false;
		res->permanent = true;
	}
	session_batch_add(s, res);
}

/* A piece of a running command's stdout: straight to the master. */
static void on_task_output(void *arg, const struct task_ref *ref, const uint8_t *data, size_t len)
{
	struct worker_session *s = arg;
	if (!session_registered(s))
		return;
	(void)session_send_output(s, ref, data, len);
	session_check_writable(s);
}

/* ---- task timeouts ---- */

/* Bound on one TaskRef's encoding in a ResultBatch. */
#define SESSION_STARTED_BYTES 32u

static void on_deadline(uv_timer_t *h);

/* Arms the timer for the earliest running attempt's timeout (loop time). */
static void session_arm_deadline(struct worker_session *s)
{
	if (s->finished)
		return; /* the timer is closed */
	uint64_t next = runner_next_deadline(s->runner);
	if (next == 0) {
		uv_timer_stop(&s->deadline);
		return;
	}
	uint64_t now = uv_now(s->loop);
	uv_timer_start(&s->deadline, on_deadline, next > now ? next - now : 0, 0);
}

static void on_deadline(uv_timer_t *h)
{
	struct worker_session *s = h->data;
	runner_expire(s->runner, uv_now(s->loop));
	session_arm_deadline(s);
}

/* An attempt with a timeout started: the master hears of it with the next batch, so that its
 * own backstop for the timeout counts from here. */
static void on_task_started(void *arg, const struct task_ref *ref)
{
	struct worker_session *s = arg;
	session_arm_deadline(s);
	if (!session_registered(s))
		return;
	if (s->bytes + SESSION_STARTED_BYTES > session_limit(s))
		session_flush(s);
	if (s->nstarted == s->started_cap) {
		s->started_cap = s->started_cap ? s->started_cap * 2 : 64;
		s->started_refs =
		    xrealloc(s->started_refs, s->started_cap * sizeof(*s->started_refs));
		s->started_ptrs =
		    xrealloc(s->started_ptrs, s->started_cap * sizeof(*s->started_ptrs));
	}
	Shoal__TaskRef *r = &s->started_refs[s->nstarted++];
	shoal__task_ref__init(r);
	r->job_id = ref->job_id;
	r->task_id = ref->task_id;
	r->attempt = ref->attempt;
	s->bytes += SESSION_STARTED_BYTES;
	if (s->nstarted >= SESSION_BATCH_RESULTS)
		session_flush(s);
	else
		uv_check_start(&s->flush, on_flush);
}

static void session_send_heartbeat(struct worker_session *s);

/* Slots held by unwanted attempts changed: the master hears it now, not at the next beat. */
static void on_held_changed(void *arg, uint32_t held)
{
	struct worker_session *s = arg;
	log_debug(SUBSYS, "conn=%" PRIu64 " held_slots=%" PRIu32, session_conn_id(s), held);
	session_send_heartbeat(s);
}

/* ---- blobs ---- */

static void on_cache_request(void *arg, const uint8_t sha[DIGEST_LEN])
{
	struct worker_session *s = arg;
	if (!session_registered(s))
		return; /* tasks come only while registered, and a lost master aborts fetches */
	Shoal__BlobRequest req = SHOAL__BLOB_REQUEST__INIT;
	req.sha256.data = (uint8_t *)sha;
	req.sha256.len = DIGEST_LEN;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_REQUEST;
	env.blob_request = &req;
	char hex[DIGEST_HEX_LEN + 1];
	digest_hex(sha, hex);
	int rc = conn_send(s->conn, &env);
	if (rc < 0)
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: cannot request blob %s: %s",
		         session_conn_id(s), session_peer(s), hex, uv_strerror(rc));
	else
		log_debug(SUBSYS, "conn=%" PRIu64 " requested blob sha256=%s", session_conn_id(s),
		          hex);
}

static void on_cache_fetched(void *arg, const uint8_t sha[DIGEST_LEN], int status, const char *err)
{
	struct worker_session *s = arg;
	prep_on_fetched(s->prep, sha, status, err);
}

/* prep: the task has all it needs. */
static void on_task_ready(void *arg, struct task *t)
{
	struct worker_session *s = arg;
	session_inrun_add(s, &t->res.ref); /* before: a task that already failed is done at once */
	runner_enqueue(s->runner, t);
}

/* ---- messages from the master ---- */

static void session_send_heartbeat(struct worker_session *s)
{
	if (s->conn == NULL || s->state != SESSION_REGISTERED)
		return;
	Shoal__Heartbeat hb = SHOAL__HEARTBEAT__INIT;
	hb.has_running = true;
	hb.running = runner_running(s->runner);
	hb.has_held = true;
	hb.held = runner_held(s->runner);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HEARTBEAT;
	env.heartbeat = &hb;
	int rc = conn_send(s->conn, &env);
	if (rc < 0)
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: cannot send heartbeat: %s",
		         session_conn_id(s), session_peer(s), uv_strerror(rc));
}

static void on_heartbeat(uv_timer_t *h)
{
	session_send_heartbeat(h->data);
}

static void session_on_welcome(struct worker_session *s, const Shoal__Welcome *w)
{
	if (s->state != SESSION_HELLO_SENT) {
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: unexpected welcome; ignored",
		         session_conn_id(s), session_peer(s));
		return;
	}
	uint32_t hb_ms = w->has_heartbeat_ms && w->heartbeat_ms > 0 ? w->heartbeat_ms
	                                                            : SESSION_DEFAULT_HEARTBEAT_MS;
	s->worker_id = w->has_worker_id ? w->worker_id : 0;
	/* Results must fit the master's frame limit, which may be below ours. */
	if (w->has_max_frame && w->max_frame < s->limits.max_frame)
		s->limits.max_frame = w->max_frame;
	/* Output pieces go in frames of their own: leave room for the envelope. */
	size_t limit = session_limit(s);
	s->chunk = limit > SESSION_OUTPUT_CHUNK + SESSION_RESULT_OVERHEAD
	               ? SESSION_OUTPUT_CHUNK
	               : limit - SESSION_RESULT_OVERHEAD;
	runner_set_chunk(s->runner, s->chunk);
	s->state = SESSION_REGISTERED;
	uv_timer_stop(&s->timer);
	backoff_reset(&s->backoff);
	s->attempts = 0;
	s->warned = false;
	log_info(SUBSYS,
	         "event=registered worker_id=%" PRIu64 " master=%s conn=%" PRIu64
	         " peer=%s name=%s slots=%" PRIu32 " heartbeat_ms=%" PRIu32,
	         s->worker_id, s->master, session_conn_id(s), session_peer(s), s->name, s->slots,
	         hb_ms);
	char status[320];
	snprintf(status, sizeof(status), "registered with %s as worker %" PRIu64, s->master,
	         s->worker_id);
	notify_ready(status);
	uv_timer_start(&s->heartbeat, on_heartbeat, hb_ms, hb_ms);
	/* Slots still held by attempts of an earlier connection are not free. */
	if (runner_held(s->runner) > 0)
		session_send_heartbeat(s);
	/* Heartbeats keep data in flight: if the master leaves them unacknowledged for about as
	 * long as it waits for them (its host is gone, the network is cut), the kernel ends the
	 * connection and the tasks of this session are dropped, as the master has given them
	 * to others by then. Without this a cut network holds them for many minutes. */
	if (w->has_heartbeat_timeout_ms) {
		uint32_t ms = w->heartbeat_timeout_ms + hb_ms;
		int rc = conn_set_user_timeout(s->conn, ms);
		if (rc < 0)
			log_warn(SUBSYS,
			         "conn=%" PRIu64 " peer=%s: cannot set TCP_USER_TIMEOUT %" PRIu32
			         " ms: %s; a cut network is noticed late",
			         session_conn_id(s), session_peer(s), ms, uv_strerror(rc));
	}
}

static void session_on_refusal(struct worker_session *s, const Shoal__Refusal *r)
{
	const char *reason = r->reason != NULL ? r->reason : "";
	/* A version, secret or TLS mismatch will not fix itself by retrying: give up. */
	if ((r->has_permanent && r->permanent) || strcasestr(reason, "version") != NULL) {
		s->fatal = true;
		s->status = 1;
	}
	log_error(SUBSYS, "conn=%" PRIu64 " peer=%s: master=%s refused this worker: %s%s",
	          session_conn_id(s), session_peer(s), s->master, reason,
	          s->fatal ? "; stopping" : "");
	snprintf(s->last_error, sizeof(s->last_error), "refused: %s", reason);
	conn_close(s->conn, "refused by master");
}

/* A message while the handshake runs (common/handshake.h): Challenge, Welcome or Refusal. */
static void session_on_handshake(struct worker_session *s, const Shoal__Envelope *env)
{
	switch (handshake_peer_on_message(&s->hs, env)) {
	case HANDSHAKE_SEND: {
		int rc = conn_send(s->conn, &s->hs.out);
		if (rc < 0) {
			snprintf(s->last_error, sizeof(s->last_error), "cannot send proof: %s",
			         uv_strerror(rc));
			conn_close(s->conn, s->last_error);
		}
		break;
	}
	case HANDSHAKE_DONE:
		session_on_welcome(s, s->hs.welcome);
		break;
	case HANDSHAKE_REFUSE:
		if (s->hs.refused) {
			session_on_refusal(s, env->refusal);
			break;
		}
		log_error(SUBSYS, "conn=%" PRIu64 " peer=%s: handshake with master=%s failed: %s",
		          session_conn_id(s), session_peer(s), s->master, s->hs.why);
		if (s->hs.permanent) {
			s->fatal = true;
			s->status = 1;
		}
		snprintf(s->last_error, sizeof(s->last_error), "%s", s->hs.why);
		conn_close(s->conn, "handshake failed");
		break;
	}
}

static void session_on_task_batch(struct worker_session *s, const Shoal__TaskBatch *b)
{
	if (s->state != SESSION_REGISTERED) {
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: tasks before welcome; ignored",
		         session_conn_id(s), session_peer(s));
		return;
	}
	if (s->stopping) {
		/* The master re-runs them when we disconnect. */
		log_debug(SUBSYS, "conn=%" PRIu64 " shutting down; %zu tasks ignored",
		          session_conn_id(s), b->n_tasks);
		return;
	}
	for (size_t i = 0; i < b->n_tasks; i++) {
		if (b->tasks[i] != NULL)
			prep_submit(s->prep, task_create(b->tasks[i]));
	}
}

static void session_on_cancel(struct worker_session *s, const Shoal__CancelTasks *c)
{
	if (c->n_tasks == 0)
		return;
	struct task_ref *refs = xcalloc(c->n_tasks, sizeof(*refs));
	size_t n = 0;
	for (size_t i = 0; i < c->n_tasks; i++) {
		const Shoal__TaskRef *r = c->tasks[i];
		if (r == NULL)
			continue;
		refs[n++] = (struct task_ref){r->job_id, r->task_id, r->attempt};
	}
	/* Sorted once, so a big cancel costs O((tasks + n) log n), not O(tasks * n). */
	qsort(refs, n, sizeof(*refs), task_ref_cmp);
	size_t found = runner_cancel(s->runner, refs, n) + prep_cancel(s->prep, refs, n);
	for (size_t i = 0; i < n; i++)
		session_inrun_remove(s, &refs[i]);
	log_debug(SUBSYS, "conn=%" PRIu64 " cancel: %zu asked, %zu found", session_conn_id(s), n,
	          found);
	free(refs);
}

static void on_message(struct conn *c, Shoal__Envelope *env)
{
	struct worker_session *s = conn_data(c);
	if (s->state == SESSION_HELLO_SENT) {
		session_on_handshake(s, env);
		return;
	}
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_WELCOME:
		session_on_welcome(s, env->welcome);
		break;
	case SHOAL__ENVELOPE__MSG_REFUSAL:
		session_on_refusal(s, env->refusal);
		break;
	case SHOAL__ENVELOPE__MSG_TASK_BATCH:
		session_on_task_batch(s, env->task_batch);
		break;
	case SHOAL__ENVELOPE__MSG_CANCEL_TASKS:
		session_on_cancel(s, env->cancel_tasks);
		break;
	case SHOAL__ENVELOPE__MSG_BLOB_DATA:
		if (s->state == SESSION_REGISTERED && s->cache != NULL)
			cache_on_data(s->cache, env->blob_data);
		break;
	default:
		/* Not for workers; harmless to ignore, and a newer master may send more kinds. */
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: unexpected %s from master; ignored",
		         conn_id(c), conn_peer(c), codec_kind_name(env));
		break;
	}
}

/* ---- connection lifecycle ---- */

static void session_send_hello(struct worker_session *s)
{
	Shoal__Hello hello = SHOAL__HELLO__INIT;
	handshake_peer_init(&s->hs, s->secret, s->secret_len, SHOAL__ROLE__ROLE_WORKER);
	if (handshake_peer_hello(&s->hs, &hello) < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "%s", s->hs.why);
		conn_close(s->conn, s->last_error);
		return;
	}
	hello.name = s->name;
	hello.has_slots = true;
	hello.slots = s->slots;
	hello.host = s->host;
	/* Without --advertise: our address on the route to the master, which the master may see
	 * translated (NAT, containers) as the connection's peer. */
	char local[64];
	if (s->advertise != NULL)
		hello.advertise = s->advertise;
	else if (conn_local_ip(s->conn, local, sizeof(local)) == 0)
		hello.advertise = local;
	hello.has_allow_exec = true;
	hello.allow_exec = s->allow_exec;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	int rc = conn_send(s->conn, &env);
	if (rc < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "cannot send hello: %s",
		         uv_strerror(rc));
		conn_close(s->conn, s->last_error);
		return;
	}
	s->state = SESSION_HELLO_SENT;
}

static void on_connect(struct conn *c, int status)
{
	struct worker_session *s = conn_data(c);
	/* On failure conn closes itself with a reason naming the target; on_close reports. */
	if (status < 0)
		return;
	log_debug(SUBSYS, "conn=%" PRIu64 " peer=%s: connected, sending hello", conn_id(c),
	          conn_peer(c));
	session_send_hello(s);
}

static void on_drain(struct conn *c)
{
	struct worker_session *s = conn_data(c);
	runner_set_paused(s->runner, false);
	session_pump_outbox(s);
}

static void on_retry(uv_timer_t *h);

static void session_schedule_retry(struct worker_session *s)
{
	uint64_t delay = backoff_next(&s->backoff, backoff_rand(&s->rand_state));
	log_debug(SUBSYS, "next attempt to reach master=%s in %" PRIu64 " ms", s->master, delay);
	uv_timer_start(&s->timer, on_retry, delay, 0);
}

static void on_close(struct conn *c, const char *reason)
{
	struct worker_session *s = conn_data(c);
	enum session_state was = s->state;
	uint64_t id = conn_id(c);

	s->conn = NULL;
	s->state = SESSION_IDLE;
	uv_timer_stop(&s->heartbeat);
	uv_timer_stop(&s->timer);
	/* Whatever this master gave us it will run elsewhere; unsent results are void, and so
	 * are half-received blobs. */
	session_drop_results(s);
	prep_drop(s->prep);
	if (s->cache != NULL)
		cache_abort(s->cache);
	runner_drop(s->runner);
	s->ninrun = 0;
	runner_set_paused(s->runner, false);

	if (s->last_error[0] == '\0' || was == SESSION_REGISTERED)
		snprintf(s->last_error, sizeof(s->last_error), "%s", reason ? reason : "closed");
	/* TLS on one side only (this worker has --tls-ca and the master answered in plain
	 * frames): no retry will fix it. A TLS master refusing a plain worker says so in a
	 * permanent Refusal (session_on_refusal). Network failures stay worth retrying. */
	if (conn_tls_mismatch(c) && !s->fatal && !s->stopping) {
		log_error(SUBSYS, "conn=%" PRIu64 " master=%s: cannot register: %s; stopping", id,
		          s->master, s->last_error);
		s->fatal = true;
		s->status = 1;
	}

	if (s->stopping && !s->fatal) {
		log_info(SUBSYS, "conn=%" PRIu64 " event=disconnected master=%s why=\"%s\"", id,
		         s->master, s->last_error);
	} else if (was == SESSION_REGISTERED) {
		log_warn(SUBSYS,
		         "conn=%" PRIu64 " event=lost master=%s worker_id=%" PRIu64
		         " why=\"%s\" (reconnecting)",
		         id, s->master, s->worker_id, s->last_error);
		notify_status("lost the master; reconnecting");
	} else if (!s->fatal) {
		if (!s->warned) {
			log_warn(
			    SUBSYS,
			    "event=register_failed master=%s why=\"%s\" (retrying with backoff)",
			    s->master, s->last_error);
			s->warned = true;
		} else {
			log_debug(SUBSYS, "attempt %" PRIu64 " to reach master=%s failed: %s",
			          s->attempts, s->master, s->last_error);
		}
	}
	s->last_error[0] = '\0';

	if (s->fatal && !s->stopping)
		worker_session_stop(s);
	else if (s->stopping)
		session_maybe_finish(s);
	else
		session_schedule_retry(s);
}

static const struct conn_callbacks session_callbacks = {
    .on_message = on_message,
    .on_drain = on_drain,
    .on_connect = on_connect,
    .on_close = on_close,
};

static void on_retry(uv_timer_t *h)
{
	struct worker_session *s = h->data;
	if (s->state == SESSION_IDLE) {
		if (!s->stopping)
			session_connect(s);
		return;
	}
	/* Still connecting or waiting for Welcome: give this attempt up. */
	if (s->conn != NULL && !conn_closing(s->conn)) {
		snprintf(s->last_error, sizeof(s->last_error), "no welcome within %u ms",
		         SESSION_HANDSHAKE_MS);
		conn_close(s->conn, s->last_error);
	}
}

static void session_connect(struct worker_session *s)
{
	s->attempts++;
	s->last_error[0] = '\0';
	log_debug(SUBSYS, "connecting to master=%s attempt=%" PRIu64, s->master, s->attempts);
	s->conn = conn_create(s->loop, &s->limits, &session_callbacks, s);
	if (s->tls != NULL)
		conn_set_tls(s->conn, s->tls);
	s->state = SESSION_CONNECTING;
	uv_timer_start(&s->timer, on_retry, SESSION_HANDSHAKE_MS, 0);
	int rc = conn_connect(s->conn, s->master_host, s->master_port);
	if (rc < 0) {
		snprintf(s->last_error, sizeof(s->last_error), "%s", uv_strerror(rc));
		conn_close(s->conn, s->last_error);
	}
}

/* ---- stopping ---- */

static void on_handle_closed(uv_handle_t *h)
{
	struct worker_session *s = h->data;
	if (--s->open_handles == 0 && s->on_stopped != NULL)
		s->on_stopped(s->arg, s->status);
}

static void session_maybe_finish(struct worker_session *s)
{
	if (!s->stopping || !s->runner_stopped || s->conn != NULL || s->finished)
		return;
	s->finished = true;
	uv_close((uv_handle_t *)&s->heartbeat, on_handle_closed);
	uv_close((uv_handle_t *)&s->timer, on_handle_closed);
	uv_close((uv_handle_t *)&s->flush, on_handle_closed);
	uv_close((uv_handle_t *)&s->deadline, on_handle_closed);
}

/* Closes once every queued byte is in the kernel (conn_close would drop the rest), polling
 * briefly; a master that stops reading gets SESSION_GOODBYE_MS, then the close anyway. */
static void on_goodbye(uv_timer_t *h)
{
	struct worker_session *s = h->data;
	if (s->conn == NULL)
		return;
	if ((conn_pending(s->conn) > 0 || s->out_n > 0 || s->nresults > 0) &&
	    mono_us() < s->goodbye_deadline_us) {
		uv_timer_start(&s->timer, on_goodbye, SESSION_GOODBYE_POLL_MS, 0);
		return;
	}
	if (!conn_closing(s->conn))
		conn_close(s->conn, "worker shutting down");
}

/* prep, runner and cache are all idle. */
static void on_cache_closed(void *arg)
{
	struct worker_session *s = arg;
	s->runner_stopped = true;
	if (s->conn != NULL) {
		/* Every result is in: send them, then say goodbye. */
		session_flush(s);
		if (!conn_closing(s->conn))
			conn_flush(s->conn);
		s->goodbye_deadline_us = mono_us() + (uint64_t)SESSION_GOODBYE_MS * 1000u;
		on_goodbye(&s->timer);
		return;
	}
	session_maybe_finish(s);
}

/* prep or runner is idle; the cache closes last (tasks unpin their files as they end). */
static void on_part_stopped(void *arg)
{
	struct worker_session *s = arg;
	if (--s->stop_waits > 0)
		return;
	if (s->cache != NULL)
		cache_close(s->cache, on_cache_closed, s);
	else
		on_cache_closed(s);
}

/* Tells the master we drain: which attempts we still run (and will report); it runs every
 * other task it gave us elsewhere at once instead of waiting for us to leave. Results already
 * made go out first; those still streaming count as running. */
static void session_send_draining(struct worker_session *s)
{
	session_flush(s);
	size_t queued = runner_queued(s->runner);
	/* Should the runner hold more than we know of, claim everything: nothing is run twice
	 * that way, at worst some of it waits for us as it did before. */
	size_t running = queued <= s->ninrun ? s->ninrun - queued : s->ninrun;
	size_t n = running + s->out_n;
	Shoal__TaskRef *refs = xcalloc(n ? n : 1, sizeof(*refs));
	Shoal__TaskRef **ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
	for (size_t i = 0; i < n; i++) {
		const struct task_ref *r =
		    i < running ? &s->inrun[i] : &s->outbox[s->out_head + i - running]->ref;
		shoal__task_ref__init(&refs[i]);
		refs[i].job_id = r->job_id;
		refs[i].task_id = r->task_id;
		refs[i].attempt = r->attempt;
		ptrs[i] = &refs[i];
	}
	Shoal__Draining d = SHOAL__DRAINING__INIT;
	d.n_running = n;
	d.running = ptrs;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_DRAINING;
	env.draining = &d;
	int rc = conn_send(s->conn, &env);
	if (rc < 0)
		log_warn(SUBSYS, "conn=%" PRIu64 " peer=%s: cannot send draining: %s",
		         session_conn_id(s), session_peer(s), uv_strerror(rc));
	else
		log_info(SUBSYS,
		         "conn=%" PRIu64 " event=draining running=%zu not_started=%zu (returned to "
		         "the master)",
		         session_conn_id(s), n, (s->ninrun - running) + prep_waiting(s->prep));
	free(ptrs);
	free(refs);
}

void worker_session_stop(struct worker_session *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	uv_timer_stop(&s->timer);
	if (session_registered(s))
		session_send_draining(s);
	/* Before registration nothing we run is wanted: no reason to keep the line open. */
	if (s->conn != NULL && s->state != SESSION_REGISTERED && !conn_closing(s->conn))
		conn_close(s->conn, "worker shutting down");
	s->stop_waits = 2;
	prep_stop(s->prep, on_part_stopped, s);
	runner_stop(s->runner, on_part_stopped, s);
}

void worker_session_kill_children(struct worker_session *s)
{
	runner_kill_children(s->runner);
}

/* ---- create / start / destroy ---- */

struct worker_session *worker_session_create(uv_loop_t *loop,
                                             const struct worker_session_config *cfg,
                                             worker_session_stopped_fn on_stopped, void *arg)
{
	struct worker_session *s = xcalloc(1, sizeof(*s));
	s->loop = loop;
	s->master = xstrdup(cfg->master);
	s->master_host = xstrdup(cfg->master_host);
	s->master_port = cfg->master_port;
	s->name = xstrdup(cfg->name);
	s->host = xstrdup(cfg->host);
	s->advertise =
	    cfg->advertise != NULL && cfg->advertise[0] != '\0' ? xstrdup(cfg->advertise) : NULL;
	s->slots = cfg->slots;
	s->allow_exec = cfg->allow_exec;
	if (cfg->secret != NULL) {
		s->secret = xmalloc(cfg->secret_len);
		memcpy(s->secret, cfg->secret, cfg->secret_len);
		s->secret_len = cfg->secret_len;
	}
	s->tls = cfg->tls;
	s->on_stopped = on_stopped;
	s->arg = arg;
	conn_limits_default(&s->limits);
	s->chunk = SESSION_OUTPUT_CHUNK;
	s->runner = runner_create(loop, cfg->slots, on_task_done, s);
	const struct runner_exec_config ecfg = {
	    .work_root = cfg->work_root,
	    .shim = cfg->exec_shim,
	    .master = cfg->master,
	    .chunk = s->chunk,
	    .on_output = on_task_output,
	};
	runner_set_exec(s->runner, &ecfg);
	runner_set_watchers(s->runner, on_task_started, on_held_changed);

	char err[512] = "";
	if (cfg->cache_dir != NULL) {
		const struct cache_callbacks ccb = {on_cache_request, on_cache_fetched};
		s->cache =
		    cache_open(loop, cfg->cache_dir, cfg->cache_size, &ccb, s, err, sizeof(err));
		if (s->cache == NULL)
			log_error(SUBSYS, "no blob cache: %s; tasks that ship files will fail here",
			          err);
	} else {
		snprintf(err, sizeof(err), "no cache directory configured");
	}
	const struct prep_config pcfg = {
	    .worker_name = cfg->name,
	    .allow_exec = cfg->allow_exec,
	    .cache_error = s->cache == NULL ? err : NULL,
	};
	const struct prep_callbacks pcb = {on_task_ready, on_task_done};
	s->prep = prep_create(loop, s->cache, &pcfg, &pcb, s);
	backoff_init(&s->backoff, BACKOFF_BASE_MS, BACKOFF_CAP_MS, BACKOFF_JITTER);
	s->rand_state = mono_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;

	uv_timer_init(loop, &s->heartbeat);
	uv_timer_init(loop, &s->timer);
	uv_check_init(loop, &s->flush);
	uv_timer_init(loop, &s->deadline);
	s->heartbeat.data = s->timer.data = s->flush.data = s->deadline.data = s;
	s->open_handles = 4;
	return s;
}

void worker_session_start(struct worker_session *s)
{
	if (s->started || s->stopping)
		return;
	s->started = true;
	session_connect(s);
}

void worker_session_destroy(struct worker_session **sp)
{
	struct worker_session *s = *sp;
	if (s == NULL)
		return;
	session_drop_results(s);
	/* Tasks hold references into prep (broadcast bytes) and the cache (pins): they go
	 * first. */
	runner_destroy(&s->runner);
	prep_destroy(&s->prep);
	cache_destroy(&s->cache);
	free(s->outbox);
	free(s->inrun);
	free(s->results);
	free(s->result_ptrs);
	free(s->owned);
	free(s->started_refs);
	free(s->started_ptrs);
	free(s->master);
	free(s->master_host);
	free(s->name);
	free(s->host);
	auth_secret_free(&s->secret, s->secret_len);
	free(s->advertise);
	free(s);
	*sp = NULL;
}
