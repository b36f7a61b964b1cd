/* progress.c: see progress.h. */
#include "progress.h"

#include <inttypes.h>
#include <string.h>

#include "util.h"

#define PROGRESS_MIN_INTERVAL_US 100000u

void progress_init(struct progress *p, FILE *out, bool enabled)
{
	memset(p, 0, sizeof(*p));
	p->out = out;
	p->enabled = enabled;
}

void progress_fmt_thousands(uint64_t v, char *out, size_t outlen)
{
	char digits[32], tmp[40];
	int n = snprintf(digits, sizeof(digits), "%" PRIu64, v);
	size_t k = 0;

	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			tmp[k++] = ',';
		tmp[k++] = digits[i];
	}
	tmp[k] = '\0';
	snprintf(out, outlen, "%s", tmp);
}

void progress_fmt_duration(uint64_t secs, char *out, size_t outlen)
{
	if (secs >= 3600)
		snprintf(out, outlen, "%" PRIu64 ":%02u:%02u", secs / 3600,
		         (unsigned)(secs / 60 % 60), (unsigned)(secs % 60));
	else
		snprintf(out, outlen, "%u:%02u", (unsigned)(secs / 60), (unsigned)(secs % 60));
}

void progress_fmt_line(const char *state, uint32_t done, uint32_t total, double rate, char *out,
                       size_t outlen)
{
	char bar[PROGRESS_BAR_WIDTH + 1], d[16], t[16];
	size_t fill = 0;

	if (total > 0) {
		if (done > total)
			done = total;
		fill = (size_t)((uint64_t)done * PROGRESS_BAR_WIDTH / total);
	}
	memset(bar, '#', fill);
	memset(bar + fill, '.', PROGRESS_BAR_WIDTH - fill);
	bar[PROGRESS_BAR_WIDTH] = '\0';
	if (total == 0) {
		snprintf(out, outlen, "[%s] %s", bar, state);
		return;
	}
	/* Counts plain, as `123/1000`; only the rate gets separators. */
	snprintf(d, sizeof(d), "%" PRIu32, done);
	snprintf(t, sizeof(t), "%" PRIu32, total);
	if (rate > 0) {
		char rates[40], eta[32];
		double left = (double)(total - done) / rate;
		progress_fmt_thousands((uint64_t)(rate + 0.5), rates, sizeof(rates));
		/* A wildly early estimate is noise; cap it rather than print years. */
		if (left > 359999)
			left = 359999;
		progress_fmt_duration((uint64_t)(left + 0.5), eta, sizeof(eta));
		snprintf(out, outlen, "[%s] %s/%s tasks  %s tasks/s  ETA %s", bar, d, t, rates,
		         eta);
	} else {
		snprintf(out, outlen, "[%s] %s/%s tasks  %s", bar, d, t, state);
	}
}

void progress_update(const struct shoal_job_info *info, void *arg)
{
	struct progress *p = arg;
	uint64_t now = mono_us();
	double rate = 0;
	char line[160];
	bool final = info->state == SHOAL_JOB_SUCCEEDED || info->state == SHOAL_JOB_FAILED ||
	             info->state == SHOAL_JOB_CANCELLED;

	if (!p->enabled)
		return;
	if (!p->started) {
		p->started = true;
		p->start_us = now;
		p->start_done = info->tasks_done;
	} else if (!final && now - p->last_draw_us < PROGRESS_MIN_INTERVAL_US) {
		return;
	}
	/* The rate counts only what finished while we watched, so re-attaching with `shoal
	 * wait` to a half-done job does not show a fantasy rate. */
	if (now > p->start_us && info->tasks_done > p->start_done)
		rate =
		    (double)(info->tasks_done - p->start_done) * 1e6 / (double)(now - p->start_us);
	progress_fmt_line(shoal_job_state_name(info->state), info->tasks_done, info->tasks_total,
	                  rate, line, sizeof(line));
	fprintf(p->out, "\r%s\033[K", line);
	fflush(p->out);
	p->drawn = true;
	p->last_draw_us = now;
}

void progress_note(struct progress *p, const char *text)
{
	if (!p->enabled)
		return;
	fprintf(p->out, "\r%s\033[K", text);
	fflush(p->out);
	p->drawn = true;
}

void progress_clear(struct progress *p)
{
	if (!p->enabled || !p->drawn)
		return;
	fputs("\r\033[K", p->out);
	fflush(p->out);
	p->drawn = false;
}
