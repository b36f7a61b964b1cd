/* parse.c: see parse.h. strtoll/strtoull alone accept leading spaces, "+", "-" for unsigned
 * and silent wrap-around, so each parser checks the text shape before converting. */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int parse_i64(const char *s, int64_t min, int64_t max, int64_t *out, char *err, size_t errlen)
{
	const char *d = s;
	char *end;
	long long v;

	if (*d == '-' || *d == '+')
		d++;
	if (!isdigit((unsigned char)*d)) {
		snprintf(err, errlen, "'%s' is not an integer", s);
		return -1;
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0') {
		snprintf(err, errlen, "'%s' is not an integer", s);
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {
		snprintf(err, errlen, "%s is out of range [%" PRId64 ", %" PRId64 "]", s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t max, uint64_t *out, char *err, size_t errlen)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s)) {
		snprintf(err, errlen, "'%s' is not a non-negative integer", s);
		return -1;
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0') {
		snprintf(err, errlen, "'%s' is not a non-negative integer", s);
		return -1;
	}
	if (errno == ERANGE || v > max) {
		snprintf(err, errlen, "%s is too large (at most %" PRIu64 ")", s, max);
		return -1;
	}
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t *out, char *err, size_t errlen)
{
	const char *p = s;
	uint64_t v = 0;
	unsigned shift = 0;

	if (!isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned digit = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - digit) / 10)
			goto big;
		v = v * 10 + digit;
	}
	switch (toupper((unsigned char)*p)) {
	case '\0':
		break;
	case 'K':
		shift = 10;
		break;
	case 'M':
		shift = 20;
		break;
	case 'G':
		shift = 30;
		break;
	case 'T':
		shift = 40;
		break;
	case 'B':
		if (p[1] != '\0')
			goto bad;
		break;
	default:
		goto bad;
	}
	if (shift) {
		p++;
		if (*p == 'i' || *p == 'I')
			p++;
		if (*p == 'b' || *p == 'B')
			p++;
		else if (p[-1] == 'i' || p[-1] == 'I')
			goto bad; /* "Ki" without the B */
		if (*p != '\0')
			goto bad;
		if (v > (UINT64_MAX >> shift))
			goto big;
		v <<= shift;
	}
	*out = v;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a size (bytes, or a number with K, M, G or T)", s);
	return -1;
big:
	snprintf(err, errlen, "size '%s' is too large", s);
	return -1;
}

int parse_range(const char *s, int64_t *lo, int64_t *hi, char *err, size_t errlen)
{
	const char *colon = strchr(s, ':');
	char *los, perr[128];
	size_t n;
	int64_t a, b;
	int bad;

	if (!colon || strchr(colon + 1, ':')) {
		snprintf(err, errlen, "'%s' is not LO:HI", s);
		return -1;
	}
	n = (size_t)(colon - s);
	if (n == 0 || colon[1] == '\0') {
		snprintf(err, errlen, "'%s' is not LO:HI", s);
		return -1;
	}
	los = xstrndup(s, n);
	bad = parse_i64(los, INT64_MIN, INT64_MAX, &a, perr, sizeof(perr)) < 0 ||
	      parse_i64(colon + 1, INT64_MIN, INT64_MAX, &b, perr, sizeof(perr)) < 0;
	free(los);
	if (bad) {
		snprintf(err, errlen, "'%s' is not LO:HI: %s", s, perr);
		return -1;
	}
	if (a > b) {
		snprintf(err, errlen, "'%s': LO is greater than HI", s);
		return -1;
	}
	*lo = a;
	*hi = b;
	return 0;
}

int parse_kv(const char *s, size_t *keylen, char *err, size_t errlen)
{
	const char *eq = strchr(s, '=');

	if (!eq || eq == s) {
		snprintf(err, errlen, "'%s' is not KEY=VALUE", s);
		return -1;
	}
	*keylen = (size_t)(eq - s);
	return 0;
}

int parse_seconds_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *out, char *err,
                     size_t errlen)
{
	const char *p = s;
	uint64_t ms = 0, scale = 100;

	if (!isdigit((unsigned char)*p))
		goto bad;
	for (; isdigit((unsigned char)*p); p++) {
		ms = ms * 10 + (uint64_t)(*p - '0');
		if (ms > max_ms)
			goto range; /* max_ms is in ms: whole seconds only grow from here */
	}
	ms *= 1000;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p))
			goto bad;
		for (; isdigit((unsigned char)*p); p++) {
			if (scale == 0) {
				if (*p != '0') {
					snprintf(err, errlen, "'%s' is finer than a millisecond",
					         s);
					return -1;
				}
				continue;
			}
			ms += (uint64_t)(*p - '0') * scale;
			scale /= 10;
		}
	}
	if (*p != '\0')
		goto bad;
	if (ms < min_ms || ms > max_ms)
		goto range;
	*out = ms;
	return 0;
bad:
	snprintf(err, errlen, "'%s' is not a number of seconds", s);
	return -1;
range:
	snprintf(err, errlen, "%s s is out of range [%" PRIu64 ".%03" PRIu64 ", %" PRIu64 "] s", s,
	         min_ms / 1000, min_ms % 1000, max_ms / 1000);
	return -1;
}

int parse_job_input(const char *s, uint64_t *id, char *err, size_t errlen)
{
	char perr[128];
	uint64_t v;

	if (strncmp(s, "job:", 4) != 0)
		return 0;
	if (parse_u64(s + 4, UINT64_MAX, &v, perr, sizeof(perr)) < 0 || v == 0) {
		snprintf(err, errlen, "'%s' is not job:ID with a job ID (1, 2, ...)", s);
		return -1;
	}
	*id = v;
	return 1;
}

int parse_lock_name(const char *s, size_t max, char *err, size_t errlen)
{
	size_t n = strlen(s);

	if (n == 0 || n > max) {
		snprintf(err, errlen, "a lock name has 1 to %zu bytes (this one has %zu)", max, n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(err, errlen, "a lock name may not hold control characters");
			return -1;
		}
	return 0;
}
