/* addr.h: HOST:PORT parsing ("127.0.0.1:7411", "[::1]:7411", "host", ":7411"). */
#ifndef SHOAL_ADDR_H
#define SHOAL_ADDR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SHOAL_DEFAULT_PORT 7411
/* The master's --http endpoint. */
#define SHOAL_DEFAULT_HTTP_PORT 7412

/* Splits `s` into host and port. A missing host becomes "127.0.0.1", a missing port
 * `default_port`. Returns 0, or -1 with a reason in err (e.g. "port 99999 out of range"). */
int addr_parse(const char *s, uint16_t default_port, char *host, size_t hostlen, uint16_t *port,
               char *err, size_t errlen);

/* The IP (no brackets) and port of an AF_INET/AF_INET6 address. Returns 0, or -1 (ip "?",
 * port 0) for another family. */
int addr_ip_port(const struct sockaddr_storage *ss, char *ip, size_t iplen, uint16_t *port);

/* "IP:PORT", or "[IP]:PORT" for IPv6, as logs and errors name a peer; "?" if unknown. */
void addr_format(const struct sockaddr_storage *ss, char *out, size_t len);

/* True for 127.0.0.0/8, ::1 and "localhost". */
int addr_is_loopback(const char *host);

#endif
