/* addr.c: HOST:PORT parsing for flags and config files. */
#include "addr.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define ADDR_DEFAULT_HOST "127.0.0.1"

/* Parses the decimal port in [p, p+n): digits only (no sign, no spaces), 0..65535. Port 0 is
 * allowed because listeners use it to ask for an ephemeral port. */
static int addr_parse_port(const char *p, size_t n, uint16_t *out, char *err, size_t errlen)
{
	if (n == 0)
		return errorf(err, errlen, "missing port after ':'");
	unsigned long v = 0;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return errorf(err, errlen, "port '%.*s' is not a number", (int)n, p);
		/* Saturate instead of overflowing so a long digit run still reports its text. */
		if (v <= 65535)
			v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v > 65535)
		return errorf(err, errlen, "port %.*s out of range (0-65535)", (int)n, p);
	*out = (uint16_t)v;
	return 0;
}

static int addr_copy_host(const char *h, size_t n, char *host, size_t hostlen, char *err,
                          size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (isspace((unsigned char)h[i]) || h[i] == '[' || h[i] == ']')
			return errorf(err, errlen, "invalid character in host '%.*s'", (int)n, h);
	}
	if (n + 1 > hostlen)
		return errorf(err, errlen, "host too long (%zu bytes)", n);
	memcpy(host, h, n);
	host[n] = '\0';
	return 0;
}

int addr_parse(const char *s, uint16_t default_port, char *host, size_t hostlen, uint16_t *port,
               char *err, size_t errlen)
{
	const char *h;
	size_t hn;
	uint16_t p = default_port;

	if (s == NULL || *s == '\0')
		return errorf(err, errlen, "empty address");

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL)
			return errorf(err, errlen, "missing ']' in '%s'", s);
		h = s + 1;
		hn = (size_t)(close - h);
		if (hn == 0)
			return errorf(err, errlen, "empty host in '[]'");
		if (close[1] == ':') {
			if (addr_parse_port(close + 2, strlen(close + 2), &p, err, errlen) < 0)
				return -1;
		} else if (close[1] != '\0') {
			return errorf(err, errlen, "unexpected '%s' after ']'", close + 1);
		}
	} else {
		const char *colon = strchr(s, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			/* Several colons: only a bare IPv6 address makes sense (no port). */
			struct in6_addr a6;
			if (inet_pton(AF_INET6, s, &a6) != 1)
				return errorf(err, errlen,
				              "'%s': write IPv6 addresses as [ADDR]:PORT", s);
			h = s;
			hn = strlen(s);
		} else if (colon != NULL) {
			h = s;
			hn = (size_t)(colon - s);
			if (addr_parse_port(colon + 1, strlen(colon + 1), &p, err, errlen) < 0)
				return -1;
		} else {
			h = s;
			hn = strlen(s);
		}
	}

	if (hn == 0) {
		h = ADDR_DEFAULT_HOST;
		hn = strlen(h);
	}
	if (addr_copy_host(h, hn, host, hostlen, err, errlen) < 0)
		return -1;
	*port = p;
	return 0;
}

int addr_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (host == NULL)
		return 0;
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		if (IN6_IS_ADDR_LOOPBACK(&a6))
			return 1;
		/* ::ffff:127.x.y.z is the same loopback seen through a dual-stack socket. */
		return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
	}
	return 0;
}

int addr_ip_port(const struct sockaddr_storage *ss, char *ip, size_t iplen, uint16_t *port)
{
	const void *raw;
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		raw = &in->sin_addr;
		*port = ntohs(in->sin_port);
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		raw = &in6->sin6_addr;
		*port = ntohs(in6->sin6_port);
	} else {
		raw = NULL;
	}
	if (raw == NULL || inet_ntop(ss->ss_family, raw, ip, (socklen_t)iplen) == NULL) {
		snprintf(ip, iplen, "?");
		*port = 0;
		return -1;
	}
	return 0;
}

void addr_format(const struct sockaddr_storage *ss, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;
	if (addr_ip_port(ss, ip, sizeof(ip), &port) < 0)
		snprintf(out, len, "?");
	else if (ss->ss_family == AF_INET6)
		snprintf(out, len, "[%s]:%u", ip, port);
	else
		snprintf(out, len, "%s:%u", ip, port);
}
