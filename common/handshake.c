/* handshake.c: the connection opening's two state machines (see handshake.h). */
#include "handshake.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "codec.h"

#define HANDSHAKE_HOW_SECRET "--secret-file FILE (or " AUTH_SECRET_ENV ")"

const char *handshake_role_name(Shoal__Role role)
{
	switch (role) {
	case SHOAL__ROLE__ROLE_WORKER:
		return "worker";
	case SHOAL__ROLE__ROLE_CLIENT:
		return "client";
	default:
		return "unknown role";
	}
}

__attribute__((format(printf, 3, 4))) static enum handshake_step
handshake_fail(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return HANDSHAKE_REFUSE;
}

/* ---- the master's side ---- */

void handshake_server_init(struct handshake_server *hs, const uint8_t *key, size_t key_len,
                           struct auth_replay *replay)
{
	memset(hs, 0, sizeof(*hs));
	hs->key = key;
	hs->key_len = key != NULL ? key_len : 0;
	hs->replay = replay;
	hs->state = HANDSHAKE_START;
	shoal__challenge__init(&hs->challenge);
	shoal__envelope__init(&hs->out);
}

#define SERVER_REFUSE(hs, perm, ...)                                                               \
	((hs)->state = HANDSHAKE_FAILED, (hs)->permanent = (perm),                                 \
	 handshake_fail((hs)->why, sizeof((hs)->why), __VA_ARGS__))

static enum handshake_step handshake_server_on_hello(struct handshake_server *hs,
                                                     const Shoal__Hello *h)
{
	if (h->version != SHOAL_PROTOCOL_VERSION)
		return SERVER_REFUSE(hs, true,
		                     "protocol version mismatch: master speaks %u, peer speaks %u; "
		                     "run the same shoal version on master, workers and clients",
		                     SHOAL_PROTOCOL_VERSION, h->version);
	if (h->role != SHOAL__ROLE__ROLE_WORKER && h->role != SHOAL__ROLE__ROLE_CLIENT)
		return SERVER_REFUSE(hs, true, "unknown role %d in hello", (int)h->role);
	hs->role = h->role;
	const char *role = handshake_role_name(h->role);
	if (hs->key == NULL) {
		if (h->has_nonce)
			return SERVER_REFUSE(
			    hs, true,
			    "authentication mismatch: this %s has a cluster secret "
			    "but the master has none; give the master the "
			    "same " HANDSHAKE_HOW_SECRET ", or remove it from the %s",
			    role, role);
		hs->state = HANDSHAKE_FINISHED;
		return HANDSHAKE_DONE;
	}
	if (!h->has_nonce)
		return SERVER_REFUSE(hs, true,
		                     "authentication required: the master has a cluster secret and "
		                     "this %s has none; start it with " HANDSHAKE_HOW_SECRET
		                     " naming the cluster's secret",
		                     role);
	if (h->nonce.len != AUTH_NONCE_LEN)
		return SERVER_REFUSE(hs, true, "hello: nonce of %zu bytes, expected %u",
		                     h->nonce.len, AUTH_NONCE_LEN);
	memcpy(hs->np, h->nonce.data, AUTH_NONCE_LEN);
	if (hs->replay != NULL && auth_replay_seen(hs->replay, hs->np))
		return SERVER_REFUSE(hs, false,
		                     "authentication failed: replayed handshake (this hello's "
		                     "nonce was used before)");
	if (auth_random(hs->nm, AUTH_NONCE_LEN) < 0 ||
	    auth_proof(hs->key, hs->key_len, AUTH_BY_MASTER, SHOAL_PROTOCOL_VERSION,
	               (uint32_t)hs->role, hs->np, hs->nm, hs->mac) < 0)
		return SERVER_REFUSE(hs, false,
		                     "the master cannot compute its proof (OpenSSL "
		                     "failed); try again");
	hs->challenge.nonce.data = hs->nm;
	hs->challenge.nonce.len = AUTH_NONCE_LEN;
	hs->challenge.proof.data = hs->mac;
	hs->challenge.proof.len = AUTH_MAC_LEN;
	hs->out.msg_case = SHOAL__ENVELOPE__MSG_CHALLENGE;
	hs->out.challenge = &hs->challenge;
	hs->state = HANDSHAKE_CHALLENGED;
	return HANDSHAKE_SEND;
}

static enum handshake_step handshake_server_on_proof(struct handshake_server *hs,
                                                     const Shoal__Proof *p)
{
	const char *role = handshake_role_name(hs->role);
	if (p->proof.len != AUTH_MAC_LEN)
		return SERVER_REFUSE(hs, true, "proof: %zu bytes, expected %u", p->proof.len,
		                     AUTH_MAC_LEN);
	uint8_t want[AUTH_MAC_LEN];
	if (auth_proof(hs->key, hs->key_len, AUTH_BY_PEER, SHOAL_PROTOCOL_VERSION,
	               (uint32_t)hs->role, hs->np, hs->nm, want) < 0)
		return SERVER_REFUSE(hs, false,
		                     "the master cannot check the proof (OpenSSL "
		                     "failed); try again");
	if (auth_equal(want, p->proof.data, AUTH_MAC_LEN)) {
		hs->state = HANDSHAKE_FINISHED;
		return HANDSHAKE_DONE;
	}
	/* Tell a proof made for the other role apart from a wrong secret, for the log. */
	Shoal__Role other = hs->role == SHOAL__ROLE__ROLE_WORKER ? SHOAL__ROLE__ROLE_CLIENT
	                                                         : SHOAL__ROLE__ROLE_WORKER;
	if (auth_proof(hs->key, hs->key_len, AUTH_BY_PEER, SHOAL_PROTOCOL_VERSION, (uint32_t)other,
	               hs->np, hs->nm, want) == 0 &&
	    auth_equal(want, p->proof.data, AUTH_MAC_LEN))
		return SERVER_REFUSE(hs, true,
		                     "authentication failed: role binding: a peer that said it is "
		                     "a %s presented a %s's proof",
		                     role, handshake_role_name(other));
	return SERVER_REFUSE(hs, true,
	                     "authentication failed: wrong proof of the cluster secret (this "
	                     "%s's secret file differs from the master's)",
	                     role);
}

enum handshake_step handshake_server_on_message(struct handshake_server *hs,
                                                const Shoal__Envelope *env)
{
	switch (hs->state) {
	case HANDSHAKE_START:
		if (env->msg_case != SHOAL__ENVELOPE__MSG_HELLO)
			return SERVER_REFUSE(hs, false, "expected hello first, got %s",
			                     codec_kind_name(env));
		return handshake_server_on_hello(hs, env->hello);
	case HANDSHAKE_CHALLENGED:
		if (env->msg_case != SHOAL__ENVELOPE__MSG_PROOF)
			return SERVER_REFUSE(hs, false,
			                     "expected proof after the challenge, got %s",
			                     codec_kind_name(env));
		return handshake_server_on_proof(hs, env->proof);
	case HANDSHAKE_HELLO_SENT:
	case HANDSHAKE_FINISHED:
	case HANDSHAKE_FAILED:
		break;
	}
	return SERVER_REFUSE(hs, false, "handshake already over, got %s", codec_kind_name(env));
}

/* ---- a worker's or client's side ---- */

void handshake_peer_init(struct handshake_peer *hp, const uint8_t *key, size_t key_len,
                         Shoal__Role role)
{
	memset(hp, 0, sizeof(*hp));
	hp->key = key;
	hp->key_len = key != NULL ? key_len : 0;
	hp->role = role;
	hp->state = HANDSHAKE_START;
	shoal__proof__init(&hp->proof);
	shoal__envelope__init(&hp->out);
}

#define PEER_REFUSE(hp, perm, ...)                                                                 \
	((hp)->state = HANDSHAKE_FAILED, (hp)->permanent = (perm),                                 \
	 handshake_fail((hp)->why, sizeof((hp)->why), __VA_ARGS__))

int handshake_peer_hello(struct handshake_peer *hp, Shoal__Hello *hello)
{
	hello->version = SHOAL_PROTOCOL_VERSION;
	hello->role = hp->role;
	hello->has_nonce = false;
	if (hp->key != NULL) {
		if (auth_random(hp->np, AUTH_NONCE_LEN) < 0) {
			PEER_REFUSE(hp, false, "cannot draw a random nonce (OpenSSL failed)");
			return -1;
		}
		hello->has_nonce = true;
		hello->nonce.data = hp->np;
		hello->nonce.len = AUTH_NONCE_LEN;
	}
	hp->state = HANDSHAKE_HELLO_SENT;
	return 0;
}

static enum handshake_step handshake_peer_on_challenge(struct handshake_peer *hp,
                                                       const Shoal__Challenge *ch)
{
	if (hp->key == NULL)
		return PEER_REFUSE(
		    hp, true,
		    "the master sent a challenge, but no cluster secret is "
		    "configured here; give this side the cluster's " HANDSHAKE_HOW_SECRET);
	if (ch->nonce.len != AUTH_NONCE_LEN || ch->proof.len != AUTH_MAC_LEN)
		return PEER_REFUSE(hp, false, "malformed challenge from the master");
	memcpy(hp->nm, ch->nonce.data, AUTH_NONCE_LEN);
	uint8_t want[AUTH_MAC_LEN];
	if (auth_proof(hp->key, hp->key_len, AUTH_BY_MASTER, SHOAL_PROTOCOL_VERSION,
	               (uint32_t)hp->role, hp->np, hp->nm, want) < 0)
		return PEER_REFUSE(hp, false, "cannot check the master's proof (OpenSSL failed)");
	if (!auth_equal(want, ch->proof.data, AUTH_MAC_LEN))
		return PEER_REFUSE(hp, true,
		                   "authentication failed: the master could not prove it knows the "
		                   "cluster secret (its secret file differs from this one's, or "
		                   "something else answers at its address)");
	if (auth_proof(hp->key, hp->key_len, AUTH_BY_PEER, SHOAL_PROTOCOL_VERSION,
	               (uint32_t)hp->role, hp->np, hp->nm, hp->mac) < 0)
		return PEER_REFUSE(hp, false, "cannot compute the proof (OpenSSL failed)");
	hp->proof.proof.data = hp->mac;
	hp->proof.proof.len = AUTH_MAC_LEN;
	hp->out.msg_case = SHOAL__ENVELOPE__MSG_PROOF;
	hp->out.proof = &hp->proof;
	hp->state = HANDSHAKE_CHALLENGED;
	return HANDSHAKE_SEND;
}

enum handshake_step handshake_peer_on_message(struct handshake_peer *hp, const Shoal__Envelope *env)
{
	if (hp->state != HANDSHAKE_HELLO_SENT && hp->state != HANDSHAKE_CHALLENGED)
		return PEER_REFUSE(hp, false, "unexpected %s from the master",
		                   codec_kind_name(env));
	switch (env->msg_case) {
	case SHOAL__ENVELOPE__MSG_REFUSAL: {
		/* The reason is what the user reads: never print an empty one. */
		const char *reason = env->refusal->reason;
		hp->refused = true;
		return PEER_REFUSE(
		    hp, env->refusal->has_permanent && env->refusal->permanent, "%s",
		    reason != NULL && reason[0] != '\0' ? reason : "(the master gave no reason)");
	}
	case SHOAL__ENVELOPE__MSG_CHALLENGE:
		if (hp->state != HANDSHAKE_HELLO_SENT)
			return PEER_REFUSE(hp, false, "a second challenge from the master");
		return handshake_peer_on_challenge(hp, env->challenge);
	case SHOAL__ENVELOPE__MSG_WELCOME:
		/* With a secret, only a master that has proved it may welcome us. */
		if (hp->key != NULL && hp->state != HANDSHAKE_CHALLENGED)
			return PEER_REFUSE(
			    hp, true,
			    "authentication mismatch: this %s has a cluster secret but "
			    "the master welcomed it without one; give the master the "
			    "same " HANDSHAKE_HOW_SECRET ", or remove it here",
			    handshake_role_name(hp->role));
		hp->welcome = env->welcome;
		hp->state = HANDSHAKE_FINISHED;
		return HANDSHAKE_DONE;
	default:
		return PEER_REFUSE(hp, false,
		                   "expected welcome, challenge or refusal from the "
		                   "master, got %s",
		                   codec_kind_name(env));
	}
}
