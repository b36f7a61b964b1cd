/* Unit tests for conn.c on a real loopback loop: delivery and ordering both ways, coalesced
 * sends, bad peers closed while the listener keeps serving, back-pressure, write_max, idle
 * timeout, connect failures, and a clean uv_loop_close() after every test. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "codec.h"
#include "conn.h"

#define TEST_MANY 10000

struct test_ctx {
	uv_loop_t loop;
	uv_tcp_t listener;
	bool listener_open;
	int port;

	/* server side: conns made by the listener */
	struct conn_limits server_limits;
	struct conn_callbacks server_cb;
	bool server_raw; /* accept into raw_server instead of a conn */
	struct conn *server;
	int server_accepts;
	int server_closes;
	char server_reason[256];
	long server_got;
	bool server_order_ok;

	/* client side */
	struct conn_limits client_limits;
	struct conn *client;
	int client_connects;
	int connect_status;
	int client_closes;
	char client_reason[256];
	long client_got;
	bool client_order_ok;
	int drains;
	int messages_after_close;
	bool closed;

	/* raw peers (no conn): a misbehaving client, or a server that does not read */
	uv_tcp_t raw;
	bool raw_open;
	uv_connect_t raw_connect;
	uv_write_t raw_write;
	const uint8_t *raw_bytes;
	size_t raw_len;
	bool raw_close_after_write;
	char raw_rbuf[65536];
	size_t raw_read_bytes;
	int raw_eof;

	uv_timer_t timer;
	bool timer_open;
	uv_prepare_t app_prepare;
	int send_rc;
	long sent;
	bool got_before_drain;
	uint64_t last_fill;
	int phase;
	int garbage_case;
};

static void test_ctx_init(struct test_ctx *t)
{
	memset(t, 0, sizeof(*t));
	ck_assert_int_eq(uv_loop_init(&t->loop), 0);
	t->loop.data = t;
	conn_limits_default(&t->server_limits);
	conn_limits_default(&t->client_limits);
	t->server_order_ok = true;
	t->client_order_ok = true;
}

static void test_on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void test_close_listener(struct test_ctx *t)
{
	if (t->listener_open) {
		t->listener_open = false;
		uv_close((uv_handle_t *)&t->listener, test_on_handle_closed);
	}
}

static void test_close_raw(struct test_ctx *t)
{
	if (t->raw_open) {
		t->raw_open = false;
		uv_close((uv_handle_t *)&t->raw, test_on_handle_closed);
	}
}

static void test_close_timer(struct test_ctx *t)
{
	if (t->timer_open) {
		t->timer_open = false;
		uv_close((uv_handle_t *)&t->timer, test_on_handle_closed);
	}
}

/* Runs the loop to completion and checks that nothing was left open. */
static void test_finish(struct test_ctx *t)
{
	ck_assert_int_eq(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
	int rc = uv_loop_close(&t->loop);
	if (rc != 0)
		uv_print_all_handles(&t->loop, stderr);
	ck_assert_int_eq(rc, 0);
}

static void test_on_connection(uv_stream_t *server, int status)
{
	struct test_ctx *t = server->data;
	ck_assert_int_eq(status, 0);
	t->server_accepts++;
	if (t->server_raw) {
		ck_assert(!t->raw_open);
		uv_tcp_init(&t->loop, &t->raw);
		t->raw.data = t;
		t->raw_open = true;
		ck_assert_int_eq(uv_accept(server, (uv_stream_t *)&t->raw), 0);
		return;
	}
	struct conn *c = conn_create(&t->loop, &t->server_limits, &t->server_cb, t);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(uv_accept(server, (uv_stream_t *)conn_tcp(c)), 0);
	ck_assert_int_eq(conn_start(c), 0);
	ck_assert_str_ne(conn_peer(c), "?");
	ck_assert_ptr_eq(strstr(conn_peer(c), "127.0.0.1:"), conn_peer(c));
	t->server = c;
}

static void test_listen(struct test_ctx *t)
{
	struct sockaddr_in sa;
	ck_assert_int_eq(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
	ck_assert_int_eq(uv_tcp_init(&t->loop, &t->listener), 0);
	t->listener.data = t;
	t->listener_open = true;
	ck_assert_int_eq(uv_tcp_bind(&t->listener, (struct sockaddr *)&sa, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&t->listener, 128, test_on_connection), 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	ck_assert_int_eq(uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len), 0);
	t->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	ck_assert_int_gt(t->port, 0);
}

static struct conn *test_connect(struct test_ctx *t, const struct conn_callbacks *cb)
{
	struct conn *c = conn_create(&t->loop, &t->client_limits, cb, t);
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(conn_peer(c), "?");
	ck_assert_int_eq(conn_connect(c, "127.0.0.1", (uint16_t)t->port), 0);
	t->client = c;
	return c;
}

static int test_send_heartbeat(struct conn *c, uint32_t running)
{
	Shoal__Heartbeat hb = SHOAL__HEARTBEAT__INIT;
	hb.has_running = 1;
	hb.running = running;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HEARTBEAT;
	env.heartbeat = &hb;
	return conn_send(c, &env);
}

static int test_send_ack(struct conn *c, uint64_t consumed)
{
	Shoal__ResultAck ack = SHOAL__RESULT_ACK__INIT;
	ack.job_id = 1;
	ack.consumed = consumed;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_RESULT_ACK;
	env.result_ack = &ack;
	return conn_send(c, &env);
}

static int test_send_chunk(struct conn *c, size_t n)
{
	static uint8_t zeros[256 * 1024];
	Shoal__UploadChunk uc = SHOAL__UPLOAD_CHUNK__INIT;
	uc.job_id = 1;
	uc.data.data = zeros;
	uc.data.len = n;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_UPLOAD_CHUNK;
	env.upload_chunk = &uc;
	return conn_send(c, &env);
}

/* ---- many messages both ways ---- */

static void many_server_on_message(struct conn *c, Shoal__Envelope *env)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(env->msg_case, SHOAL__ENVELOPE__MSG_HEARTBEAT);
	if (env->heartbeat->running != (uint32_t)t->server_got)
		t->server_order_ok = false;
	t->server_got++;
	ck_assert_int_eq(test_send_ack(c, env->heartbeat->running), 0);
}

static void many_server_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->server_closes++;
	snprintf(t->server_reason, sizeof(t->server_reason), "%s", reason);
	test_close_listener(t);
}

static void many_client_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	t->client_connects++;
	t->connect_status = status;
	ck_assert_int_eq(status, 0);
	ck_assert_ptr_eq(strstr(conn_peer(c), "127.0.0.1:"), conn_peer(c));
	/* All sent in one loop iteration: coalesced into few writes. */
	for (uint32_t i = 0; i < TEST_MANY; i++)
		ck_assert_int_eq(test_send_heartbeat(c, i), 0);
	ck_assert_uint_gt(conn_pending(c), 0);
	ck_assert(conn_writable(c));
}

static void many_client_on_message(struct conn *c, Shoal__Envelope *env)
{
	struct test_ctx *t = conn_data(c);
	if (t->closed) {
		t->messages_after_close++;
		return;
	}
	ck_assert_int_eq(env->msg_case, SHOAL__ENVELOPE__MSG_RESULT_ACK);
	if (env->result_ack->consumed != (uint64_t)t->client_got)
		t->client_order_ok = false;
	t->client_got++;
	if (t->client_got == TEST_MANY) {
		conn_close(c, "done");
		conn_close(c, "twice"); /* idempotent */
		t->closed = true;
		ck_assert(conn_closing(c));
		ck_assert_int_eq(test_send_heartbeat(c, 0), -EPIPE);
	}
}

static void many_client_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->client_closes++;
	snprintf(t->client_reason, sizeof(t->client_reason), "%s", reason);
}

START_TEST(test_conn_many_both_ways)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = many_server_on_message;
	t.server_cb.on_close = many_server_on_close;
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_message = many_client_on_message,
	    .on_connect = many_client_on_connect,
	    .on_close = many_client_on_close,
	};
	struct conn *c = test_connect(&t, &cb);
	ck_assert_ptr_eq(conn_data(c), &t);
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 1);
	ck_assert_int_eq(t.server_accepts, 1);
	ck_assert_int_eq(t.server_got, TEST_MANY);
	ck_assert_int_eq(t.client_got, TEST_MANY);
	ck_assert(t.server_order_ok);
	ck_assert(t.client_order_ok);
	ck_assert_int_eq(t.messages_after_close, 0);
	ck_assert_int_eq(t.client_closes, 1);
	ck_assert_str_eq(t.client_reason, "done");
	ck_assert_int_eq(t.server_closes, 1);
	ck_assert_str_eq(t.server_reason, "peer closed");
}
END_TEST

/* ---- a peer sending garbage is closed; the listener keeps serving ---- */

struct test_garbage {
	const uint8_t *bytes;
	size_t len;
	bool close_after_write;
	const char *reason;
};

static const uint8_t garbage_empty[] = {0, 0, 0, 0};
static const uint8_t garbage_huge[] = {0xff, 0xff, 0xff, 0xff};
static const uint8_t garbage_payload[] = {0, 0, 0, 3, 0xff, 0xff, 0xff};
static const uint8_t garbage_no_kind[] = {0, 0, 0, 3, 0x98, 0x06, 0x01};
static const uint8_t garbage_invalid[] = {0, 0, 0, 6, 0x0a, 0x04, 0x08, 0x01, 0x10, 0x00};
static const uint8_t garbage_truncated[] = {0, 0, 0, 10, 1, 2};

static const struct test_garbage test_garbage_cases[] = {
    {garbage_empty, sizeof(garbage_empty), false, "empty frame"},
    {garbage_huge, sizeof(garbage_huge), false,
     "frame length 4294967295 exceeds the maximum 67108864"},
    {garbage_payload, sizeof(garbage_payload), false, "bad message"},
    {garbage_no_kind, sizeof(garbage_no_kind), false, "unknown or missing message kind"},
    {garbage_invalid, sizeof(garbage_invalid), false, "invalid hello"},
    {garbage_truncated, sizeof(garbage_truncated), true, "peer closed mid-frame"},
};

static void raw_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct test_ctx *t = h->data;
	(void)suggested;
	b->base = t->raw_rbuf;
	b->len = sizeof(t->raw_rbuf);
}

static void raw_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	struct test_ctx *t = s->data;
	(void)b;
	if (nread > 0) {
		t->raw_read_bytes += (size_t)nread;
		return;
	}
	if (nread < 0) {
		t->raw_eof++;
		test_close_raw(t);
	}
}

static void raw_on_write(uv_write_t *req, int status)
{
	struct test_ctx *t = req->handle->data;
	ck_assert_int_eq(status, 0);
	if (t->raw_close_after_write)
		test_close_raw(t);
}

static void raw_on_connect(uv_connect_t *req, int status)
{
	struct test_ctx *t = req->handle->data;
	ck_assert_int_eq(status, 0);
	if (t->raw_len > 0) {
		uv_buf_t b = {.base = (char *)t->raw_bytes, .len = t->raw_len};
		ck_assert_int_eq(
		    uv_write(&t->raw_write, (uv_stream_t *)&t->raw, &b, 1, raw_on_write), 0);
	}
	if (!t->raw_close_after_write)
		ck_assert_int_eq(uv_read_start((uv_stream_t *)&t->raw, raw_on_alloc, raw_on_read),
		                 0);
}

static void test_raw_connect(struct test_ctx *t)
{
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", t->port, &sa);
	uv_tcp_init(&t->loop, &t->raw);
	t->raw.data = t;
	t->raw_open = true;
	ck_assert_int_eq(
	    uv_tcp_connect(&t->raw_connect, &t->raw, (struct sockaddr *)&sa, raw_on_connect), 0);
}

static void good_client_on_message(struct conn *c, Shoal__Envelope *env)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(env->msg_case, SHOAL__ENVELOPE__MSG_RESULT_ACK);
	t->client_got++;
	conn_close(c, "done");
}

static void good_client_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	t->client_connects++;
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(test_send_heartbeat(c, 0), 0);
}

static void garbage_server_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->server_closes++;
	if (t->server_closes == 1) {
		/* The bad peer is gone; a well-behaved one must still be served. */
		snprintf(t->server_reason, sizeof(t->server_reason), "%s", reason);
		struct conn_callbacks cb = {
		    .on_message = good_client_on_message,
		    .on_connect = good_client_on_connect,
		    .on_close = many_client_on_close,
		};
		test_connect(t, &cb);
	} else {
		ck_assert_str_eq(reason, "peer closed");
		test_close_listener(t);
	}
}

START_TEST(test_conn_garbage_closed_listener_survives)
{
	const struct test_garbage *g = &test_garbage_cases[_i];
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = many_server_on_message;
	t.server_cb.on_close = garbage_server_on_close;
	test_listen(&t);
	t.raw_bytes = g->bytes;
	t.raw_len = g->len;
	t.raw_close_after_write = g->close_after_write;
	test_raw_connect(&t);
	test_finish(&t);
	ck_assert_msg(strstr(t.server_reason, g->reason) != NULL, "reason '%s' lacks '%s'",
	              t.server_reason, g->reason);
	ck_assert_int_eq(t.server_accepts, 2);
	ck_assert_int_eq(t.server_closes, 2);
	/* Only the good client's message got through. */
	ck_assert_int_eq(t.server_got, 1);
	ck_assert_int_eq(t.client_got, 1);
	ck_assert_int_eq(t.client_closes, 1);
	if (!g->close_after_write)
		ck_assert_int_eq(t.raw_eof, 1);
}
END_TEST

/* ---- write_max: a peer that never reads gets the connection closed ---- */

static void slow_on_timer(uv_timer_t *timer)
{
	struct test_ctx *t = timer->data;
	/* A producer that ignores conn_writable (the misbehaving case). */
	for (int i = 0; i < 8 && t->send_rc == 0; i++) {
		t->send_rc = test_send_chunk(t->client, 64 * 1024);
		t->sent++;
	}
	if (t->send_rc != 0 || t->sent > 20000)
		uv_timer_stop(timer);
}

static void slow_client_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(status, 0);
	t->client_connects++;
	uv_timer_start(&t->timer, slow_on_timer, 0, 1);
}

static void slow_client_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->client_closes++;
	snprintf(t->client_reason, sizeof(t->client_reason), "%s", reason);
	test_close_timer(t);
	test_close_raw(t);
	test_close_listener(t);
}

START_TEST(test_conn_write_max_closes)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_raw = true; /* accepts and never reads */
	test_listen(&t);
	t.client_limits.write_high = 128 * 1024;
	t.client_limits.write_low = 32 * 1024;
	t.client_limits.write_max = 1024 * 1024;
	uv_timer_init(&t.loop, &t.timer);
	t.timer.data = &t;
	t.timer_open = true;
	struct conn_callbacks cb = {
	    .on_connect = slow_client_on_connect,
	    .on_close = slow_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 1);
	ck_assert_int_eq(t.send_rc, -ENOBUFS);
	ck_assert_int_eq(t.client_closes, 1);
	ck_assert_msg(strstr(t.client_reason, "peer too slow: ") == t.client_reason, "%s",
	              t.client_reason);
	ck_assert_ptr_nonnull(strstr(t.client_reason, " bytes queued"));
}
END_TEST

/* ---- back-pressure: above write_high reading stops; on_drain resumes it ---- */

static const uint8_t bp_welcome_frame[] = {0, 0, 0, 4, 0x12, 0x02, 0x08, 0x01};

static void bp_on_check(uv_timer_t *timer)
{
	struct test_ctx *t = timer->data;
	/* The client is above write_high and must not have read the Welcome sent 50 ms ago. */
	ck_assert_int_eq(t->client_got, 0);
	ck_assert_int_eq(t->drains, 0);
	ck_assert(!conn_writable(t->client));
	t->phase = 2;
	ck_assert_int_eq(uv_read_start((uv_stream_t *)&t->raw, raw_on_alloc, raw_on_read), 0);
}

/* Phase 0: keep the client's queue above write_high until the kernel buffers are full too
 * (no progress for 50 ms), then the server sends a Welcome the client must not read yet. */
static void bp_on_timer(uv_timer_t *timer)
{
	struct test_ctx *t = timer->data;
	uint64_t now = uv_now(&t->loop);
	if (conn_writable(t->client)) {
		while (conn_writable(t->client)) {
			ck_assert_int_eq(test_send_chunk(t->client, 64 * 1024), 0);
			t->sent++;
			ck_assert_int_lt(t->sent, 100000);
		}
		t->last_fill = now;
		return;
	}
	if (now - t->last_fill < 50)
		return;
	uv_buf_t b = {.base = (char *)bp_welcome_frame, .len = sizeof(bp_welcome_frame)};
	ck_assert_int_eq(uv_try_write((uv_stream_t *)&t->raw, &b, 1),
	                 (int)sizeof(bp_welcome_frame));
	t->phase = 1;
	t->drains = 0;
	uv_timer_stop(timer);
	uv_timer_start(timer, bp_on_check, 50, 0);
}

static void bp_client_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(status, 0);
	uv_timer_start(&t->timer, bp_on_timer, 1, 5);
}

static void bp_client_on_drain(struct conn *c)
{
	struct test_ctx *t = conn_data(c);
	/* Early drains while the kernel buffers still grow just make the producer refill. */
	ck_assert_int_ne(t->phase, 1);
	t->drains++;
	ck_assert(conn_writable(c));
	ck_assert_uint_le(conn_pending(c), t->client_limits.write_low);
}

static void bp_client_on_message(struct conn *c, Shoal__Envelope *env)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(env->msg_case, SHOAL__ENVELOPE__MSG_WELCOME);
	if (t->phase != 2 || t->drains == 0)
		t->got_before_drain = true;
	t->client_got++;
	conn_close(c, "done");
}

static void bp_client_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->client_closes++;
	snprintf(t->client_reason, sizeof(t->client_reason), "%s", reason);
	test_close_timer(t);
	test_close_listener(t);
	/* raw closes itself on EOF */
}

START_TEST(test_conn_backpressure_and_drain)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_raw = true;
	test_listen(&t);
	t.client_limits.write_high = 256 * 1024;
	t.client_limits.write_low = 64 * 1024;
	uv_timer_init(&t.loop, &t.timer);
	t.timer.data = &t;
	t.timer_open = true;
	struct conn_callbacks cb = {
	    .on_message = bp_client_on_message,
	    .on_drain = bp_client_on_drain,
	    .on_connect = bp_client_on_connect,
	    .on_close = bp_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.drains, 1);
	ck_assert_int_eq(t.client_got, 1);
	ck_assert(!t.got_before_drain);
	ck_assert_str_eq(t.client_reason, "done");
	ck_assert_uint_gt(t.raw_read_bytes, 0);
}
END_TEST

/* ---- idle timeout ---- */

START_TEST(test_conn_idle_timeout)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_limits.idle_ms = 50;
	t.server_cb.on_close = many_server_on_close;
	test_listen(&t);
	test_raw_connect(&t); /* connects, sends nothing, reads until EOF */
	uint64_t t0 = uv_now(&t.loop);
	test_finish(&t);
	ck_assert_int_eq(t.server_closes, 1);
	ck_assert_str_eq(t.server_reason, "idle for 50 ms");
	ck_assert_int_eq(t.raw_eof, 1);
	ck_assert_uint_ge(uv_now(&t.loop) - t0, 40);
}
END_TEST

/* ---- socket options: keepalive on every connection, the user timeout, the local address ---- */

static int sockopt_int(struct conn *c, int level, int opt)
{
	uv_os_fd_t fd;
	ck_assert_int_eq(uv_fileno((const uv_handle_t *)conn_tcp(c), &fd), 0);
	int v = -1;
	socklen_t len = sizeof(v);
	ck_assert_int_eq(getsockopt(fd, level, opt, &v, &len), 0);
	return v;
}

static void opts_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	t->client_connects++;
	ck_assert_int_eq(status, 0);
	/* A dead idle peer is found within 30 + 3 x 10 s, not the kernel's two hours. */
	ck_assert_int_eq(sockopt_int(c, SOL_SOCKET, SO_KEEPALIVE), 1);
	ck_assert_int_eq(sockopt_int(c, IPPROTO_TCP, TCP_KEEPIDLE), 30);
	ck_assert_int_eq(sockopt_int(c, IPPROTO_TCP, TCP_KEEPINTVL), 10);
	ck_assert_int_eq(sockopt_int(c, IPPROTO_TCP, TCP_KEEPCNT), 3);
	ck_assert_int_eq(sockopt_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
	ck_assert_int_eq(conn_set_user_timeout(c, 6000), 0);
	ck_assert_int_eq(sockopt_int(c, IPPROTO_TCP, TCP_USER_TIMEOUT), 6000);
	char ip[64];
	ck_assert_int_eq(conn_local_ip(c, ip, sizeof(ip)), 0);
	ck_assert_str_eq(ip, "127.0.0.1");
	conn_close(c, "done");
	/* Closing: no more options, no address. */
	ck_assert_int_ne(conn_set_user_timeout(c, 1000), 0);
}

START_TEST(test_conn_socket_options)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_close = many_server_on_close;
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_connect = opts_on_connect,
	    .on_close = many_client_on_close,
	};
	struct conn *c = test_connect(&t, &cb);
	char ip[64];
	ck_assert_int_ne(conn_local_ip(c, ip, sizeof(ip)), 0); /* not connected yet */
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 1);
	ck_assert_int_eq(t.client_closes, 1);
	ck_assert_int_eq(t.server_closes, 1);
}
END_TEST

/* ---- connect failures and early closes ---- */

static void fail_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(t->client_closes, 0); /* on_connect first, then on_close */
	t->client_connects++;
	t->connect_status = status;
}

START_TEST(test_conn_connect_refused)
{
	struct test_ctx t;
	test_ctx_init(&t);
	/* Find a free port, then stop listening on it. */
	test_listen(&t);
	test_close_listener(&t);
	uv_run(&t.loop, UV_RUN_DEFAULT);
	struct conn_callbacks cb = {
	    .on_connect = fail_on_connect,
	    .on_close = many_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 1);
	ck_assert_int_eq(t.connect_status, UV_ECONNREFUSED);
	ck_assert_int_eq(t.client_closes, 1);
	ck_assert_msg(strstr(t.client_reason, "cannot connect to 127.0.0.1:") != NULL, "%s",
	              t.client_reason);
}
END_TEST

START_TEST(test_conn_connect_localhost)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = many_server_on_message;
	t.server_cb.on_close = many_server_on_close;
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_message = good_client_on_message,
	    .on_connect = good_client_on_connect,
	    .on_close = many_client_on_close,
	};
	struct conn *c = conn_create(&t.loop, &t.client_limits, &cb, &t);
	ck_assert_int_eq(conn_connect(c, "localhost", (uint16_t)t.port), 0);
	ck_assert_int_eq(conn_connect(c, "localhost", (uint16_t)t.port), UV_EALREADY);
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 1);
	ck_assert_int_eq(t.client_got, 1);
	ck_assert_int_eq(t.server_closes, 1);
}
END_TEST

START_TEST(test_conn_close_while_connecting)
{
	struct test_ctx t;
	test_ctx_init(&t);
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_connect = fail_on_connect,
	    .on_close = many_client_on_close,
	};
	struct conn *c = test_connect(&t, &cb);
	/* Queued before the connection exists: allowed, then dropped by the close. */
	ck_assert_int_eq(test_send_heartbeat(c, 1), 0);
	ck_assert_uint_gt(conn_pending(c), 0);
	conn_close(c, "changed my mind");
	test_close_listener(&t);
	test_finish(&t);
	ck_assert_int_eq(t.client_connects, 0); /* no callback but on_close after conn_close */
	ck_assert_int_eq(t.client_closes, 1);
	ck_assert_str_eq(t.client_reason, "changed my mind");
}
END_TEST

START_TEST(test_conn_send_limits_unconnected)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.client_limits.max_frame = 100;
	struct conn_callbacks cb = {.on_close = many_client_on_close};
	struct conn *c = conn_create(&t.loop, &t.client_limits, &cb, &t);
	ck_assert_int_eq(test_send_chunk(c, 200), -EMSGSIZE);
	ck_assert_uint_eq(conn_pending(c), 0);
	ck_assert_int_eq(test_send_chunk(c, 50), 0);
	ck_assert_uint_gt(conn_pending(c), 50);
	conn_set_data(c, NULL);
	ck_assert_ptr_null(conn_data(c));
	conn_set_data(c, &t);
	struct conn *c2 = conn_create(&t.loop, NULL, &cb, &t);
	ck_assert_uint_ne(conn_id(c), conn_id(c2));
	conn_close(c, "bye");
	conn_close(c2, "bye");
	ck_assert_int_eq(t.client_closes, 0); /* on_close runs from the loop, not inside */
	test_finish(&t);
	ck_assert_int_eq(t.client_closes, 2);
}
END_TEST

/* ---- close from on_message stops delivery; close flushes what fits ---- */

static void stop_server_on_message(struct conn *c, Shoal__Envelope *env)
{
	struct test_ctx *t = conn_data(c);
	(void)env;
	t->server_got++;
	conn_close(c, "enough");
}

static void burst_client_on_connect(struct conn *c, int status)
{
	ck_assert_int_eq(status, 0);
	for (uint32_t i = 0; i < 100; i++)
		ck_assert_int_eq(test_send_heartbeat(c, i), 0);
}

static void burst_client_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->client_closes++;
	snprintf(t->client_reason, sizeof(t->client_reason), "%s", reason);
	test_close_listener(t);
}

static void stop_server_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->server_closes++;
	snprintf(t->server_reason, sizeof(t->server_reason), "%s", reason);
}

START_TEST(test_conn_close_in_on_message)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = stop_server_on_message;
	t.server_cb.on_close = stop_server_on_close;
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_connect = burst_client_on_connect,
	    .on_close = burst_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.server_got, 1);
	ck_assert_int_eq(t.server_closes, 1);
	ck_assert_str_eq(t.server_reason, "enough");
	ck_assert_int_eq(t.client_closes, 1);
	/* "peer closed", or a reset if the server closed with bytes still unread. */
	ck_assert_uint_gt(strlen(t.client_reason), 0);
}
END_TEST

static void flushclose_client_on_connect(struct conn *c, int status)
{
	ck_assert_int_eq(status, 0);
	for (uint32_t i = 0; i < 100; i++)
		ck_assert_int_eq(test_send_heartbeat(c, i), 0);
	/* Closing right away still sends what the socket takes without blocking. */
	conn_close(c, "bye");
}

START_TEST(test_conn_close_flushes_queued)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = many_server_on_message;
	t.server_cb.on_close = many_server_on_close;
	test_listen(&t);
	struct conn_callbacks cb = {
	    .on_connect = flushclose_client_on_connect,
	    .on_close = many_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.server_got, 100);
	ck_assert(t.server_order_ok);
	ck_assert_str_eq(t.client_reason, "bye");
	ck_assert_int_eq(t.server_closes, 1);
}
END_TEST

/* ---- a send made during the prepare phase must not wait for unrelated I/O ---- */

static void phase_on_guard(uv_timer_t *timer)
{
	(void)timer;
	ck_abort_msg("a message sent from a prepare callback was not flushed until a timer fired");
}

static void phase_on_app_prepare(uv_prepare_t *p)
{
	struct test_ctx *t = p->data;
	uv_prepare_stop(p);
	/* Nothing else is pending: if this send waited for the next iteration's flush, the loop
	 * would block in poll until the guard timer. */
	ck_assert_int_eq(test_send_heartbeat(t->client, 0), 0);
}

static void phase_client_on_connect(struct conn *c, int status)
{
	struct test_ctx *t = conn_data(c);
	ck_assert_int_eq(status, 0);
	uv_prepare_start(&t->app_prepare, phase_on_app_prepare);
}

static void phase_client_on_close(struct conn *c, const char *reason)
{
	struct test_ctx *t = conn_data(c);
	t->client_closes++;
	snprintf(t->client_reason, sizeof(t->client_reason), "%s", reason);
	test_close_timer(t);
	test_close_listener(t);
	uv_close((uv_handle_t *)&t->app_prepare, test_on_handle_closed);
}

START_TEST(test_conn_send_from_prepare_phase)
{
	struct test_ctx t;
	test_ctx_init(&t);
	t.server_cb.on_message = stop_server_on_message; /* closes after the first message */
	t.server_cb.on_close = stop_server_on_close;
	test_listen(&t);
	uv_prepare_init(&t.loop, &t.app_prepare);
	t.app_prepare.data = &t;
	uv_timer_init(&t.loop, &t.timer);
	t.timer.data = &t;
	t.timer_open = true;
	uv_timer_start(&t.timer, phase_on_guard, 5000, 0);
	struct conn_callbacks cb = {
	    .on_connect = phase_client_on_connect,
	    .on_close = phase_client_on_close,
	};
	test_connect(&t, &cb);
	test_finish(&t);
	ck_assert_int_eq(t.server_got, 1);
	ck_assert_str_eq(t.client_reason, "peer closed");
}
END_TEST

static Suite *conn_suite(void)
{
	Suite *s = suite_create("conn");
	TCase *tc = tcase_create("loopback");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_conn_many_both_ways);
	tcase_add_loop_test(tc, test_conn_garbage_closed_listener_survives, 0,
	                    (int)(sizeof(test_garbage_cases) / sizeof(test_garbage_cases[0])));
	tcase_add_test(tc, test_conn_write_max_closes);
	tcase_add_test(tc, test_conn_backpressure_and_drain);
	tcase_add_test(tc, test_conn_idle_timeout);
	tcase_add_test(tc, test_conn_socket_options);
	tcase_add_test(tc, test_conn_connect_refused);
	tcase_add_test(tc, test_conn_connect_localhost);
	tcase_add_test(tc, test_conn_close_while_connecting);
	tcase_add_test(tc, test_conn_send_limits_unconnected);
	tcase_add_test(tc, test_conn_close_in_on_message);
	tcase_add_test(tc, test_conn_close_flushes_queued);
	tcase_add_test(tc, test_conn_send_from_prepare_phase);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	/* A write to a peer that just closed must be an error, not a fatal signal (the daemons
	 * ignore SIGPIPE the same way). */
	signal(SIGPIPE, SIG_IGN);
	SRunner *sr = srunner_create(conn_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
