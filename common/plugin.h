/* plugin.h: loading a C plugin (shoal_plugin.h) and running its functions with shoal's
 * buffers. Used by the worker (map) and by the master (combine, finalize). */
#ifndef SHOAL_PLUGIN_LOADER_H
#define SHOAL_PLUGIN_LOADER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "shoal.pb-c.h"
#include "shoal_plugin.h"

struct plugin;

/* dlopens path, finds shoal_plugin_v1, checks the ABI version and that map is set. Returns an
 * owned plugin, or NULL with a reason ("plugin x.so: missing symbol shoal_plugin_v1",
 * "plugin x.so: ABI version 7, this shoal speaks 1"). */
struct plugin *plugin_load(const char *path, char *err, size_t errlen);
void plugin_unload(struct plugin **p);
const struct shoal_plugin *plugin_desc(const struct plugin *p);

/* Run the plugin's functions; output is appended to out. 0 or -1 with err. Thread-safe as far
 * as the plugin is. */
int plugin_map(const struct plugin *p, Shoal__Arg *const *args, size_t nargs, const uint8_t *data,
	       size_t len, struct buf *out, char *err, size_t errlen);
int plugin_combine(const struct plugin *p, Shoal__Arg *const *args, size_t nargs,
		   const uint8_t *acc, size_t acc_len, const uint8_t *part, size_t part_len,
		   struct buf *out, char *err, size_t errlen);
int plugin_finalize(const struct plugin *p, Shoal__Arg *const *args, size_t nargs,
		    const uint8_t *acc, size_t acc_len, struct buf *out, char *err, size_t errlen);

#endif
