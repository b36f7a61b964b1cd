/* cli.c: the `shoal` command, a thin shell over libshoal.
 *
 * Everything a user can get wrong locally (options, numbers, the op and its args, an
 * unreadable input or output file) is checked before contacting the master, so usage errors
 * exit 2 even when no master is running. Exit codes are libshoal's status codes. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "accuracy.h"
#include "auth.h"
#include "conffile.h"
#include "jobflags.h"
#include "json.h"
#include "lockrun.h"
#include "ops.h"
#include "parse.h"
#include "progress.h"
#include "shoal.h"
#include "table.h"
#include "token.h"
#include "top.h"
#include "util.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "unknown"
#endif

enum cli_cmd {
	CMD_NONE,
	CMD_RUN,
	CMD_SUBMIT,
	CMD_STATUS,
	CMD_WAIT,
	CMD_RESULT,
	CMD_CANCEL,
	CMD_JOBS,
	CMD_WORKERS,
	CMD_LOCK,
	CMD_TOP,
	CMD_TOKEN,
	CMD_HELP,
};

/* Which commands an option applies to. */
#define G_GLOBAL 0x1u  /* every command */
#define G_JOB    0x2u  /* run, submit */
#define G_OUTPUT 0x4u  /* run, result */
#define G_LOCK   0x8u  /* lock */
#define G_TOP    0x10u /* top */

struct cli_cmd_desc {
	const char *name;
	enum cli_cmd cmd;
	unsigned groups;
	bool takes_id;
};

static const struct cli_cmd_desc cli_cmds[] = {
    {"run", CMD_RUN, G_GLOBAL | G_JOB | G_OUTPUT, false},
    {"submit", CMD_SUBMIT, G_GLOBAL | G_JOB, false},
    {"status", CMD_STATUS, G_GLOBAL, true},
    {"wait", CMD_WAIT, G_GLOBAL, true},
    {"result", CMD_RESULT, G_GLOBAL | G_OUTPUT, true},
    {"cancel", CMD_CANCEL, G_GLOBAL, true},
    {"jobs", CMD_JOBS, G_GLOBAL, false},
    {"workers", CMD_WORKERS, G_GLOBAL, false},
    {"lock", CMD_LOCK, G_GLOBAL | G_LOCK, false},
    {"top", CMD_TOP, G_GLOBAL | G_TOP, false},
    {"token", CMD_TOKEN, G_GLOBAL, false},
    {"help", CMD_HELP, G_GLOBAL, false},
};

enum cli_opt {
	OPT_MASTER,
	OPT_SECRET_FILE,
	OPT_CONFIG,
	OPT_JSON,
	OPT_QUIET,
	OPT_HELP,
	OPT_VERSION,
	OPT_OP,
	OPT_ARG,
	OPT_RANGE,
	OPT_INPUT,
	OPT_INPUT_PATH,
	OPT_PARTITIONS,
	OPT_PARTITION_SIZE,
	OPT_STRATEGY,
	OPT_PRIORITY,
	OPT_RETRIES,
	OPT_NAME,
	OPT_EXEC,
	OPT_REDUCE_EXEC,
	OPT_REDUCERS,
	OPT_FILE,
	OPT_BROADCAST,
	OPT_PLUGIN,
	OPT_COST,
	OPT_AFTER,
	OPT_TASK_TIMEOUT,
	OPT_JOB_TIMEOUT,
	OPT_OUTPUT,
	OPT_TTL,
	OPT_INTERVAL,
	OPT_ITERATIONS,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_COUNT,
};

struct cli_opt_desc {
	const char *name; /* without "--" */
	char short_name;  /* 0: none */
	bool has_value;
	unsigned group;
};

static const struct cli_opt_desc cli_opts[OPT_COUNT] = {
    [OPT_MASTER] = {"master", 0, true, G_GLOBAL},
    [OPT_SECRET_FILE] = {"secret-file", 0, true, G_GLOBAL},
    [OPT_CONFIG] = {"config", 0, true, G_GLOBAL},
    [OPT_JSON] = {"json", 0, false, G_GLOBAL},
    [OPT_QUIET] = {"quiet", 'q', false, G_GLOBAL},
    [OPT_HELP] = {"help", 'h', false, G_GLOBAL},
    [OPT_VERSION] = {"version", 0, false, G_GLOBAL},
    [OPT_OP] = {"op", 0, true, G_JOB},
    [OPT_ARG] = {"arg", 0, true, G_JOB},
    [OPT_RANGE] = {"range", 0, true, G_JOB},
    [OPT_INPUT] = {"input", 0, true, G_JOB},
    [OPT_INPUT_PATH] = {"input-path", 0, true, G_JOB},
    [OPT_PARTITIONS] = {"partitions", 0, true, G_JOB},
    [OPT_PARTITION_SIZE] = {"partition-size", 0, true, G_JOB},
    [OPT_STRATEGY] = {"strategy", 0, true, G_JOB},
    [OPT_PRIORITY] = {"priority", 0, true, G_JOB},
    [OPT_RETRIES] = {"retries", 0, true, G_JOB},
    [OPT_NAME] = {"name", 0, true, G_JOB},
    [OPT_EXEC] = {"exec", 0, true, G_JOB},
    [OPT_REDUCE_EXEC] = {"reduce-exec", 0, true, G_JOB},
    [OPT_REDUCERS] = {"reducers", 0, true, G_JOB},
    [OPT_FILE] = {"file", 0, true, G_JOB},
    [OPT_BROADCAST] = {"broadcast", 0, true, G_JOB},
    [OPT_PLUGIN] = {"plugin", 0, true, G_JOB},
    [OPT_COST] = {"cost", 0, true, G_JOB},
    [OPT_AFTER] = {"after", 0, true, G_JOB},
    [OPT_TASK_TIMEOUT] = {"task-timeout", 0, true, G_JOB},
    [OPT_JOB_TIMEOUT] = {"job-timeout", 0, true, G_JOB},
    [OPT_OUTPUT] = {"output", 'o', true, G_OUTPUT},
    [OPT_TTL] = {"ttl", 0, true, G_LOCK},
    [OPT_INTERVAL] = {"interval", 0, true, G_TOP},
    [OPT_ITERATIONS] = {"iterations", 'n', true, G_TOP},
    [OPT_TLS_CA] = {"tls-ca", 0, true, G_GLOBAL},
    [OPT_TLS_CERT] = {"tls-cert", 0, true, G_GLOBAL},
    [OPT_TLS_KEY] = {"tls-key", 0, true, G_GLOBAL},
};

#define CLI_MAX_OPERANDS 8

struct cli {
	const struct cli_cmd_desc *cmd;
	const char *val[OPT_COUNT];   /* last value of each option taking one */
	const char *typed[OPT_COUNT]; /* the option as the user spelled it, if given */
	const char **args;            /* --arg values, in order */
	size_t nargs;
	const char **files; /* --file values, in order */
	size_t nfiles;
	const char *operands[CLI_MAX_OPERANDS];
	size_t noperands;
	const char *extra;  /* first operand beyond CLI_MAX_OPERANDS */
	char **lock_argv;   /* lock: the command after NAME (NULL-terminated, in argv) */
	bool lock_dashdash; /* lock: the command came after "--" */
	char **owned;       /* values taken from the config file or the environment */
	size_t nowned;
};

static void cli_usage(FILE *f);

static void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("shoal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Prints a usage error with a hint and returns the usage exit code. */
static int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int cli_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("shoal: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'shoal --help' for more information.\n", stderr);
	return SHOAL_EUSAGE;
}

/* A duration flag in seconds (fractions allowed) into milliseconds: 0, or -1 after printing
 * the usage error. */
static int cli_parse_timeout(const char *flag, const char *v, uint32_t *ms)
{
	char *end;
	errno = 0;
	double secs = strtod(v, &end);
	if (errno || *end || end == v || !(secs >= 0.001) || secs > 86400.0) {
		cli_usage_error("%s: '%s' is not a number of seconds between 0.001 and "
		                "86400",
		                flag, v);
		return -1;
	}
	*ms = (uint32_t)(secs * 1000.0 + 0.5);
	return 0;
}

/* ---- command line ---- */

static int cli_find_opt(const char *arg, const char **inline_value)
{
	*inline_value = NULL;
	if (arg[1] == '-') {
		const char *name = arg + 2;
		const char *eq = strchr(name, '=');
		size_t n = eq ? (size_t)(eq - name) : strlen(name);

		for (int i = 0; i < OPT_COUNT; i++)
			if (strlen(cli_opts[i].name) == n &&
			    strncmp(cli_opts[i].name, name, n) == 0) {
				*inline_value = eq ? eq + 1 : NULL;
				return i;
			}
		return -1;
	}
	if (arg[2] != '\0')
		return -1;
	for (int i = 0; i < OPT_COUNT; i++)
		if (cli_opts[i].short_name && cli_opts[i].short_name == arg[1])
			return i;
	return -1;
}

static const struct cli_cmd_desc *cli_find_cmd(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(cli_cmds); i++)
		if (strcmp(cli_cmds[i].name, name) == 0)
			return &cli_cmds[i];
	return NULL;
}

/* Fills cli from argv. Returns -1 to go on, or an exit code. */
static int cli_parse(struct cli *cli, int argc, char **argv)
{
	bool options_done = false;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *value;
		int id;

		/* lock NAME [options] [--] CMD ARGS...: everything from CMD on is the command's,
		 * options included (as with env, nice or timeout). */
		if (cli->cmd && cli->cmd->cmd == CMD_LOCK && cli->noperands >= 1 &&
		    (strcmp(a, "--") == 0 || options_done || a[0] != '-' || a[1] == '\0')) {
			cli->lock_dashdash = strcmp(a, "--") == 0 && !options_done;
			cli->lock_argv = &argv[cli->lock_dashdash ? i + 1 : i];
			break;
		}
		if (!options_done && strcmp(a, "--") == 0) {
			options_done = true;
			continue;
		}
		if (options_done || a[0] != '-' || a[1] == '\0') {
			if (!cli->cmd) {
				cli->cmd = cli_find_cmd(a);
				if (!cli->cmd)
					return cli_usage_error("unknown command '%s'", a);
			} else if (cli->noperands < CLI_MAX_OPERANDS) {
				cli->operands[cli->noperands++] = a;
			} else if (!cli->extra) {
				cli->extra = a;
			}
			continue;
		}
		id = cli_find_opt(a, &value);
		if (id < 0) {
			const char *eq = strchr(a, '=');
			return cli_usage_error(
			    "unknown option '%.*s'",
			    (int)(eq && a[1] == '-' ? (size_t)(eq - a) : strlen(a)), a);
		}
		if (cli_opts[id].has_value && !value) {
			if (i + 1 >= argc)
				return cli_usage_error("option '%s' needs a value", a);
			value = argv[++i];
		} else if (!cli_opts[id].has_value && value) {
			return cli_usage_error("option '--%s' takes no value", cli_opts[id].name);
		}
		if (id == OPT_ARG) {
			cli->args = xrealloc(cli->args, (cli->nargs + 1) * sizeof(*cli->args));
			cli->args[cli->nargs++] = value;
		} else if (id == OPT_FILE) {
			cli->files = xrealloc(cli->files, (cli->nfiles + 1) * sizeof(*cli->files));
			cli->files[cli->nfiles++] = value;
		} else if (cli->typed[id] && cli_opts[id].has_value && id != OPT_MASTER &&
		           id != OPT_SECRET_FILE) {
			/* --master and --secret-file may be overridden (an alias often sets them);
			 * job options may not:
			 * a second --op is a mistake, not a preference. */
			return cli_usage_error("option '--%s' given more than once",
			                       cli_opts[id].name);
		}
		cli->typed[id] = a;
		cli->val[id] = value;
	}
	return -1;
}

/* Options given that the command does not take. */
static int cli_check_applies(const struct cli *cli)
{
	for (int i = 0; i < OPT_COUNT; i++)
		if (cli->typed[i] && !(cli_opts[i].group & cli->cmd->groups))
			return cli_usage_error("option '--%s' does not apply to '%s'",
			                       cli_opts[i].name, cli->cmd->name);
	return -1;
}

static int cli_check_operands(const struct cli *cli, uint64_t *id)
{
	char err[200];

	if (cli->cmd->takes_id) {
		if (cli->noperands == 0)
			return cli_usage_error("'%s' needs a job ID", cli->cmd->name);
		if (parse_u64(cli->operands[0], UINT64_MAX, id, err, sizeof(err)) < 0)
			return cli_usage_error("bad job ID: %s", err);
		if (cli->noperands > 1)
			return cli_usage_error("unexpected argument '%s'", cli->operands[1]);
		return -1;
	}
	if (cli->cmd->cmd == CMD_LOCK) {
		if (cli->noperands == 0)
			return cli_usage_error("'lock' needs a lock name and a command: shoal lock "
			                       "NAME [--ttl S] -- CMD [ARGS...]");
		if (parse_lock_name(cli->operands[0], SHOAL_LOCK_NAME_MAX, err, sizeof(err)) < 0)
			return cli_usage_error("bad lock name: %s", err);
		if (!cli->lock_argv || !cli->lock_argv[0])
			return cli_usage_error("'lock' needs a command to run: shoal lock NAME "
			                       "[--ttl S] -- CMD [ARGS...]");
		if (!cli->lock_argv[0][0])
			return cli_usage_error("'lock': empty command name");
		return -1;
	}
	if (cli->noperands > 0 && cli->cmd->cmd != CMD_HELP)
		return cli_usage_error("unexpected argument '%s'", cli->operands[0]);
	return -1;
}

/* One setting from the config file or the environment ({"shoal", "--NAME=VALUE"}): taken
 * unless the command line gave the option. */
static int cli_config_entry(void *arg, int argc, char **argv)
{
	struct cli *cli = arg;
	const char *value;
	int id = argc == 2 ? cli_find_opt(argv[1], &value) : -1;

	if (id < 0)
		return cli_usage_error("%s: cannot apply '%s'", conffile_origin(), argv[argc - 1]);
	if (cli->typed[id])
		return 0;
	cli->owned = xrealloc(cli->owned, (cli->nowned + 2) * sizeof(*cli->owned));
	cli->owned[cli->nowned] = xstrdup(argv[1]);
	cli->typed[id] = cli->owned[cli->nowned++];
	cli->val[id] = value ? (cli->owned[cli->nowned++] = xstrdup(value)) : NULL;
	return 0;
}

/* Settings every command takes (--master, ...) from the config file ([client] and [cluster])
 * and SHOAL_* variables, below the command line. Job options are not read from a file: they
 * describe one job. */
static int cli_load_config(struct cli *cli, char **argv)
{
	struct option keys[OPT_COUNT + 1];
	size_t n = 0;
	struct conffile c;
	char err[1024];
	int rc = -1;
	const char *path = cli->val[OPT_CONFIG];

	for (int i = 0; i < OPT_COUNT; i++)
		if (cli_opts[i].group == G_GLOBAL)
			keys[n++] = (struct option){
			    cli_opts[i].name,
			    cli_opts[i].has_value ? required_argument : no_argument, NULL, i};
	keys[n] = (struct option){NULL, 0, NULL, 0};
	if (!path)
		path = conffile_path(1, argv); /* only $SHOAL_CONFIG: argv is cli_parse's */
	conffile_init(&c, "shoal", "client", keys);
	if ((path && conffile_read_file(&c, path, err, sizeof(err)) < 0) ||
	    conffile_read_env(&c, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		rc = SHOAL_EUSAGE;
	} else if (conffile_apply(&c, cli_config_entry, cli) != 0) {
		rc = SHOAL_EUSAGE;
	}
	conffile_deinit(&c);
	return rc;
}

/* ---- job spec ---- */

struct cli_job {
	struct shoal_job_spec spec;
	char **keys; /* owned copies of the --arg keys */
	const char **values;
};

static void cli_job_deinit(struct cli_job *job)
{
	for (size_t i = 0; i < job->spec.nargs; i++)
		free(job->keys[i]);
	free(job->keys);
	free(job->values);
}

/* Checks that a local input file can be read, so a typo is a usage error even when the
 * master is down. libshoal checks again when it opens the file for the upload. */
static int cli_check_input(const char *path)
{
	struct stat st;
	int fd, e = 0;

	if (strcmp(path, "-") == 0)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		e = errno;
	else if (fstat(fd, &st) < 0)
		e = errno;
	else if (S_ISDIR(st.st_mode))
		e = EISDIR;
	if (fd >= 0)
		close(fd);
	if (e) {
		cli_err("cannot read input %s: %s", path, strerror(e));
		return SHOAL_EUSAGE;
	}
	return -1;
}

/* What the job runs: --op / --exec / --plugin and the flags that go with them (jobflags.h),
 * and the local files to ship, which must be readable. */
static int cli_build_kind(const struct cli *cli, struct shoal_job_spec *s,
                          const struct op_desc **op)
{
	struct jobflags f = {
	    .op = cli->val[OPT_OP],
	    .exec = cli->val[OPT_EXEC],
	    .plugin = cli->val[OPT_PLUGIN],
	    .reduce_exec = cli->val[OPT_REDUCE_EXEC],
	    .reducers = cli->val[OPT_REDUCERS],
	    .broadcast = cli->val[OPT_BROADCAST],
	    .files = cli->files,
	    .nfiles = cli->nfiles,
	    .nargs = cli->nargs,
	};
	struct jobflags_result r;
	char err[1024];

	if (jobflags_check(&f, &r, err, sizeof(err)) < 0)
		return cli_usage_error("%s", err);
	for (size_t i = 0; i < cli->nfiles; i++)
		if (jobflags_check_file("--file", cli->files[i], err, sizeof(err)) < 0)
			goto bad_file;
	if (f.broadcast && jobflags_check_file("--broadcast", f.broadcast, err, sizeof(err)) < 0)
		goto bad_file;
	if (f.plugin && jobflags_check_file("--plugin", f.plugin, err, sizeof(err)) < 0)
		goto bad_file;
	*op = r.op;
	s->op = r.op ? r.op->name : NULL;
	s->exec = f.exec;
	s->plugin = f.plugin;
	s->reduce_exec = f.reduce_exec;
	s->reducers = r.reducers;
	s->broadcast = f.broadcast;
	s->files = cli->files;
	s->nfiles = cli->nfiles;
	return -1;
bad_file:
	cli_err("%s", err);
	return SHOAL_EUSAGE;
}

static int cli_build_job(const struct cli *cli, struct cli_job *job)
{
	struct shoal_job_spec *s = &job->spec;
	const struct op_desc *op = NULL;
	Shoal__Arg *args = NULL, **argp = NULL;
	int ninputs = !!cli->val[OPT_RANGE] + !!cli->val[OPT_INPUT] + !!cli->val[OPT_INPUT_PATH];
	char err[512];
	int rc = -1;

	shoal_job_spec_init(s);
	if (ninputs > 1)
		return cli_usage_error("give only one of --range, --input, --input-path");
	if ((rc = cli_build_kind(cli, s, &op)) >= 0)
		return rc;
	if (ninputs == 0)
		return cli_usage_error("no input: give one of --range LO:HI, --input FILE, "
		                       "--input job:ID or --input-path PATH");

	/* --arg KEY=VALUE, checked against the op with the registry's own checker. */
	job->keys = xcalloc(cli->nargs ? cli->nargs : 1, sizeof(*job->keys));
	job->values = xcalloc(cli->nargs ? cli->nargs : 1, sizeof(*job->values));
	args = xcalloc(cli->nargs ? cli->nargs : 1, sizeof(*args));
	argp = xcalloc(cli->nargs ? cli->nargs : 1, sizeof(*argp));
	for (size_t i = 0; i < cli->nargs; i++) {
		Shoal__Arg init = SHOAL__ARG__INIT;
		size_t klen;

		if (parse_kv(cli->args[i], &klen, err, sizeof(err)) < 0) {
			rc = cli_usage_error("--arg: %s", err);
			goto out;
		}
		job->keys[i] = xstrndup(cli->args[i], klen);
		job->values[i] = cli->args[i] + klen + 1;
		s->nargs = i + 1;
		args[i] = init;
		args[i].key = job->keys[i];
		args[i].value = (char *)job->values[i];
		argp[i] = &args[i];
	}
	s->arg_keys = (const char *const *)job->keys;
	s->arg_values = job->values;
	/* A plugin's args are its own business; a built-in op's are known here. */
	if (op && op_args_check(op, argp, cli->nargs, err, sizeof(err)) < 0) {
		rc = cli_usage_error("%s", err);
		goto out;
	}

	if (cli->val[OPT_RANGE]) {
		s->input = SHOAL_INPUT_RANGE;
		if (parse_range(cli->val[OPT_RANGE], &s->lo, &s->hi, err, sizeof(err)) < 0) {
			rc = cli_usage_error("--range: %s", err);
			goto out;
		}
	} else if (cli->val[OPT_INPUT]) {
		int isjob = parse_job_input(cli->val[OPT_INPUT], &s->input_job, err, sizeof(err));
		if (isjob < 0) {
			rc = cli_usage_error("--input: %s (a file named like that: ./%s)", err,
			                     cli->val[OPT_INPUT]);
			goto out;
		}
		if (isjob) {
			s->input = SHOAL_INPUT_JOB;
		} else {
			s->input = SHOAL_INPUT_FILE;
			s->path = cli->val[OPT_INPUT];
			if ((rc = cli_check_input(s->path)) >= 0)
				goto out;
		}
	} else {
		s->input = SHOAL_INPUT_PATH;
		s->path = cli->val[OPT_INPUT_PATH];
		if (!s->path[0]) {
			rc = cli_usage_error("--input-path: empty path");
			goto out;
		}
		/* The master and the workers resolve the path in their own working directories:
		 * send it absolute, as this shell means it. */
		if (s->path[0] != '/') {
			static char abs_path[4096];
			char cwd[4096];
			if (!getcwd(cwd, sizeof(cwd)) ||
			    snprintf(abs_path, sizeof(abs_path), "%s/%s", cwd, s->path) >=
			        (int)sizeof(abs_path)) {
				rc = cli_usage_error("--input-path: cannot make '%s' absolute",
				                     s->path);
				goto out;
			}
			s->path = abs_path;
		}
	}

	if (cli->val[OPT_PARTITIONS]) {
		uint64_t v;
		if (parse_u64(cli->val[OPT_PARTITIONS], UINT32_MAX, &v, err, sizeof(err)) < 0 ||
		    (v == 0 && snprintf(err, sizeof(err), "must be at least 1")) > 0) {
			rc = cli_usage_error("--partitions: %s", err);
			goto out;
		}
		s->partitions = (uint32_t)v;
	}
	if (cli->val[OPT_PARTITION_SIZE]) {
		if (parse_size(cli->val[OPT_PARTITION_SIZE], &s->partition_size, err, sizeof(err)) <
		        0 ||
		    (s->partition_size == 0 && snprintf(err, sizeof(err), "must be at least 1")) >
		        0) {
			rc = cli_usage_error("--partition-size: %s", err);
			goto out;
		}
	}
	if (cli->val[OPT_PARTITIONS] && cli->val[OPT_PARTITION_SIZE]) {
		rc = cli_usage_error("give only one of --partitions, --partition-size");
		goto out;
	}
	if (cli->val[OPT_STRATEGY]) {
		s->strategy = cli->val[OPT_STRATEGY];
		if (strcmp(s->strategy, "round-robin") != 0 &&
		    strcmp(s->strategy, "least-loaded") != 0 &&
		    strcmp(s->strategy, "dynamic") != 0) {
			rc = cli_usage_error("unknown strategy '%s' (known: round-robin, "
			                     "least-loaded, dynamic)",
			                     s->strategy);
			goto out;
		}
	}
	if (cli->val[OPT_COST]) {
		if (parse_u64(cli->val[OPT_COST], UINT64_MAX, &s->cost, err, sizeof(err)) < 0 ||
		    (s->cost == 0 && snprintf(err, sizeof(err),
		                              "must be at least 1 (without --cost: the input "
		                              "size)") > 0)) {
			rc = cli_usage_error("--cost: %s", err);
			goto out;
		}
	}
	if (cli->val[OPT_TASK_TIMEOUT] &&
	    cli_parse_timeout("--task-timeout", cli->val[OPT_TASK_TIMEOUT], &s->task_timeout_ms) <
	        0) {
		rc = SHOAL_EUSAGE;
		goto out;
	}
	if (cli->val[OPT_JOB_TIMEOUT] &&
	    cli_parse_timeout("--job-timeout", cli->val[OPT_JOB_TIMEOUT], &s->job_timeout_ms) < 0) {
		rc = SHOAL_EUSAGE;
		goto out;
	}
	if (cli->val[OPT_AFTER]) {
		if (parse_u64(cli->val[OPT_AFTER], UINT64_MAX, &s->after, err, sizeof(err)) < 0 ||
		    (s->after == 0 && snprintf(err, sizeof(err), "job IDs start at 1") > 0)) {
			rc = cli_usage_error("--after: %s", err);
			goto out;
		}
	}
	if (cli->val[OPT_PRIORITY]) {
		int64_t v;
		if (parse_i64(cli->val[OPT_PRIORITY], INT32_MIN, INT32_MAX, &v, err, sizeof(err)) <
		    0) {
			rc = cli_usage_error("--priority: %s", err);
			goto out;
		}
		s->priority = (int32_t)v;
	}
	if (cli->val[OPT_RETRIES]) {
		uint64_t v;
		if (parse_u64(cli->val[OPT_RETRIES], INT32_MAX, &v, err, sizeof(err)) < 0) {
			rc = cli_usage_error("--retries: %s", err);
			goto out;
		}
		s->retries = (int)v;
	}
	s->name = cli->val[OPT_NAME];
out:
	free(argp);
	free(args);
	return rc;
}

/* ---- formatting ---- */

static void fmt_time(uint64_t ms, char *out, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !localtime_r(&t, &tm) || strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(out, n, "-");
}

static void fmt_bytes(uint64_t v, char *out, size_t n)
{
	static const char units[] = "KMGTPE";
	double d = (double)v;
	int u = -1;

	if (v < 1024) {
		snprintf(out, n, "%" PRIu64 " B", v);
		return;
	}
	while (d >= 1024 && u < 5) {
		d /= 1024;
		u++;
	}
	snprintf(out, n, "%.1f %ciB", d, units[u]);
}

/* How long the job ran (or has been running). */
static void fmt_elapsed(const struct shoal_job_info *j, char *out, size_t n)
{
	uint64_t end = j->finished_ms ? j->finished_ms : wall_ms();

	if (!j->started_ms || end < j->started_ms) {
		snprintf(out, n, "-");
		return;
	}
	if (end - j->started_ms < 60000)
		snprintf(out, n, "%.1fs", (double)(end - j->started_ms) / 1000);
	else
		progress_fmt_duration((end - j->started_ms + 500) / 1000, out, n);
}

/* The job's place in the master's queue ("#2"), what it waits for ("after 7"), or "-". */
static void fmt_queue(const struct shoal_job_info *j, char *out, size_t n)
{
	bool waiting =
	    j->after && (j->state == SHOAL_JOB_QUEUED || j->state == SHOAL_JOB_UPLOADING);

	if (j->queue_position)
		snprintf(out, n, "#%" PRIu32, j->queue_position);
	else if (waiting && !j->tasks_running && !j->tasks_done)
		snprintf(out, n, "after %" PRIu64, j->after);
	else
		snprintf(out, n, "-");
}

static void fmt_ago(uint64_t ms, char *out, size_t n)
{
	uint64_t now = wall_ms();

	if (!ms)
		snprintf(out, n, "-");
	else if (ms >= now)
		snprintf(out, n, "now");
	else if (now - ms < 10000)
		snprintf(out, n, "%.1fs ago", (double)(now - ms) / 1000);
	else
		snprintf(out, n, "%" PRIu64 "s ago", (now - ms) / 1000);
}

static void json_job(struct json *j, const struct shoal_job_info *i)
{
	json_object_begin(j);
	json_kv_u64(j, "job_id", i->id);
	json_kv_str(j, "state", shoal_job_state_name(i->state));
	json_kv_str(j, "op", i->op);
	json_kv_str_or_null(j, "name", i->name);
	json_kv_str(j, "strategy", i->strategy);
	json_key(j, "priority");
	json_i64(j, i->priority);
	json_kv_u64(j, "tasks_total", i->tasks_total);
	json_kv_u64(j, "tasks_done", i->tasks_done);
	json_kv_u64(j, "tasks_running", i->tasks_running);
	json_kv_u64(j, "task_failures", i->task_failures);
	json_kv_u64(j, "input_bytes", i->input_bytes);
	json_kv_u64(j, "records", i->records);
	json_kv_u64(j, "result_size", i->result_size);
	json_kv_u64_or_null(j, "submitted_ms", i->submitted_ms);
	json_kv_u64_or_null(j, "started_ms", i->started_ms);
	json_kv_u64_or_null(j, "finished_ms", i->finished_ms);
	json_kv_str_or_null(j, "error", i->error);
	/* 1-based place under the master's queue policy; null once the job is not queued. */
	json_kv_u64_or_null(j, "queue_position", i->queue_position);
	json_kv_u64(j, "cost", i->cost);
	json_kv_u64_or_null(j, "after", i->after);
	json_kv_u64(j, "partitions_recovered", i->partitions_recovered);
	json_kv_u64(j, "tasks_dispatched", i->tasks_dispatched);
	/* Why the unfinished job cannot progress now; null while it can. */
	json_kv_str_or_null(j, "stalled", i->stalled);
	json_kv_u64_or_null(j, "stalled_since_ms", i->stalled_since_ms);
	json_object_end(j);
}

static void json_worker(struct json *j, const struct shoal_worker_info *w)
{
	json_object_begin(j);
	json_kv_u64(j, "worker_id", w->id);
	json_kv_str(j, "name", w->name);
	json_kv_str_or_null(j, "host", w->host);
	json_kv_str_or_null(j, "address", w->address);
	json_kv_str_or_null(j, "advertise", w->advertise);
	json_kv_u64(j, "slots", w->slots);
	json_kv_u64(j, "running", w->running);
	json_kv_u64(j, "held", w->held);
	json_kv_u64(j, "tasks_done", w->tasks_done);
	json_kv_u64(j, "tasks_failed", w->tasks_failed);
	json_key(j, "allow_exec");
	json_bool(j, w->allow_exec);
	json_kv_u64_or_null(j, "connected_ms", w->connected_ms);
	json_kv_u64_or_null(j, "last_heartbeat_ms", w->last_heartbeat_ms);
	json_object_end(j);
}

/* Writes the document to stdout; 0 or the exit code for a failed write. */
static int json_emit(struct json *j)
{
	int rc = json_write(j, stdout) < 0 || fflush(stdout) == EOF ? 1 : 0;

	json_deinit(j);
	return rc;
}

static void print_job_status(const struct shoal_job_info *i)
{
	static const bool right[2] = {false, false};
	struct table t;
	char id[32], prio[16], tasks[160], in[64], rec[32], res[32], sub[32], start[32], fin[32],
	    el[32], queue[32], cost[32], after[32];
	const char *rows[][2] = {
	    {"job", id},
	    {"name", i->name[0] ? i->name : "-"},
	    {"state", shoal_job_state_name(i->state)},
	    {"queue", queue},
	    {"op", i->op},
	    {"strategy", i->strategy},
	    {"priority", prio},
	    {"cost", cost},
	    {"after", after},
	    {"tasks", tasks},
	    {"input", in},
	    {"records", rec},
	    {"result", res},
	    {"submitted", sub},
	    {"started", start},
	    {"finished", fin},
	    {"elapsed", el},
	    {"waiting", i->stalled},
	    {"error", i->error},
	};

	snprintf(id, sizeof(id), "%" PRIu64, i->id);
	snprintf(prio, sizeof(prio), "%" PRId32, i->priority);
	fmt_queue(i, queue, sizeof(queue));
	snprintf(cost, sizeof(cost), "%" PRIu64, i->cost);
	if (i->after)
		snprintf(after, sizeof(after), "job %" PRIu64, i->after);
	else
		snprintf(after, sizeof(after), "-");
	snprintf(tasks, sizeof(tasks),
	         "%" PRIu32 "/%" PRIu32 " done, %" PRIu32 " running, %" PRIu32 " failures",
	         i->tasks_done, i->tasks_total, i->tasks_running, i->task_failures);
	if (i->input_bytes)
		fmt_bytes(i->input_bytes, in, sizeof(in));
	else
		snprintf(in, sizeof(in), "-"); /* range inputs have no bytes */
	snprintf(rec, sizeof(rec), "%" PRIu64, i->records);
	if (i->state == SHOAL_JOB_SUCCEEDED)
		fmt_bytes(i->result_size, res, sizeof(res));
	else
		snprintf(res, sizeof(res), "-");
	fmt_time(i->submitted_ms, sub, sizeof(sub));
	fmt_time(i->started_ms, start, sizeof(start));
	fmt_time(i->finished_ms, fin, sizeof(fin));
	fmt_elapsed(i, el, sizeof(el));
	table_init(&t, 2, right);
	for (size_t r = 0; r < ARRAY_SIZE(rows); r++)
		if (rows[r][1] != i->stalled && rows[r][1] != i->error)
			table_add(&t, rows[r]);
		else if (rows[r][1][0]) /* "waiting" and "error" only when there is one */
			table_add(&t, rows[r]);
	table_print(&t, stdout);
	table_deinit(&t);
}

static void print_jobs(const struct shoal_job_info *jobs, size_t n)
{
	static const bool right[] = {true, false, true, false, true, true, true, true, true, false};
	static const char *const head[] = {"ID",       "STATE", "QUEUE",  "OP",      "TASKS",
	                                   "FAILURES", "INPUT", "RESULT", "ELAPSED", "NAME"};
	struct table t;

	table_init(&t, ARRAY_SIZE(head), right);
	table_add(&t, head);
	for (size_t k = 0; k < n; k++) {
		const struct shoal_job_info *i = &jobs[k];
		char id[32], queue[32], tasks[32], fails[16], in[32], res[32], el[32];
		const char *row[] = {
		    id,     shoal_job_state_name(i->state), queue, i->op, tasks, fails, in, res, el,
		    i->name};

		snprintf(id, sizeof(id), "%" PRIu64, i->id);
		fmt_queue(i, queue, sizeof(queue));
		snprintf(tasks, sizeof(tasks), "%" PRIu32 "/%" PRIu32, i->tasks_done,
		         i->tasks_total);
		snprintf(fails, sizeof(fails), "%" PRIu32, i->task_failures);
		/* Range inputs have no bytes. */
		if (i->input_bytes)
			fmt_bytes(i->input_bytes, in, sizeof(in));
		else
			snprintf(in, sizeof(in), "-");
		if (i->state == SHOAL_JOB_SUCCEEDED)
			fmt_bytes(i->result_size, res, sizeof(res));
		else
			snprintf(res, sizeof(res), "-");
		fmt_elapsed(i, el, sizeof(el));
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_deinit(&t);
}

static void print_workers(const struct shoal_worker_info *ws, size_t n)
{
	static const bool right[] = {true, false, false, false, false, true,
	                             true, true,  true,  false, false};
	static const char *const head[] = {"ID",         "NAME",  "HOST",     "ADDRESS",
	                                   "ADVERTISED", "SLOTS", "RUNNING",  "DONE",
	                                   "FAILED",     "EXEC",  "HEARTBEAT"};
	struct table t;

	table_init(&t, ARRAY_SIZE(head), right);
	table_add(&t, head);
	for (size_t k = 0; k < n; k++) {
		const struct shoal_worker_info *w = &ws[k];
		char id[32], slots[16], run[16], done[32], failed[32], hb[32];
		const char *row[] = {id,
		                     w->name[0] ? w->name : "-",
		                     w->host[0] ? w->host : "-",
		                     w->address[0] ? w->address : "-",
		                     w->advertise[0] ? w->advertise : "-",
		                     slots,
		                     run,
		                     done,
		                     failed,
		                     w->allow_exec ? "yes" : "no",
		                     hb};

		snprintf(id, sizeof(id), "%" PRIu64, w->id);
		snprintf(slots, sizeof(slots), "%" PRIu32, w->slots);
		snprintf(run, sizeof(run), "%" PRIu32, w->running);
		snprintf(done, sizeof(done), "%" PRIu64, w->tasks_done);
		snprintf(failed, sizeof(failed), "%" PRIu64, w->tasks_failed);
		fmt_ago(w->last_heartbeat_ms, hb, sizeof(hb));
		table_add(&t, row);
	}
	table_print(&t, stdout);
	table_deinit(&t);
}

/* ---- result output ---- */

struct cli_out {
	FILE *f;
	const char *path;     /* NULL: stdout */
	int err;              /* errno of the first failed write */
	struct accuracy *acc; /* scores the result as it goes by (knn, labeled=1), or NULL */
};

static int cli_out_open(struct cli_out *o, const char *path)
{
	memset(o, 0, sizeof(*o));
	if (!path || strcmp(path, "-") == 0) {
		o->f = stdout;
		return -1;
	}
	o->path = path;
	o->f = fopen(path, "wb");
	if (!o->f) {
		cli_err("cannot write %s: %s", path, strerror(errno));
		return SHOAL_EUSAGE;
	}
	return -1;
}

static int cli_out_write(const void *data, size_t len, void *arg)
{
	struct cli_out *o = arg;

	if (fwrite(data, 1, len, o->f) != len) {
		o->err = errno ? errno : EIO;
		return -1;
	}
	if (o->acc)
		accuracy_feed(o->acc, data, len);
	return 0;
}

/* Prints the knn accuracy line once the whole result went by. */
static void cli_accuracy_report(struct accuracy *acc)
{
	uint64_t correct, total;
	char err[300], line[128];

	if (accuracy_finish(acc, &correct, &total, err, sizeof(err)) < 0) {
		cli_err("no accuracy: %s", err);
		return;
	}
	accuracy_format(correct, total, line, sizeof(line));
	fprintf(stderr, "%s\n", line);
}

/* Closes the output; on failure (ok false, or a write error) removes a partial file. Returns
 * 0 or the exit code for a write error (reported here). */
static int cli_out_close(struct cli_out *o, bool ok)
{
	int rc = 0;

	if (fflush(o->f) == EOF && !o->err)
		o->err = errno ? errno : EIO;
	if (o->path && fclose(o->f) == EOF && !o->err)
		o->err = errno ? errno : EIO;
	if (ok && o->err) {
		/* A reader that went away (`shoal result 3 | head`) is not worth a message. */
		if (o->err != EPIPE)
			cli_err("cannot write %s: %s", o->path ? o->path : "the result",
			        strerror(o->err));
		rc = SHOAL_EJOB;
	}
	if (o->path && (!ok || o->err))
		unlink(o->path);
	return rc;
}

/* ---- commands ---- */

/* libshoal's word while it reconnects (the master restarting, say): worth a line, since
 * otherwise the command says nothing for up to a minute. */
static void cli_notice(const char *message, void *arg)
{
	(void)arg;
	cli_err("%s", message);
}

static int cli_connect(const struct cli *cli, shoal_client **c)
{
	struct shoal_connect_options opt = {
	    .master = cli->val[OPT_MASTER],
	    .timeout_ms = 0,
	    .secret_file = cli->val[OPT_SECRET_FILE],
	    .tls_ca = cli->val[OPT_TLS_CA],
	    .tls_cert = cli->val[OPT_TLS_CERT],
	    .tls_key = cli->val[OPT_TLS_KEY],
	    .notice = cli->typed[OPT_QUIET] ? NULL : cli_notice,
	};
	char err[1024];
	int rc = shoal_connect(&opt, c, err, sizeof(err));

	if (rc != SHOAL_OK)
		cli_err("%s", err);
	return rc;
}

/* Reports a failed call and returns its code. */
static int cli_fail(shoal_client *c, int rc)
{
	cli_err("%s", shoal_errmsg(c));
	return rc;
}

static bool cli_progress_wanted(const struct cli *cli)
{
	return !cli->typed[OPT_QUIET] && isatty(STDERR_FILENO);
}

/* What `shoal run` and `shoal wait` watch: the progress line, and whether the job's stall
 * has been reported. */
struct cli_watch {
	struct progress p;
	bool warned; /* the current stall was reported */
};

/* A shoal_progress_fn: a job that stalls (no worker to run it) is reported once on stderr,
 * with or without a terminal, since nothing else would show why the wait does not end. */
static void cli_on_progress(const struct shoal_job_info *info, void *arg)
{
	struct cli_watch *w = arg;

	if (info->stalled[0] && !w->warned) {
		progress_clear(&w->p);
		cli_err("job %" PRIu64 " is not progressing: %s. It keeps waiting for a worker: "
		        "start shoal-worker (--master pointing at this master), or submit with "
		        "--job-timeout S to fail instead of waiting",
		        info->id, info->stalled);
	}
	w->warned = info->stalled[0] != '\0'; /* a later stall is reported again */
	progress_update(info, &w->p);
}

/* Waits for job id with progress; prints the failure. */
static int cli_wait(const struct cli *cli, shoal_client *c, uint64_t id,
                    struct shoal_job_info *info)
{
	struct cli_watch w = {.warned = false};
	int rc;

	progress_init(&w.p, stderr, cli_progress_wanted(cli));
	rc = shoal_wait(c, id, cli_on_progress, &w, info);
	progress_clear(&w.p);
	if (rc != SHOAL_OK)
		cli_err("%s", shoal_errmsg(c));
	return rc;
}

/* shoal_submit reports no progress of its own while it sends files and the input: say why
 * nothing moves yet. */
static void cli_upload_note(const struct shoal_job_spec *s, struct progress *p)
{
	size_t nship = s->nfiles + (s->broadcast != NULL) + (s->plugin != NULL);
	char note[512], what[64] = "", size[48] = "";
	struct stat st;

	if (nship)
		snprintf(what, sizeof(what), "%zu file%s%s", nship, nship > 1 ? "s" : "",
		         s->input == SHOAL_INPUT_FILE ? " and " : "");
	if (s->input != SHOAL_INPUT_FILE) {
		if (nship) {
			snprintf(note, sizeof(note), "sending %s...", what);
			progress_note(p, note);
		}
		return;
	}
	if (strcmp(s->path, "-") != 0 && stat(s->path, &st) == 0 && S_ISREG(st.st_mode)) {
		char b[32];
		fmt_bytes((uint64_t)st.st_size, b, sizeof(b));
		snprintf(size, sizeof(size), " (%s)", b);
	}
	snprintf(note, sizeof(note), "uploading %s%s%s...", what,
	         strcmp(s->path, "-") == 0 ? "stdin" : s->path, size);
	progress_note(p, note);
}

static int cmd_run(const struct cli *cli)
{
	struct cli_job job = {0};
	struct shoal_job_info info;
	struct progress p;
	struct cli_out out;
	shoal_client *c = NULL;
	uint64_t id;
	int rc;

	if ((rc = cli_build_job(cli, &job)) >= 0)
		goto done;
	if ((rc = cli_out_open(&out, cli->val[OPT_OUTPUT])) >= 0)
		goto done;
	if ((rc = cli_connect(cli, &c)) != SHOAL_OK) {
		cli_out_close(&out, false);
		goto done;
	}
	progress_init(&p, stderr, cli_progress_wanted(cli));
	cli_upload_note(&job.spec, &p);
	rc = shoal_submit(c, &job.spec, &id);
	progress_clear(&p);
	if (rc != SHOAL_OK) {
		cli_fail(c, rc);
		cli_out_close(&out, false);
		goto done;
	}
	rc = cli_wait(cli, c, id, &info);
	if (rc != SHOAL_OK) {
		cli_out_close(&out, false);
		goto done;
	}
	if (job.spec.input == SHOAL_INPUT_FILE && strcmp(job.spec.path, "-") != 0 &&
	    accuracy_wanted(job.spec.op, cli->args, cli->nargs)) {
		FILE *q = fopen(job.spec.path, "r");
		if (q)
			out.acc = accuracy_create(q);
		else
			cli_err("no accuracy: cannot read %s again: %s", job.spec.path,
			        strerror(errno));
	}
	rc = shoal_result(c, id, cli_out_write, &out);
	if (rc != SHOAL_OK && !out.err)
		cli_fail(c, rc);
	if (rc == SHOAL_EUSAGE && out.err)
		rc = SHOAL_OK; /* the writer stopped: reported by cli_out_close */
	{
		int wrc = cli_out_close(&out, rc == SHOAL_OK);
		if (rc == SHOAL_OK)
			rc = wrc;
	}
	if (out.acc && rc == SHOAL_OK)
		cli_accuracy_report(out.acc);
	accuracy_destroy(&out.acc);
done:
	shoal_close(&c);
	cli_job_deinit(&job);
	return rc < 0 ? SHOAL_OK : rc;
}

static int cmd_submit(const struct cli *cli)
{
	struct cli_job job = {0};
	shoal_client *c = NULL;
	uint64_t id;
	int rc;

	if ((rc = cli_build_job(cli, &job)) >= 0)
		goto done;
	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		goto done;
	rc = shoal_submit(c, &job.spec, &id);
	if (rc != SHOAL_OK) {
		cli_fail(c, rc);
		goto done;
	}
	if (cli->typed[OPT_JSON]) {
		struct json j;
		json_init(&j);
		json_object_begin(&j);
		json_kv_u64(&j, "job_id", id);
		json_object_end(&j);
		rc = json_emit(&j);
	} else {
		printf("%" PRIu64 "\n", id);
		rc = fflush(stdout) == EOF ? SHOAL_EJOB : SHOAL_OK;
	}
done:
	shoal_close(&c);
	cli_job_deinit(&job);
	return rc;
}

static int cmd_status(const struct cli *cli, uint64_t id)
{
	struct shoal_job_info info;
	shoal_client *c = NULL;
	int rc;

	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	rc = shoal_status(c, id, &info);
	if (rc != SHOAL_OK) {
		rc = cli_fail(c, rc);
	} else if (cli->typed[OPT_JSON]) {
		struct json j;
		json_init(&j);
		json_job(&j, &info);
		rc = json_emit(&j);
	} else {
		print_job_status(&info);
	}
	shoal_close(&c);
	return rc;
}

static int cmd_wait(const struct cli *cli, uint64_t id)
{
	struct shoal_job_info info;
	shoal_client *c = NULL;
	int rc;

	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	memset(&info, 0, sizeof(info));
	rc = cli_wait(cli, c, id, &info);
	/* A job that ended badly still has a state worth printing; a lost master has none. */
	if (cli->typed[OPT_JSON] && info.id == id && (rc == SHOAL_OK || rc == SHOAL_EJOB)) {
		struct json j;
		int wrc;
		json_init(&j);
		json_job(&j, &info);
		wrc = json_emit(&j);
		if (rc == SHOAL_OK)
			rc = wrc;
	}
	shoal_close(&c);
	return rc;
}

static int cmd_result(const struct cli *cli, uint64_t id)
{
	struct cli_out out;
	shoal_client *c = NULL;
	int rc;

	if ((rc = cli_out_open(&out, cli->val[OPT_OUTPUT])) >= 0)
		return rc;
	if ((rc = cli_connect(cli, &c)) != SHOAL_OK) {
		cli_out_close(&out, false);
		return rc;
	}
	rc = shoal_result(c, id, cli_out_write, &out);
	if (rc != SHOAL_OK && !out.err)
		cli_fail(c, rc);
	if (rc == SHOAL_EUSAGE && out.err)
		rc = SHOAL_OK;
	{
		int wrc = cli_out_close(&out, rc == SHOAL_OK);
		if (rc == SHOAL_OK)
			rc = wrc;
	}
	shoal_close(&c);
	return rc;
}

static int cmd_cancel(const struct cli *cli, uint64_t id)
{
	struct shoal_job_info info;
	shoal_client *c = NULL;
	int rc;

	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	rc = shoal_cancel(c, id);
	if (rc != SHOAL_OK) {
		rc = cli_fail(c, rc);
		goto out;
	}
	/* The cancel answer carries the job's state, but the API does not return it: ask. */
	rc = shoal_status(c, id, &info);
	if (rc != SHOAL_OK) {
		rc = cli_fail(c, rc);
		goto out;
	}
	if (cli->typed[OPT_JSON]) {
		struct json j;
		json_init(&j);
		json_job(&j, &info);
		rc = json_emit(&j);
	} else if (info.state == SHOAL_JOB_CANCELLED) {
		printf("job %" PRIu64 " cancelled\n", id);
	} else {
		printf("job %" PRIu64 " had already %s\n", id, shoal_job_state_name(info.state));
	}
out:
	shoal_close(&c);
	return rc;
}

static int cmd_jobs(const struct cli *cli)
{
	struct shoal_job_info *jobs = NULL;
	shoal_client *c = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	rc = shoal_jobs(c, &jobs, &n);
	if (rc != SHOAL_OK) {
		rc = cli_fail(c, rc);
	} else if (cli->typed[OPT_JSON]) {
		struct json j;
		json_init(&j);
		json_array_begin(&j);
		for (size_t i = 0; i < n; i++)
			json_job(&j, &jobs[i]);
		json_array_end(&j);
		rc = json_emit(&j);
	} else {
		print_jobs(jobs, n);
	}
	free(jobs);
	shoal_close(&c);
	return rc;
}

static int cmd_workers(const struct cli *cli)
{
	struct shoal_worker_info *ws = NULL;
	shoal_client *c = NULL;
	size_t n = 0;
	int rc;

	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	rc = shoal_workers(c, &ws, &n);
	if (rc != SHOAL_OK) {
		rc = cli_fail(c, rc);
	} else if (cli->typed[OPT_JSON]) {
		struct json j;
		json_init(&j);
		json_array_begin(&j);
		for (size_t i = 0; i < n; i++)
			json_worker(&j, &ws[i]);
		json_array_end(&j);
		rc = json_emit(&j);
	} else {
		print_workers(ws, n);
	}
	free(ws);
	shoal_close(&c);
	return rc;
}

/* ---- top, token ---- */

static int cmd_top(const struct cli *cli)
{
	struct top_options o = {.interval_ms = 1000, .iterations = 0};
	shoal_client *c = NULL;
	char err[256];
	uint64_t v;
	int rc;

	if (cli->val[OPT_INTERVAL]) {
		if (parse_seconds_ms(cli->val[OPT_INTERVAL], 100, 3600000, &v, err, sizeof(err)) <
		    0)
			return cli_usage_error("--interval: %s", err);
		o.interval_ms = (unsigned)v;
	}
	if (cli->val[OPT_ITERATIONS]) {
		if (parse_u64(cli->val[OPT_ITERATIONS], 1000000, &v, err, sizeof(err)) < 0 ||
		    v == 0)
			return cli_usage_error(
			    "--iterations: '%s' is not a number of frames from 1 "
			    "to 1000000",
			    cli->val[OPT_ITERATIONS]);
		o.iterations = (unsigned)v;
	}
	o.master = cli->val[OPT_MASTER] ? cli->val[OPT_MASTER] : getenv("SHOAL_MASTER");
	if (!o.master || !*o.master)
		o.master = "127.0.0.1:7411";
	if ((rc = cli_connect(cli, &c)) != SHOAL_OK)
		return rc;
	rc = top_run(c, &o);
	shoal_close(&c);
	return rc;
}

static int cmd_token(const struct cli *cli)
{
	const char *path = auth_secret_path(cli->val[OPT_SECRET_FILE]);
	uint8_t *key = NULL;
	size_t len = 0;
	char err[1024], tok[TOKEN_HEX_LEN + 1];

	if (!path)
		return cli_usage_error("no cluster secret: give --secret-file FILE (or set "
		                       "SHOAL_SECRET_FILE); a master without one needs no token");
	if (auth_secret_load(path, &key, &len, err, sizeof(err)) < 0) {
		cli_err("%s", err);
		return SHOAL_EUSAGE;
	}
	int rc = token_derive(key, len, tok) < 0 ? SHOAL_EJOB : SHOAL_OK;
	auth_secret_free(&key, len);
	if (rc != SHOAL_OK) {
		cli_err("cannot derive the token (OpenSSL failed)");
		return rc;
	}
	printf("%s\n", tok);
	memset(tok, 0, sizeof(tok));
	return fflush(stdout) == EOF ? SHOAL_EJOB : SHOAL_OK;
}

/* ---- lock ---- */

/* After SIGTERM, how long a command whose lease is gone has before SIGKILL. */
#define CLI_LOCK_GRACE_MS       5000u
#define CLI_LOCK_DEFAULT_TTL_MS 30000u

struct cli_lease {
	shoal_client *c;
	const char *name;
	uint64_t token;
};

static int cli_lock_renew(void *arg, char *err, size_t errlen)
{
	struct cli_lease *l = arg;
	int rc = shoal_lock_renew(l->c, l->name, l->token);

	if (rc == SHOAL_OK)
		return 0;
	snprintf(err, errlen, "%s", shoal_errmsg(l->c));
	return rc == SHOAL_EJOB ? LOCKRUN_LOST : -1;
}

/* shoal lock NAME [--ttl S] -- CMD ARGS...: acquire, run CMD while renewing every ttl/3,
 * release; exit with CMD's status. */
static int cmd_lock(const struct cli *cli)
{
	struct cli_lease lease = {.name = cli->operands[0]};
	struct lockrun r;
	uint64_t ttl_ms = CLI_LOCK_DEFAULT_TTL_MS;
	sigset_t saved;
	bool held;
	char err[256];
	int rc;

	if (cli->val[OPT_TTL] &&
	    parse_seconds_ms(cli->val[OPT_TTL], SHOAL_LOCK_TTL_MIN_MS, SHOAL_LOCK_TTL_MAX_MS,
	                     &ttl_ms, err, sizeof(err)) < 0)
		return cli_usage_error("--ttl: %s", err);
	if ((rc = lockrun_check_command(cli->lock_argv[0], err, sizeof(err))) != 0) {
		cli_err("%s", err);
		return rc;
	}
	if ((rc = cli_connect(cli, &lease.c)) != SHOAL_OK)
		return rc;
	rc = shoal_lock_acquire(lease.c, lease.name, (uint32_t)ttl_ms, &lease.token);
	if (rc != SHOAL_OK) {
		rc = cli_fail(lease.c, rc);
		shoal_close(&lease.c);
		return rc;
	}
	memset(&r, 0, sizeof(r));
	r.argv = cli->lock_argv;
	r.name = lease.name;
	r.token = lease.token;
	r.interval_ms = ttl_ms / 3 ? (uint32_t)(ttl_ms / 3) : 1;
	r.grace_ms = CLI_LOCK_GRACE_MS;
	r.renew = cli_lock_renew;
	r.arg = &lease;
	r.diag = stderr;
	rc = lockrun(&r, &saved, &held);
	if (held && shoal_lock_release(lease.c, lease.name, lease.token) != SHOAL_OK)
		cli_err("cannot release lock %s (token %" PRIu64 "): %s; it passes on when its "
		        "lease lapses (%" PRIu64 " ms)",
		        lease.name, lease.token, shoal_errmsg(lease.c), ttl_ms);
	shoal_close(&lease.c);
	/* The mask stays as lockrun left it: a signal that came during the release is dropped at
	 * exit rather than replacing the command's exit status. */
	(void)saved;
	return rc;
}

static void cli_usage(FILE *f)
{
	fputs("usage: shoal [--master HOST:PORT] [--secret-file FILE] [--json] [--quiet] COMMAND "
	      "[ARGS]\n"
	      "\n"
	      "Commands:\n"
	      "  run JOB [-o FILE]      submit a job, wait for it with progress, write its result\n"
	      "  submit JOB             submit a job and print its id\n"
	      "  status ID              show a job\n"
	      "  wait ID                wait for a job to end (exit 0 if it succeeded, 1 if not)\n"
	      "  result ID [-o FILE]    write a succeeded job's result\n"
	      "  cancel ID              cancel a job\n"
	      "  jobs                   list the jobs\n"
	      "  workers                list the workers\n"
	      "  top [--interval S] [-n N]\n"
	      "                         a refreshing view of workers and jobs (q quits)\n"
	      "  token                  print the bearer token of the master's HTTP endpoint\n"
	      "  lock NAME [--ttl S] -- CMD [ARGS...]\n"
	      "                         run CMD (no shell) holding the cluster-wide lock NAME\n"
	      "  help                   show this help\n"
	      "\n"
	      "JOB (run, submit): what to run (one of --op, --exec, --plugin) and one input:\n"
	      "  --op NAME              a built-in op (see Ops below)\n"
	      "  --arg KEY=VALUE        a parameter of the op or plugin (repeatable)\n"
	      "  --exec 'CMD'           run `sh -c CMD` on a worker per partition: the partition\n"
	      "                         on stdin, its stdout the partition's result, in input\n"
	      "                         order (workers need --allow-exec)\n"
	      "  --reduce-exec 'CMD'    with --exec: group the map output by key (text before the\n"
	      "                         first TAB) and pipe each reduce partition to CMD\n"
	      "  --reducers N           reduce partitions of --reduce-exec (default 1)\n"
	      "  --plugin LIB.so        run a C plugin (shoal_plugin.h) on the workers\n"
	      "                         (workers need --allow-exec)\n"
	      "  --file PATH            ship PATH into each task's working directory under its\n"
	      "                         base name (repeatable; with --exec or --plugin)\n"
	      "  --broadcast FILE       a side input shipped once to each worker: knn's training\n"
	      "                         set, $SHOAL_BROADCAST for --exec\n",
	      f);
	/* Two strings: ISO C bounds a string literal's length. */
	fputs("  --range LO:HI          input: the integers LO..HI-1, generated on the workers\n"
	      "  --input FILE|-         input: a file on this host (- for stdin), uploaded\n"
	      "  --input job:ID         input: the result of job ID (a chained stage; waits\n"
	      "                         for it, fails if it fails)\n"
	      "  --input-path PATH      input: a path every worker can read (shared storage)\n"
	      "  --partitions N         split the input into N partitions\n"
	      "  --partition-size SIZE  partition size: bytes of a file input (suffixes K, M, G,\n"
	      "                         powers of 1024) or integers of a range\n"
	      "  --strategy S           round-robin, least-loaded or dynamic (default: the\n"
	      "                         master's)\n"
	      "  --priority P           higher runs first under the master's priority policy\n"
	      "                         (default 0)\n"
	      "  --task-timeout S       stop and retry an attempt that runs longer than S seconds\n"
	      "  --job-timeout S        fail the job once no worker has been connected to run it\n"
	      "                         for S seconds (default: wait for workers forever)\n"
	      "  --cost C               the estimate the sjf policy orders by (default: the\n"
	      "                         input size in bytes; a range's count)\n"
	      "  --after ID             start only once job ID has succeeded (fail if it fails)\n"
	      "  --retries N            failed attempts after which a task fails its job\n"
	      "                         (default: the master's)\n"
	      "  --name TEXT            a label shown by 'shoal jobs'\n"
	      "\n"
	      "Options:\n"
	      "  -o, --output FILE      write the result to FILE instead of stdout (run, result)\n"
	      "  --master HOST:PORT     the master (default: $SHOAL_MASTER, else 127.0.0.1:7411)\n"
	      "  --secret-file FILE     the cluster secret, mode 0600 (default:\n"
	      "                         $SHOAL_SECRET_FILE; none: unauthenticated)\n"
	      "  --tls-ca FILE          connect with TLS; the master's certificate must be signed\n"
	      "                         by this PEM CA (default: $SHOAL_TLS_CA)\n"
	      "  --tls-cert FILE        PEM certificate for a master that verifies clients, with\n"
	      "  --tls-key FILE         its PEM key (default: $SHOAL_TLS_CERT, $SHOAL_TLS_KEY)\n"
	      "  --config FILE          settings from this INI file ([client] and [cluster]:\n"
	      "                         master = HOST:PORT, ...; default: $SHOAL_CONFIG)\n"
	      "  --json                 print JSON (submit, status, wait, cancel, jobs, workers)\n"
	      "  -q, --quiet            no progress line\n"
	      "  -h, --help             show this help\n"
	      "  --version              show the version\n"
	      "Options may come before or after the command.\n"
	      "\n"
	      "Top (shoal top):\n"
	      "  --interval S           seconds between refreshes (default 1, at least 0.1)\n"
	      "  -n, --iterations N     show N frames as plain text, then exit (default: until\n"
	      "                         q, Ctrl-C or the master goes away)\n"
	      "\n"
	      "Lock (shoal lock NAME [--ttl S] -- CMD [ARGS...]):\n"
	      "  --ttl S                the lease's length in seconds (default 30, at least\n"
	      "                         0.1): renewed every S/3 while CMD runs; if the lock's\n"
	      "                         holder dies, the lock passes on S seconds later\n"
	      "  Waits for the lock, runs CMD with SHOAL_LOCK_TOKEN (a fencing token: larger\n"
	      "  with every grant) and SHOAL_LOCK_NAME in its environment, releases the lock\n"
	      "  when CMD exits and exits with CMD's status (128+N if signal N ended it; 126 or\n"
	      "  127 if it cannot be run). If the lock is lost (a renewal came too late) or the\n"
	      "  master cannot be reached, CMD gets SIGTERM (SIGKILL 5 s later) and shoal exits\n"
	      "  1 (lost) or 3. The command may also follow NAME without '--'.\n"
	      "\n"
	      "Ops:\n",
	      f);
	for (size_t i = 0; i < op_count(); i++) {
		const struct op_desc *op = op_at(i);
		fprintf(f, "  %-10s %s", op->name, op->summary ? op->summary : "");
		if (op->args && op->args[0])
			fprintf(f, " (--arg: %s)", op->args);
		fputc('\n', f);
	}
	fputs("\n"
	      "Shipped files (--file, --broadcast, --plugin) are sent once: the master and\n"
	      "the workers keep them by content hash.\n"
	      "With --op knn --arg labeled=1 --input FILE (the last column of each query row is\n"
	      "its label), 'run' also prints 'accuracy: C/N = X' to stderr after the result;\n"
	      "with --input - or --input-path it prints nothing.\n"
	      "\n"
	      "Exit status: 0 success, 1 the job failed or was cancelled, 2 usage error,\n"
	      "3 cannot reach or authenticate with the master (or lost it, or the TLS handshake\n"
	      "failed).\n",
	      f);
}

int main(int argc, char **argv)
{
	struct cli cli = {0};
	uint64_t id = 0;
	int rc;

	/* A closed stdout must surface as EPIPE from fwrite, not kill us mid-download. */
	signal(SIGPIPE, SIG_IGN);

	rc = cli_parse(&cli, argc, argv);
	if (rc >= 0)
		goto out;
	if (cli.typed[OPT_HELP] || (cli.cmd && cli.cmd->cmd == CMD_HELP)) {
		cli_usage(stdout);
		rc = fflush(stdout) == EOF ? SHOAL_EJOB : SHOAL_OK;
		goto out;
	}
	if (cli.typed[OPT_VERSION]) {
		printf("shoal %s\n", SHOAL_VERSION);
		rc = SHOAL_OK;
		goto out;
	}
	if (!cli.cmd) {
		cli_err("no command given");
		cli_usage(stderr);
		rc = SHOAL_EUSAGE;
		goto out;
	}
	if ((rc = cli_load_config(&cli, argv)) >= 0)
		goto out;
	if ((rc = cli_check_applies(&cli)) >= 0)
		goto out;
	if (cli.extra) {
		rc = cli_usage_error("unexpected argument '%s'", cli.extra);
		goto out;
	}
	if ((rc = cli_check_operands(&cli, &id)) >= 0)
		goto out;

	switch (cli.cmd->cmd) {
	case CMD_RUN:
		rc = cmd_run(&cli);
		break;
	case CMD_SUBMIT:
		rc = cmd_submit(&cli);
		break;
	case CMD_STATUS:
		rc = cmd_status(&cli, id);
		break;
	case CMD_WAIT:
		rc = cmd_wait(&cli, id);
		break;
	case CMD_RESULT:
		rc = cmd_result(&cli, id);
		break;
	case CMD_CANCEL:
		rc = cmd_cancel(&cli, id);
		break;
	case CMD_JOBS:
		rc = cmd_jobs(&cli);
		break;
	case CMD_WORKERS:
		rc = cmd_workers(&cli);
		break;
	case CMD_LOCK:
		rc = cmd_lock(&cli);
		break;
	case CMD_TOP:
		rc = cmd_top(&cli);
		break;
	case CMD_TOKEN:
		rc = cmd_token(&cli);
		break;
	default:
		rc = SHOAL_EUSAGE;
		break;
	}
out:
	for (size_t i = 0; i < cli.nowned; i++)
		free(cli.owned[i]);
	free(cli.owned);
	free(cli.args);
	free(cli.files);
	return rc;
}
