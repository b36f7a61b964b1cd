/* Unit tests for addr.c: HOST:PORT parsing and loopback detection. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"

struct addr_case {
	const char *in;
	const char *host;
	uint16_t port;
};

static const struct addr_case addr_good[] = {
    {"127.0.0.1:7411", "127.0.0.1", 7411},
    {"example.org:80", "example.org", 80},
    {"[::1]:9000", "::1", 9000},
    {"[fe80::1%eth0]:1", "fe80::1%eth0", 1},
    {"[::1]", "::1", 5555},
    {"myhost", "myhost", 5555},
    {":7412", "127.0.0.1", 7412},
    {"0.0.0.0:0", "0.0.0.0", 0},
    {"h:65535", "h", 65535},
    {"h:00080", "h", 80},
    {"::1", "::1", 5555},
    {"2001:db8::7", "2001:db8::7", 5555},
};

START_TEST(test_addr_good)
{
	const struct addr_case *c = &addr_good[_i];
	char host[256], err[128];
	uint16_t port = 1;
	err[0] = '\0';
	int rc = addr_parse(c->in, 5555, host, sizeof(host), &port, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s: %s", c->in, err);
	ck_assert_str_eq(host, c->host);
	ck_assert_uint_eq(port, c->port);
}
END_TEST

struct addr_bad_case {
	const char *in;
	const char *reason; /* substring of the error */
};

static const struct addr_bad_case addr_bad[] = {
    {"", "empty"},
    {"[]:80", "empty host"},
    {"[]", "empty host"},
    {"[::1", "missing ']'"},
    {"[::1]x", "after ']'"},
    {"[::1]:", "missing port"},
    {"host:", "missing port"},
    {"host:http", "not a number"},
    {"host:-1", "not a number"},
    {"host:+80", "not a number"},
    {"host: 80", "not a number"},
    {"host:80x", "not a number"},
    {"host:65536", "out of range"},
    {"host:99999", "port 99999 out of range"},
    {"host:99999999999999999999999", "out of range"},
    {"a:b:c", "IPv6"},
    {"::1:7411x", "IPv6"},
    {"ho st:1", "invalid character"},
};

START_TEST(test_addr_bad)
{
	const struct addr_bad_case *c = &addr_bad[_i];
	char host[256] = "untouched", err[128] = "";
	uint16_t port = 4321;
	int rc = addr_parse(c->in, 5555, host, sizeof(host), &port, err, sizeof(err));
	ck_assert_msg(rc == -1, "'%s' accepted as %s:%u", c->in, host, port);
	ck_assert_msg(strstr(err, c->reason) != NULL, "'%s': reason '%s' lacks '%s'", c->in, err,
	              c->reason);
	/* Out-params are set only on success. */
	ck_assert_str_eq(host, "untouched");
	ck_assert_uint_eq(port, 4321);
}
END_TEST

START_TEST(test_addr_host_too_long)
{
	char host[8], err[128] = "";
	uint16_t port;
	ck_assert_int_eq(addr_parse("abcdefgh:1", 1, host, sizeof(host), &port, err, sizeof(err)),
	                 -1);
	ck_assert_ptr_nonnull(strstr(err, "too long"));
	ck_assert_int_eq(addr_parse("abcdefg:1", 1, host, sizeof(host), &port, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(host, "abcdefg");
	/* A NULL err buffer is allowed. */
	ck_assert_int_eq(addr_parse("x:y", 1, host, sizeof(host), &port, NULL, 0), -1);
}
END_TEST

/* Logs and errors name peers as IP:PORT, IPv6 in brackets, and never print garbage for an
 * address family they do not know. */
START_TEST(test_addr_format)
{
	struct sockaddr_storage ss;
	char out[64], ip[64];
	uint16_t port;

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	in->sin_family = AF_INET;
	in->sin_port = htons(7411);
	ck_assert_int_eq(inet_pton(AF_INET, "10.77.1.2", &in->sin_addr), 1);
	addr_format(&ss, out, sizeof(out));
	ck_assert_str_eq(out, "10.77.1.2:7411");
	ck_assert_int_eq(addr_ip_port(&ss, ip, sizeof(ip), &port), 0);
	ck_assert_str_eq(ip, "10.77.1.2");
	ck_assert_uint_eq(port, 7411);

	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons(65535);
	ck_assert_int_eq(inet_pton(AF_INET6, "::1", &in6->sin6_addr), 1);
	addr_format(&ss, out, sizeof(out));
	ck_assert_str_eq(out, "[::1]:65535");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_UNIX;
	addr_format(&ss, out, sizeof(out));
	ck_assert_str_eq(out, "?");
	ck_assert_int_eq(addr_ip_port(&ss, ip, sizeof(ip), &port), -1);
	ck_assert_str_eq(ip, "?");
	ck_assert_uint_eq(port, 0);
}
END_TEST

START_TEST(test_addr_loopback)
{
	ck_assert(addr_is_loopback("127.0.0.1"));
	ck_assert(addr_is_loopback("127.1.2.3"));
	ck_assert(addr_is_loopback("::1"));
	ck_assert(addr_is_loopback("localhost"));
	ck_assert(addr_is_loopback("LocalHost"));
	ck_assert(addr_is_loopback("::ffff:127.0.0.1"));
	ck_assert(!addr_is_loopback("0.0.0.0"));
	ck_assert(!addr_is_loopback("128.0.0.1"));
	ck_assert(!addr_is_loopback("10.0.0.1"));
	ck_assert(!addr_is_loopback("::"));
	ck_assert(!addr_is_loopback("example.org"));
	ck_assert(!addr_is_loopback("localhost.evil.com"));
	ck_assert(!addr_is_loopback(""));
	ck_assert(!addr_is_loopback(NULL));
}
END_TEST

static Suite *addr_suite(void)
{
	Suite *s = suite_create("addr");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, test_addr_good, 0, (int)(sizeof(addr_good) / sizeof(addr_good[0])));
	tcase_add_loop_test(tc, test_addr_bad, 0, (int)(sizeof(addr_bad) / sizeof(addr_bad[0])));
	tcase_add_test(tc, test_addr_host_too_long);
	tcase_add_test(tc, test_addr_loopback);
	tcase_add_test(tc, test_addr_format);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(addr_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
