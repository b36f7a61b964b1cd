/* conffile.h: settings from an INI file (--config FILE) and SHOAL_* environment variables, fed
 * through a program's own option table and option parser.
 *
 * A file's keys are the program's long flags without "--" (`state-dir = /srv/shoal`), in the
 * program's section ([master], [worker], [client]) or in [cluster], which the programs share
 * (conffile_cluster_keys: a [cluster] key a program does not take is skipped by it). The variable
 * SHOAL_STATE_DIR stands for --state-dir, and so on for every long flag of the program.
 *
 * Nothing here knows what a value means. The program applies the entries with the very parser
 * it uses for its command line, one entry at a time as a two-element argv {prog,
 * "--NAME=VALUE"} (a boolean flag set to true as {prog, "--NAME"}); while an entry is applied,
 * conffile_origin() names where it came from ("/etc/shoal/shoal.conf:12" or "SHOAL_SLOTS") so
 * the parser's error message can say so. A flag added to the program's table therefore works
 * in the file and the environment with no code of its own.
 *
 * Precedence: flags > environment > file > defaults. The program sets its defaults, applies
 * the entries (conffile_apply: the file's, then the environment's, each key once with the value
 * that wins), then parses its command line, whose flags override what came before.
 *
 * Rejected with the origin and the reason: a syntax error, a line longer than the parser's
 * line buffer, an unknown section or key, a key set twice in one section, a value given to a
 * flag that takes none other than a boolean (true/false, yes/no, on/off, 1/0). */
#ifndef SHOAL_CONFFILE_H
#define SHOAL_CONFFILE_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

/* Largest config file read (it is read whole). */
#define CONFFILE_MAX_BYTES (1u << 20)

struct conffile_entry {
	const struct option *opt; /* in the program's table */
	char *value;              /* owned; NULL for a boolean set to false */
	char *origin;             /* owned: "FILE:LINE" or "SHOAL_NAME" */
	int rank;                 /* which source wins: [cluster] < [section] < environment */
};

struct conffile {
	const char *prog;          /* borrowed: argv[0] handed to the parser */
	const char *section;       /* borrowed: "master", "worker" or "client" */
	const struct option *opts; /* borrowed: the program's long options, NULL-terminated */
	struct conffile_entry *v;  /* owned */
	size_t n, cap;
};

/* Keys [cluster] may hold: settings more than one program takes. */
extern const char *const conffile_cluster_keys[];

void conffile_init(struct conffile *c, const char *prog, const char *section,
                   const struct option *opts);
void conffile_deinit(struct conffile *c);

/* Reads a config file into c. 0, or -1 with "PATH: reason" / "PATH:LINE: reason" in err. */
int conffile_read_file(struct conffile *c, const char *path, char *err, size_t errlen);
/* The same over text already in memory (name stands for the path in origins and errors). */
int conffile_read_text(struct conffile *c, const char *name, const char *text, size_t len,
                       char *err, size_t errlen);
/* Reads SHOAL_<NAME> for each option of the table (NAME upper-cased, '-' as '_'). 0, or -1
 * with "SHOAL_X: reason" in err (a boolean variable with another value). */
int conffile_read_env(struct conffile *c, char *err, size_t errlen);

/* Applies the entries, lowest precedence first: apply(arg, 2, {prog, "--NAME=VALUE"}) with
 * conffile_origin() set. Stops at and returns the first non-zero return of apply. The argv
 * strings live only during the call. */
typedef int (*conffile_apply_fn)(void *arg, int argc, char **argv);
int conffile_apply(const struct conffile *c, conffile_apply_fn apply, void *arg);

/* During conffile_apply: where the entry being applied came from. Otherwise NULL. */
const char *conffile_origin(void);

/* The config file the command line names (the last --config FILE or --config=FILE before any
 * "--"), else $SHOAL_CONFIG if set and not empty, else NULL (no file is read by default). */
const char *conffile_path(int argc, char **argv);

/* Keys never taken from a file or the environment: they steer the command line itself. */
bool conffile_key_reserved(const char *name);

/* Parses a boolean written true/false, yes/no, on/off, 1/0 (any case). 0 or -1. */
int conffile_parse_bool(const char *s, bool *out);

#endif
