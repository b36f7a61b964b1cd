/* histogram.c: an example shoal plugin (shoal_plugin.h). Counts integer records in buckets of
 * --arg width=W (default 1): the bucket of x is [B, B+W) with B = floor(x / W) * W. The result
 * is one line BUCKET_START<TAB>COUNT per non-empty bucket, by increasing BUCKET_START:
 *
 *   shoal run --plugin histogram.so --arg width=10 --range 0:25    ->  0 10 / 10 10 / 20 5
 *
 * map counts one partition; combine merges two such lists, summing the counts of equal
 * buckets, which is associative (and commutative), so the master may fold the partials in any
 * grouping; finalize is not needed. Records are decimal integers that fit in 64 bits, with
 * optional sign and blanks around them, and an optional CR before the '\n'.
 *
 * Build: cc -shared -fPIC -O2 -I/path/to/shoal/common -o histogram.so histogram.c
 *
 * The plugin uses nothing of shoal but the header, keeps no global state (map runs on many
 * threads at once) and reports every error through err. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal_plugin.h"

/* Parses a decimal int64 spanning p[0..n), blanks around it allowed. 0 or -1. */
static int hist_parse_i64(const uint8_t *p, size_t n, int64_t *out)
{
	while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
		n--;
	size_t i = 0;
	while (i < n && (p[i] == ' ' || p[i] == '\t'))
		i++;
	bool neg = false;
	if (i < n && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	if (i == n)
		return -1;
	uint64_t v = 0;
	for (; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		unsigned dgt = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - dgt) / 10)
			return -1;
		v = v * 10 + dgt;
	}
	/* -2^63 is the one magnitude that fits only with the sign. */
	if (v > (uint64_t)INT64_MAX + neg)
		return -1;
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Up to 60 bytes of a record for an error message: printable ASCII as is, TAB as \t, other
 * bytes as \xHH. */
static void hist_quote(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t k = 0;
	for (size_t i = 0; i < n && i < 60 && k + 5 < outlen; i++) {
		if (p[i] == '\t')
			k += (size_t)snprintf(out + k, outlen - k, "\\t");
		else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\')
			out[k++] = (char)p[i];
		else
			k += (size_t)snprintf(out + k, outlen - k, "\\x%02x", p[i]);
	}
	out[k] = '\0';
}

/* --arg width=W, a positive integer; 1 when absent. */
static int hist_width(const struct shoal_plugin_args *args, int64_t *w, char *err, size_t errlen)
{
	*w = 1;
	for (size_t i = 0; i < args->n; i++) {
		if (strcmp(args->keys[i], "width") != 0) {
			snprintf(err, errlen, "unknown --arg '%s' (histogram takes width)",
			         args->keys[i]);
			return -1;
		}
		const char *v = args->values[i];
		if (hist_parse_i64((const uint8_t *)v, strlen(v), w) < 0 || *w <= 0) {
			snprintf(err, errlen, "--arg width takes a positive integer, got '%s'", v);
			return -1;
		}
	}
	return 0;
}

static int hist_cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return (x > y) - (x < y);
}

/* Writes "START\tCOUNT\n". 0, or -1 with err set. */
static int hist_put(const struct shoal_plugin_out *out, int64_t start, uint64_t count, char *err,
                    size_t errlen)
{
	char line[48];
	int n = snprintf(line, sizeof(line), "%lld\t%llu\n", (long long)start,
	                 (unsigned long long)count);
	if (out->write(out->ctx, line, (size_t)n) < 0) {
		snprintf(err, errlen, "output refused");
		return -1;
	}
	return 0;
}

static int hist_map(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
                    const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	int64_t w;
	if (hist_width(args, &w, err, errlen) < 0)
		return -1;
	/* Bucket starts of all records, sorted, then counted in runs: no table to size. */
	size_t cap = 1024, n = 0;
	int64_t *starts = malloc(cap * sizeof(*starts));
	if (starts == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t pos = 0, recno = 0;
	while (pos < len) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - data) : len;
		int64_t x;
		recno++;
		if (hist_parse_i64(data + pos, end - pos, &x) < 0) {
			char q[300];
			hist_quote(data + pos, end - pos, q, sizeof(q));
			snprintf(err, errlen, "record %zu is not an integer: \"%s\"", recno, q);
			free(starts);
			return -1;
		}
		/* floor(x / W) * W without overflow: x minus its non-negative remainder; only a
		 * bucket below INT64_MIN (x near it, W not dividing 2^63) cannot be written. */
		int64_t r = x % w;
		if (r < 0)
			r += w;
		int64_t start;
		if (__builtin_sub_overflow(x, r, &start)) {
			snprintf(err, errlen, "record %zu: the bucket of %lld starts below -2^63",
			         recno, (long long)x);
			free(starts);
			return -1;
		}
		if (n == cap) {
			int64_t *bigger = realloc(starts, 2 * cap * sizeof(*starts));
			if (bigger == NULL) {
				snprintf(err, errlen, "out of memory");
				free(starts);
				return -1;
			}
			starts = bigger;
			cap *= 2;
		}
		starts[n++] = start;
		pos = end + 1;
	}
	qsort(starts, n, sizeof(*starts), hist_cmp_i64);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0;) {
		size_t j = i;
		while (j < n && starts[j] == starts[i])
			j++;
		rc = hist_put(out, starts[i], j - i, err, errlen);
		i = j;
	}
	free(starts);
	return rc;
}

/* A reader of "START\tCOUNT\n" lines with increasing starts, as map writes them. */
struct hist_reader {
	const uint8_t *p;
	size_t len, pos, line;
	int64_t start;
	uint64_t count;
	bool have;
};

static int hist_next(struct hist_reader *r, const char *what, char *err, size_t errlen)
{
	if (r->pos >= r->len) {
		r->have = false;
		return 0;
	}
	const uint8_t *line = r->p + r->pos;
	const uint8_t *nl = memchr(line, '\n', r->len - r->pos);
	size_t n = nl != NULL ? (size_t)(nl - line) : r->len - r->pos;
	const uint8_t *tab = memchr(line, '\t', n);
	int64_t start, count;
	r->line++;
	if (nl == NULL || tab == NULL || hist_parse_i64(line, (size_t)(tab - line), &start) < 0 ||
	    hist_parse_i64(tab + 1, n - (size_t)(tab - line) - 1, &count) < 0 || count <= 0 ||
	    (r->have && start <= r->start)) {
		char q[300];
		hist_quote(line, n, q, sizeof(q));
		snprintf(err, errlen,
		         "%s line %zu is not START<TAB>COUNT in increasing order: \"%s\"", what,
		         r->line, q);
		return -1;
	}
	r->start = start;
	r->count = (uint64_t)count;
	r->have = true;
	r->pos += n + 1;
	return 0;
}

static int hist_combine(const uint8_t *acc, size_t acc_len, const uint8_t *part, size_t part_len,
                        const struct shoal_plugin_args *args, const struct shoal_plugin_out *out,
                        char *err, size_t errlen)
{
	(void)args;
	struct hist_reader a = {.p = acc, .len = acc_len}, b = {.p = part, .len = part_len};
	if (hist_next(&a, "running result", err, errlen) < 0 ||
	    hist_next(&b, "partial", err, errlen) < 0)
		return -1;
	while (a.have || b.have) {
		int rc;
		if (!b.have || (a.have && a.start < b.start)) {
			rc = hist_put(out, a.start, a.count, err, errlen);
			rc = rc == 0 ? hist_next(&a, "running result", err, errlen) : rc;
		} else if (!a.have || b.start < a.start) {
			rc = hist_put(out, b.start, b.count, err, errlen);
			rc = rc == 0 ? hist_next(&b, "partial", err, errlen) : rc;
		} else {
			if (a.count > (uint64_t)INT64_MAX - b.count) {
				snprintf(err, errlen, "count of bucket %lld overflows",
				         (long long)a.start);
				return -1;
			}
			rc = hist_put(out, a.start, a.count + b.count, err, errlen);
			rc = rc == 0 ? hist_next(&a, "running result", err, errlen) : rc;
			rc = rc == 0 ? hist_next(&b, "partial", err, errlen) : rc;
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

static const struct shoal_plugin hist_plugin = {
    .abi_version = SHOAL_PLUGIN_ABI_VERSION,
    .name = "histogram",
    .map = hist_map,
    .combine = hist_combine,
    .finalize = NULL,
};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &hist_plugin;
}
