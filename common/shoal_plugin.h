/* shoal_plugin.h: the ABI of shoal C plugins (`shoal run --plugin lib.so ...`).
 *
 * A plugin is a shared object that exports one function, shoal_plugin_v1(), returning a
 * static description. Workers started with --allow-exec load it (dlopen) and call map() on
 * each partition in their thread pool, so map() must be thread-safe (no unsynchronised
 * globals). If the plugin has combine() and the master was started with --allow-exec, the
 * master folds the partials in partition order with combine() and then finalize(); otherwise
 * the job's result is the partials concatenated in partition order.
 *
 * Build a plugin with: cc -shared -fPIC -o myplugin.so myplugin.c
 * (see examples/plugins/histogram.c). */
#ifndef SHOAL_PLUGIN_H
#define SHOAL_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHOAL_PLUGIN_ABI_VERSION 1
#define SHOAL_PLUGIN_SYMBOL "shoal_plugin_v1"

/* Where a plugin writes its output: call write() any number of times; it appends. write
 * returns 0, or -1 if the output cannot be taken (the plugin should then return -1). */
struct shoal_plugin_out {
	void *ctx;
	int (*write)(void *ctx, const void *data, size_t len);
};

/* The job's --arg KEY=VALUE pairs. */
struct shoal_plugin_args {
	size_t n;
	const char *const *keys;
	const char *const *values;
};

struct shoal_plugin {
	uint32_t abi_version; /* SHOAL_PLUGIN_ABI_VERSION */
	const char *name;
	/* One partition: `len` bytes of whole records ('\n'-terminated lines; the last may lack
	 * its '\n'). Writes the partial result to out. Returns 0, or -1 with a reason in err. */
	int (*map)(const uint8_t *data, size_t len, const struct shoal_plugin_args *args,
		   const struct shoal_plugin_out *out, char *err, size_t errlen);
	/* Optional (NULL): associative combine of the running result `acc` (empty at first)
	 * with the next partial in partition order; writes the new running result. */
	int (*combine)(const uint8_t *acc, size_t acc_len, const uint8_t *part, size_t part_len,
		       const struct shoal_plugin_args *args, const struct shoal_plugin_out *out,
		       char *err, size_t errlen);
	/* Optional (NULL: the combined value is the result): turns the combined value into the
	 * job's result. */
	int (*finalize)(const uint8_t *acc, size_t acc_len, const struct shoal_plugin_args *args,
			const struct shoal_plugin_out *out, char *err, size_t errlen);
};

/* The symbol every plugin exports. */
typedef const struct shoal_plugin *(*shoal_plugin_entry_fn)(void);
const struct shoal_plugin *shoal_plugin_v1(void);

#ifdef __cplusplus
}
#endif
#endif
