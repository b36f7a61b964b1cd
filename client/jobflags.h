/* jobflags.h: the rules among the CLI's flags that say what a job runs: --op, --exec,
 * --plugin, --reduce-exec, --reducers, --file, --broadcast and --arg. Socket-free, so the
 * unit tests cover them; cli.c applies them before contacting the master, which makes every
 * mistake here a usage error (exit 2) even when no master is running. Messages speak in
 * flags ("--reducers needs --reduce-exec"). */
#ifndef SHOAL_CLIENT_JOBFLAGS_H
#define SHOAL_CLIENT_JOBFLAGS_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

/* What the master accepts (common/codec.c). */
#define JOBFLAGS_FILES_MAX     64u
#define JOBFLAGS_FILE_NAME_MAX 255u
#define JOBFLAGS_EXEC_MAX      (64u * 1024u)
#define JOBFLAGS_REDUCERS_MAX  10000u

/* The flags as typed; NULL (0) when not given. Everything is borrowed. */
struct jobflags {
	const char *op;
	const char *exec;
	const char *plugin;
	const char *reduce_exec;
	const char *reducers;
	const char *broadcast;
	const char *const *files; /* --file, in order */
	size_t nfiles;
	size_t nargs; /* how many --arg */
};

/* The checked job kind. */
struct jobflags_result {
	const struct op_desc *op; /* the --op, NULL with --exec / --plugin */
	uint32_t reducers;        /* --reducers N, 0 if not given */
};

/* Checks everything that needs no I/O: exactly one of --op / --exec / --plugin, a known op,
 * --reduce-exec only with --exec, --reducers (1..10000) only with --reduce-exec, --arg not
 * with --exec, --file only with --exec / --plugin and with distinct base names, --broadcast
 * exactly when an op reads it (any --exec / --plugin may have one). Returns 0 and fills out,
 * or -1 with the message in err. */
int jobflags_check(const struct jobflags *f, struct jobflags_result *out, char *err, size_t errlen);

/* Checks that the file a flag names ("--file", "--broadcast", "--plugin") is a readable
 * regular file. 0 or -1 with the message ("--file x.py: No such file or directory"). */
int jobflags_check_file(const char *flag, const char *path, char *err, size_t errlen);

/* The name a shipped file gets in the task's directory: path after its last '/'. Borrowed
 * from path. */
const char *jobflags_base(const char *path);

#endif
