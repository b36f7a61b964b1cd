/* Unit tests for buf.c and util.c (the growable buffer and allocation helpers). */
#include <check.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_BUF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_BUF_ASAN 1
#endif
#endif
#ifndef TEST_BUF_ASAN
#define TEST_BUF_ASAN 0
#endif

START_TEST(test_buf_append)
{
	struct buf b = BUF_INIT;
	buf_append(&b, "hello", 5);
	buf_append_byte(&b, ' ');
	buf_append(&b, "world", 5);
	buf_append(&b, NULL, 0);
	ck_assert_uint_eq(b.len, 11);
	ck_assert_mem_eq(b.data, "hello world", 11);
	ck_assert_uint_ge(b.cap, b.len);
	buf_free(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(test_buf_growth_geometric)
{
	struct buf b = BUF_INIT;
	size_t reallocs = 0, last_cap = 0;
	for (int i = 0; i < 1000000; i++) {
		buf_append_byte(&b, (uint8_t)i);
		if (b.cap != last_cap) {
			reallocs++;
			last_cap = b.cap;
		}
	}
	ck_assert_uint_eq(b.len, 1000000);
	/* Doubling: about log2(1e6 / 64) ~ 14 reallocations, not thousands. */
	ck_assert_uint_le(reallocs, 20);
	for (int i = 0; i < 1000000; i += 9973)
		ck_assert_uint_eq(b.data[i], (uint8_t)i);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_reserve)
{
	struct buf b = BUF_INIT;
	uint8_t *p = buf_reserve(&b, 100);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(b.cap, 100);
	ck_assert_uint_eq(b.len, 0);
	memcpy(p, "abc", 3);
	b.len += 3;
	p = buf_reserve(&b, 10);
	ck_assert_ptr_eq(p, b.data + 3);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_printf)
{
	struct buf b = BUF_INIT;
	buf_printf(&b, "%d-%s", 42, "x");
	ck_assert_uint_eq(b.len, 4);
	ck_assert_mem_eq(b.data, "42-x", 4);
	/* Longer than any spare room: the second vsnprintf path. */
	char big[5000];
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	buf_printf(&b, "[%s]", big);
	ck_assert_uint_eq(b.len, 4 + 2 + 4999);
	ck_assert_uint_eq(b.data[4], '[');
	ck_assert_uint_eq(b.data[b.len - 1], ']');
	ck_assert_uint_eq(b.data[b.len - 2], 'z');
	buf_printf(&b, "%s", "");
	ck_assert_uint_eq(b.len, 4 + 2 + 4999);
	buf_free(&b);
}
END_TEST

START_TEST(test_buf_consume_reset_steal)
{
	struct buf b = BUF_INIT;
	buf_append(&b, "0123456789", 10);
	buf_consume(&b, 3);
	ck_assert_uint_eq(b.len, 7);
	ck_assert_mem_eq(b.data, "3456789", 7);
	buf_consume(&b, 100);
	ck_assert_uint_eq(b.len, 0);
	buf_append(&b, "abc", 3);
	buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_gt(b.cap, 0);
	buf_append(&b, "xyz", 3);
	size_t n = 0;
	uint8_t *p = buf_steal(&b, &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(p, "xyz", 3);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	free(p);
	/* The buffer is reusable after steal. */
	buf_append(&b, "q", 1);
	ck_assert_uint_eq(b.len, 1);
	buf_free(&b);
	buf_free(&b);
}
END_TEST

START_TEST(test_util_alloc)
{
	char *s = xstrdup("shoal");
	ck_assert_str_eq(s, "shoal");
	free(s);
	s = xstrndup("shoal", 3);
	ck_assert_str_eq(s, "sho");
	free(s);
	s = xstrndup("ab", 10);
	ck_assert_str_eq(s, "ab");
	free(s);
	int *z = xcalloc(10, sizeof(int));
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(z[i], 0);
	z = xrealloc(z, 1000 * sizeof(int));
	z[999] = 7;
	free(z);
	free(xmalloc(0));
	free(xcalloc(0, 0));
}
END_TEST

START_TEST(test_util_clocks)
{
	uint64_t w = wall_ms();
	/* After 2020-01-01 and before 2100. */
	ck_assert_uint_gt(w, 1577836800000ull);
	ck_assert_uint_lt(w, 4102444800000ull);
	uint64_t a = mono_us();
	uint64_t b = mono_us();
	ck_assert_uint_ge(b, a);
}
END_TEST

static void test_util_oom_fn(void)
{
	/* Larger than any address space: must abort with a message, never return NULL. */
	void *p = xmalloc(SIZE_MAX - 4096);
	ck_abort_msg("xmalloc returned %p", p);
}

START_TEST(test_util_oom_aborts)
{
	test_util_oom_fn();
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("buf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_buf_append);
	tcase_add_test(tc, test_buf_growth_geometric);
	tcase_add_test(tc, test_buf_reserve);
	tcase_add_test(tc, test_buf_printf);
	tcase_add_test(tc, test_buf_consume_reset_steal);
	tcase_add_test(tc, test_util_alloc);
	tcase_add_test(tc, test_util_clocks);
#if !TEST_BUF_ASAN
	/* ASan reports an impossible size itself instead of letting malloc return NULL. */
	tcase_add_test_raise_signal(tc, test_util_oom_aborts, SIGABRT);
#else
	(void)test_util_oom_aborts;
#endif
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
