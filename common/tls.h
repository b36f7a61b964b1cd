/* tls.h: TLS (OpenSSL, 1.2 or newer) for shoal's byte streams, with no sockets in sight.
 *
 * A tls_ctx is one process's TLS configuration: its certificate and key, and the CA it
 * verifies peers against. The master is the TLS server (certificate and key required; with a
 * CA it demands and verifies a certificate from every worker and client: mutual TLS). Workers
 * and clients are TLS clients (a CA required: the master's certificate is verified against it,
 * and against the host name or IP address they connect to; a certificate and key are
 * presented when given).
 *
 * A tls_session is one connection's TLS state on memory BIOs: its owner (conn.c) feeds it the
 * ciphertext read from the socket, reads plaintext out of it, writes plaintext into it and
 * takes the ciphertext to send. Handshake messages, key updates and alerts travel the same
 * way, so the owner never has to care about OpenSSL's want-read/want-write dance: after any
 * call, it sends whatever tls_session_take hands it.
 *
 * Ownership: tls_ctx_create returns an owned ctx; sessions keep OpenSSL's reference to it, so
 * the ctx may be destroyed while sessions live. Sessions are owned by their creator. */
#ifndef SHOAL_TLS_H
#define SHOAL_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct tls_ctx;
struct tls_session;

enum tls_role {
	TLS_SERVER, /* the master */
	TLS_CLIENT, /* workers and clients */
};

/* Paths to PEM files; NULL or "" when not given. */
struct tls_files {
	const char *cert; /* certificate chain presented to peers */
	const char *key;  /* its private key */
	const char *ca;   /* CA certificate(s) peers are verified against */
};

/* Checks which combinations make sense for a role before any file is read: a server needs
 * cert and key; a client needs ca; cert and key go together. Returns 0, or -1 with a usage
 * message in err ("--tls-key needs --tls-cert", ...). All empty: 0 (TLS off). */
int tls_files_check(enum tls_role role, const struct tls_files *f, char *err, size_t errlen);
/* True when f configures TLS at all. */
bool tls_files_enabled(const struct tls_files *f);

/* Loads and checks the files (readable, PEM, key matches certificate). Returns 0 and an owned
 * ctx in *out, or -1 with a message naming the file and what to do in err. */
int tls_ctx_create(enum tls_role role, const struct tls_files *f, struct tls_ctx **out, char *err,
                   size_t errlen);
void tls_ctx_destroy(struct tls_ctx **ctx);
enum tls_role tls_ctx_role(const struct tls_ctx *ctx);

/* A session for one connection. host (client role): the name or IP address connected to; the
 * master's certificate must list it (NULL: not checked). Returns an owned session. */
struct tls_session *tls_session_create(struct tls_ctx *ctx, const char *host);
void tls_session_destroy(struct tls_session **s);

/* Hands over n bytes read from the socket. Returns 0, or -1 when the bytes cannot be TLS
 * (tls_session_error says why; tls_session_peer_plain says whether the peer speaks plain
 * shoal frames). */
int tls_session_feed(struct tls_session *s, const uint8_t *p, size_t n);

enum {
	TLS_READ_EOF = -1, /* the peer sent close_notify */
	TLS_READ_ERR = -2, /* handshake or record error: tls_session_error */
};
/* Advances the handshake, then decrypts up to n bytes into p. Returns the bytes decrypted,
 * 0 when more input is needed, TLS_READ_EOF or TLS_READ_ERR. */
ssize_t tls_session_read(struct tls_session *s, uint8_t *p, size_t n);
/* Starts or advances the handshake (a client calls it once connected). 0 or -1 (error). */
int tls_session_handshake(struct tls_session *s);
/* The handshake is complete: plaintext may be written. */
bool tls_session_ready(const struct tls_session *s);
/* Encrypts n bytes (only once ready). Returns 0, or -1 (tls_session_error). */
int tls_session_write(struct tls_session *s, const uint8_t *p, size_t n);
/* Ciphertext waiting to be sent: appended to dst. Returns the number of bytes moved. */
size_t tls_session_take(struct tls_session *s, struct buf *dst);
/* Queues a close_notify alert (take it with tls_session_take). */
void tls_session_close(struct tls_session *s);

/* Why the last call failed, with a hint at what to fix. */
const char *tls_session_error(const struct tls_session *s);
/* The first bytes from the peer were not a TLS record. */
bool tls_session_peer_plain(const struct tls_session *s);
/* Protocol and cipher, e.g. "TLSv1.3 TLS_AES_256_GCM_SHA384" (after the handshake). */
void tls_session_describe(const struct tls_session *s, char *out, size_t outlen);

/* The start of a TLS handshake record as a plain peer would see it: lets a side without TLS
 * recognise a TLS peer in the first bytes it receives. */
bool tls_looks_like_hello(const uint8_t *p, size_t n);

#endif
