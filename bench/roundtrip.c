/* roundtrip: latency of single-job round trips through libshoal.
 *
 * Connects once, then runs N sequential one-record `count` jobs (--range 0:1, one partition):
 * each round trip is shoal_submit + shoal_wait + shoal_result, timed with CLOCK_MONOTONIC from
 * before the submit until the result has been read (and checked to be "1\n"). Warm-up jobs run
 * first and are not counted. Prints machine-readable `key=value` lines on stdout, one figure per
 * line: jobs, p50_ms, p90_ms, p99_ms, mean_ms, min_ms, max_ms, jobs_per_s (percentiles are
 * nearest-rank).
 *
 * Usage: roundtrip [--master HOST:PORT] [-n JOBS] [--warmup JOBS] [--raw FILE]
 * (--master defaults to $SHOAL_MASTER; --raw writes every sample in ms, one per line). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shoal.h"

struct result_buf {
	char data[64];
	size_t len;
};

static int on_result(const void *data, size_t len, void *arg)
{
	struct result_buf *r = arg;
	if (len > sizeof r->data - r->len)
		return 1;
	memcpy(r->data + r->len, data, len);
	r->len += len;
	return 0;
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n-1]. */
static double percentile(const double *v, size_t n, double p)
{
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

static int one_job(shoal_client *c, const struct shoal_job_spec *spec, double *ms)
{
	struct result_buf r = {.len = 0};
	struct shoal_job_info info;
	uint64_t id;
	double t0 = now_ms();
	int rc = shoal_submit(c, spec, &id);
	if (rc == SHOAL_OK)
		rc = shoal_wait(c, id, NULL, NULL, &info);
	if (rc == SHOAL_OK)
		rc = shoal_result(c, id, on_result, &r);
	double t1 = now_ms();
	if (rc != SHOAL_OK) {
		fprintf(stderr, "roundtrip: job failed: %s\n", shoal_errmsg(c));
		return rc;
	}
	if (r.len != 2 || memcmp(r.data, "1\n", 2) != 0) {
		fprintf(stderr, "roundtrip: unexpected result '%.*s'\n", (int)r.len, r.data);
		return SHOAL_EJOB;
	}
	*ms = t1 - t0;
	return SHOAL_OK;
}

static long parse_count(const char *s, const char *what)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 100000000) {
		fprintf(stderr, "roundtrip: bad %s: %s\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	const char *master = NULL, *raw = NULL;
	long n = 1000, warmup = 50;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--master") == 0 && i + 1 < argc)
			master = argv[++i];
		else if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
			n = parse_count(argv[++i], "-n");
		else if (strcmp(argv[i], "--warmup") == 0 && i + 1 < argc)
			warmup = parse_count(argv[++i], "--warmup");
		else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc)
			raw = argv[++i];
		else {
			fprintf(stderr, "usage: roundtrip [--master HOST:PORT] [-n JOBS] "
			                "[--warmup JOBS] [--raw FILE]\n");
			return 2;
		}
	}
	if (n < 1) {
		fprintf(stderr, "roundtrip: -n must be at least 1\n");
		return 2;
	}

	struct shoal_connect_options opt = {.master = master, .timeout_ms = 5000};
	shoal_client *c = NULL;
	char err[512];
	int rc = shoal_connect(&opt, &c, err, sizeof err);
	if (rc != SHOAL_OK) {
		fprintf(stderr, "roundtrip: %s\n", err);
		return rc;
	}

	struct shoal_job_spec spec;
	shoal_job_spec_init(&spec);
	spec.op = "count";
	spec.input = SHOAL_INPUT_RANGE;
	spec.lo = 0;
	spec.hi = 1;
	spec.partitions = 1;

	double *v = malloc((size_t)n * sizeof *v);
	if (!v) {
		fprintf(stderr, "roundtrip: out of memory\n");
		shoal_close(&c);
		return 1;
	}
	double ms;
	for (long i = 0; i < warmup; i++)
		if ((rc = one_job(c, &spec, &ms)) != SHOAL_OK)
			goto out;
	double t0 = now_ms();
	for (long i = 0; i < n; i++)
		if ((rc = one_job(c, &spec, &v[i])) != SHOAL_OK)
			goto out;
	double wall = now_ms() - t0;

	if (raw) {
		FILE *f = fopen(raw, "w");
		if (f) {
			for (long i = 0; i < n; i++)
				fprintf(f, "%.4f\n", v[i]);
			fclose(f);
		}
	}
	double sum = 0;
	for (long i = 0; i < n; i++)
		sum += v[i];
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	printf("jobs=%ld\n", n);
	printf("p50_ms=%.3f\n", percentile(v, (size_t)n, 50));
	printf("p90_ms=%.3f\n", percentile(v, (size_t)n, 90));
	printf("p99_ms=%.3f\n", percentile(v, (size_t)n, 99));
	printf("mean_ms=%.3f\n", sum / (double)n);
	printf("min_ms=%.3f\n", v[0]);
	printf("max_ms=%.3f\n", v[n - 1]);
	printf("jobs_per_s=%.0f\n", (double)n / (wall / 1e3));
out:
	free(v);
	shoal_close(&c);
	return rc;
}
