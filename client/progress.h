/* progress.h: the one-line progress display of `shoal run` and `shoal wait`.
 *
 * The line is drawn on a terminal only, redrawn in place with '\r' at most every 100 ms, and
 * erased by progress_clear so the result (or an error) starts on a clean line:
 *   [##..................] 123/1000 tasks  4,321 tasks/s  ETA 0:12
 * The formatting helpers are pure, for the unit tests. */
#ifndef SHOAL_CLIENT_PROGRESS_H
#define SHOAL_CLIENT_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "shoal.h"

#define PROGRESS_BAR_WIDTH 20

struct progress {
	FILE *out; /* borrowed */
	bool enabled;
	bool drawn; /* a line is on screen */
	uint64_t start_us, last_draw_us;
	uint32_t start_done; /* tasks already done when watching began */
	bool started;
};

void progress_init(struct progress *p, FILE *out, bool enabled);
/* A shoal_progress_fn: arg is the struct progress. */
void progress_update(const struct shoal_job_info *info, void *arg);
/* Shows a line of text in the progress line's place (e.g. while an input uploads, before
 * any job state exists); the next update or progress_clear replaces it. */
void progress_note(struct progress *p, const char *text);
/* Erases the line if one is drawn. */
void progress_clear(struct progress *p);

/* "1,234,567" */
void progress_fmt_thousands(uint64_t v, char *out, size_t outlen);
/* "0:07", "12:34", "1:02:03" */
void progress_fmt_duration(uint64_t secs, char *out, size_t outlen);
/* The whole line for done/total tasks at rate tasks/s (rate <= 0: unknown); state names the
 * job's phase before any task exists. */
void progress_fmt_line(const char *state, uint32_t done, uint32_t total, double rate, char *out,
                       size_t outlen);

#endif
