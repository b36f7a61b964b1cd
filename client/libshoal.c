/* libshoal.c: the client side of the protocol, behind the blocking API of shoal.h.
 *
 * A shoal_client owns a private libuv loop and one conn to the master. Each API call is a
 * "call": it sends its request, installs itself as c->call and turns the loop (UV_RUN_ONCE)
 * until its handler marks it done, the connection closes, or its deadline passes. Only one
 * call runs at a time (the API is blocking and not thread-safe), so every answer that arrives
 * belongs either to the current call or to an earlier one that gave up early (a result
 * download stopped by its writer, say): those strays are dropped. */
#include "shoal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "addr.h"
#include "auth.h"
#include "codec.h"
#include "conn.h"
#include "digest.h"
#include "handshake.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define CLIENT_DEFAULT_MASTER     "127.0.0.1:7411"
#define CLIENT_DEFAULT_TIMEOUT_MS 5000u
/* A master that does not answer a simple request for this long is as good as gone. */
#define CLIENT_REQUEST_TIMEOUT_MS 60000u
#define CLIENT_CHUNK              (1u << 20)
/* How long wait/result try to reconnect after losing the master, and the backoff between
 * attempts (doubling from the first to the cap). */
#define CLIENT_RECONNECT_MS       60000u
#define CLIENT_RECONNECT_FIRST_MS 100u
#define CLIENT_RECONNECT_CAP_MS   2000u
/* Connections a single wait or result call may lose and replace. */
#define CLIENT_MAX_RECONNECTS 20
/* Upload window when the master does not name one. */
#define CLIENT_UPLOAD_WINDOW (4u << 20)
/* An upload from a pipe keeps the bytes the master has not made durable, to send them again
 * if the master restarts, in a ring of this size; when it is full the client waits for the
 * master's next sync (every ~50 ms) to make room. */
#define CLIENT_REPLAY_RING   (16u << 20)
#define CLIENT_RESULT_WINDOW (8u << 20)
/* Acknowledge result bytes in steps of this much, to save messages. */
#define CLIENT_ACK_STEP (1u << 20)
/* What the master accepts (common/codec.c): files per job, a shipped file's name. */
#define CLIENT_FILES_MAX     64u
#define CLIENT_FILE_NAME_MAX 255u

enum { LIST_JOBS = 1, LIST_WORKERS = 2 };

struct call;
typedef void (*call_msg_fn)(shoal_client *c, struct call *call, const Shoal__Envelope *env);
typedef void (*call_pump_fn)(shoal_client *c, struct call *call);

/* The state of one API call. Fields beyond the first block belong to the call kind named
 * beside them. */
struct call {
	call_msg_fn on_message;
	call_pump_fn pump; /* runs before each loop turn: produces data (uploads) */
	bool done;
	int rc;
	uint64_t job_id;
	bool idle_timeout; /* the deadline restarts whenever a message arrives */

	/* handshake */
	bool welcomed;

	/* submit + upload */
	bool submitted;
	int fd;
	const char *path;
	bool size_known;
	uint64_t size;
	uint64_t sent, acked, window;
	bool last_sent;
	uint8_t *chunk;
	bool resuming; /* UploadResume sent on a new connection; its answer not yet in */
	/* A pipe's bytes from replay_base (what the master has made durable) to replay_end
	 * (what was read), kept to be sent again after a restart; input byte x is at
	 * replay[x % CLIENT_REPLAY_RING]. Files are read again at any offset instead. */
	uint8_t *replay;
	uint64_t replay_base, replay_end;
	bool eof;

	/* blob (a shipped file): fd, path, size, sent, acked, window, last_sent, chunk above */
	const struct blob *blob;
	bool streaming; /* the master asked for the data */

	/* status, cancel, wait */
	struct shoal_job_info *info;
	shoal_progress_fn progress;
	void *progress_arg;
	bool watching;

	/* result */
	shoal_write_fn write;
	void *write_arg;
	uint64_t written, ack_sent;

	/* lists */
	int list_kind; /* LIST_JOBS or LIST_WORKERS */
	void *list;
	size_t nlist;

	/* locks */
	const char *lock_name;
	uint64_t token;
	uint32_t ttl_ms;
};

/* A lease this client was granted: its ttl bounds how long a renewal may wait. */
struct lease {
	char *name;
	uint64_t token;
	uint32_t ttl_ms;
	uint64_t confirmed_us; /* mono_us() when the master last granted or renewed it */
	struct lease *next;
};

struct shoal_client {
	uv_loop_t loop;
	uv_timer_t timer;
	bool timer_fired;
	struct conn *conn; /* NULL once on_close ran (conn frees itself after it) */
	bool lost;
	char lost_reason[256];
	int connect_status; /* libuv error of a failed connect, else 0 */
	char addr[300];     /* HOST:PORT, for messages */
	struct call *call;
	char err[8192]; /* room for "job N failed: " and a whole shoal_job_info.error */
	struct lease *leases;
	/* Reconnecting: the options it was opened with (master copied), and the client that
	 * replaced it after a lost connection. Every API call works on the last of the chain. */
	struct shoal_connect_options opt;
	char *opt_master;
	shoal_client *next;
	uint8_t *secret; /* owned; NULL: plain handshake */
	size_t secret_len;
	struct handshake_peer hs;
	struct tls_cached *tls_entry; /* the shared TLS configuration it holds; NULL: plain */
	struct tls_ctx *tls;          /* tls_entry's ctx (borrowed); NULL: plain TCP */
};

/* The client that currently holds the connection (c, or what replaced it). */
static shoal_client *live(shoal_client *c)
{
	while (c && c->next)
		c = c->next;
	return c;
}

static int client_fail(shoal_client *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Copies src into dst (n bytes); a src too long keeps its first quarter and its end, joined
 * by " [...] ": an error's end is where a command's stderr ends (a traceback's last line). */
static void copy_elided(char *dst, size_t n, const char *src)
{
	static const char mark[] = " [...] ";
	size_t len = strlen(src), head, tail;

	if (len < n || n < 4 * sizeof(mark)) {
		snprintf(dst, n, "%s", src);
		return;
	}
	head = n / 4;
	tail = n - 1 - head - (sizeof(mark) - 1);
	memcpy(dst, src, head);
	memcpy(dst + head, mark, sizeof(mark) - 1);
	memcpy(dst + head + sizeof(mark) - 1, src + len - tail, tail);
	dst[n - 1] = '\0';
}

static int client_fail(shoal_client *c, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return rc;
}

/* Ends the current call with rc and a message (the message is kept only for failures). */
static void call_finish(shoal_client *c, struct call *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void call_finish(shoal_client *c, struct call *call, int rc, const char *fmt, ...)
{
	if (call->done)
		return;
	call->done = true;
	call->rc = rc;
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
}

/* A Failure answers the current request when it names its job or no job at all. */
static bool failure_matches(const Shoal__Failure *f, const struct call *call)
{
	return !f->has_job_id || f->job_id == call->job_id || call->job_id == 0;
}

static void call_fail_with(shoal_client *c, struct call *call, const Shoal__Failure *f)
{
	int rc = f->has_code && f->code == SHOAL_EUSAGE ? SHOAL_EUSAGE : SHOAL_EJOB;

	if (call->done)
		return;
	call_finish(c, call, rc, NULL);
	copy_elided(c->err, sizeof(c->err),
	            f->reason && f->reason[0] ? f->reason : "request failed");
}

/* Closes the connection because the master broke the protocol; the call fails with ECONN. */
static void call_protocol_error(shoal_client *c, struct call *call, const char *what)
{
	call_finish(c, call, SHOAL_ECONN, "protocol error from the master at %s: %s", c->addr,
	            what);
	if (c->conn && !conn_closing(c->conn))
		conn_close(c->conn, what);
}

static void client_send(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	int rc;

	if (!c->conn || conn_closing(c->conn))
		return; /* client_run reports the lost connection */
	rc = conn_send(c->conn, env);
	if (rc < 0 && rc != -EPIPE)
		call_finish(c, call, SHOAL_ECONN, "cannot send to the master at %s: %s", c->addr,
		            strerror(-rc));
}

/* ---- loop plumbing ---- */

static void on_timer(uv_timer_t *t)
{
	shoal_client *c = t->data;

	c->timer_fired = true;
}

static void on_conn_message(struct conn *conn, Shoal__Envelope *env)
{
	shoal_client *c = conn_data(conn);

	if (c->call && c->call->idle_timeout && uv_is_active((uv_handle_t *)&c->timer))
		uv_timer_again(&c->timer);
	if (c->call && !c->call->done && c->call->on_message)
		c->call->on_message(c, c->call, env);
}

static void on_conn_drain(struct conn *conn)
{
	(void)conn; /* the upload pump runs after every loop turn and checks conn_writable */
}

static void on_conn_connect(struct conn *conn, int status)
{
	shoal_client *c = conn_data(conn);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Hello hello = SHOAL__HELLO__INIT;

	if (status < 0) {
		c->connect_status = status;
		if (!conn_closing(conn))
			conn_close(conn, uv_strerror(status));
		return;
	}
	handshake_peer_init(&c->hs, c->secret, c->secret_len, SHOAL__ROLE__ROLE_CLIENT);
	if (handshake_peer_hello(&c->hs, &hello) < 0) {
		if (c->call)
			call_finish(c, c->call, SHOAL_ECONN,
			            "cannot authenticate with the master "
			            "at %s: %s",
			            c->addr, c->hs.why);
		return;
	}
	env.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	if (c->call)
		client_send(c, c->call, &env);
}

static void on_conn_close(struct conn *conn, const char *reason)
{
	shoal_client *c = conn_data(conn);

	c->lost = true;
	c->conn = NULL;
	snprintf(c->lost_reason, sizeof(c->lost_reason), "%s", reason ? reason : "closed");
}

/* A library must not change the process's signal dispositions, yet a write to a master that
 * just closed raises SIGPIPE, whose default kills the program. So SIGPIPE is blocked in this
 * thread while the loop runs (the write then fails with EPIPE, which conn handles) and a
 * SIGPIPE that became pending meanwhile is consumed before the mask is restored. */
struct sigpipe_guard {
	sigset_t old;
	bool was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
	sigset_t set, pending;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, &g->old);
	g->was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
	sigset_t set, pending;
	const struct timespec zero = {0, 0};

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	if (!g->was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1)
		while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

/* Turns the loop until the call is done, the connection is gone, or timeout_ms (0: none)
 * passes (since the call began, or with call->idle_timeout since the last message). Returns
 * the call's code, or SHOAL_ECONN. */
static int client_run(shoal_client *c, struct call *call, uint64_t timeout_ms)
{
	struct sigpipe_guard g;

	sigpipe_block(&g);
	c->call = call;
	c->timer_fired = false;
	if (timeout_ms)
		uv_timer_start(&c->timer, on_timer, timeout_ms,
		               call->idle_timeout ? timeout_ms : 0);
	while (!call->done && !c->lost && !c->timer_fired) {
		if (call->pump)
			call->pump(c, call);
		if (call->done)
			break;
		uv_run(&c->loop, UV_RUN_ONCE);
	}
	uv_timer_stop(&c->timer);
	c->call = NULL;
	sigpipe_unblock(&g);
	if (call->done)
		return call->rc;
	if (c->lost)
		return client_fail(c, SHOAL_ECONN, "lost the connection to the master at %s: %s",
		                   c->addr, c->lost_reason);
	return client_fail(c, SHOAL_ECONN, "the master at %s did not answer within %u s", c->addr,
	                   (unsigned)((timeout_ms + 999) / 1000));
}

/* Fails fast when an earlier call lost the connection. */
static int client_check(shoal_client *c)
{
	if (c->lost || !c->conn)
		return client_fail(c, SHOAL_ECONN, "lost the connection to the master at %s: %s",
		                   c->addr, c->lost_reason[0] ? c->lost_reason : "closed");
	return SHOAL_OK;
}

/* ---- connect / close ---- */

/* The handshake's messages (common/handshake.h): Challenge, then Welcome or Refusal. */
static void handshake_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	switch (handshake_peer_on_message(&c->hs, env)) {
	case HANDSHAKE_SEND:
		client_send(c, call, &c->hs.out);
		break;
	case HANDSHAKE_DONE:
		call->welcomed = true;
		call_finish(c, call, SHOAL_OK, NULL);
		break;
	case HANDSHAKE_REFUSE:
		if (c->hs.refused)
			call_finish(c, call, SHOAL_ECONN,
			            "the master at %s refused the connection: %s", c->addr,
			            c->hs.why);
		else
			call_finish(c, call, SHOAL_ECONN,
			            "cannot authenticate with the master at %s: %s", c->addr,
			            c->hs.why);
		break;
	}
}

/* ---- TLS configurations ----
 *
 * Building a TLS configuration (an SSL_CTX: reading and checking the CA, certificate and key
 * files) costs a few milliseconds of CPU, more than the handshake itself. So each
 * configuration is built once per process and shared by every client that connects with it,
 * in any thread: a mutex guards the list (the API is one client per thread, but many threads
 * may connect at once), and OpenSSL lets many threads create sessions from one SSL_CTX that
 * no longer changes. An entry is keyed by its three paths and each file's identity (device,
 * inode, size, modification and change times), so a renewed certificate or key is read by
 * the next connect; the outdated entry goes when its last client closes. Entries no client
 * holds are freed at exit. */

struct tls_file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool missing;
};

struct tls_cached {
	struct tls_cached *next;
	char *path[3]; /* CA, certificate, key; "" when not given */
	struct tls_file_id id[3];
	struct tls_ctx *ctx;
	unsigned refs; /* clients holding it */
	bool stale;    /* a file changed since it was built: no new client gets it */
};

static pthread_mutex_t tls_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_cached *tls_cache;
static bool tls_cache_exit_set;

static void tls_file_identify(const char *path, struct tls_file_id *id)
{
	struct stat st;
	memset(id, 0, sizeof(*id));
	if (path[0] == '\0')
		return;
	if (stat(path, &st) < 0) {
		id->missing = true;
		return;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
	id->ctime = st.st_ctim;
}

static bool tls_file_same(const struct tls_file_id *a, const struct tls_file_id *b)
{
	return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec && a->ctime.tv_sec == b->ctime.tv_sec &&
	       a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static void tls_cached_free(struct tls_cached *e)
{
	tls_ctx_destroy(&e->ctx);
	for (int i = 0; i < 3; i++)
		free(e->path[i]);
	free(e);
}

/* Frees the entries no client holds (with the lock held), all of them or the stale ones. */
static void tls_cache_sweep(bool all)
{
	for (struct tls_cached **pp = &tls_cache; *pp;) {
		struct tls_cached *e = *pp;
		if (e->refs == 0 && (all || e->stale)) {
			*pp = e->next;
			tls_cached_free(e);
		} else {
			pp = &e->next;
		}
	}
}

static void tls_cache_at_exit(void)
{
	pthread_mutex_lock(&tls_cache_lock);
	tls_cache_sweep(true); /* entries still held belong to clients never closed */
	pthread_mutex_unlock(&tls_cache_lock);
}

/* The shared configuration for files f (built on first use), held until tls_cache_put.
 * Returns 0, or -1 with tls_ctx_create's message (naming the file and the fix) in err. */
static int tls_cache_get(const struct tls_files *f, struct tls_cached **out, char *err,
                         size_t errlen)
{
	const char *path[3] = {f->ca ? f->ca : "", f->cert ? f->cert : "", f->key ? f->key : ""};
	struct tls_file_id id[3];
	for (int i = 0; i < 3; i++)
		tls_file_identify(path[i], &id[i]);

	pthread_mutex_lock(&tls_cache_lock);
	for (struct tls_cached *e = tls_cache; e; e = e->next) {
		if (e->stale || strcmp(e->path[0], path[0]) || strcmp(e->path[1], path[1]) ||
		    strcmp(e->path[2], path[2]))
			continue;
		if (!tls_file_same(&e->id[0], &id[0]) || !tls_file_same(&e->id[1], &id[1]) ||
		    !tls_file_same(&e->id[2], &id[2])) {
			e->stale = true;
			continue;
		}
		e->refs++;
		pthread_mutex_unlock(&tls_cache_lock);
		*out = e;
		return 0;
	}
	tls_cache_sweep(false);
	/* Built with the lock held: threads connecting with a new configuration at the same
	 * moment build it once. */
	struct tls_ctx *ctx = NULL;
	if (tls_ctx_create(TLS_CLIENT, f, &ctx, err, errlen) < 0) {
		pthread_mutex_unlock(&tls_cache_lock);
		return -1;
	}
	struct tls_cached *e = xcalloc(1, sizeof(*e));
	for (int i = 0; i < 3; i++) {
		e->path[i] = xstrdup(path[i]);
		e->id[i] = id[i];
	}
	log_debug("client", "event=tls_config_loaded ca=%s cert=%s key=%s", path[0],
	          path[1][0] ? path[1] : "-", path[2][0] ? path[2] : "-");
	e->ctx = ctx;
	e->refs = 1;
	e->next = tls_cache;
	tls_cache = e;
	if (!tls_cache_exit_set)
		tls_cache_exit_set = atexit(tls_cache_at_exit) == 0;
	pthread_mutex_unlock(&tls_cache_lock);
	*out = e;
	return 0;
}

/* Gives back a client's hold on its configuration; sets *e to NULL. */
static void tls_cache_put(struct tls_cached **e)
{
	if (!e || !*e)
		return;
	pthread_mutex_lock(&tls_cache_lock);
	(*e)->refs--;
	tls_cache_sweep(false);
	pthread_mutex_unlock(&tls_cache_lock);
	*e = NULL;
}

/* Runs the loop until every handle is closed, then closes it. */
static void client_free(shoal_client *c)
{
	struct sigpipe_guard g;

	sigpipe_block(&g);
	if (c->conn && !conn_closing(c->conn))
		conn_close(c->conn, "client done");
	if (!uv_is_closing((uv_handle_t *)&c->timer))
		uv_close((uv_handle_t *)&c->timer, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&c->loop);
	sigpipe_unblock(&g);
	tls_cache_put(&c->tls_entry);
	c->tls = NULL;
	while (c->leases) {
		struct lease *l = c->leases;
		c->leases = l->next;
		free(l->name);
		free(l);
	}
	free(c->opt_master);
	auth_secret_free(&c->secret, c->secret_len);
	free(c);
}

/* conn logs protocol trouble at warn level for the daemons' benefit; a library reports it
 * through shoal_errmsg instead and stays silent on stderr. SHOAL_LOG_LEVEL=debug|info|warn
 * brings the lines back for debugging. */
static void client_quiet_logs(void)
{
	const char *env = getenv("SHOAL_LOG_LEVEL");
	enum log_level level = LOG_ERROR;

	if (env && log_level_parse(env, &level) < 0)
		level = LOG_ERROR;
	log_set_level(level);
}

int shoal_connect(const struct shoal_connect_options *opt, shoal_client **out, char *err,
                  size_t errlen)
{
	static const struct conn_callbacks cb = {
	    .on_message = on_conn_message,
	    .on_drain = on_conn_drain,
	    .on_connect = on_conn_connect,
	    .on_close = on_conn_close,
	};
	const char *master = opt ? opt->master : NULL;
	unsigned timeout_ms = opt && opt->timeout_ms ? opt->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;
	char host[256], perr[600];
	uint16_t port;
	struct conn_limits lim;
	struct call call = {0};
	shoal_client *c;
	int rc;

	client_quiet_logs();
	if (!master || !master[0])
		master = getenv("SHOAL_MASTER");
	if (!master || !master[0])
		master = CLIENT_DEFAULT_MASTER;
	if (addr_parse(master, SHOAL_DEFAULT_PORT, host, sizeof(host), &port, perr, sizeof(perr)) <
	    0) {
		snprintf(err, errlen, "bad master address '%s': %s", master, perr);
		return SHOAL_EUSAGE;
	}

	const char *secret_path = auth_secret_path(opt ? opt->secret_file : NULL);
	uint8_t *secret = NULL;
	size_t secret_len = 0;
	if (secret_path != NULL &&
	    auth_secret_load(secret_path, &secret, &secret_len, perr, sizeof(perr)) < 0) {
		snprintf(err, errlen, "%s", perr);
		return SHOAL_EUSAGE;
	}
	struct tls_files tls = {opt ? opt->tls_cert : NULL, opt ? opt->tls_key : NULL,
	                        opt ? opt->tls_ca : NULL};
	if (!tls.cert)
		tls.cert = getenv("SHOAL_TLS_CERT");
	if (!tls.key)
		tls.key = getenv("SHOAL_TLS_KEY");
	if (!tls.ca)
		tls.ca = getenv("SHOAL_TLS_CA");
	struct tls_cached *tls_entry = NULL;
	if (tls_files_enabled(&tls) && tls_cache_get(&tls, &tls_entry, err, errlen) < 0) {
		auth_secret_free(&secret, secret_len);
		return SHOAL_EUSAGE;
	}

	c = xcalloc(1, sizeof(*c));
	c->secret = secret;
	c->secret_len = secret_len;
	c->tls_entry = tls_entry;
	c->tls = tls_entry ? tls_entry->ctx : NULL;
	if (uv_loop_init(&c->loop) < 0) {
		snprintf(err, errlen, "cannot create an event loop");
		auth_secret_free(&c->secret, c->secret_len);
		tls_cache_put(&c->tls_entry);
		free(c);
		return SHOAL_ECONN;
	}
	uv_timer_init(&c->loop, &c->timer);
	c->timer.data = c;
	if (strchr(host, ':'))
		snprintf(c->addr, sizeof(c->addr), "[%s]:%u", host, (unsigned)port);
	else
		snprintf(c->addr, sizeof(c->addr), "%s:%u", host, (unsigned)port);

	conn_limits_default(&lim);
	/* The master is the only peer, and its job listings decode to ~25x their size. */
	lim.unpack_budget = CODEC_BUDGET_LISTINGS;
	c->conn = conn_create(&c->loop, &lim, &cb, c);
	if (!c->conn) {
		snprintf(err, errlen, "cannot reach the master at %s: cannot create a socket",
		         c->addr);
		client_free(c);
		return SHOAL_ECONN;
	}
	if (c->tls)
		conn_set_tls(c->conn, c->tls);
	call.on_message = handshake_on_message;
	c->call = &call;
	rc = conn_connect(c->conn, host, port);
	if (rc < 0) {
		c->connect_status = rc;
		conn_close(c->conn, uv_strerror(rc));
	}
	rc = client_run(c, &call, timeout_ms);
	if (rc == SHOAL_OK) {
		if (opt)
			c->opt = *opt;
		c->opt_master = xstrdup(master);
		c->opt.master = c->opt_master;
		*out = c;
		return SHOAL_OK;
	}
	if (c->connect_status < 0)
		snprintf(err, errlen,
		         "cannot reach the master at %s: %s (is shoal-master running? set "
		         "--master or SHOAL_MASTER)",
		         c->addr, uv_strerror(c->connect_status));
	else if (call.done)
		snprintf(err, errlen, "%s", c->err);
	else if (c->lost)
		snprintf(err, errlen,
		         "cannot reach the master at %s: the connection closed during the "
		         "handshake (%s)",
		         c->addr, c->lost_reason);
	else if (timeout_ms % 1000 == 0)
		snprintf(err, errlen,
		         "cannot reach the master at %s: no answer within %u s (is shoal-master "
		         "running? set --master or SHOAL_MASTER)",
		         c->addr, timeout_ms / 1000);
	else
		snprintf(err, errlen,
		         "cannot reach the master at %s: no answer within %u ms (is shoal-master "
		         "running? set --master or SHOAL_MASTER)",
		         c->addr, timeout_ms);
	client_free(c);
	return SHOAL_ECONN;
}

void shoal_close(shoal_client **c)
{
	if (!c || !*c)
		return;
	for (shoal_client *k = *c, *next; k; k = next) {
		next = k->next;
		client_free(k);
	}
	*c = NULL;
}

const char *shoal_errmsg(const shoal_client *c)
{
	while (c && c->next)
		c = c->next;
	return c ? c->err : "no client";
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Tells the application (shoal_connect_options.notice), if it listens. */
static void client_notice(shoal_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void client_notice(shoal_client *c, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (!c->opt.notice)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->opt.notice(msg, c->opt.notice_arg);
}

/* The connection of c is lost (the master restarted, say): connects again with the options c
 * was opened with, retrying with capped exponential backoff for at most opt.reconnect_ms.
 * Returns the new client, which replaces c from now on, or NULL with the reason in c. */
static shoal_client *client_reconnect(shoal_client *c)
{
	unsigned budget = c->opt.reconnect_ms ? c->opt.reconnect_ms : CLIENT_RECONNECT_MS;
	unsigned delay = CLIENT_RECONNECT_FIRST_MS;
	uint64_t start = mono_us(), deadline = start + (uint64_t)budget * 1000u;
	char err[1024] = "";
	char lost[256];

	snprintf(lost, sizeof(lost), "%s", c->lost_reason[0] ? c->lost_reason : "closed");
	client_notice(c,
	              "lost the connection to the master at %s (%s); reconnecting for up to %u s",
	              c->addr, lost, (budget + 999) / 1000);
	for (;;) {
		struct shoal_connect_options o = c->opt;
		shoal_client *n = NULL;
		uint64_t now = mono_us();
		unsigned left = now < deadline ? (unsigned)((deadline - now) / 1000u) : 0;
		unsigned per_try =
		    c->opt.timeout_ms ? c->opt.timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS;

		if (left == 0)
			break;
		o.timeout_ms = per_try < left ? per_try : left;
		int rc = shoal_connect(&o, &n, err, sizeof(err));
		if (rc == SHOAL_OK) {
			c->next = n;
			client_notice(c, "reconnected to the master at %s after %.1f s", c->addr,
			              (double)(mono_us() - start) / 1e6);
			return n;
		}
		if (rc == SHOAL_EUSAGE)
			break;
		now = mono_us();
		if (now + (uint64_t)delay * 1000u >= deadline)
			break;
		sleep_ms(delay);
		delay = delay * 2 < CLIENT_RECONNECT_CAP_MS ? delay * 2 : CLIENT_RECONNECT_CAP_MS;
	}
	client_fail(c, SHOAL_ECONN,
	            "lost the connection to the master at %s (%s) and could not reconnect within "
	            "%u s: %s",
	            c->addr, lost, (budget + 999) / 1000, err[0] ? err : "no time left");
	return NULL;
}

/* After a call failed with rc: the replacement client if the connection was lost and a new
 * one could be made (the call is then to be repeated on it), else NULL. */
static shoal_client *client_recover(shoal_client *c, int rc, int *tries)
{
	if (rc != SHOAL_ECONN || !(c->lost || !c->conn) || ++*tries > CLIENT_MAX_RECONNECTS)
		return NULL;
	return client_reconnect(c);
}

/* ---- job info ---- */

const char *shoal_job_state_name(enum shoal_job_state st)
{
	switch (st) {
	case SHOAL_JOB_UPLOADING:
		return "uploading";
	case SHOAL_JOB_QUEUED:
		return "queued";
	case SHOAL_JOB_RUNNING:
		return "running";
	case SHOAL_JOB_SUCCEEDED:
		return "succeeded";
	case SHOAL_JOB_FAILED:
		return "failed";
	case SHOAL_JOB_CANCELLED:
		return "cancelled";
	case SHOAL_JOB_UNKNOWN:
		break;
	}
	return "unknown";
}

static bool state_final(enum shoal_job_state st)
{
	return st == SHOAL_JOB_SUCCEEDED || st == SHOAL_JOB_FAILED || st == SHOAL_JOB_CANCELLED;
}

static const char *strategy_name(Shoal__Strategy s)
{
	switch (s) {
	case SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN:
		return "round-robin";
	case SHOAL__STRATEGY__STRATEGY_DYNAMIC:
		return "dynamic";
	case SHOAL__STRATEGY__STRATEGY_LEAST_LOADED:
		return "least-loaded";
	default:
		return "default";
	}
}

static void job_info_from(struct shoal_job_info *o, const Shoal__JobInfo *j)
{
	memset(o, 0, sizeof(*o));
	o->id = j->job_id;
	o->state = (int)j->state >= SHOAL_JOB_UNKNOWN && (int)j->state <= SHOAL_JOB_CANCELLED
	               ? (enum shoal_job_state)j->state
	               : SHOAL_JOB_UNKNOWN;
	/* An exec job's op may be its command, which can be long: cut it visibly. */
	if (snprintf(o->op, sizeof(o->op), "%s", j->op ? j->op : "") >= (int)sizeof(o->op))
		memcpy(o->op + sizeof(o->op) - 4, "...", 4);
	snprintf(o->name, sizeof(o->name), "%s", j->name ? j->name : "");
	snprintf(o->strategy, sizeof(o->strategy), "%s",
	         strategy_name(j->has_strategy ? j->strategy : SHOAL__STRATEGY__STRATEGY_DEFAULT));
	o->priority = j->has_priority ? j->priority : 0;
	o->tasks_total = j->has_tasks_total ? j->tasks_total : 0;
	o->tasks_done = j->has_tasks_done ? j->tasks_done : 0;
	o->tasks_running = j->has_tasks_running ? j->tasks_running : 0;
	o->task_failures = j->has_task_failures ? j->task_failures : 0;
	o->input_bytes = j->has_input_bytes ? j->input_bytes : 0;
	o->records = j->has_records ? j->records : 0;
	o->result_size = j->has_result_size ? j->result_size : 0;
	o->submitted_ms = j->has_submitted_ms ? j->submitted_ms : 0;
	o->started_ms = j->has_started_ms ? j->started_ms : 0;
	o->finished_ms = j->has_finished_ms ? j->finished_ms : 0;
	copy_elided(o->error, sizeof(o->error), j->error ? j->error : "");
	o->queue_position = j->has_queue_position ? j->queue_position : 0;
	o->cost = j->has_cost ? j->cost : 0;
	o->after = j->has_after ? j->after : 0;
	o->partitions_recovered = j->has_partitions_recovered ? j->partitions_recovered : 0;
	o->tasks_dispatched = j->has_tasks_dispatched ? j->tasks_dispatched : 0;
	snprintf(o->stalled, sizeof(o->stalled), "%s", j->stalled ? j->stalled : "");
	o->stalled_since_ms = j->has_stalled_since_ms ? j->stalled_since_ms : 0;
}

static void worker_info_from(struct shoal_worker_info *o, const Shoal__WorkerInfo *w)
{
	memset(o, 0, sizeof(*o));
	o->id = w->worker_id;
	snprintf(o->name, sizeof(o->name), "%s", w->name ? w->name : "");
	snprintf(o->host, sizeof(o->host), "%s", w->host ? w->host : "");
	snprintf(o->address, sizeof(o->address), "%s", w->address ? w->address : "");
	o->slots = w->slots;
	o->running = w->has_running ? w->running : 0;
	o->held = w->has_held ? w->held : 0;
	o->tasks_done = w->has_tasks_done ? w->tasks_done : 0;
	o->tasks_failed = w->has_tasks_failed ? w->tasks_failed : 0;
	o->allow_exec = w->has_allow_exec && w->allow_exec;
	o->connected_ms = w->has_connected_ms ? w->connected_ms : 0;
	o->last_heartbeat_ms = w->has_last_heartbeat_ms ? w->last_heartbeat_ms : 0;
	snprintf(o->advertise, sizeof(o->advertise), "%s", w->advertise ? w->advertise : "");
}

/* ---- submit + upload ---- */

void shoal_job_spec_init(struct shoal_job_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->input = SHOAL_INPUT_RANGE;
	spec->retries = -1;
}

static void upload_abort(shoal_client *c, struct call *call)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Cancel cancel = SHOAL__CANCEL__INIT;

	/* The master holds a half-uploaded job that can never complete: drop it. */
	cancel.job_id = call->job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_CANCEL;
	env.cancel = &cancel;
	client_send(c, call, &env);
}

/* The master made the first `durable` bytes safe: a pipe's copy of them can go. */
static void replay_forget(struct call *call, uint64_t durable)
{
	if (durable > call->replay_end)
		durable = call->replay_end;
	if (durable > call->replay_base)
		call->replay_base = durable;
}

static size_t min_size(uint64_t a, uint64_t b)
{
	return (size_t)(a < b ? a : b);
}

/* The next piece of the input at call->sent, at most want bytes: from a file at that offset,
 * or for a pipe from what was read and not yet sent, else from one read (which returns what
 * the pipe holds, so a slow producer's bytes go out as they come). Sets *last at the end. */
static ssize_t upload_next(struct call *call, size_t want, const uint8_t **data, bool *last)
{
	const uint64_t ring = CLIENT_REPLAY_RING;

	if (call->size_known) {
		want = min_size(want, call->size - call->sent);
		ssize_t got = want ? pread_all(call->fd, call->chunk, want, call->sent) : 0;
		if (got >= 0 && (size_t)got < want) {
			errno = 0; /* shrank */
			return -1;
		}
		*data = call->chunk;
		*last = got >= 0 && call->sent + (uint64_t)got == call->size;
		return got;
	}
	if (!call->replay)
		call->replay = xmalloc(ring);
	if (call->sent == call->replay_end && !call->eof) {
		uint64_t pos = call->replay_end % ring;
		size_t room = min_size(ring - (call->replay_end - call->replay_base), ring - pos);
		if (room == 0)
			return 0; /* wait for the master's sync (an UploadAck's durable) */
		ssize_t got;
		do
			got = read(call->fd, call->replay + pos, min_size(want, room));
		while (got < 0 && errno == EINTR);
		if (got < 0)
			return -1;
		call->replay_end += (uint64_t)got;
		call->eof = got == 0;
	}
	uint64_t pos = call->sent % ring;
	want = min_size(min_size(want, call->replay_end - call->sent), ring - pos);
	*data = call->replay + pos;
	*last = call->eof && call->sent + want == call->replay_end;
	return (ssize_t)want;
}

/* Sends chunks while the window and the connection's write queue allow. */
static void upload_pump(shoal_client *c, struct call *call)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__UploadChunk chunk = SHOAL__UPLOAD_CHUNK__INIT;

	if (!call->submitted || call->last_sent || call->resuming)
		return;
	while (!call->done && !call->last_sent && c->conn && conn_writable(c->conn) &&
	       call->sent - call->acked < call->window) {
		size_t want = CLIENT_CHUNK;
		uint64_t room = call->window - (call->sent - call->acked);
		const uint8_t *data = NULL;
		bool last = false, fresh = !call->size_known && call->sent == call->replay_end;
		ssize_t got;

		if (want > room)
			want = (size_t)room;
		got = upload_next(call, want, &data, &last);
		if (got < 0) {
			int e = errno;
			upload_abort(c, call);
			if (e == 0)
				call_finish(c, call, SHOAL_EUSAGE,
				            "input %s shrank while it was being uploaded",
				            call->path);
			else
				call_finish(c, call, SHOAL_EUSAGE, "cannot read input %s: %s",
				            call->path, strerror(e));
			return;
		}
		if (got == 0 && !last)
			return; /* a pipe's bytes wait for the master to make room */
		chunk.job_id = call->job_id;
		chunk.data.data = (uint8_t *)data;
		chunk.data.len = (size_t)got;
		chunk.has_last = last;
		chunk.last = last;
		env.msg_case = SHOAL__ENVELOPE__MSG_UPLOAD_CHUNK;
		env.upload_chunk = &chunk;
		client_send(c, call, &env);
		call->sent += (uint64_t)got;
		call->last_sent = last;
		/* Fresh bytes from a pipe go out before the next read, which may block. */
		if (fresh)
			return;
	}
}

/* Watches the job while it uploads: if the master fails it meanwhile (its spool disk is
 * full, another client cancels it), no UploadAck may ever come, and the JobUpdate is how the
 * client learns why. shoal_wait's own Watch later is harmless (the master keeps one watch). */
static void upload_watch(shoal_client *c, struct call *call)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Watch watch = SHOAL__WATCH__INIT;

	watch.job_id = call->job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_WATCH;
	env.watch = &watch;
	client_send(c, call, &env);
}

/* The master's word on the upload: flow control, durability, a resume point, the end. */
static void upload_on_ack(shoal_client *c, struct call *call, const Shoal__UploadAck *ack)
{
	uint64_t have = call->size_known ? call->size : call->replay_end;

	if (!call->submitted || ack->job_id != call->job_id)
		return;
	if (ack->has_complete && ack->complete) {
		call_finish(c, call, SHOAL_OK, NULL);
		return;
	}
	if (ack->has_resumed && ack->resumed) {
		/* Carry on from what the master holds: a file is read again from there; a pipe's
		 * bytes from there must still be in the replay buffer. */
		if (ack->received > have ||
		    (!call->size_known && ack->received < call->replay_base)) {
			upload_abort(c, call);
			call_finish(
			    c, call, SHOAL_EJOB,
			    "cannot resume the upload of job %llu: the master holds %llu bytes "
			    "of it, and this client has bytes %llu to %llu of %s; submit the "
			    "job again",
			    (unsigned long long)call->job_id, (unsigned long long)ack->received,
			    (unsigned long long)call->replay_base, (unsigned long long)have,
			    call->path);
			return;
		}
		call->sent = call->acked = ack->received;
		call->last_sent = false;
		call->resuming = false;
		call->window = ack->window;
		if (ack->has_durable && !call->size_known)
			replay_forget(call, ack->durable);
		return;
	}
	if (ack->received > call->sent) {
		call_protocol_error(c, call, "upload acknowledged beyond what was sent");
		return;
	}
	if (ack->received > call->acked)
		call->acked = ack->received;
	call->window = ack->window;
	if (ack->has_durable && !call->size_known)
		replay_forget(call, ack->durable);
	/* A master that does not say `complete` is done once everything is acknowledged. */
	if (!ack->has_complete && call->last_sent && call->acked == call->sent)
		call_finish(c, call, SHOAL_OK, NULL);
}

/* On a new connection after the old one was lost: asks the master where the upload of
 * call's job stands, and watches the job again. */
static void upload_resume(shoal_client *c, struct call *call)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__UploadResume r = SHOAL__UPLOAD_RESUME__INIT;

	call->resuming = true;
	r.job_id = call->job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_UPLOAD_RESUME;
	env.upload_resume = &r;
	client_send(c, call, &env);
	upload_watch(c, call);
}

static void submit_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_SUBMITTED:
		if (call->submitted)
			break;
		call->submitted = true;
		call->job_id = env->submitted->job_id;
		if (call->fd < 0) {
			call_finish(c, call, SHOAL_OK, NULL);
			break;
		}
		call->window = env->submitted->has_upload_window && env->submitted->upload_window
		                   ? env->submitted->upload_window
		                   : CLIENT_UPLOAD_WINDOW;
		upload_watch(c, call);
		break;
	case SHOAL__ENVELOPE__MSG_JOB_UPDATE: {
		const Shoal__JobInfo *j = env->job_update->job;
		if (!call->submitted || !j || j->job_id != call->job_id)
			break;
		if (j->state == SHOAL__JOB_STATE__JOB_FAILED)
			call_finish(c, call, SHOAL_EJOB, "job %llu failed during its upload: %s",
			            (unsigned long long)call->job_id,
			            j->error && j->error[0] ? j->error : "unknown error");
		else if (j->state == SHOAL__JOB_STATE__JOB_CANCELLED)
			call_finish(c, call, SHOAL_EJOB, "job %llu was cancelled during its upload",
			            (unsigned long long)call->job_id);
		break;
	}
	case SHOAL__ENVELOPE__MSG_UPLOAD_ACK:
		upload_on_ack(c, call, env->upload_ack);
		break;
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (call->submitted && !failure_matches(env->failure, call))
			break;
		call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

static int strategy_parse(const char *s, Shoal__Strategy *out)
{
	if (!s) {
		*out = SHOAL__STRATEGY__STRATEGY_DEFAULT;
		return 0;
	}
	if (strcmp(s, "round-robin") == 0)
		*out = SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN;
	else if (strcmp(s, "dynamic") == 0)
		*out = SHOAL__STRATEGY__STRATEGY_DYNAMIC;
	else if (strcmp(s, "least-loaded") == 0)
		*out = SHOAL__STRATEGY__STRATEGY_LEAST_LOADED;
	else
		return -1;
	return 0;
}

/* Opens the upload input; fills call->fd/size. SHOAL_OK or SHOAL_EUSAGE. */
static int upload_open(shoal_client *c, struct call *call, const char *path)
{
	struct stat st;
	int e;

	call->path = strcmp(path, "-") == 0 ? "(stdin)" : path;
	if (strcmp(path, "-") == 0) {
		call->fd = STDIN_FILENO;
	} else {
		call->fd = open(path, O_RDONLY | O_CLOEXEC);
		if (call->fd < 0)
			return client_fail(c, SHOAL_EUSAGE, "cannot read input %s: %s", path,
			                   strerror(errno));
	}
	e = fstat(call->fd, &st) < 0 ? errno : S_ISDIR(st.st_mode) ? EISDIR : 0;
	if (e) {
		if (call->fd != STDIN_FILENO)
			close(call->fd);
		call->fd = -1;
		return client_fail(c, SHOAL_EUSAGE, "cannot read input %s: %s", path, strerror(e));
	}
	if (S_ISREG(st.st_mode)) {
		call->size_known = true;
		call->size = (uint64_t)st.st_size;
	}
	return SHOAL_OK;
}

/* ---- shipped files (blobs) ---- */

/* One local file of a job (a --file, the broadcast or the plugin): opened and hashed before
 * anything is sent, offered to the master by content, and read again from the same open file
 * if the master asks for the bytes. */
struct blob {
	const char *what; /* "file", "broadcast file", "plugin": for messages */
	const char *path; /* borrowed from the spec */
	int fd;
	uint64_t size;
	uint8_t sha[DIGEST_LEN];
	bool dup; /* same content as an earlier blob of the job: offered once */
	Shoal__FileRef ref;
};

static bool str_set(const char *s)
{
	return s && s[0];
}

/* The part of path after its last '/': the file's name in the task's working directory. */
static const char *path_base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/* A shipped file needs a path whose base name the master accepts. */
static int blob_name_check(shoal_client *c, const char *what, const char *path)
{
	const char *name;

	if (!str_set(path))
		return client_fail(c, SHOAL_EUSAGE, "%s: empty path", what);
	name = path_base(path);
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return client_fail(c, SHOAL_EUSAGE, "%s %s: the path does not end in a file name",
		                   what, path);
	if (strlen(name) > CLIENT_FILE_NAME_MAX)
		return client_fail(c, SHOAL_EUSAGE, "%s %s: the file name is longer than %u bytes",
		                   what, path, CLIENT_FILE_NAME_MAX);
	return SHOAL_OK;
}

/* Opens and hashes path into b (buf: CLIENT_CHUNK bytes of scratch). SHOAL_OK or
 * SHOAL_EUSAGE; b->fd is -1 or open either way (the caller closes it). */
static int blob_open(shoal_client *c, struct blob *b, const char *what, const char *path,
                     uint8_t *buf)
{
	Shoal__FileRef init = SHOAL__FILE_REF__INIT;
	struct digest *d;
	struct stat st;
	uint64_t off = 0;
	int e = 0;

	b->what = what;
	b->path = path;
	b->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (b->fd < 0)
		e = errno;
	else if (fstat(b->fd, &st) < 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	if (e)
		return client_fail(c, SHOAL_EUSAGE, "cannot read %s %s: %s", what, path,
		                   strerror(e));
	/* It is read twice (hashed now, sent later if the master lacks it): no pipes. */
	if (!S_ISREG(st.st_mode))
		return client_fail(c, SHOAL_EUSAGE, "cannot read %s %s: not a regular file", what,
		                   path);
	d = digest_create();
	for (;;) {
		ssize_t got = pread_all(b->fd, buf, CLIENT_CHUNK, off);
		if (got < 0) {
			e = errno;
			digest_finish(&d, b->sha);
			return client_fail(c, SHOAL_EUSAGE, "cannot read %s %s: %s", what, path,
			                   strerror(e));
		}
		if (got == 0)
			break;
		digest_update(d, buf, (size_t)got);
		off += (uint64_t)got;
	}
	digest_finish(&d, b->sha);
	b->size = off;
	b->ref = init;
	b->ref.name = (char *)path_base(path);
	b->ref.sha256.data = b->sha;
	b->ref.sha256.len = DIGEST_LEN;
	b->ref.size = b->size;
	return SHOAL_OK;
}

/* The protocol has no way to call off a transfer the master is expecting bytes for, and the
 * master takes one transfer per connection at a time: the connection is of no further use. */
static void blob_abandon(shoal_client *c)
{
	if (c->conn && !conn_closing(c->conn))
		conn_close(c->conn, "a shipped file could not be sent");
}

/* Sends BlobData while the master's window and the connection's write queue allow. */
static void blob_pump(shoal_client *c, struct call *call)
{
	const struct blob *b = call->blob;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__BlobData data = SHOAL__BLOB_DATA__INIT;

	if (!call->streaming)
		return;
	while (!call->done && !call->last_sent && c->conn && conn_writable(c->conn) &&
	       call->sent - call->acked < call->window) {
		uint64_t room = call->window - (call->sent - call->acked);
		size_t want = CLIENT_CHUNK;
		ssize_t got;
		bool last;

		if (want > room)
			want = (size_t)room;
		if (want > b->size - call->sent)
			want = (size_t)(b->size - call->sent);
		got = want ? pread_all(b->fd, call->chunk, want, call->sent) : 0;
		if (got < 0) {
			int e = errno;
			call_finish(c, call, SHOAL_EUSAGE, "cannot read %s %s: %s", b->what,
			            b->path, strerror(e));
			blob_abandon(c);
			return;
		}
		if ((size_t)got < want) {
			call_finish(c, call, SHOAL_EUSAGE, "%s %s shrank while it was being sent",
			            b->what, b->path);
			blob_abandon(c);
			return;
		}
		last = call->sent + (uint64_t)got == b->size;
		data.sha256.data = (uint8_t *)b->sha;
		data.sha256.len = DIGEST_LEN;
		data.offset = call->sent;
		data.data.data = call->chunk;
		data.data.len = (size_t)got;
		data.has_last = true;
		data.last = last;
		env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_DATA;
		env.blob_data = &data;
		client_send(c, call, &env);
		call->sent += (uint64_t)got;
		call->last_sent = last;
	}
}

static void blob_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	const struct blob *b = call->blob;
	const Shoal__BlobAck *ack;
	uint64_t received;

	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_BLOB_ACK:
		ack = env->blob_ack;
		if (ack->sha256.len != DIGEST_LEN || memcmp(ack->sha256.data, b->sha, DIGEST_LEN))
			break; /* another file's */
		if (ack->error && ack->error[0]) {
			call_finish(c, call, SHOAL_EJOB, "the master refused %s %s: %s", b->what,
			            b->path, ack->error);
			break;
		}
		if (ack->done) {
			call_finish(c, call, SHOAL_OK, NULL);
			break;
		}
		received = ack->has_received ? ack->received : 0;
		if (received > b->size) {
			call_protocol_error(c, call, "file acknowledged beyond its size");
			break;
		}
		if (!call->streaming) {
			/* The first answer to the offer: send from where the master stands (it may
			 * keep part of an earlier, interrupted transfer). */
			call->streaming = true;
			call->sent = call->acked = received;
			call->window =
			    ack->has_window && ack->window ? ack->window : CLIENT_UPLOAD_WINDOW;
			break;
		}
		if (received > call->sent) {
			call_protocol_error(c, call, "file acknowledged beyond what was sent");
			break;
		}
		if (received > call->acked)
			call->acked = received;
		if (ack->has_window)
			call->window = ack->window;
		break;
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (failure_matches(env->failure, call))
			call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

/* Offers b to the master and sends its bytes if the master lacks them, until the master
 * says it holds the file (verified). */
static int blob_ship(shoal_client *c, const struct blob *b, uint8_t *chunk)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__BlobOffer offer = SHOAL__BLOB_OFFER__INIT;
	struct call call = {0};
	int rc;

	call.on_message = blob_on_message;
	call.pump = blob_pump;
	call.blob = b;
	call.fd = b->fd;
	call.chunk = chunk;
	/* No overall deadline (a file may be large), but a master that stops answering is gone. */
	call.idle_timeout = true;
	offer.file = (Shoal__FileRef *)&b->ref;
	env.msg_case = SHOAL__ENVELOPE__MSG_BLOB_OFFER;
	env.blob_offer = &offer;
	client_send(c, &call, &env);
	rc = client_run(c, &call, CLIENT_REQUEST_TIMEOUT_MS);
	if (rc == SHOAL_ECONN)
		blob_abandon(c); /* a master silent that long may still expect the rest */
	return rc;
}

/* The rules shoal_submit checks before anything else. SHOAL_OK or SHOAL_EUSAGE. */
static int spec_check(shoal_client *c, const struct shoal_job_spec *spec)
{
	int kinds = str_set(spec->op) + (spec->exec != NULL) + (spec->plugin != NULL);
	int rc;

	if (kinds == 0)
		return client_fail(c, SHOAL_EUSAGE,
		                   "a job needs an op, an exec command or a plugin");
	if (kinds > 1)
		return client_fail(c, SHOAL_EUSAGE,
		                   "a job runs only one of an op, an exec command and a plugin");
	if (spec->exec && !spec->exec[0])
		return client_fail(c, SHOAL_EUSAGE, "empty exec command");
	if (spec->reduce_exec && !spec->exec)
		return client_fail(c, SHOAL_EUSAGE, "a reduce command needs an exec command");
	if (spec->reduce_exec && !spec->reduce_exec[0])
		return client_fail(c, SHOAL_EUSAGE, "empty reduce command");
	if (spec->reducers && !spec->reduce_exec)
		return client_fail(c, SHOAL_EUSAGE, "reducers need a reduce command");
	if (spec->nfiles && !spec->files)
		return client_fail(c, SHOAL_EUSAGE, "%zu files without their paths", spec->nfiles);
	if (spec->nfiles > CLIENT_FILES_MAX)
		return client_fail(c, SHOAL_EUSAGE, "%zu files (at most %u)", spec->nfiles,
		                   CLIENT_FILES_MAX);
	for (size_t i = 0; i < spec->nfiles; i++) {
		if ((rc = blob_name_check(c, "file", spec->files[i])) != SHOAL_OK)
			return rc;
		for (size_t j = 0; j < i; j++)
			if (strcmp(path_base(spec->files[j]), path_base(spec->files[i])) == 0)
				return client_fail(c, SHOAL_EUSAGE,
				                   "files %s and %s would both be '%s' in the "
				                   "task's directory",
				                   spec->files[j], spec->files[i],
				                   path_base(spec->files[i]));
	}
	if (spec->broadcast && (rc = blob_name_check(c, "broadcast file", spec->broadcast)) != 0)
		return rc;
	if (spec->plugin && (rc = blob_name_check(c, "plugin", spec->plugin)) != SHOAL_OK)
		return rc;
	return SHOAL_OK;
}

int shoal_submit(shoal_client *client, const struct shoal_job_spec *spec, uint64_t *job_id)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Submit submit = SHOAL__SUBMIT__INIT;
	Shoal__JobSpec js = SHOAL__JOB_SPEC__INIT;
	Shoal__Range range = SHOAL__RANGE__INIT;
	Shoal__Arg *args = NULL, **argp = NULL;
	Shoal__FileRef **filep = NULL;
	Shoal__Strategy strategy;
	struct blob *blobs = NULL;
	size_t nblobs = 0;
	struct call call = {0};
	int rc;

	call.fd = -1;
	if (!spec)
		return client_fail(c, SHOAL_EUSAGE, "no job spec");
	if ((rc = spec_check(c, spec)) != SHOAL_OK)
		return rc;
	if (strategy_parse(spec->strategy, &strategy) < 0)
		return client_fail(c, SHOAL_EUSAGE,
		                   "unknown strategy '%s' (known: round-robin, least-loaded, "
		                   "dynamic)",
		                   spec->strategy);
	if (spec->nargs && (!spec->arg_keys || !spec->arg_values))
		return client_fail(c, SHOAL_EUSAGE, "job arguments without keys or values");
	switch (spec->input) {
	case SHOAL_INPUT_RANGE:
		if (spec->lo > spec->hi)
			return client_fail(c, SHOAL_EUSAGE,
			                   "bad range %lld:%lld: LO is greater than HI",
			                   (long long)spec->lo, (long long)spec->hi);
		range.lo = spec->lo;
		range.hi = spec->hi;
		js.input_case = SHOAL__JOB_SPEC__INPUT_RANGE;
		js.range = &range;
		break;
	case SHOAL_INPUT_FILE:
		if (!spec->path || !spec->path[0])
			return client_fail(c, SHOAL_EUSAGE, "no input file given");
		break;
	case SHOAL_INPUT_PATH:
		if (!spec->path || !spec->path[0])
			return client_fail(c, SHOAL_EUSAGE, "no input path given");
		js.input_case = SHOAL__JOB_SPEC__INPUT_PATH;
		js.path = (char *)spec->path;
		break;
	case SHOAL_INPUT_JOB:
		if (spec->input_job == 0)
			return client_fail(c, SHOAL_EUSAGE,
			                   "no input job given (job ids start at 1)");
		js.input_case = SHOAL__JOB_SPEC__INPUT_JOB;
		js.job = spec->input_job;
		break;
	default:
		return client_fail(c, SHOAL_EUSAGE, "unknown input kind %d", (int)spec->input);
	}
	/* Only after the local checks: an input must be readable before anything is submitted,
	 * but a client whose master is gone still reports bad usage as usage. */
	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	call.chunk = xmalloc(CLIENT_CHUNK);
	if (spec->input == SHOAL_INPUT_FILE) {
		if ((rc = upload_open(c, &call, spec->path)) != SHOAL_OK)
			goto out;
		js.input_case = SHOAL__JOB_SPEC__INPUT_UPLOAD;
		js.upload = 1;
		js.has_upload_size = call.size_known;
		js.upload_size = call.size;
	}

	/* Every shipped file is opened and hashed before the first is offered: an unreadable
	 * one is a usage error with nothing sent. */
	nblobs = spec->nfiles + (spec->broadcast != NULL) + (spec->plugin != NULL);
	blobs = xcalloc(nblobs ? nblobs : 1, sizeof(*blobs));
	for (size_t i = 0; i < nblobs; i++)
		blobs[i].fd = -1;
	for (size_t i = 0; i < nblobs; i++) {
		const char *what = i < spec->nfiles                       ? "file"
		                   : i == spec->nfiles && spec->broadcast ? "broadcast file"
		                                                          : "plugin";
		const char *path = i < spec->nfiles                       ? spec->files[i]
		                   : i == spec->nfiles && spec->broadcast ? spec->broadcast
		                                                          : spec->plugin;
		if ((rc = blob_open(c, &blobs[i], what, path, call.chunk)) != SHOAL_OK)
			goto out;
		for (size_t j = 0; j < i && !blobs[i].dup; j++)
			blobs[i].dup = memcmp(blobs[i].sha, blobs[j].sha, DIGEST_LEN) == 0;
	}
	for (size_t i = 0; i < nblobs; i++)
		if (!blobs[i].dup && (rc = blob_ship(c, &blobs[i], call.chunk)) != SHOAL_OK)
			goto out;
	if (spec->nfiles) {
		filep = xcalloc(spec->nfiles, sizeof(*filep));
		for (size_t i = 0; i < spec->nfiles; i++)
			filep[i] = &blobs[i].ref;
	}
	js.n_files = spec->nfiles;
	js.files = filep;
	if (spec->broadcast)
		js.broadcast = &blobs[spec->nfiles].ref;
	if (spec->plugin)
		js.plugin = &blobs[nblobs - 1].ref;

	/* The proto's op is required: empty when exec or plugin says what runs. */
	js.op = str_set(spec->op) ? (char *)spec->op : (char *)"";
	js.exec = (char *)spec->exec;
	js.reduce_exec = (char *)spec->reduce_exec;
	js.has_reducers = spec->reducers != 0;
	js.reducers = spec->reducers;
	if (spec->nargs) {
		args = xcalloc(spec->nargs, sizeof(*args));
		argp = xcalloc(spec->nargs, sizeof(*argp));
		for (size_t i = 0; i < spec->nargs; i++) {
			Shoal__Arg a = SHOAL__ARG__INIT;
			args[i] = a;
			args[i].key = (char *)spec->arg_keys[i];
			args[i].value = (char *)spec->arg_values[i];
			argp[i] = &args[i];
		}
	}
	js.n_args = spec->nargs;
	js.args = argp;
	js.has_partitions = spec->partitions != 0;
	js.partitions = spec->partitions;
	js.has_partition_size = spec->partition_size != 0;
	js.partition_size = spec->partition_size;
	js.has_strategy = strategy != SHOAL__STRATEGY__STRATEGY_DEFAULT;
	js.strategy = strategy;
	js.has_priority = spec->priority != 0;
	js.priority = spec->priority;
	js.has_retries = spec->retries >= 0;
	js.retries = spec->retries >= 0 ? (uint32_t)spec->retries : 0;
	js.name = spec->name && spec->name[0] ? (char *)spec->name : NULL;
	js.has_cost = spec->cost != 0;
	js.cost = spec->cost;
	js.has_after = spec->after != 0;
	js.after = spec->after;
	js.has_task_timeout_ms = spec->task_timeout_ms != 0;
	js.task_timeout_ms = spec->task_timeout_ms;
	js.has_job_timeout_ms = spec->job_timeout_ms != 0;
	js.job_timeout_ms = spec->job_timeout_ms;
	submit.spec = &js;
	env.msg_case = SHOAL__ENVELOPE__MSG_SUBMIT;
	env.submit = &submit;

	call.on_message = submit_on_message;
	call.pump = upload_pump;
	client_send(c, &call, &env);
	/* An upload has no overall deadline (it may be many GiB); waiting for Submitted does.
	 * A connection lost once the job exists is replaced and the upload resumed where the
	 * master's copy ends (the master may have restarted). */
	for (int tries = 0;;) {
		rc = client_run(c, &call, call.fd < 0 ? CLIENT_REQUEST_TIMEOUT_MS : 0);
		if (rc != SHOAL_ECONN || !call.submitted || call.fd < 0)
			break;
		shoal_client *n = client_recover(c, rc, &tries);
		if (!n)
			break;
		c = n;
		call.done = false;
		call.rc = 0;
		upload_resume(c, &call);
	}
	if (rc == SHOAL_OK)
		*job_id = call.job_id;
out:
	for (size_t i = 0; i < nblobs; i++)
		if (blobs[i].fd >= 0)
			close(blobs[i].fd);
	free(blobs);
	free(filep);
	free(argp);
	free(args);
	free(call.chunk);
	free(call.replay);
	if (call.fd >= 0 && call.fd != STDIN_FILENO)
		close(call.fd);
	return rc;
}

/* ---- status, wait, cancel ---- */

static void job_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	const Shoal__JobInfo *j;

	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_JOB_UPDATE:
		j = env->job_update->job;
		if (!j || j->job_id != call->job_id)
			break; /* another job's news */
		job_info_from(call->info, j);
		if (!call->watching) {
			call_finish(c, call, SHOAL_OK, NULL);
			break;
		}
		if (call->progress)
			call->progress(call->info, call->progress_arg);
		if (!state_final(call->info->state))
			break;
		if (call->info->state == SHOAL_JOB_SUCCEEDED)
			call_finish(c, call, SHOAL_OK, NULL);
		else if (call->info->state == SHOAL_JOB_CANCELLED)
			call_finish(c, call, SHOAL_EJOB, "job %llu was cancelled",
			            (unsigned long long)call->job_id);
		else
			call_finish(c, call, SHOAL_EJOB, "job %llu failed: %s",
			            (unsigned long long)call->job_id,
			            call->info->error[0] ? call->info->error : "unknown error");
		break;
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (failure_matches(env->failure, call))
			call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

/* Sends a request naming job_id and waits for a JobUpdate about it. */
static int job_request(shoal_client *c, uint64_t job_id, Shoal__Envelope *env, bool watching,
                       shoal_progress_fn progress, void *arg, struct shoal_job_info *info)
{
	struct shoal_job_info tmp = {0};
	struct call call = {0};
	int rc;

	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	call.on_message = job_on_message;
	call.job_id = job_id;
	call.info = info ? info : &tmp;
	call.watching = watching;
	call.progress = progress;
	call.progress_arg = arg;
	client_send(c, &call, env);
	return client_run(c, &call, watching ? 0 : CLIENT_REQUEST_TIMEOUT_MS);
}

int shoal_wait(shoal_client *c, uint64_t job_id, shoal_progress_fn progress, void *arg,
               struct shoal_job_info *info)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Watch watch = SHOAL__WATCH__INIT;

	watch.job_id = job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_WATCH;
	env.watch = &watch;
	c = live(c);
	for (int tries = 0;;) {
		int rc = job_request(c, job_id, &env, true, progress, arg, info);
		shoal_client *n = client_recover(c, rc, &tries);
		if (!n)
			return rc;
		c = n; /* watch the job again on the new connection */
	}
}

int shoal_status(shoal_client *client, uint64_t job_id, struct shoal_job_info *info)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__StatusRequest req = SHOAL__STATUS_REQUEST__INIT;

	req.job_id = job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_STATUS_REQUEST;
	env.status_request = &req;
	return job_request(c, job_id, &env, false, NULL, NULL, info);
}

int shoal_cancel(shoal_client *client, uint64_t job_id)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__Cancel cancel = SHOAL__CANCEL__INIT;

	cancel.job_id = job_id;
	env.msg_case = SHOAL__ENVELOPE__MSG_CANCEL;
	env.cancel = &cancel;
	return job_request(c, job_id, &env, false, NULL, NULL, NULL);
}

/* ---- result ---- */

static void result_ack(shoal_client *c, struct call *call)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__ResultAck ack = SHOAL__RESULT_ACK__INIT;

	ack.job_id = call->job_id;
	ack.consumed = call->written;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_ACK;
	env.result_ack = &ack;
	client_send(c, call, &env);
	call->ack_sent = call->written;
}

static void result_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	const Shoal__ResultChunk *rc;

	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_RESULT_CHUNK:
		rc = env->result_chunk;
		if (rc->job_id != call->job_id)
			break;
		if (rc->offset != call->written) {
			char what[128];
			snprintf(what, sizeof(what),
			         "result chunk at offset %llu, expected offset %llu",
			         (unsigned long long)rc->offset, (unsigned long long)call->written);
			call_protocol_error(c, call, what);
			break;
		}
		if (rc->data.len && call->write(rc->data.data, rc->data.len, call->write_arg)) {
			call_finish(c, call, SHOAL_EUSAGE, "writing the result of job %llu failed",
			            (unsigned long long)call->job_id);
			break;
		}
		call->written += rc->data.len;
		if (rc->has_last && rc->last) {
			result_ack(c, call);
			call_finish(c, call, SHOAL_OK, NULL);
		} else if (call->written - call->ack_sent >= CLIENT_ACK_STEP) {
			result_ack(c, call);
		}
		break;
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (failure_matches(env->failure, call))
			call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

int shoal_result(shoal_client *c, uint64_t job_id, shoal_write_fn write, void *arg)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__FetchResult fetch = SHOAL__FETCH_RESULT__INIT;
	struct call call = {0};
	int rc;

	c = live(c);
	if (!write)
		return client_fail(c, SHOAL_EUSAGE, "no write callback");
	for (int tries = 0;;) {
		/* After a lost connection, the fetch resumes where the writer stopped. */
		uint64_t done = call.written;
		memset(&call, 0, sizeof(call));
		call.written = call.ack_sent = done;
		rc = client_check(c);
		if (rc == SHOAL_OK) {
			fetch.job_id = job_id;
			fetch.has_offset = true;
			fetch.offset = done;
			fetch.has_window = true;
			fetch.window = CLIENT_RESULT_WINDOW;
			env.msg_case = SHOAL__ENVELOPE__MSG_FETCH_RESULT;
			env.fetch_result = &fetch;
			call.on_message = result_on_message;
			call.job_id = job_id;
			call.write = write;
			call.write_arg = arg;
			client_send(c, &call, &env);
			/* No overall deadline: results may be large and the writer slow. */
			rc = client_run(c, &call, 0);
		}
		shoal_client *n = client_recover(c, rc, &tries);
		if (!n)
			return rc;
		c = n;
	}
}

/* ---- lists ---- */

static void list_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_JOB_LIST: {
		const Shoal__JobList *l = env->job_list;
		struct shoal_job_info *jobs = NULL;
		if (call->list_kind != LIST_JOBS)
			break;
		if (l->n_jobs)
			jobs = xcalloc(l->n_jobs, sizeof(*jobs));
		for (size_t i = 0; i < l->n_jobs; i++)
			job_info_from(&jobs[i], l->jobs[i]);
		call->list = jobs;
		call->nlist = l->n_jobs;
		call_finish(c, call, SHOAL_OK, NULL);
		break;
	}
	case SHOAL__ENVELOPE__MSG_WORKER_LIST: {
		const Shoal__WorkerList *l = env->worker_list;
		struct shoal_worker_info *ws = NULL;
		if (call->list_kind != LIST_WORKERS)
			break;
		if (l->n_workers)
			ws = xcalloc(l->n_workers, sizeof(*ws));
		for (size_t i = 0; i < l->n_workers; i++)
			worker_info_from(&ws[i], l->workers[i]);
		call->list = ws;
		call->nlist = l->n_workers;
		call_finish(c, call, SHOAL_OK, NULL);
		break;
	}
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (!env->failure->has_job_id)
			call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

static int list_request(shoal_client *c, int kind, void **list, size_t *n)
{
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__ListJobs lj = SHOAL__LIST_JOBS__INIT;
	Shoal__ListWorkers lw = SHOAL__LIST_WORKERS__INIT;
	struct call call = {0};
	int rc;

	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	if (kind == LIST_JOBS) {
		env.msg_case = SHOAL__ENVELOPE__MSG_LIST_JOBS;
		env.list_jobs = &lj;
	} else {
		env.msg_case = SHOAL__ENVELOPE__MSG_LIST_WORKERS;
		env.list_workers = &lw;
	}
	call.on_message = list_on_message;
	call.list_kind = kind;
	client_send(c, &call, &env);
	rc = client_run(c, &call, CLIENT_REQUEST_TIMEOUT_MS);
	if (rc != SHOAL_OK) {
		free(call.list);
		return rc;
	}
	*list = call.list;
	*n = call.nlist;
	return SHOAL_OK;
}

int shoal_jobs(shoal_client *client, struct shoal_job_info **jobs, size_t *n)
{
	shoal_client *c = live(client);
	void *list;
	int rc = list_request(c, LIST_JOBS, &list, n);

	if (rc == SHOAL_OK)
		*jobs = list;
	return rc;
}

int shoal_workers(shoal_client *client, struct shoal_worker_info **workers, size_t *n)
{
	shoal_client *c = live(client);
	void *list;
	int rc = list_request(c, LIST_WORKERS, &list, n);

	if (rc == SHOAL_OK)
		*workers = list;
	return rc;
}

/* ---- locks ---- */

static struct lease **lease_find(shoal_client *c, const char *name)
{
	struct lease **pp = &c->leases;

	while (*pp && strcmp((*pp)->name, name) != 0)
		pp = &(*pp)->next;
	return pp;
}

/* Records a grant or renewal of the lease. */
static void lease_confirm(shoal_client *c, const char *name, uint64_t token, uint32_t ttl_ms)
{
	struct lease **pp = lease_find(c, name);

	if (!*pp) {
		*pp = xcalloc(1, sizeof(**pp));
		(*pp)->name = xstrdup(name);
	}
	(*pp)->token = token;
	(*pp)->ttl_ms = ttl_ms;
	(*pp)->confirmed_us = mono_us();
}

static void lease_forget(shoal_client *c, const char *name)
{
	struct lease **pp = lease_find(c, name);
	struct lease *l = *pp;

	if (!l)
		return;
	*pp = l->next;
	free(l->name);
	free(l);
}

/* What the master checks (common/codec.c), checked first so that a bad name is a usage error
 * rather than a connection the master closes. */
static int lock_name_check(shoal_client *c, const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SHOAL_LOCK_NAME_MAX)
		return client_fail(c, SHOAL_EUSAGE, "a lock name has 1 to %u bytes",
		                   SHOAL_LOCK_NAME_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f)
			return client_fail(c, SHOAL_EUSAGE,
			                   "a lock name may not hold control characters");
	return SHOAL_OK;
}

static void lock_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_LOCK_GRANTED: {
		const Shoal__LockGranted *g = env->lock_granted;
		if (strcmp(g->name, call->lock_name) != 0 ||
		    (call->token && g->token != call->token))
			break; /* another lock's, or an earlier lease's */
		call->token = g->token;
		call->ttl_ms = g->ttl_ms;
		call_finish(c, call, SHOAL_OK, NULL);
		break;
	}
	case SHOAL__ENVELOPE__MSG_LOCK_LOST: {
		const Shoal__LockLost *l = env->lock_lost;
		/* Only a renewal (which knows its token) can be told its lease is gone. */
		if (!call->token || l->token != call->token ||
		    strcmp(l->name, call->lock_name) != 0)
			break;
		call_finish(c, call, SHOAL_EJOB, "lost lock %s (token %llu): %s", call->lock_name,
		            (unsigned long long)call->token,
		            l->reason && l->reason[0] ? l->reason : "no reason given");
		break;
	}
	case SHOAL__ENVELOPE__MSG_FAILURE:
		if (!env->failure->has_job_id)
			call_fail_with(c, call, env->failure);
		break;
	default:
		break;
	}
}

int shoal_lock_acquire(shoal_client *client, const char *name, uint32_t ttl_ms, uint64_t *token)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__LockAcquire req = SHOAL__LOCK_ACQUIRE__INIT;
	struct call call = {0};
	int rc;

	if ((rc = lock_name_check(c, name)) != SHOAL_OK)
		return rc;
	if (ttl_ms < SHOAL_LOCK_TTL_MIN_MS || ttl_ms > SHOAL_LOCK_TTL_MAX_MS)
		return client_fail(c, SHOAL_EUSAGE, "lock ttl %u ms is outside %u ms .. %u ms",
		                   ttl_ms, SHOAL_LOCK_TTL_MIN_MS, SHOAL_LOCK_TTL_MAX_MS);
	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	req.name = (char *)name;
	req.ttl_ms = ttl_ms;
	env.msg_case = SHOAL__ENVELOPE__MSG_LOCK_ACQUIRE;
	env.lock_acquire = &req;
	call.on_message = lock_on_message;
	call.lock_name = name;
	client_send(c, &call, &env);
	/* Waiting behind other holders has no deadline; a master that goes away ends it. */
	rc = client_run(c, &call, 0);
	if (rc == SHOAL_OK) {
		lease_confirm(c, name, call.token, call.ttl_ms);
		*token = call.token;
	}
	return rc;
}

int shoal_lock_renew(shoal_client *client, const char *name, uint64_t token)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	Shoal__LockRenew req = SHOAL__LOCK_RENEW__INIT;
	struct call call = {0};
	const struct lease *l;
	uint64_t now = mono_us(), timeout_ms = CLIENT_REQUEST_TIMEOUT_MS;
	int rc;

	if ((rc = lock_name_check(c, name)) != SHOAL_OK)
		return rc;
	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	/* An answer later than the lease's end is worthless: by then the lock may be someone
	 * else's. Wait until then (at least 1 ms: the master's clock is not ours). */
	l = *lease_find(c, name);
	if (l && l->token == token) {
		uint64_t end = l->confirmed_us + (uint64_t)l->ttl_ms * 1000;
		timeout_ms = end > now + 1000 ? (end - now) / 1000 : 1;
	}
	req.name = (char *)name;
	req.token = token;
	env.msg_case = SHOAL__ENVELOPE__MSG_LOCK_RENEW;
	env.lock_renew = &req;
	call.on_message = lock_on_message;
	call.lock_name = name;
	call.token = token;
	client_send(c, &call, &env);
	rc = client_run(c, &call, timeout_ms);
	if (rc == SHOAL_OK) {
		lease_confirm(c, name, token, call.ttl_ms);
	} else if (rc == SHOAL_ECONN && !c->lost) {
		rc = client_fail(c, SHOAL_ECONN,
		                 "the master at %s did not renew lock %s (token %llu) within its "
		                 "lease (%llu ms)",
		                 c->addr, name, (unsigned long long)token,
		                 (unsigned long long)timeout_ms);
	}
	if (rc == SHOAL_EJOB)
		lease_forget(c, name);
	return rc;
}

/* LockRelease has no answer; the answer to a request sent after it proves that the master has
 * read it (one connection, in order). A status request for job 0 is the cheapest: it is
 * answered at once with a Failure naming no job. */
static void sync_on_message(shoal_client *c, struct call *call, const Shoal__Envelope *env)
{
	if (env->msg_case == SHOAL__ENVELOPE__MSG_FAILURE && !env->failure->has_job_id)
		call_finish(c, call, SHOAL_OK, NULL);
}

int shoal_lock_release(shoal_client *client, const char *name, uint64_t token)
{
	shoal_client *c = live(client);
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT, sync = SHOAL__ENVELOPE__INIT;
	Shoal__LockRelease req = SHOAL__LOCK_RELEASE__INIT;
	Shoal__StatusRequest status = SHOAL__STATUS_REQUEST__INIT;
	struct call call = {0};
	int rc;

	if ((rc = lock_name_check(c, name)) != SHOAL_OK)
		return rc;
	lease_forget(c, name);
	if ((rc = client_check(c)) != SHOAL_OK)
		return rc;
	req.name = (char *)name;
	req.token = token;
	env.msg_case = SHOAL__ENVELOPE__MSG_LOCK_RELEASE;
	env.lock_release = &req;
	status.job_id = 0;
	sync.msg_case = SHOAL__ENVELOPE__MSG_STATUS_REQUEST;
	sync.status_request = &status;
	call.on_message = sync_on_message;
	client_send(c, &call, &env);
	client_send(c, &call, &sync);
	return client_run(c, &call, CLIENT_REQUEST_TIMEOUT_MS);
}
