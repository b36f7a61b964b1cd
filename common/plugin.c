/* plugin.c: loading C plugins (shoal_plugin.h) and calling them with shoal's buffers.
 *
 * Errors name the file as it was given, since that is what the user typed or the worker
 * cached. Plugin output goes straight into the caller's buffer (no intermediate copy) and is
 * rolled back if the plugin fails, so a failed call leaves no half result behind. */
#include "plugin.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct plugin {
	void *handle;
	const struct shoal_plugin *desc;
	char *path;
};

struct plugin *plugin_load(const char *path, char *err, size_t errlen)
{
	/* dlopen searches the library path for a name without '/'; a plugin is a file. */
	char *file;
	if (strchr(path, '/') != NULL) {
		file = xstrdup(path);
	} else {
		size_t n = strlen(path);
		file = xmalloc(n + 3);
		file[0] = '.';
		file[1] = '/';
		memcpy(file + 2, path, n + 1);
	}
	/* RTLD_LOCAL: two plugins may define the same symbols without binding to each other's. */
	void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
	free(file);
	if (h == NULL) {
		const char *why = dlerror();
		errorf(err, errlen, "plugin %s: cannot load: %s", path, why != NULL ? why : "?");
		return NULL;
	}
	(void)dlerror();
	void *sym = dlsym(h, SHOAL_PLUGIN_SYMBOL);
	if (sym == NULL) {
		errorf(err, errlen, "plugin %s: missing symbol %s (see shoal_plugin.h)", path,
		       SHOAL_PLUGIN_SYMBOL);
		dlclose(h);
		return NULL;
	}
	/* POSIX guarantees that dlsym's object pointer converts to a function pointer; ISO C
	 * does not, so the conversion goes through memcpy. */
	shoal_plugin_entry_fn entry;
	memcpy(&entry, &sym, sizeof(entry));
	const struct shoal_plugin *desc = entry();
	if (desc == NULL) {
		errorf(err, errlen, "plugin %s: %s() returned NULL", path, SHOAL_PLUGIN_SYMBOL);
		dlclose(h);
		return NULL;
	}
	if (desc->abi_version != SHOAL_PLUGIN_ABI_VERSION) {
		errorf(err, errlen, "plugin %s: ABI version %u, this shoal speaks %d", path,
		       (unsigned)desc->abi_version, SHOAL_PLUGIN_ABI_VERSION);
		dlclose(h);
		return NULL;
	}
	if (desc->map == NULL) {
		errorf(err, errlen, "plugin %s: no map function", path);
		dlclose(h);
		return NULL;
	}
	struct plugin *p = xcalloc(1, sizeof(*p));
	p->handle = h;
	p->desc = desc;
	p->path = xstrdup(path);
	return p;
}

void plugin_unload(struct plugin **p)
{
	if (p == NULL || *p == NULL)
		return;
	dlclose((*p)->handle);
	free((*p)->path);
	free(*p);
	*p = NULL;
}

const struct shoal_plugin *plugin_desc(const struct plugin *p)
{
	return p->desc;
}

static int plugin_out_write(void *ctx, const void *data, size_t len)
{
	if (len == 0)
		return 0;
	if (data == NULL)
		return -1;
	buf_append(ctx, data, len);
	return 0;
}

/* The job's args as the plugin sees them: arrays of pointers into the Shoal__Arg strings. */
struct plugin_args {
	struct shoal_plugin_args view;
	const char **keys, **values;
	const char *small_keys[16], *small_values[16];
};

static void plugin_args_init(struct plugin_args *a, Shoal__Arg *const *args, size_t nargs)
{
	if (nargs <= 16) {
		a->keys = a->small_keys;
		a->values = a->small_values;
	} else {
		a->keys = xmalloc(nargs * sizeof(*a->keys));
		a->values = xmalloc(nargs * sizeof(*a->values));
	}
	for (size_t i = 0; i < nargs; i++) {
		a->keys[i] = args[i] != NULL && args[i]->key != NULL ? args[i]->key : "";
		a->values[i] = args[i] != NULL && args[i]->value != NULL ? args[i]->value : "";
	}
	a->view.n = nargs;
	a->view.keys = a->keys;
	a->view.values = a->values;
}

static void plugin_args_deinit(struct plugin_args *a)
{
	if (a->keys != a->small_keys) {
		free(a->keys);
		free(a->values);
	}
}

/* After a plugin call: on failure, drops its partial output and words the error as
 * "plugin NAME: FUNCTION: REASON", the reason being the plugin's own if it gave one. */
static int plugin_finish(const struct plugin *p, const char *fn, int rc, char *perr, size_t perrlen,
                         struct buf *out, size_t orig, char *err, size_t errlen)
{
	if (rc == 0)
		return 0;
	out->len = orig;
	perr[perrlen - 1] = '\0'; /* the plugin may not have terminated it */
	const char *name = p->desc->name != NULL ? p->desc->name : p->path;
	if (perr[0] == '\0')
		return errorf(err, errlen, "plugin %s: %s failed (returned %d)", name, fn, rc);
	return errorf(err, errlen, "plugin %s: %s: %s", name, fn, perr);
}

#define PLUGIN_ERRLEN 512

int plugin_map(const struct plugin *p, Shoal__Arg *const *args, size_t nargs, const uint8_t *data,
               size_t len, struct buf *out, char *err, size_t errlen)
{
	struct plugin_args a;
	struct shoal_plugin_out o = {out, plugin_out_write};
	char perr[PLUGIN_ERRLEN] = "";
	size_t orig = out->len;
	plugin_args_init(&a, args, nargs);
	int rc = p->desc->map(data != NULL ? data : (const uint8_t *)"", len, &a.view, &o, perr,
	                      sizeof(perr));
	plugin_args_deinit(&a);
	return plugin_finish(p, "map", rc, perr, sizeof(perr), out, orig, err, errlen);
}

int plugin_combine(const struct plugin *p, Shoal__Arg *const *args, size_t nargs,
                   const uint8_t *acc, size_t acc_len, const uint8_t *part, size_t part_len,
                   struct buf *out, char *err, size_t errlen)
{
	/* Without combine the job's result is the concatenation, which this folds to. */
	if (p->desc->combine == NULL) {
		if (acc_len > 0)
			buf_append(out, acc, acc_len);
		if (part_len > 0)
			buf_append(out, part, part_len);
		return 0;
	}
	struct plugin_args a;
	struct shoal_plugin_out o = {out, plugin_out_write};
	char perr[PLUGIN_ERRLEN] = "";
	size_t orig = out->len;
	plugin_args_init(&a, args, nargs);
	int rc = p->desc->combine(acc != NULL ? acc : (const uint8_t *)"", acc_len,
	                          part != NULL ? part : (const uint8_t *)"", part_len, &a.view, &o,
	                          perr, sizeof(perr));
	plugin_args_deinit(&a);
	return plugin_finish(p, "combine", rc, perr, sizeof(perr), out, orig, err, errlen);
}

int plugin_finalize(const struct plugin *p, Shoal__Arg *const *args, size_t nargs,
                    const uint8_t *acc, size_t acc_len, struct buf *out, char *err, size_t errlen)
{
	if (p->desc->finalize == NULL) {
		if (acc_len > 0)
			buf_append(out, acc, acc_len);
		return 0;
	}
	struct plugin_args a;
	struct shoal_plugin_out o = {out, plugin_out_write};
	char perr[PLUGIN_ERRLEN] = "";
	size_t orig = out->len;
	plugin_args_init(&a, args, nargs);
	int rc = p->desc->finalize(acc != NULL ? acc : (const uint8_t *)"", acc_len, &a.view, &o,
	                           perr, sizeof(perr));
	plugin_args_deinit(&a);
	return plugin_finish(p, "finalize", rc, perr, sizeof(perr), out, orig, err, errlen);
}
