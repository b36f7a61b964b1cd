/* test_ops.c: the op registry. The central property: for every op, running it per partition
 * and combining (CONCAT in order, FOLD in a shuffled order, MERGE through merge_runs) gives
 * the same bytes as one run over the whole input, for 1, 2, 7 and 64 partitions cut by the
 * cutter or at random record boundaries, and those bytes equal a naive reference computed
 * here (or a hand-written expectation). */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "merge.h"
#include "num.h"
#include "ops.h"
#include "records.h"
#include "util.h"

#define I128_MAX ((i128)(((u128)1 << 127) - 1))
#define I128_MIN ((i128)((u128)1 << 127))

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static Shoal__Arg arg_storage[4];
static Shoal__Arg *arg_ptrs[4];

/* Builds an args array from key, value pairs (NULL-terminated). */
static Shoal__Arg **make_args(size_t *n, ...)
{
	va_list ap;
	va_start(ap, n);
	*n = 0;
	for (;;) {
		const char *k = va_arg(ap, const char *);
		if (k == NULL)
			break;
		const char *v = va_arg(ap, const char *);
		Shoal__Arg a = SHOAL__ARG__INIT;
		a.key = (char *)k;
		a.value = (char *)v;
		arg_storage[*n] = a;
		arg_ptrs[*n] = &arg_storage[*n];
		(*n)++;
	}
	va_end(ap);
	return arg_ptrs;
}

static void ref_format(i128 v, struct buf *out)
{
	char tmp[64];
	int n = 0;
	u128 m = v < 0 ? 0 - (u128)v : (u128)v;
	do {
		tmp[n++] = (char)('0' + (int)(m % 10));
		m /= 10;
	} while (m != 0);
	if (v < 0)
		buf_append_byte(out, '-');
	while (n > 0)
		buf_append_byte(out, (uint8_t)tmp[--n]);
}

static void assert_bytes(const struct buf *got, const void *want, size_t wantlen, const char *what)
{
	if (got->len != wantlen || (wantlen > 0 && memcmp(got->data, want, wantlen) != 0)) {
		size_t show_g = got->len > 300 ? 300 : got->len;
		size_t show_w = wantlen > 300 ? 300 : wantlen;
		ck_abort_msg("%s: got %zu bytes '%.*s', want %zu bytes '%.*s'", what, got->len,
		             (int)show_g, got->data ? (const char *)got->data : "", wantlen,
		             (int)show_w, (const char *)want);
	}
}

static void assert_str(const struct buf *got, const char *want, const char *what)
{
	assert_bytes(got, want, strlen(want), what);
}

static const struct op_desc *op(const char *name)
{
	const struct op_desc *d = op_find(name);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* One partition's run; it must succeed. */
static void run_ok(const struct op_desc *d, Shoal__Arg **args, size_t nargs,
                   const struct op_input *in, uint32_t part, struct buf *out, uint64_t *records)
{
	struct op_error err;
	uint64_t n = 0;
	int rc = op_run(d, args, nargs, in, part, out, &n, &err);
	ck_assert_msg(rc == 0, "op %s failed: %s", d->name, err.msg);
	if (records != NULL)
		*records += n;
}

static int tmpfile_fd(void)
{
	char path[] = "/tmp/test_ops_XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	return fd;
}

static void read_all_from(int fd, uint64_t off, uint64_t n, struct buf *out)
{
	uint8_t *dst = buf_reserve(out, (size_t)n);
	size_t done = 0;
	while (done < n) {
		ssize_t r = pread(fd, dst + done, (size_t)n - done, (off_t)(off + done));
		ck_assert_int_gt(r, 0);
		done += (size_t)r;
	}
	out->len += (size_t)n;
}

/* Runs the op over each partition and combines the partials the op's way. */
static void run_combined(const struct op_desc *d, Shoal__Arg **args, size_t nargs,
                         const struct op_input *parts, size_t nparts, struct buf *result,
                         uint64_t *records)
{
	char err[512];
	struct buf *partials = xcalloc(nparts, sizeof(*partials));
	for (size_t i = 0; i < nparts; i++)
		run_ok(d, args, nargs, &parts[i], (uint32_t)i, &partials[i], records);

	if (d->combine == OP_COMBINE_CONCAT) {
		for (size_t i = 0; i < nparts; i++)
			buf_append(result, partials[i].data, partials[i].len);
	} else if (d->combine == OP_COMBINE_FOLD) {
		size_t *order = xcalloc(nparts, sizeof(*order));
		for (size_t i = 0; i < nparts; i++)
			order[i] = i;
		for (size_t i = nparts; i > 1; i--) {
			size_t j = (size_t)random() % i, t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
		struct op_fold *f = op_fold_create(d);
		ck_assert_ptr_nonnull(f);
		for (size_t i = 0; i < nparts; i++) {
			struct buf *p = &partials[order[i]];
			ck_assert_msg(op_fold_add(f, p->data, p->len, err, sizeof(err)) == 0,
			              "fold %s: %s ('%.*s')", d->name, err, (int)p->len, p->data);
		}
		if (op_fold_finish(f, result, err, sizeof(err)) < 0) {
			buf_append(result, "ERROR: ", 7);
			buf_append(result, err, strlen(err));
		}
		op_fold_destroy(&f);
		ck_assert_ptr_null(f);
		free(order);
	} else {
		int in_fd = tmpfile_fd(), out_fd = tmpfile_fd();
		struct merge_run *runs = xcalloc(nparts, sizeof(*runs));
		uint64_t off = 0;
		for (size_t i = 0; i < nparts; i++) {
			ck_assert_msg(op_run_check(d, partials[i].data, partials[i].len, err,
			                           sizeof(err)) == 0,
			              "check %s: %s", d->name, err);
			ck_assert_int_eq(write_all(in_fd, partials[i].data, partials[i].len), 0);
			runs[i] = (struct merge_run){in_fd, off, partials[i].len};
			off += partials[i].len;
		}
		uint64_t nbytes = 0;
		ck_assert_msg(merge_runs(runs, nparts, d->sum_keys, out_fd, "/tmp", &nbytes, err,
		                         sizeof(err)) == 0,
		              "merge: %s", err);
		read_all_from(out_fd, 0, nbytes, result);
		close(in_fd);
		close(out_fd);
		free(runs);
	}
	for (size_t i = 0; i < nparts; i++)
		buf_free(&partials[i]);
	free(partials);
}

struct cut_list {
	struct op_input *parts;
	size_t n, cap;
	const uint8_t *base;
};

static void on_cut(void *arg, uint64_t off, uint64_t len)
{
	struct cut_list *c = arg;
	if (c->n == c->cap) {
		c->cap = c->cap ? c->cap * 2 : 16;
		c->parts = xrealloc(c->parts, c->cap * sizeof(*c->parts));
	}
	c->parts[c->n++] = (struct op_input){.data = c->base + off, .len = (size_t)len};
}

/* Partitions of text: by the cutter aiming at k parts (fed in random chunks), or at k-1
 * random record boundaries (which may give empty partitions). */
static void partition_text(const uint8_t *p, size_t len, size_t k, bool use_cutter,
                           struct cut_list *c)
{
	c->n = 0;
	c->base = p;
	if (use_cutter) {
		struct cutter ct;
		cutter_init(&ct, len / k > 0 ? len / k : 1);
		size_t i = 0;
		while (i < len) {
			size_t n = 1 + (size_t)random() % 50;
			if (n > len - i)
				n = len - i;
			cutter_feed(&ct, p + i, n, on_cut, c);
			i += n;
		}
		cutter_finish(&ct, on_cut, c);
		if (c->n == 0)
			on_cut(c, 0, 0);
		return;
	}
	size_t nb = 0;
	size_t *bounds = xcalloc(len + 2, sizeof(*bounds));
	for (size_t i = 0; i <= len; i++)
		if (i == 0 || i == len || p[i - 1] == '\n')
			bounds[nb++] = i;
	size_t *cuts = xcalloc(k + 1, sizeof(*cuts));
	for (size_t i = 0; i + 1 < k; i++)
		cuts[i] = bounds[(size_t)random() % nb];
	cuts[k - 1] = len;
	/* sort the cut points */
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
			size_t t = cuts[j];
			cuts[j] = cuts[j - 1];
			cuts[j - 1] = t;
		}
	size_t prev = 0;
	for (size_t i = 0; i < k; i++) {
		on_cut(c, prev, cuts[i] - prev);
		prev = cuts[i];
	}
	free(cuts);
	free(bounds);
}

/* The property: the whole run, every partitioning and `want` agree. */
static void check_text_op(const char *name, Shoal__Arg **args, size_t nargs, const uint8_t *p,
                          size_t len, const void *want, size_t wantlen)
{
	const struct op_desc *d = op(name);
	struct op_input whole = {.data = p, .len = len};
	struct buf res = BUF_INIT;
	uint64_t recs_whole = 0;
	run_combined(d, args, nargs, &whole, 1, &res, &recs_whole);
	assert_bytes(&res, want, wantlen, name);
	static const size_t ks[] = {1, 2, 7, 64};
	struct cut_list c = {0};
	for (size_t ki = 0; ki < 4; ki++) {
		for (int mode = 0; mode < 2; mode++) {
			partition_text(p, len, ks[ki], mode == 0, &c);
			buf_reset(&res);
			uint64_t recs = 0;
			run_combined(d, args, nargs, c.parts, c.n, &res, &recs);
			assert_bytes(&res, want, wantlen, name);
			ck_assert_uint_eq(recs, recs_whole);
		}
	}
	free(c.parts);
	buf_free(&res);
}

static void check_text_op_str(const char *name, Shoal__Arg **args, size_t nargs, const char *in,
                              const char *want)
{
	check_text_op(name, args, nargs, (const uint8_t *)in, strlen(in), want, strlen(want));
}

/* Same for a range, cut into k pieces at random points (pieces may be empty). */
static void check_range_op(const char *name, Shoal__Arg **args, size_t nargs, int64_t lo,
                           int64_t hi, const void *want, size_t wantlen)
{
	const struct op_desc *d = op(name);
	struct buf res = BUF_INIT;
	static const size_t ks[] = {1, 2, 7, 64};
	uint64_t span = hi > lo ? (uint64_t)hi - (uint64_t)lo : 0;
	for (size_t ki = 0; ki < 4; ki++) {
		size_t k = ks[ki];
		struct op_input parts[64];
		uint64_t cuts[64];
		for (size_t i = 0; i + 1 < k; i++)
			cuts[i] = ((uint64_t)random() << 32 | (uint64_t)random()) %
			          (span < UINT64_MAX ? span + 1 : span);
		cuts[k - 1] = span;
		for (size_t i = 1; i < k; i++)
			for (size_t j = i; j > 0 && cuts[j] < cuts[j - 1]; j--) {
				uint64_t t = cuts[j];
				cuts[j] = cuts[j - 1];
				cuts[j - 1] = t;
			}
		uint64_t prev = 0;
		for (size_t i = 0; i < k; i++) {
			parts[i] = (struct op_input){.is_range = true,
			                             .lo = (int64_t)((uint64_t)lo + prev),
			                             .hi = (int64_t)((uint64_t)lo + cuts[i])};
			prev = cuts[i];
		}
		buf_reset(&res);
		uint64_t recs = 0;
		run_combined(d, args, nargs, parts, k, &res, &recs);
		assert_bytes(&res, want, wantlen, name);
		ck_assert_uint_eq(recs, span);
	}
	buf_free(&res);
}

static void check_range_op_str(const char *name, int64_t lo, int64_t hi, const char *want)
{
	check_range_op(name, NULL, 0, lo, hi, want, strlen(want));
}

/* The text form of a range, for checking range inputs against text inputs. */
static void range_text(int64_t lo, int64_t hi, struct buf *out)
{
	for (int64_t x = lo; x < hi; x++) {
		ref_format(x, out);
		buf_append_byte(out, '\n');
	}
}

/* ------------------------------------------------------------------------------------------ */
/* Naive references */

struct span {
	const uint8_t *p;
	size_t len;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->p, y->p, n);
	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static size_t split_lines(const uint8_t *p, size_t len, struct span **out)
{
	struct span *v = xcalloc(len + 1, sizeof(*v));
	size_t n = 0, s = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n') {
			v[n++] = (struct span){p + s, i - s};
			s = i + 1;
		}
	}
	if (s < len)
		v[n++] = (struct span){p + s, len - s};
	*out = v;
	return n;
}

static void ref_sort(const uint8_t *p, size_t len, struct buf *out)
{
	struct span *v;
	size_t n = split_lines(p, len, &v);
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n; i++) {
		buf_append(out, v[i].p, v[i].len);
		buf_append_byte(out, '\n');
	}
	free(v);
}

static bool ref_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static void ref_wordcount(const uint8_t *p, size_t len, struct buf *out)
{
	struct span *v = xcalloc(len + 1, sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < len;) {
		if (ref_ws(p[i])) {
			i++;
			continue;
		}
		size_t s = i;
		while (i < len && !ref_ws(p[i]))
			i++;
		v[n++] = (struct span){p + s, i - s};
	}
	qsort(v, n, sizeof(*v), span_cmp);
	for (size_t i = 0; i < n;) {
		size_t j = i;
		while (j < n && span_cmp(&v[i], &v[j]) == 0)
			j++;
		buf_append(out, v[i].p, v[i].len);
		buf_printf(out, "\t%zu\n", j - i);
		i = j;
	}
	free(v);
}

static void ref_grep(const uint8_t *p, size_t len, const char *pat, struct buf *out)
{
	struct span *v;
	size_t n = split_lines(p, len, &v), pl = strlen(pat);
	for (size_t i = 0; i < n; i++) {
		bool hit = false;
		for (size_t s = 0; !hit && s + pl <= v[i].len; s++)
			hit = memcmp(v[i].p + s, pat, pl) == 0;
		if (hit) {
			buf_append(out, v[i].p, v[i].len);
			buf_append_byte(out, '\n');
		}
	}
	free(v);
}

/* Random text: words from a vocabulary with bytes above 0x7f, NUL and CR, random
 * whitespace, empty lines, and sometimes no final newline. */
static uint8_t *gen_words(size_t lines, size_t *len_out)
{
	static const char *const vocab[] = {"a",     "b",    "ab",   "ba",          "the", "The",
	                                    "x\x80", "\xff", "a\0b", "caf\xc3\xa9", "0",   "00",
	                                    "-1",    "aa",   "aaa",  "zz\x7f",      "q\"", "\\"};
	static const size_t vlen[] = {1, 1, 2, 2, 3, 3, 2, 1, 3, 5, 1, 2, 2, 2, 3, 3, 2, 1};
	static const char ws[] = " \t\v\f\r";
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < lines; i++) {
		size_t words = (size_t)random() % 8;
		if (random() % 5 == 0)
			buf_append_byte(&b, (uint8_t)ws[random() % 5]);
		for (size_t w = 0; w < words; w++) {
			if (w > 0) {
				size_t nws = 1 + (size_t)random() % 3;
				for (size_t k = 0; k < nws; k++)
					buf_append_byte(&b, (uint8_t)ws[random() % 5]);
			}
			size_t vi = (size_t)random() % 18;
			buf_append(&b, vocab[vi], vlen[vi]);
			if (random() % 9 == 0) /* a rarer, longer word */
				buf_printf(&b, "w%ld", random() % 50);
		}
		if (random() % 6 == 0)
			buf_append_byte(&b, '\r');
		buf_append_byte(&b, '\n');
	}
	if (random() % 3 == 0)
		buf_append(&b, "tail  word", 10);
	size_t len;
	uint8_t *p = buf_steal(&b, &len);
	*len_out = len;
	return p;
}

/* Random integer records written the ways Python's int() accepts; values[] gets them. */
static uint8_t *gen_ints(size_t n, i128 *values, i128 mag_limit, size_t *len_out)
{
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		i128 v;
		int kind = (int)(random() % 4);
		if (kind == 0)
			v = random() % 21 - 10;
		else if (kind == 1)
			v = (i128)random() * random() - (i128)random() * random();
		else
			v = ((i128)random() << 62 | (i128)random() << 31 | random()) *
			    (random() % 2 ? 1 : -1);
		v %= mag_limit;
		values[i] = v;
		struct buf num = BUF_INIT;
		ref_format(v < 0 ? -v : v, &num);
		if (random() % 6 == 0)
			buf_append(&b, "  ", 2);
		if (v < 0)
			buf_append_byte(&b, '-');
		else if (random() % 5 == 0)
			buf_append_byte(&b, '+');
		if (random() % 7 == 0)
			buf_append(&b, "00", 2);
		for (size_t k = 0; k < num.len; k++) {
			buf_append_byte(&b, num.data[k]);
			if (k + 1 < num.len && random() % 9 == 0)
				buf_append_byte(&b, '_');
		}
		if (random() % 6 == 0)
			buf_append(&b, " \t", 2);
		if (random() % 6 == 0)
			buf_append_byte(&b, '\r');
		if (i + 1 < n || random() % 2)
			buf_append_byte(&b, '\n');
		buf_free(&num);
	}
	size_t len;
	uint8_t *p = buf_steal(&b, &len);
	*len_out = len;
	return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Registry and arguments */

START_TEST(test_registry)
{
	static const char *const names[] = {"square", "sum",       "count", "min",  "max",
	                                    "mean",   "wordcount", "grep",  "sort", "knn"};
	ck_assert_uint_eq(op_count(), 10);
	for (size_t i = 0; i < 10; i++) {
		ck_assert_str_eq(op_at(i)->name, names[i]);
		ck_assert_ptr_eq(op_find(names[i]), op_at(i));
		ck_assert_ptr_nonnull(op_at(i)->summary);
		ck_assert_ptr_nonnull(op_at(i)->args);
		/* Only knn reads the --broadcast file (test_knn covers it). */
		ck_assert(op_at(i)->needs_broadcast == (i == 9));
	}
	ck_assert_ptr_null(op_at(10));
	ck_assert_ptr_null(op_find("knn2"));
	ck_assert_ptr_null(op_find(""));
	ck_assert_int_eq(op("square")->combine, OP_COMBINE_CONCAT);
	ck_assert_int_eq(op("grep")->combine, OP_COMBINE_CONCAT);
	ck_assert_int_eq(op("mean")->combine, OP_COMBINE_FOLD);
	ck_assert_int_eq(op("sort")->combine, OP_COMBINE_MERGE);
	ck_assert(!op("sort")->sum_keys);
	ck_assert_int_eq(op("wordcount")->combine, OP_COMBINE_MERGE);
	ck_assert(op("wordcount")->sum_keys);
	ck_assert_ptr_null(op_fold_create(op("sort")));
}
END_TEST

START_TEST(test_args)
{
	char err[256];
	size_t n;
	Shoal__Arg **a = make_args(&n, "x", "1", NULL);
	ck_assert_int_eq(op_args_check(op("square"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "op square takes no --arg (got 'x')");
	a = make_args(&n, NULL);
	ck_assert_int_eq(op_args_check(op("square"), a, n, err, sizeof(err)), 0);
	ck_assert_int_eq(op_args_check(op("grep"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "grep needs --arg pattern=TEXT");
	a = make_args(&n, "pattern", "", NULL);
	ck_assert_int_eq(op_args_check(op("grep"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "grep needs a non-empty --arg pattern=TEXT");
	a = make_args(&n, "pattern", "ab", NULL);
	ck_assert_int_eq(op_args_check(op("grep"), a, n, err, sizeof(err)), 0);
	a = make_args(&n, "pattern", "ab", "patern", "x", NULL);
	ck_assert_int_eq(op_args_check(op("grep"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "op grep has no --arg 'patern' (it takes: pattern)");
	a = make_args(&n, "pattern", "ab", "pattern", "cd", NULL);
	ck_assert_int_eq(op_args_check(op("grep"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "op grep: --arg 'pattern' given twice");
	a = make_args(&n, "", "v", NULL);
	ck_assert_int_eq(op_args_check(op("sum"), a, n, err, sizeof(err)), -1);
	a = make_args(&n, "a\x01", "v", NULL);
	ck_assert_int_eq(op_args_check(op("sort"), a, n, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "op sort takes no --arg (got 'a\\x01')");

	/* op_run refuses bad args with a permanent error and writes nothing. */
	struct op_error e;
	struct buf out = BUF_INIT;
	struct op_input in = {.data = (const uint8_t *)"x\n", .len = 2};
	a = make_args(&n, NULL);
	ck_assert_int_eq(op_run(op("grep"), a, n, &in, 0, &out, NULL, &e), -1);
	ck_assert(e.permanent);
	ck_assert_str_eq(e.msg, "grep needs --arg pattern=TEXT");
	ck_assert_uint_eq(out.len, 0);
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* square */

START_TEST(test_square_small)
{
	check_text_op_str("square", NULL, 0, "", "");
	check_text_op_str("square", NULL, 0, "3", "9\n");
	check_text_op_str("square", NULL, 0, "1\n-2\n 3 \r\n+4\n1_0\n0\n-0\n",
	                  "1\n4\n9\n16\n100\n0\n0\n");
	check_range_op_str("square", 0, 10, "0\n1\n4\n9\n16\n25\n36\n49\n64\n81\n");
	check_range_op_str("square", -3, 2, "9\n4\n1\n0\n1\n");
	check_range_op_str("square", 5, 5, "");
	check_range_op_str("square", 5, -5, "");
}
END_TEST

START_TEST(test_square_boundaries)
{
	/* Exact values from Python, around the 64-bit fast path's edges and far beyond. */
	check_range_op_str("square", 3037000498, 3037000501,
	                   "9223372024852248004\n9223372030926249001\n9223372037000250000\n");
	check_range_op_str("square", -3037000500, -3037000498,
	                   "9223372037000250000\n9223372030926249001\n");
	check_range_op_str("square", 4294967295, 4294967297,
	                   "18446744065119617025\n18446744073709551616\n");
	check_range_op_str("square", -4294967296, -4294967295, "18446744073709551616\n");
	check_range_op_str("square", 4611686018427387904, 4611686018427387906,
	                   "21267647932558653966460912964485513216\n"
	                   "21267647932558653975684285001340289025\n");
	check_range_op_str("square", -4611686018427387905, -4611686018427387903,
	                   "21267647932558653975684285001340289025\n"
	                   "21267647932558653966460912964485513216\n");
	check_range_op_str("square", INT64_MAX - 1, INT64_MAX,
	                   "85070591730234615828950163710522949636\n");
	check_range_op_str("square", INT64_MIN, INT64_MIN + 1,
	                   "85070591730234615865843651857942052864\n");
	check_text_op_str("square", NULL, 0,
	                  "3037000499\n-3037000500\n4611686018427387904\n"
	                  "-9223372036854775808\n9223372036854775807\n"
	                  "13043817825332782212\n-13043817825332782212\n",
	                  "9223372030926249001\n9223372037000250000\n"
	                  "21267647932558653966460912964485513216\n"
	                  "85070591730234615865843651857942052864\n"
	                  "85070591730234615847396907784232501249\n"
	                  "170141183460469231722567801800623612944\n"
	                  "170141183460469231722567801800623612944\n");
}
END_TEST

START_TEST(test_square_random)
{
	srandom(11);
	for (int iter = 0; iter < 20; iter++) {
		i128 vals[300];
		size_t n = 1 + (size_t)random() % 300, len;
		/* |v| < 2^63 so that every square fits. */
		uint8_t *p = gen_ints(n, vals, (i128)1 << 63, &len);
		struct buf want = BUF_INIT;
		for (size_t i = 0; i < n; i++) {
			ref_format(vals[i] * vals[i], &want);
			buf_append_byte(&want, '\n');
		}
		check_text_op("square", NULL, 0, p, len, want.data, want.len);
		buf_free(&want);
		free(p);
	}
	/* Ranges: against the reference and against the same numbers as text. */
	static const int64_t ranges[][2] = {
	    {-1000, 1000},
	    {3037000000, 3037001000},
	    {-4294968000, -4294967000},
	    {INT64_MAX - 300, INT64_MAX},
	    {INT64_MIN, INT64_MIN + 300},
	    {(int64_t)1 << 62, ((int64_t)1 << 62) + 100},
	};
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		struct buf want = BUF_INIT, text = BUF_INIT;
		for (int64_t x = ranges[r][0]; x < ranges[r][1]; x++) {
			ref_format((i128)x * x, &want);
			buf_append_byte(&want, '\n');
		}
		check_range_op("square", NULL, 0, ranges[r][0], ranges[r][1], want.data, want.len);
		range_text(ranges[r][0], ranges[r][1], &text);
		check_text_op("square", NULL, 0, text.data, text.len, want.data, want.len);
		buf_free(&want);
		buf_free(&text);
	}
}
END_TEST

START_TEST(test_square_errors)
{
	struct op_error e;
	struct buf out = BUF_INIT;
	buf_append(&out, "keep", 4);
	const char *text = "1\n2\n\x01x \"y\"\n4\n";
	struct op_input in = {.data = (const uint8_t *)text, .len = strlen(text)};
	uint64_t recs = 99;
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 5, &out, &recs, &e), -1);
	ck_assert(e.permanent);
	ck_assert_str_eq(e.msg, "partition 5: record 3 is not an integer: \"\\x01x \\\"y\\\"\"");
	ck_assert_uint_eq(out.len, 4); /* nothing half-written */
	ck_assert_uint_eq(recs, 99);

	/* Empty line: Python's int("") fails too. */
	in = (struct op_input){.data = (const uint8_t *)"1\n\n2\n", .len = 5};
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 0, &out, NULL, &e), -1);
	ck_assert_str_eq(e.msg, "partition 0: record 2 is not an integer: \"\"");

	/* Long records are cut in the message. */
	struct buf big = BUF_INIT;
	for (int i = 0; i < 500; i++)
		buf_append_byte(&big, (uint8_t)('a' + i % 26));
	in = (struct op_input){.data = big.data, .len = big.len};
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 1, &out, NULL, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "partition 1: record 1 is not an integer: \"abcdef"));
	ck_assert_uint_lt(strlen(e.msg), 200);
	ck_assert_ptr_nonnull(strstr(e.msg, "\"..."));
	buf_free(&big);

	/* 2^127 > 13043817825332782213^2: the first square that does not fit. */
	text = "13043817825332782212\n-13043817825332782213\n";
	in = (struct op_input){.data = (const uint8_t *)text, .len = strlen(text)};
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 2, &out, NULL, &e), -1);
	ck_assert(e.permanent);
	ck_assert_str_eq(e.msg, "partition 2: record 2: square of -13043817825332782213 does "
	                        "not fit in 128 bits");
	text = "-170141183460469231731687303715884105728";
	in = (struct op_input){.data = (const uint8_t *)text, .len = strlen(text)};
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 0, &out, NULL, &e), -1);
	text = "170141183460469231731687303715884105728";
	in = (struct op_input){.data = (const uint8_t *)text, .len = strlen(text)};
	ck_assert_int_eq(op_run(op("square"), NULL, 0, &in, 0, &out, NULL, &e), -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "is not an integer"));
	ck_assert_uint_eq(out.len, 4);
	buf_free(&out);
}
END_TEST

START_TEST(test_square_speed)
{
	/* Single-threaded square over 0..10M into one buffer; the figure is printed, and only a
	 * very loose bound is asserted so that sanitizer builds pass. */
	struct op_input in = {.is_range = true, .lo = 0, .hi = 10000000};
	struct buf out = BUF_INIT;
	uint64_t recs = 0;
	uint64_t t0 = mono_us();
	run_ok(op("square"), NULL, 0, &in, 0, &out, &recs);
	uint64_t dt = mono_us() - t0;
	printf("square 0..10M: %zu bytes in %.3f s\n", out.len, (double)dt / 1e6);
	ck_assert_uint_eq(recs, 10000000);
	ck_assert_uint_eq(out.len, 145375245);
	ck_assert(memcmp(out.data + out.len - 16, "\n99999980000001\n", 16) == 0);
	ck_assert_uint_lt(dt, 30 * 1000 * 1000);
	buf_free(&out);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* grep */

START_TEST(test_grep)
{
	size_t n;
	Shoal__Arg **a = make_args(&n, "pattern", "ab", NULL);
	check_text_op_str("grep", a, n, "", "");
	check_text_op_str("grep", a, n, "xab\nb\nab\r\nzzz\nAB\na b\nabab", "xab\nab\r\nabab\n");
	a = make_args(&n, "pattern", "a b", NULL);
	check_text_op_str("grep", a, n, "a b\nab\n\na  b\nxa bx", "a b\nxa bx\n");
	a = make_args(&n, "pattern", "b\nx", NULL); /* '\n' never inside a record */
	check_text_op_str("grep", a, n, "ab\nxb\n", "");
	a = make_args(&n, "pattern", "7", NULL);
	check_range_op(
	    "grep", a, n, 0, 80,
	    "7\n17\n27\n37\n47\n57\n67\n70\n71\n72\n73\n74\n75\n76\n77\n78\n79\n",
	    strlen("7\n17\n27\n37\n47\n57\n67\n70\n71\n72\n73\n74\n75\n76\n77\n78\n79\n"));
	a = make_args(&n, "pattern", "-1", NULL);
	check_range_op("grep", a, n, -12, 3, "-12\n-11\n-10\n-1\n", 15);

	srandom(3);
	static const char *const pats[] = {"a", "ab", "\xff", "a\x00", "w1", "\r", "q\"", "zz"};
	for (int iter = 0; iter < 30; iter++) {
		size_t len;
		uint8_t *p = gen_words(1 + (size_t)random() % 200, &len);
		const char *pat = pats[iter % 8];
		a = make_args(&n, "pattern", pat, NULL);
		struct buf want = BUF_INIT;
		ref_grep(p, len, pat, &want);
		check_text_op("grep", a, n, p, len, want.data, want.len);
		buf_free(&want);
		free(p);
	}
	/* A range matches like its text. */
	struct buf text = BUF_INIT, want = BUF_INIT;
	range_text(-70000, 70000, &text);
	a = make_args(&n, "pattern", "99", NULL);
	ref_grep(text.data, text.len, "99", &want);
	check_range_op("grep", a, n, -70000, 70000, want.data, want.len);
	buf_free(&text);
	buf_free(&want);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* sum, count, min, max, mean */

START_TEST(test_fold_small)
{
	const char *in = "3\n-1\n 10 \r\n+2\n1_000\n";
	check_text_op_str("sum", NULL, 0, in, "1014\n");
	check_text_op_str("count", NULL, 0, in, "5\n");
	check_text_op_str("min", NULL, 0, in, "-1\n");
	check_text_op_str("max", NULL, 0, in, "1000\n");
	check_text_op_str("mean", NULL, 0, in, "202.8\n");
	check_text_op_str("mean", NULL, 0, "1\n2\n", "1.5\n");
	check_text_op_str("mean", NULL, 0, "1\n2\n3", "2.0\n");
	check_text_op_str("mean", NULL, 0, "1\n2\n2\n", "1.6666666666666667\n");

	/* count: records, empty lines included, a last line without '\n' included. */
	check_text_op_str("count", NULL, 0, "", "0\n");
	check_text_op_str("count", NULL, 0, "\n", "1\n");
	check_text_op_str("count", NULL, 0, "a\n\n\nb", "4\n");
	check_text_op_str("count", NULL, 0, "x y z\n\xff\n", "2\n");

	/* Empty inputs. */
	check_text_op_str("sum", NULL, 0, "", "0\n");
	check_text_op_str("min", NULL, 0, "", "ERROR: min of an empty input");
	check_text_op_str("max", NULL, 0, "", "ERROR: max of an empty input");
	check_text_op_str("mean", NULL, 0, "", "ERROR: mean of an empty input");

	/* Ranges. */
	check_range_op_str("sum", 0, 101, "5050\n");
	check_range_op_str("sum", -5, 5, "-5\n");
	check_range_op_str("sum", 3, 3, "0\n");
	check_range_op_str("count", 10, 20, "10\n");
	check_range_op_str("count", 20, 10, "0\n");
	check_range_op_str("count", INT64_MIN, INT64_MAX, "18446744073709551615\n");
	check_range_op_str("min", -7, 3, "-7\n");
	check_range_op_str("max", -7, 3, "2\n");
	check_range_op_str("min", 3, 3, "ERROR: min of an empty input");
	check_range_op_str("mean", 0, 10, "4.5\n");
	check_range_op_str("mean", 1, 4, "2.0\n");
	check_range_op_str("mean", 0, 0, "ERROR: mean of an empty input");
	/* Sums of whole int64 ranges need more than 64 bits; values from Python. */
	check_range_op_str("sum", INT64_MIN, INT64_MAX, "-18446744073709551615\n");
	check_range_op_str("sum", 0, INT64_MAX, "42535295865117307919086767873688862721\n");
	check_range_op_str("sum", INT64_MIN, 0, "-42535295865117307937533511947398414336\n");
	check_range_op_str("mean", 0, INT64_MAX, "4.611686018427388e+18\n");
	check_range_op_str("min", INT64_MIN, INT64_MAX, "-9223372036854775808\n");
	check_range_op_str("max", INT64_MIN, INT64_MAX, "9223372036854775806\n");
	check_range_op_str("sum", INT64_MAX - 3, INT64_MAX, "27670116110564327415\n");
}
END_TEST

START_TEST(test_fold_random)
{
	srandom(17);
	for (int iter = 0; iter < 40; iter++) {
		i128 vals[400];
		size_t n = (size_t)random() % 400, len;
		uint8_t *p = gen_ints(n, vals, (i128)1 << (iter % 2 ? 100 : 40), &len);
		i128 sum = 0, lo = 0, hi = 0;
		for (size_t i = 0; i < n; i++) {
			sum += vals[i];
			if (i == 0 || vals[i] < lo)
				lo = vals[i];
			if (i == 0 || vals[i] > hi)
				hi = vals[i];
		}
		struct buf want = BUF_INIT;
		ref_format(sum, &want);
		buf_append_byte(&want, '\n');
		check_text_op("sum", NULL, 0, p, len, want.data, want.len);
		buf_reset(&want);
		buf_printf(&want, "%zu\n", n);
		check_text_op("count", NULL, 0, p, len, want.data, want.len);
		buf_reset(&want);
		if (n == 0) {
			buf_printf(&want, "ERROR: min of an empty input");
		} else {
			ref_format(lo, &want);
			buf_append_byte(&want, '\n');
		}
		check_text_op("min", NULL, 0, p, len, want.data, want.len);
		buf_reset(&want);
		if (n == 0) {
			buf_printf(&want, "ERROR: max of an empty input");
		} else {
			ref_format(hi, &want);
			buf_append_byte(&want, '\n');
		}
		check_text_op("max", NULL, 0, p, len, want.data, want.len);

		/* mean: the same bytes for every partitioning, and they read back as the
		 * quotient (IEEE division is correctly rounded when both sides are exact). */
		if (n > 0) {
			struct op_input whole = {.data = p, .len = len};
			struct buf res = BUF_INIT;
			run_combined(op("mean"), NULL, 0, &whole, 1, &res, NULL);
			check_text_op("mean", NULL, 0, p, len, res.data, res.len);
			if (sum < ((i128)1 << 53) && sum > -((i128)1 << 53)) {
				buf_append_byte(&res, '\0');
				double got = strtod((const char *)res.data, NULL);
				ck_assert(got == (double)sum / (double)n);
			}
			buf_free(&res);
		}
		buf_free(&want);
		free(p);
	}
}
END_TEST

/* Python's repr(S / C) for these pairs. */
static const struct {
	const char *s, *c, *want;
} mean_cases[] = {
    {"5", "2", "2.5"},
    {"10", "2", "5.0"},
    {"10", "3", "3.3333333333333335"},
    {"-10", "3", "-3.3333333333333335"},
    {"1", "3", "0.3333333333333333"},
    {"2", "3", "0.6666666666666666"},
    {"0", "7", "0.0"},
    {"-1", "2", "-0.5"},
    {"10000000000000000", "1", "1e+16"},
    {"30000000000000000", "3", "1e+16"},
    {"9999999999999998", "1", "9999999999999998.0"},
    {"1", "100000", "1e-05"},
    {"3", "200000", "1.5e-05"},
    {"1", "10000", "0.0001"},
    {"1", "1000", "0.001"},
    {"12345", "10000", "1.2345"},
    {"123456789012345678", "1", "1.2345678901234568e+17"},
    {"170141183460469231731687303715884105727", "1", "1.7014118346046923e+38"},
    {"-170141183460469231731687303715884105728", "1", "-1.7014118346046923e+38"},
    {"-170141183460469231731687303715884105728", "3", "-5.671372782015641e+37"},
    {"170141183460469231731687303715884105727", "170141183460469231731687303715884105727", "1.0"},
    {"1", "85070591730234615865843651857942052864", "1.1754943508222875e-38"},
    {"1", "85070591730234615865843651857942052863", "1.1754943508222875e-38"},
    {"9007199254740993", "1", "9007199254740992.0"},
    {"9007199254740995", "1", "9007199254740996.0"},
    {"18446744073709551615", "1", "1.8446744073709552e+19"},
    {"18446744073709551616", "3", "6.148914691236517e+18"},
    {"100000000000000000000000000000000000000", "7", "1.4285714285714286e+37"},
    {"-100000000000000000000000000000000000000", "100000000000000000001", "-1e+18"},
    {"7", "100000000000000000", "7e-17"},
    {"299792458", "1", "299792458.0"},
    {"123", "10", "12.3"},
    {"1", "7", "0.14285714285714285"},
    {"22", "7", "3.142857142857143"},
    {"355", "113", "3.1415929203539825"},
    {"10000000000000000000000", "1", "1e+22"},
    {"100000000000000000000000", "1", "1e+23"},
    {"2", "12157665459056928801", "1.6450526679939917e-19"},
    {"6", "4", "1.5"},
    {"4500", "1000", "4.5"},
    {"1234567890123456", "1", "1234567890123456.0"},
    {"12345678901234567", "1", "1.2345678901234568e+16"},
    {"-5", "1", "-5.0"},
    {"115814465306423649594136585447025769888", "51417061724921393793596380021",
     "2252452034.8133664"},
    {"-43626459148438424084111791582529623493", "529445663094133146746830677042601",
     "-82400.25783473426"},
    {"78667741790846051922664346564032319301", "1639991512672286", "4.7968383484290606e+22"},
    {"-37622532303495424938804828682291143647", "169450612426157001884709278552",
     "-222026534.83999965"},
    {"-125141950676873066084523074793723830709", "32905037065208120929468252595068101035",
     "-3.8031244404581117"},
    {"157032823308561732603474712223824132620", "750373528222527214735", "2.0927287197955738e+17"},
    {"133983350532127868798263572509665700411", "197661138973", "6.77843663293014e+26"},
    {"-120561393094854241316732615987231763567", "170", "-7.091846652638485e+35"},
    {"29312352560703966987567072397247241907", "51073641916902555851083", "573923289206505.5"},
    {"108386085660126426396327290960754432230", "1456338677654917522", "7.442368133397109e+19"},
    {"69645298418155496888118792127125474438", "66", "1.0552317942144772e+36"},
    {"154622428526262638759935350670307147086", "49528", "3.121919490515721e+33"},
};

START_TEST(test_mean_python)
{
	char err[256];
	for (size_t i = 0; i < sizeof(mean_cases) / sizeof(mean_cases[0]); i++) {
		struct op_fold *f = op_fold_create(op("mean"));
		struct buf part = BUF_INIT, out = BUF_INIT;
		buf_printf(&part, "mean %s %s\n", mean_cases[i].s, mean_cases[i].c);
		ck_assert_msg(op_fold_add(f, part.data, part.len, err, sizeof(err)) == 0, "%s",
		              err);
		ck_assert_int_eq(op_fold_finish(f, &out, err, sizeof(err)), 0);
		buf_append_byte(&out, '\0');
		ck_assert_msg(strlen((const char *)out.data) == strlen(mean_cases[i].want) + 1 &&
		                  strncmp((const char *)out.data, mean_cases[i].want,
		                          strlen(mean_cases[i].want)) == 0,
		              "mean %s/%s: got %s want %s", mean_cases[i].s, mean_cases[i].c,
		              (const char *)out.data, mean_cases[i].want);
		op_fold_destroy(&f);
		buf_free(&part);
		buf_free(&out);
	}
}
END_TEST

START_TEST(test_fold_overflow)
{
	struct op_error e;
	struct buf out = BUF_INIT;
	char err[256];
	const char *text = "170141183460469231731687303715884105727\n0\n1\n";
	struct op_input in = {.data = (const uint8_t *)text, .len = strlen(text)};
	ck_assert_int_eq(op_run(op("sum"), NULL, 0, &in, 4, &out, NULL, &e), -1);
	ck_assert(e.permanent);
	ck_assert_str_eq(e.msg, "partition 4: record 3: sum overflows 128 bits");
	ck_assert_int_eq(op_run(op("mean"), NULL, 0, &in, 4, &out, NULL, &e), -1);
	/* min and max do not add, so they do not overflow. */
	check_text_op_str("max", NULL, 0, text, "170141183460469231731687303715884105727\n");
	check_text_op_str("min", NULL, 0, "-170141183460469231731687303715884105728\n-1\n",
	                  "-170141183460469231731687303715884105728\n");
	/* Record errors name the record within the partition. */
	text = "1\n2\nx1\n";
	in = (struct op_input){.data = (const uint8_t *)text, .len = strlen(text)};
	static const char *const folds[] = {"sum", "min", "max", "mean"};
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(op_run(op(folds[i]), NULL, 0, &in, 3, &out, NULL, &e), -1);
		ck_assert(e.permanent);
		ck_assert_str_eq(e.msg, "partition 3: record 3 is not an integer: \"x1\"");
	}
	/* count does not parse. */
	check_text_op_str("count", NULL, 0, text, "3\n");
	ck_assert_uint_eq(out.len, 0);

	/* Folding partials that overflow. */
	struct op_fold *f = op_fold_create(op("sum"));
	const char *p1 = "sum 170141183460469231731687303715884105727\n", *p2 = "sum 1\n";
	ck_assert_int_eq(op_fold_add(f, (const uint8_t *)p1, strlen(p1), err, sizeof(err)), 0);
	ck_assert_int_eq(op_fold_add(f, (const uint8_t *)p2, strlen(p2), err, sizeof(err)),
	                 OP_FOLD_OVERFLOW);
	ck_assert_str_eq(err, "sum overflows 128 bits");
	p2 = "sum -170141183460469231731687303715884105728\n";
	ck_assert_int_eq(op_fold_add(f, (const uint8_t *)p2, strlen(p2), err, sizeof(err)), 0);
	ck_assert_int_eq(op_fold_finish(f, &out, err, sizeof(err)), 0);
	assert_str(&out, "-1\n", "sum after overflow refusal");
	op_fold_destroy(&f);
	op_fold_destroy(&f);

	f = op_fold_create(op("mean"));
	p1 = "mean -170141183460469231731687303715884105728 5\n";
	p2 = "mean -1 1\n";
	ck_assert_int_eq(op_fold_add(f, (const uint8_t *)p1, strlen(p1), err, sizeof(err)), 0);
	ck_assert_int_eq(op_fold_add(f, (const uint8_t *)p2, strlen(p2), err, sizeof(err)),
	                 OP_FOLD_OVERFLOW);
	ck_assert_str_eq(err, "sum overflows 128 bits");
	op_fold_destroy(&f);
	buf_free(&out);
}
END_TEST

START_TEST(test_fold_bad_partials)
{
	static const struct {
		const char *op;
		const char *partial;
		size_t len; /* 0: strlen */
	} bad[] = {
	    {"sum", "", 0},
	    {"sum", "sum\n", 0},
	    {"sum", "sum 1", 0},
	    {"sum", "sum 01\n", 0},
	    {"sum", "sum -0\n", 0},
	    {"sum", "sum +1\n", 0},
	    {"sum", "sum 1_0\n", 0},
	    {"sum", "sum 1 \n", 0},
	    {"sum", "sum  1\n", 0},
	    {"sum", " sum 1\n", 0},
	    {"sum", "sum 1\n\n", 0},
	    {"sum", "sum 1\r\n", 0},
	    {"sum", "sum 1 2\n", 0},
	    {"sum", "sum x\n", 0},
	    {"sum", "sum -\n", 0},
	    {"sum", "count 1\n", 0},
	    {"sum", "sum 170141183460469231731687303715884105728\n", 0},
	    {"sum", "sum 99999999999999999999999999999999999999999999999999999\n", 0},
	    {"sum", "sum 1\0\n", 7},
	    {"sum", "SUM 1\n", 0},
	    {"count", "count -1\n", 0},
	    {"count", "count none\n", 0},
	    {"count", "sum 1\n", 0},
	    {"min", "min nonee\n", 0},
	    {"min", "min \n", 0},
	    {"min", "max 1\n", 0},
	    {"max", "max none 1\n", 0},
	    {"mean", "mean 1\n", 0},
	    {"mean", "mean 1 0\n", 0},
	    {"mean", "mean 1 -1\n", 0},
	    {"mean", "mean 1 2 3\n", 0},
	    {"mean", "mean 1  2\n", 0},
	    {"mean", "mean none 2\n", 0},
	};
	char err[512];
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct op_fold *f = op_fold_create(op(bad[i].op));
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].partial);
		ck_assert_msg(
		    op_fold_add(f, (const uint8_t *)bad[i].partial, len, err, sizeof(err)) == -1,
		    "accepted %s partial %zu", bad[i].op, i);
		ck_assert_ptr_nonnull(strstr(err, "partial"));
		/* The fold is unchanged. */
		struct buf out = BUF_INIT;
		int rc = op_fold_finish(f, &out, err, sizeof(err));
		if (strcmp(bad[i].op, "sum") == 0 || strcmp(bad[i].op, "count") == 0)
			assert_str(&out, "0\n", "untouched fold");
		else
			ck_assert_int_eq(rc, -1);
		buf_free(&out);
		op_fold_destroy(&f);
	}
	ck_assert_ptr_nonnull(err);

	/* Random garbage never crashes and is (almost surely) refused. */
	srandom(5);
	struct op_fold *f = op_fold_create(op("mean"));
	for (int i = 0; i < 20000; i++) {
		uint8_t g[64];
		size_t n = (size_t)random() % sizeof(g);
		for (size_t k = 0; k < n; k++)
			g[k] = (uint8_t) "mean 0123456789-+ \n\x00\xff"[random() % 21];
		(void)op_fold_add(f, g, n, err, sizeof(err));
	}
	op_fold_destroy(&f);

	/* The good forms. */
	static const char *const good[][2] = {
	    {"sum", "sum -12\n"}, {"count", "count 0\n"}, {"min", "min none\n"},
	    {"max", "max -3\n"},  {"mean", "mean 0 0\n"}, {"mean", "mean -7 2\n"},
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		f = op_fold_create(op(good[i][0]));
		ck_assert_msg(op_fold_add(f, (const uint8_t *)good[i][1], strlen(good[i][1]), err,
		                          sizeof(err)) == 0,
		              "%s", err);
		op_fold_destroy(&f);
	}
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* sort and wordcount */

START_TEST(test_sort)
{
	check_text_op_str("sort", NULL, 0, "", "");
	check_text_op_str("sort", NULL, 0, "b\na\nc", "a\nb\nc\n");
	check_text_op_str("sort", NULL, 0, "ab\na\n\nb\na\r\nab\n\xff\nB\n",
	                  "\nB\na\na\r\nab\nab\nb\n\xff\n");
	check_range_op_str("sort", 8, 12, "10\n11\n8\n9\n");
	check_range_op_str("sort", -2, 2, "-1\n-2\n0\n1\n");

	srandom(23);
	for (int iter = 0; iter < 30; iter++) {
		size_t len;
		uint8_t *p = gen_words((size_t)random() % 300, &len);
		struct buf want = BUF_INIT;
		ref_sort(p, len, &want);
		check_text_op("sort", NULL, 0, p, len, want.data, want.len);
		buf_free(&want);
		free(p);
	}
	struct buf text = BUF_INIT, want = BUF_INIT;
	range_text(-3000, 3000, &text);
	ref_sort(text.data, text.len, &want);
	check_range_op("sort", NULL, 0, -3000, 3000, want.data, want.len);
	buf_free(&text);
	buf_free(&want);
}
END_TEST

START_TEST(test_sort_adversarial)
{
	/* Long shared prefixes, many duplicates, already sorted and reversed input. */
	struct buf text = BUF_INIT, want = BUF_INIT, got = BUF_INIT;
	for (int i = 0; i < 3000; i++) {
		for (int k = 0; k < 300; k++)
			buf_append_byte(&text, 'p');
		buf_printf(&text, "%d\n", (i * 7919) % 1000);
	}
	for (int i = 0; i < 3000; i++)
		buf_printf(&text, "%08d\n", 3000 - i);
	for (int i = 0; i < 3000; i++)
		buf_append(&text, "same\n", 5);
	ref_sort(text.data, text.len, &want);
	struct op_input in = {.data = text.data, .len = text.len};
	run_ok(op("sort"), NULL, 0, &in, 0, &got, NULL);
	assert_bytes(&got, want.data, want.len, "sort adversarial");
	buf_free(&text);
	buf_free(&want);
	buf_free(&got);
}
END_TEST

START_TEST(test_wordcount)
{
	check_text_op_str("wordcount", NULL, 0, "", "");
	check_text_op_str("wordcount", NULL, 0, " \t\n\r\n", "");
	check_text_op_str("wordcount", NULL, 0, "the cat\tthe\r\nhat\vcat\fthe",
	                  "cat\t2\nhat\t1\nthe\t3\n");
	/* NUL is an ordinary byte; 0xff sorts last (bytes compare unsigned). */
	check_text_op("wordcount", NULL, 0, (const uint8_t *)"b a\nab\n\xff a\x00", 11,
	              "a\t1\na\x00\t1\nab\t1\nb\t1\n\xff\t1\n", 22);
	check_range_op_str("wordcount", 8, 12, "10\t1\n11\t1\n8\t1\n9\t1\n");

	srandom(29);
	for (int iter = 0; iter < 30; iter++) {
		size_t len;
		uint8_t *p = gen_words((size_t)random() % 300, &len);
		struct buf want = BUF_INIT;
		ref_wordcount(p, len, &want);
		check_text_op("wordcount", NULL, 0, p, len, want.data, want.len);
		buf_free(&want);
		free(p);
	}
}
END_TEST

START_TEST(test_wordcount_big)
{
	/* Two million words, 200k distinct: the hash table must grow many times. */
	struct buf text = BUF_INIT, got = BUF_INIT, want = BUF_INIT;
	srandom(31);
	for (int i = 0; i < 2000000; i++)
		buf_printf(&text, "w%ld%c", random() % 200000, i % 10 == 9 ? '\n' : ' ');
	struct op_input in = {.data = text.data, .len = text.len};
	uint64_t t0 = mono_us();
	run_ok(op("wordcount"), NULL, 0, &in, 0, &got, NULL);
	printf("wordcount of 2M words: %.3f s\n", (double)(mono_us() - t0) / 1e6);
	ref_wordcount(text.data, text.len, &want);
	assert_bytes(&got, want.data, want.len, "wordcount big");
	buf_free(&text);
	buf_free(&want);
	buf_free(&got);
}
END_TEST

START_TEST(test_run_check)
{
	char err[512];
	static const struct {
		const char *op, *partial;
		int ok;
	} cases[] = {
	    {"sort", "", 1},
	    {"sort", "\n", 1},
	    {"sort", "a\na\nb\n", 1},
	    {"sort", "\nB\na\na\r\n\xff\n", 1},
	    {"sort", "b\na\n", 0},
	    {"sort", "a\nb", 0},
	    {"sort", "ab\na\n", 0},
	    {"sort", "\xff\na\n", 0},
	    {"wordcount", "", 1},
	    {"wordcount", "a\t1\nb\t20\n", 1},
	    {"wordcount", "a\t170141183460469231731687303715884105727\n", 1},
	    {"wordcount", "a\t1\nab\t1\n\xff\t3\n", 1},
	    {"wordcount", "a\t0\n", 0},
	    {"wordcount", "a\t01\n", 0},
	    {"wordcount", "a\t-1\n", 0},
	    {"wordcount", "a\t+1\n", 0},
	    {"wordcount", "a\t1x\n", 0},
	    {"wordcount", "a\t\n", 0},
	    {"wordcount", "a\t1 \n", 0},
	    {"wordcount", "a\t1\t1\n", 0},
	    {"wordcount", "a\n", 0},
	    {"wordcount", "\t1\n", 0},
	    {"wordcount", "a b\t1\n", 0},
	    {"wordcount", "a\r\t1\n", 0},
	    {"wordcount", "b\t1\na\t1\n", 0},
	    {"wordcount", "a\t1\na\t1\n", 0},
	    {"wordcount", "ab\t1\na\t1\n", 0},
	    {"wordcount", "a\t1", 0},
	    {"wordcount", "a\t170141183460469231731687303715884105728\n", 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = op_run_check(op(cases[i].op), (const uint8_t *)cases[i].partial,
		                      strlen(cases[i].partial), err, sizeof(err));
		ck_assert_msg(rc == (cases[i].ok ? 0 : -1), "case %zu (%s): rc %d %s", i,
		              cases[i].op, rc, rc ? err : "");
	}
	ck_assert_int_eq(op_run_check(op("sum"), (const uint8_t *)"", 0, err, sizeof(err)), -1);
	ck_assert_int_eq(op_run_check(op("sort"), (const uint8_t *)"a\0\nb\n", 5, err, sizeof(err)),
	                 0);
}
END_TEST

/* Every op over a range gives what it gives over the same numbers as text. */
START_TEST(test_range_equals_text)
{
	static const char *const names[] = {"square", "sum",       "count", "min", "max",
	                                    "mean",   "wordcount", "grep",  "sort"};
	size_t n;
	Shoal__Arg **a = make_args(&n, "pattern", "1", NULL);
	static const int64_t ranges[][2] = {{-250, 250}, {0, 1}, {INT64_MAX - 50, INT64_MAX}};
	for (size_t r = 0; r < 3; r++) {
		struct buf text = BUF_INIT;
		range_text(ranges[r][0], ranges[r][1], &text);
		for (size_t i = 0; i < 9; i++) {
			const struct op_desc *d = op(names[i]);
			size_t na = strcmp(names[i], "grep") == 0 ? n : 0;
			struct op_input whole = {.data = text.data, .len = text.len};
			struct buf want = BUF_INIT;
			run_combined(d, a, na, &whole, 1, &want, NULL);
			check_range_op(names[i], a, na, ranges[r][0], ranges[r][1], want.data,
			               want.len);
			buf_free(&want);
		}
		buf_free(&text);
	}
}
END_TEST

static Suite *ops_suite(void)
{
	Suite *s = suite_create("ops");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_registry);
	tcase_add_test(tc, test_args);
	tcase_add_test(tc, test_square_small);
	tcase_add_test(tc, test_square_boundaries);
	tcase_add_test(tc, test_square_random);
	tcase_add_test(tc, test_square_errors);
	tcase_add_test(tc, test_square_speed);
	tcase_add_test(tc, test_grep);
	tcase_add_test(tc, test_fold_small);
	tcase_add_test(tc, test_fold_random);
	tcase_add_test(tc, test_mean_python);
	tcase_add_test(tc, test_fold_overflow);
	tcase_add_test(tc, test_fold_bad_partials);
	tcase_add_test(tc, test_sort);
	tcase_add_test(tc, test_sort_adversarial);
	tcase_add_test(tc, test_wordcount);
	tcase_add_test(tc, test_wordcount_big);
	tcase_add_test(tc, test_run_check);
	tcase_add_test(tc, test_range_equals_text);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ops_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
