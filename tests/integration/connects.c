/* connects: one process that connects to the master many times, from several threads, with
 * libshoal (master and TLS files from the environment, as for the shoal tool). test_tls uses
 * it to check that a TLS configuration is shared by every connect of a process, from any
 * thread, and read again once its files change.
 *
 * Reads commands on stdin, one per line, and answers each with one line on stdout:
 *   connect THREADS N   THREADS threads each connect and close N times: "ok", or
 *                       "fail <count> <first error>"
 * It ends at end of input. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

#define CONNECTS_MAX_THREADS 16

struct worker {
	pthread_t tid;
	long n;
	long failed;
	char err[1024];
};

static void *connect_loop(void *arg)
{
	struct worker *w = arg;
	for (long i = 0; i < w->n; i++) {
		shoal_client *c = NULL;
		char err[1024];
		if (shoal_connect(NULL, &c, err, sizeof(err)) != SHOAL_OK) {
			if (w->failed++ == 0)
				snprintf(w->err, sizeof(w->err), "%s", err);
			continue;
		}
		shoal_close(&c);
	}
	return NULL;
}

static void run(int threads, long n)
{
	struct worker w[CONNECTS_MAX_THREADS];
	memset(w, 0, sizeof(w));
	int started = 0;
	for (; started < threads; started++) {
		w[started].n = n;
		if (pthread_create(&w[started].tid, NULL, connect_loop, &w[started]) != 0) {
			w[started].failed = n;
			snprintf(w[started].err, sizeof(w[started].err), "cannot start a thread");
			break;
		}
	}
	long failed = 0;
	const char *first = NULL;
	for (int i = 0; i < threads; i++) {
		if (i < started)
			pthread_join(w[i].tid, NULL);
		failed += w[i].failed;
		if (w[i].failed && !first)
			first = w[i].err;
	}
	if (failed)
		printf("fail %ld %s\n", failed, first);
	else
		printf("ok\n");
	fflush(stdout);
}

int main(void)
{
	char line[256];
	while (fgets(line, sizeof(line), stdin)) {
		int threads;
		long n;
		if (sscanf(line, "connect %d %ld", &threads, &n) == 2 && threads >= 1 &&
		    threads <= CONNECTS_MAX_THREADS && n >= 1) {
			run(threads, n);
		} else {
			printf("usage: connect THREADS(1-%d) N\n", CONNECTS_MAX_THREADS);
			fflush(stdout);
		}
	}
	return 0;
}
