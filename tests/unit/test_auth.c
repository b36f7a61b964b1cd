/* Unit tests for auth.c (HMAC-SHA256 against RFC 4231, the handshake proof against an
 * independent computation, replay memory, secret files) and handshake.c (both state machines
 * talking to each other in memory: success, wrong secret, role binding, replay, a secret on
 * one side only, out-of-order messages). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "codec.h"
#include "handshake.h"

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		ck_assert(sscanf(hex + 2 * i, "%2x", &v) == 1);
		out[i] = (uint8_t)v;
	}
}

/* ---- HMAC-SHA256: RFC 4231 test cases 1, 2 and 6 ---- */

struct hmac_case {
	uint8_t key_byte; /* key_len bytes of this; 0: use key_str */
	size_t key_len;
	const char *key_str;
	const char *data;
	const char *mac;
};

static const struct hmac_case hmac_cases[] = {
    {0x0b, 20, NULL, "Hi There",
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
    {0, 4, "Jefe", "what do ya want for nothing?",
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
    {0xaa, 131, NULL, "Test Using Larger Than Block-Size Key - Hash Key First",
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
};

START_TEST(test_hmac_rfc4231)
{
	const struct hmac_case *c = &hmac_cases[_i];
	uint8_t key[256], want[AUTH_MAC_LEN], got[AUTH_MAC_LEN];
	if (c->key_str != NULL)
		memcpy(key, c->key_str, c->key_len);
	else
		memset(key, c->key_byte, c->key_len);
	unhex(c->mac, want, sizeof(want));
	ck_assert_int_eq(auth_hmac(key, c->key_len, c->data, strlen(c->data), got), 0);
	ck_assert(memcmp(got, want, AUTH_MAC_LEN) == 0);
	ck_assert(auth_equal(got, want, AUTH_MAC_LEN));
	got[31] ^= 1;
	ck_assert(!auth_equal(got, want, AUTH_MAC_LEN));
}
END_TEST

/* ---- the proof: layout, prover and role binding ---- */

static const uint8_t test_key[] = "0123456789abcdef0123456789abcdef";
#define TEST_KEY_LEN (sizeof(test_key) - 1)

static void test_nonces(uint8_t np[AUTH_NONCE_LEN], uint8_t nm[AUTH_NONCE_LEN])
{
	for (unsigned i = 0; i < AUTH_NONCE_LEN; i++) {
		np[i] = (uint8_t)i;
		nm[i] = (uint8_t)(32 + i);
	}
}

START_TEST(test_proof_vectors)
{
	uint8_t np[AUTH_NONCE_LEN], nm[AUTH_NONCE_LEN], got[AUTH_MAC_LEN], want[AUTH_MAC_LEN];
	test_nonces(np, nm);
	/* Computed with Python's hmac module over the layout auth.h documents. */
	ck_assert_int_eq(auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_MASTER, 1,
	                            SHOAL__ROLE__ROLE_WORKER, np, nm, got),
	                 0);
	unhex("81549e491d99846c27997d12e6bf33448bbf6079e5822832e9da21f45338c033", want, 32);
	ck_assert(auth_equal(got, want, AUTH_MAC_LEN));
	ck_assert_int_eq(auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 1,
	                            SHOAL__ROLE__ROLE_CLIENT, np, nm, got),
	                 0);
	unhex("a50b0e4aade996737d136e83758fd006c6c347482518d7211eaa6751fbbd4dd3", want, 32);
	ck_assert(auth_equal(got, want, AUTH_MAC_LEN));
}
END_TEST

START_TEST(test_proof_binding)
{
	uint8_t np[AUTH_NONCE_LEN], nm[AUTH_NONCE_LEN];
	uint8_t base[AUTH_MAC_LEN], other[AUTH_MAC_LEN];
	test_nonces(np, nm);
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 1, SHOAL__ROLE__ROLE_WORKER, np, nm, base);
	/* Each input changes the proof: role, prover, version, either nonce, the key. */
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 1, SHOAL__ROLE__ROLE_CLIENT, np, nm,
	           other);
	ck_assert(!auth_equal(base, other, AUTH_MAC_LEN));
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_MASTER, 1, SHOAL__ROLE__ROLE_WORKER, np, nm,
	           other);
	ck_assert(!auth_equal(base, other, AUTH_MAC_LEN));
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 2, SHOAL__ROLE__ROLE_WORKER, np, nm,
	           other);
	ck_assert(!auth_equal(base, other, AUTH_MAC_LEN));
	/* Swapping the nonces (a reflected challenge) gives another proof. */
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 1, SHOAL__ROLE__ROLE_WORKER, nm, np,
	           other);
	ck_assert(!auth_equal(base, other, AUTH_MAC_LEN));
	auth_proof(test_key, TEST_KEY_LEN - 1, AUTH_BY_PEER, 1, SHOAL__ROLE__ROLE_WORKER, np, nm,
	           other);
	ck_assert(!auth_equal(base, other, AUTH_MAC_LEN));
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, 1, SHOAL__ROLE__ROLE_WORKER, np, nm,
	           other);
	ck_assert(auth_equal(base, other, AUTH_MAC_LEN));
}
END_TEST

START_TEST(test_random)
{
	uint8_t a[AUTH_NONCE_LEN], b[AUTH_NONCE_LEN];
	ck_assert_int_eq(auth_random(a, sizeof(a)), 0);
	ck_assert_int_eq(auth_random(b, sizeof(b)), 0);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

START_TEST(test_replay_memory)
{
	struct auth_replay *r = malloc(sizeof(*r));
	ck_assert_ptr_nonnull(r);
	auth_replay_init(r);
	uint8_t n[AUTH_NONCE_LEN] = {0};
	ck_assert(!auth_replay_seen(r, n));
	ck_assert(auth_replay_seen(r, n));
	/* After AUTH_REPLAY_SLOTS other nonces, the first one is forgotten. */
	for (uint32_t i = 1; i <= AUTH_REPLAY_SLOTS; i++) {
		uint8_t o[AUTH_NONCE_LEN] = {0};
		memcpy(o, &i, sizeof(i));
		ck_assert(!auth_replay_seen(r, o));
	}
	ck_assert(!auth_replay_seen(r, n));
	free(r);
}
END_TEST

/* ---- secret files ---- */

static char tmpdir[] = "/tmp/shoal-test-auth-XXXXXX";

static void setup_dir(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown_dir(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(tmpdir, "/tmp/shoal-test-auth-XXXXXX");
}

static const char *write_secret(const char *name, const char *content, size_t len, mode_t mode)
{
	static char path[256];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(content, 1, len, f), len);
	fclose(f);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

static void expect_refused(const char *path, const char *words)
{
	uint8_t *key = NULL;
	size_t len = 0;
	char err[512] = "";
	ck_assert_int_eq(auth_secret_load(path, &key, &len, err, sizeof(err)), -1);
	ck_assert_ptr_null(key);
	ck_assert_msg(strstr(err, words) != NULL, "'%s' lacks '%s'", err, words);
}

START_TEST(test_secret_load)
{
	uint8_t *key = NULL;
	size_t len = 0;
	char err[512];
	const char *p = write_secret("ok", "correct horse battery staple\r\n\n", 31, 0600);
	ck_assert_int_eq(auth_secret_load(p, &key, &len, err, sizeof(err)), 0);
	ck_assert_uint_eq(len, 28); /* the trailing whitespace is dropped */
	ck_assert(memcmp(key, "correct horse battery staple", 28) == 0);
	auth_secret_free(&key, len);
	ck_assert_ptr_null(key);
	p = write_secret("ro", "0123456789abcdef", 16, 0400);
	ck_assert_int_eq(auth_secret_load(p, &key, &len, err, sizeof(err)), 0);
	auth_secret_free(&key, len);

	expect_refused(write_secret("g", "0123456789abcdef", 16, 0640),
	               "readable by group or others (mode 0640); restrict it with: chmod 600");
	expect_refused(write_secret("o", "0123456789abcdef", 16, 0604), "readable by group");
	expect_refused(write_secret("gw", "0123456789abcdef", 16, 0620),
	               "accessible by group or others (mode 0620)");
	expect_refused(write_secret("empty", "", 0, 0600), "is empty");
	expect_refused(write_secret("ws", " \n\t\n", 4, 0600), "is empty");
	expect_refused(write_secret("short", "0123456789abcde\n", 16, 0600),
	               "holds 15 bytes; a cluster secret needs at least 16");
	static char big[AUTH_SECRET_MAX + 1];
	memset(big, 'x', sizeof(big));
	expect_refused(write_secret("big", big, sizeof(big), 0600), "larger than 4096 bytes");
	expect_refused(tmpdir, "not a regular file");
	char missing[300];
	snprintf(missing, sizeof(missing), "%s/none", tmpdir);
	expect_refused(missing, "cannot open secret file");
}
END_TEST

START_TEST(test_secret_path)
{
	ck_assert_int_eq(setenv(AUTH_SECRET_ENV, "/from/env", 1), 0);
	ck_assert_str_eq(auth_secret_path("/from/flag"), "/from/flag");
	ck_assert_str_eq(auth_secret_path(NULL), "/from/env");
	ck_assert_str_eq(auth_secret_path(""), "/from/env");
	ck_assert_int_eq(setenv(AUTH_SECRET_ENV, "", 1), 0);
	ck_assert_ptr_null(auth_secret_path(NULL));
	ck_assert_int_eq(unsetenv(AUTH_SECRET_ENV), 0);
	ck_assert_ptr_null(auth_secret_path(NULL));
}
END_TEST

/* ---- the handshake state machines, in memory ---- */

static const uint8_t other_key[] = "fedcba9876543210fedcba9876543210";

/* Copies an envelope through the codec, as the wire does, so what the other side gets has
 * been packed, unpacked and validated. */
static Shoal__Envelope *wire(const Shoal__Envelope *env)
{
	size_t n = codec_frame_size(env);
	uint8_t *buf = malloc(n);
	ck_assert_ptr_nonnull(buf);
	codec_pack_frame(env, buf);
	char err[256];
	Shoal__Envelope *out = codec_unpack(buf + 4, n - 4, CODEC_BUDGET_DEFAULT, err, sizeof(err));
	free(buf);
	ck_assert_msg(out != NULL, "%s", err);
	ck_assert_msg(codec_validate(out, err, sizeof(err)) == 0, "%s", err);
	return out;
}

static Shoal__Envelope *hello_env(struct handshake_peer *hp, Shoal__Hello *h, Shoal__Envelope *e)
{
	shoal__hello__init(h);
	shoal__envelope__init(e);
	ck_assert_int_eq(handshake_peer_hello(hp, h), 0);
	e->msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	e->hello = h;
	return wire(e);
}

static Shoal__Envelope *welcome_env(void)
{
	static Shoal__Welcome w;
	static Shoal__Envelope e;
	shoal__welcome__init(&w);
	w.version = SHOAL_PROTOCOL_VERSION;
	shoal__envelope__init(&e);
	e.msg_case = SHOAL__ENVELOPE__MSG_WELCOME;
	e.welcome = &w;
	return wire(&e);
}

/* Runs a whole handshake. Returns the server's last step; *peer_step is the peer's. */
static enum handshake_step run_handshake(const uint8_t *skey, const uint8_t *pkey, Shoal__Role role,
                                         struct auth_replay *replay, enum handshake_step *peer_step,
                                         struct handshake_server *hs, struct handshake_peer *hp)
{
	handshake_server_init(hs, skey, skey ? TEST_KEY_LEN : 0, replay);
	handshake_peer_init(hp, pkey, pkey ? TEST_KEY_LEN : 0, role);
	Shoal__Hello h;
	Shoal__Envelope e;
	Shoal__Envelope *in = hello_env(hp, &h, &e);
	ck_assert_int_eq(in->hello->has_nonce, pkey != NULL);
	enum handshake_step s = handshake_server_on_message(hs, in);
	codec_free(in);
	*peer_step = HANDSHAKE_SEND;
	if (s == HANDSHAKE_SEND) {
		in = wire(&hs->out); /* Challenge */
		*peer_step = handshake_peer_on_message(hp, in);
		codec_free(in);
		if (*peer_step != HANDSHAKE_SEND)
			return s;
		in = wire(&hp->out); /* Proof */
		s = handshake_server_on_message(hs, in);
		codec_free(in);
	}
	if (s == HANDSHAKE_DONE) {
		in = welcome_env();
		*peer_step = handshake_peer_on_message(hp, in);
		codec_free(in);
	}
	return s;
}

START_TEST(test_handshake_ok)
{
	struct handshake_server hs;
	struct handshake_peer hp;
	enum handshake_step ps;
	struct auth_replay *r = malloc(sizeof(*r));
	auth_replay_init(r);
	for (int role = SHOAL__ROLE__ROLE_WORKER; role <= SHOAL__ROLE__ROLE_CLIENT; role++) {
		ck_assert_int_eq(run_handshake(test_key, test_key, role, r, &ps, &hs, &hp),
		                 HANDSHAKE_DONE);
		ck_assert_int_eq(ps, HANDSHAKE_DONE);
		ck_assert_int_eq(hs.role, role);
		ck_assert_int_eq(hs.state, HANDSHAKE_FINISHED);
		ck_assert_ptr_nonnull(hp.welcome);
	}
	/* No secret anywhere: the plain handshake. */
	ck_assert_int_eq(run_handshake(NULL, NULL, SHOAL__ROLE__ROLE_CLIENT, r, &ps, &hs, &hp),
	                 HANDSHAKE_DONE);
	ck_assert_int_eq(ps, HANDSHAKE_DONE);
	free(r);
}
END_TEST

START_TEST(test_handshake_wrong_secret)
{
	struct handshake_server hs;
	struct handshake_peer hp;
	enum handshake_step ps;
	/* The peer finds out first: the master's proof does not match its secret. */
	ck_assert_int_eq(
	    run_handshake(test_key, other_key, SHOAL__ROLE__ROLE_WORKER, NULL, &ps, &hs, &hp),
	    HANDSHAKE_SEND);
	ck_assert_int_eq(ps, HANDSHAKE_REFUSE);
	ck_assert(hp.permanent && !hp.refused);
	ck_assert_ptr_nonnull(strstr(hp.why, "could not prove"));
	ck_assert_int_eq(hs.state, HANDSHAKE_CHALLENGED);

	/* A peer that sends a proof made with another key anyway is refused by the master. */
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	handshake_peer_init(&hp, other_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	Shoal__Hello h;
	Shoal__Envelope e;
	Shoal__Envelope *in = hello_env(&hp, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	codec_free(in);
	uint8_t mac[AUTH_MAC_LEN];
	auth_proof(other_key, TEST_KEY_LEN, AUTH_BY_PEER, SHOAL_PROTOCOL_VERSION,
	           SHOAL__ROLE__ROLE_CLIENT, hp.np, hs.nm, mac);
	Shoal__Proof p = SHOAL__PROOF__INIT;
	p.proof.data = mac;
	p.proof.len = sizeof(mac);
	Shoal__Envelope pe = SHOAL__ENVELOPE__INIT;
	pe.msg_case = SHOAL__ENVELOPE__MSG_PROOF;
	pe.proof = &p;
	ck_assert_int_eq(handshake_server_on_message(&hs, &pe), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs.why, "wrong proof"));
	ck_assert(hs.permanent);
}
END_TEST

START_TEST(test_handshake_role_binding)
{
	/* A worker's Hello, then the proof a client would make over the same nonces. */
	struct handshake_server hs;
	struct handshake_peer hp;
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	handshake_peer_init(&hp, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_WORKER);
	Shoal__Hello h;
	Shoal__Envelope e;
	Shoal__Envelope *in = hello_env(&hp, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	codec_free(in);
	uint8_t mac[AUTH_MAC_LEN];
	auth_proof(test_key, TEST_KEY_LEN, AUTH_BY_PEER, SHOAL_PROTOCOL_VERSION,
	           SHOAL__ROLE__ROLE_CLIENT, hp.np, hs.nm, mac);
	Shoal__Proof p = SHOAL__PROOF__INIT;
	p.proof.data = mac;
	p.proof.len = sizeof(mac);
	Shoal__Envelope pe = SHOAL__ENVELOPE__INIT;
	pe.msg_case = SHOAL__ENVELOPE__MSG_PROOF;
	pe.proof = &p;
	ck_assert_int_eq(handshake_server_on_message(&hs, &pe), HANDSHAKE_REFUSE);
	ck_assert_msg(strstr(hs.why, "role binding: a peer that said it is a worker presented a "
	                             "client's proof") != NULL,
	              "%s", hs.why);
	/* The master's own proof, reflected back as the peer's, is refused too. */
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	handshake_peer_init(&hp, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_WORKER);
	in = hello_env(&hp, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	codec_free(in);
	p.proof.data = hs.mac;
	ck_assert_int_eq(handshake_server_on_message(&hs, &pe), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs.why, "wrong proof"));
}
END_TEST

START_TEST(test_handshake_replay)
{
	struct auth_replay *r = malloc(sizeof(*r));
	auth_replay_init(r);
	struct handshake_server hs;
	struct handshake_peer hp;
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, r);
	handshake_peer_init(&hp, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	Shoal__Hello h;
	Shoal__Envelope e;
	Shoal__Envelope *in = hello_env(&hp, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	/* The same Hello on another connection. */
	struct handshake_server hs2;
	handshake_server_init(&hs2, test_key, TEST_KEY_LEN, r);
	ck_assert_int_eq(handshake_server_on_message(&hs2, in), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs2.why, "replayed handshake"));
	codec_free(in);
	/* A recorded Proof against a fresh challenge. */
	Shoal__Envelope *ch = wire(&hs.out);
	ck_assert_int_eq(handshake_peer_on_message(&hp, ch), HANDSHAKE_SEND);
	codec_free(ch);
	Shoal__Envelope *proof = wire(&hp.out);
	struct handshake_peer hp2;
	handshake_peer_init(&hp2, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	handshake_server_init(&hs2, test_key, TEST_KEY_LEN, r);
	in = hello_env(&hp2, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs2, in), HANDSHAKE_SEND);
	codec_free(in);
	ck_assert_int_eq(handshake_server_on_message(&hs2, proof), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs2.why, "wrong proof"));
	codec_free(proof);
	free(r);
}
END_TEST

START_TEST(test_handshake_one_sided)
{
	struct handshake_server hs;
	struct handshake_peer hp;
	enum handshake_step ps;
	/* The master has a secret, the peer none. */
	ck_assert_int_eq(
	    run_handshake(test_key, NULL, SHOAL__ROLE__ROLE_CLIENT, NULL, &ps, &hs, &hp),
	    HANDSHAKE_REFUSE);
	ck_assert(hs.permanent);
	ck_assert_ptr_nonnull(strstr(hs.why, "authentication required"));
	ck_assert_ptr_nonnull(strstr(hs.why, "--secret-file"));
	/* The peer has a secret, the master none. */
	ck_assert_int_eq(
	    run_handshake(NULL, test_key, SHOAL__ROLE__ROLE_WORKER, NULL, &ps, &hs, &hp),
	    HANDSHAKE_REFUSE);
	ck_assert(hs.permanent);
	ck_assert_ptr_nonnull(strstr(hs.why, "authentication mismatch: this worker has a cluster "
	                                     "secret but the master has none"));
	/* An old master that welcomes a peer with a secret without proving anything. */
	handshake_peer_init(&hp, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	Shoal__Hello h;
	Shoal__Envelope e;
	codec_free(hello_env(&hp, &h, &e));
	Shoal__Envelope *w = welcome_env();
	ck_assert_int_eq(handshake_peer_on_message(&hp, w), HANDSHAKE_REFUSE);
	ck_assert(hp.permanent);
	ck_assert_ptr_nonnull(strstr(hp.why, "welcomed it without one"));
	codec_free(w);
}
END_TEST

START_TEST(test_handshake_out_of_order)
{
	struct handshake_server hs;
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	/* A Proof before any Hello. */
	uint8_t mac[AUTH_MAC_LEN] = {0};
	Shoal__Proof p = SHOAL__PROOF__INIT;
	p.proof.data = mac;
	p.proof.len = sizeof(mac);
	Shoal__Envelope pe = SHOAL__ENVELOPE__INIT;
	pe.msg_case = SHOAL__ENVELOPE__MSG_PROOF;
	pe.proof = &p;
	ck_assert_int_eq(handshake_server_on_message(&hs, &pe), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs.why, "expected hello first, got proof"));
	/* Anything after a refusal is refused too. */
	ck_assert_int_eq(handshake_server_on_message(&hs, &pe), HANDSHAKE_REFUSE);

	/* A second Hello instead of the Proof. */
	struct handshake_peer hp;
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	handshake_peer_init(&hp, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	Shoal__Hello h;
	Shoal__Envelope e;
	Shoal__Envelope *in = hello_env(&hp, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hs.why, "expected proof"));
	codec_free(in);

	/* The peer: a challenge when it has no secret; something else than the handshake. */
	handshake_peer_init(&hp, NULL, 0, SHOAL__ROLE__ROLE_CLIENT);
	in = hello_env(&hp, &h, &e);
	codec_free(in);
	handshake_server_init(&hs, test_key, TEST_KEY_LEN, NULL);
	struct handshake_peer keyed;
	handshake_peer_init(&keyed, test_key, TEST_KEY_LEN, SHOAL__ROLE__ROLE_CLIENT);
	in = hello_env(&keyed, &h, &e);
	ck_assert_int_eq(handshake_server_on_message(&hs, in), HANDSHAKE_SEND);
	codec_free(in);
	ck_assert_int_eq(handshake_peer_on_message(&hp, &hs.out), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hp.why, "no cluster secret is configured here"));
	/* A challenge twice. */
	ck_assert_int_eq(handshake_peer_on_message(&keyed, &hs.out), HANDSHAKE_SEND);
	ck_assert_int_eq(handshake_peer_on_message(&keyed, &hs.out), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(keyed.why, "second challenge"));
	/* A message that is not part of a handshake. */
	handshake_peer_init(&hp, NULL, 0, SHOAL__ROLE__ROLE_WORKER);
	codec_free(hello_env(&hp, &h, &e));
	ck_assert_int_eq(handshake_peer_on_message(&hp, &pe), HANDSHAKE_REFUSE);
	ck_assert_ptr_nonnull(strstr(hp.why, "expected welcome, challenge or refusal"));
}
END_TEST

START_TEST(test_handshake_version)
{
	struct handshake_server hs;
	handshake_server_init(&hs, NULL, 0, NULL);
	Shoal__Hello h = SHOAL__HELLO__INIT;
	h.version = SHOAL_PROTOCOL_VERSION + 1;
	h.role = SHOAL__ROLE__ROLE_WORKER;
	Shoal__Envelope e = SHOAL__ENVELOPE__INIT;
	e.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	e.hello = &h;
	ck_assert_int_eq(handshake_server_on_message(&hs, &e), HANDSHAKE_REFUSE);
	ck_assert(hs.permanent);
	ck_assert_ptr_nonnull(strstr(hs.why, "protocol version mismatch"));
	/* The peer hears the refusal and keeps its permanence. */
	struct handshake_peer hp;
	handshake_peer_init(&hp, NULL, 0, SHOAL__ROLE__ROLE_WORKER);
	Shoal__Hello ph;
	Shoal__Envelope pe;
	codec_free(hello_env(&hp, &ph, &pe));
	Shoal__Refusal r = SHOAL__REFUSAL__INIT;
	r.reason = hs.why;
	r.has_permanent = true;
	r.permanent = true;
	Shoal__Envelope re = SHOAL__ENVELOPE__INIT;
	re.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
	re.refusal = &r;
	ck_assert_int_eq(handshake_peer_on_message(&hp, &re), HANDSHAKE_REFUSE);
	ck_assert(hp.refused && hp.permanent);
	ck_assert_str_eq(hp.why, hs.why);
}
END_TEST

static Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("crypto");
	tcase_add_loop_test(tc, test_hmac_rfc4231, 0,
	                    (int)(sizeof(hmac_cases) / sizeof(hmac_cases[0])));
	tcase_add_test(tc, test_proof_vectors);
	tcase_add_test(tc, test_proof_binding);
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_replay_memory);
	suite_add_tcase(s, tc);
	tc = tcase_create("secret");
	tcase_add_checked_fixture(tc, setup_dir, teardown_dir);
	tcase_add_test(tc, test_secret_load);
	tcase_add_test(tc, test_secret_path);
	suite_add_tcase(s, tc);
	tc = tcase_create("handshake");
	tcase_add_test(tc, test_handshake_ok);
	tcase_add_test(tc, test_handshake_wrong_secret);
	tcase_add_test(tc, test_handshake_role_binding);
	tcase_add_test(tc, test_handshake_replay);
	tcase_add_test(tc, test_handshake_one_sided);
	tcase_add_test(tc, test_handshake_out_of_order);
	tcase_add_test(tc, test_handshake_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(auth_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
