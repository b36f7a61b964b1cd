/* tls.c: OpenSSL sessions on memory BIOs (see tls.h).
 *
 * Each session has a read BIO (ciphertext from the peer, fed by tls_session_feed) and a write
 * BIO (ciphertext for the peer, drained by tls_session_take). Memory BIOs grow as needed, so
 * SSL_write never wants to write and SSL_read only ever wants more input; an empty read BIO
 * reports "retry", not end of file (BIO_set_mem_eof_return). TLS 1.2 is the floor,
 * renegotiation is off (TLS 1.3 has none; TLS 1.2 renegotiation is refused) and the ciphers
 * are OpenSSL's defaults. Error texts name what the user should change, since they end up in
 * a client's error message or a daemon's log line. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "util.h"

/* TLS record content types a peer may open with (handshake, alert). */
#define TLS_RECORD_ALERT     0x15
#define TLS_RECORD_HANDSHAKE 0x16

struct tls_ctx {
	SSL_CTX *ssl;
	enum tls_role role;
};

struct tls_session {
	SSL *ssl;
	BIO *rbio; /* owned by ssl */
	BIO *wbio; /* owned by ssl */
	enum tls_role role;
	bool fed;   /* some bytes arrived */
	bool plain; /* ... and they were not TLS */
	bool ready; /* handshake complete */
	bool failed;
	char error[512];
};

/* Like util.h's x*alloc: a process that cannot allocate cannot keep its promises. */
static void tls_oom(void)
{
	fprintf(stderr, "shoal: out of memory (TLS)\n");
	abort();
}

static bool str_given(const char *s)
{
	return s != NULL && s[0] != '\0';
}

bool tls_files_enabled(const struct tls_files *f)
{
	return f != NULL && (str_given(f->cert) || str_given(f->key) || str_given(f->ca));
}

int tls_files_check(enum tls_role role, const struct tls_files *f, char *err, size_t errlen)
{
	if (!tls_files_enabled(f))
		return 0;
	if (str_given(f->cert) != str_given(f->key)) {
		snprintf(err, errlen, "%s",
		         str_given(f->cert) ? "--tls-cert needs --tls-key (the certificate's "
		                              "private key)"
		                            : "--tls-key needs --tls-cert (the certificate it "
		                              "belongs to)");
		return -1;
	}
	if (role == TLS_SERVER && !str_given(f->cert)) {
		snprintf(err, errlen,
		         "--tls-ca needs --tls-cert and --tls-key: the master serves TLS with its "
		         "own certificate and uses --tls-ca to verify its peers'");
		return -1;
	}
	if (role == TLS_CLIENT && !str_given(f->ca)) {
		snprintf(err, errlen,
		         "--tls-cert/--tls-key need --tls-ca: the CA that signed the master's "
		         "certificate, to verify it");
		return -1;
	}
	return 0;
}

/* The most useful line of OpenSSL's error queue (the last one), then clears the queue. */
static void tls_openssl_reason(char *out, size_t outlen)
{
	unsigned long e, last = 0;
	while ((e = ERR_get_error()) != 0)
		last = e;
	if (last == 0) {
		snprintf(out, outlen, "unknown OpenSSL error");
		return;
	}
	const char *r = ERR_reason_error_string(last);
	if (r != NULL)
		snprintf(out, outlen, "%s", r);
	else
		ERR_error_string_n(last, out, outlen);
}

/* "cannot read" before OpenSSL's vaguer complaints about a missing file. */
static int tls_file_readable(const char *flag, const char *path, char *err, size_t errlen)
{
	if (access(path, R_OK) == 0)
		return 0;
	snprintf(err, errlen, "%s %s: cannot read it: %s", flag, path, strerror(errno));
	return -1;
}

static int tls_ctx_load(SSL_CTX *ssl, enum tls_role role, const struct tls_files *f, char *err,
                        size_t errlen)
{
	char why[256];
	if (str_given(f->cert)) {
		if (tls_file_readable("--tls-cert", f->cert, err, errlen) < 0)
			return -1;
		if (SSL_CTX_use_certificate_chain_file(ssl, f->cert) != 1) {
			tls_openssl_reason(why, sizeof(why));
			snprintf(err, errlen, "--tls-cert %s: not a usable PEM certificate (%s)",
			         f->cert, why);
			return -1;
		}
		if (tls_file_readable("--tls-key", f->key, err, errlen) < 0)
			return -1;
		if (SSL_CTX_use_PrivateKey_file(ssl, f->key, SSL_FILETYPE_PEM) != 1) {
			tls_openssl_reason(why, sizeof(why));
			/* OpenSSL checks the pair while loading the key. */
			if (strstr(why, "values mismatch") != NULL ||
			    strstr(why, "mismatch") != NULL)
				snprintf(err, errlen,
				         "--tls-key %s does not belong to the certificate in "
				         "--tls-cert %s (%s)",
				         f->key, f->cert, why);
			else
				snprintf(err, errlen,
				         "--tls-key %s: not a usable PEM private key (%s)", f->key,
				         why);
			return -1;
		}
		if (SSL_CTX_check_private_key(ssl) != 1) {
			tls_openssl_reason(why, sizeof(why));
			snprintf(err, errlen,
			         "--tls-key %s does not belong to the certificate in --tls-cert "
			         "%s (%s)",
			         f->key, f->cert, why);
			return -1;
		}
	}
	if (str_given(f->ca)) {
		if (tls_file_readable("--tls-ca", f->ca, err, errlen) < 0)
			return -1;
		if (SSL_CTX_load_verify_locations(ssl, f->ca, NULL) != 1) {
			tls_openssl_reason(why, sizeof(why));
			snprintf(err, errlen, "--tls-ca %s: no usable PEM CA certificate (%s)",
			         f->ca, why);
			return -1;
		}
		int mode = SSL_VERIFY_PEER;
		if (role == TLS_SERVER) {
			/* Mutual TLS: a peer without a certificate is refused. */
			mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
			STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(f->ca);
			if (names != NULL)
				SSL_CTX_set_client_CA_list(ssl, names);
		}
		SSL_CTX_set_verify(ssl, mode, NULL);
	}
	return 0;
}

int tls_ctx_create(enum tls_role role, const struct tls_files *f, struct tls_ctx **out, char *err,
                   size_t errlen)
{
	if (tls_files_check(role, f, err, errlen) < 0)
		return -1;
	ERR_clear_error();
	SSL_CTX *ssl = SSL_CTX_new(role == TLS_SERVER ? TLS_server_method() : TLS_client_method());
	if (ssl == NULL) {
		char why[256];
		tls_openssl_reason(why, sizeof(why));
		snprintf(err, errlen, "cannot set up TLS: %s", why);
		return -1;
	}
	SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(ssl, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	/* Connections are long-lived and never resumed: no session tickets to send. */
	SSL_CTX_set_num_tickets(ssl, 0);
	SSL_CTX_set_session_cache_mode(ssl, SSL_SESS_CACHE_OFF);
	if (tls_ctx_load(ssl, role, f, err, errlen) < 0) {
		SSL_CTX_free(ssl);
		ERR_clear_error();
		return -1;
	}
	struct tls_ctx *c = xcalloc(1, sizeof(*c));
	c->ssl = ssl;
	c->role = role;
	*out = c;
	return 0;
}

void tls_ctx_destroy(struct tls_ctx **ctx)
{
	if (ctx == NULL || *ctx == NULL)
		return;
	SSL_CTX_free((*ctx)->ssl);
	free(*ctx);
	*ctx = NULL;
}

enum tls_role tls_ctx_role(const struct tls_ctx *ctx)
{
	return ctx->role;
}

struct tls_session *tls_session_create(struct tls_ctx *ctx, const char *host)
{
	struct tls_session *s = xcalloc(1, sizeof(*s));
	s->role = ctx->role;
	s->ssl = SSL_new(ctx->ssl);
	s->rbio = BIO_new(BIO_s_mem());
	s->wbio = BIO_new(BIO_s_mem());
	if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL)
		tls_oom();
	BIO_set_mem_eof_return(s->rbio, -1);
	BIO_set_mem_eof_return(s->wbio, -1);
	SSL_set_bio(s->ssl, s->rbio, s->wbio);
	if (ctx->role == TLS_SERVER) {
		SSL_set_accept_state(s->ssl);
	} else {
		SSL_set_connect_state(s->ssl);
		if (str_given(host)) {
			X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
			/* An IP address is matched against the certificate's IP SANs, a name
			 * against its DNS names (and sent as SNI). */
			if (X509_VERIFY_PARAM_set1_ip_asc(param, host) != 1) {
				SSL_set_tlsext_host_name(s->ssl, host);
				SSL_set1_host(s->ssl, host);
			}
		}
	}
	return s;
}

void tls_session_destroy(struct tls_session **s)
{
	if (s == NULL || *s == NULL)
		return;
	SSL_free((*s)->ssl); /* frees both BIOs */
	free(*s);
	*s = NULL;
}

bool tls_looks_like_hello(const uint8_t *p, size_t n)
{
	/* Handshake record, protocol major version 3 (SSL 3.0 to TLS 1.3). */
	return n >= 2 && p[0] == TLS_RECORD_HANDSHAKE && p[1] == 3;
}

int tls_session_feed(struct tls_session *s, const uint8_t *p, size_t n)
{
	if (n == 0)
		return 0;
	if (!s->fed) {
		s->fed = true;
		/* A TLS peer opens with a handshake record (or an alert refusing ours); a plain
		 * shoal peer with a frame length, whose first byte is 0 for any frame under
		 * 16 MiB. Say so rather than let OpenSSL report a "wrong version number". */
		if (p[0] != TLS_RECORD_HANDSHAKE && p[0] != TLS_RECORD_ALERT) {
			s->plain = true;
			s->failed = true;
			if (s->role == TLS_SERVER)
				snprintf(
				    s->error, sizeof(s->error),
				    "this master serves TLS only and the connection spoke plain "
				    "shoal: give the worker or client --tls-ca (plus --tls-cert "
				    "and --tls-key when the master has --tls-ca)");
			else
				snprintf(
				    s->error, sizeof(s->error),
				    "the master answered without TLS: it does not serve TLS "
				    "(start it with --tls-cert and --tls-key, or drop --tls-ca "
				    "here)");
			return -1;
		}
	}
	if (BIO_write(s->rbio, p, (int)n) != (int)n)
		tls_oom();
	return 0;
}

/* Builds the message for a failed handshake or record, with what to fix. */
static void tls_session_fail(struct tls_session *s)
{
	char why[256];
	unsigned long e, last = 0;
	while ((e = ERR_get_error()) != 0)
		last = e;
	const char *r = last != 0 ? ERR_reason_error_string(last) : NULL;
	snprintf(why, sizeof(why), "%s", r != NULL ? r : "protocol error");
	long vr = SSL_get_verify_result(s->ssl);
	s->failed = true;

	if (vr != X509_V_OK) {
		if (s->role == TLS_CLIENT)
			snprintf(s->error, sizeof(s->error),
			         "TLS: the master's certificate is not trusted (%s): give --tls-ca "
			         "the CA that signed it, and connect to a name or IP address the "
			         "certificate lists",
			         X509_verify_cert_error_string(vr));
		else
			snprintf(s->error, sizeof(s->error),
			         "TLS: the peer's certificate is not trusted (%s): workers and "
			         "clients need a --tls-cert/--tls-key signed by the master's "
			         "--tls-ca",
			         X509_verify_cert_error_string(vr));
		return;
	}
	if (last != 0 && ERR_GET_LIB(last) == ERR_LIB_SSL &&
	    ERR_GET_REASON(last) == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
		snprintf(s->error, sizeof(s->error),
		         "TLS: the peer presented no certificate: this master verifies peers "
		         "(--tls-ca), so workers and clients need --tls-cert and --tls-key");
		return;
	}
	/* Alerts from the peer come as reasons at SSL_AD_REASON_OFFSET and above. */
	if (last != 0 && ERR_GET_LIB(last) == ERR_LIB_SSL &&
	    ERR_GET_REASON(last) >= SSL_AD_REASON_OFFSET) {
		if (s->role == TLS_CLIENT)
			snprintf(s->error, sizeof(s->error),
			         "TLS: the master refused the handshake (%s): if it verifies "
			         "peers, give this side --tls-cert and --tls-key signed by the CA "
			         "in the master's --tls-ca",
			         why);
		else
			snprintf(s->error, sizeof(s->error),
			         "TLS: the peer refused the handshake (%s): it must trust this "
			         "master's certificate (its --tls-ca)",
			         why);
		return;
	}
	snprintf(s->error, sizeof(s->error), "TLS handshake or record failed: %s", why);
}

int tls_session_handshake(struct tls_session *s)
{
	if (s->failed)
		return -1;
	if (s->ready)
		return 0;
	ERR_clear_error();
	int rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		s->ready = true;
		return 0;
	}
	int e = SSL_get_error(s->ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return 0;
	tls_session_fail(s);
	return -1;
}

ssize_t tls_session_read(struct tls_session *s, uint8_t *p, size_t n)
{
	if (s->failed)
		return TLS_READ_ERR;
	if (!s->ready) {
		if (tls_session_handshake(s) < 0)
			return TLS_READ_ERR;
		if (!s->ready)
			return 0;
	}
	if (n == 0)
		return 0;
	ERR_clear_error();
	int rc = SSL_read(s->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
	if (rc > 0)
		return rc;
	switch (SSL_get_error(s->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return TLS_READ_EOF;
	default:
		tls_session_fail(s);
		return TLS_READ_ERR;
	}
}

bool tls_session_ready(const struct tls_session *s)
{
	return s->ready && !s->failed;
}

int tls_session_write(struct tls_session *s, const uint8_t *p, size_t n)
{
	if (s->failed || !s->ready) {
		if (!s->failed)
			snprintf(s->error, sizeof(s->error), "TLS: write before the handshake");
		return -1;
	}
	ERR_clear_error();
	while (n > 0) {
		int chunk = n > (1u << 30) ? 1 << 30 : (int)n;
		int rc = SSL_write(s->ssl, p, chunk);
		if (rc <= 0) {
			tls_session_fail(s);
			return -1;
		}
		p += rc;
		n -= (size_t)rc;
	}
	return 0;
}

size_t tls_session_take(struct tls_session *s, struct buf *dst)
{
	size_t pending = BIO_ctrl_pending(s->wbio);
	if (pending == 0)
		return 0;
	uint8_t *at = buf_reserve(dst, pending);
	int got = BIO_read(s->wbio, at, (int)pending);
	if (got <= 0)
		return 0;
	dst->len += (size_t)got;
	return (size_t)got;
}

void tls_session_close(struct tls_session *s)
{
	if (!s->ready || s->failed)
		return;
	ERR_clear_error();
	(void)SSL_shutdown(s->ssl);
	ERR_clear_error();
}

const char *tls_session_error(const struct tls_session *s)
{
	return s->error[0] != '\0' ? s->error : "TLS error";
}

bool tls_session_peer_plain(const struct tls_session *s)
{
	return s->plain;
}

void tls_session_describe(const struct tls_session *s, char *out, size_t outlen)
{
	const char *cipher = SSL_get_cipher_name(s->ssl);
	snprintf(out, outlen, "%s %s", SSL_get_version(s->ssl), cipher != NULL ? cipher : "?");
}
