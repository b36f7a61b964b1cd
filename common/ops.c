/* ops.c: the built-in ops. Map sides turn one partition into a partial; FOLD partials are
 * folded here, MERGE partials are checked here and merged by merge.c.
 *
 * FOLD partials are one text line each, tagged with the op so that a partial of one op is
 * never folded into another, with integers in canonical decimal form (no sign on zero, no
 * leading zeros, no '+', no '_'):
 *
 *   sum N            count N          min N | min none      max N | max none
 *   mean SUM COUNT
 *
 * Every map side produces the same bytes whichever way its input is cut, which is what makes
 * a job's result independent of its partitioning. */
#include "ops.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"
#include "ops_sort.h"
#include "records.h"
#include "util.h"

/* Order matches op_table. */
enum ops_kind {
	OPS_SQUARE,
	OPS_SUM,
	OPS_COUNT,
	OPS_MIN,
	OPS_MAX,
	OPS_MEAN,
	OPS_WORDCOUNT,
	OPS_GREP,
	OPS_SORT,
	OPS_KNN,
};

static const struct op_desc op_table[] = {
    {"square", OP_COMBINE_CONCAT, false, "x^2 of each integer record, in input order", "", false},
    {"sum", OP_COMBINE_FOLD, false, "exact sum of the integer records", "", false},
    {"count", OP_COMBINE_FOLD, false, "number of records", "", false},
    {"min", OP_COMBINE_FOLD, false, "smallest integer record", "", false},
    {"max", OP_COMBINE_FOLD, false, "largest integer record", "", false},
    {"mean", OP_COMBINE_FOLD, false, "mean of the integer records, as Python's sum/count", "",
     false},
    {"wordcount", OP_COMBINE_MERGE, true, "WORD<TAB>COUNT per distinct word, sorted bytewise", "",
     false},
    {"grep", OP_COMBINE_CONCAT, false,
     "records containing --arg pattern=TEXT (fixed bytes), in input order", "pattern", false},
    {"sort", OP_COMBINE_MERGE, false, "records sorted bytewise (as LC_ALL=C sort)", "", false},
    {"knn", OP_COMBINE_CONCAT, false,
     "label of each row f1,...,fd[,label] by majority of the k nearest rows of --broadcast "
     "TRAIN.csv, in input order",
     "k labeled", true},
};

#define OPS_N (sizeof(op_table) / sizeof(op_table[0]))

const struct op_desc *op_find(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < OPS_N; i++)
		if (strcmp(op_table[i].name, name) == 0)
			return &op_table[i];
	return NULL;
}

size_t op_count(void)
{
	return OPS_N;
}

const struct op_desc *op_at(size_t i)
{
	return i < OPS_N ? &op_table[i] : NULL;
}

/* -1 for a descriptor that is not ours (callers get an error, not a crash). */
static int ops_kind_of(const struct op_desc *op)
{
	for (size_t i = 0; i < OPS_N; i++)
		if (op == &op_table[i])
			return (int)i;
	return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Small helpers */

/* Quotes at most ~80 bytes of untrusted text for an error message, between `quote`
 * characters, with C escapes for anything not printable ASCII, and ... when cut. out must
 * hold at least 400 bytes. */
static const char *ops_quote_with(char quote, const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t k = 0;
	out[k++] = quote;
	for (size_t i = 0; i < n && i < 80 && k + 8 < outlen; i++) {
		uint8_t c = p[i];
		if (c == (uint8_t)quote || c == '\\') {
			out[k++] = '\\';
			out[k++] = (char)c;
		} else if (c == '\t') {
			out[k++] = '\\';
			out[k++] = 't';
		} else if (c == '\r') {
			out[k++] = '\\';
			out[k++] = 'r';
		} else if (c == '\n') {
			out[k++] = '\\';
			out[k++] = 'n';
		} else if (c < 0x20 || c >= 0x7f) {
			k += (size_t)snprintf(out + k, outlen - k, "\\x%02x", c);
		} else {
			out[k++] = (char)c;
		}
	}
	out[k++] = quote;
	if (n > 80 && k + 4 < outlen) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

/* Record text and partials: "...". */
static const char *ops_quote(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	return ops_quote_with('"', p, n, out, outlen);
}

static bool ops_is_space(uint8_t c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static const char ops_digits2[201] = "00010203040506070809"
                                     "10111213141516171819"
                                     "20212223242526272829"
                                     "30313233343536373839"
                                     "40414243444546474849"
                                     "50515253545556575859"
                                     "60616263646566676869"
                                     "70717273747576777879"
                                     "80818283848586878889"
                                     "90919293949596979899";

/* Writes exactly 8 digits of v < 10^8 (leading zeros kept), with 32-bit arithmetic. */
static void ops_put8(uint8_t *dst, uint32_t v)
{
	uint32_t hi = v / 10000, lo = v % 10000;
	memcpy(dst, ops_digits2 + 2 * (hi / 100), 2);
	memcpy(dst + 2, ops_digits2 + 2 * (hi % 100), 2);
	memcpy(dst + 4, ops_digits2 + 2 * (lo / 100), 2);
	memcpy(dst + 6, ops_digits2 + 2 * (lo % 100), 2);
}

/* Writes v < 10^8 without leading zeros; returns the length. */
static size_t ops_put_small(uint8_t *dst, uint32_t v)
{
	size_t n = v < 10000 ? (v < 100 ? (v < 10 ? 1 : 2) : (v < 1000 ? 3 : 4))
	                     : (v < 1000000 ? (v < 100000 ? 5 : 6) : (v < 10000000 ? 7 : 8));
	uint8_t *p = dst + n;
	while (v >= 100) {
		p -= 2;
		memcpy(p, ops_digits2 + 2 * (v % 100), 2);
		v /= 100;
	}
	if (v >= 10)
		memcpy(p - 2, ops_digits2 + 2 * v, 2);
	else
		p[-1] = (uint8_t)('0' + v);
	return n;
}

/* The hot path of square over a range: digits written in place with no intermediate copy.
 * The number is cut into 8-digit groups that are converted with 32-bit operations, which
 * are cheaper and less serial than one long chain of 64-bit divisions. Returns the length
 * (at most 20). */
static size_t ops_put_u64(uint8_t *dst, uint64_t v)
{
	if (v < 100000000)
		return ops_put_small(dst, (uint32_t)v);
	if (v < 10000000000000000u) {
		size_t n = ops_put_small(dst, (uint32_t)(v / 100000000));
		ops_put8(dst + n, (uint32_t)(v % 100000000));
		return n + 8;
	}
	uint64_t top = v / 100000000;
	size_t n = ops_put_small(dst, (uint32_t)(top / 100000000));
	ops_put8(dst + n, (uint32_t)(top % 100000000));
	ops_put8(dst + n + 8, (uint32_t)(v % 100000000));
	return n + 16;
}

static size_t ops_put_i64(uint8_t *dst, int64_t v)
{
	if (v >= 0)
		return ops_put_u64(dst, (uint64_t)v);
	dst[0] = '-';
	return 1 + ops_put_u64(dst + 1, 0 - (uint64_t)v);
}

static void ops_append_i128(struct buf *out, i128 v)
{
	uint8_t *dst = buf_reserve(out, NUM_I128_MAXLEN);
	out->len += num_format_i128(v, (char *)dst);
}

/* Records in a buffer: what `wc -l` counts, plus a final line without '\n'. */
static uint64_t ops_count_records(const uint8_t *p, size_t len)
{
	uint64_t n = 0;
	const uint8_t *end = p + len, *q = p;
	while (q < end) {
		const uint8_t *nl = memchr(q, '\n', (size_t)(end - q));
		if (nl == NULL) {
			n++;
			break;
		}
		n++;
		q = nl + 1;
	}
	return n;
}

/* Records of a range, lo..hi-1; hi - lo can reach 2^64 - 1, hence the unsigned difference. */
static uint64_t ops_range_size(const struct op_input *in)
{
	return in->hi > in->lo ? (uint64_t)in->hi - (uint64_t)in->lo : 0;
}

/* The end of the next slice of at most 65536 records of [x, hi), x < hi; the difference is
 * taken unsigned because hi - x overflows int64 for ranges wider than 2^63. */
static int64_t ops_range_slice_end(int64_t x, int64_t hi)
{
	return (uint64_t)hi - (uint64_t)x > 65536 ? x + 65536 : hi;
}

/* Appends the range's records as text lines "x\n" for x in [lo, hi). */
static void ops_range_text(int64_t lo, int64_t hi, struct buf *out)
{
	for (int64_t x = lo; x < hi;) {
		uint8_t *dst = buf_reserve(out, 4096 * 21);
		size_t k = 0;
		for (int i = 0; i < 4096 && x < hi; i++, x++) {
			k += ops_put_i64(dst + k, x);
			dst[k++] = '\n';
		}
		out->len += k;
	}
}

static int ops_fail(struct op_error *err, bool permanent, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int ops_fail(struct op_error *err, bool permanent, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	err->permanent = permanent;
	return -1;
}

static int ops_not_integer(struct op_error *err, uint32_t partition, uint64_t recno,
                           const uint8_t *rec, size_t len)
{
	char q[400];
	return ops_fail(err, true, "partition %u: record %llu is not an integer: %s", partition,
	                (unsigned long long)recno, ops_quote(rec, len, q, sizeof(q)));
}

/* ------------------------------------------------------------------------------------------ */
/* Arguments */

static const char *ops_arg_value(Shoal__Arg *const *args, size_t nargs, const char *key)
{
	for (size_t i = 0; i < nargs; i++)
		if (args[i] != NULL && args[i]->key != NULL && strcmp(args[i]->key, key) == 0)
			return args[i]->value != NULL ? args[i]->value : "";
	return NULL;
}

/* Whether key is one of the space-separated words of list. */
static bool ops_arg_known(const char *list, const char *key)
{
	size_t klen = strlen(key);
	if (klen == 0)
		return false;
	for (const char *p = list; *p != '\0';) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (n == klen && memcmp(p, key, n) == 0)
			return true;
		p += n;
	}
	return false;
}

/* knn's k: a whole number from 1 to UINT32_MAX (training rows are counted in 32 bits); 0 if v
 * is not one. */
static uint32_t ops_parse_k(const char *v)
{
	uint64_t k = 0;
	if (*v == '\0')
		return 0;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return 0;
		k = k * 10 + (uint64_t)(*v - '0');
		if (k > UINT32_MAX)
			return 0;
	}
	return (uint32_t)k;
}

int op_args_check(const struct op_desc *op, Shoal__Arg *const *args, size_t nargs, char *err,
                  size_t errlen)
{
	char q[400];
	int kind = ops_kind_of(op);
	if (kind < 0) {
		snprintf(err, errlen, "unknown op");
		return -1;
	}
	for (size_t i = 0; i < nargs; i++) {
		const char *key = args[i] != NULL && args[i]->key != NULL ? args[i]->key : "";
		if (!ops_arg_known(op->args, key)) {
			ops_quote_with('\'', (const uint8_t *)key, strlen(key), q, sizeof(q));
			if (op->args[0] == '\0')
				snprintf(err, errlen, "op %s takes no --arg (got %s)", op->name, q);
			else
				snprintf(err, errlen, "op %s has no --arg %s (it takes: %s)",
				         op->name, q, op->args);
			return -1;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(args[j]->key, key) == 0) {
				snprintf(err, errlen, "op %s: --arg %s given twice", op->name,
				         ops_quote_with('\'', (const uint8_t *)key, strlen(key), q,
				                        sizeof(q)));
				return -1;
			}
		}
	}
	if (kind == OPS_KNN) {
		const char *v = ops_arg_value(args, nargs, "k");
		if (v != NULL && ops_parse_k(v) == 0) {
			snprintf(err, errlen,
			         "knn needs --arg k=K with K a whole number from 1 (got %s)",
			         ops_quote_with('\'', (const uint8_t *)v, strlen(v), q, sizeof(q)));
			return -1;
		}
		v = ops_arg_value(args, nargs, "labeled");
		if (v != NULL && strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
			snprintf(err, errlen, "knn: --arg labeled takes 0 or 1 (got %s)",
			         ops_quote_with('\'', (const uint8_t *)v, strlen(v), q, sizeof(q)));
			return -1;
		}
	}
	if (kind == OPS_GREP) {
		const char *pat = ops_arg_value(args, nargs, "pattern");
		if (pat == NULL) {
			snprintf(err, errlen, "grep needs --arg pattern=TEXT");
			return -1;
		}
		if (pat[0] == '\0') {
			snprintf(err, errlen, "grep needs a non-empty --arg pattern=TEXT");
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* square */

static int ops_square_record(const uint8_t *rec, size_t len, uint32_t partition, uint64_t recno,
                             struct buf *out, struct op_error *err)
{
	i128 x, sq;
	if (num_parse_i128(rec, len, &x) < 0)
		return ops_not_integer(err, partition, recno, rec, len);
	if (__builtin_mul_overflow(x, x, &sq)) {
		char num[NUM_I128_MAXLEN + 1];
		num[num_format_i128(x, num)] = '\0';
		return ops_fail(err, true,
		                "partition %u: record %llu: square of %s does not fit in 128 bits",
		                partition, (unsigned long long)recno, num);
	}
	uint8_t *dst = buf_reserve(out, NUM_I128_MAXLEN + 1);
	size_t n = num_format_i128(sq, (char *)dst);
	dst[n] = '\n';
	out->len += n + 1;
	return 0;
}

static void ops_square_range(int64_t lo, int64_t hi, struct buf *out)
{
	/* |x| < 2^32 squares in 64 bits (the usual case, printed by the fast routine); beyond,
	 * x^2 < 2^126 always fits in i128. Output is produced in batches so that the buffer is
	 * grown once per batch, not once per number. */
	for (int64_t x = lo; x < hi;) {
		const int batch = 4096;
		uint8_t *dst = buf_reserve(out, (size_t)batch * (NUM_I128_MAXLEN + 1));
		size_t k = 0;
		for (int i = 0; i < batch && x < hi; i++, x++) {
			uint64_t a = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
			if (a <= UINT32_MAX) {
				k += ops_put_u64(dst + k, a * a);
			} else {
				i128 sq = (i128)x * x;
				k += num_format_i128(sq, (char *)dst + k);
			}
			dst[k++] = '\n';
		}
		out->len += k;
	}
}

static int ops_square(const struct op_input *in, uint32_t partition, struct buf *out,
                      uint64_t *records, struct op_error *err)
{
	if (in->is_range) {
		ops_square_range(in->lo, in->hi, out);
		*records = ops_range_size(in);
		return 0;
	}
	struct record_iter it;
	const uint8_t *rec;
	size_t len;
	uint64_t n = 0;
	record_iter_init(&it, in->data, in->len);
	while (record_iter_next(&it, &rec, &len)) {
		if (ops_square_record(rec, len, partition, ++n, out, err) < 0)
			return -1;
	}
	*records = n;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* grep */

static void ops_grep_buffer(const uint8_t *p, size_t len, const char *pat, struct buf *out)
{
	size_t plen = strlen(pat);
	/* A record never holds '\n', so such a pattern matches nothing; without '\n' in the
	 * pattern every match lies inside one record, and searching the whole buffer at once
	 * is much faster than one search per record. */
	if (memchr(pat, '\n', plen) != NULL)
		return;
	size_t pos = 0;
	while (pos < len) {
		const uint8_t *hit = memmem(p + pos, len - pos, pat, plen);
		if (hit == NULL)
			break;
		size_t h = (size_t)(hit - p);
		const uint8_t *prev_nl = h > pos ? memrchr(p + pos, '\n', h - pos) : NULL;
		size_t start = prev_nl != NULL ? (size_t)(prev_nl - p) + 1 : pos;
		const uint8_t *nl = memchr(hit, '\n', len - h);
		size_t end = nl != NULL ? (size_t)(nl - p) : len;
		buf_append(out, p + start, end - start);
		buf_append_byte(out, '\n');
		pos = end + 1;
	}
}

static int ops_grep(Shoal__Arg *const *args, size_t nargs, const struct op_input *in,
                    struct buf *out, uint64_t *records)
{
	const char *pat = ops_arg_value(args, nargs, "pattern");
	if (in->is_range) {
		/* Records are the decimal integers; render them a slice at a time. */
		struct buf text = BUF_INIT;
		int64_t x = in->lo;
		while (x < in->hi) {
			int64_t stop = ops_range_slice_end(x, in->hi);
			buf_reset(&text);
			ops_range_text(x, stop, &text);
			ops_grep_buffer(text.data, text.len, pat, out);
			x = stop;
		}
		buf_free(&text);
		*records = ops_range_size(in);
		return 0;
	}
	ops_grep_buffer(in->data, in->len, pat, out);
	*records = ops_count_records(in->data, in->len);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* sum, count, min, max, mean: map side */

struct ops_acc {
	i128 sum;
	i128 lo, hi;
	uint64_t count;
};

static int ops_fold_scan(int kind, const struct op_input *in, uint32_t partition,
                         struct ops_acc *acc, struct op_error *err)
{
	acc->sum = 0;
	acc->lo = 0;
	acc->hi = 0;
	acc->count = 0;
	if (in->is_range) {
		uint64_t n = ops_range_size(in);
		acc->count = n;
		if (n > 0) {
			/* lo + ... + hi-1 = n (lo + hi - 1) / 2; one factor is even, and the
			 * product stays below 2^126 for int64 bounds. */
			i128 s = (i128)in->lo + (i128)in->hi - 1;
			i128 prod;
			if (__builtin_mul_overflow(s, (i128)n, &prod))
				return ops_fail(err, true, "partition %u: sum overflows 128 bits",
				                partition);
			acc->sum = prod / 2;
			acc->lo = in->lo;
			acc->hi = (i128)in->hi - 1;
		}
		return 0;
	}
	bool need_sum = kind == OPS_SUM || kind == OPS_MEAN;
	struct record_iter it;
	const uint8_t *rec;
	size_t len;
	record_iter_init(&it, in->data, in->len);
	while (record_iter_next(&it, &rec, &len)) {
		i128 x;
		acc->count++;
		if (num_parse_i128(rec, len, &x) < 0)
			return ops_not_integer(err, partition, acc->count, rec, len);
		if (need_sum && __builtin_add_overflow(acc->sum, x, &acc->sum))
			return ops_fail(err, true,
			                "partition %u: record %llu: sum overflows 128 bits",
			                partition, (unsigned long long)acc->count);
		if (acc->count == 1 || x < acc->lo)
			acc->lo = x;
		if (acc->count == 1 || x > acc->hi)
			acc->hi = x;
	}
	return 0;
}

static int ops_fold_map(int kind, const struct op_input *in, uint32_t partition, struct buf *out,
                        uint64_t *records, struct op_error *err)
{
	struct ops_acc acc;
	if (kind == OPS_COUNT) {
		acc.count =
		    in->is_range ? ops_range_size(in) : ops_count_records(in->data, in->len);
		buf_printf(out, "count %llu\n", (unsigned long long)acc.count);
		*records = acc.count;
		return 0;
	}
	if (ops_fold_scan(kind, in, partition, &acc, err) < 0)
		return -1;
	const char *name = op_table[kind].name;
	buf_printf(out, "%s ", name);
	switch (kind) {
	case OPS_SUM:
		ops_append_i128(out, acc.sum);
		break;
	case OPS_MIN:
	case OPS_MAX:
		if (acc.count == 0)
			buf_append(out, "none", 4);
		else
			ops_append_i128(out, kind == OPS_MIN ? acc.lo : acc.hi);
		break;
	default: /* OPS_MEAN */
		ops_append_i128(out, acc.sum);
		buf_printf(out, " %llu", (unsigned long long)acc.count);
		break;
	}
	buf_append_byte(out, '\n');
	*records = acc.count;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Sorting byte strings: multikey quicksort (Bentley & Sedgewick), which looks at each byte of
 * a common prefix once per level instead of once per comparison. Recursion goes into the two
 * smaller of the three parts and loops on the largest, so the stack depth is at most
 * log2(n) whatever the data (long shared prefixes included). */

static inline int ops_ch(const struct ops_item *it, size_t d)
{
	return d < it->len ? it->p[d] : -1;
}

static inline void ops_swap(struct ops_item *a, size_t i, size_t j)
{
	struct ops_item t = a[i];
	a[i] = a[j];
	a[j] = t;
}

/* Bytewise order of the suffixes from d (every item here has len >= d). */
static int ops_cmp_from(const struct ops_item *x, const struct ops_item *y, size_t d)
{
	size_t lx = x->len - d, ly = y->len - d;
	int c = memcmp(x->p + d, y->p + d, lx < ly ? lx : ly);
	if (c != 0)
		return c;
	return lx < ly ? -1 : lx > ly;
}

static void ops_isort(struct ops_item *a, size_t n, size_t d)
{
	for (size_t i = 1; i < n; i++) {
		struct ops_item t = a[i];
		size_t j = i;
		while (j > 0 && ops_cmp_from(&t, &a[j - 1], d) < 0) {
			a[j] = a[j - 1];
			j--;
		}
		a[j] = t;
	}
}

static int ops_med3(int a, int b, int c)
{
	if (a < b)
		return b < c ? b : (a < c ? c : a);
	return a < c ? a : (b < c ? c : b);
}

static void ops_mkqsort(struct ops_item *a, size_t n, size_t d)
{
	while (n > 1) {
		if (n < 16) {
			ops_isort(a, n, d);
			return;
		}
		int v = ops_med3(ops_ch(&a[0], d), ops_ch(&a[n / 2], d), ops_ch(&a[n - 1], d));
		size_t lt = 0, i = 0, gt = n;
		while (i < gt) {
			int c = ops_ch(&a[i], d);
			if (c < v)
				ops_swap(a, lt++, i++);
			else if (c > v)
				ops_swap(a, i, --gt);
			else
				i++;
		}
		size_t nl = lt, ng = n - gt;
		/* Items that end at d (v == -1) are equal: that part is done. */
		size_t ne = v < 0 ? 0 : gt - lt;
		struct ops_item *eq = a + lt, *gtp = a + gt;
		if (nl >= ne && nl >= ng) {
			ops_mkqsort(eq, ne, d + 1);
			ops_mkqsort(gtp, ng, d);
			/* loop on a[0..nl) */
			n = nl;
		} else if (ng >= ne) {
			ops_mkqsort(a, nl, d);
			ops_mkqsort(eq, ne, d + 1);
			a = gtp;
			n = ng;
		} else {
			ops_mkqsort(a, nl, d);
			ops_mkqsort(gtp, ng, d);
			a = eq;
			n = ne;
			d++;
		}
	}
}

void ops__sort_items(struct ops_item *items, size_t n)
{
	ops_mkqsort(items, n, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* sort */

static void ops_sort_buffer(const uint8_t *p, size_t len, struct buf *out, uint64_t *records)
{
	uint64_t n = ops_count_records(p, len);
	struct ops_item *items = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(*items));
	struct record_iter it;
	const uint8_t *rec;
	size_t rlen, k = 0;
	record_iter_init(&it, p, len);
	while (record_iter_next(&it, &rec, &rlen)) {
		items[k].p = rec;
		items[k].len = rlen;
		k++;
	}
	ops_mkqsort(items, k, 0);
	/* Each record gets its '\n' back, including a last one that had none. */
	uint8_t *dst = buf_reserve(out, len + 1);
	size_t o = 0;
	for (size_t i = 0; i < k; i++) {
		memcpy(dst + o, items[i].p, items[i].len);
		o += items[i].len;
		dst[o++] = '\n';
	}
	out->len += o;
	free(items);
	*records = k;
}

static int ops_sort(const struct op_input *in, struct buf *out, uint64_t *records)
{
	if (in->is_range) {
		struct buf text = BUF_INIT;
		ops_range_text(in->lo, in->hi, &text);
		ops_sort_buffer(text.data, text.len, out, records);
		buf_free(&text);
		return 0;
	}
	ops_sort_buffer(in->data, in->len, out, records);
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* wordcount: an open-addressing hash table (linear probing) whose slots hold the entries
 * themselves, with each word's hash and first 8 bytes, so that a lookup usually costs one
 * cache miss and never touches the text for words of up to 8 bytes. Words stay in the input
 * (no copies). The distinct words are then sorted.
 *
 * A word is a maximal run of bytes other than space \t \n \v \f \r. This is `wc -w` for
 * text whose words all hold a printable character; GNU wc in the C locale additionally skips
 * runs made only of non-printable bytes (control bytes, or bytes >= 0x80 such as UTF-8 "é"),
 * which would drop every non-ASCII word, so that rule is deliberately not followed. */

struct ops_wc_slot {
	const uint8_t *p;
	size_t len;
	uint64_t head; /* the first min(len, 8) bytes, zero-padded */
	uint64_t hash;
	uint64_t count; /* 0: empty slot */
};

struct ops_wc {
	struct ops_wc_slot *slots;
	size_t mask, n;
};

static uint64_t ops_hash(const uint8_t *p, size_t n, uint64_t head)
{
	uint64_t h = 0x9e3779b97f4a7c15u ^ (n * 0xff51afd7ed558ccdu);
	while (n > 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdu;
		h ^= h >> 32;
		p += 8;
		n -= 8;
	}
	/* The last 1..8 bytes; for short words these are the head. */
	uint64_t w = head;
	if (n < 8 && p != NULL) {
		w = 0;
		memcpy(&w, p, n);
	}
	h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
	h ^= h >> 29;
	h *= 0x9e3779b97f4a7c15u;
	h ^= h >> 32;
	return h;
}

static void ops_wc_grow(struct ops_wc *t)
{
	size_t old_n = t->mask + 1;
	struct ops_wc_slot *old = t->slots;
	t->mask = old_n * 2 - 1;
	t->slots = xcalloc(t->mask + 1, sizeof(*t->slots));
	for (size_t i = 0; i < old_n; i++) {
		if (old[i].count == 0)
			continue;
		size_t s = (size_t)old[i].hash & t->mask;
		while (t->slots[s].count != 0)
			s = (s + 1) & t->mask;
		t->slots[s] = old[i];
	}
	free(old);
}

static void ops_wc_add(struct ops_wc *t, const uint8_t *w, size_t len)
{
	uint64_t head = 0;
	memcpy(&head, w, len < 8 ? len : 8);
	uint64_t h = len <= 8 ? ops_hash(NULL, len, head) : ops_hash(w, len, head);
	size_t s = (size_t)h & t->mask;
	for (;;) {
		struct ops_wc_slot *e = &t->slots[s];
		if (e->count == 0)
			break;
		if (e->hash == h && e->len == len && e->head == head &&
		    (len <= 8 || memcmp(e->p + 8, w + 8, len - 8) == 0)) {
			e->count++;
			return;
		}
		s = (s + 1) & t->mask;
	}
	t->slots[s] = (struct ops_wc_slot){w, len, head, h, 1};
	t->n++;
	/* Load factor at most 1/2 keeps probe runs short. */
	if (t->n * 2 > t->mask + 1)
		ops_wc_grow(t);
}

static void ops_wordcount_buffer(const uint8_t *p, size_t len, struct buf *out)
{
	struct ops_wc t = {0};
	t.mask = 4095;
	t.slots = xcalloc(t.mask + 1, sizeof(*t.slots));
	size_t i = 0;
	while (i < len) {
		while (i < len && ops_is_space(p[i]))
			i++;
		if (i == len)
			break;
		size_t s = i;
		while (i < len && !ops_is_space(p[i]))
			i++;
		ops_wc_add(&t, p + s, i - s);
	}
	struct ops_item *items = xmalloc((t.n > 0 ? t.n : 1) * sizeof(*items));
	size_t n = 0;
	for (size_t k = 0; k <= t.mask; k++)
		if (t.slots[k].count != 0)
			items[n++] =
			    (struct ops_item){t.slots[k].p, t.slots[k].len, t.slots[k].count};
	free(t.slots);
	ops_mkqsort(items, n, 0);
	for (size_t k = 0; k < n; k++) {
		uint8_t *dst = buf_reserve(out, items[k].len + 22);
		memcpy(dst, items[k].p, items[k].len);
		size_t o = items[k].len;
		dst[o++] = '\t';
		o += ops_put_u64(dst + o, items[k].aux);
		dst[o++] = '\n';
		out->len += o;
	}
	free(items);
}

static void ops_wordcount(const struct op_input *in, struct buf *out, uint64_t *records)
{
	if (in->is_range) {
		struct buf text = BUF_INIT;
		ops_range_text(in->lo, in->hi, &text);
		ops_wordcount_buffer(text.data, text.len, out);
		buf_free(&text);
		*records = ops_range_size(in);
		return;
	}
	*records = ops_count_records(in->data, in->len);
	ops_wordcount_buffer(in->data, in->len, out);
}

/* ------------------------------------------------------------------------------------------ */
/* knn: k nearest neighbours, brute force.
 *
 * The training set (the job's --broadcast file) holds CSV rows f1,...,fd,label; the queries
 * (the partition's records) hold f1,...,fd, or f1,...,fd,label with labeled=1 (the label is
 * read and ignored: the client scores it). Plain CSV: no quoting, fields split at every ','.
 * Numbers are decimal ([+-]digits[.digits][e[+-]digits], spaces or tabs around them allowed);
 * a trailing CR is dropped. A first line whose first field is not a number is a header and is
 * skipped: in the training set, and in the queries when it is the first record of partition 0
 * (the only place a header can be, whatever the partitioning).
 *
 * The distance of two rows is the sum over j = 1..d, in that order, of (q_j - t_j)^2 in double
 * (no square root: it keeps the order). The k nearest rows are kept, equal distances going to
 * the earlier training row; the vote picks the most frequent label among them and, on a tie,
 * the tied label whose nearest member comes first. Each prediction is thus a pure function of
 * the query row, which makes the result independent of the partitioning.
 *
 * Speed: every partition parses the training set once, into blocks of KNN_LANES rows stored
 * feature-major, so that one query's distances to a block's rows are KNN_LANES independent sums
 * computed side by side in vector registers, each in the exact order of the scalar loop above.
 * KNN_GROUP queries share each load of the training data, and queries go in tiles against
 * chunks of the training set small enough to stay in L2. The k best of each query are a
 * max-heap whose root (the current k-th distance) most candidates fail against at once. */

#define KNN_LANES 8         /* training rows per block */
#define KNN_GROUP 4         /* queries whose distances are computed together */
#define KNN_TILE  256       /* queries per tile */
#define KNN_CHUNK (1 << 18) /* bytes of training data per chunk (L2) */
#define KNN_HEAPS (1 << 22) /* bytes of candidate heaps per tile, at most (large k) */

#ifdef __clang__
/* a += e * e stays two roundings even where FMA exists (GCC: off in ISO C mode). */
#pragma STDC FP_CONTRACT OFF
#endif

struct knn_label {
	const uint8_t *p; /* in the training text */
	size_t len;
};

struct knn_train {
	size_t n, d;       /* rows, features per row */
	size_t nblocks;    /* ceil(n / KNN_LANES) */
	double *t;         /* feature j of row b*KNN_LANES+r at [(b*d + j)*KNN_LANES + r] */
	uint32_t *row_lab; /* label id of each row */
	struct knn_label *labels;
	size_t nlabels;
};

struct knn_cand {
	double dist;
	uint32_t row;
};

static bool knn_is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static const double knn_pow10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* Parses the decimal number that p[0..n) holds, blanks around it allowed, correctly rounded.
 * Up to 19 significant digits and a power of ten up to 22 away, the value is one exact integer
 * times or divided by one exact power of ten: a single rounding, hence exact (Clinger's fast
 * path). Other spellings, already checked for syntax, go to strtod. 0, or -1 if the text is
 * not a decimal number or its value is not finite. */
static int knn_parse_num(const uint8_t *p, size_t n, double *out)
{
	while (n > 0 && knn_is_blank(p[n - 1]))
		n--;
	size_t i = 0;
	while (i < n && knn_is_blank(p[i]))
		i++;
	size_t start = i;
	bool neg = false;
	if (i < n && (p[i] == '+' || p[i] == '-'))
		neg = p[i++] == '-';
	uint64_t mant = 0;
	int sig = 0;          /* significant digits in mant */
	long e10 = 0;         /* value = mant * 10^e10 (before the exponent part) */
	bool inexact = false; /* a non-zero digit did not fit in mant */
	bool digits = false;
	for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
		digits = true;
		if (mant == 0 && p[i] == '0')
			continue;
		if (sig < 19) {
			mant = mant * 10 + (uint64_t)(p[i] - '0');
			sig++;
		} else {
			e10++;
			inexact |= p[i] != '0';
		}
	}
	if (i < n && p[i] == '.') {
		for (i++; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
			digits = true;
			if (mant == 0 && p[i] == '0') {
				e10--;
			} else if (sig < 19) {
				mant = mant * 10 + (uint64_t)(p[i] - '0');
				sig++;
				e10--;
			} else {
				inexact |= p[i] != '0';
			}
		}
	}
	if (!digits)
		return -1;
	if (i < n && (p[i] == 'e' || p[i] == 'E')) {
		i++;
		bool eneg = false;
		if (i < n && (p[i] == '+' || p[i] == '-'))
			eneg = p[i++] == '-';
		if (i == n || p[i] < '0' || p[i] > '9')
			return -1;
		long ex = 0;
		for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			if (ex < 100000) /* far beyond any double; keeps the sum small */
				ex = ex * 10 + (p[i] - '0');
		e10 += eneg ? -ex : ex;
	}
	if (i != n)
		return -1;
	double v;
	if (mant == 0) {
		v = 0.0;
	} else if (!inexact && mant <= ((uint64_t)1 << 53) && e10 >= -22 && e10 <= 22) {
		v = e10 < 0 ? (double)mant / knn_pow10[-e10] : (double)mant * knn_pow10[e10];
	} else {
		char small[64];
		size_t len = n - start;
		char *s = len < sizeof(small) ? small : xmalloc(len + 1);
		memcpy(s, p + start, len);
		s[len] = '\0';
		v = strtod(s, NULL);
		if (s != small)
			free(s);
		if (!isfinite(v))
			return -1;
		*out = v; /* strtod read the sign */
		return 0;
	}
	*out = neg ? -v : v;
	return 0;
}

/* The first field of a row is not a number: the row is a header. */
static bool knn_is_header(const uint8_t *rec, size_t len)
{
	const uint8_t *comma = memchr(rec, ',', len);
	double v;
	return knn_parse_num(rec, comma != NULL ? (size_t)(comma - rec) : len, &v) < 0;
}

static size_t knn_count_fields(const uint8_t *rec, size_t len)
{
	size_t n = 1;
	for (const uint8_t *p = rec, *end = rec + len; (p = memchr(p, ',', (size_t)(end - p)));)
		n++, p++;
	return n;
}

enum knn_row_status { KNN_ROW_OK, KNN_ROW_FIELDS, KNN_ROW_NUMBER, KNN_ROW_LABEL };

/* Parses one CSV row: nnum numbers into x, then, if label is not NULL, a label (blanks around
 * it trimmed, not empty) that must be the last field. On KNN_ROW_NUMBER, *bad is the 1-based
 * field that is not a number. */
static enum knn_row_status knn_parse_row(const uint8_t *rec, size_t len, size_t nnum, double *x,
                                         struct knn_label *label, size_t *bad)
{
	size_t pos = 0;
	for (size_t j = 0; j < nnum; j++) {
		const uint8_t *comma = memchr(rec + pos, ',', len - pos);
		size_t end = comma != NULL ? (size_t)(comma - rec) : len;
		bool last = j + 1 == nnum && label == NULL;
		if ((comma == NULL) != last)
			return KNN_ROW_FIELDS;
		if (knn_parse_num(rec + pos, end - pos, &x[j]) < 0) {
			*bad = j + 1;
			return KNN_ROW_NUMBER;
		}
		pos = end + 1;
	}
	if (label == NULL)
		return KNN_ROW_OK;
	if (memchr(rec + pos, ',', len - pos) != NULL)
		return KNN_ROW_FIELDS;
	size_t a = pos, b = len;
	while (a < b && knn_is_blank(rec[a]))
		a++;
	while (b > a && knn_is_blank(rec[b - 1]))
		b--;
	if (a == b)
		return KNN_ROW_LABEL;
	label->p = rec + a;
	label->len = b - a;
	return KNN_ROW_OK;
}

static uint64_t knn_hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3u;
	return h;
}

/* Label ids: an open-addressing table of id + 1 (0: empty), load at most 1/2. */
struct knn_labels {
	uint32_t *slots;
	size_t mask;
};

static uint32_t knn_label_id(struct knn_train *tr, struct knn_labels *lt, struct knn_label l)
{
	size_t s = (size_t)knn_hash(l.p, l.len) & lt->mask;
	for (; lt->slots[s] != 0; s = (s + 1) & lt->mask) {
		const struct knn_label *e = &tr->labels[lt->slots[s] - 1];
		if (e->len == l.len && memcmp(e->p, l.p, l.len) == 0)
			return lt->slots[s] - 1;
	}
	uint32_t id = (uint32_t)tr->nlabels++;
	tr->labels[id] = l;
	lt->slots[s] = id + 1;
	if (tr->nlabels * 2 > lt->mask + 1) {
		size_t old_n = lt->mask + 1;
		uint32_t *old = lt->slots;
		lt->mask = old_n * 2 - 1;
		lt->slots = xcalloc(lt->mask + 1, sizeof(*lt->slots));
		for (size_t i = 0; i < old_n; i++) {
			if (old[i] == 0)
				continue;
			const struct knn_label *e = &tr->labels[old[i] - 1];
			size_t t = (size_t)knn_hash(e->p, e->len) & lt->mask;
			while (lt->slots[t] != 0)
				t = (t + 1) & lt->mask;
			lt->slots[t] = old[i];
		}
		free(old);
	}
	return id;
}

static void knn_train_free(struct knn_train *tr)
{
	free(tr->t);
	free(tr->row_lab);
	free(tr->labels);
}

/* True if only line ends and blanks are left from pos: blank lines that end a file. */
static bool knn_rest_blank(const uint8_t *p, size_t len, size_t pos)
{
	for (; pos < len; pos++)
		if (!knn_is_blank(p[pos]) && p[pos] != '\r' && p[pos] != '\n')
			return false;
	return true;
}

static int knn_train_parse(const uint8_t *p, size_t len, struct knn_train *tr, struct op_error *err)
{
	char q[400];
	memset(tr, 0, sizeof(*tr));
	/* Lines bound the rows, so one allocation of each array suffices. */
	size_t maxrows = (size_t)ops_count_records(p, len);
	if (maxrows > UINT32_MAX)
		return ops_fail(err, true, "knn: the training set has more than %u rows",
		                UINT32_MAX);
	tr->row_lab = xmalloc((maxrows > 0 ? maxrows : 1) * sizeof(*tr->row_lab));
	tr->labels = xmalloc((maxrows > 0 ? maxrows : 1) * sizeof(*tr->labels));
	struct knn_labels lt = {xcalloc(64, sizeof(uint32_t)), 63};
	double *x = NULL;
	struct knn_label prev = {NULL, 0};
	uint32_t prev_id = 0;
	struct record_iter it;
	const uint8_t *rec;
	size_t rlen;
	uint64_t line = 0;
	record_iter_init(&it, p, len);
	while (record_iter_next(&it, &rec, &rlen)) {
		line++;
		if (rlen > 0 && rec[rlen - 1] == '\r')
			rlen--;
		if (line == 1 && rlen > 0 && knn_is_header(rec, rlen))
			continue;
		if (rlen == 0) {
			if (knn_rest_blank(p, len, it.pos))
				break;
			goto empty;
		}
		if (tr->d == 0) {
			size_t nf = knn_count_fields(rec, rlen);
			if (nf < 2) {
				ops_fail(err, true,
				         "knn: training set line %llu has one field; rows are "
				         "f1,...,fd,label: %s",
				         (unsigned long long)line,
				         ops_quote(rec, rlen, q, sizeof(q)));
				goto fail;
			}
			tr->d = nf - 1;
			tr->t = xcalloc((maxrows + KNN_LANES - 1) / KNN_LANES * KNN_LANES,
			                tr->d * sizeof(double));
			x = xmalloc(tr->d * sizeof(*x));
		}
		struct knn_label l;
		size_t bad = 0;
		switch (knn_parse_row(rec, rlen, tr->d, x, &l, &bad)) {
		case KNN_ROW_OK:
			break;
		case KNN_ROW_FIELDS:
			ops_fail(
			    err, true,
			    "knn: training set line %llu has %zu fields, the first row %zu: %s",
			    (unsigned long long)line, knn_count_fields(rec, rlen), tr->d + 1,
			    ops_quote(rec, rlen, q, sizeof(q)));
			goto fail;
		case KNN_ROW_NUMBER:
			ops_fail(
			    err, true,
			    "knn: training set line %llu: field %zu is not a finite number: %s",
			    (unsigned long long)line, bad, ops_quote(rec, rlen, q, sizeof(q)));
			goto fail;
		default:
			ops_fail(err, true, "knn: training set line %llu has an empty label: %s",
			         (unsigned long long)line, ops_quote(rec, rlen, q, sizeof(q)));
			goto fail;
		}
		size_t i = tr->n++;
		double *dst = tr->t + (i / KNN_LANES) * tr->d * KNN_LANES + i % KNN_LANES;
		for (size_t j = 0; j < tr->d; j++)
			dst[j * KNN_LANES] = x[j];
		/* Rows of one label usually come together: skip the table for a repeat. */
		if (prev.p == NULL || prev.len != l.len || memcmp(prev.p, l.p, l.len) != 0) {
			prev_id = knn_label_id(tr, &lt, l);
			prev = l;
		}
		tr->row_lab[i] = prev_id;
	}
	if (tr->n == 0) {
		ops_fail(err, true, "knn: the training set (--broadcast) has no rows");
		goto fail;
	}
	tr->nblocks = (tr->n + KNN_LANES - 1) / KNN_LANES;
	free(x);
	free(lt.slots);
	return 0;
empty:
	ops_fail(err, true, "knn: training set line %llu is empty", (unsigned long long)line);
fail:
	free(x);
	free(lt.slots);
	knn_train_free(tr);
	return -1;
}

/* The k best candidates of one query: a max-heap under (dist, row), so that the root is the
 * one to drop. It starts full of sentinels (inf, UINT32_MAX) that every row beats, even one at
 * an infinite distance, which spares a fill phase. */
static bool knn_cand_after(struct knn_cand a, struct knn_cand b)
{
	return a.dist > b.dist || (a.dist == b.dist && a.row > b.row);
}

static void knn_sift_down(struct knn_cand *h, size_t k, size_t i, struct knn_cand c)
{
	for (;;) {
		size_t l = 2 * i + 1;
		if (l >= k)
			break;
		size_t m = l + 1 < k && knn_cand_after(h[l + 1], h[l]) ? l + 1 : l;
		if (!knn_cand_after(h[m], c))
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = c;
}

/* Rows arrive in increasing order, so a row at the root's distance always loses to the root;
 * the caller only calls with dist <= the root's. */
static void knn_offer(struct knn_cand *h, size_t k, double dist, uint32_t row, double *worst)
{
	struct knn_cand c = {dist, row};
	if (!knn_cand_after(h[0], c))
		return;
	knn_sift_down(h, k, 0, c);
	*worst = h[0].dist;
}

/* A tile of queries being answered. */
struct knn_tile {
	const struct knn_train *tr;
	size_t k;
	size_t cap, nq;         /* capacity (a multiple of KNN_GROUP), queries held */
	double *q;              /* nq rows of d features */
	struct knn_cand *heaps; /* k per query */
	double *worst;          /* the root distance of each heap */
	uint32_t *votes;        /* per label, zero between queries */
};

/* Distances of KNN_GROUP queries to the rows of blocks b0..b1-1, offered to their heaps. Vector
 * lanes are training rows; each lane sums its features in order j = 0..d-1, exactly as the
 * scalar loop does, so the distances are the same bits with or without vectors. */
typedef double knn_vec __attribute__((vector_size(4 * sizeof(double))));
typedef int64_t knn_mask __attribute__((vector_size(4 * sizeof(int64_t))));

static inline __attribute__((always_inline)) void knn_group_body(const struct knn_tile *t, size_t g,
                                                                 size_t b0, size_t b1)
{
	const struct knn_train *tr = t->tr;
	size_t d = tr->d;
	const double *q0 = t->q + g * d, *q1 = q0 + d, *q2 = q1 + d, *q3 = q2 + d;
	for (size_t b = b0; b < b1; b++) {
		const double *tb = tr->t + b * d * KNN_LANES;
		knn_vec a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0};
		knn_vec a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
		for (size_t j = 0; j < d; j++) {
			knn_vec t0, t1, e;
			memcpy(&t0, tb + j * KNN_LANES, sizeof(t0));
			memcpy(&t1, tb + j * KNN_LANES + 4, sizeof(t1));
			/* (t - q)^2 is (q - t)^2 to the bit: negation is exact. */
			e = t0 - q0[j];
			a00 += e * e;
			e = t1 - q0[j];
			a01 += e * e;
			e = t0 - q1[j];
			a10 += e * e;
			e = t1 - q1[j];
			a11 += e * e;
			e = t0 - q2[j];
			a20 += e * e;
			e = t1 - q2[j];
			a21 += e * e;
			e = t0 - q3[j];
			a30 += e * e;
			e = t1 - q3[j];
			a31 += e * e;
		}
		/* Most blocks have no row within any query's k-th distance: one vector compare
		 * per query finds out, and only the rare block that does is looked at row by
		 * row. */
		knn_vec acc[KNN_GROUP][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
		for (size_t i = 0; i < KNN_GROUP; i++) {
			double *worst = &t->worst[g + i];
			knn_mask m = (acc[i][0] <= *worst) | (acc[i][1] <= *worst);
			if ((m[0] | m[1] | m[2] | m[3]) == 0)
				continue;
			double dist[KNN_LANES];
			memcpy(dist, &acc[i][0], sizeof(acc[i][0]));
			memcpy(dist + 4, &acc[i][1], sizeof(acc[i][1]));
			size_t lanes =
			    tr->n - b * KNN_LANES < KNN_LANES ? tr->n - b * KNN_LANES : KNN_LANES;
			struct knn_cand *h = t->heaps + (g + i) * t->k;
			for (size_t r = 0; r < lanes; r++)
				if (dist[r] <= *worst)
					knn_offer(h, t->k, dist[r], (uint32_t)(b * KNN_LANES + r),
					          worst);
		}
	}
}

static void knn_group_generic(const struct knn_tile *t, size_t g, size_t b0, size_t b1)
{
	knn_group_body(t, g, b0, b1);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define KNN_HAVE_AVX2 1
/* Twice the lanes per instruction where the CPU has them; same operations, same bits. */
__attribute__((target("avx2"))) static void knn_group_avx2(const struct knn_tile *t, size_t g,
                                                           size_t b0, size_t b1)
{
	knn_group_body(t, g, b0, b1);
}
#endif

typedef void (*knn_group_fn)(const struct knn_tile *t, size_t g, size_t b0, size_t b1);

static knn_group_fn knn_pick_group_fn(void)
{
#ifdef KNN_HAVE_AVX2
	if (__builtin_cpu_supports("avx2"))
		return knn_group_avx2;
#endif
	return knn_group_generic;
}

/* Answers the tile's queries and appends their labels to out. */
static void knn_tile_run(struct knn_tile *t, knn_group_fn group, struct buf *out)
{
	const struct knn_train *tr = t->tr;
	size_t d = tr->d, k = t->k;
	if (t->nq == 0)
		return;
	/* Pad to whole groups with copies of the last query; their answers are dropped. */
	size_t ng = (t->nq + KNN_GROUP - 1) / KNN_GROUP * KNN_GROUP;
	for (size_t i = t->nq; i < ng; i++)
		memcpy(t->q + i * d, t->q + (t->nq - 1) * d, d * sizeof(double));
	for (size_t i = 0; i < ng; i++) {
		t->worst[i] = INFINITY;
		for (size_t c = 0; c < k; c++)
			t->heaps[i * k + c] = (struct knn_cand){INFINITY, UINT32_MAX};
	}
	size_t chunk = KNN_CHUNK / (d * KNN_LANES * sizeof(double));
	if (chunk == 0)
		chunk = 1;
	for (size_t b0 = 0; b0 < tr->nblocks; b0 += chunk) {
		size_t b1 = tr->nblocks - b0 < chunk ? tr->nblocks : b0 + chunk;
		for (size_t g = 0; g < ng; g += KNN_GROUP)
			group(t, g, b0, b1);
	}
	for (size_t i = 0; i < t->nq; i++) {
		struct knn_cand *h = t->heaps + i * k;
		/* Heap sort in place: nearest first. */
		for (size_t end = k; end > 1; end--) {
			struct knn_cand top = h[0];
			knn_sift_down(h, end - 1, 0, h[end - 1]);
			h[end - 1] = top;
		}
		uint32_t best = 0;
		for (size_t c = 0; c < k; c++) {
			uint32_t v = ++t->votes[tr->row_lab[h[c].row]];
			if (v > best)
				best = v;
		}
		/* The first (nearest) candidate of a label with the most votes. */
		size_t win = 0;
		while (t->votes[tr->row_lab[h[win].row]] != best)
			win++;
		for (size_t c = 0; c < k; c++)
			t->votes[tr->row_lab[h[c].row]] = 0;
		const struct knn_label *l = &tr->labels[tr->row_lab[h[win].row]];
		uint8_t *dst = buf_reserve(out, l->len + 1);
		memcpy(dst, l->p, l->len);
		dst[l->len] = '\n';
		out->len += l->len + 1;
	}
	t->nq = 0;
}

/* The query records of one partition, fed in order (a range input comes in slices). */
struct knn_query {
	struct knn_tile tile;
	knn_group_fn group;
	bool labeled;
	uint32_t partition;
	uint64_t recno;
	struct buf *out;
};

static int knn_feed(struct knn_query *kq, const uint8_t *p, size_t len, struct op_error *err)
{
	char q[400];
	struct knn_tile *t = &kq->tile;
	size_t d = t->tr->d;
	struct record_iter it;
	const uint8_t *rec;
	size_t rlen;
	record_iter_init(&it, p, len);
	while (record_iter_next(&it, &rec, &rlen)) {
		kq->recno++;
		if (rlen > 0 && rec[rlen - 1] == '\r')
			rlen--;
		if (kq->recno == 1 && kq->partition == 0 && rlen > 0 && knn_is_header(rec, rlen))
			continue;
		if (rlen == 0)
			return ops_fail(err, true, "partition %u: row %llu is empty", kq->partition,
			                (unsigned long long)kq->recno);
		struct knn_label l;
		size_t bad = 0;
		switch (
		    knn_parse_row(rec, rlen, d, t->q + t->nq * d, kq->labeled ? &l : NULL, &bad)) {
		case KNN_ROW_OK:
			break;
		case KNN_ROW_FIELDS: {
			size_t nf = knn_count_fields(rec, rlen);
			/* One field too many is most likely a label column. */
			bool hint = !kq->labeled && nf == d + 1;
			return ops_fail(
			    err, true,
			    "partition %u: row %llu has %zu field%s, want %zu (%zu features "
			    "as in the training set%s): %s%s",
			    kq->partition, (unsigned long long)kq->recno, nf, nf == 1 ? "" : "s",
			    d + kq->labeled, d, kq->labeled ? ", then the label" : "",
			    ops_quote(rec, rlen, q, sizeof(q)),
			    hint ? " (a label column needs --arg labeled=1)" : "");
		}
		case KNN_ROW_NUMBER:
			return ops_fail(
			    err, true,
			    "partition %u: row %llu: field %zu is not a finite number: %s",
			    kq->partition, (unsigned long long)kq->recno, bad,
			    ops_quote(rec, rlen, q, sizeof(q)));
		default:
			return ops_fail(err, true, "partition %u: row %llu has an empty label: %s",
			                kq->partition, (unsigned long long)kq->recno,
			                ops_quote(rec, rlen, q, sizeof(q)));
		}
		if (++t->nq == t->cap)
			knn_tile_run(t, kq->group, kq->out);
	}
	return 0;
}

/* k and labeled, already checked by op_args_check. */
static void knn_args(Shoal__Arg *const *args, size_t nargs, size_t *k, bool *labeled)
{
	const char *v = ops_arg_value(args, nargs, "k");
	*k = v != NULL ? ops_parse_k(v) : 3;
	v = ops_arg_value(args, nargs, "labeled");
	*labeled = v != NULL && strcmp(v, "1") == 0;
}

static int ops_knn(Shoal__Arg *const *args, size_t nargs, const struct op_input *in,
                   uint32_t partition, struct buf *out, uint64_t *records, struct op_error *err)
{
	if (in->side == NULL)
		return ops_fail(err, true, "knn needs --broadcast TRAIN.csv");
	struct knn_query kq = {.partition = partition, .out = out};
	size_t k;
	knn_args(args, nargs, &k, &kq.labeled);
	struct knn_train tr;
	if (knn_train_parse(in->side, in->side_len, &tr, err) < 0)
		return -1;
	if (k < 1 || k > tr.n) {
		knn_train_free(&tr);
		return ops_fail(err, true, "knn: k=%zu but the training set has %zu rows", k, tr.n);
	}
	struct knn_tile *t = &kq.tile;
	t->tr = &tr;
	t->k = k;
	/* Large k: fewer queries per tile, so that the heaps stay within KNN_HEAPS. */
	size_t cap = KNN_HEAPS / (k * sizeof(struct knn_cand));
	cap = cap > KNN_TILE ? KNN_TILE : cap / KNN_GROUP * KNN_GROUP;
	t->cap = cap > KNN_GROUP ? cap : KNN_GROUP;
	t->q = xmalloc(t->cap * tr.d * sizeof(double));
	t->heaps = xmalloc(t->cap * k * sizeof(struct knn_cand));
	t->worst = xmalloc(t->cap * sizeof(double));
	t->votes = xcalloc(tr.nlabels, sizeof(uint32_t));
	kq.group = knn_pick_group_fn();

	int rc = 0;
	if (in->is_range) {
		struct buf text = BUF_INIT;
		for (int64_t x = in->lo; x < in->hi && rc == 0;) {
			int64_t stop = ops_range_slice_end(x, in->hi);
			buf_reset(&text);
			ops_range_text(x, stop, &text);
			rc = knn_feed(&kq, text.data, text.len, err);
			x = stop;
		}
		buf_free(&text);
	} else {
		rc = knn_feed(&kq, in->data, in->len, err);
	}
	if (rc == 0)
		knn_tile_run(t, kq.group, out);
	free(t->q);
	free(t->heaps);
	free(t->worst);
	free(t->votes);
	knn_train_free(&tr);
	*records = kq.recno;
	return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* op_run */

int op_run(const struct op_desc *op, Shoal__Arg *const *args, size_t nargs,
           const struct op_input *in, uint32_t partition, struct buf *out, uint64_t *records,
           struct op_error *err)
{
	err->msg[0] = '\0';
	err->permanent = false;
	int kind = ops_kind_of(op);
	if (kind < 0)
		return ops_fail(err, true, "unknown op");
	/* The arguments are part of the job: if they are wrong, no retry can help. */
	if (op_args_check(op, args, nargs, err->msg, sizeof(err->msg)) < 0) {
		err->permanent = true;
		return -1;
	}
	struct op_input empty = {0};
	if (!in->is_range && in->data == NULL) {
		empty.data = (const uint8_t *)"";
		in = &empty;
	}

	size_t orig = out->len;
	uint64_t n = 0;
	int rc;
	switch (kind) {
	case OPS_SQUARE:
		rc = ops_square(in, partition, out, &n, err);
		break;
	case OPS_GREP:
		rc = ops_grep(args, nargs, in, out, &n);
		break;
	case OPS_SORT:
		rc = ops_sort(in, out, &n);
		break;
	case OPS_WORDCOUNT:
		ops_wordcount(in, out, &n);
		rc = 0;
		break;
	case OPS_KNN:
		rc = ops_knn(args, nargs, in, partition, out, &n, err);
		break;
	default:
		rc = ops_fold_map(kind, in, partition, out, &n, err);
		break;
	}
	if (rc < 0) {
		/* Leave no half partial behind. */
		out->len = orig;
		return -1;
	}
	if (records != NULL)
		*records = n;
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* FOLD combine side */

struct op_fold {
	int kind;
	bool have; /* min/max: a value was seen */
	i128 sum;
	i128 count;
	i128 val;
};

struct op_fold *op_fold_create(const struct op_desc *op)
{
	int kind = ops_kind_of(op);
	if (kind < 0 || op->combine != OP_COMBINE_FOLD)
		return NULL;
	struct op_fold *f = xcalloc(1, sizeof(*f));
	f->kind = kind;
	return f;
}

void op_fold_destroy(struct op_fold **f)
{
	if (f == NULL || *f == NULL)
		return;
	free(*f);
	*f = NULL;
}

/* Accepts only the canonical decimal form that the map side prints: what num_format_i128
 * gives back byte for byte. */
static bool ops_parse_canonical(const uint8_t *p, size_t n, i128 *out)
{
	char back[NUM_I128_MAXLEN];
	i128 v;
	if (n == 0 || n > NUM_I128_MAXLEN - 1 || num_parse_i128(p, n, &v) < 0)
		return false;
	if (num_format_i128(v, back) != n || memcmp(back, p, n) != 0)
		return false;
	*out = v;
	return true;
}

/* Splits "NAME F1 F2...\n" into up to max fields after NAME; returns how many, or -1. */
static int ops_partial_fields(const uint8_t *p, size_t len, const char *name, const uint8_t **fp,
                              size_t *fl, int max)
{
	size_t nlen = strlen(name);
	if (len < nlen + 3 || memcmp(p, name, nlen) != 0 || p[nlen] != ' ' || p[len - 1] != '\n')
		return -1;
	size_t i = nlen + 1, end = len - 1;
	int nf = 0;
	while (i <= end) {
		size_t j = i;
		while (j < end && p[j] != ' ')
			j++;
		if (j == i || nf == max)
			return -1;
		fp[nf] = p + i;
		fl[nf] = j - i;
		nf++;
		i = j + 1;
	}
	return nf;
}

int op_fold_add(struct op_fold *f, const uint8_t *partial, size_t len, char *err, size_t errlen)
{
	char q[400];
	const char *name = op_table[f->kind].name;
	const uint8_t *fp[2];
	size_t fl[2];
	int want = f->kind == OPS_MEAN ? 2 : 1;
	if (partial == NULL)
		partial = (const uint8_t *)"";
	int nf = ops_partial_fields(partial, len, name, fp, fl, 2);
	i128 a = 0, b = 0;
	bool none = false;
	if (nf != want)
		goto bad;
	if ((f->kind == OPS_MIN || f->kind == OPS_MAX) && fl[0] == 4 &&
	    memcmp(fp[0], "none", 4) == 0)
		none = true;
	else if (!ops_parse_canonical(fp[0], fl[0], &a))
		goto bad;
	if (want == 2 && !ops_parse_canonical(fp[1], fl[1], &b))
		goto bad;

	switch (f->kind) {
	/* A refused partial leaves the fold as it was: results go through temporaries. */
	case OPS_SUM:
		if (__builtin_add_overflow(f->sum, a, &b)) {
			snprintf(err, errlen, "sum overflows 128 bits");
			return OP_FOLD_OVERFLOW;
		}
		f->sum = b;
		return 0;
	case OPS_COUNT:
		if (a < 0)
			goto bad;
		if (__builtin_add_overflow(f->count, a, &b)) {
			snprintf(err, errlen, "count overflows 128 bits");
			return OP_FOLD_OVERFLOW;
		}
		f->count = b;
		return 0;
	case OPS_MIN:
	case OPS_MAX:
		if (none)
			return 0;
		if (!f->have || (f->kind == OPS_MIN ? a < f->val : a > f->val))
			f->val = a;
		f->have = true;
		return 0;
	default: /* OPS_MEAN: the sum and the count, kept apart until the end */
		if (b < 0 || (b == 0 && a != 0))
			goto bad;
		i128 sum, count;
		if (__builtin_add_overflow(f->sum, a, &sum)) {
			snprintf(err, errlen, "sum overflows 128 bits");
			return OP_FOLD_OVERFLOW;
		}
		if (__builtin_add_overflow(f->count, b, &count)) {
			snprintf(err, errlen, "count overflows 128 bits");
			return OP_FOLD_OVERFLOW;
		}
		f->sum = sum;
		f->count = count;
		return 0;
	}
bad:
	snprintf(err, errlen, "malformed %s partial: %s", name,
	         ops_quote(partial, len, q, sizeof(q)));
	return -1;
}

/* The double nearest to n/d (ties to even), for 0 < d, computed exactly: long division gives
 * 64 significant quotient bits plus a sticky bit for the remainder, which is all that
 * round-to-nearest needs. Every i128 quotient lies far inside the normal double range, so
 * there is no inexactness left: the result is what Python's int/int gives. */
static double ops_div_exact(i128 num, i128 den)
{
	bool neg = num < 0;
	u128 n = neg ? 0 - (u128)num : (u128)num;
	u128 d = (u128)den;
	if (n == 0)
		return 0.0;
	u128 q = n / d, r = n % d;
	uint64_t m;
	int e;
	bool sticky;
	if ((q >> 64) != 0) {
		int bits = 128 - __builtin_clzll((uint64_t)(q >> 64));
		int sh = bits - 64;
		m = (uint64_t)(q >> sh);
		sticky = (q & (((u128)1 << sh) - 1)) != 0 || r != 0;
		e = sh;
	} else {
		/* Shift quotient bits in until the top bit of m is set. r < d < 2^127, so
		 * 2r never overflows. */
		m = (uint64_t)q;
		e = 0;
		while (m < ((uint64_t)1 << 63)) {
			r <<= 1;
			m <<= 1;
			if (r >= d) {
				r -= d;
				m |= 1;
			}
			e--;
		}
		sticky = r != 0;
	}
	/* 64 bits down to 53: the low 11 bits and the sticky bit decide the rounding. */
	uint64_t mant = m >> 11, rest = m & 0x7ff;
	if (rest > 0x400 || (rest == 0x400 && (sticky || (mant & 1))))
		mant++;
	double x = ldexp((double)mant, e + 11);
	return neg ? -x : x;
}

/* Parses snprintf's "%.*e" output into its digits (no point) and decimal exponent. */
static void ops_sci_parse(const char *s, char *digits, int *ndig, int *exp10)
{
	int n = 0;
	for (; *s != 'e'; s++)
		if (*s >= '0' && *s <= '9')
			digits[n++] = *s;
	*ndig = n;
	*exp10 = atoi(s + 1);
}

static bool ops_sci_roundtrips(const char *digits, int n, int exp10, double x)
{
	char s[64];
	int k = 0;
	s[k++] = digits[0];
	s[k++] = '.';
	memcpy(s + k, digits + 1, (size_t)(n - 1));
	k += n - 1;
	snprintf(s + k, sizeof(s) - (size_t)k, "e%d", exp10);
	return strtod(s, NULL) == x;
}

/* The shortest digits that read back as x, and among those the nearest to x: what Python's
 * repr picks (David Gay's mode 0). For each length p, the nearest p-digit decimal is tried,
 * then its two p-digit neighbours: when the rounding interval of x holds any p-digit decimal
 * it holds one of those three (the interval is convex and contains x), which matters only
 * at powers of two, where the interval is lopsided. x > 0. */
static void ops_shortest(double x, char *digits, int *ndig, int *decpt)
{
	char s[64], d[32] = {0}; /* zeroed for the analyzers: snprintf always writes digits */
	int n = 0, e = 0;
	for (int p = 1; p <= 17; p++) {
		snprintf(s, sizeof(s), "%.*e", p - 1, x);
		ops_sci_parse(s, d, &n, &e);
		if (ops_sci_roundtrips(d, n, e, x))
			goto found;
		char up[32] = {0}, dn[32] = {0};
		int eu = e, ed = e;
		memcpy(up, d, (size_t)n);
		memcpy(dn, d, (size_t)n);
		int i = n - 1;
		while (i >= 0 && up[i] == '9')
			up[i--] = '0';
		if (i >= 0) {
			up[i]++;
		} else {
			/* 99..9 + 1 = 100..0: one digit longer, written with the next exponent. */
			up[0] = '1';
			eu++;
		}
		if (ops_sci_roundtrips(up, n, eu, x)) {
			memcpy(d, up, (size_t)n);
			e = eu;
			goto found;
		}
		i = n - 1;
		/* The leading digit is not 0, so the borrow stops at dn[0] at the latest. */
		while (i > 0 && dn[i] == '0')
			dn[i--] = '9';
		dn[i]--;
		if (dn[0] == '0') {
			/* 10..0 - 1 = 9..9 on the finer grid below the power of ten. */
			memmove(dn, dn + 1, (size_t)(n - 1));
			dn[n - 1] = '9';
			ed--;
		}
		if (ops_sci_roundtrips(dn, n, ed, x)) {
			memcpy(d, dn, (size_t)n);
			e = ed;
			goto found;
		}
	}
found:
	while (n > 1 && d[n - 1] == '0')
		n--;
	memcpy(digits, d, (size_t)n);
	*ndig = n;
	*decpt = e + 1;
}

/* Python's repr(float) for a finite double. */
static void ops_float_repr(double x, struct buf *out)
{
	if (x == 0) {
		buf_printf(out, "%s", signbit(x) ? "-0.0" : "0.0");
		return;
	}
	if (x < 0) {
		buf_append_byte(out, '-');
		x = -x;
	}
	char d[32] = {0};
	int n = 1, decpt = 0;
	ops_shortest(x, d, &n, &decpt);
	if (decpt <= -4 || decpt > 16) {
		/* 1e+16, 1.5e-05: at least two exponent digits. */
		buf_append_byte(out, (uint8_t)d[0]);
		if (n > 1) {
			buf_append_byte(out, '.');
			buf_append(out, d + 1, (size_t)(n - 1));
		}
		int x10 = decpt - 1;
		buf_printf(out, "e%c%02d", x10 < 0 ? '-' : '+', x10 < 0 ? -x10 : x10);
	} else if (decpt <= 0) {
		buf_append(out, "0.", 2);
		for (int i = 0; i < -decpt; i++)
			buf_append_byte(out, '0');
		buf_append(out, d, (size_t)n);
	} else if (decpt < n) {
		buf_append(out, d, (size_t)decpt);
		buf_append_byte(out, '.');
		buf_append(out, d + decpt, (size_t)(n - decpt));
	} else {
		buf_append(out, d, (size_t)n);
		for (int i = n; i < decpt; i++)
			buf_append_byte(out, '0');
		buf_append(out, ".0", 2);
	}
}

int op_fold_finish(struct op_fold *f, struct buf *out, char *err, size_t errlen)
{
	const char *name = op_table[f->kind].name;
	switch (f->kind) {
	case OPS_SUM:
		ops_append_i128(out, f->sum);
		break;
	case OPS_COUNT:
		ops_append_i128(out, f->count);
		break;
	case OPS_MIN:
	case OPS_MAX:
		if (!f->have) {
			snprintf(err, errlen, "%s of an empty input", name);
			return -1;
		}
		ops_append_i128(out, f->val);
		break;
	default: /* OPS_MEAN */
		if (f->count == 0) {
			snprintf(err, errlen, "%s of an empty input", name);
			return -1;
		}
		ops_float_repr(ops_div_exact(f->sum, f->count), out);
		break;
	}
	buf_append_byte(out, '\n');
	return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* MERGE partials */

static int ops_line_cmp(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
	int c = memcmp(a, b, la < lb ? la : lb);
	if (c != 0)
		return c;
	return la < lb ? -1 : la > lb;
}

int op_run_check(const struct op_desc *op, const uint8_t *partial, size_t len, char *err,
                 size_t errlen)
{
	char q[400];
	int kind = ops_kind_of(op);
	if (kind < 0 || op->combine != OP_COMBINE_MERGE) {
		snprintf(err, errlen, "op %s has no sorted partials", kind < 0 ? "?" : op->name);
		return -1;
	}
	if (len == 0)
		return 0;
	if (partial[len - 1] != '\n') {
		snprintf(err, errlen, "%s partial does not end with a newline", op->name);
		return -1;
	}
	const uint8_t *prev = NULL;
	size_t prevlen = 0;
	uint64_t line = 0;
	size_t pos = 0;
	while (pos < len) {
		const uint8_t *p = partial + pos;
		const uint8_t *nl = memchr(p, '\n', len - pos);
		size_t n = (size_t)(nl - p); /* found: the buffer ends with '\n' */
		size_t keylen = n;
		line++;
		if (op->sum_keys) {
			const uint8_t *tab = memchr(p, '\t', n);
			bool ok = tab != NULL && tab > p;
			keylen = ok ? (size_t)(tab - p) : 0;
			for (size_t i = 0; ok && i < keylen; i++)
				ok = !ops_is_space(p[i]);
			/* COUNT: canonical and positive. */
			i128 c;
			ok = ok && ops_parse_canonical(tab + 1, n - keylen - 1, &c) && c > 0;
			if (!ok) {
				snprintf(err, errlen,
				         "%s partial: line %llu is not KEY<TAB>COUNT: %s", op->name,
				         (unsigned long long)line, ops_quote(p, n, q, sizeof(q)));
				return -1;
			}
		}
		if (prev != NULL) {
			int c = ops_line_cmp(prev, prevlen, p, keylen);
			if (c > 0 || (c == 0 && op->sum_keys)) {
				snprintf(err, errlen, "%s partial: line %llu is out of order: %s",
				         op->name, (unsigned long long)line,
				         ops_quote(p, n, q, sizeof(q)));
				return -1;
			}
		}
		prev = p;
		prevlen = keylen;
		pos += n + 1;
	}
	return 0;
}
