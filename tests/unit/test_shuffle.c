/* test_shuffle.c: the reduce-side shuffle. shuffle_bucket is FNV-1a 64 (checked against the
 * published test vectors); shuffle_partition equals a naive reference (bucket each record,
 * qsort each bucket by key, then the rest of the line) on random records, with keys with and
 * without a TAB, empty records, bytes >= 0x80 and NUL, a last record without '\n', and 1 to 1000
 * buckets. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "shuffle.h"
#include "util.h"

/* An assertion for per-record loops: Check's own ones log each passing check (a write per
 * call), which would dominate the run time. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond))                                                                       \
			ck_abort_msg("%s:%d: %s", __FILE__, __LINE__, #cond);                      \
	} while (0)

static uint64_t ref_fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 14695981039346656037u;
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211u;
	}
	return h;
}

START_TEST(test_bucket)
{
	/* FNV-1a 64 test vectors (Fowler, Noll, Vo): "" and "a", "foobar". */
	ck_assert_uint_eq(ref_fnv1a((const uint8_t *)"", 0), 0xcbf29ce484222325u);
	ck_assert_uint_eq(ref_fnv1a((const uint8_t *)"a", 1), 0xaf63dc4c8601ec8cu);
	ck_assert_uint_eq(ref_fnv1a((const uint8_t *)"foobar", 6), 0x85944171f73967e8u);
	static const uint32_t ns[] = {1, 2, 3, 7, 64, 1000, 4294967295u};
	static const char *const keys[] = {"", "a", "foobar", "the", "\x80\xff", "key with spaces"};
	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
			const uint8_t *k = (const uint8_t *)keys[j];
			size_t len = strlen(keys[j]);
			ck_assert_uint_eq(shuffle_bucket(k, len, ns[i]),
			                  (uint32_t)(ref_fnv1a(k, len) % ns[i]));
		}
	}
	/* 0 buckets cannot be indexed: everything goes to bucket 0. */
	ck_assert_uint_eq(shuffle_bucket((const uint8_t *)"a", 1, 0), 0);
}
END_TEST

struct rec {
	const uint8_t *p;
	size_t len;
};

static int bytes_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static size_t key_len(const struct rec *r)
{
	const uint8_t *tab = memchr(r->p, '\t', r->len);
	return tab != NULL ? (size_t)(tab - r->p) : r->len;
}

/* The reduce order: by key (before the first TAB), then by the rest of the line. */
static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	size_t kx = key_len(x), ky = key_len(y);
	int c = bytes_cmp(x->p, kx, y->p, ky);
	if (c != 0)
		return c;
	return bytes_cmp(x->p + kx, x->len - kx, y->p + ky, y->len - ky);
}

static void ref_shuffle(const uint8_t *data, size_t len, uint32_t nb, struct buf *out,
                        uint64_t *sizes)
{
	/* Records: split at '\n'; a last one without '\n' counts. */
	size_t n = 0, cap = 16;
	struct rec *r = xmalloc(cap * sizeof(*r));
	for (size_t pos = 0; pos < len;) {
		const uint8_t *nl = memchr(data + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - data) : len;
		if (n == cap)
			r = xrealloc(r, (cap *= 2) * sizeof(*r));
		r[n++] = (struct rec){data + pos, end - pos};
		pos = end + 1;
	}
	struct rec *bucket = xmalloc((n + 1) * sizeof(*bucket));
	for (uint32_t b = 0; b < nb; b++) {
		size_t m = 0;
		for (size_t i = 0; i < n; i++) {
			const uint8_t *tab = memchr(r[i].p, '\t', r[i].len);
			size_t klen = tab != NULL ? (size_t)(tab - r[i].p) : r[i].len;
			if (ref_fnv1a(r[i].p, klen) % nb == b)
				bucket[m++] = r[i];
		}
		qsort(bucket, m, sizeof(*bucket), rec_cmp);
		size_t before = out->len;
		for (size_t i = 0; i < m; i++) {
			buf_append(out, bucket[i].p, bucket[i].len);
			buf_append_byte(out, '\n');
		}
		sizes[b] = out->len - before;
	}
	free(bucket);
	free(r);
}

static void check_shuffle(const uint8_t *data, size_t len, uint32_t nb, const char *what)
{
	struct buf got = BUF_INIT, want = BUF_INIT;
	uint64_t *gs = xcalloc(nb, sizeof(*gs)), *ws = xcalloc(nb, sizeof(*ws));
	buf_append(&got, "prefix", 6); /* appends */
	shuffle_partition(data, len, nb, &got, gs);
	buf_append(&want, "prefix", 6);
	ref_shuffle(data, len, nb, &want, ws);
	ck_assert_msg(got.len == want.len && memcmp(got.data, want.data, got.len) == 0,
	              "%s: %zu buckets: got %zu bytes, want %zu", what, (size_t)nb, got.len,
	              want.len);
	for (uint32_t b = 0; b < nb; b++)
		if (gs[b] != ws[b])
			ck_abort_msg("%s: bucket %u size %llu, want %llu", what, b,
			             (unsigned long long)gs[b], (unsigned long long)ws[b]);
	free(gs);
	free(ws);
	buf_free(&got);
	buf_free(&want);
}

START_TEST(test_small)
{
	const char *text = "b\t1\na\t2\nb\t0\nc\n\nb\t1\na";
	for (uint32_t nb = 1; nb <= 5; nb++)
		check_shuffle((const uint8_t *)text, strlen(text), nb, "small");
	check_shuffle((const uint8_t *)"", 0, 3, "empty");
	check_shuffle((const uint8_t *)"\n", 1, 3, "one empty record");

	/* One bucket: the whole output is LC_ALL=C sort, a final '\n' added. */
	struct buf out = BUF_INIT;
	uint64_t size;
	shuffle_partition((const uint8_t *)text, strlen(text), 1, &out, &size);
	const char *want = "\na\na\t2\nb\t0\nb\t1\nb\t1\nc\n";
	ck_assert_uint_eq(out.len, strlen(want));
	ck_assert(memcmp(out.data, want, out.len) == 0);
	ck_assert_uint_eq(size, strlen(want));
	buf_free(&out);

	/* Keys with bytes below TAB, and a line without TAB: key a stays together (whole-line
	 * order would give a, a\x01, a). */
	const char *tricky = "a\x01\tx\na\ty\na\n";
	struct buf o2 = BUF_INIT;
	shuffle_partition((const uint8_t *)tricky, strlen(tricky), 1, &o2, &size);
	const char *want2 = "a\na\ty\na\x01\tx\n";
	ck_assert_uint_eq(o2.len, strlen(want2));
	ck_assert(memcmp(o2.data, want2, o2.len) == 0);
	buf_free(&o2);
}
END_TEST

/* Random records: keys from a small vocabulary (so that keys repeat), sometimes without a TAB,
 * with any bytes in the value. */
START_TEST(test_random)
{
	srandom(21);
	static const char *const words[] = {
	    "the",   "a",       "",   "\x80", "caf\xc3\xa9",
	    "a\x01", "the end", "zz", "A",    "longer key that is longer"};
	for (int trial = 0; trial < 60; trial++) {
		struct buf data = BUF_INIT;
		size_t n = (size_t)random() % 2000;
		for (size_t i = 0; i < n; i++) {
			const char *w = words[(size_t)random() % 10];
			buf_append(&data, w, strlen(w));
			if (random() % 5 != 0) {
				buf_append_byte(&data, '\t');
				size_t vl = (size_t)random() % 6;
				for (size_t j = 0; j < vl; j++) {
					uint8_t c = (uint8_t)(random() % 256);
					buf_append_byte(&data, c == '\n' ? '\t' : c);
				}
			}
			buf_append_byte(&data, '\n');
		}
		if (data.len > 0 && random() % 2)
			data.len--; /* a last record without '\n' */
		static const uint32_t nbs[] = {1, 2, 3, 8, 17, 1000};
		check_shuffle(data.data, data.len, nbs[trial % 6], "random");
		buf_free(&data);
	}
}
END_TEST

START_TEST(test_keys_together)
{
	/* Every record of a key lands in one bucket, and its records are adjacent there. */
	srandom(4);
	struct buf data = BUF_INIT;
	for (int i = 0; i < 20000; i++)
		buf_printf(&data, "k%ld\t%ld\n", random() % 500, random() % 1000);
	const uint32_t nb = 7;
	uint64_t sizes[7];
	struct buf out = BUF_INIT;
	shuffle_partition(data.data, data.len, nb, &out, sizes);
	ck_assert_uint_eq(out.len, data.len);
	size_t pos = 0;
	for (uint32_t b = 0; b < nb; b++) {
		const uint8_t *p = out.data + pos, *end = p + sizes[b];
		char prev[32] = "";
		int seen[500] = {0};
		while (p < end) {
			const uint8_t *tab = memchr(p, '\t', (size_t)(end - p));
			const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
			REQUIRE(tab != NULL && nl != NULL && tab < nl);
			if (tab == NULL || nl == NULL)
				break; /* not reached: for the analyzers */
			char key[32];
			snprintf(key, sizeof(key), "%.*s", (int)(tab - p), (const char *)p);
			REQUIRE(shuffle_bucket(p, (size_t)(tab - p), nb) == b);
			if (strcmp(key, prev) != 0) {
				int k = atoi(key + 1);
				if (seen[k])
					ck_abort_msg("key %s split in bucket %u", key, b);
				seen[k] = 1;
				snprintf(prev, sizeof(prev), "%s", key);
			}
			p = nl + 1;
		}
		pos += sizes[b];
	}
	ck_assert_uint_eq(pos, out.len);
	buf_free(&out);
	buf_free(&data);
}
END_TEST

static Suite *shuffle_suite(void)
{
	Suite *s = suite_create("shuffle");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_bucket);
	tcase_add_test(tc, test_small);
	tcase_add_test(tc, test_random);
	tcase_add_test(tc, test_keys_together);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(shuffle_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
