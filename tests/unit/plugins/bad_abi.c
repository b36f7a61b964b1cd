/* bad_abi.c: a plugin from a future shoal (ABI version 7) that plugin_load must refuse. */
#include <stddef.h>

#include "shoal_plugin.h"

static int bad_map(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
                   const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	return out->write(out->ctx, data, len);
}

static const struct shoal_plugin bad_plugin = {.abi_version = 7, .name = "bad_abi", .map = bad_map};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &bad_plugin;
}
