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

enum worker_config_result worker_config_parse(struct worker_config *cfg, int argc, char **argv,
                                              const char *env_master, uint32_t default_slots,
                                              FILE *out, FILE *err)
{
	struct option longopts[ARRAY_SIZE(worker_options) + 1];
	for (size_t i = 0; i < ARRAY_SIZE(worker_options); i++) {
		longopts[i] =
		    (struct option){worker_options[i].name,
		                    worker_options[i].metavar ? required_argument : no_argument,
		                    NULL, worker_options[i].id};
	}
	longopts[ARRAY_SIZE(worker_options)] = (struct option){NULL, 0, NULL, 0};

	memset(cfg, 0, sizeof(*cfg));
	cfg->slots = default_slots < 1                  ? 1
	             : default_slots > WORKER_MAX_SLOTS ? WORKER_MAX_SLOTS
	                                                : default_slots;
	cfg->log_level = LOG_INFO;
	cfg->cache_size = WORKER_DEFAULT_CACHE_SIZE;

	char why[256];
	bool master_flag = false;
	/* glibc: optind = 0 reinitialises getopt completely (tests parse several times). */
	optind = 0;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		const char *opt = argv[optind - 1];
		switch (c) {
		case OPT_MASTER:
			if (worker_config_set_master(cfg, optarg, why, sizeof(why)) != 0)
				return worker_config_usage(err, "invalid --master '%s': %s", optarg,
				                           why);
			master_flag = true;
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
		case OPT_HELP:
			worker_config_help(out, default_slots);
			return WORKER_CONFIG_EXIT;
		case OPT_VERSION:
			fprintf(out, PROG " %s (protocol %u)\n", SHOAL_VERSION,
			        SHOAL_PROTOCOL_VERSION);
			return WORKER_CONFIG_EXIT;
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
	const struct tls_files tls = {cfg->tls_cert, cfg->tls_key, cfg->tls_ca};
	if (tls_files_check(TLS_CLIENT, &tls, why, sizeof(why)) != 0)
		return worker_config_usage(err, "%s", why);
	/* --master wins over SHOAL_MASTER, which wins over the default. */
	if (!master_flag && env_master != NULL && env_master[0] != '\0') {
		if (worker_config_set_master(cfg, env_master, why, sizeof(why)) != 0)
			return worker_config_usage(err, "invalid SHOAL_MASTER '%s': %s", env_master,
			                           why);
	} else if (!master_flag) {
		(void)worker_config_set_master(cfg, "127.0.0.1:7411", why, sizeof(why));
	}
	return WORKER_CONFIG_RUN;
}
