/* square_loop: the single-threaded baseline of `shoal run --op square --range LO:HI`.
 *
 * Writes x*x for every integer LO <= x < HI, one per line, exactly as Python prints it (and as
 * shoal's square op does), to stdout. The default formats digits by hand into a 1 MiB buffer
 * and write()s it; --printf uses printf("%llu\n") instead (the naive loop, for reference; only
 * for squares that fit in 64 bits). Squares are exact: |x| < 2^63, so x*x < 2^126.
 *
 * Usage: square_loop LO HI [--printf] > FILE */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__extension__ typedef unsigned __int128 u128;

#define OUTBUF (1u << 20)

static char out[OUTBUF];
static size_t outlen;

static void flush_out(void)
{
	size_t off = 0;
	while (off < outlen) {
		ssize_t n = write(STDOUT_FILENO, out + off, outlen - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("square_loop: write");
			exit(1);
		}
		off += (size_t)n;
	}
	outlen = 0;
}

/* Appends v in decimal and a newline (at most 40 bytes). */
static void put_u128(u128 v)
{
	char tmp[48];
	char *p = tmp + sizeof tmp;
	*--p = '\n';
	while (v > UINT64_MAX) {
		/* Peel 19 digits at a time while the value needs 128 bits. */
		uint64_t lo = (uint64_t)(v % 10000000000000000000ull);
		v /= 10000000000000000000ull;
		for (int i = 0; i < 19; i++) {
			*--p = (char)('0' + lo % 10);
			lo /= 10;
		}
	}
	uint64_t w = (uint64_t)v;
	do {
		*--p = (char)('0' + w % 10);
		w /= 10;
	} while (w);
	size_t len = (size_t)(tmp + sizeof tmp - p);
	memcpy(out + outlen, p, len);
	outlen += len;
	if (outlen > OUTBUF - 64)
		flush_out();
}

static long long parse_ll(const char *s)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v == (-9223372036854775807LL - 1)) {
		fprintf(stderr, "square_loop: bad integer: %s\n", s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4 || (argc == 4 && strcmp(argv[3], "--printf") != 0)) {
		fprintf(stderr, "usage: square_loop LO HI [--printf] > FILE\n");
		return 2;
	}
	long long lo = parse_ll(argv[1]), hi = parse_ll(argv[2]);
	if (argc == 4) {
		for (long long x = lo; x < hi; x++) {
			unsigned long long a = (unsigned long long)(x < 0 ? -x : x);
			if (a > 4294967295ull) {
				fprintf(stderr, "square_loop: --printf needs |x| < 2^32\n");
				return 2;
			}
			printf("%llu\n", a * a);
		}
		return fflush(stdout) == 0 ? 0 : 1;
	}
	for (long long x = lo; x < hi; x++) {
		u128 a = (u128)(x < 0 ? -(u128)x : (u128)x);
		put_u128(a * a);
	}
	flush_out();
	return 0;
}
