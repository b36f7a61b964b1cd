/* digest.h: SHA-256 (OpenSSL's libcrypto) for content-addressed files: the key of a shipped
 * file in the master's blob store and in each worker's cache, verified on both ends. */
#ifndef SHOAL_DIGEST_H
#define SHOAL_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_LEN 32
#define DIGEST_HEX_LEN 64

struct digest; /* incremental SHA-256 */

/* Returns an owned context; never NULL. */
struct digest *digest_create(void);
void digest_update(struct digest *d, const void *p, size_t n);
/* Writes the digest and frees the context; sets *d to NULL. */
void digest_finish(struct digest **d, uint8_t out[DIGEST_LEN]);

void digest_buffer(const void *p, size_t n, uint8_t out[DIGEST_LEN]);
/* Hashes a whole file. 0, or -1 with a reason naming the path. Blocking I/O. */
int digest_file(const char *path, uint8_t out[DIGEST_LEN], uint64_t *size, char *err,
		size_t errlen);
/* Lowercase hex, NUL-terminated: out holds DIGEST_HEX_LEN + 1 bytes. */
void digest_hex(const uint8_t d[DIGEST_LEN], char *out);

#endif
