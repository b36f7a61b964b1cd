/* main.c: shoal-master's command line, state dir and event loop. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "addr.h"
#include "auth.h"
#include "codec.h"
#include "conffile.h"
#include "frame.h"
#include "log.h"
#include "master.h"
#include "notify.h"
#include "tls.h"
#include "util.h"

#define EXIT_USAGE 2

/* One table drives parsing and --help. */
struct option_doc {
	struct option opt;
	const char *arg;
	const char *help;
};

enum {
	OPT_LISTEN = 'l',
	OPT_STATE_DIR = 's',
	OPT_STRATEGY = 1000,
	OPT_POLICY,
	OPT_AGING,
	OPT_HEARTBEAT_TIMEOUT,
	OPT_MAX_FRAME,
	OPT_RETRIES,
	OPT_LOG_LEVEL,
	OPT_ALLOW_EXEC,
	OPT_KEEP_JOBS,
	OPT_SECRET_FILE,
	OPT_INSECURE,
	OPT_HANDSHAKE_TIMEOUT,
	OPT_MAX_CONNS,
	OPT_MAX_CONNS_PER_ADDR,
	OPT_MAX_QUEUED_JOBS,
	OPT_MAX_UPLOAD,
	OPT_UPLOAD_RESUME_TIMEOUT,
	OPT_MAX_WRITE_QUEUE,
	OPT_WRITE_STALL_TIMEOUT,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CA,
	OPT_HTTP,
	OPT_CONFIG,
	OPT_PRINT_CONFIG,
	OPT_HELP = 'h',
	OPT_VERSION = 'V',
};

static const struct option_doc options[] = {
    {{"listen", required_argument, NULL, OPT_LISTEN},
     "HOST:PORT",
     "where workers and clients connect (default 127.0.0.1:7411; port 0 picks a free one)"},
    {{"state-dir", required_argument, NULL, OPT_STATE_DIR},
     "DIR",
     "the journal, uploaded inputs and results; a restart resumes the jobs it holds "
     "(default /var/lib/shoal as root, else $XDG_STATE_HOME/shoal)"},
    {{"keep-jobs", required_argument, NULL, OPT_KEEP_JOBS},
     "N",
     "ended jobs kept with their results in the state dir; older ones are removed "
     "(default 1000)"},
    {{"policy", required_argument, NULL, OPT_POLICY},
     "P",
     "which job's tasks go next: fcfs | sjf | priority (default fcfs)"},
    {{"aging", required_argument, NULL, OPT_AGING},
     "R",
     "priority policy: points a waiting job gains per second (default 0.1)"},
    {{"strategy", required_argument, NULL, OPT_STRATEGY},
     "S",
     "default task placement: round-robin | least-loaded | dynamic (default dynamic)"},
    {{"heartbeat-timeout", required_argument, NULL, OPT_HEARTBEAT_TIMEOUT},
     "SECONDS",
     "a worker silent this long is dead and its tasks run elsewhere (default 5)"},
    {{"max-frame", required_argument, NULL, OPT_MAX_FRAME},
     "BYTES",
     "largest message accepted (default 67108864)"},
    {{"retries", required_argument, NULL, OPT_RETRIES},
     "N",
     "failed attempts after which a task fails its job, unless the job says (default 3)"},
    {{"allow-exec", no_argument, NULL, OPT_ALLOW_EXEC},
     NULL,
     "run --plugin combine steps in the master (loads user code into this process)"},
    {{"secret-file", required_argument, NULL, OPT_SECRET_FILE},
     "FILE",
     "cluster secret (mode 0600): workers and clients must prove they hold it "
     "(default $SHOAL_SECRET_FILE; none: unauthenticated, loopback only)"},
    {{"insecure", no_argument, NULL, OPT_INSECURE},
     NULL,
     "allow listening beyond loopback without a cluster secret (anyone who can connect "
     "can run jobs)"},
    {{"handshake-timeout", required_argument, NULL, OPT_HANDSHAKE_TIMEOUT},
     "SECONDS",
     "a connection must complete its whole handshake within this (default 10)"},
    {{"max-connections", required_argument, NULL, OPT_MAX_CONNS},
     "N",
     "connections open at once, all peers; more are refused (default 1024)"},
    {{"max-connections-per-addr", required_argument, NULL, OPT_MAX_CONNS_PER_ADDR},
     "N",
     "connections open at once from one source address (default 256)"},
    {{"max-queued-jobs", required_argument, NULL, OPT_MAX_QUEUED_JOBS},
     "N",
     "unfinished jobs; a submit beyond is refused (default 10000)"},
    {{"max-upload", required_argument, NULL, OPT_MAX_UPLOAD},
     "BYTES",
     "largest uploaded input of one job (default 0: no limit but the disk)"},
    {{"upload-resume-timeout", required_argument, NULL, OPT_UPLOAD_RESUME_TIMEOUT},
     "SECONDS",
     "an upload whose client left (or that a restart cut short) waits this long for the "
     "client to resume it, then fails its job (default 120)"},
    {{"max-write-queue", required_argument, NULL, OPT_MAX_WRITE_QUEUE},
     "BYTES",
     "bytes queued to one peer before it is disconnected (default 268435456; at least "
     "--max-frame + 4 MiB)"},
    {{"write-stall-timeout", required_argument, NULL, OPT_WRITE_STALL_TIMEOUT},
     "SECONDS",
     "a peer that reads nothing of what is queued to it this long is disconnected "
     "(default 60)"},
    {{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
     "FILE",
     "serve TLS with this PEM certificate (chain); needs --tls-key"},
    {{"tls-key", required_argument, NULL, OPT_TLS_KEY},
     "FILE",
     "the certificate's PEM private key"},
    {{"tls-ca", required_argument, NULL, OPT_TLS_CA},
     "FILE",
     "mutual TLS: workers and clients must present a certificate signed by this PEM CA"},
    {{"http", required_argument, NULL, OPT_HTTP},
     "HOST:PORT|off",
     "dashboard, JSON API and /metrics (default 127.0.0.1:7412; port 0 picks a free one)"},
    {{"log-level", required_argument, NULL, OPT_LOG_LEVEL}, "LEVEL", "debug | info | warn | error"},
    {{"config", required_argument, NULL, OPT_CONFIG},
     "FILE",
     "read settings from this INI file ([master] and [cluster]; env SHOAL_CONFIG)"},
    {{"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
     NULL,
     "print the effective configuration as a config file and exit"},
    {{"help", no_argument, NULL, OPT_HELP}, NULL, "show this help"},
    {{"version", no_argument, NULL, OPT_VERSION}, NULL, "show the version"},
};

/* Set by --print-config. */
static bool print_config;

static void usage(FILE *f)
{
	fprintf(
	    f, "usage: shoal-master [OPTIONS]\n\n"
	       "Accepts shoal workers and clients, partitions jobs into tasks, balances them over\n"
	       "the workers, re-runs what fails and aggregates the results.\n\n");
	for (size_t i = 0; i < ARRAY_SIZE(options); i++) {
		char left[64];
		snprintf(left, sizeof(left), "--%s%s%s", options[i].opt.name,
		         options[i].arg ? " " : "", options[i].arg ? options[i].arg : "");
		fprintf(f, "  %-28s %s\n", left, options[i].help);
	}
	fprintf(f, "\nEvery option but --config and --print-config may also be set in the config\n"
	           "file (key = value under [master], e.g. state-dir = /srv/shoal) or as an\n"
	           "environment variable (SHOAL_STATE_DIR=/srv/shoal). Flags win over the\n"
	           "environment, which wins over the file.\n");
}

static int usage_error(const char *fmt, const char *what)
{
	fprintf(stderr, "shoal-master: ");
	if (conffile_origin())
		fprintf(stderr, "%s: ", conffile_origin());
	fprintf(stderr, fmt, what);
	fprintf(stderr, "\nTry 'shoal-master --help'.\n");
	return EXIT_USAGE;
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* The default state dir fell back to /tmp (no HOME, no XDG_STATE_HOME): shared with every
 * user and often a tmpfs, so prepare_state_dir checks whose it is and says it may not last. */
static bool state_dir_in_tmp;

static char *default_state_dir(void)
{
	if (geteuid() == 0)
		return xstrdup("/var/lib/shoal");
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char path[PATH_MAX];
	if (xdg && *xdg)
		snprintf(path, sizeof(path), "%s/shoal", xdg);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/.local/state/shoal", home);
	else {
		snprintf(path, sizeof(path), "/tmp/shoal-%u", (unsigned)geteuid());
		state_dir_in_tmp = true;
	}
	return xstrdup(path);
}

static int parse_args(int argc, char **argv, struct master_config *cfg)
{
	struct option longopts[ARRAY_SIZE(options) + 1];
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		longopts[i] = options[i].opt;
	memset(&longopts[ARRAY_SIZE(options)], 0, sizeof(struct option));

	/* glibc: optind = 0 restarts getopt (the config's entries are parsed one at a time). */
	optind = 0;
	opterr = 0;
	int ch;
	uint64_t v;
	char err[256];
	while ((ch = getopt_long(argc, argv, ":hV", longopts, NULL)) != -1) {
		switch (ch) {
		case OPT_LISTEN:
			if (addr_parse(optarg, SHOAL_DEFAULT_PORT, cfg->listen_host,
			               sizeof(cfg->listen_host), &cfg->listen_port, err,
			               sizeof(err)) < 0)
				return usage_error("--listen: %s", err);
			break;
		case OPT_STATE_DIR:
			free(cfg->state_dir);
			cfg->state_dir = xstrdup(optarg);
			break;
		case OPT_STRATEGY:
			if (!strcmp(optarg, "round-robin"))
				cfg->strategy = SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN;
			else if (!strcmp(optarg, "dynamic"))
				cfg->strategy = SHOAL__STRATEGY__STRATEGY_DYNAMIC;
			else if (!strcmp(optarg, "least-loaded"))
				cfg->strategy = SHOAL__STRATEGY__STRATEGY_LEAST_LOADED;
			else
				return usage_error("--strategy: unknown strategy '%s' (known: "
				                   "round-robin, least-loaded, dynamic)",
				                   optarg);
			break;
		case OPT_POLICY:
			if (policy_parse(optarg, &cfg->policy) < 0)
				return usage_error(
				    "--policy: unknown policy '%s' (known: fcfs, sjf, "
				    "priority)",
				    optarg);
			break;
		case OPT_AGING: {
			char *end;
			errno = 0;
			double a = strtod(optarg, &end);
			if (errno || *end || end == optarg || !(a >= 0.0 && a <= 1e6))
				return usage_error(
				    "--aging: '%s' is not a rate between 0 and 1000000 "
				    "points per second",
				    optarg);
			cfg->aging = a;
			break;
		}
		case OPT_HEARTBEAT_TIMEOUT:
			if (parse_u64(optarg, 1, 3600, &v) < 0)
				return usage_error("--heartbeat-timeout: '%s' is not a number of "
				                   "seconds between 1 and 3600",
				                   optarg);
			cfg->heartbeat_timeout_ms = (uint32_t)(v * 1000);
			break;
		case OPT_MAX_FRAME:
			if (parse_u64(optarg, 4096, UINT32_MAX, &v) < 0)
				return usage_error(
				    "--max-frame: '%s' is not a size between 4096 and "
				    "4294967295 bytes",
				    optarg);
			cfg->max_frame = (uint32_t)v;
			break;
		case OPT_RETRIES:
			if (parse_u64(optarg, 1, 1000, &v) < 0)
				return usage_error(
				    "--retries: '%s' is not a number between 1 and 1000", optarg);
			cfg->default_retries = (uint32_t)v;
			break;
		case OPT_LOG_LEVEL: {
			enum log_level lvl;
			if (log_level_parse(optarg, &lvl) < 0)
				return usage_error("--log-level: unknown level '%s' (debug, info, "
				                   "warn, error)",
				                   optarg);
			log_set_level(lvl);
			break;
		}
		case OPT_ALLOW_EXEC:
			cfg->allow_exec = true;
			break;
		case OPT_KEEP_JOBS:
			if (parse_u64(optarg, 0, 100000000, &v) < 0)
				return usage_error(
				    "--keep-jobs: '%s' is not a number between 0 and 100000000",
				    optarg);
			cfg->keep_jobs = (uint32_t)v;
			break;
		case OPT_SECRET_FILE:
			free(cfg->secret_file);
			cfg->secret_file = xstrdup(optarg);
			break;
		case OPT_INSECURE:
			cfg->insecure = true;
			break;
		case OPT_HANDSHAKE_TIMEOUT:
			if (parse_u64(optarg, 1, 3600, &v) < 0)
				return usage_error("--handshake-timeout: '%s' is not a number of "
				                   "seconds between 1 and 3600",
				                   optarg);
			cfg->handshake_timeout_ms = (uint32_t)(v * 1000);
			break;
		case OPT_MAX_CONNS:
			if (parse_u64(optarg, 1, 1000000, &v) < 0)
				return usage_error(
				    "--max-connections: '%s' is not a number between 1 "
				    "and 1000000",
				    optarg);
			cfg->max_conns = (uint32_t)v;
			break;
		case OPT_MAX_CONNS_PER_ADDR:
			if (parse_u64(optarg, 1, 1000000, &v) < 0)
				return usage_error(
				    "--max-connections-per-addr: '%s' is not a number "
				    "between 1 and 1000000",
				    optarg);
			cfg->max_conns_per_addr = (uint32_t)v;
			break;
		case OPT_MAX_QUEUED_JOBS:
			if (parse_u64(optarg, 1, 100000000, &v) < 0)
				return usage_error(
				    "--max-queued-jobs: '%s' is not a number between 1 "
				    "and 100000000",
				    optarg);
			cfg->max_queued_jobs = (uint32_t)v;
			break;
		case OPT_MAX_UPLOAD:
			if (parse_u64(optarg, 0, UINT64_MAX, &v) < 0)
				return usage_error(
				    "--max-upload: '%s' is not a number of bytes (0: no "
				    "limit)",
				    optarg);
			cfg->max_upload = v;
			break;
		case OPT_MAX_WRITE_QUEUE:
			if (parse_u64(optarg, 1, UINT64_MAX, &v) < 0)
				return usage_error(
				    "--max-write-queue: '%s' is not a number of bytes", optarg);
			cfg->max_write_queue = v;
			break;
		case OPT_UPLOAD_RESUME_TIMEOUT:
			if (parse_u64(optarg, 1, 86400, &v) < 0)
				return usage_error(
				    "--upload-resume-timeout: '%s' is not a number of "
				    "seconds between 1 and 86400",
				    optarg);
			cfg->upload_resume_ms = (uint32_t)(v * 1000);
			break;
		case OPT_WRITE_STALL_TIMEOUT:
			if (parse_u64(optarg, 1, 86400, &v) < 0)
				return usage_error("--write-stall-timeout: '%s' is not a number of "
				                   "seconds between 1 and 86400",
				                   optarg);
			cfg->write_stall_ms = (uint32_t)(v * 1000);
			break;
		case OPT_TLS_CERT:
			free((char *)cfg->tls.cert); /* the config's argv is short-lived */
			cfg->tls.cert = xstrdup(optarg);
			break;
		case OPT_TLS_KEY:
			free((char *)cfg->tls.key);
			cfg->tls.key = xstrdup(optarg);
			break;
		case OPT_TLS_CA:
			free((char *)cfg->tls.ca);
			cfg->tls.ca = xstrdup(optarg);
			break;
		case OPT_HTTP:
			if (!strcmp(optarg, "off")) {
				cfg->http_enabled = false;
			} else if (addr_parse(optarg, SHOAL_DEFAULT_HTTP_PORT, cfg->http_host,
			                      sizeof(cfg->http_host), &cfg->http_port, err,
			                      sizeof(err)) < 0) {
				return usage_error("--http: %s (or off)", err);
			} else {
				cfg->http_enabled = true;
			}
			cfg->http_explicit = true;
			break;
		case OPT_CONFIG:
			break; /* read before the flags (load_config) */
		case OPT_PRINT_CONFIG:
			print_config = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("shoal-master %s (protocol %u)\n", SHOAL_VERSION,
			       SHOAL_PROTOCOL_VERSION);
			exit(0);
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* Frees what the options allocated. */
static void config_free(struct master_config *cfg)
{
	free(cfg->state_dir);
	free(cfg->secret_file);
	cfg->secret_file = NULL;
	free((char *)cfg->tls.cert);
	free((char *)cfg->tls.key);
	free((char *)cfg->tls.ca);
	cfg->state_dir = NULL;
	cfg->tls.cert = cfg->tls.key = cfg->tls.ca = NULL;
}

static int parse_entry(void *arg, int argc, char **argv)
{
	return parse_args(argc, argv, arg);
}

/* Applies the config file and the SHOAL_* environment through parse_args, before the flags. */
static int load_config(int argc, char **argv, struct master_config *cfg)
{
	struct option longopts[ARRAY_SIZE(options) + 1];
	for (size_t i = 0; i < ARRAY_SIZE(options); i++)
		longopts[i] = options[i].opt;
	memset(&longopts[ARRAY_SIZE(options)], 0, sizeof(struct option));

	struct conffile c;
	char err[1024];
	int rc = 0;
	conffile_init(&c, "shoal-master", "master", longopts);
	const char *path = conffile_path(argc, argv);
	if ((path && conffile_read_file(&c, path, err, sizeof(err)) < 0) ||
	    conffile_read_env(&c, err, sizeof(err)) < 0) {
		fprintf(stderr, "shoal-master: %s\n", err);
		rc = EXIT_USAGE;
	} else {
		rc = conffile_apply(&c, parse_entry, cfg);
	}
	conffile_deinit(&c);
	return rc;
}

/* --print-config: the effective settings, as a config file would set them. */
static void print_effective_config(const struct master_config *cfg)
{
	static const char *const strategies[] = {
	    [SHOAL__STRATEGY__STRATEGY_ROUND_ROBIN] = "round-robin",
	    [SHOAL__STRATEGY__STRATEGY_LEAST_LOADED] = "least-loaded",
	    [SHOAL__STRATEGY__STRATEGY_DYNAMIC] = "dynamic",
	};
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	const char *strategy =
	    (size_t)cfg->strategy < ARRAY_SIZE(strategies) && strategies[cfg->strategy]
	        ? strategies[cfg->strategy]
	        : "dynamic";
	bool v6 = strchr(cfg->listen_host, ':') != NULL;
	printf("# shoal-master %s: effective configuration (flags > environment > file > "
	       "defaults)\n[master]\n",
	       SHOAL_VERSION);
	printf("listen = %s%s%s:%u\n", v6 ? "[" : "", cfg->listen_host, v6 ? "]" : "",
	       cfg->listen_port);
	printf("state-dir = %s\n", cfg->state_dir);
	printf("policy = %s\n", policy_name(cfg->policy));
	printf("aging = %g\n", cfg->aging);
	printf("strategy = %s\n", strategy);
	printf("heartbeat-timeout = %u\n", cfg->heartbeat_timeout_ms / 1000);
	printf("max-frame = %u\n", cfg->max_frame);
	printf("retries = %u\n", cfg->default_retries);
	printf("allow-exec = %s\n", cfg->allow_exec ? "true" : "false");
	printf("keep-jobs = %u\n", cfg->keep_jobs);
	printf("%ssecret-file = %s\n", cfg->secret_file ? "" : "# ",
	       cfg->secret_file ? cfg->secret_file : "(none: no cluster secret)");
	printf("insecure = %s\n", cfg->insecure ? "true" : "false");
	printf("handshake-timeout = %u\n", cfg->handshake_timeout_ms / 1000);
	printf("max-connections = %u\n", cfg->max_conns);
	printf("max-connections-per-addr = %u\n", cfg->max_conns_per_addr);
	printf("max-queued-jobs = %u\n", cfg->max_queued_jobs);
	printf("max-upload = %llu\n", (unsigned long long)cfg->max_upload);
	printf("upload-resume-timeout = %u\n", cfg->upload_resume_ms / 1000);
	printf("max-write-queue = %llu\n", (unsigned long long)cfg->max_write_queue);
	printf("write-stall-timeout = %u\n", cfg->write_stall_ms / 1000);
	printf("%stls-cert = %s\n", cfg->tls.cert ? "" : "# ",
	       cfg->tls.cert ? cfg->tls.cert : "(none: plain TCP)");
	printf("%stls-key = %s\n", cfg->tls.key ? "" : "# ",
	       cfg->tls.key ? cfg->tls.key : "(none)");
	printf("%stls-ca = %s\n", cfg->tls.ca ? "" : "# ",
	       cfg->tls.ca ? cfg->tls.ca : "(none: peers are not asked for certificates)");
	if (cfg->http_enabled) {
		bool h6 = strchr(cfg->http_host, ':') != NULL;
		printf("http = %s%s%s:%u\n", h6 ? "[" : "", cfg->http_host, h6 ? "]" : "",
		       cfg->http_port);
	} else {
		printf("http = off\n");
	}
	printf("log-level = %s\n", levels[log_get_level()]);
}

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Creates the state dir, proves it is writable, and takes its lock so that two masters never
 * share one. Exits with a clear message if any of that fails. */
static int prepare_state_dir(struct master *m, int *lock_fd)
{
	const char *dir = m->cfg.state_dir;
	char path[PATH_MAX];
	if (mkdir_p(dir) < 0) {
		log_error("master",
		          "cannot create state dir %s: %s (set --state-dir to a writable "
		          "directory)",
		          dir, strerror(errno));
		return -1;
	}
	if (state_dir_in_tmp) {
		struct stat st;
		if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    (st.st_mode & 0077)) {
			log_error(
			    "master",
			    "state dir %s (the default without HOME or XDG_STATE_HOME) is not "
			    "a private directory of this user; set --state-dir",
			    dir);
			return -1;
		}
		log_warn("master",
		         "event=state_dir_in_tmp dir=%s why=\"neither HOME nor XDG_STATE_HOME is "
		         "set\" (/tmp may not survive a reboot: set --state-dir for durable jobs)",
		         dir);
	}
	snprintf(path, sizeof(path), "%s/master.lock", dir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("master",
		          "state dir %s is not writable: %s (set --state-dir to a "
		          "writable directory)",
		          dir, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		log_error("master",
		          "state dir %s is in use by another shoal-master (%s); give each "
		          "master its own --state-dir",
		          dir, strerror(errno));
		close(fd);
		return -1;
	}
	/* Job directories of an earlier run stay: the journal resumes from them. */
	snprintf(path, sizeof(path), "%s/jobs", dir);
	if (mkdir_p(path) < 0) {
		log_error("master", "cannot create %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	m->jobs_dir = xstrdup(path);
	char err[512];
	if (blobs_init(m, err, sizeof(err)) < 0) {
		log_error("master", "%s", err);
		close(fd);
		return -1;
	}
	*lock_fd = fd;
	return 0;
}

/* Loads the cluster secret, and refuses to expose an unauthenticated cluster beyond loopback
 * unless --insecure says so. Returns 0 or an exit code. */
static int prepare_security(struct master_config *cfg)
{
	const char *path = auth_secret_path(cfg->secret_file);
	if (path != NULL) {
		char err[512];
		if (auth_secret_load(path, &cfg->secret, &cfg->secret_len, err, sizeof(err)) < 0) {
			log_error("master", "%s", err);
			return EXIT_USAGE;
		}
		log_info("master", "event=secret_loaded file=%s (peers must prove they hold it)",
		         path);
		return 0;
	}
	/* Every listener beyond loopback needs the secret, or --insecure. */
	const char *exposed[2] = {NULL, NULL};
	size_t n = 0;
	if (!addr_is_loopback(cfg->listen_host))
		exposed[n++] = cfg->listen_host;
	if (cfg->http_enabled && !addr_is_loopback(cfg->http_host))
		exposed[n++] = cfg->http_host;
	for (size_t i = 0; i < n; i++) {
		const char *what = exposed[i] == cfg->listen_host ? "--listen" : "--http";
		if (!cfg->insecure) {
			log_error(
			    "master",
			    "refusing to listen on %s (%s) without a cluster secret: anyone who "
			    "can reach it could submit jobs and run code on the workers. Give "
			    "--secret-file FILE (or SHOAL_SECRET_FILE), listen on 127.0.0.1, or "
			    "pass --insecure to accept the risk",
			    exposed[i], what);
			return EXIT_USAGE;
		}
		log_warn(
		    "master",
		    "event=insecure INSECURE: listening on %s (%s) WITHOUT a cluster secret "
		    "(--insecure): anyone who can reach it can submit jobs and run code on the "
		    "workers",
		    exposed[i], what);
	}
	return 0;
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct master *m = h->data;
	log_info("master", "event=stopping signal=%d", signum);
	persist_stop(m);
	notify_stopping();
	server_stop(m);
}

int main(int argc, char **argv)
{
	struct master m;
	memset(&m, 0, sizeof(m));
	snprintf(m.cfg.listen_host, sizeof(m.cfg.listen_host), "127.0.0.1");
	m.cfg.listen_port = SHOAL_DEFAULT_PORT;
	m.cfg.strategy = SHOAL__STRATEGY__STRATEGY_DYNAMIC;
	m.cfg.policy = POLICY_FCFS;
	m.cfg.aging = POLICY_DEFAULT_AGING;
	m.cfg.heartbeat_ms = 1000;
	m.cfg.heartbeat_timeout_ms = 5000;
	m.cfg.handshake_timeout_ms = 10000;
	m.cfg.max_frame = FRAME_DEFAULT_MAX;
	m.cfg.default_retries = 3;
	m.cfg.upload_window = 8u << 20;
	m.cfg.upload_resume_ms = 120000;
	m.cfg.max_conns = 1024;
	m.cfg.max_conns_per_addr = 256;
	m.cfg.max_queued_jobs = 10000;
	m.cfg.max_upload = 0;
	m.cfg.max_write_queue = (uint64_t)256 << 20;
	m.cfg.write_stall_ms = 60000;
	m.cfg.keep_jobs = 1000;
	m.cfg.http_enabled = true;
	snprintf(m.cfg.http_host, sizeof(m.cfg.http_host), "127.0.0.1");
	m.cfg.http_port = SHOAL_DEFAULT_HTTP_PORT;

	int rc = load_config(argc, argv, &m.cfg);
	if (!rc)
		rc = parse_args(argc, argv, &m.cfg);
	if (!rc) {
		/* Once every source is in: the file may give the key, the flags the cert. */
		char err[1024];
		if (tls_files_check(TLS_SERVER, &m.cfg.tls, err, sizeof(err)) < 0)
			rc = usage_error("%s", err);
		/* Every message must fit the queue, with room for the high-water mark above it. */
		else if (m.cfg.max_write_queue < (uint64_t)m.cfg.max_frame + (4u << 20)) {
			snprintf(err, sizeof(err),
			         "--max-write-queue %llu is below --max-frame + 4 MiB (%llu): a "
			         "single message could not be queued",
			         (unsigned long long)m.cfg.max_write_queue,
			         (unsigned long long)m.cfg.max_frame + (4u << 20));
			rc = usage_error("%s", err);
		}
	}
	if (rc) {
		config_free(&m.cfg);
		return rc;
	}
	if (!m.cfg.state_dir)
		m.cfg.state_dir = default_state_dir();
	if (print_config) {
		print_effective_config(&m.cfg);
		config_free(&m.cfg);
		return fflush(stdout) == EOF ? 1 : 0;
	}
	rc = prepare_security(&m.cfg);
	if (rc)
		return rc;
	m.replay = xmalloc(sizeof(*m.replay));
	auth_replay_init(m.replay);
	if (tls_files_enabled(&m.cfg.tls)) {
		char err[1024];
		if (tls_ctx_create(TLS_SERVER, &m.cfg.tls, &m.tls, err, sizeof(err)) < 0) {
			log_error("master", "%s", err);
			config_free(&m.cfg);
			return EXIT_USAGE;
		}
		log_info("master", "event=tls cert=%s verify_peers=%s", m.cfg.tls.cert,
		         m.cfg.tls.ca ? "yes" : "no");
	}

	int lock_fd = -1;
	if (prepare_state_dir(&m, &lock_fd) < 0)
		return 1;

	uv_loop_t loop;
	uv_loop_init(&loop);
	m.loop = &loop;
	server_init(&m);
	uv_signal_init(&loop, &m.sigint);
	uv_signal_init(&loop, &m.sigterm);
	m.sigint.data = m.sigterm.data = &m;
	uv_signal_start(&m.sigint, on_signal, SIGINT);
	uv_signal_start(&m.sigterm, on_signal, SIGTERM);
	signal(SIGPIPE, SIG_IGN);

	trash_start(&m);
	/* The journal before the listeners: the jobs of an earlier run come back before anyone
	 * is served, and a journal the master cannot use stops it before it has said it listens
	 * (a supervisor or a test would otherwise take it for up). */
	char err[2048];
	bool refused = false;
	if (persist_start(&m, err, sizeof(err)) < 0) {
		log_error("master", "%s", err);
		refused = true;
	} else if (http_start(&m) < 0 || server_start(&m) < 0) {
		/* The HTTP endpoint first: the "listening" line then tells tests both ports. */
		refused = true;
	}
	if (refused) {
		persist_stop(&m);
		server_stop(&m);
	}

	uv_run(&loop, UV_RUN_DEFAULT);

	m.exiting = true;  /* files stay for the next start (or whoever repairs a refused state) */
	persist_close(&m); /* the journal is consistent and checkpointed */
	jobs_destroy_all(&m);
	trash_destroy(&m);
	rc = uv_loop_close(&loop);
	if (rc)
		log_error("master", "event loop closed with handles still open: %s",
		          uv_strerror(rc));
	auth_secret_free(&m.cfg.secret, m.cfg.secret_len);
	free(m.replay);
	tls_ctx_destroy(&m.tls);
	config_free(&m.cfg);
	free(m.jobs_dir);
	free(m.blobs_dir);
	close(lock_fd);
	log_info("master", "event=stopped");
	return rc || refused ? 1 : 0;
}
