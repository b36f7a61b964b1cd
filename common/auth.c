/* auth.c: the cluster secret, HMAC-SHA256, nonces and replay memory (see auth.h). */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define AUTH_LABEL "shoal-auth-v1"

const char *auth_secret_path(const char *flag)
{
	if (flag != NULL && flag[0] != '\0')
		return flag;
	const char *env = getenv(AUTH_SECRET_ENV);
	return env != NULL && env[0] != '\0' ? env : NULL;
}

int auth_secret_load(const char *path, uint8_t **key, size_t *len, char *err, size_t errlen)
{
	static const char how[] = "create one with: head -c 32 /dev/urandom | base64 > FILE; "
	                          "chmod 600 FILE";
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errorf(err, errlen, "cannot open secret file %s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return errorf(err, errlen, "cannot stat secret file %s: %s", path, strerror(e));
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return errorf(err, errlen, "secret file %s is not a regular file", path);
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		close(fd);
		return errorf(err, errlen,
		              "secret file %s is %s by group or others (mode %04o); "
		              "restrict it with: chmod 600 %s",
		              path, (st.st_mode & (S_IRGRP | S_IROTH)) ? "readable" : "accessible",
		              (unsigned)(st.st_mode & 07777), path);
	}
	uint8_t *buf = xmalloc(AUTH_SECRET_MAX + 1);
	/* One byte more than the limit tells an over-long secret from one that fits. */
	ssize_t got = read_all(fd, buf, AUTH_SECRET_MAX + 1);
	if (got < 0) {
		int e = errno;
		close(fd);
		auth_secret_free(&buf, AUTH_SECRET_MAX + 1);
		return errorf(err, errlen, "cannot read secret file %s: %s", path, strerror(e));
	}
	size_t n = (size_t)got;
	close(fd);
	if (n > AUTH_SECRET_MAX) {
		auth_secret_free(&buf, AUTH_SECRET_MAX + 1);
		return errorf(err, errlen,
		              "secret file %s is larger than %u bytes; a cluster secret is "
		              "a short random string (%s)",
		              path, AUTH_SECRET_MAX, how);
	}
	while (n > 0 && isspace(buf[n - 1]))
		n--;
	if (n < AUTH_SECRET_MIN) {
		auth_secret_free(&buf, AUTH_SECRET_MAX + 1);
		if (n == 0)
			return errorf(err, errlen, "secret file %s is empty (%s)", path, how);
		return errorf(err, errlen,
		              "secret file %s holds %zu bytes; a cluster secret needs at "
		              "least %u (%s)",
		              path, n, AUTH_SECRET_MIN, how);
	}
	uint8_t *k = xmalloc(n);
	memcpy(k, buf, n);
	auth_secret_free(&buf, AUTH_SECRET_MAX + 1);
	*key = k;
	*len = n;
	return 0;
}

void auth_secret_free(uint8_t **key, size_t len)
{
	if (key == NULL || *key == NULL)
		return;
	OPENSSL_cleanse(*key, len);
	free(*key);
	*key = NULL;
}

int auth_hmac(const uint8_t *key, size_t key_len, const void *data, size_t len,
              uint8_t out[AUTH_MAC_LEN])
{
	unsigned int out_len = 0;
	if (key_len > INT32_MAX ||
	    HMAC(EVP_sha256(), key, (int)key_len, data, len, out, &out_len) == NULL ||
	    out_len != AUTH_MAC_LEN) {
		memset(out, 0, AUTH_MAC_LEN);
		return -1;
	}
	return 0;
}

bool auth_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

static auth_random_fn *auth_random_source;

void auth_set_random_source(auth_random_fn *fn)
{
	auth_random_source = fn;
}

int auth_random(uint8_t *out, size_t n)
{
	if (auth_random_source != NULL)
		return auth_random_source(out, n);
	if (n > INT32_MAX || RAND_bytes(out, (int)n) != 1)
		return -1;
	return 0;
}

static void auth_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int auth_proof(const uint8_t *key, size_t key_len, enum auth_prover prover, uint32_t version,
               uint32_t role, const uint8_t np[AUTH_NONCE_LEN], const uint8_t nm[AUTH_NONCE_LEN],
               uint8_t out[AUTH_MAC_LEN])
{
	uint8_t msg[sizeof(AUTH_LABEL) + 1 + 4 + 4 + 2 * AUTH_NONCE_LEN];
	size_t n = 0;
	memcpy(msg, AUTH_LABEL, sizeof(AUTH_LABEL)); /* with its NUL: the label's end */
	n += sizeof(AUTH_LABEL);
	msg[n++] = (uint8_t)prover;
	auth_put_u32(msg + n, version);
	n += 4;
	auth_put_u32(msg + n, role);
	n += 4;
	memcpy(msg + n, np, AUTH_NONCE_LEN);
	n += AUTH_NONCE_LEN;
	memcpy(msg + n, nm, AUTH_NONCE_LEN);
	n += AUTH_NONCE_LEN;
	return auth_hmac(key, key_len, msg, n, out);
}

void auth_replay_init(struct auth_replay *r)
{
	memset(r, 0, sizeof(*r));
}

bool auth_replay_seen(struct auth_replay *r, const uint8_t nonce[AUTH_NONCE_LEN])
{
	uint64_t fp;
	memcpy(&fp, nonce, sizeof(fp));
	for (size_t i = 0; i < r->count; i++)
		if (r->seen[i] == fp)
			return true;
	r->seen[r->next] = fp;
	r->next = (r->next + 1) % AUTH_REPLAY_SLOTS;
	if (r->count < AUTH_REPLAY_SLOTS)
		r->count++;
	return false;
}
