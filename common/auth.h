/* auth.h: the cluster secret and the cryptography built on it (OpenSSL libcrypto).
 *
 * Everyone holding the cluster secret is trusted equally: the master, its workers and its
 * clients prove knowledge of it to each other (handshake.h) and nothing else identifies
 * them. This module loads the secret from a file (refusing files that others can read),
 * computes HMAC-SHA256 and the handshake proofs, compares MACs in constant time, draws
 * nonces from the OpenSSL CSPRNG, and remembers recent peer nonces so a replayed handshake
 * is recognised. Socket-free and loop-free; other listeners (the HTTP endpoint's token
 * check) reuse auth_hmac and auth_equal. */
#ifndef SHOAL_AUTH_H
#define SHOAL_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AUTH_SECRET_MIN 16u   /* bytes of secret, after trailing whitespace is dropped */
#define AUTH_SECRET_MAX 4096u /* a bigger file is a mistake, not a secret */
#define AUTH_NONCE_LEN  32u
#define AUTH_MAC_LEN    32u /* HMAC-SHA256 */
/* Environment variable standing for --secret-file. */
#define AUTH_SECRET_ENV "SHOAL_SECRET_FILE"

/* The secret file to use: flag if set and non-empty, else $SHOAL_SECRET_FILE if set and
 * non-empty, else NULL (no secret: the plain handshake). Borrowed. */
const char *auth_secret_path(const char *flag);

/* Reads the cluster secret from path into an owned buffer (*key, *len; free it with
 * auth_secret_free). The file must be a regular file that neither group nor others may read
 * or write (mode 0600 or 0400), and hold AUTH_SECRET_MIN..AUTH_SECRET_MAX bytes once
 * trailing whitespace (a final newline) is dropped. Returns 0, or -1 with a reason that says
 * what to do in err; the secret's bytes never appear in err. */
int auth_secret_load(const char *path, uint8_t **key, size_t *len, char *err, size_t errlen);
/* Wipes and frees a secret; sets *key to NULL. */
void auth_secret_free(uint8_t **key, size_t len);

/* HMAC-SHA256 of data under key. Returns 0, or -1 if OpenSSL fails (out is then zeroed). */
int auth_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
              uint8_t out[AUTH_MAC_LEN]);
/* Constant-time equality of two n-byte buffers (CRYPTO_memcmp). */
bool auth_equal(const void *a, const void *b, size_t n);
/* n bytes from the OpenSSL CSPRNG. Returns 0, or -1 if it failed (never use the bytes then). */
int auth_random(uint8_t *out, size_t n);
/* Replaces the CSPRNG behind auth_random with fn (NULL: back to RAND_bytes). For the fuzz
 * target only (tests/fuzz/fuzz_handshake.c), whose runs must replay exactly; nothing in the
 * daemons or libshoal calls it. */
typedef int auth_random_fn(uint8_t *out, size_t n);
void auth_set_random_source(auth_random_fn *fn);

/* Who proves: the master answers a Hello with its proof, the peer answers the Challenge. */
enum auth_prover { AUTH_BY_MASTER = 'M', AUTH_BY_PEER = 'P' };

/* The handshake proof: HMAC-SHA256 under the secret of
 *   "shoal-auth-v1" 0x00 | prover (1 byte) | version (u32 BE) | role (u32 BE) | np | nm
 * where np and nm are the peer's and the master's nonces (AUTH_NONCE_LEN each). Binding the
 * prover stops a proof from being reflected back, the role stops a client's proof from
 * registering a worker, the nonces make every handshake's proofs fresh. */
int auth_proof(const uint8_t *key, size_t key_len, enum auth_prover prover, uint32_t version,
               uint32_t role, const uint8_t np[AUTH_NONCE_LEN], const uint8_t nm[AUTH_NONCE_LEN],
               uint8_t out[AUTH_MAC_LEN]);

/* The master's memory of recent peer nonces: honest peers draw a fresh nonce for every
 * handshake, so a nonce seen before is a replayed Hello. Kept as 64-bit fingerprints (the
 * nonce's first 8 bytes) of the last AUTH_REPLAY_SLOTS handshakes. */
#define AUTH_REPLAY_SLOTS 4096u
struct auth_replay {
	uint64_t seen[AUTH_REPLAY_SLOTS];
	size_t next;  /* slot the next nonce goes to */
	size_t count; /* slots in use */
};

void auth_replay_init(struct auth_replay *r);
/* True if nonce was seen among the remembered ones; otherwise remembers it and returns
 * false. */
bool auth_replay_seen(struct auth_replay *r, const uint8_t nonce[AUTH_NONCE_LEN]);

#endif
