/* map_only.c: a plugin with map alone (no combine, no finalize): its partials are
 * concatenated. map upper-cases ASCII letters. */
#include <stddef.h>

#include "shoal_plugin.h"

static int upper_map(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
                     const struct shoal_plugin_out *out, char *err, size_t errlen)
{
	(void)args;
	(void)err;
	(void)errlen;
	for (size_t i = 0; i < len; i++) {
		char c = (char)data[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (out->write(out->ctx, &c, 1) < 0)
			return -1;
	}
	return 0;
}

static const struct shoal_plugin upper_plugin = {
    .abi_version = SHOAL_PLUGIN_ABI_VERSION, .name = "upper", .map = upper_map};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &upper_plugin;
}
