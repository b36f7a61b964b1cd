/* fuzz_conffile: the config file reader over arbitrary bytes.
 *
 * conffile_read_text must either accept the text, or reject it with an error that starts with
 * the file's name; an accepted text's entries must each name an option of the table and a
 * line of the file, and apply as well-formed two-element argvs. Any violation abort()s. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conffile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct option opts[] = {
    {"listen", required_argument, NULL, 'l'},
    {"master", required_argument, NULL, 'm'},
    {"log-level", required_argument, NULL, 'L'},
    {"allow-exec", no_argument, NULL, 'x'},
    {"config", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

static int check_entry(void *arg, int argc, char **argv)
{
	(void)arg;
	const char *origin = conffile_origin();
	if (argc != 2 || argv[2] != NULL || strcmp(argv[0], "fuzz") != 0 ||
	    strncmp(argv[1], "--", 2) != 0 || !origin || strncmp(origin, "f.conf:", 7) != 0)
		abort();
	const char *name = argv[1] + 2;
	size_t n = strcspn(name, "=");
	for (const struct option *o = opts; o->name; o++)
		if (strlen(o->name) == n && strncmp(o->name, name, n) == 0) {
			if ((o->has_arg == no_argument) != (name[n] == '\0'))
				abort();
			return 0;
		}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct conffile c;
	char err[1024];
	err[0] = '\0';
	conffile_init(&c, "fuzz", "master", opts);
	int rc = conffile_read_text(&c, "f.conf", (const char *)data, size, err, sizeof(err));
	if (rc < 0) {
		if (strncmp(err, "f.conf", 6) != 0)
			abort();
	} else if (rc != 0 || conffile_apply(&c, check_entry, NULL) != 0) {
		abort();
	}
	conffile_deinit(&c);
	return 0;
}
