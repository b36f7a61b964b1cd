/* connect_rate: how many connections per second a master accepts, handshake included.
 *
 * Runs N sequential shoal_connect + shoal_close pairs (a TCP connection, the TLS handshake when
 * TLS is configured, the Hello/Welcome exchange, and the close) and prints key=value lines:
 * connections, seconds, per_s, mean_ms. TLS files and the master come from the environment as
 * for the shoal tool (SHOAL_MASTER, SHOAL_TLS_CA, SHOAL_TLS_CERT, SHOAL_TLS_KEY).
 *
 * Usage: connect_rate [--master HOST:PORT] [-n CONNECTIONS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shoal.h"

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *master = NULL;
	long n = 1000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--master") && i + 1 < argc) {
			master = argv[++i];
		} else if (!strcmp(argv[i], "-n") && i + 1 < argc) {
			char *end;
			n = strtol(argv[++i], &end, 10);
			if (*end || n < 1) {
				fprintf(stderr, "connect_rate: -n wants a positive number\n");
				return 2;
			}
		} else {
			fprintf(stderr,
			        "usage: connect_rate [--master HOST:PORT] [-n CONNECTIONS]\n");
			return 2;
		}
	}
	struct shoal_connect_options opt = {.master = master};
	char err[1024];
	double t0 = now_s();
	for (long i = 0; i < n; i++) {
		shoal_client *c = NULL;
		int rc = shoal_connect(&opt, &c, err, sizeof(err));
		if (rc != SHOAL_OK) {
			fprintf(stderr, "connect_rate: connection %ld: %s\n", i + 1, err);
			return 3;
		}
		shoal_close(&c);
	}
	double secs = now_s() - t0;
	printf("connections=%ld\nseconds=%.3f\nper_s=%.1f\nmean_ms=%.3f\n", n, secs,
	       (double)n / secs, secs * 1e3 / (double)n);
	return 0;
}
