/* slow_square.c: a plugin for test_chaos (shoal_plugin.h). Each partition's records are
 * non-negative decimal integers below 2^31; the partial result is their squares, one per line,
 * in order. With --arg delay_ms=N each partition first sleeps N ms (at most 10000): its task
 * then takes wall time without taking CPU, so that a job of thousands of tasks lasts long
 * enough for workers to be killed under it on a small machine. No combine: the job's result is
 * the partials in partition order. No global state (map runs on many threads at once). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "shoal_plugin.h"

#define SLOW_MAX_DELAY_MS 10000u

static int slow_delay_ms(const struct shoal_plugin_args *args, unsigned *ms, char *err,
                         size_t errlen)
{
	*ms = 0;
	for (size_t i = 0; i < args->n; i++) {
		if (strcmp(args->keys[i], "delay_ms") != 0) {
			snprintf(err, errlen, "unknown --arg %s (slow_square takes delay_ms)",
			         args->keys[i]);
			return -1;
		}
		const char *v = args->values[i];
		unsigned n = 0;
		size_t k = 0;
		for (; v[k] >= '0' && v[k] <= '9' && n <= SLOW_MAX_DELAY_MS; k++)
			n = n * 10 + (unsigned)(v[k] - '0');
		if (k == 0 || v[k] != '\0' || n > SLOW_MAX_DELAY_MS) {
			snprintf(err, errlen, "delay_ms=%s: expected 0 to %u", v,
			         SLOW_MAX_DELAY_MS);
			return -1;
		}
		*ms = n;
	}
	return 0;
}

static int slow_map(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
                    const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	unsigned ms;
	if (slow_delay_ms(args, &ms, err, errlen) < 0)
		return -1;
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	size_t i = 0;
	while (i < len) {
		uint64_t v = 0;
		size_t start = i;
		while (i < len && data[i] >= '0' && data[i] <= '9' && v < (1u << 31))
			v = v * 10 + (uint64_t)(data[i++] - '0');
		if (i == start || v >= (1u << 31) || (i < len && data[i] != '\n')) {
			snprintf(err, errlen,
			         "record at byte %zu is not an integer from 0 to 2^31-1", start);
			return -1;
		}
		i++; /* the '\n' (or the end) */
		char line[32];
		int n = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)(v * v));
		if (out->write(out->ctx, line, (size_t)n) < 0) {
			snprintf(err, errlen, "cannot write the result");
			return -1;
		}
	}
	return 0;
}

static const struct shoal_plugin slow_square = {
    .abi_version = SHOAL_PLUGIN_ABI_VERSION,
    .name = "slow_square",
    .map = slow_map,
};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &slow_square;
}
