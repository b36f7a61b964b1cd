/* digest.c: SHA-256 through OpenSSL's EVP interface (see digest.h). */
#include "digest.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct digest {
	EVP_MD_CTX *ctx;
};

struct digest *digest_create(void)
{
	struct digest *d = xmalloc(sizeof(*d));
	d->ctx = EVP_MD_CTX_new();
	if (!d->ctx || EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
		fprintf(stderr, "shoal: cannot initialise SHA-256 (OpenSSL)\n");
		abort();
	}
	return d;
}

void digest_update(struct digest *d, const void *p, size_t n)
{
	EVP_DigestUpdate(d->ctx, p, n);
}

void digest_finish(struct digest **dp, uint8_t out[DIGEST_LEN])
{
	struct digest *d = *dp;
	unsigned len = DIGEST_LEN;
	EVP_DigestFinal_ex(d->ctx, out, &len);
	EVP_MD_CTX_free(d->ctx);
	free(d);
	*dp = NULL;
}

void digest_buffer(const void *p, size_t n, uint8_t out[DIGEST_LEN])
{
	struct digest *d = digest_create();
	digest_update(d, p, n);
	digest_finish(&d, out);
}

int digest_file(const char *path, uint8_t out[DIGEST_LEN], uint64_t *size, char *err,
		size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errorf(err, errlen, "cannot read %s: %s", path, strerror(errno));
	struct digest *d = digest_create();
	uint8_t *buf = xmalloc(1u << 20);
	uint64_t total = 0;
	for (;;) {
		ssize_t n = read(fd, buf, 1u << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			free(buf);
			digest_finish(&d, out);
			close(fd);
			return errorf(err, errlen, "cannot read %s: %s", path, strerror(e));
		}
		if (n == 0)
			break;
		digest_update(d, buf, (size_t)n);
		total += (uint64_t)n;
	}
	free(buf);
	close(fd);
	digest_finish(&d, out);
	if (size)
		*size = total;
	return 0;
}

void digest_hex(const uint8_t d[DIGEST_LEN], char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < DIGEST_LEN; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[DIGEST_HEX_LEN] = '\0';
}
