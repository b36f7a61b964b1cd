/* fuzz_handshake: the handshake state machines (common/handshake.h) of a master and a peer
 * talking to each other, with the fuzzer in the middle.
 *
 * The first input byte sets the scene: whether the master has the cluster secret, whether the
 * peer has it (the same one or another), and the peer's role. The rest is a script of steps:
 * deliver the peer's next message to the master, the master's to the peer, flip a byte of a
 * message in flight, or inject a frame of the fuzzer's own making (decoded and validated as
 * the daemons do) into either side. Every message crosses codec_pack_frame / codec_unpack /
 * codec_validate, as on the wire. Randomness (nonces) comes from a generator seeded by the
 * input, so a crash replays exactly.
 *
 * Beyond memory safety it checks the properties that matter: the master admits a peer only
 * if both hold the same secret or neither has one, and only in the role the peer's Hello
 * claimed; a peer accepts only a master holding its secret (or, without one, a master that
 * has none); a state machine that refused never admits afterwards. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "codec.h"
#include "frame.h"
#include "fuzz_util.h"
#include "handshake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key_a[] = "fuzz-cluster-secret-aaaaaaaaaaaa";
static const uint8_t key_b[] = "fuzz-cluster-secret-bbbbbbbbbbbb";
#define KEY_LEN   (sizeof(key_a) - 1)
#define MAX_STEPS 64
#define MAX_MSG   4096

static uint64_t rng;

static int fuzz_random(uint8_t *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (uint8_t)(fuzz_rand(&rng) >> 56);
	return 0;
}

/* A message in flight: a whole frame (header + payload). */
struct msg {
	uint8_t buf[MAX_MSG];
	size_t len; /* 0: none */
};

static void put(struct msg *m, const Shoal__Envelope *env)
{
	size_t n = codec_frame_size(env);
	if (n > sizeof(m->buf))
		abort(); /* handshake messages are small */
	codec_pack_frame(env, m->buf);
	m->len = n;
}

/* As the receiving conn does: frame, unpack with the daemons' budget, validate. NULL if the
 * receiver would have closed the connection instead. */
static Shoal__Envelope *take(const uint8_t *frame, size_t len)
{
	uint32_t plen;
	if (frame_parse(frame, len, FRAME_DEFAULT_MAX, &plen) != FRAME_READY ||
	    (size_t)plen + FRAME_HEADER_SIZE != len)
		return NULL;
	char err[256];
	Shoal__Envelope *env =
	    codec_unpack(frame + FRAME_HEADER_SIZE, plen, CODEC_BUDGET_DEFAULT, err, sizeof(err));
	if (env != NULL && codec_validate(env, err, sizeof(err)) != 0) {
		codec_free(env);
		env = NULL;
	}
	return env;
}

struct scene {
	struct handshake_server hs;
	struct handshake_peer hp;
	struct auth_replay replay;
	const uint8_t *skey, *pkey;
	Shoal__Role hello_role; /* the role of the Hello the master took first */
	bool server_over, peer_over, server_done, peer_done;
	struct msg to_server, to_peer;
};

/* The master's answer, as server.c sends it. */
static void server_step(struct scene *sc, const Shoal__Envelope *env)
{
	if (sc->server_over)
		return;
	bool first = sc->hs.state == HANDSHAKE_START && env->msg_case == SHOAL__ENVELOPE__MSG_HELLO;
	if (first)
		sc->hello_role = env->hello->role;
	enum handshake_step st = handshake_server_on_message(&sc->hs, env);
	Shoal__Envelope out = SHOAL__ENVELOPE__INIT;
	switch (st) {
	case HANDSHAKE_SEND:
		put(&sc->to_peer, &sc->hs.out);
		break;
	case HANDSHAKE_DONE: {
		/* Admitted: both have the same secret, or neither has one; in the Hello's role. */
		bool same = sc->skey == NULL ? sc->pkey == NULL : sc->pkey == sc->skey;
		if (!same && sc->skey != NULL)
			abort(); /* a peer without the master's secret got in */
		if (sc->hs.role != sc->hello_role)
			abort();
		Shoal__Welcome w = SHOAL__WELCOME__INIT;
		w.version = SHOAL_PROTOCOL_VERSION;
		out.msg_case = SHOAL__ENVELOPE__MSG_WELCOME;
		out.welcome = &w;
		put(&sc->to_peer, &out);
		sc->server_over = sc->server_done = true;
		break;
	}
	case HANDSHAKE_REFUSE: {
		if (sc->hs.why[0] == '\0')
			abort(); /* a refusal always says why */
		Shoal__Refusal r = SHOAL__REFUSAL__INIT;
		r.reason = sc->hs.why;
		r.has_permanent = true;
		r.permanent = sc->hs.permanent;
		out.msg_case = SHOAL__ENVELOPE__MSG_REFUSAL;
		out.refusal = &r;
		put(&sc->to_peer, &out);
		sc->server_over = true;
		break;
	}
	}
}

static void peer_step(struct scene *sc, const Shoal__Envelope *env)
{
	if (sc->peer_over)
		return;
	switch (handshake_peer_on_message(&sc->hp, env)) {
	case HANDSHAKE_SEND:
		put(&sc->to_server, &sc->hp.out);
		break;
	case HANDSHAKE_DONE:
		/* With a secret, the peer accepts only a master that proved the same one. */
		if (sc->pkey != NULL && sc->skey != sc->pkey)
			abort();
		sc->peer_over = sc->peer_done = true;
		break;
	case HANDSHAKE_REFUSE:
		if (sc->hp.why[0] == '\0')
			abort();
		sc->peer_over = true;
		break;
	}
}

static void deliver(struct msg *m, struct scene *sc, bool to_server)
{
	if (m->len == 0)
		return;
	Shoal__Envelope *env = take(m->buf, m->len);
	m->len = 0;
	if (env == NULL)
		return; /* the conn would have closed; the state machines never see it */
	if (to_server)
		server_step(sc, env);
	else
		peer_step(sc, env);
	codec_free(env);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t flags = data[0];
	data++;
	size--;
	rng = fuzz_hash(data, size) ^ flags;
	auth_set_random_source(fuzz_random);

	static struct scene sc;
	memset(&sc, 0, sizeof(sc));
	auth_replay_init(&sc.replay);
	sc.skey = (flags & 1) ? key_a : NULL;
	sc.pkey = (flags & 2) ? ((flags & 4) ? key_b : key_a) : NULL;
	Shoal__Role role = (flags & 8) ? SHOAL__ROLE__ROLE_WORKER : SHOAL__ROLE__ROLE_CLIENT;
	handshake_server_init(&sc.hs, sc.skey, KEY_LEN, (flags & 16) ? NULL : &sc.replay);
	handshake_peer_init(&sc.hp, sc.pkey, KEY_LEN, role);

	Shoal__Hello hello = SHOAL__HELLO__INIT;
	if (handshake_peer_hello(&sc.hp, &hello) < 0)
		abort();
	hello.name = "fuzz";
	hello.has_slots = true;
	hello.slots = 1;
	Shoal__Envelope env = SHOAL__ENVELOPE__INIT;
	env.msg_case = SHOAL__ENVELOPE__MSG_HELLO;
	env.hello = &hello;
	put(&sc.to_server, &env);
	struct msg recorded = sc.to_server; /* for replays */

	size_t off = 0;
	for (int step = 0; step < MAX_STEPS && off < size; step++) {
		uint8_t op = data[off++];
		switch (op % 6) {
		case 0:
			deliver(&sc.to_server, &sc, true);
			break;
		case 1:
			deliver(&sc.to_peer, &sc, false);
			break;
		case 2: { /* flip one byte of a message in flight */
			struct msg *m = (op & 8) ? &sc.to_peer : &sc.to_server;
			if (m->len > 0 && off < size) {
				m->buf[data[off] % m->len] ^= (uint8_t)(1u << (op >> 5));
				off++;
			}
			break;
		}
		case 3:
		case 4: { /* a frame of the fuzzer's own: [len] [payload], into either side */
			if (off >= size)
				break;
			size_t n = data[off++];
			if (n > size - off)
				n = size - off;
			struct msg m;
			m.buf[0] = m.buf[1] = 0;
			m.buf[2] = (uint8_t)(n >> 8);
			m.buf[3] = (uint8_t)n;
			memcpy(m.buf + FRAME_HEADER_SIZE, data + off, n);
			m.len = n + FRAME_HEADER_SIZE;
			off += n;
			deliver(&m, &sc, op % 6 == 3);
			break;
		}
		default: { /* the peer's first Hello again, on a fresh master connection */
			struct handshake_server again;
			handshake_server_init(&again, sc.skey, KEY_LEN,
			                      (flags & 16) ? NULL : &sc.replay);
			Shoal__Envelope *h = take(recorded.buf, recorded.len);
			if (h == NULL)
				abort();
			bool seen = false;
			if (h->hello->has_nonce) {
				uint64_t fp;
				memcpy(&fp, h->hello->nonce.data, sizeof(fp));
				for (size_t i = 0; i < sc.replay.count; i++)
					seen |= sc.replay.seen[i] == fp;
			}
			enum handshake_step st = handshake_server_on_message(&again, h);
			/* A nonce the replay memory holds is refused (with a secret on the master).
			 */
			if (!(flags & 16) && sc.skey != NULL && seen && st != HANDSHAKE_REFUSE)
				abort();
			codec_free(h);
			break;
		}
		}
	}
	auth_set_random_source(NULL);
	return 0;
}
