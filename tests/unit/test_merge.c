/* test_merge.c: merge_runs against a naive sort (or sum by key) of all the runs' lines: many
 * runs (multi-pass beyond the fan-in of 64), empty runs, lines longer than the read buffer,
 * runs sharing one file, output at the fd's offset, and malformed runs refused cleanly. */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "merge.h"
#include "num.h"
#include "util.h"

static int tmp_fd(void)
{
	char path[] = "/tmp/test_merge_XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	unlink(path);
	return fd;
}

static void read_file(int fd, struct buf *out)
{
	off_t size = lseek(fd, 0, SEEK_END);
	ck_assert_int_ge(size, 0);
	uint8_t *dst = buf_reserve(out, (size_t)size);
	size_t done = 0;
	while (done < (size_t)size) {
		ssize_t r = pread(fd, dst + done, (size_t)size - done, (off_t)done);
		ck_assert_int_gt(r, 0);
		done += (size_t)r;
	}
	out->len += (size_t)size;
}

struct line {
	const uint8_t *p;
	size_t len;
};

static int line_cmp(const void *a, const void *b)
{
	const struct line *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = n > 0 ? memcmp(x->p, y->p, n) : 0;
	if (c != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static size_t split_lines(const uint8_t *p, size_t len, struct line *v)
{
	size_t n = 0, s = 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n') {
			v[n++] = (struct line){p + s, i - s};
			s = i + 1;
		}
	return n;
}

/* A random line: short ones from a small alphabet (so that there are many duplicates and
 * shared prefixes) and, when asked, some very long ones. */
static void gen_line(struct buf *b, bool long_lines)
{
	size_t n;
	int k = (int)(random() % 20);
	if (long_lines && k == 0)
		n = 60000 + (size_t)random() % 200000;
	else if (k == 1)
		n = 0;
	else
		n = (size_t)random() % 6;
	for (size_t i = 0; i < n; i++)
		buf_append_byte(b, (uint8_t) "ab\x01\x80\xff\t"[random() % (long_lines ? 2 : 6)]);
	buf_append_byte(b, '\n');
}

/* Builds nruns sorted runs in one file (with junk between them, which the runs' ranges must
 * exclude), merges them and compares with a naive sort of all the lines. */
static void check_merge(size_t nruns, size_t max_lines, bool long_lines)
{
	int in_fd = tmp_fd(), out_fd = tmp_fd();
	struct merge_run *runs = xcalloc(nruns + 1, sizeof(*runs));
	struct buf all = BUF_INIT, run = BUF_INIT;
	uint64_t off = 0;
	for (size_t r = 0; r < nruns; r++) {
		buf_reset(&run);
		size_t n = max_lines > 0 ? (size_t)random() % (max_lines + 1) : 0;
		for (size_t i = 0; i < n; i++)
			gen_line(&run, long_lines);
		struct line *v = xcalloc(n + 1, sizeof(*v));
		size_t nl = split_lines(run.data, run.len, v);
		qsort(v, nl, sizeof(*v), line_cmp);
		struct buf sorted = BUF_INIT;
		for (size_t i = 0; i < nl; i++) {
			buf_append(&sorted, v[i].p, v[i].len);
			buf_append_byte(&sorted, '\n');
		}
		buf_append(&all, sorted.data, sorted.len);
		ck_assert_int_eq(write_all(in_fd, "JUNK", 4), 0);
		off += 4;
		ck_assert_int_eq(write_all(in_fd, sorted.data, sorted.len), 0);
		runs[r] = (struct merge_run){in_fd, off, sorted.len};
		off += sorted.len;
		buf_free(&sorted);
		free(v);
	}
	ck_assert_int_eq(write_all(in_fd, "zz", 2), 0);

	/* The expected output. */
	struct line *v = xcalloc(all.len + 1, sizeof(*v));
	size_t nl = split_lines(all.data, all.len, v);
	qsort(v, nl, sizeof(*v), line_cmp);
	struct buf want = BUF_INIT;
	buf_append(&want, "HDR", 3);
	for (size_t i = 0; i < nl; i++) {
		buf_append(&want, v[i].p, v[i].len);
		buf_append_byte(&want, '\n');
	}

	/* Output starts at the fd's current offset. */
	ck_assert_int_eq(write_all(out_fd, "HDR", 3), 0);
	char err[512];
	uint64_t nbytes = 12345;
	int rc = merge_runs(runs, nruns, false, out_fd, "/tmp", &nbytes, err, sizeof(err));
	ck_assert_msg(rc == 0, "merge: %s", err);
	ck_assert_uint_eq(nbytes, want.len - 3);
	struct buf got = BUF_INIT;
	read_file(out_fd, &got);
	ck_assert_uint_eq(got.len, want.len);
	ck_assert(memcmp(got.data, want.data, want.len) == 0);

	buf_free(&got);
	buf_free(&want);
	buf_free(&all);
	buf_free(&run);
	free(v);
	free(runs);
	close(in_fd);
	close(out_fd);
}

START_TEST(test_merge_counts)
{
	srandom(101);
	check_merge(0, 10, false);
	check_merge(1, 50, false);
	check_merge(2, 50, false);
	check_merge(5, 100, false);
	check_merge(63, 30, false);
	check_merge(64, 30, false);
	check_merge(65, 30, false);
	check_merge(200, 20, false);
	check_merge(129, 0, false); /* all empty */
}
END_TEST

START_TEST(test_merge_many_passes)
{
	/* 64 * 64 + 5 runs: three passes. */
	srandom(102);
	check_merge(64 * 64 + 5, 3, false);
}
END_TEST

START_TEST(test_merge_long_lines)
{
	/* Lines of up to ~260 KiB against 64 KiB read buffers, in one and several passes. */
	srandom(103);
	check_merge(3, 20, true);
	check_merge(70, 4, true);

	/* Deterministic: lines of 100 KiB and 300 KiB that differ only at their ends. */
	struct buf a = BUF_INIT, b = BUF_INIT;
	for (int i = 0; i < 100 * 1024; i++)
		buf_append_byte(&a, 'p');
	buf_append(&a, "2\n", 2);
	for (int i = 0; i < 300 * 1024; i++)
		buf_append_byte(&b, 'p');
	buf_append(&b, "1\n", 2);
	buf_append(&b, "q\n", 2);
	int fa = tmp_fd(), fb = tmp_fd(), out = tmp_fd();
	ck_assert_int_eq(write_all(fa, a.data, a.len), 0);
	ck_assert_int_eq(write_all(fb, b.data, b.len), 0);
	struct merge_run runs[2] = {{fa, 0, a.len}, {fb, 0, b.len}};
	char err[256];
	uint64_t n;
	ck_assert_int_eq(merge_runs(runs, 2, false, out, NULL, &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, a.len + b.len);
	struct buf got = BUF_INIT;
	read_file(out, &got);
	/* "ppp...p1" (300 KiB of p) < "ppp...p2" (100 KiB of p)? No: at byte 100 KiB, 'p' > '2'. */
	ck_assert(memcmp(got.data, a.data, a.len) == 0);
	ck_assert(memcmp(got.data + a.len, b.data, b.len) == 0);
	buf_free(&got);
	buf_free(&a);
	buf_free(&b);
	close(fa);
	close(fb);
	close(out);
}
END_TEST

START_TEST(test_merge_separate_fds)
{
	const char *texts[] = {"a\nc\ne\n", "", "b\nd\n", "\n\na\nz\n"};
	int fds[4];
	struct merge_run runs[4];
	for (int i = 0; i < 4; i++) {
		fds[i] = tmp_fd();
		ck_assert_int_eq(write_all(fds[i], texts[i], strlen(texts[i])), 0);
		runs[i] = (struct merge_run){fds[i], 0, strlen(texts[i])};
	}
	int out = tmp_fd();
	char err[256];
	uint64_t n;
	ck_assert_int_eq(merge_runs(runs, 4, false, out, NULL, &n, err, sizeof(err)), 0);
	struct buf got = BUF_INIT;
	read_file(out, &got);
	const char *want = "\n\na\na\nb\nc\nd\ne\nz\n";
	ck_assert_uint_eq(n, strlen(want));
	ck_assert_uint_eq(got.len, strlen(want));
	ck_assert(memcmp(got.data, want, got.len) == 0);
	buf_free(&got);
	for (int i = 0; i < 4; i++)
		close(fds[i]);
	close(out);
}
END_TEST

/* The reduce stage's merge keeps every key's lines together, whatever bytes the keys hold;
 * a run out of (key, rest) order is refused. */
START_TEST(test_merge_grouped)
{
	/* Each run in (key, rest) order, as shuffle_partition writes them. */
	const char *texts[] = {"a\na\tz\na\x01\tx\nb\t1\n", "a\ty\na\x01\tw\nb\n"};
	int fds[2];
	struct merge_run runs[2];
	for (int i = 0; i < 2; i++) {
		fds[i] = tmp_fd();
		ck_assert_int_eq(write_all(fds[i], texts[i], strlen(texts[i])), 0);
		runs[i] = (struct merge_run){fds[i], 0, strlen(texts[i])};
	}
	int out = tmp_fd();
	char err[256];
	uint64_t n;
	ck_assert_int_eq(merge_runs_grouped(runs, 2, out, NULL, &n, err, sizeof(err)), 0);
	struct buf got = BUF_INIT;
	read_file(out, &got);
	const char *want = "a\na\ty\na\tz\na\x01\tw\na\x01\tx\nb\nb\t1\n";
	ck_assert_uint_eq(got.len, strlen(want));
	ck_assert(memcmp(got.data, want, got.len) == 0);
	buf_free(&got);
	close(out);
	/* Whole-line order is not (key, rest) order: refused rather than merged wrongly. */
	const char *bad = "a\x01\tx\na\ty\n";
	int fd = tmp_fd();
	ck_assert_int_eq(write_all(fd, bad, strlen(bad)), 0);
	struct merge_run r = {fd, 0, strlen(bad)};
	out = tmp_fd();
	ck_assert_int_eq(merge_runs_grouped(&r, 1, out, NULL, &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not sorted"));
	close(out);
	close(fd);
	for (int i = 0; i < 2; i++)
		close(fds[i]);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* sum_keys */

static void fmt_i128(i128 v, struct buf *out)
{
	char tmp[NUM_I128_MAXLEN];
	buf_append(out, tmp, num_format_i128(v, tmp));
}

struct kv {
	char key[8];
	size_t klen;
	i128 count;
};

static int kv_cmp(const void *a, const void *b)
{
	const struct kv *x = a, *y = b;
	size_t n = x->klen < y->klen ? x->klen : y->klen;
	int c = memcmp(x->key, y->key, n);
	if (c != 0)
		return c;
	return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static void check_merge_keyed(size_t nruns, size_t max_keys)
{
	int in_fd = tmp_fd(), out_fd = tmp_fd();
	struct merge_run *runs = xcalloc(nruns + 1, sizeof(*runs));
	struct kv *all = xcalloc(nruns * max_keys + 1, sizeof(*all));
	size_t nall = 0;
	uint64_t off = 0;
	for (size_t r = 0; r < nruns; r++) {
		size_t n = (size_t)random() % (max_keys + 1);
		struct kv *v = xcalloc(n + 1, sizeof(*v));
		for (size_t i = 0; i < n; i++) {
			v[i].klen = 1 + (size_t)random() % 3;
			for (size_t k = 0; k < v[i].klen; k++)
				v[i].key[k] = "ab\x80\xff"[random() % 4];
			v[i].count =
			    random() % 3 ? 1 + random() % 100 : ((i128)1 << 100) + random();
		}
		qsort(v, n, sizeof(*v), kv_cmp);
		/* Keys are unique within a run, as op_run_check demands. */
		struct buf text = BUF_INIT;
		for (size_t i = 0; i < n; i++) {
			if (i > 0 && kv_cmp(&v[i], &v[i - 1]) == 0)
				continue;
			buf_append(&text, v[i].key, v[i].klen);
			buf_append_byte(&text, '\t');
			fmt_i128(v[i].count, &text);
			buf_append_byte(&text, '\n');
			all[nall++] = v[i];
		}
		ck_assert_int_eq(write_all(in_fd, text.data, text.len), 0);
		runs[r] = (struct merge_run){in_fd, off, text.len};
		off += text.len;
		buf_free(&text);
		free(v);
	}
	qsort(all, nall, sizeof(*all), kv_cmp);
	struct buf want = BUF_INIT;
	for (size_t i = 0; i < nall;) {
		size_t j = i;
		i128 sum = 0;
		while (j < nall && kv_cmp(&all[i], &all[j]) == 0)
			sum += all[j++].count;
		buf_append(&want, all[i].key, all[i].klen);
		buf_append_byte(&want, '\t');
		fmt_i128(sum, &want);
		buf_append_byte(&want, '\n');
		i = j;
	}
	char err[512];
	uint64_t nbytes;
	int rc = merge_runs(runs, nruns, true, out_fd, "/tmp", &nbytes, err, sizeof(err));
	ck_assert_msg(rc == 0, "merge: %s", err);
	struct buf got = BUF_INIT;
	read_file(out_fd, &got);
	ck_assert_uint_eq(nbytes, got.len);
	ck_assert_uint_eq(got.len, want.len);
	ck_assert(memcmp(got.data, want.data, want.len) == 0);
	buf_free(&got);
	buf_free(&want);
	free(all);
	free(runs);
	close(in_fd);
	close(out_fd);
}

START_TEST(test_merge_keyed)
{
	srandom(104);
	check_merge_keyed(1, 30);
	check_merge_keyed(2, 30);
	check_merge_keyed(7, 40);
	check_merge_keyed(64, 20);
	check_merge_keyed(65, 20);
	check_merge_keyed(300, 10);
}
END_TEST

/* Merges the given run texts (one file each); returns merge_runs' code, output in got. */
static int merge_texts(const char *const *texts, size_t n, bool sum_keys, struct buf *got,
                       char *err, size_t errlen)
{
	int in_fd = tmp_fd(), out_fd = tmp_fd();
	struct merge_run *runs = xcalloc(n + 1, sizeof(*runs));
	uint64_t off = 0;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(texts[i]);
		ck_assert_int_eq(write_all(in_fd, texts[i], len), 0);
		runs[i] = (struct merge_run){in_fd, off, len};
		off += len;
	}
	uint64_t nbytes = 0;
	int rc = merge_runs(runs, n, sum_keys, out_fd, "/tmp", &nbytes, err, errlen);
	if (got != NULL)
		read_file(out_fd, got);
	free(runs);
	close(in_fd);
	close(out_fd);
	return rc;
}

START_TEST(test_merge_keyed_cases)
{
	char err[256];
	struct buf got = BUF_INIT;
	const char *r1[] = {"a\t1\nb\t2\n", "a\t3\nc\t1\n",
	                    "b\t170141183460469231731687303715884105720\n"};
	ck_assert_int_eq(merge_texts(r1, 3, true, &got, err, sizeof(err)), 0);
	const char *want = "a\t4\nb\t170141183460469231731687303715884105722\nc\t1\n";
	ck_assert_uint_eq(got.len, strlen(want));
	ck_assert(memcmp(got.data, want, got.len) == 0);

	/* A key's total beyond 2^127 - 1 is an error, not a wrapped count. */
	const char *r2[] = {"a\t170141183460469231731687303715884105727\n", "a\t1\n"};
	ck_assert_int_eq(merge_texts(r2, 2, true, NULL, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "overflows"));

	/* A key that is a prefix of another sorts first; the tab is not part of the key order. */
	buf_reset(&got);
	const char *r3[] = {"a\t1\na!\t1\n", "a\t2\n"};
	ck_assert_int_eq(merge_texts(r3, 2, true, &got, err, sizeof(err)), 0);
	want = "a\t3\na!\t1\n";
	ck_assert_uint_eq(got.len, strlen(want));
	ck_assert(memcmp(got.data, want, got.len) == 0);
	/* Keys compare as keys: "a" < "a\x01" although "a\t" > "a\x01". */
	buf_reset(&got);
	const char *r4[] = {"a\t1\na\x01\t1\n", "a\x01\t5\n"};
	ck_assert_int_eq(merge_texts(r4, 2, true, &got, err, sizeof(err)), 0);
	want = "a\t1\na\x01\t6\n";
	ck_assert_uint_eq(got.len, strlen(want));
	ck_assert(memcmp(got.data, want, got.len) == 0);
	buf_free(&got);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Malformed input */

START_TEST(test_merge_malformed)
{
	char err[256];
	static const struct {
		bool sum_keys;
		const char *runs[3];
		const char *msg;
	} bad[] = {
	    {false, {"a\nb\n", "b\na\n", ""}, "run 1 is not sorted"},
	    {false, {"a\nb", "c\n", ""}, "run 0: last line has no newline"},
	    {false, {"", "", "x"}, "run 2: last line has no newline"},
	    {true, {"a\t1\n", "b\t0\n", ""}, "run 1: bad count"},
	    {true, {"a\tx\n", "", ""}, "run 0: bad count"},
	    {true, {"a\t01\n", "", ""}, "run 0: bad count"},
	    {true, {"a\t-1\n", "", ""}, "run 0: bad count"},
	    {true, {"a\t\n", "", ""}, "run 0: bad count"},
	    {true, {"a\t1 \n", "", ""}, "run 0: bad count"},
	    {true, {"a\t1\n", "a\n", ""}, "run 1: a line is not KEY<TAB>COUNT"},
	    {true, {"\t1\n", "", ""}, "run 0: a line is not KEY<TAB>COUNT"},
	    {true, {"b\t1\na\t1\n", "", ""}, "run 0 is not sorted"},
	    {true, {"a\t1\n", "c\t1\nb\t1\n", ""}, "run 1 is not sorted"},
	    {true, {"a\t999999999999999999999999999999999999999999\n", "", ""}, "run 0: bad count"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(
		    merge_texts(bad[i].runs, 3, bad[i].sum_keys, NULL, err, sizeof(err)), -1);
		ck_assert_msg(strstr(err, bad[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i, err,
		              bad[i].msg);
	}

	/* A run reaching past the end of its file; an fd that is not open. */
	int fd = tmp_fd(), out = tmp_fd();
	ck_assert_int_eq(write_all(fd, "a\nb\n", 4), 0);
	struct merge_run r = {fd, 0, 10};
	uint64_t n;
	ck_assert_int_eq(merge_runs(&r, 1, false, out, "/tmp", &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "ends before"));
	r = (struct merge_run){fd, 3, UINT64_MAX};
	ck_assert_int_eq(merge_runs(&r, 1, false, out, "/tmp", &n, err, sizeof(err)), -1);
	r = (struct merge_run){-1, 0, 4};
	ck_assert_int_eq(merge_runs(&r, 1, false, out, "/tmp", &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "Bad file descriptor"));
	/* Output that cannot be written. */
	int ro = open("/dev/null", O_RDONLY);
	r = (struct merge_run){fd, 0, 4};
	ck_assert_int_eq(merge_runs(&r, 1, false, ro, "/tmp", &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "write"));
	close(ro);
	close(fd);
	close(out);
}
END_TEST

START_TEST(test_merge_malformed_multipass)
{
	/* 200 runs, run 130 unsorted: caught in the first pass, named by its caller's index. */
	const size_t nruns = 200;
	int in_fd = tmp_fd(), out_fd = tmp_fd();
	struct merge_run runs[200];
	uint64_t off = 0;
	for (size_t i = 0; i < nruns; i++) {
		const char *t = i == 130 ? "m\nl\n" : "a\nz\n";
		ck_assert_int_eq(write_all(in_fd, t, 4), 0);
		runs[i] = (struct merge_run){in_fd, off, 4};
		off += 4;
	}
	char err[256];
	uint64_t n;
	ck_assert_int_eq(merge_runs(runs, nruns, false, out_fd, "/tmp", &n, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "run 130 is not sorted") != NULL, "%s", err);

	/* More runs than the fan-in need a usable temporary directory. */
	runs[130] = runs[0];
	ck_assert_int_eq(
	    merge_runs(runs, nruns, false, out_fd, "/nonexistent/dir", &n, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/dir"));
	/* ... and fewer do not use it at all. */
	ck_assert_int_eq(
	    merge_runs(runs, 64, false, out_fd, "/nonexistent/dir", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 64 * 4);
	close(in_fd);
	close(out_fd);
}
END_TEST

static Suite *merge_suite(void)
{
	Suite *s = suite_create("merge");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_merge_counts);
	tcase_add_test(tc, test_merge_many_passes);
	tcase_add_test(tc, test_merge_long_lines);
	tcase_add_test(tc, test_merge_separate_fds);
	tcase_add_test(tc, test_merge_grouped);
	tcase_add_test(tc, test_merge_keyed);
	tcase_add_test(tc, test_merge_keyed_cases);
	tcase_add_test(tc, test_merge_malformed);
	tcase_add_test(tc, test_merge_malformed_multipass);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(merge_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
