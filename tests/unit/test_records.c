/* test_records.c: record_iter, the cutter and split_read. The central properties: cuts and
 * splits tile their input exactly, whatever the partition sizes and the feeding pattern. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "records.h"

/* Random text with the awkward cases: empty lines, runs of '\n', CRLF, long lines and
 * (sometimes) no trailing newline. */
static uint8_t *gen_text(size_t *len_out, size_t max_lines, size_t max_line)
{
	size_t lines = (size_t)random() % (max_lines + 1);
	struct buf b = BUF_INIT;
	for (size_t i = 0; i < lines; i++) {
		int kind = (int)(random() % 10);
		size_t n;
		if (kind == 0)
			n = 0;
		else if (kind == 1)
			n = max_line + (size_t)random() % (max_line * 3 + 1);
		else
			n = (size_t)random() % (max_line + 1);
		for (size_t k = 0; k < n; k++)
			buf_append_byte(&b, (uint8_t) "ab c\r\t0x"[random() % 8]);
		if (random() % 7 == 0)
			buf_append_byte(&b, '\r');
		size_t nls = random() % 6 == 0 ? 1 + (size_t)random() % 4 : 1;
		for (size_t k = 0; k < nls; k++)
			buf_append_byte(&b, '\n');
	}
	if (random() % 3 == 0) {
		size_t n = 1 + (size_t)random() % (max_line + 1);
		for (size_t k = 0; k < n; k++)
			buf_append_byte(&b, (uint8_t) "xyz\r"[random() % 4]);
	}
	size_t len;
	uint8_t *p = buf_steal(&b, &len);
	*len_out = len;
	return p;
}

START_TEST(test_record_iter)
{
	static const struct {
		const char *in;
		const char *recs; /* records joined with '|' */
		int n;
	} cases[] = {
	    {"", "", 0},
	    {"\n", "", 1},
	    {"a", "a", 1},
	    {"a\n", "a", 1},
	    {"a\nb", "a|b", 2},
	    {"a\n\nb\n", "a||b", 3},
	    {"a\r\nb\r\n", "a\r|b\r", 2},
	    {"\n\n\n", "||", 3},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct record_iter it;
		record_iter_init(&it, (const uint8_t *)cases[i].in, strlen(cases[i].in));
		const uint8_t *rec;
		size_t len;
		char joined[64] = "";
		int n = 0;
		while (record_iter_next(&it, &rec, &len)) {
			if (n > 0)
				strcat(joined, "|");
			strncat(joined, (const char *)rec, len);
			n++;
		}
		ck_assert_int_eq(n, cases[i].n);
		ck_assert_str_eq(joined, cases[i].recs);
	}
}
END_TEST

struct cuts {
	uint64_t off[100000];
	uint64_t len[100000];
	size_t n;
};

static void on_cut(void *arg, uint64_t offset, uint64_t length)
{
	struct cuts *c = arg;
	ck_assert_uint_lt(c->n, 100000);
	c->off[c->n] = offset;
	c->len[c->n] = length;
	c->n++;
}

/* The rule, written the slow obvious way: a partition is the shortest run of at least
 * `target` bytes that ends with '\n', or the rest of the stream. */
static void ref_cut(const uint8_t *p, size_t len, uint64_t target, struct cuts *c)
{
	size_t start = 0;
	c->n = 0;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\n' && i + 1 - start >= target) {
			on_cut(c, start, i + 1 - start);
			start = i + 1;
		}
	}
	if (start < len)
		on_cut(c, start, len - start);
}

static void cut_with_chunks(const uint8_t *p, size_t len, uint64_t target, int mode, struct cuts *c)
{
	struct cutter ct;
	cutter_init(&ct, target);
	c->n = 0;
	size_t i = 0;
	while (i < len) {
		size_t n;
		if (mode == 0)
			n = len - i;
		else if (mode == 1)
			n = 1;
		else
			n = 1 + (size_t)random() % 97;
		if (n > len - i)
			n = len - i;
		cutter_feed(&ct, p + i, n, on_cut, c);
		i += n;
	}
	if (random() % 2)
		cutter_feed(&ct, p + len, 0, on_cut, c);
	cutter_finish(&ct, on_cut, c);
	ck_assert_uint_eq(ct.pos, len);
}

START_TEST(test_cutter_tiles)
{
	srandom(42);
	static struct cuts ref, got;
	for (int iter = 0; iter < 400; iter++) {
		size_t len;
		uint8_t *p = gen_text(&len, 60, 30);
		uint64_t target = 1 + (uint64_t)random() % 80;
		ref_cut(p, len, target, &ref);
		for (int mode = 0; mode < 3; mode++) {
			cut_with_chunks(p, len, target, mode, &got);
			ck_assert_uint_eq(got.n, ref.n);
			uint64_t pos = 0;
			for (size_t k = 0; k < got.n; k++) {
				ck_assert_uint_eq(got.off[k], ref.off[k]);
				ck_assert_uint_eq(got.len[k], ref.len[k]);
				/* Tiles: contiguous, non-empty, ends after '\n' unless last. */
				ck_assert_uint_eq(got.off[k], pos);
				ck_assert_uint_gt(got.len[k], 0);
				pos += got.len[k];
				if (k + 1 < got.n)
					ck_assert_int_eq(p[pos - 1], '\n');
				/* A partition holds at least target bytes unless it is the last. */
				if (k + 1 < got.n)
					ck_assert_uint_ge(got.len[k], target);
			}
			ck_assert_uint_eq(pos, len);
		}
		free(p);
	}
}
END_TEST

START_TEST(test_cutter_cases)
{
	static struct cuts got;
	/* Lines of exactly target bytes make partitions of exactly target bytes. */
	const char *text = "abcd\nefgh\nijkl\n";
	cut_with_chunks((const uint8_t *)text, strlen(text), 5, 0, &got);
	ck_assert_uint_eq(got.n, 3);
	ck_assert_uint_eq(got.len[0], 5);
	/* A line longer than the target is never split. */
	text = "aaaaaaaaaaaaaaaaaaaa\nb\n";
	cut_with_chunks((const uint8_t *)text, strlen(text), 4, 1, &got);
	ck_assert_uint_eq(got.n, 2);
	ck_assert_uint_eq(got.len[0], 21);
	ck_assert_uint_eq(got.len[1], 2);
	/* Empty stream: nothing. Target 0 behaves as 1. */
	cut_with_chunks((const uint8_t *)"", 0, 10, 0, &got);
	ck_assert_uint_eq(got.n, 0);
	cut_with_chunks((const uint8_t *)"\n\n\n", 3, 0, 0, &got);
	ck_assert_uint_eq(got.n, 3);
	/* No newline at all: one partition. */
	cut_with_chunks((const uint8_t *)"xyz", 3, 1, 1, &got);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_uint_eq(got.len[0], 3);
}
END_TEST

static char *write_temp(const uint8_t *p, size_t len)
{
	char *path = strdup("/tmp/test_records_XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	size_t done = 0;
	while (done < len) {
		ssize_t r = write(fd, p + done, len - done);
		ck_assert_int_gt(r, 0);
		done += (size_t)r;
	}
	close(fd);
	return path;
}

/* Reads the file through splits of random sizes in 1..max_split and checks that the splits'
 * outputs, concatenated, are the file; each split's output is whole records. */
static void check_tiling(const char *path, const uint8_t *p, size_t len, size_t max_split)
{
	struct buf all = BUF_INIT, one = BUF_INIT;
	char err[256];
	uint64_t off = 0;
	/* Go a little past EOF too: those splits must own nothing. */
	while (off < len + 3) {
		uint64_t n = 1 + (uint64_t)random() % max_split;
		buf_reset(&one);
		int rc = split_read(path, off, n, &one, err, sizeof(err));
		ck_assert_msg(rc == 0, "split_read: %s", err);
		if (one.len > 0) {
			/* Starts at a record start and ends at a record end. */
			size_t at = all.len;
			ck_assert(at == 0 || p[at - 1] == '\n');
			ck_assert(at + one.len == len || one.data[one.len - 1] == '\n');
			ck_assert_uint_ge(at, off);
			ck_assert_uint_lt(at, off + n);
		}
		buf_append(&all, one.data, one.len);
		off += n;
	}
	ck_assert_uint_eq(all.len, len);
	ck_assert(len == 0 || memcmp(all.data, p, len) == 0);
	buf_free(&all);
	buf_free(&one);
}

START_TEST(test_split_tiles)
{
	srandom(7);
	for (int iter = 0; iter < 150; iter++) {
		size_t len;
		uint8_t *p = gen_text(&len, 50, 40);
		char *path = write_temp(p, len);
		for (int t = 0; t < 6; t++)
			check_tiling(path, p, len, 1 + (size_t)random() % 60);
		check_tiling(path, p, len, 1);
		unlink(path);
		free(path);
		free(p);
	}
}
END_TEST

START_TEST(test_split_long_lines)
{
	/* Lines longer than the 64 KiB read step, splits smaller and larger than them. */
	srandom(99);
	for (int iter = 0; iter < 4; iter++) {
		size_t len;
		uint8_t *p = gen_text(&len, 30, 60000);
		char *path = write_temp(p, len);
		check_tiling(path, p, len, 50000);
		check_tiling(path, p, len, 300000);
		check_tiling(path, p, len, 3000);
		unlink(path);
		free(path);
		free(p);
	}
}
END_TEST

START_TEST(test_split_cases)
{
	const char *text = "aa\nbb\ncc";
	char *path = write_temp((const uint8_t *)text, strlen(text));
	struct buf b = BUF_INIT;
	char err[256];
	static const struct {
		uint64_t off, len;
		const char *want;
	} cases[] = {
	    {0, 1, "aa\n"},
	    {0, 3, "aa\n"},
	    {0, 4, "aa\nbb\n"},
	    {1, 2, ""},     /* inside "aa": the next record starts at 3 */
	    {1, 3, "bb\n"}, /* 3 is inside */
	    {3, 1, "bb\n"}, /* starts right after '\n' */
	    {2, 1, ""},     /* the '\n' itself */
	    {4, 100, "cc"}, /* unterminated last record */
	    {6, 1, "cc"},
	    {7, 1, ""},
	    {8, 10, ""},   /* at EOF */
	    {100, 10, ""}, /* beyond EOF */
	    {0, 0, ""},    /* empty split */
	    {0, UINT64_MAX, "aa\nbb\ncc"},
	    {5, UINT64_MAX, "cc"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		buf_reset(&b);
		buf_append(&b, "keep", 4);
		ck_assert_int_eq(split_read(path, cases[i].off, cases[i].len, &b, err, sizeof(err)),
		                 0);
		ck_assert_uint_eq(b.len, 4 + strlen(cases[i].want));
		ck_assert_msg(memcmp(b.data, "keep", 4) == 0 &&
		                  memcmp(b.data + 4, cases[i].want, b.len - 4) == 0,
		              "case %zu", i);
	}
	unlink(path);

	/* Errors name the path and the reason, and leave out as it was. */
	buf_reset(&b);
	buf_append(&b, "x", 1);
	ck_assert_int_eq(split_read(path, 0, 10, &b, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	ck_assert_uint_eq(b.len, 1);
	ck_assert_int_eq(split_read("/tmp", 0, 10, &b, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "/tmp"));
	ck_assert_ptr_nonnull(strstr(err, "directory"));
	ck_assert_uint_eq(b.len, 1);
	buf_free(&b);
	free(path);
}
END_TEST

static Suite *records_suite(void)
{
	Suite *s = suite_create("records");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_record_iter);
	tcase_add_test(tc, test_cutter_tiles);
	tcase_add_test(tc, test_cutter_cases);
	tcase_add_test(tc, test_split_tiles);
	tcase_add_test(tc, test_split_long_lines);
	tcase_add_test(tc, test_split_cases);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(records_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
