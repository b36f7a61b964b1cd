/* test_cli.c: the socket-free pieces of the `shoal` CLI: number, size, range and KEY=VALUE
 * parsing, the JSON writer's escaping and commas, and the progress line's formatting. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "parse.h"
#include "progress.h"
#include "table.h"

static char err[256];

START_TEST(test_i64)
{
	static const struct {
		const char *s;
		int64_t v;
	} ok[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"+7", 7},
	    {"-42", -42},
	    {"007", 7},
	    {"9223372036854775807", INT64_MAX},
	    {"-9223372036854775808", INT64_MIN},
	};
	static const char *const bad[] = {
	    "",
	    " 1",
	    "1 ",
	    "1x",
	    "x",
	    "-",
	    "+",
	    "--1",
	    "1.5",
	    "0x10",
	    "1e3",
	    "9223372036854775808",
	    "-9223372036854775809",
	    "99999999999999999999",
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_i64(ok[i].s, INT64_MIN, INT64_MAX, &v, err, sizeof(err)) == 0,
		              "%s: %s", ok[i].s, err);
		ck_assert(v == ok[i].v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		v = 12345;
		ck_assert_msg(parse_i64(bad[i], INT64_MIN, INT64_MAX, &v, err, sizeof(err)) < 0,
		              "'%s' accepted", bad[i]);
		ck_assert(v == 12345); /* out-param untouched on failure */
		ck_assert(err[0] != '\0');
	}
	/* Caller bounds. */
	ck_assert_int_eq(parse_i64("2147483647", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_i64("2147483648", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_i64("-2147483649", INT32_MIN, INT32_MAX, &v, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_u64)
{
	uint64_t v;

	ck_assert_int_eq(parse_u64("0", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert(v == 0);
	ck_assert_int_eq(parse_u64("18446744073709551615", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert(v == UINT64_MAX);
	ck_assert_int_lt(parse_u64("18446744073709551616", UINT64_MAX, &v, err, sizeof(err)), 0);
	/* strtoull would wrap "-1" to UINT64_MAX */
	ck_assert_int_lt(parse_u64("-1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("+1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64(" 1", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("1 ", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("", UINT64_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(parse_u64("4294967295", UINT32_MAX, &v, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_u64("4294967296", UINT32_MAX, &v, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} ok[] = {
	    {"0", 0},
	    {"1", 1},
	    {"512B", 512},
	    {"512b", 512},
	    {"1K", 1024},
	    {"1k", 1024},
	    {"64KB", 64 << 10},
	    {"64KiB", 64 << 10},
	    {"64kib", 64 << 10},
	    {"3M", 3u << 20},
	    {"2G", 2ull << 30},
	    {"5T", 5ull << 40},
	    {"18446744073709551615", UINT64_MAX},
	    {"16777215T", 16777215ull << 40},
	};
	static const char *const bad[] = {
	    "",
	    "K",
	    "-1",
	    "+1",
	    " 1",
	    "1 ",
	    "1.5M",
	    "1Ki",
	    "1KX",
	    "1X",
	    "1BB",
	    "1MBs",
	    "0x10",
	    "16777216T",
	    "18446744073709551616",
	    "99999999999999999999K",
	};
	uint64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(parse_size(ok[i].s, &v, err, sizeof(err)) == 0, "%s: %s", ok[i].s,
		              err);
		ck_assert_msg(v == ok[i].v, "%s", ok[i].s);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse_size(bad[i], &v, err, sizeof(err)) < 0, "'%s' accepted",
		              bad[i]);
}
END_TEST

START_TEST(test_range)
{
	int64_t lo = 99, hi = 99;

	ck_assert_int_eq(parse_range("0:10", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 0 && hi == 10);
	ck_assert_int_eq(parse_range("-10:-5", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == -10 && hi == -5);
	ck_assert_int_eq(parse_range("5:5", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 5 && hi == 5);
	ck_assert_int_eq(
	    parse_range("-9223372036854775808:9223372036854775807", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == INT64_MIN && hi == INT64_MAX);
	ck_assert_int_eq(
	    parse_range("00000000000000000000000000000000001:2", &lo, &hi, err, sizeof(err)), 0);
	ck_assert(lo == 1 && hi == 2);

	lo = hi = 99;
	static const char *const bad[] = {
	    "",
	    ":",
	    "1:",
	    ":1",
	    "1",
	    "1:2:3",
	    "a:b",
	    "1 :2",
	    "1: 2",
	    "10:5",
	    "0:9223372036854775808",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_range(bad[i], &lo, &hi, err, sizeof(err)) < 0, "'%s' accepted",
		              bad[i]);
		ck_assert(lo == 99 && hi == 99);
	}
	ck_assert(strstr((parse_range("10:5", &lo, &hi, err, sizeof(err)), err), "greater"));
}
END_TEST

START_TEST(test_kv)
{
	size_t n;

	ck_assert_int_eq(parse_kv("pattern=foo", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 7);
	ck_assert_int_eq(parse_kv("k=", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(parse_kv("k=a=b", &n, err, sizeof(err)), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_lt(parse_kv("=v", &n, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_kv("novalue", &n, err, sizeof(err)), 0);
	ck_assert_int_lt(parse_kv("", &n, err, sizeof(err)), 0);
}
END_TEST

/* json_escape of len bytes, as a NUL-terminated string (caller frees). */
static char *esc(const char *s, size_t len)
{
	struct buf b = BUF_INIT;
	size_t n;
	char *out;

	json_escape(&b, s, len);
	buf_append_byte(&b, 0);
	out = (char *)buf_steal(&b, &n);
	return out;
}

START_TEST(test_json_escape)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"", 0, "\"\""},
	    {"plain", 5, "\"plain\""},
	    {"a\"b\\c", 5, "\"a\\\"b\\\\c\""},
	    {"\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\""},
	    {"\x01\x1f", 2, "\"\\u0001\\u001f\""},
	    {"nul\0x", 5, "\"nul\\u0000x\""},
	    {"/\x7f", 2, "\"/\x7f\""},
	    /* valid UTF-8 passes through: é, €, 𝄞 */
	    {"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e\""},
	    /* invalid: lone continuation, truncated, overlong, surrogate, > U+10FFFF */
	    {"\x80", 1, "\"\\ufffd\""},
	    {"a\xc3", 2, "\"a\\ufffd\""},
	    {"\xc0\xaf", 2, "\"\\ufffd\\ufffd\""},
	    {"\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\""},
	    {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},
	    {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""},
	    {"\xff", 1, "\"\\ufffd\""},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = esc(cases[i].in, cases[i].len);
		ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu: got %s", i, got);
		free(got);
	}
}
END_TEST

static char *doc(struct json *j)
{
	char *s = malloc(j->out.len + 1);
	memcpy(s, j->out.data, j->out.len);
	s[j->out.len] = '\0';
	json_deinit(j);
	return s;
}

START_TEST(test_json_writer)
{
	struct json j;
	char *s;

	json_init(&j);
	json_array_begin(&j);
	json_array_end(&j);
	s = doc(&j);
	ck_assert_str_eq(s, "[]");
	free(s);

	json_init(&j);
	json_object_begin(&j);
	json_key(&j, "job_id");
	json_u64(&j, UINT64_MAX);
	json_key(&j, "p");
	json_i64(&j, INT64_MIN);
	json_key(&j, "ok");
	json_bool(&j, true);
	json_key(&j, "no");
	json_bool(&j, false);
	json_key(&j, "n");
	json_null(&j);
	json_key(&j, "a");
	json_array_begin(&j);
	json_object_begin(&j);
	json_object_end(&j);
	json_object_begin(&j);
	json_key(&j, "k\"");
	json_string(&j, "v\n");
	json_object_end(&j);
	json_array_end(&j);
	json_key(&j, "last");
	json_string(&j, "");
	json_object_end(&j);
	s = doc(&j);
	ck_assert_str_eq(s, "{\"job_id\":18446744073709551615,\"p\":-9223372036854775808,"
	                    "\"ok\":true,\"no\":false,\"n\":null,\"a\":[{},{\"k\\\"\":\"v\\n\"}],"
	                    "\"last\":\"\"}");
	free(s);
}
END_TEST

START_TEST(test_progress_fmt)
{
	char s[160];

	progress_fmt_thousands(0, s, sizeof(s));
	ck_assert_str_eq(s, "0");
	progress_fmt_thousands(999, s, sizeof(s));
	ck_assert_str_eq(s, "999");
	progress_fmt_thousands(1000, s, sizeof(s));
	ck_assert_str_eq(s, "1,000");
	progress_fmt_thousands(4321, s, sizeof(s));
	ck_assert_str_eq(s, "4,321");
	progress_fmt_thousands(1234567, s, sizeof(s));
	ck_assert_str_eq(s, "1,234,567");
	progress_fmt_thousands(UINT64_MAX, s, sizeof(s));
	ck_assert_str_eq(s, "18,446,744,073,709,551,615");

	progress_fmt_duration(0, s, sizeof(s));
	ck_assert_str_eq(s, "0:00");
	progress_fmt_duration(12, s, sizeof(s));
	ck_assert_str_eq(s, "0:12");
	progress_fmt_duration(754, s, sizeof(s));
	ck_assert_str_eq(s, "12:34");
	progress_fmt_duration(3723, s, sizeof(s));
	ck_assert_str_eq(s, "1:02:03");

	progress_fmt_line("running", 123, 1000, 4321, s, sizeof(s));
	ck_assert_str_eq(s, "[##..................] 123/1000 tasks  4,321 tasks/s  ETA 0:00");
	progress_fmt_line("running", 500, 1000, 50, s, sizeof(s));
	ck_assert_str_eq(s, "[##########..........] 500/1000 tasks  50 tasks/s  ETA 0:10");
	progress_fmt_line("running", 1000, 1000, 50, s, sizeof(s));
	ck_assert_str_eq(s, "[####################] 1000/1000 tasks  50 tasks/s  ETA 0:00");
	progress_fmt_line("running", 3, 10, 0, s, sizeof(s));
	ck_assert_str_eq(s, "[######..............] 3/10 tasks  running");
	progress_fmt_line("queued", 0, 0, 0, s, sizeof(s));
	ck_assert_str_eq(s, "[....................] queued");
	/* done > total (a confused master) does not overflow the bar */
	progress_fmt_line("running", 20, 10, 1, s, sizeof(s));
	ck_assert_str_eq(s, "[####################] 10/10 tasks  1 tasks/s  ETA 0:00");
}
END_TEST

START_TEST(test_table)
{
	static const bool right[] = {true, false, false};
	static const char *const r1[] = {"ID", "STATE", "NAME"};
	static const char *const r2[] = {"7", "succeeded", "x"};
	static const char *const r3[] = {"123", "failed", ""};
	struct table t;
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	table_init(&t, 3, right);
	table_add(&t, r1);
	table_add(&t, r2);
	table_add(&t, r3);
	table_print(&t, f);
	table_deinit(&t);
	fclose(f);
	ck_assert_str_eq(out, " ID  STATE      NAME\n"
	                      "  7  succeeded  x\n"
	                      "123  failed\n");
	free(out);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_i64);
	tcase_add_test(tc, test_u64);
	tcase_add_test(tc, test_size);
	tcase_add_test(tc, test_range);
	tcase_add_test(tc, test_kv);
	tcase_add_test(tc, test_json_escape);
	tcase_add_test(tc, test_json_writer);
	tcase_add_test(tc, test_progress_fmt);
	tcase_add_test(tc, test_table);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
