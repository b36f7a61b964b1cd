/* Unit tests for tls.c: two sessions (master and worker/client side) joined in memory, with a
 * CA and certificates made by the test itself (OpenSSL API, P-256, written to a temporary
 * directory): the handshake, data both ways in both orders, close_notify, mutual TLS and its
 * refusals, host/IP checks, plain peers, and the option checks and file errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

static char dir[64];
static char path_ca[128], path_rogue[128];
static char path_master_crt[128], path_master_key[128];
static char path_client_crt[128], path_client_key[128];
static char path_intruder_crt[128], path_intruder_key[128];
static char path_garbage[128];

static EVP_PKEY *make_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(k);
	return k;
}

/* A certificate for cn with key, signed by (issuer, issuer_key), or self-signed if NULL. */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, bool ca,
                       const char *san)
{
	static long serial = 1;
	X509 *x = X509_new();
	ck_assert_ptr_nonnull(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, key);
	X509_NAME *name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_CTX v3;
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	                                          ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	if (san != NULL) {
		ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	ck_assert_int_gt(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
	return x;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_X509(f, x);
	fclose(f);
}

static void write_key(const char *path, EVP_PKEY *k)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
}

static void make_pki(void)
{
	snprintf(dir, sizeof(dir), "/tmp/shoal-test-tls.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path_ca, sizeof(path_ca), "%s/ca.crt", dir);
	snprintf(path_rogue, sizeof(path_rogue), "%s/rogue.crt", dir);
	snprintf(path_master_crt, sizeof(path_master_crt), "%s/master.crt", dir);
	snprintf(path_master_key, sizeof(path_master_key), "%s/master.key", dir);
	snprintf(path_client_crt, sizeof(path_client_crt), "%s/client.crt", dir);
	snprintf(path_client_key, sizeof(path_client_key), "%s/client.key", dir);
	snprintf(path_intruder_crt, sizeof(path_intruder_crt), "%s/intruder.crt", dir);
	snprintf(path_intruder_key, sizeof(path_intruder_key), "%s/intruder.key", dir);
	snprintf(path_garbage, sizeof(path_garbage), "%s/garbage.pem", dir);

	EVP_PKEY *ca_key = make_key(), *rogue_key = make_key(), *master_key = make_key();
	EVP_PKEY *client_key = make_key(), *intruder_key = make_key();
	X509 *ca = make_cert("test CA", ca_key, NULL, NULL, true, NULL);
	X509 *rogue = make_cert("rogue CA", rogue_key, NULL, NULL, true, NULL);
	X509 *master =
	    make_cert("master", master_key, ca, ca_key, false, "IP:127.0.0.1,DNS:master.example");
	X509 *client = make_cert("client", client_key, ca, ca_key, false, NULL);
	X509 *intruder = make_cert("intruder", intruder_key, rogue, rogue_key, false, NULL);
	write_cert(path_ca, ca);
	write_cert(path_rogue, rogue);
	write_cert(path_master_crt, master);
	write_key(path_master_key, master_key);
	write_cert(path_client_crt, client);
	write_key(path_client_key, client_key);
	write_cert(path_intruder_crt, intruder);
	write_key(path_intruder_key, intruder_key);
	FILE *f = fopen(path_garbage, "w");
	ck_assert_ptr_nonnull(f);
	fputs("this is not PEM\n", f);
	fclose(f);
	X509_free(ca);
	X509_free(rogue);
	X509_free(master);
	X509_free(client);
	X509_free(intruder);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(rogue_key);
	EVP_PKEY_free(master_key);
	EVP_PKEY_free(client_key);
	EVP_PKEY_free(intruder_key);
}

static void remove_pki(void)
{
	const char *files[] = {path_ca,           path_rogue,        path_master_crt,
	                       path_master_key,   path_client_crt,   path_client_key,
	                       path_intruder_crt, path_intruder_key, path_garbage};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(dir);
}

static struct tls_ctx *ctx_or_fail(enum tls_role role, const struct tls_files *f)
{
	char err[512];
	struct tls_ctx *ctx = NULL;
	int rc = tls_ctx_create(role, f, &ctx, err, sizeof(err));
	ck_assert_msg(rc == 0, "tls_ctx_create: %s", err);
	return ctx;
}

/* Moves ciphertext one way; returns the bytes moved, or -1 if the receiver refused them. */
static long pump(struct tls_session *from, struct tls_session *to)
{
	struct buf b = BUF_INIT;
	size_t n = tls_session_take(from, &b);
	int rc = n > 0 ? tls_session_feed(to, b.data, b.len) : 0;
	buf_free(&b);
	return rc < 0 ? -1 : (long)n;
}

/* Runs the handshake to its end: 0 when both are ready, -1 when one side failed. */
static int handshake(struct tls_session *srv, struct tls_session *cli)
{
	uint8_t scratch[64];
	ck_assert_int_eq(tls_session_handshake(cli), 0);
	for (int round = 0; round < 20; round++) {
		if (pump(cli, srv) < 0 || tls_session_read(srv, scratch, sizeof(scratch)) < 0)
			return -1;
		if (pump(srv, cli) < 0 || tls_session_read(cli, scratch, sizeof(scratch)) < 0)
			return -1;
		if (tls_session_ready(srv) && tls_session_ready(cli))
			return 0;
	}
	return -1;
}

/* A client/server pair; fails the test unless the handshake gives the expected outcome. */
struct pair {
	struct tls_ctx *sctx, *cctx;
	struct tls_session *srv, *cli;
};

static int pair_open(struct pair *p, const struct tls_files *sf, const struct tls_files *cf,
                     const char *host)
{
	p->sctx = ctx_or_fail(TLS_SERVER, sf);
	p->cctx = ctx_or_fail(TLS_CLIENT, cf);
	p->srv = tls_session_create(p->sctx, NULL);
	p->cli = tls_session_create(p->cctx, host);
	return handshake(p->srv, p->cli);
}

static void pair_close(struct pair *p)
{
	tls_session_destroy(&p->srv);
	tls_session_destroy(&p->cli);
	ck_assert_ptr_null(p->srv);
	tls_ctx_destroy(&p->sctx);
	tls_ctx_destroy(&p->cctx);
	ck_assert_ptr_null(p->sctx);
}

/* Reads everything the receiver can decrypt into out; returns its length. */
static size_t drain(struct tls_session *s, uint8_t *out, size_t cap)
{
	size_t have = 0;
	for (;;) {
		ssize_t n = tls_session_read(s, out + have, cap - have);
		ck_assert_int_ge(n, 0);
		if (n == 0)
			return have;
		have += (size_t)n;
	}
}

START_TEST(test_tls_roundtrip)
{
	struct tls_files sf = {path_master_crt, path_master_key, NULL};
	struct tls_files cf = {NULL, NULL, path_ca};
	struct pair p;
	ck_assert_int_eq(pair_open(&p, &sf, &cf, "127.0.0.1"), 0);
	char what[128];
	tls_session_describe(p.cli, what, sizeof(what));
	ck_assert_msg(strncmp(what, "TLSv1.", 6) == 0, "%s", what);

	/* 300 KiB one way (many records), a short answer the other. */
	size_t big = 300 * 1024;
	uint8_t *msg = malloc(big), *got = malloc(big + 1);
	for (size_t i = 0; i < big; i++)
		msg[i] = (uint8_t)(i * 7);
	ck_assert_int_eq(tls_session_write(p.cli, msg, big), 0);
	ck_assert_int_gt(pump(p.cli, p.srv), (long)big);
	ck_assert_uint_eq(drain(p.srv, got, big + 1), big);
	ck_assert_mem_eq(got, msg, big);
	ck_assert_int_eq(tls_session_write(p.srv, (const uint8_t *)"welcome", 7), 0);
	ck_assert_int_gt(pump(p.srv, p.cli), 7);
	ck_assert_uint_eq(drain(p.cli, got, big), 7);
	ck_assert_mem_eq(got, "welcome", 7);

	/* close_notify ends the stream cleanly. */
	tls_session_close(p.cli);
	ck_assert_int_gt(pump(p.cli, p.srv), 0);
	ck_assert_int_eq(tls_session_read(p.srv, got, big), TLS_READ_EOF);
	free(msg);
	free(got);
	pair_close(&p);
}
END_TEST

START_TEST(test_tls_mutual)
{
	struct tls_files sf = {path_master_crt, path_master_key, path_ca};
	struct tls_files good = {path_client_crt, path_client_key, path_ca};
	struct tls_files intruder = {path_intruder_crt, path_intruder_key, path_ca};
	struct tls_files none = {NULL, NULL, path_ca};
	struct pair p;

	ck_assert_int_eq(pair_open(&p, &sf, &good, "127.0.0.1"), 0);
	pair_close(&p);

	ck_assert_int_eq(pair_open(&p, &sf, &intruder, "127.0.0.1"), -1);
	ck_assert_ptr_nonnull(
	    strstr(tls_session_error(p.srv), "peer's certificate is not trusted"));
	/* The client learns it from the alert. */
	(void)pump(p.srv, p.cli);
	uint8_t scratch[16];
	ck_assert_int_eq(tls_session_read(p.cli, scratch, sizeof(scratch)), TLS_READ_ERR);
	ck_assert_ptr_nonnull(strstr(tls_session_error(p.cli), "--tls-cert"));
	pair_close(&p);

	ck_assert_int_eq(pair_open(&p, &sf, &none, "127.0.0.1"), -1);
	ck_assert_ptr_nonnull(strstr(tls_session_error(p.srv), "presented no certificate"));
	pair_close(&p);
}
END_TEST

START_TEST(test_tls_untrusted_master)
{
	struct tls_files sf = {path_master_crt, path_master_key, NULL};
	struct tls_files rogue = {NULL, NULL, path_rogue};
	struct tls_files cf = {NULL, NULL, path_ca};
	struct pair p;

	ck_assert_int_eq(pair_open(&p, &sf, &rogue, "127.0.0.1"), -1);
	ck_assert_ptr_nonnull(
	    strstr(tls_session_error(p.cli), "master's certificate is not trusted"));
	ck_assert_ptr_nonnull(strstr(tls_session_error(p.cli), "--tls-ca"));
	pair_close(&p);

	/* The certificate lists 127.0.0.1 and master.example, nothing else. */
	ck_assert_int_eq(pair_open(&p, &sf, &cf, "master.example"), 0);
	pair_close(&p);
	ck_assert_int_eq(pair_open(&p, &sf, &cf, "127.0.0.2"), -1);
	ck_assert_ptr_nonnull(strstr(tls_session_error(p.cli), "not trusted"));
	pair_close(&p);
	ck_assert_int_eq(pair_open(&p, &sf, &cf, "other.example"), -1);
	pair_close(&p);
}
END_TEST

START_TEST(test_tls_plain_peer)
{
	struct tls_files sf = {path_master_crt, path_master_key, NULL};
	struct tls_files cf = {NULL, NULL, path_ca};
	struct tls_ctx *sctx = ctx_or_fail(TLS_SERVER, &sf);
	struct tls_ctx *cctx = ctx_or_fail(TLS_CLIENT, &cf);
	/* A shoal frame header (length 12) instead of a ClientHello. */
	const uint8_t frame[] = {0, 0, 0, 12, 0x0a, 0x02};
	struct tls_session *s = tls_session_create(sctx, NULL);
	ck_assert_int_eq(tls_session_feed(s, frame, sizeof(frame)), -1);
	ck_assert(tls_session_peer_plain(s));
	ck_assert_ptr_nonnull(strstr(tls_session_error(s), "plain"));
	tls_session_destroy(&s);

	struct tls_session *c = tls_session_create(cctx, "127.0.0.1");
	ck_assert_int_eq(tls_session_handshake(c), 0);
	ck_assert_int_eq(tls_session_feed(c, frame, sizeof(frame)), -1);
	ck_assert_ptr_nonnull(strstr(tls_session_error(c), "without TLS"));
	tls_session_destroy(&c);

	/* A plain side recognises a ClientHello. */
	c = tls_session_create(cctx, "127.0.0.1");
	ck_assert_int_eq(tls_session_handshake(c), 0);
	struct buf hello = BUF_INIT;
	ck_assert_uint_gt(tls_session_take(c, &hello), 5);
	ck_assert(tls_looks_like_hello(hello.data, hello.len));
	ck_assert(!tls_looks_like_hello(frame, sizeof(frame)));
	buf_free(&hello);
	tls_session_destroy(&c);

	/* Garbage that starts like a handshake record fails the handshake, not the process. */
	s = tls_session_create(sctx, NULL);
	const uint8_t junk[] = {0x16, 3, 1, 0, 8, 1, 0, 0, 4, 0xff, 0xff, 0xff, 0xff};
	uint8_t scratch[16];
	ck_assert_int_eq(tls_session_feed(s, junk, sizeof(junk)), 0);
	ck_assert_int_eq(tls_session_read(s, scratch, sizeof(scratch)), TLS_READ_ERR);
	tls_session_destroy(&s);
	tls_ctx_destroy(&sctx);
	tls_ctx_destroy(&cctx);
}
END_TEST

START_TEST(test_tls_files)
{
	char err[512];
	struct tls_ctx *ctx = NULL;
	struct tls_files f = {NULL, NULL, NULL};
	ck_assert(!tls_files_enabled(&f));
	ck_assert_int_eq(tls_files_check(TLS_SERVER, &f, err, sizeof(err)), 0);

	f = (struct tls_files){path_master_crt, NULL, NULL};
	ck_assert_int_eq(tls_files_check(TLS_SERVER, &f, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "--tls-cert needs --tls-key"));
	f = (struct tls_files){NULL, NULL, path_ca};
	ck_assert_int_eq(tls_files_check(TLS_SERVER, &f, err, sizeof(err)), -1);
	ck_assert_int_eq(tls_files_check(TLS_CLIENT, &f, err, sizeof(err)), 0);
	f = (struct tls_files){path_client_crt, path_client_key, NULL};
	ck_assert_int_eq(tls_files_check(TLS_CLIENT, &f, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "need --tls-ca"));

	f = (struct tls_files){"/nonexistent/x.crt", path_master_key, NULL};
	ck_assert_int_eq(tls_ctx_create(TLS_SERVER, &f, &ctx, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/x.crt: cannot read it"));
	f = (struct tls_files){path_garbage, path_master_key, NULL};
	ck_assert_int_eq(tls_ctx_create(TLS_SERVER, &f, &ctx, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a usable PEM certificate"));
	f = (struct tls_files){path_master_crt, path_garbage, NULL};
	ck_assert_int_eq(tls_ctx_create(TLS_SERVER, &f, &ctx, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a usable PEM private key"));
	f = (struct tls_files){path_master_crt, path_client_key, NULL};
	ck_assert_int_eq(tls_ctx_create(TLS_SERVER, &f, &ctx, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "does not belong to the certificate") != NULL, "%s", err);
	f = (struct tls_files){path_master_crt, path_master_key, path_garbage};
	ck_assert_int_eq(tls_ctx_create(TLS_SERVER, &f, &ctx, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no usable PEM CA certificate"));
	ck_assert_ptr_null(ctx);
}
END_TEST

static Suite *tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc = tcase_create("core");
	tcase_add_unchecked_fixture(tc, make_pki, remove_pki);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tls_roundtrip);
	tcase_add_test(tc, test_tls_mutual);
	tcase_add_test(tc, test_tls_untrusted_master);
	tcase_add_test(tc, test_tls_plain_peer);
	tcase_add_test(tc, test_tls_files);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tls_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
