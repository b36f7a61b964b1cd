/* conn.c: one framed connection on a libuv TCP stream.
 *
 * Output: conn_send packs each envelope straight into `out`; a flush handle writes it once
 * per loop iteration (uv_try_write first, the remainder handed to uv_write with the buffer
 * owned by the request). The flush handle is a uv_idle_t rather than a uv_prepare_t: both run
 * just before the loop polls, but a prepare handle started during the prepare phase (say by an
 * on_drain that sends on another conn) would wait for the *next* iteration while the loop
 * blocks in poll; an active idle handle makes that poll non-blocking, so no bytes are ever
 * left waiting for unrelated I/O.
 *
 * Input: the frame decoder lends its own buffer to libuv, and every complete frame is
 * unpacked, validated and handed to on_message.
 *
 * TLS (conn_set_tls): libuv reads ciphertext into a buffer of the conn's own, the session
 * (tls.c) decrypts it into the frame decoder's space, and frames are handled as above. On
 * the way out, the plaintext queued in `out` is encrypted at flush time (once the handshake is
 * done; until then it waits) and the ciphertext, with any handshake or alert bytes, goes out
 * from `wire` the same way `out` does on a plain conn. A TLS listener that receives plain
 * frames answers with a plain Refusal saying so, and a plain side that receives a TLS
 * handshake answers with a plain Refusal too (which the TLS peer recognises as "not TLS"), so
 * mixing the two never hangs, and both ends know it is a configuration error
 * (conn_tls_mismatch), not a network one worth retrying.
 *
 * Lifetime: the conn owns up to three handles (tcp, flush, optional idle timer) and up to
 * a few requests (getaddrinfo, connect, writes). conn_close closes the handles; on_close runs
 * when the last handle's close callback has run, and the memory is freed once no request
 * still points at it (a getaddrinfo running in the thread pool cannot be cancelled). */
#include "conn.h"

#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "buf.h"
#include "codec.h"
#include "frame.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define CONN_SUBSYS "conn"
/* Keepalive: probes start after CONN_KEEPALIVE_S idle seconds and go every
 * CONN_KEEPALIVE_INTVL_S; CONN_KEEPALIVE_CNT unanswered ones declare the peer dead, so an idle
 * connection to a vanished host (power loss, a cut cable: no FIN, no RST) ends within about a
 * minute instead of the kernel default of more than two hours. */
#define CONN_KEEPALIVE_S       30
#define CONN_KEEPALIVE_INTVL_S 10
#define CONN_KEEPALIVE_CNT     3
/* An output buffer this large is given back after a burst instead of being kept for reuse. */
#define CONN_OUT_KEEP (1u << 20)
/* TLS: ciphertext read per libuv read callback (a few maximal TLS records). */
#define CONN_TLS_IN (64u << 10)

enum conn_state {
	CONN_NEW = 0,    /* created, neither started nor connecting */
	CONN_CONNECTING, /* resolving or connecting */
	CONN_OPEN,       /* reading and writing */
};

struct conn {
	uv_tcp_t tcp;
	uv_idle_t flush; /* active while `out` holds bytes to write */
	uv_timer_t idle;
	uv_loop_t *loop;
	struct conn_limits limits;
	struct conn_callbacks cb;
	void *data;
	uint64_t id;

	struct frame_decoder dec;
	struct buf out;  /* queued, not yet handed to the kernel or to uv_write */
	size_t inflight; /* bytes owned by uv_write requests */

	/* TLS (conn_set_tls); all NULL/empty on a plain conn */
	struct tls_ctx *tls_ctx; /* borrowed; the session keeps OpenSSL's reference */
	struct tls_session *tls; /* owned; created when the connection opens */
	uint8_t *tls_in;         /* owned; ciphertext read buffer */
	struct buf wire;         /* ciphertext not yet handed to the kernel or to uv_write */
	bool tls_ready;          /* the handshake completed (logged once) */
	bool got_frame;          /* a frame was decoded (plain conns: TLS detection) */
	bool tls_mismatch;       /* closed because one side speaks TLS and the other does not */
	char host[256];          /* conn_connect's host, checked against the certificate */

	enum conn_state state;
	bool closing;      /* checked first by every callback */
	bool reading;      /* uv_read_start is in effect */
	bool above_high;   /* the queue passed write_high; waiting for write_low */
	bool paused;       /* the owner asked not to read (conn_pause_reading) */
	bool has_idle;     /* the idle timer handle was initialised */
	bool tcp_retrying; /* tcp is being closed to connect to the next address */
	bool tcp_gone;     /* tcp could not be re-initialised after a retry close */
	bool closed_cb;    /* on_close has run */
	int handles;       /* initialised handles whose close callback has not run */
	int reqs;          /* outstanding requests pointing at this conn */

	/* conn_connect */
	uv_getaddrinfo_t *gai; /* resolution in progress */
	struct addrinfo *ai_list;
	struct addrinfo *ai_next;
	uv_connect_t connect_req;
	int last_connect_err;
	char target[300]; /* "host:port" for messages */

	char peer[64];
	char reason[512];
};

struct conn_write {
	uv_write_t req;
	uint8_t *data; /* owned: the output buffer stolen from the conn */
	size_t len;    /* bytes handed to uv_write */
};

/* Bytes received and sent by every connection of the process (the loop's thread only). */
static uint64_t conn_bytes_in, conn_bytes_out;

void conn_totals(uint64_t *in, uint64_t *out)
{
	*in = conn_bytes_in;
	*out = conn_bytes_out;
}

static atomic_uint_fast64_t conn_next_id = 1;

static void conn_flush_now(struct conn *c);
static void conn_try_connect(struct conn *c);
static void conn_on_flush(uv_idle_t *h);

void conn_limits_default(struct conn_limits *l)
{
	l->max_frame = FRAME_DEFAULT_MAX;
	l->write_high = 4u << 20;
	l->write_low = 1u << 20;
	l->write_max = (size_t)256u << 20;
	l->idle_ms = 0;
	l->unpack_budget = CODEC_BUDGET_DEFAULT;
}

/* ---- lifetime ---- */

/* Runs on_close once all handles are closed, and frees the conn once nothing refers to it. */
static void conn_maybe_finish(struct conn *c)
{
	if (c->handles > 0)
		return;
	if (!c->closed_cb) {
		c->closed_cb = true;
		if (c->cb.on_close != NULL)
			c->cb.on_close(c, c->reason);
	}
	if (c->reqs > 0)
		return;
	if (c->ai_list != NULL)
		uv_freeaddrinfo(c->ai_list);
	frame_decoder_deinit(&c->dec);
	buf_free(&c->out);
	buf_free(&c->wire);
	tls_session_destroy(&c->tls);
	free(c->tls_in);
	free(c);
}

static void conn_on_handle_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	c->handles--;
	conn_maybe_finish(c);
}

void conn_close(struct conn *c, const char *reason)
{
	if (c == NULL || c->closing)
		return;
	c->closing = true;
	snprintf(c->reason, sizeof(c->reason), "%s", reason != NULL ? reason : "closed");
	log_debug(CONN_SUBSYS, "conn=%" PRIu64 " peer=%s closing: %s", c->id, c->peer, c->reason);

	/* Best effort, never blocking: a last message (a Refusal, say) usually fits the socket
	 * buffer; uv_close would otherwise drop it. Pointless once writes are queued in libuv.
	 * With TLS the last plaintext is encrypted and followed by a close_notify. */
	if (c->tls != NULL && tls_session_ready(c->tls)) {
		if (c->out.len > 0 && tls_session_write(c->tls, c->out.data, c->out.len) < 0)
			buf_reset(&c->out);
		tls_session_close(c->tls);
		(void)tls_session_take(c->tls, &c->wire);
	}
	struct buf *wire = c->tls != NULL ? &c->wire : &c->out;
	if (c->state == CONN_OPEN && c->inflight == 0 && wire->len > 0) {
		uv_buf_t b = {.base = (char *)wire->data, .len = wire->len};
		(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	}
	buf_free(&c->out);
	buf_free(&c->wire);

	if (c->reading)
		uv_read_stop((uv_stream_t *)&c->tcp);
	c->reading = false;
	uv_idle_stop(&c->flush);
	uv_close((uv_handle_t *)&c->flush, conn_on_handle_close);
	if (c->has_idle) {
		uv_timer_stop(&c->idle);
		uv_close((uv_handle_t *)&c->idle, conn_on_handle_close);
	}
	/* Pending connect and write requests complete with UV_ECANCELED before tcp's close
	 * callback. While tcp is being closed for a connect retry, that close callback counts
	 * it instead. */
	if (!c->tcp_retrying && !c->tcp_gone)
		uv_close((uv_handle_t *)&c->tcp, conn_on_handle_close);
	/* A resolution still queued for the thread pool ends now with UV_EAI_CANCELED; one
	 * already running keeps the memory alive (reqs) until its callback. */
	if (c->gai != NULL)
		(void)uv_cancel((uv_req_t *)c->gai);
}

/* Closes with a reason worth a warning (the peer misbehaved). */
static void conn_fail(struct conn *c, const char *reason)
{
	log_warn(CONN_SUBSYS, "conn=%" PRIu64 " peer=%s closing: %s", c->id, c->peer, reason);
	conn_close(c, reason);
}

struct conn *conn_create(uv_loop_t *loop, const struct conn_limits *limits,
                         const struct conn_callbacks *cb, void *data)
{
	struct conn *c = xcalloc(1, sizeof(*c));
	c->loop = loop;
	if (limits != NULL)
		c->limits = *limits;
	else
		conn_limits_default(&c->limits);
	if (cb != NULL)
		c->cb = *cb;
	c->data = data;
	c->id = atomic_fetch_add(&conn_next_id, 1);
	snprintf(c->peer, sizeof(c->peer), "?");

	if (uv_tcp_init(loop, &c->tcp) != 0) {
		free(c);
		return NULL;
	}
	c->tcp.data = c;
	c->handles++;
	uv_idle_init(loop, &c->flush);
	c->flush.data = c;
	c->handles++;
	if (c->limits.idle_ms > 0) {
		uv_timer_init(loop, &c->idle);
		c->idle.data = c;
		c->has_idle = true;
		c->handles++;
	}
	frame_decoder_init(&c->dec, c->limits.max_frame);
	return c;
}

/* ---- reading ---- */

static void conn_on_idle(uv_timer_t *t)
{
	struct conn *c = t->data;
	if (c->closing)
		return;
	char why[64];
	snprintf(why, sizeof(why), "idle for %" PRIu64 " ms", c->limits.idle_ms);
	conn_close(c, why);
}

static void conn_idle_restart(struct conn *c)
{
	if (c->has_idle && !c->closing)
		uv_timer_start(&c->idle, conn_on_idle, c->limits.idle_ms, 0);
}

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;
	(void)suggested;
	if (c->closing) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	if (c->tls != NULL) {
		b->base = (char *)c->tls_in;
		b->len = CONN_TLS_IN;
		return;
	}
	uint8_t *p;
	size_t n;
	frame_decoder_space(&c->dec, &p, &n);
	b->base = (char *)p;
	b->len = n;
}

/* Unpacks, validates and delivers one frame. Returns 0, or -1 after closing the conn. */
static int conn_deliver(struct conn *c, const uint8_t *payload, uint32_t len)
{
	char err[256];
	char why[320];
	Shoal__Envelope *env =
	    codec_unpack(payload, len, c->limits.unpack_budget, err, sizeof(err));
	if (env == NULL) {
		snprintf(why, sizeof(why), "bad message: %s", err);
		conn_fail(c, why);
		return -1;
	}
	if (codec_validate(env, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "invalid %s: %s", codec_kind_name(env), err);
		codec_free(env);
		conn_fail(c, why);
		return -1;
	}
	if (c->cb.on_message != NULL)
		c->cb.on_message(c, env);
	codec_free(env);
	return 0;
}

/* One side speaks TLS and the other does not: a plain Refusal (which a TLS peer recognises as
 * "not TLS", and a plain one can read) goes into dst, marked permanent since retrying with
 * the same configuration cannot succeed. */
static void conn_refuse_mismatch(struct conn *c, struct buf *dst, const char *reason)
{
	Shoal__Refusal r = SHOAL__REFUSAL__INIT;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	r.reason = (char *)reason;
	r.has_permanent = true;
	r.permanent = true;
	env.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
	env.refusal = &r;
	size_t size = codec_frame_size(&env);
	codec_pack_frame(&env, buf_reserve(dst, size));
	dst->len += size;
	c->tls_mismatch = true;
}

/* Handles every complete frame in the decoder. Returns 0, or -1 once the conn is closing. */
static int conn_process_frames(struct conn *c)
{
	for (;;) {
		const uint8_t *payload;
		uint32_t len;
		enum frame_status st = frame_decoder_next(&c->dec, &payload, &len);
		if (st == FRAME_NEED_MORE)
			return 0;
		if (st != FRAME_READY) {
			char why[256];
			if (c->tls == NULL && !c->got_frame &&
			    tls_looks_like_hello(c->dec.buf + c->dec.start,
			                         c->dec.len - c->dec.start)) {
				snprintf(
				    why, sizeof(why),
				    "the peer started a TLS handshake, but TLS is not configured "
				    "here (give shoal-master --tls-cert and --tls-key, or drop "
				    "--tls-ca on the peer)");
				conn_refuse_mismatch(c, &c->out, why);
			} else if (st == FRAME_ERR_TOO_LARGE)
				snprintf(why, sizeof(why),
				         "frame length %" PRIu32 " exceeds the maximum %" PRIu32,
				         c->dec.claimed, c->dec.max);
			else
				snprintf(why, sizeof(why), "%s", frame_status_str(st));
			conn_fail(c, why);
			return -1;
		}
		c->got_frame = true;
		if (conn_deliver(c, payload, len) < 0)
			return -1;
		/* on_message may have closed us: no more callbacks after conn_close. */
		if (c->closing)
			return -1;
	}
}

static void conn_flush_soon(struct conn *c)
{
	if (c->state == CONN_OPEN && !c->closing && !uv_is_active((uv_handle_t *)&c->flush))
		uv_idle_start(&c->flush, conn_on_flush);
}

/* TLS: n ciphertext bytes arrived in tls_in. */
static void conn_tls_input(struct conn *c, size_t n)
{
	if (tls_session_feed(c->tls, c->tls_in, n) < 0) {
		if (tls_session_peer_plain(c->tls)) {
			/* A listener tells the plain peer why, in plain frames. */
			if (tls_ctx_role(c->tls_ctx) == TLS_SERVER)
				conn_refuse_mismatch(c, &c->wire, tls_session_error(c->tls));
			c->tls_mismatch = true;
		}
		conn_fail(c, tls_session_error(c->tls));
		return;
	}
	conn_idle_restart(c);
	for (;;) {
		uint8_t *p;
		size_t room;
		frame_decoder_space(&c->dec, &p, &room);
		ssize_t got = tls_session_read(c->tls, p, room);
		if (got == 0)
			break;
		if (got == TLS_READ_EOF) {
			size_t have = c->dec.len - c->dec.start;
			if (have > 0) {
				char why[128];
				snprintf(why, sizeof(why),
				         "peer closed mid-frame (%zu bytes of a frame)", have);
				conn_fail(c, why);
			} else {
				conn_close(c, "peer closed");
			}
			return;
		}
		if (got < 0) {
			/* The alert telling the peer why goes out with the close. */
			(void)tls_session_take(c->tls, &c->wire);
			conn_fail(c, tls_session_error(c->tls));
			return;
		}
		frame_decoder_commit(&c->dec, (size_t)got);
		if (conn_process_frames(c) < 0)
			return;
	}
	if (!c->tls_ready && tls_session_ready(c->tls)) {
		char what[128];
		c->tls_ready = true;
		tls_session_describe(c->tls, what, sizeof(what));
		log_debug(CONN_SUBSYS, "conn=%" PRIu64 " peer=%s tls=\"%s\"", c->id, c->peer, what);
	}
	/* Handshake replies, and plaintext that waited for the handshake. */
	conn_flush_soon(c);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct conn *c = s->data;
	(void)b;
	if (c->closing)
		return;
	if (nread < 0) {
		char why[320];
		size_t have = c->dec.len - c->dec.start;
		if (nread != UV_EOF) {
			snprintf(why, sizeof(why), "read error: %s", uv_strerror((int)nread));
			conn_close(c, why);
		} else if (c->tls != NULL && !tls_session_ready(c->tls)) {
			if (tls_ctx_role(c->tls_ctx) == TLS_CLIENT)
				snprintf(
				    why, sizeof(why),
				    "the master closed the connection during the TLS handshake "
				    "(does it serve TLS? it needs --tls-cert and --tls-key; see "
				    "its log for why)");
			else
				snprintf(
				    why, sizeof(why),
				    "the peer closed the connection during the TLS handshake "
				    "(does it trust this master's certificate? see its error)");
			conn_fail(c, why);
		} else if (have > 0) {
			snprintf(why, sizeof(why), "peer closed mid-frame (%zu bytes of a frame)",
			         have);
			conn_fail(c, why);
		} else {
			conn_close(c, "peer closed");
		}
		return;
	}
	if (nread == 0)
		return;
	if (c->tls != NULL) {
		conn_tls_input(c, (size_t)nread);
		return;
	}
	frame_decoder_commit(&c->dec, (size_t)nread);
	conn_bytes_in += (uint64_t)nread;
	conn_idle_restart(c);
	(void)conn_process_frames(c);
}

/* Reads exactly when open, not closing and not held back by a full write queue. */
static void conn_update_reading(struct conn *c)
{
	bool want = c->state == CONN_OPEN && !c->closing && !c->above_high && !c->paused;
	if (want == c->reading)
		return;
	if (want) {
		int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
		if (rc < 0) {
			char why[128];
			snprintf(why, sizeof(why), "cannot read: %s", uv_strerror(rc));
			conn_close(c, why);
			return;
		}
		c->reading = true;
		conn_idle_restart(c);
	} else {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
		/* Not reading is not the peer being idle. */
		if (c->has_idle)
			uv_timer_stop(&c->idle);
	}
}

/* ---- writing ---- */

size_t conn_pending(const struct conn *c)
{
	return c->out.len + c->wire.len + c->inflight;
}

bool conn_writable(const struct conn *c)
{
	return !c->closing && conn_pending(c) <= c->limits.write_high;
}

/* Resumes reading and tells the owner once the queue has fallen to write_low. */
static void conn_check_drain(struct conn *c)
{
	if (c->closing || !c->above_high || conn_pending(c) > c->limits.write_low)
		return;
	c->above_high = false;
	conn_update_reading(c);
	if (!c->closing && c->cb.on_drain != NULL)
		c->cb.on_drain(c);
}

static void conn_on_write(uv_write_t *req, int status)
{
	struct conn_write *w = (struct conn_write *)req;
	struct conn *c = req->handle->data;
	c->inflight -= w->len;
	c->reqs--;
	free(w->data);
	free(w);
	if (c->closing) {
		conn_maybe_finish(c);
		return;
	}
	if (status < 0) {
		char why[128];
		snprintf(why, sizeof(why), "write error: %s", uv_strerror(status));
		conn_close(c, why);
		return;
	}
	conn_check_drain(c);
}

/* TLS: encrypts the queued plaintext (once the handshake allows) and collects every
 * ciphertext byte to send in `wire`. Returns 0, or -1 after closing the conn. */
static int conn_tls_seal(struct conn *c)
{
	if (tls_session_ready(c->tls) && c->out.len > 0) {
		if (tls_session_write(c->tls, c->out.data, c->out.len) < 0) {
			conn_fail(c, tls_session_error(c->tls));
			return -1;
		}
		buf_reset(&c->out);
		if (c->out.cap > CONN_OUT_KEEP)
			buf_free(&c->out);
	}
	(void)tls_session_take(c->tls, &c->wire);
	return 0;
}

static void conn_flush_now(struct conn *c)
{
	uv_idle_stop(&c->flush);
	if (c->closing || c->state != CONN_OPEN)
		return;
	if (c->tls != NULL && conn_tls_seal(c) < 0)
		return;
	/* What goes to the socket: the frames themselves, or their ciphertext. */
	struct buf *wire = c->tls != NULL ? &c->wire : &c->out;
	if (wire->len == 0)
		return;

	size_t done = 0;
	/* A direct write is only allowed when nothing is queued in libuv (ordering). */
	if (c->inflight == 0) {
		uv_buf_t b = {.base = (char *)wire->data, .len = wire->len};
		int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
		if (n < 0 && n != UV_EAGAIN) {
			char why[128];
			snprintf(why, sizeof(why), "write error: %s", uv_strerror(n));
			conn_close(c, why);
			return;
		}
		if (n > 0)
			done = (size_t)n;
	}
	conn_bytes_out += done;
	if (done == wire->len) {
		buf_reset(wire);
		if (wire->cap > CONN_OUT_KEEP)
			buf_free(wire);
		conn_check_drain(c);
		return;
	}

	/* The remainder goes to uv_write, which owns the whole buffer until its callback. */
	struct conn_write *w = xmalloc(sizeof(*w));
	size_t total;
	w->data = buf_steal(wire, &total);
	w->len = total - done;
	uv_buf_t b = {.base = (char *)w->data + done, .len = w->len};
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, conn_on_write);
	if (rc == 0)
		conn_bytes_out += w->len;
	if (rc < 0) {
		free(w->data);
		free(w);
		char why[128];
		snprintf(why, sizeof(why), "write error: %s", uv_strerror(rc));
		conn_close(c, why);
		return;
	}
	c->inflight += w->len;
	c->reqs++;
	conn_check_drain(c);
}

static void conn_on_flush(uv_idle_t *h)
{
	struct conn *c = h->data;
	if (c->closing) {
		uv_idle_stop(h);
		return;
	}
	conn_flush_now(c);
}

void conn_flush(struct conn *c)
{
	conn_flush_now(c);
}

int conn_send(struct conn *c, const Shoal__Envelope *env)
{
	if (c->closing)
		return -EPIPE;
	size_t size = codec_frame_size(env);
	if (size - FRAME_HEADER_SIZE > c->limits.max_frame)
		return -EMSGSIZE;
	codec_pack_frame(env, buf_reserve(&c->out, size));
	c->out.len += size;

	size_t pending = conn_pending(c);
	if (pending > c->limits.write_max) {
		char why[96];
		snprintf(why, sizeof(why), "peer too slow: %zu bytes queued", pending);
		conn_fail(c, why);
		return -ENOBUFS;
	}
	if (pending > c->limits.write_high && !c->above_high) {
		/* Stop reading so a peer flooding us with requests is slowed down too. */
		c->above_high = true;
		conn_update_reading(c);
	}
	conn_flush_soon(c);
	return 0;
}

/* ---- starting ---- */

static void conn_fill_peer(struct conn *c)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
		snprintf(c->peer, sizeof(c->peer), "?");
	else
		addr_format(&ss, c->peer, sizeof(c->peer));
}

/* An IPPROTO_TCP option on the connection's socket: 0 or a negative errno. */
static int conn_set_sockopt(struct conn *c, int opt, int value)
{
	uv_os_fd_t fd;
	int rc = uv_fileno((const uv_handle_t *)&c->tcp, &fd);
	if (rc < 0)
		return rc;
	if (setsockopt(fd, IPPROTO_TCP, opt, &value, sizeof(value)) < 0)
		return -errno;
	return 0;
}

int conn_set_user_timeout(struct conn *c, uint32_t ms)
{
	if (c->closing || c->state != CONN_OPEN)
		return UV_EINVAL;
	return conn_set_sockopt(c, TCP_USER_TIMEOUT, ms > INT32_MAX ? INT32_MAX : (int)ms);
}

int conn_local_ip(const struct conn *c, char *out, size_t len)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	if (c->state != CONN_OPEN)
		return UV_ENOTCONN;
	int rc = uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &sslen);
	if (rc == 0)
		rc = uv_ip_name((const struct sockaddr *)&ss, out, len);
	return rc;
}

/* Common to both sides once the TCP connection exists. */
static int conn_open(struct conn *c)
{
	/* Small frames must not wait for Nagle; dead peers must eventually be noticed. */
	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, CONN_KEEPALIVE_S);
	conn_set_sockopt(c, TCP_KEEPINTVL, CONN_KEEPALIVE_INTVL_S);
	conn_set_sockopt(c, TCP_KEEPCNT, CONN_KEEPALIVE_CNT);
	conn_fill_peer(c);
	c->state = CONN_OPEN;
	if (c->tls_ctx != NULL) {
		c->tls = tls_session_create(c->tls_ctx, c->host[0] != '\0' ? c->host : NULL);
		c->tls_in = xmalloc(CONN_TLS_IN);
		/* A client speaks first: its ClientHello goes out with the first flush. */
		if (tls_session_handshake(c->tls) < 0)
			return UV_EPROTO;
	}
	int rc = uv_read_start((uv_stream_t *)&c->tcp, conn_on_alloc, conn_on_read);
	if (rc < 0)
		return rc;
	c->reading = true;
	conn_idle_restart(c);
	/* Sends queued before the connection existed (and a ClientHello) go out this
	 * iteration. */
	if (c->out.len > 0 || c->tls != NULL)
		uv_idle_start(&c->flush, conn_on_flush);
	/* A queue already above the high mark keeps reading stopped. */
	conn_update_reading(c);
	return 0;
}

int conn_start(struct conn *c)
{
	if (c->closing)
		return UV_EPIPE;
	if (c->state != CONN_NEW)
		return UV_EALREADY;
	return conn_open(c);
}

/* Reports a connect failure, then closes (on_close follows). */
static void conn_connect_failed(struct conn *c, int err, const char *what)
{
	char why[sizeof(c->target) + 128];
	snprintf(why, sizeof(why), "%s %s: %s", what, c->target, uv_strerror(err));
	if (c->cb.on_connect != NULL)
		c->cb.on_connect(c, err);
	conn_close(c, why);
}

static void conn_on_retry_close(uv_handle_t *h)
{
	struct conn *c = h->data;
	c->tcp_retrying = false;
	if (c->closing) {
		c->handles--;
		conn_maybe_finish(c);
		return;
	}
	/* A fresh handle: the old socket may have the wrong family or a failed state. */
	if (uv_tcp_init(c->loop, &c->tcp) != 0) {
		/* Without a tcp handle there is nothing left to close. */
		c->handles--;
		c->tcp_gone = true;
		conn_connect_failed(c, UV_ENOMEM, "cannot connect to");
		return;
	}
	c->tcp.data = c;
	conn_try_connect(c);
}

/* One address failed: move to the next one, or give up. */
static void conn_connect_next(struct conn *c, int err)
{
	c->last_connect_err = err;
	if (c->ai_next == NULL) {
		conn_connect_failed(c, err, "cannot connect to");
		return;
	}
	c->tcp_retrying = true;
	uv_close((uv_handle_t *)&c->tcp, conn_on_retry_close);
}

static void conn_on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	c->reqs--;
	if (c->closing) {
		conn_maybe_finish(c);
		return;
	}
	if (status < 0) {
		conn_connect_next(c, status);
		return;
	}
	uv_freeaddrinfo(c->ai_list);
	c->ai_list = c->ai_next = NULL;
	int rc = conn_open(c);
	if (rc < 0) {
		conn_connect_failed(c, rc, "cannot read from");
		return;
	}
	log_debug(CONN_SUBSYS, "conn=%" PRIu64 " peer=%s connected", c->id, c->peer);
	if (c->cb.on_connect != NULL)
		c->cb.on_connect(c, 0);
}

static void conn_try_connect(struct conn *c)
{
	struct addrinfo *ai = c->ai_next;
	c->ai_next = ai->ai_next;
	c->connect_req.data = c;
	int rc = uv_tcp_connect(&c->connect_req, &c->tcp, ai->ai_addr, conn_on_connect);
	if (rc < 0) {
		conn_connect_next(c, rc);
		return;
	}
	c->reqs++;
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct conn *c = req->data;
	free(req);
	c->gai = NULL;
	c->reqs--;
	if (c->closing) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		conn_maybe_finish(c);
		return;
	}
	if (status < 0 || res == NULL) {
		if (res != NULL)
			uv_freeaddrinfo(res);
		conn_connect_failed(c, status < 0 ? status : UV_EAI_NONAME, "cannot resolve");
		return;
	}
	c->ai_list = c->ai_next = res;
	conn_try_connect(c);
}

int conn_connect(struct conn *c, const char *host, uint16_t port)
{
	if (c->closing)
		return UV_EPIPE;
	if (c->state != CONN_NEW)
		return UV_EALREADY;
	char service[8];
	snprintf(service, sizeof(service), "%u", port);
	snprintf(c->host, sizeof(c->host), "%s", host);
	if (strchr(host, ':') != NULL)
		snprintf(c->target, sizeof(c->target), "[%s]:%u", host, port);
	else
		snprintf(c->target, sizeof(c->target), "%s:%u", host, port);

	struct addrinfo hints;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	uv_getaddrinfo_t *req = xmalloc(sizeof(*req));
	req->data = c;
	int rc = uv_getaddrinfo(c->loop, req, conn_on_resolved, host, service, &hints);
	if (rc < 0) {
		free(req);
		return rc;
	}
	c->gai = req;
	c->reqs++;
	c->state = CONN_CONNECTING;
	return 0;
}

/* ---- accessors ---- */

uv_tcp_t *conn_tcp(struct conn *c)
{
	return &c->tcp;
}

void conn_set_tls(struct conn *c, struct tls_ctx *ctx)
{
	c->tls_ctx = ctx;
}

bool conn_tls_mismatch(const struct conn *c)
{
	return c->tls_mismatch;
}

bool conn_is_tls(const struct conn *c)
{
	return c->tls_ctx != NULL;
}

void conn_pause_reading(struct conn *c, bool pause)
{
	if (c->paused == pause)
		return;
	c->paused = pause;
	conn_update_reading(c);
}

bool conn_closing(const struct conn *c)
{
	return c->closing;
}

void *conn_data(const struct conn *c)
{
	return c->data;
}

void conn_set_data(struct conn *c, void *data)
{
	c->data = data;
}

const char *conn_peer(const struct conn *c)
{
	return c->peer;
}

uint64_t conn_id(const struct conn *c)
{
	return c->id;
}
