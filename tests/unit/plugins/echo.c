/* echo.c: a plugin that shows what the loader hands it, for test_plugin.
 *   map       writes "KEY=VALUE\n" for each arg, then the data; data starting with "fail"
 *             writes part of an output and then fails with a reason ("failquiet": without)
 *   combine   writes acc "|" part
 *   finalize  writes "[" acc "]" */
#include <stdio.h>
#include <string.h>

#include "shoal_plugin.h"

static int echo_map(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
                    const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	for (size_t i = 0; i < args->n; i++) {
		char line[256];
		int n = snprintf(line, sizeof(line), "%s=%s\n", args->keys[i], args->values[i]);
		if (out->write(out->ctx, line, (size_t)n) < 0)
			return -1;
	}
	if (len >= 4 && memcmp(data, "fail", 4) == 0) {
		out->write(out->ctx, "half", 4);
		if (len >= 9 && memcmp(data, "failquiet", 9) == 0)
			return -1;
		snprintf(err, errlen, "asked to fail after %zu bytes", len);
		return -1;
	}
	/* A NULL pointer with bytes is refused; with none it is fine. */
	if (out->write(out->ctx, NULL, 1) == 0 || out->write(out->ctx, NULL, 0) != 0)
		return -1;
	return out->write(out->ctx, data, len);
}

static int echo_combine(const uint8_t *acc, size_t acc_len, const uint8_t *part, size_t part_len,
                        const struct shoal_plugin_args *args, const struct shoal_plugin_out *out,
                        char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	if (out->write(out->ctx, acc, acc_len) < 0 || out->write(out->ctx, "|", 1) < 0)
		return -1;
	return out->write(out->ctx, part, part_len);
}

static int echo_finalize(const uint8_t *acc, size_t acc_len, const struct shoal_plugin_args *args,
                         const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	if (out->write(out->ctx, "[", 1) < 0 || out->write(out->ctx, acc, acc_len) < 0)
		return -1;
	return out->write(out->ctx, "]", 1);
}

static const struct shoal_plugin echo_plugin = {
    .abi_version = SHOAL_PLUGIN_ABI_VERSION,
    .name = "echo",
    .map = echo_map,
    .combine = echo_combine,
    .finalize = echo_finalize,
};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &echo_plugin;
}
