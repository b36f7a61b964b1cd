/* token.c: see token.h. */
#include "token.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"

int token_derive(const uint8_t *secret, size_t secret_len, char out[TOKEN_HEX_LEN + 1])
{
	static const char label[] = "shoal-http-token-v1";
	uint8_t mac[AUTH_MAC_LEN];
	if (auth_hmac(secret, secret_len, label, sizeof(label) - 1, mac) < 0) {
		memset(out, 0, TOKEN_HEX_LEN + 1);
		return -1;
	}
	for (size_t i = 0; i < AUTH_MAC_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	return 0;
}
