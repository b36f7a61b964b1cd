/* test_num.c: num_parse_i128 against Python's int(text, 10), num_format_i128 against str(). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"

static int parse_str(const char *s, i128 *out)
{
	return num_parse_i128((const uint8_t *)s, strlen(s), out);
}

static const char *fmt(i128 v, char *tmp)
{
	size_t n = num_format_i128(v, tmp);
	tmp[n] = '\0';
	return tmp;
}

/* The slow obvious way, to check the fast one. */
static void ref_format(i128 v, char *out)
{
	char tmp[64];
	int n = 0;
	u128 m = v < 0 ? 0 - (u128)v : (u128)v;
	do {
		tmp[n++] = (char)('0' + (int)(m % 10));
		m /= 10;
	} while (m != 0);
	int k = 0;
	if (v < 0)
		out[k++] = '-';
	while (n > 0)
		out[k++] = tmp[--n];
	out[k] = '\0';
}

#define I128_MAX ((i128)(((u128)1 << 127) - 1))
#define I128_MIN ((i128)((u128)1 << 127))

START_TEST(test_parse_valid)
{
	static const struct {
		const char *text;
		long long value;
	} cases[] = {
	    {"0", 0},
	    {"-0", 0},
	    {"+0", 0},
	    {"00", 0},
	    {"007", 7},
	    {"12", 12},
	    {"+12", 12},
	    {"-12", -12},
	    {" 12 \r", 12},
	    {"\t\n\v\f\r 42\t\n\v\f\r ", 42},
	    {"1_000", 1000},
	    {"1_2_3", 123},
	    {"-1_0", -10},
	    {"0_0", 0},
	    {"9223372036854775807", 9223372036854775807LL},
	    {"-9223372036854775808", -9223372036854775807LL - 1},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		i128 v = 123456;
		ck_assert_msg(parse_str(cases[i].text, &v) == 0, "'%s' should parse",
		              cases[i].text);
		ck_assert_msg(v == (i128)cases[i].value, "'%s' parsed wrong", cases[i].text);
	}
}
END_TEST

START_TEST(test_parse_invalid)
{
	/* Python's int() also takes Unicode spaces and digits (NBSP, fullwidth and Arabic-Indic
	 * digits); records are bytes, and only ASCII counts here, by design. */
	static const char *const cases[] = {
	    "",         " ",   "+",   "-",   "1_",           "_1",    "1__2",         "+_1",
	    "-_1",      "_",   "+-1", "--1", "- 1",          "1 2",   "1.0",          "1e3",
	    "0x10",     "abc", "12a", "a12", "\xc2\xa0\x31", "1,000", "\xef\xbc\x91", "1\x01",
	    "\xd9\xa3",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		i128 v = 77;
		ck_assert_msg(parse_str(cases[i], &v) == -1, "'%s' should not parse", cases[i]);
		ck_assert_msg(v == 77, "'%s' changed the output on failure", cases[i]);
	}
	/* NUL is not whitespace. */
	static const uint8_t nul_after[] = {'1', 0}, nul_before[] = {0, '1'};
	i128 v;
	ck_assert_int_eq(num_parse_i128(nul_after, 2, &v), -1);
	ck_assert_int_eq(num_parse_i128(nul_before, 2, &v), -1);
	ck_assert_int_eq(num_parse_i128(NULL, 0, &v), -1);
}
END_TEST

START_TEST(test_parse_boundaries)
{
	i128 v;
	/* 2^127 - 1 parses, 2^127 does not; -2^127 parses, -2^127 - 1 does not. */
	ck_assert_int_eq(parse_str("170141183460469231731687303715884105727", &v), 0);
	ck_assert(v == I128_MAX);
	ck_assert_int_eq(parse_str("170141183460469231731687303715884105728", &v), -1);
	ck_assert_int_eq(parse_str("-170141183460469231731687303715884105728", &v), 0);
	ck_assert(v == I128_MIN);
	ck_assert_int_eq(parse_str("-170141183460469231731687303715884105729", &v), -1);
	ck_assert_int_eq(parse_str("+170_141_183_460_469_231_731_687_303_715_884_105_727", &v), 0);
	ck_assert(v == I128_MAX);
	ck_assert_int_eq(parse_str("1701411834604692317316873037158841057270", &v), -1);
	ck_assert_int_eq(parse_str("999999999999999999999999999999999999999", &v), -1);
	ck_assert_int_eq(parse_str("340282366920938463463374607431768211456", &v), -1);
	ck_assert_int_eq(parse_str("99999999999999999999999999999999999999999999999", &v), -1);
	/* Leading zeros do not count against the range. */
	ck_assert_int_eq(
	    parse_str("0000000000000000000000000000000170141183460469231731687303715884105727", &v),
	    0);
	ck_assert(v == I128_MAX);
	/* Around the 19-digit switch to 128-bit accumulation. */
	ck_assert_int_eq(parse_str("9999999999999999999", &v), 0);
	ck_assert(v == (i128)9999999999999999999u);
	ck_assert_int_eq(parse_str("18446744073709551616", &v), 0);
	ck_assert(v == (i128)((u128)1 << 64));
	ck_assert_int_eq(parse_str("-18446744073709551615", &v), 0);
	ck_assert(v == -(i128)UINT64_MAX);
}
END_TEST

START_TEST(test_format)
{
	char tmp[NUM_I128_MAXLEN + 1];
	ck_assert_str_eq(fmt(0, tmp), "0");
	ck_assert_str_eq(fmt(-1, tmp), "-1");
	ck_assert_str_eq(fmt(9, tmp), "9");
	ck_assert_str_eq(fmt(10, tmp), "10");
	ck_assert_str_eq(fmt(-100, tmp), "-100");
	ck_assert_str_eq(fmt((i128)UINT64_MAX, tmp), "18446744073709551615");
	ck_assert_str_eq(fmt((i128)UINT64_MAX + 1, tmp), "18446744073709551616");
	ck_assert_str_eq(fmt((i128)10000000000000000000u * 10, tmp), "100000000000000000000");
	ck_assert_str_eq(fmt(I128_MAX, tmp), "170141183460469231731687303715884105727");
	ck_assert_str_eq(fmt(I128_MIN, tmp), "-170141183460469231731687303715884105728");
	ck_assert_int_eq(num_format_i128(I128_MIN, tmp), NUM_I128_MAXLEN - 1);
}
END_TEST

static u128 rand_u128(void)
{
	u128 v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 16) | (u128)(random() & 0xffff);
	return v;
}

START_TEST(test_roundtrip_random)
{
	srandom(1234);
	char a[NUM_I128_MAXLEN + 1], b[64];
	for (int i = 0; i < 200000; i++) {
		/* Random magnitudes of every bit length. */
		int bits = (int)(random() % 129);
		u128 m = bits == 0 ? 0 : rand_u128() >> (128 - bits);
		i128 v = (i128)m;
		ref_format(v, b);
		ck_assert_str_eq(fmt(v, a), b);
		i128 back;
		ck_assert_int_eq(parse_str(a, &back), 0);
		ck_assert(back == v);
	}
}
END_TEST

static Suite *num_suite(void)
{
	Suite *s = suite_create("num");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_parse_valid);
	tcase_add_test(tc, test_parse_invalid);
	tcase_add_test(tc, test_parse_boundaries);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_roundtrip_random);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(num_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
