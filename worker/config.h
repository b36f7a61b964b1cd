/* config.h: shoal-worker's command line, parsed once at startup and read-only afterwards.
 *
 * One table of options drives getopt_long and --help, so the two never disagree. Parsing is
 * socket-free and loop-free (the unit tests call it directly). */
#ifndef SHOAL_WORKER_CONFIG_H
#define SHOAL_WORKER_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define WORKER_MAX_SLOTS          1024u /* libuv's thread pool has at most 1024 threads */
#define WORKER_NAME_MAX           255u
#define WORKER_PATH_MAX           4096u
#define WORKER_DEFAULT_CACHE_SIZE ((uint64_t)4 << 30)

struct worker_config {
	char master[300]; /* HOST:PORT as given, for logs */
	char master_host[256];
	uint16_t master_port;
	uint32_t slots;
	char name[WORKER_NAME_MAX + 1]; /* empty: the caller fills in "<hostname>-<pid>" */
	char advertise[256];            /* --advertise; empty: the connection's local address */
	bool allow_exec;
	enum log_level log_level;
	char cache_dir[WORKER_PATH_MAX];   /* empty: the caller uses cache_default_dir */
	uint64_t cache_size;               /* bytes */
	char work_dir[WORKER_PATH_MAX];    /* empty: a temporary directory of this worker's own */
	char secret_file[WORKER_PATH_MAX]; /* empty: $SHOAL_SECRET_FILE, else no secret */
	char tls_ca[WORKER_PATH_MAX];      /* --tls-ca; empty: plain TCP */
	char tls_cert[WORKER_PATH_MAX];    /* --tls-cert/--tls-key; empty: none presented */
	char tls_key[WORKER_PATH_MAX];
};

enum worker_config_result {
	WORKER_CONFIG_RUN = 0,   /* cfg is complete: run the worker */
	WORKER_CONFIG_EXIT = 1,  /* --help or --version was printed: exit 0 */
	WORKER_CONFIG_USAGE = 2, /* a usage error was printed to err: exit 2 */
};

/* Parses argv (and SHOAL_MASTER from env_master, which may be NULL) into cfg. default_slots
 * is used without --slots. Help and version go to out, errors to err. Resets getopt's state
 * first, so it may be called more than once. */
enum worker_config_result worker_config_parse(struct worker_config *cfg, int argc, char **argv,
                                              const char *env_master, uint32_t default_slots,
                                              FILE *out, FILE *err);

#endif
