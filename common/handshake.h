/* handshake.h: the opening of every connection, as two socket-free state machines: the
 * master's side (handshake_server) and the side of a worker or client (handshake_peer). The
 * daemons feed them the envelopes that arrive and act on the step they return, so the same
 * code runs under the fuzzer (tests/fuzz/fuzz_handshake.c) as in production.
 *
 * Without a cluster secret on either side:   Hello -> Welcome.
 * With the secret on both sides (auth.h):
 *
 *   peer                                          master
 *   Hello {version, role, nonce Np}       ---->   checks version; Np not seen before
 *                                         <----   Challenge {Nm, proof_M}
 *   checks proof_M = HMAC(K, M|v|role|Np|Nm)
 *   Proof {proof_P = HMAC(K, P|v|role|Np|Nm)} ->  checks proof_P
 *                                         <----   Welcome (or Refusal)
 *
 * Each side proves knowledge of K over both fresh nonces, so a recorded handshake is useless
 * later, a proof made for one role does not admit the other, and the master cannot be
 * impersonated to a worker (which would then run its tasks) or a client. A secret on one
 * side only ends in a refusal that says so, on both sides. A peer is never told more than
 * why it was refused; logs name the peer's address and never secret material. */
#ifndef SHOAL_HANDSHAKE_H
#define SHOAL_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "shoal.pb-c.h"

/* What the caller does after handing an envelope to a handshake. */
enum handshake_step {
	HANDSHAKE_SEND,   /* send hs->out, then wait for the next message */
	HANDSHAKE_DONE,   /* the peer is admitted / the master accepted us */
	HANDSHAKE_REFUSE, /* give up: hs->why says why (the master sends it as a Refusal with
	                   * hs->permanent; a peer closes and reports it) */
};

enum handshake_state {
	HANDSHAKE_START,      /* server: waiting for Hello; peer: Hello not sent yet */
	HANDSHAKE_HELLO_SENT, /* peer: waiting for Challenge, Welcome or Refusal */
	HANDSHAKE_CHALLENGED, /* server: Challenge sent, waiting for Proof; peer: Proof sent */
	HANDSHAKE_FINISHED,   /* admitted */
	HANDSHAKE_FAILED,     /* refused; feed nothing more */
};

/* The master's side of one connection. The secret and the replay memory are borrowed and
 * must outlive it. */
struct handshake_server {
	const uint8_t *key; /* NULL: no cluster secret, plain handshake */
	size_t key_len;
	struct auth_replay *replay; /* NULL: no replay memory */
	enum handshake_state state;
	Shoal__Role role; /* from the Hello */
	uint8_t np[AUTH_NONCE_LEN], nm[AUTH_NONCE_LEN];
	uint8_t mac[AUTH_MAC_LEN];
	bool permanent; /* with HANDSHAKE_REFUSE: the peer's configuration is wrong */
	char why[384];
	Shoal__Challenge challenge;
	Shoal__Envelope out; /* with HANDSHAKE_SEND; points into this struct */
};

void handshake_server_init(struct handshake_server *hs, const uint8_t *key, size_t key_len,
                           struct auth_replay *replay);
/* Takes the next message from the peer (borrowed; only Hello and Proof belong here). After
 * HANDSHAKE_DONE the Hello's other fields (name, slots...) are the caller's to use: it kept
 * them when it passed the Hello in. */
enum handshake_step handshake_server_on_message(struct handshake_server *hs,
                                                const Shoal__Envelope *env);

/* A worker's or client's side of one connection. */
struct handshake_peer {
	const uint8_t *key; /* borrowed; NULL: no cluster secret */
	size_t key_len;
	Shoal__Role role;
	enum handshake_state state;
	uint8_t np[AUTH_NONCE_LEN], nm[AUTH_NONCE_LEN];
	uint8_t mac[AUTH_MAC_LEN];
	const Shoal__Welcome *welcome; /* with HANDSHAKE_DONE: the master's Welcome (borrowed
	                                * from the envelope just handed in) */
	bool permanent; /* with HANDSHAKE_REFUSE: retrying with this configuration cannot help */
	bool refused;   /* with HANDSHAKE_REFUSE: the master sent a Refusal (why is its reason) */
	char why[512];
	Shoal__Proof proof;
	Shoal__Envelope out;
};

void handshake_peer_init(struct handshake_peer *hp, const uint8_t *key, size_t key_len,
                         Shoal__Role role);
/* Fills hello's version, role and (with a secret) a fresh nonce that stays valid while hp
 * lives; the caller sets the rest and sends it. Returns 0, or -1 with hp->why set if no
 * random nonce could be drawn. */
int handshake_peer_hello(struct handshake_peer *hp, Shoal__Hello *hello);
/* Takes the next message from the master (borrowed). */
enum handshake_step handshake_peer_on_message(struct handshake_peer *hp,
                                              const Shoal__Envelope *env);

/* "worker" or "client". */
const char *handshake_role_name(Shoal__Role role);

#endif
