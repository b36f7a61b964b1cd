/* no_map.c: a plugin of the right ABI version without a map function. */
#include <stddef.h>

#include "shoal_plugin.h"

static const struct shoal_plugin no_map_plugin = {
    .abi_version = SHOAL_PLUGIN_ABI_VERSION, .name = "no_map", .map = NULL};

const struct shoal_plugin *shoal_plugin_v1(void)
{
	return &no_map_plugin;
}
