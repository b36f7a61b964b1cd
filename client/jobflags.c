/* jobflags.c: see jobflags.h. */
#include "jobflags.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "parse.h"
#include "util.h"

const char *jobflags_base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

static int jobflags_unknown_op(const char *name, char *err, size_t errlen)
{
	struct buf b = BUF_INIT;

	for (size_t i = 0; i < op_count(); i++)
		buf_printf(&b, "%s%s", i ? ", " : "", op_at(i)->name);
	errorf(err, errlen, "unknown op '%s' (known: %.*s)", name, (int)b.len,
	       b.data ? (char *)b.data : "");
	buf_free(&b);
	return -1;
}

static int jobflags_check_cmd(const char *flag, const char *cmd, char *err, size_t errlen)
{
	size_t n = strlen(cmd);

	if (strspn(cmd, " \t\n") == n)
		return errorf(err, errlen, "%s: empty command", flag);
	if (n > JOBFLAGS_EXEC_MAX)
		return errorf(err, errlen, "%s: the command is longer than %u bytes", flag,
		              JOBFLAGS_EXEC_MAX);
	return 0;
}

/* A shipped file's path must end in a file name the master accepts. */
static int jobflags_check_name(const char *flag, const char *path, char *err, size_t errlen)
{
	const char *name = jobflags_base(path);

	if (!path[0])
		return errorf(err, errlen, "%s: empty path", flag);
	if (!name[0] || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return errorf(err, errlen, "%s %s: the path does not end in a file name", flag,
		              path);
	if (strlen(name) > JOBFLAGS_FILE_NAME_MAX)
		return errorf(err, errlen, "%s %s: the file name is longer than %u bytes", flag,
		              path, JOBFLAGS_FILE_NAME_MAX);
	return 0;
}

static int jobflags_check_files(const struct jobflags *f, char *err, size_t errlen)
{
	if (f->nfiles > JOBFLAGS_FILES_MAX)
		return errorf(err, errlen, "%zu --file options (at most %u)", f->nfiles,
		              JOBFLAGS_FILES_MAX);
	for (size_t i = 0; i < f->nfiles; i++) {
		const char *name = jobflags_base(f->files[i]);

		if (jobflags_check_name("--file", f->files[i], err, errlen) < 0)
			return -1;
		for (size_t j = 0; j < i; j++)
			if (strcmp(jobflags_base(f->files[j]), name) == 0)
				return errorf(err, errlen,
				              "--file %s and --file %s would both be '%s' in the "
				              "task's directory",
				              f->files[j], f->files[i], name);
	}
	return 0;
}

int jobflags_check(const struct jobflags *f, struct jobflags_result *out, char *err, size_t errlen)
{
	int kinds = (f->op != NULL) + (f->exec != NULL) + (f->plugin != NULL);
	const struct op_desc *op = NULL;
	uint64_t reducers = 0;

	if (kinds == 0)
		return errorf(err, errlen,
		              "say what to run: one of --op NAME, --exec CMD, --plugin LIB.so");
	if (kinds > 1)
		return errorf(err, errlen, "give only one of --op, --exec, --plugin");
	if (f->op && !(op = op_find(f->op)))
		return jobflags_unknown_op(f->op, err, errlen);
	if (f->exec && jobflags_check_cmd("--exec", f->exec, err, errlen) < 0)
		return -1;
	if (f->reduce_exec) {
		if (!f->exec)
			return errorf(err, errlen, "--reduce-exec needs --exec");
		if (jobflags_check_cmd("--reduce-exec", f->reduce_exec, err, errlen) < 0)
			return -1;
	}
	if (f->reducers) {
		char why[200];
		if (!f->reduce_exec)
			return errorf(err, errlen, "--reducers needs --reduce-exec");
		if (parse_u64(f->reducers, JOBFLAGS_REDUCERS_MAX, &reducers, why, sizeof(why)) < 0)
			return errorf(err, errlen, "--reducers: %s", why);
		if (reducers == 0)
			return errorf(err, errlen, "--reducers: must be at least 1");
	}
	if (f->exec && f->nargs)
		return errorf(err, errlen,
		              "--arg does not apply to --exec (put arguments in the command)");
	if (op && f->nfiles)
		return errorf(err, errlen,
		              "--file applies to --exec and --plugin (op %s reads no files)",
		              op->name);
	if (jobflags_check_files(f, err, errlen) < 0)
		return -1;
	if (op && op->needs_broadcast && !f->broadcast)
		return errorf(err, errlen, "op %s needs --broadcast FILE", op->name);
	if (op && !op->needs_broadcast && f->broadcast)
		return errorf(err, errlen, "op %s does not use --broadcast", op->name);
	if (f->broadcast && jobflags_check_name("--broadcast", f->broadcast, err, errlen) < 0)
		return -1;
	if (f->plugin && jobflags_check_name("--plugin", f->plugin, err, errlen) < 0)
		return -1;
	out->op = op;
	out->reducers = (uint32_t)reducers;
	return 0;
}

int jobflags_check_file(const char *flag, const char *path, char *err, size_t errlen)
{
	struct stat st;
	int fd, e = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		e = errno;
	else if (fstat(fd, &st) < 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd >= 0)
		close(fd);
	if (e)
		return errorf(err, errlen, "%s %s: %s", flag, path, strerror(e));
	/* libshoal reads it twice (to hash it, then to send it): no pipes or devices. */
	if (!S_ISREG(st.st_mode))
		return errorf(err, errlen, "%s %s: not a regular file", flag, path);
	return 0;
}
