/* conn.h: one framed connection on a libuv TCP stream; the only module in common/ that
 * touches the loop.
 *
 * Sending packs the envelope into the connection's output buffer; everything sent during one
 * loop iteration goes out in one write at the end of it (a uv_idle handle, run just before the
 * loop polls; conn.c says why not uv_prepare), so many small messages cost one syscall. The
 * write queue is bounded: above `write_high` the connection stops reading from its peer
 * (back-pressure) and callers should stop producing (conn_writable says so; on_drain says when
 * to resume); above `write_max` the peer is too slow and the connection is closed.
 *
 * Lifetime: conn_create returns an owned conn; after conn_close (or a peer/IO error) the
 * on_close callback runs exactly once, from the loop, and the conn is freed after it
 * returns. No other callback runs after conn_close. */
#ifndef SHOAL_CONN_H
#define SHOAL_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "shoal.pb-c.h"

struct conn;
struct tls_ctx;

struct conn_limits {
	uint32_t max_frame;     /* largest frame accepted or sent */
	size_t write_high;      /* stop reading / callers pause above this many queued bytes */
	size_t write_low;       /* on_drain fires when the queue falls to this */
	size_t write_max;       /* close the connection above this */
	uint64_t idle_ms;       /* close if nothing is received for this long (0: never) */
	uint32_t unpack_budget; /* decoding memory per frame byte (codec.h); 0: the default */
};

/* Defaults: 64 MiB frames, 4 MiB high, 1 MiB low, 256 MiB max, no idle timeout. */
void conn_limits_default(struct conn_limits *l);

struct conn_callbacks {
	/* A valid, validated message. Borrows env: it is freed after the callback returns. */
	void (*on_message)(struct conn *c, Shoal__Envelope *env);
	/* The write queue fell to write_low after having been above write_high. Optional. */
	void (*on_drain)(struct conn *c);
	/* Connected (for conn_connect). status 0 or a libuv error. Optional. */
	void (*on_connect)(struct conn *c, int status);
	/* The connection is closed; last callback. reason is for logs ("peer closed", ...). */
	void (*on_close)(struct conn *c, const char *reason);
};

struct conn *conn_create(uv_loop_t *loop, const struct conn_limits *limits,
                         const struct conn_callbacks *cb, void *data);
/* The TCP handle, for uv_accept. */
uv_tcp_t *conn_tcp(struct conn *c);
/* Starts reading (after uv_accept). Fills in the peer address. 0 or a libuv error. */
int conn_start(struct conn *c);
/* Resolves host (async) and connects; on_connect reports the outcome, then reading starts. */
int conn_connect(struct conn *c, const char *host, uint16_t port);

/* Makes the connection TLS (before conn_start or conn_connect): the master side with a
 * TLS_SERVER ctx, workers and clients with a TLS_CLIENT one, whose peer certificate is checked
 * against the host given to conn_connect. Messages sent before the handshake completes wait
 * for it; a handshake failure closes the conn with a reason saying what to fix. Borrows ctx,
 * which must outlive conn_start/conn_connect (OpenSSL keeps a reference after that). */
void conn_set_tls(struct conn *c, struct tls_ctx *ctx);
bool conn_is_tls(const struct conn *c);
/* The connection failed (or is failing) because one side speaks TLS and the other does not:
 * a configuration error, which retrying cannot fix (unlike a refused or reset connection).
 * Meaningful in on_close. */
bool conn_tls_mismatch(const struct conn *c);

/* Queues a message. Returns 0, or a negative errno-style code if the connection is closing
 * (-EPIPE) or the message exceeds max_frame (-EMSGSIZE, nothing queued) or the queue passed
 * write_max (-ENOBUFS, the connection is being closed). Borrows env. */
int conn_send(struct conn *c, const Shoal__Envelope *env);
/* Sends now-queued bytes without waiting for the end of the loop iteration. */
void conn_flush(struct conn *c);
/* Bytes queued and not yet handed to the kernel. */
size_t conn_pending(const struct conn *c);
/* True while the queue is at or below write_high. */
bool conn_writable(const struct conn *c);

/* Stops (or resumes) reading from the peer, so that TCP back-pressure slows it down while
 * the owner cannot take more (e.g. its disk lags). Independent of write back-pressure. */
void conn_pause_reading(struct conn *c, bool pause);

void conn_close(struct conn *c, const char *reason);
bool conn_closing(const struct conn *c);

void *conn_data(const struct conn *c);
void conn_set_data(struct conn *c, void *data);
/* "ip:port" of the peer ("?" before it is known). */
const char *conn_peer(const struct conn *c);
/* The IP address of this end of an open connection, as text; 0 or a negative libuv code. */
int conn_local_ip(const struct conn *c, char *out, size_t len);
/* TCP_USER_TIMEOUT: the kernel aborts the open connection (the owner's on_close sees
 * "connection timed out") once sent data has stayed unacknowledged for ms, e.g. because the
 * peer's network is cut while we keep writing. 0 or a negative errno. */
int conn_set_user_timeout(struct conn *c, uint32_t ms);
/* Process-unique id for logs. */
uint64_t conn_id(const struct conn *c);
/* Bytes all connections of the process have received and handed to the kernel so far
 * (frames, handshakes included), for metrics. */
void conn_totals(uint64_t *in, uint64_t *out);

#endif
