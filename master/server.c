/* server.c: the master's listener, the handshake, and routing of each message to the module
 * that owns it according to the peer's role. A peer that breaks the protocol loses its own
 * connection; everyone else is unaffected. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "codec.h"
#include "handshake.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "util.h"

enum peer_role { PEER_NEW, PEER_WORKER, PEER_CLIENT };

/* What the master knows about a connection; conn_data points here. */
struct peer {
	struct master *m;
	enum peer_role role;
	struct list_node link; /* in m->pending while PEER_NEW */
	uint64_t accepted_ms;  /* loop time */
	struct conn *conn;
	struct worker *worker;
	struct client *client;
	struct handshake_server hs;
	/* The Hello, kept until the handshake ends (with a secret, the worker registers only
	 * once its Proof has arrived); owned. */
	Shoal__Hello *hello;
	bool timed_out; /* closed by the handshake deadline */
	char ip[64];    /* source address, for the per-address connection limit */
	/* Write stall: since when the queue to this peer has been above the high-water mark
	 * without shrinking (0: it is not), and its smallest size meanwhile. */
	uint64_t stall_since_ms; /* loop time */
	size_t stall_pending;
};

static void on_message(struct conn *c, Shoal__Envelope *env);
static void on_drain(struct conn *c);
static void on_close(struct conn *c, const char *reason);

static const struct conn_callbacks peer_callbacks = {
    .on_message = on_message,
    .on_drain = on_drain,
    .on_close = on_close,
};

void server_send_failure(struct conn *c, uint64_t job_id, uint32_t code, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	Shoal__Failure f = SHOAL__FAILURE__INIT;
	f.reason = reason;
	f.has_job_id = job_id != 0;
	f.job_id = job_id;
	f.has_code = true;
	f.code = code;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_FAILURE;
	env.failure = &f;
	conn_send(c, &env);
}

void server_drop(struct conn *c, const char *reason)
{
	log_warn("server", "conn=%llu peer=%s event=dropped reason=\"%s\"",
	         (unsigned long long)conn_id(c), conn_peer(c), reason);
	conn_close(c, reason);
}

/* Tells the peer why it is refused and closes its connection once the words are out.
 * permanent: the peer's configuration is wrong (version, secret), a worker stops retrying. */
static void refuse_peer(struct conn *c, const char *reason, bool permanent)
{
	log_warn("server", "conn=%llu peer=%s event=refused reason=\"%s\"",
	         (unsigned long long)conn_id(c), conn_peer(c), reason);
	Shoal__Refusal r = SHOAL__REFUSAL__INIT;
	r.reason = (char *)reason;
	r.has_permanent = permanent;
	r.permanent = permanent;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
	env.refusal = &r;
	conn_send(c, &env);
	conn_flush(c);
	conn_close(c, reason);
}

static void refuse(struct conn *c, const char *reason)
{
	refuse_peer(c, reason, false);
}

/* Keeps a deep copy of the Hello (repacked and unpacked, so that every field a newer
 * registry_add reads comes along); freed in on_close. Returns 0, or -1 if memory ran out. */
static int peer_keep_hello(struct peer *p, const Shoal__Hello *h)
{
	size_t n = shoal__hello__get_packed_size(h);
	uint8_t *buf = xmalloc(n > 0 ? n : 1);
	shoal__hello__pack(h, buf);
	p->hello = shoal__hello__unpack(NULL, n, buf);
	free(buf);
	return p->hello != NULL ? 0 : -1;
}

/* The handshake succeeded: the peer becomes a worker or a client and is welcomed. */
static void server_admit(struct peer *p, struct conn *c)
{
	struct master *m = p->m;
	const Shoal__Hello *h = p->hello;
	Shoal__Welcome w = SHOAL__WELCOME__INIT;
	w.version = SHOAL_PROTOCOL_VERSION;
	w.has_max_frame = true;
	w.max_frame = m->cfg.max_frame;
	if (h->role == SHOAL__ROLE__ROLE_WORKER) {
		if (m->stopping) {
			refuse(c, "master is stopping");
			return;
		}
		list_unlink(&p->link);
		p->role = PEER_WORKER;
		p->worker = registry_add(m, c, h);
		w.has_worker_id = true;
		w.worker_id = p->worker->id;
		w.has_heartbeat_ms = true;
		w.heartbeat_ms = m->cfg.heartbeat_ms;
		w.has_heartbeat_timeout_ms = true;
		w.heartbeat_timeout_ms = m->cfg.heartbeat_timeout_ms;
	} else {
		list_unlink(&p->link);
		p->role = PEER_CLIENT;
		struct client *cl = xcalloc(1, sizeof(*cl));
		cl->m = m;
		cl->conn = c;
		list_push_back(&m->clients, &cl->link);
		p->client = cl;
		log_debug("server", "conn=%llu peer=%s event=client authenticated=%s",
		          (unsigned long long)conn_id(c), conn_peer(c),
		          m->cfg.secret != NULL ? "yes" : "no");
	}
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_WELCOME;
	env.welcome = &w;
	conn_send(c, &env);
	if (p->role == PEER_WORKER)
		sched_kick(m);
}

/* A message from a peer that has not completed the handshake (handshake.h). */
static void server_handshake(struct peer *p, struct conn *c, const Shoal__Envelope *env)
{
	bool hello = p->hs.state == HANDSHAKE_START && env->msg_case == SHOAL__ENVELOPE__MSG_HELLO;
	enum handshake_step step = handshake_server_on_message(&p->hs, env);
	if (hello && step != HANDSHAKE_REFUSE && peer_keep_hello(p, env->hello) < 0) {
		server_drop(c, "out of memory keeping the hello");
		return;
	}
	switch (step) {
	case HANDSHAKE_SEND:
		log_debug("server", "conn=%llu peer=%s event=challenged role=%s",
		          (unsigned long long)conn_id(c), conn_peer(c),
		          handshake_role_name(p->hs.role));
		conn_send(c, &p->hs.out);
		break;
	case HANDSHAKE_DONE:
		server_admit(p, c);
		shoal__hello__free_unpacked(p->hello, NULL);
		p->hello = NULL;
		break;
	case HANDSHAKE_REFUSE:
		refuse_peer(c, p->hs.why, p->hs.permanent);
		break;
	}
}

static void on_worker_message(struct peer *p, struct conn *c, Shoal__Envelope *env)
{
	struct worker *w = p->worker;
	w->last_seen_ms = uv_now(p->m->loop);
	w->last_heartbeat_ms = wall_ms();
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_HEARTBEAT:
		registry_on_heartbeat(w, env->heartbeat);
		break;
	case SHOAL__ENVELOPE__MSG_RESULT_BATCH:
		jobs_on_results(w, env->result_batch);
		break;
	case SHOAL__ENVELOPE__MSG_TASK_OUTPUT:
		jobs_on_output(w, env->task_output);
		break;
	case SHOAL__ENVELOPE__MSG_BLOB_REQUEST:
		blobs_on_request(w, env->blob_request);
		break;
	case SHOAL__ENVELOPE__MSG_DRAINING:
		registry_on_draining(w, env->draining);
		break;
	default: {
		char why[128];
		snprintf(why, sizeof(why), "a worker may not send %s", codec_kind_name(env));
		refuse(c, why);
	}
	}
}

static void on_client_message(struct peer *p, struct conn *c, Shoal__Envelope *env)
{
	struct master *m = p->m;
	struct client *cl = p->client;
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_SUBMIT:
		jobs_on_submit(m, cl, env->submit);
		break;
	case SHOAL__ENVELOPE__MSG_UPLOAD_CHUNK:
		upload_on_chunk(m, cl, env->upload_chunk);
		break;
	case SHOAL__ENVELOPE__MSG_UPLOAD_RESUME:
		upload_on_resume(m, cl, env->upload_resume);
		break;
	case SHOAL__ENVELOPE__MSG_BLOB_OFFER:
		blobs_on_offer(m, cl, env->blob_offer);
		break;
	case SHOAL__ENVELOPE__MSG_LOCK_ACQUIRE:
		locks_on_acquire(m, cl, env->lock_acquire);
		break;
	case SHOAL__ENVELOPE__MSG_LOCK_RENEW:
		locks_on_renew(m, cl, env->lock_renew);
		break;
	case SHOAL__ENVELOPE__MSG_LOCK_RELEASE:
		locks_on_release(m, cl, env->lock_release);
		break;
	case SHOAL__ENVELOPE__MSG_BLOB_DATA:
		blobs_on_data(m, cl, env->blob_data);
		break;
	case SHOAL__ENVELOPE__MSG_WATCH: {
		struct job *j = jobs_find(m, env->watch->job_id);
		if (!j) {
			server_send_failure(c, env->watch->job_id, 1, "no job %llu",
			                    (unsigned long long)env->watch->job_id);
			break;
		}
		watch_send_update(c, j);
		if (!jobs_finished(j))
			watch_add(cl, j);
		break;
	}
	case SHOAL__ENVELOPE__MSG_STATUS_REQUEST: {
		struct job *j = jobs_find(m, env->status_request->job_id);
		if (!j)
			server_send_failure(c, env->status_request->job_id, 1, "no job %llu",
			                    (unsigned long long)env->status_request->job_id);
		else
			watch_send_update(c, j);
		break;
	}
	case SHOAL__ENVELOPE__MSG_FETCH_RESULT:
		fetch_on_request(m, cl, env->fetch_result);
		break;
	case SHOAL__ENVELOPE__MSG_RESULT_ACK:
		fetch_on_ack(cl, env->result_ack);
		break;
	case SHOAL__ENVELOPE__MSG_CANCEL:
		jobs_on_cancel(m, cl, env->cancel->job_id);
		break;
	case SHOAL__ENVELOPE__MSG_LIST_JOBS:
		jobs_list(m, c);
		break;
	case SHOAL__ENVELOPE__MSG_LIST_WORKERS:
		registry_list(m, c);
		break;
	default: {
		char why[128];
		snprintf(why, sizeof(why), "a client may not send %s", codec_kind_name(env));
		refuse(c, why);
	}
	}
}

static void on_message(struct conn *c, Shoal__Envelope *env)
{
	struct peer *p = conn_data(c);
	switch (p->role) {
	case PEER_NEW:
		server_handshake(p, c, env);
		break;
	case PEER_WORKER:
		on_worker_message(p, c, env);
		break;
	case PEER_CLIENT:
		on_client_message(p, c, env);
		break;
	}
}

static void on_drain(struct conn *c)
{
	struct peer *p = conn_data(c);
	if (p->role == PEER_CLIENT)
		fetch_on_drain(p->client);
	else if (p->role == PEER_WORKER) {
		blobs_worker_drain(p->worker);
		sched_kick(p->m);
	}
}

static void on_close(struct conn *c, const char *reason)
{
	struct peer *p = conn_data(c);
	switch (p->role) {
	case PEER_NEW:
		list_unlink(&p->link);
		/* A peer that rejects the master's proof just hangs up: say why it likely did. */
		if (p->hs.state == HANDSHAKE_CHALLENGED && !p->timed_out && !p->m->stopping)
			log_warn("server",
			         "conn=%llu peer=%s event=auth_failed role=%s reason=\"the peer "
			         "closed the connection after the master's challenge: its cluster "
			         "secret differs from the master's (%s)\"",
			         (unsigned long long)conn_id(c), conn_peer(c),
			         handshake_role_name(p->hs.role), reason);
		break;
	case PEER_WORKER:
		registry_remove(p->worker, reason);
		break;
	case PEER_CLIENT:
		log_debug("server", "conn=%llu peer=%s event=client_gone reason=\"%s\"",
		          (unsigned long long)conn_id(c), conn_peer(c), reason);
		fetch_abort(p->client);
		watch_remove_client(p->client);
		upload_client_gone(p->client);
		persist_client_gone(p->client);
		blobs_client_gone(p->client);
		locks_client_gone(p->m, p->client);
		list_unlink(&p->client->link);
		free(p->client);
		break;
	}
	if (p->hello != NULL)
		shoal__hello__free_unpacked(p->hello, NULL);
	p->m->nconns--;
	free(p);
}

/* The peer's IP address (no port) into out. */
static void peer_ip(struct conn *c, char *out, size_t n)
{
	struct sockaddr_storage sa;
	int len = sizeof(sa);
	uint16_t port;
	if (uv_tcp_getpeername(conn_tcp(c), (struct sockaddr *)&sa, &len) != 0)
		snprintf(out, n, "?");
	else
		addr_ip_port(&sa, out, n, &port);
}

/* Calls fn for every open connection: not yet admitted (with_pending), workers, clients.
 * fn may close the connection (closing only takes effect in the close callback). */
typedef void server_conn_fn(struct conn *c, void *arg);
static void server_each_conn(struct master *m, bool with_pending, server_conn_fn *fn, void *arg)
{
	struct list_node *n;
	if (with_pending)
		for (n = list_first(&m->pending); n; n = list_next(&m->pending, n))
			fn(list_entry(n, struct peer, link)->conn, arg);
	for (n = list_first(&m->workers); n; n = list_next(&m->workers, n))
		fn(list_entry(n, struct worker, link)->conn, arg);
	for (n = list_first(&m->clients); n; n = list_next(&m->clients, n))
		fn(list_entry(n, struct client, link)->conn, arg);
}

struct count_ip {
	const char *ip;
	uint32_t n;
};

static void count_ip(struct conn *c, void *arg)
{
	struct count_ip *ci = arg;
	const struct peer *q = conn_data(c);
	ci->n += strcmp(q->ip, ci->ip) == 0;
}

/* Connections open from ip (a new one included). */
static uint32_t conns_from(struct master *m, const char *ip)
{
	struct count_ip ci = {ip, 0};
	server_each_conn(m, true, count_ip, &ci);
	return ci.n;
}

/* --max-connections and --max-connections-per-addr: refuses the newest connection beyond
 * either (with a Refusal the peer shows, and a log line). Returns true if it was admitted. */
static bool server_admit_conn(struct master *m, struct peer *p)
{
	char why[256];
	if (m->cfg.max_conns > 0 && m->nconns > m->cfg.max_conns) {
		snprintf(why, sizeof(why),
		         "too many connections: the master serves at most %u at once "
		         "(--max-connections)",
		         m->cfg.max_conns);
		refuse(p->conn, why);
		return false;
	}
	uint32_t from = conns_from(m, p->ip);
	if (m->cfg.max_conns_per_addr > 0 && from > m->cfg.max_conns_per_addr) {
		snprintf(why, sizeof(why),
		         "too many connections from %s: at most %u at once from one address "
		         "(--max-connections-per-addr)",
		         p->ip, m->cfg.max_conns_per_addr);
		refuse(p->conn, why);
		return false;
	}
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct master *m = server->data;
	if (status < 0) {
		log_warn("server", "event=accept_failed error=\"%s\"", uv_strerror(status));
		return;
	}
	struct peer *p = xcalloc(1, sizeof(*p));
	p->m = m;
	p->role = PEER_NEW;
	p->accepted_ms = uv_now(m->loop);
	handshake_server_init(&p->hs, m->cfg.secret, m->cfg.secret_len, m->replay);
	struct conn *c = conn_create(m->loop, &m->limits, &peer_callbacks, p);
	p->conn = c;
	m->nconns++; /* on_close undoes it, whatever happens next */
	list_push_back(&m->pending, &p->link);
	if (m->tls != NULL)
		conn_set_tls(c, m->tls);
	int rc = uv_accept(server, (uv_stream_t *)conn_tcp(c));
	if (rc == 0)
		rc = conn_start(c);
	if (rc < 0) {
		log_warn("server", "event=accept_failed error=\"%s\"", uv_strerror(rc));
		conn_close(c, "accept failed");
		return;
	}
	peer_ip(c, p->ip, sizeof(p->ip));
	log_debug("server", "conn=%llu peer=%s event=accepted", (unsigned long long)conn_id(c),
	          conn_peer(c));
	server_admit_conn(m, p);
}

/* A peer whose write queue stays above the high-water mark without shrinking for
 * --write-stall-timeout has stopped reading (a client that never reads its result, say):
 * it is disconnected, which frees what it held; its jobs stay. */
static void sweep_stalled_conn(struct conn *c, void *arg)
{
	const uint64_t *now = arg;
	struct peer *p = conn_data(c);
	size_t pending = conn_pending(c);
	if (conn_closing(c) || conn_writable(c)) {
		p->stall_since_ms = 0;
	} else if (p->stall_since_ms == 0 || pending < p->stall_pending) {
		p->stall_since_ms = *now;
		p->stall_pending = pending;
	} else if (*now - p->stall_since_ms >= p->m->cfg.write_stall_ms) {
		char why[160];
		snprintf(why, sizeof(why),
		         "stopped reading: %zu bytes queued to it for %llu ms without draining "
		         "(--write-stall-timeout)",
		         pending, (unsigned long long)(*now - p->stall_since_ms));
		server_drop(c, why);
	}
}

/* Closes connections that have not completed the handshake in time. */
static void sweep_pending(struct master *m, uint64_t now)
{
	struct list_node *n = list_first(&m->pending);
	while (n) {
		struct list_node *next = list_next(&m->pending, n);
		struct peer *p = list_entry(n, struct peer, link);
		if (now - p->accepted_ms > m->cfg.handshake_timeout_ms) {
			p->timed_out = true;
			server_drop(p->conn, "handshake not completed before the deadline");
		}
		n = next;
	}
}

static void on_sweep(uv_timer_t *t)
{
	struct master *m = t->data;
	/* The loop's monotonic clock: a step of the system clock must not expire anything. */
	uint64_t now = uv_now(m->loop);
	sweep_pending(m, now);
	server_each_conn(m, false, sweep_stalled_conn, &now);
	registry_sweep(m, now);
	jobs_sweep_timeouts(m);
	jobs_sweep_stalled(m);
	speculate_sweep(m);
	locks_sweep(m);
	upload_sweep(m);
}

void server_init(struct master *m)
{
	list_init(&m->http_conns); /* http_stop may run before http_start */
	list_init(&m->workers);
	list_init(&m->clients);
	list_init(&m->pending);
	policy_queue_init(&m->queue, m->cfg.policy, m->cfg.aging);
	list_init(&m->locks);
	m->next_worker_id = 1;
	m->no_workers_since_ms = uv_now(m->loop);
	m->no_workers_since_wall_ms = wall_ms();
	conn_limits_default(&m->limits);
	m->limits.max_frame = m->cfg.max_frame;
	m->limits.write_max = m->cfg.max_write_queue;
	uv_tcp_init(m->loop, &m->listener);
	m->listener.data = m;
	uv_timer_init(m->loop, &m->sweep);
	m->sweep.data = m;
	uv_timer_init(m->loop, &m->updates);
	m->updates.data = m;
	uv_check_init(m->loop, &m->sched);
	m->sched.data = m;
}

int server_start(struct master *m)
{
	struct sockaddr_storage sa;
	int rc = uv_ip4_addr(m->cfg.listen_host, m->cfg.listen_port, (struct sockaddr_in *)&sa);
	if (rc < 0)
		rc =
		    uv_ip6_addr(m->cfg.listen_host, m->cfg.listen_port, (struct sockaddr_in6 *)&sa);
	if (rc < 0) {
		log_error("master",
		          "--listen: '%s' is not an IP address (give a numeric address "
		          "such as 0.0.0.0 or 127.0.0.1)",
		          m->cfg.listen_host);
		return -1;
	}
	rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&m->listener, 1024, on_connection);
	if (rc < 0) {
		log_error("master", "cannot listen on %s:%u: %s", m->cfg.listen_host,
		          m->cfg.listen_port, uv_strerror(rc));
		return -1;
	}
	struct sockaddr_storage bound;
	int len = sizeof(bound);
	uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound, &len);
	char where[64];
	addr_format(&bound, where, sizeof(where));
	log_info("master", "event=listening address=%s state_dir=%s policy=%s", where,
	         m->cfg.state_dir, policy_name(m->cfg.policy));
	char status[128];
	snprintf(status, sizeof(status), "listening on %s", where);
	notify_ready(status);
	uv_timer_start(&m->sweep, on_sweep, 250, 250);
	return 0;
}

void server_stop(struct master *m)
{
	if (m->stopping)
		return;
	m->stopping = true;
	http_stop(m);
	uv_close((uv_handle_t *)&m->listener, NULL);
	uv_close((uv_handle_t *)&m->sweep, NULL);
	uv_close((uv_handle_t *)&m->updates, NULL);
	uv_close((uv_handle_t *)&m->sched, NULL);
	uv_close((uv_handle_t *)&m->sigint, NULL);
	uv_close((uv_handle_t *)&m->sigterm, NULL);
	/* conn_close only schedules the close; the lists change in the close callbacks. */
	for (struct list_node *n = list_first(&m->workers); n; n = list_next(&m->workers, n))
		conn_close(list_entry(n, struct worker, link)->conn, "master stopping");
	for (struct list_node *n = list_first(&m->clients); n; n = list_next(&m->clients, n))
		conn_close(list_entry(n, struct client, link)->conn, "master stopping");
	for (struct list_node *n = list_first(&m->pending); n; n = list_next(&m->pending, n))
		conn_close(list_entry(n, struct peer, link)->conn, "master stopping");
}
