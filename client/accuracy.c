/* accuracy.c: see accuracy.h. */
#include "accuracy.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "buf.h"
#include "util.h"

struct accuracy {
	FILE *q;
	char *row; /* getline's buffer */
	size_t rowcap;
	uint64_t rowno;  /* lines read from q */
	struct buf line; /* the result's unfinished line */
	uint64_t correct, total;
	bool failed; /* err says why */
	char err[256];
};

static bool accuracy_blank(char c)
{
	return c == ' ' || c == '\t';
}

bool accuracy_is_header(const char *row, size_t len)
{
	const char *comma = memchr(row, ',', len);
	size_t n = comma ? (size_t)(comma - row) : len, i = 0, start;
	bool digits = false;
	char small[64], *s;
	double v;

	while (n > 0 && accuracy_blank(row[n - 1]))
		n--;
	while (i < n && accuracy_blank(row[i]))
		i++;
	start = i;
	if (i < n && (row[i] == '+' || row[i] == '-'))
		i++;
	for (; i < n && row[i] >= '0' && row[i] <= '9'; i++)
		digits = true;
	if (i < n && row[i] == '.')
		for (i++; i < n && row[i] >= '0' && row[i] <= '9'; i++)
			digits = true;
	if (!digits)
		return true;
	if (i < n && (row[i] == 'e' || row[i] == 'E')) {
		i++;
		if (i < n && (row[i] == '+' || row[i] == '-'))
			i++;
		if (i == n || row[i] < '0' || row[i] > '9')
			return true;
		while (i < n && row[i] >= '0' && row[i] <= '9')
			i++;
	}
	if (i != n)
		return true;
	/* The syntax is right; a value beyond double's range (1e999) is not a number either. */
	s = n - start < sizeof(small) ? small : xmalloc(n - start + 1);
	memcpy(s, row + start, n - start);
	s[n - start] = '\0';
	v = strtod(s, NULL);
	if (s != small)
		free(s);
	return !isfinite(v);
}

bool accuracy_wanted(const char *op, const char *const *args, size_t nargs)
{
	static const char key[] = "labeled=";

	if (!op || strcmp(op, "knn") != 0)
		return false;
	for (size_t i = 0; i < nargs; i++)
		if (strncmp(args[i], key, sizeof(key) - 1) == 0)
			return strcmp(args[i] + sizeof(key) - 1, "1") == 0;
	return false;
}

struct accuracy *accuracy_create(FILE *queries)
{
	struct accuracy *a = xcalloc(1, sizeof(*a));

	a->q = queries;
	return a;
}

void accuracy_destroy(struct accuracy **a)
{
	if (!a || !*a)
		return;
	if ((*a)->q)
		fclose((*a)->q);
	free((*a)->row);
	buf_free(&(*a)->line);
	free(*a);
	*a = NULL;
}

static void accuracy_fail(struct accuracy *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void accuracy_fail(struct accuracy *a, const char *fmt, ...)
{
	va_list ap;

	if (a->failed)
		return;
	a->failed = true;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
}

/* Reads the next query row (header skipped, line end dropped) into a->row. Its length, or -1
 * at the end of the file or on an error (a->failed then says which). */
static ssize_t accuracy_next_row(struct accuracy *a)
{
	for (;;) {
		ssize_t n;

		errno = 0;
		n = getline(&a->row, &a->rowcap, a->q);
		if (n < 0) {
			if (ferror(a->q))
				accuracy_fail(a, "cannot read the input again: %s",
				              strerror(errno ? errno : EIO));
			return -1;
		}
		a->rowno++;
		if (n > 0 && a->row[n - 1] == '\n')
			n--;
		if (n > 0 && a->row[n - 1] == '\r')
			n--;
		if (a->rowno == 1 && accuracy_is_header(a->row, (size_t)n))
			continue;
		return n;
	}
}

/* Scores one predicted label (a result line without its '\n'). */
static void accuracy_line(struct accuracy *a, const uint8_t *pred, size_t plen)
{
	ssize_t n;
	size_t lo, hi;
	const char *comma;

	if (a->failed)
		return;
	n = accuracy_next_row(a);
	if (n < 0) {
		accuracy_fail(a, "the result has more rows than the input (%" PRIu64 ")", a->total);
		return;
	}
	comma = memrchr(a->row, ',', (size_t)n);
	lo = comma ? (size_t)(comma - a->row) + 1 : 0;
	hi = (size_t)n;
	while (lo < hi && accuracy_blank(a->row[lo]))
		lo++;
	while (hi > lo && accuracy_blank(a->row[hi - 1]))
		hi--;
	a->total++;
	if (hi - lo == plen && memcmp(a->row + lo, pred, plen) == 0)
		a->correct++;
}

void accuracy_feed(struct accuracy *a, const void *data, size_t len)
{
	const uint8_t *p = data, *end = p + len;

	while (p < end && !a->failed) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl) {
			buf_append(&a->line, p, (size_t)(end - p));
			return;
		}
		if (a->line.len) {
			buf_append(&a->line, p, (size_t)(nl - p));
			accuracy_line(a, a->line.data, a->line.len);
			buf_reset(&a->line);
		} else {
			accuracy_line(a, p, (size_t)(nl - p));
		}
		p = nl + 1;
	}
}

int accuracy_finish(struct accuracy *a, uint64_t *correct, uint64_t *total, char *err,
                    size_t errlen)
{
	if (a->line.len) { /* a last line without its '\n' */
		accuracy_line(a, a->line.data, a->line.len);
		buf_reset(&a->line);
	}
	if (!a->failed && accuracy_next_row(a) >= 0)
		accuracy_fail(a, "the input has more rows than the result (%" PRIu64 ")", a->total);
	if (a->failed)
		return errorf(err, errlen, "%s", a->err);
	*correct = a->correct;
	*total = a->total;
	return 0;
}

void accuracy_format(uint64_t correct, uint64_t total, char *out, size_t n)
{
	if (total == 0)
		snprintf(out, n, "accuracy: 0/0 = n/a");
	else
		snprintf(out, n, "accuracy: %" PRIu64 "/%" PRIu64 " = %.4f", correct, total,
		         (double)correct / (double)total);
}
