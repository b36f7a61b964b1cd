/* token.h: the bearer token of the master's HTTP endpoint, derived from the cluster secret.
 *
 * token = hex(HMAC-SHA256(secret, "shoal-http-token-v1")): whoever holds the secret can
 * compute it (`shoal token`), and a token that leaks reveals nothing of the secret, so the
 * secret itself never travels over HTTP. It is fixed for a given secret: rotating the secret
 * rotates the token. */
#ifndef SHOAL_TOKEN_H
#define SHOAL_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_HEX_LEN 64u /* HMAC-SHA256 in lower-case hex */

/* Writes the token and a NUL into out (TOKEN_HEX_LEN + 1 bytes). 0, or -1 if OpenSSL fails. */
int token_derive(const uint8_t *secret, size_t secret_len, char out[TOKEN_HEX_LEN + 1]);

#endif
