/* config.c: shoal-worker's flags. One table (worker_options) feeds both getopt_long and
 * --help; values are validated here, once, so the rest of the worker trusts the config. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "codec.h"
#include "conffile.h"
#include "tls.h"
#include "util.h"

#ifndef SHOAL_VERSION
#define SHOAL_VERSION "unknown"
#endif

#define PROG "shoal-worker"

enum worker_opt {
	OPT_MASTER = 'm',
	OPT_SLOTS = 's',
	OPT_NAME = 'n',
	OPT_ALLOW_EXEC = 'x',
	OPT_LOG_LEVEL = 'l',
	OPT_CACHE_DIR = 'c',
	OPT_CACHE_SIZE = 'C',
	OPT_WORK_DIR = 'w',
	OPT_SECRET_FILE = 'S',
	OPT_ADVERTISE = 'a',
	OPT_CONFIG = 1000,
	OPT_PRINT_CONFIG,
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
	OPT_TLS_CERT = 256, /* long options only */
	OPT_TLS_KEY,
	OPT_TLS_CA,
};

struct worker_option {
	const char *name;
	int id;
	const char *metavar; /* NULL: the option takes no value */
	const char *help;
};

static const struct worker_option worker_options[] = {
    {"master", OPT_MASTER, "HOST:PORT",
     "master to register with (env SHOAL_MASTER; default 127.0.0.1:7411)"},
    {"slots", OPT_SLOTS, "N", "tasks run at once (default: available CPUs)"},
    {"name", OPT_NAME, "NAME", "name shown by `shoal workers` (default HOSTNAME-PID)"},
    {"advertise", OPT_ADVERTISE, "HOST",
     "address this host is reachable at, shown by `shoal workers` (default: the local "
     "address of the connection to the master)"},
    {"allow-exec", OPT_ALLOW_EXEC, NULL,
     "run --exec commands and --plugin code (user code runs on this host)"},
    {"cache-dir", OPT_CACHE_DIR, "DIR",
     "where shipped files are cached (default ~/.cache/shoal, /var/cache/shoal as root)"},
    {"cache-size", OPT_CACHE_SIZE, "BYTES",
     "cache bound; K, M, G, T suffixes are powers of 1024 (default 4G)"},
    {"work-dir", OPT_WORK_DIR, "DIR",
     "--exec tasks' working directories go here (default: a temporary directory)"},
    {"secret-file", OPT_SECRET_FILE, "FILE",
     "cluster secret shared with the master, mode 0600 (default $SHOAL_SECRET_FILE)"},
    {"tls-ca", OPT_TLS_CA, "FILE",
     "connect with TLS; the master's certificate must be signed by this PEM CA"},
    {"tls-cert", OPT_TLS_CERT, "FILE",
     "PEM certificate presented to a master that verifies peers (needs --tls-key)"},
    {"tls-key", OPT_TLS_KEY, "FILE", "the certificate's PEM private key"},
    {"log-level", OPT_LOG_LEVEL, "LEVEL", "debug, info, warn or error (default info)"},
    {"config", OPT_CONFIG, "FILE",
     "read settings from this INI file ([worker] and [cluster]; env SHOAL_CONFIG)"},
    {"print-config", OPT_PRINT_CONFIG, NULL,
     "print the effective configuration as a config file and exit"},
    {"help", OPT_HELP, NULL, "print this help and exit"},
    {"version", OPT_VERSION, NULL, "print the version and exit"},
};

static void worker_config_help(FILE *out, uint32_t default_slots)
{
	fprintf(out, "Usage: " PROG " [OPTION]...\n"
	             "Run tasks for a shoal master: register, heartbeat, execute, report.\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(worker_options); i++) {
		const struct worker_option *o = &worker_options[i];
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", o->name, o->metavar ? " " : "",
		         o->metavar ? o->metavar : "");
		fprintf(out, "  %-22s %s", left, o->help);
		if (o->id == OPT_SLOTS)
			fprintf(out, " [%" PRIu32 "]", default_slots);
		fputc('\n', out);
	}
	fprintf(out,
	        "\nEvery option but --config and --print-config may also be set in the config\n"
	        "file (key = value under [worker], e.g. slots = 4) or as an environment\n"
	        "variable (SHOAL_SLOTS=4). Flags win over the environment, which wins over\n"
	        "the file.\n");
	fprintf(out, "\nExit status: 0 after a clean shutdown (SIGINT/SIGTERM), 1 if the master "
	             "refuses this\nworker for good (version or cluster secret mismatch), 2 on a "
	             "usage error\n(an unusable --secret-file included).\n");
}

static enum worker_config_result worker_config_usage(FILE *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum worker_config_result worker_config_usage(FILE *err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs(PROG ": ", err);
	if (conffile_origin())
		fprintf(err, "%s: ", conffile_origin());
	vfprintf(err, fmt, ap);
	fputs("\nTry '" PROG " --help' for more information.\n", err);
	va_end(ap);
	return WORKER_CONFIG_USAGE;
}

static int worker_config_set_master(struct worker_config *cfg, const char *s, char *why,
                                    size_t whylen)
{
	if (strlen(s) >= sizeof(cfg->master)) {
		snprintf(why, whylen, "address too long");
		return -1;
	}
	if (addr_parse(s, SHOAL_DEFAULT_PORT, cfg->master_host, sizeof(cfg->master_host),
	               &cfg->master_port, why, whylen) != 0)
		return -1;
	if (cfg->master_port == 0) {
		snprintf(why, whylen, "port 0 is not a master's port");
		return -1;
	}
	snprintf(cfg->master, sizeof(cfg->master), "%s", s);
	return 0;
}

/* A byte count: digits, then an optional K, M, G or T (powers of 1024; a trailing B or iB
 * is allowed, "4GiB"). */
static int worker_config_parse_bytes(const char *s, uint64_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	unsigned shift = 0;
	switch (*end) {
	case 'K':
	case 'k':
		shift = 10;
		end++;
		break;
	case 'M':
	case 'm':
		shift = 20;
		end++;
		break;
	case 'G':
	case 'g':
		shift = 30;
		end++;
		break;
	case 'T':
	case 't':
		shift = 40;
		end++;
		break;
	default:
		break;
	}
	if (shift > 0 && *end == 'i')
		end++;
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || (shift > 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = (uint64_t)v << shift;
	return 0;
}

static int worker_config_set_path(char *dst, size_t dstlen, const char *s)
{
	if (s[0] == '\0' || strlen(s) >= dstlen)
		return -1;
	snprintf(dst, dstlen, "%s", s);
	return 0;
}

/* Strict decimal: digits only, no sign, no trailing bytes. */
static int worker_config_parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

/* What one pass of the option parser needs besides the config. */
struct worker_config_pass {
	struct worker_config *cfg;
	uint32_t default_slots;
	FILE *out, *err;
	bool master_set;   /* by the file, the environment or a flag */
	bool master_flag;  /* by a flag on the command line */
	bool print_config; /* --print-config */
	bool from_argv;    /* this pass parses the command line itself */
	enum worker_config_result rc;
};

static void worker_config_longopts(struct option *longopts)
{
	for (size_t i = 0; i < ARRAY_SIZE(worker_options); i++) {
		longopts[i] =
		    (struct option){worker_options[i].name,
		                    worker_options[i].metavar ? required_argument : no_argument,
		                    NULL, worker_options[i].id};
	}
	longopts[ARRAY_SIZE(worker_options)] = (struct option){NULL, 0, NULL, 0};
}

/* Parses argv's options into p->cfg: the command line, or one config entry. Returns 0 to go
 * on, else 1 with p->rc set (help or version printed, or a usage error). */
static int worker_config_pass(void *arg, int argc, char **argv)
{
	struct worker_config_pass *p = arg;
	struct worker_config *cfg = p->cfg;
	FILE *out = p->out, *err = p->err;
	struct option longopts[ARRAY_SIZE(worker_options) + 1];
	worker_config_longopts(longopts);

	char why[256];
	/* glibc: optind = 0 reinitialises getopt completely (tests parse several times). */
	optind = 0;
	opterr = 0;
	int c;
	p->rc = WORKER_CONFIG_USAGE;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		const char *opt = argv[optind - 1];
		switch (c) {
		case OPT_MASTER:
			if (worker_config_set_master(cfg, optarg, why, sizeof(why)) != 0)
				return worker_config_usage(err, "invalid --master '%s': %s", optarg,
				                           why);
			p->master_set = true;
			p->master_flag |= p->from_argv;
			break;
		case OPT_SLOTS:
			if (worker_config_parse_u32(optarg, 1, WORKER_MAX_SLOTS, &cfg->slots) != 0)
				return worker_config_usage(
				    err,
				    "invalid --slots '%s': expected a whole number from 1 to %u",
				    optarg, WORKER_MAX_SLOTS);
			break;
		case OPT_NAME:
			if (optarg[0] == '\0' || strlen(optarg) > WORKER_NAME_MAX)
				return worker_config_usage(
				    err, "invalid --name '%s': expected 1 to %u bytes", optarg,
				    WORKER_NAME_MAX);
			snprintf(cfg->name, sizeof(cfg->name), "%s", optarg);
			break;
		case OPT_ADVERTISE:
			if (optarg[0] == '\0' || strlen(optarg) >= sizeof(cfg->advertise) ||
			    strpbrk(optarg, " \t\n\r\"") != NULL)
				return worker_config_usage(err,
				                           "invalid --advertise '%s': expected a "
				                           "host name or address of 1 "
				                           "to %zu bytes without spaces or quotes",
				                           optarg, sizeof(cfg->advertise) - 1);
			snprintf(cfg->advertise, sizeof(cfg->advertise), "%s", optarg);
			break;
		case OPT_ALLOW_EXEC:
			cfg->allow_exec = true;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_parse(optarg, &cfg->log_level) != 0)
				return worker_config_usage(
				    err,
				    "invalid --log-level '%s': expected debug, info, warn or error",
				    optarg);
			break;
		case OPT_CACHE_DIR:
			if (worker_config_set_path(cfg->cache_dir, sizeof(cfg->cache_dir),
			                           optarg) != 0)
				return worker_config_usage(err, "invalid --cache-dir '%s'", optarg);
			break;
		case OPT_CACHE_SIZE:
			if (worker_config_parse_bytes(optarg, &cfg->cache_size) != 0)
				return worker_config_usage(
				    err,
				    "invalid --cache-size '%s': expected bytes, like 512M or 4G",
				    optarg);
			break;
		case OPT_WORK_DIR:
			if (worker_config_set_path(cfg->work_dir, sizeof(cfg->work_dir), optarg) !=
			    0)
				return worker_config_usage(err, "invalid --work-dir '%s'", optarg);
			break;
		case OPT_SECRET_FILE:
			if (worker_config_set_path(cfg->secret_file, sizeof(cfg->secret_file),
			                           optarg) != 0)
				return worker_config_usage(err, "invalid --secret-file '%s'",
				                           optarg);
			break;
		case OPT_TLS_CERT:
		case OPT_TLS_KEY:
		case OPT_TLS_CA: {
			char *dst = c == OPT_TLS_CERT  ? cfg->tls_cert
			            : c == OPT_TLS_KEY ? cfg->tls_key
			                               : cfg->tls_ca;
			if (worker_config_set_path(dst, WORKER_PATH_MAX, optarg) != 0)
				return worker_config_usage(err, "invalid %s '%s'", opt, optarg);
			break;
		}
		case OPT_CONFIG:
			break; /* read before the flags (worker_config_parse) */
		case OPT_PRINT_CONFIG:
			p->print_config = true;
			break;
		case OPT_HELP:
			worker_config_help(out, p->default_slots);
			p->rc = WORKER_CONFIG_EXIT;
			return 1;
		case OPT_VERSION:
			fprintf(out, PROG " %s (protocol %u)\n", SHOAL_VERSION,
			        SHOAL_PROTOCOL_VERSION);
			p->rc = WORKER_CONFIG_EXIT;
			return 1;
		case ':':
			return worker_config_usage(err, "option '%s' needs a value", opt);
		default:
			if (strncmp(opt, "--", 2) == 0 && strchr(opt, '=') != NULL)
				return worker_config_usage(err, "option '%s' takes no value", opt);
			return worker_config_usage(err, "unknown option '%s'", opt);
		}
	}
	if (optind < argc)
		return worker_config_usage(err, "unexpected argument '%s'", argv[optind]);
	p->rc = WORKER_CONFIG_RUN;
	return 0;
}

/* --print-config: the effective settings, as a config file would set them. */
static void worker_config_print(const struct worker_config *cfg, FILE *out)
{
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	fprintf(out,
	        "# " PROG " %s: effective configuration (flags > environment > file > "
	        "defaults)\n[worker]\n",
	        SHOAL_VERSION);
	fprintf(out, "master = %s\n", cfg->master);
	fprintf(out, "slots = %" PRIu32 "\n", cfg->slots);
	if (cfg->name[0])
		fprintf(out, "name = %s\n", cfg->name);
	else
		fprintf(out, "# name = HOSTNAME-PID (the default)\n");
	fprintf(out, "allow-exec = %s\n", cfg->allow_exec ? "true" : "false");
	if (cfg->cache_dir[0])
		fprintf(out, "cache-dir = %s\n", cfg->cache_dir);
	else
		fprintf(out,
		        "# cache-dir = ~/.cache/shoal, /var/cache/shoal as root (the default)\n");
	fprintf(out, "cache-size = %" PRIu64 "\n", cfg->cache_size);
	if (cfg->work_dir[0])
		fprintf(out, "work-dir = %s\n", cfg->work_dir);
	else
		fprintf(out, "# work-dir = a temporary directory (the default)\n");
	fprintf(out, "%ssecret-file = %s\n", cfg->secret_file[0] ? "" : "# ",
	        cfg->secret_file[0] ? cfg->secret_file : "(none: no cluster secret)");
	fprintf(out, "%stls-ca = %s\n", cfg->tls_ca[0] ? "" : "# ",
	        cfg->tls_ca[0] ? cfg->tls_ca : "(none: plain TCP)");
	fprintf(out, "%stls-cert = %s\n", cfg->tls_cert[0] ? "" : "# ",
	        cfg->tls_cert[0] ? cfg->tls_cert : "(none)");
	fprintf(out, "%stls-key = %s\n", cfg->tls_key[0] ? "" : "# ",
	        cfg->tls_key[0] ? cfg->tls_key : "(none)");
	if (cfg->advertise[0])
		fprintf(out, "advertise = %s\n", cfg->advertise);
	else
		fprintf(out, "# advertise = the connection's local address (the default)\n");
	fprintf(out, "log-level = %s\n",
	        (unsigned)cfg->log_level < 4 ? levels[cfg->log_level] : "info");
}

enum worker_config_result worker_config_parse(struct worker_config *cfg, int argc, char **argv,
                                              const char *env_master, uint32_t default_slots,
                                              FILE *out, FILE *err)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->slots = default_slots < 1                  ? 1
	             : default_slots > WORKER_MAX_SLOTS ? WORKER_MAX_SLOTS
	                                                : default_slots;
	cfg->log_level = LOG_INFO;
	cfg->cache_size = WORKER_DEFAULT_CACHE_SIZE;

	struct worker_config_pass p = {
	    .cfg = cfg, .default_slots = default_slots, .out = out, .err = err};
	char why[1024];

	/* The config file and SHOAL_* variables first, through the same parser; then the
	 * command line. */
	struct option longopts[ARRAY_SIZE(worker_options) + 1];
	worker_config_longopts(longopts);
	struct conffile c;
	conffile_init(&c, PROG, "worker", longopts);
	const char *path = conffile_path(argc, argv);
	int rc = 0;
	if ((path && conffile_read_file(&c, path, why, sizeof(why)) < 0) ||
	    conffile_read_env(&c, why, sizeof(why)) < 0) {
		fprintf(err, PROG ": %s\n", why);
		p.rc = WORKER_CONFIG_USAGE;
		rc = 1;
	} else {
		rc = conffile_apply(&c, worker_config_pass, &p);
	}
	conffile_deinit(&c);
	if (rc != 0)
		return p.rc;
	p.from_argv = true;
	if (worker_config_pass(&p, argc, argv) != 0)
		return p.rc;

	const struct tls_files tls = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
	if (tls_files_check(TLS_CLIENT, &tls, why, sizeof(why)) != 0)
		return worker_config_usage(err, "%s", why);
	/* --master wins over SHOAL_MASTER, which wins over the file and the default. */
	if (!p.master_flag && env_master != NULL && env_master[0] != '\0') {
		if (worker_config_set_master(cfg, env_master, why, sizeof(why)) != 0)
			return worker_config_usage(err, "invalid SHOAL_MASTER '%s': %s", env_master,
			                           why);
	} else if (!p.master_set) {
		(void)worker_config_set_master(cfg, "127.0.0.1:7411", why, sizeof(why));
	}
	if (p.print_config) {
		worker_config_print(cfg, out);
		return WORKER_CONFIG_EXIT;
	}
	return WORKER_CONFIG_RUN;
}
