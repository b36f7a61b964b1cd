/* top.h: `shoal top`, a refreshing terminal view of the cluster (workers with their load,
 * jobs with their progress, the task rate), from the master's own protocol (ListWorkers,
 * ListJobs) over one connection.
 *
 * On a terminal it takes the alternate screen, hides the cursor and reads keys raw (q quits);
 * the terminal's mode is restored when it exits, on q, on SIGINT/SIGTERM/SIGHUP, and when the
 * master goes away. With a count of iterations, or when standard output is not a terminal, it
 * prints plain frames one after the other (no escape sequences) and reads no keys. */
#ifndef SHOAL_CLIENT_TOP_H
#define SHOAL_CLIENT_TOP_H

#include <stddef.h>

#include "buf.h"
#include "shoal.h"

struct top_options {
	unsigned interval_ms; /* between refreshes */
	unsigned iterations;  /* frames to show, then exit 0; 0: until q or a signal */
	const char *master;   /* for the header only */
};

/* Runs the view on an open connection (borrowed). Returns an exit code: SHOAL_OK, or
 * SHOAL_ECONN if the master went away (after printing why to stderr). */
int top_run(shoal_client *c, const struct top_options *o);

/* One frame: width columns (lines are cut there), at most height lines (0: no limit).
 * rate is tasks finished per second (negative: not known yet). Socket-free, for tests. */
void top_render(struct buf *out, const char *master, const struct shoal_worker_info *ws, size_t nw,
                const struct shoal_job_info *js, size_t nj, double rate, unsigned width,
                unsigned height);

#endif
